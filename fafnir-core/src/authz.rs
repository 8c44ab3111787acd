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
