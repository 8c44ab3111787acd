//! The permission-check seam between services.
//!
//! Transports (the REST guard, gRPC handlers, the GraphQL gateway) ask a [`PermissionChecker`].
//! In one process it is `fafnir_rbac::Rbac` answering from memory; across processes it is a gRPC
//! client of security-service. Callers cannot tell the difference.

use serde::{Deserialize, Serialize};

use crate::id::UserId;

/// The outcome code of a permission check (the contract's four codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CheckCode {
    PermissionGranted,
    PermissionDenied,
    UserNotFound,
    InvalidPermission,
}

impl CheckCode {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckCode::PermissionGranted => "PERMISSION_GRANTED",
            CheckCode::PermissionDenied => "PERMISSION_DENIED",
            CheckCode::UserNotFound => "USER_NOT_FOUND",
            CheckCode::InvalidPermission => "INVALID_PERMISSION",
        }
    }
}

/// A check's answer: allowed or not, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub allowed: bool,
    pub code: CheckCode,
}

impl Decision {
    pub const GRANTED: Decision = Decision { allowed: true, code: CheckCode::PermissionGranted };
    pub const DENIED: Decision = Decision { allowed: false, code: CheckCode::PermissionDenied };
    pub const NO_USER: Decision = Decision { allowed: false, code: CheckCode::UserNotFound };
    pub const INVALID: Decision = Decision { allowed: false, code: CheckCode::InvalidPermission };
}

/// A user's roles and effective permissions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grants {
    pub roles: Vec<String>,
    pub permissions: Vec<String>,
}

/// The checker could not answer (a remote service is down, or failed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// The service refused the forwarded token.
    #[error("the service did not accept the caller's token")]
    Unauthenticated,
    /// The service refused the call for lack of a permission.
    #[error("{0}")]
    Forbidden(String),
    /// What the call names (a user, a role) does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The call's arguments are malformed (a role name, a user id).
    #[error("{0}")]
    InvalidArgument(String),
    #[error("service error: {0}")]
    Internal(String),
}

/// `bearer` is the caller's access token: a remote implementation forwards it so that the
/// service it asks can authenticate the call (asking about oneself needs nothing more); the
/// in-process implementation ignores it.
#[async_trait::async_trait]
pub trait PermissionChecker: Send + Sync + std::fmt::Debug {
    /// Checks one permission (given as a string: an invalid one answers `INVALID_PERMISSION`).
    async fn check(&self, bearer: Option<&str>, user: UserId, permission: &str) -> Result<Decision, ServiceError>;
    /// Checks several permissions in one call, against one consistent policy.
    async fn check_many(
        &self,
        bearer: Option<&str>,
        user: UserId,
        permissions: &[String],
    ) -> Result<Vec<Decision>, ServiceError>;
    /// The user's roles and effective permissions; `None` for an unknown user.
    async fn grants(&self, bearer: Option<&str>, user: UserId) -> Result<Option<Grants>, ServiceError>;
}

/// A role as the role directory describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleInfo {
    pub name: String,
    pub description: String,
    /// The role's own permissions (not inherited ones).
    pub permissions: Vec<String>,
    /// The roles it inherits from.
    pub inherits: Vec<String>,
    /// Seeded roles (`admin`, `member`) cannot be deleted.
    pub builtin: bool,
}

/// Most users one [`RoleDirectory::roles_of`] call may ask about.
pub const MAX_ROLES_BATCH: usize = 100;

/// Reading and changing role assignments, across the same seam as [`PermissionChecker`]:
/// `fafnir_rbac::Rbac` in one process, a gRPC client of security-service across processes.
///
/// The in-process implementation performs no authorization: callers (the gateway) check the
/// caller's permissions first. The remote one is checked again by security-service.
#[async_trait::async_trait]
pub trait RoleDirectory: Send + Sync + std::fmt::Debug {
    /// Every role, sorted by name.
    async fn roles(&self, bearer: Option<&str>) -> Result<Vec<RoleInfo>, ServiceError>;
    /// Grants `role` to `user` on behalf of `actor` (the caller, for the audit log: the remote
    /// implementation's service learns it from `bearer`); false when the user already had it.
    async fn assign(&self, bearer: Option<&str>, actor: UserId, user: UserId, role: &str)
        -> Result<bool, ServiceError>;
    /// Takes `role` from `user` on behalf of `actor`; false when the user did not have it.
    async fn revoke(&self, bearer: Option<&str>, actor: UserId, user: UserId, role: &str)
        -> Result<bool, ServiceError>;
    /// The directly granted roles of up to [`MAX_ROLES_BATCH`] users in one call; unknown users
    /// are absent from the map.
    async fn roles_of(
        &self,
        bearer: Option<&str>,
        users: &[UserId],
    ) -> Result<std::collections::HashMap<UserId, Vec<String>>, ServiceError>;
}
