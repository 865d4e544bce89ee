//! The replication-lag metrics through the real aws-sdk-cloudwatch client, which speaks Smithy RPC v2
//! CBOR: published by each secondary in its own Region, as AWS publishes them.

use crate::common;

use aws_sdk_cloudwatch::error::ProvideErrorMetadata;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat};
use awsim::Timings;
use common::TestSim;
use std::time::{Duration, SystemTime};

fn query(metric: &str, cluster: &str, source: Option<&str>) -> MetricDataQuery {
    let mut m = Metric::builder()
        .namespace("AWS/RDS")
        .metric_name(metric)
        .dimensions(Dimension::builder().name("DBClusterIdentifier").value(cluster).build());
    if let Some(s) = source {
        m = m.dimensions(Dimension::builder().name("SourceRegion").value(s).build());
    }
    MetricDataQuery::builder()
        .id("lag")
        .metric_stat(
            MetricStat::builder()
                .metric(m.build())
                .period(60)
                .stat("Maximum")
                .build(),
        )
        .build()
}

async fn lag(t: &TestSim, region: &str, q: MetricDataQuery) -> Vec<f64> {
    let now = SystemTime::now();
    let out = t
        .cloudwatch(region)
        .await
        .get_metric_data()
        .metric_data_queries(q)
        .start_time(DateTime::from(now - Duration::from_secs(600)))
        .end_time(DateTime::from(now))
        .send()
        .await
        .expect("GetMetricData");
    let r = &out.metric_data_results()[0];
    assert_eq!(r.id(), Some("lag"));
    assert_eq!(r.timestamps().len(), r.values().len());
    r.values().to_vec()
}

#[tokio::test]
async fn each_secondary_publishes_its_lag_in_its_own_region_with_the_primary_as_source() {
    let t = TestSim::example(Timings::instant()).await;
    for metric in ["AuroraGlobalDBRPOLag", "AuroraGlobalDBReplicationLag"] {
        let values = lag(&t, "us-west-2", query(metric, "orders-west", Some("us-east-1"))).await;
        assert!(!values.is_empty(), "{metric}");
        assert!(values.iter().all(|v| *v == 800.0), "{metric}: {values:?}");
    }
    // CloudWatch matches the exact dimension set: nothing without SourceRegion. Nothing from another
    // Region, for the primary, or from a wrong source either.
    assert!(
        lag(&t, "us-west-2", query("AuroraGlobalDBRPOLag", "orders-west", None))
            .await
            .is_empty()
    );
    assert!(
        lag(
            &t,
            "us-east-1",
            query("AuroraGlobalDBRPOLag", "orders-west", Some("us-east-1"))
        )
        .await
        .is_empty()
    );
    assert!(
        lag(&t, "us-east-1", query("AuroraGlobalDBRPOLag", "orders-east", None))
            .await
            .is_empty()
    );
    assert!(
        lag(
            &t,
            "us-west-2",
            query("AuroraGlobalDBRPOLag", "orders-west", Some("eu-west-1"))
        )
        .await
        .is_empty()
    );
    // The value follows the configured lag.
    t.admin()
        .set_replication_lag("us-west-2", "orders-west", Duration::from_millis(4_200))
        .unwrap();
    let values = lag(
        &t,
        "us-west-2",
        query("AuroraGlobalDBRPOLag", "orders-west", Some("us-east-1")),
    )
    .await;
    assert!(values.iter().all(|v| *v == 4_200.0), "{values:?}");
    let calls = t.admin().calls_to("GetMetricData");
    assert_eq!(calls[0].service, "monitoring");
    assert_eq!(calls[0].region, "us-west-2");
}

#[tokio::test]
async fn bad_queries_are_refused_with_the_query_error_code() {
    let t = TestSim::example(Timings::instant()).await;
    let now = SystemTime::now();
    let err = t
        .cloudwatch("us-west-2")
        .await
        .get_metric_data()
        .metric_data_queries(query("AuroraGlobalDBRPOLag", "orders-west", None))
        .start_time(DateTime::from(now))
        .end_time(DateTime::from(now - Duration::from_secs(60)))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidParameterValue"), "{err:?}");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(400));
}
