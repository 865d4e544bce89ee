//! Aurora MySQL (MariaDB in the tests) through mysql_async: TLS required and verified (the CA bundle
//! as the only roots, without mysql_async's built-in ones, and the RDS endpoint as the name the
//! certificate must carry while the TCP connection goes to the probe's address), then the version and
//! read-only flags, Aurora's global-database lag when the server has it, and the heartbeat upsert when
//! asked and writable.

use super::tls::{self, Trust};
use super::{Connection, Found, describe_chain, io_kind, quoted_table};
use crate::ports::{ProbeError, ProbeErrorKind};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, DriverError, IoError, OptsBuilder, SslOpts};

/// The version and the two flags that make a server refuse writes (`@@innodb_read_only`: Aurora
/// replicas; `@@read_only`).
const STATE: &str = "SELECT VERSION(), @@innodb_read_only, @@read_only";

/// This instance's visibility lag in a global database (Aurora MySQL documentation,
/// "information_schema.aurora_global_db_instance_status"); servers without the table (MariaDB, MySQL)
/// answer an error, which leaves the lag unknown.
const AURORA_LAG: &str = "SELECT CAST(VISIBILITY_LAG_IN_MSEC AS DOUBLE) FROM information_schema.aurora_global_db_instance_status \
     WHERE SERVER_ID = @@aurora_server_id";

/// MySQL's "Access denied for user" (1045, ER_ACCESS_DENIED_ERROR) and "Access denied for user to
/// database" (1044, ER_DBACCESS_DENIED_ERROR).
const ACCESS_DENIED: [u16; 2] = [1045, 1044];

pub(super) async fn probe(trust: &Trust, c: &Connection<'_>) -> Result<Found, ProbeError> {
    let ssl = SslOpts::default()
        .with_root_certs(vec![trust.pem.clone().into()])
        .with_disable_built_in_roots(true)
        .with_danger_tls_hostname_override(Some(c.endpoint.to_owned()));
    let opts = OptsBuilder::default()
        .ip_or_hostname(c.address.ip().to_string())
        .tcp_port(c.address.port())
        .user(Some(&c.credentials.username))
        .pass(Some(c.credentials.password.expose()))
        .db_name(Some(c.database))
        // Not the server's Unix socket, even on the same host: that would skip TLS.
        .prefer_socket(false)
        .ssl_opts(ssl);
    let mut conn = tokio::time::timeout(c.connect_timeout, Conn::new(opts))
        .await
        .map_err(|_| c.connect_timed_out())?
        .map_err(|e| connect_error(c, &e))?;
    let found = statements(&mut conn, c).await;
    let _ = tokio::time::timeout(c.query_timeout, conn.disconnect()).await;
    found
}

async fn statements(conn: &mut Conn, c: &Connection<'_>) -> Result<Found, ProbeError> {
    let what = "SELECT VERSION(), @@innodb_read_only, @@read_only";
    let row: Option<(String, i64, i64)> = tokio::time::timeout(c.query_timeout, conn.query_first(STATE))
        .await
        .map_err(|_| c.query_timed_out(what))?
        .map_err(|e| statement_error(c, what, &e))?;
    let (server_version, innodb_read_only, read_only) = row.ok_or_else(|| {
        ProbeError::new(
            ProbeErrorKind::Query,
            format!("{what} returned no row on {}", c.endpoint),
        )
    })?;
    let read_only = innodb_read_only != 0 || read_only != 0;

    // Best effort, and harmless where the table does not exist (the session stays usable).
    let lag_ms = match tokio::time::timeout(c.query_timeout, conn.query_first::<Option<f64>, _>(AURORA_LAG)).await {
        Ok(Ok(Some(lag))) => lag,
        _ => None,
    };

    let mut heartbeat_written = false;
    if let Some(heartbeat) = c.heartbeat.filter(|_| !read_only) {
        let table = quoted_table(&heartbeat.table, '`');
        let upsert = format!(
            "INSERT INTO {table} (writer, written_at) VALUES (?, UTC_TIMESTAMP()) \
             ON DUPLICATE KEY UPDATE written_at = UTC_TIMESTAMP()"
        );
        let what = format!("the heartbeat upsert into {}", heartbeat.table);
        tokio::time::timeout(c.query_timeout, conn.exec_drop(upsert, (heartbeat.writer.as_str(),)))
            .await
            .map_err(|_| c.query_timed_out(&what))?
            .map_err(|e| statement_error(c, &what, &e))?;
        heartbeat_written = true;
    }
    let heartbeat_problem = match c.check_heartbeat {
        Some(table) => heartbeat_problem(conn, c, table).await,
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

/// Read-only: whether `table` exists and may be read (its INSERT and UPDATE privileges, which MySQL
/// may grant globally, per database or per table, are not checked); what is wrong, if anything.
async fn heartbeat_problem(conn: &mut Conn, c: &Connection<'_>, table: &str) -> Option<String> {
    let sql = format!("SELECT 1 FROM {} LIMIT 0", quoted_table(table, '`'));
    match tokio::time::timeout(c.query_timeout, conn.query_drop(sql)).await {
        Ok(Ok(())) => None,
        Ok(Err(mysql_async::Error::Server(s))) if s.code == 1146 => {
            Some(format!("table {table} does not exist in database {}", c.database))
        }
        // MySQL does not tell a table the user has no privilege on from one that does not exist.
        Ok(Err(mysql_async::Error::Server(s))) if s.code == 1142 => Some(format!(
            "table {table} does not exist in database {}, or user {} may not read it (the upsert needs SELECT, \
             INSERT and UPDATE)",
            c.database, c.credentials.username
        )),
        Ok(Err(e)) => Some(format!("the check of {table} failed: {e}")),
        Err(_) => Some(format!("the check of {table} did not answer in time")),
    }
}

fn statement_error(c: &Connection<'_>, what: &str, e: &mysql_async::Error) -> ProbeError {
    let said = match e {
        mysql_async::Error::Server(s) => format!("{} (error {}, SQLSTATE {})", s.message, s.code, s.state),
        other => describe_chain(other),
    };
    ProbeError::new(
        ProbeErrorKind::Query,
        format!("{what} failed on {}: {said}", c.endpoint),
    )
}

/// Classifies a failed connection: a refused login, a TLS failure (including a server that offers no
/// TLS), a timeout, or nothing accepting the connection.
fn connect_error(c: &Connection<'_>, e: &mysql_async::Error) -> ProbeError {
    match e {
        mysql_async::Error::Server(s) if ACCESS_DENIED.contains(&s.code) => {
            c.refused_credentials(&format!("{} (error {})", s.message, s.code))
        }
        mysql_async::Error::Server(s) => c.unreachable(&format!(
            "the server refused the session: {} (error {}, SQLSTATE {})",
            s.message, s.code, s.state
        )),
        mysql_async::Error::Driver(DriverError::NoClientSslFlagFromServer) => ProbeError::new(
            ProbeErrorKind::Tls,
            format!("TLS with {} failed: the server does not offer TLS", c.endpoint),
        ),
        mysql_async::Error::Io(IoError::Tls(t)) => match tls::rustls_error(t) {
            Some(r) => ProbeError::new(ProbeErrorKind::Tls, tls::describe(c.endpoint, r)),
            None => ProbeError::new(
                ProbeErrorKind::Tls,
                format!("TLS with {} failed: {}", c.endpoint, describe_chain(t)),
            ),
        },
        other => match tls::rustls_error(other) {
            Some(r) => ProbeError::new(ProbeErrorKind::Tls, tls::describe(c.endpoint, r)),
            None if io_kind(other) == Some(std::io::ErrorKind::TimedOut) => c.connect_timed_out(),
            None => c.unreachable(&describe_chain(other)),
        },
    }
}
