//! The fake Slack Web API: records every call, answers as Slack does, fails on request.

use crate::{STANDIN_TEAM, Secret};
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// One call the fake received.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub seq: u64,
    /// `chat.postMessage`, `chat.update`, `chat.postEphemeral`, `usergroups.users.list`, or
    /// `response` for a response_url post.
    pub method: String,
    /// The JSON body (or the query, for GETs).
    pub body: Value,
    /// The `ts` the fake gave a posted message.
    pub ts: Option<String>,
    /// For a response_url post, which one.
    pub response_id: Option<u64>,
    /// The HTTP status the fake answered.
    pub status: u16,
    /// When it arrived, in milliseconds since the fake started.
    pub at_ms: u64,
}

impl Recorded {
    pub fn text(&self) -> &str {
        self.body.get("text").and_then(Value::as_str).unwrap_or_default()
    }

    pub fn thread_ts(&self) -> Option<&str> {
        self.body.get("thread_ts").and_then(Value::as_str)
    }

    pub fn field(&self, name: &str) -> Option<&str> {
        self.body.get(name).and_then(Value::as_str)
    }
}

/// A message the fake holds, as Slack keeps it: what conversations.history and conversations.replies
/// answer with.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub channel: String,
    pub ts: String,
    /// The parent's `ts`, for a reply in a thread.
    pub thread_ts: Option<String>,
    /// A reply also shown in the channel (`reply_broadcast`).
    pub broadcast: bool,
    pub text: String,
    /// The message metadata (`{event_type, event_payload}`), as posted.
    pub metadata: Option<Value>,
}

impl Message {
    /// The metadata payload's `key`, if any.
    pub fn key(&self) -> Option<&str> {
        self.metadata.as_ref()?.pointer("/event_payload/key")?.as_str()
    }

    /// As Slack shows it in conversations.history / conversations.replies.
    fn json(&self, with_metadata: bool) -> Value {
        let mut m =
            json!({"type": "message", "user": "U0BOT", "bot_id": "B0STANDIN", "ts": self.ts, "text": self.text});
        if let Some(t) = &self.thread_ts {
            m["thread_ts"] = json!(t);
            if self.broadcast {
                m["subtype"] = json!("thread_broadcast");
            }
        }
        if with_metadata && let Some(meta) = &self.metadata {
            m["metadata"] = meta.clone();
        }
        m
    }
}

/// Which chat.postMessage to hold the answer of (see [`SlackStandIn::hold_next_post`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostKind {
    /// A message in the channel (not in a thread).
    TopLevel,
    /// A reply in a thread, not broadcast.
    Reply,
    /// A reply in a thread also sent to the channel.
    Broadcast,
}

/// A failure to inject into the next Web API (or response_url) calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// HTTP 429 with `Retry-After` in seconds.
    RateLimited { retry_after_secs: u64 },
    /// HTTP 503.
    Unavailable,
}

struct Inner {
    started: std::time::Instant,
    calls: Vec<Recorded>,
    seq: u64,
    groups: BTreeMap<String, Vec<String>>,
    failures: VecDeque<Failure>,
    /// One failure for the next call of a method.
    method_failures: BTreeMap<String, Failure>,
    /// Every call fails this way until the outage ends.
    outage: Option<Failure>,
    /// Calls to these methods are answered only after this long.
    delays: BTreeMap<String, Duration>,
    print: bool,
    next_response: u64,
    /// The workspace `auth.test` names.
    team_id: String,
    /// When set, `auth.test` fails with this error code.
    auth_test_error: Option<String>,
    /// When set, the scopes `auth.test` says the token has (Slack's `x-oauth-scopes` header).
    granted_scopes: Option<String>,
    /// Scopes the token lacks, by method: calls answer `missing_scope` naming the scope.
    missing_scopes: BTreeMap<String, String>,
    /// Socket Mode, once enabled: where `apps.connections.open` connects the app.
    socket: Option<crate::SocketModeFake>,
    /// Channels the bot is not in: posts there answer `not_in_channel`.
    not_in: Vec<String>,
    /// Keep every call (off for benchmarks, whose calls would pile up here).
    keep: bool,
    /// Every message posted (kept even when `keep` is off: the read-back needs them).
    messages: Vec<Message>,
    /// The next chat.postMessage of this kind is recorded and stored, then answered only after this
    /// long (a bot killed meanwhile never learns it was posted).
    hold: Option<(PostKind, Duration)>,
    /// Calls to a method in a channel that answer this error code (`channel_not_found`, ...).
    refusals: BTreeMap<(String, String), String>,
}

/// The fake Slack Web API.
#[derive(Clone)]
pub struct SlackStandIn {
    inner: Arc<Mutex<Inner>>,
    /// The bot token it accepts.
    token: Arc<Mutex<String>>,
    addr: SocketAddr,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for SlackStandIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackStandIn")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

fn ok(body: Value) -> Response {
    axum::Json(body).into_response()
}

impl SlackStandIn {
    /// Starts the fake on a free loopback port. `token` is the bot token it accepts.
    pub async fn start(token: &Secret) -> std::io::Result<SlackStandIn> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let fake = SlackStandIn {
            inner: Arc::new(Mutex::new(Inner {
                started: std::time::Instant::now(),
                calls: Vec::new(),
                seq: 0,
                groups: BTreeMap::new(),
                failures: VecDeque::new(),
                method_failures: BTreeMap::new(),
                outage: None,
                delays: BTreeMap::new(),
                print: false,
                next_response: 0,
                team_id: STANDIN_TEAM.to_owned(),
                auth_test_error: None,
                granted_scopes: None,
                missing_scopes: BTreeMap::new(),
                not_in: Vec::new(),
                socket: None,
                keep: true,
                messages: Vec::new(),
                hold: None,
                refusals: BTreeMap::new(),
            })),
            token: Arc::new(Mutex::new(token.expose().to_owned())),
            addr,
            shutdown: CancellationToken::new(),
        };
        let app = Router::new()
            .route("/api/usergroups.users.list", get(group_members))
            .route("/api/auth.test", get(auth_test).post(auth_test))
            .route("/api/conversations.history", get(history))
            .route("/api/conversations.replies", get(replies))
            .route("/api/apps.connections.open", post(connections_open))
            .route("/api/{method}", post(api))
            .route("/response/{id}", post(response))
            .with_state(fake.clone());
        let stop = fake.shutdown.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
        });
        Ok(fake)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The Web API base URL to give the bot (`slack.api_url`).
    pub fn api_url(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    /// A fresh response_url, as Slack puts in each command and click.
    pub fn response_url(&self) -> String {
        let mut inner = self.lock();
        inner.next_response += 1;
        format!("http://{}/response/{}", self.addr, inner.next_response)
    }

    /// Prints every message the bot sends, as it arrives (for the demo).
    pub fn print_messages(&self, on: bool) {
        self.lock().print = on;
    }

    /// Whether to keep every call for `calls()` (on by default). Benchmarks turn it off, so that what
    /// they send does not pile up in memory here.
    pub fn keep_calls(&self, on: bool) {
        self.lock().keep = on;
    }

    /// Turns on Socket Mode for an app whose app-level token is `app_token`: `apps.connections.open`
    /// answers with the URL of a fresh [`crate::SocketModeFake`] (the same one on every call).
    pub async fn enable_socket_mode(&self, app_token: &str) -> std::io::Result<crate::SocketModeFake> {
        if let Some(s) = self.lock().socket.clone() {
            s.accept_app_token(app_token);
            return Ok(s);
        }
        let socket = crate::SocketModeFake::start(app_token, self.shutdown.clone()).await?;
        self.lock().socket = Some(socket.clone());
        Ok(socket)
    }

    /// Makes `users` the members of user group `group`.
    pub fn set_group(&self, group: &str, users: &[&str]) {
        self.lock()
            .groups
            .insert(group.to_owned(), users.iter().map(|u| (*u).to_owned()).collect());
    }

    /// Makes `auth.test` answer with an `x-oauth-scopes` header listing `scopes` (as Slack does for
    /// the token's scopes), or with none (`None`, the default).
    pub fn grant_scopes(&self, scopes: Option<&[&str]>) {
        self.lock().granted_scopes = scopes.map(|s| s.join(","));
    }

    /// Makes `auth.test` fail with `error` (e.g. `invalid_auth`), or answer again (`None`).
    pub fn fail_auth_test(&self, error: Option<&str>) {
        self.lock().auth_test_error = error.map(str::to_owned);
    }

    /// Accepts `token` as the bot token from now on (the previous one is refused with `invalid_auth`).
    pub fn accept_token(&self, token: &str) {
        *self.token.lock().unwrap_or_else(|p| p.into_inner()) = token.to_owned();
    }

    /// Makes calls to `method` answer `missing_scope` naming `scope` (or answer again: `None`).
    pub fn lack_scope(&self, method: &str, scope: Option<&str>) {
        let mut inner = self.lock();
        match scope {
            Some(s) => inner.missing_scopes.insert(method.to_owned(), s.to_owned()),
            None => inner.missing_scopes.remove(method),
        };
    }

    /// Makes posts to `channel` answer `not_in_channel` (the bot was never invited).
    pub fn not_in_channel(&self, channel: &str) {
        self.lock().not_in.push(channel.to_owned());
    }

    /// Makes calls to `method` in `channel` answer `{"ok": false, "error": code}` (e.g.
    /// `chat.postMessage` and `channel_not_found` or `is_archived`), or answer again (`None`). Method
    /// `response` with channel `""`: every response_url answers HTTP 404 with `code` (e.g. `expired_url`).
    pub fn refuse(&self, method: &str, channel: &str, code: Option<&str>) {
        let key = (method.to_owned(), channel.to_owned());
        let mut inner = self.lock();
        match code {
            Some(c) => inner.refusals.insert(key, c.to_owned()),
            None => inner.refusals.remove(&key),
        };
    }

    /// Holds the answer of the next chat.postMessage of `kind`: the message is recorded and stored
    /// (it is in the channel), and the answer is sent only after `delay`.
    pub fn hold_next_post(&self, kind: PostKind, delay: Duration) {
        self.lock().hold = Some((kind, delay));
    }

    /// Every message posted in `channel` (replies included), in order.
    pub fn messages(&self, channel: &str) -> Vec<Message> {
        self.lock()
            .messages
            .iter()
            .filter(|m| m.channel == channel)
            .cloned()
            .collect()
    }

    /// Stores a posted message; returns how long to hold its answer, if it is the one to hold.
    fn store_message(&self, channel: &str, ts: &str, body: &Value) -> Option<Duration> {
        let thread_ts = body.get("thread_ts").and_then(Value::as_str).map(str::to_owned);
        let broadcast = body.get("reply_broadcast").and_then(Value::as_bool) == Some(true);
        let kind = match (&thread_ts, broadcast) {
            (None, _) => PostKind::TopLevel,
            (Some(_), false) => PostKind::Reply,
            (Some(_), true) => PostKind::Broadcast,
        };
        let mut inner = self.lock();
        inner.messages.push(Message {
            channel: channel.to_owned(),
            ts: ts.to_owned(),
            thread_ts,
            broadcast,
            text: body.get("text").and_then(Value::as_str).unwrap_or_default().to_owned(),
            metadata: body.get("metadata").cloned(),
        });
        match inner.hold {
            Some((k, delay)) if k == kind => {
                inner.hold = None;
                Some(delay)
            }
            _ => None,
        }
    }

    /// Fails the next calls, one failure each, in order.
    pub fn fail_next(&self, failures: &[Failure]) {
        self.lock().failures.extend(failures.iter().copied());
    }

    /// Fails the next call of `method` (only) this way.
    pub fn fail_next_call_to(&self, method: &str, failure: Failure) {
        self.lock().method_failures.insert(method.to_owned(), failure);
    }

    /// Fails every call this way until `end_outage` (after any failures queued with `fail_next`).
    pub fn outage(&self, failure: Failure) {
        self.lock().outage = Some(failure);
    }

    pub fn end_outage(&self) {
        self.lock().outage = None;
    }

    /// Answers calls to `method` (e.g. `usergroups.users.list`) only after `delay`.
    pub fn slow_down(&self, method: &str, delay: Duration) {
        self.lock().delays.insert(method.to_owned(), delay);
    }

    async fn delay_for(&self, method: &str) {
        let delay = self.lock().delays.get(method).copied();
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
    }

    /// Every call received, in order.
    pub fn calls(&self) -> Vec<Recorded> {
        self.lock().calls.clone()
    }

    /// Calls that were answered successfully, of one method.
    pub fn delivered(&self, method: &str) -> Vec<Recorded> {
        self.calls()
            .into_iter()
            .filter(|c| c.method == method && c.status == 200)
            .collect()
    }

    /// The successful response_url posts to the response_url `url`.
    pub fn responses_to(&self, url: &str) -> Vec<Recorded> {
        let id = url.rsplit('/').next().and_then(|n| n.parse::<u64>().ok());
        self.delivered("response")
            .into_iter()
            .filter(|c| c.response_id == id)
            .collect()
    }

    /// Waits until `probe` finds something in the calls, polling every 20 ms.
    pub async fn wait_for<T>(&self, timeout: Duration, probe: impl Fn(&[Recorded]) -> Option<T>) -> Option<T> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(v) = probe(&self.calls()) {
                return Some(v);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn stop(&self) {
        self.shutdown.cancel();
    }

    /// Records a call; returns the failure to answer with, if one is queued.
    fn record(&self, method: &str, body: Value, ts: Option<String>, response_id: Option<u64>) -> Option<Failure> {
        let mut inner = self.lock();
        let failure = inner
            .method_failures
            .remove(method)
            .or_else(|| inner.failures.pop_front())
            .or(inner.outage);
        inner.seq += 1;
        let status = match failure {
            None => 200,
            Some(Failure::RateLimited { .. }) => 429,
            Some(Failure::Unavailable) => 503,
        };
        let rec = Recorded {
            at_ms: u64::try_from(inner.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            seq: inner.seq,
            method: method.to_owned(),
            body,
            ts,
            response_id,
            status,
        };
        if inner.print && status == 200 {
            // An edited message is named by its thread, when it is a reply in one.
            let thread = rec.ts.as_deref().and_then(|ts| {
                inner
                    .messages
                    .iter()
                    .find(|m| m.ts == ts)
                    .and_then(|m| m.thread_ts.clone())
            });
            print_call(&rec, thread.as_deref());
        }
        if inner.keep {
            inner.calls.push(rec);
        }
        failure
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let token = self.token.lock().unwrap_or_else(|p| p.into_inner()).clone();
        headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| t == token)
    }

    /// The refusal a call to `method` in `channel` gets for lack of scope or membership, if any.
    fn refusal(&self, method: &str, channel: &str) -> Option<Value> {
        let inner = self.lock();
        if let Some(scope) = inner.missing_scopes.get(method) {
            return Some(json!({"ok": false, "error": "missing_scope", "needed": scope, "provided": "commands"}));
        }
        if let Some(code) = inner.refusals.get(&(method.to_owned(), channel.to_owned())) {
            return Some(json!({"ok": false, "error": code}));
        }
        (method == "chat.postMessage" && inner.not_in.iter().any(|c| c == channel))
            .then(|| json!({"ok": false, "error": "not_in_channel"}))
    }
}

fn failure_response(f: Failure) -> Response {
    match f {
        Failure::RateLimited { retry_after_secs } => (
            StatusCode::TOO_MANY_REQUESTS,
            [
                ("retry-after", retry_after_secs.to_string()),
                ("content-type", "application/json".into()),
            ],
            r#"{"ok":false,"error":"ratelimited"}"#,
        )
            .into_response(),
        Failure::Unavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            [("content-type", "text/plain".to_owned())],
            "service unavailable",
        )
            .into_response(),
    }
}

/// `apps.connections.open`: a WebSocket URL for an app-level token, when Socket Mode is on.
async fn connections_open(State(fake): State<SlackStandIn>, headers: HeaderMap) -> Response {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let socket = fake.lock().socket.clone();
    let answer = match socket {
        Some(s) => s.open(bearer),
        None => json!({"ok": false, "error": "not_allowed_token_type"}),
    };
    fake.record("apps.connections.open", json!({"ok": answer["ok"]}), None, None);
    ok(answer)
}

async fn api(
    State(fake): State<SlackStandIn>,
    Path(method): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !fake.authorized(&headers) {
        fake.record(&method, json!({"refused": "invalid_auth"}), None, None);
        return ok(json!({"ok": false, "error": "invalid_auth"}));
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let channel = body
        .get("channel")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if let Some(refusal) = fake.refusal(&method, &channel) {
        fake.record(&method, body, None, None);
        return ok(refusal);
    }
    if matches!(
        method.as_str(),
        "chat.postMessage" | "chat.update" | "chat.postEphemeral"
    ) && let Some(code) = crate::limits::refusal(&body)
    {
        fake.record(&method, json!({"refused_for_limits": code, "body": body}), None, None);
        return ok(json!({"ok": false, "error": code}));
    }
    match method.as_str() {
        "chat.postMessage" => {
            let ts = {
                let inner = fake.lock();
                message_ts(inner.seq + 1)
            };
            if let Some(f) = fake.record(&method, body.clone(), Some(ts.clone()), None) {
                return failure_response(f);
            }
            if let Some(hold) = fake.store_message(&channel, &ts, &body) {
                tokio::time::sleep(hold).await;
            }
            ok(json!({"ok": true, "channel": channel, "ts": ts,
                      "message": {"ts": ts, "text": body.get("text").cloned().unwrap_or(Value::Null)}}))
        }
        "chat.update" => {
            let ts = body.get("ts").and_then(Value::as_str).unwrap_or_default().to_owned();
            if let Some(f) = fake.record(&method, body.clone(), Some(ts.clone()), None) {
                return failure_response(f);
            }
            ok(
                json!({"ok": true, "channel": channel, "ts": ts, "text": body.get("text").cloned().unwrap_or(Value::Null), "message": {}}),
            )
        }
        "chat.postEphemeral" => {
            if let Some(f) = fake.record(&method, body, None, None) {
                return failure_response(f);
            }
            ok(json!({"ok": true, "message_ts": "1800000000.000001"}))
        }
        "views.open" => views_open(&fake, body),
        "conversations.open" => {
            let user = body.get("users").and_then(Value::as_str).unwrap_or_default().to_owned();
            if let Some(f) = fake.record(&method, body, None, None) {
                return failure_response(f);
            }
            ok(json!({"ok": true, "channel": {"id": format!("D{user}")}}))
        }
        other => ok(json!({"ok": false, "error": "unknown_method", "method": other})),
    }
}

/// Whether `trigger_id` is one the stand-in's senders put in an interaction (`{n}.{n}.standin…`), as
/// Slack only honours trigger ids it issued.
pub fn issued_trigger(trigger_id: &str) -> bool {
    let mut parts = trigger_id.splitn(3, '.');
    let digits = |p: Option<&str>| p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    digits(parts.next()) && digits(parts.next()) && parts.next().is_some_and(|p| p.starts_with("standin"))
}

/// `views.open`: recorded; a trigger id the stand-in never issued is `invalid_trigger_id`, as Slack
/// answers; otherwise `{"ok": true, "view": {... the view, with an "id"}}`.
fn views_open(fake: &SlackStandIn, body: Value) -> Response {
    let trigger = body.get("trigger_id").and_then(Value::as_str).unwrap_or_default();
    let issued = issued_trigger(trigger);
    let mut view = match body.get("view") {
        Some(Value::String(s)) => serde_json::from_str(s).unwrap_or(Value::Null),
        Some(v) => v.clone(),
        None => Value::Null,
    };
    if let Some(f) = fake.record("views.open", body, None, None) {
        return failure_response(f);
    }
    if !issued {
        return ok(json!({"ok": false, "error": "invalid_trigger_id"}));
    }
    if !view.is_object() {
        return ok(json!({"ok": false, "error": "invalid_arguments"}));
    }
    let seq = fake.lock().seq;
    view["id"] = json!(format!("V0STANDIN{seq:04}"));
    view["team_id"] = json!(STANDIN_TEAM);
    ok(json!({"ok": true, "view": view}))
}

/// A message `ts` as Slack makes them: the wall-clock second, and a sequence number for uniqueness.
fn message_ts(seq: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    format!("{now}.{:06}", seq % 1_000_000)
}

/// A `ts` as a number, for comparisons (`None` when it is not one).
fn ts_value(ts: &str) -> Option<f64> {
    ts.parse().ok()
}

/// The arguments conversations.history and conversations.replies share, read as Slack reads them.
struct Window {
    channel: String,
    oldest: Option<f64>,
    latest: Option<f64>,
    inclusive: bool,
    limit: usize,
    offset: usize,
    with_metadata: bool,
}

impl Window {
    fn read(q: &BTreeMap<String, String>) -> Window {
        let flag = |k: &str| matches!(q.get(k).map(String::as_str), Some("true" | "1"));
        Window {
            channel: q.get("channel").cloned().unwrap_or_default(),
            oldest: q.get("oldest").and_then(|t| ts_value(t)),
            latest: q.get("latest").and_then(|t| ts_value(t)),
            inclusive: flag("inclusive"),
            limit: q
                .get("limit")
                .and_then(|l| l.parse().ok())
                .unwrap_or(100)
                .clamp(1, 1000),
            // The cursor is the offset of the page, as text (Slack's is opaque: the bot only echoes it).
            offset: q
                .get("cursor")
                .and_then(|c| c.strip_prefix("offset:")?.parse().ok())
                .unwrap_or(0),
            with_metadata: flag("include_all_metadata"),
        }
    }

    fn admits(&self, ts: &str) -> bool {
        let Some(t) = ts_value(ts) else { return false };
        let after = self.oldest.is_none_or(|o| if self.inclusive { t >= o } else { t > o });
        let before = self.latest.is_none_or(|l| if self.inclusive { t <= l } else { t < l });
        after && before
    }

    /// One page of `messages` (already in the method's order), with `has_more` and the next cursor.
    fn page(&self, messages: Vec<Message>) -> Response {
        let total = messages.len();
        let shown: Vec<Value> = messages
            .iter()
            .skip(self.offset)
            .take(self.limit)
            .map(|m| m.json(self.with_metadata))
            .collect();
        let next = self.offset + shown.len();
        let has_more = next < total;
        let cursor = if has_more {
            format!("offset:{next}")
        } else {
            String::new()
        };
        ok(json!({"ok": true, "messages": shown, "has_more": has_more,
                  "response_metadata": {"next_cursor": cursor}}))
    }
}

/// conversations.history: the channel's messages (not thread replies, except broadcast ones), newest
/// first, within oldest/latest, paged by cursor.
async fn history(
    State(fake): State<SlackStandIn>,
    headers: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    conversation(fake, headers, "conversations.history", q)
}

/// conversations.replies: the thread of `ts` (the parent first, then its replies, oldest first),
/// replies within oldest/latest, paged by cursor.
async fn replies(
    State(fake): State<SlackStandIn>,
    headers: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    conversation(fake, headers, "conversations.replies", q)
}

fn conversation(fake: SlackStandIn, headers: HeaderMap, method: &str, q: BTreeMap<String, String>) -> Response {
    if !fake.authorized(&headers) {
        fake.record(method, json!({"refused": "invalid_auth"}), None, None);
        return ok(json!({"ok": false, "error": "invalid_auth"}));
    }
    let w = Window::read(&q);
    if let Some(refusal) = fake.refusal(method, &w.channel) {
        fake.record(method, json!(q), None, None);
        return ok(refusal);
    }
    if let Some(f) = fake.record(method, json!(q), None, None) {
        return failure_response(f);
    }
    let all = fake.messages(&w.channel);
    if method == "conversations.history" {
        let mut shown: Vec<Message> = all
            .into_iter()
            .filter(|m| (m.thread_ts.is_none() || m.broadcast) && w.admits(&m.ts))
            .collect();
        shown.reverse();
        return w.page(shown);
    }
    let Some(parent_ts) = q.get("ts") else {
        return ok(json!({"ok": false, "error": "invalid_arguments"}));
    };
    let Some(parent) = all.iter().find(|m| &m.ts == parent_ts).cloned() else {
        return ok(json!({"ok": false, "error": "thread_not_found"}));
    };
    let mut thread = vec![parent];
    thread.extend(
        all.into_iter()
            .filter(|m| m.thread_ts.as_deref() == Some(parent_ts.as_str()) && w.admits(&m.ts)),
    );
    w.page(thread)
}

async fn auth_test(State(fake): State<SlackStandIn>, headers: HeaderMap) -> Response {
    if !fake.authorized(&headers) {
        fake.record("auth.test", json!({"refused": "invalid_auth"}), None, None);
        return ok(json!({"ok": false, "error": "invalid_auth"}));
    }
    if let Some(f) = fake.record("auth.test", Value::Null, None, None) {
        return failure_response(f);
    }
    let (error, team, scopes) = {
        let inner = fake.lock();
        (
            inner.auth_test_error.clone(),
            inner.team_id.clone(),
            inner.granted_scopes.clone(),
        )
    };
    let mut answer = match error {
        Some(e) => ok(json!({"ok": false, "error": e})),
        None => ok(
            json!({"ok": true, "url": "https://standin.slack.com/", "team": "Stand-in", "user": "aurora-failover-bot",
                          "team_id": team, "user_id": "U0BOT", "bot_id": "B0STANDIN", "is_enterprise_install": false}),
        ),
    };
    if let Some(value) = scopes.and_then(|s| axum::http::HeaderValue::from_str(&s).ok()) {
        answer.headers_mut().insert("x-oauth-scopes", value);
    }
    answer
}

async fn group_members(
    State(fake): State<SlackStandIn>,
    headers: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    if !fake.authorized(&headers) {
        return ok(json!({"ok": false, "error": "invalid_auth"}));
    }
    fake.delay_for("usergroups.users.list").await;
    let group = q.get("usergroup").cloned().unwrap_or_default();
    if let Some(f) = fake.record("usergroups.users.list", json!(q), None, None) {
        return failure_response(f);
    }
    match fake.lock().groups.get(&group) {
        Some(users) => ok(json!({"ok": true, "users": users})),
        None => ok(json!({"ok": false, "error": "no_such_subteam"})),
    }
}

async fn response(State(fake): State<SlackStandIn>, Path(id): Path<u64>, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if let Some(code) = crate::limits::refusal(&body) {
        fake.record(
            "response",
            json!({"refused_for_limits": code, "body": body}),
            None,
            Some(id),
        );
        return (StatusCode::BAD_REQUEST, code).into_response();
    }
    let refused = fake
        .lock()
        .refusals
        .get(&("response".to_owned(), String::new()))
        .cloned();
    if let Some(code) = refused {
        fake.record("response", json!({"refused": code, "body": body}), None, Some(id));
        return (StatusCode::NOT_FOUND, code).into_response();
    }
    if let Some(f) = fake.record("response", body, None, Some(id)) {
        return failure_response(f);
    }
    (StatusCode::OK, "ok").into_response()
}

/// Renders a block list as plain lines (section texts, buttons) for printing.
fn blocks_as_text(body: &Value) -> Vec<String> {
    let mut lines = Vec::new();
    for b in body.get("blocks").and_then(Value::as_array).into_iter().flatten() {
        match b.get("type").and_then(Value::as_str) {
            Some("header") | Some("section") => {
                if let Some(t) = b.pointer("/text/text").and_then(Value::as_str) {
                    lines.extend(t.lines().map(str::to_owned));
                }
            }
            Some("context") => {
                for e in b.get("elements").and_then(Value::as_array).into_iter().flatten() {
                    if let Some(t) = e.get("text").and_then(Value::as_str) {
                        lines.push(format!("({t})"));
                    }
                }
            }
            Some("actions") => {
                let buttons: Vec<String> = b
                    .get("elements")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|e| e.pointer("/text/text").and_then(Value::as_str))
                    .map(|t| format!("[ {t} ]"))
                    .collect();
                lines.push(buttons.join("  "));
            }
            _ => {}
        }
    }
    lines
}

/// Prints a call as the demo's transcript shows it; `thread` is the thread of the message an update
/// edits, when it is a reply.
fn print_call(rec: &Recorded, thread: Option<&str>) {
    let body = &rec.body;
    let channel = body.get("channel").and_then(Value::as_str).unwrap_or("");
    let heading = match rec.method.as_str() {
        "chat.postMessage" => match rec.thread_ts() {
            Some(t) => format!(
                "slack: reply in #{channel}, thread {t}{}",
                if body.get("reply_broadcast") == Some(&Value::Bool(true)) {
                    " (also sent to the channel)"
                } else {
                    ""
                }
            ),
            None => format!(
                "slack: new message in #{channel} (ts {})",
                rec.ts.as_deref().unwrap_or("?")
            ),
        },
        "chat.update" => match thread {
            Some(t) => format!(
                "slack: reply {} in #{channel}, thread {t}, edited",
                rec.ts.as_deref().unwrap_or("?")
            ),
            None => format!(
                "slack: message {} in #{channel} updated",
                rec.ts.as_deref().unwrap_or("?")
            ),
        },
        "response" => format!(
            "slack: answer to the user ({})",
            body.get("response_type").and_then(Value::as_str).unwrap_or("ephemeral")
        ),
        other => format!("slack: {other}"),
    };
    let mut lines = blocks_as_text(body);
    if lines.is_empty() {
        lines = rec.text().lines().map(str::to_owned).collect();
    }
    println!("\n{heading}");
    for l in lines {
        println!("  │ {l}");
    }
}
