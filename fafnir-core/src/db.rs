//! The database handle: one pool, SQLite or PostgreSQL, chosen by URL.
//!
//! Every store in Fafnir is written once against sqlx's `Any` driver with SQL that both backends
//! accept (`$1` placeholders, `ON CONFLICT`, `RETURNING`, TEXT ids, BIGINT epoch-millisecond
//! times), so the same code and the same conformance tests run on both. The schema differs only
//! where the dialects do, in `migrations/sqlite` and `migrations/postgres`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, ConnectOptions, Executor};

use crate::error::CoreError;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The cargo feature that brings this backend's driver.
    pub fn feature(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// Whether this build carries the driver.
    pub fn compiled_in(self) -> bool {
        match self {
            Backend::Sqlite => cfg!(feature = "sqlite"),
            Backend::Postgres => cfg!(feature = "postgres"),
        }
    }

    pub fn from_url(url: &str) -> Result<Self, CoreError> {
        let scheme = url.split(':').next().unwrap_or_default();
        match scheme {
            "sqlite" => Ok(Backend::Sqlite),
            "postgres" | "postgresql" => Ok(Backend::Postgres),
            other => Err(CoreError::UnsupportedDatabaseUrl(other.chars().take(32).collect())),
        }
    }
}

/// Pool settings. The defaults suit one service instance.
#[derive(Debug, Clone)]
pub struct DbOptions {
    pub max_connections: u32,
    /// How long a request waits for a connection (including connecting) before it fails with
    /// "database unavailable". Short on purpose: while the database is down, callers get a
    /// prompt 503 with `Retry-After` rather than a long hang.
    pub acquire_timeout: Duration,
}

/// The default [`DbOptions::acquire_timeout`].
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(1);

impl Default for DbOptions {
    fn default() -> Self {
        Self { max_connections: 16, acquire_timeout: ACQUIRE_TIMEOUT }
    }
}

/// A cloneable handle to the pool.
#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Db").field("backend", &self.backend).finish_non_exhaustive()
    }
}

impl Db {
    /// Connects to `sqlite://path` (the file is created if missing) or `postgres://…`.
    pub async fn connect(url: &str) -> Result<Self, CoreError> {
        Self::connect_with(url, DbOptions::default()).await
    }

    pub async fn connect_with(url: &str, opts: DbOptions) -> Result<Self, CoreError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url)?;
        if !backend.compiled_in() {
            return Err(CoreError::Config(format!(
                "this build has no {backend:?} driver: enable the `{}` feature of fafnir (or fafnir-core)",
                backend.feature()
            )));
        }
        let url = match backend {
            Backend::Sqlite => sqlite_url(url),
            Backend::Postgres => url.to_owned(),
        };
        let connect_opts = AnyConnectOptions::from_str(&url)?
            // Statements are logged by our own spans; sqlx's per-statement logging is noise.
            .disable_statement_logging();
        let mut pool =
            AnyPoolOptions::new().max_connections(opts.max_connections).acquire_timeout(opts.acquire_timeout);
        if backend == Backend::Sqlite {
            pool = pool.after_connect(|conn, _meta| {
                Box::pin(async move {
                    // WAL lets readers proceed during a write; busy_timeout makes concurrent
                    // writers wait for the lock instead of failing with SQLITE_BUSY.
                    conn.execute(
                        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                         PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;",
                    )
                    .await?;
                    Ok(())
                })
            });
        }
        let pool = pool.connect_with(connect_opts).await?;
        Ok(Self { pool, backend })
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Applies pending migrations. Idempotent; safe to call on every start, also from several
    /// instances at once (Postgres takes an advisory lock, SQLite a file lock).
    pub async fn migrate(&self) -> Result<(), CoreError> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&self.pool).await?;
        Ok(())
    }

    /// `SELECT 1`: whether the database answers (for readiness probes).
    pub async fn ping(&self) -> Result<(), CoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A database URL as it may be shown (logs, `Debug`): the SQLite file, or the Postgres host and
/// database — never the credentials a URL can carry.
pub fn describe_url(url: &str) -> String {
    match Backend::from_url(url) {
        Ok(Backend::Sqlite) => {
            let path = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
            format!("SQLite file {}", path.split('?').next().unwrap_or(path))
        }
        Ok(Backend::Postgres) => {
            let rest = url.split_once("://").map_or(url, |(_, r)| r);
            let host_db = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
            format!("PostgreSQL {}", host_db.split('?').next().unwrap_or(host_db))
        }
        Err(_) => "an unsupported database URL".into(),
    }
}

/// Adds `mode=rwc` (create the file if missing) unless the URL already chooses a mode.
fn sqlite_url(url: &str) -> String {
    if url.contains("mode=") || url.contains(":memory:") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_by_scheme() {
        assert_eq!(Backend::from_url("sqlite://x.db").ok(), Some(Backend::Sqlite));
        assert_eq!(Backend::from_url("postgres://u@h/db").ok(), Some(Backend::Postgres));
        let err = Backend::from_url("mysql://root:hunter2@h/db").unwrap_err().to_string();
        assert!(err.contains("mysql") && !err.contains("hunter2"), "{err}");
    }

    #[test]
    fn descriptions_never_carry_credentials() {
        assert_eq!(describe_url("sqlite://fafnir.db"), "SQLite file fafnir.db");
        assert_eq!(describe_url("sqlite://data/f.db?mode=rwc"), "SQLite file data/f.db");
        let pg = describe_url("postgres://fafnir:hunter2@db.internal:5432/auth?sslmode=require");
        assert_eq!(pg, "PostgreSQL db.internal:5432/auth");
        assert!(!describe_url("mysql://root:hunter2@h/db").contains("hunter2"));
    }

    #[test]
    fn sqlite_url_creates_file() {
        assert_eq!(sqlite_url("sqlite://f.db"), "sqlite://f.db?mode=rwc");
        assert_eq!(sqlite_url("sqlite://f.db?mode=ro"), "sqlite://f.db?mode=ro");
    }
}
