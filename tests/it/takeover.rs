//! Two bot processes (`bot-east`, `bot-west`) on one DynamoDB table (moto) and the emulator: a run
//! survives the death (SIGKILL) or the pause (SIGSTOP) of the instance executing it. The other takes
//! the run over once the lease runs out, finishes it with each mutating AWS call made once and every
//! thread reply posted once; a paused former holder, resumed, makes no call, no post and no store
//! write after the takeover (the fencing token refuses them).

use crate::common;
use crate::common::process::BotProcess;
use aurora_failover_bot::store::{Lease, OUTBOX_SCOPE, RunState, Store};
use awsim::{FaultSpec, Timings};
use common::dynamodb;
use common::*;
use standin::{PostKind, Recorded, Secret, SlackStandIn};
use std::sync::Arc;
use std::time::Duration;

/// The lease in these tests: 4 s, renewed every second (production: 15 s and 5 s).
const LEASE_TTL_MS: u64 = 4_000;
const LEASE_RENEW_MS: u64 = 1_000;

/// The longest a takeover may take here: the lease, one look by the survivor, and a margin for a
/// loaded machine (ARCHITECTURE.md has the production arithmetic).
const TAKEOVER_BOUND: Duration = Duration::from_millis(LEASE_TTL_MS + LEASE_RENEW_MS + 3_000);

/// The lease of the orders cluster's run.
fn orders_scope() -> String {
    Lease::cluster_scope(&aurora_failover_bot::types::ClusterName::parse("orders").unwrap())
}

/// The emulator, the Slack stand-in, a table, and the two instances.
struct Pair {
    sim: awsim::Awsim,
    slack: SlackStandIn,
    east: BotProcess,
    west: BotProcess,
    store: Arc<dyn Store>,
    dirs: Vec<std::path::PathBuf>,
}

/// One of the two instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    East,
    West,
}

impl Which {
    fn name(self) -> &'static str {
        match self {
            Which::East => "bot-east",
            Which::West => "bot-west",
        }
    }

    /// The access key each instance signs AWS calls with: the emulator's call log tells them apart.
    fn access_key(self) -> &'static str {
        match self {
            Which::East => "AKIDEAST",
            Which::West => "AKIDWEST",
        }
    }

    fn region(self) -> &'static str {
        match self {
            Which::East => "us-east-1",
            Which::West => "us-west-2",
        }
    }

    fn other(self) -> Which {
        match self {
            Which::East => Which::West,
            Which::West => Which::East,
        }
    }
}

impl Pair {
    async fn start(timings: Timings) -> Pair {
        let mut scenario = awsim::Scenario::two_region_example();
        scenario.timings = timings;
        let sim = awsim::start("127.0.0.1:0".parse().unwrap(), scenario).await.unwrap();
        let slack = SlackStandIn::start(&Secret::new(BOT_TOKEN)).await.unwrap();
        slack.set_group("S0DBA", &[CAROL]);
        slack.set_group("S0ONCALL", &[DAVE]);
        let table = dynamodb::table_name("takeover");
        dynamodb::create_table(&table).await;
        let mut dirs = Vec::new();
        let mut instances = Vec::new();
        for which in [Which::East, Which::West] {
            let options = Options {
                timings,
                store_toml: format!("backend = \"dynamodb\"\ntable = \"{table}\"\n"),
                extra_toml: format!(
                    "[instance]\nname = \"{}\"\nregion = \"{}\"\n[lease]\nttl_ms = {LEASE_TTL_MS}\nrenew_ms = {LEASE_RENEW_MS}\n",
                    which.name(),
                    which.region()
                ),
                env: vec![
                    ("AWS_ENDPOINT_URL_DYNAMODB", dynamodb::moto()),
                    ("AWS_ACCESS_KEY_ID", which.access_key().to_owned()),
                ],
                ..Options::default()
            };
            let dir = temp_dir(&format!("takeover-{}", which.name()));
            let mut bot = BotProcess::new(&sim, &slack, &dir, &options);
            bot.start().await;
            dirs.push(dir);
            instances.push(bot);
        }
        let west = instances.pop().unwrap();
        let east = instances.pop().unwrap();
        let store: Arc<dyn Store> = Arc::new(dynamodb::store(&table));
        Pair {
            sim,
            slack,
            east,
            west,
            store,
            dirs,
        }
    }

    fn bot(&mut self, which: Which) -> &mut BotProcess {
        match which {
            Which::East => &mut self.east,
            Which::West => &mut self.west,
        }
    }

    fn now() -> i64 {
        jiff::Timestamp::now().as_second()
    }

    /// ALICE asks, through `which`, for a detach of orders; returns the request id and its message's ts.
    async fn request_through(&mut self, which: Which) -> (i64, String) {
        let url = self.slack.response_url();
        let answer = self
            .bot(which)
            .sender()
            .command(ALICE, CHANNEL, "failover orders --mode detach", &url, Self::now())
            .await;
        assert!(answer.text().starts_with("Request #"), "{answer:?}");
        let id: i64 = answer.text()["Request #".len()..]
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let store = self.store.clone();
        let ts = wait_until("the request message", async || {
            let r = store.request(id.into()).await.ok().flatten()?;
            store.outbox_item(r.message?).await.ok().flatten()?.delivered_ts
        })
        .await;
        (id, ts)
    }

    /// BOB approves request `id` through `which`.
    async fn approve_through(&mut self, which: Which, id: i64, ts: &str) {
        let url = self.slack.response_url();
        let answer = self
            .bot(which)
            .sender()
            .click(BOB, CHANNEL, ts, "approve", &id.to_string(), &url, Self::now())
            .await;
        assert_eq!(answer.status, 200);
    }

    /// Which instance holds `scope`'s lease now (waiting until one does).
    async fn holder(&self, scope: &str) -> Which {
        let store = self.store.clone();
        wait_until("a holder of the lease", async || {
            let lease = store.lease(scope).await.ok().flatten()?;
            (lease.expires_at > jiff::Timestamp::now()).then_some(())?;
            [Which::East, Which::West]
                .into_iter()
                .find(|w| lease.owner.starts_with(&format!("{}#", w.name())))
        })
        .await
    }

    async fn run_state(&self, id: i64) -> Option<(String, RunState)> {
        let run = self.store.run_of_request(id.into()).await.ok().flatten()?;
        Some((run.step, run.state))
    }

    async fn journal_has(&self, id: i64, step: &str, event: &str) -> bool {
        let Some(run) = self.store.run_of_request(id.into()).await.ok().flatten() else {
            return false;
        };
        self.store
            .journal_of(run.id)
            .await
            .unwrap()
            .iter()
            .any(|e| e.step == step && e.event == event)
    }

    /// When `which` journaled that it took the run up (its `taken_up` line), if it did.
    async fn taken_up_by(&self, id: i64, which: Which) -> Option<jiff::Timestamp> {
        let run = self.store.run_of_request(id.into()).await.ok().flatten()?;
        let lines = self.store.journal_of(run.id).await.ok()?;
        lines
            .iter()
            .find(|e| e.event == "taken_up" && e.detail.starts_with(&format!("{}#", which.name())))
            .map(|e| e.at)
    }

    /// Mutating calls the emulator received from `which`'s access key.
    fn calls_from(&self, which: Which, actions: &[&str]) -> Vec<awsim::CallRecord> {
        self.sim
            .admin()
            .calls()
            .into_iter()
            .filter(|c| c.access_key == which.access_key() && actions.contains(&c.action.as_str()))
            .collect()
    }

    async fn finished(&self, id: i64) -> RunState {
        let store = self.store.clone();
        wait_until("the run to finish", async || {
            let run = store.run_of_request(id.into()).await.ok().flatten()?;
            (!run.state.is_open()).then_some(run.state)
        })
        .await
    }

    async fn slack_idle(&self) {
        let store = self.store.clone();
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

    fn thread(&self, ts: &str) -> Vec<Recorded> {
        common::thread_now(&self.slack, ts)
    }

    /// The run's outcome, as an uninterrupted run would have it: DNS at the new writer,
    /// RemoveFromGlobalCluster and the Route 53 change each made once, every reply once and in order,
    /// and the takeover said in the thread.
    async fn assert_completed_once(&self, id: i64, ts: &str, survivor: Which) {
        assert_eq!(
            self.finished(id).await,
            RunState::Succeeded,
            "east:\n{}\nwest:\n{}",
            self.east.log_text(),
            self.west.log_text()
        );
        wait_until("the outcome's reply", async || {
            self.thread(ts)
                .iter()
                .any(|r| r.text().contains("*Failover complete*"))
                .then_some(())
        })
        .await;
        self.slack_idle().await;
        let admin = self.sim.admin();
        assert_eq!(
            admin.calls_to("RemoveFromGlobalCluster").len(),
            1,
            "RemoveFromGlobalCluster once"
        );
        assert_eq!(
            admin.calls_to("ChangeResourceRecordSets").len(),
            1,
            "the Route 53 change once"
        );
        let west = admin.cluster("us-west-2", "orders-west").unwrap();
        assert_eq!(
            admin.record(ZONE, WRITER_RECORD, "CNAME").unwrap().values,
            [west.endpoint]
        );
        assert_eq!(
            admin.record(ZONE, READER_RECORD, "CNAME").unwrap().values,
            [west.reader_endpoint]
        );
        let defects = self.slack.wording_defects();
        assert!(
            defects.is_empty(),
            "messages break Slack's rules or read badly: {defects:#?}"
        );
        let thread: Vec<String> = self.thread(ts).iter().map(|r| r.text().to_owned()).collect();
        common::assert_once_in_order(&thread, &common::DETACH_THREAD);
        let took_over = format!(
            "*{} ({})* took the run over from *{}*",
            survivor.name(),
            survivor.region(),
            survivor.other().name()
        );
        assert!(
            thread.iter().any(|t| t.contains(&took_over)),
            "the thread says who took the run over: {thread:#?}"
        );
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        self.slack.stop();
        if std::env::var_os("AFB_KEEP_TEST_DIRS").is_none() {
            for dir in &self.dirs {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }
}

async fn wait_until<T>(what: &str, probe: impl AsyncFnMut() -> Option<T>) -> T {
    // moto answers one call at a time, and the two bots use it too.
    common::poll_until(what, Duration::from_millis(50), probe).await
}

fn timings(detach_ms: u64, dns_propagation_ms: u64) -> Timings {
    Timings {
        detach_ms,
        dns_propagation_ms,
        ..Options::default().timings
    }
}

fn delay(action: &str, delay_ms: u64, count: Option<u32>) -> FaultSpec {
    FaultSpec {
        action: action.into(),
        region: None,
        error: None,
        delay_ms: Some(delay_ms),
        delay_response_ms: None,
        count,
    }
}

/// Where the executing instance is killed: at the start of `step`, held there by the emulator.
#[derive(Debug, Clone, Copy)]
enum Boundary {
    /// In the re-check (its topology reads are slow).
    Precheck,
    /// RemoveFromGlobalCluster reached AWS; its answer is held back (the call took effect unseen).
    Detach,
    /// Waiting for the promoted cluster to become writable.
    WaitWritable,
    /// Reading the records right before the UPSERT (nothing sent to Route 53 yet).
    UpdateDns,
    /// The change was submitted and its id checkpointed; waiting for INSYNC.
    WaitInsync,
    /// Reading the records back.
    Verify,
}

impl Boundary {
    fn step(self) -> &'static str {
        match self {
            Boundary::Precheck => "precheck",
            Boundary::Detach => "detach",
            Boundary::WaitWritable => "wait_writable",
            Boundary::UpdateDns => "update_dns",
            Boundary::WaitInsync => "wait_insync",
            Boundary::Verify => "verify",
        }
    }

    fn timings(self) -> Timings {
        match self {
            Boundary::WaitWritable => timings(6_000, 300),
            Boundary::UpdateDns => timings(1_500, 300),
            Boundary::WaitInsync => timings(400, 6_000),
            Boundary::Verify => timings(400, 1_500),
            Boundary::Precheck | Boundary::Detach => timings(400, 300),
        }
    }

    /// Faults set before the approval, so that the run is held at this boundary long enough.
    fn before_approval(self, sim: &awsim::Awsim) {
        match self {
            Boundary::Precheck => sim
                .admin()
                .inject(delay("DescribeGlobalClusters", 1_500, None))
                .unwrap(),
            Boundary::Detach => sim
                .admin()
                .inject(FaultSpec {
                    delay_response_ms: Some(30_000),
                    delay_ms: None,
                    ..delay("RemoveFromGlobalCluster", 0, Some(1))
                })
                .unwrap(),
            _ => {}
        }
    }

    /// Waits until the run is held at this boundary (setting the fault that holds it, where it can
    /// only be set once the run is past the steps that would trip it).
    async fn reached(self, pair: &Pair, id: i64) {
        let before = match self {
            Boundary::UpdateDns => Some("wait_writable"),
            Boundary::Verify => Some("wait_insync"),
            _ => None,
        };
        if let Some(step) = before {
            wait_until("the step before", async || {
                (pair.run_state(id).await?.0 == step).then_some(())
            })
            .await;
            // The next Route 53 read is the one this boundary begins with.
            pair.sim
                .admin()
                // Long enough to hold the run there through a takeover, short enough that a paused
                // instance has its answer when it is resumed.
                .inject(delay("ListResourceRecordSets", 10_000, Some(1)))
                .unwrap();
        }
        wait_until("the boundary", async || {
            let (step, state) = pair.run_state(id).await?;
            (step == self.step() && state == RunState::Running && pair.journal_has(id, self.step(), "started").await)
                .then_some(())
        })
        .await;
        match self {
            Boundary::Detach => {
                wait_until("RemoveFromGlobalCluster to reach AWS", async || {
                    (!pair.sim.admin().calls_to("RemoveFromGlobalCluster").is_empty()).then_some(())
                })
                .await;
            }
            Boundary::UpdateDns | Boundary::Verify => {
                wait_until("the held Route 53 read", async || {
                    pair.sim
                        .admin()
                        .calls_to("ListResourceRecordSets")
                        .iter()
                        .any(|c| c.status == 0)
                        .then_some(())
                })
                .await;
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Requested through east, approved through west (which then executes the run); the executing
/// instance is killed at `boundary`; the other takes the run over within the bound and finishes it.
async fn a_run_survives_the_death_of_its_instance_at(boundary: Boundary) {
    let mut pair = Pair::start(boundary.timings()).await;
    let (id, ts) = pair.request_through(Which::East).await;
    boundary.before_approval(&pair.sim);
    pair.approve_through(Which::West, id, &ts).await;
    boundary.reached(&pair, id).await;
    // The approving instance (west) took the run up; on a loaded machine its lease may already have
    // passed to east: the holder is the one killed.
    let owner = pair.holder(&orders_scope()).await;
    let killed_at = jiff::Timestamp::now();
    pair.bot(owner).kill();
    pair.sim.admin().clear_faults();
    let survivor = owner.other();
    let took = wait_until("the takeover", async || pair.taken_up_by(id, survivor).await).await;
    let after = took.duration_since(killed_at).unsigned_abs();
    assert!(
        after <= TAKEOVER_BOUND,
        "taken over {after:?} after the kill, more than {TAKEOVER_BOUND:?}"
    );
    pair.assert_completed_once(id, &ts, survivor).await;
    // /readyz names the instance and who holds each lease.
    let url = format!("http://127.0.0.1:{}/readyz", pair.bot(survivor).port);
    let body = reqwest::get(url).await.unwrap().text().await.unwrap();
    assert!(
        body.contains(&format!("instance: {} ({})", survivor.name(), survivor.region())),
        "{body}"
    );
    assert!(body.contains("lease outbox: held by this instance"), "{body}");
    assert!(body.contains(&format!("lease {}:", orders_scope())), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_instance_dies_in_the_recheck_is_finished_by_the_other() {
    a_run_survives_the_death_of_its_instance_at(Boundary::Precheck).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_instance_dies_after_remove_from_global_cluster_reached_aws_is_finished_without_sending_it_again() {
    a_run_survives_the_death_of_its_instance_at(Boundary::Detach).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_instance_dies_waiting_for_the_writer_is_finished_by_the_other() {
    a_run_survives_the_death_of_its_instance_at(Boundary::WaitWritable).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_instance_dies_right_before_the_dns_change_is_finished_with_one_change() {
    a_run_survives_the_death_of_its_instance_at(Boundary::UpdateDns).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_instance_dies_waiting_for_insync_is_finished_without_a_second_change() {
    a_run_survives_the_death_of_its_instance_at(Boundary::WaitInsync).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_instance_dies_in_the_verification_is_finished_by_the_other() {
    a_run_survives_the_death_of_its_instance_at(Boundary::Verify).await;
}

/// The instance that executes the run and delivers the outbox is paused (SIGSTOP) at `hold`, past
/// its lease; the other takes over and finishes; the first, resumed, makes no AWS call and no post
/// after the takeover, its store writes are refused by the fencing token, and it stops touching the
/// run.
async fn a_paused_instance_resumed_after_a_takeover_does_nothing_more(hold: PausePoint) {
    let mut pair = Pair::start(timings(1_500, 300)).await;
    // Both leases on one instance: the one that delivers the outbox approves (and so executes).
    let outbox = pair.holder(OUTBOX_SCOPE).await;
    let (id, ts) = pair.request_through(outbox.other()).await;
    if hold == PausePoint::BeforePost {
        // The next thread reply is posted but its answer held: what the run queues meanwhile waits
        // behind it, in the paused instance's outbox.
        pair.slack.hold_next_post(PostKind::Reply, Duration::from_secs(6));
    }
    pair.approve_through(outbox, id, &ts).await;
    match hold {
        // Journaled the DNS step's start; its read right before the UPSERT is held.
        PausePoint::BeforeAwsCall => Boundary::UpdateDns.reached(&pair, id).await,
        PausePoint::BeforePost => {
            wait_until("the held post and the run's next line", async || {
                (pair.journal_has(id, "precheck", "finished").await).then_some(())
            })
            .await
        }
    }
    let paused = pair.holder(&orders_scope()).await;
    assert_eq!(paused, outbox, "one instance holds both leases");
    if hold == PausePoint::BeforeAwsCall {
        // Asked through the other instance, /aurora status names the one executing the run.
        let url = pair.slack.response_url();
        let other = paused.other();
        pair.bot(other)
            .sender()
            .command(CAROL, CHANNEL, "status orders", &url, Pair::now())
            .await;
        let status = wait_until("the status answer", async || {
            pair.slack.responses_to(&url).first().map(all_text)
        })
        .await;
        let executing = format!("running at step `update_dns`, executed by *{}*", paused.name());
        assert!(status.contains(&executing), "{status}");
    }
    pair.bot(paused).signal("STOP");
    let stopped_at = jiff::Timestamp::now();
    pair.sim.admin().clear_faults();
    let survivor = paused.other();
    wait_until("the takeover", async || pair.taken_up_by(id, survivor).await).await;
    // The outbox's lease runs out about when the run's does; the survivor looks every renew_ms.
    wait_until("the outbox to be taken over too", async || {
        (pair.holder(OUTBOX_SCOPE).await == survivor).then_some(())
    })
    .await;
    assert_eq!(pair.finished(id).await, RunState::Succeeded);
    // The outcome's reply and the request message's last update are queued after the run's end.
    wait_until("the outcome's reply", async || {
        pair.thread(&ts)
            .iter()
            .any(|r| r.text().contains("*Failover complete*"))
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    pair.slack_idle().await;
    let posts_before = pair.slack.calls().len();
    pair.bot(paused).signal("CONT");
    // The resumed instance gets its held answers and tries to go on: wait until it has given up the run,
    // then a little longer for anything else it might still do.
    let paused_bot = pair.bot(paused);
    wait_until("the resumed instance to give the run up", async || {
        paused_bot
            .log_text()
            .contains("this one writes and calls nothing more for it")
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(LEASE_RENEW_MS * 2)).await;
    let mutating = [
        "RemoveFromGlobalCluster",
        "FailoverGlobalCluster",
        "SwitchoverGlobalCluster",
        "ChangeResourceRecordSets",
    ];
    let late: Vec<_> = pair
        .calls_from(paused, &mutating)
        .into_iter()
        .filter(|c| c.received().is_some_and(|t| t > stopped_at))
        .collect();
    assert!(
        late.is_empty(),
        "the paused instance called AWS after the takeover: {late:#?}"
    );
    let new_posts: Vec<_> = pair.slack.calls()[posts_before..]
        .iter()
        .filter(|c| c.method == "chat.postMessage" || c.method == "chat.update")
        .cloned()
        .collect();
    assert!(new_posts.is_empty(), "posted after the takeover: {new_posts:#?}");
    // Its store writes were refused by the fencing token (the store's refusal names the lease), and it
    // stopped touching the run.
    let log = pair.bot(paused).log_text();
    let refused = format!("lost the lease on {} (token 1)", orders_scope());
    assert!(
        log.contains(&refused),
        "no write for the run was refused by the token: {log}"
    );
    assert!(log.contains("this one writes and calls nothing more for it"), "{log}");
    if hold == PausePoint::BeforePost {
        assert!(
            log.contains("lost the lease on outbox (token 1)"),
            "no record of a delivery was refused by the outbox's token: {log}"
        );
    }
    // The audit names each instance that took the run up.
    let audit = pair.store.audit_log().await.unwrap();
    for which in [paused, survivor] {
        let who = format!("{} ({})", which.name(), which.region());
        assert!(
            audit.iter().any(|e| e.action == "take up run" && e.user == who),
            "{who} in {audit:#?}"
        );
    }
    assert_eq!(pair.sim.admin().calls_to("RemoveFromGlobalCluster").len(), 1);
    assert_eq!(pair.sim.admin().calls_to("ChangeResourceRecordSets").len(), 1);
    let thread: Vec<String> = pair.thread(&ts).iter().map(|r| r.text().to_owned()).collect();
    let mut seen = std::collections::HashSet::new();
    for t in &thread {
        assert!(seen.insert(t), "duplicate reply {t:?} in {thread:#?}");
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PausePoint {
    /// Between its journal write (the DNS step's start) and its mutating AWS call (the UPSERT).
    BeforeAwsCall,
    /// Between a journal write and a Slack post (its outbox waits behind a held post).
    BeforePost,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_paused_between_its_journal_write_and_its_aws_call_makes_no_call_after_the_takeover() {
    a_paused_instance_resumed_after_a_takeover_does_nothing_more(PausePoint::BeforeAwsCall).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_paused_between_its_journal_write_and_a_slack_post_posts_nothing_after_the_takeover() {
    a_paused_instance_resumed_after_a_takeover_does_nothing_more(PausePoint::BeforePost).await;
}
