//! The `Provisioning` port over aws-sdk-rds: what a rebuild after a detach reads and creates. Every
//! call goes to the Region of the resource it names: a cluster's spec is read where the cluster is,
//! CreateGlobalCluster is sent to the source cluster's Region, CreateDBCluster and CreateDBInstance to
//! the new secondary's Region.
//!
//! The creating calls are never retried by the SDK: an attempt whose answer was lost may have taken
//! effect, and the runbook looks for the resource before it sends the call again. A create that finds
//! its identifier taken is `AwsErrorKind::InvalidState` (`…AlreadyExists…`), an unknown cluster or
//! global cluster `NotFound` (see [`super::classify`]).

use super::classify;
use super::rds::{RdsAurora, no_retries};
use crate::ports::{AwsError, ClusterSpec, ClusterState, InstanceSpec, NewInstance, NewSecondary, Provisioning};
use crate::types::Region;
use async_trait::async_trait;
use aws_sdk_rds::types::{DbCluster, DbInstance, Filter};

/// An instance as the port carries it (RDS API reference, DBInstance).
fn instance_spec(i: &DbInstance) -> InstanceSpec {
    let monitoring = match (i.monitoring_role_arn(), i.monitoring_interval()) {
        (Some(role), Some(interval)) if interval > 0 => Some((role.to_owned(), interval)),
        _ => None,
    };
    InstanceSpec {
        instance_id: i.db_instance_identifier().unwrap_or_default().to_owned(),
        instance_class: i.db_instance_class().unwrap_or_default().to_owned(),
        db_parameter_group: i
            .db_parameter_groups()
            .first()
            .and_then(|g| g.db_parameter_group_name())
            .map(str::to_owned),
        monitoring,
        status: i.db_instance_status().unwrap_or("unknown").to_owned(),
    }
}

/// A cluster as the port carries it (RDS API reference, DBCluster), with its instances, writer first
/// then in `DBClusterMembers` order; a member DescribeDBInstances did not list is left out.
fn cluster_spec(region: &Region, cluster_id: &str, c: &DbCluster, instances: &[DbInstance]) -> ClusterSpec {
    let mut members: Vec<_> = c.db_cluster_members().iter().collect();
    // A stable sort: the writer first, the readers in AWS's order.
    members.sort_by_key(|m| m.is_cluster_writer() != Some(true));
    let instances = members
        .iter()
        .filter_map(|m| {
            let id = m.db_instance_identifier()?;
            instances.iter().find(|i| i.db_instance_identifier() == Some(id))
        })
        .map(instance_spec)
        .collect();
    ClusterSpec {
        region: region.clone(),
        cluster_id: c.db_cluster_identifier().unwrap_or(cluster_id).to_owned(),
        engine: c.engine().unwrap_or_default().to_owned(),
        engine_version: c.engine_version().unwrap_or_default().to_owned(),
        db_subnet_group: c.db_subnet_group().map(str::to_owned),
        vpc_security_group_ids: c
            .vpc_security_groups()
            .iter()
            .filter_map(|g| g.vpc_security_group_id())
            .map(str::to_owned)
            .collect(),
        db_cluster_parameter_group: c.db_cluster_parameter_group().map(str::to_owned),
        storage_encrypted: c.storage_encrypted().unwrap_or(false),
        kms_key_id: c.kms_key_id().map(str::to_owned),
        deletion_protection: c.deletion_protection().unwrap_or(false),
        instances,
    }
}

#[async_trait]
impl Provisioning for RdsAurora {
    async fn cluster_spec(&self, region: &Region, cluster_id: &str) -> Result<ClusterSpec, AwsError> {
        let client = self.client(region);
        let c = &self.describe_cluster(region, cluster_id).await?;
        // One call for every instance of the cluster (at most 16, within one page of 100).
        let instances = client
            .describe_db_instances()
            .filters(Filter::builder().name("db-cluster-id").values(cluster_id).build())
            .send()
            .await
            .map_err(|e| classify(&e, "rds:DescribeDBInstances"))?;
        Ok(cluster_spec(region, cluster_id, c, instances.db_instances()))
    }

    async fn create_global_cluster(&self, global_cluster_id: &str, source: &ClusterState) -> Result<(), AwsError> {
        self.client(&source.region)
            .create_global_cluster()
            .global_cluster_identifier(global_cluster_id)
            .source_db_cluster_identifier(&source.arn)
            .customize()
            .config_override(no_retries())
            .send()
            .await
            .map_err(|e| classify(&e, "rds:CreateGlobalCluster"))?;
        Ok(())
    }

    async fn create_secondary(&self, spec: &NewSecondary) -> Result<(), AwsError> {
        // No master user: a secondary replicates the primary's (RDS API reference, CreateDBCluster).
        self.client(&spec.region)
            .create_db_cluster()
            .db_cluster_identifier(&spec.cluster_id)
            .global_cluster_identifier(&spec.global_cluster_id)
            .engine(&spec.engine)
            .engine_version(&spec.engine_version)
            .set_db_subnet_group_name(spec.db_subnet_group.clone())
            .set_vpc_security_group_ids(
                (!spec.vpc_security_group_ids.is_empty()).then(|| spec.vpc_security_group_ids.clone()),
            )
            .set_db_cluster_parameter_group_name(spec.db_cluster_parameter_group.clone())
            .set_kms_key_id(spec.kms_key_id.clone())
            .set_storage_encrypted(spec.kms_key_id.is_some().then_some(true))
            .deletion_protection(spec.deletion_protection)
            .customize()
            .config_override(no_retries())
            .send()
            .await
            .map_err(|e| classify(&e, "rds:CreateDBCluster"))?;
        Ok(())
    }

    async fn create_instance(&self, spec: &NewInstance) -> Result<(), AwsError> {
        let (role, interval) = spec.monitoring.clone().unzip();
        self.client(&spec.region)
            .create_db_instance()
            .db_instance_identifier(&spec.instance_id)
            .db_cluster_identifier(&spec.cluster_id)
            .engine(&spec.engine)
            .db_instance_class(&spec.instance_class)
            .set_db_parameter_group_name(spec.db_parameter_group.clone())
            .set_monitoring_role_arn(role)
            .set_monitoring_interval(interval)
            .customize()
            .config_override(no_retries())
            .send()
            .await
            .map_err(|e| classify(&e, "rds:CreateDBInstance"))?;
        Ok(())
    }

    async fn instance(&self, region: &Region, instance_id: &str) -> Result<Option<InstanceSpec>, AwsError> {
        let answer = self
            .client(region)
            .describe_db_instances()
            .db_instance_identifier(instance_id)
            .send()
            .await;
        match answer {
            Ok(out) => Ok(out.db_instances().first().map(instance_spec)),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_db_instance_not_found_fault()) => Ok(None),
            Err(e) => Err(classify(&e, "rds:DescribeDBInstances")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_rds::types::{DbClusterMember, DbParameterGroupStatus, VpcSecurityGroupMembership};

    fn instance(id: &str, class: &str) -> DbInstance {
        DbInstance::builder()
            .db_instance_identifier(id)
            .db_instance_class(class)
            .db_instance_status("available")
            .db_parameter_groups(DbParameterGroupStatus::builder().db_parameter_group_name("pg").build())
            .build()
    }

    #[test]
    fn a_spec_lists_the_writer_first_and_leaves_out_instances_not_described() {
        let member = |id: &str, writer: bool| {
            DbClusterMember::builder()
                .db_instance_identifier(id)
                .is_cluster_writer(writer)
                .build()
        };
        let c = DbCluster::builder()
            .db_cluster_identifier("orders-east")
            .engine("aurora-postgresql")
            .engine_version("15.4")
            .db_cluster_members(member("r1", false))
            .db_cluster_members(member("w", true))
            .db_cluster_members(member("r2", false))
            .db_cluster_members(member("gone", false))
            .vpc_security_groups(
                VpcSecurityGroupMembership::builder()
                    .vpc_security_group_id("sg-1")
                    .build(),
            )
            .storage_encrypted(true)
            .kms_key_id("arn:aws:kms:us-east-1:123456789012:key/k")
            .build();
        let instances = [
            instance("r2", "db.r6g.large"),
            instance("w", "db.r6g.xlarge"),
            instance("r1", "db.r6g.large"),
        ];
        let region = Region::parse("us-east-1").unwrap();
        let spec = cluster_spec(&region, "orders-east", &c, &instances);
        let ids: Vec<_> = spec.instances.iter().map(|i| i.instance_id.as_str()).collect();
        assert_eq!(ids, ["w", "r1", "r2"]);
        assert_eq!(spec.instances[0].instance_class, "db.r6g.xlarge");
        assert_eq!(spec.instances[0].db_parameter_group.as_deref(), Some("pg"));
        assert_eq!(spec.vpc_security_group_ids, ["sg-1"]);
        assert!(spec.storage_encrypted && !spec.deletion_protection);
    }

    #[test]
    fn monitoring_is_read_only_when_its_interval_is_not_zero() {
        let on = DbInstance::builder()
            .monitoring_role_arn("arn:aws:iam::123456789012:role/rds-monitoring-role")
            .monitoring_interval(60)
            .build();
        let off = DbInstance::builder()
            .monitoring_role_arn("arn:aws:iam::123456789012:role/rds-monitoring-role")
            .monitoring_interval(0)
            .build();
        assert_eq!(
            instance_spec(&on).monitoring,
            Some(("arn:aws:iam::123456789012:role/rds-monitoring-role".into(), 60))
        );
        assert_eq!(instance_spec(&off).monitoring, None);
    }
}
