//! The integration tests: one binary, one module per feature. Each runs the real bot (its HTTP server
//! and SDK clients, built as `serve` builds it) against the AWS emulator, moto where it is compared,
//! and the Slack stand-in.

mod common;

mod attention;
mod breakglass;
mod checkconfig;
mod cli;
mod commands;
mod connections;
mod delivery;
mod deploy;
mod durability;
mod dynamodb;
mod errors;
mod global_endpoint;
mod hardening;
mod iam_policy;
mod lifecycle;
mod limits;
mod manifest;
mod metrics;
mod modes;
mod pending;
mod policy;
mod preflight;
mod probe;
mod probe_adapter;
mod provisioning;
mod rebuild;
mod records;
mod rotation;
mod runbook;
mod sandbox;
mod secret_scan;
mod secrets;
mod secrets_parity;
mod socket_mode;
mod takeover;
mod verification;
