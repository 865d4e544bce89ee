//! What the store holds, as named rows with typed ids, and the errors it returns.

use crate::types::{ChannelId, ClusterName, Mode, Person, Region, SlackUserId};
use serde::{Deserialize, Serialize};
use tracing::warn;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(i64);

        impl $name {
            pub const fn new(id: i64) -> Self {
                Self(id)
            }

            /// The stored integer.
            pub const fn get(self) -> i64 {
                self.0
            }
        }

        impl From<i64> for $name {
            fn from(id: i64) -> Self {
                Self(id)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = std::num::ParseIntError;
            fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
                s.parse().map(Self)
            }
        }
    };
}

id_type!(
    /// A failover request (`#7` in Slack).
    RequestId
);
id_type!(
    /// A run of an approved request.
    RunId
);
id_type!(
    /// A Slack message in the outbox.
    OutboxId
);

/// A stored row that could not be read: which table, which row, and why. Returned (and logged where
/// it is found), never dropped.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("stored {table} row {key} cannot be read: {reason}")]
pub struct DecodeError {
    pub table: &'static str,
    pub key: String,
    pub reason: String,
}

impl DecodeError {
    /// Builds the error and logs it (once, where the row is read).
    pub fn new(table: &'static str, key: impl std::fmt::Display, reason: impl std::fmt::Display) -> Self {
        let e = DecodeError {
            table,
            key: key.to_string(),
            reason: reason.to_string(),
        };
        warn!(table, key = %e.key, reason = %e.reason, "a stored row cannot be read");
        e
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("the store's connection thread has stopped")]
    Closed,
    /// The file cannot serve as this bot's store: why.
    #[error("{0}")]
    Unusable(String),
    /// A DynamoDB call failed (not a lost condition, which is an answer): the call and the cause.
    #[error("DynamoDB {0}")]
    DynamoDb(String),
    /// A fenced write was refused: the writer no longer holds the lease its fence names (another
    /// instance took it over). Not retried: the writer stops touching what the lease covers.
    #[error("{0}")]
    Fenced(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// One row of a listing: the row, or why it cannot be read (the listing goes on).
pub type Stored<T> = std::result::Result<T, DecodeError>;

/// A request's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestState {
    /// Recorded; the bot is reading the topology to make the plan.
    Planning,
    /// Posted, waiting for a decision.
    Pending,
    /// Approved: a run exists (or is created at the next start, after a crash in between).
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

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "planning" => RequestState::Planning,
            "pending" => RequestState::Pending,
            "approved" => RequestState::Approved,
            "denied" => RequestState::Denied,
            "expired" => RequestState::Expired,
            "cancelled" => RequestState::Cancelled,
            "rejected" => RequestState::Rejected,
            _ => return None,
        })
    }

    /// Not yet decided (it holds its cluster).
    pub fn is_open(self) -> bool {
        matches!(self, RequestState::Planning | RequestState::Pending)
    }
}

/// A request as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub id: RequestId,
    pub cluster: ClusterName,
    /// The mode asked for, or (once planned) chosen; `None` while the bot is still to choose.
    pub mode: Option<Mode>,
    pub requested_by: Person,
    pub requested_at: jiff::Timestamp,
    /// The Region asked for with `--to`, if any.
    pub to_region: Option<Region>,
    /// Where the command was typed, and its response_url (valid for 30 minutes).
    pub origin_channel: String,
    pub response_url: Option<String>,
    pub expires_at: jiff::Timestamp,
    pub state: RequestState,
    /// The plan the approver sees (JSON of `runbook::Plan`), once made: read it with `stored_plan`.
    pub plan: Option<String>,
    pub decided_by: Option<Person>,
    pub decided_at: Option<jiff::Timestamp>,
    /// Why it was rejected, or a note on the decision.
    pub note: Option<String>,
    /// Outbox id of the approval message (the thread's root), once posted.
    pub message: Option<OutboxId>,
    /// `--reason`, as typed.
    pub reason: Option<String>,
    /// `--ticket`, as typed.
    pub ticket: Option<String>,
    /// The approvals counted so far, oldest first, one per person (the last one, when enough, is
    /// also `decided_by`).
    pub approvals: Vec<Approval>,
}

/// One person's approval of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// The person, as `Person`'s text (`U…`, or `terminal:<login>`).
    pub by: Person,
    pub at: jiff::Timestamp,
}

impl Approval {
    /// A request's approvals as stored (a JSON array, oldest first).
    pub fn encode_all(approvals: &[Approval]) -> String {
        serde_json::to_string(approvals).unwrap_or_else(|_| "[]".to_owned())
    }

    /// `existing` with `by`'s approval at `at` added last; `None` if `by` is already among them. The
    /// one rule every store applies (in its own atomic way).
    pub fn added(existing: &[Approval], by: &Person, at: jiff::Timestamp) -> Option<Vec<Approval>> {
        if existing.iter().any(|a| &a.by == by) {
            return None;
        }
        let mut all = existing.to_vec();
        all.push(Approval { by: by.clone(), at });
        Some(all)
    }

    /// Stored approvals read back; `None` when they cannot be read.
    pub fn decode_all(s: &str) -> Option<Vec<Approval>> {
        serde_json::from_str(s).ok()
    }
}

impl Request {
    /// Whether `who` has approved it already.
    pub fn approved_by(&self, who: &Person) -> bool {
        self.approvals.iter().any(|a| &a.by == who)
    }

    /// The stored plan, decoded: the one place a stored plan is read. A plan that cannot be read is
    /// an error naming this request (and is logged), never `None`.
    pub fn stored_plan<P: serde::de::DeserializeOwned>(&self) -> std::result::Result<Option<P>, DecodeError> {
        self.plan
            .as_deref()
            .map(|p| serde_json::from_str(p).map_err(|e| DecodeError::new("requests", self.id, format!("plan: {e}"))))
            .transpose()
    }
}

/// What a request needs when it is first recorded.
#[derive(Debug, Clone)]
pub struct NewRequest {
    pub cluster: ClusterName,
    /// `None`: the bot proposes the mode.
    pub mode: Option<Mode>,
    pub requested_by: Person,
    pub to_region: Option<Region>,
    pub origin_channel: String,
    pub response_url: Option<String>,
    pub requested_at: jiff::Timestamp,
    pub expires_at: jiff::Timestamp,
    /// `--reason`, if given.
    pub reason: Option<String>,
    /// `--ticket`, if given.
    pub ticket: Option<String>,
}

/// A run's lifecycle. After its first mutating call a run ends only as `Succeeded`, `Failed` (AWS
/// said no to that call, or cancelled the operation, leaving things as they were) or `Abandoned` (a
/// person stopped it); in between it may be `NeedsAttention` (a deadline passed, AWS refused a later
/// call, the target is in a state AWS will not leave by itself, or its stored data cannot be read),
/// where the bot keeps watching.
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

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "running" => RunState::Running,
            "needs_attention" => RunState::NeedsAttention,
            "succeeded" => RunState::Succeeded,
            "failed" => RunState::Failed,
            "abandoned" => RunState::Abandoned,
            _ => return None,
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
    pub abandoned_by: Option<Person>,
    pub abandon_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub id: RunId,
    pub request_id: RequestId,
    pub state: RunState,
    /// The next step to execute (a `runbook::Step` name).
    pub step: String,
    /// The run's working data (JSON of `runbook::RunData`): read it with `stored_data`.
    pub data: String,
    pub started_at: jiff::Timestamp,
    pub finished_at: Option<jiff::Timestamp>,
    pub control: RunControl,
}

impl Run {
    /// The run's working data, decoded: an error naming this run (and logged) if it cannot be read.
    pub fn stored_data<D: serde::de::DeserializeOwned>(&self) -> std::result::Result<D, DecodeError> {
        serde_json::from_str(&self.data).map_err(|e| DecodeError::new("runs", self.id, format!("data: {e}")))
    }
}

/// Who holds a cluster: the request whose lock item it is.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterLock {
    pub cluster: ClusterName,
    pub holder: RequestId,
}

/// What a lease covers: one cluster's run ([`Lease::cluster_scope`]) or the outbox ([`OUTBOX_SCOPE`]).
pub type LeaseScope = str;

/// The scope of the lease whose holder delivers the outbox to Slack.
pub const OUTBOX_SCOPE: &str = "outbox";

/// A lease: which bot instance acts for a scope (executes a cluster's run, delivers the outbox), and
/// until when. `token` is the fencing token: it grows by one with every change of owner and never
/// decreases, so a write carrying an older token is refused ([`Fence`]). Expiry is judged on the
/// reader's clock (instances are assumed NTP-synchronised, skew well under the lease's length).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lease {
    pub scope: String,
    /// The holder's instance id (`name#random`, new for every process).
    pub owner: String,
    pub token: i64,
    pub expires_at: jiff::Timestamp,
}

impl Lease {
    /// The scope of cluster `cluster`'s lease: `cluster/<name>`.
    pub fn cluster_scope(cluster: &ClusterName) -> String {
        format!("cluster/{cluster}")
    }

    /// The fence a holder of this lease puts on its writes.
    pub fn fence(&self) -> Fence {
        Fence {
            scope: self.scope.clone(),
            owner: self.owner.clone(),
            token: self.token,
        }
    }
}

/// Proof of holding a lease, carried by a fenced write: the write applies only while `scope`'s lease
/// still has this owner and token (else [`StoreError::Fenced`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub scope: String,
    pub owner: String,
    pub token: i64,
}

impl Fence {
    /// The refusal of a write under this fence, naming the lease as it is now (if known).
    pub fn refused(&self, now: Option<&Lease>) -> StoreError {
        let by = match now {
            Some(l) => format!("now held by {} with token {}", l.owner, l.token),
            None => "no longer held".to_owned(),
        };
        StoreError::Fenced(format!(
            "this instance ({}) lost the lease on {} (token {}): {by}",
            self.owner, self.scope, self.token
        ))
    }
}

/// One line of a run's journal.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JournalEntry {
    pub run_id: RunId,
    pub seq: i64,
    pub at: jiff::Timestamp,
    pub step: String,
    /// `started`, `finished`, `failed`, `observed`, `interrupted`, `needs_attention`, ...
    pub event: String,
    pub detail: String,
}

/// One attempt by a user, allowed or refused.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    pub at: jiff::Timestamp,
    pub user: String,
    pub action: String,
    pub request_id: Option<RequestId>,
    pub outcome: String,
}

/// Outcome of a compare-and-set decision.
#[derive(Debug, Clone, PartialEq)]
pub enum Decided {
    /// This call made the decision; for an approval, the run it created (`None` for an approval:
    /// the decision is recorded but its run could not be created yet; create it later, idempotently).
    Won { run_id: Option<RunId> },
    /// Someone else decided first (or the request was not pending): the request as it is now.
    Lost(Box<Request>),
}

/// Outcome of a compare-and-set on a run: `Err` with the run as it is now when it did not apply.
pub type RunCas = std::result::Result<(), Box<Run>>;

/// A Slack message to queue.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    /// Messages with the same key are delivered strictly in order.
    pub ordering_key: &'a str,
    pub kind: &'a str,
    pub channel: Option<&'a ChannelId>,
    pub target: Option<OutboxId>,
    pub response_url: Option<&'a str>,
    pub body: &'a str,
    /// Makes queuing idempotent: a second message with the same key is not queued.
    pub dedup_key: Option<&'a str>,
    /// Queued by the holder of a lease (a run's messages): refused once the lease has changed hands.
    pub fence: Option<&'a Fence>,
}

/// A Slack message waiting to be delivered, or delivered.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxItem {
    pub id: OutboxId,
    /// Items with the same key are delivered strictly in order.
    pub ordering_key: String,
    /// `post`, `reply`, `update`, `respond`.
    pub kind: String,
    pub channel: Option<String>,
    /// For a reply: the item whose message is the thread's root. For an update: the item whose
    /// message is updated.
    pub target: Option<OutboxId>,
    pub response_url: Option<String>,
    /// The rendered Slack message (JSON).
    pub body: String,
    pub attempts: i64,
    pub next_attempt_at: jiff::Timestamp,
    pub delivered_ts: Option<String>,
    /// `pending`, `delivered`, `superseded`, `failed`.
    pub state: String,
    pub last_error: Option<String>,
    pub dedup_key: Option<String>,
    /// When the first attempt to deliver it started (recorded before the call): an item with this set
    /// may already be in Slack, so a channel message is looked for there before it is sent again.
    pub started_at: Option<jiff::Timestamp>,
    /// The way the last attempt took (recorded before the call): [`VIA_RESPONSE_URL`],
    /// [`VIA_EPHEMERAL`], [`VIA_DM`], or [`VIA_WEB_API`] for channel messages and updates.
    pub via: Option<String>,
}

/// An answer posted to its response_url.
pub const VIA_RESPONSE_URL: &str = "response_url";
/// An answer the response_url could no longer carry, sent with chat.postEphemeral in the channel where
/// the command was typed.
pub const VIA_EPHEMERAL: &str = "ephemeral";
/// An answer sent as a direct message (conversations.open + chat.postMessage), when neither the
/// response_url nor an ephemeral message could carry it.
pub const VIA_DM: &str = "dm";
/// A channel message or an update, through the Web API.
pub const VIA_WEB_API: &str = "web_api";

/// Who a response_url answers and where, recorded when the command or click that issued it arrived
/// (Slack: a response_url takes at most 5 posts within 30 minutes of its issue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseUrl {
    pub url: String,
    /// The Slack user id of the person who typed the command or clicked.
    pub user: String,
    /// The channel id where the command was typed (or the click's message is).
    pub channel: String,
    pub issued_at: jiff::Timestamp,
}

/// The global cluster the bot made for a configured cluster (a rebuild after a detach) while the
/// config still names another one. The config stays the source of truth: status and planning follow
/// the recorded global cluster only while the config names `replaces`, and the record is dropped at
/// start-up once the config names `global_cluster_id`. One record per cluster name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalClusterRecord {
    pub cluster: ClusterName,
    /// The global cluster's identifier (`GlobalClusterIdentifier`, e.g. `orders-global-2`).
    pub global_cluster_id: String,
    /// The rebuild request whose run made it.
    pub request: RequestId,
    pub recorded_at: jiff::Timestamp,
    /// The global cluster identifier the config named when it was recorded.
    pub replaces: String,
}

impl GlobalClusterRecord {
    /// Whether this record may replace `stored` (the one kept for the same cluster): not when `stored`
    /// was recorded later. The one rule every store applies (in its own atomic way).
    pub fn supersedes(&self, stored: &GlobalClusterRecord) -> bool {
        self.recorded_at >= stored.recorded_at
    }
}
