//! The Slack secrets from AWS Secrets Manager, tested against moto (started by `scripts/test`, which
//! exports `MOTO_ENDPOINT`): the bot verifies requests with the signing secret and calls Slack with the
//! bot token found in the secret; a missing or malformed secret stops start-up with the key and the
//! reason, and never shows a secret's value.

use crate::common;

use aurora_failover_bot::aws::{self, AwsOverrides};
use aurora_failover_bot::ports::SystemClock;
use aurora_failover_bot::settings::Settings;
use aurora_failover_bot::startup::{Application, Deps};
use common::*;
use standin::{Secret, SlackSender, SlackStandIn};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

fn moto() -> String {
    std::env::var("MOTO_ENDPOINT")
        .expect("MOTO_ENDPOINT is not set: run the tests with scripts/test, which installs and starts moto 5.2.5")
}

fn overrides() -> AwsOverrides {
    AwsOverrides {
        endpoint_url: Some(moto()),
        static_credentials: true,
        max_attempts: Some(1),
        attempt_timeout: None,
    }
}

async fn put_secret(name: &str, value: &str) {
    let config = aws::load_config(&overrides()).await;
    let client = aws_sdk_secretsmanager::Client::new(&config);
    client
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .expect("moto CreateSecret");
}

fn unique(tag: &str) -> String {
    format!(
        "aurora-failover-bot/{tag}-{}-{}",
        std::process::id(),
        jiff::Timestamp::now().as_nanosecond()
    )
}

/// The test config without Slack secrets in the file, using `secret_id` instead.
fn settings(api_url: &str, store: &std::path::Path, secret_id: &str) -> Settings {
    let toml = config_toml(api_url, store, &Options::default())
        .replace(&format!("signing_secret = \"{SIGNING_SECRET}\"\n"), "")
        .replace(
            &format!("bot_token = \"{BOT_TOKEN}\"\n"),
            &format!("secret_id = \"{secret_id}\"\nsecret_region = \"us-east-1\"\n"),
        );
    Settings::from_toml(&toml).unwrap()
}

fn deps(env: &'static [(&'static str, &'static str)]) -> Deps {
    Deps {
        aws: overrides(),
        clock: Arc::new(SystemClock),
        env: Box::new(move |k| env.iter().find(|(name, _)| *name == k).map(|(_, v)| (*v).to_owned())),
        aws_credentials: None,
    }
}

#[tokio::test]
async fn the_bot_uses_the_signing_secret_and_bot_token_from_secrets_manager() {
    let id = unique("slack");
    put_secret(
        &id,
        r#"{"signing_secret": "signing-from-secrets-manager", "bot_token": "xoxb-from-secrets-manager"}"#,
    )
    .await;
    let slack = SlackStandIn::start(&Secret::new("xoxb-from-secrets-manager"))
        .await
        .unwrap();
    slack.set_group("S0ONCALL", &[DAVE]);
    let dir = temp_dir("secrets");
    let app = Application::build(settings(&slack.api_url(), &dir.join("bot.db"), &id), deps(&[]))
        .await
        .expect("the bot starts with its secrets from Secrets Manager");
    let base = format!("http://127.0.0.1:{}", app.port());
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(app.run_until_stopped(shutdown.clone()));

    let now = jiff::Timestamp::now().as_second();
    let right = SlackSender::new(&base, &Secret::new("signing-from-secrets-manager"));
    let wrong = SlackSender::new(&base, &Secret::new(SIGNING_SECRET));
    let url = slack.response_url();
    assert_eq!(wrong.command(DAVE, CHANNEL, "help", &url, now).await.status, 401);
    assert_eq!(right.command(DAVE, CHANNEL, "help", &url, now).await.status, 200);
    // DAVE is a requester through a user group: checking that calls Slack with the bot token, which the
    // stand-in accepts only if it is the one from the secret.
    let answer = right.command(DAVE, CHANNEL, "failover orders", &url, now).await;
    assert!(answer.text().starts_with("Request #1 is recorded"), "{}", answer.text());
    let lookups = slack.delivered("usergroups.users.list");
    assert!(!lookups.is_empty(), "the group was looked up with the secret's token");

    shutdown.cancel();
    let _ = server.await;
    slack.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_file_and_the_environment_come_before_the_secret() {
    let id = unique("partial");
    // The secret has only the bot token; the signing secret comes from the environment.
    put_secret(&id, r#"{"bot_token": "xoxb-from-secrets-manager"}"#).await;
    let config = aws::load_config(&overrides()).await;
    let s = settings("http://127.0.0.1:9/api", std::path::Path::new("unused.db"), &id);
    let env = deps(&[("SLACK_SIGNING_SECRET", "signing-from-env")]).env;
    let secrets = aurora_failover_bot::startup::resolve_secrets(&s, &config, env.as_ref())
        .await
        .unwrap();
    assert_eq!(secrets.signing_secret.expose(), "signing-from-env");
    assert_eq!(secrets.bot_token.expose(), "xoxb-from-secrets-manager");
    // Nothing anywhere for the signing secret: start-up names the key.
    let none = deps(&[]).env;
    let err = aurora_failover_bot::startup::resolve_secrets(&s, &config, none.as_ref())
        .await
        .err()
        .expect("no signing secret")
        .to_string();
    assert!(err.contains("slack.signing_secret"), "{err}");
}

#[tokio::test]
async fn a_missing_or_malformed_secret_stops_start_up_with_the_key_and_never_the_value() {
    let dir = temp_dir("badsecret");
    let missing = unique("missing");
    let err = Application::build(
        settings("http://127.0.0.1:9/api", &dir.join("a.db"), &missing),
        deps(&[]),
    )
    .await
    .err()
    .expect("a missing secret stops start-up")
    .to_string();
    assert!(err.contains("slack.secret_id") && err.contains(&missing), "{err}");
    assert!(err.contains("ResourceNotFoundException"), "{err}");

    let bad = unique("notjson");
    put_secret(&bad, "signing=super-secret-value").await;
    let err = Application::build(settings("http://127.0.0.1:9/api", &dir.join("b.db"), &bad), deps(&[]))
        .await
        .err()
        .expect("a malformed secret stops start-up")
        .to_string();
    assert!(err.contains("slack.secret_id") && err.contains("is not JSON"), "{err}");
    assert!(!err.contains("super-secret-value"), "the value leaked: {err}");
    let _ = std::fs::remove_dir_all(&dir);
}
