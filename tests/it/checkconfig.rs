//! The binary's offline commands against the emulator: `check-config --config PATH` reports one line
//! per check (ok / warn / FAIL with the reason), exits 0 when none failed and 1 otherwise, and changes
//! nothing; `status --config PATH [CLUSTER]` prints the `/aurora status` view as plain text, beside a
//! serving bot that holds the store's lock, and names the configured clusters when asked for another.

use crate::common::*;
use awsim::{IamRule, RuleEffect};

async fn run(sim_url: &str, args: &[&str]) -> (Option<i32>, String, String) {
    run_binary(sim_url, args, &[]).await
}

/// Writes the test config for `options` (the store in `dir`, never created by these commands) and
/// returns its path.
fn write_config(dir: &std::path::Path, options: &Options) -> String {
    write_config_for(dir, options, "http://127.0.0.1:1/api")
}

/// `write_config`, with the Slack Web API at `api_url`.
fn write_config_for(dir: &std::path::Path, options: &Options, api_url: &str) -> String {
    let path = dir.join("bot.toml");
    std::fs::write(&path, config_toml(api_url, &dir.join("bot.db"), options)).unwrap();
    path.to_str().unwrap().to_owned()
}

/// `orders` (with `writer` as its writer record) and `payments`, a global cluster that does not exist.
fn two_clusters(writer: &str) -> Options {
    Options {
        clusters_toml: Some(format!(
            r#"[[clusters]]
name = "orders"
global_cluster_id = "orders-global"
regions = ["us-east-1", "us-west-2"]
hosted_zone_id = "{ZONE}"
writer_record = "{writer}"
reader_record = "{READER_RECORD}"
record_ttl = 1

[[clusters]]
name = "payments"
global_cluster_id = "payments-global"
regions = ["us-east-1", "us-west-2"]
hosted_zone_id = "{ZONE}"
writer_record = "paymentswriter.aurora_private_hosted_zone"
reader_record = "paymentsreader.aurora_private_hosted_zone"
record_ttl = 1"#
        )),
        ..Options::default()
    }
}

async fn emulator() -> awsim::Awsim {
    awsim::start("127.0.0.1:0".parse().unwrap(), awsim::Scenario::two_region_example())
        .await
        .unwrap()
}

/// Every call the emulator saw was a read: no mutating call, no change to any record.
fn nothing_changed(sim: &awsim::Awsim) {
    let calls = sim.admin().calls();
    assert!(!calls.is_empty(), "the emulator was not called");
    for action in MUTATING {
        assert!(sim.admin().calls_to(action).is_empty(), "{action} was called");
    }
    assert!(sim.admin().changes(ZONE).is_empty(), "a record changed");
}

#[tokio::test]
async fn check_config_passes_every_check_of_a_correct_config_and_changes_nothing() {
    let sim = emulator().await;
    let slack = standin::SlackStandIn::start(&standin::Secret::new(BOT_TOKEN))
        .await
        .unwrap();
    let dir = temp_dir("check-config-ok");
    let config = write_config_for(&dir, &Options::default(), &slack.api_url());
    let (code, stdout, stderr) = run(sim.url(), &["check-config", "--config", &config]).await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let checks: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("ok ") || l.starts_with("warn ") || l.starts_with("FAIL "))
        .collect();
    for expected in [
        "ok   config file: ",
        "ok   approval policy of orders: detach: requested by U0ALICE S0ONCALL, approved by U0BOB S0DBA: 1 approval(s); \
         failover: ",
        "ok   Slack secrets: the signing secret and the bot token are resolved",
        "ok   Slack token: Slack accepts it, for workspace T",
        "ok   global cluster: orders-global exists",
        "ok   member in us-east-1: orders-east exists (the writer)",
        "ok   member in us-west-2: orders-west exists (a secondary)",
        "ok   replication lag in us-west-2: orders-west",
        &format!("ok   hosted zone: {ZONE} exists: aurora_private_hosted_zone"),
        &format!("ok   writer record: {WRITER_RECORD} is a CNAME to orders-east.cluster-"),
        &format!("ok   reader record: {READER_RECORD} is a CNAME to orders-east.cluster-ro-"),
        "ok   DNS records: both names are inside zone aurora_private_hosted_zone",
        "ok   Permissions (switchover to us-west-2): the policy simulator allows SwitchoverGlobalCluster",
        "ok   Permissions (failover to us-west-2): the policy simulator allows FailoverGlobalCluster",
        "ok   Permissions (detach to us-west-2): the policy simulator allows RemoveFromGlobalCluster",
    ] {
        assert!(
            checks.iter().any(|l| l.starts_with(expected)),
            "no line starts with {expected:?}:\n{stdout}"
        );
    }
    assert!(
        checks.iter().all(|l| l.starts_with("ok   ")),
        "every check passes:\n{stdout}"
    );
    assert!(
        stdout.contains("cluster orders (global cluster orders-global)"),
        "{stdout}"
    );
    assert!(
        !stdout.contains(SIGNING_SECRET) && !stdout.contains(BOT_TOKEN) && !stderr.contains(BOT_TOKEN),
        "a secret was printed:\n{stdout}\n{stderr}"
    );
    nothing_changed(&sim);
    assert!(!dir.join("bot.db").exists(), "the store was created");
    sim.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn check_config_fails_a_token_slack_refuses_or_one_without_a_scope_and_warns_when_slack_is_out_of_reach() {
    let sim = emulator().await;
    let slack = standin::SlackStandIn::start(&standin::Secret::new("xoxb-another-token"))
        .await
        .unwrap();
    let dir = temp_dir("check-config-token");
    let config = write_config_for(&dir, &Options::default(), &slack.api_url());
    let (code, stdout, _) = run(sim.url(), &["check-config", "--config", &config]).await;
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL Slack token: Slack refused the bot token (invalid_auth: "),
        "{stdout}"
    );
    slack.accept_token(BOT_TOKEN);
    slack.grant_scopes(Some(&["commands", "chat:write"]));
    let (code, stdout, _) = run(sim.url(), &["check-config", "--config", &config]).await;
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL Slack token: the token lacks ")
            && stdout.contains("usergroups:read: add them from manifest.yml"),
        "{stdout}"
    );
    // Without the history scopes and im:write the bot works, less well: a warning.
    slack.grant_scopes(Some(&["commands", "chat:write", "usergroups:read"]));
    let (code, stdout, _) = run(sim.url(), &["check-config", "--config", &config]).await;
    assert_eq!(code, Some(0), "{stdout}");
    assert!(
        stdout.contains("warn Slack token: the token lacks channels:history, groups:history, im:write (the bot works"),
        "{stdout}"
    );
    let config = write_config(&dir, &Options::default());
    let (code, stdout, _) = run(sim.url(), &["check-config", "--config", &config]).await;
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("warn Slack token: "), "{stdout}");
    assert!(!stdout.contains(BOT_TOKEN), "{stdout}");
    sim.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn check_config_fails_a_missing_cluster_a_record_outside_its_zone_and_a_denied_call_naming_each() {
    let sim = emulator().await;
    sim.admin()
        .add_iam_rule(IamRule::new("rds:SwitchoverGlobalCluster", RuleEffect::ExplicitDeny))
        .unwrap();
    let dir = temp_dir("check-config-broken");
    let config = write_config(&dir, &two_clusters("aurorawriteendpoint.elsewhere.internal"));
    let (code, stdout, stderr) = run(sim.url(), &["check-config", "--config", &config]).await;
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    let failed: Vec<&str> = stdout.lines().filter(|l| l.starts_with("FAIL ")).collect();
    let has = |prefix: &str, words: &[&str]| {
        failed
            .iter()
            .any(|l| l.starts_with(prefix) && words.iter().all(|w| l.contains(w)))
    };
    assert!(
        has(
            "FAIL global cluster: payments-global cannot be read",
            &["global_cluster_id"]
        ),
        "{stdout}"
    );
    assert!(
        has(
            "FAIL DNS records: ",
            &[
                "aurorawriteendpoint.elsewhere.internal is not inside hosted zone",
                "writer_record"
            ]
        ),
        "{stdout}"
    );
    assert!(
        has(
            "FAIL writer record: ",
            &["no record named aurorawriteendpoint.elsewhere.internal"]
        ),
        "{stdout}"
    );
    assert!(
        has(
            "FAIL Permissions (switchover to us-west-2): ",
            &["rds:SwitchoverGlobalCluster", "an explicit Deny statement"]
        ),
        "{stdout}"
    );
    // What is right stays ok, in its own cluster's group.
    assert!(stdout.contains("ok   Permissions (failover to us-west-2)"), "{stdout}");
    assert!(stdout.contains("ok   reader record: "), "{stdout}");
    assert!(
        stdout.contains("cluster payments (global cluster payments-global)"),
        "{stdout}"
    );
    assert!(
        stdout.ends_with("failed\n") && !stdout.contains(", 0 failed"),
        "{stdout}"
    );
    nothing_changed(&sim);
    sim.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn check_config_names_the_key_of_an_invalid_file_or_a_missing_secret_and_takes_secrets_from_the_environment() {
    let sim = emulator().await;
    let dir = temp_dir("check-config-invalid");
    let config = write_config(&dir, &Options::default());
    let valid = std::fs::read_to_string(&config).unwrap();
    let cases = [
        (
            valid.replace("poll_interval_ms = 100", "poll_interval_ms = 0"),
            "FAIL config file: ",
            "runbook.poll_interval_ms",
        ),
        (
            valid.replace("request_ttl_secs", "request_tll_secs"),
            "FAIL config file: ",
            "request_tll_secs",
        ),
        (
            valid.replace(&format!("signing_secret = \"{SIGNING_SECRET}\"\n"), ""),
            "FAIL Slack secrets: ",
            "slack.signing_secret",
        ),
    ];
    for (i, (text, prefix, key)) in cases.iter().enumerate() {
        std::fs::write(&config, text).unwrap();
        let (code, stdout, stderr) = run(sim.url(), &["check-config", "--config", &config]).await;
        assert_eq!(code, Some(1), "case {i}: {stdout}\n{stderr}");
        assert!(
            stdout.lines().any(|l| l.starts_with(prefix) && l.contains(key)),
            "case {i}: no {prefix:?} line naming {key}:\n{stdout}"
        );
        assert!(
            !stdout.contains(BOT_TOKEN),
            "case {i}: the token was printed:\n{stdout}"
        );
    }
    // The secrets from the environment instead, as start-up takes them: resolved, never printed.
    let without = valid
        .replace(&format!("signing_secret = \"{SIGNING_SECRET}\"\n"), "")
        .replace(&format!("bot_token = \"{BOT_TOKEN}\"\n"), "");
    std::fs::write(&config, without).unwrap();
    let env = [("SLACK_SIGNING_SECRET", SIGNING_SECRET), ("SLACK_BOT_TOKEN", BOT_TOKEN)];
    let (code, stdout, stderr) = run_binary(sim.url(), &["check-config", "--config", &config], &env).await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("ok   Slack secrets: "), "{stdout}");
    assert!(
        !stdout.contains(BOT_TOKEN) && !stdout.contains(SIGNING_SECRET),
        "{stdout}"
    );
    let (code, stdout, _) = run(sim.url(), &["check-config", "--config", "/nonexistent/bot.toml"]).await;
    assert_eq!(code, Some(1));
    assert!(stdout.contains("FAIL config file: cannot read config file"), "{stdout}");
    let (code, _, stderr) = run(sim.url(), &["check-config"]).await;
    assert_eq!(code, Some(2), "a usage error: {stderr}");
    sim.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_prints_the_status_view_beside_a_serving_bot_for_all_clusters_one_or_none_unknown() {
    let bot = TestBot::start().await;
    // The serving bot's own config and store (it holds the store's lock).
    let config = bot.dir.join("status.toml");
    std::fs::write(
        &config,
        config_toml(&bot.slack.api_url(), &bot.dir.join("bot.db"), &Options::default()),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let (code, stdout, stderr) = run(bot.sim.url(), &["status", "--config", config]).await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    for expected in [
        "orders (global cluster orders-global)",
        "  us-east-1 orders-east writer: available | engine 15.4",
        "  us-west-2 orders-west reader: available | engine 15.4 | lag ",
        &format!("  ok      writer CNAME {WRITER_RECORD} -> orders-east.cluster-"),
        &format!("  ok      reader CNAME {READER_RECORD} -> orders-east.cluster-ro-"),
    ] {
        assert!(stdout.contains(expected), "{expected:?} missing:\n{stdout}");
    }
    assert!(
        !stdout.contains('`') && !stdout.contains(":white_check_mark:") && !stdout.contains('*'),
        "Slack markup in the terminal:\n{stdout}"
    );
    // One cluster by name: the same view.
    let (code, one, _) = run(bot.sim.url(), &["status", "--config", config, "orders"]).await;
    assert_eq!(code, Some(0));
    assert!(one.contains("orders (global cluster orders-global)"), "{one}");
    // A cluster that is not configured: refused, the configured ones named, nothing on stdout.
    let (code, stdout, stderr) = run(bot.sim.url(), &["status", "--config", config, "billing"]).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains("no cluster named billing") && stderr.contains("configured clusters are: orders"),
        "{stderr}"
    );
    for action in MUTATING {
        assert!(bot.sim.admin().calls_to(action).is_empty(), "{action} was called");
    }
    // After a detach, the store (read beside the serving bot, which holds its lock) says where the
    // writes go now, as `/aurora status` does.
    let id = bot.request().await;
    bot.click(BOB, id, true).await;
    bot.finished_run(id, WAIT).await;
    let (code, stdout, stderr) = run(bot.sim.url(), &["status", "--config", config, "orders"]).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains(&format!(
            "  us-west-2 orders-west standalone writer, detached from the global cluster by request #{id}: available"
        )) && stdout.contains("  WARNING orders-east (us-east-1) is still the writer of the global cluster"),
        "{stdout}"
    );
}

#[tokio::test]
async fn status_shows_each_cluster_and_says_which_cannot_be_read() {
    let sim = emulator().await;
    let dir = temp_dir("status-two");
    let config = write_config(&dir, &two_clusters(WRITER_RECORD));
    let (code, stdout, stderr) = run(sim.url(), &["status", "--config", &config]).await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("orders (global cluster orders-global)\n"), "{stdout}");
    assert!(
        stdout.contains("payments (global cluster payments-global)\n  WARNING cannot read the global cluster: "),
        "{stdout}"
    );
    assert!(
        stdout.contains("  MISSING writer CNAME paymentswriter.aurora_private_hosted_zone does not exist"),
        "{stdout}"
    );
    assert!(!dir.join("bot.db").exists(), "the store was created");
    sim.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
