//! `/aurora cancel REQUEST`: withdraw a request before it is decided (its requester or an approver).

use super::Invocation;
use super::SlackState;
use crate::store::RequestId;
use axum::response::Response;

pub async fn cancel(state: &SlackState, from: Invocation<'_>, request: RequestId) -> Response {
    super::done_or_refused(state.approvals.cancel(request, from.user).await)
}
