//! Route 53 through the real aws-sdk-route53 client: zones, record listing, change batches validated
//! as AWS validates them, PENDING then INSYNC, typed errors, and us-east-1 outages.

use crate::common;

use aws_sdk_route53::error::ProvideErrorMetadata;
use aws_sdk_route53::operation::change_resource_record_sets::ChangeResourceRecordSetsError;
use aws_sdk_route53::operation::get_change::GetChangeError;
use aws_sdk_route53::operation::get_hosted_zone::GetHostedZoneError;
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ChangeStatus, ResourceRecord, ResourceRecordSet, RrType,
};
use awsim::{OutageMode, Timings};
use common::{TestSim, wait_for, watch, watchable_timings};
use std::time::Duration;

const ZONE: &str = "Z0123456789";
const WRITER: &str = "aurorawriteendpoint.aurora_private_hosted_zone.";
const READER: &str = "aurorareadendpoint.aurora_private_hosted_zone.";

fn change(action: ChangeAction, name: &str, rtype: RrType, ttl: i64, value: &str) -> Change {
    Change::builder()
        .action(action)
        .resource_record_set(
            ResourceRecordSet::builder()
                .name(name)
                .r#type(rtype)
                .ttl(ttl)
                .resource_records(ResourceRecord::builder().value(value).build().unwrap())
                .build()
                .unwrap(),
        )
        .build()
        .unwrap()
}

fn batch(changes: Vec<Change>) -> ChangeBatch {
    ChangeBatch::builder()
        .comment("awsim test")
        .set_changes(Some(changes))
        .build()
        .unwrap()
}

/// (name, type, ttl, values) of every record in the zone, in list order.
async fn records(r53: &aws_sdk_route53::Client) -> Vec<(String, String, i64, Vec<String>)> {
    let out = r53
        .list_resource_record_sets()
        .hosted_zone_id(ZONE)
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
                r.ttl().unwrap_or_default(),
                r.resource_records().iter().map(|v| v.value().to_owned()).collect(),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_hosted_zone_and_its_records_are_listed_as_route53_lists_them() {
    let t = TestSim::example(Timings::instant()).await;
    let r53 = t.route53().await;
    let zone = r53.get_hosted_zone().id(ZONE).send().await.unwrap();
    let hz = zone.hosted_zone().unwrap();
    assert_eq!(hz.id(), "/hostedzone/Z0123456789");
    assert_eq!(hz.name(), "aurora_private_hosted_zone.");
    assert!(hz.config().unwrap().private_zone());
    assert_eq!(hz.resource_record_set_count(), Some(4));
    let vpcs: Vec<_> = zone.vpcs().iter().filter_map(|v| v.vpc_id()).collect();
    assert_eq!(vpcs, ["vpc-0east", "vpc-0west"]);
    // The SDK also accepts the prefixed id.
    r53.get_hosted_zone()
        .id("/hostedzone/Z0123456789")
        .send()
        .await
        .unwrap();

    let east = t.admin().cluster("us-east-1", "orders-east").unwrap();
    let list = records(&r53).await;
    let summary: Vec<_> = list.iter().map(|(n, ty, _, _)| (n.as_str(), ty.as_str())).collect();
    assert_eq!(
        summary,
        [
            ("aurora_private_hosted_zone.", "NS"),
            ("aurora_private_hosted_zone.", "SOA"),
            (READER, "CNAME"),
            (WRITER, "CNAME"),
        ]
    );
    assert_eq!(list[2].3, [east.reader_endpoint]);
    assert_eq!(list[3].3, [east.endpoint]);
    assert_eq!(list[3].2, 1);
}

#[tokio::test]
async fn listing_pages_with_maxitems_and_the_next_record_name_and_type() {
    let t = TestSim::example(Timings::instant()).await;
    let r53 = t.route53().await;
    let mut seen = Vec::new();
    let (mut name, mut rtype): (Option<String>, Option<RrType>) = (None, None);
    loop {
        let out = r53
            .list_resource_record_sets()
            .hosted_zone_id(ZONE)
            .max_items(3)
            .set_start_record_name(name.clone())
            .set_start_record_type(rtype.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(out.max_items(), 3);
        seen.extend(out.resource_record_sets().iter().map(|r| r.name().to_owned()));
        if !out.is_truncated() {
            break;
        }
        name = out.next_record_name().map(str::to_owned);
        rtype = out.next_record_type().cloned();
        assert!(
            name.is_some() && rtype.is_some(),
            "a truncated page says where to continue"
        );
    }
    assert_eq!(seen.len(), 4);
    assert_eq!(seen[3], WRITER);
    // A type without a name is invalid input.
    let err = r53
        .list_resource_record_sets()
        .hosted_zone_id(ZONE)
        .start_record_type(RrType::Cname)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidInput"));
}

#[tokio::test]
async fn an_upsert_of_both_cnames_is_pending_then_insync_and_the_records_point_at_the_new_values() {
    let t = TestSim::example(watchable_timings()).await;
    let r53 = t.route53().await;
    let west = t.admin().cluster("us-west-2", "orders-west").unwrap();
    let out = r53
        .change_resource_record_sets()
        .hosted_zone_id(ZONE)
        .change_batch(batch(vec![
            change(ChangeAction::Upsert, WRITER, RrType::Cname, 1, &west.endpoint),
            change(ChangeAction::Upsert, READER, RrType::Cname, 1, &west.reader_endpoint),
        ]))
        .send()
        .await
        .unwrap();
    let info = out.change_info().unwrap();
    assert_eq!(info.status(), &ChangeStatus::Pending);
    assert!(info.id().starts_with("/change/C"), "{}", info.id());
    assert_eq!(info.comment(), Some("awsim test"));
    // The records change at once (Route 53's own view); propagation is what GetChange reports.
    let list = records(&r53).await;
    assert_eq!(list[3].3, std::slice::from_ref(&west.endpoint));
    assert_eq!(list[2].3, std::slice::from_ref(&west.reader_endpoint));
    let id = info.id().to_owned();
    let seen = watch(
        "the change to be INSYNC",
        Duration::from_secs(10),
        || async {
            r53.get_change()
                .id(&id)
                .send()
                .await
                .unwrap()
                .change_info()
                .unwrap()
                .status()
                .clone()
        },
        |s| *s == ChangeStatus::Insync,
    )
    .await;
    assert_eq!(seen, [ChangeStatus::Pending, ChangeStatus::Insync]);
    let calls = t.admin().calls_to("ChangeResourceRecordSets");
    assert_eq!(calls.len(), 1);
    assert!(
        calls[0].params["Changes"].contains("UPSERT CNAME aurorawriteendpoint"),
        "{:?}",
        calls[0].params
    );
}

#[tokio::test]
async fn change_batches_are_validated_as_route53_validates_them_and_apply_all_or_nothing() {
    let t = TestSim::example(Timings::instant()).await;
    let r53 = t.route53().await;
    let before = records(&r53).await;
    let send = |changes: Vec<Change>| {
        r53.change_resource_record_sets()
            .hosted_zone_id(ZONE)
            .change_batch(batch(changes))
            .send()
    };
    let invalid_batch = |e: aws_sdk_route53::error::SdkError<ChangeResourceRecordSetsError, _>| {
        let e = e.into_service_error();
        match e {
            ChangeResourceRecordSetsError::InvalidChangeBatch(inner) => inner.message().unwrap_or_default().to_owned(),
            other => panic!("expected InvalidChangeBatch, got {other:?}"),
        }
    };
    // CREATE of an existing record.
    let m = invalid_batch(
        send(vec![change(
            ChangeAction::Create,
            WRITER,
            RrType::Cname,
            1,
            "x.example.com",
        )])
        .await
        .unwrap_err(),
    );
    assert!(
        m.contains("Tried to create resource record set [name='aurorawriteendpoint.aurora_private_hosted_zone.', type='CNAME'] but it already exists"),
        "{m}"
    );
    // DELETE of a missing record.
    let m = invalid_batch(
        send(vec![change(
            ChangeAction::Delete,
            "nope.aurora_private_hosted_zone",
            RrType::Cname,
            1,
            "x",
        )])
        .await
        .unwrap_err(),
    );
    assert!(m.contains("but it was not found"), "{m}");
    // DELETE whose values do not match.
    let m = invalid_batch(
        send(vec![change(
            ChangeAction::Delete,
            WRITER,
            RrType::Cname,
            1,
            "wrong.example.com",
        )])
        .await
        .unwrap_err(),
    );
    assert!(m.contains("do not match the current values"), "{m}");
    // A record outside the zone.
    let m = invalid_batch(
        send(vec![change(
            ChangeAction::Upsert,
            "www.example.com",
            RrType::Cname,
            1,
            "x",
        )])
        .await
        .unwrap_err(),
    );
    assert!(m.contains("is not permitted in zone"), "{m}");
    // A CNAME beside another record at the same name.
    let m = invalid_batch(
        send(vec![change(ChangeAction::Create, WRITER, RrType::Txt, 1, "\"hello\"")])
            .await
            .unwrap_err(),
    );
    assert!(m.contains("conflicting RRSet of type CNAME"), "{m}");
    // One valid and one invalid change: nothing applies, and each problem is listed.
    let m = invalid_batch(
        send(vec![
            change(ChangeAction::Upsert, READER, RrType::Cname, 1, "moved.example.com"),
            change(ChangeAction::Create, WRITER, RrType::Cname, 1, "x.example.com"),
            change(
                ChangeAction::Delete,
                "gone.aurora_private_hosted_zone",
                RrType::Cname,
                1,
                "x",
            ),
        ])
        .await
        .unwrap_err(),
    );
    assert!(m.contains("already exists") && m.contains("was not found"), "{m}");
    // The same record twice in one batch.
    let m = invalid_batch(
        send(vec![
            change(ChangeAction::Upsert, READER, RrType::Cname, 1, "a.example.com"),
            change(ChangeAction::Upsert, READER, RrType::Cname, 1, "b.example.com"),
        ])
        .await
        .unwrap_err(),
    );
    assert!(m.contains("invalid set of changes"), "{m}");
    assert_eq!(records(&r53).await, before, "no refused batch changed anything");
    assert!(
        t.admin()
            .calls_to("ChangeResourceRecordSets")
            .iter()
            .all(|c| c.error.as_deref() == Some("InvalidChangeBatch")),
        "every refusal is logged with its code"
    );

    // CREATE then DELETE with the exact values works.
    let name = "extra.aurora_private_hosted_zone.";
    send(vec![change(
        ChangeAction::Create,
        name,
        RrType::Cname,
        60,
        "x.example.com",
    )])
    .await
    .unwrap();
    assert!(records(&r53).await.iter().any(|r| r.0 == name));
    send(vec![change(
        ChangeAction::Delete,
        name,
        RrType::Cname,
        60,
        "x.example.com",
    )])
    .await
    .unwrap();
    assert_eq!(records(&r53).await, before);
}

#[tokio::test]
async fn unknown_zones_and_changes_are_typed_not_found_errors() {
    let t = TestSim::example(Timings::instant()).await;
    let r53 = t.route53().await;
    let err = r53
        .get_hosted_zone()
        .id("ZNOPE")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(matches!(err, GetHostedZoneError::NoSuchHostedZone(_)), "{err:?}");
    let err = r53
        .change_resource_record_sets()
        .hosted_zone_id("ZNOPE")
        .change_batch(batch(vec![change(ChangeAction::Upsert, WRITER, RrType::Cname, 1, "x")]))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, ChangeResourceRecordSetsError::NoSuchHostedZone(_)),
        "{err:?}"
    );
    let err = r53
        .get_change()
        .id("CNOPE")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(matches!(err, GetChangeError::NoSuchChange(_)), "{err:?}");
}

#[tokio::test]
async fn route53_fails_while_us_east_1_is_down_whatever_region_signs_and_recovers_after() {
    let t = TestSim::example(Timings::instant()).await;
    let r53 = t.route53().await;
    let r53_west = aws_sdk_route53::Client::new(
        &common::sdk_config(
            t.sim.url(),
            "us-west-2",
            aws_sdk_route53::config::retry::RetryConfig::disabled(),
        )
        .await,
    );
    t.admin().region_down("us-east-1", OutageMode::Unavailable).unwrap();
    for client in [&r53, &r53_west] {
        let err = client
            .change_resource_record_sets()
            .hosted_zone_id(ZONE)
            .change_batch(batch(vec![change(
                ChangeAction::Upsert,
                WRITER,
                RrType::Cname,
                1,
                "x.example.com",
            )]))
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("ServiceUnavailable"));
    }
    // A Region outage elsewhere does not touch Route 53.
    t.admin().region_up("us-east-1").unwrap();
    t.admin().region_down("us-west-2", OutageMode::Reset).unwrap();
    let out = r53
        .change_resource_record_sets()
        .hosted_zone_id(ZONE)
        .change_batch(batch(vec![change(
            ChangeAction::Upsert,
            WRITER,
            RrType::Cname,
            1,
            "x.example.com",
        )]))
        .send()
        .await
        .unwrap();
    let id = out.change_info().unwrap().id().to_owned();
    wait_for("INSYNC", Duration::from_secs(5), || async {
        (r53.get_change()
            .id(&id)
            .send()
            .await
            .unwrap()
            .change_info()
            .unwrap()
            .status()
            == &ChangeStatus::Insync)
            .then_some(())
    })
    .await;
    assert_eq!(
        t.admin().record(ZONE, WRITER, "CNAME").unwrap().values,
        ["x.example.com"]
    );
}
