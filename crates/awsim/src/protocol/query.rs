//! RDS's wire protocol ("query"): a form-encoded POST with `Action` and `Version`, answered with XML in
//! the `http://rds.amazonaws.com/doc/2014-10-31/` namespace. Parses parameters, calls the model, renders
//! the answer with the element names the AWS SDK expects (list members included).

use super::xml::XmlWriter;
use crate::model::rds::{
    ClusterView, Event, EventFilter, GlobalClusterView, InstanceView, NewCluster, NewGlobal, NewInstance, OpKind,
};
use crate::model::{ApiError, World};
use std::collections::BTreeMap;
use tokio::time::Instant;

pub const XMLNS: &str = "http://rds.amazonaws.com/doc/2014-10-31/";

/// The decoded form parameters of a request.
#[derive(Debug, Default, Clone)]
pub struct Params(pub BTreeMap<String, String>);

impl Params {
    pub fn parse(body: &[u8]) -> Params {
        Params(form_urlencoded::parse(body).into_owned().collect())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }

    pub fn required(&self, name: &str) -> Result<&str, ApiError> {
        self.get(name).ok_or_else(|| ApiError::missing_parameter(name))
    }

    pub fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(v) => Err(ApiError::invalid_parameter_value(format!(
                "Invalid boolean value {v} for {name}"
            ))),
        }
    }

    /// A list serialized as `Prefix.Member.1`, `Prefix.Member.2`, ...
    pub fn list(&self, prefix: &str, member: &str) -> Vec<String> {
        (1..)
            .map_while(|n| self.0.get(&format!("{prefix}.{member}.{n}")).cloned())
            .collect()
    }

    /// `Filters.Filter.N.Name` with its `Filters.Filter.N.Values.Value.M`.
    pub fn filters(&self) -> Vec<(String, Vec<String>)> {
        (1..)
            .map_while(|n| {
                let name = self.0.get(&format!("Filters.Filter.{n}.Name"))?.clone();
                Some((name, self.list(&format!("Filters.Filter.{n}.Values"), "Value")))
            })
            .collect()
    }

    /// The parameters worth logging: everything but `Action` and `Version`.
    pub fn for_log(&self) -> BTreeMap<String, String> {
        self.0
            .iter()
            .filter(|(k, _)| k.as_str() != "Action" && k.as_str() != "Version")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// Runs one RDS action against the world and renders its XML answer.
pub fn handle(
    world: &mut World,
    region: &str,
    action: &str,
    p: &Params,
    now: Instant,
    request_id: &str,
) -> Result<String, ApiError> {
    match action {
        "DescribeGlobalClusters" => describe_global_clusters(world, p, request_id),
        "DescribeDBClusters" => describe_db_clusters(world, region, p, request_id),
        "RemoveFromGlobalCluster" => {
            let g = p.required("GlobalClusterIdentifier")?;
            let c = p.required("DbClusterIdentifier")?;
            let (rds, ctx) = world.split_rds();
            let view = rds.remove_from_global_cluster(region, g, c, now, &ctx)?;
            Ok(global_result("RemoveFromGlobalCluster", &view, request_id))
        }
        "FailoverGlobalCluster" => {
            let g = p.required("GlobalClusterIdentifier")?;
            let target = p.required("TargetDbClusterIdentifier")?;
            let allow_data_loss = p.bool("AllowDataLoss")?;
            let switchover = p.bool("Switchover")?;
            if allow_data_loss.is_some() && switchover.is_some() {
                return Err(ApiError::invalid_parameter_combination(
                    "AllowDataLoss and Switchover can't be specified together.",
                ));
            }
            let kind = if allow_data_loss == Some(true) {
                OpKind::Failover
            } else {
                OpKind::Switchover
            };
            let (rds, ctx) = world.split_rds();
            let view = rds.start_managed_op(g, target, kind, now, &ctx)?;
            Ok(global_result("FailoverGlobalCluster", &view, request_id))
        }
        "SwitchoverGlobalCluster" => {
            let g = p.required("GlobalClusterIdentifier")?;
            let target = p.required("TargetDbClusterIdentifier")?;
            let (rds, ctx) = world.split_rds();
            let view = rds.start_managed_op(g, target, OpKind::Switchover, now, &ctx)?;
            Ok(global_result("SwitchoverGlobalCluster", &view, request_id))
        }
        "CreateGlobalCluster" => create_global_cluster(world, region, p, now, request_id),
        "CreateDBCluster" => create_db_cluster(world, region, p, now, request_id),
        "CreateDBInstance" => create_db_instance(world, region, p, now, request_id),
        "DescribeDBInstances" => describe_db_instances(world, region, p, request_id),
        "DescribeEvents" => describe_events(world, region, p, now, request_id),
        "DescribeDBClusterSnapshots" => describe_snapshots(world, region, p, request_id),
        other => Err(ApiError::new(
            400,
            "InvalidAction",
            format!("The action {other} is not valid for this web service."),
        )),
    }
}

/// Splits a list into one page: at most `MaxRecords` (20 to 100, default 100) from the `Marker` on.
fn paginate<T>(items: Vec<T>, p: &Params) -> Result<(Vec<T>, Option<String>), ApiError> {
    let max = match p.get("MaxRecords") {
        None => 100,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (20..=100).contains(&n) => n,
            _ => {
                return Err(ApiError::invalid_parameter_value(format!(
                    "Invalid value {v} for MaxRecords. Must be between 20 and 100"
                )));
            }
        },
    };
    let start = match p.get("Marker") {
        None => 0,
        Some(m) => m
            .strip_prefix("awsim-")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| ApiError::invalid_parameter_value(format!("Invalid marker {m}")))?,
    };
    let total = items.len();
    let page: Vec<T> = items.into_iter().skip(start).take(max).collect();
    let next = (start + max < total).then(|| format!("awsim-{}", start + max));
    Ok((page, next))
}

fn describe_global_clusters(world: &World, p: &Params, request_id: &str) -> Result<String, ApiError> {
    if let Some((name, _)) = p.filters().first() {
        return Err(ApiError::invalid_parameter_value(format!(
            "Unrecognized filter name: {name}"
        )));
    }
    let views = world.rds.describe_global_clusters(p.get("GlobalClusterIdentifier"))?;
    let (page, marker) = paginate(views, p)?;
    let mut w = XmlWriter::with_root("DescribeGlobalClustersResponse", XMLNS);
    w.open("DescribeGlobalClustersResult");
    w.opt_text("Marker", marker);
    w.open("GlobalClusters");
    for g in &page {
        // The list's members are named GlobalClusterMember in the RDS model.
        write_global(&mut w, "GlobalClusterMember", g);
    }
    w.close().close();
    metadata(&mut w, request_id);
    Ok(w.finish())
}

fn describe_db_clusters(world: &World, region: &str, p: &Params, request_id: &str) -> Result<String, ApiError> {
    let mut views = world.rds.describe_db_clusters(region, p.get("DBClusterIdentifier"))?;
    for (name, values) in p.filters() {
        match name.as_str() {
            "db-cluster-id" => views.retain(|c| values.iter().any(|v| v == &c.id || v == &c.arn)),
            "engine" => views.retain(|c| values.contains(&c.engine)),
            other => {
                return Err(ApiError::invalid_parameter_value(format!(
                    "Unrecognized filter name: {other}"
                )));
            }
        }
    }
    let (page, marker) = paginate(views, p)?;
    let mut w = XmlWriter::with_root("DescribeDBClustersResponse", XMLNS);
    w.open("DescribeDBClustersResult");
    w.opt_text("Marker", marker);
    w.open("DBClusters");
    for c in &page {
        write_cluster(&mut w, c);
    }
    w.close().close();
    metadata(&mut w, request_id);
    Ok(w.finish())
}

fn create_global_cluster(
    world: &mut World,
    region: &str,
    p: &Params,
    now: Instant,
    request_id: &str,
) -> Result<String, ApiError> {
    let new = NewGlobal {
        id: p.required("GlobalClusterIdentifier")?.to_owned(),
        source: p.get("SourceDBClusterIdentifier").map(str::to_owned),
        engine: p.get("Engine").map(str::to_owned),
        engine_version: p.get("EngineVersion").map(str::to_owned),
        deletion_protection: p.bool("DeletionProtection")?.unwrap_or(false),
    };
    let (rds, ctx) = world.split_rds();
    let view = rds.create_global_cluster(region, &new, now, &ctx)?;
    Ok(global_result("CreateGlobalCluster", &view, request_id))
}

fn create_db_cluster(
    world: &mut World,
    region: &str,
    p: &Params,
    now: Instant,
    request_id: &str,
) -> Result<String, ApiError> {
    let owned = |name: &str| p.get(name).map(str::to_owned);
    let new = NewCluster {
        id: p.required("DBClusterIdentifier")?.to_owned(),
        engine: p.required("Engine")?.to_owned(),
        engine_version: owned("EngineVersion"),
        global_cluster_id: owned("GlobalClusterIdentifier"),
        db_subnet_group: owned("DBSubnetGroupName"),
        vpc_security_group_ids: p.list("VpcSecurityGroupIds", "VpcSecurityGroupId"),
        db_cluster_parameter_group: owned("DBClusterParameterGroupName"),
        storage_encrypted: p.bool("StorageEncrypted")?,
        kms_key_id: owned("KmsKeyId"),
        deletion_protection: p.bool("DeletionProtection")?,
        master_username: owned("MasterUsername"),
    };
    let (rds, ctx) = world.split_rds();
    let view = rds.create_db_cluster(region, &new, now, &ctx)?;
    let mut w = XmlWriter::with_root("CreateDBClusterResponse", XMLNS);
    w.open("CreateDBClusterResult");
    write_cluster(&mut w, &view);
    w.close();
    metadata(&mut w, request_id);
    Ok(w.finish())
}

fn create_db_instance(
    world: &mut World,
    region: &str,
    p: &Params,
    now: Instant,
    request_id: &str,
) -> Result<String, ApiError> {
    let interval = match p.get("MonitoringInterval") {
        None => None,
        Some(v) => Some(
            v.parse::<i32>()
                .map_err(|_| ApiError::invalid_parameter_value(format!("Invalid value {v} for MonitoringInterval")))?,
        ),
    };
    let Some(cluster_id) = p.get("DBClusterIdentifier") else {
        return Err(ApiError::invalid_parameter_value(
            "The emulator creates DB instances of Aurora clusters only: give DBClusterIdentifier.",
        ));
    };
    let new = NewInstance {
        id: p.required("DBInstanceIdentifier")?.to_owned(),
        cluster_id: cluster_id.to_owned(),
        engine: p.required("Engine")?.to_owned(),
        instance_class: p.required("DBInstanceClass")?.to_owned(),
        db_parameter_group: p.get("DBParameterGroupName").map(str::to_owned),
        monitoring_role_arn: p.get("MonitoringRoleArn").map(str::to_owned),
        monitoring_interval: interval,
    };
    let (rds, ctx) = world.split_rds();
    let view = rds.create_db_instance(region, &new, now, &ctx)?;
    let mut w = XmlWriter::with_root("CreateDBInstanceResponse", XMLNS);
    w.open("CreateDBInstanceResult");
    write_instance(&mut w, &view);
    w.close();
    metadata(&mut w, request_id);
    Ok(w.finish())
}

fn describe_db_instances(world: &World, region: &str, p: &Params, request_id: &str) -> Result<String, ApiError> {
    let mut views = world.rds.describe_db_instances(region, p.get("DBInstanceIdentifier"))?;
    for (name, values) in p.filters() {
        match name.as_str() {
            "db-cluster-id" => views.retain(|i| {
                values
                    .iter()
                    .any(|v| v == &i.cluster_id || v.ends_with(&format!(":cluster:{}", i.cluster_id)))
            }),
            "db-instance-id" => views.retain(|i| values.iter().any(|v| v == &i.id || v == &i.arn)),
            "engine" => views.retain(|i| values.contains(&i.engine)),
            other => {
                return Err(ApiError::invalid_parameter_value(format!(
                    "Unrecognized filter name: {other}"
                )));
            }
        }
    }
    let (page, marker) = paginate(views, p)?;
    let mut w = XmlWriter::with_root("DescribeDBInstancesResponse", XMLNS);
    w.open("DescribeDBInstancesResult");
    w.opt_text("Marker", marker);
    w.open("DBInstances");
    for i in &page {
        write_instance(&mut w, i);
    }
    w.close().close();
    metadata(&mut w, request_id);
    Ok(w.finish())
}

fn parse_time(name: &str, v: &str) -> Result<jiff::Timestamp, ApiError> {
    v.parse::<jiff::Timestamp>()
        .or_else(|_| {
            // ISO 8601 without seconds, as in the API reference's example `2009-07-08T18:00Z`.
            let with_seconds = v.strip_suffix('Z').map(|s| format!("{s}:00Z")).unwrap_or_default();
            with_seconds.parse::<jiff::Timestamp>()
        })
        .map_err(|_| ApiError::invalid_parameter_value(format!("Invalid ISO 8601 time {v} for {name}")))
}

fn describe_events(
    world: &World,
    region: &str,
    p: &Params,
    now: Instant,
    request_id: &str,
) -> Result<String, ApiError> {
    let source_id = p.get("SourceIdentifier").map(str::to_owned);
    let source_type = p.get("SourceType").map(str::to_owned);
    if source_id.is_some() && source_type.is_none() {
        return Err(ApiError::invalid_parameter_combination(
            "Cannot specify source identifier without source type",
        ));
    }
    const SOURCE_TYPES: &[&str] = &[
        "db-instance",
        "db-parameter-group",
        "db-security-group",
        "db-snapshot",
        "db-cluster",
        "db-cluster-snapshot",
        "custom-engine-version",
        "db-proxy",
        "blue-green-deployment",
        "db-shard-group",
        "zero-etl",
    ];
    if let Some(t) = &source_type
        && !SOURCE_TYPES.contains(&t.as_str())
    {
        return Err(ApiError::invalid_parameter_value(format!("Invalid source type: {t}")));
    }
    let now_wall = world.clock.wall(now);
    let start = p.get("StartTime").map(|v| parse_time("StartTime", v)).transpose()?;
    let end = p.get("EndTime").map(|v| parse_time("EndTime", v)).transpose()?;
    let duration_minutes = match p.get("Duration") {
        None => None,
        Some(v) => Some(
            v.parse::<i64>()
                .ok()
                .filter(|m| *m >= 0)
                .ok_or_else(|| ApiError::invalid_parameter_value(format!("Invalid value {v} for Duration")))?,
        ),
    };
    // Without StartTime, the window is the last Duration minutes (60 by default).
    let start = start.or_else(|| {
        let minutes = duration_minutes.unwrap_or(60);
        now_wall.checked_sub(jiff::SignedDuration::from_mins(minutes)).ok()
    });
    let filter = EventFilter {
        source_id,
        source_type,
        start,
        end,
        categories: p.list("EventCategories", "EventCategory"),
    };
    let events: Vec<&Event> = world.rds.describe_events(region, &filter);
    let (page, marker) = paginate(events, p)?;
    let mut w = XmlWriter::with_root("DescribeEventsResponse", XMLNS);
    w.open("DescribeEventsResult");
    w.opt_text("Marker", marker);
    w.open("Events");
    for e in page {
        w.open("Event");
        w.text("SourceIdentifier", &e.source_id);
        w.text("SourceType", e.source_type);
        w.text("Message", &e.message);
        w.text_list("EventCategories", "EventCategory", &e.categories);
        w.text("Date", timestamp(e.date));
        w.text("SourceArn", &e.source_arn);
        w.close();
    }
    w.close().close();
    metadata(&mut w, request_id);
    Ok(w.finish())
}

fn describe_snapshots(world: &World, region: &str, p: &Params, request_id: &str) -> Result<String, ApiError> {
    let found = world.rds.describe_snapshots(
        region,
        p.get("DBClusterIdentifier"),
        p.get("DBClusterSnapshotIdentifier"),
        p.get("SnapshotType"),
    )?;
    let (page, marker) = paginate(found, p)?;
    let mut w = XmlWriter::with_root("DescribeDBClusterSnapshotsResponse", XMLNS);
    w.open("DescribeDBClusterSnapshotsResult");
    w.opt_text("Marker", marker);
    w.open("DBClusterSnapshots");
    for s in page {
        w.open("DBClusterSnapshot");
        w.text("DBClusterSnapshotIdentifier", &s.id);
        w.text("DBClusterIdentifier", &s.cluster_id);
        w.text("DBClusterSnapshotArn", &s.arn);
        w.text("SnapshotCreateTime", timestamp(s.created));
        w.text("Engine", &s.engine);
        w.text("EngineVersion", &s.engine_version);
        w.text("Status", "available");
        w.text("SnapshotType", s.snapshot_type);
        w.text("StorageEncrypted", "true");
        w.close();
    }
    w.close().close();
    metadata(&mut w, request_id);
    Ok(w.finish())
}

fn global_result(action: &'static str, g: &GlobalClusterView, request_id: &str) -> String {
    let (root, result) = match action {
        "RemoveFromGlobalCluster" => ("RemoveFromGlobalClusterResponse", "RemoveFromGlobalClusterResult"),
        "FailoverGlobalCluster" => ("FailoverGlobalClusterResponse", "FailoverGlobalClusterResult"),
        "CreateGlobalCluster" => ("CreateGlobalClusterResponse", "CreateGlobalClusterResult"),
        _ => ("SwitchoverGlobalClusterResponse", "SwitchoverGlobalClusterResult"),
    };
    let mut w = XmlWriter::with_root(root, XMLNS);
    w.open(result);
    write_global(&mut w, "GlobalCluster", g);
    w.close();
    metadata(&mut w, request_id);
    w.finish()
}

/// The time format of RDS XML: ISO 8601 with milliseconds, UTC.
pub fn timestamp(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn write_global(w: &mut XmlWriter, element: &'static str, g: &GlobalClusterView) {
    w.open(element);
    w.text("GlobalClusterIdentifier", &g.id);
    w.text("GlobalClusterResourceId", &g.resource_id);
    w.text("GlobalClusterArn", &g.arn);
    w.text("Status", &g.status);
    w.text("Engine", &g.engine);
    w.text("EngineVersion", &g.engine_version);
    w.text("StorageEncrypted", g.storage_encrypted);
    w.text("DeletionProtection", g.deletion_protection);
    w.text("Endpoint", &g.endpoint);
    w.open("GlobalClusterMembers");
    for m in &g.members {
        w.open("GlobalClusterMember");
        w.text("DBClusterArn", &m.db_cluster_arn);
        w.text_list("Readers", "member", &m.readers);
        w.text("IsWriter", m.is_writer);
        w.opt_text("GlobalWriteForwardingStatus", m.write_forwarding.map(|f| f.as_str()));
        w.opt_text("SynchronizationStatus", m.synchronization_status.as_ref());
        w.close();
    }
    w.close();
    if let Some(f) = &g.failover_state {
        w.open("FailoverState");
        w.text("Status", &f.status);
        w.text("FromDbClusterArn", &f.from_db_cluster_arn);
        w.text("ToDbClusterArn", &f.to_db_cluster_arn);
        w.text("IsDataLossAllowed", f.is_data_loss_allowed);
        w.close();
    }
    w.close();
}

fn write_cluster(w: &mut XmlWriter, c: &ClusterView) {
    w.open("DBCluster");
    w.text("DBClusterIdentifier", &c.id);
    w.text("DBClusterArn", &c.arn);
    w.text("DbClusterResourceId", &c.resource_id);
    w.text("Status", &c.status);
    w.text("Engine", &c.engine);
    w.text("EngineVersion", &c.engine_version);
    w.text("EngineMode", "provisioned");
    w.text("Endpoint", &c.endpoint);
    w.text("ReaderEndpoint", &c.reader_endpoint);
    w.text("Port", c.port);
    w.text("HostedZoneId", &c.hosted_zone_id);
    w.text("MultiAZ", c.members.len() > 1);
    w.text("ClusterCreateTime", timestamp(c.created));
    let s = &c.settings;
    w.text("StorageEncrypted", s.storage_encrypted);
    w.opt_text("KmsKeyId", s.kms_key_id.as_ref());
    w.text("DeletionProtection", s.deletion_protection);
    w.text("DBSubnetGroup", &s.db_subnet_group);
    w.text("DBClusterParameterGroup", &s.db_cluster_parameter_group);
    w.open("VpcSecurityGroups");
    for sg in &s.vpc_security_group_ids {
        w.open("VpcSecurityGroupMembership");
        w.text("VpcSecurityGroupId", sg);
        w.text("Status", "active");
        w.close();
    }
    w.close();
    w.text_list(
        "AvailabilityZones",
        "AvailabilityZone",
        ["a", "b", "c"].iter().map(|z| format!("{}{z}", c.region)),
    );
    w.opt_text("GlobalClusterIdentifier", c.global_cluster_id.as_ref());
    w.opt_text("GlobalWriteForwardingStatus", c.write_forwarding.map(|f| f.as_str()));
    w.open("DBClusterMembers");
    for i in &c.members {
        w.open("DBClusterMember");
        w.text("DBInstanceIdentifier", &i.id);
        w.text("IsClusterWriter", i.is_writer);
        w.text("DBClusterParameterGroupStatus", "in-sync");
        w.text("PromotionTier", 1);
        w.close();
    }
    w.close();
    w.close();
}

fn write_instance(w: &mut XmlWriter, i: &InstanceView) {
    w.open("DBInstance");
    w.text("DBInstanceIdentifier", &i.id);
    w.text("DBInstanceArn", &i.arn);
    w.text("DBInstanceClass", &i.instance_class);
    w.text("Engine", &i.engine);
    w.text("EngineVersion", &i.engine_version);
    w.text("DBInstanceStatus", &i.status);
    w.text("DBClusterIdentifier", &i.cluster_id);
    w.open("DBParameterGroups");
    w.open("DBParameterGroup");
    w.text("DBParameterGroupName", &i.db_parameter_group);
    w.text("ParameterApplyStatus", "in-sync");
    w.close().close();
    w.text("MonitoringInterval", i.monitoring_interval);
    w.opt_text("MonitoringRoleArn", i.monitoring_role_arn.as_ref());
    w.text("StorageEncrypted", i.storage_encrypted);
    w.opt_text("KmsKeyId", i.kms_key_id.as_ref());
    w.text("PromotionTier", 1);
    w.close();
}

fn metadata(w: &mut XmlWriter, request_id: &str) {
    w.open("ResponseMetadata");
    w.text("RequestId", request_id);
    w.close();
}

/// The XML body of an RDS error.
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
