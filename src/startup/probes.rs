//! The readiness probes: background tasks that check, now and then, what `/readyz` reports and no
//! request would otherwise notice: the store answers (a read and an empty write), the AWS
//! configuration has a Region and its credentials provider yields credentials, and Slack accepts the
//! bot token. Each reports its problem to `Health` under its own name and clears it when the check
//! passes again. `/readyz` itself only reads `Health`: a flood of probes from outside costs nothing.

use crate::health::{self, Health};
use crate::slack::client::{SendError, SlackApi};
use crate::store::Store;
use aws_credential_types::provider::ProvideCredentials;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// How often the store is probed, and how long one probe may take.
pub const STORE_EVERY: Duration = Duration::from_secs(10);
pub const STORE_TIMEOUT: Duration = Duration::from_secs(3);
/// How often the AWS configuration is checked while it is fine (a credentials provider such as
/// AssumeRole or the instance metadata service is called each time, so not often), and while it is
/// not (so that a fix shows soon).
pub const AWS_EVERY: Duration = Duration::from_secs(300);
pub const AWS_RETRY_EVERY: Duration = Duration::from_secs(10);
/// How long the credentials provider may take.
pub const AWS_TIMEOUT: Duration = Duration::from_secs(10);
/// How often `auth.test` checks the bot token when nothing else calls Slack.
pub const TOKEN_EVERY: Duration = Duration::from_secs(60);

/// Sleeps `pause`; `false` when `stop` came first.
async fn pause(stop: &CancellationToken, pause: Duration) -> bool {
    tokio::select! {
        () = stop.cancelled() => false,
        () = tokio::time::sleep(pause) => true,
    }
}

/// One store probe: the store's identity (a read) and a delete of nothing (a write: it needs the
/// write lock, which another process holding the database would keep from it), within
/// [`STORE_TIMEOUT`]. Errors say what failed, without the store's data.
pub async fn store_problem(store: &dyn Store) -> Option<String> {
    let probe = async {
        store.store_id().await?;
        store.forget_requests_before(jiff::Timestamp::UNIX_EPOCH, 1).await
    };
    match tokio::time::timeout(STORE_TIMEOUT, probe).await {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(format!(
            "the store cannot be read or written ({e}): check store.path, its disk and that no other program holds it"
        )),
        Err(_) => Some(format!(
            "the store did not answer a read and a write within {} s (is the disk stalled, or another program \
             holding the database's write lock?)",
            STORE_TIMEOUT.as_secs()
        )),
    }
}

/// Probes the store every [`STORE_EVERY`] until `stop`.
pub async fn watch_store(store: Arc<dyn Store>, health: Arc<Health>, stop: CancellationToken) {
    loop {
        match store_problem(store.as_ref()).await {
            Some(problem) => {
                if health.report(health::STORE, problem.clone()) {
                    tracing::error!(%problem, "the store is not usable");
                }
            }
            None => {
                if health.clear(health::STORE) {
                    info!("the store answers again");
                }
            }
        }
        if !pause(&stop, STORE_EVERY).await {
            return;
        }
    }
}

/// What is wrong with the AWS configuration, if anything: no Region, no credentials provider, or a
/// provider that yields no credentials within [`AWS_TIMEOUT`] (or yields expired ones). No AWS call is
/// made beyond what the provider itself does; the text never holds a credential.
pub async fn aws_problem(config: &aws_config::SdkConfig) -> Option<String> {
    if config.region().is_none() {
        return Some("no AWS Region is configured: set AWS_REGION (or a profile's region)".to_owned());
    }
    let Some(provider) = config.credentials_provider() else {
        return Some("no AWS credentials provider is configured".to_owned());
    };
    match tokio::time::timeout(AWS_TIMEOUT, provider.provide_credentials()).await {
        Err(_) => Some(format!(
            "the AWS credentials provider gave no credentials within {} s",
            AWS_TIMEOUT.as_secs()
        )),
        Ok(Err(e)) => Some(format!(
            "the AWS credentials provider gives no credentials: {}. Check the role, AWS_PROFILE or the \
             environment the bot runs with",
            aws_smithy_types::error::display::DisplayErrorContext(&e)
        )),
        Ok(Ok(creds)) if creds.expiry().is_some_and(|at| at <= std::time::SystemTime::now()) => {
            Some("the AWS credentials provider gives expired credentials".to_owned())
        }
        Ok(Ok(_)) => None,
    }
}

/// Checks the AWS configuration at once, then every [`AWS_EVERY`] (every [`AWS_RETRY_EVERY`] while it
/// fails), until `stop`.
pub async fn watch_aws(config: aws_config::SdkConfig, health: Arc<Health>, stop: CancellationToken) {
    loop {
        let next = match aws_problem(&config).await {
            Some(problem) => {
                if health.report(health::AWS_CONFIGURATION, problem.clone()) {
                    tracing::error!(%problem, "the AWS configuration is not usable");
                }
                AWS_RETRY_EVERY
            }
            None => {
                if health.clear(health::AWS_CONFIGURATION) {
                    info!("the AWS configuration resolves (a Region and credentials)");
                }
                AWS_EVERY
            }
        };
        if !pause(&stop, next).await {
            return;
        }
    }
}

/// Calls `auth.test` every [`TOKEN_EVERY`] until `stop`, so that a token revoked while the bot is idle
/// shows on `/readyz` (the client reports and clears [`health::SLACK_TOKEN`] on every call). A refusal
/// also wakes `refused` (the secret refresh, when the token comes from Secrets Manager: a rotated
/// token may already be there).
pub async fn watch_token(api: Arc<SlackApi>, refused: Option<Arc<Notify>>, stop: CancellationToken) {
    while pause(&stop, TOKEN_EVERY).await {
        match api.auth_test().await {
            Err(SendError::Auth(_)) => {
                if let Some(refused) = &refused {
                    refused.notify_one();
                }
            }
            Err(e) => warn!(error = %e, "auth.test (the token probe) failed"),
            Ok(_) => {}
        }
    }
}
