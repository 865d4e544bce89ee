//! `deploy/iam-policy.json` is the bot's least-privilege IAM policy, and it must match what the bot
//! really does, both ways: every action the bot calls is in it, and it grants nothing the bot never
//! calls. The bot's main flows run through the real binary against the emulator (status, a dry run, a
//! detach, a switchover and a managed failover, with a role that has a path so that the role's ARN is
//! looked up); the actions the emulator served, plus those the bot asked IAM's policy simulator about,
//! are compared with the policy's. A change that adds an AWS call fails here until the policy has it.
//! The policy's resources and conditions, its placeholders filled in as README says, must also allow
//! each (action, resource, condition keys) the bot asked the simulator about.

use crate::common;

use aurora_failover_bot::store::RunState;
use awsim::CallRecord;
use common::*;
use std::collections::BTreeSet;
use std::time::Duration;

/// How an emulator call log entry's service is named in IAM actions (`rds:DescribeDBClusters`). The
/// emulator logs each call under its endpoint's signing name and its API operation name; for every
/// operation the bot calls, the IAM action has the operation's name (Service Authorization Reference,
/// "API operations defined by ..."), so only the prefix needs mapping.
const IAM_PREFIX: &[(&str, &str)] = &[
    ("rds", "rds"),
    ("route53", "route53"),
    // CloudWatch's endpoint is `monitoring.REGION.amazonaws.com`; its actions are `cloudwatch:*`.
    ("monitoring", "cloudwatch"),
    ("sts", "sts"),
    ("iam", "iam"),
];

/// Actions the bot calls that the emulator never serves, each exercised elsewhere.
const CALLED_OUTSIDE_THE_EMULATOR: &[&str] = &[
    // The Slack secrets (`slack.secret_id`, src/aws/secrets.rs), read once at start-up, exercised
    // against moto in tests/it/secrets.rs; and the database probe's secrets, read from the emulator
    // in tests/it/probe.rs (the flows here have no probe).
    "secretsmanager:GetSecretValue",
];

/// What AWS authorises on the bot's behalf when it reads a database probe secret encrypted with a
/// customer managed key (Secrets Manager user guide, "Secret encryption and decryption": GetSecretValue
/// needs `kms:Decrypt` on the key, through Secrets Manager); the bot never calls KMS itself.
const AUTHORISED_FOR_THE_PROBE: &[&str] = &["kms:Decrypt"];

/// What AWS authorises on the bot's behalf when it creates a rebuild's secondary (never called by
/// the bot itself), and the call that needs it. Aurora user guide, "AWS KMS key management": creating
/// an Aurora resource with a customer managed key needs `kms:CreateGrant` and `kms:DescribeKey` on the
/// key; IAM user guide, "Grant a user permissions to pass a role": CreateDBInstance with a
/// `MonitoringRoleArn` needs `iam:PassRole` on the role.
const AUTHORISED_FOR_THE_BOT: &[(&str, &str)] = &[
    ("kms:CreateGrant", "rds:CreateDBCluster"),
    ("kms:DescribeKey", "rds:CreateDBCluster"),
    ("iam:PassRole", "rds:CreateDBInstance"),
];

/// The calls of a rebuild after a detach, made through the bot's `Provisioning` adapter against the
/// emulator (tests/it/provisioning.rs): the actions, with what AWS authorises for them on the bot's
/// behalf, and the (action, resource) pairs its creating calls are authorised on.
async fn rebuild_calls() -> (BTreeSet<String>, Vec<(String, String)>) {
    let (sim, rds, _) = crate::provisioning::world().await;
    crate::provisioning::rebuild(&rds).await;
    let calls = sim.admin().calls();
    sim.shutdown().await;
    let mut actions: BTreeSet<String> = calls.iter().map(iam_action).collect();
    for (needed, by) in AUTHORISED_FOR_THE_BOT {
        if actions.contains(*by) {
            actions.insert((*needed).to_owned());
        }
    }
    (actions, calls.iter().flat_map(created_resources).collect())
}

/// The resources a creating call names, as IAM authorises it (Service Authorization Reference, the
/// resource types of CreateGlobalCluster, CreateDBCluster and CreateDBInstance).
fn created_resources(c: &CallRecord) -> Vec<(String, String)> {
    let account = awsim::Scenario::two_region_example().account_id;
    let rds = |kind: &str, id: &str| format!("arn:aws:rds:{}:{account}:{kind}:{id}", c.region);
    let global = |id: &str| format!("arn:aws:rds::{account}:global-cluster:{id}");
    let p = |key: &str| c.params.get(key).map(String::as_str);
    let named = |pairs: Vec<(&str, Option<String>)>| -> Vec<(String, String)> {
        let action = format!("rds:{}", c.action);
        pairs
            .into_iter()
            .filter_map(|(_, arn)| arn.map(|a| (action.clone(), a)))
            .collect()
    };
    match c.action.as_str() {
        "CreateGlobalCluster" => named(vec![
            ("global", p("GlobalClusterIdentifier").map(global)),
            ("source", p("SourceDBClusterIdentifier").map(str::to_owned)),
        ]),
        "CreateDBCluster" => named(vec![
            ("cluster", p("DBClusterIdentifier").map(|id| rds("cluster", id))),
            ("global", p("GlobalClusterIdentifier").map(global)),
            ("subnets", p("DBSubnetGroupName").map(|id| rds("subgrp", id))),
            (
                "parameters",
                p("DBClusterParameterGroupName").map(|id| rds("cluster-pg", id)),
            ),
        ]),
        "CreateDBInstance" => named(vec![
            ("instance", p("DBInstanceIdentifier").map(|id| rds("db", id))),
            ("cluster", p("DBClusterIdentifier").map(|id| rds("cluster", id))),
            ("parameters", p("DBParameterGroupName").map(|id| rds("pg", id))),
        ]),
        _ => Vec::new(),
    }
}

/// Actions the bot calls that need no permission, so the policy does not grant them. STS API
/// Reference, GetCallerIdentity: "No permissions are required to perform this operation", and an
/// explicit deny does not stop it.
const NEEDS_NO_PERMISSION: &[&str] = &["sts:GetCallerIdentity"];

/// The IAM action of a call the emulator logged, e.g. `monitoring` `GetMetricData` →
/// `cloudwatch:GetMetricData`.
fn iam_action(call: &CallRecord) -> String {
    let prefix = IAM_PREFIX
        .iter()
        .find(|(service, _)| *service == call.service)
        .unwrap_or_else(|| panic!("no IAM prefix for the emulator's service {:?}", call.service))
        .1;
    format!("{prefix}:{}", call.action)
}

/// One question the bot put to IAM's policy simulator (SimulatePrincipalPolicy's parameters).
struct Asked {
    /// `PolicySourceArn`: the bot's own role (first without its path, which its session ARN lacks).
    principal: String,
    /// Whether the simulator answered (a role ARN without the role's path is `NoSuchEntity`).
    answered: bool,
    actions: Vec<String>,
    resources: Vec<String>,
    /// `ContextEntries`: key and values.
    context: Vec<(String, Vec<String>)>,
}

impl Asked {
    fn from_call(c: &CallRecord) -> Asked {
        let list = |prefix: &str| -> Vec<String> {
            (1..)
                .map_while(|n| c.params.get(&format!("{prefix}.member.{n}")).cloned())
                .collect()
        };
        let context = (1..)
            .map_while(|n| {
                let entry = format!("ContextEntries.member.{n}");
                let key = c.params.get(&format!("{entry}.ContextKeyName"))?.clone();
                Some((key, list(&format!("{entry}.ContextKeyValues"))))
            })
            .collect();
        Asked {
            principal: c.params["PolicySourceArn"].clone(),
            answered: c.status == 200,
            actions: list("ActionNames"),
            resources: list("ResourceArns"),
            context,
        }
    }
}

/// What the bot did on one emulator: every action it called, and what it asked the simulator (the
/// actions a run would call).
fn observed(bot: &TestBot) -> (BTreeSet<String>, Vec<Asked>) {
    let calls = bot.sim.admin().calls();
    let asked: Vec<Asked> = calls
        .iter()
        .filter(|c| c.action == "SimulatePrincipalPolicy")
        .map(Asked::from_call)
        .collect();
    let actions = calls
        .iter()
        .map(iam_action)
        .chain(asked.iter().flat_map(|a| a.actions.clone()))
        .collect();
    (actions, asked)
}

/// The placeholders of `deploy/iam-policy.json`, filled in as README says, for the tests' world.
fn placeholders() -> Vec<(&'static str, String)> {
    vec![
        // Before SECRET_REGION and SECRET_NAME, which are inside them.
        ("PROBE_SECRET_REGION", "us-west-2".into()),
        ("PROBE_SECRET_NAME", "orders/probe".into()),
        ("PROBE_KMS_KEY_ID", "1234abcd-12ab-34cd-56ef-1234567890ab".into()),
        ("ACCOUNT", awsim::Scenario::two_region_example().account_id),
        ("GLOBAL_CLUSTER_ID", "orders-global".into()),
        // One ARN per member, or (as here) a pattern that matches every member and nothing else.
        ("MEMBER_CLUSTER_ID", "orders-*".into()),
        ("ZONE_ID", ZONE.into()),
        ("WRITER_RECORD_NAME", WRITER_RECORD.to_lowercase()),
        ("READER_RECORD_NAME", READER_RECORD.to_lowercase()),
        ("BOT_ROLE_PATH_AND_NAME", format!("service-role/{ROLE}")),
        ("BOT_ROLE_NAME", ROLE.into()),
        ("SECRET_REGION", "us-east-1".into()),
        ("SECRET_NAME", "aurora-failover-bot/slack".into()),
    ]
}

/// One statement of the policy, placeholders filled in.
struct Statement {
    actions: Vec<String>,
    resources: Vec<String>,
    /// `Condition.ForAllValues:StringEquals`: each key's allowed values.
    all_values_in: Vec<(String, Vec<String>)>,
    /// Other conditions (`StringEquals`, `StringLike`), on keys the simulator is never asked about
    /// (`kms:ViaService`, `iam:PassedToService`): such a statement is taken to allow nothing here.
    other_conditions: bool,
}

impl Statement {
    /// Whether this statement allows `action` on `resource` with `context` (the request's condition
    /// keys and values).
    fn allows(&self, action: &str, resource: &str, context: &[(String, Vec<String>)]) -> bool {
        !self.other_conditions
            && self.actions.iter().any(|a| a == action)
            && self.resources.iter().any(|r| glob(r, resource))
            && self.all_values_in.iter().all(|(key, allowed)| {
                context
                    .iter()
                    .filter(|(k, _)| k == key)
                    .flat_map(|(_, values)| values)
                    .all(|v| allowed.contains(v))
            })
    }
}

/// `deploy/iam-policy.json`'s statements with the placeholders filled in. Every statement allows and
/// has a Sid that says its purpose.
fn policy() -> Vec<Statement> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/iam-policy.json");
    let mut text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    for (name, value) in placeholders() {
        text = text.replace(name, &value);
    }
    let policy: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    let strings = |v: &serde_json::Value| -> Vec<String> {
        match v {
            serde_json::Value::String(s) => vec![s.clone()],
            serde_json::Value::Array(list) => list.iter().map(|s| s.as_str().expect("a string").to_owned()).collect(),
            other => panic!("expected a string or a list, not {other}"),
        }
    };
    let statements = policy["Statement"].as_array().expect("a Statement list");
    statements
        .iter()
        .map(|s| {
            assert_eq!(s["Effect"], "Allow", "{s}");
            assert!(s["Sid"].is_string(), "every statement says its purpose: {s}");
            let conditions = s["Condition"].as_object().into_iter().flatten();
            let mut all_values_in = Vec::new();
            let mut other_conditions = false;
            for (operator, keys) in conditions {
                assert!(
                    ["ForAllValues:StringEquals", "StringEquals", "StringLike"].contains(&operator.as_str()),
                    "only these operators are read here: {s}"
                );
                let keys = keys.as_object().expect("condition keys");
                if operator == "ForAllValues:StringEquals" {
                    all_values_in.extend(keys.iter().map(|(k, v)| (k.clone(), strings(v))));
                } else {
                    other_conditions = true;
                }
            }
            Statement {
                actions: strings(&s["Action"]),
                resources: strings(&s["Resource"]),
                all_values_in,
                other_conditions,
            }
        })
        .collect()
}

/// IAM's ARN matching: `*` matches any run of characters (`/` and `:` included), `?` any one.
fn glob(pattern: &str, arn: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern.len() == arn.len() && pattern.chars().zip(arn.chars()).all(|(p, a)| p == '?' || p == a),
        Some((head, tail)) => {
            arn.len() >= head.len()
                && glob(head, &arn[..head.len()])
                && (head.len()..=arn.len()).any(|i| glob(tail, &arn[i..]))
        }
    }
}

/// Asks for a failover of `orders` with `args`, approves it, and waits for the run to succeed.
async fn approved_run(bot: &TestBot, args: &str) {
    let id = bot.request_with(args).await;
    bot.click(BOB, id, true).await;
    let run = bot.finished_run(id, Duration::from_secs(30)).await;
    assert_eq!(run.state, RunState::Succeeded, "{args}");
}

/// The bot's role (awsim's default caller), given a path so that its ARN is looked up with GetRole.
const ROLE: &str = "aurora-failover-bot";

/// Status, a dry run and a detach, by a role with a path (its ARN is looked up with `iam:GetRole`).
async fn status_dry_run_and_detach() -> (BTreeSet<String>, Vec<Asked>) {
    let bot = TestBot::start().await;
    bot.sim.admin().add_role(ROLE, "/service-role/").unwrap();
    let (_, url) = bot.command(MALLORY, "status").await;
    let status = bot.answer_at(&url).await;
    assert!(status.contains("orders"), "{status}");
    let (answer, url) = bot.command(ALICE, "failover orders --mode detach --dry-run").await;
    assert!(answer.text().starts_with("Dry run"), "{}", answer.text());
    bot.answer_at(&url).await;
    approved_run(&bot, "--mode detach").await;
    observed(&bot)
}

async fn one_run(args: &str) -> (BTreeSet<String>, Vec<Asked>) {
    let bot = TestBot::start().await;
    bot.sim.admin().add_role(ROLE, "/service-role/").unwrap();
    approved_run(&bot, args).await;
    observed(&bot)
}

#[tokio::test]
async fn the_iam_policy_grants_exactly_the_actions_the_bot_calls_on_the_resources_it_names() {
    let (mut called, mut asked) = status_dry_run_and_detach().await;
    for args in ["--mode switchover", "--mode failover"] {
        let (more_called, more_asked) = one_run(args).await;
        called.extend(more_called);
        asked.extend(more_asked);
    }
    let (rebuild, created) = rebuild_calls().await;
    called.extend(rebuild);
    // The flows above must have reached the calls this test is about.
    for action in [
        "rds:CreateGlobalCluster",
        "rds:CreateDBCluster",
        "rds:CreateDBInstance",
        "rds:DescribeDBInstances",
        "iam:GetRole",
        "rds:DescribeEvents",
        "rds:DescribeDBClusterSnapshots",
        "cloudwatch:GetMetricData",
        "rds:RemoveFromGlobalCluster",
        "rds:SwitchoverGlobalCluster",
        "rds:FailoverGlobalCluster",
    ] {
        assert!(called.contains(action), "{action} was not called: {called:?}");
    }
    for action in NEEDS_NO_PERMISSION {
        assert!(
            called.contains(*action),
            "{action} is no longer called: drop it from the list"
        );
    }
    called.extend(CALLED_OUTSIDE_THE_EMULATOR.iter().map(|a| (*a).to_owned()));
    called.extend(AUTHORISED_FOR_THE_PROBE.iter().map(|a| (*a).to_owned()));
    let needed: BTreeSet<String> = called
        .into_iter()
        .filter(|a| !NEEDS_NO_PERMISSION.contains(&a.as_str()))
        .collect();
    let policy = policy();
    let granted: BTreeSet<String> = policy.iter().flat_map(|s| s.actions.clone()).collect();
    let missing: Vec<_> = needed.difference(&granted).collect();
    let unused: Vec<_> = granted.difference(&needed).collect();
    assert!(
        missing.is_empty() && unused.is_empty(),
        "deploy/iam-policy.json does not match the bot's calls: not granted {missing:?}, never called {unused:?}"
    );
    assert_allows_what_was_asked(&policy, &asked);
    assert!(created.len() >= 7, "{created:?}");
    for (action, resource) in &created {
        assert!(
            policy.iter().any(|s| s.allows(action, resource, &[])),
            "the policy does not allow {action} on {resource}"
        );
    }
}

/// The policy's resource scoping (and conditions) allow what the bot asked the simulator about, on
/// the exact resources a run acts on, and the simulator and GetRole calls on the bot's own role.
fn assert_allows_what_was_asked(policy: &[Statement], asked: &[Asked]) {
    let allowed = |action: &str, resource: &str, context: &[(String, Vec<String>)]| {
        policy.iter().any(|s| s.allows(action, resource, context))
    };
    assert!(!asked.is_empty(), "the bot asked the simulator nothing");
    for a in asked {
        // IAM authorises the simulator call on the ARN it is given before it looks the role up.
        let simulate = "iam:SimulatePrincipalPolicy";
        assert!(allowed(simulate, &a.principal, &[]), "{simulate} on {}", a.principal);
        if a.answered {
            let get_role = "iam:GetRole";
            assert!(allowed(get_role, &a.principal, &[]), "{get_role} on {}", a.principal);
        }
        // Each question pairs every action with every resource: only pairs of the right type count.
        let pairs = a.actions.iter().flat_map(|x| a.resources.iter().map(move |r| (x, r)));
        for (action, resource) in pairs.filter(|(x, r)| resource_type_fits(x, r)) {
            assert!(
                allowed(action, resource, &a.context),
                "the policy does not allow {action} on {resource} with {:?}",
                a.context
            );
        }
    }
}

/// Whether `resource` is of a type `action` is authorised on (Route 53's GetChange is on a change,
/// ChangeResourceRecordSets on a hosted zone; the RDS calls on both the global cluster and a member).
fn resource_type_fits(action: &str, resource: &str) -> bool {
    match action {
        "route53:GetChange" => resource.contains(":change/"),
        "route53:ChangeResourceRecordSets" => resource.contains(":hostedzone/"),
        _ => true,
    }
}
