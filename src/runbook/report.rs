//! What the engine has to say, as data: the stage shown on the request message, the notes posted in
//! its thread, and the answers sent to the person who typed a command. The Slack adapter
//! (`slack::render`) words and renders them; the engine never formats for Slack. `Chat` is the port
//! the engine says them through (implemented by `slack::chat`).

use super::Step;
use super::plan::{Plan, Unplanned};
use crate::ports::{ChatError, Member};
use crate::store::{Fence, OutboxId, Request, RequestId, RunId};
use crate::types::{ChannelId, ClusterName, Mode, Person, Principal, Region, SlackUserId};
use async_trait::async_trait;
use std::time::Duration;

/// Where a request stands, shown on the request message itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    AwaitingApproval,
    Denied {
        by: Person,
        /// Why, when the denier said (the Deny of `/aurora pending` asks).
        reason: Option<String>,
    },
    Expired,
    Cancelled {
        by: Person,
    },
    /// Approved and running: the step under way.
    Running {
        approved_by: Person,
        step: Step,
    },
    Succeeded {
        approved_by: Person,
        took: Duration,
    },
    Failed {
        approved_by: Person,
        step: Step,
        reason: String,
    },
    /// Stopped half-way for a person: a deadline passed, AWS refused a later call, or the target is
    /// stuck. The bot keeps watching.
    NeedsAttention {
        approved_by: Person,
        run_id: RunId,
        step: Step,
        reason: String,
    },
    /// A person stopped the run.
    Abandoned {
        approved_by: Person,
        by: Person,
        reason: String,
    },
}

/// A reply in the request's thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    Approved {
        by: Person,
    },
    /// One approval of the several a policy asks: `have` of `need` so far, the last one by `by`.
    ApprovalCounted {
        by: Person,
        have: usize,
        need: usize,
    },
    Denied {
        by: Person,
        /// Why, when the denier said.
        reason: Option<String>,
    },
    Expired,
    Cancelled {
        by: Person,
    },
    /// A run started at a terminal without Slack approval (break-glass): who, why, and the AWS
    /// identity its calls are made with.
    BreakGlass {
        by: Person,
        reason: String,
        aws_caller: String,
    },
    /// An instance took the run up after another one stopped executing it (it died, or stopped
    /// renewing the run's lease), or after a restart (`from` is then the same name).
    TakenOver {
        by: String,
        from: String,
        step: Step,
    },
    /// A step began: the one reply of the step, edited in place as it moves (`StepWaiting`, then
    /// `StepFinished`).
    StepStarted {
        step: Step,
        detail: String,
    },
    /// The step's reply while it waits on AWS: what the step does (`intro`), the status the polling
    /// last saw (`now`), and what AWS reported meanwhile (`events`: RDS events, in order).
    StepWaiting {
        step: Step,
        intro: String,
        now: Option<String>,
        events: Vec<String>,
    },
    /// The step's reply when the run stopped in it (the reply below it says why and what next):
    /// what AWS reported while it ran (`events`, as in `StepWaiting`).
    StepStopped {
        step: Step,
        why: String,
        events: Vec<String>,
    },
    /// The step's reply once it is done: what it did, how long it took, and what AWS reported while it
    /// ran (`events`, as in `StepWaiting`).
    StepFinished {
        step: Step,
        detail: String,
        took: Duration,
        events: Vec<String>,
    },
    /// A change the polling saw, e.g. the promoted cluster's status or writer flag.
    Observed {
        detail: String,
    },
    /// A transient problem the run is riding out.
    Retrying {
        detail: String,
    },
    Completed(Completion),
    Failed(Failure),
    /// The run stopped half-way for a person (it keeps being watched).
    NeedsAttention(Attention),
    /// The bot will not finish by itself: a person decides, with the commands to type.
    HandedOver {
        run_id: RunId,
        why: String,
    },
    /// The bot finishes a run that needed attention by itself (its re-check passed in time).
    LateFinish {
        detail: String,
    },
    /// Someone asked to resume a run that needs attention; a second person approves (buttons).
    ResumeAsked {
        run_id: RunId,
        /// The ask's token (its time in ms), carried by its buttons.
        token: i64,
        by: SlackUserId,
        /// What resuming will move where (from the request's plan), when the plan can be read.
        target: Option<ResumeTarget>,
        /// The step the run stopped at and why, when known.
        stopped: Option<(Step, String)>,
    },
    ResumeDecided {
        run_id: RunId,
        by: SlackUserId,
        approved: bool,
    },
    /// A person stopped the run.
    Abandoned {
        run_id: RunId,
        by: Person,
        reason: String,
        /// A managed operation AWS is still running, which abandoning does not stop.
        still_running: Option<String>,
        /// The target cluster and the CNAMEs as the run leaves them.
        state_now: Option<(String, String)>,
    },
}

/// What a resumed run moves where: the target cluster and the two CNAMEs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeTarget {
    pub cluster_id: String,
    pub region: Region,
    pub writer_record: String,
    pub reader_record: String,
}

/// An answer to the person who typed `/aurora failover`, through its response_url (only them).
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// Planning failed: the request is rejected and nothing was changed.
    NotPrepared {
        id: RequestId,
        cluster: ClusterName,
        reason: Unplanned,
    },
    /// The request is posted in the incident channel, waiting for an approver.
    Posted {
        id: RequestId,
        cluster: ClusterName,
        to: Region,
        mode: Mode,
        channel: ChannelId,
        approvers: Vec<Principal>,
        expires_in: Duration,
    },
    /// A dry run that found no plan.
    NoPlan { cluster: ClusterName, reason: Unplanned },
}

/// Why a run needs attention, what things look like, and what can happen next.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Attention {
    pub run_id: RunId,
    pub step: Step,
    /// What stopped the run, as AWS reports it.
    pub reason: String,
    /// The target cluster as last seen.
    pub cluster_now: String,
    /// The CNAMEs as last read.
    pub dns_now: String,
    pub dns_touched: bool,
    /// What a person can do about it (besides resume and abandon).
    pub guidance: Vec<String>,
    /// The managed operation the run started, as a short read found it. (Older runs said it as the
    /// last line of `guidance`.)
    #[serde(default)]
    pub operation: Option<OperationSeen>,
    /// Until when the bot may still finish by itself (after a full re-check); `None` when it may not.
    pub window_until: Option<jiff::Timestamp>,
    /// How often the bot keeps looking.
    pub watch_every: Duration,
}

/// The managed operation (failover or switchover) of a run that needs attention, as a short read of
/// the global cluster found it; `cluster` is the configured name, for the command that follows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "seen", rename_all = "snake_case")]
pub enum OperationSeen {
    /// AWS is still running it; `state` is the global cluster's FailoverState.
    Running {
        mode: Mode,
        state: String,
        cluster: ClusterName,
    },
    /// No operation is in progress; `writer` is the writer's cluster id.
    Idle { writer: String },
    /// The read failed or took too long.
    Unread { mode: Mode, cluster: ClusterName },
}

/// The last reply of a successful run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Completion {
    pub writer_record: String,
    pub reader_record: String,
    pub writer_endpoint: String,
    pub reader_endpoint: String,
    /// When the writer CNAME was left at the global writer endpoint (a managed failover or switchover):
    /// the cluster AWS moved that endpoint to, as the verify step read it. (Older runs: `None`.)
    #[serde(default)]
    pub writer_follows: Option<String>,
    /// How long each step took, in order.
    pub phases: Vec<(Step, Duration)>,
    pub total: Duration,
    /// The old primary, which a detach leaves writable.
    pub old_primary: Member,
    /// What to know and do now (split brain, the point-of-failure snapshot, how to fail back), as facts
    /// the Slack adapter words. (Runs finished by older versions stored worded lines under
    /// `aftermath`; those are ignored.)
    #[serde(default)]
    pub after: Option<Aftermath>,
    /// How long after the DNS change the database probe first got a writable connection through the
    /// writer CNAME (`None`: no probe, or runs finished by older versions).
    #[serde(default)]
    pub writes_through_cname: Option<Duration>,
}

/// What a successful run leaves behind, by mode. `cluster` is the configured name (for the command
/// that fails back).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Aftermath {
    /// RemoveFromGlobalCluster: the old primary was not touched and may still take writes; the promoted
    /// cluster is standalone.
    Detached { cluster: String, promoted: String },
    /// FailoverGlobalCluster: whether the old primary has rejoined as a secondary, and the name of the
    /// point-of-failure snapshot AWS took of it, if one was found.
    FailedOver {
        cluster: String,
        rejoined: bool,
        snapshot: Option<String>,
    },
    /// SwitchoverGlobalCluster: the old primary is a secondary.
    SwitchedOver { cluster: String },
    /// A rebuild after a detach: the new global cluster replicates to its new secondary; the old
    /// primary (`old_primary`, still in `old_global_cluster_id`) was left as it was.
    Rebuilt(Box<Rebuilt>),
}

/// What a rebuild made, and what it left for people.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Rebuilt {
    pub cluster: String,
    pub global_cluster_id: String,
    pub old_global_cluster_id: String,
    /// The promoted cluster, primary of the new global cluster.
    pub primary: String,
    pub secondary: String,
    pub region: crate::types::Region,
    /// The old primary in `region`: its identifier and ARN, its instances, and whether deletion
    /// protection is on (it must be turned off before it can be deleted).
    pub old_primary: String,
    pub old_primary_arn: String,
    pub old_instances: Vec<String>,
    pub old_deletion_protection: bool,
}

/// The last reply of a failed run: where, why, and what state things are in now.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Failure {
    pub step: Step,
    pub reason: String,
    /// The target cluster as last seen, e.g. "orders-west: promoting, no writer instance".
    pub cluster_now: String,
    /// The CNAMEs as last read, e.g. "writer → …, reader → …", or why they could not be read.
    pub dns_now: String,
    /// Whether the DNS was changed by this run.
    pub dns_touched: bool,
}

/// What the bot says in Slack, as messages queued for delivery. Queuing never waits for Slack: a Slack
/// outage must neither slow nor fail a run. Messages that a restarted bot may queue again carry an
/// idempotency key, so that each is delivered once. Queuing is a store write: async, off the runtime's
/// worker threads.
#[async_trait]
pub trait Chat: Send + Sync {
    /// Posts the approval request for a planned request; returns its message id (the thread root).
    /// Queuing it again for the same request returns the same message.
    async fn post_request(&self, request: &Request, plan: &Plan) -> Result<OutboxId, ChatError>;
    /// Rewrites the request message to show where things stand; `key` makes it idempotent. A run
    /// queues its messages under its lease's `fence`: refused once another instance took the run over.
    async fn update_request(
        &self,
        request: &Request,
        plan: &Plan,
        stage: &Stage,
        key: Option<&str>,
        fence: Option<&Fence>,
    ) -> Result<(), ChatError>;
    /// A reply in the request's thread, queued once per `key`; `broadcast` also shows it in the channel.
    /// Returns the reply's message id (the same one when `key` was queued before), for `edit`.
    async fn note(
        &self,
        request: &Request,
        note: &Note,
        broadcast: bool,
        key: &str,
        fence: Option<&Fence>,
    ) -> Result<OutboxId, ChatError>;
    /// Rewrites the thread reply `reply` (an id `note` returned) to say `note`, queued once per `key`;
    /// an edit superseded by a later one of the same reply is never sent (Slack's chat.update).
    async fn edit(
        &self,
        request: &Request,
        reply: OutboxId,
        note: &Note,
        key: &str,
        fence: Option<&Fence>,
    ) -> Result<(), ChatError>;
    /// A reply to the person who typed a command or clicked a button, through its response_url.
    async fn respond(&self, response_url: &str, answer: &Answer, visible_to_channel: bool) -> Result<(), ChatError>;
    /// A reply only to the person who typed a command, through its response_url, sent once Slack has
    /// accepted message `after` (an id `post_request` returned), and never if Slack refused it: what
    /// it says ("posted for approval") must not be said before it is true.
    async fn respond_after(&self, response_url: &str, answer: &Answer, after: OutboxId) -> Result<(), ChatError>;
    /// A plan and its checklist, to the person who asked for a dry run only.
    async fn respond_plan(&self, response_url: &str, plan: &Plan) -> Result<(), ChatError>;
}
