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
//!   configured interval; transient AWS errors are ridden out until the deadline, others fail the step;
//! - every failure ends the run with a report of where, why, and what state the cluster and DNS are in;
//! - every thread reply carries an idempotency key, and is queued before the checkpoint that makes it
//!   true, so that a restart at any point leaves each reply in the thread exactly once;
//! - on shutdown, a run stops at its next pause and resumes at the next start.

pub mod plan;
pub mod report;

use crate::ports::{Aurora, AwsError, AwsErrorKind, Chat, Clock, ClusterState, Dns};
use crate::settings::RunbookSettings;
use crate::store::{Request, Run, RunState, Store};
use crate::types::SlackUserId;
use plan::Plan;
use report::{Completion, Failure, Note, Stage};
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
    WaitWritable,
    UpdateDns,
    WaitInsync,
    Verify,
    Done,
}

impl Step {
    pub const FIRST: Step = Step::Precheck;

    pub fn as_str(self) -> &'static str {
        match self {
            Step::Precheck => "precheck",
            Step::Detach => "detach",
            Step::WaitWritable => "wait_writable",
            Step::UpdateDns => "update_dns",
            Step::WaitInsync => "wait_insync",
            Step::Verify => "verify",
            Step::Done => "done",
        }
    }

    pub fn parse(s: &str) -> Option<Step> {
        [
            Step::Precheck,
            Step::Detach,
            Step::WaitWritable,
            Step::UpdateDns,
            Step::WaitInsync,
            Step::Verify,
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
            Step::WaitWritable => "Wait until the target is writable",
            Step::UpdateDns => "Repoint the CNAMEs",
            Step::WaitInsync => "Wait for Route 53 INSYNC",
            Step::Verify => "Verify the records",
            Step::Done => "Done",
        }
    }

    fn next(self) -> Step {
        match self {
            Step::Precheck => Step::Detach,
            Step::Detach => Step::WaitWritable,
            Step::WaitWritable => Step::UpdateDns,
            Step::UpdateDns => Step::WaitInsync,
            Step::WaitInsync => Step::Verify,
            Step::Verify | Step::Done => Step::Done,
        }
    }
}

/// The least time a resumed run's reads get to ride out transient errors.
const READ_GRACE: Duration = Duration::from_secs(60);

/// How a finished run ended, kept with it so that its last reply can be queued again after a crash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Completed(Completion),
    Failed(Failure),
}

/// A run's working data, checkpointed with its step.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunData {
    /// When the current step started (its deadline counts from here, across restarts), in ms.
    pub step_started_ms: Option<i64>,
    /// Each finished step and how long it took, in ms.
    pub phases: Vec<(Step, u64)>,
    /// Set just before RemoveFromGlobalCluster is sent.
    pub detach_sent: bool,
    /// The promoted cluster's endpoint and reader endpoint, once writable.
    pub endpoints: Option<(String, String)>,
    /// Set just before the DNS change is sent (it may have been made even if no answer came back).
    #[serde(default)]
    pub dns_sent: bool,
    /// The Route 53 change id, once submitted.
    pub change_id: Option<String>,
    /// The target's status and writer flag as last observed.
    pub last_seen: Option<String>,
    /// How the run ended, once it has.
    #[serde(default)]
    pub outcome: Option<Outcome>,
}

/// Why a step did not finish.
#[derive(Debug)]
enum Stop {
    /// It failed: the reason, in words for the thread.
    Failed(String),
    /// The bot is shutting down: the run resumes at the next start.
    Interrupted,
}

/// Runs approved requests.
pub struct Runner {
    pub store: Arc<Store>,
    pub aurora: Arc<dyn Aurora>,
    pub dns: Arc<dyn Dns>,
    pub chat: Arc<dyn Chat>,
    pub clock: Arc<dyn Clock>,
    pub settings: RunbookSettings,
    /// Cancelled when the bot shuts down: runs stop at their next pause, their state saved.
    pub shutdown: CancellationToken,
}

/// Everything one run works with.
struct Ctx {
    /// When this process took the run up (its reads get a fresh budget after a restart).
    resumed_at: jiff::Timestamp,
    run: Run,
    request: Request,
    plan: Plan,
    data: RunData,
    approved_by: SlackUserId,
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

fn same_host(a: &str, b: &str) -> bool {
    a.trim_end_matches('.').eq_ignore_ascii_case(b.trim_end_matches('.'))
}

/// The idempotency key of the "approved" reply of request `id` (posted by whoever gets there first:
/// the approval itself, or the run it started, after a crash in between).
pub fn approved_key(request_id: i64) -> String {
    format!("request:{request_id}:approved")
}

impl Runner {
    /// Executes (or resumes) a run to its end, or until shutdown. Never panics on AWS or Slack trouble:
    /// every failure ends the run as failed, with a report.
    pub async fn execute(self: Arc<Self>, run_id: i64) {
        let span = tracing::info_span!("run", run_id);
        async move {
            if let Err(e) = self.try_execute(run_id).await {
                warn!(error = %e, "run could not be executed");
            }
        }
        .instrument(span)
        .await
    }

    fn load(&self, run_id: i64) -> anyhow::Result<Option<Ctx>> {
        let Some(run) = self.store.run(run_id)? else {
            anyhow::bail!("no run {run_id}");
        };
        let request = self
            .store
            .request(run.request_id)?
            .ok_or_else(|| anyhow::anyhow!("run {run_id} has no request"))?;
        let plan: Plan = serde_json::from_str(request.plan.as_deref().unwrap_or_default())?;
        let data: RunData = serde_json::from_str(&run.data).unwrap_or_default();
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
        }))
    }

    async fn try_execute(&self, run_id: i64) -> anyhow::Result<()> {
        let Some(mut ctx) = self.load(run_id)? else {
            return Ok(());
        };
        if ctx.run.state != RunState::Running {
            // Finished: make sure its last reply made it to the queue (a crash may have come between).
            self.announce_outcome(&ctx);
            return Ok(());
        }
        // The approval's reply, in case the bot died between recording the approval and queuing it.
        self.say(
            &ctx,
            Note::Approved {
                by: ctx.approved_by.clone(),
            },
            &approved_key(ctx.request.id),
        );
        let mut step = Step::parse(&ctx.run.step).ok_or_else(|| anyhow::anyhow!("unknown step {}", ctx.run.step))?;
        while step != Step::Done {
            if self.shutdown.is_cancelled() {
                return self.interrupted(&ctx, step);
            }
            let started = match ctx.data.step_started_ms {
                Some(ms) => jiff::Timestamp::from_millisecond(ms)?,
                None => {
                    let now = self.clock.now();
                    self.say(
                        &ctx,
                        Note::StepStarted {
                            step,
                            detail: self.step_intro(&ctx, step),
                        },
                        &format!("run:{}:{}:started", ctx.run.id, step.as_str()),
                    );
                    self.stage(
                        &ctx,
                        Stage::Running {
                            approved_by: ctx.approved_by.clone(),
                            step,
                        },
                        &format!("run:{}:stage:{}", ctx.run.id, step.as_str()),
                    );
                    ctx.data.step_started_ms = Some(now.as_millisecond());
                    self.checkpoint(&ctx, step, Some((step, "started", "")))?;
                    now
                }
            };
            info!(step = step.as_str(), "step");
            match self.perform(&mut ctx, step, started).await {
                Ok(detail) => {
                    let took = since(self.clock.now(), started);
                    self.say(
                        &ctx,
                        Note::StepFinished {
                            step,
                            detail: detail.clone(),
                            took,
                        },
                        &format!("run:{}:{}:finished", ctx.run.id, step.as_str()),
                    );
                    ctx.data.phases.push((step, ms(took)));
                    ctx.data.step_started_ms = None;
                    let next = step.next();
                    self.checkpoint(&ctx, next, Some((step, "finished", &detail)))?;
                    step = next;
                }
                Err(Stop::Interrupted) => return self.interrupted(&ctx, step),
                Err(Stop::Failed(reason)) => {
                    self.fail(&mut ctx, step, reason).await?;
                    return Ok(());
                }
            }
        }
        self.succeed(&mut ctx)?;
        Ok(())
    }

    fn interrupted(&self, ctx: &Ctx, step: Step) -> anyhow::Result<()> {
        info!(
            step = step.as_str(),
            "run interrupted by shutdown; it resumes at the next start"
        );
        self.store.journal(
            ctx.run.id,
            self.clock.now(),
            step.as_str(),
            "interrupted",
            "the bot shut down; the run resumes here at the next start",
        )?;
        Ok(())
    }

    fn checkpoint(&self, ctx: &Ctx, next: Step, entry: Option<(Step, &str, &str)>) -> anyhow::Result<()> {
        let data = serde_json::to_string(&ctx.data)?;
        self.store.checkpoint(
            ctx.run.id,
            next.as_str(),
            &data,
            entry.map(|(s, e, d)| (s.as_str(), e, d)),
            self.clock.now(),
        )?;
        Ok(())
    }

    fn say(&self, ctx: &Ctx, note: Note, key: &str) {
        let broadcast = matches!(note, Note::Completed(_) | Note::Failed(_));
        if let Err(e) = self.chat.note(&ctx.request, &note, broadcast, key) {
            warn!(error = %e, "cannot queue a thread reply");
        }
    }

    fn stage(&self, ctx: &Ctx, stage: Stage, key: &str) {
        if let Err(e) = self.chat.update_request(&ctx.request, &ctx.plan, &stage, Some(key)) {
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

    /// Waits, unless the bot is shutting down.
    async fn pause(&self, d: Duration) -> Result<(), Stop> {
        tokio::select! {
            () = self.shutdown.cancelled() => Err(Stop::Interrupted),
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
            Step::Done => String::new(),
        }
    }

    async fn perform(&self, ctx: &mut Ctx, step: Step, started: jiff::Timestamp) -> Result<String, Stop> {
        // Reads ride out transient errors for a while from the step's start; a run taken up again after
        // a restart gets at least READ_GRACE of its own.
        let read_deadline = self.resumed(
            ctx,
            started,
            plus(started, self.settings.promote_timeout.min(Duration::from_secs(120))),
        );
        match step {
            Step::Precheck => {
                let topology = self
                    .retrying(ctx, step, "DescribeGlobalClusters", read_deadline, || {
                        self.aurora.topology(&ctx.plan.global_cluster_id, &ctx.plan.regions)
                    })
                    .await?;
                let target = self.read_target(ctx, step, read_deadline).await?;
                plan::recheck(&ctx.plan, &topology, &target)
                    .map_err(|why| Stop::Failed(format!("{why}. Nothing was changed.")))?;
                let zone = ctx.plan.zone_id.clone();
                let writer_record = ctx.plan.writer_record.clone();
                let names = [writer_record.as_str()];
                let now = self
                    .retrying(ctx, step, "ListResourceRecordSets", read_deadline, || {
                        self.dns.cnames(&zone, &names)
                    })
                    .await?;
                plan::check_writer_cname(&writer_record, now.first().and_then(|v| v.as_deref()), &ctx.plan.from)
                    .map_err(|why| Stop::Failed(format!("{why}. Nothing was changed.")))?;
                Ok(format!(
                    "{} ({}) is the writer; {} ({}) is {} with {} instance(s).",
                    ctx.plan.from.cluster_id,
                    ctx.plan.from.region,
                    target.cluster_id,
                    target.region,
                    target.status,
                    target.instances
                ))
            }
            Step::Detach => {
                if ctx.data.detach_sent && self.detached(ctx, step, read_deadline).await? {
                    return Ok(format!("{} left the global cluster.", ctx.plan.to.cluster_id));
                }
                ctx.data.detach_sent = true;
                self.checkpoint(ctx, step, None)
                    .map_err(|e| Stop::Failed(format!("cannot record progress: {e}")))?;
                loop {
                    match self.aurora.detach(&ctx.plan.global_cluster_id, &ctx.plan.to).await {
                        Ok(()) => {
                            return Ok(format!(
                                "{} left {}; it is promoting to a standalone writable cluster.",
                                ctx.plan.to.cluster_id, ctx.plan.global_cluster_id
                            ));
                        }
                        Err(e) => {
                            // Whatever the error, the call may have taken effect (its answer lost on the
                            // way back): look before deciding, and before ever sending it again.
                            if self.detached(ctx, step, read_deadline).await? {
                                return Ok(format!("{} left the global cluster.", ctx.plan.to.cluster_id));
                            }
                            if !(e.is_transient() && self.clock.now() < read_deadline) {
                                return Err(Stop::Failed(format!("RemoveFromGlobalCluster failed: {e}")));
                            }
                            self.say(
                                ctx,
                                Note::Retrying {
                                    detail: format!(
                                        "RemoveFromGlobalCluster failed ({e}); {} is still a member, trying again.",
                                        ctx.plan.to.cluster_id
                                    ),
                                },
                                &format!("run:{}:{}:retry:RemoveFromGlobalCluster", ctx.run.id, step.as_str()),
                            );
                            self.pause(self.settings.poll_interval).await?;
                        }
                    }
                }
            }
            Step::WaitWritable => {
                let deadline = plus(started, self.settings.promote_timeout);
                loop {
                    let state = self.read_target(ctx, step, deadline).await?;
                    let seen = format!(
                        "{}, {}",
                        state.status,
                        if state.has_writer { "writer" } else { "no writer" }
                    );
                    if ctx.data.last_seen.as_deref() != Some(seen.as_str()) {
                        let detail = match &ctx.data.last_seen {
                            Some(before) => format!("{}: {before} → {seen}", state.cluster_id),
                            None => format!("{}: {seen}", state.cluster_id),
                        };
                        self.say(
                            ctx,
                            Note::Observed { detail: detail.clone() },
                            &format!("run:{}:observed:{detail}", ctx.run.id),
                        );
                        ctx.data.last_seen = Some(seen);
                        if let Err(e) =
                            self.store
                                .journal(ctx.run.id, self.clock.now(), step.as_str(), "observed", &detail)
                        {
                            warn!(error = %e, "cannot journal an observation");
                        }
                        self.checkpoint(ctx, step, None)
                            .map_err(|e| Stop::Failed(format!("cannot record progress: {e}")))?;
                    }
                    if state.is_writable() {
                        let (Some(w), Some(r)) = (state.endpoint.clone(), state.reader_endpoint.clone()) else {
                            return Err(Stop::Failed(format!(
                                "{} is writable but has no endpoints",
                                state.cluster_id
                            )));
                        };
                        ctx.data.endpoints = Some((w.clone(), r.clone()));
                        return Ok(format!(
                            "{} is writable. Endpoint {w}, reader endpoint {r}.",
                            state.cluster_id
                        ));
                    }
                    let now = self.clock.now();
                    if now >= deadline {
                        return Err(Stop::Failed(format!(
                            "{} was not writable after {} s (last seen: {}). DNS was not changed.",
                            ctx.plan.to.cluster_id,
                            self.settings.promote_timeout.as_secs(),
                            ctx.data.last_seen.as_deref().unwrap_or("nothing")
                        )));
                    }
                    self.pause(self.settings.poll_interval.min(since(deadline, now)))
                        .await?;
                }
            }
            Step::UpdateDns => {
                let deadline = self.resumed(ctx, started, plus(started, self.settings.dns_timeout));
                // Never point DNS at a cluster that is not writable: look again right before.
                let state = self.read_target(ctx, step, deadline).await?;
                if !state.is_writable() {
                    return Err(Stop::Failed(format!(
                        "{} is no longer writable ({}); refusing to point DNS at it. DNS was not changed.",
                        state.cluster_id,
                        describe(&state)
                    )));
                }
                let (Some(w), Some(r)) = (state.endpoint.clone(), state.reader_endpoint.clone()) else {
                    return Err(Stop::Failed(format!("{} has no endpoints", state.cluster_id)));
                };
                ctx.data.endpoints = Some((w.clone(), r.clone()));
                let comment = format!(
                    "aurora-failover-bot request #{}: {} to {}",
                    ctx.request.id, ctx.plan.cluster, ctx.plan.to.region
                );
                let zone = ctx.plan.zone_id.clone();
                let records = [
                    (ctx.plan.writer_record.as_str(), w.as_str()),
                    (ctx.plan.reader_record.as_str(), r.as_str()),
                ];
                let ttl = ctx.plan.record_ttl;
                ctx.data.dns_sent = true;
                self.checkpoint(ctx, step, None)
                    .map_err(|e| Stop::Failed(format!("cannot record progress: {e}")))?;
                let change_id = self
                    .retrying(ctx, step, "ChangeResourceRecordSets", deadline, || {
                        self.dns.upsert_cnames(&zone, &records, ttl, &comment)
                    })
                    .await?;
                ctx.data.change_id = Some(change_id.clone());
                Ok(format!(
                    "Change {change_id} submitted: {} → {w}, {} → {r}.",
                    ctx.plan.writer_record, ctx.plan.reader_record
                ))
            }
            Step::WaitInsync => {
                let deadline = plus(started, self.settings.dns_timeout);
                let change_id = ctx
                    .data
                    .change_id
                    .clone()
                    .ok_or_else(|| Stop::Failed("no change id recorded".into()))?;
                loop {
                    let insync = self
                        .retrying(ctx, step, "GetChange", deadline, || self.dns.change_insync(&change_id))
                        .await?;
                    if insync {
                        return Ok(format!("Change {change_id} is INSYNC."));
                    }
                    let now = self.clock.now();
                    if now >= deadline {
                        return Err(Stop::Failed(format!(
                            "Route 53 did not report change {change_id} INSYNC within {} s. The records were changed; they may not have reached every resolver yet.",
                            self.settings.dns_timeout.as_secs()
                        )));
                    }
                    self.pause(self.settings.poll_interval.min(since(deadline, now)))
                        .await?;
                }
            }
            Step::Verify => {
                let (w, r) = ctx
                    .data
                    .endpoints
                    .clone()
                    .ok_or_else(|| Stop::Failed("no endpoints recorded".into()))?;
                let zone = ctx.plan.zone_id.clone();
                let names = [ctx.plan.writer_record.as_str(), ctx.plan.reader_record.as_str()];
                let values = self
                    .retrying(ctx, step, "ListResourceRecordSets", read_deadline, || {
                        self.dns.cnames(&zone, &names)
                    })
                    .await?;
                let mut problems = Vec::new();
                for ((name, expected), got) in names.iter().zip([&w, &r]).zip(&values) {
                    match got {
                        Some(v) if same_host(v, expected) => {}
                        Some(v) => problems.push(format!("{name} points at {v}, not {expected}")),
                        None => problems.push(format!("{name} does not exist")),
                    }
                }
                if !problems.is_empty() {
                    return Err(Stop::Failed(format!(
                        "the records are not as written: {}",
                        problems.join("; ")
                    )));
                }
                let state = self.read_target(ctx, step, read_deadline).await?;
                if !state.is_writable() {
                    return Err(Stop::Failed(format!(
                        "DNS is moved, but {} is no longer writable ({})",
                        state.cluster_id,
                        describe(&state)
                    )));
                }
                Ok(format!(
                    "{} → {w} and {} → {r}; {} is writable.",
                    names[0], names[1], state.cluster_id
                ))
            }
            Step::Done => Ok(String::new()),
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
        let mut told = false;
        loop {
            match call().await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_transient() && self.clock.now() < deadline => {
                    if !told {
                        self.say(
                            ctx,
                            Note::Retrying {
                                detail: format!(
                                    "{what} failed ({e}); retrying every {} ms until {}.",
                                    self.settings.poll_interval.as_millis(),
                                    deadline.strftime("%H:%M:%S UTC")
                                ),
                            },
                            &format!("run:{}:{}:retry:{what}", ctx.run.id, step.as_str()),
                        );
                        told = true;
                    }
                    self.pause(self.settings.poll_interval).await?;
                }
                Err(e) => return Err(Stop::Failed(format!("{what} failed: {e}"))),
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
    fn announce_outcome(&self, ctx: &Ctx) {
        let Some(outcome) = &ctx.data.outcome else { return };
        let approved_by = ctx.approved_by.clone();
        match outcome {
            Outcome::Completed(c) => {
                self.say(
                    ctx,
                    Note::Completed(c.clone()),
                    &format!("run:{}:completed", ctx.run.id),
                );
                self.stage(
                    ctx,
                    Stage::Succeeded {
                        approved_by,
                        took: c.total,
                    },
                    &format!("run:{}:stage:succeeded", ctx.run.id),
                );
            }
            Outcome::Failed(f) => {
                self.say(ctx, Note::Failed(f.clone()), &format!("run:{}:failed", ctx.run.id));
                self.stage(
                    ctx,
                    Stage::Failed {
                        approved_by,
                        step: f.step,
                        reason: f.reason.clone(),
                    },
                    &format!("run:{}:stage:failed", ctx.run.id),
                );
            }
        }
    }

    fn succeed(&self, ctx: &mut Ctx) -> anyhow::Result<()> {
        let now = self.clock.now();
        let total = since(now, ctx.run.started_at);
        let (w, r) = ctx.data.endpoints.clone().unwrap_or_default();
        ctx.data.outcome = Some(Outcome::Completed(Completion {
            writer_record: ctx.plan.writer_record.clone(),
            reader_record: ctx.plan.reader_record.clone(),
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
        }));
        self.store
            .finish_run(ctx.run.id, RunState::Succeeded, &serde_json::to_string(&ctx.data)?, now)?;
        self.announce_outcome(ctx);
        info!(took_ms = ms(total), "run succeeded");
        Ok(())
    }

    async fn fail(&self, ctx: &mut Ctx, step: Step, reason: String) -> anyhow::Result<()> {
        warn!(step = step.as_str(), %reason, "run failed");
        // What things look like now, as far as we can tell quickly.
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
        let now = self.clock.now();
        ctx.data.outcome = Some(Outcome::Failed(Failure {
            step,
            reason: reason.clone(),
            cluster_now,
            dns_now,
            dns_touched: ctx.data.dns_sent,
        }));
        self.store.journal(ctx.run.id, now, step.as_str(), "failed", &reason)?;
        self.store
            .finish_run(ctx.run.id, RunState::Failed, &serde_json::to_string(&ctx.data)?, now)?;
        self.announce_outcome(ctx);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
