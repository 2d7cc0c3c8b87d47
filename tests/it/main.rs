//! Integration tests: one binary (every file under `tests/` is a separate link of the whole
//! dependency tree, which is slow on two cores). Each test drives the real application over HTTP
//! on 127.0.0.1:0 with a temporary data dir; `process` runs the real binary.
//!
//! Set `TEST_LOG=1` to see the server's logs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod api;
mod approvals;
mod audit;
mod backup;
mod browser;
mod channels;
mod console;
mod defaults;
mod edge;
mod enrollment;
mod helpers;
mod identity;
mod invoices;
mod lifecycle;
mod onprem;
mod onprem_console;
mod pools;
mod posture;
mod process;
mod registry;
mod revenue;
mod ship;
mod tenants;
mod tidy;
mod upgrade;
mod webhooks;
