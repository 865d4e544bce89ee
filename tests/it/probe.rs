//! The database probe (issue 17) against real database servers: PostgreSQL and MariaDB from Debian's
//! packages (installed by `scripts/db-deps`, started per test by `common::databases` with TLS from a
//! test CA), the emulator's cluster endpoints resolving to them through the emulator's own DNS server,
//! and the probe's credentials in the emulator's Secrets Manager. Each test runs the real bot: the plan
//! probes the target's reader endpoint read-only and shows it in the checklist; after the DNS change
//! the run resolves the writer CNAME until it answers the new endpoint, connects through it with TLS
//! verified against the endpoint name, and reports how long writes took to become possible, or needs
//! attention when the server stays read-only. The password never shows.

use crate::common;

use aurora_failover_bot::store::RunState;
use awsim::scenario::SecretSpec;
use common::databases::{
    DATABASE, DbServer, HEARTBEAT_TABLE, PROBE_PASSWORD, PROBE_USER, ServerSpec, TestCa, free_port_on,
};
use common::*;
use std::net::Ipv4Addr;
use std::time::Duration;

const SECRET: &str = "orders/probe";
/// Where the target's (orders-west's) cluster endpoint, reader endpoint, and nothing at all listen.
const WEST_WRITER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 21);
const WEST_READER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 22);
const NOBODY: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 29);

/// The emulator's endpoint names of `region`'s cluster `id` (cluster, reader), as DescribeDBClusters
/// gives them.
fn endpoint_names(region: &str, id: &str) -> (String, String) {
    let account = awsim::Scenario::two_region_example().account_id;
    awsim::model::rds::endpoints(&account, region, id)
}

/// The world of one test: the bot, and where orders-west's endpoints resolve.
struct World {
    ca: TestCa,
    port: u16,
    /// orders-west's cluster endpoint and reader endpoint names (what TLS is verified against).
    west: (String, String),
}

impl World {
    fn new() -> World {
        World {
            ca: TestCa::new(),
            port: free_port_on(&[WEST_WRITER, WEST_READER, NOBODY]),
            west: endpoint_names("us-west-2", "orders-west"),
        }
    }

    fn spec(&self, ip: Ipv4Addr) -> ServerSpec<'_> {
        ServerSpec {
            ip,
            port: self.port,
            tls_names: vec![self.west.0.clone(), self.west.1.clone()],
            ca: &self.ca,
        }
    }

    /// The bot with a probe of `engine` (heartbeat or not), orders-west's endpoints at `writer` and
    /// `reader`, the secret holding `password`, and the probe's deadline `deadline_secs`.
    async fn bot(
        &self,
        engine: &str,
        heartbeat: bool,
        at: (Ipv4Addr, Ipv4Addr),
        password: &str,
        deadline_secs: u64,
    ) -> TestBot {
        TestBot::start_with(self.options(engine, heartbeat, at, password, deadline_secs)).await
    }

    /// The options of `bot`; `{dns}` stands for the emulator's DNS server.
    fn options(
        &self,
        engine: &str,
        heartbeat: bool,
        (writer, reader): (Ipv4Addr, Ipv4Addr),
        password: &str,
        deadline_secs: u64,
    ) -> Options {
        let mut scenario = awsim::Scenario::two_region_example();
        scenario.secrets.push(SecretSpec {
            name: SECRET.into(),
            region: "us-east-1".into(),
            value: serde_json::json!({"username": PROBE_USER, "password": password, "engine": "postgres"}).to_string(),
        });
        let west = &mut scenario.global_clusters[0].members[1];
        assert_eq!(west.cluster_id, "orders-west");
        west.port = Some(self.port);
        west.endpoint_address = Some(writer.to_string());
        west.reader_endpoint_address = Some(reader.to_string());
        if engine == "aurora-mysql" {
            scenario.global_clusters[0].engine = "aurora-mysql".into();
            scenario.global_clusters[0].engine_version = "8.0.mysql_aurora.3.05.2".into();
        }
        let heartbeat = if heartbeat {
            format!("heartbeat_table = \"{HEARTBEAT_TABLE}\"\n")
        } else {
            String::new()
        };
        Options {
            scenario,
            dns: true,
            extra_toml: format!(
                "[probe]\nca_bundle = \"{}\"\nresolver = \"{{dns}}\"\nconnect_timeout_secs = 2\nquery_timeout_secs = 2\ndeadline_secs = {deadline_secs}\n",
                self.ca.pem_path().display()
            ),
            clusters_toml: Some(format!(
                r#"[[clusters]]
name = "orders"
global_cluster_id = "orders-global"
regions = ["us-east-1", "us-west-2"]
hosted_zone_id = "{ZONE}"
writer_record = "{WRITER_RECORD}"
reader_record = "{READER_RECORD}"
record_ttl = 1
[clusters.probe]
engine = "{engine}"
secret_id = "{SECRET}"
database = "{DATABASE}"
{heartbeat}"#
            )),
            ..Options::default()
        }
    }
}

/// The request's checklist line of the Database check.
async fn database_line(bot: &TestBot, id: i64) -> String {
    let body = all_text(&bot.request_message(id).await);
    body.lines()
        .find(|l| l.contains("*Database*"))
        .unwrap_or_else(|| panic!("no Database line in the checklist: {body}"))
        .to_owned()
}

/// Every text the bot sent to Slack, for the password check.
fn everything_said(bot: &TestBot) -> String {
    bot.slack
        .calls()
        .iter()
        .map(|c| c.body.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn a_postgresql_target_is_probed_before_approval_and_writes_are_confirmed_through_the_cname_after_the_flip() {
    let world = World::new();
    let mut primary = DbServer::postgres(&world.spec(WEST_WRITER));
    let standby = DbServer::postgres_standby(&primary, &world.spec(WEST_READER));
    // A transaction for the standby to replay: until its first one, it reports no lag.
    primary.psql(DATABASE, "CREATE TABLE replayed (x int)");
    poll_until(
        "the standby to replay a transaction",
        Duration::from_millis(50),
        async || {
            (standby
                .psql(DATABASE, "SELECT pg_last_xact_replay_timestamp() IS NOT NULL")
                .trim()
                == "t")
                .then_some(())
        },
    )
    .await;
    let bot = world
        .bot(
            "aurora-postgresql",
            true,
            (WEST_WRITER, WEST_READER),
            PROBE_PASSWORD,
            30,
        )
        .await;
    // Resolvers hold the old answer a while after Route 53 is INSYNC: the first attempts see it.
    bot.sim.admin().set_dns_delay(Duration::from_millis(1500));
    let id = bot.request_with("--mode switchover").await;
    let line = database_line(&bot, id).await;
    assert!(
        line.contains(&format!(
            "{}:{} answers over TLS as aurora-postgresql: PostgreSQL 15",
            world.west.1, world.port
        )) && line.contains("read-only; replica lag")
            && line.contains("as the database reports it"),
        "{line}"
    );
    let ts = bot.request_message(id).await.ts.unwrap();
    bot.click(BOB, id, true).await;
    let run = bot.finished_run(id, Duration::from_secs(60)).await;
    assert_eq!(run.state, RunState::Succeeded);
    let thread = thread_texts(&bot, &ts).join("\n");
    assert!(thread.contains("Confirm writes through the CNAME"), "{thread}");
    assert!(
        thread.contains(&format!("answers {}", endpoint_names("us-east-1", "orders-east").0))
            && thread.contains(&format!("not {} yet", world.west.0)),
        "the old answer is shown as an attempt: {thread}"
    );
    let done = thread
        .lines()
        .find(|l| l.contains("Writes possible through the CNAME"))
        .unwrap_or_else(|| panic!("{thread}"));
    assert!(
        done.contains(" s after the flip: ")
            && done.contains(&format!("{WRITER_RECORD} → {} ({WEST_WRITER})", world.west.0))
            && done.contains("PostgreSQL 15")
            && done.contains(&format!("heartbeat row written to {HEARTBEAT_TABLE}")),
        "{done}"
    );
    let after: f64 = done
        .split("CNAME ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{done}"));
    assert!(after >= 1.0, "the DNS delay is part of the time: {done}");
    assert!(
        thread.contains(&format!("• Writes possible through `{WRITER_RECORD}` "))
            && thread.contains(" after the DNS change (database probe)"),
        "the completion says it too: {thread}"
    );
    // The heartbeat row, keyed by the bot instance's name, is in the promoted cluster's database.
    assert_eq!(primary.heartbeat_rows().len(), 1, "{:?}", primary.heartbeat_rows());
    // The probe read its credentials from Secrets Manager and asked the DNS server for the name.
    let calls = bot.sim.admin().calls();
    assert!(calls.iter().any(|c| c.action == "GetSecretValue"), "{calls:?}");
    assert!(
        bot.sim
            .admin()
            .dns_queries()
            .iter()
            .any(|q| q.name.trim_end_matches('.').eq_ignore_ascii_case(WRITER_RECORD)),
        "the writer CNAME was not resolved"
    );
    assert!(
        !everything_said(&bot).contains(PROBE_PASSWORD),
        "the password reached Slack"
    );
    primary.stop();
    bot.assert_wording();
}

#[tokio::test]
async fn a_mysql_target_that_stays_read_only_puts_the_run_in_needs_attention_and_nothing_is_undone() {
    let world = World::new();
    let _read_only = DbServer::mariadb(&world.spec(WEST_WRITER), true);
    let _reader = DbServer::mariadb(&world.spec(WEST_READER), true);
    let bot = world
        .bot("aurora-mysql", false, (WEST_WRITER, WEST_READER), PROBE_PASSWORD, 10)
        .await;
    let id = bot.request_with("--mode switchover").await;
    let line = database_line(&bot, id).await;
    assert!(
        line.contains(&format!(
            "{}:{} answers over TLS as aurora-mysql: ",
            world.west.1, world.port
        )) && line.contains("MariaDB")
            && line.contains("read-only; replica lag not reported by the database"),
        "{line}"
    );
    let ts = bot.request_message(id).await.ts.unwrap();
    bot.click(BOB, id, true).await;
    let run = bot.finished_run(id, Duration::from_secs(60)).await;
    assert_eq!(run.state, RunState::NeedsAttention, "{run:?}");
    assert_eq!(run.step, "probe_writes");
    let thread = thread_texts(&bot, &ts).join("\n");
    assert!(
        thread.contains(&format!(
            "{}:{} ({WEST_WRITER}): the server is read-only",
            world.west.0, world.port
        )),
        "{thread}"
    );
    assert!(
        thread.contains(&format!(
            "{WRITER_RECORD} gave no writable connection within 10 s (probe.deadline_secs). Tried: "
        )) && thread.contains("nothing will be undone"),
        "{thread}"
    );
    // The failover stands: the CNAMEs point at the new writer, which is orders-west.
    assert_eq!(bot.writer_cname(), world.west.0);
    let west = bot.sim.admin().cluster("us-west-2", "orders-west").unwrap();
    assert!(west.status == "available", "{west:?}");
    assert!(
        !everything_said(&bot).contains(PROBE_PASSWORD),
        "the password reached Slack"
    );
    bot.assert_wording();
}

#[tokio::test]
async fn a_target_that_refuses_connections_is_shown_in_the_checklist_and_can_still_be_approved() {
    let world = World::new();
    let bot = world
        .bot("aurora-postgresql", false, (NOBODY, NOBODY), PROBE_PASSWORD, 10)
        .await;
    let id = bot.request_with("--mode switchover").await;
    let line = database_line(&bot, id).await;
    assert!(
        line.contains(":warning:")
            && line.contains(&format!(
                "{}:{} could not be probed from this bot: ",
                world.west.1, world.port
            ))
            && line.contains("refused")
            && line.contains("The failover can go on"),
        "{line}"
    );
    assert!(
        has_buttons(&bot.request_message(id).await),
        "a failed probe never refuses the plan"
    );
    bot.assert_wording();
}

#[tokio::test]
async fn a_wrong_password_is_a_configuration_error_in_the_checklist_and_in_check_config() {
    let world = World::new();
    let primary = DbServer::postgres(&world.spec(WEST_WRITER));
    let _standby = DbServer::postgres_standby(&primary, &world.spec(WEST_READER));
    let wrong = "not-the-password-4f1d";
    let bot = world
        .bot("aurora-postgresql", false, (WEST_WRITER, WEST_READER), wrong, 10)
        .await;
    let id = bot.request_with("--mode switchover").await;
    let line = database_line(&bot, id).await;
    assert!(
        line.contains(":warning:")
            && line.contains("configuration error: ")
            && line.contains(PROBE_USER)
            && line.contains(SECRET),
        "{line}"
    );
    assert!(!everything_said(&bot).contains(wrong), "the password reached Slack");
    // check-config, against the same emulator and DNS server, fails on it and names the key to fix.
    let mut o = world.options("aurora-postgresql", false, (WEST_WRITER, WEST_READER), wrong, 10);
    o.extra_toml = o.extra_toml.replace("{dns}", &bot.dns.unwrap().to_string());
    let path = bot.dir.join("check.toml");
    std::fs::write(
        &path,
        config_toml("http://127.0.0.1:1/api", &bot.dir.join("check.db"), &o),
    )
    .unwrap();
    let (code, stdout, stderr) = run_binary(
        bot.sim.url(),
        &["check-config", "--config", path.to_str().unwrap()],
        &[],
    )
    .await;
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    let line = stdout
        .lines()
        .find(|l| l.contains("database of orders-west (us-west-2)"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        line.contains("FAIL")
            && line.contains("configuration error: ")
            && line.contains(PROBE_USER)
            && line.contains(SECRET),
        "{line}"
    );
    assert!(
        !stdout.contains(wrong) && !stderr.contains(wrong),
        "the password was printed"
    );
    bot.assert_wording();
}

/// orders-west's cluster endpoint on a PostgreSQL standby (read-only until promoted), its reader
/// endpoint on the primary, the probe's deadline `deadline_secs`; a switchover requested and approved.
/// Returns the primary, the standby, the bot, and the request's id and message ts.
async fn approved_onto_a_standby(world: &World, deadline_secs: u64) -> (DbServer, DbServer, TestBot, i64, String) {
    let primary = DbServer::postgres(&world.spec(WEST_READER));
    let standby = DbServer::postgres_standby(&primary, &world.spec(WEST_WRITER));
    let at = (WEST_WRITER, WEST_READER);
    let bot = world
        .bot("aurora-postgresql", false, at, PROBE_PASSWORD, deadline_secs)
        .await;
    let id = bot.request_with("--mode switchover").await;
    let ts = bot.request_message(id).await.ts.unwrap();
    bot.click(BOB, id, true).await;
    (primary, standby, bot, id, ts)
}

#[tokio::test]
async fn a_postgresql_standby_behind_the_cname_is_read_only_until_promoted_and_each_outcome_is_said() {
    let world = World::new();
    let (_primary, mut standby, bot, id, ts) = approved_onto_a_standby(&world, 60).await;
    // The server behind the new endpoint becomes writable a while after the DNS change.
    wait_for_step(&bot, id, "probe_writes").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    standby.promote();
    let run = bot.finished_run(id, Duration::from_secs(60)).await;
    assert_eq!(run.state, RunState::Succeeded);
    let thread = thread_texts(&bot, &ts).join("\n");
    let read_only = format!(
        "{}:{} ({WEST_WRITER}): the server is read-only",
        world.west.0, world.port
    );
    // While it waited, the step's reply showed what the attempts saw.
    let edits: Vec<String> = bot.slack.delivered("chat.update").iter().map(all_text).collect();
    assert!(
        edits
            .iter()
            .any(|e| e.contains("Confirm writes through the CNAME") && e.contains(&read_only)),
        "the step's reply did not show the read-only server: {edits:#?}"
    );
    let done = thread
        .lines()
        .find(|l| l.contains("Writes possible through the CNAME"))
        .unwrap_or_else(|| panic!("{thread}"));
    assert!(done.contains(&format!("× {read_only}; then writable")), "{done}");
    bot.assert_wording();
}

#[tokio::test]
async fn after_the_probe_stopped_the_run_a_resume_approved_by_a_second_person_probes_again_and_finishes() {
    use crate::attention::{click_resume, reply_with, wait_state};
    let world = World::new();
    let (_primary, mut standby, bot, id, ts) = approved_onto_a_standby(&world, 10).await;
    wait_state(&*bot.store, id, RunState::NeedsAttention).await;
    reply_with(&bot, &ts, "gave no writable connection within 10 s").await;
    // The person fixes what was wrong (here: the server is made writable), then resumes.
    standby.promote();
    let (answer, _) = bot.command(ALICE, "resume 1").await;
    assert!(answer.text().contains("You asked to resume run 1"), "{answer:?}");
    let resume_ts = bot
        .slack
        .wait_for(Duration::from_secs(30), |_| {
            bot.thread(&ts)
                .into_iter()
                .find(|r| r.text().contains("asks to resume run 1"))
                .and_then(|r| r.ts)
        })
        .await
        .expect("the resume request");
    let approved = click_resume(&bot, &resume_ts, BOB).await;
    assert!(approved.contains("You approved resuming run 1"), "{approved}");
    wait_state(&*bot.store, id, RunState::Succeeded).await;
    let done = reply_with(&bot, &ts, "Writes possible through the CNAME").await;
    assert!(
        done.contains("the server is read-only; then writable"),
        "the attempts of both rounds: {done}"
    );
    // Nothing was done twice: one switchover, and the DNS change only before the probe.
    assert_eq!(bot.sim.admin().calls_to("SwitchoverGlobalCluster").len(), 1);
    assert_eq!(bot.sim.admin().calls_to("ChangeResourceRecordSets").len(), 1);
    bot.assert_wording();
}
