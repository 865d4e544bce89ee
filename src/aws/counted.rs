//! Counts failed AWS calls: [`Counted`] wraps an `Aurora`, `Provisioning`, `Dns` or `Metrics` adapter and records
//! every error that names its call ([`crate::ports::FailedCall`], set by [`super::classify`]) in
//! `aurora_failover_bot_aws_errors_total{action, code}`. It changes nothing else: answers and errors
//! pass through as they are.
//!
//! What it cannot see: an error a hedged multi-Region read recovered from by itself (another Region
//! answered), and the calls outside these ports (IAM's simulator, Secrets Manager at start-up).

use crate::ports::{
    Aurora, AwsError, ClusterSpec, ClusterState, Dns, HostedZone, InstanceSpec, Member, Metrics, NewInstance,
    NewSecondary, Provisioning, RdsEvent, RecordSet, Topology,
};
use crate::telemetry::Telemetry;
use crate::types::Region;
use async_trait::async_trait;
use std::sync::Arc;

/// An adapter whose failed calls are counted in `telemetry`.
pub struct Counted<T> {
    /// The adapter that makes the calls.
    pub inner: T,
    /// Where its failed calls are counted.
    pub telemetry: Arc<Telemetry>,
}

impl<T> Counted<T> {
    /// `inner`, its failed calls counted in `telemetry`.
    pub fn new(inner: T, telemetry: Arc<Telemetry>) -> Self {
        Counted { inner, telemetry }
    }

    fn count<R>(&self, result: Result<R, AwsError>) -> Result<R, AwsError> {
        if let Err(AwsError {
            failed_call: Some(call),
            ..
        }) = &result
        {
            self.telemetry.aws_error(call.action, &call.code);
        }
        result
    }
}

#[async_trait]
impl<T: Aurora> Aurora for Counted<T> {
    async fn topology(&self, global_cluster_id: &str, regions: &[Region]) -> Result<Topology, AwsError> {
        self.count(self.inner.topology(global_cluster_id, regions).await)
    }
    async fn cluster(&self, region: &Region, cluster_id: &str) -> Result<ClusterState, AwsError> {
        self.count(self.inner.cluster(region, cluster_id).await)
    }
    async fn detach(&self, global_cluster_id: &str, member: &Member) -> Result<(), AwsError> {
        self.count(self.inner.detach(global_cluster_id, member).await)
    }
    async fn failover(&self, global_cluster_id: &str, target: &Member) -> Result<(), AwsError> {
        self.count(self.inner.failover(global_cluster_id, target).await)
    }
    async fn switchover(&self, global_cluster_id: &str, target: &Member, primary: &Member) -> Result<(), AwsError> {
        self.count(self.inner.switchover(global_cluster_id, target, primary).await)
    }
    async fn events(
        &self,
        region: &Region,
        cluster_id: &str,
        since: jiff::Timestamp,
    ) -> Result<Vec<RdsEvent>, AwsError> {
        self.count(self.inner.events(region, cluster_id, since).await)
    }
    async fn failover_snapshots(
        &self,
        region: &Region,
        cluster_id: &str,
        since: jiff::Timestamp,
    ) -> Result<Vec<String>, AwsError> {
        self.count(self.inner.failover_snapshots(region, cluster_id, since).await)
    }
}

#[async_trait]
impl<T: Provisioning> Provisioning for Counted<T> {
    async fn cluster_spec(&self, region: &Region, cluster_id: &str) -> Result<ClusterSpec, AwsError> {
        self.count(self.inner.cluster_spec(region, cluster_id).await)
    }
    async fn create_global_cluster(&self, global_cluster_id: &str, source: &ClusterState) -> Result<(), AwsError> {
        self.count(self.inner.create_global_cluster(global_cluster_id, source).await)
    }
    async fn create_secondary(&self, spec: &NewSecondary) -> Result<(), AwsError> {
        self.count(self.inner.create_secondary(spec).await)
    }
    async fn create_instance(&self, spec: &NewInstance) -> Result<(), AwsError> {
        self.count(self.inner.create_instance(spec).await)
    }
    async fn instance(&self, region: &Region, instance_id: &str) -> Result<Option<InstanceSpec>, AwsError> {
        self.count(self.inner.instance(region, instance_id).await)
    }
}

#[async_trait]
impl<T: Dns> Dns for Counted<T> {
    async fn hosted_zone(&self, zone_id: &str) -> Result<HostedZone, AwsError> {
        self.count(self.inner.hosted_zone(zone_id).await)
    }
    async fn records_at(&self, zone_id: &str, name: &str) -> Result<Vec<RecordSet>, AwsError> {
        self.count(self.inner.records_at(zone_id, name).await)
    }
    async fn cnames(&self, zone_id: &str, names: &[&str]) -> Result<Vec<Option<String>>, AwsError> {
        self.count(self.inner.cnames(zone_id, names).await)
    }
    async fn upsert_cnames(
        &self,
        zone_id: &str,
        records: &[(&str, &str)],
        ttl: i64,
        comment: &str,
    ) -> Result<String, AwsError> {
        self.count(self.inner.upsert_cnames(zone_id, records, ttl, comment).await)
    }
    async fn change_insync(&self, change_id: &str) -> Result<bool, AwsError> {
        self.count(self.inner.change_insync(change_id).await)
    }
}

#[async_trait]
impl<T: Metrics> Metrics for Counted<T> {
    async fn replication_lag_ms(&self, secondary: &Member, source_region: &Region) -> Result<Option<f64>, AwsError> {
        self.count(self.inner.replication_lag_ms(secondary, source_region).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::AwsErrorKind;

    #[test]
    fn only_errors_that_name_their_call_are_counted() {
        let telemetry = Arc::new(Telemetry::new());
        let counted = Counted::new((), telemetry.clone());
        let named =
            AwsError::new(AwsErrorKind::Throttled, "slow down").from_call("rds:DescribeDBClusters", "Throttling");
        let _ = counted.count::<()>(Err(named));
        let _ = counted.count::<()>(Err(AwsError::new(AwsErrorKind::Other, "made up")));
        let _ = counted.count(Ok(()));
        let text = telemetry.encode();
        assert!(
            text.contains(
                "aurora_failover_bot_aws_errors_total{action=\"rds:DescribeDBClusters\",code=\"Throttling\"} 1"
            )
        );
        assert_eq!(text.matches("aws_errors_total{").count(), 1);
    }
}
