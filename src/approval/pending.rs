//! `/aurora pending`'s side of the engine: the open requests a person may act on, and a denial with
//! the reason the deny-reason modal asked for.
//!
//! "May act on" is exactly what deciding allows (`Approvals::may_decide`, not repeated here): an
//! approver who did not make the request may approve or deny it; the requester may withdraw it
//! (deny their own). Under a policy asking for several approvers, an approver whose approval is
//! counted already may still deny it, and is not offered Approve again. A request is open while it is pending and not past its expiry. Nothing here
//! writes: the list is read from the store and answered; every button it leads to is checked again
//! when clicked (the request re-read, `may_decide` asked again).

use super::{Approvals, Refusal, RequestLink, outcome_of, store_failed};
use crate::store::{Request, RequestId, RequestState};
use crate::types::{Principal, SlackUserId};

/// How a person may act on an open request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// An approver, not the requester: Approve or Deny.
    Approver,
    /// The requester: withdraw it (a denial of their own request).
    Requester,
    /// An approver whose approval is counted already, while the policy waits for more: Deny only.
    Counted,
}

/// One open request a person may act on.
#[derive(Debug, Clone, PartialEq)]
pub struct Actionable {
    pub request: Request,
    pub role: Role,
    /// How many distinct approvals its policy asks for (its `approvals` holds those counted so far).
    pub need: usize,
    /// Where its approval message is, for a link to it.
    pub link: RequestLink,
}

/// The answer to `/aurora pending`: what the person may act on (oldest first), as of `now`, and who
/// may make a request (said when the list is empty).
#[derive(Debug, Clone, PartialEq)]
pub struct PendingList {
    pub items: Vec<Actionable>,
    pub requesters: Vec<Principal>,
    pub now: jiff::Timestamp,
}

impl Approvals {
    /// The open requests (pending, not expired) `user` may act on, oldest first, each with its role
    /// and a link to its message (`team_domain`: the workspace's, from the command).
    ///
    /// # Errors
    /// `Refusal::Internal` when the store cannot be read; `Refusal::DirectoryUnavailable` when a
    /// user group that decides it cannot be read.
    pub async fn actionable_for(&self, user: &SlackUserId, team_domain: Option<&str>) -> Result<PendingList, Refusal> {
        let now = self.clock.now();
        let open = self
            .store
            .requests_in(RequestState::Pending)
            .await
            .map_err(store_failed)?;
        let mut items = Vec::new();
        for request in open.into_iter().flatten().filter(|r| r.expires_at > now) {
            let Some(role) = self.role_of(&request, user).await? else {
                continue;
            };
            let link = self.link_to(request.id, team_domain).await;
            let need = self.policy_of(&request).approvals_required;
            items.push(Actionable {
                request,
                role,
                need,
                link,
            });
        }
        items.sort_by_key(|a| a.request.id);
        Ok(PendingList {
            items,
            requesters: self.settings.approval.requesters.clone(),
            now,
        })
    }

    /// How `user` may act on `request`, by `may_decide`'s rules; `None` when they may not.
    async fn role_of(&self, request: &Request, user: &SlackUserId) -> Result<Option<Role>, Refusal> {
        match self.may_decide(request, user, true).await {
            Ok(()) if request.approved_by(&crate::types::Person::Slack(user.clone())) => {
                return Ok(Some(Role::Counted));
            }
            Ok(()) => return Ok(Some(Role::Approver)),
            Err(e @ Refusal::DirectoryUnavailable(_)) => return Err(e),
            Err(_) => {}
        }
        if *user != request.requested_by {
            return Ok(None);
        }
        match self.may_decide(request, user, false).await {
            Ok(()) => Ok(Some(Role::Requester)),
            Err(e @ Refusal::DirectoryUnavailable(_)) => Err(e),
            Err(_) => Ok(None),
        }
    }

    /// Whether `user` may deny (or, the requester, withdraw) request `id` now: it is open and they
    /// may decide it. Asked before the deny-reason modal opens; the denial asks again.
    ///
    /// # Errors
    /// Why not, as for a Deny click.
    pub async fn may_deny(&self, id: RequestId, user: &SlackUserId) -> Result<(Request, Role), Refusal> {
        let request = self.request_named(id).await?;
        self.refuse_if_closed(&request)?;
        self.may_decide(&request, user, false).await?;
        let role = if *user == request.requested_by {
            Role::Requester
        } else {
            Role::Approver
        };
        Ok((request, role))
    }

    /// Denies request `id` as `user`, saying `reason` (trimmed, not empty: the modal refuses an
    /// empty one before this is called): recorded in the request's note, shown on its message and in
    /// its thread, and audited.
    ///
    /// # Errors
    /// Why nothing was decided, as for a Deny click.
    pub async fn deny_with_reason(
        &self,
        id: RequestId,
        user: &SlackUserId,
        reason: &str,
    ) -> Result<super::Done, Refusal> {
        let result = self.try_decide(id, user, false, Some(reason)).await;
        let outcome = format!("{}; reason: {reason}", outcome_of(&result));
        self.audit(user, "deny", Some(id), &outcome).await;
        result
    }
}
