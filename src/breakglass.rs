//! Break-glass, for when Slack is unavailable: `aurora-failover-bot failover --break-glass --reason`.
//!
//! The serving bot holds its store's lock, and during a Slack outage it is usually still running. So
//! the command first tries the bot's admin socket, `<store.path>.admin.sock`: a Unix socket only the
//! bot's own OS user may open (the file is mode 0600, and the bot checks the peer's uid as the kernel
//! reports it). When a bot answers there, it takes the order and streams the run's progress back.
//! When none does, the command takes the store's lock and runs the runbook itself. Either way it is
//! the same store, journal, cluster lock and pre-flight checks (`Approvals::break_glass`): only the
//! second person is skipped, and the audit records the OS user, the AWS caller identity and the
//! reason.
//!
//! The socket speaks JSON lines: the client sends one [`Order`], the bot answers with [`Event`]s,
//! the last an `end`.

use crate::approval::{Approvals, BreakGlass};
use crate::store::{RequestId, RunState, Store};
use crate::types::{Mode, Region};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// How long an interrupted run may take to reach its next pause.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// How long the AWS caller identity may take to read (it is recorded, not required).
const CALLER_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a run's journal is read for new lines while it is followed.
const FOLLOW_EVERY: Duration = Duration::from_millis(500);
/// The largest order accepted on the socket (an order is a few hundred bytes).
const ORDER_LIMIT: u64 = 16 * 1024;
/// How long a client may take to send its order.
const ORDER_TIMEOUT: Duration = Duration::from_secs(10);

/// The admin socket of the bot whose store is `store_path`: `<store_path>.admin.sock`, next to the
/// store's lock file.
pub fn socket_path(store_path: &Path) -> PathBuf {
    let mut p = store_path.as_os_str().to_owned();
    p.push(".admin.sock");
    PathBuf::from(p)
}

/// A break-glass order, as typed at the terminal (checked by the bot against its configuration).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// A configured cluster's name.
    pub cluster: String,
    /// One of the cluster's Regions (`--to`), or the bot's choice.
    pub to: Option<String>,
    /// `detach`, `failover` or `switchover` (`--mode`), or the bot's choice.
    pub mode: Option<String>,
    /// Why Slack approval is skipped.
    pub reason: String,
}

/// How a break-glass order ended, for the exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Succeeded,
    /// Stopped for a person (a deadline, an AWS refusal, a stuck target); the bot keeps watching.
    NeedsAttention,
    Failed,
    Abandoned,
    /// Not started: the order, the plan or its checks said no. Nothing was changed.
    Refused,
    /// The follower lost the run (the bot went away); the run's state is in the store.
    Unknown,
    /// Ctrl-C at the terminal.
    Interrupted,
}

impl Outcome {
    /// The command's exit status: 0 succeeded, 3 needs attention, 130 interrupted (as a shell
    /// reports SIGINT), 1 otherwise.
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Succeeded => 0,
            Outcome::NeedsAttention => 3,
            Outcome::Interrupted => 130,
            _ => 1,
        }
    }
}

/// The longest reason accepted, in characters: it is posted to Slack with the AWS identity and printed
/// in the audit's table.
pub const REASON_LIMIT: usize = 500;

/// A reason is one line of at most [`REASON_LIMIT`] characters, not blank, without control
/// characters (they would reach the terminals of whoever reads the audit). The error says which.
pub fn check_reason(reason: &str) -> Result<(), String> {
    if reason.trim().is_empty() {
        return Err("a reason is required (--reason \"why Slack approval is skipped\")".into());
    }
    if reason.chars().count() > REASON_LIMIT {
        return Err(format!(
            "the reason is longer than {REASON_LIMIT} characters; keep it shorter"
        ));
    }
    if reason.chars().any(|c| c.is_control() || invisible(c)) {
        return Err(
            "the reason must be one line of visible text: no control characters, line or paragraph separators, \
             or invisible formatting (zero-width or direction marks)"
                .into(),
        );
    }
    Ok(())
}

/// Characters that would break a line or hide, reorder or fake text where the reason is shown: line
/// and paragraph separators, zero-width characters, bidirectional controls, the byte-order mark.
fn invisible(c: char) -> bool {
    matches!(c, '\u{2028}' | '\u{2029}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

/// The configured cluster `name`, or why not (naming the configured ones).
pub fn configured<'a>(
    settings: &'a crate::settings::Settings,
    name: &str,
) -> Result<&'a crate::settings::ClusterSettings, String> {
    settings.cluster(name).ok_or_else(|| {
        format!(
            "no cluster named {name:?} is configured; the configured clusters are: {}",
            settings.cluster_names().join(", ")
        )
    })
}

/// The order's cluster, Region and mode, checked against the configuration; the error says what is
/// wrong and what would be right.
pub fn parse_order<'a>(
    settings: &'a crate::settings::Settings,
    order: &Order,
) -> Result<(&'a crate::settings::ClusterSettings, Option<Region>, Option<Mode>), String> {
    let c = configured(settings, &order.cluster)?;
    let to = match order.to.as_deref() {
        None => None,
        Some(t) => Some(Region::parse(t).filter(|r| c.regions.contains(r)).ok_or_else(|| {
            let regions: Vec<_> = c.regions.iter().map(Region::as_str).collect();
            format!("{t:?} is not one of the Regions of {}: {}", c.name, regions.join(", "))
        })?),
    };
    let mode = match order.mode.as_deref() {
        None => None,
        // A rebuild is not a way to move the writer: never started without a second person.
        Some(m) => Some(
            Mode::parse(m)
                .filter(|m| *m != Mode::Rebuild)
                .ok_or_else(|| format!("{m:?} is not a mode: detach, failover or switchover"))?,
        ),
    };
    Ok((c, to, mode))
}

/// One line of progress, or the end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    Line { text: String },
    End { outcome: Outcome, text: String },
}

fn line(tx: &UnboundedSender<Event>, text: impl Into<String>) {
    let _ = tx.send(Event::Line { text: text.into() });
}

/// Takes break-glass orders: the engine, and the AWS configuration whose identity the audit names.
pub struct Desk {
    pub approvals: Approvals,
    pub store: Arc<dyn Store>,
    pub aws_config: aws_config::SdkConfig,
}

impl Desk {
    /// Checks `order`, starts its run as `login` (an OS user) and follows it to its end or until it
    /// needs attention, telling `tx` as it goes. Returns how it ended (also sent as the last event).
    ///
    /// `interrupt` (the terminal's Ctrl-C, when this process runs the run itself) stops this
    /// process's runs at their next pause; a run that had changed nothing in AWS is then abandoned,
    /// one that had is left, saved, for the next bot on the store to finish.
    pub async fn take(
        &self,
        order: &Order,
        login: &str,
        via: &str,
        tx: &UnboundedSender<Event>,
        interrupt: Option<&CancellationToken>,
    ) -> Outcome {
        let (outcome, text) = match self.start(order, login, via, tx).await {
            Err(why) => (Outcome::Refused, why),
            Ok(request) => match interrupt {
                None => follow(self.store.as_ref(), request, tx).await,
                Some(stop) => tokio::select! {
                    ended = follow(self.store.as_ref(), request, tx) => ended,
                    () = stop.cancelled() => self.interrupted(request, login).await,
                },
            },
        };
        let _ = tx.send(Event::End { outcome, text });
        outcome
    }

    /// Stops this process's runs at their next pause and abandons `request`'s run if it had changed
    /// nothing in AWS.
    async fn interrupted(&self, request: RequestId, login: &str) -> (Outcome, String) {
        let launcher = &self.approvals.launcher;
        launcher.runner.shutdown.cancel();
        launcher.tracker.close();
        let _ = tokio::time::timeout(STOP_GRACE, launcher.tracker.wait()).await;
        let Some(person) = crate::types::Person::terminal(login) else {
            return (Outcome::Interrupted, "interrupted".into());
        };
        let text = match self.approvals.abandon_unchanged(request, &person).await {
            Ok(true) => "interrupted before any change to AWS: the run is abandoned, nothing was changed, and the \
                         cluster is free"
                .to_owned(),
            Ok(false) => "interrupted after the run changed AWS: it stopped at its next pause, recorded, and holds \
                          the cluster until a bot started on this store (`aurora-failover-bot serve`) finishes it"
                .to_owned(),
            Err(e) => format!(
                "interrupted; the run's state could not be read ({e}): start a bot on this store \
                 (`aurora-failover-bot serve`) to finish it"
            ),
        };
        (Outcome::Interrupted, text)
    }

    async fn start(
        &self,
        order: &Order,
        login: &str,
        via: &str,
        tx: &UnboundedSender<Event>,
    ) -> Result<RequestId, String> {
        check_reason(&order.reason)?;
        let (c, to, mode) = parse_order(&self.approvals.settings, order)?;
        let aws_caller = match tokio::time::timeout(CALLER_TIMEOUT, crate::aws::iam::caller_arn(&self.aws_config)).await
        {
            Ok(Ok(arn)) => arn,
            Ok(Err(e)) => format!("unknown ({e})"),
            Err(_) => format!(
                "unknown (sts:GetCallerIdentity did not answer within {} s)",
                CALLER_TIMEOUT.as_secs()
            ),
        };
        line(tx, format!("AWS identity: {aws_caller}"));
        line(tx, format!("planning {} with every pre-flight check...", c.name));
        let who = BreakGlass {
            login: login.to_owned(),
            aws_caller,
            reason: order.reason.clone(),
            via: via.to_owned(),
        };
        let started = self.approvals.break_glass(&who, c, to, mode).await.map_err(refused)?;
        let plan = &started.plan;
        line(
            tx,
            format!(
                "request #{}: {} from {} ({}) to {} ({}) by {}, started without a second approver; posted to the incident channel when Slack is reachable",
                started.request,
                plan.cluster,
                plan.from.region,
                plan.from.cluster_id,
                plan.to.region,
                plan.to.cluster_id,
                plan.mode
            ),
        );
        Ok(started.request)
    }
}

/// A refusal of `Approvals::break_glass`, for the terminal.
fn refused(e: crate::approval::BreakGlassRefusal) -> String {
    use crate::approval::{BreakGlassRefusal, RequestRefusal};
    let text = e.to_string();
    let text = text.trim_end_matches('.');
    match e {
        BreakGlassRefusal::NotPlanned { .. } | BreakGlassRefusal::Store { .. } => {
            format!("{text}. Nothing was changed.")
        }
        BreakGlassRefusal::Request(RequestRefusal::OneAtATime { .. }) => format!(
            "not started: {text}. Nothing was changed. `aurora-failover-bot audit` shows where it stands; a run \
             interrupted at a terminal after changing AWS is finished by the next bot started on this store"
        ),
        _ => format!("not started: {text}. Nothing was changed."),
    }
}

/// Reads the run of `request` from the store until it ends or needs attention, sending each new
/// journal line. Store errors are retried (the run goes on regardless).
async fn follow(store: &dyn Store, request: RequestId, tx: &UnboundedSender<Event>) -> (Outcome, String) {
    let mut seen = 0;
    loop {
        tokio::time::sleep(FOLLOW_EVERY).await;
        let run = match store.run_of_request(request).await {
            Ok(Some(run)) => run,
            Ok(None) => continue,
            Err(e) => {
                warn!(error = %e, "cannot read the run to follow it");
                continue;
            }
        };
        if let Ok(journal) = store.journal_of(run.id).await {
            for j in journal.iter().skip(seen) {
                let detail = if j.detail.is_empty() {
                    String::new()
                } else {
                    format!(": {}", j.detail)
                };
                // The step as the Slack thread names it ("Wait for Route 53 INSYNC").
                let step = crate::runbook::Step::parse(&j.step).map_or(j.step.as_str(), |s| s.label());
                line(
                    tx,
                    format!("{} {step}: {}{detail}", j.at.strftime("%H:%M:%SZ"), j.event),
                );
            }
            seen = seen.max(journal.len());
        }
        let end = |outcome, what: &str| (outcome, format!("run {} {what}", run.id));
        match run.state {
            RunState::Running => {}
            RunState::Succeeded => return end(Outcome::Succeeded, "succeeded"),
            RunState::Failed => return end(Outcome::Failed, "failed: see the lines above"),
            RunState::Abandoned => return end(Outcome::Abandoned, "was abandoned"),
            RunState::NeedsAttention => {
                return end(
                    Outcome::NeedsAttention,
                    "needs attention: see the lines above. The bot keeps watching it; resume or abandon it from Slack, or see `aurora-failover-bot audit`",
                );
            }
        }
    }
}

/// The OS login name of `uid`, or `uid<N>` when it has none.
fn login_of(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
        .filter(|n| crate::types::Person::terminal(n).is_some())
        .unwrap_or_else(|| format!("uid{uid}"))
}

/// The login name of the user running this process.
pub fn own_login() -> String {
    login_of(nix::unistd::getuid().as_raw())
}

/// Serves the admin socket at `path` until `stop`: one order per connection, from the bot's own OS
/// user (or root) only. A stale socket file (from a bot that died) is replaced: the caller holds the
/// store's lock, so no other bot is using it.
pub async fn serve(path: PathBuf, desk: Arc<Desk>, stop: CancellationToken) {
    let _ = std::fs::remove_file(&path);
    let listener = match tokio::net::UnixListener::bind(&path) {
        Ok(l) => l,
        Err(e) => {
            warn!(path = %path.display(), error = %e, "cannot open the admin socket; break-glass from a terminal cannot reach this bot");
            return;
        }
    };
    if let Err(e) = std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)) {
        warn!(path = %path.display(), error = %e, "cannot restrict the admin socket to the bot's user; not serving it");
        let _ = std::fs::remove_file(&path);
        return;
    }
    info!(path = %path.display(), "admin socket open (break-glass from a terminal)");
    let tasks = tokio_util::task::TaskTracker::new();
    loop {
        let stream = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    warn!(error = %e, "admin socket accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let desk = desk.clone();
        tasks.spawn(async move { handle(stream, desk).await });
    }
    let _ = std::fs::remove_file(&path);
}

/// One connection: who it is, its order, then the run's progress until it ends (or the client
/// leaves: the run goes on).
async fn handle(stream: tokio::net::UnixStream, desk: Arc<Desk>) {
    let (read, mut write) = stream.into_split();
    let (tx, mut rx) = unbounded_channel();
    let peer = write.as_ref().peer_cred().map(|c| c.uid());
    let own = nix::unistd::getuid().as_raw();
    match peer {
        Ok(uid) if uid == own || uid == 0 => {
            let mut reader = BufReader::new(tokio::io::AsyncReadExt::take(read, ORDER_LIMIT));
            let mut order = String::new();
            let got = tokio::time::timeout(ORDER_TIMEOUT, reader.read_line(&mut order)).await;
            let order = match got {
                Err(_) => Err("no order line within 10 s"),
                Ok(Err(_)) | Ok(Ok(0)) => Err("no order line"),
                Ok(Ok(_)) => serde_json::from_str::<Order>(&order).map_err(
                    |_| "not an order: one JSON line {\"cluster\", \"to\", \"mode\", \"reason\"} of at most 16 KiB",
                ),
            };
            match order {
                Ok(order) => {
                    let login = login_of(uid);
                    info!(login, cluster = order.cluster, "break-glass order on the admin socket");
                    // Its own task: a client that leaves does not cancel the order half-way.
                    tokio::spawn(async move { desk.take(&order, &login, "admin socket", &tx, None).await });
                }
                Err(why) => {
                    warn!(why, "refused an admin socket connection");
                    let _ = tx.send(Event::End {
                        outcome: Outcome::Refused,
                        text: why.into(),
                    });
                }
            }
        }
        Ok(uid) => {
            warn!(uid, "refused an admin socket connection from another user");
            let _ = tx.send(Event::End {
                outcome: Outcome::Refused,
                text: format!("only the bot's own OS user (uid {own}) may use its admin socket"),
            });
        }
        Err(e) => {
            warn!(error = %e, "cannot tell who is on the admin socket; refused");
            return;
        }
    }
    while let Some(event) = rx.recv().await {
        let mut json = serde_json::to_string(&event).unwrap_or_default();
        json.push('\n');
        if write.write_all(json.as_bytes()).await.is_err() {
            return;
        }
        if matches!(event, Event::End { .. }) {
            return;
        }
    }
}

/// The terminal's side of the socket: sends `order` to the bot at `path` and prints its events.
/// `Ok(None)` when no bot answers there.
pub async fn hand_over(path: &Path, order: &Order) -> anyhow::Result<Option<Outcome>> {
    let stream = match tokio::net::UnixStream::connect(path).await {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => anyhow::bail!(
            "the admin socket {} is not yours: run this as the bot's OS user (or root)",
            path.display()
        ),
        // Nobody listening (no file, a stale one, a path too long for a socket): none serves here.
        Err(_) => return Ok(None),
    };
    say(&format!(
        "a bot is serving this store: handing the order to it ({})",
        path.display()
    ));
    let (read, mut write) = stream.into_split();
    let mut json = serde_json::to_string(order)?;
    json.push('\n');
    write.write_all(json.as_bytes()).await?;
    let mut lines = BufReader::new(read).lines();
    while let Some(l) = lines.next_line().await? {
        match serde_json::from_str::<Event>(&l) {
            Ok(Event::Line { text }) => say(&text),
            Ok(Event::End { outcome, text }) => {
                say(&text);
                return Ok(Some(outcome));
            }
            Err(_) => say(&l),
        }
    }
    say("the bot closed the connection before the run ended; the run goes on (see `aurora-failover-bot audit`)");
    Ok(Some(Outcome::Unknown))
}

/// Writes a line to stdout; a closed terminal (SIGHUP, a dropped SSH session) is not an error: the
/// order goes on and is recorded.
pub fn say(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{text}");
}

/// Prints `rx`'s events to stdout until the end.
pub async fn print_events(mut rx: tokio::sync::mpsc::UnboundedReceiver<Event>) {
    while let Some(event) = rx.recv().await {
        match event {
            Event::Line { text } | Event::End { text, .. } => say(&text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_socket_sits_next_to_the_store() {
        assert_eq!(
            socket_path(Path::new("/var/lib/afb/bot.db")),
            PathBuf::from("/var/lib/afb/bot.db.admin.sock")
        );
    }

    #[test]
    fn events_are_json_lines_with_a_kind() {
        let e = Event::End {
            outcome: Outcome::NeedsAttention,
            text: "run 3 needs attention".into(),
        };
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(
            json,
            r#"{"kind":"end","outcome":"needs_attention","text":"run 3 needs attention"}"#
        );
        assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), e);
        assert_eq!(Outcome::Succeeded.exit_code(), 0);
        assert_eq!(Outcome::NeedsAttention.exit_code(), 3);
        assert_eq!(Outcome::Refused.exit_code(), 1);
    }
}
