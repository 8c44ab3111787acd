//! Argon2id with the production defaults (m=19456 KiB, t=2, p=1): hash, verify, and a login
//! for an unknown e-mail against a wrong password (they must cost the same).

#![allow(clippy::unwrap_used)]

use criterion::{criterion_group, criterion_main, Criterion};
use fafnir_auth::{Argon2Config, ClientInfo, Password, PasswordHasher};
use fafnir_benches::{auth_stack, PASSWORD};
use fafnir_core::testing::TestDb;

fn passwords(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let hasher = PasswordHasher::new(Argon2Config::default(), 1).unwrap();
    let pw = Password::new(PASSWORD);
    let phc = rt.block_on(hasher.hash(&pw)).unwrap();

    let mut g = c.benchmark_group("argon2id_owasp_default");
    g.sample_size(20);
    g.bench_function("hash", |b| b.to_async(&rt).iter(|| hasher.hash(&pw)));
    g.bench_function("verify", |b| b.to_async(&rt).iter(|| hasher.verify(&pw, Some(&phc))));
    g.finish();

    let db = rt.block_on(TestDb::sqlite());
    let auth = rt.block_on(auth_stack(&db.db, Argon2Config::default()));
    rt.block_on(auth.register("bench@example.com", PASSWORD, None)).unwrap();
    let client = ClientInfo::default();
    let mut g = c.benchmark_group("login_failure_sqlite");
    g.sample_size(20);
    // Both go through the same path: throttle check, lookup, one Argon2 verification (against
    // the account's hash, or a dummy hash of the same cost), failure count.
    g.bench_function("unknown_email", |b| b.to_async(&rt).iter(|| auth.login("nobody@example.com", PASSWORD, &client)));
    g.bench_function("wrong_password", |b| {
        b.to_async(&rt).iter(|| auth.login("bench@example.com", "not the password at all", &client))
    });
    g.finish();
}

criterion_group!(benches, passwords);
criterion_main!(benches);
