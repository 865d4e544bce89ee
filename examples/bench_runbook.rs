//! Benchmark (issue 13, items 2 and 3): how long a failover run takes to notice that the target is
//! writable and submit the DNS change, how many AWS reads it makes while it waits, and the bot's memory
//! during a run; side by side with the seed's Lambda logic (`bench/seed/seed_failover.py`, boto3)
//! against the same emulator, in the same run.
//!
//! Each sample gets a fresh emulator (awsim, in this process) with the two-Region example scenario and
//! fixed promotion times (`DETACH_MS`; managed failover and switchover made to take as long), and:
//! - **the bot**: the release binary run as `serve` in its own process (so that its peak RSS, VmHWM, is
//!   its own and not this harness's), with the Slack stand-in in this process. A signed
//!   `/aurora failover orders --mode MODE` from the requester, a signed Approve click from a second
//!   user, then the run to its end (the ":tada:" outcome). Modes: detach, failover, switchover.
//! - **the seed**: the Lambda's handler run directly by Python with boto3 pointed at the emulator.
//!
//! Measured from the emulator's own records: the overhead is the time from the moment the emulator made
//! the target writable (`Admin::writable_since`, exact on its timeline) to the arrival of the
//! ChangeResourceRecordSets UPSERT (the call log's `at`, same clock); the reads are every call the
//! emulator received between the mutating call (RemoveFromGlobalCluster, FailoverGlobalCluster,
//! SwitchoverGlobalCluster) and the UPSERT, by action and Region, per poll interval of the bot.
//!
//! Knobs: `BENCH_RUNBOOK_REPS` (default 3), `BENCH_BOT_BIN` (default: `aurora-failover-bot` beside
//! this example's directory, i.e. the build of the same profile), `BENCH_SEED_PYTHON` (default
//! `python3`, needs boto3), `BENCH_SEED_SCRIPT`, `BENCH_RUNBOOK_MODES` (default
//! `detach,failover,switchover`), `BENCH_SKIP_SEED=1`, `BENCH_NO_WRITE=1` (leave BENCHMARKS.md alone),
//! `BENCH_RUNBOOK_JSON` (also append the JSON lines to this file). Prints one JSON line per sample and
//! a markdown table (min/median/max); writes the table between the `runbook` markers of BENCHMARKS.md.

use anyhow::{Context, anyhow, bail};
use serde::Serialize;
use standin::{Secret, SlackSender, SlackStandIn};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// How long the emulator takes to promote the target, in every mode (a managed operation: `PENDING_MS`
/// pending, then the rest failing over or switching over; a switchover also waits for the lag).
const DETACH_MS: u64 = 5_000;
const PENDING_MS: u64 = 1_000;
/// The bot's poll interval for the run (its default, `runbook.poll_interval_ms`).
const POLL_MS: u64 = aurora_failover_bot::settings::DEFAULT_POLL_INTERVAL_MS;
const SIGNING_SECRET: &str = "bench";
const TOKEN: &str = "xoxb-bench";
const CHANNEL: &str = "C0INCIDENT";
const TARGET_REGION: &str = "us-west-2";
const TARGET: &str = "orders-west";
/// Calls that change things: the start of the wait (the first three) and its end (the last).
const MUTATING: [&str; 4] = [
    "RemoveFromGlobalCluster",
    "FailoverGlobalCluster",
    "SwitchoverGlobalCluster",
    "ChangeResourceRecordSets",
];
const BEGIN_MARK: &str = "<!-- runbook:start (written by scripts/bench) -->";
const END_MARK: &str = "<!-- runbook:end -->";

/// One measured run.
#[derive(Debug, Clone, Serialize)]
struct Sample {
    /// `bot` or `seed`.
    side: &'static str,
    mode: String,
    rep: usize,
    /// Target writable → UPSERT received, ms.
    overhead_ms: f64,
    /// Mutating call → UPSERT, ms: the wait the reads are counted over.
    wait_ms: f64,
    /// Reads received during the wait, by `Action Region`.
    reads: BTreeMap<String, u64>,
    /// Reads per poll interval: reads / (⌊wait / interval⌋ + 1), the number of polls the wait has
    /// room for (the first right after the mutating call).
    reads_per_interval: f64,
    describe_db_clusters_per_interval: f64,
    /// The whole run (command to outcome for the bot, the handler for the seed), s.
    run_s: f64,
    /// The bot's RSS once ready, and its peak (VmHWM) at the end of the run, KiB.
    rss_idle_kib: Option<u64>,
    rss_peak_kib: Option<u64>,
}

/// The emulated world of every sample.
fn scenario() -> awsim::Scenario {
    let mut s = awsim::Scenario::two_region_example();
    s.timings.detach_ms = DETACH_MS;
    s.timings.pending_ms = PENDING_MS;
    s.timings.failover_ms = DETACH_MS - PENDING_MS;
    s.timings.switchover_ms = DETACH_MS - PENDING_MS;
    s
}

/// What the emulator's log says about one run: overhead, wait and reads.
fn measure(sim: &awsim::Awsim, side: &'static str, mode: &str, rep: usize) -> anyhow::Result<Sample> {
    let admin = sim.admin();
    let writable = admin
        .writable_since(TARGET_REGION, TARGET)
        .ok_or_else(|| anyhow!("{side} {mode}: {TARGET} never became writable"))?;
    let calls = admin.calls();
    let at = |c: &awsim::CallRecord| c.received().ok_or_else(|| anyhow!("unparsable call time {}", c.at));
    let start = calls
        .iter()
        .find(|c| MUTATING[..3].contains(&c.action.as_str()))
        .ok_or_else(|| anyhow!("{side} {mode}: no mutating call"))?;
    let upsert = calls
        .iter()
        .find(|c| c.action == "ChangeResourceRecordSets")
        .ok_or_else(|| anyhow!("{side} {mode}: no ChangeResourceRecordSets"))?;
    let (from, to) = (at(start)?, at(upsert)?);
    let mut reads = BTreeMap::new();
    for c in calls.iter().filter(|c| c.seq > start.seq && c.seq < upsert.seq) {
        if !MUTATING.contains(&c.action.as_str()) {
            *reads.entry(format!("{} {}", c.action, c.region)).or_insert(0) += 1;
        }
    }
    if std::env::var("BENCH_RUNBOOK_TRACE").as_deref() == Ok("1") {
        trace(&calls, from, writable);
    }
    let wait_ms = ms(to.duration_since(from));
    // The poll intervals the wait spans, counting the one it starts with (a poll right after the
    // mutating call, then one per interval): a wait of 6.1 s at 2 s has room for 4 polls.
    let intervals = (wait_ms / POLL_MS as f64).floor() + 1.0;
    let total: u64 = reads.values().sum();
    let ddbc: u64 = reads
        .iter()
        .filter(|(k, _)| k.starts_with("DescribeDBClusters "))
        .map(|(_, n)| n)
        .sum();
    Ok(Sample {
        side,
        mode: mode.to_owned(),
        rep,
        overhead_ms: ms(to.duration_since(writable)),
        wait_ms,
        reads,
        reads_per_interval: total as f64 / intervals,
        describe_db_clusters_per_interval: ddbc as f64 / intervals,
        run_s: 0.0,
        rss_idle_kib: None,
        rss_peak_kib: None,
    })
}

/// Prints the call log from the mutating call on, in ms since it, and when the target became writable.
fn trace(calls: &[awsim::CallRecord], from: jiff::Timestamp, writable: jiff::Timestamp) {
    eprintln!("  {:>9.1} ms  (target writable)", ms(writable.duration_since(from)));
    for c in calls {
        if let Some(t) = c.received().filter(|t| *t >= from) {
            eprintln!(
                "  {:>9.1} ms  {} {} {}",
                ms(t.duration_since(from)),
                c.action,
                c.region,
                c.status
            );
        }
    }
}

fn ms(d: jiff::SignedDuration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `VmRSS`/`VmHWM` (KiB) of process `pid`, from /proc.
fn proc_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The bot's configuration for a run against the stand-in at `api_url`.
fn bot_toml(port: u16, api_url: &str, db: &std::path::Path) -> String {
    format!(
        r#"listen = "127.0.0.1:{port}"
[slack]
signing_secret = "{SIGNING_SECRET}"
bot_token = "{TOKEN}"
api_url = "{api_url}"
incident_channel = "{CHANNEL}"
team_id = "T0STANDIN"
app_id = "A0STANDIN"
[approval]
requesters = ["U0ALICE"]
approvers = ["U0BOB"]
[store]
path = "{db}"
[runbook]
poll_interval_ms = {POLL_MS}
[[clusters]]
name = "orders"
global_cluster_id = "orders-global"
regions = ["us-east-1", "us-west-2"]
hosted_zone_id = "Z0123456789"
writer_record = "aurorawriteendpoint.aurora_private_hosted_zone"
reader_record = "aurorareadendpoint.aurora_private_hosted_zone"
record_ttl = 1
"#,
        db = db.display()
    )
}

/// A free loopback port (bound, read, released).
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn bot_binary() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("BENCH_BOT_BIN") {
        return Ok(p.into());
    }
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(|examples| examples.parent())
        .ok_or_else(|| anyhow!("no directory above {}", exe.display()))?;
    Ok(dir.join("aurora-failover-bot"))
}

/// The bot as a process, killed when dropped.
struct BotProcess {
    child: tokio::process::Child,
    port: u16,
    dir: PathBuf,
}

impl BotProcess {
    async fn start(sim_url: &str, api_url: &str, tag: &str) -> anyhow::Result<BotProcess> {
        let dir = std::env::temp_dir().join(format!("afb-bench-runbook-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let port = free_port()?;
        let config = dir.join("bot.toml");
        std::fs::write(&config, bot_toml(port, api_url, &dir.join("bot.db")))?;
        let bin = bot_binary()?;
        let child = tokio::process::Command::new(&bin)
            .args(["serve", "--config"])
            .arg(&config)
            .env("AWS_ENDPOINT_URL", sim_url)
            .env("AWS_ACCESS_KEY_ID", "bench")
            .env("AWS_SECRET_ACCESS_KEY", "bench")
            .env("AWS_REGION", "us-east-1")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("bot.log"))?)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let bot = BotProcess { child, port, dir };
        bot.wait_ready().await?;
        Ok(bot)
    }

    fn pid(&self) -> u32 {
        self.child.id().unwrap_or_default()
    }

    /// Until `/readyz` answers 200 (the bot has learned its Slack workspace).
    async fn wait_ready(&self) -> anyhow::Result<()> {
        let url = format!("http://127.0.0.1:{}/readyz", self.port);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if reqwest::get(&url).await.is_ok_and(|r| r.status() == 200) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let log = std::fs::read_to_string(self.dir.join("bot.log")).unwrap_or_default();
        bail!("the bot did not become ready:\n{log}")
    }
}

impl Drop for BotProcess {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether a `block_actions` button `approve` with value `id` is somewhere in `v`.
fn has_approve(v: &serde_json::Value, id: &str) -> bool {
    match v {
        serde_json::Value::Object(m) => {
            (m.get("action_id").and_then(|a| a.as_str()) == Some("approve")
                && m.get("value").and_then(|a| a.as_str()) == Some(id))
                || m.values().any(|x| has_approve(x, id))
        }
        serde_json::Value::Array(a) => a.iter().any(|x| has_approve(x, id)),
        _ => false,
    }
}

/// Waits up to `timeout` for a Slack call `probe` accepts.
async fn wait_slack<T>(
    slack: &SlackStandIn,
    timeout: Duration,
    probe: impl Fn(&[standin::Recorded]) -> Option<T>,
) -> Option<T> {
    slack.wait_for(timeout, probe).await
}

/// One bot run in `mode`: request, approve, wait for the outcome; the emulator measures.
async fn bot_run(mode: &str, rep: usize) -> anyhow::Result<Sample> {
    let sim = awsim::start("127.0.0.1:0".parse()?, scenario()).await?;
    let slack = SlackStandIn::start(&Secret::new(TOKEN)).await?;
    let bot = BotProcess::start(sim.url(), &slack.api_url(), &format!("{mode}-{rep}")).await?;
    let rss_idle = proc_kib(bot.pid(), "VmRSS:");
    let sender = SlackSender::new(&format!("http://127.0.0.1:{}", bot.port), &Secret::new(SIGNING_SECRET));
    let started = Instant::now();
    let now = || jiff::Timestamp::now().as_second();
    let text = format!("failover orders --to {TARGET_REGION} --mode {mode}");
    let answer = sender
        .command("U0ALICE", CHANNEL, &text, &slack.response_url(), now())
        .await;
    let id = answer
        .text()
        .strip_prefix("Request #")
        .and_then(|t| t.split_whitespace().next().map(str::to_owned))
        .ok_or_else(|| anyhow!("request refused: {}", answer.body))?;
    let ts = wait_slack(&slack, Duration::from_secs(30), |calls| {
        calls
            .iter()
            .find(|c| c.method == "chat.postMessage" && has_approve(&c.body, &id))
            .and_then(|c| c.ts.clone())
    })
    .await
    .ok_or_else(|| anyhow!("request #{id}'s approval message was not posted"))?;
    let click = sender
        .click("U0BOB", CHANNEL, &ts, "approve", &id, &slack.response_url(), now())
        .await;
    anyhow::ensure!(click.status == 200, "the click was answered {click:?}");
    let outcome = wait_slack(&slack, Duration::from_secs(120), |calls| {
        calls
            .iter()
            .find(|c| c.method == "chat.postMessage" && c.text().contains(":tada:"))
            .map(|_| ())
    })
    .await;
    let run_s = started.elapsed().as_secs_f64();
    let rss_peak = proc_kib(bot.pid(), "VmHWM:");
    drop(bot);
    let mut sample = measure(&sim, "bot", mode, rep);
    if outcome.is_none() {
        let texts: Vec<String> = slack.calls().iter().map(|c| c.text().to_owned()).collect();
        sample = Err(anyhow!("the {mode} run did not succeed in 120 s: {texts:#?}"));
    }
    slack.stop();
    sim.shutdown().await;
    let mut sample = sample?;
    (sample.run_s, sample.rss_idle_kib, sample.rss_peak_kib) = (run_s, rss_idle, rss_peak);
    Ok(sample)
}

/// One run of the seed's handler against a fresh emulator.
async fn seed_run(rep: usize) -> anyhow::Result<Sample> {
    let sim = awsim::start("127.0.0.1:0".parse()?, scenario()).await?;
    let arn = sim
        .admin()
        .cluster(TARGET_REGION, TARGET)
        .ok_or_else(|| anyhow!("no {TARGET}"))?
        .arn;
    let python = std::env::var("BENCH_SEED_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = std::env::var("BENCH_SEED_SCRIPT")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/bench/seed/seed_failover.py").into());
    let started = Instant::now();
    let out = tokio::process::Command::new(&python)
        .arg(&script)
        .env("AWS_ENDPOINT_URL", sim.url())
        .env("AWS_ACCESS_KEY_ID", "bench")
        .env("AWS_SECRET_ACCESS_KEY", "bench")
        .env("AWS_REGION", TARGET_REGION)
        .env("AWS_DEFAULT_REGION", TARGET_REGION)
        .env("GLOBAL_CLUSTER_NAME", "orders-global")
        .env("SECONDARY_CLUSTER_ARN", &arn)
        .env("HOSTED_ZONE_ID", "Z0123456789")
        .output()
        .await
        .with_context(|| format!("running {python} {script}"))?;
    let run_s = started.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!(
            "the seed failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let sample = measure(&sim, "seed", "detach", rep);
    sim.shutdown().await;
    let mut sample = sample?;
    sample.run_s = run_s;
    Ok(sample)
}

/// (min, median, max) of `xs`.
fn spread(mut xs: Vec<f64>) -> (f64, f64, f64) {
    xs.sort_by(f64::total_cmp);
    match xs.len() {
        0 => (f64::NAN, f64::NAN, f64::NAN),
        n => (xs[0], xs[n / 2], xs[n - 1]),
    }
}

fn fmt3((lo, mid, hi): (f64, f64, f64), digits: usize) -> String {
    format!("{mid:.digits$} ({lo:.digits$}–{hi:.digits$})")
}

/// The samples of one side and mode, in the order they ran.
fn groups(samples: &[Sample]) -> Vec<((&'static str, String), Vec<&Sample>)> {
    let mut out: Vec<((&'static str, String), Vec<&Sample>)> = Vec::new();
    for s in samples {
        let key = (s.side, s.mode.clone());
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(s),
            None => out.push((key, vec![s])),
        }
    }
    out
}

/// The markdown table: one row per side and mode, median (min–max).
fn table(samples: &[Sample]) -> String {
    let mut t = String::from(
        "| | overhead: writable → UPSERT (ms) | DescribeDBClusters per poll interval | all reads per poll \
         interval | reads per second | whole run (s) | bot RSS idle / peak (MiB) |\n|---|---|---|---|---|---|---|\n",
    );
    for ((side, mode), v) in groups(samples) {
        let col = |f: &dyn Fn(&Sample) -> f64| spread(v.iter().map(|s| f(s)).collect());
        let rss = |f: &dyn Fn(&Sample) -> Option<u64>| {
            let xs: Vec<f64> = v.iter().filter_map(|s| f(s)).map(|k| k as f64 / 1024.0).collect();
            if xs.is_empty() {
                "–".to_owned()
            } else {
                format!("{:.1}", spread(xs).1)
            }
        };
        let label = if side == "bot" {
            format!("this bot, {mode}")
        } else {
            "seed Lambda (boto3), detach".to_owned()
        };
        t += &format!(
            "| {label} | {} | {} | {} | {} | {} | {} / {} |\n",
            fmt3(col(&|s| s.overhead_ms), 0),
            fmt3(col(&|s| s.describe_db_clusters_per_interval), 2),
            fmt3(col(&|s| s.reads_per_interval), 2),
            fmt3(col(&|s| s.reads.values().sum::<u64>() as f64 * 1000.0 / s.wait_ms), 1),
            fmt3(col(&|s| s.run_s), 1),
            rss(&|s| s.rss_idle_kib),
            rss(&|s| s.rss_peak_kib),
        );
    }
    t
}

/// The reads of the median run of each side and mode, by action and Region.
fn breakdown(samples: &[Sample]) -> String {
    let mut t = String::from("| | reads during the wait (median run), by action and Region |\n|---|---|\n");
    for ((side, mode), mut v) in groups(samples) {
        v.sort_by(|a, b| a.overhead_ms.total_cmp(&b.overhead_ms));
        let s = v[v.len() / 2];
        let reads: Vec<String> = s.reads.iter().map(|(k, n)| format!("{k}: {n}")).collect();
        t += &format!(
            "| {side}, {mode} ({:.1} s wait) | {} |\n",
            s.wait_ms / 1000.0,
            reads.join(", ")
        );
    }
    t
}

/// How each target fares, from the bot's medians.
fn verdicts(samples: &[Sample]) -> String {
    let budget = POLL_MS as f64 + 100.0;
    let mut out = String::new();
    for ((side, mode), v) in groups(samples) {
        if side != "bot" {
            continue;
        }
        let over = spread(v.iter().map(|s| s.overhead_ms).collect()).1;
        let ddbc = spread(v.iter().map(|s| s.describe_db_clusters_per_interval).collect()).1;
        out += &format!(
            "- {mode}: overhead {over:.0} ms against a budget of {budget:.0} ms (one poll interval + 100 ms): {}; \
             {ddbc:.2} DescribeDBClusters per poll interval against at most 1: {}.\n",
            if over <= budget { "met" } else { "MISSED" },
            if ddbc <= 1.0 { "met" } else { "MISSED" },
        );
    }
    out
}

/// The section between the markers.
fn section(samples: &[Sample], reps: usize) -> String {
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let python = std::env::var("BENCH_SEED_PYTHON").unwrap_or_else(|_| "python3".into());
    let versions = std::process::Command::new(&python)
        .args([
            "-c",
            "import boto3, sys; print(f'boto3 {boto3.__version__}, Python {sys.version.split()[0]}')",
        ])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    format!(
        "{BEGIN_MARK}\n## Runbook overhead and memory during a run, side by side with the seed's Lambda\n\n\
         {} UTC, `scripts/bench` (`examples/bench_runbook`, BENCH_RUNBOOK_REPS={reps}), aurora-failover-bot \
         {commit} ({} build, run as `serve`), seed: {versions}. Promotion {DETACH_MS} ms in every mode; \
         the bot's poll interval {POLL_MS} ms. Median (min–max) of {reps} runs.\n\n{}\n{}\n{}{END_MARK}",
        jiff::Timestamp::now().strftime("%Y-%m-%d %H:%M"),
        if cfg!(debug_assertions) { "debug" } else { "release" },
        table(samples),
        breakdown(samples),
        verdicts(samples),
    )
}

/// Replaces the section between the markers of BENCHMARKS.md (appends it when they are missing).
fn write_section(text: &str) -> anyhow::Result<()> {
    let path = std::path::Path::new("BENCHMARKS.md");
    let doc = std::fs::read_to_string(path).context("reading BENCHMARKS.md (run from the repository root)")?;
    let updated = match (doc.find(BEGIN_MARK), doc.find(END_MARK)) {
        (Some(b), Some(e)) if b < e => format!("{}{text}{}", &doc[..b], &doc[e + END_MARK.len()..]),
        _ => format!("{}\n{text}\n", doc.trim_end()),
    };
    std::fs::write(path, updated)?;
    Ok(())
}

fn emit(sample: &Sample, json: Option<&std::path::Path>) -> anyhow::Result<()> {
    let line = serde_json::to_string(sample)?;
    println!("{line}");
    if let Some(path) = json {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        writeln!(f, "{line}")?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let reps: usize = std::env::var("BENCH_RUNBOOK_REPS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let modes = std::env::var("BENCH_RUNBOOK_MODES").unwrap_or_else(|_| "detach,failover,switchover".into());
    let json = std::env::var_os("BENCH_RUNBOOK_JSON").map(PathBuf::from);
    let seed = std::env::var("BENCH_SKIP_SEED").as_deref() != Ok("1");
    println!("runbook overhead: promotion {DETACH_MS} ms, the bot polling every {POLL_MS} ms, {reps} repetitions");
    let mut samples = Vec::new();
    for rep in 1..=reps {
        for mode in modes.split(',').map(str::trim).filter(|m| !m.is_empty()) {
            let s = bot_run(mode, rep).await?;
            emit(&s, json.as_deref())?;
            samples.push(s);
        }
        if seed {
            let s = seed_run(rep).await?;
            emit(&s, json.as_deref())?;
            samples.push(s);
        }
    }
    let text = section(&samples, reps);
    println!("\n{text}");
    if std::env::var("BENCH_NO_WRITE").as_deref() != Ok("1") {
        write_section(&text)?;
    }
    Ok(())
}
