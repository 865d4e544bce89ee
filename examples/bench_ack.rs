//! Benchmark: how fast the bot acknowledges signed slash commands, with an empty replay table and with
//! 100,000 signatures in it. Every Slack request's signature is recorded (a replayed request has no
//! second effect); the claim to check is that this costs the same however many are recorded, because
//! the table is indexed and pruned in batches off the request path.
//!
//! `scripts/bench` runs it. The bot is built as `serve` builds it, with its AWS endpoint refusing
//! connections (the status reads behind each command fail at once, as the reference measurement in
//! issue 9 did), and the Slack stand-in in-process. 32 concurrent clients send distinct, correctly
//! signed `/aurora status` commands; each round sends 2,000 and times them. Rounds alternate between
//! the two tables, side by side in one run; the output is each round's throughput and the ratio of
//! the medians.

use aurora_failover_bot::aws::AwsOverrides;
use aurora_failover_bot::ports::SystemClock;
use aurora_failover_bot::settings::Settings;
use aurora_failover_bot::startup::{Application, Deps};
use aurora_failover_bot::store::{Durability, SqliteStore, Store};
use standin::{STANDIN_APP, STANDIN_TEAM, Secret, SlackSender, SlackStandIn};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const CLIENTS: usize = 32;
const PER_ROUND: usize = 2_000;
const ROUNDS: usize = 3;
const ROWS: usize = 100_000;

/// A bot on a store holding `rows` recent signatures; returns its sender and what stops it.
async fn bot(
    rows: usize,
    tag: &str,
) -> anyhow::Result<(SlackSender, SlackStandIn, CancellationToken, std::path::PathBuf)> {
    let slack = SlackStandIn::start(&Secret::new("xoxb-bench")).await?;
    slack.keep_calls(false);
    let dir = std::env::temp_dir().join(format!("afb-bench-ack-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let db = dir.join("bench.db");
    {
        // Seeding only: 100,000 durable commits one by one would take minutes.
        let store = SqliteStore::open_with(&db, Durability::Normal)?;
        let now = jiff::Timestamp::now();
        for i in 0..rows {
            store.first_sighting(&format!("v0={i:064x}"), now).await?;
        }
    }
    let toml = format!(
        "listen = \"127.0.0.1:0\"\n[slack]\nsigning_secret = \"bench\"\nbot_token = \"xoxb-bench\"\napi_url = \"{}\"\n\
         incident_channel = \"C0INCIDENT\"\nteam_id = \"{STANDIN_TEAM}\"\napp_id = \"{STANDIN_APP}\"\n[approval]\n\
         requesters = [\"U0ALICE\"]\napprovers = [\"U0BOB\"]\n[store]\npath = \"{}\"\n[[clusters]]\nname = \"orders\"\n\
         global_cluster_id = \"orders-global\"\nregions = [\"us-east-1\", \"us-west-2\"]\nhosted_zone_id = \"Z0123456789\"\n\
         writer_record = \"w.aurora_private_hosted_zone\"\nreader_record = \"r.aurora_private_hosted_zone\"\n",
        slack.api_url(),
        db.display()
    );
    let deps = Deps {
        aws: AwsOverrides {
            // Nothing listens there: every AWS call fails at once.
            endpoint_url: Some("http://127.0.0.1:9".into()),
            static_credentials: true,
            max_attempts: Some(1),
            attempt_timeout: None,
        },
        clock: Arc::new(SystemClock),
        env: Box::new(|_| None),
        aws_credentials: None,
    };
    let app = Application::build(Settings::from_toml(&toml)?, deps).await?;
    let sender = SlackSender::new(&format!("http://127.0.0.1:{}", app.port()), &Secret::new("bench"));
    let shutdown = CancellationToken::new();
    tokio::spawn(app.run_until_stopped(shutdown.clone()));
    Ok((sender, slack, shutdown, dir))
}

/// Sends `PER_ROUND` distinct signed commands from `CLIENTS` clients; returns commands per second.
async fn round(sender: &Arc<SlackSender>, slack: &SlackStandIn) -> anyhow::Result<f64> {
    let started = Instant::now();
    let per_client = PER_ROUND / CLIENTS;
    let clients = (0..CLIENTS).map(|_| {
        let sender = sender.clone();
        let slack = slack.clone();
        tokio::spawn(async move {
            let mut ok = 0usize;
            for _ in 0..per_client {
                let url = slack.response_url();
                let now = jiff::Timestamp::now().as_second();
                if sender
                    .command("U0ALICE", "C0INCIDENT", "status", &url, now)
                    .await
                    .status
                    == 200
                {
                    ok += 1;
                }
            }
            ok
        })
    });
    let ok: usize = futures::future::try_join_all(clients).await?.into_iter().sum();
    let took = started.elapsed();
    if ok != per_client * CLIENTS {
        anyhow::bail!(
            "{} of {} commands were not answered 200",
            per_client * CLIENTS - ok,
            per_client * CLIENTS
        );
    }
    Ok(ok as f64 / took.as_secs_f64())
}

/// This process's resident memory in MiB (both bots and the clients live in it), from /proc.
fn rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    println!(
        "signed /aurora status acknowledgements, {CLIENTS} concurrent clients, {PER_ROUND} commands a round, \
         replay table empty vs {ROWS} rows"
    );
    let (empty, empty_slack, stop_empty, dir_empty) = bot(0, "empty").await?;
    let filled_at = Instant::now();
    let (full, full_slack, stop_full, dir_full) = bot(ROWS, "full").await?;
    println!("(filled {ROWS} rows in {:.1} s)", filled_at.elapsed().as_secs_f64());
    let (empty, full) = (Arc::new(empty), Arc::new(full));
    // Warm up both (connection pools, SQLite page cache).
    round(&empty, &empty_slack).await?;
    round(&full, &full_slack).await?;
    let rss_before = rss_mib();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for r in 1..=ROUNDS {
        let x = round(&empty, &empty_slack).await?;
        let y = round(&full, &full_slack).await?;
        println!("round {r}: empty {x:>7.0}/s   {ROWS} rows {y:>7.0}/s");
        a.push(x);
        b.push(y);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (ma, mb) = (median(a), median(b));
    println!(
        "median: empty {ma:.0}/s, {ROWS} rows {mb:.0}/s: {:.2}x of the empty table",
        mb / ma
    );
    if let (Some(x), Some(y)) = (rss_before, rss_mib()) {
        println!(
            "resident memory of this process (both bots and the clients): {x:.0} MiB after the warm-up, {y:.0} MiB after \
             {} more commands",
            2 * ROUNDS * PER_ROUND
        );
    }
    stop_empty.cancel();
    stop_full.cancel();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = std::fs::remove_dir_all(dir_empty);
    let _ = std::fs::remove_dir_all(dir_full);
    Ok(())
}
