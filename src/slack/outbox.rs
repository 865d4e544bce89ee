//! Delivers the outbox to Slack: in order per ordering key, concurrently across keys. A 429 waits for
//! its Retry-After; a 5xx, a timeout or a connection problem is retried with backoff; a permanent
//! refusal is recorded and logged (never silently dropped). An update superseded by a newer update of
//! the same message is skipped. The worker runs until shutdown and picks up where it left off after a
//! restart, because everything it needs is in the store.
//!
//! A refusal no retry can fix (the token is invalid or revoked, a scope is missing, the token cannot
//! even be sent) is a configuration problem, not a network one: the queue is kept, delivery stops, the
//! problem is logged once and reported on `/readyz` with what to fix, and one message is tried now and
//! then (5 s, then doubling up to a minute) until Slack accepts it; then the whole queue is delivered.
//!
//! Exactly once in the channel: every channel message (the request message, each thread reply)
//! carries Slack message metadata with its item's key (`{store id}:{outbox id}`), and the attempt is
//! recorded in the store before the call. An item with an earlier attempt (a crash between the post and
//! its record, a timeout, an unreadable answer) is first looked for in Slack (conversations.history or
//! conversations.replies, from its first attempt minus [`READ_BACK_MARGIN`]); when it is there, its
//! `ts` is recorded and it is not posted again. Updates are idempotent. Answers through a response_url
//! cannot be read back: they are at-least-once, one post per recorded attempt.
//!
//! A response_url takes at most [`RESPONSE_URL_POSTS`] posts within [`RESPONSE_URL_LIFETIME`] of
//! its command (Slack's limits). Past either, the answer goes as an ephemeral message in the channel
//! where the command was typed, or, if Slack refuses that, as a direct message; the item's `via` says
//! which.
//!
//! A retry delay is honoured only by the process that saw the error: after a restart every pending
//! item is due at once.

use super::chat::{KIND_POST, KIND_REPLY, KIND_REPLY_BROADCAST, KIND_RESPOND, KIND_UPDATE};
use super::client::{MessageBody, SendError, SlackApi};
use crate::health::Health;
use crate::lease::Leaseholder;
use crate::ports::Clock;
use crate::store::{
    Fence, OUTBOX_SCOPE, OutboxId, OutboxItem, RequestId, ResponseUrl, Store, StoreError, VIA_DM, VIA_EPHEMERAL,
    VIA_RESPONSE_URL, VIA_WEB_API,
};
use crate::types::ChannelId;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

/// Backoff after the n-th temporary failure: 0.5 s, 1 s, 2 s, ... up to 30 s.
pub fn backoff(attempts: i64) -> Duration {
    let exp = u32::try_from(attempts.clamp(0, 6)).unwrap_or(6);
    Duration::from_millis(500 * 2u64.pow(exp)).min(Duration::from_secs(30))
}

pub struct Outbox {
    pub store: Arc<dyn Store>,
    pub api: Arc<SlackApi>,
    pub clock: Arc<dyn Clock>,
    pub wake: Arc<Notify>,
    /// Messages delivered whose delivery the store could not record yet (id → ts): recorded at the
    /// next try instead of being sent again.
    pub unrecorded: std::sync::Mutex<std::collections::HashMap<OutboxId, Option<String>>>,
    /// Where a configuration problem is reported (and cleared once Slack accepts a message again).
    pub health: Arc<Health>,
    /// While Slack refuses the bot's configuration: when the next probe may be sent, and the pause
    /// after it. A std mutex: never held across an await.
    pub blocked: std::sync::Mutex<Option<Blocked>>,
    /// The store's identity (`Store::store_id`): the first part of each channel message's key.
    pub store_id: String,
    /// Items whose retry time this process set: only they wait for it. An item whose retry time was
    /// saved by an earlier process is due at once. A std mutex: never held across an await.
    pub backed_off: std::sync::Mutex<std::collections::HashSet<OutboxId>>,
    /// The bot's Prometheus metrics: delivery attempts and retries.
    pub telemetry: Arc<crate::telemetry::Telemetry>,
    /// This instance's leases: only the holder of the outbox's lease delivers (one instance of two).
    pub leases: Arc<Leaseholder>,
    /// The outbox's lease while this instance holds it: every record of a delivery carries it. A std
    /// mutex: held only to read or replace it.
    pub fence: std::sync::Mutex<Option<Fence>>,
    /// When the outbox's lease was last taken or renewed. A std mutex: held only to read or set it.
    pub renewed_at: std::sync::Mutex<Option<tokio::time::Instant>>,
}

/// How far before an item's first attempt a read-back looks (clocks differ; Slack's `ts` is its own).
pub const READ_BACK_MARGIN: jiff::SignedDuration = jiff::SignedDuration::from_secs(300);

/// How long a response_url may be used after the command or click that issued it (Slack: 30 minutes),
/// less a margin for the time a post takes.
pub const RESPONSE_URL_LIFETIME: jiff::SignedDuration = jiff::SignedDuration::from_secs(30 * 60 - 30);

/// How many posts a response_url takes (Slack: 5).
pub const RESPONSE_URL_POSTS: i64 = 5;

/// Delivery is stopped by a configuration problem: only one message is tried, at `probe_at`.
#[derive(Debug, Clone, Copy)]
pub struct Blocked {
    probe_at: tokio::time::Instant,
    pause: Duration,
}

/// The first pause after Slack refuses the configuration, and the longest.
const PROBE_FIRST: Duration = Duration::from_secs(5);
const PROBE_MAX: Duration = Duration::from_secs(60);

/// How many unreadable answers a message gets before it is given up on.
const UNREADABLE_ATTEMPTS: i64 = 3;

/// How many attempts a message gets while Slack cannot say whether an earlier attempt posted it (the
/// read-back is rate limited or fails): past them it is posted anyway (at-least-once, logged), so a
/// failing read-back never holds up the thread behind it.
const READ_BACK_ATTEMPTS: i64 = 5;

/// The Slack method an outbox item of kind `kind` is delivered with (a metric label).
fn method_of(kind: &str) -> &'static str {
    match kind {
        KIND_POST | KIND_REPLY | KIND_REPLY_BROADCAST => "chat.postMessage",
        KIND_UPDATE => "chat.update",
        KIND_RESPOND => "response_url",
        _ => "other",
    }
}

enum Outcome {
    Delivered(Option<String>),
    Superseded,
    /// Not deliverable yet (its target is not delivered); look again later.
    Wait,
}

impl Outbox {
    /// Delivers until `shutdown` is cancelled.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            let next_due = self.deliver_due().await;
            // The lease is renewed at least this often (and another instance's messages seen).
            let pause = next_due
                .unwrap_or(Duration::from_secs(5))
                .min(self.leases.settings.renew);
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// Delivers every item that is due, key by key, until nothing is due; returns how long until the
    /// next retry, if any item is waiting.
    pub async fn deliver_due(&self) -> Option<Duration> {
        loop {
            if !self.hold_lease().await {
                return Some(self.leases.settings.renew);
            }
            let heads = match self.store.outbox_heads().await {
                Ok(h) => h,
                Err(e) => {
                    warn!(error = %e, "cannot read the outbox");
                    return Some(Duration::from_secs(1));
                }
            };
            let now = self.clock.now();
            let (mut due, later): (Vec<_>, Vec<_>) = {
                let backed_off = self.backed_off.lock().unwrap_or_else(|p| p.into_inner());
                heads
                    .into_iter()
                    .partition(|i| i.next_attempt_at <= now || !backed_off.contains(&i.id))
            };
            // Slack refuses the configuration: of the Web API calls, only one probe, when it is due.
            // Answers through response_urls need no token: they still go (people wait on them).
            let blocked = *self.blocked.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(b) = blocked {
                let wait = b.probe_at.saturating_duration_since(tokio::time::Instant::now());
                // An approval request never tried goes too: its requester is told at once if the token
                // is still refused (see `gives_up`).
                let (responds, calls): (Vec<_>, Vec<_>) = due
                    .into_iter()
                    .partition(|i| i.kind == KIND_RESPOND || (i.kind == KIND_POST && i.started_at.is_none()));
                due = responds;
                if wait.is_zero() {
                    due.extend(calls.into_iter().take(1));
                }
                if due.is_empty() {
                    return Some(wait.max(Duration::from_millis(10)));
                }
            }
            if due.is_empty() {
                return later
                    .iter()
                    .map(|i| i.next_attempt_at.duration_since(now).unsigned_abs())
                    .min();
            }
            let results = futures::future::join_all(due.iter().map(|item| self.deliver(item))).await;
            // Stop looping when nothing moved (every due item is waiting on something).
            if results.iter().all(|progressed| !progressed) {
                return Some(Duration::from_millis(200));
            }
        }
    }

    /// Takes (or renews) the outbox's lease: `false` while another instance holds it (it delivers).
    /// A lease renewed less than a renewal interval ago is not renewed again here (each post renews it).
    async fn hold_lease(&self) -> bool {
        let fresh = self
            .renewed_at
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|at| at.elapsed() < self.leases.settings.renew);
        if fresh && self.fence.lock().unwrap_or_else(|p| p.into_inner()).is_some() {
            return true;
        }
        let fence = match self.leases.take(OUTBOX_SCOPE).await {
            Ok(fence) => fence,
            Err(e) => {
                warn!(error = %e, "cannot take or renew the outbox's lease");
                None
            }
        };
        let mut held = self.fence.lock().unwrap_or_else(|p| p.into_inner());
        if held.as_ref().map(|f| f.token) != fence.as_ref().map(|f| f.token) {
            match &fence {
                Some(f) => info!(token = f.token, "this instance delivers the outbox"),
                None => info!("another instance delivers the outbox"),
            }
        }
        *held = fence;
        self.renewed(held.is_some());
        held.is_some()
    }

    /// Notes when the outbox's lease was last taken or renewed (`None` once it is not held).
    fn renewed(&self, held: bool) {
        *self.renewed_at.lock().unwrap_or_else(|p| p.into_inner()) = held.then(tokio::time::Instant::now);
    }

    /// The outbox's lease as this instance holds it, or the refusal of any write for the outbox.
    fn fence(&self) -> crate::store::Result<Fence> {
        self.fence
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| StoreError::Fenced("this instance does not hold the outbox's lease".to_owned()))
    }

    /// Gives the outbox's lease back (at shutdown), so that another instance delivers at once.
    pub async fn release_lease(&self) {
        let fence = self.fence.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(fence) = fence {
            self.leases.release(&fence).await;
        }
    }

    /// Tries one item; returns whether anything changed (so that a failing store never turns the
    /// loop into a hot one).
    async fn deliver(&self, item: &OutboxItem) -> bool {
        // Delivered earlier, but the store could not record it then: record it now, never send twice.
        let unrecorded = self
            .unrecorded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&item.id)
            .cloned();
        let result = match unrecorded {
            Some(ts) => Ok(Outcome::Delivered(ts)),
            None => {
                let result = self.try_deliver(item).await;
                self.count(item, &result);
                result
            }
        };
        if let Err(SendError::Auth(problem)) = &result {
            self.block(problem);
        } else if matches!(result, Ok(Outcome::Delivered(_))) && item.kind != KIND_RESPOND {
            // A response_url post needs no token: only a Web API call proves the token works again.
            self.unblock();
        }
        if matches!(result, Ok(Outcome::Wait)) {
            return false;
        }
        let recorded = self.record(item, &result).await;
        match recorded {
            Ok(()) => true,
            Err(e) => {
                warn!(error = %e, "cannot record an outbox delivery");
                false
            }
        }
    }

    /// Counts an attempt to deliver `item` (not a wait for its target) in the metrics.
    fn count(&self, item: &OutboxItem, result: &Result<Outcome, SendError>) {
        let outcome = match result {
            Ok(Outcome::Wait) => return,
            Ok(Outcome::Delivered(_)) => "delivered",
            Ok(Outcome::Superseded) => "superseded",
            Err(e) => e.label(),
        };
        let retried = matches!(result, Err(e) if !self.gives_up(item, e));
        self.telemetry.delivery(method_of(&item.kind), outcome, retried);
    }

    /// Records what became of `item`'s attempt (`result`): delivered (remembered here when the store
    /// cannot record it, so that it is never sent twice), superseded, retried later, or given up.
    async fn record(&self, item: &OutboxItem, result: &Result<Outcome, SendError>) -> crate::store::Result<()> {
        let fence = self.fence()?;
        let fence = Some(&fence);
        let retried = matches!(result, Err(e) if !self.gives_up(item, e));
        {
            let mut backed_off = self.backed_off.lock().unwrap_or_else(|p| p.into_inner());
            if retried {
                backed_off.insert(item.id);
            } else if !matches!(result, Ok(Outcome::Wait)) {
                backed_off.remove(&item.id);
            }
        }
        match result {
            Ok(Outcome::Delivered(ts)) => {
                debug!(id = %item.id, kind = %item.kind, "delivered");
                let r = self.store.outbox_delivered(item.id, ts.as_deref(), fence).await;
                let mut unrecorded = self.unrecorded.lock().unwrap_or_else(|p| p.into_inner());
                if r.is_err() {
                    unrecorded.insert(item.id, ts.clone());
                } else {
                    unrecorded.remove(&item.id);
                }
                r
            }
            Ok(Outcome::Superseded) => self.store.outbox_skipped(item.id, fence).await,
            Ok(Outcome::Wait) => Ok(()),
            Err(SendError::Auth(why)) if self.gives_up(item, &SendError::Auth(why.clone())) => {
                warn!(id = %item.id, kind = %item.kind, error = %why, "Slack refused the bot's token for an approval request; telling the requester");
                self.tell_requester_unposted(item, why).await;
                self.store.outbox_failed(item.id, why, fence).await
            }
            Err(SendError::Permanent(why)) => {
                warn!(id = %item.id, kind = %item.kind, error = %why, "Slack refused a message; giving up on it");
                if item.kind == KIND_POST {
                    self.tell_requester_unposted(item, why).await;
                }
                self.store.outbox_failed(item.id, why, fence).await
            }
            Err(SendError::Unreadable(why)) if item.attempts + 1 >= UNREADABLE_ATTEMPTS => {
                warn!(id = %item.id, kind = %item.kind, error = %why, "Slack's answers cannot be read; giving up on the message");
                self.store
                    .outbox_failed(item.id, &format!("unreadable answer: {why}"), fence)
                    .await
            }
            Err(e) => {
                let wait = match e {
                    SendError::RateLimited(d) => *d,
                    // An answer going another way than its response_url needs the token: it waits
                    // for the probe's pause.
                    SendError::Auth(_) if item.kind == KIND_RESPOND => self.probe_pause(),
                    // The whole queue waits for the probe; this item has no turn of its own.
                    SendError::Auth(_) => Duration::ZERO,
                    _ => backoff(item.attempts),
                };
                if !matches!(e, SendError::Auth(_)) {
                    warn!(id = %item.id, kind = %item.kind, error = %e, retry_in_ms = wait.as_millis() as u64, "Slack delivery failed; will retry");
                }
                let at = self.clock.now() + jiff::SignedDuration::try_from(wait).unwrap_or_default();
                self.store.outbox_retry(item.id, &e.to_string(), at, fence).await
            }
        }
    }

    /// Whether `e` ends `item` (recorded as failed) rather than being retried: a permanent refusal, an
    /// unreadable answer too many times, or a refused token for an approval request never sent before
    /// (the requester waits on it, and a response_url needs no token to tell them).
    fn gives_up(&self, item: &OutboxItem, e: &SendError) -> bool {
        match e {
            SendError::Permanent(_) => true,
            SendError::Unreadable(_) => item.attempts + 1 >= UNREADABLE_ATTEMPTS,
            SendError::Auth(_) => item.kind == KIND_POST && item.started_at.is_none(),
            SendError::RateLimited(_) | SendError::Temporary(_) => false,
        }
    }

    /// The pause before the next probe while Slack refuses the configuration.
    fn probe_pause(&self) -> Duration {
        self.blocked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map_or(PROBE_FIRST, |b| b.pause)
    }

    /// The key a channel message carries in its metadata: the store's identity and the item's id.
    fn key(&self, item: &OutboxItem) -> String {
        format!("{}:{}", self.store_id, item.id)
    }

    /// Renews the outbox's lease (a conditional write) right before a call to Slack: `Err` when this
    /// instance no longer holds it (another delivers now) or cannot tell (the store fails), and then no
    /// call is made.
    async fn ensure_lease(&self) -> Result<Fence, SendError> {
        let fence = self.fence().map_err(|e| SendError::Temporary(e.to_string()))?;
        match self.leases.renew(&fence).await {
            Ok(true) => {
                self.renewed(true);
                Ok(fence)
            }
            Ok(false) => {
                warn!(
                    token = fence.token,
                    "another instance took the outbox's lease over; this one stops delivering"
                );
                *self.fence.lock().unwrap_or_else(|p| p.into_inner()) = None;
                self.renewed(false);
                Err(SendError::Temporary(
                    "another instance delivers the outbox now".to_owned(),
                ))
            }
            Err(e) => Err(SendError::Temporary(format!("cannot renew the outbox's lease: {e}"))),
        }
    }

    /// Records that an attempt by way `via` starts now, right after renewing the outbox's lease: an
    /// attempt that cannot be recorded, or by an instance that lost the lease, is not made.
    async fn attempt(&self, item: &OutboxItem, via: &str) -> Result<(), SendError> {
        let fence = self.ensure_lease().await?;
        self.store
            .outbox_attempt(item.id, via, self.clock.now(), Some(&fence))
            .await
            .map_err(|e| SendError::Temporary(format!("cannot record the attempt: {e}")))
    }

    /// Posts a channel message (in `thread_ts`'s thread, if given) exactly once: when an earlier
    /// attempt was made, looks for it in Slack first and returns its `ts` if it is there.
    async fn post_once(
        &self,
        item: &OutboxItem,
        channel: &ChannelId,
        thread_ts: Option<&str>,
        broadcast: bool,
    ) -> Result<String, SendError> {
        let key = self.key(item);
        if let Some(first) = item.started_at {
            match self
                .api
                .find_posted(channel, thread_ts, first - READ_BACK_MARGIN, &key)
                .await
            {
                Ok(Some(ts)) => {
                    info!(id = %item.id, kind = %item.kind, "an earlier attempt had posted this message; not posting it again");
                    return Ok(ts);
                }
                Ok(None) => {}
                // Slack is busy or away: try the read-back again later, a few times.
                Err(e @ (SendError::RateLimited(_) | SendError::Temporary(_)))
                    if item.attempts < READ_BACK_ATTEMPTS =>
                {
                    return Err(e);
                }
                // The read-back is refused (a scope the token lacks, the channel gone) or keeps failing: it
                // says nothing about the post itself, which goes out (Slack judges it on its own).
                Err(e) => {
                    warn!(id = %item.id, kind = %item.kind, error = %e, "cannot tell whether an earlier attempt posted this message; posting it (it may show twice)");
                }
            }
        }
        let body: MessageBody =
            serde_json::from_str(&item.body).map_err(|e| SendError::Permanent(format!("bad stored message: {e}")))?;
        self.attempt(item, VIA_WEB_API).await?;
        self.api.post(channel, &body, thread_ts, broadcast, Some(&key)).await
    }

    /// An answer for a response_url: through it while Slack takes it (at most [`RESPONSE_URL_POSTS`]
    /// posts, within [`RESPONSE_URL_LIFETIME`] of its issue), else to the same person another way.
    async fn respond(&self, item: &OutboxItem) -> Result<Outcome, SendError> {
        let url = item
            .response_url
            .as_deref()
            .ok_or_else(|| SendError::Permanent("no response_url".into()))?;
        let json: serde_json::Value =
            serde_json::from_str(&item.body).map_err(|e| SendError::Permanent(format!("bad stored message: {e}")))?;
        let temporary = |e: crate::store::StoreError| SendError::Temporary(e.to_string());
        let issued = self.store.response_url(url).await.map_err(temporary)?;
        if let Some(issued) = &issued {
            let uses = self.store.response_url_uses(url, item.id).await.map_err(temporary)?;
            let expired = self.clock.now().duration_since(issued.issued_at) >= RESPONSE_URL_LIFETIME;
            if expired || uses >= RESPONSE_URL_POSTS {
                info!(id = %item.id, expired, uses, "the response_url cannot carry this answer; sending it another way");
                return self.answer_another_way(item, issued, &json).await;
            }
        }
        self.attempt(item, VIA_RESPONSE_URL).await?;
        match (self.api.respond(url, &json).await, &issued) {
            (Ok(()), _) => Ok(Outcome::Delivered(None)),
            // Slack refuses the response_url itself (expired or used up sooner than counted): the person
            // still gets the answer, another way.
            (Err(SendError::Permanent(why)), Some(issued)) => {
                info!(id = %item.id, error = %why, "Slack refused the response_url; sending the answer another way");
                self.answer_another_way(item, issued, &json).await
            }
            (Err(e), _) => Err(e),
        }
    }

    /// Sends an answer its response_url cannot carry as an ephemeral message in the channel where the
    /// command was typed, or, if Slack refuses that (the bot or the person is not in the channel), as a
    /// direct message. The item's `via` records which.
    async fn answer_another_way(
        &self,
        item: &OutboxItem,
        issued: &ResponseUrl,
        json: &serde_json::Value,
    ) -> Result<Outcome, SendError> {
        let body = MessageBody {
            text: json.get("text").and_then(|t| t.as_str()).unwrap_or_default().to_owned(),
            blocks: json
                .get("blocks")
                .and_then(|b| b.as_array())
                .cloned()
                .unwrap_or_default(),
        };
        self.attempt(item, VIA_EPHEMERAL).await?;
        match self.api.post_ephemeral(&issued.channel, &issued.user, &body).await {
            Err(SendError::Permanent(why)) => {
                info!(id = %item.id, error = %why, "Slack refused the ephemeral answer; sending it as a direct message");
                self.attempt(item, VIA_DM).await?;
                self.api.direct_message(&issued.user, &body).await?;
            }
            other => other?,
        }
        Ok(Outcome::Delivered(None))
    }

    /// An approval request Slack refused for good (`not_in_channel`, `channel_not_found`, ...): closes
    /// the request, so that it does not hold its cluster, and tells the person who asked, through the
    /// command's response_url, what to fix.
    async fn tell_requester_unposted(&self, item: &OutboxItem, why: &str) {
        let Some(id) = item
            .ordering_key
            .strip_prefix("request:")
            .and_then(|n| n.parse::<RequestId>().ok())
        else {
            return;
        };
        let channel = item.channel.as_deref().unwrap_or("(none)");
        let note = format!("the approval request could not be posted in channel {channel}: {why}");
        match self.store.close_unposted(id, &note).await {
            Ok(Some(url)) => {
                let body = serde_json::json!({
                    "response_type": "ephemeral",
                    "replace_original": false,
                    "text": super::render::request_unposted(id, why),
                });
                let queued = self
                    .store
                    .enqueue(
                        &crate::store::Outgoing {
                            ordering_key: &format!("respond:{url}"),
                            kind: KIND_RESPOND,
                            channel: None,
                            target: None,
                            response_url: Some(&url),
                            body: &body.to_string(),
                            dedup_key: Some(&format!("request:{id}:unposted")),
                            fence: None,
                        },
                        self.clock.now(),
                    )
                    .await;
                if let Err(e) = queued {
                    warn!(error = %e, "cannot queue the answer to the requester");
                }
            }
            Ok(None) => {}
            Err(e) => warn!(error = %e, "cannot close a request that could not be posted"),
        }
    }

    /// Stops delivery for a configuration problem (or, when already stopped, schedules the next probe
    /// later); logs and reports the problem once.
    fn block(&self, problem: &str) {
        let mut blocked = self.blocked.lock().unwrap_or_else(|p| p.into_inner());
        let pause = blocked.map_or(PROBE_FIRST, |b| (b.pause * 2).min(PROBE_MAX));
        *blocked = Some(Blocked {
            probe_at: tokio::time::Instant::now() + pause,
            pause,
        });
        if self.health.report(crate::health::SLACK_DELIVERY, problem) {
            error!(
                problem,
                "Slack refuses the bot's configuration: messages are kept and not sent; one is tried again now and then until this is fixed"
            );
        }
    }

    fn unblock(&self) {
        let was = self.blocked.lock().unwrap_or_else(|p| p.into_inner()).take();
        if self.health.clear(crate::health::SLACK_DELIVERY) || was.is_some() {
            info!("Slack accepts the bot's messages again; delivering the queue");
        }
    }

    /// The channel and ts of the message an item refers to, once that message is delivered.
    async fn target(&self, item: &OutboxItem) -> Result<Option<(ChannelId, String)>, SendError> {
        let id = item
            .target
            .ok_or_else(|| SendError::Permanent("no target message".into()))?;
        let target = self
            .store
            .outbox_item(id)
            .await
            .map_err(|e| SendError::Temporary(e.to_string()))?
            .ok_or_else(|| SendError::Permanent(format!("target message {id} does not exist")))?;
        match target.state.as_str() {
            "delivered" => {
                let channel = target.channel.as_deref().and_then(ChannelId::parse);
                match (channel, target.delivered_ts) {
                    (Some(c), Some(ts)) => Ok(Some((c, ts))),
                    _ => Err(SendError::Permanent(format!(
                        "target message {id} has no channel or ts"
                    ))),
                }
            }
            "failed" => Err(SendError::Permanent(format!("target message {id} was never posted"))),
            _ => Ok(None),
        }
    }

    async fn try_deliver(&self, item: &OutboxItem) -> Result<Outcome, SendError> {
        let body = || -> Result<MessageBody, SendError> {
            serde_json::from_str(&item.body).map_err(|e| SendError::Permanent(format!("bad stored message: {e}")))
        };
        let channel = || {
            item.channel
                .as_deref()
                .and_then(ChannelId::parse)
                .ok_or_else(|| SendError::Permanent("no channel".into()))
        };
        match item.kind.as_str() {
            KIND_POST => {
                let ts = self.post_once(item, &channel()?, None, false).await?;
                Ok(Outcome::Delivered(Some(ts)))
            }
            KIND_REPLY | KIND_REPLY_BROADCAST => {
                let Some((channel, thread_ts)) = self.target(item).await? else {
                    return Ok(Outcome::Wait);
                };
                let broadcast = item.kind == KIND_REPLY_BROADCAST;
                let ts = self.post_once(item, &channel, Some(&thread_ts), broadcast).await?;
                Ok(Outcome::Delivered(Some(ts)))
            }
            KIND_UPDATE => {
                if self
                    .store
                    .newer_update_pending(item)
                    .await
                    .map_err(|e| SendError::Temporary(e.to_string()))?
                {
                    return Ok(Outcome::Superseded);
                }
                let Some((channel, ts)) = self.target(item).await? else {
                    return Ok(Outcome::Wait);
                };
                self.ensure_lease().await?;
                self.api.update(&channel, &ts, &body()?).await?;
                Ok(Outcome::Delivered(None))
            }
            KIND_RESPOND => {
                // An answer that says a message was posted waits for it, and is dropped if Slack refused it.
                if item.target.is_some() {
                    match self.target(item).await {
                        Ok(None) => return Ok(Outcome::Wait),
                        Err(SendError::Permanent(_)) => return Ok(Outcome::Superseded),
                        Err(e) => return Err(e),
                        Ok(Some(_)) => {}
                    }
                }
                self.respond(item).await
            }
            other => Err(SendError::Permanent(format!("unknown outbox kind {other}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_thirty_seconds() {
        assert_eq!(backoff(0), Duration::from_millis(500));
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(4));
        assert_eq!(backoff(6), Duration::from_secs(30));
        assert_eq!(backoff(50), Duration::from_secs(30));
    }
}
