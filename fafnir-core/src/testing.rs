//! Test support (feature `test-util`): a fresh, migrated database per test, on SQLite or Postgres.
//!
//! Postgres tests run when `FAFNIR_TEST_DATABASE_URL` (or `DATABASE_URL`) names a server; each
//! test creates its own database there and drops it afterwards. Without a URL they print a skip
//! line to the terminal (not swallowed by the test harness) and return; with
//! `FAFNIR_REQUIRE_POSTGRES=1` (as CI sets) a missing URL fails the test instead.

use std::io::Write;

use crate::db::{Db, DbOptions};

/// Tests that fire many requests at one small pool wait longer for a connection than a server
/// would: a slow CI machine must not turn into "database unavailable".
const TEST_ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A migrated database that lives as long as the test.
#[derive(Debug)]
pub struct TestDb {
    pub db: Db,
    /// The URL of this database, for code that opens its own pool (servers, binaries).
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

/// The Postgres server URL for tests, if configured.
pub fn postgres_url() -> Option<String> {
    std::env::var("FAFNIR_TEST_DATABASE_URL")
        .ok()
        .or_else(|| std::env::var("DATABASE_URL").ok())
        .filter(|u| u.starts_with("postgres"))
}

fn require_postgres() -> bool {
    std::env::var("FAFNIR_REQUIRE_POSTGRES").is_ok_and(|v| v == "1" || v == "true")
}

/// Replaces the database name in a Postgres URL.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_part = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{host_part}/{name}?{q}"),
        None => format!("{host_part}/{name}"),
    }
}

impl TestDb {
    /// A fresh SQLite file in a temporary directory.
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("test setup: temp dir");
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        let db = Db::connect_with(&url, DbOptions { max_connections: 8, acquire_timeout: TEST_ACQUIRE_TIMEOUT })
            .await
            .expect("test setup: open sqlite");
        db.migrate().await.expect("test setup: migrate sqlite");
        TestDb { db, url, _dir: Some(dir), pg: None }
    }

    /// A fresh Postgres database, or `None` (after printing why) when no server is configured.
    pub async fn postgres(test_name: &str) -> Option<TestDb> {
        let Some(admin_url) = postgres_url() else {
            assert!(!require_postgres(), "FAFNIR_REQUIRE_POSTGRES is set but FAFNIR_TEST_DATABASE_URL is not");
            let _ = writeln!(
                std::io::stderr(),
                "SKIP postgres::{test_name}: set FAFNIR_TEST_DATABASE_URL=postgres://user@host/db to run it"
            );
            return None;
        };
        let name = format!("fafnir_t_{}", uuid::Uuid::new_v4().simple());
        let admin = Db::connect_with(&admin_url, DbOptions { max_connections: 1, ..Default::default() })
            .await
            .expect("test setup: connect to the Postgres server in FAFNIR_TEST_DATABASE_URL");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(admin.pool())
            .await
            .expect("test setup: create test database");
        admin.close().await;
        let url = with_database(&admin_url, &name);
        let db = Db::connect_with(&url, DbOptions { max_connections: 8, acquire_timeout: TEST_ACQUIRE_TIMEOUT })
            .await
            .expect("test setup: connect to test database");
        db.migrate().await.expect("test setup: migrate postgres");
        Some(TestDb { db, url, _dir: None, pg: Some((admin_url, name)) })
    }

    /// Closes the pool and drops the Postgres database.
    pub async fn cleanup(self) {
        self.db.close().await;
        if let Some((admin_url, name)) = self.pg {
            if let Ok(admin) =
                Db::connect_with(&admin_url, DbOptions { max_connections: 1, ..Default::default() }).await
            {
                let _ =
                    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(admin.pool()).await;
                admin.close().await;
            }
        }
    }
}

/// Runs each listed `async fn(Db)` once on SQLite and once on Postgres, as
/// `sqlite::<name>` and `postgres::<name>` tests: one suite, both backends.
///
/// With `@testdb` first, each function gets the `&TestDb` (for tests that need the URL).
#[macro_export]
macro_rules! conformance_tests {
    (@testdb $($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let t = $crate::testing::TestDb::sqlite().await;
                    super::$name(&t).await;
                    t.cleanup().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(t) = $crate::testing::TestDb::postgres(stringify!($name)).await else {
                        return;
                    };
                    super::$name(&t).await;
                    t.cleanup().await;
                }
            )*
        }
    };
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let t = $crate::testing::TestDb::sqlite().await;
                    super::$name(t.db.clone()).await;
                    t.cleanup().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(t) = $crate::testing::TestDb::postgres(stringify!($name)).await else {
                        return;
                    };
                    super::$name(t.db.clone()).await;
                    t.cleanup().await;
                }
            )*
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_database_name() {
        assert_eq!(with_database("postgres://u@h:5432/postgres", "x"), "postgres://u@h:5432/x");
        assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
        assert_eq!(with_database("postgres://u:p@h/db?sslmode=disable", "x"), "postgres://u:p@h/x?sslmode=disable");
    }
}
pub mod otp;
pub mod passkey;
pub mod smtp;
