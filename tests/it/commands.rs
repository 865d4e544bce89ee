//! `/aurora` commands and approval clicks through the real bot: status, requests, who may ask and who
//! may approve, simultaneous clicks, deny, expiry, and the helpful answers to bad input.

use crate::common;

use aurora_failover_bot::store::{RequestState, RunState};
use common::*;
use std::time::Duration;

#[tokio::test]
async fn help_and_empty_and_unknown_commands_answer_with_usage() {
    let bot = TestBot::start().await;
    for text in [
        "help",
        "",
        "launch the rockets",
        "failover",
        "failover orders --mode yolo",
    ] {
        let (answer, _) = bot.command(MALLORY, text).await;
        assert_eq!(answer.status, 200);
        let t = answer.text();
        assert!(
            t.contains("/aurora status") && t.contains("/aurora failover"),
            "{text:?}: {t}"
        );
    }
    let (answer, _) = bot.command(MALLORY, "launch").await;
    assert!(answer.text().contains("unknown command `launch`"), "{}", answer.text());
    assert!(bot.sim.admin().calls().is_empty(), "usage needs no AWS call");
}

#[tokio::test]
async fn status_shows_the_topology_and_whether_the_cnames_point_at_the_writer() {
    let bot = TestBot::start().await;
    let (answer, url) = bot.command(MALLORY, "status").await;
    assert_eq!(answer.status, 200);
    let text = bot.answer_at(&url).await;
    let (east_w, east_r) = bot.endpoints("us-east-1", "orders-east");
    assert!(text.contains("*orders*"), "{text}");
    assert!(text.contains("us-east-1 `orders-east` *writer* · available"), "{text}");
    assert!(text.contains("us-west-2 `orders-west` reader · available"), "{text}");
    assert!(text.contains(&east_w) && text.contains(&east_r), "{text}");
    assert!(text.contains(":white_check_mark: writer CNAME"), "{text}");
    assert!(text.contains(":white_check_mark: reader CNAME"), "{text}");
    let response = &bot.slack.responses_to(&url)[0];
    assert_eq!(response.field("response_type"), Some("in_channel"));
    // Both Regions were asked about their own clusters.
    let calls = bot.sim.admin().calls_to("DescribeDBClusters");
    let mut regions: Vec<_> = calls.iter().map(|c| c.region.as_str()).collect();
    regions.sort();
    assert_eq!(regions, ["us-east-1", "us-west-2"]);

    // A CNAME that drifted is marked.
    let other = bot.endpoints("us-west-2", "orders-west").0;
    let mut s = awsim::Scenario::two_region_example();
    s.hosted_zones[0].records[0].points_to = None;
    s.hosted_zones[0].records[0].values = vec![other.clone()];
    bot.sim.admin().load_scenario(s).unwrap();
    // A read less than a second old answers a burst of status commands: wait past it.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let (_, url) = bot.command(MALLORY, "status orders").await;
    let text = bot.answer_at(&url).await;
    assert!(
        text.contains(&format!(":warning: writer CNAME `{WRITER_RECORD}` → `{other}`, *not*")),
        "{text}"
    );

    let (answer, _) = bot.command(MALLORY, "status billing").await;
    assert!(
        answer
            .text()
            .contains("Unknown cluster `billing`. Configured clusters: orders."),
        "{}",
        answer.text()
    );
}

#[tokio::test]
async fn a_request_is_posted_for_approval_with_who_what_where_the_plan_and_the_expiry() {
    let bot = TestBot::start().await;
    let (answer, url) = bot.command(ALICE, "failover orders --mode detach").await;
    assert_eq!(answer.status, 200);
    assert!(answer.text().starts_with("Request #1 is recorded"), "{}", answer.text());
    let msg = bot.request_message(1).await;
    assert_eq!(msg.field("channel"), Some(CHANNEL));
    let text = all_text(&msg);
    for expected in [
        "<@U0ALICE> asks to move the writer of *orders*",
        "*From* us-east-1 `orders-east`",
        "*To* us-west-2 `orders-west`",
        "*Mode:* `detach`",
        "*still writable*",
        "RemoveFromGlobalCluster in us-west-2",
        "Waiting for approval",
        "Expires",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in {text}");
    }
    let buttons: Vec<_> = msg.body["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == "actions")
        .flat_map(|b| b["elements"].as_array().unwrap().iter())
        .map(|e| {
            (
                e["action_id"].as_str().unwrap().to_owned(),
                e["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        buttons,
        [
            ("approve".to_owned(), "1".to_owned()),
            ("deny".to_owned(), "1".to_owned())
        ]
    );
    // The requester is told where it was posted.
    let reply = bot.answer_at(&url).await;
    assert!(
        reply.contains("Request #1") && reply.contains("<#C0INCIDENT>"),
        "{reply}"
    );
    assert_eq!(bot.request_state(1).await.state, RequestState::Pending);
    // Nothing was changed in AWS: only reads.
    assert!(
        bot.sim
            .admin()
            .calls()
            .iter()
            .all(|c| !MUTATING.contains(&c.action.as_str()))
    );
}

#[tokio::test]
async fn only_requesters_may_ask_and_unknown_clusters_regions_and_modes_get_helpful_answers() {
    let bot = TestBot::start().await;
    let (answer, _) = bot.command(MALLORY, "failover orders").await;
    assert!(answer.text().contains("not allowed to request"), "{}", answer.text());
    let (answer, _) = bot.command(ALICE, "failover billing").await;
    assert!(
        answer
            .text()
            .contains("Unknown cluster `billing`. Configured clusters: orders."),
        "{}",
        answer.text()
    );
    let (answer, _) = bot.command(ALICE, "failover orders --to eu-west-1").await;
    assert!(
        answer.text().contains("Its Regions: us-east-1, us-west-2."),
        "{}",
        answer.text()
    );
    // Both refusals are on record, as every refused request is.
    let audited: Vec<_> = (bot.store.audit_log().await.unwrap().into_iter())
        .filter(|a| a.action.starts_with("request failover") && a.outcome.starts_with("refused: "))
        .map(|a| a.action)
        .collect();
    assert_eq!(
        audited,
        [
            "request failover orders",
            "request failover billing",
            "request failover orders"
        ]
    );
    let (answer, _) = bot.command(ALICE, "failover orders --to us-east-1").await;
    assert!(answer.text().starts_with("Request #"), "{}", answer.text());
    // The writer's own Region is not a target: the request is rejected after reading the topology.
    let reply = bot
        .slack
        .wait_for(WAIT, |calls| {
            calls
                .iter()
                .find(|c| c.method == "response" && c.text().contains("could not be prepared"))
                .cloned()
        })
        .await
        .expect("a rejection reply");
    assert!(reply.text().contains("already holds the writer"), "{}", reply.text());
    assert!(bot.pending().await.is_empty());
    // A member of a requester user group may ask.
    let (answer, _) = bot.command(DAVE, "failover orders").await;
    assert!(answer.text().starts_with("Request #"), "{}", answer.text());
    bot.request_message(2).await;
    // A second request for the same cluster is refused with a pointer to the first.
    let (answer, _) = bot.command(ALICE, "failover orders").await;
    assert!(
        answer.text().contains("already has") && answer.text().contains("request #2"),
        "{}",
        answer.text()
    );
    assert_eq!(bot.pending().await.len(), 1);
}

#[tokio::test]
async fn the_requester_cannot_approve_their_own_request_and_others_cannot_approve_at_all() {
    let bot = TestBot::start().await;
    let id = bot.request().await;
    let url = bot.click(ALICE, id, true).await;
    assert!(bot.answer_at(&url).await.contains("cannot approve your own request"));
    let url = bot.click(MALLORY, id, true).await;
    assert!(bot.answer_at(&url).await.contains("not an approver"));
    let url = bot.click(MALLORY, id, false).await;
    assert!(
        bot.answer_at(&url)
            .await
            .contains("Only an approver or the requester can deny")
    );
    // Refusals are answered to the clicker only, and change nothing.
    for r in bot.slack.delivered("response") {
        assert_eq!(r.field("response_type"), Some("ephemeral"));
    }
    assert_eq!(bot.request_state(id).await.state, RequestState::Pending);
    assert!(bot.store.run_of_request(id.into()).await.unwrap().is_none());
    assert!(bot.sim.admin().calls_to("RemoveFromGlobalCluster").is_empty());
    assert!(bot.slack.delivered("chat.update").is_empty());
    // Every attempt is audited.
    let refused = bot
        .store
        .audit_log()
        .await
        .unwrap()
        .into_iter()
        .filter(|a| a.outcome.starts_with("refused"))
        .count();
    assert_eq!(refused, 3);
}

#[tokio::test]
async fn a_member_of_an_approver_group_approves_and_the_run_moves_dns_to_the_new_writer() {
    let bot = TestBot::start().await;
    let id = bot.request().await;
    let url = bot.click(CAROL, id, true).await;
    assert!(bot.answer_at(&url).await.contains("You approved request #1"));
    let run = bot.finished_run(id, Duration::from_secs(30)).await;
    assert_eq!(run.state, RunState::Succeeded);
    let (w, r) = bot.endpoints("us-west-2", "orders-west");
    assert_eq!(bot.writer_cname(), w);
    assert_eq!(bot.reader_cname(), r);
    let req = bot.request_state(id).await;
    assert_eq!(req.decided_by.as_ref().map(|u| u.to_string()).as_deref(), Some(CAROL));
}

#[tokio::test]
async fn five_simultaneous_approve_clicks_start_exactly_one_run() {
    let bot = TestBot::start().await;
    let id = bot.request().await;
    let ts = bot.request_message(id).await.ts.unwrap();
    let clickers = [BOB, CAROL, BOB, CAROL, BOB];
    let urls: Vec<String> = clickers.iter().map(|_| bot.slack.response_url()).collect();
    let now = bot.now();
    let value = id.to_string();
    let clicks = clickers
        .iter()
        .zip(&urls)
        .map(|(user, url)| bot.sender.click(user, CHANNEL, &ts, "approve", &value, url, now));
    let answers = futures::future::join_all(clicks).await;
    assert!(answers.iter().all(|a| a.status == 200), "{answers:?}");
    let mut texts = Vec::new();
    for url in &urls {
        texts.push(bot.answer_at(url).await);
    }
    let approved = texts.iter().filter(|t| t.contains("You approved")).count();
    let already = texts.iter().filter(|t| t.contains("was already approved")).count();
    assert_eq!((approved, already), (1, 4), "{texts:#?}");
    let run = bot.finished_run(id, Duration::from_secs(30)).await;
    assert_eq!(run.state, RunState::Succeeded);
    assert_eq!(
        bot.sim.admin().calls_to("RemoveFromGlobalCluster").len(),
        1,
        "RemoveFromGlobalCluster once"
    );
    assert_eq!(bot.sim.admin().calls_to("ChangeResourceRecordSets").len(), 1);
    bot.slack_settled().await;
    let approvals = bot
        .thread(&ts)
        .iter()
        .filter(|r| r.text().contains("Approved by"))
        .count();
    assert_eq!(approvals, 1, "one 'approved' reply in the thread");
}

#[tokio::test]
async fn deny_by_an_approver_or_the_requester_closes_the_request_and_removes_the_buttons() {
    let bot = TestBot::start().await;
    let id = bot.request().await;
    let url = bot.click(BOB, id, false).await;
    assert!(bot.answer_at(&url).await.contains("You denied request #1"));
    assert_eq!(bot.request_state(id).await.state, RequestState::Denied);
    bot.slack_settled().await;
    let ts = bot.request_message(id).await.ts.unwrap();
    let updates = bot.updates(&ts);
    let last = updates.last().expect("the request message is updated");
    assert!(!has_buttons(last), "the buttons are gone");
    assert!(all_text(last).contains("*Denied* by <@U0BOB>"), "{}", all_text(last));
    assert!(bot.thread(&ts).iter().any(|r| r.text().contains("Denied by <@U0BOB>")));
    // A later click changes nothing and says why.
    let url = bot.click(CAROL, id, true).await;
    assert!(bot.answer_at(&url).await.contains("was already denied by <@U0BOB>"));
    assert!(bot.store.run_of_request(id.into()).await.unwrap().is_none());
    assert!(bot.sim.admin().calls_to("RemoveFromGlobalCluster").is_empty());

    // The requester may withdraw their own request.
    let id = bot.request().await;
    let url = bot.click(ALICE, id, false).await;
    assert!(bot.answer_at(&url).await.contains("You denied request #2"));
    assert_eq!(bot.request_state(id).await.state, RequestState::Denied);
}

#[tokio::test]
async fn an_expired_request_is_closed_on_its_own_and_a_late_click_changes_nothing() {
    let bot = TestBot::start_with(Options {
        request_ttl_secs: 60,
        ..Options::default()
    })
    .await;
    let id = bot.request().await;
    bot.clock.advance(Duration::from_secs(61));
    // Nobody clicks: the expiry task closes it and updates the message.
    let deadline = tokio::time::Instant::now() + WAIT;
    while bot.request_state(id).await.state != RequestState::Expired {
        assert!(tokio::time::Instant::now() < deadline, "the request did not expire");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The expiry is recorded, then the message update queued: wait for the update itself.
    let ts = bot.request_message(id).await.ts.unwrap();
    let last = poll_until("the message update", Duration::from_millis(20), async || {
        bot.updates(&ts).last().cloned()
    })
    .await;
    bot.slack_settled().await;
    assert!(!has_buttons(&last));
    assert!(all_text(&last).contains("*Expired*"), "{}", all_text(&last));
    assert!(bot.thread(&ts).iter().any(|r| r.text().contains("expired")));
    let url = bot.click(BOB, id, true).await;
    assert!(bot.answer_at(&url).await.contains("has expired"));
    assert!(bot.store.run_of_request(id.into()).await.unwrap().is_none());
    assert!(bot.sim.admin().calls_to("RemoveFromGlobalCluster").is_empty());
    // The cluster is free for a new request.
    let (answer, _) = bot.command(ALICE, "failover orders").await;
    assert!(answer.text().starts_with("Request #2"), "{}", answer.text());
}

#[tokio::test]
async fn commands_and_clicks_are_answered_within_three_seconds_however_slow_aws_is() {
    let bot = TestBot::start().await;
    let id = bot.request().await;
    // From now on every AWS read takes ten seconds.
    for action in ["DescribeGlobalClusters", "DescribeDBClusters", "ListResourceRecordSets"] {
        bot.sim
            .admin()
            .inject(awsim::FaultSpec {
                action: action.into(),
                region: None,
                error: None,
                delay_ms: Some(10_000),
                delay_response_ms: None,
                count: None,
            })
            .unwrap();
    }
    let timed = |started: std::time::Instant| {
        let took = started.elapsed();
        assert!(took < Duration::from_secs(3), "answered in {took:?}");
    };
    let started = std::time::Instant::now();
    let (answer, _) = bot.command(MALLORY, "status").await;
    assert_eq!(answer.status, 200);
    timed(started);
    let started = std::time::Instant::now();
    let (answer, _) = bot.command(ALICE, "failover orders").await;
    assert_eq!(answer.status, 200);
    assert!(
        answer.text().contains("already has") && answer.text().contains("request #1"),
        "{}",
        answer.text()
    );
    timed(started);
    let started = std::time::Instant::now();
    let ts = bot.request_message(id).await.ts.unwrap();
    let url = bot.slack.response_url();
    let answer = bot
        .sender
        .click(BOB, CHANNEL, &ts, "approve", &id.to_string(), &url, bot.now())
        .await;
    assert_eq!(answer.status, 200);
    timed(started);
    assert!(bot.answer_at(&url).await.contains("You approved"));
}
