//! Plumbing that every Sustain service shares, so that each service crate holds only
//! its own adapter and store: layered configuration, logging, bearer-token auth with
//! role and administrative scope, one error → `tonic::Status` mapping, field-level
//! encryption, database connection and migrations, the audit log, the outbox change
//! feed and idempotent retries, and a server with health, reflection and graceful
//! shutdown.

pub mod api;
pub mod auth;
pub mod cache;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod error;
pub mod journal;
pub mod metrics;
pub mod ownership;
pub mod placement;
pub mod progress;
pub mod reseal;
pub mod serve;
pub mod telemetry;
pub mod tls;

pub use auth::{Caller, Role, Scope};
pub use error::ServiceError;
