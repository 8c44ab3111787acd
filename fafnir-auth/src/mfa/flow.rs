//! The second-factor operations of [`Auth`].

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use fafnir_core::audit::{AuditEvent, AuditKind};
use fafnir_core::clock::dur_ms;
use fafnir_core::UserId;
use rand::RngCore;

use super::{
    base32, matching_step, new_recovery_code, normalize_recovery_code, ChallengeRecord, MfaKey, MfaStatus, TotpSetup,
    Via, CHALLENGE_TTL, RECOVERY_CODES, STEP_SECS,
};
use crate::error::AuthError;
use crate::secret::{sha256_hex, SecretString};
use crate::service::{Auth, ClientInfo, Login, Principal};
use crate::store::UserRecord;
use crate::throttle::{self, Outcome};

/// How a second factor is proved: a TOTP code or a recovery code.
#[derive(Clone, Copy)]
pub enum Factor<'a> {
    Totp(&'a str),
    RecoveryCode(&'a str),
}

impl std::fmt::Debug for Factor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Factor::Totp(_) => "Factor::Totp(***)",
            Factor::RecoveryCode(_) => "Factor::RecoveryCode(***)",
        })
    }
}

/// How a sensitive change is re-authenticated: the current password, or a second factor.
#[derive(Clone, Copy)]
pub enum Reauth<'a> {
    Password(&'a str),
    Factor(Factor<'a>),
}

impl std::fmt::Debug for Reauth<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reauth(***)")
    }
}

/// The throttle keys of second-factor codes: apart from passwords', with the same rules.
const MFA_PREFIX: &str = "mfa:";

fn hash_code(user: UserId, code: &str) -> String {
    // Bound to the account: the same code of two accounts hashes differently.
    sha256_hex(&format!("{user}:{}", normalize_recovery_code(code)))
}

/// A new set of recovery codes for `user`: the codes (shown once) and their hashes (stored).
pub(crate) fn new_recovery_set(user: UserId) -> (Vec<String>, Vec<String>) {
    let codes: Vec<String> = (0..RECOVERY_CODES).map(|_| new_recovery_code()).collect();
    let hashes = codes.iter().map(|c| hash_code(user, c)).collect();
    (codes, hashes)
}

impl Auth {
    /// Stores TOTP secrets sealed with `key` (32 bytes: `FAFNIR_MFA_KEY`, else the deployment's
    /// shared secret). Without a key, the second-factor operations answer a configuration error.
    #[must_use]
    pub fn with_mfa_key(mut self, key: MfaKey) -> Self {
        self.mfa_key = Some(Arc::new(key));
        self
    }

    fn mfa_key(&self) -> Result<&MfaKey, AuthError> {
        self.mfa_key.as_deref().ok_or_else(|| AuthError::Config("no MFA key is configured (Auth::with_mfa_key)".into()))
    }

    fn now_step(&self) -> u64 {
        u64::try_from(self.now_ms() / 1000).unwrap_or(0) / STEP_SECS
    }

    /// Whether `user` must pass a second factor to sign in: TOTP is on, or a passkey is
    /// registered.
    pub async fn has_second_factor(&self, user: UserId) -> Result<bool, AuthError> {
        // Every password login asks: two lookups, no recovery-code count.
        if self.store.totp(user).await?.is_some_and(|t| t.confirmed) {
            return Ok(true);
        }
        Ok(!self.store.passkeys_of(user).await?.is_empty())
    }

    /// The caller's second factors.
    pub async fn mfa_status(&self, user: UserId) -> Result<MfaStatus, AuthError> {
        let totp = self.store.totp(user).await?.is_some_and(|t| t.confirmed);
        let passkeys = u32::try_from(self.store.passkeys_of(user).await?.len()).unwrap_or(u32::MAX);
        let left = if totp || passkeys > 0 { self.store.recovery_codes_left(user).await? } else { 0 };
        Ok(MfaStatus { totp, passkeys, recovery_codes_left: u32::try_from(left).unwrap_or(0) })
    }

    /// Starts TOTP: a new secret, not yet in force (a code confirms it). `MfaAlreadyEnabled`
    /// when TOTP is on.
    pub async fn totp_setup(&self, who: &Principal) -> Result<TotpSetup, AuthError> {
        let key = self.mfa_key()?;
        // A second factor decides who can sign in from now on: a stolen older session must not
        // be able to put its own in place.
        self.check_recent_sign_in(who).await?;
        let user = self.store.user_by_id(who.user_id).await?.ok_or(AuthError::Unauthorized)?;
        let mut secret = [0u8; 20];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        if !self.store.put_totp_pending(user.id, &key.seal(user.id, &secret), self.now_ms()).await? {
            return Err(AuthError::MfaAlreadyEnabled);
        }
        // `:` is the label separator of otpauth URLs: keep it out of the issuer.
        let issuer = self.cfg.product_name.replace(':', " ");
        let url = totp_rs::TOTP::new_unchecked(
            totp_rs::Algorithm::SHA1,
            6,
            1,
            STEP_SECS,
            secret.to_vec(),
            Some(issuer),
            user.email.as_str().to_owned(),
        )
        .get_url();
        Ok(TotpSetup { secret: base32(&secret), otpauth_url: url })
    }

    /// Turns TOTP on with a first code from the app; returns the recovery codes (shown once).
    /// Wrong codes count against the login throttle.
    pub async fn totp_confirm(
        &self,
        who: &Principal,
        code: &str,
        client: &ClientInfo,
    ) -> Result<Vec<String>, AuthError> {
        let key = self.mfa_key()?;
        self.check_recent_sign_in(who).await?;
        let user = self.store.user_by_id(who.user_id).await?.ok_or(AuthError::Unauthorized)?;
        let pending = match self.store.totp(user.id).await? {
            Some(t) if !t.confirmed => t,
            Some(_) => return Err(AuthError::MfaAlreadyEnabled),
            None => return Err(AuthError::MfaNotEnabled),
        };
        let secret = key.open(user.id, &pending.secret_enc).ok_or_else(|| corrupt_secret(user.id))?;
        let claim = self.mfa_claim(&user, client).await?;
        let Some(step) = matching_step(&secret, code, self.now_step()) else {
            claim.finish(Outcome::Failed).await?;
            return Err(AuthError::InvalidMfaCode);
        };
        claim.finish(Outcome::Released).await?;
        let (codes, hashes) = new_recovery_set(user.id);
        let step = i64::try_from(step).unwrap_or(i64::MAX);
        // Only the secret this code was checked against (a setup meanwhile replaced it: refused).
        if !self.store.confirm_totp(user.id, &pending.secret_enc, step, &hashes, self.now_ms()).await? {
            return Err(AuthError::InvalidMfaCode);
        }
        tracing::info!(user_id = %user.id, "TOTP turned on");
        self.audit(AuditEvent::new(AuditKind::SecondFactorAdded).own(user.id).client(client).detail("method", "totp"));
        if self.mail.is_some() {
            if let Err(e) = self.notice_second_factor(user.id, "An authenticator app").await {
                tracing::warn!(user_id = %user.id, error = %e, "the second-factor notice could not be queued");
            }
        }
        Ok(codes)
    }

    /// Turns TOTP off (and drops the recovery codes), after re-authentication.
    pub async fn totp_disable(&self, who: &Principal, proof: Reauth<'_>, client: &ClientInfo) -> Result<(), AuthError> {
        let user = self.store.user_by_id(who.user_id).await?.ok_or(AuthError::Unauthorized)?;
        if !self.mfa_status(user.id).await?.totp {
            return Err(AuthError::MfaNotEnabled);
        }
        self.reauthenticate(&user, proof, client).await?;
        self.store.delete_totp(user.id).await?;
        tracing::info!(user_id = %user.id, "TOTP turned off");
        self.audit(
            AuditEvent::new(AuditKind::SecondFactorRemoved).own(user.id).client(client).detail("method", "totp"),
        );
        self.notice_second_factor_removed(user.id, "An authenticator app").await;
        Ok(())
    }

    /// A new set of recovery codes (the old ones die), after re-authentication.
    pub async fn regenerate_recovery_codes(
        &self,
        who: &Principal,
        proof: Reauth<'_>,
        client: &ClientInfo,
    ) -> Result<Vec<String>, AuthError> {
        let user = self.store.user_by_id(who.user_id).await?.ok_or(AuthError::Unauthorized)?;
        if !self.has_second_factor(user.id).await? {
            return Err(AuthError::MfaNotEnabled);
        }
        self.reauthenticate(&user, proof, client).await?;
        let (codes, hashes) = new_recovery_set(user.id);
        self.store.replace_recovery_codes(user.id, &hashes, self.now_ms()).await?;
        self.audit(
            AuditEvent::new(AuditKind::SecondFactorAdded)
                .own(user.id)
                .client(client)
                .detail("method", "recovery_codes"),
        );
        Ok(codes)
    }

    /// Clears every second factor of `user` (administrators: `fafnir user mfa reset`).
    pub async fn reset_second_factors(&self, user: UserId, by: &str) -> Result<bool, AuthError> {
        let on = self.store.delete_second_factors(user).await?;
        self.methods.forget(&user);
        if on {
            self.notice_second_factor_removed(user, "Your second factors (reset by an administrator)").await;
        }
        self.audit(
            AuditEvent::new(AuditKind::SecondFactorRemoved)
                .subject(user)
                .detail("method", "all")
                .detail("by", by.to_owned()),
        );
        Ok(on)
    }

    pub(crate) async fn reauthenticate(
        &self,
        user: &UserRecord,
        proof: Reauth<'_>,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        match proof {
            Reauth::Password(p) if user.password_hash.is_some() => self.check_current_password(user, p, client).await,
            Reauth::Password(_) => Err(AuthError::InvalidCredentials),
            Reauth::Factor(f) => self.check_factor(user, f, client).await,
        }
    }

    async fn mfa_claim(&self, user: &UserRecord, client: &ClientInfo) -> Result<throttle::Claim, AuthError> {
        self.claim(throttle::keys(MFA_PREFIX, Some(&user.email), client), self.cfg.throttle, Outcome::Abandoned).await
    }

    /// Checks a second factor of `user` under the throttle: a TOTP code (once per step) or an
    /// unused recovery code (used up).
    async fn check_factor(&self, user: &UserRecord, factor: Factor<'_>, client: &ClientInfo) -> Result<(), AuthError> {
        let claim = self.mfa_claim(user, client).await?;
        let ok = match self.factor_holds(user, factor).await {
            Ok(ok) => ok,
            Err(e) => {
                // Not the caller's doing (the store, the key): release the claim uncounted, as a
                // password check does.
                let _ = claim.finish(Outcome::Released).await;
                return Err(e);
            }
        };
        if ok {
            if matches!(factor, Factor::RecoveryCode(_)) {
                self.audit(
                    AuditEvent::new(AuditKind::SecondFactorRemoved)
                        .own(user.id)
                        .client(client)
                        .detail("method", "recovery_code_used"),
                );
            }
            claim.finish(Outcome::Released).await
        } else {
            claim.finish(Outcome::Failed).await?;
            self.notice_if_locked_by(MFA_PREFIX, &user.email, Some(user), client).await;
            Err(AuthError::InvalidMfaCode)
        }
    }

    /// Whether `factor` is right for `user`, using it up when it is (the TOTP step, the recovery
    /// code).
    async fn factor_holds(&self, user: &UserRecord, factor: Factor<'_>) -> Result<bool, AuthError> {
        match factor {
            Factor::Totp(code) => {
                let key = self.mfa_key()?;
                let Some(t) = self.store.totp(user.id).await?.filter(|t| t.confirmed) else { return Ok(false) };
                let secret = key.open(user.id, &t.secret_enc).ok_or_else(|| corrupt_secret(user.id))?;
                match matching_step(&secret, code, self.now_step()) {
                    Some(step) => self.store.use_totp_step(user.id, i64::try_from(step).unwrap_or(i64::MAX)).await,
                    None => Ok(false),
                }
            }
            Factor::RecoveryCode(code) => {
                self.store.use_recovery_code(user.id, &hash_code(user.id, code), self.now_ms()).await
            }
        }
    }

    /// The step-up of a sign-in that proved the first factor: an `MfaRequired` error carrying a
    /// new challenge for `user`, to be answered through [`Auth::mfa_verify`].
    pub(crate) async fn mfa_challenge(&self, user: UserId, via: Via) -> AuthError {
        let status = match self.mfa_status(user).await {
            Ok(s) => s,
            Err(e) => return e,
        };
        let mut methods = super::methods(&status);
        if via == Via::Token {
            // A passkey sign-in opens a browser session; it cannot answer the token endpoint.
            methods.retain(|m| *m != "passkey");
            if methods.is_empty() {
                methods.push("recovery_code");
            }
        }
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let token = URL_SAFE_NO_PAD.encode(bytes);
        let now = self.now_ms();
        let record = ChallengeRecord {
            token_hash: sha256_hex(&token),
            user_id: user,
            via,
            attempts: 0,
            created_at_ms: now,
            expires_at_ms: now.saturating_add(dur_ms(CHALLENGE_TTL)),
        };
        match self.store.put_challenge(&record).await {
            Ok(()) => AuthError::MfaRequired { token: SecretString::new(token), methods },
            Err(e) => e,
        }
    }

    /// Finishes a login held at the second factor: the challenge's token and a TOTP code or a
    /// recovery code. Opens the session exactly as a password login does; says how it was
    /// started (a browser session or the token endpoint). `MfaTokenInvalid` for an unknown,
    /// used, expired or exhausted challenge; `InvalidMfaCode` for a wrong code (five per
    /// challenge, and counted by the login throttle).
    pub async fn mfa_verify(
        &self,
        token: &str,
        factor: Factor<'_>,
        client: &ClientInfo,
    ) -> Result<(Login, Via), AuthError> {
        if token.is_empty() || token.len() > 128 {
            return Err(AuthError::MfaTokenInvalid);
        }
        let hash = sha256_hex(token);
        // An attempt is claimed on the challenge before the code is looked at: parallel guesses
        // on one challenge cannot exceed its five.
        let challenge = self.store.claim_challenge(&hash, self.now_ms()).await?.ok_or(AuthError::MfaTokenInvalid)?;
        let user = self.store.user_by_id(challenge.user_id).await?.ok_or(AuthError::MfaTokenInvalid)?;
        if let Err(e) = self.check_factor(&user, factor, client).await {
            if matches!(e, AuthError::InvalidMfaCode) {
                self.audit(
                    AuditEvent::new(AuditKind::LoginFailed)
                        .subject(user.id)
                        .client(client)
                        .detail("reason", "invalid_second_factor"),
                );
            }
            return Err(e);
        }
        if !self.store.take_challenge(&hash, self.now_ms()).await? {
            return Err(AuthError::MfaTokenInvalid);
        }
        if user.disabled_at.is_some() {
            return Err(AuthError::AccountDisabled);
        }
        let login = self.open_session(&user, client).await?;
        tracing::info!(user_id = %user.id, session_id = %login.session_id, outcome = "success", "login (second factor)");
        self.audit(
            AuditEvent::new(AuditKind::LoginSucceeded)
                .own(user.id)
                .client(client)
                .detail("session_id", login.session_id.to_string())
                .detail(
                    "second_factor",
                    match factor {
                        Factor::Totp(_) => "totp",
                        Factor::RecoveryCode(_) => "recovery_code",
                    },
                ),
        );
        self.note_sign_in(user.id);
        Ok((login, challenge.via))
    }
}

fn corrupt_secret(user: UserId) -> AuthError {
    tracing::error!(user_id = %user, "a TOTP secret does not open with the MFA key (was the key changed?)");
    AuthError::Config("the TOTP secret cannot be read with this MFA key".into())
}
