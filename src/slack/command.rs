//! The `/aurora` command language and the bot's buttons, parsed with no I/O into validated values.
//!
//! Parse, don't validate: [`parse`] reads the text after `/aurora` against the settings and returns a
//! [`Command`] whose cluster is one the settings configure ([`Cluster`]), whose Region is one of that
//! cluster's Regions and whose numbers are the store's ids, so that no handler checks them again. Text
//! that is not a command is a [`UsageError`] (answered with the usage); a well-formed command naming a
//! cluster or Region the settings do not have is [`NotConfigured`] (answered with what they do have).
//! [`Click::parse`] does the same for the buttons the bot issues, whose action ids and values are
//! defined here (`render` draws the buttons with them). Nothing here is worded for people: the
//! answers to these values are in `render` (`usage`, `usage_error`, `not_configured`).

use crate::settings::{ClusterSettings, Settings};
use crate::store::{RequestId, RunId};
use crate::types::{Mode, Region};

/// A cluster the settings configure; only [`parse`] makes one, from a configured name.
#[derive(Debug, Clone, Copy)]
pub struct Cluster<'s>(&'s ClusterSettings);

impl<'s> Cluster<'s> {
    /// The cluster's settings.
    pub fn settings(self) -> &'s ClusterSettings {
        self.0
    }
}

impl std::ops::Deref for Cluster<'_> {
    type Target = ClusterSettings;
    fn deref(&self) -> &ClusterSettings {
        self.0
    }
}

/// Names are unique in the settings: two clusters with one name are the same cluster.
impl PartialEq for Cluster<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.0.name == other.0.name
    }
}

impl Eq for Cluster<'_> {}

/// A parsed `/aurora` command, its values checked against the settings it borrows from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<'s> {
    /// `/aurora help`, or nothing at all.
    Help,
    /// `/aurora status [CLUSTER]`.
    Status { cluster: Option<Cluster<'s>> },
    /// `/aurora cancel REQUEST`.
    Cancel { request: RequestId },
    /// `/aurora history [CLUSTER]`.
    History { cluster: Option<Cluster<'s>> },
    /// `/aurora pending`: the open requests the caller may act on, with buttons.
    Pending,
    /// `/aurora resume RUN`: let a run that needs attention finish (a second person approves).
    Resume { run: RunId },
    /// `/aurora abandon RUN REASON...`: stop a run here (with a confirmation button).
    Abandon { run: RunId, reason: String },
    /// `/aurora failover CLUSTER [--to REGION] [--mode detach|failover|switchover] [--dry-run]`.
    Failover(Failover<'s>),
    /// `/aurora rebuild CLUSTER --in REGION [--reason WHY] [--ticket T] [--dry-run]`: after a detach,
    /// a new global cluster and a secondary in REGION. Its values: `to` is REGION, `mode` is
    /// `Mode::Rebuild`.
    Rebuild(Failover<'s>),
}

/// `/aurora failover`'s values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failover<'s> {
    pub cluster: Cluster<'s>,
    /// `--to`: one of the cluster's Regions.
    pub to: Option<Region>,
    /// `--mode`.
    pub mode: Option<Mode>,
    /// `--dry-run`: show the plan and its checks; request nothing.
    pub dry_run: bool,
    /// `--reason`: why, in the requester's words (at most [`MAX_REASON`] characters).
    pub reason: Option<String>,
    /// `--ticket`: the incident or change ticket (one word, at most [`MAX_TICKET`] characters).
    pub ticket: Option<String>,
}

/// Longest `--reason`, in characters.
pub const MAX_REASON: usize = 500;
/// Longest `--ticket`, in characters.
pub const MAX_TICKET: usize = 100;

/// Why the text is not a command; answered with what is wrong and the usage (`render::usage_error`).
/// Each carries what was typed, as typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsageError {
    UnknownCommand(String),
    /// The verb that needs a cluster name.
    MissingCluster(&'static str),
    /// The option that needs a value.
    MissingValue(String),
    UnknownOption(String),
    /// The option given twice.
    Repeated(String),
    /// The value given to `--mode`.
    BadMode(String),
    /// The first word after a complete command.
    Unexpected(String),
    /// `cancel` without a request number.
    MissingRequest,
    /// `resume` or `abandon` (the verb) without a run number.
    MissingRun(&'static str),
    /// `abandon` without a reason.
    MissingReason,
    /// `rebuild` without `--in REGION`.
    MissingRegion,
    /// A quoted value without its closing quote: the option.
    Unclosed(String),
    /// A value longer than the option allows: the option and its limit in characters.
    TooLong(String, usize),
}

/// A well-formed command naming a cluster or Region the settings do not have; answered to the user
/// alone, with what the settings do have (`render::not_configured`). Its `Display` is the short,
/// plain form for the audit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotConfigured {
    #[error("unknown cluster {typed}")]
    Cluster { typed: String, configured: Vec<String> },
    #[error("{typed} is not a Region of {cluster}")]
    Region {
        typed: String,
        cluster: String,
        regions: Vec<String>,
    },
}

/// Why the text after `/aurora` gives no command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejected {
    /// Not a command of the language.
    Usage(UsageError),
    /// Command `verb` names cluster `cluster` (as typed), or a Region of it, that the settings lack.
    NotConfigured {
        verb: &'static str,
        cluster: String,
        why: NotConfigured,
    },
}

impl From<UsageError> for Rejected {
    fn from(e: UsageError) -> Self {
        Rejected::Usage(e)
    }
}

/// The buttons the bot issues (their `action_id`s): Approve and Deny on a request (value: the
/// request's id).
pub const APPROVE: &str = "approve";
pub const DENY: &str = "deny";
/// Approve and Deny on a resume request (value: `{run id}:{token}`, the token naming the ask).
pub const RESUME_APPROVE: &str = "resume_approve";
pub const RESUME_DENY: &str = "resume_deny";
/// The confirmation button of `/aurora abandon` (value: [`AbandonValue`] as JSON).
pub const ABANDON_CONFIRM: &str = "abandon_confirm";
/// Approve and Deny in the `/aurora pending` list (value: the request's id). Not [`APPROVE`] and
/// [`DENY`]: those are honoured only on the request's own message; these are on an ephemeral list,
/// and Deny here opens the deny-reason modal.
pub const PENDING_APPROVE: &str = "pending_approve";
pub const PENDING_DENY: &str = "pending_deny";
/// The deny-reason modal's `callback_id`; its `private_metadata` is the request's id, its reason
/// the `plain_text_input` [`REASON_ACTION`] in the input block [`REASON_BLOCK`].
pub const DENY_REASON_VIEW: &str = "deny_reason";
pub const REASON_BLOCK: &str = "reason";
pub const REASON_ACTION: &str = "reason";

/// The value of the abandon confirmation button.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AbandonValue {
    pub run: i64,
    pub reason: String,
}

/// The text a person typed, from a slash command's `text` as Slack sends it: Slack escapes `&`, `<` and
/// `>` as `&amp;`, `&lt;` and `&gt;` (https://api.slack.com/reference/surfaces/formatting#escaping),
/// which would otherwise be escaped again when shown back.
pub fn unescape(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains('&') {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))
}

/// Parses the text after `/aurora`, checking the clusters and Regions it names against `settings`.
/// The words are read first: text that is not a command is a usage error whatever it names.
pub fn parse<'s>(text: &str, settings: &'s Settings) -> Result<Command<'s>, Rejected> {
    let optional = |verb, typed: Option<&str>| typed.map(|t| cluster(settings, verb, t)).transpose();
    Ok(match said(text)? {
        Said::Help => Command::Help,
        Said::Status(typed) => Command::Status {
            cluster: optional("status", typed)?,
        },
        Said::History(typed) => Command::History {
            cluster: optional("history", typed)?,
        },
        Said::Cancel(request) => Command::Cancel { request },
        Said::Pending => Command::Pending,
        Said::Resume(run) => Command::Resume { run },
        Said::Abandon(run, reason) => Command::Abandon { run, reason },
        Said::Failover {
            cluster: typed,
            to,
            mode,
            dry_run,
            reason,
            ticket,
        } => {
            let verb = if mode == Some(Mode::Rebuild) {
                "rebuild"
            } else {
                "failover"
            };
            let cluster = cluster(settings, verb, typed)?;
            let to = to
                .map(|r| region(cluster, r))
                .transpose()
                .map_err(|why| Rejected::NotConfigured {
                    verb,
                    cluster: typed.to_owned(),
                    why,
                })?;
            let f = Failover {
                cluster,
                to,
                mode,
                dry_run,
                reason,
                ticket: ticket.map(str::to_owned),
            };
            match mode {
                Some(Mode::Rebuild) => Command::Rebuild(f),
                _ => Command::Failover(f),
            }
        }
    })
}

/// The configured cluster named `typed`.
fn cluster<'s>(settings: &'s Settings, verb: &'static str, typed: &str) -> Result<Cluster<'s>, Rejected> {
    settings
        .cluster(typed)
        .map(Cluster)
        .ok_or_else(|| Rejected::NotConfigured {
            verb,
            cluster: typed.to_owned(),
            why: NotConfigured::Cluster {
                typed: typed.to_owned(),
                configured: settings.cluster_names().into_iter().map(str::to_owned).collect(),
            },
        })
}

/// `typed` as one of `cluster`'s Regions.
fn region(cluster: Cluster<'_>, typed: &str) -> Result<Region, NotConfigured> {
    Region::parse(typed)
        .filter(|r| cluster.regions.contains(r))
        .ok_or_else(|| NotConfigured::Region {
            typed: typed.to_owned(),
            cluster: cluster.name.to_string(),
            regions: cluster.regions.iter().map(|r| r.as_str().to_owned()).collect(),
        })
}

/// What the text says, word by word, before the settings give it a meaning.
#[derive(Debug, PartialEq, Eq)]
enum Said<'t> {
    Help,
    Status(Option<&'t str>),
    History(Option<&'t str>),
    Cancel(RequestId),
    Pending,
    Resume(RunId),
    Abandon(RunId, String),
    Failover {
        cluster: &'t str,
        to: Option<&'t str>,
        mode: Option<Mode>,
        dry_run: bool,
        reason: Option<String>,
        ticket: Option<&'t str>,
    },
}

type Words<'t> = std::str::SplitWhitespace<'t>;

fn said(text: &str) -> Result<Said<'_>, UsageError> {
    let mut words = text.split_whitespace();
    let Some(verb) = words.next() else {
        return Ok(Said::Help);
    };
    match verb.to_ascii_lowercase().as_str() {
        "help" | "-h" | "--help" => end(words, Said::Help),
        "status" => {
            let cluster = words.next();
            end(words, Said::Status(cluster))
        }
        "history" => {
            let cluster = words.next();
            end(words, Said::History(cluster))
        }
        "pending" => end(words, Said::Pending),
        "cancel" => {
            let request = number(&mut words).ok_or(UsageError::MissingRequest)?;
            end(words, Said::Cancel(request.into()))
        }
        "resume" => {
            let run = number(&mut words).ok_or(UsageError::MissingRun("resume"))?;
            end(words, Said::Resume(run.into()))
        }
        "abandon" => {
            let run = number(&mut words).ok_or(UsageError::MissingRun("abandon"))?;
            let reason = words.collect::<Vec<_>>().join(" ");
            if reason.is_empty() {
                return Err(UsageError::MissingReason);
            }
            Ok(Said::Abandon(run.into(), reason))
        }
        "failover" => failover(words, "--to"),
        "rebuild" => rebuild(words),
        other => Err(UsageError::UnknownCommand(other.to_owned())),
    }
}

/// `said`, when no word is left.
fn end<'t>(mut words: Words<'t>, said: Said<'t>) -> Result<Said<'t>, UsageError> {
    match words.next() {
        None => Ok(said),
        Some(w) => Err(UsageError::Unexpected(w.to_owned())),
    }
}

/// A request or run number (`17` or `#17`), positive.
fn number(words: &mut Words<'_>) -> Option<i64> {
    words
        .next()
        .and_then(|w| w.trim_start_matches('#').parse::<i64>().ok())
        .filter(|n| *n > 0)
}

/// `rebuild`'s cluster and options: `failover`'s, with `--in REGION` (required) for where the new
/// secondary goes, and no `--to` or `--mode`.
fn rebuild(words: Words<'_>) -> Result<Said<'_>, UsageError> {
    match failover(words, "--in")? {
        Said::Failover { to: None, .. } => Err(UsageError::MissingRegion),
        Said::Failover {
            cluster,
            to,
            dry_run,
            reason,
            ticket,
            ..
        } => Ok(Said::Failover {
            cluster,
            to,
            mode: Some(Mode::Rebuild),
            dry_run,
            reason,
            ticket,
        }),
        other => Ok(other),
    }
}

/// `failover`'s cluster and options, in any order; `to_flag` names the option giving the Region
/// (`--to`, or `rebuild`'s `--in`, which takes no `--mode`). An option's value is never another
/// option.
fn failover<'t>(mut words: Words<'t>, to_flag: &str) -> Result<Said<'t>, UsageError> {
    let (mut cluster, mut to, mut mode, mut dry_run) = (None, None, None, false);
    let (mut reason, mut ticket) = (None, None);
    let takes_mode = to_flag == "--to";
    while let Some(w) = words.next() {
        match w {
            "--dry-run" => dry_run = true,
            w if w == to_flag || (w == "--mode" && takes_mode) || w == "--ticket" => {
                let value = words
                    .next()
                    .filter(|v| !v.starts_with("--"))
                    .ok_or_else(|| UsageError::MissingValue(w.to_owned()))?;
                let repeated = match w {
                    "--ticket" => ticket.replace(limited(w, unquoted(value), MAX_TICKET)?).is_some(),
                    "--mode" => {
                        let m = Mode::parse(value)
                            .filter(|m| *m != Mode::Rebuild)
                            .ok_or_else(|| UsageError::BadMode(value.to_owned()))?;
                        mode.replace(m).is_some()
                    }
                    _ => to.replace(value).is_some(),
                };
                if repeated {
                    return Err(UsageError::Repeated(w.to_owned()));
                }
            }
            "--reason" => {
                let value = free_text(w, &mut words)?;
                if reason.replace(limited(w, &value, MAX_REASON)?.to_owned()).is_some() {
                    return Err(UsageError::Repeated(w.to_owned()));
                }
            }
            w if w.starts_with("--") => return Err(UsageError::UnknownOption(w.to_owned())),
            w if cluster.is_none() => cluster = Some(w),
            w => return Err(UsageError::Unexpected(w.to_owned())),
        }
    }
    Ok(Said::Failover {
        cluster: cluster.ok_or(UsageError::MissingCluster("failover"))?,
        to,
        mode,
        dry_run,
        reason,
        ticket,
    })
}

/// `value` if it is at most `max` characters long.
fn limited<'v>(option: &str, value: &'v str, max: usize) -> Result<&'v str, UsageError> {
    if value.chars().count() > max {
        return Err(UsageError::TooLong(option.to_owned(), max));
    }
    Ok(value)
}

/// Quotes a value may be wrapped in: straight double and single, and the curly ones Slack's clients
/// may type.
const QUOTES: [(char, char); 4] = [
    ('"', '"'),
    ('\u{201c}', '\u{201d}'),
    ('\'', '\''),
    ('\u{2018}', '\u{2019}'),
];

/// A one-word value without the quotes it may be wrapped in (`"INC-42"` is `INC-42`).
fn unquoted(value: &str) -> &str {
    QUOTES
        .iter()
        .find_map(|(open, close)| value.strip_prefix(*open)?.strip_suffix(*close))
        .filter(|v| !v.is_empty())
        .unwrap_or(value)
}

/// The free text after `option`: a quoted value (its words up to the closing quote), or the words up
/// to the next `--option`. Words are joined by one space; an empty value is missing.
fn free_text(option: &str, words: &mut Words<'_>) -> Result<String, UsageError> {
    let missing = || UsageError::MissingValue(option.to_owned());
    let first = words.clone().next().ok_or_else(missing)?;
    let quoted = QUOTES.iter().find(|(open, _)| first.starts_with(*open));
    let mut taken = Vec::new();
    match quoted {
        Some(&(open, close)) => {
            let mut rest = first[open.len_utf8()..].to_owned();
            words.next();
            loop {
                if let Some(inner) = rest.strip_suffix(close) {
                    taken.push(inner.to_owned());
                    break;
                }
                taken.push(rest);
                rest = words
                    .next()
                    .ok_or_else(|| UsageError::Unclosed(option.to_owned()))?
                    .to_owned();
            }
        }
        None => {
            while let Some(w) = words.clone().next().filter(|w| !w.starts_with("--")) {
                taken.push(w.to_owned());
                words.next();
            }
        }
    }
    let text = taken.join(" ").trim().to_owned();
    if text.is_empty() {
        return Err(missing());
    }
    Ok(text)
}

/// A click on one of the buttons the bot issues, with the ids its value names. The request or run
/// is always read again from the store: a click names it, nothing more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Click {
    /// Approve or Deny on a request's approval message.
    Decide { request: RequestId, approve: bool },
    /// Approve or deny resuming a run, on the ask numbered `token`.
    DecideResume { run: RunId, token: i64, approve: bool },
    /// The confirmation button of `/aurora abandon`.
    Abandon { run: RunId, reason: String },
    /// Approve (decided at once) or Deny (opens the deny-reason modal) in the `/aurora pending` list.
    FromList { request: RequestId, approve: bool },
}

impl Click {
    /// The click of button `action_id` carrying `value`; `None` for a button the bot did not issue or
    /// a value it did not write.
    pub fn parse(action_id: &str, value: &str) -> Option<Click> {
        match action_id {
            APPROVE | DENY => Some(Click::Decide {
                request: value.parse::<i64>().ok()?.into(),
                approve: action_id == APPROVE,
            }),
            RESUME_APPROVE | RESUME_DENY => {
                let (run, token) = value.split_once(':')?;
                Some(Click::DecideResume {
                    run: run.parse::<i64>().ok()?.into(),
                    token: token.parse().ok()?,
                    approve: action_id == RESUME_APPROVE,
                })
            }
            ABANDON_CONFIRM => {
                let v = serde_json::from_str::<AbandonValue>(value).ok()?;
                Some(Click::Abandon {
                    run: v.run.into(),
                    reason: v.reason,
                })
            }
            PENDING_APPROVE | PENDING_DENY => Some(Click::FromList {
                request: request_id(value)?,
                approve: action_id == PENDING_APPROVE,
            }),
            _ => None,
        }
    }
}

/// A request id as the bot writes it in a value or `private_metadata`: decimal digits only (no sign,
/// no space), positive.
fn request_id(value: &str) -> Option<RequestId> {
    if value.is_empty() || value.len() > 18 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse::<i64>().ok().filter(|n| *n > 0).map(RequestId::from)
}

/// A submitted modal the bot opened (a `view_submission`), with the ids it carries. The request is
/// always read again from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submission {
    /// The deny-reason modal: deny `request`, saying `reason` (trimmed; possibly empty, which the
    /// handler refuses in the modal).
    DenyReason { request: RequestId, reason: String },
}

impl Submission {
    /// The submission of view `callback_id` whose `private_metadata` is `metadata` and whose input
    /// values are `values` (Slack's `view.state.values`: block id → action id → `{"type", "value"}`);
    /// `None` for a view the bot did not open or metadata it did not write.
    pub fn parse(callback_id: &str, metadata: &str, values: &serde_json::Value) -> Option<Submission> {
        match callback_id {
            DENY_REASON_VIEW => Some(Submission::DenyReason {
                request: request_id(metadata)?,
                reason: values
                    .pointer(&format!("/{REASON_BLOCK}/{REASON_ACTION}/value"))
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .trim()
                    .to_owned(),
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings::from_toml(include_str!("../../config.example.toml")).unwrap()
    }

    /// The words alone, for the tests of the syntax.
    fn words(text: &str) -> Result<Said<'_>, UsageError> {
        said(text)
    }

    #[test]
    fn slacks_escaping_of_typed_text_is_undone_once() {
        assert_eq!(unescape("a&amp;b &lt;x&gt;"), "a&b <x>");
        assert_eq!(unescape("&amp;lt;"), "&lt;", "what the person typed, once");
        assert_eq!(unescape("orders"), "orders");
    }

    #[test]
    fn empty_text_and_help_are_help() {
        let s = settings();
        assert_eq!(parse("", &s), Ok(Command::Help));
        assert_eq!(parse("   ", &s), Ok(Command::Help));
        assert_eq!(parse("help", &s), Ok(Command::Help));
    }

    #[test]
    fn status_takes_an_optional_cluster() {
        let s = settings();
        assert_eq!(parse("status", &s), Ok(Command::Status { cluster: None }));
        let Ok(Command::Status { cluster: Some(c) }) = parse("status orders", &s) else {
            panic!("status orders");
        };
        assert_eq!(c.name.as_str(), "orders");
        assert_eq!(
            parse("status a b", &s),
            Err(Rejected::Usage(UsageError::Unexpected("b".into())))
        );
    }

    #[test]
    fn failover_takes_a_cluster_and_options_in_any_order() {
        assert_eq!(
            words("failover orders --to us-west-2 --mode detach"),
            Ok(Said::Failover {
                cluster: "orders",
                to: Some("us-west-2"),
                mode: Some(Mode::Detach),
                dry_run: false,
                reason: None,
                ticket: None,
            })
        );
        assert_eq!(
            words("failover --mode switchover orders --dry-run"),
            Ok(Said::Failover {
                cluster: "orders",
                to: None,
                mode: Some(Mode::Switchover),
                dry_run: true,
                reason: None,
                ticket: None,
            })
        );
        let s = settings();
        let Ok(Command::Failover(f)) = parse("failover orders --to us-west-2 --mode detach", &s) else {
            panic!("failover");
        };
        assert_eq!(f.cluster.name.as_str(), "orders");
        assert_eq!(f.to, Region::parse("us-west-2"));
        assert_eq!((f.mode, f.dry_run), (Some(Mode::Detach), false));
    }

    /// The reason and ticket a failover names, as `(reason, ticket)`.
    fn why(text: &str) -> Result<(Option<String>, Option<&str>), UsageError> {
        match words(text)? {
            Said::Failover { reason, ticket, .. } => Ok((reason, ticket)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_reason_is_quoted_or_runs_to_the_next_option_and_a_ticket_is_one_word() {
        let r = |s: &str| Some(s.to_owned());
        assert_eq!(
            why("failover orders --reason \"us-east-1 is down\" --ticket INC-42"),
            Ok((r("us-east-1 is down"), Some("INC-42")))
        );
        assert_eq!(
            why("failover orders --reason \u{201c}east  down\u{201d} --mode detach"),
            Ok((r("east down"), None)),
            "curly quotes, as Slack's clients type them"
        );
        assert_eq!(
            why("failover orders --reason east is down --to us-west-2"),
            Ok((r("east is down"), None))
        );
        assert_eq!(why("failover orders --reason \"down\""), Ok((r("down"), None)));
        assert_eq!(why("failover --ticket CHG-1 orders"), Ok((None, Some("CHG-1"))));
        assert_eq!(why("failover orders --ticket \"INC-4\""), Ok((None, Some("INC-4"))));
        assert_eq!(
            why("failover orders --reason \u{2018}east down\u{2019}"),
            Ok((r("east down"), None))
        );
        assert_eq!(
            why("failover orders --ticket --dry-run"),
            Err(UsageError::MissingValue("--ticket".into()))
        );
        assert_eq!(
            words("failover orders --to --mode detach"),
            Err(UsageError::MissingValue("--to".into()))
        );
        assert!(matches!(
            words("rebuild orders --in us-east-1 --reason \"after --mode detach\""),
            Ok(Said::Failover {
                mode: Some(Mode::Rebuild),
                ..
            })
        ));
        assert_eq!(
            words("rebuild orders --in x --mode detach"),
            Err(UsageError::UnknownOption("--mode".into()))
        );
        assert_eq!(
            words("rebuild orders --to x"),
            Err(UsageError::UnknownOption("--to".into()))
        );
        assert_eq!(
            why("failover orders --reason"),
            Err(UsageError::MissingValue("--reason".into()))
        );
        assert_eq!(
            why("failover orders --reason \"\""),
            Err(UsageError::MissingValue("--reason".into()))
        );
        assert_eq!(
            why("failover orders --reason --to x"),
            Err(UsageError::MissingValue("--reason".into()))
        );
        assert_eq!(
            why("failover orders --reason \"never closed"),
            Err(UsageError::Unclosed("--reason".into()))
        );
        assert_eq!(
            why("failover orders --ticket"),
            Err(UsageError::MissingValue("--ticket".into()))
        );
        assert_eq!(
            why("failover orders --ticket A --ticket B"),
            Err(UsageError::Repeated("--ticket".into()))
        );
        assert_eq!(
            why("failover orders --reason a --reason b"),
            Err(UsageError::Repeated("--reason".into()))
        );
        let long = "x".repeat(MAX_REASON + 1);
        assert_eq!(
            why(&format!("failover orders --reason {long}")),
            Err(UsageError::TooLong("--reason".into(), MAX_REASON))
        );
        let s = settings();
        let Ok(Command::Failover(f)) = parse("failover orders --reason \"primary lost\" --ticket INC-7", &s) else {
            panic!("failover");
        };
        assert_eq!(
            (f.reason.as_deref(), f.ticket.as_deref()),
            (Some("primary lost"), Some("INC-7"))
        );
    }

    #[test]
    fn malformed_failovers_say_what_is_wrong() {
        assert_eq!(words("failover"), Err(UsageError::MissingCluster("failover")));
        assert_eq!(
            words("failover orders --to"),
            Err(UsageError::MissingValue("--to".into()))
        );
        assert_eq!(
            words("failover orders --mode yolo"),
            Err(UsageError::BadMode("yolo".into()))
        );
        assert_eq!(
            words("failover orders --force"),
            Err(UsageError::UnknownOption("--force".into()))
        );
        assert_eq!(
            words("failover orders --to a --to b"),
            Err(UsageError::Repeated("--to".into()))
        );
        assert_eq!(
            words("failover orders billing"),
            Err(UsageError::Unexpected("billing".into()))
        );
        assert_eq!(words("launch"), Err(UsageError::UnknownCommand("launch".into())));
    }

    #[test]
    fn resume_takes_a_run_and_abandon_a_run_and_a_reason() {
        let s = settings();
        let usage = |e| Err(Rejected::Usage(e));
        assert_eq!(parse("resume 3", &s), Ok(Command::Resume { run: 3.into() }));
        assert_eq!(parse("resume", &s), usage(UsageError::MissingRun("resume")));
        assert_eq!(parse("resume 3 now", &s), usage(UsageError::Unexpected("now".into())));
        assert_eq!(
            parse("abandon #3 DNS  moved by hand", &s),
            Ok(Command::Abandon {
                run: 3.into(),
                reason: "DNS moved by hand".into()
            })
        );
        assert_eq!(parse("abandon 3", &s), usage(UsageError::MissingReason));
        assert_eq!(parse("abandon x", &s), usage(UsageError::MissingRun("abandon")));
    }

    #[test]
    fn cancel_takes_a_request_number_and_history_an_optional_cluster() {
        let s = settings();
        let usage = |e| Err(Rejected::Usage(e));
        assert_eq!(parse("cancel 17", &s), Ok(Command::Cancel { request: 17.into() }));
        assert_eq!(parse("cancel #17", &s), Ok(Command::Cancel { request: 17.into() }));
        assert_eq!(parse("cancel", &s), usage(UsageError::MissingRequest));
        assert_eq!(parse("cancel orders", &s), usage(UsageError::MissingRequest));
        assert_eq!(parse("history", &s), Ok(Command::History { cluster: None }));
        assert!(matches!(
            parse("history orders", &s),
            Ok(Command::History { cluster: Some(c) }) if c.name.as_str() == "orders"
        ));
    }

    #[test]
    fn pending_takes_no_arguments() {
        let s = settings();
        assert_eq!(parse("pending", &s), Ok(Command::Pending));
        assert_eq!(parse("PENDING", &s), Ok(Command::Pending));
        assert_eq!(
            parse("pending orders", &s),
            Err(Rejected::Usage(UsageError::Unexpected("orders".into())))
        );
    }

    #[test]
    fn only_the_bots_own_modal_with_a_request_id_it_wrote_is_a_submission() {
        let values = serde_json::json!({"reason": {"reason": {"type": "plain_text_input", "value": "  not now \n"}}});
        assert_eq!(
            Submission::parse(DENY_REASON_VIEW, "7", &values),
            Some(Submission::DenyReason {
                request: 7.into(),
                reason: "not now".into()
            })
        );
        let empty = serde_json::json!({"reason": {"reason": {"type": "plain_text_input", "value": null}}});
        assert_eq!(
            Submission::parse(DENY_REASON_VIEW, "7", &empty),
            Some(Submission::DenyReason {
                request: 7.into(),
                reason: String::new()
            })
        );
        assert_eq!(Submission::parse("other_view", "7", &values), None);
        for forged in ["", "0", "x", "-7", "7,8", "{\"request\":7}"] {
            assert_eq!(Submission::parse(DENY_REASON_VIEW, forged, &values), None, "{forged:?}");
        }
    }

    #[test]
    fn a_cluster_or_region_the_settings_lack_is_answered_with_those_they_have() {
        let s = settings();
        let Err(Rejected::NotConfigured { verb, cluster, why }) = parse("history billing", &s) else {
            panic!("history billing");
        };
        assert_eq!((verb, cluster.as_str()), ("history", "billing"));
        assert_eq!(
            why,
            NotConfigured::Cluster {
                typed: "billing".into(),
                configured: vec!["orders".into()]
            }
        );
        let Err(Rejected::NotConfigured { verb, cluster, why }) = parse("failover orders --to eu-west-1", &s) else {
            panic!("failover to eu-west-1");
        };
        assert_eq!((verb, cluster.as_str()), ("failover", "orders"));
        assert_eq!(
            why,
            NotConfigured::Region {
                typed: "eu-west-1".into(),
                cluster: "orders".into(),
                regions: vec!["us-east-1".into(), "us-west-2".into()]
            }
        );
        // The words are read first: a malformed command is a usage error whatever it names.
        assert_eq!(
            parse("failover billing --mode yolo", &s),
            Err(Rejected::Usage(UsageError::BadMode("yolo".into())))
        );
    }

    #[test]
    fn only_the_bots_own_buttons_with_the_values_it_wrote_are_clicks() {
        assert_eq!(
            Click::parse(DENY, "7"),
            Some(Click::Decide {
                request: 7.into(),
                approve: false
            })
        );
        assert_eq!(
            Click::parse(RESUME_APPROVE, "3:2"),
            Some(Click::DecideResume {
                run: 3.into(),
                token: 2,
                approve: true
            })
        );
        assert_eq!(
            Click::parse(ABANDON_CONFIRM, r#"{"run":3,"reason":"by hand"}"#),
            Some(Click::Abandon {
                run: 3.into(),
                reason: "by hand".into()
            })
        );
        assert_eq!(
            Click::parse(PENDING_DENY, "12"),
            Some(Click::FromList {
                request: 12.into(),
                approve: false
            })
        );
        assert_eq!(
            Click::parse(PENDING_APPROVE, "12"),
            Some(Click::FromList {
                request: 12.into(),
                approve: true
            })
        );
        for forged in ["", "0", "-3", "+3", " 3", "3 ", "3a", "0x3", "99999999999999999999"] {
            assert_eq!(Click::parse(PENDING_DENY, forged), None, "{forged:?}");
        }
        assert_eq!(Click::parse(APPROVE, "x"), None);
        assert_eq!(Click::parse(RESUME_DENY, "3"), None);
        assert_eq!(Click::parse("launch", "1"), None);
    }
}
