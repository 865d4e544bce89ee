//! Never promote what you cannot repoint: everything a run needs to finish is checked, read-only,
//! before its first change to AWS. Route 53 has no dry run, so the plan (and the re-check right before
//! the first mutating call) reads the hosted zone and the records at both names, and asks IAM's policy
//! simulator about every call the run will make. Each case below is refused in the plan with a message
//! that names the record (or the call) and what to change, and no mutating call reaches AWS.

use crate::common;

use awsim::{AliasTarget, IamRule, RecordSet, RuleEffect, SimulatorMode};
use common::*;

/// A config whose writer CNAME is `writer` (the reader stays as in the example).
fn with_writer(writer: &str) -> Options {
    Options {
        clusters_toml: Some(format!(
            r#"[[clusters]]
name = "orders"
global_cluster_id = "orders-global"
regions = ["us-east-1", "us-west-2"]
hosted_zone_id = "{ZONE}"
writer_record = "{writer}"
reader_record = "{READER_RECORD}"
record_ttl = 1"#
        )),
        ..Options::default()
    }
}

/// Asks for a detach; returns the reason the plan was refused with.
async fn refused(bot: &TestBot) -> String {
    let (answer, url) = bot.command(ALICE, "failover orders --mode detach").await;
    assert!(answer.text().starts_with("Request #"), "{answer:?}");
    let text = bot.answer_at(&url).await;
    let text = bot
        .answer_containing(&url, "could not be prepared")
        .await
        .unwrap_or_else(|| panic!("the request was not refused: {text}"));
    assert_eq!(
        bot.request_state(1).await.state,
        aurora_failover_bot::store::RequestState::Rejected
    );
    no_change(bot);
    text
}

fn no_change(bot: &TestBot) {
    let changes: Vec<_> = bot
        .sim
        .admin()
        .calls()
        .into_iter()
        .filter(|c| MUTATING.contains(&c.action.as_str()))
        .collect();
    assert!(changes.is_empty(), "AWS was changed: {changes:?}");
}

#[tokio::test]
async fn a_writer_record_outside_the_hosted_zone_is_refused_before_anything_changes() {
    let bot = TestBot::start_with(with_writer("db.example.com")).await;
    let why = refused(&bot).await;
    assert!(
        why.contains("db.example.com is not inside hosted zone Z0123456789 (aurora_private_hosted_zone)")
            && why.contains("writer_record"),
        "{why}"
    );
}

#[tokio::test]
async fn a_writer_record_at_the_zone_apex_is_refused_before_anything_changes() {
    let bot = TestBot::start_with(with_writer("aurora_private_hosted_zone")).await;
    let why = refused(&bot).await;
    assert!(
        why.contains("is the apex of zone aurora_private_hosted_zone:") && why.contains("cannot be at a zone's apex"),
        "{why}"
    );
}

#[tokio::test]
async fn a_name_holding_an_a_record_is_refused_before_anything_changes() {
    let name = "legacy.aurora_private_hosted_zone";
    let bot = TestBot::start_with(with_writer(name)).await;
    bot.sim
        .admin()
        .put_record(ZONE, RecordSet::simple(name, "A", 60, &["10.0.0.12"]))
        .unwrap();
    let why = refused(&bot).await;
    assert!(
        why.contains(&format!("{name} holds a record of type A (10.0.0.12)")) && why.contains("Delete it"),
        "{why}"
    );
}

#[tokio::test]
async fn a_name_holding_an_alias_record_is_refused_before_anything_changes() {
    let name = "legacy.aurora_private_hosted_zone";
    let bot = TestBot::start_with(with_writer(name)).await;
    bot.sim
        .admin()
        .put_record(
            ZONE,
            RecordSet::alias(
                name,
                "A",
                AliasTarget {
                    hosted_zone_id: "Z35SXDOTRQ7X7K".into(),
                    dns_name: "proxy-1.us-east-1.elb.amazonaws.com.".into(),
                    evaluate_target_health: false,
                },
            ),
        )
        .unwrap();
    let why = refused(&bot).await;
    assert!(
        why.contains(&format!(
            "{name} holds an alias record of type A (to proxy-1.us-east-1.elb.amazonaws.com.)"
        )),
        "{why}"
    );
}

#[tokio::test]
async fn a_name_holding_a_weighted_record_is_refused_before_anything_changes() {
    let name = "weighted.aurora_private_hosted_zone";
    let bot = TestBot::start_with(with_writer(name)).await;
    let (east, _) = bot.endpoints("us-east-1", "orders-east");
    bot.sim
        .admin()
        .put_record(
            ZONE,
            RecordSet::simple(name, "CNAME", 60, &[&east]).weighted("east", 100),
        )
        .unwrap();
    let why = refused(&bot).await;
    assert!(
        why.contains(&format!(
            "{name} holds a weighted record of type CNAME (set identifier east)"
        )),
        "{why}"
    );
}

#[tokio::test]
async fn a_role_denied_change_resource_record_sets_is_refused_before_anything_changes() {
    let bot = TestBot::start().await;
    bot.sim
        .admin()
        .add_iam_rule(
            IamRule::new("route53:ChangeResourceRecordSets", RuleEffect::ImplicitDeny)
                .on(&format!("arn:aws:route53:::hostedzone/{ZONE}")),
        )
        .unwrap();
    let why = refused(&bot).await;
    assert!(
        why.contains(&format!(
            "route53:ChangeResourceRecordSets on arn:aws:route53:::hostedzone/{ZONE} (no statement allows it)"
        )) && why.contains("IAM permissions"),
        "{why}"
    );
    // The bot asked about the exact names it would change.
    let simulated = bot.sim.admin().calls_to("SimulatePrincipalPolicy");
    assert!(!simulated.is_empty());
}

#[tokio::test]
async fn a_role_denied_the_detach_itself_is_refused_and_an_explicit_deny_is_named() {
    let bot = TestBot::start().await;
    bot.sim
        .admin()
        .add_iam_rule(IamRule::new("rds:RemoveFromGlobalCluster", RuleEffect::ExplicitDeny))
        .unwrap();
    let why = refused(&bot).await;
    assert!(
        why.contains("rds:RemoveFromGlobalCluster on arn:aws:rds::") && why.contains("an explicit Deny statement"),
        "{why}"
    );
}

#[tokio::test]
async fn a_simulator_that_cannot_answer_is_a_warning_and_never_blocks_the_failover() {
    let bot = TestBot::start().await;
    bot.sim.admin().set_simulator(SimulatorMode::AccessDenied);
    let id = bot.request().await;
    let message = all_text(&bot.request_message(id).await);
    assert!(
        message.contains("*Permissions*: could not be checked") && message.contains("iam:SimulatePrincipalPolicy"),
        "{message}"
    );
    // An SCP the simulator reports is a warning too.
    bot.sim.admin().set_simulator(SimulatorMode::Available);
    bot.sim
        .admin()
        .add_iam_rule(IamRule::new("rds:SwitchoverGlobalCluster", RuleEffect::ScpDeny))
        .unwrap();
    let (_, url) = bot.command(ALICE, "failover orders --mode switchover --dry-run").await;
    let preview = bot
        .slack
        .wait_for(WAIT, |_| {
            bot.slack
                .responses_to(&url)
                .iter()
                .find(|r| r.text().starts_with("Dry run"))
                .map(all_text)
        })
        .await
        .unwrap_or_else(|| panic!("{:?}", bot.slack.responses_to(&url)));
    assert!(preview.contains("service control policy may deny it"), "{preview}");
    // Unavailable again at the re-check right before the first change: the run goes on.
    bot.sim.admin().set_simulator(SimulatorMode::AccessDenied);
    let simulated = bot.sim.admin().calls_to("SimulatePrincipalPolicy").len();
    bot.click(BOB, id, true).await;
    let run = bot.finished_run(id, WAIT).await;
    assert_eq!(run.state, aurora_failover_bot::store::RunState::Succeeded);
    assert!(
        bot.sim.admin().calls_to("SimulatePrincipalPolicy").len() > simulated,
        "the re-check asked the simulator again"
    );
}

#[tokio::test]
async fn a_record_turned_into_an_alias_after_approval_stops_the_run_before_the_detach() {
    let bot = TestBot::start().await;
    let id = bot.request().await;
    // Someone adds an alias record at the writer's name while the request waits (the emulator's admin
    // API does not validate, so the CNAME stays beside it: the bot must refuse either way).
    bot.sim
        .admin()
        .put_record(
            ZONE,
            RecordSet::alias(
                WRITER_RECORD,
                "A",
                AliasTarget {
                    hosted_zone_id: "Z35SXDOTRQ7X7K".into(),
                    dns_name: "proxy.us-east-1.elb.amazonaws.com.".into(),
                    evaluate_target_health: false,
                },
            ),
        )
        .unwrap();
    bot.click(BOB, id, true).await;
    let run = bot.finished_run(id, WAIT).await;
    assert_eq!(run.state, aurora_failover_bot::store::RunState::Failed);
    no_change(&bot);
    bot.slack_settled().await;
    let ts = bot.request_message(id).await.ts.unwrap();
    let thread: Vec<String> = bot.thread(&ts).iter().map(|r| r.text().to_owned()).collect();
    assert!(
        thread
            .iter()
            .any(|t| t.contains("holds an alias record of type A") && t.contains("Nothing was changed")),
        "{thread:#?}"
    );
}
