use std::fmt;

use fafnir_core::{CoreError, Permission, PermissionError, UserId};
use serde::{Deserialize, Serialize};

/// A role name: 1–64 characters of `a-z`, `0-9`, `_`, `-`, starting with a letter.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RoleName(String);

impl RoleName {
    pub fn parse(s: &str) -> Result<Self, RbacError> {
        let b = s.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= 64
            && b[0].is_ascii_lowercase()
            && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'-'));
        if ok {
            Ok(RoleName(s.to_owned()))
        } else {
            Err(RbacError::InvalidRoleName)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RoleName {
    type Error = RbacError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        RoleName::parse(&s)
    }
}

impl From<RoleName> for String {
    fn from(r: RoleName) -> String {
        r.0
    }
}

impl fmt::Display for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RoleName({})", self.0)
    }
}

/// The seeded role with every permission.
pub const ADMIN: &str = "admin";
/// The seeded role every new user gets.
pub const MEMBER: &str = "member";

/// A role as stored: its own permissions and the roles it inherits from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    pub name: RoleName,
    pub description: String,
    pub permissions: Vec<Permission>,
    pub inherits: Vec<RoleName>,
    /// Seeded roles (`admin`, `member`) cannot be deleted.
    pub builtin: bool,
}

pub use fafnir_core::authz::{CheckCode, Decision};

#[derive(Debug, thiserror::Error)]
pub enum RbacError {
    #[error("role names are 1 to 64 characters of a-z, 0-9, _ and -, starting with a letter")]
    InvalidRoleName,
    #[error("invalid permission: {0}")]
    InvalidPermission(#[from] PermissionError),
    #[error("role `{0}` does not exist")]
    RoleNotFound(RoleName),
    #[error("role `{0}` already exists")]
    RoleExists(RoleName),
    #[error("role `{0}` is built in and cannot be deleted")]
    BuiltinRole(RoleName),
    #[error("role `{0}` would inherit from itself through {1}")]
    Cycle(RoleName, String),
    #[error("user {0} is not known")]
    UserNotFound(UserId),
    #[error(transparent)]
    Store(#[from] CoreError),
}

impl From<sqlx::Error> for RbacError {
    fn from(e: sqlx::Error) -> Self {
        RbacError::Store(CoreError::Database(e))
    }
}

/// A role to create.
#[derive(Debug, Clone)]
pub struct NewRole {
    pub name: RoleName,
    pub description: String,
    pub permissions: Vec<Permission>,
    pub inherits: Vec<RoleName>,
}
