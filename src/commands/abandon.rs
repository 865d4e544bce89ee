//! `/aurora abandon RUN REASON`: stop a run here (its requester or an approver). The command answers
//! with a confirmation button; the click on it abandons the run.

use super::Invocation;
use super::{SlackState, ephemeral};
use crate::approval::{Done, Refusal};
use crate::slack::render;
use crate::store::RunId;
use crate::types::SlackUserId;
use axum::response::{IntoResponse, Response};

/// The confirmation button, shown to whoever typed the command, if they may abandon the run.
pub async fn abandon(state: &SlackState, from: Invocation<'_>, run: RunId, reason: &str) -> Response {
    match state.approvals.may_abandon(run, from.user).await {
        Ok(what) => axum::Json(render::abandon_confirmation(run, &what, reason)).into_response(),
        Err(refusal) => ephemeral(render::refusal(&refusal)),
    }
}

/// The click on the confirmation button.
pub async fn confirm(state: &SlackState, user: &SlackUserId, run: RunId, reason: &str) -> Result<Done, Refusal> {
    state.approvals.abandon(run, user, reason).await
}
