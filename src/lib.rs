//! Tenantry: the control plane of a multi-tenant SaaS platform in one binary.
pub mod actor;
pub mod clock;
pub mod store;
