//! STS and IAM through the real aws-sdk-sts and aws-sdk-iam clients: who the caller is, its role, and what
//! IAM's policy simulator answers for the calls a failover makes, rule by rule; the simulator refusing
//! the caller; a role ARN without the role's path; IAM out of reach while us-east-1 is down.

use crate::common;

use aws_sdk_iam::error::ProvideErrorMetadata;
use aws_sdk_iam::operation::get_role::GetRoleError;
use aws_sdk_iam::operation::simulate_principal_policy::{SimulatePrincipalPolicyError, SimulatePrincipalPolicyOutput};
use aws_sdk_iam::types::{ContextEntry, ContextKeyTypeEnum, EvaluationResult, PolicyEvaluationDecisionType};
use awsim::{FaultCode, FaultSpec, IamRule, OutageMode, RuleEffect, Scenario, SimulatorMode, Timings};
use common::TestSim;
use serde_json::json;

const ACCOUNT: &str = "123456789012";
const CALLER: &str = "arn:aws:sts::123456789012:assumed-role/aurora-failover-bot/awsim-session";
const ROLE: &str = "arn:aws:iam::123456789012:role/aurora-failover-bot";
const FAILOVER: &str = "rds:FailoverGlobalCluster";
const UPSERT: &str = "route53:ChangeResourceRecordSets";
const GLOBAL: &str = "arn:aws:rds::123456789012:global-cluster:orders-global";
const ZONE: &str = "arn:aws:route53:::hostedzone/Z0123456789";

async fn example() -> TestSim {
    TestSim::example(Timings::instant()).await
}

/// Simulates `actions` on `resources` for `source` with the us-east-1 IAM client.
async fn simulate(
    t: &TestSim,
    source: &str,
    actions: &[&str],
    resources: &[&str],
) -> Result<SimulatePrincipalPolicyOutput, SimulatePrincipalPolicyError> {
    t.iam("us-east-1")
        .await
        .simulate_principal_policy()
        .policy_source_arn(source)
        .set_action_names(Some(actions.iter().map(|a| (*a).to_owned()).collect()))
        .set_resource_arns((!resources.is_empty()).then(|| resources.iter().map(|r| (*r).to_owned()).collect()))
        .send()
        .await
        .map_err(|e| e.into_service_error())
}

/// (action, resource, decision) of each result.
fn decisions(out: &SimulatePrincipalPolicyOutput) -> Vec<(&str, &str, &str)> {
    out.evaluation_results()
        .iter()
        .map(|r| {
            (
                r.eval_action_name(),
                r.eval_resource_name().unwrap_or_default(),
                r.eval_decision().as_str(),
            )
        })
        .collect()
}

fn result_for<'a>(out: &'a SimulatePrincipalPolicyOutput, action: &str) -> &'a EvaluationResult {
    out.evaluation_results()
        .iter()
        .find(|r| r.eval_action_name() == action)
        .unwrap_or_else(|| panic!("no result for {action}"))
}

#[tokio::test]
async fn the_caller_is_the_bots_assumed_role_in_the_emulators_account_in_any_region() {
    let t = example().await;
    for region in ["us-east-1", "eu-west-1"] {
        let me = t.sts(region).await.get_caller_identity().send().await.unwrap();
        assert_eq!(me.account(), Some(ACCOUNT), "the account of the RDS ARNs");
        assert_eq!(me.arn(), Some(CALLER));
        let role = t
            .iam("us-east-1")
            .await
            .get_role()
            .role_name("aurora-failover-bot")
            .send()
            .await
            .unwrap();
        let role_id = role.role().unwrap().role_id().to_owned();
        assert_eq!(me.user_id(), Some(format!("{role_id}:awsim-session").as_str()));
    }
    // The cluster ARNs are in the same account.
    assert!(
        t.admin()
            .cluster("us-east-1", "orders-east")
            .unwrap()
            .arn
            .contains(":123456789012:")
    );

    t.admin()
        .set_caller("arn:aws:iam::123456789012:user/ops/alice")
        .unwrap();
    let me = t.sts("us-west-2").await.get_caller_identity().send().await.unwrap();
    assert_eq!(me.arn(), Some("arn:aws:iam::123456789012:user/ops/alice"));
    assert!(me.user_id().unwrap().starts_with("AIDA"), "{me:?}");
    assert!(t.admin().set_caller("alice").is_err());
    let calls = t.admin().calls_to("GetCallerIdentity");
    assert_eq!(
        calls
            .iter()
            .map(|c| (c.service.as_str(), c.region.as_str()))
            .collect::<Vec<_>>(),
        [("sts", "us-east-1"), ("sts", "eu-west-1"), ("sts", "us-west-2")]
    );
}

#[tokio::test]
async fn get_role_returns_the_role_with_its_arn_and_path_and_an_unknown_role_is_no_such_entity() {
    let t = example().await;
    let iam = t.iam("us-east-1").await;
    let out = iam.get_role().role_name("aurora-failover-bot").send().await.unwrap();
    let role = out.role().unwrap();
    assert_eq!((role.arn(), role.path()), (ROLE, "/"));
    assert!(role.role_id().starts_with("AROA"));

    t.admin().add_role("failover-runner", "/service/aurora/").unwrap();
    let out = iam.get_role().role_name("failover-runner").send().await.unwrap();
    let role = out.role().unwrap();
    assert_eq!(
        role.arn(),
        "arn:aws:iam::123456789012:role/service/aurora/failover-runner"
    );
    assert_eq!(role.path(), "/service/aurora/");

    let err = iam.get_role().role_name("nobody").send().await.unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(404));
    let err = err.into_service_error();
    assert!(matches!(err, GetRoleError::NoSuchEntityException(_)), "{err:?}");
    assert_eq!(err.message(), Some("The role with name nobody cannot be found."));
    assert!(t.admin().add_role("bad name", "/").is_err());
    assert!(t.admin().add_role("ok", "no-slashes").is_err());
}

#[tokio::test]
async fn with_no_rule_every_action_is_allowed_on_every_resource_one_result_per_pair() {
    let t = example().await;
    let out = simulate(&t, ROLE, &[FAILOVER, UPSERT], &[GLOBAL, ZONE]).await.unwrap();
    assert_eq!(
        decisions(&out),
        [
            (FAILOVER, GLOBAL, "allowed"),
            (FAILOVER, ZONE, "allowed"),
            (UPSERT, GLOBAL, "allowed"),
            (UPSERT, ZONE, "allowed"),
        ]
    );
    assert!(!out.is_truncated());
    let r = &out.evaluation_results()[0];
    assert_eq!(r.matched_statements().len(), 1);
    assert_eq!(
        r.matched_statements()[0].source_policy_type().map(|t| t.as_str()),
        Some("role")
    );
    assert!(r.missing_context_values().is_empty());
    assert_eq!(r.organizations_decision_detail(), None);
    let specific = r.resource_specific_results();
    assert_eq!(specific.len(), 1);
    assert_eq!(specific[0].eval_resource_name(), GLOBAL);
    assert_eq!(
        specific[0].eval_resource_decision(),
        &PolicyEvaluationDecisionType::Allowed
    );

    // Without resources: one result per action, on "*".
    let out = simulate(&t, ROLE, &[FAILOVER], &[]).await.unwrap();
    assert_eq!(decisions(&out), [(FAILOVER, "*", "allowed")]);
}

#[tokio::test]
async fn each_rule_effect_is_answered_as_iams_simulator_answers_it() {
    let t = example().await;
    let admin = t.admin();
    admin
        .add_iam_rule(IamRule::new("rds:RemoveFromGlobalCluster", RuleEffect::ImplicitDeny))
        .unwrap();
    admin
        .add_iam_rule(IamRule::new(UPSERT, RuleEffect::ExplicitDeny).on("arn:aws:route53:::hostedzone/Z0123*"))
        .unwrap();
    admin
        .add_iam_rule(IamRule::new("rds:SwitchoverGlobalCluster", RuleEffect::ScpDeny))
        .unwrap();
    admin
        .add_iam_rule(IamRule::new(FAILOVER, RuleEffect::BoundaryDeny))
        .unwrap();
    admin
        .add_iam_rule(IamRule {
            context_key: Some("aws:ResourceTag/team".into()),
            ..IamRule::new("rds:DescribeGlobalClusters", RuleEffect::MissingContext)
        })
        .unwrap();
    // A later explicit deny wins over an earlier rule that matches too.
    admin
        .add_iam_rule(IamRule::new("rds:Remove*", RuleEffect::ExplicitDeny))
        .unwrap();
    assert!(
        admin
            .add_iam_rule(IamRule::new("nocolon", RuleEffect::ImplicitDeny))
            .is_err()
    );

    let actions = [
        "rds:RemoveFromGlobalCluster",
        UPSERT,
        "rds:SwitchoverGlobalCluster",
        FAILOVER,
        "rds:DescribeGlobalClusters",
        "rds:DescribeDBClusters",
    ];
    let out = simulate(&t, ROLE, &actions, &[ZONE]).await.unwrap();
    assert_eq!(
        decisions(&out),
        [
            ("rds:RemoveFromGlobalCluster", ZONE, "explicitDeny"),
            (UPSERT, ZONE, "explicitDeny"),
            ("rds:SwitchoverGlobalCluster", ZONE, "implicitDeny"),
            (FAILOVER, ZONE, "implicitDeny"),
            ("rds:DescribeGlobalClusters", ZONE, "implicitDeny"),
            ("rds:DescribeDBClusters", ZONE, "allowed"),
        ]
    );
    let upsert = result_for(&out, UPSERT);
    assert_eq!(upsert.matched_statements()[0].source_policy_id(), Some("awsim-rule-2"));
    let scp = result_for(&out, "rds:SwitchoverGlobalCluster");
    assert_eq!(
        scp.organizations_decision_detail()
            .map(|d| d.allowed_by_organizations()),
        Some(false)
    );
    assert!(scp.matched_statements().is_empty());
    let boundary = result_for(&out, FAILOVER);
    assert_eq!(
        boundary
            .permissions_boundary_decision_detail()
            .map(|d| d.allowed_by_permissions_boundary()),
        Some(false)
    );
    assert_eq!(boundary.organizations_decision_detail(), None);
    let missing = result_for(&out, "rds:DescribeGlobalClusters");
    assert_eq!(missing.missing_context_values(), ["aws:ResourceTag/team"]);

    // The resource glob limits a rule to its resources.
    let out = simulate(&t, ROLE, &[UPSERT], &["arn:aws:route53:::hostedzone/ZOTHER"])
        .await
        .unwrap();
    assert_eq!(decisions(&out)[0].2, "allowed");

    // The missing context value, given, lets the decision be made; the entries are in the call log.
    let out = t
        .iam("us-east-1")
        .await
        .simulate_principal_policy()
        .policy_source_arn(ROLE)
        .action_names("rds:DescribeGlobalClusters")
        .context_entries(
            ContextEntry::builder()
                .context_key_name("aws:ResourceTag/team")
                .context_key_values("databases")
                .context_key_type(ContextKeyTypeEnum::String)
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(decisions(&out), [("rds:DescribeGlobalClusters", "*", "allowed")]);
    let call = t.admin().calls_to("SimulatePrincipalPolicy").pop().unwrap();
    assert_eq!(call.service, "iam");
    assert_eq!(
        call.params
            .get("ContextEntries.member.1.ContextKeyName")
            .map(String::as_str),
        Some("aws:ResourceTag/team")
    );
    assert_eq!(call.params.get("PolicySourceArn").map(String::as_str), Some(ROLE));

    // Cleared rules: everything allowed again.
    admin.clear_iam_rules();
    let out = simulate(&t, ROLE, &actions, &[ZONE]).await.unwrap();
    assert!(decisions(&out).iter().all(|d| d.2 == "allowed"));
}

#[tokio::test]
async fn a_role_arn_without_the_roles_path_is_no_such_entity_and_the_sts_arn_is_invalid_input() {
    let t = example().await;
    t.admin().add_role("aurora-failover-bot", "/service/").unwrap();
    let err = simulate(&t, ROLE, &[FAILOVER], &[GLOBAL]).await.unwrap_err();
    assert!(
        matches!(err, SimulatePrincipalPolicyError::NoSuchEntityException(_)),
        "{err:?}"
    );
    assert_eq!(
        err.message(),
        Some("The role with name aurora-failover-bot cannot be found.")
    );
    // The bot falls back to GetRole, which gives the ARN with its path.
    let role = t
        .iam("us-east-1")
        .await
        .get_role()
        .role_name("aurora-failover-bot")
        .send()
        .await
        .unwrap();
    let arn = role.role().unwrap().arn().to_owned();
    assert_eq!(arn, "arn:aws:iam::123456789012:role/service/aurora-failover-bot");
    let out = simulate(&t, &arn, &[FAILOVER], &[GLOBAL]).await.unwrap();
    assert_eq!(decisions(&out), [(FAILOVER, GLOBAL, "allowed")]);

    let err = simulate(&t, CALLER, &[FAILOVER], &[]).await.unwrap_err();
    assert!(
        matches!(err, SimulatePrincipalPolicyError::InvalidInputException(_)),
        "{err:?}"
    );
    assert_eq!(
        err.message(),
        Some(format!("Invalid ARN provided in the request: {CALLER}").as_str())
    );
    let err = simulate(&t, "arn:aws:iam::123456789012:user/nobody", &[FAILOVER], &[])
        .await
        .unwrap_err();
    assert!(
        matches!(err, SimulatePrincipalPolicyError::NoSuchEntityException(_)),
        "{err:?}"
    );
    t.admin().add_user("nobody", "/").unwrap();
    simulate(&t, "arn:aws:iam::123456789012:user/nobody", &[FAILOVER], &[])
        .await
        .unwrap();
}

#[tokio::test]
async fn the_simulator_can_refuse_the_caller_with_access_denied() {
    let t = example().await;
    t.admin().set_simulator(SimulatorMode::AccessDenied);
    let err = t
        .iam("us-east-1")
        .await
        .simulate_principal_policy()
        .policy_source_arn(ROLE)
        .action_names(FAILOVER)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(403));
    assert_eq!(err.code(), Some("AccessDenied"));
    assert_eq!(
        err.message(),
        Some(
            format!(
                "User: {CALLER} is not authorized to perform: iam:SimulatePrincipalPolicy on resource: {ROLE} because no identity-based policy allows the iam:SimulatePrincipalPolicy action"
            )
            .as_str()
        )
    );
    // Only the simulator refuses.
    t.iam("us-east-1")
        .await
        .get_role()
        .role_name("aurora-failover-bot")
        .send()
        .await
        .unwrap();
    t.admin().set_simulator(SimulatorMode::Available);
    simulate(&t, ROLE, &[FAILOVER], &[]).await.unwrap();
}

#[tokio::test]
async fn iam_is_out_of_reach_while_us_east_1_is_down_whatever_region_signs_it_and_sts_is_regional() {
    let t = example().await;
    t.admin().region_down("us-east-1", OutageMode::Reset).unwrap();
    for region in ["us-east-1", "us-west-2"] {
        let err = t
            .iam(region)
            .await
            .simulate_principal_policy()
            .policy_source_arn(ROLE)
            .action_names(FAILOVER)
            .send()
            .await
            .unwrap_err();
        assert!(
            matches!(err, aws_sdk_iam::error::SdkError::DispatchFailure(_)),
            "{region}: {err:?}"
        );
    }
    t.admin().region_down("us-east-1", OutageMode::Unavailable).unwrap();
    let err = t
        .iam("eu-west-1")
        .await
        .get_role()
        .role_name("aurora-failover-bot")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ServiceUnavailable"));
    // STS answers in the Regions that are up.
    t.sts("us-west-2").await.get_caller_identity().send().await.unwrap();
    let err = t.sts("us-east-1").await.get_caller_identity().send().await.unwrap_err();
    assert_eq!(err.code(), Some("ServiceUnavailable"));

    t.admin().region_up("us-east-1").unwrap();
    simulate(&t, ROLE, &[FAILOVER], &[]).await.unwrap();
    let dropped = t.admin().calls_to("SimulatePrincipalPolicy");
    assert_eq!(
        dropped
            .iter()
            .map(|c| (c.region.as_str(), c.status, c.error.as_deref()))
            .collect::<Vec<_>>(),
        [
            ("us-east-1", 0, Some("ConnectionReset")),
            ("us-west-2", 0, Some("ConnectionReset")),
            ("us-east-1", 200, None),
        ]
    );
}

#[tokio::test]
async fn injected_faults_hit_the_simulator_and_sts_like_any_action() {
    let t = example().await;
    for action in ["SimulatePrincipalPolicy", "GetCallerIdentity"] {
        t.admin()
            .inject(FaultSpec {
                action: action.into(),
                region: None,
                error: Some(FaultCode::Throttling),
                delay_ms: None,
                delay_response_ms: None,
                count: Some(1),
            })
            .unwrap();
    }
    let err = simulate(&t, ROLE, &[FAILOVER], &[]).await.unwrap_err();
    assert_eq!(err.code(), Some("Throttling"));
    simulate(&t, ROLE, &[FAILOVER], &[]).await.unwrap();
    let err = t.sts("us-west-2").await.get_caller_identity().send().await.unwrap_err();
    assert_eq!(err.code(), Some("Throttling"));
    t.sts("us-west-2").await.get_caller_identity().send().await.unwrap();
}

#[tokio::test]
async fn a_long_simulation_pages_with_max_items_and_marker() {
    let t = example().await;
    let iam = t.iam("us-east-1").await;
    let actions = ["rds:A", "rds:B", "rds:C"];
    let mut seen = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let out = iam
            .simulate_principal_policy()
            .policy_source_arn(ROLE)
            .set_action_names(Some(actions.iter().map(|a| (*a).to_owned()).collect()))
            .resource_arns(GLOBAL)
            .max_items(2)
            .set_marker(marker.clone())
            .send()
            .await
            .unwrap();
        seen.extend(out.evaluation_results().iter().map(|r| r.eval_action_name().to_owned()));
        if !out.is_truncated() {
            break;
        }
        marker = out.marker().map(str::to_owned);
        assert!(marker.is_some(), "a truncated answer says where to continue");
    }
    assert_eq!(seen, actions);
}

#[tokio::test]
async fn the_scenario_and_the_admin_http_api_configure_iam() {
    let mut s = Scenario::from_toml(
        r#"
account_id = "210987654321"

[iam]
caller_arn = "arn:aws:sts::210987654321:assumed-role/dr-bot/session-1"
simulator = "access_denied"

[[iam.roles]]
name = "dr-bot"
path = "/ops/"

[[iam.rules]]
action = "route53:ChangeResourceRecordSets"
resource = "arn:aws:route53:::hostedzone/Z0123456789"
effect = "scp_deny"
"#,
    )
    .unwrap();
    s.timings = Timings::instant();
    let t = TestSim::start(s).await;
    let me = t.sts("us-east-1").await.get_caller_identity().send().await.unwrap();
    assert_eq!(me.account(), Some("210987654321"));
    assert_eq!(
        me.arn(),
        Some("arn:aws:sts::210987654321:assumed-role/dr-bot/session-1")
    );
    let view = t.admin().iam();
    assert_eq!(view.roles.len(), 1, "roles given replace the default role");
    assert_eq!(view.roles[0].arn, "arn:aws:iam::210987654321:role/ops/dr-bot");
    let source = "arn:aws:iam::210987654321:role/ops/dr-bot";
    let err = simulate(&t, source, &[UPSERT], &[ZONE]).await.unwrap_err();
    assert_eq!(err.code(), Some("AccessDenied"));

    let http = reqwest::Client::new();
    let url = |p: &str| format!("{}/_awsim/iam{p}", t.sim.url());
    let ok = |r: reqwest::Response| async move {
        let status = r.status();
        assert_eq!(status, 200, "{}", r.text().await.unwrap());
    };
    ok(http
        .put(url("/simulator"))
        .json(&json!({"mode": "available"}))
        .send()
        .await
        .unwrap())
    .await;
    let out = simulate(&t, source, &[UPSERT], &[ZONE]).await.unwrap();
    assert_eq!(decisions(&out), [(UPSERT, ZONE, "implicitDeny")]);
    ok(http.delete(url("/rules")).send().await.unwrap()).await;
    ok(http
        .post(url("/rules"))
        .json(&json!({"action": "route53:*", "effect": "missing_context"}))
        .send()
        .await
        .unwrap())
    .await;
    let out = simulate(&t, source, &[UPSERT], &[ZONE]).await.unwrap();
    assert_eq!(
        out.evaluation_results()[0].missing_context_values(),
        ["aws:RequestedRegion"]
    );
    ok(http
        .post(url("/roles"))
        .json(&json!({"name": "other", "path": "/"}))
        .send()
        .await
        .unwrap())
    .await;
    ok(http
        .put(url("/caller"))
        .json(&json!({"arn": "arn:aws:sts::210987654321:assumed-role/other/s"}))
        .send()
        .await
        .unwrap())
    .await;
    let state: serde_json::Value = http.get(url("")).send().await.unwrap().json().await.unwrap();
    assert_eq!(state["caller_arn"], "arn:aws:sts::210987654321:assumed-role/other/s");
    assert_eq!(state["rules"][0]["effect"], "missing_context");
    assert_eq!(state["roles"].as_array().unwrap().len(), 2);
    let r = http
        .post(url("/rules"))
        .json(&json!({"action": "route53:*", "effect": "maybe"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // A bad [iam] section is refused with its place.
    let e = Scenario::from_toml("[iam]\ncaller_arn = \"bot\"")
        .unwrap()
        .validate()
        .unwrap_err()
        .to_string();
    assert!(e.contains("iam.caller_arn"), "{e}");
    let e = Scenario::from_toml("[[iam.rules]]\naction = \"x\"\neffect = \"implicit_deny\"")
        .unwrap()
        .validate()
        .unwrap_err()
        .to_string();
    assert!(e.contains("iam.rules[0]"), "{e}");
}
