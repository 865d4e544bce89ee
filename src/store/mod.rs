//! The bot's durable record: requests and their decisions, per-cluster locks, runs and the journal of
//! every step, an audit log of every attempt (refused ones included), the outbox of Slack messages,
//! and the signatures of Slack requests already handled.
//!
//! The rest of the bot holds an `Arc<dyn Store>`. Three implementations: [`SqliteStore`] (production,
//! the embedded default), [`DynamoDbStore`] (one table shared by bots in several Regions) and
//! [`MemoryStore`] (tests). One test suite (`suite.rs`) runs against all three.
//!
//! # The contract
//!
//! **One write, one item.** Every operation of the [`Store`] trait reads freely but writes at most ONE
//! item (a request, a cluster's lock, a run, one journal line, one audit line, one outbox item, one
//! signature, the id counter), and that write is conditional where it says so (compare-and-set). So an
//! implementation needs no transactions across items (a DynamoDB table maps each operation to one
//! `PutItem`/`UpdateItem` with a condition expression). The SQLite implementation may use a
//! transaction inside one operation; nothing relies on it. Pruning (`forget_requests_before`) is the
//! one exception: it deletes old signatures in bounded batches, unconditionally (on DynamoDB too: a
//! multi-Region strongly consistent table has no TTL).
//!
//! **Compare-and-set.** A conditional write applies entirely or not at all; of any number of
//! concurrent calls with the same condition, exactly one applies. A call that lost says so (`false`,
//! `Decided::Lost`, `Err(run as it is now)`), never an error.
//!
//! **Durable before acting.** When a write returns `Ok`, it survives a crash of the process and of
//! the machine (SQLite: WAL with `synchronous=FULL`; the commit is on disk before the call returns).
//! The bot relies on this: it queues a message before the checkpoint that makes it true, and it
//! journals and checkpoints a step (`started`) before the mutating AWS call the step makes. The one
//! exception is the replay table (`first_sighting`, `forget_requests_before`): it survives a crash of
//! the process, and a machine crash may lose its last rows (a request signed in the five minutes
//! before could then be replayed once); it is written for every Slack request, and waiting for the
//! disk there would cap the acknowledgement rate.
//!
//! **Composed operations, and what a crash between their writes leaves.** The few changes that touch
//! two items are composed, in `impl dyn Store`, of single-item operations in an order chosen so that
//! every prefix is safe, and each write is idempotent (repeating it after a crash does nothing more):
//! - `create_request`: (1) take an id from the counter, (2) take the cluster's lock item for it by a
//!   conditional write (the lock is free when absent or when its holder is closed), (3) insert the
//!   request (put-if-absent by id). A crash after (1) leaves a gap in the ids; after (2), a lock held
//!   by a request that does not exist: it blocks its cluster until the next start, where
//!   `recover_locks` releases it (conditionally, by holder). An error (not a crash) at (3) releases
//!   the lock at once.
//! - `decide` (approve): (1) pending → approved by compare-and-set on the request, (2) create its run,
//!   put-if-absent keyed by the request (one run per request). A crash between leaves an approved
//!   request without a run: it still holds its cluster, and the resume at the next start creates the
//!   run (`create_run` again is harmless) and launches it. An error at (2) does not undo the decision:
//!   `decide` says it won with no run, and the caller creates the run later.
//! - a run's change of state with a journal line (`checkpoint`, `mark_needs_attention`,
//!   `back_to_running`, `decide_resume`, `abandon_run`): the run item first, then the journal line. A
//!   crash between loses that journal line only; the run's row is the truth a resume reads. So does an
//!   error writing the line (logged): the change is reported as made, since it was. (`checkpoint`
//!   reports it, and is repeated whole: setting the same step and data again is harmless.)
//! - `expire_due`: one compare-and-set per due request; a crash part-way leaves the others pending and
//!   due, expired at the next tick.
//!
//! **Idempotency keys.** An outbox item with a `dedup_key` is queued at most once: queuing it again
//! returns the first item's id. A Slack request's signature is recorded once (`first_sighting`).
//!
//! **Nothing about a request, a run or its journal is ever deleted**; a row that cannot be read is
//! returned as a [`DecodeError`] naming its table and key (and logged), in a listing as one
//! unreadable entry among readable ones, so that one corrupt row stops only what it belongs to.

mod dynamodb;
mod group_commit;
mod memory;
mod rows;
mod schema;
mod sqlite;
#[cfg(test)]
mod suite;

pub use dynamodb::{Created, DynamoDbStore, TableKind, table as dynamodb_table};
pub use memory::MemoryStore;
pub use rows::*;
pub use schema::SCHEMA_VERSION;
pub use sqlite::{Durability, SqliteStore};

use crate::types::{ClusterName, Mode, Person, SlackUserId};
use async_trait::async_trait;
use tracing::warn;

/// The bot's persistence. See the module documentation for the contract every implementation keeps.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    // ---- ids and cluster locks ----

    /// Takes the next request id (one write on the id counter). Never returns the same id twice.
    async fn new_request_id(&self) -> Result<RequestId>;

    /// Who holds `cluster`'s lock item, if anyone (the holder may since have closed).
    async fn cluster_lock(&self, cluster: &ClusterName) -> Result<Option<RequestId>>;

    /// Every lock item (for the repair at start-up).
    async fn cluster_locks(&self) -> Result<Vec<Stored<ClusterLock>>>;

    /// Sets `cluster`'s lock holder to `holder` if it is still `expected` (`None`: no lock item);
    /// `false` if someone else changed it first.
    async fn take_cluster_lock(
        &self,
        cluster: &ClusterName,
        holder: RequestId,
        expected: Option<RequestId>,
    ) -> Result<bool>;

    /// Deletes `cluster`'s lock item if `holder` still holds it.
    async fn release_cluster_lock(&self, cluster: &ClusterName, holder: RequestId) -> Result<bool>;

    // ---- leases (which instance acts for a cluster's run, or delivers the outbox) ----

    /// Grants `scope`'s lease to `owner` until `now + ttl` when it is free (never held, or expired at or
    /// before `now`) or already `owner`'s (then it is renewed, same token); a new owner gets the token
    /// plus one (1 for the first). `None` when another owner holds it unexpired. One conditional write
    /// on the lease item.
    async fn take_lease(
        &self,
        scope: &LeaseScope,
        owner: &str,
        now: jiff::Timestamp,
        ttl: std::time::Duration,
    ) -> Result<Option<Lease>>;

    /// Extends the lease to `now + ttl` if `fence` still names its owner and token (expired or not:
    /// nobody else took it); `false` otherwise. The holder calls it right before each mutating AWS
    /// call and each Slack post.
    async fn renew_lease(&self, fence: &Fence, now: jiff::Timestamp, ttl: std::time::Duration) -> Result<bool>;

    /// Ends the lease at `now` (owner and token kept, so the next owner's token is higher) if `fence`
    /// still holds it; `false` otherwise.
    async fn release_lease(&self, fence: &Fence, now: jiff::Timestamp) -> Result<bool>;

    /// `scope`'s lease as it is, if it was ever granted.
    async fn lease(&self, scope: &LeaseScope) -> Result<Option<Lease>>;

    /// Every lease ever granted (one per scope), for `/readyz` and `/aurora status`.
    async fn leases(&self) -> Result<Vec<Lease>>;

    /// Called by a new holder of a cluster's lease before its first write to run `run`: from its
    /// return, the run's fenced writes (its item, its journal lines, the messages it queues) carrying an
    /// older token are refused. Implementations that check the lease item inside the fenced write itself
    /// (SQLite, memory) need nothing here; one without transactions across items (DynamoDB) stamps the
    /// token on the run's item and closes what an older holder had reserved and not yet written.
    async fn adopt_run(&self, _run: RunId, _fence: &Fence) -> Result<()> {
        Ok(())
    }

    // ---- recorded global clusters (one item per cluster name) ----

    /// Records `r` as its cluster's global cluster: one conditional put of the cluster's record item,
    /// applied unless the record stored for that cluster was recorded later (then nothing changes).
    /// The same record again is a no-op; a newer one replaces the older.
    async fn record_global_cluster(&self, r: &GlobalClusterRecord) -> Result<()>;

    /// The record of `cluster`, if any.
    async fn global_cluster_record(&self, cluster: &ClusterName) -> Result<Option<GlobalClusterRecord>>;

    /// Every record (one per cluster name), by cluster name; an unreadable one is listed as such.
    async fn global_cluster_records(&self) -> Result<Vec<Stored<GlobalClusterRecord>>>;

    /// Deletes `cluster`'s record if it still names `global_cluster_id` (one conditional delete), so
    /// that a newer record is never dropped by mistake; `true` if this call deleted it.
    async fn drop_global_cluster_record(&self, cluster: &ClusterName, global_cluster_id: &str) -> Result<bool>;

    // ---- requests ----

    /// Inserts request `id` in state `planning`, unless it exists (`false`).
    async fn insert_request(&self, id: RequestId, r: &NewRequest) -> Result<bool>;

    async fn request(&self, id: RequestId) -> Result<Option<Request>>;

    /// Requests in a state, oldest first.
    async fn requests_in(&self, state: RequestState) -> Result<Vec<Stored<Request>>>;

    /// The most recent requests (of one cluster, or all), newest first.
    async fn recent_requests(&self, cluster: Option<&ClusterName>, limit: usize) -> Result<Vec<Stored<Request>>>;

    /// Every request made since `since`, oldest first.
    async fn requests_since(&self, since: jiff::Timestamp) -> Result<Vec<Stored<Request>>>;

    /// Requests closed without a run (denied, cancelled: by their decision time; expired: by their
    /// expiry) since `since`, oldest first.
    async fn closed_since(&self, since: jiff::Timestamp) -> Result<Vec<Stored<Request>>>;

    /// Records the outbox id of a request's message (once; whatever the request's state).
    async fn attach_message(&self, id: RequestId, message: OutboxId) -> Result<()>;

    /// Planning → pending, with the plan, the mode it uses and the outbox id of the approval message.
    async fn mark_pending(&self, id: RequestId, plan: &str, mode: Mode, message: OutboxId) -> Result<bool>;

    /// Planning or pending → rejected, because its approval request could never be posted; returns its
    /// response_url when it was still open (so the requester can be told).
    async fn close_unposted(&self, id: RequestId, note: &str) -> Result<Option<String>>;

    /// Planning → rejected, with the reason.
    async fn mark_rejected(&self, id: RequestId, reason: &str) -> Result<bool>;

    /// Pending → approved or denied, if it has not expired at `now`; `false` otherwise. `note` (a
    /// denier's reason), when given, is recorded in the request's `note` in the same write. Approving
    /// does not create the run: see `decide`.
    async fn set_decision(
        &self,
        id: RequestId,
        approve: bool,
        by: &Person,
        now: jiff::Timestamp,
        note: Option<&str>,
    ) -> Result<bool>;

    /// Adds `by`'s approval to a request that is pending and not expired at `at`, unless `by` approved
    /// it already: the approvals after the add (oldest first), or `None` when nothing was added. Each
    /// caller sees the approvals made before its own, so of concurrent approvals exactly one sees
    /// the count reach a given number.
    async fn add_approval(&self, id: RequestId, by: &Person, at: jiff::Timestamp) -> Result<Option<Vec<Approval>>>;

    /// Planning or pending → cancelled; `false` if it was no longer open.
    async fn set_cancelled(&self, id: RequestId, by: &SlackUserId, now: jiff::Timestamp) -> Result<bool>;

    /// Pending → expired if its expiry is at or before `now`; `false` otherwise.
    async fn set_expired(&self, id: RequestId, now: jiff::Timestamp) -> Result<bool>;

    // ---- runs ----

    /// Creates the run of an approved request, unless it has one: returns the run's id either way
    /// (put-if-absent keyed by the request: one run per request).
    async fn create_run(&self, request: RequestId, first_step: &str, data: &str, now: jiff::Timestamp)
    -> Result<RunId>;

    async fn run(&self, id: RunId) -> Result<Option<Run>>;

    async fn run_of_request(&self, request: RequestId) -> Result<Option<Run>>;

    /// Runs in a state, oldest first.
    async fn runs_in(&self, state: RunState) -> Result<Vec<Stored<Run>>>;

    /// Runs finished since `since`, oldest first.
    async fn runs_finished_since(&self, since: jiff::Timestamp) -> Result<Vec<Stored<Run>>>;

    /// The request of the cluster's most recent successful run, if any.
    async fn last_success(&self, cluster: &ClusterName) -> Result<Option<Request>>;

    /// Saves an open run's next step and data (no-op once the run has ended). Fenced (see
    /// [`Fence`]): refused with [`StoreError::Fenced`] when `fence` no longer holds its lease.
    async fn set_step(&self, run: RunId, next_step: &str, data: &str, fence: Option<&Fence>) -> Result<()>;

    /// Running or needs attention → succeeded or failed; `false` if the run had already ended. Fenced.
    async fn finish_run(
        &self,
        run: RunId,
        state: RunState,
        data: &str,
        at: jiff::Timestamp,
        fence: Option<&Fence>,
    ) -> Result<bool>;

    /// Running → needs attention, with its data (`None`: kept as stored), clearing any ask to resume.
    /// Fenced.
    async fn set_needs_attention(&self, run: RunId, data: Option<&str>, fence: Option<&Fence>) -> Result<bool>;

    /// Needs attention → running, clearing any ask to resume. Fenced.
    async fn set_running(&self, run: RunId, fence: Option<&Fence>) -> Result<bool>;

    /// Records `/aurora resume` on a run that needs attention and nobody asked for yet; `at` (ms) is
    /// the token its decision must name.
    async fn set_resume_asked(&self, run: RunId, by: &SlackUserId, at: jiff::Timestamp) -> Result<bool>;

    /// Approves (a second person: never the asker) or denies the ask `token`: approved, the run is
    /// running with `resumed_by`; denied, the ask is withdrawn.
    async fn set_resume_decision(&self, run: RunId, token: i64, by: &SlackUserId, approve: bool) -> Result<bool>;

    /// Running or needs attention → abandoned, with who and why.
    async fn set_abandoned(&self, run: RunId, by: &Person, reason: &str, at: jiff::Timestamp) -> Result<bool>;

    // ---- journal ----

    /// Appends a line to a run's journal (the next sequence number of that run; one conditional put).
    /// Fenced when `fence` is given (the run's own lines; a person's decision is not).
    async fn journal(
        &self,
        run: RunId,
        at: jiff::Timestamp,
        step: &str,
        event: &str,
        detail: &str,
        fence: Option<&Fence>,
    ) -> Result<()>;

    async fn journal_of(&self, run: RunId) -> Result<Vec<JournalEntry>>;

    /// Every journal line since `since`, oldest first.
    async fn journal_since(&self, since: jiff::Timestamp) -> Result<Vec<JournalEntry>>;

    // ---- audit ----

    /// Records an attempt by a user (a command, a click), whatever its outcome.
    async fn audit(
        &self,
        at: jiff::Timestamp,
        user: &str,
        action: &str,
        request: Option<RequestId>,
        outcome: &str,
    ) -> Result<()>;

    /// Every audited attempt since `since`, oldest first.
    async fn audit_since(&self, since: jiff::Timestamp) -> Result<Vec<AuditEntry>>;

    // ---- replay protection ----

    /// Records the signature of a Slack request; `false` if it was already seen (a replay).
    async fn first_sighting(&self, signature: &str, now: jiff::Timestamp) -> Result<bool>;

    /// Forgets at most `batch` signatures recorded before `before`; returns how many. Call it again
    /// while it returns `batch`.
    async fn forget_requests_before(&self, before: jiff::Timestamp, batch: usize) -> Result<usize>;

    // ---- outbox ----

    /// Queues a Slack message and returns its id; one with a `dedup_key` already queued is not queued
    /// again (the first one's id is returned). Ids grow: per ordering key, delivery is in id order.
    async fn enqueue(&self, m: &Outgoing<'_>, now: jiff::Timestamp) -> Result<OutboxId>;

    /// The first undelivered item of every ordering key, oldest first.
    async fn outbox_heads(&self) -> Result<Vec<OutboxItem>>;

    async fn outbox_item(&self, id: OutboxId) -> Result<Option<OutboxItem>>;

    /// Is there a later undelivered update of the same message? (Then this one can be skipped.)
    async fn newer_update_pending(&self, item: &OutboxItem) -> Result<bool>;

    /// Records a delivery (with the message's `ts` when Slack gave one). Fenced by the outbox's lease,
    /// as are the other records of a delivery below.
    async fn outbox_delivered(&self, id: OutboxId, ts: Option<&str>, fence: Option<&Fence>) -> Result<()>;

    /// Marks an update as superseded by a newer one (not sent).
    async fn outbox_skipped(&self, id: OutboxId, fence: Option<&Fence>) -> Result<()>;

    /// Records a failed attempt and when to try again.
    async fn outbox_retry(
        &self,
        id: OutboxId,
        error: &str,
        next_attempt_at: jiff::Timestamp,
        fence: Option<&Fence>,
    ) -> Result<()>;

    /// Gives up on an item that can never be delivered (e.g. Slack said `channel_not_found`).
    async fn outbox_failed(&self, id: OutboxId, error: &str, fence: Option<&Fence>) -> Result<()>;

    async fn outbox_all(&self) -> Result<Vec<OutboxItem>>;

    /// How many items are not delivered yet (`pending`): the outbox depth the metrics show.
    async fn outbox_depth(&self) -> Result<u64> {
        let all = self.outbox_all().await?;
        Ok(all.iter().filter(|i| i.state == "pending").count() as u64)
    }

    /// Records, before the call, that an attempt to deliver item `id` starts now (`at`) by way `via`
    /// (`VIA_*`): the first attempt's time is kept, the way is replaced. After a crash, an item with
    /// `started_at` may already be in Slack.
    async fn outbox_attempt(&self, id: OutboxId, via: &str, at: jiff::Timestamp, fence: Option<&Fence>) -> Result<()>;

    /// How many items other than `except` were sent, or started to be sent, through `url` (`via` =
    /// `VIA_RESPONSE_URL`): Slack takes at most 5 posts per response_url.
    async fn response_url_uses(&self, url: &str, except: OutboxId) -> Result<i64>;

    /// Records who a response_url answers, where and since when; a url already recorded keeps its
    /// first record (put-if-absent).
    async fn remember_response_url(&self, r: &ResponseUrl) -> Result<()>;

    /// What was recorded of `url` by `remember_response_url`, if anything.
    async fn response_url(&self, url: &str) -> Result<Option<ResponseUrl>>;

    /// Forgets at most `batch` response_urls issued before `before`; returns how many. Call it again
    /// while it returns `batch`. (A response_url Slack issued more than 30 minutes ago is no use.)
    async fn forget_response_urls_before(&self, before: jiff::Timestamp, batch: usize) -> Result<usize>;

    /// How many transactions this process has committed and how many operations it has run, where
    /// the implementation counts them (SQLite: several operations share a commit under load, see
    /// `group_commit.rs`); `None` elsewhere. Read by `/metrics`.
    fn commit_counts(&self) -> Option<CommitCounts> {
        None
    }

    /// This store's identity: a random id made once with the store, the same for as long as its data
    /// lives (part of the key a channel message carries in its Slack metadata).
    async fn store_id(&self) -> Result<String>;
}

/// Transactions committed and operations run since the process started ([`Store::commit_counts`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitCounts {
    pub commits: u64,
    pub operations: u64,
}

/// The lease `scope` becomes when `owner` asks for it at `now`, given what it is (`current`): `None`
/// when another owner holds it unexpired. Shared by the implementations, so that they grant alike.
pub(crate) fn grant_lease(
    current: Option<&Lease>,
    scope: &LeaseScope,
    owner: &str,
    now: jiff::Timestamp,
    ttl: std::time::Duration,
) -> Option<Lease> {
    let token = match current {
        None => 1,
        Some(l) if l.owner == owner => l.token,
        Some(l) if l.expires_at <= now => l.token + 1,
        Some(_) => return None,
    };
    Some(Lease {
        scope: scope.to_owned(),
        owner: owner.to_owned(),
        token,
        expires_at: lease_end(now, ttl),
    })
}

/// `now + ttl`, saturating (a lease never ends before it starts).
pub(crate) fn lease_end(now: jiff::Timestamp, ttl: std::time::Duration) -> jiff::Timestamp {
    let ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
    jiff::Timestamp::from_millisecond(now.as_millisecond().saturating_add(ms)).unwrap_or(jiff::Timestamp::MAX)
}

/// How many times `create_request` re-reads a lock that changed under it before giving up.
const LOCK_ATTEMPTS: usize = 5;

/// The operations that touch more than one item, composed of single-item ones (see the contract).
impl<'a> dyn Store + 'a {
    /// Records a new request, unless the cluster already has an open request or an open run; then
    /// returns that request's id instead (`Err(existing)`).
    pub async fn create_request(&self, r: &NewRequest) -> Result<std::result::Result<RequestId, RequestId>> {
        let mut seen = self.cluster_lock(&r.cluster).await?;
        for _ in 0..LOCK_ATTEMPTS {
            if let Some(holder) = seen
                && self.holds_its_cluster(holder).await?
            {
                return Ok(Err(holder));
            }
            let id = self.new_request_id().await?;
            if self.take_cluster_lock(&r.cluster, id, seen).await? {
                if let Err(e) = self.insert_request(id, r).await {
                    // Not recorded: give the cluster back at once (a crash here is repaired by
                    // `recover_locks` at the next start).
                    if let Err(release) = self.release_cluster_lock(&r.cluster, id).await {
                        warn!(error = %release, cluster = %r.cluster, "cannot release the lock of a request not recorded");
                    }
                    return Err(e);
                }
                return Ok(Ok(id));
            }
            seen = self.cluster_lock(&r.cluster).await?;
        }
        Err(StoreError::Unusable(format!(
            "the lock of cluster {} kept changing while the request was being recorded",
            r.cluster
        )))
    }

    /// Whether request `id` still holds its cluster: it is undecided, or approved with its run not
    /// yet created or still open. A holder that does not exist (yet) or cannot be read holds it.
    pub async fn holds_its_cluster(&self, id: RequestId) -> Result<bool> {
        let request = match self.request(id).await {
            Ok(Some(r)) => r,
            Ok(None) | Err(StoreError::Decode(_)) => return Ok(true),
            Err(e) => return Err(e),
        };
        Ok(match request.state {
            RequestState::Planning | RequestState::Pending => true,
            RequestState::Approved => match self.run_of_request(id).await {
                Ok(Some(run)) => run.state.is_open(),
                Ok(None) | Err(StoreError::Decode(_)) => true,
                Err(e) => return Err(e),
            },
            _ => false,
        })
    }

    /// At start-up (no request is being created): releases every lock whose holder was never
    /// recorded (the bot died between taking the lock and inserting the request).
    pub async fn recover_locks(&self) -> Result<()> {
        for lock in self.cluster_locks().await? {
            let Ok(lock) = lock else { continue };
            if self.request(lock.holder).await.is_ok_and(|r| r.is_none())
                && self.release_cluster_lock(&lock.cluster, lock.holder).await?
            {
                warn!(cluster = %lock.cluster, holder = %lock.holder, "released the lock of a request never recorded");
            }
        }
        Ok(())
    }

    /// Pending → approved (then its run is created) or denied, by compare-and-set: of any number of
    /// concurrent calls, exactly one wins. An approval at or after the expiry loses. `note` (the
    /// reason a denier gave) is recorded with the decision.
    #[expect(
        clippy::too_many_arguments,
        reason = "the decision's fields and the first run's, each needed"
    )]
    pub async fn decide(
        &self,
        id: RequestId,
        approve: bool,
        by: &Person,
        now: jiff::Timestamp,
        first_step: &str,
        run_data: &str,
        note: Option<&str>,
    ) -> Result<Decided> {
        if !self.set_decision(id, approve, by, now, note).await? {
            return self.lost_request(id).await;
        }
        if !approve {
            return Ok(Decided::Won { run_id: None });
        }
        // The decision is recorded: an error creating the run does not undo it. `run_id: None` with
        // an approval tells the caller to create the run later (`create_run` is idempotent).
        match self.create_run(id, first_step, run_data, now).await {
            Ok(run_id) => Ok(Decided::Won { run_id: Some(run_id) }),
            Err(e) => {
                warn!(error = %e, request = %id, "approved, but its run could not be created yet");
                Ok(Decided::Won { run_id: None })
            }
        }
    }

    /// A journal line written after the change it tells of (already recorded in its item, which is
    /// the truth a resume reads): a failure loses only the line, and is logged, never reported as a
    /// failure of the change.
    async fn journal_after(
        &self,
        run: RunId,
        at: jiff::Timestamp,
        (step, event, detail): (&str, &str, &str),
        fence: Option<&Fence>,
    ) {
        if let Err(e) = self.journal(run, at, step, event, detail, fence).await {
            warn!(error = %e, %run, event, "the journal line of a recorded change is lost");
        }
    }

    /// Planning or pending → cancelled, by compare-and-set; `Lost` with the request as it is if it was
    /// no longer open.
    pub async fn cancel(&self, id: RequestId, by: &SlackUserId, now: jiff::Timestamp) -> Result<Decided> {
        if self.set_cancelled(id, by, now).await? {
            return Ok(Decided::Won { run_id: None });
        }
        self.lost_request(id).await
    }

    async fn lost_request(&self, id: RequestId) -> Result<Decided> {
        let now = self
            .request(id)
            .await?
            .ok_or_else(|| DecodeError::new("requests", id, "no such request"))?;
        Ok(Decided::Lost(Box::new(now)))
    }

    /// Pending → expired for every request whose expiry has passed; returns them (as they are now).
    pub async fn expire_due(&self, now: jiff::Timestamp) -> Result<Vec<Request>> {
        let mut expired = Vec::new();
        for r in self.requests_in(RequestState::Pending).await?.into_iter().flatten() {
            if r.expires_at <= now && self.set_expired(r.id, now).await? {
                expired.push(Request {
                    state: RequestState::Expired,
                    ..r
                });
            }
        }
        Ok(expired)
    }

    /// Saves a running run's next step and data, then (if given) a journal line.
    pub async fn checkpoint(
        &self,
        run: RunId,
        next_step: &str,
        data: &str,
        entry: Option<(&str, &str, &str)>,
        at: jiff::Timestamp,
        fence: Option<&Fence>,
    ) -> Result<()> {
        self.set_step(run, next_step, data, fence).await?;
        if let Some((step, event, detail)) = entry {
            self.journal(run, at, step, event, detail, fence).await?;
        }
        Ok(())
    }

    /// Running → needs attention (no-op in any other state), with a journal line; `true` if it changed.
    /// `data: None` keeps the stored data (for a run whose data cannot be read).
    pub async fn mark_needs_attention(
        &self,
        run: RunId,
        data: Option<&str>,
        entry: (&str, &str),
        at: jiff::Timestamp,
        fence: Option<&Fence>,
    ) -> Result<bool> {
        let changed = self.set_needs_attention(run, data, fence).await?;
        if changed {
            self.journal_after(run, at, (entry.0, "needs_attention", entry.1), fence)
                .await;
        }
        Ok(changed)
    }

    /// Needs attention → running, by the bot itself (a late DNS step after its re-check passed);
    /// `true` if it changed.
    pub async fn back_to_running(&self, run: RunId, at: jiff::Timestamp, fence: Option<&Fence>) -> Result<bool> {
        let changed = self.set_running(run, fence).await?;
        if changed {
            let detail = "the bot's late re-check passed: going on";
            self.journal_after(run, at, ("attention", "late_finish", detail), fence)
                .await;
        }
        Ok(changed)
    }

    async fn lost_run(&self, run: RunId) -> Result<RunCas> {
        let now = self
            .run(run)
            .await?
            .ok_or_else(|| DecodeError::new("runs", run, "no such run"))?;
        Ok(Err(Box::new(now)))
    }

    /// Records `/aurora resume` on a run that needs attention: `Err` (with the run as it is) when the
    /// run is not waiting for a person, or someone else already asked.
    pub async fn ask_resume(&self, run: RunId, by: &SlackUserId, at: jiff::Timestamp) -> Result<RunCas> {
        if self.set_resume_asked(run, by, at).await? {
            return Ok(Ok(()));
        }
        self.lost_run(run).await
    }

    /// Approves or denies the pending resume whose ask is `token`, with a journal line; `Err` with the
    /// run as it is otherwise (no such ask: an older button, or decided already).
    pub async fn decide_resume(
        &self,
        run: RunId,
        token: i64,
        by: &SlackUserId,
        approve: bool,
        at: jiff::Timestamp,
    ) -> Result<RunCas> {
        if !self.set_resume_decision(run, token, by, approve).await? {
            return self.lost_run(run).await;
        }
        let (event, detail) = if approve {
            ("resume_approved", format!("resume approved by {by}"))
        } else {
            ("resume_denied", format!("resume denied by {by}"))
        };
        self.journal_after(run, at, ("attention", event, &detail), None).await;
        Ok(Ok(()))
    }

    /// Running or needs attention → abandoned, with who and why and a journal line; `Err` with the run
    /// as it is when it had already ended.
    pub async fn abandon_run(&self, run: RunId, by: &Person, reason: &str, at: jiff::Timestamp) -> Result<RunCas> {
        if !self.set_abandoned(run, by, reason, at).await? {
            return self.lost_run(run).await;
        }
        let detail = format!("abandoned by {by}: {reason}");
        self.journal_after(run, at, ("attention", "abandoned", &detail), None)
            .await;
        Ok(Ok(()))
    }

    /// Every audited attempt, oldest first.
    pub async fn audit_log(&self) -> Result<Vec<AuditEntry>> {
        self.audit_since(jiff::Timestamp::MIN).await
    }
}
