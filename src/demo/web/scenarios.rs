//! The sandbox's ready scenarios: each a starting world on the emulator (Regions, timings, faults), a
//! one-line goal for the page, and what the scenario does by itself while it runs.

use super::sandbox::Sandbox;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A scenario, by the id the page and the API use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScenarioId {
    Free,
    Switchover,
    PrimaryLost,
    EastLostDuringDetach,
    DetachRebuild,
}

/// What the page shows of a scenario.
#[derive(Debug, Clone, Serialize)]
pub struct About {
    pub id: &'static str,
    pub title: &'static str,
    /// One line: what to achieve, with the command to start from.
    pub goal: &'static str,
}

impl ScenarioId {
    pub const ALL: [ScenarioId; 5] = [
        ScenarioId::Free,
        ScenarioId::Switchover,
        ScenarioId::PrimaryLost,
        ScenarioId::EastLostDuringDetach,
        ScenarioId::DetachRebuild,
    ];

    pub fn as_str(self) -> &'static str {
        self.about().id
    }

    /// The scenario named `id` (`free`, `switchover`, `primary-lost`, `east-lost-during-detach`,
    /// `detach-rebuild`).
    pub fn parse(id: &str) -> Option<ScenarioId> {
        ScenarioId::ALL.into_iter().find(|s| s.as_str() == id)
    }

    pub fn about(self) -> About {
        let (id, title, goal) = match self {
            ScenarioId::Free => (
                "free",
                "Free play",
                "No goal: both Regions healthy, us-east-1 writing. Ask, approve, and break things with the controls.",
            ),
            ScenarioId::Switchover => (
                "switchover",
                "A planned switchover",
                "Move the writer to us-west-2 without losing data: as alice, /aurora failover orders --mode switchover, \
                 approved by bob or carol, until the thread says DNS points at us-west-2.",
            ),
            ScenarioId::PrimaryLost => (
                "primary-lost",
                "The primary Region is lost",
                "us-east-1 is unreachable, and Route 53's API with it: as alice, /aurora failover orders (then a mode \
                 the bot offers), approved by a DBA. What does the thread say about DNS until us-east-1 is back?",
            ),
            ScenarioId::EastLostDuringDetach => (
                "east-lost-during-detach",
                "us-east-1 lost during a detach",
                "As alice, /aurora failover orders --mode detach, approved by a DBA: us-east-1 goes down the moment \
                 the detach starts. Does the run finish, and does the thread tell the truth?",
            ),
            ScenarioId::DetachRebuild => (
                "detach-rebuild",
                "A detach, then a rebuild",
                "Detach orders into us-west-2 (/aurora failover orders --mode detach), then restore protection with \
                 /aurora rebuild orders --in us-east-1, each approved by a DBA.",
            ),
        };
        About { id, title, goal }
    }
}

/// The sandbox's world: the demo's two-Region global cluster, with operations slow enough to watch.
pub fn world() -> awsim::Scenario {
    let mut scenario = awsim::Scenario::two_region_example();
    scenario.timings = awsim::Timings {
        detach_ms: 4_000,
        pending_ms: 1_000,
        failover_ms: 4_000,
        switchover_ms: 4_000,
        dns_propagation_ms: 2_000,
        create_global_ms: 2_000,
        create_cluster_ms: 3_000,
        create_instance_ms: 3_000,
        ..awsim::Timings::default()
    };
    scenario
}

/// Loads `id`'s starting world into the emulator (faults and outages of the previous one gone).
pub fn prepare(admin: &awsim::Admin, id: ScenarioId) {
    // The world is the emulator's own example: it always validates.
    let _ = admin.load_scenario(world());
    admin.clear_faults();
    if id == ScenarioId::PrimaryLost {
        let _ = admin.region_down("us-east-1", awsim::OutageMode::Reset);
    }
}

/// What `id` does by itself while it runs, until `stop`: in `east-lost-during-detach`, us-east-1
/// goes down as soon as the emulator has received RemoveFromGlobalCluster.
pub async fn watch(sandbox: Arc<Sandbox>, id: ScenarioId, stop: CancellationToken) {
    if id != ScenarioId::EastLostDuringDetach {
        return;
    }
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        if !sandbox.admin().calls_to("RemoveFromGlobalCluster").is_empty() {
            let _ = sandbox.admin().region_down("us-east-1", awsim::OutageMode::Reset);
            sandbox.notice("The scenario took us-east-1 down: RemoveFromGlobalCluster had just reached AWS.");
            return;
        }
    }
}
