//! The database probe's adapter ([`crate::ports::DatabaseProbe`]): connects to an Aurora endpoint as the
//! application would, over TLS verified against the RDS endpoint name with the configured CA bundle
//! only, reads whether the server takes writes, and optionally upserts a heartbeat row. PostgreSQL
//! through tokio-postgres (`postgres`), MySQL (and MariaDB, in the tests) through mysql_async
//! (`mysql`), DNS through hickory-resolver.
//!
//! Invariants: the password (read from Secrets Manager on every probe, never cached) lives in a
//! [`Secret`] and appears in no error, log or `Debug` output; every network step is bounded by the
//! probe's timeouts (`[probe] connect_timeout_secs` for TCP + TLS + login, `query_timeout_secs` for
//! each statement and each DNS lookup); each connection is closed before the probe answers.

mod mysql;
mod postgres;
mod tls;

use crate::aws::classify;
use crate::aws::secrets::region_of_arn;
use crate::ports::{DatabaseProbe, EngineFamily, ProbeError, ProbeErrorKind, ProbeReport, ProbeTarget, Resolution};
use crate::settings::ProbeSettings;
use crate::types::Secret;
use async_trait::async_trait;
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use serde::Deserialize;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The probe of PostgreSQL and MySQL servers, built once from `[probe]`.
pub struct Prober {
    trust: tls::Trust,
    /// The resolver's name servers and options; a resolver is built from them for each lookup, so that
    /// nothing is cached between two calls of [`DatabaseProbe::resolve`].
    resolver: (ResolverConfig, ResolverOpts),
    aws: aws_config::SdkConfig,
    connect_timeout: Duration,
    query_timeout: Duration,
}

impl Prober {
    /// Reads the CA bundle (`settings.ca_bundle`; an unreadable file, or one without a certificate, is
    /// an error naming the path) and sets up the resolver: `settings.resolver` over UDP and TCP, else
    /// the system's configuration (`/etc/resolv.conf`; an error when it cannot be read). `aws` is the
    /// SDK configuration Secrets Manager is called with.
    pub fn new(settings: &ProbeSettings, aws: &aws_config::SdkConfig) -> Result<Self, String> {
        let trust = tls::Trust::load(&settings.ca_bundle)?;
        let (config, mut options) = match settings.resolver {
            Some(server) => {
                let mut name_server = NameServerConfig::udp_and_tcp(server.ip());
                for connection in &mut name_server.connections {
                    connection.port = server.port();
                }
                (
                    ResolverConfig::from_parts(None, vec![], vec![name_server]),
                    ResolverOpts::default(),
                )
            }
            None => hickory_resolver::system_conf::read_system_conf()
                .map_err(|e| format!("probe: cannot read the system's DNS configuration: {e}"))?,
        };
        options.cache_size = 0;
        options.preserve_intermediates = true;
        options.ip_strategy = hickory_resolver::config::LookupIpStrategy::Ipv4AndIpv6;
        options.timeout = settings.query_timeout;
        options.attempts = 1;
        if settings.resolver.is_some() {
            options.use_hosts_file = hickory_resolver::config::ResolveHosts::Never;
        }
        Ok(Prober {
            trust,
            resolver: (config, options),
            aws: aws.clone(),
            connect_timeout: settings.connect_timeout,
            query_timeout: settings.query_timeout,
        })
    }

    /// The secret's `username` and `password`: one `secretsmanager:GetSecretValue` (AWS Secrets Manager
    /// API reference, GetSecretValue, `SecretString`) in `target.secret_region`, else the ARN's Region,
    /// else the SDK configuration's. Errors name the secret and what is wrong with it, never a value.
    async fn credentials(&self, target: &ProbeTarget) -> Result<Credentials, ProbeError> {
        let secret_id = &target.secret_id;
        let mut builder = aws_sdk_secretsmanager::config::Builder::from(&self.aws);
        let region = target
            .secret_region
            .as_ref()
            .map(|r| r.to_string())
            .or_else(|| region_of_arn(secret_id));
        if let Some(r) = region {
            builder = builder.region(aws_sdk_secretsmanager::config::Region::new(r));
        }
        let client = aws_sdk_secretsmanager::Client::from_conf(builder.build());
        let credentials_error = |detail: String| ProbeError::new(ProbeErrorKind::Credentials, detail);
        let call = client.get_secret_value().secret_id(secret_id).send();
        let out = tokio::time::timeout(self.connect_timeout, call)
            .await
            .map_err(|_| {
                ProbeError::new(
                    ProbeErrorKind::Timeout,
                    format!(
                        "Secrets Manager did not answer GetSecretValue of {secret_id} within {}",
                        seconds(self.connect_timeout)
                    ),
                )
            })?
            .map_err(|e| {
                let e = classify(&e, "secretsmanager:GetSecretValue");
                let detail = format!("cannot read secret {secret_id}: {e}");
                // Throttled or unreachable: worth another try, not a configuration error.
                match e.is_transient() {
                    true => ProbeError::new(ProbeErrorKind::Unavailable, detail),
                    false => credentials_error(detail),
                }
            })?;
        let text = out.secret_string().ok_or_else(|| {
            credentials_error(format!(
                "secret {secret_id} has no string value (binary secrets are not supported)"
            ))
        })?;
        #[derive(Deserialize)]
        struct Json {
            username: Option<String>,
            password: Option<String>,
        }
        let parsed: Json = serde_json::from_str(text).map_err(|e| {
            credentials_error(format!(
                "secret {secret_id} is not JSON of the form {{\"username\": \"...\", \"password\": \"...\"}} (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        match (
            parsed.username.filter(|u| !u.is_empty()),
            parsed.password.filter(|p| !p.is_empty()),
        ) {
            (Some(username), Some(password)) => Ok(Credentials {
                username,
                password: Secret::new(password),
            }),
            (None, _) => Err(credentials_error(format!("secret {secret_id} has no \"username\""))),
            (_, None) => Err(credentials_error(format!("secret {secret_id} has no \"password\""))),
        }
    }

    /// Where to connect: `target.address`, else the first address `target.endpoint` resolves to.
    async fn address(&self, target: &ProbeTarget) -> Result<SocketAddr, ProbeError> {
        let ip = match target.address {
            Some(ip) => ip,
            None => {
                let resolved = self.resolve(&target.endpoint).await?;
                *resolved.addresses.first().ok_or_else(|| {
                    ProbeError::new(
                        ProbeErrorKind::Resolve,
                        format!("{} resolved to no address", target.endpoint),
                    )
                })?
            }
        };
        Ok(SocketAddr::new(ip, target.port))
    }
}

#[async_trait]
impl DatabaseProbe for Prober {
    async fn probe(&self, target: &ProbeTarget) -> Result<ProbeReport, ProbeError> {
        let credentials = self.credentials(target).await?;
        let address = self.address(target).await?;
        let connection = Connection {
            endpoint: &target.endpoint,
            address,
            database: &target.database,
            credentials: &credentials,
            secret_id: &target.secret_id,
            heartbeat: target.heartbeat.as_ref(),
            check_heartbeat: target.check_heartbeat.as_deref(),
            connect_timeout: self.connect_timeout,
            query_timeout: self.query_timeout,
        };
        let started = Instant::now();
        let found = match target.engine {
            EngineFamily::AuroraPostgresql => postgres::probe(&self.trust, &connection).await?,
            EngineFamily::AuroraMysql => mysql::probe(&self.trust, &connection).await?,
        };
        Ok(ProbeReport {
            address,
            server_version: found.server_version,
            read_only: found.read_only,
            lag_ms: found.lag_ms,
            heartbeat_written: found.heartbeat_written,
            heartbeat_problem: found.heartbeat_problem,
            elapsed: started.elapsed(),
        })
    }

    async fn resolve(&self, name: &str) -> Result<Resolution, ProbeError> {
        let (config, options) = &self.resolver;
        let resolver = TokioResolver::builder_with_config(config.clone(), TokioRuntimeProvider::default())
            .with_options(options.clone())
            .build()
            .map_err(|e| ProbeError::new(ProbeErrorKind::Resolve, format!("cannot resolve {name}: {e}")))?;
        // Relaxed: private hosted zones may hold `_` in their labels (the seed's
        // `aurora_private_hosted_zone`); fully qualified: no search domains are tried.
        let mut fqdn = hickory_resolver::proto::rr::Name::from_str_relaxed(name)
            .map_err(|e| ProbeError::new(ProbeErrorKind::Resolve, format!("{name} is not a DNS name: {e}")))?;
        fqdn.set_fqdn(true);
        let lookup = tokio::time::timeout(self.query_timeout, resolver.lookup_ip(fqdn))
            .await
            .map_err(|_| resolve_timeout(name, self.query_timeout))?
            .map_err(|e| resolve_error(name, &e, self.query_timeout))?;
        let mut resolution = Resolution::default();
        // The chain in order: from the name asked, each CNAME record whose owner is the previous target
        // (the A and the AAAA answers both carry the chain; a loop or a repeat ends it).
        let answers = lookup.as_lookup().answers();
        let mut current = normalize(name);
        while let Some(target) = answers.iter().find_map(|r| match &r.data {
            RData::CNAME(cname) if normalize(&r.name.to_string()) == current => Some(normalize(&cname.0.to_string())),
            _ => None,
        }) {
            if resolution.cnames.contains(&target) || target == normalize(name) {
                break;
            }
            resolution.cnames.push(target.clone());
            current = target;
        }
        for ip in lookup.iter() {
            if !resolution.addresses.contains(&ip) {
                resolution.addresses.push(ip);
            }
        }
        if resolution.addresses.is_empty() {
            return Err(ProbeError::new(
                ProbeErrorKind::Resolve,
                format!("{name} has no A or AAAA record"),
            ));
        }
        Ok(resolution)
    }
}

/// A DNS name as [`Resolution`] spells it: lower case, no trailing dot.
fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn resolve_timeout(name: &str, after: Duration) -> ProbeError {
    ProbeError::new(
        ProbeErrorKind::Timeout,
        format!("the DNS server did not answer for {name} within {}", seconds(after)),
    )
}

fn resolve_error(name: &str, e: &NetError, after: Duration) -> ProbeError {
    if e.is_nx_domain() {
        ProbeError::new(ProbeErrorKind::Resolve, format!("{name} does not exist (NXDOMAIN)"))
    } else if e.is_no_records_found() {
        ProbeError::new(ProbeErrorKind::Resolve, format!("{name} has no A or AAAA record"))
    } else if matches!(e, NetError::Timeout) {
        resolve_timeout(name, after)
    } else {
        ProbeError::new(ProbeErrorKind::Resolve, format!("cannot resolve {name}: {e}"))
    }
}

/// The user and password from the secret.
struct Credentials {
    username: String,
    password: Secret,
}

/// One connection to make, as the engine modules need it.
struct Connection<'a> {
    /// The RDS endpoint: the name the certificate must carry.
    endpoint: &'a str,
    address: SocketAddr,
    database: &'a str,
    credentials: &'a Credentials,
    /// For the error messages (a refused password names the secret it came from).
    secret_id: &'a str,
    heartbeat: Option<&'a crate::ports::Heartbeat>,
    /// The heartbeat table to check, read-only (before approval).
    check_heartbeat: Option<&'a str>,
    connect_timeout: Duration,
    query_timeout: Duration,
}

impl Connection<'_> {
    fn connect_timed_out(&self) -> ProbeError {
        ProbeError::new(
            ProbeErrorKind::Timeout,
            format!(
                "{} at {} did not complete the connection (TCP, TLS and login) within {}",
                self.endpoint,
                self.address,
                seconds(self.connect_timeout)
            ),
        )
    }

    fn query_timed_out(&self, what: &str) -> ProbeError {
        ProbeError::new(
            ProbeErrorKind::Timeout,
            format!(
                "{} at {} did not answer {what} within {}",
                self.endpoint,
                self.address,
                seconds(self.query_timeout)
            ),
        )
    }

    fn refused_credentials(&self, said: &str) -> ProbeError {
        ProbeError::new(
            ProbeErrorKind::Authentication,
            format!(
                "{} refused user {} with the password from secret {} ({said}): check the secret and the database user",
                self.endpoint, self.credentials.username, self.secret_id
            ),
        )
    }

    fn unreachable(&self, why: &str) -> ProbeError {
        ProbeError::new(
            ProbeErrorKind::Connect,
            format!("cannot connect to {} at {}: {why}", self.endpoint, self.address),
        )
    }
}

/// What the engine module read from the server.
struct Found {
    server_version: String,
    read_only: bool,
    lag_ms: Option<f64>,
    heartbeat_written: bool,
    heartbeat_problem: Option<String>,
}

/// `3 s`, `1.5 s`.
fn seconds(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

/// An error and its causes, `: `-separated (the error an `io::Error` wraps included, which its
/// `source()` skips); a cause already contained in the text before it is left out.
fn describe_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = String::new();
    let mut next = Some(error);
    for _ in 0..10 {
        let Some(e) = next else { break };
        let part = e.to_string();
        if !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
        next = match e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    text
}

/// The kind of a failed TCP connection: a timeout (some kernels' own) or nothing accepting it.
fn io_kind(error: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        next = e.source();
    }
    None
}

/// `schema.table` quoted with `quote` on each part (the settings already allow only letters, digits,
/// `_` and `$`; quoting keeps a reserved word usable and the name exactly as written).
fn quoted_table(table: &str, quote: char) -> String {
    table
        .split('.')
        .map(|part| {
            let doubled = part.replace(quote, &format!("{quote}{quote}"));
            format!("{quote}{doubled}{quote}")
        })
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests;
