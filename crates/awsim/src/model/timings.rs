//! How long the emulated control plane takes for each thing that changes over time. Every duration is
//! configurable (scenario file, admin API, library handle) so that tests can run transitions in
//! milliseconds and the demo can run them slowly enough to watch.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Durations of the emulated transitions, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Timings {
    /// RemoveFromGlobalCluster: how long the detached cluster stays in its transitional status before it
    /// is `available` with a writer instance.
    pub detach_ms: u64,
    /// Managed failover and switchover: how long `FailoverState` stays `pending`.
    pub pending_ms: u64,
    /// Managed failover (data loss allowed): time in `failing-over` before the target is the writer.
    pub failover_ms: u64,
    /// Switchover: time in `switching-over` before the roles swap, on top of the target's replication lag
    /// (the target must catch up first, so a larger lag makes a longer switchover).
    pub switchover_ms: u64,
    /// How long an old primary takes to rejoin as a secondary once its Region is reachable again.
    pub rejoin_ms: u64,
    /// Route 53: how long a change stays `PENDING` before `GetChange` reports `INSYNC`.
    pub dns_propagation_ms: u64,
    /// CreateGlobalCluster: how long the new global cluster stays `creating` before it is `available`.
    pub create_global_ms: u64,
    /// CreateDBCluster: how long a new cluster stays `creating` before it is `available`.
    pub create_cluster_ms: u64,
    /// CreateDBInstance: how long a new instance stays `creating` before it is `available`.
    pub create_instance_ms: u64,
}

impl Default for Timings {
    /// Slow enough to watch in the demo, far quicker than AWS (minutes).
    fn default() -> Self {
        Timings {
            detach_ms: 4_000,
            pending_ms: 1_000,
            failover_ms: 4_000,
            switchover_ms: 4_000,
            rejoin_ms: 4_000,
            dns_propagation_ms: 2_000,
            create_global_ms: 2_000,
            create_cluster_ms: 4_000,
            create_instance_ms: 4_000,
        }
    }
}

impl Timings {
    /// Every transition within a few milliseconds: for tests that do not look at intermediate states.
    pub fn instant() -> Self {
        Timings {
            detach_ms: 1,
            pending_ms: 1,
            failover_ms: 1,
            switchover_ms: 1,
            rejoin_ms: 1,
            dns_propagation_ms: 1,
            create_global_ms: 1,
            create_cluster_ms: 1,
            create_instance_ms: 1,
        }
    }

    pub fn detach(&self) -> Duration {
        Duration::from_millis(self.detach_ms)
    }
    pub fn pending(&self) -> Duration {
        Duration::from_millis(self.pending_ms)
    }
    pub fn failover(&self) -> Duration {
        Duration::from_millis(self.failover_ms)
    }
    pub fn switchover(&self) -> Duration {
        Duration::from_millis(self.switchover_ms)
    }
    pub fn rejoin(&self) -> Duration {
        Duration::from_millis(self.rejoin_ms)
    }
    pub fn dns_propagation(&self) -> Duration {
        Duration::from_millis(self.dns_propagation_ms)
    }
    pub fn create_global(&self) -> Duration {
        Duration::from_millis(self.create_global_ms)
    }
    pub fn create_cluster(&self) -> Duration {
        Duration::from_millis(self.create_cluster_ms)
    }
    pub fn create_instance(&self) -> Duration {
        Duration::from_millis(self.create_instance_ms)
    }
}
