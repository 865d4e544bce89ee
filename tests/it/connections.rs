//! The HTTP server sheds what it should not hold: idle, slow and too many connections cannot take the
//! descriptors a run needs. Runs the real binary with a low limit on open descriptors.

use crate::common;

use common::process::BotProcess;
use common::*;
use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// The bot's descriptor limit (soft and hard: it raises the soft one to the hard one itself).
const NOFILE: u64 = 512;
/// More idle connections than the limit allows.
const IDLE: usize = 700;
const HEADER_TIMEOUT_SECS: u64 = 2;

/// Whether the peer closed `stream`: a read returns end-of-file or a reset within `within`.
fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 256];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            // A 408 answer before the close is fine; keep reading until the close.
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return false;
            }
            Err(_) => return true,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_detach_completes_while_idle_connections_exceed_the_descriptor_limit_and_they_are_closed() {
    // This process holds the idle connections: give it room for them.
    rlimit::increase_nofile_limit(u64::MAX).unwrap();
    let mut scenario = awsim::Scenario::two_region_example();
    let timings = awsim::Timings {
        detach_ms: 3_000,
        ..Options::default().timings
    };
    scenario.timings = timings;
    let sim = awsim::start("127.0.0.1:0".parse().unwrap(), scenario).await.unwrap();
    let slack = standin::SlackStandIn::start(&standin::Secret::new(BOT_TOKEN))
        .await
        .unwrap();
    slack.set_group("S0DBA", &[CAROL]);
    let dir = temp_dir("connections");
    let options = Options {
        extra_toml: format!("[server]\nheader_read_timeout_secs = {HEADER_TIMEOUT_SECS}\n"),
        ..Options::default()
    };
    let mut bot = BotProcess::new(&sim, &slack, &dir, &options);
    bot.nofile = Some(NOFILE);
    bot.start().await;
    let log = bot.log_text();
    assert!(log.contains("max_connections=384"), "the cap keeps a reserve: {log}");

    // Request and approve a detach.
    let sender = bot.sender();
    let url = slack.response_url();
    let now = jiff::Timestamp::now().as_second();
    let answer = sender
        .command(ALICE, CHANNEL, "failover orders --mode detach", &url, now)
        .await;
    let id: i64 = answer.text()["Request #".len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let store = bot.store();
    let deadline = Instant::now() + WAIT;
    let ts = loop {
        let message = store.request(id.into()).await.unwrap().and_then(|r| r.message);
        let item = match message {
            Some(m) => store.outbox_item(m).await.unwrap(),
            None => None,
        };
        if let Some(ts) = item.and_then(|i| i.delivered_ts) {
            break ts;
        }
        assert!(Instant::now() < deadline, "no request message: {}", bot.log_text());
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let answer = sender
        .click(
            BOB,
            CHANNEL,
            &ts,
            "approve",
            &id.to_string(),
            &slack.response_url(),
            now,
        )
        .await;
    assert_eq!(answer.status, 200);

    // Half a second later, more idle connections than the bot has descriptors.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let addr = format!("127.0.0.1:{}", bot.port);
    let opened = Instant::now();
    let mut idle: Vec<TcpStream> = (0..IDLE)
        .map(|i| TcpStream::connect(&addr).unwrap_or_else(|e| panic!("connection {i}: {e}")))
        .collect();

    // The run completes regardless: RemoveFromGlobalCluster once, DNS at the promoted cluster.
    let deadline = Instant::now() + Duration::from_secs(60);
    let run = loop {
        if let Some(run) = store.run_of_request(id.into()).await.unwrap()
            && run.state != aurora_failover_bot::store::RunState::Running
        {
            break run;
        }
        assert!(Instant::now() < deadline, "the run did not finish: {}", bot.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        run.state,
        aurora_failover_bot::store::RunState::Succeeded,
        "{}",
        bot.log_text()
    );
    assert_eq!(sim.admin().calls_to("RemoveFromGlobalCluster").len(), 1);
    let west = sim.admin().cluster("us-west-2", "orders-west").unwrap();
    assert_eq!(
        sim.admin().record(ZONE, WRITER_RECORD, "CNAME").unwrap().values,
        [west.endpoint]
    );
    assert_eq!(
        sim.admin().record(ZONE, READER_RECORD, "CNAME").unwrap().values,
        [west.reader_endpoint]
    );

    // Every idle connection is closed by the bot within its timeouts: those past the cap are taken in
    // turn as the first ones time out, so two rounds of the header-read timeout, with room to spare.
    let budget = Duration::from_secs(3 * HEADER_TIMEOUT_SECS + 10);
    let still_open = tokio::task::spawn_blocking(move || {
        idle.iter_mut()
            .filter_map(|s| {
                let left = budget.saturating_sub(opened.elapsed()).max(Duration::from_millis(10));
                (!closed_within(s, left)).then_some(())
            })
            .count()
    })
    .await
    .unwrap();
    assert_eq!(still_open, 0, "idle connections left open after {budget:?}");

    // And the bot still answers.
    let health = reqwest::get(format!("http://{addr}/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
    slack.stop();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_slowloris_sender_is_cut_off_at_the_header_read_timeout() {
    let bot = TestBot::start_with(Options {
        extra_toml: "[server]\nheader_read_timeout_secs = 1\n".into(),
        ..Options::default()
    })
    .await;
    let addr = format!("127.0.0.1:{}", bot.port);
    let closed = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut s = TcpStream::connect(&addr).unwrap();
        let started = Instant::now();
        // One byte every 300 ms: the header never completes.
        for b in b"POST /slack/commands HTTP/1.1\r\nHost: x\r\n".iter() {
            if s.write_all(&[*b]).is_err() {
                return Some(started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(300));
            if started.elapsed() > Duration::from_secs(10) {
                return None;
            }
        }
        None
    })
    .await
    .unwrap();
    let took = closed.expect("the slow sender was never cut off");
    assert!(took < Duration::from_secs(5), "cut off only after {took:?}");
}
