//! `/aurora pending` through the real bot: the open requests the caller may act on, Approve from the
//! list, and Deny from the list opening the deny-reason modal (`views.open`), whose `view_submission`
//! is verified like every interaction and refused in the modal (`response_action: "errors"`) when the
//! reason is empty or the request is no longer open; over HTTP and Socket Mode.

use crate::common;

use aurora_failover_bot::store::{RequestState, RunState};
use common::*;
use serde_json::Value;
use standin::{Answer, SlackSender, Workspace};
use std::time::Duration;

const DENY_REASON: &str = "deny_reason";

/// `/aurora pending` as `user`: the list posted to the command's response_url.
async fn pending_list(bot: &TestBot, user: &str) -> standin::Recorded {
    let (answer, url) = bot.command(user, "pending").await;
    assert_eq!(answer.status, 200, "{answer:?}");
    bot.slack
        .wait_for(WAIT, |_| bot.slack.responses_to(&url).first().cloned())
        .await
        .unwrap_or_else(|| panic!("no pending list for {user}"))
}

/// The buttons of a message: (action_id, value, label).
fn buttons(r: &standin::Recorded) -> Vec<(String, String, String)> {
    let text = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_str).unwrap_or_default().to_owned();
    r.body["blocks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|b| b["type"] == "actions")
        .flat_map(|b| b["elements"].as_array().cloned().unwrap_or_default())
        .map(|e| (text(&e, "/action_id"), text(&e, "/value"), text(&e, "/text/text")))
        .collect()
}

/// Clicks `action_id` (value: request `id`) in a pending list as `user`; returns the click's
/// response_url.
async fn click_in_list(bot: &TestBot, user: &str, action_id: &str, id: i64) -> String {
    let url = bot.slack.response_url();
    let ts = "1800000000.000999";
    let answer = match &bot.socket {
        Some(sm) => {
            let envelope = sm.click(user, CHANNEL, ts, action_id, &id.to_string(), &url).await;
            let ack = sm.wait_ack(&envelope, WAIT).await.expect("an ack");
            Answer {
                status: 200,
                body: ack.payload.map(|p| p.to_string()).unwrap_or_default(),
            }
        }
        None => {
            bot.sender
                .click(user, CHANNEL, ts, action_id, &id.to_string(), &url, bot.now())
                .await
        }
    };
    assert_eq!(answer.status, 200, "{answer:?}");
    url
}

/// Submits the deny-reason modal as `user` with `metadata` and `reason`; the answer (over Socket Mode:
/// the ack's payload as the body).
async fn submit(bot: &TestBot, user: &str, metadata: &str, reason: Option<&str>) -> Answer {
    let values = SlackSender::text_input("reason", "reason", reason);
    match &bot.socket {
        Some(sm) => {
            let envelope = sm.submit_view(user, DENY_REASON, metadata, values).await;
            let ack = sm.wait_ack(&envelope, WAIT).await.expect("an ack");
            Answer {
                status: 200,
                body: ack.payload.map(|p| p.to_string()).unwrap_or_default(),
            }
        }
        None => {
            bot.sender
                .submit_view(user, DENY_REASON, metadata, values, bot.now())
                .await
        }
    }
}

/// The modal error an answer carries under the reason input, if it keeps the modal open.
fn modal_error(a: &Answer) -> Option<String> {
    let v: Value = serde_json::from_str(&a.body).ok()?;
    assert_eq!(v["response_action"], "errors", "{}", a.body);
    v.pointer("/errors/reason").and_then(Value::as_str).map(str::to_owned)
}

/// The views.open calls so far.
fn opened(bot: &TestBot) -> Vec<standin::Recorded> {
    bot.slack.delivered("views.open")
}

/// Waits for the `n`th views.open call.
async fn wait_opened(bot: &TestBot, n: usize) -> standin::Recorded {
    bot.slack
        .wait_for(WAIT, |_| opened(bot).get(n - 1).cloned())
        .await
        .unwrap_or_else(|| panic!("views.open #{n} was not called"))
}

#[tokio::test]
async fn pending_lists_only_the_requests_the_caller_may_act_on() {
    let bot = TestBot::start().await;
    let (_, url) = bot.command(MALLORY, "pending").await;
    let none = bot.answer_at(&url).await;
    assert!(none.contains("Nothing you may act on"), "{none}");
    assert!(
        none.contains("<@U0ALICE>") && none.contains("<!subteam^S0ONCALL>"),
        "who may ask: {none}"
    );

    let id = bot.request().await;
    // An approver (directly, and through a user group) sees it with Approve and Deny.
    for approver in [BOB, CAROL] {
        let list = pending_list(&bot, approver).await;
        let text = all_text(&list);
        assert!(text.contains(&format!("request #{id}")), "{text}");
        assert!(
            text.contains("*orders*") && text.contains("us-west-2") && text.contains("`detach`"),
            "{text}"
        );
        assert!(
            text.contains("asked by <@U0ALICE>") && text.contains("expires in"),
            "{text}"
        );
        assert_eq!(list.field("response_type"), Some("ephemeral"));
        assert_eq!(
            buttons(&list),
            [
                ("pending_approve".into(), id.to_string(), "Approve".into()),
                ("pending_deny".into(), id.to_string(), "Deny".into())
            ]
        );
    }
    // The requester may only withdraw it.
    let list = pending_list(&bot, ALICE).await;
    assert!(all_text(&list).contains("you may withdraw it"), "{}", all_text(&list));
    assert_eq!(
        buttons(&list),
        [("pending_deny".into(), id.to_string(), "Withdraw".into())]
    );
    // Someone else may act on nothing.
    let list = pending_list(&bot, MALLORY).await;
    assert!(
        all_text(&list).contains("Nothing you may act on"),
        "{}",
        all_text(&list)
    );
    assert!(buttons(&list).is_empty());
    assert_eq!(
        bot.request_state(id).await.state,
        RequestState::Pending,
        "listing changes nothing"
    );
}

#[tokio::test]
async fn approve_from_the_pending_list_launches_the_run() {
    let bot = TestBot::start().await;
    let id = bot.request().await;
    // A stranger's click in a list is refused and changes nothing.
    let url = click_in_list(&bot, MALLORY, "pending_approve", id).await;
    assert!(bot.answer_containing(&url, "not an approver").await.is_some());
    assert_eq!(bot.request_state(id).await.state, RequestState::Pending);

    let url = click_in_list(&bot, BOB, "pending_approve", id).await;
    assert!(
        bot.answer_containing(&url, &format!("You approved request #{id}"))
            .await
            .is_some()
    );
    let run = bot.finished_run(id, Duration::from_secs(30)).await;
    assert_eq!(run.state, RunState::Succeeded);
    let r = bot.request_state(id).await;
    assert_eq!(r.state, RequestState::Approved);
    assert_eq!(r.decided_by.unwrap().to_string(), BOB);
}

#[tokio::test]
async fn deny_from_the_list_asks_a_reason_in_a_modal_and_posts_it_in_the_thread() {
    let bot = TestBot::start().await;
    let id = bot.request().await;
    let ts = bot.request_message(id).await.ts.unwrap();

    click_in_list(&bot, BOB, "pending_deny", id).await;
    let call = wait_opened(&bot, 1).await;
    assert_eq!(call.field("trigger_id"), Some("1.2.standin"), "the click's own trigger");
    assert_eq!(call.status, 200);
    let view = &call.body["view"];
    assert_eq!(view["type"], "modal");
    assert_eq!(view["callback_id"], DENY_REASON);
    assert_eq!(view["private_metadata"], id.to_string());
    assert_eq!(
        bot.request_state(id).await.state,
        RequestState::Pending,
        "opening the modal decides nothing"
    );

    // An empty (or blank) reason keeps the modal open, saying why.
    for blank in [None, Some("   \n ")] {
        let answer = submit(&bot, BOB, &id.to_string(), blank).await;
        assert_eq!(answer.status, 200);
        let why = modal_error(&answer).expect("an error under the reason");
        assert!(why.contains("Say why"), "{why}");
        assert_eq!(bot.request_state(id).await.state, RequestState::Pending);
    }

    let answer = submit(
        &bot,
        BOB,
        &id.to_string(),
        Some("  Wait for the nightly batch <!channel>  "),
    )
    .await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (200, ""),
        "an empty answer closes the modal"
    );
    let r = bot.request_state(id).await;
    assert_eq!(r.state, RequestState::Denied);
    assert_eq!(r.note.as_deref(), Some("Wait for the nightly batch <!channel>"));
    assert_eq!(r.decided_by.unwrap().to_string(), BOB);
    bot.slack_settled().await;

    let thread = thread_texts(&bot, &ts);
    assert!(
        thread
            .iter()
            .any(|t| t
                == ":no_entry: Denied by <@U0BOB>: Wait for the nightly batch &lt;!channel&gt;\nNothing was changed."),
        "the reason, escaped, in the thread: {thread:?}"
    );
    let updated = bot.updates(&ts).last().map(all_text).unwrap_or_default();
    assert!(
        updated.contains(":no_entry: *Denied* by <@U0BOB>: Wait for the nightly batch"),
        "the reason on the request message: {updated}"
    );
    let audit = bot.store.audit_since(jiff::Timestamp::UNIX_EPOCH).await.unwrap();
    assert!(
        audit.iter().any(|a| a.action == "deny"
            && a.user == BOB
            && a.outcome == "done; reason: Wait for the nightly batch <!channel>"),
        "{audit:?}"
    );
    let (answer, _) = bot.command(MALLORY, "history").await;
    let history = answer.text();
    assert!(history.contains("Wait for the nightly batch"), "{history}");

    // The same submission again (a double click, or after someone else decided) is refused in the modal.
    let again = submit(&bot, BOB, &id.to_string(), Some("again")).await;
    let why = modal_error(&again).expect("refused");
    assert!(why.contains(&format!("Request #{id} was already denied")), "{why}");
    assert_eq!(
        bot.request_state(id).await.note.as_deref(),
        Some("Wait for the nightly batch <!channel>")
    );
}

#[tokio::test]
async fn the_requester_withdraws_from_the_list_with_a_reason_and_a_stranger_gets_no_modal() {
    let bot = TestBot::start().await;
    let id = bot.request().await;
    // A stranger's Deny opens nothing and is answered with why.
    let url = click_in_list(&bot, MALLORY, "pending_deny", id).await;
    assert!(
        bot.answer_containing(&url, "Only an approver or the requester can deny")
            .await
            .is_some()
    );
    assert!(opened(&bot).is_empty(), "no modal for a stranger");
    // Nor does a stranger's submission (forged by hand) decide anything.
    let answer = submit(&bot, MALLORY, &id.to_string(), Some("no")).await;
    assert!(
        modal_error(&answer)
            .unwrap()
            .contains("Only an approver or the requester")
    );

    click_in_list(&bot, ALICE, "pending_deny", id).await;
    let view = wait_opened(&bot, 1).await.body["view"].clone();
    assert!(
        view["title"]["text"].as_str().unwrap().starts_with("Withdraw request"),
        "{view}"
    );
    let answer = submit(&bot, ALICE, &id.to_string(), Some("fixed by restarting the app")).await;
    assert_eq!(answer.body, "");
    let r = bot.request_state(id).await;
    assert_eq!(
        (r.state, r.note.as_deref()),
        (RequestState::Denied, Some("fixed by restarting the app"))
    );
}

#[tokio::test]
async fn a_submission_for_an_expired_or_unknown_request_is_refused_in_the_modal() {
    let bot = TestBot::start().await;
    let id = bot.request().await;
    let unknown = submit(&bot, BOB, "999", Some("typo")).await;
    assert!(
        modal_error(&unknown).unwrap().contains("Request #999 does not exist"),
        "{unknown:?}"
    );
    // Metadata the bot never writes is not a submission of its modal: ignored, the modal closed.
    for forged in ["", "abc", "-1", &format!("{id} "), &format!("{{\"request\":{id}}}")] {
        let answer = submit(&bot, BOB, forged, Some("forged")).await;
        assert_eq!((answer.status, answer.body.as_str()), (200, ""), "{forged:?}");
    }
    assert_eq!(bot.request_state(id).await.state, RequestState::Pending);

    bot.clock.advance(Duration::from_secs(901));
    let late = submit(&bot, BOB, &id.to_string(), Some("too late")).await;
    let why = modal_error(&late).expect("refused");
    assert!(why.contains(&format!("Request #{id} has expired")), "{why}");
    let r = bot.request_state(id).await;
    assert_ne!(r.state, RequestState::Denied);
    assert_eq!(r.note, None);
    // And an expired request is not listed.
    let list = pending_list(&bot, BOB).await;
    assert!(
        all_text(&list).contains("Nothing you may act on"),
        "{}",
        all_text(&list)
    );
}

#[tokio::test]
async fn a_forged_or_foreign_view_submission_changes_nothing() {
    let bot = TestBot::start().await;
    let id = bot.request().await;
    let values = SlackSender::text_input("reason", "reason", Some("forged"));
    let forged = SlackSender::new(
        &format!("http://127.0.0.1:{}", bot.port),
        &standin::Secret::new("not-the-signing-secret"),
    );
    let answer = forged
        .submit_view(BOB, DENY_REASON, &id.to_string(), values.clone(), bot.now())
        .await;
    assert_eq!(answer.status, 401);
    let foreign = SlackSender::new(
        &format!("http://127.0.0.1:{}", bot.port),
        &standin::Secret::new(SIGNING_SECRET),
    )
    .from_workspace(Workspace {
        team_id: "T0OTHER".into(),
        ..Workspace::default()
    });
    let answer = foreign
        .submit_view(BOB, DENY_REASON, &id.to_string(), values, bot.now())
        .await;
    assert_eq!((answer.status, answer.body.as_str()), (200, ""));
    let r = bot.request_state(id).await;
    assert_eq!((r.state, r.note), (RequestState::Pending, None));
}

#[tokio::test]
async fn over_socket_mode_the_deny_reason_modal_takes_the_same_path() {
    let bot = TestBot::start_with(Options {
        socket: true,
        ..Options::default()
    })
    .await;
    let id = bot.request().await;
    let list = pending_list(&bot, BOB).await;
    assert_eq!(buttons(&list).len(), 2);
    click_in_list(&bot, BOB, "pending_deny", id).await;
    let call = wait_opened(&bot, 1).await;
    assert_eq!(call.body["view"]["private_metadata"], id.to_string());
    let blank = submit(&bot, BOB, &id.to_string(), Some(" ")).await;
    assert!(
        modal_error(&blank).unwrap().contains("Say why"),
        "the ack carries the response_action"
    );
    let done = submit(&bot, BOB, &id.to_string(), Some("not tonight")).await;
    assert_eq!(done.body, "", "a bare ack closes the modal");
    let r = bot.request_state(id).await;
    assert_eq!(
        (r.state, r.note.as_deref()),
        (RequestState::Denied, Some("not tonight"))
    );
}
