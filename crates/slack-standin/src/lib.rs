//! A local stand-in for Slack, both ways: a fake Slack Web API that records every call the bot makes
//! (and can print the conversation, for the demo), and a client that sends the bot slash commands and
//! button clicks and modal submissions (`view_submission`) signed exactly as Slack signs them. Used by the bot's `demo` and by its integration
//! tests; never part of a production build (the bot's `demo` feature pulls it in).
//!
//! The fake answers `chat.postMessage`, `chat.update`, `chat.postEphemeral`, `views.open` (a trigger id
//! its senders did not issue is `invalid_trigger_id`), `conversations.open`,
//! `conversations.history` and `conversations.replies` (with message metadata, oldest/latest and cursor
//! pages), `usergroups.users.list` and response_url posts (`/response/{n}`), checks the bot token, and
//! can be told to fail the next calls, or every call for a while, with 429 (Retry-After) or 5xx, to
//! refuse a method in a channel with an error code, or to hold a post's answer.
//!
//! With [`SlackStandIn::enable_socket_mode`] it is also Slack's Socket Mode ([`SocketModeFake`]):
//! `apps.connections.open`, a WebSocket that delivers envelopes, records acks, redelivers what was
//! not acknowledged in time, and sends `disconnect`.
//!
//! This crate does not depend on the bot: it signs requests with its own code ([`signing`]), written
//! from Slack's documentation, so that the tests check the bot's verification against an independent
//! signer rather than against itself.

pub mod limits;
mod sender;
pub mod signing;
mod socket_mode;
mod web_api;

pub use sender::{Answer, SlackSender, Workspace};
pub use signing::Secret;
pub use socket_mode::{REDELIVER_AFTER, SocketAck, SocketModeFake};
pub use web_api::{Failure, Message, PostKind, Recorded, SlackStandIn, issued_trigger};

/// The workspace this fake is: the `team_id` its `auth.test` names and its senders put in requests.
pub const STANDIN_TEAM: &str = "T0STANDIN";
/// The app its senders put in requests (`api_app_id`).
pub const STANDIN_APP: &str = "A0STANDIN";
