//! Slack Socket Mode (`slack.mode = "socket"`): the same commands, clicks, replay rules and answers as
//! over HTTP, through the stand-in's fake Socket Mode server; every envelope acknowledged within
//! Slack's 3 seconds; a `disconnect` followed by a new connection; a refused app token named by
//! `/readyz` and never shown.

use crate::common;
use aurora_failover_bot::store::{RequestId, RunState};
use common::*;
use std::time::Duration;

fn socket() -> Options {
    Options {
        socket: true,
        ..Options::default()
    }
}

#[tokio::test]
async fn a_failover_goes_through_socket_mode_from_status_to_the_last_thread_reply() {
    let bot = TestBot::start_with(socket()).await;
    let sm = bot.socket.clone().unwrap();
    let (answer, url) = bot.command(MALLORY, "status").await;
    assert_eq!(answer.status, 200, "{answer:?}");
    bot.whole_status_answer(&url).await;
    assert!(bot.answer_at(&url).await.contains("orders"));

    let id = bot.request().await;
    let ts = bot.request_message(id).await.ts.unwrap();
    let url = bot.click(ALICE, id, true).await;
    assert!(
        bot.answer_at(&url).await.contains("second person"),
        "{}",
        bot.answer_at(&url).await
    );
    bot.click(BOB, id, true).await;
    assert_eq!(
        bot.finished_run(id, Duration::from_secs(30)).await.state,
        RunState::Succeeded
    );
    bot.slack_settled().await;
    let thread = thread_texts(&bot, &ts);
    assert!(thread.iter().any(|t| t.contains("Approved by <@U0BOB>")), "{thread:#?}");
    assert!(thread.len() >= 3, "the run is narrated in the thread: {thread:#?}");
    assert_eq!(bot.sim.admin().calls_to("RemoveFromGlobalCluster").len(), 1);
    let acks = sm.acks();
    assert!(acks.len() >= 4, "{acks:?}");
    assert!(
        acks.iter().all(|a| a.after_ms < 3_000),
        "every envelope acknowledged within 3 s: {acks:?}"
    );
    // Slack sends nothing to the HTTP routes in Socket Mode: they are not served.
    let resp = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}/slack/commands", bot.port))
        .body("text=status")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    bot.assert_wording();
}

#[tokio::test]
async fn an_envelope_delivered_again_after_a_lost_ack_is_processed_once() {
    let bot = TestBot::start_with(socket()).await;
    let sm = bot.socket.clone().unwrap();
    sm.redeliver_after(Duration::from_millis(500));
    sm.lose_next_acks(1);
    let url = bot.slack.response_url();
    let envelope = sm.command(ALICE, CHANNEL, "failover orders --mode detach", &url).await;
    let ack = sm
        .wait_ack(&envelope, WAIT)
        .await
        .expect("the redelivery is acknowledged");
    assert!(ack.text().contains("already received"), "{ack:?}");
    assert!(
        sm.deliveries().contains(&(envelope.clone(), 1)),
        "{:?}",
        sm.deliveries()
    );
    bot.request_message(1).await;
    assert!(
        bot.store.request(RequestId::new(2)).await.unwrap().is_none(),
        "one request"
    );
    bot.slack_settled().await;
    let posted = bot.slack.delivered("chat.postMessage");
    assert_eq!(
        posted.iter().filter(|c| c.thread_ts().is_none()).count(),
        1,
        "one approval message"
    );
}

#[tokio::test]
async fn after_a_disconnect_the_bot_connects_again_and_commands_still_work() {
    let bot = TestBot::start_with(socket()).await;
    let sm = bot.socket.clone().unwrap();
    assert_eq!(sm.connections_opened(), 1);
    sm.disconnect("refresh_requested", Duration::from_millis(200)).await;
    bot.slack
        .wait_for(WAIT, |_| {
            (sm.connections_opened() >= 2 && sm.live_connections() == 1).then_some(())
        })
        .await
        .expect("a new connection after the disconnect");
    let (answer, _) = bot.command(MALLORY, "help").await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(answer.text().contains("failover"), "{answer:?}");
    wait_ready(bot.port).await;
}

#[tokio::test]
async fn a_refused_app_token_is_named_by_readiness_and_never_shown() {
    let wrong = "xapp-1-A0STANDIN-not-the-token";
    let bot = TestBot::start_with(Options {
        env: vec![("SLACK_APP_TOKEN", wrong.to_owned())],
        wait_ready: false,
        ..socket()
    })
    .await;
    let url = format!("http://127.0.0.1:{}/readyz", bot.port);
    let mut said = String::new();
    for _ in 0..200 {
        let resp = reqwest::get(&url).await.unwrap();
        said = resp.text().await.unwrap();
        if said.contains("apps.connections.open") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(said.starts_with("not ready"), "{said}");
    assert!(
        said.contains("slack socket mode: apps.connections.open refused the app token (invalid_auth)"),
        "{said}"
    );
    assert!(said.contains("SLACK_APP_TOKEN"), "{said}");
    assert!(!said.contains(wrong), "{said}");
    assert_eq!(bot.socket.as_ref().unwrap().live_connections(), 0);
}
