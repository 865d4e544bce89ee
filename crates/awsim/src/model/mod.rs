//! The emulated control plane: every resource, every transition over time, every injected fault, and
//! the log of calls received. One `World` behind one mutex: the emulator favours obviously-correct
//! ordering over parallelism.
//!
//! Time: transitions are timers on a logical timeline. Before anything reads or changes the world it is
//! advanced to "now", firing every due timer in order of its due time, so what a client observes is
//! exactly what a control plane running continuously would show, with no background task.

pub mod error;
pub mod iam;
pub mod rds;
pub mod resolver;
pub mod route53;
pub mod secrets;
pub mod timings;

use crate::scenario::Scenario;
pub use error::ApiError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use timings::Timings;
use tokio::time::Instant;

/// How a Region that is down fails the requests sent to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutageMode {
    /// The connection is closed without a response, as when a Region's endpoint is unreachable.
    #[default]
    Reset,
    /// HTTP 503 `ServiceUnavailable`.
    Unavailable,
}

/// Maps the monotonic clock the emulator runs on to wall-clock timestamps for the wire.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    origin: Instant,
    wall: jiff::Timestamp,
}

impl Clock {
    pub fn new() -> Self {
        Clock {
            origin: Instant::now(),
            wall: jiff::Timestamp::now(),
        }
    }

    /// The wall-clock time of a moment on the emulator's timeline.
    pub fn wall(&self, at: Instant) -> jiff::Timestamp {
        let offset = at.saturating_duration_since(self.origin);
        self.wall + jiff::SignedDuration::try_from(offset).unwrap_or(jiff::SignedDuration::MAX)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// One API call as the emulator received it, and what it answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    pub seq: u64,
    /// `rds`, `route53`, `monitoring`, `sts`, `iam` or `secretsmanager`.
    pub service: String,
    /// The Region of the request's SigV4 credential scope.
    pub region: String,
    /// The API action, e.g. `RemoveFromGlobalCluster`, `ChangeResourceRecordSets`.
    pub action: String,
    /// The request's parameters that identify what it acts on.
    pub params: BTreeMap<String, String>,
    /// RFC 3339 time of receipt.
    pub at: String,
    /// HTTP status sent, 0 when the connection was dropped instead.
    pub status: u16,
    /// The error code sent, if any.
    pub error: Option<String>,
    /// The access key id that signed the request (tells two clients with different keys apart).
    #[serde(default)]
    pub access_key: String,
}

impl CallRecord {
    /// `at` as a timestamp (`None` if it does not parse, which the emulator never writes).
    pub fn received(&self) -> Option<jiff::Timestamp> {
        self.at.parse().ok()
    }
}

/// An injected fault on an action (optionally only in one Region).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// The API action it applies to, e.g. `DescribeDBClusters` or `GetChange`.
    pub action: String,
    /// Only requests for this Region; all Regions when absent.
    #[serde(default)]
    pub region: Option<String>,
    /// Answer with this error instead of acting.
    #[serde(default)]
    pub error: Option<FaultCode>,
    /// Wait this long before acting (the call then proceeds normally).
    #[serde(default)]
    pub delay_ms: Option<u64>,
    /// Act at once, but hold the answer this long: the change is made even if the client gives up or
    /// dies while waiting (as when a process is killed after its call reached AWS).
    #[serde(default)]
    pub delay_response_ms: Option<u64>,
    /// How many calls it applies to; every call until cleared when absent.
    #[serde(default)]
    pub count: Option<u32>,
}

/// The errors a fault can inject, with the status and message AWS sends for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FaultCode {
    Throttling,
    InternalFailure,
    ServiceUnavailable,
    /// The caller's policies do not allow the action (HTTP 403).
    AccessDenied,
}

impl FaultCode {
    pub fn to_error(self) -> ApiError {
        match self {
            FaultCode::Throttling => ApiError::new(400, "Throttling", "Rate exceeded"),
            FaultCode::InternalFailure => ApiError::new(
                500,
                "InternalFailure",
                "The request processing has failed because of an unknown error, exception or failure.",
            ),
            FaultCode::ServiceUnavailable => ApiError::new(
                503,
                "ServiceUnavailable",
                "The request has failed due to a temporary failure of the server.",
            ),
            FaultCode::AccessDenied => ApiError::new(
                403,
                "AccessDenied",
                "User: arn:aws:sts::123456789012:assumed-role/aurora-failover-bot/awsim-session is not authorized to perform this operation",
            ),
        }
    }
}

/// What a matching fault asks the server to do with one call.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FaultEffect {
    pub error: Option<ApiError>,
    pub delay: Option<std::time::Duration>,
    pub delay_response: Option<std::time::Duration>,
}

/// The whole emulated state.
#[derive(Debug)]
pub struct World {
    pub account: String,
    pub timings: Timings,
    pub clock: Clock,
    pub rds: rds::Rds,
    pub dns: route53::Dns,
    pub iam: iam::Iam,
    /// Secrets Manager's secrets.
    pub secrets: secrets::Secrets,
    /// The DNS server's state (up or down, the queries received).
    pub resolver: resolver::Resolver,
    regions_down: BTreeMap<String, OutageMode>,
    faults: Vec<FaultSpec>,
    calls: Vec<CallRecord>,
    next_seq: u64,
}

impl World {
    /// Builds the world a scenario describes. The scenario must have been validated.
    pub fn from_scenario(scenario: &Scenario, now: Instant) -> World {
        let mut world = World {
            account: scenario.account_id.clone(),
            timings: scenario.timings,
            clock: Clock::new(),
            rds: rds::Rds::default(),
            dns: route53::Dns::default(),
            iam: iam::Iam::new(&scenario.account_id, jiff::Timestamp::now()),
            secrets: secrets::Secrets::default(),
            resolver: resolver::Resolver::default(),
            regions_down: BTreeMap::new(),
            faults: Vec::new(),
            calls: Vec::new(),
            next_seq: 0,
        };
        world.rds.load(scenario, &world.clock, now);
        world.dns.load(scenario, &world.rds);
        world.iam.load(&scenario.iam);
        world.secrets.load(scenario, world.clock.wall(now));
        world
    }

    /// Fires every timer due by `now`, in order.
    pub fn advance(&mut self, now: Instant) {
        let (rds, ctx) = self.split_rds();
        rds.advance(now, &ctx);
    }

    pub fn is_down(&self, region: &str) -> bool {
        self.regions_down.contains_key(region)
    }

    pub fn outage(&self, region: &str) -> Option<OutageMode> {
        self.regions_down.get(region).copied()
    }

    pub fn regions_down(&self) -> &BTreeMap<String, OutageMode> {
        &self.regions_down
    }

    /// Takes a Region down: its API calls fail, its clusters are unreachable, and operations that
    /// cannot go on without it are cancelled or fail, as they would.
    pub fn region_down(&mut self, region: &str, mode: OutageMode, now: Instant) {
        self.advance(now);
        self.regions_down.insert(region.to_owned(), mode);
        let (rds, ctx) = self.split_rds();
        rds.on_region_down(region, now, &ctx);
    }

    /// Brings a Region back: its API answers again, and old primaries that were waiting for it start
    /// rejoining their global cluster as secondaries.
    pub fn region_up(&mut self, region: &str, now: Instant) {
        self.advance(now);
        if self.regions_down.remove(region).is_some() {
            let (rds, ctx) = self.split_rds();
            rds.on_region_up(region, now, &ctx);
        }
    }

    /// The RDS model and what it needs from the rest of the world, borrowed together.
    pub fn split_rds(&mut self) -> (&mut rds::Rds, rds::Ctx<'_>) {
        (
            &mut self.rds,
            rds::Ctx {
                timings: &self.timings,
                clock: &self.clock,
                regions_down: &self.regions_down,
            },
        )
    }

    pub fn add_fault(&mut self, fault: FaultSpec) {
        self.faults.push(fault);
    }

    pub fn clear_faults(&mut self) {
        self.faults.clear();
    }

    pub fn faults(&self) -> &[FaultSpec] {
        &self.faults
    }

    /// Says what the faults do to this call, consuming one use of each fault applied. Error faults on
    /// the same action queue up: the first one injected answers this call, the others wait for the next
    /// calls. Every matching delay applies (and adds up), also before an error.
    pub fn take_fault(&mut self, action: &str, region: &str) -> FaultEffect {
        let mut effect = FaultEffect::default();
        for f in &mut self.faults {
            if f.action != action || f.region.as_deref().is_some_and(|r| r != region) {
                continue;
            }
            if f.count == Some(0) {
                continue;
            }
            if let Some(code) = f.error {
                if effect.error.is_some() {
                    continue;
                }
                effect.error = Some(code.to_error());
            }
            if let Some(ms) = f.delay_ms {
                effect.delay = Some(effect.delay.unwrap_or_default() + std::time::Duration::from_millis(ms));
            }
            if let Some(ms) = f.delay_response_ms {
                effect.delay_response =
                    Some(effect.delay_response.unwrap_or_default() + std::time::Duration::from_millis(ms));
            }
            if let Some(n) = &mut f.count {
                *n -= 1;
            }
        }
        self.faults.retain(|f| f.count != Some(0));
        effect
    }

    /// Appends to the call log and returns the record's sequence number.
    pub fn record_call(&mut self, mut call: CallRecord) -> u64 {
        self.next_seq += 1;
        call.seq = self.next_seq;
        self.calls.push(call);
        self.next_seq
    }

    /// Sets the answer of a logged call once it is known.
    pub fn finish_call(&mut self, seq: u64, status: u16, error: Option<String>) {
        if let Some(c) = self.calls.iter_mut().rev().find(|c| c.seq == seq) {
            c.status = status;
            c.error = error;
        }
    }

    pub fn calls(&self) -> &[CallRecord] {
        &self.calls
    }

    pub fn clear_calls(&mut self) {
        self.calls.clear();
    }
}
