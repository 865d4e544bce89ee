//! Slack request verification, done once, on the raw bytes, before anything else looks at a request:
//! HMAC-SHA256 over `v0:{timestamp}:{body}` with the signing secret, compared in constant time with
//! `X-Slack-Signature`, and a timestamp at most five minutes from now either way (replay window).
//! Several secrets may be configured so that a signing secret can be rotated without downtime, and a
//! secret re-read from Secrets Manager replaces the current one while the one it replaces stays valid
//! for a grace period ([`Verifier::rotate`]). A signature that matches no secret wakes whoever waits
//! on [`Verifier::mismatches`] (the secret refresh in `startup`, which rate-limits what it does).

use crate::types::Secret;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::Notify;

pub const TIMESTAMP_HEADER: &str = "x-slack-request-timestamp";
pub const SIGNATURE_HEADER: &str = "x-slack-signature";
/// How far a request's timestamp may be from now, in seconds, either way.
pub const WINDOW_SECS: i64 = 300;

/// Why a request was refused. Never includes the secret or the expected signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("missing X-Slack-Request-Timestamp header")]
    MissingTimestamp,
    #[error("missing X-Slack-Signature header")]
    MissingSignature,
    #[error("X-Slack-Request-Timestamp is not a Unix time")]
    BadTimestamp,
    #[error("timestamp outside the five-minute window")]
    Stale,
    #[error("signature does not match")]
    BadSignature,
}

/// The secrets a signature may be made with.
struct Keys {
    /// The secrets in use (at least one).
    current: Vec<Secret>,
    /// The secret the last rotation replaced, and the Unix time (seconds) until which it still
    /// verifies.
    previous: Option<(Secret, i64)>,
}

/// Checks signatures with one or more signing secrets. Clones share their secrets: a rotation is seen
/// by every clone.
#[derive(Clone)]
pub struct Verifier {
    /// Behind a lock so that a rotation replaces the secrets while requests are verified; held only
    /// to compute a few HMACs, never across an await.
    keys: Arc<RwLock<Keys>>,
    /// Notified (one stored permit: a burst is one wake-up) when a well-formed, fresh signature
    /// matches no secret, which is what a rotated secret looks like before the bot has re-read it.
    mismatches: Arc<Notify>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
        write!(
            f,
            "Verifier({} secret(s), previous: {})",
            keys.current.len(),
            keys.previous.is_some()
        )
    }
}

fn mac(secret: &Secret, timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()).expect("HMAC takes any key length");
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    mac
}

/// The `X-Slack-Signature` value Slack would send for this body: for tests and the demo, which sign
/// requests exactly as Slack does.
pub fn sign(secret: &Secret, timestamp: &str, body: &[u8]) -> String {
    format!(
        "v0={}",
        hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
    )
}

impl Verifier {
    pub fn new(secrets: Vec<Secret>) -> Verifier {
        assert!(!secrets.is_empty(), "a verifier needs at least one signing secret");
        Verifier {
            keys: Arc::new(RwLock::new(Keys {
                current: secrets,
                previous: None,
            })),
            mismatches: Arc::new(Notify::new()),
        }
    }

    /// Woken when a signature matches no secret (see the field's doc); the waiter decides whether to
    /// re-read the secrets.
    pub fn mismatches(&self) -> Arc<Notify> {
        self.mismatches.clone()
    }

    /// Makes `new` the signing secret. The first of the secrets it replaces keeps verifying until
    /// `now_unix + grace` (seconds; zero: not at all), so that requests Slack signed before the change
    /// reached it still pass; the others stop at once. Returns `false` (and changes nothing) when
    /// `new` is already the current secret.
    pub fn rotate(&self, new: Secret, now_unix: i64, grace: Duration) -> bool {
        let mut keys = self.keys.write().unwrap_or_else(|p| p.into_inner());
        if keys.current.first() == Some(&new) {
            return false;
        }
        let old = std::mem::replace(&mut keys.current, vec![new]);
        let until = now_unix.saturating_add(i64::try_from(grace.as_secs()).unwrap_or(i64::MAX));
        keys.previous = old.into_iter().next().filter(|_| !grace.is_zero()).map(|s| (s, until));
        true
    }

    /// Verifies a request given its two headers (if present), raw body and the current Unix time.
    pub fn verify(
        &self,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        now_unix: i64,
    ) -> Result<(), VerifyError> {
        let timestamp = timestamp.ok_or(VerifyError::MissingTimestamp)?;
        let signature = signature.ok_or(VerifyError::MissingSignature)?;
        let ts: i64 = timestamp.trim().parse().map_err(|_| VerifyError::BadTimestamp)?;
        if now_unix.abs_diff(ts) > WINDOW_SECS.unsigned_abs() {
            return Err(VerifyError::Stale);
        }
        let given = signature
            .strip_prefix("v0=")
            .and_then(|h| hex::decode(h).ok())
            .ok_or(VerifyError::BadSignature)?;
        let matches = |s: &Secret| mac(s, timestamp, body).verify_slice(&given).is_ok();
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
        // Mac::verify_slice compares in constant time.
        let previous = keys
            .previous
            .as_ref()
            .filter(|(_, until)| now_unix < *until)
            .map(|(s, _)| s);
        if keys.current.iter().chain(previous).any(matches) {
            Ok(())
        } else {
            drop(keys);
            self.mismatches.notify_one();
            Err(VerifyError::BadSignature)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example from Slack's "Verifying requests from Slack" documentation.
    const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const TS: &str = "1531420618";
    const BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const SIGNATURE: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    fn verifier() -> Verifier {
        Verifier::new(vec![Secret::new(SECRET)])
    }

    #[test]
    fn slacks_documented_example_signature_verifies() {
        assert_eq!(sign(&Secret::new(SECRET), TS, BODY.as_bytes()), SIGNATURE);
        let now = TS.parse::<i64>().unwrap() + 10;
        assert_eq!(
            verifier().verify(Some(TS), Some(SIGNATURE), BODY.as_bytes(), now),
            Ok(())
        );
    }

    #[test]
    fn a_changed_body_or_signature_or_secret_is_refused() {
        let now = TS.parse::<i64>().unwrap();
        let v = verifier();
        assert_eq!(
            v.verify(Some(TS), Some(SIGNATURE), b"token=tampered", now),
            Err(VerifyError::BadSignature)
        );
        let mut bad = SIGNATURE.to_owned();
        bad.replace_range(10..11, "0");
        assert_eq!(
            v.verify(Some(TS), Some(&bad), BODY.as_bytes(), now),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            v.verify(Some(TS), Some("a2114d57"), BODY.as_bytes(), now),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            v.verify(Some(TS), Some("v0=zz"), BODY.as_bytes(), now),
            Err(VerifyError::BadSignature)
        );
        let other = Verifier::new(vec![Secret::new("another-secret")]);
        assert_eq!(
            other.verify(Some(TS), Some(SIGNATURE), BODY.as_bytes(), now),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn timestamps_more_than_five_minutes_away_either_way_are_refused() {
        let ts = TS.parse::<i64>().unwrap();
        let v = verifier();
        let check = |now| v.verify(Some(TS), Some(SIGNATURE), BODY.as_bytes(), now);
        assert_eq!(check(ts + 300), Ok(()));
        assert_eq!(check(ts - 300), Ok(()));
        assert_eq!(check(ts + 301), Err(VerifyError::Stale));
        assert_eq!(check(ts - 301), Err(VerifyError::Stale));
        assert_eq!(
            v.verify(Some("soon"), Some(SIGNATURE), BODY.as_bytes(), ts),
            Err(VerifyError::BadTimestamp)
        );
    }

    #[test]
    fn extreme_timestamps_neither_overflow_nor_pass() {
        let ts = TS.parse::<i64>().unwrap();
        let v = verifier();
        for extreme in [i64::MIN, i64::MAX] {
            let t = extreme.to_string();
            assert_eq!(
                v.verify(Some(&t), Some(SIGNATURE), BODY.as_bytes(), ts),
                Err(VerifyError::Stale)
            );
        }
    }

    #[test]
    fn missing_headers_are_refused() {
        let ts = TS.parse::<i64>().unwrap();
        let v = verifier();
        assert_eq!(
            v.verify(None, Some(SIGNATURE), BODY.as_bytes(), ts),
            Err(VerifyError::MissingTimestamp)
        );
        assert_eq!(
            v.verify(Some(TS), None, BODY.as_bytes(), ts),
            Err(VerifyError::MissingSignature)
        );
    }

    #[test]
    fn a_rotated_out_secret_verifies_only_within_its_grace_period() {
        let ts = TS.parse::<i64>().unwrap();
        let v = verifier();
        let woken = v.mismatches();
        assert!(v.rotate(Secret::new("the-new-secret"), ts, Duration::from_secs(60)));
        assert!(!v.rotate(Secret::new("the-new-secret"), ts, Duration::from_secs(60)));
        let check = |now| v.verify(Some(TS), Some(SIGNATURE), BODY.as_bytes(), now);
        assert_eq!(check(ts + 59), Ok(()));
        assert_eq!(check(ts + 60), Err(VerifyError::BadSignature));
        // The refusal woke the refresh (one stored permit).
        assert!(futures::FutureExt::now_or_never(woken.notified()).is_some());
        let signed_new = sign(&Secret::new("the-new-secret"), TS, BODY.as_bytes());
        assert_eq!(v.verify(Some(TS), Some(&signed_new), BODY.as_bytes(), ts + 100), Ok(()));
    }

    #[test]
    fn a_zero_grace_period_ends_the_old_secret_at_once() {
        let ts = TS.parse::<i64>().unwrap();
        let v = verifier();
        assert!(v.rotate(Secret::new("the-new-secret"), ts, Duration::ZERO));
        assert_eq!(
            v.verify(Some(TS), Some(SIGNATURE), BODY.as_bytes(), ts),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn any_of_several_secrets_verifies_during_a_rotation() {
        let ts = TS.parse::<i64>().unwrap();
        let v = Verifier::new(vec![Secret::new("the-new-secret"), Secret::new(SECRET)]);
        assert_eq!(v.verify(Some(TS), Some(SIGNATURE), BODY.as_bytes(), ts), Ok(()));
    }
}
