//! Passkeys against a real database, on SQLite and Postgres, with a software authenticator
//! written from the WebAuthn specification (`fafnir_core::testing::passkey`): a ceremony
//! expires and is someone's own, registering needs a recent sign-in, of two sign-ins by clones
//! of one authenticator at once only one passes, TOTP can go while a passkey stays, and the
//! administrator's reset clears passkeys too. The HTTP surfaces are in
//! bins/server/tests/e2e/passkey.rs.

#![allow(clippy::unwrap_used)] // a panic in a test is a failing test

use std::sync::Arc;
use std::time::Duration;

use fafnir_auth::mfa::{MfaKey, Reauth};
use fafnir_auth::passkey::Passkeys;
use fafnir_auth::{Argon2Config, Auth, AuthConfig, AuthError, ClientInfo, Principal, SqlAuthStore};
use fafnir_core::events::Outbox;
use fafnir_core::keys::KeyManager;
use fafnir_core::testing::otp::{totp, unbase32};
use fafnir_core::testing::passkey::SoftPasskey;
use fafnir_core::{Clock, Db, ManualClock, SharedClock};

const PW: &str = "correct horse battery staple";
const ORIGIN: &str = "https://auth.example.com";

struct Stack {
    auth: Arc<Auth>,
    clock: Arc<ManualClock>,
}

async fn stack(db: &Db) -> Stack {
    let clock = ManualClock::new();
    let shared: SharedClock = clock.clone();
    let outbox = Arc::new(Outbox::new(db.clone(), shared.clone(), Vec::new()));
    let cfg =
        AuthConfig { argon2: Argon2Config { memory_kib: 64, iterations: 1, parallelism: 1 }, ..AuthConfig::default() };
    let keys =
        Arc::new(KeyManager::load_or_create(db.clone(), shared.clone(), Duration::from_secs(3600)).await.unwrap());
    let store = Arc::new(SqlAuthStore::new(db.clone(), outbox.clone()));
    let rp = Passkeys::new(ORIGIN, None, &[], "Fafnir").unwrap();
    let auth = Arc::new(
        Auth::new(cfg, store, keys, shared, outbox)
            .unwrap()
            .with_mfa_key(MfaKey::new(&[7; 32]).unwrap())
            .with_passkeys(Arc::new(rp)),
    );
    Stack { auth, clock }
}

fn client() -> ClientInfo {
    ClientInfo { ip: Some("192.0.2.9".into()), user_agent: None }
}

impl Stack {
    async fn signed_in(&self, email: &str) -> Principal {
        if self.auth.register(email, PW, None).await.is_err() {
            // Registered by an earlier call.
        }
        let login = self.auth.login(email, PW, &client()).await.unwrap();
        self.auth.authenticate(login.access_token.expose()).await.unwrap()
    }

    async fn register(&self, who: &Principal, key: &mut SoftPasskey) -> Result<(), AuthError> {
        let start = self.auth.passkey_register_start(who).await?;
        let cred = key.create(&start.options, ORIGIN).unwrap();
        self.auth.passkey_register_finish(who, &start.ceremony, &cred, None, &client()).await.map(|_| ())
    }

    async fn sign_in(&self, key: &mut SoftPasskey) -> Result<fafnir_auth::Login, AuthError> {
        let start = self.auth.passkey_sign_in_start().await?;
        let cred = key.get(&start.options, ORIGIN).unwrap();
        self.auth.passkey_sign_in_finish(&start.ceremony, &cred, &client()).await
    }
}

async fn a_ceremony_expires_and_belongs_to_its_account(db: Db) {
    let s = stack(&db).await;
    let ada = s.signed_in("ada@example.com").await;
    let bo = s.signed_in("bo@example.com").await;
    let mut key = SoftPasskey::new();
    let start = s.auth.passkey_register_start(&ada).await.unwrap();
    let cred = key.create(&start.options, ORIGIN).unwrap();
    // Bo cannot finish Ada's registration (and it is used up by trying).
    let r = s.auth.passkey_register_finish(&bo, &start.ceremony, &cred, None, &client()).await;
    assert!(matches!(r, Err(AuthError::PasskeyCeremonyInvalid)), "{r:?}");
    // Five minutes, then the ceremony is gone.
    let start = s.auth.passkey_sign_in_start().await.unwrap();
    s.clock.advance(Duration::from_secs(301));
    let r = s.auth.passkey_sign_in_finish(&start.ceremony, &serde_json::json!({}), &client()).await;
    assert!(matches!(r, Err(AuthError::Validation { .. })), "a malformed answer is a validation error: {r:?}");
    let cred = serde_json::json!({"id": "x", "rawId": "eA", "type": "public-key",
        "response": {"authenticatorData": "", "clientDataJSON": "", "signature": "", "userHandle": null}});
    let r = s.auth.passkey_sign_in_finish(&start.ceremony, &cred, &client()).await;
    assert!(matches!(r, Err(AuthError::PasskeyCeremonyInvalid)), "{r:?}");
}

async fn registering_needs_a_recent_sign_in(db: Db) {
    let s = stack(&db).await;
    let ada = s.signed_in("ada@example.com").await;
    s.clock.advance(Duration::from_secs(11 * 60));
    let r = s.auth.passkey_register_start(&ada).await;
    assert!(matches!(r, Err(AuthError::ReauthenticationRequired)), "{r:?}");
    let ada = s.signed_in("ada@example.com").await;
    let mut key = SoftPasskey::new();
    s.register(&ada, &mut key).await.unwrap();
    // Removing one needs a recent sign-in too: the passkey's own sign-in is one.
    s.clock.advance(Duration::from_secs(11 * 60));
    let id = s.auth.passkeys(ada.user_id).await.unwrap()[0].id;
    let proof = Some(Reauth::Password(PW));
    assert!(matches!(
        s.auth.delete_passkey(&ada, id, proof, &client()).await,
        Err(AuthError::ReauthenticationRequired)
    ));
    let login = s.sign_in(&mut key).await.unwrap();
    let fresh = s.auth.authenticate(login.access_token.expose()).await.unwrap();
    // The last second factor: a recent sign-in is not enough, a proof is needed too.
    let r = s.auth.delete_passkey(&fresh, id, None, &client()).await;
    assert!(matches!(r, Err(AuthError::ReauthenticationRequired)), "{r:?}");
    let r = s.auth.delete_passkey(&fresh, id, Some(Reauth::Password("wrong password")), &client()).await;
    assert!(matches!(r, Err(AuthError::InvalidCredentials)), "{r:?}");
    s.auth.delete_passkey(&fresh, id, proof, &client()).await.unwrap();
}

async fn of_two_clones_signing_in_at_once_one_passes(db: Db) {
    let s = stack(&db).await;
    let ada = s.signed_in("ada@example.com").await;
    let mut key = SoftPasskey::new();
    s.register(&ada, &mut key).await.unwrap();
    // A race is won by chance: run it a few times, with the two copies level at each start.
    for round in 0..8 {
        let mut copy = key.clone();
        let (a, b) = tokio::join!(s.auth.passkey_sign_in_start(), s.auth.passkey_sign_in_start());
        let (a, b) = (a.unwrap(), b.unwrap());
        let (ca, cb) = (key.get(&a.options, ORIGIN).unwrap(), copy.get(&b.options, ORIGIN).unwrap());
        let (c1, c2) = (client(), client());
        let (r1, r2) = tokio::join!(
            s.auth.passkey_sign_in_finish(&a.ceremony, &ca, &c1),
            s.auth.passkey_sign_in_finish(&b.ceremony, &cb, &c2)
        );
        let passed = [r1.is_ok(), r2.is_ok()].iter().filter(|ok| **ok).count();
        assert_eq!(passed, 1, "round {round}: one counter value, one sign-in");
        let failed = if r1.is_ok() { r2 } else { r1 };
        assert!(matches!(failed, Err(AuthError::PasskeyRejected)), "{failed:?}");
    }
}

async fn totp_can_go_while_a_passkey_stays(db: Db) {
    let s = stack(&db).await;
    let ada = s.signed_in("ada@example.com").await;
    let secret = unbase32(&s.auth.totp_setup(&ada).await.unwrap().secret);
    let step = u64::try_from(s.clock.now_ms() / 1000).unwrap() / 30;
    let codes = s.auth.totp_confirm(&ada, &totp(&secret, step), &client()).await.unwrap();
    let mut key = SoftPasskey::new();
    s.register(&ada, &mut key).await.unwrap();
    s.auth.totp_disable(&ada, Reauth::Password(PW), &client()).await.unwrap();
    let status = s.auth.mfa_status(ada.user_id).await.unwrap();
    assert!(!status.totp && status.passkeys == 1, "{status:?}");
    assert_eq!(status.recovery_codes_left, u32::try_from(codes.len()).unwrap(), "the codes stay with the passkey");
    assert!(matches!(s.auth.login("ada@example.com", PW, &client()).await, Err(AuthError::MfaRequired { .. })));
    // The administrator's reset clears the passkey and the codes too.
    assert!(s.auth.reset_second_factors(ada.user_id, "test").await.unwrap());
    assert!(s.auth.passkeys(ada.user_id).await.unwrap().is_empty());
    assert!(!s.auth.has_second_factor(ada.user_id).await.unwrap());
    assert!(matches!(s.sign_in(&mut key).await, Err(AuthError::PasskeyRejected)));
    assert!(s.auth.login("ada@example.com", PW, &client()).await.is_ok());
}

async fn the_store_keeps_one_owner_a_cap_and_a_way_in(db: Db) {
    use fafnir_auth::passkey::{PasskeyAdded, PasskeyRecord, PasskeyRemoval, PasskeyStore};
    let s = stack(&db).await;
    let ada = s.signed_in("ada@example.com").await.user_id;
    let bo = s.signed_in("bo@example.com").await.user_id;
    let store = SqlAuthStore::new(db.clone(), Arc::new(Outbox::new(db.clone(), s.clock.clone(), Vec::new())));
    let record = |user, cred: &str| PasskeyRecord {
        id: uuid::Uuid::now_v7(),
        user_id: user,
        credential_id: cred.into(),
        name: "Key".into(),
        credential: "{}".into(),
        sign_count: 0,
        created_at_ms: 1,
        last_used_at_ms: None,
    };
    let codes = vec!["h1".to_owned(), "h2".to_owned()];
    let first = record(ada, "cred-a");
    assert_eq!(store.add_passkey(&first, 2, &codes).await.unwrap(), PasskeyAdded::Added { first_factor: true });
    assert_eq!(s.auth.mfa_status(ada).await.unwrap().recovery_codes_left, 2, "the first factor's codes");
    // One credential, one owner.
    assert_eq!(store.add_passkey(&record(bo, "cred-a"), 2, &codes).await.unwrap(), PasskeyAdded::Taken);
    assert_eq!(
        store.add_passkey(&record(ada, "cred-b"), 2, &[]).await.unwrap(),
        PasskeyAdded::Added { first_factor: false }
    );
    assert_eq!(s.auth.mfa_status(ada).await.unwrap().recovery_codes_left, 2, "not replaced by the second");
    assert_eq!(store.add_passkey(&record(ada, "cred-c"), 2, &codes).await.unwrap(), PasskeyAdded::Full);
    // An account without a password or provider keeps its last passkey.
    sqlx::query("UPDATE users SET password_hash = '' WHERE id = $1")
        .bind(ada.to_string())
        .execute(db.pool())
        .await
        .unwrap();
    let all = store.passkeys_of(ada).await.unwrap();
    assert_eq!(store.delete_passkey(ada, all[0].id).await.unwrap(), PasskeyRemoval::Removed { factors_left: true });
    assert_eq!(store.delete_passkey(ada, all[1].id).await.unwrap(), PasskeyRemoval::LastMethod);
    assert_eq!(store.delete_passkey(bo, all[1].id).await.unwrap(), PasskeyRemoval::NotFound, "not Bo's");
    assert_eq!(s.auth.mfa_status(ada).await.unwrap().passkeys, 1);
}

fafnir_core::conformance_tests!(
    the_store_keeps_one_owner_a_cap_and_a_way_in,
    a_ceremony_expires_and_belongs_to_its_account,
    registering_needs_a_recent_sign_in,
    of_two_clones_signing_in_at_once_one_passes,
    totp_can_go_while_a_passkey_stays,
);
