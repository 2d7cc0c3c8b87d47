//! Tenants: provisioning, the directory, detail, edits and the lifecycle state machine
//! (PRODUCT.md A2–A5; operator guide §1).
//!
//! - [`model`]: states, actions, tiers, the tenant and its stored record, input parsing.
//! - [`directory`]: storage, secondary indexes, paged queries, maintained counters.
//! - [`service`]: the rules (provision, update, transition, expire trial, shred).
//! - [`api`]: JSON routes.

pub mod api;
pub mod directory;
pub mod model;
pub mod service;
