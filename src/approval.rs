//! Requests and decisions: who may ask, who may approve, planning a request, deciding it exactly once,
//! expiring it, and starting its run. Works over the engine's ports; the Slack routes call in with
//! already-verified, already-parsed input and send back what this returns.
//!
//! Rules kept here:
//! - only a requester may ask; only an approver may approve, and never their own request;
//! - an approver or the requester may deny;
//! - a decision is a compare-and-set in the store: of any number of clicks, one decides;
//! - nothing is decided after expiry; an expired request is closed on its own;
//! - every attempt, allowed or refused, is audited.

use crate::ports::{Aurora, Chat, Clock, Directory, Dns, Metrics};
use crate::runbook::plan::{self, Plan};
use crate::runbook::report::{Note, Stage};
use crate::runbook::survey;
use crate::runbook::{RunData, Runner, Step};
use crate::settings::Settings;
use crate::store::{Decided, NewRequest, Request, RequestId, RequestState, RunId, RunState, Store};
use crate::types::{Mode, Principal, Region, SlackUserId};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

/// How long planning may read AWS before the request is rejected.
const PLANNING_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a click changed nothing; told to the clicker (only them).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("Request #{0} does not exist.")]
    NoSuchRequest(RequestId),
    #[error("You cannot approve your own request: a second person must.")]
    OwnRequest,
    #[error("You are not an approver of failover requests. Approvers: {0}.")]
    NotApprover(String),
    #[error("Only an approver or the requester can deny a request. Approvers: {0}.")]
    NotAllowedToDeny(String),
    #[error("Request #{id} was already {state}{by}.")]
    AlreadyDecided {
        id: RequestId,
        state: &'static str,
        by: String,
    },
    #[error("Request #{0} has expired; nothing was changed. Ask again with /aurora failover if it is still needed.")]
    Expired(RequestId),
    #[error("Request #{0} is still being prepared; try again in a moment.")]
    NotReady(RequestId),
    #[error("Your Slack user groups could not be checked ({0}); try again in a moment.")]
    DirectoryUnavailable(String),
    #[error("Only the requester or an approver can cancel a request. Approvers: {0}.")]
    NotAllowedToCancel(String),
    #[error("Request #{0} is already approved and its run has started: it cannot be cancelled.")]
    AlreadyApproved(RequestId),
    #[error(
        "Something failed on the bot's side; nothing was changed. Try again, and tell its operators if it persists."
    )]
    Internal,
    #[error("Run {0} does not exist. The run's number is in its thread (\"Needs attention (run N)\").")]
    NoSuchRun(RunId),
    #[error("Only a requester or an approver can ask to resume a run. Approvers: {0}.")]
    NotAllowedToResume(String),
    #[error("Only the requester or an approver can abandon a run. Approvers: {0}.")]
    NotAllowedToAbandon(String),
    #[error("Run {id} is {state}: only a run that needs attention can be resumed.")]
    NotWaiting { id: RunId, state: &'static str },
    #[error(
        "Resuming run {id} was already asked for by <@{by}>; it waits for a second person's approval in the thread."
    )]
    ResumeAlreadyAsked { id: RunId, by: String },
    #[error("You asked to resume run {0}: a second person must approve it.")]
    OwnResume(RunId),
    #[error("Nobody is asking to resume run {0} right now (it was decided already, or the run moved on).")]
    NoResumeAsked(RunId),
    #[error("Run {id} has already ended ({state}); nothing was changed.")]
    RunEnded { id: RunId, state: &'static str },
    #[error("Only an approver, the person who asked, or the failover's requester can deny a resume. Approvers: {0}.")]
    NotAllowedToDenyResume(String),
    #[error("Say why you abandon run {0}: `/aurora abandon {0} REASON`.")]
    NoReason(RunId),
}

/// Where a command came from.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    pub channel: &'a str,
    /// Where to answer the person later (valid 30 minutes).
    pub response_url: Option<&'a str>,
    /// The workspace's domain, for links to messages.
    pub team_domain: Option<&'a str>,
}

/// The immediate answer to a `/aurora failover`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestReply {
    /// Recorded; planning has started and its outcome will follow through the response_url.
    Accepted { id: RequestId },
    /// A dry run: the plan will follow through the response_url; nothing is recorded or posted.
    DryRun,
    /// Refused, with the reason for the user.
    Refused(String),
}

/// Starts runs and keeps track of them (so that shutdown can wait for them).
#[derive(Clone)]
pub struct Launcher {
    pub runner: Arc<Runner>,
    /// Every run task, so that shutdown can wait for runs to reach a checkpoint.
    pub tracker: TaskTracker,
}

impl Launcher {
    pub fn launch(&self, run_id: RunId) {
        let runner = self.runner.clone();
        self.tracker.spawn(runner.execute(run_id));
    }
}

/// The request lifecycle.
#[derive(Clone)]
pub struct Approvals {
    pub settings: Arc<Settings>,
    pub store: Arc<dyn Store>,
    pub aurora: Arc<dyn Aurora>,
    pub dns: Arc<dyn Dns>,
    pub metrics: Arc<dyn Metrics>,
    /// IAM's policy simulator, asked when a plan is made.
    pub permissions: Arc<dyn crate::ports::Permissions>,
    pub chat: Arc<dyn Chat>,
    pub directory: Arc<dyn Directory>,
    pub clock: Arc<dyn Clock>,
    pub launcher: Launcher,
}

/// A reason for people, as Slack text: what AWS or a record holds is escaped (it may contain `<...>`
/// mentions or links), and a closing full stop dropped (the sentence around it adds one).
fn shown(reason: &str) -> String {
    crate::slack::render::esc(reason.trim_end().trim_end_matches('.'))
}

/// A store failure, for the person who clicked or typed: logged, answered with a generic message.
fn store_failed(e: crate::store::StoreError) -> Refusal {
    warn!(error = %e, "store error");
    Refusal::Internal
}

/// The working data a new run starts with.
fn first_run_data() -> String {
    serde_json::to_string(&RunData::default()).unwrap_or_else(|_| "{}".into())
}

/// A request's plan, for a message about it: one that cannot be read is logged (by the store, with
/// the request's id) and the message goes without it.
fn readable_plan(r: &Request) -> Option<Plan> {
    r.stored_plan().ok().flatten()
}

/// "done", or "refused: why", for the audit.
fn outcome_of(result: &Result<String, Refusal>) -> String {
    match result {
        Ok(_) => "done".to_owned(),
        Err(r) => format!("refused: {r}"),
    }
}

fn names(list: &[Principal]) -> String {
    list.iter()
        .map(|p| match p {
            Principal::User(u) => format!("<@{u}>"),
            Principal::Group(g) => format!("<!subteam^{g}>"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl Approvals {
    /// Whether `user` is one of `list`, directly or through a user group. Groups are looked up
    /// concurrently (each lookup is bounded), so a slow Slack cannot hold a click past its 3 seconds.
    async fn is_one_of(&self, user: &SlackUserId, list: &[Principal]) -> Result<bool, String> {
        if list.iter().any(|p| matches!(p, Principal::User(u) if u == user)) {
            return Ok(true);
        }
        let groups: Vec<_> = list
            .iter()
            .filter_map(|p| match p {
                Principal::Group(g) => Some(g),
                Principal::User(_) => None,
            })
            .collect();
        let lookups = futures::future::join_all(groups.iter().map(|g| self.directory.members(g))).await;
        let mut last_error = None;
        for found in lookups {
            match found {
                Ok(members) if members.contains(user) => return Ok(true),
                Ok(_) => {}
                Err(e) => last_error = Some(e.to_string()),
            }
        }
        match last_error {
            Some(e) => Err(e),
            None => Ok(false),
        }
    }

    async fn audit(&self, user: &SlackUserId, action: &str, request: Option<RequestId>, outcome: &str) {
        if let Err(e) = self
            .store
            .audit(self.clock.now(), user.as_str(), action, request, outcome)
            .await
        {
            warn!(error = %e, "cannot write the audit log");
        }
    }

    /// `/aurora failover CLUSTER [--to REGION] [--mode MODE]`: checks, records, and starts planning.
    pub async fn request_failover(
        &self,
        user: &SlackUserId,
        cluster: &str,
        to: Option<&str>,
        mode: Option<Mode>,
        dry_run: bool,
        origin: Origin<'_>,
    ) -> RequestReply {
        let Origin {
            channel: origin_channel,
            response_url,
            team_domain,
        } = origin;
        let action = format!("request failover {cluster}");
        let refuse = async |why: String| {
            self.audit(user, &action, None, &format!("refused: {why}")).await;
            RequestReply::Refused(why)
        };
        match self.is_one_of(user, &self.settings.approval.requesters).await {
            Ok(true) => {}
            Ok(false) => {
                return refuse(format!(
                    "You are not allowed to request a failover. Requesters: {}.",
                    names(&self.settings.approval.requesters)
                ))
                .await;
            }
            Err(e) => {
                return refuse(format!(
                    "Your Slack user groups could not be checked ({e}); try again in a moment."
                ))
                .await;
            }
        }
        let Some(c) = self.settings.cluster(cluster) else {
            return refuse(format!(
                "Unknown cluster {}. Configured clusters: {}.",
                crate::slack::render::code(cluster),
                self.settings.cluster_names().join(", ")
            ))
            .await;
        };
        let to = match to {
            None => None,
            Some(r) => match Region::parse(r).filter(|r| c.regions.contains(r)) {
                Some(region) => Some(region),
                None => {
                    return refuse(format!(
                        "{} is not a Region of {}. Its Regions: {}.",
                        crate::slack::render::code(r),
                        c.name,
                        c.regions.iter().map(Region::as_str).collect::<Vec<_>>().join(", ")
                    ))
                    .await;
                }
            },
        };
        if dry_run {
            self.audit(user, &format!("dry run {cluster}"), None, "planning").await;
            let me = self.clone();
            let (c, url) = (c.clone(), response_url.map(str::to_owned));
            tokio::spawn(async move { me.dry_run(c, to, mode, url).await });
            return RequestReply::DryRun;
        }
        let now = self.clock.now();
        let ttl = jiff::SignedDuration::try_from(self.settings.approval.request_ttl).unwrap_or_default();
        let new = NewRequest {
            cluster: c.name.clone(),
            mode,
            requested_by: user.clone(),
            to_region: to,
            origin_channel: origin_channel.to_owned(),
            response_url: response_url.map(str::to_owned),
            requested_at: now,
            expires_at: now + ttl,
        };
        match self.store.create_request(&new).await {
            Err(e) => {
                warn!(error = %e, "cannot record a request");
                refuse("The request could not be recorded (the bot's database failed); nothing was done.".into()).await
            }
            Ok(Err(existing)) => {
                refuse(format!(
                    "{} already has {} open or running: one at a time per cluster.",
                    c.name,
                    self.link_to(existing, team_domain).await
                ))
                .await
            }
            Ok(Ok(id)) => {
                self.audit(user, &action, Some(id), "recorded").await;
                let me = self.clone();
                tokio::spawn(async move { me.plan_request(id).await });
                RequestReply::Accepted { id }
            }
        }
    }

    /// A Slack link to request `id`'s message, or a mention of the channel when the message is not
    /// posted yet (or the workspace's domain is unknown).
    async fn link_to(&self, id: RequestId, team_domain: Option<&str>) -> String {
        let channel = &self.settings.slack.incident_channel;
        let posted = match self.store.request(id).await {
            Ok(Some(Request { message: Some(m), .. })) => self.store.outbox_item(m).await.ok().flatten(),
            _ => None,
        }
        .and_then(|item| item.delivered_ts);
        match (posted, team_domain.filter(|d| !d.is_empty())) {
            (Some(ts), Some(domain)) => format!(
                "<https://{domain}.slack.com/archives/{channel}/p{}|request #{id}>",
                ts.replace('.', "")
            ),
            _ => format!("request #{id} in <#{channel}>"),
        }
    }

    /// Makes a recorded request's plan and posts it for approval, or rejects it with the reason.
    pub async fn plan_request(&self, id: RequestId) {
        let request = match self.store.request(id).await {
            Ok(Some(r)) if r.state == RequestState::Planning => r,
            Ok(_) => return,
            Err(e) => {
                warn!(error = %e, id = %id, "cannot read a request to plan");
                return;
            }
        };
        let outcome = match tokio::time::timeout(PLANNING_TIMEOUT, self.make_plan(&request)).await {
            Ok(r) => r,
            Err(_) => Err(format!("AWS did not answer within {} s", PLANNING_TIMEOUT.as_secs())),
        };
        match outcome {
            Err(reason) => {
                info!(id = %id, %reason, "request rejected");
                if let Err(e) = self.store.mark_rejected(id, &reason).await {
                    warn!(error = %e, "cannot record a rejection");
                }
                self.audit(&request.requested_by, "plan", Some(id), &format!("rejected: {reason}"))
                    .await;
                if let Some(url) = &request.response_url {
                    let text = format!(
                        "Request #{id} ({} failover) could not be prepared: {}. Nothing was changed.",
                        request.cluster,
                        shown(&reason)
                    );
                    if let Err(e) = self.chat.respond(url, &text, false).await {
                        warn!(error = %e, "cannot queue a reply");
                    }
                }
            }
            Ok(plan) => {
                let plan_json = match serde_json::to_string(&plan) {
                    Ok(j) => j,
                    Err(e) => {
                        warn!(error = %e, "cannot serialize a plan");
                        return;
                    }
                };
                let message = match self.chat.post_request(&request, &plan).await {
                    Ok(m) => m,
                    Err(e) => {
                        warn!(error = %e, "cannot queue the approval request");
                        let _ = self
                            .store
                            .mark_rejected(id, "the approval request could not be queued")
                            .await;
                        return;
                    }
                };
                if let Err(e) = self.store.attach_message(id, message).await {
                    warn!(error = %e, "cannot record the request's message");
                }
                match self.store.mark_pending(id, &plan_json, plan.mode, message).await {
                    Ok(true) => {}
                    Ok(false) => {
                        // Cancelled while it was being prepared: take the buttons off what was posted.
                        if let Ok(Some(now)) = self.store.request(id).await
                            && now.state == RequestState::Cancelled
                            && let Some(by) = now.decided_by.clone()
                        {
                            self.tell(
                                &now,
                                Some(&plan),
                                &Stage::Cancelled { by: by.clone() },
                                Note::Cancelled { by },
                                &format!("request:{id}:cancelled"),
                            )
                            .await;
                        }
                        return;
                    }
                    Err(e) => {
                        warn!(error = %e, "cannot record a plan");
                        return;
                    }
                }
                self.audit(&request.requested_by, "plan", Some(id), "posted for approval")
                    .await;
                if let Some(url) = &request.response_url {
                    let text = format!(
                        "Request #{id} to move *{}* to {} ({}) is posted in <#{}> for approval by {}. It expires in {}.",
                        plan.cluster,
                        plan.to.region,
                        plan.mode,
                        self.settings.slack.incident_channel,
                        names(&self.settings.approval.approvers),
                        crate::slack::render::duration(self.settings.approval.request_ttl)
                    );
                    if let Err(e) = self.chat.respond(url, &text, false).await {
                        warn!(error = %e, "cannot queue a reply");
                    }
                }
            }
        }
    }

    /// The replication-lag limit the plan's checks apply.
    pub fn limits(&self) -> plan::Limits {
        plan::Limits {
            lag_limit_ms: self.settings.runbook.lag_limit.as_millis() as f64,
        }
    }

    async fn plan_for(
        &self,
        c: &crate::settings::ClusterSettings,
        to: Option<&Region>,
        mode: Option<Mode>,
    ) -> Result<Plan, String> {
        let survey = survey::survey(
            self.aurora.as_ref(),
            self.metrics.as_ref(),
            self.dns.as_ref(),
            Some(self.permissions.as_ref()),
            c,
        )
        .await
        .map_err(|e| format!("cannot read global cluster {}: {e}", c.global_cluster_id))?;
        plan::make_plan(c, &survey, to, mode, self.limits()).map_err(|e| e.to_string())
    }

    async fn make_plan(&self, request: &Request) -> Result<Plan, String> {
        let c = self
            .settings
            .cluster(request.cluster.as_str())
            .ok_or_else(|| format!("cluster {} is no longer configured", request.cluster))?;
        self.plan_for(c, request.to_region.as_ref(), request.mode).await
    }

    /// `--dry-run`: the plan and its checklist, to the requester only; no request, no buttons, no run.
    async fn dry_run(
        &self,
        c: crate::settings::ClusterSettings,
        to: Option<Region>,
        mode: Option<Mode>,
        response_url: Option<String>,
    ) {
        let planned = match tokio::time::timeout(PLANNING_TIMEOUT, self.plan_for(&c, to.as_ref(), mode)).await {
            Ok(r) => r,
            Err(_) => Err(format!("AWS did not answer within {} s", PLANNING_TIMEOUT.as_secs())),
        };
        let Some(url) = response_url else { return };
        let sent = match planned {
            Ok(plan) => self.chat.respond_plan(&url, &plan).await,
            Err(reason) => {
                self.chat
                    .respond(
                        &url,
                        &format!(
                            "Dry run for {}: no plan. {}. Nothing was changed.",
                            c.name,
                            shown(&reason)
                        ),
                        false,
                    )
                    .await
            }
        };
        if let Err(e) = sent {
            warn!(error = %e, "cannot queue the dry run's answer");
        }
    }

    /// An Approve or Deny click. `Ok` says what the click did, for the clicker.
    pub async fn decide(&self, id: RequestId, user: &SlackUserId, approve: bool) -> Result<String, Refusal> {
        let action = if approve { "approve" } else { "deny" };
        let result = self.try_decide(id, user, approve).await;
        let outcome = match &result {
            Ok(_) => "done".to_owned(),
            Err(r) => format!("refused: {r}"),
        };
        self.audit(user, action, Some(id), &outcome).await;
        result
    }

    async fn try_decide(&self, id: RequestId, user: &SlackUserId, approve: bool) -> Result<String, Refusal> {
        let request = self
            .store
            .request(id)
            .await
            .map_err(store_failed)?
            .ok_or(Refusal::NoSuchRequest(id))?;
        self.refuse_if_closed(&request)?;
        let approvers = &self.settings.approval.approvers;
        let is_requester = *user == request.requested_by;
        if approve && is_requester {
            return Err(Refusal::OwnRequest);
        }
        // The requester may always withdraw; everyone else must be an approver (a directory lookup).
        if approve || !is_requester {
            let is_approver = self
                .is_one_of(user, approvers)
                .await
                .map_err(Refusal::DirectoryUnavailable)?;
            if !is_approver {
                return Err(if approve {
                    Refusal::NotApprover(names(approvers))
                } else {
                    Refusal::NotAllowedToDeny(names(approvers))
                });
            }
        }
        let decided = self
            .store
            .decide(
                id,
                approve,
                user,
                self.clock.now(),
                Step::FIRST.as_str(),
                &first_run_data(),
            )
            .await
            .map_err(store_failed)?;
        let run_id = match decided {
            Decided::Lost(now) => {
                self.refuse_if_closed(&now)?;
                // Still pending but the compare-and-set lost: it expired in between.
                return Err(Refusal::Expired(id));
            }
            Decided::Won { run_id } => run_id,
        };
        let request = self
            .store
            .request(id)
            .await
            .map_err(store_failed)?
            .ok_or(Refusal::NoSuchRequest(id))?;
        let plan = readable_plan(&request);
        if approve {
            info!(id = %id, approver = %user, "request approved");
            self.tell(
                &request,
                plan.as_ref(),
                &Stage::Running {
                    approved_by: user.clone(),
                    step: Step::FIRST,
                },
                Note::Approved { by: user.clone() },
                &crate::runbook::approved_key(id),
            )
            .await;
            if let Some(run_id) = run_id {
                self.launcher.launch(run_id);
            }
            Ok(format!(
                "You approved request #{id}. The run has started; follow it in the request's thread."
            ))
        } else {
            info!(id = %id, by = %user, "request denied");
            self.tell(
                &request,
                plan.as_ref(),
                &Stage::Denied { by: user.clone() },
                Note::Denied { by: user.clone() },
                &format!("request:{id}:denied"),
            )
            .await;
            Ok(format!("You denied request #{id}. Nothing was changed."))
        }
    }

    /// Updates the request message and replies in its thread, once each per `key`.
    async fn tell(&self, request: &Request, plan: Option<&Plan>, stage: &Stage, note: Note, key: &str) {
        if let Some(plan) = plan
            && let Err(e) = self
                .chat
                .update_request(request, plan, stage, Some(&format!("{key}:stage")))
                .await
        {
            warn!(error = %e, "cannot queue the request message update");
        }
        if let Err(e) = self.chat.note(request, &note, false, key).await {
            warn!(error = %e, "cannot queue a thread reply");
        }
    }

    fn refuse_if_closed(&self, r: &Request) -> Result<(), Refusal> {
        let by = |r: &Request| r.decided_by.as_ref().map(|u| format!(" by <@{u}>")).unwrap_or_default();
        match r.state {
            RequestState::Pending if self.clock.now() >= r.expires_at => Err(Refusal::Expired(r.id)),
            RequestState::Pending => Ok(()),
            RequestState::Planning => Err(Refusal::NotReady(r.id)),
            RequestState::Expired => Err(Refusal::Expired(r.id)),
            RequestState::Approved => Err(Refusal::AlreadyDecided {
                id: r.id,
                state: "approved",
                by: by(r),
            }),
            RequestState::Denied => Err(Refusal::AlreadyDecided {
                id: r.id,
                state: "denied",
                by: by(r),
            }),
            RequestState::Rejected => Err(Refusal::AlreadyDecided {
                id: r.id,
                state: "rejected",
                by: String::new(),
            }),
            RequestState::Cancelled => Err(Refusal::AlreadyDecided {
                id: r.id,
                state: "cancelled",
                by: by(r),
            }),
        }
    }

    /// Closes every pending request whose expiry has passed and says so on its message.
    pub async fn expire_due(&self) {
        let expired = match self.store.expire_due(self.clock.now()).await {
            Ok(e) => e,
            Err(e) => {
                warn!(error = %e, "cannot expire requests");
                return;
            }
        };
        for r in expired {
            info!(id = %r.id, "request expired");
            let plan = readable_plan(&r);
            self.tell(
                &r,
                plan.as_ref(),
                &Stage::Expired,
                Note::Expired,
                &format!("request:{}:expired", r.id),
            )
            .await;
        }
    }

    /// `/aurora cancel REQUEST`: the requester or an approver withdraws a request before a decision.
    pub async fn cancel(&self, id: RequestId, user: &SlackUserId) -> Result<String, Refusal> {
        let result = self.try_cancel(id, user).await;
        let outcome = match &result {
            Ok(_) => "done".to_owned(),
            Err(r) => format!("refused: {r}"),
        };
        self.audit(user, "cancel", Some(id), &outcome).await;
        result
    }

    async fn try_cancel(&self, id: RequestId, user: &SlackUserId) -> Result<String, Refusal> {
        let request = self
            .store
            .request(id)
            .await
            .map_err(store_failed)?
            .ok_or(Refusal::NoSuchRequest(id))?;
        let approvers = &self.settings.approval.approvers;
        if *user != request.requested_by
            && !self
                .is_one_of(user, approvers)
                .await
                .map_err(Refusal::DirectoryUnavailable)?
        {
            return Err(Refusal::NotAllowedToCancel(names(approvers)));
        }
        match self
            .store
            .cancel(id, user, self.clock.now())
            .await
            .map_err(store_failed)?
        {
            Decided::Lost(now) => {
                if now.state == RequestState::Approved {
                    return Err(Refusal::AlreadyApproved(id));
                }
                self.refuse_if_closed(&now)?;
                Err(Refusal::Internal)
            }
            Decided::Won { .. } => {
                info!(id = %id, by = %user, "request cancelled");
                let plan = readable_plan(&request);
                if request.message.is_some() {
                    self.tell(
                        &request,
                        plan.as_ref(),
                        &Stage::Cancelled { by: user.clone() },
                        Note::Cancelled { by: user.clone() },
                        &format!("request:{id}:cancelled"),
                    )
                    .await;
                }
                Ok(format!("Request #{id} is cancelled. Nothing was changed."))
            }
        }
    }

    async fn run_and_request(&self, run_id: RunId) -> Result<(crate::store::Run, Request), Refusal> {
        let run = self
            .store
            .run(run_id)
            .await
            .map_err(store_failed)?
            .ok_or(Refusal::NoSuchRun(run_id))?;
        let request = self
            .store
            .request(run.request_id)
            .await
            .map_err(store_failed)?
            .ok_or(Refusal::NoSuchRun(run_id))?;
        Ok((run, request))
    }

    fn state_name(state: crate::store::RunState) -> &'static str {
        match state {
            RunState::Running => "still running",
            RunState::NeedsAttention => "waiting for a person",
            RunState::Succeeded => "finished: it succeeded",
            RunState::Failed => "finished: it failed",
            RunState::Abandoned => "abandoned",
        }
    }

    /// `/aurora resume RUN`: a requester or an approver asks for a run that needs attention to finish;
    /// a second person approves it with a button in the run's thread.
    pub async fn ask_resume(&self, run_id: RunId, user: &SlackUserId) -> Result<String, Refusal> {
        let result = self.try_ask_resume(run_id, user).await;
        self.audit(user, &format!("resume run {run_id}"), None, &outcome_of(&result))
            .await;
        result
    }

    async fn try_ask_resume(&self, run_id: RunId, user: &SlackUserId) -> Result<String, Refusal> {
        let (run, request) = self.run_and_request(run_id).await?;
        let a = &self.settings.approval;
        let allowed = *user == request.requested_by
            || self
                .is_one_of(user, &[a.requesters.clone(), a.approvers.clone()].concat())
                .await
                .map_err(Refusal::DirectoryUnavailable)?;
        if !allowed {
            return Err(Refusal::NotAllowedToResume(names(&a.approvers)));
        }
        let asked_at = self.clock.now();
        match self
            .store
            .ask_resume(run_id, user, asked_at)
            .await
            .map_err(store_failed)?
        {
            Err(now) if now.state == RunState::NeedsAttention => Err(Refusal::ResumeAlreadyAsked {
                id: run_id,
                by: now.control.resume_asked_by.map(|u| u.to_string()).unwrap_or_default(),
            }),
            Err(now) => Err(Refusal::NotWaiting {
                id: run_id,
                state: Self::state_name(now.state),
            }),
            Ok(()) => {
                let data: RunData = run.stored_data().unwrap_or_default();
                let why = data
                    .attention
                    .as_ref()
                    .map(|at| format!(" It stopped at {}: {}.", at.step.label(), at.reason))
                    .unwrap_or_default();
                let plan = readable_plan(&request);
                let what = plan.map_or_else(
                    || "The bot checks that the target is writable, then moves the CNAMEs.".to_owned(),
                    |p| {
                        format!(
                            "The bot goes on from where it stopped: it checks that {} ({}) is writable, then moves {} and {} \
                             to it, even where its own re-check would not.",
                            p.to.cluster_id, p.to.region, p.writer_record, p.reader_record
                        )
                    },
                );
                let token = asked_at.as_millisecond();
                let note = Note::ResumeAsked {
                    run_id: run_id.get(),
                    token,
                    by: user.clone(),
                    detail: format!("{what}{why}"),
                };
                if let Err(e) = self
                    .chat
                    .note(&request, &note, false, &format!("run:{run_id}:resume-asked:{token}"))
                    .await
                {
                    warn!(error = %e, "cannot queue the resume request");
                }
                Ok(format!(
                    "You asked to resume run {run_id}. An approver other than you must approve it in the request's thread."
                ))
            }
        }
    }

    /// An Approve or Deny click on the resume request `token` (the ask's time, from the button). An
    /// approver approves, never the person who asked; that person or an approver may deny. A button
    /// of an earlier ask decides nothing.
    pub async fn decide_resume(
        &self,
        run_id: RunId,
        token: i64,
        user: &SlackUserId,
        approve: bool,
    ) -> Result<String, Refusal> {
        let result = self.try_decide_resume(run_id, token, user, approve).await;
        let action = if approve { "approve resume" } else { "deny resume" };
        self.audit(user, &format!("{action} of run {run_id}"), None, &outcome_of(&result))
            .await;
        result
    }

    async fn try_decide_resume(
        &self,
        run_id: RunId,
        token: i64,
        user: &SlackUserId,
        approve: bool,
    ) -> Result<String, Refusal> {
        let (run, request) = self.run_and_request(run_id).await?;
        let approvers = &self.settings.approval.approvers;
        let is_requester = *user == request.requested_by;
        if run.control.resume_asked_at != Some(token) && run.state == RunState::NeedsAttention {
            return Err(Refusal::NoResumeAsked(run_id));
        }
        let asker = run.control.resume_asked_by.clone();
        if approve && asker.as_ref() == Some(user) {
            return Err(Refusal::OwnResume(run_id));
        }
        // An approver approves; an approver, the one who asked, or the failover's requester may deny.
        if approve || (asker.as_ref() != Some(user) && !is_requester) {
            let ok = self
                .is_one_of(user, approvers)
                .await
                .map_err(Refusal::DirectoryUnavailable)?;
            if !ok {
                return Err(if approve {
                    Refusal::NotApprover(names(approvers))
                } else {
                    Refusal::NotAllowedToDenyResume(names(approvers))
                });
            }
        }
        match self
            .store
            .decide_resume(run_id, token, user, approve, self.clock.now())
            .await
            .map_err(store_failed)?
        {
            Err(now) if now.state == RunState::NeedsAttention => Err(Refusal::NoResumeAsked(run_id)),
            Err(now) => Err(Refusal::NotWaiting {
                id: run_id,
                state: Self::state_name(now.state),
            }),
            Ok(()) => {
                let note = Note::ResumeDecided {
                    run_id: run_id.get(),
                    by: user.clone(),
                    approved: approve,
                };
                if let Err(e) = self
                    .chat
                    .note(
                        &request,
                        &note,
                        false,
                        &format!("run:{run_id}:resume-decided:{}", self.clock.now().as_millisecond()),
                    )
                    .await
                {
                    warn!(error = %e, "cannot queue a thread reply");
                }
                Ok(if approve {
                    format!("You approved resuming run {run_id}; follow it in the request's thread.")
                } else {
                    format!("You denied resuming run {run_id}; it still needs attention.")
                })
            }
        }
    }

    /// `/aurora abandon RUN REASON`, first step: checks that `user` may, and that the run is still
    /// going; the answer asks them to confirm with a button.
    pub async fn may_abandon(&self, run_id: RunId, user: &SlackUserId) -> Result<String, Refusal> {
        let (run, request) = self.run_and_request(run_id).await?;
        let approvers = &self.settings.approval.approvers;
        if *user != request.requested_by
            && !self
                .is_one_of(user, approvers)
                .await
                .map_err(Refusal::DirectoryUnavailable)?
        {
            return Err(Refusal::NotAllowedToAbandon(names(approvers)));
        }
        if !run.state.is_open() {
            return Err(Refusal::RunEnded {
                id: run_id,
                state: Self::state_name(run.state),
            });
        }
        Ok(format!(
            "run {run_id} ({} failover, request #{}, {})",
            request.cluster,
            request.id,
            Self::state_name(run.state)
        ))
    }

    /// The confirmation click of `/aurora abandon`: stops the run's remaining steps (changing nothing
    /// in AWS), frees the cluster, records who and why.
    pub async fn abandon(&self, run_id: RunId, user: &SlackUserId, reason: &str) -> Result<String, Refusal> {
        let result = async {
            // A reason must say something (not only spaces or invisible characters).
            if !reason.chars().any(char::is_alphanumeric) {
                return Err(Refusal::NoReason(run_id));
            }
            self.may_abandon(run_id, user).await?;
            match self
                .store
                .abandon_run(run_id, user, reason, self.clock.now()).await
                .map_err(store_failed)?
            {
                Err(now) => Err(Refusal::RunEnded {
                    id: run_id,
                    state: Self::state_name(now.state),
                }),
                Ok(()) => {
                    info!(%run_id, by = %user, reason = ?reason.chars().take(200).collect::<String>(), "run abandoned");
                    let runner = self.launcher.runner.clone();
                    self.launcher.tracker.spawn(async move {
                        if let Err(e) = runner.abandoned(run_id).await {
                            warn!(error = %e, "cannot announce an abandoned run");
                        }
                    });
                    Ok(format!(
                        "You abandoned run {run_id}. The bot does nothing more for it; nothing was changed in AWS to stop it."
                    ))
                }
            }
        }
        .await;
        self.audit(
            user,
            &format!("abandon run {run_id}"),
            None,
            &match &result {
                Ok(_) => format!("done: {reason}"),
                Err(r) => format!("refused: {r}"),
            },
        )
        .await;
        result
    }

    /// The approvals whose run was not created (the bot died between the two writes): creates each
    /// run (idempotently) and launches it.
    async fn create_missing_runs(&self) {
        let approved = match self.store.requests_in(RequestState::Approved).await {
            Ok(list) => list,
            Err(e) => {
                warn!(error = %e, "cannot list approved requests");
                return;
            }
        };
        for r in approved.into_iter().flatten() {
            if !matches!(self.store.run_of_request(r.id).await, Ok(None)) {
                continue;
            }
            let at = r.decided_at.unwrap_or_else(|| self.clock.now());
            match self
                .store
                .create_run(r.id, Step::FIRST.as_str(), &first_run_data(), at)
                .await
            {
                Ok(run_id) => info!(id = %r.id, %run_id, "created the run of an approval recorded just before a stop"),
                Err(e) => warn!(error = %e, id = %r.id, "cannot create the run of an approved request"),
            }
        }
    }

    /// After a restart: plans requests that were recorded but not planned, resumes runs, and queues
    /// again (idempotently) the last messages of what closed shortly before, in case the bot died
    /// between recording a change and queuing its message.
    pub async fn resume(&self) {
        if let Err(e) = self.store.recover_locks().await {
            warn!(error = %e, "cannot check the clusters' locks");
        }
        match self.store.requests_in(RequestState::Planning).await {
            Ok(list) => {
                // A request that cannot be read is logged by the store; the others are planned.
                for r in list.into_iter().flatten() {
                    let me = self.clone();
                    tokio::spawn(async move { me.plan_request(r.id).await });
                }
            }
            Err(e) => warn!(error = %e, "cannot list requests to plan"),
        }
        self.create_missing_runs().await;
        for state in [RunState::Running, RunState::NeedsAttention] {
            match self.store.runs_in(state).await {
                Ok(runs) => {
                    for run in runs {
                        // A run whose row cannot be read is launched all the same: the runner puts it
                        // in front of people (needs attention), and only it.
                        let id = match run {
                            Ok(run) => {
                                info!(run_id = %run.id, step = %run.step, "resuming run");
                                run.id
                            }
                            Err(e) => match e.key.parse::<RunId>() {
                                Ok(id) => id,
                                Err(_) => continue,
                            },
                        };
                        self.launcher.launch(id);
                    }
                }
                Err(e) => warn!(error = %e, "cannot list runs to resume"),
            }
        }
        let day_ago = self.clock.now() - jiff::SignedDuration::from_hours(24);
        match self.store.runs_finished_since(day_ago).await {
            // A finished run only re-queues its outcome (idempotently).
            Ok(runs) => runs.iter().flatten().for_each(|run| self.launcher.launch(run.id)),
            Err(e) => warn!(error = %e, "cannot list finished runs"),
        }
        match self.store.closed_since(day_ago).await {
            Ok(list) => {
                for r in list.into_iter().flatten().filter(|r| r.message.is_some()) {
                    let plan = readable_plan(&r);
                    let Some(by) = r.decided_by.clone() else {
                        if r.state == RequestState::Expired {
                            self.tell(
                                &r,
                                plan.as_ref(),
                                &Stage::Expired,
                                Note::Expired,
                                &format!("request:{}:expired", r.id),
                            )
                            .await;
                        }
                        continue;
                    };
                    let (stage, note, what) = match r.state {
                        RequestState::Denied => (Stage::Denied { by: by.clone() }, Note::Denied { by }, "denied"),
                        RequestState::Cancelled => {
                            (Stage::Cancelled { by: by.clone() }, Note::Cancelled { by }, "cancelled")
                        }
                        _ => continue,
                    };
                    self.tell(&r, plan.as_ref(), &stage, note, &format!("request:{}:{what}", r.id))
                        .await;
                }
            }
            Err(e) => warn!(error = %e, "cannot list closed requests"),
        }
    }
}
