//! `[probe]` and `[clusters.probe]`: the database probe (README, "Database probe"). A cluster with a
//! `[clusters.probe]` table is probed read-only before approval (a warning in the checklist when it
//! fails) and, after the DNS change, through the application's writer CNAME until a writable
//! connection is made (or the deadline passes and the run needs attention).

use crate::types::{EngineFamily, Region};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// `[probe]`: how the probe connects, for every cluster that has a `[clusters.probe]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSettings {
    /// `ca_bundle`: the PEM file of the certificate authorities a server's certificate must chain to
    /// (the RDS bundle, `global-bundle.pem`); nothing else is trusted.
    pub ca_bundle: PathBuf,
    /// `resolver`: a DNS server (`IP:port`) to resolve the application's CNAME with; `None`: the
    /// system's resolver (`/etc/resolv.conf`).
    pub resolver: Option<SocketAddr>,
    /// `connect_timeout_secs`: how long one connection (TCP, TLS and the login) may take.
    pub connect_timeout: Duration,
    /// `query_timeout_secs`: how long each statement may take.
    pub query_timeout: Duration,
    /// `deadline_secs`: how long after the DNS change the probe keeps trying through the CNAME before
    /// the run needs attention.
    pub deadline: Duration,
}

/// `[clusters.probe]`: what to probe of one cluster's database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterProbe {
    /// `engine`: `aurora-mysql` or `aurora-postgresql`.
    pub engine: EngineFamily,
    /// `secret_id`: the Secrets Manager secret (name or ARN) holding `{"username", "password"}`.
    pub secret_id: String,
    /// `secret_region`: the secret's Region (default: the ARN's, else the bot's own).
    pub secret_region: Option<Region>,
    /// `database`: the database to connect to.
    pub database: String,
    /// `heartbeat_table`: opt-in; a table that must already exist, where the probe upserts one row per
    /// bot instance after the failover.
    pub heartbeat_table: Option<String>,
}
