//! The real bot as a child process (`serve --config`), for the tests that kill, stop or limit it.

use super::*;
use aurora_failover_bot::store::{SqliteStore, Store};
use standin::Secret;
use standin::{SlackSender, SlackStandIn};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The real bot as a child process, on a fixed port and database so that it can be restarted.
pub struct BotProcess {
    child: Option<Child>,
    /// The limit on open descriptors (soft and hard) the process starts with, if any.
    pub nofile: Option<u64>,
    /// More arguments after `serve --config PATH` (e.g. `--log-format json`).
    pub args: Vec<String>,
    /// `RUST_LOG` for the process (`info` unless a test asks for more).
    pub rust_log: String,
    /// The signing secret `sender` signs with (the config's).
    signing_secret: String,
    config: std::path::PathBuf,
    db: std::path::PathBuf,
    pub port: u16,
    sim_url: String,
    log: std::path::PathBuf,
    /// More environment (`Options::env`), set after the defaults (so it may replace them).
    pub env: Vec<(String, String)>,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl BotProcess {
    pub fn new(sim: &awsim::Awsim, slack: &SlackStandIn, dir: &std::path::Path, options: &Options) -> BotProcess {
        let port = free_port();
        let db = dir.join("bot.db");
        let config = dir.join("config.toml");
        let toml = config_toml(&slack.api_url(), &db, options).replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
        std::fs::write(&config, toml).unwrap();
        BotProcess {
            child: None,
            nofile: None,
            args: Vec::new(),
            rust_log: "info".into(),
            signing_secret: SIGNING_SECRET.into(),
            config,
            db,
            port,
            sim_url: sim.url().to_owned(),
            log: dir.join("bot.log"),
            env: options.env.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect(),
        }
    }

    pub async fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_aurora-failover-bot"));
        if let Some(n) = self.nofile {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe, and the closure allocates nothing.
            unsafe {
                command.pre_exec(move || rlimit::setrlimit(rlimit::Resource::NOFILE, n, n));
            }
        }
        let child = command
            .args(["serve", "--config"])
            .arg(&self.config)
            .args(&self.args)
            .env("AWS_ENDPOINT_URL", &self.sim_url)
            .env("AWS_ACCESS_KEY_ID", "AKIDTEST")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env_remove("AWS_PROFILE")
            .env("RUST_LOG", &self.rust_log)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        self.child = Some(child);
        let url = format!("http://127.0.0.1:{}/healthz", self.port);
        let deadline = Instant::now() + WAIT;
        loop {
            if reqwest::get(&url).await.is_ok_and(|r| r.status() == 200) {
                wait_ready(self.port).await;
                return;
            }
            assert!(Instant::now() < deadline, "the bot did not start: {}", self.log_text());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Gives the bot (in its config file) and `sender` these secrets instead of the test constants.
    pub fn use_secrets(&mut self, signing_secret: &str, bot_token: &str) {
        let toml = std::fs::read_to_string(&self.config).unwrap();
        let toml = toml
            .replace(
                &format!("signing_secret = \"{SIGNING_SECRET}\""),
                &format!("signing_secret = \"{signing_secret}\""),
            )
            .replace(
                &format!("bot_token = \"{BOT_TOKEN}\""),
                &format!("bot_token = \"{bot_token}\""),
            );
        std::fs::write(&self.config, toml).unwrap();
        self.signing_secret = signing_secret.to_owned();
    }

    /// The config file's path.
    pub fn config_path(&self) -> &std::path::Path {
        &self.config
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends `signal` (`STOP`, `CONT`, ...) to the running process.
    pub fn signal(&self, signal: &str) {
        let pid = self.pid().expect("running");
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} {pid}");
    }

    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }

    /// SIGTERM; returns how long the bot took to exit, and its exit status. Waits without blocking the
    /// runtime: the emulator and the Slack stand-in the bot talks to while it stops run on it.
    pub async fn terminate(&mut self) -> (Duration, std::process::ExitStatus) {
        let mut child = self.child.take().expect("running");
        let started = Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = started + Duration::from_secs(30);
        loop {
            if let Some(exit) = child.try_wait().unwrap() {
                return (started.elapsed(), exit);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("the bot did not exit within 30 s of SIGTERM: {}", self.log_text());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn sender(&self) -> SlackSender {
        SlackSender::new(
            &format!("http://127.0.0.1:{}", self.port),
            &Secret::new(&self.signing_secret),
        )
    }

    /// A second connection to the bot's database (SQLite, WAL), for watching and for the checks.
    pub fn store(&self) -> Arc<dyn Store> {
        Arc::new(SqliteStore::open(&self.db).unwrap())
    }

    /// The ts of request `id`'s message, once its delivery is recorded.
    pub async fn message_ts(&self, id: i64) -> String {
        let store = self.store();
        poll_until("the request message", Duration::from_millis(20), async || {
            let r = store.request(id.into()).await.ok().flatten()?;
            store.outbox_item(r.message?).await.ok().flatten()?.delivered_ts
        })
        .await
    }

    /// BOB clicks Approve on request `id`'s message (`ts`); `slack` issues the click's response_url.
    pub async fn approve(&self, slack: &SlackStandIn, id: i64, ts: &str) {
        let url = slack.response_url();
        let now = jiff::Timestamp::now().as_second();
        let answer = self
            .sender()
            .click(BOB, CHANNEL, ts, "approve", &id.to_string(), &url, now)
            .await;
        assert_eq!(answer.status, 200);
    }

    /// Request `id`'s run's state once it is no longer running.
    pub async fn finished(&self, id: i64) -> aurora_failover_bot::store::RunState {
        use aurora_failover_bot::store::RunState;
        let store = self.store();
        poll_until("the run to finish", Duration::from_millis(20), async || {
            let run = store.run_of_request(id.into()).await.ok().flatten()?;
            (run.state != RunState::Running).then_some(run.state)
        })
        .await
    }

    /// Whether request `id`'s run journaled `event` at `step`.
    pub async fn journal_has(&self, id: i64, step: &str, event: &str) -> bool {
        let store = self.store();
        let Some(run) = store.run_of_request(id.into()).await.ok().flatten() else {
            return false;
        };
        store
            .journal_of(run.id)
            .await
            .unwrap()
            .iter()
            .any(|e| e.step == step && e.event == event)
    }
}

impl Drop for BotProcess {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
