//! AWS adapters: the engine's `Aurora`, `Provisioning` and `Dns` ports over aws-sdk-rds and aws-sdk-route53, and the
//! Slack secrets from Secrets Manager. This is the only module that sees AWS SDK types.
//!
//! Configuration is the standard AWS SDK chain (credentials, `AWS_ENDPOINT_URL` and the per-service
//! endpoint variables), so the same binary runs against AWS, the emulator or moto. RDS calls go to the
//! Region that owns the resource; one client per Region is built on first use and kept.

pub mod cloudwatch;
pub mod counted;
pub mod iam;
pub mod provision;
pub mod rds;
pub mod route53;
pub mod secrets;

use crate::ports::{AwsError, AwsErrorKind};
use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use std::time::Duration;

/// Overrides for running against an emulator (the demo, tests). Production uses none.
#[derive(Debug, Clone, Default)]
pub struct AwsOverrides {
    /// Endpoint for every service, e.g. the emulator's URL.
    pub endpoint_url: Option<String>,
    /// For an emulator: static credentials (any value works) and the fixed Region [`EMULATOR_REGION`],
    /// so that neither provider chain runs: nothing is looked up in the environment, the profile files
    /// or the instance metadata service (which, off EC2, logs a warning after a timeout).
    pub static_credentials: bool,
    /// Retry attempts per call (the SDK's standard mode); default 3.
    pub max_attempts: Option<u32>,
    /// How long one attempt of a call may take; default 10 s.
    pub attempt_timeout: Option<Duration>,
}

/// The Region an emulator is reached in (and the default when nothing configures one): the one where
/// Route 53's control plane lives.
pub const EMULATOR_REGION: &str = "us-east-1";

/// The HTTP client for the SDK: rustls with ring (one TLS stack in the whole binary).
pub fn http_client() -> aws_sdk_rds::config::SharedHttpClient {
    use aws_smithy_http_client::tls;
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring))
        .build_https()
}

/// Loads the shared SDK configuration: the standard chain (environment, profile files, container and
/// instance metadata), plus any overrides; with `static_credentials`, credentials and Region are given
/// and their chains do not run. A Region nothing configures is `us-east-1`.
pub async fn load_config(overrides: &AwsOverrides) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client())
        .retry_config(RetryConfig::standard().with_max_attempts(overrides.max_attempts.unwrap_or(3)))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(overrides.attempt_timeout.unwrap_or(Duration::from_secs(10)))
                .operation_timeout(Duration::from_secs(30))
                .build(),
        );
    if let Some(url) = &overrides.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    if overrides.static_credentials {
        loader = loader.credentials_provider(aws_sdk_rds::config::Credentials::new(
            "AKIDEMULATOR",
            "emulator-secret",
            None,
            None,
            "aurora-failover-bot-overrides",
        ));
        loader = loader.region(aws_config::Region::from_static(EMULATOR_REGION));
    }
    let config = loader.load().await;
    // Route 53 and the first reads need a Region even when none is configured.
    if config.region().is_none() {
        return config
            .into_builder()
            .region(aws_config::Region::from_static(EMULATOR_REGION))
            .build();
    }
    config
}

/// Error codes that mean "slow down" (whatever the HTTP status they come with: 400, 429 or 503).
const THROTTLING: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "SlowDown",
    "PriorRequestNotComplete",
];

/// Error codes that mean "the bot's principal may not do this".
const ACCESS_DENIED: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "UnauthorizedAccess",
    "NotAuthorized",
    "AuthorizationError",
];

/// Error codes that mean "AWS had a problem; try again".
const UNAVAILABLE: &[&str] = &[
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "InternalFailure",
    "InternalError",
    "InternalServiceError",
    "RequestTimeout",
    "RequestTimeoutException",
];

/// Classifies an SDK error for the engine, keeping AWS's code and message for people and naming the
/// call (`action`, e.g. `rds:RemoveFromGlobalCluster`) where that is what people need to act:
/// throttling says throttling, a refused permission names the action, an unreachable service says so.
/// The error also names the call and its code ([`crate::ports::FailedCall`]) for the metrics.
pub fn classify<E>(
    e: &aws_sdk_rds::error::SdkError<E, aws_sdk_rds::config::http::HttpResponse>,
    action: &'static str,
) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    use aws_sdk_rds::error::SdkError;
    let code = match e {
        SdkError::ServiceError(se) => se.err().code().unwrap_or("Unknown"),
        SdkError::TimeoutError(_) => "timeout",
        SdkError::DispatchFailure(_) => "unreachable",
        SdkError::ResponseError(_) => "bad_response",
        _ => "other",
    };
    classify_kind(e, action).from_call(action, code)
}

fn classify_kind<E>(
    e: &aws_sdk_rds::error::SdkError<E, aws_sdk_rds::config::http::HttpResponse>,
    action: &str,
) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    use aws_sdk_rds::error::SdkError;
    match e {
        SdkError::ServiceError(se) => {
            let err = se.err();
            let code = err.code().unwrap_or("Unknown");
            let said = format!("{code}: {}", err.message().unwrap_or("no message"));
            // The code first (a throttling code comes with 400, 429 or 503), then the status: a 5xx or
            // 429 is worth retrying whatever its code (or lack of one).
            let status = se.raw().status().as_u16();
            if THROTTLING.contains(&code) || status == 429 {
                AwsError::new(AwsErrorKind::Throttled, format!("AWS is throttling {action} ({said})"))
            } else if ACCESS_DENIED.contains(&code) {
                AwsError::new(
                    AwsErrorKind::AccessDenied,
                    format!("the bot's IAM principal is not allowed to call {action} ({said})"),
                )
            } else if status >= 500 || UNAVAILABLE.contains(&code) {
                AwsError::new(
                    AwsErrorKind::Unavailable,
                    format!("{action} failed on AWS's side, HTTP {status} ({said})"),
                )
            } else if is_not_found(code) {
                AwsError::new(AwsErrorKind::NotFound, said)
            } else if is_invalid_state(code) {
                AwsError::new(AwsErrorKind::InvalidState, said)
            } else {
                AwsError::new(AwsErrorKind::Other, said)
            }
        }
        SdkError::TimeoutError(_) => AwsError::new(
            AwsErrorKind::Unavailable,
            format!("AWS cannot be reached: {action} got no answer in time"),
        ),
        SdkError::DispatchFailure(_) => AwsError::new(
            AwsErrorKind::Unavailable,
            format!("AWS cannot be reached for {action}: {}", describe_chain(e)),
        ),
        SdkError::ResponseError(_) => AwsError::new(
            AwsErrorKind::Unavailable,
            format!("AWS gave no usable answer to {action}: {}", describe_chain(e)),
        ),
        other => AwsError::new(AwsErrorKind::Other, format!("{action}: {}", describe_chain(other))),
    }
}

/// "No such resource": `…NotFoundFault` (`DBClusterNotFoundFault`), `…NotFound`
/// (`DBInstanceNotFound`), `NoSuch…`, `ResourceNotFoundException`.
fn is_not_found(code: &str) -> bool {
    code.ends_with("NotFoundFault")
        || code.ends_with("NotFound")
        || code.starts_with("NoSuch")
        || code == "ResourceNotFoundException"
}

/// "Not in this state": `Invalid…StateFault`, `Invalid…State` (`InvalidDBInstanceState`), and a
/// create whose identifier is taken (`GlobalClusterAlreadyExistsFault`, `DBClusterAlreadyExistsFault`,
/// `DBInstanceAlreadyExists`).
fn is_invalid_state(code: &str) -> bool {
    (code.starts_with("Invalid") && (code.ends_with("StateFault") || code.ends_with("State")))
        || code.contains("AlreadyExists")
}

fn describe_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.contains(&text) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_of_a_taken_identifier_are_invalid_state_and_unknown_resources_not_found() {
        for code in [
            "GlobalClusterAlreadyExistsFault",
            "DBClusterAlreadyExistsFault",
            "DBInstanceAlreadyExists",
            "InvalidDBClusterStateFault",
            "InvalidGlobalClusterStateFault",
            "InvalidDBInstanceState",
        ] {
            assert!(is_invalid_state(code) && !is_not_found(code), "{code}");
        }
        for code in [
            "DBClusterNotFoundFault",
            "GlobalClusterNotFoundFault",
            "DBInstanceNotFound",
            "NoSuchHostedZone",
        ] {
            assert!(is_not_found(code) && !is_invalid_state(code), "{code}");
        }
        for code in [
            "InvalidParameterCombination",
            "InvalidParameterValue",
            "KMSKeyNotAccessibleFault",
        ] {
            assert!(!is_not_found(code) && !is_invalid_state(code), "{code}");
        }
    }
}
