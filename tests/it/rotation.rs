//! Secret rotation through the real bot: the Slack secrets come from a Secrets Manager secret
//! (`slack.secret_id`), served here by a small fake of `GetSecretValue` that counts the calls it
//! receives (moto keeps no count). The secret is changed in the fake, as an operator changes it in
//! Secrets Manager, and the bot must pick it up: early when a request's signature matches no secret
//! (rate-limited: forged requests cannot drive calls), on its schedule otherwise; the previous signing
//! secret stays valid for the grace period only; a new bot token replaces the old one.

use crate::common;

use aurora_failover_bot::aws::AwsOverrides;
use aurora_failover_bot::settings::Settings;
use aurora_failover_bot::startup::{Application, Deps};
use common::*;
use standin::{Answer, Secret, SlackSender, SlackStandIn};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const SECRET_ID: &str = "aurora-failover-bot/slack";
const OLD_SIGNING: &str = "the-old-signing-secret";
const NEW_SIGNING: &str = "the-new-signing-secret";
const NEW_TOKEN: &str = "xoxb-the-rotated-token";

/// A fake of Secrets Manager's `GetSecretValue` (JSON 1.1 protocol, `X-Amz-Target:
/// secretsmanager.GetSecretValue`) serving one secret, counting its reads.
#[derive(Clone)]
struct FakeSecrets {
    value: Arc<Mutex<String>>,
    reads: Arc<AtomicUsize>,
}

impl FakeSecrets {
    async fn start(signing: &str, token: &str) -> (FakeSecrets, String) {
        let fake = FakeSecrets {
            value: Arc::default(),
            reads: Arc::default(),
        };
        fake.set(signing, token);
        let app = axum::Router::new()
            .route("/", axum::routing::post(get_secret_value))
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (fake, url)
    }

    /// Changes the secret's value, as `PutSecretValue` would.
    fn set(&self, signing: &str, token: &str) {
        *self.value.lock().unwrap() = serde_json::json!({"signing_secret": signing, "bot_token": token}).to_string();
    }

    fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }
}

async fn get_secret_value(
    axum::extract::State(fake): axum::extract::State<FakeSecrets>,
    headers: axum::http::HeaderMap,
    body: String,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok());
    let asked: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    if target != Some("secretsmanager.GetSecretValue") || asked["SecretId"] != SECRET_ID {
        let error = serde_json::json!({"__type": "ResourceNotFoundException", "message": "no such secret"});
        return (axum::http::StatusCode::BAD_REQUEST, error.to_string()).into_response();
    }
    fake.reads.fetch_add(1, Ordering::SeqCst);
    let answer = serde_json::json!({
        "ARN": format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{SECRET_ID}-AbCdEf"),
        "Name": SECRET_ID,
        "VersionId": format!("v{}", fake.reads()),
        "SecretString": *fake.value.lock().unwrap(),
    });
    ([("content-type", "application/x-amz-json-1.1")], answer.to_string()).into_response()
}

/// The bot with its Slack secrets from the fake.
struct RotatingBot {
    port: u16,
    slack: SlackStandIn,
    fake: FakeSecrets,
    dir: std::path::PathBuf,
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl RotatingBot {
    /// `env`: secrets the environment gives (those are not re-read).
    async fn start(refresh_secs: u64, grace_secs: u64, env: Vec<(&'static str, String)>) -> RotatingBot {
        let (fake, aws_url) = FakeSecrets::start(OLD_SIGNING, BOT_TOKEN).await;
        let slack = SlackStandIn::start(&Secret::new(BOT_TOKEN)).await.unwrap();
        slack.set_group("S0ONCALL", &[DAVE]);
        let dir = temp_dir("rotation");
        let options = Options {
            slack_toml: format!(
                "secret_id = \"{SECRET_ID}\"\nsecret_refresh_secs = {refresh_secs}\nprevious_secret_grace_secs = {grace_secs}"
            ),
            ..Options::default()
        };
        let toml = config_toml(&slack.api_url(), &dir.join("bot.db"), &options)
            .replace(&format!("signing_secret = \"{SIGNING_SECRET}\"\n"), "")
            .replace(&format!("bot_token = \"{BOT_TOKEN}\"\n"), "");
        let deps = Deps {
            aws: AwsOverrides {
                endpoint_url: Some(aws_url),
                static_credentials: true,
                max_attempts: Some(1),
                attempt_timeout: None,
            },
            env: Box::new(move |k| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())),
            ..Deps::default()
        };
        let app = Application::build(Settings::from_toml(&toml).unwrap(), deps)
            .await
            .expect("the bot starts with its secrets from the fake Secrets Manager");
        let port = app.port();
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(app.run_until_stopped(shutdown.clone()));
        wait_ready(port).await;
        RotatingBot {
            port,
            slack,
            fake,
            dir,
            shutdown,
            server,
        }
    }

    /// `/aurora help` signed with `secret`.
    async fn help(&self, secret: &str) -> Answer {
        let sender = SlackSender::new(&format!("http://127.0.0.1:{}", self.port), &Secret::new(secret));
        let now = jiff::Timestamp::now().as_second();
        sender
            .command(ALICE, CHANNEL, "help", &self.slack.response_url(), now)
            .await
    }

    /// Sends `help` signed with `secret` until it is accepted (within `within`).
    async fn accepted_within(&self, secret: &str, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        while self.help(secret).await.status != 200 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "a request signed with {secret} is still refused"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.server.await;
        self.slack.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn a_request_signed_with_a_rotated_signing_secret_is_accepted_after_one_early_read() {
    let bot = RotatingBot::start(3_600, 60, vec![]).await;
    assert_eq!(bot.fake.reads(), 1, "read once at start");
    assert_eq!(bot.help(OLD_SIGNING).await.status, 200);
    // The operator rotates the signing secret in Slack and in Secrets Manager. The first request Slack
    // signs with the new one is refused (the bot has not read it yet): its failure wakes the early read.
    bot.fake.set(NEW_SIGNING, BOT_TOKEN);
    assert_eq!(bot.help(NEW_SIGNING).await.status, 401);
    // Slack's next requests, signed with the new secret, are accepted once that read is done.
    bot.accepted_within(NEW_SIGNING, Duration::from_secs(10)).await;
    assert_eq!(bot.fake.reads(), 2, "one early read, not one per refused request");
    bot.stop().await;
}

#[tokio::test]
async fn the_previous_signing_secret_works_within_the_grace_period_and_not_after() {
    let bot = RotatingBot::start(3_600, 3, vec![]).await;
    bot.fake.set(NEW_SIGNING, BOT_TOKEN);
    // The first request with the new secret is refused and wakes the read; then the new one works.
    assert_eq!(bot.help(NEW_SIGNING).await.status, 401);
    bot.accepted_within(NEW_SIGNING, Duration::from_secs(10)).await;
    let rotated = tokio::time::Instant::now();
    // Requests Slack signed just before the change still pass, for 3 s.
    assert_eq!(bot.help(OLD_SIGNING).await.status, 200, "within the grace period");
    // The grace period is counted in whole seconds of the bot's clock: 4 s is past it.
    tokio::time::sleep_until(rotated + Duration::from_secs(4)).await;
    assert_eq!(bot.help(OLD_SIGNING).await.status, 401, "after the grace period");
    assert_eq!(bot.help(NEW_SIGNING).await.status, 200);
    bot.stop().await;
}

#[tokio::test]
async fn a_burst_of_forged_requests_causes_at_most_one_extra_read_of_the_secret() {
    let bot = RotatingBot::start(3_600, 60, vec![]).await;
    assert_eq!(bot.fake.reads(), 1);
    for _ in 0..2 {
        let burst = futures::future::join_all((0..40).map(|_| bot.help("a-forged-secret"))).await;
        assert!(burst.iter().all(|a| a.status == 401), "a forged request was accepted");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // The first refusal woke one early read; every later one falls within the minute after it.
    assert_eq!(bot.fake.reads(), 2, "forged requests drove reads of the secret");
    assert_eq!(bot.help(OLD_SIGNING).await.status, 200, "the real secret still works");
    bot.stop().await;
}

#[tokio::test]
async fn a_signing_secret_from_the_environment_is_never_re_read() {
    let env = vec![("SLACK_SIGNING_SECRET", "signing-from-the-environment".to_owned())];
    let bot = RotatingBot::start(3_600, 60, env).await;
    let burst = futures::future::join_all((0..10).map(|_| bot.help("a-forged-secret"))).await;
    assert!(burst.iter().all(|a| a.status == 401));
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Only the bot token came from the secret: a bad signature is no reason to read it again.
    assert_eq!(bot.fake.reads(), 1);
    assert_eq!(bot.help("signing-from-the-environment").await.status, 200);
    bot.stop().await;
}

#[tokio::test]
async fn a_rotated_bot_token_replaces_the_old_one_at_the_next_scheduled_read() {
    let bot = RotatingBot::start(5, 60, vec![]).await;
    // The operator gives the app a new token (Slack refuses the old one from now on) and puts it in
    // Secrets Manager.
    let before = bot.slack.calls().len();
    bot.slack.accept_token(NEW_TOKEN);
    bot.fake.set(OLD_SIGNING, NEW_TOKEN);
    // Within the 5 s schedule the bot reads it, swaps it in and checks it with auth.test.
    let checked = bot
        .slack
        .wait_for(Duration::from_secs(15), |calls| {
            calls[before.min(calls.len())..]
                .iter()
                .any(|c| c.method == "auth.test" && c.body.get("refused").is_none())
                .then_some(())
        })
        .await;
    assert!(checked.is_some(), "{:?}", bot.slack.calls());
    assert!(bot.fake.reads() >= 2);
    wait_ready(bot.port).await;
    // DAVE is a requester through a user group: the lookup uses the new token, which Slack accepts.
    let sender = SlackSender::new(&format!("http://127.0.0.1:{}", bot.port), &Secret::new(OLD_SIGNING));
    let now = jiff::Timestamp::now().as_second();
    let answer = sender
        .command(DAVE, CHANNEL, "failover orders", &bot.slack.response_url(), now)
        .await;
    assert!(answer.text().starts_with("Request #1 is recorded"), "{}", answer.text());
    bot.stop().await;
}
