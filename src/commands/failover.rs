//! `/aurora failover CLUSTER [--to REGION] [--mode MODE] [--reason WHY] [--ticket T] [--dry-run]` (and
//! `/aurora rebuild CLUSTER --in REGION ...`, the same with `Mode::Rebuild`): record a request (posted for
//! a second person's approval once planned), or, with `--dry-run`, show its plan to whoever asked.

use super::Invocation;
use super::{SlackState, ephemeral};
use crate::approval::{Ask, Given, Origin, RequestReply};
use crate::slack::command::{Failover, NotConfigured};
use crate::slack::render;
use axum::response::Response;
use tracing::warn;

pub async fn failover(state: &SlackState, from: Invocation<'_>, f: Failover<'_>) -> Response {
    let reply = state
        .approvals
        .request_failover(
            from.user,
            f.cluster.settings(),
            Ask {
                to: f.to.as_ref(),
                mode: f.mode,
                dry_run: f.dry_run,
                given: Given {
                    reason: f.reason.as_deref(),
                    ticket: f.ticket.as_deref(),
                },
            },
            Origin {
                channel: from.channel,
                response_url: Some(from.response_url),
                team_domain: from.team_domain,
            },
        )
        .await;
    match reply {
        RequestReply::Accepted { id } => {
            ephemeral(render::request_recorded(id, &state.settings.slack.incident_channel))
        }
        RequestReply::DryRun => ephemeral(render::dry_run_started()),
        RequestReply::Refused(why) => ephemeral(render::request_refusal(&why)),
    }
}

/// A request naming a cluster, or a Region of it, that the settings lack: refused, and audited as
/// every refused request is.
pub async fn refused(
    state: &SlackState,
    from: Invocation<'_>,
    verb: &str,
    cluster: &str,
    why: &NotConfigured,
) -> Response {
    let store = &state.approvals.store;
    let (action, outcome) = (format!("request {verb} {cluster}"), format!("refused: {why}"));
    if let Err(e) = store
        .audit(state.clock.now(), from.user.as_str(), &action, None, &outcome)
        .await
    {
        warn!(error = %e, "cannot write the audit log");
    }
    ephemeral(render::not_configured(why))
}
