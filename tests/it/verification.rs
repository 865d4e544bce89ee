//! Every Slack request is verified before anything else: a forged, stale, future, unsigned or
//! oversized request is refused and causes nothing at all (no Slack call, no AWS call, no record).

use crate::common;
use aurora_failover_bot::store::RequestId;

use aurora_failover_bot::slack::verify;
use aurora_failover_bot::types::Secret;
use common::*;
use standin::SlackSender;

/// Asserts that nothing happened anywhere: Slack, AWS, the store.
async fn nothing_happened(bot: &TestBot) {
    // Give any wrongly started background work a moment to show itself.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // auth.test, made at start-up to learn the workspace, is the only call allowed.
    let calls: Vec<_> = bot
        .slack
        .calls()
        .into_iter()
        .filter(|c| c.method != "auth.test")
        .collect();
    assert!(calls.is_empty(), "Slack was called: {calls:?}");
    assert!(
        bot.sim.admin().calls().is_empty(),
        "AWS was called: {:?}",
        bot.sim.admin().calls()
    );
    assert!(
        bot.store.request(RequestId::new(1)).await.unwrap().is_none(),
        "a request was recorded"
    );
    assert!(
        bot.store.audit_log().await.unwrap().is_empty(),
        "an attempt was recorded"
    );
    assert!(bot.store.outbox_all().await.unwrap().is_empty(), "a message was queued");
}

#[tokio::test]
async fn forged_stale_future_and_unsigned_requests_get_401_and_change_nothing() {
    let bot = TestBot::start().await;
    let url = bot.slack.response_url();
    let body = SlackSender::command_body(ALICE, CHANNEL, "failover orders", &url);
    let now = bot.now();
    let good_sig = |ts: i64| verify::sign(&Secret::new(SIGNING_SECRET), &ts.to_string(), body.as_bytes());
    let forged = verify::sign(&Secret::new("not-the-secret"), &now.to_string(), body.as_bytes());
    let tampered_body = body.replace("failover+orders", "failover+billing");
    type Case<'a> = (&'a str, Vec<(&'a str, String)>, String);
    let cases: Vec<Case> = vec![
        (
            "bad signature",
            vec![
                (verify::TIMESTAMP_HEADER, now.to_string()),
                (verify::SIGNATURE_HEADER, forged),
            ],
            body.clone(),
        ),
        (
            "body changed after signing",
            vec![
                (verify::TIMESTAMP_HEADER, now.to_string()),
                (verify::SIGNATURE_HEADER, good_sig(now)),
            ],
            tampered_body,
        ),
        (
            "stale timestamp",
            vec![
                (verify::TIMESTAMP_HEADER, (now - 301).to_string()),
                (verify::SIGNATURE_HEADER, good_sig(now - 301)),
            ],
            body.clone(),
        ),
        (
            "future timestamp",
            vec![
                (verify::TIMESTAMP_HEADER, (now + 301).to_string()),
                (verify::SIGNATURE_HEADER, good_sig(now + 301)),
            ],
            body.clone(),
        ),
        (
            "missing timestamp",
            vec![(verify::SIGNATURE_HEADER, good_sig(now))],
            body.clone(),
        ),
        (
            "missing signature",
            vec![(verify::TIMESTAMP_HEADER, now.to_string())],
            body.clone(),
        ),
        ("no headers", vec![], body.clone()),
    ];
    for path in ["/slack/commands", "/slack/interactions"] {
        for (what, headers, body) in &cases {
            let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let answer = bot.sender.post_raw(path, &headers, body.clone().into_bytes()).await;
            assert_eq!(answer.status, 401, "{what} on {path}: {answer:?}");
            assert!(!answer.body.contains(SIGNING_SECRET), "the answer leaks the secret");
        }
    }
    nothing_happened(&bot).await;
    // Not even the replay cache remembers a refused request.
    let forged_signature = verify::sign(&Secret::new("not-the-secret"), &now.to_string(), body.as_bytes());
    let later = jiff::Timestamp::now();
    assert!(
        bot.store.first_sighting(&forged_signature, later).await.unwrap(),
        "a refused request's signature was recorded"
    );
    // The same request, correctly signed, is accepted: the refusals above were about the signature.
    let answer = bot.sender.post_signed("/slack/commands", &body, bot.now()).await;
    assert_eq!(answer.status, 200);
}

#[tokio::test]
async fn an_oversized_body_gets_413_before_it_is_read_and_changes_nothing() {
    let bot = TestBot::start().await;
    let url = bot.slack.response_url();
    let mut body = SlackSender::command_body(ALICE, CHANNEL, "failover orders", &url);
    body.push_str("&padding=");
    body.push_str(&"x".repeat(200 * 1024));
    // Correctly signed: size alone is the reason.
    let answer = bot.sender.post_signed("/slack/commands", &body, bot.now()).await;
    assert_eq!(answer.status, 413);
    let answer = bot.sender.post_signed("/slack/interactions", &body, bot.now()).await;
    assert_eq!(answer.status, 413);
    nothing_happened(&bot).await;
}

#[tokio::test]
async fn health_answers_while_serving() {
    let bot = TestBot::start().await;
    let answer = bot.sender.post_raw("/healthz", &[], vec![]).await;
    // POST is not the health route's method; GET is.
    assert_eq!(answer.status, 405);
    let resp = reqwest::get(format!("http://127.0.0.1:{}/healthz", bot.port))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}
