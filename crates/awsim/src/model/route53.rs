//! Route 53 hosted zones, record sets and changes, validated as Route 53 validates them. Changes are
//! applied at once (as Route 53 does to its own view) but report `PENDING` until the configured
//! propagation time has passed, then `INSYNC`.
//!
//! Invariants: record names are stored normalized (lower case, escaped, with the trailing dot); a zone's
//! records are kept in Route 53's list order; a change batch applies entirely or not at all.

use super::error::ApiError;
use crate::scenario::{EndpointKind, Scenario};
use serde::Serialize;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use tokio::time::Instant;

/// Record types the emulator accepts (simple routing only).
pub const SUPPORTED_TYPES: &[&str] = &["A", "AAAA", "CNAME", "TXT", "MX", "NS", "SOA", "SRV", "PTR", "CAA"];

/// Normalizes a DNS name the way Route 53 returns it: lower case, octal escapes for characters other
/// than letters, digits, `-` and `_`, and a trailing dot.
pub fn normalize_name(name: &str) -> String {
    let mut decoded: Vec<u8> = Vec::with_capacity(name.len());
    let bytes = name.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() && bytes[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b)) {
            let v = (bytes[i + 1] - b'0') as u32 * 64 + (bytes[i + 2] - b'0') as u32 * 8 + (bytes[i + 3] - b'0') as u32;
            decoded.push(u8::try_from(v).unwrap_or(b'?'));
            i += 4;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    let mut out = String::with_capacity(decoded.len() + 1);
    for b in decoded {
        let b = b.to_ascii_lowercase();
        if b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_' || b == b'.' {
            out.push(b as char);
        } else {
            out.push_str(&format!("\\{b:03o}"));
        }
    }
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

/// True when `name` is the zone's apex or below it (both normalized).
pub fn in_zone(name: &str, zone: &str) -> bool {
    name == zone || name.ends_with(&format!(".{zone}"))
}

/// Route 53's list order: by name with its labels reversed (`www.example.com.` sorts as
/// `com.example.www.`, trailing dot included, in ASCII order), then by type.
fn list_order(a_name: &str, a_type: &str, b_name: &str, b_type: &str) -> Ordering {
    let rev = |n: &str| {
        let mut s = n.trim_end_matches('.').rsplit('.').collect::<Vec<_>>().join(".");
        s.push('.');
        s
    };
    rev(a_name).cmp(&rev(b_name)).then_with(|| a_type.cmp(b_type))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordSet {
    pub name: String,
    #[serde(rename = "type")]
    pub record_type: String,
    pub ttl: i64,
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Vpc {
    pub region: String,
    pub id: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct HostedZone {
    pub id: String,
    pub name: String,
    pub private: bool,
    pub comment: Option<String>,
    pub caller_reference: String,
    pub vpcs: Vec<Vpc>,
    pub name_servers: Vec<String>,
    /// In list order.
    pub records: Vec<RecordSet>,
}

impl HostedZone {
    fn sort(&mut self) {
        self.records
            .sort_by(|a, b| list_order(&a.name, &a.record_type, &b.name, &b.record_type));
    }

    fn find(&self, name: &str, record_type: &str) -> Option<usize> {
        self.records
            .iter()
            .position(|r| r.name == name && r.record_type == record_type)
    }
}

#[derive(Debug, Clone)]
pub struct Change {
    pub id: String,
    pub comment: Option<String>,
    pub submitted: Instant,
    pub submitted_wall: jiff::Timestamp,
    pub insync_at: Instant,
}

impl Change {
    pub fn status(&self, now: Instant) -> &'static str {
        if now >= self.insync_at { "INSYNC" } else { "PENDING" }
    }
}

/// One change of a ChangeResourceRecordSets batch, as parsed from the request.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeSpec {
    pub action: String,
    pub name: String,
    pub record_type: String,
    pub ttl: Option<i64>,
    pub values: Vec<String>,
    /// Set when the change uses a feature the emulator does not model (alias, weighted, ...).
    pub unsupported: Option<String>,
}

#[derive(Debug, Default)]
pub struct Dns {
    pub zones: BTreeMap<String, HostedZone>,
    pub changes: BTreeMap<String, Change>,
    next_change: u64,
}

fn soa_and_ns(zone: &str, name_servers: &[String]) -> Vec<RecordSet> {
    vec![
        RecordSet {
            name: zone.to_owned(),
            record_type: "NS".into(),
            ttl: 172_800,
            values: name_servers.iter().map(|n| format!("{n}.")).collect(),
        },
        RecordSet {
            name: zone.to_owned(),
            record_type: "SOA".into(),
            ttl: 900,
            values: vec![format!(
                "{}. awsdns-hostmaster.amazon.com. 1 7200 900 1209600 86400",
                name_servers[0]
            )],
        },
    ]
}

impl Dns {
    pub fn load(&mut self, s: &Scenario, rds: &super::rds::Rds) {
        for z in &s.hosted_zones {
            let name = normalize_name(&z.name);
            let n = self.zones.len();
            let name_servers: Vec<String> = (0..4)
                .map(|k| match k {
                    0 => format!("ns-{}.awsdns-{:02}.com", 100 + n, n % 64),
                    1 => format!("ns-{}.awsdns-{:02}.net", 600 + n, n % 64),
                    2 => format!("ns-{}.awsdns-{:02}.org", 1100 + n, n % 64),
                    _ => format!("ns-{}.awsdns-{:02}.co.uk", 1600 + n, n % 64),
                })
                .collect();
            let mut records = soa_and_ns(&name, &name_servers);
            for r in &z.records {
                let values = match &r.points_to {
                    Some(p) => {
                        let c = rds
                            .clusters
                            .values()
                            .find(|c| c.key.id == p.cluster)
                            .expect("validated: points_to names a cluster");
                        vec![match p.endpoint {
                            EndpointKind::Writer => c.endpoint.clone(),
                            EndpointKind::Reader => c.reader_endpoint.clone(),
                        }]
                    }
                    None => r.values.clone(),
                };
                records.push(RecordSet {
                    name: normalize_name(&r.name),
                    record_type: r.record_type.clone(),
                    ttl: r.ttl,
                    values,
                });
            }
            let mut zone = HostedZone {
                id: z.id.clone(),
                name,
                private: z.private,
                comment: z.comment.clone(),
                caller_reference: format!("awsim-{}", z.id),
                vpcs: z
                    .vpcs
                    .iter()
                    .map(|v| Vpc {
                        region: v.region.clone(),
                        id: v.id.clone(),
                    })
                    .collect(),
                name_servers,
                records,
            };
            zone.sort();
            self.zones.insert(z.id.clone(), zone);
        }
    }

    pub fn zone(&self, id: &str) -> Result<&HostedZone, ApiError> {
        self.zones.get(id).ok_or_else(|| no_such_zone(id))
    }

    /// ListResourceRecordSets: records from (`start_name`, `start_type`) on, at most `max_items`, and
    /// the name and type to continue from when there are more.
    pub fn list(
        &self,
        zone_id: &str,
        start_name: Option<&str>,
        start_type: Option<&str>,
        max_items: usize,
    ) -> Result<RecordPage, ApiError> {
        let zone = self.zone(zone_id)?;
        if start_type.is_some() && start_name.is_none() {
            return Err(ApiError::new(
                400,
                "InvalidInput",
                "The input is not valid: the type parameter requires the name parameter.",
            ));
        }
        let start_name = start_name.map(normalize_name);
        let from = zone
            .records
            .iter()
            .position(|r| match &start_name {
                None => true,
                Some(n) => list_order(&r.name, &r.record_type, n, start_type.unwrap_or("")) != Ordering::Less,
            })
            .unwrap_or(zone.records.len());
        let rest = &zone.records[from..];
        let records: Vec<RecordSet> = rest.iter().take(max_items).cloned().collect();
        let next = rest.get(max_items).map(|r| (r.name.clone(), r.record_type.clone()));
        Ok(RecordPage { records, next })
    }

    /// ChangeResourceRecordSets: validates the whole batch against the zone as it would be after each
    /// change, and applies it only when every change is valid.
    pub fn change(
        &mut self,
        zone_id: &str,
        comment: Option<String>,
        changes: &[ChangeSpec],
        now: Instant,
        wall: jiff::Timestamp,
        propagation: std::time::Duration,
    ) -> Result<Change, ApiError> {
        let zone = self.zones.get(zone_id).ok_or_else(|| no_such_zone(zone_id))?;
        if changes.is_empty() {
            return Err(invalid_input("The request must contain at least one change."));
        }
        let mut next = zone.clone();
        let mut errors = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for c in changes {
            if let Some(what) = &c.unsupported {
                return Err(invalid_input(format!(
                    "The emulator supports simple routing records only; this change uses {what}."
                )));
            }
            if !matches!(c.action.as_str(), "CREATE" | "DELETE" | "UPSERT") {
                return Err(invalid_input(format!(
                    "Invalid XML ; cvc-enumeration-valid: Value '{}' is not facet-valid with respect to enumeration '[CREATE, DELETE, UPSERT]'.",
                    c.action
                )));
            }
            if !SUPPORTED_TYPES.contains(&c.record_type.as_str()) {
                return Err(invalid_input(format!(
                    "Invalid XML ; cvc-enumeration-valid: Value '{}' is not a supported record type.",
                    c.record_type
                )));
            }
            let name = normalize_name(&c.name);
            let Some(ttl) = c.ttl.filter(|_| !c.values.is_empty()) else {
                return Err(invalid_input(format!(
                    "Invalid request: Expected exactly one of [AliasTarget, all of [TTL, and ResourceRecords], or TrafficPolicyInstanceId], but found none in Change with [Action={}, Name={}, Type={}, SetIdentifier=null]",
                    c.action, name, c.record_type
                )));
            };
            if !(0..=2_147_483_647).contains(&ttl) {
                return Err(invalid_input(format!("Invalid TTL {ttl} for {name}")));
            }
            let rrset = RecordSet {
                name: name.clone(),
                record_type: c.record_type.clone(),
                ttl,
                values: c.values.clone(),
            };
            if !seen.insert((name.clone(), c.record_type.clone())) {
                errors.push(format!(
                    "The request contains an invalid set of changes for a resource record set '{} {}'",
                    c.record_type, name
                ));
                continue;
            }
            if !in_zone(&name, &next.name) {
                errors.push(format!(
                    "RRSet with DNS name {name} is not permitted in zone {}",
                    next.name
                ));
                continue;
            }
            if c.record_type == "CNAME" && c.values.len() > 1 {
                errors.push(format!(
                    "RRSet of type CNAME with DNS name {name} has more than one resource record, which is not permitted."
                ));
                continue;
            }
            if c.record_type == "CNAME" && name == next.name {
                errors.push(format!(
                    "RRSet of type CNAME with DNS name {name} is not permitted at apex in zone {}",
                    next.name
                ));
                continue;
            }
            let existing = next.find(&name, &c.record_type);
            let conflicts = |z: &HostedZone| {
                z.records.iter().any(|r| {
                    r.name == name
                        && r.record_type != c.record_type
                        && (r.record_type == "CNAME" || c.record_type == "CNAME")
                })
            };
            let what = format!("[name='{name}', type='{}']", c.record_type);
            match c.action.as_str() {
                "CREATE" => {
                    if existing.is_some() {
                        errors.push(format!("Tried to create resource record set {what} but it already exists"));
                    } else if conflicts(&next) {
                        errors.push(cname_conflict(&c.record_type, &name, &next.name));
                    } else {
                        next.records.push(rrset);
                        next.sort();
                    }
                }
                "UPSERT" => {
                    if conflicts(&next) {
                        errors.push(cname_conflict(&c.record_type, &name, &next.name));
                    } else if let Some(i) = existing {
                        next.records[i] = rrset;
                    } else {
                        next.records.push(rrset);
                        next.sort();
                    }
                }
                _ => match existing {
                    None => errors.push(format!("Tried to delete resource record set {what} but it was not found")),
                    Some(i) if next.records[i] != rrset => errors.push(format!(
                        "Tried to delete resource record set {what} but the values provided do not match the current values"
                    )),
                    Some(_) if name == next.name && matches!(c.record_type.as_str(), "SOA" | "NS") => errors.push(format!(
                        "A HostedZone must contain at least one NS record for the zone itself. Tried to delete {what}"
                    )),
                    Some(i) => {
                        next.records.remove(i);
                    }
                },
            }
        }
        if !errors.is_empty() {
            return Err(ApiError::new(
                400,
                "InvalidChangeBatch",
                format!("[{}]", errors.join(", ")),
            ));
        }
        self.zones.insert(zone_id.to_owned(), next);
        self.next_change += 1;
        let change = Change {
            id: format!("C{:0>20}", to_base36(self.next_change * 7_919 + 1_000_003)),
            comment,
            submitted: now,
            submitted_wall: wall,
            insync_at: now + propagation,
        };
        self.changes.insert(change.id.clone(), change.clone());
        Ok(change)
    }

    pub fn get_change(&self, id: &str) -> Result<&Change, ApiError> {
        self.changes
            .get(id)
            .ok_or_else(|| ApiError::new(404, "NoSuchChange", format!("Could not find resource with ID: {id}")))
    }
}

fn to_base36(mut n: u64) -> String {
    let mut s = Vec::new();
    while n > 0 {
        s.push(
            char::from_digit((n % 36) as u32, 36)
                .unwrap_or('0')
                .to_ascii_uppercase(),
        );
        n /= 36;
    }
    s.iter().rev().collect()
}

fn cname_conflict(record_type: &str, name: &str, zone: &str) -> String {
    format!(
        "RRSet of type {record_type} with DNS name {name} is not permitted because a conflicting RRSet of type CNAME with the same DNS name already exists in zone {zone}"
    )
}

fn no_such_zone(id: &str) -> ApiError {
    ApiError::new(404, "NoSuchHostedZone", format!("No hosted zone found with ID: {id}"))
}

fn invalid_input(message: impl Into<String>) -> ApiError {
    ApiError::new(400, "InvalidInput", message)
}

/// A page of ListResourceRecordSets.
#[derive(Debug, Clone)]
pub struct RecordPage {
    pub records: Vec<RecordSet>,
    /// Name and type of the first record of the next page, when the list was truncated.
    pub next: Option<(String, String)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalized_as_route53_returns_them() {
        assert_eq!(normalize_name("WWW.Example.com"), "www.example.com.");
        assert_eq!(normalize_name("*.example.com."), "\\052.example.com.");
        assert_eq!(normalize_name("\\052.example.com"), "\\052.example.com.");
        assert_eq!(
            normalize_name("aurorawriteendpoint.aurora_private_hosted_zone"),
            "aurorawriteendpoint.aurora_private_hosted_zone."
        );
    }

    #[test]
    fn list_order_compares_labels_from_the_right() {
        // com.example.z.a. sorts after com.example.b.
        assert_eq!(
            list_order("a.z.example.com.", "A", "b.example.com.", "A"),
            Ordering::Greater
        );
        assert_eq!(
            list_order("example.com.", "SOA", "example.com.", "NS"),
            Ordering::Greater
        );
        assert_eq!(list_order("example.com.", "NS", "a.example.com.", "A"), Ordering::Less);
        // The trailing dot counts: '-' sorts before '.', so b-c comes before b, and b before a.b.
        assert_eq!(
            list_order("b-c.example.com.", "A", "b.example.com.", "A"),
            Ordering::Less
        );
        assert_eq!(
            list_order("b.example.com.", "A", "a.b.example.com.", "A"),
            Ordering::Less
        );
    }
}
