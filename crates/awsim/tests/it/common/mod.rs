//! Shared test harness: starts the emulator on port 0 and builds real AWS SDK clients pointed at it.

use aws_config::BehaviorVersion;
use aws_sdk_rds::config::retry::RetryConfig;
use aws_sdk_rds::config::{Credentials, Region};
use awsim::{Awsim, Scenario, Timings};
use std::future::Future;
use std::time::Duration;

/// An HTTP client for the SDK: rustls with ring, which also speaks plain http to the emulator.
pub fn http_client() -> aws_sdk_rds::config::SharedHttpClient {
    use aws_smithy_http_client::tls;
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring))
        .build_https()
}

/// SDK configuration for one Region, pointed at `endpoint`, with dummy credentials and `retry`.
pub async fn sdk_config(endpoint: &str, region: &str, retry: RetryConfig) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(
            "AKIDAWSIMTEST",
            "not-a-secret",
            None,
            None,
            "awsim-tests",
        ))
        .http_client(http_client())
        .retry_config(retry)
        .load()
        .await
}

/// Timings for tests that watch transitions: each transitional state lasts long enough to be seen by
/// a poller on a busy machine, and the whole thing still takes about a second.
pub fn watchable_timings() -> Timings {
    Timings {
        detach_ms: 800,
        pending_ms: 500,
        failover_ms: 800,
        switchover_ms: 800,
        rejoin_ms: 800,
        dns_propagation_ms: 800,
        create_global_ms: 800,
        create_cluster_ms: 800,
        create_instance_ms: 800,
    }
}

pub struct TestSim {
    pub sim: Awsim,
}

impl TestSim {
    pub async fn start(scenario: Scenario) -> TestSim {
        let sim = awsim::start("127.0.0.1:0".parse().unwrap(), scenario)
            .await
            .expect("emulator starts");
        TestSim { sim }
    }

    /// The demo scenario with the given timings.
    pub async fn example(timings: Timings) -> TestSim {
        let mut s = Scenario::two_region_example();
        s.timings = timings;
        TestSim::start(s).await
    }

    pub fn admin(&self) -> &awsim::Admin {
        self.sim.admin()
    }

    /// An RDS client for `region` that does not retry, so every answer is seen as it is.
    pub async fn rds(&self, region: &str) -> aws_sdk_rds::Client {
        aws_sdk_rds::Client::new(&sdk_config(self.sim.url(), region, RetryConfig::disabled()).await)
    }

    /// A CloudWatch client for `region` (it speaks RPC v2 CBOR) that does not retry.
    pub async fn cloudwatch(&self, region: &str) -> aws_sdk_cloudwatch::Client {
        aws_sdk_cloudwatch::Client::new(&sdk_config(self.sim.url(), region, RetryConfig::disabled()).await)
    }

    /// An STS client for `region` that does not retry.
    pub async fn sts(&self, region: &str) -> aws_sdk_sts::Client {
        aws_sdk_sts::Client::new(&sdk_config(self.sim.url(), region, RetryConfig::disabled()).await)
    }

    /// An IAM client configured for `region` that does not retry. IAM is global: with AWS's endpoint
    /// the SDK signs it for us-east-1; with a custom endpoint, for the client's Region.
    pub async fn iam(&self, region: &str) -> aws_sdk_iam::Client {
        aws_sdk_iam::Client::new(&sdk_config(self.sim.url(), region, RetryConfig::disabled()).await)
    }

    /// A Route 53 client (Route 53 is signed for us-east-1) that does not retry.
    pub async fn route53(&self) -> aws_sdk_route53::Client {
        aws_sdk_route53::Client::new(&sdk_config(self.sim.url(), "us-east-1", RetryConfig::disabled()).await)
    }
}

/// Polls `probe` every 20 ms until it returns `Some`, or panics after `timeout` saying what it waited for.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Records the distinct successive values `probe` returns until `done` holds for one of them.
pub async fn watch<T, F, Fut>(what: &str, timeout: Duration, mut probe: F, done: impl Fn(&T) -> bool) -> Vec<T>
where
    T: PartialEq + Clone + std::fmt::Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = T>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut seen: Vec<T> = Vec::new();
    loop {
        let v = probe().await;
        if seen.last() != Some(&v) {
            seen.push(v.clone());
        }
        if done(&v) {
            return seen;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}; saw {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
