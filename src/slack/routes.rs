//! The HTTP routes Slack calls: `POST /slack/commands`, `POST /slack/interactions`, and `GET /healthz`.
//!
//! Every request to the two Slack routes is size-checked and signature-checked on its raw bytes before
//! anything else runs: a request that fails gets 413 or 401 and causes nothing. Handlers then only
//! parse, authorise, record and answer; slow work (AWS reads, Slack posts) runs in tasks, so that every
//! valid command and click is answered well within Slack's 3 seconds.

use super::chat::SlackChat;
use super::command::{self, Command, USAGE};
use super::render;
use super::verify::{SIGNATURE_HEADER, TIMESTAMP_HEADER, Verifier};
use super::workspace::{Binding, Claimed, Foreign};
use crate::approval::{Approvals, Origin, RequestReply};
use crate::ports::{Aurora, Clock, Dns};
use crate::settings::Settings;
use crate::store::{Request, RequestId};
use crate::types::SlackUserId;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use slack_morphism::prelude::{SlackCommandEvent, SlackInteractionEvent};
use std::sync::Arc;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

/// Largest body accepted on the Slack routes. Slack's commands are a few hundred bytes; a click
/// carries the message it was on, a few kilobytes.
pub const BODY_LIMIT: usize = 128 * 1024;

/// How long a body may take to arrive (Slack sends a few kilobytes at once; a trickle is not Slack).
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// How many requests `/aurora history` shows.
const HISTORY_LENGTH: usize = 15;

/// What the Slack routes need.
pub struct SlackState {
    pub verifier: Verifier,
    /// The workspace and app whose requests are honoured.
    pub binding: Arc<Binding>,
    /// What keeps the bot from doing its job, for `/readyz`.
    pub health: Arc<crate::health::Health>,
    pub clock: Arc<dyn Clock>,
    pub settings: Arc<Settings>,
    pub approvals: Approvals,
    pub chat: Arc<SlackChat>,
    pub aurora: Arc<dyn Aurora>,
    pub metrics: Arc<dyn crate::ports::Metrics>,
    pub dns: Arc<dyn Dns>,
    /// `/aurora status` reads, shared and bounded.
    pub surveyor: Arc<crate::status::Surveyor>,
    /// Background work started by requests (status reads), so that shutdown can wait for it.
    pub tasks: TaskTracker,
}

pub fn router(state: Arc<SlackState>) -> Router {
    Router::new()
        .route("/slack/commands", post(commands))
        .route("/slack/interactions", post(interactions))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// 200 `ready` when nothing keeps the bot from doing its job; otherwise 503 with one line per problem
/// (what is wrong and what to change).
async fn readyz(State(state): State<Arc<SlackState>>) -> Response {
    let problems = state.health.problems();
    if problems.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready\n{}\n", problems.join("\n")),
        )
            .into_response()
    }
}

fn ephemeral(text: impl Into<String>) -> Response {
    axum::Json(json!({"response_type": "ephemeral", "text": text.into()})).into_response()
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

/// Verifies a body's signature, then that it comes from the bot's own workspace and app (`claims`
/// reads what it says about that), and turns away a replay of a request already handled (same
/// signature) with `replayed`'s answer, so that the same command or click delivered twice has the
/// effect of one. `Some` is the whole answer to give instead of acting on the request.
async fn verify(
    state: &SlackState,
    headers: &HeaderMap,
    bytes: &[u8],
    claims: fn(&[u8]) -> Claimed,
    foreign: fn(&Foreign) -> Response,
    replayed: fn() -> Response,
) -> Option<Response> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Err(e) = state.verifier.verify(
        header(TIMESTAMP_HEADER),
        header(SIGNATURE_HEADER),
        bytes,
        state.clock.now().as_second(),
    ) {
        warn!(reason = %e, "refused an unverified request");
        return Some((StatusCode::UNAUTHORIZED, "request verification failed").into_response());
    }
    let claimed = claims(bytes);
    if let Err(why) = state.binding.check(&claimed) {
        warn!(reason = %why, team = ?claimed.team_id, app = ?claimed.app_id, enterprise = ?claimed.enterprise_id,
              "refused a signed request from outside the bot's workspace or app; nothing was done");
        return Some(foreign(&why));
    }
    let now = state.clock.now();
    // The same MAC written in another case is the same request.
    let signature = header(SIGNATURE_HEADER).unwrap_or_default().to_ascii_lowercase();
    match state.approvals.store.first_sighting(&signature, now).await {
        Ok(true) => None,
        Ok(false) => {
            info!("a replayed request was received; it was handled the first time");
            Some(replayed())
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
    match why {
        Foreign::WorkspaceUnknown => ephemeral(
            "The bot cannot yet tell which Slack workspace it serves (it is starting, or Slack refuses its token: its /readyz says which); nothing was done. Try again in a minute.",
        ),
        _ => ephemeral("This bot does not serve this workspace or app; nothing was done."),
    }
}

fn foreign_click(_: &Foreign) -> Response {
    StatusCode::OK.into_response()
}

/// The history's rows, newest first, each with its run; a row that cannot be read is listed as such.
async fn history_entries(
    store: &dyn crate::store::Store,
    cluster: Option<&crate::types::ClusterName>,
) -> Result<Vec<render::HistoryEntry>, crate::store::StoreError> {
    let mut entries = Vec::new();
    for r in store.recent_requests(cluster, HISTORY_LENGTH).await? {
        entries.push(match r {
            Ok(r) => match store.run_of_request(r.id).await {
                Ok(run) => Ok((r, run)),
                Err(crate::store::StoreError::Decode(e)) => Err(e),
                Err(e) => return Err(e),
            },
            Err(e) => Err(e),
        });
    }
    Ok(entries)
}

/// Whether a click (its raw form body) was on request `id`'s approval message, as delivered.
async fn on_request_message(state: &SlackState, id: RequestId, bytes: &[u8]) -> bool {
    let clicked = serde_urlencoded::from_bytes::<InteractionForm>(bytes)
        .ok()
        .and_then(|f| serde_json::from_str::<serde_json::Value>(&f.payload).ok())
        .and_then(|p| {
            p.pointer("/container/message_ts")
                .and_then(|t| t.as_str())
                .map(str::to_owned)
        });
    let store = &state.approvals.store;
    let posted = match store.request(id).await {
        Ok(Some(Request { message: Some(m), .. })) => store.outbox_item(m).await.ok().flatten(),
        _ => None,
    }
    .and_then(|item| item.delivered_ts);
    matches!((clicked, posted), (Some(c), Some(p)) if c == p)
}

fn interaction_claims(bytes: &[u8]) -> Claimed {
    serde_urlencoded::from_bytes::<InteractionForm>(bytes)
        .map(|f| super::workspace::payload_claims(&f.payload))
        .unwrap_or_default()
}

fn replayed_command() -> Response {
    ephemeral("This exact request was already received (a retry or a replay); it was handled once.")
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
        return StatusCode::OK.into_response();
    }
    if let Some(resp) = verify(
        &state,
        &headers,
        &bytes,
        super::workspace::command_claims,
        foreign_command,
        replayed_command,
    )
    .await
    {
        return resp;
    }
    let event: SlackCommandEvent = match serde_urlencoded::from_bytes(&bytes) {
        Ok(e) => e,
        Err(e) => {
            warn!(error = %e, "a signed command could not be parsed");
            return (StatusCode::BAD_REQUEST, "malformed slash command").into_response();
        }
    };
    let Some(user) = SlackUserId::parse(&event.user_id.0) else {
        return ephemeral("Your Slack user id was not recognised.");
    };
    let text = event.text.clone().unwrap_or_default();
    let response_url = event.response_url.0.to_string();
    // Typed text is logged quoted (line breaks escaped) and cut short: it cannot forge log lines.
    let logged: String = text.chars().take(200).collect();
    info!(user = %user, command = ?event.command.0, text = ?logged, "command");
    match command::parse(&text) {
        Err(e) => ephemeral(format!("{e}.\n\n{USAGE}")),
        Ok(Command::Help) => ephemeral(USAGE),
        Ok(Command::Status { cluster }) => {
            let clusters: Vec<_> = match &cluster {
                None => state.settings.clusters.iter().collect(),
                Some(name) => match state.settings.cluster(name) {
                    Some(c) => vec![c],
                    None => {
                        return ephemeral(format!(
                            "Unknown cluster {}. Configured clusters: {}.",
                            render::code(name),
                            state.settings.cluster_names().join(", ")
                        ));
                    }
                },
            };
            // Where the last successful detach of each cluster moved the writer, if anywhere.
            let mut detached_by_cluster = Vec::new();
            for c in clusters {
                let detached = match state.approvals.store.last_success(&c.name).await {
                    Ok(Some(r)) => r
                        .stored_plan::<crate::runbook::plan::Plan>()
                        .ok()
                        .flatten()
                        .filter(|p| p.mode == crate::types::Mode::Detach)
                        .map(|p| (r.id.get(), p.to)),
                    Ok(None) => None,
                    Err(e) => {
                        warn!(error = %e, "cannot read past runs");
                        None
                    }
                };
                detached_by_cluster.push((c.clone(), detached));
            }
            let clusters = detached_by_cluster;
            // Shown to everyone in the incident channel; elsewhere, only to whoever asked.
            let in_channel = event.channel_id.0 == state.settings.slack.incident_channel.as_str();
            let answer = match state.surveyor.reports(clusters) {
                Ok(answer) => answer,
                Err(busy) => {
                    warn!("status request refused: {busy}");
                    return ephemeral(
                        "The bot is busy answering other status requests (AWS may be slow); nothing is lost, try again in a few seconds.",
                    );
                }
            };
            let st = state.clone();
            state.tasks.spawn(async move {
                let reports = answer.await;
                if let Err(e) = st
                    .chat
                    .respond_message(&response_url, &render::status(&reports), in_channel)
                    .await
                {
                    warn!(error = %e, "cannot queue the status answer");
                }
            });
            // Acknowledge at once; the answer follows through the response_url.
            StatusCode::OK.into_response()
        }
        Ok(Command::Cancel { request }) => match state.approvals.cancel(request.into(), &user).await {
            Ok(done) => ephemeral(render::done(&done)),
            Err(refusal) => ephemeral(render::refusal(&refusal)),
        },
        Ok(Command::Resume { run }) => match state.approvals.ask_resume(run.into(), &user).await {
            Ok(done) => ephemeral(render::done(&done)),
            Err(refusal) => ephemeral(render::refusal(&refusal)),
        },
        Ok(Command::Abandon { run, reason }) => match state.approvals.may_abandon(run.into(), &user).await {
            Ok(what) => axum::Json(render::abandon_confirmation(run, &what, &reason)).into_response(),
            Err(refusal) => ephemeral(render::refusal(&refusal)),
        },
        Ok(Command::History { cluster }) => {
            let cluster = match &cluster {
                None => None,
                Some(name) => match state.settings.cluster(name) {
                    Some(c) => Some(c.name.clone()),
                    None => {
                        return ephemeral(format!(
                            "Unknown cluster {}. Configured clusters: {}.",
                            render::code(name),
                            state.settings.cluster_names().join(", ")
                        ));
                    }
                },
            };
            let store = &state.approvals.store;
            let entries = history_entries(&**store, cluster.as_ref()).await;
            match entries {
                Ok(entries) => {
                    axum::Json(json!({"response_type": "ephemeral", "text": render::history(&entries).text}))
                        .into_response()
                }
                Err(e) => {
                    warn!(error = %e, "cannot read the history");
                    ephemeral("The history could not be read (the bot's database failed).")
                }
            }
        }
        Ok(Command::Failover {
            cluster,
            to,
            mode,
            dry_run,
        }) => {
            let reply = state
                .approvals
                .request_failover(
                    &user,
                    &cluster,
                    to.as_deref(),
                    mode,
                    dry_run,
                    Origin {
                        channel: &event.channel_id.0,
                        response_url: Some(&response_url),
                        team_domain: event.team_domain.as_deref(),
                    },
                )
                .await;
            match reply {
                RequestReply::Accepted { id } => ephemeral(format!(
                    "Request #{id} is recorded. Reading the topology now; the approval request will be posted in <#{}> in a moment.",
                    state.settings.slack.incident_channel
                )),
                RequestReply::DryRun => {
                    ephemeral("Dry run: reading the topology; the plan and its checks will follow here, for you only.")
                }
                RequestReply::Refused(why) => ephemeral(render::request_refusal(&why)),
            }
        }
    }
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
    if let Some(resp) = verify(
        &state,
        &headers,
        &bytes,
        interaction_claims,
        foreign_click,
        replayed_click,
    )
    .await
    {
        return resp;
    }
    let event: SlackInteractionEvent = match serde_urlencoded::from_bytes::<InteractionForm>(&bytes)
        .map_err(|e| e.to_string())
        .and_then(|f| serde_json::from_str(&f.payload).map_err(|e| e.to_string()))
    {
        Ok(e) => e,
        Err(e) => {
            warn!(error = %e, "a signed interaction could not be parsed");
            return (StatusCode::BAD_REQUEST, "malformed interaction").into_response();
        }
    };
    let SlackInteractionEvent::BlockActions(actions) = event else {
        return StatusCode::OK.into_response();
    };
    let user = actions.user.as_ref().and_then(|u| SlackUserId::parse(&u.id.0));
    let response_url = actions.response_url.as_ref().map(|u| u.0.to_string());
    let Some(action) = actions.actions.as_ref().and_then(|a| a.first()) else {
        return StatusCode::OK.into_response();
    };
    let Some(user) = user else {
        return StatusCode::OK.into_response();
    };
    let value = action.value.as_deref().unwrap_or_default();
    let number = value.parse::<i64>().ok();
    // Only the buttons the bot itself issues do anything; the request or run they name is always read
    // again from the store (never trusted from the message they were on).
    let decided = match (action.action_id.0.as_str(), number) {
        (render::APPROVE | render::DENY, Some(id)) => {
            // Approve and Deny count only on the request's own message.
            if !on_request_message(&state, id.into(), &bytes).await {
                info!(id = %id, user = %user, "a decision click not on the request's own message was ignored");
                return StatusCode::OK.into_response();
            }
            let approve = action.action_id.0 == render::APPROVE;
            state.approvals.decide(id.into(), &user, approve).await
        }
        (render::RESUME_APPROVE | render::RESUME_DENY, _) => {
            let Some((run, token)) = value
                .split_once(':')
                .and_then(|(r, t)| Some((r.parse::<i64>().ok()?, t.parse::<i64>().ok()?)))
            else {
                return StatusCode::OK.into_response();
            };
            let approve = action.action_id.0 == render::RESUME_APPROVE;
            state.approvals.decide_resume(run.into(), token, &user, approve).await
        }
        (render::ABANDON_CONFIRM, _) => match serde_json::from_str::<render::AbandonValue>(value) {
            Ok(v) => state.approvals.abandon(v.run.into(), &user, &v.reason).await,
            Err(_) => return StatusCode::OK.into_response(),
        },
        (other, _) => {
            let shown: String = other.chars().take(40).collect();
            info!(action_id = ?shown, "a click the bot cannot act on (a button it did not issue, or a malformed value) was ignored");
            return StatusCode::OK.into_response();
        }
    };
    let text = match decided {
        Ok(done) => render::done(&done),
        Err(refusal) => {
            info!(user = %user, %refusal, "click refused");
            render::refusal(&refusal)
        }
    };
    // Block actions ignore the HTTP answer's body: the clicker's (ephemeral) answer goes through the
    // response_url.
    if let Some(url) = response_url
        && let Err(e) = state.chat.respond_text(&url, &text, false).await
    {
        warn!(error = %e, "cannot queue the answer to a click");
    }
    StatusCode::OK.into_response()
}
