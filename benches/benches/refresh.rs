//! Refresh-token rotation on each backend (SQLite always; Postgres when
//! FAFNIR_TEST_DATABASE_URL is set).

#![allow(clippy::unwrap_used)]

use std::sync::Mutex;

use criterion::{criterion_group, criterion_main, Criterion};
use fafnir_auth::{Argon2Config, ClientInfo};
use fafnir_benches::{auth_stack, databases, PASSWORD};

fn refresh(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dbs = rt.block_on(databases("bench_refresh"));
    let mut g = c.benchmark_group("refresh_rotation");
    g.sample_size(50);
    for (name, db) in &dbs {
        let auth = rt.block_on(auth_stack(&db.db, Argon2Config::default()));
        rt.block_on(auth.register("bench@example.com", PASSWORD, None)).unwrap();
        let client = ClientInfo::default();
        let login = rt.block_on(auth.login("bench@example.com", PASSWORD, &client)).unwrap();
        let current = Mutex::new(login.refresh_token.expose().to_owned());
        g.bench_function(*name, |b| {
            b.to_async(&rt).iter(|| async {
                let token = current.lock().unwrap().clone();
                let next = auth.refresh(&token, &client).await.unwrap();
                *current.lock().unwrap() = next.refresh_token.expose().to_owned();
            })
        });
    }
    g.finish();
}

criterion_group!(benches, refresh);
criterion_main!(benches);
