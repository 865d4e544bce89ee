//! Benchmark: how `/aurora status` scales with the number of configured clusters when every AWS call
//! takes a while (an injected delay on each emulated call). The claim to check: fifty clusters answer
//! about as fast as one, because clusters (and each cluster's members) are read concurrently.
//!
//! `scripts/bench` runs it. Output: for 1, 10 and 50 clusters, the median time from the signed command
//! to the answer at its response_url, over several rounds, and the ratio to one cluster, measured side by
//! side in one run (the machines are shared and noisy: compare ratios, not absolute times).

use aurora_failover_bot::aws::AwsOverrides;
use aurora_failover_bot::ports::SystemClock;
use aurora_failover_bot::settings::Settings;
use aurora_failover_bot::startup::{Application, Deps};
use standin::{Secret, SlackSender, SlackStandIn};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const DELAY_MS: u64 = 100;
const ROUNDS: usize = 5;
const SIZES: [usize; 3] = [1, 10, 50];
/// Longer than the bot reuses a status read (`status::FRESH`, one second).
const FRESH_READ: Duration = Duration::from_millis(1_100);

/// The fleet scenario and the bot's `[[clusters]]` for it.
fn scenario(n: usize) -> (awsim::Scenario, String) {
    let clusters = (0..n)
        .map(|i| {
            format!(
                "[[clusters]]\nname = \"c{i}\"\nglobal_cluster_id = \"g{i}-global\"\nregions = [\"us-east-1\", \"us-west-2\"]\n\
                 hosted_zone_id = \"Z0123456789\"\nwriter_record = \"w{i}.aurora_private_hosted_zone\"\n\
                 reader_record = \"r{i}.aurora_private_hosted_zone\"\nrecord_ttl = 1\n\n"
            )
        })
        .collect();
    (awsim::Scenario::fleet(n), clusters)
}

/// Median of `ROUNDS` status answers for `n` clusters.
async fn measure(n: usize) -> anyhow::Result<Duration> {
    let (scenario, clusters) = scenario(n);
    let sim = awsim::start("127.0.0.1:0".parse()?, scenario).await?;
    for action in [
        "DescribeGlobalClusters",
        "DescribeDBClusters",
        "GetMetricData",
        "ListResourceRecordSets",
    ] {
        sim.admin()
            .inject(awsim::FaultSpec {
                action: action.into(),
                region: None,
                error: None,
                delay_ms: Some(DELAY_MS),
                delay_response_ms: None,
                count: None,
            })
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let slack = SlackStandIn::start(&Secret::new("xoxb-bench")).await?;
    let dir = std::env::temp_dir().join(format!("afb-bench-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let toml = format!(
        "listen = \"127.0.0.1:0\"\n[slack]\nsigning_secret = \"bench\"\nbot_token = \"xoxb-bench\"\napi_url = \"{}\"\n\
         incident_channel = \"C0INCIDENT\"\nteam_id = \"T0STANDIN\"\napp_id = \"A0STANDIN\"\n[approval]\nrequesters = [\"U0ALICE\"]\napprovers = [\"U0BOB\"]\n[store]\n\
         path = \"{}\"\n{clusters}",
        slack.api_url(),
        dir.join("bench.db").display()
    );
    let deps = Deps {
        aws: AwsOverrides {
            endpoint_url: Some(sim.url().to_owned()),
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
    let server = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    let mut times = Vec::new();
    for _ in 0..ROUNDS {
        // The bot answers a status command from a read made less than a second before (a burst shares
        // one read): wait that out, so that every round reads AWS.
        tokio::time::sleep(FRESH_READ).await;
        let url = slack.response_url();
        let started = Instant::now();
        let now = jiff::Timestamp::now().as_second();
        sender.command("U0ALICE", "C0INCIDENT", "status", &url, now).await;
        slack
            .wait_for(Duration::from_secs(120), |_| {
                (!slack.responses_to(&url).is_empty()).then_some(())
            })
            .await
            .ok_or_else(|| anyhow::anyhow!("no status answer for {n} clusters"))?;
        times.push(started.elapsed());
    }
    shutdown.cancel();
    let _ = server.await;
    slack.stop();
    sim.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    times.sort();
    Ok(times[times.len() / 2])
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    println!("/aurora status, every emulated AWS call delayed {DELAY_MS} ms, median of {ROUNDS} rounds");
    println!("{:>9} {:>12} {:>14}", "clusters", "median", "vs 1 cluster");
    let mut one = None;
    for n in SIZES {
        let t = measure(n).await?;
        let base = *one.get_or_insert(t);
        println!(
            "{n:>9} {:>10.0} ms {:>13.2}x",
            t.as_secs_f64() * 1000.0,
            t.as_secs_f64() / base.as_secs_f64()
        );
    }
    Ok(())
}
