//! Access tokens: issue (EdDSA sign) and verify.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use fafnir_core::keys::KeyManager;
use fafnir_core::testing::TestDb;
use fafnir_core::token::{AccessClaims, TokenAudience};
use fafnir_core::{SessionId, SharedClock, SystemClock, UserId};

fn tokens(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(TestDb::sqlite());
    let clock: SharedClock = Arc::new(SystemClock);
    let km = rt.block_on(KeyManager::load_or_create(db.db.clone(), clock.clone(), Duration::from_secs(960))).unwrap();
    let now = clock.now().timestamp();
    let claims = AccessClaims {
        iss: "fafnir".into(),
        aud: "fafnir".into(),
        sub: UserId::new(),
        sid: SessionId::new(),
        iat: now,
        exp: now + 900,
        jti: "0123456789abcdef0123456789abcdef".into(),
        nbf: None,
    };
    let aud = TokenAudience::new("fafnir", "fafnir", std::time::Duration::from_secs(900));
    let token = km.sign(&claims).unwrap();
    let mut g = c.benchmark_group("access_token");
    g.bench_function("issue", |b| b.iter(|| km.sign(&claims).unwrap()));
    g.bench_function("verify", |b| b.iter(|| km.verify_cached(&token, &aud).unwrap()));
    g.finish();
}

criterion_group!(benches, tokens);
criterion_main!(benches);
