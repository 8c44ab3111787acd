//! The authentication service: the operations, independent of any transport.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use fafnir_core::cache::{TrustedKeys, TtlCache};
use fafnir_core::clock::{dur_ms, from_ms};
use fafnir_core::events::{AccountEvent, Outbox};
use fafnir_core::keys::KeyManager;
use fafnir_core::token::{AccessClaims, CachingVerifier, Jwks, TokenAudience, TokenVerifier};
use fafnir_core::{Config, Email, SessionId, SharedClock, UserId};
use serde::Serialize;

use crate::error::AuthError;
use crate::password::{Argon2Config, Password, PasswordHasher, PasswordPolicy};
use crate::secret::{new_refresh_token, plausible_refresh_token, token_hash, SecretString};
use crate::store::{AuthStore, RotateParams, Rotation, SessionRecord, UserRecord};
use crate::throttle::{self, Claim, Outcome, ThrottleConfig};
use fafnir_core::audit::{AuditEvent, AuditKind};

/// Settings of the authentication service.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub issuer: String,
    pub audience: String,
    pub access_ttl: Duration,
    /// Sliding: every refresh extends the session by this much.
    pub refresh_ttl: Duration,
    /// How long the immediate parent of the newest refresh token is still accepted (concurrent
    /// tabs refreshing at once must not log the user out).
    pub refresh_grace: Duration,
    /// How long "this session is active" is remembered before asking the store again: a
    /// session revoked on another instance is refused within this time. Revocations on this
    /// instance take effect at once.
    pub session_check_ttl: Duration,
    pub argon2: Argon2Config,
    /// Concurrent hashes (each holds `argon2.memory_kib`). Default: the number of cores.
    pub max_concurrent_hashes: usize,
    pub password_policy: PasswordPolicy,
    /// Failed logins (and wrong current passwords).
    pub throttle: ThrottleConfig,
    /// Registration attempts, successful or not (see [`Auth::register_from`]).
    pub register_throttle: ThrottleConfig,
    /// Registration and first provider sign-ins may create accounts (`FAFNIR_ALLOW_SIGNUP`).
    pub allow_signup: bool,
    /// Social login may link to an existing account by verified e-mail
    /// (`FAFNIR_OAUTH_LINK_VERIFIED_EMAIL`).
    pub oauth_link_verified_email: bool,
    /// The name authenticator apps show for TOTP (`FAFNIR_PRODUCT_NAME`).
    pub product_name: String,
}

impl AuthConfig {
    pub fn from_config(c: &Config) -> Self {
        Self {
            issuer: c.issuer(),
            audience: c.audience.clone(),
            access_ttl: c.access_ttl,
            refresh_ttl: c.refresh_ttl,
            allow_signup: c.allow_signup,
            oauth_link_verified_email: c.oauth_link_verified_email,
            product_name: c.product_name.clone(),
            ..Self::default()
        }
    }

    pub fn token_audience(&self) -> TokenAudience {
        TokenAudience::new(self.issuer.clone(), self.audience.clone(), self.access_ttl)
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        let c = Config::default();
        Self {
            issuer: c.issuer(),
            audience: c.audience.clone(),
            access_ttl: c.access_ttl,
            refresh_ttl: c.refresh_ttl,
            refresh_grace: Duration::from_secs(10),
            session_check_ttl: Duration::from_secs(2),
            argon2: Argon2Config::default(),
            max_concurrent_hashes: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
            password_policy: PasswordPolicy::default(),
            throttle: ThrottleConfig::default(),
            register_throttle: ThrottleConfig::registrations(),
            allow_signup: true,
            oauth_link_verified_email: false,
            product_name: c.product_name.clone(),
        }
    }
}

/// Bidirectional controls, which can make a name display as something else.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

pub use fafnir_core::ClientInfo;

/// The public view of an account (the contract's `user`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Account {
    pub id: UserId,
    pub email: Email,
    pub email_verified: bool,
    pub created_at: DateTime<Utc>,
}

impl From<&UserRecord> for Account {
    fn from(u: &UserRecord) -> Self {
        Account { id: u.id, email: u.email.clone(), email_verified: u.email_verified, created_at: u.created_at }
    }
}

/// The result of a login or refresh: tokens for the transport to deliver.
#[derive(Debug, Clone)]
pub struct Login {
    pub user: Account,
    pub session_id: SessionId,
    pub access_token: SecretString,
    pub access_expires_at: DateTime<Utc>,
    pub refresh_token: SecretString,
    pub refresh_expires_at: DateTime<Utc>,
}

/// An authenticated caller: a verified access token whose session is active.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: UserId,
    pub session_id: SessionId,
    pub claims: AccessClaims,
    /// The access token itself, to forward to other services on the caller's behalf.
    pub token: SecretString,
}

/// The answer of [`Auth::introspect`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Introspection {
    Active(AccessClaims),
    /// The token is genuine but its session has ended: it will never be active again.
    SessionEnded,
    /// The token is not acceptable (expired, malformed, forged, another issuer's).
    TokenRefused,
}

/// A session as listed to its owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionInfo {
    pub id: SessionId,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    /// The session the listing request came from.
    pub current: bool,
}

/// Registration, login, tokens and sessions.
pub struct Auth {
    pub(crate) cfg: AuthConfig,
    audience: TokenAudience,
    pub(crate) store: Arc<dyn AuthStore>,
    keys: Arc<KeyManager>,
    pub(crate) hasher: PasswordHasher,
    pub(crate) clock: SharedClock,
    outbox: Arc<Outbox>,
    /// "This session is active", per session, for `session_check_ttl`. Like the two below,
    /// keyed by ids this process made or read from tokens it verified: hashed with foldhash.
    pub(crate) sessions: TtlCache<SessionId, UserId, TrustedKeys>,
    /// Accounts as `me` shows them, for `session_check_ttl`.
    pub(crate) accounts: TtlCache<UserId, Account, TrustedKeys>,
    /// Sign-in methods as `me` shows them, for `session_check_ttl`.
    pub(crate) methods: TtlCache<UserId, Vec<String>, TrustedKeys>,
    /// Link mails and security notices ([`Auth::with_mail`]); without it the e-mail
    /// operations answer a configuration error and no notice is sent.
    pub(crate) mail: Option<crate::email::AccountMail>,
    /// The audit log ([`Auth::with_audit`]); without it, events are only logged.
    pub(crate) audit: Option<fafnir_core::audit::AuditLog>,
    /// Social login ([`Auth::with_oauth`]).
    pub(crate) oauth: Option<Arc<crate::oauth::Providers>>,
    /// The key of TOTP secrets at rest ([`Auth::with_mfa_key`]).
    pub(crate) mfa_key: Option<Arc<crate::mfa::MfaKey>>,
    /// The passkeys' relying party ([`Auth::with_passkeys`]).
    pub(crate) passkeys: Option<Arc<crate::passkey::Passkeys>>,
    /// Access tokens whose signature has been verified, keyed by the whole token (so a cached
    /// entry can only ever match the very same token); expiry is still checked on every use.
    /// The process's one token cache: the other transports verify through it too
    /// ([`Auth::token_verifier`]).
    tokens: Arc<CachingVerifier>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth").field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

/// How long inline delivery of account events may hold up a registration before it is left to
/// the background dispatcher.
const INLINE_DELIVERY_BUDGET: Duration = Duration::from_secs(2);

/// Entries per cache (sessions, accounts, verified tokens): bounds their memory to a few MB.
const CACHE_MAX: usize = fafnir_core::cache::DEFAULT_CAPACITY;

impl Auth {
    pub fn new(
        cfg: AuthConfig,
        store: Arc<dyn AuthStore>,
        keys: Arc<KeyManager>,
        clock: SharedClock,
        outbox: Arc<Outbox>,
    ) -> Result<Self, AuthError> {
        let hasher = PasswordHasher::new(cfg.argon2, cfg.max_concurrent_hashes)?;
        let tokens = Arc::new(CachingVerifier::new(keys.clone(), clock.clone(), CACHE_MAX));
        Ok(Self {
            audience: cfg.token_audience(),
            cfg,
            store,
            keys,
            hasher,
            clock,
            outbox,
            sessions: TtlCache::trusted(CACHE_MAX),
            accounts: TtlCache::trusted(CACHE_MAX),
            methods: TtlCache::trusted(CACHE_MAX),
            tokens,
            mail: None,
            audit: None,
            oauth: None,
            mfa_key: None,
            passkeys: None,
        })
    }

    /// Records security events in `audit` (and as `fafnir::audit` log lines).
    #[must_use]
    pub fn with_audit(mut self, audit: fafnir_core::audit::AuditLog) -> Self {
        self.audit = Some(audit);
        self
    }

    /// The audit log, if one is set.
    pub fn audit_log(&self) -> Option<&fafnir_core::audit::AuditLog> {
        self.audit.as_ref()
    }

    /// Records `event` (in the background; see [`crate::audit`]).
    pub(crate) fn audit(&self, event: fafnir_core::audit::AuditEvent) {
        match &self.audit {
            Some(a) => a.record(event),
            None => tracing::info!(target: "fafnir::audit", r#type = event.kind.as_str(), "audit (not stored)"),
        }
    }

    /// Sends link mails (verification, reset, change of address) and security notices through
    /// `mail`; registration then mails a verification link.
    #[must_use]
    pub fn with_mail(mut self, mail: crate::email::AccountMail) -> Self {
        self.mail = Some(mail);
        self
    }

    pub fn config(&self) -> &AuthConfig {
        &self.cfg
    }

    pub fn keys(&self) -> &Arc<KeyManager> {
        &self.keys
    }

    /// The process's verified-token cache over [`Auth::keys`]: give it to the other transports'
    /// [`fafnir_core::token::Authenticator`] so that one cache serves them all.
    pub fn token_verifier(&self) -> Arc<dyn TokenVerifier> {
        self.tokens.clone()
    }

    pub fn jwks(&self) -> Jwks {
        self.keys.jwks()
    }

    /// Password hashes waiting for or holding a hashing slot.
    pub fn hash_queue_depth(&self) -> usize {
        self.hasher.queue_depth()
    }

    pub(crate) fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Creates an account. The `member` role and an empty profile follow through the outbox
    /// (delivered before this returns when the subscribers answer quickly, else in the background).
    pub async fn register(
        &self,
        email: &str,
        password: &str,
        display_name: Option<&str>,
    ) -> Result<Account, AuthError> {
        let email = Email::parse(email).map_err(|e| AuthError::validation("email", e.to_string()))?;
        let password = Password::new(password);
        self.cfg
            .password_policy
            .check(&password, &[email.as_str(), email.as_str().split('@').next().unwrap_or_default()])
            .map_err(|m| AuthError::validation("password", m))?;
        let display_name = display_name.map(str::trim).filter(|s| !s.is_empty());
        // The profile service applies the same rule; refused here, the account is not created
        // with a profile event that could never be delivered.
        if display_name.is_some_and(|n| n.chars().any(|c| c.is_control() || is_bidi_control(c))) {
            return Err(AuthError::validation("display_name", "must not contain control characters"));
        }
        // Hash before looking at the table: taken and free addresses cost the same time.
        let hash = self.hasher.hash(&password).await?;
        let user = UserRecord {
            id: UserId::new(),
            email,
            password_hash: Some(hash),
            email_verified: false,
            created_at: from_ms(self.now_ms()),
            disabled_at: None,
            last_sign_in_at: None,
        };
        let display_name = display_name.map(|s| s.chars().take(100).collect());
        let event = AccountEvent::UserCreated { user_id: user.id, display_name };
        self.store.create_user(&user, &event).await?;
        tracing::info!(user_id = %user.id, "account registered");
        self.deliver_events().await;
        // The account exists whatever happens to the mail: a failure here is logged, and the
        // link can be asked for again.
        if let Err(e) = self.send_verification(user.id, &user.email).await {
            tracing::warn!(user_id = %user.id, error = %e, "the verification mail could not be queued");
        }
        Ok(Account::from(&user))
    }

    /// [`Auth::register`] for a request from `client`: every attempt counts against the
    /// registration limits of the e-mail address and of the client address (`RateLimited` once
    /// exceeded), so the endpoint cannot be used to spray accounts or probe addresses quickly.
    pub async fn register_from(
        &self,
        email: &str,
        password: &str,
        display_name: Option<&str>,
        client: &ClientInfo,
    ) -> Result<Account, AuthError> {
        if !self.cfg.allow_signup {
            return Err(AuthError::SignupDisabled);
        }
        let parsed = Email::parse(email).ok();
        let keys = throttle::keys("reg:", parsed.as_ref(), client);
        // Every registration attempt counts, whatever its outcome.
        // An abandoned registration counts too (the account may even have been created).
        let claim = self.claim(keys, self.cfg.register_throttle, Outcome::Failed).await?;
        let r = self.register(email, password, display_name).await;
        claim.finish(Outcome::Failed).await?;
        r
    }

    /// Claims an attempt on every key (see [`AuthStore::begin_attempts`]); on refusal answers
    /// `RateLimited` with the real wait.
    pub(crate) async fn claim(
        &self,
        keys: Vec<throttle::Key>,
        rules: ThrottleConfig,
        if_abandoned: Outcome,
    ) -> Result<Claim, AuthError> {
        Claim::begin(self.store.clone(), self.clock.clone(), keys, rules, if_abandoned).await
    }

    pub(crate) async fn deliver_events(&self) {
        match tokio::time::timeout(INLINE_DELIVERY_BUDGET, self.outbox.deliver_pending()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "inline event delivery failed; the dispatcher will retry")
            }
            Err(_) => {
                tracing::warn!("inline event delivery is slow; the dispatcher will finish it")
            }
        }
        self.outbox.notify();
    }

    /// Checks e-mail and password and opens a session.
    ///
    /// Unknown e-mail, wrong password and malformed e-mail all answer `InvalidCredentials` after
    /// the same Argon2 work. Locked accounts and addresses answer `RateLimited` before any.
    ///
    /// An account with a second factor gets no session: `MfaRequired` carries the challenge to
    /// answer with [`Auth::mfa_verify`] (a browser session when it succeeds).
    pub async fn login(&self, email: &str, password: &str, client: &ClientInfo) -> Result<Login, AuthError> {
        self.login_via(email, password, client, crate::mfa::Via::Session).await
    }

    /// [`Auth::login`] saying what a step-up should deliver once passed (the token endpoint's
    /// answer for [`crate::mfa::Via::Token`]).
    pub async fn login_via(
        &self,
        email: &str,
        password: &str,
        client: &ClientInfo,
        via: crate::mfa::Via,
    ) -> Result<Login, AuthError> {
        let email = Email::parse(email).ok();
        // Held until the attempt ends; released in the background if this future is dropped
        // (the client went away mid-hash), so an abandoned request never blocks the account.
        let claim =
            self.claim(throttle::keys("", email.as_ref(), client), self.cfg.throttle, Outcome::Abandoned).await?;
        let password = Password::new(password);
        let checked = async {
            let user = match &email {
                Some(e) => self.store.user_by_email(e).await?,
                None => None,
            };
            let verified =
                self.hasher.verify(&password, user.as_ref().and_then(|u| u.password_hash.as_deref())).await?;
            Ok::<_, AuthError>((user, verified))
        }
        .await;
        let (user, verified) = match checked {
            Ok(v) => v,
            Err(e) => {
                // Not the caller's doing: release the claims without counting a failure.
                let _ = claim.finish(Outcome::Released).await;
                return Err(e);
            }
        };
        let user = match user {
            Some(u) if verified.ok => u,
            other => {
                claim.finish(Outcome::Failed).await?;
                tracing::info!(outcome = "failure", "login failed");
                let mut ev =
                    AuditEvent::new(AuditKind::LoginFailed).client(client).detail("reason", "invalid_credentials");
                if let Some(u) = &other {
                    ev = ev.subject(u.id);
                }
                self.audit(ev);
                if let Some(e) = &email {
                    self.notice_if_locked(e, other.as_ref(), client).await;
                }
                return Err(AuthError::InvalidCredentials);
            }
        };
        claim.finish(Outcome::Succeeded).await?;
        // Only now, after the password: the answers must not tell strangers which addresses
        // have disabled or unverified accounts.
        if user.disabled_at.is_some() {
            tracing::info!(user_id = %user.id, outcome = "account_disabled", "login refused");
            self.audit(
                AuditEvent::new(AuditKind::LoginFailed)
                    .subject(user.id)
                    .client(client)
                    .detail("reason", "account_disabled"),
            );
            return Err(AuthError::AccountDisabled);
        }
        if !user.email_verified && self.mail.as_ref().is_some_and(|m| m.settings().require_verified) {
            tracing::info!(user_id = %user.id, outcome = "email_not_verified", "login refused");
            self.audit(
                AuditEvent::new(AuditKind::LoginFailed)
                    .subject(user.id)
                    .client(client)
                    .detail("reason", "email_not_verified"),
            );
            return Err(AuthError::EmailNotVerified);
        }
        if verified.needs_rehash {
            // Parameters changed since this hash was made: upgrade it now that we know the password.
            let hash = self.hasher.hash(&password).await?;
            // Only over the hash we verified: a password changed meanwhile must not be undone.
            let old = user.password_hash.as_deref().unwrap_or_default();
            if self.store.replace_password_hash(user.id, old, &hash, self.now_ms()).await? {
                tracing::info!(user_id = %user.id, "password rehashed with current parameters");
            }
        }
        if self.has_second_factor(user.id).await? {
            tracing::info!(user_id = %user.id, outcome = "mfa_required", "login: second factor required");
            return Err(self.mfa_challenge(user.id, via).await);
        }
        let login = self.open_session(&user, client).await?;
        tracing::info!(user_id = %user.id, session_id = %login.session_id, outcome = "success", "login");
        self.audit(
            AuditEvent::new(AuditKind::LoginSucceeded)
                .own(user.id)
                .client(client)
                .detail("session_id", login.session_id.to_string()),
        );
        self.note_sign_in(user.id);
        Ok(login)
    }

    pub(crate) async fn open_session(&self, user: &UserRecord, client: &ClientInfo) -> Result<Login, AuthError> {
        let now = self.now_ms();
        let session = SessionRecord {
            id: SessionId::new(),
            user_id: user.id,
            created_at: from_ms(now),
            last_used_at: from_ms(now),
            expires_at: from_ms(now.saturating_add(dur_ms(self.cfg.refresh_ttl))),
            user_agent: client.user_agent.as_ref().map(|s| s.chars().take(256).collect()),
            ip: client.ip.as_ref().map(|s| s.chars().take(64).collect()),
        };
        let refresh = new_refresh_token();
        self.store.create_session(&session, &token_hash(refresh.expose())).await?;
        self.sessions.put(session.id, user.id, now);
        self.issue(Account::from(user), session.id, refresh, now)
    }

    fn issue(&self, user: Account, sid: SessionId, refresh: SecretString, now: i64) -> Result<Login, AuthError> {
        let exp = now.saturating_add(dur_ms(self.cfg.access_ttl));
        let claims = AccessClaims {
            iss: self.cfg.issuer.clone(),
            aud: self.cfg.audience.clone(),
            sub: user.id,
            sid,
            iat: now / 1000,
            exp: exp / 1000,
            jti: uuid::Uuid::new_v4().simple().to_string(),
            nbf: None,
        };
        let access = self.keys.sign(&claims)?;
        Ok(Login {
            user,
            session_id: sid,
            access_token: SecretString::new(access),
            access_expires_at: from_ms((exp / 1000) * 1000),
            refresh_token: refresh,
            refresh_expires_at: from_ms(now.saturating_add(dur_ms(self.cfg.refresh_ttl))),
        })
    }

    /// Verifies an access token and that its session is still active.
    pub async fn authenticate(&self, access_token: &str) -> Result<Principal, AuthError> {
        self.authenticate_owned(access_token.to_owned()).await
    }

    /// [`Auth::authenticate`] with a token the caller owns already (the one the extractors read
    /// from the request), kept in the [`Principal`] without a second copy.
    pub(crate) async fn authenticate_owned(&self, access_token: String) -> Result<Principal, AuthError> {
        let claims = self.tokens.verify(&access_token, &self.audience).await.map_err(|_| AuthError::Unauthorized)?;
        if !self.session_active(claims.sid, claims.sub).await? {
            return Err(AuthError::Unauthorized);
        }
        Ok(Principal { user_id: claims.sub, session_id: claims.sid, claims, token: SecretString::new(access_token) })
    }

    /// Whether session `sid` of `user` is active (remembered for `session_check_ttl`;
    /// revocations made through this instance are seen at once).
    pub async fn session_active(&self, sid: SessionId, user: UserId) -> Result<bool, AuthError> {
        let now = self.now_ms();
        let owner = match self.sessions.get(&sid, now, dur_ms(self.cfg.session_check_ttl)) {
            Some(u) => u,
            None => match self.store.active_session(sid, now).await? {
                Some(u) => {
                    self.sessions.put(sid, u, now);
                    u
                }
                None => return Ok(false),
            },
        };
        Ok(owner == user)
    }

    /// RFC 7662-style introspection of an access token: active with its claims when it is
    /// genuine, unexpired and its session active; else why not — the session has ended (for good:
    /// a caller may remember that) or the token itself is not acceptable (expired, forged, for
    /// another issuer: says nothing about the session).
    pub async fn introspect(&self, access_token: &str) -> Result<Introspection, AuthError> {
        let Ok(claims) = self.tokens.verify(access_token, &self.audience).await else {
            return Ok(Introspection::TokenRefused);
        };
        if self.session_active(claims.sid, claims.sub).await? {
            Ok(Introspection::Active(claims))
        } else {
            Ok(Introspection::SessionEnded)
        }
    }

    /// The caller's account (remembered for `session_check_ttl`).
    pub async fn me(&self, who: &Principal) -> Result<Account, AuthError> {
        let now = self.now_ms();
        if let Some(a) = self.accounts.get(&who.user_id, now, dur_ms(self.cfg.session_check_ttl)) {
            return Ok(a);
        }
        let user = self.store.user_by_id(who.user_id).await?.ok_or(AuthError::Unauthorized)?;
        let account = Account::from(&user);
        self.accounts.put(who.user_id, account.clone(), now);
        Ok(account)
    }

    /// Exchanges a refresh token for new tokens (the presented one is used up).
    pub async fn refresh(&self, refresh_token: &str, _client: &ClientInfo) -> Result<Login, AuthError> {
        if !plausible_refresh_token(refresh_token) {
            return Err(AuthError::InvalidRefreshToken);
        }
        let fresh = new_refresh_token();
        let presented = token_hash(refresh_token);
        let fresh_hash = token_hash(fresh.expose());
        let now = self.now_ms();
        let outcome = self
            .store
            .rotate_refresh(RotateParams {
                presented_hash: &presented,
                fresh_hash: &fresh_hash,
                now_ms: now,
                grace_ms: dur_ms(self.cfg.refresh_grace),
                ttl_ms: dur_ms(self.cfg.refresh_ttl),
            })
            .await?;
        match outcome {
            Rotation::Rotated { session, user } => {
                let user = self.store.user_by_id(user).await?.ok_or(AuthError::InvalidRefreshToken)?;
                if user.disabled_at.is_some() {
                    // A session that outlived the disabling (it raced it): end it now.
                    self.store.revoke_session(user.id, session, "account_disabled", now).await?;
                    self.sessions.forget(&session);
                    return Err(AuthError::InvalidRefreshToken);
                }
                self.issue(Account::from(&user), session, fresh, now)
            }
            Rotation::Invalid => Err(AuthError::InvalidRefreshToken),
            Rotation::Reused { session, user } => {
                self.sessions.forget(&session);
                self.audit(
                    AuditEvent::new(AuditKind::RefreshReuseDetected)
                        .subject(user)
                        .client(_client)
                        .detail("session_id", session.to_string()),
                );
                tracing::warn!(user_id = %user, session_id = %session, "refresh token reuse detected; session revoked");
                Err(AuthError::RefreshTokenReused)
            }
        }
    }

    /// Ends the caller's session.
    pub async fn logout(&self, who: &Principal) -> Result<(), AuthError> {
        self.store.revoke_session(who.user_id, who.session_id, "logout", self.now_ms()).await?;
        self.sessions.forget(&who.session_id);
        self.audit(
            AuditEvent::new(AuditKind::Logout).own(who.user_id).detail("session_id", who.session_id.to_string()),
        );
        Ok(())
    }

    /// Ends the session a refresh token belongs to (logout when the access token has expired).
    /// An unknown or dead token is not an error: the session is over either way.
    pub async fn logout_with_refresh(&self, refresh_token: &str) -> Result<(), AuthError> {
        if !plausible_refresh_token(refresh_token) {
            return Ok(());
        }
        if let Some((sid, uid)) = self.store.session_of_refresh(&token_hash(refresh_token), self.now_ms()).await? {
            self.store.revoke_session(uid, sid, "logout", self.now_ms()).await?;
            self.sessions.forget(&sid);
            self.audit(AuditEvent::new(AuditKind::Logout).own(uid).detail("session_id", sid.to_string()));
        }
        Ok(())
    }

    /// The active session a refresh token (current or already used) belongs to.
    pub async fn session_of_refresh(&self, refresh_token: &str) -> Result<Option<SessionId>, AuthError> {
        if !plausible_refresh_token(refresh_token) {
            return Ok(None);
        }
        Ok(self.store.session_of_refresh(&token_hash(refresh_token), self.now_ms()).await?.map(|(sid, _)| sid))
    }

    /// Ends every session of the caller; returns how many.
    pub async fn logout_all(&self, user: UserId) -> Result<u64, AuthError> {
        let n = self.store.revoke_sessions(user, None, "logout_all", self.now_ms()).await?;
        self.sessions.retain(|_, u| u != &user);
        self.audit(AuditEvent::new(AuditKind::LogoutAll).own(user).detail("sessions", n));
        Ok(n)
    }

    pub async fn sessions(&self, who: &Principal) -> Result<Vec<SessionInfo>, AuthError> {
        let list = self.store.sessions_of(who.user_id, self.now_ms()).await?;
        Ok(list
            .into_iter()
            .map(|s| SessionInfo {
                current: s.id == who.session_id,
                id: s.id,
                created_at: s.created_at,
                last_used_at: s.last_used_at,
                expires_at: s.expires_at,
                user_agent: s.user_agent,
                ip: s.ip,
            })
            .collect())
    }

    /// Revokes one of the caller's own sessions. Someone else's session is `SessionNotFound`.
    pub async fn revoke_session(&self, who: &Principal, sid: SessionId) -> Result<(), AuthError> {
        if !self.store.revoke_session(who.user_id, sid, "revoked_by_user", self.now_ms()).await? {
            return Err(AuthError::SessionNotFound);
        }
        self.sessions.forget(&sid);
        Ok(())
    }

    /// The current password of `user`, checked under the login throttle.
    pub(crate) async fn check_current_password(
        &self,
        user: &UserRecord,
        current: &str,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        let claim =
            self.claim(throttle::keys("", Some(&user.email), client), self.cfg.throttle, Outcome::Abandoned).await?;
        let verified = match self.hasher.verify(&Password::new(current), user.password_hash.as_deref()).await {
            Ok(v) => v,
            Err(e) => {
                let _ = claim.finish(Outcome::Released).await;
                return Err(e);
            }
        };
        if !verified.ok {
            claim.finish(Outcome::Failed).await?;
            self.notice_if_locked(&user.email, Some(user), client).await;
            return Err(AuthError::InvalidCredentials);
        }
        // A right current password does not clear the account's failures: it is not a login.
        claim.finish(Outcome::Released).await
    }

    /// `ReauthenticationRequired` unless the caller's session began within
    /// [`crate::oauth::RECENT_SIGN_IN`].
    pub(crate) async fn check_recent_sign_in(&self, who: &Principal) -> Result<(), AuthError> {
        let now = self.now_ms();
        let sessions = self.store.sessions_of(who.user_id, now).await?;
        let started = sessions.iter().find(|s| s.id == who.session_id).map(|s| s.created_at.timestamp_millis());
        match started {
            Some(t) if now.saturating_sub(t) <= dur_ms(crate::oauth::RECENT_SIGN_IN) => Ok(()),
            _ => Err(AuthError::ReauthenticationRequired),
        }
    }

    /// Changes the password after checking the current one (or, for an account that has none
    /// yet, that the session is a recent sign-in); every other session is revoked.
    /// A wrong current password counts as a failed login for throttling.
    pub async fn change_password(
        &self,
        who: &Principal,
        current: &str,
        new: &str,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        let user = self.store.user_by_id(who.user_id).await?.ok_or(AuthError::Unauthorized)?;
        if user.password_hash.is_some() {
            self.check_current_password(&user, current, client).await?;
        } else {
            // A first password (the account was made by a provider sign-in): there is no current
            // one to prove, so the session must be fresh instead. With a second factor on, a
            // password set this way could then remove the factor: the mailed reset link (which
            // proves the address) is the way then.
            if self.has_second_factor(user.id).await? {
                return Err(AuthError::validation(
                    "current_password",
                    "this account has a second factor: set its first password with \"forgot password\"",
                ));
            }
            self.check_recent_sign_in(who).await?;
        }
        let new = Password::new(new);
        self.cfg
            .password_policy
            .check(&new, &[user.email.as_str()])
            .map_err(|m| AuthError::validation("new_password", m))?;
        let hash = self.hasher.hash(&new).await?;
        self.void_links_for_password_change(user.id).await?;
        self.store.set_password_hash(user.id, &hash, self.now_ms()).await?;
        self.methods.forget(&user.id);
        let n = self.store.revoke_sessions(user.id, Some(who.session_id), "password_changed", self.now_ms()).await?;
        self.sessions.retain(|_, u| u != &user.id);
        tracing::info!(user_id = %user.id, revoked_sessions = n, "password changed");
        self.audit(AuditEvent::new(AuditKind::PasswordChanged).own(user.id).client(client));
        self.password_changed(&user, false).await;
        Ok(())
    }

    /// Sets a user's password without the current one (admin tooling). Revokes every session.
    pub async fn set_password(&self, user: UserId, new: &str) -> Result<(), AuthError> {
        let rec = self.store.user_by_id(user).await?.ok_or(AuthError::UserNotFound)?;
        let new = Password::new(new);
        self.cfg
            .password_policy
            .check(&new, &[rec.email.as_str()])
            .map_err(|m| AuthError::validation("password", m))?;
        let hash = self.hasher.hash(&new).await?;
        self.void_links_for_password_change(user).await?;
        self.store.set_password_hash(user, &hash, self.now_ms()).await?;
        self.methods.forget(&user);
        self.store.revoke_sessions(user, None, "password_set", self.now_ms()).await?;
        self.sessions.retain(|_, u| u != &user);
        self.audit(AuditEvent::new(AuditKind::PasswordChanged).subject(user).detail("by", "administrator"));
        self.password_changed(&rec, false).await;
        Ok(())
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Account, AuthError> {
        let email = Email::parse(email).map_err(|e| AuthError::validation("email", e.to_string()))?;
        let user = self.store.user_by_email(&email).await?.ok_or(AuthError::UserNotFound)?;
        Ok(Account::from(&user))
    }

    pub async fn user(&self, id: UserId) -> Result<Account, AuthError> {
        let user = self.store.user_by_id(id).await?.ok_or(AuthError::UserNotFound)?;
        Ok(Account::from(&user))
    }

    /// Deletes an account and its sessions; roles and profile follow through the outbox.
    pub async fn delete_user(&self, id: UserId) -> Result<(), AuthError> {
        self.remove_user(id).await?;
        self.audit(AuditEvent::new(AuditKind::AccountDeleted).subject(id));
        Ok(())
    }

    /// [`Auth::delete_user`] without the audit event (the caller records its own, with the actor).
    pub(crate) async fn remove_user(&self, id: UserId) -> Result<(), AuthError> {
        if !self.store.delete_user(id, &AccountEvent::UserDeleted { user_id: id }).await? {
            return Err(AuthError::UserNotFound);
        }
        self.sessions.retain(|_, u| u != &id);
        self.accounts.forget(&id);
        tracing::info!(user_id = %id, "account deleted");
        self.deliver_events().await;
        Ok(())
    }

    /// Active sessions across all users (for the metrics gauge).
    pub async fn active_sessions(&self) -> Result<i64, AuthError> {
        self.store.count_active_sessions(self.now_ms()).await
    }

    /// Removes sessions that ended more than a day ago (run it periodically).
    pub async fn prune(&self) -> Result<u64, AuthError> {
        self.store.prune(self.now_ms() - 86_400_000).await
    }
}

/// In one process, the session check of the other services is the auth service itself.
#[async_trait::async_trait]
impl fafnir_core::token::SessionCheck for Auth {
    async fn is_active(&self, _token: &str, claims: &AccessClaims) -> Result<bool, fafnir_core::ServiceError> {
        self.session_active(claims.sid, claims.sub).await.map_err(|e| match e {
            AuthError::Store(inner) if inner.is_unavailable() => {
                fafnir_core::ServiceError::Unavailable("the session store is unavailable".into())
            }
            other => fafnir_core::ServiceError::Internal(other.to_string()),
        })
    }
}
