//! The Approve and Deny buttons on a request's approval message: the decision, by compare-and-set.

use super::SlackState;
use crate::approval::{Done, Refusal};
use crate::store::{Request, RequestId};
use crate::types::SlackUserId;
use tracing::info;

/// Decides request `request`, or `None` (and nothing happens) when the button was not on the
/// request's own message as delivered (`clicked_on`: the channel and `ts` of the message the click
/// says it was on).
pub async fn decide(
    state: &SlackState,
    user: &SlackUserId,
    request: RequestId,
    approve: bool,
    clicked_on: (Option<&str>, Option<&str>),
) -> Option<Result<Done, Refusal>> {
    if !on_request_message(state, request, clicked_on).await {
        info!(id = %request, user = %user, "a decision click not on the request's own message was ignored");
        return None;
    }
    Some(state.approvals.decide(request, user, approve).await)
}

/// Whether the message clicked on (`channel`, `message_ts`) is request `id`'s approval message, as
/// delivered: its `ts`, and its channel when the click names one.
async fn on_request_message(
    state: &SlackState,
    id: RequestId,
    (channel, message_ts): (Option<&str>, Option<&str>),
) -> bool {
    let store = &state.approvals.store;
    let Some(posted) = (match store.request(id).await {
        Ok(Some(Request { message: Some(m), .. })) => store.outbox_item(m).await.ok().flatten(),
        _ => None,
    }) else {
        return false;
    };
    let same_ts = matches!((message_ts, posted.delivered_ts.as_deref()), (Some(c), Some(p)) if c == p);
    let same_channel = channel.is_none_or(|c| posted.channel.as_deref() == Some(c));
    same_ts && same_channel
}
