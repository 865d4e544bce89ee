//! aurora-failover-bot: fail an Aurora Global Database over to another AWS Region from Slack, with a
//! second person's approval, a scripted runbook and a thread that narrates every step.
//!
//! Layout (see ARCHITECTURE.md): `http` takes Slack's requests (verified before anything else) to
//! `commands`, one file per command; `slack/` and `aws/` are the adapters to the outside; `store/` is
//! the durable record; `approval`, `runbook` and `status` are the capabilities, written against the
//! narrow traits in `ports`; `telemetry` is the bot's Prometheus metrics (`GET /metrics`); `startup`
//! wires it all; `demo` runs it all locally on the AWS emulator
//! (`crates/awsim`) and the Slack stand-in (`crates/slack-standin`), behind the cargo feature `demo`
//! (on by default, off in the production build).

pub mod approval;
pub mod audit;
pub mod aws;
#[cfg(unix)]
pub mod breakglass;
pub mod checkconfig;
pub mod cli;
pub mod commands;
pub mod database;
#[cfg(feature = "demo")]
pub mod demo;
pub mod health;
pub mod healthcheck;
pub mod http;
pub mod lease;
pub mod ports;
pub mod records;
pub mod runbook;
pub mod server;
pub mod settings;
pub mod slack;
pub mod startup;
pub mod status;
pub mod store;
pub mod telemetry;
pub mod terminal;
pub mod types;

#[cfg(test)]
mod testing;
