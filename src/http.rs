//! The HTTP routes Slack calls: `POST /slack/commands`, `POST /slack/interactions`, and `GET /healthz`,
//! `/readyz` and `/metrics` (Prometheus; requests on the Slack routes are counted and timed here).
//!
//! HTTP concerns only. Every request to the two Slack routes is size-checked and signature-checked on
//! its raw bytes before anything else runs, then checked against the bot's workspace and app, then
//! against replays: a request that fails gets 413, 401 or a short answer and causes nothing. Only then
//! is it parsed (`command`) and handed to its handler in `crate::commands`, which answers well within
//! Slack's 3 seconds (slow work, AWS reads and Slack posts, runs in tasks).

use crate::commands::{self, SlackState, ephemeral};
use crate::slack::command::{self, Click};
use crate::slack::render;
use crate::slack::verify::{SIGNATURE_HEADER, TIMESTAMP_HEADER, VerifyError};
use crate::slack::workspace::{Claimed, Foreign};
use crate::types::{ChannelId, SlackUserId};
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use slack_morphism::prelude::{SlackCommandEvent, SlackInteractionEvent};
use std::sync::Arc;
use tracing::{info, warn};

/// Largest body accepted on the Slack routes. Slack's commands are a few hundred bytes; a click
/// carries the message it was on, a few kilobytes.
pub const BODY_LIMIT: usize = 128 * 1024;

/// How long a body may take to arrive (Slack sends a few kilobytes at once; a trickle is not Slack).
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The routes; the two Slack routes only when `slack_routes` (HTTP mode: in Socket Mode they answer
/// 404, since Slack sends nothing there).
pub fn router(state: Arc<SlackState>, slack_routes: bool) -> Router {
    let routes = match slack_routes {
        true => Router::new()
            .route("/slack/commands", post(commands))
            .route("/slack/interactions", post(interactions)),
        false => Router::new(),
    };
    routes
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(axum::middleware::from_fn_with_state(state.clone(), observed))
        .layer(axum::middleware::from_fn(with_request_id))
        .with_state(state)
}

/// Runs a request in a `request` span with a fresh `request_id` (16 hex digits): every line logged
/// while it is answered carries it.
async fn with_request_id(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let span = tracing::info_span!("request", request_id = %format!("{:016x}", fastrand::u64(..)));
    tracing::Instrument::instrument(next.run(request), span).await
}

/// What became of a Slack request, when its status alone does not say (a metric label).
#[derive(Clone, Copy)]
struct Outcome(&'static str);

/// `resp`, marked with `outcome` for the metrics.
fn marked(mut resp: Response, outcome: &'static str) -> Response {
    resp.extensions_mut().insert(Outcome(outcome));
    resp
}

/// Counts each request on the two Slack routes by outcome (marked by the handler, or read from the
/// status) and its time to the response (Slack's 3-second limit). Other routes pass through.
async fn observed(
    State(state): State<Arc<SlackState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let route = match request.uri().path() {
        "/slack/commands" => "commands",
        "/slack/interactions" => "interactions",
        _ => return next.run(request).await,
    };
    let arrived = std::time::Instant::now();
    let resp = next.run(request).await;
    state
        .approvals
        .telemetry()
        .slack_request(route, outcome_of(&resp), arrived.elapsed());
    resp
}

/// A Slack request's outcome label: marked by the handler, or read from the status.
fn outcome_of(resp: &Response) -> &'static str {
    resp.extensions().get::<Outcome>().map_or_else(
        || match resp.status() {
            s if s.is_success() => "ok",
            StatusCode::UNAUTHORIZED => "bad_signature",
            StatusCode::PAYLOAD_TOO_LARGE => "too_large",
            StatusCode::REQUEST_TIMEOUT => "timeout",
            StatusCode::BAD_REQUEST => "bad_request",
            StatusCode::METHOD_NOT_ALLOWED => "bad_method",
            _ => "error",
        },
        |o| o.0,
    )
}

/// `GET /metrics`: the Prometheus text format (see `crate::telemetry`), the outbox depth and the
/// store's commit counts read from the store first. No authentication: serve it only where the
/// scraper can reach it, never publicly.
async fn metrics(State(state): State<Arc<SlackState>>) -> Response {
    let telemetry = state.approvals.telemetry();
    match state.approvals.store.outbox_depth().await {
        Ok(depth) => telemetry.set_outbox_depth(depth),
        Err(e) => warn!(error = %e, "cannot read the outbox depth for the metrics"),
    }
    if let Some(counts) = state.approvals.store.commit_counts() {
        telemetry.set_store_counts(counts);
    }
    let content_type = [(axum::http::header::CONTENT_TYPE, crate::telemetry::CONTENT_TYPE)];
    (content_type, telemetry.encode()).into_response()
}

/// 200 `ready` when nothing keeps the bot from doing its job; otherwise 503 with one line per problem
/// (what is wrong and what to change).
///
/// Then which instance this is and who holds each lease (the outbox's, each cluster's run): a line per
/// lease, `lease SCOPE: held by NAME (token N, until TIME)`, or `free`.
async fn readyz(State(state): State<Arc<SlackState>>) -> Response {
    let problems = state.health.problems();
    let leases = lease_lines(&state.approvals.launcher.runner.leases).await;
    if problems.is_empty() {
        (StatusCode::OK, format!("ready\n{leases}")).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready\n{}\n{leases}", problems.join("\n")),
        )
            .into_response()
    }
}

/// This instance and every lease, one line each, for `/readyz`.
async fn lease_lines(leases: &crate::lease::Leaseholder) -> String {
    let me = &leases.instance;
    let mut out = format!("instance: {me}, lease owner id {}\n", me.id);
    match leases.store.leases().await {
        Ok(all) => {
            let now = leases.clock.now();
            for l in all {
                let who = if l.expires_at <= now {
                    format!("free (last held by {}, token {})", me.describe_owner(&l.owner), l.token)
                } else {
                    let mine = if l.owner == me.id { "this instance, " } else { "" };
                    format!(
                        "held by {mine}{} (token {}, until {:.0})",
                        me.describe_owner(&l.owner),
                        l.token,
                        l.expires_at
                    )
                };
                out.push_str(&format!("lease {}: {who}\n", l.scope));
            }
        }
        Err(e) => out.push_str(&format!("leases: cannot be read ({e})\n")),
    }
    out
}

/// Reads the body, refusing one over the limit before reading it and one that trickles in.
async fn read_body(headers: &HeaderMap, body: Body) -> Result<bytes::Bytes, Response> {
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > BODY_LIMIT) {
        warn!(declared, "refused an oversized request");
        return Err(StatusCode::PAYLOAD_TOO_LARGE.into_response());
    }
    match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, BODY_LIMIT)).await {
        Ok(Ok(b)) => Ok(b),
        Ok(Err(_)) => {
            warn!("refused an oversized request");
            Err(StatusCode::PAYLOAD_TOO_LARGE.into_response())
        }
        Err(_) => {
            warn!("refused a request whose body did not arrive in time");
            Err(StatusCode::REQUEST_TIMEOUT.into_response())
        }
    }
}

/// Whether a body is exactly Slack's certificate check of a slash command URL (`ssl_check=1` and its
/// `token`, nothing else). Slack sends it unsigned and wants a 200 with an empty body.
fn is_ssl_check(body: &[u8]) -> bool {
    let mut ssl_check = false;
    for (k, v) in form_urlencoded::parse(body) {
        match k.as_ref() {
            "ssl_check" if v == "1" && !ssl_check => ssl_check = true,
            "token" => {}
            _ => return false,
        }
    }
    ssl_check
}

/// Verifies a body's signature (HTTP only: a Socket Mode envelope comes over the connection the app
/// token opened). `Some` is the whole answer (401) to give instead of acting on the request.
fn verify_signature(state: &SlackState, headers: &HeaderMap, bytes: &[u8]) -> Option<Response> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let e = state
        .verifier
        .verify(
            header(TIMESTAMP_HEADER),
            header(SIGNATURE_HEADER),
            bytes,
            state.clock.now().as_second(),
        )
        .err()?;
    warn!(reason = %e, "refused an unverified request");
    let outcome = if matches!(e, VerifyError::Stale) {
        "stale"
    } else {
        "bad_signature"
    };
    Some(marked(
        (StatusCode::UNAUTHORIZED, "request verification failed").into_response(),
        outcome,
    ))
}

/// The replay key of a signed HTTP request: its signature (the same MAC written in another case is
/// the same request).
fn signature_key(headers: &HeaderMap) -> String {
    headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// Whichever transport carried it: checks that an authenticated request comes from the bot's own
/// workspace and app (`claimed`), and turns away one already handled (same `replay_key`: the
/// signature over HTTP, `envelope:{envelope_id}` over Socket Mode) with `replayed`'s answer, so that
/// the same command or click delivered twice has the effect of one. `Some` is the whole answer to
/// give instead of acting on the request.
async fn admit(
    state: &SlackState,
    claimed: &Claimed,
    replay_key: &str,
    foreign: fn(&Foreign) -> Response,
    replayed: fn() -> Response,
) -> Option<Response> {
    if let Err(why) = state.binding.check(claimed) {
        warn!(reason = %why, team = ?claimed.team_id, app = ?claimed.app_id, enterprise = ?claimed.enterprise_id,
              "refused a signed request from outside the bot's workspace or app; nothing was done");
        return Some(marked(foreign(&why), "foreign_workspace"));
    }
    let now = state.clock.now();
    match state.approvals.store.first_sighting(replay_key, now).await {
        Ok(true) => None,
        Ok(false) => {
            info!("a replayed request was received; it was handled the first time");
            Some(marked(replayed(), "replay"))
        }
        Err(e) => {
            // Better to risk a duplicate (every state change is a compare-and-set) than to drop a
            // command during an incident.
            warn!(error = %e, "cannot record a request signature");
            None
        }
    }
}

fn foreign_command(why: &Foreign) -> Response {
    ephemeral(render::foreign_command(why))
}

fn foreign_click(_: &Foreign) -> Response {
    StatusCode::OK.into_response()
}

fn replayed_command() -> Response {
    ephemeral(render::replayed_command())
}

fn replayed_click() -> Response {
    StatusCode::OK.into_response()
}

async fn commands(State(state): State<Arc<SlackState>>, headers: HeaderMap, body: Body) -> Response {
    let bytes = match read_body(&headers, body).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    if is_ssl_check(&bytes) {
        return marked(StatusCode::OK.into_response(), "ssl_check");
    }
    if let Some(resp) = verify_signature(&state, &headers, &bytes) {
        return resp;
    }
    let claimed = crate::slack::workspace::command_claims(&bytes);
    let event = serde_urlencoded::from_bytes(&bytes).map_err(|e| e.to_string());
    command_received(&state, &claimed, &signature_key(&headers), event).await
}

/// A slash command, authenticated by its transport (`event`: its fields, or why they cannot be
/// read): admitted (`admit`), parsed and handed to its handler; the answer is the HTTP body or the
/// Socket Mode ack's payload.
async fn command_received(
    state: &Arc<SlackState>,
    claimed: &Claimed,
    replay_key: &str,
    event: Result<SlackCommandEvent, String>,
) -> Response {
    if let Some(resp) = admit(state, claimed, replay_key, foreign_command, replayed_command).await {
        return resp;
    }
    let event = match event {
        Ok(e) => e,
        Err(e) => {
            warn!(error = %e, "a signed command could not be parsed");
            return (StatusCode::BAD_REQUEST, "malformed slash command").into_response();
        }
    };
    let Some(user) = SlackUserId::parse(&event.user_id.0) else {
        return ephemeral(render::user_not_recognised());
    };
    let text = command::unescape(event.text.as_deref().unwrap_or_default());
    let text = text.as_ref();
    // Typed text is logged quoted (line breaks escaped) and cut short: it cannot forge log lines.
    let logged: String = text.chars().take(200).collect();
    info!(user = %user, command = ?event.command.0, text = ?logged, "command");
    let parsed = command::parse(text, &state.settings);
    if queues_answers(&parsed) {
        state
            .chat
            .remember_response_url(event.response_url.0.as_str(), user.as_str(), &event.channel_id.0)
            .await;
    }
    let from = commands::Invocation {
        user: &user,
        channel: &event.channel_id.0,
        response_url: event.response_url.0.as_str(),
        team_domain: event.team_domain.as_deref(),
    };
    commands::command(state, from, parsed).await
}

/// Whether a command may queue answers to its response_url in the outbox, which then needs to know
/// whom and where the url answers (its fallbacks past Slack's limits). Help, usage errors and
/// history answer at once; a status answer is posted directly (`commands::status`): none of them
/// costs a write.
fn queues_answers(parsed: &Result<command::Command<'_>, command::Rejected>) -> bool {
    use command::{Command, Rejected};
    !matches!(
        parsed,
        Ok(Command::Help | Command::Status { .. } | Command::History { .. } | Command::Pending)
            | Err(Rejected::Usage(_))
    )
}

#[derive(serde::Deserialize)]
struct InteractionForm {
    payload: String,
}

async fn interactions(State(state): State<Arc<SlackState>>, headers: HeaderMap, body: Body) -> Response {
    let bytes = match read_body(&headers, body).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    if let Some(resp) = verify_signature(&state, &headers, &bytes) {
        return resp;
    }
    let form = serde_urlencoded::from_bytes::<InteractionForm>(&bytes).map_err(|e| e.to_string());
    let claimed = form
        .as_ref()
        .map(|f| crate::slack::workspace::payload_claims(&f.payload))
        .unwrap_or_default();
    let payload = form.and_then(|f| serde_json::from_str(&f.payload).map_err(|e| e.to_string()));
    interaction_received(&state, &claimed, &signature_key(&headers), payload).await
}

/// An interaction, authenticated by its transport (`payload`: its JSON, or why it cannot be read):
/// admitted (`admit`), then a click on one of the bot's buttons or a submission of one of its modals
/// handed to its handler. A click's answer is an empty 200 once admitted (Slack ignores its body); a
/// submission's is its handler's (a `response_action`, or empty to close the modal); 400 when
/// unreadable.
async fn interaction_received(
    state: &Arc<SlackState>,
    claimed: &Claimed,
    replay_key: &str,
    payload: Result<serde_json::Value, String>,
) -> Response {
    if let Some(resp) = admit(state, claimed, replay_key, foreign_click, replayed_click).await {
        return resp;
    }
    if let Ok(p) = &payload
        && p.get("type").and_then(|t| t.as_str()) == Some("view_submission")
    {
        return match submitted(p) {
            Some(s) => commands::submitted(state, s).await,
            None => StatusCode::OK.into_response(),
        };
    }
    match payload.and_then(clicked) {
        Ok(Some(clicked)) => {
            // The channel the clicked message is in (an ephemeral confirmation may be elsewhere than the
            // incident channel); without one, the incident channel, where the bot's buttons are.
            if let Some(url) = &clicked.response_url {
                let channel = clicked
                    .channel
                    .clone()
                    .unwrap_or_else(|| state.chat.channel.as_str().to_owned());
                state
                    .chat
                    .remember_response_url(url, clicked.user.as_str(), &channel)
                    .await;
            }
            commands::click(state, clicked).await
        }
        Ok(None) => StatusCode::OK.into_response(),
        Err(e) => {
            warn!(error = %e, "a signed interaction could not be parsed");
            (StatusCode::BAD_REQUEST, "malformed interaction").into_response()
        }
    }
}

/// The submission a verified `view_submission` carries: `None` (answered with an empty 200, which
/// closes the modal, and ignored) for a view the bot did not open, metadata it did not write, or no
/// user. Slack's payload: `user.id`, `view.callback_id`, `view.private_metadata`,
/// `view.state.values` (https://api.slack.com/reference/interaction-payloads/views).
fn submitted(payload: &serde_json::Value) -> Option<commands::Submitted> {
    let text = |pointer: &str| payload.pointer(pointer).and_then(|v| v.as_str());
    let user = text("/user/id").and_then(SlackUserId::parse);
    let callback_id = text("/view/callback_id").unwrap_or_default();
    let values = payload
        .pointer("/view/state/values")
        .unwrap_or(&serde_json::Value::Null);
    let submission =
        command::Submission::parse(callback_id, text("/view/private_metadata").unwrap_or_default(), values);
    match (user, submission) {
        (Some(user), Some(submission)) => Some(commands::Submitted { user, submission }),
        _ => {
            let shown: String = callback_id.chars().take(40).collect();
            info!(callback_id = ?shown, "a modal submission the bot cannot act on (a view it did not open, or metadata it did not write) was ignored");
            None
        }
    }
}

/// The click a verified interaction's body carries: `Ok(None)` for anything else (another kind of
/// interaction, no user or action, a button the bot did not issue), which is answered and ignored.
fn clicked(payload: serde_json::Value) -> Result<Option<commands::Clicked>, String> {
    let event: SlackInteractionEvent = serde_json::from_value(payload.clone()).map_err(|e| e.to_string())?;
    let SlackInteractionEvent::BlockActions(actions) = event else {
        return Ok(None);
    };
    let user = actions.user.as_ref().and_then(|u| SlackUserId::parse(&u.id.0));
    let (Some(action), Some(user)) = (actions.actions.as_ref().and_then(|a| a.first()), user) else {
        return Ok(None);
    };
    let action_id = action.action_id.0.as_str();
    let Some(click) = Click::parse(action_id, action.value.as_deref().unwrap_or_default()) else {
        let shown: String = action_id.chars().take(40).collect();
        info!(action_id = ?shown, "a click the bot cannot act on (a button it did not issue, or a malformed value) was ignored");
        return Ok(None);
    };
    Ok(Some(commands::Clicked {
        user,
        click,
        message_ts: payload
            .pointer("/container/message_ts")
            .and_then(|t| t.as_str())
            .map(str::to_owned),
        response_url: actions.response_url.as_ref().map(|u| u.0.to_string()),
        channel: payload
            .pointer("/channel/id")
            .or_else(|| payload.pointer("/container/channel_id"))
            .and_then(|c| c.as_str())
            .and_then(ChannelId::parse)
            .map(|c| c.as_str().to_owned()),
        trigger_id: payload
            .pointer("/trigger_id")
            .and_then(|t| t.as_str())
            .map(str::to_owned),
    }))
}

/// Socket Mode's way in (`slack::socket`): an envelope goes through exactly what an HTTP request goes
/// through after its signature check (`command_received`, `interaction_received`: workspace, replay
/// keyed on `envelope:{envelope_id}`, parse, handler), and the answer an HTTP request would get as its
/// body becomes the ack's payload. Counted in the metrics like the HTTP routes.
pub struct SocketInbound(pub Arc<SlackState>);

#[async_trait::async_trait]
impl crate::slack::socket::Envelopes for SocketInbound {
    async fn handle(&self, envelope: crate::slack::socket::Envelope) -> Option<serde_json::Value> {
        use crate::slack::socket::EnvelopeKind;
        let state = &self.0;
        let span = tracing::info_span!("envelope", request_id = %format!("{:016x}", fastrand::u64(..)), envelope_id = %envelope.id);
        let arrived = std::time::Instant::now();
        let key = format!("envelope:{}", envelope.id);
        let (route, resp) = match envelope.kind {
            EnvelopeKind::SlashCommand => {
                let claimed = crate::slack::workspace::command_claims_json(&envelope.payload);
                let event = serde_json::from_value(envelope.payload).map_err(|e| e.to_string());
                let handled = command_received(state, &claimed, &key, event);
                ("commands", tracing::Instrument::instrument(handled, span).await)
            }
            EnvelopeKind::Interactive => {
                let claimed = crate::slack::workspace::payload_claims(&envelope.payload.to_string());
                let handled = interaction_received(state, &claimed, &key, Ok(envelope.payload));
                ("interactions", tracing::Instrument::instrument(handled, span).await)
            }
            EnvelopeKind::Event => return None,
        };
        state
            .approvals
            .telemetry()
            .slack_request(route, outcome_of(&resp), arrived.elapsed());
        ack_payload(resp).await
    }
}

/// The JSON body of a successful answer (a slash command's message), as an ack's payload; `None` for
/// an empty body or a refusal (a bare ack: Slack would deliver again what a retry cannot fix).
async fn ack_payload(resp: Response) -> Option<serde_json::Value> {
    if !resp.status().is_success() {
        return None;
    }
    let body = axum::body::to_bytes(resp.into_body(), BODY_LIMIT).await.ok()?;
    serde_json::from_slice(&body).ok()
}
