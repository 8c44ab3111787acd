//! Action tokens (the single-use tokens of e-mailed links) against a real database: the same
//! tests on SQLite and on Postgres.

#![allow(clippy::unwrap_used)] // a panic in a test is a failing test

use std::sync::Arc;
use std::time::Duration;

use fafnir_auth::{ActionTokens, Auth, AuthConfig, Purpose, SqlAuthStore};
use fafnir_core::events::Outbox;
use fafnir_core::keys::KeyManager;
use fafnir_core::{Db, Email, ManualClock, SharedClock, UserId};

const PW: &str = "correct horse battery staple";

struct Fixture {
    db: Db,
    auth: Arc<Auth>,
    tokens: ActionTokens,
    clock: Arc<ManualClock>,
}

async fn fixture(db: &Db) -> Fixture {
    let clock = ManualClock::new();
    let shared: SharedClock = clock.clone();
    let outbox = Arc::new(Outbox::new(db.clone(), shared.clone(), vec![]));
    let cfg = AuthConfig {
        argon2: fafnir_auth::Argon2Config { memory_kib: 64, iterations: 1, parallelism: 1 },
        ..AuthConfig::default()
    };
    let keys =
        Arc::new(KeyManager::load_or_create(db.clone(), shared.clone(), Duration::from_secs(3600)).await.unwrap());
    let store = Arc::new(SqlAuthStore::new(db.clone(), outbox.clone()));
    let auth = Arc::new(Auth::new(cfg, store, keys, shared.clone(), outbox).unwrap());
    Fixture { db: db.clone(), auth, tokens: ActionTokens::new(db.clone(), shared), clock }
}

impl Fixture {
    async fn user(&self, email: &str) -> (UserId, Email) {
        let a = self.auth.register(email, PW, None).await.unwrap();
        (a.id, a.email)
    }

    /// Redeems in a transaction of its own, committed.
    async fn redeem(&self, purpose: Purpose, token: &str) -> Option<fafnir_auth::Redeemed> {
        let mut tx = self.db.pool().begin().await.unwrap();
        let r = self.tokens.redeem(&mut tx, purpose, token).await.unwrap();
        tx.commit().await.unwrap();
        r
    }
}

async fn a_token_redeems_once_and_only_for_its_purpose(db: Db) {
    let f = fixture(&db).await;
    let (ada, email) = f.user("ada@example.com").await;
    let t = f.tokens.issue(Purpose::VerifyEmail, ada, &email).await.unwrap();
    assert_eq!(t.expose().len(), 43, "256 bits, base64url");
    assert_eq!(format!("{t:?}"), "ActionToken(***)");
    assert_eq!(f.redeem(Purpose::ResetPassword, t.expose()).await, None, "another purpose");
    assert_eq!(f.redeem(Purpose::ChangeEmail, t.expose()).await, None, "another purpose");
    let r = f.redeem(Purpose::VerifyEmail, t.expose()).await.unwrap();
    assert_eq!((r.user_id, r.email), (ada, email));
    assert_eq!(f.redeem(Purpose::VerifyEmail, t.expose()).await, None, "single use");
    for junk in ["", "x", &"A".repeat(43), &"A".repeat(10_000)] {
        assert_eq!(f.redeem(Purpose::VerifyEmail, junk).await, None);
    }
}

async fn only_a_hash_of_the_token_is_stored(db: Db) {
    let f = fixture(&db).await;
    let (ada, email) = f.user("ada@example.com").await;
    let t = f.tokens.issue(Purpose::ResetPassword, ada, &email).await.unwrap();
    let stored: Vec<String> =
        sqlx::query_scalar("SELECT token_hash FROM action_tokens").fetch_all(f.db.pool()).await.unwrap();
    assert_eq!(stored, [fafnir_auth::sha256_hex(t.expose())]);
}

async fn a_rolled_back_redemption_leaves_the_token_usable(db: Db) {
    let f = fixture(&db).await;
    let (ada, email) = f.user("ada@example.com").await;
    let t = f.tokens.issue(Purpose::ResetPassword, ada, &email).await.unwrap();
    let mut tx = f.db.pool().begin().await.unwrap();
    assert!(f.tokens.redeem(&mut tx, Purpose::ResetPassword, t.expose()).await.unwrap().is_some());
    tx.rollback().await.unwrap();
    assert!(f.redeem(Purpose::ResetPassword, t.expose()).await.is_some(), "the change it authorised did not happen");
}

async fn tokens_expire_after_their_purposes_lifetime(db: Db) {
    let f = fixture(&db).await;
    let (ada, email) = f.user("ada@example.com").await;
    for p in Purpose::ALL {
        let early = f.tokens.issue(p, ada, &email).await.unwrap();
        let late = f.tokens.issue(p, ada, &email).await.unwrap();
        f.clock.advance(p.lifetime() - Duration::from_secs(1));
        assert!(f.redeem(p, early.expose()).await.is_some(), "{p:?}: valid until its lifetime is over");
        f.clock.advance(Duration::from_secs(1));
        assert_eq!(f.redeem(p, late.expose()).await, None, "{p:?}: expired at its lifetime");
    }
    assert_eq!(Purpose::ResetPassword.lifetime(), Duration::from_secs(1800));
}

async fn revoking_ends_only_that_users_tokens_of_those_purposes(db: Db) {
    let f = fixture(&db).await;
    let (ada, a_mail) = f.user("ada@example.com").await;
    let (bob, b_mail) = f.user("bob@example.com").await;
    let ada_reset = f.tokens.issue(Purpose::ResetPassword, ada, &a_mail).await.unwrap();
    let ada_change = f.tokens.issue(Purpose::ChangeEmail, ada, &a_mail).await.unwrap();
    let ada_verify = f.tokens.issue(Purpose::VerifyEmail, ada, &a_mail).await.unwrap();
    let bob_reset = f.tokens.issue(Purpose::ResetPassword, bob, &b_mail).await.unwrap();
    let mut tx = f.db.pool().begin().await.unwrap();
    let n = f.tokens.revoke(&mut tx, ada, &[Purpose::ResetPassword, Purpose::ChangeEmail]).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(n, 2);
    assert_eq!(f.redeem(Purpose::ResetPassword, ada_reset.expose()).await, None);
    assert_eq!(f.redeem(Purpose::ChangeEmail, ada_change.expose()).await, None);
    assert!(f.redeem(Purpose::VerifyEmail, ada_verify.expose()).await.is_some());
    assert!(f.redeem(Purpose::ResetPassword, bob_reset.expose()).await.is_some());
}

async fn of_concurrent_redemptions_exactly_one_wins(db: Db) {
    let f = Arc::new(fixture(&db).await);
    let (ada, email) = f.user("ada@example.com").await;
    let t = f.tokens.issue(Purpose::ResetPassword, ada, &email).await.unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (f, t) = (f.clone(), t.expose().to_owned());
            tokio::spawn(async move {
                // A busy SQLite may refuse a writer; that is a loss, not a second win.
                let Ok(mut tx) = f.db.pool().begin().await else { return false };
                let won = matches!(f.tokens.redeem(&mut tx, Purpose::ResetPassword, &t).await, Ok(Some(_)));
                won && tx.commit().await.is_ok()
            })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        wins += usize::from(t.await.unwrap());
    }
    assert_eq!(wins, 1);
}

async fn deleting_the_user_deletes_its_tokens_and_prune_clears_dead_ones(db: Db) {
    let f = fixture(&db).await;
    let (ada, a_mail) = f.user("ada@example.com").await;
    let (bob, b_mail) = f.user("bob@example.com").await;
    f.tokens.issue(Purpose::VerifyEmail, ada, &a_mail).await.unwrap();
    let used = f.tokens.issue(Purpose::VerifyEmail, bob, &b_mail).await.unwrap();
    f.tokens.issue(Purpose::ResetPassword, bob, &b_mail).await.unwrap();
    f.auth.delete_user(ada).await.unwrap();
    let count = || async {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM action_tokens").fetch_one(f.db.pool()).await.unwrap()
    };
    assert_eq!(count().await, 2, "ada's token went with her account");
    assert!(f.redeem(Purpose::VerifyEmail, used.expose()).await.is_some());
    assert_eq!(f.tokens.prune().await.unwrap(), 0, "a day's grace for used and expired tokens");
    f.clock.advance(Duration::from_secs(25 * 3600));
    assert_eq!(f.tokens.prune().await.unwrap(), 2, "used, and expired (the reset token lived 30 min)");
    assert_eq!(count().await, 0);
}

fafnir_core::conformance_tests!(
    a_token_redeems_once_and_only_for_its_purpose,
    only_a_hash_of_the_token_is_stored,
    a_rolled_back_redemption_leaves_the_token_usable,
    tokens_expire_after_their_purposes_lifetime,
    revoking_ends_only_that_users_tokens_of_those_purposes,
    of_concurrent_redemptions_exactly_one_wins,
    deleting_the_user_deletes_its_tokens_and_prune_clears_dead_ones,
);
