//! Reads everything the planner needs about a global cluster, concurrently and with bounded waits:
//! the topology (from the first Region that answers), each member's own description (in its Region),
//! each secondary's replication lag (from CloudWatch, in its Region), and the CNAMEs.

use super::plan::{DnsTargets, Survey};
use crate::ports::{Aurora, AwsError, Dns, Metrics};
use crate::settings::ClusterSettings;
use futures::future::join_all;
use std::collections::HashMap;
use std::time::Duration;

/// How long one member's description or lag may take before it counts as unreadable.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn survey(
    aurora: &dyn Aurora,
    metrics: &dyn Metrics,
    dns: &dyn Dns,
    c: &ClusterSettings,
) -> Result<Survey, AwsError> {
    let names = [c.writer_record.as_str(), c.reader_record.as_str()];
    let (topology, records) = tokio::join!(
        aurora.topology(&c.global_cluster_id, &c.regions),
        dns.cnames(&c.hosted_zone_id, &names)
    );
    let topology = topology?;
    let writer_region = topology.writer().map(|w| w.region.clone());
    let states = join_all(topology.members.iter().map(|m| async move {
        let state = match tokio::time::timeout(READ_TIMEOUT, aurora.cluster(&m.region, &m.cluster_id)).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => Err(format!("{} did not answer in time", m.region)),
        };
        (m.arn.clone(), state)
    }));
    let lags = join_all(topology.secondaries().map(|m| {
        let source = writer_region.clone();
        async move {
            let lag = match source {
                None => Err("the global cluster has no writer to measure it against".to_owned()),
                Some(source) => {
                    match tokio::time::timeout(READ_TIMEOUT, metrics.replication_lag_ms(m, &source)).await {
                        Ok(Ok(Some(v))) => Ok(v),
                        Ok(Ok(None)) => Err(format!(
                            "no datapoint in the last {} min",
                            crate::ports::LAG_WINDOW.as_secs() / 60
                        )),
                        Ok(Err(e)) => {
                            tracing::warn!(error = %e, cluster = %m.cluster_id, "cannot read the replication lag");
                            Err(format!("CloudWatch in {}: {e}", m.region))
                        }
                        Err(_) => Err(format!("CloudWatch in {} did not answer in time", m.region)),
                    }
                }
            };
            (m.arn.clone(), lag)
        }
    }));
    let (states, lags) = tokio::join!(states, lags);
    Ok(Survey {
        states: states.into_iter().collect::<HashMap<_, _>>(),
        lags: lags.into_iter().collect::<HashMap<_, _>>(),
        dns: records
            .map(|v| DnsTargets {
                writer: v.first().cloned().flatten(),
                reader: v.get(1).cloned().flatten(),
                unreadable: None,
            })
            .map_err(|e| e.to_string()),
        topology,
    })
}
