//! Test harness: the real bot (built by `startup` exactly as `serve` builds it, on port 0) against the
//! AWS emulator and the Slack stand-in, with requests signed as Slack signs them, and a clock that can
//! be moved forward.

pub mod databases;
pub mod dynamodb;
pub mod process;

use aurora_failover_bot::aws::AwsOverrides;
use aurora_failover_bot::ports::Clock;
use aurora_failover_bot::settings::Settings;
use aurora_failover_bot::startup::{Application, Deps};
use aurora_failover_bot::store::{Request, RequestState, Run, RunState, Store};
use standin::{Answer, Recorded, Secret, SlackSender, SlackStandIn, SocketModeFake};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub const CHANNEL: &str = "C0INCIDENT";
/// A requester.
pub const ALICE: &str = "U0ALICE";
/// An approver, named directly.
pub const BOB: &str = "U0BOB";
/// An approver through the user group S0DBA.
pub const CAROL: &str = "U0CAROL";
/// A requester through the user group S0ONCALL.
pub const DAVE: &str = "U0DAVE";
/// Nobody in particular.
pub const MALLORY: &str = "U0MALLORY";
pub const SIGNING_SECRET: &str = "test-signing-secret";
pub const BOT_TOKEN: &str = "xoxb-test-token";
/// The app-level token of Socket Mode (`Options::socket`).
pub const APP_TOKEN: &str = "xapp-1-A0STANDIN-test-token";
pub const ZONE: &str = "Z0123456789";
pub const WRITER_RECORD: &str = "aurorawriteendpoint.aurora_private_hosted_zone";
pub const READER_RECORD: &str = "aurorareadendpoint.aurora_private_hosted_zone";
pub const WAIT: Duration = Duration::from_secs(20);
/// The AWS calls that change something; every other call the bot makes only reads.
pub const MUTATING: &[&str] = &[
    "RemoveFromGlobalCluster",
    "FailoverGlobalCluster",
    "SwitchoverGlobalCluster",
    "ChangeResourceRecordSets",
];

/// The system clock plus an offset that tests can move forward.
#[derive(Default)]
pub struct TestClock {
    offset_ms: AtomicI64,
}

impl TestClock {
    pub fn advance(&self, d: Duration) {
        self.offset_ms.fetch_add(d.as_millis() as i64, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now(&self) -> jiff::Timestamp {
        jiff::Timestamp::now() + jiff::SignedDuration::from_millis(self.offset_ms.load(Ordering::SeqCst))
    }
}

/// Something done to the Slack stand-in before the bot starts.
pub type SlackSetup = dyn Fn(&SlackStandIn) + Send + Sync;

/// What a test may change about the bot's world.
pub struct Options {
    pub timings: awsim::Timings,
    pub request_ttl_secs: u64,
    pub poll_interval_ms: u64,
    pub promote_timeout_secs: u64,
    pub dns_timeout_secs: u64,
    pub scenario: awsim::Scenario,
    /// How long one attempt of an AWS call may take (the SDK's default when absent).
    pub attempt_timeout: Option<Duration>,
    /// The configured Regions of the `orders` cluster.
    pub regions: Vec<&'static str>,
    /// Replaces the `[[clusters]]` section of the config.
    pub clusters_toml: Option<String>,
    /// `runbook.lag_limit_ms`.
    pub lag_limit_ms: u64,
    /// More keys of the `[slack]` section (e.g. `app_id = "A0STANDIN"`).
    pub slack_toml: String,
    /// More config (whole sections, e.g. `[server]`), appended.
    pub extra_toml: String,
    /// `runbook.late_dns_window_secs`.
    pub late_dns_window_secs: u64,
    /// Environment variables the bot sees. When it has `SLACK_SIGNING_SECRET` or `SLACK_BOT_TOKEN`,
    /// the file does not give that secret.
    pub env: Vec<(&'static str, String)>,
    /// Done to the Slack stand-in before the bot starts.
    pub slack_setup: Option<Box<SlackSetup>>,
    /// Wait until the bot is ready (it learned its workspace) before returning it.
    pub wait_ready: bool,
    /// More keys of the `[store]` section (e.g. `backend = "dynamodb"`).
    pub store_toml: String,
    /// Socket Mode (`slack.mode = "socket"`, `SLACK_APP_TOKEN` = [`APP_TOKEN`] unless `env` gives
    /// one): commands and clicks go over the stand-in's fake Socket Mode server.
    pub socket: bool,
    /// The emulator also answers DNS (`Awsim::serve_dns` on a free loopback port); `{dns}` in
    /// `extra_toml` and `clusters_toml` is replaced by its address (for `[probe] resolver`).
    pub dns: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            timings: awsim::Timings {
                detach_ms: 400,
                pending_ms: 100,
                failover_ms: 400,
                switchover_ms: 400,
                rejoin_ms: 400,
                dns_propagation_ms: 300,
                create_global_ms: 300,
                create_cluster_ms: 400,
                create_instance_ms: 400,
            },
            request_ttl_secs: 900,
            poll_interval_ms: 100,
            promote_timeout_secs: 30,
            dns_timeout_secs: 30,
            scenario: awsim::Scenario::two_region_example(),
            attempt_timeout: None,
            regions: vec!["us-east-1", "us-west-2"],
            clusters_toml: None,
            lag_limit_ms: 60_000,
            slack_toml: String::new(),
            extra_toml: String::new(),
            late_dns_window_secs: 1_800,
            env: Vec::new(),
            slack_setup: None,
            wait_ready: true,
            store_toml: String::new(),
            socket: false,
            dns: false,
        }
    }
}

pub fn config_toml(api_url: &str, store: &std::path::Path, o: &Options) -> String {
    format!(
        r#"
listen = "127.0.0.1:0"
[slack]
{signing}{token}api_url = "{api_url}"
incident_channel = "{CHANNEL}"
{slack_extra}
[approval]
requesters = ["{ALICE}", "S0ONCALL"]
approvers = ["{BOB}", "S0DBA"]
request_ttl_secs = {ttl}
[store]
path = "{store}"
{store_extra}
[runbook]
poll_interval_ms = {poll}
promote_timeout_secs = {promote}
dns_timeout_secs = {dns}
lag_limit_ms = {lag_limit}
late_dns_window_secs = {late}
{clusters}
{extra}
"#,
        signing = if o.env.iter().any(|(k, _)| *k == "SLACK_SIGNING_SECRET") {
            String::new()
        } else {
            format!("signing_secret = \"{SIGNING_SECRET}\"\n")
        },
        token = if o.env.iter().any(|(k, _)| *k == "SLACK_BOT_TOKEN") {
            String::new()
        } else {
            format!("bot_token = \"{BOT_TOKEN}\"\n")
        },
        slack_extra = o.slack_toml,
        late = o.late_dns_window_secs,
        extra = o.extra_toml,
        ttl = o.request_ttl_secs,
        store = store.display(),
        store_extra = o.store_toml,
        poll = o.poll_interval_ms,
        promote = o.promote_timeout_secs,
        dns = o.dns_timeout_secs,
        lag_limit = o.lag_limit_ms,
        clusters = o.clusters_toml.clone().unwrap_or_else(|| format!(
            r#"[[clusters]]
name = "orders"
global_cluster_id = "orders-global"
regions = [{}]
hosted_zone_id = "{ZONE}"
writer_record = "{WRITER_RECORD}"
reader_record = "{READER_RECORD}"
record_ttl = 1"#,
            o.regions
                .iter()
                .map(|r| format!("\"{r}\""))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    )
}

pub struct TestBot {
    pub sim: awsim::Awsim,
    pub slack: SlackStandIn,
    pub sender: SlackSender,
    pub store: Arc<dyn Store>,
    pub clock: Arc<TestClock>,
    pub dir: std::path::PathBuf,
    pub port: u16,
    /// The fake Socket Mode server, when the bot runs in Socket Mode (`Options::socket`).
    pub socket: Option<SocketModeFake>,
    /// The emulator's DNS server, when it serves one (`Options::dns`).
    pub dns: Option<std::net::SocketAddr>,
    shutdown: CancellationToken,
    /// What is wrong with the immediate answers to commands sent through `command` (they are HTTP
    /// answers, which the stand-in does not see): Slack's refusal code or a wording defect.
    answer_defects: std::sync::Mutex<Vec<String>>,
    /// Kept so the server task is owned by the bot; `Drop` stops it through `shutdown`.
    _server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// An RDS client for `region` pointed at the emulator at `sim_url`.
pub async fn rds_client(sim_url: &str, region: &str) -> aws_sdk_rds::Client {
    let config = aurora_failover_bot::aws::load_config(&AwsOverrides {
        endpoint_url: Some(sim_url.to_owned()),
        static_credentials: true,
        max_attempts: Some(1),
        attempt_timeout: None,
    })
    .await;
    aws_sdk_rds::Client::from_conf(
        aws_sdk_rds::config::Builder::from(&config)
            .region(aws_sdk_rds::config::Region::new(region.to_owned()))
            .build(),
    )
}

/// Waits until the bot at `port` answers `/readyz` with 200 (it has learned its Slack workspace).
pub async fn wait_ready(port: u16) {
    let url = format!("http://127.0.0.1:{port}/readyz");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match reqwest::get(&url).await {
            Ok(r) if r.status() == 200 => return,
            other => assert!(
                tokio::time::Instant::now() < deadline,
                "the bot did not become ready: {:?}",
                match other {
                    Ok(r) => r.text().await.unwrap_or_default(),
                    Err(e) => e.to_string(),
                }
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Turns Socket Mode on in the stand-in and in the bot's options (`mode = "socket"`, the app token
/// in `SLACK_APP_TOKEN` unless the options give one; the stand-in accepts [`APP_TOKEN`]).
async fn socket_mode(slack: &SlackStandIn, o: &mut Options) -> SocketModeFake {
    let sm = slack.enable_socket_mode(APP_TOKEN).await.unwrap();
    o.slack_toml.push_str("\nmode = \"socket\"\n");
    if !o.env.iter().any(|(k, _)| *k == "SLACK_APP_TOKEN") {
        o.env.push(("SLACK_APP_TOKEN", APP_TOKEN.to_owned()));
    }
    sm
}

/// A Socket Mode ack as the answer an HTTP request would have had: its payload as the body.
fn socket_answer(ack: Option<standin::SocketAck>) -> Answer {
    match ack {
        Some(a) => Answer {
            status: 200,
            body: a.payload.map(|p| p.to_string()).unwrap_or_default(),
        },
        None => Answer {
            status: 0,
            body: "no ack".to_owned(),
        },
    }
}

pub fn temp_dir(tag: &str) -> std::path::PathBuf {
    static N: AtomicI64 = AtomicI64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "afb-test-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl TestBot {
    pub async fn start() -> TestBot {
        TestBot::start_with(Options::default()).await
    }

    pub async fn start_with(mut o: Options) -> TestBot {
        o.scenario.timings = o.timings;
        let sim = awsim::start("127.0.0.1:0".parse().unwrap(), o.scenario.clone())
            .await
            .unwrap();
        let slack = SlackStandIn::start(&Secret::new(BOT_TOKEN)).await.unwrap();
        slack.set_group("S0DBA", &[CAROL]);
        slack.set_group("S0ONCALL", &[DAVE]);
        if let Some(setup) = &o.slack_setup {
            setup(&slack);
        }
        let socket = match o.socket {
            true => Some(socket_mode(&slack, &mut o).await),
            false => None,
        };
        let mut dns = None;
        if o.dns {
            let addr = sim.serve_dns("127.0.0.1:0".parse().unwrap()).await.unwrap();
            o.extra_toml = o.extra_toml.replace("{dns}", &addr.to_string());
            o.clusters_toml = o.clusters_toml.map(|t| t.replace("{dns}", &addr.to_string()));
            dns = Some(addr);
        }
        let dir = temp_dir("bot");
        let settings = Settings::from_toml(&config_toml(&slack.api_url(), &dir.join("bot.db"), &o)).unwrap();
        let clock = Arc::new(TestClock::default());
        let deps = Deps {
            aws: AwsOverrides {
                endpoint_url: Some(sim.url().to_owned()),
                static_credentials: true,
                max_attempts: Some(2),
                attempt_timeout: o.attempt_timeout,
            },
            clock: clock.clone(),
            env: {
                let env = o.env.clone();
                Box::new(move |k| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()))
            },
            aws_credentials: None,
        };
        let app = Application::build(settings, deps).await.unwrap();
        let store = app.store.clone();
        let port = app.port();
        let sender = SlackSender::new(
            &format!("http://127.0.0.1:{}", app.port()),
            &Secret::new(SIGNING_SECRET),
        );
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(app.run_until_stopped(shutdown.clone()));
        if o.wait_ready {
            wait_ready(port).await;
        }
        TestBot {
            sim,
            slack,
            sender,
            store,
            clock,
            dir,
            port,
            socket,
            dns,
            shutdown,
            answer_defects: Default::default(),
            _server: server,
        }
    }

    pub fn now(&self) -> i64 {
        self.clock.now().as_second()
    }

    /// Sends `/aurora {text}` as `user`; returns the answer and the command's response_url. In Socket
    /// Mode the answer is the ack's payload (status 200, or 0 when no ack came within `WAIT`).
    pub async fn command(&self, user: &str, text: &str) -> (Answer, String) {
        let url = self.slack.response_url();
        let answer = match &self.socket {
            Some(sm) => {
                let id = sm.command(user, CHANNEL, text, &url).await;
                socket_answer(sm.wait_ack(&id, WAIT).await)
            }
            None => self.sender.command(user, CHANNEL, text, &url, self.now()).await,
        };
        // An immediate answer is a message too: within Slack's limits and worded cleanly.
        if let Ok(json) = serde_json::from_str::<serde_json::Value>(&answer.body) {
            let mut found: Vec<String> = standin::limits::refusal(&json).map(str::to_owned).into_iter().collect();
            found.extend(standin::limits::message_defects(&json));
            let mut defects = self.answer_defects.lock().unwrap();
            defects.extend(found.into_iter().map(|d| format!("the answer to /aurora {text}: {d}")));
        }
        (answer, url)
    }

    /// Clicks Approve (or Deny) on request `id`'s message as `user`; returns the click's response_url.
    /// The first answer posted to `url` whose text contains `needle`, waited for up to `WAIT`.
    pub async fn answer_containing(&self, url: &str, needle: &str) -> Option<String> {
        self.slack
            .wait_for(WAIT, |_| {
                self.slack
                    .responses_to(url)
                    .iter()
                    .map(|r| r.text().to_owned())
                    .find(|t| t.contains(needle))
            })
            .await
    }

    pub async fn click(&self, user: &str, id: i64, approve: bool) -> String {
        let ts = self.request_message(id).await.ts.unwrap();
        let url = self.slack.response_url();
        let action = if approve { "approve" } else { "deny" };
        let answer = match &self.socket {
            Some(sm) => {
                let envelope = sm.click(user, CHANNEL, &ts, action, &id.to_string(), &url).await;
                socket_answer(sm.wait_ack(&envelope, WAIT).await)
            }
            None => {
                self.sender
                    .click(user, CHANNEL, &ts, action, &id.to_string(), &url, self.now())
                    .await
            }
        };
        assert_eq!(answer.status, 200, "a click is answered 200: {answer:?}");
        url
    }

    /// All the text of the first answer posted to `url` (its fallback text and its blocks' texts),
    /// waiting for it.
    pub async fn answer_at(&self, url: &str) -> String {
        self.slack
            .wait_for(WAIT, |_| self.slack.responses_to(url).first().map(all_text))
            .await
            .unwrap_or_else(|| panic!("no answer at {url}"))
    }

    /// Waits for every post of a status answer at `url` (one, or as many as the first says: "(part 1
    /// of n)"); returns the number of posts. A status answer is posted directly, not through the
    /// outbox, so `slack_settled` does not wait for it.
    pub async fn whole_status_answer(&self, url: &str) -> usize {
        self.answer_at(url).await;
        let first = self.slack.responses_to(url)[0].text().to_owned();
        let n = first
            .rsplit_once("(part 1 of ")
            .and_then(|(_, rest)| rest.trim_end_matches(')').parse::<usize>().ok())
            .unwrap_or(1);
        self.slack
            .wait_for(WAIT, |_| (self.slack.responses_to(url).len() >= n).then_some(()))
            .await
            .unwrap_or_else(|| panic!("{n} posts expected at {url}"));
        n
    }

    /// Requests a detach of `orders` as ALICE and waits for the approval message; returns the id.
    pub async fn request(&self) -> i64 {
        self.request_with("--mode detach").await
    }

    /// Requests a failover of `orders` with `args` as ALICE and waits for the approval message; returns
    /// the id.
    pub async fn request_with(&self, args: &str) -> i64 {
        let (answer, _) = self.command(ALICE, &format!("failover orders {args}")).await;
        assert_eq!(answer.status, 200);
        let text = answer.text();
        let id: i64 = text
            .strip_prefix("Request #")
            .and_then(|t| t.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("not accepted: {text}"));
        self.request_message(id).await;
        id
    }

    /// The approval request message of request `id`, once posted.
    pub async fn request_message(&self, id: i64) -> Recorded {
        let mut message = None;
        for _ in 0..(WAIT.as_millis() / 20) {
            if let Some(r) = self.store.request(id.into()).await.unwrap()
                && let Some(m) = r.message
                && let Some(item) = self.store.outbox_item(m).await.unwrap()
                && let Some(ts) = item.delivered_ts
            {
                message = self
                    .slack
                    .delivered("chat.postMessage")
                    .into_iter()
                    .find(|c| c.ts.as_deref() == Some(ts.as_str()));
                if message.is_some() {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        message.unwrap_or_else(|| panic!("request #{id}'s message was not posted"))
    }

    pub async fn request_state(&self, id: i64) -> Request {
        self.store.request(id.into()).await.unwrap().unwrap()
    }

    /// Waits for request `id`'s run to end.
    pub async fn finished_run(&self, id: i64, timeout: Duration) -> Run {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(run) = self.store.run_of_request(id.into()).await.unwrap()
                && run.state != RunState::Running
                && self.outcome_queued(&run).await
            {
                return run;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "run of #{id} did not finish in {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether the reply that tells how `run` ended (or that it needs attention) is queued: it is queued
    /// right after the store records the end (it must not be told before the compare-and-set that
    /// makes it true wins), so a test that saw the end may look a moment too early.
    async fn outcome_queued(&self, run: &Run) -> bool {
        let key = match run.state {
            RunState::Succeeded => format!("run:{}:completed", run.id),
            RunState::Failed => format!("run:{}:failed", run.id),
            RunState::Abandoned => format!("run:{}:abandoned", run.id),
            RunState::NeedsAttention => format!("run:{}:attention:", run.id),
            RunState::Running => return false,
        };
        self.store
            .outbox_all()
            .await
            .unwrap()
            .iter()
            .any(|i| i.dedup_key.as_deref().is_some_and(|k| k.starts_with(&key)))
    }

    /// Waits until everything queued for Slack has been delivered (or given up).
    pub async fn slack_settled(&self) {
        for _ in 0..(WAIT.as_millis() / 20) {
            if self
                .store
                .outbox_all()
                .await
                .unwrap()
                .iter()
                .all(|i| i.state != "pending")
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the outbox did not drain");
    }

    /// The replies in the thread of message `ts`, as they read now (see [`thread_now`]).
    pub fn thread(&self, ts: &str) -> Vec<Recorded> {
        thread_now(&self.slack, ts)
    }

    /// The chat.postMessage calls that posted a reply in the thread of message `ts`, as posted.
    pub fn thread_posts(&self, ts: &str) -> Vec<Recorded> {
        thread_posts(&self.slack, ts)
    }

    /// The updates of message `ts`, in delivery order.
    pub fn updates(&self, ts: &str) -> Vec<Recorded> {
        self.slack
            .delivered("chat.update")
            .into_iter()
            .filter(|c| c.field("ts") == Some(ts))
            .collect()
    }

    pub fn writer_cname(&self) -> String {
        self.sim.admin().record(ZONE, WRITER_RECORD, "CNAME").unwrap().values[0].clone()
    }

    pub fn reader_cname(&self) -> String {
        self.sim.admin().record(ZONE, READER_RECORD, "CNAME").unwrap().values[0].clone()
    }

    pub fn endpoints(&self, region: &str, cluster: &str) -> (String, String) {
        let c = self.sim.admin().cluster(region, cluster).unwrap();
        (c.endpoint, c.reader_endpoint)
    }

    /// An RDS client pointed at the emulator, for doing things "by hand" behind the bot's back.
    pub async fn rds(&self, region: &str) -> aws_sdk_rds::Client {
        rds_client(self.sim.url(), region).await
    }

    /// Points the writer CNAME at `value` "by hand", through Route 53's API behind the bot's back.
    pub async fn repoint_writer_cname(&self, value: &str) {
        use aws_sdk_route53::types::{Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType};
        let config = aurora_failover_bot::aws::load_config(&AwsOverrides {
            endpoint_url: Some(self.sim.url().to_owned()),
            static_credentials: true,
            max_attempts: Some(1),
            attempt_timeout: None,
        })
        .await;
        let record = ResourceRecordSet::builder()
            .name(WRITER_RECORD)
            .r#type(RrType::Cname)
            .ttl(1)
            .resource_records(ResourceRecord::builder().value(value).build().unwrap())
            .build()
            .unwrap();
        let change = Change::builder()
            .action(ChangeAction::Upsert)
            .resource_record_set(record)
            .build()
            .unwrap();
        aws_sdk_route53::Client::new(&config)
            .change_resource_record_sets()
            .hosted_zone_id(ZONE)
            .change_batch(ChangeBatch::builder().changes(change).build().unwrap())
            .send()
            .await
            .unwrap();
    }

    pub async fn pending(&self) -> Vec<Request> {
        let listed = self.store.requests_in(RequestState::Pending).await.unwrap();
        listed.into_iter().map(|r| r.unwrap()).collect()
    }
}

impl TestBot {
    /// Every message the bot sent so far is within Slack's limits (the stand-in refused none) and
    /// reads cleanly: no two spaces inside a sentence, no doubled punctuation, no empty section or
    /// fallback text. `Drop` checks it at the end of every test.
    pub fn assert_wording(&self) {
        let mut defects = self.slack.wording_defects();
        defects.extend(self.answer_defects.lock().unwrap().iter().cloned());
        assert!(
            defects.is_empty(),
            "messages break Slack's rules or read badly:\n{}",
            defects.join("\n")
        );
    }
}

impl Drop for TestBot {
    fn drop(&mut self) {
        self.shutdown.cancel();
        self.slack.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
        if !std::thread::panicking() {
            self.assert_wording();
        }
    }
}

/// Waits until request `id`'s run is at `step` (its next step to run).
pub async fn wait_for_step(bot: &TestBot, id: i64, step: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while bot
        .store
        .run_of_request(id.into())
        .await
        .unwrap()
        .is_none_or(|r| r.step != step)
    {
        assert!(tokio::time::Instant::now() < deadline, "the run did not reach {step}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The texts of the replies in the thread of message `ts`, in delivery order.
pub fn thread_texts(bot: &TestBot, ts: &str) -> Vec<String> {
    bot.thread(ts).iter().map(|r| r.text().to_owned()).collect()
}

/// Whether a message has buttons.
pub fn has_buttons(r: &Recorded) -> bool {
    r.body.get("blocks").and_then(|b| b.as_array()).is_some_and(|blocks| {
        blocks
            .iter()
            .any(|b| b.get("type").and_then(|t| t.as_str()) == Some("actions"))
    })
}

/// All the text of a message: its fallback text and every block's text.
pub fn all_text(r: &Recorded) -> String {
    let mut out = r.text().to_owned();
    for b in r.body.get("blocks").and_then(|b| b.as_array()).into_iter().flatten() {
        if let Some(t) = b.pointer("/text/text").and_then(|t| t.as_str()) {
            out.push('\n');
            out.push_str(t);
        }
        for e in b.get("elements").and_then(|e| e.as_array()).into_iter().flatten() {
            if let Some(t) = e.get("text").and_then(|t| t.as_str()) {
                out.push('\n');
                out.push_str(t);
            }
        }
    }
    out
}

/// The chat.postMessage calls that posted a reply in the thread of message `ts`, as posted.
pub fn thread_posts(slack: &SlackStandIn, ts: &str) -> Vec<Recorded> {
    slack
        .delivered("chat.postMessage")
        .into_iter()
        .filter(|c| c.thread_ts() == Some(ts))
        .collect()
}

/// The replies in the thread of message `ts`, in the order they were posted, each as a person reads it
/// now: with the body of its latest chat.update, if any (the bot edits a step's reply in place).
pub fn thread_now(slack: &SlackStandIn, ts: &str) -> Vec<Recorded> {
    let updates = slack.delivered("chat.update");
    thread_posts(slack, ts)
        .into_iter()
        .map(|mut reply| {
            let latest = updates
                .iter()
                .rev()
                .find(|u| u.field("ts").is_some() && u.field("ts") == reply.ts.as_deref());
            if let Some(u) = latest {
                let thread_ts = reply.body.get("thread_ts").cloned();
                reply.body = u.body.clone();
                if let (Some(t), Some(body)) = (thread_ts, reply.body.as_object_mut()) {
                    body.insert("thread_ts".into(), t);
                }
            }
            reply
        })
        .collect()
}

/// Runs the binary with `args` against the emulator at `sim_url`, as `serve` runs in production (the
/// standard SDK chain, pointed at the emulator by `AWS_ENDPOINT_URL`), without blocking the runtime
/// the emulator runs on, with the environment variables `env` set too. Returns the exit code, stdout
/// and stderr.
pub async fn run_binary(sim_url: &str, args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_aurora-failover-bot"))
        .args(args)
        .env("AWS_ENDPOINT_URL", sim_url)
        .env("AWS_ACCESS_KEY_ID", "AKIDTEST")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .env_remove("SLACK_SIGNING_SECRET")
        .env_remove("SLACK_BOT_TOKEN")
        .envs(env.iter().copied())
        .output()
        .await
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

/// Polls `probe` every `every` until it gives a value (at most a minute: then the test fails naming
/// `what`).
pub async fn poll_until<T>(what: &str, every: Duration, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(every).await;
    }
}

/// The replies a detach run leaves in its thread, in order, each once.
pub const DETACH_THREAD: [&str; 8] = [
    "Approved by <@U0BOB>",
    "*Re-check the topology* (",
    "*Detach and promote the target* (",
    "*Wait until the target is writable* (",
    "*Repoint the CNAMEs* (",
    "*Wait for Route 53 INSYNC* (",
    "*Verify the records* (",
    "*Failover complete*",
];

/// Asserts that `thread` (reply texts) has each of `expected` exactly once, in that order, and no
/// reply twice.
pub fn assert_once_in_order(thread: &[String], expected: &[&str]) {
    let mut last = None;
    for e in expected {
        let at: Vec<usize> = thread
            .iter()
            .enumerate()
            .filter(|(_, t)| t.contains(e))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(at.len(), 1, "{e:?} appears {} times in {thread:#?}", at.len());
        assert!(last < Some(at[0]), "{e:?} is out of order in {thread:#?}");
        last = Some(at[0]);
    }
    let mut seen = std::collections::HashSet::new();
    for t in thread {
        assert!(seen.insert(t), "duplicate reply {t:?} in {thread:#?}");
    }
}
