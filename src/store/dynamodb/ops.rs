//! The [`Store`] operations on the table: each writes at most one item (see the module documentation
//! of `dynamodb` and of `store`).

use super::DynamoDbStore;
use super::call::{Change, Query, Sk};
use super::item::{self, Item, n, s};
use super::keys::{self, BY_GROUP, BY_STATE, BY_TIME};
use crate::store::rows::*;
use crate::store::{Result, Store, StoreError};
use crate::types::{ClusterName, Mode, Person, SlackUserId};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;

/// How many journal lines `journal` tries to append after another writer took its sequence number.
const JOURNAL_ATTEMPTS: usize = 20;

fn decode_err(e: DecodeError) -> StoreError {
    StoreError::Decode(e)
}

/// A request's change of state, with its index entry.
/// How many times an approval is tried against approvals that keep changing under it (one more
/// approver than a policy may require).
const APPROVAL_ROUNDS: usize = 12;

fn request_to(change: Change, state: RequestState) -> Change {
    change
        .set("state", s(state.as_str()))
        .set(BY_STATE.pk, s(keys::request_state(state.as_str())))
}

/// A run's change of state, with its index entry.
fn run_to(change: Change, state: RunState) -> Change {
    change
        .set("state", s(state.as_str()))
        .set(BY_STATE.pk, s(keys::run_state(state.as_str())))
}

/// A run's ending: the state, the time, and its entry among the ended runs.
fn run_ends(change: Change, id: RunId, state: RunState, at: jiff::Timestamp) -> Change {
    run_to(change, state).set("finished_at", n(at.as_millisecond())).index(
        BY_TIME,
        keys::ENDED_RUNS.into(),
        format!("{}#{}", keys::ms(at), keys::pad(id.get())),
    )
}

const OPEN_RUN: &str = "#state IN (:running, :attention)";

fn open_run(change: Change) -> Change {
    change
        .value(":running", s(RunState::Running.as_str()))
        .value(":attention", s(RunState::NeedsAttention.as_str()))
}

impl DynamoDbStore {
    async fn item(&self, key: &keys::Key) -> Result<Option<Item>> {
        self.table.get(key).await
    }

    async fn update_request(&self, id: RequestId, change: Change) -> Result<Option<Item>> {
        self.table.update(&keys::request(id), change).await
    }

    async fn update_run(&self, id: RunId, change: Change) -> Result<bool> {
        Ok(self.table.update(&keys::run(id), change).await?.is_some())
    }

    /// A write of run `run`'s item under `fence` (see `lease.rs`): `Fenced` when the lease changed
    /// hands or a newer holder stamped the run; otherwise whether the change's condition held.
    async fn fenced_run(&self, run: RunId, change: Change, fence: Option<&Fence>) -> Result<bool> {
        self.check_fence(fence).await?;
        if self.update_run(run, super::lease::fenced(change, fence)).await? {
            return Ok(true);
        }
        self.fence_refusal(run, fence).await?;
        Ok(false)
    }

    /// A journal number turned out to be taken: `Fenced` if by a newer holder's tombstone; otherwise
    /// (a line written without a reservation) the run's `next_seq` catches up before the next try.
    async fn journal_taken(&self, run: RunId, seq: i64, fence: Option<&Fence>) -> Result<()> {
        let Some(f) = fence else { return Ok(()) };
        let line = self.item(&keys::journal(run, seq)).await?;
        if line.as_ref().is_some_and(|l| l.contains_key("tombstone")) {
            return Err(f.refused(self.lease_now(&f.scope).await?.as_ref()));
        }
        let last = self.next_seq(run).await? - 1;
        self.catch_up_seq(run, last).await
    }

    /// Updates outbox item `id`. Under the outbox's `fence` the item keeps the token of the last holder
    /// that recorded a delivery of it, and a write with an older token is refused.
    async fn update_outbox(&self, id: OutboxId, change: Change, fence: Option<&Fence>) -> Result<()> {
        let key = keys::outbox(id);
        if self
            .table
            .update(&key, super::lease::fenced(change, fence))
            .await?
            .is_none()
            && let Some(f) = fence
            && let Some(now) = self.item(&key).await?
            && now
                .get("fence")
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse::<i64>().ok())
                > Some(f.token)
        {
            return Err(f.refused(self.lease_now(&f.scope).await?.as_ref()));
        }
        Ok(())
    }

    /// Each listed item read again (strongly consistent); the ones gone are left out.
    async fn reread(&self, items: Vec<Item>) -> Result<Vec<Item>> {
        let mut now = Vec::with_capacity(items.len());
        for listed in items {
            let Some(key) = item::key_of(&listed) else { continue };
            if let Some(current) = self.item(&key).await? {
                now.push(current);
            }
        }
        Ok(now)
    }

    /// Requests in `state` from the index; an open state's are read again and kept if still in it.
    async fn requests_in_state(&self, state: RequestState) -> Result<Vec<Item>> {
        let q = Query::on(Some(BY_STATE), keys::request_state(state.as_str()));
        let listed = self.table.query(&q).await?;
        if !state.is_open() {
            return Ok(listed);
        }
        let want = s(state.as_str());
        Ok(self
            .reread(listed)
            .await?
            .into_iter()
            .filter(|i| i.get("state") == Some(&want))
            .collect())
    }

    async fn runs_in_state(&self, state: RunState) -> Result<Vec<Item>> {
        let q = Query::on(Some(BY_STATE), keys::run_state(state.as_str()));
        let listed = self.table.query(&q).await?;
        if !state.is_open() {
            return Ok(listed);
        }
        let want = s(state.as_str());
        Ok(self
            .reread(listed)
            .await?
            .into_iter()
            .filter(|i| i.get("state") == Some(&want))
            .collect())
    }

    /// The pending outbox items, from the index, oldest first (not read again).
    async fn pending_outbox(&self) -> Result<Vec<OutboxItem>> {
        let q = Query::on(Some(BY_STATE), keys::PENDING_OUTBOX);
        self.table
            .query(&q)
            .await?
            .iter()
            .map(|i| item::outbox_item(i).map_err(decode_err))
            .collect()
    }

    /// The outbox item `id`, put now if its dedup key names it but it was never written (a crash
    /// between the two puts of `enqueue`).
    async fn ensure_outbox(&self, id: OutboxId, m: &Outgoing<'_>, now: jiff::Timestamp) -> Result<OutboxId> {
        if self.item(&keys::outbox(id)).await?.is_none() {
            self.table.put_new(item::new_outbox(id, m, now)).await?;
        }
        Ok(id)
    }

    /// Deletes at most `batch` items listed in the 24 buckets `bucket(hour)` before `before`, newest
    /// hour first; returns how many this call deleted.
    async fn prune(&self, bucket: fn(i64) -> String, before: jiff::Timestamp, batch: usize) -> Result<usize> {
        let mut deleted = 0;
        let first = keys::hour_bucket(before);
        for back in 0..24 {
            if deleted >= batch {
                break;
            }
            let q = Query::on(Some(BY_TIME), bucket((first - back).rem_euclid(24)))
                .sk(Sk::Below(keys::ms(before)))
                .limit(batch - deleted);
            for listed in self.table.query(&q).await? {
                let Some(key) = item::key_of(&listed) else { continue };
                let gone = self.table.delete_if(&key, "attribute_exists(#sk)", Item::new()).await?;
                deleted += usize::from(gone.is_some());
            }
        }
        Ok(deleted)
    }

    /// The next sequence number of a run's journal (strongly consistent read of its last line).
    async fn next_seq(&self, run: RunId) -> Result<i64> {
        let q = Query::on(None, keys::run(run).0)
            .sk(Sk::Begins("J#".into()))
            .newest_first()
            .limit(1);
        let last = self.table.query(&q).await?;
        let seq = match last.first() {
            Some(line) => item::Fields {
                item: line,
                table: "journal",
                key: run.to_string(),
            }
            .num("seq")
            .map_err(decode_err)?,
            None => 0,
        };
        Ok(seq + 1)
    }

    async fn audit_line(&self, e: &AuditEntry) -> Result<()> {
        let unique = format!("{}#{}", keys::ms(e.at), super::call::token());
        let mut it = item::keyed(&(format!("AUDIT#{unique}"), "AUDIT".into()));
        item::index(&mut it, BY_TIME, keys::AUDIT.into(), unique);
        it.insert("at".into(), n(e.at.as_millisecond()));
        it.insert("user".into(), s(&e.user));
        it.insert("action".into(), s(&e.action));
        item::opt(&mut it, "request_id", e.request_id.map(|r| n(r.get())));
        it.insert("outcome".into(), s(&e.outcome));
        self.table.put(it).await
    }
}

fn requests(items: &[Item]) -> Vec<Stored<Request>> {
    items.iter().map(item::request).collect()
}

fn runs(items: &[Item]) -> Vec<Stored<Run>> {
    items.iter().map(item::run).collect()
}

#[async_trait]
impl Store for DynamoDbStore {
    async fn new_request_id(&self) -> Result<RequestId> {
        self.table.next("request").await.map(RequestId::new)
    }

    async fn cluster_lock(&self, cluster: &ClusterName) -> Result<Option<RequestId>> {
        let Some(lock) = self.item(&keys::lock(cluster.as_str())).await? else {
            return Ok(None);
        };
        let f = item::Fields {
            item: &lock,
            table: "cluster_locks",
            key: cluster.to_string(),
        };
        Ok(Some(RequestId::new(f.num("holder").map_err(decode_err)?)))
    }

    async fn cluster_locks(&self) -> Result<Vec<Stored<ClusterLock>>> {
        let listed = self.table.query(&Query::on(Some(BY_STATE), keys::LOCKS)).await?;
        let decode = |i: &Item| -> Stored<ClusterLock> {
            let f = item::Fields {
                item: i,
                table: "cluster_locks",
                key: item::key_of(i).map(|k| k.0).unwrap_or_default(),
            };
            Ok(ClusterLock {
                cluster: f.parsed("cluster", ClusterName::parse)?,
                holder: RequestId::new(f.num("holder")?),
            })
        };
        Ok(self.reread(listed).await?.iter().map(decode).collect())
    }

    async fn take_cluster_lock(
        &self,
        cluster: &ClusterName,
        holder: RequestId,
        expected: Option<RequestId>,
    ) -> Result<bool> {
        let key = keys::lock(cluster.as_str());
        match expected {
            None => {
                let mut lock = item::keyed(&key);
                item::index(&mut lock, BY_STATE, keys::LOCKS.into(), cluster.to_string());
                lock.insert("cluster".into(), s(cluster.as_str()));
                lock.insert("holder".into(), n(holder.get()));
                self.table.put_new(lock).await
            }
            Some(was) => {
                let change = Change::when("#holder = :was")
                    .value(":was", n(was.get()))
                    .set("holder", n(holder.get()));
                Ok(self.table.update(&key, change).await?.is_some())
            }
        }
    }

    async fn release_cluster_lock(&self, cluster: &ClusterName, holder: RequestId) -> Result<bool> {
        let values = Item::from([(":h".to_owned(), n(holder.get()))]);
        let key = keys::lock(cluster.as_str());
        Ok(self.table.delete_if(&key, "#holder = :h", values).await?.is_some())
    }

    async fn take_lease(
        &self,
        scope: &LeaseScope,
        owner: &str,
        now: jiff::Timestamp,
        ttl: std::time::Duration,
    ) -> Result<Option<Lease>> {
        self.take(scope, owner, now, ttl).await
    }

    async fn renew_lease(&self, fence: &Fence, now: jiff::Timestamp, ttl: std::time::Duration) -> Result<bool> {
        self.renew(fence, now, ttl).await
    }

    async fn release_lease(&self, fence: &Fence, now: jiff::Timestamp) -> Result<bool> {
        self.extend(fence, now).await
    }

    async fn lease(&self, scope: &LeaseScope) -> Result<Option<Lease>> {
        self.lease_now(scope).await
    }

    async fn leases(&self) -> Result<Vec<Lease>> {
        self.all_leases().await
    }

    async fn adopt_run(&self, run: RunId, fence: &Fence) -> Result<()> {
        self.adopt(run, fence).await
    }

    async fn insert_request(&self, id: RequestId, r: &NewRequest) -> Result<bool> {
        self.table.put_new(item::new_request(id, r)).await
    }

    async fn request(&self, id: RequestId) -> Result<Option<Request>> {
        match self.item(&keys::request(id)).await? {
            Some(i) => item::request(&i).map(Some).map_err(decode_err),
            None => Ok(None),
        }
    }

    async fn requests_in(&self, state: RequestState) -> Result<Vec<Stored<Request>>> {
        Ok(requests(&self.requests_in_state(state).await?))
    }

    async fn recent_requests(&self, cluster: Option<&ClusterName>, limit: usize) -> Result<Vec<Stored<Request>>> {
        let q = match cluster {
            Some(c) => Query::on(Some(BY_GROUP), format!("REQC#{c}")),
            None => Query::on(Some(BY_TIME), keys::ALL_REQUESTS),
        };
        let listed = self.table.query(&q.newest_first().limit(limit)).await?;
        Ok(requests(&self.reread(listed).await?))
    }

    async fn requests_since(&self, since: jiff::Timestamp) -> Result<Vec<Stored<Request>>> {
        let all = self.table.query(&Query::on(Some(BY_TIME), keys::ALL_REQUESTS)).await?;
        Ok(requests(&all)
            .into_iter()
            .filter(|r| r.as_ref().map_or(true, |r| r.requested_at >= since))
            .collect())
    }

    async fn closed_since(&self, since: jiff::Timestamp) -> Result<Vec<Stored<Request>>> {
        let mut closed = Vec::new();
        for state in [RequestState::Denied, RequestState::Cancelled, RequestState::Expired] {
            closed.extend(requests(&self.requests_in_state(state).await?));
        }
        let mut closed: Vec<Stored<Request>> = closed
            .into_iter()
            .filter(|r| {
                r.as_ref().map_or(true, |r| match r.state {
                    RequestState::Expired => r.expires_at >= since,
                    _ => r.decided_at.is_some_and(|t| t >= since),
                })
            })
            .collect();
        closed.sort_by_key(|r| r.as_ref().map_or(i64::MIN, |r| r.id.get()));
        Ok(closed)
    }

    async fn attach_message(&self, id: RequestId, message: OutboxId) -> Result<()> {
        let change = Change::when("attribute_not_exists(#message)").set("message", n(message.get()));
        self.update_request(id, change).await?;
        Ok(())
    }

    async fn mark_pending(&self, id: RequestId, plan: &str, mode: Mode, message: OutboxId) -> Result<bool> {
        let change = Change::when("#state = :planning")
            .value(":planning", s(RequestState::Planning.as_str()))
            .set("plan", s(plan))
            .set("mode", s(mode.as_str()))
            .set("message", n(message.get()));
        Ok(self
            .update_request(id, request_to(change, RequestState::Pending))
            .await?
            .is_some())
    }

    async fn close_unposted(&self, id: RequestId, note: &str) -> Result<Option<String>> {
        let change = Change::when("#state IN (:planning, :pending)")
            .value(":planning", s(RequestState::Planning.as_str()))
            .value(":pending", s(RequestState::Pending.as_str()))
            .set("note", s(note));
        let after = self
            .update_request(id, request_to(change, RequestState::Rejected))
            .await?;
        Ok(after.and_then(|i| i.get("response_url").and_then(|v| v.as_s().ok()).cloned()))
    }

    async fn mark_rejected(&self, id: RequestId, reason: &str) -> Result<bool> {
        let change = Change::when("#state = :planning")
            .value(":planning", s(RequestState::Planning.as_str()))
            .set("note", s(reason));
        Ok(self
            .update_request(id, request_to(change, RequestState::Rejected))
            .await?
            .is_some())
    }

    async fn set_decision(
        &self,
        id: RequestId,
        approve: bool,
        by: &Person,
        now: jiff::Timestamp,
        note: Option<&str>,
    ) -> Result<bool> {
        let to = if approve {
            RequestState::Approved
        } else {
            RequestState::Denied
        };
        let change = Change::when("#state = :pending AND #expires_at > :now")
            .value(":pending", s(RequestState::Pending.as_str()))
            .value(":now", n(now.as_millisecond()))
            .set("decided_by", s(by.to_string()))
            .set("decided_at", n(now.as_millisecond()));
        let change = match note {
            Some(note) => change.set("note", s(note)),
            None => change,
        };
        Ok(self.update_request(id, request_to(change, to)).await?.is_some())
    }

    async fn set_cancelled(&self, id: RequestId, by: &SlackUserId, now: jiff::Timestamp) -> Result<bool> {
        let change = Change::when("#state IN (:planning, :pending)")
            .value(":planning", s(RequestState::Planning.as_str()))
            .value(":pending", s(RequestState::Pending.as_str()))
            .set("decided_by", s(by.as_str()))
            .set("decided_at", n(now.as_millisecond()));
        Ok(self
            .update_request(id, request_to(change, RequestState::Cancelled))
            .await?
            .is_some())
    }

    async fn add_approval(&self, id: RequestId, by: &Person, at: jiff::Timestamp) -> Result<Option<Vec<Approval>>> {
        // Compare-and-set on the approvals as read: an approval written in between makes this one
        // read them again (each round, one of the racing approvals lands).
        for _ in 0..APPROVAL_ROUNDS {
            let Some(raw) = self.item(&keys::request(id)).await? else {
                return Ok(None);
            };
            let r = item::request(&raw).map_err(decode_err)?;
            if r.state != RequestState::Pending || r.expires_at <= at {
                return Ok(None);
            }
            let Some(all) = Approval::added(&r.approvals, by, at) else {
                return Ok(None);
            };
            let as_read = match raw.get("approvals") {
                Some(old) => Change::when("#state = :pending AND #expires_at > :now AND #approvals = :old")
                    .value(":old", old.clone()),
                None => Change::when("#state = :pending AND #expires_at > :now AND attribute_not_exists(#approvals)"),
            };
            let change = as_read
                .value(":pending", s(RequestState::Pending.as_str()))
                .value(":now", n(at.as_millisecond()))
                .set("approvals", s(Approval::encode_all(&all)));
            if self.update_request(id, change).await?.is_some() {
                return Ok(Some(all));
            }
        }
        Err(StoreError::DynamoDb(format!(
            "UpdateItem of request #{id}'s approvals: they kept changing ({APPROVAL_ROUNDS} tries)"
        )))
    }

    async fn set_expired(&self, id: RequestId, now: jiff::Timestamp) -> Result<bool> {
        let change = Change::when("#state = :pending AND #expires_at <= :now")
            .value(":pending", s(RequestState::Pending.as_str()))
            .value(":now", n(now.as_millisecond()));
        Ok(self
            .update_request(id, request_to(change, RequestState::Expired))
            .await?
            .is_some())
    }

    async fn create_run(
        &self,
        request: RequestId,
        first_step: &str,
        data: &str,
        now: jiff::Timestamp,
    ) -> Result<RunId> {
        let id = RunId::new(request.get());
        let cluster = match self.item(&keys::request(request)).await? {
            Some(r) => r.get("cluster").and_then(|v| v.as_s().ok()).cloned(),
            None => None,
        };
        self.table
            .put_new(item::new_run(id, cluster.as_deref(), first_step, data, now))
            .await?;
        Ok(id)
    }

    async fn run(&self, id: RunId) -> Result<Option<Run>> {
        match self.item(&keys::run(id)).await? {
            Some(i) => item::run(&i).map(Some).map_err(decode_err),
            None => Ok(None),
        }
    }

    async fn run_of_request(&self, request: RequestId) -> Result<Option<Run>> {
        self.run(RunId::new(request.get())).await
    }

    async fn runs_in(&self, state: RunState) -> Result<Vec<Stored<Run>>> {
        Ok(runs(&self.runs_in_state(state).await?))
    }

    async fn runs_finished_since(&self, since: jiff::Timestamp) -> Result<Vec<Stored<Run>>> {
        let q = Query::on(Some(BY_TIME), keys::ENDED_RUNS).sk(Sk::AtLeast(keys::ms(since)));
        Ok(runs(&self.table.query(&q).await?))
    }

    async fn last_success(&self, cluster: &ClusterName) -> Result<Option<Request>> {
        let q = Query::on(Some(BY_GROUP), format!("RUNC#{cluster}")).newest_first();
        let succeeded = s(RunState::Succeeded.as_str());
        for run in self.table.query(&q).await? {
            if run.get("state") == Some(&succeeded) {
                let id = item::run(&run).map_err(decode_err)?.request_id;
                return self.request(id).await;
            }
        }
        Ok(None)
    }

    async fn set_step(&self, run: RunId, next_step: &str, data: &str, fence: Option<&Fence>) -> Result<()> {
        let change = open_run(Change::when(OPEN_RUN))
            .set("step", s(next_step))
            .set("data", s(data));
        self.fenced_run(run, change, fence).await?;
        Ok(())
    }

    async fn finish_run(
        &self,
        run: RunId,
        state: RunState,
        data: &str,
        at: jiff::Timestamp,
        fence: Option<&Fence>,
    ) -> Result<bool> {
        let change = open_run(Change::when(OPEN_RUN)).set("data", s(data));
        self.fenced_run(run, run_ends(change, run, state, at), fence).await
    }

    async fn set_needs_attention(&self, run: RunId, data: Option<&str>, fence: Option<&Fence>) -> Result<bool> {
        let mut change = Change::when("#state = :running")
            .value(":running", s(RunState::Running.as_str()))
            .remove("resume_asked_by")
            .remove("resume_asked_at");
        if let Some(d) = data {
            change = change.set("data", s(d));
        }
        self.fenced_run(run, run_to(change, RunState::NeedsAttention), fence)
            .await
    }

    async fn set_running(&self, run: RunId, fence: Option<&Fence>) -> Result<bool> {
        let change = Change::when("#state = :attention")
            .value(":attention", s(RunState::NeedsAttention.as_str()))
            .remove("resume_asked_by")
            .remove("resume_asked_at");
        self.fenced_run(run, run_to(change, RunState::Running), fence).await
    }

    async fn set_resume_asked(&self, run: RunId, by: &SlackUserId, at: jiff::Timestamp) -> Result<bool> {
        let change = Change::when("#state = :attention AND attribute_not_exists(#resume_asked_by)")
            .value(":attention", s(RunState::NeedsAttention.as_str()))
            .set("resume_asked_by", s(by.as_str()))
            .set("resume_asked_at", n(at.as_millisecond()));
        self.update_run(run, change).await
    }

    async fn set_resume_decision(&self, run: RunId, token: i64, by: &SlackUserId, approve: bool) -> Result<bool> {
        let condition = if approve {
            "#state = :attention AND #resume_asked_at = :token AND #resume_asked_by <> :by"
        } else {
            "#state = :attention AND #resume_asked_at = :token"
        };
        let mut change = Change::when(condition)
            .value(":attention", s(RunState::NeedsAttention.as_str()))
            .value(":token", n(token))
            .remove("resume_asked_by")
            .remove("resume_asked_at");
        if approve {
            change = run_to(change.value(":by", s(by.as_str())), RunState::Running).set("resumed_by", s(by.as_str()));
        }
        self.update_run(run, change).await
    }

    async fn set_abandoned(&self, run: RunId, by: &Person, reason: &str, at: jiff::Timestamp) -> Result<bool> {
        let change = open_run(Change::when(OPEN_RUN))
            .set("abandoned_by", s(by.to_string()))
            .set("abandon_reason", s(reason));
        self.update_run(run, run_ends(change, run, RunState::Abandoned, at))
            .await
    }

    async fn journal(
        &self,
        run: RunId,
        at: jiff::Timestamp,
        step: &str,
        event: &str,
        detail: &str,
        fence: Option<&Fence>,
    ) -> Result<()> {
        self.check_fence(fence).await?;
        for _ in 0..JOURNAL_ATTEMPTS {
            let seq = match fence {
                Some(f) => self.reserve_seq(run, f).await?,
                None => self.next_seq(run).await?,
            };
            let entry = JournalEntry {
                run_id: run,
                seq,
                at,
                step: step.to_owned(),
                event: event.to_owned(),
                detail: detail.to_owned(),
            };
            if self.table.put_new(item::journal_line(&entry)).await? {
                return Ok(());
            }
            self.journal_taken(run, seq, fence).await?;
        }
        Err(StoreError::DynamoDb(format!(
            "PutItem: the journal of run {run} kept taking the next line's number first"
        )))
    }

    async fn journal_of(&self, run: RunId) -> Result<Vec<JournalEntry>> {
        let q = Query::on(None, keys::run(run).0).sk(Sk::Begins("J#".into()));
        self.table
            .query(&q)
            .await?
            .iter()
            .filter(|i| !i.contains_key("tombstone"))
            .map(|i| item::journal_entry(i).map_err(decode_err))
            .collect()
    }

    async fn journal_since(&self, since: jiff::Timestamp) -> Result<Vec<JournalEntry>> {
        let q = Query::on(Some(BY_TIME), keys::JOURNAL).sk(Sk::AtLeast(keys::ms(since)));
        self.table
            .query(&q)
            .await?
            .iter()
            .map(|i| item::journal_entry(i).map_err(decode_err))
            .collect()
    }

    async fn audit(
        &self,
        at: jiff::Timestamp,
        user: &str,
        action: &str,
        request: Option<RequestId>,
        outcome: &str,
    ) -> Result<()> {
        self.audit_line(&AuditEntry {
            at,
            user: user.to_owned(),
            action: action.to_owned(),
            request_id: request,
            outcome: outcome.to_owned(),
        })
        .await
    }

    async fn audit_since(&self, since: jiff::Timestamp) -> Result<Vec<AuditEntry>> {
        let q = Query::on(Some(BY_TIME), keys::AUDIT).sk(Sk::AtLeast(keys::ms(since)));
        self.table
            .query(&q)
            .await?
            .iter()
            .map(|i| item::audit_entry(i).map_err(decode_err))
            .collect()
    }

    async fn first_sighting(&self, signature: &str, now: jiff::Timestamp) -> Result<bool> {
        self.table.put_new(item::new_signature(signature, now)).await
    }

    async fn forget_requests_before(&self, before: jiff::Timestamp, batch: usize) -> Result<usize> {
        self.prune(keys::signature_bucket, before, batch).await
    }

    async fn enqueue(&self, m: &Outgoing<'_>, now: jiff::Timestamp) -> Result<OutboxId> {
        self.check_fence(m.fence).await?;
        // A run's message: reserved through the run's item (conditional on its fence), so that a
        // former holder cannot queue it once a new holder adopted the run (see `lease::adopt`).
        let run = match m.fence {
            Some(f) => self.run_under(f).await?,
            None => None,
        };
        let dedup = m.dedup_key.map(keys::dedup);
        let first = |i: &Item| i.get("id").and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok());
        if let Some(key) = &dedup
            && let Some(id) = self.item(key).await?.as_ref().and_then(first)
        {
            return self.ensure_outbox(OutboxId::new(id), m, now).await;
        }
        let id = OutboxId::new(self.table.next("outbox").await?);
        if let (Some(run), Some(f)) = (run, m.fence) {
            self.reserve_outbox(run, f, id, m.dedup_key).await?;
        }
        if let Some(key) = &dedup {
            let mut claim = item::keyed(key);
            claim.insert("id".into(), n(id.get()));
            if !self.table.put_new(claim).await? {
                let Some(id) = self.item(key).await?.as_ref().and_then(first) else {
                    return Err(StoreError::DynamoDb(format!("dedup key {key:?} has no outbox id")));
                };
                return self.ensure_outbox(OutboxId::new(id), m, now).await;
            }
        }
        self.table.put_new(item::new_outbox(id, m, now)).await?;
        Ok(id)
    }

    async fn outbox_heads(&self) -> Result<Vec<OutboxItem>> {
        let mut seen = std::collections::BTreeSet::new();
        let mut heads = Vec::new();
        for candidate in self.pending_outbox().await? {
            if seen.contains(&candidate.ordering_key) {
                continue;
            }
            // The index may be behind: the item as it is now decides.
            if let Some(now) = self.outbox_item(candidate.id).await?
                && now.state == "pending"
            {
                seen.insert(now.ordering_key.clone());
                heads.push(now);
            }
        }
        Ok(heads)
    }

    async fn outbox_item(&self, id: OutboxId) -> Result<Option<OutboxItem>> {
        match self.item(&keys::outbox(id)).await? {
            Some(i) => item::outbox_item(&i).map(Some).map_err(decode_err),
            None => Ok(None),
        }
    }

    async fn newer_update_pending(&self, it: &OutboxItem) -> Result<bool> {
        Ok(self
            .pending_outbox()
            .await?
            .iter()
            .any(|i| i.kind == "update" && i.target.is_some() && i.target == it.target && i.id > it.id))
    }

    async fn outbox_delivered(&self, id: OutboxId, ts: Option<&str>, fence: Option<&Fence>) -> Result<()> {
        self.check_fence(fence).await?;
        let change = Change::existing()
            .set("state", s("delivered"))
            .set_or_remove("delivered_ts", ts.map(s))
            .remove("last_error")
            .unindex(BY_STATE);
        self.update_outbox(id, change, fence).await
    }

    async fn outbox_skipped(&self, id: OutboxId, fence: Option<&Fence>) -> Result<()> {
        self.check_fence(fence).await?;
        let change = Change::existing().set("state", s("superseded")).unindex(BY_STATE);
        self.update_outbox(id, change, fence).await
    }

    async fn outbox_retry(
        &self,
        id: OutboxId,
        error: &str,
        next_attempt_at: jiff::Timestamp,
        fence: Option<&Fence>,
    ) -> Result<()> {
        self.check_fence(fence).await?;
        let change = Change::existing()
            .add("attempts", n(1))
            .set("last_error", s(error))
            .set("next_attempt_at", n(next_attempt_at.as_millisecond()));
        self.update_outbox(id, change, fence).await
    }

    async fn outbox_failed(&self, id: OutboxId, error: &str, fence: Option<&Fence>) -> Result<()> {
        self.check_fence(fence).await?;
        let change = Change::existing()
            .set("state", s("failed"))
            .add("attempts", n(1))
            .set("last_error", s(error))
            .unindex(BY_STATE);
        self.update_outbox(id, change, fence).await
    }

    async fn outbox_all(&self) -> Result<Vec<OutboxItem>> {
        let q = Query::on(Some(BY_TIME), keys::ALL_OUTBOX);
        self.table
            .query(&q)
            .await?
            .iter()
            .map(|i| item::outbox_item(i).map_err(decode_err))
            .collect()
    }

    async fn outbox_depth(&self) -> Result<u64> {
        Ok(self.pending_outbox().await?.len() as u64)
    }

    async fn outbox_attempt(&self, id: OutboxId, via: &str, at: jiff::Timestamp, fence: Option<&Fence>) -> Result<()> {
        self.check_fence(fence).await?;
        let change = Change::existing()
            .set_if_absent("started_at", n(at.as_millisecond()))
            .set("via", s(via));
        self.update_outbox(id, change, fence).await
    }

    async fn response_url_uses(&self, url: &str, except: OutboxId) -> Result<i64> {
        let listed = self
            .table
            .query(&Query::on(Some(BY_GROUP), format!("OURL#{url}")))
            .await?;
        let via = AttributeValue::S(VIA_RESPONSE_URL.to_owned());
        let except = n(except.get());
        let uses = self
            .reread(listed)
            .await?
            .iter()
            .filter(|i| i.get("via") == Some(&via) && i.get("id") != Some(&except))
            .count();
        Ok(i64::try_from(uses).unwrap_or(i64::MAX))
    }

    async fn remember_response_url(&self, r: &ResponseUrl) -> Result<()> {
        self.table.put_new(item::new_response_url(r)).await?;
        Ok(())
    }

    async fn response_url(&self, url: &str) -> Result<Option<ResponseUrl>> {
        match self.item(&keys::response_url(url)).await? {
            Some(i) => item::response_url(&i).map(Some).map_err(decode_err),
            None => Ok(None),
        }
    }

    async fn forget_response_urls_before(&self, before: jiff::Timestamp, batch: usize) -> Result<usize> {
        self.prune(keys::response_url_bucket, before, batch).await
    }

    async fn record_global_cluster(&self, r: &GlobalClusterRecord) -> Result<()> {
        // One conditional upsert: written when absent or when the stored one is not newer
        // (`GlobalClusterRecord::supersedes`); a lost condition leaves the newer record.
        let change = Change::default()
            .and("attribute_not_exists(#pk) OR #recorded_at <= :at")
            .value(":at", n(r.recorded_at.as_millisecond()))
            .index(BY_STATE, keys::GLOBAL_CLUSTER_RECORDS.into(), r.cluster.to_string())
            .set("cluster", s(r.cluster.as_str()))
            .set("global_cluster_id", s(&r.global_cluster_id))
            .set("request_id", n(r.request.get()))
            .set("recorded_at", n(r.recorded_at.as_millisecond()))
            .set("replaces", s(&r.replaces));
        let key = keys::global_cluster_record(r.cluster.as_str());
        self.table.update(&key, change).await.map(|_| ())
    }

    async fn global_cluster_record(&self, cluster: &ClusterName) -> Result<Option<GlobalClusterRecord>> {
        let Some(found) = self.item(&keys::global_cluster_record(cluster.as_str())).await? else {
            return Ok(None);
        };
        item::global_cluster_record(&found).map(Some).map_err(decode_err)
    }

    async fn global_cluster_records(&self) -> Result<Vec<Stored<GlobalClusterRecord>>> {
        let q = Query::on(Some(BY_STATE), keys::GLOBAL_CLUSTER_RECORDS);
        let listed = self.table.query(&q).await?;
        Ok(self
            .reread(listed)
            .await?
            .iter()
            .map(item::global_cluster_record)
            .collect())
    }

    async fn drop_global_cluster_record(&self, cluster: &ClusterName, global_cluster_id: &str) -> Result<bool> {
        let values = Item::from([(":id".to_owned(), s(global_cluster_id))]);
        let key = keys::global_cluster_record(cluster.as_str());
        let dropped = self.table.delete_if(&key, "#global_cluster_id = :id", values).await?;
        Ok(dropped.is_some())
    }

    async fn store_id(&self) -> Result<String> {
        let id_of = |i: Option<Item>| i.and_then(|i| i.get("store_id").and_then(|v| v.as_s().ok()).cloned());
        if let Some(id) = id_of(self.item(&keys::meta()).await?) {
            return Ok(id);
        }
        let mut meta = item::keyed(&keys::meta());
        meta.insert("store_id".into(), s(format!("ddb{}", super::call::token())));
        meta.insert("created_at".into(), n(jiff::Timestamp::now().as_millisecond()));
        self.table.put_new(meta).await?;
        id_of(self.item(&keys::meta()).await?)
            .ok_or_else(|| StoreError::DynamoDb("the META item has no store_id".into()))
    }
}
