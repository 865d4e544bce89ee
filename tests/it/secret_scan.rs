//! The Slack secrets never show: a full failover through the real binary with logging at its most
//! verbose (`RUST_LOG=trace`, every crate), plus the requests that make errors (a forged signature, a
//! stale one, an unknown command, an unknown cluster), and no part of the signing secret or the bot
//! token longer than a few characters appears in any log line, metric, Slack message, HTTP answer or
//! audit line.

use crate::common::process::BotProcess;
use crate::common::*;
use std::time::Duration;

/// A random string of `n` letters and digits: distinctive, so that any 6 characters of it found in the
/// output came from it.
fn random_alnum(n: usize) -> String {
    std::iter::repeat_with(fastrand::alphanumeric).take(n).collect()
}

/// Every window of 6 characters of `secret`'s random part: a leak of any of them is a leak.
fn pieces(random_part: &str) -> Vec<String> {
    let chars: Vec<char> = random_part.chars().collect();
    chars.windows(6).map(|w| w.iter().collect()).collect()
}

/// The places `haystack` shows a piece of a secret, with some context, for the failure message.
fn leaks(what: &str, haystack: &str, pieces: &[String]) -> Vec<String> {
    pieces
        .iter()
        .filter_map(|p| {
            haystack.find(p.as_str()).map(|at| {
                let from = haystack.floor_char_boundary(at.saturating_sub(60));
                let to = haystack.ceil_char_boundary((at + 60).min(haystack.len()));
                format!("{what}: {p:?} in …{}…", &haystack[from..to])
            })
        })
        .collect()
}

async fn get(url: String) -> String {
    match reqwest::get(url).await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(e) => e.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_part_of_a_slack_secret_shows_in_logs_metrics_messages_answers_or_the_audit() {
    let signing = random_alnum(32);
    let token_random = random_alnum(40);
    let token = format!("xoxb-{token_random}");
    let mut options = Options::default();
    options.scenario.timings = options.timings;
    let sim = awsim::start("127.0.0.1:0".parse().unwrap(), options.scenario.clone())
        .await
        .unwrap();
    let slack = standin::SlackStandIn::start(&standin::Secret::new(&token))
        .await
        .unwrap();
    let dir = temp_dir("secret-scan");
    let mut process = BotProcess::new(&sim, &slack, &dir, &options);
    process.use_secrets(&signing, &token);
    process.rust_log = "trace".into();
    process.start().await;
    let base = format!("http://127.0.0.1:{}", process.port);
    // Requests that are refused or answered with an error.
    let now = jiff::Timestamp::now().as_second();
    let forged = standin::SlackSender::new(&base, &standin::Secret::new(random_alnum(32)));
    let mut answers = Vec::new();
    for (sender, text, at) in [
        (&forged, "status", now),
        (&process.sender(), "status", now - 3600),
        (&process.sender(), "teleport orders", now),
        (&process.sender(), "failover billing", now),
    ] {
        let answer = sender.command(ALICE, CHANNEL, text, &slack.response_url(), at).await;
        answers.push(format!("{answer:?}"));
    }
    crate::cli::detach_through(&process, &slack).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let metrics = get(format!("{base}/metrics")).await;
    let ready = get(format!("{base}/readyz")).await;
    let (_, exit) = process.terminate().await;
    assert!(exit.success());
    let audit = std::process::Command::new(env!("CARGO_BIN_EXE_aurora-failover-bot"))
        .args(["audit", "--config"])
        .arg(process.config_path())
        .output()
        .unwrap();
    let log = process.log_text();
    assert!(
        log.lines().count() > 200 && log.contains("TRACE"),
        "not the most verbose logging ({} lines)",
        log.lines().count()
    );
    let messages: Vec<String> = slack.calls().iter().map(|c| c.body.to_string()).collect();
    assert!(
        messages.iter().any(|m| m.contains("Failover request #1")),
        "the failover was not posted"
    );
    let everything = [
        ("log", log),
        ("metrics", metrics),
        ("readyz", ready),
        ("answers", answers.join("\n")),
        ("Slack messages", messages.join("\n")),
        ("audit", String::from_utf8_lossy(&audit.stdout).into_owned()),
        ("audit errors", String::from_utf8_lossy(&audit.stderr).into_owned()),
    ];
    // The scan itself finds a piece of a secret cut out of its middle.
    let middle = &token_random[10..17];
    assert_eq!(
        leaks("self-check", &format!("a {middle} b"), &pieces(&token_random)).len(),
        2
    );
    let mut found = Vec::new();
    for (what, text) in &everything {
        found.extend(leaks(what, text, &pieces(&signing)));
        found.extend(leaks(what, text, &pieces(&token_random)));
    }
    assert!(found.is_empty(), "secrets leaked:\n{}", found.join("\n"));
    slack.stop();
    sim.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
