//! The `Dns` port over aws-sdk-route53. Route 53 is global; its control plane lives in us-east-1.

use super::classify;
use crate::ports::{AwsError, AwsErrorKind, Dns};
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
    let mut n = name.trim_end_matches('.').to_ascii_lowercase();
    n.push('.');
    n
}

fn invalid(message: String) -> AwsError {
    AwsError::new(AwsErrorKind::Other, message)
}

#[async_trait]
impl Dns for Route53Dns {
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
                .map_err(|e| classify(&e))?;
            let wanted = normalize(name);
            let value = out
                .resource_record_sets()
                .iter()
                .find(|r| normalize(r.name()) == wanted && r.r#type() == &RrType::Cname)
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
            .map_err(|e| classify(&e))?;
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
            .map_err(|e| classify(&e))?;
        Ok(out.change_info().map(|c| c.status()) == Some(&ChangeStatus::Insync))
    }
}
