//! # fafnir-rbac
//!
//! Roles with permissions (`resource:action`, wildcards allowed) and inheritance (cycles
//! refused), user-role grants, and the permission check. Seeded roles: `admin` (`*:*`) and
//! `member` (`profile:read`, `profile:write`); new users get `member`.
//!
//! Checks never touch the database: [`Rbac::check`] reads an immutable snapshot that every write
//! replaces, and that [`Rbac::spawn_watcher`] refreshes when another instance writes.

#[cfg(feature = "grpc")]
pub mod grpc;
mod model;
mod service;
mod snapshot;
mod store;

pub use model::{CheckCode, Decision, NewRole, RbacError, Role, RoleName, ADMIN, MEMBER};
pub use service::{Rbac, RbacEvents, DEFAULT_WATCH_INTERVAL, SUBSCRIBER};
pub use snapshot::{find_cycle, PolicyData};
pub use store::{RbacStore, SqlRbacStore};
