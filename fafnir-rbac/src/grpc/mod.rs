//! `fafnir.security.v1.SecurityService` (feature `grpc`):
//!
//! - [`server`]: [`SecurityGrpc`], the server over [`Rbac`](crate::Rbac);
//! - [`client`]: what other services use, [`RemoteSecurity`] (a
//!   [`PermissionChecker`](fafnir_core::PermissionChecker) and
//!   [`RoleDirectory`](fafnir_core::RoleDirectory)) and [`security_event_sink`] (delivers account
//!   events from auth-service's outbox);
//! - [`convert`]: messages and errors both ways.

pub mod client;
pub mod convert;
pub mod server;

pub use client::{security_event_sink, RemoteSecurity, SecurityEventSink};
pub use fafnir_proto::client::channel;
pub use server::SecurityGrpc;

/// Most permissions one `CheckPermissions` call may ask about.
pub const MAX_BATCH: usize = 100;

/// The fully qualified service name (in metrics and logs).
pub const SERVICE: &str = "fafnir.security.v1.SecurityService";
