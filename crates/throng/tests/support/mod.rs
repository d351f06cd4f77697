//! What the test binaries share: loopback targets ([`server`]) and a
//! fault-injecting proxy to put in front of them ([`proxy`]).
//!
//! Each binary includes this module with `#[path = "../support/mod.rs"]`;
//! not every binary uses every helper.
#![allow(dead_code)]

pub mod proxy;
pub mod server;
