//! The creating calls a rebuild after a detach makes, as AWS answers them: CreateGlobalCluster from an
//! existing cluster, CreateDBCluster as a secondary of a global cluster, CreateDBInstance in a
//! cluster, and DescribeDBInstances. Each new resource is `creating` for its delay
//! ([`Timings::create_global_ms`], `create_cluster_ms`, `create_instance_ms`), then `available`. A new
//! secondary is `pending-resync` in its global cluster until it is `available` with an `available`
//! instance, and `connected` from then on.
//!
//! Refusals follow the RDS API reference's errors for each call (`GlobalClusterAlreadyExistsFault`,
//! `DBClusterAlreadyExistsFault`, `DBInstanceAlreadyExists`, the not-found faults, and
//! `InvalidParameterCombination` for a cross-Region secondary of an encrypted primary without a
//! `KmsKeyId`). Where AWS documents no error code, the emulator's choice is named in its README.

use super::{
    AVAILABLE, ApiError, ClusterKey, ClusterSettings, ClusterView, Ctx, DbCluster, GlobalClusterView, Instance, Rds,
    default_parameter_group, major_minor, region_key,
};
use super::{Action, CREATING};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// CreateDBCluster's parameters that the emulator honours.
#[derive(Debug, Clone, Default)]
pub struct NewCluster {
    /// `DBClusterIdentifier`.
    pub id: String,
    pub engine: String,
    pub engine_version: Option<String>,
    /// `GlobalClusterIdentifier`: the cluster joins that global cluster as a secondary.
    pub global_cluster_id: Option<String>,
    /// `DBSubnetGroupName`.
    pub db_subnet_group: Option<String>,
    pub vpc_security_group_ids: Vec<String>,
    /// `DBClusterParameterGroupName`.
    pub db_cluster_parameter_group: Option<String>,
    pub storage_encrypted: Option<bool>,
    pub kms_key_id: Option<String>,
    pub deletion_protection: Option<bool>,
    pub master_username: Option<String>,
}

/// CreateDBInstance's parameters that the emulator honours (an instance of an Aurora cluster).
#[derive(Debug, Clone, Default)]
pub struct NewInstance {
    /// `DBInstanceIdentifier`.
    pub id: String,
    /// `DBClusterIdentifier`.
    pub cluster_id: String,
    pub engine: String,
    /// `DBInstanceClass`.
    pub instance_class: String,
    /// `DBParameterGroupName`.
    pub db_parameter_group: Option<String>,
    pub monitoring_role_arn: Option<String>,
    /// `MonitoringInterval`, seconds.
    pub monitoring_interval: Option<i32>,
}

/// A DB instance as DescribeDBInstances shows it.
#[derive(Debug, Clone, Serialize)]
pub struct InstanceView {
    pub id: String,
    pub arn: String,
    pub region: String,
    pub cluster_id: String,
    pub engine: String,
    pub engine_version: String,
    /// `DBInstanceStatus`.
    pub status: String,
    pub instance_class: String,
    pub db_parameter_group: String,
    pub monitoring_role_arn: Option<String>,
    pub monitoring_interval: i32,
    pub is_writer: bool,
    pub storage_encrypted: bool,
    pub kms_key_id: Option<String>,
}

/// A partial change of a cluster's [`ClusterSettings`] (admin API): only the fields given change;
/// `kms_key_id` given as `null` makes the cluster unencrypted.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsPatch {
    pub db_subnet_group: Option<String>,
    pub vpc_security_group_ids: Option<Vec<String>>,
    pub db_cluster_parameter_group: Option<String>,
    /// `Some(None)` (JSON `null`): not encrypted; `Some(Some(arn))`: encrypted with that key.
    #[serde(default, deserialize_with = "present")]
    pub kms_key_id: Option<Option<String>>,
    pub deletion_protection: Option<bool>,
}

/// A partial change of an instance (admin API): only the fields given change.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstancePatch {
    pub instance_class: Option<String>,
    pub db_parameter_group: Option<String>,
    /// Enhanced Monitoring: `{"role_arn": "...", "interval": 60}`, or `null` to turn it off.
    #[serde(default, deserialize_with = "present")]
    pub monitoring: Option<Option<Monitoring>>,
}

/// Enhanced Monitoring of an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Monitoring {
    pub role_arn: String,
    /// Seconds: 1, 5, 10, 15, 30 or 60.
    pub interval: i32,
}

/// A field that is present (even as `null`) is `Some`: `null` is `Some(None)`, absent is `None`.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// CreateGlobalCluster's parameters that the emulator honours.
#[derive(Debug, Clone, Default)]
pub struct NewGlobal {
    /// `GlobalClusterIdentifier`.
    pub id: String,
    /// `SourceDBClusterIdentifier`: the ARN of the cluster that becomes the primary.
    pub source: Option<String>,
    pub engine: Option<String>,
    pub engine_version: Option<String>,
    pub deletion_protection: bool,
}

fn already_exists(code: &str, message: String) -> ApiError {
    ApiError::new(400, code, message)
}

impl Rds {
    /// CreateGlobalCluster, sent to `region`. With a `source` (the ARN of a standalone, `available`
    /// cluster of `region`), the source becomes the writer member, and the engine, version and
    /// encryption come from it; without it, an empty global cluster of `engine`.
    pub fn create_global_cluster(
        &mut self,
        region: &str,
        p: &NewGlobal,
        now: Instant,
        ctx: &Ctx,
    ) -> Result<GlobalClusterView, ApiError> {
        let id = p.id.to_ascii_lowercase();
        if self.globals.contains_key(&id) {
            return Err(already_exists(
                "GlobalClusterAlreadyExistsFault",
                format!("Global cluster {id} already exists"),
            ));
        }
        let mut global = match &p.source {
            Some(source) => {
                if p.engine.is_some() || p.engine_version.is_some() {
                    return Err(ApiError::invalid_parameter_combination(
                        "When creating a global cluster from an existing DB cluster, Engine and EngineVersion must not be specified: they are inherited from the source cluster.",
                    ));
                }
                let c = self.source_of_global(region, source)?;
                let mut g = self.blank_global(&id, &c.engine, &c.engine_version);
                g.storage_encrypted = c.settings.storage_encrypted;
                g.members = vec![c.key.clone()];
                g.writer = Some(c.key.clone());
                g
            }
            None => {
                let engine = p
                    .engine
                    .as_deref()
                    .ok_or_else(|| ApiError::missing_parameter("Engine"))?;
                let version = p.engine_version.as_deref().unwrap_or(if engine.contains("mysql") {
                    "8.0.mysql_aurora.3.05.2"
                } else {
                    "15.4"
                });
                self.blank_global(&id, engine, version)
            }
        };
        global.creating = true;
        global.deletion_protection = p.deletion_protection;
        if let Some(writer) = &global.writer
            && let Some(c) = self.clusters.get_mut(writer)
        {
            c.global = Some(id.clone());
        }
        self.globals.insert(id.clone(), global);
        self.schedule(now + ctx.timings.create_global(), Action::GlobalCreated(id.clone()));
        Ok(self.global_view(&self.globals[&id]))
    }

    /// The cluster CreateGlobalCluster's `SourceDBClusterIdentifier` names: an ARN (or identifier) of
    /// a cluster of `region` that is `available` and in no global cluster.
    fn source_of_global(&self, region: &str, source: &str) -> Result<&DbCluster, ApiError> {
        let c = self
            .find_cluster(region, source)
            .ok_or_else(|| ApiError::db_cluster_not_found(source))?;
        if let Some(g) = &c.global {
            return Err(ApiError::invalid_db_cluster_state(format!(
                "The source DB cluster {} is already a member of global cluster {g}.",
                c.arn
            )));
        }
        if c.status != AVAILABLE {
            return Err(ApiError::invalid_db_cluster_state(format!(
                "The source DB cluster {} is in the {} state, not available.",
                c.arn, c.status
            )));
        }
        Ok(c)
    }

    /// CreateDBCluster in `region`: a secondary of `p.global_cluster_id` when given (no master user:
    /// it replicates the primary's), a standalone cluster otherwise. `creating` for
    /// `create_cluster_ms`, with no instance.
    pub fn create_db_cluster(
        &mut self,
        region: &str,
        p: &NewCluster,
        now: Instant,
        ctx: &Ctx,
    ) -> Result<ClusterView, ApiError> {
        let id = p.id.to_ascii_lowercase();
        if self.find_cluster(region, &id).is_some() {
            return Err(already_exists(
                "DBClusterAlreadyExistsFault",
                "DB Cluster already exists".to_owned(),
            ));
        }
        let global = match &p.global_cluster_id {
            Some(gid) => Some(self.check_secondary(region, gid, p)?),
            None if p.master_username.is_none() => {
                return Err(ApiError::invalid_parameter_value(
                    "The parameter MasterUsername must be provided and must not be blank.",
                ));
            }
            None => None,
        };
        let version = p
            .engine_version
            .clone()
            .or_else(|| global.as_ref().map(|g| self.globals[g].engine_version.clone()))
            .unwrap_or_else(|| "15.4".to_owned());
        let mut c = self.blank_cluster(region, &id, &p.engine, &version, ctx.clock.wall(now));
        c.status = CREATING.to_owned();
        c.settings = self.settings_of(region, &id, &p.engine, &version, p, global.as_deref());
        c.seeding = global.is_some();
        c.global = global.clone();
        let key = c.key.clone();
        self.clusters.insert(key.clone(), c);
        if let Some(gid) = &global {
            self.globals.get_mut(gid).expect("checked").members.push(key.clone());
        }
        self.schedule(now + ctx.timings.create_cluster(), Action::ClusterCreated(key.clone()));
        Ok(self.cluster_view(&self.clusters[&key]))
    }

    /// What AWS checks before adding a secondary in `region` to global cluster `gid`; its id.
    fn check_secondary(&self, region: &str, gid: &str, p: &NewCluster) -> Result<String, ApiError> {
        let g = self
            .find_global(gid)
            .ok_or_else(|| ApiError::global_cluster_not_found(gid))?;
        if g.status() != AVAILABLE {
            return Err(ApiError::invalid_global_cluster_state(format!(
                "Global cluster {} is in the {} state, not available.",
                g.id,
                g.status()
            )));
        }
        if let Some(m) = g.members.iter().find(|m| m.region == region) {
            return Err(ApiError::invalid_global_cluster_state(format!(
                "Global cluster {} already has a member in Region {region}: {}.",
                g.id, m.id
            )));
        }
        if p.engine != g.engine {
            return Err(ApiError::invalid_parameter_combination(format!(
                "The engine {} does not match the engine {} of global cluster {}.",
                p.engine, g.engine, g.id
            )));
        }
        if let Some(v) = &p.engine_version
            && major_minor(v) != major_minor(&g.engine_version)
        {
            return Err(ApiError::invalid_parameter_combination(format!(
                "The engine version {v} does not match the engine version {} of global cluster {}.",
                g.engine_version, g.id
            )));
        }
        let primary = g.writer.as_ref().and_then(|w| self.clusters.get(w));
        let encrypted = primary.map_or(g.storage_encrypted, |c| c.settings.storage_encrypted);
        let cross_region = primary.is_none_or(|c| c.key.region != region);
        if encrypted && cross_region && p.kms_key_id.is_none() {
            return Err(ApiError::invalid_parameter_combination(
                "For encrypted cross-region replica, kmsKeyId should be explicitly specified",
            ));
        }
        Ok(g.id.clone())
    }

    /// A new cluster's settings: what CreateDBCluster names, AWS's defaults for the rest (a secondary
    /// of an encrypted global cluster is encrypted).
    fn settings_of(
        &self,
        region: &str,
        id: &str,
        engine: &str,
        version: &str,
        p: &NewCluster,
        global: Option<&str>,
    ) -> ClusterSettings {
        let seeded = ClusterSettings::seeded(&self.account, region, id, engine, version);
        let global_encrypted = global
            .and_then(|g| self.globals.get(g))
            .is_some_and(|g| g.storage_encrypted);
        let encrypted = p.storage_encrypted.unwrap_or(false) || p.kms_key_id.is_some() || global_encrypted;
        ClusterSettings {
            db_subnet_group: p.db_subnet_group.clone().unwrap_or_else(|| "default".to_owned()),
            vpc_security_group_ids: if p.vpc_security_group_ids.is_empty() {
                seeded.vpc_security_group_ids
            } else {
                p.vpc_security_group_ids.clone()
            },
            db_cluster_parameter_group: p
                .db_cluster_parameter_group
                .clone()
                .unwrap_or_else(|| default_parameter_group(engine, version)),
            storage_encrypted: encrypted,
            kms_key_id: encrypted.then(|| {
                p.kms_key_id
                    .clone()
                    .unwrap_or_else(|| region_key(&self.account, region))
            }),
            deletion_protection: p.deletion_protection.unwrap_or(false),
        }
    }

    /// CreateDBInstance in cluster `p.cluster_id` of `region`: `creating` for `create_instance_ms`.
    /// It is the writer only of a cluster that can have one and has none (never in a secondary).
    pub fn create_db_instance(
        &mut self,
        region: &str,
        p: &NewInstance,
        now: Instant,
        ctx: &Ctx,
    ) -> Result<InstanceView, ApiError> {
        let id = p.id.to_ascii_lowercase();
        if self.instance_in(region, &id).is_some() {
            return Err(already_exists(
                "DBInstanceAlreadyExists",
                "DB instance already exists".to_owned(),
            ));
        }
        check_monitoring(p)?;
        let c = self
            .find_cluster(region, &p.cluster_id)
            .ok_or_else(|| ApiError::db_cluster_not_found(&p.cluster_id))?;
        if p.engine != c.engine {
            return Err(ApiError::invalid_parameter_combination(format!(
                "The engine {} of the DB instance does not match the engine {} of DB cluster {}.",
                p.engine, c.engine, c.key.id
            )));
        }
        if c.status != AVAILABLE && c.status != CREATING {
            return Err(ApiError::invalid_db_cluster_state(format!(
                "DB cluster {} is in the {} state: DB instances can be added when it is available.",
                c.key.id, c.status
            )));
        }
        let writer = !c.has_writer() && !self.secondary_of_global(c);
        let key = c.key.clone();
        let instance = Instance {
            id: id.clone(),
            is_writer: writer,
            status: CREATING.to_owned(),
            instance_class: p.instance_class.clone(),
            db_parameter_group: p
                .db_parameter_group
                .clone()
                .unwrap_or_else(|| default_parameter_group(&c.engine, &c.engine_version)),
            monitoring_role_arn: p.monitoring_role_arn.clone(),
            monitoring_interval: p.monitoring_interval.unwrap_or(0),
        };
        self.clusters
            .get_mut(&key)
            .expect("found above")
            .instances
            .push(instance);
        self.schedule(
            now + ctx.timings.create_instance(),
            Action::InstanceCreated {
                cluster: key,
                instance: id.clone(),
            },
        );
        Ok(self.instance_in(region, &id).expect("just added"))
    }

    /// The instance `id` (an identifier or an ARN) of `region`, with its cluster.
    pub fn instance_in(&self, region: &str, id: &str) -> Option<InstanceView> {
        let id = id.rsplit_once(":db:").map_or(id, |(_, id)| id).to_ascii_lowercase();
        self.instances_of(region).into_iter().find(|i| i.id == id)
    }

    /// Every instance of `region`'s clusters, by cluster then in cluster order.
    pub fn instances_of(&self, region: &str) -> Vec<InstanceView> {
        self.clusters
            .values()
            .filter(|c| c.key.region == region)
            .flat_map(|c| c.instances.iter().map(move |i| self.instance_view(c, i)))
            .collect()
    }

    pub fn instance_view(&self, c: &DbCluster, i: &Instance) -> InstanceView {
        InstanceView {
            arn: format!("arn:aws:rds:{}:{}:db:{}", c.key.region, self.account, i.id),
            id: i.id.clone(),
            region: c.key.region.clone(),
            cluster_id: c.key.id.clone(),
            engine: c.engine.clone(),
            engine_version: c.engine_version.clone(),
            status: i.status.clone(),
            instance_class: i.instance_class.clone(),
            db_parameter_group: i.db_parameter_group.clone(),
            monitoring_role_arn: i.monitoring_role_arn.clone(),
            monitoring_interval: i.monitoring_interval,
            is_writer: i.is_writer,
            storage_encrypted: c.settings.storage_encrypted,
            kms_key_id: c.settings.kms_key_id.clone(),
        }
    }

    /// DescribeDBInstances in `region`: one instance (`DBInstanceNotFound` if there is none), or all.
    pub fn describe_db_instances(&self, region: &str, id: Option<&str>) -> Result<Vec<InstanceView>, ApiError> {
        match id {
            Some(id) => self
                .instance_in(region, id)
                .map(|i| vec![i])
                .ok_or_else(|| ApiError::new(404, "DBInstanceNotFound", format!("DBInstance {id} not found."))),
            None => Ok(self.instances_of(region)),
        }
    }

    // ---- admin ----

    /// Changes a cluster's settings; false if there is no such cluster.
    pub fn set_settings(&mut self, key: &ClusterKey, patch: SettingsPatch) -> bool {
        let Some(c) = self.clusters.get_mut(key) else {
            return false;
        };
        let s = &mut c.settings;
        if let Some(v) = patch.db_subnet_group {
            s.db_subnet_group = v;
        }
        if let Some(v) = patch.vpc_security_group_ids {
            s.vpc_security_group_ids = v;
        }
        if let Some(v) = patch.db_cluster_parameter_group {
            s.db_cluster_parameter_group = v;
        }
        if let Some(v) = patch.kms_key_id {
            s.storage_encrypted = v.is_some();
            s.kms_key_id = v;
        }
        if let Some(v) = patch.deletion_protection {
            s.deletion_protection = v;
        }
        true
    }

    /// Changes an instance of `region`; false if there is no such instance.
    pub fn set_instance(&mut self, region: &str, id: &str, patch: InstancePatch) -> bool {
        let id = id.to_ascii_lowercase();
        let found = self
            .clusters
            .values_mut()
            .filter(|c| c.key.region == region)
            .flat_map(|c| c.instances.iter_mut())
            .find(|i| i.id == id);
        let Some(i) = found else { return false };
        if let Some(v) = patch.instance_class {
            i.instance_class = v;
        }
        if let Some(v) = patch.db_parameter_group {
            i.db_parameter_group = v;
        }
        if let Some(m) = patch.monitoring {
            i.monitoring_interval = m.as_ref().map_or(0, |m| m.interval);
            i.monitoring_role_arn = m.map(|m| m.role_arn);
        }
        true
    }
}

/// Enhanced Monitoring needs both a role and an interval other than 0 (RDS API reference,
/// CreateDBInstance: MonitoringInterval and MonitoringRoleArn).
fn check_monitoring(p: &NewInstance) -> Result<(), ApiError> {
    let interval = p.monitoring_interval.unwrap_or(0);
    if !matches!(interval, 0 | 1 | 5 | 10 | 15 | 30 | 60) {
        return Err(ApiError::invalid_parameter_value(format!(
            "Invalid value {interval} for MonitoringInterval: 0, 1, 5, 10, 15, 30 or 60."
        )));
    }
    match (&p.monitoring_role_arn, interval) {
        (None, 1..) => Err(ApiError::invalid_parameter_combination(
            "A MonitoringRoleARN value is required if you specify a MonitoringInterval value other than 0.",
        )),
        (Some(_), 0) => Err(ApiError::invalid_parameter_combination(
            "If you specify a MonitoringRoleARN value, you must set MonitoringInterval to a value other than 0.",
        )),
        _ => Ok(()),
    }
}
