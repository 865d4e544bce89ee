//! The sandbox's state and actions: who sent what (so that answers at a response_url and modals opened
//! from a trigger reach the right sandbox user), the signed requests to the bot, and the controls over
//! the emulator.

use super::scenarios::ScenarioId;
use super::view::{self, Local, LocalKind};
use super::{ALICE, BOB, CAROL, CHANNEL, DAVE, SIGNING_SECRET};
use crate::store::Store;
use serde::Serialize;
use serde_json::{Value, json};
use standin::{Secret, SlackSender, SlackStandIn, Workspace};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A sandbox user: a Slack user id, a name and the part it plays.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct User {
    pub id: &'static str,
    pub name: &'static str,
    pub role: &'static str,
}

/// The sandbox's people, in the order the user switcher lists them.
pub const USERS: [User; 4] = [
    User {
        id: ALICE,
        name: "alice",
        role: "requester (on call)",
    },
    User {
        id: BOB,
        name: "bob",
        role: "approver (in @dba)",
    },
    User {
        id: CAROL,
        name: "carol",
        role: "approver (in @dba)",
    },
    User {
        id: DAVE,
        name: "dave",
        role: "stranger (neither)",
    },
];

fn known_user(id: &str) -> Option<&'static str> {
    USERS.iter().find(|u| u.id == id).map(|u| u.id)
}

/// One scenario's bot: its store and its configuration file (for `aurora-failover-bot audit`).
pub struct Generation {
    pub number: u64,
    pub scenario: ScenarioId,
    pub store: Arc<dyn Store>,
    pub config_path: PathBuf,
    /// Cancelled when the scenario ends: its event streams end with it.
    pub stop: CancellationToken,
    /// The stand-in's last call before this scenario: the page shows only later ones.
    pub since_seq: u64,
}

impl Generation {
    pub fn new(
        number: u64,
        scenario: ScenarioId,
        store: Arc<dyn Store>,
        config_path: PathBuf,
        stop: CancellationToken,
    ) -> Generation {
        Generation {
            number,
            scenario,
            store,
            config_path,
            stop,
            since_seq: 0,
        }
    }
}

/// Who the answers and modals are for.
#[derive(Default, Clone)]
pub(super) struct Origins {
    /// response_url id → the user whose command or click it came with.
    pub responses: HashMap<u64, &'static str>,
    /// trigger_id → the user whose click it came with.
    pub triggers: HashMap<String, &'static str>,
    /// The user who acted last (a trigger the sandbox did not issue is theirs).
    pub last_actor: Option<&'static str>,
}

#[derive(Default)]
struct Inner {
    generation: Option<Arc<Generation>>,
    origins: Origins,
    local: Vec<Local>,
    /// Per user, the stand-in's last call when their modal closed: a views.open after it is open.
    modal_closed: HashMap<&'static str, u64>,
    /// Per user, the errors the bot answered to their last submission (`response_action: errors`).
    modal_errors: HashMap<&'static str, Value>,
    next_trigger: u64,
}

/// The sandbox, shared by its routes and the scenario watcher.
pub struct Sandbox {
    admin: awsim::Admin,
    slack: SlackStandIn,
    sender: SlackSender,
    restart: mpsc::Sender<ScenarioId>,
    /// Any `Host` header is accepted (`--allow-remote`), else loopback names only.
    pub(super) allow_remote: bool,
    inner: Mutex<Inner>,
}

/// An action refused before it reached the bot or the emulator: HTTP 400 with this text.
#[derive(Debug)]
pub struct Refused(pub String);

fn refused<T>(why: impl Into<String>) -> Result<T, Refused> {
    Err(Refused(why.into()))
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

impl Sandbox {
    pub fn new(
        admin: awsim::Admin,
        slack: SlackStandIn,
        listen: SocketAddr,
        allow_remote: bool,
        restart: mpsc::Sender<ScenarioId>,
    ) -> Sandbox {
        let ip = if listen.ip().is_unspecified() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            listen.ip()
        };
        let bot = SocketAddr::new(ip, listen.port());
        Sandbox {
            admin,
            slack,
            sender: SlackSender::new(&format!("http://{bot}"), &Secret::new(SIGNING_SECRET)),
            restart,
            allow_remote,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn admin(&self) -> &awsim::Admin {
        &self.admin
    }

    /// The stand-in's last call so far.
    fn last_seq(&self) -> u64 {
        self.slack.calls().last().map_or(0, |c| c.seq)
    }

    /// Starts showing scenario `generation`: the channel starts empty.
    pub fn begin(&self, mut generation: Generation) {
        generation.since_seq = self.last_seq();
        let about = generation.scenario.about();
        let mut inner = self.lock();
        inner.generation = Some(Arc::new(generation));
        inner.local.clear();
        inner.modal_errors.clear();
        drop(inner);
        self.notice(&format!("Scenario: {}. {}", about.title, about.goal));
    }

    pub fn generation(&self) -> Option<Arc<Generation>> {
        self.lock().generation.clone()
    }

    /// A line from the sandbox itself in the channel, for everyone (a control used, a scenario event).
    pub fn notice(&self, text: &str) {
        self.push_local(None, LocalKind::Notice, text.to_owned(), Value::Null);
    }

    fn push_local(&self, to: Option<&'static str>, kind: LocalKind, text: String, blocks: Value) {
        let after_seq = self.last_seq();
        let mut inner = self.lock();
        let n = inner.local.len() as u64;
        inner.local.push(Local {
            after_seq,
            n,
            to,
            kind,
            text,
            blocks,
            at: jiff::Timestamp::now(),
        });
    }

    /// Everything the page renders, as JSON (see `view::state`).
    pub async fn state(&self) -> Value {
        let (generation, local, origins, closed, errors) = {
            let inner = self.lock();
            (
                inner.generation.clone(),
                inner.local.clone(),
                inner.origins.clone(),
                inner.modal_closed.clone(),
                inner.modal_errors.clone(),
            )
        };
        let calls = self.slack.calls();
        let parts = view::Parts {
            generation: generation.as_deref(),
            calls: &calls,
            local: &local,
            origins: &origins,
            modal_closed: &closed,
            modal_errors: &errors,
            aws: self.admin.snapshot(),
            aws_calls: self.admin.calls(),
        };
        view::state(parts).await
    }

    /// A response_url for `user`'s command or click.
    fn response_url_for(&self, user: &'static str) -> String {
        let url = self.slack.response_url();
        if let Some(id) = url.rsplit('/').next().and_then(|n| n.parse().ok()) {
            let mut inner = self.lock();
            inner.origins.responses.insert(id, user);
            inner.origins.last_actor = Some(user);
        }
        url
    }

    fn user(id: &str) -> Result<&'static str, Refused> {
        known_user(id).map_or_else(|| refused(format!("{id:?} is not a sandbox user")), Ok)
    }

    /// `user` types `line` (`/aurora ...`): echoed to them, sent to `/slack/commands` signed, the bot's
    /// immediate answer shown to them. Returns the bot's HTTP status.
    pub async fn command(&self, user: &str, line: &str) -> Result<u16, Refused> {
        let user = Self::user(user)?;
        let line = line.trim();
        let Some(text) = line
            .strip_prefix("/aurora")
            .filter(|t| t.is_empty() || t.starts_with(' '))
        else {
            return refused(format!(
                "{line:?}: only the bot's command goes to it here: type /aurora help, /aurora status or \
                 /aurora failover orders"
            ));
        };
        if line.len() > 4000 {
            return refused("a slash command is at most 4,000 characters long");
        }
        self.push_local(Some(user), LocalKind::Command, line.to_owned(), Value::Null);
        let url = self.response_url_for(user);
        let answer = self.sender.command(user, CHANNEL, text.trim(), &url, now()).await;
        self.answered(user, answer.status, &answer.body);
        Ok(answer.status)
    }

    /// Shows `user` the bot's immediate answer to a request (JSON with `text`/`blocks`), or its failure.
    fn answered(&self, user: &'static str, status: u16, body: &str) {
        match (status, serde_json::from_str::<Value>(body)) {
            (200, Ok(v)) if v.get("text").is_some() || v.get("blocks").is_some() => {
                let text = v.get("text").and_then(Value::as_str).unwrap_or_default().to_owned();
                let blocks = v.get("blocks").cloned().unwrap_or(Value::Null);
                self.push_local(Some(user), LocalKind::Answer, text, blocks);
            }
            (200, _) => {}
            (0, _) => self.push_local(
                Some(user),
                LocalKind::Error,
                format!("The bot could not be reached: {body}"),
                Value::Null,
            ),
            (status, _) => self.push_local(
                Some(user),
                LocalKind::Error,
                format!(
                    "The bot answered HTTP {status}: {}",
                    body.chars().take(300).collect::<String>()
                ),
                Value::Null,
            ),
        }
    }

    /// `user` clicks button `action_id` (`value`, in block `block_id`) on message `message_ts`: a
    /// signed `block_actions` to `/slack/interactions`, with a trigger id of the sandbox's own.
    pub async fn click(
        &self,
        user: &str,
        message_ts: &str,
        block_id: &str,
        action_id: &str,
        value: &str,
    ) -> Result<u16, Refused> {
        let user = Self::user(user)?;
        if action_id.is_empty() || action_id.len() > 255 || value.len() > 2000 {
            return refused("a button has an action id (at most 255 characters) and a value (at most 2,000)");
        }
        if !message_ts.is_empty() && !self.posted_in_this_scenario(message_ts) {
            return refused(format!(
                "message {message_ts} is not in this scenario's channel (it belongs to an earlier scenario, or \
                 never was)"
            ));
        }
        let url = self.response_url_for(user);
        let trigger = {
            let mut inner = self.lock();
            inner.next_trigger += 1;
            let t = format!("{}.{}.standin-sandbox", now(), inner.next_trigger);
            inner.origins.triggers.insert(t.clone(), user);
            t
        };
        let mut payload =
            SlackSender::click_payload_in(&Workspace::default(), user, CHANNEL, message_ts, action_id, value, &url);
        payload["trigger_id"] = json!(trigger);
        if !block_id.is_empty() {
            payload["actions"][0]["block_id"] = json!(block_id);
        }
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", &payload.to_string())
            .finish();
        let answer = self.sender.post_signed("/slack/interactions", &body, now()).await;
        self.answered(user, answer.status, &answer.body);
        Ok(answer.status)
    }

    /// Whether the bot posted a message `ts` since the scenario started (a button is on a message).
    fn posted_in_this_scenario(&self, ts: &str) -> bool {
        let since = self.generation().map_or(0, |g| g.since_seq);
        self.slack
            .calls()
            .iter()
            .any(|c| c.seq > since && c.method == "chat.postMessage" && c.ts.as_deref() == Some(ts))
    }

    /// `user` submits their open modal with `values` (block id → text): a signed `view_submission`.
    /// The bot's `response_action: errors` keeps it open with the errors; otherwise it closes.
    pub async fn submit(&self, user: &str, values: &HashMap<String, String>) -> Result<u16, Refused> {
        let user = Self::user(user)?;
        let calls = self.slack.calls();
        let (closed, origins) = {
            let inner = self.lock();
            let origins = Origins {
                responses: HashMap::new(),
                triggers: inner.origins.triggers.clone(),
                last_actor: inner.origins.last_actor,
            };
            let since = inner.generation.as_ref().map_or(0, |g| g.since_seq);
            (inner.modal_closed.get(user).copied().unwrap_or(0).max(since), origins)
        };
        let Some(view) = view::open_modal(&calls, &origins, user, closed) else {
            return refused("no modal is open for this user");
        };
        let callback_id = view.get("callback_id").and_then(Value::as_str).unwrap_or_default();
        let metadata = view.get("private_metadata").and_then(Value::as_str).unwrap_or_default();
        let state = view::input_values(&view, values);
        let answer = self.sender.submit_view(user, callback_id, metadata, state, now()).await;
        let errors = serde_json::from_str::<Value>(&answer.body)
            .ok()
            .filter(|v| v.get("response_action").and_then(Value::as_str) == Some("errors"))
            .and_then(|v| v.get("errors").cloned());
        match errors {
            Some(errors) if answer.status == 200 => {
                self.lock().modal_errors.insert(user, errors);
            }
            _ => {
                self.close_modal(user);
                self.answered(user, answer.status, &answer.body);
            }
        }
        Ok(answer.status)
    }

    /// Closes `user`'s modal without submitting it (Slack sends the app nothing unless asked to).
    pub fn close_modal(&self, user: &str) {
        let Some(user) = known_user(user) else { return };
        let seq = self.last_seq();
        let mut inner = self.lock();
        inner.modal_closed.insert(user, seq);
        inner.modal_errors.remove(user);
    }

    /// Ends the scenario and starts `id` on a fresh bot and world.
    pub async fn start_scenario(&self, id: &str) -> Result<(), Refused> {
        let Some(id) = ScenarioId::parse(id) else {
            return refused(format!("no scenario {id:?}"));
        };
        self.restart
            .send(id)
            .await
            .map_err(|_| Refused("the sandbox is stopping".into()))
    }
}
