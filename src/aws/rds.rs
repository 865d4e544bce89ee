//! The `Aurora` port over aws-sdk-rds. Global clusters are read from the first configured Region that
//! answers (so a Region outage does not blind the bot); clusters are read, and detached, in their own
//! Region.

use super::classify;
use crate::ports::{Aurora, AwsError, AwsErrorKind, ClusterState, Member, RdsEvent, Topology};
use crate::types::Region;
use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

pub struct RdsAurora {
    config: aws_config::SdkConfig,
    /// One client per Region, built on first use: clients are cheap to clone and hold a connection pool.
    clients: Mutex<HashMap<Region, aws_sdk_rds::Client>>,
}

impl RdsAurora {
    pub fn new(config: aws_config::SdkConfig) -> Self {
        RdsAurora {
            config,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// The client for `region` (shared with the `Provisioning` adapter, `super::provision`).
    /// DescribeDBClusters of one cluster in `region`; `NotFound` when RDS lists none.
    pub(super) async fn describe_cluster(
        &self,
        region: &Region,
        cluster_id: &str,
    ) -> Result<aws_sdk_rds::types::DbCluster, AwsError> {
        let out = self
            .client(region)
            .describe_db_clusters()
            .db_cluster_identifier(cluster_id)
            .send()
            .await
            .map_err(|e| classify(&e, "rds:DescribeDBClusters"))?;
        out.db_clusters().first().cloned().ok_or_else(|| {
            AwsError::new(
                AwsErrorKind::NotFound,
                format!("cluster {cluster_id} not found in {region}"),
            )
        })
    }

    pub(super) fn client(&self, region: &Region) -> aws_sdk_rds::Client {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        clients
            .entry(region.clone())
            .or_insert_with(|| {
                let conf = aws_sdk_rds::config::Builder::from(&self.config)
                    .region(aws_sdk_rds::config::Region::new(region.as_str().to_owned()))
                    .build();
                aws_sdk_rds::Client::from_conf(conf)
            })
            .clone()
    }
}

/// How long a Region may take to answer a read before the next Region is asked as well.
const HEDGE: Duration = Duration::from_millis(1500);
/// How long one Region's read may take at most.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

impl RdsAurora {
    /// DescribeGlobalClusters in one Region, bounded by `READ_TIMEOUT`.
    async fn topology_in(&self, global_cluster_id: &str, region: &Region) -> Result<Topology, AwsError> {
        let call = self
            .client(region)
            .describe_global_clusters()
            .global_cluster_identifier(global_cluster_id)
            .send();
        let out = match tokio::time::timeout(READ_TIMEOUT, call).await {
            Err(_) => {
                return Err(
                    AwsError::new(AwsErrorKind::Unavailable, format!("{region}: no answer in time"))
                        .from_call("rds:DescribeGlobalClusters", "timeout"),
                );
            }
            Ok(Err(e)) => {
                let mut e = classify(&e, "rds:DescribeGlobalClusters");
                e.message = format!("{region}: {}", e.message);
                return Err(e);
            }
            Ok(Ok(out)) => out,
        };
        let g = out
            .global_clusters()
            .iter()
            .find(|g| g.global_cluster_identifier() == Some(global_cluster_id))
            .ok_or_else(|| {
                AwsError::new(
                    AwsErrorKind::NotFound,
                    format!("global cluster {global_cluster_id} not found"),
                )
            })?;
        let members = g
            .global_cluster_members()
            .iter()
            .filter_map(|m| {
                let arn = m.db_cluster_arn()?.to_owned();
                Some(Member {
                    region: region_of_arn(&arn)?,
                    cluster_id: cluster_id_of_arn(&arn),
                    is_writer: m.is_writer().unwrap_or(false),
                    sync: m.synchronization_status().map(|s| s.as_str().to_owned()),
                    arn,
                })
            })
            .collect();
        Ok(Topology {
            global_cluster_id: global_cluster_id.to_owned(),
            status: g.status().unwrap_or("unknown").to_owned(),
            engine_version: g.engine_version().unwrap_or_default().to_owned(),
            members,
            operation_in_progress: g
                .failover_state()
                .and_then(|f| f.status())
                .map(|s| s.as_str().to_owned()),
            operation_target: g
                .failover_state()
                .and_then(|f| f.to_db_cluster_arn())
                .map(str::to_owned),
            writer_endpoint: g.endpoint().map(str::to_owned),
        })
    }
}

/// A per-call override that turns the SDK's retries off (for calls that change things).
pub(super) fn no_retries() -> aws_sdk_rds::config::Builder {
    aws_sdk_rds::config::Builder::new().retry_config(aws_sdk_rds::config::retry::RetryConfig::disabled())
}

/// The Region of an RDS ARN (`arn:aws:rds:us-west-2:123456789012:cluster:x`).
fn region_of_arn(arn: &str) -> Option<Region> {
    arn.split(':').nth(3).and_then(Region::parse)
}

fn cluster_id_of_arn(arn: &str) -> String {
    arn.rsplit(':').next().unwrap_or(arn).to_owned()
}

#[async_trait]
impl Aurora for RdsAurora {
    async fn topology(&self, global_cluster_id: &str, regions: &[Region]) -> Result<Topology, AwsError> {
        // Ask the first Region; if it fails for the moment or has not answered within HEDGE, ask the
        // next one too, and so on: the first answer wins. A Region that is down (maybe exactly the
        // one failing over) then costs a couple of seconds, not the SDK's whole retry budget.
        let mut asking = FuturesUnordered::new();
        let mut next = regions.iter();
        let mut last_error = AwsError::new(AwsErrorKind::Other, "no Region configured");
        loop {
            if asking.is_empty() {
                match next.next() {
                    Some(region) => asking.push(self.topology_in(global_cluster_id, region)),
                    None => return Err(last_error),
                }
            }
            tokio::select! {
                Some(answer) = asking.next() => match answer {
                    Ok(t) => return Ok(t),
                    // "No such global cluster" is the answer, not an outage.
                    Err(e) if !e.is_transient() => return Err(e),
                    Err(e) => last_error = e,
                },
                () = tokio::time::sleep(HEDGE) => {
                    if let Some(region) = next.next() {
                        asking.push(self.topology_in(global_cluster_id, region));
                    }
                }
            }
        }
    }

    async fn cluster(&self, region: &Region, cluster_id: &str) -> Result<ClusterState, AwsError> {
        let c = &self.describe_cluster(region, cluster_id).await?;
        Ok(ClusterState {
            region: region.clone(),
            cluster_id: c.db_cluster_identifier().unwrap_or(cluster_id).to_owned(),
            arn: c.db_cluster_arn().unwrap_or_default().to_owned(),
            status: c.status().unwrap_or("unknown").to_owned(),
            engine_version: c.engine_version().unwrap_or_default().to_owned(),
            has_writer: c
                .db_cluster_members()
                .iter()
                .any(|m| m.is_cluster_writer() == Some(true)),
            instances: c.db_cluster_members().len(),
            endpoint: c.endpoint().map(str::to_owned),
            reader_endpoint: c.reader_endpoint().map(str::to_owned),
            port: c.port().and_then(|p| u16::try_from(p).ok()),
            global_cluster_id: c.global_cluster_identifier().map(str::to_owned),
            write_forwarding: c.global_write_forwarding_status().map(|f| f.as_str().to_owned()),
        })
    }

    async fn detach(&self, global_cluster_id: &str, member: &Member) -> Result<(), AwsError> {
        // Never retried by the SDK: an attempt whose answer was lost may have taken effect, and the
        // runbook looks at the topology before it sends this again.
        self.client(&member.region)
            .remove_from_global_cluster()
            .global_cluster_identifier(global_cluster_id)
            .db_cluster_identifier(&member.arn)
            .customize()
            .config_override(no_retries())
            .send()
            .await
            .map_err(|e| classify(&e, "rds:RemoveFromGlobalCluster"))?;
        Ok(())
    }

    async fn failover(&self, global_cluster_id: &str, target: &Member) -> Result<(), AwsError> {
        // Not retried by the SDK either: the runbook looks at the topology after any error.
        self.client(&target.region)
            .failover_global_cluster()
            .global_cluster_identifier(global_cluster_id)
            .target_db_cluster_identifier(&target.arn)
            .allow_data_loss(true)
            .customize()
            .config_override(no_retries())
            .send()
            .await
            .map_err(|e| classify(&e, "rds:FailoverGlobalCluster"))?;
        Ok(())
    }

    async fn switchover(&self, global_cluster_id: &str, target: &Member, primary: &Member) -> Result<(), AwsError> {
        self.client(&primary.region)
            .switchover_global_cluster()
            .global_cluster_identifier(global_cluster_id)
            .target_db_cluster_identifier(&target.arn)
            .customize()
            .config_override(no_retries())
            .send()
            .await
            .map_err(|e| classify(&e, "rds:SwitchoverGlobalCluster"))?;
        Ok(())
    }

    async fn events(
        &self,
        region: &Region,
        cluster_id: &str,
        since: jiff::Timestamp,
    ) -> Result<Vec<RdsEvent>, AwsError> {
        let out = self
            .client(region)
            .describe_events()
            .source_type(aws_sdk_rds::types::SourceType::DbCluster)
            .source_identifier(cluster_id)
            .start_time(aws_smithy_types::DateTime::from_millis(since.as_millisecond()))
            .send()
            .await
            .map_err(|e| classify(&e, "rds:DescribeEvents"))?;
        let mut events: Vec<RdsEvent> = out
            .events()
            .iter()
            .filter_map(|e| {
                let date = e.date()?;
                Some(RdsEvent {
                    date: jiff::Timestamp::from_millisecond(date.to_millis().ok()?).ok()?,
                    message: e.message()?.to_owned(),
                })
            })
            .collect();
        events.sort_by_key(|e| e.date);
        Ok(events)
    }

    async fn failover_snapshots(
        &self,
        region: &Region,
        cluster_id: &str,
        since: jiff::Timestamp,
    ) -> Result<Vec<String>, AwsError> {
        // Snapshot names have minute precision: compare creation times in whole seconds.
        let since = since.as_second();
        let out = self
            .client(region)
            .describe_db_cluster_snapshots()
            .db_cluster_identifier(cluster_id)
            .send()
            .await
            .map_err(|e| classify(&e, "rds:DescribeDBClusterSnapshots"))?;
        let mut found: Vec<(aws_smithy_types::DateTime, String)> = out
            .db_cluster_snapshots()
            .iter()
            .filter_map(|s| {
                let id = s.db_cluster_snapshot_identifier()?;
                let created = *s.snapshot_create_time()?;
                (id.starts_with("rds:unplanned-global-failover-") && created.secs() >= since)
                    .then(|| (created, id.to_owned()))
            })
            .collect();
        found.sort_by_key(|f| std::cmp::Reverse(f.0));
        Ok(found.into_iter().map(|(_, id)| id).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_give_their_region_and_cluster() {
        let arn = "arn:aws:rds:us-west-2:123456789012:cluster:orders-west";
        assert_eq!(region_of_arn(arn), Region::parse("us-west-2"));
        assert_eq!(cluster_id_of_arn(arn), "orders-west");
    }
}
