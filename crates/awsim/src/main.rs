//! `awsim`: serves a scenario file for manual use.
//!
//! ```text
//! awsim [--listen 127.0.0.1:4566] [--scenario FILE.toml|FILE.json] [--dns 127.0.0.1:5353]
//! ```
//! Without `--scenario`, serves the embedded two-Region example. Control it through `/_awsim/...`. With
//! `--dns`, also answers DNS (UDP and TCP) for the emulated zones and the RDS endpoint names.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: awsim [--listen ADDR] [--scenario FILE] [--dns ADDR]\n\
  --listen ADDR     address to serve on (default 127.0.0.1:4566)\n\
  --scenario FILE   TOML or JSON scenario (default: the embedded two-Region example)\n\
  --dns ADDR        also answer DNS (UDP and TCP) on this address, e.g. 127.0.0.1:5353 (port 0: any)";

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let mut listen: SocketAddr = "127.0.0.1:4566".parse().expect("valid default");
    let mut scenario_path: Option<PathBuf> = None;
    let mut dns: Option<SocketAddr> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => match args.next().map(|a| a.parse()) {
                Some(Ok(a)) => listen = a,
                _ => return usage("--listen needs an address such as 127.0.0.1:4566"),
            },
            "--scenario" => match args.next() {
                Some(p) => scenario_path = Some(PathBuf::from(p)),
                None => return usage("--scenario needs a file"),
            },
            "--dns" => match args.next().map(|a| a.parse()) {
                Some(Ok(a)) => dns = Some(a),
                _ => return usage("--dns needs an address such as 127.0.0.1:5353"),
            },
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => return usage(&format!("unknown argument {other}")),
        }
    }
    let scenario = match &scenario_path {
        Some(p) => match awsim::Scenario::from_path(p) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("awsim: {e}");
                return ExitCode::from(2);
            }
        },
        None => awsim::Scenario::two_region_example(),
    };
    if let Err(e) = scenario.validate() {
        eprintln!("awsim: {e}");
        return ExitCode::from(2);
    }
    let sim = match awsim::start(listen, scenario).await {
        Ok(sim) => sim,
        Err(e) => {
            eprintln!("awsim: cannot start on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "awsim serving on {} (AWS_ENDPOINT_URL={0}); admin API under {0}/_awsim/",
        sim.url()
    );
    if let Some(addr) = dns {
        match sim.serve_dns(addr).await {
            Ok(bound) => println!("awsim answering DNS on {bound} (UDP and TCP)"),
            Err(e) => {
                eprintln!("awsim: cannot serve DNS on {addr}: {e}");
                sim.shutdown().await;
                return ExitCode::FAILURE;
            }
        }
    }
    let _ = tokio::signal::ctrl_c().await;
    sim.shutdown().await;
    ExitCode::SUCCESS
}

fn usage(problem: &str) -> ExitCode {
    eprintln!("awsim: {problem}\n{USAGE}");
    ExitCode::from(2)
}
