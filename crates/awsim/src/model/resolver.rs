//! What awsim's DNS server answers, as a recursive resolver in the VPC would: the records of the emulated
//! hosted zones (as Route 53's name servers see them: a change only once it is `INSYNC`, plus the
//! configured delay), every cluster's endpoint and reader endpoint (an A or AAAA record with the
//! cluster's address, TTL 5), and each global writer endpoint (a CNAME to the current writer member's
//! cluster endpoint, TTL 5). CNAME chains and alias records are followed through every name awsim knows.
//!
//! Routing policies, without health checks or a client location, answer one rule: weighted, the record
//! of the highest weight (the first in set-identifier order among equals); failover, the `PRIMARY`;
//! latency, the first record in set-identifier order; multivalue answer, every record's values. An alias
//! answers its target's records of its type under its own name, or nothing when the target is not a name
//! awsim knows. Region outages change nothing here: Route 53's data plane is global, and an endpoint's
//! name resolves whether or not its cluster answers.
//!
//! Names are compared in Route 53's normalized form (lower case, trailing dot, octal escapes).

use super::World;
use super::route53::{Failover, RecordSet, in_zone, normalize_name};
use serde::Serialize;
use std::net::IpAddr;
use tokio::time::Instant;

/// The TTL of the RDS endpoint records (cluster, reader and global writer endpoints), in seconds.
pub const ENDPOINT_TTL: u32 = 5;

/// How many names a chain of CNAMEs and aliases is followed through before the answer stops.
const MAX_CHAIN: usize = 8;

/// One DNS question the server received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DnsQuery {
    /// The name asked, normalized (lower case, trailing dot).
    pub name: String,
    /// The type asked: `A`, `AAAA`, `CNAME`, ...
    pub record_type: String,
    /// RFC 3339 time of receipt, on the clock of the call log.
    pub at: String,
    /// True when DNS was down and the query was dropped unanswered.
    pub dropped: bool,
}

/// The DNS server's own state: whether it answers, and what it was asked.
#[derive(Debug, Default)]
pub struct Resolver {
    /// When true, queries are dropped unanswered (a client times out).
    pub down: bool,
    /// Every query received, oldest first.
    pub queries: Vec<DnsQuery>,
}

/// One record of an answer, its value in Route 53's text form (`192.0.2.1`, `target.example.com.`,
/// `"some text"`, `10 mail.example.com.`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Normalized owner name.
    pub name: String,
    pub record_type: String,
    /// Seconds.
    pub ttl: u32,
    pub value: String,
}

/// The answer to one question: the records (possibly none) and whether the name exists.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Resolution {
    /// NXDOMAIN: the name asked (or the last name of its CNAME chain) does not exist.
    pub nx_domain: bool,
    /// The answer section: CNAMEs first, in chain order, then the records of the type asked.
    pub answers: Vec<Answer>,
}

/// The record sets a resolver sees at one name, one per type, after routing policies.
struct Rrset {
    record_type: String,
    ttl: u32,
    values: Vec<String>,
    /// An alias record: the target's (normalized) name instead of values.
    alias: Option<String>,
}

/// Answers `record_type` for `name` (any case, with or without the trailing dot) from the world at `now`.
pub fn resolve(world: &World, name: &str, record_type: &str, now: Instant) -> Resolution {
    let mut out = Resolution::default();
    Lookup { world, now }.resolve(&normalize_name(name), record_type, 0, &mut out);
    out
}

struct Lookup<'a> {
    world: &'a World,
    now: Instant,
}

impl Lookup<'_> {
    fn resolve(&self, name: &str, record_type: &str, depth: usize, out: &mut Resolution) {
        if depth > MAX_CHAIN {
            return;
        }
        let Some(sets) = self.rrsets(name) else {
            out.nx_domain = true;
            return;
        };
        if let Some(set) = sets.iter().find(|s| s.record_type == record_type) {
            out.answers.extend(self.records_of(name, set, depth));
        } else if let Some(cname) = sets.iter().find(|s| s.record_type == "CNAME") {
            let records = self.records_of(name, cname, depth);
            let target = records.first().map(|r| normalize_name(&r.value));
            out.answers.extend(records);
            if let Some(target) = target {
                self.resolve(&target, record_type, depth + 1, out);
            }
        }
    }

    /// The records of one record set at `name`: its values, or for an alias the target's records of
    /// the set's type renamed to `name` (none when the target is unknown).
    fn records_of(&self, name: &str, set: &Rrset, depth: usize) -> Vec<Answer> {
        match &set.alias {
            None => set
                .values
                .iter()
                .map(|v| Answer {
                    name: name.to_owned(),
                    record_type: set.record_type.clone(),
                    ttl: set.ttl,
                    value: v.clone(),
                })
                .collect(),
            Some(target) => {
                let mut followed = Resolution::default();
                self.resolve(target, &set.record_type, depth + 1, &mut followed);
                followed
                    .answers
                    .into_iter()
                    .filter(|a| a.record_type == set.record_type)
                    .map(|a| Answer {
                        name: name.to_owned(),
                        ..a
                    })
                    .collect()
            }
        }
    }

    /// The record sets at `name`, or `None` when the name does not exist.
    fn rrsets(&self, name: &str) -> Option<Vec<Rrset>> {
        let rds = &self.world.rds;
        for c in rds.clusters.values() {
            for (endpoint, address) in [
                (&c.endpoint, c.endpoint_address),
                (&c.reader_endpoint, c.reader_endpoint_address),
            ] {
                if normalize_name(endpoint) == name {
                    return Some(vec![address_rrset(address)]);
                }
            }
        }
        for g in rds.globals.values() {
            if normalize_name(&g.endpoint) == name {
                let writer = g.writer.as_ref().and_then(|w| rds.clusters.get(w));
                return Some(
                    writer
                        .map(|w| Rrset {
                            record_type: "CNAME".into(),
                            ttl: ENDPOINT_TTL,
                            values: vec![normalize_name(&w.endpoint)],
                            alias: None,
                        })
                        .into_iter()
                        .collect(),
                );
            }
        }
        self.zone_rrsets(name)
    }

    /// The record sets at `name` in the deepest emulated zone that holds it (a zone with records there
    /// first, when several zones have the same name).
    fn zone_rrsets(&self, name: &str) -> Option<Vec<Rrset>> {
        let dns = &self.world.dns;
        let mut zones: Vec<_> = dns.zones.values().filter(|z| in_zone(name, &z.name)).collect();
        zones.sort_by_key(|z| std::cmp::Reverse(z.name.len()));
        let deepest = zones.first()?.name.clone();
        let mut exists = false;
        for zone in zones.iter().filter(|z| z.name == deepest) {
            let records = dns.visible_records(&zone.id, self.now);
            let here: Vec<&RecordSet> = records.iter().filter(|r| r.name == name).collect();
            if !here.is_empty() {
                return Some(routed(&here));
            }
            let suffix = format!(".{name}");
            exists |= name == zone.name || records.iter().any(|r| r.name.ends_with(&suffix));
        }
        // A name with nothing of its own but names below it exists (an "empty non-terminal").
        exists.then(Vec::new)
    }
}

fn address_rrset(address: IpAddr) -> Rrset {
    Rrset {
        record_type: if address.is_ipv4() { "A" } else { "AAAA" }.into(),
        ttl: ENDPOINT_TTL,
        values: vec![address.to_string()],
        alias: None,
    }
}

/// One record set per type from the records at a name, applying the routing rule of the module doc.
fn routed(records: &[&RecordSet]) -> Vec<Rrset> {
    let mut types: Vec<&str> = records.iter().map(|r| r.record_type.as_str()).collect();
    types.dedup();
    types
        .into_iter()
        .filter_map(|t| {
            let same: Vec<&RecordSet> = records.iter().copied().filter(|r| r.record_type == t).collect();
            let chosen: Vec<&RecordSet> = if same.iter().any(|r| r.multi_value_answer.is_some()) {
                same.clone()
            } else if same.iter().any(|r| r.weight.is_some()) {
                let top = same.iter().filter_map(|r| r.weight).max();
                same.iter().copied().find(|r| r.weight == top).into_iter().collect()
            } else if same.iter().any(|r| r.failover.is_some()) {
                same.iter()
                    .copied()
                    .find(|r| r.failover == Some(Failover::Primary))
                    .or_else(|| same.first().copied())
                    .into_iter()
                    .collect()
            } else {
                same.first().copied().into_iter().collect()
            };
            let first = chosen.first()?;
            Some(Rrset {
                record_type: t.to_owned(),
                ttl: chosen
                    .iter()
                    .map(|r| u32::try_from(r.ttl).unwrap_or(u32::MAX))
                    .min()
                    .unwrap_or(0),
                values: chosen.iter().flat_map(|r| r.values.iter().cloned()).collect(),
                alias: first.alias_target.as_ref().map(|a| normalize_name(&a.dns_name)),
            })
        })
        .collect()
}
