//! The AWS wire protocols the emulator speaks: SigV4 scope, RDS, STS and IAM query/XML, Route 53 REST/XML,
//! CloudWatch RPC v2 CBOR, Secrets Manager JSON 1.1.

pub mod cbor;
pub mod iam;
pub mod json;
pub mod query;
pub mod rest;
pub mod sigv4;
pub mod xml;
