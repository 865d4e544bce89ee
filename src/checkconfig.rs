//! `aurora-failover-bot check-config --config PATH`: checks a configuration before it is deployed.
//! It loads the file as `serve` does, resolves the Slack secrets as start-up does
//! (`startup::resolve_secrets`), asks Slack's `auth.test` about the bot token (accepted, the
//! configured workspace, every scope), then for each configured cluster reads, as the bot's AWS principal,
//! the global cluster, its member in each configured Region, the hosted zone and the records at both
//! CNAMEs' names (`runbook::survey`), and runs the plan's own DNS records and permissions checks
//! (`runbook::plan`, with IAM's policy simulator) for every secondary and mode.
//!
//! Invariant: it changes nothing. Every AWS call it makes is a read (Describe*, Get*, List*,
//! `iam:SimulatePrincipalPolicy`, `sts:GetCallerIdentity`, `secretsmanager:GetSecretValue`, and
//! `dynamodb:DescribeTable` with the DynamoDB store: the table's keys and kind); it never opens the
//! store, so it needs neither the store's lock nor a stopped bot. It returns typed findings
//! (`Report`); `terminal` words them and `cli` prints them.

use crate::aws::{self, AwsOverrides};
use crate::ports::{Aurora, AwsError, DatabaseProbe, Dns, Member, Metrics, Permissions, RecordSet, Topology};
use crate::runbook::plan::{self, Check, Limits, Outcome, Survey};
use crate::settings::{ClusterSettings, Settings};
use crate::startup::EnvLookup;
use crate::types::{Mode, redact_credentials};
use std::path::Path;

/// Every mode a run may use, each checked against IAM's simulator.
const MODES: [Mode; 3] = [Mode::Switchover, Mode::Failover, Mode::Detach];

/// The checks of one group: the configuration itself, or one cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// `configuration`, or `cluster NAME (global cluster ID)`.
    pub title: String,
    pub checks: Vec<Check>,
}

/// What `check-config` found, in the order it checked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub groups: Vec<Group>,
}

impl Report {
    /// Whether any check failed (the command then exits 1).
    pub fn failed(&self) -> bool {
        self.checks().any(|c| c.outcome == Outcome::Fail)
    }

    /// Every check, group after group.
    pub fn checks(&self) -> impl Iterator<Item = &Check> {
        self.groups.iter().flat_map(|g| g.checks.iter())
    }
}

fn line(name: impl Into<String>, outcome: Outcome, detail: impl Into<String>) -> Check {
    Check {
        name: name.into(),
        outcome,
        detail: detail.into(),
    }
}

/// Checks the configuration file at `path` and what it names (see the module doc). `aws` configures
/// the SDK as `serve`'s `Deps` do; `env` looks up the Slack secrets' environment variables. Never
/// fails: what cannot be checked is a failed check, with its reason (secrets never quoted).
pub async fn run(path: &Path, overrides: &AwsOverrides, env: &EnvLookup) -> Report {
    let mut config = Group {
        title: "configuration".to_owned(),
        checks: Vec::new(),
    };
    let settings = match Settings::from_file(path) {
        Ok(s) => s,
        Err(e) => {
            // A value quoted back may be a secret pasted under the wrong key.
            config
                .checks
                .push(line("config file", Outcome::Fail, redact_credentials(&e.to_string())));
            return Report { groups: vec![config] };
        }
    };
    config.checks.push(line(
        "config file",
        Outcome::Pass,
        format!(
            "{} is valid: {} cluster(s), listening on {}",
            path.display(),
            settings.clusters.len(),
            settings.listen
        ),
    ));
    config.checks.extend(policy_lines(&settings));
    let aws_config = aws::load_config(overrides).await;
    let (secrets, check) = secrets_check(&settings, &aws_config, env).await;
    config.checks.push(check);
    if let Some(secrets) = secrets {
        config.checks.push(token_check(&settings, &secrets.bot_token).await);
    }
    if let crate::settings::StoreBackend::DynamoDb(d) = &settings.store.backend {
        config.checks.push(table_check(d, &aws_config, env).await);
    }
    // The database probe's CA bundle, read as start-up reads it.
    let database = match crate::startup::database_probe(&settings, &aws_config) {
        Ok(database) => database,
        Err(e) => {
            config.checks.push(line("database probe", Outcome::Fail, e.to_string()));
            None
        }
    };
    let mut groups = vec![config];
    groups.extend(clusters(&settings, &aws_config, database.as_deref()).await);
    Report { groups }
}

/// Each cluster's effective approval policy, action by action (what `settings::policy` resolved from
/// the layers), and whom it mentions.
fn policy_lines(settings: &Settings) -> Vec<Check> {
    use crate::settings::Action;
    let names = |list: &[crate::types::Principal]| list.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ");
    settings
        .clusters
        .iter()
        .map(|c| {
            let mut parts: Vec<String> = Action::ALL
                .iter()
                .map(|a| {
                    let p = settings.approval.policy.policy(&c.name, Some(*a));
                    let mut rules = vec![format!("{} approval(s)", p.approvals_required)];
                    if p.require_reason {
                        rules.push("a reason".to_owned());
                    }
                    if let Some(t) = &p.ticket {
                        rules.push(format!("a ticket matching {}", t.as_str()));
                    }
                    format!(
                        "{}: requested by {}, approved by {}: {}",
                        a.as_str(),
                        names(&p.requesters),
                        names(&p.approvers),
                        rules.join(", ")
                    )
                })
                .collect();
            let n = settings.approval.policy.notify(&c.name);
            if !n.request.is_empty() || !n.attention.is_empty() {
                parts.push(format!(
                    "mentions: {} on a request, {} when a run needs attention",
                    names(&n.request),
                    names(&n.attention)
                ));
            }
            line(
                format!("approval policy of {}", c.name),
                Outcome::Pass,
                parts.join("; "),
            )
        })
        .collect()
}

/// The Slack secrets, resolved exactly as start-up resolves them; their values are never shown.
async fn secrets_check(
    settings: &Settings,
    aws_config: &aws_config::SdkConfig,
    env: &EnvLookup,
) -> (Option<crate::startup::SlackSecrets>, Check) {
    match crate::startup::resolve_secrets(settings, aws_config, env).await {
        Ok(secrets) => (
            Some(secrets),
            line(
                "Slack secrets",
                Outcome::Pass,
                "the signing secret and the bot token are resolved and well formed (values not shown)",
            ),
        ),
        Err(e) => (
            None,
            line("Slack secrets", Outcome::Fail, redact_credentials(&format!("{e:#}"))),
        ),
    }
}

/// The DynamoDB store's table (one DescribeTable): it exists with the store's keys, and its kind is
/// one the bot accepts (see `store::dynamodb_table::judge`).
async fn table_check(
    d: &crate::settings::DynamoDbSettings,
    aws_config: &aws_config::SdkConfig,
    env: &EnvLookup,
) -> Check {
    const NAME: &str = "store table";
    let client = crate::startup::dynamodb_client(aws_config, d.region.as_ref(), env);
    match crate::store::DynamoDbStore::check(&client, &d.table, d.single_instance).await {
        Ok(None) => line(
            NAME,
            Outcome::Pass,
            format!("table {} has the store's keys and a safe kind", d.table),
        ),
        Ok(Some(warning)) => line(NAME, Outcome::Warn, warning),
        Err(why) => line(NAME, Outcome::Fail, why),
    }
}

/// How long Slack may take to answer `auth.test`.
const AUTH_TEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Slack's `auth.test` with the bot token: accepted, for the configured workspace, with every scope
/// the bot needs. Slack out of reach is a warning (the token could not be checked), a refusal a
/// failure.
async fn token_check(settings: &Settings, token: &crate::types::Secret) -> Check {
    use crate::slack::client::{SendError, SlackApi};
    const NAME: &str = "Slack token";
    let api = match SlackApi::new(&settings.slack.api_url, token) {
        Ok(api) => api,
        Err(e) => return line(NAME, Outcome::Fail, format!("cannot build the Slack client: {e}")),
    };
    let auth = match tokio::time::timeout(AUTH_TEST_TIMEOUT, api.auth_test()).await {
        Err(_) => {
            let why = format!(
                "{} did not answer auth.test within 10 s; the token was not checked",
                settings.slack.api_url
            );
            return line(NAME, Outcome::Warn, why);
        }
        Ok(Err(SendError::Auth(code))) => {
            return line(NAME, Outcome::Fail, format!("Slack refused the bot token ({code})"));
        }
        Ok(Err(e)) => {
            let why = format!(
                "auth.test at {} failed ({e}); the token was not checked",
                settings.slack.api_url
            );
            return line(NAME, Outcome::Warn, redact_credentials(&why));
        }
        Ok(Ok(auth)) => auth,
    };
    if let Some(team) = settings.slack.team_id.as_ref().filter(|t| t.as_str() != auth.team_id) {
        let why = format!(
            "the token belongs to workspace {}, not slack.team_id {team}",
            auth.team_id
        );
        return line(NAME, Outcome::Fail, why);
    }
    scopes_check(NAME, &auth)
}

/// The token's scopes against what the bot uses: a missing required scope fails, a missing scope
/// the bot works without warns.
fn scopes_check(name: &str, auth: &crate::slack::client::AuthInfo) -> Check {
    if auth.scopes.is_none() {
        let why = format!(
            "Slack accepts it, for workspace {} (it did not list the token's scopes: not checked)",
            auth.team_id
        );
        return line(name, Outcome::Pass, why);
    }
    // Without these the bot still works, less well (README: a post cut short may show twice; an
    // answer past its response_url may not reach a person).
    const DEGRADED: [&str; 3] = ["channels:history", "groups:history", "im:write"];
    let missing = auth.missing_scopes();
    let (degraded, required): (Vec<&str>, Vec<&str>) = missing.iter().partition(|s| DEGRADED.contains(s));
    let fix = "add them from manifest.yml and reinstall the app";
    if !required.is_empty() {
        line(
            name,
            Outcome::Fail,
            format!("the token lacks {}: {fix}", missing.join(", ")),
        )
    } else if !degraded.is_empty() {
        line(
            name,
            Outcome::Warn,
            format!(
                "the token lacks {} (the bot works, less well without them): {fix}",
                degraded.join(", ")
            ),
        )
    } else {
        line(
            name,
            Outcome::Pass,
            format!(
                "Slack accepts it, for workspace {}, with every scope the bot uses",
                auth.team_id
            ),
        )
    }
}

/// One group per configured cluster, checked concurrently.
async fn clusters(
    settings: &Settings,
    aws_config: &aws_config::SdkConfig,
    database: Option<&dyn DatabaseProbe>,
) -> Vec<Group> {
    let aurora = aws::rds::RdsAurora::new(aws_config.clone());
    let dns = aws::route53::Route53Dns::new(aws_config);
    let metrics = aws::cloudwatch::CloudWatchMetrics::new(aws_config.clone());
    let permissions = aws::iam::IamPermissions::new(aws_config);
    let limits = Limits {
        lag_limit_ms: settings.runbook.lag_limit.as_millis() as f64,
    };
    futures::future::join_all(settings.clusters.iter().map(|c| async {
        Group {
            title: format!("cluster {} (global cluster {})", c.name, c.global_cluster_id),
            checks: cluster_checks(&aurora, &metrics, &dns, &permissions, database, c, limits).await,
        }
    }))
    .await
}

/// Everything checked for one cluster, read through the engine's ports (read-only calls only).
pub async fn cluster_checks(
    aurora: &dyn Aurora,
    metrics: &dyn Metrics,
    dns: &dyn Dns,
    permissions: &dyn Permissions,
    database: Option<&dyn DatabaseProbe>,
    c: &ClusterSettings,
    limits: Limits,
) -> Vec<Check> {
    match crate::runbook::survey::survey(aurora, metrics, dns, Some(permissions), c).await {
        Ok(mut s) => {
            if let Some(database) = database {
                crate::runbook::survey::probe_secondaries(database, c, &mut s).await;
            }
            let mut checks = topology_checks(c, &s);
            checks.extend(dns_checks(c, &s.zone, &s.records));
            checks.extend(permission_checks(c, &s, limits));
            checks.extend(database_checks(c, &s));
            checks
        }
        Err(e) => {
            // Without the topology nothing else of the cluster can be judged; the DNS side still can.
            let mut checks = vec![line("global cluster", Outcome::Fail, unreadable_global(c, &e))];
            let (zone, w, r) = tokio::join!(
                dns.hosted_zone(&c.hosted_zone_id),
                dns.records_at(&c.hosted_zone_id, &c.writer_record),
                dns.records_at(&c.hosted_zone_id, &c.reader_record)
            );
            let records = w.and_then(|w| Ok([w, r?]));
            checks.extend(dns_checks(c, &zone, &records));
            checks
        }
    }
}

/// The database probe of each secondary's reader endpoint (`[clusters.probe]`): refused credentials
/// (or an unreadable secret) fail, as the configuration error they are; a server this machine cannot
/// reach only warns (the bot may run elsewhere, on another network path).
fn database_checks(c: &ClusterSettings, s: &Survey) -> Vec<Check> {
    let (Some(probe), Some(probes)) = (&c.probe, &s.probes) else {
        return Vec::new();
    };
    s.topology
        .secondaries()
        .map(|m| {
            let name = format!("database of {} ({})", m.cluster_id, m.region);
            let Some(probed) = probes.get(&m.arn) else {
                return line(
                    name,
                    Outcome::Warn,
                    "not probed: the cluster's description could not be read",
                );
            };
            let at = format!("{}:{}", probed.endpoint, probed.port);
            match &probed.result {
                Ok(r) if r.heartbeat_problem.is_some() => line(
                    name,
                    Outcome::Fail,
                    format!(
                        "{at} answers, but the heartbeat write after a failover would fail: {}. Create the table or \
                         grant it (README, \"Database probe\")",
                        r.heartbeat_problem.as_deref().unwrap_or_default().trim_end_matches('.')
                    ),
                ),
                Ok(r) => line(
                    name,
                    Outcome::Pass,
                    format!(
                        "{at} answers over TLS with the secret's credentials ({}, {})",
                        r.server_version.split(" on ").next().unwrap_or_default(),
                        if r.read_only { "read-only" } else { "writable" }
                    ),
                ),
                Err(e) if e.is_configuration() => line(
                    name,
                    Outcome::Fail,
                    format!(
                        "configuration error: {}. Fix the secret {} or [clusters.probe] of {}",
                        e.detail.trim_end_matches('.'),
                        probe.secret_id,
                        c.name
                    ),
                ),
                Err(e) => line(
                    name,
                    Outcome::Warn,
                    format!("{at} could not be probed from here: {}", e.detail.trim_end_matches('.')),
                ),
            }
        })
        .collect()
}

/// Why the global cluster could not be read, with what to check.
fn unreadable_global(c: &ClusterSettings, e: &AwsError) -> String {
    let regions: Vec<&str> = c.regions.iter().map(|r| r.as_str()).collect();
    format!(
        "{} cannot be read in {}: {e}. Check the cluster's global_cluster_id and regions, and that the bot's \
         principal may call rds:DescribeGlobalClusters",
        c.global_cluster_id,
        regions.join(", ")
    )
}

/// The global cluster, its member in each configured Region (and any member outside them), and each
/// secondary's replication lag.
fn topology_checks(c: &ClusterSettings, s: &Survey) -> Vec<Check> {
    let t = &s.topology;
    let mut checks = vec![global_check(t)];
    for region in &c.regions {
        let name = format!("member in {region}");
        checks.push(match t.member_in(region) {
            Some(m) => member_check(name, m, s),
            None => line(
                name,
                Outcome::Fail,
                format!(
                    "{} has no member in {region}: remove {region} from the cluster's regions, or add a secondary there",
                    t.global_cluster_id
                ),
            ),
        });
    }
    for m in t.members.iter().filter(|m| !c.regions.contains(&m.region)) {
        checks.push(line(
            format!("member in {}", m.region),
            Outcome::Warn,
            format!(
                "{} is a member in {}, which is not in the cluster's regions: the bot neither reads it there nor \
                 fails over to it. Add {} to regions if it should",
                m.cluster_id, m.region, m.region
            ),
        ));
    }
    checks.extend(t.secondaries().map(|m| lag_check(m, s)));
    checks
}

fn global_check(t: &Topology) -> Check {
    let summary = format!(
        "{} exists: status {}, engine {}",
        t.global_cluster_id, t.status, t.engine_version
    );
    match t.writer() {
        Some(w) => line(
            "global cluster",
            Outcome::Pass,
            format!("{summary}, writer {} in {}", w.cluster_id, w.region),
        ),
        None => line(
            "global cluster",
            Outcome::Warn,
            format!("{summary}, but it has no writer member: no failover can be planned until it has one"),
        ),
    }
}

/// A member, as its own Region describes it.
fn member_check(name: String, m: &Member, s: &Survey) -> Check {
    let role = if m.is_writer { "the writer" } else { "a secondary" };
    match s.states.get(&m.arn) {
        Some(Ok(state)) => line(
            name,
            Outcome::Pass,
            format!(
                "{} exists ({role}): status {}, {} instance(s)",
                m.cluster_id, state.status, state.instances
            ),
        ),
        Some(Err(e)) => line(
            name,
            Outcome::Fail,
            format!("{} ({role}) cannot be read in {}: {e}", m.cluster_id, m.region),
        ),
        None => line(name, Outcome::Fail, format!("{} was not read", m.cluster_id)),
    }
}

/// A secondary's replication lag (CloudWatch): unknown is a warning, as the plan has it (a switchover
/// whose lag is unknown is refused, other modes warn).
fn lag_check(m: &Member, s: &Survey) -> Check {
    let name = format!("replication lag in {}", m.region);
    match s.lags.get(&m.arn) {
        Some(Ok(ms)) => line(
            name,
            Outcome::Pass,
            format!("{}: {}", m.cluster_id, plan::lag_text(*ms)),
        ),
        Some(Err(why)) => line(
            name,
            Outcome::Warn,
            format!(
                "{}: not known ({why}); a switchover needs it (cloudwatch:GetMetricData)",
                m.cluster_id
            ),
        ),
        None => line(name, Outcome::Warn, format!("{}: not read", m.cluster_id)),
    }
}

/// The hosted zone, the record at each CNAME's name, and the plan's DNS records check.
fn dns_checks(
    c: &ClusterSettings,
    zone: &Result<crate::ports::HostedZone, AwsError>,
    records: &Result<[Vec<RecordSet>; 2], AwsError>,
) -> Vec<Check> {
    let zone_check = match zone {
        Ok(z) => line(
            "hosted zone",
            Outcome::Pass,
            format!("{} exists: {}", c.hosted_zone_id, z.name.trim_end_matches('.')),
        ),
        Err(e) => line(
            "hosted zone",
            Outcome::Fail,
            format!("{} cannot be read: {e}", c.hosted_zone_id),
        ),
    };
    let mut checks = vec![zone_check];
    for (i, (label, name)) in [("writer record", &c.writer_record), ("reader record", &c.reader_record)]
        .into_iter()
        .enumerate()
    {
        checks.push(record_check(
            label,
            name,
            &c.hosted_zone_id,
            records.as_ref().map(|r| r[i].as_slice()),
        ));
    }
    checks.push(plan::records_check(c, zone, records));
    checks
}

/// The record at a CNAME's name: a plain CNAME is what the application connects through.
fn record_check(label: &str, name: &str, zone_id: &str, sets: Result<&[RecordSet], &AwsError>) -> Check {
    match sets {
        Err(e) => line(label, Outcome::Fail, format!("{name} cannot be read: {e}")),
        Ok([]) => line(
            label,
            Outcome::Fail,
            format!(
                "no record named {name} in zone {zone_id}: nothing can be connecting through it. Check the name (a \
                 failover would create it)"
            ),
        ),
        Ok(sets) => match sets.iter().find(|s| s.is_plain_cname()) {
            Some(s) => line(
                label,
                Outcome::Pass,
                format!("{name} is a CNAME to {}", s.values.join(", ")),
            ),
            None => line(
                label,
                Outcome::Fail,
                format!("{name} holds no plain CNAME (see {})", plan::DNS_RECORDS),
            ),
        },
    }
}

/// The plan's permissions check (IAM's simulator) for every secondary as the target and every mode.
fn permission_checks(c: &ClusterSettings, s: &Survey, limits: Limits) -> Vec<Check> {
    let mut checks = Vec::new();
    for to in s.topology.secondaries() {
        for mode in MODES {
            let found = plan::named_checks(c, s, to, mode, limits, &[plan::PERMISSIONS]).unwrap_or_default();
            checks.extend(found.into_iter().map(|mut check| {
                check.name = format!("{} ({mode} to {})", check.name, to.region);
                check
            }));
        }
    }
    checks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::AwsErrorKind;

    fn set(record_type: &str, alias: Option<&str>) -> RecordSet {
        RecordSet {
            name: "w.example.internal.".into(),
            record_type: record_type.into(),
            values: vec!["east.cluster-1.us-east-1.rds.amazonaws.com".into()],
            alias_target: alias.map(Into::into),
            set_identifier: None,
            routing: None,
        }
    }

    #[test]
    fn a_record_passes_only_as_a_plain_cname_and_a_missing_or_unreadable_one_fails_naming_it() {
        let check =
            |sets: Result<&[RecordSet], &AwsError>| record_check("writer record", "w.example.internal", "Z1", sets);
        let ok = check(Ok(&[set("CNAME", None)]));
        assert_eq!(ok.outcome, Outcome::Pass);
        assert_eq!(
            ok.detail,
            "w.example.internal is a CNAME to east.cluster-1.us-east-1.rds.amazonaws.com"
        );
        let missing = check(Ok(&[]));
        assert_eq!(missing.outcome, Outcome::Fail);
        assert!(
            missing
                .detail
                .starts_with("no record named w.example.internal in zone Z1")
        );
        let alias = check(Ok(&[set("CNAME", Some("lb.example.com"))]));
        assert_eq!(alias.outcome, Outcome::Fail);
        assert!(
            alias.detail.contains("no plain CNAME (see DNS records)"),
            "{}",
            alias.detail
        );
        let denied = AwsError::new(AwsErrorKind::AccessDenied, "AccessDenied: not allowed");
        let unreadable = check(Err(&denied));
        assert_eq!(unreadable.outcome, Outcome::Fail);
        assert!(unreadable.detail.contains("AccessDenied"), "{}", unreadable.detail);
    }

    #[test]
    fn a_report_fails_when_any_check_failed_and_only_then() {
        let group = |outcome| Group {
            title: "configuration".into(),
            checks: vec![line("config file", outcome, "")],
        };
        let report = |outcomes: &[Outcome]| Report {
            groups: outcomes.iter().map(|o| group(*o)).collect(),
        };
        assert!(!report(&[Outcome::Pass, Outcome::Warn]).failed());
        assert!(report(&[Outcome::Pass, Outcome::Fail]).failed());
    }
}
