//! The SQLite store (production, embedded). One connection, owned by a dedicated thread
//! (`group_commit`): every statement runs there, so a slow disk never stalls the async runtime's
//! worker threads, and statements are serialised without a lock held across an await. The
//! operations queued while the thread was busy are committed together, in one transaction.
//! WAL with `synchronous=FULL`: a commit is on disk before the call returns (see BENCHMARKS.md).

use super::group_commit::Committer;
use super::rows::*;
use super::schema;
use super::{Result, Store};
use crate::types::{ClusterName, Mode, Person, Region, SlackUserId};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;

/// The connection's statement cache: a statement is parsed once, not on every call (the parser was a
/// visible share of the acknowledgement path's CPU in a profile, BENCHMARKS.md).
trait Cached {
    fn exec_cached<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;
    fn row_cached<T, P: rusqlite::Params, F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>>(
        &self,
        sql: &str,
        params: P,
        f: F,
    ) -> rusqlite::Result<T>;
}

impl Cached for Connection {
    fn exec_cached<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    fn row_cached<T, P: rusqlite::Params, F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>>(
        &self,
        sql: &str,
        params: P,
        f: F,
    ) -> rusqlite::Result<T> {
        self.prepare_cached(sql)?.query_row(params, f)
    }
}

/// How many statements the cache keeps: every statement the store runs fits.
const STATEMENT_CACHE: usize = 128;

/// How hard a commit is pushed to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `synchronous=FULL`: a commit survives a power loss (the default, and what the bot uses).
    Full,
    /// `synchronous=NORMAL`: a commit survives a crash of the process only (for measurements).
    Normal,
}

impl Durability {
    fn pragma(self) -> &'static str {
        match self {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        }
    }

    /// The statement that sets it (a constant, so that the statement cache keeps it).
    pub(super) fn statement(self) -> &'static str {
        match self {
            Durability::Full => "PRAGMA synchronous = FULL",
            Durability::Normal => "PRAGMA synchronous = NORMAL",
        }
    }
}

/// The SQLite implementation of [`Store`].
#[derive(Clone)]
pub struct SqliteStore {
    /// The handle to the connection's own thread (group commit); cloning it shares that thread.
    conn: Committer,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

fn ts(t: jiff::Timestamp) -> i64 {
    t.as_millisecond()
}

/// Converts one stored value, or says which row and column could not be read.
struct Decoder {
    table: &'static str,
    key: String,
}

impl Decoder {
    fn err(&self, what: &str, value: impl std::fmt::Debug) -> DecodeError {
        DecodeError::new(self.table, &self.key, format!("bad {what} {value:?}"))
    }

    fn time(&self, what: &str, ms: i64) -> std::result::Result<jiff::Timestamp, DecodeError> {
        jiff::Timestamp::from_millisecond(ms).map_err(|_| self.err(what, ms))
    }

    fn parsed<T>(&self, what: &str, s: &str, f: impl Fn(&str) -> Option<T>) -> std::result::Result<T, DecodeError> {
        f(s).ok_or_else(|| self.err(what, s))
    }

    fn user(&self, s: Option<&str>) -> std::result::Result<Option<SlackUserId>, DecodeError> {
        s.map(|s| self.parsed("user id", s, SlackUserId::parse)).transpose()
    }
}

const REQUEST_COLUMNS: &str = "id, cluster, mode, requested_by, requested_at, to_region, origin_channel, response_url, \
     expires_at, state, plan, decided_by, decided_at, note, message, reason, ticket, approvals";

/// A request's columns as stored, before they are checked.
struct RequestRow {
    id: i64,
    cluster: String,
    mode: String,
    requested_by: String,
    requested_at: i64,
    to_region: Option<String>,
    origin_channel: String,
    response_url: Option<String>,
    expires_at: i64,
    state: String,
    plan: Option<String>,
    decided_by: Option<String>,
    decided_at: Option<i64>,
    note: Option<String>,
    message: Option<i64>,
    reason: Option<String>,
    ticket: Option<String>,
    approvals: String,
}

impl RequestRow {
    fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<RequestRow> {
        Ok(RequestRow {
            id: row.get(0)?,
            cluster: row.get(1)?,
            mode: row.get(2)?,
            requested_by: row.get(3)?,
            requested_at: row.get(4)?,
            to_region: row.get(5)?,
            origin_channel: row.get(6)?,
            response_url: row.get(7)?,
            expires_at: row.get(8)?,
            state: row.get(9)?,
            plan: row.get(10)?,
            decided_by: row.get(11)?,
            decided_at: row.get(12)?,
            note: row.get(13)?,
            message: row.get(14)?,
            reason: row.get(15)?,
            ticket: row.get(16)?,
            approvals: row.get(17)?,
        })
    }

    fn decode(self) -> Stored<Request> {
        let d = Decoder {
            table: "requests",
            key: self.id.to_string(),
        };
        Ok(Request {
            id: RequestId::new(self.id),
            cluster: d.parsed("cluster name", &self.cluster, ClusterName::parse)?,
            mode: match self.mode.as_str() {
                "auto" => None,
                m => Some(d.parsed("mode", m, Mode::parse)?),
            },
            requested_by: d.parsed("person", &self.requested_by, Person::parse)?,
            requested_at: d.time("requested_at", self.requested_at)?,
            to_region: self
                .to_region
                .map(|s| d.parsed("Region", &s, Region::parse))
                .transpose()?,
            origin_channel: self.origin_channel,
            response_url: self.response_url,
            expires_at: d.time("expires_at", self.expires_at)?,
            state: d.parsed("state", &self.state, RequestState::parse)?,
            plan: self.plan,
            decided_by: self
                .decided_by
                .map(|s| d.parsed("person", &s, Person::parse))
                .transpose()?,
            decided_at: self.decided_at.map(|t| d.time("decided_at", t)).transpose()?,
            note: self.note,
            message: self.message.map(OutboxId::new),
            reason: self.reason,
            ticket: self.ticket,
            approvals: d.parsed("approvals", &self.approvals, Approval::decode_all)?,
        })
    }
}

const RUN_COLUMNS: &str = "id, request_id, state, step, data, started_at, finished_at, resume_asked_by, resume_asked_at, \
     resumed_by, abandoned_by, abandon_reason";

/// A run's columns as stored, before they are checked.
struct RunRow {
    id: i64,
    request_id: i64,
    state: String,
    step: String,
    data: String,
    started_at: i64,
    finished_at: Option<i64>,
    resume_asked_by: Option<String>,
    resume_asked_at: Option<i64>,
    resumed_by: Option<String>,
    abandoned_by: Option<String>,
    abandon_reason: Option<String>,
}

impl RunRow {
    fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
        Ok(RunRow {
            id: row.get(0)?,
            request_id: row.get(1)?,
            state: row.get(2)?,
            step: row.get(3)?,
            data: row.get(4)?,
            started_at: row.get(5)?,
            finished_at: row.get(6)?,
            resume_asked_by: row.get(7)?,
            resume_asked_at: row.get(8)?,
            resumed_by: row.get(9)?,
            abandoned_by: row.get(10)?,
            abandon_reason: row.get(11)?,
        })
    }

    fn decode(self) -> Stored<Run> {
        let d = Decoder {
            table: "runs",
            key: self.id.to_string(),
        };
        Ok(Run {
            id: RunId::new(self.id),
            request_id: RequestId::new(self.request_id),
            state: d.parsed("state", &self.state, RunState::parse)?,
            step: self.step,
            data: self.data,
            started_at: d.time("started_at", self.started_at)?,
            finished_at: self.finished_at.map(|t| d.time("finished_at", t)).transpose()?,
            control: RunControl {
                resume_asked_by: d.user(self.resume_asked_by.as_deref())?,
                resume_asked_at: self.resume_asked_at,
                resumed_by: d.user(self.resumed_by.as_deref())?,
                abandoned_by: self
                    .abandoned_by
                    .map(|s| d.parsed("person", &s, Person::parse))
                    .transpose()?,
                abandon_reason: self.abandon_reason,
            },
        })
    }
}

const OUTBOX_COLUMNS: &str = "id, ordering_key, kind, channel, target, response_url, body, attempts, next_attempt_at, \
     delivered_ts, state, last_error, dedup_key, started_at, via";

fn outbox_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, i64, Option<i64>, OutboxItem)> {
    let id: i64 = row.get(0)?;
    let next: i64 = row.get(8)?;
    Ok((
        id,
        next,
        row.get(13)?,
        OutboxItem {
            id: OutboxId::new(id),
            ordering_key: row.get(1)?,
            kind: row.get(2)?,
            channel: row.get(3)?,
            target: row.get::<_, Option<i64>>(4)?.map(OutboxId::new),
            response_url: row.get(5)?,
            body: row.get(6)?,
            attempts: row.get(7)?,
            next_attempt_at: jiff::Timestamp::UNIX_EPOCH,
            delivered_ts: row.get(9)?,
            state: row.get(10)?,
            last_error: row.get(11)?,
            dedup_key: row.get(12)?,
            started_at: None,
            via: row.get(14)?,
        },
    ))
}

fn outbox_items(conn: &Connection, condition: &str, params: impl rusqlite::Params) -> Result<Vec<OutboxItem>> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {OUTBOX_COLUMNS} FROM outbox {condition}"))?;
    let rows = stmt
        .query_map(params, outbox_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter()
        .map(|(id, next, started, item)| {
            let d = Decoder {
                table: "outbox",
                key: id.to_string(),
            };
            Ok(OutboxItem {
                next_attempt_at: d.time("next_attempt_at", next)?,
                started_at: started.map(|ms| d.time("started_at", ms)).transpose()?,
                ..item
            })
        })
        .collect()
}

fn requests(conn: &Connection, condition: &str, params: impl rusqlite::Params) -> Result<Vec<Stored<Request>>> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {REQUEST_COLUMNS} FROM requests WHERE {condition}"))?;
    let rows = stmt
        .query_map(params, RequestRow::read)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows.into_iter().map(RequestRow::decode).collect())
}

fn runs(conn: &Connection, condition: &str, params: impl rusqlite::Params) -> Result<Vec<Stored<Run>>> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE {condition}"))?;
    let rows = stmt
        .query_map(params, RunRow::read)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows.into_iter().map(RunRow::decode).collect())
}

fn journal_lines(conn: &Connection, condition: &str, params: impl rusqlite::Params) -> Result<Vec<JournalEntry>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT run_id, seq, at, step, event, detail FROM journal WHERE {condition}"
    ))?;
    let rows = stmt
        .query_map(params, |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, i64>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, String>(4)?,
                row.get::<_, String>(5)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter()
        .map(|(run, seq, at, step, event, detail)| {
            let d = Decoder {
                table: "journal",
                key: format!("{run}/{seq}"),
            };
            Ok(JournalEntry {
                run_id: RunId::new(run),
                seq,
                at: d.time("at", at)?,
                step,
                event,
                detail,
            })
        })
        .collect()
}

/// Recorded global clusters matching `condition` (a `WHERE` clause, or empty), by cluster name.
fn global_cluster_records(
    conn: &Connection,
    condition: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<Stored<GlobalClusterRecord>>> {
    let sql = format!(
        "SELECT cluster, global_cluster_id, request_id, recorded_at, replaces FROM global_cluster_records {condition} \
         ORDER BY cluster"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt
        .query_map(params, |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, String>(4)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows
        .into_iter()
        .map(|(cluster, global_cluster_id, request, at, replaces)| {
            let d = Decoder {
                table: "global_cluster_records",
                key: cluster.clone(),
            };
            Ok(GlobalClusterRecord {
                cluster: d.parsed("cluster name", &cluster, ClusterName::parse)?,
                global_cluster_id,
                request: RequestId::new(request),
                recorded_at: d.time("recorded_at", at)?,
                replaces,
            })
        })
        .collect())
}

/// The first of a listing, where the key is unique: a row that cannot be read is an error.
fn one<T>(mut rows: Vec<Stored<T>>) -> Result<Option<T>> {
    Ok(rows.pop().transpose()?)
}

/// Run states in which a run holds its cluster.
const OPEN_RUN_STATES: &str = "('running', 'needs_attention')";

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, brings its schema up to date, and hands the
    /// connection to its own thread. Commits are durable (`synchronous=FULL`).
    pub fn open(path: &Path) -> Result<SqliteStore> {
        SqliteStore::open_with(path, Durability::Full)
    }

    /// As `open`, choosing the durability (for measurements).
    pub fn open_with(path: &Path, durability: Durability) -> Result<SqliteStore> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", durability.pragma())?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        schema::migrate(&conn)?;
        SqliteStore::serve(conn, durability)
    }

    /// Opens an existing store to read it (`aurora-failover-bot audit`): never creates, migrates or
    /// otherwise writes the file. Refuses a file that is not this bot's store at this build's schema
    /// version (an older one is migrated by `serve`, a newer one needs a newer build), saying which.
    pub fn open_existing(path: &Path) -> Result<SqliteStore> {
        use rusqlite::OpenFlags;
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // Reading only: no statement may write, and no write-ahead log is folded into the file when
        // this connection closes.
        conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
        conn.pragma_update(None, "query_only", true)?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let ours: bool = conn.query_row(
            "SELECT count(*) = 2 FROM sqlite_master WHERE type = 'table' AND name IN ('requests', 'runs')",
            [],
            |r| r.get(0),
        )?;
        let why = match version {
            _ if !ours || version == 0 => Some("it is not an aurora-failover-bot store".to_owned()),
            v if v < schema::SCHEMA_VERSION => Some(format!(
                "its schema version is {v}, older than this build's {}: start `serve` on it once to migrate it",
                schema::SCHEMA_VERSION
            )),
            v if v > schema::SCHEMA_VERSION => Some(format!(
                "its schema version is {v}, newer than this build's {}: use a newer build",
                schema::SCHEMA_VERSION
            )),
            _ => None,
        };
        if let Some(why) = why {
            return Err(super::StoreError::Unusable(why));
        }
        SqliteStore::serve(conn, Durability::Full)
    }

    /// Hands `conn` to its own thread (see `group_commit`).
    fn serve(conn: Connection, durability: Durability) -> Result<SqliteStore> {
        let conn = Committer::start(conn, durability)
            .map_err(|e| super::StoreError::Unusable(format!("cannot start the store's thread: {e}")))?;
        Ok(SqliteStore { conn })
    }

    /// Runs `f` on the connection's thread, committed (durably) before this returns.
    async fn with<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        self.conn.call(false, f).await
    }

    /// An `UPDATE` (or other single statement) on the connection's thread; `true` if it changed a row.
    async fn changed(&self, sql: &'static str, params: Vec<rusqlite::types::Value>) -> Result<bool> {
        self.with(move |c| Ok(c.exec_cached(sql, rusqlite::params_from_iter(params))? == 1))
            .await
    }

    /// [`changed`](Self::changed) under `fence`: the lease is checked in the same transaction as the
    /// write, so a write after a takeover is refused ([`StoreError::Fenced`](super::StoreError)).
    async fn fenced(
        &self,
        sql: &'static str,
        params: Vec<rusqlite::types::Value>,
        fence: Option<&Fence>,
    ) -> Result<bool> {
        let fence = fence.cloned();
        self.with(move |c| {
            check_fence(c, fence.as_ref())?;
            Ok(c.exec_cached(sql, rusqlite::params_from_iter(params))? == 1)
        })
        .await
    }

    /// Runs one statement committed with `synchronous=NORMAL` when its batch holds nothing else (on
    /// disk at the next durable commit or checkpoint, not before the call returns), for the replay
    /// table only: it is written for every
    /// Slack request, and losing its last rows to a power loss only lets a request captured in the
    /// five minutes before be replayed once, where losing the wait for the disk on each write caps
    /// the bot's acknowledgement rate (BENCHMARKS.md). Everything else is durable.
    async fn lightly(&self, sql: &'static str, params: Vec<rusqlite::types::Value>) -> Result<usize> {
        self.conn
            .call(true, move |c| {
                Ok(c.exec_cached(sql, rusqlite::params_from_iter(params))?)
            })
            .await
    }

    /// Runs raw SQL (tests: to corrupt a row on purpose).
    #[cfg(test)]
    pub async fn execute_raw(&self, sql: &'static str) -> Result<()> {
        self.with(move |c| Ok(c.execute_batch(sql)?)).await
    }
}

/// `scope`'s lease as stored, if it was ever granted.
fn read_lease(c: &Connection, scope: &str) -> Result<Option<Lease>> {
    let row = c
        .row_cached(
            "SELECT owner, token, expires_at FROM leases WHERE scope = ?1",
            params![scope],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?)),
        )
        .optional()?;
    row.map(|(owner, token, expires)| {
        let expires_at = Decoder {
            table: "leases",
            key: scope.to_owned(),
        }
        .time("expiry", expires)?;
        Ok(Lease {
            scope: scope.to_owned(),
            owner,
            token,
            expires_at,
        })
    })
    .transpose()
}

/// Refuses a write under `fence` when its lease has changed hands.
fn check_fence(c: &Connection, fence: Option<&Fence>) -> Result<()> {
    let Some(fence) = fence else { return Ok(()) };
    let now = read_lease(c, &fence.scope)?;
    match &now {
        Some(l) if l.owner == fence.owner && l.token == fence.token => Ok(()),
        _ => Err(fence.refused(now.as_ref())),
    }
}

fn text(s: impl Into<String>) -> rusqlite::types::Value {
    rusqlite::types::Value::Text(s.into())
}

fn int(n: i64) -> rusqlite::types::Value {
    rusqlite::types::Value::Integer(n)
}

fn opt_text(s: Option<&str>) -> rusqlite::types::Value {
    s.map_or(rusqlite::types::Value::Null, text)
}

#[async_trait]
impl Store for SqliteStore {
    async fn take_lease(
        &self,
        scope: &LeaseScope,
        owner: &str,
        now: jiff::Timestamp,
        ttl: std::time::Duration,
    ) -> Result<Option<Lease>> {
        let (scope, owner) = (scope.to_owned(), owner.to_owned());
        self.with(move |c| {
            let current = read_lease(c, &scope)?;
            let granted = super::grant_lease(current.as_ref(), &scope, &owner, now, ttl);
            if let Some(l) = &granted {
                c.exec_cached(
                    "INSERT INTO leases (scope, owner, token, expires_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (scope) DO UPDATE SET owner = ?2, token = ?3, expires_at = ?4",
                    params![l.scope, l.owner, l.token, ts(l.expires_at)],
                )?;
            }
            Ok(granted)
        })
        .await
    }

    async fn renew_lease(&self, fence: &Fence, now: jiff::Timestamp, ttl: std::time::Duration) -> Result<bool> {
        self.changed(
            "UPDATE leases SET expires_at = ?4 WHERE scope = ?1 AND owner = ?2 AND token = ?3",
            vec![
                text(fence.scope.as_str()),
                text(fence.owner.as_str()),
                int(fence.token),
                int(ts(super::lease_end(now, ttl))),
            ],
        )
        .await
    }

    async fn release_lease(&self, fence: &Fence, now: jiff::Timestamp) -> Result<bool> {
        self.changed(
            "UPDATE leases SET expires_at = ?4 WHERE scope = ?1 AND owner = ?2 AND token = ?3",
            vec![
                text(fence.scope.as_str()),
                text(fence.owner.as_str()),
                int(fence.token),
                int(ts(now)),
            ],
        )
        .await
    }

    async fn lease(&self, scope: &LeaseScope) -> Result<Option<Lease>> {
        let scope = scope.to_owned();
        self.with(move |c| read_lease(c, &scope)).await
    }

    async fn leases(&self) -> Result<Vec<Lease>> {
        self.with(|c| {
            let scopes: Vec<String> = c
                .prepare_cached("SELECT scope FROM leases ORDER BY scope")?
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let mut leases = Vec::new();
            for scope in scopes {
                leases.extend(read_lease(c, &scope)?);
            }
            Ok(leases)
        })
        .await
    }

    async fn new_request_id(&self) -> Result<RequestId> {
        self.with(|c| {
            let id: i64 = c.row_cached(
                "UPDATE counters SET last = last + 1 WHERE name = 'requests' RETURNING last",
                [],
                |r| r.get(0),
            )?;
            Ok(RequestId::new(id))
        })
        .await
    }

    async fn cluster_lock(&self, cluster: &ClusterName) -> Result<Option<RequestId>> {
        let cluster = cluster.as_str().to_owned();
        self.with(move |c| {
            Ok(c.row_cached(
                "SELECT holder FROM cluster_locks WHERE cluster = ?1",
                params![cluster],
                |r| r.get::<_, i64>(0),
            )
            .optional()?
            .map(RequestId::new))
        })
        .await
    }

    async fn cluster_locks(&self) -> Result<Vec<Stored<ClusterLock>>> {
        self.with(|c| {
            let mut stmt = c.prepare_cached("SELECT cluster, holder FROM cluster_locks ORDER BY cluster")?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows
                .into_iter()
                .map(|(cluster, holder)| {
                    let d = Decoder {
                        table: "cluster_locks",
                        key: cluster.clone(),
                    };
                    Ok(ClusterLock {
                        cluster: d.parsed("cluster name", &cluster, ClusterName::parse)?,
                        holder: RequestId::new(holder),
                    })
                })
                .collect())
        })
        .await
    }

    async fn take_cluster_lock(
        &self,
        cluster: &ClusterName,
        holder: RequestId,
        expected: Option<RequestId>,
    ) -> Result<bool> {
        let cluster = cluster.as_str().to_owned();
        self.with(move |c| {
            let n = match expected {
                None => c.exec_cached(
                    "INSERT INTO cluster_locks (cluster, holder) VALUES (?1, ?2) ON CONFLICT (cluster) DO NOTHING",
                    params![cluster, holder.get()],
                )?,
                Some(old) => c.exec_cached(
                    "UPDATE cluster_locks SET holder = ?2 WHERE cluster = ?1 AND holder = ?3",
                    params![cluster, holder.get(), old.get()],
                )?,
            };
            Ok(n == 1)
        })
        .await
    }

    async fn release_cluster_lock(&self, cluster: &ClusterName, holder: RequestId) -> Result<bool> {
        self.changed(
            "DELETE FROM cluster_locks WHERE cluster = ?1 AND holder = ?2",
            vec![text(cluster.as_str()), int(holder.get())],
        )
        .await
    }

    async fn insert_request(&self, id: RequestId, r: &NewRequest) -> Result<bool> {
        self.changed(
            "INSERT INTO requests (id, cluster, mode, requested_by, requested_at, to_region, origin_channel, response_url,
                                   expires_at, state, reason, ticket)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'planning', ?10, ?11) ON CONFLICT (id) DO NOTHING",
            vec![
                int(id.get()),
                text(r.cluster.as_str()),
                text(r.mode.map_or("auto", Mode::as_str)),
                text(r.requested_by.to_string()),
                int(ts(r.requested_at)),
                opt_text(r.to_region.as_ref().map(Region::as_str)),
                text(r.origin_channel.as_str()),
                opt_text(r.response_url.as_deref()),
                int(ts(r.expires_at)),
                opt_text(r.reason.as_deref()),
                opt_text(r.ticket.as_deref()),
            ],
        )
        .await
    }

    async fn request(&self, id: RequestId) -> Result<Option<Request>> {
        self.with(move |c| one(requests(c, "id = ?1", params![id.get()])?))
            .await
    }

    async fn requests_in(&self, state: RequestState) -> Result<Vec<Stored<Request>>> {
        self.with(move |c| requests(c, "state = ?1 ORDER BY id", params![state.as_str()]))
            .await
    }

    async fn recent_requests(&self, cluster: Option<&ClusterName>, limit: usize) -> Result<Vec<Stored<Request>>> {
        let cluster = cluster.map(|c| c.as_str().to_owned());
        self.with(move |c| {
            requests(
                c,
                "?1 IS NULL OR cluster = ?1 ORDER BY id DESC LIMIT ?2",
                params![cluster, i64::try_from(limit).unwrap_or(i64::MAX)],
            )
        })
        .await
    }

    async fn requests_since(&self, since: jiff::Timestamp) -> Result<Vec<Stored<Request>>> {
        self.with(move |c| requests(c, "requested_at >= ?1 ORDER BY id", params![ts(since)]))
            .await
    }

    async fn closed_since(&self, since: jiff::Timestamp) -> Result<Vec<Stored<Request>>> {
        self.with(move |c| {
            requests(
                c,
                "(state IN ('denied', 'cancelled') AND decided_at >= ?1) OR (state = 'expired' AND expires_at >= ?1)
                 ORDER BY id",
                params![ts(since)],
            )
        })
        .await
    }

    async fn attach_message(&self, id: RequestId, message: OutboxId) -> Result<()> {
        self.changed(
            "UPDATE requests SET message = ?2 WHERE id = ?1 AND message IS NULL",
            vec![int(id.get()), int(message.get())],
        )
        .await
        .map(|_| ())
    }

    async fn mark_pending(&self, id: RequestId, plan: &str, mode: Mode, message: OutboxId) -> Result<bool> {
        self.changed(
            "UPDATE requests SET state = 'pending', plan = ?2, mode = ?3, message = ?4 WHERE id = ?1 AND state = 'planning'",
            vec![int(id.get()), text(plan), text(mode.as_str()), int(message.get())],
        )
        .await
    }

    async fn close_unposted(&self, id: RequestId, note: &str) -> Result<Option<String>> {
        let note = note.to_owned();
        self.with(move |c| {
            let url: Option<Option<String>> = c
                .row_cached(
                    "UPDATE requests SET state = 'rejected', note = ?2 WHERE id = ?1 AND state IN ('planning', 'pending')
                     RETURNING response_url",
                    params![id.get(), note],
                    |row| row.get(0),
                )
                .optional()?;
            Ok(url.flatten())
        })
        .await
    }

    async fn mark_rejected(&self, id: RequestId, reason: &str) -> Result<bool> {
        self.changed(
            "UPDATE requests SET state = 'rejected', note = ?2 WHERE id = ?1 AND state = 'planning'",
            vec![int(id.get()), text(reason)],
        )
        .await
    }

    async fn set_decision(
        &self,
        id: RequestId,
        approve: bool,
        by: &Person,
        now: jiff::Timestamp,
        note: Option<&str>,
    ) -> Result<bool> {
        self.changed(
            "UPDATE requests SET state = ?2, decided_by = ?3, decided_at = ?4, note = COALESCE(?5, note)
             WHERE id = ?1 AND state = 'pending' AND expires_at > ?4",
            vec![
                int(id.get()),
                text(if approve { "approved" } else { "denied" }),
                text(by.to_string()),
                int(ts(now)),
                opt_text(note),
            ],
        )
        .await
    }

    async fn set_cancelled(&self, id: RequestId, by: &SlackUserId, now: jiff::Timestamp) -> Result<bool> {
        self.changed(
            "UPDATE requests SET state = 'cancelled', decided_by = ?2, decided_at = ?3
             WHERE id = ?1 AND state IN ('planning', 'pending')",
            vec![int(id.get()), text(by.as_str()), int(ts(now))],
        )
        .await
    }

    async fn add_approval(&self, id: RequestId, by: &Person, at: jiff::Timestamp) -> Result<Option<Vec<Approval>>> {
        let by = by.clone();
        // Read and write on the connection's one thread, in one transaction: nothing comes between.
        self.with(move |c| {
            let Some(r) = one(requests(c, "id = ?1", params![id.get()])?)? else {
                return Ok(None);
            };
            if r.state != RequestState::Pending || r.expires_at <= at {
                return Ok(None);
            }
            let Some(all) = Approval::added(&r.approvals, &by, at) else {
                return Ok(None);
            };
            c.exec_cached(
                "UPDATE requests SET approvals = ?2 WHERE id = ?1",
                params![id.get(), Approval::encode_all(&all)],
            )?;
            Ok(Some(all))
        })
        .await
    }

    async fn set_expired(&self, id: RequestId, now: jiff::Timestamp) -> Result<bool> {
        self.changed(
            "UPDATE requests SET state = 'expired' WHERE id = ?1 AND state = 'pending' AND expires_at <= ?2",
            vec![int(id.get()), int(ts(now))],
        )
        .await
    }

    async fn create_run(
        &self,
        request: RequestId,
        first_step: &str,
        data: &str,
        now: jiff::Timestamp,
    ) -> Result<RunId> {
        let (step, data) = (first_step.to_owned(), data.to_owned());
        self.with(move |c| {
            c.exec_cached(
                "INSERT INTO runs (request_id, state, step, data, started_at) VALUES (?1, 'running', ?2, ?3, ?4)
                 ON CONFLICT (request_id) DO NOTHING",
                params![request.get(), step, data, ts(now)],
            )?;
            let id: i64 = c.row_cached(
                "SELECT id FROM runs WHERE request_id = ?1",
                params![request.get()],
                |r| r.get(0),
            )?;
            Ok(RunId::new(id))
        })
        .await
    }

    async fn run(&self, id: RunId) -> Result<Option<Run>> {
        self.with(move |c| one(runs(c, "id = ?1", params![id.get()])?)).await
    }

    async fn run_of_request(&self, request: RequestId) -> Result<Option<Run>> {
        self.with(move |c| one(runs(c, "request_id = ?1", params![request.get()])?))
            .await
    }

    async fn runs_in(&self, state: RunState) -> Result<Vec<Stored<Run>>> {
        self.with(move |c| runs(c, "state = ?1 ORDER BY id", params![state.as_str()]))
            .await
    }

    async fn runs_finished_since(&self, since: jiff::Timestamp) -> Result<Vec<Stored<Run>>> {
        self.with(move |c| {
            runs(
                c,
                &format!("state NOT IN {OPEN_RUN_STATES} AND finished_at >= ?1 ORDER BY id"),
                params![ts(since)],
            )
        })
        .await
    }

    async fn last_success(&self, cluster: &ClusterName) -> Result<Option<Request>> {
        let cluster = cluster.as_str().to_owned();
        self.with(move |c| {
            one(requests(
                c,
                "id = (SELECT r.id FROM requests r JOIN runs u ON u.request_id = r.id
                       WHERE r.cluster = ?1 AND u.state = 'succeeded' ORDER BY u.id DESC LIMIT 1)",
                params![cluster],
            )?)
        })
        .await
    }

    async fn set_step(&self, run: RunId, next_step: &str, data: &str, fence: Option<&Fence>) -> Result<()> {
        self.fenced(
            "UPDATE runs SET step = ?2, data = ?3 WHERE id = ?1 AND state IN ('running', 'needs_attention')",
            vec![int(run.get()), text(next_step), text(data)],
            fence,
        )
        .await
        .map(|_| ())
    }

    async fn finish_run(
        &self,
        run: RunId,
        state: RunState,
        data: &str,
        at: jiff::Timestamp,
        fence: Option<&Fence>,
    ) -> Result<bool> {
        self.fenced(
            "UPDATE runs SET state = ?2, data = ?3, finished_at = ?4
             WHERE id = ?1 AND state IN ('running', 'needs_attention')",
            vec![int(run.get()), text(state.as_str()), text(data), int(ts(at))],
            fence,
        )
        .await
    }

    async fn set_needs_attention(&self, run: RunId, data: Option<&str>, fence: Option<&Fence>) -> Result<bool> {
        self.fenced(
            "UPDATE runs SET state = 'needs_attention', data = COALESCE(?2, data), resume_asked_by = NULL,
                             resume_asked_at = NULL
             WHERE id = ?1 AND state = 'running'",
            vec![int(run.get()), opt_text(data)],
            fence,
        )
        .await
    }

    async fn set_running(&self, run: RunId, fence: Option<&Fence>) -> Result<bool> {
        self.fenced(
            "UPDATE runs SET state = 'running', resume_asked_by = NULL, resume_asked_at = NULL
             WHERE id = ?1 AND state = 'needs_attention'",
            vec![int(run.get())],
            fence,
        )
        .await
    }

    async fn set_resume_asked(&self, run: RunId, by: &SlackUserId, at: jiff::Timestamp) -> Result<bool> {
        self.changed(
            "UPDATE runs SET resume_asked_by = ?2, resume_asked_at = ?3
             WHERE id = ?1 AND state = 'needs_attention' AND resume_asked_by IS NULL",
            vec![int(run.get()), text(by.as_str()), int(ts(at))],
        )
        .await
    }

    async fn set_resume_decision(&self, run: RunId, token: i64, by: &SlackUserId, approve: bool) -> Result<bool> {
        if approve {
            self.changed(
                "UPDATE runs SET state = 'running', resumed_by = ?2, resume_asked_by = NULL, resume_asked_at = NULL
                 WHERE id = ?1 AND state = 'needs_attention' AND resume_asked_at = ?3 AND resume_asked_by != ?2",
                vec![int(run.get()), text(by.as_str()), int(token)],
            )
            .await
        } else {
            self.changed(
                "UPDATE runs SET resume_asked_by = NULL, resume_asked_at = NULL
                 WHERE id = ?1 AND state = 'needs_attention' AND resume_asked_at = ?2",
                vec![int(run.get()), int(token)],
            )
            .await
        }
    }

    async fn set_abandoned(&self, run: RunId, by: &Person, reason: &str, at: jiff::Timestamp) -> Result<bool> {
        self.changed(
            "UPDATE runs SET state = 'abandoned', abandoned_by = ?2, abandon_reason = ?3, finished_at = ?4
             WHERE id = ?1 AND state IN ('running', 'needs_attention')",
            vec![int(run.get()), text(by.to_string()), text(reason), int(ts(at))],
        )
        .await
    }

    async fn journal(
        &self,
        run: RunId,
        at: jiff::Timestamp,
        step: &str,
        event: &str,
        detail: &str,
        fence: Option<&Fence>,
    ) -> Result<()> {
        self.fenced(
            "INSERT INTO journal (run_id, seq, at, step, event, detail)
             VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM journal WHERE run_id = ?1), ?2, ?3, ?4, ?5)",
            vec![int(run.get()), int(ts(at)), text(step), text(event), text(detail)],
            fence,
        )
        .await
        .map(|_| ())
    }

    async fn journal_of(&self, run: RunId) -> Result<Vec<JournalEntry>> {
        self.with(move |c| journal_lines(c, "run_id = ?1 ORDER BY seq", params![run.get()]))
            .await
    }

    async fn journal_since(&self, since: jiff::Timestamp) -> Result<Vec<JournalEntry>> {
        self.with(move |c| journal_lines(c, "at >= ?1 ORDER BY at, run_id, seq", params![ts(since)]))
            .await
    }

    async fn audit(
        &self,
        at: jiff::Timestamp,
        user: &str,
        action: &str,
        request: Option<RequestId>,
        outcome: &str,
    ) -> Result<()> {
        self.changed(
            "INSERT INTO audit (at, user_id, action, request_id, outcome) VALUES (?1, ?2, ?3, ?4, ?5)",
            vec![
                int(ts(at)),
                text(user),
                text(action),
                request.map_or(rusqlite::types::Value::Null, |r| int(r.get())),
                text(outcome),
            ],
        )
        .await
        .map(|_| ())
    }

    async fn audit_since(&self, since: jiff::Timestamp) -> Result<Vec<AuditEntry>> {
        self.with(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, at, user_id, action, request_id, outcome FROM audit WHERE at >= ?1 ORDER BY id",
            )?;
            let rows = stmt
                .query_map(params![ts(since)], |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, String>(3)?,
                        row.get::<_, Option<i64>>(4)?,
                        row.get::<_, String>(5)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter()
                .map(|(id, at, user, action, request, outcome)| {
                    let d = Decoder {
                        table: "audit",
                        key: id.to_string(),
                    };
                    Ok(AuditEntry {
                        at: d.time("at", at)?,
                        user,
                        action,
                        request_id: request.map(RequestId::new),
                        outcome,
                    })
                })
                .collect()
        })
        .await
    }

    fn commit_counts(&self) -> Option<super::CommitCounts> {
        use std::sync::atomic::Ordering::Relaxed;
        let stats = self.conn.stats();
        Some(super::CommitCounts {
            commits: stats.commits.load(Relaxed),
            operations: stats.operations.load(Relaxed),
        })
    }

    async fn first_sighting(&self, signature: &str, now: jiff::Timestamp) -> Result<bool> {
        let inserted = self
            .lightly(
                "INSERT INTO seen_requests (signature, at) VALUES (?1, ?2) ON CONFLICT (signature) DO NOTHING",
                vec![text(signature), int(ts(now))],
            )
            .await?;
        Ok(inserted == 1)
    }

    async fn forget_requests_before(&self, before: jiff::Timestamp, batch: usize) -> Result<usize> {
        self.lightly(
            "DELETE FROM seen_requests WHERE rowid IN
               (SELECT rowid FROM seen_requests WHERE at < ?1 ORDER BY at LIMIT ?2)",
            vec![int(ts(before)), int(i64::try_from(batch).unwrap_or(i64::MAX))],
        )
        .await
    }

    async fn enqueue(&self, m: &Outgoing<'_>, now: jiff::Timestamp) -> Result<OutboxId> {
        let values = vec![
            text(m.ordering_key),
            text(m.kind),
            opt_text(m.channel.map(|c| c.as_str())),
            m.target.map_or(rusqlite::types::Value::Null, |t| int(t.get())),
            opt_text(m.response_url),
            text(m.body),
            int(ts(now)),
            opt_text(m.dedup_key),
        ];
        let dedup = m.dedup_key.map(str::to_owned);
        let fence = m.fence.cloned();
        self.with(move |c| {
            check_fence(c, fence.as_ref())?;
            let inserted = c.exec_cached(
                "INSERT INTO outbox (ordering_key, kind, channel, target, response_url, body, attempts, next_attempt_at,
                                     state, dedup_key)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, 'pending', ?8)
                 ON CONFLICT (dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING",
                rusqlite::params_from_iter(values),
            )?;
            let id = if inserted == 1 {
                c.last_insert_rowid()
            } else {
                c.row_cached("SELECT id FROM outbox WHERE dedup_key = ?1", params![dedup], |row| {
                    row.get(0)
                })?
            };
            Ok(OutboxId::new(id))
        })
        .await
    }

    async fn outbox_heads(&self) -> Result<Vec<OutboxItem>> {
        self.with(|c| {
            outbox_items(
                c,
                "WHERE id IN (SELECT MIN(id) FROM outbox WHERE state = 'pending' GROUP BY ordering_key) ORDER BY id",
                [],
            )
        })
        .await
    }

    async fn outbox_item(&self, id: OutboxId) -> Result<Option<OutboxItem>> {
        self.with(move |c| Ok(outbox_items(c, "WHERE id = ?1", params![id.get()])?.pop()))
            .await
    }

    async fn outbox_depth(&self) -> Result<u64> {
        self.with(|c| {
            let n: i64 = c.row_cached("SELECT COUNT(*) FROM outbox WHERE state = 'pending'", [], |row| {
                row.get(0)
            })?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
        .await
    }

    async fn newer_update_pending(&self, item: &OutboxItem) -> Result<bool> {
        let (target, id) = (item.target.map(OutboxId::get), item.id.get());
        self.with(move |c| {
            let n: i64 = c.row_cached(
                "SELECT COUNT(*) FROM outbox WHERE kind = 'update' AND state = 'pending' AND target = ?1 AND id > ?2",
                params![target, id],
                |row| row.get(0),
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn outbox_delivered(&self, id: OutboxId, ts_value: Option<&str>, fence: Option<&Fence>) -> Result<()> {
        self.fenced(
            "UPDATE outbox SET state = 'delivered', delivered_ts = ?2, last_error = NULL WHERE id = ?1",
            vec![int(id.get()), opt_text(ts_value)],
            fence,
        )
        .await
        .map(|_| ())
    }

    async fn outbox_skipped(&self, id: OutboxId, fence: Option<&Fence>) -> Result<()> {
        self.fenced(
            "UPDATE outbox SET state = 'superseded' WHERE id = ?1",
            vec![int(id.get())],
            fence,
        )
        .await
        .map(|_| ())
    }

    async fn outbox_retry(
        &self,
        id: OutboxId,
        error: &str,
        next_attempt_at: jiff::Timestamp,
        fence: Option<&Fence>,
    ) -> Result<()> {
        self.fenced(
            "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, next_attempt_at = ?3 WHERE id = ?1",
            vec![int(id.get()), text(error), int(ts(next_attempt_at))],
            fence,
        )
        .await
        .map(|_| ())
    }

    async fn outbox_failed(&self, id: OutboxId, error: &str, fence: Option<&Fence>) -> Result<()> {
        self.fenced(
            "UPDATE outbox SET state = 'failed', attempts = attempts + 1, last_error = ?2 WHERE id = ?1",
            vec![int(id.get()), text(error)],
            fence,
        )
        .await
        .map(|_| ())
    }

    async fn outbox_all(&self) -> Result<Vec<OutboxItem>> {
        self.with(|c| outbox_items(c, "ORDER BY id", [])).await
    }

    async fn outbox_attempt(&self, id: OutboxId, via: &str, at: jiff::Timestamp, fence: Option<&Fence>) -> Result<()> {
        self.fenced(
            "UPDATE outbox SET started_at = COALESCE(started_at, ?3), via = ?2 WHERE id = ?1",
            vec![int(id.get()), text(via), int(ts(at))],
            fence,
        )
        .await
        .map(|_| ())
    }

    async fn response_url_uses(&self, url: &str, except: OutboxId) -> Result<i64> {
        let (url, except) = (url.to_owned(), except.get());
        self.with(move |c| {
            Ok(c.row_cached(
                "SELECT COUNT(*) FROM outbox WHERE response_url = ?1 AND via = ?2 AND id != ?3",
                params![url, VIA_RESPONSE_URL, except],
                |row| row.get(0),
            )?)
        })
        .await
    }

    async fn remember_response_url(&self, r: &ResponseUrl) -> Result<()> {
        self.changed(
            "INSERT INTO response_urls (url, user_id, channel, issued_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (url) DO NOTHING",
            vec![text(&r.url), text(&r.user), text(&r.channel), int(ts(r.issued_at))],
        )
        .await
        .map(|_| ())
    }

    async fn forget_response_urls_before(&self, before: jiff::Timestamp, batch: usize) -> Result<usize> {
        self.lightly(
            "DELETE FROM response_urls WHERE url IN
               (SELECT url FROM response_urls WHERE issued_at < ?1 ORDER BY issued_at LIMIT ?2)",
            vec![int(ts(before)), int(i64::try_from(batch).unwrap_or(i64::MAX))],
        )
        .await
    }

    async fn response_url(&self, url: &str) -> Result<Option<ResponseUrl>> {
        let url = url.to_owned();
        self.with(move |c| {
            let row = c
                .row_cached(
                    "SELECT user_id, channel, issued_at FROM response_urls WHERE url = ?1",
                    params![url],
                    |row| {
                        Ok((
                            row.get::<_, String>(0)?,
                            row.get::<_, String>(1)?,
                            row.get::<_, i64>(2)?,
                        ))
                    },
                )
                .optional()?;
            let Some((user, channel, at)) = row else {
                return Ok(None);
            };
            let d = Decoder {
                table: "response_urls",
                key: url.clone(),
            };
            Ok(Some(ResponseUrl {
                issued_at: d.time("issued_at", at)?,
                url,
                user,
                channel,
            }))
        })
        .await
    }

    async fn record_global_cluster(&self, r: &GlobalClusterRecord) -> Result<()> {
        // Replaces the stored record unless that one was recorded later (`GlobalClusterRecord::supersedes`).
        self.changed(
            "INSERT INTO global_cluster_records (cluster, global_cluster_id, request_id, recorded_at, replaces)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (cluster) DO UPDATE SET global_cluster_id = excluded.global_cluster_id,
                 request_id = excluded.request_id, recorded_at = excluded.recorded_at, replaces = excluded.replaces
             WHERE excluded.recorded_at >= global_cluster_records.recorded_at",
            vec![
                text(r.cluster.as_str()),
                text(&r.global_cluster_id),
                int(r.request.get()),
                int(ts(r.recorded_at)),
                text(&r.replaces),
            ],
        )
        .await
        .map(|_| ())
    }

    async fn global_cluster_record(&self, cluster: &ClusterName) -> Result<Option<GlobalClusterRecord>> {
        let cluster = cluster.as_str().to_owned();
        self.with(move |c| one(global_cluster_records(c, "WHERE cluster = ?1", params![cluster])?))
            .await
    }

    async fn global_cluster_records(&self) -> Result<Vec<Stored<GlobalClusterRecord>>> {
        self.with(|c| global_cluster_records(c, "", [])).await
    }

    async fn drop_global_cluster_record(&self, cluster: &ClusterName, global_cluster_id: &str) -> Result<bool> {
        self.changed(
            "DELETE FROM global_cluster_records WHERE cluster = ?1 AND global_cluster_id = ?2",
            vec![text(cluster.as_str()), text(global_cluster_id)],
        )
        .await
    }

    async fn store_id(&self) -> Result<String> {
        self.with(|c| {
            Ok(
                c.row_cached("SELECT value FROM store_meta WHERE name = 'store_id'", [], |row| {
                    row.get(0)
                })?,
            )
        })
        .await
    }
}
