//! The rest of a request's life: cancel, history, the audit trail, replays and double deliveries,
//! people who are both requester and approver, and answers that stay fast when Slack is slow.

use crate::common;
use aurora_failover_bot::store::RequestId;

use aurora_failover_bot::slack::verify;
use aurora_failover_bot::store::{RequestState, RunState};
use aurora_failover_bot::types::Secret;
use awsim::FaultSpec;
use common::*;
use standin::SlackSender;
use std::time::{Duration, Instant};

#[tokio::test]
async fn cancel_withdraws_an_open_request_by_the_requester_or_an_approver_and_nobody_else() {
    let bot = TestBot::start().await;
    let id = bot.request().await;
    let ts = bot.request_message(id).await.ts.unwrap();
    let (answer, _) = bot.command(MALLORY, &format!("cancel {id}")).await;
    assert!(
        answer.text().contains("Only the requester or an approver can cancel"),
        "{}",
        answer.text()
    );
    let (answer, _) = bot.command(ALICE, &format!("cancel #{id}")).await;
    assert_eq!(answer.text(), "Request #1 is cancelled. Nothing was changed.");
    assert_eq!(bot.request_state(id).await.state, RequestState::Cancelled);
    bot.slack_settled().await;
    let last = bot
        .updates(&ts)
        .last()
        .cloned()
        .expect("the request message is updated");
    assert!(!has_buttons(&last));
    assert!(
        all_text(&last).contains("*Cancelled* by <@U0ALICE>"),
        "{}",
        all_text(&last)
    );
    assert!(
        bot.thread(&ts)
            .iter()
            .any(|r| r.text().contains("Cancelled by <@U0ALICE>"))
    );
    let url = bot.click(BOB, id, true).await;
    assert!(
        bot.answer_at(&url)
            .await
            .contains("was already cancelled by <@U0ALICE>")
    );
    let (answer, _) = bot.command(ALICE, &format!("cancel {id}")).await;
    assert!(answer.text().contains("was already cancelled"), "{}", answer.text());

    // An approver (through a group) may cancel someone else's request; nobody can cancel an approved one.
    let id = bot.request().await;
    let (answer, _) = bot.command(CAROL, &format!("cancel {id}")).await;
    assert!(answer.text().contains("is cancelled"), "{}", answer.text());
    let id = bot.request().await;
    bot.click(BOB, id, true).await;
    let (answer, _) = bot.command(ALICE, &format!("cancel {id}")).await;
    assert!(answer.text().contains("already approved"), "{}", answer.text());
    let (answer, _) = bot.command(ALICE, "cancel 99").await;
    assert!(
        answer.text().contains("Request #99 does not exist"),
        "{}",
        answer.text()
    );
    assert_eq!(
        bot.finished_run(id, Duration::from_secs(30)).await.state,
        RunState::Succeeded
    );
}

#[tokio::test]
async fn history_lists_recent_requests_with_who_asked_who_decided_when_and_the_outcome() {
    let bot = TestBot::start().await;
    let (answer, _) = bot.command(MALLORY, "history").await;
    assert_eq!(answer.text(), "No failover has been requested yet.");
    let denied = bot.request().await;
    bot.click(BOB, denied, false).await;
    let approved = bot.request().await;
    bot.click(CAROL, approved, true).await;
    bot.finished_run(approved, Duration::from_secs(30)).await;
    let (answer, _) = bot.command(MALLORY, "history orders").await;
    let text = answer.text();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[1].contains("*#2* orders us-east-1 → us-west-2 (`detach`)"),
        "{text}"
    );
    assert!(lines[1].contains("asked by <@U0ALICE>"), "{text}");
    assert!(lines[1].contains("approved by <@U0CAROL>"), "{text}");
    assert!(lines[1].contains(":white_check_mark: succeeded in"), "{text}");
    assert!(
        lines[2].contains("*#1*") && lines[2].contains("denied by <@U0BOB>"),
        "{text}"
    );
    assert!(
        text.contains("<!date^"),
        "times are shown in the reader's time zone: {text}"
    );
    let (answer, _) = bot.command(MALLORY, "history billing").await;
    assert!(answer.text().contains("Unknown cluster `billing`"), "{}", answer.text());
}

#[tokio::test]
async fn the_audit_command_prints_every_request_decision_attempt_and_step_from_the_store() {
    let bot = TestBot::start().await;
    let id = bot.request().await;
    bot.click(ALICE, id, true).await; // refused: her own request
    bot.click(BOB, id, true).await;
    assert_eq!(
        bot.finished_run(id, Duration::from_secs(30)).await.state,
        RunState::Succeeded
    );
    let config = bot.dir.join("audit.toml");
    std::fs::write(
        &config,
        config_toml("http://127.0.0.1:9/api", &bot.dir.join("bot.db"), &Options::default()),
    )
    .unwrap();
    let audit = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_aurora-failover-bot"))
            .arg("audit")
            .arg("--config")
            .arg(&config)
            .args(args)
            .output()
            .unwrap()
    };
    let out = audit(&["--format", "jsonl"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let has = |kind: &str, user: Option<&str>, what: &str| {
        lines.iter().any(|l| {
            l["kind"] == kind && user.is_none_or(|u| l["user"] == u) && l["what"].as_str().unwrap_or("").contains(what)
        })
    };
    assert!(has("request", Some(ALICE), "failover orders"), "{lines:#?}");
    assert!(has("decision", Some(BOB), "approved"), "{lines:#?}");
    assert!(
        has("attempt", Some(ALICE), "approve"),
        "the refused self-approval is on record: {lines:#?}"
    );
    assert!(has("step", None, "detach finished"), "{lines:#?}");
    assert!(has("run", None, "succeeded"), "{lines:#?}");
    let times: Vec<&str> = lines.iter().map(|l| l["at"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "in time order: {times:?}");

    let out = audit(&[]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.starts_with("TIME (UTC)"), "{table}");
    assert!(table.contains("U0BOB") && table.contains("decision"), "{table}");
    let out = audit(&["--since", "2099-01-01", "--format", "jsonl"]);
    assert!(out.status.success());
    assert!(out.stdout.is_empty(), "nothing after 2099");
    let out = audit(&["--since", "last tuesday"]);
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test]
async fn a_replayed_command_or_click_has_the_effect_of_one() {
    let bot = TestBot::start().await;
    let url = bot.slack.response_url();
    let body = SlackSender::command_body(ALICE, CHANNEL, "failover orders --mode detach", &url);
    let ts = bot.now().to_string();
    let signature = verify::sign(&Secret::new(SIGNING_SECRET), &ts, body.as_bytes());
    let send = |sig: String| {
        let body = body.clone();
        let ts = ts.clone();
        let sender = &bot.sender;
        async move {
            sender
                .post_raw(
                    "/slack/commands",
                    &[(verify::TIMESTAMP_HEADER, &ts), (verify::SIGNATURE_HEADER, &sig)],
                    body.into_bytes(),
                )
                .await
        }
    };
    let first = send(signature.clone()).await;
    assert!(first.text().starts_with("Request #1"), "{first:?}");
    let again = send(signature.clone()).await;
    assert_eq!(again.status, 200);
    assert!(again.text().contains("already received"), "{again:?}");
    // The same MAC in upper case is the same request.
    let upper = format!("v0={}", signature.trim_start_matches("v0=").to_ascii_uppercase());
    assert!(send(upper).await.text().contains("already received"));
    bot.request_message(1).await;
    assert!(
        bot.store.request(RequestId::new(2)).await.unwrap().is_none(),
        "one request"
    );

    // The same click delivered twice.
    let msg_ts = bot.request_message(1).await.ts.unwrap();
    let url = bot.slack.response_url();
    let click = SlackSender::click_body(BOB, CHANNEL, &msg_ts, "approve", "1", &url);
    let now = bot.now();
    assert_eq!(
        bot.sender.post_signed("/slack/interactions", &click, now).await.status,
        200
    );
    assert_eq!(
        bot.sender.post_signed("/slack/interactions", &click, now).await.status,
        200
    );
    assert_eq!(
        bot.finished_run(1, Duration::from_secs(30)).await.state,
        RunState::Succeeded
    );
    bot.slack_settled().await;
    assert_eq!(bot.slack.responses_to(&url).len(), 1, "one answer to one click");
    assert_eq!(bot.sim.admin().calls_to("RemoveFromGlobalCluster").len(), 1);
}

#[tokio::test]
async fn someone_who_is_both_requester_and_approver_still_needs_a_second_person() {
    let bot = TestBot::start().await;
    bot.slack.set_group("S0DBA", &[CAROL, DAVE]);
    let (answer, _) = bot.command(DAVE, "failover orders").await;
    assert!(answer.text().starts_with("Request #1"), "{}", answer.text());
    let url = bot.click(DAVE, 1, true).await;
    assert!(bot.answer_at(&url).await.contains("cannot approve your own request"));
    bot.click(CAROL, 1, true).await;
    assert_eq!(
        bot.finished_run(1, Duration::from_secs(30)).await.state,
        RunState::Succeeded
    );
}

#[tokio::test]
async fn status_typed_outside_the_incident_channel_is_shown_only_to_whoever_asked() {
    let bot = TestBot::start().await;
    let url = bot.slack.response_url();
    let answer = bot
        .sender
        .command(MALLORY, "C0ELSEWHERE", "status", &url, bot.now())
        .await;
    assert_eq!(answer.status, 200);
    bot.answer_at(&url).await;
    assert_eq!(
        bot.slack.responses_to(&url)[0].field("response_type"),
        Some("ephemeral")
    );
}

#[tokio::test]
async fn commands_and_clicks_stay_fast_when_slack_group_lookups_are_slow() {
    let bot = TestBot::start().await;
    let id = bot.request().await;
    let ts = bot.request_message(id).await.ts.unwrap();
    bot.slack.slow_down("usergroups.users.list", Duration::from_secs(5));
    // DAVE is a requester only through a group; CAROL an approver only through a group.
    let started = Instant::now();
    let (answer, _) = bot.command(DAVE, "failover orders").await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "answered in {:?}",
        started.elapsed()
    );
    assert!(answer.text().contains("could not be checked"), "{}", answer.text());
    let started = Instant::now();
    let url = bot.slack.response_url();
    let answer = bot
        .sender
        .click(CAROL, CHANNEL, &ts, "approve", &id.to_string(), &url, bot.now())
        .await;
    assert_eq!(answer.status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "answered in {:?}",
        started.elapsed()
    );
    assert!(bot.answer_at(&url).await.contains("could not be checked"));
    assert_eq!(
        bot.request_state(id).await.state,
        RequestState::Pending,
        "nothing was decided on a guess"
    );
}

#[tokio::test]
async fn a_remove_from_global_cluster_that_took_effect_but_whose_answer_was_lost_is_not_sent_again() {
    let bot = TestBot::start_with(Options {
        attempt_timeout: Some(Duration::from_millis(800)),
        ..Options::default()
    })
    .await;
    let id = bot.request().await;
    bot.sim
        .admin()
        .inject(FaultSpec {
            action: "RemoveFromGlobalCluster".into(),
            region: None,
            error: None,
            delay_ms: None,
            delay_response_ms: Some(2_000),
            count: None,
        })
        .unwrap();
    bot.click(BOB, id, true).await;
    assert_eq!(
        bot.finished_run(id, Duration::from_secs(30)).await.state,
        RunState::Succeeded
    );
    assert_eq!(
        bot.sim.admin().calls_to("RemoveFromGlobalCluster").len(),
        1,
        "sent once, never retried"
    );
    let west = bot.endpoints("us-west-2", "orders-west").0;
    assert_eq!(bot.writer_cname(), west);
}

#[tokio::test]
async fn a_request_after_a_detach_is_refused_while_the_cnames_point_at_the_detached_cluster() {
    let mut scenario = awsim::Scenario::two_region_example();
    // A third Region, so that the global cluster still has a secondary after the first detach.
    let mut eu = scenario.global_clusters[0].members[1].clone();
    eu.region = "eu-west-1".into();
    eu.cluster_id = "orders-eu".into();
    eu.instances = vec!["orders-eu-1".into()];
    scenario.global_clusters[0].members.push(eu);
    let bot = TestBot::start_with(Options {
        scenario,
        regions: vec!["us-east-1", "us-west-2", "eu-west-1"],
        ..Options::default()
    })
    .await;
    let (answer, _) = bot.command(ALICE, "failover orders --to us-west-2 --mode detach").await;
    assert!(answer.text().starts_with("Request #1"), "{}", answer.text());
    bot.request_message(1).await;
    bot.click(BOB, 1, true).await;
    assert_eq!(
        bot.finished_run(1, Duration::from_secs(30)).await.state,
        RunState::Succeeded
    );
    // The application now writes to orders-west, outside the global cluster. Moving the CNAMEs to
    // orders-eu (a replica of the old primary) would cut those writes off.
    let (answer, url) = bot.command(ALICE, "failover orders --to eu-west-1 --mode detach").await;
    assert!(answer.text().starts_with("Request #2"), "{}", answer.text());
    let reply = bot.answer_at(&url).await;
    assert!(
        reply.contains("could not be prepared") && reply.contains("cut those writes off"),
        "{reply}"
    );
    assert_eq!(bot.request_state(2).await.state, RequestState::Rejected);
    assert_eq!(bot.sim.admin().calls_to("RemoveFromGlobalCluster").len(), 1);
}

#[tokio::test]
async fn a_second_request_while_a_run_is_running_gets_a_link_to_it() {
    let bot = TestBot::start_with(Options {
        timings: awsim::Timings {
            detach_ms: 3_000,
            ..Options::default().timings
        },
        ..Options::default()
    })
    .await;
    let id = bot.request().await;
    let ts = bot.request_message(id).await.ts.unwrap();
    bot.click(BOB, id, true).await;
    let deadline = Instant::now() + WAIT;
    while bot.store.run_of_request(id.into()).await.unwrap().is_none() {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (answer, _) = bot.command(DAVE, "failover orders").await;
    let link = format!(
        "<https://standin.slack.com/archives/{CHANNEL}/p{}|request #{id}>",
        ts.replace('.', "")
    );
    assert!(answer.text().contains(&link), "{} lacks {link}", answer.text());
    assert_eq!(
        bot.finished_run(id, Duration::from_secs(30)).await.state,
        RunState::Succeeded
    );
    // The lock goes with the run: the cluster is free again.
    let (answer, _) = bot.command(ALICE, "failover orders").await;
    assert!(answer.text().starts_with("Request #2"), "{}", answer.text());
}
