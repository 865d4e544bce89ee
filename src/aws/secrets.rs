//! The Slack secrets from AWS Secrets Manager: a JSON secret `{"signing_secret": "...",
//! "bot_token": "...", "app_token": "..."}` (`app_token`, the Socket Mode app-level token, only in
//! `slack.mode = "socket"`). Errors name the secret and the reason, never a value.

use super::classify;
use crate::types::Secret;
use serde::Deserialize;

#[derive(Deserialize)]
struct SlackSecretJson {
    signing_secret: Option<String>,
    bot_token: Option<String>,
    app_token: Option<String>,
}

/// The secrets found in the secret (either may be absent from it).
#[derive(Debug, Default)]
pub struct SlackSecrets {
    pub signing_secret: Option<Secret>,
    pub bot_token: Option<Secret>,
    /// The app-level token (`xapp-`) Socket Mode connects with.
    pub app_token: Option<Secret>,
}

/// The Region of a Secrets Manager ARN, if `secret_id` is one.
pub fn region_of_arn(secret_id: &str) -> Option<String> {
    secret_id
        .strip_prefix("arn:")
        .and_then(|rest| rest.split(':').nth(2))
        .map(str::to_owned)
        .filter(|r| !r.is_empty())
}

/// Reads the secret once. `region` defaults to the ARN's, then the SDK's default. Errors name the
/// secret and the reason (`classify`'s wording for AWS errors), never a value.
pub async fn load(
    config: &aws_config::SdkConfig,
    secret_id: &str,
    region: Option<&str>,
) -> Result<SlackSecrets, String> {
    SecretReader::new(config, secret_id, region).read().await
}

/// Reads one secret again and again (the secret refresh), on one client. Each [`SecretReader::read`]
/// is one `secretsmanager:GetSecretValue` call (AWS Secrets Manager API reference: GetSecretValue,
/// `SecretString`), with the SDK configuration's retries and timeouts.
#[derive(Debug, Clone)]
pub struct SecretReader {
    client: aws_sdk_secretsmanager::Client,
    secret_id: String,
}

impl SecretReader {
    /// A reader of `secret_id` (a name or an ARN) in `region`, else the ARN's, else the SDK's.
    pub fn new(config: &aws_config::SdkConfig, secret_id: &str, region: Option<&str>) -> SecretReader {
        let mut builder = aws_sdk_secretsmanager::config::Builder::from(config);
        if let Some(r) = region.map(str::to_owned).or_else(|| region_of_arn(secret_id)) {
            builder = builder.region(aws_sdk_secretsmanager::config::Region::new(r));
        }
        SecretReader {
            client: aws_sdk_secretsmanager::Client::from_conf(builder.build()),
            secret_id: secret_id.to_owned(),
        }
    }

    /// The secret's current value, parsed: the JSON object `{"signing_secret": "...", "bot_token":
    /// "...", "app_token": "..."}` (an empty or absent field is `None`).
    pub async fn read(&self) -> Result<SlackSecrets, String> {
        let secret_id = &self.secret_id;
        let out = self
            .client
            .get_secret_value()
            .secret_id(secret_id)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "cannot read secret {secret_id}: {}",
                    classify(&e, "secretsmanager:GetSecretValue")
                )
            })?;
        let text = out
            .secret_string()
            .ok_or_else(|| format!("secret {secret_id} has no string value (binary secrets are not supported)"))?;
        let parsed: SlackSecretJson = serde_json::from_str(text).map_err(|e| {
            format!(
                "secret {secret_id} is not JSON of the form {{\"signing_secret\": \"...\", \"bot_token\": \"...\"}} (line {}, column {})",
                e.line(),
                e.column()
            )
        })?;
        Ok(SlackSecrets {
            signing_secret: parsed.signing_secret.filter(|s| !s.is_empty()).map(Secret::new),
            bot_token: parsed.bot_token.filter(|s| !s.is_empty()).map(Secret::new),
            app_token: parsed.app_token.filter(|s| !s.is_empty()).map(Secret::new),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_region_comes_from_an_arn() {
        assert_eq!(
            region_of_arn("arn:aws:secretsmanager:eu-west-1:123456789012:secret:bot-AbCdEf").as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(region_of_arn("aurora-failover-bot/slack"), None);
    }
}
