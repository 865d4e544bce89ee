//! The global cluster recorded for a cluster (a rebuild made it while the config still names the old
//! one): status and planning follow it, status says which config change makes it permanent, and the
//! record is dropped at the start after the config names it. And the switchover back that status
//! offers after a managed failover or a switchover.

use crate::common;
use aurora_failover_bot::store::{GlobalClusterRecord, RequestId, RunState};
use aurora_failover_bot::types::ClusterName;
use awsim::{OutageMode, Scenario};
use common::process::BotProcess;
use common::*;
use standin::{Secret, SlackStandIn};
use std::time::{Duration, Instant};

const FOLLOWS: &str = "follows global cluster `orders-global-2` (made by rebuild request #12, ";
const MAKE_IT_PERMANENT: &str = "while the config names `orders-global`: set `global_cluster_id = \"orders-global-2\"` in \
                                 orders' `[[clusters]]` entry to make it permanent (the record is then dropped at start-up)";

/// The example, with the global cluster a rebuild made (`orders-global-2`) in place of the one the
/// config names.
fn rebuilt() -> Scenario {
    let mut s = Scenario::two_region_example();
    s.global_clusters[0].id = "orders-global-2".into();
    s
}

fn record() -> GlobalClusterRecord {
    GlobalClusterRecord {
        cluster: ClusterName::parse("orders").unwrap(),
        global_cluster_id: "orders-global-2".into(),
        request: RequestId::new(12),
        recorded_at: jiff::Timestamp::now(),
        replaces: "orders-global".into(),
    }
}

async fn status(bot: &TestBot) -> String {
    let (_, url) = bot.command(MALLORY, "status").await;
    bot.answer_at(&url).await
}

#[tokio::test]
async fn status_and_a_request_follow_the_recorded_global_cluster_while_the_config_names_the_old_one() {
    let bot = TestBot::start_with(Options {
        scenario: rebuilt(),
        ..Options::default()
    })
    .await;
    bot.store.record_global_cluster(&record()).await.unwrap();
    let text = status(&bot).await;
    assert!(text.contains("*orders* (`orders-global-2`)"), "{text}");
    assert!(text.contains(FOLLOWS), "{text}");
    assert!(text.contains(MAKE_IT_PERMANENT), "{text}");
    assert!(text.contains("us-east-1 `orders-east` *writer*"), "{text}");
    // A request is planned on the recorded global cluster, and its run acts on it.
    let id = bot.request_with("--mode switchover").await;
    let message = all_text(&bot.request_message(id).await);
    assert!(
        message.contains("move the writer of *orders* (`orders-global-2`)"),
        "{message}"
    );
    bot.click(BOB, id, true).await;
    assert_eq!(
        bot.finished_run(id, Duration::from_secs(30)).await.state,
        RunState::Succeeded
    );
    let switchovers = bot.sim.admin().calls_to("SwitchoverGlobalCluster");
    assert_eq!(switchovers.len(), 1);
    assert_eq!(
        switchovers[0].params.get("GlobalClusterIdentifier").map(String::as_str),
        Some("orders-global-2")
    );
    // After a switchover, status offers the switchover back: the old primary is a connected secondary.
    let text = status(&bot).await;
    assert!(
        text.contains(
            ":leftwards_arrow_with_hook: Fail back to us-east-1 with a switchover (no data loss): \
             `/aurora failover orders --to us-east-1 --mode switchover`"
        ),
        "{text}"
    );
    assert!(text.contains(FOLLOWS), "still followed: {text}");
}

/// The example with the primary in us-west-2 (so that its Region can go down while Route 53, in
/// us-east-1, stays up).
fn west_primary() -> Scenario {
    use awsim::scenario::{EndpointKind, EndpointRef};
    let mut s = Scenario::two_region_example();
    let g = &mut s.global_clusters[0];
    g.members[0].primary = false;
    g.members[1].primary = true;
    for (record, endpoint) in s.hosted_zones[0]
        .records
        .iter_mut()
        .zip([EndpointKind::Writer, EndpointKind::Reader])
    {
        record.points_to = Some(EndpointRef {
            cluster: "orders-west".into(),
            endpoint,
        });
    }
    s
}

#[tokio::test]
async fn after_a_managed_failover_status_offers_the_switchover_back_once_the_old_primary_is_a_connected_secondary() {
    let bot = TestBot::start_with(Options {
        scenario: west_primary(),
        ..Options::default()
    })
    .await;
    bot.sim.admin().region_down("us-west-2", OutageMode::Reset).unwrap();
    let id = bot.request_with("--mode failover").await;
    bot.click(BOB, id, true).await;
    assert_eq!(
        bot.finished_run(id, Duration::from_secs(30)).await.state,
        RunState::Succeeded
    );
    let offer = "Fail back to us-west-2 with a switchover (no data loss): \
                 `/aurora failover orders --to us-west-2 --mode switchover`";
    let text = status(&bot).await;
    assert!(
        text.contains(&format!(
            ":hourglass_flowing_sand: {offer} once `orders-west` is back as an available, connected secondary (now: \
             cannot be read: "
        )),
        "{text}"
    );
    assert!(text.contains("sync pending-resync)"), "{text}");
    assert!(!text.contains(":leftwards_arrow_with_hook:"), "{text}");
    bot.sim.admin().region_up("us-west-2").unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let text = status(&bot).await;
        if text.contains(&format!(":leftwards_arrow_with_hook: {offer}")) {
            assert!(!text.contains(":hourglass_flowing_sand:"), "{text}");
            break;
        }
        assert!(Instant::now() < deadline, "no switchover back offered: {text}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Sends `/aurora status` to the bot process; returns the answer's text.
async fn process_status(bot: &BotProcess, slack: &SlackStandIn) -> String {
    let url = slack.response_url();
    let now = jiff::Timestamp::now().as_second();
    let answer = bot.sender().command(MALLORY, CHANNEL, "status", &url, now).await;
    assert_eq!(answer.status, 200);
    slack
        .wait_for(WAIT, |_| slack.responses_to(&url).first().map(all_text))
        .await
        .expect("a status answer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_record_is_kept_while_the_config_names_the_old_global_cluster_and_dropped_once_it_names_the_new_one() {
    let mut scenario = rebuilt();
    scenario.timings = Options::default().timings;
    let sim = awsim::start("127.0.0.1:0".parse().unwrap(), scenario).await.unwrap();
    let slack = SlackStandIn::start(&Secret::new(BOT_TOKEN)).await.unwrap();
    let dir = temp_dir("records");
    let mut bot = BotProcess::new(&sim, &slack, &dir, &Options::default());
    // Recorded before the bot starts: start-up keeps it (the config still names the old one).
    let store = bot.store();
    store.record_global_cluster(&record()).await.unwrap();
    drop(store);
    bot.start().await;
    let text = process_status(&bot, &slack).await;
    assert!(text.contains(FOLLOWS) && text.contains(MAKE_IT_PERMANENT), "{text}");
    let config = bot.config_path().to_str().unwrap().to_owned();
    let (code, out, err) = run_binary(sim.url(), &["status", "--config", &config], &[]).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("orders (global cluster orders-global-2)\n"), "{out}");
    assert!(
        out.contains("  follows global cluster orders-global-2 (made by rebuild request #12, ")
            && out.contains(
                ") while the config names orders-global: set global_cluster_id = \"orders-global-2\" in orders' \
             [[clusters]] entry to make it permanent (the record is then dropped at start-up)"
            ),
        "{out}"
    );
    // The config names the new global cluster: the next start drops the record.
    bot.terminate().await;
    let toml = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        toml.replace(
            "global_cluster_id = \"orders-global\"",
            "global_cluster_id = \"orders-global-2\"",
        ),
    )
    .unwrap();
    bot.start().await;
    let orders = ClusterName::parse("orders").unwrap();
    assert_eq!(bot.store().global_cluster_record(&orders).await.unwrap(), None);
    let log = bot.log_text();
    assert!(
        log.contains("the config names the recorded global cluster now: record dropped"),
        "{log}"
    );
    let text = process_status(&bot, &slack).await;
    assert!(text.contains("*orders* (`orders-global-2`)"), "{text}");
    assert!(!text.contains("follows global cluster"), "{text}");
    let (_, out, _) = run_binary(sim.url(), &["status", "--config", &config], &[]).await;
    assert!(!out.contains("follows global cluster"), "{out}");
    let defects = slack.wording_defects();
    assert!(defects.is_empty(), "{defects:#?}");
    let _ = std::fs::remove_dir_all(&dir);
}
