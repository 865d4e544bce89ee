//! `aurora-failover-bot demo`: the whole bot on embedded defaults, with nothing outside this process.
//! The AWS emulator runs in-process with a two-Region global cluster and a private hosted zone; a local
//! stand-in for Slack prints every message the bot posts; the store is SQLite in a temporary
//! directory. A scripted scenario then drives the bot's real HTTP endpoints with correctly signed
//! requests: status, a failover request, a refused self-approval, an approval by a second user, the
//! run with its threaded updates, and the final status. It succeeds when the run has completed and DNS
//! points at the new writer.

use crate::aws::AwsOverrides;
use crate::ports::SystemClock;
use crate::settings::Settings;
use crate::startup::{Application, Deps};
use crate::store::RunState;
use anyhow::{Context, bail};
use standin::{Secret, SlackSender, SlackStandIn};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub mod web;

const CHANNEL: &str = "C0INCIDENT";
const ALICE: &str = "U0ALICE";
const BOB: &str = "U0BOB";
const DBA_GROUP: &str = "S0DBA";
const SIGNING_SECRET: &str = "demo-signing-secret";
const BOT_TOKEN: &str = "xoxb-demo-token";
const RECORD_WRITER: &str = "aurorawriteendpoint.aurora_private_hosted_zone";
const RECORD_READER: &str = "aurorareadendpoint.aurora_private_hosted_zone";
const ZONE: &str = "Z0123456789";

fn step(n: u32, what: &str) {
    println!("\n━━━ {n}. {what}");
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// The demo's configuration (TOML), pointing at the stand-ins: the bot on `listen`, its SQLite store
/// at `store_path`; `demo --web` adds a rebuild timeout.
fn config_toml(listen: &str, api_url: &str, store_path: &std::path::Path) -> String {
    format!(
        r#"
listen = "{listen}"
[slack]
signing_secret = "{SIGNING_SECRET}"
bot_token = "{BOT_TOKEN}"
api_url = "{api_url}"
incident_channel = "{CHANNEL}"
team_id = "{team}"
app_id = "{app}"
[approval]
requesters = ["{ALICE}"]
approvers = ["{DBA_GROUP}"]
request_ttl_secs = 900
[store]
path = "{}"
[runbook]
poll_interval_ms = 500
promote_timeout_secs = 120
dns_timeout_secs = 60
rebuild_timeout_secs = 300
[[clusters]]
name = "orders"
global_cluster_id = "orders-global"
regions = ["us-east-1", "us-west-2"]
hosted_zone_id = "{ZONE}"
writer_record = "{RECORD_WRITER}"
reader_record = "{RECORD_READER}"
record_ttl = 1
"#,
        store_path.display().to_string().replace('\\', "/"),
        team = standin::STANDIN_TEAM,
        app = standin::STANDIN_APP,
    )
}

/// What the bot is built with in the demo: AWS at the emulator `sim_url`, with static credentials.
fn deps(sim_url: &str) -> Deps {
    Deps {
        aws: AwsOverrides {
            endpoint_url: Some(sim_url.to_owned()),
            static_credentials: true,
            max_attempts: None,
            attempt_timeout: None,
        },
        clock: Arc::new(SystemClock),
        env: Box::new(|_| None),
        aws_credentials: None,
    }
}

/// Runs the demo; `Ok` when the failover completed and DNS points at the new writer.
pub async fn run() -> anyhow::Result<()> {
    println!("aurora-failover-bot demo: emulated AWS, a stand-in for Slack, SQLite in a temporary directory.");
    let mut scenario = awsim::Scenario::two_region_example();
    scenario.timings = awsim::Timings {
        detach_ms: 3_000,
        dns_propagation_ms: 1_500,
        ..awsim::Timings::default()
    };
    let sim = awsim::start("127.0.0.1:0".parse()?, scenario)
        .await
        .context("cannot start the AWS emulator")?;
    let slack = SlackStandIn::start(&Secret::new(BOT_TOKEN))
        .await
        .context("cannot start the Slack stand-in")?;
    slack.set_group(DBA_GROUP, &[BOB]);
    slack.print_messages(true);
    let dir = std::env::temp_dir().join(format!("aurora-failover-bot-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let settings = Settings::from_toml(&config_toml("127.0.0.1:0", &slack.api_url(), &dir.join("demo.db")))?;
    let app = Application::build(settings, deps(sim.url())).await?;
    let store = app.store.clone();
    let base = format!("http://127.0.0.1:{}", app.port());
    println!(
        "AWS emulator at {}, Slack stand-in at {}, bot at {base}",
        sim.url(),
        slack.api_url()
    );
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    let result = script(&slack, &base, &*store, &sim).await;
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(15), server).await;
    slack.stop();
    sim.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// The scripted conversation, against the running bot.
struct Script<'a> {
    slack: &'a SlackStandIn,
    sender: SlackSender,
    store: &'a dyn crate::store::Store,
    /// How long to wait for each answer.
    wait: Duration,
}

impl Script<'_> {
    /// Sends `/aurora TEXT` as `user` and waits for its answer at the response URL.
    async fn command(&self, user: &str, text: &str) -> anyhow::Result<()> {
        let url = self.slack.response_url();
        let answer = self.sender.command(user, CHANNEL, text, &url, now()).await;
        if answer.status != 200 {
            bail!("the bot answered /aurora {text} with HTTP {}", answer.status);
        }
        self.slack
            .wait_for(self.wait, |_| (!self.slack.responses_to(&url).is_empty()).then_some(()))
            .await
            .with_context(|| format!("no answer to /aurora {text} arrived"))
    }

    /// Asks for the failover; returns the request message's `ts` and the request's id.
    async fn ask(&self) -> anyhow::Result<(String, crate::store::RequestId)> {
        let url = self.slack.response_url();
        let answer = self
            .sender
            .command(ALICE, CHANNEL, "failover orders", &url, now())
            .await;
        println!("bot (only to {ALICE}): {}", answer.text());
        let request_msg = self
            .slack
            .wait_for(self.wait, |calls| {
                calls
                    .iter()
                    .find(|c| c.method == "chat.postMessage" && c.status == 200 && c.thread_ts().is_none())
                    .cloned()
            })
            .await
            .context("the approval request was not posted")?;
        let request_id = self
            .store
            .requests_in(crate::store::RequestState::Pending)
            .await?
            .into_iter()
            .flatten()
            .next()
            .map(|r| r.id)
            .context("no pending request")?;
        Ok((request_msg.ts.clone().unwrap_or_default(), request_id))
    }

    /// Clicks Approve on the request message as `user`; returns the click's response URL.
    async fn approve(&self, user: &str, ts: &str, request_id: crate::store::RequestId) -> String {
        let url = self.slack.response_url();
        let id = request_id.to_string();
        self.sender.click(user, CHANNEL, ts, "approve", &id, &url, now()).await;
        url
    }

    /// Waits for the run to end, then for its last (broadcast) reply to reach the stand-in.
    async fn run_ended(&self, request_id: crate::store::RequestId) -> anyhow::Result<crate::store::Run> {
        let run = tokio::time::timeout(Duration::from_secs(180), async {
            loop {
                if let Ok(Some(run)) = self.store.run_of_request(request_id).await
                    && run.state != RunState::Running
                {
                    return run;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
        .await
        .context("the run did not finish within 3 minutes")?;
        self.slack
            .wait_for(self.wait, |calls| {
                calls
                    .iter()
                    .any(|c| c.method == "chat.postMessage" && c.body.get("reply_broadcast").is_some())
                    .then_some(())
            })
            .await;
        Ok(run)
    }
}

async fn script(
    slack: &SlackStandIn,
    base: &str,
    store: &dyn crate::store::Store,
    sim: &awsim::Awsim,
) -> anyhow::Result<()> {
    let s = Script {
        slack,
        sender: SlackSender::new(base, &Secret::new(SIGNING_SECRET)),
        store,
        wait: Duration::from_secs(30),
    };
    step(1, &format!("<@{ALICE}> types: /aurora status"));
    s.command(ALICE, "status").await?;
    step(2, &format!("<@{ALICE}> types: /aurora failover orders"));
    let (ts, request_id) = s.ask().await?;
    step(3, &format!("<@{ALICE}> clicks Approve on her own request"));
    let url = s.approve(ALICE, &ts, request_id).await;
    slack
        .wait_for(s.wait, |_| (!slack.responses_to(&url).is_empty()).then_some(()))
        .await
        .context("the refusal did not arrive")?;
    step(4, &format!("<@{BOB}> (in the DBA user group) clicks Approve"));
    s.approve(BOB, &ts, request_id).await;
    step(5, "the run: every step in the request's thread");
    let run = s.run_ended(request_id).await?;
    step(6, &format!("<@{ALICE}> types: /aurora status"));
    s.command(ALICE, "status").await?;
    verdict(sim, &run)
}

/// Whether the demo did what it shows: the run succeeded and the writer CNAME points at the promoted
/// cluster.
fn verdict(sim: &awsim::Awsim, run: &crate::store::Run) -> anyhow::Result<()> {
    let west = sim
        .admin()
        .cluster("us-west-2", "orders-west")
        .context("the emulator lost orders-west")?;
    let writer = sim.admin().record(ZONE, RECORD_WRITER, "CNAME");
    let points_west = writer.as_ref().is_some_and(|r| r.values == [west.endpoint.clone()]);
    println!();
    if run.state == RunState::Succeeded && points_west {
        println!(
            "demo: the failover completed and {RECORD_WRITER} points at {}.",
            west.endpoint
        );
        Ok(())
    } else {
        bail!(
            "demo failed: run {}, {RECORD_WRITER} → {:?}",
            run.state.as_str(),
            writer.map(|r| r.values)
        )
    }
}
