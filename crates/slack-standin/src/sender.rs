//! The sending side: signed slash commands, button clicks and modal submissions, as Slack sends them
//! to the bot.

use crate::signing::{self, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use crate::{STANDIN_APP, STANDIN_TEAM, Secret};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

/// Where a sender's requests say they come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    pub team_id: String,
    pub app_id: String,
    pub enterprise_id: Option<String>,
    pub enterprise_install: bool,
}

impl Default for Workspace {
    /// The stand-in's own workspace and app.
    fn default() -> Self {
        Workspace {
            team_id: STANDIN_TEAM.to_owned(),
            app_id: STANDIN_APP.to_owned(),
            enterprise_id: None,
            enterprise_install: false,
        }
    }
}

/// Sends the bot what Slack would send: signed slash commands and block_actions clicks.
pub struct SlackSender {
    base_url: String,
    secret: Secret,
    workspace: Workspace,
    http: hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

/// The bot's answer to a signed request.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    /// The `text` of a JSON answer.
    pub fn text(&self) -> String {
        serde_json::from_str::<Value>(&self.body)
            .ok()
            .and_then(|v| v.get("text").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_default()
    }
}

impl SlackSender {
    /// A sender to the bot at `base_url` (e.g. `http://127.0.0.1:3000`), signing with `secret`.
    pub fn new(base_url: &str, secret: &Secret) -> SlackSender {
        SlackSender {
            base_url: base_url.trim_end_matches('/').to_owned(),
            secret: secret.clone(),
            workspace: Workspace::default(),
            http: hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(hyper_util::client::legacy::connect::HttpConnector::new()),
        }
    }

    /// The same sender, saying its requests come from `workspace` (still signed with the same secret).
    pub fn from_workspace(mut self, workspace: Workspace) -> SlackSender {
        self.workspace = workspace;
        self
    }

    /// POSTs `body` to `path` with the given headers, exactly as given (for tests of bad requests).
    pub async fn post_raw(&self, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Answer {
        let mut req = hyper::Request::post(format!("{}{path}", self.base_url))
            .header("content-type", "application/x-www-form-urlencoded");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(Bytes::from(body))).expect("valid request");
        match self.http.request(req).await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let body = resp
                    .into_body()
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                Answer {
                    status,
                    body: String::from_utf8_lossy(&body).into_owned(),
                }
            }
            Err(e) => Answer {
                status: 0,
                body: e.to_string(),
            },
        }
    }

    /// POSTs a body signed as Slack signs it, with a timestamp of `now_unix`.
    pub async fn post_signed(&self, path: &str, body: &str, now_unix: i64) -> Answer {
        let ts = now_unix.to_string();
        let signature = signing::sign(&self.secret, &ts, body.as_bytes());
        self.post_raw(
            path,
            &[(TIMESTAMP_HEADER, &ts), (SIGNATURE_HEADER, &signature)],
            body.as_bytes().to_vec(),
        )
        .await
    }

    /// The form body of a slash command, as Slack sends it, from the stand-in's workspace.
    pub fn command_body(user: &str, channel: &str, text: &str, response_url: &str) -> String {
        Self::command_body_in(&Workspace::default(), user, channel, text, response_url)
    }

    /// The form body of a slash command from `w`.
    pub fn command_body_in(w: &Workspace, user: &str, channel: &str, text: &str, response_url: &str) -> String {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("token", "deprecated-verification-token")
            .append_pair("team_id", &w.team_id)
            .append_pair("team_domain", "standin")
            .append_pair("channel_id", channel)
            .append_pair("channel_name", "incidents")
            .append_pair("user_id", user)
            .append_pair("user_name", &user.to_lowercase())
            .append_pair("command", "/aurora")
            .append_pair("text", text)
            .append_pair("api_app_id", &w.app_id)
            .append_pair(
                "is_enterprise_install",
                if w.enterprise_install { "true" } else { "false" },
            )
            .append_pair("response_url", response_url)
            .append_pair("trigger_id", "1.2.standin");
        if let Some(e) = &w.enterprise_id {
            form.append_pair("enterprise_id", e);
        }
        form.finish()
    }

    /// The form body of a button click (`block_actions`) on message `message_ts` in `channel`, from the
    /// stand-in's workspace.
    pub fn click_body(
        user: &str,
        channel: &str,
        message_ts: &str,
        action_id: &str,
        value: &str,
        response_url: &str,
    ) -> String {
        Self::click_body_in(
            &Workspace::default(),
            user,
            channel,
            message_ts,
            action_id,
            value,
            response_url,
        )
    }

    /// The form body of a button click from `w`.
    pub fn click_body_in(
        w: &Workspace,
        user: &str,
        channel: &str,
        message_ts: &str,
        action_id: &str,
        value: &str,
        response_url: &str,
    ) -> String {
        let payload = Self::click_payload_in(w, user, channel, message_ts, action_id, value, response_url);
        form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", &payload.to_string())
            .finish()
    }

    /// The `block_actions` payload of a button click from `w` (the form's `payload` field over HTTP,
    /// the envelope's `payload` over Socket Mode).
    pub fn click_payload_in(
        w: &Workspace,
        user: &str,
        channel: &str,
        message_ts: &str,
        action_id: &str,
        value: &str,
        response_url: &str,
    ) -> Value {
        let enterprise = w.enterprise_id.as_ref().map(|e| json!({"id": e, "name": "Org"}));
        json!({
            "type": "block_actions",
            "user": {"id": user, "username": user.to_lowercase(), "name": user.to_lowercase(), "team_id": w.team_id},
            "api_app_id": w.app_id,
            "enterprise": enterprise,
            "token": "deprecated-verification-token",
            "container": {"type": "message", "message_ts": message_ts, "channel_id": channel, "is_ephemeral": false},
            "trigger_id": "1.2.standin",
            "team": {"id": w.team_id, "domain": "standin"},
            "is_enterprise_install": w.enterprise_install,
            "channel": {"id": channel, "name": "incidents"},
            "message": {"type": "message", "ts": message_ts, "text": "request", "bot_id": "B0STANDIN"},
            "state": {"values": {}},
            "response_url": response_url,
            "actions": [{"action_id": action_id, "block_id": "decision", "type": "button", "value": value,
                         "text": {"type": "plain_text", "text": action_id}, "action_ts": "1800000000.000200"}]
        })
    }

    /// The `view_submission` payload of modal `callback_id` (with `private_metadata`) submitted by `user`
    /// from `w`, its inputs' `values` as Slack's `view.state.values` (block id → action id →
    /// `{"type", "value"}`; see [`SlackSender::text_input`]).
    pub fn view_submission_payload_in(
        w: &Workspace,
        user: &str,
        callback_id: &str,
        private_metadata: &str,
        values: Value,
    ) -> Value {
        let enterprise = w.enterprise_id.as_ref().map(|e| json!({"id": e, "name": "Org"}));
        json!({
            "type": "view_submission",
            "team": {"id": w.team_id, "domain": "standin"},
            "user": {"id": user, "username": user.to_lowercase(), "name": user.to_lowercase(), "team_id": w.team_id},
            "api_app_id": w.app_id,
            "enterprise": enterprise,
            "is_enterprise_install": w.enterprise_install,
            "token": "deprecated-verification-token",
            "trigger_id": "1.3.standin",
            "view": {
                "id": "V0STANDIN", "team_id": w.team_id, "app_id": w.app_id, "bot_id": "B0STANDIN",
                "type": "modal", "callback_id": callback_id, "private_metadata": private_metadata,
                "title": {"type": "plain_text", "text": "Modal"}, "blocks": [],
                "state": {"values": values}, "hash": "1800000000.standin",
                "root_view_id": "V0STANDIN", "previous_view_id": null, "external_id": ""
            },
            "response_urls": []
        })
    }

    /// One `plain_text_input` (`action_id`) in input block `block_id` holding `value`, as
    /// `view.state.values`.
    pub fn text_input(block_id: &str, action_id: &str, value: Option<&str>) -> Value {
        json!({block_id: {action_id: {"type": "plain_text_input", "value": value}}})
    }

    /// Submits modal `callback_id` (`private_metadata`, input `values`) as `user`, signed.
    pub async fn submit_view(
        &self,
        user: &str,
        callback_id: &str,
        private_metadata: &str,
        values: Value,
        now_unix: i64,
    ) -> Answer {
        let payload = Self::view_submission_payload_in(&self.workspace, user, callback_id, private_metadata, values);
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", &payload.to_string())
            .finish();
        self.post_signed("/slack/interactions", &body, now_unix).await
    }

    /// Sends `/aurora {text}` as `user` from `channel`.
    pub async fn command(&self, user: &str, channel: &str, text: &str, response_url: &str, now_unix: i64) -> Answer {
        self.post_signed(
            "/slack/commands",
            &Self::command_body_in(&self.workspace, user, channel, text, response_url),
            now_unix,
        )
        .await
    }

    /// Clicks button `action_id` (value `value`) on message `message_ts` as `user`.
    #[expect(clippy::too_many_arguments, reason = "each is a field of Slack's payload")]
    pub async fn click(
        &self,
        user: &str,
        channel: &str,
        message_ts: &str,
        action_id: &str,
        value: &str,
        response_url: &str,
        now_unix: i64,
    ) -> Answer {
        let body = Self::click_body_in(
            &self.workspace,
            user,
            channel,
            message_ts,
            action_id,
            value,
            response_url,
        );
        self.post_signed("/slack/interactions", &body, now_unix).await
    }
}
