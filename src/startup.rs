//! Builds the bot from its `Settings`: resolves the Slack secrets, opens the store, makes the AWS and
//! Slack adapters, wires the engine, binds the listener. `Application::build` returns something tests
//! can spawn on port 0; `run_until_stopped` serves until the shutdown token is cancelled.

use crate::approval::{Approvals, Launcher};
use crate::aws::counted::Counted;
use crate::aws::{self, AwsOverrides};
use crate::commands::SlackState;
use crate::health::Health;
use crate::http as routes;
use crate::ports::{Clock, SystemClock};
use crate::runbook::Runner;
use crate::settings::{SecretKind, Settings, clean_secret};
use crate::slack::chat::SlackChat;
use crate::slack::client::SlackApi;
use crate::slack::directory::SlackDirectory;
use crate::slack::outbox::Outbox;
use crate::slack::verify::Verifier;
use crate::slack::workspace::Binding;
use crate::store::{SqliteStore, Store};
use crate::telemetry::Telemetry;
use crate::types::Secret;
use anyhow::Context;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;

/// How often pending requests are checked for expiry.
const EXPIRY_TICK: Duration = Duration::from_secs(1);
/// How long shutdown waits for work in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Looks up an environment variable.
pub type EnvLookup = dyn Fn(&str) -> Option<String> + Send + Sync;

/// What the environment provides besides the config file; tests and the demo replace parts of it.
pub struct Deps {
    pub aws: AwsOverrides,
    pub clock: Arc<dyn Clock>,
    /// Looks up an environment variable (SLACK_SIGNING_SECRET, SLACK_BOT_TOKEN).
    pub env: Box<EnvLookup>,
}

impl Default for Deps {
    fn default() -> Self {
        Deps {
            aws: AwsOverrides::default(),
            clock: Arc::new(SystemClock),
            env: Box::new(|k| std::env::var(k).ok().filter(|v| !v.is_empty())),
        }
    }
}

/// The two Slack secrets, wherever they came from.
pub struct SlackSecrets {
    pub signing_secret: Secret,
    pub bot_token: Secret,
}

/// Where a Slack secret was found, for messages.
#[derive(Debug, Clone, Copy)]
enum Source {
    Environment(&'static str),
    SecretsManager,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Environment(var) => write!(f, "{var}"),
            Source::SecretsManager => f.write_str("the secret named by slack.secret_id"),
        }
    }
}

/// Checks a secret found in `source` (the file's were checked when the file was read): trimmed, and
/// refused naming the key and the source when malformed. Never logs or returns the value.
fn checked(key: &str, kind: SecretKind, source: Source, value: &str) -> anyhow::Result<Secret> {
    let (secret, trimmed) =
        clean_secret(kind, value).map_err(|why| anyhow::anyhow!("config key {key}: the value from {source} {why}"))?;
    if trimmed {
        info!(key, %source, "surrounding whitespace trimmed from a Slack secret");
    }
    Ok(secret)
}

/// Resolves the Slack secrets: the config file, then the environment, then Secrets Manager. Each is
/// trimmed and checked (`settings::clean_secret`); errors name the key, the source and the reason,
/// never a value.
pub async fn resolve_secrets(
    settings: &Settings,
    aws_config: &aws_config::SdkConfig,
    env: &EnvLookup,
) -> anyhow::Result<SlackSecrets> {
    for key in &settings.slack.trimmed {
        info!(
            key,
            source = "the config file",
            "surrounding whitespace trimmed from a Slack secret"
        );
    }
    let from_env = |var: &'static str, key: &str, kind: SecretKind| {
        env(var)
            .map(|v| checked(key, kind, Source::Environment(var), &v))
            .transpose()
    };
    let mut signing = match settings.slack.signing_secret.clone() {
        Some(s) => Some(s),
        None => from_env("SLACK_SIGNING_SECRET", SIGNING, SecretKind::SigningSecret)?,
    };
    let mut token = match settings.slack.bot_token.clone() {
        Some(t) => Some(t),
        None => from_env("SLACK_BOT_TOKEN", TOKEN, SecretKind::BotToken)?,
    };
    if (signing.is_none() || token.is_none())
        && let Some(id) = &settings.slack.secret_id
    {
        let region = settings.slack.secret_region.as_ref().map(|r| r.as_str());
        let found = aws::secrets::load(aws_config, id, region)
            .await
            .map_err(|e| anyhow::anyhow!("config key slack.secret_id: {e}"))?;
        let from_manager = |key: &str, kind: SecretKind, value: Option<Secret>| {
            value
                .map(|v| checked(key, kind, Source::SecretsManager, v.expose()))
                .transpose()
        };
        if signing.is_none() {
            signing = from_manager(SIGNING, SecretKind::SigningSecret, found.signing_secret)?;
        }
        if token.is_none() {
            token = from_manager(TOKEN, SecretKind::BotToken, found.bot_token)?;
        }
    }
    Ok(SlackSecrets {
        signing_secret: required(SIGNING, "SLACK_SIGNING_SECRET", signing)?,
        bot_token: required(TOKEN, "SLACK_BOT_TOKEN", token)?,
    })
}

const SIGNING: &str = "slack.signing_secret";
const TOKEN: &str = "slack.bot_token";

/// A secret found somewhere, or an error naming where it may be given.
fn required(key: &str, var: &str, secret: Option<Secret>) -> anyhow::Result<Secret> {
    secret.ok_or_else(|| {
        anyhow::anyhow!(
            "config key {key}: not set. Give it in the file, in {var}, or in the secret named by slack.secret_id"
        )
    })
}

/// Takes an exclusive lock on `<store>.lock`, so that a second bot on the same store (a rolling deploy
/// on a shared volume, say) refuses to start instead of running every run a second time. The lock is
/// the operating system's: it goes away with the process, however it dies.
fn lock_store(path: &std::path::Path) -> anyhow::Result<std::fs::File> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| {
            format!(
                "config key store.path: cannot create {}",
                std::path::Path::new(&lock_path).display()
            )
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "config key store.path: another aurora-failover-bot is using {} (it holds {}); stop it first",
            path.display(),
            std::path::Path::new(&lock_path).display()
        ),
        Err(std::fs::TryLockError::Error(e)) => Err(e).with_context(|| {
            format!(
                "config key store.path: cannot lock {}",
                std::path::Path::new(&lock_path).display()
            )
        }),
    }
}

/// Asks `auth.test` which workspace (and Enterprise Grid organisation) the bot token belongs to, at
/// every start: it learns them where `slack.team_id` / `slack.enterprise_id` are not configured, and
/// checks a configured workspace against the token's (a mismatch would refuse every request). Until
/// the workspace is known inbound Slack requests are refused; `/readyz` says why. Retries with backoff:
/// up to a minute, starting at 5 s when Slack refuses the token (someone has to fix it first).
async fn learn_workspace(api: Arc<SlackApi>, binding: Arc<Binding>, health: Arc<Health>, stop: CancellationToken) {
    use crate::slack::client::SendError;
    let mut pause = Duration::from_secs(1);
    let mut refused = false;
    loop {
        match api.auth_test().await {
            Ok(auth) => {
                let missing = auth.missing_scopes();
                if !missing.is_empty() {
                    tracing::error!(
                        missing = %missing.join(", "),
                        "the bot token lacks scopes the bot uses: add them under OAuth & Permissions (manifest.yml lists \
                         every scope and why) and reinstall the app. Until then the calls that need them fail (without \
                         the history scopes, a message whose post was cut short may be posted twice)"
                    );
                }
                binding.learn(&auth.team_id, auth.enterprise_id.as_deref());
                match binding.team_id() {
                    Some(configured) if configured != auth.team_id => {
                        let problem = format!(
                            "slack.team_id is {configured}, but the bot token belongs to workspace {}: every Slack \
                             request is refused. Fix slack.team_id (or the token)",
                            auth.team_id
                        );
                        tracing::error!(%problem, "the bot's workspace does not match its token");
                        health.report(crate::health::SLACK_WORKSPACE, problem);
                    }
                    _ => {
                        health.clear(crate::health::SLACK_WORKSPACE);
                        info!(team_id = %auth.team_id, enterprise_id = ?auth.enterprise_id, "the bot's Slack workspace, from auth.test");
                    }
                }
                return;
            }
            Err(SendError::Auth(problem)) => {
                if health.report(crate::health::SLACK_WORKSPACE, format!("auth.test refused: {problem}")) {
                    tracing::error!(%problem, "auth.test refuses the bot token: fix it; inbound Slack requests are refused until the workspace is known");
                }
                pause = if refused {
                    (pause * 2).min(Duration::from_secs(60))
                } else {
                    Duration::from_secs(5)
                };
                refused = true;
            }
            Err(e) => {
                tracing::warn!(error = %e, "auth.test failed; trying again");
                pause = (pause * 2).min(Duration::from_secs(60));
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
    }
}

/// How often the replay table is pruned, and how many rows one statement deletes at most.
const PRUNE_EVERY: Duration = Duration::from_secs(30);
const PRUNE_BATCH: usize = 1_000;
/// How long a response_url's record is kept (Slack honours one for 30 minutes; an answer still queued
/// after that goes another way, which needs the record).
const RESPONSE_URL_KEPT: jiff::SignedDuration = jiff::SignedDuration::from_hours(24);

/// Forgets the signatures of Slack requests old enough for the timestamp window to refuse them, in
/// bounded batches, off the request path.
async fn forget_old_requests(store: Arc<dyn Store>, clock: Arc<dyn Clock>, stop: CancellationToken) {
    loop {
        let before = clock.now() - jiff::SignedDuration::from_secs(2 * crate::slack::verify::WINDOW_SECS);
        loop {
            match store.forget_requests_before(before, PRUNE_BATCH).await {
                Ok(n) if n == PRUNE_BATCH => tokio::task::yield_now().await,
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot prune the replay table");
                    break;
                }
            }
        }
        let before = clock.now() - RESPONSE_URL_KEPT;
        loop {
            match store.forget_response_urls_before(before, PRUNE_BATCH).await {
                Ok(n) if n == PRUNE_BATCH => tokio::task::yield_now().await,
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot prune the response_urls");
                    break;
                }
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(PRUNE_EVERY) => {}
        }
    }
}

/// The bot, built and bound, not yet serving.
pub struct Application {
    listener: TcpListener,
    port: u16,
    router: axum::Router,
    limits: crate::server::Limits,
    api: Arc<SlackApi>,
    binding: Arc<Binding>,
    health: Arc<Health>,
    approvals: Approvals,
    outbox: Arc<Outbox>,
    state: Arc<SlackState>,
    /// Tells runs to stop at their next pause (their state is saved; they resume at the next start).
    runs_shutdown: CancellationToken,
    /// Held for the application's life: one bot process per store (two would both run every run).
    _lock: std::fs::File,
    pub store: Arc<dyn Store>,
}

/// The AWS side of the engine's ports, on one SDK configuration.
struct AwsPorts {
    aurora: Arc<dyn crate::ports::Aurora>,
    dns: Arc<dyn crate::ports::Dns>,
    metrics: Arc<dyn crate::ports::Metrics>,
    permissions: Arc<dyn crate::ports::Permissions>,
}

impl AwsPorts {
    /// The adapters, their failed calls counted in `telemetry`.
    fn new(config: &aws_config::SdkConfig, telemetry: &Arc<Telemetry>) -> AwsPorts {
        AwsPorts {
            aurora: Arc::new(Counted::new(
                aws::rds::RdsAurora::new(config.clone()),
                telemetry.clone(),
            )),
            dns: Arc::new(Counted::new(aws::route53::Route53Dns::new(config), telemetry.clone())),
            metrics: Arc::new(Counted::new(
                aws::cloudwatch::CloudWatchMetrics::new(config.clone()),
                telemetry.clone(),
            )),
            permissions: Arc::new(aws::iam::IamPermissions::new(config)),
        }
    }
}

/// Takes the store's lock, then opens (and migrates) the store.
fn open_store(settings: &Settings) -> anyhow::Result<(std::fs::File, Arc<dyn Store>)> {
    let path = &settings.store.path;
    if path.is_dir() {
        anyhow::bail!(
            "config key store.path: {} is a directory; name a file in it",
            path.display()
        );
    }
    let lock = lock_store(path)?;
    let store = SqliteStore::open(&settings.store.path)
        .with_context(|| format!("config key store.path: cannot open {}", settings.store.path.display()))?;
    Ok((lock, Arc::new(store)))
}

/// The engine: the runner and the approvals that launch it. Returns them with the token that tells
/// runs to stop at their next pause.
fn engine(
    settings: &Arc<Settings>,
    store: &Arc<dyn Store>,
    aws: &AwsPorts,
    chat: Arc<SlackChat>,
    api: &Arc<SlackApi>,
    clock: &Arc<dyn Clock>,
    telemetry: &Arc<Telemetry>,
) -> (Approvals, CancellationToken) {
    let runs_shutdown = CancellationToken::new();
    let runner = Arc::new(Runner {
        store: store.clone(),
        aurora: aws.aurora.clone(),
        dns: aws.dns.clone(),
        metrics: aws.metrics.clone(),
        permissions: aws.permissions.clone(),
        chat: chat.clone(),
        clock: clock.clone(),
        settings: settings.runbook,
        shutdown: runs_shutdown.clone(),
        aborts: Default::default(),
        in_flight: Default::default(),
        telemetry: telemetry.clone(),
    });
    let approvals = Approvals {
        settings: settings.clone(),
        store: store.clone(),
        aurora: aws.aurora.clone(),
        dns: aws.dns.clone(),
        metrics: aws.metrics.clone(),
        permissions: aws.permissions.clone(),
        chat,
        directory: Arc::new(SlackDirectory::new(api.clone())),
        clock: clock.clone(),
        launcher: Launcher {
            runner,
            tracker: TaskTracker::new(),
        },
    };
    (approvals, runs_shutdown)
}

/// Binds the listener, with the connection limits the descriptor limit allows.
async fn listen(settings: &Settings) -> anyhow::Result<(TcpListener, crate::server::Limits)> {
    let nofile = crate::server::raise_descriptor_limit();
    let limits = crate::server::Limits::resolve(&settings.server, nofile);
    info!(
        descriptors = nofile,
        max_connections = limits.max_connections,
        "connection limits"
    );
    let listener = TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("config key listen: cannot listen on {}", settings.listen))?;
    Ok((listener, limits))
}

impl Application {
    /// Builds the bot from `settings`: secrets, store, adapters, engine, listener (see the module doc).
    /// Errors name the config key and the reason, never a secret.
    pub async fn build(settings: Settings, deps: Deps) -> anyhow::Result<Application> {
        let settings = Arc::new(settings);
        let aws_config = aws::load_config(&deps.aws).await;
        let secrets = resolve_secrets(&settings, &aws_config, deps.env.as_ref()).await?;
        let (lock, store) = open_store(&settings)?;
        let api =
            SlackApi::new(&settings.slack.api_url, &secrets.bot_token).context("cannot build the Slack client")?;
        let api = Arc::new(api);
        let telemetry = Arc::new(Telemetry::new());
        let aws = AwsPorts::new(&aws_config, &telemetry);
        let wake = Arc::new(Notify::new());
        let chat = Arc::new(SlackChat {
            store: store.clone(),
            clock: deps.clock.clone(),
            channel: settings.slack.incident_channel.clone(),
            approvers: settings.approval.approvers.clone(),
            wake: wake.clone(),
        });
        let (approvals, runs_shutdown) = engine(&settings, &store, &aws, chat.clone(), &api, &deps.clock, &telemetry);
        let health = Arc::new(Health::default());
        let outbox = Arc::new(Outbox {
            store: store.clone(),
            api: api.clone(),
            clock: deps.clock.clone(),
            wake,
            unrecorded: Default::default(),
            health: health.clone(),
            blocked: Default::default(),
            store_id: store.store_id().await.context("cannot read the store's identity")?,
            backed_off: Default::default(),
            telemetry,
        });
        let slack = &settings.slack;
        let binding = Arc::new(Binding::new(
            slack.team_id.clone(),
            slack.app_id.clone(),
            slack.enterprise_id.clone(),
        ));
        let state = Arc::new(SlackState {
            verifier: Verifier::new(vec![secrets.signing_secret]),
            binding: binding.clone(),
            health: health.clone(),
            clock: deps.clock.clone(),
            settings: settings.clone(),
            approvals: approvals.clone(),
            chat,
            surveyor: Arc::new(crate::status::Surveyor::new(
                aws.aurora.clone(),
                aws.metrics.clone(),
                aws.dns.clone(),
            )),
            aurora: aws.aurora,
            metrics: aws.metrics,
            dns: aws.dns,
            tasks: TaskTracker::new(),
        });
        let router = routes::router(state.clone());
        let (listener, limits) = listen(&settings).await?;
        let port = listener.local_addr()?.port();
        Ok(Application {
            listener,
            port,
            router,
            limits,
            api,
            binding,
            health,
            approvals,
            outbox,
            state,
            runs_shutdown,
            _lock: lock,
            store,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until `shutdown` is cancelled, then stops taking requests and gives work in flight a
    /// bounded time to finish. Runs not finished by then resume at the next start.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        info!(port = self.port, "serving");
        self.approvals.resume().await;
        let background = TaskTracker::new();
        background.spawn(self.outbox.clone().run(shutdown.clone()));
        {
            // Reported before the task is spawned (and before serving), so that `/readyz` never says
            // ready while the workspace is unknown.
            if self.binding.team_id().is_none() {
                self.health.report(
                    crate::health::SLACK_WORKSPACE,
                    "not known yet: slack.team_id is not set and auth.test has not answered",
                );
            }
            background.spawn(learn_workspace(
                self.api.clone(),
                self.binding.clone(),
                self.health.clone(),
                shutdown.clone(),
            ));
        }
        background.spawn(forget_old_requests(
            self.store.clone(),
            self.approvals.clock.clone(),
            shutdown.clone(),
        ));
        let approvals = self.approvals.clone();
        let stop = shutdown.clone();
        background.spawn(async move { approvals.expire_every(EXPIRY_TICK, stop).await });
        crate::server::serve(self.listener, self.router, self.limits, shutdown.clone()).await;
        info!("stopped taking requests");
        self.runs_shutdown.cancel();
        self.state.tasks.close();
        self.approvals.launcher.tracker.close();
        background.close();
        let finished = tokio::time::timeout(SHUTDOWN_GRACE, async {
            self.approvals.launcher.tracker.wait().await;
            self.state.tasks.wait().await;
            background.wait().await;
        })
        .await;
        if finished.is_err() {
            tracing::warn!(
                "work in flight did not stop within {SHUTDOWN_GRACE:?}; runs resume from their last checkpoint at the next start"
            );
        }
        // Deliver what is already queued, briefly, so the thread is as complete as it can be.
        let _ = tokio::time::timeout(Duration::from_secs(2), self.outbox.deliver_due()).await;
        Ok(())
    }
}
