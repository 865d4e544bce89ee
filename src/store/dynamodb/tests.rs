//! The DynamoDB store's own tests: its client against moto (for the shared suite, `suite.rs`), and
//! against a tiny stub of DynamoDB's JSON 1.0 protocol for what moto never answers (a replicated
//! write conflict, a DescribeTable of a multi-Region table).

use super::call::Table;
use super::item::{self, s};
use super::{DynamoDbStore, keys};
use aws_sdk_dynamodb::config::{Credentials, Region};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// A client of the DynamoDB at `endpoint`, with static credentials; `attempts`: the SDK's retries.
fn client(endpoint: &str, attempts: u32) -> aws_sdk_dynamodb::Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version_latest()
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("AKIDTEST", "test-secret", None, None, "tests"))
        .http_client(
            aws_smithy_http_client::Builder::new()
                .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                    aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
                ))
                .build_https(),
        )
        .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::standard().with_max_attempts(attempts))
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

/// A store on a fresh table in moto (started by `scripts/test`, which exports `MOTO_ENDPOINT`),
/// created through the same code as `create-table`.
pub async fn moto_store(tag: &str) -> DynamoDbStore {
    let endpoint = std::env::var("MOTO_ENDPOINT")
        .expect("MOTO_ENDPOINT is not set: run the tests with scripts/test, which installs and starts moto 5.2.5");
    let client = client(&one_at_a_time(endpoint).await, 3);
    let name = format!("afb-{tag}-{}", super::call::token());
    let name: String = name.chars().take(255).collect();
    DynamoDbStore::create_table(&client, &name)
        .await
        .unwrap_or_else(|e| panic!("cannot create table {name} in moto: {e}"));
    let (store, warning) = DynamoDbStore::open(client, &name, false).await.unwrap();
    assert_eq!(warning, None, "moto's table is in one Region");
    store
}

/// A proxy to `upstream` that forwards one request at a time. moto 5.2.5 serves requests on threads
/// and its DynamoDB takes no lock between a condition's check and the write, so two concurrent
/// conditional writes on one item can both apply there (seen: two winners of one decision); DynamoDB
/// decides each item's writes one after the other. Serialising the calls gives the suite that
/// per-item atomicity, so that it checks the store's conditions, not moto's threads.
async fn one_at_a_time(upstream: String) -> String {
    let http = reqwest::Client::new();
    let turn = Arc::new(tokio::sync::Mutex::new(()));
    let app = axum::Router::new().fallback(
        move |method: axum::http::Method, headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let (http, turn, upstream) = (http.clone(), turn.clone(), upstream.clone());
            async move {
                let _turn = turn.lock().await;
                let mut call = http.request(method, &upstream).body(body);
                for (name, value) in &headers {
                    if name != axum::http::header::HOST && name != axum::http::header::CONTENT_LENGTH {
                        call = call.header(name, value);
                    }
                }
                let answer = call.send().await.expect("moto answers");
                let mut out = axum::response::Response::builder().status(answer.status().as_u16());
                for (name, value) in answer.headers() {
                    if name != axum::http::header::CONTENT_LENGTH && name != axum::http::header::TRANSFER_ENCODING {
                        out = out.header(name, value);
                    }
                }
                let body = answer.bytes().await.expect("moto's body");
                out.body(axum::body::Body::from(body)).unwrap()
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// What the stub answers to one call: a status and a JSON body, or the last PutItem's item.
#[derive(Debug, Clone)]
enum Answer {
    Json(u16, Value),
    LastPut,
    /// ConditionalCheckFailedException returning an item that carries this very update's token.
    FailedWithOwnToken,
}

fn fault(kind: &str) -> Answer {
    Answer::Json(
        400,
        json!({"__type": format!("com.amazonaws.dynamodb.v20120810#{kind}"), "message": kind}),
    )
}

/// The stub's script (per operation, in order) and its log of calls.
#[derive(Default)]
struct Stub {
    script: Mutex<Vec<(String, VecDeque<Answer>)>>,
    calls: Mutex<Vec<(String, Value)>>,
}

impl Stub {
    fn answer(&self, op: &str, body: &Value) -> (u16, Value) {
        self.calls.lock().unwrap().push((op.to_owned(), body.clone()));
        let mut script = self.script.lock().unwrap();
        let next = script
            .iter_mut()
            .find(|(o, _)| o == op)
            .and_then(|(_, answers)| answers.pop_front());
        match next {
            Some(Answer::Json(status, v)) => (status, v),
            Some(Answer::LastPut) => {
                let calls = self.calls.lock().unwrap();
                let put = calls
                    .iter()
                    .rev()
                    .find(|(o, _)| o == "PutItem")
                    .expect("a PutItem before");
                (200, json!({"Item": put.1["Item"].clone()}))
            }
            Some(Answer::FailedWithOwnToken) => {
                let token = body["ExpressionAttributeValues"][":w"].clone();
                let kind = "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException";
                (400, json!({"__type": kind, "message": "failed", "Item": {"w": token}}))
            }
            None => panic!("the stub has no answer for {op}"),
        }
    }

    fn ops(&self) -> Vec<String> {
        self.calls.lock().unwrap().iter().map(|(o, _)| o.clone()).collect()
    }
}

/// Serves `script` on a loopback port (DynamoDB's JSON 1.0 protocol: POST /, `X-Amz-Target:
/// DynamoDB_20120810.<Operation>`); returns its URL and the stub.
async fn stub(script: &[(&str, Vec<Answer>)]) -> (String, Arc<Stub>) {
    let stub = Arc::new(Stub {
        script: Mutex::new(
            script
                .iter()
                .map(|(op, a)| ((*op).to_owned(), a.iter().cloned().collect()))
                .collect(),
        ),
        ..Stub::default()
    });
    let served = stub.clone();
    let app = axum::Router::new().fallback(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
        let stub = served.clone();
        async move {
            let target = headers
                .get("x-amz-target")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let op = target.rsplit('.').next().unwrap_or_default().to_owned();
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let (status, answer) = stub.answer(&op, &body);
            axum::response::Response::builder()
                .status(status)
                .header("content-type", "application/x-amz-json-1.0")
                .body(axum::body::Body::from(answer.to_string()))
                .unwrap()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, stub)
}

fn table_on(url: &str) -> Table {
    Table {
        client: client(url, 1),
        name: "afb".into(),
    }
}

fn an_item() -> item::Item {
    let mut it = item::keyed(&keys::signature("v0=abc"));
    it.insert("at".into(), item::n(1));
    it
}

#[tokio::test]
async fn a_replicated_write_conflict_whose_write_applied_is_a_win_not_a_loss() {
    let (url, stub) = stub(&[
        ("PutItem", vec![fault("ReplicatedWriteConflictException")]),
        ("GetItem", vec![Answer::LastPut]),
    ])
    .await;
    assert!(table_on(&url).put_new(an_item()).await.unwrap());
    assert_eq!(stub.ops(), ["PutItem", "GetItem"], "read back, not sent again");
    let get = &stub.calls.lock().unwrap()[1].1;
    assert_eq!(get["ConsistentRead"], json!(true));
}

#[tokio::test]
async fn a_replicated_write_conflict_whose_write_did_not_apply_is_sent_again() {
    let (url, stub) = stub(&[
        (
            "PutItem",
            vec![fault("ReplicatedWriteConflictException"), Answer::Json(200, json!({}))],
        ),
        ("GetItem", vec![Answer::Json(200, json!({}))]),
    ])
    .await;
    assert!(table_on(&url).put_new(an_item()).await.unwrap());
    assert_eq!(stub.ops(), ["PutItem", "GetItem", "PutItem"]);
}

#[tokio::test]
async fn after_a_conflict_a_failed_condition_is_lost_and_never_an_error() {
    let other = json!({"pk": {"S": "SIG#v0=abc"}, "sk": {"S": "SIG"}, "w": {"S": "someone-else"}});
    let (url, stub) = stub(&[
        (
            "PutItem",
            vec![
                fault("ReplicatedWriteConflictException"),
                fault("ConditionalCheckFailedException"),
            ],
        ),
        ("GetItem", vec![Answer::Json(200, json!({"Item": other}))]),
    ])
    .await;
    assert!(!table_on(&url).put_new(an_item()).await.unwrap());
    assert_eq!(stub.ops(), ["PutItem", "GetItem", "PutItem"]);
}

#[tokio::test]
async fn a_failed_condition_that_returns_our_own_token_is_a_win() {
    // An SDK retry of a write that had applied (after a timeout): the item carries this call's token.
    let (url, stub) = stub(&[("UpdateItem", vec![Answer::FailedWithOwnToken])]).await;
    let change = super::call::Change::existing().set("x", s("y"));
    let key = keys::run(crate::store::RunId::new(1));
    assert!(table_on(&url).update(&key, change).await.unwrap().is_some());
    assert_eq!(stub.ops(), ["UpdateItem"]);
    let sent = &stub.calls.lock().unwrap()[0].1;
    assert_eq!(sent["ReturnValuesOnConditionCheckFailure"], json!("ALL_OLD"));
}

#[tokio::test]
async fn a_call_that_fails_otherwise_is_an_error_naming_the_call_and_the_table() {
    let (url, _stub) = stub(&[("UpdateItem", vec![Answer::Json(500, json!({}))])]).await;
    let change = super::call::Change::existing().set("x", s("y"));
    let e = table_on(&url)
        .update(&keys::run(crate::store::RunId::new(1)), change)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("UpdateItem on table afb"), "{e}");
}

/// A DescribeTable answer for a table with the store's keys and indexes.
fn described(consistency: Option<&str>, replicas: &[&str]) -> Value {
    let schema =
        |h: &str, r: &str| json!([{"AttributeName": h, "KeyType": "HASH"}, {"AttributeName": r, "KeyType": "RANGE"}]);
    let indexes: Vec<Value> = keys::INDEXES
        .iter()
        .map(|i| json!({"IndexName": i.name, "KeySchema": schema(i.pk, i.sk), "Projection": {"ProjectionType": "ALL"}}))
        .collect();
    let mut table = json!({
        "TableName": "afb",
        "TableStatus": "ACTIVE",
        "KeySchema": schema("pk", "sk"),
        "GlobalSecondaryIndexes": indexes,
        "Replicas": replicas.iter().map(|r| json!({"RegionName": r})).collect::<Vec<_>>(),
    });
    if let Some(c) = consistency {
        table["MultiRegionConsistency"] = json!(c);
    }
    json!({"Table": table})
}

#[tokio::test]
async fn the_bot_refuses_an_eventually_consistent_global_table_unless_told_it_runs_alone() {
    let eventual = Answer::Json(200, described(Some("EVENTUAL"), &["us-east-1", "us-west-2"]));
    let (url, _stub) = stub(&[("DescribeTable", vec![eventual.clone(), eventual])]).await;
    let e = DynamoDbStore::open(client(&url, 1), "afb", false).await.unwrap_err();
    let why = e.to_string();
    assert!(
        why.contains("config key store.table") && why.contains("last writer wins"),
        "{why}"
    );
    let (_, warning) = DynamoDbStore::open(client(&url, 1), "afb", true).await.unwrap();
    assert!(warning.is_some_and(|w| w.contains("store.single_instance = true")));
}

#[tokio::test]
async fn the_bot_accepts_a_strongly_consistent_global_table() {
    let strong = Answer::Json(200, described(Some("STRONG"), &["us-east-1", "us-east-2"]));
    let (url, _stub) = stub(&[("DescribeTable", vec![strong])]).await;
    let (_, warning) = DynamoDbStore::open(client(&url, 1), "afb", false).await.unwrap();
    assert_eq!(warning, None);
}
