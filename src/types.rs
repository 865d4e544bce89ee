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

/// The direction words AWS uses in Region names (`us-west-2`, `ap-southeast-7`, `eu-isoe-west-1`).
const REGION_DIRECTIONS: [&str; 9] = [
    "east",
    "west",
    "north",
    "south",
    "central",
    "northeast",
    "northwest",
    "southeast",
    "southwest",
];

impl Region {
    /// `us-east-1`, `eu-central-2`, `us-gov-west-1`, `cn-northwest-1`, `us-isob-east-1`, ...
    pub fn parse(s: &str) -> Option<Self> {
        Region::check(s).ok()
    }

    /// Like `parse`, with why a name is not a Region: an area (`us`, `ap`, `eusc`), optionally a
    /// partition or country (`gov`, `iso`, `isob`, `de`), a direction word AWS uses, and a number. The
    /// areas and partitions are not listed (new ones appear), but the nine direction words are fixed,
    /// which catches most typos (`us-wset-2`).
    pub fn check(s: &str) -> Result<Self, String> {
        const SHAPE: &str = "an AWS Region is an area, a direction and a number, such as us-west-2 or us-gov-east-1";
        let parts: Vec<&str> = s.split('-').collect();
        let words = |ps: &[&str]| {
            ps.iter()
                .all(|p| (2..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_lowercase()))
        };
        let [area @ .., direction, number] = parts.as_slice() else {
            return Err(SHAPE.to_owned());
        };
        let number_ok =
            (1..=2).contains(&number.len()) && !number.starts_with('0') && number.bytes().all(|b| b.is_ascii_digit());
        if !(1..=2).contains(&area.len())
            || !words(area)
            || direction.is_empty()
            || !direction.bytes().all(|b| b.is_ascii_lowercase())
            || !number_ok
        {
            return Err(SHAPE.to_owned());
        }
        if !REGION_DIRECTIONS.contains(direction) {
            return Err(format!(
                "{direction:?} is not a direction AWS uses in Region names ({}), as in us-west-2 or ap-southeast-1",
                REGION_DIRECTIONS.join(", ")
            ));
        }
        Ok(Region(s.to_owned()))
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

/// Who asked for or decided something: a Slack user, or (break-glass, when Slack is unavailable) an
/// operating-system user at the bot's own terminal. Stored as the Slack id (`U…`/`W…`) or as
/// `terminal:<login>`; `Display` gives that stored form (the audit's actor).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Person {
    Slack(SlackUserId),
    /// An OS login name (1 to 64 of `A-Z a-z 0-9 . _ -`), as the kernel reported it for a terminal
    /// command or the admin socket's peer.
    Terminal(String),
}

impl Person {
    const TERMINAL: &'static str = "terminal:";

    /// A stored person: a Slack user id, or `terminal:<login>`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.strip_prefix(Self::TERMINAL) {
            Some(login) => Self::terminal(login),
            None => SlackUserId::parse(s).map(Person::Slack),
        }
    }

    /// An OS user, if `login` is a plausible login name.
    pub fn terminal(login: &str) -> Option<Self> {
        let ok = !login.is_empty()
            && login.len() <= 64
            && login
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        ok.then(|| Person::Terminal(login.to_owned()))
    }

    /// The Slack user, if it is one.
    pub fn slack(&self) -> Option<&SlackUserId> {
        match self {
            Person::Slack(u) => Some(u),
            Person::Terminal(_) => None,
        }
    }
}

/// As its stored text (`U…` or `terminal:<login>`).
impl Serialize for Person {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Person {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Person::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("{s:?} is not a Slack user id or terminal:<login>")))
    }
}

impl From<SlackUserId> for Person {
    fn from(u: SlackUserId) -> Self {
        Person::Slack(u)
    }
}

impl PartialEq<SlackUserId> for Person {
    fn eq(&self, other: &SlackUserId) -> bool {
        self.slack() == Some(other)
    }
}

impl PartialEq<Person> for SlackUserId {
    fn eq(&self, other: &Person) -> bool {
        other == self
    }
}

impl fmt::Display for Person {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Person::Slack(u) => u.fmt(f),
            Person::Terminal(login) => write!(f, "{}{login}", Self::TERMINAL),
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
    /// Not a way to move the writer: `/aurora rebuild`, after a detach, makes a new global cluster
    /// from the promoted cluster and a new secondary in another Region (CreateGlobalCluster,
    /// CreateDBCluster, CreateDBInstance). A request and run like the others; never typed as `--mode`.
    Rebuild,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "detach" => Some(Mode::Detach),
            "failover" => Some(Mode::Failover),
            "switchover" => Some(Mode::Switchover),
            "rebuild" => Some(Mode::Rebuild),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Detach => "detach",
            Mode::Failover => "failover",
            Mode::Switchover => "switchover",
            Mode::Rebuild => "rebuild",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `text` with whatever looks like a Slack credential hidden: tokens (`xoxb-`, `xoxp-`, `xoxa-`,
/// `xoxe-`, `xoxr-`, `xoxs-`, `xapp-`, up to the next character that cannot be in one) and 32-digit
/// hex strings (signing secrets). For errors that quote a config value, which may be a secret pasted
/// under the wrong key.
pub fn redact_credentials(text: &str) -> String {
    let is_token_char = |c: char| c.is_ascii_alphanumeric() || c == '-';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        let word_len = rest.find(|c: char| !is_token_char(c)).unwrap_or(rest.len());
        let word = &rest[..word_len];
        if word_len == 0 {
            out.push(c);
            rest = &rest[c.len_utf8()..];
            continue;
        }
        let token = ["xoxb-", "xoxp-", "xoxa-", "xoxe-", "xoxr-", "xoxs-", "xapp-"]
            .iter()
            .find(|p| word.len() > p.len() && word.to_ascii_lowercase().starts_with(*p));
        let signing = word.len() == 32 && word.chars().all(|c| c.is_ascii_hexdigit());
        match (token, signing) {
            (Some(p), _) => {
                out.push_str(p);
                out.push_str("(hidden)");
            }
            (None, true) => out.push_str("(a 32-digit hex value, hidden)"),
            (None, false) => out.push_str(word),
        }
        rest = &rest[word_len..];
    }
    out
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
    fn credentials_quoted_in_an_error_are_hidden() {
        assert_eq!(
            redact_credentials("unknown field `xoxb-1111-2222-SECRETVALUE`, expected one of"),
            "unknown field `xoxb-(hidden)`, expected one of"
        );
        assert_eq!(
            redact_credentials("slack.incident_channel: 0123456789abcdef0123456789ABCDEF is not a channel id"),
            "slack.incident_channel: (a 32-digit hex value, hidden) is not a channel id"
        );
        assert_eq!(
            redact_credentials("cluster `orders-é` xoxb-"),
            "cluster `orders-é` xoxb-"
        );
    }

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
        for stored in ["U0AAAA", "terminal:alice", "terminal:svc-dr.ops_1"] {
            assert_eq!(Person::parse(stored).unwrap().to_string(), stored);
        }
        for bad in ["terminal:", "terminal:a b", "terminal:<@U0AAAA>", "alice", "S0AAAA"] {
            assert!(Person::parse(bad).is_none(), "{bad}");
        }
        assert!(Person::parse("U0AAAA").unwrap() == SlackUserId::parse("U0AAAA").unwrap());
        assert!(Person::terminal("U0AAAA").unwrap() != SlackUserId::parse("U0AAAA").unwrap());
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
    fn every_kind_of_real_region_parses() {
        for r in [
            "us-east-1",
            "us-west-2",
            "ca-central-1",
            "ca-west-1",
            "mx-central-1",
            "sa-east-1",
            "eu-west-3",
            "eu-north-1",
            "eu-south-2",
            "eu-central-2",
            "il-central-1",
            "me-south-1",
            "me-central-1",
            "af-south-1",
            "ap-east-2",
            "ap-south-2",
            "ap-northeast-3",
            "ap-southeast-7",
            "us-gov-west-1",
            "us-gov-east-1",
            "cn-north-1",
            "cn-northwest-1",
            "us-iso-east-1",
            "us-iso-west-1",
            "us-isob-east-1",
            "us-isof-south-1",
            "eu-isoe-west-1",
            "eusc-de-east-1",
        ] {
            assert_eq!(Region::check(r).map(|r| r.to_string()), Ok(r.to_owned()));
        }
    }

    #[test]
    fn a_misspelt_region_is_refused_with_the_reason() {
        for (typo, why) in [
            ("us-wset-2", "\"wset\" is not a direction AWS uses"),
            ("eu-centrl-1", "\"centrl\" is not a direction"),
            ("ap-southest-1", "\"southest\" is not a direction"),
            ("us-gov-wst-1", "\"wst\" is not a direction"),
            ("cn-nortwest-1", "\"nortwest\" is not a direction"),
            ("us-east", "such as us-west-2"),
            ("us-east-01", "such as us-west-2"),
            ("us-east-1a", "such as us-west-2"),
            ("US-EAST-1", "such as us-west-2"),
            ("us-east-1 ", "such as us-west-2"),
            ("us--east-1", "such as us-west-2"),
            ("mars", "such as us-west-2"),
            ("", "such as us-west-2"),
        ] {
            let e = Region::check(typo).unwrap_err();
            assert!(e.contains(why), "{typo:?}: {e}");
            assert!(Region::parse(typo).is_none(), "{typo:?}");
        }
        let e = Region::check("us-wset-2").unwrap_err();
        assert!(e.contains("as in us-west-2"), "{e}");
    }

    #[test]
    fn a_secret_never_prints() {
        let s = Secret::new("xoxb-very-secret");
        assert_eq!(format!("{s:?}"), "Secret([redacted])");
        assert!(!format!("{:?}", Some(s)).contains("very-secret"));
    }
}

/// Which engine an Aurora cluster runs, as the database probe speaks to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum EngineFamily {
    /// Aurora MySQL (MySQL protocol; MariaDB in the tests).
    #[serde(rename = "aurora-mysql")]
    AuroraMysql,
    /// Aurora PostgreSQL.
    #[serde(rename = "aurora-postgresql")]
    AuroraPostgresql,
}

impl EngineFamily {
    /// The name the configuration and the messages use: `aurora-mysql`, `aurora-postgresql` (RDS's
    /// `Engine` values).
    pub fn as_str(self) -> &'static str {
        match self {
            EngineFamily::AuroraMysql => "aurora-mysql",
            EngineFamily::AuroraPostgresql => "aurora-postgresql",
        }
    }

    /// The engine's default port (3306, 5432), used when DescribeDBClusters gives none.
    pub fn default_port(self) -> u16 {
        match self {
            EngineFamily::AuroraMysql => 3306,
            EngineFamily::AuroraPostgresql => 5432,
        }
    }
}
