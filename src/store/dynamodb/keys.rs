//! The single-table layout: every item's key (`pk`, `sk`) and the three overloaded global secondary
//! indexes, in one place. Numbers in keys are zero-padded to 20 digits so that they sort as strings.
//!
//! | kind | pk | sk | gsi1 (g1pk / g1sk) | gsi2 (g2pk / g2sk) | gsi3 (g3pk / g3sk) |
//! |---|---|---|---|---|---|
//! | identity | `META` | `META` | | | |
//! | id counter | `COUNTER#request`, `COUNTER#outbox` | `COUNTER` | | | |
//! | cluster lock | `LOCK#<cluster>` | `LOCK` | `LOCKS` / cluster | | |
//! | request | `REQ#<id>` | `REQ` | `REQ#<state>` / id | `REQC#<cluster>` / id | `REQS` / id |
//! | run (id = its request's id; `fence`, `next_seq`) | `RUN#<id>` | `RUN` | `RUN#<state>` / id | `RUNC#<cluster>` / id | `RUNF` / finished#id, once ended |
//! | journal line (or its tombstone) | `RUN#<run>` | `J#<seq>` | | | `JOURNAL` / at#run#seq |
//! | lease | `LEASE#<scope>` | `LEASE` | `LEASES` / scope | | |
//! | audit line | `AUDIT#<at>#<unique>` | `AUDIT` | | | `AUDIT` / at#unique |
//! | outbox item | `OUT#<id>` | `OUT` | `OUT#pending` / id, while pending | `OURL#<url>` / id | `OUTS` / id |
//! | dedup key | `DEDUP#<key>` | `DEDUP` | | | |
//! | signature | `SIG#<sig>` | `SIG` | | | `SIGT#<hour of day>` / at#sig |
//! | response_url | `URL#<url>` | `URL` | | | `URLT#<hour of day>` / issued#url |
//! | recorded global cluster | `GCREC#<cluster>` | `GCREC` | `GCRECS` / cluster | | |
//!
//! Leases and fencing (`lease.rs`): the `LEASE#<scope>` items, the run item's `fence` (highest token
//! that wrote it) and `next_seq` (journal numbers reserved), tombstones on reserved, unwritten lines.

use super::super::rows::{OutboxId, RequestId, RunId};

pub const PK: &str = "pk";
pub const SK: &str = "sk";

/// One of the table's global secondary indexes: its name and its two key attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Index {
    pub name: &'static str,
    pub pk: &'static str,
    pub sk: &'static str,
}

/// States (requests, runs, pending outbox items) and lock holders.
pub const BY_STATE: Index = Index {
    name: "gsi1",
    pk: "g1pk",
    sk: "g1sk",
};
/// Requests and runs per cluster; outbox items per response_url.
pub const BY_GROUP: Index = Index {
    name: "gsi2",
    pk: "g2pk",
    sk: "g2sk",
};
/// Time-ordered listings: all requests, ended runs, journal, audit, outbox; the pruning buckets.
pub const BY_TIME: Index = Index {
    name: "gsi3",
    pk: "g3pk",
    sk: "g3sk",
};
pub const INDEXES: [Index; 3] = [BY_STATE, BY_GROUP, BY_TIME];

/// A key as stored: (`pk`, `sk`).
pub type Key = (String, String);

/// A number that sorts as a string (negative numbers, which ids and our times never are, as 0).
pub fn pad(n: i64) -> String {
    format!("{:020}", n.max(0))
}

/// A time (ms since the epoch) that sorts as a string.
pub fn ms(t: jiff::Timestamp) -> String {
    pad(t.as_millisecond())
}

/// The pruning bucket of a time: its hour of the day (24 GSI partitions, queried in turn).
pub fn hour_bucket(t: jiff::Timestamp) -> i64 {
    t.as_second().rem_euclid(86_400) / 3_600
}

pub fn meta() -> Key {
    ("META".into(), "META".into())
}

pub fn counter(name: &str) -> Key {
    (format!("COUNTER#{name}"), "COUNTER".into())
}

pub fn lock(cluster: &str) -> Key {
    (format!("LOCK#{cluster}"), "LOCK".into())
}

pub fn request(id: RequestId) -> Key {
    (format!("REQ#{}", pad(id.get())), "REQ".into())
}

pub fn run(id: RunId) -> Key {
    (format!("RUN#{}", pad(id.get())), "RUN".into())
}

pub fn journal(run: RunId, seq: i64) -> Key {
    (format!("RUN#{}", pad(run.get())), format!("J#{}", pad(seq)))
}

pub fn outbox(id: OutboxId) -> Key {
    (format!("OUT#{}", pad(id.get())), "OUT".into())
}

pub fn dedup(key: &str) -> Key {
    (format!("DEDUP#{key}"), "DEDUP".into())
}

pub fn signature(sig: &str) -> Key {
    (format!("SIG#{sig}"), "SIG".into())
}

pub fn response_url(url: &str) -> Key {
    (format!("URL#{url}"), "URL".into())
}

/// A cluster's recorded global cluster (one item per cluster name).
pub fn global_cluster_record(cluster: &str) -> Key {
    (format!("GCREC#{cluster}"), "GCREC".into())
}

pub fn request_state(state: &str) -> String {
    format!("REQ#{state}")
}

pub fn run_state(state: &str) -> String {
    format!("RUN#{state}")
}

pub const PENDING_OUTBOX: &str = "OUT#pending";
pub const ALL_REQUESTS: &str = "REQS";
pub const ENDED_RUNS: &str = "RUNF";
pub const JOURNAL: &str = "JOURNAL";
pub const AUDIT: &str = "AUDIT";
pub const ALL_OUTBOX: &str = "OUTS";
pub const LOCKS: &str = "LOCKS";
pub const GLOBAL_CLUSTER_RECORDS: &str = "GCRECS";

pub fn signature_bucket(hour: i64) -> String {
    format!("SIGT#{hour:02}")
}

pub fn response_url_bucket(hour: i64) -> String {
    format!("URLT#{hour:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_numbers_sort_as_strings() {
        assert!(pad(9) < pad(10));
        assert_eq!(pad(-5), pad(0));
        assert_eq!(request(RequestId::new(7)).0, "REQ#00000000000000000007");
    }

    #[test]
    fn a_time_falls_in_the_bucket_of_its_hour_of_day() {
        let t = jiff::Timestamp::from_second(86_400 * 3 + 3_600 * 5 + 12).unwrap();
        assert_eq!(hour_bucket(t), 5);
    }
}
