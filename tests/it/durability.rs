//! A run survives the bot being killed (SIGKILL) at every step boundary, a graceful stop (SIGTERM), and
//! a Slack outage: it completes with the outcome an uninterrupted run would have had, sends
//! RemoveFromGlobalCluster once, and leaves every reply in its thread once, in order. These tests run
//! the real binary (`serve --config`) against the emulator and the Slack stand-in in this process.

use crate::common;
use aurora_failover_bot::store::RequestId;

use aurora_failover_bot::store::RunState;
use aurora_failover_bot::types::SlackUserId;
use awsim::{FaultSpec, Timings};
use common::process::BotProcess;
use common::*;
use standin::{Failure, PostKind, Recorded, Secret, SlackStandIn};
use std::time::{Duration, Instant};

/// A world with the emulator, the Slack stand-in and a bot process.
struct World {
    sim: awsim::Awsim,
    slack: SlackStandIn,
    bot: BotProcess,
    dir: std::path::PathBuf,
}

impl World {
    async fn start(options: Options) -> World {
        let mut scenario = options.scenario.clone();
        scenario.timings = options.timings;
        let sim = awsim::start("127.0.0.1:0".parse().unwrap(), scenario).await.unwrap();
        let slack = SlackStandIn::start(&Secret::new(BOT_TOKEN)).await.unwrap();
        slack.set_group("S0DBA", &[CAROL]);
        slack.set_group("S0ONCALL", &[DAVE]);
        if let Some(setup) = &options.slack_setup {
            setup(&slack);
        }
        let dir = temp_dir("durability");
        let mut bot = BotProcess::new(&sim, &slack, &dir, &options);
        bot.start().await;
        World { sim, slack, bot, dir }
    }

    fn now() -> i64 {
        jiff::Timestamp::now().as_second()
    }

    /// Requests a detach of orders as ALICE; returns the request id and its message's ts.
    async fn request(&self) -> (i64, String) {
        self.request_mode("detach").await
    }

    /// Requests a failover of orders by `mode` as ALICE; returns the request id and its message's ts.
    async fn request_mode(&self, mode: &str) -> (i64, String) {
        let id = self.ask(mode).await;
        (id, self.message_ts(id).await)
    }

    /// Sends `/aurora failover orders --mode {mode}` as ALICE; returns the request id.
    async fn ask(&self, mode: &str) -> i64 {
        let url = self.slack.response_url();
        let answer = self
            .bot
            .sender()
            .command(
                ALICE,
                CHANNEL,
                &format!("failover orders --mode {mode}"),
                &url,
                Self::now(),
            )
            .await;
        assert!(answer.text().starts_with("Request #"), "{answer:?}");
        let id: i64 = answer.text()["Request #".len()..]
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        id
    }

    async fn message_ts(&self, id: i64) -> String {
        self.bot.message_ts(id).await
    }

    /// Holds the answer of the next channel message of `kind`, runs `trigger`, waits until Slack has
    /// that message (the bot has not heard back), kills the bot there and starts it again.
    async fn kill_between_post_and_record(&mut self, kind: PostKind, trigger: impl AsyncFnOnce(&Self)) {
        let before = self.slack.messages(CHANNEL).len();
        self.slack.hold_next_post(kind, Duration::from_secs(120));
        trigger(self).await;
        wait_until("the held post", async || {
            self.slack.messages(CHANNEL)[before..]
                .iter()
                .any(|m| match kind {
                    PostKind::TopLevel => m.thread_ts.is_none(),
                    PostKind::Reply => m.thread_ts.is_some() && !m.broadcast,
                    PostKind::Broadcast => m.broadcast,
                })
                .then_some(())
        })
        .await;
        // Give the bot a moment it would use to record the post, were the answer not held.
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.bot.kill();
        self.bot.start().await;
    }

    async fn approve(&self, id: i64, ts: &str) {
        self.bot.approve(&self.slack, id, ts).await
    }

    /// Waits until the bot has delivered everything it queued (so that a kill does not land in the
    /// middle of a Slack call; were it to, the message would still be posted once: see
    /// `each_channel_message_is_posted_once_when_the_bot_dies_between_the_post_and_its_record`).
    async fn slack_idle(&self) {
        let store = self.bot.store();
        wait_until("the outbox to drain", async || {
            store
                .outbox_all()
                .await
                .ok()?
                .iter()
                .all(|i| i.state != "pending")
                .then_some(())
        })
        .await;
    }

    async fn run_step(&self, id: i64) -> Option<(String, RunState)> {
        self.bot
            .store()
            .run_of_request(id.into())
            .await
            .ok()
            .flatten()
            .map(|r| (r.step, r.state))
    }

    async fn journal_has(&self, id: i64, step: &str, event: &str) -> bool {
        self.bot.journal_has(id, step, event).await
    }

    async fn finished(&self, id: i64) -> RunState {
        self.bot.finished(id).await
    }

    fn thread(&self, ts: &str) -> Vec<Recorded> {
        common::thread_now(&self.slack, ts)
    }

    /// The run's outcome, as an uninterrupted run would have it: DNS at the new writer,
    /// RemoveFromGlobalCluster once, every reply once and in order.
    async fn assert_completed_once(&self, id: i64, ts: &str) {
        assert_eq!(self.finished(id).await, RunState::Succeeded, "{}", self.bot.log_text());
        // The outcome's reply is queued right after the run's end is committed (a durable commit,
        // a few ms): wait for it to be delivered before reading the thread.
        wait_until("the outcome's reply", async || {
            self.thread(ts)
                .iter()
                .any(|r| r.text().contains("*Failover complete*"))
                .then_some(())
        })
        .await;
        self.slack_idle().await;
        assert_eq!(
            self.sim.admin().calls_to("RemoveFromGlobalCluster").len(),
            1,
            "RemoveFromGlobalCluster once"
        );
        let west = self.sim.admin().cluster("us-west-2", "orders-west").unwrap();
        assert_eq!(
            self.sim.admin().record(ZONE, WRITER_RECORD, "CNAME").unwrap().values,
            [west.endpoint]
        );
        assert_eq!(
            self.sim.admin().record(ZONE, READER_RECORD, "CNAME").unwrap().values,
            [west.reader_endpoint]
        );
        let defects = self.slack.wording_defects();
        assert!(
            defects.is_empty(),
            "messages break Slack's rules or read badly: {defects:#?}"
        );
        let thread: Vec<String> = self.thread(ts).iter().map(|r| r.text().to_owned()).collect();
        // One reply per step, edited in place to its end: none is left saying it started.
        assert!(
            thread
                .iter()
                .all(|t| !t.contains(":arrow_forward:") && !t.contains(":hourglass_flowing_sand:")),
            "{thread:#?}"
        );
        let posts = common::thread_posts(&self.slack, ts).len();
        assert!(
            posts <= 10,
            "a detach run posts at most 10 replies, not {posts}: {thread:#?}"
        );
        common::assert_once_in_order(&thread, &common::DETACH_THREAD);
        assert!(thread.last().unwrap().contains("*Failover complete*"), "{thread:#?}");
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.slack.stop();
        // AFB_KEEP_TEST_DIRS=1 keeps the bot's log and database for a look after a failure.
        if std::env::var_os("AFB_KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

async fn wait_until<T>(what: &str, probe: impl AsyncFnMut() -> Option<T>) -> T {
    common::poll_until(what, Duration::from_millis(20), probe).await
}

fn slow(detach_ms: u64, dns_propagation_ms: u64) -> Options {
    Options {
        timings: Timings {
            detach_ms,
            dns_propagation_ms,
            ..Options::default().timings
        },
        ..Options::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_recorded_just_before_a_crash_is_run_after_the_restart() {
    let mut w = World::start(slow(400, 300)).await;
    let (id, ts) = w.request().await;
    w.slack_idle().await;
    w.bot.kill();
    // Exactly what the Approve click commits, with the bot dead before it could start the run.
    let store = w.bot.store();
    let bob = SlackUserId::parse(BOB).unwrap();
    let decided = store
        .decide(
            id.into(),
            true,
            &bob.clone().into(),
            jiff::Timestamp::now(),
            "precheck",
            "{}",
            None,
        )
        .await
        .unwrap();
    assert!(matches!(
        decided,
        aurora_failover_bot::store::Decided::Won { run_id: Some(_) }
    ));
    drop(store);
    w.bot.start().await;
    w.assert_completed_once(id, &ts).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_after_remove_from_global_cluster_reached_aws_does_not_send_it_again() {
    let mut w = World::start(slow(400, 300)).await;
    let (id, ts) = w.request().await;
    // RemoveFromGlobalCluster takes effect at once, but its answer is held: the bot dies waiting.
    w.sim
        .admin()
        .inject(FaultSpec {
            action: "RemoveFromGlobalCluster".into(),
            region: None,
            error: None,
            delay_ms: None,
            delay_response_ms: Some(5_000),
            count: Some(1),
        })
        .unwrap();
    w.approve(id, &ts).await;
    wait_until("RemoveFromGlobalCluster", async || {
        (!w.sim.admin().calls_to("RemoveFromGlobalCluster").is_empty()).then_some(())
    })
    .await;
    w.slack_idle().await;
    assert!(
        !w.journal_has(id, "detach", "finished").await,
        "the kill lands before the bot saw the answer"
    );
    w.bot.kill();
    assert_eq!(
        w.sim.admin().global_cluster("orders-global").unwrap().members.len(),
        1,
        "the detach took effect"
    );
    w.bot.start().await;
    w.assert_completed_once(id, &ts).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_while_waiting_for_the_writer_resumes_the_wait() {
    let mut w = World::start(slow(4_000, 300)).await;
    let (id, ts) = w.request().await;
    w.approve(id, &ts).await;
    wait_until("the wait for the writer", async || {
        w.journal_has(id, "wait_writable", "observed").await.then_some(())
    })
    .await;
    w.slack_idle().await;
    assert_eq!(
        w.run_step(id).await,
        Some(("wait_writable".to_owned(), RunState::Running))
    );
    w.bot.kill();
    w.bot.start().await;
    w.assert_completed_once(id, &ts).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_after_the_dns_change_was_submitted_but_before_insync_resumes_and_completes() {
    let mut w = World::start(slow(400, 4_000)).await;
    let (id, ts) = w.request().await;
    w.approve(id, &ts).await;
    wait_until("ChangeResourceRecordSets", async || {
        w.sim
            .admin()
            .calls_to("ChangeResourceRecordSets")
            .iter()
            .any(|c| c.status == 200)
            .then_some(())
    })
    .await;
    // The change id is checkpointed when the step is journaled as finished (its reply is queued just
    // before): a kill before that checkpoint would send the (idempotent) UPSERT again.
    wait_until("the DNS step's checkpoint", async || {
        w.journal_has(id, "update_dns", "finished").await.then_some(())
    })
    .await;
    w.slack_idle().await;
    assert!(
        !w.journal_has(id, "wait_insync", "finished").await,
        "killed before INSYNC"
    );
    w.bot.kill();
    w.bot.start().await;
    w.assert_completed_once(id, &ts).await;
    // The UPSERT is safe to repeat, but the change id was checkpointed: it was not repeated.
    assert_eq!(w.sim.admin().calls_to("ChangeResourceRecordSets").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_run_stops_within_a_bounded_time_and_the_next_start_resumes() {
    let mut w = World::start(slow(5_000, 300)).await;
    let (id, ts) = w.request().await;
    w.approve(id, &ts).await;
    wait_until("the wait for the writer", async || {
        w.journal_has(id, "wait_writable", "started").await.then_some(())
    })
    .await;
    let (took, status) = w.bot.terminate().await;
    assert!(status.success(), "exit status {status:?}: {}", w.bot.log_text());
    assert!(took < Duration::from_secs(15), "took {took:?} to stop");
    assert!(
        w.journal_has(id, "wait_writable", "interrupted").await,
        "the run recorded where it stopped"
    );
    assert_eq!(
        w.run_step(id).await,
        Some(("wait_writable".to_owned(), RunState::Running))
    );
    // While the bot is down, nobody answers; when it is back, the run resumes.
    w.bot.start().await;
    w.assert_completed_once(id, &ts).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slack_outage_during_a_run_neither_slows_nor_fails_it_and_the_thread_catches_up_in_order() {
    let w = World::start(slow(400, 300)).await;
    let (id, ts) = w.request().await;
    w.slack_idle().await;
    w.approve(id, &ts).await;
    // Slack rate-limits everything, then is down.
    w.slack.outage(Failure::RateLimited { retry_after_secs: 1 });
    let started = Instant::now();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    w.slack.outage(Failure::Unavailable);
    // The AWS steps go on, on schedule: about a second of emulated AWS time plus polling.
    assert_eq!(w.finished(id).await, RunState::Succeeded);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(8), "the run took {took:?} during the outage");
    let west = w.sim.admin().cluster("us-west-2", "orders-west").unwrap();
    assert_eq!(
        w.sim.admin().record(ZONE, WRITER_RECORD, "CNAME").unwrap().values,
        [west.endpoint]
    );
    // Slack comes back; the thread catches up.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    w.slack.end_outage();
    w.assert_completed_once(id, &ts).await;
    // 429s were honoured: no retry of a rate-limited call came before its Retry-After.
    let calls = w.slack.calls();
    let limited: Vec<&Recorded> = calls.iter().filter(|c| c.status == 429).collect();
    assert!(!limited.is_empty(), "the outage was seen");
    for l in limited {
        if let Some(next) = calls
            .iter()
            .find(|c| c.seq > l.seq && c.method == l.method && c.body == l.body)
        {
            assert!(
                next.at_ms >= l.at_ms + 1_000 - 50,
                "retried {} ms after a 429",
                next.at_ms - l.at_ms
            );
        }
    }
    assert!(calls.iter().any(|c| c.status == 503), "the 503s were seen");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_after_switchover_global_cluster_reached_aws_does_not_send_it_again() {
    let mut w = World::start(Options {
        timings: Timings {
            switchover_ms: 1_500,
            ..Options::default().timings
        },
        ..Options::default()
    })
    .await;
    let (id, ts) = w.request_mode("switchover").await;
    assert_eq!(id, 1);
    let store = w.bot.store();
    w.sim
        .admin()
        .inject(FaultSpec {
            action: "SwitchoverGlobalCluster".into(),
            region: None,
            error: None,
            delay_ms: None,
            delay_response_ms: Some(5_000),
            count: Some(1),
        })
        .unwrap();
    w.approve(1, &ts).await;
    wait_until("SwitchoverGlobalCluster", async || {
        (!w.sim.admin().calls_to("SwitchoverGlobalCluster").is_empty()).then_some(())
    })
    .await;
    w.slack_idle().await;
    assert_eq!(
        store.run_of_request(RequestId::new(1)).await.unwrap().unwrap().step,
        "switchover",
        "killed while the call's answer is held back"
    );
    w.bot.kill();
    w.bot.start().await;
    assert_eq!(w.finished(1).await, RunState::Succeeded, "{}", w.bot.log_text());
    assert_eq!(w.sim.admin().calls_to("SwitchoverGlobalCluster").len(), 1, "sent once");
    let west = w.sim.admin().cluster("us-west-2", "orders-west").unwrap();
    assert_eq!(
        w.sim.admin().record(ZONE, WRITER_RECORD, "CNAME").unwrap().values,
        [west.endpoint]
    );
    // The outcome's reply is queued right after the run's end is committed: wait for it.
    wait_until("the outcome's reply", async || {
        w.thread(&ts)
            .iter()
            .any(|r| r.text().contains("*Switchover complete*"))
            .then_some(())
    })
    .await;
    w.slack_idle().await;
    let thread: Vec<String> = w.thread(&ts).iter().map(|r| r.text().to_owned()).collect();
    let step = "*Switch over (managed, no data loss)*";
    let posted = common::thread_posts(&w.slack, &ts)
        .iter()
        .filter(|p| p.text().contains(step))
        .count();
    assert_eq!(posted, 1, "one reply for the step: {thread:#?}");
    let done = thread.iter().filter(|t| t.contains(&format!("{step} ("))).count();
    assert_eq!(done, 1, "edited to its end: {thread:#?}");
    assert!(thread.last().unwrap().contains("*Switchover complete*"), "{thread:#?}");
    let defects = w.slack.wording_defects();
    assert!(defects.is_empty(), "{defects:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_resumed_past_its_recheck_checks_again_before_its_first_change() {
    let mut w = World::start(Options::default()).await;
    let (id, ts) = w.request_mode("switchover").await;
    assert_eq!(id, 1);
    let store = w.bot.store();
    w.slack_idle().await;
    w.bot.kill();
    // While the bot is down: the approval, with the run checkpointed past its re-check (as a bot killed
    // right after it would leave it), and someone switching over by hand.
    let bob = SlackUserId::parse(BOB).unwrap();
    let decided = store
        .decide(
            RequestId::new(1),
            true,
            &bob.clone().into(),
            jiff::Timestamp::now(),
            "switchover",
            "{}",
            None,
        )
        .await
        .unwrap();
    assert!(matches!(
        decided,
        aurora_failover_bot::store::Decided::Won { run_id: Some(_) }
    ));
    rds_client(w.sim.url(), "us-east-1")
        .await
        .switchover_global_cluster()
        .global_cluster_identifier("orders-global")
        .target_db_cluster_identifier("arn:aws:rds:us-west-2:123456789012:cluster:orders-west")
        .send()
        .await
        .unwrap();
    wait_until("the switchover by hand", async || {
        let g = w.sim.admin().global_cluster("orders-global")?;
        g.failover_state.is_none().then_some(())
    })
    .await;
    w.bot.start().await;
    assert_eq!(w.finished(1).await, RunState::Failed, "{}", w.bot.log_text());
    assert_eq!(
        w.sim.admin().calls_to("SwitchoverGlobalCluster").len(),
        1,
        "only the one made by hand"
    );
    // The outcome's reply is queued right after the run's end is committed: wait for it.
    wait_until("the outcome's reply", async || {
        w.thread(&ts)
            .iter()
            .any(|r| r.text().contains("Nothing was changed"))
            .then_some(())
    })
    .await;
    w.slack_idle().await;
    let thread: Vec<String> = w.thread(&ts).iter().map(|r| r.text().to_owned()).collect();
    let last = thread.last().unwrap();
    assert!(
        last.contains("the writer is now orders-west in us-west-2, not orders-east"),
        "{thread:#?}"
    );
    assert!(last.contains("Nothing was changed"), "{last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_during_needs_attention_keeps_watching_and_finishes_once() {
    let mut w = World::start(Options {
        promote_timeout_secs: 2,
        ..Options::default()
    })
    .await;
    let (id, ts) = w.request().await;
    w.approve(id, &ts).await;
    wait_until("the wait for a writable target", async || {
        w.journal_has(id, "wait_writable", "started").await.then_some(())
    })
    .await;
    // The promoted cluster cannot be read until its deadline: the run needs attention.
    w.sim
        .admin()
        .inject(FaultSpec {
            action: "DescribeDBClusters".into(),
            region: Some("us-west-2".into()),
            error: Some(awsim::FaultCode::ServiceUnavailable),
            delay_ms: None,
            delay_response_ms: None,
            count: None,
        })
        .unwrap();
    assert_eq!(w.finished(id).await, RunState::NeedsAttention);
    w.slack_idle().await;
    w.bot.kill();
    w.bot.start().await;
    // Back up, the bot watches again; the primary's Region is in trouble and AWS answers again.
    w.sim
        .admin()
        .set_cluster_status("us-east-1", "orders-east", "inaccessible-encryption-credentials")
        .unwrap();
    w.sim.admin().clear_faults();
    let store = w.bot.store();
    wait_until("the run to succeed", async || {
        (store.run_of_request(id.into()).await.ok()??.state == RunState::Succeeded).then_some(())
    })
    .await;
    w.slack_idle().await;
    assert_eq!(w.sim.admin().calls_to("RemoveFromGlobalCluster").len(), 1);
    let west = w.sim.admin().cluster("us-west-2", "orders-west").unwrap();
    assert_eq!(
        w.sim.admin().record(ZONE, WRITER_RECORD, "CNAME").unwrap().values,
        [west.endpoint]
    );
    let thread: Vec<String> = w.thread(&ts).iter().map(|r| r.text().to_owned()).collect();
    for once in ["*Needs attention*", "Re-checked within the", "*Failover complete*"] {
        assert_eq!(
            thread.iter().filter(|t| t.contains(once)).count(),
            1,
            "{once:?} in {thread:#?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_taken_up_after_its_deadline_passed_needs_attention_instead_of_moving_dns() {
    let mut w = World::start(Options {
        timings: Timings {
            detach_ms: 4_000,
            ..Options::default().timings
        },
        promote_timeout_secs: 2,
        ..Options::default()
    })
    .await;
    let (id, ts) = w.request().await;
    w.approve(id, &ts).await;
    wait_until("the wait for a writable target", async || {
        w.journal_has(id, "wait_writable", "started").await.then_some(())
    })
    .await;
    w.slack_idle().await;
    w.bot.kill();
    // Down past the promote deadline; meanwhile the target became writable, and the old primary still
    // is: a late DNS move could split the data.
    tokio::time::sleep(Duration::from_secs(6)).await;
    w.bot.start().await;
    let store = w.bot.store();
    wait_until("the run to need attention", async || {
        (store.run_of_request(id.into()).await.ok()??.state == RunState::NeedsAttention).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        w.sim.admin().calls_to("ChangeResourceRecordSets").is_empty(),
        "DNS was moved past the deadline without the late re-check: {}",
        w.bot.log_text()
    );
    assert_eq!(
        store.run_of_request(id.into()).await.unwrap().unwrap().state,
        RunState::NeedsAttention
    );
    w.slack_idle().await;
    let thread: Vec<String> = w.thread(&ts).iter().map(|r| r.text().to_owned()).collect();
    assert!(
        thread
            .iter()
            .any(|t| t.contains("deadline passed while the bot was not running")),
        "{thread:#?}"
    );
    assert!(
        thread
            .iter()
            .any(|t| t.contains("will not finish run 1 by itself") && t.contains("writable too")),
        "{thread:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_channel_message_is_posted_once_when_the_bot_dies_between_the_post_and_its_record() {
    let mut w = World::start(slow(400, 300)).await;
    // The request message: in Slack, its answer never reaches the bot.
    let asked = std::sync::Mutex::new(0);
    w.kill_between_post_and_record(PostKind::TopLevel, async |w| {
        *asked.lock().unwrap() = w.ask("detach").await;
    })
    .await;
    let id = *asked.lock().unwrap();
    let ts = w.message_ts(id).await;
    // A thread reply ("Approved by"), then the broadcast outcome.
    w.kill_between_post_and_record(PostKind::Reply, async |w| w.approve(id, &ts).await)
        .await;
    w.kill_between_post_and_record(PostKind::Broadcast, async |_| {}).await;
    w.assert_completed_once(id, &ts).await;
    let messages = w.slack.messages(CHANNEL);
    let top: Vec<_> = messages.iter().filter(|m| m.thread_ts.is_none()).collect();
    assert_eq!(top.len(), 1, "one request message: {top:#?}");
    assert_eq!(top[0].ts, ts, "the one found in Slack is the one recorded");
    let mut keys = std::collections::HashSet::new();
    for m in &messages {
        let key = m
            .key()
            .unwrap_or_else(|| panic!("every channel message carries its key: {m:?}"));
        assert!(keys.insert(key.to_owned()), "{key} posted twice: {messages:#?}");
    }
    let broadcasts = messages.iter().filter(|m| m.broadcast).count();
    assert_eq!(broadcasts, 1, "one broadcast outcome");
    let read_backs = w
        .slack
        .calls()
        .iter()
        .filter(|c| c.method.starts_with("conversations.") && c.status == 200)
        .map(|c| c.body.clone())
        .collect::<Vec<_>>();
    assert!(
        read_backs.iter().all(
            |q| q.get("include_all_metadata").and_then(|v| v.as_str()) == Some("true") && q.get("oldest").is_some()
        ),
        "each read-back asks for metadata within a window: {read_backs:#?}"
    );
    assert!(
        read_backs.len() >= 3,
        "each held message was looked for: {read_backs:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_delay_saved_before_a_restart_is_not_honoured_after_it() {
    let mut w = World::start(slow(400, 300)).await;
    // Slack asks for an hour's pause on the request message; the bot saves it, and is restarted.
    w.slack.fail_next_call_to(
        "chat.postMessage",
        Failure::RateLimited {
            retry_after_secs: 3_600,
        },
    );
    let id = w.ask("detach").await;
    let store = w.bot.store();
    wait_until("the saved retry", async || {
        let r = store.request(id.into()).await.ok().flatten()?;
        let item = store.outbox_item(r.message?).await.ok().flatten()?;
        (item.attempts >= 1 && item.next_attempt_at > jiff::Timestamp::now() + jiff::SignedDuration::from_mins(30))
            .then_some(())
    })
    .await;
    w.bot.kill();
    let restarted = Instant::now();
    w.bot.start().await;
    w.message_ts(id).await;
    assert!(
        restarted.elapsed() < Duration::from_secs(10),
        "delivered {:?} after the restart",
        restarted.elapsed()
    );
    let top = w
        .slack
        .messages(CHANNEL)
        .into_iter()
        .filter(|m| m.thread_ts.is_none())
        .count();
    assert_eq!(top, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_back_slack_refuses_does_not_hold_up_the_thread() {
    // The app was not reinstalled with the history scopes: the read-back after a crash is refused.
    let mut w = World::start(slow(400, 300)).await;
    w.slack.lack_scope("conversations.replies", Some("channels:history"));
    let id = w.ask("detach").await;
    let ts = w.message_ts(id).await;
    w.kill_between_post_and_record(PostKind::Reply, async |w| w.approve(id, &ts).await)
        .await;
    // The run's thread goes on to its end; the reply whose fate was unknown is posted again (Slack could
    // not be asked), and nothing else is doubled.
    assert_eq!(w.finished(id).await, RunState::Succeeded, "{}", w.bot.log_text());
    wait_until("the outcome's reply", async || {
        w.thread(&ts)
            .iter()
            .any(|r| r.text().contains("*Failover complete*"))
            .then_some(())
    })
    .await;
    let approvals = w
        .thread(&ts)
        .iter()
        .filter(|r| r.text().contains("Approved by <@U0BOB>"))
        .count();
    assert!((1..=2).contains(&approvals), "{approvals}");
    assert!(
        w.bot
            .log_text()
            .contains("cannot tell whether an earlier attempt posted this message"),
        "the operator is told why a reply may show twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_missing_scopes_the_bot_uses_is_named_at_start_up() {
    let w = World::start(Options {
        slack_setup: Some(Box::new(|s| {
            s.grant_scopes(Some(&["commands", "chat:write", "usergroups:read"]));
        })),
        ..Options::default()
    })
    .await;
    wait_until("the start-up check", async || {
        w.bot
            .log_text()
            .contains("the bot token lacks scopes the bot uses")
            .then_some(())
    })
    .await;
    let log = w.bot.log_text();
    let line = log.lines().find(|l| l.contains("the bot token lacks scopes")).unwrap();
    assert!(
        line.contains("channels:history, groups:history, im:write") && line.contains("reinstall"),
        "{line}"
    );
    assert!(!log.contains(BOT_TOKEN), "the token is never logged");
}
