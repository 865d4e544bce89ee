//! Leases: which bot instance executes a cluster's run, and which one delivers the outbox, when two
//! instances (one per Region) share one store. A lease has an owner (this process's instance id), an
//! expiry and a fencing token that grows with every change of owner ([`crate::store::Lease`]).
//!
//! Invariants kept here:
//! - an instance acts for a scope (a mutating AWS call, a Slack post, a fenced store write) only while
//!   it holds the scope's lease, and renews it (a conditional write) right before each mutating AWS
//!   call and each Slack post: a renewal refused means another instance took over, and this one stops
//!   touching what the lease covers;
//! - every write a holder makes for what the lease covers carries its [`Fence`], which the store
//!   refuses once the token changed, so that a paused or partitioned former holder cannot write after
//!   a takeover even if it does not know yet;
//! - a holder renews every [`LeaseSettings::renew`] in the background ([`Leaseholder::keep`]); a lease
//!   not renewed for [`LeaseSettings::ttl`] (its holder died, or lost the store) is taken over by the
//!   next instance that looks (every `renew`).
//!
//! Clocks: expiry is stamped with the holder's clock and judged with the taker's. Instances are assumed
//! NTP-synchronised with a skew well under the lease's length; a skew only moves the moment of a
//! takeover (safety rests on the fencing token, not on the clocks). ARCHITECTURE.md has the timings.

use crate::ports::Clock;
pub use crate::settings::LeaseSettings;
use crate::store::{Fence, Lease, LeaseScope, Store, StoreError};
use crate::types::Region;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Who this bot process is: a name people read (`/aurora status`, the audit, `/readyz`), its Region,
/// and the owner id its leases carry (`name#random`: new for every process, so a restarted instance
/// takes its own old leases over like any other, with a new token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub name: String,
    pub region: Option<Region>,
    pub id: String,
}

impl Instance {
    /// An instance named `name` in `region`, with a fresh owner id.
    pub fn new(name: &str, region: Option<Region>) -> Instance {
        let id = format!("{name}#{:08x}", fastrand::u32(..));
        Instance {
            name: name.to_owned(),
            region,
            id,
        }
    }

    /// How people see an owner id: `name (Region)` for this instance, the name part for another.
    pub fn describe_owner(&self, owner: &str) -> String {
        if owner == self.id {
            return self.to_string();
        }
        owner.split_once('#').map_or(owner, |(name, _)| name).to_owned()
    }
}

impl std::fmt::Display for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.region {
            Some(r) => write!(f, "{} ({r})", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// Takes, renews and gives back this instance's leases.
pub struct Leaseholder {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub instance: Instance,
    pub settings: LeaseSettings,
}

impl std::fmt::Debug for Leaseholder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leaseholder")
            .field("instance", &self.instance)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Leaseholder {
    /// Takes `scope`'s lease if it is free or already ours (renewing it); `Ok(None)` while another
    /// instance holds it unexpired ([`Self::holder`] says which).
    pub async fn take(&self, scope: &LeaseScope) -> Result<Option<Fence>, StoreError> {
        let lease = self
            .store
            .take_lease(scope, &self.instance.id, self.clock.now(), self.settings.ttl)
            .await?;
        Ok(lease.map(|l| l.fence()))
    }

    /// Who holds `scope`'s lease now, if anyone ever did.
    pub async fn holder(&self, scope: &LeaseScope) -> Result<Option<Lease>, StoreError> {
        self.store.lease(scope).await
    }

    /// Extends `fence`'s lease: `Ok(false)` when another instance took it over.
    pub async fn renew(&self, fence: &Fence) -> Result<bool, StoreError> {
        self.store.renew_lease(fence, self.clock.now(), self.settings.ttl).await
    }

    /// Gives `fence`'s lease back (it expires now), so that another instance need not wait for it.
    pub async fn release(&self, fence: &Fence) {
        if let Err(e) = self.store.release_lease(fence, self.clock.now()).await {
            warn!(error = %e, scope = %fence.scope, "cannot give the lease back; it expires by itself");
        }
    }

    /// This instance is the only one using the store (SQLite, or a table configured for one
    /// instance): the leases of earlier processes end now, instead of after their expiry.
    pub async fn end_earlier_processes_leases(&self) -> Result<(), StoreError> {
        for lease in self.store.leases().await? {
            if lease.owner != self.instance.id && lease.expires_at > self.clock.now() {
                let fence = lease.fence();
                if self.store.release_lease(&fence, self.clock.now()).await? {
                    info!(scope = %lease.scope, owner = %lease.owner, "ended the lease of an earlier process");
                }
            }
        }
        Ok(())
    }

    /// Keeps `fence`'s lease until `stop` is cancelled: renews it every `renew`; cancels `lost` when a
    /// renewal is refused (another instance took over), or when renewals keep failing (the store is
    /// unreachable) until the lease may have expired: from then on the holder cannot know it still
    /// holds it, and must stop acting.
    pub async fn keep(&self, fence: Fence, stop: CancellationToken, lost: CancellationToken) {
        let mut renewed_at = tokio::time::Instant::now();
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(self.settings.renew) => {}
            }
            match self.renew(&fence).await {
                Ok(true) => renewed_at = tokio::time::Instant::now(),
                Ok(false) => {
                    warn!(scope = %fence.scope, token = fence.token, "another instance took this lease over");
                    lost.cancel();
                    return;
                }
                Err(e) if renewed_at.elapsed() + self.settings.renew >= self.settings.ttl => {
                    warn!(error = %e, scope = %fence.scope, "cannot renew the lease before it expires; stopping");
                    lost.cancel();
                    return;
                }
                Err(e) => warn!(error = %e, scope = %fence.scope, "cannot renew the lease; trying again"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_shows_its_name_and_region_and_hides_the_random_part_of_others() {
        let me = Instance::new("bot-east", Region::parse("us-east-1"));
        assert!(me.id.starts_with("bot-east#"));
        assert_eq!(me.to_string(), "bot-east (us-east-1)");
        assert_eq!(me.describe_owner(&me.id), "bot-east (us-east-1)");
        assert_eq!(me.describe_owner("bot-west#0badf00d"), "bot-west");
        assert_ne!(Instance::new("bot-east", None).id, me.id);
    }
}
