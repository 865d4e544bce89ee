//! The approval policy applied (`settings::policy` resolves it from the config): who may request,
//! the reason and ticket a request must give, who may approve and how many approvals start the run.

use super::{Approvals, Done, Refusal, RequestRefusal, store_failed};
use crate::settings::{Action, Policy};
use crate::store::{Request, RequestId};
use crate::types::{ClusterName, Mode, Person, SlackUserId};

/// What the policy asks a request to give, as the requester typed it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Given<'a> {
    pub reason: Option<&'a str>,
    pub ticket: Option<&'a str>,
}

/// What a request is for, in the policy's words (`detach of orders`), for refusals.
pub fn action_name(mode: Option<Mode>) -> &'static str {
    mode.map_or("a failover", Mode::as_str)
}

/// Whether `given` satisfies `policy`'s reason and ticket rules for `mode` of `cluster`.
pub fn check_given(
    policy: &Policy,
    cluster: &ClusterName,
    mode: Option<Mode>,
    given: Given<'_>,
) -> Result<(), RequestRefusal> {
    let action = action_name(mode);
    if policy.require_reason && given.reason.is_none_or(|r| r.trim().is_empty()) {
        return Err(RequestRefusal::ReasonRequired {
            cluster: cluster.clone(),
            action,
        });
    }
    if let Some(pattern) = &policy.ticket {
        let pattern_text = pattern.as_str().to_owned();
        match given.ticket {
            None => {
                return Err(RequestRefusal::TicketRequired {
                    cluster: cluster.clone(),
                    action,
                    pattern: pattern_text,
                });
            }
            Some(t) if !pattern.matches(t) => {
                return Err(RequestRefusal::TicketMismatch {
                    cluster: cluster.clone(),
                    action,
                    ticket: t.to_owned(),
                    pattern: pattern_text,
                });
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// How far a request's approvals are: `have` of the `need` its policy asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub have: usize,
    pub need: usize,
}

/// `user` approved `request` already: when their approval made enough (a double click, say), the
/// request is as good as approved by them; otherwise their approval waits for others.
fn already_approved(request: &Request, user: &SlackUserId, need: usize) -> Refusal {
    let have = request.approvals.len();
    if have >= need {
        return Refusal::AlreadyDecided {
            id: request.id,
            state: crate::store::RequestState::Approved,
            by: Some(Person::Slack(user.clone())),
        };
    }
    Refusal::AlreadyApprovedByYou {
        id: request.id,
        have,
        need,
    }
}

impl Approvals {
    /// The policy for `cluster` and `mode` (`None`: the mode is still to be chosen).
    pub fn policy(&self, cluster: &ClusterName, mode: Option<Mode>) -> &Policy {
        self.settings.approval.policy.policy(cluster, mode.map(Action::from))
    }

    /// The policy a request is decided under (its mode's, once planned).
    pub fn policy_of(&self, request: &Request) -> &Policy {
        self.policy(&request.cluster, request.mode)
    }

    /// Whether `user` may request `mode` of `cluster`.
    pub(super) async fn may_request(
        &self,
        user: &SlackUserId,
        cluster: &ClusterName,
        mode: Option<Mode>,
    ) -> Result<(), RequestRefusal> {
        let requesters = &self.policy(cluster, mode).requesters;
        match self.is_one_of(user, requesters).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(RequestRefusal::NotRequester(requesters.clone())),
            Err(e) => Err(RequestRefusal::DirectoryUnavailable(e)),
        }
    }

    /// A request whose mode the plan chose: the chosen mode's policy, which may be stricter than the
    /// one the request was recorded under (it is checked again; a Slack requester only).
    pub(super) async fn planned_mode_allowed(&self, request: &Request, mode: Mode) -> Result<(), RequestRefusal> {
        if request.mode == Some(mode) {
            return Ok(());
        }
        if let Some(user) = request.requested_by.slack() {
            self.may_request(user, &request.cluster, Some(mode)).await?;
        }
        let given = Given {
            reason: request.reason.as_deref(),
            ticket: request.ticket.as_deref(),
        };
        check_given(
            self.policy(&request.cluster, Some(mode)),
            &request.cluster,
            Some(mode),
            given,
        )
    }

    /// Counts `user`'s approval of pending `request`. `Ok(Some(done))`: counted, and more are needed
    /// (the progress is shown); `Ok(None)`: this approval makes enough, so the request is to be
    /// decided now.
    pub(super) async fn count_approval(&self, request: &Request, user: &SlackUserId) -> Result<Option<Done>, Refusal> {
        let need = self.policy_of(request).approvals_required;
        let by = Person::Slack(user.clone());
        if request.approved_by(&by) {
            return Err(already_approved(request, user, need));
        }
        let now = self.clock.now();
        let Some(all) = self
            .store
            .add_approval(request.id, &by, now)
            .await
            .map_err(store_failed)?
        else {
            // Closed, expired, or this person's other click won: say which.
            let again = self.request_named(request.id).await?;
            self.refuse_if_closed(&again)?;
            return Err(already_approved(&again, user, need));
        };
        let progress = Progress { have: all.len(), need };
        if progress.have >= need {
            return Ok(None);
        }
        let counted = Request {
            approvals: all,
            ..request.clone()
        };
        self.announce_progress(&counted, user, progress).await;
        Ok(Some(Done::ApprovalCounted {
            id: request.id,
            have: progress.have,
            need,
        }))
    }

    /// One more approval of several: on the request message (who approved so far) and in its thread.
    async fn announce_progress(&self, request: &Request, user: &SlackUserId, p: Progress) {
        let id: RequestId = request.id;
        tracing::info!(id = %id, approver = %user, have = p.have, need = p.need, "approval counted");
        let note = crate::runbook::report::Note::ApprovalCounted {
            by: Person::Slack(user.clone()),
            have: p.have,
            need: p.need,
        };
        let stage = crate::runbook::report::Stage::AwaitingApproval;
        let key = format!("request:{id}:approval:{}", p.have);
        self.tell(request, super::readable_plan(request).as_ref(), &stage, note, &key)
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Settings;

    fn policy(extra: &str) -> (Settings, ClusterName) {
        let text = include_str!("../../config.example.toml").replace(
            "request_ttl_secs = 900\n",
            &format!("request_ttl_secs = 900\n{extra}\n"),
        );
        (
            Settings::from_toml(&text).unwrap(),
            ClusterName::parse("orders").unwrap(),
        )
    }

    #[test]
    fn a_required_reason_and_a_ticket_pattern_are_checked_with_the_rule_named() {
        let (s, orders) = policy("require_reason = true\nticket_pattern = \"INC-\\\\d+\"");
        let p = s.approval.policy.policy(&orders, Some(Action::Detach));
        let check = |reason, ticket| check_given(p, &orders, Some(Mode::Detach), Given { reason, ticket });
        assert!(matches!(
            check(None, Some("INC-1")),
            Err(RequestRefusal::ReasonRequired { action: "detach", .. })
        ));
        assert!(matches!(
            check(Some("  "), Some("INC-1")),
            Err(RequestRefusal::ReasonRequired { .. })
        ));
        assert!(matches!(
            check(Some("down"), None),
            Err(RequestRefusal::TicketRequired { ref pattern, .. }) if pattern == "INC-\\d+"
        ));
        assert!(matches!(
            check(Some("down"), Some("JIRA-1")),
            Err(RequestRefusal::TicketMismatch { ref ticket, .. }) if ticket == "JIRA-1"
        ));
        assert_eq!(check(Some("down"), Some("INC-12")), Ok(()));
    }

    #[test]
    fn without_policy_keys_nothing_is_asked() {
        let (s, orders) = policy("");
        let p = s.approval.policy.policy(&orders, None);
        assert_eq!(check_given(p, &orders, None, Given::default()), Ok(()));
    }
}
