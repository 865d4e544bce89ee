//! The `Metrics` port over aws-sdk-cloudwatch: Aurora Global Database replication lag, read in the
//! secondary's own Region, where AWS publishes it.

use super::classify;
use crate::ports::{AwsError, LAG_WINDOW, Member, Metrics};
use crate::types::Region;
use async_trait::async_trait;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat};
use std::collections::HashMap;
use std::sync::Mutex;

/// The metric AWS recommends, and the one older Aurora MySQL versions publish instead.
const RPO_LAG: &str = "AuroraGlobalDBRPOLag";
const REPLICATION_LAG: &str = "AuroraGlobalDBReplicationLag";

pub struct CloudWatchMetrics {
    config: aws_config::SdkConfig,
    /// One client per Region, built on first use.
    clients: Mutex<HashMap<Region, aws_sdk_cloudwatch::Client>>,
}

impl CloudWatchMetrics {
    pub fn new(config: aws_config::SdkConfig) -> Self {
        CloudWatchMetrics {
            config,
            clients: Mutex::new(HashMap::new()),
        }
    }

    fn client(&self, region: &Region) -> aws_sdk_cloudwatch::Client {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        clients
            .entry(region.clone())
            .or_insert_with(|| {
                let conf = aws_sdk_cloudwatch::config::Builder::from(&self.config)
                    .region(aws_sdk_cloudwatch::config::Region::new(region.as_str().to_owned()))
                    .build();
                aws_sdk_cloudwatch::Client::from_conf(conf)
            })
            .clone()
    }
}

fn query(id: &str, metric: &str, secondary: &Member, source: &Region) -> MetricDataQuery {
    let metric = Metric::builder()
        .namespace("AWS/RDS")
        .metric_name(metric)
        .dimensions(
            Dimension::builder()
                .name("DBClusterIdentifier")
                .value(&secondary.cluster_id)
                .build(),
        )
        .dimensions(Dimension::builder().name("SourceRegion").value(source.as_str()).build())
        .build();
    MetricDataQuery::builder()
        .id(id)
        .metric_stat(MetricStat::builder().metric(metric).period(60).stat("Maximum").build())
        .build()
}

#[async_trait]
impl Metrics for CloudWatchMetrics {
    async fn replication_lag_ms(&self, secondary: &Member, source_region: &Region) -> Result<Option<f64>, AwsError> {
        let now = jiff::Timestamp::now().as_second();
        let out = self
            .client(&secondary.region)
            .get_metric_data()
            .metric_data_queries(query("rpo", RPO_LAG, secondary, source_region))
            .metric_data_queries(query("replication", REPLICATION_LAG, secondary, source_region))
            .start_time(DateTime::from_secs(now - LAG_WINDOW.as_secs() as i64))
            .end_time(DateTime::from_secs(now))
            .send()
            .await
            .map_err(|e| classify(&e, "cloudwatch:GetMetricData"))?;
        // The newest datapoint of RPOLag if there is one, else of ReplicationLag.
        let newest = |id: &str| {
            out.metric_data_results()
                .iter()
                .find(|r| r.id() == Some(id))
                .and_then(|r| {
                    r.timestamps()
                        .iter()
                        .zip(r.values())
                        .max_by_key(|(t, _)| **t)
                        .map(|(_, v)| *v)
                })
        };
        Ok(newest("rpo").or_else(|| newest("replication")))
    }
}
