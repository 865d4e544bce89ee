//! What the emulated world starts with: global clusters and their members, standalone clusters, hosted
//! zones and their records, the STS caller and IAM's roles, users and simulator rules, and the transition
//! timings. Loaded from a TOML or JSON file, from the admin API (JSON), or built in code. A scenario is
//! validated as a whole before it replaces the world, so a bad one changes nothing.

use crate::model::iam::{IamPrincipal, IamRule, SimulatorMode};
use crate::model::route53::{AliasTarget, Failover};
use crate::model::timings::Timings;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::Path;

/// The starting state of the emulator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// The AWS account every ARN is in.
    #[serde(default = "default_account")]
    pub account_id: String,
    #[serde(default)]
    pub timings: Timings,
    #[serde(default)]
    pub global_clusters: Vec<GlobalClusterSpec>,
    /// Clusters that are not members of any global cluster.
    #[serde(default)]
    pub db_clusters: Vec<DbClusterSpec>,
    #[serde(default)]
    pub hosted_zones: Vec<HostedZoneSpec>,
    /// The caller STS names, the IAM roles and users, and what the policy simulator answers.
    #[serde(default)]
    pub iam: IamSpec,
    /// Secrets Manager secrets (GetSecretValue), each in one Region.
    #[serde(default)]
    pub secrets: Vec<SecretSpec>,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            account_id: default_account(),
            timings: Timings::default(),
            global_clusters: Vec::new(),
            db_clusters: Vec::new(),
            hosted_zones: Vec::new(),
            iam: IamSpec::default(),
            secrets: Vec::new(),
        }
    }
}

/// A `[[secrets]]` entry: a Secrets Manager secret with a string value (its one version, `AWSCURRENT`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSpec {
    /// 1 to 512 characters among letters, digits and `/_+=.@-`.
    pub name: String,
    /// The Region the secret lives in (GetSecretValue finds it only there).
    pub region: String,
    /// `SecretString`, e.g. `{"username": "probe", "password": "..."}`.
    pub value: String,
}

/// The `[iam]` section: who calls, which roles and users exist, and the simulator's rules. Everything
/// is allowed unless a rule says otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IamSpec {
    /// What GetCallerIdentity answers; by default
    /// `arn:aws:sts::{account_id}:assumed-role/aurora-failover-bot/awsim-session`.
    #[serde(default)]
    pub caller_arn: Option<String>,
    /// By default the role `aurora-failover-bot` at path `/`.
    #[serde(default = "default_roles")]
    pub roles: Vec<IamPrincipal>,
    #[serde(default)]
    pub users: Vec<IamPrincipal>,
    #[serde(default)]
    pub rules: Vec<IamRule>,
    #[serde(default)]
    pub simulator: SimulatorMode,
}

impl Default for IamSpec {
    fn default() -> Self {
        IamSpec {
            caller_arn: None,
            roles: default_roles(),
            users: Vec::new(),
            rules: Vec::new(),
            simulator: SimulatorMode::Available,
        }
    }
}

fn default_roles() -> Vec<IamPrincipal> {
    vec![IamPrincipal {
        name: crate::model::iam::DEFAULT_ROLE.to_owned(),
        path: crate::model::iam::root_path(),
    }]
}

fn default_account() -> String {
    "123456789012".to_owned()
}
fn default_engine() -> String {
    "aurora-postgresql".to_owned()
}
fn default_engine_version() -> String {
    "15.4".to_owned()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalClusterSpec {
    pub id: String,
    #[serde(default = "default_engine")]
    pub engine: String,
    #[serde(default = "default_engine_version")]
    pub engine_version: String,
    pub members: Vec<MemberSpec>,
}

/// A member cluster of a global cluster. Exactly one member is the primary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberSpec {
    pub region: String,
    pub cluster_id: String,
    #[serde(default)]
    pub primary: bool,
    /// Defaults to the global cluster's engine version.
    #[serde(default)]
    pub engine_version: Option<String>,
    /// DB instance identifiers. The primary's first instance is its writer; a secondary has no writer.
    /// A secondary may have none (a headless secondary); the primary needs at least one.
    #[serde(default)]
    pub instances: Vec<String>,
    /// How far this secondary is behind the primary.
    #[serde(default)]
    pub replication_lag_ms: u64,
    /// Global write forwarding (`enabled`, `disabled`, `enabling`, `disabling`, `unknown`): shown as
    /// `GlobalWriteForwardingStatus` while the cluster is a secondary. Default `disabled`.
    #[serde(default)]
    pub write_forwarding: crate::model::rds::WriteForwarding,
    /// `Port` of DescribeDBClusters; by default the engine's (5432 for PostgreSQL, 3306 for MySQL).
    #[serde(default)]
    pub port: Option<u16>,
    /// The IP address awsim's DNS server answers for the cluster (writer) endpoint; 127.0.0.1 by default.
    #[serde(default)]
    pub endpoint_address: Option<String>,
    /// The IP address awsim's DNS server answers for the reader endpoint; 127.0.0.1 by default.
    #[serde(default)]
    pub reader_endpoint_address: Option<String>,
}

/// A regional cluster outside any global cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DbClusterSpec {
    pub region: String,
    pub cluster_id: String,
    #[serde(default = "default_engine")]
    pub engine: String,
    #[serde(default = "default_engine_version")]
    pub engine_version: String,
    pub instances: Vec<String>,
    /// `Port` of DescribeDBClusters; by default the engine's (5432 for PostgreSQL, 3306 for MySQL).
    #[serde(default)]
    pub port: Option<u16>,
    /// The IP address awsim's DNS server answers for the cluster (writer) endpoint; 127.0.0.1 by default.
    #[serde(default)]
    pub endpoint_address: Option<String>,
    /// The IP address awsim's DNS server answers for the reader endpoint; 127.0.0.1 by default.
    #[serde(default)]
    pub reader_endpoint_address: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostedZoneSpec {
    /// The zone id without the `/hostedzone/` prefix, e.g. `Z0123456789`.
    pub id: String,
    /// The zone's domain name, with or without the trailing dot.
    pub name: String,
    #[serde(default)]
    pub private: bool,
    #[serde(default)]
    pub comment: Option<String>,
    /// VPCs associated with a private zone.
    #[serde(default)]
    pub vpcs: Vec<VpcSpec>,
    /// Records besides the SOA and NS records every zone gets.
    #[serde(default)]
    pub records: Vec<RecordSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VpcSpec {
    pub region: String,
    pub id: String,
}

/// A record set. Give either `values` (and optionally `ttl`, 300 by default), or `points_to` for a CNAME
/// to a cluster endpoint of the scenario, or `alias_target` (and no `ttl`). A routing-policy record gives
/// exactly one of `weight`, `region`, `failover`, `multi_value_answer`, and a `set_identifier`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordSpec {
    pub name: String,
    #[serde(rename = "type")]
    pub record_type: String,
    #[serde(default)]
    pub ttl: Option<i64>,
    #[serde(default)]
    pub values: Vec<String>,
    #[serde(default)]
    pub points_to: Option<EndpointRef>,
    #[serde(default)]
    pub set_identifier: Option<String>,
    /// Weighted routing: 0 to 255.
    #[serde(default)]
    pub weight: Option<i64>,
    /// Latency routing: a Region name.
    #[serde(default)]
    pub region: Option<String>,
    /// Failover routing: `PRIMARY` or `SECONDARY`.
    #[serde(default)]
    pub failover: Option<Failover>,
    #[serde(default)]
    pub multi_value_answer: Option<bool>,
    #[serde(default)]
    pub alias_target: Option<AliasTarget>,
}

/// The writer or reader endpoint of a cluster of the scenario, by cluster id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointRef {
    pub cluster: String,
    pub endpoint: EndpointKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndpointKind {
    Writer,
    Reader,
}

/// Why a scenario was refused: where in it, and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read scenario file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("cannot parse scenario {path}: {message}")]
    Parse { path: String, message: String },
    #[error("invalid scenario: {at}: {reason}")]
    Invalid { at: String, reason: String },
}

fn invalid(at: impl Into<String>, reason: impl Into<String>) -> ScenarioError {
    ScenarioError::Invalid {
        at: at.into(),
        reason: reason.into(),
    }
}

/// True for names like `us-east-1`, `eu-central-2`, `us-gov-west-1`.
pub fn is_region_name(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts
            .iter()
            .take(parts.len() - 1)
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].parse::<u8>().is_ok()
}

/// RDS identifiers: 1-63 letters, digits or hyphens, starting with a letter, no double or trailing hyphen.
/// The emulator keeps them lower case, as RDS does.
fn check_identifier(at: &str, id: &str) -> Result<(), ScenarioError> {
    let ok = !id.is_empty()
        && id.len() <= 63
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !id.contains("--")
        && !id.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            at,
            format!(
                "{id:?} is not an RDS identifier (lower-case letters, digits and single hyphens, starting with a letter)"
            ),
        ))
    }
}

impl Scenario {
    /// Reads a scenario from a `.toml` or `.json` file.
    pub fn from_path(path: &Path) -> Result<Scenario, ScenarioError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: shown.clone(),
            source,
        })?;
        let scenario = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text).map_err(|e| ScenarioError::Parse {
                path: shown,
                message: e.to_string(),
            })?
        } else {
            toml::from_str(&text).map_err(|e| ScenarioError::Parse {
                path: shown,
                message: e.to_string(),
            })?
        };
        Ok(scenario)
    }

    /// Parses TOML text.
    pub fn from_toml(text: &str) -> Result<Scenario, ScenarioError> {
        toml::from_str(text).map_err(|e| ScenarioError::Parse {
            path: "<toml>".into(),
            message: e.to_string(),
        })
    }

    /// The demo's world: one global cluster `orders-global` with its primary `orders-east` in us-east-1
    /// and a secondary `orders-west` in us-west-2, and a private hosted zone whose writer and reader
    /// CNAMEs point at the primary, as in the blueprint the project grew from.
    pub fn two_region_example() -> Scenario {
        Scenario::from_toml(include_str!("../scenarios/two-region.toml")).expect("the embedded example scenario parses")
    }

    /// `n` copies of the example's global cluster, for scale tests: `g{i}-global` with its primary
    /// `g{i}-east` (us-east-1) and secondary `g{i}-west` (us-west-2), and in the example's zone the CNAMEs
    /// `w{i}` and `r{i}` pointing at each primary's writer and reader endpoints.
    pub fn fleet(n: usize) -> Scenario {
        let mut s = Scenario::two_region_example();
        let template = s.global_clusters[0].clone();
        s.global_clusters.clear();
        s.hosted_zones[0].records.clear();
        let zone = s.hosted_zones[0].name.clone();
        for i in 0..n {
            let mut g = template.clone();
            g.id = format!("g{i}-global");
            g.members[0].cluster_id = format!("g{i}-east");
            g.members[0].instances = vec![format!("g{i}-east-1")];
            g.members[1].cluster_id = format!("g{i}-west");
            g.members[1].instances = vec![format!("g{i}-west-1")];
            s.global_clusters.push(g);
            for (endpoint, record) in [(EndpointKind::Writer, "w"), (EndpointKind::Reader, "r")] {
                s.hosted_zones[0].records.push(RecordSpec {
                    name: format!("{record}{i}.{zone}"),
                    record_type: "CNAME".into(),
                    ttl: Some(1),
                    values: vec![],
                    points_to: Some(EndpointRef {
                        cluster: format!("g{i}-east"),
                        endpoint,
                    }),
                    set_identifier: None,
                    weight: None,
                    region: None,
                    failover: None,
                    multi_value_answer: None,
                    alias_target: None,
                });
            }
        }
        s
    }

    /// Checks the scenario as a whole: unique identifiers, one primary per global cluster, Regions and
    /// identifiers well formed, records inside their zone and pointing at clusters that exist.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        if self.account_id.len() != 12 || !self.account_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid("account_id", "must be 12 digits"));
        }
        let mut cluster_keys = BTreeSet::new();
        let mut cluster_ids = BTreeSet::new();
        let mut global_ids = BTreeSet::new();
        let mut instance_ids = BTreeSet::new();
        let mut add_cluster = |at: &str, region: &str, id: &str, instances: &[String]| {
            if !is_region_name(region) {
                return Err(invalid(
                    format!("{at}.region"),
                    format!("{region:?} is not a Region name"),
                ));
            }
            check_identifier(&format!("{at}.cluster_id"), id)?;
            if !cluster_keys.insert((region.to_owned(), id.to_owned())) {
                return Err(invalid(at, format!("cluster {id} appears twice in {region}")));
            }
            cluster_ids.insert(id.to_owned());
            for (k, inst) in instances.iter().enumerate() {
                check_identifier(&format!("{at}.instances[{k}]"), inst)?;
                if !instance_ids.insert((region.to_owned(), inst.clone())) {
                    return Err(invalid(
                        format!("{at}.instances[{k}]"),
                        format!("instance {inst} appears twice in {region}"),
                    ));
                }
            }
            Ok(())
        };
        for (i, g) in self.global_clusters.iter().enumerate() {
            let at = format!("global_clusters[{i}]");
            check_identifier(&format!("{at}.id"), &g.id)?;
            if !global_ids.insert(g.id.clone()) {
                return Err(invalid(
                    format!("{at}.id"),
                    format!("global cluster {} appears twice", g.id),
                ));
            }
            check_engine_version(&format!("{at}.engine_version"), &g.engine_version)?;
            let primaries = g.members.iter().filter(|m| m.primary).count();
            if primaries != 1 {
                return Err(invalid(
                    format!("{at}.members"),
                    format!("exactly one member must have primary = true, found {primaries}"),
                ));
            }
            let mut regions = BTreeSet::new();
            for (j, m) in g.members.iter().enumerate() {
                let at = format!("{at}.members[{j}]");
                add_cluster(&at, &m.region, &m.cluster_id, &m.instances)?;
                if !regions.insert(m.region.as_str()) {
                    return Err(invalid(
                        &at,
                        format!(
                            "a global cluster has at most one member per Region, {} has two",
                            m.region
                        ),
                    ));
                }
                if let Some(v) = &m.engine_version {
                    check_engine_version(&format!("{at}.engine_version"), v)?;
                }
                check_endpoints(&at, m.port, &m.endpoint_address, &m.reader_endpoint_address)?;
                if m.primary && m.instances.is_empty() {
                    return Err(invalid(
                        format!("{at}.instances"),
                        "the primary needs at least one instance (its writer)",
                    ));
                }
            }
        }
        for (i, c) in self.db_clusters.iter().enumerate() {
            let at = format!("db_clusters[{i}]");
            add_cluster(&at, &c.region, &c.cluster_id, &c.instances)?;
            check_engine_version(&format!("{at}.engine_version"), &c.engine_version)?;
            check_endpoints(&at, c.port, &c.endpoint_address, &c.reader_endpoint_address)?;
            if c.instances.is_empty() {
                return Err(invalid(
                    format!("{at}.instances"),
                    "a standalone cluster needs at least one instance",
                ));
            }
        }
        let mut zone_ids = BTreeSet::new();
        for (i, z) in self.hosted_zones.iter().enumerate() {
            let at = format!("hosted_zones[{i}]");
            if z.id.is_empty() || !z.id.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()) {
                return Err(invalid(
                    format!("{at}.id"),
                    "a zone id is upper-case letters and digits, without /hostedzone/",
                ));
            }
            if !zone_ids.insert(z.id.clone()) {
                return Err(invalid(format!("{at}.id"), format!("zone {} appears twice", z.id)));
            }
            let zone_name = crate::model::route53::normalize_name(&z.name);
            if zone_name == "." {
                return Err(invalid(format!("{at}.name"), "a zone needs a domain name"));
            }
            if z.private && z.vpcs.is_empty() {
                // Allowed: the emulator does not need a VPC to answer, but AWS would; say nothing.
            }
            let mut keys = BTreeSet::new();
            for (j, r) in z.records.iter().enumerate() {
                let at = format!("{at}.records[{j}]");
                let name = crate::model::route53::normalize_name(&r.name);
                if !crate::model::route53::in_zone(&name, &zone_name) {
                    return Err(invalid(
                        format!("{at}.name"),
                        format!("{name} is not in zone {zone_name}"),
                    ));
                }
                check_record(&at, r, &cluster_ids)?;
                if !keys.insert((name.clone(), r.record_type.clone(), r.set_identifier.clone())) {
                    return Err(invalid(
                        &at,
                        format!("record set {name} {} appears twice", r.record_type),
                    ));
                }
            }
        }
        let mut secrets = BTreeSet::new();
        for (i, secret) in self.secrets.iter().enumerate() {
            let at = format!("secrets[{i}]");
            if !is_region_name(&secret.region) {
                return Err(invalid(
                    format!("{at}.region"),
                    format!("{:?} is not a Region name", secret.region),
                ));
            }
            crate::model::secrets::check_name(&secret.name).map_err(|reason| invalid(format!("{at}.name"), reason))?;
            if !secrets.insert((secret.region.as_str(), secret.name.as_str())) {
                return Err(invalid(
                    format!("{at}.name"),
                    format!("secret {} appears twice in {}", secret.name, secret.region),
                ));
            }
        }
        self.iam.validate()?;
        Ok(())
    }
}

impl IamSpec {
    fn validate(&self) -> Result<(), ScenarioError> {
        if let Some(arn) = &self.caller_arn {
            crate::model::iam::check_caller(arn).map_err(|reason| invalid("iam.caller_arn", reason))?;
        }
        for (kind, principals) in [("roles", &self.roles), ("users", &self.users)] {
            let mut names = BTreeSet::new();
            for (i, p) in principals.iter().enumerate() {
                let at = format!("iam.{kind}[{i}]");
                check_principal(&at, &p.name, &p.path)?;
                if !names.insert(p.name.as_str()) {
                    return Err(invalid(format!("{at}.name"), format!("{} appears twice", p.name)));
                }
            }
        }
        for (i, r) in self.rules.iter().enumerate() {
            r.check().map_err(|reason| invalid(format!("iam.rules[{i}]"), reason))?;
        }
        Ok(())
    }
}

/// An IAM role or user name and path.
pub(crate) fn check_principal(at: &str, name: &str, path: &str) -> Result<(), ScenarioError> {
    if !crate::model::iam::is_iam_name(name) {
        return Err(invalid(
            format!("{at}.name"),
            format!("{name:?} is not an IAM name (1 to 64 letters, digits or +=,.@_-)"),
        ));
    }
    if !crate::model::iam::is_iam_path(path) {
        return Err(invalid(
            format!("{at}.path"),
            format!("{path:?} is not an IAM path (/ or /a/b/)"),
        ));
    }
    Ok(())
}

/// One record of a zone on its own: its type, its data (values, a cluster endpoint, or an alias target)
/// and its routing policy.
fn check_record(at: &str, r: &RecordSpec, cluster_ids: &BTreeSet<String>) -> Result<(), ScenarioError> {
    if !crate::model::route53::SUPPORTED_TYPES.contains(&r.record_type.as_str()) {
        return Err(invalid(
            format!("{at}.type"),
            format!("unsupported record type {}", r.record_type),
        ));
    }
    match (&r.alias_target, &r.points_to, r.values.is_empty()) {
        (Some(a), None, true) => {
            if r.ttl.is_some() {
                return Err(invalid(format!("{at}.ttl"), "an alias record has no ttl"));
            }
            if a.hosted_zone_id.is_empty() || a.dns_name.is_empty() {
                return Err(invalid(
                    format!("{at}.alias_target"),
                    "an alias target needs a hosted_zone_id and a dns_name",
                ));
            }
        }
        (Some(_), _, _) => {
            return Err(invalid(at, "give alias_target, or values or points_to, not both"));
        }
        (None, Some(_), false) => {
            return Err(invalid(at, "give values or points_to, not both"));
        }
        (None, None, true) => {
            return Err(invalid(format!("{at}.values"), "a record needs at least one value"));
        }
        (None, Some(p), true) => {
            if r.record_type != "CNAME" {
                return Err(invalid(format!("{at}.points_to"), "points_to is for CNAME records"));
            }
            if !cluster_ids.contains(&p.cluster) {
                return Err(invalid(
                    format!("{at}.points_to.cluster"),
                    format!("no cluster {} in the scenario", p.cluster),
                ));
            }
        }
        (None, None, false) => {}
    }
    if r.ttl.is_some_and(|t| t < 0) {
        return Err(invalid(format!("{at}.ttl"), "must not be negative"));
    }
    let policies = [
        r.weight.is_some(),
        r.region.is_some(),
        r.failover.is_some(),
        r.multi_value_answer.is_some(),
    ]
    .iter()
    .filter(|set| **set)
    .count();
    match (&r.set_identifier, policies) {
        (None, 0) => {}
        (None, _) => {
            return Err(invalid(
                format!("{at}.set_identifier"),
                "a record with a routing policy needs a set_identifier",
            ));
        }
        (Some(id), 1) if !id.is_empty() && id.chars().count() <= 128 => {}
        (Some(_), 1) => {
            return Err(invalid(format!("{at}.set_identifier"), "must be 1 to 128 characters"));
        }
        (Some(_), _) => {
            return Err(invalid(
                at,
                "a record with a set_identifier needs exactly one routing policy: weight, region, failover or multi_value_answer",
            ));
        }
    }
    if r.weight.is_some_and(|w| !(0..=255).contains(&w)) {
        return Err(invalid(format!("{at}.weight"), "must be 0 to 255"));
    }
    if let Some(region) = &r.region
        && !is_region_name(region)
    {
        return Err(invalid(
            format!("{at}.region"),
            format!("{region:?} is not a Region name"),
        ));
    }
    Ok(())
}

/// A cluster's `port` (1 to 65535) and endpoint addresses (IPv4 or IPv6 literals).
fn check_endpoints(
    at: &str,
    port: Option<u16>,
    endpoint_address: &Option<String>,
    reader_endpoint_address: &Option<String>,
) -> Result<(), ScenarioError> {
    if port == Some(0) {
        return Err(invalid(format!("{at}.port"), "must be 1 to 65535"));
    }
    for (key, address) in [
        ("endpoint_address", endpoint_address),
        ("reader_endpoint_address", reader_endpoint_address),
    ] {
        if let Some(a) = address
            && a.parse::<std::net::IpAddr>().is_err()
        {
            return Err(invalid(
                format!("{at}.{key}"),
                format!("{a:?} is not an IP address (such as 127.0.0.2 or ::1)"),
            ));
        }
    }
    Ok(())
}

fn check_engine_version(at: &str, v: &str) -> Result<(), ScenarioError> {
    let mut parts = v.split('.');
    let ok = parts.next().is_some_and(|p| !p.is_empty()) && parts.next().is_some_and(|p| !p.is_empty());
    if ok {
        Ok(())
    } else {
        Err(invalid(
            at,
            format!("{v:?} is not an engine version such as 15.4 or 8.0.mysql_aurora.3.05.2"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_example_is_valid() {
        Scenario::two_region_example().validate().unwrap();
    }

    #[test]
    fn a_fleet_is_valid() {
        let s = Scenario::fleet(3);
        s.validate().unwrap();
        assert_eq!(s.global_clusters.len(), 3);
        assert_eq!(s.hosted_zones[0].records.len(), 6);
    }

    #[test]
    fn a_global_cluster_without_exactly_one_primary_is_refused_with_its_place() {
        let mut s = Scenario::two_region_example();
        s.global_clusters[0].members[1].primary = true;
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("global_clusters[0].members"), "{e}");
        assert!(e.contains("exactly one"), "{e}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let e = Scenario::from_toml("acount_id = \"123456789012\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("acount_id"), "{e}");
    }

    #[test]
    fn records_outside_their_zone_or_pointing_nowhere_are_refused() {
        let mut s = Scenario::two_region_example();
        s.hosted_zones[0].records[0].name = "www.example.com".into();
        assert!(s.validate().unwrap_err().to_string().contains("is not in zone"));
        let mut s = Scenario::two_region_example();
        s.hosted_zones[0].records[0].points_to.as_mut().unwrap().cluster = "nope".into();
        assert!(s.validate().unwrap_err().to_string().contains("no cluster nope"));
    }

    #[test]
    fn alias_and_routing_policy_records_are_checked_for_shape() {
        let zone = |record: &str| {
            format!(
                "[[hosted_zones]]\nid = \"ZX\"\nname = \"example.internal\"\n[[hosted_zones.records]]\nname = \"a.example.internal\"\ntype = \"A\"\n{record}"
            )
        };
        let alias = r#"alias_target = { hosted_zone_id = "Z35SXDOTRQ7X7K", dns_name = "lb.example.com" }"#;
        let refused = |record: &str, why: &str| {
            let e = Scenario::from_toml(&zone(record))
                .unwrap()
                .validate()
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("hosted_zones[0].records[0]") && e.contains(why),
                "{record}: {e}"
            );
        };
        Scenario::from_toml(&zone(alias)).unwrap().validate().unwrap();
        Scenario::from_toml(&zone(
            "values = [\"192.0.2.1\"]\nset_identifier = \"x\"\nfailover = \"PRIMARY\"",
        ))
        .unwrap()
        .validate()
        .unwrap();
        refused(&format!("{alias}\nvalues = [\"192.0.2.1\"]"), "not both");
        refused(&format!("{alias}\nttl = 60"), "no ttl");
        refused("values = [\"192.0.2.1\"]\nweight = 1", "needs a set_identifier");
        refused(
            "values = [\"192.0.2.1\"]\nset_identifier = \"x\"",
            "exactly one routing policy",
        );
        refused(
            "values = [\"192.0.2.1\"]\nset_identifier = \"x\"\nweight = 1\nregion = \"us-east-1\"",
            "exactly one routing policy",
        );
        refused(
            "values = [\"192.0.2.1\"]\nset_identifier = \"x\"\nweight = 256",
            "0 to 255",
        );
        refused(
            "values = [\"192.0.2.1\"]\nset_identifier = \"x\"\nregion = \"mars\"",
            "not a Region",
        );
        let twice = format!(
            "{}\nvalues = [\"192.0.2.1\"]\n[[hosted_zones.records]]\nname = \"a.example.internal\"\ntype = \"A\"\nvalues = [\"192.0.2.2\"]",
            zone("")
        );
        let e = Scenario::from_toml(&twice).unwrap().validate().unwrap_err().to_string();
        assert!(e.contains("appears twice"), "{e}");
        assert!(Scenario::from_toml(&zone("values = [\"192.0.2.1\"]\nfailover = \"FIRST\"")).is_err());
    }

    #[test]
    fn ports_and_endpoint_addresses_are_checked_with_their_place() {
        let mut s = Scenario::two_region_example();
        s.global_clusters[0].members[1].endpoint_address = Some("127.0.0.4".into());
        s.global_clusters[0].members[1].reader_endpoint_address = Some("::1".into());
        s.global_clusters[0].members[1].port = Some(3307);
        s.validate().unwrap();
        s.global_clusters[0].members[1].reader_endpoint_address = Some("localhost".into());
        let e = s.validate().unwrap_err().to_string();
        assert!(
            e.contains("global_clusters[0].members[1].reader_endpoint_address") && e.contains("not an IP address"),
            "{e}"
        );
        let standalone = |key: &str| {
            format!("[[db_clusters]]\nregion = \"us-east-1\"\ncluster_id = \"solo\"\ninstances = [\"solo-1\"]\n{key}")
        };
        Scenario::from_toml(&standalone("port = 6432\nendpoint_address = \"127.0.0.5\""))
            .unwrap()
            .validate()
            .unwrap();
        let e = Scenario::from_toml(&standalone("port = 0"))
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("db_clusters[0].port"), "{e}");
        let e = Scenario::from_toml(&standalone("endpoint_address = \"127.0.0.300\""))
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("db_clusters[0].endpoint_address"), "{e}");
        assert!(Scenario::from_toml(&standalone("port = 70000")).is_err());
    }

    #[test]
    fn secrets_are_checked_with_their_place() {
        let secret = |name: &str, region: &str| {
            format!("[[secrets]]\nname = \"{name}\"\nregion = \"{region}\"\nvalue = \"{{}}\"\n")
        };
        Scenario::from_toml(&secret("prod/probe", "us-east-1"))
            .unwrap()
            .validate()
            .unwrap();
        let refused = |toml: &str, at: &str| {
            let e = Scenario::from_toml(toml).unwrap().validate().unwrap_err().to_string();
            assert!(e.contains(at), "{toml}: {e}");
        };
        refused(&secret("has space", "us-east-1"), "secrets[0].name");
        refused(&secret("x", "mars"), "secrets[0].region");
        refused(
            &format!("{}{}", secret("x", "us-east-1"), secret("x", "us-east-1")),
            "secrets[1].name",
        );
        // The same name in two Regions is two secrets.
        Scenario::from_toml(&format!("{}{}", secret("x", "us-east-1"), secret("x", "us-west-2")))
            .unwrap()
            .validate()
            .unwrap();
    }

    #[test]
    fn region_names_are_recognised() {
        assert!(is_region_name("us-east-1"));
        assert!(is_region_name("us-gov-west-1"));
        assert!(is_region_name("ap-southeast-2"));
        assert!(!is_region_name("useast1"));
        assert!(!is_region_name("us-east-x"));
        assert!(!is_region_name("US-EAST-1"));
    }
}
