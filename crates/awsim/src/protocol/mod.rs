//! The AWS wire protocols the emulator speaks: SigV4 scope, RDS query/XML, Route 53 REST/XML,
//! CloudWatch RPC v2 CBOR.

pub mod cbor;
pub mod query;
pub mod rest;
pub mod sigv4;
pub mod xml;
