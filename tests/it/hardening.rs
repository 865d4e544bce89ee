//! What the bot does with requests and settings that are not quite right: Slack's certificate check,
//! signed requests from another workspace, enterprise or app, a bot that cannot learn its workspace,
//! secrets with stray whitespace, and a Slack configuration that no retry can fix.

use crate::common;
use aurora_failover_bot::store::RequestId;

use aurora_failover_bot::settings::Settings;
use aurora_failover_bot::startup::{Application, Deps};
use common::*;
use standin::{STANDIN_APP, STANDIN_TEAM, Secret, SlackSender, Workspace};
use std::time::Duration;

async fn readyz(bot: &TestBot) -> (u16, String) {
    let resp = reqwest::get(format!("http://127.0.0.1:{}/readyz", bot.port))
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// Calls the bot made to Slack's Web API other than `auth.test`.
fn web_api_calls(bot: &TestBot) -> usize {
    bot.slack
        .calls()
        .iter()
        .filter(|c| c.method != "auth.test" && c.method != "response")
        .count()
}

#[tokio::test]
async fn slacks_certificate_check_gets_an_empty_200_and_nothing_else_does_without_a_signature() {
    let bot = TestBot::start().await;
    let answer = bot
        .sender
        .post_raw(
            "/slack/commands",
            &[],
            b"ssl_check=1&token=legacy-verification-token".to_vec(),
        )
        .await;
    assert_eq!((answer.status, answer.body.as_str()), (200, ""));
    // Anything more than the check itself still needs a signature.
    for body in [
        "ssl_check=1&token=t&command=%2Faurora&text=status",
        "ssl_check=0&token=t",
        "ssl_check=1&user_id=U0ALICE",
    ] {
        let answer = bot
            .sender
            .post_raw("/slack/commands", &[], body.as_bytes().to_vec())
            .await;
        assert_eq!(answer.status, 401, "{body}: {answer:?}");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(bot.sim.admin().calls().is_empty(), "AWS was called");
    assert!(
        bot.store.audit_log().await.unwrap().is_empty(),
        "something was recorded"
    );
    assert_eq!(web_api_calls(&bot), 0);
}

#[tokio::test]
async fn signed_requests_from_another_workspace_enterprise_or_app_change_nothing() {
    let bot = TestBot::start_with(Options {
        slack_toml: format!("app_id = \"{STANDIN_APP}\""),
        ..Options::default()
    })
    .await;
    let id = bot.request().await;
    let ts = bot.request_message(id).await.ts.unwrap();
    let calls_before = bot.sim.admin().calls().len();
    let audit_before = bot.store.audit_log().await.unwrap().len();
    let ours = Workspace::default();
    let foreign = [
        Workspace {
            team_id: "T0OTHER".into(),
            ..ours.clone()
        },
        Workspace {
            app_id: "A0OTHER".into(),
            ..ours.clone()
        },
        Workspace {
            enterprise_id: Some("E0OTHER".into()),
            ..ours.clone()
        },
        Workspace {
            enterprise_install: true,
            ..ours.clone()
        },
    ];
    for w in foreign {
        let sender = SlackSender::new(&format!("http://127.0.0.1:{}", bot.port), &Secret::new(SIGNING_SECRET))
            .from_workspace(w.clone());
        let url = bot.slack.response_url();
        let answer = sender
            .command(BOB, CHANNEL, "failover orders --mode detach", &url, bot.now())
            .await;
        assert_eq!(answer.status, 200, "{w:?}");
        assert!(
            answer.text().contains("does not serve this workspace"),
            "{w:?}: {answer:?}"
        );
        // A correctly signed Approve click from elsewhere, by an approver, approves nothing.
        let answer = sender
            .click(BOB, CHANNEL, &ts, "approve", &id.to_string(), &url, bot.now())
            .await;
        assert_eq!(answer.status, 200);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        bot.request_state(id).await.state,
        aurora_failover_bot::store::RequestState::Pending
    );
    assert!(
        bot.store.run_of_request(id.into()).await.unwrap().is_none(),
        "a run was started"
    );
    assert_eq!(bot.sim.admin().calls().len(), calls_before, "AWS was called");
    assert!(bot.sim.admin().calls_to("RemoveFromGlobalCluster").is_empty());
    assert_eq!(
        bot.store.audit_log().await.unwrap().len(),
        audit_before,
        "an attempt was acted on"
    );
    // The bot's own workspace and app are still served.
    bot.click(BOB, id, true).await;
    bot.finished_run(id, WAIT).await;
}

#[tokio::test]
async fn until_auth_test_answers_the_bot_is_alive_but_refuses_slack_requests() {
    let bot = TestBot::start_with(Options {
        slack_setup: Some(Box::new(|s| s.fail_auth_test(Some("fatal_error")))),
        wait_ready: false,
        ..Options::default()
    })
    .await;
    let health = reqwest::get(format!("http://127.0.0.1:{}/healthz", bot.port))
        .await
        .unwrap();
    assert_eq!(health.status(), 200, "alive");
    let (status, body) = readyz(&bot).await;
    assert_eq!(status, 503);
    assert!(body.contains("slack workspace"), "{body}");
    let (answer, _) = bot.command(ALICE, "failover orders --mode detach").await;
    assert!(
        answer.text().contains("cannot yet tell which Slack workspace"),
        "{answer:?}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        bot.store.request(RequestId::new(1)).await.unwrap().is_none(),
        "a request was recorded"
    );
    assert!(bot.sim.admin().calls().is_empty(), "AWS was called");
    // Slack answers again: the bot learns its workspace and serves it.
    bot.slack.fail_auth_test(None);
    wait_ready(bot.port).await;
    bot.request().await;
}

#[tokio::test]
async fn slack_secrets_with_surrounding_whitespace_are_trimmed_and_work() {
    let bot = TestBot::start_with(Options {
        env: vec![
            ("SLACK_SIGNING_SECRET", format!("{SIGNING_SECRET}\n")),
            ("SLACK_BOT_TOKEN", format!("  {BOT_TOKEN}\r\n")),
        ],
        ..Options::default()
    })
    .await;
    // A correctly signed command is accepted (the trimmed signing secret verifies it) and the request
    // message is posted (the trimmed token is accepted).
    let id = bot.request().await;
    assert!(bot.request_state(id).await.message.is_some());
}

#[tokio::test]
async fn a_malformed_secret_stops_start_up_naming_the_key_and_the_source_but_not_the_value() {
    let slack = standin::SlackStandIn::start(&Secret::new(BOT_TOKEN)).await.unwrap();
    let cases: &[(&str, &str, &str)] = &[
        ("SLACK_BOT_TOKEN", "xoxb-12345\nxoxb-67890", "control character"),
        ("SLACK_BOT_TOKEN", "xapp-1-A0-123-abc", "app-level token"),
        ("SLACK_BOT_TOKEN", "xoxb-123 456", "a space"),
        ("SLACK_SIGNING_SECRET", " \n", "empty"),
    ];
    for (var, value, why) in cases {
        let dir = temp_dir("malformed");
        let options = Options {
            env: vec![(*var, (*value).to_owned())],
            ..Options::default()
        };
        let settings = Settings::from_toml(&config_toml(&slack.api_url(), &dir.join("bot.db"), &options)).unwrap();
        let env = options.env.clone();
        let deps = Deps {
            env: Box::new(move |k| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())),
            ..Deps::default()
        };
        let e = match Application::build(settings, deps).await {
            Ok(_) => panic!("{var}={value:?} was accepted"),
            Err(e) => format!("{e:#}"),
        };
        let key = if *var == "SLACK_BOT_TOKEN" {
            "slack.bot_token"
        } else {
            "slack.signing_secret"
        };
        assert!(e.contains(key) && e.contains(var) && e.contains(why), "{e}");
        assert!(!e.contains("12345") && !e.contains("abc"), "the value leaked: {e}");
        let _ = std::fs::remove_dir_all(dir);
    }
    slack.stop();
}

#[tokio::test]
async fn a_refused_token_keeps_the_queue_probes_slowly_and_delivers_once_fixed() {
    let bot = TestBot::start_with(Options {
        slack_toml: format!("team_id = \"{STANDIN_TEAM}\""),
        ..Options::default()
    })
    .await;
    let id = bot.request().await;
    let ts = bot.request_message(id).await.ts.unwrap();
    // Slack now refuses the token (revoked, rotated); a Deny queues an update and a reply. (An
    // approval request itself is not kept: its requester is told at once, see `delivery`.)
    bot.slack.accept_token("xoxb-the-new-token");
    bot.click(BOB, id, false).await;
    // The messages cannot be delivered: the bot says why, where an operator looks.
    let deadline = tokio::time::Instant::now() + WAIT;
    let body = loop {
        let (status, body) = readyz(&bot).await;
        if status == 503 {
            break body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "readyz never said what is wrong"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        body.contains("invalid_auth") && body.contains("slack.bot_token"),
        "{body}"
    );
    // It does not hammer Slack while the token is refused: one try, then a probe after 5 s.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let tries = bot
        .slack
        .calls()
        .iter()
        .filter(|c| c.method.starts_with("chat.") && c.body.get("refused").is_some())
        .count();
    assert_eq!(tries, 1, "{:?}", bot.slack.calls());
    let queued = bot.store.outbox_all().await.unwrap();
    assert!(queued.iter().any(|i| i.state == "pending"), "the queue was dropped");
    // Fixed (the app reinstalled with this token): the queue goes out at the next probe.
    bot.slack.accept_token(BOT_TOKEN);
    bot.slack_settled().await;
    assert_eq!(bot.updates(&ts).len(), 1, "the Deny's update was delivered");
    wait_ready(bot.port).await;
}

#[tokio::test]
async fn a_missing_scope_is_named_on_readyz() {
    let bot = TestBot::start_with(Options {
        slack_setup: Some(Box::new(|s| s.lack_scope("chat.postMessage", Some("chat:write")))),
        ..Options::default()
    })
    .await;
    let (_, url) = bot.command(ALICE, "failover orders --mode detach").await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, body) = readyz(&bot).await;
        if status == 503 {
            assert!(body.contains("`chat:write` scope"), "{body}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "readyz never named the scope");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The requester is told why the approval request was not posted, and it does not hold the
    // cluster: once the scope is granted, the next request is posted.
    let told = bot
        .answer_containing(&url, "was not posted")
        .await
        .expect("the requester is told");
    assert!(told.contains("`chat:write` scope"), "{told}");
    bot.slack.lack_scope("chat.postMessage", None);
    let again = bot.request().await;
    bot.request_message(again).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_status_commands_while_aws_does_not_answer_shares_one_read_and_is_bounded() {
    let bot = std::sync::Arc::new(
        TestBot::start_with(Options {
            attempt_timeout: Some(Duration::from_secs(3)),
            ..Options::default()
        })
        .await,
    );
    bot.sim
        .admin()
        .inject(awsim::FaultSpec {
            action: "DescribeGlobalClusters".into(),
            region: None,
            error: None,
            delay_ms: Some(60_000),
            delay_response_ms: None,
            count: None,
        })
        .unwrap();
    let started = std::time::Instant::now();
    let answers = futures::future::join_all((0..200).map(|_| {
        let bot = bot.clone();
        async move { bot.command(ALICE, "status").await.0 }
    }))
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the burst was not acknowledged promptly"
    );
    assert!(answers.iter().all(|a| a.status == 200), "every command answered");
    let busy = answers.iter().filter(|a| a.text().contains("busy")).count();
    assert!(
        busy >= 200 - aurora_failover_bot::status::MAX_PENDING,
        "{busy} told busy: at most {} are prepared at once",
        aurora_failover_bot::status::MAX_PENDING
    );
    // One read of the cluster in flight, however many asked: the hedged topology read goes to each
    // configured Region at most once per attempt.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let reads = bot.sim.admin().calls_to("DescribeGlobalClusters").len();
    assert!(reads <= 4, "{reads} DescribeGlobalClusters calls for one burst");
    // AWS answers again: status works (after the reads in flight give up).
    bot.sim.admin().clear_faults();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (answer, url) = bot.command(ALICE, "status").await;
        if !answer.text().contains("busy") {
            let text = bot.answer_at(&url).await;
            if text.contains("orders") && !text.contains("cannot read the global cluster") {
                break;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "status never came back");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn typed_text_shown_back_cannot_break_formatting() {
    let bot = TestBot::start().await;
    let (answer, _) = bot.command(ALICE, "status ord`ers<!channel>&").await;
    assert!(
        answer.text().contains("Unknown cluster `ordˋers&lt;!channel&gt;&amp;`"),
        "{answer:?}"
    );
    let (answer, _) = bot.command(ALICE, "failover orders --to `<@U0BOB>`").await;
    assert!(
        answer.text().contains("`ˋ&lt;@U0BOB&gt;ˋ` is not a Region"),
        "{answer:?}"
    );
    let (answer, _) = bot.command(ALICE, "launch` *now*").await;
    assert!(answer.text().contains("unknown command `launchˋ`"), "{answer:?}");
    // As Slack sends typed `&`, `<` and `>`: escaped once, and shown back escaped once.
    let (answer, _) = bot.command(ALICE, "failover a&amp;b --to &lt;b&gt;").await;
    assert!(answer.text().contains("Unknown cluster `a&amp;b`"), "{answer:?}");
}

#[tokio::test]
async fn a_bot_not_in_the_incident_channel_tells_the_requester_to_invite_it() {
    let bot = TestBot::start_with(Options {
        slack_setup: Some(Box::new(|s| s.not_in_channel(CHANNEL))),
        ..Options::default()
    })
    .await;
    let (answer, url) = bot.command(ALICE, "failover orders --mode detach").await;
    assert!(answer.text().starts_with("Request #1"), "{answer:?}");
    let told = bot
        .answer_containing(&url, "was not posted")
        .await
        .expect("the requester is told");
    assert!(
        told.contains("not_in_channel") && told.contains("/invite @aurora-failover-bot"),
        "{told}"
    );
    assert_eq!(
        bot.request_state(1).await.state,
        aurora_failover_bot::store::RequestState::Rejected,
        "the request does not hold the cluster"
    );
    bot.slack_settled().await;
    let answers: Vec<String> = bot
        .slack
        .responses_to(&url)
        .iter()
        .map(|r| r.text().to_owned())
        .collect();
    assert!(
        !answers.iter().any(|t| t.contains("is posted")),
        "nothing says it was posted: {answers:#?}"
    );
}

#[tokio::test]
async fn an_approve_click_from_another_channel_is_ignored() {
    let bot = TestBot::start().await;
    let id = bot.request().await;
    let ts = bot.request_message(id).await.ts.unwrap();
    let url = bot.slack.response_url();
    // The request message's ts, but a message in another channel (Slack's ts are per channel).
    let answer = bot
        .sender
        .click(BOB, "C0OTHER", &ts, "approve", &id.to_string(), &url, bot.now())
        .await;
    assert_eq!(answer.status, 200);
    let told = bot.answer_at(&url).await;
    assert!(
        told.contains("Nothing was done: this button is not on request #1's own approval message"),
        "{told}"
    );
    assert_eq!(
        bot.request_state(id).await.state,
        aurora_failover_bot::store::RequestState::Pending,
        "not approved"
    );
    // The same click on the request's own message approves it.
    bot.click(BOB, id, true).await;
    assert_eq!(
        bot.finished_run(id, Duration::from_secs(30)).await.state,
        aurora_failover_bot::store::RunState::Succeeded
    );
}

/// Polls `/readyz` until it answers `status` (within `within`); returns the body.
async fn readyz_becomes(port: u16, status: u16, within: Duration) -> String {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let resp = reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await.unwrap();
        let got = resp.status().as_u16();
        let body = resp.text().await.unwrap();
        if got == status {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "readyz still answers {got}, not {status}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_store_another_program_holds_makes_readyz_503_until_it_lets_go() {
    let bot = TestBot::start().await;
    // Another program opens the bot's database and keeps its write lock: the store's probe (a read
    // and a write that changes nothing, every 10 s) cannot write within its 3 s.
    let other = rusqlite::Connection::open(bot.dir.join("bot.db")).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let body = readyz_becomes(bot.port, 503, Duration::from_secs(30)).await;
    assert!(
        body.contains("store: the store did not answer a read and a write"),
        "{body}"
    );
    // It lets go: the next probe clears the problem.
    other.execute_batch("COMMIT").unwrap();
    drop(other);
    readyz_becomes(bot.port, 200, Duration::from_secs(30)).await;
}

/// AWS credentials a test switches on and off.
#[derive(Debug)]
struct CredentialSwitch(std::sync::Arc<std::sync::atomic::AtomicBool>);

const AWS_SECRET_SHOWN_NOWHERE: &str = "aws-secret-key-never-shown";

impl aws_credential_types::provider::ProvideCredentials for CredentialSwitch {
    fn provide_credentials<'a>(&'a self) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        use aws_credential_types::provider::error::CredentialsError;
        aws_credential_types::provider::future::ProvideCredentials::ready(
            if self.0.load(std::sync::atomic::Ordering::SeqCst) {
                Ok(aws_credential_types::Credentials::new(
                    "AKIDTEST",
                    AWS_SECRET_SHOWN_NOWHERE,
                    None,
                    None,
                    "test switch",
                ))
            } else {
                Err(CredentialsError::not_loaded("the test switched the credentials off"))
            },
        )
    }
}

#[tokio::test]
async fn aws_credentials_that_do_not_resolve_make_readyz_503_until_they_do() {
    let on = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sim = awsim::start("127.0.0.1:0".parse().unwrap(), awsim::Scenario::two_region_example())
        .await
        .unwrap();
    let slack = standin::SlackStandIn::start(&Secret::new(BOT_TOKEN)).await.unwrap();
    let dir = temp_dir("aws-credentials");
    let settings =
        Settings::from_toml(&config_toml(&slack.api_url(), &dir.join("bot.db"), &Options::default())).unwrap();
    let deps = Deps {
        aws: aurora_failover_bot::aws::AwsOverrides {
            endpoint_url: Some(sim.url().to_owned()),
            static_credentials: true,
            max_attempts: Some(1),
            attempt_timeout: None,
        },
        aws_credentials: Some(aws_credential_types::provider::SharedCredentialsProvider::new(
            CredentialSwitch(on.clone()),
        )),
        ..Deps::default()
    };
    let app = Application::build(settings, deps)
        .await
        .expect("the bot starts without AWS credentials");
    let port = app.port();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    let body = readyz_becomes(port, 503, WAIT).await;
    assert!(
        body.contains("aws configuration: the AWS credentials provider gives no credentials")
            && body.contains("switched the credentials off"),
        "{body}"
    );
    // The credentials come (a role attached, say): the probe, every 10 s while it fails, sees them.
    on.store(true, std::sync::atomic::Ordering::SeqCst);
    let body = readyz_becomes(port, 200, Duration::from_secs(30)).await;
    assert!(!body.contains(AWS_SECRET_SHOWN_NOWHERE));
    shutdown.cancel();
    let _ = server.await;
    slack.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_token_revoked_while_the_bot_runs_makes_readyz_503_whichever_call_meets_it() {
    let bot = TestBot::start().await;
    // Slack revokes the bot's token. The first call to meet it is not an outbox delivery: DAVE is a
    // requester through a user group, which the bot looks up (usergroups.users.list).
    bot.slack.accept_token("xoxb-another-token");
    bot.command(DAVE, "failover orders --mode detach").await;
    let body = readyz_becomes(bot.port, 503, WAIT).await;
    assert!(body.contains("slack token: invalid_auth"), "{body}");
    // (No message was queued: the outbox, which reports refusals of its own, was not involved.)
    assert!(bot.store.outbox_all().await.unwrap().is_empty());
    // The token works again (the app reinstalled with it): the next call Slack accepts clears it.
    bot.slack.accept_token(BOT_TOKEN);
    bot.command(DAVE, "failover orders --mode detach").await;
    readyz_becomes(bot.port, 200, Duration::from_secs(30)).await;
}
