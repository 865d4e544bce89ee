//! One function per step of a run, and the two patterns they share: a mutating call made at most
//! once (`Runner::mutate_once`) and a read polled until it shows what the step waits for
//! (`Runner::poll_until`). The executor (`Runner::steps` in `mod.rs`) calls `perform` for the run's
//! next step; it owns journaling, checkpoints, resume and the step's deadline, so a step function
//! only does its work and returns what it did (`Ok`) or why it stopped (`Err(Stop)`).

use super::{
    Ctx, MANAGED_GRACE, RunData, Runner, SETTLE_READS, Step, Stop, describe, keep_endpoints, operation_under_way, plan,
    plus, remember, round_key, since, stuck,
};
use crate::ports::{AwsError, ClusterState};
use crate::runbook::report::Note;
use crate::types::same_host;
use std::time::Duration;

/// A mutating AWS call the run must make at most once: none of them is safe to send twice.
#[derive(Debug, Clone, Copy)]
enum Mutation {
    Detach,
    Failover,
    Switchover,
}

impl Mutation {
    /// The AWS action, as the thread and the retry keys name it.
    fn call(self) -> &'static str {
        match self {
            Mutation::Detach => "RemoveFromGlobalCluster",
            Mutation::Failover => "FailoverGlobalCluster",
            Mutation::Switchover => "SwitchoverGlobalCluster",
        }
    }

    /// The run's flag saying the call may have been sent; set and checkpointed before it is.
    fn sent(self, data: &mut RunData) -> &mut bool {
        match self {
            Mutation::Detach => &mut data.detach_sent,
            Mutation::Failover | Mutation::Switchover => &mut data.managed_sent,
        }
    }

    /// The retry reply after a transient failure that did not take effect.
    fn retry(self, ctx: &Ctx, e: &AwsError) -> String {
        match self {
            Mutation::Detach => format!(
                "RemoveFromGlobalCluster failed ({e}); {} is still a member, trying again.",
                ctx.plan.to.cluster_id
            ),
            _ => format!("{} failed ({e}); nothing started, trying again.", self.call()),
        }
    }

    /// Why the run stops after a failure it will not retry; `earlier` says an earlier attempt was sent
    /// (it may yet show up).
    fn give_up(self, ctx: &Ctx, e: &AwsError, earlier: bool) -> Stop {
        let call = self.call();
        match self {
            // The target, read in its own Region, says it is still a member: no attempt took effect
            // (unlike a managed operation, a detach shows at once there).
            Mutation::Detach => Stop::Reverted(format!(
                "{call} failed: {e}. {} is still a member: nothing was changed",
                ctx.plan.to.cluster_id
            )),
            // An earlier attempt may yet show up (reads lag): a person decides.
            _ if earlier => Stop::Refused(format!(
                "{call} failed: {e}. An earlier attempt was sent and is not seen under way; whether it started cannot \
                 be told yet"
            )),
            // Its only attempt did not take effect: nothing was changed.
            _ => Stop::Reverted(format!(
                "{call} failed: {e}. The topology shows it did not start: nothing was changed"
            )),
        }
    }
}

/// How a mutating call turned out.
enum Effect {
    /// AWS accepted it just now.
    Accepted,
    /// Reads show it took effect (an earlier attempt, or one whose answer was lost).
    Seen,
}

/// What a waiting step polls for, with what it keeps between reads.
enum Wait {
    /// A managed operation, until the target is the writer and writable. `grace`: until when an
    /// operation accepted but never seen is still waited for; `quiet`: topology reads in a row with
    /// nothing in progress and the target not writing.
    Managed { grace: jiff::Timestamp, quiet: u32 },
    /// The detached target, until it is writable.
    Writable,
    /// A Route 53 change, until it is INSYNC.
    Insync { change_id: String },
}

impl Runner {
    /// Does `step` (the executor journals and checkpoints around it). `started` is when the step
    /// began, across restarts: its deadline counts from there.
    pub(super) async fn perform(&self, ctx: &mut Ctx, step: Step, started: jiff::Timestamp) -> Result<String, Stop> {
        // Reads ride out transient errors for a while from the step's start; a run taken up again after
        // a restart gets at least READ_GRACE of its own.
        let read_deadline = self.resumed(
            ctx,
            started,
            plus(started, self.settings.promote_timeout.min(Duration::from_secs(120))),
        );
        if ctx.plan.mode == crate::types::Mode::Rebuild {
            return self.perform_rebuild(ctx, step, started, read_deadline).await;
        }
        match step {
            Step::Precheck => self.recheck(ctx, step, read_deadline).await,
            Step::Failover | Step::Switchover => self.managed_call(ctx, step, read_deadline).await,
            Step::WaitManaged => self.wait_managed(ctx, step, started).await,
            Step::Detach => self.detach(ctx, step, read_deadline).await,
            Step::WaitWritable => self.wait_writable(ctx, step, started).await,
            Step::UpdateDns => self.update_dns(ctx, step, started).await,
            Step::WaitInsync => self.wait_insync(ctx, step, started).await,
            Step::Verify => self.verify(ctx, step, read_deadline).await,
            Step::ProbeWrites => self.probe_writes(ctx, step, started, read_deadline).await,
            Step::Done => Ok(String::new()),
            rebuild => Err(Stop::Refused(format!(
                "{} is a step of a rebuild, not of a {}",
                rebuild.as_str(),
                ctx.plan.mode
            ))),
        }
    }

    /// Makes `m`'s call at most once: looks first whether an earlier attempt (before a restart) took
    /// effect, re-checks the plan if this process has not, records that the call may be sent, then
    /// sends it; after any error it looks again (the answer may have been lost) before it retries a
    /// transient error or gives up.
    async fn mutate_once(
        &self,
        ctx: &mut Ctx,
        step: Step,
        m: Mutation,
        read_deadline: jiff::Timestamp,
    ) -> Result<Effect, Stop> {
        let sent_before = *m.sent(&mut ctx.data);
        if sent_before && self.took_effect(ctx, step, m, read_deadline).await? {
            return Ok(Effect::Seen);
        }
        self.recheck_if_resumed(ctx, step, read_deadline).await?;
        *m.sent(&mut ctx.data) = true;
        self.persist(ctx, step, None).await?;
        let mut attempts = 0u32;
        loop {
            // A person may have abandoned the run meanwhile: never send it after that.
            self.ensure_open(ctx).await?;
            attempts += 1;
            let Err(e) = self.mutating(ctx, m.call(), self.send(ctx, m)).await else {
                return Ok(Effect::Accepted);
            };
            if self.took_effect(ctx, step, m, read_deadline).await? {
                return Ok(Effect::Seen);
            }
            if !(e.is_transient() && self.clock.now() < read_deadline) {
                return Err(m.give_up(ctx, &e, sent_before || attempts > 1));
            }
            self.say(
                ctx,
                Note::Retrying {
                    detail: m.retry(ctx, &e),
                },
                &round_key(ctx, format!("run:{}:{}:retry:{}", ctx.run.id, step.as_str(), m.call())),
            )
            .await;
            self.pause(ctx, self.settings.poll_interval).await?;
        }
    }

    /// Sends `m` once.
    async fn send(&self, ctx: &Ctx, m: Mutation) -> Result<(), AwsError> {
        let p = &ctx.plan;
        match m {
            Mutation::Detach => self.aurora.detach(&p.global_cluster_id, &p.to).await,
            Mutation::Failover => self.aurora.failover(&p.global_cluster_id, &p.to).await,
            Mutation::Switchover => self.aurora.switchover(&p.global_cluster_id, &p.to, &p.from).await,
        }
    }

    /// Whether `m` took effect, as reads show it.
    async fn took_effect(&self, ctx: &Ctx, step: Step, m: Mutation, deadline: jiff::Timestamp) -> Result<bool, Stop> {
        match m {
            Mutation::Detach => self.detached(ctx, step, deadline).await,
            Mutation::Failover | Mutation::Switchover => self.managed_settled(ctx, step, deadline).await,
        }
    }

    /// Polls for `wait` at the poll interval until it is met, or stops once `deadline` has passed.
    /// The last pause is cut short at the deadline.
    async fn poll_until(
        &self,
        ctx: &mut Ctx,
        step: Step,
        deadline: jiff::Timestamp,
        mut wait: Wait,
    ) -> Result<String, Stop> {
        loop {
            let met = match &mut wait {
                Wait::Managed { grace, quiet } => self.managed_progress(ctx, step, deadline, *grace, quiet).await?,
                Wait::Writable => self.writable_yet(ctx, step, deadline).await?,
                Wait::Insync { change_id } => self.insync_yet(ctx, step, deadline, change_id).await?,
            };
            if let Some(done) = met {
                return Ok(done);
            }
            let now = self.clock.now();
            if now >= deadline {
                return Err(self.overdue(ctx, &wait));
            }
            self.pause(ctx, self.settings.poll_interval.min(since(deadline, now)))
                .await?;
        }
    }

    /// Why a wait stopped at its deadline.
    fn overdue(&self, ctx: &Ctx, wait: &Wait) -> Stop {
        let last_seen = ctx.data.last_seen.as_deref().unwrap_or("nothing");
        let (target, promote) = (&ctx.plan.to.cluster_id, self.settings.promote_timeout.as_secs());
        Stop::Deadline(match wait {
            Wait::Managed { .. } => {
                format!("{target} was not the writer after {promote} s (last seen: {last_seen}). DNS was not changed.")
            }
            Wait::Writable => {
                format!("{target} was not writable after {promote} s (last seen: {last_seen}). DNS was not changed.")
            }
            Wait::Insync { change_id } => format!(
                "Route 53 did not report change {change_id} INSYNC within {} s. The records were changed; they may \
                 not have reached every resolver yet.",
                self.settings.dns_timeout.as_secs()
            ),
        })
    }

    /// FailoverGlobalCluster or SwitchoverGlobalCluster, at most once.
    async fn managed_call(&self, ctx: &mut Ctx, step: Step, read_deadline: jiff::Timestamp) -> Result<String, Stop> {
        let m = if step == Step::Failover {
            Mutation::Failover
        } else {
            Mutation::Switchover
        };
        match self.mutate_once(ctx, step, m, read_deadline).await? {
            Effect::Accepted => Ok(format!(
                "{} accepted: {} is being promoted.",
                m.call(),
                ctx.plan.to.cluster_id
            )),
            Effect::Seen => {
                ctx.data.managed_seen = true;
                Ok(format!(
                    "The {} to {} is under way.",
                    ctx.plan.mode, ctx.plan.to.cluster_id
                ))
            }
        }
    }

    /// RemoveFromGlobalCluster, at most once.
    async fn detach(&self, ctx: &mut Ctx, step: Step, read_deadline: jiff::Timestamp) -> Result<String, Stop> {
        let effect = self.mutate_once(ctx, step, Mutation::Detach, read_deadline).await?;
        let p = &ctx.plan;
        Ok(match effect {
            Effect::Accepted => format!(
                "{} left {}; it is promoting to a standalone writable cluster.",
                p.to.cluster_id, p.global_cluster_id
            ),
            Effect::Seen => format!("{} left the global cluster.", p.to.cluster_id),
        })
    }

    /// Follows a managed failover or switchover until the target is the writer and writable.
    async fn wait_managed(&self, ctx: &mut Ctx, step: Step, started: jiff::Timestamp) -> Result<String, Stop> {
        let deadline = self.step_deadline(ctx, step, started)?;
        let grace = self.resumed(
            ctx,
            started,
            plus(started, MANAGED_GRACE.min(self.settings.promote_timeout)),
        );
        self.poll_until(ctx, step, deadline, Wait::Managed { grace, quiet: 0 })
            .await
    }

    /// One look at a managed operation: says what changed, and whether the target now writes (`Some`),
    /// or the operation ended without it (`Stop::Reverted`, trusted after several quiet reads in a row:
    /// a topology read may come from a Region that lags behind).
    async fn managed_progress(
        &self,
        ctx: &mut Ctx,
        step: Step,
        deadline: jiff::Timestamp,
        grace: jiff::Timestamp,
        quiet: &mut u32,
    ) -> Result<Option<String>, Stop> {
        let topology = self
            .retrying(ctx, step, "DescribeGlobalClusters", deadline, || {
                self.aurora.topology(&ctx.plan.global_cluster_id, &ctx.plan.regions)
            })
            .await?;
        let writer = topology
            .writer()
            .map(|w| w.cluster_id.clone())
            .unwrap_or_else(|| "none".into());
        let op = topology.operation_in_progress.clone().unwrap_or_else(|| "done".into());
        let subject = ctx.plan.global_cluster_id.clone();
        self.observe(ctx, step, &subject, format!("FailoverState {op}, writer {writer}"))
            .await?;
        self.post_events(ctx, step, ctx.run.started_at).await;
        let target_writes = topology.writer().is_some_and(|w| w.arn == ctx.plan.to.arn);
        if !target_writes {
            // A target AWS will not bring back by itself is said at once, not at the deadline.
            stuck(&self.read_target(ctx, step, deadline).await?)?;
        }
        if operation_under_way(&topology, &ctx.plan.to.arn) && !ctx.data.managed_seen {
            ctx.data.managed_seen = true;
            self.persist(ctx, step, None).await?;
        }
        let settled = topology.operation_in_progress.is_none();
        self.ended_without_target(ctx, &writer, !target_writes && settled, grace, quiet)?;
        if !(target_writes && settled) {
            return Ok(None);
        }
        let state = self.read_target(ctx, step, deadline).await?;
        took_over(ctx, &state, "the writer")
    }

    /// Nothing in progress and the target does not write (`quiet_now`): the operation was cancelled or
    /// rolled back (or, never seen, did not start), and waiting longer would change nothing. Trusted
    /// after more than `SETTLE_READS` such reads in a row (a topology read may come from a Region that
    /// lags behind), and for an operation never seen only after its grace.
    fn ended_without_target(
        &self,
        ctx: &Ctx,
        writer: &str,
        quiet_now: bool,
        grace: jiff::Timestamp,
        quiet: &mut u32,
    ) -> Result<(), Stop> {
        *quiet = if quiet_now { *quiet + 1 } else { 0 };
        if *quiet <= SETTLE_READS || !(ctx.data.managed_seen || self.clock.now() >= grace) {
            return Ok(());
        }
        Err(Stop::Reverted(format!(
            "the {} {} without making {} the writer: the writer is {writer} and no operation is in progress (AWS \
             cancelled or rolled it back; the RDS events above say why). DNS was not changed.",
            ctx.plan.mode,
            if ctx.data.managed_seen {
                "ended"
            } else {
                "never showed as started"
            },
            ctx.plan.to.cluster_id,
        )))
    }

    /// Polls the detached target until it is writable.
    async fn wait_writable(&self, ctx: &mut Ctx, step: Step, started: jiff::Timestamp) -> Result<String, Stop> {
        let deadline = self.step_deadline(ctx, step, started)?;
        self.poll_until(ctx, step, deadline, Wait::Writable).await
    }

    /// One look at the detached target: says what changed, and whether it is writable (`Some`).
    async fn writable_yet(&self, ctx: &mut Ctx, step: Step, deadline: jiff::Timestamp) -> Result<Option<String>, Stop> {
        let state = self.read_target(ctx, step, deadline).await?;
        let seen = format!(
            "{}, {}",
            state.status,
            if state.has_writer { "writer" } else { "no writer" }
        );
        self.observe(ctx, step, &state.cluster_id, seen).await?;
        took_over(ctx, &state, "writable")
    }

    /// The target, read now, must be writable: DNS is never pointed at a cluster that is not.
    async fn writable_target(&self, ctx: &Ctx, step: Step, deadline: jiff::Timestamp) -> Result<ClusterState, Stop> {
        let state = self.read_target(ctx, step, deadline).await?;
        if state.is_writable() {
            return Ok(state);
        }
        Err(Stop::Refused(format!(
            "{} is no longer writable ({}); refusing to point DNS at it. DNS was not changed.",
            state.cluster_id,
            describe(&state)
        )))
    }

    /// UPSERTs the writer and reader CNAMEs in one change batch. Route 53 applies a batch entirely or
    /// not at all, so the change is safe to send again; before each attempt the target must still be
    /// writable, the writer CNAME must still point at one end of the plan, and (when the bot finishes a
    /// run late by itself) the old primary must still not be writable.
    async fn update_dns(&self, ctx: &mut Ctx, step: Step, started: jiff::Timestamp) -> Result<String, Stop> {
        let deadline = self.step_deadline(ctx, step, started)?;
        let state = self.writable_target(ctx, step, deadline).await?;
        let (w, r) = keep_endpoints(ctx, &state)?;
        // Route 53's control plane lives in us-east-1: when that is the Region in trouble, keep trying
        // (with backoff, until the deadline) and say plainly where things stand meanwhile.
        let mut attempt = 0u32;
        let (change_id, follows) = loop {
            if attempt > 0 {
                self.writable_target(ctx, step, deadline).await?;
            }
            let e = match self.send_dns_change(ctx, step, (&w, &r)).await? {
                Ok(sent) => {
                    ctx.data.dns_changed_ms = Some(self.clock.now().as_millisecond());
                    break sent;
                }
                Err(e) => e,
            };
            if !e.is_transient() {
                // Its only attempt refused: this run did not change DNS.
                if attempt == 0 {
                    ctx.data.dns_sent = false;
                }
                return Err(Stop::Refused(format!(
                    "Route 53 failed: {e}. The database IS promoted ({} is the writer) but DNS was not moved: \
                     applications can use {w} and {r} directly until it is",
                    ctx.plan.to.cluster_id
                )));
            }
            if self.clock.now() >= deadline {
                return Err(Stop::Deadline(format!(
                    "Route 53 still does not take the change ({e}) after {} s. The database IS promoted ({} is the \
                     writer) but DNS was not moved: applications can use {w} and {r} directly until it is",
                    self.settings.dns_timeout.as_secs(),
                    ctx.plan.to.cluster_id
                )));
            }
            remember(&ctx.rode_out, format!("Route 53 did not take the change: {e}"));
            self.say(
                ctx,
                Note::Retrying {
                    detail: format!(
                        "The database is promoted: {} ({}) is the writer. DNS is NOT moved yet: Route 53 does not take \
                         the change for now ({e}). Until it does, applications can use the endpoints directly: writer \
                         {w}, reader {r}. Still trying, with backoff, until {}.",
                        ctx.plan.to.cluster_id,
                        ctx.plan.to.region,
                        deadline.strftime("%H:%M:%S UTC")
                    ),
                },
                &round_key(ctx, format!("run:{}:dns-unreachable", ctx.run.id)),
            )
            .await;
            let wait = self.backoff(attempt).min(since(deadline, self.clock.now()));
            attempt += 1;
            self.pause(ctx, wait.max(Duration::from_millis(10))).await?;
        };
        ctx.data.change_id = Some(change_id.clone());
        Ok(dns_submitted(ctx, &change_id, follows, (w, r)))
    }

    /// One attempt at the DNS change, after the checks that must hold right before it. The outer
    /// `Err` stops the run; the inner one is Route 53's answer, else the change id and, when the writer
    /// CNAME follows the writer (a managed mode, the CNAME at the global writer endpoint right now), that
    /// endpoint: then only the reader CNAME is in the change.
    async fn send_dns_change(
        &self,
        ctx: &mut Ctx,
        step: Step,
        (w, r): (&str, &str),
    ) -> Result<Result<(String, Option<String>), AwsError>, Stop> {
        if ctx.data.late_finish
            && let Some(why) = self.old_primary_writable(ctx).await
        {
            return Err(Stop::Refused(format!("{why}. DNS was not changed.")));
        }
        let p = &ctx.plan;
        let names = [p.writer_record.as_str(), p.reader_record.as_str()];
        // Look right before moving: a writer CNAME pointed elsewhere since the request (by hand, or at a
        // cluster detached earlier) carries writes that moving it would cut off.
        let values = match self.dns.cnames(&p.zone_id, &names).await {
            Ok(values) => values,
            Err(e) => return Ok(Err(e)),
        };
        let writer_now = values.first().cloned().flatten();
        if let Some(v) = &writer_now {
            refuse_foreign_writer(p, v, (w, r))?;
        }
        let follows = (p.mode != crate::types::Mode::Detach && p.follows_global(writer_now.as_deref()))
            .then(|| writer_now.clone().unwrap_or_default());
        if !ctx.data.dns_sent {
            ctx.data.dns_sent = true;
            self.persist(ctx, step, None).await?;
        }
        self.ensure_open(ctx).await?;
        let p = &ctx.plan;
        let comment = format!(
            "aurora-failover-bot request #{}: {} to {}",
            ctx.request.id, p.cluster, p.to.region
        );
        let both = [(p.writer_record.as_str(), w), (p.reader_record.as_str(), r)];
        // A writer CNAME that follows the writer is left alone: AWS moves the endpoint it points at.
        let records = if follows.is_some() { &both[1..] } else { &both[..] };
        let sent = self
            .mutating(
                ctx,
                "ChangeResourceRecordSets",
                self.dns.upsert_cnames(&p.zone_id, records, p.record_ttl, &comment),
            )
            .await;
        Ok(sent.map(|id| (id, follows)))
    }

    /// Polls GetChange until Route 53 reports the change INSYNC.
    async fn wait_insync(&self, ctx: &mut Ctx, step: Step, started: jiff::Timestamp) -> Result<String, Stop> {
        let deadline = self.step_deadline(ctx, step, started)?;
        let change_id = ctx
            .data
            .change_id
            .clone()
            .ok_or_else(|| Stop::Refused("no change id recorded".into()))?;
        self.poll_until(ctx, step, deadline, Wait::Insync { change_id }).await
    }

    /// One GetChange: whether the change is INSYNC (`Some`).
    async fn insync_yet(
        &self,
        ctx: &Ctx,
        step: Step,
        deadline: jiff::Timestamp,
        change_id: &str,
    ) -> Result<Option<String>, Stop> {
        let insync = self
            .retrying(ctx, step, "GetChange", deadline, || self.dns.change_insync(change_id))
            .await?;
        Ok(insync.then(|| format!("Change {change_id} is INSYNC.")))
    }

    /// Reads both records back, and the target once more: it must still be writable.
    async fn verify(&self, ctx: &mut Ctx, step: Step, read_deadline: jiff::Timestamp) -> Result<String, Stop> {
        let (w, r) = ctx
            .data
            .endpoints
            .clone()
            .ok_or_else(|| Stop::Refused("no endpoints recorded".into()))?;
        let zone = ctx.plan.zone_id.clone();
        let names = [ctx.plan.writer_record.as_str(), ctx.plan.reader_record.as_str()];
        let values = self
            .retrying(ctx, step, "ListResourceRecordSets", read_deadline, || {
                self.dns.cnames(&zone, &names)
            })
            .await?;
        let problems: Vec<String> = names
            .iter()
            .zip([&w, &r])
            .zip(&values)
            .filter_map(|((name, expected), got)| match got {
                Some(v) if same_host(v, expected) => None,
                Some(v) => Some(format!("{name} points at {v}, not {expected}")),
                None => Some(format!("{name} does not exist")),
            })
            .collect();
        if !problems.is_empty() {
            return Err(Stop::Refused(format!(
                "the records are not as written: {}",
                problems.join("; ")
            )));
        }
        let state = self.read_target(ctx, step, read_deadline).await?;
        if !state.is_writable() {
            return Err(Stop::Refused(format!(
                "DNS is moved, but {} is no longer writable ({})",
                state.cluster_id,
                describe(&state)
            )));
        }
        if ctx.plan.follows_global(Some(&w)) {
            self.endpoint_moved(ctx, step, read_deadline).await?;
            return Ok(format!(
                "{} → {w} follows the writer: AWS moved the global writer endpoint to {}. {} → {r}; {} is writable.",
                names[0], state.cluster_id, names[1], state.cluster_id
            ));
        }
        Ok(format!(
            "{} → {w} and {} → {r}; {} is writable.",
            names[0], names[1], state.cluster_id
        ))
    }

    /// The writer CNAME was left at the global writer endpoint: AWS must have moved it, i.e. the global
    /// cluster's writer member is the target (the endpoint always reaches the writer member).
    /// A read that does not show it is read again a few times at the poll interval (a read may come from
    /// a Region that lags behind) before the run stops for a person.
    async fn endpoint_moved(&self, ctx: &Ctx, step: Step, read_deadline: jiff::Timestamp) -> Result<(), Stop> {
        let p = &ctx.plan;
        let mut read = 0;
        loop {
            let topology = self
                .retrying(ctx, step, "DescribeGlobalClusters", read_deadline, || {
                    self.aurora.topology(&p.global_cluster_id, &p.regions)
                })
                .await?;
            let writer = topology.writer();
            if writer.is_some_and(|wm| wm.arn == p.to.arn) {
                return Ok(());
            }
            if read < SETTLE_READS {
                read += 1;
                self.pause(ctx, self.settings.poll_interval).await?;
                continue;
            }
            return Err(Stop::Refused(format!(
                "{} points at the global writer endpoint, but the global cluster's writer is {}, not {}: the \
                 endpoint does not reach {} yet",
                p.writer_record,
                writer.map_or("none", |m| m.cluster_id.as_str()),
                p.to.cluster_id,
                p.to.cluster_id
            )));
        }
    }
}

/// What the DNS step did: the change submitted, and the writer CNAME left alone when it follows the
/// writer (`follows`: the global writer endpoint, then kept as what verify expects the writer CNAME to
/// hold).
fn dns_submitted(ctx: &mut Ctx, change_id: &str, follows: Option<String>, (w, r): (String, String)) -> String {
    let p = &ctx.plan;
    match follows {
        Some(global) => {
            let done = format!(
                "Change {change_id} submitted: {} → {r}. {} left alone: it points at the global writer endpoint \
                 {global}, which follows the writer.",
                p.reader_record, p.writer_record
            );
            ctx.data.endpoints = Some((global, r));
            done
        }
        None => format!(
            "Change {change_id} submitted: {} → {w}, {} → {r}.",
            p.writer_record, p.reader_record
        ),
    }
}

/// Stops the run when the writer CNAME `value` (read right before the change) points at neither end of
/// the plan nor at the global writer endpoint: someone changed it since, and moving it would cut off the
/// writes that follow it.
pub(super) fn refuse_foreign_writer(p: &plan::Plan, value: &str, (w, r): (&str, &str)) -> Result<(), Stop> {
    // A plan made by a build that did not record the global writer endpoint (a run in flight across an
    // upgrade) took any global writer endpoint for the writer, as that build did.
    let legacy_global = !p.global_endpoint_read
        && value
            .trim_end_matches('.')
            .to_ascii_lowercase()
            .ends_with(".global.rds.amazonaws.com");
    if plan::points_at(value, &p.from)
        || plan::points_at(value, &p.to)
        || p.follows_global(Some(value))
        || legacy_global
    {
        return Ok(());
    }
    Err(Stop::Refused(format!(
        "the writer CNAME {} now points at {value}, neither {} (the writer when the request was made) nor {} nor \
         the global writer endpoint: someone changed it since, and moving it would cut off the writes that follow \
         it. DNS was not changed. The database IS promoted: {} ({}) is the writer, at {w} (reader {r}); move the \
         records by hand once you know where writes go",
        p.writer_record, p.from.cluster_id, p.to.cluster_id, p.to.cluster_id, p.to.region
    )))
}

/// Whether the target, as just read, has taken over (`Some`: it is writable; its endpoints are kept in
/// the run's data and named, `what` saying what it now is). A target AWS will not bring back by itself
/// stops the wait at once.
fn took_over(ctx: &mut Ctx, state: &ClusterState, what: &str) -> Result<Option<String>, Stop> {
    stuck(state)?;
    if !state.is_writable() {
        return Ok(None);
    }
    let (w, r) = keep_endpoints(ctx, state)?;
    Ok(Some(format!(
        "{} is {what}. Endpoint {w}, reader endpoint {r}.",
        state.cluster_id
    )))
}
