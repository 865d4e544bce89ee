//! `[probe]` and `[clusters.probe]`: the database probe (README, "Database probe"). A cluster with a
//! `[clusters.probe]` table is probed read-only before approval (a warning in the checklist when it
//! fails) and, after the DNS change, through the application's writer CNAME until a writable
//! connection is made (or the deadline passes and the run needs attention).

use super::{ConfigError, invalid};
use crate::types::{EngineFamily, Region};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
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
    /// `deadline_secs`: how long the probe keeps trying through the CNAME (from its step's start, right
    /// after the DNS change is verified) before the run needs attention.
    pub deadline: Duration,
}

/// `[clusters.probe]`: what to probe of one cluster's database (a plan carries it: the run probes as
/// the configuration said when the request was made).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

const DEFAULT_CONNECT_TIMEOUT_SECS: u64 = 5;
const DEFAULT_QUERY_TIMEOUT_SECS: u64 = 5;
const DEFAULT_DEADLINE_SECS: u64 = 300;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProbe {
    ca_bundle: Option<PathBuf>,
    resolver: Option<String>,
    connect_timeout_secs: Option<u64>,
    query_timeout_secs: Option<u64>,
    deadline_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClusterProbe {
    engine: String,
    secret_id: String,
    secret_region: Option<String>,
    database: String,
    heartbeat_table: Option<String>,
}

/// `[probe]`, checked; `None` when no cluster has a `[clusters.probe]` (then `[probe]` must be absent
/// too: a section that does nothing is a mistake worth saying).
pub(super) fn check(raw: Option<RawProbe>, any_cluster_probed: bool) -> Result<Option<ProbeSettings>, ConfigError> {
    let Some(raw) = raw else {
        if any_cluster_probed {
            return Err(invalid(
                "probe.ca_bundle",
                "is required when a cluster has [clusters.probe]: the PEM bundle of the RDS certificate authorities \
                 (https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem)",
            ));
        }
        return Ok(None);
    };
    if !any_cluster_probed {
        return Err(invalid(
            "probe",
            "is set but no cluster has [clusters.probe]: add one, or remove [probe]",
        ));
    }
    let ca_bundle = match raw.ca_bundle {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => {
            return Err(invalid(
                "probe.ca_bundle",
                "is required: the PEM bundle of the RDS certificate authorities \
                 (https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem)",
            ));
        }
    };
    Ok(Some(ProbeSettings {
        ca_bundle,
        resolver: raw.resolver.as_deref().map(resolver).transpose()?,
        connect_timeout: secs(
            "probe.connect_timeout_secs",
            raw.connect_timeout_secs,
            DEFAULT_CONNECT_TIMEOUT_SECS,
            1..=60,
        )?,
        query_timeout: secs(
            "probe.query_timeout_secs",
            raw.query_timeout_secs,
            DEFAULT_QUERY_TIMEOUT_SECS,
            1..=60,
        )?,
        deadline: secs(
            "probe.deadline_secs",
            raw.deadline_secs,
            DEFAULT_DEADLINE_SECS,
            10..=7200,
        )?,
    }))
}

fn secs(
    key: &str,
    v: Option<u64>,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<Duration, ConfigError> {
    let v = v.unwrap_or(default);
    if !range.contains(&v) {
        return Err(invalid(
            key,
            format!("{v} must be between {} and {} seconds", range.start(), range.end()),
        ));
    }
    Ok(Duration::from_secs(v))
}

/// `probe.resolver`: `IP` (port 53) or `IP:port` (`[IPv6]:port`).
fn resolver(v: &str) -> Result<SocketAddr, ConfigError> {
    if let Ok(ip) = v.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    v.parse::<SocketAddr>().map_err(|_| {
        invalid(
            "probe.resolver",
            format!("{v:?} is not a DNS server address (IP or IP:port, e.g. 10.0.0.2 or 10.0.0.2:53)"),
        )
    })
}

/// The `[clusters.probe]` table of cluster `at` (`clusters[0]`).
pub(super) fn check_cluster(at: &str, raw: Option<RawClusterProbe>) -> Result<Option<ClusterProbe>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    let key = |k: &str| format!("{at}.probe.{k}");
    let engine = match raw.engine.as_str() {
        "aurora-mysql" => EngineFamily::AuroraMysql,
        "aurora-postgresql" => EngineFamily::AuroraPostgresql,
        other => {
            return Err(invalid(
                key("engine"),
                format!("{other:?} is not one of \"aurora-mysql\", \"aurora-postgresql\""),
            ));
        }
    };
    if raw.secret_id.trim().is_empty() {
        return Err(invalid(
            key("secret_id"),
            "is empty: the Secrets Manager secret (name or ARN) holding {\"username\", \"password\"}",
        ));
    }
    let secret_region = raw
        .secret_region
        .map(|r| {
            Region::check(&r).map_err(|why| invalid(key("secret_region"), format!("{r:?} is not an AWS Region: {why}")))
        })
        .transpose()?;
    if raw.database.is_empty() || raw.database.len() > 63 || raw.database.contains('\0') {
        return Err(invalid(
            key("database"),
            "must be a database name of 1 to 63 characters",
        ));
    }
    let heartbeat_table = raw
        .heartbeat_table
        .map(|t| {
            if table_name(&t) {
                Ok(t)
            } else {
                Err(invalid(
                    key("heartbeat_table"),
                    format!(
                        "{t:?} is not a table name (letters, digits, _ and $, not starting with a digit, at most 63 \
                         each; optionally schema.table)"
                    ),
                ))
            }
        })
        .transpose()?;
    Ok(Some(ClusterProbe {
        engine,
        secret_id: raw.secret_id,
        secret_region,
        database: raw.database,
        heartbeat_table,
    }))
}

/// `table` or `schema.table`, each part an unquoted identifier both engines accept.
fn table_name(t: &str) -> bool {
    let part = |p: &str| {
        !p.is_empty()
            && p.len() <= 63
            && !p.as_bytes()[0].is_ascii_digit()
            && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$')
    };
    let parts: Vec<&str> = t.split('.').collect();
    (1..=2).contains(&parts.len()) && parts.iter().all(|p| part(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_plain_identifiers() {
        for ok in ["afb_heartbeat", "ops.afb_heartbeat", "t$1", "_x"] {
            assert!(table_name(ok), "{ok}");
        }
        for bad in ["", "1t", "a.b.c", "a b", "a;drop", "a\"b", ".t", "t.", "x-y"] {
            assert!(!table_name(bad), "{bad}");
        }
    }

    #[test]
    fn a_resolver_is_an_address_with_an_optional_port() {
        assert_eq!(resolver("10.0.0.2").unwrap(), "10.0.0.2:53".parse().unwrap());
        assert_eq!(resolver("127.0.0.1:5353").unwrap(), "127.0.0.1:5353".parse().unwrap());
        assert_eq!(resolver("[::1]:53").unwrap(), "[::1]:53".parse().unwrap());
        assert!(resolver("dns.example.com").is_err());
    }
}
