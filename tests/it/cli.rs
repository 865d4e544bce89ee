//! The binary as users run it: `demo` completes and exits 0, needing and warning of nothing; `serve`
//! with a bad config file stops at start-up naming the key and the reason; `serve --log-format json`
//! writes JSON lines that carry a run's id and cluster; `healthcheck` exits 0 or 1 with the reason;
//! bad arguments print the usage and exit 2; every command answers `--help`, and the binary `--version`.

use crate::common::process::{BotProcess, free_port};
use crate::common::*;
use std::process::Command;
use std::time::{Duration, Instant};

fn bot() -> Command {
    Command::new(env!("CARGO_BIN_EXE_aurora-failover-bot"))
}

/// `command` on a machine with no AWS configuration: no `AWS_*` variable (so
/// `AWS_EC2_METADATA_DISABLED` is unset too), no `~/.aws`, no `RUST_LOG`, and an instance metadata
/// service that is not there (nothing listens on port 1).
fn without_aws_configuration(command: &mut Command, home: &std::path::Path) {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("AWS_") {
            command.env_remove(name);
        }
    }
    command
        .env_remove("RUST_LOG")
        .env("HOME", home)
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:1");
}

#[test]
#[cfg_attr(not(feature = "demo"), ignore = "built without the demo feature")]
fn the_demo_plays_a_whole_failover_and_exits_0() {
    let home = temp_dir("demo-home");
    let mut demo = bot();
    demo.arg("demo");
    without_aws_configuration(&mut demo, &home);
    let out = demo.output().unwrap();
    let _ = std::fs::remove_dir_all(&home);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "demo failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for expected in [
        "/aurora status",
        "/aurora failover orders",
        "cannot approve your own request",
        "You approved request #1",
        "*Switchover complete*",
        "demo: the failover completed",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in the demo's output:\n{stdout}"
        );
    }
    assert!(
        !stdout.contains("xoxb-demo-token") && !stderr.contains("xoxb-demo-token"),
        "the token was printed"
    );
    // It sets its Region, endpoints and credentials itself: no provider chain runs, so nothing warns.
    for line in stderr.lines().chain(stdout.lines()) {
        assert!(
            !line.contains(" WARN ") && !line.contains(" ERROR "),
            "the demo logged {line:?}\nstderr:\n{stderr}"
        );
    }
}

#[test]
fn a_bad_config_file_stops_start_up_with_the_key_and_the_reason() {
    let dir = std::env::temp_dir().join(format!("afb-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let example = include_str!("../../config.example.toml");
    let cases = [
        (
            example.replace("request_ttl_secs", "request_tll_secs"),
            "request_tll_secs",
        ),
        (
            example.replace("poll_interval_ms = 2000", "poll_interval_ms = 0"),
            "runbook.poll_interval_ms",
        ),
        (
            example.replace("incident_channel = \"C0INCIDENT\"\n", ""),
            "incident_channel",
        ),
        // Valid file, but no Slack secret anywhere.
        (example.to_owned(), "slack.signing_secret"),
        // A bot token pasted under the wrong key, and as a key: named by its key, never printed.
        (
            example.replace("\"C0INCIDENT\"", "\"xoxb-1111-2222-PASTEDSECRET\""),
            "incident_channel",
        ),
        (
            example.replace("[slack]\n", "[slack]\nxoxb-1111-2222-PASTEDSECRET = 1\n"),
            "xoxb-(hidden)",
        ),
    ];
    for (i, (text, key)) in cases.iter().enumerate() {
        let path = dir.join(format!("config-{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let out = bot()
            .args(["serve", "--config"])
            .arg(&path)
            .env_remove("SLACK_SIGNING_SECRET")
            .env_remove("SLACK_BOT_TOKEN")
            .env("AWS_ACCESS_KEY_ID", "x")
            .env("AWS_SECRET_ACCESS_KEY", "x")
            .env("AWS_REGION", "us-east-1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "case {i}: {stderr}");
        assert!(stderr.contains(key), "case {i}: {key} not named in {stderr}");
        assert!(!stderr.contains("PASTEDSECRET"), "case {i}: a secret printed: {stderr}");
    }
    let out = bot()
        .args(["serve", "--config"])
        .arg(dir.join("nope.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read config file"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn audit_reads_a_store_and_never_changes_a_file_that_is_not_one() {
    let dir = std::env::temp_dir().join(format!("afb-audit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("bot.toml");
    let example = include_str!("../../config.example.toml");
    std::fs::write(
        &config,
        example.replace("path = \"aurora-failover-bot.db\"", "path = \"store.db\""),
    )
    .unwrap();
    let audit = || {
        bot()
            .current_dir(&dir)
            .args(["audit", "--config", "bot.toml"])
            .output()
            .unwrap()
    };
    let tables = |path: &std::path::Path| -> Vec<String> {
        let c = rusqlite::Connection::open(path).unwrap();
        let mut q = c.prepare("SELECT name FROM sqlite_master ORDER BY name").unwrap();
        q.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
    };
    let store = dir.join("store.db");
    // Another program's database: refused, and left as it was.
    rusqlite::Connection::open(&store)
        .unwrap()
        .execute_batch("CREATE TABLE foo (x INTEGER)")
        .unwrap();
    let out = audit();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("config key store.path") && stderr.contains("not an aurora-failover-bot store"),
        "{stderr}"
    );
    assert_eq!(tables(&store), ["foo"]);
    // An empty file stays empty.
    std::fs::write(&store, b"").unwrap();
    assert_eq!(audit().status.code(), Some(2));
    assert_eq!(std::fs::metadata(&store).unwrap().len(), 0);
    // A file that is not a database at all: refused, untouched.
    std::fs::write(&store, b"not a database\n").unwrap();
    let out = audit();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a database"));
    assert_eq!(std::fs::read(&store).unwrap(), b"not a database\n");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_arguments_are_refused_with_the_usage_and_exit_2() {
    for args in [
        vec![],
        vec!["launch"],
        vec!["serve"],
        vec!["serve", "--config"],
        vec!["demo", "--fast"],
        vec!["audit"],
        vec!["audit", "--config", "bot.toml", "--format", "csv"],
        vec!["audit", "--config", "bot.toml", "--since", "last tuesday"],
        vec!["audit", "--config", "bot.toml", "--since", "99999999999d"],
        vec!["audit", "--config", "bot.toml", "--since", "-5h"],
        vec!["audit", "--config", "bot.toml", "--since", "2026-12-01T05:48:20"],
        vec!["audit", "--config", "bot.toml", "--since", "2026-02-30"],
        vec!["healthcheck"],
        vec![
            "healthcheck",
            "--url",
            "http://127.0.0.1:3000/healthz",
            "--config",
            "bot.toml",
        ],
        vec!["serve", "--config", "bot.toml", "--log-format", "xml"],
        vec!["check-config"],
        vec!["check-config", "--config"],
        vec!["check-config", "--config", "bot.toml", "orders"],
        vec!["status"],
        vec!["status", "orders"],
        vec!["status", "--config", "bot.toml", "orders", "payments"],
    ] {
        let out = bot().args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        // clap's message: the usage, or (for a bad value) what is wrong and where to read the usage.
        assert!(
            stderr.contains("Usage:") || stderr.contains("try '--help'"),
            "{args:?}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{args:?}: usage goes to stderr");
    }
    let out = bot()
        .args(["audit", "--config", "bot.toml", "--format", "csv"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("jsonl") && stderr.contains("table"),
        "the allowed formats are named: {stderr}"
    );
}

#[test]
fn every_command_answers_help_and_the_binary_its_version() {
    for args in [
        vec!["--help"],
        vec!["-h"],
        vec!["help"],
        vec!["serve", "--help"],
        vec!["demo", "--help"],
        vec!["audit", "--help"],
        vec!["help", "audit"],
        vec!["healthcheck", "--help"],
        vec!["check-config", "--help"],
        vec!["status", "--help"],
    ] {
        let out = bot().args(&args).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("Usage:"), "{args:?}: {stdout}");
    }
    let out = bot().args(["audit", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for expected in ["--config <PATH>", "--since <TIME>", "--format", "jsonl", "table", "24h"] {
        assert!(
            help.contains(expected),
            "{expected:?} missing from audit --help:\n{help}"
        );
    }
    let out = bot().arg("--version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("aurora-failover-bot {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn the_slack_manifest_declares_the_command_the_routes_and_the_scopes_the_bot_uses() {
    let manifest = include_str!("../../manifest.yml");
    for expected in [
        "command: /aurora",
        "/slack/commands",
        "/slack/interactions",
        "- commands",
        "- chat:write",
        "- usergroups:read",
        "is_enabled: true",
    ] {
        assert!(manifest.contains(expected), "manifest.yml lacks {expected:?}");
    }
}

/// Runs `healthcheck ARGS` without blocking the runtime the bot under test runs on.
async fn healthcheck(args: &[&str]) -> (Option<i32>, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_aurora-failover-bot"))
        .arg("healthcheck")
        .args(args)
        .output()
        .await
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

#[tokio::test]
async fn healthcheck_exits_0_when_the_bot_answers_and_1_with_the_reason_otherwise() {
    let bot = TestBot::start().await;
    let url = format!("http://127.0.0.1:{}/healthz", bot.port);
    let (code, stdout, stderr) = healthcheck(&["--url", &url]).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("answered 200"), "{stdout}");
    // From a config file: its listen address, an unspecified one reached on loopback.
    let config = bot.dir.join("probe.toml");
    let toml = config_toml(&bot.slack.api_url(), &bot.dir.join("bot.db"), &Options::default())
        .replace("127.0.0.1:0", &format!("0.0.0.0:{}", bot.port));
    std::fs::write(&config, toml).unwrap();
    let (code, _, stderr) = healthcheck(&["--config", config.to_str().unwrap()]).await;
    assert_eq!(code, Some(0), "{stderr}");
    // A bot that answers, but not 200.
    let other = format!("http://127.0.0.1:{}/nope", bot.port);
    let (code, _, stderr) = healthcheck(&["--url", &other]).await;
    assert_eq!(code, Some(1));
    assert!(stderr.contains("answered HTTP 404"), "{stderr}");
    // Nothing listening.
    let nothing = format!("http://127.0.0.1:{}/healthz", free_port());
    let (code, stdout, stderr) = healthcheck(&["--url", &nothing]).await;
    assert_eq!(code, Some(1));
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains("unhealthy") && stderr.contains(&nothing) && stderr.contains("refused"),
        "{stderr}"
    );
    // A config file that cannot be read: said, and unhealthy.
    let (code, _, stderr) = healthcheck(&["--config", "/nonexistent/bot.toml"]).await;
    assert_eq!(code, Some(1));
    assert!(stderr.contains("cannot read config file"), "{stderr}");
}

/// The spans a JSON log line was written in (tracing-subscriber's `spans`: outermost first).
fn spans(line: &serde_json::Value) -> Vec<&serde_json::Value> {
    line["spans"].as_array().map(|s| s.iter().collect()).unwrap_or_default()
}

/// Asks for a detach of `orders` as ALICE, has BOB approve it, and waits until the run has ended.
pub(crate) async fn detach_through(process: &BotProcess, slack: &standin::SlackStandIn) {
    let store = process.store();
    let now = jiff::Timestamp::now().as_second();
    let answer = process
        .sender()
        .command(
            ALICE,
            CHANNEL,
            "failover orders --mode detach",
            &slack.response_url(),
            now,
        )
        .await;
    assert!(answer.text().starts_with("Request #1"), "{answer:?}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let ts = loop {
        let request = store.request(1.into()).await.unwrap().unwrap();
        let delivered = match request.message {
            Some(m) => store.outbox_item(m).await.unwrap().and_then(|i| i.delivered_ts),
            None => None,
        };
        if let Some(ts) = delivered {
            break ts;
        }
        assert!(Instant::now() < deadline, "the request was not posted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    process
        .sender()
        .click(BOB, CHANNEL, &ts, "approve", "1", &slack.response_url(), now)
        .await;
    loop {
        let run = store.run_of_request(1.into()).await.unwrap();
        if run.as_ref().is_some_and(|r| !r.state.is_open()) {
            return;
        }
        assert!(Instant::now() < deadline, "the run did not end: {}", process.log_text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The lines of `log` written in a span named `name`, with that span.
fn in_span<'a>(lines: &'a [serde_json::Value], name: &str) -> Vec<(&'a serde_json::Value, &'a serde_json::Value)> {
    lines
        .iter()
        .filter_map(|l| spans(l).into_iter().find(|s| s["name"] == name).map(|s| (l, s)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_a_line_and_a_runs_lines_carry_its_id_and_cluster() {
    let mut options = Options::default();
    options.scenario.timings = options.timings;
    let sim = awsim::start("127.0.0.1:0".parse().unwrap(), options.scenario.clone())
        .await
        .unwrap();
    let slack = standin::SlackStandIn::start(&standin::Secret::new(BOT_TOKEN))
        .await
        .unwrap();
    let dir = temp_dir("json-logs");
    let mut process = BotProcess::new(&sim, &slack, &dir, &options);
    process.args = vec!["--log-format".into(), "json".into()];
    process.start().await;
    detach_through(&process, &slack).await;
    let (_, exit) = process.terminate().await;
    assert!(exit.success());
    let log = process.log_text();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let run_lines = in_span(&lines, "run");
    assert!(
        run_lines.iter().any(|(l, _)| l["fields"]["message"] == "run succeeded"),
        "no line of the run says it succeeded:\n{log}"
    );
    for (line, run) in &run_lines {
        assert_eq!(run["run_id"], "1", "{line}");
        assert_eq!(run["cluster"], "orders", "{line}");
    }
    let request_lines = in_span(&lines, "request");
    assert!(
        request_lines.iter().any(|(l, _)| l["fields"]["message"] == "command"),
        "the command's line is not in a request span:\n{log}"
    );
    let ids: std::collections::BTreeSet<&str> = request_lines
        .iter()
        .map(|(_, s)| s["request_id"].as_str().expect("a request id"))
        .collect();
    assert!(ids.iter().all(|id| id.len() == 16), "{ids:?}");
    assert!(ids.len() >= 2, "the command and the click are two requests: {ids:?}");
    slack.stop();
    sim.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
