//! Pools and routing (PRODUCT.md B8; operator guide §2).
//!
//! - [`model`]: pool kinds, statuses, the pool and its stored record.
//! - [`service`]: default layout, assignment by tier, release, flips, route resolution.
//! - [`cache`]: the in-memory route cache with a TTL, invalidated on commit.
//! - [`api`]: `/api/pools` and `/api/routes` routes.

pub mod api;
pub mod cache;
pub mod model;
pub mod service;
