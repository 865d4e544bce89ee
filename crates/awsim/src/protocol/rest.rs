//! Route 53's wire protocol (REST/XML, API version 2013-04-01): the operation is the method and path,
//! parameters are in the path, the query string and an XML body; answers are XML in the
//! `https://route53.amazonaws.com/doc/2013-04-01/` namespace.

use super::query::timestamp;
use super::xml::XmlWriter;
use crate::model::route53::{AliasTarget, Change, ChangeSpec, RecordSet};
use crate::model::{ApiError, World};
use std::collections::BTreeMap;
use tokio::time::Instant;

pub const XMLNS: &str = "https://route53.amazonaws.com/doc/2013-04-01/";

/// A Route 53 request, resolved to its operation.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    GetHostedZone {
        zone: String,
    },
    ListResourceRecordSets {
        zone: String,
        query: BTreeMap<String, String>,
    },
    ChangeResourceRecordSets {
        zone: String,
    },
    GetChange {
        id: String,
    },
}

impl Op {
    pub fn action(&self) -> &'static str {
        match self {
            Op::GetHostedZone { .. } => "GetHostedZone",
            Op::ListResourceRecordSets { .. } => "ListResourceRecordSets",
            Op::ChangeResourceRecordSets { .. } => "ChangeResourceRecordSets",
            Op::GetChange { .. } => "GetChange",
        }
    }

    /// What identifies the request, for the call log.
    pub fn params(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        match self {
            Op::GetHostedZone { zone } | Op::ChangeResourceRecordSets { zone } => {
                m.insert("HostedZoneId".into(), zone.clone());
            }
            Op::ListResourceRecordSets { zone, query } => {
                m.insert("HostedZoneId".into(), zone.clone());
                m.extend(query.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            Op::GetChange { id } => {
                m.insert("Id".into(), id.clone());
            }
        }
        m
    }
}

fn percent_decode(s: &str) -> String {
    // Path labels are percent-encoded by the SDK; reuse the form decoder (which also maps '+').
    form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Resolves method and path to an operation, or `None` for anything the emulator does not serve.
pub fn route(method: &str, path: &str, query: Option<&str>) -> Option<Op> {
    let rest = path.strip_prefix("/2013-04-01/")?;
    let parts: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    let query: BTreeMap<String, String> = query
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    match (method, parts.as_slice()) {
        ("GET", ["hostedzone", id]) => Some(Op::GetHostedZone {
            zone: percent_decode(id),
        }),
        ("GET", ["hostedzone", id, "rrset"]) => Some(Op::ListResourceRecordSets {
            zone: percent_decode(id),
            query,
        }),
        ("POST", ["hostedzone", id, "rrset"]) => Some(Op::ChangeResourceRecordSets {
            zone: percent_decode(id),
        }),
        ("GET", ["change", id]) => Some(Op::GetChange { id: percent_decode(id) }),
        _ => None,
    }
}

/// Runs one Route 53 operation and renders its XML answer.
pub fn handle(world: &mut World, op: &Op, body: &[u8], now: Instant, request_id: &str) -> Result<String, ApiError> {
    let _ = request_id;
    match op {
        Op::GetHostedZone { zone } => {
            let z = world.dns.zone(zone)?;
            let mut w = XmlWriter::with_root("GetHostedZoneResponse", XMLNS);
            w.open("HostedZone");
            w.text("Id", format!("/hostedzone/{}", z.id));
            w.text("Name", &z.name);
            w.text("CallerReference", &z.caller_reference);
            w.open("Config");
            w.opt_text("Comment", z.comment.as_ref());
            w.text("PrivateZone", z.private);
            w.close();
            w.text("ResourceRecordSetCount", z.records.len());
            w.close();
            if z.private {
                w.open("VPCs");
                for v in &z.vpcs {
                    w.open("VPC");
                    w.text("VPCRegion", &v.region);
                    w.text("VPCId", &v.id);
                    w.close();
                }
                w.close();
            } else {
                w.open("DelegationSet");
                w.text_list("NameServers", "NameServer", &z.name_servers);
                w.close();
            }
            Ok(w.finish())
        }
        Op::ListResourceRecordSets { zone, query } => {
            let max_items = match query.get("maxitems") {
                None => 300,
                Some(v) => v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .map(|n| n.min(300))
                    .ok_or_else(|| ApiError::new(400, "InvalidInput", format!("Invalid maxitems {v}")))?,
            };
            let page = world.dns.list(
                zone,
                query.get("name").map(String::as_str),
                query.get("type").map(String::as_str),
                query.get("identifier").map(String::as_str),
                max_items,
            )?;
            let mut w = XmlWriter::with_root("ListResourceRecordSetsResponse", XMLNS);
            w.open("ResourceRecordSets");
            for r in &page.records {
                write_record(&mut w, r);
            }
            w.close();
            w.text("IsTruncated", page.next.is_some());
            if let Some(next) = &page.next {
                w.text("NextRecordName", &next.name);
                w.text("NextRecordType", &next.record_type);
                w.opt_text("NextRecordIdentifier", next.identifier.as_ref());
            }
            w.text("MaxItems", max_items);
            Ok(w.finish())
        }
        Op::ChangeResourceRecordSets { zone } => {
            let (comment, changes) = parse_change_batch(body)?;
            let wall = world.clock.wall(now);
            let propagation = world.timings.dns_propagation();
            let change = world.dns.change(zone, comment, &changes, now, wall, propagation)?;
            let mut w = XmlWriter::with_root("ChangeResourceRecordSetsResponse", XMLNS);
            write_change_info(&mut w, &change, now);
            Ok(w.finish())
        }
        Op::GetChange { id } => {
            let change = world.dns.get_change(id)?;
            let mut w = XmlWriter::with_root("GetChangeResponse", XMLNS);
            write_change_info(&mut w, change, now);
            Ok(w.finish())
        }
    }
}

/// A `ResourceRecordSet` with its elements in the order of the Route 53 model: an alias record has an
/// `AliasTarget` and neither `TTL` nor `ResourceRecords`.
fn write_record(w: &mut XmlWriter, r: &RecordSet) {
    w.open("ResourceRecordSet");
    w.text("Name", &r.name);
    w.text("Type", &r.record_type);
    w.opt_text("SetIdentifier", r.set_identifier.as_ref());
    w.opt_text("Weight", r.weight);
    w.opt_text("Region", r.region.as_ref());
    w.opt_text("Failover", r.failover.map(|f| f.as_str()));
    w.opt_text("MultiValueAnswer", r.multi_value_answer);
    match &r.alias_target {
        Some(a) => {
            w.open("AliasTarget");
            w.text("HostedZoneId", &a.hosted_zone_id);
            w.text("DNSName", &a.dns_name);
            w.text("EvaluateTargetHealth", a.evaluate_target_health);
            w.close();
        }
        None => {
            w.text("TTL", r.ttl);
            w.open("ResourceRecords");
            for v in &r.values {
                w.open("ResourceRecord");
                w.text("Value", v);
                w.close();
            }
            w.close();
        }
    }
    w.close();
}

fn write_change_info(w: &mut XmlWriter, c: &Change, now: Instant) {
    w.open("ChangeInfo");
    w.text("Id", format!("/change/{}", c.id));
    w.text("Status", c.status(now));
    w.text("SubmittedAt", timestamp(c.submitted_wall));
    w.opt_text("Comment", c.comment.as_ref());
    w.close();
}

fn malformed(reason: impl std::fmt::Display) -> ApiError {
    ApiError::new(400, "InvalidInput", format!("Invalid XML ; {reason}"))
}

fn child<'a, 'i>(n: roxmltree::Node<'a, 'i>, name: &str) -> Option<roxmltree::Node<'a, 'i>> {
    n.children().find(|c| c.is_element() && c.tag_name().name() == name)
}

fn text_of(n: roxmltree::Node<'_, '_>, name: &str) -> Option<String> {
    child(n, name).and_then(|c| c.text()).map(|t| t.trim().to_owned())
}

/// Parses a `ChangeResourceRecordSetsRequest` body.
pub fn parse_change_batch(body: &[u8]) -> Result<(Option<String>, Vec<ChangeSpec>), ApiError> {
    let text = std::str::from_utf8(body).map_err(malformed)?;
    let doc = roxmltree::Document::parse(text).map_err(malformed)?;
    let root = doc.root_element();
    if root.tag_name().name() != "ChangeResourceRecordSetsRequest" {
        return Err(malformed("the root element must be ChangeResourceRecordSetsRequest"));
    }
    let batch = child(root, "ChangeBatch").ok_or_else(|| malformed("ChangeBatch is missing"))?;
    let comment = text_of(batch, "Comment");
    let changes_el = child(batch, "Changes").ok_or_else(|| malformed("Changes is missing"))?;
    let mut changes = Vec::new();
    for change in changes_el
        .children()
        .filter(|c| c.is_element() && c.tag_name().name() == "Change")
    {
        let action = text_of(change, "Action").ok_or_else(|| malformed("Action is missing"))?;
        let set = child(change, "ResourceRecordSet").ok_or_else(|| malformed("ResourceRecordSet is missing"))?;
        let name = text_of(set, "Name").ok_or_else(|| malformed("Name is missing"))?;
        let record_type = text_of(set, "Type").ok_or_else(|| malformed("Type is missing"))?;
        let number = |tag: &str| -> Result<Option<i64>, ApiError> {
            match text_of(set, tag) {
                None => Ok(None),
                Some(t) => t
                    .parse::<i64>()
                    .map(Some)
                    .map_err(|_| malformed(format!("{tag} {t} is not a number"))),
            }
        };
        let ttl = number("TTL")?;
        let weight = number("Weight")?;
        let values = child(set, "ResourceRecords")
            .map(|rr| {
                rr.children()
                    .filter(|c| c.is_element() && c.tag_name().name() == "ResourceRecord")
                    .filter_map(|c| text_of(c, "Value"))
                    .collect()
            })
            .unwrap_or_default();
        let multi_value_answer = text_of(set, "MultiValueAnswer")
            .map(|v| parse_bool("MultiValueAnswer", &v))
            .transpose()?;
        let alias_target = match child(set, "AliasTarget") {
            None => None,
            Some(a) => Some(AliasTarget {
                hosted_zone_id: text_of(a, "HostedZoneId")
                    .ok_or_else(|| malformed("AliasTarget.HostedZoneId is missing"))?,
                dns_name: text_of(a, "DNSName").ok_or_else(|| malformed("AliasTarget.DNSName is missing"))?,
                evaluate_target_health: text_of(a, "EvaluateTargetHealth")
                    .map(|v| parse_bool("EvaluateTargetHealth", &v))
                    .transpose()?
                    .ok_or_else(|| malformed("AliasTarget.EvaluateTargetHealth is missing"))?,
            }),
        };
        const UNSUPPORTED: &[&str] = &[
            "GeoLocation",
            "HealthCheckId",
            "TrafficPolicyInstanceId",
            "CidrRoutingConfig",
            "GeoProximityLocation",
        ];
        let unsupported = UNSUPPORTED
            .iter()
            .find(|u| child(set, u).is_some())
            .map(|u| (*u).to_owned());
        changes.push(ChangeSpec {
            action,
            name,
            record_type,
            set_identifier: text_of(set, "SetIdentifier"),
            weight,
            region: text_of(set, "Region"),
            failover: text_of(set, "Failover"),
            multi_value_answer,
            ttl,
            values,
            alias_target,
            unsupported,
        });
    }
    Ok((comment, changes))
}

fn parse_bool(tag: &str, v: &str) -> Result<bool, ApiError> {
    match v {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(malformed(format!("{tag} {other} is not a boolean"))),
    }
}

/// The XML body of a Route 53 error (the standard envelope, which the AWS SDK parses into typed errors,
/// `InvalidChangeBatch` included).
pub fn error_body(e: &ApiError, request_id: &str) -> String {
    let mut w = XmlWriter::with_root("ErrorResponse", XMLNS);
    w.open("Error");
    w.text("Type", e.fault_type());
    w.text("Code", &e.code);
    w.text("Message", &e.message);
    w.close();
    w.text("RequestId", request_id);
    w.finish()
}

/// A summary of a change batch for the call log: `UPSERT CNAME name -> value; ...`.
pub fn summarize_changes(body: &[u8]) -> Option<String> {
    let (_, changes) = parse_change_batch(body).ok()?;
    Some(
        changes
            .iter()
            .map(|c| {
                let id = c.set_identifier.as_ref().map(|i| format!(" [{i}]")).unwrap_or_default();
                let to = match &c.alias_target {
                    Some(a) => format!("alias {}", a.dns_name),
                    None => c.values.join(","),
                };
                format!("{} {} {}{id} -> {to}", c.action, c.record_type, c.name)
            })
            .collect::<Vec<_>>()
            .join("; "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_resolve_to_operations() {
        assert_eq!(
            route("GET", "/2013-04-01/hostedzone/Z123", None),
            Some(Op::GetHostedZone { zone: "Z123".into() })
        );
        assert_eq!(
            route("POST", "/2013-04-01/hostedzone/Z123/rrset/", None),
            Some(Op::ChangeResourceRecordSets { zone: "Z123".into() })
        );
        assert_eq!(
            route("GET", "/2013-04-01/change/C1", None),
            Some(Op::GetChange { id: "C1".into() })
        );
        assert_eq!(route("DELETE", "/2013-04-01/hostedzone/Z123", None), None);
        let Some(Op::ListResourceRecordSets { query, .. }) = route(
            "GET",
            "/2013-04-01/hostedzone/Z1/rrset",
            Some("name=a.example.com&maxitems=2"),
        ) else {
            panic!("not a list")
        };
        assert_eq!(query.get("maxitems").map(String::as_str), Some("2"));
    }

    #[test]
    fn a_change_batch_parses_with_comment_and_values() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<ChangeResourceRecordSetsRequest xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><ChangeBatch><Comment>go west</Comment><Changes><Change><Action>UPSERT</Action><ResourceRecordSet><Name>w.zone</Name><Type>CNAME</Type><TTL>1</TTL><ResourceRecords><ResourceRecord><Value>x.example.com</Value></ResourceRecord></ResourceRecords></ResourceRecordSet></Change></Changes></ChangeBatch></ChangeResourceRecordSetsRequest>"#;
        let (comment, changes) = parse_change_batch(body).unwrap();
        assert_eq!(comment.as_deref(), Some("go west"));
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].values, vec!["x.example.com".to_owned()]);
        assert_eq!(changes[0].ttl, Some(1));
        assert_eq!(changes[0].unsupported, None);
    }
}
