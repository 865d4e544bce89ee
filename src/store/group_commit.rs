//! The SQLite connection's own thread, committing the operations queued while it was busy in one
//! transaction (group commit).
//!
//! Every store operation is a closure run on this thread (so a slow disk never stalls the async
//! runtime's worker threads, and statements are serialised without a lock held across an await). A
//! durable commit waits for the disk (`fsync`, about 4 ms on the project's machine, BENCHMARKS.md), and
//! one commit per operation capped the whole bot near 250 durable operations a second. Here the thread
//! takes the first queued operation and every other already queued (at most [`MAX_BATCH`]), runs each
//! inside its own savepoint (an operation that fails is rolled back alone; the others stand), commits
//! them together, and only then answers each caller: one wait for the disk for the whole batch, and
//! still nothing is reported done before it is on disk. When the commit fails, every operation of
//! the batch gets that error (none of them was applied). At low load a batch is one operation, as
//! before.
//!
//! The light operations taken together (the replay table, see `SqliteStore::lightly`) are committed
//! in a transaction of their own with `synchronous=NORMAL`, the others in one with the store's
//! durability (SQLite refuses to change `synchronous` inside a transaction: it is set before
//! `BEGIN`); a transaction that only read writes nothing and waits for no disk.

use super::StoreError;
use super::sqlite::Durability;
use rusqlite::Connection;
use std::sync::mpsc;

/// Most operations committed in one transaction: bounds how long one commit holds the others' answers.
pub const MAX_BATCH: usize = 256;

/// What a queued operation leaves to do once its batch is committed (or not): answer its caller,
/// with the commit's error if there was one.
type Finish = Box<dyn FnOnce(Option<StoreError>) + Send>;

/// Runs an operation (or, given an error, does not, and answers its caller with that error); says
/// whether it failed (then its savepoint is rolled back).
type Run = Box<dyn FnOnce(Result<&mut Connection, StoreError>) -> (bool, Finish) + Send>;

/// An operation queued for the connection's thread.
struct Job {
    run: Run,
    /// Committed with `synchronous=NORMAL` when its whole batch is light.
    light: bool,
}

/// The handle to the connection's thread; cloning it shares the thread. The thread ends, and the
/// connection closes, when the last handle is dropped.
#[derive(Clone)]
pub struct Committer {
    jobs: mpsc::Sender<Job>,
    stats: std::sync::Arc<Stats>,
}

/// What the thread has done since it started.
#[derive(Debug, Default)]
pub struct Stats {
    /// Transactions committed (each one wait for the disk when durable).
    pub commits: std::sync::atomic::AtomicU64,
    /// Operations run (committed, failed or refused).
    pub operations: std::sync::atomic::AtomicU64,
}

impl Committer {
    /// Moves `conn` to a new thread that runs the queued operations, committing with `durability`.
    ///
    /// # Errors
    /// The thread cannot be started (the system is out of threads).
    pub fn start(conn: Connection, durability: Durability) -> std::io::Result<Committer> {
        let (jobs, queue) = mpsc::channel();
        let stats = std::sync::Arc::new(Stats::default());
        let counted = stats.clone();
        std::thread::Builder::new()
            .name("sqlite-store".to_owned())
            .spawn(move || serve(conn, durability, &queue, &counted))?;
        Ok(Committer { jobs, stats })
    }

    /// Commits and operations so far (BENCHMARKS.md: how many operations share a commit under load).
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Runs `f` on the connection's thread, within a transaction committed before this returns.
    /// `light`: the replay table only (see the module's doc).
    ///
    /// # Errors
    /// What `f` returned; the commit's error (then `f`'s changes were not kept); `StoreError::Closed`
    /// when the thread has stopped (or `f` panicked).
    pub async fn call<R: Send + 'static>(
        &self,
        light: bool,
        f: impl FnOnce(&mut Connection) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let run = move |c: Result<&mut Connection, StoreError>| -> (bool, Finish) {
            let result = c.and_then(f);
            let failed = result.is_err();
            let finish: Finish = Box::new(move |commit_error| {
                let _ = answer.send(match commit_error {
                    Some(e) => Err(e),
                    None => result,
                });
            });
            (failed, finish)
        };
        self.jobs
            .send(Job {
                run: Box::new(run),
                light,
            })
            .map_err(|_| StoreError::Closed)?;
        answered.await.map_err(|_| StoreError::Closed)?
    }
}

/// The thread's loop: a batch at a time, until every handle is dropped.
fn serve(mut conn: Connection, durability: Durability, queue: &mpsc::Receiver<Job>, stats: &Stats) {
    use std::sync::atomic::Ordering::Relaxed;
    let mut current = None;
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // Light operations and the others commit separately: a batch of reads and replay records
        // then never waits for the disk (a read-only transaction writes nothing), and only a batch
        // with a durable write does. Operations queued together were concurrent, so their order
        // between the two batches is free.
        let (light, durable): (Vec<Job>, Vec<Job>) = batch.into_iter().partition(|j| j.light);
        for (jobs, wanted) in [(light, Durability::Normal), (durable, durability)] {
            if jobs.is_empty() {
                continue;
            }
            if current != Some(wanted) {
                match conn.prepare_cached(wanted.statement()).and_then(|mut s| s.execute([])) {
                    Ok(_) => current = Some(wanted),
                    Err(e) => {
                        fail_all(jobs, &e);
                        continue;
                    }
                }
            }
            stats.operations.fetch_add(jobs.len() as u64, Relaxed);
            run_batch(&mut conn, jobs, stats);
        }
    }
}

/// Runs `batch` in one transaction, each job in its own savepoint, then commits (counted in `stats`
/// before anyone is answered) and answers them.
fn run_batch(conn: &mut Connection, batch: Vec<Job>, stats: &Stats) {
    if let Err(e) = exec(conn, "BEGIN") {
        fail_all(batch, &e);
        return;
    }
    let mut done: Vec<Finish> = Vec::with_capacity(batch.len());
    let mut jobs = batch.into_iter();
    while let Some(job) = jobs.next() {
        if let Err(e) = exec(conn, "SAVEPOINT job") {
            fail_done(done, &e);
            fail_all(std::iter::once(job).chain(jobs).collect(), &e);
            restart(conn);
            return;
        }
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (job.run)(Ok(conn))));
        if conn.is_autocommit() {
            // SQLite rolled the whole transaction back (for example the disk is full): what ran
            // before is lost. This job's own answer is its error (or nothing, if it panicked).
            let lost = rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
                Some("the transaction was rolled back by an error in the same batch".to_owned()),
            );
            fail_done(std::mem::take(&mut done), &lost);
            if let Ok((_, finish)) = ran {
                finish(None);
            }
            if let Err(e) = exec(conn, "BEGIN") {
                fail_all(jobs.collect(), &e);
                return;
            }
            continue;
        }
        let kept = match ran {
            Ok((false, finish)) => {
                done.push(finish);
                true
            }
            Ok((true, finish)) => {
                // Its error is its answer; its partial writes are undone, the batch goes on.
                finish(None);
                false
            }
            Err(_) => false, // panicked: its caller gets `Closed` (its answer was dropped).
        };
        let close = if kept {
            exec(conn, "RELEASE job")
        } else {
            exec(conn, "ROLLBACK TO job").and_then(|()| exec(conn, "RELEASE job"))
        };
        if let Err(e) = close {
            fail_done(done, &e);
            fail_all(jobs.collect(), &e);
            restart(conn);
            return;
        }
    }
    match exec(conn, "COMMIT") {
        Ok(()) => {
            stats.commits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            done.into_iter().for_each(|finish| finish(None));
        }
        Err(e) => {
            fail_done(done, &e);
            restart(conn);
        }
    }
}

/// Leaves no transaction open after a failure (a failed `COMMIT` may leave one).
fn restart(conn: &Connection) {
    if !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
}

fn exec(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// Answers jobs that ran with `e` (their changes were not committed).
fn fail_done(done: Vec<Finish>, e: &rusqlite::Error) {
    for finish in done {
        finish(Some(copy(e)));
    }
}

/// Answers jobs that never ran with `e`.
fn fail_all(batch: Vec<Job>, e: &rusqlite::Error) {
    for job in batch {
        let (_, finish) = (job.run)(Err(copy(e)));
        finish(None);
    }
}

/// A copy of a SQLite error for each caller that must see it (`rusqlite::Error` is not `Clone`).
fn copy(e: &rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::SqliteFailure(code, message) => {
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(*code, message.clone()))
        }
        other => StoreError::Unusable(format!("database error: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering::Relaxed;

    fn store() -> (tempfile::TempDir, Committer) {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("t.db")).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.execute_batch("CREATE TABLE t (k TEXT PRIMARY KEY)").unwrap();
        (dir, Committer::start(conn, Durability::Full).unwrap())
    }

    fn insert(k: &'static str) -> impl FnOnce(&mut Connection) -> Result<(), StoreError> + Send + 'static {
        move |c| Ok(c.execute("INSERT INTO t (k) VALUES (?1)", [k]).map(|_| ())?)
    }

    async fn keys(db: &Committer) -> Vec<String> {
        db.call(false, |c| {
            let mut s = c.prepare("SELECT k FROM t ORDER BY k")?;
            let rows = s
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
            Ok(rows)
        })
        .await
        .unwrap()
    }

    /// Occupies the thread until the returned sender is used (or dropped), so that what is called
    /// meanwhile queues up as one batch; returns once the thread is held.
    async fn hold(db: &Committer) -> (std::sync::mpsc::Sender<()>, tokio::task::JoinHandle<()>) {
        let (release, released) = std::sync::mpsc::channel::<()>();
        let (started, running) = tokio::sync::oneshot::channel();
        let db = db.clone();
        let handle = tokio::spawn(async move {
            db.call(false, move |_| {
                let _ = started.send(());
                let _ = released.recv();
                Ok(())
            })
            .await
            .unwrap();
        });
        running.await.unwrap();
        (release, handle)
    }

    /// Queues `calls` (each polled once: `call` queues its operation on its first poll), releases
    /// the held thread, and returns the answers.
    async fn queued_behind<T>(
        held: (std::sync::mpsc::Sender<()>, tokio::task::JoinHandle<()>),
        calls: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>>,
    ) -> Vec<T> {
        let mut calls = calls;
        for c in &mut calls {
            assert!(futures::poll!(c.as_mut()).is_pending());
        }
        held.0.send(()).unwrap();
        held.1.await.unwrap();
        futures::future::join_all(calls).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn operations_queued_meanwhile_share_one_commit_and_each_gets_its_own_answer() {
        let (_dir, db) = store();
        let held = hold(&db).await;
        let before = db.stats().commits.load(Relaxed);
        let calls = ["a", "b", "c", "a"]
            .into_iter()
            .map(|k| {
                let db = db.clone();
                Box::pin(async move { db.call(false, insert(k)).await.is_ok() }) as _
            })
            .collect();
        let answers = queued_behind(held, calls).await;
        // The second "a" violates the key: only it fails, the others are kept.
        assert_eq!(answers, [true, true, true, false]);
        assert_eq!(
            db.stats().commits.load(Relaxed) - before,
            2,
            "the held one, then one for the four"
        );
        assert_eq!(keys(&db).await, ["a", "b", "c"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_operation_is_undone_whole_and_a_panicking_one_alone_says_closed() {
        let (_dir, db) = store();
        let held = hold(&db).await;
        let (a, b, c) = (db.clone(), db.clone(), db.clone());
        let calls = vec![
            Box::pin(async move {
                a.call(false, |c| {
                    c.execute("INSERT INTO t (k) VALUES ('half')", [])?;
                    Err::<(), _>(StoreError::Unusable("second half failed".into()))
                })
                .await
            }) as _,
            Box::pin(async move {
                b.call(false, |c| -> Result<(), StoreError> {
                    c.execute("INSERT INTO t (k) VALUES ('boom')", [])?;
                    panic!("a bug in an operation")
                })
                .await
            }) as _,
            Box::pin(async move { c.call(true, insert("fine")).await }) as _,
        ];
        let answers = queued_behind(held, calls).await;
        assert!(matches!(answers[0], Err(StoreError::Unusable(_))), "{answers:?}");
        assert!(matches!(answers[1], Err(StoreError::Closed)), "{answers:?}");
        assert!(answers[2].is_ok(), "{answers:?}");
        assert_eq!(
            keys(&db).await,
            ["fine"],
            "neither the failed nor the panicking one left a row"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn light_operations_queued_with_others_commit_apart_from_them() {
        let (_dir, db) = store();
        let held = hold(&db).await;
        let before = db.stats().commits.load(Relaxed);
        let calls = [("l1", true), ("d1", false), ("l2", true), ("d2", false)]
            .into_iter()
            .map(|(k, light)| {
                let db = db.clone();
                Box::pin(async move { db.call(light, insert(k)).await.is_ok() }) as _
            })
            .collect();
        assert_eq!(queued_behind(held, calls).await, [true; 4]);
        assert_eq!(
            db.stats().commits.load(Relaxed) - before,
            3,
            "the held one, then the light two together and the durable two together"
        );
        assert_eq!(keys(&db).await, ["d1", "d2", "l1", "l2"]);
    }

    #[tokio::test]
    async fn an_operation_is_on_disk_when_it_returns() {
        let (dir, db) = store();
        db.call(false, insert("kept")).await.unwrap();
        // Another connection sees it: it was committed before the answer.
        let other = Connection::open(dir.path().join("t.db")).unwrap();
        let n: i64 = other.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 1);
    }
}
