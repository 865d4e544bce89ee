//! awsim's tests: one binary, one module per service or feature. The SDK clients talk to the emulator
//! over HTTP as the bot does; `moto_parity` compares answers with moto's.

mod common;

mod cloudwatch;
mod control;
mod dns;
mod iam;
mod moto_parity;
mod rds;
mod route53;
mod route53_policies;
mod secrets;
