//! The narrow interfaces the engine (approval rules, planning, the runbook) works through, and the
//! plain data that crosses them. Adapters implement them: `aws/` for Aurora and DNS, `slack/` for chat
//! and the user directory. No AWS SDK or Slack type appears here: that is what keeps the engine
//! testable and the SDKs from leaking everywhere.

use crate::types::{Region, SlackUserId, UserGroupId};
use async_trait::async_trait;

/// An AWS call that failed, classified for the engine's decisions. The message is AWS's (code and
/// text) and is safe to show to users: it never contains credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct AwsError {
    pub kind: AwsErrorKind,
    pub message: String,
    /// The call that failed and AWS's error code (or a class: `unreachable`, `timeout`,
    /// `bad_response`), as `aws::classify` read them; `None` for an error made up elsewhere. Counted
    /// in the metrics (`aws_errors_total`), never shown.
    pub failed_call: Option<FailedCall>,
}

/// Which AWS call failed, and how, in bounded terms (for the metrics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedCall {
    /// `service:Operation`, e.g. `rds:FailoverGlobalCluster`.
    pub action: &'static str,
    /// AWS's error code (`ThrottlingException`), or `unreachable`, `timeout`, `bad_response`, `other`.
    pub code: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsErrorKind {
    /// The resource does not exist (where the call was sent).
    NotFound,
    /// AWS refused the operation in the resource's current state.
    InvalidState,
    /// Throttling: try again later.
    Throttled,
    /// The bot's IAM principal may not make the call: a person must change a policy.
    AccessDenied,
    /// The service could not be reached or answered 5xx: try again later.
    Unavailable,
    /// Anything else (bad parameters, ...): do not retry.
    Other,
}

impl AwsError {
    pub fn new(kind: AwsErrorKind, message: impl Into<String>) -> Self {
        AwsError {
            kind,
            message: message.into(),
            failed_call: None,
        }
    }

    /// The same error, saying which call failed with which code (see [`FailedCall`]).
    pub fn from_call(mut self, action: &'static str, code: impl Into<String>) -> Self {
        self.failed_call = Some(FailedCall {
            action,
            code: code.into(),
        });
        self
    }

    /// Worth retrying after a pause.
    pub fn is_transient(&self) -> bool {
        matches!(self.kind, AwsErrorKind::Throttled | AwsErrorKind::Unavailable)
    }
}

/// A member of a global cluster, as DescribeGlobalClusters shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Member {
    pub region: Region,
    pub cluster_id: String,
    pub arn: String,
    pub is_writer: bool,
    /// `connected`, `pending-resync`, or absent (the writer).
    pub sync: Option<String>,
}

/// A global cluster's topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    pub global_cluster_id: String,
    pub status: String,
    pub engine_version: String,
    pub members: Vec<Member>,
    /// `FailoverState.Status` while a managed failover or switchover is in progress.
    pub operation_in_progress: Option<String>,
    /// `FailoverState.ToDbClusterArn`: the cluster that operation promotes.
    pub operation_target: Option<String>,
    /// `GlobalClusters[].Endpoint`, the global writer endpoint
    /// (`{id}.global-{stable id}.global.rds.amazonaws.com`, RDS API reference, GlobalCluster): it always
    /// reaches the writer member, and AWS moves it with a managed failover or switchover; a cluster
    /// detached from the global cluster no longer has it. `None` when AWS does not give one.
    pub writer_endpoint: Option<String>,
}

impl Topology {
    pub fn writer(&self) -> Option<&Member> {
        self.members.iter().find(|m| m.is_writer)
    }

    pub fn member_in(&self, region: &Region) -> Option<&Member> {
        self.members.iter().find(|m| &m.region == region)
    }

    pub fn secondaries(&self) -> impl Iterator<Item = &Member> {
        self.members.iter().filter(|m| !m.is_writer)
    }
}

/// A regional cluster, as DescribeDBClusters shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterState {
    pub region: Region,
    pub cluster_id: String,
    pub arn: String,
    pub status: String,
    pub engine_version: String,
    /// Has an instance with `IsClusterWriter = true`.
    pub has_writer: bool,
    pub instances: usize,
    pub endpoint: Option<String>,
    pub reader_endpoint: Option<String>,
    /// `Port` (DescribeDBClusters): where both endpoints accept connections.
    pub port: Option<u16>,
    /// The global cluster it belongs to, if any.
    pub global_cluster_id: Option<String>,
    /// `GlobalWriteForwardingStatus` (DescribeDBClusters), given for a secondary of a global cluster:
    /// `enabled`, `disabled`, `enabling`, `disabling` or `unknown` (other values are kept as AWS gives
    /// them). With forwarding on, the secondary sends the writes it receives to the global writer.
    pub write_forwarding: Option<String>,
}

impl ClusterState {
    /// Available with a writer instance: the only state DNS may be pointed at.
    pub fn is_writable(&self) -> bool {
        self.status == "available" && self.has_writer
    }

    /// Write forwarding is on, or on its way on or off (`enabled`, `enabling`, `disabling`): writes sent
    /// to this secondary may be forwarded to the global writer.
    pub fn forwards_writes(&self) -> bool {
        matches!(
            self.write_forwarding.as_deref(),
            Some("enabled" | "enabling" | "disabling")
        )
    }
}

/// The Aurora control plane, as the engine needs it.
#[async_trait]
pub trait Aurora: Send + Sync {
    /// The global cluster's topology, read from the first of `regions` that answers.
    async fn topology(&self, global_cluster_id: &str, regions: &[Region]) -> Result<Topology, AwsError>;
    /// One cluster, read in its own Region.
    async fn cluster(&self, region: &Region, cluster_id: &str) -> Result<ClusterState, AwsError>;
    /// RemoveFromGlobalCluster, sent to the member's own Region.
    async fn detach(&self, global_cluster_id: &str, member: &Member) -> Result<(), AwsError>;
    /// FailoverGlobalCluster with AllowDataLoss (managed unplanned failover), sent to the target's
    /// Region (the primary's may be the one that is gone).
    async fn failover(&self, global_cluster_id: &str, target: &Member) -> Result<(), AwsError>;
    /// SwitchoverGlobalCluster, sent to the primary's Region.
    async fn switchover(&self, global_cluster_id: &str, target: &Member, primary: &Member) -> Result<(), AwsError>;
    /// The RDS events of a cluster since `since`, oldest first.
    async fn events(
        &self,
        region: &Region,
        cluster_id: &str,
        since: jiff::Timestamp,
    ) -> Result<Vec<RdsEvent>, AwsError>;
    /// The point-of-failure snapshots (`rds:unplanned-global-failover-…`) of a cluster made at or after
    /// `since` (older ones belong to earlier failovers), newest first.
    async fn failover_snapshots(
        &self,
        region: &Region,
        cluster_id: &str,
        since: jiff::Timestamp,
    ) -> Result<Vec<String>, AwsError>;
}

/// An RDS event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RdsEvent {
    pub date: jiff::Timestamp,
    pub message: String,
}

/// How far back a replication-lag datapoint may be and still count as the current lag (the metrics
/// are published every minute, a minute or two late).
pub const LAG_WINDOW: std::time::Duration = std::time::Duration::from_secs(240);

/// CloudWatch, as the engine needs it.
#[async_trait]
pub trait Metrics: Send + Sync {
    /// How far `secondary` is behind the writer in `source_region`, in milliseconds, as its most recent
    /// `AuroraGlobalDBRPOLag` (or, where that is not published, `AuroraGlobalDBReplicationLag`) says;
    /// `None` when neither has a datapoint within `LAG_WINDOW`.
    async fn replication_lag_ms(&self, secondary: &Member, source_region: &Region) -> Result<Option<f64>, AwsError>;
}

/// A hosted zone, as Route 53's GetHostedZone shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostedZone {
    /// Without `/hostedzone/`.
    pub id: String,
    /// The zone's domain as Route 53 returns it: lower case, with the trailing dot.
    pub name: String,
    pub private: bool,
}

/// One record set, as Route 53's ListResourceRecordSets shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSet {
    /// As Route 53 returns it: lower case, with the trailing dot.
    pub name: String,
    /// `CNAME`, `A`, `TXT`, ...
    pub record_type: String,
    /// The values of a plain record (empty for an alias).
    pub values: Vec<String>,
    /// `AliasTarget.DNSName` of an alias record.
    pub alias_target: Option<String>,
    /// `SetIdentifier` of a record with a routing policy.
    pub set_identifier: Option<String>,
    /// That routing policy: `weighted`, `latency`, `failover`, `geolocation`, `geoproximity`,
    /// `multivalue answer` or `IP-based`.
    pub routing: Option<String>,
}

impl RecordSet {
    /// A simple-routing CNAME that is not an alias: the only kind of record the bot moves.
    pub fn is_plain_cname(&self) -> bool {
        self.record_type == "CNAME" && self.alias_target.is_none() && self.set_identifier.is_none()
    }
}

/// A name as Route 53 returns it: lower case, with the trailing dot (the bot's configured names hold
/// only letters, digits, `-` and `_`, which Route 53 does not escape).
pub fn route53_name(name: &str) -> String {
    let mut n = name.trim_end_matches('.').to_ascii_lowercase();
    n.push('.');
    n
}

/// Route 53, as the engine needs it.
#[async_trait]
pub trait Dns: Send + Sync {
    /// GetHostedZone: the zone's domain.
    async fn hosted_zone(&self, zone_id: &str) -> Result<HostedZone, AwsError>;
    /// Every record set at exactly `name` (any type, aliases and routing policies included), from
    /// ListResourceRecordSets.
    async fn records_at(&self, zone_id: &str, name: &str) -> Result<Vec<RecordSet>, AwsError>;
    /// The value of each CNAME (`None` where there is no such CNAME).
    async fn cnames(&self, zone_id: &str, names: &[&str]) -> Result<Vec<Option<String>>, AwsError>;
    /// UPSERTs the CNAMEs in one change batch; returns the change id.
    async fn upsert_cnames(
        &self,
        zone_id: &str,
        records: &[(&str, &str)],
        ttl: i64,
        comment: &str,
    ) -> Result<String, AwsError>;
    /// Whether the change is INSYNC.
    async fn change_insync(&self, change_id: &str) -> Result<bool, AwsError>;
}

/// One question for IAM's policy simulator: may the bot's own principal call each of `actions` on each
/// of `resources` (every pair is evaluated), given `context`?
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionQuery {
    /// `service:Action`, e.g. `rds:RemoveFromGlobalCluster`.
    pub actions: Vec<String>,
    /// Resource ARNs.
    pub resources: Vec<String>,
    /// Condition keys and their values (string lists), e.g. the record names of a change batch.
    pub context: Vec<(String, Vec<String>)>,
}

/// What the simulator said about one action on one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Denied by the principal's policies: `explicit` by a Deny statement, otherwise no statement
    /// allows it.
    Denied {
        explicit: bool,
    },
    /// The simulator cannot decide alone (an SCP or permissions boundary, a condition it was not
    /// given the context for): why, in words.
    Undecided(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    pub action: String,
    pub resource: String,
    pub verdict: Verdict,
}

/// IAM's policy simulator, for the principal the bot runs as.
#[async_trait]
pub trait Permissions: Send + Sync {
    /// Evaluates every query; `Err` says, for people, why the simulator could not answer (the bot may
    /// not call it, it could not be reached, the principal cannot be simulated).
    async fn evaluate(&self, queries: &[PermissionQuery]) -> Result<Vec<Evaluation>, String>;
}

#[derive(Debug, thiserror::Error)]
#[error("cannot queue the Slack message: {0}")]
pub struct ChatError(pub String);

/// Who is in which Slack user group.
#[async_trait]
pub trait Directory: Send + Sync {
    async fn members(&self, group: &UserGroupId) -> Result<Vec<SlackUserId>, ChatError>;
}

/// Wall-clock time, injectable so that expiry can be tested without waiting.
pub trait Clock: Send + Sync {
    fn now(&self) -> jiff::Timestamp;
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> jiff::Timestamp {
        jiff::Timestamp::now()
    }
}

/// Wall-clock time that moves with tokio's clock: `start` plus the time tokio says has passed since
/// `at`. Under paused time (`#[tokio::test(start_paused = true)]`) it moves exactly as far as the
/// sleeps do, so deadlines read from the `Clock` and the `tokio::time::sleep`s between polls agree.
/// The tests use it; production uses `SystemClock` (see ARCHITECTURE.md, Tests, for why).
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    start: jiff::Timestamp,
    at: tokio::time::Instant,
}

impl TokioClock {
    /// Starts at the wall clock's now.
    pub fn new() -> Self {
        TokioClock::starting_at(jiff::Timestamp::now())
    }

    /// Starts at `start`, now.
    pub fn starting_at(start: jiff::Timestamp) -> Self {
        TokioClock {
            start,
            at: tokio::time::Instant::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        TokioClock::new()
    }
}

impl Clock for TokioClock {
    fn now(&self) -> jiff::Timestamp {
        let elapsed = jiff::SignedDuration::try_from(self.at.elapsed()).unwrap_or(jiff::SignedDuration::MAX);
        self.start.saturating_add(elapsed).unwrap_or(self.start)
    }
}

/// What a rebuild copies from an existing cluster (DescribeDBClusters and DescribeDBInstances of its
/// members, read in the cluster's own Region). Identifiers are as AWS names them in that Region:
/// subnet groups, security groups, parameter groups and a KMS key exist per Region, so a new
/// secondary copies them from a cluster in the Region it is made in (the old primary), and the
/// configuration (`[[clusters.rebuild]]`) names them where there is none.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClusterSpec {
    pub region: Region,
    pub cluster_id: String,
    /// `aurora-mysql` or `aurora-postgresql`.
    pub engine: String,
    pub engine_version: String,
    /// `DBSubnetGroup` (a name).
    pub db_subnet_group: Option<String>,
    /// `VpcSecurityGroups[].VpcSecurityGroupId` (`sg-…`), in AWS's order.
    pub vpc_security_group_ids: Vec<String>,
    /// `DBClusterParameterGroup` (a name).
    pub db_cluster_parameter_group: Option<String>,
    pub storage_encrypted: bool,
    /// `KmsKeyId`: the key's ARN, when the cluster is encrypted.
    pub kms_key_id: Option<String>,
    /// `DeletionProtection`, copied so that the new secondary is as protected as the old one.
    pub deletion_protection: bool,
    /// The cluster's instances (`DBClusterMembers`, read with DescribeDBInstances), writer first.
    pub instances: Vec<InstanceSpec>,
}

/// One DB instance of a cluster, as DescribeDBInstances shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InstanceSpec {
    pub instance_id: String,
    /// `DBInstanceClass`, e.g. `db.r6g.large`.
    pub instance_class: String,
    /// `DBParameterGroups[0].DBParameterGroupName`.
    pub db_parameter_group: Option<String>,
    /// `MonitoringRoleArn` with `MonitoringInterval` (seconds) when Enhanced Monitoring is on: creating
    /// an instance with it needs `iam:PassRole` on the role.
    pub monitoring: Option<(String, i32)>,
    /// `DBInstanceStatus`: `creating`, `available`, ...
    pub status: String,
}

/// CreateDBCluster for a secondary of a global cluster (no master user: it replicates the primary's).
/// RDS API reference, CreateDBCluster ("Creating a secondary cluster in an Aurora global database").
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NewSecondary {
    pub region: Region,
    pub cluster_id: String,
    pub global_cluster_id: String,
    pub engine: String,
    pub engine_version: String,
    pub db_subnet_group: Option<String>,
    pub vpc_security_group_ids: Vec<String>,
    pub db_cluster_parameter_group: Option<String>,
    /// Set for an encrypted primary: a key in `region` (a cross-Region secondary of an encrypted
    /// cluster must name one; AWS refuses it otherwise).
    pub kms_key_id: Option<String>,
    pub deletion_protection: bool,
}

/// CreateDBInstance in a cluster (RDS API reference, CreateDBInstance: `DBClusterIdentifier` given,
/// so storage, engine version and credentials come from the cluster).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NewInstance {
    pub region: Region,
    pub instance_id: String,
    pub cluster_id: String,
    pub engine: String,
    pub instance_class: String,
    pub db_parameter_group: Option<String>,
    /// `(MonitoringRoleArn, MonitoringInterval seconds)`.
    pub monitoring: Option<(String, i32)>,
}

/// Aurora's creating calls, as a rebuild after a detach needs them. Kept apart from [`Aurora`] (which
/// every run uses) because only a rebuild creates anything. Each create is sent once by the runbook
/// and, after a restart, looked for before it is sent again; a create that finds its identifier
/// taken answers `AwsErrorKind::InvalidState` with AWS's `…AlreadyExistsFault` message.
#[async_trait]
pub trait Provisioning: Send + Sync {
    /// DescribeDBClusters and DescribeDBInstances of one cluster in its Region; `NotFound` when there
    /// is no such cluster.
    async fn cluster_spec(&self, region: &Region, cluster_id: &str) -> Result<ClusterSpec, AwsError>;
    /// CreateGlobalCluster with `SourceDBClusterIdentifier` = `source.arn`, sent to the source's
    /// Region: the source becomes the new global cluster's primary.
    async fn create_global_cluster(&self, global_cluster_id: &str, source: &ClusterState) -> Result<(), AwsError>;
    /// CreateDBCluster with `GlobalClusterIdentifier`, in `spec.region`.
    async fn create_secondary(&self, spec: &NewSecondary) -> Result<(), AwsError>;
    /// CreateDBInstance in `spec.cluster_id`, in `spec.region`.
    async fn create_instance(&self, spec: &NewInstance) -> Result<(), AwsError>;
    /// DescribeDBInstances of one instance; `None` when there is no such instance.
    async fn instance(&self, region: &Region, instance_id: &str) -> Result<Option<InstanceSpec>, AwsError>;
}

pub use crate::types::EngineFamily;

/// One connection the database probe makes: where, as whom, and what it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeTarget {
    pub engine: EngineFamily,
    /// The RDS endpoint (cluster or reader endpoint, as DescribeDBClusters gives it) the server's
    /// certificate must name: TLS is verified against this name, whatever address is connected to.
    pub endpoint: String,
    /// The address to connect to (resolved through the application's CNAME); `None`: `endpoint`
    /// resolved by the probe's resolver.
    pub address: Option<std::net::IpAddr>,
    pub port: u16,
    /// The database to connect to.
    pub database: String,
    /// The Secrets Manager secret (name or ARN) holding `{"username": ..., "password": ...}` (the
    /// RDS-managed master user secret's format; other keys are ignored).
    pub secret_id: String,
    /// The secret's Region (`None`: the ARN's, else the bot's own).
    pub secret_region: Option<Region>,
    /// Also write a heartbeat row (opt-in; only when the server is writable).
    pub heartbeat: Option<Heartbeat>,
    /// Before approval, with `heartbeat_table` set: check, read-only, that this table (`table` or
    /// `schema.table`) exists and that the user may write it (PostgreSQL: `SELECT`, `INSERT`,
    /// `UPDATE`; MySQL: it exists and may be read). The write itself comes after the DNS change.
    pub check_heartbeat: Option<String>,
}

/// The opt-in heartbeat write: one row per bot instance, upserted, in a table that must already
/// exist (`writer` text primary key, `written_at` timestamp; README, "Database probe").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    /// `table` or `schema.table`, checked at start-up (letters, digits, `_`, `$`).
    pub table: String,
    /// The row's key: the bot instance's name.
    pub writer: String,
}

/// What one successful connection of the probe found.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeReport {
    /// The address connected to.
    pub address: std::net::SocketAddr,
    /// The server's version string (`SELECT version()`).
    pub server_version: String,
    /// The server refuses writes: `pg_is_in_recovery()` or `transaction_read_only` on PostgreSQL,
    /// `@@innodb_read_only` or `@@read_only` on MySQL.
    pub read_only: bool,
    /// The replica lag as the server reports it, in milliseconds (`None` when it reports none).
    pub lag_ms: Option<f64>,
    /// The heartbeat row was written (asked for, and the server is writable).
    pub heartbeat_written: bool,
    /// What the read-only check of `ProbeTarget::check_heartbeat` found wrong (`None`: not asked, or
    /// nothing wrong): the write after the DNS change would fail.
    pub heartbeat_problem: Option<String>,
    /// From the start of the connection to the last answer.
    pub elapsed: std::time::Duration,
}

/// Why the probe could not connect or run its statements.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct ProbeError {
    pub kind: ProbeErrorKind,
    /// What happened, for a person; never holds the password.
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeErrorKind {
    /// The secret could not be read or is not `{"username", "password"}`: a configuration error.
    Credentials,
    /// The server refused the user or the password: a configuration error.
    Authentication,
    /// The name did not resolve.
    Resolve,
    /// Nothing accepted the connection (refused, unreachable).
    Connect,
    /// No answer within the probe's timeout.
    Timeout,
    /// The TLS handshake failed (a certificate not naming the endpoint, or not from the CA bundle).
    Tls,
    /// A statement failed (a missing heartbeat table, no privilege).
    Query,
    /// A service the probe needs (Secrets Manager) is throttling or cannot be reached: worth another
    /// try.
    Unavailable,
}

impl ProbeError {
    pub fn new(kind: ProbeErrorKind, detail: impl Into<String>) -> Self {
        ProbeError {
            kind,
            detail: detail.into(),
        }
    }

    /// A configuration error (the secret, or the credentials in it): retrying does not help; a person
    /// must change the secret or the configuration.
    pub fn is_configuration(&self) -> bool {
        matches!(self.kind, ProbeErrorKind::Credentials | ProbeErrorKind::Authentication)
    }
}

/// What a DNS name resolved to: the CNAME chain, then the addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolution {
    /// Each CNAME's target in the order followed (lower case, no trailing dot).
    pub cnames: Vec<String>,
    /// The addresses at the end of the chain.
    pub addresses: Vec<std::net::IpAddr>,
}

/// The application's view of its database: a name resolved as it would resolve it, and a connection
/// made as it would connect (TLS verified against the RDS endpoint name).
#[async_trait]
pub trait DatabaseProbe: Send + Sync {
    /// Connects to `target` with TLS (the configured RDS CA bundle, verified against
    /// `target.endpoint`), reads the server's version, read-only flag and reported lag, and writes the
    /// heartbeat when asked and the server is writable. Every step is bounded by the probe's timeout.
    async fn probe(&self, target: &ProbeTarget) -> Result<ProbeReport, ProbeError>;
    /// Resolves `name` (A and AAAA, following CNAMEs) through the configured resolver, or the system's,
    /// without a cache of its own: each call asks again.
    async fn resolve(&self, name: &str) -> Result<Resolution, ProbeError>;
}
