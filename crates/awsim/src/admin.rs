//! Control of the emulator, two ways with one implementation: the [`Admin`] handle for code in the same
//! process (tests, the bot's demo), and a small JSON API under `/_awsim/` for everything else (the
//! `awsim` binary, curl, tests in another process).
//!
//! | method | path | body / query | does |
//! |---|---|---|---|
//! | GET | `/_awsim/health` | | `ok` |
//! | GET | `/_awsim/state` | | the whole world as JSON |
//! | POST | `/_awsim/scenario` | scenario JSON | replaces the world (400 and no change if invalid) |
//! | POST | `/_awsim/reset` | | back to the last scenario loaded |
//! | POST | `/_awsim/regions/{region}/down` | `{"mode": "reset" \| "unavailable"}` (optional) | Region outage |
//! | POST | `/_awsim/regions/{region}/up` | | ends the outage |
//! | POST | `/_awsim/faults` | fault JSON | injects errors or a delay on an action |
//! | DELETE | `/_awsim/faults` | | clears all faults |
//! | GET, PUT | `/_awsim/timings` | partial timings JSON | reads or changes durations |
//! | PUT | `/_awsim/clusters/{region}/{id}/lag` | `{"replication_lag_ms": n}` | sets a secondary's lag |
//! | PUT | `/_awsim/clusters/{region}/{id}/write-forwarding` | `{"status": "enabled"}` | sets a cluster's global write forwarding |
//! | PUT | `/_awsim/clusters/{region}/{id}/status` | `{"status": "..."}` | forces a cluster status |
//! | PUT | `/_awsim/clusters/{region}/{id}/endpoint-address` | `{"writer": true, "address": "127.0.0.2"}` | the address DNS answers for the cluster (`writer`) or reader endpoint |
//! | PUT | `/_awsim/clusters/{region}/{id}/port` | `{"port": 5433}` | the cluster's `Port` |
//! | PUT | `/_awsim/dns/delay` | `{"delay_ms": n}` | how long after INSYNC DNS answers show a change |
//! | PUT | `/_awsim/dns/down` | `{"down": true}` | DNS queries dropped unanswered (or answered again) |
//! | GET, DELETE | `/_awsim/dns/queries` | | the DNS questions received (or clears them) |
//! | POST | `/_awsim/secrets` | `{"region", "name", "value"}` | creates a secret or gives it a new value |
//! | PUT | `/_awsim/clusters/{region}/{id}/settings` | partial settings JSON | subnet group, security groups, cluster parameter group, KMS key (`null`: unencrypted), deletion protection |
//! | PUT | `/_awsim/instances/{region}/{id}` | partial instance JSON | instance class, parameter group, Enhanced Monitoring (`null`: off) |
//! | GET | `/_awsim/instances/{region}` | | the Region's DB instances as DescribeDBInstances shows them |
//! | GET | `/_awsim/calls` | `?action=X` (optional) | the call log |
//! | DELETE | `/_awsim/calls` | | clears the call log |
//! | GET | `/_awsim/events` | | every RDS event with its RDS-EVENT id |
//! | PUT | `/_awsim/zones/{zone}/records` | record set JSON | inserts or replaces a record set, unchecked |
//! | GET | `/_awsim/iam` | | caller, roles, users, rules, simulator mode |
//! | PUT | `/_awsim/iam/caller` | `{"arn": "..."}` | the caller GetCallerIdentity names |
//! | POST | `/_awsim/iam/roles`, `/_awsim/iam/users` | `{"name": "...", "path": "/"}` | adds (or moves) a role or user |
//! | POST | `/_awsim/iam/rules` | rule JSON | adds a policy-simulator rule |
//! | DELETE | `/_awsim/iam/rules` | | clears the rules (everything allowed) |
//! | PUT | `/_awsim/iam/simulator` | `{"mode": "available" \| "access_denied"}` | whether the simulator answers |

use crate::model::iam::{IamPrincipal, IamRule, IamView, SimulatorMode};
use crate::model::rds::{
    ClusterKey, ClusterView, Event, GlobalClusterView, InstancePatch, InstanceView, SettingsPatch, WriteForwarding,
};
use crate::model::resolver::DnsQuery;
use crate::model::route53::{ChangedRecord, HostedZone, RecordSet};
use crate::model::timings::Timings;
use crate::model::{CallRecord, FaultSpec, OutageMode, World};
use crate::scenario::{Scenario, ScenarioError, is_region_name};
use crate::server::{HttpResponse, Shared};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Why an admin request was refused.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    #[error("{0}")]
    Invalid(String),
    #[error("no cluster {id} in {region}")]
    NoSuchCluster { region: String, id: String },
    #[error("no hosted zone {0}")]
    NoSuchZone(String),
    #[error("no DB instance {id} in {region}")]
    NoSuchInstance { region: String, id: String },
}

/// Partial timings: only the fields given change.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimingsPatch {
    pub detach_ms: Option<u64>,
    pub pending_ms: Option<u64>,
    pub failover_ms: Option<u64>,
    pub switchover_ms: Option<u64>,
    pub rejoin_ms: Option<u64>,
    pub dns_propagation_ms: Option<u64>,
    pub create_global_ms: Option<u64>,
    pub create_cluster_ms: Option<u64>,
    pub create_instance_ms: Option<u64>,
}

/// Everything the emulator holds, for inspection.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub global_clusters: Vec<GlobalClusterView>,
    pub db_clusters: Vec<ClusterView>,
    pub db_instances: Vec<InstanceView>,
    pub hosted_zones: Vec<HostedZone>,
    pub regions_down: BTreeMap<String, OutageMode>,
    pub faults: Vec<FaultSpec>,
    pub timings: Timings,
    pub iam: IamView,
}

/// In-process control of a running emulator. Cheap to clone.
#[derive(Clone)]
pub struct Admin {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin").finish_non_exhaustive()
    }
}

impl Admin {
    fn with_world<T>(&self, f: impl FnOnce(&mut World) -> T) -> T {
        let mut world = self.shared.world();
        f(&mut world)
    }

    /// Replaces the whole world with a scenario, after validating it. Faults, outages and the call log
    /// start empty; so do the DNS query log, the DNS delay and the DNS outage.
    pub fn load_scenario(&self, scenario: Scenario) -> Result<(), AdminError> {
        scenario.validate()?;
        let world = World::from_scenario(&scenario, Instant::now());
        *self.shared.world.lock().unwrap_or_else(|p| p.into_inner()) = world;
        *self.shared.scenario.lock().unwrap_or_else(|p| p.into_inner()) = scenario;
        Ok(())
    }

    /// Back to the last scenario loaded.
    pub fn reset(&self) {
        let scenario = self.shared.scenario.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let world = World::from_scenario(&scenario, Instant::now());
        *self.shared.world.lock().unwrap_or_else(|p| p.into_inner()) = world;
    }

    pub fn region_down(&self, region: &str, mode: OutageMode) -> Result<(), AdminError> {
        check_region(region)?;
        self.with_world(|w| w.region_down(region, mode, Instant::now()));
        Ok(())
    }

    pub fn region_up(&self, region: &str) -> Result<(), AdminError> {
        check_region(region)?;
        self.with_world(|w| w.region_up(region, Instant::now()));
        Ok(())
    }

    /// Injects a fault: `error` answers the next `count` calls (all calls when absent) of `action` with
    /// that error; `delay_ms` holds them that long before they proceed; `delay_response_ms` lets them
    /// act at once and holds their answer.
    pub fn inject(&self, fault: FaultSpec) -> Result<(), AdminError> {
        if fault.error.is_none() && fault.delay_ms.is_none() && fault.delay_response_ms.is_none() {
            return Err(AdminError::Invalid(
                "a fault needs an error, a delay_ms or a delay_response_ms".into(),
            ));
        }
        if fault.count == Some(0) {
            return Err(AdminError::Invalid(
                "count must be at least 1 (leave it out for every call)".into(),
            ));
        }
        if let Some(r) = &fault.region {
            check_region(r)?;
        }
        self.with_world(|w| w.add_fault(fault));
        Ok(())
    }

    pub fn clear_faults(&self) {
        self.with_world(World::clear_faults);
    }

    pub fn timings(&self) -> Timings {
        self.with_world(|w| w.timings)
    }

    /// Changes the given durations; operations already under way keep the timings they started with.
    pub fn set_timings(&self, patch: TimingsPatch) -> Timings {
        self.with_world(|w| {
            let t = &mut w.timings;
            let pairs = [
                (&mut t.detach_ms, patch.detach_ms),
                (&mut t.pending_ms, patch.pending_ms),
                (&mut t.failover_ms, patch.failover_ms),
                (&mut t.switchover_ms, patch.switchover_ms),
                (&mut t.rejoin_ms, patch.rejoin_ms),
                (&mut t.dns_propagation_ms, patch.dns_propagation_ms),
                (&mut t.create_global_ms, patch.create_global_ms),
                (&mut t.create_cluster_ms, patch.create_cluster_ms),
                (&mut t.create_instance_ms, patch.create_instance_ms),
            ];
            for (field, value) in pairs {
                if let Some(v) = value {
                    *field = v;
                }
            }
            w.timings
        })
    }

    pub fn set_replication_lag(&self, region: &str, cluster: &str, lag: Duration) -> Result<(), AdminError> {
        let key = key(region, cluster);
        if self.with_world(|w| w.rds.set_lag(&key, lag)) {
            Ok(())
        } else {
            Err(no_such_cluster(key))
        }
    }

    /// Sets a cluster's global write forwarding (`GlobalWriteForwardingStatus`, shown while it is a
    /// secondary).
    pub fn set_write_forwarding(&self, region: &str, cluster: &str, status: WriteForwarding) -> Result<(), AdminError> {
        let key = key(region, cluster);
        if self.with_world(|w| w.rds.set_write_forwarding(&key, status)) {
            Ok(())
        } else {
            Err(no_such_cluster(key))
        }
    }

    /// Forces a cluster's status, e.g. to make a primary look unavailable without a Region outage.
    pub fn set_cluster_status(&self, region: &str, cluster: &str, status: &str) -> Result<(), AdminError> {
        let key = key(region, cluster);
        if self.with_world(|w| w.rds.set_status(&key, status)) {
            Ok(())
        } else {
            Err(no_such_cluster(key))
        }
    }

    /// Sets the address awsim's DNS server answers for a cluster's endpoint (`writer`) or reader
    /// endpoint: where the test's database server for it listens.
    pub fn set_endpoint_address(
        &self,
        region: &str,
        cluster: &str,
        writer: bool,
        address: IpAddr,
    ) -> Result<(), AdminError> {
        let key = key(region, cluster);
        if self.with_world(|w| w.rds.set_endpoint_address(&key, writer, address)) {
            Ok(())
        } else {
            Err(no_such_cluster(key))
        }
    }

    /// Sets a cluster's `Port` (DescribeDBClusters); 0 is refused.
    pub fn set_port(&self, region: &str, cluster: &str, port: u16) -> Result<(), AdminError> {
        if port == 0 {
            return Err(AdminError::Invalid("a port is 1 to 65535".into()));
        }
        let key = key(region, cluster);
        if self.with_world(|w| w.rds.set_port(&key, port)) {
            Ok(())
        } else {
            Err(no_such_cluster(key))
        }
    }

    /// How long after a Route 53 change is `INSYNC` DNS answers show it (resolvers still holding the
    /// old answer); zero after a scenario load. Applies to changes already made too.
    pub fn set_dns_delay(&self, delay: Duration) {
        self.with_world(|w| w.dns.visibility_delay = delay);
    }

    /// While `down`, the DNS server drops every query unanswered (it still logs them).
    pub fn set_dns_down(&self, down: bool) {
        self.with_world(|w| w.resolver.down = down);
    }

    /// Every DNS question received, oldest first (dropped ones included, marked `dropped`).
    pub fn dns_queries(&self) -> Vec<DnsQuery> {
        self.with_world(|w| w.resolver.queries.clone())
    }

    pub fn clear_dns_queries(&self) {
        self.with_world(|w| w.resolver.queries.clear());
    }

    /// Creates the Secrets Manager secret `name` of `region` with the string `value`, or gives the
    /// existing one a new current version with it (a new `VersionId`).
    pub fn put_secret(&self, region: &str, name: &str, value: &str) -> Result<(), AdminError> {
        check_region(region)?;
        crate::model::secrets::check_name(name).map_err(AdminError::Invalid)?;
        self.with_world(|w| {
            let now = w.clock.wall(Instant::now());
            w.secrets.put(region, name, value, now);
        });
        Ok(())
    }

    /// Changes what DescribeDBClusters shows of a cluster's network, parameters, encryption and
    /// deletion protection (what a rebuild copies); only the fields given change.
    pub fn set_cluster_settings(&self, region: &str, cluster: &str, patch: SettingsPatch) -> Result<(), AdminError> {
        let key = key(region, cluster);
        if self.with_world(|w| w.rds.set_settings(&key, patch)) {
            Ok(())
        } else {
            Err(no_such_cluster(key))
        }
    }

    /// Changes a DB instance's class, parameter group or Enhanced Monitoring; only the fields given
    /// change.
    pub fn set_instance(&self, region: &str, instance: &str, patch: InstancePatch) -> Result<(), AdminError> {
        if self.with_world(|w| w.rds.set_instance(region, instance, patch)) {
            Ok(())
        } else {
            Err(AdminError::NoSuchInstance {
                region: region.to_owned(),
                id: instance.to_owned(),
            })
        }
    }

    /// A DB instance (identifier or ARN) as DescribeDBInstances would show it.
    pub fn instance(&self, region: &str, instance: &str) -> Option<InstanceView> {
        self.with_world(|w| w.rds.instance_in(region, instance))
    }

    /// Every DB instance of a Region.
    pub fn instances(&self, region: &str) -> Vec<InstanceView> {
        self.with_world(|w| w.rds.instances_of(region))
    }

    /// Every API call received so far, oldest first.
    pub fn calls(&self) -> Vec<CallRecord> {
        self.with_world(|w| w.calls().to_vec())
    }

    /// The calls received for one action.
    pub fn calls_to(&self, action: &str) -> Vec<CallRecord> {
        self.with_world(|w| w.calls().iter().filter(|c| c.action == action).cloned().collect())
    }

    pub fn clear_calls(&self) {
        self.with_world(World::clear_calls);
    }

    pub fn events(&self) -> Vec<Event> {
        self.with_world(|w| w.rds.events.clone())
    }

    /// A cluster as DescribeDBClusters would show it.
    pub fn cluster(&self, region: &str, cluster: &str) -> Option<ClusterView> {
        self.with_world(|w| w.rds.find_cluster(region, cluster).map(|c| w.rds.cluster_view(c)))
    }

    /// When cluster `cluster` of `region` last became writable (status `available` with a writer
    /// instance) through a detach or a managed failover or switchover: the moment on the emulator's
    /// timeline, exact however late a client looks, on the clock of the call log's `at`. `None` for an
    /// unknown cluster, or one that has not become writable since the scenario was loaded.
    pub fn writable_since(&self, region: &str, cluster: &str) -> Option<jiff::Timestamp> {
        self.cluster(region, cluster)?.writable_since
    }

    /// A global cluster as DescribeGlobalClusters would show it.
    pub fn global_cluster(&self, id: &str) -> Option<GlobalClusterView> {
        self.with_world(|w| w.rds.find_global(id).map(|g| w.rds.global_view(g)))
    }

    /// The records each applied change batch of `zone` touched, oldest batch first.
    pub fn changes(&self, zone: &str) -> Vec<Vec<ChangedRecord>> {
        self.with_world(|w| {
            let mut changes: Vec<_> = w.dns.changes.values().filter(|c| c.zone_id == zone).collect();
            changes.sort_by_key(|c| c.submitted);
            changes.iter().map(|c| c.records.clone()).collect()
        })
    }

    /// Inserts or replaces (same name, type and set identifier) a record set of a zone, of any type,
    /// alias or with a routing policy, without the checks a change batch gets (only that the name is in
    /// the zone): for a test that needs a "hand-made" record mid-test.
    pub fn put_record(&self, zone: &str, record: RecordSet) -> Result<(), AdminError> {
        self.with_world(|w| {
            if !w.dns.zones.contains_key(zone) {
                return Err(AdminError::NoSuchZone(zone.to_owned()));
            }
            w.dns.put(zone, record).map_err(AdminError::Invalid)
        })
    }

    /// Sets the caller STS `GetCallerIdentity` names (and the `User:` of IAM's `AccessDenied` messages):
    /// an assumed role (`arn:aws:sts::{account}:assumed-role/{role}/{session}`), an IAM user or root.
    pub fn set_caller(&self, arn: &str) -> Result<(), AdminError> {
        crate::model::iam::check_caller(arn).map_err(AdminError::Invalid)?;
        self.with_world(|w| w.iam.caller_arn = arn.to_owned());
        Ok(())
    }

    /// Adds an IAM role (`GetRole`, a `PolicySourceArn`), or moves the role of that name to `path`.
    pub fn add_role(&self, name: &str, path: &str) -> Result<(), AdminError> {
        crate::scenario::check_principal("role", name, path)?;
        self.with_world(|w| w.iam.put_role(name, path));
        Ok(())
    }

    /// Adds an IAM user (a `PolicySourceArn`), or moves the user of that name to `path`.
    pub fn add_user(&self, name: &str, path: &str) -> Result<(), AdminError> {
        crate::scenario::check_principal("user", name, path)?;
        self.with_world(|w| w.iam.put_user(name, path));
        Ok(())
    }

    /// Adds a policy-simulator rule: how `SimulatePrincipalPolicy` answers for the actions and
    /// resources it matches. The first matching rule decides, except that an explicit deny always wins.
    pub fn add_iam_rule(&self, rule: IamRule) -> Result<(), AdminError> {
        rule.check().map_err(AdminError::Invalid)?;
        self.with_world(|w| w.iam.rules.push(rule));
        Ok(())
    }

    /// Removes every simulator rule: everything is allowed again.
    pub fn clear_iam_rules(&self) {
        self.with_world(|w| w.iam.rules.clear());
    }

    /// Whether `SimulatePrincipalPolicy` answers, or refuses the caller with `AccessDenied`.
    pub fn set_simulator(&self, mode: SimulatorMode) {
        self.with_world(|w| w.iam.simulator = mode);
    }

    /// The caller, roles, users, rules and simulator mode.
    pub fn iam(&self) -> IamView {
        self.with_world(|w| w.iam.view())
    }

    /// Every record set of a zone, in list order (empty for an unknown zone).
    pub fn records(&self, zone: &str) -> Vec<RecordSet> {
        self.with_world(|w| w.dns.zones.get(zone).map(|z| z.records.clone()).unwrap_or_default())
    }

    /// A record set of a zone, by name and type: the first in list order when routing-policy records
    /// share them (see [`Admin::records`] for all of them).
    pub fn record(&self, zone: &str, name: &str, record_type: &str) -> Option<RecordSet> {
        let name = crate::model::route53::normalize_name(name);
        self.with_world(|w| {
            w.dns
                .zones
                .get(zone)?
                .records
                .iter()
                .find(|r| r.name == name && r.record_type == record_type)
                .cloned()
        })
    }

    pub fn snapshot(&self) -> Snapshot {
        self.with_world(|w| Snapshot {
            global_clusters: w.rds.globals.values().map(|g| w.rds.global_view(g)).collect(),
            db_clusters: w.rds.clusters.values().map(|c| w.rds.cluster_view(c)).collect(),
            db_instances: w
                .rds
                .clusters
                .values()
                .flat_map(|c| c.instances.iter().map(|i| w.rds.instance_view(c, i)))
                .collect(),
            hosted_zones: w.dns.zones.values().cloned().collect(),
            regions_down: w.regions_down().clone(),
            faults: w.faults().to_vec(),
            timings: w.timings,
            iam: w.iam.view(),
        })
    }
}

fn key(region: &str, id: &str) -> ClusterKey {
    ClusterKey {
        region: region.to_owned(),
        id: id.to_ascii_lowercase(),
    }
}

fn no_such_cluster(key: ClusterKey) -> AdminError {
    AdminError::NoSuchCluster {
        region: key.region,
        id: key.id,
    }
}

fn check_region(region: &str) -> Result<(), AdminError> {
    if is_region_name(region) {
        Ok(())
    } else {
        Err(AdminError::Invalid(format!("{region:?} is not a Region name")))
    }
}

fn json<T: Serialize>(status: u16, value: &T) -> HttpResponse {
    let body = serde_json::to_vec_pretty(value).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}").into_bytes());
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("static headers are valid")
}

fn error(status: u16, message: impl std::fmt::Display) -> HttpResponse {
    json(status, &serde_json::json!({ "error": message.to_string() }))
}

fn done(result: Result<(), AdminError>) -> HttpResponse {
    match result {
        Ok(()) => json(200, &serde_json::json!({ "ok": true })),
        Err(e @ (AdminError::NoSuchCluster { .. } | AdminError::NoSuchZone(_) | AdminError::NoSuchInstance { .. })) => {
            error(404, e)
        }
        Err(e) => error(400, e),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DownBody {
    #[serde(default)]
    mode: OutageMode,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LagBody {
    replication_lag_ms: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ForwardingBody {
    status: WriteForwarding,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusBody {
    status: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointAddressBody {
    writer: bool,
    address: IpAddr,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PortBody {
    port: u16,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DnsDelayBody {
    delay_ms: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DnsDownBody {
    down: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretBody {
    region: String,
    name: String,
    value: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallerBody {
    arn: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SimulatorBody {
    mode: SimulatorMode,
}

fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| format!("invalid JSON body: {e}"))
}

/// Serves one request of the admin API.
pub(crate) async fn handle_http(shared: &Arc<Shared>, req: Request<Incoming>) -> HttpResponse {
    let admin = Admin { shared: shared.clone() };
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().trim_end_matches('/').to_owned();
    let query: BTreeMap<String, String> = req
        .uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let body = match Limited::new(req.into_body(), 4 << 20).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return error(413, "body too large"),
    };
    let parts: Vec<&str> = path.trim_start_matches("/_awsim/").split('/').collect();
    macro_rules! body {
        ($t:ty) => {
            match parse::<$t>(&body) {
                Ok(v) => v,
                Err(message) => return error(400, message),
            }
        };
    }
    match (method.as_str(), parts.as_slice()) {
        ("GET", ["health"]) => json(200, &"ok"),
        ("GET", ["state"]) => json(200, &admin.snapshot()),
        ("POST", ["scenario"]) => done(admin.load_scenario(body!(Scenario))),
        ("POST", ["reset"]) => {
            admin.reset();
            done(Ok(()))
        }
        ("POST", ["regions", region, "down"]) => {
            let b: DownBody = if body.is_empty() {
                DownBody::default()
            } else {
                body!(DownBody)
            };
            done(admin.region_down(region, b.mode))
        }
        ("POST", ["regions", region, "up"]) => done(admin.region_up(region)),
        ("POST", ["faults"]) => done(admin.inject(body!(FaultSpec))),
        ("DELETE", ["faults"]) => {
            admin.clear_faults();
            done(Ok(()))
        }
        ("GET", ["timings"]) => json(200, &admin.timings()),
        ("PUT", ["timings"]) => json(200, &admin.set_timings(body!(TimingsPatch))),
        ("PUT", ["clusters", region, id, "lag"]) => {
            let b = body!(LagBody);
            done(admin.set_replication_lag(region, id, Duration::from_millis(b.replication_lag_ms)))
        }
        ("PUT", ["clusters", region, id, "write-forwarding"]) => {
            let b = body!(ForwardingBody);
            done(admin.set_write_forwarding(region, id, b.status))
        }
        ("PUT", ["clusters", region, id, "status"]) => {
            let b = body!(StatusBody);
            done(admin.set_cluster_status(region, id, &b.status))
        }
        ("PUT", ["clusters", region, id, "endpoint-address"]) => {
            let b = body!(EndpointAddressBody);
            done(admin.set_endpoint_address(region, id, b.writer, b.address))
        }
        ("PUT", ["clusters", region, id, "port"]) => done(admin.set_port(region, id, body!(PortBody).port)),
        ("PUT", ["dns", "delay"]) => {
            admin.set_dns_delay(Duration::from_millis(body!(DnsDelayBody).delay_ms));
            done(Ok(()))
        }
        ("PUT", ["dns", "down"]) => {
            admin.set_dns_down(body!(DnsDownBody).down);
            done(Ok(()))
        }
        ("GET", ["dns", "queries"]) => json(200, &admin.dns_queries()),
        ("DELETE", ["dns", "queries"]) => {
            admin.clear_dns_queries();
            done(Ok(()))
        }
        ("POST", ["secrets"]) => {
            let b = body!(SecretBody);
            done(admin.put_secret(&b.region, &b.name, &b.value))
        }
        ("PUT", ["clusters", region, id, "settings"]) => {
            done(admin.set_cluster_settings(region, id, body!(SettingsPatch)))
        }
        ("PUT", ["instances", region, id]) => done(admin.set_instance(region, id, body!(InstancePatch))),
        ("GET", ["instances", region]) => json(200, &admin.instances(region)),
        ("GET", ["calls"]) => match query.get("action") {
            Some(a) => json(200, &admin.calls_to(a)),
            None => json(200, &admin.calls()),
        },
        ("DELETE", ["calls"]) => {
            admin.clear_calls();
            done(Ok(()))
        }
        ("GET", ["events"]) => json(200, &admin.events()),
        ("PUT", ["zones", zone, "records"]) => done(admin.put_record(zone, body!(RecordSet))),
        ("GET", ["iam"]) => json(200, &admin.iam()),
        ("PUT", ["iam", "caller"]) => done(admin.set_caller(&body!(CallerBody).arn)),
        ("POST", ["iam", "roles"]) => {
            let p = body!(IamPrincipal);
            done(admin.add_role(&p.name, &p.path))
        }
        ("POST", ["iam", "users"]) => {
            let p = body!(IamPrincipal);
            done(admin.add_user(&p.name, &p.path))
        }
        ("POST", ["iam", "rules"]) => done(admin.add_iam_rule(body!(IamRule))),
        ("DELETE", ["iam", "rules"]) => {
            admin.clear_iam_rules();
            done(Ok(()))
        }
        ("PUT", ["iam", "simulator"]) => {
            admin.set_simulator(body!(SimulatorBody).mode);
            done(Ok(()))
        }
        _ => error(404, format!("no admin route {method} {path}")),
    }
}
