//! moto's DynamoDB for the tests on the DynamoDB store: `scripts/test` starts moto and exports
//! `MOTO_ENDPOINT`; each test makes its own table (through the code of `create-table`).

use aurora_failover_bot::store::DynamoDbStore;

/// moto's URL. A missing `MOTO_ENDPOINT` is a failure, not a skip.
pub fn moto() -> String {
    std::env::var("MOTO_ENDPOINT")
        .expect("MOTO_ENDPOINT is not set: run the tests with scripts/test, which installs and starts moto 5.2.5")
}

/// A DynamoDB client of moto, in us-east-1.
pub fn moto_client() -> aws_sdk_dynamodb::Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version_latest()
        .endpoint_url(moto())
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "AKID", "secret", None, None, "it",
        ))
        .http_client(aurora_failover_bot::aws::http_client())
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

/// A table name no other test uses.
pub fn table_name(tag: &str) -> String {
    format!("afb-it-{tag}-{}-{}", std::process::id(), fastrand::u32(..))
}

/// Creates table `table` in moto, as `create-table` does.
pub async fn create_table(table: &str) {
    DynamoDbStore::create_table(&moto_client(), table)
        .await
        .unwrap_or_else(|e| panic!("cannot create table {table} in moto: {e}"));
}

/// A store on moto's table `table` (another connection to what the bots use).
pub fn store(table: &str) -> DynamoDbStore {
    DynamoDbStore::on(moto_client(), table)
}
