//! Secrets Manager's GetSecretValue over AWS JSON 1.1, sent as the SDK sends it (awsim's tests cannot
//! use aws-sdk-secretsmanager; the bot's `tests/it/secrets_parity.rs` does, against moto too).

use crate::common::*;
use awsim::Scenario;
use serde_json::{Value, json};

const SECRET: &str = "aurora-failover-bot/probe";
const VALUE: &str = r#"{"username": "probe", "password": "not-a-password"}"#;

async fn with_secret() -> TestSim {
    let mut s = Scenario::two_region_example();
    s.secrets.push(awsim::scenario::SecretSpec {
        name: SECRET.into(),
        region: "us-east-1".into(),
        value: VALUE.into(),
    });
    TestSim::start(s).await
}

/// GetSecretValue of `secret_id`, signed (unverified) for `region`: the status and the JSON answer.
async fn get(sim: &TestSim, region: &str, secret_id: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(sim.sim.url())
        .header(
            "authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential=AKIDAWSIMTEST/20250101/{region}/secretsmanager/aws4_request, SignedHeaders=host, Signature=00"
            ),
        )
        .header("x-amz-target", "secretsmanager.GetSecretValue")
        .header("content-type", "application/x-amz-json-1.1")
        .body(json!({ "SecretId": secret_id }).to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

#[tokio::test]
async fn get_secret_value_finds_a_secret_by_name_arn_and_partial_arn_in_its_region() {
    let sim = with_secret().await;
    let (status, by_name) = get(&sim, "us-east-1", SECRET).await;
    assert_eq!(status, 200, "{by_name}");
    assert_eq!(by_name["Name"], SECRET);
    assert_eq!(by_name["SecretString"], VALUE);
    assert_eq!(by_name["VersionStages"], json!(["AWSCURRENT"]));
    assert!(by_name["CreatedDate"].is_number());
    let arn = by_name["ARN"].as_str().unwrap().to_owned();
    let prefix = format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{SECRET}-");
    assert!(arn.starts_with(&prefix) && arn.len() == prefix.len() + 6, "{arn}");
    let version = by_name["VersionId"].as_str().unwrap();
    assert_eq!(version.len(), 36, "{version}");
    let (status, by_arn) = get(&sim, "us-east-1", &arn).await;
    assert_eq!(status, 200);
    assert_eq!(by_arn, by_name);
    let (status, by_partial_arn) = get(&sim, "us-east-1", &arn[..arn.len() - 7]).await;
    assert_eq!(status, 200);
    assert_eq!(by_partial_arn["ARN"], arn.as_str());
    // The call log shows the action and what it named.
    let calls = sim.admin().calls_to("GetSecretValue");
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[0].service, "secretsmanager");
    assert_eq!(calls[0].params["SecretId"], SECRET);
    assert_eq!(calls[0].status, 200);
}

#[tokio::test]
async fn a_secret_of_another_region_or_name_is_not_found() {
    let sim = with_secret().await;
    let (_, found) = get(&sim, "us-east-1", SECRET).await;
    let arn = found["ARN"].as_str().unwrap();
    for (region, id) in [("us-west-2", SECRET), ("us-west-2", arn), ("us-east-1", "nope")] {
        let (status, e) = get(&sim, region, id).await;
        assert_eq!(status, 400, "{region} {id}");
        assert_eq!(e["__type"], "ResourceNotFoundException");
        assert_eq!(e["message"], "Secrets Manager can't find the specified secret.");
    }
    let last = sim.admin().calls_to("GetSecretValue").pop().unwrap();
    assert_eq!(last.error.as_deref(), Some("ResourceNotFoundException"));
}

#[tokio::test]
async fn put_secret_adds_a_secret_or_a_new_version_in_process_and_over_http() {
    let sim = with_secret().await;
    let (_, first) = get(&sim, "us-east-1", SECRET).await;
    sim.admin().put_secret("us-east-1", SECRET, "v2").unwrap();
    let (_, second) = get(&sim, "us-east-1", SECRET).await;
    assert_eq!(second["SecretString"], "v2");
    assert_eq!(second["ARN"], first["ARN"]);
    assert_ne!(second["VersionId"], first["VersionId"]);
    let r = reqwest::Client::new()
        .post(format!("{}/_awsim/secrets", sim.sim.url()))
        .json(&json!({"region": "us-west-2", "name": "west/creds", "value": "w"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (status, west) = get(&sim, "us-west-2", "west/creds").await;
    assert_eq!((status, west["SecretString"].as_str()), (200, Some("w")));
    assert!(sim.admin().put_secret("mars", "x", "y").is_err());
    assert!(sim.admin().put_secret("us-east-1", "bad name", "y").is_err());
}

#[tokio::test]
async fn faults_and_outages_apply_to_secrets_manager_as_to_every_service() {
    let sim = with_secret().await;
    sim.admin()
        .inject(awsim::FaultSpec {
            action: "GetSecretValue".into(),
            region: None,
            error: Some(awsim::FaultCode::Throttling),
            delay_ms: None,
            delay_response_ms: None,
            count: Some(1),
        })
        .unwrap();
    let (status, e) = get(&sim, "us-east-1", SECRET).await;
    assert_eq!((status, e["__type"].as_str()), (400, Some("Throttling")));
    sim.admin()
        .region_down("us-east-1", awsim::OutageMode::Unavailable)
        .unwrap();
    let (status, _) = get(&sim, "us-east-1", SECRET).await;
    assert_eq!(status, 503);
}
