//! Shared set-up for the benches: a full auth stack on a fresh database.

#![allow(clippy::unwrap_used)] // bench set-up: a failure should stop the bench loudly

pub mod bare;
pub mod driver;

use std::sync::Arc;
use std::time::Duration;

use fafnir_auth::{Argon2Config, Auth, AuthConfig, SqlAuthStore, ThrottleConfig};
use fafnir_core::events::{AccountEventHandler, Outbox};
use fafnir_core::keys::KeyManager;
use fafnir_core::testing::TestDb;
use fafnir_core::{SharedClock, SystemClock};
use fafnir_rbac::{Rbac, RbacEvents, SqlRbacStore};
use fafnir_users::{ProfileEvents, Profiles, SqlProfileStore};

pub const PASSWORD: &str = "correct horse battery staple";

/// A complete in-process stack (auth + RBAC + profiles) on `db`, with throttling off.
pub async fn auth_stack(db: &fafnir_core::Db, argon2: Argon2Config) -> Arc<Auth> {
    let clock: SharedClock = Arc::new(SystemClock);
    let rbac = Arc::new(Rbac::new(Arc::new(SqlRbacStore::new(db.clone(), clock.clone()))).await.unwrap());
    let profiles = Profiles::new(Arc::new(SqlProfileStore::new(db.clone(), clock.clone())));
    let handlers: Vec<Arc<dyn AccountEventHandler>> =
        vec![Arc::new(RbacEvents(rbac)), Arc::new(ProfileEvents(profiles))];
    let outbox = Arc::new(Outbox::new(db.clone(), clock.clone(), handlers));
    let cfg = AuthConfig { argon2, throttle: ThrottleConfig::unlimited(), ..AuthConfig::default() };
    let keys = Arc::new(
        KeyManager::load_or_create(db.clone(), clock.clone(), cfg.access_ttl + Duration::from_secs(60)).await.unwrap(),
    );
    let store = Arc::new(SqlAuthStore::new(db.clone(), outbox.clone()));
    Arc::new(Auth::new(cfg, store, keys, clock, outbox).unwrap())
}

/// A fresh SQLite database, and a Postgres one when `FAFNIR_TEST_DATABASE_URL` is set.
pub async fn databases(name: &str) -> Vec<(&'static str, TestDb)> {
    let mut out = vec![("sqlite", TestDb::sqlite().await)];
    if let Some(pg) = TestDb::postgres(name).await {
        out.push(("postgres", pg));
    }
    out
}
