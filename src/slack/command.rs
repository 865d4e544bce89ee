//! The `/aurora` command language, parsed from the command's text with no I/O. What the words mean
//! against the configuration (which clusters and Regions exist) is checked by the caller.

use super::render::code;
use crate::types::Mode;

/// A parsed `/aurora` command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `/aurora help`, or nothing at all.
    Help,
    /// `/aurora status [CLUSTER]`.
    Status { cluster: Option<String> },
    /// `/aurora cancel REQUEST`.
    Cancel { request: i64 },
    /// `/aurora history [CLUSTER]`.
    History { cluster: Option<String> },
    /// `/aurora resume RUN`: let a run that needs attention finish (a second person approves).
    Resume { run: i64 },
    /// `/aurora abandon RUN REASON...`: stop a run here (with a confirmation button).
    Abandon { run: i64, reason: String },
    /// `/aurora failover CLUSTER [--to REGION] [--mode detach|failover|switchover]`.
    Failover {
        cluster: String,
        to: Option<String>,
        mode: Option<Mode>,
        /// `--dry-run`: show the plan and its checks; request nothing.
        dry_run: bool,
    },
}

/// Why the text is not a command; shown to the user with the usage.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsageError {
    #[error("unknown command {}", code(.0))]
    UnknownCommand(String),
    #[error("`{0}` needs a cluster name")]
    MissingCluster(&'static str),
    #[error("{} needs a value", code(.0))]
    MissingValue(String),
    #[error("unknown option {}", code(.0))]
    UnknownOption(String),
    #[error("{} is given twice", code(.0))]
    Repeated(String),
    #[error("{} is not a mode: use detach, failover or switchover", code(.0))]
    BadMode(String),
    #[error("unexpected {}", code(.0))]
    Unexpected(String),
    #[error("`cancel` needs a request number, such as `cancel 17` or `cancel #17`")]
    MissingRequest,
    #[error("`{}` needs a run number, as the run's thread gives it, such as `{} 3{}`", .0, .0, if *.0 == "abandon" { " REASON" } else { "" })]
    MissingRun(&'static str),
    #[error("`abandon` needs a reason after the run number, such as `abandon 3 DNS moved by hand`")]
    MissingReason,
}

pub const USAGE: &str = "\
*Usage*
• `/aurora status [CLUSTER]`: each global cluster's members (Region, role, status, endpoints) and where the writer and reader CNAMEs point.
• `/aurora failover CLUSTER [--to REGION] [--mode switchover|failover|detach] [--dry-run]`: ask to move CLUSTER's writer to REGION. A second, authorised person approves it in the incident channel.
   Without `--to`: the only secondary, or the one with the least replication lag. Without `--mode`: a switchover if one is possible; otherwise the bot says which modes are possible, what each loses, and what to type.
   `--mode switchover`: planned, no data loss, needs a healthy primary. `--mode failover`: managed, loses what was not replicated, keeps the global topology. `--mode detach`: removes the target from the global cluster and promotes it; loses what was not replicated; the old primary stays writable.
   `--dry-run`: show the plan and its pre-flight checks to you only; request nothing.
• `/aurora cancel REQUEST`: withdraw request REQUEST (its number, e.g. `17`) before it is decided; the requester or an approver may.
• `/aurora history [CLUSTER]`: the recent requests and runs: who asked, who decided, when, the mode, the outcome and how long it took.
• `/aurora resume RUN`: let a run that needs attention finish: the bot checks that the target is writable and moves the CNAMEs. A second person (an approver) approves it in the run's thread.
• `/aurora abandon RUN REASON`: stop a run here, with a confirmation button; nothing more is changed in AWS and the cluster is free again. The requester or an approver may.
• `/aurora help`: this message.";

/// Parses the text after `/aurora`.
pub fn parse(text: &str) -> Result<Command, UsageError> {
    let mut words = text.split_whitespace();
    let Some(verb) = words.next() else {
        return Ok(Command::Help);
    };
    match verb.to_ascii_lowercase().as_str() {
        "help" | "-h" | "--help" => match words.next() {
            None => Ok(Command::Help),
            Some(w) => Err(UsageError::Unexpected(w.to_owned())),
        },
        "status" => {
            let cluster = words.next().map(str::to_owned);
            match words.next() {
                None => Ok(Command::Status { cluster }),
                Some(w) => Err(UsageError::Unexpected(w.to_owned())),
            }
        }
        "cancel" => {
            let id = words
                .next()
                .and_then(|w| w.trim_start_matches('#').parse::<i64>().ok())
                .filter(|n| *n > 0)
                .ok_or(UsageError::MissingRequest)?;
            match words.next() {
                None => Ok(Command::Cancel { request: id }),
                Some(w) => Err(UsageError::Unexpected(w.to_owned())),
            }
        }
        "resume" | "abandon" => {
            let what = if verb.eq_ignore_ascii_case("resume") {
                "resume"
            } else {
                "abandon"
            };
            let run = words
                .next()
                .and_then(|w| w.trim_start_matches('#').parse::<i64>().ok())
                .filter(|n| *n > 0)
                .ok_or(UsageError::MissingRun(what))?;
            let rest: Vec<&str> = words.collect();
            if what == "resume" {
                match rest.first() {
                    None => Ok(Command::Resume { run }),
                    Some(w) => Err(UsageError::Unexpected((*w).to_owned())),
                }
            } else if rest.is_empty() {
                Err(UsageError::MissingReason)
            } else {
                Ok(Command::Abandon {
                    run,
                    reason: rest.join(" "),
                })
            }
        }
        "history" => {
            let cluster = words.next().map(str::to_owned);
            match words.next() {
                None => Ok(Command::History { cluster }),
                Some(w) => Err(UsageError::Unexpected(w.to_owned())),
            }
        }
        "failover" => {
            let mut cluster = None;
            let mut to = None;
            let mut mode = None;
            let mut dry_run = false;
            while let Some(w) = words.next() {
                match w {
                    "--dry-run" => dry_run = true,
                    "--to" | "--mode" => {
                        let value = words.next().ok_or_else(|| UsageError::MissingValue(w.to_owned()))?;
                        if w == "--to" {
                            if to.replace(value.to_owned()).is_some() {
                                return Err(UsageError::Repeated(w.to_owned()));
                            }
                        } else {
                            let m = Mode::parse(value).ok_or_else(|| UsageError::BadMode(value.to_owned()))?;
                            if mode.replace(m).is_some() {
                                return Err(UsageError::Repeated(w.to_owned()));
                            }
                        }
                    }
                    w if w.starts_with("--") => {
                        return Err(UsageError::UnknownOption(w.to_owned()));
                    }
                    w if cluster.is_none() => cluster = Some(w.to_owned()),
                    w => return Err(UsageError::Unexpected(w.to_owned())),
                }
            }
            let cluster = cluster.ok_or(UsageError::MissingCluster("failover"))?;
            Ok(Command::Failover {
                cluster,
                to,
                mode,
                dry_run,
            })
        }
        other => Err(UsageError::UnknownCommand(other.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_text_and_help_are_help() {
        assert_eq!(parse(""), Ok(Command::Help));
        assert_eq!(parse("   "), Ok(Command::Help));
        assert_eq!(parse("help"), Ok(Command::Help));
    }

    #[test]
    fn status_takes_an_optional_cluster() {
        assert_eq!(parse("status"), Ok(Command::Status { cluster: None }));
        assert_eq!(
            parse("status orders"),
            Ok(Command::Status {
                cluster: Some("orders".into())
            })
        );
        assert_eq!(parse("status a b"), Err(UsageError::Unexpected("b".into())));
    }

    #[test]
    fn failover_takes_a_cluster_and_options_in_any_order() {
        assert_eq!(
            parse("failover orders --to us-west-2 --mode detach"),
            Ok(Command::Failover {
                cluster: "orders".into(),
                to: Some("us-west-2".into()),
                mode: Some(Mode::Detach),
                dry_run: false,
            })
        );
        assert_eq!(
            parse("failover --mode switchover orders --dry-run"),
            Ok(Command::Failover {
                cluster: "orders".into(),
                to: None,
                mode: Some(Mode::Switchover),
                dry_run: true,
            })
        );
    }

    #[test]
    fn malformed_failovers_say_what_is_wrong() {
        assert_eq!(parse("failover"), Err(UsageError::MissingCluster("failover")));
        assert_eq!(
            parse("failover orders --to"),
            Err(UsageError::MissingValue("--to".into()))
        );
        assert_eq!(
            parse("failover orders --mode yolo"),
            Err(UsageError::BadMode("yolo".into()))
        );
        assert_eq!(
            parse("failover orders --force"),
            Err(UsageError::UnknownOption("--force".into()))
        );
        assert_eq!(
            parse("failover orders --to a --to b"),
            Err(UsageError::Repeated("--to".into()))
        );
        assert_eq!(
            parse("failover orders billing"),
            Err(UsageError::Unexpected("billing".into()))
        );
        assert_eq!(parse("launch"), Err(UsageError::UnknownCommand("launch".into())));
    }

    #[test]
    fn resume_takes_a_run_and_abandon_a_run_and_a_reason() {
        assert_eq!(parse("resume 3"), Ok(Command::Resume { run: 3 }));
        assert_eq!(parse("resume"), Err(UsageError::MissingRun("resume")));
        assert_eq!(parse("resume 3 now"), Err(UsageError::Unexpected("now".into())));
        assert_eq!(
            parse("abandon #3 DNS  moved by hand"),
            Ok(Command::Abandon {
                run: 3,
                reason: "DNS moved by hand".into()
            })
        );
        assert_eq!(parse("abandon 3"), Err(UsageError::MissingReason));
        assert_eq!(parse("abandon x"), Err(UsageError::MissingRun("abandon")));
    }

    #[test]
    fn cancel_takes_a_request_number_and_history_an_optional_cluster() {
        assert_eq!(parse("cancel 17"), Ok(Command::Cancel { request: 17 }));
        assert_eq!(parse("cancel #17"), Ok(Command::Cancel { request: 17 }));
        assert_eq!(parse("cancel"), Err(UsageError::MissingRequest));
        assert_eq!(parse("cancel orders"), Err(UsageError::MissingRequest));
        assert_eq!(parse("history"), Ok(Command::History { cluster: None }));
        assert_eq!(
            parse("history orders"),
            Ok(Command::History {
                cluster: Some("orders".into())
            })
        );
    }
}
