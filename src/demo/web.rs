//! `aurora-failover-bot demo --web`: a rehearsal sandbox in the browser. The AWS emulator, the Slack
//! stand-in and the bot run in this process, as in the scripted demo; the bot's own axum server also
//! serves a page that stands in for Slack (a channel with threads, edits, Block Kit sections, buttons
//! and modals; a user switcher; a command box) and scenario controls over the emulator's admin API.
//!
//! The page never talks to the bot directly: it asks the sandbox's API (`/sandbox/api/...`), which
//! signs each slash command, click and modal submission with the demo's signing secret and sends it to
//! the bot's real endpoints (`/slack/commands`, `/slack/interactions`) over HTTP, the path Slack takes.
//! What the bot posts reaches the Slack stand-in's Web API, which records it; the page is a view of
//! those records (`view`), pushed as server-sent events (`/sandbox/events`).
//!
//! Each scenario starts a fresh world: the emulator reloaded with the scenario's Regions, timings and
//! faults, and a new bot on a new SQLite store (so that its timeline is that scenario's audit trail),
//! on the same address. The sandbox listens on loopback only unless told otherwise (`--allow-remote`):
//! whoever reaches it acts as any of its users.

mod controls;
mod routes;
mod sandbox;
mod scenarios;
mod view;

use super::{ALICE, BOB, BOT_TOKEN, CHANNEL, DBA_GROUP, RECORD_READER, RECORD_WRITER, SIGNING_SECRET, ZONE};
use crate::settings::Settings;
use crate::startup::Application;
use anyhow::{Context, bail};
use sandbox::{Generation, Sandbox};
use scenarios::ScenarioId;
use standin::{Secret, SlackStandIn};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The second approver, in the DBA user group with bob.
const CAROL: &str = "U0CAROL";
/// Neither a requester nor an approver.
const DAVE: &str = "U0DAVE";

/// How long a stopping bot is given before the next scenario's starts anyway.
const STOP_GRACE: Duration = Duration::from_secs(20);

/// `demo --web`'s options.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Where the sandbox (and the bot behind it) listens; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Accept an address other than loopback.
    pub allow_remote: bool,
}

/// Checks where the sandbox may listen: loopback, or anything with `allow_remote` (`announce` then
/// warns). The error names the flag that would allow it.
fn check_listen(options: &Options) -> anyhow::Result<()> {
    if options.listen.ip().is_loopback() {
        return Ok(());
    }
    if !options.allow_remote {
        bail!(
            "--listen {}: the sandbox signs Slack requests and drives the AWS emulator for whoever reaches it, \
             so it listens on loopback only (such as 127.0.0.1:3000); add --allow-remote to listen on {} anyway",
            options.listen,
            options.listen.ip()
        );
    }
    Ok(())
}

/// The bot's configuration for one scenario: the demo's, on `listen`, its store under `dir`.
fn config_toml(listen: SocketAddr, api_url: &str, dir: &Path) -> String {
    format!(
        "# The sandbox's bot (aurora-failover-bot demo --web): read its audit trail with\n\
         # aurora-failover-bot audit --config {}\n{}",
        dir.join("sandbox.toml").display(),
        super::config_toml(&listen.to_string(), api_url, &dir.join("sandbox.db"))
    )
}

/// The stand-ins the bot runs against, for the whole session.
struct Outside {
    sim: awsim::Awsim,
    slack: SlackStandIn,
    /// Each scenario's store and configuration live in a directory under this one.
    dir: PathBuf,
}

/// Runs the sandbox until `stop` (Ctrl-C or SIGTERM). Errors: the address refused (`--listen`), or the
/// emulator, the stand-in or the bot failing to start.
pub async fn run(options: Options, stop: CancellationToken) -> anyhow::Result<()> {
    check_listen(&options)?;
    let outside = Outside {
        sim: awsim::start("127.0.0.1:0".parse()?, scenarios::world())
            .await
            .context("cannot start the AWS emulator")?,
        slack: SlackStandIn::start(&Secret::new(BOT_TOKEN))
            .await
            .context("cannot start the Slack stand-in")?,
        dir: std::env::temp_dir().join(format!("aurora-failover-bot-sandbox-{}", std::process::id())),
    };
    outside.slack.set_group(DBA_GROUP, &[BOB, CAROL]);
    std::fs::create_dir_all(&outside.dir).with_context(|| format!("cannot create {}", outside.dir.display()))?;
    let result = serve(&outside, options, stop).await;
    outside.slack.stop();
    outside.sim.shutdown().await;
    let _ = std::fs::remove_dir_all(&outside.dir);
    result
}

/// One bot per scenario, on the same address, until `stop`.
async fn serve(outside: &Outside, options: Options, stop: CancellationToken) -> anyhow::Result<()> {
    let (restart_tx, mut restart_rx) = tokio::sync::mpsc::channel::<ScenarioId>(4);
    let mut listen = options.listen;
    let mut sandbox: Option<Arc<Sandbox>> = None;
    let mut scenario = ScenarioId::Free;
    for generation in 1.. {
        scenarios::prepare(outside.sim.admin(), scenario);
        let dir = outside.dir.join(format!("{generation}-{}", scenario.as_str()));
        let first = sandbox.is_none();
        let (mut app, config_path) = start_bot(outside, listen, &dir, if first { 1 } else { 20 }).await?;
        if first {
            listen = SocketAddr::new(listen.ip(), app.port());
        }
        let sb = sandbox
            .get_or_insert_with(|| {
                Arc::new(Sandbox::new(
                    outside.sim.admin().clone(),
                    outside.slack.clone(),
                    listen,
                    options.allow_remote,
                    restart_tx.clone(),
                ))
            })
            .clone();
        let gen_stop = CancellationToken::new();
        sb.begin(Generation::new(
            generation,
            scenario,
            app.store.clone(),
            config_path.clone(),
            gen_stop.clone(),
        ));
        app.merge_routes(routes::router(sb.clone()));
        tokio::spawn(scenarios::watch(sb.clone(), scenario, gen_stop.clone()));
        let server = tokio::spawn(app.run_until_stopped(gen_stop.clone()));
        announce(first, listen, &config_path);
        let next = tokio::select! {
            () = stop.cancelled() => None,
            next = restart_rx.recv() => next,
        };
        gen_stop.cancel();
        let _ = tokio::time::timeout(STOP_GRACE, server).await;
        match next {
            Some(next) => scenario = next,
            None => break,
        }
    }
    Ok(())
}

/// Builds a bot on a fresh store in `dir`, listening on `listen`; returns it and its config file.
///
/// A restarted scenario binds the address the previous bot just let go of: `attempts` (250 ms apart)
/// give the kernel time to let go of it.
async fn start_bot(
    outside: &Outside,
    listen: SocketAddr,
    dir: &Path,
    attempts: u32,
) -> anyhow::Result<(Application, PathBuf)> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let toml = config_toml(listen, &outside.slack.api_url(), dir);
    let config_path = dir.join("sandbox.toml");
    std::fs::write(&config_path, &toml).with_context(|| format!("cannot write {}", config_path.display()))?;
    let settings = Settings::from_toml(&toml)?;
    let mut last = None;
    for attempt in 1..=attempts {
        if attempt > 1 {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        match Application::build(settings.clone(), super::deps(outside.sim.url())).await {
            Ok(app) => return Ok((app, config_path)),
            Err(e) => last = Some(e),
        }
    }
    let e = last.expect("tried at least once");
    let bind = e.chain().any(|c| c.to_string().contains("cannot listen on"));
    match e
        .chain()
        .find_map(|c| c.downcast_ref::<std::io::Error>())
        .filter(|_| bind)
    {
        Some(io) => bail!(
            "cannot listen on {listen}: {io} (is something else listening there? choose another address with \
             --listen 127.0.0.1:PORT, or port 0 for any free one)"
        ),
        None => Err(e).context("cannot start the sandbox's bot"),
    }
}

/// Prints where the sandbox is (first start; with a warning when it is reachable from the network) and
/// how to read this scenario's audit trail (while the sandbox runs: its store is removed at exit).
fn announce(first: bool, listen: SocketAddr, config_path: &Path) {
    if first && !listen.ip().is_loopback() {
        eprintln!(
            "WARNING: the sandbox listens on {listen}: anyone who can reach it can act as any sandbox user and \
             change the emulated AWS. Use it only on a network you trust."
        );
    }
    let exe = std::env::current_exe().map_or_else(|_| "aurora-failover-bot".to_owned(), |p| p.display().to_string());
    let mut out = std::io::stdout().lock();
    if first {
        let host = if listen.ip().is_unspecified() {
            SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), listen.port())
        } else {
            listen
        };
        let _ = writeln!(
            out,
            "aurora-failover-bot demo --web: the sandbox is ready (Ctrl-C stops it)."
        );
        let _ = writeln!(out, "sandbox: http://{host}/sandbox/");
    }
    let _ = writeln!(out, "audit: {exe} audit --config {}", config_path.display());
    let _ = out.flush();
}
