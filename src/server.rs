//! The HTTP server: an accept loop over hyper-util's HTTP/1 connection builder, so that the bot sheds
//! what it should not hold. A bot that runs a failover must keep the descriptors and the memory that
//! the run's own calls to AWS, Slack and its database need, whatever arrives on its port.
//!
//! Limits kept here:
//! - at most `max_connections` connections are served at once: the accept loop takes a permit before
//!   it accepts, so past the cap new connections wait in the kernel's backlog and cost the bot no
//!   descriptor;
//! - a connection must send a request's whole header within `header_read_timeout`, counted from its
//!   accept or from the previous answer (hyper starts that timer whenever a connection waits for a
//!   request): this closes idle, kept-alive and slowloris connections alike;
//! - a request must be answered within `request_timeout` (408 otherwise), and a connection lives at
//!   most `MAX_AGE`, then closes after its request in flight (or is dropped `CLOSE_GRACE` later);
//! - the soft limit on open descriptors is raised to the hard limit at start-up, and the default cap
//!   leaves a reserve under it for the bot's own connections.
//!
//! (`axum::serve` gives hyper no timer, so none of the timeouts would apply with it.)

use crate::settings::ServerSettings;
use axum::Router;
use axum::http::StatusCode;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// How long a connection, once asked to close (at shutdown, or at `MAX_AGE`), may take to finish the
/// request in flight before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// How long one connection may live, however busy: a client that keeps a connection alive with a
/// request now and then, or never reads its answers, cannot hold a place under the cap for longer.
const MAX_AGE: Duration = Duration::from_secs(120);

/// The least number of descriptors kept out of the connection cap for the bot's own use (its database
/// and log files, and its connections to AWS and Slack).
const MIN_RESERVE: u64 = 128;

/// The limits the server applies, resolved from the settings and the descriptor limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub request_timeout: Duration,
}

impl Limits {
    /// The limits for `settings`, with the connection cap derived from `nofile` (the soft limit on open
    /// descriptors) when the settings do not give one.
    pub fn resolve(settings: &ServerSettings, nofile: Option<u64>) -> Limits {
        // A configured cap never eats into the reserve: past it, the bot's own calls would fail first.
        let most = nofile.map(|n| usize::try_from(n.saturating_sub((n / 4).max(MIN_RESERVE))).unwrap_or(usize::MAX));
        let max_connections = match (settings.max_connections, most) {
            (Some(n), Some(most)) if n > most => {
                warn!(
                    configured = n,
                    used = most.max(8),
                    "server.max_connections is more than the descriptor limit leaves after the reserve for the \
                     bot's own connections; using the most it leaves"
                );
                most.max(8)
            }
            (Some(n), _) => n,
            (None, _) => default_max_connections(nofile),
        };
        Limits {
            max_connections,
            header_read_timeout: settings.header_read_timeout,
            request_timeout: settings.request_timeout,
        }
    }
}

/// The default connection cap: what the descriptor limit leaves after a reserve of a quarter of it
/// (at least `MIN_RESERVE`) for the bot's own descriptors; at least 8, at most 10,000. Without a known
/// limit, 1,024.
pub fn default_max_connections(nofile: Option<u64>) -> usize {
    let Some(limit) = nofile else { return 1_024 };
    let reserve = (limit / 4).max(MIN_RESERVE);
    usize::try_from(limit.saturating_sub(reserve).clamp(8, 10_000)).unwrap_or(10_000)
}

/// Raises the soft limit on open descriptors to the hard limit; returns the soft limit now in force
/// (`None` where the platform has no such limit or it cannot be read).
pub fn raise_descriptor_limit() -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => Some(n),
        Err(e) => {
            warn!(error = %e, "cannot raise the limit on open descriptors");
            rlimit::getrlimit(rlimit::Resource::NOFILE).ok().map(|(soft, _)| soft)
        }
    }
}

/// Serves `router` on `listener` within `limits` until `shutdown` is cancelled; then stops accepting and
/// gives open connections `CLOSE_GRACE` to finish.
pub async fn serve(listener: TcpListener, router: Router, limits: Limits, shutdown: CancellationToken) {
    let router = router.layer(tower_http::timeout::TimeoutLayer::with_status_code(
        StatusCode::REQUEST_TIMEOUT,
        limits.request_timeout,
    ));
    // One permit per open connection: taken before accepting, released when the connection closes.
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let connections = tokio_util::task::TaskTracker::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let mut cap = Cap::new(permits, limits.max_connections);
    loop {
        let Some(permit) = cap.permit(&shutdown).await else {
            break;
        };
        let Some((stream, peer)) = next_connection(&listener, &shutdown).await else {
            break;
        };
        let _ = stream.set_nodelay(true);
        let connection = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(router.clone()));
        connections.spawn(drive(connection, peer, permit, shutdown.clone()));
    }
    drop(listener);
    drain(connections).await;
}

/// The connection cap: one permit per open connection.
struct Cap {
    permits: Arc<Semaphore>,
    max_connections: usize,
    /// Set while the cap is reached, so that it is logged once each time.
    at_cap_since: Option<tokio::time::Instant>,
}

impl Cap {
    fn new(permits: Arc<Semaphore>, max_connections: usize) -> Cap {
        Cap {
            permits,
            max_connections,
            at_cap_since: None,
        }
    }

    /// A permit for the next connection, waiting (with new connections in the kernel's backlog) while
    /// the cap is reached; `None` at shutdown.
    async fn permit(&mut self, shutdown: &CancellationToken) -> Option<OwnedSemaphorePermit> {
        if let Ok(p) = self.permits.clone().try_acquire_owned() {
            self.at_cap_since = None;
            return Some(p);
        }
        if self.at_cap_since.is_none() {
            warn!(
                max_connections = self.max_connections,
                "connection cap reached: new connections wait until open ones close"
            );
            self.at_cap_since = Some(tokio::time::Instant::now());
        }
        tokio::select! {
            () = shutdown.cancelled() => None,
            p = self.permits.clone().acquire_owned() => p.ok(),
        }
    }
}

/// The next connection; `None` at shutdown.
async fn next_connection(listener: &TcpListener, shutdown: &CancellationToken) -> Option<(TcpStream, SocketAddr)> {
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => return None,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok(a) => return Some(a),
            Err(e) => {
                // Out of descriptors (EMFILE/ENFILE) or a connection reset before it was accepted:
                // pause instead of spinning, and let open connections time out.
                warn!(error = %e, "cannot accept a connection; pausing");
                tokio::select! {
                    () = shutdown.cancelled() => return None,
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        }
    }
}

type Connection = hyper::server::conn::http1::Connection<TokioIo<TcpStream>, TowerToHyperService<Router>>;

/// Serves one connection until it closes, or for at most `MAX_AGE`, or until `stop`; then lets it finish
/// the request in flight within `CLOSE_GRACE`. Holds its `permit` until then.
async fn drive(connection: Connection, peer: SocketAddr, permit: OwnedSemaphorePermit, stop: CancellationToken) {
    tokio::pin!(connection);
    let closed = tokio::select! {
        r = connection.as_mut() => Some(r),
        () = tokio::time::sleep(MAX_AGE) => None,
        () = stop.cancelled() => None,
    };
    let result = match closed {
        Some(r) => r,
        None => {
            // Finish the request in flight (an idle connection closes at once), within a bound.
            connection.as_mut().graceful_shutdown();
            match tokio::time::timeout(CLOSE_GRACE, connection).await {
                Ok(r) => r,
                Err(_) => Ok(()),
            }
        }
    };
    if let Err(e) = result {
        debug!(%peer, error = %e, "connection closed");
    }
    drop(permit);
}

/// Waits for open connections to close, for a little longer than they are given.
async fn drain(connections: tokio_util::task::TaskTracker) {
    connections.close();
    info!(open = connections.len(), "stopped accepting connections");
    if tokio::time::timeout(CLOSE_GRACE + Duration::from_secs(1), connections.wait())
        .await
        .is_err()
    {
        warn!("open connections did not close within {CLOSE_GRACE:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configured_cap_never_eats_into_the_reserve() {
        let settings = |n| ServerSettings {
            max_connections: Some(n),
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(15),
        };
        assert_eq!(Limits::resolve(&settings(999_999), Some(512)).max_connections, 384);
        assert_eq!(Limits::resolve(&settings(100), Some(512)).max_connections, 100);
        assert_eq!(Limits::resolve(&settings(999_999), None).max_connections, 999_999);
    }

    #[test]
    fn the_default_cap_keeps_a_reserve_of_descriptors() {
        assert_eq!(default_max_connections(Some(512)), 384);
        assert_eq!(default_max_connections(Some(1_024)), 768);
        assert_eq!(default_max_connections(Some(65_536)), 10_000);
        assert_eq!(default_max_connections(Some(100)), 8);
        assert_eq!(default_max_connections(None), 1_024);
    }
}
