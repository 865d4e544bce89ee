//! The Approve and Deny buttons on a request's approval message: the decision, by compare-and-set.

use super::SlackState;
use crate::approval::{Done, Refusal};
use crate::store::{Request, RequestId};
use crate::types::SlackUserId;
use tracing::info;

/// Decides request `request`, or `None` (and nothing happens) when the button was not on the
/// request's own message as delivered (`message_ts`: the message the click says it was on).
pub async fn decide(
    state: &SlackState,
    user: &SlackUserId,
    request: RequestId,
    approve: bool,
    message_ts: Option<&str>,
) -> Option<Result<Done, Refusal>> {
    if !on_request_message(state, request, message_ts).await {
        info!(id = %request, user = %user, "a decision click not on the request's own message was ignored");
        return None;
    }
    Some(state.approvals.decide(request, user, approve).await)
}

/// Whether `message_ts` is that of request `id`'s approval message, as delivered.
async fn on_request_message(state: &SlackState, id: RequestId, message_ts: Option<&str>) -> bool {
    let store = &state.approvals.store;
    let posted = match store.request(id).await {
        Ok(Some(Request { message: Some(m), .. })) => store.outbox_item(m).await.ok().flatten(),
        _ => None,
    }
    .and_then(|item| item.delivered_ts);
    matches!((message_ts, posted), (Some(c), Some(p)) if c == p)
}
