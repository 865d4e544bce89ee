//! The engine's ports, faked for paused-time tests: `FakeAws`, a small AWS world (one global cluster
//! with a writer in the first Region and a secondary in the second, a hosted zone with the two
//! CNAMEs) whose changes happen after a number of reads or a span of (tokio) time, with errors
//! injected per call and a log of every call; `Recorder`, the `Chat` port keeping what was queued (once
//! per key, as the outbox does); and `Bot`, which builds a `Runner` over them and the in-memory store,
//! and records approved requests whose runs the tests start, stop and resume.

use crate::approval::{Approvals, Launcher};
use crate::ports::{
    Aurora, AwsError, AwsErrorKind, ChatError, ClusterState, Directory, Dns, Evaluation, HostedZone, Member, Metrics,
    PermissionQuery, Permissions, RdsEvent, RecordSet, TokioClock, Topology, Verdict, route53_name,
};
use crate::runbook::plan::{self, Plan};
use crate::runbook::report::{Chat, Note, Stage};
use crate::runbook::{RunData, Runner, Step, survey};
use crate::settings::{ClusterSettings, RunbookSettings, Settings};
use crate::store::{
    Decided, Fence, JournalEntry, MemoryStore, NewRequest, OutboxId, Outgoing, Request, Run, RunId, RunState, Store,
};
use crate::types::{Mode, Region, SlackUserId, UserGroupId};
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The AWS calls the engine makes, as the log names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    DescribeGlobalClusters,
    DescribeDbClusters,
    RemoveFromGlobalCluster,
    FailoverGlobalCluster,
    SwitchoverGlobalCluster,
    DescribeEvents,
    DescribeDbClusterSnapshots,
    GetHostedZone,
    ListResourceRecordSets,
    ChangeResourceRecordSets,
    GetChange,
    GetMetricData,
    SimulatePrincipalPolicy,
}

/// One call, as the world saw it.
#[derive(Debug, Clone)]
pub struct Call {
    /// Since the world was made (tokio time).
    pub at: Duration,
    pub api: Api,
    /// The cluster, record or change it was about ("" when none).
    pub subject: String,
    pub ok: bool,
}

/// When a scripted change happens.
#[derive(Debug, Clone, Copy)]
pub enum When {
    Never,
    /// On the nth read that would show it (1: the first read after the call).
    OnRead(u32),
    /// Once this long has passed since the call.
    After(Duration),
}

impl When {
    fn due(self, since: Instant, reads: u32) -> bool {
        match self {
            When::Never => false,
            When::OnRead(n) => reads >= n,
            When::After(d) => Instant::now() >= since + d,
        }
    }
}

/// How a managed failover or switchover ends.
#[derive(Debug, Clone, Copy)]
pub enum Managed {
    /// The target becomes the writer (read on DescribeGlobalClusters).
    Completes(When),
    /// AWS cancels or rolls it back: nothing in progress, the writer unchanged.
    RollsBack(When),
}

/// An error injected into calls of `api`.
#[derive(Debug, Clone)]
pub struct Fault {
    api: Api,
    subject: Option<String>,
    kind: AwsErrorKind,
    /// How many more calls fail (`None`: every one).
    times: Option<u32>,
    /// Only once this call has been made (to inject errors from a point of the run on).
    after: Option<Api>,
    /// The call takes effect all the same: only its answer is lost.
    applies: bool,
}

impl Fault {
    /// Every call of `api` fails with `kind`.
    pub fn new(api: Api, kind: AwsErrorKind) -> Fault {
        Fault {
            api,
            subject: None,
            kind,
            times: None,
            after: None,
            applies: false,
        }
    }

    /// Only calls about `subject` (a cluster id, a record name).
    pub fn on(mut self, subject: &str) -> Fault {
        self.subject = Some(subject.to_owned());
        self
    }

    /// Only the next `n` calls.
    pub fn times(mut self, n: u32) -> Fault {
        self.times = Some(n);
        self
    }

    /// Only once a call of `api` has been made.
    pub fn after(mut self, api: Api) -> Fault {
        self.after = Some(api);
        self
    }

    /// The call takes effect, but its answer is this error (a lost answer, a timeout).
    pub fn but_applies(mut self) -> Fault {
        self.applies = true;
        self
    }
}

/// A detach under way: the target is promoting until `when`.
struct Promotion {
    target: String,
    when: When,
    since: Instant,
    reads: u32,
}

/// A managed operation under way.
struct Operation {
    status: &'static str,
    target_arn: String,
    ends: Managed,
    since: Instant,
    reads: u32,
}

/// A Route 53 change, PENDING until `when`.
struct Change {
    when: When,
    since: Instant,
    reads: u32,
}

/// The world's state. Tests change the scripts before (or during) a run with `FakeAws::script`.
pub struct World {
    epoch: Instant,
    global_cluster_id: String,
    members: Vec<Member>,
    clusters: BTreeMap<String, ClusterState>,
    zone: HostedZone,
    /// Route 53 name (lower case, trailing dot) → CNAME value.
    records: BTreeMap<String, String>,
    promotion: Option<Promotion>,
    operation: Option<Operation>,
    changes: BTreeMap<String, Change>,
    faults: Vec<Fault>,
    log: Vec<Call>,
    /// How the next detach's promotion goes.
    pub promotes: When,
    /// How the next managed operation ends.
    pub managed: Managed,
    /// When the next DNS change is INSYNC.
    pub insync: When,
}

impl World {
    fn cluster_mut(&mut self, id: &str) -> &mut ClusterState {
        self.clusters.get_mut(id).expect("a cluster of the world")
    }

    /// The detached target becomes writable now.
    pub fn finish_promotion(&mut self) {
        if let Some(p) = self.promotion.take() {
            let c = self.cluster_mut(&p.target);
            c.status = "available".into();
            c.has_writer = true;
        }
    }

    /// Applies what is due at this read of the topology.
    fn topology_read(&mut self) {
        if let Some(op) = self.operation.as_mut() {
            op.reads += 1;
        }
        self.settle_operation();
    }

    /// Ends the managed operation if its end is due (by topology reads counted so far, or by time:
    /// AWS moves on whoever reads what).
    fn settle_operation(&mut self) {
        let Some(op) = self.operation.as_mut() else { return };
        let (completes, when) = match op.ends {
            Managed::Completes(w) => (true, w),
            Managed::RollsBack(w) => (false, w),
        };
        if !when.due(op.since, op.reads) {
            return;
        }
        let target = op.target_arn.clone();
        self.operation = None;
        if !completes {
            return;
        }
        for m in &mut self.members {
            m.is_writer = m.arn == target;
            m.sync = (!m.is_writer).then(|| "connected".to_owned());
        }
        for c in self.clusters.values_mut() {
            c.has_writer = c.arn == target;
        }
    }

    /// Applies what is due at this read of cluster `id`.
    fn cluster_read(&mut self, id: &str) {
        self.settle_operation();
        let Some(p) = self.promotion.as_mut().filter(|p| p.target == id) else {
            return;
        };
        p.reads += 1;
        if p.when.due(p.since, p.reads) {
            self.finish_promotion();
        }
    }

    fn topology(&self) -> Topology {
        Topology {
            global_cluster_id: self.global_cluster_id.clone(),
            status: "available".into(),
            engine_version: "15.4".into(),
            members: self.members.clone(),
            operation_in_progress: self.operation.as_ref().map(|o| o.status.to_owned()),
            operation_target: self.operation.as_ref().map(|o| o.target_arn.clone()),
            writer_endpoint: Some(global_endpoint(&self.global_cluster_id)),
        }
    }

    fn detach(&mut self, target: &Member) {
        self.members.retain(|m| m.arn != target.arn);
        let c = self.cluster_mut(&target.cluster_id);
        c.global_cluster_id = None;
        c.status = "promoting".into();
        c.has_writer = false;
        self.promotion = Some(Promotion {
            target: target.cluster_id.clone(),
            when: self.promotes,
            since: Instant::now(),
            reads: 0,
        });
    }

    fn start_operation(&mut self, status: &'static str, target: &Member) {
        self.operation = Some(Operation {
            status,
            target_arn: target.arn.clone(),
            ends: self.managed,
            since: Instant::now(),
            reads: 0,
        });
    }

    /// The fault that applies to this call, if any (counting it down).
    fn fault(&mut self, api: Api, subject: &str) -> Option<(AwsError, bool)> {
        let made: Vec<Api> = self.log.iter().map(|c| c.api).collect();
        let f = self.faults.iter_mut().find(|f| {
            f.api == api
                && f.subject.as_deref().is_none_or(|s| s == subject)
                && f.times != Some(0)
                && f.after.is_none_or(|a| made.contains(&a))
        })?;
        if let Some(n) = f.times.as_mut() {
            *n -= 1;
        }
        let message = format!("{api:?}: injected {:?}", f.kind);
        Some((AwsError::new(f.kind, message), f.applies))
    }
}

/// A scriptable AWS for the engine: implements `Aurora`, `Dns`, `Metrics` and `Permissions`.
pub struct FakeAws {
    /// The whole world behind one std mutex, held only within a call (never across an await).
    world: Mutex<World>,
}

fn member(region: &Region, id: &str, writer: bool) -> Member {
    Member {
        region: region.clone(),
        cluster_id: id.into(),
        arn: format!("arn:aws:rds:{region}:123456789012:cluster:{id}"),
        is_writer: writer,
        sync: (!writer).then(|| "connected".to_owned()),
    }
}

fn cluster_state(m: &Member, global: &str) -> ClusterState {
    ClusterState {
        region: m.region.clone(),
        cluster_id: m.cluster_id.clone(),
        arn: m.arn.clone(),
        status: "available".into(),
        engine_version: "15.4".into(),
        has_writer: m.is_writer,
        instances: 2,
        endpoint: Some(endpoint(&m.cluster_id, &m.region, false)),
        reader_endpoint: Some(endpoint(&m.cluster_id, &m.region, true)),
        port: Some(5432),
        global_cluster_id: Some(global.to_owned()),
        write_forwarding: (!m.is_writer).then(|| "disabled".to_owned()),
    }
}

/// The global writer endpoint of a global cluster, as RDS names it.
pub fn global_endpoint(global_cluster_id: &str) -> String {
    format!("{global_cluster_id}.global-abc123.global.rds.amazonaws.com")
}

/// A cluster's endpoint (or reader endpoint), as RDS names them.
pub fn endpoint(cluster_id: &str, region: &Region, reader: bool) -> String {
    let ro = if reader { "-ro" } else { "" };
    format!("{cluster_id}.cluster{ro}-abc.{region}.rds.amazonaws.com")
}

impl FakeAws {
    /// `cluster`'s global cluster: `east` writes in its first Region, `west` is a connected secondary
    /// in its second; both CNAMEs point at `east`. Nothing changes until the engine calls.
    pub fn new(cluster: &ClusterSettings) -> FakeAws {
        let east = member(&cluster.regions[0], "east", true);
        let west = member(&cluster.regions[1], "west", false);
        let clusters = [&east, &west]
            .iter()
            .map(|m| (m.cluster_id.clone(), cluster_state(m, &cluster.global_cluster_id)))
            .collect();
        let zone_name = route53_name(cluster.writer_record.split_once('.').map_or("zone", |(_, z)| z));
        let records = [
            (&cluster.writer_record, endpoint("east", &east.region, false)),
            (&cluster.reader_record, endpoint("east", &east.region, true)),
        ]
        .into_iter()
        .map(|(name, value)| (route53_name(name), value))
        .collect();
        FakeAws {
            world: Mutex::new(World {
                epoch: Instant::now(),
                global_cluster_id: cluster.global_cluster_id.clone(),
                members: vec![east, west],
                clusters,
                zone: HostedZone {
                    id: cluster.hosted_zone_id.clone(),
                    name: zone_name,
                    private: true,
                },
                records,
                promotion: None,
                operation: None,
                changes: BTreeMap::new(),
                faults: Vec::new(),
                log: Vec::new(),
                promotes: When::OnRead(1),
                managed: Managed::Completes(When::OnRead(1)),
                insync: When::OnRead(1),
            }),
        }
    }

    fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Changes the world (its scripts, or its state mid-run).
    pub fn script(&self, f: impl FnOnce(&mut World)) {
        f(&mut self.world());
    }

    /// Injects `fault`.
    pub fn fail(&self, fault: Fault) {
        self.world().faults.push(fault);
    }

    /// Every call made so far of `api`.
    pub fn calls(&self, api: Api) -> Vec<Call> {
        self.world().log.iter().filter(|c| c.api == api).cloned().collect()
    }

    /// The calls of `api` about `subject` made after the first call of `marker`, in order (the
    /// steps before a wait all happen at one instant of paused time: the log's order tells them apart).
    pub fn calls_after(&self, marker: Api, api: Api, subject: &str) -> Vec<Call> {
        self.world()
            .log
            .iter()
            .skip_while(|c| c.api != marker)
            .skip(1)
            .filter(|c| c.api == api && c.subject == subject)
            .cloned()
            .collect()
    }

    /// Where the CNAME `name` points now.
    pub fn cname(&self, name: &str) -> Option<String> {
        self.world().records.get(&route53_name(name)).cloned()
    }

    /// Logs the call, applies an injected fault if there is one, else (or if the fault lets it take
    /// effect) `op`.
    fn call<T>(
        &self,
        api: Api,
        subject: &str,
        op: impl FnOnce(&mut World) -> Result<T, AwsError>,
    ) -> Result<T, AwsError> {
        let mut w = self.world();
        let at = Instant::now() - w.epoch;
        let result = match w.fault(api, subject) {
            Some((e, true)) => op(&mut w).and(Err(e)),
            Some((e, false)) => Err(e),
            None => op(&mut w),
        };
        w.log.push(Call {
            at,
            api,
            subject: subject.to_owned(),
            ok: result.is_ok(),
        });
        result
    }
}

fn not_found(what: &str) -> AwsError {
    AwsError::new(AwsErrorKind::NotFound, format!("{what} not found"))
}

/// The fake does not model a rebuild's creating calls (`/aurora rebuild` is tested against awsim):
/// each answers an error saying so.
#[async_trait]
impl crate::ports::Provisioning for FakeAws {
    async fn cluster_spec(&self, _: &Region, id: &str) -> Result<crate::ports::ClusterSpec, AwsError> {
        Err(not_modelled(id))
    }
    async fn create_global_cluster(&self, id: &str, _: &ClusterState) -> Result<(), AwsError> {
        Err(not_modelled(id))
    }
    async fn create_secondary(&self, s: &crate::ports::NewSecondary) -> Result<(), AwsError> {
        Err(not_modelled(&s.cluster_id))
    }
    async fn create_instance(&self, i: &crate::ports::NewInstance) -> Result<(), AwsError> {
        Err(not_modelled(&i.instance_id))
    }
    async fn instance(&self, _: &Region, id: &str) -> Result<Option<crate::ports::InstanceSpec>, AwsError> {
        Err(not_modelled(id))
    }
}

fn not_modelled(what: &str) -> AwsError {
    AwsError::new(
        AwsErrorKind::Other,
        format!("{what}: the fake does not model a rebuild's calls (see tests/it/rebuild.rs, on awsim)"),
    )
}

#[async_trait]
impl Aurora for FakeAws {
    async fn topology(&self, global_cluster_id: &str, _: &[Region]) -> Result<Topology, AwsError> {
        self.call(Api::DescribeGlobalClusters, global_cluster_id, |w| {
            w.topology_read();
            Ok(w.topology())
        })
    }

    async fn cluster(&self, _: &Region, cluster_id: &str) -> Result<ClusterState, AwsError> {
        self.call(Api::DescribeDbClusters, cluster_id, |w| {
            w.cluster_read(cluster_id);
            w.clusters.get(cluster_id).cloned().ok_or_else(|| not_found(cluster_id))
        })
    }

    async fn detach(&self, _: &str, member: &Member) -> Result<(), AwsError> {
        self.call(Api::RemoveFromGlobalCluster, &member.cluster_id, |w| {
            w.detach(member);
            Ok(())
        })
    }

    async fn failover(&self, _: &str, target: &Member) -> Result<(), AwsError> {
        self.call(Api::FailoverGlobalCluster, &target.cluster_id, |w| {
            w.start_operation("failing-over", target);
            Ok(())
        })
    }

    async fn switchover(&self, _: &str, target: &Member, _: &Member) -> Result<(), AwsError> {
        self.call(Api::SwitchoverGlobalCluster, &target.cluster_id, |w| {
            w.start_operation("switching-over", target);
            Ok(())
        })
    }

    async fn events(&self, _: &Region, cluster_id: &str, _: jiff::Timestamp) -> Result<Vec<RdsEvent>, AwsError> {
        self.call(Api::DescribeEvents, cluster_id, |_| Ok(Vec::new()))
    }

    async fn failover_snapshots(
        &self,
        _: &Region,
        cluster_id: &str,
        _: jiff::Timestamp,
    ) -> Result<Vec<String>, AwsError> {
        self.call(Api::DescribeDbClusterSnapshots, cluster_id, |_| Ok(Vec::new()))
    }
}

#[async_trait]
impl Dns for FakeAws {
    async fn hosted_zone(&self, zone_id: &str) -> Result<HostedZone, AwsError> {
        self.call(Api::GetHostedZone, zone_id, |w| Ok(w.zone.clone()))
    }

    async fn records_at(&self, _: &str, name: &str) -> Result<Vec<RecordSet>, AwsError> {
        self.call(Api::ListResourceRecordSets, name, |w| {
            let name = route53_name(name);
            Ok(w.records
                .get(&name)
                .map(|value| RecordSet {
                    name: name.clone(),
                    record_type: "CNAME".into(),
                    values: vec![value.clone()],
                    alias_target: None,
                    set_identifier: None,
                    routing: None,
                })
                .into_iter()
                .collect())
        })
    }

    async fn cnames(&self, _: &str, names: &[&str]) -> Result<Vec<Option<String>>, AwsError> {
        self.call(Api::ListResourceRecordSets, &names.join(","), |w| {
            Ok(names.iter().map(|n| w.records.get(&route53_name(n)).cloned()).collect())
        })
    }

    async fn upsert_cnames(&self, _: &str, records: &[(&str, &str)], _: i64, _: &str) -> Result<String, AwsError> {
        self.call(Api::ChangeResourceRecordSets, "", |w| {
            for (name, value) in records {
                w.records.insert(route53_name(name), (*value).to_owned());
            }
            let id = format!("C{}", w.changes.len() + 1);
            let change = Change {
                when: w.insync,
                since: Instant::now(),
                reads: 0,
            };
            w.changes.insert(id.clone(), change);
            Ok(id)
        })
    }

    async fn change_insync(&self, change_id: &str) -> Result<bool, AwsError> {
        self.call(Api::GetChange, change_id, |w| {
            let c = w.changes.get_mut(change_id).ok_or_else(|| not_found(change_id))?;
            c.reads += 1;
            Ok(c.when.due(c.since, c.reads))
        })
    }
}

#[async_trait]
impl Metrics for FakeAws {
    async fn replication_lag_ms(&self, secondary: &Member, _: &Region) -> Result<Option<f64>, AwsError> {
        self.call(Api::GetMetricData, &secondary.cluster_id, |_| Ok(Some(100.0)))
    }
}

#[async_trait]
impl Permissions for FakeAws {
    async fn evaluate(&self, queries: &[PermissionQuery]) -> Result<Vec<Evaluation>, String> {
        let allowed = queries
            .iter()
            .flat_map(|q| {
                q.actions.iter().flat_map(|a| {
                    q.resources.iter().map(|r| Evaluation {
                        action: a.clone(),
                        resource: r.clone(),
                        verdict: Verdict::Allowed,
                    })
                })
            })
            .collect();
        self.call(Api::SimulatePrincipalPolicy, "", |_| Ok(allowed))
            .map_err(|e| e.to_string())
    }
}

/// A thread reply as queued.
#[derive(Debug, Clone)]
pub struct Said {
    /// When it was first queued (tokio time since the recorder was made).
    pub at: Duration,
    pub key: String,
    pub broadcast: bool,
    pub note: Note,
}

/// The `Chat` port, recording what was queued: each keyed reply once (as the outbox keeps it), in
/// order.
pub struct Recorder {
    epoch: Instant,
    /// A std mutex: held only to push or read.
    said: Mutex<Vec<Said>>,
    posted: Mutex<i64>,
}

impl Recorder {
    pub fn new() -> Recorder {
        Recorder {
            epoch: Instant::now(),
            said: Mutex::new(Vec::new()),
            posted: Mutex::new(0),
        }
    }

    /// Every reply queued, once per key.
    pub fn said(&self) -> Vec<Said> {
        self.said.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The reply queued with `key`, if any.
    pub fn said_with(&self, key: &str) -> Option<Said> {
        self.said().into_iter().find(|s| s.key == key)
    }
}

#[async_trait]
impl Chat for Recorder {
    async fn post_request(&self, _: &Request, _: &Plan) -> Result<OutboxId, ChatError> {
        let mut n = self.posted.lock().unwrap_or_else(|p| p.into_inner());
        *n += 1;
        Ok(OutboxId::new(*n))
    }

    async fn update_request(
        &self,
        _: &Request,
        _: &Plan,
        _: &Stage,
        _: Option<&str>,
        _: Option<&Fence>,
    ) -> Result<(), ChatError> {
        Ok(())
    }

    async fn note(
        &self,
        _: &Request,
        note: &Note,
        broadcast: bool,
        key: &str,
        _: Option<&Fence>,
    ) -> Result<OutboxId, ChatError> {
        let mut said = self.said.lock().unwrap_or_else(|p| p.into_inner());
        let at = match said.iter().position(|s| s.key == key) {
            Some(i) => i,
            None => {
                said.push(Said {
                    at: Instant::now() - self.epoch,
                    key: key.to_owned(),
                    broadcast,
                    note: note.clone(),
                });
                said.len() - 1
            }
        };
        Ok(OutboxId::new(i64::try_from(at).unwrap_or(i64::MAX)))
    }

    /// Records an edit as what was said (the tests read the notes in order, edits included).
    async fn edit(
        &self,
        request: &Request,
        _: OutboxId,
        note: &Note,
        key: &str,
        fence: Option<&Fence>,
    ) -> Result<(), ChatError> {
        self.note(request, note, false, key, fence).await.map(|_| ())
    }

    async fn respond(&self, _: &str, _: &crate::runbook::report::Answer, _: bool) -> Result<(), ChatError> {
        Ok(())
    }

    async fn respond_after(
        &self,
        _: &str,
        _: &crate::runbook::report::Answer,
        _: crate::store::OutboxId,
    ) -> Result<(), ChatError> {
        Ok(())
    }
    async fn respond_plan(&self, _: &str, _: &Plan) -> Result<(), ChatError> {
        Ok(())
    }
}

/// A Slack directory where every user group is empty (the tests name users directly).
struct NoGroups;

#[async_trait]
impl Directory for NoGroups {
    async fn members(&self, _: &UserGroupId) -> Result<Vec<SlackUserId>, ChatError> {
        Ok(Vec::new())
    }
}

/// The example configuration with the runbook's timings for these tests: polls every second,
/// promotion within 60 s, DNS within 30 s, and no window for the bot to finish a late run by itself.
pub fn settings() -> Settings {
    let mut s = Settings::from_toml(include_str!("../../config.example.toml")).expect("the example config");
    s.runbook = RunbookSettings {
        poll_interval: Duration::from_secs(1),
        lag_limit: Duration::from_secs(60),
        promote_timeout: Duration::from_secs(60),
        dns_timeout: Duration::from_secs(30),
        late_dns_window: Duration::ZERO,
        rebuild_timeout: std::time::Duration::from_secs(3600),
    };
    s
}

pub fn user(id: &str) -> SlackUserId {
    SlackUserId::parse(id).expect("a user id")
}

/// The engine over the fakes and the in-memory store, on tokio's clock. Made at the start of a
/// paused-time test: times in the AWS log, the recorder and `since_start` count from then.
pub struct Bot {
    pub settings: Arc<Settings>,
    pub aws: Arc<FakeAws>,
    pub chat: Arc<Recorder>,
    pub store: Arc<dyn Store>,
    /// The same store, to inject its errors.
    pub memory: Arc<MemoryStore>,
    pub clock: Arc<TokioClock>,
    started: jiff::Timestamp,
    /// Cancelled to stop the bot (a shutdown: runs stop at their next pause and resume later).
    shutdown: Mutex<CancellationToken>,
}

impl Bot {
    pub fn new() -> Bot {
        Bot::with_settings(|_| {})
    }

    /// A bot whose settings `edit` changes first (e.g. a late DNS window).
    pub fn with_settings(edit: impl FnOnce(&mut Settings)) -> Bot {
        let mut settings = settings();
        edit(&mut settings);
        let settings = Arc::new(settings);
        let memory = Arc::new(MemoryStore::new());
        let clock = Arc::new(TokioClock::new());
        Bot {
            aws: Arc::new(FakeAws::new(&settings.clusters[0])),
            chat: Arc::new(Recorder::new()),
            store: memory.clone(),
            memory,
            started: crate::ports::Clock::now(clock.as_ref()),
            clock,
            settings,
            shutdown: Mutex::new(CancellationToken::new()),
        }
    }

    /// How long after the bot was made `t` is.
    pub fn since_start(&self, t: jiff::Timestamp) -> Duration {
        t.duration_since(self.started).unsigned_abs()
    }

    /// A runner, as a (re)started bot makes it.
    pub fn runner(&self) -> Arc<Runner> {
        Arc::new(Runner {
            store: self.store.clone(),
            aurora: self.aws.clone(),
            provisioning: self.aws.clone(),
            dns: self.aws.clone(),
            metrics: self.aws.clone(),
            permissions: self.aws.clone(),
            chat: self.chat.clone(),
            clock: self.clock.clone(),
            settings: self.settings.runbook,
            shutdown: self.shutdown.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            aborts: Default::default(),
            in_flight: Default::default(),
            telemetry: Default::default(),
            database: None,
            // The same owner for every (re)started runner: one process per store, as at start-up,
            // where a new process ends the leases of the one before.
            leases: Arc::new(crate::lease::Leaseholder {
                store: self.store.clone(),
                clock: self.clock.clone(),
                instance: crate::lease::Instance {
                    name: "test-bot".into(),
                    region: None,
                    id: "test-bot#0".into(),
                },
                settings: crate::lease::LeaseSettings::default(),
            }),
        })
    }

    /// The approvals, launching runs with `runner()` on their own tracker.
    pub fn approvals(&self) -> Approvals {
        Approvals {
            settings: self.settings.clone(),
            store: self.store.clone(),
            aurora: self.aws.clone(),
            dns: self.aws.clone(),
            metrics: self.aws.clone(),
            permissions: self.aws.clone(),
            database: None,
            chat: self.chat.clone(),
            directory: Arc::new(NoGroups),
            clock: self.clock.clone(),
            launcher: Launcher {
                runner: self.runner(),
                tracker: TaskTracker::new(),
            },
        }
    }

    /// A request for `mode` planned against the world as it is now, approved by a second person:
    /// its run, not started yet.
    pub async fn approved_run(&self, mode: Mode) -> RunId {
        let cluster = &self.settings.clusters[0];
        let survey = survey::survey(
            self.aws.as_ref(),
            self.aws.as_ref(),
            self.aws.as_ref(),
            Some(self.aws.as_ref()),
            cluster,
        )
        .await
        .expect("the world can be read");
        let limits = plan::Limits {
            lag_limit_ms: self.settings.runbook.lag_limit.as_millis() as f64,
        };
        let plan = plan::make_plan(cluster, &survey, None, Some(mode), limits).expect("the world allows a plan");
        let now = crate::ports::Clock::now(self.clock.as_ref());
        let id = self
            .store
            .create_request(&NewRequest {
                cluster: cluster.name.clone(),
                mode: Some(mode),
                requested_by: user("U0AAAA").into(),
                to_region: None,
                origin_channel: "C0INCIDENT".into(),
                response_url: None,
                requested_at: now,
                expires_at: now + jiff::SignedDuration::from_mins(15),
                reason: None,
                ticket: None,
            })
            .await
            .unwrap()
            .expect("the cluster is free");
        let outgoing = Outgoing {
            ordering_key: "request",
            kind: "post",
            channel: None,
            target: None,
            response_url: None,
            body: "{}",
            dedup_key: None,
            fence: None,
        };
        let message = self.store.enqueue(&outgoing, now).await.unwrap();
        let plan_json = serde_json::to_string(&plan).unwrap();
        assert!(self.store.mark_pending(id, &plan_json, mode, message).await.unwrap());
        let data = serde_json::to_string(&RunData::default()).unwrap();
        let decided = self
            .store
            .decide(id, true, &user("U0BBBB").into(), now, Step::FIRST.as_str(), &data, None)
            .await
            .unwrap();
        let Decided::Won { run_id: Some(run) } = decided else {
            panic!("not approved: {decided:?}")
        };
        run
    }

    /// Starts executing `run` (or takes it up again) in a task of its own.
    pub fn start(&self, run: RunId) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.runner().execute(run))
    }

    /// Shuts the bot down: the run in `task` stops at its next pause; the next `runner()` belongs to a
    /// new process.
    pub async fn stop(&self, task: tokio::task::JoinHandle<()>) {
        let token = std::mem::take(&mut *self.shutdown.lock().unwrap_or_else(|p| p.into_inner()));
        token.cancel();
        task.await.expect("the run task ends without panicking");
    }

    pub async fn run(&self, run: RunId) -> Run {
        self.store.run(run).await.unwrap().expect("the run exists")
    }

    pub async fn journal(&self, run: RunId) -> Vec<JournalEntry> {
        self.store.journal_of(run).await.unwrap()
    }

    /// The first journal line of `step` with `event`.
    pub async fn entry(&self, run: RunId, step: &str, event: &str) -> JournalEntry {
        let journal = self.journal(run).await;
        journal
            .iter()
            .find(|e| e.step == step && e.event == event)
            .cloned()
            .unwrap_or_else(|| panic!("no {step} {event} in {journal:#?}"))
    }

    /// When (since the bot was made) `step` logged `event`.
    pub async fn when(&self, run: RunId, step: &str, event: &str) -> Duration {
        self.since_start(self.entry(run, step, event).await.at)
    }

    /// Waits (in paused time, looking every 100 ms, for at most an hour) until the run is in `state`.
    pub async fn until(&self, run: RunId, state: RunState) -> Run {
        for _ in 0..36_000 {
            let r = self.run(run).await;
            if r.state == state {
                return r;
            }
            assert!(
                r.state.is_open(),
                "run {run} ended {:?}, not {state:?}: {:#?}",
                r.state,
                self.journal(run).await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("run {run} never reached {state:?}: {:#?}", self.journal(run).await)
    }
}
