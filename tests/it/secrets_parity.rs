//! awsim's Secrets Manager GetSecretValue compared with moto's (started by `scripts/test`, which exports
//! `MOTO_ENDPOINT`) through the real aws-sdk-secretsmanager client: the same fields, the same ARN form,
//! the same error code for a missing secret and for a secret asked in another Region. (Here rather than
//! with awsim's own moto parity tests: awsim's tests do not depend on aws-sdk-secretsmanager.)

use aurora_failover_bot::aws::{self, AwsOverrides};
use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueOutput;

const VALUE: &str = r#"{"username": "probe", "password": "parity-not-a-password"}"#;

fn moto() -> String {
    std::env::var("MOTO_ENDPOINT")
        .expect("MOTO_ENDPOINT is not set: run the tests with scripts/test, which installs and starts moto 5.2.5")
}

async fn client(endpoint: &str, region: &str) -> aws_sdk_secretsmanager::Client {
    let config = aws::load_config(&AwsOverrides {
        endpoint_url: Some(endpoint.to_owned()),
        static_credentials: true,
        max_attempts: Some(1),
        attempt_timeout: None,
    })
    .await;
    let config = aws_sdk_secretsmanager::config::Builder::from(&config)
        .region(aws_sdk_secretsmanager::config::Region::new(region.to_owned()))
        .build();
    aws_sdk_secretsmanager::Client::from_conf(config)
}

/// What must agree between the two: which fields are present, the name, the value, the stages, and the
/// ARN's form (`…:secret:{name}-` and six characters).
fn shape(out: &GetSecretValueOutput, name: &str) -> (Vec<&'static str>, String, String, Vec<String>, bool) {
    let present = [
        ("ARN", out.arn().is_some()),
        ("Name", out.name().is_some()),
        ("VersionId", out.version_id().is_some()),
        ("SecretString", out.secret_string().is_some()),
        ("SecretBinary", out.secret_binary().is_some()),
        ("VersionStages", !out.version_stages().is_empty()),
        ("CreatedDate", out.created_date().is_some()),
    ]
    .into_iter()
    .filter_map(|(field, here)| here.then_some(field))
    .collect();
    let prefix = format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{name}-");
    let arn = out.arn().unwrap_or_default();
    (
        present,
        out.name().unwrap_or_default().to_owned(),
        out.secret_string().unwrap_or_default().to_owned(),
        out.version_stages().to_vec(),
        arn.starts_with(&prefix) && arn.len() == prefix.len() + 6,
    )
}

/// GetSecretValue of `name` by name and by ARN, then of a missing secret and of the ARN from another
/// Region: the shape of the answer and the two error codes.
async fn observe(endpoint: &str, name: &str) -> (impl PartialEq + std::fmt::Debug, Vec<Option<String>>) {
    let east = client(endpoint, "us-east-1").await;
    let by_name = east.get_secret_value().secret_id(name).send().await.expect("by name");
    let arn = by_name.arn().unwrap().to_owned();
    let by_arn = east.get_secret_value().secret_id(&arn).send().await.expect("by ARN");
    assert_eq!(by_arn.version_id(), by_name.version_id());
    let missing = east
        .get_secret_value()
        .secret_id(format!("{name}-missing"))
        .send()
        .await
        .unwrap_err();
    let west = client(endpoint, "us-west-2").await;
    let elsewhere = west.get_secret_value().secret_id(&arn).send().await.unwrap_err();
    let codes = [missing, elsewhere]
        .into_iter()
        .map(|e| e.into_service_error().code().map(str::to_owned))
        .collect();
    (shape(&by_name, name), codes)
}

#[tokio::test]
async fn get_secret_value_answers_as_moto_does() {
    let name = format!("awsim-parity/probe-{}", std::process::id());
    let moto = moto();
    client(&moto, "us-east-1")
        .await
        .create_secret()
        .name(&name)
        .secret_string(VALUE)
        .send()
        .await
        .expect("moto CreateSecret");
    let mut scenario = awsim::Scenario::two_region_example();
    scenario.secrets.push(awsim::scenario::SecretSpec {
        name: name.clone(),
        region: "us-east-1".into(),
        value: VALUE.into(),
    });
    let sim = awsim::start("127.0.0.1:0".parse().unwrap(), scenario).await.unwrap();
    let (moto_shape, moto_codes) = observe(&moto, &name).await;
    let (awsim_shape, awsim_codes) = observe(sim.url(), &name).await;
    assert_eq!(awsim_shape, moto_shape);
    assert_eq!(awsim_codes, moto_codes);
    assert_eq!(
        awsim_codes,
        [
            Some("ResourceNotFoundException".to_owned()),
            Some("ResourceNotFoundException".to_owned())
        ]
    );
    assert_eq!(sim.admin().calls_to("GetSecretValue").len(), 4);
}
