//! `/aurora rebuild CLUSTER --in REGION` after a detach, through the real binary (`serve --config`)
//! against the emulator and the Slack stand-in: planned with new identifiers and the old primary's
//! settings, approved by a second person, run to a replicating secondary, and resumed after a SIGKILL
//! at each step with each creating call made exactly once.

use crate::common;
use aurora_failover_bot::store::RunState;
use awsim::{FaultSpec, Timings};
use common::process::BotProcess;
use common::*;
use standin::{Secret, SlackStandIn};
use std::time::Duration;

/// The emulator, the Slack stand-in and a bot process, after a detach of `orders` to us-west-2.
struct World {
    sim: awsim::Awsim,
    slack: SlackStandIn,
    bot: BotProcess,
    dir: std::path::PathBuf,
}

const CREATES: [&str; 3] = ["CreateGlobalCluster", "CreateDBCluster", "CreateDBInstance"];

impl World {
    /// Starts everything and runs a detach of orders to us-west-2 to success.
    async fn after_a_detach(timings: Timings) -> World {
        World::after_a_detach_with(Options {
            timings,
            ..Options::default()
        })
        .await
    }

    /// The emulator (with `options`' scenario and timings), the Slack stand-in and the bot as a process
    /// on a store under a fresh temporary directory named after `name`.
    async fn start(options: &Options, name: &str) -> World {
        let mut scenario = options.scenario.clone();
        scenario.timings = options.timings;
        let sim = awsim::start("127.0.0.1:0".parse().unwrap(), scenario).await.unwrap();
        let slack = SlackStandIn::start(&Secret::new(BOT_TOKEN)).await.unwrap();
        let dir = temp_dir(name);
        let mut bot = BotProcess::new(&sim, &slack, &dir, options);
        bot.start().await;
        World { sim, slack, bot, dir }
    }

    async fn after_a_detach_with(options: Options) -> World {
        let w = World::start(&options, "rebuild").await;
        let id = w.ask("failover orders --mode detach").await;
        let ts = w.message_ts(id).await;
        w.approve(id, &ts).await;
        assert_eq!(w.finished(id).await, RunState::Succeeded, "{}", w.bot.log_text());
        w
    }

    /// Sends `/aurora {text}` as ALICE; returns the request id it recorded.
    async fn ask(&self, text: &str) -> i64 {
        self.ask_at(text).await.0
    }

    /// Sends `/aurora {text}` as ALICE; returns the request id it recorded and its response_url.
    async fn ask_at(&self, text: &str) -> (i64, String) {
        let (answer, url) = self.command_at(text).await;
        let id = answer
            .strip_prefix("Request #")
            .and_then(|t| t.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{text}: not recorded: {answer}"));
        (id, url)
    }

    /// Sends `/aurora {text}` as ALICE; returns the immediate answer's text.
    async fn command(&self, text: &str) -> String {
        self.command_at(text).await.0
    }

    async fn command_at(&self, text: &str) -> (String, String) {
        let url = self.slack.response_url();
        let now = jiff::Timestamp::now().as_second();
        let answer = self.bot.sender().command(ALICE, CHANNEL, text, &url, now).await;
        assert_eq!(answer.status, 200);
        (answer.text().to_owned(), url)
    }

    /// `/aurora status orders`, as answered.
    async fn status(&self) -> String {
        let (_, url) = self.command_at("status orders").await;
        self.later_answer(&url).await
    }

    /// The first later answer at `url` (the outcome of planning a request).
    async fn later_answer(&self, url: &str) -> String {
        wait_until("the later answer", async || {
            self.slack.responses_to(url).first().map(all_text)
        })
        .await
    }

    async fn message_ts(&self, id: i64) -> String {
        self.bot.message_ts(id).await
    }

    async fn approve(&self, id: i64, ts: &str) {
        self.bot.approve(&self.slack, id, ts).await
    }

    async fn finished(&self, id: i64) -> RunState {
        self.bot.finished(id).await
    }

    async fn journal_has(&self, id: i64, step: &str, event: &str) -> bool {
        self.bot.journal_has(id, step, event).await
    }

    /// Asks for the rebuild in us-east-1 and approves it; returns its id and message ts.
    async fn rebuild(&self) -> (i64, String) {
        let id = self
            .ask("rebuild orders --in us-east-1 --reason \"us-east-1 is back\"")
            .await;
        let ts = self.message_ts(id).await;
        self.approve(id, &ts).await;
        (id, ts)
    }

    /// Kills the bot, starts it again, and checks the rebuild ends as an uninterrupted one would.
    async fn killed_then_rebuilt_once(&mut self, id: i64, ts: &str) {
        self.bot.kill();
        self.bot.start().await;
        self.assert_rebuilt_once(id, ts).await;
    }

    /// The rebuild ended as an uninterrupted one would: the new global cluster replicates to a new
    /// secondary in us-east-1, each create was made once, the old primary is untouched, and the thread
    /// ends with the report.
    async fn assert_rebuilt_once(&self, id: i64, ts: &str) {
        assert_eq!(self.finished(id).await, RunState::Succeeded, "{}", self.bot.log_text());
        let admin = self.sim.admin();
        for call in CREATES {
            let made = admin.calls_to(call).len();
            let expected = if call == "CreateDBInstance" { instances(self) } else { 1 };
            assert_eq!(made, expected, "{call} made {made} times");
        }
        let new = admin.global_cluster("orders-global-2").expect("the new global cluster");
        let secondary = new
            .members
            .iter()
            .find(|m| m.cluster_id == "orders-east-2")
            .expect("the new secondary");
        assert_eq!(
            secondary.synchronization_status.as_deref(),
            Some("connected"),
            "{new:?}"
        );
        let old = admin
            .global_cluster("orders-global")
            .expect("the old global cluster is kept");
        assert!(old.members.iter().any(|m| m.cluster_id == "orders-east"), "{old:?}");
        wait_until("the rebuild's report", async || {
            thread_texts_of(&self.slack, ts)
                .iter()
                .any(|t| t.contains("*Rebuild complete*"))
                .then_some(())
        })
        .await;
        let thread = thread_texts_of(&self.slack, ts);
        let report = thread.iter().find(|t| t.contains("*Rebuild complete*")).unwrap();
        assert!(report.contains("global_cluster_id = \"orders-global-2\""), "{report}");
        assert!(
            report.contains("aws rds delete-db-cluster --region us-east-1 --db-cluster-identifier orders-east"),
            "{report}"
        );
        let defects = self.slack.wording_defects();
        assert!(defects.is_empty(), "{defects:#?}");
    }
}

/// How many instances the old primary has (the new secondary gets as many).
fn instances(w: &World) -> usize {
    w.sim
        .admin()
        .cluster("us-east-1", "orders-east")
        .map_or(1, |c| c.members.len().max(1))
}

fn thread_texts_of(slack: &SlackStandIn, ts: &str) -> Vec<String> {
    common::thread_now(slack, ts).iter().map(all_text).collect()
}

impl Drop for World {
    fn drop(&mut self) {
        self.slack.stop();
        if std::env::var_os("AFB_KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

async fn wait_until<T>(what: &str, probe: impl AsyncFnMut() -> Option<T>) -> T {
    common::poll_until(what, Duration::from_millis(20), probe).await
}

fn timings(create_ms: u64) -> Timings {
    Timings {
        create_global_ms: create_ms,
        create_cluster_ms: create_ms,
        create_instance_ms: create_ms,
        ..Options::default().timings
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_after_a_detach_ends_with_a_replicating_secondary_and_the_old_primary_reported() {
    let w = World::after_a_detach(timings(300)).await;
    let status = w.status().await;
    assert!(
        status.contains("/aurora rebuild orders --in us-east-1"),
        "status offers the rebuild: {status}"
    );
    let id = w
        .ask("rebuild orders --in us-east-1 --reason \"us-east-1 is back\"")
        .await;
    let ts = w.message_ts(id).await;
    let text = w
        .slack
        .delivered("chat.postMessage")
        .iter()
        .find(|m| m.ts.as_deref() == Some(ts.as_str()))
        .map(all_text)
        .unwrap_or_default();
    for shown in [
        "Rebuild request",
        "orders-global-2",
        "orders-east-2",
        "orders-east-2-1",
        "us-east-1 is back",
        "copied from orders-east",
        "the policy simulator allows CreateGlobalCluster",
    ] {
        assert!(text.contains(shown), "the approval request shows {shown}: {text}");
    }
    // The requester cannot approve their own rebuild.
    let url = w.slack.response_url();
    let now = jiff::Timestamp::now().as_second();
    w.bot
        .sender()
        .click(ALICE, CHANNEL, &ts, "approve", &id.to_string(), &url, now)
        .await;
    assert!(w.sim.admin().calls_to("CreateGlobalCluster").is_empty());
    w.approve(id, &ts).await;
    w.assert_rebuilt_once(id, &ts).await;
    // The new global cluster is recorded for orders while the config names the old one; status follows
    // it and says what makes it permanent.
    let orders = aurora_failover_bot::types::ClusterName::parse("orders").unwrap();
    let record = w
        .bot
        .store()
        .global_cluster_record(&orders)
        .await
        .unwrap()
        .expect("a record");
    assert_eq!(
        (
            record.global_cluster_id.as_str(),
            record.replaces.as_str(),
            record.request.get()
        ),
        ("orders-global-2", "orders-global", id)
    );
    let status = w.status().await;
    assert!(status.contains("global_cluster_id = \"orders-global-2\""), "{status}");
    assert!(
        !status.contains("/aurora rebuild"),
        "nothing to rebuild any more: {status}"
    );
    // The rebuild was the cluster's last success: there is nothing more to rebuild.
    let (_, url) = w.ask_at("rebuild orders --in us-east-1").await;
    let answer = w.later_answer(&url).await;
    assert!(
        answer.contains("nothing to rebuild") && answer.contains("was not a detach"),
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_is_refused_without_a_detach_or_with_a_region_it_cannot_use() {
    let w = World::start(&Options::default(), "rebuild-refused").await;
    assert!(
        w.command("rebuild orders")
            .await
            .contains("`rebuild` needs `--in REGION`")
    );
    assert!(
        w.command("rebuild orders --in eu-west-1")
            .await
            .contains("is not a Region of orders")
    );
    assert!(
        w.command("rebuild orders --to us-east-1")
            .await
            .contains("unknown option `--to`")
    );
    assert!(
        w.command("failover orders --mode rebuild")
            .await
            .contains("is not a mode")
    );
    let (_, url) = w.ask_at("rebuild orders --in us-east-1").await;
    let refusal = w.later_answer(&url).await;
    assert!(refusal.contains("nothing to rebuild"), "{refusal}");
    assert!(CREATES.iter().all(|c| w.sim.admin().calls_to(c).is_empty()));
}

/// Holds the next `action` (in `region`, or any): `(before acting, before answering)`, in ms.
fn hold(w: &World, action: &str, region: Option<&str>, (delay_ms, delay_response_ms): (Option<u64>, Option<u64>)) {
    w.sim
        .admin()
        .inject(FaultSpec {
            action: action.into(),
            region: region.map(str::to_owned),
            error: None,
            delay_ms,
            delay_response_ms,
            count: Some(1),
        })
        .unwrap();
}

/// Kills the bot once `call` has reached AWS with its answer held, starts it again, and checks that
/// the rebuild completes with every create made once.
async fn killed_after(call: &str) {
    let mut w = World::after_a_detach(timings(400)).await;
    hold(&w, call, None, (None, Some(5_000)));
    let (id, ts) = w.rebuild().await;
    wait_until(call, async || (!w.sim.admin().calls_to(call).is_empty()).then_some(())).await;
    w.killed_then_rebuilt_once(id, &ts).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_after_create_global_cluster_reached_aws_does_not_send_it_again() {
    killed_after("CreateGlobalCluster").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_after_create_db_cluster_reached_aws_does_not_send_it_again() {
    killed_after("CreateDBCluster").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_after_create_db_instance_reached_aws_does_not_send_it_again() {
    killed_after("CreateDBInstance").await;
}

/// Kills the bot while the rebuild waits in `step` (it has observed something there), starts it
/// again, and checks that the rebuild completes with every create made once.
async fn killed_in(step: &str) {
    let mut w = World::after_a_detach(timings(3_000)).await;
    let (id, ts) = w.rebuild().await;
    wait_until(step, async || w.journal_has(id, step, "started").await.then_some(())).await;
    w.killed_then_rebuilt_once(id, &ts).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_while_waiting_for_the_global_cluster_resumes_the_wait() {
    killed_in("wait_global").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_while_waiting_for_the_secondary_resumes_the_wait() {
    killed_in("wait_secondary").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_while_waiting_for_replication_resumes_the_wait() {
    killed_in("wait_replicating").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_during_the_recheck_before_the_first_create_starts_the_rebuild_over_once() {
    let mut w = World::after_a_detach(timings(400)).await;
    let id = w.ask("rebuild orders --in us-east-1").await;
    let ts = w.message_ts(id).await;
    // The re-check's read of the promoted cluster is held: the bot dies in the re-check.
    hold(&w, "DescribeDBClusters", Some("us-west-2"), (Some(5_000), None));
    w.approve(id, &ts).await;
    wait_until("the re-check", async || {
        w.journal_has(id, "precheck", "started").await.then_some(())
    })
    .await;
    assert!(w.sim.admin().calls_to("CreateGlobalCluster").is_empty());
    w.killed_then_rebuilt_once(id, &ts).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configuration_replaces_the_old_primarys_settings_for_the_new_secondary() {
    let w = World::after_a_detach_with(Options {
        timings: timings(300),
        extra_toml: "[clusters.rebuild.us-east-1]\ninstance_class = \"db.r6g.2xlarge\"\ninstances = 2\n\
                     db_subnet_group = \"rebuild-subnets\"\n"
            .into(),
        ..Options::default()
    })
    .await;
    let id = w.ask("rebuild orders --in us-east-1").await;
    let ts = w.message_ts(id).await;
    let text = w
        .slack
        .delivered("chat.postMessage")
        .iter()
        .find(|m| m.ts.as_deref() == Some(ts.as_str()))
        .map(all_text)
        .unwrap_or_default();
    assert!(
        text.contains("from [clusters.rebuild.us-east-1]: db_subnet_group, instance_class, instances"),
        "{text}"
    );
    w.approve(id, &ts).await;
    assert_eq!(w.finished(id).await, RunState::Succeeded, "{}", w.bot.log_text());
    let admin = w.sim.admin();
    assert_eq!(admin.calls_to("CreateDBInstance").len(), 2);
    let secondary = admin.cluster("us-east-1", "orders-east-2").expect("the new secondary");
    assert_eq!(secondary.settings.db_subnet_group, "rebuild-subnets");
    assert_eq!(secondary.members.len(), 2);
    assert!(
        secondary.members.iter().all(|i| i.instance_class == "db.r6g.2xlarge"),
        "{:?}",
        secondary.members
    );
}
