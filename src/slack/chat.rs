//! The engine's `Chat` port for Slack: renders each message and queues it in the store's outbox, then
//! wakes the delivery worker. Queuing is a local database write, so a Slack outage never slows a run.
//!
//! Ordering: every message about a request (the request message, its updates, its thread replies)
//! shares the ordering key `request:{id}`, so they are delivered in the order they were queued; each
//! response_url has its own key. Idempotency: the request message and every keyed reply or update is
//! queued at most once, however often a restarted bot asks.

use super::client::{MessageBody, SendError, SlackApi};
use super::render;
use crate::ports::{ChatError, Clock};
use crate::runbook::plan::Plan;
use crate::runbook::report::Chat;
use crate::runbook::report::{Answer, Note, Stage};
use crate::store::{Fence, OutboxId, Outgoing, Request, Store};
use crate::types::ChannelId;
use std::sync::Arc;
use tokio::sync::Notify;

pub const KIND_POST: &str = "post";
pub const KIND_REPLY: &str = "reply";
pub const KIND_REPLY_BROADCAST: &str = "reply_broadcast";
pub const KIND_UPDATE: &str = "update";
pub const KIND_RESPOND: &str = "respond";

pub struct SlackChat {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub channel: ChannelId,
    /// Every cluster's approval policy and whom to mention, for the request message.
    pub policy: crate::settings::policy::ApprovalPolicy,
    /// Wakes the outbox worker when something is queued.
    pub wake: Arc<Notify>,
    /// Posts the answers that are not queued (`answer_now`).
    pub api: Arc<SlackApi>,
    /// Counts those posts as the outbox counts its deliveries.
    pub telemetry: Arc<crate::telemetry::Telemetry>,
}

/// Most attempts at one post of an answer that is not queued (`SlackChat::answer_now`).
pub const ANSWER_ATTEMPTS: u32 = 5;

/// Who typed a command and where, with the response_url Slack gave it (`SlackChat::answer_now`).
#[derive(Debug, Clone, Copy)]
pub struct Asker<'a> {
    pub response_url: &'a str,
    /// Slack user id (`U…`).
    pub user: &'a str,
    /// Slack channel id (`C…`, `D…`, `G…`) where the command was typed.
    pub channel: &'a str,
}

/// The ways `answer_now` tries, in order.
#[derive(Debug, Clone, Copy)]
enum Via {
    ResponseUrl,
    Ephemeral,
    DirectMessage,
}

impl Via {
    fn next(self) -> Via {
        match self {
            Via::ResponseUrl => Via::Ephemeral,
            Via::Ephemeral | Via::DirectMessage => Via::DirectMessage,
        }
    }
}

fn thread_key(request: &Request) -> String {
    format!("request:{}", request.id)
}

/// A response_url payload (Slack's "responding to interactions": `response_type`, not replacing the
/// original) of `body`, within Slack's limits (`limits::fit`).
fn response(body: &MessageBody, visible_to_channel: bool) -> serde_json::Value {
    let body = super::limits::fit(body.clone());
    let mut payload = serde_json::json!({
        "response_type": if visible_to_channel { "in_channel" } else { "ephemeral" },
        "replace_original": false,
        "text": body.text,
    });
    if !body.blocks.is_empty() {
        payload["blocks"] = serde_json::Value::Array(body.blocks);
    }
    payload
}

fn json(body: &MessageBody) -> Result<String, ChatError> {
    serde_json::to_string(body).map_err(|e| ChatError(e.to_string()))
}

impl SlackChat {
    /// The request message under the policy of its cluster and (planned) mode.
    fn request_message(&self, request: &Request, plan: &Plan, stage: &Stage) -> MessageBody {
        let policy = self
            .policy
            .policy(&request.cluster, Some(crate::settings::Action::from(plan.mode)));
        let mention = &self.policy.notify(&request.cluster).request;
        render::request_message(request, plan, stage, policy, mention)
    }

    async fn enqueue(&self, m: Outgoing<'_>) -> Result<OutboxId, ChatError> {
        let id = self
            .store
            .enqueue(&m, self.clock.now())
            .await
            .map_err(|e| ChatError(e.to_string()))?;
        self.wake.notify_one();
        Ok(id)
    }

    async fn to_thread(
        &self,
        request: &Request,
        kind: &str,
        body: &str,
        dedup_key: Option<&str>,
        fence: Option<&Fence>,
    ) -> Result<OutboxId, ChatError> {
        let Some(message) = request.message else {
            return Err(ChatError(format!("request #{} has no message yet", request.id)));
        };
        self.enqueue(Outgoing {
            ordering_key: &thread_key(request),
            kind,
            channel: Some(&self.channel),
            target: Some(message),
            response_url: None,
            body,
            dedup_key,
            fence,
        })
        .await
    }

    /// Records who `response_url` answers (`user`) and where (`channel`), issued now: when Slack's
    /// limits on it are reached (5 posts, 30 minutes), the outbox answers that person another way.
    /// A failure is logged: the answer then goes through the response_url, as before.
    pub async fn remember_response_url(&self, response_url: &str, user: &str, channel: &str) {
        let record = crate::store::ResponseUrl {
            url: response_url.to_owned(),
            user: user.to_owned(),
            channel: channel.to_owned(),
            issued_at: self.clock.now(),
        };
        if let Err(e) = self.store.remember_response_url(&record).await {
            tracing::warn!(error = %e, "cannot record a response_url's user and channel");
        }
    }

    /// A text (already Slack text, from `render`) to a response_url.
    pub async fn respond_text(
        &self,
        response_url: &str,
        text: &str,
        visible_to_channel: bool,
    ) -> Result<(), ChatError> {
        let body = MessageBody {
            text: text.to_owned(),
            blocks: vec![],
        };
        self.respond_message(response_url, &body, visible_to_channel).await
    }

    /// Posts `bodies`, in order, straight to `asker`'s response_url, without queuing them in the
    /// store: for answers that record nothing and that the person can ask for again (`/aurora
    /// status`), so that a burst of them costs the store nothing. A 429 waits for its Retry-After, a
    /// 5xx, timeout or connection problem is retried with the outbox's backoff, each post at most
    /// [`ANSWER_ATTEMPTS`] times. When Slack refuses the response_url itself (expired, used up), the
    /// rest goes as ephemeral messages in the asker's channel, or, refused there too, as direct
    /// messages (as the outbox does, `outbox.rs`). A restart loses what is not posted yet.
    ///
    /// # Errors
    /// The last `SendError` of the post that could not be delivered (later ones are not tried).
    pub async fn answer_now(&self, asker: &Asker<'_>, bodies: &[MessageBody], visible: bool) -> Result<(), SendError> {
        let mut via = Via::ResponseUrl;
        for body in bodies {
            loop {
                let sent = match via {
                    Via::ResponseUrl => {
                        let payload = response(body, visible);
                        self.retried("response_url", || self.api.respond(asker.response_url, &payload))
                            .await
                    }
                    Via::Ephemeral => {
                        self.retried("chat.postEphemeral", || {
                            self.api.post_ephemeral(asker.channel, asker.user, body)
                        })
                        .await
                    }
                    Via::DirectMessage => {
                        self.retried("chat.postMessage", || self.api.direct_message(asker.user, body))
                            .await
                    }
                };
                match (sent, via) {
                    (Ok(()), _) => break,
                    (Err(SendError::Permanent(why)), Via::ResponseUrl | Via::Ephemeral) => {
                        tracing::info!(error = %why, "Slack refused an answer's way; trying the next one");
                        via = via.next();
                    }
                    (Err(e), _) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// Calls `post` until it is delivered, refused, or tried [`ANSWER_ATTEMPTS`] times, counting each
    /// attempt under `method` in the metrics.
    async fn retried<F: std::future::Future<Output = Result<(), SendError>>>(
        &self,
        method: &'static str,
        post: impl Fn() -> F,
    ) -> Result<(), SendError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let sent = post().await;
            let wait = match &sent {
                Err(SendError::RateLimited(after)) => Some(*after),
                Err(SendError::Temporary(_) | SendError::Unreadable(_)) => {
                    Some(super::outbox::backoff(i64::from(attempt) - 1))
                }
                _ => None,
            };
            let retried = wait.is_some() && attempt < ANSWER_ATTEMPTS;
            self.telemetry.delivery(
                method,
                sent.as_ref().err().map_or("delivered", SendError::label),
                retried,
            );
            match (sent, wait) {
                (Err(_), Some(wait)) if retried => tokio::time::sleep(wait).await,
                (sent, _) => return sent,
            }
        }
    }

    /// A full message (text and blocks) to a response_url.
    pub async fn respond_message(
        &self,
        response_url: &str,
        body: &MessageBody,
        visible_to_channel: bool,
    ) -> Result<(), ChatError> {
        let payload = response(body, visible_to_channel);
        self.enqueue(Outgoing {
            ordering_key: &format!("respond:{response_url}"),
            kind: KIND_RESPOND,
            channel: None,
            target: None,
            response_url: Some(response_url),
            body: &payload.to_string(),
            dedup_key: None,
            fence: None,
        })
        .await
        .map(|_| ())
    }
}

#[async_trait::async_trait]
impl Chat for SlackChat {
    async fn post_request(&self, request: &Request, plan: &Plan) -> Result<OutboxId, ChatError> {
        let body = self.request_message(request, plan, &Stage::AwaitingApproval);
        self.enqueue(Outgoing {
            ordering_key: &thread_key(request),
            kind: KIND_POST,
            channel: Some(&self.channel),
            target: None,
            response_url: None,
            body: &json(&body)?,
            dedup_key: Some(&format!("request:{}:post", request.id)),
            fence: None,
        })
        .await
    }

    async fn update_request(
        &self,
        request: &Request,
        plan: &Plan,
        stage: &Stage,
        key: Option<&str>,
        fence: Option<&Fence>,
    ) -> Result<(), ChatError> {
        let body = self.request_message(request, plan, stage);
        self.to_thread(request, KIND_UPDATE, &json(&body)?, key, fence)
            .await
            .map(|_| ())
    }

    async fn note(
        &self,
        request: &Request,
        note: &Note,
        broadcast: bool,
        key: &str,
        fence: Option<&Fence>,
    ) -> Result<OutboxId, ChatError> {
        let kind = if broadcast { KIND_REPLY_BROADCAST } else { KIND_REPLY };
        let body = match note {
            Note::NeedsAttention(_) => render::note_mentioning(note, &self.policy.notify(&request.cluster).attention),
            _ => render::note(note),
        };
        self.to_thread(request, kind, &json(&body)?, Some(key), fence).await
    }

    async fn edit(
        &self,
        request: &Request,
        reply: OutboxId,
        note: &Note,
        key: &str,
        fence: Option<&Fence>,
    ) -> Result<(), ChatError> {
        self.enqueue(Outgoing {
            ordering_key: &thread_key(request),
            kind: KIND_UPDATE,
            channel: Some(&self.channel),
            target: Some(reply),
            response_url: None,
            body: &json(&render::note(note))?,
            dedup_key: Some(key),
            fence,
        })
        .await
        .map(|_| ())
    }

    async fn respond_after(&self, response_url: &str, answer: &Answer, after: OutboxId) -> Result<(), ChatError> {
        let body = MessageBody {
            text: render::answer(answer),
            blocks: vec![],
        };
        let payload = response(&body, false);
        self.enqueue(Outgoing {
            ordering_key: &format!("respond:{response_url}"),
            kind: KIND_RESPOND,
            channel: None,
            target: Some(after),
            response_url: Some(response_url),
            body: &payload.to_string(),
            dedup_key: None,
            fence: None,
        })
        .await
        .map(|_| ())
    }

    async fn respond_plan(&self, response_url: &str, plan: &Plan) -> Result<(), ChatError> {
        self.respond_message(response_url, &render::plan_preview(plan), false)
            .await
    }

    async fn respond(&self, response_url: &str, answer: &Answer, visible_to_channel: bool) -> Result<(), ChatError> {
        self.respond_text(response_url, &render::answer(answer), visible_to_channel)
            .await
    }
}
