//! The bot on the DynamoDB store (`[store] backend = "dynamodb"`), on moto's DynamoDB (started by
//! `scripts/test`, which exports `MOTO_ENDPOINT`) and the AWS emulator for everything else.

use crate::common::dynamodb::{moto, moto_client, table_name};
use crate::common::*;
use aurora_failover_bot::settings::Settings;
use aurora_failover_bot::startup::{Application, Deps};
use aurora_failover_bot::store::{DynamoDbStore, RunState};
use std::time::Duration;

fn dynamodb_options(table: &str) -> Options {
    Options {
        store_toml: format!("backend = \"dynamodb\"\ntable = \"{table}\"\n"),
        env: vec![("AWS_ENDPOINT_URL_DYNAMODB", moto())],
        ..Options::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_requested_and_approved_in_slack_runs_to_the_end_on_a_dynamodb_store() {
    let table = table_name("run");
    DynamoDbStore::create_table(&moto_client(), &table).await.unwrap();
    let bot = TestBot::start_with(dynamodb_options(&table)).await;
    let id = bot.request().await;
    bot.request_message(id).await;
    bot.click(BOB, id, true).await;
    let run = bot.finished_run(id, Duration::from_secs(30)).await;
    assert_eq!(run.state, RunState::Succeeded);
    bot.slack_settled().await;
    let (w, _) = bot.endpoints("us-west-2", "orders-west");
    assert_eq!(bot.writer_cname(), w);
    assert_eq!(bot.sim.admin().calls_to("RemoveFromGlobalCluster").len(), 1);
    // What the bot recorded is in the table: another store on it reads the same run and journal.
    let other = DynamoDbStore::on(moto_client(), &table);
    let store: &dyn aurora_failover_bot::store::Store = &other;
    assert_eq!(store.run(run.id).await.unwrap().unwrap().state, RunState::Succeeded);
    assert!(!store.journal_of(run.id).await.unwrap().is_empty());
    bot.assert_wording();
}

#[tokio::test]
async fn the_bot_does_not_start_on_a_table_that_does_not_exist_and_names_the_key() {
    let o = dynamodb_options(&table_name("missing"));
    let slack = standin::SlackStandIn::start(&standin::Secret::new(BOT_TOKEN))
        .await
        .unwrap();
    let dir = temp_dir("ddb-missing");
    let settings = Settings::from_toml(&config_toml(&slack.api_url(), &dir.join("bot.db"), &o)).unwrap();
    let deps = Deps {
        aws: aurora_failover_bot::aws::AwsOverrides {
            endpoint_url: Some("http://127.0.0.1:9".into()),
            static_credentials: true,
            max_attempts: Some(1),
            attempt_timeout: None,
        },
        env: Box::new(|k| (k == "AWS_ENDPOINT_URL_DYNAMODB").then(moto)),
        ..Deps::default()
    };
    let Err(e) = Application::build(settings, deps).await else {
        panic!("the bot started on a table that does not exist")
    };
    let why = format!("{e:#}");
    assert!(
        why.contains("config key store.table") && why.contains("does not exist"),
        "{why}"
    );
    assert!(why.contains("create-table"), "{why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_table_refuses_a_name_dynamodb_would_refuse_before_calling_it() {
    for bad in ["", "a b", "x"] {
        let (code, _, err) = run_binary(&moto(), &["create-table", "--table", bad], &[]).await;
        assert_eq!(code, Some(2), "{bad:?}: {err}");
        assert!(
            err.contains("create-table: --table:") && err.contains("is not a DynamoDB table name"),
            "{bad:?}: {err}"
        );
    }
}
