//! `aurora-failover-bot`: the command line. Thin on purpose: parse arguments, set up logging and
//! signals, and hand over to `startup` or `demo`.

use aurora_failover_bot::settings::Settings;
use aurora_failover_bot::startup::{Application, Deps};
use std::path::PathBuf;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

const USAGE: &str = "\
usage:
  aurora-failover-bot serve --config PATH   run the bot
  aurora-failover-bot demo                  run everything locally on embedded defaults (emulated AWS,
                                            a stand-in for Slack, SQLite) and play a scripted failover";

enum Cli {
    Serve(PathBuf),
    Demo,
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
        Some("demo") if args.len() == 1 => Ok(Cli::Demo),
        Some("demo") => Err(format!("unexpected arguments: {}", args[1..].join(" "))),
        Some("-h" | "--help" | "help") => Ok(Cli::Help),
        Some(other) => Err(format!("unknown command {other}")),
        None => Err("no command given".into()),
    }
}

fn init_logging(default: &str) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
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
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
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
