//! Apps: the parent product surface every tenant belongs to (PRODUCT.md A1).
//!
//! - [`service`]: model, rules and storage.
//! - [`api`]: `/api/apps` routes.

pub mod api;
pub mod service;
