//! Second factors against a real database, on SQLite and Postgres: a code is accepted once even
//! under concurrency, a challenge dies after five wrong codes or five minutes, an old set of
//! recovery codes dies with a new one, and a secret does not open under another key. The codes
//! are computed with the tests' own RFC 6238 (`fafnir_core::testing::otp`); the RFC's vectors
//! are checked in the unit tests, and the HTTP surfaces in bins/server/tests/e2e/mfa.rs and
//! tests/interop.

#![allow(clippy::unwrap_used)] // a panic in a test is a failing test

use std::sync::Arc;
use std::time::Duration;

use fafnir_auth::mfa::{Factor, MfaKey};
use fafnir_auth::{Argon2Config, Auth, AuthConfig, AuthError, ClientInfo, Principal, SqlAuthStore};
use fafnir_core::events::Outbox;
use fafnir_core::keys::KeyManager;
use fafnir_core::testing::otp::{totp, unbase32};
use fafnir_core::{Clock, Db, ManualClock, SharedClock};

const PW: &str = "correct horse battery staple";

struct Stack {
    auth: Arc<Auth>,
    clock: Arc<ManualClock>,
    db: Db,
}

async fn stack_with_key(db: &Db, key: [u8; 32]) -> Stack {
    let clock = ManualClock::new();
    let shared: SharedClock = clock.clone();
    let outbox = Arc::new(Outbox::new(db.clone(), shared.clone(), Vec::new()));
    let cfg =
        AuthConfig { argon2: Argon2Config { memory_kib: 64, iterations: 1, parallelism: 1 }, ..AuthConfig::default() };
    let keys =
        Arc::new(KeyManager::load_or_create(db.clone(), shared.clone(), Duration::from_secs(3600)).await.unwrap());
    let store = Arc::new(SqlAuthStore::new(db.clone(), outbox.clone()));
    let auth = Arc::new(Auth::new(cfg, store, keys, shared, outbox).unwrap().with_mfa_key(MfaKey::new(&key).unwrap()));
    Stack { auth, clock, db: db.clone() }
}

impl Stack {
    fn step(&self) -> u64 {
        u64::try_from(self.clock.now_ms() / 1000).unwrap() / 30
    }

    /// An account with TOTP on: (its secret, its recovery codes, a principal).
    async fn enrolled(&self, email: &str) -> (Vec<u8>, Vec<String>, Principal) {
        self.auth.register(email, PW, None).await.unwrap();
        let login = self.auth.login(email, PW, &client("192.0.2.9")).await.unwrap();
        let who = self.auth.authenticate(login.access_token.expose()).await.unwrap();
        let setup = self.auth.totp_setup(&who).await.unwrap();
        let secret = unbase32(&setup.secret);
        let codes = self.auth.totp_confirm(&who, &totp(&secret, self.step()), &client("192.0.2.9")).await.unwrap();
        (secret, codes, who)
    }

    async fn challenge(&self, email: &str) -> String {
        match self.auth.login(email, PW, &client("192.0.2.9")).await {
            Err(AuthError::MfaRequired { token, .. }) => token.expose().to_owned(),
            other => panic!("expected the step-up, got {other:?}"),
        }
    }
}

fn client(ip: &str) -> ClientInfo {
    ClientInfo { ip: Some(ip.into()), user_agent: None }
}

async fn a_code_is_accepted_once_even_at_once(db: Db) {
    let s = stack_with_key(&db, [7; 32]).await;
    let (secret, _, _) = s.enrolled("ada@example.com").await;
    s.clock.advance(Duration::from_secs(30));
    let code = totp(&secret, s.step());
    let (a, b) = (s.challenge("ada@example.com").await, s.challenge("ada@example.com").await);
    let (c1, c2) = (client("192.0.2.1"), client("192.0.2.2"));
    let (r1, r2) =
        tokio::join!(s.auth.mfa_verify(&a, Factor::Totp(&code), &c1), s.auth.mfa_verify(&b, Factor::Totp(&code), &c2));
    assert_eq!([r1.is_ok(), r2.is_ok()].iter().filter(|ok| **ok).count(), 1, "one code, one sign-in");
    // An older step is refused after a newer one was used.
    s.clock.advance(Duration::from_secs(30));
    let c = s.challenge("ada@example.com").await;
    let older = totp(&secret, s.step() - 1);
    assert!(matches!(s.auth.mfa_verify(&c, Factor::Totp(&older), &c1).await, Err(AuthError::InvalidMfaCode)));
    assert!(s.auth.mfa_verify(&c, Factor::Totp(&totp(&secret, s.step())), &c1).await.is_ok());
}

async fn a_challenge_dies_after_five_wrong_codes_or_five_minutes(db: Db) {
    let s = stack_with_key(&db, [7; 32]).await;
    let (secret, _, _) = s.enrolled("ada@example.com").await;
    let c = s.challenge("ada@example.com").await;
    for i in 0..5 {
        let r = s.auth.mfa_verify(&c, Factor::Totp("000000"), &client(&format!("198.51.100.{i}"))).await;
        assert!(matches!(r, Err(AuthError::InvalidMfaCode) | Err(AuthError::RateLimited { .. })), "{r:?}");
    }
    s.clock.advance(Duration::from_secs(3600)); // past any lock
    let right = totp(&secret, s.step());
    let r = s.auth.mfa_verify(&c, Factor::Totp(&right), &client("203.0.113.1")).await;
    assert!(matches!(r, Err(AuthError::MfaTokenInvalid)), "{r:?}");
    let late = s.challenge("ada@example.com").await;
    s.clock.advance(Duration::from_secs(301));
    let r = s.auth.mfa_verify(&late, Factor::Totp(&totp(&secret, s.step())), &client("203.0.113.1")).await;
    assert!(matches!(r, Err(AuthError::MfaTokenInvalid)), "expired: {r:?}");
    let r = s.auth.mfa_verify("not-a-challenge", Factor::Totp(&right), &client("203.0.113.1")).await;
    assert!(matches!(r, Err(AuthError::MfaTokenInvalid)));
}

async fn new_recovery_codes_end_the_old_ones(db: Db) {
    let s = stack_with_key(&db, [7; 32]).await;
    let (_, old, who) = s.enrolled("ada@example.com").await;
    let fresh = s
        .auth
        .regenerate_recovery_codes(&who, fafnir_auth::mfa::Reauth::Password(PW), &client("192.0.2.9"))
        .await
        .unwrap();
    assert_eq!(fresh.len(), 10);
    let c = s.challenge("ada@example.com").await;
    let r = s.auth.mfa_verify(&c, Factor::RecoveryCode(&old[0]), &client("192.0.2.9")).await;
    assert!(matches!(r, Err(AuthError::InvalidMfaCode)), "the old set is dead");
    assert!(s.auth.mfa_verify(&c, Factor::RecoveryCode(&fresh[0]), &client("192.0.2.9")).await.is_ok());
    assert_eq!(s.auth.mfa_status(who.user_id).await.unwrap().recovery_codes_left, 9);
}

async fn a_secret_does_not_open_under_another_key(db: Db) {
    let s = stack_with_key(&db, [7; 32]).await;
    let (secret, _, _) = s.enrolled("ada@example.com").await;
    let other = stack_with_key(&s.db, [8; 32]).await;
    let c = other.challenge("ada@example.com").await;
    other.clock.advance(Duration::from_secs(30));
    let r = other.auth.mfa_verify(&c, Factor::Totp(&totp(&secret, other.step())), &client("192.0.2.9")).await;
    assert!(matches!(r, Err(AuthError::Config(_))), "{r:?}");
}

async fn a_replaced_setup_is_not_confirmed_by_the_old_secrets_code(db: Db) {
    let s = stack_with_key(&db, [7; 32]).await;
    s.auth.register("ada@example.com", PW, None).await.unwrap();
    let login = s.auth.login("ada@example.com", PW, &client("192.0.2.9")).await.unwrap();
    let who = s.auth.authenticate(login.access_token.expose()).await.unwrap();
    let first = unbase32(&s.auth.totp_setup(&who).await.unwrap().secret);
    let second = unbase32(&s.auth.totp_setup(&who).await.unwrap().secret);
    let r = s.auth.totp_confirm(&who, &totp(&first, s.step()), &client("192.0.2.9")).await;
    assert!(matches!(r, Err(AuthError::InvalidMfaCode)), "{r:?}");
    assert!(s.auth.totp_confirm(&who, &totp(&second, s.step()), &client("192.0.2.9")).await.is_ok());
    // Setting up needs a recent sign-in.
    s.clock.advance(Duration::from_secs(11 * 60));
    let old = s.auth.authenticate(login.access_token.expose()).await.unwrap();
    assert!(matches!(s.auth.totp_setup(&old).await, Err(AuthError::ReauthenticationRequired)));
}

fafnir_core::conformance_tests!(
    a_replaced_setup_is_not_confirmed_by_the_old_secrets_code,
    a_code_is_accepted_once_even_at_once,
    a_challenge_dies_after_five_wrong_codes_or_five_minutes,
    new_recovery_codes_end_the_old_ones,
    a_secret_does_not_open_under_another_key,
);
