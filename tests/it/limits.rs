//! Slack's limits through the real bot and the stand-in (which refuses what Slack refuses): `/aurora
//! status` for fifty three-Region global clusters, and an approval request (and a dry run) whose
//! checklist is over 4,000 characters. (Every other test checks the limits and the wording too: the stand-in refuses an
//! oversize message and `TestBot`'s `Drop` reads every message the bot sent.)

use crate::common;

use awsim::{IamRule, RuleEffect};
use common::*;
use serde_json::Value;
use std::time::Duration;

const CLUSTERS: usize = 50;

/// Fifty global clusters of three members each (us-east-1 primary, us-west-2 and eu-west-1
/// secondaries), each with its two CNAMEs; cluster c7's writer CNAME has drifted.
fn fleet() -> Options {
    let mut scenario = awsim::Scenario::fleet(CLUSTERS);
    for (i, g) in scenario.global_clusters.iter_mut().enumerate() {
        let mut eu = g.members[1].clone();
        eu.region = "eu-west-1".into();
        eu.cluster_id = format!("g{i}-eu");
        eu.instances = vec![format!("g{i}-eu-1")];
        g.members.push(eu);
    }
    let drifted = &mut scenario.hosted_zones[0].records[14];
    assert!(drifted.name.starts_with("w7."), "{}", drifted.name);
    drifted.points_to = None;
    drifted.values = vec!["somewhere-else.example.com".into()];
    let clusters = (0..CLUSTERS)
        .map(|i| {
            format!(
                "[[clusters]]\nname = \"c{i}\"\nglobal_cluster_id = \"g{i}-global\"\n\
                 regions = [\"us-east-1\", \"us-west-2\", \"eu-west-1\"]\nhosted_zone_id = \"{ZONE}\"\n\
                 writer_record = \"w{i}.aurora_private_hosted_zone\"\nreader_record = \"r{i}.aurora_private_hosted_zone\"\n\
                 record_ttl = 1\n\n"
            )
        })
        .collect();
    Options {
        scenario,
        clusters_toml: Some(clusters),
        ..Options::default()
    }
}

/// The section texts of a message, in order.
fn section_texts(r: &standin::Recorded) -> Vec<String> {
    r.body["blocks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|b| b["type"] == "section")
        .filter_map(|b| b.pointer("/text/text").and_then(Value::as_str).map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_of_fifty_clusters_fits_in_four_posts_within_every_limit_with_every_member_present() {
    let bot = TestBot::start_with(fleet()).await;
    let (answer, url) = bot.command(ALICE, "status").await;
    assert_eq!(answer.status, 200);
    let n = bot.whole_status_answer(&url).await;
    bot.slack_settled().await;
    let posts = bot.slack.responses_to(&url);
    assert_eq!(posts.len(), n);
    assert!((1..=4).contains(&posts.len()), "{} posts", posts.len());
    assert!(
        bot.slack.limit_refusals().is_empty(),
        "{:?}",
        bot.slack.limit_refusals()
    );
    for p in &posts {
        let blocks = p.body["blocks"].as_array().unwrap();
        assert!(blocks.len() <= 50, "{} blocks", blocks.len());
        assert!(p.text().chars().count() <= 500, "a short fallback text: {}", p.text());
        assert!(!p.text().is_empty());
    }
    let texts: Vec<String> = posts.iter().flat_map(section_texts).collect();
    // The summary comes first: how many clusters, which need attention and why.
    assert!(
        texts[0].starts_with(&format!("*{CLUSTERS} global clusters*: 1 need attention.")),
        "{}",
        texts[0]
    );
    assert!(
        texts[0].contains("• *c7*: writer CNAME not at the writer"),
        "{}",
        texts[0]
    );
    let all = texts.join("\n");
    for i in 0..CLUSTERS {
        assert!(all.contains(&format!("*c{i}* (`g{i}-global`)")), "cluster c{i} missing");
        for (region, id, role) in [
            ("us-east-1", format!("g{i}-east"), "*writer*"),
            ("us-west-2", format!("g{i}-west"), "reader"),
            ("eu-west-1", format!("g{i}-eu"), "reader"),
        ] {
            assert!(
                all.contains(&format!("• {region} `{id}` {role} · available")),
                "member {id} missing"
            );
        }
    }
    // One cluster in full: its endpoints too.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let (_, url) = bot.command(ALICE, "status c7").await;
    let one = bot.answer_at(&url).await;
    let (w, r) = bot.endpoints("us-east-1", "g7-east");
    assert!(one.contains(&w) && one.contains(&r), "{one}");
    assert!(one.contains(":warning: writer CNAME"), "{one}");
    bot.slack_settled().await;
    assert_eq!(bot.slack.responses_to(&url).len(), 1);
}

/// An IAM condition key long enough that the permissions check alone runs past a section.
fn long_key(tag: &str) -> String {
    format!("aws:PrincipalTag/{tag}-{}", "incident-response-rota-".repeat(40))
}

#[tokio::test]
async fn an_approval_request_with_a_checklist_over_4000_characters_is_posted_whole_and_in_order() {
    let bot = TestBot::start().await;
    for (action, tag) in [
        ("rds:*", "rds"),
        ("route53:ChangeResourceRecordSets", "change"),
        ("route53:GetChange", "get"),
    ] {
        bot.sim
            .admin()
            .add_iam_rule(IamRule {
                context_key: Some(long_key(tag)),
                ..IamRule::new(action, RuleEffect::MissingContext)
            })
            .unwrap();
    }
    let id = bot.request().await;
    let message = bot.request_message(id).await;
    let sections = section_texts(&message);
    let start = sections
        .iter()
        .position(|t| t.starts_with("*Pre-flight checks*"))
        .expect("a checklist");
    let end = sections[start..]
        .iter()
        .position(|t| t.starts_with("*DNS*"))
        .map(|n| start + n)
        .expect("the DNS section after the checklist");
    let checklist = sections[start..end].concat();
    assert!(
        checklist.chars().count() > 4_000,
        "{} characters",
        checklist.chars().count()
    );
    assert!(end - start >= 2, "split over several sections");
    for s in &sections {
        assert!(s.chars().count() <= 3_000);
    }
    // Every check the plan has, in order, and every key whole.
    let plan = bot
        .request_state(id)
        .await
        .stored_plan::<aurora_failover_bot::runbook::plan::Plan>();
    let checks = plan.unwrap().unwrap().checks;
    assert!(checks.len() >= 6, "{checks:?}");
    let mut at = 0;
    for c in &checks {
        let name = format!("*{}*: ", c.name);
        let found = checklist[at..]
            .find(&name)
            .unwrap_or_else(|| panic!("{name} missing or out of order in {checklist}"));
        at += found + name.len();
    }
    for tag in ["rds", "change", "get"] {
        assert!(sections.iter().any(|s| s.contains(&long_key(tag))), "{tag}'s key cut");
    }
    assert!(has_buttons(&message), "the approval buttons are there");
    // A dry run shows the same checklist, split the same way, through the command's response_url.
    let (_, url) = bot.command(ALICE, "failover orders --mode detach --dry-run").await;
    let preview = bot
        .slack
        .wait_for(WAIT, |_| {
            bot.slack
                .responses_to(&url)
                .into_iter()
                .find(|r| r.text().starts_with("Dry run"))
        })
        .await
        .expect("the dry run's preview");
    let previewed = section_texts(&preview);
    for tag in ["rds", "change", "get"] {
        assert!(previewed.iter().any(|s| s.contains(&long_key(tag))), "{tag}'s key cut");
    }
    assert!(bot.slack.limit_refusals().is_empty());
}
