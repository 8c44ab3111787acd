//! fafnir-auth against a real database, wired to real RBAC and profile stores through the
//! outbox: the same tests on SQLite and on Postgres.

#![allow(clippy::unwrap_used)] // a panic in a test is a failing test

use std::sync::Arc;
use std::time::Duration;

use fafnir_auth::{Argon2Config, Auth, AuthConfig, AuthError, ClientInfo, SqlAuthStore};
use fafnir_core::events::{AccountEventHandler, Outbox};
use fafnir_core::keys::KeyManager;
use fafnir_core::{Db, ManualClock, SharedClock, UserId};
use fafnir_rbac::{Rbac, RbacEvents, RoleName, SqlRbacStore};
use fafnir_users::{ProfileEvents, Profiles, SqlProfileStore};

const PW: &str = "correct horse battery staple";
const PW2: &str = "another long passphrase 42";

/// Cheap Argon2 parameters keep the suite fast; the production defaults are tested in the unit
/// tests and measured in the benches.
fn cheap() -> Argon2Config {
    Argon2Config { memory_kib: 64, iterations: 1, parallelism: 1 }
}

struct Stack {
    auth: Arc<Auth>,
    rbac: Arc<Rbac>,
    profiles: Profiles,
    clock: Arc<ManualClock>,
    outbox: Arc<Outbox>,
}

async fn stack_with(db: &Db, clock: Arc<ManualClock>, argon2: Argon2Config) -> Stack {
    let shared: SharedClock = clock.clone();
    let rbac = Arc::new(Rbac::new(Arc::new(SqlRbacStore::new(db.clone(), shared.clone()))).await.unwrap());
    let profiles = Profiles::new(Arc::new(SqlProfileStore::new(db.clone(), shared.clone())));
    let handlers: Vec<Arc<dyn AccountEventHandler>> =
        vec![Arc::new(RbacEvents(rbac.clone())), Arc::new(ProfileEvents(profiles.clone()))];
    let outbox = Arc::new(Outbox::new(db.clone(), shared.clone(), handlers));
    let cfg = AuthConfig { argon2, ..AuthConfig::default() };
    let keys = Arc::new(
        KeyManager::load_or_create(db.clone(), shared.clone(), cfg.access_ttl + Duration::from_secs(60)).await.unwrap(),
    );
    let store = Arc::new(SqlAuthStore::new(db.clone(), outbox.clone()));
    let auth = Arc::new(Auth::new(cfg, store, keys, shared, outbox.clone()).unwrap());
    Stack { auth, rbac, profiles, clock, outbox }
}

async fn stack(db: &Db) -> Stack {
    stack_with(db, ManualClock::new(), cheap()).await
}

fn client(ip: &str) -> ClientInfo {
    ClientInfo { ip: Some(ip.into()), user_agent: Some("tests".into()) }
}

async fn register_gives_member_role_and_profile_and_login_works(db: Db) {
    let s = stack(&db).await;
    let acct = s.auth.register("Ada@Example.com", PW, Some("Ada")).await.unwrap();
    assert_eq!(acct.email.as_str(), "ada@example.com");
    assert!(!acct.email_verified);
    assert_eq!(s.rbac.user_roles(&acct.id), Some(vec![RoleName::parse("member").unwrap()]));
    assert_eq!(s.profiles.get(acct.id).await.unwrap().display_name.as_deref(), Some("Ada"));
    assert_eq!(s.outbox.pending().await.unwrap(), 0);

    let login = s.auth.login("ADA@example.com ", PW, &client("10.0.0.1")).await.unwrap();
    assert_eq!(login.user, acct);
    let who = s.auth.authenticate(login.access_token.expose()).await.unwrap();
    assert_eq!((who.user_id, who.session_id), (acct.id, login.session_id));
    assert_eq!(s.auth.me(&who).await.unwrap(), acct);
    let claims = &who.claims;
    assert_eq!(claims.exp - claims.iat, 900);
    assert_eq!(login.refresh_token.expose().len(), 43);
}

async fn bad_registrations_are_refused_and_change_nothing(db: Db) {
    let s = stack(&db).await;
    for (email, pw, field) in [
        ("not-an-email", PW, "email"),
        ("", PW, "email"),
        ("a\0@example.com", PW, "email"),
        ("bob@example.com", "password1", "password"),
        ("bob@example.com", "short", "password"),
        ("bob@example.com", &"x".repeat(129), "password"),
        ("bob@example.com", "bob@example.com", "password"),
    ] {
        match s.auth.register(email, pw, None).await {
            Err(AuthError::Validation { field: f, .. }) => assert_eq!(f, field, "{email:?} {pw:?}"),
            other => panic!("{email:?} {pw:?}: {other:?}"),
        }
    }
    s.auth.register("bob@example.com", PW, None).await.unwrap();
    assert!(matches!(s.auth.register("BOB@example.com", PW2, None).await, Err(AuthError::EmailTaken)));
    // The failed attempt left nothing behind: one profile, and the old password still works.
    assert_eq!(s.profiles.list(None, None).await.unwrap().items.len(), 1);
    assert!(s.auth.login("bob@example.com", PW, &ClientInfo::default()).await.is_ok());
    assert!(s.auth.login("bob@example.com", PW2, &ClientInfo::default()).await.is_err());
}

async fn concurrent_registrations_of_one_email_exactly_one_wins(db: Db) {
    let s = stack(&db).await;
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let auth = s.auth.clone();
            let email = if i % 2 == 0 { "race@example.com" } else { "RACE@example.com" };
            tokio::spawn(async move { auth.register(email, PW, None).await })
        })
        .collect();
    let mut won = 0;
    let mut taken = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => won += 1,
            Err(AuthError::EmailTaken) => taken += 1,
            Err(e) => panic!("unexpected: {e:?}"),
        }
    }
    assert_eq!((won, taken), (1, 7));
    assert_eq!(s.profiles.list(None, None).await.unwrap().items.len(), 1);
}

async fn wrong_and_unknown_credentials_look_the_same(db: Db) {
    let s = stack(&db).await;
    s.auth.register("carol@example.com", PW, None).await.unwrap();
    let wrong = s.auth.login("carol@example.com", "wrong password here", &ClientInfo::default()).await.unwrap_err();
    let unknown = s.auth.login("nobody@example.com", PW, &ClientInfo::default()).await.unwrap_err();
    let garbage = s.auth.login("\0\u{202e}", PW, &ClientInfo::default()).await.unwrap_err();
    for e in [&wrong, &unknown, &garbage] {
        assert!(matches!(e, AuthError::InvalidCredentials), "{e:?}");
        assert_eq!(e.to_string(), "email or password is incorrect");
    }
}

async fn failed_logins_are_throttled_per_account_with_backoff(db: Db) {
    let s = stack(&db).await;
    s.auth.register("dave@example.com", PW, None).await.unwrap();
    let attempt = |ip: &'static str| {
        let auth = s.auth.clone();
        async move { auth.login("dave@example.com", "not the password!", &client(ip)).await }
    };
    for i in 0..5 {
        assert!(matches!(attempt("10.0.0.1").await, Err(AuthError::InvalidCredentials)), "attempt {i}");
    }
    // The 6th is refused before any password work, from any address, even with the right password.
    match s.auth.login("dave@example.com", PW, &client("10.0.0.2")).await {
        Err(AuthError::RateLimited { retry_after }) => {
            assert_eq!(retry_after, Duration::from_secs(30))
        }
        other => panic!("{other:?}"),
    }
    s.clock.advance(Duration::from_secs(31));
    // One more failure doubles the lockout.
    assert!(matches!(attempt("10.0.0.1").await, Err(AuthError::InvalidCredentials)));
    match attempt("10.0.0.1").await {
        Err(AuthError::RateLimited { retry_after }) => {
            assert_eq!(retry_after, Duration::from_secs(60))
        }
        other => panic!("{other:?}"),
    }
    s.clock.advance(Duration::from_secs(61));
    // Success resets the account's counter.
    s.auth.login("dave@example.com", PW, &client("10.0.0.1")).await.unwrap();
    for _ in 0..4 {
        assert!(matches!(attempt("10.0.0.1").await, Err(AuthError::InvalidCredentials)));
    }
}

/// The batched claim (one statement for an account and an address) is all or nothing, and
/// claims exactly as the one-key claim does.
async fn batched_claims_are_all_or_nothing(db: Db) {
    use fafnir_auth::{AuthStore, ThrottleRule};
    let clock: SharedClock = ManualClock::new();
    let store = SqlAuthStore::new(db.clone(), Arc::new(Outbox::new(db.clone(), clock, vec![])));
    let one = ThrottleRule { max_failures: 1, window_ms: 60_000, base_lockout_ms: 60_000, max_lockout_ms: 60_000 };
    let roomy = ThrottleRule { max_failures: 100, ..one };
    let now = 1_000_000;
    let both = [("acct:a", one), ("addr:b", roomy)];
    // First claim creates the rows (one key at a time), later ones take the one-statement path.
    assert_eq!(store.begin_attempts(&both, now).await.unwrap(), Ok(()));
    store.release_attempts(&[("acct:a", one, false), ("addr:b", roomy, false)], now).await.unwrap();
    assert_eq!(store.begin_attempts(&both, now).await.unwrap(), Ok(()));
    // The batch claimed `acct:a`: its one remaining attempt is in flight, so another is refused.
    assert!(store.begin_attempts(&[("acct:a", one)], now).await.unwrap().is_err());
    store.release_attempts(&[("acct:a", one, false), ("addr:b", roomy, false)], now).await.unwrap();
    // A failure locks `acct:a`; a batch is then refused whole and leaves `addr:b` unclaimed.
    assert_eq!(store.begin_attempts(&[("acct:a", one)], now).await.unwrap(), Ok(()));
    store.end_attempt("acct:a", one, true, false, now).await.unwrap();
    let wait = store.begin_attempts(&[("addr:b", roomy), ("acct:a", one)], now + 1).await.unwrap();
    assert!(matches!(wait, Err(ms) if ms > 0), "{wait:?}");
    let few = ThrottleRule { max_failures: 1, ..roomy };
    assert_eq!(store.begin_attempts(&[("addr:b", few)], now + 1).await.unwrap(), Ok(()), "addr:b was released");
    store.release_attempts(&[("addr:b", few, false)], now + 1).await.unwrap();
    // A success clears the account's failures and lock, in the same statement as the release.
    let later = now + 60_001;
    assert_eq!(store.begin_attempts(&both, later).await.unwrap(), Ok(()));
    store.release_attempts(&[("acct:a", one, true), ("addr:b", roomy, false)], later).await.unwrap();
    store.end_attempt("acct:a", one, true, false, later).await.unwrap();
    assert!(store.begin_attempts(&both, later + 1).await.unwrap().is_err(), "one new failure locks again");
}

async fn parallel_guesses_cannot_outrun_the_throttle(db: Db) {
    let s = stack(&db).await;
    s.auth.register("target@example.com", PW, None).await.unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let auth = s.auth.clone();
            let ip = format!("198.51.100.{i}");
            tokio::spawn(async move { auth.login("target@example.com", "a wrong guess!!", &client(&ip)).await })
        })
        .collect();
    let (mut wrong, mut limited) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Err(AuthError::InvalidCredentials) => wrong += 1,
            Err(AuthError::RateLimited { .. }) => limited += 1,
            other => panic!("{other:?}"),
        }
    }
    assert!(wrong <= 5, "only 5 guesses may be checked before the lock, {wrong} were");
    assert_eq!(wrong + limited, 20);
    // The account is locked now, even for the right password.
    assert!(matches!(
        s.auth.login("target@example.com", PW, &client("192.0.2.1")).await,
        Err(AuthError::RateLimited { .. })
    ));
    // After the lockout, the owner gets in; claims left by the refused attempts do not linger.
    s.clock.advance(Duration::from_secs(16 * 60));
    s.auth.login("target@example.com", PW, &client("192.0.2.1")).await.unwrap();
}

async fn concurrent_first_logins_from_one_address_are_not_refused(db: Db) {
    // Many users behind one address logging in at once, none of them seen before: the throttle
    // rows are created under contention, and no one may be refused for it.
    let s = stack(&db).await;
    for i in 0..24 {
        s.auth.register(&format!("office{i}@example.com"), PW, None).await.unwrap();
    }
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let auth = s.auth.clone();
            tokio::spawn(
                async move { auth.login(&format!("office{i}@example.com"), PW, &client("203.0.113.77")).await },
            )
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
}

async fn ipv6_addresses_are_throttled_by_their_64(db: Db) {
    assert_eq!(fafnir_auth::address_key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
    assert_eq!(fafnir_auth::address_key("203.0.113.5"), "203.0.113.5");
    assert_eq!(fafnir_auth::address_key("::ffff:203.0.113.5"), "203.0.113.5", "IPv4 via a dual-stack socket");
    let s = stack(&db).await;
    for i in 0..100 {
        let ip = format!("2001:db8:1:2::{i:x}");
        let r = s.auth.login(&format!("n{i}@example.com"), PW, &client(&ip)).await;
        assert!(matches!(r, Err(AuthError::InvalidCredentials)), "{i}: {r:?}");
    }
    let r = s.auth.login("n99@example.com", PW, &client("2001:db8:1:2:ffff::9")).await;
    assert!(matches!(r, Err(AuthError::RateLimited { .. })), "same /64: {r:?}");
    let r = s.auth.login("n99@example.com", PW, &client("2001:db8:1:3::9")).await;
    assert!(matches!(r, Err(AuthError::InvalidCredentials)), "another /64: {r:?}");
}

async fn failed_logins_are_throttled_per_address(db: Db) {
    let s = stack(&db).await;
    // Spraying many accounts from one address trips the address rule (100 failures).
    for i in 0..100 {
        let r = s.auth.login(&format!("user{i}@example.com"), PW, &client("192.0.2.7")).await;
        assert!(matches!(r, Err(AuthError::InvalidCredentials)), "{i}: {r:?}");
    }
    let r = s.auth.login("user99@example.com", PW, &client("192.0.2.7")).await;
    assert!(matches!(r, Err(AuthError::RateLimited { .. })), "{r:?}");
    // Another address is unaffected.
    let r = s.auth.login("user99@example.com", PW, &client("192.0.2.8")).await;
    assert!(matches!(r, Err(AuthError::InvalidCredentials)), "{r:?}");
}

async fn refresh_rotates_and_replay_revokes_the_family(db: Db) {
    let s = stack(&db).await;
    s.auth.register("erin@example.com", PW, None).await.unwrap();
    let l0 = s.auth.login("erin@example.com", PW, &ClientInfo::default()).await.unwrap();
    let r0 = l0.refresh_token.expose().to_owned();
    s.clock.advance(Duration::from_secs(60));
    let l1 = s.auth.refresh(&r0, &ClientInfo::default()).await.unwrap();
    assert_ne!(l1.refresh_token.expose(), r0);
    assert_eq!(l1.session_id, l0.session_id);
    assert!(l1.access_expires_at > l0.access_expires_at);
    // Within the grace window the parent still works (a second tab refreshing at the same time).
    s.clock.advance(Duration::from_secs(5));
    let sibling = s.auth.refresh(&r0, &ClientInfo::default()).await.unwrap();
    assert_eq!(sibling.session_id, l0.session_id);
    // After it, replaying the parent is theft: the whole family is revoked.
    s.clock.advance(Duration::from_secs(6));
    assert!(matches!(s.auth.refresh(&r0, &ClientInfo::default()).await, Err(AuthError::RefreshTokenReused)));
    for t in [l1.refresh_token.expose(), sibling.refresh_token.expose()] {
        assert!(matches!(s.auth.refresh(t, &ClientInfo::default()).await, Err(AuthError::InvalidRefreshToken)));
    }
    assert!(matches!(s.auth.authenticate(l1.access_token.expose()).await, Err(AuthError::Unauthorized)));
    // Garbage and unknown tokens are simply invalid.
    for junk in ["", "x", &"A".repeat(43), &"é".repeat(43), &"A".repeat(10_000)] {
        assert!(matches!(s.auth.refresh(junk, &ClientInfo::default()).await, Err(AuthError::InvalidRefreshToken)));
    }
}

async fn an_old_used_token_replayed_much_later_is_reuse(db: Db) {
    let s = stack(&db).await;
    s.auth.register("old@example.com", PW, None).await.unwrap();
    let l0 = s.auth.login("old@example.com", PW, &ClientInfo::default()).await.unwrap();
    let mut current = l0.refresh_token.expose().to_owned();
    for _ in 0..3 {
        s.clock.advance(Duration::from_secs(60));
        current = s.auth.refresh(&current, &ClientInfo::default()).await.unwrap().refresh_token.expose().to_owned();
    }
    assert!(matches!(
        s.auth.refresh(l0.refresh_token.expose(), &ClientInfo::default()).await,
        Err(AuthError::RefreshTokenReused)
    ));
    assert!(matches!(s.auth.refresh(&current, &ClientInfo::default()).await, Err(AuthError::InvalidRefreshToken)));
}

async fn concurrent_refreshes_of_one_token_all_succeed_without_half_rotation(db: Db) {
    let s = stack(&db).await;
    s.auth.register("tabs@example.com", PW, None).await.unwrap();
    let l0 = s.auth.login("tabs@example.com", PW, &ClientInfo::default()).await.unwrap();
    let r0 = l0.refresh_token.expose().to_owned();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let auth = s.auth.clone();
            let r0 = r0.clone();
            tokio::spawn(async move { auth.refresh(&r0, &ClientInfo::default()).await })
        })
        .collect();
    let mut fresh = Vec::new();
    for t in tasks {
        let l = t.await.unwrap().expect("a concurrent refresh within the grace window must succeed");
        assert_eq!(l.session_id, l0.session_id);
        fresh.push(l.refresh_token.expose().to_owned());
    }
    fresh.sort();
    fresh.dedup();
    assert_eq!(fresh.len(), 8, "every refresh got its own token");
    // The session is intact and every new token is a valid child.
    let who = s.auth.authenticate(l0.access_token.expose()).await.unwrap();
    assert_eq!(s.auth.sessions(&who).await.unwrap().len(), 1);
    s.clock.advance(Duration::from_secs(11));
    let next = s.auth.refresh(&fresh[0], &ClientInfo::default()).await.unwrap();
    // Its siblings are now the immediate parent of the newest token: still fine within grace...
    assert!(s.auth.refresh(&fresh[1], &ClientInfo::default()).await.is_ok());
    // ...and reuse once the window has passed.
    s.clock.advance(Duration::from_secs(11));
    assert!(matches!(s.auth.refresh(&fresh[2], &ClientInfo::default()).await, Err(AuthError::RefreshTokenReused)));
    assert!(matches!(
        s.auth.refresh(next.refresh_token.expose(), &ClientInfo::default()).await,
        Err(AuthError::InvalidRefreshToken)
    ));
}

async fn concurrent_replays_after_the_window_revoke_once(db: Db) {
    let s = stack(&db).await;
    s.auth.register("replay@example.com", PW, None).await.unwrap();
    let l0 = s.auth.login("replay@example.com", PW, &ClientInfo::default()).await.unwrap();
    let r0 = l0.refresh_token.expose().to_owned();
    let l1 = s.auth.refresh(&r0, &ClientInfo::default()).await.unwrap();
    s.clock.advance(Duration::from_secs(30));
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let (auth, r0) = (s.auth.clone(), r0.clone());
            tokio::spawn(async move { auth.refresh(&r0, &ClientInfo::default()).await })
        })
        .collect();
    for t in tasks {
        let r = t.await.unwrap();
        assert!(matches!(r, Err(AuthError::RefreshTokenReused) | Err(AuthError::InvalidRefreshToken)), "{r:?}");
    }
    assert!(s.auth.refresh(l1.refresh_token.expose(), &ClientInfo::default()).await.is_err());
}

async fn logout_logout_all_and_session_management(db: Db) {
    let s = stack(&db).await;
    let acct = s.auth.register("fay@example.com", PW, None).await.unwrap();
    let other = s.auth.register("gus@example.com", PW, None).await.unwrap();
    let a = s.auth.login("fay@example.com", PW, &client("10.1.1.1")).await.unwrap();
    let b = s.auth.login("fay@example.com", PW, &client("10.1.1.2")).await.unwrap();
    let g = s.auth.login("gus@example.com", PW, &ClientInfo::default()).await.unwrap();
    let wa = s.auth.authenticate(a.access_token.expose()).await.unwrap();
    let list = s.auth.sessions(&wa).await.unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list.iter().filter(|x| x.current).count(), 1);
    assert!(list.iter().any(|x| x.ip.as_deref() == Some("10.1.1.2")));
    // Someone else's session is not found (and not revoked).
    assert!(matches!(s.auth.revoke_session(&wa, g.session_id).await, Err(AuthError::SessionNotFound)));
    assert!(s.auth.authenticate(g.access_token.expose()).await.is_ok());
    // Revoke b from a: b's tokens die at once.
    s.auth.revoke_session(&wa, b.session_id).await.unwrap();
    assert!(matches!(s.auth.authenticate(b.access_token.expose()).await, Err(AuthError::Unauthorized)));
    assert!(s.auth.refresh(b.refresh_token.expose(), &ClientInfo::default()).await.is_err());
    // Logout ends a; its refresh token cannot bring it back.
    s.auth.logout(&wa).await.unwrap();
    assert!(matches!(s.auth.authenticate(a.access_token.expose()).await, Err(AuthError::Unauthorized)));
    assert!(matches!(
        s.auth.refresh(a.refresh_token.expose(), &ClientInfo::default()).await,
        Err(AuthError::InvalidRefreshToken)
    ));
    // logout-all ends every session of one user only.
    let c = s.auth.login("fay@example.com", PW, &ClientInfo::default()).await.unwrap();
    let d = s.auth.login("fay@example.com", PW, &ClientInfo::default()).await.unwrap();
    assert_eq!(s.auth.logout_all(acct.id).await.unwrap(), 2);
    for l in [&c, &d] {
        assert!(s.auth.authenticate(l.access_token.expose()).await.is_err());
    }
    assert!(s.auth.authenticate(g.access_token.expose()).await.is_ok());
    // Logout with only a refresh token (access expired) also works, and is idempotent.
    s.auth.logout_with_refresh(g.refresh_token.expose()).await.unwrap();
    s.auth.logout_with_refresh(g.refresh_token.expose()).await.unwrap();
    assert!(s.auth.authenticate(g.access_token.expose()).await.is_err());
    let _ = other;
}

async fn change_password_revokes_other_sessions(db: Db) {
    let s = stack(&db).await;
    s.auth.register("hal@example.com", PW, None).await.unwrap();
    let here = s.auth.login("hal@example.com", PW, &ClientInfo::default()).await.unwrap();
    let there = s.auth.login("hal@example.com", PW, &ClientInfo::default()).await.unwrap();
    let who = s.auth.authenticate(here.access_token.expose()).await.unwrap();
    let cl = ClientInfo::default();
    assert!(matches!(
        s.auth.change_password(&who, "wrong wrong wrong", PW2, &cl).await,
        Err(AuthError::InvalidCredentials)
    ));
    assert!(matches!(
        s.auth.change_password(&who, PW, "password1", &cl).await,
        Err(AuthError::Validation { field: "new_password", .. })
    ));
    assert!(s.auth.authenticate(there.access_token.expose()).await.is_ok(), "refused changes revoke nothing");
    s.auth.change_password(&who, PW, PW2, &cl).await.unwrap();
    assert!(s.auth.authenticate(here.access_token.expose()).await.is_ok());
    assert!(s.auth.authenticate(there.access_token.expose()).await.is_err());
    assert!(s.auth.refresh(there.refresh_token.expose(), &cl).await.is_err());
    assert!(s.auth.login("hal@example.com", PW, &cl).await.is_err());
    assert!(s.auth.login("hal@example.com", PW2, &cl).await.is_ok());
}

async fn login_rehashes_when_parameters_change(db: Db) {
    let clock = ManualClock::new();
    let old = stack_with(&db, clock.clone(), cheap()).await;
    let acct = old.auth.register("ivy@example.com", PW, None).await.unwrap();
    let stronger = Argon2Config { memory_kib: 128, iterations: 2, parallelism: 1 };
    let new = stack_with(&db, clock, stronger).await;
    new.auth.login("ivy@example.com", PW, &ClientInfo::default()).await.unwrap();
    let hash: String = sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
        .bind(acct.id.to_string())
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert!(hash.starts_with("$argon2id$v=19$m=128,t=2,p=1$"), "{hash}");
    assert!(new.auth.login("ivy@example.com", PW, &ClientInfo::default()).await.is_ok());
}

async fn expired_tokens_are_refused(db: Db) {
    let s = stack(&db).await;
    s.auth.register("jan@example.com", PW, None).await.unwrap();
    let l = s.auth.login("jan@example.com", PW, &ClientInfo::default()).await.unwrap();
    s.clock.advance(Duration::from_secs(15 * 60 + 1));
    assert!(matches!(s.auth.authenticate(l.access_token.expose()).await, Err(AuthError::Unauthorized)));
    // The refresh token still works (sliding 30 days)...
    let l2 = s.auth.refresh(l.refresh_token.expose(), &ClientInfo::default()).await.unwrap();
    // ...until the session has been idle for longer than the refresh TTL.
    s.clock.advance(Duration::from_secs(30 * 86_400 + 1));
    assert!(matches!(
        s.auth.refresh(l2.refresh_token.expose(), &ClientInfo::default()).await,
        Err(AuthError::InvalidRefreshToken)
    ));
}

async fn revocation_on_another_instance_is_seen_within_the_session_check_ttl(db: Db) {
    let clock = ManualClock::new();
    let a = stack_with(&db, clock.clone(), cheap()).await;
    let b = stack_with(&db, clock.clone(), cheap()).await;
    a.auth.register("kim@example.com", PW, None).await.unwrap();
    let l = a.auth.login("kim@example.com", PW, &ClientInfo::default()).await.unwrap();
    let who = a.auth.authenticate(l.access_token.expose()).await.unwrap();
    b.auth.logout(&who).await.unwrap();
    // b refuses at once; a may still answer from its cache, but not after the TTL.
    assert!(b.auth.authenticate(l.access_token.expose()).await.is_err());
    clock.advance(a.auth.config().session_check_ttl);
    assert!(matches!(a.auth.authenticate(l.access_token.expose()).await, Err(AuthError::Unauthorized)));
}

async fn deleting_a_user_reaches_roles_and_profile(db: Db) {
    let s = stack(&db).await;
    let acct = s.auth.register("leo@example.com", PW, None).await.unwrap();
    let l = s.auth.login("leo@example.com", PW, &ClientInfo::default()).await.unwrap();
    s.auth.delete_user(acct.id).await.unwrap();
    assert!(s.rbac.user_roles(&acct.id).is_none());
    assert!(s.profiles.get(acct.id).await.is_err());
    assert!(s.auth.authenticate(l.access_token.expose()).await.is_err());
    assert!(matches!(s.auth.delete_user(acct.id).await, Err(AuthError::UserNotFound)));
    assert!(matches!(s.auth.delete_user(UserId::new()).await, Err(AuthError::UserNotFound)));
    // The address is free again.
    s.auth.register("leo@example.com", PW, None).await.unwrap();
}

async fn prune_removes_ended_sessions(db: Db) {
    let s = stack(&db).await;
    s.auth.register("max@example.com", PW, None).await.unwrap();
    let l = s.auth.login("max@example.com", PW, &ClientInfo::default()).await.unwrap();
    let who = s.auth.authenticate(l.access_token.expose()).await.unwrap();
    s.auth.logout(&who).await.unwrap();
    assert_eq!(s.auth.prune().await.unwrap(), 0, "recently ended sessions are kept a day");
    s.clock.advance(Duration::from_secs(86_401));
    assert_eq!(s.auth.prune().await.unwrap(), 1);
}

async fn registrations_are_throttled_per_email_and_per_address(db: Db) {
    let s = stack(&db).await;
    let c = client("203.0.113.9");
    assert!(s.auth.register_from("same@example.com", PW, None, &c).await.is_ok());
    for _ in 0..4 {
        let r = s.auth.register_from("same@example.com", PW, None, &c).await;
        assert!(matches!(r, Err(AuthError::EmailTaken)), "{r:?}");
    }
    let r = s.auth.register_from("same@example.com", PW, None, &client("203.0.113.10")).await;
    assert!(matches!(r, Err(AuthError::RateLimited { .. })), "6th attempt on one address: {r:?}");
    // 5 attempts so far from .9; 25 more with fresh e-mails reach the per-address limit of 30.
    for i in 0..25 {
        let r = s.auth.register_from(&format!("u{i}@example.com"), PW, None, &c).await;
        assert!(r.is_ok(), "{i}: {r:?}");
    }
    let r = s.auth.register_from("fresh@example.com", PW, None, &c).await;
    assert!(matches!(r, Err(AuthError::RateLimited { .. })), "{r:?}");
    assert!(s.auth.register_from("fresh@example.com", PW, None, &client("203.0.113.11")).await.is_ok());
    // Limits lift after the lockout.
    s.clock.advance(Duration::from_secs(3601));
    assert!(s.auth.register_from("later@example.com", PW, None, &c).await.is_ok());
}

/// A session that outlived its account's disabling (a login that was hashing when the account
/// was disabled opens one after the revocation) is refused by the session check and by refresh.
async fn a_disabled_accounts_raced_session_is_never_active(db: Db) {
    let s = stack(&db).await;
    let acct = s.auth.register("ada@example.com", PW, None).await.unwrap();
    let login = s.auth.login("ada@example.com", PW, &client("192.0.2.1")).await.unwrap();
    // The state the race leaves: disabled, yet a session not revoked.
    sqlx::query("UPDATE users SET disabled_at = 1 WHERE id = $1")
        .bind(acct.id.to_string())
        .execute(db.pool())
        .await
        .unwrap();
    s.clock.advance(Duration::from_secs(3)); // past the session cache
    assert!(matches!(s.auth.authenticate(login.access_token.expose()).await, Err(AuthError::Unauthorized)));
    assert!(matches!(
        s.auth.refresh(login.refresh_token.expose(), &client("192.0.2.1")).await,
        Err(AuthError::InvalidRefreshToken)
    ));
    assert!(matches!(s.auth.login("ada@example.com", PW, &client("192.0.2.1")).await, Err(AuthError::AccountDisabled)));
}

fafnir_core::conformance_tests!(
    a_disabled_accounts_raced_session_is_never_active,
    batched_claims_are_all_or_nothing,
    parallel_guesses_cannot_outrun_the_throttle,
    concurrent_first_logins_from_one_address_are_not_refused,
    ipv6_addresses_are_throttled_by_their_64,
    registrations_are_throttled_per_email_and_per_address,
    register_gives_member_role_and_profile_and_login_works,
    bad_registrations_are_refused_and_change_nothing,
    concurrent_registrations_of_one_email_exactly_one_wins,
    wrong_and_unknown_credentials_look_the_same,
    failed_logins_are_throttled_per_account_with_backoff,
    failed_logins_are_throttled_per_address,
    refresh_rotates_and_replay_revokes_the_family,
    an_old_used_token_replayed_much_later_is_reuse,
    concurrent_refreshes_of_one_token_all_succeed_without_half_rotation,
    concurrent_replays_after_the_window_revoke_once,
    logout_logout_all_and_session_management,
    change_password_revokes_other_sessions,
    login_rehashes_when_parameters_change,
    expired_tokens_are_refused,
    revocation_on_another_instance_is_seen_within_the_session_check_ttl,
    deleting_a_user_reaches_roles_and_profile,
    prune_removes_ended_sessions,
);
