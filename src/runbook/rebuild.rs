//! `/aurora rebuild CLUSTER --in REGION`: cross-Region protection again after a detach. The detach left
//! the promoted cluster a standalone writer that nothing replicates. A rebuild makes a new global
//! cluster from it (CreateGlobalCluster with `SourceDBClusterIdentifier`), then a secondary cluster and
//! its instances in REGION (CreateDBCluster with `GlobalClusterIdentifier`, CreateDBInstance), copying
//! the settings of the old primary there (subnet group, security groups, KMS key, parameter groups,
//! instance classes). The old global cluster still holds the old primary, so the new global cluster and
//! the new secondary get new identifiers, derived from the old ones. The old primary is never deleted
//! by the bot: the run reports it, with the commands to remove it once the team is sure.
//!
//! A rebuild is a request and a run like a failover (`Mode::Rebuild`): the same approval policy
//! (`[approval.rebuild]`), journal, thread and resume after a restart. Each create is made at most
//! once: its flag is checkpointed before it is sent, and a run taken up again looks for what it
//! created before it sends anything.

use super::plan::{Check, DnsTargets, Outcome, Plan, Unplanned};
use super::report::Note;
use super::{Ctx, RunData, Runner, Step, Stop, plus, round_key, since};
use crate::ports::{
    Aurora, AwsError, AwsErrorKind, ClusterSpec, ClusterState, Member, NewInstance, NewSecondary, Provisioning,
};
use crate::settings::ClusterSettings;
use crate::store::RequestId;
use crate::types::{Mode, Region};
use serde::{Deserialize, Serialize};

/// Longest identifier RDS accepts for a DB cluster, a DB instance or a global cluster.
const MAX_ID_LEN: usize = 63;
/// How many derived identifiers are tried before the plan gives up.
const ID_TRIES: u32 = 20;

/// What a rebuild will create, fixed when it is planned (stored in its `Plan`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebuildPlan {
    /// The global cluster the config names: it still holds the old primary.
    pub old_global_cluster_id: String,
    /// The detach this rebuild follows.
    pub detach_request: RequestId,
    /// CreateGlobalCluster's identifier (also `Plan::global_cluster_id`).
    pub global_cluster_id: String,
    pub secondary: NewSecondary,
    pub instances: Vec<NewInstance>,
    /// The old primary in the rebuild's Region, whose settings are copied: never deleted by the bot.
    pub old_primary: ClusterSpec,
    /// The global cluster id the config names (the record of the new one replaces it until the config
    /// names the new one).
    #[serde(default)]
    pub replaces: String,
}

/// The identifiers derived from `id`: `id-2`, `id-3`, ... (or, for `name-7`, `name-8`, ...), each at
/// most 63 characters, as RDS allows (letters, digits and single hyphens).
pub fn derived_ids(id: &str) -> impl Iterator<Item = String> + '_ {
    let (base, next) = match id.rsplit_once('-') {
        Some((b, n)) if !b.is_empty() && !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()) => {
            (b, n.parse::<u64>().unwrap_or(1) + 1)
        }
        _ => (id, 2),
    };
    (next..next + u64::from(ID_TRIES)).map(move |n| {
        let suffix = format!("-{n}");
        let keep = MAX_ID_LEN.saturating_sub(suffix.len()).min(base.len());
        format!("{}{suffix}", base[..keep].trim_end_matches('-'))
    })
}

/// The reads a rebuild's plan needs.
pub struct Reads<'a> {
    pub aurora: &'a dyn Aurora,
    pub provisioning: &'a dyn Provisioning,
    /// IAM's policy simulator, asked whether the bot may make each create (`None`: not asked).
    pub permissions: Option<&'a dyn crate::ports::Permissions>,
}

fn other(e: impl std::fmt::Display) -> Unplanned {
    Unplanned::Other(e.to_string())
}

/// Whether a read found its object: `Ok(false)` for "no such thing", other errors as they are.
fn found<T>(read: Result<T, AwsError>) -> Result<bool, AwsError> {
    match read {
        Ok(_) => Ok(true),
        Err(e) if e.kind == AwsErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether a read's answer means "no such thing": `Ok(true)` free, `Ok(false)` taken.
fn free<T>(read: Result<T, AwsError>, what: &str) -> Result<bool, Unplanned> {
    match read {
        Ok(_) => Ok(false),
        Err(e) if e.kind == AwsErrorKind::NotFound => Ok(true),
        Err(e) => Err(other(format!("cannot tell whether {what} exists: {e}"))),
    }
}

impl Reads<'_> {
    /// The first identifier derived from `id` that `exists` says is free.
    async fn first_free<F, Fut>(&self, id: &str, what: &str, exists: F) -> Result<String, Unplanned>
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = Result<bool, Unplanned>>,
    {
        for candidate in derived_ids(id) {
            if exists(candidate.clone()).await? {
                return Ok(candidate);
            }
        }
        Err(other(format!(
            "no free {what} identifier derived from {id} ({ID_TRIES} tried)"
        )))
    }

    /// Reads what a rebuild of `c` in `region` needs and makes its plan. `detached` is the cluster's
    /// last successful detach: its request and the promoted cluster.
    pub async fn plan(
        &self,
        c: &ClusterSettings,
        region: &Region,
        detached: Option<(RequestId, Member)>,
    ) -> Result<Plan, Unplanned> {
        let (detach_request, promoted) = after_a_detach(c, region, detached)?;
        let source = self
            .aurora
            .cluster(&promoted.region, &promoted.cluster_id)
            .await
            .map_err(|e| other(format!("cannot read the promoted cluster {}: {e}", promoted.cluster_id)))?;
        let source_spec = self
            .provisioning
            .cluster_spec(&promoted.region, &promoted.cluster_id)
            .await
            .map_err(other)?;
        let old_primary = self.old_primary(c, region).await?;
        let global_cluster_id = self
            .first_free(&c.global_cluster_id, "global cluster", |id| async move {
                free(
                    self.aurora.topology(&id, &c.regions).await,
                    &format!("global cluster {id}"),
                )
            })
            .await?;
        let secondary_id = self
            .first_free(&old_primary.cluster_id, "DB cluster", |id| async move {
                free(self.aurora.cluster(region, &id).await, &format!("cluster {id}"))
            })
            .await?;
        let over = c
            .rebuild
            .iter()
            .find(|(r, _)| r == region)
            .map(|(_, o)| o.clone())
            .unwrap_or_default();
        let instances = self
            .new_instances((&old_primary, &over), &secondary_id, &source_spec, region)
            .await?;
        let rebuild = RebuildPlan {
            old_global_cluster_id: c.global_cluster_id.clone(),
            detach_request,
            global_cluster_id: global_cluster_id.clone(),
            secondary: secondary(
                (region, &secondary_id, &global_cluster_id),
                &source_spec,
                &old_primary,
                &over,
            ),
            instances,
            old_primary,
            replaces: c.global_cluster_id.clone(),
        };
        let mut checks = checks(&source, &source_spec, &rebuild, &over.keys());
        if let Some(p) = self.permissions {
            checks.push(permissions_check(p, &source, &rebuild).await);
        }
        if let Some(failed) = checks.iter().find(|k| k.outcome == Outcome::Fail) {
            return Err(other(format!("{}: {}", failed.name, failed.detail)));
        }
        Ok(plan(c, &promoted, &source, rebuild, checks))
    }

    /// The old global cluster's member in `region`, read for its settings.
    async fn old_primary(&self, c: &ClusterSettings, region: &Region) -> Result<ClusterSpec, Unplanned> {
        let topology = self
            .aurora
            .topology(&c.global_cluster_id, &c.regions)
            .await
            .map_err(|e| {
                other(format!(
                    "cannot read global cluster {} for the old primary's settings: {e}",
                    c.global_cluster_id
                ))
            })?;
        let Some(member) = topology.member_in(region) else {
            return Err(other(format!(
                "{} has no cluster in {region} to copy the new secondary's settings from (subnet group, security \
                 groups, KMS key, parameter groups, instance class)",
                c.global_cluster_id
            )));
        };
        self.provisioning
            .cluster_spec(region, &member.cluster_id)
            .await
            .map_err(|e| other(format!("cannot read {} in {region}: {e}", member.cluster_id)))
    }

    /// One new instance per instance of the old primary (at least one; or as many as the
    /// configuration says), with its class, parameter group and monitoring (each replaced by the
    /// configuration's when set), named `<secondary>-1`, `<secondary>-2`, ...; each name checked free.
    async fn new_instances(
        &self,
        (old, over): (&ClusterSpec, &crate::settings::RebuildOverrides),
        secondary_id: &str,
        source: &ClusterSpec,
        region: &Region,
    ) -> Result<Vec<NewInstance>, Unplanned> {
        let fallback = source.instances.first();
        let models: Vec<_> = match old.instances.is_empty() {
            false => old.instances.iter().collect(),
            true => fallback.into_iter().collect(),
        };
        if models.is_empty() {
            return Err(other(format!(
                "neither {} nor {} has an instance to copy the instance class from",
                old.cluster_id, source.cluster_id
            )));
        }
        let mut out = Vec::new();
        for i in 0..over.instances.unwrap_or(models.len()) {
            let m = models[i.min(models.len() - 1)];
            let id = format!("{secondary_id}-{}", i + 1);
            match self.provisioning.instance(region, &id).await {
                Ok(None) => {}
                Ok(Some(_)) => return Err(other(format!("DB instance {id} already exists in {region}"))),
                Err(e) => return Err(other(format!("cannot tell whether DB instance {id} exists: {e}"))),
            }
            out.push(NewInstance {
                region: region.clone(),
                instance_id: id,
                cluster_id: secondary_id.to_owned(),
                engine: source.engine.clone(),
                instance_class: over.instance_class.clone().unwrap_or(m.instance_class.clone()),
                db_parameter_group: over.db_parameter_group.clone().or(m.db_parameter_group.clone()),
                monitoring: over.monitoring.clone().or(m.monitoring.clone()),
            });
        }
        Ok(out)
    }
}

/// The cluster's last detach (its request and the promoted cluster), when there is one and `region`
/// is not the promoted cluster's own.
fn after_a_detach(
    c: &ClusterSettings,
    region: &Region,
    detached: Option<(RequestId, Member)>,
) -> Result<(RequestId, Member), Unplanned> {
    let Some((detach_request, promoted)) = detached else {
        return Err(other(format!(
            "there is nothing to rebuild: {}'s last successful run was not a detach (a rebuild follows a \
             detach-and-promote; after a managed failover or switchover, the global cluster is still whole)",
            c.name
        )));
    };
    if &promoted.region == region {
        return Err(other(format!(
            "{} in {region} is the promoted cluster itself: name the Region where the new secondary goes (one of {})",
            promoted.cluster_id,
            others(c, region)
        )));
    }
    Ok((detach_request, promoted))
}

/// CreateDBCluster's values for the new secondary `(region, id, global cluster)`: the engine of the
/// promoted cluster (`source`), and the old primary's settings unless the configuration (`over`) sets
/// them; a KMS key only for an encrypted cluster.
fn secondary(
    (region, id, global): (&Region, &str, &str),
    source: &ClusterSpec,
    old: &ClusterSpec,
    over: &crate::settings::RebuildOverrides,
) -> NewSecondary {
    NewSecondary {
        region: region.clone(),
        cluster_id: id.to_owned(),
        global_cluster_id: global.to_owned(),
        engine: source.engine.clone(),
        engine_version: source.engine_version.clone(),
        db_subnet_group: over.db_subnet_group.clone().or(old.db_subnet_group.clone()),
        vpc_security_group_ids: over
            .vpc_security_group_ids
            .clone()
            .unwrap_or(old.vpc_security_group_ids.clone()),
        db_cluster_parameter_group: over
            .db_cluster_parameter_group
            .clone()
            .or(old.db_cluster_parameter_group.clone()),
        kms_key_id: source
            .storage_encrypted
            .then(|| over.kms_key_id.clone().or(old.kms_key_id.clone()))
            .flatten(),
        deletion_protection: old.deletion_protection,
    }
}

/// The cluster's Regions other than `region`, for a message.
fn others(c: &ClusterSettings, region: &Region) -> String {
    c.regions
        .iter()
        .filter(|r| *r != region)
        .map(Region::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

fn check(name: &str, outcome: Outcome, detail: String) -> Check {
    Check {
        name: name.to_owned(),
        outcome,
        detail,
    }
}

/// The rebuild's checklist: the source, the copied settings (`configured`: the keys the configuration
/// set instead), encryption, and the old primary.
fn checks(source: &ClusterState, spec: &ClusterSpec, r: &RebuildPlan, configured: &[&str]) -> Vec<Check> {
    let mut out = vec![source_check(source)];
    let s = &r.secondary;
    let classes: Vec<_> = r.instances.iter().map(|i| i.instance_class.as_str()).collect();
    out.push(check(
        "Settings",
        Outcome::Pass,
        format!(
            "copied from {} in {}: subnet group {}, security groups {}, cluster parameter group {}, {} instance(s) \
             ({})",
            r.old_primary.cluster_id,
            s.region,
            s.db_subnet_group.as_deref().unwrap_or("(default)"),
            if s.vpc_security_group_ids.is_empty() {
                "(default)".to_owned()
            } else {
                s.vpc_security_group_ids.join(", ")
            },
            s.db_cluster_parameter_group.as_deref().unwrap_or("(default)"),
            r.instances.len(),
            classes.join(", ")
        ) + &match configured {
            [] => String::new(),
            keys => format!("; from [clusters.rebuild.{}]: {}", s.region, keys.join(", ")),
        },
    ));
    out.push(match (spec.storage_encrypted, &s.kms_key_id) {
        (false, _) => check(
            "Encryption",
            Outcome::Pass,
            format!("{} is not encrypted", spec.cluster_id),
        ),
        (true, Some(key)) => check(
            "Encryption",
            Outcome::Pass,
            format!(
                "{} is encrypted: the secondary uses {key} (the old primary's key in {})",
                spec.cluster_id, s.region
            ),
        ),
        (true, None) => check(
            "Encryption",
            Outcome::Fail,
            format!(
                "{} is encrypted, and {} names no KMS key in {} for the secondary",
                spec.cluster_id, r.old_primary.cluster_id, s.region
            ),
        ),
    });
    out.push(check(
        "Old primary",
        Outcome::Warn,
        format!(
            "{} in {} stays as it is, in {}: the bot never deletes it. If it still takes writes they diverge from \
             {}. The run's last reply gives the commands to remove it once you are sure",
            r.old_primary.cluster_id, r.old_primary.region, r.old_global_cluster_id, spec.cluster_id
        ),
    ));
    out
}

/// The creates a rebuild makes, as (IAM action, resource ARN), in the ARNs' account: CreateGlobalCluster
/// names the new global cluster and the source cluster, CreateDBCluster the new cluster, and
/// CreateDBInstance each new instance (RDS's resource types, Service Authorization Reference).
fn needed_calls(source: &ClusterState, r: &RebuildPlan) -> Vec<(&'static str, String)> {
    let account = source.arn.split(':').nth(4).unwrap_or_default();
    let region = r.secondary.region.as_str();
    let mut calls = vec![
        (
            "rds:CreateGlobalCluster",
            format!("arn:aws:rds::{account}:global-cluster:{}", r.global_cluster_id),
        ),
        ("rds:CreateGlobalCluster", source.arn.clone()),
        (
            "rds:CreateDBCluster",
            format!("arn:aws:rds:{region}:{account}:cluster:{}", r.secondary.cluster_id),
        ),
    ];
    calls.extend(r.instances.iter().map(|i| {
        (
            "rds:CreateDBInstance",
            format!("arn:aws:rds:{region}:{account}:db:{}", i.instance_id),
        )
    }));
    calls
}

/// Whether the bot may make each create, as IAM's policy simulator says: a denial refuses the plan;
/// an answer it cannot give is a warning.
async fn permissions_check(p: &dyn crate::ports::Permissions, source: &ClusterState, r: &RebuildPlan) -> Check {
    let needed = needed_calls(source, r);
    let mut queries: Vec<crate::ports::PermissionQuery> = Vec::new();
    for (action, resource) in &needed {
        queries.push(crate::ports::PermissionQuery {
            actions: vec![(*action).to_owned()],
            resources: vec![resource.clone()],
            context: Vec::new(),
        });
    }
    let evaluations = match p.evaluate(&queries).await {
        Ok(e) => e,
        Err(why) => {
            return check(
                "Permissions",
                Outcome::Warn,
                format!("could not be checked: {why}. The run does not depend on this check"),
            );
        }
    };
    let (denied, undecided) = super::plan::judge_calls(&evaluations, &needed);
    if !denied.is_empty() {
        return check(
            "Permissions",
            Outcome::Fail,
            format!(
                "the bot's IAM principal may not make every create this rebuild needs: {} is denied. Add it to the \
                 bot's policy (see README, IAM permissions) and ask again",
                denied.join(", ")
            ),
        );
    }
    if !undecided.is_empty() {
        return check(
            "Permissions",
            Outcome::Warn,
            format!("the simulator could not decide for {}", undecided.join("; ")),
        );
    }
    check(
        "Permissions",
        Outcome::Pass,
        "the policy simulator allows CreateGlobalCluster, CreateDBCluster and CreateDBInstance on these identifiers"
            .to_owned(),
    )
}

fn source_check(source: &ClusterState) -> Check {
    let name = "Source";
    if let Some(g) = &source.global_cluster_id {
        return check(
            name,
            Outcome::Fail,
            format!(
                "{} already belongs to global cluster {g}: nothing to rebuild",
                source.cluster_id
            ),
        );
    }
    if !source.is_writable() {
        return check(
            name,
            Outcome::Fail,
            format!(
                "{}: wait until it is available with a writer instance",
                super::describe(source)
            ),
        );
    }
    check(
        name,
        Outcome::Pass,
        format!(
            "{} ({}) is a standalone writer, available, engine {}",
            source.cluster_id, source.region, source.engine_version
        ),
    )
}

/// The rebuild as a `Plan`: `from` is the promoted cluster (the new global cluster's primary), `to` the
/// new secondary; the DNS fields are the cluster's, untouched by a rebuild.
fn plan(c: &ClusterSettings, promoted: &Member, source: &ClusterState, r: RebuildPlan, checks: Vec<Check>) -> Plan {
    let account_arn = source.arn.rsplit_once(":cluster:").map_or("", |(head, _)| head);
    let to_arn = account_arn
        .replacen(source.region.as_str(), r.secondary.region.as_str(), 1)
        .to_string()
        + ":cluster:"
        + &r.secondary.cluster_id;
    Plan {
        cluster: c.name.clone(),
        global_cluster_id: r.global_cluster_id.clone(),
        mode: Mode::Rebuild,
        from: Member {
            region: promoted.region.clone(),
            cluster_id: promoted.cluster_id.clone(),
            arn: source.arn.clone(),
            is_writer: true,
            sync: None,
        },
        to: Member {
            region: r.secondary.region.clone(),
            cluster_id: r.secondary.cluster_id.clone(),
            arn: to_arn,
            is_writer: false,
            sync: None,
        },
        zone_id: c.hosted_zone_id.clone(),
        writer_record: c.writer_record.clone(),
        reader_record: c.reader_record.clone(),
        record_ttl: c.record_ttl,
        regions: c.regions.clone(),
        dns_before: DnsTargets::default(),
        mode_proposed: false,
        target_reason: None,
        lag_ms: None,
        checks,
        global_endpoint: None,
        global_endpoint_read: false,
        rebuild: Some(r),
        probe: None,
    }
}

/// What a finished rebuild made, and left, for its last reply.
pub fn rebuilt(p: &Plan, r: &RebuildPlan) -> super::report::Rebuilt {
    let old_arn = p.to.arn.rsplit_once(":cluster:").map_or_else(String::new, |(head, _)| {
        format!("{head}:cluster:{}", r.old_primary.cluster_id)
    });
    super::report::Rebuilt {
        cluster: p.cluster.to_string(),
        global_cluster_id: r.global_cluster_id.clone(),
        old_global_cluster_id: r.old_global_cluster_id.clone(),
        primary: p.from.cluster_id.clone(),
        secondary: r.secondary.cluster_id.clone(),
        region: r.secondary.region.clone(),
        old_primary: r.old_primary.cluster_id.clone(),
        old_primary_arn: old_arn,
        old_instances: r.old_primary.instances.iter().map(|i| i.instance_id.clone()).collect(),
        old_deletion_protection: r.old_primary.deletion_protection,
    }
}

/// A rebuild's steps, in words, for the approval request.
pub fn steps(p: &Plan, r: &RebuildPlan) -> Vec<String> {
    let s = &r.secondary;
    vec![
        format!(
            "Re-check: {} ({}) still a standalone writer, and the new identifiers still free",
            p.from.cluster_id, p.from.region
        ),
        format!(
            "Create global cluster {} from {} (CreateGlobalCluster in {}) and wait until it is available",
            r.global_cluster_id, p.from.cluster_id, p.from.region
        ),
        format!(
            "Create secondary cluster {} in {} (CreateDBCluster with GlobalClusterIdentifier {}) and wait until it \
             is available",
            s.cluster_id, s.region, r.global_cluster_id
        ),
        format!(
            "Create its instance(s) {} (CreateDBInstance) and wait until they are available and {} replicates",
            r.instances
                .iter()
                .map(|i| i.instance_id.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            s.cluster_id
        ),
        format!(
            "Record {} as {}'s global cluster until the config names it. {} is left as it is",
            r.global_cluster_id, p.cluster, r.old_primary.cluster_id
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_identifiers_are_derived_from_the_old_ones() {
        let first: Vec<_> = derived_ids("orders-global").take(2).collect();
        assert_eq!(first, ["orders-global-2", "orders-global-3"]);
        assert_eq!(derived_ids("orders-east-2").next().unwrap(), "orders-east-3");
        assert_eq!(derived_ids("db-").next().unwrap(), "db-2");
        let long = "a".repeat(63);
        let id = derived_ids(&long).next().unwrap();
        assert_eq!(id.len(), 63);
        assert!(id.ends_with("-2"));
        assert_eq!(derived_ids("x").count(), ID_TRIES as usize);
    }
}

/// One of a rebuild's creating calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Create {
    Global,
    Secondary,
    /// The instance at this index of the plan's instances.
    Instance(usize),
}

impl Create {
    fn call(self) -> &'static str {
        match self {
            Create::Global => "CreateGlobalCluster",
            Create::Secondary => "CreateDBCluster",
            Create::Instance(_) => "CreateDBInstance",
        }
    }
}

/// The plan's rebuild part (a rebuild run always has one).
fn rebuild_of(ctx: &super::Ctx) -> Result<&RebuildPlan, super::Stop> {
    ctx.plan
        .rebuild
        .as_ref()
        .ok_or_else(|| super::Stop::Refused("the rebuild's stored plan has no rebuild part".to_owned()))
}

impl Create {
    /// The run's record that the call may have been sent (checkpointed before it is).
    fn sent(self, data: &RunData, r: &RebuildPlan) -> bool {
        match self {
            Create::Global => data.global_sent,
            Create::Secondary => data.secondary_sent,
            Create::Instance(i) => r
                .instances
                .get(i)
                .is_some_and(|n| data.instances_sent.contains(&n.instance_id)),
        }
    }

    fn mark_sent(self, data: &mut RunData, r: &RebuildPlan) {
        match self {
            Create::Global => data.global_sent = true,
            Create::Secondary => data.secondary_sent = true,
            Create::Instance(i) => {
                if let Some(n) = r.instances.get(i)
                    && !data.instances_sent.contains(&n.instance_id)
                {
                    data.instances_sent.push(n.instance_id.clone());
                }
            }
        }
    }

    /// What it creates, by name.
    fn subject(self, r: &RebuildPlan) -> String {
        match self {
            Create::Global => format!("global cluster {}", r.global_cluster_id),
            Create::Secondary => format!("DB cluster {} in {}", r.secondary.cluster_id, r.secondary.region),
            Create::Instance(i) => r.instances.get(i).map_or_else(String::new, |n| {
                format!("DB instance {} in {}", n.instance_id, n.region)
            }),
        }
    }
}

impl Runner {
    /// A rebuild's steps (the executor journals and checkpoints around each).
    pub(super) async fn perform_rebuild(
        &self,
        ctx: &mut Ctx,
        step: Step,
        started: jiff::Timestamp,
        read_deadline: jiff::Timestamp,
    ) -> Result<String, Stop> {
        let wait_deadline = self.resumed(ctx, started, plus(started, self.settings.rebuild_timeout));
        match step {
            Step::Precheck => self.recheck_rebuild(ctx, step, read_deadline).await,
            Step::CreateGlobal => self.create(ctx, step, Create::Global, read_deadline).await,
            Step::WaitGlobal => self.wait_global(ctx, step, wait_deadline).await,
            Step::CreateSecondary => self.create(ctx, step, Create::Secondary, read_deadline).await,
            Step::WaitSecondary => self.wait_secondary(ctx, step, wait_deadline).await,
            Step::CreateInstances => {
                let n = rebuild_of(ctx)?.instances.len();
                let mut done = Vec::new();
                for i in 0..n {
                    done.push(self.create(ctx, step, Create::Instance(i), read_deadline).await?);
                }
                Ok(done.join(" "))
            }
            Step::WaitReplicating => self.wait_replicating(ctx, step, wait_deadline).await,
            Step::Record => self.record(ctx).await,
            other => Err(Stop::Refused(format!("{} is not a step of a rebuild", other.as_str()))),
        }
    }

    /// Right before the first create: the promoted cluster is still a standalone writer and the new
    /// identifiers are still free (a run taken up again after a create looks before it creates).
    pub(super) async fn recheck_rebuild(
        &self,
        ctx: &mut Ctx,
        step: Step,
        deadline: jiff::Timestamp,
    ) -> Result<String, Stop> {
        let (from, r) = (ctx.plan.from.clone(), rebuild_of(ctx)?.clone());
        let source = self
            .retrying(ctx, step, "DescribeDBClusters", deadline, || {
                self.aurora.cluster(&from.region, &from.cluster_id)
            })
            .await?;
        let check = source_check(&source);
        let ours = source.global_cluster_id.as_deref() == Some(r.global_cluster_id.as_str());
        if check.outcome == Outcome::Fail && !(ours && ctx.data.global_sent) {
            return Err(Stop::Refused(format!("{}. Nothing was created.", check.detail)));
        }
        if !ctx.data.global_sent && self.exists(ctx, step, Create::Global, deadline).await? {
            return Err(Stop::Refused(format!(
                "global cluster {} appeared since the plan was made (not by this run). Nothing was created; ask again \
                 for new identifiers",
                r.global_cluster_id
            )));
        }
        ctx.rechecked = true;
        Ok(format!(
            "{} ({}) is still a standalone writer, available; {} and {} are still free.",
            from.cluster_id, from.region, r.global_cluster_id, r.secondary.cluster_id
        ))
    }

    /// Whether what `c` creates exists (read in its Region).
    async fn exists(&self, ctx: &Ctx, step: Step, c: Create, deadline: jiff::Timestamp) -> Result<bool, Stop> {
        let r = rebuild_of(ctx)?;
        let regions = &ctx.plan.regions;
        match c {
            Create::Global => {
                self.retrying(ctx, step, "DescribeGlobalClusters", deadline, || async {
                    found(self.aurora.topology(&r.global_cluster_id, regions).await)
                })
                .await
            }
            Create::Secondary => {
                let s = &r.secondary;
                self.retrying(ctx, step, "DescribeDBClusters", deadline, || async {
                    found(self.aurora.cluster(&s.region, &s.cluster_id).await)
                })
                .await
            }
            Create::Instance(i) => {
                let Some(n) = r.instances.get(i) else { return Ok(true) };
                self.retrying(ctx, step, "DescribeDBInstances", deadline, || async {
                    self.provisioning
                        .instance(&n.region, &n.instance_id)
                        .await
                        .map(|i| i.is_some())
                })
                .await
            }
        }
    }

    /// Makes create `c` at most once: an earlier attempt (before a restart) that took effect is found
    /// first; the flag is checkpointed before the call; after an error the run looks again (the answer
    /// may have been lost, or an `AlreadyExists` names its own earlier attempt) before it retries a
    /// transient error or stops.
    async fn create(&self, ctx: &mut Ctx, step: Step, c: Create, deadline: jiff::Timestamp) -> Result<String, Stop> {
        let r = rebuild_of(ctx)?.clone();
        let subject = c.subject(&r);
        if c.sent(&ctx.data, &r) && self.exists(ctx, step, c, deadline).await? {
            return Ok(format!("{subject} exists (created before the bot restarted)."));
        }
        if c == Create::Global {
            self.recheck_if_resumed(ctx, step, deadline).await?;
        }
        c.mark_sent(&mut ctx.data, &r);
        self.persist(ctx, step, None).await?;
        loop {
            self.ensure_open(ctx).await?;
            let Err(e) = self.mutating(ctx, c.call(), self.send_create(ctx, &r, c)).await else {
                return Ok(format!("AWS accepted {} for {subject}.", c.call()));
            };
            if self.exists(ctx, step, c, deadline).await? {
                return Ok(format!("{subject} exists ({} answered: {e}).", c.call()));
            }
            if !(e.is_transient() && self.clock.now() < deadline) {
                let why = format!("{} failed: {e}. {subject} was not created", c.call());
                // Before the global cluster exists nothing was changed: the run fails.
                return Err(match c {
                    Create::Global => Stop::Reverted(format!("{why}: nothing was changed")),
                    _ => Stop::Refused(why),
                });
            }
            self.say(
                ctx,
                Note::Retrying {
                    detail: format!("{} failed ({e}); {subject} does not exist, trying again.", c.call()),
                },
                &round_key(ctx, format!("run:{}:{}:retry:{}", ctx.run.id, step.as_str(), subject)),
            )
            .await;
            self.pause(ctx, self.settings.poll_interval).await?;
        }
    }

    async fn send_create(&self, ctx: &Ctx, r: &RebuildPlan, c: Create) -> Result<(), AwsError> {
        match c {
            Create::Global => {
                let from = &ctx.plan.from;
                let source = ClusterState {
                    region: from.region.clone(),
                    cluster_id: from.cluster_id.clone(),
                    arn: from.arn.clone(),
                    status: "available".to_owned(),
                    engine_version: r.secondary.engine_version.clone(),
                    has_writer: true,
                    instances: 0,
                    endpoint: None,
                    reader_endpoint: None,
                    port: None,
                    global_cluster_id: None,
                    write_forwarding: None,
                };
                self.provisioning
                    .create_global_cluster(&r.global_cluster_id, &source)
                    .await
            }
            Create::Secondary => self.provisioning.create_secondary(&r.secondary).await,
            Create::Instance(i) => match r.instances.get(i) {
                Some(n) => self.provisioning.create_instance(n).await,
                None => Ok(()),
            },
        }
    }
}

impl Runner {
    /// Records the new global cluster for the cluster's name (status and new requests follow it while
    /// the config names the old one), riding out a failing store like every record of a run.
    async fn record(&self, ctx: &Ctx) -> Result<String, Stop> {
        let r = rebuild_of(ctx)?;
        let record = crate::store::GlobalClusterRecord {
            cluster: ctx.plan.cluster.clone(),
            global_cluster_id: r.global_cluster_id.clone(),
            request: ctx.request.id,
            recorded_at: self.clock.now(),
            replaces: if r.replaces.is_empty() {
                r.old_global_cluster_id.clone()
            } else {
                r.replaces.clone()
            },
        };
        self.stubbornly(ctx, "the new global cluster's record", || {
            self.store.record_global_cluster(&record)
        })
        .await?;
        Ok(format!(
            "{} is recorded as {}'s global cluster; the config names {}.",
            record.global_cluster_id, record.cluster, record.replaces
        ))
    }

    /// Polls again after `seen`, or stops at `deadline`.
    async fn poll_again(
        &self,
        ctx: &Ctx,
        deadline: jiff::Timestamp,
        waiting_for: &str,
        seen: &str,
    ) -> Result<(), Stop> {
        let now = self.clock.now();
        if now >= deadline {
            return Err(Stop::Deadline(format!(
                "{waiting_for} did not happen within {} s (runbook.rebuild_timeout_secs); last seen: {seen}",
                self.settings.rebuild_timeout.as_secs()
            )));
        }
        self.pause(ctx, self.settings.poll_interval.min(since(deadline, now)))
            .await
    }

    /// Until the new global cluster is available with the promoted cluster as its writer.
    async fn wait_global(&self, ctx: &mut Ctx, step: Step, deadline: jiff::Timestamp) -> Result<String, Stop> {
        let (id, regions, from) = (
            rebuild_of(ctx)?.global_cluster_id.clone(),
            ctx.plan.regions.clone(),
            ctx.plan.from.clone(),
        );
        loop {
            let t = self
                .retrying(ctx, step, "DescribeGlobalClusters", deadline, || {
                    self.aurora.topology(&id, &regions)
                })
                .await?;
            let writes = t.writer().is_some_and(|w| w.arn == from.arn);
            let seen = format!(
                "{id} is {}{}",
                t.status,
                if writes {
                    format!(", with {} as its writer", from.cluster_id)
                } else {
                    String::new()
                }
            );
            self.observe(ctx, step, &id, seen.clone()).await?;
            if t.status == "available" && writes {
                return Ok(format!("{seen}."));
            }
            self.poll_again(ctx, deadline, &format!("{id} becoming available"), &seen)
                .await?;
        }
    }

    /// Until the new secondary cluster is available.
    async fn wait_secondary(&self, ctx: &mut Ctx, step: Step, deadline: jiff::Timestamp) -> Result<String, Stop> {
        let s = rebuild_of(ctx)?.secondary.clone();
        loop {
            let c = self
                .retrying(ctx, step, "DescribeDBClusters", deadline, || {
                    self.aurora.cluster(&s.region, &s.cluster_id)
                })
                .await?;
            super::stuck(&c)?;
            let seen = format!("{} is {}", s.cluster_id, c.status);
            self.observe(ctx, step, &s.cluster_id, seen.clone()).await?;
            if c.status == "available" {
                return Ok(format!("{seen}."));
            }
            self.poll_again(ctx, deadline, &format!("{} becoming available", s.cluster_id), &seen)
                .await?;
        }
    }

    /// Until every new instance is available and the global cluster shows the secondary replicating
    /// (`SynchronizationStatus` `connected`).
    async fn wait_replicating(&self, ctx: &mut Ctx, step: Step, deadline: jiff::Timestamp) -> Result<String, Stop> {
        let r = rebuild_of(ctx)?.clone();
        let regions = ctx.plan.regions.clone();
        loop {
            let mut states = Vec::new();
            for n in &r.instances {
                let i = self
                    .retrying(ctx, step, "DescribeDBInstances", deadline, || {
                        self.provisioning.instance(&n.region, &n.instance_id)
                    })
                    .await?;
                states.push(format!(
                    "{} is {}",
                    n.instance_id,
                    i.map_or_else(|| "not found".to_owned(), |i| i.status)
                ));
            }
            let t = self
                .retrying(ctx, step, "DescribeGlobalClusters", deadline, || {
                    self.aurora.topology(&r.global_cluster_id, &regions)
                })
                .await?;
            let sync = t
                .members
                .iter()
                .find(|m| m.cluster_id == r.secondary.cluster_id)
                .map(|m| m.sync.clone().unwrap_or_else(|| "no status".to_owned()));
            let replicating = sync.as_deref() == Some("connected");
            let seen = format!(
                "{}; {} replication: {}",
                states.join(", "),
                r.secondary.cluster_id,
                sync.as_deref().unwrap_or("not a member yet")
            );
            self.observe(ctx, step, &r.secondary.cluster_id, seen.clone()).await?;
            if replicating && states.iter().all(|s| s.ends_with(" is available")) {
                return Ok(format!("{seen}."));
            }
            self.poll_again(ctx, deadline, &format!("{} replicating", r.secondary.cluster_id), &seen)
                .await?;
        }
    }
}
