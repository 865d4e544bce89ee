//! `GET /metrics`: the Prometheus text format (0.0.4), read after what an operator alerts on (a forged
//! request, a whole failover, an AWS error), with a small parser of the format written here.

use crate::common;

use aurora_failover_bot::slack::verify;
use aurora_failover_bot::store::RunState;
use aurora_failover_bot::types::Secret;
use awsim::{FaultCode, FaultSpec};
use common::*;
use standin::SlackSender;
use std::collections::BTreeMap;
use std::time::Duration;

/// One scrape: each sample (`name{label="value",...}` as written) and its value.
struct Scrape {
    samples: BTreeMap<String, f64>,
    text: String,
}

impl Scrape {
    /// The value of the sample `name` with exactly these labels (in any order), if present.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut want: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        want.sort();
        self.samples.iter().find_map(|(key, value)| {
            let (n, l) = key.split_once('{').unwrap_or((key, "}"));
            let mut have: Vec<String> = l
                .trim_end_matches('}')
                .split(',')
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect();
            have.sort();
            (n == name && have == want).then_some(*value)
        })
    }

    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("no {name} {labels:?} in:\n{}", self.text))
    }
}

/// Parses the Prometheus text format (version 0.0.4): `# HELP` and `# TYPE` lines, and sample lines
/// `name[{labels}] value` with a number for the value, each of a family whose TYPE came before it (a
/// histogram's samples end in `_bucket`, `_sum` or `_count`; a counter's name ends in `_total`).
fn parse(text: &str) -> Scrape {
    let mut samples = BTreeMap::new();
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    for line in text.lines() {
        if let Some(comment) = line.strip_prefix("# ") {
            let mut words = comment.splitn(3, ' ');
            match (words.next(), words.next(), words.next()) {
                (Some("HELP"), Some(_), Some(_)) => {}
                (Some("TYPE"), Some(name), Some(t)) => {
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&t),
                        "unknown type in {line}"
                    );
                    types.insert(name.to_owned(), t.to_owned());
                }
                _ => panic!("not a HELP or TYPE line: {line}"),
            }
            continue;
        }
        let (key, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value: {line}"));
        let name = &key[..key.find('{').unwrap_or(key.len())];
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line}"
        );
        assert!(name.starts_with("aurora_failover_bot_"), "no prefix: {line}");
        let histogram = |f: &&str| types.get(*f).is_some_and(|t| t == "histogram");
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(histogram))
            .unwrap_or(name);
        let Some(t) = types.get(family) else {
            panic!("no TYPE before {line}");
        };
        assert!(
            t != "counter" || name.ends_with("_total"),
            "a counter not ending in _total: {line}"
        );
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in {line}"));
        samples.insert(key.to_owned(), value);
    }
    Scrape {
        samples,
        text: text.to_owned(),
    }
}

async fn scrape(bot: &TestBot) -> Scrape {
    let resp = reqwest::get(format!("http://127.0.0.1:{}/metrics", bot.port))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    parse(&resp.text().await.unwrap())
}

/// Scrapes until `done` holds (a gauge settles once the run's task has ended), or panics.
async fn scrape_until(bot: &TestBot, done: impl Fn(&Scrape) -> bool) -> Scrape {
    for _ in 0..(WAIT.as_millis() / 50) {
        let s = scrape(bot).await;
        if done(&s) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let s = scrape(bot).await;
    panic!("the metrics did not settle:\n{}", s.text);
}

#[tokio::test]
async fn metrics_show_a_forged_request_and_a_whole_failover_by_cluster_mode_and_step() {
    let bot = TestBot::start().await;
    let url = bot.slack.response_url();
    let body = SlackSender::command_body(ALICE, CHANNEL, "status", &url);
    let now = bot.now().to_string();
    let forged = verify::sign(&Secret::new("not-the-secret"), &now, body.as_bytes());
    let headers = [
        (verify::TIMESTAMP_HEADER, now.as_str()),
        (verify::SIGNATURE_HEADER, &forged),
    ];
    let answer = bot
        .sender
        .post_raw("/slack/commands", &headers, body.into_bytes())
        .await;
    assert_eq!(answer.status, 401);

    let id = bot.request().await;
    bot.click(BOB, id, true).await;
    assert_eq!(bot.finished_run(id, WAIT).await.state, RunState::Succeeded);
    bot.slack_settled().await;
    let m = scrape_until(&bot, |s| {
        s.get("aurora_failover_bot_runs_in_progress", &[]) == Some(0.0)
            && s.get("aurora_failover_bot_outbox_depth", &[]) == Some(0.0)
    })
    .await;

    let requests = "aurora_failover_bot_slack_requests_total";
    assert_eq!(
        m.value(requests, &[("route", "commands"), ("outcome", "bad_signature")]),
        1.0
    );
    assert!(m.value(requests, &[("route", "commands"), ("outcome", "ok")]) >= 1.0);
    assert!(m.value(requests, &[("route", "interactions"), ("outcome", "ok")]) >= 1.0);
    // Every answer on the Slack routes is timed, the refused one included.
    let acks = m.value("aurora_failover_bot_slack_ack_seconds_count", &[("route", "commands")]);
    assert!(acks >= 2.0, "{acks}");
    let within_3s = m.value(
        "aurora_failover_bot_slack_ack_seconds_bucket",
        &[("route", "commands"), ("le", "3")],
    );
    assert_eq!(within_3s, acks, "a command took longer than Slack's 3 s");

    let orders =
        |mode: &'static str, outcome: &'static str| [("cluster", "orders"), ("mode", mode), ("outcome", outcome)];
    assert_eq!(
        m.value(
            "aurora_failover_bot_failover_requests_total",
            &orders("detach", "requested")
        ),
        1.0
    );
    assert_eq!(
        m.value(
            "aurora_failover_bot_failover_requests_total",
            &orders("detach", "approved")
        ),
        1.0
    );
    assert_eq!(
        m.value("aurora_failover_bot_runs_total", &orders("detach", "succeeded")),
        1.0
    );
    // The series alerts watch exist from the start, at zero, so the first failure is an increase.
    assert_eq!(
        m.value("aurora_failover_bot_runs_total", &orders("detach", "failed")),
        0.0
    );

    for step in [
        "precheck",
        "detach",
        "wait_writable",
        "update_dns",
        "wait_insync",
        "verify",
    ] {
        let labels = [("step", step), ("mode", "detach")];
        assert_eq!(
            m.value("aurora_failover_bot_step_duration_seconds_count", &labels),
            1.0,
            "{step}"
        );
        assert!(m.value("aurora_failover_bot_step_duration_seconds_sum", &labels) >= 0.0);
    }
    let delivered = [("method", "chat.postMessage"), ("outcome", "delivered")];
    assert!(m.value("aurora_failover_bot_slack_deliveries_total", &delivered) >= 1.0);
    assert_eq!(m.value("aurora_failover_bot_outbox_depth", &[]), 0.0);
    assert_eq!(m.value("aurora_failover_bot_runs_in_progress", &[]), 0.0);
    // Every operation is in a committed transaction; a run's writes are many.
    let commits = m.value("aurora_failover_bot_store_commits_total", &[]);
    let operations = m.value("aurora_failover_bot_store_operations_total", &[]);
    assert!(
        commits >= 10.0 && operations >= commits,
        "{commits} commits, {operations} operations"
    );
    // No secret, nor a recognisable piece of one, is in any metric.
    for secret in [SIGNING_SECRET, BOT_TOKEN] {
        for piece in secret.as_bytes().windows(6) {
            let piece = std::str::from_utf8(piece).unwrap();
            assert!(!m.text.contains(piece), "{piece} of a secret is in the metrics");
        }
    }
}

#[tokio::test]
async fn an_aws_error_injected_in_the_emulator_is_counted_by_action_and_code() {
    let bot = TestBot::start().await;
    let fault = |error| FaultSpec {
        action: "DescribeGlobalClusters".into(),
        region: None,
        error: Some(error),
        delay_ms: None,
        delay_response_ms: None,
        count: None,
    };
    bot.sim.admin().inject(fault(FaultCode::Throttling)).unwrap();
    let (_, url) = bot.command(ALICE, "status").await;
    assert!(bot.answer_at(&url).await.contains("AWS is throttling"));
    bot.sim.admin().clear_faults();
    bot.sim.admin().inject(fault(FaultCode::AccessDenied)).unwrap();
    tokio::time::sleep(Duration::from_millis(1_100)).await; // past the shared read's freshness
    let (_, url) = bot.command(ALICE, "status").await;
    assert!(bot.answer_at(&url).await.contains("not allowed to call"));

    let m = scrape(&bot).await;
    let errors = "aurora_failover_bot_aws_errors_total";
    let action = ("action", "rds:DescribeGlobalClusters");
    assert!(m.value(errors, &[action, ("code", "Throttling")]) >= 1.0);
    assert!(m.value(errors, &[action, ("code", "AccessDenied")]) >= 1.0);
    // Labels are codes, never AWS's message.
    assert!(!m.text.contains("Rate exceeded"), "{}", m.text);
}
