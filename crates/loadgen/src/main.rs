//! An open-loop load generator for Slack acknowledgements (issue 13, `scripts/bench`).
//!
//! At each offered rate it sends, for a fixed time, one distinct and correctly signed `/aurora status`
//! slash command every 1/rate seconds, on schedule whatever the answers (many in flight). A request's
//! latency is counted from the time it was scheduled, not sent, so that a server falling behind shows
//! its queueing in the latency instead of hiding it by slowing the sender (coordinated omission). Each
//! command has its own response_url (and so its own body and signature), so that the target's replay
//! protection does not refuse it.
//!
//! Reported per rate: achieved throughput (answers 200 per second), answers other than 200, transport
//! errors and timeouts, p50/p99/max latency of the 200s, the target's memory (VmRSS after the rate and the
//! peak VmHWM, from /proc/PID/status, summed over the given PIDs) and CPU seconds (from /proc/PID/stat),
//! and this process's own CPU seconds (getrusage): on a small machine it competes with the target. One
//! JSON line per rate (to `--json`, appended) and a table on stdout.
//!
//! Two kinds of request: slash commands (`/aurora {text}`, `{n}` in the text replaced by the request's
//! number, so that `--text 'failover c{n}'` opens a request on cluster `c{n}`), and with `--clicks FILE`
//! Approve clicks (Slack's `block_actions` interaction payload, the bot's `approve` button with the
//! request id as its value, on the message `ts` in `channel` the bot posted), one per line of the file
//! (`REQUEST_ID CHANNEL TS`): request number n clicks line n, so that every click decides its own request.

use bytes::Bytes;
use clap::Parser;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use standin::signing::{SIGNATURE_HEADER, TIMESTAMP_HEADER, sign};
use standin::{Secret, SlackSender};
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{Mutex, Semaphore};
use tokio::time::Instant;

#[derive(Parser, Debug)]
#[command(about = "Open-loop load of signed /aurora status commands at constant offered rates")]
struct Args {
    /// The slash-command URL, e.g. http://127.0.0.1:3000/slack/commands.
    #[arg(long)]
    url: String,
    /// The Slack signing secret the target verifies with.
    #[arg(long, default_value = "bench")]
    secret: String,
    /// Offered rates, requests per second, run one after the other.
    #[arg(long, value_delimiter = ',', default_value = "100,500,1000,2000")]
    rates: Vec<u64>,
    /// Seconds of load at each rate.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Seconds after its scheduled time that a request counts as timed out.
    #[arg(long, default_value_t = 5)]
    timeout: u64,
    /// At most this many requests in flight (connections); later ones wait, and their wait counts.
    #[arg(long, default_value_t = 1024)]
    max_in_flight: usize,
    /// Seconds of pause between rates (the target settles).
    #[arg(long, default_value_t = 2)]
    pause: u64,
    /// Response URLs are `{response_base}/{n}`, n distinct for every request.
    #[arg(long, default_value = "http://127.0.0.1:9/response")]
    response_base: String,
    /// The target's process ids (repeat for a server with worker processes: memory and CPU are summed).
    #[arg(long = "pid")]
    pids: Vec<u32>,
    /// A name for the target in the output.
    #[arg(long, default_value = "target")]
    label: String,
    /// Free text carried into every JSON line (e.g. the repetition).
    #[arg(long, default_value = "")]
    tag: String,
    /// Appends one JSON line per rate to this file (stdout gets the table).
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// First number n of the response URLs (distinct runs against one target need distinct ranges).
    /// With `--clicks`, also the first line of the file clicked.
    #[arg(long, default_value_t = 0)]
    first_id: u64,
    /// The slash command's text; `{n}` is replaced by the request's number.
    #[arg(long, default_value = "status")]
    text: String,
    /// Who sends the commands or clicks (a Slack user id).
    #[arg(long, default_value = "U0ALICE")]
    user: String,
    /// Sends Approve clicks instead of commands: one line `REQUEST_ID CHANNEL TS` per pending request.
    #[arg(long)]
    clicks: Option<std::path::PathBuf>,
}

/// The `action_id` of the Approve button on a request's approval message (`APPROVE` in
/// src/slack/command.rs; its value is the request id).
const APPROVE_ACTION: &str = "approve";

/// One pending request to click Approve on: its id and the approval message's channel and `ts`.
struct Pending {
    request: String,
    channel: String,
    ts: String,
}

/// The lines of a `--clicks` file (`REQUEST_ID CHANNEL TS`, blank lines skipped).
fn read_clicks(path: &std::path::Path) -> std::io::Result<Vec<Pending>> {
    let text = std::fs::read_to_string(path)?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut w = l.split_whitespace();
            match (w.next(), w.next(), w.next()) {
                (Some(r), Some(c), Some(t)) => Ok(Pending {
                    request: r.to_owned(),
                    channel: c.to_owned(),
                    ts: t.to_owned(),
                }),
                _ => Err(std::io::Error::other(format!("not `REQUEST_ID CHANNEL TS`: {l:?}"))),
            }
        })
        .collect()
}

/// What the run sends: commands, or clicks on these pending requests.
struct Load {
    args: Args,
    clicks: Vec<Pending>,
}

impl Load {
    /// The form body of request number `id`: a command, or a click on line `id` of the clicks file.
    fn body(&self, id: u64, response_url: &str) -> String {
        let a = &self.args;
        if a.clicks.is_none() {
            let text = a.text.replace("{n}", &id.to_string());
            return SlackSender::command_body(&a.user, "C0INCIDENT", &text, response_url);
        }
        let p = &self.clicks[usize::try_from(id).unwrap_or(usize::MAX) % self.clicks.len().max(1)];
        SlackSender::click_body(&a.user, &p.channel, &p.ts, APPROVE_ACTION, &p.request, response_url)
    }
}

/// What one rate measured.
struct Outcome {
    offered: u64,
    sent: u64,
    ok: u64,
    not_ok: u64,
    errors: u64,
    timeouts: u64,
    took: Duration,
    /// Latency of the 200s from their scheduled time, microseconds.
    hist: Histogram<u64>,
    cpu_self: f64,
    cpu_target: Option<f64>,
    rss_mib: Option<f64>,
    hwm_mib: Option<f64>,
}

/// Counters shared by the request tasks.
#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    not_ok: AtomicU64,
    errors: AtomicU64,
    timeouts: AtomicU64,
}

/// `(VmRSS, VmHWM)` in MiB summed over `pids`, from /proc/PID/status.
fn memory_mib(pids: &[u32]) -> Option<(f64, f64)> {
    if pids.is_empty() {
        return None;
    }
    let (mut rss, mut hwm) = (0.0, 0.0);
    for pid in pids {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let field = |name: &str| -> Option<f64> {
            let kb: f64 = status
                .lines()
                .find(|l| l.starts_with(name))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            Some(kb / 1024.0)
        };
        rss += field("VmRSS:")?;
        hwm += field("VmHWM:")?;
    }
    Some((rss, hwm))
}

/// User plus system CPU seconds of `pids` (summed), from /proc/PID/stat (fields 14 and 15, in clock
/// ticks of 1/100 s on Linux).
fn target_cpu(pids: &[u32]) -> Option<f64> {
    if pids.is_empty() {
        return None;
    }
    let mut ticks = 0u64;
    for pid in pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name (field 2) may hold spaces; the fields after it follow its closing parenthesis.
        let rest = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // `rest` starts at field 3, so field 14 is at index 11.
        ticks += fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    }
    Some(ticks as f64 / 100.0)
}

/// This process's user plus system CPU seconds (getrusage).
fn own_cpu() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a `rusage` into the pointer it is given, which points at one.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) } != 0 {
        return 0.0;
    }
    // SAFETY: zeroed is a valid `rusage` (plain integers), and getrusage succeeded.
    let usage = unsafe { usage.assume_init() };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(usage.ru_utime) + t(usage.ru_stime)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// One signed command, sent at (or as soon as a connection is free after) `scheduled`.
async fn one(
    http: HttpClient,
    load: Arc<Load>,
    limit: Arc<Semaphore>,
    counts: Arc<Counts>,
    hist: Arc<Mutex<Histogram<u64>>>,
    id: u64,
    scheduled: Instant,
) {
    let args = &load.args;
    let deadline = scheduled + Duration::from_secs(args.timeout);
    let response_url = format!("{}/{id}", args.response_base);
    let body = load.body(id, &response_url);
    let ts = unix_now().to_string();
    let signature = sign(&Secret::new(args.secret.clone()), &ts, body.as_bytes());
    let request = hyper::Request::post(&args.url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header(TIMESTAMP_HEADER, &ts)
        .header(SIGNATURE_HEADER, &signature)
        .body(Full::new(Bytes::from(body)))
        .expect("a valid request");
    let exchange = async {
        let _permit = limit.acquire().await.expect("the semaphore is never closed");
        let response = http.request(request).await?;
        let status = response.status();
        response.into_body().collect().await?;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(status)
    };
    match tokio::time::timeout_at(deadline, exchange).await {
        Ok(Ok(status)) if status == 200 => {
            let micros = scheduled.elapsed().as_micros() as u64;
            hist.lock().await.saturating_record(micros.max(1));
            counts.ok.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Ok(_)) => {
            counts.not_ok.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Err(_)) => {
            counts.errors.fetch_add(1, Ordering::Relaxed);
        }
        Err(_) => {
            counts.timeouts.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Offers `rate` requests a second for `args.duration` seconds and waits for the last answer.
async fn run_rate(http: &HttpClient, load: &Arc<Load>, rate: u64, first_id: u64) -> Outcome {
    let args = &load.args;
    let counts = Arc::new(Counts::default());
    let hist = Arc::new(Mutex::new(
        Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds"),
    ));
    let limit = Arc::new(Semaphore::new(args.max_in_flight));
    let total = rate * args.duration;
    let cpu_self = own_cpu();
    let cpu_target = target_cpu(&args.pids);
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..total {
        let scheduled = start + Duration::from_nanos(i * 1_000_000_000 / rate);
        tokio::time::sleep_until(scheduled).await;
        tasks.spawn(one(
            http.clone(),
            load.clone(),
            limit.clone(),
            counts.clone(),
            hist.clone(),
            first_id + i,
            scheduled,
        ));
        // Reap finished tasks as we go, so the set does not hold a whole run's worth.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let took = start.elapsed().max(Duration::from_secs(args.duration));
    let memory = memory_mib(&args.pids);
    let hist = Arc::try_unwrap(hist)
        .map(Mutex::into_inner)
        .unwrap_or_else(|_| unreachable!("every task has finished"));
    Outcome {
        offered: rate,
        sent: total,
        ok: counts.ok.load(Ordering::Relaxed),
        not_ok: counts.not_ok.load(Ordering::Relaxed),
        errors: counts.errors.load(Ordering::Relaxed),
        timeouts: counts.timeouts.load(Ordering::Relaxed),
        took,
        hist,
        cpu_self: own_cpu() - cpu_self,
        cpu_target: target_cpu(&args.pids).zip(cpu_target).map(|(b, a)| b - a),
        rss_mib: memory.map(|m| m.0),
        hwm_mib: memory.map(|m| m.1),
    }
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.digits$}"))
}

/// The load the arguments describe: with `--clicks`, the file read, and refused when it lists fewer
/// requests (from `--first-id` on) than the run sends clicks.
fn load(args: Args) -> std::io::Result<Load> {
    let Some(path) = &args.clicks else {
        return Ok(Load {
            args,
            clicks: Vec::new(),
        });
    };
    let clicks = read_clicks(path)?;
    let needed: u64 = args.rates.iter().map(|r| r.max(&1) * args.duration).sum();
    let have = (clicks.len() as u64).saturating_sub(args.first_id);
    if have < needed {
        return Err(std::io::Error::other(format!(
            "{have} pending requests from line {} of the clicks file, {needed} clicks to send: some would click twice",
            args.first_id
        )));
    }
    Ok(Load { args, clicks })
}

/// Prints one rate's row of the table and appends its JSON line to `--json`. `idle`: the target's
/// (VmRSS, VmHWM) before the first rate.
fn record(args: &Args, idle: Option<(f64, f64)>, o: &Outcome) -> std::io::Result<()> {
    let achieved = o.ok as f64 / o.took.as_secs_f64();
    let (p50, p99, max) = if o.hist.is_empty() {
        (None, None, None)
    } else {
        (
            Some(ms(o.hist.value_at_quantile(0.5))),
            Some(ms(o.hist.value_at_quantile(0.99))),
            Some(ms(o.hist.max())),
        )
    };
    println!(
        "{:>8} {:>9.0} {:>6} {:>6} {:>8} {:>9} {:>9} {:>9} {:>8} {:>8} {:>9} {:>9.2}",
        o.offered,
        achieved,
        o.not_ok,
        o.errors,
        o.timeouts,
        opt(p50, 2),
        opt(p99, 2),
        opt(max, 1),
        opt(o.rss_mib, 1),
        opt(o.hwm_mib, 1),
        opt(o.cpu_target, 2),
        o.cpu_self
    );
    let line = json!({
        "label": args.label,
        "tag": args.tag,
        "kind": if args.clicks.is_some() { "click" } else { "command" },
        "offered_per_s": o.offered,
        "duration_s": args.duration,
        "sent": o.sent,
        "ok": o.ok,
        "non_200": o.not_ok,
        "errors": o.errors,
        "timeouts": o.timeouts,
        "took_s": o.took.as_secs_f64(),
        "achieved_per_s": achieved,
        "p50_ms": p50,
        "p99_ms": p99,
        "max_ms": max,
        "rss_idle_mib": idle.map(|m| m.0),
        "rss_mib": o.rss_mib,
        "hwm_mib": o.hwm_mib,
        "cpu_target_s": o.cpu_target,
        "cpu_loadgen_s": o.cpu_self,
    });
    if let Some(path) = &args.json {
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        writeln!(f, "{line}")?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let load = Arc::new(load(Args::parse())?);
    let args = &load.args;
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let http: HttpClient = Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_max_idle_per_host(args.max_in_flight)
        .build(connector);
    let idle = memory_mib(&args.pids);
    println!(
        "{}: {} s per rate, timeout {} s, at most {} in flight; target RSS before: {} MiB",
        args.label,
        args.duration,
        args.timeout,
        args.max_in_flight,
        opt(idle.map(|m| m.0), 1)
    );
    println!(
        "{:>8} {:>9} {:>6} {:>6} {:>8} {:>9} {:>9} {:>9} {:>8} {:>8} {:>9} {:>9}",
        "offered",
        "achieved",
        "non200",
        "errors",
        "timeouts",
        "p50 ms",
        "p99 ms",
        "max ms",
        "RSS MiB",
        "peak MiB",
        "cpu tgt s",
        "cpu gen s"
    );
    let mut next_id = args.first_id;
    for (n, &rate) in args.rates.iter().enumerate() {
        if n > 0 {
            tokio::time::sleep(Duration::from_secs(args.pause)).await;
        }
        let o = run_rate(&http, &load, rate.max(1), next_id).await;
        next_id += o.sent;
        record(args, idle, &o)?;
    }
    Ok(())
}
