//! `/aurora pending`: the open requests the caller may act on, with Approve and Deny buttons, shown
//! to them alone; the Deny button's modal asking for a reason; and that modal's submission.
//!
//! The list is read in a task and posted straight to the command's response_url (like
//! `/aurora status`: it records nothing); the command is acknowledged at once. Approve in the list
//! decides as the request message's Approve does. Deny opens the deny-reason modal (`views.open`
//! with the click's `trigger_id`, valid 3 seconds); its submission, verified like every interaction
//! (`http`), names the request in its `private_metadata`, which is read again from the store: a
//! request decided, expired or unknown by then, or an empty reason, keeps the modal open with the
//! reason why (`response_action: "errors"`).

use super::{Clicked, Invocation, SlackState, answer_click};
use crate::approval::Refusal;
use crate::slack::client::MessageBody;
use crate::slack::command::Submission;
use crate::slack::render;
use crate::store::RequestId;
use crate::types::SlackUserId;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use tracing::{info, warn};

/// `/aurora pending`: acknowledged at once; the list follows through the response_url.
pub async fn pending(state: &Arc<SlackState>, from: Invocation<'_>) -> Response {
    let (response_url, user, channel) = (from.response_url.to_owned(), from.user.clone(), from.channel.to_owned());
    let team_domain = from.team_domain.map(str::to_owned);
    let me = state.clone();
    state.tasks.spawn(async move {
        let body = match me.approvals.actionable_for(&user, team_domain.as_deref()).await {
            Ok(list) => render::pending(&list),
            Err(refusal) => MessageBody {
                text: render::refusal(&refusal),
                blocks: vec![],
            },
        };
        let asker = crate::slack::chat::Asker {
            response_url: &response_url,
            user: user.as_str(),
            channel: &channel,
        };
        if let Err(e) = me.chat.answer_now(&asker, &[body], false).await {
            warn!(error = %e, "cannot deliver the pending list");
        }
    });
    StatusCode::OK.into_response()
}

/// Deny in the pending list: opens the deny-reason modal when `user` may deny request `id` (it is
/// checked here, so that a refusal comes at once, and again when the modal is submitted). The modal
/// is opened in a task: the click is acknowledged meanwhile. When Slack refuses to open it, the
/// clicker is told through the click's response_url.
pub async fn ask_reason(state: &SlackState, clicked: &Clicked, id: RequestId) -> Result<(), Refusal> {
    let (request, role) = state.approvals.may_deny(id, &clicked.user).await?;
    let Some(trigger) = clicked.trigger_id.clone() else {
        warn!(%id, "a Deny click without a trigger_id: no modal can be opened");
        return Err(Refusal::Internal);
    };
    let view = render::deny_reason_modal(&request, role);
    let (chat, url) = (state.chat.clone(), clicked.response_url.clone());
    state.tasks.spawn(async move {
        match chat.api.open_view(&trigger, &view).await {
            Ok(view_id) => info!(%id, view_id, "the deny-reason modal is open"),
            Err(e) => {
                warn!(%id, error = %e, "cannot open the deny-reason modal");
                if let Some(url) = url
                    && let Err(e) = chat
                        .respond_text(&url, &render::reason_modal_unavailable(id), false)
                        .await
                {
                    warn!(error = %e, "cannot queue the answer to a click");
                }
            }
        }
    });
    Ok(())
}

/// A click in the pending list: Approve decides at once (answered like the request message's
/// Approve); Deny opens the deny-reason modal (answered only when refused).
pub async fn from_list(state: &SlackState, clicked: &Clicked, id: RequestId, approve: bool) {
    if approve {
        let decided = state.approvals.decide(id, &clicked.user, true).await;
        answer_click(state, clicked, decided).await;
    } else if let Err(refusal) = ask_reason(state, clicked, id).await {
        answer_click(state, clicked, Err(refusal)).await;
    }
}

/// A verified submission of one of the bot's modals, by `user`: an empty 200 closes the modal (done),
/// a `response_action: "errors"` body keeps it open and says why nothing was done.
pub async fn submitted(state: &SlackState, user: &SlackUserId, submission: Submission) -> Response {
    match submission {
        Submission::DenyReason { request, reason } => {
            if reason.is_empty() {
                info!(%request, %user, "a deny reason was refused: empty");
                return axum::Json(render::reason_required()).into_response();
            }
            let reason: String = reason.chars().take(render::REASON_MAX).collect();
            match state.approvals.deny_with_reason(request, user, &reason).await {
                Ok(_) => StatusCode::OK.into_response(),
                Err(refusal) => {
                    info!(%request, %user, %refusal, "a deny with a reason was refused");
                    axum::Json(render::modal_refusal(&refusal)).into_response()
                }
            }
        }
    }
}
