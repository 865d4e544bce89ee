//! The SQLite schema and its migrations. `user_version` records which migrations have run; each
//! migration runs once, in a transaction, in order.

use rusqlite::Connection;

pub(super) const MIGRATIONS: &[&str] = &[
    // 1: requests, runs, journal, audit, outbox.
    "CREATE TABLE requests (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        cluster         TEXT NOT NULL,
        mode            TEXT NOT NULL,
        requested_by    TEXT NOT NULL,
        requested_at    INTEGER NOT NULL,
        to_region       TEXT,
        origin_channel  TEXT NOT NULL,
        response_url    TEXT,
        expires_at      INTEGER NOT NULL,
        state           TEXT NOT NULL,
        plan            TEXT,
        decided_by      TEXT,
        decided_at      INTEGER,
        note            TEXT,
        message         INTEGER
    );
    CREATE INDEX requests_by_cluster ON requests (cluster, state);
    CREATE TABLE runs (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        request_id   INTEGER NOT NULL UNIQUE REFERENCES requests (id),
        state        TEXT NOT NULL,
        step         TEXT NOT NULL,
        data         TEXT NOT NULL,
        started_at   INTEGER NOT NULL,
        finished_at  INTEGER
    );
    CREATE TABLE journal (
        run_id  INTEGER NOT NULL REFERENCES runs (id),
        seq     INTEGER NOT NULL,
        at      INTEGER NOT NULL,
        step    TEXT NOT NULL,
        event   TEXT NOT NULL,
        detail  TEXT NOT NULL,
        PRIMARY KEY (run_id, seq)
    );
    CREATE TABLE audit (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        at          INTEGER NOT NULL,
        user_id     TEXT NOT NULL,
        action      TEXT NOT NULL,
        request_id  INTEGER,
        outcome     TEXT NOT NULL
    );
    CREATE TABLE outbox (
        id               INTEGER PRIMARY KEY AUTOINCREMENT,
        ordering_key     TEXT NOT NULL,
        kind             TEXT NOT NULL,
        channel          TEXT,
        target           INTEGER REFERENCES outbox (id),
        response_url     TEXT,
        body             TEXT NOT NULL,
        attempts         INTEGER NOT NULL,
        next_attempt_at  INTEGER NOT NULL,
        delivered_ts     TEXT,
        state            TEXT NOT NULL,
        last_error       TEXT
    );
    CREATE INDEX outbox_pending ON outbox (state, ordering_key, id);",
    // 2: idempotent messages (a message queued twice after a restart is queued once), and the
    // signatures of the Slack requests already handled (a replayed request has no second effect).
    "ALTER TABLE outbox ADD COLUMN dedup_key TEXT;
    CREATE UNIQUE INDEX outbox_dedup ON outbox (dedup_key) WHERE dedup_key IS NOT NULL;
    CREATE TABLE seen_requests (
        signature  TEXT PRIMARY KEY,
        at         INTEGER NOT NULL
    );",
    // 3: the replay table is pruned by time, in batches: index it on time.
    "CREATE INDEX seen_requests_by_time ON seen_requests (at);",
    // 4: what people decide about a run that needs attention: resume (asked, approved) or abandon.
    "ALTER TABLE runs ADD COLUMN resume_asked_by TEXT;
    ALTER TABLE runs ADD COLUMN resume_asked_at INTEGER;
    ALTER TABLE runs ADD COLUMN resumed_by TEXT;
    ALTER TABLE runs ADD COLUMN abandoned_by TEXT;
    ALTER TABLE runs ADD COLUMN abandon_reason TEXT;
    CREATE INDEX runs_by_state ON runs (state);",
    // 5: one item per cluster that an open request takes by a conditional write (instead of a check
    // across requests and runs), and the request id counter (an id is taken before the lock). The
    // locks of the requests and runs open now are taken here.
    "CREATE TABLE cluster_locks (
        cluster  TEXT PRIMARY KEY,
        holder   INTEGER NOT NULL
    );
    INSERT OR IGNORE INTO cluster_locks (cluster, holder)
        SELECT r.cluster, r.id FROM requests r LEFT JOIN runs u ON u.request_id = r.id
        WHERE r.state IN ('planning', 'pending')
           OR (r.state = 'approved' AND (u.id IS NULL OR u.state IN ('running', 'needs_attention')))
        ORDER BY r.id;
    CREATE TABLE counters (
        name  TEXT PRIMARY KEY,
        last  INTEGER NOT NULL
    );
    INSERT INTO counters (name, last) VALUES ('requests', MAX(
        COALESCE((SELECT MAX(id) FROM requests), 0),
        COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'requests'), 0)));",
    // 6: exactly-once channel messages and response_url limits. An outbox item records when its first
    // attempt started and which way the last one went, both before the call; the store has an identity
    // (part of the key a posted message carries in its metadata); the response_urls Slack issued, with
    // who they answer, where, and when (a response_url lasts 30 minutes, 5 posts).
    "ALTER TABLE outbox ADD COLUMN started_at INTEGER;
    ALTER TABLE outbox ADD COLUMN via TEXT;
    CREATE INDEX outbox_by_response_url ON outbox (response_url) WHERE response_url IS NOT NULL;
    CREATE TABLE store_meta (
        name   TEXT PRIMARY KEY,
        value  TEXT NOT NULL
    );
    INSERT INTO store_meta (name, value) VALUES ('store_id', lower(hex(randomblob(8))));
    CREATE TABLE response_urls (
        url        TEXT PRIMARY KEY,
        user_id    TEXT NOT NULL,
        channel    TEXT NOT NULL,
        issued_at  INTEGER NOT NULL
    );",
    // 7: response_urls are forgotten a day after Slack issued them (they last 30 minutes).
    "CREATE INDEX response_urls_by_issued_at ON response_urls (issued_at);",
    // 8: leases (which instance executes a cluster's run, which one delivers the outbox), with the
    // fencing token every fenced write is checked against.
    "CREATE TABLE leases (
        scope       TEXT PRIMARY KEY,
        owner       TEXT NOT NULL,
        token       INTEGER NOT NULL,
        expires_at  INTEGER NOT NULL
    );",
    // 9: approval policy: a request's reason and ticket, and its approvals so far (a JSON array of
    // `{"by": person, "at": timestamp}`, oldest first), for requests needing several approvers.
    "ALTER TABLE requests ADD COLUMN reason TEXT;
    ALTER TABLE requests ADD COLUMN ticket TEXT;
    ALTER TABLE requests ADD COLUMN approvals TEXT NOT NULL DEFAULT '[]';",
    // 10: the global cluster the bot made for a cluster (a rebuild) while the config names another
    // one: one row per cluster name, dropped at start-up once the config names it.
    "CREATE TABLE global_cluster_records (
        cluster            TEXT PRIMARY KEY,
        global_cluster_id  TEXT NOT NULL,
        request_id         INTEGER NOT NULL,
        recorded_at        INTEGER NOT NULL,
        replaces           TEXT NOT NULL
    );",
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

pub fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > SCHEMA_VERSION {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_MISUSE),
            Some(format!(
                "the database has schema version {current}, newer than this build's {SCHEMA_VERSION}: run a newer bot"
            )),
        ));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        conn.execute_batch(&format!("BEGIN; {sql}; PRAGMA user_version = {}; COMMIT;", i + 1))?;
    }
    Ok(())
}
