//! `/aurora help` (or nothing at all), and the answers to text that gives no command.

use super::ephemeral;
use crate::slack::command::{NotConfigured, UsageError};
use crate::slack::render;
use axum::response::Response;

/// The usage.
pub fn help() -> Response {
    ephemeral(render::usage())
}

/// What is wrong with the text, then the usage.
pub fn usage_error(e: &UsageError) -> Response {
    ephemeral(render::usage_error(e))
}

/// The cluster or Region the settings lack, and those they have.
pub fn not_configured(why: &NotConfigured) -> Response {
    ephemeral(render::not_configured(why))
}
