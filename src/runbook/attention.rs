//! A run that needs attention: how it comes to (`needs_attention`: recorded, then told), how it is
//! watched at a slower pace (`watch`), when the bot may finish it by itself (`late_check`: only within
//! the late DNS window, after a full re-check that the target writes and the old primary does not),
//! and the hand-over to people (`hand_over`), who resume it (a second person approves) or abandon it.

use super::{AttentionState, Ctx, Runner, Step, Stop, describe, plus};
use crate::ports::{AwsErrorKind, ClusterState};
use crate::runbook::report::{Attention, Note, OperationSeen, Stage};
use crate::store::{Run, RunState};
use crate::types::Mode;
use std::time::Duration;
use tracing::{info, warn};

/// How many late re-checks in a row must find the old primary's Region unreachable before the bot
/// counts it as down (one failed read may be a blip).
const UNREACHABLE_READS: u32 = 3;

/// How long each read of the late re-check may take.
const LATE_READ: Duration = Duration::from_secs(10);

/// What the late re-check found.
enum Late {
    /// Safe to finish: why.
    Ready(String),
    /// Not ready yet: what is seen.
    NotYet(String),
    /// Finishing could split the data: why. A person decides.
    Unsafe(String),
}

/// What one look at a run that needs attention decided.
enum Look {
    /// The run goes on (a resume was approved, or the bot finishes it by itself).
    GoOn,
    /// Watching ends (abandoned, finished elsewhere, or shutting down).
    Stop,
    /// Look again at once (someone decided meanwhile).
    Again,
    /// Nothing to do until the next look.
    Wait,
}

impl Runner {
    /// How often a run that needs attention is looked at: ten poll intervals, between 1 s and 1 min.
    pub(super) fn watch_every(&self) -> Duration {
        self.settings
            .poll_interval
            .saturating_mul(10)
            .clamp(Duration::from_secs(1), Duration::from_secs(60))
    }

    /// Puts the run into `needs attention` at `step`, saying at once, in the thread and on the request
    /// message, what AWS reports and what a person can do. The bot finishes by itself (within the late
    /// DNS window, after a full re-check) only the first time; after that, people decide.
    pub(super) async fn needs_attention(
        &self,
        ctx: &mut Ctx,
        step: Step,
        reason: String,
        may_finish: bool,
    ) -> anyhow::Result<()> {
        warn!(step = step.as_str(), %reason, "run needs attention");
        let previous = ctx.data.attention.take();
        let count = previous.as_ref().map_or(1, |a| a.count + 1);
        let window_until_ms = previous
            .as_ref()
            .map_or_else(|| self.late_window_end(ctx, step), |a| a.window_until_ms);
        let handed_over = !may_finish || count > 1 || self.settings.late_dns_window.is_zero();
        ctx.data.step_started_ms = None;
        let (cluster_now, dns_now) = self.facts(ctx).await;
        let note = Attention {
            run_id: ctx.run.id,
            step,
            reason: reason.clone(),
            cluster_now,
            dns_now,
            dns_touched: ctx.data.dns_sent,
            guidance: Self::guidance(ctx),
            operation: self.operation_seen(ctx).await,
            window_until: (!handed_over)
                .then(|| jiff::Timestamp::from_millisecond(window_until_ms).ok())
                .flatten(),
            watch_every: self.watch_every(),
        };
        ctx.data.attention = Some(AttentionState {
            count,
            step,
            reason: reason.clone(),
            window_until_ms,
            handed_over,
            handover_why: None,
            note: Some(note),
        });
        // Recorded first, then told: a run abandoned in between is not announced as needing attention
        // after its abandonment, and a restart in between tells it (`tell_attention`).
        if self.record_attention(ctx, step, &reason).await? {
            ctx.run.state = RunState::NeedsAttention;
            self.count_outcome(ctx, "needs_attention");
            self.tell_attention(ctx).await;
        }
        Ok(())
    }

    /// Until when (ms) the bot may finish by itself: the late DNS window, counted from the deadline that
    /// passed (which may be earlier than now, when the bot was down), or from now for a refusal or a
    /// stuck target.
    fn late_window_end(&self, ctx: &Ctx, step: Step) -> i64 {
        let now = self.clock.now();
        let deadline = ctx
            .data
            .step_started_ms
            .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
            .zip(self.step_timeout(step))
            .map(|(started, timeout)| plus(started, timeout))
            .filter(|d| *d < now)
            .unwrap_or(now);
        plus(deadline, self.settings.late_dns_window).as_millisecond()
    }

    /// What a person should know besides resume and abandon: where the CNAMEs point, and what the
    /// detach left (the managed operation is `operation_seen`).
    fn guidance(ctx: &Ctx) -> Vec<String> {
        let p = &ctx.plan;
        let mut guidance = Vec::new();
        if !ctx.data.dns_sent && p.writer_follows() {
            guidance.push(format!(
                "{} points at the global writer endpoint, which AWS moves with the writer; {} still points where \
                 it did before the run (at {}, {}).",
                p.writer_record, p.reader_record, p.from.cluster_id, p.from.region
            ));
        } else if !ctx.data.dns_sent {
            guidance.push(format!(
                "{} and {} still point where they did before the run (at {}, {}).",
                p.writer_record, p.reader_record, p.from.cluster_id, p.from.region
            ));
        }
        if p.mode == Mode::Detach && ctx.data.detach_sent {
            guidance.push(format!(
                "{} was detached from {}; the old primary {} ({}) was not touched and may still take writes.",
                p.to.cluster_id, p.global_cluster_id, p.from.cluster_id, p.from.region
            ));
        }
        guidance
    }

    /// Whether AWS is still running the managed operation the run started (if it started one), as far
    /// as a short read tells.
    async fn operation_seen(&self, ctx: &Ctx) -> Option<OperationSeen> {
        let p = &ctx.plan;
        if p.mode == Mode::Detach || !ctx.data.managed_sent {
            return None;
        }
        let read = self.aurora.topology(&p.global_cluster_id, &p.regions);
        let (mode, cluster) = (p.mode, p.cluster.clone());
        match tokio::time::timeout(Duration::from_secs(5), read).await {
            Ok(Ok(t)) => match (t.operation_in_progress.clone(), t.writer()) {
                (Some(state), _) => Some(OperationSeen::Running { mode, state, cluster }),
                (None, Some(w)) => Some(OperationSeen::Idle {
                    writer: w.cluster_id.clone(),
                }),
                (None, None) => None,
            },
            _ => Some(OperationSeen::Unread { mode, cluster }),
        }
    }

    /// Records that the run needs attention, riding out a failing store with backoff; `false` when the
    /// run had already ended (a person abandoned it) or the bot is shutting down.
    async fn record_attention(&self, ctx: &Ctx, step: Step, reason: &str) -> anyhow::Result<bool> {
        let data = serde_json::to_string(&ctx.data)?;
        let mark = || {
            self.store.mark_needs_attention(
                ctx.run.id,
                Some(&data),
                (step.as_str(), reason),
                self.clock.now(),
                ctx.fence.as_ref(),
            )
        };
        Ok(self
            .stubbornly(ctx, "that the run needs attention", mark)
            .await
            .unwrap_or(false))
    }

    /// Queues (idempotently) what the thread and the request message say about a run that needs
    /// attention: the stop, and the hand-over to people if there was one.
    pub(super) async fn tell_attention(&self, ctx: &Ctx) {
        let Some(a) = &ctx.data.attention else { return };
        if let Some(note) = &a.note {
            self.say(
                ctx,
                Note::NeedsAttention(note.clone()),
                &format!("run:{}:attention:{}", ctx.run.id, a.count),
            )
            .await;
            let stage = Stage::NeedsAttention {
                approved_by: ctx.approved_by.clone(),
                run_id: ctx.run.id,
                step: a.step,
                reason: a.reason.clone(),
            };
            self.stage(ctx, stage, &format!("run:{}:stage:attention:{}", ctx.run.id, a.count))
                .await;
        }
        if let Some(why) = &a.handover_why {
            let note = Note::HandedOver {
                run_id: ctx.run.id,
                why: why.clone(),
            };
            self.say(ctx, note, &format!("run:{}:handover:{}", ctx.run.id, a.count))
                .await;
        }
    }

    /// Hands a run that needs attention to people, once: the thread says why the bot will not finish
    /// it by itself, and what to type.
    async fn hand_over(&self, ctx: &mut Ctx, why: String) {
        let Some(a) = ctx.data.attention.as_mut() else { return };
        if a.handed_over {
            return;
        }
        a.handed_over = true;
        a.handover_why = Some(why.clone());
        info!(%why, "run handed over to people");
        // Recorded before it is told: a restart never finishes by itself a run it handed over.
        let step = Step::parse(&ctx.run.step).unwrap_or(Step::Precheck);
        if self.persist(ctx, step, None).await.is_ok() {
            self.tell_attention(ctx).await;
        }
    }

    /// Keeps watching a run that needs attention, at a slower pace, until it goes on (`true`: the
    /// bot's late re-check passed within the window, or a person's resume was approved) or ends
    /// (`false`: abandoned, or the bot is shutting down).
    pub(super) async fn watch(&self, ctx: &mut Ctx) -> anyhow::Result<bool> {
        loop {
            match self.look(ctx).await {
                Look::GoOn => return Ok(true),
                Look::Stop => return Ok(false),
                Look::Again => continue,
                Look::Wait => {}
            }
            match self.pause(ctx, self.watch_every()).await {
                Ok(()) => {}
                Err(Stop::Interrupted) => {
                    let step = Step::parse(&ctx.run.step).unwrap_or(Step::Precheck);
                    self.interrupted(ctx, step).await?;
                    return Ok(false);
                }
                Err(_) => return Ok(false),
            }
        }
    }

    /// One look at a run that needs attention: what the store says of it (a person may have resumed
    /// or abandoned it), then what AWS says.
    async fn look(&self, ctx: &mut Ctx) -> Look {
        let run = match self.store.run(ctx.run.id).await {
            Ok(Some(r)) => r,
            Ok(None) => return Look::Stop,
            Err(e) => {
                warn!(error = %e, "cannot read the run; trying again");
                return Look::Wait;
            }
        };
        match run.state {
            RunState::Running => return self.resumed_by_a_person(ctx, run).await,
            RunState::NeedsAttention => ctx.run.control = run.control,
            _ => return Look::Stop,
        }
        let Some(attention) = ctx.data.attention.clone() else {
            return Look::Stop;
        };
        if attention.handed_over {
            // People decide; the bot still says what changes.
            let (Late::Ready(seen) | Late::NotYet(seen) | Late::Unsafe(seen)) =
                self.late_check(ctx, attention.step).await;
            return self.report_seen(ctx, attention.step, seen).await;
        }
        self.try_late_finish(ctx, &attention).await
    }

    /// A person's resume was approved: go on with fresh deadlines, and the checks before a change
    /// (the bot's own late checks do not apply).
    async fn resumed_by_a_person(&self, ctx: &mut Ctx, run: Run) -> Look {
        ctx.run = run;
        ctx.data.step_started_ms = None;
        ctx.data.late_finish = false;
        ctx.rechecked = false;
        let step = Step::parse(&ctx.run.step).unwrap_or(Step::Precheck);
        match self.persist(ctx, step, None).await {
            Ok(()) => Look::GoOn,
            Err(_) => Look::Stop,
        }
    }

    /// Says in the thread (once) what the watch sees of the target.
    async fn report_seen(&self, ctx: &mut Ctx, step: Step, seen: String) -> Look {
        let subject = ctx.plan.to.cluster_id.clone();
        match self.observe(ctx, step, &subject, seen).await {
            Ok(()) => Look::Wait,
            Err(_) => Look::Stop,
        }
    }

    /// Within the late DNS window, the bot finishes the run by itself once the late re-check passes;
    /// outside it, or when finishing could split the data, it hands the run to people.
    async fn try_late_finish(&self, ctx: &mut Ctx, attention: &AttentionState) -> Look {
        let window = crate::types::human_duration(self.settings.late_dns_window);
        let late = self.late_check(ctx, attention.step).await;
        // The window is judged once the re-check is done (its reads take a while).
        let in_window = self.clock.now().as_millisecond() <= attention.window_until_ms;
        match late {
            Late::Ready(detail) if in_window => self.finish_late(ctx, attention, &window, detail).await,
            Late::Ready(detail) => {
                let why = format!("{detail}, but only after the {window} window for finishing by itself");
                self.hand_over(ctx, why).await;
                Look::Wait
            }
            Late::Unsafe(why) => {
                self.hand_over(ctx, why).await;
                Look::Wait
            }
            Late::NotYet(seen) => {
                if let Look::Stop = self.report_seen(ctx, attention.step, seen.clone()).await {
                    return Look::Stop;
                }
                if !in_window {
                    self.hand_over(ctx, format!("the {window} window passed and {seen}"))
                        .await;
                }
                Look::Wait
            }
        }
    }

    /// The late re-check passed within the window: the run goes on, by the bot, with the old primary
    /// checked again before each DNS change.
    async fn finish_late(&self, ctx: &mut Ctx, attention: &AttentionState, window: &str, detail: String) -> Look {
        match self
            .store
            .back_to_running(ctx.run.id, self.clock.now(), ctx.fence.as_ref())
            .await
        {
            Ok(true) => {}
            // Someone decided meanwhile (resume approved, or abandoned): read it at once.
            Ok(false) => return Look::Again,
            Err(e) => {
                warn!(error = %e, "cannot record the late finish; trying again at the next look");
                return Look::Wait;
            }
        }
        let note = Note::LateFinish {
            detail: format!(
                "Re-checked within the {window} window for finishing by itself: {detail}. Finishing the run."
            ),
        };
        self.say(ctx, note, &format!("run:{}:late:{}", ctx.run.id, attention.count))
            .await;
        ctx.run.state = RunState::Running;
        ctx.data.step_started_ms = None;
        ctx.data.late_finish = true;
        ctx.rechecked = false;
        match self.persist(ctx, attention.step, None).await {
            Ok(()) => Look::GoOn,
            Err(_) => Look::Stop,
        }
    }

    /// The full re-check before the bot finishes a run that needs attention by itself: the target is
    /// the writer and writable, and the old primary is not writable (or cannot be reached): after a
    /// detach, an old primary that came back may have taken writes through the unchanged CNAME, and
    /// moving DNS then would split the data.
    async fn late_check(&self, ctx: &mut Ctx, step: Step) -> Late {
        if ctx.data.change_id.is_some() && matches!(step, Step::WaitInsync | Step::Verify) {
            return Late::Ready(
                "the DNS change was already made; only waiting for Route 53 and the read-back remain".into(),
            );
        }
        let target = match self.target_took_over(ctx).await {
            Ok(target) => target,
            Err(seen) => return Late::NotYet(seen),
        };
        let old = match self.old_primary_fenced(ctx).await {
            Ok(old) => old,
            Err(late) => return late,
        };
        Late::Ready(format!(
            "{} is writable ({}), and {old}",
            ctx.plan.to.cluster_id,
            describe(&target)
        ))
    }

    /// The target as read now, if it is writable and (for a managed mode) the global cluster's writer
    /// with no operation in progress, or (for a detach) out of the global cluster; else what is seen.
    async fn target_took_over(&self, ctx: &Ctx) -> Result<ClusterState, String> {
        let p = &ctx.plan;
        let target = match tokio::time::timeout(LATE_READ, self.aurora.cluster(&p.to.region, &p.to.cluster_id)).await {
            Ok(Ok(t)) => t,
            Ok(Err(e)) => return Err(format!("{} cannot be read ({e})", p.to.cluster_id)),
            Err(_) => return Err(format!("{} cannot be read (no answer in time)", p.to.cluster_id)),
        };
        if !target.is_writable() {
            return Err(describe(&target));
        }
        if p.mode == Mode::Detach {
            if target.global_cluster_id.is_some() {
                return Err(format!("{} is still a member of a global cluster", p.to.cluster_id));
            }
            return Ok(target);
        }
        match tokio::time::timeout(LATE_READ, self.aurora.topology(&p.global_cluster_id, &p.regions)).await {
            Ok(Ok(t)) if t.writer().is_some_and(|w| w.arn == p.to.arn) && t.operation_in_progress.is_none() => {
                Ok(target)
            }
            Ok(Ok(t)) => Err(format!(
                "{} is writable but the global cluster's writer is {}{}",
                p.to.cluster_id,
                t.writer().map_or("none", |w| w.cluster_id.as_str()),
                t.operation_in_progress
                    .as_ref()
                    .map(|op| format!(" ({op} in progress)"))
                    .unwrap_or_default()
            )),
            Ok(Err(e)) => Err(format!("the topology cannot be read ({e})")),
            Err(_) => Err("the topology cannot be read (no answer in time)".into()),
        }
    }

    /// Whether the old primary cannot take writes: not writable, gone, or unreachable for
    /// `UNREACHABLE_READS` looks in a row (only an outage counts: a throttled, refused or odd answer
    /// says nothing about whether it takes writes). `Err` says why the bot cannot finish now.
    async fn old_primary_fenced(&self, ctx: &mut Ctx) -> Result<String, Late> {
        let p = &ctx.plan;
        let read = tokio::time::timeout(LATE_READ, self.aurora.cluster(&p.from.region, &p.from.cluster_id)).await;
        let why_unreachable = match read {
            Ok(Ok(c)) if c.is_writable() => {
                ctx.old_primary_unreachable = 0;
                return Err(Late::Unsafe(format!(
                    "{} is writable, but the old primary {} ({}) is writable too ({}): it may have taken writes through \
                     the unchanged CNAMEs since, and moving DNS now could split the data. Check where the writes went first",
                    p.to.cluster_id,
                    p.from.cluster_id,
                    p.from.region,
                    describe(&c)
                )));
            }
            Ok(Ok(c)) => {
                ctx.old_primary_unreachable = 0;
                return Ok(format!("the old primary is not writable ({})", describe(&c)));
            }
            Ok(Err(e)) if e.kind == AwsErrorKind::NotFound => {
                ctx.old_primary_unreachable = 0;
                return Ok("the old primary no longer exists".to_owned());
            }
            Ok(Err(e)) if e.kind != AwsErrorKind::Unavailable => {
                ctx.old_primary_unreachable = 0;
                return Err(Late::NotYet(format!(
                    "whether the old primary {} is writable cannot be told ({e})",
                    p.from.cluster_id
                )));
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => "no answer in time".to_owned(),
        };
        ctx.old_primary_unreachable += 1;
        if ctx.old_primary_unreachable < UNREACHABLE_READS {
            return Err(Late::NotYet(format!(
                "the old primary {} cannot be read ({why_unreachable}); reading it again to tell an outage from a blip",
                p.from.cluster_id
            )));
        }
        Ok(format!(
            "the old primary cannot be reached ({} reads in a row: {why_unreachable})",
            ctx.old_primary_unreachable
        ))
    }

    /// Why DNS must not move now, if the old primary is writable (read in its Region; a read that
    /// fails says nothing here: the late re-check already required it to be unreachable for a while).
    pub(super) async fn old_primary_writable(&self, ctx: &Ctx) -> Option<String> {
        let p = &ctx.plan;
        let read = self.aurora.cluster(&p.from.region, &p.from.cluster_id);
        match tokio::time::timeout(LATE_READ, read).await {
            Ok(Ok(c)) if c.is_writable() => Some(format!(
                "the old primary {} ({}) is writable again ({}): it may have taken writes, and moving DNS now could \
                 split the data",
                p.from.cluster_id,
                p.from.region,
                describe(&c)
            )),
            _ => None,
        }
    }
}
