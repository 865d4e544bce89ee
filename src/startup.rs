//! Builds the bot from its `Settings`: resolves the Slack secrets, opens the store, makes the AWS and
//! Slack adapters, wires the engine, binds the listener. `Application::build` returns something tests
//! can spawn on port 0; `run_until_stopped` serves until the shutdown token is cancelled, with the
//! background tasks: the outbox, expiry, learning the workspace, pruning, the readiness probes
//! (`probes`: store, AWS configuration, bot token) and the secret refresh (`rotation`).

mod probes;
mod rotation;

use crate::approval::{Approvals, Launcher};
use crate::aws::counted::Counted;
use crate::aws::{self, AwsOverrides};
use crate::commands::SlackState;
use crate::health::Health;
use crate::http as routes;
use crate::lease::{Instance, Leaseholder};
use crate::ports::{Clock, SystemClock};
use crate::runbook::{DatabaseCheck, Runner};
use crate::settings::{DynamoDbSettings, StoreBackend};
use crate::settings::{SecretKind, Settings, SlackMode, clean_secret};
use crate::slack::chat::SlackChat;
use crate::slack::client::SlackApi;
use crate::slack::directory::SlackDirectory;
use crate::slack::outbox::Outbox;
use crate::slack::socket::SocketClient;
use crate::slack::verify::Verifier;
use crate::slack::workspace::Binding;
use crate::store::{DynamoDbStore, SqliteStore, Store};
use crate::telemetry::Telemetry;
use crate::types::{Region, Secret};
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
    /// Replaces the AWS credentials provider the SDK configuration resolved (tests: a provider that
    /// fails on demand, to see `/readyz` report it). `None`: the resolved one.
    pub aws_credentials: Option<aws_credential_types::provider::SharedCredentialsProvider>,
}

impl Default for Deps {
    fn default() -> Self {
        Deps {
            aws: AwsOverrides::default(),
            clock: Arc::new(SystemClock),
            env: Box::new(|k| std::env::var(k).ok().filter(|v| !v.is_empty())),
            aws_credentials: None,
        }
    }
}

/// The two Slack secrets, wherever they came from.
pub struct SlackSecrets {
    pub signing_secret: Secret,
    pub bot_token: Secret,
    /// Whether the signing secret came from Secrets Manager (then it is re-read and rotated).
    pub signing_from_manager: bool,
    /// Whether the bot token came from Secrets Manager (then it is re-read and rotated).
    pub token_from_manager: bool,
    /// The app-level token (`xapp-`) of Socket Mode: `SLACK_APP_TOKEN`, else `app_token` in the
    /// secret named by `slack.secret_id`. Only looked for (and then required) in `slack.mode = "socket"`.
    pub app_token: Option<Secret>,
    /// Whether the app token came from Secrets Manager (then it is re-read and rotated).
    pub app_from_manager: bool,
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
    let socket = settings.slack.mode == SlackMode::Socket;
    let mut app = match socket {
        true => from_env("SLACK_APP_TOKEN", APP, SecretKind::AppToken)?,
        false => None,
    };
    let (signing_from_manager, token_from_manager) = (signing.is_none(), token.is_none());
    let app_from_manager = socket && app.is_none();
    if (signing.is_none() || token.is_none() || app_from_manager)
        && let Some(reader) = secret_reader(settings, aws_config)
    {
        let found = reader
            .read()
            .await
            .map_err(|e| anyhow::anyhow!("config key slack.secret_id: {e}"))?;
        if signing.is_none() {
            signing = from_manager(SIGNING, SecretKind::SigningSecret, found.signing_secret)?;
        }
        if token.is_none() {
            token = from_manager(TOKEN, SecretKind::BotToken, found.bot_token)?;
        }
        if app_from_manager {
            app = from_manager(APP, SecretKind::AppToken, found.app_token)?;
        }
    }
    Ok(SlackSecrets {
        signing_secret: required(SIGNING, "SLACK_SIGNING_SECRET", signing)?,
        bot_token: required(TOKEN, "SLACK_BOT_TOKEN", token)?,
        signing_from_manager,
        token_from_manager,
        app_token: match socket {
            true => Some(required_app_token(app)?),
            false => None,
        },
        app_from_manager,
    })
}

/// The app token Socket Mode needs, or an error naming where it may be given.
fn required_app_token(app: Option<Secret>) -> anyhow::Result<Secret> {
    app.ok_or_else(|| {
        anyhow::anyhow!(
            "config key {APP}: not set, and slack.mode is \"socket\". Give the app-level token (xapp-, scope \
             connections:write) in SLACK_APP_TOKEN or as app_token in the secret named by slack.secret_id"
        )
    })
}

/// The reader of `slack.secret_id`, when it is set.
fn secret_reader(settings: &Settings, aws_config: &aws_config::SdkConfig) -> Option<aws::secrets::SecretReader> {
    let id = settings.slack.secret_id.as_deref()?;
    let region = settings.slack.secret_region.as_ref().map(|r| r.as_str());
    Some(aws::secrets::SecretReader::new(aws_config, id, region))
}

/// A secret found in Secrets Manager, checked like one from the environment.
fn from_manager(key: &str, kind: SecretKind, value: Option<Secret>) -> anyhow::Result<Option<Secret>> {
    value
        .map(|v| checked(key, kind, Source::SecretsManager, v.expose()))
        .transpose()
}

const SIGNING: &str = "slack.signing_secret";
const TOKEN: &str = "slack.bot_token";
/// The app token's name in messages (it has no key in the file: `SLACK_APP_TOKEN` or the secret's
/// `app_token`).
const APP: &str = "slack.app_token";

/// A secret found somewhere, or an error naming where it may be given.
fn required(key: &str, var: &str, secret: Option<Secret>) -> anyhow::Result<Secret> {
    secret.ok_or_else(|| {
        anyhow::anyhow!(
            "config key {key}: not set. Give it in the file, in {var}, or in the secret named by slack.secret_id"
        )
    })
}

/// Another process holds the store's lock (a serving bot, or a break-glass run at a terminal).
#[derive(Debug, thiserror::Error)]
#[error("config key store.path: another aurora-failover-bot is using {} (it holds {}); stop it first", store.display(), lock.display())]
pub struct StoreLocked {
    pub store: std::path::PathBuf,
    pub lock: std::path::PathBuf,
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
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreLocked {
            store: path.to_owned(),
            lock: std::path::PathBuf::from(lock_path),
        }
        .into()),
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
                bind(&binding, &health, &auth);
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

/// What `auth.test` said of the bot token: scopes it lacks (logged), and its workspace, learned or
/// checked against the configured one (a mismatch is reported: every request would be refused).
fn bind(binding: &Binding, health: &Health, auth: &crate::slack::client::AuthInfo) {
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
            info!(team_id = %auth.team_id, enterprise_id = auth.enterprise_id.as_deref().unwrap_or("none"), "the bot's Slack workspace, from auth.test");
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
    binding: Arc<Binding>,
    state: Arc<SlackState>,
    /// The Socket Mode client, in `slack.mode = "socket"`.
    socket: Option<Arc<SocketClient>>,
    engine: Engine,
    pub store: Arc<dyn Store>,
}

/// The Slack secrets that came from Secrets Manager (the others are never re-read), and their reader.
struct Rotated {
    reader: aws::secrets::SecretReader,
    signing: Option<Secret>,
    token: Option<Secret>,
}

impl Rotated {
    fn of(settings: &Settings, aws_config: &aws_config::SdkConfig, secrets: &SlackSecrets) -> Option<Rotated> {
        if !secrets.signing_from_manager && !secrets.token_from_manager {
            return None;
        }
        Some(Rotated {
            reader: secret_reader(settings, aws_config)?,
            signing: secrets.signing_from_manager.then(|| secrets.signing_secret.clone()),
            token: secrets.token_from_manager.then(|| secrets.bot_token.clone()),
        })
    }
}

/// The AWS side of the engine's ports, on one SDK configuration.
struct AwsPorts {
    aurora: Arc<dyn crate::ports::Aurora>,
    provisioning: Arc<dyn crate::ports::Provisioning>,
    dns: Arc<dyn crate::ports::Dns>,
    metrics: Arc<dyn crate::ports::Metrics>,
    permissions: Arc<dyn crate::ports::Permissions>,
    /// The database probe, when `[probe]` is configured.
    database: Option<Arc<dyn crate::ports::DatabaseProbe>>,
}

impl AwsPorts {
    /// The adapters, their failed calls counted in `telemetry`.
    fn new(config: &aws_config::SdkConfig, telemetry: &Arc<Telemetry>) -> AwsPorts {
        AwsPorts {
            aurora: Arc::new(Counted::new(
                aws::rds::RdsAurora::new(config.clone()),
                telemetry.clone(),
            )),
            provisioning: Arc::new(Counted::new(
                aws::rds::RdsAurora::new(config.clone()),
                telemetry.clone(),
            )),
            dns: Arc::new(Counted::new(aws::route53::Route53Dns::new(config), telemetry.clone())),
            metrics: Arc::new(Counted::new(
                aws::cloudwatch::CloudWatchMetrics::new(config.clone()),
                telemetry.clone(),
            )),
            permissions: Arc::new(aws::iam::IamPermissions::new(config)),
            database: None,
        }
    }
}

/// The database probe when `[probe]` is configured; a CA bundle that cannot be read (or holds no
/// certificate) stops start-up, naming the key.
pub fn database_probe(
    settings: &Settings,
    aws_config: &aws_config::SdkConfig,
) -> anyhow::Result<Option<Arc<dyn crate::ports::DatabaseProbe>>> {
    let Some(probe) = &settings.probe else { return Ok(None) };
    let prober = crate::database::Prober::new(probe, aws_config)
        .map_err(|e| anyhow::anyhow!("config key probe.ca_bundle: {e}"))?;
    Ok(Some(Arc::new(prober)))
}

/// The workspace, app and organisation the configuration names (the rest is learned).
fn binding(slack: &crate::settings::SlackSettings) -> Binding {
    Binding::new(slack.team_id.clone(), slack.app_id.clone(), slack.enterprise_id.clone())
}

/// The AWS SDK configuration: the standard chain with `deps.aws`'s overrides, and `deps.aws_credentials`
/// as its credentials provider when given.
async fn aws_config(deps: &Deps) -> aws_config::SdkConfig {
    let config = aws::load_config(&deps.aws).await;
    match deps.aws_credentials.clone() {
        Some(provider) => config.into_builder().credentials_provider(provider).build(),
        None => config,
    }
}

/// Opens the store `settings` name: SQLite (locked, migrated) or DynamoDB (its table checked; no
/// local lock: several bots share it, see `store::DynamoDbStore`).
async fn open_store(
    settings: &Settings,
    aws_config: &aws_config::SdkConfig,
    env: &EnvLookup,
) -> anyhow::Result<(Option<std::fs::File>, Arc<dyn Store>)> {
    match &settings.store.backend {
        StoreBackend::Sqlite => {
            let (lock, store) = open_sqlite(settings)?;
            Ok((Some(lock), store))
        }
        StoreBackend::DynamoDb(d) => Ok((None, open_dynamodb(d, aws_config, env).await?)),
    }
}

/// The DynamoDB client of the store: the bot's AWS configuration, in `store.region` when given, at
/// `AWS_ENDPOINT_URL_DYNAMODB` when set (the SDK's own variable, looked up here so that it wins over
/// an endpoint given for every service).
pub fn dynamodb_client(
    aws_config: &aws_config::SdkConfig,
    region: Option<&crate::types::Region>,
    env: &EnvLookup,
) -> aws_sdk_dynamodb::Client {
    let mut conf = aws_sdk_dynamodb::config::Builder::from(aws_config);
    if let Some(r) = region {
        conf = conf.region(aws_sdk_dynamodb::config::Region::new(r.as_str().to_owned()));
    }
    if let Some(url) = env("AWS_ENDPOINT_URL_DYNAMODB") {
        conf = conf.endpoint_url(url);
    }
    aws_sdk_dynamodb::Client::from_conf(conf.build())
}

/// Opens the DynamoDB store, refusing a table of the wrong shape or kind (`store.table`).
async fn open_dynamodb(
    d: &DynamoDbSettings,
    aws_config: &aws_config::SdkConfig,
    env: &EnvLookup,
) -> anyhow::Result<Arc<dyn Store>> {
    let client = dynamodb_client(aws_config, d.region.as_ref(), env);
    let (store, warning) = DynamoDbStore::open(client, &d.table, d.single_instance).await?;
    if let Some(warning) = warning {
        tracing::warn!(table = %d.table, "{warning}");
    }
    Ok(Arc::new(store))
}

/// Takes the SQLite store's lock, then opens (and migrates) the store.
fn open_sqlite(settings: &Settings) -> anyhow::Result<(std::fs::File, Arc<dyn Store>)> {
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

/// Who this process is: `[instance]`, else the host's name and the SDK's Region.
fn instance(settings: &Settings, aws_config: &aws_config::SdkConfig) -> Instance {
    let name = settings.instance.name.clone().unwrap_or_else(|| {
        nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "aurora-failover-bot".to_owned())
    });
    let region = settings
        .instance
        .region
        .clone()
        .or_else(|| aws_config.region().and_then(|r| Region::parse(r.as_ref())));
    Instance::new(&name, region)
}

/// The engine: the runner and the approvals that launch it. Returns them with the token that tells
/// runs to stop at their next pause.
fn engine(
    settings: &Arc<Settings>,
    store: &Arc<dyn Store>,
    aws: &AwsPorts,
    chat: Arc<SlackChat>,
    api: &Arc<SlackApi>,
    telemetry: &Arc<Telemetry>,
    leases: &Arc<Leaseholder>,
) -> (Approvals, CancellationToken) {
    let runs_shutdown = CancellationToken::new();
    let clock = &leases.clock;
    let runner = Arc::new(Runner {
        store: store.clone(),
        aurora: aws.aurora.clone(),
        provisioning: aws.provisioning.clone(),
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
        leases: leases.clone(),
        database: aws
            .database
            .clone()
            .zip(settings.probe.as_ref())
            .map(|(probe, p)| DatabaseCheck {
                probe,
                deadline: p.deadline,
                instance: leases.instance.name.clone(),
            }),
    });
    let approvals = Approvals {
        settings: settings.clone(),
        store: store.clone(),
        aurora: aws.aurora.clone(),
        dns: aws.dns.clone(),
        metrics: aws.metrics.clone(),
        permissions: aws.permissions.clone(),
        database: aws.database.clone(),
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

/// What start-up tidies in the store before the engine runs: an earlier process's leases (when this
/// bot is the only one on its store) and the records of global clusters the config now names.
async fn tidy_at_start(settings: &Settings, store: &dyn Store, leases: &Leaseholder) -> anyhow::Result<()> {
    // The only bot on its store (a SQLite file is locked): an earlier process's leases end now.
    // On a shared table they may be another live bot's: they run out by themselves if not.
    if settings.store.exclusive() {
        leases
            .end_earlier_processes_leases()
            .await
            .context("cannot read the store's leases")?;
    }
    crate::records::settle_at_start(store, &settings.clusters).await;
    Ok(())
}

/// The bot without its HTTP side: secrets, store (locked), Slack client, AWS adapters, engine and
/// outbox. `Application` serves it; break-glass at a terminal runs it when no bot is serving.
pub struct Engine {
    pub settings: Arc<Settings>,
    pub aws_config: aws_config::SdkConfig,
    pub approvals: Approvals,
    pub outbox: Arc<Outbox>,
    pub store: Arc<dyn Store>,
    /// Tells runs to stop at their next pause (their state is saved; they resume at the next start).
    pub runs_shutdown: CancellationToken,
    api: Arc<SlackApi>,
    health: Arc<Health>,
    chat: Arc<SlackChat>,
    aws: AwsPorts,
    signing_secret: Secret,
    /// Socket Mode's app-level token (`slack.mode = "socket"` only).
    app_token: Option<Secret>,
    /// What the secret refresh re-reads, when a Slack secret came from Secrets Manager.
    rotated: Option<Rotated>,
    /// Held for the engine's life: one bot process per SQLite store (two would both run every run).
    /// `None` on DynamoDB, which several bots share.
    _lock: Option<std::fs::File>,
}

impl Engine {
    /// Builds the engine from `settings`. Errors name the config key and the reason, never a secret;
    /// a store another process holds is refused (`store.path`).
    pub async fn build(settings: Settings, deps: Deps) -> anyhow::Result<Engine> {
        let settings = Arc::new(settings);
        let aws_config = aws_config(&deps).await;
        let secrets = resolve_secrets(&settings, &aws_config, deps.env.as_ref()).await?;
        let (lock, store) = open_store(&settings, &aws_config, deps.env.as_ref()).await?;
        let health = Arc::new(Health::default());
        let api = Arc::new(
            SlackApi::new(&settings.slack.api_url, &secrets.bot_token)
                .context("cannot build the Slack client")?
                .with_health(health.clone()),
        );
        let telemetry = Arc::new(Telemetry::new());
        telemetry.start_at_zero(settings.cluster_names());
        let mut aws = AwsPorts::new(&aws_config, &telemetry);
        aws.database = database_probe(&settings, &aws_config)?;
        let wake = Arc::new(Notify::new());
        let chat = Arc::new(SlackChat {
            store: store.clone(),
            clock: deps.clock.clone(),
            channel: settings.slack.incident_channel.clone(),
            policy: settings.approval.policy.clone(),
            wake: wake.clone(),
            api: api.clone(),
            telemetry: telemetry.clone(),
        });
        let leases = Arc::new(Leaseholder {
            store: store.clone(),
            clock: deps.clock.clone(),
            instance: instance(&settings, &aws_config),
            settings: settings.lease,
        });
        info!(instance = %leases.instance, id = %leases.instance.id, "this instance");
        tidy_at_start(&settings, store.as_ref(), &leases).await?;
        let (approvals, runs_shutdown) = engine(&settings, &store, &aws, chat.clone(), &api, &telemetry, &leases);
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
            leases,
            fence: Default::default(),
            renewed_at: Default::default(),
        });
        let rotated = Rotated::of(&settings, &aws_config, &secrets);
        Ok(Engine {
            settings,
            aws_config,
            approvals,
            outbox,
            store,
            runs_shutdown,
            api,
            health,
            chat,
            aws,
            signing_secret: secrets.signing_secret.clone(),
            app_token: secrets.app_token.clone(),
            rotated,
            _lock: lock,
        })
    }

    /// The break-glass desk on this engine.
    pub fn desk(&self) -> Arc<crate::breakglass::Desk> {
        Arc::new(crate::breakglass::Desk {
            approvals: self.approvals.clone(),
            store: self.store.clone(),
            aws_config: self.aws_config.clone(),
        })
    }
}

/// Break-glass when no bot is serving this store: takes the store's lock, runs `order`'s runbook in
/// this process as the current OS user, prints its progress, and delivers what it queued for Slack
/// while it can (what is left is delivered by the next bot started on this store).
#[cfg(unix)]
pub async fn break_glass_here(
    settings: Settings,
    deps: Deps,
    order: &crate::breakglass::Order,
    interrupt: CancellationToken,
) -> anyhow::Result<crate::breakglass::Outcome> {
    let engine = Engine::build(settings, deps).await?;
    let stop = CancellationToken::new();
    let delivery = tokio::spawn(engine.outbox.clone().run(stop.clone()));
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let printer = tokio::spawn(crate::breakglass::print_events(rx));
    let login = crate::breakglass::own_login();
    let outcome = engine
        .desk()
        .take(order, &login, "terminal", &tx, Some(&interrupt))
        .await;
    drop(tx);
    let _ = printer.await;
    // A run that needs attention waits for people: it stops here at its next pause, saved, and
    // the next bot started on this store watches it.
    engine.runs_shutdown.cancel();
    engine.approvals.launcher.tracker.close();
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, engine.approvals.launcher.tracker.wait()).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), engine.outbox.deliver_due()).await;
    stop.cancel();
    let _ = delivery.await;
    if engine.store.outbox_heads().await.is_ok_and(|h| !h.is_empty()) {
        crate::breakglass::say(
            "some Slack messages could not be delivered yet; the next bot started on this store delivers them",
        );
    }
    Ok(outcome)
}

/// The Socket Mode client, in `slack.mode = "socket"`: envelopes go to `http::SocketInbound`, the
/// HTTP routes' own path after their signature check.
fn socket_client(
    settings: &Settings,
    engine: &Engine,
    state: &Arc<SlackState>,
) -> anyhow::Result<Option<Arc<SocketClient>>> {
    let Some(token) = engine
        .app_token
        .as_ref()
        .filter(|_| settings.slack.mode == SlackMode::Socket)
    else {
        return Ok(None);
    };
    let client = SocketClient::new(
        &settings.slack.api_url,
        token,
        engine.health.clone(),
        Arc::new(routes::SocketInbound(state.clone())),
        state.tasks.clone(),
    )
    .context("cannot build the Socket Mode client")?;
    Ok(Some(Arc::new(client)))
}

impl Application {
    /// Builds the bot from `settings`: the engine (see `Engine::build`), then the routes and the
    /// listener. Errors name the config key and the reason, never a secret.
    pub async fn build(settings: Settings, deps: Deps) -> anyhow::Result<Application> {
        let clock = deps.clock.clone();
        let engine = Engine::build(settings, deps).await?;
        let settings = engine.settings.clone();
        let binding = Arc::new(binding(&settings.slack));
        let aws = &engine.aws;
        let state = Arc::new(SlackState {
            verifier: Verifier::new(vec![engine.signing_secret.clone()]),
            binding: binding.clone(),
            health: engine.health.clone(),
            clock,
            settings: settings.clone(),
            approvals: engine.approvals.clone(),
            chat: engine.chat.clone(),
            surveyor: Arc::new(crate::status::Surveyor::new(
                aws.aurora.clone(),
                aws.metrics.clone(),
                aws.dns.clone(),
            )),
            aurora: aws.aurora.clone(),
            metrics: aws.metrics.clone(),
            dns: aws.dns.clone(),
            tasks: TaskTracker::new(),
        });
        let router = routes::router(state.clone(), settings.slack.mode == SlackMode::Http);
        let socket = socket_client(&settings, &engine, &state)?;
        let (listener, limits) = listen(&settings).await?;
        let port = listener.local_addr()?.port();
        Ok(Application {
            listener,
            port,
            router,
            limits,
            binding,
            state,
            socket,
            store: engine.store.clone(),
            engine,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Adds `routes` to the bot's own (served by the same server, with the same limits): the sandbox
    /// page of `demo --web`. Panics, as axum does, when a path is already the bot's.
    #[cfg(feature = "demo")]
    pub fn merge_routes(&mut self, routes: axum::Router) {
        self.router = std::mem::take(&mut self.router).merge(routes);
    }

    /// Spawns the readiness probes and the secret refresh. The AWS configuration is reported as not
    /// checked yet before its probe starts, so that `/readyz` never says ready before it was checked.
    fn spawn_probes(&mut self, background: &TaskTracker, shutdown: &CancellationToken) {
        self.engine
            .health
            .report(crate::health::AWS_CONFIGURATION, "not checked yet");
        background.spawn(probes::watch_aws(
            self.engine.aws_config.clone(),
            self.engine.health.clone(),
            shutdown.clone(),
        ));
        background.spawn(probes::watch_store(
            self.store.clone(),
            self.engine.health.clone(),
            shutdown.clone(),
        ));
        let token_refused = Arc::new(Notify::new());
        let refused = self.engine.rotated.as_ref().map(|_| token_refused.clone());
        background.spawn(probes::watch_token(self.engine.api.clone(), refused, shutdown.clone()));
        if let Some(rotated) = self.engine.rotated.take() {
            let slack = &self.state.settings.slack;
            let refresh = rotation::Refresh {
                reader: rotated.reader,
                verifier: self.state.verifier.clone(),
                api: self.engine.api.clone(),
                binding: self.binding.clone(),
                health: self.engine.health.clone(),
                clock: self.state.clock.clone(),
                every: slack.secret_refresh,
                grace: slack.previous_secret_grace,
                signing: rotated.signing,
                token: rotated.token,
                token_refused,
            };
            background.spawn(refresh.run(shutdown.clone()));
        }
    }

    /// Serves until `shutdown` is cancelled, then stops taking requests and gives work in flight a
    /// bounded time to finish. Runs not finished by then resume at the next start.
    pub async fn run_until_stopped(mut self, shutdown: CancellationToken) -> anyhow::Result<()> {
        info!(port = self.port, "serving");
        self.engine.approvals.resume().await;
        let background = TaskTracker::new();
        background.spawn(self.engine.outbox.clone().run(shutdown.clone()));
        {
            // Reported before the task is spawned (and before serving), so that `/readyz` never says
            // ready while the workspace is unknown.
            if self.binding.team_id().is_none() {
                self.engine.health.report(
                    crate::health::SLACK_WORKSPACE,
                    "not known yet: slack.team_id is not set and auth.test has not answered",
                );
            }
            background.spawn(learn_workspace(
                self.engine.api.clone(),
                self.binding.clone(),
                self.engine.health.clone(),
                shutdown.clone(),
            ));
        }
        self.spawn_probes(&background, &shutdown);
        if let Some(socket) = &self.socket {
            background.spawn(socket.clone().run(shutdown.clone()));
        }
        background.spawn(forget_old_requests(
            self.store.clone(),
            self.engine.approvals.clock.clone(),
            shutdown.clone(),
        ));
        let approvals = self.engine.approvals.clone();
        let stop = shutdown.clone();
        background.spawn(async move { approvals.expire_every(EXPIRY_TICK, stop).await });
        let approvals = self.engine.approvals.clone();
        let (stop, every) = (shutdown.clone(), self.engine.settings.lease.renew);
        background.spawn(async move { approvals.take_over_every(every, stop).await });
        #[cfg(unix)]
        background.spawn(crate::breakglass::serve(
            crate::breakglass::socket_path(&self.engine.settings.store.path),
            self.engine.desk(),
            shutdown.clone(),
        ));
        crate::server::serve(self.listener, self.router, self.limits, shutdown.clone()).await;
        info!("stopped taking requests");
        self.engine.runs_shutdown.cancel();
        self.state.tasks.close();
        self.engine.approvals.launcher.tracker.close();
        background.close();
        let finished = tokio::time::timeout(SHUTDOWN_GRACE, async {
            self.engine.approvals.launcher.tracker.wait().await;
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
        let _ = tokio::time::timeout(Duration::from_secs(2), self.engine.outbox.deliver_due()).await;
        // Another instance delivers the rest at once, without waiting for the lease to run out.
        self.engine.outbox.release_lease().await;
        Ok(())
    }
}
