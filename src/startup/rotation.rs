//! The secret refresh: the Slack secrets taken from Secrets Manager (`slack.secret_id`) are read again
//! every `slack.secret_refresh_secs`, and early when a request's signature matches no signing secret
//! or Slack refuses the bot token, since either may mean the secret was rotated. Early reads are
//! rate-limited and coalesced: wake-ups are one stored permit (a burst is one wake-up), and two early
//! reads are at least [`EARLY_GAP`] apart, so that forged requests cannot drive calls to Secrets
//! Manager (at most one a minute). Secrets given in the file or the environment are never re-read.
//!
//! A new signing secret replaces the old one, which keeps verifying for `slack.previous_secret_grace_secs`;
//! a new bot token replaces the client's token and is checked with `auth.test`. What fails (the
//! secret cannot be read, a value is malformed or missing) keeps the secrets in use and is reported
//! under [`health::SLACK_SECRETS`]. Nothing here logs or reports a secret's value.

use super::{SIGNING, TOKEN, from_manager};
use crate::aws::secrets::SecretReader;
use crate::health::{self, Health};
use crate::ports::Clock;
use crate::settings::SecretKind;
use crate::slack::client::SlackApi;
use crate::slack::verify::Verifier;
use crate::slack::workspace::Binding;
use crate::types::Secret;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// The shortest time between two early reads.
pub const EARLY_GAP: Duration = Duration::from_secs(60);

/// What the refresh reads and what it updates.
pub struct Refresh {
    pub reader: SecretReader,
    pub verifier: Verifier,
    pub api: Arc<SlackApi>,
    pub binding: Arc<Binding>,
    pub health: Arc<Health>,
    pub clock: Arc<dyn Clock>,
    /// `slack.secret_refresh_secs`.
    pub every: Duration,
    /// `slack.previous_secret_grace_secs`.
    pub grace: Duration,
    /// The signing secret in use, when it came from Secrets Manager (`None`: not rotated here).
    pub signing: Option<Secret>,
    /// The bot token in use, when it came from Secrets Manager (`None`: not rotated here).
    pub token: Option<Secret>,
    /// Woken when Slack refuses the bot token (the token probe).
    pub token_refused: Arc<Notify>,
}

/// Why a read happens now.
enum Trigger {
    Schedule,
    Mismatch,
    TokenRefused,
}

impl Refresh {
    /// Reads the secrets on the schedule and early (see the module doc) until `stop`.
    pub async fn run(mut self, stop: CancellationToken) {
        let mismatches = self.verifier.mismatches();
        let mut next = Instant::now() + self.every;
        let mut last_early: Option<Instant> = None;
        loop {
            let trigger = tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep_until(next) => Trigger::Schedule,
                () = mismatches.notified(), if self.signing.is_some() => Trigger::Mismatch,
                () = self.token_refused.notified(), if self.token.is_some() => Trigger::TokenRefused,
            };
            if !matches!(trigger, Trigger::Schedule) {
                if let Some(at) = last_early {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep_until(at + EARLY_GAP) => {}
                    }
                }
                last_early = Some(Instant::now());
                match trigger {
                    Trigger::Mismatch => {
                        info!("a request's signature matched no signing secret: reading the Slack secrets again")
                    }
                    _ => info!("Slack refuses the bot token: reading the Slack secrets again"),
                }
            }
            self.read_once().await;
            next = Instant::now() + self.every;
        }
    }

    /// One read: rotates what changed, reports what is wrong (the secrets in use stay).
    pub async fn read_once(&mut self) {
        let found = match self.reader.read().await {
            Ok(found) => found,
            Err(e) => {
                let problem = format!("cannot re-read slack.secret_id (the secrets in use stay): {e}");
                if self.health.report(health::SLACK_SECRETS, problem.clone()) {
                    warn!(%problem, "the Slack secrets could not be re-read");
                }
                return;
            }
        };
        let mut problems = Vec::new();
        if self.signing.is_some() {
            match from_manager(SIGNING, SecretKind::SigningSecret, found.signing_secret) {
                Ok(Some(new)) => self.rotate_signing(new),
                Ok(None) => problems.push("the secret no longer has a signing_secret".to_owned()),
                Err(e) => problems.push(e.to_string()),
            }
        }
        if self.token.is_some() {
            match from_manager(TOKEN, SecretKind::BotToken, found.bot_token) {
                Ok(Some(new)) => self.rotate_token(new).await,
                Ok(None) => problems.push("the secret no longer has a bot_token".to_owned()),
                Err(e) => problems.push(e.to_string()),
            }
        }
        if problems.is_empty() {
            if self.health.clear(health::SLACK_SECRETS) {
                info!("the Slack secrets are read again");
            }
        } else {
            let problem = format!("slack.secret_id: {} (the secrets in use stay)", problems.join("; "));
            if self.health.report(health::SLACK_SECRETS, problem.clone()) {
                warn!(%problem, "the Slack secrets read again are not usable");
            }
        }
    }

    fn rotate_signing(&mut self, new: Secret) {
        if self.signing.as_ref() == Some(&new) {
            return;
        }
        let now = self.clock.now().as_second();
        self.verifier.rotate(new.clone(), now, self.grace);
        self.signing = Some(new);
        info!(
            previous_valid_secs = self.grace.as_secs(),
            "signing secret rotated: requests signed with the new one are accepted, and with the previous one for the grace period"
        );
    }

    async fn rotate_token(&mut self, new: Secret) {
        if self.token.as_ref() == Some(&new) {
            return;
        }
        self.api.set_token(&new);
        self.token = Some(new);
        info!("bot token rotated: checking it with auth.test");
        match self.api.auth_test().await {
            Ok(auth) => super::bind(&self.binding, &self.health, &auth),
            Err(e) => warn!(error = %e, "auth.test with the rotated bot token failed"),
        }
    }
}
