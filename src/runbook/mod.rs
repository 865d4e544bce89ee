//! The runbook: an approved request's run, as a persisted state machine. Each step is journaled when
//! it starts and when it ends, and the run's next step and working data are checkpointed in the store,
//! so that a restarted bot resumes from the last completed step.
//!
//! Safety rules kept here:
//! - the plan is re-checked against the live topology right before the first mutating call;
//! - RemoveFromGlobalCluster is sent again only when the topology shows the earlier call did not take
//!   effect (a restarted bot looks before it sends);
//! - DNS is never pointed at a cluster that is not available with a writer instance (checked again
//!   right before the UPSERT, which is safe to repeat);
//! - every wait has a deadline that counts from the step's start, across restarts, and polls at the
//!   configured interval; transient AWS errors (and a busy store) are ridden out with capped, jittered
//!   backoff, said once in the thread;
//! - before the first mutating call has taken effect, a refusal or a passed deadline fails the run
//!   (nothing was changed); after it, the run ends only as succeeded, failed (AWS refused or undid that
//!   call) or abandoned (by a person): a passed deadline, a later refusal or a target stuck in a state
//!   AWS will not leave puts it in `needs attention`, watched at a slower pace;
//! - a run that needs attention moves DNS by itself only once, within the late DNS window, after a
//!   re-check that the target is the writer and writable and that the old primary is not writable
//!   (an old primary that came back after a detach may have taken writes: moving DNS would split the
//!   data); otherwise a person resumes it (a second person approves) or abandons it;
//! - an abandoned run never makes another mutating call (the store is read before each);
//! - every ending comes with a report of where, why, and what state the cluster and DNS are in;
//! - every thread reply carries an idempotency key, and is queued before the checkpoint that makes it
//!   true, so that a restart at any point leaves each reply in the thread exactly once;
//! - on shutdown, a run stops at its next pause and resumes at the next start.

mod attention;
pub mod plan;
mod probe;
pub mod rebuild;
pub mod report;
mod steps;
pub mod survey;

use crate::ports::{Aurora, AwsError, AwsErrorKind, Clock, ClusterState, Dns, Metrics};
use crate::settings::RunbookSettings;
use crate::store::{Fence, Lease, OutboxId, Request, RequestId, Run, RunId, RunState, Store, StoreError};
use crate::types::Mode;
use crate::types::Person;
use plan::Plan;
use report::{Aftermath, Attention, Chat, Completion, Failure, Note, Stage};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, warn};

/// The steps of a detach run, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Precheck,
    Detach,
    Failover,
    Switchover,
    /// Follow a managed failover or switchover until the target is the writer.
    WaitManaged,
    WaitWritable,
    UpdateDns,
    WaitInsync,
    Verify,
    /// Resolve the writer CNAME until it answers the new endpoint and confirm writes through it (the
    /// database probe; only for a cluster with `[clusters.probe]`).
    ProbeWrites,
    /// A rebuild's CreateGlobalCluster from the promoted cluster.
    CreateGlobal,
    WaitGlobal,
    /// A rebuild's CreateDBCluster of the new secondary.
    CreateSecondary,
    WaitSecondary,
    /// A rebuild's CreateDBInstance of each of the secondary's instances.
    CreateInstances,
    WaitReplicating,
    /// A rebuild records the new global cluster for the cluster's name.
    Record,
    Done,
}

impl Step {
    pub const FIRST: Step = Step::Precheck;

    pub fn as_str(self) -> &'static str {
        match self {
            Step::Precheck => "precheck",
            Step::Detach => "detach",
            Step::Failover => "failover",
            Step::Switchover => "switchover",
            Step::WaitManaged => "wait_managed",
            Step::WaitWritable => "wait_writable",
            Step::UpdateDns => "update_dns",
            Step::WaitInsync => "wait_insync",
            Step::Verify => "verify",
            Step::ProbeWrites => "probe_writes",
            Step::CreateGlobal => "create_global",
            Step::WaitGlobal => "wait_global",
            Step::CreateSecondary => "create_secondary",
            Step::WaitSecondary => "wait_secondary",
            Step::CreateInstances => "create_instances",
            Step::WaitReplicating => "wait_replicating",
            Step::Record => "record",
            Step::Done => "done",
        }
    }

    pub fn parse(s: &str) -> Option<Step> {
        [
            Step::Precheck,
            Step::Detach,
            Step::Failover,
            Step::Switchover,
            Step::WaitManaged,
            Step::WaitWritable,
            Step::UpdateDns,
            Step::WaitInsync,
            Step::Verify,
            Step::ProbeWrites,
            Step::CreateGlobal,
            Step::WaitGlobal,
            Step::CreateSecondary,
            Step::WaitSecondary,
            Step::CreateInstances,
            Step::WaitReplicating,
            Step::Record,
            Step::Done,
        ]
        .into_iter()
        .find(|step| step.as_str() == s)
    }

    /// What the step does, in words.
    pub fn label(self) -> &'static str {
        match self {
            Step::Precheck => "Re-check the topology",
            Step::Detach => "Detach and promote the target",
            Step::Failover => "Fail over (managed, data loss allowed)",
            Step::Switchover => "Switch over (managed, no data loss)",
            Step::WaitManaged => "Wait until the target is the writer",
            Step::WaitWritable => "Wait until the target is writable",
            Step::UpdateDns => "Repoint the CNAMEs",
            Step::WaitInsync => "Wait for Route 53 INSYNC",
            Step::Verify => "Verify the records",
            Step::ProbeWrites => "Confirm writes through the CNAME",
            Step::CreateGlobal => "Create the global cluster",
            Step::WaitGlobal => "Wait until the global cluster is available",
            Step::CreateSecondary => "Create the secondary cluster",
            Step::WaitSecondary => "Wait until the secondary cluster is available",
            Step::CreateInstances => "Create the secondary's instances",
            Step::WaitReplicating => "Wait until the secondary replicates",
            Step::Record => "Record the new global cluster",
            Step::Done => "Done",
        }
    }

    /// The steps of a run by `mode`, in order.
    pub fn sequence(mode: Mode) -> &'static [Step] {
        match mode {
            Mode::Detach => &[
                Step::Precheck,
                Step::Detach,
                Step::WaitWritable,
                Step::UpdateDns,
                Step::WaitInsync,
                Step::Verify,
            ],
            Mode::Failover => &[
                Step::Precheck,
                Step::Failover,
                Step::WaitManaged,
                Step::UpdateDns,
                Step::WaitInsync,
                Step::Verify,
            ],
            Mode::Switchover => &[
                Step::Precheck,
                Step::Switchover,
                Step::WaitManaged,
                Step::UpdateDns,
                Step::WaitInsync,
                Step::Verify,
            ],
            Mode::Rebuild => &[
                Step::Precheck,
                Step::CreateGlobal,
                Step::WaitGlobal,
                Step::CreateSecondary,
                Step::WaitSecondary,
                Step::CreateInstances,
                Step::WaitReplicating,
                Step::Record,
            ],
        }
    }

    /// The step after this one in `plan`'s run: its mode's sequence, then `ProbeWrites` when the plan
    /// has a database probe.
    fn next_in(self, plan: &Plan) -> Step {
        match self {
            Step::Verify if plan.probe.is_some() => return Step::ProbeWrites,
            Step::ProbeWrites => return Step::Done,
            _ => {}
        }
        let steps = Step::sequence(plan.mode);
        steps
            .iter()
            .position(|s| *s == self)
            .and_then(|i| steps.get(i + 1))
            .copied()
            .unwrap_or(Step::Done)
    }
}

/// The journal event of an instance taking a run up; its detail starts with the instance's owner id.
const TAKEN_UP: &str = "taken_up";

/// The least time a resumed run's reads get to ride out transient errors.
const READ_GRACE: Duration = Duration::from_secs(60);

/// How many more times the topology is read, at the poll interval, after a managed call's answer was an
/// error, before deciding the call did not take effect (DescribeGlobalClusters may lag behind it).
const SETTLE_READS: u32 = 4;

/// How long a managed operation may go unseen after it was accepted before the run concludes that it
/// was cancelled or never started (at most the promote timeout).
const MANAGED_GRACE: Duration = Duration::from_secs(60);

/// How a finished run ended, kept with it so that its last reply can be queued again after a crash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Completed(Box<Completion>),
    Failed(Failure),
}

/// A run's working data, checkpointed with its step. A field missing from the stored JSON (data
/// written by an older build, or `{}`) takes its default; anything else unreadable is an error.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunData {
    /// When the current step started (its deadline counts from here, across restarts), in ms.
    pub step_started_ms: Option<i64>,
    /// Each finished step and how long it took, in ms.
    pub phases: Vec<(Step, u64)>,
    /// Set just before RemoveFromGlobalCluster is sent.
    pub detach_sent: bool,
    /// Set just before FailoverGlobalCluster or SwitchoverGlobalCluster is sent.
    #[serde(default)]
    pub managed_sent: bool,
    /// Set once a topology read has shown that operation under way, so that its end without the target
    /// writing is known at once for a cancel or a rollback. (An operation accepted but not yet seen gets
    /// `MANAGED_GRACE` to show up: reads from another Region may lag behind the call.)
    #[serde(default)]
    pub managed_seen: bool,
    /// The promoted cluster's endpoint and reader endpoint, once writable.
    pub endpoints: Option<(String, String)>,
    /// Set just before the DNS change is sent (it may have been made even if no answer came back).
    #[serde(default)]
    pub dns_sent: bool,
    /// The Route 53 change id, once submitted.
    pub change_id: Option<String>,
    /// The target's status and writer flag as last observed.
    pub last_seen: Option<String>,
    /// What AWS reported during the current step (RDS events), shown in the step's reply.
    #[serde(default)]
    pub step_events: Vec<String>,
    /// How many changes the polling has seen so far (part of each one's key: a status seen again later,
    /// A → B → A, is said again).
    #[serde(default)]
    pub sightings: u32,
    /// How the run ended, once it has.
    #[serde(default)]
    pub outcome: Option<Outcome>,
    /// Set while (and after) the run needs attention.
    #[serde(default)]
    pub attention: Option<AttentionState>,
    /// The bot itself took the run up again after it needed attention: the old primary is checked
    /// again before each DNS change.
    #[serde(default)]
    pub late_finish: bool,
    /// When the DNS change was submitted, in ms (the "flip" the probe's time to a writable connection
    /// counts from).
    #[serde(default)]
    pub dns_changed_ms: Option<i64>,
    /// The database probe's attempts through the writer CNAME: each outcome and how many attempts in a
    /// row saw it.
    #[serde(default)]
    pub probe_attempts: Vec<(String, u32)>,
    /// How long after the DNS change the probe first got a writable connection, in ms.
    #[serde(default)]
    pub writable_after_ms: Option<u64>,
    /// A rebuild: set just before CreateGlobalCluster is sent.
    #[serde(default)]
    pub global_sent: bool,
    /// A rebuild: set just before CreateDBCluster is sent.
    #[serde(default)]
    pub secondary_sent: bool,
    /// A rebuild: each instance id, added just before its CreateDBInstance is sent.
    #[serde(default)]
    pub instances_sent: Vec<String>,
}

/// Where a run that needs attention stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttentionState {
    /// How many times the run has needed attention (each time has its own thread replies).
    pub count: u32,
    pub step: Step,
    pub reason: String,
    /// Until when (ms) the bot may still finish by itself, after a full re-check; set the first time
    /// the run needs attention and never moved later.
    pub window_until_ms: i64,
    /// The bot has handed the decision to people (the window passed, or the re-check failed).
    #[serde(default)]
    pub handed_over: bool,
    /// Why, as the thread was told.
    #[serde(default)]
    pub handover_why: Option<String>,
    /// What the thread was told when the run came to need attention (told again, idempotently, when
    /// a restarted bot takes the run up: it is recorded first, then told).
    #[serde(default)]
    pub note: Option<Attention>,
}

/// Why a step did not finish, and so how the run goes on.
#[derive(Debug)]
enum Stop {
    /// A check, or AWS, said no. Before the first mutating call the run fails (nothing was changed);
    /// after it, the run needs attention.
    Refused(String),
    /// AWS refused or undid the mutating call itself (it did not take effect, or the managed
    /// operation was cancelled or rolled back): things are as before the run, which fails.
    Reverted(String),
    /// A deadline passed (the step's own, or transient errors lasting until it).
    Deadline(String),
    /// The target is in a state AWS will not leave by itself.
    Stuck(String),
    /// The bot is shutting down: the run resumes at the next start.
    Interrupted,
    /// A person abandoned the run.
    Abandoned,
    /// Another instance took the run's lease over (this one was paused, cut off from the store, or
    /// too slow to renew): this instance stops touching the run at once, writing nothing more.
    LostLease,
}

/// Cluster statuses AWS does not leave by itself, with what a person can do about each.
pub fn stuck_status(status: &str) -> Option<&'static str> {
    Some(match status {
        "inaccessible-encryption-credentials" | "inaccessible-encryption-credentials-recoverable" => {
            "the cluster cannot use its KMS key (disabled, deleted or its grant revoked). Re-enable the key or restore \
             its grant in KMS; AWS then recovers the cluster"
        }
        s if s.starts_with("incompatible-") => {
            "a setting of the cluster (network, option group, parameters or restore) is incompatible. Fix it in the RDS \
             console, as the cluster's events say"
        }
        "failed" | "cloning-failed" | "migration-failed" => {
            "AWS reports that the cluster failed. See its RDS events; open an AWS support case if they do not say why"
        }
        "stopped" => "the cluster is stopped. Start it (aws rds start-db-cluster) if it should take over",
        "deleting" => "the cluster is being deleted",
        _ => return None,
    })
}

/// The target is stuck in a state AWS will not leave by itself: stop waiting at once.
fn stuck(state: &ClusterState) -> Result<(), Stop> {
    match stuck_status(&state.status) {
        Some(hint) => Err(Stop::Stuck(format!(
            "{} is {}, a state AWS does not leave by itself: {hint}",
            state.cluster_id, state.status
        ))),
        None => Ok(()),
    }
}

/// Runs approved requests.
pub struct Runner {
    pub store: Arc<dyn Store>,
    pub aurora: Arc<dyn Aurora>,
    /// Aurora's creating calls, which only a rebuild makes.
    pub provisioning: Arc<dyn crate::ports::Provisioning>,
    pub dns: Arc<dyn Dns>,
    pub metrics: Arc<dyn Metrics>,
    /// IAM's policy simulator, asked again in the re-check right before the first mutating call.
    pub permissions: Arc<dyn crate::ports::Permissions>,
    pub chat: Arc<dyn Chat>,
    pub clock: Arc<dyn Clock>,
    pub settings: RunbookSettings,
    /// Cancelled when the bot shuts down: runs stop at their next pause, their state saved.
    pub shutdown: CancellationToken,
    /// One token per run this process executes, cancelled when a person abandons the run: it stops at
    /// its next pause. A std mutex: held only to insert, remove or cancel.
    pub aborts: std::sync::Mutex<std::collections::HashMap<RunId, CancellationToken>>,
    /// The mutating AWS call each run has on its way, if any (for an abandon to mention). A std mutex:
    /// held only to insert, remove or read.
    pub in_flight: std::sync::Mutex<std::collections::HashMap<RunId, String>>,
    /// The bot's Prometheus metrics: runs by outcome, runs in progress, step durations.
    pub telemetry: Arc<crate::telemetry::Telemetry>,
    /// The database probe (`Some` when `[probe]` is configured): a plan with a probe ends with
    /// `Step::ProbeWrites`.
    pub database: Option<DatabaseCheck>,
    /// This instance's leases: a run is executed only under its cluster's lease.
    pub leases: Arc<crate::lease::Leaseholder>,
}

/// The database probe as a run uses it after the DNS change.
#[derive(Clone)]
pub struct DatabaseCheck {
    pub probe: Arc<dyn crate::ports::DatabaseProbe>,
    /// How long after the DNS change the probe keeps trying (`probe.deadline_secs`).
    pub deadline: Duration,
    /// The heartbeat row's key: this bot instance's name.
    pub instance: String,
}

/// Everything one run works with.
struct Ctx {
    /// When this process took the run up (its reads get a fresh budget after a restart).
    resumed_at: jiff::Timestamp,
    run: Run,
    request: Request,
    plan: Plan,
    data: RunData,
    approved_by: Person,
    /// The plan was re-checked by this process (a run resumed past the re-check does it again before
    /// its first mutating call).
    rechecked: bool,
    /// Cancelled when a person abandons the run.
    abort: CancellationToken,
    /// The cluster's lease this process executes the run under: every write for the run carries it.
    fence: Option<Fence>,
    /// Cancelled when the lease is lost (another instance took the run over).
    lost: CancellationToken,
    /// How many late re-checks in a row found the old primary's Region unreachable.
    old_primary_unreachable: u32,
    /// The current step's reply in the thread, edited in place as the step moves.
    step_reply: Option<OutboxId>,
    /// The transient errors the current step rode out (each also said in a reply of its own when it
    /// began), listed in the step's reply when it is done.
    rode_out: std::sync::Mutex<Vec<String>>,
}

/// Whether a failed write was refused by the fencing token (another instance holds the lease now),
/// whether it comes as a [`StoreError`] or inside an `anyhow::Error`.
fn fenced<E: 'static>(e: &E) -> bool {
    let any: &dyn std::any::Any = e;
    if let Some(StoreError::Fenced(_)) = any.downcast_ref::<StoreError>() {
        return true;
    }
    any.downcast_ref::<anyhow::Error>()
        .is_some_and(|e| matches!(e.downcast_ref::<StoreError>(), Some(StoreError::Fenced(_))))
}

/// Adds `line` to `lines` unless it is there already.
fn remember(lines: &std::sync::Mutex<Vec<String>>, line: String) {
    let mut lines = lines.lock().unwrap_or_else(|p| p.into_inner());
    if !lines.contains(&line) {
        lines.push(line);
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn since(later: jiff::Timestamp, earlier: jiff::Timestamp) -> Duration {
    later.duration_since(earlier).unsigned_abs()
}

fn plus(t: jiff::Timestamp, d: Duration) -> jiff::Timestamp {
    t + jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX)
}

fn describe(c: &ClusterState) -> String {
    format!(
        "{} is {}, {}",
        c.cluster_id,
        c.status,
        if c.has_writer {
            "with a writer instance"
        } else {
            "no writer instance"
        }
    )
}

/// The global cluster shows a managed operation under way towards `target` (one being cancelled does
/// not count).
fn operation_under_way(topology: &crate::ports::Topology, target: &str) -> bool {
    topology.operation_target.as_deref() == Some(target)
        && topology.operation_in_progress.as_deref() != Some("cancelling")
}

/// The writable target's endpoint and reader endpoint, remembered in the run's data.
fn keep_endpoints(ctx: &mut Ctx, state: &ClusterState) -> Result<(String, String), Stop> {
    let (Some(w), Some(r)) = (state.endpoint.clone(), state.reader_endpoint.clone()) else {
        return Err(Stop::Refused(format!(
            "{} is writable but has no endpoints",
            state.cluster_id
        )));
    };
    ctx.data.endpoints = Some((w.clone(), r.clone()));
    Ok((w, r))
}

/// An idempotency key for a reply that a run says again each time it goes on after needing attention
/// (a step's start, a retry notice): the same key the first time, then one per round.
fn round_key(ctx: &Ctx, key: String) -> String {
    match ctx.data.attention.as_ref().map_or(0, |a| a.count) {
        0 => key,
        n => format!("{key}:round{n}"),
    }
}

/// The idempotency key of the "approved" reply of request `id` (posted by whoever gets there first:
/// the approval itself, or the run it started, after a crash in between).
pub fn approved_key(request_id: RequestId) -> String {
    format!("request:{request_id}:approved")
}

impl Runner {
    /// Executes (or resumes) a run to its end, or until shutdown. Never panics on AWS or Slack trouble:
    /// every failure ends the run as failed, with a report.
    pub async fn execute(self: Arc<Self>, run_id: RunId) {
        let span = tracing::info_span!("run", %run_id, cluster = tracing::field::Empty);
        async move {
            if let Err(e) = self.try_execute(run_id).await {
                warn!(error = %e, "run could not be executed");
            }
        }
        .instrument(span)
        .await
    }

    /// Reads a run, its request and plan. A stored row, plan or run data that cannot be read is a
    /// `StoreError::Decode` (in the error's chain), naming its table and key.
    async fn load(&self, run_id: RunId) -> anyhow::Result<Option<Ctx>> {
        let Some(run) = self.store.run(run_id).await? else {
            anyhow::bail!("no run {run_id}");
        };
        let request = self
            .store
            .request(run.request_id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("run {run_id} has no request"))?;
        let plan: Plan = request
            .stored_plan()
            .map_err(StoreError::Decode)?
            .ok_or_else(|| anyhow::anyhow!("run {run_id}'s request has no plan"))?;
        let data: RunData = run.stored_data().map_err(StoreError::Decode)?;
        let approved_by = request
            .decided_by
            .clone()
            .ok_or_else(|| anyhow::anyhow!("run {run_id} has no approver"))?;
        Ok(Some(Ctx {
            resumed_at: self.clock.now(),
            run,
            request,
            plan,
            data,
            approved_by,
            rechecked: false,
            abort: CancellationToken::new(),
            fence: None,
            lost: CancellationToken::new(),
            old_primary_unreachable: 0,
            step_reply: None,
            rode_out: std::sync::Mutex::default(),
        }))
    }

    /// A run whose stored data cannot be read stops here, and only it: it goes to `needs attention`
    /// (its stored data kept as it is, for a person to look at), with a note in its thread when its
    /// request can be read.
    async fn unreadable(&self, run_id: RunId, e: &crate::store::DecodeError) {
        let detail = format!("its stored data could not be read ({e}); a person must look at it");
        match self
            .store
            .mark_needs_attention(run_id, None, ("load", &detail), self.clock.now(), None)
            .await
        {
            Ok(true) => warn!(%run_id, error = %e, "a run's stored data cannot be read: it needs attention"),
            Ok(false) => return,
            Err(e) => {
                warn!(error = %e, "cannot record that a run needs attention");
                return;
            }
        }
        let request = match self.store.run(run_id).await {
            Ok(Some(run)) => self.store.request(run.request_id).await.ok().flatten(),
            _ => None,
        };
        if let Some(request) = request
            && let Err(e) = self
                .chat
                .note(
                    &request,
                    &Note::Observed {
                        detail: format!("Run {run_id} needs attention: {detail}."),
                    },
                    true,
                    &format!("run:{run_id}:unreadable"),
                    None,
                )
                .await
        {
            warn!(error = %e, "cannot queue a thread reply");
        }
    }

    /// Loads a run, riding out a failing store with backoff until it answers or the bot stops: a run
    /// taken up after a restart may already have changed AWS, and must not wait for the next restart.
    /// (A row that cannot be read is not retried: it needs a person.)
    async fn load_patiently(&self, run_id: RunId) -> anyhow::Result<Option<Ctx>> {
        let mut attempt = 0;
        loop {
            let e = match self.load(run_id).await {
                Err(e) if matches!(e.downcast_ref::<StoreError>(), Some(s) if !matches!(s, StoreError::Decode(_))) => e,
                loaded => return loaded,
            };
            if attempt == 0 {
                warn!(error = %e, "cannot read the run; retrying with backoff");
            }
            tokio::select! {
                () = self.shutdown.cancelled() => return Err(e),
                () = tokio::time::sleep(self.backoff(attempt)) => {}
            }
            attempt += 1;
        }
    }

    async fn try_execute(&self, run_id: RunId) -> anyhow::Result<()> {
        let mut ctx = match self.load_patiently(run_id).await {
            Ok(Some(ctx)) => ctx,
            Ok(None) => return Ok(()),
            Err(e) => {
                if let Some(StoreError::Decode(d)) = e.downcast_ref::<StoreError>() {
                    self.unreadable(run_id, d).await;
                }
                return Err(e);
            }
        };
        // The span is `execute`'s: every line of the run names its cluster too.
        tracing::Span::current().record("cluster", tracing::field::display(&ctx.request.cluster));
        if !ctx.run.state.is_open() {
            // Finished: make sure its last reply made it to the queue (a crash may have come between).
            self.announce_outcome(&ctx).await;
            return Ok(());
        }
        let Some(fence) = self.take_up(run_id, &mut ctx).await? else {
            return Ok(());
        };
        info!(token = fence.token, "executing the run under its cluster's lease");
        ctx.fence = Some(fence.clone());
        self.taken_up(&ctx).await;
        let stop_keeping = CancellationToken::new();
        let keeper = {
            let (leases, fence, stop, lost) = (
                self.leases.clone(),
                fence.clone(),
                stop_keeping.clone(),
                ctx.lost.clone(),
            );
            tokio::spawn(async move { leases.keep(fence, stop, lost).await })
        };
        let _in_progress = self.telemetry.run_in_progress();
        let result = self.drive(&mut ctx).await;
        stop_keeping.cancel();
        let _ = keeper.await;
        if !ctx.lost.is_cancelled() {
            // Finished, or shutting down: another instance may take the run up at once.
            self.leases.release(&fence).await;
        }
        self.unclaim(run_id);
        result
    }

    /// Takes the run's cluster lease (`None`: this process executes it already, or another instance
    /// holds the lease), adopts the run under it, and reads the run again: a former holder may have
    /// written to it between the first read and the adoption (its lease had run out, but it did not
    /// know yet); from the adoption on it cannot. A run that ended meanwhile only re-queues its outcome.
    async fn take_up(&self, run_id: RunId, ctx: &mut Ctx) -> anyhow::Result<Option<Fence>> {
        // Only one instance executes a run: the one holding its cluster's lease.
        let scope = Lease::cluster_scope(&ctx.request.cluster);
        if !self.claim(run_id, &ctx.abort) {
            return Ok(None); // this process executes it already
        }
        let fence = match self.leases.take(&scope).await {
            Ok(Some(fence)) => fence,
            taken => {
                self.unclaim(run_id);
                let holder = self.leases.holder(&scope).await.ok().flatten();
                tracing::debug!(holder = holder.map(|l| l.owner), "another instance executes this run");
                return taken.map(|_| None).map_err(Into::into);
            }
        };
        if let Err(e) = self.store.adopt_run(run_id, &fence).await {
            self.unclaim(run_id);
            return Err(e.into());
        }
        match self.load_patiently(run_id).await {
            Ok(Some(fresh)) if fresh.run.state.is_open() => {
                ctx.run = fresh.run;
                ctx.request = fresh.request;
                ctx.data = fresh.data;
            }
            reread => {
                self.unclaim(run_id);
                self.leases.release(&fence).await;
                return match reread {
                    Ok(Some(done)) => {
                        self.announce_outcome(&done).await;
                        Ok(None)
                    }
                    other => other.map(|_| None),
                };
            }
        }
        Ok(Some(fence))
    }

    /// Records which instance executes the run from now on (a journal line and an audit line, under
    /// the new lease), and says in the thread when another instance (or this one before a restart)
    /// had executed it: people see who took the run over, and from where.
    async fn taken_up(&self, ctx: &Ctx) {
        let Some(fence) = &ctx.fence else { return };
        let me = &self.leases.instance;
        let previous = match self.store.journal_of(ctx.run.id).await {
            Ok(lines) => lines
                .into_iter()
                .rev()
                .find(|l| l.event == TAKEN_UP)
                .and_then(|l| l.detail.split(" · ").next().map(str::to_owned)),
            Err(e) => {
                warn!(error = %e, "cannot read the run's journal");
                None
            }
        };
        if previous.as_deref() == Some(me.id.as_str()) {
            return; // this process took it up before (a launch again after a pause)
        }
        let now = self.clock.now();
        // The owner id first: the next instance to take the run up reads it back.
        let detail = format!("{} · executed by {me}, lease token {}", me.id, fence.token);
        if let Err(e) = self
            .store
            .journal(ctx.run.id, now, &ctx.run.step, TAKEN_UP, &detail, Some(fence))
            .await
        {
            warn!(error = %e, "cannot journal who executes the run");
        }
        if let Err(e) = self
            .store
            .audit(now, &me.to_string(), "take up run", Some(ctx.request.id), &detail)
            .await
        {
            warn!(error = %e, "cannot audit who executes the run");
        }
        let Some(from) = previous else { return };
        let step = Step::parse(&ctx.run.step).unwrap_or(Step::FIRST);
        let note = Note::TakenOver {
            by: me.to_string(),
            from: me.describe_owner(&from),
            step,
        };
        self.say(ctx, note, &format!("run:{}:taken-up:{}", ctx.run.id, fence.token))
            .await;
    }

    /// Marks run `run_id` as executed by this process, with the token that stops it when a person
    /// abandons it; `false` if it already is.
    fn claim(&self, run_id: RunId, abort: &CancellationToken) -> bool {
        let mut aborts = self.aborts.lock().unwrap_or_else(|p| p.into_inner());
        if aborts.contains_key(&run_id) {
            return false;
        }
        aborts.insert(run_id, abort.clone());
        true
    }

    /// Undoes `claim`: this process no longer executes run `run_id`.
    fn unclaim(&self, run_id: RunId) {
        self.aborts.lock().unwrap_or_else(|p| p.into_inner()).remove(&run_id);
    }

    /// Whether this process is executing run `run_id` now.
    pub fn executing(&self, run_id: RunId) -> bool {
        self.aborts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&run_id)
    }

    /// Stops run `run_id` at its next pause, if this process is executing it (a person abandoned it;
    /// the store already says so).
    pub fn abort(&self, run_id: RunId) {
        if let Some(t) = self.aborts.lock().unwrap_or_else(|p| p.into_inner()).get(&run_id) {
            t.cancel();
        }
    }

    /// Runs the steps from where the run stands, through any spells of needing attention, to its end.
    async fn drive(&self, ctx: &mut Ctx) -> anyhow::Result<()> {
        // The approval's reply, in case the bot died between recording the approval and queuing it.
        self.say(
            ctx,
            Note::Approved {
                by: ctx.approved_by.clone(),
            },
            &approved_key(ctx.request.id),
        )
        .await;
        if ctx.run.state == RunState::NeedsAttention {
            // A restart may have come between recording it and telling it.
            self.tell_attention(ctx).await;
            if !self.watch(ctx).await? {
                return Ok(());
            }
        }
        loop {
            let step = Step::parse(&ctx.run.step).ok_or_else(|| anyhow::anyhow!("unknown step {}", ctx.run.step))?;
            let Err((step, stop)) = self.steps(ctx, step).await else {
                self.succeed(ctx).await?;
                return Ok(());
            };
            self.step_stopped(ctx, step, &stop).await;
            // Whether a mutating call may have taken effect: from then on the run is never given up on.
            let mutated = ctx.data.detach_sent || ctx.data.managed_sent || ctx.data.global_sent;
            match stop {
                Stop::Interrupted => return self.interrupted(ctx, step).await,
                Stop::LostLease => {
                    info!(
                        step = step.as_str(),
                        "another instance took the run over; this one writes and calls nothing more for it"
                    );
                    return Ok(());
                }
                Stop::Abandoned => {
                    info!(step = step.as_str(), "run abandoned by a person; stopping");
                    return Ok(());
                }
                Stop::Reverted(reason) => {
                    self.fail(ctx, step, reason).await?;
                    return Ok(());
                }
                Stop::Refused(reason) | Stop::Deadline(reason) if !mutated => {
                    self.fail(ctx, step, reason).await?;
                    return Ok(());
                }
                // AWS said no: a person decides. A deadline, or a target AWS may bring back once a person
                // fixes it: the bot may still finish by itself, within the window, after its re-check.
                Stop::Refused(reason) => {
                    self.needs_attention(ctx, step, reason, false).await?;
                    if !self.watch(ctx).await? {
                        return Ok(());
                    }
                }
                Stop::Deadline(reason) | Stop::Stuck(reason) => {
                    // A rebuild has no late finish of its own, and a probe that kept failing through the
                    // CNAME needs a person's look: people decide.
                    let may_finish = ctx.plan.mode != Mode::Rebuild && step != Step::ProbeWrites;
                    self.needs_attention(ctx, step, reason, may_finish).await?;
                    if !self.watch(ctx).await? {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Runs the steps from `step` to the end; `Err` says at which step the run stopped, and why.
    /// Around each step: a check that nobody abandoned the run, its start (said, shown, journaled and
    /// checkpointed once, so that its deadline counts from there across restarts) and its end.
    async fn steps(&self, ctx: &mut Ctx, mut step: Step) -> Result<(), (Step, Stop)> {
        while step != Step::Done {
            if self.shutdown.is_cancelled() {
                return Err((step, Stop::Interrupted));
            }
            self.ensure_open(ctx).await.map_err(|s| (step, s))?;
            let started = self.start_step(ctx, step).await.map_err(|s| (step, s))?;
            info!(step = step.as_str(), "step");
            let detail = self.perform(ctx, step, started).await.map_err(|s| (step, s))?;
            step = self
                .finish_step(ctx, step, started, detail)
                .await
                .map_err(|s| (step, s))?;
        }
        Ok(())
    }

    /// When `step` started: recorded before, or now (said in the thread and on the request message,
    /// then journaled and checkpointed).
    async fn start_step(&self, ctx: &mut Ctx, step: Step) -> Result<jiff::Timestamp, Stop> {
        let note = Note::StepStarted {
            step,
            detail: self.step_intro(ctx, step),
        };
        let key = round_key(ctx, format!("run:{}:{}:started", ctx.run.id, step.as_str()));
        if let Some(started) = ctx
            .data
            .step_started_ms
            .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        {
            // Taken up again: the step's reply was queued before its start was recorded, so saying it
            // again under its key finds it (and queues nothing).
            ctx.step_reply = self.say(ctx, note, &key).await;
            return Ok(started);
        }
        let now = self.clock.now();
        let round = ctx.data.attention.as_ref().map_or(0, |a| a.count);
        ctx.step_reply = self.say(ctx, note, &key).await;
        let stage = Stage::Running {
            approved_by: ctx.approved_by.clone(),
            step,
        };
        self.stage(
            ctx,
            stage,
            &format!("run:{}:stage:{}:{round}", ctx.run.id, step.as_str()),
        )
        .await;
        ctx.data.step_started_ms = Some(now.as_millisecond());
        self.persist(ctx, step, Some((step, "started", ""))).await?;
        Ok(now)
    }

    /// Says what `step` did and how long it took, then checkpoints the next step; returns it.
    async fn finish_step(
        &self,
        ctx: &mut Ctx,
        step: Step,
        started: jiff::Timestamp,
        detail: String,
    ) -> Result<Step, Stop> {
        let took = since(self.clock.now(), started);
        let note = Note::StepFinished {
            step,
            detail: detail.clone(),
            took,
            events: std::mem::take(&mut ctx.data.step_events)
                .into_iter()
                .chain(
                    std::mem::take(ctx.rode_out.get_mut().unwrap_or_else(|p| p.into_inner()))
                        .into_iter()
                        .map(|e| format!("Rode out a transient error: {e}")),
                )
                .collect(),
        };
        let key = round_key(ctx, format!("run:{}:{}:finished", ctx.run.id, step.as_str()));
        self.say_in_step(ctx, note, &key).await;
        ctx.step_reply = None;
        ctx.data.phases.push((step, ms(took)));
        self.telemetry.step(step.as_str(), ctx.plan.mode.as_str(), took);
        ctx.data.step_started_ms = None;
        let next = step.next_in(&ctx.plan);
        self.persist(ctx, next, Some((step, "finished", &detail))).await?;
        ctx.run.step = next.as_str().to_owned();
        Ok(next)
    }

    async fn interrupted(&self, ctx: &Ctx, step: Step) -> anyhow::Result<()> {
        info!(
            step = step.as_str(),
            "run interrupted by shutdown; it resumes at the next start"
        );
        self.store
            .journal(
                ctx.run.id,
                self.clock.now(),
                step.as_str(),
                "interrupted",
                "the bot shut down; the run resumes here at the next start",
                ctx.fence.as_ref(),
            )
            .await?;
        Ok(())
    }

    async fn checkpoint(&self, ctx: &Ctx, next: Step, entry: Option<(Step, &str, &str)>) -> anyhow::Result<()> {
        let data = serde_json::to_string(&ctx.data)?;
        self.store
            .checkpoint(
                ctx.run.id,
                next.as_str(),
                &data,
                entry.map(|(s, e, d)| (s.as_str(), e, d)),
                self.clock.now(),
                ctx.fence.as_ref(),
            )
            .await?;
        Ok(())
    }

    /// Checkpoints, riding out a busy or failing store with backoff (said once in the log) until it
    /// works: the record of a run is never given up on, and a run is never abandoned for it.
    async fn persist(&self, ctx: &Ctx, next: Step, entry: Option<(Step, &str, &str)>) -> Result<(), Stop> {
        self.stubbornly(ctx, "the run's progress", || self.checkpoint(ctx, next, entry))
            .await
    }

    /// Repeats a store write until it works, riding out a busy or failing store with backoff (said
    /// once in the log, `what` naming the record): the record of a run is never given up on, and a run
    /// is never abandoned for it. `Err` only when the run must stop anyway (shutdown, an abandon).
    async fn stubbornly<T, E, F, Fut>(&self, ctx: &Ctx, what: &str, mut write: F) -> Result<T, Stop>
    where
        E: std::fmt::Display + 'static,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut attempt = 0;
        loop {
            match write().await {
                Ok(v) => {
                    if attempt > 0 {
                        info!(what, "the store records again");
                    }
                    return Ok(v);
                }
                Err(e) if fenced(&e) => {
                    warn!(error = %e, what, "the store refused the write: another instance took the run over");
                    ctx.lost.cancel();
                    return Err(Stop::LostLease);
                }
                Err(e) => {
                    if attempt == 0 {
                        warn!(error = %e, what, "cannot record; retrying with backoff");
                    }
                    self.pause(ctx, self.backoff(attempt)).await?;
                    attempt += 1;
                }
            }
        }
    }

    /// The pause before retry `attempt` (0, 1, ...): the poll interval doubling up to ten seconds (or
    /// the poll interval, if longer), with ±20% jitter so that retries do not march in step.
    fn backoff(&self, attempt: u32) -> Duration {
        let cap = self.settings.poll_interval.max(Duration::from_secs(10));
        let base = self
            .settings
            .poll_interval
            .saturating_mul(2u32.saturating_pow(attempt.min(16)))
            .min(cap);
        base.mul_f64(0.8 + 0.4 * fastrand::f64())
    }

    /// Makes a mutating AWS call, known meanwhile as in flight (so that an abandon in between can say a
    /// call was already sent), and says in the thread, if the run was abandoned while it was on its way,
    /// that AWS took it all the same.
    async fn mutating<T>(
        &self,
        ctx: &Ctx,
        call: &str,
        sent: impl Future<Output = Result<T, AwsError>>,
    ) -> Result<T, AwsError> {
        self.in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(ctx.run.id, call.to_owned());
        let result = sent.await;
        self.in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&ctx.run.id);
        if result.is_ok() && self.ensure_open(ctx).await.is_err() {
            let (cluster_now, dns_now) = self.facts(ctx).await;
            self.say(
                ctx,
                Note::Observed {
                    detail: format!(
                        "AWS accepted {call}, sent just before run {} was abandoned: it takes effect. Cluster now: \
                         {cluster_now}. DNS now: {dns_now}. The bot does nothing more for this run.",
                        ctx.run.id
                    ),
                },
                &format!("run:{}:accepted-after-abandon:{call}", ctx.run.id),
            )
            .await;
        }
        result
    }

    /// Stops a run a person abandoned, before it changes anything more.
    /// Called right before each mutating AWS call: also renews the run's lease (a conditional write),
    /// so that an instance that lost it (another took the run over) makes no call.
    async fn ensure_open(&self, ctx: &Ctx) -> Result<(), Stop> {
        if ctx.abort.is_cancelled() {
            return Err(Stop::Abandoned);
        }
        self.ensure_leased(ctx).await?;
        match self.store.run(ctx.run.id).await {
            Ok(Some(run)) if run.state == RunState::Abandoned => Err(Stop::Abandoned),
            _ => Ok(()),
        }
    }

    /// Renews the run's lease (riding out a failing store: no mutating call is made until it answers);
    /// `Stop::LostLease` when another instance holds it now.
    async fn ensure_leased(&self, ctx: &Ctx) -> Result<(), Stop> {
        let Some(fence) = &ctx.fence else { return Ok(()) };
        if ctx.lost.is_cancelled() {
            return Err(Stop::LostLease);
        }
        if self
            .stubbornly(ctx, "the run's lease", || self.leases.renew(fence))
            .await?
        {
            return Ok(());
        }
        warn!(
            token = fence.token,
            "another instance took the run's lease over; stopping here"
        );
        ctx.lost.cancel();
        Err(Stop::LostLease)
    }

    /// Queues a reply in the request's thread (once per `key`); returns its message id, or `None` when
    /// it could not be queued (logged: the run goes on).
    async fn say(&self, ctx: &Ctx, note: Note, key: &str) -> Option<OutboxId> {
        let broadcast = matches!(
            note,
            Note::Completed(_) | Note::Failed(_) | Note::NeedsAttention(_) | Note::Abandoned { .. }
        );
        match self
            .chat
            .note(&ctx.request, &note, broadcast, key, ctx.fence.as_ref())
            .await
        {
            Ok(id) => Some(id),
            Err(e) => {
                warn!(error = %e, "cannot queue a thread reply");
                None
            }
        }
    }

    /// Says `note` by editing the current step's reply (once per `key`), or, when the step has no
    /// reply (it could not be queued), as a reply of its own.
    async fn say_in_step(&self, ctx: &Ctx, note: Note, key: &str) {
        let Some(reply) = ctx.step_reply else {
            self.say(ctx, note, key).await;
            return;
        };
        if let Err(e) = self
            .chat
            .edit(&ctx.request, reply, &note, key, ctx.fence.as_ref())
            .await
        {
            warn!(error = %e, "cannot queue an edit of the step's reply");
        }
    }

    /// Shows in the step's reply that the run stopped in it (unless the bot is only shutting down: the
    /// step goes on at the next start), and forgets the reply: what follows gets replies of its own.
    async fn step_stopped(&self, ctx: &mut Ctx, step: Step, stop: &Stop) {
        let why = match stop {
            Stop::Interrupted | Stop::LostLease => return,
            Stop::Abandoned => "abandoned by a person".to_owned(),
            Stop::Refused(why) | Stop::Reverted(why) | Stop::Deadline(why) | Stop::Stuck(why) => why.clone(),
        };
        let note = Note::StepStopped {
            step,
            why,
            events: std::mem::take(&mut ctx.data.step_events),
        };
        let key = round_key(ctx, format!("run:{}:{}:stopped", ctx.run.id, step.as_str()));
        if ctx.step_reply.is_some() {
            self.say_in_step(ctx, note, &key).await;
        }
        ctx.step_reply = None;
        ctx.rode_out.get_mut().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Shows in the step's reply that it is waiting: the status seen `now` and the events so far.
    async fn show_waiting(&self, ctx: &Ctx, step: Step, now: Option<&str>) {
        if ctx.step_reply.is_none() {
            return;
        }
        let note = Note::StepWaiting {
            step,
            intro: self.step_intro(ctx, step),
            now: now.map(str::to_owned),
            events: ctx.data.step_events.clone(),
        };
        let key = round_key(
            ctx,
            format!(
                "run:{}:{}:waiting:{}:{}:{}",
                ctx.run.id,
                step.as_str(),
                ctx.data.sightings,
                now.unwrap_or_default(),
                ctx.data.step_events.len()
            ),
        );
        self.say_in_step(ctx, note, &key).await;
    }

    async fn stage(&self, ctx: &Ctx, stage: Stage, key: &str) {
        if let Err(e) = self
            .chat
            .update_request(&ctx.request, &ctx.plan, &stage, Some(key), ctx.fence.as_ref())
            .await
        {
            warn!(error = %e, "cannot queue the request message update");
        }
    }

    /// A step's deadline, extended to at least READ_GRACE from now when the step began before this
    /// process took the run up (so that a restart after long downtime does not fail at once).
    fn resumed(&self, ctx: &Ctx, started: jiff::Timestamp, deadline: jiff::Timestamp) -> jiff::Timestamp {
        if started < ctx.resumed_at {
            deadline.max(plus(ctx.resumed_at, READ_GRACE))
        } else {
            deadline
        }
    }

    /// How long `step` may take in all, when it waits on AWS.
    fn step_timeout(&self, step: Step) -> Option<Duration> {
        match step {
            Step::WaitManaged | Step::WaitWritable => Some(self.settings.promote_timeout),
            Step::UpdateDns | Step::WaitInsync => Some(self.settings.dns_timeout),
            _ => None,
        }
    }

    /// A waiting step's deadline, counted from its start across restarts. A run taken up after that
    /// deadline passed (the bot was down) stops at once: going on would move DNS without the late
    /// re-check that a run past its deadline must pass.
    fn step_deadline(&self, ctx: &Ctx, step: Step, started: jiff::Timestamp) -> Result<jiff::Timestamp, Stop> {
        let timeout = self.step_timeout(step).unwrap_or(self.settings.promote_timeout);
        let deadline = plus(started, timeout);
        if started < ctx.resumed_at && self.clock.now() >= deadline {
            return Err(Stop::Deadline(format!(
                "the step's {} s deadline passed while the bot was not running",
                timeout.as_secs()
            )));
        }
        Ok(deadline)
    }

    /// The replication-lag limit the checks apply.
    fn limits(&self) -> plan::Limits {
        plan::Limits {
            lag_limit_ms: self.settings.lag_limit.as_millis() as f64,
        }
    }

    /// Shows what the polling sees of `subject` in the step's reply, says each change of it in a reply
    /// of its own (once), and remembers it. The first sighting is not a change: with a step reply to
    /// show it in, it gets no reply of its own.
    async fn observe(&self, ctx: &mut Ctx, step: Step, subject: &str, seen: String) -> Result<(), Stop> {
        if ctx.data.last_seen.as_deref() == Some(seen.as_str()) {
            return Ok(());
        }
        let detail = match &ctx.data.last_seen {
            Some(before) => format!("{subject}: {before} → {seen}"),
            None => format!("{subject}: {seen}"),
        };
        let n = ctx.data.sightings;
        if ctx.data.last_seen.is_some() || ctx.step_reply.is_none() {
            self.say(
                ctx,
                Note::Observed { detail: detail.clone() },
                &format!("run:{}:observed:{n}:{detail}", ctx.run.id),
            )
            .await;
        }
        self.show_waiting(ctx, step, Some(&format!("{subject}: {seen}"))).await;
        ctx.data.last_seen = Some(seen);
        ctx.data.sightings = n + 1;
        if let Err(e) = self
            .store
            .journal(
                ctx.run.id,
                self.clock.now(),
                step.as_str(),
                "observed",
                &detail,
                ctx.fence.as_ref(),
            )
            .await
        {
            warn!(error = %e, "cannot journal an observation");
        }
        self.persist(ctx, step, None).await
    }

    /// Adds the RDS events of the two clusters since the run started to the step's reply (each once, in
    /// order). Best effort: a Region that does not answer is skipped.
    async fn post_events(&self, ctx: &mut Ctx, step: Step, since: jiff::Timestamp) {
        let before = ctx.data.step_events.len();
        for m in [ctx.plan.to.clone(), ctx.plan.from.clone()] {
            let read = tokio::time::timeout(
                Duration::from_secs(5),
                self.aurora.events(&m.region, &m.cluster_id, since),
            )
            .await;
            let Ok(Ok(events)) = read else { continue };
            for e in events {
                let line = format!(
                    "{} RDS event ({}, {}): {}",
                    e.date.strftime("%H:%M:%S UTC"),
                    m.cluster_id,
                    m.region,
                    e.message
                );
                if !ctx.data.step_events.contains(&line) {
                    ctx.data.step_events.push(line);
                }
            }
        }
        if ctx.data.step_events.len() > before {
            let now = ctx.data.last_seen.clone();
            let subject = ctx.plan.global_cluster_id.clone();
            self.show_waiting(ctx, step, now.map(|n| format!("{subject}: {n}")).as_deref())
                .await;
        }
    }

    /// Whether the managed operation this run asked for has started (or finished): the global cluster
    /// shows it in progress towards the target, or the target already writes.
    async fn managed_started(&self, ctx: &Ctx, step: Step, deadline: jiff::Timestamp) -> Result<bool, Stop> {
        let topology = self
            .retrying(ctx, step, "DescribeGlobalClusters", deadline, || {
                self.aurora.topology(&ctx.plan.global_cluster_id, &ctx.plan.regions)
            })
            .await?;
        Ok(operation_under_way(&topology, &ctx.plan.to.arn)
            || topology.writer().is_some_and(|w| w.arn == ctx.plan.to.arn))
    }

    /// Whether the managed call took effect, reading the topology again a few times (it may lag behind
    /// the call) before concluding that it did not.
    async fn managed_settled(&self, ctx: &Ctx, step: Step, deadline: jiff::Timestamp) -> Result<bool, Stop> {
        for read in 0..=SETTLE_READS {
            if read > 0 {
                self.pause(ctx, self.settings.poll_interval).await?;
            }
            if self.managed_started(ctx, step, deadline).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Re-checks the plan against the cluster as it is now; `Err` stops the run with the reason.
    async fn recheck(&self, ctx: &mut Ctx, step: Step, deadline: jiff::Timestamp) -> Result<String, Stop> {
        if ctx.plan.mode == Mode::Rebuild {
            return self.recheck_rebuild(ctx, step, deadline).await;
        }
        let cluster = ctx.plan.cluster_settings();
        let survey = self
            .retrying(ctx, step, "DescribeGlobalClusters", deadline, || {
                survey::survey(
                    self.aurora.as_ref(),
                    self.metrics.as_ref(),
                    self.dns.as_ref(),
                    Some(self.permissions.as_ref()),
                    &cluster,
                )
            })
            .await?;
        let checks = plan::recheck(&cluster, &ctx.plan, &survey, self.limits())
            .map_err(|why| Stop::Refused(format!("{why}. Nothing was changed.")))?;
        ctx.rechecked = true;
        let warnings: Vec<String> = checks
            .iter()
            .filter(|c| c.outcome == plan::Outcome::Warn)
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect();
        Ok(format!(
            "{} ({}) is still the writer and {} ({}) still a secondary; every check passes{}",
            ctx.plan.from.cluster_id,
            ctx.plan.from.region,
            ctx.plan.to.cluster_id,
            ctx.plan.to.region,
            if warnings.is_empty() {
                ".".to_owned()
            } else {
                format!(", with warnings: {}.", warnings.join("; "))
            }
        ))
    }

    /// Before the first mutating call of a run taken up again past its re-check (the bot restarted in
    /// between): re-checks the plan, since the cluster may have changed while the bot was down.
    async fn recheck_if_resumed(&self, ctx: &mut Ctx, step: Step, deadline: jiff::Timestamp) -> Result<(), Stop> {
        if ctx.rechecked {
            return Ok(());
        }
        let detail = self.recheck(ctx, step, deadline).await?;
        self.say(
            ctx,
            Note::Observed {
                detail: format!("Re-checked after the restart, before changing anything: {detail}"),
            },
            &format!("run:{}:{}:rechecked", ctx.run.id, step.as_str()),
        )
        .await;
        Ok(())
    }

    /// Waits, unless the bot is shutting down.
    async fn pause(&self, ctx: &Ctx, d: Duration) -> Result<(), Stop> {
        tokio::select! {
            () = self.shutdown.cancelled() => Err(Stop::Interrupted),
            () = ctx.abort.cancelled() => Err(Stop::Abandoned),
            () = ctx.lost.cancelled() => Err(Stop::LostLease),
            () = tokio::time::sleep(d) => Ok(()),
        }
    }

    fn step_intro(&self, ctx: &Ctx, step: Step) -> String {
        let p = &ctx.plan;
        let s = &self.settings;
        match step {
            Step::Precheck => format!(
                "Checking that {} ({}) is still the writer and {} ({}) an available secondary.",
                p.from.cluster_id, p.from.region, p.to.cluster_id, p.to.region
            ),
            Step::Detach => format!(
                "Calling RemoveFromGlobalCluster for {} in {}.",
                p.to.cluster_id, p.to.region
            ),
            Step::Failover => format!(
                "Calling FailoverGlobalCluster (AllowDataLoss) for {} in {}.",
                p.to.cluster_id, p.to.region
            ),
            Step::Switchover => format!(
                "Calling SwitchoverGlobalCluster for {} in {}.",
                p.to.cluster_id, p.from.region
            ),
            Step::WaitManaged => format!(
                "Following FailoverState and the RDS events every {} ms, for at most {} s.",
                s.poll_interval.as_millis(),
                s.promote_timeout.as_secs()
            ),
            Step::WaitWritable => format!(
                "Polling {} every {} ms, for at most {} s.",
                p.to.cluster_id,
                s.poll_interval.as_millis(),
                s.promote_timeout.as_secs()
            ),
            Step::UpdateDns => format!(
                "UPSERTing {} and {} in one change batch.",
                p.writer_record, p.reader_record
            ),
            Step::WaitInsync => format!("Waiting for INSYNC, for at most {} s.", s.dns_timeout.as_secs()),
            Step::Verify => "Reading both records back.".to_owned(),
            Step::ProbeWrites => format!(
                "Resolving {} until it answers the new endpoint, then connecting through it.",
                ctx.plan.writer_record
            ),
            Step::CreateGlobal => format!(
                "Calling CreateGlobalCluster {} from {} in {}.",
                p.global_cluster_id, p.from.cluster_id, p.from.region
            ),
            Step::CreateSecondary => format!("Calling CreateDBCluster {} in {}.", p.to.cluster_id, p.to.region),
            Step::CreateInstances => format!("Calling CreateDBInstance for {}'s instances.", p.to.cluster_id),
            Step::Record => format!("Recording {} as {}'s global cluster.", p.global_cluster_id, p.cluster),
            Step::WaitGlobal | Step::WaitSecondary | Step::WaitReplicating => format!(
                "Polling every {} ms, for at most {} s.",
                s.poll_interval.as_millis(),
                s.rebuild_timeout.as_secs()
            ),
            Step::Done => String::new(),
        }
    }

    /// Runs an AWS read or idempotent write, riding out transient errors until `deadline`.
    async fn retrying<T, F, Fut>(
        &self,
        ctx: &Ctx,
        step: Step,
        what: &str,
        deadline: jiff::Timestamp,
        mut call: F,
    ) -> Result<T, Stop>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, AwsError>>,
    {
        let mut attempt = 0;
        loop {
            match call().await {
                Ok(v) => {
                    if attempt > 0 {
                        info!(what, "AWS answers again");
                    }
                    return Ok(v);
                }
                Err(e) if e.is_transient() && self.clock.now() < deadline => {
                    if attempt == 0 {
                        remember(&ctx.rode_out, format!("{what}: {e}"));
                        self.say(
                            ctx,
                            Note::Retrying {
                                detail: format!(
                                    "{what}: {e}. Backing off and trying again until {}; the run carries on as soon as \
                                     AWS answers.",
                                    deadline.strftime("%H:%M:%S UTC")
                                ),
                            },
                            &round_key(ctx, format!("run:{}:{}:retry:{what}", ctx.run.id, step.as_str())),
                        )
                        .await;
                    }
                    let wait = self.backoff(attempt).min(since(deadline, self.clock.now()));
                    attempt += 1;
                    self.pause(ctx, wait.max(Duration::from_millis(10))).await?;
                }
                Err(e) if e.is_transient() => {
                    return Err(Stop::Deadline(format!(
                        "{what} still fails at the step's deadline: {e}"
                    )));
                }
                Err(e) => return Err(Stop::Refused(format!("{what} failed: {e}"))),
            }
        }
    }

    async fn read_target(&self, ctx: &Ctx, step: Step, deadline: jiff::Timestamp) -> Result<ClusterState, Stop> {
        let (region, id) = (&ctx.plan.to.region, &ctx.plan.to.cluster_id);
        self.retrying(ctx, step, "DescribeDBClusters", deadline, || {
            self.aurora.cluster(region, id)
        })
        .await
    }

    /// Whether RemoveFromGlobalCluster took effect: the target says it is no longer a member, or is
    /// promoting, or the global cluster no longer lists it.
    async fn detached(&self, ctx: &Ctx, step: Step, deadline: jiff::Timestamp) -> Result<bool, Stop> {
        let target = self.read_target(ctx, step, deadline).await?;
        if target.global_cluster_id.is_none() || target.status == "promoting" {
            return Ok(true);
        }
        let topology = self
            .retrying(ctx, step, "DescribeGlobalClusters", deadline, || {
                self.aurora.topology(&ctx.plan.global_cluster_id, &ctx.plan.regions)
            })
            .await?;
        Ok(!topology.members.iter().any(|m| m.arn == ctx.plan.to.arn))
    }

    /// Queues a finished run's last reply and final stage (idempotent).
    async fn announce_outcome(&self, ctx: &Ctx) {
        if ctx.run.state == RunState::Abandoned {
            self.announce_abandoned(ctx, None, None).await;
            return;
        }
        let Some(outcome) = &ctx.data.outcome else { return };
        let approved_by = ctx.approved_by.clone();
        match outcome {
            Outcome::Completed(c) => {
                self.say(
                    ctx,
                    Note::Completed(c.as_ref().clone()),
                    &format!("run:{}:completed", ctx.run.id),
                )
                .await;
                self.stage(
                    ctx,
                    Stage::Succeeded {
                        approved_by,
                        took: c.total,
                    },
                    &format!("run:{}:stage:succeeded", ctx.run.id),
                )
                .await;
            }
            Outcome::Failed(f) => {
                self.say(ctx, Note::Failed(f.clone()), &format!("run:{}:failed", ctx.run.id))
                    .await;
                self.stage(
                    ctx,
                    Stage::Failed {
                        approved_by,
                        step: f.step,
                        reason: f.reason.clone(),
                    },
                    &format!("run:{}:stage:failed", ctx.run.id),
                )
                .await;
            }
        }
    }

    /// Queues an abandoned run's reply and final stage (idempotent). `still_running` names a managed
    /// operation AWS is still running.
    async fn announce_abandoned(&self, ctx: &Ctx, still_running: Option<String>, state_now: Option<(String, String)>) {
        let (Some(by), reason) = (
            ctx.run.control.abandoned_by.clone(),
            ctx.run.control.abandon_reason.clone(),
        ) else {
            return;
        };
        let reason = reason.unwrap_or_default();
        self.say(
            ctx,
            Note::Abandoned {
                run_id: ctx.run.id,
                by: by.clone(),
                reason: reason.clone(),
                still_running,
                state_now,
            },
            &format!("run:{}:abandoned", ctx.run.id),
        )
        .await;
        self.stage(
            ctx,
            Stage::Abandoned {
                approved_by: ctx.approved_by.clone(),
                by,
                reason,
            },
            &format!("run:{}:stage:abandoned", ctx.run.id),
        )
        .await;
    }

    /// After a person abandoned run `run_id` (the store says so): stops it here if it is executing,
    /// and says so in its thread, naming a managed operation AWS is still running.
    pub async fn abandoned(&self, run_id: RunId) -> anyhow::Result<()> {
        self.abort(run_id);
        let Some(ctx) = self.load(run_id).await? else {
            return Ok(());
        };
        self.count_outcome(&ctx, "abandoned");
        let in_flight = self
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&run_id)
            .cloned();
        let still_running = match ctx.plan.mode {
            _ if in_flight.is_some() => in_flight.map(|call| {
                format!(
                    "{call}, sent just before the abandon: it may still take effect, and the thread says if it does"
                )
            }),
            Mode::Detach => None,
            _ => match tokio::time::timeout(
                Duration::from_secs(5),
                self.aurora.topology(&ctx.plan.global_cluster_id, &ctx.plan.regions),
            )
            .await
            {
                Ok(Ok(t)) => t
                    .operation_in_progress
                    .map(|op| format!("the {} ({op}) towards {}", ctx.plan.mode, ctx.plan.to.cluster_id)),
                _ if ctx.data.managed_sent => Some(format!(
                    "the {} towards {} (whether it is still under way could not be read)",
                    ctx.plan.mode, ctx.plan.to.cluster_id
                )),
                _ => None,
            },
        };
        let state_now = self.facts(&ctx).await;
        self.announce_abandoned(&ctx, still_running, Some(state_now)).await;
        Ok(())
    }

    /// What a successful run leaves behind, by mode: for a managed failover, whether the old primary
    /// has rejoined and the point-of-failure snapshot (each read with a short timeout; best effort).
    async fn aftermath(&self, ctx: &Ctx) -> Aftermath {
        let p = &ctx.plan;
        let cluster = p.cluster.to_string();
        match p.mode {
            Mode::Detach => Aftermath::Detached {
                cluster,
                promoted: p.to.cluster_id.clone(),
            },
            Mode::Switchover => Aftermath::SwitchedOver { cluster },
            Mode::Rebuild => match &p.rebuild {
                Some(r) => Aftermath::Rebuilt(Box::new(rebuild::rebuilt(p, r))),
                None => Aftermath::SwitchedOver { cluster },
            },
            Mode::Failover => {
                let read = Duration::from_secs(5);
                let old = &p.from;
                let rejoined = matches!(
                    tokio::time::timeout(read, self.aurora.topology(&p.global_cluster_id, &p.regions)).await,
                    Ok(Ok(t)) if t.members.iter().any(|m| m.arn == old.arn && m.sync.as_deref() == Some("connected"))
                );
                let snapshots = self
                    .aurora
                    .failover_snapshots(&old.region, &old.cluster_id, ctx.run.started_at);
                let snapshot = match tokio::time::timeout(read, snapshots).await {
                    Ok(Ok(names)) => names.into_iter().next(),
                    _ => None,
                };
                Aftermath::FailedOver {
                    cluster,
                    rejoined,
                    snapshot,
                }
            }
        }
    }

    /// Counts the run's `outcome` in the metrics, under its cluster and mode.
    fn count_outcome(&self, ctx: &Ctx, outcome: &'static str) {
        self.telemetry
            .run(ctx.request.cluster.as_str(), ctx.plan.mode.as_str(), outcome);
    }

    async fn succeed(&self, ctx: &mut Ctx) -> anyhow::Result<()> {
        let aftermath = self.aftermath(ctx).await;
        let now = self.clock.now();
        let total = since(now, ctx.run.started_at);
        let (w, r) = ctx.data.endpoints.clone().unwrap_or_default();
        ctx.data.outcome = Some(Outcome::Completed(Box::new(Completion {
            writer_record: ctx.plan.writer_record.clone(),
            reader_record: ctx.plan.reader_record.clone(),
            writer_follows: (ctx.plan.follows_global(Some(&w))).then(|| ctx.plan.to.cluster_id.clone()),
            writer_endpoint: w,
            reader_endpoint: r,
            phases: ctx
                .data
                .phases
                .iter()
                .map(|(s, m)| (*s, Duration::from_millis(*m)))
                .collect(),
            total,
            old_primary: ctx.plan.from.clone(),
            after: Some(aftermath),
            writes_through_cname: ctx.data.writable_after_ms.map(Duration::from_millis),
        })));
        if !self.finish(ctx, RunState::Succeeded, None).await? {
            info!("the run was abandoned before it finished; its end is not announced");
            return Ok(());
        }
        self.count_outcome(ctx, "succeeded");
        self.announce_outcome(ctx).await;
        info!(took_ms = ms(total), "run succeeded");
        Ok(())
    }

    /// Records the run's end (with a journal line, for a failure), riding out a busy or failing store
    /// with backoff; `false` when the run had already ended (a person abandoned it). Gives up only
    /// when the bot shuts down (the run then ends at the next start).
    async fn finish(&self, ctx: &Ctx, state: RunState, failed: Option<(Step, &str)>) -> anyhow::Result<bool> {
        let data = &serde_json::to_string(&ctx.data)?;
        let record = || async move {
            let now = self.clock.now();
            if let Some((step, reason)) = failed {
                self.store
                    .journal(ctx.run.id, now, step.as_str(), "failed", reason, ctx.fence.as_ref())
                    .await?;
            }
            self.store
                .finish_run(ctx.run.id, state, data, now, ctx.fence.as_ref())
                .await
        };
        self.stubbornly(ctx, "the run's end", record)
            .await
            .map_err(|_| anyhow::anyhow!("the bot is stopping before the run's end could be recorded"))
    }

    /// What the target cluster and the CNAMEs look like now, as far as can be told quickly.
    async fn facts(&self, ctx: &Ctx) -> (String, String) {
        let read = Duration::from_secs(10);
        let cluster_now =
            match tokio::time::timeout(read, self.aurora.cluster(&ctx.plan.to.region, &ctx.plan.to.cluster_id)).await {
                Ok(Ok(c)) => describe(&c),
                Ok(Err(e)) if e.kind == AwsErrorKind::NotFound => format!("{} was not found", ctx.plan.to.cluster_id),
                Ok(Err(e)) => format!("{} could not be read ({e})", ctx.plan.to.cluster_id),
                Err(_) => format!("{} could not be read (timed out)", ctx.plan.to.cluster_id),
            };
        let names = [ctx.plan.writer_record.as_str(), ctx.plan.reader_record.as_str()];
        let dns_now = match tokio::time::timeout(read, self.dns.cnames(&ctx.plan.zone_id, &names)).await {
            Ok(Ok(v)) => format!(
                "{} → {}, {} → {}",
                names[0],
                v.first().and_then(|x| x.as_deref()).unwrap_or("(missing)"),
                names[1],
                v.get(1).and_then(|x| x.as_deref()).unwrap_or("(missing)")
            ),
            Ok(Err(e)) => format!("the records could not be read ({e})"),
            Err(_) => "the records could not be read (timed out)".to_owned(),
        };
        (cluster_now, dns_now)
    }

    async fn fail(&self, ctx: &mut Ctx, step: Step, reason: String) -> anyhow::Result<()> {
        warn!(step = step.as_str(), %reason, "run failed");
        let (cluster_now, dns_now) = self.facts(ctx).await;
        ctx.data.outcome = Some(Outcome::Failed(Failure {
            step,
            reason: reason.clone(),
            cluster_now,
            dns_now,
            dns_touched: ctx.data.dns_sent,
        }));
        if self.finish(ctx, RunState::Failed, Some((step, &reason))).await? {
            self.count_outcome(ctx, "failed");
            self.announce_outcome(ctx).await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
