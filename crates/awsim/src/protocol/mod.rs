//! The AWS wire protocols the emulator speaks: SigV4 scope, RDS query/XML, Route 53 REST/XML.

pub mod query;
pub mod rest;
pub mod sigv4;
pub mod xml;
