//! Errors are classified for people: throttling says throttling (and, in a run, that the bot backs
//! off), a refused permission names the action, an unreachable service says so.

use crate::common;

use awsim::{FaultCode, FaultSpec, OutageMode};
use common::*;
use std::time::Duration;

fn fault(action: &str, region: Option<&str>, error: FaultCode, count: Option<u32>) -> FaultSpec {
    FaultSpec {
        action: action.into(),
        region: region.map(str::to_owned),
        error: Some(error),
        delay_ms: None,
        delay_response_ms: None,
        count,
    }
}

async fn status(bot: &TestBot) -> String {
    let (_, url) = bot.command(ALICE, "status").await;
    bot.answer_at(&url).await
}

#[tokio::test]
async fn status_says_throttling_access_denied_or_unreachable_for_what_it_is() {
    let bot = TestBot::start().await;
    bot.sim
        .admin()
        .inject(fault("DescribeGlobalClusters", None, FaultCode::Throttling, None))
        .unwrap();
    let text = status(&bot).await;
    assert!(
        text.contains("AWS is throttling rds:DescribeGlobalClusters (Throttling: Rate exceeded)"),
        "{text}"
    );
    assert!(!text.contains("cannot be reached"), "{text}");

    bot.sim.admin().clear_faults();
    bot.sim
        .admin()
        .inject(fault("DescribeGlobalClusters", None, FaultCode::AccessDenied, None))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1_100)).await; // past the shared read's freshness
    let text = status(&bot).await;
    assert!(
        text.contains("not allowed to call rds:DescribeGlobalClusters (AccessDenied:"),
        "{text}"
    );

    bot.sim.admin().clear_faults();
    for region in ["us-east-1", "us-west-2"] {
        bot.sim.admin().region_down(region, OutageMode::Reset).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let text = status(&bot).await;
    assert!(
        text.contains("AWS cannot be reached for rds:DescribeGlobalClusters"),
        "{text}"
    );
}

#[tokio::test]
async fn throttled_polls_during_a_run_are_said_once_and_ridden_out() {
    let bot = TestBot::start_with(Options {
        timings: awsim::Timings {
            detach_ms: 1_000,
            ..Options::default().timings
        },
        ..Options::default()
    })
    .await;
    let id = bot.request().await;
    let ts = bot.request_message(id).await.ts.unwrap();
    bot.click(BOB, id, true).await;
    wait_for_step(&bot, id, "wait_writable").await;
    bot.sim
        .admin()
        .inject(fault(
            "DescribeDBClusters",
            Some("us-west-2"),
            FaultCode::Throttling,
            Some(12),
        ))
        .unwrap();
    let run = bot.finished_run(id, Duration::from_secs(30)).await;
    assert_eq!(run.state, aurora_failover_bot::store::RunState::Succeeded);
    bot.slack_settled().await;
    let thread = thread_texts(&bot, &ts);
    let notes: Vec<&String> = thread
        .iter()
        .filter(|t| t.starts_with(":warning:") && t.contains("AWS is throttling rds:DescribeDBClusters"))
        .collect();
    assert_eq!(notes.len(), 1, "said once: {notes:#?}");
    assert!(notes[0].contains("Backing off"), "{}", notes[0]);
    let step = thread
        .iter()
        .find(|t| t.contains("*Wait until the target is writable* ("))
        .unwrap();
    assert!(
        step.contains("Rode out a transient error: DescribeDBClusters: AWS is throttling rds:DescribeDBClusters"),
        "the step's reply lists what it rode out: {step}"
    );
}
