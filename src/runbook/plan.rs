//! The plan an approver sees: which secondary takes over, how (detach, managed failover, switchover),
//! what it will cost, and the pre-flight checklist. Made from a `Survey` of the global cluster when the
//! request is made, and checked again right before the first mutating call (the cluster may have
//! changed while waiting for approval). Pure: the survey is read elsewhere.
//!
//! Rules kept here:
//! - a data-losing mode (failover, detach) is never chosen for the user: without `--mode`, the plan is a
//!   switchover when one is possible, and otherwise the user is told what is possible, at what cost,
//!   and the exact command to type;
//! - without `--to`, the only secondary is the target, or among several the one with the least lag;
//! - a plan with a failed check is refused, with the reason.

use crate::ports::{
    AwsError, AwsErrorKind, ClusterState, Evaluation, HostedZone, Member, ProbeError, ProbeReport, RecordSet, Topology,
    Verdict,
};
use crate::settings::{ClusterProbe, ClusterSettings};
use crate::types::{ClusterName, Mode, Region};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// What a run will do, fixed at request time and stored with the request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// The bot chose the mode (the user gave no `--mode`).
    #[serde(default)]
    pub mode_proposed: bool,
    /// Why this target, when the bot chose it among several.
    #[serde(default)]
    pub target_reason: Option<String>,
    /// The target's replication lag when the plan was made, in milliseconds.
    #[serde(default)]
    pub lag_ms: Option<f64>,
    /// The pre-flight checklist.
    #[serde(default)]
    pub checks: Vec<Check>,
    /// The global writer endpoint when the plan was made (`Topology::writer_endpoint`): a writer CNAME
    /// pointing at it follows the writer (plans stored before it was read carry `None`).
    #[serde(default)]
    pub global_endpoint: Option<String>,
    /// Whether `global_endpoint` was read when the plan was made (then `None` means AWS gave none);
    /// `false` for plans stored by builds that did not read it.
    #[serde(default)]
    pub global_endpoint_read: bool,
    /// A rebuild's own plan (`Mode::Rebuild`): what it creates, from what.
    #[serde(default)]
    pub rebuild: Option<super::rebuild::RebuildPlan>,
    /// The cluster's `[clusters.probe]` when the plan was made: the run then ends by confirming writes
    /// through the writer CNAME (`Step::ProbeWrites`).
    #[serde(default)]
    pub probe: Option<ClusterProbe>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsTargets {
    pub writer: Option<String>,
    pub reader: Option<String>,
    /// Why the records could not be read, when they could not (then both are `None`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
}

/// One line of the pre-flight checklist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub outcome: Outcome,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    /// Allowed, with a cost or a risk the approver must see.
    Warn,
    /// Not allowed: the plan is refused.
    Fail,
}

/// Everything the planner needs to know about a global cluster right now.
#[derive(Debug, Clone)]
pub struct Survey {
    pub topology: Topology,
    /// Each member's own description, by ARN (or why it could not be read).
    pub states: HashMap<String, Result<ClusterState, String>>,
    /// Each secondary's replication lag in ms, by ARN; `Err` says why it is not known.
    pub lags: HashMap<String, Result<f64, String>>,
    /// Where the CNAMEs point (`None` for a missing record); `Err` when they could not be read.
    pub dns: Result<DnsTargets, String>,
    /// The hosted zone (GetHostedZone).
    pub zone: Result<HostedZone, AwsError>,
    /// Every record set at the writer's and the reader's name, in that order.
    pub records: Result<[Vec<RecordSet>; 2], AwsError>,
    /// What IAM's policy simulator says about the calls a failover would make (`None`: not asked, as
    /// for `/aurora status`; `Err`: why it could not answer).
    pub permissions: Option<Result<Vec<Evaluation>, String>>,
    /// The database probe of each secondary's reader endpoint, by ARN (`None`: not asked: no
    /// `[clusters.probe]`, or a read for status). A secondary missing from the map was not probed
    /// (its description could not be read).
    pub probes: Option<HashMap<String, Probed>>,
}

/// One read-only probe of a secondary's reader endpoint, before approval.
#[derive(Debug, Clone)]
pub struct Probed {
    /// The endpoint and port probed.
    pub endpoint: String,
    pub port: u16,
    pub result: Result<ProbeReport, ProbeError>,
}

impl Survey {
    /// The member's replication lag in ms, when known.
    pub fn lag(&self, arn: &str) -> Option<f64> {
        self.lags.get(arn).and_then(|l| l.as_ref().ok()).copied()
    }

    /// Why the member's replication lag is not known.
    fn lag_unknown(&self, arn: &str) -> String {
        match self.lags.get(arn) {
            Some(Err(why)) => why.clone(),
            Some(Ok(_)) => "known".to_owned(),
            None => "not read".to_owned(),
        }
    }

    /// The member as the topology shows it now.
    fn member(&self, arn: &str) -> Option<&Member> {
        self.topology.members.iter().find(|m| m.arn == arn)
    }
}

/// Who chose the mode being checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chooser {
    /// The bot, proposing a mode (no `--mode`): it proposes only what it can vouch for.
    Bot,
    /// A person: the requester typed `--mode`, or the approver approved the plan.
    Person,
}

/// Limits the checks apply.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Above this replication lag a switchover is refused (writes would be blocked while it catches up)
    /// and a failover warns.
    pub lag_limit_ms: f64,
}

impl Mode {
    /// What the mode does and costs, for the approver.
    pub fn cost(self) -> &'static str {
        match self {
            Mode::Switchover => {
                "no data loss; waits for the target to catch up (writes pause meanwhile); keeps the global topology"
            }
            Mode::Failover => {
                "loses the writes not yet replicated (up to the lag); keeps the global topology; the old primary rejoins as a secondary when its Region is back"
            }
            Mode::Detach => {
                "loses the writes not yet replicated (up to the lag); replication stops; the old primary stays writable (split brain) and the global database must be rebuilt"
            }
            Mode::Rebuild => {
                "moves no writer and loses nothing; creates a global cluster and a secondary (cluster and instances), which cost money from the moment they exist"
            }
        }
    }
}

/// A request's mode for the record, from its stored mode and plan: `switchover` when asked for with
/// `--mode`, `auto → switchover` when the requester left the choice to the bot and it proposed one,
/// `auto` before any plan was made. (A stored plan that cannot be read is logged where it is read,
/// `Request::stored_plan`, and counts as none here.)
pub fn mode_record(mode: Option<Mode>, plan: Option<&Plan>) -> String {
    let proposed = plan.is_some_and(|p| p.mode_proposed);
    match mode {
        None => "auto".to_owned(),
        Some(m) if proposed => format!("auto → {m}"),
        Some(m) => m.to_string(),
    }
}

/// `1.2 s`, `850 ms`, `2 min 5 s`.
pub fn lag_text(ms: f64) -> String {
    if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else if ms < 120_000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else {
        let s = (ms / 1000.0).round() as u64;
        format!("{} min {} s", s / 60, s % 60)
    }
}

impl Plan {
    /// The configuration of the plan's cluster, as the plan records it.
    pub fn cluster_settings(&self) -> ClusterSettings {
        ClusterSettings {
            name: self.cluster.clone(),
            global_cluster_id: self.global_cluster_id.clone(),
            regions: self.regions.clone(),
            hosted_zone_id: self.zone_id.clone(),
            writer_record: self.writer_record.clone(),
            reader_record: self.reader_record.clone(),
            record_ttl: self.record_ttl,
            rebuild: Vec::new(),
            probe: self.probe.clone(),
        }
    }

    /// Whether the run leaves the writer CNAME alone because it follows the writer: a managed failover
    /// or switchover, with the writer CNAME at the global writer endpoint when the plan was made (AWS
    /// moves that endpoint to the new writer). A detach never: the detached cluster leaves the global
    /// cluster and its endpoint.
    pub fn writer_follows(&self) -> bool {
        self.mode != Mode::Detach && self.follows_global(self.dns_before.writer.as_deref())
    }

    /// Whether `value` is this plan's global writer endpoint.
    pub fn follows_global(&self, value: Option<&str>) -> bool {
        match (value, self.global_endpoint.as_deref()) {
            (Some(v), Some(g)) => crate::types::same_host(v, g),
            _ => false,
        }
    }

    /// The steps, in words, for the approval request.
    pub fn steps(&self) -> Vec<String> {
        if let Some(r) = &self.rebuild {
            return super::rebuild::steps(self, r);
        }
        let (to, from) = (&self.to, &self.from);
        let mut steps = vec![format!(
            "Re-check: {} ({}) still the writer, {} ({}) still a secondary, and every check below",
            from.cluster_id, from.region, to.cluster_id, to.region
        )];
        match self.mode {
            Mode::Detach => {
                steps.push(format!(
                    "Detach {} from {} (RemoveFromGlobalCluster in {}) and let it promote",
                    to.cluster_id, self.global_cluster_id, to.region
                ));
                steps.push(format!(
                    "Wait until {} is available with a writer instance",
                    to.cluster_id
                ));
            }
            Mode::Failover => {
                steps.push(format!(
                    "Fail {} over to {} (FailoverGlobalCluster with AllowDataLoss, in {})",
                    self.global_cluster_id, to.cluster_id, to.region
                ));
                steps.push(format!(
                    "Follow the failover (FailoverState, RDS events) until {} is the writer",
                    to.cluster_id
                ));
            }
            Mode::Switchover => {
                steps.push(format!(
                    "Switch {} over to {} (SwitchoverGlobalCluster, in {})",
                    self.global_cluster_id, to.cluster_id, from.region
                ));
                steps.push(format!(
                    "Follow the switchover (FailoverState, RDS events) until {} is the writer",
                    to.cluster_id
                ));
            }
            // Its own steps, above.
            Mode::Rebuild => {}
        }
        if self.writer_follows() {
            steps.push(format!(
                "Leave {} alone: it points at the global writer endpoint, which follows the writer; check that AWS \
                 moved it to {}. UPSERT {} (TTL {}s) to {}'s reader endpoint",
                self.writer_record, to.cluster_id, self.reader_record, self.record_ttl, to.cluster_id
            ));
        } else {
            steps.push(format!(
                "UPSERT {} and {} (TTL {}s) to {}'s cluster and reader endpoints, in one change",
                self.writer_record, self.reader_record, self.record_ttl, to.cluster_id
            ));
        }
        steps.push("Wait until Route 53 reports the change INSYNC".to_owned());
        steps.push("Read both records back and verify them".to_owned());
        if let Some(probe) = &self.probe {
            steps.push(format!(
                "Resolve {} until it answers {}'s cluster endpoint, connect through it (TLS verified against that \
                 endpoint) and confirm the database takes writes{}",
                self.writer_record,
                to.cluster_id,
                match &probe.heartbeat_table {
                    Some(t) => format!(" (a heartbeat row in {t})"),
                    None => " (its read-only flag)".to_owned(),
                }
            ));
        }
        steps
    }
}

/// Why no plan could be made, for the requester. Worded by `slack::render::plan_error`, which is also
/// its `Display` (implemented there, so that this module holds no wording of it).
#[derive(Debug, Clone, PartialEq)]
pub enum PlanError {
    /// The global cluster (its id) has no writer member.
    NoWriter(String),
    /// `region` holds none of the global cluster's members (`members`: their Regions).
    NotAMember {
        region: Region,
        global: String,
        members: String,
    },
    AlreadyWriter {
        region: Region,
        global: String,
    },
    /// The global cluster (its id) has no secondary.
    NoSecondary(String),
    /// Several secondaries (`regions`), none with a known lag: the person must name one.
    Ambiguous {
        global: String,
        regions: String,
    },
    /// A check failed for the mode asked for (`asked`; none asked: a switchover, the only mode that
    /// loses no data) to `to`: which and why (`failed`), and the other modes that pass every check.
    Refused {
        asked: Option<Mode>,
        cluster: ClusterName,
        to: Region,
        failed: String,
        alternatives: Vec<Alternative>,
    },
}

impl std::error::Error for PlanError {}

/// Plain words, for logs, the audit and the reason stored with a rejected request (the Slack adapter
/// words it for people, with the commands to type: `slack::render::plan_error`).
impl std::fmt::Display for PlanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlanError::NoWriter(global) => write!(f, "global cluster {global} has no writer member"),
            PlanError::NotAMember { region, global, .. } => write!(f, "{region} is not a Region of {global}'s members"),
            PlanError::AlreadyWriter { region, global } => write!(f, "{region} already holds the writer of {global}"),
            PlanError::NoSecondary(global) => write!(f, "{global} has no secondary"),
            PlanError::Ambiguous { global, regions } => {
                write!(
                    f,
                    "{global} has several secondaries ({regions}) and their lag is unknown"
                )
            }
            PlanError::Refused {
                asked,
                to,
                failed,
                alternatives,
                ..
            } => {
                let asked = asked.map_or_else(|| "switchover".to_owned(), |m| m.to_string());
                write!(f, "a {asked} to {to} is not possible: {failed}")?;
                let others: Vec<String> = alternatives.iter().map(|a| a.mode.to_string()).collect();
                if !others.is_empty() {
                    write!(f, " (possible instead: {})", others.join(", "))?;
                }
                Ok(())
            }
        }
    }
}

/// Why a request (or a dry run) has no plan: the plan's own refusal, or what kept it from being made
/// (the survey failed, planning timed out, the cluster is no longer configured).
#[derive(Debug, Clone, PartialEq)]
pub enum Unplanned {
    Plan(PlanError),
    Other(String),
}

impl std::fmt::Display for Unplanned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unplanned::Plan(e) => e.fmt(f),
            Unplanned::Other(why) => f.write_str(why),
        }
    }
}

/// A mode that would work instead of the one refused (it loses what `Mode::cost` says), and the
/// target's replication lag now, in ms (`None`: unknown).
#[derive(Debug, Clone, PartialEq)]
pub struct Alternative {
    pub mode: Mode,
    pub lag_ms: Option<f64>,
}

/// Where a CNAME points, against a global cluster as the API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CnameTarget<'a> {
    /// One of this member's endpoints (cluster, reader or custom: they all start with
    /// `{cluster id}.cluster-`).
    Member(&'a Member),
    /// This global cluster's writer endpoint (`GlobalClusters[].Endpoint`): it reaches whichever member
    /// is the writer, and AWS moves it with a managed failover or switchover.
    GlobalWriter,
    /// Anything else, another global cluster's writer endpoint included.
    Elsewhere,
}

/// Where the CNAME value `value` points among `members` and `global_endpoint` (the global cluster's
/// writer endpoint, when known). Host names are compared as DNS compares them (case, trailing dot).
pub fn cname_target<'a>(value: &str, members: &'a [Member], global_endpoint: Option<&str>) -> CnameTarget<'a> {
    if global_endpoint.is_some_and(|g| crate::types::same_host(value, g)) {
        return CnameTarget::GlobalWriter;
    }
    members
        .iter()
        .find(|m| points_at(value, m))
        .map_or(CnameTarget::Elsewhere, CnameTarget::Member)
}

/// Whether a CNAME value is one of `member`'s endpoints (cluster, reader or custom: they all start with
/// `{cluster id}.cluster-`).
pub fn points_at(value: &str, member: &Member) -> bool {
    let v = value.trim_end_matches('.').to_ascii_lowercase();
    v.starts_with(&format!("{}.cluster-", member.cluster_id.to_ascii_lowercase()))
}

/// Refuses a plan whose writer CNAME points somewhere other than the writer it moves writes from (or
/// the global writer endpoint, which reaches it): the application is writing elsewhere (typically to a
/// cluster detached earlier), and repointing the CNAME would cut those writes off.
pub fn check_writer_cname(
    record: &str,
    value: Option<&str>,
    from: &Member,
    global_endpoint: Option<&str>,
) -> Result<(), String> {
    let Some(v) = value else { return Ok(()) };
    match cname_target(v, std::slice::from_ref(from), global_endpoint) {
        CnameTarget::Member(_) | CnameTarget::GlobalWriter => Ok(()),
        CnameTarget::Elsewhere => Err(format!(
            "the writer CNAME {record} points at {v}, not at {} (the global cluster's writer) nor at the global \
             writer endpoint: the application writes somewhere else, perhaps to a cluster detached earlier, and \
             moving the CNAME now would cut those writes off. Sort out DNS or the topology first, then ask again",
            from.cluster_id
        )),
    }
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

/// An Aurora engine version as (major, minor, patch), the levels AWS compares for managed failover and
/// switchover. Aurora PostgreSQL's `15.4` is (15, 4, none); Aurora MySQL's `8.0.mysql_aurora.3.04.0`
/// is Aurora's own version after `mysql_aurora.`: (3, 04, 0).
pub fn aurora_version(v: &str) -> (&str, &str, Option<&str>) {
    let own = v.split_once("mysql_aurora.").map_or(v, |(_, aurora)| aurora);
    let mut parts = own.split('.');
    (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next(),
    )
}

/// What a check judges: moving `cluster`'s writer from `from` to `to` by `mode`, chosen by `chooser`,
/// against the cluster as `survey` read it.
#[derive(Debug, Clone, Copy)]
struct Context<'a> {
    cluster: &'a ClusterSettings,
    survey: &'a Survey,
    from: &'a Member,
    to: &'a Member,
    mode: Mode,
    chooser: Chooser,
    limits: Limits,
}

impl Context<'_> {
    /// The target's own description, when it could be read.
    fn target_state(&self) -> Option<&ClusterState> {
        self.survey.states.get(&self.to.arn).and_then(|s| s.as_ref().ok())
    }

    /// The primary's own description, when it could be read.
    fn primary_state(&self) -> Option<&ClusterState> {
        self.survey.states.get(&self.from.arn).and_then(|s| s.as_ref().ok())
    }

    /// The same move judged for another mode, as a person would ask for it.
    fn asking_for(&self, mode: Mode) -> Self {
        Context {
            mode,
            chooser: Chooser::Person,
            ..*self
        }
    }
}

/// What one check found: its outcome and the detail the approver reads.
type Finding = (Outcome, String);

fn pass(detail: impl Into<String>) -> Finding {
    (Outcome::Pass, detail.into())
}

fn warn(detail: impl Into<String>) -> Finding {
    (Outcome::Warn, detail.into())
}

fn fail(detail: impl Into<String>) -> Finding {
    (Outcome::Fail, detail.into())
}

/// The name of the check that Route 53 will take the change (also shown by `/aurora status`).
pub const DNS_RECORDS: &str = "DNS records";

/// The name of the check that IAM's simulator allows every call a run makes (also run by
/// `check-config`).
pub const PERMISSIONS: &str = "Permissions";

/// The name of the check that the target's database answers (the probe of its reader endpoint).
pub const DATABASE: &str = "Database";

/// One check of the pre-flight checklist: its name, and what it finds (`None`: it does not apply to
/// this mode).
type CheckFn = fn(&Context) -> Option<Finding>;

/// The pre-flight checklist, in the order the approver reads it. A check's name is what the approval
/// checklist shows and the audit records, and stored plans carry it: never rename one.
const CHECKS: &[(&str, CheckFn)] = &[
    ("Target", target_check),
    ("Replication", replication_check),
    ("Engine versions", engine_versions_check),
    ("Other operations", other_operations_check),
    ("Replication lag", lag_check),
    ("Primary", primary_check),
    (DNS_RECORDS, dns_records_check),
    (PERMISSIONS, permissions_check),
    ("CNAMEs", cnames_check),
    ("Write forwarding", write_forwarding_check),
    (DATABASE, database_check),
];

/// Runs every check of `CHECKS` that applies.
fn checks(ctx: &Context) -> Vec<Check> {
    CHECKS
        .iter()
        .filter_map(|(name, run)| run(ctx).map(|finding| check(name, finding)))
        .collect()
}

/// The checks of `CHECKS` named in `names`, in the checklist's order, judged for a move of `cluster`'s
/// writer to `to` by `mode` as a person would ask for it, against `survey`: how `check-config` runs
/// the plan's own checks without making a plan. `None` when the global cluster has no writer (there is
/// no move to judge).
pub fn named_checks(
    cluster: &ClusterSettings,
    survey: &Survey,
    to: &Member,
    mode: Mode,
    limits: Limits,
    names: &[&str],
) -> Option<Vec<Check>> {
    let ctx = Context {
        cluster,
        survey,
        from: survey.topology.writer()?,
        to,
        mode,
        chooser: Chooser::Person,
        limits,
    };
    Some(
        CHECKS
            .iter()
            .filter(|(name, _)| names.contains(name))
            .filter_map(|(name, run)| run(&ctx).map(|finding| check(name, finding)))
            .collect(),
    )
}

fn check(name: &str, (outcome, detail): Finding) -> Check {
    Check {
        name: name.to_owned(),
        outcome,
        detail,
    }
}

/// The target can take over: available, with an instance.
fn target_check(ctx: &Context) -> Option<Finding> {
    let to = ctx.to;
    Some(match ctx.survey.states.get(&to.arn) {
        Some(Ok(t)) => match unfit(t) {
            None => pass(format!(
                "{} is available with {} instance(s)",
                t.cluster_id, t.instances
            )),
            Some(why) => fail(format!("{} cannot take over: {why}", to.cluster_id)),
        },
        Some(Err(e)) => fail(format!("{} cannot be read in {}: {e}", to.cluster_id, to.region)),
        None => fail(format!("{} was not read", to.cluster_id)),
    })
}

/// The target is connected to the primary. A secondary still resynchronising (typically an old
/// primary rejoining after a managed failover) does not hold current data: promoting it would bring
/// back stale data.
fn replication_check(ctx: &Context) -> Option<Finding> {
    let id = &ctx.to.cluster_id;
    Some(match ctx.survey.member(&ctx.to.arn).and_then(|m| m.sync.as_deref()) {
        Some("connected") => pass(format!("{id} is connected to the primary")),
        Some("pending-resync") => fail(format!(
            "{id} is pending-resync: it is still being rebuilt from the primary and does not hold current data"
        )),
        Some(other) => warn(format!("{id} reports synchronization status {other}")),
        None => warn(format!("{id}'s synchronization status is not reported")),
    })
}

/// A managed mode needs matching engine versions; a detach does not.
fn engine_versions_check(ctx: &Context) -> Option<Finding> {
    if ctx.mode == Mode::Detach {
        return Some(pass("no constraint for a detach"));
    }
    // The primary's own version, or (when its Region does not answer) the global cluster's.
    let primary_version = match ctx.primary_state() {
        Some(p) => Some((p.engine_version.as_str(), "primary")),
        None => Some(ctx.survey.topology.engine_version.as_str())
            .filter(|v| !v.is_empty())
            .map(|v| (v, "global cluster")),
    };
    let target_version = ctx.target_state().map(|t| t.engine_version.as_str());
    Some(engine_finding(ctx.mode, primary_version, target_version))
}

/// The engine-version check for a managed mode: major and minor must match; a patch difference is
/// allowed by AWS only between some versions, so it is a warning (AWS refuses the call before anything
/// changes if it is not allowed).
fn engine_finding(mode: Mode, primary: Option<(&str, &str)>, target: Option<&str>) -> Finding {
    let (Some((p, whose)), Some(t)) = (primary, target) else {
        return warn(format!(
            "could not be compared (the target or the primary could not be read): AWS refuses a managed {mode} between versions that differ in major or minor version"
        ));
    };
    let (pv, tv) = (aurora_version(p), aurora_version(t));
    if (pv.0, pv.1) != (tv.0, tv.1) {
        fail(format!(
            "{p} ({whose}) and {t} (target) differ in major or minor version: a managed {mode} needs them equal; a detach does not"
        ))
    } else if pv.2 != tv.2 {
        warn(format!(
            "{p} ({whose}) and {t} (target) differ in patch level: AWS allows that only between some versions; if it refuses, the run stops before anything changes"
        ))
    } else {
        pass(format!("{t} on both ({whose} and target)"))
    }
}

/// No managed failover or switchover is already under way.
fn other_operations_check(ctx: &Context) -> Option<Finding> {
    Some(match &ctx.survey.topology.operation_in_progress {
        None => pass("no failover or switchover in progress"),
        Some(s) => fail(format!("a managed failover or switchover is in progress ({s})")),
    })
}

/// What the target's replication lag costs in this mode.
fn lag_check(ctx: &Context) -> Option<Finding> {
    Some(match ctx.survey.lag(&ctx.to.arn) {
        None => unknown_lag(ctx),
        Some(ms) if ctx.mode == Mode::Switchover => switchover_lag(ctx, ms),
        Some(ms) => lost_writes(ctx, ms),
    })
}

/// The lag is not known: the bot does not propose a switchover it cannot size.
fn unknown_lag(ctx: &Context) -> Finding {
    let why = ctx.survey.lag_unknown(&ctx.to.arn);
    let limit = lag_text(ctx.limits.lag_limit_ms);
    match (ctx.mode, ctx.chooser) {
        (Mode::Switchover, Chooser::Bot) => fail(format!(
            "unknown ({why}): the bot does not propose a switchover it cannot size against the {limit} limit; ask for \
             one with --mode switchover if writes may pause for as long as the target takes to catch up"
        )),
        (Mode::Switchover, Chooser::Person) => warn(format!(
            "unknown ({why}): the {limit} limit cannot be applied; the switchover pauses writes until the target catches up, however long that takes"
        )),
        _ => warn(format!(
            "unknown ({why}): the writes not yet replicated will be lost, and how many is not known"
        )),
    }
}

/// A switchover blocks writes while the target catches up: refused over the limit.
fn switchover_lag(ctx: &Context, ms: f64) -> Finding {
    let limit = lag_text(ctx.limits.lag_limit_ms);
    if ms > ctx.limits.lag_limit_ms {
        fail(format!(
            "{} behind, over the {limit} limit: a switchover would block writes while it catches up",
            lag_text(ms)
        ))
    } else {
        pass(format!("{} behind (limit {limit}); no data is lost", lag_text(ms)))
    }
}

/// A failover or a detach loses the writes not yet replicated: a warning, however much.
fn lost_writes(ctx: &Context, ms: f64) -> Finding {
    let (limit, lag) = (lag_text(ctx.limits.lag_limit_ms), lag_text(ms));
    if ms <= 0.0 {
        pass("none: nothing is lost")
    } else if ms > ctx.limits.lag_limit_ms {
        warn(format!(
            "{lag} behind, over the {limit} limit: about {lag} of the latest writes will be lost"
        ))
    } else {
        warn(format!("{lag} behind: up to {lag} of the latest writes will be lost"))
    }
}

/// A switchover needs a healthy primary; other modes do not check it.
fn primary_check(ctx: &Context) -> Option<Finding> {
    if ctx.mode != Mode::Switchover {
        return None;
    }
    let from = ctx.from;
    Some(match ctx.survey.states.get(&from.arn) {
        Some(Ok(p)) if p.status == "available" => pass(format!("{} in {} is available", p.cluster_id, from.region)),
        Some(Ok(p)) => fail(format!(
            "{} is {}, not available: a switchover needs a healthy primary",
            p.cluster_id, p.status
        )),
        Some(Err(e)) => fail(format!(
            "{} in {} cannot be reached ({e}): a switchover needs a healthy primary",
            from.cluster_id, from.region
        )),
        None => fail(format!("{} was not read", from.cluster_id)),
    })
}

fn dns_records_check(ctx: &Context) -> Option<Finding> {
    Some(records_finding(ctx.cluster, &ctx.survey.zone, &ctx.survey.records))
}

/// Where the CNAMEs point now: the writer CNAME at the writer the run moves writes from, or at the
/// global writer endpoint (which follows the writer).
fn cnames_check(ctx: &Context) -> Option<Finding> {
    let global = ctx.survey.topology.writer_endpoint.as_deref();
    Some(match &ctx.survey.dns {
        Err(e) => warn(format!(
            "could not be read ({e}). Right before changing them the bot reads them again, and does not move a \
             writer CNAME that points at neither {} nor {} nor the global writer endpoint",
            ctx.from.cluster_id, ctx.to.cluster_id
        )),
        Ok(d) => match check_writer_cname(&ctx.cluster.writer_record, d.writer.as_deref(), ctx.from, global) {
            Err(why) => fail(why),
            Ok(()) => cnames_read(ctx, d),
        },
    })
}

/// The CNAMEs as read, the writer CNAME pointing at the writer, at the global writer endpoint, or at
/// nothing.
fn cnames_read(ctx: &Context, d: &DnsTargets) -> Finding {
    let c = ctx.cluster;
    let missing: Vec<&str> = [(&d.writer, &c.writer_record), (&d.reader, &c.reader_record)]
        .iter()
        .filter(|(v, _)| v.is_none())
        .map(|(_, n)| n.as_str())
        .collect();
    let from = &ctx.from.cluster_id;
    let global = ctx.survey.topology.writer_endpoint.as_deref();
    let follows = d
        .writer
        .as_deref()
        .is_some_and(|w| cname_target(w, &[], global) == CnameTarget::GlobalWriter);
    if !missing.is_empty() {
        let records_fine = records_finding(c, &ctx.survey.zone, &ctx.survey.records).0 == Outcome::Pass;
        let what = if records_fine {
            format!("{} do(es) not exist yet: will be created", missing.join(", "))
        } else {
            format!("{} hold(s) no plain CNAME (see DNS records)", missing.join(", "))
        };
        let follow_note = if follows {
            format!(". {}", follows_writer(ctx).1)
        } else {
            String::new()
        };
        warn(format!("{what}{follow_note}"))
    } else if follows {
        follows_writer(ctx)
    } else if d.reader.as_deref().is_some_and(|r| !points_at(r, ctx.from)) {
        warn(format!(
            "the writer CNAME points at {from}; the reader CNAME does not (it will be moved too)"
        ))
    } else {
        pass(format!("both point at {from}, the current writer"))
    }
}

/// The writer CNAME points at the global writer endpoint: it follows the writer through a managed
/// failover or switchover (left alone, the reader CNAME moved); a detach takes the target out of the
/// global cluster, so the CNAME must move to the target's own cluster endpoint (a warning).
fn follows_writer(ctx: &Context) -> Finding {
    let (record, reader) = (&ctx.cluster.writer_record, &ctx.cluster.reader_record);
    let endpoint = ctx.survey.topology.writer_endpoint.as_deref().unwrap_or_default();
    let (from, to) = (&ctx.from.cluster_id, &ctx.to.cluster_id);
    match ctx.mode {
        Mode::Detach => warn(format!(
            "{record} points at the global writer endpoint {endpoint}, which follows the writer of the global \
             cluster. A detach takes {to} out of the global cluster: the endpoint stays with {from}, so the bot \
             moves {record} to {to}'s own cluster endpoint (and {reader} to its reader endpoint)"
        )),
        mode => pass(format!(
            "{record} follows the writer: it points at the global writer endpoint {endpoint}, which AWS moves to \
             {to} with the {mode}. The bot leaves it alone, checks that the endpoint moved, and moves {reader} to \
             {to}'s reader endpoint"
        )),
    }
}

/// Write forwarding on the secondaries (an information line, shown only when some secondary forwards
/// writes): where forwarded writes go after this run. Per AWS's Aurora write forwarding guide and the
/// `EnableGlobalWriteForwarding` reference, a secondary forwards to the current writer of the global
/// cluster; a demoted primary uses its own setting at once; a detached cluster leaves the global
/// cluster and forwards nothing.
/// The target's database, probed read-only through its reader endpoint from this bot: a warning when
/// it cannot be reached or refuses the probe's credentials (never a refusal: the bot's own network path
/// must not block a failover), with what the database reports when it can.
fn database_check(ctx: &Context) -> Option<Finding> {
    let probe = ctx.cluster.probe.as_ref()?;
    let probes = ctx.survey.probes.as_ref()?;
    let Some(probed) = probes.get(&ctx.to.arn) else {
        return Some(warn(format!(
            "not probed: {}'s description (its reader endpoint and port) could not be read",
            ctx.to.cluster_id
        )));
    };
    let at = format!("{}:{}", probed.endpoint, probed.port);
    Some(match &probed.result {
        Ok(r) if r.heartbeat_problem.is_some() => warn(format!(
            "{at} answers over TLS as {}, but the heartbeat write after the DNS change will fail: {}. Create the \
             table or grant it (README, \"Database probe\"), or the run will stop for a person at its last step",
            probe.engine.as_str(),
            r.heartbeat_problem.as_deref().unwrap_or_default().trim_end_matches('.')
        )),
        Ok(r) => pass(format!(
            "{at} answers over TLS as {}: {}, {}; replica lag {}",
            probe.engine.as_str(),
            super::probe::short_version(&r.server_version),
            if r.read_only { "read-only" } else { "writable" },
            r.lag_ms.map_or_else(
                || "not reported by the database".to_owned(),
                |ms| format!("{} as the database reports it", lag_text(ms))
            )
        )),
        Err(e) if e.is_configuration() => warn(format!(
            "configuration error: {}. Fix the secret {} or [clusters.probe]: the failover does not need the \
             probe, but the check through the CNAME after it will fail the same way",
            e.detail.trim_end_matches('.'),
            probe.secret_id
        )),
        Err(e) => warn(format!(
            "{at} could not be probed from this bot: {}. The failover can go on (the application's network path \
             may differ from the bot's); the check through the CNAME after the DNS change will show whether writes \
             work",
            e.detail.trim_end_matches('.')
        )),
    })
}

fn write_forwarding_check(ctx: &Context) -> Option<Finding> {
    let on: Vec<&ClusterState> = ctx
        .survey
        .topology
        .secondaries()
        .filter_map(|m| ctx.survey.states.get(&m.arn)?.as_ref().ok())
        .filter(|s| s.forwards_writes())
        .collect();
    if on.is_empty() {
        return None;
    }
    let list: Vec<String> = on
        .iter()
        .map(|s| {
            format!(
                "{} in {} ({})",
                s.cluster_id,
                s.region,
                s.write_forwarding.as_deref().unwrap_or_default()
            )
        })
        .collect();
    let (from, to) = (&ctx.from.cluster_id, &ctx.to.cluster_id);
    let head = format!(
        "on for {}: writes sent to those secondaries are forwarded to the global cluster's writer, {from}",
        list.join(", ")
    );
    Some(match ctx.mode {
        Mode::Detach => warn(format!(
            "{head}. After the detach {from} is still that writer: writes forwarded from the other secondaries' \
             Regions keep landing on {from}, not on {to}, which leaves the global cluster and forwards nothing. Point \
             those applications at the writer CNAME or turn forwarding off, or the data splits"
        )),
        mode => pass(format!(
            "{head}. After the {mode} they are forwarded to {to}, the new writer; {from}, now a secondary, forwards \
             writes only if its own setting has forwarding on. Forwarded statements in flight during the {mode} fail \
             and must be retried"
        )),
    })
}

/// Whether Route 53 will take the UPSERT of both CNAMEs, from what read-only calls show: the zone
/// exists, each name is inside its domain and not its apex, and holds a plain CNAME or nothing (no
/// other type, no alias, no routing policy). Route 53 has no dry run; this is what stands for one.
pub fn records_check(
    cluster: &ClusterSettings,
    zone: &Result<HostedZone, AwsError>,
    records: &Result<[Vec<RecordSet>; 2], AwsError>,
) -> Check {
    check(DNS_RECORDS, records_finding(cluster, zone, records))
}

fn records_finding(
    cluster: &ClusterSettings,
    zone: &Result<HostedZone, AwsError>,
    records: &Result<[Vec<RecordSet>; 2], AwsError>,
) -> Finding {
    let zone = match zone {
        Ok(z) => z,
        Err(e) => return zone_unreadable(cluster, e),
    };
    let mut problems = placement_problems(cluster, zone);
    let none: [Vec<RecordSet>; 2] = Default::default();
    let sets = match records {
        Ok(sets) => sets,
        Err(e) if e.kind == AwsErrorKind::AccessDenied => {
            problems.push(format!(
                "{e}: the bot must read the records to check them before changing anything. Allow \
                 route53:ListResourceRecordSets (see the README's IAM permissions)"
            ));
            &none
        }
        Err(e) if problems.is_empty() => {
            return warn(format!(
                "the records could not be read ({e}); the bot checks again right before the first change"
            ));
        }
        Err(_) => &none,
    };
    problems.extend(record_problems(cluster, zone, sets));
    if problems.is_empty() {
        pass(format!(
            "both names are inside zone {} and hold a plain CNAME or nothing: Route 53 will take the change",
            zone.name.trim_end_matches('.')
        ))
    } else {
        fail(problems.join("; "))
    }
}

/// The hosted zone could not be read: a missing zone or a refusal is a configuration to fix (the check
/// must run), anything else an outage (checked again before the first change).
fn zone_unreadable(cluster: &ClusterSettings, e: &AwsError) -> Finding {
    match e.kind {
        AwsErrorKind::NotFound => fail(format!(
            "hosted zone {} does not exist ({e}): the CNAMEs could never be moved. Check the cluster's hosted_zone_id",
            cluster.hosted_zone_id
        )),
        AwsErrorKind::AccessDenied => fail(format!(
            "{e}: the bot must read the zone to check, before changing anything, that Route 53 will take the \
             change. Allow route53:GetHostedZone and route53:ListResourceRecordSets (see the README's IAM \
             permissions)"
        )),
        _ => warn(format!(
            "hosted zone {} could not be read ({e}), so the bot could not check that Route 53 will accept the change; \
             it checks again right before the first change",
            cluster.hosted_zone_id
        )),
    }
}

/// Each CNAME name that is the zone's apex or outside its domain, said with what to change.
fn placement_problems(cluster: &ClusterSettings, zone: &HostedZone) -> Vec<String> {
    // In prose, the zone's domain without Route 53's trailing dot.
    let domain = zone.name.trim_end_matches('.');
    let mut problems = Vec::new();
    for (key, name) in [
        ("writer_record", &cluster.writer_record),
        ("reader_record", &cluster.reader_record),
    ] {
        let n = crate::ports::route53_name(name);
        if n == zone.name {
            problems.push(format!(
                "{name} is the apex of zone {domain}: a CNAME cannot be at a zone's apex. Set the cluster's {key} to a name below it, such as db.{domain}"
            ));
        } else if !n.ends_with(&format!(".{}", zone.name)) {
            problems.push(format!(
                "{name} is not inside hosted zone {} ({domain}): Route 53 refuses records outside the zone's domain. Set the cluster's {key} to a name ending in .{domain}",
                zone.id
            ));
        }
    }
    problems
}

/// Each record set at the CNAMEs' names that an UPSERT of a plain CNAME would collide with.
fn record_problems(cluster: &ClusterSettings, zone: &HostedZone, sets: &[Vec<RecordSet>; 2]) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, sets) in [&cluster.writer_record, &cluster.reader_record].into_iter().zip(sets) {
        // At the apex the zone's own NS and SOA live: the apex problem says what to change.
        if crate::ports::route53_name(name) == zone.name {
            continue;
        }
        problems.extend(
            sets.iter()
                .filter(|s| !s.is_plain_cname())
                .map(|s| record_problem(name, s)),
        );
    }
    problems
}

/// Why `name` cannot be a plain CNAME while it holds `s`, and what to do.
fn record_problem(name: &str, s: &RecordSet) -> String {
    match (&s.alias_target, &s.set_identifier) {
        (Some(target), _) => format!(
            "{name} holds an alias record of type {} (to {target}): the bot only moves plain CNAMEs. Replace the alias \
             with a CNAME, or give the cluster another record name",
            s.record_type
        ),
        (None, Some(id)) => format!(
            "{name} holds a {} record of type {} (set identifier {id}): the bot only moves simple-routing CNAMEs. \
             Replace the routing-policy records with one CNAME, or give the cluster another record name",
            s.routing.as_deref().unwrap_or("routing-policy"),
            s.record_type
        ),
        (None, None) => format!(
            "{name} holds a record of type {} ({}): a CNAME cannot share its name with another record. Delete it, or \
             give the cluster another record name",
            s.record_type,
            s.values.join(", ")
        ),
    }
}

/// The mutating RDS call of a mode, as IAM names it.
pub fn rds_action(mode: Mode) -> &'static str {
    match mode {
        Mode::Detach => "rds:RemoveFromGlobalCluster",
        Mode::Failover => "rds:FailoverGlobalCluster",
        Mode::Switchover => "rds:SwitchoverGlobalCluster",
        Mode::Rebuild => "rds:CreateGlobalCluster",
    }
}

/// Whether the bot's principal may make every call a run of `mode` to `to` makes, as IAM's policy
/// simulator says; `None` when the simulator was not asked. A denial refuses the plan; an answer the
/// simulator cannot give is a warning (an unavailable check must never block a failover).
fn permissions_check(ctx: &Context) -> Option<Finding> {
    let evaluations = match ctx.survey.permissions.as_ref()? {
        Ok(e) => e,
        Err(why) => {
            return Some(warn(format!(
                "could not be checked: {why}. The run does not depend on this check"
            )));
        }
    };
    let (denied, undecided) = judge_calls(evaluations, &needed_calls(ctx));
    Some(if !denied.is_empty() {
        fail(format!(
            "the bot's IAM principal may not make every call this run needs: {} is denied. Add it to the bot's \
             policy (see the README's IAM permissions) and ask again",
            denied.join(", ")
        ))
    } else if !undecided.is_empty() {
        warn(format!("the simulator could not decide for {}", undecided.join("; ")))
    } else {
        pass(format!(
            "the policy simulator allows {}, ChangeResourceRecordSets and GetChange on this cluster and zone",
            rds_action(ctx.mode).trim_start_matches("rds:")
        ))
    })
}

/// The calls a run of this mode makes, as (action, resource ARN).
fn needed_calls(ctx: &Context) -> [(&'static str, String); 4] {
    let t = &ctx.survey.topology;
    [
        (
            rds_action(ctx.mode),
            super::survey::global_cluster_arn(t).unwrap_or_default(),
        ),
        (rds_action(ctx.mode), ctx.to.arn.clone()),
        (
            super::survey::CHANGE_RECORDS,
            super::survey::zone_arn(t, &ctx.cluster.hosted_zone_id),
        ),
        (super::survey::GET_CHANGE, super::survey::change_arn(t)),
    ]
}

/// The needed calls the simulator denies, and those it could not decide, in words.
pub(super) fn judge_calls(evaluations: &[Evaluation], needed: &[(&str, String)]) -> (Vec<String>, Vec<String>) {
    let (mut denied, mut undecided) = (Vec::new(), Vec::new());
    for (action, resource) in needed {
        let found = evaluations
            .iter()
            .find(|e| e.action.eq_ignore_ascii_case(action) && e.resource == *resource);
        match found.map(|e| &e.verdict) {
            Some(Verdict::Allowed) => {}
            Some(Verdict::Denied { explicit }) => denied.push(format!(
                "{action} on {resource} ({})",
                if *explicit {
                    "an explicit Deny statement"
                } else {
                    "no statement allows it"
                }
            )),
            Some(Verdict::Undecided(why)) => undecided.push(format!("{action} on {resource}: {why}")),
            None => undecided.push(format!("{action} on {resource}: the simulator did not evaluate it")),
        }
    }
    (denied, undecided)
}

fn failures(checks: &[Check]) -> Vec<&Check> {
    checks.iter().filter(|c| c.outcome == Outcome::Fail).collect()
}

fn describe_failures(checks: &[Check]) -> String {
    failures(checks)
        .iter()
        .map(|c| format!("{}: {}", c.name, c.detail))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The mode to judge and who chose it: the mode asked for, by a person; or, when none was, a
/// switchover proposed by the bot (the only mode that loses no data).
fn judged(mode: Option<Mode>) -> (Mode, Chooser) {
    match mode {
        Some(m) => (m, Chooser::Person),
        None => (Mode::Switchover, Chooser::Bot),
    }
}

/// Makes the plan for moving `cluster`'s writer to `to` (or the best secondary) by `mode` (or the best
/// mode that loses no data).
pub fn make_plan(
    cluster: &ClusterSettings,
    survey: &Survey,
    to: Option<&Region>,
    mode: Option<Mode>,
    limits: Limits,
) -> Result<Plan, PlanError> {
    let topology = &survey.topology;
    let from = topology
        .writer()
        .ok_or_else(|| PlanError::NoWriter(topology.global_cluster_id.clone()))?;
    let (target, target_reason) = match to {
        Some(region) => (named_target(topology, region)?, None),
        None => proposed_target(cluster, survey, from, mode, limits)?,
    };
    let (judged, chooser) = judged(mode);
    let ctx = Context {
        cluster,
        survey,
        from,
        to: &target,
        mode: judged,
        chooser,
        limits,
    };
    let list = checks(&ctx);
    if !failures(&list).is_empty() {
        return Err(refusal(&ctx, mode, &list));
    }
    Ok(assemble(&ctx, list, target_reason))
}

/// The member in `region`, which must be a secondary.
fn named_target(topology: &Topology, region: &Region) -> Result<Member, PlanError> {
    let global = &topology.global_cluster_id;
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
            global: global.clone(),
        });
    }
    Ok(m.clone())
}

/// The target when none was named: the only secondary, or the best of several and why.
fn proposed_target(
    cluster: &ClusterSettings,
    survey: &Survey,
    from: &Member,
    mode: Option<Mode>,
    limits: Limits,
) -> Result<(Member, Option<String>), PlanError> {
    let secondaries: Vec<&Member> = survey.topology.secondaries().collect();
    match secondaries.as_slice() {
        [] => Err(PlanError::NoSecondary(survey.topology.global_cluster_id.clone())),
        [only] => Ok(((*only).clone(), None)),
        many => {
            let (best, reason) = choose_target(cluster, survey, from, many, mode, limits)?;
            Ok((best, Some(reason)))
        }
    }
}

/// Why the plan is refused: what failed, and the other modes that would work. A data-losing mode is
/// never chosen for the user: when none was asked for, the user is told what is possible, and how to
/// ask (a person may still ask for a switchover the bot would not propose, lag unknown).
fn refusal(ctx: &Context, asked: Option<Mode>, list: &[Check]) -> PlanError {
    PlanError::Refused {
        asked,
        cluster: ctx.cluster.name.clone(),
        to: ctx.to.region.clone(),
        failed: describe_failures(list),
        alternatives: alternatives(ctx, asked),
    }
}

/// The plan the checks passed.
fn assemble(ctx: &Context, checks: Vec<Check>, target_reason: Option<String>) -> Plan {
    let cluster = ctx.cluster;
    Plan {
        cluster: cluster.name.clone(),
        global_cluster_id: ctx.survey.topology.global_cluster_id.clone(),
        mode: ctx.mode,
        from: ctx.from.clone(),
        to: ctx.to.clone(),
        zone_id: cluster.hosted_zone_id.clone(),
        writer_record: cluster.writer_record.clone(),
        reader_record: cluster.reader_record.clone(),
        record_ttl: cluster.record_ttl,
        regions: cluster.regions.clone(),
        dns_before: ctx.survey.dns.clone().unwrap_or_else(|e| DnsTargets {
            unreadable: Some(e),
            ..DnsTargets::default()
        }),
        mode_proposed: ctx.chooser == Chooser::Bot,
        target_reason,
        lag_ms: ctx.survey.lag(&ctx.to.arn),
        checks,
        global_endpoint: ctx.survey.topology.writer_endpoint.clone(),
        global_endpoint_read: true,
        rebuild: None,
        probe: cluster.probe.clone(),
    }
}

/// Among several secondaries, the one to propose and why: the least-lagged of those that pass every
/// check for the mode (a switchover when none was asked for); when none passes, the least-lagged of
/// all (its plan is then refused with the reason). Secondaries skipped, and those whose lag is not
/// known, are named in the reason.
fn choose_target(
    cluster: &ClusterSettings,
    survey: &Survey,
    from: &Member,
    many: &[&Member],
    mode: Option<Mode>,
    limits: Limits,
) -> Result<(Member, String), PlanError> {
    let (judged, chooser) = judged(mode);
    let unfit: Vec<(&Member, String)> = many
        .iter()
        .filter_map(|m| {
            let list = checks(&Context {
                cluster,
                survey,
                from,
                to: m,
                mode: judged,
                chooser,
                limits,
            });
            failures(&list)
                .first()
                .map(|c| (*m, format!("{}: {}", c.name, c.detail)))
        })
        .collect();
    let is_unfit = |m: &Member| unfit.iter().any(|(u, _)| u.arn == m.arn);
    let fit: Vec<&Member> = many.iter().copied().filter(|m| !is_unfit(m)).collect();
    let pool = if fit.is_empty() { many.to_vec() } else { fit };
    let (best, best_lag) = least_lagged(survey, &pool)?;
    let mut reason = why_best(survey, &pool, best, best_lag);
    let skipped: Vec<String> = unfit
        .iter()
        .filter(|(m, _)| m.arn != best.arn)
        .map(|(m, why)| format!("{} ({why})", m.region))
        .collect();
    if !skipped.is_empty() && pool.iter().all(|m| !is_unfit(m)) {
        reason.push_str(&format!(". Skipped, as they cannot take over: {}", skipped.join("; ")));
    }
    Ok((best.clone(), reason))
}

/// The member of `pool` with the least known lag (and that lag), or the only one; several whose lag is
/// unknown cannot be told apart.
fn least_lagged<'m>(survey: &Survey, pool: &[&'m Member]) -> Result<(&'m Member, Option<f64>), PlanError> {
    let known = pool.iter().filter_map(|m| survey.lag(&m.arn).map(|l| (*m, l)));
    match known.min_by(|a, b| a.1.total_cmp(&b.1)) {
        Some((m, l)) => Ok((m, Some(l))),
        None if pool.len() == 1 => Ok((pool[0], None)),
        None => Err(PlanError::Ambiguous {
            global: survey.topology.global_cluster_id.clone(),
            regions: pool.iter().map(|m| m.region.as_str()).collect::<Vec<_>>().join(", "),
        }),
    }
}

/// Why `best` among `pool`: its lag and the others' known lags, and which lags are not known.
fn why_best(survey: &Survey, pool: &[&Member], best: &Member, best_lag: Option<f64>) -> String {
    let mut reason = match best_lag {
        Some(l) => {
            let others: Vec<String> = pool
                .iter()
                .filter(|m| m.arn != best.arn)
                .filter_map(|m| survey.lag(&m.arn).map(|l| format!("{} {}", m.region, lag_text(l))))
                .collect();
            format!(
                "{} has the least replication lag ({}{})",
                best.region,
                lag_text(l),
                if others.is_empty() {
                    String::new()
                } else {
                    format!("; {}", others.join(", "))
                }
            )
        }
        None => format!("{} is the only secondary that passes every check", best.region),
    };
    let unknown: Vec<&str> = pool
        .iter()
        .filter(|m| m.arn != best.arn && survey.lag(&m.arn).is_none())
        .map(|m| m.region.as_str())
        .collect();
    if !unknown.is_empty() {
        reason.push_str(&format!(". Lag unknown for {}", unknown.join(", ")));
    }
    reason
}

/// The other modes that would work, in order of preference, with the target's lag now.
fn alternatives(ctx: &Context, except: Option<Mode>) -> Vec<Alternative> {
    let lag_ms = ctx.survey.lag(&ctx.to.arn);
    [Mode::Switchover, Mode::Failover, Mode::Detach]
        .into_iter()
        .filter(|m| Some(*m) != except)
        .filter(|m| failures(&checks(&ctx.asking_for(*m))).is_empty())
        .map(|mode| Alternative { mode, lag_ms })
        .collect()
}

/// Re-checks the plan against the cluster as it is now, before the first mutating call: the writer and
/// the target are still where the plan saw them, and every check of the checklist (the same `CHECKS`,
/// judged as the person who approved it) still passes. `Err` says what changed or what no longer
/// passes.
pub fn recheck(cluster: &ClusterSettings, plan: &Plan, survey: &Survey, limits: Limits) -> Result<Vec<Check>, String> {
    writer_unchanged(plan, &survey.topology)?;
    target_still_secondary(plan, &survey.topology)?;
    global_endpoint_unchanged(plan, &survey.topology)?;
    let list = checks(&Context {
        cluster,
        survey,
        from: &plan.from,
        to: &plan.to,
        mode: plan.mode,
        chooser: Chooser::Person,
        limits,
    });
    if failures(&list).is_empty() {
        Ok(list)
    } else {
        Err(describe_failures(&list))
    }
}

/// The writer is still the one the plan moves writes from.
fn writer_unchanged(plan: &Plan, topology: &Topology) -> Result<(), String> {
    match topology.writer() {
        None => Err(format!("{} has no writer now", plan.global_cluster_id)),
        Some(w) if w.arn != plan.from.arn => Err(format!(
            "the writer is now {} in {}, not {} in {} as planned: someone moved it since the request",
            w.cluster_id, w.region, plan.from.cluster_id, plan.from.region
        )),
        Some(_) => Ok(()),
    }
}

/// A plan that leaves the writer CNAME at the global writer endpoint still has that endpoint: one
/// renamed since the request (a renamed global cluster gets a new endpoint) would leave the CNAME
/// pointing at a name that no longer follows the writer.
fn global_endpoint_unchanged(plan: &Plan, topology: &Topology) -> Result<(), String> {
    if !plan.writer_follows() {
        return Ok(());
    }
    match topology.writer_endpoint.as_deref() {
        Some(now) if plan.follows_global(Some(now)) => Ok(()),
        now => Err(format!(
            "the global writer endpoint is now {}, not {} as when the request was made (the writer CNAME points              at the old one)",
            now.unwrap_or("none"),
            plan.global_endpoint.as_deref().unwrap_or("none")
        )),
    }
}

/// The target is still a secondary of the global cluster.
fn target_still_secondary(plan: &Plan, topology: &Topology) -> Result<(), String> {
    match topology.members.iter().find(|m| m.arn == plan.to.arn) {
        None => Err(format!(
            "{} is no longer a member of {}",
            plan.to.cluster_id, plan.global_cluster_id
        )),
        Some(m) if m.is_writer => Err(format!("{} is already the writer", plan.to.cluster_id)),
        Some(_) => Ok(()),
    }
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

    fn state(m: &Member, status: &str, version: &str, instances: usize) -> ClusterState {
        ClusterState {
            region: m.region.clone(),
            cluster_id: m.cluster_id.clone(),
            arn: m.arn.clone(),
            status: status.into(),
            engine_version: version.into(),
            has_writer: m.is_writer,
            instances,
            endpoint: Some(format!("{}.cluster-abc.{}.rds.amazonaws.com", m.cluster_id, m.region)),
            reader_endpoint: Some(format!(
                "{}.cluster-ro-abc.{}.rds.amazonaws.com",
                m.cluster_id, m.region
            )),
            port: Some(5432),
            global_cluster_id: Some("orders-global".into()),
            write_forwarding: (!m.is_writer).then(|| "disabled".into()),
        }
    }

    const GLOBAL_ENDPOINT: &str = "orders-global.global-xyz.global.rds.amazonaws.com";

    fn settings() -> ClusterSettings {
        ClusterSettings {
            name: ClusterName::parse("orders").unwrap(),
            global_cluster_id: "orders-global".into(),
            regions: vec![Region::parse("us-east-1").unwrap(), Region::parse("us-west-2").unwrap()],
            hosted_zone_id: "Z1".into(),
            writer_record: "w.zone".into(),
            reader_record: "r.zone".into(),
            record_ttl: 1,
            rebuild: Vec::new(),
            probe: None,
        }
    }

    const LIMITS: Limits = Limits { lag_limit_ms: 60_000.0 };

    /// east writes; west (and eu when asked) are secondaries with the given lags.
    fn survey(west_lag: Option<f64>, eu_lag: Option<Option<f64>>) -> Survey {
        let east = member("us-east-1", "east", true);
        let west = member("us-west-2", "west", false);
        let mut members = vec![east.clone(), west.clone()];
        let mut states = HashMap::new();
        let mut lags = HashMap::new();
        states.insert(east.arn.clone(), Ok(state(&east, "available", "15.4", 2)));
        states.insert(west.arn.clone(), Ok(state(&west, "available", "15.4", 2)));
        let known = |l: Option<f64>| l.ok_or_else(|| "no datapoint in the last 4 min".to_owned());
        lags.insert(west.arn.clone(), known(west_lag));
        if let Some(l) = eu_lag {
            let eu = member("eu-west-1", "eu", false);
            states.insert(eu.arn.clone(), Ok(state(&eu, "available", "15.4", 1)));
            lags.insert(eu.arn.clone(), known(l));
            members.push(eu);
        }
        Survey {
            topology: Topology {
                global_cluster_id: "orders-global".into(),
                status: "available".into(),
                engine_version: "15.4".into(),
                members,
                operation_in_progress: None,
                operation_target: None,
                writer_endpoint: Some(GLOBAL_ENDPOINT.into()),
            },
            states,
            lags,
            dns: Ok(DnsTargets {
                writer: Some("east.cluster-abc.us-east-1.rds.amazonaws.com".into()),
                reader: Some("east.cluster-ro-abc.us-east-1.rds.amazonaws.com".into()),
                unreadable: None,
            }),
            zone: Ok(HostedZone {
                id: "Z1".into(),
                name: "zone.".into(),
                private: true,
            }),
            records: Ok([
                vec![cname("w.zone.", "east.cluster-abc.us-east-1.rds.amazonaws.com")],
                vec![cname("r.zone.", "east.cluster-ro-abc.us-east-1.rds.amazonaws.com")],
            ]),
            permissions: None,
            probes: None,
        }
    }

    fn cname(name: &str, value: &str) -> RecordSet {
        RecordSet {
            name: name.into(),
            record_type: "CNAME".into(),
            values: vec![value.into()],
            alias_target: None,
            set_identifier: None,
            routing: None,
        }
    }

    fn arn(region: &str, id: &str) -> String {
        format!("arn:aws:rds:{region}:123456789012:cluster:{id}")
    }

    /// Which checks failed and why, from a plan refused for a failed check.
    fn failed(e: PlanError) -> String {
        match e {
            PlanError::Refused { failed, .. } => failed,
            other => panic!("not refused for a failed check: {other:?}"),
        }
    }

    fn probed(result: Result<ProbeReport, ProbeError>) -> (ClusterSettings, Survey) {
        let mut c = settings();
        c.probe = Some(ClusterProbe {
            engine: crate::types::EngineFamily::AuroraPostgresql,
            secret_id: "orders-probe".into(),
            secret_region: None,
            database: "orders".into(),
            heartbeat_table: None,
        });
        let mut s = survey(Some(800.0), None);
        let probe = Probed {
            endpoint: "west.cluster-ro-abc.us-west-2.rds.amazonaws.com".into(),
            port: 5432,
            result,
        };
        s.probes = Some(HashMap::from([(arn("us-west-2", "west"), probe)]));
        (c, s)
    }

    fn database(plan: &Plan) -> &Check {
        plan.checks
            .iter()
            .find(|c| c.name == DATABASE)
            .unwrap_or_else(|| panic!("no Database check: {:?}", plan.checks))
    }

    #[test]
    fn the_database_check_shows_what_the_probe_of_the_reader_endpoint_found() {
        let report = ProbeReport {
            address: "10.0.1.5:5432".parse().unwrap(),
            server_version: "PostgreSQL 15.4 (Debian) on x86_64-pc-linux-gnu".into(),
            read_only: true,
            lag_ms: Some(40.0),
            heartbeat_written: false,
            heartbeat_problem: None,
            elapsed: std::time::Duration::from_millis(30),
        };
        let (c, s) = probed(Ok(report));
        let p = make_plan(&c, &s, None, None, LIMITS).unwrap();
        let check = database(&p);
        assert_eq!(check.outcome, Outcome::Pass);
        assert_eq!(
            check.detail,
            "west.cluster-ro-abc.us-west-2.rds.amazonaws.com:5432 answers over TLS as aurora-postgresql: PostgreSQL \
             15.4, read-only; replica lag 40 ms as the database reports it"
        );
        assert!(p.probe.is_some() && p.steps().last().unwrap().contains("confirm the database takes writes"));
        // Without [clusters.probe], no such check and no such step.
        let p = make_plan(&settings(), &s, None, None, LIMITS).unwrap();
        assert!(p.checks.iter().all(|c| c.name != DATABASE) && p.probe.is_none());
    }

    #[test]
    fn a_failed_probe_is_a_warning_never_a_refusal_and_refused_credentials_say_configuration_error() {
        use crate::ports::ProbeErrorKind;
        let refused = ProbeError::new(ProbeErrorKind::Connect, "connection refused");
        let (c, s) = probed(Err(refused));
        let p = make_plan(&c, &s, None, None, LIMITS).unwrap();
        let check = database(&p);
        assert_eq!(check.outcome, Outcome::Warn);
        assert!(
            check
                .detail
                .starts_with("west.cluster-ro-abc.us-west-2.rds.amazonaws.com:5432 could not be probed from this bot: connection refused. The failover can go on"),
            "{}",
            check.detail
        );
        let password = ProbeError::new(
            ProbeErrorKind::Authentication,
            "the server refused the password of user afb_probe (secret orders-probe)",
        );
        let (c, s) = probed(Err(password));
        let check = database(&make_plan(&c, &s, None, None, LIMITS).unwrap()).clone();
        assert_eq!(check.outcome, Outcome::Warn);
        assert!(
            check
                .detail
                .starts_with("configuration error: the server refused the password"),
            "{}",
            check.detail
        );
        // A secondary whose description could not be read was not probed: said, not refused.
        let (c, mut s) = probed(Ok(ProbeReport {
            address: "10.0.1.5:5432".parse().unwrap(),
            server_version: String::new(),
            read_only: true,
            lag_ms: None,
            heartbeat_written: false,
            heartbeat_problem: None,
            elapsed: std::time::Duration::ZERO,
        }));
        s.probes = Some(HashMap::new());
        let check = database(&make_plan(&c, &s, None, None, LIMITS).unwrap()).clone();
        assert_eq!(check.outcome, Outcome::Warn);
        assert!(check.detail.starts_with("not probed"), "{}", check.detail);
        // The heartbeat table is missing: the write after the DNS change would fail.
        let (c, s) = probed(Ok(ProbeReport {
            address: "10.0.1.5:5432".parse().unwrap(),
            server_version: "PostgreSQL 15.4".into(),
            read_only: true,
            lag_ms: None,
            heartbeat_written: false,
            heartbeat_problem: Some("table afb_heartbeat does not exist in database orders".into()),
            elapsed: std::time::Duration::ZERO,
        }));
        let check = database(&make_plan(&c, &s, None, None, LIMITS).unwrap()).clone();
        assert_eq!(check.outcome, Outcome::Warn);
        assert!(
            check.detail.contains(
                "but the heartbeat write after the DNS change will fail: table afb_heartbeat does not exist in database \
                 orders. Create the table or grant it"
            ),
            "{}",
            check.detail
        );
    }

    #[test]
    fn without_a_mode_a_healthy_cluster_gets_a_proposed_switchover() {
        let p = make_plan(&settings(), &survey(Some(800.0), None), None, None, LIMITS).unwrap();
        assert_eq!((p.mode, p.mode_proposed), (Mode::Switchover, true));
        assert_eq!(p.to.cluster_id, "west");
        assert_eq!(p.lag_ms, Some(800.0));
        assert!(p.checks.iter().all(|c| c.outcome == Outcome::Pass), "{:?}", p.checks);
    }

    #[test]
    fn without_a_mode_and_no_switchover_possible_nothing_is_chosen_and_the_options_are_given() {
        let mut s = survey(Some(800.0), None);
        s.states
            .insert(arn("us-east-1", "east"), Err("cannot reach us-east-1".into()));
        let PlanError::Refused {
            asked,
            cluster,
            to,
            failed,
            alternatives,
        } = make_plan(&settings(), &s, None, None, LIMITS).unwrap_err()
        else {
            panic!("not refused for a failed check");
        };
        assert_eq!((asked, cluster.as_str(), to.as_str()), (None, "orders", "us-west-2"));
        assert!(failed.contains("cannot be reached"), "{failed}");
        let lag_ms = Some(800.0);
        assert_eq!(
            alternatives,
            [
                Alternative {
                    mode: Mode::Failover,
                    lag_ms
                },
                Alternative {
                    mode: Mode::Detach,
                    lag_ms
                }
            ]
        );
    }

    #[test]
    fn among_several_secondaries_the_least_lag_is_proposed_and_said_why() {
        let p = make_plan(
            &settings(),
            &survey(Some(2_500.0), Some(Some(400.0))),
            None,
            None,
            LIMITS,
        )
        .unwrap();
        assert_eq!(p.to.cluster_id, "eu");
        let reason = p.target_reason.unwrap();
        assert!(
            reason.contains("eu-west-1 has the least replication lag (400 ms; us-west-2 2.5 s)"),
            "{reason}"
        );
        let e = make_plan(&settings(), &survey(None, Some(None)), None, None, LIMITS).unwrap_err();
        assert!(matches!(e, PlanError::Ambiguous { .. }), "{e:?}");
    }

    #[test]
    fn a_lag_over_the_limit_refuses_a_switchover_and_warns_a_failover_with_the_data_at_risk() {
        let s = survey(Some(90_000.0), None);
        let e = failed(make_plan(&settings(), &s, None, Some(Mode::Switchover), LIMITS).unwrap_err());
        assert!(e.contains("90.0 s behind, over the 60.0 s limit"), "{e}");
        let p = make_plan(&settings(), &s, None, Some(Mode::Failover), LIMITS).unwrap();
        let lag = p.checks.iter().find(|c| c.name == "Replication lag").unwrap();
        assert_eq!(lag.outcome, Outcome::Warn);
        assert!(
            lag.detail.contains("about 90.0 s of the latest writes will be lost"),
            "{}",
            lag.detail
        );
    }

    #[test]
    fn different_engine_versions_refuse_managed_modes_but_not_detach() {
        let mut s = survey(Some(10.0), None);
        let west = member("us-west-2", "west", false);
        s.states
            .insert(west.arn.clone(), Ok(state(&west, "available", "15.5", 2)));
        for mode in [Mode::Switchover, Mode::Failover] {
            let e = failed(make_plan(&settings(), &s, None, Some(mode), LIMITS).unwrap_err());
            assert!(e.contains("differ in major or minor version"), "{e}");
        }
        assert!(make_plan(&settings(), &s, None, Some(Mode::Detach), LIMITS).is_ok());
    }

    fn engine(checks: &[Check]) -> &Check {
        checks.iter().find(|c| c.name == "Engine versions").unwrap()
    }

    #[test]
    fn aurora_mysql_versions_compare_on_auroras_own_version_and_patch_levels_warn() {
        let with_versions = |primary: &str, target: &str| {
            let mut s = survey(Some(10.0), None);
            let (east, west) = (member("us-east-1", "east", true), member("us-west-2", "west", false));
            s.states
                .insert(east.arn.clone(), Ok(state(&east, "available", primary, 2)));
            s.states
                .insert(west.arn.clone(), Ok(state(&west, "available", target, 2)));
            s
        };
        let s = with_versions("8.0.mysql_aurora.3.04.0", "8.0.mysql_aurora.3.08.1");
        let e = failed(make_plan(&settings(), &s, None, Some(Mode::Failover), LIMITS).unwrap_err());
        assert!(e.contains("differ in major or minor version"), "{e}");
        let s = with_versions("8.0.mysql_aurora.3.05.0", "8.0.mysql_aurora.3.05.2");
        let p = make_plan(&settings(), &s, None, Some(Mode::Switchover), LIMITS).unwrap();
        let c = engine(&p.checks);
        assert_eq!(c.outcome, Outcome::Warn);
        assert!(c.detail.contains("differ in patch level"), "{}", c.detail);
        let p = make_plan(
            &settings(),
            &with_versions("15.4", "15.4"),
            None,
            Some(Mode::Failover),
            LIMITS,
        )
        .unwrap();
        assert_eq!(engine(&p.checks).outcome, Outcome::Pass);
        // With the primary out of reach, the target is compared with the global cluster's version.
        let mut s = with_versions("15.4", "16.2");
        s.states
            .insert(arn("us-east-1", "east"), Err("cannot reach us-east-1".into()));
        let e = failed(make_plan(&settings(), &s, None, Some(Mode::Failover), LIMITS).unwrap_err());
        assert!(e.contains("15.4 (global cluster) and 16.2 (target)"), "{e}");
    }

    #[test]
    fn a_target_still_resynchronising_is_refused_in_every_mode() {
        let mut s = survey(Some(10.0), None);
        for m in &mut s.topology.members {
            if !m.is_writer {
                m.sync = Some("pending-resync".into());
            }
        }
        for mode in [Mode::Switchover, Mode::Failover, Mode::Detach] {
            let e = failed(make_plan(&settings(), &s, None, Some(mode), LIMITS).unwrap_err());
            assert!(e.contains("Replication: west is pending-resync"), "{mode}: {e}");
        }
    }

    #[test]
    fn unknown_lag_is_never_proposed_as_a_switchover_but_a_person_may_ask_for_one() {
        let mut s = survey(None, None);
        s.lags.insert(
            arn("us-west-2", "west"),
            Err("CloudWatch in us-west-2: AccessDenied".into()),
        );
        let e = make_plan(&settings(), &s, None, None, LIMITS).unwrap_err();
        let switchover = Alternative {
            mode: Mode::Switchover,
            lag_ms: None,
        };
        assert!(
            matches!(&e, PlanError::Refused { alternatives, .. } if alternatives.first() == Some(&switchover)),
            "{e:?}"
        );
        let e = failed(e);
        assert!(e.contains("unknown (CloudWatch in us-west-2: AccessDenied)"), "{e}");
        let p = make_plan(&settings(), &s, None, Some(Mode::Switchover), LIMITS).unwrap();
        let lag = p.checks.iter().find(|c| c.name == "Replication lag").unwrap();
        assert_eq!(lag.outcome, Outcome::Warn);
        assert!(lag.detail.contains("cannot be applied"), "{}", lag.detail);
        // The approver approved it: the re-check does not refuse it for the unknown lag either.
        assert!(recheck(&settings(), &p, &s, LIMITS).is_ok());
    }

    #[test]
    fn the_least_lagged_secondary_that_can_take_over_is_proposed_and_the_others_are_named() {
        // eu has the least lag but is modifying: west is proposed, and eu named as skipped.
        let mut s = survey(Some(2_500.0), Some(Some(400.0)));
        let eu = member("eu-west-1", "eu", false);
        s.states.insert(eu.arn.clone(), Ok(state(&eu, "modifying", "15.4", 1)));
        let p = make_plan(&settings(), &s, None, None, LIMITS).unwrap();
        assert_eq!(p.to.cluster_id, "west");
        let reason = p.target_reason.unwrap();
        assert!(
            reason.contains("us-west-2 has the least replication lag (2.5 s)"),
            "{reason}"
        );
        assert!(
            reason.contains(
                "Skipped, as they cannot take over: eu-west-1 (Target: eu cannot take over: its status is modifying"
            ),
            "{reason}"
        );
        // A secondary whose lag is not known is named rather than silently passed over.
        let s = survey(Some(2_500.0), Some(None));
        let p = make_plan(&settings(), &s, None, Some(Mode::Failover), LIMITS).unwrap();
        assert_eq!(p.to.cluster_id, "west");
        let reason = p.target_reason.unwrap();
        assert!(reason.contains("Lag unknown for eu-west-1"), "{reason}");
    }

    #[test]
    fn the_record_tells_a_proposed_mode_from_one_asked_for() {
        let mut p = make_plan(&settings(), &survey(Some(10.0), None), None, None, LIMITS).unwrap();
        assert_eq!(mode_record(Some(Mode::Switchover), Some(&p)), "auto → switchover");
        p.mode_proposed = false;
        assert_eq!(mode_record(Some(Mode::Switchover), Some(&p)), "switchover");
        assert_eq!(mode_record(None, None), "auto");
    }

    #[test]
    fn unreadable_cnames_are_said_to_be_unreadable_not_missing() {
        let mut s = survey(Some(10.0), None);
        s.dns = Err("Route 53 cannot be reached".into());
        let p = make_plan(&settings(), &s, None, Some(Mode::Failover), LIMITS).unwrap();
        assert_eq!(p.dns_before.unreadable.as_deref(), Some("Route 53 cannot be reached"));
        let c = p.checks.iter().find(|c| c.name == "CNAMEs").unwrap();
        assert_eq!(c.outcome, Outcome::Warn);
        assert!(c.detail.contains("reads them again"), "{}", c.detail);
    }

    #[test]
    fn explicit_targets_are_refused_with_the_reason() {
        let s = survey(Some(10.0), Some(Some(20.0)));
        let east = Region::parse("us-east-1").unwrap();
        let e = make_plan(&settings(), &s, Some(&east), None, LIMITS).unwrap_err();
        assert!(matches!(e, PlanError::AlreadyWriter { .. }), "{e:?}");
        let ap = Region::parse("ap-south-1").unwrap();
        let e = make_plan(&settings(), &s, Some(&ap), None, LIMITS).unwrap_err();
        assert!(
            matches!(&e, PlanError::NotAMember { members, .. } if members == "us-east-1, us-west-2, eu-west-1"),
            "{e:?}"
        );
        let mut busy = survey(Some(10.0), None);
        busy.topology.operation_in_progress = Some("switching-over".into());
        let e = failed(make_plan(&settings(), &busy, None, Some(Mode::Detach), LIMITS).unwrap_err());
        assert!(e.contains("in progress"), "{e}");
    }

    #[test]
    fn a_writer_cname_pointing_away_from_the_writer_stops_the_plan() {
        let mut s = survey(Some(10.0), None);
        s.dns = Ok(DnsTargets {
            writer: Some("west.cluster-abc.us-west-2.rds.amazonaws.com".into()),
            reader: None,
            unreadable: None,
        });
        let e = failed(make_plan(&settings(), &s, None, Some(Mode::Detach), LIMITS).unwrap_err());
        assert!(
            e.contains("points at west.cluster-abc") && e.contains("cut those writes off"),
            "{e}"
        );
        // This global cluster's writer endpoint reaches the writer: not refused.
        s.dns = Ok(DnsTargets {
            writer: Some(format!("{}.", GLOBAL_ENDPOINT.to_uppercase())),
            reader: None,
            unreadable: None,
        });
        let p = make_plan(&settings(), &s, None, Some(Mode::Detach), LIMITS).unwrap();
        let c = p.checks.iter().find(|c| c.name == "CNAMEs").unwrap();
        assert_eq!(c.outcome, Outcome::Warn, "the missing reader CNAME is said");
        assert!(c.detail.contains("r.zone do(es) not exist yet"), "{}", c.detail);
        // Another global cluster's writer endpoint is somewhere else.
        s.dns = Ok(DnsTargets {
            writer: Some("payments.global-xyz.global.rds.amazonaws.com".into()),
            reader: None,
            unreadable: None,
        });
        let e = failed(make_plan(&settings(), &s, None, Some(Mode::Failover), LIMITS).unwrap_err());
        assert!(e.contains("points at payments.global-xyz"), "{e}");
    }

    fn with_writer_cname(value: &str) -> Survey {
        let mut s = survey(Some(10.0), None);
        s.dns = Ok(DnsTargets {
            writer: Some(value.into()),
            reader: Some("east.cluster-ro-abc.us-east-1.rds.amazonaws.com".into()),
            unreadable: None,
        });
        s
    }

    fn cnames(checks: &[Check]) -> &Check {
        checks.iter().find(|c| c.name == "CNAMEs").unwrap()
    }

    #[test]
    fn a_cname_points_at_a_member_the_global_writer_endpoint_or_elsewhere() {
        let members = [member("us-east-1", "east", true), member("us-west-2", "west", false)];
        let at = |v: &str| cname_target(v, &members, Some(GLOBAL_ENDPOINT));
        assert_eq!(
            at("West.cluster-ro-abc.us-west-2.rds.amazonaws.com."),
            CnameTarget::Member(&members[1])
        );
        assert_eq!(at(&format!("{GLOBAL_ENDPOINT}.")), CnameTarget::GlobalWriter);
        assert_eq!(
            at("payments.global-xyz.global.rds.amazonaws.com"),
            CnameTarget::Elsewhere
        );
        assert_eq!(
            cname_target(GLOBAL_ENDPOINT, &members, None),
            CnameTarget::Elsewhere,
            "unknown endpoint"
        );
    }

    #[test]
    fn a_writer_cname_at_the_global_endpoint_follows_the_writer_in_managed_modes() {
        let s = with_writer_cname(GLOBAL_ENDPOINT);
        for mode in [Mode::Switchover, Mode::Failover] {
            let p = make_plan(&settings(), &s, None, Some(mode), LIMITS).unwrap();
            let c = cnames(&p.checks);
            assert_eq!(c.outcome, Outcome::Pass, "{mode}: {}", c.detail);
            assert!(c.detail.contains("w.zone follows the writer"), "{}", c.detail);
            assert!(p.writer_follows());
            assert_eq!(p.global_endpoint.as_deref(), Some(GLOBAL_ENDPOINT));
            let steps = p.steps().join("\n");
            assert!(
                steps.contains("Leave w.zone alone") && !steps.contains("UPSERT w.zone"),
                "{steps}"
            );
        }
        // The re-check agrees with the plan.
        let p = make_plan(&settings(), &s, None, Some(Mode::Switchover), LIMITS).unwrap();
        assert_eq!(recheck(&settings(), &p, &s, LIMITS).unwrap(), p.checks);
        // An endpoint renamed since the request no longer reaches the writer through the old name.
        let mut renamed = s.clone();
        renamed.topology.writer_endpoint = Some("orders-new.global-zzz.global.rds.amazonaws.com".into());
        let why = recheck(&settings(), &p, &renamed, LIMITS).unwrap_err();
        assert!(why.contains("the global writer endpoint is now orders-new"), "{why}");
    }

    #[test]
    fn a_detach_warns_that_a_writer_cname_at_the_global_endpoint_must_move() {
        let p = make_plan(
            &settings(),
            &with_writer_cname(GLOBAL_ENDPOINT),
            None,
            Some(Mode::Detach),
            LIMITS,
        )
        .unwrap();
        let c = cnames(&p.checks);
        assert_eq!(c.outcome, Outcome::Warn);
        assert!(
            c.detail.contains("takes west out of the global cluster")
                && c.detail.contains("moves w.zone to west's own cluster endpoint"),
            "{}",
            c.detail
        );
        assert!(!p.writer_follows());
        assert!(p.steps().iter().any(|s| s.starts_with("UPSERT w.zone and r.zone")));
    }

    #[test]
    fn write_forwarding_on_a_secondary_is_noted_for_each_mode() {
        let mut s = survey(Some(10.0), None);
        let p = make_plan(&settings(), &s, None, Some(Mode::Failover), LIMITS).unwrap();
        assert!(
            p.checks.iter().all(|c| c.name != "Write forwarding"),
            "not said when off"
        );
        let west = member("us-west-2", "west", false);
        let mut st = state(&west, "available", "15.4", 2);
        st.write_forwarding = Some("enabled".into());
        s.states.insert(west.arn.clone(), Ok(st));
        let p = make_plan(&settings(), &s, None, Some(Mode::Switchover), LIMITS).unwrap();
        let c = p.checks.iter().find(|c| c.name == "Write forwarding").unwrap();
        assert_eq!(c.outcome, Outcome::Pass);
        assert!(
            c.detail.contains("on for west in us-west-2 (enabled)")
                && c.detail.contains("forwarded to west, the new writer"),
            "{}",
            c.detail
        );
        let p = make_plan(&settings(), &s, None, Some(Mode::Detach), LIMITS).unwrap();
        let c = p.checks.iter().find(|c| c.name == "Write forwarding").unwrap();
        assert_eq!(c.outcome, Outcome::Warn);
        assert!(c.detail.contains("keep landing on east"), "{}", c.detail);
    }

    #[test]
    fn the_checklist_keeps_the_names_stored_plans_and_the_audit_carry() {
        let mut s = survey(Some(10.0), None);
        s.permissions = Some(Err("the simulator cannot be reached".into()));
        let p = make_plan(&settings(), &s, None, Some(Mode::Switchover), LIMITS).unwrap();
        let names: Vec<&str> = p.checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "Target",
                "Replication",
                "Engine versions",
                "Other operations",
                "Replication lag",
                "Primary",
                "DNS records",
                "Permissions",
                "CNAMEs"
            ]
        );
        // The re-check runs the same checklist.
        let again = recheck(&settings(), &p, &s, LIMITS).unwrap();
        assert_eq!(again, p.checks);
    }

    #[test]
    fn the_recheck_catches_every_change_since_the_plan() {
        let s = survey(Some(10.0), None);
        let plan = make_plan(&settings(), &s, None, Some(Mode::Detach), LIMITS).unwrap();
        assert!(recheck(&settings(), &plan, &s, LIMITS).is_ok());
        // Someone switched over by hand.
        let mut swapped = s.clone();
        for m in &mut swapped.topology.members {
            m.is_writer = !m.is_writer;
        }
        assert!(
            recheck(&settings(), &plan, &swapped, LIMITS)
                .unwrap_err()
                .contains("writer is now west")
        );
        // The target was removed, or is busy.
        let mut gone = s.clone();
        gone.topology.members.retain(|m| m.is_writer);
        assert!(
            recheck(&settings(), &plan, &gone, LIMITS)
                .unwrap_err()
                .contains("no longer a member")
        );
        let mut busy = s.clone();
        let west = member("us-west-2", "west", false);
        busy.states
            .insert(west.arn.clone(), Ok(state(&west, "modifying", "15.4", 2)));
        assert!(
            recheck(&settings(), &plan, &busy, LIMITS)
                .unwrap_err()
                .contains("modifying")
        );
    }
}
