//! Reads everything the planner needs about a global cluster, concurrently and with bounded waits:
//! the topology (from the first Region that answers), each member's own description (in its Region),
//! each secondary's replication lag (from CloudWatch, in its Region), the hosted zone and every record
//! set at the two CNAMEs' names (Route 53), and, when asked, what IAM's policy simulator says about
//! the calls a failover would make.

use super::plan::{DnsTargets, Probed, Survey};
use crate::ports::{
    Aurora, AwsError, ClusterState, DatabaseProbe, Dns, Evaluation, Member, Metrics, PermissionQuery, Permissions,
    ProbeError, ProbeErrorKind, ProbeTarget, RecordSet, Topology, route53_name,
};
use crate::settings::ClusterSettings;
use crate::types::Region;
use futures::future::join_all;
use std::collections::HashMap;
use std::time::Duration;

/// How long one member's description or lag, or the permission check, may take before it counts as
/// unreadable.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The mutating RDS calls a run may make, one per mode.
pub const RDS_ACTIONS: [&str; 3] = [
    "rds:RemoveFromGlobalCluster",
    "rds:FailoverGlobalCluster",
    "rds:SwitchoverGlobalCluster",
];
pub const CHANGE_RECORDS: &str = "route53:ChangeResourceRecordSets";
pub const GET_CHANGE: &str = "route53:GetChange";

/// `arn:PARTITION:rds:REGION:ACCOUNT:...` → (partition, account).
fn partition_and_account(arn: &str) -> Option<(&str, &str)> {
    let parts: Vec<&str> = arn.split(':').collect();
    (parts.len() > 5).then(|| (parts[1], parts[4]))
}

/// The global cluster's ARN, from a member's (global clusters have no Region in their ARN).
pub fn global_cluster_arn(topology: &Topology) -> Option<String> {
    let (partition, account) = topology.members.first().and_then(|m| partition_and_account(&m.arn))?;
    Some(format!(
        "arn:{partition}:rds::{account}:global-cluster:{}",
        topology.global_cluster_id
    ))
}

/// The hosted zone's ARN.
pub fn zone_arn(topology: &Topology, zone_id: &str) -> String {
    let partition = topology
        .members
        .first()
        .and_then(|m| partition_and_account(&m.arn))
        .map_or("aws", |(p, _)| p);
    format!("arn:{partition}:route53:::hostedzone/{zone_id}")
}

/// The resource a GetChange is authorised on (change ids are not known in advance).
pub fn change_arn(topology: &Topology) -> String {
    let partition = topology
        .members
        .first()
        .and_then(|m| partition_and_account(&m.arn))
        .map_or("aws", |(p, _)| p);
    format!("arn:{partition}:route53:::change/*")
}

/// What to ask the simulator for a global cluster: every mutating RDS call on the global cluster and
/// every secondary (the plan picks the pairs of its mode and target), and the DNS change on the zone
/// with the condition keys a narrowed policy may test (the names, the type, the action).
pub fn permission_queries(c: &ClusterSettings, topology: &Topology) -> Vec<PermissionQuery> {
    let mut rds_resources: Vec<String> = global_cluster_arn(topology).into_iter().collect();
    rds_resources.extend(topology.secondaries().map(|m| m.arn.clone()));
    vec![
        PermissionQuery {
            actions: RDS_ACTIONS.iter().map(|a| (*a).to_owned()).collect(),
            resources: rds_resources,
            context: Vec::new(),
        },
        PermissionQuery {
            actions: vec![CHANGE_RECORDS.to_owned(), GET_CHANGE.to_owned()],
            resources: vec![zone_arn(topology, &c.hosted_zone_id), change_arn(topology)],
            context: vec![
                (
                    "route53:ChangeResourceRecordSetsNormalizedRecordNames".to_owned(),
                    [&c.writer_record, &c.reader_record]
                        .iter()
                        .map(|n| route53_name(n).trim_end_matches('.').to_owned())
                        .collect(),
                ),
                (
                    "route53:ChangeResourceRecordSetsRecordTypes".to_owned(),
                    vec!["CNAME".to_owned()],
                ),
                (
                    "route53:ChangeResourceRecordSetsActions".to_owned(),
                    vec!["UPSERT".to_owned()],
                ),
            ],
        },
    ]
}

/// Reads a global cluster for planning (`permissions`: also ask IAM's simulator) or for status.
pub async fn survey(
    aurora: &dyn Aurora,
    metrics: &dyn Metrics,
    dns: &dyn Dns,
    permissions: Option<&dyn Permissions>,
    c: &ClusterSettings,
) -> Result<Survey, AwsError> {
    let (topology, zone, records) = tokio::join!(
        aurora.topology(&c.global_cluster_id, &c.regions),
        dns.hosted_zone(&c.hosted_zone_id),
        records(dns, c)
    );
    let topology = topology?;
    let (states, lags, permissions) = tokio::join!(
        member_states(aurora, &topology),
        lags(metrics, &topology),
        simulate(permissions, c, &topology)
    );
    Ok(Survey {
        states,
        lags,
        dns: records.as_ref().map_err(ToString::to_string).map(cname_targets),
        zone,
        records,
        permissions,
        topology,
        probes: None,
    })
}

/// Every record set at the writer's and the reader's name, in that order.
async fn records(dns: &dyn Dns, c: &ClusterSettings) -> Result<[Vec<RecordSet>; 2], AwsError> {
    let (w, r) = tokio::join!(
        dns.records_at(&c.hosted_zone_id, &c.writer_record),
        dns.records_at(&c.hosted_zone_id, &c.reader_record)
    );
    Ok([w?, r?])
}

/// Where the writer's and the reader's plain CNAMEs point (`None` where there is none).
fn cname_targets([w, r]: &[Vec<RecordSet>; 2]) -> DnsTargets {
    let plain = |sets: &[RecordSet]| {
        sets.iter()
            .find(|s| s.is_plain_cname())
            .and_then(|s| s.values.first().cloned())
    };
    DnsTargets {
        writer: plain(w),
        reader: plain(r),
        unreadable: None,
    }
}

/// Each member's own description, read in its Region, by ARN.
async fn member_states(aurora: &dyn Aurora, topology: &Topology) -> HashMap<String, Result<ClusterState, String>> {
    join_all(topology.members.iter().map(|m| async move {
        let state = match tokio::time::timeout(READ_TIMEOUT, aurora.cluster(&m.region, &m.cluster_id)).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => Err(format!("{} did not answer in time", m.region)),
        };
        (m.arn.clone(), state)
    }))
    .await
    .into_iter()
    .collect()
}

/// Each secondary's replication lag behind the writer, by ARN.
async fn lags(metrics: &dyn Metrics, topology: &Topology) -> HashMap<String, Result<f64, String>> {
    let writer_region = topology.writer().map(|w| &w.region);
    join_all(topology.secondaries().map(|m| async move {
        let lag = match writer_region {
            None => Err("the global cluster has no writer to measure it against".to_owned()),
            Some(source) => lag(metrics, m, source).await,
        };
        (m.arn.clone(), lag)
    }))
    .await
    .into_iter()
    .collect()
}

/// One secondary's replication lag behind the writer in `source`, or why it is not known.
async fn lag(metrics: &dyn Metrics, m: &Member, source: &Region) -> Result<f64, String> {
    match tokio::time::timeout(READ_TIMEOUT, metrics.replication_lag_ms(m, source)).await {
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

/// What IAM's simulator says about the calls a failover of the cluster would make (`None`: not asked).
async fn simulate(
    permissions: Option<&dyn Permissions>,
    c: &ClusterSettings,
    topology: &Topology,
) -> Option<Result<Vec<Evaluation>, String>> {
    let permissions = permissions?;
    let queries = permission_queries(c, topology);
    Some(
        match tokio::time::timeout(READ_TIMEOUT, permissions.evaluate(&queries)).await {
            Ok(r) => r,
            Err(_) => Err("the policy simulator did not answer in time".to_owned()),
        },
    )
}

/// Probes each secondary's reader endpoint (its cluster endpoint when it has none) read-only, as
/// `[clusters.probe]` says, concurrently, each bounded by `READ_TIMEOUT`, into `survey.probes`
/// (planning only: status and the re-check do not probe). Nothing when the cluster has no probe.
pub async fn probe_secondaries(database: &dyn DatabaseProbe, c: &ClusterSettings, survey: &mut Survey) {
    let Some(probe) = &c.probe else { return };
    let targets: Vec<(String, ProbeTarget)> = survey
        .topology
        .secondaries()
        .filter_map(|m| {
            let state = survey.states.get(&m.arn)?.as_ref().ok()?;
            let endpoint = state.reader_endpoint.clone().or_else(|| state.endpoint.clone())?;
            Some((
                m.arn.clone(),
                ProbeTarget {
                    engine: probe.engine,
                    endpoint,
                    address: None,
                    port: state.port.unwrap_or(probe.engine.default_port()),
                    database: probe.database.clone(),
                    secret_id: probe.secret_id.clone(),
                    secret_region: probe.secret_region.clone(),
                    heartbeat: None,
                    check_heartbeat: probe.heartbeat_table.clone(),
                },
            ))
        })
        .collect();
    let probed = join_all(targets.into_iter().map(|(arn, target)| async move {
        let result = match tokio::time::timeout(READ_TIMEOUT, database.probe(&target)).await {
            Ok(r) => r,
            Err(_) => Err(ProbeError::new(
                ProbeErrorKind::Timeout,
                format!("no answer within {} s", READ_TIMEOUT.as_secs()),
            )),
        };
        if let Err(e) = &result {
            tracing::warn!(error = %e, endpoint = %target.endpoint, "the database probe before approval failed");
        }
        (
            arn,
            Probed {
                endpoint: target.endpoint,
                port: target.port,
                result,
            },
        )
    }))
    .await;
    survey.probes = Some(probed.into_iter().collect());
}
