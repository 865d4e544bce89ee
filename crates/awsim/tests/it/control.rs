//! Control of the emulator: injected faults and delays as the SDK sees them, the call log, timings,
//! reset, and the admin HTTP API.

use crate::common;

use aws_sdk_rds::config::retry::RetryConfig;
use aws_sdk_rds::error::ProvideErrorMetadata;
use awsim::{FaultCode, FaultSpec, Scenario, Timings};
use common::{TestSim, sdk_config};
use serde_json::json;
use std::time::Duration;

fn fault(action: &str, error: Option<FaultCode>, delay_ms: Option<u64>, count: Option<u32>) -> FaultSpec {
    FaultSpec {
        action: action.into(),
        region: None,
        error,
        delay_ms,
        delay_response_ms: None,
        count,
    }
}

#[tokio::test]
async fn injected_errors_hit_exactly_the_next_n_calls_of_that_action_with_awss_codes() {
    let t = TestSim::example(Timings::instant()).await;
    let rds = t.rds("us-east-1").await;
    for (code, status) in [
        (FaultCode::Throttling, 400),
        (FaultCode::InternalFailure, 500),
        (FaultCode::ServiceUnavailable, 503),
    ] {
        t.admin()
            .inject(fault("DescribeDBClusters", Some(code), None, Some(2)))
            .unwrap();
        for _ in 0..2 {
            let err = rds.describe_db_clusters().send().await.unwrap_err();
            assert_eq!(err.code(), Some(format!("{code:?}").as_str()));
            assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(status));
        }
        rds.describe_db_clusters()
            .send()
            .await
            .expect("the third call is not affected");
    }
    // Other actions were never affected.
    rds.describe_global_clusters().send().await.unwrap();
    assert!(t.admin().snapshot().faults.is_empty(), "used-up faults are gone");
}

#[tokio::test]
async fn the_sdks_own_retries_get_through_a_couple_of_injected_errors_and_every_attempt_is_logged() {
    let t = TestSim::example(Timings::instant()).await;
    let retrying = aws_sdk_rds::Client::new(
        &sdk_config(
            t.sim.url(),
            "us-west-2",
            RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(Duration::from_millis(10)),
        )
        .await,
    );
    t.admin()
        .inject(fault(
            "DescribeGlobalClusters",
            Some(FaultCode::Throttling),
            None,
            Some(1),
        ))
        .unwrap();
    t.admin()
        .inject(fault(
            "DescribeGlobalClusters",
            Some(FaultCode::ServiceUnavailable),
            None,
            Some(1),
        ))
        .unwrap();
    retrying
        .describe_global_clusters()
        .send()
        .await
        .expect("third attempt succeeds");
    let outcomes: Vec<_> = t
        .admin()
        .calls_to("DescribeGlobalClusters")
        .into_iter()
        .map(|c| (c.status, c.error))
        .collect();
    // Error faults on one action queue up: the first injected answers the first call, the next the next.
    assert_eq!(
        outcomes,
        vec![
            (400, Some("Throttling".to_owned())),
            (503, Some("ServiceUnavailable".to_owned())),
            (200, None)
        ]
    );
}

#[tokio::test]
async fn a_fault_can_be_limited_to_one_region() {
    let t = TestSim::example(Timings::instant()).await;
    let mut f = fault("DescribeDBClusters", Some(FaultCode::InternalFailure), None, None);
    f.region = Some("us-west-2".into());
    t.admin().inject(f).unwrap();
    t.rds("us-east-1").await.describe_db_clusters().send().await.unwrap();
    for _ in 0..3 {
        let err = t
            .rds("us-west-2")
            .await
            .describe_db_clusters()
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("InternalFailure"), "without a count the fault stays");
    }
    t.admin().clear_faults();
    t.rds("us-west-2").await.describe_db_clusters().send().await.unwrap();
}

#[tokio::test]
async fn an_injected_delay_holds_the_call_and_then_it_proceeds() {
    let t = TestSim::example(Timings::instant()).await;
    let rds = t.rds("us-west-2").await;
    t.admin()
        .inject(fault("DescribeDBClusters", None, Some(400), Some(1)))
        .unwrap();
    let started = std::time::Instant::now();
    let out = rds.describe_db_clusters().send().await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(out.db_clusters().len(), 1);
    let started = std::time::Instant::now();
    rds.describe_db_clusters().send().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "the delay was for one call only"
    );
}

#[tokio::test]
async fn the_call_log_says_what_was_called_where_with_which_parameters_and_what_it_got() {
    let t = TestSim::example(Timings::instant()).await;
    let west = t.rds("us-west-2").await;
    west.remove_from_global_cluster()
        .global_cluster_identifier("orders-global")
        .db_cluster_identifier("arn:aws:rds:us-west-2:123456789012:cluster:orders-west")
        .send()
        .await
        .unwrap();
    let _ = west.describe_db_clusters().db_cluster_identifier("ghost").send().await;
    let calls = t.admin().calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].action, "RemoveFromGlobalCluster");
    assert_eq!(calls[0].service, "rds");
    assert_eq!(calls[0].region, "us-west-2");
    assert_eq!(calls[0].params["GlobalClusterIdentifier"], "orders-global");
    assert_eq!(
        calls[0].params["DbClusterIdentifier"],
        "arn:aws:rds:us-west-2:123456789012:cluster:orders-west"
    );
    assert_eq!((calls[0].status, calls[0].error.as_deref()), (200, None));
    assert!(calls[0].at.parse::<jiff::Timestamp>().is_ok(), "{}", calls[0].at);
    assert_eq!(
        (calls[1].status, calls[1].error.as_deref()),
        (404, Some("DBClusterNotFoundFault"))
    );
    assert!(calls[0].seq < calls[1].seq);
    t.admin().clear_calls();
    assert!(t.admin().calls().is_empty());
}

#[tokio::test]
async fn reset_returns_to_the_last_scenario_loaded() {
    let t = TestSim::example(Timings::instant()).await;
    let west = t.rds("us-west-2").await;
    west.remove_from_global_cluster()
        .global_cluster_identifier("orders-global")
        .db_cluster_identifier("arn:aws:rds:us-west-2:123456789012:cluster:orders-west")
        .send()
        .await
        .unwrap();
    assert_eq!(t.admin().global_cluster("orders-global").unwrap().members.len(), 1);
    t.admin().reset();
    assert_eq!(t.admin().global_cluster("orders-global").unwrap().members.len(), 2);
    assert!(t.admin().calls().is_empty());
    // Loading a scenario replaces the world; an invalid one changes nothing.
    let mut s = Scenario::two_region_example();
    s.global_clusters.clear();
    s.hosted_zones.clear();
    t.admin().load_scenario(s).unwrap();
    assert!(t.admin().global_cluster("orders-global").is_none());
    let mut bad = Scenario::two_region_example();
    bad.global_clusters[0].members[0].primary = false;
    let err = t.admin().load_scenario(bad).unwrap_err().to_string();
    assert!(
        err.contains("global_clusters[0].members") && err.contains("primary"),
        "{err}"
    );
    assert!(
        t.admin().global_cluster("orders-global").is_none(),
        "the bad scenario changed nothing"
    );
}

/// The admin HTTP API drives the same controls, for a test or a person in another process.
#[tokio::test]
async fn the_admin_http_api_controls_the_world() {
    let t = TestSim::example(Timings::instant()).await;
    let http = reqwest::Client::new();
    let url = |p: &str| format!("{}/_awsim/{p}", t.sim.url());
    assert_eq!(http.get(url("health")).send().await.unwrap().status(), 200);

    // Region outage and recovery.
    let r = http
        .post(url("regions/us-east-1/down"))
        .json(&json!({"mode": "unavailable"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let err = t
        .rds("us-east-1")
        .await
        .describe_db_clusters()
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ServiceUnavailable"));
    let state: serde_json::Value = http.get(url("state")).send().await.unwrap().json().await.unwrap();
    assert_eq!(state["regions_down"]["us-east-1"], "unavailable");
    http.post(url("regions/us-east-1/up")).send().await.unwrap();
    t.rds("us-east-1").await.describe_db_clusters().send().await.unwrap();
    let r = http.post(url("regions/mars/down")).send().await.unwrap();
    assert_eq!(r.status(), 400, "a bad Region name is refused");

    // Faults.
    let r = http
        .post(url("faults"))
        .json(&json!({"action": "DescribeGlobalClusters", "error": "Throttling", "count": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let err = t
        .rds("us-east-1")
        .await
        .describe_global_clusters()
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("Throttling"));
    let r = http
        .post(url("faults"))
        .json(&json!({"action": "X", "eror": "Throttling"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "unknown keys are refused");

    // Timings, lag and status.
    let timings: serde_json::Value = http
        .put(url("timings"))
        .json(&json!({"detach_ms": 1234}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(timings["detach_ms"], 1234);
    assert_eq!(timings["dns_propagation_ms"], 1, "other durations are unchanged");
    let r = http
        .put(url("clusters/us-west-2/orders-west/lag"))
        .json(&json!({"replication_lag_ms": 2500}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        t.admin()
            .cluster("us-west-2", "orders-west")
            .unwrap()
            .replication_lag_ms,
        2500
    );
    let r = http
        .put(url("clusters/us-west-2/ghost/lag"))
        .json(&json!({"replication_lag_ms": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    http.put(url("clusters/us-east-1/orders-east/status"))
        .json(&json!({"status": "modifying"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        t.admin().cluster("us-east-1", "orders-east").unwrap().status,
        "modifying"
    );

    // The call log.
    let calls: Vec<awsim::CallRecord> = http
        .get(url("calls?action=DescribeGlobalClusters"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].error.as_deref(), Some("Throttling"));

    // Loading a scenario over HTTP; a bad one is refused with its place and changes nothing.
    let mut s = Scenario::two_region_example();
    s.global_clusters[0].id = "renamed-global".into();
    let r = http.post(url("scenario")).json(&s).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(t.admin().global_cluster("renamed-global").is_some());
    s.hosted_zones[0].records[0].name = "www.example.com".into();
    let r = http.post(url("scenario")).json(&s).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("hosted_zones[0].records[0].name"),
        "{body}"
    );
    assert!(t.admin().global_cluster("renamed-global").is_some());
    http.post(url("reset")).send().await.unwrap();
    assert!(
        t.admin().global_cluster("renamed-global").is_some(),
        "reset returns to the last scenario loaded"
    );
    let r = http.get(url("nothing-here")).send().await.unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn an_unsigned_request_is_refused_and_shutdown_stops_the_server() {
    let t = TestSim::example(Timings::instant()).await;
    let url = t.sim.url().to_owned();
    let http = reqwest::Client::new();
    let r = http
        .post(&url)
        .body("Action=DescribeDBClusters&Version=2014-10-31")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("MissingAuthenticationToken"));
    t.sim.shutdown().await;
    assert!(
        http.get(format!("{url}/_awsim/health")).send().await.is_err(),
        "nothing listens after shutdown"
    );
}

#[tokio::test]
async fn the_awsim_binary_serves_a_scenario_file_and_refuses_a_bad_one_with_its_place() {
    let dir = std::env::temp_dir().join(format!("awsim-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[[global_clusters]]\nid = \"Bad_Id\"\nmembers = []\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_awsim"))
        .args(["--scenario"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("global_clusters[0].id"), "{stderr}");

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_awsim"))
        .args(["--listen", &format!("127.0.0.1:{port}"), "--scenario"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/two-region.toml"))
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    common::wait_for("the binary to listen", Duration::from_secs(10), || async {
        reqwest::get(format!("{url}/_awsim/health"))
            .await
            .ok()
            .filter(|r| r.status() == 200)
    })
    .await;
    let rds = aws_sdk_rds::Client::new(&sdk_config(&url, "us-west-2", RetryConfig::disabled()).await);
    let out = rds.describe_global_clusters().send().await.unwrap();
    assert_eq!(
        out.global_clusters()[0].global_cluster_identifier(),
        Some("orders-global")
    );
    child.kill().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_held_answer_means_the_change_is_made_even_if_the_client_gives_up() {
    let t = TestSim::example(Timings::instant()).await;
    let mut f = fault("RemoveFromGlobalCluster", None, None, Some(1));
    f.delay_response_ms = Some(2_000);
    t.admin().inject(f).unwrap();
    let config = sdk_config(t.sim.url(), "us-west-2", RetryConfig::disabled()).await;
    let impatient = aws_sdk_rds::Client::from_conf(
        aws_sdk_rds::config::Builder::from(&config)
            .timeout_config(
                aws_sdk_rds::config::timeout::TimeoutConfig::builder()
                    .operation_timeout(Duration::from_millis(300))
                    .build(),
            )
            .build(),
    );
    let err = impatient
        .remove_from_global_cluster()
        .global_cluster_identifier("orders-global")
        .db_cluster_identifier("arn:aws:rds:us-west-2:123456789012:cluster:orders-west")
        .send()
        .await
        .unwrap_err();
    assert!(matches!(err, aws_sdk_rds::error::SdkError::TimeoutError(_)), "{err:?}");
    // The client saw no answer, but the member left.
    assert_eq!(t.admin().global_cluster("orders-global").unwrap().members.len(), 1);
    let calls = t.admin().calls_to("RemoveFromGlobalCluster");
    assert_eq!((calls.len(), calls[0].status), (1, 200));
}

#[tokio::test]
async fn the_admin_http_api_sets_a_clusters_write_forwarding() {
    let t = TestSim::example(Timings::instant()).await;
    let http = reqwest::Client::new();
    let url = |p: &str| format!("{}/_awsim/{p}", t.sim.url());
    let r = http
        .put(url("clusters/us-west-2/orders-west/write-forwarding"))
        .json(&json!({"status": "enabling"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let c = t.admin().cluster("us-west-2", "orders-west").unwrap();
    assert_eq!(c.write_forwarding, Some(awsim::WriteForwarding::Enabling));
    let r = http
        .put(url("clusters/us-west-2/orders-west/write-forwarding"))
        .json(&json!({"status": "sideways"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "an unknown value is refused");
}
