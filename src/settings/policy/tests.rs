use super::*;
use crate::settings::Settings;
use crate::types::{SlackUserId, UserGroupId};

const BASE: &str = r#"
[slack]
incident_channel = "C0INCIDENT"

[approval]
requesters = ["U0AAAA", "S0ONCALL"]
approvers = ["U0BBBB", "S0DBA"]
APPROVAL_EXTRA

[[clusters]]
name = "orders"
global_cluster_id = "orders-global"
regions = ["us-east-1", "us-west-2"]
hosted_zone_id = "Z0123456789"
writer_record = "writer.example.internal"
reader_record = "reader.example.internal"
CLUSTER_EXTRA

[[clusters]]
name = "billing"
global_cluster_id = "billing-global"
regions = ["us-east-1", "us-west-2"]
hosted_zone_id = "Z0123456789"
writer_record = "bwriter.example.internal"
reader_record = "breader.example.internal"
"#;

fn config(approval: &str, cluster: &str) -> Result<Settings, ConfigError> {
    Settings::from_toml(
        &BASE
            .replace("APPROVAL_EXTRA", approval)
            .replace("CLUSTER_EXTRA", cluster),
    )
}

fn name(s: &str) -> ClusterName {
    ClusterName::parse(s).unwrap()
}

fn user(s: &str) -> Principal {
    Principal::User(SlackUserId::parse(s).unwrap())
}

fn group(s: &str) -> Principal {
    Principal::Group(UserGroupId::parse(s).unwrap())
}

fn error_of(r: Result<Settings, ConfigError>) -> String {
    r.expect_err("the config should be refused").to_string()
}

#[test]
fn a_config_without_policy_keys_keeps_one_approval_and_no_reason_or_ticket() {
    let s = config("", "").unwrap();
    for action in [None, Some(Action::Detach), Some(Action::Rebuild)] {
        let p = s.approval.policy.policy(&name("orders"), action);
        assert_eq!(p.approvals_required, 1);
        assert!(!p.require_reason);
        assert_eq!(p.ticket, None);
        assert_eq!(p.requesters, vec![user("U0AAAA"), group("S0ONCALL")]);
        assert_eq!(p.approvers, vec![user("U0BBBB"), group("S0DBA")]);
    }
    assert_eq!(s.approval.policy.notify(&name("orders")), &Notify::default());
}

#[test]
fn the_most_specific_layer_wins_key_by_key() {
    let s = config(
        "approvals_required = 1\nticket_pattern = \"INC-\\\\d+\"\n[approval.detach]\napprovals_required = 2\nrequire_reason = true",
        "[clusters.approval]\napprovers = [\"S0DBA\"]\n[clusters.approval.detach]\nticket_pattern = \"CHG-\\\\d+\"",
    )
    .unwrap();
    let orders = |a| s.approval.policy.policy(&name("orders"), a);
    let detach = orders(Some(Action::Detach));
    assert_eq!(detach.approvals_required, 2, "from [approval.detach]");
    assert!(detach.require_reason, "from [approval.detach]");
    assert_eq!(
        detach.approvers,
        vec![group("S0DBA")],
        "[clusters.approval] beats [approval]"
    );
    assert_eq!(detach.ticket.as_ref().unwrap().as_str(), "CHG-\\d+");
    let switchover = orders(Some(Action::Switchover));
    assert_eq!(switchover.approvals_required, 1);
    assert_eq!(switchover.ticket.as_ref().unwrap().as_str(), "INC-\\d+");
    assert_eq!(switchover.approvers, vec![group("S0DBA")]);
    // The other cluster has no [clusters.approval]: [approval] and [approval.detach] only.
    let billing = s.approval.policy.policy(&name("billing"), Some(Action::Detach));
    assert_eq!(billing.approvers, vec![user("U0BBBB"), group("S0DBA")]);
    assert_eq!(billing.approvals_required, 2);
    assert_eq!(billing.ticket.as_ref().unwrap().as_str(), "INC-\\d+");
}

#[test]
fn a_ticket_pattern_matches_the_whole_ticket() {
    let s = config("ticket_pattern = \"INC-\\\\d+\"", "").unwrap();
    let p = s.approval.policy.policy(&name("orders"), None);
    let t = p.ticket.as_ref().unwrap();
    assert!(t.matches("INC-42"));
    assert!(!t.matches("INC-"));
    assert!(!t.matches("xINC-42"));
    assert!(!t.matches("INC-42x"));
}

#[test]
fn notify_lists_are_read_per_cluster() {
    let s = config(
        "",
        "[clusters.notify]\nrequest = [\"S0DBA\"]\nattention = [\"S0ONCALL\", \"U0BBBB\"]",
    )
    .unwrap();
    let n = s.approval.policy.notify(&name("orders"));
    assert_eq!(n.request, vec![group("S0DBA")]);
    assert_eq!(n.attention, vec![group("S0ONCALL"), user("U0BBBB")]);
    assert_eq!(s.approval.policy.notify(&name("billing")), &Notify::default());
}

#[test]
fn every_mistake_names_its_key_and_why() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "approvals_required = 0",
            "",
            "approval.approvals_required: 0 is out of range",
        ),
        (
            "approvals_required = 11",
            "",
            "approval.approvals_required: 11 is out of range",
        ),
        (
            "approvers = [\"U0BBBB\"]",
            "",
            "unknown field|duplicate key", // approvers twice in [approval]
        ),
        (
            "[approval.detach]\napprovers = [\"U0BBBB\"]\napprovals_required = 2",
            "",
            "approval.detach.approvals_required: 2 approvals can never be given for detach of every cluster: its \
             approvers (approval.detach.approvers) name only 1 user(s)",
        ),
        (
            "",
            "[clusters.approval.failover]\napprovals_required = 3\napprovers = [\"U0BBBB\", \"U0CCCC\"]",
            "clusters[0].approval.failover.approvals_required: 3 approvals can never be given",
        ),
        (
            "ticket_pattern = \"INC-(\"",
            "",
            "approval.ticket_pattern: \"INC-(\" is not a regular expression",
        ),
        (
            "ticket_pattern = \".*\"",
            "",
            "approval.ticket_pattern: \".*\" matches an empty ticket",
        ),
        ("ticket_pattern = \" \"", "", "approval.ticket_pattern: is empty"),
        (
            "[approval.detach]\napprovers = []",
            "",
            "approval.detach.approvers: must name at least one",
        ),
        (
            "",
            "[clusters.approval]\nrequesters = [\"alice\"]",
            "clusters[0].approval.requesters[0]: \"alice\" is not a Slack user id",
        ),
        ("[approval.rollback]\napprovals_required = 2", "", "rollback"),
        ("[approval.detach]\nrequire_reasons = true", "", "require_reasons"),
        (
            "",
            "[clusters.notify]\nrequest = [\"#dba\"]",
            "clusters[0].notify.request[0]: \"#dba\" is not a Slack user id",
        ),
        ("", "[clusters.notify]\npage = [\"S0DBA\"]", "page"),
        ("require_reason = \"yes\"", "", "require_reason"),
    ];
    let cross: &[(&str, &str, &str)] = &[
        // The second cluster's own approvers with the defaults' count: the error names that cluster.
        (
            "[approval.detach]\napprovals_required = 2",
            "[clusters.approval]\napprovers = [\"U0X1\"]",
            "approval.detach.approvals_required: 2 approvals can never be given for detach of cluster orders: its \
             approvers (clusters[0].approval.approvers) name only 1 user(s)",
        ),
        // A requester among two approving users: their own requests could never get two approvals.
        (
            "[approval.rebuild]\nrequesters = [\"U0AAAA\"]\napprovers = [\"U0AAAA\", \"U0BBBB\"]\napprovals_required = 2",
            "",
            "approval.rebuild.approvals_required: 2 approvals can never be given for rebuild of every cluster when \
             U0AAAA asks",
        ),
    ];
    for (approval, cluster, expected) in cases.iter().chain(cross) {
        let e = error_of(config(approval, cluster));
        let alternatives: Vec<&str> = expected.split('|').collect();
        assert!(
            alternatives.iter().any(|a| e.contains(a)),
            "{approval:?} / {cluster:?}: {e:?} should say {expected:?}"
        );
    }
}

#[test]
fn groups_make_any_number_of_approvals_possible() {
    let s = config("[approval.detach]\napprovers = [\"S0DBA\"]\napprovals_required = 5", "").unwrap();
    assert_eq!(
        s.approval
            .policy
            .policy(&name("orders"), Some(Action::Detach))
            .approvals_required,
        5
    );
}

#[test]
fn the_same_user_listed_twice_counts_once_towards_what_is_possible() {
    let e = error_of(config(
        "[approval.detach]\napprovers = [\"U0BBBB\", \"U0BBBB\"]\napprovals_required = 2",
        "",
    ));
    assert!(e.contains("only 1 user(s)"), "{e}");
}

#[test]
fn rebuild_settings_per_region_are_checked_key_by_key() {
    let s = config(
        "",
        "[clusters.rebuild.us-east-1]\ninstance_class = \"db.r6g.xlarge\"\nvpc_security_group_ids = [\"sg-1\"]\ninstances = 2",
    )
    .unwrap();
    let (region, over) = &s.clusters[0].rebuild[0];
    assert_eq!(region.as_str(), "us-east-1");
    assert_eq!(over.keys(), ["vpc_security_group_ids", "instance_class", "instances"]);
    for (extra, expected) in [
        (
            "[clusters.rebuild.eu-west-1]\ninstances = 1",
            "clusters[0].rebuild.eu-west-1: \"eu-west-1\" is not one of",
        ),
        (
            "[clusters.rebuild.us-east-1]\ninstances = 0",
            "clusters[0].rebuild.us-east-1.instances: 0 is out of range",
        ),
        (
            "[clusters.rebuild.us-east-1]\nvpc_security_group_ids = [\"web\"]",
            "vpc_security_group_ids[0]: \"web\" is not",
        ),
        (
            "[clusters.rebuild.us-east-1]\nmonitoring_interval_secs = 60",
            "only with monitoring_role_arn",
        ),
        (
            "[clusters.rebuild.us-east-1]\nmonitoring_role_arn = \"arn:aws:iam::1:role/m\"\nmonitoring_interval_secs = 7",
            "7 is not one of",
        ),
        (
            "[clusters.rebuild.us-east-1]\ninstance_class = \" \"",
            "instance_class: is empty",
        ),
        ("[clusters.rebuild.us-east-1]\nsize = 1", "size"),
    ] {
        let e = error_of(config("", extra));
        assert!(e.contains(expected), "{extra:?}: {e}");
    }
}
