//! `/aurora help` (or nothing at all), and the answers to text that gives no command.

use crate::slack::command::{NotConfigured, USAGE, UsageError};
use crate::slack::routes::ephemeral;
use axum::response::Response;

/// The usage.
pub fn help() -> Response {
    ephemeral(USAGE)
}

/// What is wrong with the text, then the usage.
pub fn usage_error(e: &UsageError) -> Response {
    ephemeral(format!("{e}.\n\n{USAGE}"))
}

/// The cluster or Region the settings lack, and those they have.
pub fn not_configured(why: &NotConfigured) -> Response {
    ephemeral(why.to_string())
}
