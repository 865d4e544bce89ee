//! The detach runbook through the real bot: the full run with its thread, a promotion that never
//! finishes, an AWS error, and a topology that changed after approval. DNS is never pointed at a
//! cluster that is not writable, and every failure is reported in the thread.

use crate::common;

use aurora_failover_bot::store::RunState;
use awsim::{FaultCode, FaultSpec};
use common::*;
use std::time::Duration;

#[tokio::test]
async fn the_full_run_moves_dns_and_narrates_every_step_in_order_in_the_requests_thread() {
    let bot = TestBot::start().await;
    let id = bot.request().await;
    let request_ts = bot.request_message(id).await.ts.unwrap();
    bot.click(BOB, id, true).await;
    let run = bot.finished_run(id, Duration::from_secs(30)).await;
    assert_eq!(run.state, RunState::Succeeded);
    bot.slack_settled().await;

    let (w, r) = bot.endpoints("us-west-2", "orders-west");
    assert_eq!(bot.writer_cname(), w);
    assert_eq!(bot.reader_cname(), r);
    assert_eq!(bot.sim.admin().record(ZONE, WRITER_RECORD, "CNAME").unwrap().ttl, 1);
    // Exactly one mutating call of each kind, each in the right place.
    let removes = bot.sim.admin().calls_to("RemoveFromGlobalCluster");
    assert_eq!(removes.len(), 1);
    assert_eq!(removes[0].region, "us-west-2", "sent to the target's own Region");
    let changes = bot.sim.admin().calls_to("ChangeResourceRecordSets");
    assert_eq!(changes.len(), 1, "both CNAMEs in one change batch");
    assert!(
        changes[0].params["Changes"].contains(WRITER_RECORD) && changes[0].params["Changes"].contains(READER_RECORD)
    );
    // The old primary was not touched.
    let east = bot.sim.admin().cluster("us-east-1", "orders-east").unwrap();
    assert!(east.members.iter().any(|i| i.is_writer));

    // Every reply is in the request's thread, in order: one per step, edited in place from its start
    // to its end, and one per change of the target's status that the polling saw.
    let thread: Vec<String> = bot.thread(&request_ts).iter().map(|r| r.text().to_owned()).collect();
    let order = [
        "Approved by <@U0BOB>",
        "*Re-check the topology* (",
        "*Detach and promote the target* (",
        "*Wait until the target is writable* (",
        "orders-west: promoting, no writer → available, writer",
        "*Repoint the CNAMEs* (",
        "*Wait for Route 53 INSYNC* (",
        "*Verify the records* (",
        "*Failover complete*",
    ];
    let posts = bot.thread_posts(&request_ts);
    assert!(
        posts.len() <= 10,
        "a detach run posts at most 10 replies, not {}: {thread:#?}",
        posts.len()
    );
    // Each step's reply said first that it started, then (for a wait) what it saw, then its end.
    let edits = |label: &str| -> Vec<String> {
        let reply = posts.iter().find(|p| p.text().contains(label)).expect(label);
        let mut texts = vec![reply.text().to_owned()];
        texts.extend(
            bot.updates(reply.ts.as_deref().unwrap())
                .iter()
                .map(|u| u.text().to_owned()),
        );
        texts
    };
    let waited = edits("*Wait until the target is writable*");
    assert!(waited[0].contains(":arrow_forward:"), "{waited:#?}");
    assert!(
        waited
            .iter()
            .any(|t| t.contains("Now: orders-west: promoting, no writer")),
        "the first status seen is shown in the step's reply: {waited:#?}"
    );
    assert!(waited.last().unwrap().contains(":heavy_check_mark:"), "{waited:#?}");
    assert_eq!(edits("*Verify the records*").len(), 2, "started, then done");
    let mut at = 0;
    for expected in order {
        let pos = thread[at..]
            .iter()
            .position(|t| t.contains(expected))
            .unwrap_or_else(|| panic!("{expected:?} missing after reply {at} in {thread:#?}"));
        at += pos + 1;
    }
    assert_eq!(at, thread.len(), "the completion is the last reply: {thread:#?}");
    let last = bot.thread(&request_ts).last().cloned().unwrap();
    assert_eq!(
        last.body["reply_broadcast"], true,
        "the outcome is also shown in the channel"
    );
    assert!(
        last.text().contains(&w) && last.text().contains(&r),
        "with the new endpoints"
    );
    assert!(
        last.text().contains("may still accept writes"),
        "with the split-brain warning"
    );
    let broadcasts = bot
        .thread(&request_ts)
        .iter()
        .filter(|r| r.body.get("reply_broadcast").is_some())
        .count();
    assert_eq!(broadcasts, 1, "only the outcome is broadcast");
    // The request message followed the run and ends showing the outcome, without buttons.
    let updates = bot.updates(&request_ts);
    let final_update = updates.last().unwrap();
    assert!(
        all_text(final_update).contains("*Completed*"),
        "{}",
        all_text(final_update)
    );
    assert!(!has_buttons(final_update));
    // The journal has every step, started and finished.
    let journal = bot.store.journal_of(run.id).await.unwrap();
    let finished: Vec<_> = journal
        .iter()
        .filter(|e| e.event == "finished")
        .map(|e| e.step.as_str())
        .collect();
    assert_eq!(
        finished,
        [
            "precheck",
            "detach",
            "wait_writable",
            "update_dns",
            "wait_insync",
            "verify"
        ]
    );

    // Status now knows where the writes go: the detached cluster, with the CNAMEs pointing at it, and
    // the old primary flagged.
    let (_, url) = bot.command(MALLORY, "status").await;
    let status = bot.answer_at(&url).await;
    assert!(
        status.contains("us-west-2 `orders-west` *standalone writer*, detached from the global cluster by request #1"),
        "{status}"
    );
    assert!(
        status.contains("`orders-east` (us-east-1) is still the writer of the global cluster"),
        "{status}"
    );
    assert!(
        status.contains(":white_check_mark: writer CNAME") && status.contains(":white_check_mark: reader CNAME"),
        "{status}"
    );
}

#[tokio::test]
async fn a_promotion_that_never_finishes_needs_attention_at_its_deadline_and_dns_is_untouched() {
    let bot = TestBot::start_with(Options {
        timings: awsim::Timings {
            detach_ms: 3_600_000,
            ..Options::default().timings
        },
        promote_timeout_secs: 2,
        ..Options::default()
    })
    .await;
    let before = (bot.writer_cname(), bot.reader_cname());
    let id = bot.request().await;
    let ts = bot.request_message(id).await.ts.unwrap();
    bot.click(BOB, id, true).await;
    let started = std::time::Instant::now();
    let run = bot.finished_run(id, Duration::from_secs(30)).await;
    assert_eq!(run.state, RunState::NeedsAttention);
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "it waited the whole timeout"
    );
    assert_eq!((bot.writer_cname(), bot.reader_cname()), before, "DNS untouched");
    assert!(bot.sim.admin().calls_to("ChangeResourceRecordSets").is_empty());
    // Polling was at the configured interval, not a hot loop: about 2 s / 100 ms.
    let polls = bot
        .sim
        .admin()
        .calls_to("DescribeDBClusters")
        .iter()
        .filter(|c| c.region == "us-west-2")
        .count();
    assert!((5..=40).contains(&polls), "{polls} polls in 2 s");
    bot.slack_settled().await;
    let stop = bot
        .thread(&ts)
        .into_iter()
        .find(|r| r.text().contains("*Needs attention*"))
        .expect("the thread says the run needs attention");
    assert_eq!(stop.body["reply_broadcast"], true, "told to the channel too");
    let text = stop.text();
    assert!(
        text.contains("*Needs attention* (run 1) at *Wait until the target is writable*"),
        "{text}"
    );
    assert!(
        text.contains("/aurora resume 1") && text.contains("/aurora abandon 1 REASON"),
        "{text}"
    );
    assert!(text.contains("was not writable after 2 s"), "{text}");
    assert!(
        text.contains("orders-west is promoting, no writer instance"),
        "the cluster's state now: {text}"
    );
    assert!(text.contains("this run did not change it"), "{text}");
    let final_update = bot.updates(&ts).last().cloned().unwrap();
    assert!(
        all_text(&final_update).contains("*Needs attention* (run 1) at Wait until the target is writable"),
        "{}",
        all_text(&final_update)
    );
}

#[tokio::test]
async fn an_aws_error_during_the_run_is_reported_in_the_thread_and_dns_is_untouched() {
    let bot = TestBot::start_with(Options {
        promote_timeout_secs: 2,
        ..Options::default()
    })
    .await;
    let before = (bot.writer_cname(), bot.reader_cname());
    let id = bot.request().await;
    let ts = bot.request_message(id).await.ts.unwrap();
    bot.sim
        .admin()
        .inject(FaultSpec {
            action: "RemoveFromGlobalCluster".into(),
            region: None,
            error: Some(FaultCode::InternalFailure),
            delay_ms: None,
            delay_response_ms: None,
            count: None,
        })
        .unwrap();
    bot.click(BOB, id, true).await;
    let run = bot.finished_run(id, Duration::from_secs(30)).await;
    assert_eq!(run.state, RunState::Failed);
    assert_eq!((bot.writer_cname(), bot.reader_cname()), before, "DNS untouched");
    assert!(bot.sim.admin().calls_to("ChangeResourceRecordSets").is_empty());
    // The target is still a member: the failed calls changed nothing.
    assert_eq!(
        bot.sim.admin().global_cluster("orders-global").unwrap().members.len(),
        2
    );
    bot.slack_settled().await;
    let thread: Vec<String> = bot.thread(&ts).iter().map(|r| r.text().to_owned()).collect();
    assert!(
        thread
            .iter()
            .any(|t| t.contains("RemoveFromGlobalCluster failed") && t.contains("InternalFailure")),
        "{thread:#?}"
    );
    let last = thread.last().unwrap();
    assert!(
        last.contains("*Failover failed* at *Detach and promote the target*"),
        "{last}"
    );
    assert!(last.contains("InternalFailure"), "{last}");
    assert!(last.contains("this run did not change it"), "{last}");
}

#[tokio::test]
async fn a_topology_changed_after_approval_stops_the_run_before_any_change() {
    let bot = TestBot::start().await;
    let id = bot.request().await;
    let ts = bot.request_message(id).await.ts.unwrap();
    // While the request waited, the target became unavailable.
    bot.sim
        .admin()
        .set_cluster_status("us-west-2", "orders-west", "modifying")
        .unwrap();
    bot.click(BOB, id, true).await;
    let run = bot.finished_run(id, Duration::from_secs(30)).await;
    assert_eq!(run.state, RunState::Failed);
    assert!(
        bot.sim.admin().calls_to("RemoveFromGlobalCluster").is_empty(),
        "no mutating call"
    );
    assert!(bot.sim.admin().calls_to("ChangeResourceRecordSets").is_empty());
    bot.slack_settled().await;
    let last = bot.thread(&ts).last().cloned().unwrap();
    assert!(
        last.text().contains("*Failover failed* at *Re-check the topology*"),
        "{}",
        last.text()
    );
    assert!(last.text().contains("modifying"), "{}", last.text());
    assert!(last.text().contains("Nothing was changed"), "{}", last.text());
}

#[tokio::test]
async fn dns_is_not_repointed_when_the_promoted_cluster_stops_being_writable_before_the_upsert() {
    let bot = TestBot::start_with(Options {
        dns_timeout_secs: 2,
        ..Options::default()
    })
    .await;
    let before = (bot.writer_cname(), bot.reader_cname());
    let id = bot.request().await;
    let ts = bot.request_message(id).await.ts.unwrap();
    // Every read of the target takes a second: a window to change the cluster between the read that
    // finds it writable and the read right before the UPSERT.
    bot.sim
        .admin()
        .inject(FaultSpec {
            action: "DescribeDBClusters".into(),
            region: Some("us-west-2".into()),
            error: None,
            delay_ms: Some(1_000),
            delay_response_ms: None,
            count: None,
        })
        .unwrap();
    bot.click(BOB, id, true).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let run = bot.store.run_of_request(id.into()).await.unwrap();
        if let Some(run) = run
            && bot
                .store
                .journal_of(run.id)
                .await
                .unwrap()
                .iter()
                .any(|e| e.step == "wait_writable" && e.event == "finished")
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the run never saw the cluster writable"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The run is now re-reading the cluster before the UPSERT (held for a second): break it.
    bot.sim
        .admin()
        .set_cluster_status("us-west-2", "orders-west", "maintenance")
        .unwrap();
    let run = bot.finished_run(id, Duration::from_secs(30)).await;
    assert_eq!(run.state, RunState::NeedsAttention);
    assert_eq!((bot.writer_cname(), bot.reader_cname()), before, "DNS untouched");
    assert!(bot.sim.admin().calls_to("ChangeResourceRecordSets").is_empty());
    bot.slack_settled().await;
    let last = bot.thread(&ts).last().cloned().unwrap();
    assert!(
        last.text()
            .contains("*Needs attention* (run 1) at *Repoint the CNAMEs*"),
        "{}",
        last.text()
    );
    assert!(last.text().contains("refusing to point DNS at it"), "{}", last.text());
}
