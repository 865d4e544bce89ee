//! Requests and decisions: who may ask, who may approve, planning a request, deciding it exactly once,
//! expiring it, and starting its run. Works over the engine's ports; the Slack routes call in with
//! already-verified, already-parsed input. What this returns (`Done`, `Refusal`, `RequestReply`,
//! `AbandonTarget`) and what it sends (`report::Answer`, `Note`, `Stage`) are typed values: the
//! Slack adapter (`slack::render`) words them. Nothing here writes Slack markup.
//!
//! Rules kept here:
//! - only a requester may ask; only an approver may approve, and never their own request;
//! - an approver or the requester may deny;
//! - a decision is a compare-and-set in the store: of any number of clicks, one decides;
//! - nothing is decided after expiry; an expired request is closed on its own;
//! - every attempt, allowed or refused, is audited.

use crate::ports::{Aurora, Clock, Directory, Dns, Metrics};
use crate::runbook::plan::{self, Plan, Unplanned};
use crate::runbook::report::{Answer, Chat, Note, ResumeTarget, Stage};
use crate::runbook::survey;
use crate::runbook::{RunData, Runner, Step};
use crate::settings::Settings;
use crate::store::{Decided, NewRequest, Request, RequestId, RequestState, RunId, RunState, Store};
use crate::types::{ChannelId, ClusterName, Mode, Person, Principal, Region, SlackUserId};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

/// How long planning may read AWS before the request is rejected.
const PLANNING_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a command or click changed nothing, as data: `slack::render::refusal` words it for the person
/// (only them). `Display` is a short plain phrase, for logs and the audit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no request #{0}")]
    NoSuchRequest(RequestId),
    #[error("own request")]
    OwnRequest,
    /// Not an approver; the approvers are listed.
    #[error("not an approver")]
    NotApprover(Vec<Principal>),
    #[error("neither an approver nor the requester")]
    NotAllowedToDeny(Vec<Principal>),
    #[error("request #{id} already {}", state.as_str())]
    AlreadyDecided {
        id: RequestId,
        state: RequestState,
        by: Option<Person>,
    },
    #[error("request #{0} expired")]
    Expired(RequestId),
    #[error("request #{0} still being prepared")]
    NotReady(RequestId),
    #[error("user groups could not be checked: {0}")]
    DirectoryUnavailable(String),
    #[error("neither the requester nor an approver")]
    NotAllowedToCancel(Vec<Principal>),
    #[error("request #{0} already approved")]
    AlreadyApproved(RequestId),
    #[error("internal error")]
    Internal,
    #[error("no run {0}")]
    NoSuchRun(RunId),
    #[error("neither a requester nor an approver")]
    NotAllowedToResume(Vec<Principal>),
    #[error("neither the requester nor an approver")]
    NotAllowedToAbandon(Vec<Principal>),
    #[error("run {id} is {}", state.as_str())]
    NotWaiting { id: RunId, state: RunState },
    /// Someone (`by`) already asked; it waits for a second person.
    #[error("resuming run {id} already asked")]
    ResumeAlreadyAsked { id: RunId, by: Option<SlackUserId> },
    #[error("own resume of run {0}")]
    OwnResume(RunId),
    #[error("no resume of run {0} asked")]
    NoResumeAsked(RunId),
    #[error("run {id} already ended ({})", state.as_str())]
    RunEnded { id: RunId, state: RunState },
    #[error("not allowed to deny the resume")]
    NotAllowedToDenyResume(Vec<Principal>),
    #[error("no reason given for abandoning run {0}")]
    NoReason(RunId),
    /// This person's approval is counted already: `have` of the `need` the policy asks.
    #[error("already approved request #{id} ({have} of {need})")]
    AlreadyApprovedByYou { id: RequestId, have: usize, need: usize },
}

mod break_glass;
mod pending;
pub use break_glass::{BreakGlass, BreakGlassRefusal, Started};
mod policy;
mod rebuild;
pub use pending::{Actionable, PendingList, Role};
pub use policy::{Given, Progress, action_name, check_given};

/// What a command or click did, as data: `slack::render::done` words it for the person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    Approved(RequestId),
    /// An approval counted towards the `need` a policy asks; `have` so far.
    ApprovalCounted {
        id: RequestId,
        have: usize,
        need: usize,
    },
    Denied(RequestId),
    Cancelled(RequestId),
    ResumeAsked(RunId),
    ResumeApproved(RunId),
    ResumeDenied(RunId),
    Abandoned(RunId),
}

/// The run `/aurora abandon` would stop, for the confirmation it asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbandonTarget {
    pub run: RunId,
    pub cluster: ClusterName,
    pub request: RequestId,
    pub state: RunState,
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
    /// Refused, with the reason (`slack::render::request_refusal` words it).
    Refused(RequestRefusal),
}

/// Why a `/aurora failover` was not recorded. `Display` is a short plain phrase for the audit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestRefusal {
    #[error("not a requester")]
    NotRequester(Vec<Principal>),
    #[error("user groups could not be checked: {0}")]
    DirectoryUnavailable(String),
    #[error("the request could not be recorded")]
    NotRecorded,
    /// The cluster already has a request open or a run going.
    #[error("{cluster} already has request #{} open or running", existing.id)]
    OneAtATime {
        cluster: ClusterName,
        existing: RequestLink,
    },
    /// The policy asks for `--reason`.
    #[error("{action} of {cluster} needs a reason: add --reason \"why\"")]
    ReasonRequired { cluster: ClusterName, action: &'static str },
    /// The policy asks for `--ticket` matching `pattern`.
    #[error("{action} of {cluster} needs a ticket matching {pattern}: add --ticket")]
    TicketRequired {
        cluster: ClusterName,
        action: &'static str,
        pattern: String,
    },
    /// `--ticket` does not match the policy's `pattern`.
    #[error("ticket {ticket} does not match {pattern}, which {action} of {cluster} needs")]
    TicketMismatch {
        cluster: ClusterName,
        action: &'static str,
        ticket: String,
        pattern: String,
    },
}

/// What `/aurora failover` asks for, beyond the cluster.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ask<'a> {
    /// `--to`.
    pub to: Option<&'a Region>,
    /// `--mode`.
    pub mode: Option<Mode>,
    /// `--dry-run`.
    pub dry_run: bool,
    /// `--reason` and `--ticket`.
    pub given: Given<'a>,
}

/// Where a request's message is: posted (its timestamp, and the workspace's domain for a link), or
/// not yet (then the channel is named).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLink {
    pub id: RequestId,
    pub channel: ChannelId,
    /// The workspace's domain and the message's `ts`, when both are known.
    pub posted: Option<(String, String)>,
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
    /// The database probe (`Some` when a cluster has `[clusters.probe]`): the target's reader endpoint
    /// is probed, read-only, when a plan is made.
    pub database: Option<Arc<dyn crate::ports::DatabaseProbe>>,
    pub chat: Arc<dyn Chat>,
    pub directory: Arc<dyn Directory>,
    pub clock: Arc<dyn Clock>,
    pub launcher: Launcher,
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

/// A request's mode as a metric label: the one asked for or planned, or `auto`.
fn mode_label(mode: Option<Mode>) -> &'static str {
    mode.map_or("auto", Mode::as_str)
}

/// The audit's outcome of a recorded request: its reason and ticket, if given.
fn recorded(given: Given<'_>) -> String {
    let mut out = "recorded".to_owned();
    if let Some(r) = given.reason {
        out.push_str(&format!("; reason: {r}"));
    }
    if let Some(t) = given.ticket {
        out.push_str(&format!("; ticket: {t}"));
    }
    out
}

/// "done", or "refused: why", for the audit.
fn outcome_of<T>(result: &Result<T, Refusal>) -> String {
    match result {
        Ok(_) => "done".to_owned(),
        Err(r) => format!("refused: {r}"),
    }
}

/// An error out of planning, for the answer: AWS did not answer in time.
fn planning_timed_out() -> Unplanned {
    Unplanned::Other(format!("AWS did not answer within {} s", PLANNING_TIMEOUT.as_secs()))
}

impl Approvals {
    /// The bot's Prometheus metrics (the runner's).
    pub fn telemetry(&self) -> &crate::telemetry::Telemetry {
        &self.launcher.runner.telemetry
    }

    /// Counts request `r` reaching `outcome` in the metrics, under its cluster and mode.
    fn count(&self, r: &Request, outcome: &'static str) {
        self.telemetry()
            .request(r.cluster.as_str(), mode_label(r.mode), outcome);
    }

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

    /// `Ok` when `user` is one of `policy`'s approvers; otherwise the refusal `not` makes of the list.
    async fn require_approver(
        &self,
        policy: &crate::settings::Policy,
        user: &SlackUserId,
        not: fn(Vec<Principal>) -> Refusal,
    ) -> Result<(), Refusal> {
        let approvers = &policy.approvers;
        match self.is_one_of(user, approvers).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(not(approvers.clone())),
            Err(e) => Err(Refusal::DirectoryUnavailable(e)),
        }
    }

    async fn audit(
        &self,
        user: &(dyn std::fmt::Display + Sync),
        action: &str,
        request: Option<RequestId>,
        outcome: &str,
    ) {
        if let Err(e) = self
            .store
            .audit(self.clock.now(), &user.to_string(), action, request, outcome)
            .await
        {
            warn!(error = %e, "cannot write the audit log");
        }
    }

    /// `/aurora failover CLUSTER [--to REGION] [--mode MODE]`: checks, records, and starts planning.
    /// `cluster` is a configured cluster and `to` one of its Regions (the command parser says so before
    /// this is called). A refusal is audited.
    pub async fn request_failover(
        &self,
        user: &SlackUserId,
        c: &crate::settings::ClusterSettings,
        ask: Ask<'_>,
        origin: Origin<'_>,
    ) -> RequestReply {
        let (cluster, to, mode) = (&c.name, ask.to.cloned(), ask.mode);
        let verb = if mode == Some(Mode::Rebuild) {
            "rebuild"
        } else {
            "failover"
        };
        let action = format!("request {verb} {cluster}");
        let allowed = match self.may_request(user, cluster, mode).await {
            // A dry run asks nothing of anyone: no reason or ticket is needed to see a plan.
            Ok(()) if !ask.dry_run => check_given(self.policy(cluster, mode), cluster, mode, ask.given),
            other => other,
        };
        let reply = match allowed {
            Ok(()) if ask.dry_run => {
                self.audit(user, &format!("dry run {cluster}"), None, "planning").await;
                let me = self.clone();
                let (c, url) = (c.clone(), origin.response_url.map(str::to_owned));
                tokio::spawn(async move { me.dry_run(c, to, mode, url).await });
                return RequestReply::DryRun;
            }
            Ok(()) => self.record_request(Person::Slack(user.clone()), c, &ask, origin).await,
            Err(why) => Err(why),
        };
        match reply {
            Ok(id) => {
                self.telemetry()
                    .request(cluster.as_str(), mode_label(mode), "requested");
                self.audit(user, &action, Some(id), &recorded(ask.given)).await;
                let me = self.clone();
                tokio::spawn(async move { me.plan_request(id).await });
                RequestReply::Accepted { id }
            }
            Err(why) => {
                self.audit(user, &action, None, &format!("refused: {why}")).await;
                RequestReply::Refused(why)
            }
        }
    }

    /// Records the request (taking its cluster), or says why not.
    async fn record_request(
        &self,
        person: Person,
        c: &crate::settings::ClusterSettings,
        ask: &Ask<'_>,
        origin: Origin<'_>,
    ) -> Result<RequestId, RequestRefusal> {
        let now = self.clock.now();
        let ttl = jiff::SignedDuration::try_from(self.settings.approval.request_ttl).unwrap_or_default();
        let new = NewRequest {
            cluster: c.name.clone(),
            mode: ask.mode,
            requested_by: person,
            to_region: ask.to.cloned(),
            origin_channel: origin.channel.to_owned(),
            response_url: origin.response_url.map(str::to_owned),
            requested_at: now,
            expires_at: now + ttl,
            reason: ask.given.reason.map(str::to_owned),
            ticket: ask.given.ticket.map(str::to_owned),
        };
        match self.store.create_request(&new).await {
            Err(e) => {
                warn!(error = %e, "cannot record a request");
                Err(RequestRefusal::NotRecorded)
            }
            Ok(Err(existing)) => Err(RequestRefusal::OneAtATime {
                cluster: c.name.clone(),
                existing: self.link_to(existing, origin.team_domain).await,
            }),
            Ok(Ok(id)) => Ok(id),
        }
    }

    /// Where request `id`'s message is, for a link to it (or a mention of the channel when the message
    /// is not posted yet, or the workspace's domain is unknown).
    async fn link_to(&self, id: RequestId, team_domain: Option<&str>) -> RequestLink {
        let posted = match self.store.request(id).await {
            Ok(Some(Request { message: Some(m), .. })) => self.store.outbox_item(m).await.ok().flatten(),
            _ => None,
        }
        .and_then(|item| item.delivered_ts);
        RequestLink {
            id,
            channel: self.settings.slack.incident_channel.clone(),
            posted: match (posted, team_domain.filter(|d| !d.is_empty())) {
                (Some(ts), Some(domain)) => Some((domain.to_owned(), ts)),
                _ => None,
            },
        }
    }

    /// Answers the person who typed the command, through its response_url, if it has one.
    async fn answer(&self, response_url: Option<&str>, answer: Answer) {
        if let Some(url) = response_url
            && let Err(e) = self.chat.respond(url, &answer, false).await
        {
            warn!(error = %e, "cannot queue a reply");
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
            Ok(Ok(plan)) => match self.planned_mode_allowed(&request, plan.mode).await {
                Ok(()) => Ok(plan),
                Err(why) => Err(Unplanned::Other(format!("the bot chose {}, and {why}", plan.mode))),
            },
            Ok(Err(e)) => Err(e),
            Err(_) => Err(planning_timed_out()),
        };
        match outcome {
            Err(reason) => self.reject(&request, reason).await,
            Ok(plan) => self.post_for_approval(&request, &plan).await,
        }
    }

    /// A request that could not be planned: recorded as rejected, audited, and told to the requester.
    async fn reject(&self, request: &Request, reason: Unplanned) {
        let id = request.id;
        info!(id = %id, %reason, "request rejected");
        self.count(request, "rejected");
        if let Err(e) = self.store.mark_rejected(id, &reason.to_string()).await {
            warn!(error = %e, "cannot record a rejection");
        }
        self.audit(&request.requested_by, "plan", Some(id), &format!("rejected: {reason}"))
            .await;
        let answer = Answer::NotPrepared {
            id,
            cluster: request.cluster.clone(),
            reason,
        };
        self.answer(request.response_url.as_deref(), answer).await;
    }

    /// Posts a planned request for approval and records its plan; tells the requester where it is.
    async fn post_for_approval(&self, request: &Request, plan: &Plan) {
        let id = request.id;
        let plan_json = match serde_json::to_string(plan) {
            Ok(j) => j,
            Err(e) => {
                warn!(error = %e, "cannot serialize a plan");
                return;
            }
        };
        let message = match self.chat.post_request(request, plan).await {
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
            Ok(false) => return self.cancelled_while_planning(id, plan).await,
            Err(e) => {
                warn!(error = %e, "cannot record a plan");
                return;
            }
        }
        self.audit(&request.requested_by, "plan", Some(id), "posted for approval")
            .await;
        let answer = Answer::Posted {
            id,
            cluster: plan.cluster.clone(),
            to: plan.to.region.clone(),
            mode: plan.mode,
            channel: self.settings.slack.incident_channel.clone(),
            approvers: self.policy(&request.cluster, Some(plan.mode)).approvers.clone(),
            expires_in: self.settings.approval.request_ttl,
        };
        if let Some(url) = request.response_url.as_deref()
            && let Err(e) = self.chat.respond_after(url, &answer, message).await
        {
            warn!(error = %e, "cannot queue a reply");
        }
    }

    /// A request cancelled while it was being prepared: takes the buttons off what was posted.
    async fn cancelled_while_planning(&self, id: RequestId, plan: &Plan) {
        if let Ok(Some(now)) = self.store.request(id).await
            && now.state == RequestState::Cancelled
            && let Some(by) = now.decided_by.clone()
        {
            self.tell(
                &now,
                Some(plan),
                &Stage::Cancelled { by: by.clone() },
                Note::Cancelled { by },
                &format!("request:{id}:cancelled"),
            )
            .await;
        }
    }

    /// The replication-lag limit the plan's checks apply.
    pub fn limits(&self) -> plan::Limits {
        plan::Limits {
            lag_limit_ms: self.settings.runbook.lag_limit.as_millis() as f64,
        }
    }

    /// Surveys cluster `c` (the global cluster the config names, or the one recorded for it while
    /// the config still names the old one: `records::effective`) and makes the plan.
    async fn plan_for(
        &self,
        c: &crate::settings::ClusterSettings,
        to: Option<&Region>,
        mode: Option<Mode>,
    ) -> Result<Plan, Unplanned> {
        // The global cluster recorded by a rebuild, while the config still names the old one.
        let c = &crate::records::effective_in(self.store.as_ref(), c)
            .await
            .map_err(|e| Unplanned::Other(format!("cannot read the recorded global cluster of {}: {e}", c.name)))?;
        if mode == Some(Mode::Rebuild) {
            return self.plan_rebuild(c, to).await;
        }
        let mut survey = survey::survey(
            self.aurora.as_ref(),
            self.metrics.as_ref(),
            self.dns.as_ref(),
            Some(self.permissions.as_ref()),
            c,
        )
        .await
        .map_err(|e| Unplanned::Other(format!("cannot read global cluster {}: {e}", c.global_cluster_id)))?;
        if let Some(database) = &self.database {
            survey::probe_secondaries(database.as_ref(), c, &mut survey).await;
        }
        plan::make_plan(c, &survey, to, mode, self.limits()).map_err(Unplanned::Plan)
    }

    async fn make_plan(&self, request: &Request) -> Result<Plan, Unplanned> {
        let c = self
            .settings
            .cluster(request.cluster.as_str())
            .ok_or_else(|| Unplanned::Other(format!("cluster {} is no longer configured", request.cluster)))?;

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
            Err(_) => Err(planning_timed_out()),
        };
        let Some(url) = response_url else { return };
        let sent = match planned {
            Ok(plan) => self.chat.respond_plan(&url, &plan).await,
            Err(reason) => {
                let answer = Answer::NoPlan {
                    cluster: c.name,
                    reason,
                };
                self.chat.respond(&url, &answer, false).await
            }
        };
        if let Err(e) = sent {
            warn!(error = %e, "cannot queue the dry run's answer");
        }
    }

    /// An Approve or Deny click. `Ok` says what the click did, for the clicker.
    pub async fn decide(&self, id: RequestId, user: &SlackUserId, approve: bool) -> Result<Done, Refusal> {
        let action = if approve { "approve" } else { "deny" };
        let result = self.try_decide(id, user, approve, None).await;
        let outcome = match &result {
            Ok(Done::ApprovalCounted { have, need, .. }) => format!("counted ({have} of {need})"),
            other => outcome_of(other),
        };
        self.audit(user, action, Some(id), &outcome).await;
        result
    }

    async fn request_named(&self, id: RequestId) -> Result<Request, Refusal> {
        self.store
            .request(id)
            .await
            .map_err(store_failed)?
            .ok_or(Refusal::NoSuchRequest(id))
    }

    /// Decides request `id`; `reason` (a denier's) is recorded with a denial and shown with it.
    async fn try_decide(
        &self,
        id: RequestId,
        user: &SlackUserId,
        approve: bool,
        reason: Option<&str>,
    ) -> Result<Done, Refusal> {
        let request = self.request_named(id).await?;
        self.refuse_if_closed(&request)?;
        self.may_decide(&request, user, approve).await?;
        if approve && let Some(counted) = self.count_approval(&request, user).await? {
            return Ok(counted);
        }
        let decided = self
            .store
            .decide(
                id,
                approve,
                &Person::Slack(user.clone()),
                self.clock.now(),
                Step::FIRST.as_str(),
                &first_run_data(),
                reason.filter(|_| !approve),
            )
            .await
            .map_err(store_failed)?;
        let run_id = match decided {
            Decided::Lost(now) => {
                // Another click decided it at the same moment (another approver's, which made the
                // approvals enough too): it is that click's decision, said as such.
                self.refuse_if_closed(&now)?;
                // Still pending but the compare-and-set lost: it expired in between.
                return Err(Refusal::Expired(id));
            }
            Decided::Won { run_id } => run_id,
        };
        let request = self.request_named(id).await?;
        self.count(&request, if approve { "approved" } else { "denied" });
        self.announce_decision(&request, user, approve, reason).await;
        if approve {
            match run_id {
                Some(run_id) => self.launcher.launch(run_id),
                None => self.create_run_later(id),
            }
            Ok(Done::Approved(id))
        } else {
            Ok(Done::Denied(id))
        }
    }

    /// Whether `user` may approve (an approver, not the requester) or deny (an approver, or the
    /// requester, who may always withdraw) `request`.
    async fn may_decide(&self, request: &Request, user: &SlackUserId, approve: bool) -> Result<(), Refusal> {
        let is_requester = *user == request.requested_by;
        if approve && is_requester {
            return Err(Refusal::OwnRequest);
        }
        // Everyone but the requester withdrawing must be an approver (a directory lookup).
        if approve || !is_requester {
            let not = if approve {
                Refusal::NotApprover
            } else {
                Refusal::NotAllowedToDeny
            };
            self.require_approver(self.policy_of(request), user, not).await?;
        }
        Ok(())
    }

    /// Shows a decision on the request message and in its thread (a denial with its `reason`, if any).
    async fn announce_decision(&self, request: &Request, user: &SlackUserId, approve: bool, reason: Option<&str>) {
        let (id, plan) = (request.id, readable_plan(request));
        if approve {
            info!(id = %id, approver = %user, "request approved");
            let stage = Stage::Running {
                approved_by: Person::Slack(user.clone()),
                step: Step::FIRST,
            };
            let note = Note::Approved {
                by: Person::Slack(user.clone()),
            };
            self.tell(request, plan.as_ref(), &stage, note, &crate::runbook::approved_key(id))
                .await;
        } else {
            info!(id = %id, by = %user, "request denied");
            let reason = reason.map(str::to_owned);
            let stage = Stage::Denied {
                by: Person::Slack(user.clone()),
                reason: reason.clone(),
            };
            let note = Note::Denied {
                by: Person::Slack(user.clone()),
                reason,
            };
            self.tell(request, plan.as_ref(), &stage, note, &format!("request:{id}:denied"))
                .await;
        }
    }

    /// Updates the request message and replies in its thread, once each per `key`.
    async fn tell(&self, request: &Request, plan: Option<&Plan>, stage: &Stage, note: Note, key: &str) {
        if let Some(plan) = plan
            && let Err(e) = self
                .chat
                .update_request(request, plan, stage, Some(&format!("{key}:stage")), None)
                .await
        {
            warn!(error = %e, "cannot queue the request message update");
        }
        if let Err(e) = self.chat.note(request, &note, false, key, None).await {
            warn!(error = %e, "cannot queue a thread reply");
        }
    }

    fn refuse_if_closed(&self, r: &Request) -> Result<(), Refusal> {
        let decided = |state| Refusal::AlreadyDecided {
            id: r.id,
            state,
            by: r.decided_by.clone(),
        };
        match r.state {
            RequestState::Pending if self.clock.now() >= r.expires_at => Err(Refusal::Expired(r.id)),
            RequestState::Pending => Ok(()),
            RequestState::Planning => Err(Refusal::NotReady(r.id)),
            RequestState::Expired => Err(Refusal::Expired(r.id)),
            RequestState::Rejected => Err(Refusal::AlreadyDecided {
                id: r.id,
                state: RequestState::Rejected,
                by: None,
            }),
            state @ (RequestState::Approved | RequestState::Denied | RequestState::Cancelled) => Err(decided(state)),
        }
    }

    /// Expires due requests every `tick` (`expire_due`) until `stop` is cancelled. A late tick is
    /// not made up for: the next one comes a whole `tick` after it.
    pub async fn expire_every(&self, tick: std::time::Duration, stop: CancellationToken) {
        let mut tick = tokio::time::interval(tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => self.expire_due().await,
            }
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
            self.count(&r, "expired");
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
    pub async fn cancel(&self, id: RequestId, user: &SlackUserId) -> Result<Done, Refusal> {
        let result = self.try_cancel(id, user).await;
        self.audit(user, "cancel", Some(id), &outcome_of(&result)).await;
        result
    }

    async fn try_cancel(&self, id: RequestId, user: &SlackUserId) -> Result<Done, Refusal> {
        let request = self.request_named(id).await?;
        if *user != request.requested_by {
            self.require_approver(self.policy_of(&request), user, Refusal::NotAllowedToCancel)
                .await?;
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
                self.count(&request, "cancelled");
                let plan = readable_plan(&request);
                if request.message.is_some() {
                    self.tell(
                        &request,
                        plan.as_ref(),
                        &Stage::Cancelled {
                            by: Person::Slack(user.clone()),
                        },
                        Note::Cancelled {
                            by: Person::Slack(user.clone()),
                        },
                        &format!("request:{id}:cancelled"),
                    )
                    .await;
                }
                Ok(Done::Cancelled(id))
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

    /// `/aurora resume RUN`: a requester or an approver asks for a run that needs attention to finish;
    /// a second person approves it with a button in the run's thread.
    pub async fn ask_resume(&self, run_id: RunId, user: &SlackUserId) -> Result<Done, Refusal> {
        let result = self.try_ask_resume(run_id, user).await;
        self.audit(user, &format!("resume run {run_id}"), None, &outcome_of(&result))
            .await;
        result
    }

    async fn try_ask_resume(&self, run_id: RunId, user: &SlackUserId) -> Result<Done, Refusal> {
        let (run, request) = self.run_and_request(run_id).await?;
        let a = &self.settings.approval;
        let allowed = *user == request.requested_by
            || self
                .is_one_of(user, &[a.requesters.clone(), a.approvers.clone()].concat())
                .await
                .map_err(Refusal::DirectoryUnavailable)?;
        if !allowed {
            return Err(Refusal::NotAllowedToResume(a.approvers.clone()));
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
                by: now.control.resume_asked_by,
            }),
            Err(now) => Err(Refusal::NotWaiting {
                id: run_id,
                state: now.state,
            }),
            Ok(()) => {
                self.announce_resume_ask(&run, &request, user, asked_at.as_millisecond())
                    .await;
                Ok(Done::ResumeAsked(run_id))
            }
        }
    }

    /// Asks, in the run's thread, for a second person to approve resuming the run (`token` names the
    /// ask), with what resuming will do and what stopped the run.
    async fn announce_resume_ask(&self, run: &crate::store::Run, request: &Request, user: &SlackUserId, token: i64) {
        let data: RunData = run.stored_data().unwrap_or_default();
        let target = readable_plan(request).map(|p| ResumeTarget {
            cluster_id: p.to.cluster_id,
            region: p.to.region,
            writer_record: p.writer_record,
            reader_record: p.reader_record,
        });
        let note = Note::ResumeAsked {
            run_id: run.id,
            token,
            by: user.clone(),
            target,
            stopped: data.attention.map(|at| (at.step, at.reason)),
        };
        let key = format!("run:{}:resume-asked:{token}", run.id);
        if let Err(e) = self.chat.note(request, &note, false, &key, None).await {
            warn!(error = %e, "cannot queue the resume request");
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
    ) -> Result<Done, Refusal> {
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
    ) -> Result<Done, Refusal> {
        let (run, request) = self.run_and_request(run_id).await?;
        if run.control.resume_asked_at != Some(token) && run.state == RunState::NeedsAttention {
            return Err(Refusal::NoResumeAsked(run_id));
        }
        self.may_decide_resume(&run, &request, user, approve).await?;
        match self
            .store
            .decide_resume(run_id, token, user, approve, self.clock.now())
            .await
            .map_err(store_failed)?
        {
            Err(now) if now.state == RunState::NeedsAttention => Err(Refusal::NoResumeAsked(run_id)),
            Err(now) => Err(Refusal::NotWaiting {
                id: run_id,
                state: now.state,
            }),
            Ok(()) => {
                let note = Note::ResumeDecided {
                    run_id,
                    by: user.clone(),
                    approved: approve,
                };
                let key = format!("run:{run_id}:resume-decided:{}", self.clock.now().as_millisecond());
                if let Err(e) = self.chat.note(&request, &note, false, &key, None).await {
                    warn!(error = %e, "cannot queue a thread reply");
                }
                Ok(if approve {
                    Done::ResumeApproved(run_id)
                } else {
                    Done::ResumeDenied(run_id)
                })
            }
        }
    }

    /// An approver approves a resume, never the one who asked; an approver, the one who asked, or the
    /// failover's requester may deny it.
    async fn may_decide_resume(
        &self,
        run: &crate::store::Run,
        request: &Request,
        user: &SlackUserId,
        approve: bool,
    ) -> Result<(), Refusal> {
        let asker = run.control.resume_asked_by.as_ref();
        if approve && asker == Some(user) {
            return Err(Refusal::OwnResume(run.id));
        }
        if approve || (asker != Some(user) && *user != request.requested_by) {
            let not = if approve {
                Refusal::NotApprover
            } else {
                Refusal::NotAllowedToDenyResume
            };
            self.require_approver(self.policy_of(request), user, not).await?;
        }
        Ok(())
    }

    /// `/aurora abandon RUN REASON`, first step: checks that `user` may, and that the run is still
    /// going; the answer asks them to confirm with a button.
    pub async fn may_abandon(&self, run_id: RunId, user: &SlackUserId) -> Result<AbandonTarget, Refusal> {
        let (run, request) = self.run_and_request(run_id).await?;
        if *user != request.requested_by {
            self.require_approver(self.policy_of(&request), user, Refusal::NotAllowedToAbandon)
                .await?;
        }
        if !run.state.is_open() {
            return Err(Refusal::RunEnded {
                id: run_id,
                state: run.state,
            });
        }
        Ok(AbandonTarget {
            run: run_id,
            cluster: request.cluster,
            request: request.id,
            state: run.state,
        })
    }

    /// The confirmation click of `/aurora abandon`: stops the run's remaining steps (changing nothing
    /// in AWS), frees the cluster, records who and why.
    pub async fn abandon(&self, run_id: RunId, user: &SlackUserId, reason: &str) -> Result<Done, Refusal> {
        let result = self.try_abandon(run_id, user, reason).await;
        let outcome = match &result {
            Ok(_) => format!("done: {reason}"),
            Err(r) => format!("refused: {r}"),
        };
        self.audit(user, &format!("abandon run {run_id}"), None, &outcome).await;
        result
    }

    async fn try_abandon(&self, run_id: RunId, user: &SlackUserId, reason: &str) -> Result<Done, Refusal> {
        // A reason must say something (not only spaces or invisible characters).
        if !reason.chars().any(char::is_alphanumeric) {
            return Err(Refusal::NoReason(run_id));
        }
        self.may_abandon(run_id, user).await?;
        if let Err(now) = self
            .store
            .abandon_run(run_id, &Person::Slack(user.clone()), reason, self.clock.now())
            .await
            .map_err(store_failed)?
        {
            return Err(Refusal::RunEnded {
                id: run_id,
                state: now.state,
            });
        }
        info!(%run_id, by = %user, reason = ?reason.chars().take(200).collect::<String>(), "run abandoned");
        let runner = self.launcher.runner.clone();
        self.launcher.tracker.spawn(async move {
            if let Err(e) = runner.abandoned(run_id).await {
                warn!(error = %e, "cannot announce an abandoned run");
            }
        });
        Ok(Done::Abandoned(run_id))
    }

    /// An approval whose run the store could not create just now: creates it (idempotently) with
    /// backoff until the store takes it or the bot stops (then the next start creates it), and
    /// launches it.
    fn create_run_later(&self, id: RequestId) {
        let me = self.clone();
        let stop = self.launcher.runner.shutdown.clone();
        tokio::spawn(async move {
            let mut pause = std::time::Duration::from_secs(1);
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(pause) => {}
                }
                let at = me.clock.now();
                match me
                    .store
                    .create_run(id, Step::FIRST.as_str(), &first_run_data(), at)
                    .await
                {
                    Ok(run_id) => {
                        info!(%id, %run_id, "created the run of an approval");
                        me.launcher.launch(run_id);
                        return;
                    }
                    Err(e) => warn!(error = %e, %id, "cannot create the run of an approved request yet"),
                }
                pause = (pause * 2).min(std::time::Duration::from_secs(30));
            }
        });
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
        // A lock whose request was never recorded is this bot's own crash only when no other bot
        // shares the store (another may be between taking a lock and recording its request).
        if self.settings.store.exclusive()
            && let Err(e) = self.store.recover_locks().await
        {
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
        self.resume_open_runs().await;
        let day_ago = self.clock.now() - jiff::SignedDuration::from_hours(24);
        match self.store.runs_finished_since(day_ago).await {
            // A finished run only re-queues its outcome (idempotently).
            Ok(runs) => runs.iter().flatten().for_each(|run| self.launcher.launch(run.id)),
            Err(e) => warn!(error = %e, "cannot list finished runs"),
        }
        self.retell_closed_since(day_ago).await;
    }

    /// Every `every` (the lease renewal interval), until `stop`: launches the open runs this process
    /// does not execute. Each launch executes only if the run's cluster lease is free: that takes a
    /// run over from an instance that died or lost the store (its lease expired), and does nothing
    /// while the other instance keeps its lease.
    pub async fn take_over_every(&self, every: std::time::Duration, stop: CancellationToken) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await; // the first tick is now: `resume` has just launched them
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            // A run younger than a lease is left to the bot that approved it (it is taking it up);
            // if that bot died before it could, its run is taken over as late as a lease runs out.
            let young = self.clock.now() - jiff::SignedDuration::try_from(self.settings.lease.ttl).unwrap_or_default();
            for state in [RunState::Running, RunState::NeedsAttention] {
                match self.store.runs_in(state).await {
                    Ok(runs) => runs
                        .iter()
                        .flatten()
                        .filter(|run| run.started_at <= young && !self.launcher.runner.executing(run.id))
                        .for_each(|run| self.launcher.launch(run.id)),
                    Err(e) => warn!(error = %e, "cannot list the open runs to take over"),
                }
            }
        }
    }

    /// Launches every run still running or needing attention.
    async fn resume_open_runs(&self) {
        for state in [RunState::Running, RunState::NeedsAttention] {
            let runs = match self.store.runs_in(state).await {
                Ok(runs) => runs,
                Err(e) => {
                    warn!(error = %e, "cannot list runs to resume");
                    continue;
                }
            };
            for run in runs {
                // A run whose row cannot be read is launched all the same: the runner puts it in
                // front of people (needs attention), and only it.
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
    }

    /// Queues again (idempotently) the last message of each request closed (expired, denied,
    /// cancelled) since `since`.
    async fn retell_closed_since(&self, since: jiff::Timestamp) {
        let list = match self.store.closed_since(since).await {
            Ok(list) => list,
            Err(e) => {
                warn!(error = %e, "cannot list closed requests");
                return;
            }
        };
        for r in list.into_iter().flatten().filter(|r| r.message.is_some()) {
            let (stage, note, what) = match (r.state, r.decided_by.clone()) {
                (RequestState::Expired, None) => (Stage::Expired, Note::Expired, "expired"),
                (RequestState::Denied, Some(by)) => {
                    let reason = r.note.clone();
                    let stage = Stage::Denied {
                        by: by.clone(),
                        reason: reason.clone(),
                    };
                    (stage, Note::Denied { by, reason }, "denied")
                }
                (RequestState::Cancelled, Some(by)) => {
                    (Stage::Cancelled { by: by.clone() }, Note::Cancelled { by }, "cancelled")
                }
                _ => continue,
            };
            let plan = readable_plan(&r);
            self.tell(&r, plan.as_ref(), &stage, note, &format!("request:{}:{what}", r.id))
                .await;
        }
    }
}
