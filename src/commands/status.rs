//! `/aurora status [CLUSTER]`: each global cluster's members and where the CNAMEs point. Shown to
//! everyone in the incident channel; elsewhere, only to whoever asked. The answer is read in a task
//! and follows through the response_url (posted directly, not queued in the store: it records
//! nothing); the command itself is acknowledged at once.

use super::Invocation;
use super::{SlackState, ephemeral};
use crate::settings::ClusterSettings;
use crate::slack::command::Cluster;
use crate::slack::render;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use tracing::warn;

pub async fn status(state: &Arc<SlackState>, from: Invocation<'_>, cluster: Option<Cluster<'_>>) -> Response {
    let clusters: Vec<ClusterSettings> = match cluster {
        None => state.settings.clusters.clone(),
        Some(c) => vec![c.settings().clone()],
    };
    // Nothing but a permit is taken before the acknowledgement: the store and AWS are read in the task.
    let answer = match state.surveyor.reports(clusters, state.approvals.store.clone()) {
        Ok(answer) => answer,
        Err(busy) => {
            warn!("status request refused: {busy}");
            return ephemeral(render::status_busy());
        }
    };
    let in_channel = from.channel == state.settings.slack.incident_channel.as_str();
    let chat = state.chat.clone();
    let (response_url, user, channel) = (
        from.response_url.to_owned(),
        from.user.to_string(),
        from.channel.to_owned(),
    );
    state.tasks.spawn(async move {
        let reports = answer.await;
        // At most `render::STATUS_POSTS` messages, in order on the one response_url; straight to
        // Slack: a status answer records nothing, so the store is not involved.
        let asker = crate::slack::chat::Asker {
            response_url: &response_url,
            user: &user,
            channel: &channel,
        };
        if let Err(e) = chat.answer_now(&asker, &render::status(&reports), in_channel).await {
            warn!(error = %e, "cannot deliver the status answer");
        }
    });
    StatusCode::OK.into_response()
}
