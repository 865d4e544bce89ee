//! The project's vocabulary as types, parsed once at the edge ("parse, don't validate"): a value of
//! one of these types is known to be well formed everywhere else.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A duration as people read it, in plain text (no markup), for every audience (Slack, the audit,
/// the runbook's own sentences): `1h 02m`, `3m 04s`, `12s`, `850 ms`.
pub fn human_duration(d: std::time::Duration) -> String {
    let s = d.as_secs();
    if s == 0 {
        format!("{} ms", d.as_millis())
    } else if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m {:02}s", s / 60, s % 60)
    } else {
        format!("{}h {:02}m", s / 3600, (s % 3600) / 60)
    }
}

/// Host names compare case-insensitively and without the trailing dot.
pub fn same_host(a: &str, b: &str) -> bool {
    a.trim_end_matches('.').eq_ignore_ascii_case(b.trim_end_matches('.'))
}

macro_rules! string_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

string_type!(
    /// A Slack user id (`U…` or `W…`).
    SlackUserId
);
string_type!(
    /// A Slack user-group id (`S…`).
    UserGroupId
);
string_type!(
    /// A Slack channel id (`C…` or `G…`).
    ChannelId
);
string_type!(
    /// An AWS Region name such as `us-west-2`.
    Region
);
string_type!(
    /// The name users type for a configured global cluster (`orders`).
    ClusterName
);

fn slack_id(s: &str, prefixes: &[char]) -> bool {
    s.len() >= 3 && s.starts_with(prefixes) && s.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

impl SlackUserId {
    pub fn parse(s: &str) -> Option<Self> {
        slack_id(s, &['U', 'W']).then(|| SlackUserId(s.to_owned()))
    }
}

impl UserGroupId {
    pub fn parse(s: &str) -> Option<Self> {
        slack_id(s, &['S']).then(|| UserGroupId(s.to_owned()))
    }
}

impl ChannelId {
    pub fn parse(s: &str) -> Option<Self> {
        slack_id(s, &['C', 'G', 'D']).then(|| ChannelId(s.to_owned()))
    }
}

impl Region {
    /// `us-east-1`, `eu-central-2`, `us-gov-west-1`, ...
    pub fn parse(s: &str) -> Option<Self> {
        let parts: Vec<&str> = s.split('-').collect();
        let ok = parts.len() >= 3
            && parts[0].len() == 2
            && parts[..parts.len() - 1]
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
            && parts[parts.len() - 1].parse::<u8>().is_ok();
        ok.then(|| Region(s.to_owned()))
    }
}

impl ClusterName {
    /// Lower-case letters, digits, `-` and `_`, 1 to 63 characters.
    pub fn parse(s: &str) -> Option<Self> {
        let ok = !s.is_empty()
            && s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        ok.then(|| ClusterName(s.to_owned()))
    }
}

/// Someone who may request or approve: a user, or every member of a user group.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    User(SlackUserId),
    Group(UserGroupId),
}

impl Principal {
    pub fn parse(s: &str) -> Option<Self> {
        SlackUserId::parse(s)
            .map(Principal::User)
            .or_else(|| UserGroupId::parse(s).map(Principal::Group))
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::User(u) => u.fmt(f),
            Principal::Group(g) => g.fmt(f),
        }
    }
}

/// How the writer moves to the target Region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// RemoveFromGlobalCluster: the target becomes a standalone writable cluster; replication stops and
    /// the old primary stays writable.
    Detach,
    /// FailoverGlobalCluster with AllowDataLoss: managed unplanned failover.
    Failover,
    /// SwitchoverGlobalCluster: planned, no data loss.
    Switchover,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "detach" => Some(Mode::Detach),
            "failover" => Some(Mode::Failover),
            "switchover" => Some(Mode::Switchover),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Detach => "detach",
            Mode::Failover => "failover",
            Mode::Switchover => "switchover",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A secret string (signing secret, bot token): never printed, never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The secret itself, for the one place that needs it (signing, the Authorization header).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        use std::time::Duration;
        assert_eq!(human_duration(Duration::from_millis(850)), "850 ms");
        assert_eq!(human_duration(Duration::from_secs(12)), "12s");
        assert_eq!(human_duration(Duration::from_secs(184)), "3m 04s");
        assert_eq!(human_duration(Duration::from_secs(3720)), "1h 02m");
    }

    #[test]
    fn ids_are_recognised_by_their_slack_prefix() {
        assert!(SlackUserId::parse("U0AAAA").is_some());
        assert!(SlackUserId::parse("W0AAAA").is_some());
        assert!(SlackUserId::parse("S0AAAA").is_none());
        assert!(SlackUserId::parse("u0aaaa").is_none());
        assert_eq!(
            Principal::parse("S0DBA"),
            Some(Principal::Group(UserGroupId("S0DBA".into())))
        );
        assert!(Principal::parse("@alice").is_none());
        assert!(ChannelId::parse("C0INCIDENT").is_some());
    }

    #[test]
    fn regions_and_cluster_names_parse() {
        assert!(Region::parse("us-west-2").is_some());
        assert!(Region::parse("us-gov-east-1").is_some());
        assert!(Region::parse("uswest2").is_none());
        assert!(ClusterName::parse("orders").is_some());
        assert!(ClusterName::parse("Orders").is_none());
        assert!(ClusterName::parse("").is_none());
    }

    #[test]
    fn a_secret_never_prints() {
        let s = Secret::new("xoxb-very-secret");
        assert_eq!(format!("{s:?}"), "Secret([redacted])");
        assert!(!format!("{:?}", Some(s)).contains("very-secret"));
    }
}
