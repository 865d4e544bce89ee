//! The binary as users run it: `demo` completes and exits 0; `serve` with a bad config file stops at
//! start-up naming the key and the reason; bad arguments print the usage and exit 2; every command
//! answers `--help`, and the binary `--version`.

use std::process::Command;

fn bot() -> Command {
    Command::new(env!("CARGO_BIN_EXE_aurora-failover-bot"))
}

#[test]
#[cfg_attr(not(feature = "demo"), ignore = "built without the demo feature")]
fn the_demo_plays_a_whole_failover_and_exits_0() {
    let out = bot().arg("demo").output().unwrap();
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
