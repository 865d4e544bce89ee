//! `/aurora resume RUN`: ask to let a run that needs attention finish; and the buttons on that ask,
//! where a second person approves or denies it.

use super::Invocation;
use super::SlackState;
use crate::approval::{Done, Refusal};
use crate::store::RunId;
use crate::types::SlackUserId;
use axum::response::Response;

/// The ask, posted in the run's thread for a second person.
pub async fn resume(state: &SlackState, from: Invocation<'_>, run: RunId) -> Response {
    super::done_or_refused(state.approvals.ask_resume(run, from.user).await)
}

/// A click on the ask numbered `token`'s Approve or Deny.
pub async fn decide(
    state: &SlackState,
    user: &SlackUserId,
    run: RunId,
    token: i64,
    approve: bool,
) -> Result<Done, Refusal> {
    state.approvals.decide_resume(run, token, user, approve).await
}
