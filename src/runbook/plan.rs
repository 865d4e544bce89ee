//! The plan an approver sees, made from the topology when the request is made, and checked again
//! right before the first mutating call (the cluster may have changed while waiting for approval).

use crate::ports::{ClusterState, Member, Topology};
use crate::settings::ClusterSettings;
use crate::types::{ClusterName, Mode, Region};
use serde::{Deserialize, Serialize};

/// What a run will do, fixed at request time and stored with the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub cluster: ClusterName,
    pub global_cluster_id: String,
    pub mode: Mode,
    /// The writer when the plan was made.
    pub from: Member,
    /// The secondary that becomes the writer.
    pub to: Member,
    pub zone_id: String,
    pub writer_record: String,
    pub reader_record: String,
    pub record_ttl: i64,
    /// Configured Regions of the global cluster (reads fall back across them).
    pub regions: Vec<Region>,
    /// Where the CNAMEs pointed when the plan was made.
    pub dns_before: DnsTargets,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsTargets {
    pub writer: Option<String>,
    pub reader: Option<String>,
}

impl Plan {
    /// The steps, in words, for the approval request.
    pub fn steps(&self) -> Vec<String> {
        vec![
            format!(
                "Re-check that {} ({}) is still the writer and {} ({}) still an available secondary",
                self.from.cluster_id, self.from.region, self.to.cluster_id, self.to.region
            ),
            format!(
                "Detach {} from {} (RemoveFromGlobalCluster in {}) and let it promote",
                self.to.cluster_id, self.global_cluster_id, self.to.region
            ),
            format!("Wait until {} is available with a writer instance", self.to.cluster_id),
            format!(
                "UPSERT {} and {} (TTL {}s) to its cluster and reader endpoints, in one change",
                self.writer_record, self.reader_record, self.record_ttl
            ),
            "Wait until Route 53 reports the change INSYNC".to_owned(),
            "Read both records back and verify them".to_owned(),
        ]
    }
}

/// Why no plan could be made; shown to the requester.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("global cluster {0} has no writer member right now, so there is nothing to fail over from")]
    NoWriter(String),
    #[error("a managed failover or switchover is already in progress on {global} (state: {state})")]
    OperationInProgress { global: String, state: String },
    #[error("{region} is not a Region of {global}'s members ({members})")]
    NotAMember {
        region: Region,
        global: String,
        members: String,
    },
    #[error("{region} already holds the writer of {global}")]
    AlreadyWriter { region: Region, global: String },
    #[error("{0} has no secondary to fail over to")]
    NoSecondary(String),
    #[error("{global} has several secondaries ({regions}): say which with --to")]
    Ambiguous { global: String, regions: String },
    #[error("the target {cluster} in {region} cannot take over: {reason}")]
    TargetUnfit {
        cluster: String,
        region: Region,
        reason: String,
    },
    #[error("{0}")]
    DnsElsewhere(String),
}

/// Whether a CNAME value is one of `member`'s endpoints (cluster, reader or custom: they all start with
/// `{cluster id}.cluster-`), or a global writer endpoint (which follows the writer by itself).
pub fn points_at(value: &str, member: &Member) -> bool {
    let v = value.trim_end_matches('.').to_ascii_lowercase();
    v.starts_with(&format!("{}.cluster-", member.cluster_id.to_ascii_lowercase()))
        || v.ends_with(".global.rds.amazonaws.com")
}

/// Refuses a plan whose writer CNAME points somewhere other than the writer it moves writes from: the
/// application is writing elsewhere (typically to a cluster detached earlier), and repointing the
/// CNAME would cut those writes off.
pub fn check_writer_cname(record: &str, value: Option<&str>, from: &Member) -> Result<(), String> {
    match value {
        Some(v) if !points_at(v, from) => Err(format!(
            "the writer CNAME {record} points at {v}, not at {} (the global cluster's writer): the application writes \
             somewhere else, perhaps to a cluster detached earlier, and moving the CNAME now would cut those writes off. \
             Sort out DNS or the topology first, then ask again",
            from.cluster_id
        )),
        _ => Ok(()),
    }
}

/// Makes the plan for moving `cluster`'s writer to `to` (or to its only secondary).
pub fn make_plan(
    cluster: &ClusterSettings,
    topology: &Topology,
    to: Option<&Region>,
    mode: Mode,
    dns_before: DnsTargets,
) -> Result<Plan, PlanError> {
    let global = topology.global_cluster_id.clone();
    if let Some(state) = &topology.operation_in_progress {
        return Err(PlanError::OperationInProgress {
            global,
            state: state.clone(),
        });
    }
    let from = topology
        .writer()
        .ok_or_else(|| PlanError::NoWriter(global.clone()))?
        .clone();
    let target = match to {
        Some(region) => {
            let m = topology.member_in(region).ok_or_else(|| PlanError::NotAMember {
                region: region.clone(),
                global: global.clone(),
                members: topology
                    .members
                    .iter()
                    .map(|m| m.region.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
            if m.is_writer {
                return Err(PlanError::AlreadyWriter {
                    region: region.clone(),
                    global,
                });
            }
            m.clone()
        }
        None => {
            let secondaries: Vec<&Member> = topology.secondaries().collect();
            match secondaries.as_slice() {
                [] => return Err(PlanError::NoSecondary(global)),
                [only] => (*only).clone(),
                many => {
                    return Err(PlanError::Ambiguous {
                        global,
                        regions: many.iter().map(|m| m.region.as_str()).collect::<Vec<_>>().join(", "),
                    });
                }
            }
        }
    };
    check_writer_cname(&cluster.writer_record, dns_before.writer.as_deref(), &from).map_err(PlanError::DnsElsewhere)?;
    Ok(Plan {
        cluster: cluster.name.clone(),
        global_cluster_id: global,
        mode,
        from,
        to: target,
        zone_id: cluster.hosted_zone_id.clone(),
        writer_record: cluster.writer_record.clone(),
        reader_record: cluster.reader_record.clone(),
        record_ttl: cluster.record_ttl,
        regions: cluster.regions.clone(),
        dns_before,
    })
}

/// Why the target cannot take over, judged from its own description; `None` when it can.
pub fn unfit(target: &ClusterState) -> Option<String> {
    if target.status != "available" {
        return Some(format!("its status is {}, not available", target.status));
    }
    if target.instances == 0 {
        return Some("it has no DB instance, so it could never take writes".to_owned());
    }
    None
}

/// Re-checks the plan against the topology and the target as they are now. `Err` says what changed.
pub fn recheck(plan: &Plan, topology: &Topology, target: &ClusterState) -> Result<(), String> {
    if let Some(state) = &topology.operation_in_progress {
        return Err(format!(
            "a managed failover or switchover is in progress on {} ({state})",
            plan.global_cluster_id
        ));
    }
    match topology.writer() {
        None => return Err(format!("{} has no writer now", plan.global_cluster_id)),
        Some(w) if w.arn != plan.from.arn => {
            return Err(format!(
                "the writer is now {} in {}, not {} in {} as planned: someone moved it since the request",
                w.cluster_id, w.region, plan.from.cluster_id, plan.from.region
            ));
        }
        Some(_) => {}
    }
    match topology.members.iter().find(|m| m.arn == plan.to.arn) {
        None => {
            return Err(format!(
                "{} is no longer a member of {}",
                plan.to.cluster_id, plan.global_cluster_id
            ));
        }
        Some(m) if m.is_writer => {
            return Err(format!("{} is already the writer", plan.to.cluster_id));
        }
        Some(_) => {}
    }
    if let Some(reason) = unfit(target) {
        return Err(format!("{} cannot take over: {reason}", plan.to.cluster_id));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(region: &str, id: &str, writer: bool) -> Member {
        Member {
            region: Region::parse(region).unwrap(),
            cluster_id: id.into(),
            arn: format!("arn:aws:rds:{region}:123456789012:cluster:{id}"),
            is_writer: writer,
            sync: (!writer).then(|| "connected".to_owned()),
        }
    }

    fn topology(members: Vec<Member>) -> Topology {
        Topology {
            global_cluster_id: "orders-global".into(),
            status: "available".into(),
            engine_version: "15.4".into(),
            members,
            operation_in_progress: None,
        }
    }

    fn settings() -> ClusterSettings {
        ClusterSettings {
            name: ClusterName::parse("orders").unwrap(),
            global_cluster_id: "orders-global".into(),
            regions: vec![Region::parse("us-east-1").unwrap(), Region::parse("us-west-2").unwrap()],
            hosted_zone_id: "Z1".into(),
            writer_record: "w.zone".into(),
            reader_record: "r.zone".into(),
            record_ttl: 1,
        }
    }

    fn target_state(status: &str, instances: usize) -> ClusterState {
        ClusterState {
            region: Region::parse("us-west-2").unwrap(),
            cluster_id: "west".into(),
            arn: "arn:aws:rds:us-west-2:123456789012:cluster:west".into(),
            status: status.into(),
            engine_version: "15.4".into(),
            has_writer: false,
            instances,
            endpoint: None,
            reader_endpoint: None,
            global_cluster_id: Some("orders-global".into()),
        }
    }

    #[test]
    fn the_only_secondary_is_the_default_target() {
        let t = topology(vec![
            member("us-east-1", "east", true),
            member("us-west-2", "west", false),
        ]);
        let p = make_plan(&settings(), &t, None, Mode::Detach, DnsTargets::default()).unwrap();
        assert_eq!(p.from.cluster_id, "east");
        assert_eq!(p.to.cluster_id, "west");
        assert_eq!(p.steps().len(), 6);
    }

    #[test]
    fn targets_are_refused_with_the_reason() {
        let two = vec![
            member("us-east-1", "east", true),
            member("us-west-2", "west", false),
            member("eu-west-1", "eu", false),
        ];
        let t = topology(two);
        let e = make_plan(&settings(), &t, None, Mode::Detach, DnsTargets::default()).unwrap_err();
        assert!(matches!(e, PlanError::Ambiguous { .. }), "{e}");
        let east = Region::parse("us-east-1").unwrap();
        let e = make_plan(&settings(), &t, Some(&east), Mode::Detach, DnsTargets::default()).unwrap_err();
        assert!(matches!(e, PlanError::AlreadyWriter { .. }), "{e}");
        let ap = Region::parse("ap-south-1").unwrap();
        let e = make_plan(&settings(), &t, Some(&ap), Mode::Detach, DnsTargets::default()).unwrap_err();
        assert!(e.to_string().contains("us-east-1, us-west-2, eu-west-1"), "{e}");
        let mut busy = topology(vec![
            member("us-east-1", "east", true),
            member("us-west-2", "west", false),
        ]);
        busy.operation_in_progress = Some("switching-over".into());
        assert!(matches!(
            make_plan(&settings(), &busy, None, Mode::Detach, DnsTargets::default()),
            Err(PlanError::OperationInProgress { .. })
        ));
        let alone = topology(vec![member("us-east-1", "east", true)]);
        assert!(matches!(
            make_plan(&settings(), &alone, None, Mode::Detach, DnsTargets::default()),
            Err(PlanError::NoSecondary(_))
        ));
    }

    #[test]
    fn a_writer_cname_pointing_away_from_the_writer_stops_the_plan() {
        let t = topology(vec![
            member("us-east-1", "east", true),
            member("us-west-2", "west", false),
        ]);
        let dns = |w: &str| DnsTargets {
            writer: Some(w.to_owned()),
            reader: None,
        };
        assert!(
            make_plan(
                &settings(),
                &t,
                None,
                Mode::Detach,
                dns("east.cluster-abc.us-east-1.rds.amazonaws.com")
            )
            .is_ok()
        );
        assert!(
            make_plan(
                &settings(),
                &t,
                None,
                Mode::Detach,
                dns("orders.global-xyz.global.rds.amazonaws.com.")
            )
            .is_ok()
        );
        let e = make_plan(
            &settings(),
            &t,
            None,
            Mode::Detach,
            dns("west.cluster-abc.us-west-2.rds.amazonaws.com"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("points at west.cluster-abc") && e.contains("cut those writes off"),
            "{e}"
        );
    }

    #[test]
    fn the_recheck_catches_every_change_since_the_plan() {
        let t = topology(vec![
            member("us-east-1", "east", true),
            member("us-west-2", "west", false),
        ]);
        let plan = make_plan(&settings(), &t, None, Mode::Detach, DnsTargets::default()).unwrap();
        assert_eq!(recheck(&plan, &t, &target_state("available", 2)), Ok(()));
        // Someone switched over by hand.
        let swapped = topology(vec![
            member("us-east-1", "east", false),
            member("us-west-2", "west", true),
        ]);
        assert!(
            recheck(&plan, &swapped, &target_state("available", 2))
                .unwrap_err()
                .contains("writer is now west")
        );
        // The target was removed.
        let gone = topology(vec![member("us-east-1", "east", true)]);
        assert!(
            recheck(&plan, &gone, &target_state("available", 2))
                .unwrap_err()
                .contains("no longer a member")
        );
        // The target is busy or headless.
        assert!(
            recheck(&plan, &t, &target_state("modifying", 2))
                .unwrap_err()
                .contains("modifying")
        );
        assert!(
            recheck(&plan, &t, &target_state("available", 0))
                .unwrap_err()
                .contains("no DB instance")
        );
        let mut busy = t.clone();
        busy.operation_in_progress = Some("pending".into());
        assert!(
            recheck(&plan, &busy, &target_state("available", 2))
                .unwrap_err()
                .contains("in progress")
        );
    }
}
