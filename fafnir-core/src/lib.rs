//! # fafnir-core
//!
//! The ground every Fafnir crate stands on: typed ids and parsed values ([`UserId`], [`Email`],
//! [`Permission`]), the [`Clock`], [`Config`], the database handle [`Db`] (SQLite or Postgres,
//! chosen by URL) with its migrations, Ed25519 signing keys and JWKS ([`keys::KeyManager`]),
//! access-token verification ([`token`]) and the account-event outbox ([`events`]).

pub mod audit;
pub mod authz;
pub mod cache;
pub mod clock;
pub mod config;
pub mod db;
pub mod email;
pub mod error;
pub mod events;
pub mod id;
pub mod issuer;
#[cfg(feature = "jwks")]
pub mod jwks;
pub mod keys;
pub mod permission;
#[cfg(feature = "jwks")]
pub mod remote;
pub mod token;

#[cfg(feature = "test-util")]
pub mod testing;

pub use audit::{AuditEvent, AuditKind, AuditLog, AuditQuery, AuditRecord, ClientInfo};
pub use authz::{
    CheckCode, Decision, Grants, PermissionChecker, RoleDirectory, RoleInfo, ServiceError, MAX_ROLES_BATCH,
};
pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use config::{Config, OAuthProviderConfig};
pub use db::{Backend, Db, DbOptions};
pub use email::{Email, EmailError};
pub use error::{is_unavailable, CoreError};
pub use id::{IdError, SessionId, UserId};
pub use permission::{Permission, PermissionError};
