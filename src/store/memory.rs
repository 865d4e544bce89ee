//! The in-memory store, for tests: plain collections behind one mutex. It keeps the same contract as
//! the SQLite store (the shared suite checks both), except durability: it forgets everything when
//! dropped. A row cannot be corrupt here, but a stored plan or run data can (they are kept as text).

use super::rows::*;
use super::{Result, Store};
use crate::types::{ClusterName, Mode, Person, SlackUserId};
use async_trait::async_trait;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

#[derive(Default)]
struct State {
    last_request: i64,
    locks: BTreeMap<String, (ClusterName, RequestId)>,
    requests: BTreeMap<RequestId, Request>,
    runs: BTreeMap<RunId, Run>,
    journal: BTreeMap<(RunId, i64), JournalEntry>,
    audit: Vec<AuditEntry>,
    seen: HashMap<String, jiff::Timestamp>,
    outbox: BTreeMap<OutboxId, OutboxItem>,
    response_urls: HashMap<String, ResponseUrl>,
    leases: BTreeMap<String, Lease>,
    /// Recorded global clusters, by cluster name.
    global_clusters: BTreeMap<String, GlobalClusterRecord>,
    /// Made when the store is: this store's identity.
    id: String,
    /// Tests: the next call of this operation fails (once).
    #[cfg(test)]
    failing: Option<&'static str>,
}

impl State {
    /// Refuses a write under `fence` when its lease has changed hands (checked under the same lock as
    /// the write, so the check and the write are one step).
    fn check(&self, fence: Option<&Fence>) -> Result<()> {
        let Some(fence) = fence else { return Ok(()) };
        let now = self.leases.get(&fence.scope);
        match now {
            Some(l) if l.owner == fence.owner && l.token == fence.token => Ok(()),
            _ => Err(fence.refused(now)),
        }
    }

    /// Tests: fails if the next call of `op` was told to.
    #[cfg(test)]
    fn fault(&mut self, op: &'static str) -> Result<()> {
        if self.failing == Some(op) {
            self.failing = None;
            return Err(super::StoreError::Unusable(format!("{op} failed (injected)")));
        }
        Ok(())
    }

    #[cfg(not(test))]
    fn fault(&mut self, _: &'static str) -> Result<()> {
        Ok(())
    }
}

/// The in-memory implementation of [`Store`].
#[derive(Default)]
pub struct MemoryStore {
    /// Every collection behind one std mutex: each operation holds it for a few map operations and
    /// never across an await, so it cannot block the runtime for long.
    state: Mutex<State>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").finish_non_exhaustive()
    }
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn fresh_id() -> String {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = jiff::Timestamp::now().as_nanosecond();
        format!(
            "mem{:x}{:x}{}",
            std::process::id(),
            nanos,
            N.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// Tests: the next call of `op` (`insert_request`, `create_run`, `journal`, `run`) fails, once.
    #[cfg(test)]
    pub fn fail_next(&self, op: &'static str) {
        self.state().failing = Some(op);
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies `f` to request `id` if `when` holds of it; `true` if it did.
    fn update_request(&self, id: RequestId, when: impl Fn(&Request) -> bool, f: impl FnOnce(&mut Request)) -> bool {
        match self.state().requests.get_mut(&id) {
            Some(r) if when(r) => {
                f(r);
                true
            }
            _ => false,
        }
    }

    /// Applies `f` to run `id` if `when` holds of it; `true` if it did.
    fn update_run(&self, id: RunId, when: impl Fn(&Run) -> bool, f: impl FnOnce(&mut Run)) -> bool {
        self.fenced_run(id, None, when, f).unwrap_or(false)
    }

    /// [`update_run`](Self::update_run) under `fence`: refused when its lease changed hands.
    fn fenced_run(
        &self,
        id: RunId,
        fence: Option<&Fence>,
        when: impl Fn(&Run) -> bool,
        f: impl FnOnce(&mut Run),
    ) -> Result<bool> {
        let mut s = self.state();
        s.check(fence)?;
        Ok(match s.runs.get_mut(&id) {
            Some(r) if when(r) => {
                f(r);
                true
            }
            _ => false,
        })
    }

    fn requests_where(&self, f: impl Fn(&Request) -> bool) -> Vec<Stored<Request>> {
        self.state()
            .requests
            .values()
            .filter(|r| f(r))
            .cloned()
            .map(Ok)
            .collect()
    }

    fn runs_where(&self, f: impl Fn(&Run) -> bool) -> Vec<Stored<Run>> {
        self.state().runs.values().filter(|r| f(r)).cloned().map(Ok).collect()
    }

    fn update_item(&self, id: OutboxId, fence: Option<&Fence>, f: impl FnOnce(&mut OutboxItem)) -> Result<()> {
        let mut s = self.state();
        s.check(fence)?;
        if let Some(item) = s.outbox.get_mut(&id) {
            f(item);
        }
        Ok(())
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn take_lease(
        &self,
        scope: &LeaseScope,
        owner: &str,
        now: jiff::Timestamp,
        ttl: std::time::Duration,
    ) -> Result<Option<Lease>> {
        let mut s = self.state();
        let granted = super::grant_lease(s.leases.get(scope), scope, owner, now, ttl);
        if let Some(l) = &granted {
            s.leases.insert(scope.to_owned(), l.clone());
        }
        Ok(granted)
    }

    async fn renew_lease(&self, fence: &Fence, now: jiff::Timestamp, ttl: std::time::Duration) -> Result<bool> {
        let mut s = self.state();
        Ok(match s.leases.get_mut(&fence.scope) {
            Some(l) if l.owner == fence.owner && l.token == fence.token => {
                l.expires_at = super::lease_end(now, ttl);
                true
            }
            _ => false,
        })
    }

    async fn release_lease(&self, fence: &Fence, now: jiff::Timestamp) -> Result<bool> {
        let mut s = self.state();
        Ok(match s.leases.get_mut(&fence.scope) {
            Some(l) if l.owner == fence.owner && l.token == fence.token => {
                l.expires_at = now;
                true
            }
            _ => false,
        })
    }

    async fn lease(&self, scope: &LeaseScope) -> Result<Option<Lease>> {
        Ok(self.state().leases.get(scope).cloned())
    }

    async fn leases(&self) -> Result<Vec<Lease>> {
        Ok(self.state().leases.values().cloned().collect())
    }

    async fn new_request_id(&self) -> Result<RequestId> {
        let mut s = self.state();
        s.last_request += 1;
        Ok(RequestId::new(s.last_request))
    }

    async fn cluster_lock(&self, cluster: &ClusterName) -> Result<Option<RequestId>> {
        Ok(self.state().locks.get(cluster.as_str()).map(|(_, h)| *h))
    }

    async fn cluster_locks(&self) -> Result<Vec<Stored<ClusterLock>>> {
        Ok(self
            .state()
            .locks
            .values()
            .map(|(cluster, holder)| {
                Ok(ClusterLock {
                    cluster: cluster.clone(),
                    holder: *holder,
                })
            })
            .collect())
    }

    async fn take_cluster_lock(
        &self,
        cluster: &ClusterName,
        holder: RequestId,
        expected: Option<RequestId>,
    ) -> Result<bool> {
        let mut s = self.state();
        let now = s.locks.get(cluster.as_str()).map(|(_, h)| *h);
        if now != expected {
            return Ok(false);
        }
        s.locks.insert(cluster.as_str().to_owned(), (cluster.clone(), holder));
        Ok(true)
    }

    async fn release_cluster_lock(&self, cluster: &ClusterName, holder: RequestId) -> Result<bool> {
        let mut s = self.state();
        if s.locks.get(cluster.as_str()).map(|(_, h)| *h) != Some(holder) {
            return Ok(false);
        }
        s.locks.remove(cluster.as_str());
        Ok(true)
    }

    async fn insert_request(&self, id: RequestId, r: &NewRequest) -> Result<bool> {
        let mut s = self.state();
        s.fault("insert_request")?;
        if s.requests.contains_key(&id) {
            return Ok(false);
        }
        s.last_request = s.last_request.max(id.get());
        s.requests.insert(
            id,
            Request {
                id,
                cluster: r.cluster.clone(),
                mode: r.mode,
                requested_by: r.requested_by.clone(),
                requested_at: r.requested_at,
                to_region: r.to_region.clone(),
                origin_channel: r.origin_channel.clone(),
                response_url: r.response_url.clone(),
                expires_at: r.expires_at,
                state: RequestState::Planning,
                plan: None,
                decided_by: None,
                decided_at: None,
                note: None,
                message: None,
                reason: r.reason.clone(),
                ticket: r.ticket.clone(),
                approvals: Vec::new(),
            },
        );
        Ok(true)
    }

    async fn request(&self, id: RequestId) -> Result<Option<Request>> {
        Ok(self.state().requests.get(&id).cloned())
    }

    async fn requests_in(&self, state: RequestState) -> Result<Vec<Stored<Request>>> {
        Ok(self.requests_where(|r| r.state == state))
    }

    async fn recent_requests(&self, cluster: Option<&ClusterName>, limit: usize) -> Result<Vec<Stored<Request>>> {
        let mut all = self.requests_where(|r| cluster.is_none_or(|c| &r.cluster == c));
        all.reverse();
        all.truncate(limit);
        Ok(all)
    }

    async fn requests_since(&self, since: jiff::Timestamp) -> Result<Vec<Stored<Request>>> {
        Ok(self.requests_where(|r| r.requested_at >= since))
    }

    async fn closed_since(&self, since: jiff::Timestamp) -> Result<Vec<Stored<Request>>> {
        Ok(self.requests_where(|r| match r.state {
            RequestState::Denied | RequestState::Cancelled => r.decided_at.is_some_and(|t| t >= since),
            RequestState::Expired => r.expires_at >= since,
            _ => false,
        }))
    }

    async fn attach_message(&self, id: RequestId, message: OutboxId) -> Result<()> {
        self.update_request(id, |r| r.message.is_none(), |r| r.message = Some(message));
        Ok(())
    }

    async fn mark_pending(&self, id: RequestId, plan: &str, mode: Mode, message: OutboxId) -> Result<bool> {
        Ok(self.update_request(
            id,
            |r| r.state == RequestState::Planning,
            |r| {
                r.state = RequestState::Pending;
                r.plan = Some(plan.to_owned());
                r.mode = Some(mode);
                r.message = Some(message);
            },
        ))
    }

    async fn close_unposted(&self, id: RequestId, note: &str) -> Result<Option<String>> {
        let mut url = None;
        self.update_request(
            id,
            |r| r.state.is_open(),
            |r| {
                r.state = RequestState::Rejected;
                r.note = Some(note.to_owned());
                url = r.response_url.clone();
            },
        );
        Ok(url)
    }

    async fn mark_rejected(&self, id: RequestId, reason: &str) -> Result<bool> {
        Ok(self.update_request(
            id,
            |r| r.state == RequestState::Planning,
            |r| {
                r.state = RequestState::Rejected;
                r.note = Some(reason.to_owned());
            },
        ))
    }

    async fn set_decision(
        &self,
        id: RequestId,
        approve: bool,
        by: &Person,
        now: jiff::Timestamp,
        note: Option<&str>,
    ) -> Result<bool> {
        Ok(self.update_request(
            id,
            |r| r.state == RequestState::Pending && r.expires_at > now,
            |r| {
                r.state = if approve {
                    RequestState::Approved
                } else {
                    RequestState::Denied
                };
                r.decided_by = Some(by.clone());
                r.decided_at = Some(now);
                if let Some(note) = note {
                    r.note = Some(note.to_owned());
                }
            },
        ))
    }

    async fn set_cancelled(&self, id: RequestId, by: &SlackUserId, now: jiff::Timestamp) -> Result<bool> {
        Ok(self.update_request(
            id,
            |r| r.state.is_open(),
            |r| {
                r.state = RequestState::Cancelled;
                r.decided_by = Some(Person::Slack(by.clone()));
                r.decided_at = Some(now);
            },
        ))
    }

    async fn add_approval(&self, id: RequestId, by: &Person, at: jiff::Timestamp) -> Result<Option<Vec<Approval>>> {
        let mut s = self.state();
        s.fault("add_approval")?;
        let Some(r) = s.requests.get_mut(&id) else {
            return Ok(None);
        };
        if r.state != RequestState::Pending || r.expires_at <= at {
            return Ok(None);
        }
        let Some(all) = Approval::added(&r.approvals, by, at) else {
            return Ok(None);
        };
        r.approvals = all.clone();
        Ok(Some(all))
    }

    async fn set_expired(&self, id: RequestId, now: jiff::Timestamp) -> Result<bool> {
        Ok(self.update_request(
            id,
            |r| r.state == RequestState::Pending && r.expires_at <= now,
            |r| r.state = RequestState::Expired,
        ))
    }

    async fn create_run(
        &self,
        request: RequestId,
        first_step: &str,
        data: &str,
        now: jiff::Timestamp,
    ) -> Result<RunId> {
        let mut s = self.state();
        s.fault("create_run")?;
        if let Some(run) = s.runs.values().find(|r| r.request_id == request) {
            return Ok(run.id);
        }
        let id = RunId::new(s.runs.keys().next_back().map_or(1, |k| k.get() + 1));
        s.runs.insert(
            id,
            Run {
                id,
                request_id: request,
                state: RunState::Running,
                step: first_step.to_owned(),
                data: data.to_owned(),
                started_at: now,
                finished_at: None,
                control: RunControl::default(),
            },
        );
        Ok(id)
    }

    async fn run(&self, id: RunId) -> Result<Option<Run>> {
        let mut s = self.state();
        s.fault("run")?;
        Ok(s.runs.get(&id).cloned())
    }

    async fn run_of_request(&self, request: RequestId) -> Result<Option<Run>> {
        Ok(self.state().runs.values().find(|r| r.request_id == request).cloned())
    }

    async fn runs_in(&self, state: RunState) -> Result<Vec<Stored<Run>>> {
        Ok(self.runs_where(|r| r.state == state))
    }

    async fn runs_finished_since(&self, since: jiff::Timestamp) -> Result<Vec<Stored<Run>>> {
        Ok(self.runs_where(|r| !r.state.is_open() && r.finished_at.is_some_and(|t| t >= since)))
    }

    async fn last_success(&self, cluster: &ClusterName) -> Result<Option<Request>> {
        let s = self.state();
        Ok(s.runs
            .values()
            .rev()
            .filter(|run| run.state == RunState::Succeeded)
            .filter_map(|run| s.requests.get(&run.request_id))
            .find(|r| &r.cluster == cluster)
            .cloned())
    }

    async fn set_step(&self, run: RunId, next_step: &str, data: &str, fence: Option<&Fence>) -> Result<()> {
        self.fenced_run(
            run,
            fence,
            |r| r.state.is_open(),
            |r| {
                r.step = next_step.to_owned();
                r.data = data.to_owned();
            },
        )?;
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
        self.fenced_run(
            run,
            fence,
            |r| r.state.is_open(),
            |r| {
                r.state = state;
                r.data = data.to_owned();
                r.finished_at = Some(at);
            },
        )
    }

    async fn set_needs_attention(&self, run: RunId, data: Option<&str>, fence: Option<&Fence>) -> Result<bool> {
        self.fenced_run(
            run,
            fence,
            |r| r.state == RunState::Running,
            |r| {
                r.state = RunState::NeedsAttention;
                if let Some(d) = data {
                    r.data = d.to_owned();
                }
                r.control.resume_asked_by = None;
                r.control.resume_asked_at = None;
            },
        )
    }

    async fn set_running(&self, run: RunId, fence: Option<&Fence>) -> Result<bool> {
        self.fenced_run(
            run,
            fence,
            |r| r.state == RunState::NeedsAttention,
            |r| {
                r.state = RunState::Running;
                r.control.resume_asked_by = None;
                r.control.resume_asked_at = None;
            },
        )
    }

    async fn set_resume_asked(&self, run: RunId, by: &SlackUserId, at: jiff::Timestamp) -> Result<bool> {
        Ok(self.update_run(
            run,
            |r| r.state == RunState::NeedsAttention && r.control.resume_asked_by.is_none(),
            |r| {
                r.control.resume_asked_by = Some(by.clone());
                r.control.resume_asked_at = Some(at.as_millisecond());
            },
        ))
    }

    async fn set_resume_decision(&self, run: RunId, token: i64, by: &SlackUserId, approve: bool) -> Result<bool> {
        Ok(self.update_run(
            run,
            |r| {
                r.state == RunState::NeedsAttention
                    && r.control.resume_asked_at == Some(token)
                    && (!approve || r.control.resume_asked_by.as_ref() != Some(by))
            },
            |r| {
                if approve {
                    r.state = RunState::Running;
                    r.control.resumed_by = Some(by.clone());
                }
                r.control.resume_asked_by = None;
                r.control.resume_asked_at = None;
            },
        ))
    }

    async fn set_abandoned(&self, run: RunId, by: &Person, reason: &str, at: jiff::Timestamp) -> Result<bool> {
        Ok(self.update_run(
            run,
            |r| r.state.is_open(),
            |r| {
                r.state = RunState::Abandoned;
                r.control.abandoned_by = Some(by.clone());
                r.control.abandon_reason = Some(reason.to_owned());
                r.finished_at = Some(at);
            },
        ))
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
        let mut s = self.state();
        s.fault("journal")?;
        s.check(fence)?;
        let seq = s
            .journal
            .range((run, i64::MIN)..=(run, i64::MAX))
            .next_back()
            .map_or(1, |((_, n), _)| n + 1);
        s.journal.insert(
            (run, seq),
            JournalEntry {
                run_id: run,
                seq,
                at,
                step: step.to_owned(),
                event: event.to_owned(),
                detail: detail.to_owned(),
            },
        );
        Ok(())
    }

    async fn journal_of(&self, run: RunId) -> Result<Vec<JournalEntry>> {
        Ok(self
            .state()
            .journal
            .range((run, i64::MIN)..=(run, i64::MAX))
            .map(|(_, e)| e.clone())
            .collect())
    }

    async fn journal_since(&self, since: jiff::Timestamp) -> Result<Vec<JournalEntry>> {
        let mut lines: Vec<_> = self
            .state()
            .journal
            .values()
            .filter(|e| e.at >= since)
            .cloned()
            .collect();
        lines.sort_by_key(|e| (e.at, e.run_id, e.seq));
        Ok(lines)
    }

    async fn audit(
        &self,
        at: jiff::Timestamp,
        user: &str,
        action: &str,
        request: Option<RequestId>,
        outcome: &str,
    ) -> Result<()> {
        self.state().audit.push(AuditEntry {
            at,
            user: user.to_owned(),
            action: action.to_owned(),
            request_id: request,
            outcome: outcome.to_owned(),
        });
        Ok(())
    }

    async fn audit_since(&self, since: jiff::Timestamp) -> Result<Vec<AuditEntry>> {
        Ok(self.state().audit.iter().filter(|a| a.at >= since).cloned().collect())
    }

    async fn first_sighting(&self, signature: &str, now: jiff::Timestamp) -> Result<bool> {
        let mut s = self.state();
        if s.seen.contains_key(signature) {
            return Ok(false);
        }
        s.seen.insert(signature.to_owned(), now);
        Ok(true)
    }

    async fn forget_requests_before(&self, before: jiff::Timestamp, batch: usize) -> Result<usize> {
        let mut s = self.state();
        let mut old: Vec<_> = s
            .seen
            .iter()
            .filter(|(_, at)| **at < before)
            .map(|(k, at)| (*at, k.clone()))
            .collect();
        old.sort();
        old.truncate(batch);
        for (_, k) in &old {
            s.seen.remove(k);
        }
        Ok(old.len())
    }

    async fn enqueue(&self, m: &Outgoing<'_>, now: jiff::Timestamp) -> Result<OutboxId> {
        let mut s = self.state();
        s.check(m.fence)?;
        if let Some(key) = m.dedup_key
            && let Some(first) = s.outbox.values().find(|i| i.dedup_key.as_deref() == Some(key))
        {
            return Ok(first.id);
        }
        let id = OutboxId::new(s.outbox.keys().next_back().map_or(1, |k| k.get() + 1));
        s.outbox.insert(
            id,
            OutboxItem {
                id,
                ordering_key: m.ordering_key.to_owned(),
                kind: m.kind.to_owned(),
                channel: m.channel.map(|c| c.as_str().to_owned()),
                target: m.target,
                response_url: m.response_url.map(str::to_owned),
                body: m.body.to_owned(),
                attempts: 0,
                next_attempt_at: now,
                delivered_ts: None,
                state: "pending".to_owned(),
                last_error: None,
                dedup_key: m.dedup_key.map(str::to_owned),
                started_at: None,
                via: None,
            },
        );
        Ok(id)
    }

    async fn outbox_heads(&self) -> Result<Vec<OutboxItem>> {
        let s = self.state();
        let mut heads: BTreeMap<&str, &OutboxItem> = BTreeMap::new();
        for item in s.outbox.values().filter(|i| i.state == "pending") {
            heads.entry(item.ordering_key.as_str()).or_insert(item);
        }
        let mut heads: Vec<OutboxItem> = heads.into_values().cloned().collect();
        heads.sort_by_key(|i| i.id);
        Ok(heads)
    }

    async fn outbox_item(&self, id: OutboxId) -> Result<Option<OutboxItem>> {
        Ok(self.state().outbox.get(&id).cloned())
    }

    async fn newer_update_pending(&self, item: &OutboxItem) -> Result<bool> {
        Ok(self.state().outbox.values().any(|i| {
            i.kind == "update"
                && i.state == "pending"
                && i.target.is_some()
                && i.target == item.target
                && i.id > item.id
        }))
    }

    async fn outbox_delivered(&self, id: OutboxId, ts: Option<&str>, fence: Option<&Fence>) -> Result<()> {
        self.update_item(id, fence, |i| {
            i.state = "delivered".to_owned();
            i.delivered_ts = ts.map(str::to_owned);
            i.last_error = None;
        })
    }

    async fn outbox_skipped(&self, id: OutboxId, fence: Option<&Fence>) -> Result<()> {
        self.update_item(id, fence, |i| i.state = "superseded".to_owned())
    }

    async fn outbox_retry(
        &self,
        id: OutboxId,
        error: &str,
        next_attempt_at: jiff::Timestamp,
        fence: Option<&Fence>,
    ) -> Result<()> {
        self.update_item(id, fence, |i| {
            i.attempts += 1;
            i.last_error = Some(error.to_owned());
            i.next_attempt_at = next_attempt_at;
        })
    }

    async fn outbox_failed(&self, id: OutboxId, error: &str, fence: Option<&Fence>) -> Result<()> {
        self.update_item(id, fence, |i| {
            i.state = "failed".to_owned();
            i.attempts += 1;
            i.last_error = Some(error.to_owned());
        })
    }

    async fn outbox_all(&self) -> Result<Vec<OutboxItem>> {
        Ok(self.state().outbox.values().cloned().collect())
    }

    async fn outbox_attempt(&self, id: OutboxId, via: &str, at: jiff::Timestamp, fence: Option<&Fence>) -> Result<()> {
        self.update_item(id, fence, |i| {
            i.started_at = i.started_at.or(Some(at));
            i.via = Some(via.to_owned());
        })
    }

    async fn response_url_uses(&self, url: &str, except: OutboxId) -> Result<i64> {
        let n = self
            .state()
            .outbox
            .values()
            .filter(|i| {
                i.id != except && i.response_url.as_deref() == Some(url) && i.via.as_deref() == Some(VIA_RESPONSE_URL)
            })
            .count();
        Ok(i64::try_from(n).unwrap_or(i64::MAX))
    }

    async fn remember_response_url(&self, r: &ResponseUrl) -> Result<()> {
        self.state()
            .response_urls
            .entry(r.url.clone())
            .or_insert_with(|| r.clone());
        Ok(())
    }

    async fn forget_response_urls_before(&self, before: jiff::Timestamp, batch: usize) -> Result<usize> {
        let mut s = self.state();
        let mut old: Vec<(jiff::Timestamp, String)> = s
            .response_urls
            .values()
            .filter(|r| r.issued_at < before)
            .map(|r| (r.issued_at, r.url.clone()))
            .collect();
        old.sort();
        old.truncate(batch);
        for (_, url) in &old {
            s.response_urls.remove(url);
        }
        Ok(old.len())
    }

    async fn response_url(&self, url: &str) -> Result<Option<ResponseUrl>> {
        Ok(self.state().response_urls.get(url).cloned())
    }

    async fn record_global_cluster(&self, r: &GlobalClusterRecord) -> Result<()> {
        let mut s = self.state();
        let key = r.cluster.to_string();
        if s.global_clusters.get(&key).is_none_or(|stored| r.supersedes(stored)) {
            s.global_clusters.insert(key, r.clone());
        }
        Ok(())
    }

    async fn global_cluster_record(&self, cluster: &ClusterName) -> Result<Option<GlobalClusterRecord>> {
        Ok(self.state().global_clusters.get(cluster.as_str()).cloned())
    }

    async fn global_cluster_records(&self) -> Result<Vec<Stored<GlobalClusterRecord>>> {
        Ok(self.state().global_clusters.values().cloned().map(Ok).collect())
    }

    async fn drop_global_cluster_record(&self, cluster: &ClusterName, global_cluster_id: &str) -> Result<bool> {
        let mut s = self.state();
        let named = s
            .global_clusters
            .get(cluster.as_str())
            .is_some_and(|r| r.global_cluster_id == global_cluster_id);
        if named {
            s.global_clusters.remove(cluster.as_str());
        }
        Ok(named)
    }

    async fn store_id(&self) -> Result<String> {
        let mut s = self.state();
        if s.id.is_empty() {
            s.id = MemoryStore::fresh_id();
        }
        Ok(s.id.clone())
    }
}
