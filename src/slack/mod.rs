//! Everything Slack: request verification, the command language, rendering, the Web API client, the
//! outbox that delivers every message in order, user-group lookups, and the HTTP routes.

pub mod chat;
pub mod client;
pub mod command;
pub mod directory;
pub mod limits;
pub mod outbox;
pub mod render;
pub mod socket;
pub mod verify;
pub mod workspace;
