//! Every way to move the writer, through the real bot against the emulator: switchover, managed
//! failover and detach, the proposed mode and target, the pre-flight checks and their re-check, Region
//! outages (including us-east-1, where Route 53's API lives), dry runs, and status.

use crate::common;
use aurora_failover_bot::store::RequestId;

use aurora_failover_bot::store::{RequestState, RunState};
use awsim::scenario::{EndpointKind, EndpointRef};
use awsim::{OutageMode, Scenario};
use common::*;
use std::time::{Duration, Instant};

const EAST: &str = "us-east-1";
const WEST: &str = "us-west-2";

fn arn(region: &str, id: &str) -> String {
    format!("arn:aws:rds:{region}:123456789012:cluster:{id}")
}

/// The example with the roles swapped: the primary in us-west-2, so that its Region can go down while
/// Route 53 (in us-east-1) stays up.
fn west_primary() -> Scenario {
    let mut s = Scenario::two_region_example();
    let g = &mut s.global_clusters[0];
    g.members[0].primary = false;
    g.members[0].replication_lag_ms = 500;
    g.members[1].primary = true;
    g.members[1].replication_lag_ms = 0;
    s.hosted_zones[0].records[0].points_to = Some(EndpointRef {
        cluster: "orders-west".into(),
        endpoint: EndpointKind::Writer,
    });
    s.hosted_zones[0].records[1].points_to = Some(EndpointRef {
        cluster: "orders-west".into(),
        endpoint: EndpointKind::Reader,
    });
    s
}

/// The example plus a third member in eu-west-1, with lags: us-west-2 2.5 s, eu-west-1 0.4 s.
fn three_regions() -> Scenario {
    let mut s = Scenario::two_region_example();
    s.global_clusters[0].members[1].replication_lag_ms = 2_500;
    let mut eu = s.global_clusters[0].members[1].clone();
    eu.region = "eu-west-1".into();
    eu.cluster_id = "orders-eu".into();
    eu.instances = vec!["orders-eu-1".into()];
    eu.replication_lag_ms = 400;
    s.global_clusters[0].members.push(eu);
    s
}

async fn start(scenario: Scenario) -> TestBot {
    TestBot::start_with(Options {
        scenario,
        ..Options::default()
    })
    .await
}

/// Asks for a failover with `args`; returns the answer's text and, if a request was recorded, its id.
async fn ask(bot: &TestBot, args: &str) -> (String, String) {
    let (answer, url) = bot.command(ALICE, &format!("failover orders {args}")).await;
    assert_eq!(answer.status, 200);
    (answer.text(), url)
}

/// Waits until request `id`'s run is at `step`.
/// Waits for the thread's plain note that the database is promoted but DNS is not moved; returns it.
async fn dns_not_moved_note(bot: &TestBot, ts: &str) -> String {
    bot.slack
        .wait_for(WAIT, |calls| {
            calls
                .iter()
                .find(|c| c.status == 200 && c.thread_ts() == Some(ts) && c.text().contains("DNS is NOT moved yet"))
                .map(|c| c.text().to_owned())
        })
        .await
        .expect("a plain note that DNS is not moved")
}

#[tokio::test]
async fn a_switchover_moves_the_writer_with_no_data_loss_end_to_end() {
    // `pending` lasts several poll intervals (100 ms), so that the thread shows it however loaded the
    // machine is.
    let bot = TestBot::start_with(Options {
        timings: awsim::Timings {
            pending_ms: 1_000,
            ..Options::default().timings
        },
        ..Options::default()
    })
    .await;
    let (text, _) = ask(&bot, "").await;
    assert!(text.starts_with("Request #1"), "{text}");
    let msg = bot.request_message(1).await;
    let body = all_text(&msg);
    assert!(
        body.contains("*Mode:* `switchover`, proposed by the bot because it loses no data"),
        "{body}"
    );
    assert!(
        body.contains(":white_check_mark: *Primary*: orders-east in us-east-1 is available"),
        "{body}"
    );
    let ts = msg.ts.unwrap();
    bot.click(BOB, 1, true).await;
    assert_eq!(
        bot.finished_run(1, Duration::from_secs(30)).await.state,
        RunState::Succeeded
    );
    let switchovers = bot.sim.admin().calls_to("SwitchoverGlobalCluster");
    assert_eq!(switchovers.len(), 1);
    assert_eq!(switchovers[0].region, EAST, "sent to the primary's Region");
    assert!(bot.sim.admin().calls_to("RemoveFromGlobalCluster").is_empty());
    let g = bot.sim.admin().global_cluster("orders-global").unwrap();
    let roles: Vec<_> = g.members.iter().map(|m| (m.cluster_id.as_str(), m.is_writer)).collect();
    assert_eq!(
        roles,
        [("orders-east", false), ("orders-west", true)],
        "the topology is kept, roles swapped"
    );
    let (w, r) = bot.endpoints(WEST, "orders-west");
    assert_eq!((bot.writer_cname(), bot.reader_cname()), (w, r));
    bot.slack_settled().await;
    let thread = thread_texts(&bot, &ts);
    for expected in [
        "*Switch over (managed, no data loss)*",
        "FailoverState pending, writer orders-east",
        "FailoverState switching-over",
        "RDS event (orders-west, us-west-2): Global switchover to DB cluster orders-west in Region us-west-2 finished.",
        "`orders-east` (us-east-1) is now a secondary. To switch back: `/aurora failover orders --to us-east-1 --mode switchover`",
    ] {
        assert!(
            thread.iter().any(|t| t.contains(expected)),
            "missing {expected:?} in {thread:#?}"
        );
    }
}

#[tokio::test]
async fn a_managed_failover_works_with_the_primarys_region_down_and_the_old_primary_rejoins_when_it_returns() {
    let bot = start(west_primary()).await;
    bot.sim.admin().region_down(WEST, OutageMode::Reset).unwrap();
    let (text, _) = ask(&bot, "--mode failover").await;
    assert!(text.starts_with("Request #1"), "{text}");
    let msg = bot.request_message(1).await;
    let body = all_text(&msg);
    assert!(
        body.contains(":warning: *Replication lag*: 500 ms behind: up to 500 ms of the latest writes will be lost"),
        "{body}"
    );
    let ts = msg.ts.unwrap();
    bot.click(BOB, 1, true).await;
    assert_eq!(
        bot.finished_run(1, Duration::from_secs(30)).await.state,
        RunState::Succeeded
    );
    let failovers = bot.sim.admin().calls_to("FailoverGlobalCluster");
    assert_eq!(failovers.len(), 1);
    assert_eq!(failovers[0].region, EAST, "sent to the target's Region");
    assert_eq!(
        failovers[0].params.get("AllowDataLoss").map(String::as_str),
        Some("true")
    );
    let (w, _) = bot.endpoints(EAST, "orders-east");
    assert_eq!(bot.writer_cname(), w);
    bot.slack_settled().await;
    let last = thread_texts(&bot, &ts).pop().unwrap();
    assert!(last.contains("*Failover complete*"), "{last}");
    assert!(
        last.contains("`orders-west` (us-west-2) has not rejoined yet"),
        "{last}"
    );
    // Its Region is still down, so the snapshot does not exist yet: its name's pattern is given.
    assert!(
        last.contains("`rds:unplanned-global-failover-orders-west-&lt;time&gt;` in us-west-2"),
        "the snapshot to copy: {last}"
    );
    // Meanwhile the old primary cannot be failed back to: it is not in sync (and not reachable).
    let (_, url) = ask(&bot, "--to us-west-2 --mode failover").await;
    let reply = bot.answer_at(&url).await;
    assert!(
        reply.contains("orders-west is pending-resync: it is still being rebuilt from the primary"),
        "{reply}"
    );
    assert!(
        last.contains("`/aurora failover orders --to us-west-2 --mode switchover`"),
        "how to fail back: {last}"
    );
    // The Region returns: the old primary rejoins as a secondary, and leaves its snapshot behind.
    bot.sim.admin().region_up(WEST).unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let g = bot.sim.admin().global_cluster("orders-global").unwrap();
        let west = g.members.iter().find(|m| m.cluster_id == "orders-west").unwrap();
        if west.synchronization_status.as_deref() == Some("connected") {
            assert!(!west.is_writer);
            break;
        }
        assert!(Instant::now() < deadline, "the old primary did not rejoin");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, url) = bot.command(MALLORY, "status").await;
    let status = bot.answer_at(&url).await;
    assert!(
        status.contains("us-west-2 `orders-west` reader · available"),
        "{status}"
    );
}

#[tokio::test]
async fn detach_works_with_the_primarys_region_down() {
    let bot = start(west_primary()).await;
    bot.sim.admin().region_down(WEST, OutageMode::Unavailable).unwrap();
    let (text, _) = ask(&bot, "--mode detach").await;
    assert!(text.starts_with("Request #1"), "{text}");
    bot.request_message(1).await;
    bot.click(BOB, 1, true).await;
    assert_eq!(
        bot.finished_run(1, Duration::from_secs(30)).await.state,
        RunState::Succeeded
    );
    let removes = bot.sim.admin().calls_to("RemoveFromGlobalCluster");
    assert_eq!((removes.len(), removes[0].region.as_str()), (1, EAST));
    assert_eq!(bot.writer_cname(), bot.endpoints(EAST, "orders-east").0);
}

#[tokio::test]
async fn a_switchover_is_refused_when_the_primarys_region_is_down_or_engine_versions_differ() {
    let bot = start(west_primary()).await;
    bot.sim.admin().region_down(WEST, OutageMode::Reset).unwrap();
    let (_, url) = ask(&bot, "--mode switchover").await;
    let reply = bot.answer_at(&url).await;
    assert!(
        reply.contains("could not be prepared: a switchover to us-east-1 is not possible"),
        "{reply}"
    );
    assert!(reply.contains("orders-west in us-west-2 cannot be reached"), "{reply}");
    assert!(
        reply.contains("`/aurora failover orders --to us-east-1 --mode failover`"),
        "{reply}"
    );
    assert!(
        reply.contains("`/aurora failover orders --to us-east-1 --mode detach`"),
        "{reply}"
    );
    assert_eq!(bot.request_state(1).await.state, RequestState::Rejected);
    assert!(bot.sim.admin().calls_to("SwitchoverGlobalCluster").is_empty());

    let mut s = Scenario::two_region_example();
    s.global_clusters[0].members[1].engine_version = Some("15.5".into());
    let bot = start(s).await;
    let (_, url) = ask(&bot, "--mode switchover").await;
    let reply = bot.answer_at(&url).await;
    assert!(
        reply.contains("15.4 (primary) and 15.5 (target) differ in major or minor version"),
        "{reply}"
    );
    assert!(
        reply.contains("--mode detach`") && !reply.contains("--mode failover`"),
        "only detach is possible: {reply}"
    );
}

#[tokio::test]
async fn without_a_mode_or_target_the_bot_proposes_the_safest_plan_and_never_picks_a_data_losing_mode() {
    let bot = TestBot::start_with(Options {
        scenario: three_regions(),
        regions: vec![EAST, WEST, "eu-west-1"],
        ..Options::default()
    })
    .await;
    let (text, _) = ask(&bot, "").await;
    assert!(text.starts_with("Request #1"), "{text}");
    let body = all_text(&bot.request_message(1).await);
    assert!(body.contains("orders to eu-west-1 (switchover)"), "{body}");
    assert!(
        body.contains("*Target:* eu-west-1 has the least replication lag (400 ms; us-west-2 2.5 s)"),
        "{body}"
    );
    bot.click(ALICE, 1, false).await;
    // The record keeps that the bot proposed the mode: the requester did not ask for a switchover.
    let (answer, _) = bot.command(MALLORY, "history").await;
    let history = answer.text();
    assert!(history.contains("(`switchover`, chosen by the bot)"), "{history}");

    // With the primary's Region gone no switchover is possible: nothing is chosen, the options are told.
    let bot = start(west_primary()).await;
    bot.sim.admin().region_down(WEST, OutageMode::Reset).unwrap();
    let (_, url) = ask(&bot, "").await;
    let reply = bot.answer_at(&url).await;
    assert!(
        reply.contains("a switchover (the only mode that loses no data) to us-east-1 is not possible"),
        "{reply}"
    );
    assert!(
        reply.contains("`--mode failover`: loses the writes not yet replicated"),
        "{reply}"
    );
    assert!(reply.contains("(lag now 500 ms)"), "{reply}");
    assert_eq!(bot.request_state(1).await.state, RequestState::Rejected);
    assert!(bot.pending().await.is_empty());
}

#[tokio::test]
async fn a_lag_over_the_limit_refuses_a_switchover_and_a_failover_warns_with_the_data_at_risk() {
    let bot = TestBot::start_with(Options {
        lag_limit_ms: 5_000,
        ..Options::default()
    })
    .await;
    bot.sim
        .admin()
        .set_replication_lag(WEST, "orders-west", Duration::from_secs(90))
        .unwrap();
    let (_, url) = ask(&bot, "--mode switchover").await;
    let reply = bot.answer_at(&url).await;
    assert!(reply.contains("90.0 s behind, over the 5.0 s limit"), "{reply}");
    let (text, _) = ask(&bot, "--mode failover").await;
    assert!(text.starts_with("Request #2"), "{text}");
    let body = all_text(&bot.request_message(2).await);
    assert!(
        body.contains(":warning: *Replication lag*: 90.0 s behind, over the 5.0 s limit: about 90.0 s of the latest writes will be lost"),
        "{body}"
    );
}

#[tokio::test]
async fn the_recheck_stops_the_run_when_someone_switched_over_by_hand_after_the_approval_request() {
    let bot = start(Scenario::two_region_example()).await;
    let (text, _) = ask(&bot, "--mode switchover").await;
    assert!(text.starts_with("Request #1"), "{text}");
    let ts = bot.request_message(1).await.ts.unwrap();
    // Meanwhile, by hand:
    bot.rds(EAST)
        .await
        .switchover_global_cluster()
        .global_cluster_identifier("orders-global")
        .target_db_cluster_identifier(arn(WEST, "orders-west"))
        .send()
        .await
        .unwrap();
    let deadline = Instant::now() + WAIT;
    while bot
        .sim
        .admin()
        .global_cluster("orders-global")
        .unwrap()
        .failover_state
        .is_some()
    {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bot.click(BOB, 1, true).await;
    assert_eq!(
        bot.finished_run(1, Duration::from_secs(30)).await.state,
        RunState::Failed
    );
    assert_eq!(
        bot.sim.admin().calls_to("SwitchoverGlobalCluster").len(),
        1,
        "only the one made by hand"
    );
    bot.slack_settled().await;
    let last = thread_texts(&bot, &ts).pop().unwrap();
    assert!(last.contains("*Failover failed* at *Re-check the topology*"), "{last}");
    assert!(
        last.contains("the writer is now orders-west in us-west-2, not orders-east"),
        "{last}"
    );
    assert!(last.contains("Nothing was changed"), "{last}");
}

#[tokio::test]
async fn with_us_east_1_down_during_the_dns_step_the_thread_tells_the_truth_and_the_run_completes_when_it_returns() {
    let bot = TestBot::start_with(Options {
        timings: awsim::Timings {
            detach_ms: 1_000,
            ..Options::default().timings
        },
        ..Options::default()
    })
    .await;
    let before = bot.writer_cname();
    let id = bot.request().await;
    let ts = bot.request_message(id).await.ts.unwrap();
    bot.click(BOB, id, true).await;
    wait_for_step(&bot, id, "wait_writable").await;
    bot.sim.admin().region_down(EAST, OutageMode::Unavailable).unwrap();
    // The database is promoted; Route 53 cannot be reached. The thread says so, and nothing claims DNS moved.
    let note = dns_not_moved_note(&bot, &ts).await;
    let (w, r) = bot.endpoints(WEST, "orders-west");
    assert!(note.contains("orders-west (us-west-2) is the writer"), "{note}");
    assert!(
        note.contains(&w) && note.contains(&r),
        "the endpoints to use meanwhile: {note}"
    );
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(
        bot.store.run_of_request(id.into()).await.unwrap().unwrap().state,
        RunState::Running,
        "still trying"
    );
    assert_eq!(bot.writer_cname(), before);
    assert!(
        !thread_texts(&bot, &ts)
            .iter()
            .any(|t| t.contains("*Repoint the CNAMEs* (")),
        "no success claimed"
    );
    bot.sim.admin().region_up(EAST).unwrap();
    assert_eq!(
        bot.finished_run(id, Duration::from_secs(30)).await.state,
        RunState::Succeeded
    );
    assert_eq!(bot.writer_cname(), w);
    bot.slack_settled().await;
    let thread = thread_texts(&bot, &ts);
    assert!(thread.iter().any(|t| t.contains("DNS is NOT moved yet")), "{thread:#?}");
    // The step's reply, edited to its end once Route 53 answered, says what it rode out.
    let moved = thread.iter().find(|t| t.contains("*Repoint the CNAMEs* (")).unwrap();
    assert!(
        moved.contains("Rode out a transient error: Route 53 did not take the change"),
        "{thread:#?}"
    );
}

#[tokio::test]
async fn status_shows_engine_versions_lag_and_an_operation_in_progress() {
    let bot = TestBot::start_with(Options {
        timings: awsim::Timings {
            switchover_ms: 5_000,
            ..Options::default().timings
        },
        ..Options::default()
    })
    .await;
    bot.rds(EAST)
        .await
        .switchover_global_cluster()
        .global_cluster_identifier("orders-global")
        .target_db_cluster_identifier(arn(WEST, "orders-west"))
        .send()
        .await
        .unwrap();
    let (_, url) = bot.command(MALLORY, "status").await;
    let status = bot.answer_at(&url).await;
    assert!(
        status.contains(":arrows_counterclockwise: managed operation in progress"),
        "{status}"
    );
    assert!(status.contains("engine 15.4"), "{status}");
    assert!(status.contains("lag 800 ms"), "{status}");
    // And no request can be made meanwhile.
    let (_, url) = ask(&bot, "--mode detach").await;
    assert!(bot.answer_at(&url).await.contains("in progress"));
}

#[tokio::test]
async fn a_dry_run_shows_the_plan_and_its_checks_to_the_requester_and_requests_nothing() {
    let bot = start(Scenario::two_region_example()).await;
    let (text, url) = ask(&bot, "--dry-run").await;
    assert!(text.starts_with("Dry run"), "{text}");
    let reply = bot
        .slack
        .wait_for(WAIT, |_| bot.slack.responses_to(&url).first().cloned())
        .await
        .unwrap();
    assert_eq!(reply.field("response_type"), Some("ephemeral"));
    let body = all_text(&reply);
    assert!(body.contains("Dry run: orders to us-west-2 (switchover)"), "{body}");
    assert!(body.contains("Nothing was requested or changed"), "{body}");
    assert!(body.contains("*Pre-flight checks*"), "{body}");
    assert!(!has_buttons(&reply), "no approval buttons");
    assert!(
        bot.store.request(RequestId::new(1)).await.unwrap().is_none(),
        "no request"
    );
    assert!(
        bot.slack.delivered("chat.postMessage").is_empty(),
        "nothing in the channel"
    );
    assert!(
        bot.sim
            .admin()
            .calls()
            .iter()
            .all(|c| !MUTATING.contains(&c.action.as_str())),
        "reads only"
    );
}

#[tokio::test]
async fn status_of_fifty_clusters_reads_them_concurrently() {
    const N: usize = 50;
    let s = Scenario::fleet(N);
    let clusters: String = (0..N)
        .map(|i| {
            format!(
                "[[clusters]]\nname = \"c{i}\"\nglobal_cluster_id = \"g{i}-global\"\nregions = [\"us-east-1\", \"us-west-2\"]\n\
                 hosted_zone_id = \"{ZONE}\"\nwriter_record = \"w{i}.aurora_private_hosted_zone\"\n\
                 reader_record = \"r{i}.aurora_private_hosted_zone\"\nrecord_ttl = 1\n\n"
            )
        })
        .collect();
    let bot = TestBot::start_with(Options {
        scenario: s,
        clusters_toml: Some(clusters),
        ..Options::default()
    })
    .await;
    let delay = 250;
    for action in [
        "DescribeGlobalClusters",
        "DescribeDBClusters",
        "GetMetricData",
        "ListResourceRecordSets",
    ] {
        bot.sim
            .admin()
            .inject(awsim::FaultSpec {
                action: action.into(),
                region: None,
                error: None,
                delay_ms: Some(delay),
                delay_response_ms: None,
                count: None,
            })
            .unwrap();
    }
    let started = Instant::now();
    let (_, url) = bot.command(MALLORY, "status").await;
    bot.answer_at(&url).await;
    let took = started.elapsed();
    // The answer may take several posts (at most four), each within Slack's limits; they are posted
    // directly, one after the other: wait for all of them.
    bot.whole_status_answer(&url).await;
    let posts = bot.slack.responses_to(&url);
    assert!(posts.len() <= 4, "{} posts", posts.len());
    let status: String = posts.iter().map(all_text).collect();
    assert_eq!(status.matches("(`g").count(), N, "every cluster is in the answer");
    // The sections (a part's marker is a context block).
    let blocks: Vec<serde_json::Value> = posts
        .iter()
        .flat_map(|p| p.body["blocks"].as_array().unwrap().clone())
        .filter(|b| b["type"] == "section")
        .collect();
    for p in &posts {
        let n = p.body["blocks"].as_array().unwrap().len();
        assert!(n <= 50, "Slack takes at most 50 blocks, got {n}");
    }
    assert!(
        blocks.iter().all(|b| b["text"]["text"].as_str().unwrap().len() <= 3000),
        "a section over 3,000 characters"
    );
    let in_blocks: String = blocks.iter().map(|b| b["text"]["text"].as_str().unwrap()).collect();
    assert_eq!(in_blocks.matches("(`g").count(), N, "every cluster is in the blocks");
    // One at a time, each cluster costs at least four delayed calls in a row (topology, then its
    // members, then their lag... ) — about a second, so fifty take about a minute. Side by side they
    // take a few seconds.
    assert!(took < Duration::from_secs(20), "status of {N} clusters took {took:?}");
    let calls = bot.sim.admin().calls_to("DescribeGlobalClusters");
    assert!(calls.len() >= N);
    let times: Vec<jiff::Timestamp> = calls.iter().take(N).map(|c| c.at.parse().unwrap()).collect();
    let spread = times.iter().max().unwrap().duration_since(*times.iter().min().unwrap());
    // One at a time they would arrive over at least (N - 1) × delay (over 12 s); a loaded machine may
    // spread concurrent ones over a second or two.
    assert!(
        spread < jiff::SignedDuration::from_millis(delay as i64 * 20),
        "the {N} topology reads were not in flight together: they arrived over {spread:?}"
    );
}

#[tokio::test]
async fn a_managed_failover_whose_old_primary_returns_before_the_end_names_its_point_of_failure_snapshot() {
    let bot = TestBot::start_with(Options {
        scenario: west_primary(),
        timings: awsim::Timings {
            dns_propagation_ms: 2_500,
            ..Options::default().timings
        },
        ..Options::default()
    })
    .await;
    bot.sim.admin().region_down(WEST, OutageMode::Reset).unwrap();
    let (text, _) = ask(&bot, "--mode failover").await;
    assert!(text.starts_with("Request #1"), "{text}");
    let ts = bot.request_message(1).await.ts.unwrap();
    bot.click(BOB, 1, true).await;
    wait_for_step(&bot, 1, "wait_insync").await;
    bot.sim.admin().region_up(WEST).unwrap();
    assert_eq!(
        bot.finished_run(1, Duration::from_secs(30)).await.state,
        RunState::Succeeded
    );
    let snapshots = bot
        .rds(WEST)
        .await
        .describe_db_cluster_snapshots()
        .db_cluster_identifier("orders-west")
        .send()
        .await
        .unwrap();
    let names: Vec<&str> = snapshots
        .db_cluster_snapshots()
        .iter()
        .filter_map(|s| s.db_cluster_snapshot_identifier())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(names[0].starts_with("rds:unplanned-global-failover-orders-west-"));
    bot.slack_settled().await;
    let last = thread_texts(&bot, &ts).pop().unwrap();
    assert!(
        last.contains("`orders-west` (us-west-2) has rejoined the global cluster as a secondary"),
        "{last}"
    );
    assert!(
        last.contains(&format!(
            ":camera: Point-of-failure snapshot: `{}` in us-west-2",
            names[0]
        )),
        "{last}"
    );
}

#[tokio::test]
async fn a_managed_failover_with_us_east_1_down_promotes_and_moves_dns_once_route_53_returns() {
    let bot = start(Scenario::two_region_example()).await;
    let before = bot.writer_cname();
    let (text, _) = ask(&bot, "--mode failover").await;
    assert!(text.starts_with("Request #1"), "{text}");
    let ts = bot.request_message(1).await.ts.unwrap();
    // us-east-1 holds the primary and Route 53's API; it goes down after the request.
    bot.sim.admin().region_down(EAST, OutageMode::Unavailable).unwrap();
    bot.click(BOB, 1, true).await;
    let note = dns_not_moved_note(&bot, &ts).await;
    let (w, r) = bot.endpoints(WEST, "orders-west");
    assert!(note.contains("orders-west (us-west-2) is the writer"), "{note}");
    assert!(note.contains(&w) && note.contains(&r), "{note}");
    let failovers = bot.sim.admin().calls_to("FailoverGlobalCluster");
    assert_eq!((failovers.len(), failovers[0].region.as_str()), (1, WEST));
    assert_eq!(
        bot.store
            .run_of_request(RequestId::new(1))
            .await
            .unwrap()
            .unwrap()
            .state,
        RunState::Running,
        "still trying"
    );
    assert_eq!(bot.writer_cname(), before);
    bot.sim.admin().region_up(EAST).unwrap();
    assert_eq!(
        bot.finished_run(1, Duration::from_secs(30)).await.state,
        RunState::Succeeded
    );
    assert_eq!((bot.writer_cname(), bot.reader_cname()), (w, r));
    bot.slack_settled().await;
    let thread = thread_texts(&bot, &ts);
    let precheck = thread.iter().find(|t| t.contains("*Re-check the topology* (")).unwrap();
    assert!(
        precheck.contains("CNAMEs: could not be read"),
        "the unreadable records are said: {precheck}"
    );
    assert!(thread.last().unwrap().contains("*Failover complete*"), "{thread:#?}");
}

#[tokio::test]
async fn when_cloudwatch_cannot_be_read_no_switchover_is_proposed_but_one_may_be_asked_for() {
    let bot = start(Scenario::two_region_example()).await;
    bot.sim
        .admin()
        .inject(awsim::FaultSpec {
            action: "GetMetricData".into(),
            region: None,
            error: Some(awsim::FaultCode::InternalFailure),
            delay_ms: None,
            delay_response_ms: None,
            count: None,
        })
        .unwrap();
    let (_, url) = ask(&bot, "").await;
    let reply = bot.answer_at(&url).await;
    assert!(
        reply.contains("Replication lag: unknown (CloudWatch in us-west-2:"),
        "{reply}"
    );
    assert!(
        reply.contains("`--mode switchover`: no data loss") && reply.contains("(lag unknown)"),
        "{reply}"
    );
    assert_eq!(bot.request_state(1).await.state, RequestState::Rejected);
    let (text, _) = ask(&bot, "--mode switchover").await;
    assert!(text.starts_with("Request #2"), "{text}");
    let body = all_text(&bot.request_message(2).await);
    assert!(
        body.contains(":warning: *Replication lag*: unknown (CloudWatch in us-west-2:")
            && body.contains("limit cannot be applied"),
        "{body}"
    );
}

#[tokio::test]
async fn a_writer_cname_moved_by_hand_after_the_approval_is_not_overwritten() {
    let bot = TestBot::start_with(Options {
        timings: awsim::Timings {
            detach_ms: 1_500,
            ..Options::default().timings
        },
        ..Options::default()
    })
    .await;
    let id = bot.request().await;
    let ts = bot.request_message(id).await.ts.unwrap();
    bot.click(BOB, id, true).await;
    wait_for_step(&bot, id, "wait_writable").await;
    bot.repoint_writer_cname("orders-elsewhere.example.com").await;
    assert_eq!(
        bot.finished_run(id, Duration::from_secs(30)).await.state,
        RunState::NeedsAttention
    );
    assert_eq!(bot.writer_cname(), "orders-elsewhere.example.com");
    assert_eq!(
        bot.sim.admin().calls_to("ChangeResourceRecordSets").len(),
        1,
        "only the change made by hand"
    );
    // AWS's answer (the CNAME points elsewhere) is for a person to judge: the bot does not retry.
    let stop = bot
        .slack
        .wait_for(WAIT, |_| {
            thread_texts(&bot, &ts)
                .into_iter()
                .find(|t| t.contains("*Needs attention*"))
        })
        .await
        .expect("needs attention");
    assert!(
        stop.contains("A person decides: `/aurora resume 1`") && !stop.contains("finishes by itself"),
        "{stop}"
    );
    let texts = thread_texts(&bot, &ts);
    let stop = texts
        .iter()
        .find(|t| t.contains("*Needs attention* (run 1) at *Repoint the CNAMEs*"))
        .unwrap_or_else(|| panic!("{texts:#?}"));
    assert!(
        stop.contains("now points at orders-elsewhere.example.com") && stop.contains("DNS was not changed"),
        "{stop}"
    );
    assert_eq!(bot.writer_cname(), "orders-elsewhere.example.com");
}

#[tokio::test]
async fn a_switchover_cancelled_by_aws_stops_the_wait_at_once_and_dns_is_not_moved() {
    let bot = TestBot::start_with(Options {
        timings: awsim::Timings {
            switchover_ms: 5_000,
            ..Options::default().timings
        },
        promote_timeout_secs: 300,
        ..Options::default()
    })
    .await;
    let before = bot.writer_cname();
    let (text, _) = ask(&bot, "--mode switchover").await;
    assert!(text.starts_with("Request #1"), "{text}");
    let ts = bot.request_message(1).await.ts.unwrap();
    bot.click(BOB, 1, true).await;
    wait_for_step(&bot, 1, "wait_managed").await;
    // Once the bot has seen the switchover under way, a blip in the target's Region: AWS cancels it.
    bot.slack
        .wait_for(WAIT, |calls| {
            calls
                .iter()
                .any(|c| {
                    // `pending` (100 ms) or `switching-over`: either is the switchover under way.
                    c.thread_ts() == Some(ts.as_str()) && c.text().contains("orders-global: FailoverState ")
                })
                .then_some(())
        })
        .await
        .expect("the switchover seen under way");
    bot.sim.admin().region_down(WEST, OutageMode::Reset).unwrap();
    bot.sim.admin().region_up(WEST).unwrap();
    let g = bot.sim.admin().global_cluster("orders-global").unwrap();
    assert!(g.failover_state.is_none(), "cancelled");
    // The run stops long before its 300 s promote timeout.
    assert_eq!(
        bot.finished_run(1, Duration::from_secs(30)).await.state,
        RunState::Failed
    );
    assert_eq!(bot.writer_cname(), before);
    bot.slack_settled().await;
    let thread = thread_texts(&bot, &ts);
    assert!(
        thread.iter().any(|t| t.contains("is cancelled")),
        "AWS's event is in the thread: {thread:#?}"
    );
    let last = thread.last().unwrap();
    assert!(
        last.contains("the switchover ended without making orders-west the writer: the writer is orders-east"),
        "{last}"
    );
    assert!(last.contains("DNS was not changed"), "{last}");
}
