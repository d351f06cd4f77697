//! What the test binaries share: loopback targets ([`server`]; a metrics
//! endpoint to scrape in [`exporter`]; WebSockets
//! in [`ws`], event streams in [`sse`]; HTTP/2 servers written by others,
//! nghttpd, h2o and nginx, in [`peers`]), a fault-injecting proxy to put in front of them ([`proxy`]), `throng
//! record` in front of them and its recordings read back ([`record`]), and running
//! the `throng` binary against them or the lab ([`run`], which also shares
//! the machine's cores between the tests that fill them and the tests
//! that measure: `all_cores`, `steady_cores`).
//!
//! Each binary includes this module with `#[path = "../support/mod.rs"]`;
//! not every binary uses every helper.
#![allow(dead_code)]

pub mod exporter;
pub mod peers;
pub mod proxy;
pub mod record;
pub mod run;
pub mod server;
pub mod sse;
pub mod ws;
