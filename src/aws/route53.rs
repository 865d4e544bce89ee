//! The `Dns` port over aws-sdk-route53. Route 53 is global; its control plane lives in us-east-1.

use super::classify;
use crate::ports::{AwsError, AwsErrorKind, Dns, HostedZone, RecordSet, route53_name};
use async_trait::async_trait;
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ChangeStatus, ResourceRecord, ResourceRecordSet, RrType,
};

pub struct Route53Dns {
    client: aws_sdk_route53::Client,
}

impl Route53Dns {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Route53Dns {
            client: aws_sdk_route53::Client::new(config),
        }
    }
}

/// Route 53 returns names lower case with a trailing dot.
fn normalize(name: &str) -> String {
    route53_name(name)
}

/// The routing policy of a record set, in words, if it has one.
fn routing(r: &aws_sdk_route53::types::ResourceRecordSet) -> Option<String> {
    let policy = if r.weight().is_some() {
        "weighted"
    } else if r.region().is_some() {
        "latency"
    } else if r.failover().is_some() {
        "failover"
    } else if r.geo_location().is_some() {
        "geolocation"
    } else if r.geo_proximity_location().is_some() {
        "geoproximity"
    } else if r.multi_value_answer().is_some() {
        "multivalue answer"
    } else if r.cidr_routing_config().is_some() {
        "IP-based"
    } else if r.set_identifier().is_some() {
        "a routing policy"
    } else {
        return None;
    };
    Some(policy.to_owned())
}

/// How many record sets one ListResourceRecordSets page asks for while looking at one name.
const PAGE: i32 = 100;

fn invalid(message: String) -> AwsError {
    AwsError::new(AwsErrorKind::Other, message)
}

#[async_trait]
impl Dns for Route53Dns {
    async fn hosted_zone(&self, zone_id: &str) -> Result<HostedZone, AwsError> {
        let out = self
            .client
            .get_hosted_zone()
            .id(zone_id)
            .send()
            .await
            .map_err(|e| classify(&e, "route53:GetHostedZone"))?;
        let zone = out.hosted_zone().ok_or_else(|| {
            AwsError::new(
                AwsErrorKind::Other,
                format!("GetHostedZone {zone_id}: no zone in the answer"),
            )
        })?;
        Ok(HostedZone {
            id: zone.id().trim_start_matches("/hostedzone/").to_owned(),
            name: normalize(zone.name()),
            private: zone.config().is_some_and(|c| c.private_zone()),
        })
    }

    async fn records_at(&self, zone_id: &str, name: &str) -> Result<Vec<RecordSet>, AwsError> {
        let wanted = normalize(name);
        let mut found = Vec::new();
        let (mut next_type, mut next_id) = (None, None);
        loop {
            let out = self
                .client
                .list_resource_record_sets()
                .hosted_zone_id(zone_id)
                .start_record_name(&wanted)
                .set_start_record_type(next_type.clone())
                .set_start_record_identifier(next_id.clone())
                .max_items(PAGE)
                .send()
                .await
                .map_err(|e| classify(&e, "route53:ListResourceRecordSets"))?;
            let mut past = false;
            for r in out.resource_record_sets() {
                if normalize(r.name()) != wanted {
                    past = true;
                    break;
                }
                found.push(RecordSet {
                    name: normalize(r.name()),
                    record_type: r.r#type().as_str().to_owned(),
                    values: r.resource_records().iter().map(|v| v.value().to_owned()).collect(),
                    alias_target: r.alias_target().map(|a| a.dns_name().to_owned()),
                    set_identifier: r.set_identifier().map(str::to_owned),
                    routing: routing(r),
                });
            }
            let more_here = out.next_record_name().map(normalize).as_deref() == Some(wanted.as_str());
            if past || !out.is_truncated() || !more_here {
                return Ok(found);
            }
            next_type = out.next_record_type().cloned();
            next_id = out.next_record_identifier().map(str::to_owned);
        }
    }

    async fn cnames(&self, zone_id: &str, names: &[&str]) -> Result<Vec<Option<String>>, AwsError> {
        let mut values = Vec::with_capacity(names.len());
        for name in names {
            let out = self
                .client
                .list_resource_record_sets()
                .hosted_zone_id(zone_id)
                .start_record_name(*name)
                .start_record_type(RrType::Cname)
                .max_items(1)
                .send()
                .await
                .map_err(|e| classify(&e, "route53:ListResourceRecordSets"))?;
            let wanted = normalize(name);
            let value = out
                .resource_record_sets()
                .iter()
                .find(|r| {
                    normalize(r.name()) == wanted
                        && r.r#type() == &RrType::Cname
                        && r.set_identifier().is_none()
                        && r.alias_target().is_none()
                })
                .and_then(|r| r.resource_records().first())
                .map(|v| v.value().to_owned());
            values.push(value);
        }
        Ok(values)
    }

    async fn upsert_cnames(
        &self,
        zone_id: &str,
        records: &[(&str, &str)],
        ttl: i64,
        comment: &str,
    ) -> Result<String, AwsError> {
        let mut changes = Vec::with_capacity(records.len());
        for (name, value) in records {
            let record = ResourceRecord::builder()
                .value(*value)
                .build()
                .map_err(|e| invalid(format!("bad record value {value}: {e}")))?;
            let set = ResourceRecordSet::builder()
                .name(*name)
                .r#type(RrType::Cname)
                .ttl(ttl)
                .resource_records(record)
                .build()
                .map_err(|e| invalid(format!("bad record {name}: {e}")))?;
            changes.push(
                Change::builder()
                    .action(ChangeAction::Upsert)
                    .resource_record_set(set)
                    .build()
                    .map_err(|e| invalid(format!("bad change for {name}: {e}")))?,
            );
        }
        let batch = ChangeBatch::builder()
            .comment(comment)
            .set_changes(Some(changes))
            .build()
            .map_err(|e| invalid(format!("bad change batch: {e}")))?;
        let out = self
            .client
            .change_resource_record_sets()
            .hosted_zone_id(zone_id)
            .change_batch(batch)
            .send()
            .await
            .map_err(|e| classify(&e, "route53:ChangeResourceRecordSets"))?;
        let id = out.change_info().map(|c| c.id().to_owned()).unwrap_or_default();
        Ok(id.trim_start_matches("/change/").to_owned())
    }

    async fn change_insync(&self, change_id: &str) -> Result<bool, AwsError> {
        let out = self
            .client
            .get_change()
            .id(change_id)
            .send()
            .await
            .map_err(|e| classify(&e, "route53:GetChange"))?;
        Ok(out.change_info().map(|c| c.status()) == Some(&ChangeStatus::Insync))
    }
}
