//! The bot's durable record, in SQLite: requests and their decisions, runs and the journal of every
//! step, an audit log of every attempt (refused ones included), and the outbox of Slack messages.
//!
//! Invariants:
//! - every state change of a request is a compare-and-set (`UPDATE … WHERE state = expected`), so the
//!   same click twice, or five clicks at once, has the effect of one;
//! - a run exists only for an approved request, at most one per request (unique key), and at most one
//!   request per global cluster is open (planning, pending or approved-and-running) at a time;
//! - nothing is ever deleted: the record of what was requested, approved and done survives every failure.
//!
//! The connection sits behind a std mutex: every statement is short, and none is held across an await.

mod schema;

use crate::types::{ChannelId, ClusterName, Mode, Region, SlackUserId};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

pub use schema::SCHEMA_VERSION;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// A request's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestState {
    /// Recorded; the bot is reading the topology to make the plan.
    Planning,
    /// Posted, waiting for a decision.
    Pending,
    /// Approved: a run exists.
    Approved,
    Denied,
    Expired,
    /// Withdrawn with `/aurora cancel` before a decision.
    Cancelled,
    /// The plan could not be made (e.g. AWS unreachable, no secondary); nothing was posted for approval.
    Rejected,
}

impl RequestState {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestState::Planning => "planning",
            RequestState::Pending => "pending",
            RequestState::Approved => "approved",
            RequestState::Denied => "denied",
            RequestState::Expired => "expired",
            RequestState::Cancelled => "cancelled",
            RequestState::Rejected => "rejected",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "planning" => RequestState::Planning,
            "pending" => RequestState::Pending,
            "approved" => RequestState::Approved,
            "denied" => RequestState::Denied,
            "expired" => RequestState::Expired,
            "cancelled" => RequestState::Cancelled,
            "rejected" => RequestState::Rejected,
            other => {
                return Err(StoreError::Corrupt(format!("unknown request state {other}")));
            }
        })
    }
}

/// A request as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub id: i64,
    pub cluster: ClusterName,
    /// The mode asked for, or (once planned) chosen; `None` while the bot is still to choose.
    pub mode: Option<Mode>,
    pub requested_by: SlackUserId,
    pub requested_at: jiff::Timestamp,
    /// The Region asked for with `--to`, if any.
    pub to_region: Option<Region>,
    /// Where the command was typed, and its response_url (valid for 30 minutes).
    pub origin_channel: String,
    pub response_url: Option<String>,
    pub expires_at: jiff::Timestamp,
    pub state: RequestState,
    /// The plan the approver sees (JSON of `runbook::Plan`), once made.
    pub plan: Option<String>,
    pub decided_by: Option<SlackUserId>,
    pub decided_at: Option<jiff::Timestamp>,
    /// Why it was rejected, or a note on the decision.
    pub note: Option<String>,
    /// Outbox id of the approval message (the thread's root), once posted.
    pub message: Option<i64>,
}

/// What a request needs when it is first recorded.
#[derive(Debug, Clone)]
pub struct NewRequest {
    pub cluster: ClusterName,
    /// `None`: the bot proposes the mode.
    pub mode: Option<Mode>,
    pub requested_by: SlackUserId,
    pub to_region: Option<Region>,
    pub origin_channel: String,
    pub response_url: Option<String>,
    pub requested_at: jiff::Timestamp,
    pub expires_at: jiff::Timestamp,
}

/// A run's lifecycle. After its first mutating call a run ends only as `Succeeded`, `Failed` (AWS
/// said no to that call, or cancelled the operation, leaving things as they were) or `Abandoned` (a
/// person stopped it); in between it may be `NeedsAttention` (a deadline passed, AWS refused a later
/// call, or the target is in a state AWS will not leave by itself), where the bot keeps watching.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Running,
    NeedsAttention,
    Succeeded,
    Failed,
    Abandoned,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::NeedsAttention => "needs_attention",
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::Abandoned => "abandoned",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "running" => RunState::Running,
            "needs_attention" => RunState::NeedsAttention,
            "succeeded" => RunState::Succeeded,
            "failed" => RunState::Failed,
            "abandoned" => RunState::Abandoned,
            other => return Err(StoreError::Corrupt(format!("unknown run state {other}"))),
        })
    }

    /// Still the bot's to carry on (it holds its cluster).
    pub fn is_open(self) -> bool {
        matches!(self, RunState::Running | RunState::NeedsAttention)
    }
}

/// What people decided about a run that needs attention (or about stopping one).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunControl {
    /// Who asked, with `/aurora resume`, for the run to go on (waiting for a second person).
    pub resume_asked_by: Option<SlackUserId>,
    /// When (ms): the token a decision must name, so that a button from an earlier ask decides nothing.
    pub resume_asked_at: Option<i64>,
    /// Who approved that: the run goes on, moving DNS after checking only that the target is writable.
    pub resumed_by: Option<SlackUserId>,
    /// Who stopped it with `/aurora abandon`, and why.
    pub abandoned_by: Option<SlackUserId>,
    pub abandon_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub id: i64,
    pub request_id: i64,
    pub state: RunState,
    /// The next step to execute (a `runbook::Step` name).
    pub step: String,
    /// The run's working data (JSON of `runbook::RunData`).
    pub data: String,
    pub started_at: jiff::Timestamp,
    pub finished_at: Option<jiff::Timestamp>,
    pub control: RunControl,
}

/// One line of a run's journal.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JournalEntry {
    pub run_id: i64,
    pub seq: i64,
    pub at: jiff::Timestamp,
    pub step: String,
    /// `started`, `finished`, `failed`, `observed`.
    pub event: String,
    pub detail: String,
}

/// One attempt by a user, allowed or refused.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    pub at: jiff::Timestamp,
    pub user: String,
    pub action: String,
    pub request_id: Option<i64>,
    pub outcome: String,
}

/// Outcome of a compare-and-set decision.
#[derive(Debug, Clone, PartialEq)]
pub enum Decided {
    /// This call made the decision; for an approval, the run it created.
    Won { run_id: Option<i64> },
    /// Someone else decided first (or the request was not pending): the request as it is now.
    Lost(Box<Request>),
}

/// A Slack message to queue.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    /// Messages with the same key are delivered strictly in order.
    pub ordering_key: &'a str,
    pub kind: &'a str,
    pub channel: Option<&'a ChannelId>,
    pub target: Option<i64>,
    pub response_url: Option<&'a str>,
    pub body: &'a str,
    /// Makes queuing idempotent: a second message with the same key is not queued.
    pub dedup_key: Option<&'a str>,
}

/// A Slack message waiting to be delivered, or delivered.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxItem {
    pub id: i64,
    /// Items with the same key are delivered strictly in order.
    pub ordering_key: String,
    /// `post`, `reply`, `update`, `respond`.
    pub kind: String,
    pub channel: Option<String>,
    /// For a reply: the item whose message is the thread's root. For an update: the item whose
    /// message is updated.
    pub target: Option<i64>,
    pub response_url: Option<String>,
    /// The rendered Slack message (JSON).
    pub body: String,
    pub attempts: i64,
    pub next_attempt_at: jiff::Timestamp,
    pub delivered_ts: Option<String>,
    pub state: String,
    pub last_error: Option<String>,
}

/// The durable store.
pub struct Store {
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

fn ts(t: jiff::Timestamp) -> i64 {
    t.as_millisecond()
}

fn from_ms(ms: i64) -> rusqlite::Result<jiff::Timestamp> {
    jiff::Timestamp::from_millisecond(ms)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Integer, Box::new(e)))
}

fn parse_id<T>(s: String, f: impl Fn(&str) -> Option<T>, what: &str) -> Result<T> {
    f(&s).ok_or_else(|| StoreError::Corrupt(format!("bad {what} {s:?}")))
}

const REQUEST_COLUMNS: &str = "id, cluster, mode, requested_by, requested_at, to_region, origin_channel, response_url, \
     expires_at, state, plan, decided_by, decided_at, note, message";

/// The raw columns of a request row, converted after the row is read.
type RequestRow = (
    i64,
    String,
    String,
    String,
    i64,
    Option<String>,
    String,
    Option<String>,
    i64,
    String,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<i64>,
);

fn request_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RequestRow> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
        row.get(8)?,
        row.get(9)?,
        row.get(10)?,
        row.get(11)?,
        row.get(12)?,
        row.get(13)?,
        row.get(14)?,
    ))
}

fn request_from(r: RequestRow) -> Result<Request> {
    Ok(Request {
        id: r.0,
        cluster: parse_id(r.1, ClusterName::parse, "cluster name")?,
        mode: match r.2.as_str() {
            "auto" => None,
            m => Some(parse_id(m.to_owned(), Mode::parse, "mode")?),
        },
        requested_by: parse_id(r.3, SlackUserId::parse, "user id")?,
        requested_at: from_ms(r.4)?,
        to_region: r.5.map(|s| parse_id(s, Region::parse, "Region")).transpose()?,
        origin_channel: r.6,
        response_url: r.7,
        expires_at: from_ms(r.8)?,
        state: RequestState::parse(&r.9)?,
        plan: r.10,
        decided_by: r.11.map(|s| parse_id(s, SlackUserId::parse, "user id")).transpose()?,
        decided_at: r.12.map(from_ms).transpose()?,
        note: r.13,
        message: r.14,
    })
}

/// The raw columns of a run row.
type RunRow = (
    (i64, i64, String, String, String, i64, Option<i64>),
    (
        Option<String>,
        Option<i64>,
        Option<String>,
        Option<String>,
        Option<String>,
    ),
);

fn run_from(row: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
    Ok((
        (
            row.get(0)?,
            row.get(1)?,
            row.get(2)?,
            row.get(3)?,
            row.get(4)?,
            row.get(5)?,
            row.get(6)?,
        ),
        (row.get(7)?, row.get(8)?, row.get(9)?, row.get(10)?, row.get(11)?),
    ))
}

fn run_convert((r, c): RunRow) -> Result<Run> {
    let user = |s: Option<String>| s.map(|s| parse_id(s, SlackUserId::parse, "user id")).transpose();
    Ok(Run {
        id: r.0,
        request_id: r.1,
        state: RunState::parse(&r.2)?,
        step: r.3,
        data: r.4,
        started_at: from_ms(r.5)?,
        finished_at: r.6.map(from_ms).transpose()?,
        control: RunControl {
            resume_asked_by: user(c.0)?,
            resume_asked_at: c.1,
            resumed_by: user(c.2)?,
            abandoned_by: user(c.3)?,
            abandon_reason: c.4,
        },
    })
}

const RUN_COLUMNS: &str = "id, request_id, state, step, data, started_at, finished_at, resume_asked_by, resume_asked_at, \
     resumed_by, abandoned_by, abandon_reason";

/// Run states in which a run holds its cluster.
const OPEN_RUN_STATES: &str = "('running', 'needs_attention')";
const OUTBOX_COLUMNS: &str = "id, ordering_key, kind, channel, target, response_url, body, attempts, next_attempt_at, \
     delivered_ts, state, last_error";

fn outbox_from(row: &rusqlite::Row<'_>) -> rusqlite::Result<OutboxItem> {
    Ok(OutboxItem {
        id: row.get(0)?,
        ordering_key: row.get(1)?,
        kind: row.get(2)?,
        channel: row.get(3)?,
        target: row.get(4)?,
        response_url: row.get(5)?,
        body: row.get(6)?,
        attempts: row.get(7)?,
        next_attempt_at: from_ms(row.get(8)?)?,
        delivered_ts: row.get(9)?,
        state: row.get(10)?,
        last_error: row.get(11)?,
    })
}

/// States in which a request holds its cluster's lock.
const OPEN_STATES: &str = "('planning', 'pending')";

impl Store {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Store> {
        let conn = Connection::open(path)?;
        Store::init(conn)
    }

    /// A private in-memory database, for unit tests.
    pub fn in_memory() -> Result<Store> {
        Store::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Store> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        schema::migrate(&conn)?;
        Ok(Store { conn: Mutex::new(conn) })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    // ---- requests ----

    /// Records a new request, unless the cluster already has an open request or a running run; then
    /// returns that request's id instead (`Err(existing)`).
    pub fn create_request(&self, r: &NewRequest) -> Result<std::result::Result<i64, i64>> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let existing: Option<i64> = tx
            .query_row(
                &format!(
                    "SELECT r.id FROM requests r LEFT JOIN runs u ON u.request_id = r.id
                     WHERE r.cluster = ?1 AND (r.state IN {OPEN_STATES} OR u.state IN {OPEN_RUN_STATES})
                     ORDER BY r.id LIMIT 1"
                ),
                params![r.cluster.as_str()],
                |row| row.get(0),
            )
            .optional()?;
        if let Some(id) = existing {
            return Ok(Err(id));
        }
        tx.execute(
            "INSERT INTO requests (cluster, mode, requested_by, requested_at, to_region, origin_channel, response_url,
                                   expires_at, state)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'planning')",
            params![
                r.cluster.as_str(),
                r.mode.map_or("auto", Mode::as_str),
                r.requested_by.as_str(),
                ts(r.requested_at),
                r.to_region.as_ref().map(|x| x.as_str().to_owned()),
                r.origin_channel,
                r.response_url,
                ts(r.expires_at),
            ],
        )?;
        let id = tx.last_insert_rowid();
        tx.commit()?;
        Ok(Ok(id))
    }

    pub fn request(&self, id: i64) -> Result<Option<Request>> {
        Ok(self.select_requests("id = ?1", params![id])?.pop())
    }

    /// Requests in a state, oldest first.
    pub fn requests_in(&self, state: RequestState) -> Result<Vec<Request>> {
        self.select_requests("state = ?1 ORDER BY id", params![state.as_str()])
    }

    /// Records the outbox id of a request's message (once; whatever the request's state).
    pub fn attach_message(&self, id: i64, message: i64) -> Result<()> {
        self.conn().execute(
            "UPDATE requests SET message = ?2 WHERE id = ?1 AND message IS NULL",
            params![id, message],
        )?;
        Ok(())
    }

    /// Planning → pending, with the plan, the mode it uses and the outbox id of the approval message.
    pub fn mark_pending(&self, id: i64, plan: &str, mode: Mode, message: i64) -> Result<bool> {
        let n = self.conn().execute(
            "UPDATE requests SET state = 'pending', plan = ?2, mode = ?3, message = ?4 WHERE id = ?1 AND state = 'planning'",
            params![id, plan, mode.as_str(), message],
        )?;
        Ok(n == 1)
    }

    /// Planning or pending → rejected, because its approval request could never be posted; returns its
    /// response_url when it was still open (so the requester can be told).
    pub fn close_unposted(&self, id: i64, note: &str) -> Result<Option<String>> {
        let conn = self.conn();
        let url: Option<Option<String>> = conn
            .query_row(
                "UPDATE requests SET state = 'rejected', note = ?2 WHERE id = ?1 AND state IN ('planning', 'pending')
                 RETURNING response_url",
                params![id, note],
                |row| row.get(0),
            )
            .optional()?;
        Ok(url.flatten())
    }

    /// Planning → rejected, with the reason.
    pub fn mark_rejected(&self, id: i64, reason: &str) -> Result<bool> {
        let n = self.conn().execute(
            "UPDATE requests SET state = 'rejected', note = ?2 WHERE id = ?1 AND state = 'planning'",
            params![id, reason],
        )?;
        Ok(n == 1)
    }

    /// Pending → approved (creating its run) or denied, by compare-and-set: of any number of
    /// concurrent calls, exactly one wins. An approval after `now` passed the expiry loses.
    pub fn decide(
        &self,
        id: i64,
        approve: bool,
        by: &SlackUserId,
        now: jiff::Timestamp,
        first_step: &str,
        run_data: &str,
    ) -> Result<Decided> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let state = if approve { "approved" } else { "denied" };
        let n = tx.execute(
            "UPDATE requests SET state = ?2, decided_by = ?3, decided_at = ?4
             WHERE id = ?1 AND state = 'pending' AND expires_at > ?4",
            params![id, state, by.as_str(), ts(now)],
        )?;
        if n == 0 {
            let row = tx.query_row(
                &format!("SELECT {REQUEST_COLUMNS} FROM requests WHERE id = ?1"),
                params![id],
                request_row,
            )?;
            drop(tx);
            return Ok(Decided::Lost(Box::new(request_from(row)?)));
        }
        let run_id = if approve {
            tx.execute(
                "INSERT INTO runs (request_id, state, step, data, started_at) VALUES (?1, 'running', ?2, ?3, ?4)",
                params![id, first_step, run_data, ts(now)],
            )?;
            Some(tx.last_insert_rowid())
        } else {
            None
        };
        tx.commit()?;
        Ok(Decided::Won { run_id })
    }

    /// Planning or pending → cancelled, by compare-and-set; `Lost` with the request as it is if it was
    /// no longer open.
    pub fn cancel(&self, id: i64, by: &SlackUserId, now: jiff::Timestamp) -> Result<Decided> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let n = tx.execute(
            "UPDATE requests SET state = 'cancelled', decided_by = ?2, decided_at = ?3
             WHERE id = ?1 AND state IN ('planning', 'pending')",
            params![id, by.as_str(), ts(now)],
        )?;
        if n == 0 {
            let row = tx.query_row(
                &format!("SELECT {REQUEST_COLUMNS} FROM requests WHERE id = ?1"),
                params![id],
                request_row,
            )?;
            drop(tx);
            return Ok(Decided::Lost(Box::new(request_from(row)?)));
        }
        tx.commit()?;
        Ok(Decided::Won { run_id: None })
    }

    /// Requests closed without a run (denied, expired, cancelled) since `since`.
    pub fn closed_since(&self, since: jiff::Timestamp) -> Result<Vec<Request>> {
        self.select_requests(
            "(state IN ('denied', 'cancelled') AND decided_at >= ?1) OR (state = 'expired' AND expires_at >= ?1)
             ORDER BY id",
            params![ts(since)],
        )
    }

    /// The most recent requests (of one cluster, or all), newest first.
    pub fn recent_requests(&self, cluster: Option<&ClusterName>, limit: usize) -> Result<Vec<Request>> {
        self.select_requests(
            "?1 IS NULL OR cluster = ?1 ORDER BY id DESC LIMIT ?2",
            params![cluster.map(|c| c.as_str().to_owned()), limit as i64],
        )
    }

    /// Every request made since `since`, oldest first.
    pub fn requests_since(&self, since: jiff::Timestamp) -> Result<Vec<Request>> {
        self.select_requests("requested_at >= ?1 ORDER BY id", params![ts(since)])
    }

    /// Requests matching a condition (the SQL after WHERE, ordering included).
    fn select_requests(&self, condition: &str, params: impl rusqlite::Params) -> Result<Vec<Request>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!("SELECT {REQUEST_COLUMNS} FROM requests WHERE {condition}"))?;
        let rows = stmt
            .query_map(params, request_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter().map(request_from).collect()
    }

    /// Pending → expired for every request whose expiry has passed; returns them.
    pub fn expire_due(&self, now: jiff::Timestamp) -> Result<Vec<Request>> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let rows = {
            let mut stmt = tx.prepare(&format!(
                "UPDATE requests SET state = 'expired' WHERE state = 'pending' AND expires_at <= ?1 RETURNING {REQUEST_COLUMNS}"
            ))?;
            stmt.query_map(params![ts(now)], request_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?
        };
        tx.commit()?;
        rows.into_iter().map(request_from).collect()
    }

    // ---- runs ----

    pub fn run(&self, id: i64) -> Result<Option<Run>> {
        Ok(self.select_runs("id = ?1", params![id])?.pop())
    }

    pub fn run_of_request(&self, request_id: i64) -> Result<Option<Run>> {
        Ok(self.select_runs("request_id = ?1", params![request_id])?.pop())
    }

    /// The request of the cluster's most recent successful run, if any.
    pub fn last_success(&self, cluster: &ClusterName) -> Result<Option<Request>> {
        let conn = self.conn();
        let cols = REQUEST_COLUMNS
            .split(", ")
            .map(|c| format!("r.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let row = conn
            .query_row(
                &format!(
                    "SELECT {cols} FROM requests r JOIN runs u ON u.request_id = r.id
                     WHERE r.cluster = ?1 AND u.state = 'succeeded' ORDER BY u.id DESC LIMIT 1"
                ),
                params![cluster.as_str()],
                request_row,
            )
            .optional()?;
        row.map(request_from).transpose()
    }

    /// Runs finished since `since`.
    pub fn runs_finished_since(&self, since: jiff::Timestamp) -> Result<Vec<Run>> {
        self.select_runs(
            &format!("state NOT IN {OPEN_RUN_STATES} AND finished_at >= ?1 ORDER BY id"),
            params![ts(since)],
        )
    }

    /// Running → needs attention (no-op in any other state); `true` if it changed.
    pub fn mark_needs_attention(
        &self,
        run_id: i64,
        data: &str,
        entry: (&str, &str),
        at: jiff::Timestamp,
    ) -> Result<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let n = tx.execute(
            "UPDATE runs SET state = 'needs_attention', data = ?2, resume_asked_by = NULL, resume_asked_at = NULL
             WHERE id = ?1 AND state = 'running'",
            params![run_id, data],
        )?;
        if n == 1 {
            journal_insert(&tx, run_id, at, entry.0, "needs_attention", entry.1)?;
        }
        tx.commit()?;
        Ok(n == 1)
    }

    /// Needs attention → running, by the bot itself (a late DNS step after its re-check passed), or
    /// after a person's resume was approved; `true` if it changed.
    pub fn back_to_running(&self, run_id: i64, at: jiff::Timestamp) -> Result<bool> {
        let n = self.conn().execute(
            "UPDATE runs SET state = 'running', resume_asked_by = NULL, resume_asked_at = NULL
             WHERE id = ?1 AND state = 'needs_attention'",
            params![run_id],
        )?;
        if n == 1 {
            self.journal(
                run_id,
                at,
                "attention",
                "late_finish",
                "the bot's late re-check passed: going on",
            )?;
        }
        Ok(n == 1)
    }

    /// The answer of a compare-and-set on run `run_id` that did not apply: the run as it is now. (Called
    /// with the connection's lock released: `run` takes it again.)
    fn lost(&self, run_id: i64) -> Result<std::result::Result<(), Box<Run>>> {
        let run = self
            .run(run_id)?
            .ok_or_else(|| StoreError::Corrupt(format!("no run {run_id}")))?;
        Ok(Err(Box::new(run)))
    }

    /// Records `/aurora resume` on a run that needs attention, with `at` (ms) as the token its
    /// decision must name: `Lost` (with the run as it is) when the run is not waiting for a person, or
    /// someone else already asked.
    pub fn ask_resume(
        &self,
        run_id: i64,
        by: &SlackUserId,
        at: jiff::Timestamp,
    ) -> Result<std::result::Result<(), Box<Run>>> {
        let n = self.conn().execute(
            "UPDATE runs SET resume_asked_by = ?2, resume_asked_at = ?3
             WHERE id = ?1 AND state = 'needs_attention' AND resume_asked_by IS NULL",
            params![run_id, by.as_str(), ts(at)],
        )?;
        if n == 1 {
            return Ok(Ok(()));
        }
        self.lost(run_id)
    }

    /// Approves (a second person, never the one who asked) or denies the pending resume whose ask is
    /// `token` (its `resume_asked_at`), by compare-and-set. Approved: the run is running again with
    /// `resumed_by` set. Denied: the ask is withdrawn and the run keeps needing attention. `Lost` with
    /// the run as it is otherwise (no such ask: an older button, or decided already).
    pub fn decide_resume(
        &self,
        run_id: i64,
        token: i64,
        by: &SlackUserId,
        approve: bool,
        at: jiff::Timestamp,
    ) -> Result<std::result::Result<(), Box<Run>>> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let n = if approve {
            tx.execute(
                "UPDATE runs SET state = 'running', resumed_by = ?2, resume_asked_by = NULL, resume_asked_at = NULL
                 WHERE id = ?1 AND state = 'needs_attention' AND resume_asked_at = ?3 AND resume_asked_by != ?2",
                params![run_id, by.as_str(), token],
            )?
        } else {
            tx.execute(
                "UPDATE runs SET resume_asked_by = NULL, resume_asked_at = NULL
                 WHERE id = ?1 AND state = 'needs_attention' AND resume_asked_at = ?2",
                params![run_id, token],
            )?
        };
        if n == 1 {
            let (event, detail) = if approve {
                ("resume_approved", format!("resume approved by {by}"))
            } else {
                ("resume_denied", format!("resume denied by {by}"))
            };
            journal_insert(&tx, run_id, at, "attention", event, &detail)?;
            tx.commit()?;
            return Ok(Ok(()));
        }
        drop(tx);
        drop(conn);
        self.lost(run_id)
    }

    /// Running or needs attention → abandoned, by compare-and-set, with who and why; `Lost` with the
    /// run as it is when it had already ended.
    pub fn abandon_run(
        &self,
        run_id: i64,
        by: &SlackUserId,
        reason: &str,
        at: jiff::Timestamp,
    ) -> Result<std::result::Result<(), Box<Run>>> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let n = tx.execute(
            &format!(
                "UPDATE runs SET state = 'abandoned', abandoned_by = ?2, abandon_reason = ?3, finished_at = ?4
                 WHERE id = ?1 AND state IN {OPEN_RUN_STATES}"
            ),
            params![run_id, by.as_str(), reason, ts(at)],
        )?;
        if n == 1 {
            journal_insert(
                &tx,
                run_id,
                at,
                "attention",
                "abandoned",
                &format!("abandoned by {by}: {reason}"),
            )?;
            tx.commit()?;
            return Ok(Ok(()));
        }
        drop(tx);
        drop(conn);
        self.lost(run_id)
    }

    /// Every journal entry since `since`, oldest first.
    pub fn journal_since(&self, since: jiff::Timestamp) -> Result<Vec<JournalEntry>> {
        self.select_journal("at >= ?1 ORDER BY at, run_id, seq", params![ts(since)])
    }

    /// Journal entries matching a condition (the SQL after WHERE, ordering included).
    fn select_journal(&self, condition: &str, params: impl rusqlite::Params) -> Result<Vec<JournalEntry>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT run_id, seq, at, step, event, detail FROM journal WHERE {condition}"
        ))?;
        let rows = stmt.query_map(params, |row| {
            Ok(JournalEntry {
                run_id: row.get(0)?,
                seq: row.get(1)?,
                at: from_ms(row.get(2)?)?,
                step: row.get(3)?,
                event: row.get(4)?,
                detail: row.get(5)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    pub fn runs_in(&self, state: RunState) -> Result<Vec<Run>> {
        self.select_runs("state = ?1 ORDER BY id", params![state.as_str()])
    }

    /// Runs matching a condition (the SQL after WHERE, ordering included).
    fn select_runs(&self, condition: &str, params: impl rusqlite::Params) -> Result<Vec<Run>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE {condition}"))?;
        let rows = stmt
            .query_map(params, run_from)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter().map(run_convert).collect()
    }

    /// Saves a running run's next step and data, with a journal line, in one transaction.
    pub fn checkpoint(
        &self,
        run_id: i64,
        next_step: &str,
        data: &str,
        entry: Option<(&str, &str, &str)>,
        at: jiff::Timestamp,
    ) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            &format!("UPDATE runs SET step = ?2, data = ?3 WHERE id = ?1 AND state IN {OPEN_RUN_STATES}"),
            params![run_id, next_step, data],
        )?;
        if let Some((step, event, detail)) = entry {
            journal_insert(&tx, run_id, at, step, event, detail)?;
        }
        tx.commit()?;
        Ok(())
    }

    pub fn journal(&self, run_id: i64, at: jiff::Timestamp, step: &str, event: &str, detail: &str) -> Result<()> {
        let conn = self.conn();
        journal_insert(&conn, run_id, at, step, event, detail)
    }

    pub fn journal_of(&self, run_id: i64) -> Result<Vec<JournalEntry>> {
        self.select_journal("run_id = ?1 ORDER BY seq", params![run_id])
    }

    /// Running (or needing attention) → succeeded or failed; `false` if the run had already ended (a
    /// person abandoned it meanwhile).
    pub fn finish_run(&self, run_id: i64, state: RunState, data: &str, at: jiff::Timestamp) -> Result<bool> {
        let n = self.conn().execute(
            &format!(
                "UPDATE runs SET state = ?2, data = ?3, finished_at = ?4 WHERE id = ?1 AND state IN {OPEN_RUN_STATES}"
            ),
            params![run_id, state.as_str(), data, ts(at)],
        )?;
        Ok(n == 1)
    }

    // ---- audit ----

    /// Records an attempt by a user (a command, a click), whatever its outcome.
    pub fn audit(
        &self,
        at: jiff::Timestamp,
        user: &str,
        action: &str,
        request_id: Option<i64>,
        outcome: &str,
    ) -> Result<()> {
        self.conn().execute(
            "INSERT INTO audit (at, user_id, action, request_id, outcome) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![ts(at), user, action, request_id, outcome],
        )?;
        Ok(())
    }

    /// Every audited attempt, oldest first.
    pub fn audit_log(&self) -> Result<Vec<AuditEntry>> {
        self.audit_since(jiff::Timestamp::MIN)
    }

    /// Every audited attempt since `since`, oldest first.
    pub fn audit_since(&self, since: jiff::Timestamp) -> Result<Vec<AuditEntry>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT at, user_id, action, request_id, outcome FROM audit WHERE at >= ?1 ORDER BY id")?;
        let rows = stmt.query_map(params![ts(since)], |row| {
            Ok(AuditEntry {
                at: from_ms(row.get(0)?)?,
                user: row.get(1)?,
                action: row.get(2)?,
                request_id: row.get(3)?,
                outcome: row.get(4)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    // ---- outbox ----

    /// Queues a Slack message and returns its id. A message with a `dedup_key` already queued is not
    /// queued again: the id of the first one is returned.
    pub fn enqueue(&self, m: &Outgoing<'_>, now: jiff::Timestamp) -> Result<i64> {
        let conn = self.conn();
        let inserted = conn.execute(
            "INSERT INTO outbox (ordering_key, kind, channel, target, response_url, body, attempts, next_attempt_at,
                                 state, dedup_key)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, 'pending', ?8)
             ON CONFLICT (dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING",
            params![
                m.ordering_key,
                m.kind,
                m.channel.map(|c| c.as_str().to_owned()),
                m.target,
                m.response_url,
                m.body,
                ts(now),
                m.dedup_key
            ],
        )?;
        if inserted == 1 {
            return Ok(conn.last_insert_rowid());
        }
        Ok(conn.query_row(
            "SELECT id FROM outbox WHERE dedup_key = ?1",
            params![m.dedup_key],
            |row| row.get(0),
        )?)
    }

    /// Records the signature of a Slack request; `false` if it was already seen (a replay). One
    /// indexed insert: old signatures are pruned by `forget_requests_before`, off the request path.
    pub fn first_sighting(&self, signature: &str, now: jiff::Timestamp) -> Result<bool> {
        let n = self.conn().execute(
            "INSERT INTO seen_requests (signature, at) VALUES (?1, ?2) ON CONFLICT (signature) DO NOTHING",
            params![signature, ts(now)],
        )?;
        Ok(n == 1)
    }

    /// Forgets at most `batch` signatures recorded before `before` (which the timestamp window already
    /// refuses); returns how many it forgot. Bounded, so that the store's lock is held briefly: call it
    /// again while it returns `batch`.
    pub fn forget_requests_before(&self, before: jiff::Timestamp, batch: usize) -> Result<usize> {
        let n = self.conn().execute(
            "DELETE FROM seen_requests WHERE rowid IN
               (SELECT rowid FROM seen_requests WHERE at < ?1 ORDER BY at LIMIT ?2)",
            params![ts(before), i64::try_from(batch).unwrap_or(i64::MAX)],
        )?;
        Ok(n)
    }

    /// The first undelivered item of every ordering key, oldest key first.
    pub fn outbox_heads(&self) -> Result<Vec<OutboxItem>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE id IN
               (SELECT MIN(id) FROM outbox WHERE state = 'pending' GROUP BY ordering_key)
             ORDER BY id"
        ))?;
        let rows = stmt.query_map([], outbox_from)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    pub fn outbox_item(&self, id: i64) -> Result<Option<OutboxItem>> {
        let conn = self.conn();
        Ok(conn
            .query_row(
                &format!("SELECT {OUTBOX_COLUMNS} FROM outbox WHERE id = ?1"),
                params![id],
                outbox_from,
            )
            .optional()?)
    }

    /// Is there a later undelivered update of the same message? (Then this one can be skipped.)
    pub fn newer_update_pending(&self, item: &OutboxItem) -> Result<bool> {
        let conn = self.conn();
        let n: i64 = conn.query_row(
            "SELECT COUNT(*) FROM outbox WHERE kind = 'update' AND state = 'pending' AND target = ?1 AND id > ?2",
            params![item.target, item.id],
            |row| row.get(0),
        )?;
        Ok(n > 0)
    }

    pub fn outbox_delivered(&self, id: i64, ts_value: Option<&str>) -> Result<()> {
        self.conn().execute(
            "UPDATE outbox SET state = 'delivered', delivered_ts = ?2, last_error = NULL WHERE id = ?1",
            params![id, ts_value],
        )?;
        Ok(())
    }

    /// Marks an update as superseded by a newer one (not sent).
    pub fn outbox_skipped(&self, id: i64) -> Result<()> {
        self.conn()
            .execute("UPDATE outbox SET state = 'superseded' WHERE id = ?1", params![id])?;
        Ok(())
    }

    /// Records a failed attempt and when to try again.
    pub fn outbox_retry(&self, id: i64, error: &str, next_attempt_at: jiff::Timestamp) -> Result<()> {
        self.conn().execute(
            "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, next_attempt_at = ?3 WHERE id = ?1",
            params![id, error, ts(next_attempt_at)],
        )?;
        Ok(())
    }

    /// Gives up on an item that can never be delivered (e.g. Slack said `channel_not_found`).
    pub fn outbox_failed(&self, id: i64, error: &str) -> Result<()> {
        self.conn().execute(
            "UPDATE outbox SET state = 'failed', attempts = attempts + 1, last_error = ?2 WHERE id = ?1",
            params![id, error],
        )?;
        Ok(())
    }

    pub fn outbox_all(&self) -> Result<Vec<OutboxItem>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!("SELECT {OUTBOX_COLUMNS} FROM outbox ORDER BY id"))?;
        let rows = stmt.query_map([], outbox_from)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }
}

fn journal_insert(
    conn: &Connection,
    run_id: i64,
    at: jiff::Timestamp,
    step: &str,
    event: &str,
    detail: &str,
) -> Result<()> {
    conn.execute(
        "INSERT INTO journal (run_id, seq, at, step, event, detail)
         VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM journal WHERE run_id = ?1), ?2, ?3, ?4, ?5)",
        params![run_id, ts(at), step, event, detail],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests;
