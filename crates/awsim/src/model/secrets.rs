//! Secrets Manager secrets, as GetSecretValue shows them: regional (a secret is found only through its
//! own Region), each with a string value and one version labelled `AWSCURRENT`.
//!
//! Invariants: at most one secret per (Region, name); a secret's ARN
//! (`arn:aws:secretsmanager:{region}:{account}:secret:{name}-{6 characters}`) is stable for a given
//! account, Region and name, as is each version's id; a new value is a new version.

use super::error::ApiError;
use crate::scenario::Scenario;
use serde::Serialize;

/// The staging label of a secret's current version.
pub const AWSCURRENT: &str = "AWSCURRENT";

/// One secret and its current version.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Secret {
    pub region: String,
    pub name: String,
    /// `arn:aws:secretsmanager:{region}:{account}:secret:{name}-{6 stable characters}`.
    pub arn: String,
    /// `SecretString` of the current version.
    #[serde(skip)]
    pub value: String,
    /// The current version's id (a UUID), stable for a given ARN and version number.
    pub version_id: String,
    /// How many versions the secret has had (1 for a new secret).
    pub version: u64,
    /// When the current version was made (`CreatedDate`).
    pub created: jiff::Timestamp,
}

/// Every secret of every Region.
#[derive(Debug, Default)]
pub struct Secrets {
    account: String,
    pub secrets: Vec<Secret>,
}

/// Secrets Manager's rule for names: 1 to 512 characters among ASCII letters, digits and `/_+=.@-`.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 512
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_+=.@-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a secret name (1 to 512 letters, digits or /_+=.@-)"
        ))
    }
}

/// What GetSecretValue answers when there is no such secret (or version), in AWS's words.
fn not_found(message: &str) -> ApiError {
    ApiError::new(400, "ResourceNotFoundException", message)
}

/// A version id in UUID form, derived from the secret's ARN and the version number.
fn version_id(arn: &str, version: u64) -> String {
    let h = |salt: &str| {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in salt.bytes().chain(arn.bytes()).chain(version.to_le_bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h
    };
    let (a, b) = (h("a"), h("b"));
    format!(
        "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        b >> 52,
        b & 0xffff_ffff_ffff
    )
}

impl Secrets {
    /// Takes the scenario's `[[secrets]]` (validated).
    pub fn load(&mut self, s: &Scenario, now: jiff::Timestamp) {
        self.account = s.account_id.clone();
        self.secrets.clear();
        for spec in &s.secrets {
            self.put(&spec.region, &spec.name, &spec.value, now);
        }
    }

    /// Creates the secret `name` of `region` with `value`, or gives an existing one a new current
    /// version with that value. The name must satisfy [`check_name`].
    pub fn put(&mut self, region: &str, name: &str, value: &str, now: jiff::Timestamp) {
        if let Some(s) = self.secrets.iter_mut().find(|s| s.region == region && s.name == name) {
            s.version += 1;
            s.version_id = version_id(&s.arn, s.version);
            s.value = value.to_owned();
            s.created = now;
            return;
        }
        let suffix = super::rds::stable_suffix(&format!("{}/{region}/{name}", self.account), 6);
        let arn = format!(
            "arn:aws:secretsmanager:{region}:{}:secret:{name}-{suffix}",
            self.account
        );
        self.secrets.push(Secret {
            region: region.to_owned(),
            name: name.to_owned(),
            version_id: version_id(&arn, 1),
            arn,
            value: value.to_owned(),
            version: 1,
            created: now,
        });
    }

    /// The secret `secret_id` names in `region`: by name, by full ARN, or by ARN without the six
    /// characters AWS appends (a "partial ARN"), as GetSecretValue's `SecretId` accepts them. An ARN of
    /// another Region finds nothing, as it would through this Region's endpoint.
    pub fn find(&self, region: &str, secret_id: &str) -> Option<&Secret> {
        self.secrets.iter().filter(|s| s.region == region).find(|s| {
            if secret_id.starts_with("arn:") {
                s.arn == secret_id || s.arn.get(..s.arn.len() - 7) == Some(secret_id)
            } else {
                s.name == secret_id
            }
        })
    }

    /// GetSecretValue: the secret and its current version, optionally checked against `VersionId` or
    /// `VersionStage` (only the current version exists). `ResourceNotFoundException` otherwise.
    pub fn get_value(
        &self,
        region: &str,
        secret_id: &str,
        version_id: Option<&str>,
        version_stage: Option<&str>,
    ) -> Result<&Secret, ApiError> {
        let secret = self
            .find(region, secret_id)
            .ok_or_else(|| not_found("Secrets Manager can't find the specified secret."))?;
        if let Some(v) = version_id
            && v != secret.version_id
        {
            return Err(not_found(&format!(
                "Secrets Manager can't find the specified secret value for VersionId: {v}"
            )));
        }
        if let Some(stage) = version_stage
            && stage != AWSCURRENT
        {
            return Err(not_found(&format!(
                "Secrets Manager can't find the specified secret value for staging label: {stage}"
            )));
        }
        Ok(secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets() -> Secrets {
        let mut s = Secrets {
            account: "123456789012".into(),
            secrets: Vec::new(),
        };
        s.put("us-east-1", "probe/db-creds", "{}", jiff::Timestamp::UNIX_EPOCH);
        s
    }

    #[test]
    fn a_secret_is_found_by_name_full_arn_and_partial_arn_in_its_region_only() {
        let s = secrets();
        let arn = s.secrets[0].arn.clone();
        assert!(arn.starts_with("arn:aws:secretsmanager:us-east-1:123456789012:secret:probe/db-creds-"));
        assert_eq!(
            arn.len(),
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:probe/db-creds-".len() + 6
        );
        assert!(s.find("us-east-1", "probe/db-creds").is_some());
        assert!(s.find("us-east-1", &arn).is_some());
        assert!(s.find("us-east-1", &arn[..arn.len() - 7]).is_some());
        assert!(s.find("us-east-1", &arn[..arn.len() - 2]).is_none());
        assert!(s.find("us-west-2", "probe/db-creds").is_none());
        assert!(s.find("us-west-2", &arn).is_none());
    }

    #[test]
    fn a_new_value_is_a_new_version_with_a_new_id() {
        let mut s = secrets();
        let first = s.secrets[0].clone();
        s.put("us-east-1", "probe/db-creds", "{\"a\":1}", jiff::Timestamp::UNIX_EPOCH);
        let second = &s.secrets[0];
        assert_eq!(second.arn, first.arn);
        assert_ne!(second.version_id, first.version_id);
        assert_eq!(second.value, "{\"a\":1}");
        let e = s
            .get_value("us-east-1", "probe/db-creds", Some(&first.version_id), None)
            .unwrap_err();
        assert_eq!(e.code, "ResourceNotFoundException");
    }

    #[test]
    fn secret_names_follow_secrets_managers_rule() {
        assert!(check_name("prod/aurora/probe_user+1@x=y.z").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("has space").is_err());
        assert!(check_name(&"x".repeat(513)).is_err());
    }
}
