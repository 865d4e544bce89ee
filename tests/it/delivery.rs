//! Delivery within Slack's rules: a response_url carries at most 5 answers within 30 minutes of its
//! command, after which the answer goes to the same person as an ephemeral message or a direct message
//! (and the outbox records which); an approval request Slack refuses to post (`channel_not_found`,
//! `is_archived`, a refused token) is told to the requester at once and does not hold the cluster.

use crate::common::*;
use aurora_failover_bot::ports::Clock;
use aurora_failover_bot::store::{OutboxItem, Outgoing, RequestState, VIA_DM, VIA_EPHEMERAL, VIA_RESPONSE_URL};
use standin::Failure;
use std::time::Duration;

/// A command whose answer is queued in the outbox (the plan of a dry run). A status answer is not:
/// it is posted directly (see `a_status_answer_is_posted_directly_...`).
const DRY_RUN: &str = "failover orders --dry-run";

/// The outbox items answering through `url`, in order.
async fn answers_for(bot: &TestBot, url: &str) -> Vec<OutboxItem> {
    let all = bot.store.outbox_all().await.unwrap();
    all.into_iter()
        .filter(|i| i.response_url.as_deref() == Some(url))
        .collect()
}

/// Queues an answer for `url` as the bot does (its ordering key, an ephemeral response).
async fn queue_answer(bot: &TestBot, url: &str, text: &str) {
    let body = serde_json::json!({"response_type": "ephemeral", "replace_original": false, "text": text});
    bot.store
        .enqueue(
            &Outgoing {
                ordering_key: &format!("respond:{url}"),
                kind: "respond",
                channel: None,
                target: None,
                response_url: Some(url),
                body: &body.to_string(),
                dedup_key: None,
                fence: None,
            },
            bot.clock.now(),
        )
        .await
        .unwrap();
}

/// Takes Slack down, types `command`, and waits until its answer was tried (and refused) on its
/// response_url; returns that url. Slack stays down.
async fn asked_during_an_outage(bot: &TestBot, command: &str) -> String {
    bot.slack.outage(Failure::Unavailable);
    let (answer, url) = bot.command(ALICE, command).await;
    assert_eq!(answer.status, 200);
    bot.slack
        .wait_for(WAIT, |calls| {
            calls
                .iter()
                .any(|c| c.method == "response" && c.status == 503)
                .then_some(())
        })
        .await
        .expect("the answer was tried during the outage");
    url
}

/// Waits until every answer for `url` is delivered; returns them.
async fn delivered_answers(bot: &TestBot, url: &str, n: usize) -> Vec<OutboxItem> {
    for _ in 0..(WAIT.as_millis() / 20) {
        let items = answers_for(bot, url).await;
        if items.len() >= n && items.iter().all(|i| i.state == "delivered") {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "the answers for {url} were not delivered: {:#?}",
        answers_for(bot, url).await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_retried_past_thirty_minutes_goes_out_as_an_ephemeral_message() {
    let bot = TestBot::start().await;
    // Slack is down when the dry run's answer (queued in the outbox) is ready, and stays down for
    // more than 30 minutes.
    let url = asked_during_an_outage(&bot, DRY_RUN).await;
    bot.clock.advance(Duration::from_secs(31 * 60));
    bot.slack.end_outage();
    let items = delivered_answers(&bot, &url, 1).await;
    assert_eq!(
        items[0].via.as_deref(),
        Some(VIA_EPHEMERAL),
        "the record says which way: {items:#?}"
    );
    assert!(
        bot.slack.responses_to(&url).is_empty(),
        "not retried into the expired response_url"
    );
    let ephemeral = bot.slack.delivered("chat.postEphemeral");
    assert_eq!(ephemeral.len(), 1, "{ephemeral:#?}");
    assert_eq!(ephemeral[0].field("user"), Some(ALICE));
    assert_eq!(ephemeral[0].field("channel"), Some(CHANNEL));
    assert!(!ephemeral[0].text().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sixth_answer_to_one_response_url_goes_out_another_way() {
    let bot = TestBot::start().await;
    let (_, url) = bot.command(ALICE, DRY_RUN).await;
    delivered_answers(&bot, &url, 1).await;
    for n in 2..=6 {
        queue_answer(&bot, &url, &format!("answer {n}")).await;
    }
    let items = delivered_answers(&bot, &url, 6).await;
    let via: Vec<_> = items.iter().map(|i| i.via.as_deref().unwrap_or_default()).collect();
    assert_eq!(
        via,
        [VIA_RESPONSE_URL; 5]
            .into_iter()
            .chain([VIA_EPHEMERAL])
            .collect::<Vec<_>>()
    );
    assert_eq!(bot.slack.responses_to(&url).len(), 5, "Slack's limit: 5 posts");
    let ephemeral = bot.slack.delivered("chat.postEphemeral");
    assert_eq!(ephemeral.len(), 1);
    assert_eq!(ephemeral[0].text(), "answer 6");
    // Where an ephemeral message is refused too, the answer goes as a direct message.
    bot.slack
        .refuse("chat.postEphemeral", CHANNEL, Some("user_not_in_channel"));
    queue_answer(&bot, &url, "answer 7").await;
    let items = delivered_answers(&bot, &url, 7).await;
    assert_eq!(items[6].via.as_deref(), Some(VIA_DM));
    let opened = bot.slack.delivered("conversations.open");
    assert_eq!(opened.len(), 1);
    assert_eq!(opened[0].field("users"), Some(ALICE));
    let dm = bot
        .slack
        .delivered("chat.postMessage")
        .into_iter()
        .find(|c| c.text() == "answer 7")
        .expect("the direct message");
    assert_ne!(dm.field("channel"), Some(CHANNEL));
    assert_eq!(bot.slack.responses_to(&url).len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_slack_refuses_on_its_response_url_goes_out_as_an_ephemeral_message() {
    let bot = TestBot::start().await;
    // Slack says the response_url is used up or expired sooner than the bot counted.
    bot.slack.refuse("response", "", Some("expired_url"));
    let (_, url) = bot.command(ALICE, DRY_RUN).await;
    let items = delivered_answers(&bot, &url, 1).await;
    assert_eq!(items[0].via.as_deref(), Some(VIA_EPHEMERAL), "{items:#?}");
    let ephemeral = bot.slack.delivered("chat.postEphemeral");
    assert_eq!(ephemeral.len(), 1, "{ephemeral:#?}");
    assert_eq!(ephemeral[0].field("user"), Some(ALICE));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_answer_is_posted_directly_retried_through_a_blip_and_goes_another_way_when_its_url_is_refused() {
    let bot = TestBot::start().await;
    let url = asked_during_an_outage(&bot, "status").await;
    bot.slack.end_outage();
    let told = bot
        .answer_containing(&url, "orders")
        .await
        .expect("retried after the blip");
    assert!(told.starts_with("Status of orders"), "{told}");
    assert!(
        answers_for(&bot, &url).await.is_empty(),
        "a status answer records nothing: not queued in the store"
    );
    // Slack refuses the response_url itself: the answer goes as an ephemeral message instead.
    bot.slack.refuse("response", "", Some("expired_url"));
    let (_, url) = bot.command(ALICE, "status").await;
    let ephemeral = bot
        .slack
        .wait_for(WAIT, |calls| {
            calls
                .iter()
                .find(|c| c.method == "chat.postEphemeral" && c.status == 200)
                .cloned()
        })
        .await
        .expect("an ephemeral answer");
    assert_eq!(ephemeral.field("user"), Some(ALICE));
    assert_eq!(ephemeral.field("channel"), Some(CHANNEL));
    assert!(ephemeral.text().contains("orders"), "{:?}", ephemeral.text());
    assert!(answers_for(&bot, &url).await.is_empty());
}

/// Asks for a failover while Slack refuses the approval request's post as `setup` arranges; checks
/// that the requester is told why (the text holding `reason`), that nothing said "posted", and that
/// the request does not hold the cluster once `fix` is done.
async fn requester_is_told(setup: impl Fn(&standin::SlackStandIn), reason: &str, fix: impl Fn(&standin::SlackStandIn)) {
    let bot = TestBot::start().await;
    setup(&bot.slack);
    let (answer, url) = bot.command(ALICE, "failover orders --mode detach").await;
    assert!(answer.text().starts_with("Request #1"), "{answer:?}");
    assert!(
        !answer.text().contains("is posted"),
        "nothing says posted before Slack accepts it: {answer:?}"
    );
    let told = bot
        .answer_containing(&url, "was not posted")
        .await
        .expect("the requester is told");
    assert!(told.contains(reason), "{told}");
    assert!(!told.contains(BOT_TOKEN), "never the token: {told}");
    assert_eq!(bot.request_state(1).await.state, RequestState::Rejected);
    fix(&bot.slack);
    let (again, _) = bot.command(ALICE, "failover orders --mode detach").await;
    assert!(
        again.text().starts_with("Request #2"),
        "the cluster is not held: {again:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_incident_channel_is_told_to_the_requester() {
    requester_is_told(
        |s| s.refuse("chat.postMessage", CHANNEL, Some("channel_not_found")),
        "channel_not_found",
        |s| s.refuse("chat.postMessage", CHANNEL, None),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archived_incident_channel_is_told_to_the_requester() {
    requester_is_told(
        |s| s.refuse("chat.postMessage", CHANNEL, Some("is_archived")),
        "is_archived",
        |s| s.refuse("chat.postMessage", CHANNEL, None),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_is_told_to_the_requester_at_once() {
    requester_is_told(
        |s| s.accept_token("xoxb-rotated-elsewhere"),
        "invalid_auth",
        |s| s.accept_token(BOT_TOKEN),
    )
    .await;
}
