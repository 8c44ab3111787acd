//! fafnir-core against a real database: the same tests on SQLite and on Postgres.

#![allow(clippy::unwrap_used)] // a panic in a test is a failing test

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use fafnir_core::events::{AccountEvent, AccountEventHandler, HandlerError, Outbox};
use fafnir_core::keys::KeyManager;
use fafnir_core::token::{AccessClaims, CachingVerifier, TokenAudience, TokenError, TokenVerifier};
use fafnir_core::{Db, ManualClock, SessionId, SharedClock, UserId};

fn aud() -> TokenAudience {
    TokenAudience::new("https://id.example", "fafnir", std::time::Duration::from_secs(3600))
}

fn claims(clock: &ManualClock, ttl_s: i64) -> AccessClaims {
    use fafnir_core::Clock;
    let now = clock.now().timestamp();
    AccessClaims {
        iss: "https://id.example".into(),
        aud: "fafnir".into(),
        sub: UserId::new(),
        sid: SessionId::new(),
        iat: now,
        exp: now + ttl_s,
        jti: "j1".into(),
        nbf: None,
    }
}

async fn migrations_are_idempotent(db: Db) {
    db.migrate().await.unwrap();
    db.migrate().await.unwrap();
    db.ping().await.unwrap();
}

async fn first_start_creates_one_key_and_later_starts_reuse_it(db: Db) {
    let clock: SharedClock = ManualClock::new();
    // Several instances starting at once agree on one key.
    let starts = (0..4).map(|_| KeyManager::load_or_create(db.clone(), clock.clone(), Duration::from_secs(900)));
    let managers = futures_join(starts).await;
    let kids: Vec<String> = managers.iter().map(|m| m.active_kid()).collect();
    assert!(kids.iter().all(|k| k == &kids[0]), "{kids:?}");
    assert_eq!(managers[0].jwks().keys.len(), 1);
    let again = KeyManager::load_or_create(db, clock, Duration::from_secs(900)).await.unwrap();
    assert_eq!(again.active_kid(), kids[0]);
}

async fn futures_join<F, T, E>(fs: impl Iterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: std::fmt::Debug + Send + 'static,
{
    let handles: Vec<_> = fs.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap().unwrap());
    }
    out
}

async fn tokens_verify_and_rotation_keeps_old_keys_until_expiry(db: Db) {
    let clock = ManualClock::new();
    let shared: SharedClock = clock.clone();
    let km = KeyManager::load_or_create(db.clone(), shared.clone(), Duration::from_secs(900)).await.unwrap();
    let old_kid = km.active_kid();
    let c = claims(&clock, 900);
    let token = km.sign(&c).unwrap();
    assert_eq!(km.verify_cached(&token, &aud()).unwrap(), c);

    let new_kid = km.rotate().await.unwrap();
    assert_ne!(new_kid, old_kid);
    let kids: Vec<String> = km.jwks().keys.into_iter().map(|k| k.kid).collect();
    assert!(kids.contains(&old_kid) && kids.contains(&new_kid));
    // A token signed before the rotation still verifies, and new tokens use the new key.
    assert!(km.verify_cached(&token, &aud()).is_ok());
    let t2 = km.sign(&claims(&clock, 900)).unwrap();
    assert_eq!(jsonwebtoken::decode_header(&t2).unwrap().kid.as_deref(), Some(new_kid.as_str()));

    // Another instance on the same database learns the new key on the unknown kid.
    let other = KeyManager::load_or_create(db.clone(), shared.clone(), Duration::from_secs(900)).await.unwrap();
    assert_eq!(other.active_kid(), new_kid);

    // Once every token of the old key has expired, the old key leaves the JWKS.
    clock.advance(Duration::from_secs(901));
    km.reload().await.unwrap();
    let kids: Vec<String> = km.jwks().keys.into_iter().map(|k| k.kid).collect();
    assert_eq!(kids, vec![new_kid]);
    assert_eq!(km.verify_cached(&token, &aud()), Err(TokenError::UnknownKey));
}

async fn hostile_tokens_are_refused(db: Db) {
    let clock = ManualClock::new();
    let km = KeyManager::load_or_create(db.clone(), clock.clone(), Duration::from_secs(900)).await.unwrap();
    let good = km.sign(&claims(&clock, 60)).unwrap();
    let parts: Vec<&str> = good.split('.').collect();

    // alg: none, with and without a signature.
    let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"at+jwt"}"#);
    let none = format!("{none_header}.{}.", parts[1]);
    assert_eq!(km.verify_cached(&none, &aud()), Err(TokenError::Malformed));
    // HS256 header (the classic "sign with the public key" confusion).
    let hs = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"at+jwt"}"#);
    let hs = format!("{hs}.{}.{}", parts[1], parts[2]);
    assert_eq!(km.verify_cached(&hs, &aud()), Err(TokenError::UnsupportedAlgorithm));
    // Payload changed, signature kept.
    let mut forged = claims(&clock, 60);
    forged.sub = UserId::new();
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
    let tampered = format!("{}.{}.{}", parts[0], payload, parts[2]);
    assert_eq!(km.verify_cached(&tampered, &aud()), Err(TokenError::BadSignature));
    // Signed by a key this issuer never published.
    let stranger_db = fafnir_core::testing::TestDb::sqlite().await;
    let stranger =
        KeyManager::load_or_create(stranger_db.db.clone(), clock.clone(), Duration::from_secs(60)).await.unwrap();
    let foreign = stranger.sign(&claims(&clock, 60)).unwrap();
    assert_eq!(km.verify(&foreign, &aud()).await, Err(TokenError::UnknownKey));
    // Wrong audience, expiry, garbage.
    let other_aud = TokenAudience::new("https://id.example", "other", std::time::Duration::from_secs(3600));
    assert_eq!(km.verify_cached(&good, &other_aud), Err(TokenError::WrongIssuerOrAudience));
    clock.advance(Duration::from_secs(61));
    assert_eq!(km.verify_cached(&good, &aud()), Err(TokenError::Expired));
    for junk in ["", ".", "..", "a.b.c", "\0\0", &"x".repeat(100_000)] {
        assert!(km.verify_cached(junk, &aud()).is_err(), "{junk:?}");
    }
    stranger_db.cleanup().await;
}

/// Genuine signatures over times no issuer of ours would write: issued or valid only in the
/// future (beyond a minute of clock skew), or living far longer than the access-token TTL.
async fn tokens_with_implausible_times_are_refused(db: Db) {
    let clock = ManualClock::new();
    let km = Arc::new(KeyManager::load_or_create(db.clone(), clock.clone(), Duration::from_secs(900)).await.unwrap());
    let expect = TokenAudience::new("https://id.example", "fafnir", Duration::from_secs(900));
    let now = claims(&clock, 0).iat;
    let with = |f: &dyn Fn(&mut AccessClaims)| {
        let mut c = claims(&clock, 600);
        f(&mut c);
        km.sign(&c).unwrap()
    };
    let ok = with(&|_| {});
    assert!(km.verify_cached(&ok, &expect).is_ok());
    let skewed = with(&|c| c.iat = now + 30);
    assert!(km.verify_cached(&skewed, &expect).is_ok(), "30 s of clock skew is tolerated");
    for (what, token) in [
        ("iat an hour ahead", with(&|c| c.iat = now + 3600)),
        ("nbf an hour ahead", with(&|c| c.nbf = Some(now + 3600))),
        ("a week-long lifetime", with(&|c| c.exp = now + 7 * 86_400)),
    ] {
        assert_eq!(km.verify_cached(&token, &expect), Err(TokenError::ImplausibleTimes), "{what}");
    }
    // The caching verifier holds a cached token to the same rule.
    let cached = CachingVerifier::new(km.clone(), clock.clone(), 100);
    let long = with(&|c| c.exp = now + 7 * 86_400);
    assert_eq!(cached.verify(&long, &expect).await, Err(TokenError::ImplausibleTimes));
}

#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<AccountEvent>>,
    fail: AtomicBool,
}

#[async_trait::async_trait]
impl AccountEventHandler for Recorder {
    fn name(&self) -> &str {
        "recorder"
    }
    async fn handle(&self, e: &AccountEvent) -> Result<(), HandlerError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(HandlerError("subscriber is down".into()));
        }
        self.seen.lock().unwrap().push(e.clone());
        Ok(())
    }
}

async fn outbox_delivers_in_order_and_retries_until_acknowledged(db: Db) {
    let clock = ManualClock::new();
    let rec = Arc::new(Recorder::default());
    let outbox = Outbox::new(db.clone(), clock.clone(), vec![rec.clone()]);
    let u1 = UserId::new();
    let events = [
        AccountEvent::UserCreated { user_id: u1, display_name: Some("A".into()) },
        AccountEvent::UserDeleted { user_id: u1 },
    ];
    // A rolled-back transaction leaves no event behind.
    let mut tx = db.pool().begin().await.unwrap();
    outbox.enqueue(&mut tx, &events[0]).await.unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(outbox.pending().await.unwrap(), 0);

    rec.fail.store(true, Ordering::SeqCst);
    for e in &events {
        let mut tx = db.pool().begin().await.unwrap();
        outbox.enqueue(&mut tx, e).await.unwrap();
        tx.commit().await.unwrap();
    }
    assert_eq!(outbox.deliver_pending().await.unwrap(), 0);
    assert_eq!(outbox.pending().await.unwrap(), 2);
    // The subscriber comes back, but the retry is not due yet.
    rec.fail.store(false, Ordering::SeqCst);
    assert_eq!(outbox.deliver_pending().await.unwrap(), 0);
    clock.advance(Duration::from_secs(2));
    assert_eq!(outbox.deliver_pending().await.unwrap(), 2);
    assert_eq!(*rec.seen.lock().unwrap(), events.to_vec());
    assert_eq!(outbox.pending().await.unwrap(), 0);
    assert_eq!(outbox.deliver_pending().await.unwrap(), 0);
}

async fn a_configured_key_set_and_the_cache_verify_like_the_issuer(db: Db) {
    use fafnir_core::token::{CachingVerifier, StaticVerifier, TokenVerifier};
    let clock = ManualClock::new();
    let km = KeyManager::load_or_create(db, clock.clone(), Duration::from_secs(900)).await.unwrap();
    let fixed: std::sync::Arc<dyn TokenVerifier> = std::sync::Arc::new(StaticVerifier::new(&km.jwks(), clock.clone()));
    let cached = CachingVerifier::new(fixed.clone(), clock.clone(), 2);
    let good = km.sign(&claims(&clock, 60)).unwrap();
    for v in [fixed.as_ref(), &cached as &dyn TokenVerifier] {
        assert!(v.verify(&good, &aud()).await.is_ok());
        assert!(v.verify(&good, &aud()).await.is_ok(), "second time (cached)");
        let other = TokenAudience::new("https://id.example", "fafnir-internal", std::time::Duration::from_secs(3600));
        assert_eq!(
            v.verify(&good, &other).await,
            Err(TokenError::WrongIssuerOrAudience),
            "audience checked on hits too"
        );
        assert!(v.verify("garbage", &aud()).await.is_err());
    }
    clock.advance(Duration::from_secs(61));
    assert_eq!(cached.verify(&good, &aud()).await, Err(TokenError::Expired), "expiry checked on hits");
    // Bounded: more tokens than entries still verify.
    for _ in 0..5 {
        let t = km.sign(&claims(&clock, 60)).unwrap();
        assert!(cached.verify(&t, &aud()).await.is_ok());
    }
}

fafnir_core::conformance_tests!(
    a_configured_key_set_and_the_cache_verify_like_the_issuer,
    migrations_are_idempotent,
    first_start_creates_one_key_and_later_starts_reuse_it,
    tokens_verify_and_rotation_keeps_old_keys_until_expiry,
    hostile_tokens_are_refused,
    tokens_with_implausible_times_are_refused,
    outbox_delivers_in_order_and_retries_until_acknowledged,
);
