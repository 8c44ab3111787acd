//! `fafnir.users.v1.UserService` (feature `grpc`):
//!
//! - [`server`]: [`UsersGrpc`], the server over [`Profiles`](crate::Profiles);
//! - [`client`]: what other services use, [`RemoteProfiles`] (a
//!   [`ProfileDirectory`](crate::ProfileDirectory)) and [`users_event_sink`];
//! - [`convert`]: messages and errors both ways.

pub mod client;
pub mod convert;
pub mod server;

pub use client::{users_event_sink, RemoteProfiles, UsersEventSink};
pub use server::UsersGrpc;

/// The fully qualified service name (in metrics and logs).
pub const SERVICE: &str = "fafnir.users.v1.UserService";
