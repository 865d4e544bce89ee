use super::*;

fn t(s: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_second(1_800_000_000 + s).unwrap()
}

fn out<'a>(key: &'a str, kind: &'a str, target: Option<i64>, body: &'a str, dedup: Option<&'a str>) -> Outgoing<'a> {
    Outgoing {
        ordering_key: key,
        kind,
        channel: None,
        target,
        response_url: None,
        body,
        dedup_key: dedup,
    }
}

fn new_request(cluster: &str) -> NewRequest {
    NewRequest {
        cluster: ClusterName::parse(cluster).unwrap(),
        mode: Some(Mode::Detach),
        requested_by: SlackUserId::parse("U0AAAA").unwrap(),
        to_region: None,
        origin_channel: "C0INCIDENT".into(),
        response_url: Some("https://hooks.slack.com/commands/x".into()),
        requested_at: t(0),
        expires_at: t(900),
    }
}

fn pending(store: &Store, cluster: &str) -> i64 {
    let id = store.create_request(&new_request(cluster)).unwrap().unwrap();
    let msg = store.enqueue(&out("req", "post", None, "{}", None), t(0)).unwrap();
    assert!(store.mark_pending(id, "{}", Mode::Detach, msg).unwrap());
    id
}

#[test]
fn a_cluster_has_at_most_one_open_request() {
    let store = Store::in_memory().unwrap();
    let first = store.create_request(&new_request("orders")).unwrap().unwrap();
    assert_eq!(store.create_request(&new_request("orders")).unwrap(), Err(first));
    // Another cluster is independent.
    assert!(store.create_request(&new_request("billing")).unwrap().is_ok());
    // Once rejected, the cluster is free again.
    assert!(store.mark_rejected(first, "no secondary").unwrap());
    assert!(store.create_request(&new_request("orders")).unwrap().is_ok());
}

#[test]
fn only_one_of_many_decisions_wins_and_an_approval_creates_exactly_one_run() {
    let store = Store::in_memory().unwrap();
    let id = pending(&store, "orders");
    let bob = SlackUserId::parse("U0BBBB").unwrap();
    let won = store.decide(id, true, &bob, t(10), "precheck", "{}").unwrap();
    let Decided::Won { run_id: Some(run_id) } = won else {
        panic!("{won:?}")
    };
    for approve in [true, false, true] {
        let again = store.decide(id, approve, &bob, t(11), "precheck", "{}").unwrap();
        let Decided::Lost(r) = again else { panic!("{again:?}") };
        assert_eq!(r.state, RequestState::Approved);
        assert_eq!(r.decided_by.as_ref(), Some(&bob));
        assert_eq!(r.decided_at, Some(t(10)));
    }
    let run = store.run_of_request(id).unwrap().unwrap();
    assert_eq!(run.id, run_id);
    assert_eq!(run.state, RunState::Running);
    // A running run keeps the cluster locked; a finished one frees it.
    assert!(store.create_request(&new_request("orders")).unwrap().is_err());
    store.finish_run(run_id, RunState::Succeeded, "{}", t(20)).unwrap();
    assert!(store.create_request(&new_request("orders")).unwrap().is_ok());
}

#[test]
fn concurrent_decisions_from_threads_yield_one_winner() {
    let store = std::sync::Arc::new(Store::in_memory().unwrap());
    let id = pending(&store, "orders");
    let winners: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let store = store.clone();
                s.spawn(move || {
                    let who = SlackUserId::parse(&format!("U0B{i}")).unwrap();
                    matches!(
                        store.decide(id, i % 2 == 0, &who, t(10), "precheck", "{}").unwrap(),
                        Decided::Won { .. }
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| usize::from(h.join().unwrap())).sum()
    });
    assert_eq!(winners, 1);
}

#[test]
fn an_approval_after_expiry_loses_and_expiry_marks_due_requests() {
    let store = Store::in_memory().unwrap();
    let id = pending(&store, "orders");
    let bob = SlackUserId::parse("U0BBBB").unwrap();
    assert!(matches!(
        store.decide(id, true, &bob, t(900), "precheck", "{}").unwrap(),
        Decided::Lost(_)
    ));
    assert!(store.expire_due(t(899)).unwrap().is_empty());
    let expired = store.expire_due(t(900)).unwrap();
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].state, RequestState::Expired);
    assert!(store.expire_due(t(901)).unwrap().is_empty(), "expires once");
}

#[test]
fn the_journal_keeps_steps_in_order_per_run() {
    let store = Store::in_memory().unwrap();
    let id = pending(&store, "orders");
    let Decided::Won { run_id: Some(run) } = store
        .decide(id, true, &SlackUserId::parse("U0BBBB").unwrap(), t(1), "precheck", "{}")
        .unwrap()
    else {
        panic!()
    };
    store.journal(run, t(2), "precheck", "started", "").unwrap();
    store
        .checkpoint(run, "detach", "{\"a\":1}", Some(("precheck", "finished", "ok")), t(3))
        .unwrap();
    let j = store.journal_of(run).unwrap();
    assert_eq!(
        j.iter().map(|e| (e.seq, e.event.as_str())).collect::<Vec<_>>(),
        [(1, "started"), (2, "finished")]
    );
    let r = store.run(run).unwrap().unwrap();
    assert_eq!((r.step.as_str(), r.data.as_str()), ("detach", "{\"a\":1}"));
}

#[test]
fn the_outbox_hands_out_the_head_of_each_ordering_key() {
    let store = Store::in_memory().unwrap();
    let a1 = store.enqueue(&out("a", "post", None, "1", None), t(0)).unwrap();
    let _a2 = store.enqueue(&out("a", "reply", Some(a1), "2", None), t(0)).unwrap();
    let b1 = store.enqueue(&out("b", "post", None, "3", None), t(0)).unwrap();
    let heads: Vec<_> = store.outbox_heads().unwrap().iter().map(|i| i.id).collect();
    assert_eq!(heads, [a1, b1]);
    store.outbox_delivered(a1, Some("111.222")).unwrap();
    let heads: Vec<_> = store.outbox_heads().unwrap().iter().map(|i| i.body.clone()).collect();
    assert_eq!(heads, ["2", "3"]);
    assert_eq!(
        store.outbox_item(a1).unwrap().unwrap().delivered_ts.as_deref(),
        Some("111.222")
    );
}

#[test]
fn reopening_a_database_keeps_everything() {
    let dir = std::env::temp_dir().join(format!("afb-store-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("db.sqlite");
    let id = {
        let store = Store::open(&path).unwrap();
        store.create_request(&new_request("orders")).unwrap().unwrap()
    };
    let store = Store::open(&path).unwrap();
    assert_eq!(store.request(id).unwrap().unwrap().state, RequestState::Planning);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_message_with_a_dedup_key_is_queued_once() {
    let store = Store::in_memory().unwrap();
    let first = store
        .enqueue(&out("a", "reply", None, "x", Some("run:1:detach:started")), t(0))
        .unwrap();
    let other = store.enqueue(&out("a", "reply", None, "y", None), t(0)).unwrap();
    let again = store
        .enqueue(&out("a", "reply", None, "x", Some("run:1:detach:started")), t(1))
        .unwrap();
    assert_eq!(first, again);
    assert_ne!(first, other);
    assert_eq!(store.outbox_all().unwrap().len(), 2);
}

#[test]
fn a_request_signature_is_seen_once_and_forgotten_after_the_window() {
    let store = Store::in_memory().unwrap();
    assert!(store.first_sighting("v0=abc", t(0)).unwrap());
    assert!(!store.first_sighting("v0=abc", t(10)).unwrap());
    assert!(store.first_sighting("v0=def", t(10)).unwrap());
    // Ten minutes later the old signatures are forgotten (the timestamp window refuses them anyway),
    // in batches of the size asked for.
    assert_eq!(store.forget_requests_before(t(100), 1).unwrap(), 1);
    assert_eq!(store.forget_requests_before(t(100), 1).unwrap(), 1);
    assert_eq!(store.forget_requests_before(t(100), 1).unwrap(), 0);
    assert!(store.first_sighting("v0=abc", t(700)).unwrap());
}

#[test]
fn resume_and_abandon_are_compare_and_set_and_a_lost_one_says_how_the_run_is() {
    let store = Store::in_memory().unwrap();
    let id = pending(&store, "orders");
    let (alice, bob) = (
        SlackUserId::parse("U0AAAA").unwrap(),
        SlackUserId::parse("U0BBBB").unwrap(),
    );
    let Decided::Won { run_id: Some(run) } = store.decide(id, true, &bob, t(10), "precheck", "{}").unwrap() else {
        panic!("not approved")
    };
    // Only a run that needs attention may be resumed.
    let lost = store.ask_resume(run, &alice, t(11)).unwrap().unwrap_err();
    assert_eq!(lost.state, RunState::Running);
    assert!(
        store
            .mark_needs_attention(run, "{}", ("wait_writable", "deadline"), t(20))
            .unwrap()
    );
    assert!(
        !store
            .mark_needs_attention(run, "{}", ("wait_writable", "again"), t(21))
            .unwrap()
    );
    // It holds the cluster.
    assert!(store.create_request(&new_request("orders")).unwrap().is_err());
    store.ask_resume(run, &alice, t(22)).unwrap().unwrap();
    let token = t(22).as_millisecond();
    let lost = store.ask_resume(run, &bob, t(23)).unwrap().unwrap_err();
    assert_eq!(lost.control.resume_asked_by.as_ref(), Some(&alice), "asked once");
    // The asker cannot approve it; a button with another token decides nothing; a second person
    // can, once.
    let lost = store
        .decide_resume(run, token, &alice, true, t(30))
        .unwrap()
        .unwrap_err();
    assert_eq!(lost.state, RunState::NeedsAttention);
    assert!(store.decide_resume(run, token + 1, &bob, true, t(30)).unwrap().is_err());
    store.decide_resume(run, token, &bob, true, t(31)).unwrap().unwrap();
    let lost = store.decide_resume(run, token, &bob, true, t(32)).unwrap().unwrap_err();
    assert_eq!(
        (lost.state, lost.control.resumed_by.as_ref()),
        (RunState::Running, Some(&bob))
    );
    // A second round: the first round's ask and its buttons are gone.
    assert!(
        store
            .mark_needs_attention(run, "{}", ("update_dns", "refused"), t(33))
            .unwrap()
    );
    let now = store.run(run).unwrap().unwrap();
    assert_eq!((now.control.resume_asked_by, now.control.resume_asked_at), (None, None));
    assert!(
        store.decide_resume(run, token, &bob, true, t(34)).unwrap().is_err(),
        "an old button"
    );
    assert_eq!(store.run(run).unwrap().unwrap().state, RunState::NeedsAttention);
    // The bot's own late finish clears a pending ask too.
    store.ask_resume(run, &alice, t(35)).unwrap().unwrap();
    assert!(store.back_to_running(run, t(36)).unwrap());
    assert_eq!(store.run(run).unwrap().unwrap().control.resume_asked_by, None);
    // Abandoned once; then it has ended, and the cluster is free.
    store.abandon_run(run, &alice, "by hand", t(40)).unwrap().unwrap();
    let lost = store.abandon_run(run, &bob, "again", t(41)).unwrap().unwrap_err();
    assert_eq!(lost.state, RunState::Abandoned);
    assert_eq!(lost.control.abandon_reason.as_deref(), Some("by hand"));
    assert!(
        !store.finish_run(run, RunState::Succeeded, "{}", t(42)).unwrap(),
        "an abandoned run stays abandoned"
    );
    assert!(store.create_request(&new_request("orders")).unwrap().is_ok());
    let events: Vec<String> = store.journal_of(run).unwrap().into_iter().map(|e| e.event).collect();
    assert_eq!(
        events,
        [
            "needs_attention",
            "resume_approved",
            "needs_attention",
            "late_finish",
            "abandoned"
        ]
    );
}
