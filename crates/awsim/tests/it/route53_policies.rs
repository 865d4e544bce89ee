//! Route 53 alias records and records with a routing policy (weighted, latency, failover, multivalue
//! answer), through the real aws-sdk-route53 client: listed in Route 53's shape and order, paged inside a
//! set of records sharing a name and type, changed by set identifier, and refused where Route 53 refuses
//! them, with its messages.

use crate::common;

use aws_sdk_route53::error::ProvideErrorMetadata;
use aws_sdk_route53::operation::change_resource_record_sets::ChangeResourceRecordSetsError;
use aws_sdk_route53::types::{
    AliasTarget, Change, ChangeAction, ChangeBatch, GeoLocation, ResourceRecord, ResourceRecordSet,
    ResourceRecordSetFailover, ResourceRecordSetRegion, RrType,
};
use awsim::{RecordSet, Scenario, Timings};
use common::TestSim;
use serde_json::json;

/// A zone with one record of every kind the emulator models.
const POLICIES: &str = r#"
[[hosted_zones]]
id = "ZPOLICIES"
name = "example.internal"
private = true
vpcs = [{ region = "us-east-1", id = "vpc-0east" }]

[[hosted_zones.records]]
name = "app.example.internal"
type = "A"
alias_target = { hosted_zone_id = "Z35SXDOTRQ7X7K", dns_name = "dualstack.Orders-LB-123.us-east-1.elb.amazonaws.com", evaluate_target_health = true }

[[hosted_zones.records]]
name = "api.example.internal"
type = "CNAME"
ttl = 60
values = ["west.example.com"]
set_identifier = "west"
weight = 10

[[hosted_zones.records]]
name = "api.example.internal"
type = "CNAME"
ttl = 60
values = ["east.example.com"]
set_identifier = "east"
weight = 90

[[hosted_zones.records]]
name = "db.example.internal"
type = "CNAME"
ttl = 60
values = ["standby.example.com"]
set_identifier = "secondary"
failover = "SECONDARY"

[[hosted_zones.records]]
name = "db.example.internal"
type = "CNAME"
ttl = 60
values = ["primary.example.com"]
set_identifier = "primary"
failover = "PRIMARY"

[[hosted_zones.records]]
name = "many.example.internal"
type = "A"
values = ["192.0.2.1"]
set_identifier = "one"
multi_value_answer = true

[[hosted_zones.records]]
name = "near.example.internal"
type = "A"
ttl = 30
values = ["192.0.2.20"]
set_identifier = "usw2"
region = "us-west-2"

[[hosted_zones.records]]
name = "near.example.internal"
type = "A"
ttl = 30
values = ["192.0.2.10"]
set_identifier = "use1"
region = "us-east-1"

[[hosted_zones.records]]
name = "www.example.internal"
type = "CNAME"
values = ["app.example.internal"]
"#;

const PZONE: &str = "ZPOLICIES";
/// The example scenario's zone and its writer CNAME.
const ZONE: &str = "Z0123456789";
const ZONE_NAME: &str = "aurora_private_hosted_zone.";
const WRITER: &str = "aurorawriteendpoint.aurora_private_hosted_zone.";

async fn policies() -> TestSim {
    let mut s = Scenario::from_toml(POLICIES).unwrap();
    s.timings = Timings::instant();
    TestSim::start(s).await
}

fn values(rr: &ResourceRecordSet) -> Vec<&str> {
    rr.resource_records().iter().map(|v| v.value()).collect()
}

/// (name, type, set identifier) of every record in a zone, in list order, read page by page.
async fn keys(r53: &aws_sdk_route53::Client, zone: &str) -> Vec<(String, String, Option<String>)> {
    let out = r53
        .list_resource_record_sets()
        .hosted_zone_id(zone)
        .send()
        .await
        .unwrap();
    assert!(!out.is_truncated());
    out.resource_record_sets()
        .iter()
        .map(|r| {
            (
                r.name().to_owned(),
                r.r#type().as_str().to_owned(),
                r.set_identifier().map(str::to_owned),
            )
        })
        .collect()
}

fn key(name: &str, t: &str, id: Option<&str>) -> (String, String, Option<String>) {
    (name.to_owned(), t.to_owned(), id.map(str::to_owned))
}

fn simple(name: &str, rtype: RrType, ttl: i64, value: &str) -> ResourceRecordSet {
    ResourceRecordSet::builder()
        .name(name)
        .r#type(rtype)
        .ttl(ttl)
        .resource_records(ResourceRecord::builder().value(value).build().unwrap())
        .build()
        .unwrap()
}

fn weighted(name: &str, rtype: RrType, id: &str, weight: i64, value: &str) -> ResourceRecordSet {
    let mut r = simple(name, rtype, 60, value);
    r.set_identifier = Some(id.to_owned());
    r.weight = Some(weight);
    r
}

fn alias(name: &str, rtype: RrType, dns_name: &str) -> ResourceRecordSet {
    ResourceRecordSet::builder()
        .name(name)
        .r#type(rtype)
        .alias_target(
            AliasTarget::builder()
                .hosted_zone_id("Z35SXDOTRQ7X7K")
                .dns_name(dns_name)
                .evaluate_target_health(false)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap()
}

async fn send(
    r53: &aws_sdk_route53::Client,
    zone: &str,
    changes: Vec<(ChangeAction, ResourceRecordSet)>,
) -> Result<(), ChangeResourceRecordSetsError> {
    let changes = changes
        .into_iter()
        .map(|(action, set)| {
            Change::builder()
                .action(action)
                .resource_record_set(set)
                .build()
                .unwrap()
        })
        .collect();
    r53.change_resource_record_sets()
        .hosted_zone_id(zone)
        .change_batch(ChangeBatch::builder().set_changes(Some(changes)).build().unwrap())
        .send()
        .await
        .map(|_| ())
        .map_err(|e| e.into_service_error())
}

/// The message of an `InvalidChangeBatch`, or a panic naming what came instead.
fn invalid_batch(result: Result<(), ChangeResourceRecordSetsError>) -> String {
    match result {
        Err(ChangeResourceRecordSetsError::InvalidChangeBatch(e)) => e.message().unwrap_or_default().to_owned(),
        other => panic!("expected InvalidChangeBatch, got {other:?}"),
    }
}

/// The message of an `InvalidInput`, or a panic naming what came instead.
fn invalid_input(result: Result<(), ChangeResourceRecordSetsError>) -> String {
    match result {
        Err(ChangeResourceRecordSetsError::InvalidInput(e)) => e.message().unwrap_or_default().to_owned(),
        other => panic!("expected InvalidInput, got {other:?}"),
    }
}

#[tokio::test]
async fn alias_and_routing_policy_records_are_listed_in_route53s_shape_and_order() {
    let t = policies().await;
    let r53 = t.route53().await;
    let zone = r53.get_hosted_zone().id(PZONE).send().await.unwrap();
    assert_eq!(zone.hosted_zone().unwrap().resource_record_set_count(), Some(11));

    assert_eq!(
        keys(&r53, PZONE).await,
        [
            key("example.internal.", "NS", None),
            key("example.internal.", "SOA", None),
            key("api.example.internal.", "CNAME", Some("east")),
            key("api.example.internal.", "CNAME", Some("west")),
            key("app.example.internal.", "A", None),
            key("db.example.internal.", "CNAME", Some("primary")),
            key("db.example.internal.", "CNAME", Some("secondary")),
            key("many.example.internal.", "A", Some("one")),
            key("near.example.internal.", "A", Some("use1")),
            key("near.example.internal.", "A", Some("usw2")),
            key("www.example.internal.", "CNAME", None),
        ],
        "by reversed name, then type, then set identifier"
    );
    let out = r53
        .list_resource_record_sets()
        .hosted_zone_id(PZONE)
        .send()
        .await
        .unwrap();
    let sets = out.resource_record_sets();

    let east = &sets[2];
    assert_eq!(east.weight(), Some(90));
    assert_eq!(east.ttl(), Some(60));
    assert_eq!(values(east), ["east.example.com"]);
    assert_eq!(east.region(), None);

    let app = &sets[4];
    let target = app.alias_target().expect("an alias target");
    assert_eq!(target.hosted_zone_id(), "Z35SXDOTRQ7X7K");
    assert_eq!(
        target.dns_name(),
        "dualstack.orders-lb-123.us-east-1.elb.amazonaws.com."
    );
    assert!(target.evaluate_target_health());
    assert_eq!(app.ttl(), None, "an alias record has no TTL");
    assert!(app.resource_records().is_empty(), "nor values");
    assert_eq!(app.set_identifier(), None);

    assert_eq!(sets[5].failover(), Some(&ResourceRecordSetFailover::Primary));
    assert_eq!(sets[6].failover(), Some(&ResourceRecordSetFailover::Secondary));
    assert_eq!(sets[7].multi_value_answer(), Some(true));
    assert_eq!(sets[7].ttl(), Some(300), "the scenario's default TTL");
    assert_eq!(sets[8].region(), Some(&ResourceRecordSetRegion::UsEast1));
    assert_eq!(sets[9].region(), Some(&ResourceRecordSetRegion::UsWest2));
    let www = &sets[10];
    assert_eq!(
        (www.set_identifier(), www.weight(), www.alias_target()),
        (None, None, None)
    );
}

#[tokio::test]
async fn paging_inside_records_sharing_a_name_and_type_continues_from_the_next_record_identifier() {
    let t = policies().await;
    let r53 = t.route53().await;
    let mut seen = Vec::new();
    let mut boundaries = Vec::new();
    let mut from: (Option<String>, Option<RrType>, Option<String>) = (None, None, None);
    loop {
        let out = r53
            .list_resource_record_sets()
            .hosted_zone_id(PZONE)
            .max_items(3)
            .set_start_record_name(from.0.clone())
            .set_start_record_type(from.1.clone())
            .set_start_record_identifier(from.2.clone())
            .send()
            .await
            .unwrap();
        seen.extend(out.resource_record_sets().iter().map(|r| {
            (
                r.name().to_owned(),
                r.r#type().as_str().to_owned(),
                r.set_identifier().map(str::to_owned),
            )
        }));
        if !out.is_truncated() {
            assert_eq!(out.next_record_identifier(), None);
            break;
        }
        from = (
            out.next_record_name().map(str::to_owned),
            out.next_record_type().cloned(),
            out.next_record_identifier().map(str::to_owned),
        );
        boundaries.push(from.clone());
    }
    assert_eq!(seen, keys(&r53, PZONE).await, "every record once, in order");
    assert_eq!(
        boundaries,
        [
            (
                Some("api.example.internal.".to_owned()),
                Some(RrType::Cname),
                Some("west".to_owned())
            ),
            (
                Some("db.example.internal.".to_owned()),
                Some(RrType::Cname),
                Some("secondary".to_owned())
            ),
            (
                Some("near.example.internal.".to_owned()),
                Some(RrType::A),
                Some("usw2".to_owned())
            ),
        ],
        "each page ends inside a set of records sharing a name and type"
    );

    // Name and type without an identifier start at the first record of the set.
    let out = r53
        .list_resource_record_sets()
        .hosted_zone_id(PZONE)
        .start_record_name("api.example.internal")
        .start_record_type(RrType::Cname)
        .max_items(1)
        .send()
        .await
        .unwrap();
    assert_eq!(out.resource_record_sets()[0].set_identifier(), Some("east"));
    assert_eq!(out.next_record_identifier(), Some("west"));

    // An identifier needs the name and the type.
    let err = r53
        .list_resource_record_sets()
        .hosted_zone_id(PZONE)
        .start_record_name("api.example.internal")
        .start_record_identifier("west")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidInput"));
}

#[tokio::test]
async fn alias_and_weighted_records_are_created_changed_and_deleted_by_set_identifier() {
    let t = TestSim::example(Timings::instant()).await;
    let r53 = t.route53().await;
    let before = keys(&r53, ZONE).await;
    let lb = "dualstack.orders-lb-123.us-east-1.elb.amazonaws.com";
    let blue = "blue.aurora_private_hosted_zone.";
    let apex_alias = alias("lb.aurora_private_hosted_zone", RrType::A, lb);
    send(
        &r53,
        ZONE,
        vec![
            (ChangeAction::Create, apex_alias.clone()),
            (
                ChangeAction::Create,
                weighted(blue, RrType::Cname, "a", 100, "a.example.com"),
            ),
            (
                ChangeAction::Create,
                weighted(blue, RrType::Cname, "b", 0, "b.example.com"),
            ),
        ],
    )
    .await
    .unwrap();
    let listed = keys(&r53, ZONE).await;
    assert!(listed.contains(&key(blue, "CNAME", Some("a"))) && listed.contains(&key(blue, "CNAME", Some("b"))));
    let lb_record = t.admin().record(ZONE, "lb.aurora_private_hosted_zone", "A").unwrap();
    assert_eq!(lb_record.alias_target.unwrap().dns_name, format!("{lb}."));

    // UPSERT replaces the one record of that set identifier only.
    send(
        &r53,
        ZONE,
        vec![(
            ChangeAction::Upsert,
            weighted(blue, RrType::Cname, "b", 100, "b.example.com"),
        )],
    )
    .await
    .unwrap();
    let blues: Vec<RecordSet> = t.admin().records(ZONE).into_iter().filter(|r| r.name == blue).collect();
    assert_eq!(
        blues
            .iter()
            .map(|r| (r.set_identifier.as_deref(), r.weight))
            .collect::<Vec<_>>(),
        [(Some("a"), Some(100)), (Some("b"), Some(100))]
    );

    // A DELETE must give the record as it is, weight included.
    let m = invalid_batch(
        send(
            &r53,
            ZONE,
            vec![(
                ChangeAction::Delete,
                weighted(blue, RrType::Cname, "a", 1, "a.example.com"),
            )],
        )
        .await,
    );
    assert_eq!(
        m,
        "[Tried to delete resource record set [name='blue.aurora_private_hosted_zone.', type='CNAME', set-identifier='a'] but the values provided do not match the current values]"
    );
    let m = invalid_batch(
        send(
            &r53,
            ZONE,
            vec![(
                ChangeAction::Delete,
                weighted(blue, RrType::Cname, "c", 1, "c.example.com"),
            )],
        )
        .await,
    );
    assert!(m.contains("set-identifier='c'] but it was not found"), "{m}");
    send(
        &r53,
        ZONE,
        vec![
            (
                ChangeAction::Delete,
                weighted(blue, RrType::Cname, "a", 100, "a.example.com"),
            ),
            (
                ChangeAction::Delete,
                weighted(blue, RrType::Cname, "b", 100, "b.example.com"),
            ),
            (ChangeAction::Delete, apex_alias),
        ],
    )
    .await
    .unwrap();
    assert_eq!(keys(&r53, ZONE).await, before);
    let calls = t.admin().calls_to("ChangeResourceRecordSets");
    assert!(
        calls[0].params["Changes"].contains(&format!("CREATE A lb.aurora_private_hosted_zone -> alias {lb}")),
        "{:?}",
        calls[0].params
    );
    assert!(
        calls[0].params["Changes"].contains(&format!("CREATE CNAME {blue} [a] -> a.example.com")),
        "{:?}",
        calls[0].params
    );
}

/// What the bot's read-only check must be able to meet: names holding something else than a plain CNAME.
#[tokio::test]
async fn a_plain_cname_upsert_is_refused_beside_an_a_record_an_alias_or_weighted_cnames_with_route53s_messages() {
    let t = TestSim::example(Timings::instant()).await;
    let r53 = t.route53().await;
    let zone_record = |label: &str| format!("{label}.aurora_private_hosted_zone");
    t.admin()
        .put_record(
            ZONE,
            RecordSet::simple(&zone_record("plain-a"), "A", 60, &["192.0.2.1"]),
        )
        .unwrap();
    t.admin()
        .put_record(
            ZONE,
            RecordSet::alias(
                &zone_record("alias-a"),
                "A",
                awsim::AliasTarget {
                    hosted_zone_id: "Z35SXDOTRQ7X7K".into(),
                    dns_name: "lb.us-east-1.elb.amazonaws.com".into(),
                    evaluate_target_health: false,
                },
            ),
        )
        .unwrap();
    for (id, weight) in [("one", 1), ("two", 2)] {
        t.admin()
            .put_record(
                ZONE,
                RecordSet::simple(&zone_record("weighted"), "CNAME", 60, &["x.example.com"]).weighted(id, weight),
            )
            .unwrap();
    }
    let before = t.admin().records(ZONE);
    let upsert_cname = |label: &str| {
        (
            ChangeAction::Upsert,
            simple(&zone_record(label), RrType::Cname, 1, "new.example.com"),
        )
    };

    for label in ["plain-a", "alias-a"] {
        let m = invalid_batch(send(&r53, ZONE, vec![upsert_cname(label)]).await);
        assert_eq!(
            m,
            format!(
                "[RRSet of type CNAME with DNS name {label}.{ZONE_NAME} is not permitted as it conflicts with other records with the same DNS name in zone {ZONE_NAME}]"
            )
        );
    }
    let m = invalid_batch(send(&r53, ZONE, vec![upsert_cname("weighted")]).await);
    assert_eq!(
        m,
        format!(
            "[RRSet with DNS name weighted.{ZONE_NAME}, type CNAME cannot be created as other RRSets exist with the same name and type.]"
        )
    );
    // All three in one batch: each problem listed, nothing applied.
    let m = invalid_batch(
        send(
            &r53,
            ZONE,
            vec![
                upsert_cname("plain-a"),
                upsert_cname("alias-a"),
                upsert_cname("weighted"),
            ],
        )
        .await,
    );
    for label in ["plain-a", "alias-a", "weighted"] {
        assert!(m.contains(&format!("DNS name {label}.{ZONE_NAME}")), "{m}");
    }
    assert_eq!(t.admin().records(ZONE), before, "no refused batch changed anything");

    // The reverse: an A record, alias or not, beside the writer CNAME.
    let m = invalid_batch(
        send(
            &r53,
            ZONE,
            vec![(
                ChangeAction::Create,
                alias(WRITER, RrType::A, "lb.us-east-1.elb.amazonaws.com"),
            )],
        )
        .await,
    );
    assert_eq!(
        m,
        format!(
            "[RRSet of type A with DNS name {WRITER} is not permitted because a conflicting RRSet of type CNAME with the same DNS name already exists in zone {ZONE_NAME}]"
        )
    );
    // The plain writer CNAME is still upserted as before.
    send(&r53, ZONE, vec![upsert_cname("aurorawriteendpoint")])
        .await
        .unwrap();
}

#[tokio::test]
async fn simple_and_routing_policy_records_of_one_name_and_type_cannot_coexist() {
    let t = TestSim::example(Timings::instant()).await;
    let r53 = t.route53().await;
    // A weighted record where the simple writer CNAME is.
    let m = invalid_batch(
        send(
            &r53,
            ZONE,
            vec![(
                ChangeAction::Create,
                weighted(WRITER, RrType::Cname, "blue", 50, "x.example.com"),
            )],
        )
        .await,
    );
    assert_eq!(
        m,
        format!(
            "[RRSet with DNS name {WRITER}, type CNAME, SetIdentifier blue cannot be created as a non-weighted set exists with the same name and type.]"
        )
    );
    // Weighted records coexist with one another, not with another policy.
    let green = "green.aurora_private_hosted_zone.";
    send(
        &r53,
        ZONE,
        vec![
            (ChangeAction::Create, weighted(green, RrType::A, "a", 1, "192.0.2.1")),
            (ChangeAction::Create, weighted(green, RrType::A, "b", 1, "192.0.2.2")),
        ],
    )
    .await
    .unwrap();
    let mut latency = simple(green, RrType::A, 60, "192.0.2.3");
    latency.set_identifier = Some("c".into());
    latency.region = Some(ResourceRecordSetRegion::UsWest2);
    let m = invalid_batch(send(&r53, ZONE, vec![(ChangeAction::Create, latency)]).await);
    assert!(
        m.contains("SetIdentifier c cannot be created as a non-weighted set exists"),
        "{m}"
    );
    // Removing the simple record and adding weighted ones in one batch is a valid move.
    let writer = t.admin().record(ZONE, WRITER, "CNAME").unwrap();
    send(
        &r53,
        ZONE,
        vec![
            (
                ChangeAction::Delete,
                simple(WRITER, RrType::Cname, writer.ttl, &writer.values[0]),
            ),
            (
                ChangeAction::Create,
                weighted(WRITER, RrType::Cname, "blue", 50, "x.example.com"),
            ),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        t.admin()
            .record(ZONE, WRITER, "CNAME")
            .unwrap()
            .set_identifier
            .as_deref(),
        Some("blue")
    );
}

#[tokio::test]
async fn malformed_alias_and_routing_records_are_invalid_input() {
    let t = TestSim::example(Timings::instant()).await;
    let r53 = t.route53().await;
    let name = "x.aurora_private_hosted_zone";
    let before = t.admin().records(ZONE);

    let mut both = alias(name, RrType::A, "lb.us-east-1.elb.amazonaws.com");
    both.ttl = Some(60);
    both.resource_records = Some(vec![ResourceRecord::builder().value("192.0.2.1").build().unwrap()]);
    let m = invalid_input(send(&r53, ZONE, vec![(ChangeAction::Create, both)]).await);
    assert_eq!(
        m,
        "Invalid request: Expected exactly one of [AliasTarget, all of [TTL, and ResourceRecords], or TrafficPolicyInstanceId], but found more than one in Change with [Action=CREATE, Name=x.aurora_private_hosted_zone., Type=A, SetIdentifier=null]"
    );

    let mut no_id = simple(name, RrType::A, 60, "192.0.2.1");
    no_id.weight = Some(1);
    let m = invalid_input(send(&r53, ZONE, vec![(ChangeAction::Upsert, no_id)]).await);
    assert_eq!(
        m,
        "Invalid request: Missing field 'SetIdentifier' in Change with [Action=UPSERT, Name=x.aurora_private_hosted_zone., Type=A, SetIdentifier=null]"
    );

    let mut no_policy = simple(name, RrType::A, 60, "192.0.2.1");
    no_policy.set_identifier = Some("lonely".into());
    let m = invalid_input(send(&r53, ZONE, vec![(ChangeAction::Upsert, no_policy)]).await);
    assert!(m.contains("but found none in Change with"), "{m}");

    let mut two = weighted(name, RrType::A, "two", 1, "192.0.2.1");
    two.failover = Some(ResourceRecordSetFailover::Primary);
    let m = invalid_input(send(&r53, ZONE, vec![(ChangeAction::Upsert, two)]).await);
    assert!(m.contains("but found more than one in Change with"), "{m}");

    let mut geo = weighted(name, RrType::A, "geo", 1, "192.0.2.1");
    geo.weight = None;
    geo.geo_location = Some(GeoLocation::builder().country_code("DE").build());
    let m = invalid_input(send(&r53, ZONE, vec![(ChangeAction::Upsert, geo)]).await);
    assert!(m.contains("does not support GeoLocation"), "{m}");

    assert_eq!(t.admin().records(ZONE), before);
}

#[tokio::test]
async fn the_admin_http_api_puts_a_hand_made_record_set() {
    let t = TestSim::example(Timings::instant()).await;
    let http = reqwest::Client::new();
    let url = |p: &str| format!("{}/_awsim/{p}", t.sim.url());
    let r = http
        .put(url(&format!("zones/{ZONE}/records")))
        .json(&json!({
            "name": "AuroraWriteEndpoint.aurora_private_hosted_zone",
            "type": "A",
            "alias_target": {"hosted_zone_id": "Z35SXDOTRQ7X7K", "dns_name": "lb.us-east-1.elb.amazonaws.com"},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    // Unchecked: an alias A now sits beside the writer CNAME, as Route 53 would never allow.
    let listed = keys(&t.route53().await, ZONE).await;
    assert!(listed.contains(&key(WRITER, "A", None)) && listed.contains(&key(WRITER, "CNAME", None)));
    let state: serde_json::Value = http.get(url("state")).send().await.unwrap().json().await.unwrap();
    let zone = &state["hosted_zones"][0]["records"];
    assert!(
        zone.as_array()
            .unwrap()
            .iter()
            .any(|r| r["alias_target"]["dns_name"] == "lb.us-east-1.elb.amazonaws.com."),
        "{zone}"
    );

    let r = http
        .put(url("zones/ZNOPE/records"))
        .json(&json!({"name": "a.example.com", "type": "A", "ttl": 1, "values": ["192.0.2.1"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = http
        .put(url(&format!("zones/{ZONE}/records")))
        .json(&json!({"name": "a.example.com", "type": "A", "ttl": 1, "values": ["192.0.2.1"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "a name outside the zone is refused");
}
