//! The e-mail flows of [`Auth`] on a real database (SQLite and Postgres), with a clock the tests
//! move: link lifetimes, what voids a link, races, the lock notice. The mail leaves through the
//! durable outbox to a mailer that keeps what it is given (the SMTP conversation itself is
//! tested end to end in the servers' tests).

#![allow(clippy::unwrap_used)] // a panic in a test is a failing test

use std::sync::{Arc, Mutex};
use std::time::Duration;

use fafnir_auth::{
    AccountMail, ActionTokens, Auth, AuthConfig, AuthError, ClientInfo, EmailSettings, Mail, MailError, MailOutbox,
    Mailer, SqlAuthStore, Templates, ThrottleConfig,
};
use fafnir_core::events::Outbox;
use fafnir_core::keys::KeyManager;
use fafnir_core::{Db, ManualClock, SharedClock};

const PW: &str = "correct horse battery staple";
const PW2: &str = "a brand new passphrase for ada";

/// Keeps every message it is asked to send.
#[derive(Debug, Default)]
struct Kept(Mutex<Vec<Mail>>);

#[async_trait::async_trait]
impl Mailer for Kept {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        self.0.lock().unwrap().push(mail.clone());
        Ok(())
    }

    fn describe(&self) -> String {
        "kept".into()
    }
}

struct Fixture {
    auth: Arc<Auth>,
    outbox: Arc<MailOutbox>,
    kept: Arc<Kept>,
    clock: Arc<ManualClock>,
}

async fn fixture(db: &Db) -> Fixture {
    let clock = ManualClock::new();
    let shared: SharedClock = clock.clone();
    let events = Arc::new(Outbox::new(db.clone(), shared.clone(), vec![]));
    let cfg = AuthConfig {
        argon2: fafnir_auth::Argon2Config { memory_kib: 64, iterations: 1, parallelism: 1 },
        ..AuthConfig::default()
    };
    let keys =
        Arc::new(KeyManager::load_or_create(db.clone(), shared.clone(), Duration::from_secs(3600)).await.unwrap());
    let store = Arc::new(SqlAuthStore::new(db.clone(), events.clone()));
    let kept = Arc::new(Kept::default());
    let outbox = Arc::new(MailOutbox::new(db.clone(), shared.clone(), kept.clone()));
    let settings = EmailSettings {
        public_url: "https://app.example".into(),
        verify_path: "/verify-email".into(),
        reset_path: "/reset-password".into(),
        change_path: "/confirm-email".into(),
        require_verified: false,
        throttle: ThrottleConfig::mail_requests(),
    };
    let mail = AccountMail::new(
        db.clone(),
        ActionTokens::new(db.clone(), shared.clone()),
        outbox.clone(),
        Arc::new(Templates::builtin("Acme")),
        settings,
    );
    let auth = Arc::new(Auth::new(cfg, store, keys, shared, events).unwrap().with_mail(mail));
    Fixture { auth, outbox, kept, clock }
}

impl Fixture {
    /// Sends what is queued (the requests that answer first queue in the background) until
    /// `to` has `n` messages; returns the last.
    async fn nth(&self, to: &str, n: usize) -> Mail {
        for _ in 0..200 {
            self.outbox.deliver_pending().await.unwrap();
            let got: Vec<Mail> = self.kept.0.lock().unwrap().iter().filter(|m| m.to.as_str() == to).cloned().collect();
            if got.len() >= n {
                return got[n - 1].clone();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no mail #{n} to {to}");
    }

    fn count(&self, to: &str) -> usize {
        self.kept.0.lock().unwrap().iter().filter(|m| m.to.as_str() == to).count()
    }

    async fn settle(&self) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.outbox.deliver_pending().await.unwrap();
    }
}

fn token(mail: &Mail, path: &str) -> String {
    let needle = format!("https://app.example{path}?token=");
    let at = mail.text.find(&needle).unwrap_or_else(|| panic!("no {path} link in {}", mail.text)) + needle.len();
    mail.text[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect()
}

fn client() -> ClientInfo {
    ClientInfo { ip: Some("192.0.2.1".into()), user_agent: None }
}

async fn registration_mails_a_link_that_verifies_the_address_once(db: Db) {
    let f = fixture(&db).await;
    let ada = f.auth.register("ada@example.com", PW, None).await.unwrap();
    assert!(!ada.email_verified);
    let m = f.nth("ada@example.com", 1).await;
    assert_eq!(m.subject, "Confirm your e-mail address for Acme");
    assert!(m.text.contains("24 hours"), "{}", m.text);
    let t = token(&m, "/verify-email");
    f.auth.confirm_email(&t).await.unwrap();
    assert!(f.auth.user(ada.id).await.unwrap().email_verified);
    assert!(matches!(f.auth.confirm_email(&t).await, Err(AuthError::TokenInvalid)));
    for bad in ["", "x", &"a".repeat(500)] {
        assert!(matches!(f.auth.confirm_email(bad).await, Err(AuthError::TokenInvalid)));
    }
}

async fn an_expired_reset_link_is_refused_and_changes_nothing(db: Db) {
    let f = fixture(&db).await;
    f.auth.register("ada@example.com", PW, None).await.unwrap();
    f.auth.forgot_password("ada@example.com", &client()).await.unwrap();
    let t = token(&f.nth("ada@example.com", 2).await, "/reset-password");
    f.clock.advance(Duration::from_secs(30 * 60));
    assert!(matches!(f.auth.reset_password(&t, PW2).await, Err(AuthError::TokenInvalid)));
    f.auth.login("ada@example.com", PW, &client()).await.unwrap();
    assert_eq!(f.count("ada@example.com"), 2, "no notice: nothing changed");
}

async fn a_reset_ends_every_session_and_voids_the_other_links(db: Db) {
    let f = fixture(&db).await;
    f.auth.register("ada@example.com", PW, None).await.unwrap();
    let verify = token(&f.nth("ada@example.com", 1).await, "/verify-email");
    let login = f.auth.login("ada@example.com", PW, &client()).await.unwrap();
    f.auth.forgot_password("ada@example.com", &client()).await.unwrap();
    let first = token(&f.nth("ada@example.com", 2).await, "/reset-password");
    f.auth.forgot_password("ada@example.com", &client()).await.unwrap();
    let second = token(&f.nth("ada@example.com", 3).await, "/reset-password");
    f.auth.reset_password(&second, PW2).await.unwrap();
    assert!(f.auth.authenticate(login.access_token.expose()).await.is_err(), "the session ended");
    assert!(f.auth.refresh(login.refresh_token.expose(), &client()).await.is_err(), "and its refresh family");
    assert!(matches!(f.auth.reset_password(&first, PW).await, Err(AuthError::TokenInvalid)), "the other link");
    assert!(matches!(f.auth.confirm_email(&verify).await, Err(AuthError::TokenInvalid)), "every link");
    // The reset proved the address, and no session was opened for anyone.
    let ada = f.auth.user_by_email("ada@example.com").await.unwrap();
    assert!(ada.email_verified);
    let notice = f.nth("ada@example.com", 4).await;
    assert_eq!(notice.subject, "Your Acme password was reset");
    f.auth.login("ada@example.com", PW2, &client()).await.unwrap();
}

async fn of_two_resets_with_one_link_exactly_one_wins(db: Db) {
    let f = Arc::new(fixture(&db).await);
    f.auth.register("ada@example.com", PW, None).await.unwrap();
    f.auth.forgot_password("ada@example.com", &client()).await.unwrap();
    let t = token(&f.nth("ada@example.com", 2).await, "/reset-password");
    let run = |pw: &'static str| {
        let (f, t) = (f.clone(), t.clone());
        tokio::spawn(async move { f.auth.reset_password(&t, pw).await })
    };
    let (a, b) = (run(PW2), run("another fine passphrase"));
    let results = [a.await.unwrap(), b.await.unwrap()];
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
}

/// Someone who knew the password started a reset and a change of address; the owner changes
/// the password (as the notice says to): both links die with the old password.
async fn changing_the_password_voids_outstanding_reset_and_change_links(db: Db) {
    let f = fixture(&db).await;
    f.auth.register("ada@example.com", PW, None).await.unwrap();
    f.auth.forgot_password("ada@example.com", &client()).await.unwrap();
    let reset = token(&f.nth("ada@example.com", 2).await, "/reset-password");
    let login = f.auth.login("ada@example.com", PW, &client()).await.unwrap();
    let who = f.auth.authenticate(login.access_token.expose()).await.unwrap();
    f.auth.request_email_change(&who, "mallory@example.com", PW, &client()).await.unwrap();
    let change = token(&f.nth("mallory@example.com", 1).await, "/confirm-email");
    f.auth.change_password(&who, PW, PW2, &client()).await.unwrap();
    assert_eq!(f.nth("ada@example.com", 4).await.subject, "Your Acme password was changed");
    assert!(matches!(f.auth.reset_password(&reset, PW).await, Err(AuthError::TokenInvalid)));
    assert!(matches!(f.auth.confirm_email_change(&change).await, Err(AuthError::TokenInvalid)));
    assert_eq!(f.auth.user(who.user_id).await.unwrap().email.as_str(), "ada@example.com");
}

/// A new reset request voids the earlier link: one live reset link per account.
async fn a_new_reset_link_voids_the_earlier_one(db: Db) {
    let f = fixture(&db).await;
    f.auth.register("ada@example.com", PW, None).await.unwrap();
    f.auth.forgot_password("ada@example.com", &client()).await.unwrap();
    let first = token(&f.nth("ada@example.com", 2).await, "/reset-password");
    f.auth.forgot_password("ada@example.com", &client()).await.unwrap();
    let second = token(&f.nth("ada@example.com", 3).await, "/reset-password");
    assert!(matches!(f.auth.reset_password(&first, PW2).await, Err(AuthError::TokenInvalid)));
    f.auth.reset_password(&second, PW2).await.unwrap();
}

async fn a_change_of_address_needs_the_password_and_the_new_address(db: Db) {
    let f = fixture(&db).await;
    f.auth.register("ada@example.com", PW, None).await.unwrap();
    let old_verify = token(&f.nth("ada@example.com", 1).await, "/verify-email");
    let login = f.auth.login("ada@example.com", PW, &client()).await.unwrap();
    let who = f.auth.authenticate(login.access_token.expose()).await.unwrap();
    let r = f.auth.request_email_change(&who, "ada@new.example", "wrong password", &client()).await;
    assert!(matches!(r, Err(AuthError::InvalidCredentials)), "{r:?}");
    let r = f.auth.request_email_change(&who, "ada@example.com", PW, &client()).await;
    assert!(matches!(r, Err(AuthError::Validation { field: "new_email", .. })), "{r:?}");
    f.auth.request_email_change(&who, "ada@new.example", PW, &client()).await.unwrap();
    let t = token(&f.nth("ada@new.example", 1).await, "/confirm-email");
    assert!(f.nth("ada@example.com", 2).await.text.contains("a***@new.example"));
    f.auth.confirm_email_change(&t).await.unwrap();
    let ada = f.auth.user(who.user_id).await.unwrap();
    assert_eq!((ada.email.as_str(), ada.email_verified), ("ada@new.example", true));
    assert_eq!(f.nth("ada@example.com", 3).await.subject, "Your Acme e-mail address was changed");
    // The link sent to the old address verifies nothing any more.
    assert!(matches!(f.auth.confirm_email(&old_verify).await, Err(AuthError::TokenInvalid)));
    assert!(matches!(f.auth.confirm_email_change(&t).await, Err(AuthError::TokenInvalid)));
}

async fn an_address_with_an_account_gets_no_link_and_cannot_be_taken(db: Db) {
    let f = fixture(&db).await;
    f.auth.register("ada@example.com", PW, None).await.unwrap();
    f.auth.register("bob@example.com", PW, None).await.unwrap();
    let login = f.auth.login("ada@example.com", PW, &client()).await.unwrap();
    let who = f.auth.authenticate(login.access_token.expose()).await.unwrap();
    // Taken already: the same answer, but only the notice leaves.
    f.auth.request_email_change(&who, "bob@example.com", PW, &client()).await.unwrap();
    f.nth("ada@example.com", 2).await;
    f.settle().await;
    assert_eq!(f.count("bob@example.com"), 1, "bob got only his own welcome");
    // Free when asked, taken before the confirmation: refused, nothing changes.
    f.auth.request_email_change(&who, "carol@example.com", PW, &client()).await.unwrap();
    let t = token(&f.nth("carol@example.com", 1).await, "/confirm-email");
    f.auth.register("carol@example.com", PW, None).await.unwrap();
    assert!(matches!(f.auth.confirm_email_change(&t).await, Err(AuthError::EmailTaken)));
    assert_eq!(f.auth.user(who.user_id).await.unwrap().email.as_str(), "ada@example.com");
}

async fn a_lock_is_told_to_the_owner_once(db: Db) {
    let f = fixture(&db).await;
    f.auth.register("ada@example.com", PW, None).await.unwrap();
    for _ in 0..5 {
        assert!(matches!(
            f.auth.login("ada@example.com", "wrong password", &client()).await,
            Err(AuthError::InvalidCredentials)
        ));
    }
    let notice = f.nth("ada@example.com", 2).await;
    assert_eq!(notice.subject, "Sign-ins to your Acme account are paused");
    assert!(notice.text.contains("30 seconds"), "{}", notice.text);
    assert!(matches!(
        f.auth.login("ada@example.com", "wrong password", &client()).await,
        Err(AuthError::RateLimited { .. })
    ));
    f.clock.advance(Duration::from_secs(31));
    let _ = f.auth.login("ada@example.com", "wrong password", &client()).await;
    f.settle().await;
    assert_eq!(f.count("ada@example.com"), 2, "one notice per lock window, not per attempt");
    // Unknown addresses have no owner to tell.
    for _ in 0..5 {
        let _ = f.auth.login("nobody@example.com", "wrong password", &client()).await;
    }
    f.settle().await;
    assert_eq!(f.count("nobody@example.com"), 0);
}

async fn requests_for_one_address_are_throttled(db: Db) {
    let f = fixture(&db).await;
    for i in 0..5 {
        // From different client addresses: the target's own limit.
        let c = ClientInfo { ip: Some(format!("192.0.2.{i}")), user_agent: None };
        f.auth.forgot_password("flood@example.com", &c).await.unwrap();
    }
    let c = ClientInfo { ip: Some("192.0.2.99".into()), user_agent: None };
    assert!(matches!(f.auth.forgot_password("flood@example.com", &c).await, Err(AuthError::RateLimited { .. })));
    assert!(matches!(
        f.auth.forgot_password("not an address", &c).await,
        Err(AuthError::Validation { field: "email", .. })
    ));
}

/// Deleting one's account mails a confirmation to the address it had.
async fn a_deleted_account_gets_a_confirmation(db: Db) {
    let f = fixture(&db).await;
    f.auth.register("ada@example.com", PW, None).await.unwrap();
    let login = f.auth.login("ada@example.com", PW, &client()).await.unwrap();
    let who = f.auth.authenticate(login.access_token.expose()).await.unwrap();
    assert!(matches!(
        f.auth.delete_account(&who, "wrong password", &client()).await,
        Err(AuthError::InvalidCredentials)
    ));
    f.auth.delete_account(&who, PW, &client()).await.unwrap();
    assert_eq!(f.nth("ada@example.com", 2).await.subject, "Your Acme account was deleted");
    assert!(f.auth.user(who.user_id).await.is_err());
}

fafnir_core::conformance_tests!(
    a_deleted_account_gets_a_confirmation,
    registration_mails_a_link_that_verifies_the_address_once,
    an_expired_reset_link_is_refused_and_changes_nothing,
    a_reset_ends_every_session_and_voids_the_other_links,
    of_two_resets_with_one_link_exactly_one_wins,
    changing_the_password_voids_outstanding_reset_and_change_links,
    a_new_reset_link_voids_the_earlier_one,
    a_change_of_address_needs_the_password_and_the_new_address,
    an_address_with_an_account_gets_no_link_and_cannot_be_taken,
    a_lock_is_told_to_the_owner_once,
    requests_for_one_address_are_throttled,
);
