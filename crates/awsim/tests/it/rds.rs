//! Aurora Global Database through the real aws-sdk-rds client: topology, detach, managed failover,
//! switchover, their refusals, events, and Region outages; and the creating calls of a rebuild
//! (CreateGlobalCluster, CreateDBCluster as a secondary, CreateDBInstance, DescribeDBInstances).

use crate::common;

use aws_sdk_rds::error::ProvideErrorMetadata;
use aws_sdk_rds::operation::create_db_cluster::builders::CreateDBClusterFluentBuilder;
use aws_sdk_rds::operation::describe_db_clusters::DescribeDBClustersError;
use aws_sdk_rds::operation::describe_global_clusters::DescribeGlobalClustersError;
use aws_sdk_rds::operation::failover_global_cluster::FailoverGlobalClusterError;
use aws_sdk_rds::operation::remove_from_global_cluster::RemoveFromGlobalClusterError;
use aws_sdk_rds::operation::switchover_global_cluster::SwitchoverGlobalClusterError;
use aws_sdk_rds::types::{DbCluster, GlobalCluster};
use awsim::{OutageMode, Scenario, Timings};
use common::{TestSim, wait_for, watch, watchable_timings};
use std::time::Duration;

const EAST: &str = "us-east-1";
const WEST: &str = "us-west-2";
const WAIT: Duration = Duration::from_secs(20);

async fn global(rds: &aws_sdk_rds::Client) -> GlobalCluster {
    let out = rds
        .describe_global_clusters()
        .global_cluster_identifier("orders-global")
        .send()
        .await
        .expect("DescribeGlobalClusters");
    let list = out.global_clusters();
    assert_eq!(
        list.len(),
        1,
        "the identifier filter returns exactly one global cluster"
    );
    list[0].clone()
}

async fn cluster(rds: &aws_sdk_rds::Client, id: &str) -> DbCluster {
    let out = rds
        .describe_db_clusters()
        .db_cluster_identifier(id)
        .send()
        .await
        .expect("DescribeDBClusters");
    out.db_clusters()[0].clone()
}

fn writer_count(c: &DbCluster) -> usize {
    c.db_cluster_members()
        .iter()
        .filter(|m| m.is_cluster_writer() == Some(true))
        .count()
}

fn arn(region: &str, id: &str) -> String {
    format!("arn:aws:rds:{region}:123456789012:cluster:{id}")
}

/// (arn, is_writer, synchronization status) of every member, sorted by ARN.
fn members(g: &GlobalCluster) -> Vec<(String, bool, Option<String>)> {
    let mut m: Vec<_> = g
        .global_cluster_members()
        .iter()
        .map(|m| {
            (
                m.db_cluster_arn().unwrap_or_default().to_owned(),
                m.is_writer() == Some(true),
                m.synchronization_status().map(|s| s.as_str().to_owned()),
            )
        })
        .collect();
    m.sort();
    m
}

fn failover_status(g: &GlobalCluster) -> Option<String> {
    g.failover_state()
        .and_then(|f| f.status())
        .map(|s| s.as_str().to_owned())
}

#[tokio::test]
async fn the_primary_has_exactly_one_writer_instance_and_the_secondary_none() {
    let t = TestSim::example(Timings::instant()).await;
    let east = cluster(&t.rds(EAST).await, "orders-east").await;
    let west = cluster(&t.rds(WEST).await, "orders-west").await;
    assert_eq!(east.status(), Some("available"));
    assert_eq!(writer_count(&east), 1);
    assert_eq!(east.db_cluster_members().len(), 2);
    assert_eq!(writer_count(&west), 0);
    assert_eq!(west.db_cluster_members().len(), 2);
    assert_eq!(east.db_cluster_arn(), Some(arn(EAST, "orders-east").as_str()));
    assert_eq!(east.global_cluster_identifier(), Some("orders-global"));
    assert!(east.endpoint().unwrap().starts_with("orders-east.cluster-"));
    assert!(east.reader_endpoint().unwrap().starts_with("orders-east.cluster-ro-"));
    assert!(west.endpoint().unwrap().ends_with(".us-west-2.rds.amazonaws.com"));

    let g = global(&t.rds(WEST).await).await;
    assert_eq!(g.status(), Some("available"));
    assert_eq!(g.engine_version(), Some("15.4"));
    assert!(g.failover_state().is_none());
    assert_eq!(
        members(&g),
        vec![
            (arn(EAST, "orders-east"), true, None),
            (arn(WEST, "orders-west"), false, Some("connected".into())),
        ]
    );
    let writer = g
        .global_cluster_members()
        .iter()
        .find(|m| m.is_writer() == Some(true))
        .unwrap();
    assert_eq!(writer.readers(), [arn(WEST, "orders-west")]);
}

#[tokio::test]
async fn clusters_are_regional_and_a_missing_one_is_a_typed_not_found_fault() {
    let t = TestSim::example(Timings::instant()).await;
    let east = t.rds(EAST).await;
    // The us-west-2 cluster is not visible through us-east-1, by identifier or by ARN.
    for id in ["orders-west".to_owned(), arn(WEST, "orders-west")] {
        let err = east
            .describe_db_clusters()
            .db_cluster_identifier(&id)
            .send()
            .await
            .unwrap_err();
        let err = err.into_service_error();
        assert!(
            matches!(err, DescribeDBClustersError::DbClusterNotFoundFault(_)),
            "{err:?}"
        );
    }
    // By ARN in its own Region it is found; listing a Region shows only that Region's clusters.
    let west = t.rds(WEST).await;
    let by_arn = west
        .describe_db_clusters()
        .db_cluster_identifier(arn(WEST, "orders-west"))
        .send()
        .await
        .unwrap();
    assert_eq!(by_arn.db_clusters()[0].db_cluster_identifier(), Some("orders-west"));
    let all = east.describe_db_clusters().send().await.unwrap();
    let ids: Vec<_> = all
        .db_clusters()
        .iter()
        .filter_map(|c| c.db_cluster_identifier())
        .collect();
    assert_eq!(ids, ["orders-east"]);
    // A Region with nothing in it answers with an empty list.
    let empty = t.rds("eu-west-1").await.describe_db_clusters().send().await.unwrap();
    assert!(empty.db_clusters().is_empty());
}

#[tokio::test]
async fn global_clusters_are_visible_from_every_region_and_the_identifier_filter_works() {
    let mut s = Scenario::two_region_example();
    let mut other = s.global_clusters[0].clone();
    other.id = "billing-global".into();
    for (m, id) in other.members.iter_mut().zip(["billing-east", "billing-west"]) {
        m.cluster_id = id.into();
        m.instances = vec![format!("{id}-1")];
    }
    s.global_clusters.push(other);
    s.timings = Timings::instant();
    let t = TestSim::start(s).await;
    for region in [EAST, WEST, "eu-west-1"] {
        let rds = t.rds(region).await;
        let all = rds.describe_global_clusters().send().await.unwrap();
        assert_eq!(all.global_clusters().len(), 2, "from {region}");
        let one = rds
            .describe_global_clusters()
            .global_cluster_identifier("billing-global")
            .send()
            .await
            .unwrap();
        let ids: Vec<_> = one
            .global_clusters()
            .iter()
            .filter_map(|g| g.global_cluster_identifier())
            .collect();
        assert_eq!(ids, ["billing-global"]);
    }
    let err = t
        .rds(EAST)
        .await
        .describe_global_clusters()
        .global_cluster_identifier("nope")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, DescribeGlobalClustersError::GlobalClusterNotFoundFault(_)),
        "{err:?}"
    );
}

#[tokio::test]
async fn detach_removes_the_member_at_once_and_promotes_it_through_promoting_to_a_writable_cluster() {
    let t = TestSim::example(watchable_timings()).await;
    let west = t.rds(WEST).await;
    let out = west
        .remove_from_global_cluster()
        .global_cluster_identifier("orders-global")
        .db_cluster_identifier(arn(WEST, "orders-west"))
        .send()
        .await
        .expect("RemoveFromGlobalCluster");
    // The member leaves the global cluster at once.
    let returned = out.global_cluster().unwrap();
    assert_eq!(members(returned), vec![(arn(EAST, "orders-east"), true, None)]);
    assert_eq!(
        members(&global(&west).await),
        vec![(arn(EAST, "orders-east"), true, None)]
    );

    let seen = watch(
        "the detached cluster to be available with a writer",
        WAIT,
        || async {
            let c = cluster(&west, "orders-west").await;
            (
                c.status().unwrap().to_owned(),
                writer_count(&c),
                c.global_cluster_identifier().map(str::to_owned),
            )
        },
        |(status, writers, _)| status == "available" && *writers == 1,
    )
    .await;
    assert_eq!(
        seen,
        vec![("promoting".to_owned(), 0, None), ("available".to_owned(), 1, None)],
        "status sequence of the detached cluster"
    );
    // The old primary is untouched: still available, still writable.
    let east = cluster(&t.rds(EAST).await, "orders-east").await;
    assert_eq!(east.status(), Some("available"));
    assert_eq!(writer_count(&east), 1);
}

#[tokio::test]
async fn remove_from_global_cluster_refuses_what_aws_refuses() {
    let t = TestSim::example(Timings::instant()).await;
    let west = t.rds(WEST).await;
    let east = t.rds(EAST).await;
    let remove = |client: &aws_sdk_rds::Client, g: &str, c: String| {
        client
            .remove_from_global_cluster()
            .global_cluster_identifier(g)
            .db_cluster_identifier(c)
            .send()
    };
    let err = remove(&west, "nope", arn(WEST, "orders-west"))
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, RemoveFromGlobalClusterError::GlobalClusterNotFoundFault(_)),
        "{err:?}"
    );
    let err = remove(&west, "orders-global", arn(WEST, "ghost"))
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, RemoveFromGlobalClusterError::DbClusterNotFoundFault(_)),
        "{err:?}"
    );
    // Sent to a Region other than the cluster's, the cluster is not found there.
    let err = remove(&east, "orders-global", arn(WEST, "orders-west"))
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, RemoveFromGlobalClusterError::DbClusterNotFoundFault(_)),
        "{err:?}"
    );
    // The primary cannot leave while it has secondaries.
    let err = remove(&east, "orders-global", arn(EAST, "orders-east"))
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, RemoveFromGlobalClusterError::InvalidGlobalClusterStateFault(_)),
        "{err:?}"
    );
    // Once removed, removing again says it is not in the global cluster.
    remove(&west, "orders-global", arn(WEST, "orders-west")).await.unwrap();
    let err = remove(&west, "orders-global", arn(WEST, "orders-west"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidParameterValue"));
    assert!(
        err.message().unwrap().contains("is not found in global cluster"),
        "{err:?}"
    );
    // Nothing but the one removal changed the topology.
    assert_eq!(
        members(&global(&east).await),
        vec![(arn(EAST, "orders-east"), true, None)]
    );
}

#[tokio::test]
async fn managed_failover_moves_through_its_states_and_the_old_primary_rejoins_as_a_secondary() {
    let t = TestSim::example(watchable_timings()).await;
    let west = t.rds(WEST).await;
    let out = west
        .failover_global_cluster()
        .global_cluster_identifier("orders-global")
        .target_db_cluster_identifier(arn(WEST, "orders-west"))
        .allow_data_loss(true)
        .send()
        .await
        .expect("FailoverGlobalCluster");
    let g = out.global_cluster().unwrap();
    assert_eq!(g.status(), Some("failing-over"));
    let state = g.failover_state().unwrap();
    assert_eq!(state.status().map(|s| s.as_str()), Some("pending"));
    assert_eq!(state.is_data_loss_allowed(), Some(true));
    assert_eq!(state.from_db_cluster_arn(), Some(arn(EAST, "orders-east").as_str()));
    assert_eq!(state.to_db_cluster_arn(), Some(arn(WEST, "orders-west").as_str()));

    let seen = watch(
        "the failover to finish",
        WAIT,
        || async { failover_status(&global(&west).await) },
        Option::is_none,
    )
    .await;
    assert_eq!(
        seen,
        vec![Some("pending".to_owned()), Some("failing-over".to_owned()), None]
    );
    // The target is the writer, with a writer instance.
    let g = global(&west).await;
    assert_eq!(g.status(), Some("available"));
    assert_eq!(writer_count(&cluster(&west, "orders-west").await), 1);
    // The old primary (its Region is up) rejoins as a secondary: pending-resync, then connected without
    // a writer instance.
    let seen = watch(
        "the old primary to rejoin",
        WAIT,
        || async { members(&global(&west).await) },
        |m| {
            m.iter()
                .any(|(a, w, s)| a == &arn(EAST, "orders-east") && !w && s.as_deref() == Some("connected"))
        },
    )
    .await;
    assert_eq!(
        seen.first().unwrap()[0],
        (arn(EAST, "orders-east"), false, Some("pending-resync".into()))
    );
    assert_eq!(writer_count(&cluster(&t.rds(EAST).await, "orders-east").await), 0);
    let ids: Vec<_> = t.admin().events().iter().map(|e| e.event_id).collect();
    assert_eq!(ids, ["RDS-EVENT-0238", "RDS-EVENT-0240", "RDS-EVENT-0241"]);
    // The point-of-failure snapshot of the old primary, in its Region.
    let snaps = t
        .rds(EAST)
        .await
        .describe_db_cluster_snapshots()
        .db_cluster_identifier("orders-east")
        .send()
        .await
        .unwrap();
    let names: Vec<_> = snaps
        .db_cluster_snapshots()
        .iter()
        .filter_map(|s| s.db_cluster_snapshot_identifier())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(
        names[0].starts_with("rds:unplanned-global-failover-orders-east-"),
        "{names:?}"
    );
    assert_eq!(snaps.db_cluster_snapshots()[0].snapshot_type(), Some("automated"));
    let none = t.rds(WEST).await.describe_db_cluster_snapshots().send().await.unwrap();
    assert!(none.db_cluster_snapshots().is_empty(), "snapshots are regional");
}

#[tokio::test]
async fn managed_failover_works_with_the_primary_region_down_and_the_old_primary_rejoins_when_it_returns() {
    let t = TestSim::example(watchable_timings()).await;
    t.admin().region_down(EAST, OutageMode::Reset).unwrap();
    let west = t.rds(WEST).await;
    west.failover_global_cluster()
        .global_cluster_identifier("orders-global")
        .target_db_cluster_identifier(arn(WEST, "orders-west"))
        .allow_data_loss(true)
        .send()
        .await
        .expect("a failover does not need the primary's Region");
    wait_for("the failover to finish", WAIT, || async {
        failover_status(&global(&west).await).is_none().then_some(())
    })
    .await;
    assert_eq!(writer_count(&cluster(&west, "orders-west").await), 1);
    // While us-east-1 is down the old primary stays out of sync, however long we wait.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let m = members(&global(&west).await);
    assert!(
        m.contains(&(arn(EAST, "orders-east"), false, Some("pending-resync".into()))),
        "{m:?}"
    );
    t.admin().region_up(EAST).unwrap();
    wait_for("the old primary to rejoin", WAIT, || async {
        members(&global(&west).await)
            .contains(&(arn(EAST, "orders-east"), false, Some("connected".into())))
            .then_some(())
    })
    .await;
    let east = cluster(&t.rds(EAST).await, "orders-east").await;
    assert_eq!(east.status(), Some("available"));
    assert_eq!(
        writer_count(&east),
        0,
        "the rejoined old primary has no writer instance"
    );
}

#[tokio::test]
async fn switchover_swaps_the_roles_and_takes_longer_the_larger_the_lag() {
    let mut timings = watchable_timings();
    timings.switchover_ms = 200;
    timings.pending_ms = 100;
    let t = TestSim::example(timings).await;
    let lag = Duration::from_millis(1_500);
    t.admin().set_replication_lag(WEST, "orders-west", lag).unwrap();
    let east = t.rds(EAST).await;
    let started = tokio::time::Instant::now();
    let out = east
        .switchover_global_cluster()
        .global_cluster_identifier("orders-global")
        .target_db_cluster_identifier(arn(WEST, "orders-west"))
        .send()
        .await
        .expect("SwitchoverGlobalCluster");
    let g = out.global_cluster().unwrap();
    assert_eq!(g.status(), Some("switching-over"));
    assert_eq!(g.failover_state().unwrap().is_data_loss_allowed(), Some(false));
    let seen = watch(
        "the switchover to finish",
        WAIT,
        || async { failover_status(&global(&east).await) },
        Option::is_none,
    )
    .await;
    let took = started.elapsed();
    assert_eq!(
        seen,
        vec![Some("pending".to_owned()), Some("switching-over".to_owned()), None]
    );
    // The target had to catch up first: the switchover cannot have finished before the lag passed.
    assert!(
        took >= lag + Duration::from_millis(300),
        "took {took:?} with a lag of {lag:?}"
    );
    assert_eq!(
        members(&global(&east).await),
        vec![
            (arn(EAST, "orders-east"), false, Some("connected".into())),
            (arn(WEST, "orders-west"), true, None),
        ]
    );
    assert_eq!(writer_count(&cluster(&east, "orders-east").await), 0);
    assert_eq!(writer_count(&cluster(&t.rds(WEST).await, "orders-west").await), 1);
    let ids: Vec<_> = t.admin().events().iter().map(|e| e.event_id).collect();
    assert_eq!(
        ids,
        [
            "RDS-EVENT-0181",
            "RDS-EVENT-0183",
            "RDS-EVENT-0182",
            "RDS-EVENT-0184",
            "RDS-EVENT-0185"
        ]
    );
}

#[tokio::test]
async fn switchover_is_refused_when_the_primary_region_is_down_or_the_primary_is_not_available() {
    let t = TestSim::example(Timings::instant()).await;
    let west = t.rds(WEST).await;
    let switch = || {
        west.switchover_global_cluster()
            .global_cluster_identifier("orders-global")
            .target_db_cluster_identifier(arn(WEST, "orders-west"))
            .send()
    };
    t.admin().region_down(EAST, OutageMode::Reset).unwrap();
    let err = switch().await.unwrap_err().into_service_error();
    assert!(
        matches!(err, SwitchoverGlobalClusterError::InvalidGlobalClusterStateFault(_)),
        "{err:?}"
    );
    assert!(err.message().unwrap().contains("unreachable"), "{err:?}");
    t.admin().region_up(EAST).unwrap();
    t.admin().set_cluster_status(EAST, "orders-east", "modifying").unwrap();
    let err = switch().await.unwrap_err().into_service_error();
    assert!(
        matches!(err, SwitchoverGlobalClusterError::InvalidDbClusterStateFault(_)),
        "{err:?}"
    );
    // Nothing started.
    assert!(global(&west).await.failover_state().is_none());
    assert!(t.admin().events().is_empty());
}

#[tokio::test]
async fn managed_operations_are_refused_when_major_or_minor_engine_versions_differ() {
    let mut s = Scenario::two_region_example();
    s.global_clusters[0].members[1].engine_version = Some("15.5".into());
    s.timings = Timings::instant();
    let t = TestSim::start(s).await;
    let west = t.rds(WEST).await;
    let err = west
        .switchover_global_cluster()
        .global_cluster_identifier("orders-global")
        .target_db_cluster_identifier(arn(WEST, "orders-west"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, SwitchoverGlobalClusterError::InvalidGlobalClusterStateFault(_)),
        "{err:?}"
    );
    assert!(err.message().unwrap().contains("15.5"), "{err:?}");
    let err = west
        .failover_global_cluster()
        .global_cluster_identifier("orders-global")
        .target_db_cluster_identifier(arn(WEST, "orders-west"))
        .allow_data_loss(true)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, FailoverGlobalClusterError::InvalidGlobalClusterStateFault(_)),
        "{err:?}"
    );
    // Detach still works across versions.
    west.remove_from_global_cluster()
        .global_cluster_identifier("orders-global")
        .db_cluster_identifier(arn(WEST, "orders-west"))
        .send()
        .await
        .expect("detach does not care about engine versions");
}

#[tokio::test]
async fn a_second_operation_is_refused_while_a_managed_one_is_in_progress() {
    let t = TestSim::example(watchable_timings()).await;
    let west = t.rds(WEST).await;
    west.failover_global_cluster()
        .global_cluster_identifier("orders-global")
        .target_db_cluster_identifier(arn(WEST, "orders-west"))
        .allow_data_loss(true)
        .send()
        .await
        .unwrap();
    let err = west
        .switchover_global_cluster()
        .global_cluster_identifier("orders-global")
        .target_db_cluster_identifier(arn(WEST, "orders-west"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, SwitchoverGlobalClusterError::InvalidGlobalClusterStateFault(_)),
        "{err:?}"
    );
    let err = west
        .failover_global_cluster()
        .global_cluster_identifier("orders-global")
        .target_db_cluster_identifier(arn(WEST, "orders-west"))
        .allow_data_loss(true)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, FailoverGlobalClusterError::InvalidGlobalClusterStateFault(_)),
        "{err:?}"
    );
    let err = west
        .remove_from_global_cluster()
        .global_cluster_identifier("orders-global")
        .db_cluster_identifier(arn(WEST, "orders-west"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, RemoveFromGlobalClusterError::InvalidGlobalClusterStateFault(_)),
        "{err:?}"
    );
    // The first operation is unaffected.
    let g = global(&west).await;
    assert_eq!(g.failover_state().unwrap().is_data_loss_allowed(), Some(true));
}

#[tokio::test]
async fn failover_global_cluster_parameters_follow_the_api_reference() {
    let t = TestSim::example(watchable_timings()).await;
    let west = t.rds(WEST).await;
    // AllowDataLoss and Switchover together are refused.
    let err = west
        .failover_global_cluster()
        .global_cluster_identifier("orders-global")
        .target_db_cluster_identifier(arn(WEST, "orders-west"))
        .allow_data_loss(true)
        .switchover(true)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidParameterCombination"));
    // The target must be a member; the target cannot be the primary already.
    let err = west
        .failover_global_cluster()
        .global_cluster_identifier("orders-global")
        .target_db_cluster_identifier(arn(WEST, "ghost"))
        .allow_data_loss(true)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, FailoverGlobalClusterError::DbClusterNotFoundFault(_)),
        "{err:?}"
    );
    let err = west
        .failover_global_cluster()
        .global_cluster_identifier("orders-global")
        .target_db_cluster_identifier(arn(EAST, "orders-east"))
        .allow_data_loss(true)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, FailoverGlobalClusterError::InvalidGlobalClusterStateFault(_)),
        "{err:?}"
    );
    // Without AllowDataLoss, FailoverGlobalCluster is a switchover.
    let out = west
        .failover_global_cluster()
        .global_cluster_identifier("orders-global")
        .target_db_cluster_identifier(arn(WEST, "orders-west"))
        .send()
        .await
        .unwrap();
    let g = out.global_cluster().unwrap();
    assert_eq!(g.status(), Some("switching-over"));
    assert_eq!(g.failover_state().unwrap().is_data_loss_allowed(), Some(false));
}

#[tokio::test]
async fn describe_events_returns_the_switchover_events_of_the_targets_region() {
    let mut timings = Timings::instant();
    timings.switchover_ms = 50;
    let t = TestSim::example(timings).await;
    let west = t.rds(WEST).await;
    west.switchover_global_cluster()
        .global_cluster_identifier("orders-global")
        .target_db_cluster_identifier(arn(WEST, "orders-west"))
        .send()
        .await
        .unwrap();
    wait_for("the switchover to finish", WAIT, || async {
        failover_status(&global(&west).await).is_none().then_some(())
    })
    .await;
    let out = west
        .describe_events()
        .source_type(aws_sdk_rds::types::SourceType::DbCluster)
        .source_identifier("orders-west")
        .event_categories("global-failover")
        .send()
        .await
        .unwrap();
    let messages: Vec<_> = out.events().iter().filter_map(|e| e.message()).collect();
    assert_eq!(messages.len(), 4, "{messages:?}");
    assert_eq!(
        messages[0],
        "Global switchover to DB cluster orders-west in Region us-west-2 started."
    );
    assert!(messages[1].starts_with("Waiting for data synchronization across global cluster members."));
    assert_eq!(
        messages[3],
        "Global switchover to DB cluster orders-west in Region us-west-2 finished."
    );
    for e in out.events() {
        assert_eq!(e.event_categories(), ["global-failover"]);
        assert_eq!(e.source_arn(), Some(arn(WEST, "orders-west").as_str()));
        assert!(e.date().is_some());
    }
    // The old primary's event is in its own Region.
    let east = t.rds(EAST).await.describe_events().send().await.unwrap();
    let east_messages: Vec<_> = east.events().iter().filter_map(|e| e.message()).collect();
    assert_eq!(
        east_messages,
        ["Old primary DB cluster orders-east in Region us-east-1 successfully shut down."]
    );
    // A window that ends before the events has none; a source identifier needs a source type.
    let none = west
        .describe_events()
        .end_time(aws_smithy_types::DateTime::from_secs(0))
        .send()
        .await
        .unwrap();
    assert!(none.events().is_empty());
    let err = west
        .describe_events()
        .source_identifier("orders-west")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidParameterCombination"));
}

#[tokio::test]
async fn a_switchover_is_cancelled_when_the_primary_region_goes_down_during_it() {
    let t = TestSim::example(watchable_timings()).await;
    let west = t.rds(WEST).await;
    west.switchover_global_cluster()
        .global_cluster_identifier("orders-global")
        .target_db_cluster_identifier(arn(WEST, "orders-west"))
        .send()
        .await
        .unwrap();
    t.admin().region_down(EAST, OutageMode::Reset).unwrap();
    let g = global(&west).await;
    assert!(g.failover_state().is_none());
    assert_eq!(
        members(&g)[0],
        (arn(EAST, "orders-east"), true, None),
        "roles unchanged"
    );
    let ids: Vec<_> = t.admin().events().iter().map(|e| e.event_id).collect();
    assert_eq!(ids, ["RDS-EVENT-0181", "RDS-EVENT-0186"]);
}

#[tokio::test]
async fn a_region_that_is_down_fails_its_calls_and_answers_again_when_it_returns() {
    let t = TestSim::example(Timings::instant()).await;
    let east = t.rds(EAST).await;
    let west = t.rds(WEST).await;
    // Reset: the connection closes without a response; the SDK reports a dispatch failure.
    t.admin().region_down(EAST, OutageMode::Reset).unwrap();
    let err = east.describe_db_clusters().send().await.unwrap_err();
    assert!(
        matches!(
            err,
            aws_sdk_rds::error::SdkError::DispatchFailure(_) | aws_sdk_rds::error::SdkError::ResponseError(_)
        ),
        "{err:?}"
    );
    // Other Regions still answer, and still see the global cluster.
    assert_eq!(global(&west).await.global_cluster_members().len(), 2);
    // Unavailable: HTTP 503 ServiceUnavailable.
    t.admin().region_down(EAST, OutageMode::Unavailable).unwrap();
    let err = east.describe_db_clusters().send().await.unwrap_err();
    assert_eq!(err.code(), Some("ServiceUnavailable"));
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(503));
    t.admin().region_up(EAST).unwrap();
    assert_eq!(cluster(&east, "orders-east").await.status(), Some("available"));
    let logged: Vec<_> = t
        .admin()
        .calls_to("DescribeDBClusters")
        .into_iter()
        .filter(|c| c.region == EAST)
        .map(|c| (c.status, c.error))
        .collect();
    assert_eq!(
        logged,
        vec![
            (0, Some("ConnectionReset".to_owned())),
            (503, Some("ServiceUnavailable".to_owned())),
            (200, None)
        ]
    );
}

#[tokio::test]
async fn a_managed_failover_fails_when_the_targets_region_goes_down_during_it() {
    let t = TestSim::example(watchable_timings()).await;
    let west = t.rds(WEST).await;
    west.failover_global_cluster()
        .global_cluster_identifier("orders-global")
        .target_db_cluster_identifier(arn(WEST, "orders-west"))
        .allow_data_loss(true)
        .send()
        .await
        .unwrap();
    t.admin().region_down(WEST, OutageMode::Reset).unwrap();
    let g = global(&t.rds(EAST).await).await;
    assert!(g.failover_state().is_none());
    assert_eq!(
        members(&g)[0],
        (arn(EAST, "orders-east"), true, None),
        "the primary stays the writer"
    );
    let ids: Vec<_> = t.admin().events().iter().map(|e| e.event_id).collect();
    assert_eq!(ids, ["RDS-EVENT-0239"]);
}

/// Waits until no managed operation is in progress.
async fn settled(rds: &aws_sdk_rds::Client) {
    watch(
        "the operation to finish",
        WAIT,
        || async { failover_status(&global(rds).await) },
        Option::is_none,
    )
    .await;
}

#[tokio::test]
async fn the_global_writer_endpoint_is_stable_and_moves_to_the_new_writer_on_switchover_and_failover() {
    let t = TestSim::example(Timings::instant()).await;
    let (east, west) = (t.rds(EAST).await, t.rds(WEST).await);
    let endpoint = global(&east).await.endpoint().unwrap().to_owned();
    assert!(
        endpoint.starts_with("orders-global.global-") && endpoint.ends_with(".global.rds.amazonaws.com"),
        "{endpoint}"
    );
    assert_eq!(
        global(&west).await.endpoint(),
        Some(endpoint.as_str()),
        "one endpoint, every Region"
    );
    let target = || t.admin().global_cluster("orders-global").unwrap().endpoint_target;
    assert_eq!(target(), Some(arn(EAST, "orders-east")));
    east.switchover_global_cluster()
        .global_cluster_identifier("orders-global")
        .target_db_cluster_identifier(arn(WEST, "orders-west"))
        .send()
        .await
        .expect("SwitchoverGlobalCluster");
    settled(&east).await;
    assert_eq!(target(), Some(arn(WEST, "orders-west")), "moved by the switchover");
    east.failover_global_cluster()
        .global_cluster_identifier("orders-global")
        .target_db_cluster_identifier(arn(EAST, "orders-east"))
        .allow_data_loss(true)
        .send()
        .await
        .expect("FailoverGlobalCluster");
    settled(&east).await;
    assert_eq!(target(), Some(arn(EAST, "orders-east")), "moved by the failover");
    assert_eq!(
        global(&east).await.endpoint(),
        Some(endpoint.as_str()),
        "the same name throughout"
    );
    // A detached cluster leaves the global cluster and its endpoint.
    wait_for("the old primary to rejoin", WAIT, || async {
        members(&global(&east).await)
            .iter()
            .all(|(_, _, sync)| sync.as_deref() != Some("pending-resync"))
            .then_some(())
    })
    .await;
    west.remove_from_global_cluster()
        .global_cluster_identifier("orders-global")
        .db_cluster_identifier(arn(WEST, "orders-west"))
        .send()
        .await
        .expect("RemoveFromGlobalCluster");
    assert_eq!(target(), Some(arn(EAST, "orders-east")));
    assert_eq!(cluster(&west, "orders-west").await.global_cluster_identifier(), None);
}

#[tokio::test]
async fn write_forwarding_comes_from_the_scenario_or_the_admin_and_shows_on_secondaries_only() {
    use aws_sdk_rds::types::WriteForwardingStatus;
    let mut s = Scenario::two_region_example();
    s.timings = Timings::instant();
    s.global_clusters[0].members[1].write_forwarding = awsim::WriteForwarding::Enabled;
    let t = TestSim::start(s).await;
    let (east, west) = (t.rds(EAST).await, t.rds(WEST).await);
    let forwarding = |c: DbCluster| c.global_write_forwarding_status().cloned();
    assert_eq!(
        forwarding(cluster(&west, "orders-west").await),
        Some(WriteForwardingStatus::Enabled)
    );
    assert_eq!(
        forwarding(cluster(&east, "orders-east").await),
        None,
        "not on the writer"
    );
    let member = |g: &GlobalCluster, id: &str| {
        g.global_cluster_members()
            .iter()
            .find(|m| m.db_cluster_arn().is_some_and(|a| a.ends_with(id)))
            .and_then(|m| m.global_write_forwarding_status().cloned())
    };
    assert_eq!(
        member(&global(&east).await, "orders-west"),
        Some(WriteForwardingStatus::Enabled)
    );
    t.admin()
        .set_write_forwarding(WEST, "orders-west", awsim::WriteForwarding::Disabling)
        .unwrap();
    assert_eq!(
        forwarding(cluster(&west, "orders-west").await),
        Some(WriteForwardingStatus::Disabling)
    );
    assert!(
        t.admin()
            .set_write_forwarding(WEST, "nope", awsim::WriteForwarding::Enabled)
            .is_err()
    );
    // Each cluster keeps its own setting: after a switchover the demoted primary shows its own.
    east.switchover_global_cluster()
        .global_cluster_identifier("orders-global")
        .target_db_cluster_identifier(arn(WEST, "orders-west"))
        .send()
        .await
        .expect("SwitchoverGlobalCluster");
    settled(&east).await;
    assert_eq!(
        forwarding(cluster(&east, "orders-east").await),
        Some(WriteForwardingStatus::Disabled)
    );
    assert_eq!(forwarding(cluster(&west, "orders-west").await), None);
}

// ---- the creating calls of a rebuild after a detach ----

/// The example world plus `promoted`, a standalone cluster in us-west-2 with one instance (what a
/// detach leaves behind).
async fn with_standalone(timings: Timings) -> TestSim {
    let mut s = Scenario::two_region_example();
    s.timings = timings;
    s.db_clusters.push(awsim::scenario::DbClusterSpec {
        region: WEST.into(),
        cluster_id: "promoted".into(),
        engine: "aurora-postgresql".into(),
        engine_version: "15.4".into(),
        instances: vec!["promoted-1".into()],
        port: None,
        endpoint_address: None,
        reader_endpoint_address: None,
    });
    TestSim::start(s).await
}

/// The seeded key of a Region (`awsim::model::rds::region_key`): where an encrypted secondary's key is.
fn region_key(region: &str) -> String {
    awsim::model::rds::region_key("123456789012", region)
}

async fn global_named(rds: &aws_sdk_rds::Client, id: &str) -> GlobalCluster {
    let out = rds
        .describe_global_clusters()
        .global_cluster_identifier(id)
        .send()
        .await
        .expect("DescribeGlobalClusters");
    out.global_clusters()[0].clone()
}

async fn create_rebuilt_global(west: &aws_sdk_rds::Client) {
    west.create_global_cluster()
        .global_cluster_identifier("orders-global-2")
        .source_db_cluster_identifier(arn(WEST, "promoted"))
        .send()
        .await
        .expect("CreateGlobalCluster");
}

/// CreateDBCluster of `id` in us-east-1 as a secondary of `global`, with the Region's key.
fn secondary_in_east(east: &aws_sdk_rds::Client, id: &str, global: &str) -> CreateDBClusterFluentBuilder {
    east.create_db_cluster()
        .db_cluster_identifier(id)
        .global_cluster_identifier(global)
        .engine("aurora-postgresql")
        .engine_version("15.4")
        .kms_key_id(region_key(EAST))
}

#[tokio::test]
async fn create_global_cluster_from_a_standalone_cluster_is_creating_then_available_with_the_source_as_writer() {
    let t = with_standalone(watchable_timings()).await;
    let west = t.rds(WEST).await;
    let out = west
        .create_global_cluster()
        .global_cluster_identifier("orders-global-2")
        .source_db_cluster_identifier(arn(WEST, "promoted"))
        .send()
        .await
        .expect("CreateGlobalCluster");
    let g = out.global_cluster().unwrap();
    assert_eq!(g.status(), Some("creating"));
    assert_eq!(g.engine(), Some("aurora-postgresql"));
    assert_eq!(g.engine_version(), Some("15.4"), "from the source");
    assert_eq!(g.storage_encrypted(), Some(true), "from the source");
    assert_eq!(members(g), vec![(arn(WEST, "promoted"), true, None)]);
    let seen = watch(
        "the new global cluster to be available",
        WAIT,
        || async {
            global_named(&west, "orders-global-2")
                .await
                .status()
                .unwrap()
                .to_owned()
        },
        |s| s == "available",
    )
    .await;
    assert_eq!(seen, ["creating", "available"]);
    // Seen from any Region, and the source knows its global cluster; it stays writable throughout.
    let g = global_named(&t.rds(EAST).await, "orders-global-2").await;
    assert_eq!(members(&g), vec![(arn(WEST, "promoted"), true, None)]);
    assert!(g.endpoint().unwrap().starts_with("orders-global-2.global-"));
    let source = cluster(&west, "promoted").await;
    assert_eq!(source.global_cluster_identifier(), Some("orders-global-2"));
    assert_eq!((source.status(), writer_count(&source)), (Some("available"), 1));
}

#[tokio::test]
async fn create_global_cluster_refuses_what_aws_refuses() {
    use aws_sdk_rds::operation::create_global_cluster::CreateGlobalClusterError as E;
    let t = with_standalone(Timings::instant()).await;
    let west = t.rds(WEST).await;
    let create = |id: &str, source: String| {
        west.create_global_cluster()
            .global_cluster_identifier(id)
            .source_db_cluster_identifier(source)
            .send()
    };
    let err = create("orders-global", arn(WEST, "promoted"))
        .await
        .unwrap_err()
        .into_service_error();
    assert!(matches!(err, E::GlobalClusterAlreadyExistsFault(_)), "{err:?}");
    let err = create("other", arn(WEST, "orders-west"))
        .await
        .unwrap_err()
        .into_service_error();
    assert!(matches!(err, E::InvalidDbClusterStateFault(_)), "{err:?}");
    assert!(
        err.message()
            .unwrap()
            .contains("already a member of global cluster orders-global")
    );
    let err = create("other", arn(WEST, "nosuch"))
        .await
        .unwrap_err()
        .into_service_error();
    assert!(matches!(err, E::DbClusterNotFoundFault(_)), "{err:?}");
    // Sent to the wrong Region: clusters are regional.
    let err = t
        .rds(EAST)
        .await
        .create_global_cluster()
        .global_cluster_identifier("other")
        .source_db_cluster_identifier(arn(WEST, "promoted"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(matches!(err, E::DbClusterNotFoundFault(_)), "{err:?}");
    // The engine comes from the source.
    let err = west
        .create_global_cluster()
        .global_cluster_identifier("other")
        .source_db_cluster_identifier(arn(WEST, "promoted"))
        .engine("aurora-postgresql")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidParameterCombination"));
    // A source that is not available yet (a detach still promoting it).
    t.admin().set_cluster_status(WEST, "promoted", "promoting").unwrap();
    let err = create("other", arn(WEST, "promoted"))
        .await
        .unwrap_err()
        .into_service_error();
    assert!(matches!(err, E::InvalidDbClusterStateFault(_)), "{err:?}");
    assert!(t.admin().global_cluster("other").is_none(), "nothing was created");
}

/// CreateDBInstance `orders-east-2-1` in `orders-east-2`: `creating`, then `available`.
async fn add_instance_and_watch_it_become_available(east: &aws_sdk_rds::Client) {
    let out = east
        .create_db_instance()
        .db_instance_identifier("orders-east-2-1")
        .db_cluster_identifier("orders-east-2")
        .engine("aurora-postgresql")
        .db_instance_class("db.r6g.xlarge")
        .db_parameter_group_name("orders-params")
        .send()
        .await
        .expect("CreateDBInstance");
    assert_eq!(out.db_instance().unwrap().db_instance_status(), Some("creating"));
    let instance = || async {
        let out = east
            .describe_db_instances()
            .db_instance_identifier("orders-east-2-1")
            .send()
            .await
            .expect("DescribeDBInstances");
        out.db_instances()[0].db_instance_status().unwrap().to_owned()
    };
    let seen = watch("the instance to be available", WAIT, instance, |s| s == "available").await;
    assert_eq!(seen, ["creating", "available"]);
}

#[tokio::test]
async fn a_new_secondary_is_creating_then_available_and_replicates_once_it_has_an_available_instance() {
    let t = with_standalone(watchable_timings()).await;
    let (west, east) = (t.rds(WEST).await, t.rds(EAST).await);
    create_rebuilt_global(&west).await;
    wait_for("the global cluster", WAIT, || async {
        (global_named(&west, "orders-global-2").await.status() == Some("available")).then_some(())
    })
    .await;
    let out = secondary_in_east(&east, "orders-east-2", "orders-global-2")
        .db_subnet_group_name("orders-subnets-east")
        .vpc_security_group_ids("sg-0east")
        .db_cluster_parameter_group_name("orders-cluster-params")
        .deletion_protection(true)
        .send()
        .await
        .expect("CreateDBCluster");
    let c = out.db_cluster().unwrap();
    assert_eq!(c.status(), Some("creating"));
    assert_eq!(c.global_cluster_identifier(), Some("orders-global-2"));
    assert_eq!(c.db_subnet_group(), Some("orders-subnets-east"));
    assert_eq!(c.db_cluster_parameter_group(), Some("orders-cluster-params"));
    assert_eq!(c.vpc_security_groups()[0].vpc_security_group_id(), Some("sg-0east"));
    assert_eq!(
        (c.storage_encrypted(), c.kms_key_id()),
        (Some(true), Some(region_key(EAST).as_str()))
    );
    assert_eq!(c.deletion_protection(), Some(true));
    assert!(c.db_cluster_members().is_empty(), "no instance, so no reader");
    let sync = || async {
        let g = global_named(&west, "orders-global-2").await;
        let c = cluster(&east, "orders-east-2").await;
        let m = members(&g)
            .into_iter()
            .find(|m| m.0 == arn(EAST, "orders-east-2"))
            .unwrap();
        (c.status().unwrap().to_owned(), m.1, m.2.unwrap_or_default())
    };
    let seen = watch("the secondary to be available", WAIT, sync, |s| s.0 == "available").await;
    assert_eq!(
        seen,
        [
            ("creating".to_owned(), false, "pending-resync".to_owned()),
            ("available".to_owned(), false, "pending-resync".to_owned())
        ],
        "available with no instance is not yet replicating"
    );
    add_instance_and_watch_it_become_available(&east).await;
    assert_eq!(sync().await, ("available".to_owned(), false, "connected".to_owned()));
    let c = cluster(&east, "orders-east-2").await;
    assert_eq!(
        (c.db_cluster_members().len(), writer_count(&c)),
        (1, 0),
        "a reader, never a writer"
    );
}

#[tokio::test]
async fn create_db_cluster_refuses_what_aws_refuses() {
    use aws_sdk_rds::operation::create_db_cluster::CreateDBClusterError as E;
    let t = with_standalone(Timings {
        create_global_ms: 60_000,
        ..Timings::instant()
    })
    .await;
    let (west, east) = (t.rds(WEST).await, t.rds(EAST).await);
    let refused = |b: CreateDBClusterFluentBuilder| async move { b.send().await.unwrap_err().into_service_error() };
    // The global cluster is still creating.
    create_rebuilt_global(&west).await;
    let err = refused(secondary_in_east(&east, "n", "orders-global-2")).await;
    assert!(matches!(err, E::InvalidGlobalClusterStateFault(_)), "{err:?}");
    let err = refused(secondary_in_east(&east, "orders-east", "orders-global")).await;
    assert!(matches!(err, E::DbClusterAlreadyExistsFault(_)), "{err:?}");
    let err = refused(secondary_in_east(&east, "n", "nosuch")).await;
    assert!(matches!(err, E::GlobalClusterNotFoundFault(_)), "{err:?}");
    // orders-global already has its member in us-east-1.
    let err = refused(secondary_in_east(&east, "n", "orders-global")).await;
    assert!(matches!(err, E::InvalidGlobalClusterStateFault(_)), "{err:?}");
    // An encrypted primary's cross-Region secondary must name a key of its own Region.
    let eu = t.rds("eu-west-1").await;
    let no_key = eu
        .create_db_cluster()
        .db_cluster_identifier("n")
        .global_cluster_identifier("orders-global")
        .engine("aurora-postgresql");
    let err = refused(no_key).await;
    assert_eq!(err.code(), Some("InvalidParameterCombination"));
    assert!(
        err.message()
            .unwrap()
            .contains("kmsKeyId should be explicitly specified")
    );
    // Engine and version must be the global cluster's.
    let err = refused(secondary_in_east(&eu, "n", "orders-global").engine("aurora-mysql")).await;
    assert_eq!(err.code(), Some("InvalidParameterCombination"));
    let err = refused(secondary_in_east(&eu, "n", "orders-global").engine_version("16.1")).await;
    assert_eq!(err.code(), Some("InvalidParameterCombination"));
    assert!(t.admin().cluster("eu-west-1", "n").is_none() && t.admin().cluster(EAST, "n").is_none());
}

#[tokio::test]
async fn create_db_instance_and_describe_db_instances_refuse_what_aws_refuses() {
    use aws_sdk_rds::operation::create_db_instance::CreateDBInstanceError as E;
    use aws_sdk_rds::operation::describe_db_instances::DescribeDBInstancesError as D;
    let t = with_standalone(Timings::instant()).await;
    let west = t.rds(WEST).await;
    let create = |id: &str, cluster: &str| {
        west.create_db_instance()
            .db_instance_identifier(id)
            .db_cluster_identifier(cluster)
            .engine("aurora-postgresql")
            .db_instance_class("db.r6g.large")
    };
    let err = create("orders-west-1", "promoted")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(matches!(err, E::DbInstanceAlreadyExistsFault(_)), "{err:?}");
    let err = create("n", "nosuch").send().await.unwrap_err().into_service_error();
    assert!(matches!(err, E::DbClusterNotFoundFault(_)), "{err:?}");
    let err = create("n", "promoted")
        .monitoring_interval(60)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidParameterCombination"));
    let err = create("n", "promoted").engine("aurora-mysql").send().await.unwrap_err();
    assert_eq!(err.code(), Some("InvalidParameterCombination"));
    let err = west
        .describe_db_instances()
        .db_instance_identifier("n")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(matches!(err, D::DbInstanceNotFoundFault(_)), "{err:?}");
    assert_eq!(err.message(), Some("DBInstance n not found."));
    // With Enhanced Monitoring, as DescribeDBInstances shows it.
    let role = "arn:aws:iam::123456789012:role/rds-monitoring-role";
    create("n", "promoted")
        .monitoring_role_arn(role)
        .monitoring_interval(30)
        .send()
        .await
        .expect("CreateDBInstance");
    let out = west
        .describe_db_instances()
        .db_instance_identifier("n")
        .send()
        .await
        .unwrap();
    let i = &out.db_instances()[0];
    assert_eq!(
        (i.monitoring_role_arn(), i.monitoring_interval()),
        (Some(role), Some(30))
    );
    assert_eq!(i.db_cluster_identifier(), Some("promoted"));
}

#[tokio::test]
async fn seeded_clusters_and_instances_have_plausible_settings() {
    let t = with_standalone(Timings::instant()).await;
    let east = t.rds(EAST).await;
    let c = cluster(&east, "orders-east").await;
    assert_eq!(c.db_subnet_group(), Some("orders-east-subnets"));
    assert_eq!(c.db_cluster_parameter_group(), Some("default.aurora-postgresql15"));
    assert!(
        c.vpc_security_groups()[0]
            .vpc_security_group_id()
            .unwrap()
            .starts_with("sg-")
    );
    assert_eq!(
        (c.storage_encrypted(), c.kms_key_id()),
        (Some(true), Some(region_key(EAST).as_str()))
    );
    assert_eq!(c.deletion_protection(), Some(false));
    let filtered = east
        .describe_db_instances()
        .filters(
            aws_sdk_rds::types::Filter::builder()
                .name("db-cluster-id")
                .values("orders-east")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let ids: Vec<_> = filtered
        .db_instances()
        .iter()
        .map(|i| i.db_instance_identifier().unwrap())
        .collect();
    assert_eq!(ids, ["orders-east-1", "orders-east-2"]);
    let i = &filtered.db_instances()[0];
    assert_eq!(i.db_instance_class(), Some("db.r6g.large"));
    assert_eq!(i.db_instance_status(), Some("available"));
    assert_eq!(i.monitoring_interval(), Some(0));
}

#[tokio::test]
async fn the_admin_http_api_changes_what_a_rebuild_copies() {
    let t = with_standalone(Timings::instant()).await;
    let east = t.rds(EAST).await;
    let http = reqwest::Client::new();
    let url = |p: &str| format!("{}/_awsim/{p}", t.sim.url());
    let put = |p: &str, body: serde_json::Value| http.put(url(p)).json(&body).send();
    let r = put(
        "clusters/us-east-1/orders-east/settings",
        serde_json::json!({"db_subnet_group": "custom", "kms_key_id": null, "deletion_protection": true}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let role = "arn:aws:iam::123456789012:role/rds-monitoring-role";
    let body =
        serde_json::json!({"instance_class": "db.r7g.2xlarge", "monitoring": {"role_arn": role, "interval": 60}});
    assert_eq!(
        put("instances/us-east-1/orders-east-1", body).await.unwrap().status(),
        200
    );
    let r = put("instances/us-east-1/nosuch", serde_json::json!({})).await.unwrap();
    assert_eq!(r.status(), 404);
    let c = cluster(&east, "orders-east").await;
    assert_eq!(c.db_subnet_group(), Some("custom"));
    assert_eq!((c.storage_encrypted(), c.kms_key_id()), (Some(false), None));
    assert_eq!(c.deletion_protection(), Some(true));
    let i = t.admin().instance(EAST, "orders-east-1").unwrap();
    assert_eq!(i.instance_class, "db.r7g.2xlarge");
    assert_eq!(
        (i.monitoring_role_arn.as_deref(), i.monitoring_interval),
        (Some(role), 60)
    );
}

#[tokio::test]
async fn a_held_create_answer_still_creates_and_the_call_log_records_each_create_once() {
    let t = with_standalone(Timings::instant()).await;
    t.admin()
        .inject(awsim::FaultSpec {
            action: "CreateGlobalCluster".into(),
            region: None,
            error: None,
            delay_ms: None,
            delay_response_ms: Some(60_000),
            count: Some(1),
        })
        .unwrap();
    let west = t.rds(WEST).await;
    // The caller gives up (or dies) while the answer is held: the global cluster exists anyway.
    let call = tokio::time::timeout(Duration::from_millis(500), create_rebuilt_global(&west)).await;
    assert!(call.is_err(), "the answer is held");
    assert!(t.admin().global_cluster("orders-global-2").is_some());
    let calls = t.admin().calls_to("CreateGlobalCluster");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].params["SourceDBClusterIdentifier"], arn(WEST, "promoted"));
    assert_eq!(calls[0].params["GlobalClusterIdentifier"], "orders-global-2");
    assert_eq!(calls[0].region, WEST);
}
