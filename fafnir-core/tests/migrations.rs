//! The two migration dialects cannot drift apart: the same migrations, in the same order, and —
//! applied to real databases — the same tables, columns and indexes.

#![allow(clippy::unwrap_used)] // a panic in a test is a failing test

use std::collections::{BTreeMap, BTreeSet};

use fafnir_core::testing::TestDb;
use fafnir_core::Db;

fn names(dir: &str) -> Vec<String> {
    let path = format!("{}/migrations/{dir}", env!("CARGO_MANIFEST_DIR"));
    let mut v: Vec<String> = std::fs::read_dir(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn both_dialects_have_the_same_migrations() {
    let (sqlite, postgres) = (names("sqlite"), names("postgres"));
    assert!(!sqlite.is_empty());
    assert_eq!(sqlite, postgres, "every migration exists in both dialects, under the same name");
}

type Schema = (BTreeMap<String, BTreeSet<String>>, BTreeSet<String>);

async fn sqlite_schema(db: &Db) -> Schema {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations'",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    let mut out = BTreeMap::new();
    for t in tables {
        let cols: Vec<String> =
            sqlx::query_scalar("SELECT name FROM pragma_table_info($1)").bind(&t).fetch_all(db.pool()).await.unwrap();
        out.insert(t, cols.into_iter().collect());
    }
    let indexes: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_autoindex%'")
            .fetch_all(db.pool())
            .await
            .unwrap();
    (out, indexes.into_iter().collect())
}

async fn postgres_schema(db: &Db) -> Schema {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_name::TEXT, column_name::TEXT FROM information_schema.columns \
         WHERE table_schema = 'public' AND table_name <> '_sqlx_migrations'",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (t, c) in rows {
        out.entry(t).or_default().insert(c);
    }
    // Indexes created by CREATE INDEX (not those behind primary keys and unique constraints).
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT i.indexname::TEXT FROM pg_indexes i WHERE i.schemaname = 'public' AND i.tablename <> '_sqlx_migrations' \
         AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    (out, indexes.into_iter().collect())
}

mod postgres {
    /// Both dialects migrated for real: the same tables, columns and indexes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_and_postgres_schemas_match() {
        let Some(pg) = super::TestDb::postgres("sqlite_and_postgres_schemas_match").await else { return };
        let lite = super::TestDb::sqlite().await;
        let (l, p) = (super::sqlite_schema(&lite.db).await, super::postgres_schema(&pg.db).await);
        assert!(l.0.contains_key("users") && l.0.len() > 5, "{:?}", l.0.keys());
        assert_eq!(l.0, p.0, "tables and columns");
        assert_eq!(l.1, p.1, "indexes");
        lite.cleanup().await;
        pg.cleanup().await;
    }
}
