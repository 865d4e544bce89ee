//! `/aurora history [CLUSTER]`: the recent requests and runs, newest first, to whoever asked.

use super::{SlackState, ephemeral};
use crate::slack::command::Cluster;
use crate::slack::render;
use crate::store::{Store, StoreError};
use crate::types::ClusterName;
use axum::response::Response;
use tracing::warn;

/// How many requests `/aurora history` shows.
const HISTORY_LENGTH: usize = 15;

pub async fn history(state: &SlackState, cluster: Option<Cluster<'_>>) -> Response {
    let cluster = cluster.map(|c| &c.settings().name);
    match entries(&*state.approvals.store, cluster).await {
        Ok(entries) => ephemeral(render::history(&entries).text),
        Err(e) => {
            warn!(error = %e, "cannot read the history");
            ephemeral(render::history_unreadable())
        }
    }
}

/// The history's rows, newest first, each with its run; a row that cannot be read is listed as such.
async fn entries(store: &dyn Store, cluster: Option<&ClusterName>) -> Result<Vec<render::HistoryEntry>, StoreError> {
    let mut entries = Vec::new();
    for r in store.recent_requests(cluster, HISTORY_LENGTH).await? {
        entries.push(match r {
            Ok(r) => match store.run_of_request(r.id).await {
                Ok(run) => Ok((r, run)),
                Err(StoreError::Decode(e)) => Err(e),
                Err(e) => return Err(e),
            },
            Err(e) => Err(e),
        });
    }
    Ok(entries)
}
