//! `/aurora status`: for each configured global cluster, its members (role, status, engine version,
//! replication lag, endpoints), any operation in progress, and whether the writer and reader CNAMEs
//! point at the current writer's endpoints (a drift mark when not). Clusters are read
//! concurrently, and so are the members of each, so many clusters answer about as fast as one.
//! A cluster whose global cluster was rebuilt is read as its record says while the config still names
//! the old one (`records`), and the report says so; after a managed failover or a switchover the report
//! offers the switchover back once the old primary is a secondary (`Next::SwitchBack`).

use crate::ports::{Aurora, ClusterState, Dns, Member, Metrics};
use crate::runbook::plan::Plan;
use crate::settings::ClusterSettings;
use crate::store::RequestId;
use futures::future::join_all;

/// A member and its own description (or why it could not be read).
#[derive(Debug, Clone)]
pub struct MemberReport {
    pub member: Member,
    pub state: Result<ClusterState, String>,
    /// A secondary's replication lag, when known.
    pub lag_ms: Option<f64>,
}

/// What a CNAME points at, compared with what it should point at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CnameCheck {
    Unreadable(String),
    Missing {
        name: String,
    },
    /// The writer CNAME points at the global cluster's writer endpoint, which follows the writer;
    /// `serves` is the cluster id of the writer member it reaches now (`None`: no writer).
    FollowsWriter {
        name: String,
        value: String,
        serves: Option<String>,
    },
    /// `expected` is the current writer's matching endpoint, when known.
    Points {
        name: String,
        value: String,
        expected: Option<String>,
    },
}

/// The global writer endpoint (`GlobalClusters[].Endpoint`) and the member it reaches now: the writer,
/// as DescribeGlobalClusters shows it (not as DNS resolves it).
#[derive(Debug, Clone)]
pub struct GlobalEndpoint {
    pub endpoint: String,
    /// The writer member, `None` while the global cluster has none.
    pub serves: Option<Member>,
}

/// A cluster the bot detached and promoted, which now takes the writes outside the global cluster.
#[derive(Debug, Clone)]
pub struct Detached {
    /// The request whose run detached it.
    pub request_id: RequestId,
    pub report: MemberReport,
}

#[derive(Debug, Clone)]
pub struct ClusterReport {
    pub name: String,
    pub global_cluster_id: String,
    pub topology: Result<crate::ports::Topology, String>,
    pub members: Vec<MemberReport>,
    /// The global writer endpoint and the cluster it serves, when AWS gives one.
    pub global_endpoint: Option<GlobalEndpoint>,
    /// Set when the last successful run detached a cluster that is still outside the global cluster:
    /// that cluster is where the CNAMEs should point.
    pub detached: Option<Detached>,
    pub writer_cname: CnameCheck,
    pub reader_cname: CnameCheck,
    /// Whether Route 53 would take a failover's change of the two CNAMEs (the plan's "DNS records"
    /// check), when the records could be read.
    pub records: Option<crate::runbook::plan::Check>,
    /// The cluster's open run, if any, and which instance executes it (read from the store).
    pub run: Option<RunReport>,
    /// The global cluster recorded for this cluster (a rebuild), when it is followed instead of the
    /// config's (`records::followed`): `global_cluster_id` above is then the recorded one, and
    /// `replaces` the one the config names.
    pub follows: Option<crate::store::GlobalClusterRecord>,
    /// What to do next, when the bot can say.
    pub next: Option<Next>,
}

/// What to do next with a cluster, as status offers it.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// The last successful run was a managed failover or a switchover and its old primary is a
    /// secondary now: fail back with a switchover (no data loss).
    SwitchBack(SwitchBack),
    /// The last successful run was a detach and the promoted cluster is still standalone: nothing
    /// replicates it. `/aurora rebuild CLUSTER --in REGION` (REGION: the old primary's) protects it
    /// again.
    Rebuild { region: crate::types::Region },
}

/// Failing back after a managed failover or a switchover: a switchover back to the old primary.
#[derive(Debug, Clone, PartialEq)]
pub struct SwitchBack {
    /// The request whose run moved the writer away, and its mode.
    pub request_id: RequestId,
    pub after: crate::types::Mode,
    /// The old primary, now a secondary of the global cluster.
    pub old_primary: Member,
    /// Its status (DescribeDBClusters `Status`), or why it could not be read.
    pub status: Result<String, String>,
}

impl SwitchBack {
    /// Whether the switchover can be asked for now: the old primary is `available` and its
    /// `SynchronizationStatus` is `connected`.
    pub fn ready(&self) -> bool {
        self.status.as_deref() == Ok("available") && self.old_primary.sync.as_deref() == Some("connected")
    }
}

/// A cluster's open run and who executes it: the holder of the cluster's lease.
#[derive(Debug, Clone, PartialEq)]
pub struct RunReport {
    pub run_id: crate::store::RunId,
    pub request_id: RequestId,
    pub step: String,
    pub state: crate::store::RunState,
    /// The lease's holder (its instance name), its token and whether the lease has run out (the
    /// holder stopped renewing it: another instance takes the run over at its next look). `None`:
    /// no instance has taken the run up yet.
    pub executor: Option<(String, i64, bool)>,
}

/// Cluster `cluster`'s open run, if it has one, with the holder of its lease. A store that cannot be
/// read counts as none (logged).
pub async fn open_run(store: &dyn crate::store::Store, cluster: &crate::types::ClusterName) -> Option<RunReport> {
    let read = async {
        let Some(holder) = store.cluster_lock(cluster).await? else {
            return Ok(None);
        };
        let Some(run) = store.run_of_request(holder).await? else {
            return Ok(None);
        };
        if !run.state.is_open() {
            return Ok(None);
        }
        let lease = store.lease(&crate::store::Lease::cluster_scope(cluster)).await?;
        let now = jiff::Timestamp::now();
        Ok::<_, crate::store::StoreError>(Some(RunReport {
            run_id: run.id,
            request_id: holder,
            step: run.step.clone(),
            state: run.state,
            executor: lease.map(|l| {
                let name = l.owner.split_once('#').map_or(l.owner.as_str(), |(n, _)| n).to_owned();
                (name, l.token, l.expires_at <= now)
            }),
        }))
    };
    match read.await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, %cluster, "cannot read the cluster's run");
            None
        }
    }
}

pub use crate::types::same_host;

/// What the store knows of a cluster that its status shows (read with [`past`]).
#[derive(Debug, Clone, Default)]
pub struct Past {
    /// The global cluster recorded for it (a rebuild), if any.
    pub record: Option<crate::store::GlobalClusterRecord>,
    /// Its last successful run: that run's request and plan.
    pub last_success: Option<(RequestId, Plan)>,
}

/// Reads one cluster's status: the global cluster `c` names, or the one recorded for it while it
/// follows that record (`records::effective`), with what `past` says of its last successful run.
pub async fn report(
    aurora: &dyn Aurora,
    metrics: &dyn Metrics,
    dns: &dyn Dns,
    c: &ClusterSettings,
    past: Past,
) -> ClusterReport {
    let follows = crate::records::followed(c, past.record.as_ref()).cloned();
    let c = &crate::records::effective(c, past.record.as_ref());
    let read = read_cluster(aurora, metrics, dns, c).await;
    let mut next = switch_back(&read.topology, &read.members, past.last_success.as_ref()).map(Next::SwitchBack);
    let last_detach = past.last_success.filter(|(_, p)| p.mode == crate::types::Mode::Detach);
    let old_region = last_detach.as_ref().map(|(_, p)| p.from.region.clone());
    let detached = match (&read.topology, last_detach.map(|(id, p)| (id, p.to))) {
        (Ok(t), Some(d)) => detached(aurora, t, d).await,
        _ => None,
    };
    if let (None, Some(_), Some(region)) = (&next, &detached, old_region) {
        next = Some(Next::Rebuild { region });
    }
    // Where the CNAMEs should point: the detached cluster that now takes the writes, or the writer.
    let writer_state = match &detached {
        Some(d) => d.report.state.as_ref().ok(),
        None => read
            .members
            .iter()
            .find(|m| m.member.is_writer)
            .and_then(|m| m.state.as_ref().ok()),
    };
    let expected_writer = writer_state.and_then(|s| s.endpoint.clone());
    let expected_reader = writer_state.and_then(|s| s.reader_endpoint.clone());
    let global_endpoint = read.topology.as_ref().ok().and_then(|t| {
        Some(GlobalEndpoint {
            endpoint: t.writer_endpoint.clone()?,
            serves: t.writer().cloned(),
        })
    });
    let mut writer_cname = cname_check(&c.writer_record, read.cnames.as_ref().map(|v| &v[0]), expected_writer);
    // After a detach the CNAME belongs at the detached cluster: the global endpoint no longer reaches it.
    if detached.is_none() {
        writer_cname = follows_writer(writer_cname, global_endpoint.as_ref());
    }
    ClusterReport {
        name: c.name.to_string(),
        global_cluster_id: c.global_cluster_id.clone(),
        global_endpoint,
        writer_cname,
        reader_cname: cname_check(&c.reader_record, read.cnames.as_ref().map(|v| &v[1]), expected_reader),
        topology: read.topology,
        members: read.members,
        detached,
        records: read.records,
        run: None,
        follows,
        next,
    }
}

/// The switchover back, when `last` (the last successful run's request and plan) was a managed
/// failover or a switchover and its old primary is now a secondary of the global cluster, with no
/// managed operation in progress. Pure.
fn switch_back(
    topology: &Result<crate::ports::Topology, String>,
    members: &[MemberReport],
    last: Option<&(RequestId, Plan)>,
) -> Option<SwitchBack> {
    let (request_id, plan) = last?;
    if !matches!(plan.mode, crate::types::Mode::Failover | crate::types::Mode::Switchover) {
        return None;
    }
    if topology.as_ref().ok()?.operation_in_progress.is_some() {
        return None;
    }
    let old = members
        .iter()
        .find(|m| m.member.arn == plan.from.arn && !m.member.is_writer)?;
    Some(SwitchBack {
        request_id: *request_id,
        after: plan.mode,
        old_primary: old.member.clone(),
        status: old.state.as_ref().map(|s| s.status.clone()).map_err(Clone::clone),
    })
}

/// What one read of a cluster shows.
struct Surveyed {
    topology: Result<crate::ports::Topology, String>,
    members: Vec<MemberReport>,
    /// The writer's and the reader's CNAME values, in that order.
    cnames: Result<[Option<String>; 2], String>,
    records: Option<crate::runbook::plan::Check>,
}

/// Surveys the cluster; when its topology cannot be read, still reads the CNAMEs.
async fn read_cluster(aurora: &dyn Aurora, metrics: &dyn Metrics, dns: &dyn Dns, c: &ClusterSettings) -> Surveyed {
    let s = match crate::runbook::survey::survey(aurora, metrics, dns, None, c).await {
        Ok(s) => s,
        Err(e) => {
            // The topology is unreadable; the CNAMEs may still be.
            let names = [c.writer_record.as_str(), c.reader_record.as_str()];
            let cnames = dns.cnames(&c.hosted_zone_id, &names).await.map_err(|e| e.to_string());
            return Surveyed {
                topology: Err(e.to_string()),
                members: Vec::new(),
                cnames: cnames.map(|v| {
                    let mut v = v.into_iter();
                    [v.next().flatten(), v.next().flatten()]
                }),
                records: None,
            };
        }
    };
    let members = s
        .topology
        .members
        .iter()
        .map(|m| MemberReport {
            member: m.clone(),
            state: s.states.get(&m.arn).cloned().unwrap_or_else(|| Err("not read".into())),
            lag_ms: s.lag(&m.arn),
        })
        .collect();
    Surveyed {
        records: Some(crate::runbook::plan::records_check(c, &s.zone, &s.records)),
        members,
        cnames: s.dns.map(|d| [d.writer, d.reader]),
        topology: Ok(s.topology),
    }
}

/// The target of the last detach (`last`), read in its own Region, when it has not rejoined the global
/// cluster: it is a standalone writer.
async fn detached(
    aurora: &dyn Aurora,
    topology: &crate::ports::Topology,
    last: (RequestId, Member),
) -> Option<Detached> {
    let (request_id, m) = last;
    if topology.members.iter().any(|x| x.arn == m.arn) {
        return None;
    }
    Some(Detached {
        request_id,
        report: MemberReport {
            state: aurora
                .cluster(&m.region, &m.cluster_id)
                .await
                .map_err(|e| e.to_string()),
            member: m,
            lag_ms: None,
        },
    })
}

/// What the CNAME `name` points at (`value`, or why it could not be read), against `expected`.
fn cname_check(name: &str, value: Result<&Option<String>, &String>, expected: Option<String>) -> CnameCheck {
    match value {
        Err(e) => CnameCheck::Unreadable(e.clone()),
        Ok(None) => CnameCheck::Missing { name: name.to_owned() },
        Ok(Some(value)) => CnameCheck::Points {
            name: name.to_owned(),
            value: value.clone(),
            expected,
        },
    }
}

/// A writer CNAME at the global writer endpoint follows the writer (whichever member that is).
fn follows_writer(check: CnameCheck, global: Option<&GlobalEndpoint>) -> CnameCheck {
    match (check, global) {
        (CnameCheck::Points { name, value, .. }, Some(g)) if same_host(&value, &g.endpoint) => {
            CnameCheck::FollowsWriter {
                name,
                value,
                serves: g.serves.as_ref().map(|m| m.cluster_id.clone()),
            }
        }
        (check, _) => check,
    }
}

/// What the store knows of cluster `c` for its status: its recorded global cluster and its last
/// successful run (request and plan; a plan that cannot be read counts as none). A store that cannot
/// be read counts as knowing nothing (logged).
pub async fn past(store: &dyn crate::store::Store, c: &ClusterSettings) -> Past {
    let record = match store.global_cluster_record(&c.name).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, cluster = %c.name, "cannot read the recorded global cluster");
            None
        }
    };
    let last_success = match store.last_success(&c.name).await {
        Ok(Some(r)) => r.stored_plan::<Plan>().ok().flatten().map(|p| (r.id, p)),
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read past runs");
            None
        }
    };
    Past { record, last_success }
}

/// Reads every given cluster's status, concurrently.
pub async fn reports(
    aurora: &dyn Aurora,
    metrics: &dyn Metrics,
    dns: &dyn Dns,
    clusters: &[(&ClusterSettings, Past)],
) -> Vec<ClusterReport> {
    join_all(clusters.iter().map(|(c, d)| report(aurora, metrics, dns, c, d.clone()))).await
}

/// How long a status read answers later requests for the same cluster (a second): a burst of `/aurora status`
/// shares one read of AWS.
const FRESH: std::time::Duration = std::time::Duration::from_secs(1);

/// Most `/aurora status` answers being prepared at once; past it, a request is told the bot is busy.
pub const MAX_PENDING: usize = 32;

type SharedReport = futures::future::Shared<futures::future::BoxFuture<'static, ClusterReport>>;

/// Status reads shared between requests and bounded: one read of a cluster in flight at a time
/// (requests arriving meanwhile wait for it), a read a couple of seconds old answers a burst, and at
/// most `MAX_PENDING` answers are prepared at once, so that a burst while AWS is slow or unreachable
/// neither piles up work nor memory.
pub struct Surveyor {
    aurora: std::sync::Arc<dyn Aurora>,
    metrics: std::sync::Arc<dyn Metrics>,
    dns: std::sync::Arc<dyn Dns>,
    /// Reads in flight, and recent ones, by cluster name. A std mutex: held only to look up or insert.
    reads: std::sync::Mutex<std::collections::HashMap<String, Read>>,
    /// One permit per answer being prepared.
    permits: std::sync::Arc<tokio::sync::Semaphore>,
}

enum Read {
    InFlight(SharedReport),
    Done(tokio::time::Instant, Box<ClusterReport>),
}

/// Too many status answers are being prepared: try again shortly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the bot is busy answering other status requests")]
pub struct Busy;

impl Surveyor {
    pub fn new(
        aurora: std::sync::Arc<dyn Aurora>,
        metrics: std::sync::Arc<dyn Metrics>,
        dns: std::sync::Arc<dyn Dns>,
    ) -> Surveyor {
        Surveyor {
            aurora,
            metrics,
            dns,
            reads: Default::default(),
            permits: std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_PENDING)),
        }
    }

    /// Reports for `clusters` (each with what `store` knows of it, [`past`], read when the returned
    /// future first runs, not here: a request handler calls this before it
    /// answers), or `Busy` at once when `MAX_PENDING` answers are already being prepared. The returned
    /// future holds its place until it is done.
    pub fn reports(
        self: &std::sync::Arc<Self>,
        clusters: Vec<ClusterSettings>,
        store: std::sync::Arc<dyn crate::store::Store>,
    ) -> Result<impl std::future::Future<Output = Vec<ClusterReport>> + Send + 'static, Busy> {
        let permit = self.permits.clone().try_acquire_owned().map_err(|_| Busy)?;
        let me = self.clone();
        Ok(async move {
            let pasts = join_all(clusters.iter().map(|c| past(store.as_ref(), c))).await;
            let runs = join_all(clusters.iter().map(|c| open_run(store.as_ref(), &c.name))).await;
            let reads: Vec<SharedReport> = clusters.into_iter().zip(pasts).map(|(c, p)| me.read(c, p)).collect();
            let mut reports = join_all(reads).await;
            for (r, run) in reports.iter_mut().zip(runs) {
                r.run = run;
            }
            drop(permit);
            reports
        })
    }

    /// The shared read of one cluster: a recent one, the one in flight, or a new one.
    fn read(self: &std::sync::Arc<Self>, c: ClusterSettings, past: Past) -> SharedReport {
        use futures::FutureExt;
        let key = c.name.to_string();
        let mut reads = self.reads.lock().unwrap_or_else(|p| p.into_inner());
        match reads.get(&key) {
            Some(Read::InFlight(f)) => return f.clone(),
            Some(Read::Done(at, r)) if at.elapsed() < FRESH => {
                return futures::future::ready((**r).clone()).boxed().shared();
            }
            _ => {}
        }
        let me = self.clone();
        let k = key.clone();
        let read = async move {
            let r = report(me.aurora.as_ref(), me.metrics.as_ref(), me.dns.as_ref(), &c, past).await;
            me.reads
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(k, Read::Done(tokio::time::Instant::now(), Box::new(r.clone())));
            r
        }
        .boxed()
        .shared();
        reads.insert(key, Read::InFlight(read.clone()));
        read
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Region;

    const GLOBAL: &str = "orders-global.global-abc123.global.rds.amazonaws.com";

    fn points(value: &str) -> CnameCheck {
        CnameCheck::Points {
            name: "w.zone".into(),
            value: value.into(),
            expected: Some("east.cluster-abc.us-east-1.rds.amazonaws.com".into()),
        }
    }

    fn endpoint(serves: Option<&str>) -> GlobalEndpoint {
        GlobalEndpoint {
            endpoint: GLOBAL.into(),
            serves: serves.map(|id| Member {
                region: Region::parse("us-east-1").unwrap(),
                cluster_id: id.into(),
                arn: format!("arn:aws:rds:us-east-1:123456789012:cluster:{id}"),
                is_writer: true,
                sync: None,
            }),
        }
    }

    fn member(region: &str, id: &str, is_writer: bool, sync: Option<&str>) -> Member {
        Member {
            region: Region::parse(region).unwrap(),
            cluster_id: id.into(),
            arn: format!("arn:aws:rds:{region}:123456789012:cluster:{id}"),
            is_writer,
            sync: sync.map(str::to_owned),
        }
    }

    /// A stored plan of `mode` from orders-east (us-east-1) to orders-west (us-west-2).
    fn plan(mode: &str) -> Plan {
        let m = |m: Member| serde_json::to_value(m).unwrap();
        serde_json::from_value(serde_json::json!({
            "cluster": "orders", "global_cluster_id": "orders-global", "mode": mode,
            "from": m(member("us-east-1", "orders-east", true, None)),
            "to": m(member("us-west-2", "orders-west", false, Some("connected"))),
            "zone_id": "Z1", "writer_record": "w.zone", "reader_record": "r.zone", "record_ttl": 60,
            "regions": ["us-east-1", "us-west-2"], "dns_before": {}
        }))
        .unwrap()
    }

    fn topology(members: &[Member], operation: Option<&str>) -> Result<crate::ports::Topology, String> {
        Ok(crate::ports::Topology {
            global_cluster_id: "orders-global".into(),
            status: "available".into(),
            engine_version: "15.4".into(),
            members: members.to_vec(),
            operation_in_progress: operation.map(str::to_owned),
            operation_target: None,
            writer_endpoint: None,
        })
    }

    fn reports(members: &[Member]) -> Vec<MemberReport> {
        members
            .iter()
            .map(|m| MemberReport {
                member: m.clone(),
                state: Err("not read".into()),
                lag_ms: None,
            })
            .collect()
    }

    #[test]
    fn the_switchover_back_is_offered_after_a_managed_failover_or_a_switchover_whose_old_primary_is_a_secondary() {
        let now = [
            member("us-east-1", "orders-east", false, Some("pending-resync")),
            member("us-west-2", "orders-west", true, None),
        ];
        let last = (RequestId::new(7), plan("failover"));
        let back = switch_back(&topology(&now, None), &reports(&now), Some(&last)).unwrap();
        assert_eq!(
            (back.request_id, back.after),
            (RequestId::new(7), crate::types::Mode::Failover)
        );
        assert_eq!(back.old_primary, now[0]);
        assert!(!back.ready(), "not readable, not connected");
        let switched = (RequestId::new(8), plan("switchover"));
        assert!(switch_back(&topology(&now, None), &reports(&now), Some(&switched)).is_some());
        // Nothing after a detach, while an operation runs, when the old primary is the writer again or
        // gone, or with no past run.
        let detached = (RequestId::new(9), plan("detach"));
        assert_eq!(
            switch_back(&topology(&now, None), &reports(&now), Some(&detached)),
            None
        );
        assert_eq!(
            switch_back(&topology(&now, Some("switching-over")), &reports(&now), Some(&last)),
            None
        );
        let back_again = [
            member("us-east-1", "orders-east", true, None),
            member("us-west-2", "orders-west", false, Some("connected")),
        ];
        assert_eq!(
            switch_back(&topology(&back_again, None), &reports(&back_again), Some(&last)),
            None
        );
        assert_eq!(
            switch_back(&topology(&now[1..], None), &reports(&now[1..]), Some(&last)),
            None
        );
        assert_eq!(switch_back(&topology(&now, None), &reports(&now), None), None);
        assert_eq!(switch_back(&Err("throttled".into()), &[], Some(&last)), None);
    }

    #[test]
    fn the_switchover_back_is_ready_when_the_old_primary_is_available_and_connected() {
        let back = |status: &str, sync: Option<&str>| SwitchBack {
            request_id: RequestId::new(7),
            after: crate::types::Mode::Failover,
            old_primary: member("us-east-1", "orders-east", false, sync),
            status: Ok(status.into()),
        };
        assert!(back("available", Some("connected")).ready());
        assert!(!back("available", Some("pending-resync")).ready());
        assert!(!back("modifying", Some("connected")).ready());
        assert!(!back("available", None).ready());
    }

    #[test]
    fn a_writer_cname_at_this_global_endpoint_follows_the_writer_and_anything_else_is_compared() {
        let g = endpoint(Some("east"));
        assert_eq!(
            follows_writer(points(&format!("{}.", GLOBAL.to_uppercase())), Some(&g)),
            CnameCheck::FollowsWriter {
                name: "w.zone".into(),
                value: format!("{}.", GLOBAL.to_uppercase()),
                serves: Some("east".into())
            }
        );
        let other = points("payments.global-abc123.global.rds.amazonaws.com");
        assert_eq!(
            follows_writer(other.clone(), Some(&g)),
            other,
            "another global cluster's"
        );
        assert_eq!(
            follows_writer(points(GLOBAL), None),
            points(GLOBAL),
            "no endpoint known"
        );
        assert_eq!(
            follows_writer(points(GLOBAL), Some(&endpoint(None))),
            CnameCheck::FollowsWriter {
                name: "w.zone".into(),
                value: GLOBAL.into(),
                serves: None
            }
        );
    }
}
