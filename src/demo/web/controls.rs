//! The scenario controls: each one call to the emulator's admin API, announced in the channel so that
//! the thread and the controls read as one story.

use super::sandbox::{Refused, Sandbox};
use super::{RECORD_READER, RECORD_WRITER, ZONE};
use serde::Deserialize;

/// The Regions of the sandbox's world.
pub const REGIONS: [&str; 2] = ["us-east-1", "us-west-2"];

/// The API actions the throttle control offers: what the runbook calls.
pub const THROTTLE_ACTIONS: [&str; 8] = [
    "DescribeGlobalClusters",
    "DescribeDBClusters",
    "RemoveFromGlobalCluster",
    "FailoverGlobalCluster",
    "SwitchoverGlobalCluster",
    "ChangeResourceRecordSets",
    "GetChange",
    "ListResourceRecordSets",
];

/// The longest time a control sets (10 minutes), in milliseconds.
const MAX_MS: u64 = 600_000;

/// One control, as the page posts it to `/sandbox/api/control` (`{"control": "...", ...}`).
#[derive(Debug, Deserialize)]
#[serde(tag = "control", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Control {
    /// Takes a Region down (its endpoints reset connections) or brings it back.
    Region { region: String, up: bool },
    /// The next `count` calls of `action` answer `Throttling`.
    Throttle { action: String, count: u32 },
    /// Every secondary's replication lag, in milliseconds.
    Lag { ms: u64 },
    /// How long a detach, managed failover or switchover takes to make the target writable (ms).
    Promotion { ms: u64 },
    /// How long a Route 53 change stays `PENDING` before `INSYNC` (ms).
    Insync { ms: u64 },
    /// Points the writer or reader CNAME at the cluster in `region`, by hand (as a person in the
    /// console would).
    Cname { record: String, region: String },
    /// Clears every injected fault (throttles); Regions stay as they are.
    ClearFaults,
}

fn ms(value: u64) -> Result<u64, Refused> {
    if value > MAX_MS {
        return Err(Refused(format!(
            "{value} ms is more than the sandbox allows ({MAX_MS} ms)"
        )));
    }
    Ok(value)
}

fn region(r: &str) -> Result<&'static str, Refused> {
    REGIONS
        .into_iter()
        .find(|x| *x == r)
        .ok_or_else(|| Refused(format!("{r:?} is not a Region of the sandbox ({})", REGIONS.join(", "))))
}

fn failed(e: awsim::AdminError) -> Refused {
    Refused(format!("the emulator refused: {e}"))
}

impl Sandbox {
    /// Applies `control`; the channel says what it did.
    pub fn control(&self, control: Control) -> Result<(), Refused> {
        let admin = self.admin();
        let notice = match control {
            Control::Region { region: r, up } => self.region_up_or_down(region(&r)?, up)?,
            Control::Throttle { action, count } => self.throttle(&action, count)?,
            Control::Lag { ms: lag } => self.lag(ms(lag)?)?,
            Control::Promotion { ms: t } => {
                let t = ms(t)?;
                admin.set_timings(awsim::TimingsPatch {
                    detach_ms: Some(t),
                    failover_ms: Some(t),
                    switchover_ms: Some(t),
                    ..Default::default()
                });
                format!("A detach, failover or switchover now takes {t} ms to make its target writable.")
            }
            Control::Insync { ms: t } => {
                let t = ms(t)?;
                admin.set_timings(awsim::TimingsPatch {
                    dns_propagation_ms: Some(t),
                    ..Default::default()
                });
                format!("A Route 53 change now stays PENDING {t} ms before INSYNC.")
            }
            Control::Cname { record, region: r } => self.move_cname(&record, region(&r)?)?,
            Control::ClearFaults => {
                admin.clear_faults();
                "Every injected fault is cleared.".to_owned()
            }
        };
        self.notice(&notice);
        Ok(())
    }

    fn region_up_or_down(&self, r: &str, up: bool) -> Result<String, Refused> {
        if up {
            self.admin().region_up(r).map_err(failed)?;
            Ok(format!("{r} is back up."))
        } else {
            self.admin().region_down(r, awsim::OutageMode::Reset).map_err(failed)?;
            Ok(format!("{r} is down: its RDS endpoints reset every connection."))
        }
    }

    /// The next `count` (1 to 100) calls of `action` (one of `THROTTLE_ACTIONS`) answer `Throttling`.
    fn throttle(&self, action: &str, count: u32) -> Result<String, Refused> {
        let Some(action) = THROTTLE_ACTIONS.into_iter().find(|a| *a == action) else {
            return Err(Refused(format!("{action:?} is not an action the throttle offers")));
        };
        if !(1..=100).contains(&count) {
            return Err(Refused("throttle from 1 to 100 calls".into()));
        }
        self.admin()
            .inject(awsim::FaultSpec {
                action: action.to_owned(),
                region: None,
                error: Some(awsim::FaultCode::Throttling),
                delay_ms: None,
                delay_response_ms: None,
                count: Some(count),
            })
            .map_err(failed)?;
        Ok(format!("The next {count} {action} calls answer Throttling."))
    }

    /// Every secondary's replication lag, `lag` milliseconds.
    fn lag(&self, lag: u64) -> Result<String, Refused> {
        let secondaries = self.secondaries();
        if secondaries.is_empty() {
            return Err(Refused(
                "no cluster is a secondary now: there is no replication lag to set".into(),
            ));
        }
        for (r, id) in &secondaries {
            self.admin()
                .set_replication_lag(r, id, std::time::Duration::from_millis(lag))
                .map_err(failed)?;
        }
        let names: Vec<_> = secondaries.iter().map(|(_, id)| id.as_str()).collect();
        Ok(format!("Replication lag is {lag} ms on {}.", names.join(", ")))
    }

    /// The clusters that are secondaries of a global cluster now: (Region, id).
    fn secondaries(&self) -> Vec<(String, String)> {
        self.admin()
            .snapshot()
            .global_clusters
            .iter()
            .flat_map(|g| g.members.iter())
            .filter(|m| !m.is_writer)
            .map(|m| (m.region.clone(), m.cluster_id.clone()))
            .collect()
    }

    /// UPSERTs the writer or reader CNAME to the cluster in `region` behind the bot's back.
    fn move_cname(&self, record: &str, region: &str) -> Result<String, Refused> {
        let (name, writer) = match record {
            "writer" => (RECORD_WRITER, true),
            "reader" => (RECORD_READER, false),
            other => return Err(Refused(format!("{other:?}: the record is writer or reader"))),
        };
        let snapshot = self.admin().snapshot();
        let cluster = snapshot
            .db_clusters
            .iter()
            .filter(|c| c.region == region && !c.status.starts_with("delet"))
            .min_by_key(|c| c.created)
            .ok_or_else(|| Refused(format!("no cluster in {region}")))?;
        let target = if writer {
            &cluster.endpoint
        } else {
            &cluster.reader_endpoint
        };
        self.admin()
            .put_record(ZONE, awsim::RecordSet::simple(name, "CNAME", 1, &[target]))
            .map_err(failed)?;
        Ok(format!(
            "Someone moved {name} by hand: it points at {target} ({} in {region}).",
            cluster.id
        ))
    }
}
