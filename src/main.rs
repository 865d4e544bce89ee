//! `aurora-failover-bot`: the command line. Thin on purpose: parse arguments, set up logging and
//! signals, and hand over to `startup` or `demo`.

use aurora_failover_bot::audit::Format;
use aurora_failover_bot::settings::Settings;
use aurora_failover_bot::startup::{Application, Deps};
use std::path::PathBuf;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

const USAGE: &str = "\
usage:
  aurora-failover-bot serve --config PATH   run the bot
  aurora-failover-bot demo                  run everything locally on embedded defaults (emulated AWS,
                                            a stand-in for Slack, SQLite) and play a scripted failover
  aurora-failover-bot audit --config PATH [--since TIME] [--format jsonl|table]
                                            print every request, decision, attempt and run step from
                                            the store (TIME: 2026-11-26T09:00:00Z, 2026-11-26, or 24h/7d)";

enum Cli {
    Serve(PathBuf),
    Demo,
    Audit {
        config: PathBuf,
        since: Option<String>,
        format: Format,
    },
    Help,
}

fn parse(args: &[String]) -> Result<Cli, String> {
    match args.first().map(String::as_str) {
        Some("serve") => match &args[1..] {
            [flag, path] if flag == "--config" => Ok(Cli::Serve(PathBuf::from(path))),
            [flag] if flag == "--config" => Err("--config needs a path".into()),
            [] => Err("serve needs --config PATH".into()),
            other => Err(format!("unexpected arguments: {}", other.join(" "))),
        },
        Some("audit") => {
            let mut config = None;
            let mut since = None;
            let mut format = Format::Table;
            let mut rest = args[1..].iter();
            while let Some(flag) = rest.next() {
                let value = rest.next().ok_or_else(|| format!("{flag} needs a value"))?;
                match flag.as_str() {
                    "--config" => config = Some(PathBuf::from(value)),
                    "--since" => since = Some(value.clone()),
                    "--format" => {
                        format = Format::parse(value).ok_or_else(|| format!("--format {value}: use jsonl or table"))?
                    }
                    other => return Err(format!("unexpected argument {other}")),
                }
            }
            let config = config.ok_or("audit needs --config PATH")?;
            Ok(Cli::Audit { config, since, format })
        }
        Some("demo") if args.len() == 1 => Ok(Cli::Demo),
        Some("demo") => Err(format!("unexpected arguments: {}", args[1..].join(" "))),
        Some("-h" | "--help" | "help") => Ok(Cli::Help),
        Some(other) => Err(format!("unknown command {other}")),
        None => Err("no command given".into()),
    }
}

fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        // Colours only on a terminal: escape codes in a log file or a log pipeline are noise.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
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
        tracing::info!("shutdown requested");
        t.cancel();
    });
    token
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cli = match parse(&args) {
        Ok(cli) => cli,
        Err(e) => {
            eprintln!("aurora-failover-bot: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match cli {
        Cli::Help => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Cli::Audit { config, since, format } => match audit(&config, since.as_deref(), format).await {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("aurora-failover-bot audit: {e:#}");
                ExitCode::from(2)
            }
        },
        Cli::Demo => {
            init_logging("warn");
            match aurora_failover_bot::demo::run().await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("aurora-failover-bot demo: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Cli::Serve(path) => {
            init_logging("info");
            let settings = match Settings::from_file(&path) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("aurora-failover-bot: {e}");
                    return ExitCode::from(2);
                }
            };
            let app = match Application::build(settings, Deps::default()).await {
                Ok(app) => app,
                Err(e) => {
                    eprintln!("aurora-failover-bot: {e:#}");
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
    }
}

async fn audit(config: &std::path::Path, since: Option<&str>, format: Format) -> anyhow::Result<String> {
    use anyhow::Context;
    let settings = Settings::from_file(config)?;
    let since = match since {
        Some(s) => aurora_failover_bot::audit::parse_since(s, jiff::Timestamp::now()).map_err(anyhow::Error::msg)?,
        None => jiff::Timestamp::MIN,
    };
    if !settings.store.path.exists() {
        anyhow::bail!(
            "config key store.path: {} does not exist",
            settings.store.path.display()
        );
    }
    let store = aurora_failover_bot::store::SqliteStore::open(&settings.store.path)
        .with_context(|| format!("config key store.path: cannot open {}", settings.store.path.display()))?;
    let entries = aurora_failover_bot::audit::entries(&store, since).await?;
    Ok(aurora_failover_bot::audit::render(&entries, format))
}
