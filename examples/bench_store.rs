//! Benchmark: what durable commits cost. The store commits with `synchronous=FULL` (a commit is on
//! disk before the call returns, so the journal line written before a mutating AWS call survives a
//! power loss); `NORMAL` in WAL mode survives a crash of the process only. This times N run
//! checkpoints (the run's step and data, then a journal line: two commits each) and N outbox enqueues
//! (one commit each) against a fresh database in each mode, rounds alternating, side by side in one
//! run, and prints each round and the medians per operation.
//!
//! `cargo run --release --example bench_store [DIR]` (DIR: where the databases go, default the
//! system's temp dir; put it on the disk the bot's store will use).

use aurora_failover_bot::store::{Durability, NewRequest, Outgoing, SqliteStore, Store};
use aurora_failover_bot::types::{ClusterName, Mode, SlackUserId};
use std::sync::Arc;
use std::time::{Duration, Instant};

const N: usize = 300;
const ROUNDS: usize = 3;

/// One round in `mode`: (per checkpoint, per enqueue).
async fn round(dir: &std::path::Path, mode: Durability, n: usize) -> anyhow::Result<(Duration, Duration)> {
    let path = dir.join(format!("bench-{mode:?}-{n}.db"));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_with(&path, mode)?);
    let now = jiff::Timestamp::now();
    let id = store
        .create_request(&NewRequest {
            cluster: ClusterName::parse("orders").expect("a cluster name"),
            mode: Some(Mode::Detach),
            requested_by: SlackUserId::parse("U0ALICE").expect("a user id").into(),
            to_region: None,
            origin_channel: "C0INCIDENT".into(),
            response_url: None,
            requested_at: now,
            expires_at: now + jiff::SignedDuration::from_mins(15),
            reason: None,
            ticket: None,
        })
        .await?
        .map_err(|_| anyhow::anyhow!("the cluster is locked"))?;
    let run = store.create_run(id, "precheck", "{}", now).await?;
    let start = Instant::now();
    for i in 0..n {
        let data = format!("{{\"step_started_ms\":{i}}}");
        store
            .checkpoint(run, "detach", &data, Some(("detach", "started", "")), now, None)
            .await?;
    }
    let checkpoints = start.elapsed() / n as u32;
    let start = Instant::now();
    for i in 0..n {
        let key = format!("bench:{i}");
        store
            .enqueue(
                &Outgoing {
                    ordering_key: "request:1",
                    kind: "reply",
                    channel: None,
                    target: None,
                    response_url: None,
                    body: "{}",
                    dedup_key: Some(&key),
                    fence: None,
                },
                now,
            )
            .await?;
    }
    let enqueues = start.elapsed() / n as u32;
    drop(store);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    Ok((checkpoints, enqueues))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .map_or_else(std::env::temp_dir, std::path::PathBuf::from);
    std::fs::create_dir_all(&dir)?;
    let mut results: Vec<(Durability, Vec<Duration>, Vec<Duration>)> =
        vec![(Durability::Normal, vec![], vec![]), (Durability::Full, vec![], vec![])];
    for r in 0..ROUNDS {
        for (mode, checkpoints, enqueues) in &mut results {
            let (c, e) = round(&dir, *mode, N).await?;
            println!("round {r} {mode:?}: checkpoint {c:?}, enqueue {e:?}");
            checkpoints.push(c);
            enqueues.push(e);
        }
    }
    for (mode, checkpoints, enqueues) in results {
        println!(
            "{mode:?}: median per checkpoint {:?}, per enqueue {:?} ({N} each, {ROUNDS} rounds)",
            median(checkpoints),
            median(enqueues)
        );
    }
    Ok(())
}
