//! Route 53 hosted zones, record sets and changes, validated as Route 53 validates them. Changes are
//! applied at once (as Route 53 does to its own view) but report `PENDING` until the configured
//! propagation time has passed, then `INSYNC`.
//!
//! Record sets are simple, alias, or routing-policy records (weighted, latency, failover, multivalue
//! answer); a record set is identified by its name, its type and its set identifier (routing policies
//! only).
//!
//! Invariants: record names are stored normalized (lower case, escaped, with the trailing dot); a zone's
//! records are kept in Route 53's list order; a change batch applies entirely or not at all.

use super::error::ApiError;
use crate::scenario::{EndpointKind, Scenario};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::BTreeMap;
use tokio::time::Instant;

/// The TTL of a scenario record that gives none.
pub const DEFAULT_TTL: i64 = 300;

/// Record types the emulator accepts.
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

/// The full list order: name and type as [`list_order`], then the set identifier (records of one name and
/// type with a routing policy are listed by set identifier; a simple record has none and comes first).
fn record_order(a: &RecordSet, b: &RecordSet) -> Ordering {
    list_order(&a.name, &a.record_type, &b.name, &b.record_type).then_with(|| a.set_identifier.cmp(&b.set_identifier))
}

/// A failover record's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Failover {
    Primary,
    Secondary,
}

impl Failover {
    pub fn as_str(self) -> &'static str {
        match self {
            Failover::Primary => "PRIMARY",
            Failover::Secondary => "SECONDARY",
        }
    }

    pub fn parse(s: &str) -> Option<Failover> {
        match s {
            "PRIMARY" => Some(Failover::Primary),
            "SECONDARY" => Some(Failover::Secondary),
            _ => None,
        }
    }
}

/// Where an alias record points: an AWS resource or another record, by its hosted zone and DNS name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AliasTarget {
    /// The target's hosted zone id (e.g. `Z35SXDOTRQ7X7K` for a load balancer, or a zone of this account).
    pub hosted_zone_id: String,
    /// The target's DNS name; kept as Route 53 returns it (normalized, with the trailing dot).
    pub dns_name: String,
    #[serde(default)]
    pub evaluate_target_health: bool,
}

/// A resource record set: simple (TTL and values), alias (`alias_target`, no TTL or values), and either
/// without a routing policy or with exactly one (`weight`, `region`, `failover`, `multi_value_answer`)
/// and the `set_identifier` that tells it from the other records of its name and type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordSet {
    pub name: String,
    #[serde(rename = "type")]
    pub record_type: String,
    /// Routing-policy records only: unique among the records of this name and type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_identifier: Option<String>,
    /// Weighted routing: 0 to 255.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i64>,
    /// Latency routing: the Region this record answers for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Failover routing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover: Option<Failover>,
    /// Multivalue answer routing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multi_value_answer: Option<bool>,
    /// Seconds; meaningless (0) for an alias record, which has no TTL of its own.
    #[serde(default)]
    pub ttl: i64,
    /// Empty for an alias record.
    #[serde(default)]
    pub values: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias_target: Option<AliasTarget>,
}

impl RecordSet {
    /// A simple record: no routing policy, not an alias.
    pub fn simple(name: &str, record_type: &str, ttl: i64, values: &[&str]) -> RecordSet {
        RecordSet {
            name: normalize_name(name),
            record_type: record_type.to_owned(),
            set_identifier: None,
            weight: None,
            region: None,
            failover: None,
            multi_value_answer: None,
            ttl,
            values: values.iter().map(|v| (*v).to_owned()).collect(),
            alias_target: None,
        }
    }

    /// An alias record without a routing policy.
    pub fn alias(name: &str, record_type: &str, target: AliasTarget) -> RecordSet {
        RecordSet {
            ttl: 0,
            values: Vec::new(),
            alias_target: Some(AliasTarget {
                dns_name: normalize_name(&target.dns_name),
                ..target
            }),
            ..RecordSet::simple(name, record_type, 0, &[])
        }
    }

    /// This record with a weighted routing policy.
    pub fn weighted(self, set_identifier: &str, weight: i64) -> RecordSet {
        RecordSet {
            set_identifier: Some(set_identifier.to_owned()),
            weight: Some(weight),
            ..self
        }
    }

    /// The routing-policy fields that are set, by policy name (`weighted`, `latency`, `failover`,
    /// `multivalue`): none for a simple-routing record, exactly one for a valid routing-policy record.
    pub fn policies(&self) -> Vec<&'static str> {
        [
            ("weighted", self.weight.is_some()),
            ("latency", self.region.is_some()),
            ("failover", self.failover.is_some()),
            ("multivalue", self.multi_value_answer.is_some()),
        ]
        .into_iter()
        .filter_map(|(p, set)| set.then_some(p))
        .collect()
    }

    pub fn is_alias(&self) -> bool {
        self.alias_target.is_some()
    }

    /// What identifies the record set in a zone: name, type, set identifier.
    fn same_key(&self, name: &str, record_type: &str, set_identifier: Option<&str>) -> bool {
        self.name == name && self.record_type == record_type && self.set_identifier.as_deref() == set_identifier
    }

    /// `[name='x.', type='A']`, or with `, set-identifier='id'`, as Route 53's messages name a record set.
    fn describe(&self) -> String {
        match &self.set_identifier {
            None => format!("[name='{}', type='{}']", self.name, self.record_type),
            Some(id) => format!(
                "[name='{}', type='{}', set-identifier='{id}']",
                self.name, self.record_type
            ),
        }
    }
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
        self.records.sort_by(record_order);
    }

    fn find(&self, name: &str, record_type: &str, set_identifier: Option<&str>) -> Option<usize> {
        self.records
            .iter()
            .position(|r| r.same_key(name, record_type, set_identifier))
    }
}

#[derive(Debug, Clone)]
pub struct Change {
    pub id: String,
    pub zone_id: String,
    pub comment: Option<String>,
    /// What the batch did, in its order: for a test that must tell which records a change touched.
    pub records: Vec<ChangedRecord>,
    pub submitted: Instant,
    pub submitted_wall: jiff::Timestamp,
    pub insync_at: Instant,
}

/// One change of an applied batch: its action (`CREATE`, `UPSERT`, `DELETE`), the record's name
/// (normalised: lower case, trailing dot) and type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangedRecord {
    pub action: String,
    pub name: String,
    pub record_type: String,
}

impl ChangedRecord {
    fn of(c: &ChangeSpec) -> Self {
        ChangedRecord {
            action: c.action.clone(),
            name: normalize_name(&c.name),
            record_type: c.record_type.clone(),
        }
    }
}

impl Change {
    pub fn status(&self, now: Instant) -> &'static str {
        if now >= self.insync_at { "INSYNC" } else { "PENDING" }
    }
}

/// One change of a ChangeResourceRecordSets batch, as parsed from the request (not validated yet).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChangeSpec {
    pub action: String,
    pub name: String,
    pub record_type: String,
    pub set_identifier: Option<String>,
    pub weight: Option<i64>,
    pub region: Option<String>,
    /// As sent: validated against `PRIMARY` and `SECONDARY` with the rest of the change.
    pub failover: Option<String>,
    pub multi_value_answer: Option<bool>,
    pub ttl: Option<i64>,
    pub values: Vec<String>,
    pub alias_target: Option<AliasTarget>,
    /// Set when the change uses a feature the emulator does not model (geolocation, health check, ...).
    pub unsupported: Option<String>,
}

impl ChangeSpec {
    /// `[Action=UPSERT, Name=x., Type=A, SetIdentifier=null]`, as Route 53's InvalidInput messages name a
    /// change.
    fn describe(&self, name: &str) -> String {
        format!(
            "[Action={}, Name={name}, Type={}, SetIdentifier={}]",
            self.action,
            self.record_type,
            self.set_identifier.as_deref().unwrap_or("null")
        )
    }

    /// The record set this change describes, or the `InvalidInput` error Route 53 answers for a change
    /// whose shape is wrong (before any record of the zone is looked at).
    fn record(&self) -> Result<RecordSet, ApiError> {
        let name = normalize_name(&self.name);
        let what = self.describe(&name);
        let has_records = self.ttl.is_some() || !self.values.is_empty();
        let (ttl, values) = match (&self.alias_target, has_records) {
            (Some(_), true) => {
                return Err(invalid_input(format!(
                    "Invalid request: Expected exactly one of [AliasTarget, all of [TTL, and ResourceRecords], or TrafficPolicyInstanceId], but found more than one in Change with {what}"
                )));
            }
            (Some(_), false) => (0, Vec::new()),
            (None, _) => match self.ttl.filter(|_| !self.values.is_empty()) {
                Some(ttl) => (ttl, self.values.clone()),
                None => {
                    return Err(invalid_input(format!(
                        "Invalid request: Expected exactly one of [AliasTarget, all of [TTL, and ResourceRecords], or TrafficPolicyInstanceId], but found none in Change with {what}"
                    )));
                }
            },
        };
        if !(0..=2_147_483_647).contains(&ttl) {
            return Err(invalid_input(format!("Invalid TTL {ttl} for {name}")));
        }
        let failover = match &self.failover {
            None => None,
            Some(f) => Some(Failover::parse(f).ok_or_else(|| {
                invalid_input(format!(
                    "Invalid XML ; cvc-enumeration-valid: Value '{f}' is not facet-valid with respect to enumeration '[PRIMARY, SECONDARY]'."
                ))
            })?),
        };
        let record = RecordSet {
            name: name.clone(),
            record_type: self.record_type.clone(),
            set_identifier: self.set_identifier.clone(),
            weight: self.weight,
            region: self.region.clone(),
            failover,
            multi_value_answer: self.multi_value_answer,
            ttl,
            values,
            alias_target: self.alias_target.as_ref().map(|a| AliasTarget {
                hosted_zone_id: a.hosted_zone_id.clone(),
                dns_name: normalize_name(&a.dns_name),
                evaluate_target_health: a.evaluate_target_health,
            }),
        };
        let policies = record.policies();
        match (&record.set_identifier, policies.len()) {
            (None, 0) => {}
            (None, _) => {
                return Err(invalid_input(format!(
                    "Invalid request: Missing field 'SetIdentifier' in Change with {what}"
                )));
            }
            (Some(id), n) => {
                if id.is_empty() || id.chars().count() > 128 {
                    return Err(invalid_input(format!(
                        "Invalid request: SetIdentifier must be 1 to 128 characters in Change with {what}"
                    )));
                }
                if n != 1 {
                    return Err(invalid_input(format!(
                        "Invalid request: Expected exactly one of [Weight, Region, Failover, GeoLocation, MultiValueAnswer, GeoProximityLocation, or CidrRoutingConfig], but found {} in Change with {what}",
                        if n == 0 { "none" } else { "more than one" }
                    )));
                }
            }
        }
        if let Some(w) = record.weight
            && !(0..=255).contains(&w)
        {
            return Err(invalid_input(format!(
                "Invalid request: Weight {w} is not between 0 and 255 in Change with {what}"
            )));
        }
        if let Some(r) = &record.region
            && !crate::scenario::is_region_name(r)
        {
            return Err(invalid_input(format!(
                "Invalid XML ; cvc-enumeration-valid: Value '{r}' is not a Region."
            )));
        }
        Ok(record)
    }
}

/// A zone's records as a change batch left them, for the DNS answers: Route 53's name servers answer
/// the new records only once the change is `INSYNC`.
#[derive(Debug, Clone)]
pub struct Published {
    /// When the change that made these records is `INSYNC`; `None` for the records the zone was loaded with.
    pub insync_at: Option<Instant>,
    /// The zone's records, in list order.
    pub records: Vec<RecordSet>,
}

#[derive(Debug, Default)]
pub struct Dns {
    pub zones: BTreeMap<String, HostedZone>,
    pub changes: BTreeMap<String, Change>,
    next_change: u64,
    /// Per zone id, the record sets each change batch left, oldest first: the first is the newest one
    /// a DNS client sees (older ones are dropped), the later ones are not visible yet.
    published: BTreeMap<String, Vec<Published>>,
    /// How long after a change is `INSYNC` DNS answers show it (resolvers holding the old answer for
    /// its TTL); zero by default.
    pub visibility_delay: std::time::Duration,
}

fn soa_and_ns(zone: &str, name_servers: &[String]) -> Vec<RecordSet> {
    vec![
        RecordSet {
            values: name_servers.iter().map(|n| format!("{n}.")).collect(),
            ..RecordSet::simple(zone, "NS", 172_800, &[])
        },
        RecordSet::simple(
            zone,
            "SOA",
            900,
            &[&format!(
                "{}. awsdns-hostmaster.amazon.com. 1 7200 900 1209600 86400",
                name_servers[0]
            )],
        ),
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
                let alias = r.alias_target.as_ref().map(|a| AliasTarget {
                    hosted_zone_id: a.hosted_zone_id.clone(),
                    dns_name: normalize_name(&a.dns_name),
                    evaluate_target_health: a.evaluate_target_health,
                });
                records.push(RecordSet {
                    name: normalize_name(&r.name),
                    record_type: r.record_type.clone(),
                    set_identifier: r.set_identifier.clone(),
                    weight: r.weight,
                    region: r.region.clone(),
                    failover: r.failover,
                    multi_value_answer: r.multi_value_answer,
                    ttl: if alias.is_some() {
                        0
                    } else {
                        r.ttl.unwrap_or(DEFAULT_TTL)
                    },
                    values,
                    alias_target: alias,
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
            self.published.insert(
                z.id.clone(),
                vec![Published {
                    insync_at: None,
                    records: zone.records.clone(),
                }],
            );
            self.zones.insert(z.id.clone(), zone);
        }
    }

    /// The record sets of a zone a DNS client sees at `now`: as the last change batch that has been
    /// `INSYNC` for `visibility_delay` left them (the zone's loaded records before any). Empty for an
    /// unknown zone.
    pub fn visible_records(&self, zone_id: &str, now: Instant) -> &[RecordSet] {
        let Some(versions) = self.published.get(zone_id) else {
            return &[];
        };
        versions
            .iter()
            .rev()
            .find(|p| self.is_visible(p, now))
            .or(versions.first())
            .map_or(&[], |p| p.records.as_slice())
    }

    fn is_visible(&self, p: &Published, now: Instant) -> bool {
        p.insync_at.is_none_or(|t| t + self.visibility_delay <= now)
    }

    /// Forgets the versions older than the one a DNS client sees at `now` (with the delay as it is now:
    /// a longer delay set later does not bring them back).
    pub fn prune_published(&mut self, now: Instant) {
        let delay = self.visibility_delay;
        for versions in self.published.values_mut() {
            if let Some(last_visible) = versions
                .iter()
                .rposition(|p| p.insync_at.is_none_or(|t| t + delay <= now))
            {
                versions.drain(..last_visible);
            }
        }
    }

    pub fn zone(&self, id: &str) -> Result<&HostedZone, ApiError> {
        self.zones.get(id).ok_or_else(|| no_such_zone(id))
    }

    /// ListResourceRecordSets: records from (`start_name`, `start_type`, `start_identifier`) on, at most
    /// `max_items`, and where the next page starts when there are more.
    pub fn list(
        &self,
        zone_id: &str,
        start_name: Option<&str>,
        start_type: Option<&str>,
        start_identifier: Option<&str>,
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
        if start_identifier.is_some() && start_type.is_none() {
            return Err(ApiError::new(
                400,
                "InvalidInput",
                "The input is not valid: the identifier parameter requires the name and type parameters.",
            ));
        }
        let start_name = start_name.map(normalize_name);
        let from = zone
            .records
            .iter()
            .position(|r| match &start_name {
                None => true,
                Some(n) => {
                    let by_name_and_type = list_order(&r.name, &r.record_type, n, start_type.unwrap_or(""));
                    let order = match start_identifier {
                        None => by_name_and_type,
                        Some(id) => by_name_and_type.then_with(|| r.set_identifier.as_deref().cmp(&Some(id))),
                    };
                    order != Ordering::Less
                }
            })
            .unwrap_or(zone.records.len());
        let rest = &zone.records[from..];
        let records: Vec<RecordSet> = rest.iter().take(max_items).cloned().collect();
        let next = rest.get(max_items).map(|r| NextRecord {
            name: r.name.clone(),
            record_type: r.record_type.clone(),
            identifier: r.set_identifier.clone(),
        });
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
                    "The emulator does not support {what}; it supports simple, alias, weighted, latency, failover and multivalue answer records."
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
            let rrset = c.record()?;
            let name = rrset.name.clone();
            let id = rrset.set_identifier.as_deref();
            if !seen.insert((name.clone(), rrset.record_type.clone(), rrset.set_identifier.clone())) {
                errors.push(format!(
                    "The request contains an invalid set of changes for a resource record set '{} {}'",
                    rrset.record_type, name
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
            if rrset.record_type == "CNAME" && rrset.values.len() > 1 {
                errors.push(format!(
                    "RRSet of type CNAME with DNS name {name} has more than one resource record, which is not permitted."
                ));
                continue;
            }
            if rrset.record_type == "CNAME" && name == next.name {
                errors.push(format!(
                    "RRSet of type CNAME with DNS name {name} is not permitted at apex in zone {}",
                    next.name
                ));
                continue;
            }
            let existing = next.find(&name, &rrset.record_type, id);
            let what = rrset.describe();
            match c.action.as_str() {
                "CREATE" | "UPSERT" => {
                    if c.action == "CREATE" && existing.is_some() {
                        errors.push(format!("Tried to create resource record set {what} but it already exists"));
                    } else if let Some(problem) = conflict(&next, &rrset) {
                        errors.push(problem);
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
                    Some(_) if name == next.name && matches!(rrset.record_type.as_str(), "SOA" | "NS") => {
                        errors.push(format!(
                            "A HostedZone must contain at least one NS record for the zone itself. Tried to delete {what}"
                        ))
                    }
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
        let insync_at = now + propagation;
        self.published.entry(zone_id.to_owned()).or_default().push(Published {
            insync_at: Some(insync_at),
            records: next.records.clone(),
        });
        self.prune_published(now);
        self.zones.insert(zone_id.to_owned(), next);
        self.next_change += 1;
        let change = Change {
            id: format!("C{:0>20}", to_base36(self.next_change * 7_919 + 1_000_003)),
            zone_id: zone_id.to_owned(),
            comment,
            records: changes.iter().map(ChangedRecord::of).collect(),
            submitted: now,
            submitted_wall: wall,
            insync_at,
        };
        self.changes.insert(change.id.clone(), change.clone());
        Ok(change)
    }

    /// Inserts or replaces (same name, type and set identifier) a record set as it is, without any of the
    /// checks a change batch gets: for tests that need a record Route 53 would hold but a change could not
    /// make from here (or one it would refuse). The name must be in the zone. DNS answers show it at once
    /// (it is put into every published version of the zone, so a pending change stays pending).
    pub fn put(&mut self, zone_id: &str, mut record: RecordSet) -> Result<(), String> {
        let zone = self
            .zones
            .get_mut(zone_id)
            .ok_or_else(|| format!("no hosted zone {zone_id}"))?;
        record.name = normalize_name(&record.name);
        if let Some(a) = &mut record.alias_target {
            a.dns_name = normalize_name(&a.dns_name);
        }
        if !in_zone(&record.name, &zone.name) {
            return Err(format!("{} is not in zone {}", record.name, zone.name));
        }
        for records in self
            .published
            .get_mut(zone_id)
            .into_iter()
            .flatten()
            .map(|p| &mut p.records)
            .chain([&mut zone.records])
        {
            match records
                .iter()
                .position(|r| r.same_key(&record.name, &record.record_type, record.set_identifier.as_deref()))
            {
                Some(i) => records[i] = record.clone(),
                None => {
                    records.push(record.clone());
                    records.sort_by(record_order);
                }
            }
        }
        Ok(())
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

/// Why `rrset` cannot be created or upserted beside the other records of `zone` (the record it would
/// replace excluded), in Route 53's words, or `None` when it can.
///
/// A CNAME excludes every other record at its name (an alias A record is an A record). Within one name
/// and type, records are either one simple-routing record or any number of routing-policy records, all
/// with the same policy.
fn conflict(zone: &HostedZone, rrset: &RecordSet) -> Option<String> {
    let others: Vec<&RecordSet> = zone
        .records
        .iter()
        .filter(|r| r.name == rrset.name)
        .filter(|r| !r.same_key(&rrset.name, &rrset.record_type, rrset.set_identifier.as_deref()))
        .collect();
    let (name, t) = (&rrset.name, &rrset.record_type);
    if t == "CNAME" && others.iter().any(|r| r.record_type != "CNAME") {
        return Some(format!(
            "RRSet of type CNAME with DNS name {name} is not permitted as it conflicts with other records with the same DNS name in zone {}",
            zone.name
        ));
    }
    if t != "CNAME" && others.iter().any(|r| r.record_type == "CNAME") {
        return Some(format!(
            "RRSet of type {t} with DNS name {name} is not permitted because a conflicting RRSet of type CNAME with the same DNS name already exists in zone {}",
            zone.name
        ));
    }
    let same_type: Vec<&&RecordSet> = others.iter().filter(|r| &r.record_type == t).collect();
    match &rrset.set_identifier {
        None if !same_type.is_empty() => Some(format!(
            "RRSet with DNS name {name}, type {t} cannot be created as other RRSets exist with the same name and type."
        )),
        Some(id)
            if same_type
                .iter()
                .any(|r| r.set_identifier.is_none() || r.policies() != rrset.policies()) =>
        {
            Some(format!(
                "RRSet with DNS name {name}, type {t}, SetIdentifier {id} cannot be created as a non-weighted set exists with the same name and type."
            ))
        }
        _ => None,
    }
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
    /// The first record of the next page, when the list was truncated.
    pub next: Option<NextRecord>,
}

/// Where the next page of ListResourceRecordSets starts: `NextRecordName`, `NextRecordType`, and
/// `NextRecordIdentifier` when that record has a routing policy (it may share its name and type with
/// records of this page).
#[derive(Debug, Clone, PartialEq)]
pub struct NextRecord {
    pub name: String,
    pub record_type: String,
    pub identifier: Option<String>,
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
    fn records_of_one_name_and_type_are_ordered_by_set_identifier_after_a_simple_one() {
        let a = RecordSet::simple("x.example.com", "A", 1, &["192.0.2.1"]);
        let w1 = a.clone().weighted("b", 1);
        let w2 = a.clone().weighted("a", 1);
        let mut v = vec![w1.clone(), a.clone(), w2.clone()];
        v.sort_by(record_order);
        assert_eq!(v, [a, w2, w1]);
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
