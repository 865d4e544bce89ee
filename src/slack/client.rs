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

/// Every Slack Web API method this client calls, with the bot token scopes it needs (any one of a
/// method's scopes is enough when it lists several: `channels:history` for a public channel,
/// `groups:history` for a private one). `manifest.yml` must list exactly these scopes plus `commands`
/// (a unit test compares them), and readiness checks rely on this table. Scopes per Slack's method
/// reference (https://api.slack.com/methods).
pub const METHOD_SCOPES: &[(&str, &[&str])] = &[
    // The approval request and its thread; a DM when an answer has no other way.
    ("chat.postMessage", &["chat:write"]),
    ("chat.update", &["chat:write"]),
    // An answer the response_url can no longer carry (expired, or used 5 times).
    ("chat.postEphemeral", &["chat:write"]),
    // Reading back whether a message whose post was not recorded is already there.
    ("conversations.history", &["channels:history", "groups:history"]),
    ("conversations.replies", &["channels:history", "groups:history"]),
    // Opening the DM for an answer that neither the response_url nor an ephemeral message can carry.
    ("conversations.open", &["im:write"]),
    ("usergroups.users.list", &["usergroups:read"]),
    // Need no scope.
    ("auth.test", &[]),
    // The deny-reason modal of `/aurora pending` (https://api.slack.com/methods/views.open).
    ("views.open", &[]),
];

/// Scopes the app needs that no Web API method call does: the slash command itself.
pub const OTHER_SCOPES: &[&str] = &["commands"];

/// The event type of the metadata every channel message the bot posts carries
/// (https://api.slack.com/metadata): its payload's `key` is the outbox item's key.
pub const METADATA_EVENT_TYPE: &str = "aurora_failover_bot_message";

/// How many pages of history (or of a thread) a read-back looks through, and their size.
const READ_BACK_PAGES: usize = 5;
const READ_BACK_PAGE_SIZE: usize = 200;

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

impl SendError {
    /// The failure's label in the metrics (`slack_deliveries_total{outcome}`).
    pub fn label(&self) -> &'static str {
        match self {
            SendError::RateLimited(_) => "rate_limited",
            SendError::Temporary(_) => "temporary",
            SendError::Auth(_) => "token_refused",
            SendError::Unreadable(_) => "unreadable",
            SendError::Permanent(_) => "refused",
        }
    }
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

/// Slack's `Retry-After` (seconds) on a 429, if it sent one.
fn retry_after(headers: &hyper::HeaderMap) -> Option<Duration> {
    headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
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

pub(crate) type Connector = HttpsConnector<HttpConnector>;

fn api_token(bot_token: &Secret) -> SlackApiToken {
    SlackApiToken::new(SlackApiTokenValue::new(bot_token.expose().to_owned()))
}

/// How a direct Web API call carries its arguments.
enum Call {
    /// GET with this query string.
    Query(String),
    /// POST, form-encoded.
    Form(String),
    /// POST, JSON.
    Json(serde_json::Value),
}

/// The `ts` of the message in a conversations.history/replies answer whose metadata is the bot's
/// with payload key `key`.
fn find_key(page: &serde_json::Value, key: &str) -> Option<String> {
    page.get("messages")?.as_array()?.iter().find_map(|m| {
        let meta = m.get("metadata")?;
        let ours = meta.get("event_type")?.as_str()? == METADATA_EVENT_TYPE
            && meta.pointer("/event_payload/key")?.as_str()? == key;
        ours.then(|| m.get("ts")?.as_str().map(str::to_owned)).flatten()
    })
}

/// What `auth.test` says about the bot's token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthInfo {
    pub team_id: String,
    pub enterprise_id: Option<String>,
    /// The scopes the token has, from Slack's `x-oauth-scopes` header (`None` when Slack sent none).
    pub scopes: Option<Vec<String>>,
}

impl AuthInfo {
    /// The scopes the bot needs (`METHOD_SCOPES`, `OTHER_SCOPES`) that the token lacks, in order;
    /// empty when every one is granted or the granted scopes are not known.
    pub fn missing_scopes(&self) -> Vec<&'static str> {
        let Some(granted) = &self.scopes else {
            return vec![];
        };
        let mut needed: Vec<&'static str> = METHOD_SCOPES
            .iter()
            .flat_map(|(_, scopes)| scopes.iter().copied())
            .chain(OTHER_SCOPES.iter().copied())
            .collect();
        needed.sort_unstable();
        needed.dedup();
        needed.retain(|s| !granted.iter().any(|g| g == s));
        needed
    }
}

/// The bot's Slack Web API client.
pub struct SlackApi {
    client: SlackClient<SlackClientHyperConnector<Connector>>,
    /// Behind a lock so that a rotated bot token replaces it ([`SlackApi::set_token`]) while calls are
    /// made; each call clones it first, so the lock is never held across an await.
    token: std::sync::RwLock<SlackApiToken>,
    /// Where a refused token is reported (and cleared by the next accepted call), if anywhere.
    health: Option<std::sync::Arc<crate::health::Health>>,
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
pub(crate) fn connector() -> std::io::Result<Connector> {
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
            token: std::sync::RwLock::new(api_token(bot_token)),
            health: None,
            http,
        })
    }

    /// Reports every call Slack refuses for the token (`invalid_auth`, `token_revoked`, ...; not a
    /// missing scope, which is about one method) to `health` under [`crate::health::SLACK_TOKEN`],
    /// and clears it when Slack accepts a call.
    pub fn with_health(mut self, health: std::sync::Arc<crate::health::Health>) -> SlackApi {
        self.health = Some(health);
        self
    }

    /// Replaces the bot token for every later call (a rotated token; calls in flight finish with the
    /// old one).
    pub fn set_token(&self, bot_token: &Secret) {
        *self.token.write().unwrap_or_else(|p| p.into_inner()) = api_token(bot_token);
    }

    /// The token for one call.
    fn token(&self) -> SlackApiToken {
        self.token.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Notes what a Web API call's outcome says about the token (see [`SlackApi::with_health`]).
    fn note<T>(&self, result: Result<T, SendError>) -> Result<T, SendError> {
        if let Some(health) = &self.health {
            match &result {
                Ok(_) => {
                    if health.clear(crate::health::SLACK_TOKEN) {
                        tracing::info!("Slack accepts the bot token again");
                    }
                }
                Err(SendError::Auth(problem)) if !problem.starts_with("missing_scope") => {
                    if health.report(crate::health::SLACK_TOKEN, problem.clone()) {
                        tracing::error!(%problem, "Slack refuses the bot token");
                    }
                }
                Err(_) => {}
            }
        }
        result
    }

    /// chat.postMessage; returns the message's `ts`. `key` (the outbox item's key), when given, goes in
    /// the message's metadata (event type [`METADATA_EVENT_TYPE`], payload `{"key": key}`) so that
    /// [`SlackApi::find_posted`] can find the message later.
    pub async fn post(
        &self,
        channel: &ChannelId,
        body: &MessageBody,
        thread_ts: Option<&str>,
        broadcast: bool,
        key: Option<&str>,
    ) -> Result<String, SendError> {
        let mut content = body.content()?;
        if let Some(key) = key {
            content.metadata = Some(SlackMessageMetadata {
                event_type: METADATA_EVENT_TYPE.to_owned(),
                event_payload: Some([("key".to_owned(), key.to_owned())].into_iter().collect()),
            });
        }
        let mut req = SlackApiChatPostMessageRequest::new(channel.as_str().into(), content);
        if let Some(ts) = thread_ts {
            req = req.with_thread_ts(ts.into());
            if broadcast {
                req = req.with_reply_broadcast(true);
            }
        }
        let token = self.token();
        let session = self.client.open_session(&token);
        let resp = self.note(bounded(session.chat_post_message(&req)).await)?;
        Ok(resp.ts.to_string())
    }

    /// chat.update of the message `ts`.
    pub async fn update(&self, channel: &ChannelId, ts: &str, body: &MessageBody) -> Result<(), SendError> {
        let req = SlackApiChatUpdateRequest::new(channel.as_str().into(), body.content()?, ts.into());
        let token = self.token();
        let session = self.client.open_session(&token);
        self.note(bounded(session.chat_update(&req)).await).map(|_| ())
    }

    /// auth.test: the workspace (`team_id`) the bot token belongs to, and its Enterprise Grid
    /// organisation (`enterprise_id`), if any. (Called directly: slack-morphism's response type has no
    /// `enterprise_id`.)
    pub async fn auth_test(&self) -> Result<AuthInfo, SendError> {
        let (json, scopes) = self.call_full("auth.test", Call::Form(String::new())).await?;
        let field = |k: &str| {
            json.get(k)
                .and_then(|v| v.as_str())
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        Ok(AuthInfo {
            team_id: field("team_id").ok_or_else(|| SendError::Unreadable("auth.test gave no team_id".into()))?,
            enterprise_id: field("enterprise_id"),
            scopes: scopes.map(|s| {
                s.split(',')
                    .map(|x| x.trim().to_owned())
                    .filter(|x| !x.is_empty())
                    .collect()
            }),
        })
    }

    /// Calls Web API `method` directly (not through slack-morphism), with the bot token; returns
    /// Slack's answer when `ok` is true, the error classified otherwise.
    async fn call(&self, method: &str, call: Call) -> Result<serde_json::Value, SendError> {
        self.call_full(method, call).await.map(|(json, _)| json)
    }

    /// [`SlackApi::call`], also returning Slack's `x-oauth-scopes` header (the token's scopes), if sent.
    async fn call_full(&self, method: &str, call: Call) -> Result<(serde_json::Value, Option<String>), SendError> {
        let result = self.call_once(method, call).await;
        self.note(result)
    }

    /// One direct call (see [`SlackApi::call_full`]), its outcome not yet noted.
    async fn call_once(&self, method: &str, call: Call) -> Result<(serde_json::Value, Option<String>), SendError> {
        let url = format!("{}/{method}", self.api_url);
        let builder = match &call {
            Call::Query(q) => hyper::Request::get(format!("{url}?{q}")),
            Call::Form(_) => hyper::Request::post(url).header("content-type", "application/x-www-form-urlencoded"),
            Call::Json(_) => hyper::Request::post(url).header("content-type", "application/json; charset=utf-8"),
        };
        let body = match call {
            Call::Query(_) => Bytes::new(),
            Call::Form(f) => Bytes::from(f),
            Call::Json(j) => Bytes::from(j.to_string()),
        };
        let req = builder
            .header("authorization", format!("Bearer {}", self.token().token_value.0))
            .body(Full::new(body))
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
        let scopes = resp
            .headers()
            .get("x-oauth-scopes")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let retry_after = retry_after(resp.headers());
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        if status.as_u16() == 429 {
            return Err(SendError::RateLimited(retry_after.unwrap_or(Duration::from_secs(1))));
        }
        if status.is_server_error() {
            return Err(SendError::Temporary(format!("HTTP {status}")));
        }
        let json: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| SendError::Unreadable(format!("{method}: {e}")))?;
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
        Ok((json, scopes))
    }

    /// Looks for the message the bot posted with metadata key `key` (see [`SlackApi::post`]) in
    /// `channel` since `oldest`: among the thread's replies (conversations.replies) when `thread_ts` is
    /// given, else in the channel's history (conversations.history), both with
    /// `include_all_metadata=true`, at most [`READ_BACK_PAGES`] pages of [`READ_BACK_PAGE_SIZE`].
    /// Returns its `ts` if found. (Called directly: slack-morphism 2.31's conversations.replies has no
    /// `include_all_metadata`, and it types metadata payloads as string maps.)
    pub async fn find_posted(
        &self,
        channel: &ChannelId,
        thread_ts: Option<&str>,
        oldest: jiff::Timestamp,
        key: &str,
    ) -> Result<Option<String>, SendError> {
        let oldest = format!("{}.{:06}", oldest.as_second(), oldest.subsec_microsecond().max(0));
        let mut cursor: Option<String> = None;
        for _ in 0..READ_BACK_PAGES {
            let mut q = vec![
                ("channel", channel.as_str().to_owned()),
                ("oldest", oldest.clone()),
                ("include_all_metadata", "true".to_owned()),
                ("limit", READ_BACK_PAGE_SIZE.to_string()),
            ];
            if let Some(ts) = thread_ts {
                q.push(("ts", ts.to_owned()));
            }
            if let Some(c) = cursor.take() {
                q.push(("cursor", c));
            }
            let query = serde_urlencoded::to_string(&q).map_err(|e| SendError::Permanent(e.to_string()))?;
            let method = if thread_ts.is_some() {
                "conversations.replies"
            } else {
                "conversations.history"
            };
            let page = self.call(method, Call::Query(query)).await?;
            if let Some(ts) = find_key(&page, key) {
                return Ok(Some(ts));
            }
            cursor = page
                .pointer("/response_metadata/next_cursor")
                .and_then(|c| c.as_str())
                .filter(|c| !c.is_empty())
                .map(str::to_owned);
            if cursor.is_none() {
                break;
            }
        }
        Ok(None)
    }

    /// chat.postEphemeral: `body` shown to `user` only, in `channel` (they must be a member).
    pub async fn post_ephemeral(&self, channel: &str, user: &str, body: &MessageBody) -> Result<(), SendError> {
        let body = super::limits::fit(body.clone());
        let json = serde_json::json!({"channel": channel, "user": user, "text": body.text, "blocks": body.blocks});
        self.call("chat.postEphemeral", Call::Json(json)).await.map(|_| ())
    }

    /// conversations.open with `user`, then chat.postMessage of `body` there: a direct message.
    pub async fn direct_message(&self, user: &str, body: &MessageBody) -> Result<(), SendError> {
        let opened = self
            .call("conversations.open", Call::Json(serde_json::json!({"users": user})))
            .await?;
        let channel = opened
            .pointer("/channel/id")
            .and_then(|c| c.as_str())
            .ok_or_else(|| SendError::Unreadable("conversations.open gave no channel id".into()))?;
        let body = super::limits::fit(body.clone());
        let json = serde_json::json!({"channel": channel, "text": body.text, "blocks": body.blocks});
        self.call("chat.postMessage", Call::Json(json)).await.map(|_| ())
    }

    /// views.open (https://api.slack.com/methods/views.open): shows `view` (a modal, from `render`) to
    /// the person whose interaction carried `trigger_id` (valid 3 seconds, usable once). Returns the
    /// view's id.
    ///
    /// # Errors
    /// Slack's refusal (`expired_trigger_id`, `exchanged_trigger_id`, `invalid_trigger_id`, ...) or
    /// a transport failure, as a `SendError`.
    pub async fn open_view(&self, trigger_id: &str, view: &serde_json::Value) -> Result<String, SendError> {
        let json = serde_json::json!({"trigger_id": trigger_id, "view": view});
        let opened = self.call("views.open", Call::Json(json)).await?;
        Ok(opened
            .pointer("/view/id")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned())
    }

    /// usergroups.users.list.
    pub async fn group_members(&self, group: &UserGroupId) -> Result<Vec<SlackUserId>, SendError> {
        let req = SlackApiUserGroupsUsersListRequest::new(group.as_str().into());
        let token = self.token();
        let session = self.client.open_session(&token);
        let resp = self.note(bounded(session.usergroups_users_list(&req)).await)?;
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
        let retry_after = retry_after(resp.headers());
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The bot scopes `manifest.yml` lists (under `oauth_config: scopes: bot:`).
    fn manifest_bot_scopes() -> std::collections::BTreeSet<String> {
        let manifest = include_str!("../../manifest.yml");
        let mut lines = manifest.lines().skip_while(|l| l.trim() != "bot:").skip(1);
        let mut scopes = std::collections::BTreeSet::new();
        for line in lines.by_ref() {
            let t = line.trim();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            match t.strip_prefix("- ") {
                Some(scope) => scopes.insert(scope.trim().to_owned()),
                None => break,
            };
        }
        scopes
    }

    #[test]
    fn the_manifest_lists_every_scope_the_bot_calls_and_no_other() {
        let needed: std::collections::BTreeSet<String> = METHOD_SCOPES
            .iter()
            .flat_map(|(_, scopes)| scopes.iter())
            .chain(OTHER_SCOPES)
            .map(|s| (*s).to_owned())
            .collect();
        assert_eq!(manifest_bot_scopes(), needed);
    }

    #[test]
    fn a_read_back_finds_only_the_bots_own_key() {
        let page = serde_json::json!({"ok": true, "messages": [
            {"ts": "1.000001", "text": "someone else"},
            {"ts": "1.000002", "metadata": {"event_type": "other_app", "event_payload": {"key": "s:7"}}},
            {"ts": "1.000003", "metadata": {"event_type": METADATA_EVENT_TYPE, "event_payload": {"key": "s:70"}}},
            {"ts": "1.000004", "metadata": {"event_type": METADATA_EVENT_TYPE, "event_payload": {"key": "s:7"}}},
        ]});
        assert_eq!(find_key(&page, "s:7").as_deref(), Some("1.000004"));
        assert_eq!(find_key(&page, "s:8"), None);
    }
}
