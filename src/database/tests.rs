//! The adapter's parts that need no database server: the CA bundle's errors, table quoting, and
//! `resolve` against a small UDP DNS responder (hickory-proto's messages). The connections themselves
//! are tested against real PostgreSQL and MariaDB servers in tests/it/probe_adapter.rs.

use super::*;
use hickory_resolver::proto::op::{Message, OpCode, ResponseCode};
use hickory_resolver::proto::rr::rdata::{A, AAAA, CNAME};
use hickory_resolver::proto::rr::{Name, Record};
use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

fn settings(ca_bundle: &std::path::Path, resolver: Option<SocketAddr>) -> ProbeSettings {
    ProbeSettings {
        ca_bundle: ca_bundle.to_owned(),
        resolver,
        connect_timeout: Duration::from_secs(2),
        query_timeout: Duration::from_millis(700),
        deadline: Duration::from_secs(60),
    }
}

fn aws() -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder().build()
}

fn ca_pem() -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.self_signed(&key).unwrap().pem()
}

#[test]
fn an_unreadable_or_empty_ca_bundle_is_an_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let e = Prober::new(&settings(&missing, None), &aws()).err().unwrap();
    assert!(
        e.contains(&missing.display().to_string()) && e.contains("cannot read"),
        "{e}"
    );

    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let e = Prober::new(&settings(&empty, None), &aws()).err().unwrap();
    assert!(
        e.contains(&empty.display().to_string()) && e.contains("no certificate"),
        "{e}"
    );

    let good = dir.path().join("ca.pem");
    std::fs::write(&good, ca_pem()).unwrap();
    Prober::new(&settings(&good, Some("127.0.0.1:53".parse().unwrap())), &aws()).unwrap();
}

#[test]
fn table_names_are_quoted_part_by_part() {
    assert_eq!(quoted_table("afb_heartbeat", '"'), "\"afb_heartbeat\"");
    assert_eq!(quoted_table("ops.afb$beat", '`'), "`ops`.`afb$beat`");
    assert_eq!(quoted_table("a\"b", '"'), "\"a\"\"b\"");
}

#[test]
fn the_cause_wrapped_in_an_io_error_is_described() {
    let inner = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
    let io = std::io::Error::new(std::io::ErrorKind::InvalidData, inner);
    assert!(matches!(
        tls::rustls_error(&io),
        Some(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer
        ))
    ));
    assert!(describe_chain(&io).contains("UnknownIssuer"), "{}", describe_chain(&io));
}

/// A UDP DNS server answering from `zone` (name → CNAME target or addresses), NXDOMAIN for other
/// names, and counting the queries it was asked; `silent` never answers.
struct Responder {
    address: SocketAddr,
    queries: Arc<AtomicUsize>,
}

enum Answer {
    Cname(&'static str),
    Addresses(Vec<IpAddr>),
}

use std::net::IpAddr;

async fn responder(zone: HashMap<&'static str, Answer>, silent: bool) -> Responder {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let address = socket.local_addr().unwrap();
    let queries = Arc::new(AtomicUsize::new(0));
    let counted = queries.clone();
    tokio::spawn(async move {
        let mut buffer = [0u8; 1500];
        loop {
            let Ok((n, peer)) = socket.recv_from(&mut buffer).await else {
                return;
            };
            counted.fetch_add(1, Ordering::SeqCst);
            if silent {
                continue;
            }
            let request = Message::from_vec(&buffer[..n]).unwrap();
            let query = request.queries[0].clone();
            let mut response = Message::response(request.metadata.id, OpCode::Query);
            response.metadata.recursion_available = true;
            response.metadata.recursion_desired = request.metadata.recursion_desired;
            response.add_query(query.clone());
            // Follow the chain as a recursive resolver would, answering CNAMEs then the addresses.
            let mut name = normalize(&query.name.to_string());
            let mut found = false;
            while let Some(answer) = zone.get(name.as_str()) {
                found = true;
                let owner = Name::from_ascii(format!("{name}.")).unwrap();
                match answer {
                    Answer::Cname(target) => {
                        let target_name = Name::from_ascii(format!("{target}.")).unwrap();
                        response.add_answer(Record::from_rdata(owner, 5, RData::CNAME(CNAME(target_name))));
                        name = target.to_string();
                    }
                    Answer::Addresses(ips) => {
                        for ip in ips {
                            match (ip, query.query_type) {
                                (IpAddr::V4(v4), RecordType::A) => {
                                    response.add_answer(Record::from_rdata(owner.clone(), 5, RData::A(A(*v4))));
                                }
                                (IpAddr::V6(v6), RecordType::AAAA) => {
                                    response.add_answer(Record::from_rdata(owner.clone(), 5, RData::AAAA(AAAA(*v6))));
                                }
                                _ => {}
                            }
                        }
                        break;
                    }
                }
            }
            if !found {
                response.metadata.response_code = ResponseCode::NXDomain;
            }
            let _ = socket.send_to(&response.to_vec().unwrap(), peer).await;
        }
    });
    Responder { address, queries }
}

use hickory_resolver::proto::rr::RecordType;

fn prober(dir: &tempfile::TempDir, resolver: SocketAddr) -> Prober {
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, ca_pem()).unwrap();
    Prober::new(&settings(&ca, Some(resolver)), &aws()).unwrap()
}

#[tokio::test]
async fn a_name_resolves_to_its_cname_chain_and_addresses_asking_again_each_time() {
    let zone = HashMap::from([
        (
            "db.app.example",
            Answer::Cname("Orders.Cluster-ABC.us-east-1.rds.amazonaws.com"),
        ),
        (
            "orders.cluster-abc.us-east-1.rds.amazonaws.com",
            Answer::Cname("ec2-1.compute.amazonaws.com"),
        ),
        (
            "ec2-1.compute.amazonaws.com",
            Answer::Addresses(vec![
                IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7)),
                IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 7)),
            ]),
        ),
    ]);
    let dns = responder(zone, false).await;
    let dir = tempfile::tempdir().unwrap();
    let prober = prober(&dir, dns.address);

    let resolution = prober.resolve("db.app.example").await.unwrap();
    assert_eq!(
        resolution.cnames,
        [
            "orders.cluster-abc.us-east-1.rds.amazonaws.com",
            "ec2-1.compute.amazonaws.com"
        ]
    );
    assert!(resolution.addresses.contains(&IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7))));
    assert!(resolution.addresses.contains(&"fd00::7".parse().unwrap()));
    assert_eq!(resolution.addresses.len(), 2);

    let asked = dns.queries.load(Ordering::SeqCst);
    prober.resolve("db.app.example").await.unwrap();
    assert!(
        dns.queries.load(Ordering::SeqCst) > asked,
        "the second resolve must ask the server again"
    );
}

#[tokio::test]
async fn an_unknown_name_is_a_resolve_error_and_a_silent_server_a_timeout() {
    let dns = responder(HashMap::new(), false).await;
    let dir = tempfile::tempdir().unwrap();
    let e = prober(&dir, dns.address).resolve("nothing.example").await.unwrap_err();
    assert_eq!(e.kind, ProbeErrorKind::Resolve, "{e}");
    assert!(e.detail.contains("nothing.example"), "{e}");

    let silent = responder(HashMap::new(), true).await;
    let started = Instant::now();
    let e = prober(&dir, silent.address)
        .resolve("db.app.example")
        .await
        .unwrap_err();
    assert_eq!(e.kind, ProbeErrorKind::Timeout, "{e}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
}
