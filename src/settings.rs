//! The bot's configuration: one TOML file, read once at start-up into typed `Settings`. Every key is
//! checked; an unknown key, a missing required key or a bad value stops start-up with a message naming
//! the key and the reason. Secrets may come from the file, the environment or Secrets Manager; that
//! resolution happens in `startup`, not here, so that parsing stays pure.

use crate::types::{ChannelId, ClusterName, Principal, Region, Secret, same_host};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub mod policy;
pub mod probe;
pub mod rebuild;
pub use policy::{Action, Notify, Policy, TicketPattern};
pub use probe::{ClusterProbe, ProbeSettings};
pub use rebuild::RebuildOverrides;

/// Why a configuration was refused: the key, and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("config key {key}: {reason}")]
    Invalid { key: String, reason: String },
    /// A value of the wrong type, a duplicated key or a syntax error, found while reading the file.
    #[error("config key {key} (line {line}): {reason}")]
    At { key: String, line: usize, reason: String },
}

fn invalid(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        reason: reason.into(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    listen: Option<String>,
    slack: RawSlack,
    approval: RawApproval,
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    runbook: RawRunbook,
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    instance: RawInstance,
    #[serde(default)]
    lease: RawLease,
    #[serde(default)]
    clusters: Vec<RawCluster>,
    /// `[probe]`.
    probe: Option<probe::RawProbe>,
}

/// `[instance]`: who this bot process is, as people see it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInstance {
    name: Option<String>,
    region: Option<String>,
}

/// `[lease]`: how long a lease lasts without renewal, how often it is renewed.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLease {
    ttl_ms: Option<u64>,
    renew_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    max_connections: Option<u64>,
    header_read_timeout_secs: Option<u64>,
    request_timeout_secs: Option<u64>,
}

// No Debug: it holds secrets as plain strings.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSlack {
    signing_secret: Option<String>,
    bot_token: Option<String>,
    secret_id: Option<String>,
    secret_region: Option<String>,
    secret_refresh_secs: Option<u64>,
    previous_secret_grace_secs: Option<u64>,
    api_url: Option<String>,
    incident_channel: String,
    team_id: Option<String>,
    app_id: Option<String>,
    enterprise_id: Option<String>,
    mode: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApproval {
    requesters: Vec<String>,
    approvers: Vec<String>,
    request_ttl_secs: Option<u64>,
    approvals_required: Option<u64>,
    require_reason: Option<bool>,
    ticket_pattern: Option<String>,
    detach: Option<policy::RawPolicy>,
    failover: Option<policy::RawPolicy>,
    switchover: Option<policy::RawPolicy>,
    rebuild: Option<policy::RawPolicy>,
}

impl RawApproval {
    /// The section's policy keys, as the first layer of every cluster's policy.
    fn rules(&self) -> policy::RawRules {
        policy::RawRules::section(
            &self.requesters,
            &self.approvers,
            self.approvals_required,
            self.require_reason,
            self.ticket_pattern.clone(),
            [
                self.detach.clone(),
                self.failover.clone(),
                self.switchover.clone(),
                self.rebuild.clone(),
            ],
        )
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    path: Option<PathBuf>,
    backend: Option<String>,
    table: Option<String>,
    region: Option<String>,
    single_instance: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRunbook {
    poll_interval_ms: Option<u64>,
    lag_limit_ms: Option<u64>,
    promote_timeout_secs: Option<u64>,
    dns_timeout_secs: Option<u64>,
    late_dns_window_secs: Option<u64>,
    rebuild_timeout_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    name: String,
    global_cluster_id: String,
    regions: Vec<String>,
    hosted_zone_id: String,
    writer_record: String,
    reader_record: String,
    record_ttl: Option<i64>,
    /// `[clusters.approval]`: this cluster's policy (see `settings::policy`).
    approval: Option<policy::RawRules>,
    /// `[clusters.notify]`.
    notify: Option<policy::RawNotify>,
    /// `[clusters.rebuild.REGION]`.
    rebuild: Option<std::collections::BTreeMap<String, rebuild::RawRebuild>>,
    /// `[clusters.probe]`.
    probe: Option<probe::RawClusterProbe>,
}

/// The whole configuration, checked.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub slack: SlackSettings,
    pub approval: ApprovalSettings,
    pub store: StoreSettings,
    pub runbook: RunbookSettings,
    pub server: ServerSettings,
    pub instance: InstanceSettings,
    pub lease: LeaseSettings,
    pub clusters: Vec<ClusterSettings>,
    /// `[probe]`: how the database probe connects; `Some` exactly when a cluster has a
    /// `[clusters.probe]`.
    pub probe: Option<ProbeSettings>,
}

/// The HTTP server's limits, which keep idle, slow or too many connections from taking the descriptors
/// and memory a run needs (see `server`).
#[derive(Debug, Clone, Copy)]
pub struct ServerSettings {
    /// Most connections served at once; `None`: derived from the descriptor limit at start-up, keeping
    /// a reserve for the bot's own connections to AWS, Slack and its database.
    pub max_connections: Option<usize>,
    /// How long a client may take to send a request's headers (the whole of them), from the moment the
    /// connection is accepted or the previous answer was sent: also how long a kept-alive connection
    /// may sit idle.
    pub header_read_timeout: Duration,
    /// How long one request may take, from its headers to the end of the answer.
    pub request_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct SlackSettings {
    pub signing_secret: Option<Secret>,
    pub bot_token: Option<Secret>,
    /// A Secrets Manager secret holding `{"signing_secret": "...", "bot_token": "..."}`.
    pub secret_id: Option<String>,
    pub secret_region: Option<Region>,
    /// `slack.secret_refresh_secs`: how often the secrets taken from `secret_id` are read again
    /// (besides an early read, at most one a minute, after a request whose signature matches no
    /// secret). Secrets given in the file or the environment are never re-read.
    pub secret_refresh: Duration,
    /// `slack.previous_secret_grace_secs`: how long a signing secret replaced by a re-read keeps
    /// verifying requests (zero: not at all). Longer rides over requests Slack signed just before the
    /// change; it also keeps a leaked secret usable that long after it was rotated.
    pub previous_secret_grace: Duration,
    /// Base URL of the Slack Web API, without a trailing slash.
    pub api_url: String,
    pub incident_channel: ChannelId,
    /// The workspace (`T…`) whose requests the bot honours; learned from `auth.test` when absent.
    pub team_id: Option<String>,
    /// The Slack app (`A…`) whose requests the bot honours; not checked when absent (the signing
    /// secret is the app's own).
    pub app_id: Option<String>,
    /// The Enterprise Grid organisation (`E…`) the workspace belongs to, when it does.
    pub enterprise_id: Option<String>,
    /// The keys of secrets given in the file with surrounding whitespace (trimmed), for the log.
    pub trimmed: Vec<&'static str>,
    /// `slack.mode`: how Slack's commands and clicks reach the bot.
    pub mode: SlackMode,
}

/// `slack.mode`: the transport Slack's slash commands and interactions arrive on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SlackMode {
    /// `"http"` (the default): Slack POSTs signed requests to `/slack/commands` and
    /// `/slack/interactions` (a public HTTPS URL in front of the bot).
    #[default]
    Http,
    /// `"socket"`: Socket Mode. The bot opens a WebSocket to Slack (`apps.connections.open` with an
    /// app-level `xapp-` token, `SLACK_APP_TOKEN` or `app_token` in the secret) and receives envelopes
    /// there; the `/slack/*` routes answer 404. Each instance opens its own connection.
    Socket,
}

/// `slack.mode`: `"http"` (default) or `"socket"`.
fn slack_mode(v: Option<String>) -> Result<SlackMode, ConfigError> {
    match v.as_deref() {
        None | Some("http") => Ok(SlackMode::Http),
        Some("socket") => Ok(SlackMode::Socket),
        Some(other) => Err(invalid(
            "slack.mode",
            format!("{other:?} is not a mode: use \"http\" (Slack POSTs to the bot) or \"socket\" (Socket Mode)"),
        )),
    }
}

/// `[approval]`: the defaults, and every cluster's resolved policy.
#[derive(Debug, Clone)]
pub struct ApprovalSettings {
    /// `approval.requesters`: the default requesters (a cluster's policy may name others).
    pub requesters: Vec<Principal>,
    /// `approval.approvers`: the default approvers (a cluster's policy may name others).
    pub approvers: Vec<Principal>,
    pub request_ttl: Duration,
    /// Per cluster and action: who may request and approve, how many approvals, reason and ticket,
    /// whom to mention.
    pub policy: policy::ApprovalPolicy,
}

#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// `store.path`: the SQLite file (with the `sqlite` backend); its name also places the admin
    /// socket (`<path>.admin.sock`) whatever the backend.
    pub path: PathBuf,
    /// `store.backend`: where the bot keeps its state.
    pub backend: StoreBackend,
}

impl StoreSettings {
    /// Whether this bot is the only one using its store: SQLite (one process per file, the file lock),
    /// or a DynamoDB table with `store.single_instance = true`. Then what an earlier process of this
    /// bot held (its leases, a cluster lock whose request it never recorded) is released at start-up
    /// instead of after its expiry; on a shared table another live bot may hold it.
    pub fn exclusive(&self) -> bool {
        match &self.backend {
            StoreBackend::Sqlite => true,
            StoreBackend::DynamoDb(d) => d.single_instance,
        }
    }
}

/// `store.backend`: `sqlite` (the default: a local file) or `dynamodb` (a table shared by bots in
/// several Regions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreBackend {
    Sqlite,
    DynamoDb(DynamoDbSettings),
}

/// The `dynamodb` backend's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamoDbSettings {
    /// `store.table`: the table's name (3 to 255 of `a-z A-Z 0-9 _ - .`), made with `create-table`.
    pub table: String,
    /// `store.region`: the Region of the replica this bot uses; `None`: the bot's own AWS Region.
    pub region: Option<Region>,
    /// `store.single_instance`: allow a global table with multi-Region eventual consistency, on the
    /// promise that only one bot uses it (default false: such a table is refused).
    pub single_instance: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct RunbookSettings {
    pub poll_interval: Duration,
    /// Above this replication lag a switchover is refused and a failover or detach warns.
    pub lag_limit: Duration,
    pub promote_timeout: Duration,
    pub dns_timeout: Duration,
    /// After a deadline passes, how long a run in `needs attention` may still finish its DNS step by
    /// itself (after a full re-check); past it, a person decides (`/aurora resume` or `abandon`).
    pub late_dns_window: Duration,
    /// How long each of a rebuild's waits (the global cluster, the secondary, its instances and
    /// replication) may take: creating a cross-Region secondary takes AWS tens of minutes.
    pub rebuild_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClusterSettings {
    pub name: ClusterName,
    pub global_cluster_id: String,
    pub regions: Vec<Region>,
    pub hosted_zone_id: String,
    pub writer_record: String,
    pub reader_record: String,
    pub record_ttl: i64,
    /// `[clusters.rebuild.REGION]`: a rebuild's settings for its new secondary per Region, each
    /// replacing the old primary's.
    pub rebuild: Vec<(Region, RebuildOverrides)>,
    /// `[clusters.probe]`: the database probe of this cluster, if any.
    pub probe: Option<ClusterProbe>,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:3000";
pub const DEFAULT_API_URL: &str = "https://slack.com/api";
pub const DEFAULT_STORE_PATH: &str = "aurora-failover-bot.db";
pub const DEFAULT_REQUEST_TTL_SECS: u64 = 900;
pub const DEFAULT_POLL_INTERVAL_MS: u64 = 2_000;
pub const DEFAULT_PROMOTE_TIMEOUT_SECS: u64 = 900;
pub const DEFAULT_DNS_TIMEOUT_SECS: u64 = 300;
pub const DEFAULT_RECORD_TTL: i64 = 60;
pub const DEFAULT_LAG_LIMIT_MS: u64 = 60_000;
pub const DEFAULT_LATE_DNS_WINDOW_SECS: u64 = 1_800;
pub const DEFAULT_REBUILD_TIMEOUT_SECS: u64 = 7_200;
pub const DEFAULT_HEADER_READ_TIMEOUT_SECS: u64 = 10;
pub const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 15;

/// Polling faster than this would hammer the AWS APIs (and count against their rate limits).
const MIN_POLL_INTERVAL_MS: u64 = 100;

fn in_range(key: &str, v: u64, lo: u64, hi: u64, unit: &str) -> Result<u64, ConfigError> {
    if (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(invalid(
            key,
            format!("{v} is out of range: must be between {lo} and {hi} {unit}"),
        ))
    }
}

fn principals(key: &str, list: &[String]) -> Result<Vec<Principal>, ConfigError> {
    if list.is_empty() {
        return Err(invalid(
            key,
            "must name at least one Slack user id (U…) or user-group id (S…)",
        ));
    }
    list.iter()
        .enumerate()
        .map(|(i, s)| {
            Principal::parse(s).ok_or_else(|| {
                invalid(
                    format!("{key}[{i}]"),
                    format!("{s:?} is not a Slack user id (U… or W…) or user-group id (S…); use ids, not names"),
                )
            })
        })
        .collect()
}

fn non_empty(key: &str, v: Option<String>) -> Result<Option<String>, ConfigError> {
    match v {
        Some(s) if s.trim().is_empty() => Err(invalid(key, "is empty; leave the key out instead")),
        other => Ok(other),
    }
}

/// Which Slack secret a value is meant to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    SigningSecret,
    BotToken,
    /// The app-level token Socket Mode connects with (`xapp-`, scope `connections:write`).
    AppToken,
}

/// Checks a Slack secret wherever it came from (file, environment, Secrets Manager): surrounding
/// whitespace is trimmed (many scripts that create secrets leave a newline; `true` says it was), and
/// what remains must be visible ASCII with no space, and a bot token must start with `xoxb-`. `Err`
/// says what is wrong without quoting the value.
pub fn clean_secret(kind: SecretKind, raw: &str) -> Result<(Secret, bool), String> {
    let value = raw.trim();
    if value.is_empty() {
        return Err("is empty (or only whitespace)".to_owned());
    }
    if let Some(bad) = value.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(format!(
            "contains {}: a secret is one word of visible ASCII characters (was it pasted with another line?)",
            match bad {
                ' ' => "a space".to_owned(),
                c if c.is_control() => format!("a control character (U+{:04X})", c as u32),
                _ => "a non-ASCII character".to_owned(),
            }
        ));
    }
    if kind == SecretKind::BotToken && !value.starts_with("xoxb-") {
        let what = match value.split('-').next().unwrap_or_default() {
            "xapp" => "an app-level token (xapp-)",
            "xoxp" => "a user token (xoxp-)",
            "xoxe.xoxb" | "xoxe" => "a refresh token",
            _ => "not a bot token",
        };
        return Err(format!(
            "is {what}: give the Bot User OAuth Token (it starts with xoxb-), from OAuth & Permissions"
        ));
    }
    if kind == SecretKind::AppToken && !value.starts_with("xapp-") {
        return Err(
            "is not an app-level token: give one that starts with xapp- (Basic Information > App-Level Tokens, \
             scope connections:write)"
                .to_owned(),
        );
    }
    Ok((Secret::new(value), value.len() != raw.len()))
}

/// An optional Slack object id: `prefix` then upper-case letters and digits (`T0123ABCD`).
fn slack_object_id(key: &str, v: Option<String>, prefix: char) -> Result<Option<String>, ConfigError> {
    match v {
        None => Ok(None),
        Some(s)
            if s.len() >= 3
                && s.starts_with(prefix)
                && s.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()) =>
        {
            Ok(Some(s))
        }
        Some(s) => Err(invalid(
            key,
            format!("{s:?} is not a Slack id: it starts with {prefix} followed by upper-case letters and digits"),
        )),
    }
}

/// A DNS name: letters, digits, `-`, `_` and dots, without spaces.
fn dns_name(key: &str, v: &str) -> Result<String, ConfigError> {
    let ok = !v.is_empty()
        && v.len() <= 255
        && v.trim_end_matches('.').split('.').all(|l| {
            !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if ok {
        Ok(v.to_owned())
    } else {
        Err(invalid(key, format!("{v:?} is not a DNS name")))
    }
}

/// A TOML error, naming the config key it is about when its position tells: "config key
/// runbook.promote_timeout_secs (line 20): invalid value: integer `-5`, expected u64". Otherwise (a
/// syntax error the key of which cannot be told) "line L, column C: message". The offending line is
/// never quoted: it may hold a secret (a misspelt `bot_token = "xoxb-…"`, say), and start-up errors end
/// up in logs; nor is a quoted value in the message of an error about a secret's key.
fn toml_error(text: &str, e: &toml::de::Error) -> ConfigError {
    let Some(span) = e.span() else {
        return ConfigError::Parse {
            path: "<config>".into(),
            message: e.message().to_owned(),
        };
    };
    let at = span.start.min(text.len());
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    match key_at(text, at) {
        Some(key) => {
            let secret = ["signing_secret", "bot_token"]
                .iter()
                .any(|s| key.rsplit('.').next() == Some(*s));
            let reason = if secret {
                without_quoted(e.message())
            } else {
                e.message().to_owned()
            };
            ConfigError::At { key, line, reason }
        }
        None => {
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            ConfigError::Parse {
                path: "<config>".into(),
                message: format!("line {line}, column {column}: {}", e.message()),
            }
        }
    }
}

/// `message` with what it quotes (between backticks or double quotes) left out.
fn without_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut open: Option<char> = None;
    for c in message.chars() {
        match open {
            Some(q) if c == q => {
                out.push('…');
                out.push(c);
                open = None;
            }
            Some(_) => {}
            None => {
                out.push(c);
                if c == '`' || c == '"' {
                    open = Some(c);
                }
            }
        }
    }
    if open.is_some() {
        out.push('…');
    }
    out
}

/// The dotted key (`runbook.promote_timeout_secs`, `clusters[0].record_ttl`, `slack` for a table's
/// header) of the TOML statement that byte `offset` of `text` falls in: the key of the key/value line
/// (or header) at or above it, under the `[table]` or `[[array]]` header above that, with the entry's
/// index for an array of tables. Values spanning lines (arrays, multi-line strings) belong to the key
/// that opens them. `None` when the statement has no key one can name safely (a line with no `=`, a
/// key that is not a bare key): its text may be a secret.
fn key_at(text: &str, offset: usize) -> Option<String> {
    // The current table's path: `Some("")` at the top, `None` after a header that cannot be read.
    let mut table = Some(String::new());
    // How many entries each array of tables (by its dotted name) has so far.
    let mut entries: std::collections::BTreeMap<String, usize> = Default::default();
    let mut value = ValueScan::default();
    let mut statement = None;
    let mut start = 0;
    for line in text.split_inclusive('\n') {
        if start > offset {
            break;
        }
        let continued = value.is_open();
        start += line.len();
        if continued {
            value.scan(line);
            continue;
        }
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix("[[") {
            table = rest.split_once("]]").and_then(|(name, _)| dotted(name)).map(|name| {
                let n = entries.entry(name.join(".")).or_insert(0);
                *n += 1;
                table_path(&name, &entries)
            });
            statement = table.clone();
        } else if let Some(rest) = trimmed.strip_prefix('[') {
            table = rest
                .split_once(']')
                .and_then(|(name, _)| dotted(name))
                .map(|name| table_path(&name, &entries));
            statement = table.clone();
        } else {
            let Some((key, rest)) = trimmed.split_once('=') else {
                statement = None;
                continue;
            };
            value.scan(rest);
            statement = table.as_deref().zip(dotted(key)).map(|(t, k)| {
                let k = k.join(".");
                if t.is_empty() { k } else { format!("{t}.{k}") }
            });
        }
    }
    statement.filter(|s| !s.is_empty())
}

/// The segments of a dotted key or table name (`a.b`, `a . "b"`), each a bare key (letters, digits, `-`
/// and `_`), possibly quoted; `None` otherwise.
fn dotted(name: &str) -> Option<Vec<&str>> {
    name.split('.')
        .map(|part| {
            let part = part.trim();
            let part = ['"', '\'']
                .iter()
                .find_map(|q| part.strip_prefix(*q).and_then(|p| p.strip_suffix(*q)))
                .unwrap_or(part);
            let bare = !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            bare.then_some(part)
        })
        .collect()
}

/// A table's path as the config's keys name it: each prefix that is an array of tables followed by
/// the index of its current entry (`clusters[1]`).
fn table_path(name: &[&str], entries: &std::collections::BTreeMap<String, usize>) -> String {
    let mut path = String::new();
    for (i, part) in name.iter().enumerate() {
        if i > 0 {
            path.push('.');
        }
        path.push_str(part);
        if let Some(n) = entries.get(&name[..=i].join(".")) {
            path.push_str(&format!("[{}]", n - 1));
        }
    }
    path
}

/// Where a TOML value scanned line by line stands at the end of a line: inside how many open arrays or
/// inline tables, and inside which multi-line string.
#[derive(Default)]
struct ValueScan {
    depth: usize,
    multi_line: Option<&'static str>,
}

impl ValueScan {
    fn is_open(&self) -> bool {
        self.depth > 0 || self.multi_line.is_some()
    }

    /// Moves over one line (or the rest of one) of a value.
    fn scan(&mut self, line: &str) {
        let b = line.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if let Some(end) = self.multi_line {
                if end == "\"\"\"" && b[i] == b'\\' {
                    i += 2;
                } else if line[i..].starts_with(end) {
                    // A closing delimiter may be followed by up to two quotes of the string's own.
                    i += 3;
                    while i < b.len() && b[i] == end.as_bytes()[0] {
                        i += 1;
                    }
                    self.multi_line = None;
                } else {
                    i += 1;
                }
                continue;
            }
            match b[i] {
                b'#' => return,
                q @ (b'"' | b'\'') => {
                    let triple = if q == b'"' { "\"\"\"" } else { "\'\'\'" };
                    if line[i..].starts_with(triple) {
                        self.multi_line = Some(triple);
                        i += 3;
                        continue;
                    }
                    i += 1;
                    while i < b.len() && b[i] != q {
                        i += if q == b'"' && b[i] == b'\\' { 2 } else { 1 };
                    }
                }
                b'[' | b'{' => self.depth += 1,
                b']' | b'}' => self.depth = self.depth.saturating_sub(1),
                _ => {}
            }
            i += 1;
        }
    }
}

/// `listen`: the address to serve on.
fn listen_address(listen: Option<&str>) -> Result<SocketAddr, ConfigError> {
    let listen = listen.unwrap_or(DEFAULT_LISTEN);
    listen
        .parse()
        .map_err(|_| invalid("listen", format!("{listen:?} is not an address such as 0.0.0.0:3000")))
}

/// An optional number of seconds: the default when absent, and within `lo..=hi`.
fn seconds(key: &str, v: Option<u64>, default: u64, lo: u64, hi: u64) -> Result<Duration, ConfigError> {
    in_range(key, v.unwrap_or(default), lo, hi, "seconds").map(Duration::from_secs)
}

/// An optional number of milliseconds: the default when absent, and within `lo..=hi`.
fn millis(key: &str, v: Option<u64>, default: u64, lo: u64, hi: u64) -> Result<Duration, ConfigError> {
    in_range(key, v.unwrap_or(default), lo, hi, "milliseconds").map(Duration::from_millis)
}

/// A Slack secret given in the file (optional: it may come from elsewhere); its key goes to `trimmed`
/// when it had surrounding whitespace.
fn file_secret(
    key: &'static str,
    kind: SecretKind,
    v: Option<String>,
    trimmed: &mut Vec<&'static str>,
) -> Result<Option<Secret>, ConfigError> {
    let Some(v) = non_empty(key, v)? else { return Ok(None) };
    let (secret, was_trimmed) = clean_secret(kind, &v).map_err(|why| invalid(key, why))?;
    if was_trimmed {
        trimmed.push(key);
    }
    Ok(Some(secret))
}

/// Default of `slack.secret_refresh_secs`: an hour.
pub const DEFAULT_SECRET_REFRESH_SECS: u64 = 3_600;
/// Default of `slack.previous_secret_grace_secs`: a minute, enough for requests signed just before
/// a rotation, short because the old secret may be the leaked one.
pub const DEFAULT_PREVIOUS_SECRET_GRACE_SECS: u64 = 60;

/// A key that only means something with `slack.secret_id`: refused without it.
fn only_with_secret_id<T>(key: &str, v: Option<T>, has_secret_id: bool) -> Result<Option<T>, ConfigError> {
    if v.is_some() && !has_secret_id {
        return Err(invalid(key, "is only used with slack.secret_id"));
    }
    Ok(v)
}

/// `slack.secret_region`: an AWS Region, and only with `slack.secret_id`.
fn secret_region(v: Option<String>, has_secret_id: bool) -> Result<Option<Region>, ConfigError> {
    let Some(r) = v else { return Ok(None) };
    let region = Region::check(&r)
        .map_err(|why| invalid("slack.secret_region", format!("{r:?} is not an AWS Region: {why}")))?;
    if !has_secret_id {
        return Err(invalid("slack.secret_region", "is only used with slack.secret_id"));
    }
    Ok(Some(region))
}

/// `slack.api_url`: an http(s) URL, kept without its trailing slash.
fn api_url(v: Option<String>) -> Result<String, ConfigError> {
    let api_url = v.unwrap_or_else(|| DEFAULT_API_URL.to_owned());
    if !(api_url.starts_with("https://") || api_url.starts_with("http://")) {
        return Err(invalid("slack.api_url", format!("{api_url:?} is not an http(s) URL")));
    }
    Ok(api_url.trim_end_matches('/').to_owned())
}

/// `slack.incident_channel`: a channel id, not a name.
fn incident_channel(v: &str) -> Result<ChannelId, ConfigError> {
    ChannelId::parse(v).ok_or_else(|| {
        invalid(
            "slack.incident_channel",
            format!("{v:?} is not a Slack channel id (C… or G…); use the id, not the name"),
        )
    })
}

impl SlackSettings {
    /// The `[slack]` section.
    fn check(s: RawSlack) -> Result<SlackSettings, ConfigError> {
        let mut trimmed = Vec::new();
        let signing_secret = file_secret(
            "slack.signing_secret",
            SecretKind::SigningSecret,
            s.signing_secret,
            &mut trimmed,
        )?;
        let bot_token = file_secret("slack.bot_token", SecretKind::BotToken, s.bot_token, &mut trimmed)?;
        let secret_id = non_empty("slack.secret_id", s.secret_id)?;
        Ok(SlackSettings {
            signing_secret,
            bot_token,
            secret_region: secret_region(s.secret_region, secret_id.is_some())?,
            secret_refresh: seconds(
                "slack.secret_refresh_secs",
                only_with_secret_id("slack.secret_refresh_secs", s.secret_refresh_secs, secret_id.is_some())?,
                DEFAULT_SECRET_REFRESH_SECS,
                5,
                7 * 86_400,
            )?,
            previous_secret_grace: seconds(
                "slack.previous_secret_grace_secs",
                only_with_secret_id(
                    "slack.previous_secret_grace_secs",
                    s.previous_secret_grace_secs,
                    secret_id.is_some(),
                )?,
                DEFAULT_PREVIOUS_SECRET_GRACE_SECS,
                0,
                86_400,
            )?,
            secret_id,
            api_url: api_url(s.api_url)?,
            team_id: slack_object_id("slack.team_id", s.team_id, 'T')?,
            app_id: slack_object_id("slack.app_id", s.app_id, 'A')?,
            enterprise_id: slack_object_id("slack.enterprise_id", s.enterprise_id, 'E')?,
            incident_channel: incident_channel(&s.incident_channel)?,
            trimmed,
            mode: slack_mode(s.mode)?,
        })
    }
}

impl ApprovalSettings {
    /// The `[approval]` section, and each cluster's `[clusters.approval]` and `[clusters.notify]`.
    fn check(a: &RawApproval, clusters: Vec<policy::ClusterRules<'_>>) -> Result<ApprovalSettings, ConfigError> {
        Ok(ApprovalSettings {
            policy: policy::check(&a.rules(), clusters)?,
            requesters: principals("approval.requesters", &a.requesters)?,
            approvers: principals("approval.approvers", &a.approvers)?,
            request_ttl: seconds(
                "approval.request_ttl_secs",
                a.request_ttl_secs,
                DEFAULT_REQUEST_TTL_SECS,
                30,
                86_400,
            )?,
        })
    }
}

impl StoreSettings {
    /// The `[store]` section.
    fn check(raw: RawStore) -> Result<StoreSettings, ConfigError> {
        let path = raw.path.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_STORE_PATH));
        if path.as_os_str().is_empty() {
            return Err(invalid("store.path", "is empty"));
        }
        let backend = match raw.backend.as_deref().unwrap_or("sqlite") {
            "sqlite" => {
                for (key, given) in [
                    ("store.table", raw.table.is_some()),
                    ("store.region", raw.region.is_some()),
                    ("store.single_instance", raw.single_instance.is_some()),
                ] {
                    if given {
                        return Err(invalid(key, "only with store.backend = \"dynamodb\""));
                    }
                }
                StoreBackend::Sqlite
            }
            "dynamodb" => StoreBackend::DynamoDb(DynamoDbSettings::check(raw)?),
            other => {
                return Err(invalid(
                    "store.backend",
                    format!("{other:?} is not a store: \"sqlite\" or \"dynamodb\""),
                ));
            }
        };
        Ok(StoreSettings { path, backend })
    }
}

/// A DynamoDB table name: 3 to 255 of `a-z A-Z 0-9 _ - .` (DynamoDB's rule); why not otherwise.
pub fn check_table_name(table: &str) -> Result<(), String> {
    let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if (3..=255).contains(&table.len()) && table.chars().all(valid) {
        return Ok(());
    }
    Err(format!(
        "{table:?} is not a DynamoDB table name (3 to 255 of a-z, A-Z, 0-9, _, - and .)"
    ))
}

impl DynamoDbSettings {
    /// The `[store]` keys of the `dynamodb` backend.
    fn check(raw: RawStore) -> Result<DynamoDbSettings, ConfigError> {
        let table = raw
            .table
            .ok_or_else(|| invalid("store.table", "required with store.backend = \"dynamodb\""))?;
        check_table_name(&table).map_err(|why| invalid("store.table", why))?;
        let region = raw
            .region
            .map(|r| {
                Region::check(&r).map_err(|why| invalid("store.region", format!("{r:?} is not an AWS Region: {why}")))
            })
            .transpose()?;
        Ok(DynamoDbSettings {
            table,
            region,
            single_instance: raw.single_instance.unwrap_or(false),
        })
    }
}

impl RunbookSettings {
    /// The `[runbook]` section.
    fn check(r: &RawRunbook) -> Result<RunbookSettings, ConfigError> {
        Ok(RunbookSettings {
            poll_interval: millis(
                "runbook.poll_interval_ms",
                r.poll_interval_ms,
                DEFAULT_POLL_INTERVAL_MS,
                MIN_POLL_INTERVAL_MS,
                60_000,
            )?,
            lag_limit: millis(
                "runbook.lag_limit_ms",
                r.lag_limit_ms,
                DEFAULT_LAG_LIMIT_MS,
                0,
                86_400_000,
            )?,
            promote_timeout: seconds(
                "runbook.promote_timeout_secs",
                r.promote_timeout_secs,
                DEFAULT_PROMOTE_TIMEOUT_SECS,
                1,
                7_200,
            )?,
            dns_timeout: seconds(
                "runbook.dns_timeout_secs",
                r.dns_timeout_secs,
                DEFAULT_DNS_TIMEOUT_SECS,
                1,
                7_200,
            )?,
            late_dns_window: seconds(
                "runbook.late_dns_window_secs",
                r.late_dns_window_secs,
                DEFAULT_LATE_DNS_WINDOW_SECS,
                0,
                86_400,
            )?,
            rebuild_timeout: seconds(
                "runbook.rebuild_timeout_secs",
                r.rebuild_timeout_secs,
                DEFAULT_REBUILD_TIMEOUT_SECS,
                60,
                86_400,
            )?,
        })
    }
}

/// How long a lease lasts without renewal, and how often its holder renews it (and others look for
/// leases to take over). `renew` is at most a third of `ttl`, so that two renewals may fail in a row
/// (a slow store) before the lease runs out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseSettings {
    pub ttl: Duration,
    pub renew: Duration,
}

impl Default for LeaseSettings {
    /// 15 s, renewed every 5 s: a takeover within 15 + 5 s of a holder's death (ARCHITECTURE.md, "Two instances").
    fn default() -> LeaseSettings {
        LeaseSettings {
            ttl: Duration::from_secs(15),
            renew: Duration::from_secs(5),
        }
    }
}

/// Who this bot process is (`[instance]`): shown in `/aurora status`, the audit and `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceSettings {
    /// `name`: by default the host's name (a container's is its id); set it to tell two instances
    /// apart (`bot-us-east-1`).
    pub name: Option<String>,
    /// `region`: the Region it runs in; by default the AWS Region its SDK is configured with.
    pub region: Option<Region>,
}

impl InstanceSettings {
    /// The `[instance]` section.
    fn check(raw: &RawInstance) -> Result<InstanceSettings, ConfigError> {
        let name = match raw.name.as_deref().map(str::trim) {
            Some("") => return Err(invalid("instance.name", "is empty")),
            Some(n)
                if n.len() > 64
                    || n.contains(['#', '`', '<', '>', '&', '*', '_', '~'])
                    || n.chars().any(char::is_control) =>
            {
                return Err(invalid(
                    "instance.name",
                    "must be at most 64 characters, without control characters or any of # ` < > & * _ ~",
                ));
            }
            other => other.map(str::to_owned),
        };
        let region = raw
            .region
            .as_deref()
            .map(|r| Region::check(r).map_err(|why| invalid("instance.region", &why)))
            .transpose()?;
        Ok(InstanceSettings { name, region })
    }
}

/// The `[lease]` section: `ttl_ms` (default 15,000) at least three times `renew_ms` (default 5,000), so
/// that two renewals in a row may fail before the lease runs out.
fn check_lease(raw: &RawLease) -> Result<LeaseSettings, ConfigError> {
    let d = LeaseSettings::default();
    let as_ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let ttl = millis("lease.ttl_ms", raw.ttl_ms, as_ms(d.ttl), 300, 600_000)?;
    let renew = millis("lease.renew_ms", raw.renew_ms, as_ms(d.renew), 100, 200_000)?;
    if renew * 3 > ttl {
        return Err(invalid(
            "lease.renew_ms",
            format!(
                "is {} ms, more than a third of lease.ttl_ms ({} ms): a lease would run out after one late renewal",
                renew.as_millis(),
                ttl.as_millis()
            ),
        ));
    }
    Ok(LeaseSettings { ttl, renew })
}

impl ServerSettings {
    /// The `[server]` section.
    fn check(sv: &RawServer) -> Result<ServerSettings, ConfigError> {
        Ok(ServerSettings {
            max_connections: sv
                .max_connections
                .map(|n| in_range("server.max_connections", n, 8, 1_000_000, "connections"))
                .transpose()?
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
            header_read_timeout: seconds(
                "server.header_read_timeout_secs",
                sv.header_read_timeout_secs,
                DEFAULT_HEADER_READ_TIMEOUT_SECS,
                1,
                300,
            )?,
            request_timeout: seconds(
                "server.request_timeout_secs",
                sv.request_timeout_secs,
                DEFAULT_REQUEST_TIMEOUT_SECS,
                1,
                300,
            )?,
        })
    }
}

/// The `[[clusters]]` entries: at least one, each checked, none sharing a name, a global cluster or a
/// record with another.
fn check_clusters(raw: Vec<RawCluster>) -> Result<Vec<ClusterSettings>, ConfigError> {
    if raw.is_empty() {
        return Err(invalid("clusters", "configure at least one [[clusters]] entry"));
    }
    let mut seen = Seen::default();
    raw.into_iter()
        .enumerate()
        .map(|(i, c)| ClusterSettings::check(i, c, &mut seen))
        .collect()
}

/// What the clusters checked so far hold, which the next one may not hold again.
#[derive(Default)]
struct Seen {
    names: BTreeSet<ClusterName>,
    /// Global cluster identifiers, lower case.
    globals: BTreeSet<String>,
    /// (hosted zone, record name in lower case without the trailing dot).
    records: BTreeSet<(String, String)>,
}

impl Seen {
    fn name(&mut self, key: String, name: &ClusterName) -> Result<(), ConfigError> {
        if !self.names.insert(name.clone()) {
            return Err(invalid(key, format!("{name} is configured twice")));
        }
        Ok(())
    }

    /// Two names for one global cluster would allow two runs on it at once.
    fn global(&mut self, key: String, gid: &str) -> Result<(), ConfigError> {
        if !self.globals.insert(gid.to_ascii_lowercase()) {
            return Err(invalid(
                key,
                format!("{gid} is already configured under another name: two names would allow two runs at once"),
            ));
        }
        Ok(())
    }

    fn record(&mut self, key: String, zone: &str, record: &str) -> Result<(), ConfigError> {
        let normalized = (zone.to_owned(), record.trim_end_matches('.').to_ascii_lowercase());
        if !self.records.insert(normalized) {
            return Err(invalid(key, format!("{record} is already managed by another cluster")));
        }
        Ok(())
    }
}

/// `clusters[i].name`.
fn cluster_name(key: String, v: &str) -> Result<ClusterName, ConfigError> {
    ClusterName::parse(v).ok_or_else(|| invalid(key, format!("{v:?} must be lower-case letters, digits, - or _")))
}

/// `clusters[i].global_cluster_id`: an RDS identifier (a letter, then letters, digits and `-`).
fn global_cluster_id(key: String, gid: &str) -> Result<(), ConfigError> {
    let ok = !gid.is_empty()
        && gid.len() <= 255
        && gid.starts_with(|ch: char| ch.is_ascii_alphabetic())
        && gid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !ok {
        return Err(invalid(key, format!("{gid:?} is not a global cluster identifier")));
    }
    Ok(())
}

/// `clusters[i].regions`: at least two AWS Regions, none twice.
fn cluster_regions(i: usize, list: &[String]) -> Result<Vec<Region>, ConfigError> {
    let mut regions = Vec::new();
    for (j, r) in list.iter().enumerate() {
        let region = Region::check(r).map_err(|why| {
            invalid(
                format!("clusters[{i}].regions[{j}]"),
                format!("{r:?} is not an AWS Region: {why}"),
            )
        })?;
        if regions.contains(&region) {
            return Err(invalid(
                format!("clusters[{i}].regions"),
                format!("{region} is listed twice"),
            ));
        }
        regions.push(region);
    }
    if regions.len() < 2 {
        return Err(invalid(
            format!("clusters[{i}].regions"),
            "a global cluster needs at least two Regions",
        ));
    }
    Ok(regions)
}

/// `clusters[i].hosted_zone_id`: Route 53's id, without `/hostedzone/`.
fn hosted_zone_id(key: String, v: &str) -> Result<(), ConfigError> {
    let ok = !v.is_empty() && v.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    if !ok {
        return Err(invalid(
            key,
            format!("{v:?} is not a hosted zone id such as Z0123456789 (without /hostedzone/)"),
        ));
    }
    Ok(())
}

/// `clusters[i].record_ttl`, in seconds.
fn record_ttl(key: String, v: Option<i64>) -> Result<i64, ConfigError> {
    let ttl = v.unwrap_or(DEFAULT_RECORD_TTL);
    if !(0..=86_400).contains(&ttl) {
        return Err(invalid(key, format!("{ttl} must be between 0 and 86400 seconds")));
    }
    Ok(ttl)
}

impl ClusterSettings {
    /// The `i`th `[[clusters]]` entry, checked against those before it (`seen`).
    fn check(i: usize, c: RawCluster, seen: &mut Seen) -> Result<ClusterSettings, ConfigError> {
        let key = |k: &str| format!("clusters[{i}].{k}");
        let name = cluster_name(key("name"), &c.name)?;
        seen.name(key("name"), &name)?;
        global_cluster_id(key("global_cluster_id"), &c.global_cluster_id)?;
        let regions = cluster_regions(i, &c.regions)?;
        hosted_zone_id(key("hosted_zone_id"), &c.hosted_zone_id)?;
        let writer_record = dns_name(&key("writer_record"), &c.writer_record)?;
        let reader_record = dns_name(&key("reader_record"), &c.reader_record)?;
        if same_host(&writer_record, &reader_record) {
            return Err(invalid(key("reader_record"), "must differ from writer_record"));
        }
        seen.global(key("global_cluster_id"), &c.global_cluster_id)?;
        seen.record(key("writer_record"), &c.hosted_zone_id, &writer_record)?;
        seen.record(key("reader_record"), &c.hosted_zone_id, &reader_record)?;
        let rebuild = rebuild::check(&format!("clusters[{i}]"), &regions, c.rebuild)?;
        let probe = probe::check_cluster(&format!("clusters[{i}]"), c.probe)?;
        Ok(ClusterSettings {
            name,
            rebuild,
            probe,
            record_ttl: record_ttl(key("record_ttl"), c.record_ttl)?,
            global_cluster_id: c.global_cluster_id.to_ascii_lowercase(),
            regions,
            hosted_zone_id: c.hosted_zone_id,
            writer_record,
            reader_record,
        })
    }
}

impl Settings {
    /// Reads and checks a config file.
    pub fn from_file(path: &Path) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Settings::from_toml(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.display().to_string(),
                message,
            },
            other => other,
        })
    }

    /// Parses and checks TOML text.
    pub fn from_toml(text: &str) -> Result<Settings, ConfigError> {
        let raw: RawSettings = toml::from_str(text).map_err(|e| toml_error(text, &e))?;
        Settings::check(raw)
    }

    /// Checks every section, in the order of the file; the first error found is the one reported.
    fn check(mut raw: RawSettings) -> Result<Settings, ConfigError> {
        let rules: Vec<_> = raw
            .clusters
            .iter_mut()
            .enumerate()
            .map(|(i, c)| (i, c.name.clone(), c.approval.take(), c.notify.take()))
            .collect();
        let cluster_rules = rules
            .iter()
            .filter_map(|(index, name, approval, notify)| {
                Some(policy::ClusterRules {
                    name: ClusterName::parse(name)?,
                    index: *index,
                    approval: approval.as_ref(),
                    notify: notify.as_ref(),
                })
            })
            .collect();
        Ok(Settings {
            listen: listen_address(raw.listen.as_deref())?,
            slack: SlackSettings::check(raw.slack)?,
            approval: ApprovalSettings::check(&raw.approval, cluster_rules)?,
            store: StoreSettings::check(raw.store)?,
            runbook: RunbookSettings::check(&raw.runbook)?,
            server: ServerSettings::check(&raw.server)?,
            instance: InstanceSettings::check(&raw.instance)?,
            lease: check_lease(&raw.lease)?,
            probe: probe::check(raw.probe, raw.clusters.iter().any(|c| c.probe.is_some()))?,
            clusters: check_clusters(raw.clusters)?,
        })
    }

    pub fn cluster(&self, name: &str) -> Option<&ClusterSettings> {
        self.clusters.iter().find(|c| c.name.as_str() == name)
    }

    pub fn cluster_names(&self) -> Vec<&str> {
        self.clusters.iter().map(|c| c.name.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const EXAMPLE: &str = include_str!("../config.example.toml");

    fn with(edit: impl Fn(&str) -> String) -> Result<Settings, ConfigError> {
        Settings::from_toml(&edit(EXAMPLE))
    }

    #[test]
    fn the_example_config_is_valid() {
        let s = Settings::from_toml(EXAMPLE).unwrap();
        assert_eq!(s.clusters[0].name.as_str(), "orders");
        assert_eq!(s.runbook.poll_interval, Duration::from_millis(2000));
        assert_eq!(s.approval.approvers.len(), 2);
    }

    #[test]
    fn an_unknown_key_is_refused_by_name() {
        let e = with(|t| t.replace("request_ttl_secs", "request_tll_secs"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("request_tll_secs"), "{e}");
    }

    #[test]
    fn a_missing_required_key_is_refused_by_name() {
        let e = with(|t| t.replace("incident_channel = \"C0INCIDENT\"", ""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("incident_channel"), "{e}");
    }

    #[test]
    fn a_typo_on_a_secret_line_does_not_print_the_secret() {
        let text = EXAMPLE.replace("api_url = ", "bot_tokn = \"xoxb-do-not-print-me\"\napi_url = ");
        let e = Settings::from_toml(&text).unwrap_err().to_string();
        assert!(e.contains("bot_tokn") && e.contains("line"), "{e}");
        assert!(!e.contains("do-not-print-me"), "{e}");
    }

    /// The message for the example config edited by replacing `from` (which it must hold) with `to`.
    fn error_for(from: &str, to: &str) -> String {
        assert!(EXAMPLE.contains(from), "example lacks {from}");
        with(|t| t.replace(from, to)).unwrap_err().to_string()
    }

    /// The line of the example config that holds `s`.
    fn line_of(s: &str) -> usize {
        EXAMPLE[..EXAMPLE.find(s).unwrap()].matches('\n').count() + 1
    }

    #[test]
    fn a_value_of_the_wrong_type_is_refused_with_the_key_and_its_line() {
        let runbook = line_of("promote_timeout_secs = 900");
        let ttl = line_of("record_ttl = 1");
        for (from, to, expected) in [
            (
                "promote_timeout_secs = 900",
                "promote_timeout_secs = -5",
                format!(
                    "config key runbook.promote_timeout_secs (line {runbook}): invalid value: integer `-5`, expected u64"
                ),
            ),
            (
                "promote_timeout_secs = 900",
                "promote_timeout_secs = \"900\"",
                format!("config key runbook.promote_timeout_secs (line {runbook}): invalid type: string"),
            ),
            (
                "record_ttl = 1",
                "record_ttl = \"60\"",
                format!("config key clusters[0].record_ttl (line {ttl}): invalid type: string \"60\", expected i64"),
            ),
            (
                "record_ttl = 1",
                "record_ttl = -1.5",
                format!("config key clusters[0].record_ttl (line {ttl}): invalid type: floating point"),
            ),
        ] {
            let e = error_for(from, to);
            assert!(e.starts_with(&expected), "{to}: {e}");
        }
    }

    #[test]
    fn a_wrong_value_in_a_second_cluster_names_that_cluster() {
        let second = EXAMPLE[EXAMPLE.find("[[clusters]]").unwrap()..]
            .replace("name = \"orders\"", "name = \"billing\"")
            .replace("record_ttl = 1", "record_ttl = -5")
            .replace(
                "regions = [\"us-east-1\", \"us-west-2\"]",
                "regions = [\n  \"us-east-1\",\n  2,\n]",
            );
        let e = Settings::from_toml(&format!("{EXAMPLE}\n{second}"))
            .unwrap_err()
            .to_string();
        // The `2` is on the line after `regions = [`, and belongs to it.
        let line = EXAMPLE.lines().count() + 1 + second.lines().position(|l| l.trim() == "2,").unwrap() + 1;
        assert!(
            e.starts_with(&format!(
                "config key clusters[1].regions (line {line}): invalid type: integer `2`"
            )),
            "{e}"
        );
        let second = second
            .replace("  2,", "  \"us-west-2\",")
            .replace("orders-global", "billing-global")
            .replace("aurora", "billing");
        let e = Settings::from_toml(&format!("{EXAMPLE}\n{second}"))
            .unwrap_err()
            .to_string();
        // record_ttl is signed: a negative one is refused by its range check, which names the key too.
        assert_eq!(
            e,
            "config key clusters[1].record_ttl: -5 must be between 0 and 86400 seconds"
        );
        let second = second.replace("record_ttl = -5", "record_ttl = \"5\"");
        let e = Settings::from_toml(&format!("{EXAMPLE}\n{second}"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("config key clusters[1].record_ttl (line ") && e.contains("invalid type: string"),
            "{e}"
        );
    }

    #[test]
    fn a_duplicated_key_is_refused_with_the_key_and_its_line() {
        let listen = line_of("listen = ") + 1;
        let dns = line_of("dns_timeout_secs = 300") + 1;
        let ttl = line_of("record_ttl = 1") + 1;
        let runbook = line_of("[runbook]") + 1;
        for (from, to, expected) in [
            (
                "listen = \"127.0.0.1:3000\"",
                "listen = \"127.0.0.1:3000\"\nlisten = \"0.0.0.0:3000\"",
                format!("config key listen (line {listen}): duplicate key"),
            ),
            (
                "dns_timeout_secs = 300",
                "dns_timeout_secs = 300\ndns_timeout_secs = 60",
                format!("config key runbook.dns_timeout_secs (line {dns}): duplicate key"),
            ),
            (
                "record_ttl = 1",
                "record_ttl = 1\nrecord_ttl = 2",
                format!("config key clusters[0].record_ttl (line {ttl}): duplicate key"),
            ),
            (
                "[runbook]",
                "[runbook]\n[runbook]",
                format!("config key runbook (line {runbook}): duplicate key"),
            ),
        ] {
            let e = error_for(from, to);
            assert_eq!(e, expected, "{to}");
        }
    }

    #[test]
    fn a_key_is_found_past_multi_line_values_comments_and_strings() {
        let text = "a = [\n  1, # ]\n  \"]\",\n]\ns = \"\"\"\n[not.a.header]\nx = 1\n\"\"\"\n[t]\nb.c = { d = [\n 1 ] }\n\
                    [[arr]]\n[[arr]]\n[arr.sub]\n'q' = 1\n[bad header\nk = 1\n";
        let at = |needle: &str| key_at(text, text.find(needle).unwrap());
        assert_eq!(at("\"]\""), Some("a".to_owned()));
        assert_eq!(at("x = 1"), Some("s".to_owned()));
        assert_eq!(at(" 1 ] }"), Some("t.b.c".to_owned()));
        assert_eq!(at("[arr.sub]"), Some("arr[1].sub".to_owned()));
        assert_eq!(at("'q'"), Some("arr[1].sub.q".to_owned()));
        assert_eq!(at("k = 1"), None);
        assert_eq!(key_at("# only a comment\n", 3), None);
    }

    #[test]
    fn a_type_error_on_a_secret_line_names_the_key_but_not_the_value() {
        let e = error_for("api_url = ", "signing_secret = 5\napi_url = ");
        assert!(e.starts_with("config key slack.signing_secret (line "), "{e}");
        assert!(e.contains("invalid type: integer") && !e.contains('5'), "{e}");
        for bad in [
            "bot_token \"xoxb-do-not-print-me\"\n",
            "bot_token = xoxb-do-not-print-me\n",
            "bot_token = \"xoxb-do-not-print-me\n",
            "bot_token = [\"xoxb-do-not-print-me\"]\n",
            "xoxb-do-not-print-me\n",
        ] {
            let e = error_for("api_url = ", &format!("{bad}api_url = "));
            assert!(!e.contains("do-not-print-me"), "{bad}: {e}");
        }
    }

    #[test]
    fn secrets_are_trimmed_and_malformed_ones_are_refused_without_quoting_them() {
        let (s, trimmed) = clean_secret(SecretKind::BotToken, "  xoxb-1-2-abc\r\n").unwrap();
        assert_eq!((s.expose(), trimmed), ("xoxb-1-2-abc", true));
        let (_, trimmed) = clean_secret(SecretKind::SigningSecret, "8f742231b10e8888abcd99yyyzzz85a5").unwrap();
        assert!(!trimmed);
        for (kind, bad, why) in [
            (SecretKind::BotToken, "xoxb-1\nxoxb-2", "control character"),
            (SecretKind::BotToken, "xoxb-1 2", "a space"),
            (SecretKind::BotToken, "xapp-1-A1-2-f00", "app-level token"),
            (SecretKind::BotToken, "xoxp-1-2", "user token"),
            (SecretKind::SigningSecret, "\t\n", "empty"),
            (SecretKind::SigningSecret, "abcé", "non-ASCII"),
            (SecretKind::AppToken, "xoxb-1-2-abc", "not an app-level token"),
        ] {
            let e = clean_secret(kind, bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
            assert!(bad.trim().is_empty() || !e.contains(bad.trim()), "{e} quotes the value");
        }
    }

    #[test]
    fn the_slack_mode_is_http_unless_socket_is_asked_for() {
        assert_eq!(Settings::from_toml(EXAMPLE).unwrap().slack.mode, SlackMode::Http);
        let socket = EXAMPLE.replace("# mode = \"http\"", "mode = \"socket\"");
        assert_eq!(Settings::from_toml(&socket).unwrap().slack.mode, SlackMode::Socket);
        let e = Settings::from_toml(&EXAMPLE.replace("# mode = \"http\"", "mode = \"websocket\""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("slack.mode") && e.contains("\"socket\""), "{e}");
        let (token, _) = clean_secret(SecretKind::AppToken, "xapp-1-A1-2-f00\n").unwrap();
        assert_eq!(token.expose(), "xapp-1-A1-2-f00");
    }

    #[test]
    fn two_names_for_one_global_cluster_or_one_record_are_refused() {
        let second =
            EXAMPLE[EXAMPLE.find("[[clusters]]").unwrap()..].replace("name = \"orders\"", "name = \"orders2\"");
        let e = Settings::from_toml(&format!("{EXAMPLE}\n{second}"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("clusters[1].global_cluster_id"), "{e}");
        let third = second.replace("orders-global", "other-global");
        let e = Settings::from_toml(&format!("{EXAMPLE}\n{third}"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("clusters[1].writer_record") && e.contains("already managed"),
            "{e}"
        );
    }

    #[test]
    fn bad_values_are_refused_with_the_key_and_the_reason() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "poll_interval_ms = 2000",
                "poll_interval_ms = 0",
                "runbook.poll_interval_ms",
            ),
            (
                "renew_ms = 5000",
                "renew_ms = 6000",
                "lease.renew_ms: is 6000 ms, more than a third of lease.ttl_ms",
            ),
            ("ttl_ms = 15000", "ttl_ms = 100", "lease.ttl_ms"),
            ("# name = \"bot-us-east-1\"", "name = \"\"", "instance.name: is empty"),
            (
                "# name = \"bot-us-east-1\"",
                "name = \"bot#1\"",
                "instance.name: must be",
            ),
            ("# region = \"us-east-1\"", "region = \"us-est-1\"", "instance.region"),
            ("\"U0AAAA\", \"S0ONCALL\"", "\"alice\"", "approval.requesters[0]"),
            ("\"us-east-1\", \"us-west-2\"", "\"us-east-1\"", "clusters[0].regions"),
            (
                "\"us-east-1\", \"us-west-2\"",
                "\"us-east-1\", \"mars\"",
                "clusters[0].regions[1]",
            ),
            (
                "\"us-east-1\", \"us-west-2\"",
                "\"us-east-1\", \"us-wset-2\"",
                "clusters[0].regions[1]: \"us-wset-2\" is not an AWS Region: \"wset\" is not a direction",
            ),
            (
                "# secret_region = \"us-east-1\"",
                "secret_id = \"s\"\nsecret_region = \"eu-wset-1\"",
                "slack.secret_region",
            ),
            (
                "# secret_refresh_secs = 3600",
                "secret_refresh_secs = 60",
                "slack.secret_refresh_secs: is only used with slack.secret_id",
            ),
            (
                "# secret_refresh_secs = 3600",
                "secret_id = \"s\"\nsecret_refresh_secs = 1",
                "slack.secret_refresh_secs",
            ),
            (
                "# previous_secret_grace_secs = 60",
                "secret_id = \"s\"\nprevious_secret_grace_secs = 90000",
                "slack.previous_secret_grace_secs",
            ),
            (
                "incident_channel = \"C0INCIDENT\"",
                "incident_channel = \"#incidents\"",
                "slack.incident_channel",
            ),
            ("listen = \"127.0.0.1:3000\"", "listen = \"localhost\"", "listen"),
            (
                "hosted_zone_id = \"Z0123456789\"",
                "hosted_zone_id = \"/hostedzone/Z1\"",
                "clusters[0].hosted_zone_id",
            ),
            (
                "header_read_timeout_secs = 10",
                "header_read_timeout_secs = 0",
                "server.header_read_timeout_secs",
            ),
            (
                "late_dns_window_secs = 1800",
                "late_dns_window_secs = 90000",
                "runbook.late_dns_window_secs",
            ),
            ("# team_id = \"T0123456789\"", "team_id = \"acme\"", "slack.team_id"),
            (
                "# max_connections = 384",
                "max_connections = 2",
                "server.max_connections",
            ),
        ];
        for (from, to, key) in cases {
            assert!(EXAMPLE.contains(from), "example lacks {from}");
            let e = with(|t| t.replace(from, to)).unwrap_err().to_string();
            assert!(e.contains(key), "{to}: {e}");
        }
    }

    /// The example config with a `[clusters.probe]` table (`cluster`) and a `[probe]` table (`global`)
    /// appended (either left out when empty).
    fn probed(cluster: &str, global: &str) -> Result<Settings, ConfigError> {
        with(|t| {
            let mut t = t.to_owned();
            if !cluster.is_empty() {
                t.push_str(&format!("\n[clusters.probe]\n{cluster}\n"));
            }
            if !global.is_empty() {
                t.push_str(&format!("\n[probe]\n{global}\n"));
            }
            t
        })
    }

    const PROBE: &str = "engine = \"aurora-postgresql\"\nsecret_id = \"orders/probe\"\ndatabase = \"orders\"";

    #[test]
    fn a_probe_is_read_with_its_defaults() {
        let s = probed(PROBE, "ca_bundle = \"/etc/rds.pem\"").unwrap();
        let p = s.probe.unwrap();
        assert_eq!(p.ca_bundle, PathBuf::from("/etc/rds.pem"));
        assert_eq!(p.resolver, None);
        assert_eq!(
            (p.connect_timeout, p.query_timeout, p.deadline),
            (Duration::from_secs(5), Duration::from_secs(5), Duration::from_secs(300))
        );
        let c = s.clusters[0].probe.clone().unwrap();
        assert_eq!(c.engine, crate::types::EngineFamily::AuroraPostgresql);
        assert_eq!((c.secret_id.as_str(), c.database.as_str()), ("orders/probe", "orders"));
        assert_eq!((c.secret_region, c.heartbeat_table), (None, None));
        let s = probed(
            &format!("{PROBE}\nheartbeat_table = \"ops.afb_heartbeat\"\nsecret_region = \"eu-west-1\""),
            "ca_bundle = \"/etc/rds.pem\"\nresolver = \"10.0.0.2\"\ndeadline_secs = 60",
        )
        .unwrap();
        assert_eq!(s.probe.unwrap().resolver, Some("10.0.0.2:53".parse().unwrap()));
        assert_eq!(
            s.clusters[0].probe.clone().unwrap().heartbeat_table.as_deref(),
            Some("ops.afb_heartbeat")
        );
        // The example itself has none (its probe keys are comments).
        let s = with(|t| t.to_owned()).unwrap();
        assert!(s.probe.is_none() && s.clusters.iter().all(|c| c.probe.is_none()));
    }

    #[test]
    fn bad_probe_settings_are_refused_with_the_key_and_the_reason() {
        let ca = "ca_bundle = \"/etc/rds.pem\"";
        let cases: &[(String, &str, &str)] = &[
            (
                PROBE.to_owned(),
                "",
                "probe.ca_bundle: is required when a cluster has [clusters.probe]",
            ),
            (String::new(), ca, "probe: is set but no cluster has [clusters.probe]"),
            (
                PROBE.replace("aurora-postgresql", "postgres"),
                ca,
                "clusters[0].probe.engine: \"postgres\" is not one of",
            ),
            (
                PROBE.replace("orders/probe", " "),
                ca,
                "clusters[0].probe.secret_id: is empty",
            ),
            (
                PROBE.replace("database = \"orders\"", "database = \"\""),
                ca,
                "clusters[0].probe.database",
            ),
            (
                format!("{PROBE}\nheartbeat_table = \"t; drop table x\""),
                ca,
                "clusters[0].probe.heartbeat_table: \"t; drop table x\" is not a table name",
            ),
            (
                format!("{PROBE}\nsecret_region = \"mars-1\""),
                ca,
                "clusters[0].probe.secret_region",
            ),
            (format!("{PROBE}\npassword = \"x\""), ca, "unknown field `password`"),
            (PROBE.to_owned(), "ca_bundle = \"\"", "probe.ca_bundle: is required"),
            (
                PROBE.to_owned(),
                "ca_bundle = \"/x\"\nresolver = \"dns.internal\"",
                "probe.resolver: \"dns.internal\" is not a DNS server address",
            ),
            (
                PROBE.to_owned(),
                "ca_bundle = \"/x\"\ndeadline_secs = 1",
                "probe.deadline_secs: 1 must be between 10 and 7200 seconds",
            ),
            (
                PROBE.to_owned(),
                "ca_bundle = \"/x\"\nconnect_timeout_secs = 0",
                "probe.connect_timeout_secs",
            ),
        ];
        for (cluster, global, expected) in cases {
            let e = probed(cluster, global).unwrap_err().to_string();
            assert!(e.contains(expected), "{cluster} / {global}: {e}");
        }
    }

    /// The example config with `[store]`'s `path` line replaced by `keys`.
    fn store(keys: &str) -> Result<Settings, ConfigError> {
        with(|t| t.replace("path = \"aurora-failover-bot.db\"", keys))
    }

    #[test]
    fn the_store_is_sqlite_unless_dynamodb_is_chosen_with_a_table() {
        assert_eq!(
            Settings::from_toml(EXAMPLE).unwrap().store.backend,
            StoreBackend::Sqlite
        );
        let s = store("backend = \"dynamodb\"\ntable = \"afb-state\"\nregion = \"us-west-2\"").unwrap();
        assert_eq!(
            s.store.backend,
            StoreBackend::DynamoDb(DynamoDbSettings {
                table: "afb-state".into(),
                region: Region::parse("us-west-2"),
                single_instance: false,
            })
        );
        let s = store("backend = \"dynamodb\"\ntable = \"afb-state\"\nsingle_instance = true").unwrap();
        assert!(matches!(s.store.backend, StoreBackend::DynamoDb(d) if d.single_instance && d.region.is_none()));
    }

    #[test]
    fn a_bad_store_combination_is_refused_with_its_key_and_reason() {
        for (keys, expected) in [
            (
                "backend = \"dynamodb\"",
                "config key store.table: required with store.backend = \"dynamodb\"",
            ),
            (
                "backend = \"postgres\"",
                "config key store.backend: \"postgres\" is not a store",
            ),
            (
                "table = \"afb\"",
                "config key store.table: only with store.backend = \"dynamodb\"",
            ),
            (
                "single_instance = true",
                "config key store.single_instance: only with store.backend",
            ),
            (
                "backend = \"dynamodb\"\ntable = \"a b\"",
                "config key store.table: \"a b\" is not a DynamoDB table name",
            ),
            (
                "backend = \"dynamodb\"\ntable = \"afb\"\nregion = \"us-wset-2\"",
                "config key store.region: \"us-wset-2\" is not an AWS Region",
            ),
        ] {
            let e = store(keys).unwrap_err().to_string();
            assert!(e.contains(expected), "{keys}: {e}");
        }
    }
}
