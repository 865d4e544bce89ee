//! `aurora-failover-bot`: the command line. Thin on purpose: parse arguments (clap), set up logging and
//! signals, and hand over to `startup`, `audit`, `healthcheck` or `demo` (the last only with the `demo`
//! feature).

use aurora_failover_bot::audit::Format;
use aurora_failover_bot::settings::Settings;
use aurora_failover_bot::startup::{Application, Deps};
use aurora_failover_bot::types::redact_credentials;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{ArgGroup, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

/// Fail an Aurora Global Database over to another AWS Region from Slack, with two-person approval.
#[derive(Debug, Parser)]
#[command(name = "aurora-failover-bot", version, arg_required_else_help = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the bot.
    Serve {
        /// The configuration file (see config.example.toml).
        #[arg(long, value_name = "PATH")]
        config: PathBuf,
        /// How log lines are written to stdout: `human` (one readable line each) or `json` (one JSON
        /// object per line, with the fields of its spans: `run_id` and `cluster` in a run,
        /// `request_id` in a Slack request).
        #[arg(long, value_enum, env = "AFB_LOG_FORMAT", default_value = "human")]
        log_format: LogFormat,
    },
    /// Exit 0 when the bot answers 200 on /healthz (within 3 s), 1 otherwise, saying why: the image's
    /// HEALTHCHECK (the image has no curl).
    #[command(group(ArgGroup::new("target").required(true).args(["url", "config"])))]
    Healthcheck {
        /// The URL to GET, such as http://127.0.0.1:3000/healthz.
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// The bot's configuration file: its `listen` address is checked (0.0.0.0 on loopback).
        #[arg(long, value_name = "PATH")]
        config: Option<PathBuf>,
    },
    /// Run everything locally on embedded defaults (emulated AWS, a stand-in for Slack, SQLite) and
    /// play a scripted failover.
    // Without the `demo` feature (the production build) the command is hidden and only says so.
    #[cfg_attr(
        not(feature = "demo"),
        command(hide = true, about = "Not in this build (built without the `demo` feature)", long_about = None)
    )]
    Demo {
        /// Instead of the scripted transcript, serve a sandbox in the browser: a stand-in for Slack
        /// (channel, threads, buttons, modals, a user switcher and a command box) on the bot's own
        /// server, with scenario controls over the emulated AWS. Prints its URL and runs until Ctrl-C.
        #[arg(long)]
        web: bool,
        /// Where the sandbox listens (with --web). Loopback only unless --allow-remote: the page signs
        /// Slack requests and drives the emulator, so it must not be reachable from the network.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:3000", requires = "web")]
        listen: std::net::SocketAddr,
        /// Accept a --listen address other than loopback (prints a warning): anyone who can reach it
        /// can act as any sandbox user.
        #[arg(long, requires = "web")]
        allow_remote: bool,
    },
    /// Break-glass, for when Slack is unavailable: run the failover runbook without Slack approval.
    /// The same plan, pre-flight checks, cluster lock and journal as in Slack; only the second person
    /// is skipped. A bot serving the same store takes the order over its admin socket; otherwise
    /// this command takes the store's lock and runs it itself. Ctrl-C stops following (a serving bot
    /// goes on) or stops the run here (abandoned if it had changed nothing yet). Exit 0 succeeded, 3
    /// needs attention, 1 refused or failed, 2 usage, 130 interrupted.
    Failover {
        /// The bot's configuration file.
        #[arg(long, value_name = "PATH")]
        config: PathBuf,
        /// A configured cluster.
        cluster: String,
        /// The Region to move the writer to (one of the cluster's); the bot's choice otherwise.
        #[arg(long, value_name = "REGION")]
        to: Option<String>,
        /// detach, failover or switchover; the bot's choice otherwise.
        #[arg(long, value_name = "MODE", value_parser = PossibleValuesParser::new(["detach", "failover", "switchover"]))]
        mode: Option<String>,
        /// Required: says you mean to act without a second approver (recorded in the audit).
        #[arg(long)]
        break_glass: bool,
        /// Why Slack approval is skipped (required with --break-glass; recorded and posted).
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
    /// Check a configuration file before deploying it: the file, the Slack secrets, and with read-only
    /// AWS calls each cluster, its members, the hosted zone, the records, and the plan's DNS and IAM
    /// checks. Prints one line per check; exits 0 when none failed, 1 otherwise. Changes nothing.
    CheckConfig {
        /// The configuration file to check.
        #[arg(long, value_name = "PATH")]
        config: PathBuf,
    },
    /// Print the `/aurora status` view in the terminal (for when Slack is unavailable): each
    /// cluster's members and where its CNAMEs point. Needs neither Slack nor the store's lock.
    Status {
        /// The bot's configuration file.
        #[arg(long, value_name = "PATH")]
        config: PathBuf,
        /// Only this cluster (by its configured name).
        cluster: Option<String>,
    },
    /// Create the DynamoDB table for `[store] backend = "dynamodb"` (keys, indexes, on-demand
    /// billing) and wait until it is ACTIVE; a table that already has the store's keys is fine.
    /// Exit 0 created or already there, 1 failed (e.g. a table with other keys), 2 usage.
    CreateTable {
        /// The table's name (`store.table`).
        #[arg(long, value_name = "NAME")]
        table: String,
        /// The Region to create it in; default: the AWS configuration's (AWS_REGION, the profile).
        #[arg(long, value_name = "REGION")]
        region: Option<String>,
    },
    /// Print every request, decision, attempt and run step from the store.
    Audit {
        /// The bot's configuration file: the store is the one it names.
        #[arg(long, value_name = "PATH")]
        config: PathBuf,
        /// Only what happened since TIME: 2026-11-26T09:00:00Z, 2026-11-26 (midnight UTC), or a span
        /// back from now such as 90m, 24h or 7d.
        #[arg(long, value_name = "TIME", value_parser = since, allow_hyphen_values = true)]
        since: Option<jiff::Timestamp>,
        /// One JSON object per line, or a table for people.
        #[arg(
            long,
            default_value = "table",
            value_parser = PossibleValuesParser::new(["jsonl", "table"])
                .map(|s| Format::parse(&s).expect("one of the possible values")),
        )]
        format: Format,
    },
}

/// `serve --log-format`.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    /// One line for people per event, coloured on a terminal.
    Human,
    /// One JSON object per line (tracing-subscriber's JSON format).
    Json,
}

/// `--since`, parsed when the arguments are, so that a bad value is a usage error.
fn since(s: &str) -> Result<jiff::Timestamp, String> {
    aurora_failover_bot::audit::parse_since(s, jiff::Timestamp::now())
}

/// Logs to stdout at `RUST_LOG`'s levels, or `default`'s.
fn init_logging(default: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        // A log line that cannot be written (the log pipe's reader is gone) is lost, not reported on
        // stderr: that report panics when stderr is gone too, taking down whichever task logged.
        .log_internal_errors(false);
    match format {
        // Colours only on a terminal: escape codes in a log file or a log pipeline are noise.
        LogFormat::Human => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .init(),
        LogFormat::Json => builder.json().with_ansi(false).init(),
    }
}

/// Cancelled on SIGINT or SIGTERM.
fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("can listen for SIGTERM");
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        // Stop first: nothing (not even a failing log) may come between the signal and the shutdown.
        t.cancel();
        tracing::info!("shutdown requested");
    });
    token
}

#[tokio::main]
async fn main() -> ExitCode {
    // Usage errors exit 2 with clap's message; --help and --version exit 0.
    match Cli::parse().command {
        Command::Serve { config, log_format } => serve(&config, log_format).await,
        Command::Healthcheck { url, config } => healthcheck(url, config).await,
        Command::Demo {
            web,
            listen,
            allow_remote,
        } => demo(web, listen, allow_remote).await,
        Command::Failover {
            config,
            cluster,
            to,
            mode,
            break_glass,
            reason,
        } => {
            let order = aurora_failover_bot::breakglass::Order {
                cluster,
                to,
                mode,
                reason: reason.unwrap_or_default(),
            };
            aurora_failover_bot::cli::failover(&config, order, break_glass).await
        }
        Command::CreateTable { table, region } => {
            aurora_failover_bot::cli::create_table(&table, region.as_deref()).await
        }
        Command::CheckConfig { config } => aurora_failover_bot::cli::check_config(&config).await,
        Command::Status { config, cluster } => aurora_failover_bot::cli::status(&config, cluster.as_deref()).await,
        Command::Audit { config, since, format } => match audit(&config, since, format).await {
            Ok(text) => print_out(&text),
            Err(e) => {
                eprintln!("aurora-failover-bot audit: {}", redact_credentials(&reasons(&e)));
                ExitCode::from(2)
            }
        },
    }
}

/// Writes `text` to stdout. A reader that stops early (`audit | head`) is not an error.
fn print_out(text: &str) -> ExitCode {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("aurora-failover-bot: cannot write the output: {e}");
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes, each said once (a cause whose text its parent already includes is left
/// out).
fn reasons(e: &anyhow::Error) -> String {
    let mut said = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !said.contains(&text) {
            if !said.is_empty() {
                said.push_str(": ");
            }
            said.push_str(&text);
        }
    }
    said
}

async fn serve(path: &std::path::Path, log_format: LogFormat) -> ExitCode {
    init_logging("info", log_format);
    let settings = match Settings::from_file(path) {
        Ok(s) => s,
        Err(e) => {
            // A value quoted back may be a secret pasted under the wrong key.
            eprintln!("aurora-failover-bot: {}", redact_credentials(&e.to_string()));
            return ExitCode::from(2);
        }
    };
    let app = match Application::build(settings, Deps::default()).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("aurora-failover-bot: {}", redact_credentials(&reasons(&e)));
            return ExitCode::from(2);
        }
    };
    match app.run_until_stopped(shutdown_on_signals()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("aurora-failover-bot: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(feature = "demo")]
async fn demo(web: bool, listen: std::net::SocketAddr, allow_remote: bool) -> ExitCode {
    init_logging("warn", LogFormat::Human);
    let result = if web {
        let options = aurora_failover_bot::demo::web::Options { listen, allow_remote };
        aurora_failover_bot::demo::web::run(options, shutdown_on_signals()).await
    } else {
        aurora_failover_bot::demo::run().await
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("aurora-failover-bot demo: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `healthcheck`: 0 when the bot answers 200, 1 otherwise (Docker's HEALTHCHECK reserves 2).
async fn healthcheck(url: Option<String>, config: Option<PathBuf>) -> ExitCode {
    use aurora_failover_bot::healthcheck;
    let url = match (url, config) {
        (Some(url), _) => Ok(url),
        (None, Some(path)) => Settings::from_file(&path)
            .map_err(|e| redact_credentials(&e.to_string()))
            .and_then(|s| healthcheck::url_for(s.listen)),
        (None, None) => Err("give --url URL or --config PATH".to_owned()),
    };
    match url {
        Ok(url) => match healthcheck::check(&url, healthcheck::TIMEOUT).await {
            Ok(()) => {
                println!("healthy: {url} answered 200");
                ExitCode::SUCCESS
            }
            Err(why) => {
                eprintln!("aurora-failover-bot healthcheck: unhealthy: {why}");
                ExitCode::FAILURE
            }
        },
        Err(why) => {
            eprintln!("aurora-failover-bot healthcheck: {why}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(not(feature = "demo"))]
async fn demo(_web: bool, _listen: std::net::SocketAddr, _allow_remote: bool) -> ExitCode {
    eprintln!(
        "aurora-failover-bot demo: this binary was built without the `demo` feature (a production build); \
         build it with the default features to run the demo"
    );
    ExitCode::from(2)
}

async fn audit(config: &std::path::Path, since: Option<jiff::Timestamp>, format: Format) -> anyhow::Result<String> {
    use anyhow::Context;
    let settings = Settings::from_file(config)?;
    let since = since.unwrap_or(jiff::Timestamp::MIN);
    if let aurora_failover_bot::settings::StoreBackend::DynamoDb(d) = &settings.store.backend {
        let aws = aurora_failover_bot::aws::load_config(&Default::default()).await;
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let client = aurora_failover_bot::startup::dynamodb_client(&aws, d.region.as_ref(), &env);
        let (store, _) = aurora_failover_bot::store::DynamoDbStore::open(client, &d.table, d.single_instance).await?;
        let entries = aurora_failover_bot::audit::entries(&store, since).await?;
        return Ok(aurora_failover_bot::audit::render(&entries, format));
    }
    if !settings.store.path.exists() {
        anyhow::bail!(
            "config key store.path: {} does not exist",
            settings.store.path.display()
        );
    }
    let store = aurora_failover_bot::store::SqliteStore::open_existing(&settings.store.path)
        .with_context(|| format!("config key store.path: cannot read {}", settings.store.path.display()))?;
    let entries = aurora_failover_bot::audit::entries(&store, since).await?;
    Ok(aurora_failover_bot::audit::render(&entries, format))
}
