//! What keeps the bot from doing its job right now, for `GET /readyz` and the logs: problems that no
//! retry can fix (a refused Slack token, a missing scope), facts the bot is still waiting for (its
//! Slack workspace), and what the background probes find (the store does not answer, the AWS
//! configuration yields no credentials, the Slack secrets cannot be re-read). Each part of the bot
//! reports and clears its own problem under its own name. A problem never holds a secret's value.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// The parts of the bot that report problems.
pub const SLACK_DELIVERY: &str = "slack delivery";
pub const SLACK_WORKSPACE: &str = "slack workspace";
/// Slack refused the bot token on some Web API call (`invalid_auth`, `token_revoked`, ...): reported
/// by the client, cleared by the next call Slack accepts (the token probe makes one now and then).
pub const SLACK_TOKEN: &str = "slack token";
/// The Slack secrets from Secrets Manager could not be re-read or are malformed (the ones in use stay).
pub const SLACK_SECRETS: &str = "slack secrets";
/// Socket Mode (`slack.mode = "socket"`): not connected yet, or `apps.connections.open` refuses the
/// app-level token; cleared by Slack's `hello` on a new connection.
pub const SLACK_SOCKET: &str = "slack socket mode";
/// The store's probe (a read and an empty write, with a timeout) failed.
pub const STORE: &str = "store";
/// No AWS Region, or the credentials provider yields no credentials.
pub const AWS_CONFIGURATION: &str = "aws configuration";

/// The current problems, by part.
#[derive(Debug, Default)]
pub struct Health {
    problems: Mutex<BTreeMap<&'static str, String>>,
}

impl Health {
    /// Records `part`'s problem (replacing an earlier one); `true` if it is new or changed, so that the
    /// caller logs it once rather than on every retry.
    pub fn report(&self, part: &'static str, problem: impl Into<String>) -> bool {
        let problem = problem.into();
        let mut problems = self.problems.lock().unwrap_or_else(|p| p.into_inner());
        problems.insert(part, problem.clone()) != Some(problem)
    }

    /// Clears `part`'s problem; `true` if there was one.
    pub fn clear(&self, part: &'static str) -> bool {
        self.problems
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(part)
            .is_some()
    }

    /// Every problem, as `part: problem` lines; empty when the bot is ready.
    pub fn problems(&self) -> Vec<String> {
        self.problems
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(part, p)| format!("{part}: {p}"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_is_new_once_and_cleared_once() {
        let h = Health::default();
        assert!(h.report(SLACK_DELIVERY, "token revoked"));
        assert!(!h.report(SLACK_DELIVERY, "token revoked"));
        assert!(h.report(SLACK_DELIVERY, "missing scope chat:write"));
        assert_eq!(h.problems(), vec!["slack delivery: missing scope chat:write"]);
        assert!(h.clear(SLACK_DELIVERY));
        assert!(!h.clear(SLACK_DELIVERY));
        assert!(h.problems().is_empty());
    }
}
