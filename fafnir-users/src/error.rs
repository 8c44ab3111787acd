//! The one error type of fafnir-users.

use fafnir_core::CoreError;

use crate::profile::FieldError;
use crate::service::MAX_PAGE_SIZE;

#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    #[error("profile not found")]
    NotFound,
    #[error("invalid profile: {}", .0.iter().map(|e| format!("{} {}", e.field, e.message)).collect::<Vec<_>>().join("; "))]
    Validation(Vec<FieldError>),
    #[error("invalid page cursor")]
    InvalidCursor,
    #[error("page size must be between 1 and {MAX_PAGE_SIZE}")]
    InvalidPageSize,
    #[error("authentication required")]
    Unauthenticated,
    #[error("{0}")]
    Forbidden(String),
    #[error("the user service is unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] CoreError),
}

impl From<sqlx::Error> for UsersError {
    fn from(e: sqlx::Error) -> Self {
        UsersError::Store(CoreError::Database(e))
    }
}
