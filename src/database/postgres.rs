//! Aurora PostgreSQL through tokio-postgres: TLS required and verified (rustls over the CA bundle, the
//! server name being the RDS endpoint while the TCP connection goes to the probe's address), then
//! one statement for the version, the read-only flags and the replay lag, Aurora's global-database
//! lag when the function exists, and the heartbeat upsert when asked and writable.

use super::tls::{self, Trust};
use super::{Connection, Found, describe_chain, io_kind, quoted_table};
use crate::ports::{ProbeError, ProbeErrorKind};
use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres_rustls::MakeRustlsConnect;

/// The server's version, whether it refuses writes, and the replica lag it reports: on a standby
/// `now() - pg_last_xact_replay_timestamp()` (PostgreSQL documentation, "System Administration
/// Functions", table "Recovery Information Functions"), `NULL` on a primary or before anything was
/// replayed.
const STATE: &str = "SELECT version(), pg_is_in_recovery(), current_setting('transaction_read_only'), \
     CASE WHEN pg_is_in_recovery() \
     THEN (extract(epoch FROM now() - pg_last_xact_replay_timestamp()) * 1000)::float8 END";

/// Whether Aurora's `aurora_global_db_instance_status()` exists (never fails: `NULL` when absent).
const HAS_AURORA_STATUS: &str = "SELECT to_regproc('aurora_global_db_instance_status') IS NOT NULL";

/// This instance's visibility lag in a global database (Aurora PostgreSQL documentation,
/// "aurora_global_db_instance_status"); run only when the function exists.
const AURORA_LAG: &str = "SELECT visibility_lag_in_msec::float8 FROM aurora_global_db_instance_status() \
     WHERE server_id = aurora_db_instance_identifier()";

pub(super) async fn probe(trust: &Trust, c: &Connection<'_>) -> Result<Found, ProbeError> {
    let mut config = tokio_postgres::Config::new();
    config
        .host(c.endpoint)
        .hostaddr(c.address.ip())
        .port(c.address.port())
        .user(&c.credentials.username)
        .password(c.credentials.password.expose())
        .dbname(c.database)
        .ssl_mode(SslMode::Require)
        .connect_timeout(c.connect_timeout)
        .application_name("aurora-failover-bot")
        .options(format!(
            "-c statement_timeout={} -c TimeZone=UTC",
            c.query_timeout.as_millis().max(1)
        ));
    let tls = MakeRustlsConnect::new((*trust.client_config).clone());
    let (client, connection) = tokio::time::timeout(c.connect_timeout, config.connect(tls))
        .await
        .map_err(|_| c.connect_timed_out())?
        .map_err(|e| connect_error(c, &e))?;
    // The connection's I/O runs until the client is dropped (which sends Terminate).
    let io = tokio::spawn(connection);
    let found = statements(&client, c).await;
    drop(client);
    let _ = tokio::time::timeout(c.query_timeout, io).await;
    found
}

async fn statements(client: &tokio_postgres::Client, c: &Connection<'_>) -> Result<Found, ProbeError> {
    let row = query_one(client, c, STATE, "SELECT version(), pg_is_in_recovery()").await?;
    let server_version: String = row.get(0);
    let in_recovery: bool = row.get(1);
    let transaction_read_only: String = row.get(2);
    let mut lag_ms: Option<f64> = row.get(3);
    let read_only = in_recovery || transaction_read_only == "on";

    let has_aurora_status: bool = query_one(client, c, HAS_AURORA_STATUS, "to_regproc").await?.get(0);
    if has_aurora_status {
        // Best effort: the function's shape is Aurora's to change; the probe stands without it.
        if let Ok(Ok(Some(row))) = tokio::time::timeout(c.query_timeout, client.query_opt(AURORA_LAG, &[])).await {
            lag_ms = row.get::<_, Option<f64>>(0).or(lag_ms);
        }
    }

    let mut heartbeat_written = false;
    if let Some(heartbeat) = c.heartbeat.filter(|_| !read_only) {
        let table = quoted_table(&heartbeat.table, '"');
        let upsert = format!(
            "INSERT INTO {table} (writer, written_at) VALUES ($1, now() AT TIME ZONE 'UTC') \
             ON CONFLICT (writer) DO UPDATE SET written_at = excluded.written_at"
        );
        let what = format!("the heartbeat upsert into {}", heartbeat.table);
        tokio::time::timeout(c.query_timeout, client.execute(&upsert, &[&heartbeat.writer]))
            .await
            .map_err(|_| c.query_timed_out(&what))?
            .map_err(|e| {
                ProbeError::new(
                    ProbeErrorKind::Query,
                    format!("{} failed on {}: {}", what, c.endpoint, statement_error(&e)),
                )
            })?;
        heartbeat_written = true;
    }
    let heartbeat_problem = match c.check_heartbeat {
        Some(table) => heartbeat_problem(client, c, table).await,
        None => None,
    };
    Ok(Found {
        server_version,
        read_only,
        lag_ms,
        heartbeat_written,
        heartbeat_problem,
    })
}

/// Read-only: whether `table` exists and the user may upsert into it (SELECT, INSERT, UPDATE); what
/// is wrong, if anything.
async fn heartbeat_problem(client: &tokio_postgres::Client, c: &Connection<'_>, table: &str) -> Option<String> {
    let quoted = quoted_table(table, '"');
    let sql = "SELECT to_regclass($1) IS NOT NULL, \
               CASE WHEN to_regclass($1) IS NULL THEN false \
               ELSE has_table_privilege(to_regclass($1), 'SELECT') AND has_table_privilege(to_regclass($1), 'INSERT') \
               AND has_table_privilege(to_regclass($1), 'UPDATE') END";
    let row = match tokio::time::timeout(c.query_timeout, client.query_one(sql, &[&quoted])).await {
        Ok(Ok(row)) => row,
        Ok(Err(e)) => return Some(format!("the check of {table} failed: {}", statement_error(&e))),
        Err(_) => return Some(format!("the check of {table} did not answer in time")),
    };
    let (exists, may_write): (bool, bool) = (row.get(0), row.get(1));
    match (exists, may_write) {
        (false, _) => Some(format!("table {table} does not exist in database {}", c.database)),
        (true, false) => Some(format!(
            "user {} lacks SELECT, INSERT or UPDATE on {table}",
            c.credentials.username
        )),
        (true, true) => None,
    }
}

async fn query_one(
    client: &tokio_postgres::Client,
    c: &Connection<'_>,
    sql: &str,
    what: &str,
) -> Result<tokio_postgres::Row, ProbeError> {
    tokio::time::timeout(c.query_timeout, client.query_one(sql, &[]))
        .await
        .map_err(|_| c.query_timed_out(what))?
        .map_err(|e| {
            if e.code() == Some(&SqlState::QUERY_CANCELED) {
                c.query_timed_out(what)
            } else {
                ProbeError::new(
                    ProbeErrorKind::Query,
                    format!("{what} failed on {}: {}", c.endpoint, statement_error(&e)),
                )
            }
        })
}

/// A statement's error: the server's message and SQLSTATE, else the driver's words.
fn statement_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => describe_chain(e),
    }
}

/// Classifies a failed connection: a refused login (SQLSTATE 28P01 invalid_password, 28000
/// invalid_authorization_specification, such as no `pg_hba.conf` line), a TLS failure, a timeout,
/// or nothing accepting the connection.
fn connect_error(c: &Connection<'_>, e: &tokio_postgres::Error) -> ProbeError {
    if let Some(db) = e.as_db_error() {
        let said = format!("{} (SQLSTATE {})", db.message(), db.code().code());
        return match *db.code() {
            SqlState::INVALID_PASSWORD | SqlState::INVALID_AUTHORIZATION_SPECIFICATION => c.refused_credentials(&said),
            _ => c.unreachable(&format!("the server refused the session: {said}")),
        };
    }
    if let Some(rustls) = tls::rustls_error(e) {
        return ProbeError::new(ProbeErrorKind::Tls, tls::describe(c.endpoint, rustls));
    }
    let said = describe_chain(e);
    if said.starts_with("error performing TLS handshake") {
        return ProbeError::new(ProbeErrorKind::Tls, format!("TLS with {} failed: {said}", c.endpoint));
    }
    match io_kind(e) {
        Some(std::io::ErrorKind::TimedOut) => c.connect_timed_out(),
        _ => c.unreachable(&said),
    }
}
