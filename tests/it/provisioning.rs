//! The `Provisioning` port through the real adapter (`aws::rds::RdsAurora`, the SDK clients `serve`
//! builds) against the emulator: a cluster's spec as a rebuild copies it, each creating call a
//! rebuild makes after a detach (sent to the right Region, once, never retried by the SDK), the new
//! secondary replicating at the end, and each refusal classified for the engine.

use aurora_failover_bot::aws::AwsOverrides;
use aurora_failover_bot::aws::counted::Counted;
use aurora_failover_bot::aws::rds::RdsAurora;
use aurora_failover_bot::ports::{Aurora, AwsErrorKind, NewInstance, NewSecondary, Provisioning};
use aurora_failover_bot::telemetry::Telemetry;
use aurora_failover_bot::types::Region;
use awsim::{FaultCode, FaultSpec, Scenario, Timings};
use std::sync::Arc;
use std::time::Duration;

const EAST: &str = "us-east-1";
const WEST: &str = "us-west-2";
const ROLE: &str = "arn:aws:iam::123456789012:role/rds-monitoring-role";

fn region(name: &str) -> Region {
    Region::parse(name).expect("a Region")
}

/// The example world plus `orders-promoted`, a standalone cluster in us-west-2 (what a detach leaves), and
/// the adapter as `serve` builds it (three attempts per call: only the creates must not retry).
pub(crate) async fn world() -> (awsim::Awsim, Counted<RdsAurora>, Arc<Telemetry>) {
    let mut scenario = Scenario::two_region_example();
    scenario.timings = Timings {
        create_global_ms: 200,
        create_cluster_ms: 200,
        create_instance_ms: 200,
        ..Timings::instant()
    };
    scenario.db_clusters.push(awsim::scenario::DbClusterSpec {
        region: WEST.into(),
        cluster_id: "orders-promoted".into(),
        engine: "aurora-postgresql".into(),
        engine_version: "15.4".into(),
        instances: vec!["orders-promoted-1".into(), "orders-promoted-2".into()],
        port: None,
        endpoint_address: None,
        reader_endpoint_address: None,
    });
    let sim = awsim::start("127.0.0.1:0".parse().unwrap(), scenario).await.unwrap();
    let config = aurora_failover_bot::aws::load_config(&AwsOverrides {
        endpoint_url: Some(sim.url().to_owned()),
        static_credentials: true,
        max_attempts: Some(3),
        attempt_timeout: None,
    })
    .await;
    let telemetry = Arc::new(Telemetry::new());
    (sim, Counted::new(RdsAurora::new(config), telemetry.clone()), telemetry)
}

fn secondary(id: &str, global: &str, kms_key_id: Option<String>) -> NewSecondary {
    NewSecondary {
        region: region(EAST),
        cluster_id: id.into(),
        global_cluster_id: global.into(),
        engine: "aurora-postgresql".into(),
        engine_version: "15.4".into(),
        db_subnet_group: Some("orders-east-subnets".into()),
        vpc_security_group_ids: vec!["sg-0east".into()],
        db_cluster_parameter_group: Some("orders-cluster-params".into()),
        kms_key_id,
        deletion_protection: true,
    }
}

fn instance(id: &str, cluster: &str) -> NewInstance {
    NewInstance {
        region: region(EAST),
        instance_id: id.into(),
        cluster_id: cluster.into(),
        engine: "aurora-postgresql".into(),
        instance_class: "db.r6g.xlarge".into(),
        db_parameter_group: Some("orders-params".into()),
        monitoring: Some((ROLE.into(), 60)),
    }
}

fn east_key() -> String {
    awsim::model::rds::region_key("123456789012", EAST)
}

/// Every call of a rebuild after a detach, in order, each waiting for what it needs: the spec of the
/// old primary, the global cluster from `orders-promoted`, the secondary (encrypted with its Region's key),
/// its instance (with Enhanced Monitoring), until the secondary replicates. For `iam_policy`.
pub(crate) async fn rebuild(rds: &Counted<RdsAurora>) {
    rds.cluster_spec(&region(EAST), "orders-east").await.unwrap();
    let promoted = rds.cluster(&region(WEST), "orders-promoted").await.unwrap();
    rds.create_global_cluster("orders-global-2", &promoted).await.unwrap();
    until("the global cluster", async || {
        rds.topology("orders-global-2", &[region(WEST)])
            .await
            .is_ok_and(|t| t.status == "available")
    })
    .await;
    rds.create_secondary(&secondary("orders-east-2", "orders-global-2", Some(east_key())))
        .await
        .unwrap();
    rds.create_instance(&instance("orders-east-2-1", "orders-east-2"))
        .await
        .unwrap();
    until("the instance", async || {
        rds.instance(&region(EAST), "orders-east-2-1")
            .await
            .unwrap()
            .is_some_and(|i| i.status == "available")
    })
    .await;
}

/// Polls `probe` every 50 ms until it holds, for at most 10 s.
async fn until(what: &str, mut probe: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !probe().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_spec_of_a_cluster_is_read_in_its_region_with_the_writer_first() {
    let (sim, rds, _) = world().await;
    let admin = sim.admin();
    admin
        .set_instance(
            EAST,
            "orders-east-1",
            awsim::InstancePatch {
                instance_class: Some("db.r6g.2xlarge".into()),
                db_parameter_group: Some("orders-params".into()),
                monitoring: Some(Some(awsim::Monitoring {
                    role_arn: ROLE.into(),
                    interval: 60,
                })),
            },
        )
        .unwrap();
    let spec = rds.cluster_spec(&region(EAST), "orders-east").await.unwrap();
    let seeded = admin.cluster(EAST, "orders-east").unwrap().settings;
    assert_eq!(spec.region, region(EAST));
    assert_eq!(
        (spec.engine.as_str(), spec.engine_version.as_str()),
        ("aurora-postgresql", "15.4")
    );
    assert_eq!(spec.db_subnet_group.as_deref(), Some(seeded.db_subnet_group.as_str()));
    assert_eq!(spec.vpc_security_group_ids, seeded.vpc_security_group_ids);
    assert_eq!(
        spec.db_cluster_parameter_group.as_deref(),
        Some(seeded.db_cluster_parameter_group.as_str())
    );
    assert!(spec.storage_encrypted);
    assert_eq!(spec.kms_key_id, Some(east_key()));
    assert!(!spec.deletion_protection);
    let ids: Vec<_> = spec.instances.iter().map(|i| i.instance_id.as_str()).collect();
    assert_eq!(ids, ["orders-east-1", "orders-east-2"], "the writer first");
    let writer = &spec.instances[0];
    assert_eq!(writer.instance_class, "db.r6g.2xlarge");
    assert_eq!(writer.db_parameter_group.as_deref(), Some("orders-params"));
    assert_eq!(writer.monitoring, Some((ROLE.to_owned(), 60)));
    assert_eq!(writer.status, "available");
    assert_eq!(spec.instances[1].monitoring, None);

    // A standalone cluster is read in its own Region only.
    let promoted = rds.cluster_spec(&region(WEST), "orders-promoted").await.unwrap();
    assert_eq!(promoted.instances.len(), 2);
    let err = rds.cluster_spec(&region(EAST), "orders-promoted").await.unwrap_err();
    assert_eq!(err.kind, AwsErrorKind::NotFound, "{err}");
    assert_eq!(rds.instance(&region(EAST), "nosuch").await.unwrap(), None);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_rebuild_creates_the_global_cluster_the_secondary_and_its_instance_each_once_in_its_region() {
    let (sim, rds, _) = world().await;
    let admin = sim.admin();
    let promoted = rds.cluster(&region(WEST), "orders-promoted").await.unwrap();
    rds.create_global_cluster("orders-global-2", &promoted).await.unwrap();
    until("the global cluster", async || {
        rds.topology("orders-global-2", &[region(EAST)])
            .await
            .is_ok_and(|t| t.status == "available")
    })
    .await;
    let t = rds.topology("orders-global-2", &[region(EAST)]).await.unwrap();
    assert_eq!(t.writer().unwrap().cluster_id, "orders-promoted");

    rds.create_secondary(&secondary("orders-east-2", "orders-global-2", Some(east_key())))
        .await
        .unwrap();
    let made = rds.cluster_spec(&region(EAST), "orders-east-2").await.unwrap();
    assert_eq!(made.db_subnet_group.as_deref(), Some("orders-east-subnets"));
    assert_eq!(made.vpc_security_group_ids, ["sg-0east"]);
    assert_eq!(
        made.db_cluster_parameter_group.as_deref(),
        Some("orders-cluster-params")
    );
    assert_eq!(
        (made.storage_encrypted, made.kms_key_id.clone()),
        (true, Some(east_key()))
    );
    assert!(made.deletion_protection && made.instances.is_empty());

    rds.create_instance(&instance("orders-east-2-1", "orders-east-2"))
        .await
        .unwrap();
    let i = rds.instance(&region(EAST), "orders-east-2-1").await.unwrap().unwrap();
    assert_eq!(i.status, "creating");
    assert_eq!(
        (i.instance_class.as_str(), i.monitoring.clone()),
        ("db.r6g.xlarge", Some((ROLE.to_owned(), 60)))
    );
    until("the secondary to replicate", async || {
        let t = rds.topology("orders-global-2", &[region(WEST)]).await.unwrap();
        t.member_in(&region(EAST)).and_then(|m| m.sync.as_deref()) == Some("connected")
    })
    .await;
    let i = rds.instance(&region(EAST), "orders-east-2-1").await.unwrap().unwrap();
    assert_eq!(i.status, "available");

    for (action, where_) in [
        ("CreateGlobalCluster", WEST),
        ("CreateDBCluster", EAST),
        ("CreateDBInstance", EAST),
    ] {
        let calls = admin.calls_to(action);
        assert_eq!(calls.len(), 1, "{action} exactly once");
        assert_eq!(calls[0].region, where_, "{action} in its Region");
    }
    let create = &admin.calls_to("CreateGlobalCluster")[0].params;
    assert_eq!(create["SourceDBClusterIdentifier"], promoted.arn);
    let cluster = &admin.calls_to("CreateDBCluster")[0].params;
    assert!(
        !cluster.contains_key("MasterUsername"),
        "a secondary has no master user"
    );
    assert_eq!(cluster["StorageEncrypted"], "true");
    sim.shutdown().await;
}

#[tokio::test]
async fn each_refusal_is_classified_for_the_engine() {
    let (sim, rds, telemetry) = world().await;
    let promoted = rds.cluster(&region(WEST), "orders-promoted").await.unwrap();
    let west_member = rds.cluster(&region(WEST), "orders-west").await.unwrap();
    // Identifiers taken: InvalidState, AWS's message kept.
    let err = rds.create_global_cluster("orders-global", &promoted).await.unwrap_err();
    assert_eq!(err.kind, AwsErrorKind::InvalidState, "{err}");
    assert!(err.message.starts_with("GlobalClusterAlreadyExistsFault"), "{err}");
    let err = rds
        .create_secondary(&secondary("orders-east", "orders-global", Some(east_key())))
        .await
        .unwrap_err();
    assert_eq!(err.kind, AwsErrorKind::InvalidState, "{err}");
    assert!(err.message.starts_with("DBClusterAlreadyExistsFault"), "{err}");
    let err = rds
        .create_instance(&instance("orders-east-1", "orders-east"))
        .await
        .unwrap_err();
    assert_eq!(err.kind, AwsErrorKind::InvalidState, "{err}");
    assert!(err.message.starts_with("DBInstanceAlreadyExists"), "{err}");
    // A source already in a global cluster.
    let err = rds.create_global_cluster("other", &west_member).await.unwrap_err();
    assert_eq!(err.kind, AwsErrorKind::InvalidState, "{err}");
    // Unknown global cluster and cluster: NotFound.
    let err = rds
        .create_secondary(&secondary("n", "nosuch", Some(east_key())))
        .await
        .unwrap_err();
    assert_eq!(err.kind, AwsErrorKind::NotFound, "{err}");
    let err = rds.create_instance(&instance("n", "nosuch")).await.unwrap_err();
    assert_eq!(err.kind, AwsErrorKind::NotFound, "{err}");
    // A cross-Region secondary of an encrypted primary with no key: a person must fix the config.
    rds.create_global_cluster("orders-global-2", &promoted).await.unwrap();
    until("the global cluster", async || {
        rds.topology("orders-global-2", &[region(WEST)])
            .await
            .is_ok_and(|t| t.status == "available")
    })
    .await;
    let err = rds
        .create_secondary(&secondary("n", "orders-global-2", None))
        .await
        .unwrap_err();
    assert_eq!(err.kind, AwsErrorKind::Other, "{err}");
    assert!(err.message.starts_with("InvalidParameterCombination"), "{err}");
    let metrics = telemetry.encode();
    assert!(
        metrics.contains(r#"action="rds:CreateDBCluster",code="InvalidParameterCombination"} 1"#),
        "counted: {metrics}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_create_is_sent_once_even_when_aws_fails_it_and_retries_are_on() {
    let (sim, rds, _) = world().await;
    let admin = sim.admin();
    for action in ["CreateGlobalCluster", "CreateDBCluster", "CreateDBInstance"] {
        admin
            .inject(FaultSpec {
                action: action.into(),
                region: None,
                error: Some(FaultCode::InternalFailure),
                delay_ms: None,
                delay_response_ms: None,
                count: Some(1),
            })
            .unwrap();
    }
    let promoted = rds.cluster(&region(WEST), "orders-promoted").await.unwrap();
    let err = rds
        .create_global_cluster("orders-global-2", &promoted)
        .await
        .unwrap_err();
    assert_eq!(err.kind, AwsErrorKind::Unavailable, "{err}");
    let err = rds
        .create_secondary(&secondary("n", "orders-global", Some(east_key())))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err}");
    let err = rds.create_instance(&instance("n", "orders-east")).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    for action in ["CreateGlobalCluster", "CreateDBCluster", "CreateDBInstance"] {
        assert_eq!(admin.calls_to(action).len(), 1, "{action} was not retried by the SDK");
    }
    // The reads are retried as usual.
    admin
        .inject(FaultSpec {
            action: "DescribeDBInstances".into(),
            region: None,
            error: Some(FaultCode::InternalFailure),
            delay_ms: None,
            delay_response_ms: None,
            count: Some(1),
        })
        .unwrap();
    assert!(rds.instance(&region(EAST), "orders-east-1").await.unwrap().is_some());
    assert_eq!(admin.calls_to("DescribeDBInstances").len(), 2);
    sim.shutdown().await;
}
