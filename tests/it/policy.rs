//! The approval policy through the real bot: several distinct approvers (the requester never counts,
//! one person counts once, whether named directly or through a user group), progress on the request
//! message and in its thread, expiry with too few approvals, per-cluster and per-mode layers with
//! defaults that keep one approver, `--reason` and `--ticket` checked with the rule shown, the plan's
//! mode checked again when the bot chose it, notify mentions, and a bad policy refused at start-up.

use crate::common;

use aurora_failover_bot::store::{RequestState, RunState, Store};
use awsim::{FaultCode, FaultSpec};
use common::*;
use std::time::Duration;

/// The test config plus `extra` (appended after `[[clusters]]`: `[approval.MODE]` tables, or
/// `[clusters.approval]`/`[clusters.notify]` of the last cluster).
fn with_policy(extra: &str) -> Options {
    Options {
        extra_toml: extra.to_owned(),
        ..Options::default()
    }
}

/// Sends `/aurora failover {args}` as ALICE; the immediate answer's text.
async fn ask(bot: &TestBot, args: &str) -> String {
    let (answer, _) = bot.command(ALICE, &format!("failover {args}")).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    answer.text()
}

/// Requests `/aurora failover {args}` as ALICE, waits for the approval message; returns the id.
async fn request_for(bot: &TestBot, args: &str) -> i64 {
    let text = ask(bot, args).await;
    let id = text
        .strip_prefix("Request #")
        .and_then(|t| t.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not accepted: {text}"));
    bot.request_message(id).await;
    id
}

/// Clicks Approve as `user`; the answer to the click.
async fn approve(bot: &TestBot, user: &str, id: i64) -> String {
    let url = bot.click(user, id, true).await;
    bot.answer_at(&url).await
}

/// The request message of `id` as it reads now: its latest update, or the post.
async fn message_now(bot: &TestBot, id: i64) -> standin::Recorded {
    let posted = bot.request_message(id).await;
    let ts = posted.ts.clone().unwrap();
    bot.updates(&ts).last().cloned().unwrap_or(posted)
}

/// Waits until the latest version of request `id`'s message contains `needle`; returns all its text.
async fn message_with(bot: &TestBot, id: i64, needle: &str) -> String {
    let ts = bot.request_message(id).await.ts.unwrap();
    bot.slack
        .wait_for(WAIT, |_| {
            bot.updates(&ts).last().map(all_text).filter(|t| t.contains(needle))
        })
        .await
        .unwrap_or_else(|| panic!("request #{id}'s message never said {needle:?}"))
}

/// Waits for a reply in the thread of request `id` containing `needle`; returns its text.
async fn reply_with(bot: &TestBot, id: i64, needle: &str) -> String {
    let ts = bot.request_message(id).await.ts.unwrap();
    bot.slack
        .wait_for(Duration::from_secs(30), |_| {
            thread_texts(bot, &ts).into_iter().find(|t| t.contains(needle))
        })
        .await
        .unwrap_or_else(|| panic!("no reply with {needle:?} in {:#?}", thread_texts(bot, &ts)))
}

/// The `audit` command's trail (what `aurora-failover-bot audit` prints), as (kind, user, what, detail).
async fn trail(store: &dyn Store) -> Vec<(String, String, String, String)> {
    aurora_failover_bot::audit::entries(store, jiff::Timestamp::UNIX_EPOCH)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.kind.to_owned(), e.user.unwrap_or_default(), e.what, e.detail))
        .collect()
}

/// The outcomes the audit log recorded for `action` (e.g. `approve`) on request `id`, as (user, outcome).
async fn audited(store: &dyn Store, action: &str, id: i64) -> Vec<(String, String)> {
    store
        .audit_log()
        .await
        .unwrap()
        .into_iter()
        .filter(|a| a.action == action && a.request_id == Some(id.into()))
        .map(|a| (a.user, a.outcome))
        .collect()
}

async fn no_run(bot: &TestBot, id: i64) {
    assert!(bot.store.run_of_request(id.into()).await.unwrap().is_none(), "no run");
    assert!(
        bot.sim.admin().calls_to("RemoveFromGlobalCluster").is_empty(),
        "nothing detached"
    );
}

const TWO_FOR_DETACH: &str = "[approval.detach]\napprovals_required = 2\n";

#[tokio::test]
async fn a_detach_needing_two_approvers_starts_only_at_the_second_distinct_approval() {
    let bot = TestBot::start_with(with_policy(TWO_FOR_DETACH)).await;
    let id = request_for(&bot, "orders --mode detach").await;
    let posted = all_text(&bot.request_message(id).await);
    assert!(posted.contains("*Waiting for approval* (0 of 2 approvals)"), "{posted}");
    assert!(
        posted.contains("*2 different approvers* must approve (0 so far)"),
        "{posted}"
    );

    // The requester never counts.
    let own = approve(&bot, ALICE, id).await;
    assert!(own.contains("cannot approve your own request"), "{own}");
    assert!(bot.request_state(id).await.approvals.is_empty());

    let first = approve(&bot, BOB, id).await;
    assert!(
        first.contains(&format!("Your approval of request #{id} is counted: 1 of 2")),
        "{first}"
    );
    let progress = message_with(&bot, id, "(1 of 2 approvals: <@U0BOB>)").await;
    assert!(progress.contains("(1 so far)"), "{progress}");
    assert!(has_buttons(&message_now(&bot, id).await), "still open for approval");
    reply_with(&bot, id, "Approved by <@U0BOB> (1 of 2). Waiting for 1 more.").await;

    // The same approver again counts once.
    let again = approve(&bot, BOB, id).await;
    assert!(
        again.contains(&format!("You have already approved request #{id}")) && again.contains("1 of 2"),
        "{again}"
    );
    let r = bot.request_state(id).await;
    assert_eq!((r.state, r.approvals.len()), (RequestState::Pending, 1));
    no_run(&bot, id).await;

    // A second, different approver (through the user group S0DBA) starts the run.
    let second = approve(&bot, CAROL, id).await;
    assert!(second.contains(&format!("You approved request #{id}")), "{second}");
    let run = bot.finished_run(id, Duration::from_secs(30)).await;
    assert_eq!(run.state, RunState::Succeeded);
    assert_eq!(bot.sim.admin().calls_to("RemoveFromGlobalCluster").len(), 1);
    bot.slack_settled().await;
    let done = all_text(&message_now(&bot, id).await);
    assert!(
        done.contains("*Approved* by <@U0BOB>, <@U0CAROL> · *Completed*"),
        "{done}"
    );
    let ts = bot.request_message(id).await.ts.unwrap();
    assert_eq!(
        thread_texts(&bot, &ts)
            .iter()
            .filter(|t| t.contains("(1 of 2)"))
            .count(),
        1,
        "the first approval told once"
    );

    // The audit has each approval: counted, refused the second time, and the deciding one.
    assert_eq!(
        audited(&*bot.store, "approve", id).await,
        [
            (ALICE.to_owned(), "refused: own request".to_owned()),
            (BOB.to_owned(), "counted (1 of 2)".to_owned()),
            (
                BOB.to_owned(),
                format!("refused: already approved request #{id} (1 of 2)")
            ),
            (CAROL.to_owned(), "done".to_owned()),
        ]
    );
    let trail = trail(&*bot.store).await;
    assert!(
        trail
            .iter()
            .any(|(kind, user, what, _)| kind == "approval" && user == BOB && what == "approval counted"),
        "{trail:#?}"
    );
    assert!(
        trail
            .iter()
            .any(|(kind, user, _, _)| kind == "decision" && user == CAROL),
        "{trail:#?}"
    );
}

#[tokio::test]
async fn a_request_expiring_with_one_of_two_approvals_starts_nothing_and_refuses_a_late_approval() {
    let bot = TestBot::start_with(Options {
        request_ttl_secs: 60,
        ..with_policy(TWO_FOR_DETACH)
    })
    .await;
    let id = request_for(&bot, "orders --mode detach").await;
    approve(&bot, BOB, id).await;
    message_with(&bot, id, "(1 of 2 approvals: <@U0BOB>)").await;
    bot.clock.advance(Duration::from_secs(61));
    poll_until("the expiry", Duration::from_millis(50), async || {
        (bot.request_state(id).await.state == RequestState::Expired).then_some(())
    })
    .await;
    let expired = message_with(&bot, id, "*Expired*").await;
    assert!(
        expired.contains("*Expired* with 1 of 2 approvals: <@U0BOB>"),
        "{expired}"
    );
    assert!(!has_buttons(&message_now(&bot, id).await));

    let late = approve(&bot, CAROL, id).await;
    assert!(late.contains(&format!("Request #{id} has expired")), "{late}");
    let r = bot.request_state(id).await;
    assert_eq!((r.state, r.approvals.len()), (RequestState::Expired, 1));
    no_run(&bot, id).await;
    let trail = trail(&*bot.store).await;
    assert!(
        trail
            .iter()
            .any(|(kind, _, what, _)| kind == "expired" && what == "expired with 1 approval(s), not enough"),
        "{trail:#?}"
    );
}

/// Two clusters from the emulator's fleet: `c0` with `[clusters.approval.failover]`, `c1` with no
/// policy of its own.
fn two_clusters() -> Options {
    let cluster = |i: usize| {
        format!(
            "[[clusters]]\nname = \"c{i}\"\nglobal_cluster_id = \"g{i}-global\"\nregions = [\"us-east-1\", \"us-west-2\"]\n\
             hosted_zone_id = \"{ZONE}\"\nwriter_record = \"w{i}.aurora_private_hosted_zone\"\n\
             reader_record = \"r{i}.aurora_private_hosted_zone\"\nrecord_ttl = 1\n"
        )
    };
    Options {
        scenario: awsim::Scenario::fleet(2),
        clusters_toml: Some(format!(
            "{}[clusters.approval.failover]\napprovals_required = 2\n\n{}",
            cluster(0),
            cluster(1)
        )),
        ..Options::default()
    }
}

#[tokio::test]
async fn a_cluster_may_ask_two_approvers_for_failover_only_and_a_cluster_without_a_policy_keeps_one() {
    let bot = TestBot::start_with(two_clusters()).await;
    // c0's failover needs two.
    let id = request_for(&bot, "c0 --mode failover").await;
    let text = all_text(&bot.request_message(id).await);
    assert!(text.contains("(0 of 2 approvals)"), "{text}");
    let first = approve(&bot, BOB, id).await;
    assert!(first.contains("counted: 1 of 2"), "{first}");
    assert!(bot.store.run_of_request(id.into()).await.unwrap().is_none());
    // Withdrawn by its requester, it frees the cluster.
    let url = bot.click(ALICE, id, false).await;
    assert!(bot.answer_at(&url).await.contains(&format!("You denied request #{id}")));

    // c0's switchover keeps one approver.
    let id = request_for(&bot, "c0 --mode switchover").await;
    let text = all_text(&bot.request_message(id).await);
    assert!(
        !text.contains("of 2 approvals") && !text.contains("different approvers"),
        "{text}"
    );
    let done = approve(&bot, BOB, id).await;
    assert!(done.contains(&format!("You approved request #{id}")), "{done}");
    assert_eq!(
        bot.finished_run(id, Duration::from_secs(30)).await.state,
        RunState::Succeeded
    );

    // c1 has no policy of its own: one approver, even for a failover.
    let id = request_for(&bot, "c1 --mode failover").await;
    let text = all_text(&bot.request_message(id).await);
    assert!(!text.contains("of 2 approvals"), "{text}");
    let done = approve(&bot, CAROL, id).await;
    assert!(done.contains(&format!("You approved request #{id}")), "{done}");
    assert_eq!(
        bot.finished_run(id, Duration::from_secs(30)).await.state,
        RunState::Succeeded
    );
    assert_eq!(bot.sim.admin().calls_to("FailoverGlobalCluster").len(), 1);
    assert_eq!(bot.sim.admin().calls_to("SwitchoverGlobalCluster").len(), 1);
}

#[tokio::test]
async fn a_person_named_directly_and_in_an_approving_group_counts_once() {
    let bot = TestBot::start_with(Options {
        // BOB is an approver by name and through S0DBA.
        slack_setup: Some(Box::new(|s: &standin::SlackStandIn| {
            s.set_group("S0DBA", &[BOB, CAROL])
        })),
        ..with_policy(TWO_FOR_DETACH)
    })
    .await;
    let id = request_for(&bot, "orders --mode detach").await;
    // A double click: two Approves by BOB at once, one counted.
    let (a, b) = tokio::join!(approve(&bot, BOB, id), approve(&bot, BOB, id));
    let answers = [a, b];
    assert_eq!(
        answers.iter().filter(|a| a.contains("counted: 1 of 2")).count(),
        1,
        "{answers:?}"
    );
    assert_eq!(
        answers.iter().filter(|a| a.contains("already approved")).count(),
        1,
        "{answers:?}"
    );
    let again = approve(&bot, BOB, id).await;
    assert!(again.contains("already approved"), "{again}");
    let r = bot.request_state(id).await;
    assert_eq!((r.state, r.approvals.len()), (RequestState::Pending, 1));
    no_run(&bot, id).await;
    approve(&bot, CAROL, id).await;
    assert_eq!(
        bot.finished_run(id, Duration::from_secs(30)).await.state,
        RunState::Succeeded
    );
    let who: Vec<String> = bot
        .request_state(id)
        .await
        .approvals
        .iter()
        .map(|a| a.by.to_string())
        .collect();
    assert_eq!(who, [BOB, CAROL]);
}

/// Nothing was recorded or posted: no request in the store, no message in the channel.
async fn nothing_recorded(bot: &TestBot) {
    let requests = bot.store.requests_since(jiff::Timestamp::MIN).await.unwrap();
    assert!(requests.is_empty(), "{requests:?}");
    assert!(bot.slack.delivered("chat.postMessage").is_empty());
}

#[tokio::test]
async fn a_required_reason_is_asked_for_and_then_shown_on_the_message_in_history_and_the_audit() {
    let bot = TestBot::start_with(with_policy("[clusters.approval]\nrequire_reason = true\n")).await;
    let (answer, _) = bot.command(ALICE, "failover orders").await;
    let refused = answer.text();
    assert!(
        refused.contains("needs a reason") && refused.contains("`--reason"),
        "{refused}"
    );
    assert!(
        answer.body.contains("ephemeral"),
        "to the requester only: {}",
        answer.body
    );
    nothing_recorded(&bot).await;
    // Blank quotes are no reason.
    let refused = ask(&bot, "orders --reason \"  \"").await;
    assert!(refused.starts_with("`--reason` needs a value"), "{refused}");
    nothing_recorded(&bot).await;

    let id = request_for(
        &bot,
        "orders --reason \"us-east-1 is down\" --mode detach --ticket INC-7",
    )
    .await;
    let text = all_text(&bot.request_message(id).await);
    assert!(
        text.contains("*Reason:* us-east-1 is down · *Ticket:* `INC-7`"),
        "{text}"
    );
    assert_eq!(bot.request_state(id).await.reason.as_deref(), Some("us-east-1 is down"));
    let (answer, _) = bot.command(MALLORY, "history").await;
    assert!(
        answer.text().contains("*Reason:* us-east-1 is down"),
        "{}",
        answer.text()
    );
    let requested = audited(&*bot.store, "request failover orders", id).await;
    assert_eq!(
        requested,
        [(
            ALICE.to_owned(),
            "recorded; reason: us-east-1 is down; ticket: INC-7".to_owned()
        )]
    );
    let trail = trail(&*bot.store).await;
    assert!(
        trail
            .iter()
            .any(|(kind, _, _, detail)| kind == "request"
                && detail.ends_with("reason: us-east-1 is down; ticket: INC-7")),
        "{trail:#?}"
    );
}

#[tokio::test]
async fn a_ticket_pattern_refuses_a_missing_or_foreign_ticket_naming_the_pattern() {
    let bot = TestBot::start_with(with_policy("[clusters.approval]\nticket_pattern = 'INC-\\d+'\n")).await;
    let refused = ask(&bot, "orders").await;
    assert!(
        refused.contains("needs a ticket matching `INC-\\d+`") && refused.contains("`--ticket`"),
        "{refused}"
    );
    nothing_recorded(&bot).await;
    let refused = ask(&bot, "orders --ticket JIRA-1").await;
    assert!(
        refused.contains("ticket `JIRA-1` does not match `INC-\\d+`"),
        "{refused}"
    );
    // The whole ticket must match.
    let refused = ask(&bot, "orders --ticket INC-42x").await;
    assert!(refused.contains("does not match"), "{refused}");
    nothing_recorded(&bot).await;

    let id = request_for(&bot, "orders --ticket INC-42").await;
    let text = all_text(&bot.request_message(id).await);
    assert!(text.contains("*Ticket:* `INC-42`"), "{text}");
    let (answer, _) = bot.command(MALLORY, "history").await;
    assert!(answer.text().contains("`INC-42`"), "{}", answer.text());
}

#[tokio::test]
async fn a_mode_chosen_by_the_bot_whose_policy_is_stricter_is_rejected_at_planning_with_the_rule() {
    let bot = TestBot::start_with(with_policy("[approval.switchover]\nrequire_reason = true\n")).await;
    // Without --mode the request itself asks for no reason; the bot then chooses a switchover.
    let (answer, url) = bot.command(ALICE, "failover orders").await;
    assert!(answer.text().starts_with("Request #1"), "{}", answer.text());
    let told = bot
        .answer_containing(&url, "could not be prepared")
        .await
        .expect("the requester is told");
    assert!(
        told.contains("the bot chose switchover") && told.contains("switchover of orders needs a reason"),
        "{told}"
    );
    assert!(told.contains("--reason"), "{told}");
    poll_until("the rejection", Duration::from_millis(50), async || {
        (bot.request_state(1).await.state == RequestState::Rejected).then_some(())
    })
    .await;
    assert!(
        bot.slack.delivered("chat.postMessage").is_empty(),
        "nothing posted for approval"
    );
    // With a reason it is posted.
    let id = request_for(&bot, "orders --reason \"planned maintenance\"").await;
    let text = all_text(&bot.request_message(id).await);
    assert!(text.contains("(switchover)"), "{text}");
}

#[tokio::test]
async fn notify_mentions_a_group_on_the_request_and_a_person_when_a_run_needs_attention() {
    let bot = TestBot::start_with(Options {
        promote_timeout_secs: 2,
        ..with_policy("[clusters.notify]\nrequest = [\"S0DBA\"]\nattention = [\"U0ONCALL\"]\n")
    })
    .await;
    let id = bot.request().await;
    let posted = bot.request_message(id).await;
    assert!(
        posted.text().contains("<!subteam^S0DBA>"),
        "in the text: {}",
        posted.text()
    );
    let blocks = serde_json::to_string(&posted.body["blocks"]).unwrap();
    assert!(blocks.contains("cc <!subteam^S0DBA>"), "in the blocks: {blocks}");
    assert!(!blocks.contains("U0ONCALL"), "{blocks}");

    bot.click(BOB, id, true).await;
    wait_for_step(&bot, id, "wait_writable").await;
    bot.sim
        .admin()
        .inject(FaultSpec {
            action: "DescribeDBClusters".into(),
            region: Some("us-west-2".into()),
            error: Some(FaultCode::ServiceUnavailable),
            delay_ms: None,
            delay_response_ms: None,
            count: None,
        })
        .unwrap();
    let stop = reply_with(&bot, id, "*Needs attention*").await;
    assert!(stop.contains("<@U0ONCALL>"), "{stop}");
    let ts = posted.ts.unwrap();
    let reply = bot
        .thread(&ts)
        .into_iter()
        .find(|r| r.text().contains("*Needs attention*") || all_text(r).contains("*Needs attention*"))
        .unwrap();
    assert!(all_text(&reply).contains("cc <@U0ONCALL>"), "{}", all_text(&reply));
    // Once decided, the request message mentions nobody any more.
    let now = all_text(&message_now(&bot, id).await);
    assert!(!now.contains("<!subteam^S0DBA>"), "{now}");
    bot.sim.admin().clear_faults();
}

#[tokio::test]
async fn a_bad_policy_stops_serve_and_check_config_naming_the_key() {
    let sim = awsim::start("127.0.0.1:0".parse().unwrap(), awsim::Scenario::two_region_example())
        .await
        .unwrap();
    let dir = temp_dir("policy-config");
    let cases = [
        (
            "[approval.detach]\napprovals_required = 0\n",
            "approval.detach.approvals_required",
        ),
        (
            "[clusters.approval]\napprovers = [\"U0BOB\", \"U0CAROL\"]\napprovals_required = 3\n",
            "clusters[0].approval.approvals_required",
        ),
        (
            "[approval.failover]\nticket_pattern = 'INC-('\n",
            "approval.failover.ticket_pattern",
        ),
        (
            "[clusters.approval]\nticket_pattern = '.*'\n",
            "clusters[0].approval.ticket_pattern",
        ),
        ("[clusters.notify]\nrequest = [\"bob\"]\n", "clusters[0].notify.request"),
        ("[approval.rollback]\napprovals_required = 2\n", "rollback"),
    ];
    for (i, (extra, key)) in cases.iter().enumerate() {
        let config = dir.join(format!("bot-{i}.toml"));
        let options = with_policy(extra);
        std::fs::write(
            &config,
            config_toml("http://127.0.0.1:1/api", &dir.join("bot.db"), &options),
        )
        .unwrap();
        let config = config.to_str().unwrap();
        let (code, _, stderr) = run_binary(sim.url(), &["serve", "--config", config], &[]).await;
        assert_eq!(code, Some(2), "case {i}: {stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "case {i}: one line: {stderr}");
        assert!(lines[0].contains(key), "case {i}: {key} not named: {stderr}");
        // check-config reports it as its failed "config file" check (and exits 1, as for any failed check).
        let (code, stdout, _) = run_binary(sim.url(), &["check-config", "--config", config], &[]).await;
        assert_eq!(code, Some(1), "case {i}: {stdout}");
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with("FAIL config file: ") && l.contains(key)),
            "case {i}: {stdout}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `/aurora pending` as `user`: all its text and its buttons' labels.
async fn pending_as(bot: &TestBot, user: &str) -> (String, Vec<String>) {
    let (answer, url) = bot.command(user, "pending").await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let list = bot
        .slack
        .wait_for(WAIT, |_| bot.slack.responses_to(&url).first().cloned())
        .await
        .unwrap_or_else(|| panic!("no pending list for {user}"));
    let labels = list.body["blocks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|b| b["type"] == "actions")
        .flat_map(|b| b["elements"].as_array().cloned().unwrap_or_default())
        .map(|e| e["text"]["text"].as_str().unwrap_or_default().to_owned())
        .collect();
    (all_text(&list), labels)
}

#[tokio::test]
async fn pending_shows_the_progress_and_offers_no_second_approve_to_a_counted_approver() {
    let bot = TestBot::start_with(with_policy(TWO_FOR_DETACH)).await;
    let id = request_for(&bot, "orders --mode detach").await;
    let (text, buttons) = pending_as(&bot, BOB).await;
    assert!(text.contains("· 0 of 2 approvals ·"), "{text}");
    assert_eq!(buttons, ["Approve", "Deny"]);
    approve(&bot, BOB, id).await;

    let (text, buttons) = pending_as(&bot, BOB).await;
    assert!(text.contains("· 1 of 2 approvals: <@U0BOB> ·"), "{text}");
    assert!(
        text.contains("your approval is counted: you may still deny it"),
        "{text}"
    );
    assert_eq!(buttons, ["Deny"], "no second Approve for BOB");
    let (text, buttons) = pending_as(&bot, CAROL).await;
    assert!(text.contains("· 1 of 2 approvals: <@U0BOB> ·"), "{text}");
    assert_eq!(buttons, ["Approve", "Deny"]);

    // BOB may still deny: the modal opens for him.
    let url = bot.slack.response_url();
    let answer = bot
        .sender
        .click(
            BOB,
            CHANNEL,
            "1800000000.000999",
            "pending_deny",
            &id.to_string(),
            &url,
            bot.now(),
        )
        .await;
    assert_eq!(answer.status, 200);
    let opened = bot
        .slack
        .wait_for(WAIT, |_| bot.slack.delivered("views.open").first().cloned())
        .await
        .expect("the deny-reason modal");
    assert_eq!(opened.body["view"]["private_metadata"], id.to_string());
}
