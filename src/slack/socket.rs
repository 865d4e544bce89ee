//! Slack Socket Mode, the transport (`slack.mode = "socket"`): the bot asks `apps.connections.open`
//! for a WebSocket URL with its app-level token (`xapp-`, scope `connections:write`), connects, and
//! receives envelopes (`slash_commands`, `interactive`, `events_api`) that it acknowledges by sending
//! back `{"envelope_id": ..., "payload": ...}`. (Slack: "Using Socket Mode",
//! https://api.slack.com/apis/socket-mode, and `apps.connections.open`.)
//!
//! Transport only: what an envelope becomes is [`Envelopes::handle`]'s business (`crate::http`, the
//! same admission and handlers as an HTTP request). Invariants kept here:
//! - Every envelope is acknowledged within [`ACK_WITHIN`] (Slack wants 3 s): each is handled in its
//!   own task, so a slow one never delays the next frame; past the deadline a bare ack goes out and the
//!   handling finishes in the background.
//! - A `disconnect` frame (Slack refreshes connections now and then), a closed or silent socket: the
//!   acks in flight are still written on the old socket, and a new connection is opened at once.
//!   Failing connections back off up to [`MAX_BACKOFF`].
//! - A refused app token is reported under [`health::SLACK_SOCKET`] (so `/readyz` says why) and
//!   retried slowly; nothing here logs or reports the token, nor the connection URL (its ticket).
//!
//! Not slack-morphism's `SlackClientSocketModeListener`: its callbacks never see the envelope id
//! (the replay key) nor `retry_attempt`, its reader awaits each callback before reading the next
//! frame, and a refused token is only logged, with no way to report it.

use crate::health::{self, Health};
use crate::types::Secret;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use serde_json::Value;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::{Notify, mpsc};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

/// How long an envelope may be handled before its ack goes out anyway (Slack's limit is 3 s).
pub const ACK_WITHIN: Duration = Duration::from_millis(2_500);
/// How often the bot pings Slack, and how long a socket may stay silent before it is replaced.
const PING_EVERY: Duration = Duration::from_secs(20);
const SILENCE: Duration = Duration::from_secs(65);
/// The longest pause between two connection attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How long `apps.connections.open` or the WebSocket handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What an envelope carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvelopeKind {
    /// `slash_commands`: the payload has the fields of the HTTP form, as JSON.
    SlashCommand,
    /// `interactive`: the payload is the interaction (`block_actions`, `view_submission`, ...).
    Interactive,
    /// `events_api`: the bot subscribes to no events; acknowledged and ignored.
    Event,
}

/// One envelope Slack sent, to be acknowledged by its id.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub id: String,
    pub kind: EnvelopeKind,
    pub payload: Value,
    /// 0 for a first delivery; Slack delivers again (with `retry_reason`) what was not acknowledged.
    pub retry_attempt: u64,
    pub retry_reason: Option<String>,
}

/// A frame from Slack, read.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// The connection is ready.
    Hello {
        connections: Option<u64>,
    },
    /// Slack will close this connection soon (`refresh_requested`, `warning`, ...): open another.
    Disconnect {
        reason: String,
    },
    Envelope(Envelope),
    /// A type this client does not know; acknowledged when it has an envelope id.
    Unknown {
        kind: String,
        envelope_id: Option<String>,
    },
}

/// Reads one text frame. `Err` says why it is not a frame (never echoing it: a payload holds user text).
pub fn parse_frame(text: &str) -> Result<Frame, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let kind = v.get("type").and_then(Value::as_str).unwrap_or_default().to_owned();
    let envelope_id = v.get("envelope_id").and_then(Value::as_str).map(str::to_owned);
    let envelope = |kind| {
        Ok(Frame::Envelope(Envelope {
            id: envelope_id.clone().ok_or("an envelope without envelope_id")?,
            kind,
            payload: v.get("payload").cloned().unwrap_or(Value::Null),
            retry_attempt: v.get("retry_attempt").and_then(Value::as_u64).unwrap_or(0),
            retry_reason: v
                .get("retry_reason")
                .and_then(Value::as_str)
                .filter(|r| !r.is_empty())
                .map(str::to_owned),
        }))
    };
    match kind.as_str() {
        "hello" => Ok(Frame::Hello {
            connections: v.get("num_connections").and_then(Value::as_u64),
        }),
        "disconnect" => Ok(Frame::Disconnect {
            reason: v.get("reason").and_then(Value::as_str).unwrap_or("unknown").to_owned(),
        }),
        "slash_commands" => envelope(EnvelopeKind::SlashCommand),
        "interactive" => envelope(EnvelopeKind::Interactive),
        "events_api" => envelope(EnvelopeKind::Event),
        _ => Ok(Frame::Unknown { kind, envelope_id }),
    }
}

/// The acknowledgement of envelope `id`, with the answer `payload` (a slash command's message, as the
/// body of an HTTP answer would be) when there is one.
pub fn ack_frame(id: &str, payload: Option<Value>) -> String {
    let mut ack = serde_json::json!({ "envelope_id": id });
    if let Some(p) = payload {
        ack["payload"] = p;
    }
    ack.to_string()
}

/// What becomes of an envelope: the same path as an HTTP request (`crate::http`).
#[async_trait::async_trait]
pub trait Envelopes: Send + Sync + 'static {
    /// Handles `envelope`; returns its ack's payload (`None`: a bare ack). Should answer well within
    /// [`ACK_WITHIN`]; slow work belongs in tasks.
    async fn handle(&self, envelope: Envelope) -> Option<Value>;
}

/// Why `apps.connections.open` gave no URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// Slack refuses the app token (wrong, revoked, not an app-level token, lacking
    /// `connections:write`): nothing works until someone fixes it.
    #[error("{0}")]
    Refused(String),
    /// Anything else (network, 5xx, rate limit): try again.
    #[error("{0}")]
    Temporary(String),
}

/// What to tell an operator about an `apps.connections.open` error code.
fn open_problem(code: &str) -> OpenError {
    let fix = "give the app-level token (xapp-) with scope connections:write, from Basic Information > \
               App-Level Tokens, in SLACK_APP_TOKEN or as app_token in the secret named by slack.secret_id";
    match code {
        "invalid_auth" | "not_authed" | "token_revoked" | "token_expired" | "account_inactive" => {
            OpenError::Refused(format!("apps.connections.open refused the app token ({code}): {fix}"))
        }
        "not_allowed_token_type" | "missing_scope" => OpenError::Refused(format!(
            "apps.connections.open refused the app token ({code}): it is not an app-level token with \
             connections:write; {fix}"
        )),
        "ratelimited" | "internal_error" | "fatal_error" | "service_unavailable" | "request_timeout" => {
            OpenError::Temporary(format!("apps.connections.open: {code}"))
        }
        other => OpenError::Refused(format!(
            "apps.connections.open: {other} (is Socket Mode enabled for the app? manifest.socket.yml)"
        )),
    }
}

/// The Socket Mode client: one connection at a time, replaced when it ends.
pub struct SocketClient {
    /// The Web API base URL (no trailing slash), where `apps.connections.open` is.
    api_url: String,
    /// Behind a lock so that a rotated token ([`SocketClient::set_token`]) is used by the next
    /// connection; cloned before each call, never held across an await.
    token: RwLock<Secret>,
    http: HyperClient<super::client::Connector, Full<Bytes>>,
    health: Arc<Health>,
    /// Woken when Slack refuses the app token (the secret refresh then reads it again early).
    pub refused: Arc<Notify>,
    handler: Arc<dyn Envelopes>,
    /// Envelopes being handled, so that shutdown can wait for them.
    tasks: TaskTracker,
}

impl std::fmt::Debug for SocketClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketClient").finish_non_exhaustive()
    }
}

/// How a connection ended.
#[derive(Debug)]
enum Ended {
    Stopped,
    /// Slack asked for a new connection, or closed this one: reconnect at once.
    Replaced(String),
}

impl SocketClient {
    /// A client of the Web API at `api_url`, connecting with `app_token`, handing envelopes to
    /// `handler`; problems go to `health`, envelope tasks to `tasks`.
    pub fn new(
        api_url: &str,
        app_token: &Secret,
        health: Arc<Health>,
        handler: Arc<dyn Envelopes>,
        tasks: TaskTracker,
    ) -> std::io::Result<SocketClient> {
        Ok(SocketClient {
            api_url: api_url.trim_end_matches('/').to_owned(),
            token: RwLock::new(app_token.clone()),
            http: HyperClient::builder(hyper_util::rt::TokioExecutor::new()).build(super::client::connector()?),
            health,
            refused: Arc::new(Notify::new()),
            handler,
            tasks,
        })
    }

    /// Replaces the app token for the next connection (a rotated token).
    pub fn set_token(&self, app_token: &Secret) {
        *self.token.write().unwrap_or_else(|p| p.into_inner()) = app_token.clone();
    }

    /// `apps.connections.open`: the WebSocket URL of a new connection.
    pub async fn open(&self) -> Result<String, OpenError> {
        let token = self.token.read().unwrap_or_else(|p| p.into_inner()).clone();
        let req = hyper::Request::post(format!("{}/apps.connections.open", self.api_url))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("authorization", format!("Bearer {}", token.expose()))
            .body(Full::new(Bytes::new()))
            .map_err(|_| OpenError::Refused("the app token cannot be sent in an HTTP header".to_owned()))?;
        let resp = match tokio::time::timeout(CONNECT_TIMEOUT, self.http.request(req)).await {
            Err(_) => return Err(OpenError::Temporary("apps.connections.open: no answer in time".into())),
            Ok(Err(e)) => return Err(OpenError::Temporary(format!("apps.connections.open: {e}"))),
            Ok(Ok(r)) => r,
        };
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        if !status.is_success() {
            return Err(OpenError::Temporary(format!("apps.connections.open: HTTP {status}")));
        }
        let json: Value = serde_json::from_slice(&body)
            .map_err(|e| OpenError::Temporary(format!("apps.connections.open: unreadable answer: {e}")))?;
        if json.get("ok").and_then(Value::as_bool) != Some(true) {
            return Err(open_problem(
                json.get("error").and_then(Value::as_str).unwrap_or("unknown_error"),
            ));
        }
        json.get("url")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| OpenError::Temporary("apps.connections.open gave no url".to_owned()))
    }

    /// Connects, serves, and connects again until `stop`.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        self.health.report(health::SLACK_SOCKET, "not connected yet");
        let mut pause = Duration::ZERO;
        loop {
            match self.connect_once(&stop).await {
                Ok(Ended::Stopped) => return,
                Ok(Ended::Replaced(why)) => {
                    info!(reason = %why, "Socket Mode connection replaced");
                    pause = Duration::ZERO;
                }
                Err(OpenError::Refused(problem)) => {
                    if self.health.report(health::SLACK_SOCKET, problem.clone()) {
                        error!(%problem, "Socket Mode cannot connect: Slack refuses the app token");
                    }
                    self.refused.notify_one();
                    pause = (pause * 2).clamp(Duration::from_secs(5), MAX_BACKOFF);
                }
                Err(OpenError::Temporary(problem)) => {
                    warn!(%problem, "Socket Mode connection failed; trying again");
                    pause = (pause * 2).clamp(Duration::from_secs(1), MAX_BACKOFF);
                }
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// One connection, from `apps.connections.open` to its end.
    async fn connect_once(&self, stop: &CancellationToken) -> Result<Ended, OpenError> {
        let url = self.open().await?;
        let connecting = tokio_tungstenite::connect_async(url.as_str());
        let (ws, _) = match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
            Err(_) => return Err(OpenError::Temporary("WebSocket handshake: no answer in time".into())),
            // The error text may quote the URL, whose ticket is a credential: only its kind is logged.
            Ok(Err(e)) => {
                return Err(OpenError::Temporary(format!(
                    "WebSocket handshake failed ({})",
                    kind(&e)
                )));
            }
            Ok(Ok(c)) => c,
        };
        Ok(self.serve(ws, stop).await)
    }

    /// Reads frames until the connection ends; acks go through a writer task that outlives the
    /// reader until every envelope in flight is acknowledged.
    async fn serve<S>(&self, ws: tokio_tungstenite::WebSocketStream<S>, stop: &CancellationToken) -> Ended
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sink, mut stream) = ws.split();
        let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
        tokio::spawn(async move {
            while let Some(m) = rx.recv().await {
                if sink.send(m).await.is_err() {
                    break;
                }
            }
            let _ = sink.close().await;
        });
        let mut ping = tokio::time::interval(PING_EVERY);
        let mut heard = tokio::time::Instant::now();
        loop {
            let frame = tokio::select! {
                () = stop.cancelled() => return Ended::Stopped,
                _ = ping.tick() => {
                    if heard.elapsed() > SILENCE {
                        return Ended::Replaced(format!("nothing heard for {SILENCE:?}"));
                    }
                    let _ = tx.send(Message::Ping(Bytes::new()));
                    continue;
                }
                frame = stream.next() => frame,
            };
            heard = tokio::time::Instant::now();
            match frame {
                None => return Ended::Replaced("closed".into()),
                Some(Err(e)) => return Ended::Replaced(format!("read failed ({})", kind(&e))),
                Some(Ok(Message::Close(_))) => return Ended::Replaced("closed by Slack".into()),
                Some(Ok(Message::Text(text))) => {
                    if let Some(ended) = self.on_frame(text.as_str(), &tx) {
                        return ended;
                    }
                }
                Some(Ok(_)) => {}
            }
        }
    }

    /// Acts on one text frame; `Some` ends the connection.
    fn on_frame(&self, text: &str, tx: &mpsc::UnboundedSender<Message>) -> Option<Ended> {
        match parse_frame(text) {
            Ok(Frame::Hello { connections }) => {
                if self.health.clear(health::SLACK_SOCKET) {
                    info!(connections, "Socket Mode connected");
                }
                None
            }
            Ok(Frame::Disconnect { reason }) => Some(Ended::Replaced(format!("disconnect: {reason}"))),
            Ok(Frame::Envelope(envelope)) => {
                self.spawn_envelope(envelope, tx.clone());
                None
            }
            Ok(Frame::Unknown { kind, envelope_id }) => {
                info!(kind = ?kind.chars().take(40).collect::<String>(), "a Socket Mode frame of an unknown type was acknowledged and ignored");
                if let Some(id) = envelope_id {
                    let _ = tx.send(Message::text(ack_frame(&id, None)));
                }
                None
            }
            Err(why) => {
                warn!(%why, "an unreadable Socket Mode frame was ignored");
                None
            }
        }
    }

    /// Handles an envelope in its own task and acknowledges it within [`ACK_WITHIN`].
    fn spawn_envelope(&self, envelope: Envelope, tx: mpsc::UnboundedSender<Message>) {
        let id = envelope.id.clone();
        if envelope.retry_attempt > 0 {
            info!(envelope_id = %id, attempt = envelope.retry_attempt, reason = envelope.retry_reason.as_deref().unwrap_or(""),
                  "Slack delivered an envelope again");
        }
        let handler = self.handler.clone();
        let handling = self.tasks.spawn(async move { handler.handle(envelope).await });
        self.tasks.spawn(async move {
            let payload = match tokio::time::timeout(ACK_WITHIN, handling).await {
                Ok(Ok(payload)) => payload,
                Ok(Err(e)) => {
                    error!(envelope_id = %id, error = %e, "handling an envelope failed");
                    None
                }
                Err(_) => {
                    warn!(envelope_id = %id, "an envelope took longer than {ACK_WITHIN:?}: acknowledged without an answer");
                    None
                }
            };
            let _ = tx.send(Message::text(ack_frame(&id, payload)));
        });
    }
}

/// The kind of a WebSocket error, without its text (which may quote the URL).
fn kind(e: &tokio_tungstenite::tungstenite::Error) -> &'static str {
    use tokio_tungstenite::tungstenite::Error as E;
    match e {
        E::ConnectionClosed | E::AlreadyClosed => "closed",
        E::Io(_) => "network",
        E::Tls(_) => "TLS",
        E::Url(_) => "bad URL",
        E::Http(_) => "HTTP refusal",
        E::Protocol(_) => "protocol",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slash_command_envelope_is_read_with_its_retry() {
        let f = parse_frame(
            r#"{"envelope_id":"e1","type":"slash_commands","accepts_response_payload":true,
               "payload":{"text":"status"},"retry_attempt":1,"retry_reason":"timeout"}"#,
        )
        .unwrap();
        let Frame::Envelope(e) = f else { panic!("{f:?}") };
        assert_eq!(
            (e.id.as_str(), e.kind, e.retry_attempt),
            ("e1", EnvelopeKind::SlashCommand, 1)
        );
        assert_eq!(e.retry_reason.as_deref(), Some("timeout"));
        assert_eq!(e.payload["text"], "status");
    }

    #[test]
    fn hello_disconnect_and_unknown_frames_are_told_apart() {
        assert_eq!(
            parse_frame(r#"{"type":"hello","num_connections":2}"#).unwrap(),
            Frame::Hello { connections: Some(2) }
        );
        assert_eq!(
            parse_frame(r#"{"type":"disconnect","reason":"refresh_requested"}"#).unwrap(),
            Frame::Disconnect {
                reason: "refresh_requested".into()
            }
        );
        assert!(matches!(
            parse_frame(r#"{"type":"new_thing","envelope_id":"e2"}"#).unwrap(),
            Frame::Unknown { envelope_id: Some(id), .. } if id == "e2"
        ));
        assert!(parse_frame(r#"{"type":"interactive"}"#).is_err());
        assert!(parse_frame("not json").is_err());
    }

    #[test]
    fn an_ack_carries_the_envelope_id_and_the_answer() {
        assert_eq!(ack_frame("e1", None), r#"{"envelope_id":"e1"}"#);
        let with: Value = serde_json::from_str(&ack_frame("e1", Some(serde_json::json!({"text": "hi"})))).unwrap();
        assert_eq!(with["payload"]["text"], "hi");
    }

    #[test]
    fn a_refused_app_token_is_a_configuration_problem_and_an_outage_is_not() {
        assert!(matches!(open_problem("invalid_auth"), OpenError::Refused(p) if p.contains("SLACK_APP_TOKEN")));
        assert!(matches!(open_problem("not_allowed_token_type"), OpenError::Refused(_)));
        assert!(matches!(open_problem("ratelimited"), OpenError::Temporary(_)));
    }
}
