//! The Slack Web API, through slack-morphism, plus plain HTTPS posts to response_urls. Every call is
//! bounded by a timeout and every failure is classified for the outbox: retry (and when), or give up.
//! slack-morphism's own rate control is off: 429 and 5xx are handled by the outbox, in order.

use crate::types::{ChannelId, Secret, SlackUserId, UserGroupId};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use slack_morphism::errors::SlackClientError;
use slack_morphism::prelude::*;
use std::time::Duration;

/// How long any one Slack call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a delivery failed, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Rate limited: try again after this long (Slack's Retry-After, or a default).
    #[error("rate limited (retry after {0:?})")]
    RateLimited(Duration),
    /// A 5xx, a timeout or a connection problem: try again with backoff.
    #[error("temporary failure: {0}")]
    Temporary(String),
    /// Slack refused the bot's token (revoked, wrong, missing a scope): nothing will get through until
    /// an operator fixes it, so keep the message and try again slowly.
    #[error("the bot's token was refused: {0}")]
    Auth(String),
    /// Slack answered, but with something that could not be read: it may have acted. Retried a few
    /// times only, so that a post that did go through is not repeated forever.
    #[error("unreadable answer: {0}")]
    Unreadable(String),
    /// Slack refused it for good (e.g. `channel_not_found`, `msg_too_long`): do not retry.
    #[error("refused: {0}")]
    Permanent(String),
}

/// Slack error codes that mean the token (not the message) is the problem.
const AUTH_CODES: &[&str] = &[
    "invalid_auth",
    "not_authed",
    "token_revoked",
    "token_expired",
    "account_inactive",
    "missing_scope",
    "not_allowed_token_type",
];

/// Slack error codes that are worth retrying.
const TEMPORARY_CODES: &[&str] = &[
    "ratelimited",
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
];

/// What to tell an operator about an error code that is a configuration problem: what is wrong and
/// what to change. `body` is Slack's answer (for `missing_scope`, it names the scope needed).
fn config_problem(code: &str, body: Option<&str>) -> String {
    match code {
        "missing_scope" => {
            let needed = body
                .and_then(|b| serde_json::from_str::<serde_json::Value>(b).ok())
                .and_then(|v| v.get("needed").and_then(|n| n.as_str()).map(str::to_owned));
            match needed {
                Some(scope) => format!(
                    "missing_scope: the bot token lacks the `{scope}` scope. Add it under OAuth & Permissions \
                     (manifest.yml lists every scope the bot needs) and reinstall the app"
                ),
                None => "missing_scope: the bot token lacks a scope the bot needs. Compare OAuth & Permissions with \
                         manifest.yml and reinstall the app"
                    .to_owned(),
            }
        }
        "invalid_auth" | "not_authed" => {
            format!(
                "{code}: Slack does not accept the bot token. Check slack.bot_token (or its secret): it must be the app's Bot User OAuth Token"
            )
        }
        "token_revoked" | "token_expired" | "account_inactive" => format!(
            "{code}: the bot token no longer works (the app was uninstalled, or the token revoked or rotated). Reinstall \
             the app and give the bot its new token"
        ),
        "not_allowed_token_type" => {
            format!("{code}: this is not a bot token. Give the Bot User OAuth Token (xoxb-)")
        }
        other => format!("{other}: Slack refuses the bot's token"),
    }
}

/// What to tell people about a refusal that is about one message, not the token.
fn refusal(code: &str) -> String {
    match code {
        "not_in_channel" => "not_in_channel: the bot is not a member of the channel. Invite it there with \
                             /invite @aurora-failover-bot"
            .to_owned(),
        "channel_not_found" => "channel_not_found: the channel does not exist or the bot cannot see it (for a \
                                private channel, invite the bot). Check slack.incident_channel"
            .to_owned(),
        "is_archived" => {
            "is_archived: the channel is archived. Unarchive it or set another slack.incident_channel".to_owned()
        }
        other => other.to_owned(),
    }
}

fn classify(e: SlackClientError) -> SendError {
    match e {
        SlackClientError::RateLimitError(r) => SendError::RateLimited(r.retry_after.unwrap_or(Duration::from_secs(1))),
        SlackClientError::HttpError(h) if h.status_code.is_server_error() => {
            SendError::Temporary(format!("HTTP {}", h.status_code))
        }
        SlackClientError::HttpError(h) if h.status_code.as_u16() == 429 => {
            SendError::RateLimited(Duration::from_secs(1))
        }
        SlackClientError::HttpError(h) => SendError::Permanent(format!("HTTP {}", h.status_code)),
        SlackClientError::ApiError(a) if TEMPORARY_CODES.contains(&a.code.as_str()) => SendError::Temporary(a.code),
        SlackClientError::ApiError(a) if AUTH_CODES.contains(&a.code.as_str()) => {
            SendError::Auth(config_problem(&a.code, a.http_response_body.as_deref()))
        }
        SlackClientError::ApiError(a) => SendError::Permanent(refusal(&a.code)),
        SlackClientError::ProtocolError(p) => SendError::Unreadable(p.json_error.to_string()),
        // A request that cannot even be built (a token with a character that cannot go in a header):
        // no retry can fix that.
        other if other.to_string().contains("header value") => SendError::Auth(
            "the bot token cannot be sent in an HTTP header (it holds a space, a line break or another invalid character); \
             check slack.bot_token"
                .to_owned(),
        ),
        SlackClientError::HttpProtocolError(p) => SendError::Temporary(format!("connection problem: {p}")),
        other => SendError::Temporary(other.to_string()),
    }
}

async fn bounded<T>(f: impl std::future::Future<Output = ClientResult<T>>) -> Result<T, SendError> {
    match tokio::time::timeout(CALL_TIMEOUT, f).await {
        Ok(r) => r.map_err(classify),
        Err(_) => Err(SendError::Temporary(format!("no answer within {CALL_TIMEOUT:?}"))),
    }
}

/// A Slack message: the fallback `text` (a short summary when there are blocks: at most
/// `limits::SUMMARY` characters; never over `limits::TEXT_MAX`) and Block Kit blocks (JSON, each
/// within Block Kit's limits, at most 50). `render` builds them within Slack's limits, and every Web
/// API post or update passes through `limits::fit` again (see `slack/limits.rs`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MessageBody {
    pub text: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocks: Vec<serde_json::Value>,
}

impl MessageBody {
    /// The message as slack-morphism sends it, within Slack's limits (`limits::fit`); a message
    /// stored before the limits were enforced is fitted here. Errors: blocks that are not Block Kit.
    fn content(&self) -> Result<SlackMessageContent, SendError> {
        let fitted = super::limits::fit(self.clone());
        let blocks: Vec<SlackBlock> = fitted
            .blocks
            .iter()
            .map(|b| serde_json::from_value(b.clone()))
            .collect::<Result<_, _>>()
            .map_err(|e| SendError::Permanent(format!("bad blocks: {e}")))?;
        let mut content = SlackMessageContent::new().with_text(fitted.text);
        if !blocks.is_empty() {
            content = content.with_blocks(blocks);
        }
        Ok(content)
    }
}

type Connector = HttpsConnector<HttpConnector>;

/// What `auth.test` says about the bot's token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthInfo {
    pub team_id: String,
    pub enterprise_id: Option<String>,
}

/// The bot's Slack Web API client.
pub struct SlackApi {
    client: SlackClient<SlackClientHyperConnector<Connector>>,
    token: SlackApiToken,
    /// The Web API base URL, without a trailing slash.
    api_url: String,
    /// For response_url posts (they are not Web API methods).
    http: HyperClient<Connector, Full<Bytes>>,
}

impl std::fmt::Debug for SlackApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackApi").finish_non_exhaustive()
    }
}

/// An HTTPS connector (ring, the system's roots) that also speaks plain HTTP, for local fakes.
fn connector() -> std::io::Result<Connector> {
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(rustls::crypto::ring::default_provider())?
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .build())
}

impl SlackApi {
    /// A client for the Web API at `api_url` (no trailing slash) authenticated with `bot_token`.
    pub fn new(api_url: &str, bot_token: &Secret) -> std::io::Result<SlackApi> {
        let slack = SlackClientHyperConnector::from(connector()?).with_slack_api_url(api_url.trim_end_matches('/'));
        let http = HyperClient::builder(hyper_util::rt::TokioExecutor::new()).build(connector()?);
        Ok(SlackApi {
            client: SlackClient::new(slack),
            api_url: api_url.trim_end_matches('/').to_owned(),
            token: SlackApiToken::new(SlackApiTokenValue::new(bot_token.expose().to_owned())),
            http,
        })
    }

    /// chat.postMessage; returns the message's `ts`.
    pub async fn post(
        &self,
        channel: &ChannelId,
        body: &MessageBody,
        thread_ts: Option<&str>,
        broadcast: bool,
    ) -> Result<String, SendError> {
        let mut req = SlackApiChatPostMessageRequest::new(channel.as_str().into(), body.content()?);
        if let Some(ts) = thread_ts {
            req = req.with_thread_ts(ts.into());
            if broadcast {
                req = req.with_reply_broadcast(true);
            }
        }
        let session = self.client.open_session(&self.token);
        let resp = bounded(session.chat_post_message(&req)).await?;
        Ok(resp.ts.to_string())
    }

    /// chat.update of the message `ts`.
    pub async fn update(&self, channel: &ChannelId, ts: &str, body: &MessageBody) -> Result<(), SendError> {
        let req = SlackApiChatUpdateRequest::new(channel.as_str().into(), body.content()?, ts.into());
        let session = self.client.open_session(&self.token);
        bounded(session.chat_update(&req)).await.map(|_| ())
    }

    /// auth.test: the workspace (`team_id`) the bot token belongs to, and its Enterprise Grid
    /// organisation (`enterprise_id`), if any. (Called directly: slack-morphism's response type has no
    /// `enterprise_id`.)
    pub async fn auth_test(&self) -> Result<AuthInfo, SendError> {
        let req = hyper::Request::post(format!("{}/auth.test", self.api_url))
            .header("authorization", format!("Bearer {}", self.token.token_value.0))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::new()))
            .map_err(|_| {
                SendError::Auth(
                    "the bot token cannot be sent in an HTTP header (it holds an invalid character); check slack.bot_token"
                        .to_owned(),
                )
            })?;
        let resp = match tokio::time::timeout(CALL_TIMEOUT, self.http.request(req)).await {
            Err(_) => return Err(SendError::Temporary(format!("no answer within {CALL_TIMEOUT:?}"))),
            Ok(Err(e)) => return Err(SendError::Temporary(format!("connection problem: {e}"))),
            Ok(Ok(r)) => r,
        };
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        if status.as_u16() == 429 {
            return Err(SendError::RateLimited(Duration::from_secs(1)));
        }
        if status.is_server_error() {
            return Err(SendError::Temporary(format!("HTTP {status}")));
        }
        let json: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| SendError::Unreadable(format!("auth.test: {e}")))?;
        if json.get("ok").and_then(serde_json::Value::as_bool) != Some(true) {
            let code = json.get("error").and_then(|e| e.as_str()).unwrap_or("unknown_error");
            return Err(if AUTH_CODES.contains(&code) {
                SendError::Auth(config_problem(code, std::str::from_utf8(&body).ok()))
            } else if TEMPORARY_CODES.contains(&code) {
                SendError::Temporary(code.to_owned())
            } else {
                SendError::Permanent(refusal(code))
            });
        }
        let field = |k: &str| {
            json.get(k)
                .and_then(|v| v.as_str())
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        Ok(AuthInfo {
            team_id: field("team_id").ok_or_else(|| SendError::Unreadable("auth.test gave no team_id".into()))?,
            enterprise_id: field("enterprise_id"),
        })
    }

    /// usergroups.users.list.
    pub async fn group_members(&self, group: &UserGroupId) -> Result<Vec<SlackUserId>, SendError> {
        let req = SlackApiUserGroupsUsersListRequest::new(group.as_str().into());
        let session = self.client.open_session(&self.token);
        let resp = bounded(session.usergroups_users_list(&req)).await?;
        Ok(resp
            .users
            .into_iter()
            .filter_map(|u| SlackUserId::parse(&u.0))
            .collect())
    }

    /// POSTs a JSON message to a response_url (valid 30 minutes, at most 5 times).
    pub async fn respond(&self, response_url: &str, json: &serde_json::Value) -> Result<(), SendError> {
        let req = hyper::Request::post(response_url)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(json.to_string())))
            .map_err(|e| SendError::Permanent(format!("bad response_url: {e}")))?;
        let resp = match tokio::time::timeout(CALL_TIMEOUT, self.http.request(req)).await {
            Err(_) => {
                return Err(SendError::Temporary(format!("no answer within {CALL_TIMEOUT:?}")));
            }
            Ok(Err(e)) => return Err(SendError::Temporary(format!("connection problem: {e}"))),
            Ok(Ok(r)) => r,
        };
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        match status.as_u16() {
            200..=299 => Ok(()),
            429 => Err(SendError::RateLimited(retry_after.unwrap_or(Duration::from_secs(1)))),
            500..=599 => Err(SendError::Temporary(format!("HTTP {status}"))),
            _ => Err(SendError::Permanent(format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&body).chars().take(200).collect::<String>()
            ))),
        }
    }
}
