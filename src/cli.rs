//! The commands a person runs in a terminal besides `serve`: `failover --break-glass` (see
//! `breakglass`), `check-config` (the checks are `checkconfig`'s) and `status --config PATH
//! [CLUSTER]`, the `/aurora status` view for when Slack is unavailable: the same read as the Slack
//! command (`status::reports` over the AWS adapters). The last two are worded by `terminal` and print
//! to stdout.
//!
//! Invariants of `status`: it needs neither Slack nor the store's lock (a serving bot holds it). It
//! reads the store only for what status shows of the past (a cluster a detach left as a standalone
//! writer, the global cluster recorded by a rebuild, the switchover back), through a read-only
//! connection (`SqliteStore::open_existing`), and only when the store exists; a store it cannot read
//! is said, not fatal. It makes read-only AWS calls only.

use crate::aws::{self, AwsOverrides};
use crate::settings::{ClusterSettings, Settings};
use crate::status::{ClusterReport, Past};
use crate::store::SqliteStore;

/// `CLUSTER` is not a configured cluster's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no cluster named {name} is configured; the configured clusters are: {}", configured.join(", "))]
pub struct UnknownCluster {
    pub name: String,
    pub configured: Vec<String>,
}

/// What `status` read: the clusters' reports, and why the store could not be read (for a detached
/// writer, a recorded global cluster, the switchover back), when it could not.
pub struct Status {
    pub reports: Vec<ClusterReport>,
    pub store_unreadable: Option<String>,
}

/// Reads the status of `cluster` (every configured cluster when `None`), with the SDK configured as
/// `serve` configures it plus `overrides`.
pub async fn read_status(
    settings: &Settings,
    overrides: &AwsOverrides,
    cluster: Option<&str>,
) -> Result<Status, UnknownCluster> {
    let clusters = chosen(settings, cluster)?;
    let (store, store_unreadable) = open_store(settings);
    let mut with_past: Vec<(&ClusterSettings, Past)> = Vec::new();
    for c in clusters {
        let past = match &store {
            Some(s) => crate::status::past(s, c).await,
            None => Past::default(),
        };
        with_past.push((c, past));
    }
    let config = aws::load_config(overrides).await;
    let aurora = aws::rds::RdsAurora::new(config.clone());
    let metrics = aws::cloudwatch::CloudWatchMetrics::new(config.clone());
    let dns = aws::route53::Route53Dns::new(&config);
    let reports = crate::status::reports(&aurora, &metrics, &dns, &with_past).await;
    Ok(Status {
        reports,
        store_unreadable,
    })
}

/// The clusters asked for: one by name, or all.
fn chosen<'s>(settings: &'s Settings, cluster: Option<&str>) -> Result<Vec<&'s ClusterSettings>, UnknownCluster> {
    let Some(name) = cluster else {
        return Ok(settings.clusters.iter().collect());
    };
    match settings.clusters.iter().find(|c| c.name.as_str() == name) {
        Some(c) => Ok(vec![c]),
        None => Err(UnknownCluster {
            name: name.to_owned(),
            configured: settings.clusters.iter().map(|c| c.name.to_string()).collect(),
        }),
    }
}

/// The store, read-only, when it exists; or why it cannot be read.
fn open_store(settings: &Settings) -> (Option<SqliteStore>, Option<String>) {
    let path = &settings.store.path;
    if !path.exists() {
        return (None, None);
    }
    match SqliteStore::open_existing(path) {
        Ok(s) => (Some(s), None),
        Err(e) => (
            None,
            Some(format!(
                "config key store.path: cannot read {} ({e}): a cluster a past detach left as a standalone writer, a rebuilt \
                 global cluster and the switchover back are not shown",
                path.display()
            )),
        ),
    }
}

/// The `status` subcommand: prints the view on stdout and exits 0; a configuration that cannot be read
/// or an unknown cluster is said on stderr, exit 2.
pub async fn status(config: &std::path::Path, cluster: Option<&str>) -> std::process::ExitCode {
    let settings = match Settings::from_file(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "aurora-failover-bot status: {}",
                crate::types::redact_credentials(&e.to_string())
            );
            return std::process::ExitCode::from(2);
        }
    };
    match read_status(&settings, &AwsOverrides::default(), cluster).await {
        Ok(status) => {
            if let Some(why) = &status.store_unreadable {
                eprintln!("aurora-failover-bot status: {why}");
            }
            crate::terminal::print(
                &crate::terminal::status(&status.reports),
                std::process::ExitCode::SUCCESS,
            )
        }
        Err(unknown) => {
            eprintln!("aurora-failover-bot status: {unknown}");
            std::process::ExitCode::from(2)
        }
    }
}

/// The `check-config` subcommand: prints the report on stdout; exits 0 when no check failed, 1
/// otherwise (usage errors are clap's, 2).
pub async fn check_config(config: &std::path::Path) -> std::process::ExitCode {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let report = crate::checkconfig::run(config, &AwsOverrides::default(), &env).await;
    let code = if report.failed() {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    };
    crate::terminal::print(&crate::terminal::check_report(&report), code)
}

/// `failover --break-glass`: checks the arguments, then hands the order to a serving bot or runs it
/// here. Exit status: the outcome's (`Outcome::exit_code`), 2 for a usage error, 1 for an error.
#[cfg(unix)]
pub async fn failover(
    config: &std::path::Path,
    order: crate::breakglass::Order,
    break_glass: bool,
) -> std::process::ExitCode {
    use crate::breakglass;
    use crate::types::redact_credentials;
    let usage = |why: &str| {
        eprintln!("aurora-failover-bot failover: {why}");
        std::process::ExitCode::from(2)
    };
    if !break_glass {
        return usage(&format!(
            "refused. Ask in Slack (/aurora failover {}), where a second person approves. Only when Slack is \
             unavailable, run it again with --break-glass --reason \"why\": it skips the second approver (never \
             the checks) and is recorded with your OS user and AWS identity.",
            order.cluster
        ));
    }
    if let Err(why) = breakglass::check_reason(&order.reason) {
        return usage(&why);
    }
    // Progress goes to stdout; the engine's own warnings to stderr.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_target(false)
        .with_writer(std::io::stderr)
        .init();
    let settings = match Settings::from_file(config) {
        Ok(s) => s,
        Err(e) => return usage(&redact_credentials(&e.to_string())),
    };
    if let Err(why) = breakglass::parse_order(&settings, &order) {
        return usage(&why);
    }
    match break_glass_order(settings, &order).await {
        Ok(outcome) => std::process::ExitCode::from(outcome.exit_code()),
        Err(e) => {
            eprintln!(
                "aurora-failover-bot failover: {}",
                redact_credentials(&format!("{e:#}"))
            );
            std::process::ExitCode::FAILURE
        }
    }
}

/// Cancelled on SIGINT (Ctrl-C) or SIGTERM. SIGHUP (the terminal or SSH session closed) is ignored:
/// a run half done is worse than a run nobody watches (it goes on, into the audit and Slack).
#[cfg(unix)]
fn interrupt_on_signals() -> anyhow::Result<tokio_util::sync::CancellationToken> {
    use tokio::signal::unix::{SignalKind, signal};
    let token = tokio_util::sync::CancellationToken::new();
    let (mut int, mut term, mut hup) = (
        signal(SignalKind::interrupt())?,
        signal(SignalKind::terminate())?,
        signal(SignalKind::hangup())?,
    );
    let t = token.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = int.recv() => break,
                _ = term.recv() => break,
                _ = hup.recv() => tracing::warn!("the terminal closed; the break-glass order goes on"),
            }
        }
        t.cancel();
    });
    Ok(token)
}

/// Hands `order` to the bot serving the store, or runs it here when none answers. Ctrl-C (or
/// SIGTERM) stops following (a serving bot goes on) or stops the run here (see `Desk::take`).
#[cfg(unix)]
async fn break_glass_order(
    settings: Settings,
    order: &crate::breakglass::Order,
) -> anyhow::Result<crate::breakglass::Outcome> {
    use crate::breakglass::{self, Outcome};
    let interrupt = interrupt_on_signals()?;
    let socket = breakglass::socket_path(&settings.store.path);
    tokio::select! {
        handed = breakglass::hand_over(&socket, order) => if let Some(outcome) = handed? {
            return Ok(outcome);
        },
        () = interrupt.cancelled() => {
            breakglass::say("interrupted: stopped following; the serving bot goes on with the run (see the incident channel, or `aurora-failover-bot audit`)");
            return Ok(Outcome::Interrupted);
        }
    }
    let store = std::path::absolute(&settings.store.path).unwrap_or_else(|_| settings.store.path.clone());
    // A relative store.path is the current directory's: from another directory it would be a new store
    // beside the bot's, with a cluster lock of its own.
    if settings.store.path.is_relative() && !store.exists() {
        anyhow::bail!(
            "config key store.path: no store at {}. A relative store.path is taken from the current directory: \
             run this in the bot's working directory, or give store.path as an absolute path",
            store.display()
        );
    }
    crate::startup::break_glass_here(settings, crate::startup::Deps::default(), order, interrupt)
        .await
        .map_err(|e| match e.downcast_ref::<crate::startup::StoreLocked>() {
            Some(_) => anyhow::anyhow!(
                "another aurora-failover-bot process holds {} but nothing answers on {}: a break-glass run from \
                 another terminal, or a bot that could not open its admin socket. Do not stop it: it may be in the \
                 middle of a failover. Wait for it, and follow it with `aurora-failover-bot audit`",
                store.display(),
                socket.display()
            ),
            None => e,
        })
}

/// `create-table --table NAME [--region R]`: creates the DynamoDB table of the `dynamodb` store (keys
/// `pk`/`sk`, three global secondary indexes, on-demand billing) in `region` (default: the AWS
/// configuration's Region) and waits until it is ACTIVE. A table that exists with the store's keys
/// is fine (exit 0); one with other keys is an error naming the difference (exit 1); a bad Region
/// is a usage error (exit 2). It makes a table in one Region: README says how to make it a global
/// table with multi-Region strong consistency.
pub async fn create_table(table: &str, region: Option<&str>) -> std::process::ExitCode {
    use crate::store::{Created, DynamoDbStore};
    use std::process::ExitCode;
    if let Err(why) = crate::settings::check_table_name(table) {
        eprintln!("aurora-failover-bot create-table: --table: {why}");
        return ExitCode::from(2);
    }
    let region = match region.map(crate::types::Region::check).transpose() {
        Ok(r) => r,
        Err(why) => {
            eprintln!("aurora-failover-bot create-table: --region: {why}");
            return ExitCode::from(2);
        }
    };
    let config = aws::load_config(&AwsOverrides::default()).await;
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let client = crate::startup::dynamodb_client(&config, region.as_ref(), &env);
    let in_region = client
        .config()
        .region()
        .map_or_else(|| "the default Region".to_owned(), ToString::to_string);
    match DynamoDbStore::create_table(&client, table).await {
        Ok(Created::Created) => {
            println!(
                "created table {table} in {in_region}: keys pk (partition, string) and sk (sort, string); \
                 global secondary indexes gsi1 (g1pk, g1sk), gsi2 (g2pk, g2sk), gsi3 (g3pk, g3sk), all \
                 attributes projected; on-demand billing (PAY_PER_REQUEST); ACTIVE"
            );
            ExitCode::SUCCESS
        }
        Ok(Created::AlreadyThere) => {
            println!("table {table} already exists in {in_region} with the store's keys and indexes: fine");
            ExitCode::SUCCESS
        }
        Err(why) => {
            eprintln!("aurora-failover-bot create-table: {why}");
            ExitCode::FAILURE
        }
    }
}
