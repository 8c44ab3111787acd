//! The social login store (identities, pending logins) and passwordless accounts, against a
//! real database: the same tests on SQLite and on Postgres. The flows against a real OpenID
//! Provider are in `bins/server/tests/e2e/oauth.rs`.

#![allow(clippy::unwrap_used)] // a panic in a test is a failing test

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use fafnir_auth::oauth::{IdentityRecord, IdentityStore, PendingLogin, Unlink};
use fafnir_auth::{Argon2Config, Auth, AuthConfig, AuthError, AuthStore, ClientInfo, SqlAuthStore, UserRecord};
use fafnir_core::events::{AccountEvent, Outbox};
use fafnir_core::keys::KeyManager;
use fafnir_core::{Db, Email, ManualClock, SharedClock, UserId};
use uuid::Uuid;

const PW: &str = "correct horse battery staple";

struct Stack {
    auth: Arc<Auth>,
    store: Arc<SqlAuthStore>,
}

async fn stack(db: &Db) -> Stack {
    let clock: SharedClock = ManualClock::new();
    let outbox = Arc::new(Outbox::new(db.clone(), clock.clone(), Vec::new()));
    let cfg =
        AuthConfig { argon2: Argon2Config { memory_kib: 64, iterations: 1, parallelism: 1 }, ..AuthConfig::default() };
    let keys =
        Arc::new(KeyManager::load_or_create(db.clone(), clock.clone(), Duration::from_secs(3600)).await.unwrap());
    let store = Arc::new(SqlAuthStore::new(db.clone(), outbox.clone()));
    let auth = Arc::new(Auth::new(cfg, store.clone(), keys, clock, outbox).unwrap());
    Stack { auth, store }
}

fn pending(state_hash: &str, expires_at_ms: i64) -> PendingLogin {
    PendingLogin {
        state_hash: state_hash.into(),
        provider: "idp".into(),
        binding_hash: "b".into(),
        pkce_verifier: "v".into(),
        nonce: Some("n".into()),
        return_to: "/".into(),
        link_user: None,
        created_at_ms: 0,
        expires_at_ms,
    }
}

fn identity(user: UserId, subject: &str) -> IdentityRecord {
    IdentityRecord {
        id: Uuid::now_v7(),
        user_id: user,
        provider: "idp".into(),
        issuer: "https://idp.example".into(),
        subject: subject.into(),
        email: Some(format!("{subject}@example.com")),
        created_at: Utc::now(),
        last_used_at: Utc::now(),
    }
}

fn passwordless(email: &str) -> UserRecord {
    UserRecord {
        id: UserId::new(),
        email: Email::parse(email).unwrap(),
        password_hash: None,
        email_verified: true,
        created_at: Utc::now(),
        disabled_at: None,
        last_sign_in_at: None,
    }
}

fn created(u: &UserRecord) -> AccountEvent {
    AccountEvent::UserCreated { user_id: u.id, display_name: None }
}

async fn a_pending_login_is_taken_once_and_never_after_it_expires(db: Db) {
    let s = stack(&db).await;
    s.store.put_pending(&pending("h1", 10_000)).await.unwrap();
    // Two callbacks at once with the same state: exactly one gets the pending login.
    let (a, b) = tokio::join!(s.store.take_pending("h1", 5_000), s.store.take_pending("h1", 5_000));
    assert_eq!([a.unwrap().is_some(), b.unwrap().is_some()].iter().filter(|x| **x).count(), 1);
    assert_eq!(s.store.take_pending("h1", 5_000).await.unwrap(), None, "used up");
    s.store.put_pending(&pending("h2", 10_000)).await.unwrap();
    assert_eq!(s.store.take_pending("h2", 10_000).await.unwrap(), None, "expired");
    assert_eq!(s.store.take_pending("h2", 1).await.unwrap(), None, "and removed");
    // A link request keeps its account.
    let who = UserId::new();
    s.store.put_pending(&PendingLogin { link_user: Some(who), ..pending("h3", 10_000) }).await.unwrap();
    assert_eq!(s.store.take_pending("h3", 1).await.unwrap().unwrap().link_user, Some(who));
}

async fn an_identity_belongs_to_one_account(db: Db) {
    let s = stack(&db).await;
    let grace = passwordless("grace@example.com");
    assert!(s.store.create_user_with_identity(&grace, &created(&grace), &identity(grace.id, "g")).await.unwrap());
    // The same (issuer, subject) cannot be linked again, to anyone.
    assert!(!s.store.link_identity(&identity(UserId::new(), "g")).await.unwrap());
    let hers = s.store.identity_by_subject("https://idp.example", "g").await.unwrap().unwrap();
    assert_eq!(hers.user_id, grace.id);
    // Another issuer's subject "g" is someone else.
    let other = IdentityRecord { issuer: "https://other.example".into(), ..identity(grace.id, "g") };
    assert!(s.store.link_identity(&other).await.unwrap());
    // Creating an account whose identity is taken creates nothing.
    let late = passwordless("late@example.com");
    assert!(!s.store.create_user_with_identity(&late, &created(&late), &identity(late.id, "g")).await.unwrap());
    assert!(s.store.user_by_email(&late.email).await.unwrap().is_none());
    // Creating an account whose address is taken links nothing.
    let dup = passwordless("grace@example.com");
    let r = s.store.create_user_with_identity(&dup, &created(&dup), &identity(dup.id, "new")).await;
    assert!(matches!(r, Err(AuthError::EmailTaken)));
    assert!(s.store.identity_by_subject("https://idp.example", "new").await.unwrap().is_none());
}

async fn the_last_way_to_sign_in_cannot_be_unlinked(db: Db) {
    let s = stack(&db).await;
    let grace = passwordless("grace@example.com");
    let first = identity(grace.id, "g1");
    s.store.create_user_with_identity(&grace, &created(&grace), &first).await.unwrap();
    assert_eq!(s.store.unlink_identity(grace.id, first.id).await.unwrap(), Unlink::LastMethod);
    let second = identity(grace.id, "g2");
    assert!(s.store.link_identity(&second).await.unwrap());
    assert_eq!(s.store.unlink_identity(UserId::new(), second.id).await.unwrap(), Unlink::NotFound, "not yours");
    assert_eq!(s.store.unlink_identity(grace.id, second.id).await.unwrap(), Unlink::Unlinked);
    assert_eq!(s.store.unlink_identity(grace.id, first.id).await.unwrap(), Unlink::LastMethod);
    // With a password, the last identity can go.
    let client = ClientInfo::default();
    let ada = s.auth.register("ada@example.com", PW, None).await.unwrap();
    let hers = identity(ada.id, "a");
    assert!(s.store.link_identity(&hers).await.unwrap());
    assert_eq!(s.auth.sign_in_methods(ada.id).await.unwrap(), ["password", "idp"]);
    s.auth.unlink_identity(ada.id, hers.id, &client).await.unwrap();
    assert_eq!(s.auth.sign_in_methods(ada.id).await.unwrap(), ["password"]);
    assert!(matches!(s.auth.unlink_identity(ada.id, hers.id, &client).await, Err(AuthError::IdentityNotFound)));
}

async fn a_passwordless_account_has_no_password_to_guess(db: Db) {
    let s = stack(&db).await;
    let grace = passwordless("grace@example.com");
    s.store.create_user_with_identity(&grace, &created(&grace), &identity(grace.id, "g")).await.unwrap();
    assert_eq!(s.store.user_by_id(grace.id).await.unwrap().unwrap().password_hash, None);
    let client = ClientInfo { ip: Some("192.0.2.1".into()), user_agent: None };
    for guess in ["", " ", PW] {
        assert!(matches!(s.auth.login("grace@example.com", guess, &client).await, Err(AuthError::InvalidCredentials)));
    }
    assert_eq!(s.auth.sign_in_methods(grace.id).await.unwrap(), ["idp"]);
}

async fn deleting_an_account_deletes_its_identities(db: Db) {
    let s = stack(&db).await;
    let grace = passwordless("grace@example.com");
    s.store.create_user_with_identity(&grace, &created(&grace), &identity(grace.id, "g")).await.unwrap();
    s.auth.delete_user(grace.id).await.unwrap();
    assert!(s.store.identity_by_subject("https://idp.example", "g").await.unwrap().is_none());
    assert!(s.store.identities_of(grace.id).await.unwrap().is_empty());
}

fafnir_core::conformance_tests!(
    a_pending_login_is_taken_once_and_never_after_it_expires,
    an_identity_belongs_to_one_account,
    the_last_way_to_sign_in_cannot_be_unlinked,
    a_passwordless_account_has_no_password_to_guess,
    deleting_an_account_deletes_its_identities,
);
