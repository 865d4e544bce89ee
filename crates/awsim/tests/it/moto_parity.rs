//! The same SDK-level tests, run against the emulator and against moto 5.2.5 (an independent
//! implementation of the AWS wire protocols), so that awsim's wire format is checked by more than its
//! own author. They cover what moto models faithfully: Route 53 record changes, DescribeDBClusters
//! basics, and the creating calls of a rebuild (CreateGlobalCluster from a cluster, CreateDBCluster as
//! a secondary, CreateDBInstance, DescribeDBInstances). Where moto is known to differ from AWS, the
//! test says so and checks each against AWS's behaviour as far as moto allows.
//!
//! moto is started by `scripts/test`, which exports `MOTO_ENDPOINT`.

use crate::common;

use aws_sdk_rds::config::retry::RetryConfig;
use aws_sdk_rds::error::ProvideErrorMetadata;
use aws_sdk_rds::operation::describe_db_clusters::DescribeDBClustersError;
use aws_sdk_route53::operation::change_resource_record_sets::ChangeResourceRecordSetsError;
use aws_sdk_route53::operation::get_hosted_zone::GetHostedZoneError;
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ChangeStatus, HostedZoneConfig, ResourceRecord, ResourceRecordSet, RrType, Vpc,
    VpcRegion,
};
use awsim::scenario::{DbClusterSpec, HostedZoneSpec, VpcSpec};
use awsim::{Scenario, Timings};
use common::{TestSim, sdk_config};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

enum Backend {
    Awsim {
        sim: Box<TestSim>,
        scenario: Box<Mutex<Scenario>>,
    },
    Moto {
        url: String,
    },
}

/// Names unique across the tests sharing one moto server.
fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}{}x{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

impl Backend {
    async fn awsim() -> Backend {
        let s = Scenario {
            timings: Timings {
                dns_propagation_ms: 300,
                ..Timings::instant()
            },
            ..Scenario::default()
        };
        Backend::Awsim {
            sim: Box::new(TestSim::start(s.clone()).await),
            scenario: Box::new(Mutex::new(s)),
        }
    }

    fn moto() -> Backend {
        let url = std::env::var("MOTO_ENDPOINT")
            .expect("MOTO_ENDPOINT is not set: run the tests with scripts/test, which installs and starts moto 5.2.5");
        Backend::Moto { url }
    }

    fn is_moto(&self) -> bool {
        matches!(self, Backend::Moto { .. })
    }

    fn url(&self) -> &str {
        match self {
            Backend::Awsim { sim, .. } => sim.sim.url(),
            Backend::Moto { url } => url,
        }
    }

    async fn rds(&self, region: &str) -> aws_sdk_rds::Client {
        aws_sdk_rds::Client::new(&sdk_config(self.url(), region, RetryConfig::disabled()).await)
    }

    async fn route53(&self) -> aws_sdk_route53::Client {
        aws_sdk_route53::Client::new(&sdk_config(self.url(), "us-east-1", RetryConfig::disabled()).await)
    }

    fn edit_scenario(sim: &TestSim, scenario: &Mutex<Scenario>, edit: impl FnOnce(&mut Scenario)) {
        let mut s = scenario.lock().unwrap();
        edit(&mut s);
        sim.admin().load_scenario(s.clone()).expect("test scenario is valid");
    }

    /// A private hosted zone with no records but its SOA and NS; returns its id (without prefix).
    async fn make_zone(&self, name: &str) -> String {
        match self {
            Backend::Awsim { sim, scenario } => {
                let id = unique("Z").to_uppercase();
                Self::edit_scenario(sim, scenario, |s| {
                    s.hosted_zones.push(HostedZoneSpec {
                        id: id.clone(),
                        name: name.into(),
                        private: true,
                        comment: None,
                        vpcs: vec![VpcSpec {
                            region: "us-east-1".into(),
                            id: "vpc-0parity".into(),
                        }],
                        records: vec![],
                    })
                });
                id
            }
            Backend::Moto { .. } => {
                let out = self
                    .route53()
                    .await
                    .create_hosted_zone()
                    .name(name)
                    .caller_reference(unique("ref"))
                    .hosted_zone_config(HostedZoneConfig::builder().private_zone(true).build())
                    .vpc(
                        Vpc::builder()
                            .vpc_id("vpc-0parity")
                            .vpc_region(VpcRegion::UsEast1)
                            .build(),
                    )
                    .send()
                    .await
                    .expect("moto CreateHostedZone");
                out.hosted_zone()
                    .unwrap()
                    .id()
                    .trim_start_matches("/hostedzone/")
                    .to_owned()
            }
        }
    }

    /// A standalone aurora-postgresql 15.4 cluster with these instances, the first the writer.
    async fn make_cluster(&self, region: &str, id: &str, instances: &[&str]) {
        match self {
            Backend::Awsim { sim, scenario } => Self::edit_scenario(sim, scenario, |s| {
                s.db_clusters.push(DbClusterSpec {
                    region: region.into(),
                    cluster_id: id.into(),
                    engine: "aurora-postgresql".into(),
                    engine_version: "15.4".into(),
                    instances: instances.iter().map(|i| (*i).to_owned()).collect(),
                    port: None,
                    endpoint_address: None,
                    reader_endpoint_address: None,
                })
            }),
            Backend::Moto { .. } => {
                let rds = self.rds(region).await;
                rds.create_db_cluster()
                    .db_cluster_identifier(id)
                    .engine("aurora-postgresql")
                    .engine_version("15.4")
                    .master_username("parity")
                    .master_user_password("not-a-secret-1")
                    .send()
                    .await
                    .expect("moto CreateDBCluster");
                for i in instances {
                    rds.create_db_instance()
                        .db_instance_identifier(*i)
                        .db_cluster_identifier(id)
                        .engine("aurora-postgresql")
                        .db_instance_class("db.r6g.large")
                        .send()
                        .await
                        .expect("moto CreateDBInstance");
                }
            }
        }
    }
}

fn change(action: ChangeAction, name: &str, ttl: i64, value: &str) -> Change {
    Change::builder()
        .action(action)
        .resource_record_set(
            ResourceRecordSet::builder()
                .name(name)
                .r#type(RrType::Cname)
                .ttl(ttl)
                .resource_records(ResourceRecord::builder().value(value).build().unwrap())
                .build()
                .unwrap(),
        )
        .build()
        .unwrap()
}

async fn list(r53: &aws_sdk_route53::Client, zone: &str) -> Vec<(String, String, i64, Vec<String>)> {
    let out = r53
        .list_resource_record_sets()
        .hosted_zone_id(zone)
        .send()
        .await
        .unwrap();
    out.resource_record_sets()
        .iter()
        .map(|r| {
            (
                r.name().to_owned(),
                r.r#type().as_str().to_owned(),
                r.ttl().unwrap_or_default(),
                r.resource_records().iter().map(|v| v.value().to_owned()).collect(),
            )
        })
        .collect()
}

/// Route 53 record changes: the same requests, the same answers.
async fn route53_record_changes(b: Backend) {
    let r53 = b.route53().await;
    let zone_name = format!("{}.internal", unique("parity"));
    let zone = b.make_zone(&zone_name).await;
    let apex = format!("{zone_name}.");
    let writer = format!("writer.{zone_name}.");
    let reader = format!("reader.{zone_name}.");

    let hz = r53.get_hosted_zone().id(&zone).send().await.unwrap();
    let hz = hz.hosted_zone().unwrap();
    assert_eq!(hz.id(), format!("/hostedzone/{zone}"));
    assert_eq!(hz.name(), apex);
    assert!(hz.config().unwrap().private_zone());

    let kinds =
        |l: &[(String, String, i64, Vec<String>)]| l.iter().map(|r| (r.0.clone(), r.1.clone())).collect::<Vec<_>>();
    assert_eq!(
        kinds(&list(&r53, &zone).await),
        [(apex.clone(), "NS".into()), (apex.clone(), "SOA".into())]
    );

    let batch = |changes: Vec<Change>| ChangeBatch::builder().set_changes(Some(changes)).build().unwrap();
    let created = r53
        .change_resource_record_sets()
        .hosted_zone_id(&zone)
        .change_batch(batch(vec![
            change(
                ChangeAction::Create,
                &writer,
                1,
                "east.cluster-abc.us-east-1.rds.amazonaws.com",
            ),
            change(
                ChangeAction::Create,
                &reader,
                1,
                "east.cluster-ro-abc.us-east-1.rds.amazonaws.com",
            ),
        ]))
        .send()
        .await
        .unwrap();
    let info = created.change_info().unwrap();
    assert!(info.id().starts_with("/change/"), "{}", info.id());
    assert!(matches!(info.status(), ChangeStatus::Pending | ChangeStatus::Insync));
    let l = list(&r53, &zone).await;
    assert_eq!(
        l[2..],
        [
            (
                reader.clone(),
                "CNAME".into(),
                1,
                vec!["east.cluster-ro-abc.us-east-1.rds.amazonaws.com".into()]
            ),
            (
                writer.clone(),
                "CNAME".into(),
                1,
                vec!["east.cluster-abc.us-east-1.rds.amazonaws.com".into()]
            ),
        ]
    );

    // UPSERT replaces the record in place.
    let upserted = r53
        .change_resource_record_sets()
        .hosted_zone_id(&zone)
        .change_batch(batch(vec![change(
            ChangeAction::Upsert,
            &writer,
            1,
            "west.cluster-abc.us-west-2.rds.amazonaws.com",
        )]))
        .send()
        .await
        .unwrap();
    let l = list(&r53, &zone).await;
    assert_eq!(l.len(), 4);
    assert_eq!(l[3].3, ["west.cluster-abc.us-west-2.rds.amazonaws.com"]);

    // The change becomes INSYNC.
    let id = upserted.change_info().unwrap().id().to_owned();
    common::wait_for("INSYNC", Duration::from_secs(10), || async {
        let out = r53.get_change().id(&id).send().await.unwrap();
        (out.change_info().unwrap().status() == &ChangeStatus::Insync).then_some(())
    })
    .await;

    // CREATE of an existing record (identical to the earlier CREATE: moto only refuses that case).
    let err = r53
        .change_resource_record_sets()
        .hosted_zone_id(&zone)
        .change_batch(batch(vec![change(
            ChangeAction::Create,
            &reader,
            1,
            "east.cluster-ro-abc.us-east-1.rds.amazonaws.com",
        )]))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    let ChangeResourceRecordSetsError::InvalidChangeBatch(e) = &err else {
        panic!("expected InvalidChangeBatch, got {err:?}")
    };
    let expected = format!("Tried to create resource record set [name='{reader}', type='CNAME'] but it already exists");
    assert!(e.message().unwrap_or_default().contains(&expected), "{e:?}");

    // DELETE with the current values removes it.
    r53.change_resource_record_sets()
        .hosted_zone_id(&zone)
        .change_batch(batch(vec![change(
            ChangeAction::Delete,
            &reader,
            1,
            "east.cluster-ro-abc.us-east-1.rds.amazonaws.com",
        )]))
        .send()
        .await
        .unwrap();
    let after_delete = list(&r53, &zone).await;
    assert_eq!(kinds(&after_delete)[2..], [(writer.clone(), "CNAME".into())]);

    // DELETE of a missing record is refused and changes nothing. AWS answers InvalidChangeBatch
    // "... but it was not found"; moto 5.2.5 answers InvalidInput.
    let err = r53
        .change_resource_record_sets()
        .hosted_zone_id(&zone)
        .change_batch(batch(vec![change(
            ChangeAction::Delete,
            &reader,
            1,
            "gone.example.com",
        )]))
        .send()
        .await
        .unwrap_err();
    let expected_code = if b.is_moto() {
        "InvalidInput"
    } else {
        "InvalidChangeBatch"
    };
    assert_eq!(err.code(), Some(expected_code));
    assert_eq!(list(&r53, &zone).await, after_delete);

    let err = r53
        .get_hosted_zone()
        .id("ZNOSUCHZONE")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(matches!(err, GetHostedZoneError::NoSuchHostedZone(_)), "{err:?}");
    assert_eq!(err.message(), Some("No hosted zone found with ID: ZNOSUCHZONE"));
}

/// DescribeDBClusters: identity, endpoints, members, typed not-found, Region isolation.
async fn describe_db_clusters_basics(b: Backend) {
    let id = unique("parity");
    let instances = [format!("{id}-a"), format!("{id}-b")];
    b.make_cluster("us-east-1", &id, &[&instances[0], &instances[1]]).await;
    let east = b.rds("us-east-1").await;
    let arn = format!("arn:aws:rds:us-east-1:123456789012:cluster:{id}");

    for key in [id.clone(), arn.clone()] {
        let out = east
            .describe_db_clusters()
            .db_cluster_identifier(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(out.db_clusters().len(), 1);
        let c = &out.db_clusters()[0];
        assert_eq!(c.db_cluster_identifier(), Some(id.as_str()));
        assert_eq!(c.db_cluster_arn(), Some(arn.as_str()));
        assert_eq!(c.status(), Some("available"));
        assert_eq!(c.engine(), Some("aurora-postgresql"));
        assert_eq!(c.engine_version(), Some("15.4"));
        assert_eq!(c.port(), Some(5432));
        let endpoint = c.endpoint().unwrap();
        assert!(endpoint.starts_with(&format!("{id}.cluster-")), "{endpoint}");
        assert!(endpoint.ends_with(".us-east-1.rds.amazonaws.com"), "{endpoint}");
        let reader = c.reader_endpoint().unwrap();
        assert!(reader.starts_with(&format!("{id}.cluster-ro-")), "{reader}");
        let mut members: Vec<_> = c
            .db_cluster_members()
            .iter()
            .map(|m| {
                (
                    m.db_instance_identifier().unwrap().to_owned(),
                    m.is_cluster_writer() == Some(true),
                )
            })
            .collect();
        members.sort();
        assert_eq!(members, [(instances[0].clone(), true), (instances[1].clone(), false)]);
        assert!(c.cluster_create_time().is_some());
    }

    let all = east.describe_db_clusters().send().await.unwrap();
    assert!(
        all.db_clusters()
            .iter()
            .any(|c| c.db_cluster_identifier() == Some(id.as_str()))
    );

    let err = east
        .describe_db_clusters()
        .db_cluster_identifier("nosuchcluster")
        .send()
        .await
        .unwrap_err();
    let err = err.into_service_error();
    assert!(
        matches!(err, DescribeDBClustersError::DbClusterNotFoundFault(_)),
        "{err:?}"
    );
    assert!(
        err.message().unwrap().starts_with("DBCluster nosuchcluster not found"),
        "{err:?}"
    );

    // Clusters are regional.
    let west = b.rds("us-west-2").await;
    let err = west
        .describe_db_clusters()
        .db_cluster_identifier(&id)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, DescribeDBClustersError::DbClusterNotFoundFault(_)),
        "{err:?}"
    );
}

/// The global cluster `id` as DescribeGlobalClusters lists it (moto 5.2.5 ignores the identifier
/// filter, so the list is searched).
async fn find_global(rds: &aws_sdk_rds::Client, id: &str) -> aws_sdk_rds::types::GlobalCluster {
    let out = rds
        .describe_global_clusters()
        .global_cluster_identifier(id)
        .send()
        .await
        .expect("DescribeGlobalClusters");
    let found = out
        .global_clusters()
        .iter()
        .find(|g| g.global_cluster_identifier() == Some(id));
    found.unwrap_or_else(|| panic!("no global cluster {id}")).clone()
}

/// (ARN, is writer) of each member, sorted.
fn global_members(g: &aws_sdk_rds::types::GlobalCluster) -> Vec<(String, bool)> {
    let mut m: Vec<_> = g
        .global_cluster_members()
        .iter()
        .map(|m| (m.db_cluster_arn().unwrap().to_owned(), m.is_writer() == Some(true)))
        .collect();
    m.sort();
    m
}

/// A rebuild's creating calls: a global cluster from a standalone cluster, a secondary in another
/// Region, its instance.
///
/// Where moto 5.2.5 differs from AWS (RDS API reference and user guide), followed by awsim:
/// - moto finds a CreateGlobalCluster source only in us-east-1 (where it keeps global clusters), so
///   the source is there and the secondary in us-west-2 (awsim's own tests cover the other way);
/// - the source of CreateGlobalCluster becomes the primary: AWS shows it `IsWriter`; moto does not;
/// - AWS's new global cluster and secondary are `creating` for minutes; moto's global cluster is
///   `available` at once and its cluster `creating` for one read;
/// - AWS refuses an identifier that exists (`GlobalClusterAlreadyExistsFault`,
///   `DBClusterAlreadyExistsFault`) and a cross-Region secondary of an encrypted primary without a
///   `KmsKeyId`; moto replaces the resource or accepts the call (not sent to moto here).
async fn rebuild_creates(b: Backend) {
    let source = unique("parity");
    b.make_cluster("us-east-1", &source, &[&format!("{source}-a")]).await;
    let (east, west) = (b.rds("us-east-1").await, b.rds("us-west-2").await);
    let source_arn = format!("arn:aws:rds:us-east-1:123456789012:cluster:{source}");
    let global = unique("parityglobal");
    let out = east
        .create_global_cluster()
        .global_cluster_identifier(&global)
        .source_db_cluster_identifier(&source_arn)
        .send()
        .await
        .expect("CreateGlobalCluster");
    let g = out.global_cluster().unwrap();
    assert_eq!(g.global_cluster_identifier(), Some(global.as_str()));
    assert_eq!(
        (g.engine(), g.engine_version()),
        (Some("aurora-postgresql"), Some("15.4")),
        "from the source"
    );
    let source_is_writer = !b.is_moto();
    assert_eq!(global_members(g), [(source_arn.clone(), source_is_writer)]);
    common::wait_for(
        "the global cluster to be available",
        Duration::from_secs(10),
        || async { (find_global(&west, &global).await.status() == Some("available")).then_some(()) },
    )
    .await;

    let secondary = unique("paritysecondary");
    let key = "arn:aws:kms:us-west-2:123456789012:key/parity";
    let out = west
        .create_db_cluster()
        .db_cluster_identifier(&secondary)
        .global_cluster_identifier(&global)
        .engine("aurora-postgresql")
        .engine_version("15.4")
        .kms_key_id(key)
        .storage_encrypted(true)
        .send()
        .await
        .expect("CreateDBCluster as a secondary, without a master user");
    let c = out.db_cluster().unwrap();
    assert_eq!(c.status(), Some("creating"));
    assert_eq!(c.kms_key_id(), Some(key));
    let secondary_arn = format!("arn:aws:rds:us-west-2:123456789012:cluster:{secondary}");
    let mut expected = vec![(source_arn, source_is_writer), (secondary_arn, false)];
    expected.sort();
    assert_eq!(global_members(&find_global(&east, &global).await), expected);

    instance_of_the_secondary(&west, &secondary).await;
}

/// CreateDBInstance in the new secondary, DescribeDBInstances of it, and both calls' refusals.
async fn instance_of_the_secondary(west: &aws_sdk_rds::Client, secondary: &str) {
    let instance = format!("{secondary}-a");
    let create = || {
        west.create_db_instance()
            .db_instance_identifier(&instance)
            .db_cluster_identifier(secondary)
            .engine("aurora-postgresql")
            .db_instance_class("db.r6g.xlarge")
            .send()
    };
    create().await.expect("CreateDBInstance");
    let out = west
        .describe_db_instances()
        .db_instance_identifier(&instance)
        .send()
        .await
        .expect("DescribeDBInstances");
    let i = &out.db_instances()[0];
    assert_eq!(i.db_instance_identifier(), Some(instance.as_str()));
    assert_eq!(i.db_instance_class(), Some("db.r6g.xlarge"));
    assert_eq!(i.db_cluster_identifier(), Some(secondary));
    assert_eq!(i.engine(), Some("aurora-postgresql"));
    let err = create().await.unwrap_err().into_service_error();
    assert!(err.is_db_instance_already_exists_fault(), "{err:?}");
    let err = west
        .describe_db_instances()
        .db_instance_identifier(format!("{instance}-none"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_db_instance_not_found_fault(), "{err:?}");
    assert_eq!(
        err.message(),
        Some(format!("DBInstance {instance}-none not found.").as_str())
    );
}

#[tokio::test]
async fn rebuild_creates_on_awsim() {
    rebuild_creates(Backend::awsim().await).await;
}

#[tokio::test]
async fn rebuild_creates_on_moto() {
    rebuild_creates(Backend::moto()).await;
}

#[tokio::test]
async fn route53_record_changes_on_awsim() {
    route53_record_changes(Backend::awsim().await).await;
}

#[tokio::test]
async fn route53_record_changes_on_moto() {
    route53_record_changes(Backend::moto()).await;
}

#[tokio::test]
async fn describe_db_clusters_basics_on_awsim() {
    describe_db_clusters_basics(Backend::awsim().await).await;
}

#[tokio::test]
async fn describe_db_clusters_basics_on_moto() {
    describe_db_clusters_basics(Backend::moto()).await;
}
