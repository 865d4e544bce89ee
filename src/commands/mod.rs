//! The bot's user-facing commands, one file each: the `/aurora` commands (`help`, `status`,
//! `failover` with its `--dry-run`, `pending`, `cancel`, `history`, `resume`, `abandon`) and the
//! buttons and modals they lead to (`decide`: a request's Approve and Deny; `pending` holds its list's
//! buttons and the deny-reason modal; `resume` and `abandon` hold their own buttons).
//!
//! `http` verifies a request and `slack/command` parses it into validated values (a
//! configured cluster, one of its Regions, the store's ids); [`command`] and [`click`] hand it to its
//! handler with one `match`. A handler only authorises, records and answers (through `approval`, the
//! store, or a task it spawns), so that every command and click is answered within Slack's 3 seconds.

mod abandon;
mod cancel;
mod decide;
mod failover;
mod help;
mod history;
mod pending;
mod resume;
mod status;

use crate::approval::{Approvals, Done, Refusal};
use crate::ports::{Aurora, Clock, Dns};
use crate::settings::Settings;
use crate::slack::chat::SlackChat;
use crate::slack::command::{Click, Command, Rejected};
use crate::slack::render;
use crate::slack::verify::Verifier;
use crate::slack::workspace::Binding;
use crate::types::SlackUserId;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

/// What the handlers need, and the routes in front of them (`http.rs`: the verifier, the
/// workspace binding, health).
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

/// An answer only the person who typed the command sees.
pub fn ephemeral(text: impl Into<String>) -> Response {
    axum::Json(serde_json::json!({"response_type": "ephemeral", "text": text.into()})).into_response()
}

/// Who typed a command, and where.
#[derive(Debug, Clone, Copy)]
pub struct Invocation<'a> {
    pub user: &'a SlackUserId,
    pub channel: &'a str,
    /// Where to answer the person later (valid 30 minutes).
    pub response_url: &'a str,
    /// The workspace's domain, for links to messages.
    pub team_domain: Option<&'a str>,
}

/// A verified click on one of the bot's buttons.
#[derive(Debug, Clone)]
pub struct Clicked {
    pub user: SlackUserId,
    pub click: Click,
    /// The `ts` of the message the button was on, as the click says.
    pub message_ts: Option<String>,
    /// Where the clicker's answer goes.
    pub response_url: Option<String>,
    /// The channel of the clicked message (Slack's `channel.id` in a block_actions payload), when given.
    pub channel: Option<String>,
    /// The click's `trigger_id` (valid 3 seconds), to open a modal with, when given.
    pub trigger_id: Option<String>,
}

/// A verified submission of one of the bot's modals (a `view_submission`).
#[derive(Debug, Clone)]
pub struct Submitted {
    pub user: SlackUserId,
    pub submission: crate::slack::command::Submission,
}

/// Answers a verified `/aurora` command: its handler's answer, or why the text gives no command.
pub async fn command(state: &Arc<SlackState>, from: Invocation<'_>, parsed: Result<Command<'_>, Rejected>) -> Response {
    match parsed {
        Ok(Command::Help) => help::help(),
        Ok(Command::Status { cluster }) => status::status(state, from, cluster).await,
        Ok(Command::Failover(f) | Command::Rebuild(f)) => failover::failover(state, from, f).await,
        Ok(Command::Cancel { request }) => cancel::cancel(state, from, request).await,
        Ok(Command::History { cluster }) => history::history(state, cluster).await,
        Ok(Command::Pending) => pending::pending(state, from).await,
        Ok(Command::Resume { run }) => resume::resume(state, from, run).await,
        Ok(Command::Abandon { run, reason }) => abandon::abandon(state, from, run, &reason).await,
        Err(Rejected::Usage(e)) => help::usage_error(&e),
        Err(Rejected::NotConfigured {
            verb: verb @ ("failover" | "rebuild"),
            cluster,
            why,
        }) => failover::refused(state, from, verb, &cluster, &why).await,
        Err(Rejected::NotConfigured { why, .. }) => help::not_configured(&why),
    }
}

/// Acts on a verified click and answers the clicker (only them) through the click's response_url.
/// Slack ignores the HTTP answer's body for a click: it is always an empty 200.
pub async fn click(state: &SlackState, clicked: Clicked) -> Response {
    let user = &clicked.user;
    let decided = match &clicked.click {
        Click::Decide { request, approve } => {
            let clicked_on = (clicked.channel.as_deref(), clicked.message_ts.as_deref());
            match decide::decide(state, user, *request, *approve, clicked_on).await {
                Some(decided) => decided,
                None => {
                    if let Some(url) = &clicked.response_url
                        && let Err(e) = state
                            .chat
                            .respond_text(url, &render::stray_click(*request), false)
                            .await
                    {
                        warn!(error = %e, "cannot queue the answer to a click");
                    }
                    return StatusCode::OK.into_response();
                }
            }
        }
        Click::DecideResume { run, token, approve } => resume::decide(state, user, *run, *token, *approve).await,
        Click::Abandon { run, reason } => abandon::confirm(state, user, *run, reason).await,
        Click::FromList { request, approve } => {
            pending::from_list(state, &clicked, *request, *approve).await;
            return StatusCode::OK.into_response();
        }
    };
    answer_click(state, &clicked, decided).await;
    StatusCode::OK.into_response()
}

/// Acts on a verified submission of one of the bot's modals. The answer is the HTTP body (or the
/// Socket Mode ack's payload): empty to close the modal, `response_action: "errors"` to keep it open
/// saying why nothing was done.
pub async fn submitted(state: &SlackState, submitted: Submitted) -> Response {
    pending::submitted(state, &submitted.user, submitted.submission).await
}

/// Queues the answer to a click (what was done, or why nothing was) for its response_url.
async fn answer_click(state: &SlackState, clicked: &Clicked, decided: Result<Done, Refusal>) {
    let text = match decided {
        Ok(done) => render::done(&done),
        Err(refusal) => {
            info!(user = %clicked.user, %refusal, "click refused");
            render::refusal(&refusal)
        }
    };
    if let Some(url) = &clicked.response_url
        && let Err(e) = state.chat.respond_text(url, &text, false).await
    {
        warn!(error = %e, "cannot queue the answer to a click");
    }
}

/// The answer to a command that either did what it says or was refused, to whoever typed it.
fn done_or_refused(outcome: Result<Done, Refusal>) -> Response {
    ephemeral(match outcome {
        Ok(done) => render::done(&done),
        Err(refusal) => render::refusal(&refusal),
    })
}
