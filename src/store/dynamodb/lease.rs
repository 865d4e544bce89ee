//! Leases and fencing on DynamoDB, without transactions.
//!
//! A lease is one item (`LEASE#<scope>`, listed in gsi1 under `LEASES`), taken and renewed by a
//! conditional write on the owner, token and expiry read just before (strongly consistent).
//!
//! A fenced write first reads the lease (strongly consistent) and is refused when it changed hands.
//! That check and the write are two calls, so a holder paused between them could still write after a
//! takeover; the run's item closes that window for what the run writes: it carries `fence`, the
//! highest token that wrote to it, stamped by the new holder at takeover (`adopt_run`), and every
//! fenced write of the run's item is conditional on `fence` being absent or at most its own token.
//! A journal line is reserved through the run's item first (`next_seq`, under the same condition)
//! and then put if absent; at adoption the new holder puts a tombstone on every number reserved and
//! never written, so an old holder's late put fails. A message the run queues is reserved the same
//! way (`out_reserved`, `out_dedup` on the run's item, under the fence) before its dedup claim and its
//! item are put; at adoption an item reserved and never written gets a tombstone (a superseded item,
//! so the late put fails) and its dedup claim is given back (the new holder can queue that message).
//! A record of a delivery stamps the outbox lease's token on the item (`fence`) on the same
//! condition, so a former holder cannot record over a delivery the new holder already recorded.

use super::DynamoDbStore;
use super::call::{Change, Query, Sk};
use super::item::{self, Item, n, s};
use super::keys::{self, BY_STATE};
use crate::store::rows::*;
use crate::store::{Result, StoreError, grant_lease, lease_end};

/// How many times `take_lease` reads the lease again after another instance changed it first.
const LEASE_ATTEMPTS: usize = 5;

fn lease_key(scope: &str) -> keys::Key {
    (format!("LEASE#{scope}"), "LEASE".into())
}

fn lease_of(i: &Item) -> std::result::Result<Lease, DecodeError> {
    let f = item::Fields {
        item: i,
        table: "leases",
        key: item::key_of(i).map(|k| k.0).unwrap_or_default(),
    };
    Ok(Lease {
        scope: f.str("scope")?,
        owner: f.str("owner")?,
        token: f.num("token")?,
        expires_at: f.time("expires_at")?,
    })
}

/// The condition a fenced write of a run's item adds, with its values.
pub fn fenced(change: Change, fence: Option<&Fence>) -> Change {
    match fence {
        None => change,
        Some(f) => change
            .and("attribute_not_exists(#fence) OR #fence <= :fence")
            .value(":fence", n(f.token))
            .set("fence", n(f.token)),
    }
}

impl DynamoDbStore {
    pub(super) async fn lease_now(&self, scope: &str) -> Result<Option<Lease>> {
        match self.table.get(&lease_key(scope)).await? {
            Some(i) => lease_of(&i).map(Some).map_err(StoreError::Decode),
            None => Ok(None),
        }
    }

    /// Refuses a write under `fence` when its lease has changed hands (read strongly consistently).
    pub(super) async fn check_fence(&self, fence: Option<&Fence>) -> Result<()> {
        let Some(f) = fence else { return Ok(()) };
        let now = self.lease_now(&f.scope).await?;
        match &now {
            Some(l) if l.owner == f.owner && l.token == f.token => Ok(()),
            _ => Err(f.refused(now.as_ref())),
        }
    }

    /// After a fenced write of run `run` did not apply: `Fenced` when a newer holder stamped the run.
    pub(super) async fn fence_refusal(&self, run: RunId, fence: Option<&Fence>) -> Result<()> {
        let Some(f) = fence else { return Ok(()) };
        let stamped = self.table.get(&keys::run(run)).await?.and_then(|i| {
            i.get("fence")
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse::<i64>().ok())
        });
        if stamped.is_some_and(|t| t > f.token) {
            return Err(f.refused(self.lease_now(&f.scope).await?.as_ref()));
        }
        Ok(())
    }

    pub(super) async fn take(
        &self,
        scope: &str,
        owner: &str,
        now: jiff::Timestamp,
        ttl: std::time::Duration,
    ) -> Result<Option<Lease>> {
        for _ in 0..LEASE_ATTEMPTS {
            let current = self.lease_now(scope).await?;
            let Some(next) = grant_lease(current.as_ref(), scope, owner, now, ttl) else {
                return Ok(None);
            };
            let won = match &current {
                None => {
                    let mut it = item::keyed(&lease_key(scope));
                    item::index(&mut it, BY_STATE, "LEASES".into(), scope.to_owned());
                    it.insert("scope".into(), s(scope));
                    it.insert("owner".into(), s(&next.owner));
                    it.insert("token".into(), n(next.token));
                    it.insert("expires_at".into(), n(next.expires_at.as_millisecond()));
                    self.table.put_new(it).await?
                }
                Some(c) => {
                    let change = Change::when("#owner = :was AND #token = :token AND #expires_at = :until")
                        .value(":was", s(&c.owner))
                        .value(":token", n(c.token))
                        .value(":until", n(c.expires_at.as_millisecond()))
                        .set("owner", s(&next.owner))
                        .set("token", n(next.token))
                        .set("expires_at", n(next.expires_at.as_millisecond()));
                    self.table.update(&lease_key(scope), change).await?.is_some()
                }
            };
            if won {
                return Ok(Some(next));
            }
        }
        Ok(None)
    }

    /// Sets the lease's expiry to `until` if `fence` still names its owner and token.
    pub(super) async fn extend(&self, fence: &Fence, until: jiff::Timestamp) -> Result<bool> {
        let change = Change::when("#owner = :owner AND #token = :token")
            .value(":owner", s(&fence.owner))
            .value(":token", n(fence.token))
            .set("expires_at", n(until.as_millisecond()));
        Ok(self.table.update(&lease_key(&fence.scope), change).await?.is_some())
    }

    pub(super) async fn renew(&self, fence: &Fence, now: jiff::Timestamp, ttl: std::time::Duration) -> Result<bool> {
        self.extend(fence, lease_end(now, ttl)).await
    }

    pub(super) async fn all_leases(&self) -> Result<Vec<Lease>> {
        let listed = self.table.query(&Query::on(Some(BY_STATE), "LEASES")).await?;
        let mut leases = Vec::new();
        for key in listed.iter().filter_map(item::key_of) {
            if let Some(i) = self.table.get(&key).await? {
                leases.push(lease_of(&i).map_err(StoreError::Decode)?);
            }
        }
        Ok(leases)
    }

    /// Stamps `fence`'s token on the run, then tombstones every journal number reserved and not written.
    pub(super) async fn adopt(&self, run: RunId, fence: &Fence) -> Result<()> {
        let change = fenced(Change::existing(), Some(fence));
        let Some(after) = self.table.update(&keys::run(run), change).await? else {
            return self.fence_refusal(run, Some(fence)).await;
        };
        self.close_reserved_outbox(&after, fence).await?;
        let reserved = after
            .get("next_seq")
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0);
        let q = Query::on(None, keys::run(run).0).sk(Sk::Begins("J#".into()));
        let written: std::collections::BTreeSet<i64> = self
            .table
            .query(&q)
            .await?
            .iter()
            .filter_map(|i| i.get("seq").and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()))
            .collect();
        for seq in 1..=reserved {
            if !written.contains(&seq) {
                let mut tomb = item::keyed(&keys::journal(run, seq));
                tomb.insert("run_id".into(), n(run.get()));
                tomb.insert("seq".into(), n(seq));
                tomb.insert("tombstone".into(), n(fence.token));
                self.table.put_new(tomb).await?;
            }
        }
        Ok(())
    }

    /// The run a cluster's lease covers (`cluster/<name>`): the run of the request holding the
    /// cluster's lock (a run's id is its request's), if the scope is a cluster's and it has one.
    pub(super) async fn run_under(&self, fence: &Fence) -> Result<Option<RunId>> {
        let Some(cluster) = fence
            .scope
            .strip_prefix("cluster/")
            .and_then(crate::types::ClusterName::parse)
        else {
            return Ok(None);
        };
        let holder = crate::store::Store::cluster_lock(self, &cluster).await?;
        Ok(holder.map(|r| RunId::new(r.get())))
    }

    /// Reserves outbox item `id` (with its dedup key) for `run` under `fence`, through the run's item:
    /// refused once a newer holder adopted the run. A run not (yet) stored reserves nothing.
    pub(super) async fn reserve_outbox(
        &self,
        run: RunId,
        fence: &Fence,
        id: OutboxId,
        dedup: Option<&str>,
    ) -> Result<()> {
        let change = fenced(Change::existing(), Some(fence))
            .set("out_reserved", n(id.get()))
            .set_or_remove("out_dedup", dedup.map(s));
        if self.table.update(&keys::run(run), change).await?.is_none() {
            self.fence_refusal(run, Some(fence)).await?;
        }
        Ok(())
    }

    /// At adoption: the message a former holder reserved and never queued gets a tombstone (its late
    /// put then fails), and its dedup claim is given back.
    async fn close_reserved_outbox(&self, run_item: &Item, fence: &Fence) -> Result<()> {
        let Some(id) = run_item
            .get("out_reserved")
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<i64>().ok())
        else {
            return Ok(());
        };
        let id = OutboxId::new(id);
        if self.table.get(&keys::outbox(id)).await?.is_some() {
            return Ok(());
        }
        let stand_in = Outgoing {
            ordering_key: "fenced",
            kind: "reply",
            channel: None,
            target: None,
            response_url: None,
            body: "{}",
            dedup_key: None,
            fence: None,
        };
        let mut tomb = item::new_outbox(id, &stand_in, jiff::Timestamp::now());
        tomb.remove(BY_STATE.pk);
        tomb.remove(BY_STATE.sk);
        tomb.insert("state".into(), s("superseded"));
        tomb.insert(
            "last_error".into(),
            s("reserved by a former holder of the run's lease and never queued"),
        );
        tomb.insert("fence".into(), n(fence.token));
        if self.table.put_new(tomb).await?
            && let Some(key) = run_item.get("out_dedup").and_then(|v| v.as_s().ok())
        {
            let values = Item::from([(":id".to_owned(), n(id.get()))]);
            self.table.delete_if(&keys::dedup(key), "#id = :id", values).await?;
        }
        Ok(())
    }

    /// Reserves the next journal number of `run` under `fence` (through the run's item).
    pub(super) async fn reserve_seq(&self, run: RunId, fence: &Fence) -> Result<i64> {
        let change = fenced(Change::existing(), Some(fence)).add("next_seq", n(1));
        let Some(after) = self.table.update(&keys::run(run), change).await? else {
            self.fence_refusal(run, Some(fence)).await?;
            return Err(StoreError::DynamoDb(format!(
                "run {run} does not exist: no journal line"
            )));
        };
        after
            .get("next_seq")
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| StoreError::DynamoDb(format!("run {run} has no next_seq")))
    }

    /// Raises the run's `next_seq` to at least `seq` (after a line written without a reservation).
    pub(super) async fn catch_up_seq(&self, run: RunId, seq: i64) -> Result<()> {
        let change = Change::when("attribute_not_exists(#next_seq) OR #next_seq < :seq")
            .value(":seq", n(seq))
            .set("next_seq", n(seq));
        self.table.update(&keys::run(run), change).await?;
        Ok(())
    }
}
