//! The database probe's adapter (`database::Prober`) against real servers (tests/it/common/databases.rs:
//! PostgreSQL 15 and MariaDB, installed by scripts/db-deps) with TLS from a test CA, and credentials
//! from moto's Secrets Manager (started by scripts/test, which exports `MOTO_ENDPOINT`): what it
//! reports of a primary, a standby and a read-only server, the heartbeat it writes, and how each
//! failure is classified, never showing the password.

use crate::common::databases::*;
use crate::common::poll_until;
use aurora_failover_bot::aws::{self, AwsOverrides};
use aurora_failover_bot::database::Prober;
use aurora_failover_bot::ports::{DatabaseProbe, EngineFamily, Heartbeat, ProbeError, ProbeErrorKind, ProbeTarget};
use aurora_failover_bot::settings::ProbeSettings;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

const WRITER_ENDPOINT: &str = "orders.cluster-c0ffee.us-east-1.rds.amazonaws.com";
const READER_ENDPOINT: &str = "orders.cluster-ro-c0ffee.us-east-1.rds.amazonaws.com";
const BOT: &str = "afb-test-instance";

fn moto() -> String {
    std::env::var("MOTO_ENDPOINT")
        .expect("MOTO_ENDPOINT is not set: run the tests with scripts/test, which installs and starts moto 5.2.5")
}

async fn aws_config() -> aws_config::SdkConfig {
    aws::load_config(&AwsOverrides {
        endpoint_url: Some(moto()),
        static_credentials: true,
        max_attempts: Some(1),
        attempt_timeout: None,
    })
    .await
}

/// A new secret in moto holding `value`; its name.
async fn secret(value: &str) -> String {
    let name = format!(
        "aurora-failover-bot/probe-{}-{}",
        std::process::id(),
        jiff::Timestamp::now().as_nanosecond()
    );
    aws_sdk_secretsmanager::Client::new(&aws_config().await)
        .create_secret()
        .name(&name)
        .secret_string(value)
        .send()
        .await
        .expect("moto CreateSecret");
    name
}

async fn probe_secret(password: &str) -> String {
    secret(&serde_json::json!({"username": PROBE_USER, "password": password, "engine": "postgres"}).to_string()).await
}

fn settings(ca: &std::path::Path, connect_timeout: Duration) -> ProbeSettings {
    ProbeSettings {
        ca_bundle: ca.to_owned(),
        resolver: None,
        connect_timeout,
        query_timeout: Duration::from_secs(5),
        deadline: Duration::from_secs(60),
    }
}

async fn prober(ca: &TestCa) -> Prober {
    Prober::new(&settings(&ca.pem_path(), Duration::from_secs(10)), &aws_config().await).unwrap()
}

fn target(engine: EngineFamily, endpoint: &str, server: &DbServer, secret_id: &str, heartbeat: bool) -> ProbeTarget {
    ProbeTarget {
        engine,
        endpoint: endpoint.to_owned(),
        address: Some(server.address.ip()),
        port: server.address.port(),
        database: DATABASE.to_owned(),
        secret_id: secret_id.to_owned(),
        secret_region: Some(aurora_failover_bot::types::Region::parse("us-east-1").unwrap()),
        heartbeat: heartbeat.then(|| Heartbeat {
            table: HEARTBEAT_TABLE.to_owned(),
            writer: BOT.to_owned(),
        }),
        check_heartbeat: None,
    }
}

fn spec<'a>(ca: &'a TestCa, last_octet: u8, port: u16, names: &[&str]) -> ServerSpec<'a> {
    ServerSpec {
        ip: Ipv4Addr::new(127, 0, 0, last_octet),
        port,
        tls_names: names.iter().map(|n| (*n).to_owned()).collect(),
        ca,
    }
}

/// Neither the error's text nor its `Debug` shows the password.
fn assert_hides_password(e: &ProbeError) {
    assert!(!e.to_string().contains(PROBE_PASSWORD), "{e}");
    assert!(!format!("{e:?}").contains(PROBE_PASSWORD), "{e:?}");
}

fn started(what: &str, since: Instant) {
    eprintln!("{what} started in {} ms", since.elapsed().as_millis());
}

#[tokio::test]
async fn a_postgres_primary_is_writable_and_gets_the_heartbeat_and_its_standby_is_read_only_until_promoted() {
    let ca = TestCa::new();
    let port = free_port_on(&[Ipv4Addr::new(127, 0, 0, 11), Ipv4Addr::new(127, 0, 0, 12)]);
    let t = Instant::now();
    let primary = DbServer::postgres(&spec(&ca, 11, port, &[WRITER_ENDPOINT]));
    started("PostgreSQL primary", t);
    let t = Instant::now();
    let mut standby = DbServer::postgres_standby(&primary, &spec(&ca, 12, port, &[READER_ENDPOINT]));
    started("PostgreSQL standby", t);
    let prober = prober(&ca).await;
    let secret_id = probe_secret(PROBE_PASSWORD).await;

    let report = prober
        .probe(&target(
            EngineFamily::AuroraPostgresql,
            WRITER_ENDPOINT,
            &primary,
            &secret_id,
            true,
        ))
        .await
        .unwrap();
    assert!(!report.read_only, "{report:?}");
    assert!(report.heartbeat_written, "{report:?}");
    assert_eq!(report.lag_ms, None, "a primary reports no lag");
    assert!(
        report.server_version.starts_with("PostgreSQL 15"),
        "{}",
        report.server_version
    );
    assert_eq!(report.address, primary.address);
    assert_eq!(primary.heartbeat_rows(), [BOT]);

    // The heartbeat row reaches the standby: it has replayed a transaction, so it reports a lag.
    let waited = Instant::now();
    while standby.heartbeat_rows().is_empty() {
        assert!(
            waited.elapsed() < Duration::from_secs(20),
            "the standby did not replay the heartbeat row"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    standby.psql("postgres", "SELECT 1");
    let report = prober
        .probe(&target(
            EngineFamily::AuroraPostgresql,
            READER_ENDPOINT,
            &standby,
            &secret_id,
            true,
        ))
        .await
        .unwrap();
    assert!(report.read_only, "{report:?}");
    assert!(!report.heartbeat_written, "{report:?}");
    let lag = report
        .lag_ms
        .expect("a standby that replayed a transaction reports its lag");
    assert!((0.0..60_000.0).contains(&lag), "{lag}");

    let t = Instant::now();
    standby.promote();
    eprintln!("standby promoted in {} ms", t.elapsed().as_millis());
    primary.psql(DATABASE, &format!("DELETE FROM {HEARTBEAT_TABLE}"));
    let report = prober
        .probe(&target(
            EngineFamily::AuroraPostgresql,
            READER_ENDPOINT,
            &standby,
            &secret_id,
            true,
        ))
        .await
        .unwrap();
    assert!(
        !report.read_only && report.heartbeat_written && report.lag_ms.is_none(),
        "{report:?}"
    );
    assert_eq!(standby.heartbeat_rows(), [BOT]);
}

#[tokio::test]
async fn a_mariadb_server_is_writable_until_it_is_made_read_only() {
    let ca = TestCa::new();
    let port = free_port_on(&[Ipv4Addr::new(127, 0, 0, 21), Ipv4Addr::new(127, 0, 0, 22)]);
    let t = Instant::now();
    let writer = DbServer::mariadb(&spec(&ca, 21, port, &[WRITER_ENDPOINT]), false);
    started("MariaDB", t);
    let t = Instant::now();
    let replica = DbServer::mariadb(&spec(&ca, 22, port, &[READER_ENDPOINT]), true);
    started("MariaDB (read-only)", t);
    let prober = prober(&ca).await;
    let secret_id = probe_secret(PROBE_PASSWORD).await;

    let report = prober
        .probe(&target(
            EngineFamily::AuroraMysql,
            WRITER_ENDPOINT,
            &writer,
            &secret_id,
            true,
        ))
        .await
        .unwrap();
    assert!(!report.read_only && report.heartbeat_written, "{report:?}");
    assert_eq!(report.lag_ms, None, "MariaDB reports no lag");
    assert!(report.server_version.contains("MariaDB"), "{}", report.server_version);
    assert_eq!(writer.heartbeat_rows(), [BOT]);

    writer.set_read_only(true);
    let report = prober
        .probe(&target(
            EngineFamily::AuroraMysql,
            WRITER_ENDPOINT,
            &writer,
            &secret_id,
            true,
        ))
        .await
        .unwrap();
    assert!(report.read_only && !report.heartbeat_written, "{report:?}");

    let report = prober
        .probe(&target(
            EngineFamily::AuroraMysql,
            READER_ENDPOINT,
            &replica,
            &secret_id,
            true,
        ))
        .await
        .unwrap();
    assert!(report.read_only && !report.heartbeat_written, "{report:?}");
    assert!(replica.heartbeat_rows().is_empty());
}

#[tokio::test]
async fn a_certificate_for_another_endpoint_or_from_another_ca_is_refused() {
    let ca = TestCa::new();
    let other_ca = TestCa::new();
    let port = free_port_on(&[Ipv4Addr::new(127, 0, 0, 31), Ipv4Addr::new(127, 0, 0, 32)]);
    let postgres = DbServer::postgres(&spec(&ca, 31, port, &[READER_ENDPOINT]));
    let mariadb = DbServer::mariadb(&spec(&ca, 32, port, &[READER_ENDPOINT]), false);
    let prober = prober(&ca).await;
    let untrusting = self::prober(&other_ca).await;
    let secret_id = probe_secret(PROBE_PASSWORD).await;

    for (engine, server) in [
        (EngineFamily::AuroraPostgresql, &postgres),
        (EngineFamily::AuroraMysql, &mariadb),
    ] {
        // The application's CNAME resolved to this server, but the certificate names the reader.
        let e = prober
            .probe(&target(engine, WRITER_ENDPOINT, server, &secret_id, true))
            .await
            .unwrap_err();
        assert_eq!(e.kind, ProbeErrorKind::Tls, "{engine:?}: {e}");
        assert!(
            e.detail.contains(WRITER_ENDPOINT) && e.detail.contains("does not name"),
            "{e}"
        );
        assert_hides_password(&e);

        let e = untrusting
            .probe(&target(engine, READER_ENDPOINT, server, &secret_id, true))
            .await
            .unwrap_err();
        assert_eq!(e.kind, ProbeErrorKind::Tls, "{engine:?}: {e}");
        assert!(e.detail.contains("ca_bundle"), "{e}");

        // The right name and CA: accepted (the refusals above were about the certificate).
        prober
            .probe(&target(engine, READER_ENDPOINT, server, &secret_id, false))
            .await
            .unwrap();
    }
    assert!(postgres.heartbeat_rows().is_empty() && mariadb.heartbeat_rows().is_empty());
}

#[tokio::test]
async fn a_refused_password_is_an_authentication_error_naming_the_user_without_the_password() {
    let ca = TestCa::new();
    let port = free_port_on(&[Ipv4Addr::new(127, 0, 0, 41), Ipv4Addr::new(127, 0, 0, 42)]);
    let postgres = DbServer::postgres(&spec(&ca, 41, port, &[WRITER_ENDPOINT]));
    let mariadb = DbServer::mariadb(&spec(&ca, 42, port, &[WRITER_ENDPOINT]), false);
    let prober = prober(&ca).await;
    // The wrong password contains the right one: a leak of either would show.
    let wrong = format!("{PROBE_PASSWORD}-old");
    let secret_id = probe_secret(&wrong).await;

    for (engine, server) in [
        (EngineFamily::AuroraPostgresql, &postgres),
        (EngineFamily::AuroraMysql, &mariadb),
    ] {
        let e = prober
            .probe(&target(engine, WRITER_ENDPOINT, server, &secret_id, true))
            .await
            .unwrap_err();
        assert_eq!(e.kind, ProbeErrorKind::Authentication, "{engine:?}: {e}");
        assert!(e.is_configuration());
        assert!(e.detail.contains(PROBE_USER) && e.detail.contains(&secret_id), "{e}");
        assert_hides_password(&e);
    }
}

#[tokio::test]
async fn a_missing_heartbeat_table_is_a_query_error_naming_it() {
    let ca = TestCa::new();
    let port = free_port_on(&[Ipv4Addr::new(127, 0, 0, 51), Ipv4Addr::new(127, 0, 0, 52)]);
    let postgres = DbServer::postgres(&spec(&ca, 51, port, &[WRITER_ENDPOINT]));
    let mariadb = DbServer::mariadb(&spec(&ca, 52, port, &[WRITER_ENDPOINT]), false);
    let prober = prober(&ca).await;
    let secret_id = probe_secret(PROBE_PASSWORD).await;

    for (engine, server) in [
        (EngineFamily::AuroraPostgresql, &postgres),
        (EngineFamily::AuroraMysql, &mariadb),
    ] {
        let mut t = target(engine, WRITER_ENDPOINT, server, &secret_id, true);
        t.heartbeat.as_mut().unwrap().table = "ops.no_such_table".into();
        let e = prober.probe(&t).await.unwrap_err();
        assert_eq!(e.kind, ProbeErrorKind::Query, "{engine:?}: {e}");
        assert!(e.detail.contains("ops.no_such_table"), "{e}");
        assert_hides_password(&e);
    }
}

#[tokio::test]
async fn nothing_listening_is_a_connect_error_and_a_silent_server_a_timeout() {
    let ca = TestCa::new();
    let secret_id = probe_secret(PROBE_PASSWORD).await;
    let connect_timeout = Duration::from_millis(1500);
    let prober = Prober::new(&settings(&ca.pem_path(), connect_timeout), &aws_config().await).unwrap();
    let closed = free_port_on(&[Ipv4Addr::new(127, 0, 0, 61)]);
    // Accepts TCP connections (the kernel does, from the backlog) and never reads or answers.
    let silent = tokio::net::TcpListener::bind((Ipv4Addr::new(127, 0, 0, 62), 0))
        .await
        .unwrap();

    for engine in [EngineFamily::AuroraPostgresql, EngineFamily::AuroraMysql] {
        let mut t = ProbeTarget {
            engine,
            endpoint: WRITER_ENDPOINT.into(),
            address: Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 61))),
            port: closed,
            database: DATABASE.into(),
            secret_id: secret_id.clone(),
            secret_region: None,
            heartbeat: None,
            check_heartbeat: None,
        };
        let e = prober.probe(&t).await.unwrap_err();
        assert_eq!(e.kind, ProbeErrorKind::Connect, "{engine:?}: {e}");
        assert!(
            e.detail.contains(WRITER_ENDPOINT) && e.detail.contains("127.0.0.61"),
            "{e}"
        );
        assert_hides_password(&e);

        t.address = Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 62)));
        t.port = silent.local_addr().unwrap().port();
        let since = Instant::now();
        let e = prober.probe(&t).await.unwrap_err();
        let took = since.elapsed();
        assert_eq!(e.kind, ProbeErrorKind::Timeout, "{engine:?}: {e}");
        assert!(
            took >= connect_timeout && took < connect_timeout + Duration::from_secs(1),
            "{took:?}"
        );
        assert_hides_password(&e);
    }
}

#[tokio::test]
async fn a_missing_or_malformed_secret_is_a_credentials_error() {
    let ca = TestCa::new();
    let prober = prober(&ca).await;
    let port = free_port_on(&[Ipv4Addr::new(127, 0, 0, 71)]);
    let mut t = ProbeTarget {
        engine: EngineFamily::AuroraPostgresql,
        endpoint: WRITER_ENDPOINT.into(),
        address: Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 71))),
        port,
        database: DATABASE.into(),
        secret_id: "aurora-failover-bot/no-such-secret".into(),
        secret_region: None,
        heartbeat: None,
        check_heartbeat: None,
    };
    let e = prober.probe(&t).await.unwrap_err();
    assert_eq!(e.kind, ProbeErrorKind::Credentials, "{e}");
    assert!(e.detail.contains("aurora-failover-bot/no-such-secret"), "{e}");

    t.secret_id = secret(&format!(
        "{{\"user\": \"{PROBE_USER}\", \"password\": \"{PROBE_PASSWORD}\"}}"
    ))
    .await;
    let e = prober.probe(&t).await.unwrap_err();
    assert_eq!(e.kind, ProbeErrorKind::Credentials, "{e}");
    assert!(e.detail.contains("username") && e.detail.contains(&t.secret_id), "{e}");
    assert_hides_password(&e);

    t.secret_id = secret(&format!("password={PROBE_PASSWORD}")).await;
    let e = prober.probe(&t).await.unwrap_err();
    assert_eq!(e.kind, ProbeErrorKind::Credentials, "{e}");
    assert_hides_password(&e);
}

#[tokio::test]
async fn the_read_only_heartbeat_check_finds_a_missing_table_or_missing_grants_on_a_replica() {
    let ca = TestCa::new();
    let port = free_port_on(&[
        Ipv4Addr::new(127, 0, 0, 41),
        Ipv4Addr::new(127, 0, 0, 42),
        Ipv4Addr::new(127, 0, 0, 43),
    ]);
    let primary = DbServer::postgres(&spec(&ca, 41, port, &[WRITER_ENDPOINT]));
    let standby = DbServer::postgres_standby(&primary, &spec(&ca, 42, port, &[READER_ENDPOINT]));
    let mariadb = DbServer::mariadb(&spec(&ca, 43, port, &[READER_ENDPOINT]), true);
    let prober = prober(&ca).await;
    let secret_id = probe_secret(PROBE_PASSWORD).await;
    let check = |engine, server: &DbServer, table: &str| {
        let mut t = target(engine, READER_ENDPOINT, server, &secret_id, false);
        t.check_heartbeat = Some(table.to_owned());
        t
    };
    let problem = async |t: ProbeTarget| {
        let report = prober.probe(&t).await.unwrap();
        assert!(report.read_only && !report.heartbeat_written, "{report:?}");
        report.heartbeat_problem
    };
    // The documented table and grants: nothing to say, on a standby and on a read-only MariaDB.
    assert_eq!(
        problem(check(EngineFamily::AuroraPostgresql, &standby, HEARTBEAT_TABLE)).await,
        None
    );
    assert_eq!(
        problem(check(EngineFamily::AuroraMysql, &mariadb, HEARTBEAT_TABLE)).await,
        None
    );
    assert_eq!(
        problem(check(EngineFamily::AuroraPostgresql, &standby, "afb_missing"))
            .await
            .as_deref(),
        Some("table afb_missing does not exist in database app")
    );
    // MySQL does not tell a missing table from one the user may not read.
    assert_eq!(
        problem(check(EngineFamily::AuroraMysql, &mariadb, "afb_missing"))
            .await
            .as_deref(),
        Some(
            "table afb_missing does not exist in database app, or user afb_probe may not read it (the upsert needs \
             SELECT, INSERT and UPDATE)"
        )
    );
    // A grant taken away on the primary shows on its standby.
    primary.psql(
        DATABASE,
        &format!("REVOKE INSERT ON {HEARTBEAT_TABLE} FROM {PROBE_USER}"),
    );
    poll_until("the revoke to replay", Duration::from_millis(50), async || {
        problem(check(EngineFamily::AuroraPostgresql, &standby, HEARTBEAT_TABLE)).await
    })
    .await;
    assert_eq!(
        problem(check(EngineFamily::AuroraPostgresql, &standby, HEARTBEAT_TABLE))
            .await
            .as_deref(),
        Some(format!("user {PROBE_USER} lacks SELECT, INSERT or UPDATE on {HEARTBEAT_TABLE}").as_str())
    );
}
