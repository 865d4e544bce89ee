//! `aurora-failover-bot`: the command line. Thin on purpose: parse arguments (clap), set up logging and
//! signals, and hand over to `startup`, `audit` or `demo` (the last only with the `demo` feature).

use aurora_failover_bot::audit::Format;
use aurora_failover_bot::settings::Settings;
use aurora_failover_bot::startup::{Application, Deps};
use aurora_failover_bot::types::redact_credentials;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Parser, Subcommand};
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
    },
    /// Run everything locally on embedded defaults (emulated AWS, a stand-in for Slack, SQLite) and
    /// play a scripted failover.
    // Without the `demo` feature (the production build) the command is hidden and only says so.
    #[cfg_attr(
        not(feature = "demo"),
        command(hide = true, about = "Not in this build (built without the `demo` feature)", long_about = None)
    )]
    Demo,
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

/// `--since`, parsed when the arguments are, so that a bad value is a usage error.
fn since(s: &str) -> Result<jiff::Timestamp, String> {
    aurora_failover_bot::audit::parse_since(s, jiff::Timestamp::now())
}

fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        // Colours only on a terminal: escape codes in a log file or a log pipeline are noise.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        // A log line that cannot be written (the log pipe's reader is gone) is lost, not reported on
        // stderr: that report panics when stderr is gone too, taking down whichever task logged.
        .log_internal_errors(false)
        .init();
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
        Command::Serve { config } => serve(&config).await,
        Command::Demo => demo().await,
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

async fn serve(path: &std::path::Path) -> ExitCode {
    init_logging("info");
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
async fn demo() -> ExitCode {
    init_logging("warn");
    match aurora_failover_bot::demo::run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("aurora-failover-bot demo: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(not(feature = "demo"))]
async fn demo() -> ExitCode {
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
