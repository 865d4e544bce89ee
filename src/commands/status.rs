//! `/aurora status [CLUSTER]`: each global cluster's members and where the CNAMEs point. Shown to
//! everyone in the incident channel; elsewhere, only to whoever asked. The answer is read in a task
//! and follows through the response_url; the command itself is acknowledged at once.

use super::Invocation;
use super::{SlackState, ephemeral};
use crate::ports::Member;
use crate::settings::ClusterSettings;
use crate::slack::command::Cluster;
use crate::slack::render;
use crate::store::RequestId;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use tracing::warn;

pub async fn status(state: &Arc<SlackState>, from: Invocation<'_>, cluster: Option<Cluster<'_>>) -> Response {
    let clusters: Vec<&ClusterSettings> = match cluster {
        None => state.settings.clusters.iter().collect(),
        Some(c) => vec![c.settings()],
    };
    let mut with_detach = Vec::new();
    for c in clusters {
        with_detach.push((c.clone(), last_detach(state, c).await));
    }
    let answer = match state.surveyor.reports(with_detach) {
        Ok(answer) => answer,
        Err(busy) => {
            warn!("status request refused: {busy}");
            return ephemeral(render::status_busy());
        }
    };
    let in_channel = from.channel == state.settings.slack.incident_channel.as_str();
    let (chat, response_url) = (state.chat.clone(), from.response_url.to_owned());
    state.tasks.spawn(async move {
        let reports = answer.await;
        // At most `render::STATUS_POSTS` messages, queued in order on the one response_url.
        for body in render::status(&reports) {
            if let Err(e) = chat.respond_message(&response_url, &body, in_channel).await {
                warn!(error = %e, "cannot queue the status answer");
                return;
            }
        }
    });
    StatusCode::OK.into_response()
}

/// Where the last successful detach of cluster `c` moved the writer (with its request), if anywhere.
async fn last_detach(state: &SlackState, c: &ClusterSettings) -> Option<(RequestId, Member)> {
    crate::status::last_detach(state.approvals.store.as_ref(), c).await
}
