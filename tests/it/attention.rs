//! A started run is never abandoned by the bot. After its first mutating call, a passed deadline, a
//! later refusal or a target stuck in a state AWS will not leave puts the run in `needs attention`:
//! the thread says so at once, the bot keeps watching, and it finishes by itself only within the late
//! DNS window and after a full re-check (the target is the writer, the old primary is not writable).
//! Otherwise a person decides: `/aurora resume` (a second person approves) or `/aurora abandon`.

use crate::common;

use aurora_failover_bot::slack::render::{ABANDON_CONFIRM, AbandonValue, RESUME_APPROVE};
use aurora_failover_bot::store::{RunState, Store};
use awsim::{FaultCode, FaultSpec};
use common::*;
use std::time::Duration;

/// Polls of the promoted cluster fail from now on (until the faults are cleared).
fn polls_fail(bot: &TestBot) {
    bot.sim
        .admin()
        .inject(FaultSpec {
            action: "DescribeDBClusters".into(),
            region: Some("us-west-2".into()),
            error: Some(FaultCode::ServiceUnavailable),
            delay_ms: None,
            delay_response_ms: None,
            count: None,
        })
        .unwrap();
}

fn detach_options() -> Options {
    Options {
        promote_timeout_secs: 2,
        ..Options::default()
    }
}

/// Waits until request `id`'s run is in `state`.
pub async fn wait_state(store: &dyn Store, id: i64, state: RunState) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        let now = store.run_of_request(id.into()).await.unwrap().map(|r| r.state);
        if now == Some(state) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the run is {now:?}, not {state:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits for a thread reply containing `needle`; returns it.
pub async fn reply_with(bot: &TestBot, ts: &str, needle: &str) -> String {
    bot.slack
        .wait_for(Duration::from_secs(30), |_| {
            thread_texts(bot, ts).into_iter().find(|t| t.contains(needle))
        })
        .await
        .unwrap_or_else(|| panic!("no reply with {needle:?} in {:#?}", thread_texts(bot, ts)))
}

/// Clicks Approve on the resume request `ts` as `user` (with the value its button carries); returns
/// the answer to the click.
pub async fn click_resume(bot: &TestBot, ts: &str, user: &str) -> String {
    let message = bot
        .slack
        .delivered("chat.postMessage")
        .into_iter()
        .find(|c| c.ts.as_deref() == Some(ts))
        .expect("the resume request");
    let value = message.body["blocks"][1]["elements"][0]["value"]
        .as_str()
        .expect("the Approve button's value")
        .to_owned();
    assert!(value.starts_with("1:"), "{value}");
    let url = bot.slack.response_url();
    let answer = bot
        .sender
        .click(user, CHANNEL, ts, RESUME_APPROVE, &value, &url, bot.now())
        .await;
    assert_eq!(answer.status, 200);
    bot.answer_at(&url).await
}

fn dns_points_west(bot: &TestBot) -> bool {
    let (w, r) = bot.endpoints("us-west-2", "orders-west");
    bot.writer_cname() == w && bot.reader_cname() == r
}

#[tokio::test]
async fn polls_failing_past_the_deadline_need_attention_and_the_bot_finishes_inside_the_window() {
    let bot = TestBot::start_with(detach_options()).await;
    let id = bot.request().await;
    let ts = bot.request_message(id).await.ts.unwrap();
    bot.click(BOB, id, true).await;
    wait_for_step(&bot, id, "wait_writable").await;
    polls_fail(&bot);
    wait_state(&*bot.store, id, RunState::NeedsAttention).await;
    let stop = reply_with(&bot, &ts, "*Needs attention*").await;
    assert!(
        stop.contains("at *Wait until the target is writable*") && stop.contains("DescribeDBClusters"),
        "{stop}"
    );
    assert!(stop.contains("finishes by itself"), "inside the window: {stop}");
    assert_eq!(bot.sim.admin().calls_to("RemoveFromGlobalCluster").len(), 1);
    assert!(bot.sim.admin().calls_to("ChangeResourceRecordSets").is_empty());
    // The old primary's Region is in trouble (it is not writable), and AWS answers again: the bot
    // re-checks and finishes by itself.
    bot.sim
        .admin()
        .set_cluster_status("us-east-1", "orders-east", "inaccessible-encryption-credentials")
        .unwrap();
    bot.sim.admin().clear_faults();
    wait_state(&*bot.store, id, RunState::Succeeded).await;
    assert!(dns_points_west(&bot), "DNS moved to the promoted cluster");
    assert_eq!(
        bot.sim.admin().calls_to("RemoveFromGlobalCluster").len(),
        1,
        "detached once"
    );
    let late = reply_with(&bot, &ts, "Re-checked within the").await;
    assert!(late.contains("the old primary is not writable"), "{late}");
    reply_with(&bot, &ts, "*Failover complete*").await;
}

#[tokio::test]
async fn an_old_primary_writable_again_after_a_detach_keeps_dns_and_resume_needs_a_second_person() {
    let bot = TestBot::start_with(detach_options()).await;
    let id = bot.request().await;
    let ts = bot.request_message(id).await.ts.unwrap();
    bot.click(BOB, id, true).await;
    wait_for_step(&bot, id, "wait_writable").await;
    polls_fail(&bot);
    wait_state(&*bot.store, id, RunState::NeedsAttention).await;
    let before = (bot.writer_cname(), bot.reader_cname());
    // AWS answers again and the target is writable, but the old primary is writable too: the bot must
    // not move DNS by itself.
    bot.sim.admin().clear_faults();
    let why = reply_with(&bot, &ts, "will not finish run 1 by itself").await;
    assert!(
        why.contains("the old primary orders-east (us-east-1) is writable too") && why.contains("split the data"),
        "{why}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!((bot.writer_cname(), bot.reader_cname()), before, "DNS untouched");
    assert!(bot.sim.admin().calls_to("ChangeResourceRecordSets").is_empty());
    assert_eq!(
        bot.store.run_of_request(id.into()).await.unwrap().unwrap().state,
        RunState::NeedsAttention
    );

    // Someone outside the lists may not ask; the requester may, but not approve it herself.
    let (answer, _) = bot.command(MALLORY, "resume 1").await;
    assert!(answer.text().contains("Only a requester or an approver"), "{answer:?}");
    let (answer, _) = bot.command(ALICE, "resume 1").await;
    assert!(answer.text().contains("You asked to resume run 1"), "{answer:?}");
    let (answer, _) = bot.command(BOB, "resume 1").await;
    assert!(answer.text().contains("already asked for by <@U0ALICE>"), "{answer:?}");
    reply_with(&bot, &ts, "asks to resume run 1").await;
    let resume_ts = bot
        .thread(&ts)
        .into_iter()
        .find(|r| r.text().contains("asks to resume run 1"))
        .and_then(|r| r.ts)
        .unwrap();
    let own = click_resume(&bot, &resume_ts, ALICE).await;
    assert!(own.contains("a second person must approve"), "{own}");
    let stranger = click_resume(&bot, &resume_ts, MALLORY).await;
    assert!(stranger.contains("not an approver"), "{stranger}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        bot.store.run_of_request(id.into()).await.unwrap().unwrap().state,
        RunState::NeedsAttention
    );
    assert_eq!((bot.writer_cname(), bot.reader_cname()), before, "still untouched");
    let approved = click_resume(&bot, &resume_ts, BOB).await;
    assert!(approved.contains("You approved resuming run 1"), "{approved}");
    wait_state(&*bot.store, id, RunState::Succeeded).await;
    assert!(dns_points_west(&bot));
    assert_eq!(bot.sim.admin().calls_to("RemoveFromGlobalCluster").len(), 1);
    let audit = bot.store.audit_log().await.unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.user == BOB && a.action == "approve resume of run 1" && a.outcome == "done"),
        "{audit:#?}"
    );
}

#[tokio::test]
async fn a_target_stuck_in_a_state_aws_will_not_leave_is_reported_at_once() {
    let bot = TestBot::start_with(Options {
        timings: awsim::Timings {
            detach_ms: 3_600_000,
            ..Options::default().timings
        },
        promote_timeout_secs: 600,
        ..Options::default()
    })
    .await;
    let id = bot.request().await;
    let ts = bot.request_message(id).await.ts.unwrap();
    bot.click(BOB, id, true).await;
    wait_for_step(&bot, id, "wait_writable").await;
    let started = std::time::Instant::now();
    bot.sim
        .admin()
        .set_cluster_status("us-west-2", "orders-west", "inaccessible-encryption-credentials")
        .unwrap();
    wait_state(&*bot.store, id, RunState::NeedsAttention).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "reported at once, not at the 600 s deadline"
    );
    let stop = reply_with(&bot, &ts, "*Needs attention*").await;
    assert!(
        stop.contains("orders-west is inaccessible-encryption-credentials") && stop.contains("KMS"),
        "{stop}"
    );
    // The step's own reply no longer says it is waiting: it says the run stopped there.
    let step = reply_with(&bot, &ts, "*Wait until the target is writable*").await;
    assert!(
        step.starts_with(":double_vertical_bar: *Wait until the target is writable*: stopped: "),
        "{step}"
    );
}

#[tokio::test]
async fn abandon_stops_a_run_changes_nothing_more_frees_the_cluster_and_records_who_and_why() {
    let bot = TestBot::start_with(detach_options()).await;
    let id = bot.request().await;
    let ts = bot.request_message(id).await.ts.unwrap();
    bot.click(BOB, id, true).await;
    wait_for_step(&bot, id, "wait_writable").await;
    polls_fail(&bot);
    wait_state(&*bot.store, id, RunState::NeedsAttention).await;

    // A stranger may not; a typo'd run is named; a reason is required.
    let (answer, _) = bot.command(MALLORY, "abandon 1 because").await;
    assert!(
        answer.text().contains("Only the requester or an approver"),
        "{answer:?}"
    );
    let (answer, _) = bot.command(ALICE, "abandon 9 because").await;
    assert!(answer.text().contains("Run 9 does not exist"), "{answer:?}");
    let (answer, _) = bot.command(ALICE, "abandon 1").await;
    assert!(answer.text().contains("needs a reason"), "{answer:?}");

    // The requester asks, and is asked to confirm: nothing happens before the click.
    let (answer, _) = bot
        .command(ALICE, "abandon 1 moved DNS <by hand> & told the app team")
        .await;
    assert_eq!(answer.status, 200);
    let body: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    assert!(
        answer
            .text()
            .contains("moved DNS &lt;by hand&gt; &amp; told the app team"),
        "the reason is shown escaped: {answer:?}"
    );
    assert_eq!(
        bot.store.run_of_request(id.into()).await.unwrap().unwrap().state,
        RunState::NeedsAttention
    );
    let button = &body["blocks"][1]["elements"][0];
    assert_eq!(button["action_id"], ABANDON_CONFIRM);
    let value: AbandonValue = serde_json::from_str(button["value"].as_str().unwrap()).unwrap();
    assert_eq!(value.run, 1);
    let calls_before = bot.sim.admin().calls().len();
    let url = bot.slack.response_url();
    bot.sender
        .click(
            ALICE,
            CHANNEL,
            &ts,
            ABANDON_CONFIRM,
            button["value"].as_str().unwrap(),
            &url,
            bot.now(),
        )
        .await;
    let done = bot.answer_at(&url).await;
    assert!(done.contains("You abandoned run 1"), "{done}");
    assert_eq!(
        bot.store.run_of_request(id.into()).await.unwrap().unwrap().state,
        RunState::Abandoned
    );
    let note = reply_with(&bot, &ts, "*abandoned* by <@U0ALICE>").await;
    assert!(note.contains("moved DNS &lt;by hand&gt;"), "{note}");

    // The bot stops watching: no more AWS calls for the run (mutating or not).
    bot.sim.admin().clear_faults();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after: Vec<_> = bot.sim.admin().calls()[calls_before..]
        .iter()
        .map(|c| c.action.clone())
        .collect();
    assert!(after.iter().all(|a| !MUTATING.contains(&a.as_str())), "{after:?}");
    assert!(bot.sim.admin().calls_to("ChangeResourceRecordSets").is_empty());
    let later: Vec<_> = bot.sim.admin().calls()[calls_before..].to_vec();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        bot.sim.admin().calls().len() - calls_before,
        later.len(),
        "the bot kept polling an abandoned run"
    );
    // Clicking again changes nothing.
    let url = bot.slack.response_url();
    bot.sender
        .click(
            BOB,
            CHANNEL,
            &ts,
            ABANDON_CONFIRM,
            button["value"].as_str().unwrap(),
            &url,
            bot.now(),
        )
        .await;
    assert!(bot.answer_at(&url).await.contains("already ended (abandoned)"));
    // Who and why are in the audit, and the cluster is free for a new request.
    let audit = bot.store.audit_log().await.unwrap();
    assert!(
        audit.iter().any(|a| a.user == ALICE
            && a.action == "abandon run 1"
            && a.outcome == "done: moved DNS <by hand> & told the app team"),
        "{audit:#?}"
    );
    let (answer, _) = bot.command(DAVE, "failover orders --mode detach --to us-west-2").await;
    assert!(!answer.text().contains("one at a time"), "{answer:?}");
}

#[tokio::test]
async fn abandoning_a_switchover_aws_is_still_running_says_so() {
    let bot = TestBot::start_with(Options {
        timings: awsim::Timings {
            switchover_ms: 60_000,
            ..Options::default().timings
        },
        ..Options::default()
    })
    .await;
    let (answer, _) = bot.command(ALICE, "failover orders --mode switchover").await;
    assert!(answer.text().starts_with("Request #1"), "{answer:?}");
    let ts = bot.request_message(1).await.ts.unwrap();
    bot.click(BOB, 1, true).await;
    wait_for_step(&bot, 1, "wait_managed").await;
    let value = serde_json::to_string(&AbandonValue {
        run: 1,
        reason: "rehearsal over".into(),
    })
    .unwrap();
    let url = bot.slack.response_url();
    bot.sender
        .click(BOB, CHANNEL, &ts, ABANDON_CONFIRM, &value, &url, bot.now())
        .await;
    assert!(bot.answer_at(&url).await.contains("You abandoned run 1"));
    let note = reply_with(&bot, &ts, "*abandoned* by <@U0BOB>").await;
    assert!(
        note.contains("Not stopped by abandoning: the switchover") && note.contains("/aurora status"),
        "{note}"
    );
    assert_eq!(bot.sim.admin().calls_to("SwitchoverGlobalCluster").len(), 1);
}

#[tokio::test]
async fn an_old_primary_whose_reads_are_throttled_is_not_taken_for_unreachable() {
    let bot = TestBot::start_with(detach_options()).await;
    let id = bot.request().await;
    let ts = bot.request_message(id).await.ts.unwrap();
    bot.click(BOB, id, true).await;
    wait_for_step(&bot, id, "wait_writable").await;
    polls_fail(&bot);
    wait_state(&*bot.store, id, RunState::NeedsAttention).await;
    // AWS answers for the promoted cluster again, but throttles every read of the old primary: that
    // says nothing about whether it takes writes, so DNS must not move.
    bot.sim.admin().clear_faults();
    bot.sim
        .admin()
        .inject(FaultSpec {
            action: "DescribeDBClusters".into(),
            region: Some("us-east-1".into()),
            error: Some(FaultCode::Throttling),
            delay_ms: None,
            delay_response_ms: None,
            count: None,
        })
        .unwrap();
    let seen = reply_with(&bot, &ts, "cannot be told").await;
    assert!(seen.contains("AWS is throttling rds:DescribeDBClusters"), "{seen}");
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        bot.sim.admin().calls_to("ChangeResourceRecordSets").is_empty(),
        "DNS moved"
    );
    assert_eq!(
        bot.store.run_of_request(id.into()).await.unwrap().unwrap().state,
        RunState::NeedsAttention
    );
}

#[tokio::test]
async fn abandoning_while_the_detach_is_on_its_way_says_it_may_still_take_effect_and_then_that_it_did() {
    let bot = TestBot::start().await;
    bot.sim
        .admin()
        .inject(FaultSpec {
            action: "RemoveFromGlobalCluster".into(),
            region: None,
            error: None,
            delay_ms: Some(2_000),
            delay_response_ms: None,
            count: Some(1),
        })
        .unwrap();
    let id = bot.request().await;
    let ts = bot.request_message(id).await.ts.unwrap();
    bot.click(BOB, id, true).await;
    // The call is on its way (held by the emulator) when the requester abandons the run.
    wait_for_step(&bot, id, "detach").await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let value = serde_json::to_string(&AbandonValue {
        run: 1,
        reason: "changed our minds".into(),
    })
    .unwrap();
    let url = bot.slack.response_url();
    bot.sender
        .click(ALICE, CHANNEL, &ts, ABANDON_CONFIRM, &value, &url, bot.now())
        .await;
    assert!(bot.answer_at(&url).await.contains("You abandoned run 1"));
    let note = reply_with(&bot, &ts, "*abandoned* by <@U0ALICE>").await;
    assert!(
        note.contains("Not stopped by abandoning: RemoveFromGlobalCluster, sent just before the abandon"),
        "{note}"
    );
    let after = reply_with(
        &bot,
        &ts,
        "AWS accepted RemoveFromGlobalCluster, sent just before run 1 was abandoned",
    )
    .await;
    assert!(after.contains("Cluster now:"), "{after}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        bot.sim.admin().calls_to("ChangeResourceRecordSets").is_empty(),
        "DNS moved after the abandon"
    );
    assert_eq!(
        bot.store.run_of_request(id.into()).await.unwrap().unwrap().state,
        RunState::Abandoned
    );
}
