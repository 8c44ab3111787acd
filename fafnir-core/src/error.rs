use crate::token::TokenError;

/// Errors of the core: storage, migrations, keys and configuration.
///
/// Messages never contain a database URL (it may hold a password), a key or a token.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL scheme `{0}`: expected sqlite://… or postgres://…")]
    UnsupportedDatabaseUrl(String),
    #[error("signing key error: {0}")]
    Key(String),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
}

impl CoreError {
    /// A unique-constraint violation: the caller lost a race or repeated a create.
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, CoreError::Database(e) if is_unique_violation(e))
    }

    /// The database cannot be reached right now (see [`is_unavailable`]): the request may
    /// succeed if retried shortly, and nothing it asked for was done.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, CoreError::Database(e) if is_unavailable(e))
    }
}

/// Whether a sqlx error means "the database is unreachable" rather than "the statement is
/// wrong": no connection could be had within the pool's acquire timeout, the connection broke,
/// or the server is shutting down, starting up or out of connections. Transports answer these
/// with 503 / UNAVAILABLE and a retry hint instead of an internal error.
pub fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => true,
        sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => match db.code().as_deref() {
            // Postgres class 08 (connection exception), 57P01-57P03 (admin/crash shutdown,
            // cannot connect now), 53300 (too many connections).
            Some(code) => code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300"),
            None => false,
        },
        _ => false,
    }
}

/// Whether a sqlx error is a unique-constraint violation, on either backend.
pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            db.is_unique_violation()
                // The Any driver does not always carry the kind through; fall back on the codes:
                // Postgres 23505, SQLite 2067 (SQLITE_CONSTRAINT_UNIQUE) / 1555 (PRIMARYKEY).
                || matches!(db.code().as_deref(), Some("23505") | Some("2067") | Some("1555"))
        }
        _ => false,
    }
}
