//! Aurora Global Database as the RDS control plane shows it: regional DB clusters with their instances,
//! global clusters with their members, and the three ways to move the writer (detach, managed failover,
//! switchover) as transitions over time, with the refusals and events AWS documents for them.
//!
//! Invariants kept here:
//! - a cluster is a member of at most one global cluster, and `DbCluster::global` and
//!   `GlobalCluster::members` always agree;
//! - the global writer (when there is one) is a member, has exactly one writer instance, and no other
//!   member has a writer instance, except an old primary that has not yet rejoined after a managed
//!   failover (its writes are fenced only when it rejoins, as with AWS's best-effort fencing);
//! - at most one managed operation (failover or switchover) per global cluster at a time.

use super::error::ApiError;
use super::timings::Timings;
use super::{Clock, OutageMode};
use crate::scenario::Scenario;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;
use tokio::time::Instant;

mod create;
pub use create::{InstancePatch, InstanceView, Monitoring, NewCluster, NewGlobal, NewInstance, SettingsPatch};

/// Status of a cluster that is usable.
pub const AVAILABLE: &str = "available";
/// Status of a cluster that was removed from its global cluster and is being promoted to a standalone,
/// writable cluster.
pub const PROMOTING: &str = "promoting";
/// Statuses of the global cluster and of the clusters involved while a managed operation runs.
pub const FAILING_OVER: &str = "failing-over";
pub const SWITCHING_OVER: &str = "switching-over";
/// Status of the clusters of a switchover while it runs.
pub const MODIFYING: &str = "modifying";
/// `FailoverState.Status` values.
pub const STATE_PENDING: &str = "pending";
/// `SynchronizationStatus` of a member.
pub const SYNC_CONNECTED: &str = "connected";
pub const SYNC_PENDING_RESYNC: &str = "pending-resync";
/// The event category of managed failover and switchover events.
pub const CATEGORY_GLOBAL_FAILOVER: &str = "global-failover";

/// A cluster is identified by its Region and its identifier.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ClusterKey {
    pub region: String,
    pub id: String,
}

/// A DB instance of a cluster, with what DescribeDBInstances shows of it.
#[derive(Debug, Clone, Serialize)]
pub struct Instance {
    pub id: String,
    pub is_writer: bool,
    /// `DBInstanceStatus`: `creating` until CreateDBInstance's delay has passed, then `available`.
    pub status: String,
    /// `DBInstanceClass`, e.g. `db.r6g.large`.
    pub instance_class: String,
    /// `DBParameterGroups[0].DBParameterGroupName`.
    pub db_parameter_group: String,
    /// `MonitoringRoleArn` (Enhanced Monitoring), `None` when it is off.
    pub monitoring_role_arn: Option<String>,
    /// `MonitoringInterval` in seconds, 0 when Enhanced Monitoring is off.
    pub monitoring_interval: i32,
}

impl Instance {
    /// An `available` instance with the emulator's plausible defaults for `engine`.
    pub fn seeded(id: &str, engine: &str, engine_version: &str) -> Instance {
        Instance {
            id: id.to_owned(),
            is_writer: false,
            status: AVAILABLE.to_owned(),
            instance_class: DEFAULT_INSTANCE_CLASS.to_owned(),
            db_parameter_group: default_parameter_group(engine, engine_version),
            monitoring_role_arn: None,
            monitoring_interval: 0,
        }
    }
}

/// The instance class seeded instances have.
pub const DEFAULT_INSTANCE_CLASS: &str = "db.r6g.large";
/// Status of a cluster, an instance or a global cluster that a create call has just made.
pub const CREATING: &str = "creating";

/// What a rebuild copies from a cluster (DescribeDBClusters): network, parameters, encryption and
/// deletion protection. Seeded clusters get plausible values (see [`ClusterSettings::seeded`]); the
/// admin API changes them; CreateDBCluster sets them from its parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ClusterSettings {
    /// `DBSubnetGroup` (a name).
    pub db_subnet_group: String,
    /// `VpcSecurityGroups[].VpcSecurityGroupId`.
    pub vpc_security_group_ids: Vec<String>,
    /// `DBClusterParameterGroup` (a name).
    pub db_cluster_parameter_group: String,
    /// `StorageEncrypted`.
    pub storage_encrypted: bool,
    /// `KmsKeyId`: a key ARN in the cluster's Region, when encrypted.
    pub kms_key_id: Option<String>,
    /// `DeletionProtection`.
    pub deletion_protection: bool,
}

impl ClusterSettings {
    /// Plausible values for a seeded cluster: a subnet group and a security group named after the
    /// cluster, the engine's default cluster parameter group, encrypted with the Region's own key (KMS
    /// keys are regional), no deletion protection.
    pub fn seeded(account: &str, region: &str, id: &str, engine: &str, engine_version: &str) -> ClusterSettings {
        ClusterSettings {
            db_subnet_group: format!("{id}-subnets"),
            vpc_security_group_ids: vec![format!("sg-{}", stable_hex(&format!("{region}/{id}"), 17))],
            db_cluster_parameter_group: default_parameter_group(engine, engine_version),
            storage_encrypted: true,
            kms_key_id: Some(region_key(account, region)),
            deletion_protection: false,
        }
    }
}

/// The KMS key the emulator's seeded clusters of a Region are encrypted with (a key ARN with a stable,
/// UUID-shaped key id).
pub fn region_key(account: &str, region: &str) -> String {
    let h = stable_hex(&format!("kms/{account}/{region}"), 32);
    format!(
        "arn:aws:kms:{region}:{account}:key/{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// `default.aurora-postgresql15`, `default.aurora-mysql8.0`: the engine's default parameter group name.
pub fn default_parameter_group(engine: &str, engine_version: &str) -> String {
    let family = if engine.contains("mysql") {
        "8.0".to_owned()
    } else {
        engine_version.split('.').next().unwrap_or(engine_version).to_owned()
    };
    format!("default.{engine}{family}")
}

/// A stable lower-case hexadecimal string of `len` digits derived from `s`.
fn stable_hex(s: &str, len: usize) -> String {
    let mut out = String::new();
    let mut round = 0u32;
    while out.len() < len {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ u64::from(round);
        for b in s.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        out.push_str(&format!("{h:016x}"));
        round += 1;
    }
    out.truncate(len);
    out
}

/// Where an old primary is in rejoining its global cluster after a managed failover.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rejoin {
    /// Its Region is down: it stays out of reach until the Region comes back.
    WaitingForRegion,
    /// Its Region is up: it becomes a secondary when the rejoin timer fires.
    InProgress,
}

#[derive(Debug, Clone)]
pub struct DbCluster {
    pub key: ClusterKey,
    pub arn: String,
    pub resource_id: String,
    pub engine: String,
    pub engine_version: String,
    pub status: String,
    pub instances: Vec<Instance>,
    pub global: Option<String>,
    pub endpoint: String,
    pub reader_endpoint: String,
    /// `Port` of DescribeDBClusters: the scenario's `port`, else the engine's default (5432 for Aurora
    /// PostgreSQL, 3306 for Aurora MySQL).
    pub port: u16,
    /// The address awsim's DNS server answers for `endpoint` (default 127.0.0.1): where a test's
    /// database server for this cluster's writer listens.
    pub endpoint_address: IpAddr,
    /// The address awsim's DNS server answers for `reader_endpoint` (default 127.0.0.1).
    pub reader_endpoint_address: IpAddr,
    pub hosted_zone_id: String,
    pub created: jiff::Timestamp,
    /// How far this cluster is behind the global writer when it is a secondary.
    pub lag: Duration,
    pub rejoin: Option<Rejoin>,
    /// `GlobalWriteForwardingStatus`: the cluster's own setting, kept across failovers (AWS uses it
    /// when the cluster is a secondary, and a demoted primary starts using it at once); shown only
    /// while the cluster is a secondary of a global cluster.
    pub write_forwarding: WriteForwarding,
    /// When the cluster last became writable through a detach or a managed operation (the moment on
    /// the emulator's timeline, so exact however late anyone looks); `None` since the scenario was
    /// loaded otherwise. For benchmarks: the start of the time a client takes to notice.
    pub writable_since: Option<jiff::Timestamp>,
    /// Network, parameters, encryption, deletion protection (DescribeDBClusters).
    pub settings: ClusterSettings,
    /// A secondary made by CreateDBCluster that has not yet been `available` with an `available`
    /// instance: its first copy of the data is still being made, so its member shows
    /// `SynchronizationStatus` `pending-resync` rather than `connected`. Never set again once cleared.
    pub seeding: bool,
}

/// A secondary's global write forwarding (`GlobalWriteForwardingStatus` of DescribeDBClusters and of
/// DescribeGlobalClusters' members), as the RDS API reference lists its values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WriteForwarding {
    Enabled,
    #[default]
    Disabled,
    Enabling,
    Disabling,
    Unknown,
}

impl WriteForwarding {
    /// The value as the API writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            WriteForwarding::Enabled => "enabled",
            WriteForwarding::Disabled => "disabled",
            WriteForwarding::Enabling => "enabling",
            WriteForwarding::Disabling => "disabling",
            WriteForwarding::Unknown => "unknown",
        }
    }
}

impl DbCluster {
    pub fn has_writer(&self) -> bool {
        self.instances.iter().any(|i| i.is_writer)
    }

    /// Makes the first instance the writer (if there is any instance).
    fn promote_writer(&mut self) {
        for (n, i) in self.instances.iter_mut().enumerate() {
            i.is_writer = n == 0;
        }
    }

    fn demote_writer(&mut self) {
        for i in &mut self.instances {
            i.is_writer = false;
        }
    }

    /// A secondary being created replicates once it is `available` with an `available` instance.
    fn end_seeding_if_replicating(&mut self) {
        if self.status == AVAILABLE && self.instances.iter().any(|i| i.status == AVAILABLE) {
            self.seeding = false;
        }
    }

    /// Aurora's `major.minor` of the engine version, which managed operations require to match.
    pub fn major_minor(&self) -> String {
        major_minor(&self.engine_version)
    }
}

/// Aurora's own major and minor version: `15.4` for Aurora PostgreSQL; for Aurora MySQL, the part after
/// `mysql_aurora.` (`8.0.mysql_aurora.3.05.2` is Aurora MySQL 3.05).
fn major_minor(v: &str) -> String {
    let own = v.split_once("mysql_aurora.").map_or(v, |(_, aurora)| aurora);
    own.split('.').take(2).collect::<Vec<_>>().join(".")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// FailoverGlobalCluster with AllowDataLoss: managed unplanned failover.
    Failover,
    /// SwitchoverGlobalCluster, or FailoverGlobalCluster without AllowDataLoss: no data loss.
    Switchover,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OpPhase {
    Pending,
    InProgress,
}

/// A managed failover or switchover in progress.
#[derive(Debug, Clone, Serialize)]
pub struct ManagedOp {
    pub id: u64,
    pub kind: OpKind,
    pub phase: OpPhase,
    pub from: ClusterKey,
    pub to: ClusterKey,
}

impl ManagedOp {
    /// `FailoverState.Status` as the API shows it.
    pub fn state_status(&self) -> &'static str {
        match (self.phase, self.kind) {
            (OpPhase::Pending, _) => STATE_PENDING,
            (OpPhase::InProgress, OpKind::Failover) => FAILING_OVER,
            (OpPhase::InProgress, OpKind::Switchover) => SWITCHING_OVER,
        }
    }
}

#[derive(Debug, Clone)]
pub struct GlobalCluster {
    pub id: String,
    pub arn: String,
    pub resource_id: String,
    pub engine: String,
    pub engine_version: String,
    pub endpoint: String,
    pub members: Vec<ClusterKey>,
    pub writer: Option<ClusterKey>,
    pub op: Option<ManagedOp>,
    /// Made by CreateGlobalCluster and not yet `available`.
    pub creating: bool,
    /// `StorageEncrypted`: the primary's, when made from a source cluster.
    pub storage_encrypted: bool,
    /// `DeletionProtection`.
    pub deletion_protection: bool,
}

impl GlobalCluster {
    pub fn status(&self) -> &'static str {
        match &self.op {
            None if self.creating => CREATING,
            None => AVAILABLE,
            Some(op) => match op.kind {
                OpKind::Failover => FAILING_OVER,
                OpKind::Switchover => SWITCHING_OVER,
            },
        }
    }
}

/// An RDS event, as DescribeEvents returns it, with the RDS-EVENT id AWS documents for it.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub region: String,
    pub event_id: &'static str,
    pub source_id: String,
    pub source_type: &'static str,
    pub source_arn: String,
    pub message: String,
    pub categories: Vec<&'static str>,
    pub date: jiff::Timestamp,
}

/// A DB cluster snapshot (the emulator makes only the one a managed failover leaves behind).
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub region: String,
    pub id: String,
    pub arn: String,
    pub cluster_id: String,
    pub engine: String,
    pub engine_version: String,
    pub created: jiff::Timestamp,
    pub snapshot_type: &'static str,
}

#[derive(Debug, Clone)]
enum Action {
    DetachDone(ClusterKey),
    OpAdvance {
        global: String,
        op: u64,
    },
    RejoinDone(ClusterKey),
    /// CreateGlobalCluster's delay has passed.
    GlobalCreated(String),
    /// CreateDBCluster's delay has passed.
    ClusterCreated(ClusterKey),
    /// CreateDBInstance's delay has passed.
    InstanceCreated {
        cluster: ClusterKey,
        instance: String,
    },
}

#[derive(Debug, Clone)]
struct Timer {
    due: Instant,
    seq: u64,
    action: Action,
}

/// What the RDS model needs from the rest of the world.
pub struct Ctx<'a> {
    pub timings: &'a Timings,
    pub clock: &'a Clock,
    pub regions_down: &'a BTreeMap<String, OutageMode>,
}

impl Ctx<'_> {
    fn down(&self, region: &str) -> bool {
        self.regions_down.contains_key(region)
    }
}

#[derive(Debug, Default)]
pub struct Rds {
    account: String,
    pub clusters: BTreeMap<ClusterKey, DbCluster>,
    pub globals: BTreeMap<String, GlobalCluster>,
    pub events: Vec<Event>,
    pub snapshots: Vec<Snapshot>,
    timers: Vec<Timer>,
    next_seq: u64,
}

/// A short, stable, lower-case suffix derived from a string, used for generated resource ids and
/// endpoint names so that the same scenario always yields the same names.
pub(crate) fn stable_suffix(s: &str, len: usize) -> String {
    // FNV-1a, printed in base 36.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let mut out = String::new();
    while out.len() < len {
        let d = (h % 36) as u32;
        out.push(char::from_digit(d, 36).unwrap_or('0'));
        h /= 36;
        if h == 0 {
            h = 0x9e37_79b9_7f4a_7c15 ^ out.len() as u64;
        }
    }
    out
}

pub fn cluster_arn(account: &str, region: &str, id: &str) -> String {
    format!("arn:aws:rds:{region}:{account}:cluster:{id}")
}

pub fn global_arn(account: &str, id: &str) -> String {
    format!("arn:aws:rds::{account}:global-cluster:{id}")
}

/// The cluster (writer) and reader endpoint host names of a cluster, in the form AWS gives them.
pub fn endpoints(account: &str, region: &str, id: &str) -> (String, String) {
    let suffix = stable_suffix(&format!("{account}/{region}"), 12);
    (
        format!("{id}.cluster-{suffix}.{region}.rds.amazonaws.com"),
        format!("{id}.cluster-ro-{suffix}.{region}.rds.amazonaws.com"),
    )
}

/// The address the DNS server gives a cluster's endpoints unless told otherwise.
pub const DEFAULT_ENDPOINT_ADDRESS: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// The port of a cluster of `engine` unless told otherwise: 5432 for PostgreSQL engines, 3306 for MySQL.
pub fn default_port(engine: &str) -> u16 {
    if engine.contains("postgres") { 5432 } else { 3306 }
}

/// The Route 53 hosted zone id AWS gives the endpoints of every cluster of a Region.
fn regional_zone_id(region: &str) -> String {
    format!("Z{}", stable_suffix(region, 13).to_uppercase())
}

impl Rds {
    pub fn load(&mut self, s: &Scenario, clock: &Clock, now: Instant) {
        self.account = s.account_id.clone();
        let created = clock.wall(now);
        let add = |rds: &mut Rds,
                   region: &str,
                   id: &str,
                   engine: &str,
                   version: &str,
                   instances: &[String],
                   (port, endpoint_address, reader_endpoint_address): (
            Option<u16>,
            &Option<String>,
            &Option<String>,
        )| {
            let mut cluster = rds.blank_cluster(region, id, engine, version, created);
            cluster.instances = instances.iter().map(|i| Instance::seeded(i, engine, version)).collect();
            if let Some(port) = port {
                cluster.port = port;
            }
            let address = |a: &Option<String>| {
                a.as_deref().map_or(DEFAULT_ENDPOINT_ADDRESS, |a| {
                    a.parse().expect("validated: an IP address")
                })
            };
            cluster.endpoint_address = address(endpoint_address);
            cluster.reader_endpoint_address = address(reader_endpoint_address);
            rds.clusters.insert(cluster.key.clone(), cluster);
        };
        for c in &s.db_clusters {
            add(
                self,
                &c.region,
                &c.cluster_id,
                &c.engine,
                &c.engine_version,
                &c.instances,
                (c.port, &c.endpoint_address, &c.reader_endpoint_address),
            );
            let key = ClusterKey {
                region: c.region.clone(),
                id: c.cluster_id.clone(),
            };
            if let Some(cl) = self.clusters.get_mut(&key) {
                cl.promote_writer();
            }
        }
        for g in &s.global_clusters {
            let mut members = Vec::new();
            let mut writer = None;
            for m in &g.members {
                let version = m.engine_version.as_deref().unwrap_or(&g.engine_version);
                add(
                    self,
                    &m.region,
                    &m.cluster_id,
                    &g.engine,
                    version,
                    &m.instances,
                    (m.port, &m.endpoint_address, &m.reader_endpoint_address),
                );
                let key = ClusterKey {
                    region: m.region.clone(),
                    id: m.cluster_id.clone(),
                };
                let cl = self.clusters.get_mut(&key).expect("just added");
                cl.global = Some(g.id.clone());
                if m.primary {
                    cl.promote_writer();
                    writer = Some(key.clone());
                } else {
                    cl.lag = Duration::from_millis(m.replication_lag_ms);
                }
                cl.write_forwarding = m.write_forwarding;
                members.push(key);
            }
            let mut global = self.blank_global(&g.id, &g.engine, &g.engine_version);
            global.members = members;
            global.writer = writer;
            self.globals.insert(g.id.clone(), global);
        }
    }

    /// A standalone, `available` cluster with no instance, named as AWS names things.
    fn blank_cluster(
        &self,
        region: &str,
        id: &str,
        engine: &str,
        version: &str,
        created: jiff::Timestamp,
    ) -> DbCluster {
        let key = ClusterKey {
            region: region.to_owned(),
            id: id.to_owned(),
        };
        let (endpoint, reader_endpoint) = endpoints(&self.account, region, id);
        DbCluster {
            arn: cluster_arn(&self.account, region, id),
            resource_id: format!(
                "cluster-{}",
                stable_suffix(&format!("{region}/{id}"), 26).to_uppercase()
            ),
            engine: engine.to_owned(),
            engine_version: version.to_owned(),
            status: AVAILABLE.to_owned(),
            instances: Vec::new(),
            global: None,
            endpoint,
            reader_endpoint,
            port: default_port(engine),
            endpoint_address: DEFAULT_ENDPOINT_ADDRESS,
            reader_endpoint_address: DEFAULT_ENDPOINT_ADDRESS,
            hosted_zone_id: regional_zone_id(region),
            created,
            lag: Duration::ZERO,
            rejoin: None,
            write_forwarding: WriteForwarding::Disabled,
            writable_since: None,
            settings: ClusterSettings::seeded(&self.account, region, id, engine, version),
            seeding: false,
            key,
        }
    }

    /// An `available`, encrypted global cluster with no member.
    fn blank_global(&self, id: &str, engine: &str, version: &str) -> GlobalCluster {
        GlobalCluster {
            id: id.to_owned(),
            arn: global_arn(&self.account, id),
            resource_id: format!("cluster-{}", stable_suffix(&format!("global/{id}"), 26).to_uppercase()),
            engine: engine.to_owned(),
            engine_version: version.to_owned(),
            endpoint: format!("{id}.global-{}.global.rds.amazonaws.com", stable_suffix(id, 10)),
            members: Vec::new(),
            writer: None,
            op: None,
            creating: false,
            storage_encrypted: true,
            deletion_protection: false,
        }
    }

    fn schedule(&mut self, due: Instant, action: Action) {
        self.next_seq += 1;
        self.timers.push(Timer {
            due,
            seq: self.next_seq,
            action,
        });
    }

    fn next_id(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    /// Fires due timers one at a time, earliest first; a timer may schedule others.
    pub fn advance(&mut self, now: Instant, ctx: &Ctx) {
        loop {
            let next = self
                .timers
                .iter()
                .enumerate()
                .filter(|(_, t)| t.due <= now)
                .min_by_key(|(_, t)| (t.due, t.seq))
                .map(|(i, _)| i);
            let Some(i) = next else { break };
            let timer = self.timers.swap_remove(i);
            self.fire(timer, ctx);
        }
    }

    fn fire(&mut self, timer: Timer, ctx: &Ctx) {
        let at = timer.due;
        match timer.action {
            Action::DetachDone(key) => {
                if let Some(c) = self.clusters.get_mut(&key)
                    && c.status == PROMOTING
                {
                    c.status = AVAILABLE.to_owned();
                    c.promote_writer();
                    c.lag = Duration::ZERO;
                    c.writable_since = Some(ctx.clock.wall(at));
                }
            }
            Action::OpAdvance { global, op } => self.advance_op(&global, op, at, ctx),
            Action::RejoinDone(key) => self.finish_rejoin(&key, at, ctx),
            Action::GlobalCreated(id) => {
                if let Some(g) = self.globals.get_mut(&id) {
                    g.creating = false;
                }
            }
            Action::ClusterCreated(key) => {
                if let Some(c) = self.clusters.get_mut(&key)
                    && c.status == CREATING
                {
                    c.status = AVAILABLE.to_owned();
                    c.end_seeding_if_replicating();
                }
            }
            Action::InstanceCreated { cluster, instance } => {
                if let Some(c) = self.clusters.get_mut(&cluster) {
                    if let Some(i) = c
                        .instances
                        .iter_mut()
                        .find(|i| i.id == instance && i.status == CREATING)
                    {
                        i.status = AVAILABLE.to_owned();
                    }
                    c.end_seeding_if_replicating();
                }
            }
        }
    }

    fn event(&mut self, at: Instant, ctx: &Ctx, event_id: &'static str, cluster: &ClusterKey, message: String) {
        let arn = self.clusters.get(cluster).map(|c| c.arn.clone()).unwrap_or_default();
        self.events.push(Event {
            region: cluster.region.clone(),
            event_id,
            source_id: cluster.id.clone(),
            source_type: "db-cluster",
            source_arn: arn,
            message,
            categories: vec![CATEGORY_GLOBAL_FAILOVER],
            date: ctx.clock.wall(at),
        });
    }

    fn advance_op(&mut self, global: &str, op_id: u64, at: Instant, ctx: &Ctx) {
        let Some(g) = self.globals.get(global) else {
            return;
        };
        let Some(op) = g.op.clone().filter(|o| o.id == op_id) else {
            return;
        };
        match op.phase {
            OpPhase::Pending => {
                self.globals
                    .get_mut(global)
                    .expect("checked")
                    .op
                    .as_mut()
                    .expect("checked")
                    .phase = OpPhase::InProgress;
                // AWS does not document the clusters' own status during these operations; the
                // emulator uses statuses from the DB cluster status table: the target of a failover is
                // `failing-over`, both sides of a switchover are `modifying`.
                let touched: &[(&ClusterKey, &str)] = match op.kind {
                    OpKind::Failover => &[(&op.to, FAILING_OVER)],
                    OpKind::Switchover => &[(&op.from, MODIFYING), (&op.to, MODIFYING)],
                };
                for (key, status) in touched {
                    if let Some(c) = self.clusters.get_mut(*key)
                        && !ctx.down(&key.region)
                    {
                        c.status = (*status).to_owned();
                    }
                }
                let duration = match op.kind {
                    OpKind::Failover => ctx.timings.failover(),
                    OpKind::Switchover => {
                        let lag = self.clusters.get(&op.to).map(|c| c.lag).unwrap_or_default();
                        self.event(
                            at,
                            ctx,
                            "RDS-EVENT-0183",
                            &op.to,
                            format!(
                                "Waiting for data synchronization across global cluster members. Current lags behind primary DB cluster: {} ms.",
                                lag.as_millis()
                            ),
                        );
                        ctx.timings.switchover() + lag
                    }
                };
                self.schedule(
                    at + duration,
                    Action::OpAdvance {
                        global: global.to_owned(),
                        op: op_id,
                    },
                );
            }
            OpPhase::InProgress => self.complete_op(global, &op, at, ctx),
        }
    }

    fn complete_op(&mut self, global: &str, op: &ManagedOp, at: Instant, ctx: &Ctx) {
        let from_region_down = ctx.down(&op.from.region);
        let to_lag = self.clusters.get(&op.to).map(|c| c.lag).unwrap_or_default();
        if let Some(to) = self.clusters.get_mut(&op.to) {
            to.status = AVAILABLE.to_owned();
            to.promote_writer();
            to.lag = Duration::ZERO;
            to.writable_since = Some(ctx.clock.wall(at));
        }
        let g = self.globals.get_mut(global).expect("op's global exists");
        g.writer = Some(op.to.clone());
        g.op = None;
        match op.kind {
            OpKind::Switchover => {
                if let Some(from) = self.clusters.get_mut(&op.from) {
                    from.status = AVAILABLE.to_owned();
                    from.demote_writer();
                    from.lag = to_lag;
                }
                self.event(
                    at,
                    ctx,
                    "RDS-EVENT-0182",
                    &op.from,
                    format!(
                        "Old primary DB cluster {} in Region {} successfully shut down.",
                        op.from.id, op.from.region
                    ),
                );
                self.event(
                    at,
                    ctx,
                    "RDS-EVENT-0184",
                    &op.to,
                    format!(
                        "New primary DB cluster {} in Region {} was successfully promoted.",
                        op.to.id, op.to.region
                    ),
                );
                self.event(
                    at,
                    ctx,
                    "RDS-EVENT-0185",
                    &op.to,
                    format!(
                        "Global switchover to DB cluster {} in Region {} finished.",
                        op.to.id, op.to.region
                    ),
                );
            }
            OpKind::Failover => {
                if let Some(from) = self.clusters.get_mut(&op.from) {
                    from.status = AVAILABLE.to_owned();
                    if from_region_down {
                        from.rejoin = Some(Rejoin::WaitingForRegion);
                    } else {
                        from.rejoin = Some(Rejoin::InProgress);
                    }
                }
                if !from_region_down {
                    self.schedule(at + ctx.timings.rejoin(), Action::RejoinDone(op.from.clone()));
                }
                self.event(
                    at,
                    ctx,
                    "RDS-EVENT-0238",
                    &op.to,
                    format!(
                        "Global failover to DB cluster {} in Region {} completed.",
                        op.to.id, op.to.region
                    ),
                );
                if !from_region_down {
                    self.rejoin_started(&op.to, at, ctx);
                }
            }
        }
    }

    /// The global writer of the global cluster `member` belongs to.
    fn writer_of(&self, member: &ClusterKey) -> Option<ClusterKey> {
        let gid = self.clusters.get(member)?.global.as_ref()?;
        self.globals.get(gid)?.writer.clone()
    }

    fn rejoin_started(&mut self, writer: &ClusterKey, at: Instant, ctx: &Ctx) {
        self.event(
            at,
            ctx,
            "RDS-EVENT-0240",
            writer,
            format!(
                "Started resynchronizing members of DB cluster {} in Region {} after global failover.",
                writer.id, writer.region
            ),
        );
    }

    fn finish_rejoin(&mut self, key: &ClusterKey, at: Instant, ctx: &Ctx) {
        let Some(c) = self.clusters.get_mut(key) else { return };
        if c.rejoin != Some(Rejoin::InProgress) {
            return;
        }
        c.rejoin = None;
        c.demote_writer();
        c.status = AVAILABLE.to_owned();
        // Before rebuilding the old primary as a secondary, AWS snapshots its old volume at the point of
        // failure, so that the writes the failover lost can be recovered.
        let when = ctx.clock.wall(at);
        let id = format!(
            "rds:unplanned-global-failover-{}-{}",
            key.id,
            when.strftime("%Y-%m-%d-%H-%M")
        );
        let snapshot = Snapshot {
            region: key.region.clone(),
            arn: format!("arn:aws:rds:{}:{}:cluster-snapshot:{id}", key.region, self.account),
            id,
            cluster_id: key.id.clone(),
            engine: c.engine.clone(),
            engine_version: c.engine_version.clone(),
            created: when,
            snapshot_type: "automated",
        };
        self.snapshots.push(snapshot);
        if let Some(writer) = self.writer_of(key) {
            self.event(
                at,
                ctx,
                "RDS-EVENT-0241",
                &writer,
                format!(
                    "Finished resynchronizing members of DB cluster {} in Region {} after global failover.",
                    writer.id, writer.region
                ),
            );
        }
    }

    pub fn on_region_down(&mut self, region: &str, now: Instant, ctx: &Ctx) {
        let ops: Vec<(String, ManagedOp)> = self
            .globals
            .values()
            .filter_map(|g| g.op.clone().map(|op| (g.id.clone(), op)))
            .collect();
        for (gid, op) in ops {
            let cancel = match op.kind {
                // A switchover needs both sides.
                OpKind::Switchover => op.from.region == region || op.to.region == region,
                // A managed failover is what you do when the primary's Region is gone; only losing the
                // target stops it.
                OpKind::Failover => op.to.region == region,
            };
            if !cancel {
                continue;
            }
            if let Some(g) = self.globals.get_mut(&gid) {
                g.op = None;
            }
            for key in [&op.from, &op.to] {
                if let Some(c) = self.clusters.get_mut(key) {
                    c.status = AVAILABLE.to_owned();
                }
            }
            match op.kind {
                OpKind::Switchover => self.event(
                    now,
                    ctx,
                    "RDS-EVENT-0186",
                    &op.to,
                    format!(
                        "Global switchover to DB cluster {} in Region {} is cancelled.",
                        op.to.id, op.to.region
                    ),
                ),
                OpKind::Failover => self.event(
                    now,
                    ctx,
                    "RDS-EVENT-0239",
                    &op.to,
                    format!(
                        "Global failover to DB cluster {} in Region {} failed.",
                        op.to.id, op.to.region
                    ),
                ),
            }
        }
    }

    pub fn on_region_up(&mut self, region: &str, now: Instant, ctx: &Ctx) {
        let waiting: Vec<ClusterKey> = self
            .clusters
            .values()
            .filter(|c| c.key.region == region && c.rejoin == Some(Rejoin::WaitingForRegion))
            .map(|c| c.key.clone())
            .collect();
        for key in waiting {
            if let Some(c) = self.clusters.get_mut(&key) {
                c.rejoin = Some(Rejoin::InProgress);
            }
            if let Some(writer) = self.writer_of(&key) {
                self.rejoin_started(&writer, now, ctx);
            }
            self.schedule(now + ctx.timings.rejoin(), Action::RejoinDone(key));
        }
    }

    // ---- lookups ----

    /// A cluster by identifier or ARN, as seen from `region` (clusters are regional).
    pub fn find_cluster(&self, region: &str, id_or_arn: &str) -> Option<&DbCluster> {
        if id_or_arn.starts_with("arn:") {
            self.clusters
                .values()
                .find(|c| c.arn == id_or_arn && c.key.region == region)
        } else {
            self.clusters.get(&ClusterKey {
                region: region.to_owned(),
                id: id_or_arn.to_ascii_lowercase(),
            })
        }
    }

    /// A cluster by ARN in any Region (global cluster operations name members by ARN).
    fn find_by_arn(&self, arn: &str) -> Option<&DbCluster> {
        self.clusters.values().find(|c| c.arn == arn)
    }

    pub fn find_global(&self, id: &str) -> Option<&GlobalCluster> {
        let id = id.to_ascii_lowercase();
        self.globals
            .get(&id)
            .or_else(|| self.globals.values().find(|g| g.arn == id))
    }

    // ---- API actions ----

    pub fn describe_global_clusters(&self, id: Option<&str>) -> Result<Vec<GlobalClusterView>, ApiError> {
        match id {
            Some(id) => {
                let g = self
                    .find_global(id)
                    .ok_or_else(|| ApiError::global_cluster_not_found(id))?;
                Ok(vec![self.global_view(g)])
            }
            None => Ok(self.globals.values().map(|g| self.global_view(g)).collect()),
        }
    }

    pub fn describe_db_clusters(&self, region: &str, id: Option<&str>) -> Result<Vec<ClusterView>, ApiError> {
        match id {
            Some(id) => {
                let c = self
                    .find_cluster(region, id)
                    .ok_or_else(|| ApiError::db_cluster_not_found(id))?;
                Ok(vec![self.cluster_view(c)])
            }
            None => Ok(self
                .clusters
                .values()
                .filter(|c| c.key.region == region)
                .map(|c| self.cluster_view(c))
                .collect()),
        }
    }

    /// RemoveFromGlobalCluster: the member leaves at once and is promoted to a standalone writable
    /// cluster over `detach_ms`. Sent to the Region of the cluster being removed.
    pub fn remove_from_global_cluster(
        &mut self,
        region: &str,
        global_id: &str,
        cluster_id: &str,
        now: Instant,
        ctx: &Ctx,
    ) -> Result<GlobalClusterView, ApiError> {
        let g = self
            .find_global(global_id)
            .ok_or_else(|| ApiError::global_cluster_not_found(global_id))?;
        let gid = g.id.clone();
        let c = self
            .find_cluster(region, cluster_id)
            .ok_or_else(|| ApiError::db_cluster_not_found(cluster_id))?;
        let key = c.key.clone();
        if c.global.as_deref() != Some(gid.as_str()) {
            return Err(ApiError::invalid_parameter_value(format!(
                "The specified DB cluster {} is not found in global cluster {gid}.",
                c.arn
            )));
        }
        if let Some(op) = &g.op {
            return Err(ApiError::invalid_global_cluster_state(format!(
                "Global cluster {gid} is in the middle of a {} and cannot be modified.",
                op_noun(op.kind)
            )));
        }
        if g.writer.as_ref() == Some(&key) && g.members.len() > 1 {
            return Err(ApiError::invalid_global_cluster_state(format!(
                "The primary cluster {} cannot be removed from global cluster {gid} while it has secondary clusters. Remove the secondary clusters first.",
                c.arn
            )));
        }
        let was_writer = g.writer.as_ref() == Some(&key);
        let g = self.globals.get_mut(&gid).expect("found above");
        g.members.retain(|m| m != &key);
        if was_writer {
            g.writer = None;
        }
        let c = self.clusters.get_mut(&key).expect("found above");
        c.global = None;
        c.rejoin = None;
        if !was_writer {
            c.status = PROMOTING.to_owned();
            self.schedule(now + ctx.timings.detach(), Action::DetachDone(key));
        }
        Ok(self.global_view(&self.globals[&gid]))
    }

    /// FailoverGlobalCluster and SwitchoverGlobalCluster: starts a managed operation after checking
    /// everything AWS checks.
    pub fn start_managed_op(
        &mut self,
        global_id: &str,
        target: &str,
        kind: OpKind,
        now: Instant,
        ctx: &Ctx,
    ) -> Result<GlobalClusterView, ApiError> {
        let g = self
            .find_global(global_id)
            .ok_or_else(|| ApiError::global_cluster_not_found(global_id))?;
        let gid = g.id.clone();
        let to = self
            .find_by_arn(target)
            .or_else(|| {
                // An identifier names a member in any Region of the global cluster.
                g.members
                    .iter()
                    .find(|m| m.id == target.to_ascii_lowercase())
                    .and_then(|m| self.clusters.get(m))
            })
            .ok_or_else(|| ApiError::db_cluster_not_found(target))?;
        if to.global.as_deref() != Some(gid.as_str()) {
            return Err(ApiError::invalid_global_cluster_state(format!(
                "The specified target DB cluster {} is not a secondary cluster of the global cluster {gid}.",
                to.arn
            )));
        }
        if let Some(op) = &g.op {
            return Err(ApiError::invalid_global_cluster_state(format!(
                "Global cluster {gid} is already in the middle of a {} to {}.",
                op_noun(op.kind),
                self.clusters.get(&op.to).map(|c| c.arn.as_str()).unwrap_or("?")
            )));
        }
        let Some(from_key) = g.writer.clone() else {
            return Err(ApiError::invalid_global_cluster_state(format!(
                "Global cluster {gid} has no primary cluster."
            )));
        };
        if from_key == to.key {
            return Err(ApiError::invalid_global_cluster_state(format!(
                "The specified target DB cluster {} is already the primary cluster of global cluster {gid}.",
                to.arn
            )));
        }
        if ctx.down(&to.key.region) || to.status != AVAILABLE {
            return Err(ApiError::invalid_db_cluster_state(format!(
                "The target DB cluster {} is not in the available state.",
                to.arn
            )));
        }
        if to.rejoin.is_some() {
            return Err(ApiError::invalid_db_cluster_state(format!(
                "The target DB cluster {} has not finished rejoining the global cluster.",
                to.arn
            )));
        }
        if to.instances.is_empty() {
            return Err(ApiError::invalid_db_cluster_state(format!(
                "The target DB cluster {} has no DB instances. Add a DB instance before promoting it.",
                to.arn
            )));
        }
        let from = &self.clusters[&from_key];
        if from.major_minor() != to.major_minor() {
            return Err(ApiError::invalid_global_cluster_state(format!(
                "The engine version {} of the target DB cluster {} does not match the major and minor version {} of the primary cluster {}. Managed failover and switchover need matching major and minor versions.",
                to.engine_version, to.arn, from.engine_version, from.arn
            )));
        }
        if kind == OpKind::Switchover {
            if ctx.down(&from_key.region) {
                return Err(ApiError::invalid_global_cluster_state(format!(
                    "Cannot switch over global cluster {gid}: the primary DB cluster {} in Region {} is unreachable. Use a failover with AllowDataLoss instead.",
                    from.arn, from_key.region
                )));
            }
            if from.status != AVAILABLE {
                return Err(ApiError::invalid_db_cluster_state(format!(
                    "Cannot switch over global cluster {gid}: the primary DB cluster {} is in the {} state, not available.",
                    from.arn, from.status
                )));
            }
        }
        let (to_key, to_arn) = (to.key.clone(), to.arn.clone());
        let id = self.next_id();
        let g = self.globals.get_mut(&gid).expect("found above");
        g.op = Some(ManagedOp {
            id,
            kind,
            phase: OpPhase::Pending,
            from: from_key.clone(),
            to: to_key.clone(),
        });
        match kind {
            OpKind::Switchover => self.event(
                now,
                ctx,
                "RDS-EVENT-0181",
                &to_key,
                format!(
                    "Global switchover to DB cluster {} in Region {} started.",
                    to_key.id, to_key.region
                ),
            ),
            // AWS documents no "started" event for a managed failover: its first event is the
            // completion (RDS-EVENT-0238).
            OpKind::Failover => {}
        }
        let _ = to_arn;
        self.schedule(
            now + ctx.timings.pending(),
            Action::OpAdvance {
                global: gid.clone(),
                op: id,
            },
        );
        Ok(self.global_view(&self.globals[&gid]))
    }

    /// DescribeDBClusterSnapshots in one Region.
    pub fn describe_snapshots(
        &self,
        region: &str,
        cluster: Option<&str>,
        snapshot: Option<&str>,
        snapshot_type: Option<&str>,
    ) -> Result<Vec<&Snapshot>, ApiError> {
        let found: Vec<&Snapshot> = self
            .snapshots
            .iter()
            .filter(|s| s.region == region)
            .filter(|s| {
                cluster.is_none_or(|c| {
                    c.eq_ignore_ascii_case(&s.cluster_id) || c.ends_with(&format!(":cluster:{}", s.cluster_id))
                })
            })
            .filter(|s| snapshot.is_none_or(|id| id == s.id || id == s.arn))
            .filter(|s| snapshot_type.is_none_or(|t| t == s.snapshot_type))
            .collect();
        if let Some(id) = snapshot
            && found.is_empty()
        {
            return Err(ApiError::new(
                404,
                "DBClusterSnapshotNotFoundFault",
                format!("DBClusterSnapshot {id} not found."),
            ));
        }
        Ok(found)
    }

    /// DescribeEvents in one Region: the events whose date is in `[start, end]`, oldest first.
    pub fn describe_events(&self, region: &str, filter: &EventFilter) -> Vec<&Event> {
        self.events
            .iter()
            .filter(|e| e.region == region)
            .filter(|e| filter.start.is_none_or(|s| e.date >= s))
            .filter(|e| filter.end.is_none_or(|s| e.date <= s))
            .filter(|e| {
                filter
                    .source_id
                    .as_deref()
                    .is_none_or(|s| s.eq_ignore_ascii_case(&e.source_id) || s == e.source_arn)
            })
            .filter(|e| filter.source_type.as_deref().is_none_or(|t| t == e.source_type))
            .filter(|e| {
                filter.categories.is_empty() || e.categories.iter().any(|c| filter.categories.iter().any(|f| f == c))
            })
            .collect()
    }

    // ---- views ----

    pub fn global_view(&self, g: &GlobalCluster) -> GlobalClusterView {
        let arn_of = |k: &ClusterKey| self.clusters.get(k).map(|c| c.arn.clone()).unwrap_or_default();
        let members = g
            .members
            .iter()
            .map(|k| {
                let is_writer = g.writer.as_ref() == Some(k);
                let c = self.clusters.get(k);
                MemberView {
                    db_cluster_arn: arn_of(k),
                    region: k.region.clone(),
                    cluster_id: k.id.clone(),
                    is_writer,
                    readers: if is_writer {
                        g.members.iter().filter(|m| *m != k).map(&arn_of).collect()
                    } else {
                        Vec::new()
                    },
                    write_forwarding: (!is_writer).then(|| c.map_or(WriteForwarding::Unknown, |c| c.write_forwarding)),
                    synchronization_status: (!is_writer).then(|| {
                        if c.is_some_and(|c| c.rejoin.is_some() || c.seeding) {
                            SYNC_PENDING_RESYNC.to_owned()
                        } else {
                            SYNC_CONNECTED.to_owned()
                        }
                    }),
                }
            })
            .collect();
        GlobalClusterView {
            id: g.id.clone(),
            arn: g.arn.clone(),
            resource_id: g.resource_id.clone(),
            engine: g.engine.clone(),
            engine_version: g.engine_version.clone(),
            status: g.status().to_owned(),
            endpoint: g.endpoint.clone(),
            storage_encrypted: g.storage_encrypted,
            deletion_protection: g.deletion_protection,
            endpoint_target: g.writer.as_ref().map(&arn_of),
            members,
            failover_state: g.op.as_ref().map(|op| FailoverStateView {
                status: op.state_status().to_owned(),
                from_db_cluster_arn: arn_of(&op.from),
                to_db_cluster_arn: arn_of(&op.to),
                is_data_loss_allowed: op.kind == OpKind::Failover,
            }),
        }
    }

    pub fn cluster_view(&self, c: &DbCluster) -> ClusterView {
        ClusterView {
            id: c.key.id.clone(),
            region: c.key.region.clone(),
            arn: c.arn.clone(),
            resource_id: c.resource_id.clone(),
            engine: c.engine.clone(),
            engine_version: c.engine_version.clone(),
            status: c.status.clone(),
            endpoint: c.endpoint.clone(),
            reader_endpoint: c.reader_endpoint.clone(),
            port: c.port,
            endpoint_address: c.endpoint_address,
            reader_endpoint_address: c.reader_endpoint_address,
            hosted_zone_id: c.hosted_zone_id.clone(),
            created: c.created,
            global_cluster_id: c.global.clone(),
            members: c.instances.clone(),
            replication_lag_ms: u64::try_from(c.lag.as_millis()).unwrap_or(u64::MAX),
            rejoin: c.rejoin,
            write_forwarding: self.secondary_of_global(c).then_some(c.write_forwarding),
            writable_since: c.writable_since,
            settings: c.settings.clone(),
        }
    }

    /// A member of a global cluster that is not its writer.
    fn secondary_of_global(&self, c: &DbCluster) -> bool {
        c.global
            .as_ref()
            .and_then(|g| self.globals.get(g))
            .is_some_and(|g| g.members.contains(&c.key) && g.writer.as_ref() != Some(&c.key))
    }

    // ---- admin ----

    pub fn set_lag(&mut self, key: &ClusterKey, lag: Duration) -> bool {
        match self.clusters.get_mut(key) {
            Some(c) => {
                c.lag = lag;
                true
            }
            None => false,
        }
    }

    pub fn set_write_forwarding(&mut self, key: &ClusterKey, status: WriteForwarding) -> bool {
        match self.clusters.get_mut(key) {
            Some(c) => {
                c.write_forwarding = status;
                true
            }
            None => false,
        }
    }

    /// Sets the address the DNS server answers for the cluster's endpoint (`writer`) or reader endpoint.
    pub fn set_endpoint_address(&mut self, key: &ClusterKey, writer: bool, address: IpAddr) -> bool {
        match self.clusters.get_mut(key) {
            Some(c) if writer => {
                c.endpoint_address = address;
                true
            }
            Some(c) => {
                c.reader_endpoint_address = address;
                true
            }
            None => false,
        }
    }

    /// Sets the cluster's `Port`.
    pub fn set_port(&mut self, key: &ClusterKey, port: u16) -> bool {
        match self.clusters.get_mut(key) {
            Some(c) => {
                c.port = port;
                true
            }
            None => false,
        }
    }

    pub fn set_status(&mut self, key: &ClusterKey, status: &str) -> bool {
        match self.clusters.get_mut(key) {
            Some(c) => {
                c.status = status.to_owned();
                true
            }
            None => false,
        }
    }
}

fn op_noun(kind: OpKind) -> &'static str {
    match kind {
        OpKind::Failover => "failover",
        OpKind::Switchover => "switchover",
    }
}

/// DescribeEvents parameters the emulator honours.
#[derive(Debug, Default, Clone)]
pub struct EventFilter {
    pub source_id: Option<String>,
    pub source_type: Option<String>,
    pub start: Option<jiff::Timestamp>,
    pub end: Option<jiff::Timestamp>,
    pub categories: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GlobalClusterView {
    pub id: String,
    pub arn: String,
    pub resource_id: String,
    pub engine: String,
    pub engine_version: String,
    pub status: String,
    /// The global writer endpoint (`GlobalClusters[].Endpoint`): `{id}.global-{stable id}.global.rds.amazonaws.com`.
    pub endpoint: String,
    pub storage_encrypted: bool,
    pub deletion_protection: bool,
    /// The ARN of the cluster the global writer endpoint reaches now: the writer member (it moves with
    /// a managed failover or switchover; a detached cluster is never it); `None` while there is none.
    pub endpoint_target: Option<String>,
    pub members: Vec<MemberView>,
    pub failover_state: Option<FailoverStateView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MemberView {
    pub db_cluster_arn: String,
    pub region: String,
    pub cluster_id: String,
    pub is_writer: bool,
    pub readers: Vec<String>,
    pub synchronization_status: Option<String>,
    /// `GlobalWriteForwardingStatus`, for a secondary.
    pub write_forwarding: Option<WriteForwarding>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FailoverStateView {
    pub status: String,
    pub from_db_cluster_arn: String,
    pub to_db_cluster_arn: String,
    pub is_data_loss_allowed: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClusterView {
    pub id: String,
    pub region: String,
    pub arn: String,
    pub resource_id: String,
    pub engine: String,
    pub engine_version: String,
    pub status: String,
    pub endpoint: String,
    pub reader_endpoint: String,
    pub port: u16,
    /// What awsim's DNS server answers for `endpoint`.
    pub endpoint_address: IpAddr,
    /// What awsim's DNS server answers for `reader_endpoint`.
    pub reader_endpoint_address: IpAddr,
    pub hosted_zone_id: String,
    pub created: jiff::Timestamp,
    pub global_cluster_id: Option<String>,
    pub members: Vec<Instance>,
    pub replication_lag_ms: u64,
    pub rejoin: Option<Rejoin>,
    /// `GlobalWriteForwardingStatus`, while the cluster is a secondary of a global cluster.
    pub write_forwarding: Option<WriteForwarding>,
    /// When the cluster last became writable through a detach or a managed operation (`None` since
    /// the scenario was loaded otherwise): the moment on the emulator's timeline, on the same clock as
    /// the call log's `at`.
    pub writable_since: Option<jiff::Timestamp>,
    /// Subnet group, security groups, cluster parameter group, encryption, deletion protection.
    pub settings: ClusterSettings,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_versions_compare_on_major_and_minor() {
        assert_eq!(major_minor("15.4"), "15.4");
        assert_eq!(major_minor("8.0.mysql_aurora.3.05.2"), "3.05");
        assert_ne!(major_minor("15.4"), major_minor("15.5"));
        assert_ne!(
            major_minor("8.0.mysql_aurora.3.04.0"),
            major_minor("8.0.mysql_aurora.3.08.1")
        );
        assert_eq!(
            major_minor("8.0.mysql_aurora.3.05.0"),
            major_minor("8.0.mysql_aurora.3.05.2")
        );
    }

    #[test]
    fn a_detached_cluster_records_the_moment_it_became_writable_however_late_it_is_read() {
        let scenario = Scenario::two_region_example();
        let mut world = crate::model::World::from_scenario(&scenario, Instant::now());
        let detached_at = Instant::now();
        let (rds, ctx) = world.split_rds();
        rds.remove_from_global_cluster("us-west-2", "orders-global", "orders-west", detached_at, &ctx)
            .unwrap();
        let key = ClusterKey {
            region: "us-west-2".into(),
            id: "orders-west".into(),
        };
        assert_eq!(world.rds.clusters[&key].writable_since, None, "promoting");
        // Looked at long after the promotion finished: the moment is when it finished, not when seen.
        let due = detached_at + world.timings.detach();
        world.advance(due + Duration::from_secs(60));
        let c = &world.rds.clusters[&key];
        assert!(c.has_writer() && c.status == AVAILABLE);
        assert_eq!(c.writable_since, Some(world.clock.wall(due)));
        assert_eq!(world.rds.cluster_view(c).writable_since, Some(world.clock.wall(due)));
    }

    #[test]
    fn a_managed_failover_target_records_the_moment_it_became_the_writer() {
        let mut world = crate::model::World::from_scenario(&Scenario::two_region_example(), Instant::now());
        let started = Instant::now();
        let (rds, ctx) = world.split_rds();
        rds.start_managed_op("orders-global", "orders-west", OpKind::Failover, started, &ctx)
            .unwrap();
        let done = started + world.timings.pending() + world.timings.failover();
        world.advance(done + Duration::from_secs(60));
        let key = ClusterKey {
            region: "us-west-2".into(),
            id: "orders-west".into(),
        };
        assert_eq!(world.rds.clusters[&key].writable_since, Some(world.clock.wall(done)));
    }

    #[test]
    fn generated_names_are_stable_and_regional() {
        let (w1, r1) = endpoints("123456789012", "us-east-1", "orders");
        let (w2, _) = endpoints("123456789012", "us-east-1", "orders");
        let (w3, _) = endpoints("123456789012", "us-west-2", "orders");
        assert_eq!(w1, w2);
        assert_ne!(w1, w3);
        assert!(w1.starts_with("orders.cluster-") && w1.ends_with(".us-east-1.rds.amazonaws.com"));
        assert!(r1.starts_with("orders.cluster-ro-"));
    }
}
