//! The DNS server (`Awsim::serve_dns`): questions sent over UDP (and TCP) with hickory-proto, as a
//! database client's resolver would send them, about the example's zone `aurora_private_hosted_zone`,
//! the cluster endpoints and the global writer endpoint.

use crate::common::*;
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ChangeStatus, ResourceRecord, ResourceRecordSet, RrType,
};
use awsim::{AliasTarget, Failover, OutageMode, RecordSet, Scenario, Timings};
use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

const WEST: &str = "us-west-2";
const EAST: &str = "us-east-1";
const ZONE: &str = "Z0123456789";
const WRITER: &str = "aurorawriteendpoint.aurora_private_hosted_zone";
const READER: &str = "aurorareadendpoint.aurora_private_hosted_zone";

/// The example world with its endpoints on their own loopback addresses (east writer 127.0.0.2, east
/// reader 127.0.0.3, west writer 127.0.0.4) and ports, no replication lag, and `timings`; with DNS
/// served on a free port.
async fn world(timings: Timings) -> (TestSim, SocketAddr) {
    let mut s = Scenario::two_region_example();
    s.timings = timings;
    let east = &mut s.global_clusters[0].members[0];
    east.endpoint_address = Some("127.0.0.2".into());
    east.reader_endpoint_address = Some("127.0.0.3".into());
    east.port = Some(15432);
    let west = &mut s.global_clusters[0].members[1];
    west.endpoint_address = Some("127.0.0.4".into());
    west.replication_lag_ms = 0;
    let sim = TestSim::start(s).await;
    let dns = sim.sim.serve_dns("127.0.0.1:0".parse().unwrap()).await.unwrap();
    (sim, dns)
}

fn question(name: &str, record_type: RecordType) -> Message {
    let mut m = Message::query();
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), record_type));
    m
}

/// Asks over UDP; `None` when no answer comes within 400 ms.
async fn ask(server: SocketAddr, name: &str, record_type: RecordType) -> Option<Message> {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let q = question(name, record_type);
    socket.send_to(&q.to_vec().unwrap(), server).await.unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = tokio::time::timeout(Duration::from_millis(400), socket.recv_from(&mut buf))
        .await
        .ok()?
        .unwrap();
    let answer = Message::from_vec(&buf[..n]).unwrap();
    assert_eq!(answer.metadata.id, q.metadata.id);
    Some(answer)
}

/// The answer section as `"name TYPE ttl data"` lines.
fn lines(m: &Message) -> Vec<String> {
    m.answers
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {}",
                r.name.to_ascii().to_lowercase(),
                r.record_type(),
                r.ttl,
                r.data
            )
        })
        .collect()
}

/// The address part of the last answer (the end of the chain).
async fn resolved(server: SocketAddr, name: &str) -> Option<String> {
    let m = ask(server, name, RecordType::A).await?;
    m.answers.last().map(|r| r.data.to_string())
}

fn endpoint(sim: &TestSim, region: &str, id: &str) -> String {
    sim.admin().cluster(region, id).unwrap().endpoint
}

#[tokio::test]
async fn a_zone_cname_answers_its_chain_to_the_writer_endpoint_address() {
    let (sim, dns) = world(Timings::instant()).await;
    let east = endpoint(&sim, EAST, "orders-east");
    let m = ask(dns, WRITER, RecordType::A).await.expect("an answer");
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.recursion_available);
    assert_eq!(
        lines(&m),
        [format!("{WRITER}. CNAME 1 {east}."), format!("{east}. A 5 127.0.0.2"),]
    );
    // The same name asked in another case is the same name.
    let m = ask(dns, &WRITER.to_ascii_uppercase(), RecordType::A).await.unwrap();
    assert_eq!(m.answers.len(), 2);
    // A CNAME question gets the CNAME alone.
    let m = ask(dns, WRITER, RecordType::CNAME).await.unwrap();
    assert_eq!(lines(&m), [format!("{WRITER}. CNAME 1 {east}.")]);
    // DescribeDBClusters gives the scenario's port; the other cluster keeps the engine's.
    let rds = sim.rds(EAST).await;
    let out = rds
        .describe_db_clusters()
        .db_cluster_identifier("orders-east")
        .send()
        .await
        .unwrap();
    assert_eq!(out.db_clusters()[0].port(), Some(15432));
    assert_eq!(sim.admin().cluster(WEST, "orders-west").unwrap().port, 5432);
    // Every question is in the admin's view.
    let asked: Vec<(String, String)> = sim
        .admin()
        .dns_queries()
        .into_iter()
        .map(|q| (q.name, q.record_type))
        .collect();
    assert_eq!(asked.len(), 3);
    assert_eq!(asked[0], (format!("{WRITER}."), "A".to_owned()));
    assert_eq!(asked[2].1, "CNAME");
}

#[tokio::test]
async fn reader_endpoints_answer_their_own_address() {
    let (sim, dns) = world(Timings::instant()).await;
    let reader = sim.admin().cluster(EAST, "orders-east").unwrap().reader_endpoint;
    let m = ask(dns, &reader, RecordType::A).await.unwrap();
    assert_eq!(lines(&m), [format!("{reader}. A 5 127.0.0.3")]);
    assert_eq!(resolved(dns, READER).await.as_deref(), Some("127.0.0.3"));
    // A cluster without a configured address answers 127.0.0.1.
    let west_reader = sim.admin().cluster(WEST, "orders-west").unwrap().reader_endpoint;
    assert_eq!(resolved(dns, &west_reader).await.as_deref(), Some("127.0.0.1"));
}

#[tokio::test]
async fn the_global_writer_endpoint_follows_a_switchover() {
    let (sim, dns) = world(Timings::instant()).await;
    let global = sim.admin().global_cluster("orders-global").unwrap().endpoint;
    let east = endpoint(&sim, EAST, "orders-east");
    let west = endpoint(&sim, WEST, "orders-west");
    let m = ask(dns, &global, RecordType::A).await.unwrap();
    assert_eq!(
        lines(&m),
        [format!("{global}. CNAME 5 {east}."), format!("{east}. A 5 127.0.0.2")]
    );
    sim.rds(EAST)
        .await
        .switchover_global_cluster()
        .global_cluster_identifier("orders-global")
        .target_db_cluster_identifier(sim.admin().cluster(WEST, "orders-west").unwrap().arn)
        .send()
        .await
        .unwrap();
    wait_for(
        "the global endpoint to reach the west cluster",
        Duration::from_secs(5),
        || async { (resolved(dns, &global).await.as_deref() == Some("127.0.0.4")).then_some(()) },
    )
    .await;
    let m = ask(dns, &global, RecordType::CNAME).await.unwrap();
    assert_eq!(lines(&m), [format!("{global}. CNAME 5 {west}.")]);
}

#[tokio::test]
async fn unknown_names_are_nxdomain_and_known_names_without_the_type_have_no_answer() {
    let (sim, dns) = world(Timings::instant()).await;
    for name in [
        "nothing.aurora_private_hosted_zone",
        "www.example.com",
        "orders-east.cluster-nope.us-east-1.rds.amazonaws.com",
    ] {
        let m = ask(dns, name, RecordType::A).await.unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{name}");
        assert!(m.answers.is_empty(), "{name}");
    }
    let east = endpoint(&sim, EAST, "orders-east");
    // NODATA: the endpoint has an A record and no TXT; the apex has SOA and NS but no A.
    for (name, t) in [
        (east.as_str(), RecordType::TXT),
        ("aurora_private_hosted_zone", RecordType::A),
    ] {
        let m = ask(dns, name, t).await.unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{name}");
        assert!(m.answers.is_empty(), "{name}: {:?}", lines(&m));
    }
    // AAAA through the CNAME: the CNAME, then nothing (the endpoint has an IPv4 address).
    let m = ask(dns, WRITER, RecordType::AAAA).await.unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(lines(&m), [format!("{WRITER}. CNAME 1 {east}.")]);
    // The zone's own records answer too.
    let m = ask(dns, "aurora_private_hosted_zone", RecordType::SOA).await.unwrap();
    assert_eq!(m.answers.len(), 1);
    assert_eq!(m.answers[0].ttl, 900);
}

#[tokio::test]
async fn a_change_is_answered_only_once_insync_and_after_the_dns_delay() {
    let propagation = Duration::from_millis(300);
    let delay = Duration::from_millis(700);
    let (sim, dns) = world(Timings {
        dns_propagation_ms: 300,
        ..Timings::instant()
    })
    .await;
    sim.admin().set_dns_delay(delay);
    let west = endpoint(&sim, WEST, "orders-west");
    let r53 = sim.route53().await;
    let before = tokio::time::Instant::now();
    let out = r53
        .change_resource_record_sets()
        .hosted_zone_id(ZONE)
        .change_batch(
            ChangeBatch::builder()
                .changes(
                    Change::builder()
                        .action(ChangeAction::Upsert)
                        .resource_record_set(
                            ResourceRecordSet::builder()
                                .name(WRITER)
                                .r#type(RrType::Cname)
                                .ttl(1)
                                .resource_records(ResourceRecord::builder().value(&west).build().unwrap())
                                .build()
                                .unwrap(),
                        )
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    // Route 53's own view has the new value at once; its name servers do not yet.
    assert_eq!(resolved(dns, WRITER).await.as_deref(), Some("127.0.0.2"));
    let id = out.change_info().unwrap().id().to_owned();
    wait_for("the change to be INSYNC", Duration::from_secs(5), || async {
        let status = r53.get_change().id(&id).send().await.unwrap();
        (status.change_info().unwrap().status() == &ChangeStatus::Insync).then_some(())
    })
    .await;
    wait_for("the new answer", Duration::from_secs(5), || async {
        (resolved(dns, WRITER).await.as_deref() == Some("127.0.0.4")).then_some(())
    })
    .await;
    let took = before.elapsed();
    assert!(
        took >= propagation + delay,
        "the new answer came {took:?} after the change, before INSYNC + delay"
    );
    let m = ask(dns, WRITER, RecordType::A).await.unwrap();
    assert_eq!(m.answers[0].data.to_string(), format!("{west}."));
}

#[tokio::test]
async fn while_dns_is_down_queries_go_unanswered_and_are_still_counted() {
    let (sim, dns) = world(Timings::instant()).await;
    sim.admin().set_dns_down(true);
    assert!(ask(dns, WRITER, RecordType::A).await.is_none());
    sim.admin().set_dns_down(false);
    assert!(ask(dns, WRITER, RecordType::A).await.is_some());
    let dropped: Vec<bool> = sim.admin().dns_queries().iter().map(|q| q.dropped).collect();
    assert_eq!(dropped, [true, false]);
    // A Region outage does not touch DNS: Route 53's data plane is global.
    sim.admin().region_down(EAST, OutageMode::Reset).unwrap();
    assert_eq!(resolved(dns, WRITER).await.as_deref(), Some("127.0.0.2"));
}

#[tokio::test]
async fn names_with_underscores_routing_policies_and_aliases_answer() {
    let (sim, dns) = world(Timings::instant()).await;
    let admin = sim.admin();
    let txt = RecordSet::simple(
        "_probe.Aurora_Private_Hosted_Zone",
        "TXT",
        60,
        &["\"v=probe1\" \"second\""],
    );
    admin.put_record(ZONE, txt).unwrap();
    let m = ask(dns, "_PROBE.aurora_private_hosted_zone", RecordType::TXT)
        .await
        .unwrap();
    assert_eq!(lines(&m), ["_probe.aurora_private_hosted_zone. TXT 60 v=probe1second"]);
    // Weighted: the heaviest record answers.
    for (id, weight, value) in [("light", 10, "192.0.2.1"), ("heavy", 200, "192.0.2.2")] {
        let r = RecordSet::simple("w.aurora_private_hosted_zone", "A", 30, &[value]).weighted(id, weight);
        admin.put_record(ZONE, r).unwrap();
    }
    assert_eq!(
        resolved(dns, "w.aurora_private_hosted_zone").await.as_deref(),
        Some("192.0.2.2")
    );
    // Failover: the PRIMARY answers.
    for (id, role, value) in [
        ("b", Failover::Secondary, "192.0.2.3"),
        ("a", Failover::Primary, "192.0.2.4"),
    ] {
        let r = RecordSet {
            set_identifier: Some(id.into()),
            failover: Some(role),
            ..RecordSet::simple("f.aurora_private_hosted_zone", "A", 30, &[value])
        };
        admin.put_record(ZONE, r).unwrap();
    }
    assert_eq!(
        resolved(dns, "f.aurora_private_hosted_zone").await.as_deref(),
        Some("192.0.2.4")
    );
    // An alias A to a cluster endpoint answers the endpoint's address under the alias's name; an alias
    // to a name awsim does not know answers nothing.
    let east = endpoint(&sim, EAST, "orders-east");
    let alias = |name: &str, target: &str| {
        RecordSet::alias(
            name,
            "A",
            AliasTarget {
                hosted_zone_id: "Z2R2ITUGPM61AM".into(),
                dns_name: target.into(),
                evaluate_target_health: false,
            },
        )
    };
    admin
        .put_record(ZONE, alias("apex-ish.aurora_private_hosted_zone", &east))
        .unwrap();
    admin
        .put_record(ZONE, alias("lb.aurora_private_hosted_zone", "my-lb.elb.amazonaws.com"))
        .unwrap();
    let m = ask(dns, "apex-ish.aurora_private_hosted_zone", RecordType::A)
        .await
        .unwrap();
    assert_eq!(lines(&m), ["apex-ish.aurora_private_hosted_zone. A 5 127.0.0.2"]);
    let m = ask(dns, "lb.aurora_private_hosted_zone", RecordType::A).await.unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
}

#[tokio::test]
async fn endpoint_addresses_and_ports_change_through_the_http_admin_api() {
    let (sim, dns) = world(Timings::instant()).await;
    let http = reqwest::Client::new();
    let base = format!("{}/_awsim", sim.sim.url());
    let put = |path: &str, body: serde_json::Value| http.put(format!("{base}{path}")).json(&body).send();
    let r = put(
        "/clusters/us-east-1/orders-east/endpoint-address",
        serde_json::json!({"writer": true, "address": "127.0.0.9"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(resolved(dns, WRITER).await.as_deref(), Some("127.0.0.9"));
    let r = put(
        "/clusters/us-east-1/orders-east/port",
        serde_json::json!({"port": 6543}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(sim.admin().cluster(EAST, "orders-east").unwrap().port, 6543);
    let r = put("/clusters/us-east-1/nope/port", serde_json::json!({"port": 1}))
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // The delay and the outage switch too.
    let r = put("/dns/down", serde_json::json!({"down": true})).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(ask(dns, WRITER, RecordType::A).await.is_none());
    put("/dns/down", serde_json::json!({"down": false})).await.unwrap();
    let r = put("/dns/delay", serde_json::json!({"delay_ms": 10})).await.unwrap();
    assert_eq!(r.status(), 200);
    let queries: serde_json::Value = http
        .get(format!("{base}/dns/queries"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(queries.as_array().unwrap().len(), 2);
    // In process, the reader address.
    sim.admin()
        .set_endpoint_address(EAST, "orders-east", false, "::1".parse().unwrap())
        .unwrap();
    let m = ask(dns, READER, RecordType::AAAA).await.unwrap();
    assert_eq!(m.answers.last().unwrap().data.to_string(), "::1");
}

#[tokio::test]
async fn the_server_also_answers_over_tcp() {
    let (_sim, dns) = world(Timings::instant()).await;
    let mut stream = TcpStream::connect(dns).await.unwrap();
    let q = question(WRITER, RecordType::A).to_vec().unwrap();
    stream.write_u16(u16::try_from(q.len()).unwrap()).await.unwrap();
    stream.write_all(&q).await.unwrap();
    let len = stream.read_u16().await.unwrap();
    let mut buf = vec![0u8; usize::from(len)];
    stream.read_exact(&mut buf).await.unwrap();
    let m = Message::from_vec(&buf).unwrap();
    assert_eq!(m.answers.last().unwrap().data.to_string(), "127.0.0.2");
}

#[tokio::test]
async fn the_dns_server_stops_with_the_emulator() {
    let (sim, dns) = world(Timings::instant()).await;
    assert!(ask(dns, WRITER, RecordType::A).await.is_some());
    sim.sim.shutdown().await;
    assert!(ask(dns, WRITER, RecordType::A).await.is_none());
}
