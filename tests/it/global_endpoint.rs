//! The Aurora global writer endpoint (`GlobalClusters[].Endpoint`) and write forwarding, through the
//! real bot against the emulator: status shows the endpoint and the cluster it serves; a writer CNAME
//! at it "follows the writer" in status, the checklist and the dry run alike; managed failover and
//! switchover leave that CNAME alone and check that AWS moved the endpoint; a detach warns and moves it
//! to the promoted cluster's own endpoint; write forwarding on a secondary is shown and noted.

use crate::common;
use aurora_failover_bot::store::RunState;
use awsim::Scenario;
use awsim::WriteForwarding;
use common::*;
use std::time::Duration;

const EAST: &str = "us-east-1";
const WEST: &str = "us-west-2";

/// The bot on the two-Region example, its writer CNAME pointed at the global writer endpoint; returns
/// the bot and that endpoint.
async fn writer_at_global_endpoint() -> (TestBot, String) {
    let bot = TestBot::start_with(Options {
        scenario: Scenario::two_region_example(),
        ..Options::default()
    })
    .await;
    let endpoint = bot.sim.admin().global_cluster("orders-global").unwrap().endpoint;
    assert!(endpoint.ends_with(".global.rds.amazonaws.com"), "{endpoint}");
    bot.repoint_writer_cname(&endpoint).await;
    (bot, endpoint)
}

/// Whether any change batch from the `from`-th on UPSERTs the writer record.
fn writer_upserted_since(bot: &TestBot, from: usize) -> bool {
    let writer = format!("{WRITER_RECORD}.");
    bot.sim.admin().changes(ZONE)[from..]
        .iter()
        .flatten()
        .any(|c| c.action == "UPSERT" && c.name == writer)
}

/// `/aurora status`, as MALLORY sees it.
async fn status(bot: &TestBot) -> String {
    let (_, url) = bot.command(MALLORY, "status").await;
    bot.answer_at(&url).await
}

#[tokio::test]
async fn status_shows_the_global_writer_endpoint_and_a_writer_cname_at_it_follows_the_writer() {
    let (bot, endpoint) = writer_at_global_endpoint().await;
    let text = status(&bot).await;
    assert!(
        text.contains(&format!(
            "global writer endpoint `{endpoint}` → serves `orders-east` (us-east-1), the writer"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            ":white_check_mark: writer CNAME `{WRITER_RECORD}` → `{endpoint}`: follows the writer (the global writer endpoint, now `orders-east`)"
        )),
        "{text}"
    );
    assert!(!text.contains(":warning: writer CNAME"), "no warning: {text}");
    // The dry run says the same.
    let (_, url) = bot.command(ALICE, "failover orders --mode switchover --dry-run").await;
    let dry = bot.answer_at(&url).await;
    let reply = bot.slack.responses_to(&url).first().cloned().unwrap();
    let body = all_text(&reply);
    assert!(
        body.contains(&format!("{WRITER_RECORD} follows the writer")),
        "{dry}\n{body}"
    );
    assert!(body.contains("(the global writer endpoint)"), "{body}");
}

#[tokio::test]
async fn write_forwarding_on_a_secondary_is_shown_in_status_and_noted_in_the_checklist() {
    let bot = TestBot::start().await;
    bot.sim
        .admin()
        .set_write_forwarding(WEST, "orders-west", WriteForwarding::Enabled)
        .unwrap();
    let text = status(&bot).await;
    let west = text
        .lines()
        .find(|l| l.contains("`orders-west`"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(west.contains("write forwarding enabled"), "{west}");
    let east = text.lines().find(|l| l.contains("`orders-east`")).unwrap();
    assert!(!east.contains("write forwarding"), "not for the writer: {east}");
    let (answer, _) = bot.command(ALICE, "failover orders --mode switchover").await;
    assert!(answer.text().starts_with("Request #1"), "{}", answer.text());
    let body = all_text(&bot.request_message(1).await);
    assert!(
        body.contains(
            "*Write forwarding*: on for orders-west in us-west-2 (enabled): writes sent to those secondaries are \
             forwarded to the global cluster's writer, orders-east. After the switchover they are forwarded to \
             orders-west, the new writer"
        ),
        "{body}"
    );
}

/// A managed `mode` with the writer CNAME at the global writer endpoint: the CNAME is left alone (no
/// UPSERT of it), the reader CNAME moves, and the thread says the CNAME followed the writer.
async fn a_managed_mode_leaves_the_writer_cname_alone(mode: &str) {
    let (bot, endpoint) = writer_at_global_endpoint().await;
    let changes_before = bot.sim.admin().changes(ZONE).len();
    let (answer, _) = bot.command(ALICE, &format!("failover orders --mode {mode}")).await;
    assert!(answer.text().starts_with("Request #1"), "{}", answer.text());
    let msg = bot.request_message(1).await;
    let body = all_text(&msg);
    assert!(
        body.contains(&format!(
            ":white_check_mark: *CNAMEs*: {WRITER_RECORD} follows the writer: it points at the global writer endpoint {endpoint}"
        )),
        "{body}"
    );
    assert!(body.contains(&format!("Leave {WRITER_RECORD} alone")), "{body}");
    bot.click(BOB, 1, true).await;
    assert_eq!(
        bot.finished_run(1, Duration::from_secs(30)).await.state,
        RunState::Succeeded
    );
    let g = bot.sim.admin().global_cluster("orders-global").unwrap();
    let west = bot.sim.admin().cluster(WEST, "orders-west").unwrap();
    assert_eq!(g.endpoint_target.as_deref(), Some(west.arn.as_str()), "AWS moved it");
    assert_eq!(bot.writer_cname(), endpoint, "left alone");
    assert_eq!(bot.reader_cname(), west.reader_endpoint, "the reader CNAME moved");
    assert!(
        !writer_upserted_since(&bot, changes_before),
        "no UPSERT of the writer record"
    );
    assert_eq!(bot.sim.admin().changes(ZONE).len(), changes_before + 1);
    bot.slack_settled().await;
    let ts = msg.ts.unwrap();
    let thread = thread_texts(&bot, &ts).join("\n");
    assert!(
        thread.contains("follows the writer: AWS moved the global writer endpoint to orders-west"),
        "{thread}"
    );
    assert!(thread.contains(&format!("{WRITER_RECORD} left alone")), "{thread}");
    let last = thread_texts(&bot, &ts).pop().unwrap();
    assert!(
        last.contains(&format!(
            "• `{WRITER_RECORD}` → `{endpoint}` (the global writer endpoint: follows the writer, now `orders-west`)"
        )),
        "the completion says where the endpoint went: {last}"
    );
}

#[tokio::test]
async fn a_switchover_leaves_a_writer_cname_at_the_global_endpoint_alone_and_checks_that_aws_moved_it() {
    a_managed_mode_leaves_the_writer_cname_alone("switchover").await;
}

#[tokio::test]
async fn a_managed_failover_leaves_a_writer_cname_at_the_global_endpoint_alone_and_checks_that_aws_moved_it() {
    a_managed_mode_leaves_the_writer_cname_alone("failover").await;
}

#[tokio::test]
async fn a_detach_warns_and_moves_a_writer_cname_at_the_global_endpoint_to_the_promoted_cluster() {
    let (bot, endpoint) = writer_at_global_endpoint().await;
    let changes_before = bot.sim.admin().changes(ZONE).len();
    let id = bot.request().await;
    let body = all_text(&bot.request_message(id).await);
    assert!(
        body.contains(&format!(
            ":warning: *CNAMEs*: {WRITER_RECORD} points at the global writer endpoint {endpoint}, which follows the \
             writer of the global cluster. A detach takes orders-west out of the global cluster"
        )),
        "{body}"
    );
    bot.click(BOB, id, true).await;
    assert_eq!(
        bot.finished_run(id, Duration::from_secs(30)).await.state,
        RunState::Succeeded
    );
    let (w, r) = bot.endpoints(WEST, "orders-west");
    assert_eq!((bot.writer_cname(), bot.reader_cname()), (w, r));
    assert!(writer_upserted_since(&bot, changes_before), "the writer CNAME moved");
    // The global cluster keeps its endpoint, on the old primary; the detached cluster is no member.
    let g = bot.sim.admin().global_cluster("orders-global").unwrap();
    let east = bot.sim.admin().cluster(EAST, "orders-east").unwrap();
    assert_eq!(g.endpoint_target.as_deref(), Some(east.arn.as_str()));
}
