//! The global cluster the bot recorded for a configured cluster: a rebuild after a detach makes a new
//! global cluster (a new identifier, e.g. `orders-global-2`) while the config still names the old one.
//!
//! Invariants:
//! - The config stays the source of truth. A record is followed (by `/aurora status`, the terminal
//!   `status` and the planning of a request) only while the config still names the global cluster it
//!   replaced (`GlobalClusterRecord::replaces`) and the record names another one: a config changed to
//!   any other identifier wins over the record.
//! - A run follows its plan's recorded `global_cluster_id` (`Plan::cluster_settings`), never a record.
//! - At start-up a record whose id the config now names is dropped (conditionally on that id, so a
//!   newer record is never dropped by mistake); a record of a cluster no longer configured, or one the
//!   config has moved past, is kept and logged. Two bots on one table may both do this: harmless.

use crate::settings::ClusterSettings;
use crate::store::{GlobalClusterRecord, Store, StoreError};
use tracing::{info, warn};

/// The record, when cluster `c` follows it: the config still names the global cluster the record
/// replaced, and the record names another one.
pub fn followed<'r>(c: &ClusterSettings, record: Option<&'r GlobalClusterRecord>) -> Option<&'r GlobalClusterRecord> {
    record.filter(|r| {
        r.cluster == c.name && r.replaces == c.global_cluster_id && r.global_cluster_id != c.global_cluster_id
    })
}

/// Cluster `c`'s settings as the bot acts on them: the config, with `global_cluster_id` replaced by
/// the recorded one while `c` follows the record (see [`followed`]).
pub fn effective(c: &ClusterSettings, record: Option<&GlobalClusterRecord>) -> ClusterSettings {
    let mut settings = c.clone();
    if let Some(r) = followed(c, record) {
        settings.global_cluster_id = r.global_cluster_id.clone();
    }
    settings
}

/// Cluster `c`'s settings as the bot acts on them, reading its record from `store`. An error is the
/// store's: the caller decides whether the config alone may do.
pub async fn effective_in(store: &dyn Store, c: &ClusterSettings) -> Result<ClusterSettings, StoreError> {
    let record = store.global_cluster_record(&c.name).await?;
    Ok(effective(c, record.as_ref()))
}

/// What start-up does with one record, given the configured clusters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// The config names the recorded global cluster now: the record is no longer needed.
    Drop,
    /// Followed: the config still names the global cluster it replaced.
    Follow,
    /// No configured cluster has the record's name: kept (the cluster may come back), logged.
    Unconfigured,
    /// The config names a third global cluster (`config_names`): the config wins, the record is kept
    /// and not followed, logged.
    Overridden { config_names: String },
}

/// What start-up does with `record`, given the configured `clusters`. Pure.
pub fn settle(record: &GlobalClusterRecord, clusters: &[ClusterSettings]) -> Settled {
    match clusters.iter().find(|c| c.name == record.cluster) {
        None => Settled::Unconfigured,
        Some(c) if c.global_cluster_id == record.global_cluster_id => Settled::Drop,
        Some(c) if c.global_cluster_id == record.replaces => Settled::Follow,
        Some(c) => Settled::Overridden {
            config_names: c.global_cluster_id.clone(),
        },
    }
}

/// At start-up: drops every record the config has caught up with, and logs what is kept. A store
/// that cannot be read or written is logged, never fatal (the records wait for the next start).
pub async fn settle_at_start(store: &dyn Store, clusters: &[ClusterSettings]) {
    let records = match store.global_cluster_records().await {
        Ok(r) => r,
        Err(e) => {
            warn!(error = %e, "cannot read the recorded global clusters");
            return;
        }
    };
    for r in records.into_iter().flatten() {
        let (cluster, id) = (&r.cluster, r.global_cluster_id.as_str());
        match settle(&r, clusters) {
            Settled::Drop => match store.drop_global_cluster_record(cluster, id).await {
                Ok(true) => {
                    info!(%cluster, global_cluster_id = id, "the config names the recorded global cluster now: record dropped")
                }
                Ok(false) => {}
                Err(e) => warn!(error = %e, %cluster, global_cluster_id = id, "cannot drop a recorded global cluster"),
            },
            Settled::Follow => {
                info!(%cluster, global_cluster_id = id, config_names = %r.replaces, "following the recorded global cluster until the config names it")
            }
            Settled::Unconfigured => {
                warn!(%cluster, global_cluster_id = id, "a global cluster is recorded for a cluster no longer configured: kept")
            }
            Settled::Overridden { config_names } => {
                warn!(%cluster, global_cluster_id = id, %config_names, replaces = %r.replaces, "the config names another global cluster than the recorded one and the one it replaced: the config wins, the record is kept")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::RequestId;
    use crate::types::{ClusterName, Region};

    fn config(id: &str) -> ClusterSettings {
        ClusterSettings {
            name: ClusterName::parse("orders").unwrap(),
            global_cluster_id: id.into(),
            regions: vec![Region::parse("us-east-1").unwrap(), Region::parse("us-west-2").unwrap()],
            hosted_zone_id: "Z1".into(),
            writer_record: "writer.db.example.internal".into(),
            reader_record: "reader.db.example.internal".into(),
            record_ttl: 60,
            rebuild: Vec::new(),
            probe: None,
        }
    }

    fn record(cluster: &str, id: &str, replaces: &str) -> GlobalClusterRecord {
        GlobalClusterRecord {
            cluster: ClusterName::parse(cluster).unwrap(),
            global_cluster_id: id.into(),
            request: RequestId::new(12),
            recorded_at: jiff::Timestamp::from_second(1_800_000_000).unwrap(),
            replaces: replaces.into(),
        }
    }

    #[test]
    fn the_recorded_global_cluster_is_followed_only_while_the_config_names_the_one_it_replaced() {
        let r = record("orders", "orders-global-2", "orders-global");
        let old = config("orders-global");
        assert_eq!(effective(&old, Some(&r)).global_cluster_id, "orders-global-2");
        assert_eq!(
            effective(&old, Some(&r)),
            ClusterSettings {
                global_cluster_id: "orders-global-2".into(),
                ..old.clone()
            },
            "only the global cluster id changes"
        );
        assert_eq!(effective(&old, None), old, "no record: the config");
        let caught_up = config("orders-global-2");
        assert_eq!(effective(&caught_up, Some(&r)), caught_up);
        assert_eq!(followed(&caught_up, Some(&r)), None);
        let elsewhere = config("orders-global-9");
        assert_eq!(effective(&elsewhere, Some(&r)), elsewhere, "the config wins");
        let other_cluster = record("billing", "billing-global-2", "orders-global");
        assert_eq!(effective(&old, Some(&other_cluster)), old, "another cluster's record");
    }

    #[test]
    fn start_up_drops_a_record_the_config_names_and_keeps_the_others() {
        let r = record("orders", "orders-global-2", "orders-global");
        assert_eq!(settle(&r, &[config("orders-global-2")]), Settled::Drop);
        assert_eq!(settle(&r, &[config("orders-global")]), Settled::Follow);
        assert_eq!(
            settle(&r, &[config("orders-global-9")]),
            Settled::Overridden {
                config_names: "orders-global-9".into()
            }
        );
        assert_eq!(settle(&r, &[]), Settled::Unconfigured);
    }
}
