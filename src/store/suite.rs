//! The store's contract, checked against every implementation: each test is an async function of a
//! `&dyn Store`, run on SQLite (a temp file), in memory, and on DynamoDB (moto).

use super::*;
use crate::types::ChannelId;
use std::sync::Arc;

fn t(s: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_second(1_800_000_000 + s).unwrap()
}

fn out<'a>(
    key: &'a str,
    kind: &'a str,
    target: Option<OutboxId>,
    body: &'a str,
    dedup: Option<&'a str>,
) -> Outgoing<'a> {
    Outgoing {
        ordering_key: key,
        kind,
        channel: None,
        target,
        response_url: None,
        body,
        dedup_key: dedup,
        fence: None,
    }
}

fn user(id: &str) -> SlackUserId {
    SlackUserId::parse(id).unwrap()
}

fn person(id: &str) -> Person {
    Person::Slack(user(id))
}

fn new_request(cluster: &str) -> NewRequest {
    NewRequest {
        cluster: ClusterName::parse(cluster).unwrap(),
        mode: Some(Mode::Detach),
        requested_by: person("U0AAAA"),
        to_region: None,
        origin_channel: "C0INCIDENT".into(),
        response_url: Some("https://hooks.slack.com/commands/x".into()),
        requested_at: t(0),
        expires_at: t(900),
        reason: None,
        ticket: None,
    }
}

async fn pending(store: &dyn Store, cluster: &str) -> RequestId {
    let id = store.create_request(&new_request(cluster)).await.unwrap().unwrap();
    let msg = store
        .enqueue(&out("req", "post", None, "{}", None), t(0))
        .await
        .unwrap();
    assert!(store.mark_pending(id, "{}", Mode::Detach, msg).await.unwrap());
    id
}

async fn approved(store: &dyn Store, cluster: &str) -> (RequestId, RunId) {
    let id = pending(store, cluster).await;
    let Decided::Won { run_id: Some(run) } = store
        .decide(id, true, &person("U0BBBB"), t(10), "precheck", "{}", None)
        .await
        .unwrap()
    else {
        panic!("not approved")
    };
    (id, run)
}

async fn a_cluster_has_at_most_one_open_request(store: Arc<dyn Store>) {
    let first = store.create_request(&new_request("orders")).await.unwrap().unwrap();
    assert_eq!(store.create_request(&new_request("orders")).await.unwrap(), Err(first));
    // Another cluster is independent.
    assert!(store.create_request(&new_request("billing")).await.unwrap().is_ok());
    // Once rejected, the cluster is free again.
    assert!(store.mark_rejected(first, "no secondary").await.unwrap());
    assert!(store.create_request(&new_request("orders")).await.unwrap().is_ok());
}

async fn of_concurrent_requests_for_one_cluster_one_is_recorded(store: Arc<dyn Store>) {
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.create_request(&new_request("orders")).await.unwrap() })
        })
        .collect();
    let mut won = Vec::new();
    for task in tasks {
        if let Ok(id) = task.await.unwrap() {
            won.push(id);
        }
    }
    assert_eq!(won.len(), 1, "{won:?}");
    assert_eq!(
        store
            .cluster_lock(&ClusterName::parse("orders").unwrap())
            .await
            .unwrap(),
        Some(won[0])
    );
}

async fn only_one_of_many_decisions_wins_and_an_approval_creates_exactly_one_run(store: Arc<dyn Store>) {
    let id = pending(&*store, "orders").await;
    let bob = user("U0BBBB");
    let won = store
        .decide(id, true, &Person::Slack(bob.clone()), t(10), "precheck", "{}", None)
        .await
        .unwrap();
    let Decided::Won { run_id: Some(run_id) } = won else {
        panic!("{won:?}")
    };
    for approve in [true, false, true] {
        let again = store
            .decide(id, approve, &Person::Slack(bob.clone()), t(11), "precheck", "{}", None)
            .await
            .unwrap();
        let Decided::Lost(r) = again else { panic!("{again:?}") };
        assert_eq!(r.state, RequestState::Approved);
        assert!(r.decided_by.as_ref().is_some_and(|p| *p == bob));
        assert_eq!(r.decided_at, Some(t(10)));
    }
    let run = store.run_of_request(id).await.unwrap().unwrap();
    assert_eq!(run.id, run_id);
    assert_eq!(run.state, RunState::Running);
    // Creating the run again (the resume after a crash between the two writes) is harmless.
    assert_eq!(store.create_run(id, "precheck", "{}", t(12)).await.unwrap(), run_id);
    // A running run keeps the cluster locked; a finished one frees it.
    assert!(store.create_request(&new_request("orders")).await.unwrap().is_err());
    store
        .finish_run(run_id, RunState::Succeeded, "{}", t(20), None)
        .await
        .unwrap();
    assert!(store.create_request(&new_request("orders")).await.unwrap().is_ok());
}

async fn an_approved_request_without_its_run_still_holds_its_cluster(store: Arc<dyn Store>) {
    // The crash between the approval's two writes: approved, no run yet.
    let id = pending(&*store, "orders").await;
    assert!(
        store
            .set_decision(id, true, &person("U0BBBB"), t(10), None)
            .await
            .unwrap()
    );
    assert_eq!(store.create_request(&new_request("orders")).await.unwrap(), Err(id));
    let run = store.create_run(id, "precheck", "{}", t(11)).await.unwrap();
    assert_eq!(store.run_of_request(id).await.unwrap().unwrap().id, run);
}

async fn a_denial_records_its_reason_in_the_note_and_a_lost_one_leaves_it(store: Arc<dyn Store>) {
    let id = pending(&*store, "orders").await;
    let decided = store
        .decide(
            id,
            false,
            &person("U0BBBB"),
            t(10),
            "precheck",
            "{}",
            Some("wait for the batch"),
        )
        .await
        .unwrap();
    assert_eq!(decided, Decided::Won { run_id: None });
    let r = store.request(id).await.unwrap().unwrap();
    assert_eq!(
        (r.state, r.note.as_deref()),
        (RequestState::Denied, Some("wait for the batch"))
    );
    // A second decision loses and does not overwrite the first one's note.
    assert!(
        !store
            .set_decision(id, false, &person("U0CCCC"), t(11), Some("another reason"))
            .await
            .unwrap()
    );
    assert_eq!(
        store.request(id).await.unwrap().unwrap().note.as_deref(),
        Some("wait for the batch")
    );
    // A decision without a note leaves the note empty.
    let other = pending(&*store, "billing").await;
    assert!(
        store
            .set_decision(other, false, &person("U0BBBB"), t(12), None)
            .await
            .unwrap()
    );
    assert_eq!(store.request(other).await.unwrap().unwrap().note, None);
}

async fn a_lock_whose_request_was_never_recorded_is_released_at_start_up(store: Arc<dyn Store>) {
    // The crash between taking the lock and inserting the request.
    let orders = ClusterName::parse("orders").unwrap();
    let id = store.new_request_id().await.unwrap();
    assert!(store.take_cluster_lock(&orders, id, None).await.unwrap());
    assert_eq!(store.create_request(&new_request("orders")).await.unwrap(), Err(id));
    // A live holder is kept.
    let billing = store.create_request(&new_request("billing")).await.unwrap().unwrap();
    store.recover_locks().await.unwrap();
    assert_eq!(store.cluster_lock(&orders).await.unwrap(), None);
    let next = store.create_request(&new_request("orders")).await.unwrap().unwrap();
    assert!(next > id, "ids are never reused");
    assert_eq!(
        store.create_request(&new_request("billing")).await.unwrap(),
        Err(billing)
    );
}

async fn concurrent_decisions_yield_one_winner(store: Arc<dyn Store>) {
    let id = pending(&*store, "orders").await;
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let who = user(&format!("U0B{i}"));
                matches!(
                    store
                        .decide(
                            id,
                            i % 2 == 0,
                            &Person::Slack(who.clone()),
                            t(10),
                            "precheck",
                            "{}",
                            None
                        )
                        .await
                        .unwrap(),
                    Decided::Won { .. }
                )
            })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        winners += usize::from(task.await.unwrap());
    }
    assert_eq!(winners, 1);
    assert!(
        store
            .run_of_request(id)
            .await
            .unwrap()
            .is_none_or(|r| r.request_id == id)
    );
}

async fn an_approval_after_expiry_loses_and_expiry_marks_due_requests(store: Arc<dyn Store>) {
    let id = pending(&*store, "orders").await;
    let bob = user("U0BBBB");
    assert!(matches!(
        store
            .decide(id, true, &Person::Slack(bob.clone()), t(900), "precheck", "{}", None)
            .await
            .unwrap(),
        Decided::Lost(_)
    ));
    assert!(store.expire_due(t(899)).await.unwrap().is_empty());
    let expired = store.expire_due(t(900)).await.unwrap();
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].state, RequestState::Expired);
    assert!(store.expire_due(t(901)).await.unwrap().is_empty(), "expires once");
    assert_eq!(store.request(id).await.unwrap().unwrap().state, RequestState::Expired);
}

async fn a_cancel_is_a_compare_and_set(store: Arc<dyn Store>) {
    let id = pending(&*store, "orders").await;
    let alice = user("U0AAAA");
    assert_eq!(
        store.cancel(id, &alice, t(5)).await.unwrap(),
        Decided::Won { run_id: None }
    );
    let Decided::Lost(now) = store.cancel(id, &alice, t(6)).await.unwrap() else {
        panic!("cancelled twice")
    };
    assert_eq!((now.state, now.decided_at), (RequestState::Cancelled, Some(t(5))));
    assert_eq!(store.closed_since(t(0)).await.unwrap().len(), 1);
    assert!(store.create_request(&new_request("orders")).await.unwrap().is_ok());
}

async fn the_journal_keeps_steps_in_order_per_run(store: Arc<dyn Store>) {
    let (_, run) = approved(&*store, "orders").await;
    let (_, other) = approved(&*store, "billing").await;
    store.journal(run, t(2), "precheck", "started", "", None).await.unwrap();
    store
        .journal(other, t(2), "precheck", "started", "", None)
        .await
        .unwrap();
    store
        .checkpoint(
            run,
            "detach",
            "{\"a\":1}",
            Some(("precheck", "finished", "ok")),
            t(3),
            None,
        )
        .await
        .unwrap();
    let j = store.journal_of(run).await.unwrap();
    assert_eq!(
        j.iter().map(|e| (e.seq, e.event.as_str())).collect::<Vec<_>>(),
        [(1, "started"), (2, "finished")]
    );
    let r = store.run(run).await.unwrap().unwrap();
    assert_eq!((r.step.as_str(), r.data.as_str()), ("detach", "{\"a\":1}"));
    let since: Vec<_> = store
        .journal_since(t(2))
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.run_id, e.seq))
        .collect();
    assert_eq!(since, [(run, 1), (other, 1), (run, 2)]);
}

async fn the_outbox_hands_out_the_head_of_each_ordering_key(store: Arc<dyn Store>) {
    let channel = ChannelId::parse("C0INCIDENT").unwrap();
    let a1 = store
        .enqueue(
            &Outgoing {
                channel: Some(&channel),
                ..out("a", "post", None, "1", None)
            },
            t(0),
        )
        .await
        .unwrap();
    let a2 = store
        .enqueue(&out("a", "update", Some(a1), "2", None), t(0))
        .await
        .unwrap();
    let b1 = store.enqueue(&out("b", "post", None, "3", None), t(0)).await.unwrap();
    let a3 = store
        .enqueue(&out("a", "update", Some(a1), "4", None), t(0))
        .await
        .unwrap();
    let heads: Vec<_> = store.outbox_heads().await.unwrap().iter().map(|i| i.id).collect();
    assert_eq!(heads, [a1, b1]);
    store.outbox_delivered(a1, Some("111.222"), None).await.unwrap();
    let heads: Vec<_> = store
        .outbox_heads()
        .await
        .unwrap()
        .iter()
        .map(|i| i.body.clone())
        .collect();
    assert_eq!(heads, ["2", "3"]);
    let first = store.outbox_item(a1).await.unwrap().unwrap();
    assert_eq!(
        (first.delivered_ts.as_deref(), first.channel.as_deref()),
        (Some("111.222"), Some("C0INCIDENT"))
    );
    // An older update of the same message is superseded by a newer one.
    let a2_item = store.outbox_item(a2).await.unwrap().unwrap();
    assert!(store.newer_update_pending(&a2_item).await.unwrap());
    store.outbox_skipped(a2, None).await.unwrap();
    let a3_item = store.outbox_item(a3).await.unwrap().unwrap();
    assert!(!store.newer_update_pending(&a3_item).await.unwrap());
    store.outbox_retry(a3, "slow", t(60), None).await.unwrap();
    let a3_item = store.outbox_item(a3).await.unwrap().unwrap();
    assert_eq!((a3_item.attempts, a3_item.next_attempt_at), (1, t(60)));
    store.outbox_failed(b1, "channel_not_found", None).await.unwrap();
    let states: Vec<_> = store.outbox_all().await.unwrap().into_iter().map(|i| i.state).collect();
    assert_eq!(states, ["delivered", "superseded", "failed", "pending"]);
    // The depth the metrics show: only what is still to be delivered.
    assert_eq!(store.outbox_depth().await.unwrap(), 1);
}

async fn a_message_with_a_dedup_key_is_queued_once(store: Arc<dyn Store>) {
    let first = store
        .enqueue(&out("a", "reply", None, "x", Some("run:1:detach:started")), t(0))
        .await
        .unwrap();
    let other = store.enqueue(&out("a", "reply", None, "y", None), t(0)).await.unwrap();
    let again = store
        .enqueue(&out("a", "reply", None, "x", Some("run:1:detach:started")), t(1))
        .await
        .unwrap();
    assert_eq!(first, again);
    assert_ne!(first, other);
    assert_eq!(store.outbox_all().await.unwrap().len(), 2);
}

async fn an_attempt_is_recorded_before_the_call_and_response_url_uses_are_counted(store: Arc<dyn Store>) {
    let url = "https://hooks.slack.test/1";
    let answer = |n: &'static str| Outgoing {
        ordering_key: "respond:1",
        kind: "respond",
        channel: None,
        target: None,
        response_url: Some(url),
        body: n,
        dedup_key: None,
        fence: None,
    };
    let a = store.enqueue(&answer("a"), t(0)).await.unwrap();
    let b = store.enqueue(&answer("b"), t(0)).await.unwrap();
    assert_eq!(store.outbox_item(a).await.unwrap().unwrap().started_at, None);
    store.outbox_attempt(a, VIA_RESPONSE_URL, t(5), None).await.unwrap();
    store.outbox_attempt(a, VIA_RESPONSE_URL, t(9), None).await.unwrap();
    let item = store.outbox_item(a).await.unwrap().unwrap();
    assert_eq!(item.started_at, Some(t(5)), "the first attempt's time is kept");
    assert_eq!(item.via.as_deref(), Some(VIA_RESPONSE_URL));
    assert_eq!(store.response_url_uses(url, b).await.unwrap(), 1);
    assert_eq!(store.response_url_uses(url, a).await.unwrap(), 0, "not counting itself");
    store.outbox_attempt(b, VIA_EPHEMERAL, t(6), None).await.unwrap();
    assert_eq!(store.response_url_uses(url, OutboxId::new(0)).await.unwrap(), 1);

    assert_eq!(store.response_url(url).await.unwrap(), None);
    let first = ResponseUrl {
        url: url.into(),
        user: "U0AAAA".into(),
        channel: "C0INCIDENT".into(),
        issued_at: t(1),
    };
    store.remember_response_url(&first).await.unwrap();
    let again = ResponseUrl {
        issued_at: t(100),
        ..first.clone()
    };
    store.remember_response_url(&again).await.unwrap();
    assert_eq!(
        store.response_url(url).await.unwrap(),
        Some(first.clone()),
        "the first record stays"
    );
    let id = store.store_id().await.unwrap();
    assert!(!id.is_empty());
    assert_eq!(store.store_id().await.unwrap(), id, "a store keeps its identity");

    let later = ResponseUrl {
        url: "https://hooks.slack.test/2".into(),
        issued_at: t(50),
        ..first.clone()
    };
    store.remember_response_url(&later).await.unwrap();
    assert_eq!(store.forget_response_urls_before(t(50), 10).await.unwrap(), 1);
    assert_eq!(store.response_url(url).await.unwrap(), None, "the old one is forgotten");
    assert_eq!(store.response_url(&later.url).await.unwrap(), Some(later));
}

async fn a_request_signature_is_seen_once_and_forgotten_after_the_window(store: Arc<dyn Store>) {
    assert!(store.first_sighting("v0=abc", t(0)).await.unwrap());
    assert!(!store.first_sighting("v0=abc", t(10)).await.unwrap());
    assert!(store.first_sighting("v0=def", t(10)).await.unwrap());
    // Ten minutes later the old signatures are forgotten (the timestamp window refuses them anyway),
    // in batches of the size asked for.
    assert_eq!(store.forget_requests_before(t(100), 1).await.unwrap(), 1);
    assert_eq!(store.forget_requests_before(t(100), 1).await.unwrap(), 1);
    assert_eq!(store.forget_requests_before(t(100), 1).await.unwrap(), 0);
    assert!(store.first_sighting("v0=abc", t(700)).await.unwrap());
}

async fn attempts_are_audited_in_order(store: Arc<dyn Store>) {
    let id = RequestId::new(3);
    store
        .audit(t(1), "U0AAAA", "request", Some(id), "recorded")
        .await
        .unwrap();
    store.audit(t(2), "U0BBBB", "approve", None, "refused").await.unwrap();
    let all = store.audit_log().await.unwrap();
    assert_eq!(
        all.iter()
            .map(|a| (a.action.as_str(), a.request_id))
            .collect::<Vec<_>>(),
        [("request", Some(id)), ("approve", None)]
    );
    assert_eq!(store.audit_since(t(2)).await.unwrap().len(), 1);
}

async fn resume_and_abandon_are_compare_and_set_and_a_lost_one_says_how_the_run_is(store: Arc<dyn Store>) {
    let (alice, bob) = (user("U0AAAA"), user("U0BBBB"));
    let (_, run) = approved(&*store, "orders").await;
    // Only a run that needs attention may be resumed.
    let lost = store.ask_resume(run, &alice, t(11)).await.unwrap().unwrap_err();
    assert_eq!(lost.state, RunState::Running);
    assert!(
        store
            .mark_needs_attention(run, Some("{}"), ("wait_writable", "deadline"), t(20), None)
            .await
            .unwrap()
    );
    assert!(
        !store
            .mark_needs_attention(run, Some("{}"), ("wait_writable", "again"), t(21), None)
            .await
            .unwrap()
    );
    // It holds the cluster.
    assert!(store.create_request(&new_request("orders")).await.unwrap().is_err());
    store.ask_resume(run, &alice, t(22)).await.unwrap().unwrap();
    let token = t(22).as_millisecond();
    let lost = store.ask_resume(run, &bob, t(23)).await.unwrap().unwrap_err();
    assert_eq!(lost.control.resume_asked_by.as_ref(), Some(&alice), "asked once");
    // The asker cannot approve it; a button with another token decides nothing; a second person
    // can, once.
    let lost = store
        .decide_resume(run, token, &alice, true, t(30))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(lost.state, RunState::NeedsAttention);
    assert!(
        store
            .decide_resume(run, token + 1, &bob, true, t(30))
            .await
            .unwrap()
            .is_err()
    );
    store
        .decide_resume(run, token, &bob, true, t(31))
        .await
        .unwrap()
        .unwrap();
    let lost = store
        .decide_resume(run, token, &bob, true, t(32))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(
        (lost.state, lost.control.resumed_by.as_ref()),
        (RunState::Running, Some(&bob))
    );
    // A second round: the first round's ask and its buttons are gone.
    assert!(
        store
            .mark_needs_attention(run, None, ("update_dns", "refused"), t(33), None)
            .await
            .unwrap()
    );
    let now = store.run(run).await.unwrap().unwrap();
    assert_eq!((now.control.resume_asked_by, now.control.resume_asked_at), (None, None));
    assert!(
        store
            .decide_resume(run, token, &bob, true, t(34))
            .await
            .unwrap()
            .is_err(),
        "an old button"
    );
    assert_eq!(store.run(run).await.unwrap().unwrap().state, RunState::NeedsAttention);
    // A denial withdraws the ask; the run keeps needing attention.
    store.ask_resume(run, &alice, t(35)).await.unwrap().unwrap();
    let token = t(35).as_millisecond();
    store
        .decide_resume(run, token, &alice, false, t(36))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(store.run(run).await.unwrap().unwrap().control.resume_asked_by, None);
    // The bot's own late finish clears a pending ask too.
    store.ask_resume(run, &alice, t(37)).await.unwrap().unwrap();
    assert!(store.back_to_running(run, t(38), None).await.unwrap());
    assert_eq!(store.run(run).await.unwrap().unwrap().control.resume_asked_by, None);
    // Abandoned once; then it has ended, and the cluster is free.
    store
        .abandon_run(run, &Person::Slack(alice.clone()), "by hand", t(40))
        .await
        .unwrap()
        .unwrap();
    let lost = store
        .abandon_run(run, &Person::terminal("bob").unwrap(), "again", t(41))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(lost.state, RunState::Abandoned);
    assert_eq!(lost.control.abandon_reason.as_deref(), Some("by hand"));
    assert_eq!(lost.control.abandoned_by, Some(Person::Slack(alice.clone())));
    assert!(
        !store
            .finish_run(run, RunState::Succeeded, "{}", t(42), None)
            .await
            .unwrap(),
        "an abandoned run stays abandoned"
    );
    assert!(store.create_request(&new_request("orders")).await.unwrap().is_ok());
    let events: Vec<String> = store
        .journal_of(run)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert_eq!(
        events,
        [
            "needs_attention",
            "resume_approved",
            "needs_attention",
            "resume_denied",
            "late_finish",
            "abandoned"
        ]
    );
    assert_eq!(store.runs_finished_since(t(40)).await.unwrap().len(), 1);
    assert!(store.runs_in(RunState::NeedsAttention).await.unwrap().is_empty());
}

async fn a_corrupt_plan_or_run_data_is_an_error_naming_its_row(store: Arc<dyn Store>) {
    let id = store.create_request(&new_request("orders")).await.unwrap().unwrap();
    let msg = store
        .enqueue(&out("req", "post", None, "{}", None), t(0))
        .await
        .unwrap();
    assert!(store.mark_pending(id, "{not json", Mode::Detach, msg).await.unwrap());
    let r = store.request(id).await.unwrap().unwrap();
    let e = r.stored_plan::<serde_json::Value>().unwrap_err();
    assert_eq!((e.table, e.key.as_str()), ("requests", id.to_string().as_str()));
    let Decided::Won { run_id: Some(run) } = store
        .decide(id, true, &person("U0BBBB"), t(1), "precheck", "[", None)
        .await
        .unwrap()
    else {
        panic!("not approved")
    };
    let e = store
        .run(run)
        .await
        .unwrap()
        .unwrap()
        .stored_data::<serde_json::Value>()
        .unwrap_err();
    assert_eq!((e.table, e.key), ("runs", run.to_string()));
    // The run can still be put in front of a person, its stored data kept as it is.
    assert!(
        store
            .mark_needs_attention(run, None, ("load", "its stored data could not be read"), t(2), None)
            .await
            .unwrap()
    );
    assert_eq!(store.run(run).await.unwrap().unwrap().data, "[");
}

const TTL: std::time::Duration = std::time::Duration::from_secs(15);

fn fenced<T: std::fmt::Debug>(r: Result<T>) -> bool {
    matches!(r, Err(StoreError::Fenced(_)))
}

async fn a_lease_has_one_owner_until_it_expires_and_a_new_owner_gets_a_higher_token(store: Arc<dyn Store>) {
    let scope = Lease::cluster_scope(&ClusterName::parse("orders").unwrap());
    assert_eq!(store.lease(&scope).await.unwrap(), None);
    let a = store.take_lease(&scope, "east#1", t(0), TTL).await.unwrap().unwrap();
    assert_eq!((a.owner.as_str(), a.token, a.expires_at), ("east#1", 1, t(15)));
    // Held: another instance cannot take it, before its expiry or at one millisecond before.
    assert_eq!(store.take_lease(&scope, "west#1", t(5), TTL).await.unwrap(), None);
    assert_eq!(
        store
            .take_lease(&scope, "west#1", t(15) - jiff::SignedDuration::from_millis(1), TTL)
            .await
            .unwrap(),
        None
    );
    // Its owner renews it (same token); renewing moves the expiry.
    let again = store.take_lease(&scope, "east#1", t(10), TTL).await.unwrap().unwrap();
    assert_eq!((again.token, again.expires_at), (1, t(25)));
    assert!(store.renew_lease(&a.fence(), t(20), TTL).await.unwrap());
    assert_eq!(store.lease(&scope).await.unwrap().unwrap().expires_at, t(35));
    assert_eq!(store.take_lease(&scope, "west#1", t(34), TTL).await.unwrap(), None);
    // Expired: the next owner takes it with a higher token, and the old owner's renewal is refused.
    let b = store.take_lease(&scope, "west#1", t(35), TTL).await.unwrap().unwrap();
    assert_eq!((b.owner.as_str(), b.token), ("west#1", 2));
    assert!(!store.renew_lease(&a.fence(), t(36), TTL).await.unwrap());
    assert!(!store.release_lease(&a.fence(), t(36)).await.unwrap());
    assert_eq!(store.lease(&scope).await.unwrap().unwrap().owner, "west#1");
    // Given back: free at once, and the token still grows.
    assert!(store.release_lease(&b.fence(), t(40)).await.unwrap());
    let c = store.take_lease(&scope, "east#2", t(40), TTL).await.unwrap().unwrap();
    assert_eq!(c.token, 3);
    // Scopes are independent; every lease is listed.
    let outbox = store
        .take_lease(OUTBOX_SCOPE, "west#1", t(40), TTL)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(outbox.token, 1);
    let mut all: Vec<(String, String)> = store
        .leases()
        .await
        .unwrap()
        .into_iter()
        .map(|l| (l.scope, l.owner))
        .collect();
    all.sort();
    assert_eq!(
        all,
        [
            (scope.clone(), "east#2".to_owned()),
            (OUTBOX_SCOPE.to_owned(), "west#1".to_owned())
        ]
    );
}

async fn of_concurrent_takers_of_a_free_lease_one_wins(store: Arc<dyn Store>) {
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.take_lease("cluster/orders", &format!("i{i}#1"), t(0), TTL).await })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        winners.extend(task.await.unwrap().unwrap());
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(winners[0].token, 1);
}

async fn a_former_holder_cannot_write_for_the_run_after_a_takeover(store: Arc<dyn Store>) {
    let id = pending(&*store, "orders").await;
    let Decided::Won { run_id: Some(run) } = store
        .decide(id, true, &person("U0BBBB"), t(1), "precheck", "{}", None)
        .await
        .unwrap()
    else {
        panic!("no run")
    };
    let scope = Lease::cluster_scope(&ClusterName::parse("orders").unwrap());
    let old = store
        .take_lease(&scope, "east#1", t(2), TTL)
        .await
        .unwrap()
        .unwrap()
        .fence();
    store.adopt_run(run, &old).await.unwrap();
    // The holder writes.
    store
        .checkpoint(
            run,
            "detach",
            "{\"n\":1}",
            Some(("precheck", "finished", "ok")),
            t(3),
            Some(&old),
        )
        .await
        .unwrap();
    let reply = out("thread", "reply", None, "{}", Some("run:1:a"));
    store
        .enqueue(
            &Outgoing {
                fence: Some(&old),
                ..reply
            },
            t(3),
        )
        .await
        .unwrap();
    // It pauses past its lease; another instance takes the run over.
    let new = store
        .take_lease(&scope, "west#1", t(20), TTL)
        .await
        .unwrap()
        .unwrap()
        .fence();
    assert_eq!(new.token, old.token + 1);
    store.adopt_run(run, &new).await.unwrap();
    // Every write the former holder makes for the run is refused; nothing of it lands.
    assert!(fenced(store.set_step(run, "update_dns", "{\"n\":2}", Some(&old)).await));
    assert!(fenced(
        store.journal(run, t(21), "detach", "started", "", Some(&old)).await
    ));
    let late = out("thread", "reply", None, "{}", Some("run:1:late"));
    assert!(fenced(
        store
            .enqueue(
                &Outgoing {
                    fence: Some(&old),
                    ..late
                },
                t(21)
            )
            .await
    ));
    assert!(fenced(
        store
            .mark_needs_attention(run, Some("{}"), ("detach", "x"), t(21), Some(&old))
            .await
    ));
    assert!(fenced(
        store
            .finish_run(run, RunState::Succeeded, "{}", t(21), Some(&old))
            .await
    ));
    let stored = store.run(run).await.unwrap().unwrap();
    assert_eq!(
        (stored.step.as_str(), stored.data.as_str(), stored.state),
        ("detach", "{\"n\":1}", RunState::Running)
    );
    let lines: Vec<_> = store
        .journal_of(run)
        .await
        .unwrap()
        .into_iter()
        .map(|j| (j.step, j.event))
        .collect();
    assert_eq!(lines, [("precheck".to_owned(), "finished".to_owned())]);
    assert!(
        store
            .outbox_all()
            .await
            .unwrap()
            .iter()
            .all(|i| i.dedup_key.as_deref() != Some("run:1:late"))
    );
    // The new holder writes; unfenced writes (a person's decision) still apply.
    store
        .checkpoint(
            run,
            "update_dns",
            "{\"n\":3}",
            Some(("detach", "finished", "")),
            t(22),
            Some(&new),
        )
        .await
        .unwrap();
    assert!(
        store
            .abandon_run(run, &person("U0BBBB"), "by hand", t(23))
            .await
            .unwrap()
            .is_ok()
    );
}

async fn a_former_holder_of_the_outbox_cannot_record_deliveries(store: Arc<dyn Store>) {
    let item = store.enqueue(&out("k", "reply", None, "{}", None), t(0)).await.unwrap();
    let old = store
        .take_lease(OUTBOX_SCOPE, "east#1", t(0), TTL)
        .await
        .unwrap()
        .unwrap()
        .fence();
    store.outbox_attempt(item, VIA_WEB_API, t(1), Some(&old)).await.unwrap();
    let new = store
        .take_lease(OUTBOX_SCOPE, "west#1", t(20), TTL)
        .await
        .unwrap()
        .unwrap()
        .fence();
    assert!(fenced(store.outbox_attempt(item, VIA_WEB_API, t(21), Some(&old)).await));
    assert!(fenced(store.outbox_delivered(item, Some("1.2"), Some(&old)).await));
    assert!(fenced(store.outbox_retry(item, "x", t(22), Some(&old)).await));
    assert!(fenced(store.outbox_failed(item, "x", Some(&old)).await));
    assert!(fenced(store.outbox_skipped(item, Some(&old)).await));
    assert_eq!(store.outbox_item(item).await.unwrap().unwrap().state, "pending");
    store.outbox_delivered(item, Some("1.2"), Some(&new)).await.unwrap();
    let done = store.outbox_item(item).await.unwrap().unwrap();
    assert_eq!(
        (done.state.as_str(), done.delivered_ts.as_deref()),
        ("delivered", Some("1.2"))
    );
}

async fn approvals_are_counted_once_per_person_and_only_while_pending(store: Arc<dyn Store>) {
    let mut new = new_request("orders");
    new.reason = Some("us-east-1 is down".into());
    new.ticket = Some("INC-42".into());
    let id = store.create_request(&new).await.unwrap().unwrap();
    let r = store.request(id).await.unwrap().unwrap();
    assert_eq!(
        (r.reason.as_deref(), r.ticket.as_deref()),
        (Some("us-east-1 is down"), Some("INC-42"))
    );
    assert!(r.approvals.is_empty());
    // Not pending yet (planning): nothing is counted.
    assert_eq!(store.add_approval(id, &person("U0BBBB"), t(5)).await.unwrap(), None);
    let msg = store
        .enqueue(&out("req", "post", None, "{}", None), t(0))
        .await
        .unwrap();
    assert!(store.mark_pending(id, "{}", Mode::Detach, msg).await.unwrap());
    let first = store.add_approval(id, &person("U0BBBB"), t(10)).await.unwrap().unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].by, person("U0BBBB"));
    assert_eq!(
        store.add_approval(id, &person("U0BBBB"), t(11)).await.unwrap(),
        None,
        "once per person"
    );
    // Concurrent approvals by different people: each lands once, and each caller sees those before it.
    let people = ["U0CCCC", "U0DDDD", "U0EEEE", "U0FFFF"];
    let seen = futures::future::join_all(people.iter().map(|p| {
        let store = store.clone();
        async move { store.add_approval(id, &person(p), t(12)).await.unwrap().unwrap().len() }
    }))
    .await;
    let mut counts = seen.clone();
    counts.sort_unstable();
    assert_eq!(
        counts,
        vec![2, 3, 4, 5],
        "each count seen by exactly one approver: {seen:?}"
    );
    let r = store.request(id).await.unwrap().unwrap();
    assert_eq!(r.approvals.len(), 5);
    assert!(r.approved_by(&person("U0EEEE")));
    // After expiry nothing more is counted.
    assert_eq!(store.add_approval(id, &person("U0GGGG"), t(900)).await.unwrap(), None);
    assert_eq!(store.request(id).await.unwrap().unwrap().approvals.len(), 5);
}

fn record(cluster: &str, id: &str, request: i64, at: i64) -> GlobalClusterRecord {
    GlobalClusterRecord {
        cluster: ClusterName::parse(cluster).unwrap(),
        global_cluster_id: id.into(),
        request: RequestId::new(request),
        recorded_at: t(at),
        replaces: format!("{cluster}-global"),
    }
}

async fn a_recorded_global_cluster_is_replaced_only_by_a_newer_one_and_dropped_only_by_its_id(store: Arc<dyn Store>) {
    let orders = ClusterName::parse("orders").unwrap();
    assert_eq!(store.global_cluster_record(&orders).await.unwrap(), None);
    let first = record("orders", "orders-global-2", 12, 100);
    store.record_global_cluster(&first).await.unwrap();
    // The same record again changes nothing.
    store.record_global_cluster(&first).await.unwrap();
    assert_eq!(store.global_cluster_record(&orders).await.unwrap(), Some(first.clone()));
    // An older one does not replace it; a newer one does.
    store
        .record_global_cluster(&record("orders", "orders-global-old", 9, 50))
        .await
        .unwrap();
    assert_eq!(store.global_cluster_record(&orders).await.unwrap(), Some(first.clone()));
    let newer = record("orders", "orders-global-3", 14, 200);
    store.record_global_cluster(&newer).await.unwrap();
    assert_eq!(store.global_cluster_record(&orders).await.unwrap(), Some(newer.clone()));
    // One per cluster name, listed by name.
    let billing = record("billing", "billing-global-2", 15, 300);
    store.record_global_cluster(&billing).await.unwrap();
    let all: Vec<_> = store
        .global_cluster_records()
        .await
        .unwrap()
        .into_iter()
        .map(std::result::Result::unwrap)
        .collect();
    assert_eq!(all, [billing.clone(), newer.clone()]);
    // Dropping names the id: the older id drops nothing, the current one drops the record.
    assert!(
        !store
            .drop_global_cluster_record(&orders, "orders-global-2")
            .await
            .unwrap()
    );
    assert_eq!(store.global_cluster_record(&orders).await.unwrap(), Some(newer));
    assert!(
        store
            .drop_global_cluster_record(&orders, "orders-global-3")
            .await
            .unwrap()
    );
    assert!(
        !store
            .drop_global_cluster_record(&orders, "orders-global-3")
            .await
            .unwrap()
    );
    assert_eq!(store.global_cluster_record(&orders).await.unwrap(), None);
    let left: Vec<_> = store
        .global_cluster_records()
        .await
        .unwrap()
        .into_iter()
        .map(std::result::Result::unwrap)
        .collect();
    assert_eq!(left, [billing]);
}

/// Runs each listed test against a fresh SQLite store (a temp file), a fresh in-memory store and a
/// DynamoDB store on a fresh table in moto.
macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let dir = super::temp_dir(stringify!($name));
                    let store = super::SqliteStore::open(&dir.join("db.sqlite")).unwrap();
                    super::$name(std::sync::Arc::new(store)).await;
                    let _ = std::fs::remove_dir_all(&dir);
                }
            )*
        }
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(std::sync::Arc::new(super::MemoryStore::new())).await;
                }
            )*
        }
        /// On a fresh table in moto's DynamoDB (`MOTO_ENDPOINT`, exported by scripts/test).
        mod dynamodb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let store = super::super::dynamodb::tests::moto_store(stringify!($name)).await;
                    super::$name(std::sync::Arc::new(store)).await;
                }
            )*
        }
    };
}

suite!(
    a_cluster_has_at_most_one_open_request,
    of_concurrent_requests_for_one_cluster_one_is_recorded,
    only_one_of_many_decisions_wins_and_an_approval_creates_exactly_one_run,
    an_approved_request_without_its_run_still_holds_its_cluster,
    a_denial_records_its_reason_in_the_note_and_a_lost_one_leaves_it,
    a_lock_whose_request_was_never_recorded_is_released_at_start_up,
    concurrent_decisions_yield_one_winner,
    an_approval_after_expiry_loses_and_expiry_marks_due_requests,
    a_cancel_is_a_compare_and_set,
    the_journal_keeps_steps_in_order_per_run,
    the_outbox_hands_out_the_head_of_each_ordering_key,
    a_message_with_a_dedup_key_is_queued_once,
    an_attempt_is_recorded_before_the_call_and_response_url_uses_are_counted,
    a_request_signature_is_seen_once_and_forgotten_after_the_window,
    attempts_are_audited_in_order,
    resume_and_abandon_are_compare_and_set_and_a_lost_one_says_how_the_run_is,
    a_corrupt_plan_or_run_data_is_an_error_naming_its_row,
    a_lease_has_one_owner_until_it_expires_and_a_new_owner_gets_a_higher_token,
    of_concurrent_takers_of_a_free_lease_one_wins,
    a_former_holder_cannot_write_for_the_run_after_a_takeover,
    a_former_holder_of_the_outbox_cannot_record_deliveries,
    approvals_are_counted_once_per_person_and_only_while_pending,
    a_recorded_global_cluster_is_replaced_only_by_a_newer_one_and_dropped_only_by_its_id,
);

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("afb-store-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// ---- SQLite only: what only a file can hold ----

#[tokio::test]
async fn reopening_a_database_keeps_everything() {
    let dir = temp_dir("reopen");
    let path = dir.join("db.sqlite");
    let id = {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).unwrap());
        store.create_request(&new_request("orders")).await.unwrap().unwrap()
    };
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).unwrap());
    assert_eq!(store.request(id).await.unwrap().unwrap().state, RequestState::Planning);
    assert_eq!(store.create_request(&new_request("orders")).await.unwrap(), Err(id));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_corrupt_row_is_listed_as_unreadable_among_the_others() {
    let dir = temp_dir("corrupt");
    let sqlite = SqliteStore::open(&dir.join("db.sqlite")).unwrap();
    let store: Arc<dyn Store> = Arc::new(sqlite.clone());
    let good = pending(&*store, "orders").await;
    let bad = pending(&*store, "billing").await;
    sqlite
        .execute_raw("UPDATE requests SET requested_by = 'not a user' WHERE cluster = 'billing'")
        .await
        .unwrap();
    let listed = store.requests_in(RequestState::Pending).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].as_ref().unwrap().id, good);
    let e = listed[1].as_ref().unwrap_err();
    assert_eq!((e.table, e.key.clone()), ("requests", bad.to_string()));
    assert!(matches!(store.request(bad).await, Err(StoreError::Decode(_))));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_database_of_the_previous_schema_migrates_with_its_open_requests_locked() {
    let dir = temp_dir("migrate");
    let path = dir.join("db.sqlite");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(&format!(
            "BEGIN; {}; PRAGMA user_version = 4; COMMIT;",
            schema::MIGRATIONS[..4].join(";\n")
        ))
        .unwrap();
        conn.execute_batch(
            "INSERT INTO requests (cluster, mode, requested_by, requested_at, origin_channel, expires_at, state)
               VALUES ('orders', 'detach', 'U0AAAA', 0, 'C0', 1, 'approved'),
                      ('billing', 'detach', 'U0AAAA', 0, 'C0', 1, 'denied');
             INSERT INTO runs (request_id, state, step, data, started_at) VALUES (1, 'needs_attention', 'dns', '{}', 0);",
        )
        .unwrap();
    }
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).unwrap());
    assert_eq!(
        store.create_request(&new_request("orders")).await.unwrap(),
        Err(RequestId::new(1))
    );
    assert_eq!(
        store.create_request(&new_request("billing")).await.unwrap(),
        Ok(RequestId::new(3))
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// An error (not a crash) in the second write of a composed operation: the first write stands and is
/// reported as made, or is undone, as the contract says.
#[tokio::test]
async fn an_error_in_the_second_write_of_a_composed_operation_leaves_what_the_contract_says() {
    let memory = Arc::new(MemoryStore::new());
    let store: Arc<dyn Store> = memory.clone();
    // create_request: the request is not recorded, and its cluster is not left locked.
    memory.fail_next("insert_request");
    assert!(store.create_request(&new_request("orders")).await.is_err());
    assert_eq!(
        store
            .cluster_lock(&ClusterName::parse("orders").unwrap())
            .await
            .unwrap(),
        None
    );
    // decide: the approval stands, without a run; creating it later is idempotent.
    let id = pending(&*store, "orders").await;
    memory.fail_next("create_run");
    let decided = store
        .decide(id, true, &person("U0BBBB"), t(10), "precheck", "{}", None)
        .await
        .unwrap();
    assert!(matches!(decided, Decided::Won { run_id: None }), "{decided:?}");
    assert_eq!(store.request(id).await.unwrap().unwrap().state, RequestState::Approved);
    assert_eq!(store.create_request(&new_request("orders")).await.unwrap(), Err(id));
    let run = store.create_run(id, "precheck", "{}", t(11)).await.unwrap();
    assert_eq!(store.create_run(id, "precheck", "{}", t(12)).await.unwrap(), run);
    // A run's change with a lost journal line: the change is made and reported made.
    memory.fail_next("journal");
    assert!(
        store
            .mark_needs_attention(run, Some("{}"), ("detach", "a deadline"), t(20), None)
            .await
            .unwrap()
    );
    assert_eq!(store.run(run).await.unwrap().unwrap().state, RunState::NeedsAttention);
    memory.fail_next("journal");
    assert!(store.back_to_running(run, t(21), None).await.unwrap());
    assert!(
        store
            .mark_needs_attention(run, None, ("detach", "again"), t(22), None)
            .await
            .unwrap()
    );
    memory.fail_next("journal");
    assert!(
        store
            .abandon_run(run, &person("U0BBBB"), "moved by hand", t(23))
            .await
            .unwrap()
            .is_ok()
    );
    assert_eq!(store.run(run).await.unwrap().unwrap().state, RunState::Abandoned);
}
