//! The engine's `Chat` port for Slack: renders each message and queues it in the store's outbox, then
//! wakes the delivery worker. Queuing is a local database write, so a Slack outage never slows a run.
//!
//! Ordering: every message about a request (the request message, its updates, its thread replies)
//! shares the ordering key `request:{id}`, so they are delivered in the order they were queued; each
//! response_url has its own key.

use super::client::MessageBody;
use super::render;
use crate::ports::{Chat, ChatError, Clock};
use crate::runbook::plan::Plan;
use crate::runbook::report::{Note, Stage};
use crate::store::{Request, Store};
use crate::types::{ChannelId, Principal};
use std::sync::Arc;
use tokio::sync::Notify;

pub const KIND_POST: &str = "post";
pub const KIND_REPLY: &str = "reply";
pub const KIND_REPLY_BROADCAST: &str = "reply_broadcast";
pub const KIND_UPDATE: &str = "update";
pub const KIND_RESPOND: &str = "respond";

pub struct SlackChat {
    pub store: Arc<Store>,
    pub clock: Arc<dyn Clock>,
    pub channel: ChannelId,
    pub approvers: Vec<Principal>,
    /// Wakes the outbox worker when something is queued.
    pub wake: Arc<Notify>,
}

fn key(request: &Request) -> String {
    format!("request:{}", request.id)
}

fn json(body: &MessageBody) -> Result<String, ChatError> {
    serde_json::to_string(body).map_err(|e| ChatError(e.to_string()))
}

impl SlackChat {
    fn enqueue(
        &self,
        key: &str,
        kind: &str,
        target: Option<i64>,
        url: Option<&str>,
        body: &str,
    ) -> Result<i64, ChatError> {
        let channel = (kind != KIND_RESPOND).then_some(&self.channel);
        let id = self
            .store
            .enqueue(key, kind, channel, target, url, body, self.clock.now())
            .map_err(|e| ChatError(e.to_string()))?;
        self.wake.notify_one();
        Ok(id)
    }

    /// A full message (text and blocks) to a response_url.
    pub fn respond_message(
        &self,
        response_url: &str,
        body: &MessageBody,
        visible_to_channel: bool,
    ) -> Result<(), ChatError> {
        let payload = serde_json::json!({
            "response_type": if visible_to_channel { "in_channel" } else { "ephemeral" },
            "replace_original": false,
            "text": body.text,
            "blocks": body.blocks,
        });
        self.enqueue(
            &format!("respond:{response_url}"),
            KIND_RESPOND,
            None,
            Some(response_url),
            &payload.to_string(),
        )
        .map(|_| ())
    }
}

impl Chat for SlackChat {
    fn post_request(&self, request: &Request, plan: &Plan) -> Result<i64, ChatError> {
        let body =
            render::request_message(request, plan, &Stage::AwaitingApproval, &self.approvers);
        self.enqueue(&key(request), KIND_POST, None, None, &json(&body)?)
    }

    fn update_request(
        &self,
        request: &Request,
        plan: &Plan,
        stage: &Stage,
    ) -> Result<(), ChatError> {
        let Some(message) = request.message else {
            return Err(ChatError(format!(
                "request #{} has no message to update",
                request.id
            )));
        };
        let body = render::request_message(request, plan, stage, &self.approvers);
        self.enqueue(
            &key(request),
            KIND_UPDATE,
            Some(message),
            None,
            &json(&body)?,
        )
        .map(|_| ())
    }

    fn note(&self, request: &Request, note: &Note, broadcast: bool) -> Result<(), ChatError> {
        let Some(message) = request.message else {
            return Err(ChatError(format!("request #{} has no thread", request.id)));
        };
        let kind = if broadcast {
            KIND_REPLY_BROADCAST
        } else {
            KIND_REPLY
        };
        self.enqueue(
            &key(request),
            kind,
            Some(message),
            None,
            &json(&render::note(note))?,
        )
        .map(|_| ())
    }

    fn respond(
        &self,
        response_url: &str,
        text: &str,
        visible_to_channel: bool,
    ) -> Result<(), ChatError> {
        let body = MessageBody {
            text: text.to_owned(),
            blocks: vec![],
        };
        self.respond_message(response_url, &body, visible_to_channel)
    }
}
