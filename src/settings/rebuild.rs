//! `[clusters.rebuild.REGION]`: what `/aurora rebuild CLUSTER --in REGION` gives its new secondary in
//! place of the old primary's settings there (each key optional; a key set here wins over the old
//! primary's value). The identifiers are RDS's names in that Region (CreateDBCluster,
//! CreateDBInstance, RDS API reference).

use super::{ConfigError, invalid};
use crate::types::Region;
use serde::Deserialize;
use std::collections::BTreeMap;

/// Most instances a rebuild gives its secondary (Aurora's limit per cluster is 16: one writer and 15
/// readers; a secondary has no writer).
const MAX_INSTANCES: u64 = 15;
/// The Enhanced Monitoring intervals RDS accepts, in seconds.
const MONITORING_INTERVALS: [u64; 6] = [1, 5, 10, 15, 30, 60];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRebuild {
    db_subnet_group: Option<String>,
    vpc_security_group_ids: Option<Vec<String>>,
    db_cluster_parameter_group: Option<String>,
    kms_key_id: Option<String>,
    instance_class: Option<String>,
    db_parameter_group: Option<String>,
    instances: Option<u64>,
    monitoring_role_arn: Option<String>,
    monitoring_interval_secs: Option<u64>,
}

/// A rebuild's settings for its new secondary in one Region, each replacing the old primary's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RebuildOverrides {
    /// `DBSubnetGroupName`.
    pub db_subnet_group: Option<String>,
    /// `VpcSecurityGroupIds` (`sg-…`).
    pub vpc_security_group_ids: Option<Vec<String>>,
    /// `DBClusterParameterGroupName`.
    pub db_cluster_parameter_group: Option<String>,
    /// `KmsKeyId`: a key in this Region (ARN, id or alias), for an encrypted cluster.
    pub kms_key_id: Option<String>,
    /// `DBInstanceClass` of every new instance.
    pub instance_class: Option<String>,
    /// `DBParameterGroupName` of every new instance.
    pub db_parameter_group: Option<String>,
    /// How many instances (1 to 15; default: as many as the old primary has).
    pub instances: Option<usize>,
    /// `(MonitoringRoleArn, MonitoringInterval seconds)` of every new instance.
    pub monitoring: Option<(String, i32)>,
}

/// `key` holds a name: not empty.
fn name(key: &str, v: Option<String>) -> Result<Option<String>, ConfigError> {
    match v {
        Some(s) if s.trim().is_empty() => Err(invalid(key, "is empty; leave the key out instead")),
        other => Ok(other),
    }
}

/// The `[clusters.rebuild.REGION]` tables of cluster `at` (`clusters[0]`), whose Regions are `regions`.
pub(super) fn check(
    at: &str,
    regions: &[Region],
    raw: Option<BTreeMap<String, RawRebuild>>,
) -> Result<Vec<(Region, RebuildOverrides)>, ConfigError> {
    raw.unwrap_or_default()
        .into_iter()
        .map(|(region, r)| {
            let key = |k: &str| format!("{at}.rebuild.{region}.{k}");
            let Some(parsed) = Region::parse(&region).filter(|p| regions.contains(p)) else {
                return Err(invalid(
                    format!("{at}.rebuild.{region}"),
                    format!(
                        "{region:?} is not one of the cluster's regions ({})",
                        regions.iter().map(Region::as_str).collect::<Vec<_>>().join(", ")
                    ),
                ));
            };
            Ok((parsed, overrides(&key, r)?))
        })
        .collect()
}

fn overrides(key: &dyn Fn(&str) -> String, r: RawRebuild) -> Result<RebuildOverrides, ConfigError> {
    let groups = match r.vpc_security_group_ids {
        Some(ids) if ids.is_empty() => return Err(invalid(key("vpc_security_group_ids"), "is empty")),
        Some(ids) => {
            if let Some((i, bad)) = ids.iter().enumerate().find(|(_, id)| !id.starts_with("sg-")) {
                return Err(invalid(
                    format!("{}[{i}]", key("vpc_security_group_ids")),
                    format!("{bad:?} is not a security group id (sg-…)"),
                ));
            }
            Some(ids)
        }
        None => None,
    };
    let instances = match r.instances {
        Some(n) if !(1..=MAX_INSTANCES).contains(&n) => {
            return Err(invalid(
                key("instances"),
                format!("{n} is out of range: must be between 1 and {MAX_INSTANCES}"),
            ));
        }
        n => n.map(|n| n as usize),
    };
    let monitoring = match (
        name(&key("monitoring_role_arn"), r.monitoring_role_arn)?,
        r.monitoring_interval_secs,
    ) {
        (None, None) => None,
        (Some(role), interval) => {
            let interval = interval.unwrap_or(60);
            if !role.starts_with("arn:") {
                return Err(invalid(
                    key("monitoring_role_arn"),
                    format!("{role:?} is not a role ARN"),
                ));
            }
            if !MONITORING_INTERVALS.contains(&interval) {
                return Err(invalid(
                    key("monitoring_interval_secs"),
                    format!("{interval} is not one of {MONITORING_INTERVALS:?}"),
                ));
            }
            Some((role, interval as i32))
        }
        (None, Some(_)) => {
            return Err(invalid(
                key("monitoring_interval_secs"),
                "only with monitoring_role_arn (Enhanced Monitoring needs its role)",
            ));
        }
    };
    Ok(RebuildOverrides {
        db_subnet_group: name(&key("db_subnet_group"), r.db_subnet_group)?,
        vpc_security_group_ids: groups,
        db_cluster_parameter_group: name(&key("db_cluster_parameter_group"), r.db_cluster_parameter_group)?,
        kms_key_id: name(&key("kms_key_id"), r.kms_key_id)?,
        instance_class: name(&key("instance_class"), r.instance_class)?,
        db_parameter_group: name(&key("db_parameter_group"), r.db_parameter_group)?,
        instances,
        monitoring,
    })
}

impl RebuildOverrides {
    /// The keys it sets, by name (for the plan's checklist).
    pub fn keys(&self) -> Vec<&'static str> {
        [
            ("db_subnet_group", self.db_subnet_group.is_some()),
            ("vpc_security_group_ids", self.vpc_security_group_ids.is_some()),
            ("db_cluster_parameter_group", self.db_cluster_parameter_group.is_some()),
            ("kms_key_id", self.kms_key_id.is_some()),
            ("instance_class", self.instance_class.is_some()),
            ("db_parameter_group", self.db_parameter_group.is_some()),
            ("instances", self.instances.is_some()),
            ("monitoring_role_arn", self.monitoring.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, set)| set.then_some(k))
        .collect()
    }
}
