//! A fake of Slack's Socket Mode (https://api.slack.com/apis/socket-mode): `apps.connections.open`
//! (on the fake Web API, checking the app-level token) hands out a `ws://` URL; a WebSocket endpoint
//! sends `hello`, then the envelopes a test sends (`slash_commands`, `interactive`), records every
//! ack (its `envelope_id` and payload), delivers again, with `retry_attempt` + 1 and `retry_reason`
//! `timeout`, an envelope not acknowledged in time (as Slack does, up to 3 retries), and can send a
//! `disconnect` frame and close every connection (the client must connect again).

use crate::sender::{SlackSender, Workspace};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// Slack's default: an envelope not acknowledged within this long is delivered again.
pub const REDELIVER_AFTER: Duration = Duration::from_secs(3);
/// How many times an envelope is delivered again at most.
const MAX_RETRIES: u64 = 3;

/// One acknowledgement the fake received.
#[derive(Debug, Clone, PartialEq)]
pub struct SocketAck {
    pub envelope_id: String,
    /// The ack's `payload` (a slash command's answer), if any.
    pub payload: Option<Value>,
    /// Dropped on purpose (`lose_next_acks`): the fake acts as if it never arrived.
    pub lost: bool,
    /// Milliseconds from the envelope's (last) delivery to its ack.
    pub after_ms: u64,
}

impl SocketAck {
    /// The `text` of the payload.
    pub fn text(&self) -> String {
        self.payload
            .as_ref()
            .and_then(|p| p.get("text"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    }
}

struct Pending {
    frame: Value,
    sent: Instant,
    attempt: u64,
}

#[derive(Default)]
struct Inner {
    /// Open connections, oldest first: (id, where to send frames).
    conns: Vec<(u64, mpsc::UnboundedSender<Message>)>,
    next_conn: u64,
    next_envelope: u64,
    /// How many times `apps.connections.open` gave a URL.
    opened: u64,
    acks: Vec<SocketAck>,
    pending: BTreeMap<String, Pending>,
    lose_acks: usize,
    /// Every delivery (first and again) of an envelope: (id, retry_attempt).
    deliveries: Vec<(String, u64)>,
}

/// The fake Socket Mode server. Cheap to clone.
#[derive(Clone)]
pub struct SocketModeFake {
    inner: Arc<Mutex<Inner>>,
    app_token: Arc<Mutex<String>>,
    addr: SocketAddr,
    redeliver_after: Arc<Mutex<Duration>>,
    stop: CancellationToken,
}

impl std::fmt::Debug for SocketModeFake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketModeFake")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl SocketModeFake {
    /// Starts the WebSocket endpoint on a free loopback port, accepting `app_token`.
    pub async fn start(app_token: &str, stop: CancellationToken) -> std::io::Result<SocketModeFake> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let fake = SocketModeFake {
            inner: Default::default(),
            app_token: Arc::new(Mutex::new(app_token.to_owned())),
            addr: listener.local_addr()?,
            redeliver_after: Arc::new(Mutex::new(REDELIVER_AFTER)),
            stop,
        };
        let accepting = fake.clone();
        tokio::spawn(async move {
            loop {
                let conn = tokio::select! {
                    () = accepting.stop.cancelled() => return,
                    c = listener.accept() => c,
                };
                if let Ok((tcp, _)) = conn {
                    tokio::spawn(accepting.clone().serve(tcp));
                }
            }
        });
        tokio::spawn(fake.clone().redeliver());
        Ok(fake)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `apps.connections.open` with `bearer` (the Authorization header's token): Slack's answer.
    pub(crate) fn open(&self, bearer: Option<&str>) -> Value {
        let expected = self.app_token.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match bearer {
            Some(t) if t == expected => {}
            Some(t) if !t.starts_with("xapp-") => return json!({"ok": false, "error": "not_allowed_token_type"}),
            _ => return json!({"ok": false, "error": "invalid_auth"}),
        }
        let mut inner = self.lock();
        inner.opened += 1;
        json!({"ok": true, "url": format!("ws://{}/link/?ticket=standin-{}", self.addr, inner.opened)})
    }

    /// Accepts `token` as the app token from now on.
    pub fn accept_app_token(&self, token: &str) {
        *self.app_token.lock().unwrap_or_else(|p| p.into_inner()) = token.to_owned();
    }

    /// One connection: `hello`, then frames out from the channel and acks in.
    async fn serve(self, tcp: tokio::net::TcpStream) {
        let Ok(ws) = tokio_tungstenite::accept_async(tcp).await else {
            return;
        };
        let (mut sink, mut stream) = ws.split();
        let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
        let id = {
            let mut inner = self.lock();
            inner.next_conn += 1;
            let id = inner.next_conn;
            inner.conns.push((id, tx.clone()));
            id
        };
        let hello = json!({"type": "hello", "num_connections": self.live_connections(),
            "debug_info": {"host": "standin", "approximate_connection_time": 18060},
            "connection_info": {"app_id": crate::STANDIN_APP}});
        let _ = tx.send(Message::text(hello.to_string()));
        drop(tx);
        tokio::spawn(async move {
            while let Some(m) = rx.recv().await {
                if sink.send(m).await.is_err() {
                    break;
                }
            }
            let _ = sink.close().await;
        });
        while let Some(Ok(frame)) = tokio::select! {
            () = self.stop.cancelled() => None,
            f = stream.next() => f,
        } {
            if let Message::Text(t) = frame {
                self.on_ack(t.as_str());
            }
        }
        self.lock().conns.retain(|(c, _)| *c != id);
    }

    fn on_ack(&self, text: &str) {
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            return;
        };
        let Some(envelope_id) = v.get("envelope_id").and_then(Value::as_str) else {
            return;
        };
        let mut inner = self.lock();
        let lost = inner.lose_acks > 0;
        let after_ms = inner
            .pending
            .get(envelope_id)
            .map_or(0, |p| p.sent.elapsed().as_millis() as u64);
        if lost {
            inner.lose_acks -= 1;
        } else {
            inner.pending.remove(envelope_id);
        }
        inner.acks.push(SocketAck {
            envelope_id: envelope_id.to_owned(),
            payload: v.get("payload").cloned(),
            lost,
            after_ms,
        });
    }

    /// Delivers again what was not acknowledged in time, until stopped.
    async fn redeliver(self) {
        loop {
            tokio::select! {
                () = self.stop.cancelled() => return,
                () = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
            let after = *self.redeliver_after.lock().unwrap_or_else(|p| p.into_inner());
            let mut inner = self.lock();
            let due: Vec<String> = inner
                .pending
                .iter()
                .filter(|(_, p)| p.sent.elapsed() >= after)
                .map(|(id, _)| id.clone())
                .collect();
            for id in due {
                let Some(mut p) = inner.pending.remove(&id) else {
                    continue;
                };
                if p.attempt >= MAX_RETRIES {
                    continue;
                }
                p.attempt += 1;
                p.frame["retry_attempt"] = json!(p.attempt);
                p.frame["retry_reason"] = json!("timeout");
                p.sent = Instant::now();
                if let Some((_, tx)) = inner.conns.last() {
                    let _ = tx.send(Message::text(p.frame.to_string()));
                }
                inner.deliveries.push((id.clone(), p.attempt));
                inner.pending.insert(id, p);
            }
        }
    }

    /// Sends an envelope of `kind` (`slash_commands`, `interactive`) with `payload` on the newest
    /// connection (waiting up to 10 s for one); returns its `envelope_id`.
    pub async fn send(&self, kind: &str, payload: Value) -> String {
        for _ in 0..500 {
            if self.live_connections() > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut inner = self.lock();
        inner.next_envelope += 1;
        let id = format!("standin-envelope-{}", inner.next_envelope);
        // Slack accepts a response payload for commands and modal submissions (`response_action`).
        let accepts = kind == "slash_commands" || payload["type"] == "view_submission";
        let frame = json!({"envelope_id": id, "type": kind, "payload": payload,
            "accepts_response_payload": accepts, "retry_attempt": 0, "retry_reason": ""});
        let (_, tx) = inner
            .conns
            .last()
            .expect("a Socket Mode connection within 10 s")
            .clone();
        let _ = tx.send(Message::text(frame.to_string()));
        inner.deliveries.push((id.clone(), 0));
        inner.pending.insert(
            id.clone(),
            Pending {
                frame,
                sent: Instant::now(),
                attempt: 0,
            },
        );
        id
    }

    /// Sends `/aurora {text}` as `user` in `channel`, from the stand-in's workspace.
    pub async fn command(&self, user: &str, channel: &str, text: &str, response_url: &str) -> String {
        let form = SlackSender::command_body_in(&Workspace::default(), user, channel, text, response_url);
        let fields: serde_json::Map<String, Value> = form_urlencoded::parse(form.as_bytes())
            .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
            .collect();
        self.send("slash_commands", Value::Object(fields)).await
    }

    /// Clicks button `action_id` (value `value`) on message `message_ts` in `channel` as `user`.
    pub async fn click(
        &self,
        user: &str,
        channel: &str,
        message_ts: &str,
        action_id: &str,
        value: &str,
        response_url: &str,
    ) -> String {
        let w = Workspace::default();
        let payload = SlackSender::click_payload_in(&w, user, channel, message_ts, action_id, value, response_url);
        self.send("interactive", payload).await
    }

    /// Submits modal `callback_id` (`private_metadata`, input `values`) as `user`, from the stand-in's
    /// workspace.
    pub async fn submit_view(&self, user: &str, callback_id: &str, private_metadata: &str, values: Value) -> String {
        let w = Workspace::default();
        let payload = SlackSender::view_submission_payload_in(&w, user, callback_id, private_metadata, values);
        self.send("interactive", payload).await
    }

    /// The first ack of `envelope_id` that was not lost, waited for up to `wait`.
    pub async fn wait_ack(&self, envelope_id: &str, wait: Duration) -> Option<SocketAck> {
        let deadline = Instant::now() + wait;
        loop {
            let found = self
                .lock()
                .acks
                .iter()
                .find(|a| a.envelope_id == envelope_id && !a.lost)
                .cloned();
            if found.is_some() || Instant::now() >= deadline {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Every ack received, in order.
    pub fn acks(&self) -> Vec<SocketAck> {
        self.lock().acks.clone()
    }

    /// Every delivery of an envelope: (envelope_id, retry_attempt).
    pub fn deliveries(&self) -> Vec<(String, u64)> {
        self.lock().deliveries.clone()
    }

    /// Drops the next `n` acks as if they never arrived (the envelopes are delivered again).
    pub fn lose_next_acks(&self, n: usize) {
        self.lock().lose_acks = n;
    }

    /// How long an envelope waits for its ack before it is delivered again.
    pub fn redeliver_after(&self, d: Duration) {
        *self.redeliver_after.lock().unwrap_or_else(|p| p.into_inner()) = d;
    }

    /// How many connections `apps.connections.open` has handed out.
    pub fn connections_opened(&self) -> u64 {
        self.lock().opened
    }

    /// Connections open now.
    pub fn live_connections(&self) -> usize {
        self.lock().conns.len()
    }

    /// Sends every connection a `disconnect` frame (`reason`, e.g. `refresh_requested`), then closes
    /// them all after `grace`.
    pub async fn disconnect(&self, reason: &str, grace: Duration) {
        let frame = json!({"type": "disconnect", "reason": reason, "debug_info": {"host": "standin"}}).to_string();
        let conns: Vec<u64> = {
            let inner = self.lock();
            for (_, tx) in &inner.conns {
                let _ = tx.send(Message::text(frame.clone()));
            }
            inner.conns.iter().map(|(c, _)| *c).collect()
        };
        tokio::time::sleep(grace).await;
        let mut inner = self.lock();
        for (_, tx) in inner.conns.iter().filter(|(c, _)| conns.contains(c)) {
            let _ = tx.send(Message::Close(None));
        }
        inner.conns.retain(|(c, _)| !conns.contains(c));
    }
}
