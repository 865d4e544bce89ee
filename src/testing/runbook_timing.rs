//! The runbook's waits, deadlines and retries under paused time. The timings (`fakes::settings`):
//! polls every 1 s, the target has 60 s to become writable (or the writer), Route 53 30 s; a run
//! past a deadline is handed to people at once (no late window), except in the tests of that window.

use super::fakes::{Api, Bot, Call, Fault, Managed, When, endpoint};
use crate::ports::AwsErrorKind;
use crate::runbook::report::Note;
use crate::store::{RunId, RunState};
use crate::types::{Mode, Region};
use std::time::Duration;

const POLL: Duration = Duration::from_secs(1);
const PROMOTE: Duration = Duration::from_secs(60);
const DNS: Duration = Duration::from_secs(30);

/// The gaps between successive calls.
fn gaps(calls: &[Call]) -> Vec<Duration> {
    calls.windows(2).map(|w| w[1].at - w[0].at).collect()
}

/// The retry pauses the runbook documents: the poll interval doubling up to 10 s, ±20% jitter.
fn within_backoff(attempt: u32, gap: Duration) -> bool {
    let base = POLL
        .saturating_mul(2u32.pow(attempt.min(16)))
        .min(Duration::from_secs(10));
    gap >= base.mul_f64(0.8) && gap <= base.mul_f64(1.2)
}

fn west() -> Region {
    Region::parse("us-west-2").unwrap()
}

/// The needs-attention reply of the run's first stop.
fn attention_note(bot: &Bot, run: crate::store::RunId) -> crate::runbook::report::Attention {
    let said = bot
        .chat
        .said_with(&format!("run:{run}:attention:1"))
        .expect("the thread is told the run needs attention");
    assert!(said.broadcast, "a run that needs attention is said in the channel too");
    match said.note {
        Note::NeedsAttention(a) => a,
        other => panic!("not a needs-attention reply: {other:?}"),
    }
}

/// Waits until `run` needs attention, and checks that it stopped at `step`'s deadline (`timeout` after
/// the step started, give or take the last poll), with a reason containing `why`. Returns when the
/// step started (since the bot was made).
async fn stops_at_deadline(bot: &Bot, run: RunId, step: &str, timeout: Duration, why: &str) -> Duration {
    bot.until(run, RunState::NeedsAttention).await;
    let started = bot.when(run, step, "started").await;
    let stopped = bot.entry(run, step, "needs_attention").await;
    let took = bot.since_start(stopped.at) - started;
    assert!(
        took >= timeout && took <= timeout + POLL,
        "{step} stopped after {took:?}"
    );
    assert!(stopped.detail.contains(why), "{}", stopped.detail);
    started
}

#[tokio::test(start_paused = true)]
async fn a_detached_target_is_polled_at_the_poll_interval_until_it_is_writable() {
    let bot = Bot::new();
    bot.aws.script(|w| w.promotes = When::OnRead(5));
    let run = bot.approved_run(Mode::Detach).await;
    bot.runner().execute(run).await;

    assert_eq!(bot.run(run).await.state, RunState::Succeeded);
    let detach = bot.aws.calls(Api::RemoveFromGlobalCluster);
    assert_eq!(detach.len(), 1, "the detach is sent once");
    let started = bot.when(run, "wait_writable", "started").await;
    let finished = bot.when(run, "wait_writable", "finished").await;
    let reads = bot
        .aws
        .calls_after(Api::RemoveFromGlobalCluster, Api::DescribeDbClusters, "west");
    let polls: Vec<Call> = reads.iter().filter(|c| c.at <= finished).take(5).cloned().collect();
    assert_eq!(
        polls.iter().map(|c| c.at - started).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4].map(|n| n * POLL),
        "one read per poll interval, writable on the 5th: {reads:?}"
    );
    assert_eq!(
        reads.iter().filter(|c| c.at < finished).count(),
        4,
        "no other read during the wait: {reads:?}"
    );
    assert_eq!(finished - started, 4 * POLL, "4 pauses of one poll interval");
    assert_eq!(
        bot.aws.cname(&bot.settings.clusters[0].writer_record),
        Some(endpoint("west", &west(), false))
    );
}

#[tokio::test(start_paused = true)]
async fn a_target_not_writable_by_the_promote_deadline_needs_attention_without_dns_moving() {
    let bot = Bot::new();
    bot.aws.script(|w| w.promotes = When::Never);
    let run = bot.approved_run(Mode::Detach).await;
    let task = bot.start(run);
    let started = stops_at_deadline(&bot, run, "wait_writable", PROMOTE, "was not writable after 60 s").await;
    let reads: Vec<Call> = bot
        .aws
        .calls_after(Api::RemoveFromGlobalCluster, Api::DescribeDbClusters, "west")
        .into_iter()
        .filter(|c| c.at < started + PROMOTE)
        .collect();
    assert!(gaps(&reads).iter().all(|g| *g >= POLL), "{reads:?}");
    assert!(
        (58..=60).contains(&reads.len()),
        "about one read per poll interval over 60 s, not a hot loop: {}",
        reads.len()
    );
    assert!(
        bot.aws.calls(Api::ChangeResourceRecordSets).is_empty(),
        "DNS not touched"
    );
    let note = attention_note(&bot, run);
    assert!(note.reason.contains("was not writable after 60 s"), "{}", note.reason);
    assert!(!note.dns_touched);
    bot.stop(task).await;
}

#[tokio::test(start_paused = true)]
async fn a_managed_failover_is_followed_until_the_target_is_the_writer() {
    let bot = Bot::new();
    bot.aws
        .script(|w| w.managed = Managed::Completes(When::After(Duration::from_secs(10))));
    let run = bot.approved_run(Mode::Failover).await;
    bot.runner().execute(run).await;

    assert_eq!(bot.run(run).await.state, RunState::Succeeded);
    assert_eq!(bot.aws.calls(Api::FailoverGlobalCluster).len(), 1);
    let started = bot.when(run, "wait_managed", "started").await;
    let finished = bot.when(run, "wait_managed", "finished").await;
    let took = finished - started;
    assert!(
        took >= Duration::from_secs(10) && took <= Duration::from_secs(10) + POLL,
        "{took:?}"
    );
    let reads: Vec<Call> = bot
        .aws
        .calls_after(Api::FailoverGlobalCluster, Api::DescribeGlobalClusters, "orders-global")
        .into_iter()
        .filter(|c| c.at < finished)
        .collect();
    assert!(gaps(&reads).iter().all(|g| *g >= POLL), "{reads:?}");
    assert_eq!(reads.len(), 10, "one read per poll interval: {reads:?}");
}

#[tokio::test(start_paused = true)]
async fn a_rolled_back_managed_failover_fails_the_run_long_before_the_deadline() {
    let bot = Bot::new();
    bot.aws
        .script(|w| w.managed = Managed::RollsBack(When::After(Duration::from_secs(5))));
    let run = bot.approved_run(Mode::Failover).await;
    bot.runner().execute(run).await;

    assert_eq!(bot.run(run).await.state, RunState::Failed);
    let started = bot.when(run, "wait_managed", "started").await;
    let failed = bot.entry(run, "wait_managed", "failed").await;
    let took = bot.since_start(failed.at) - started;
    assert!(
        took < Duration::from_secs(15),
        "failed fast, after {took:?}, not at the 60 s deadline"
    );
    assert!(
        failed.detail.contains("without making west the writer"),
        "{}",
        failed.detail
    );
    assert!(bot.aws.calls(Api::ChangeResourceRecordSets).is_empty());
    assert!(bot.chat.said_with(&format!("run:{run}:failed")).is_some());
}

#[tokio::test(start_paused = true)]
async fn a_managed_failover_still_running_at_the_deadline_needs_attention() {
    let bot = Bot::new();
    bot.aws.script(|w| w.managed = Managed::Completes(When::Never));
    let run = bot.approved_run(Mode::Failover).await;
    let task = bot.start(run);
    stops_at_deadline(&bot, run, "wait_managed", PROMOTE, "was not the writer after 60 s").await;
    assert!(bot.aws.calls(Api::ChangeResourceRecordSets).is_empty());
    assert_eq!(bot.aws.calls(Api::FailoverGlobalCluster).len(), 1);
    bot.stop(task).await;
}

#[tokio::test(start_paused = true)]
async fn route53_unavailable_is_retried_with_backoff_until_the_dns_deadline_then_needs_attention() {
    let bot = Bot::new();
    bot.aws
        .fail(Fault::new(Api::ChangeResourceRecordSets, AwsErrorKind::Unavailable));
    let run = bot.approved_run(Mode::Detach).await;
    let task = bot.start(run);
    stops_at_deadline(&bot, run, "update_dns", DNS, "Route 53 still does not take the change").await;
    let reason = attention_note(&bot, run).reason;
    assert!(reason.contains("The database IS promoted"), "{reason}");
    let attempts = bot.aws.calls(Api::ChangeResourceRecordSets);
    assert!((5..=8).contains(&attempts.len()), "{attempts:?}");
    let gaps = gaps(&attempts);
    // The last pause is cut short at the deadline.
    for (i, g) in gaps[..gaps.len() - 1].iter().enumerate() {
        assert!(within_backoff(i as u32, *g), "pause {i}: {g:?} in {gaps:?}");
    }
    let retry = bot
        .chat
        .said_with(&format!("run:{run}:dns-unreachable"))
        .expect("the thread is told DNS is not moved yet");
    assert!(matches!(&retry.note, Note::Retrying { detail } if detail.contains("DNS is NOT moved yet")));
    assert_eq!(
        bot.aws.cname(&bot.settings.clusters[0].writer_record),
        Some(endpoint("east", &Region::parse("us-east-1").unwrap(), false)),
        "the records are unchanged"
    );
    bot.stop(task).await;
}

#[tokio::test(start_paused = true)]
async fn route53_coming_back_mid_way_lets_the_run_finish() {
    let bot = Bot::new();
    bot.aws
        .fail(Fault::new(Api::ChangeResourceRecordSets, AwsErrorKind::Unavailable).times(3));
    let run = bot.approved_run(Mode::Detach).await;
    bot.runner().execute(run).await;

    assert_eq!(bot.run(run).await.state, RunState::Succeeded);
    let attempts = bot.aws.calls(Api::ChangeResourceRecordSets);
    assert_eq!(
        attempts.iter().map(|c| c.ok).collect::<Vec<_>>(),
        [false, false, false, true]
    );
    for (i, g) in gaps(&attempts).iter().enumerate() {
        assert!(within_backoff(i as u32, *g), "pause {i}: {g:?}");
    }
    let c = &bot.settings.clusters[0];
    assert_eq!(bot.aws.cname(&c.writer_record), Some(endpoint("west", &west(), false)));
    assert_eq!(bot.aws.cname(&c.reader_record), Some(endpoint("west", &west(), true)));
}

#[tokio::test(start_paused = true)]
async fn a_dns_change_not_insync_by_the_dns_deadline_needs_attention() {
    let bot = Bot::new();
    bot.aws.script(|w| w.insync = When::Never);
    let run = bot.approved_run(Mode::Detach).await;
    let task = bot.start(run);
    stops_at_deadline(
        &bot,
        run,
        "wait_insync",
        DNS,
        "did not report change C1 INSYNC within 30 s",
    )
    .await;
    let reads = bot.aws.calls(Api::GetChange);
    assert!((28..=31).contains(&reads.len()), "{}", reads.len());
    assert!(gaps(&reads).iter().all(|g| *g >= POLL), "{reads:?}");
    assert_eq!(bot.aws.calls(Api::ChangeResourceRecordSets).len(), 1);
    assert!(attention_note(&bot, run).dns_touched);
    bot.stop(task).await;
}

#[tokio::test(start_paused = true)]
async fn transient_read_errors_are_ridden_out_with_capped_jittered_backoff() {
    let bot = Bot::new();
    bot.aws.fail(
        Fault::new(Api::DescribeDbClusters, AwsErrorKind::Throttled)
            .on("west")
            .times(6)
            .after(Api::RemoveFromGlobalCluster),
    );
    let run = bot.approved_run(Mode::Detach).await;
    bot.runner().execute(run).await;

    assert_eq!(bot.run(run).await.state, RunState::Succeeded);
    let reads: Vec<Call> = bot
        .aws
        .calls_after(Api::RemoveFromGlobalCluster, Api::DescribeDbClusters, "west")
        .into_iter()
        .take(7)
        .collect();
    assert_eq!(
        reads.iter().map(|c| c.ok).collect::<Vec<_>>(),
        [false, false, false, false, false, false, true]
    );
    let gaps = gaps(&reads);
    for (i, g) in gaps.iter().enumerate() {
        assert!(within_backoff(i as u32, *g), "pause {i}: {g:?} in {gaps:?}");
    }
    assert!(
        gaps[4] <= Duration::from_secs(12) && gaps[5] <= Duration::from_secs(12),
        "capped at 10 s (+20%): {gaps:?}"
    );
    let retries: Vec<_> = bot
        .chat
        .said()
        .into_iter()
        .filter(|s| matches!(s.note, Note::Retrying { .. }))
        .collect();
    assert_eq!(retries.len(), 1, "said once in the thread: {retries:?}");
    assert_eq!(bot.aws.calls(Api::RemoveFromGlobalCluster).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_detach_whose_answer_is_lost_is_looked_for_and_never_sent_twice() {
    let bot = Bot::new();
    bot.aws.fail(
        Fault::new(Api::RemoveFromGlobalCluster, AwsErrorKind::Unavailable)
            .times(1)
            .but_applies(),
    );
    // The reads that would show it fail for a while too.
    bot.aws.fail(
        Fault::new(Api::DescribeDbClusters, AwsErrorKind::Unavailable)
            .on("west")
            .times(3)
            .after(Api::RemoveFromGlobalCluster),
    );
    let run = bot.approved_run(Mode::Detach).await;
    bot.runner().execute(run).await;

    assert_eq!(bot.run(run).await.state, RunState::Succeeded);
    assert_eq!(bot.aws.calls(Api::RemoveFromGlobalCluster).len(), 1, "sent once");
    let detach = bot.entry(run, "detach", "finished").await;
    assert!(detach.detail.contains("left the global cluster"), "{}", detach.detail);
    assert!(
        bot.chat
            .said_with(&format!("run:{run}:detach:retry:RemoveFromGlobalCluster"))
            .is_none(),
        "no retry of the detach is announced"
    );
}

#[tokio::test(start_paused = true)]
async fn a_managed_failover_whose_answer_is_lost_is_looked_for_and_never_sent_twice() {
    let bot = Bot::new();
    bot.aws
        .script(|w| w.managed = Managed::Completes(When::After(Duration::from_secs(10))));
    bot.aws.fail(
        Fault::new(Api::FailoverGlobalCluster, AwsErrorKind::Unavailable)
            .times(1)
            .but_applies(),
    );
    bot.aws.fail(
        Fault::new(Api::DescribeGlobalClusters, AwsErrorKind::Throttled)
            .times(3)
            .after(Api::FailoverGlobalCluster),
    );
    let run = bot.approved_run(Mode::Failover).await;
    bot.runner().execute(run).await;

    assert_eq!(bot.run(run).await.state, RunState::Succeeded);
    assert_eq!(bot.aws.calls(Api::FailoverGlobalCluster).len(), 1, "sent once");
    let failover = bot.entry(run, "failover", "finished").await;
    assert!(failover.detail.contains("under way"), "{}", failover.detail);
}

#[tokio::test(start_paused = true)]
async fn a_run_resumed_after_its_step_deadline_passed_while_the_bot_was_down_needs_attention_at_once() {
    let bot = Bot::new();
    bot.aws.script(|w| w.promotes = When::Never);
    let run = bot.approved_run(Mode::Detach).await;
    let task = bot.start(run);
    // Ten seconds into the wait, the bot stops; it is down for two minutes, during which the target
    // becomes writable.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let started = bot.when(run, "wait_writable", "started").await;
    bot.stop(task).await;
    assert_eq!(
        bot.run(run).await.state,
        RunState::Running,
        "it resumes at the next start"
    );
    assert_eq!(
        bot.entry(run, "wait_writable", "interrupted").await.step,
        "wait_writable"
    );
    tokio::time::sleep(Duration::from_secs(120)).await;
    bot.aws.script(|w| w.finish_promotion());
    let resumed_at = bot.since_start(crate::ports::Clock::now(bot.clock.as_ref()));

    let task = bot.start(run);
    bot.until(run, RunState::NeedsAttention).await;
    let stopped = bot.entry(run, "wait_writable", "needs_attention").await;
    assert_eq!(
        bot.since_start(stopped.at),
        resumed_at,
        "at once, without waiting again"
    );
    assert!(started + PROMOTE < resumed_at);
    assert!(
        stopped.detail.contains("deadline passed while the bot was not running"),
        "{}",
        stopped.detail
    );
    assert!(
        bot.aws.calls(Api::ChangeResourceRecordSets).is_empty(),
        "DNS is not moved without the late re-check, though the target is writable now"
    );
    bot.stop(task).await;
}

#[tokio::test(start_paused = true)]
async fn a_run_resumed_before_its_deadline_keeps_the_deadline_it_started_with() {
    let bot = Bot::new();
    bot.aws.script(|w| w.promotes = When::Never);
    let run = bot.approved_run(Mode::Detach).await;
    let task = bot.start(run);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let started = bot.when(run, "wait_writable", "started").await;
    bot.stop(task).await;
    tokio::time::sleep(Duration::from_secs(20)).await;

    let task = bot.start(run);
    bot.until(run, RunState::NeedsAttention).await;
    let stopped = bot.entry(run, "wait_writable", "needs_attention").await;
    let at = bot.since_start(stopped.at);
    assert!(
        at >= started + PROMOTE && at <= started + PROMOTE + POLL,
        "the deadline counts from the step's start across the restart: started {started:?}, stopped {at:?}"
    );
    assert!(
        stopped.detail.contains("was not writable after 60 s"),
        "{}",
        stopped.detail
    );
    bot.stop(task).await;
}

/// How often a run that needs attention is looked at with these timings (ten poll intervals).
const WATCH: Duration = Duration::from_secs(10);

#[tokio::test(start_paused = true)]
async fn a_late_writer_within_the_late_dns_window_is_finished_by_the_bot_at_its_next_look() {
    let bot = Bot::with_settings(|s| s.runbook.late_dns_window = Duration::from_secs(300));
    // The managed failover completes 90 s after the call: 30 s past the promote deadline.
    bot.aws
        .script(|w| w.managed = Managed::Completes(When::After(Duration::from_secs(90))));
    let run = bot.approved_run(Mode::Failover).await;
    let task = bot.start(run);
    stops_at_deadline(&bot, run, "wait_managed", PROMOTE, "was not the writer after 60 s").await;
    assert!(attention_note(&bot, run).window_until.is_some(), "the window is said");
    bot.until(run, RunState::Succeeded).await;
    let call = bot.aws.calls(Api::FailoverGlobalCluster)[0].at;
    let late = bot.entry(run, "attention", "late_finish").await;
    let after_call = bot.since_start(late.at) - call;
    assert!(
        after_call >= Duration::from_secs(90) && after_call <= Duration::from_secs(90) + WATCH + POLL,
        "finished at the first look after the writer moved: {after_call:?} after the call"
    );
    assert!(
        bot.chat
            .said()
            .iter()
            .any(|s| matches!(s.note, Note::LateFinish { .. })),
        "the thread is told the bot finishes by itself"
    );
    assert_eq!(bot.aws.calls(Api::ChangeResourceRecordSets).len(), 1);
    assert_eq!(
        bot.aws.cname(&bot.settings.clusters[0].writer_record),
        Some(endpoint("west", &west(), false))
    );
    bot.stop(task).await;
}

#[tokio::test(start_paused = true)]
async fn past_the_late_dns_window_the_bot_hands_the_run_over_and_never_moves_dns_by_itself() {
    let bot = Bot::with_settings(|s| s.runbook.late_dns_window = Duration::from_secs(20));
    bot.aws
        .script(|w| w.managed = Managed::Completes(When::After(Duration::from_secs(200))));
    let run = bot.approved_run(Mode::Failover).await;
    let task = bot.start(run);
    stops_at_deadline(&bot, run, "wait_managed", PROMOTE, "was not the writer after 60 s").await;
    // The window ends 80 s after the step started; the hand-over comes at the first look after it.
    tokio::time::sleep(Duration::from_secs(40)).await;
    let handed = bot
        .chat
        .said_with(&format!("run:{run}:handover:1"))
        .expect("the thread is told people decide");
    assert!(matches!(handed.note, Note::HandedOver { .. }), "{:?}", handed.note);
    // Long after the writer moved, DNS is still where it was: a person decides. The bot keeps
    // looking, at the slower pace.
    let target_reads = || {
        let calls = bot.aws.calls(Api::DescribeDbClusters);
        calls.iter().filter(|c| c.subject == "west").count()
    };
    let before = target_reads();
    tokio::time::sleep(Duration::from_secs(300)).await;
    assert_eq!(bot.run(run).await.state, RunState::NeedsAttention);
    assert!(bot.aws.calls(Api::ChangeResourceRecordSets).is_empty());
    let looks = target_reads() - before;
    assert!(
        (28..=32).contains(&looks),
        "one look every {WATCH:?} over 300 s: {looks} reads of the target"
    );
    bot.stop(task).await;
}

#[tokio::test(start_paused = true)]
async fn a_run_taken_up_while_the_store_fails_waits_for_it_and_goes_on() {
    let bot = Bot::new();
    let run = bot.approved_run(Mode::Detach).await;
    bot.memory.fail_next("run");
    bot.runner().execute(run).await;
    assert_eq!(bot.run(run).await.state, RunState::Succeeded);
    assert_eq!(bot.aws.calls(Api::RemoveFromGlobalCluster).len(), 1);
}
