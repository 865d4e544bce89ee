//! Break-glass from a terminal (`failover --break-glass --reason`), through the real binary against the
//! emulator: refused without the flag or a reason; run by a serving bot through its admin socket; run
//! by the command itself when no bot serves the store (posting to Slack when it is reachable, queuing
//! when not); never without the plan's checks; audited with the OS user, the AWS identity and the
//! reason.

use crate::common::*;
use aurora_failover_bot::breakglass::own_login;
use aurora_failover_bot::store::SqliteStore;
use aurora_failover_bot::types::Person;

async fn run(sim_url: &str, args: &[&str]) -> (Option<i32>, String, String) {
    run_binary(sim_url, args, &[("RUST_LOG", "warn")]).await
}

fn write_config(dir: &std::path::Path, api_url: &str) -> String {
    let path = dir.join("bot.toml");
    std::fs::write(&path, config_toml(api_url, &dir.join("bot.db"), &Options::default())).unwrap();
    path.to_str().unwrap().to_owned()
}

async fn emulator() -> awsim::Awsim {
    let mut scenario = awsim::Scenario::two_region_example();
    scenario.timings = Options::default().timings;
    awsim::start("127.0.0.1:0".parse().unwrap(), scenario).await.unwrap()
}

/// What the writer CNAME points at now.
fn writer_cname(sim: &awsim::Awsim) -> String {
    sim.admin().record(ZONE, WRITER_RECORD, "CNAME").unwrap().values[0].clone()
}

const SWITCHOVER: [&str; 8] = [
    "orders",
    "--to",
    "us-west-2",
    "--mode",
    "switchover",
    "--break-glass",
    "--reason",
    "Slack is down (INC-42)",
];

fn args<'a>(config: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["failover", "--config", config];
    a.extend_from_slice(rest);
    a
}

/// The audit trail of the store at `config`, as JSON lines.
async fn audit(sim_url: &str, config: &str) -> String {
    let (code, stdout, stderr) = run(sim_url, &["audit", "--config", config, "--format", "jsonl"]).await;
    assert_eq!(code, Some(0), "{stderr}");
    stdout
}

#[tokio::test]
async fn without_break_glass_or_a_reason_it_refuses_explains_and_changes_nothing() {
    let sim = emulator().await;
    let dir = temp_dir("break-glass-refused");
    let config = write_config(&dir, "http://127.0.0.1:1/api");
    let (code, stdout, stderr) = run(sim.url(), &args(&config, &["orders", "--to", "us-west-2"])).await;
    assert_eq!(code, Some(2), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("/aurora failover orders") && stderr.contains("--break-glass --reason"),
        "{stderr}"
    );
    for reason in [&["--break-glass"][..], &["--break-glass", "--reason", "  "][..]] {
        let mut rest = vec!["orders"];
        rest.extend_from_slice(reason);
        let (code, _, stderr) = run(sim.url(), &args(&config, &rest)).await;
        assert_eq!(code, Some(2), "{stderr}");
        assert!(stderr.contains("a reason is required (--reason"), "{stderr}");
    }
    let (code, _, stderr) = run(
        sim.url(),
        &args(&config, &["orders", "--mode", "teleport", "--break-glass"]),
    )
    .await;
    assert_eq!(code, Some(2), "a usage error: {stderr}");
    // A reason is one line of at most 500 characters; the cluster must be configured.
    let long = "x".repeat(501);
    for (rest, says) in [
        (
            vec!["orders", "--break-glass", "--reason", long.as_str()],
            "longer than 500 characters",
        ),
        (vec!["orders", "--break-glass", "--reason", "red\u{1b}[31m"], "one line"),
        (vec!["orders", "--break-glass", "--reason", "two\nlines"], "one line"),
        (
            vec!["billing", "--break-glass", "--reason", "drill"],
            "configured clusters are: orders",
        ),
        (
            vec!["orders", "--break-glass", "--reason", "a\u{2028}b"],
            "one line of visible text",
        ),
        (
            vec!["orders", "--break-glass", "--reason", "drill\u{202E}lirD"],
            "one line of visible text",
        ),
        (
            vec!["orders", "--to", "eu-west-9", "--break-glass", "--reason", "drill"],
            "not one of the Regions of orders",
        ),
    ] {
        let (code, _, stderr) = run(sim.url(), &args(&config, &rest)).await;
        assert_eq!(code, Some(2), "{rest:?}: {stderr}");
        assert!(stderr.contains(says), "{rest:?}: {stderr}");
    }
    // A relative store.path that names no store here (the bot runs elsewhere): refused, not created.
    let relative = dir.join("relative.toml");
    std::fs::write(
        &relative,
        std::fs::read_to_string(&config).unwrap().replace(
            &format!("path = \"{}\"", dir.join("bot.db").display()),
            "path = \"elsewhere.db\"",
        ),
    )
    .unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_aurora-failover-bot"))
        .args(["failover", "--config"])
        .arg(&relative)
        .args(SWITCHOVER)
        .current_dir(&dir)
        .env("AWS_ENDPOINT_URL", sim.url())
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("no store at") && stderr.contains("relative store.path"),
        "{stderr}"
    );
    assert!(!dir.join("elsewhere.db").exists(), "a new store was created");
    assert!(sim.admin().calls().is_empty(), "AWS was called");
    assert!(!dir.join("bot.db").exists(), "the store was created");
    sim.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_bot_serving_it_runs_the_runbook_itself_posts_to_slack_and_audits_who_and_why() {
    let sim = emulator().await;
    let slack = standin::SlackStandIn::start(&standin::Secret::new(BOT_TOKEN))
        .await
        .unwrap();
    let dir = temp_dir("break-glass-here");
    let config = write_config(&dir, &slack.api_url());
    let (west_writer, _) = {
        let c = sim.admin().cluster("us-west-2", "orders-west").unwrap();
        (c.endpoint, c.reader_endpoint)
    };
    let (code, stdout, stderr) = run(sim.url(), &args(&config, &SWITCHOVER)).await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    for expected in [
        "AWS identity: arn:aws:",
        "request #1: orders from us-east-1 (orders-east) to us-west-2 (orders-west) by switchover",
        "run 1 succeeded",
    ] {
        assert!(stdout.contains(expected), "{expected:?} missing:\n{stdout}");
    }
    assert!(!stdout.contains("handing the order"), "{stdout}");
    assert_eq!(writer_cname(&sim), west_writer, "the writer CNAME was not repointed");
    assert_eq!(sim.admin().calls_to("SwitchoverGlobalCluster").len(), 1);
    // Posted to the incident channel: the request without buttons, and the break-glass note.
    let posts = slack.delivered("chat.postMessage");
    let root = posts
        .iter()
        .find(|p| all_text(p).contains("Failover request #1"))
        .unwrap_or_else(|| panic!("no request message: {posts:#?}"));
    assert!(!has_buttons(root), "a break-glass request has no Approve button");
    let login = own_login();
    assert!(
        posts.iter().any(|p| {
            let t = all_text(p);
            t.contains("Break-glass") && t.contains(&format!("`{login}`")) && t.contains("Slack is down (INC-42)")
        }),
        "no break-glass note naming {login} and the reason"
    );
    // The audit: who (the OS user), the AWS identity, the reason; the request decided by that user.
    let trail = audit(sim.url(), &config).await;
    assert!(
        trail.contains(&format!("terminal:{login}"))
            && trail.contains("reason: Slack is down (INC-42)")
            && trail.contains("AWS caller: arn:aws:")
            && trail.contains("via terminal"),
        "{trail}"
    );
    let store = SqliteStore::open_existing(&dir.join("bot.db")).unwrap();
    let r = aurora_failover_bot::store::Store::request(&store, 1.into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.requested_by, Person::terminal(&login).unwrap());
    assert_eq!(r.decided_by, Some(Person::terminal(&login).unwrap()));
    sim.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_slack_unreachable_it_still_runs_and_leaves_the_messages_queued() {
    let sim = emulator().await;
    let dir = temp_dir("break-glass-no-slack");
    let config = write_config(&dir, "http://127.0.0.1:1/api");
    let (code, stdout, stderr) = run(sim.url(), &args(&config, &SWITCHOVER)).await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("run 1 succeeded"), "{stdout}");
    assert!(
        stdout.contains("some Slack messages could not be delivered yet"),
        "{stdout}"
    );
    let store = SqliteStore::open_existing(&dir.join("bot.db")).unwrap();
    let queued = aurora_failover_bot::store::Store::outbox_all(&store).await.unwrap();
    assert!(queued.iter().any(|i| i.state == "pending"), "nothing left queued");
    sim.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beside_a_serving_bot_it_goes_through_the_admin_socket_and_never_skips_the_checks() {
    let bot = TestBot::start().await;
    let config = bot.dir.join("bot.toml");
    std::fs::write(
        &config,
        config_toml(&bot.slack.api_url(), &bot.dir.join("bot.db"), &Options::default()),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    // The plan's checks still apply: us-east-1 is already the writer.
    let (code, stdout, stderr) = run(
        bot.sim.url(),
        &args(
            config,
            &["orders", "--to", "us-east-1", "--break-glass", "--reason", "drill"],
        ),
    )
    .await;
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("handing the order to it"), "{stdout}");
    assert!(stdout.contains("not started: "), "{stdout}");
    for action in MUTATING {
        assert!(bot.sim.admin().calls_to(action).is_empty(), "{action} was called");
    }
    // A garbage order on the admin socket is refused, and says what an order is.
    let mut socket = tokio::net::UnixStream::connect(bot.dir.join("bot.db.admin.sock"))
        .await
        .unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut socket, b"failover orders please\n")
        .await
        .unwrap();
    let mut answer = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut socket, &mut answer)
        .await
        .unwrap();
    assert!(
        answer.contains("\"outcome\":\"refused\"") && answer.contains("not an order"),
        "{answer}"
    );
    // The real thing, run by the serving bot.
    let (code, stdout, stderr) = run(bot.sim.url(), &args(config, &SWITCHOVER)).await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("handing the order to it") && stdout.contains("succeeded"),
        "{stdout}"
    );
    let id = bot.store.recent_requests(None, 1).await.unwrap()[0]
        .as_ref()
        .unwrap()
        .id
        .get();
    let login = own_login();
    assert_eq!(bot.request_state(id).await.decided_by, Person::terminal(&login));
    bot.slack_settled().await;
    let message = bot.request_message(id).await;
    assert!(!has_buttons(&message), "a break-glass request has no Approve button");
    let trail = audit(bot.sim.url(), config).await;
    assert!(
        trail.contains("via admin socket") && trail.contains(&format!("terminal:{login}")),
        "{trail}"
    );
}

/// Starts `failover` (run by the command itself) and returns it with its stdout's lines.
fn spawn_failover(
    sim_url: &str,
    config: &str,
    rest: &[&str],
) -> (
    tokio::process::Child,
    tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_aurora-failover-bot"))
        .args(args(config, rest))
        .env("AWS_ENDPOINT_URL", sim_url)
        .env("AWS_ACCESS_KEY_ID", "AKIDTEST")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    (
        child,
        tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout)),
    )
}

/// Reads lines until one contains `needle`; returns everything read.
async fn read_until(
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    needle: &str,
) -> String {
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while let Ok(Ok(Some(l))) = tokio::time::timeout_at(deadline, lines.next_line()).await {
        seen.push_str(&l);
        seen.push('\n');
        if l.contains(needle) {
            return seen;
        }
    }
    panic!("no line with {needle:?}:\n{seen}");
}

fn interrupt(child: &tokio::process::Child) {
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().unwrap().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_before_any_change_abandons_the_run_and_after_one_leaves_it_for_the_next_bot() {
    let sim = emulator().await;
    let dir = temp_dir("break-glass-interrupted");
    let config = write_config(&dir, "http://127.0.0.1:1/api");
    // Before any change: every read of the global cluster takes 1.5 s, so the run's re-check is still
    // reading when Ctrl-C comes, right after the request is recorded and planned.
    sim.admin()
        .inject(awsim::FaultSpec {
            action: "DescribeGlobalClusters".into(),
            region: None,
            error: None,
            delay_ms: Some(1_500),
            delay_response_ms: None,
            count: None,
        })
        .unwrap();
    let (mut child, mut lines) = spawn_failover(sim.url(), &config, &SWITCHOVER);
    read_until(&mut lines, "request #1: ").await;
    interrupt(&child);
    let said = read_until(&mut lines, "interrupted").await;
    assert!(said.contains("the run is abandoned, nothing was changed"), "{said}");
    assert_eq!(child.wait().await.unwrap().code(), Some(130));
    sim.admin().clear_faults();
    assert!(
        sim.admin().calls_to("SwitchoverGlobalCluster").is_empty(),
        "AWS was changed"
    );
    let store = SqliteStore::open_existing(&dir.join("bot.db")).unwrap();
    let first = aurora_failover_bot::store::Store::run_of_request(&store, 1.into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.state, aurora_failover_bot::store::RunState::Abandoned);
    // After a change: the switchover is under way when Ctrl-C comes; the run is left, saved, holding
    // the cluster, for the next bot to finish.
    sim.admin().set_timings(awsim::TimingsPatch {
        switchover_ms: Some(5_000),
        ..Default::default()
    });
    let (mut child, mut lines) = spawn_failover(sim.url(), &config, &SWITCHOVER);
    read_until(&mut lines, "SwitchoverGlobalCluster accepted").await;
    interrupt(&child);
    let said = read_until(&mut lines, "interrupted").await;
    assert!(said.contains("interrupted after the run changed AWS"), "{said}");
    assert_eq!(child.wait().await.unwrap().code(), Some(130));
    let second = aurora_failover_bot::store::Store::run_of_request(&store, 2.into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.state, aurora_failover_bot::store::RunState::Running);
    let (code, stdout, _) = run(sim.url(), &args(&config, &SWITCHOVER)).await;
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("already has request #2 open or running") && stdout.contains("audit"),
        "{stdout}"
    );
    sim.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
