//! The passkey operations of [`Auth`].

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use fafnir_core::audit::{AuditEvent, AuditKind};
use fafnir_core::clock::dur_ms;
use rand::RngCore;
use uuid::Uuid;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, Passkey, PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential,
};

use super::store::{CeremonyKind, CeremonyRecord, PasskeyAdded, PasskeyRecord, PasskeyRemoval};
use super::{Passkeys, CEREMONY_TTL, MAX_NAME_CHARS, MAX_PASSKEYS};
use crate::error::AuthError;
use crate::secret::sha256_hex;
use crate::service::{Auth, ClientInfo, Login, Principal};

/// A started ceremony: `options` go to `navigator.credentials.create()` / `.get()` as they are
/// (`{publicKey: …}`, binary fields in base64url), and `ceremony` comes back with the answer.
#[derive(Debug, Clone)]
pub struct PasskeyStart {
    pub ceremony: String,
    pub options: serde_json::Value,
}

/// A passkey as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PasskeyInfo {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    /// The authenticator said the credential is backed up (synced to other devices).
    pub backed_up: bool,
}

/// A finished registration.
#[derive(Debug, Clone)]
pub struct PasskeyRegistered {
    pub passkey: PasskeyInfo,
    /// Set when this passkey is the account's first second factor: the recovery codes, shown
    /// once (as when TOTP is turned on).
    pub recovery_codes: Option<Vec<String>>,
}

fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn info(r: &PasskeyRecord) -> PasskeyInfo {
    // webauthn-rs's stored form: `{"cred": {…, "backup_state": bool}}`.
    let backed_up = serde_json::from_str::<serde_json::Value>(&r.credential)
        .ok()
        .and_then(|v| v.pointer("/cred/backup_state").and_then(serde_json::Value::as_bool))
        .unwrap_or(false);
    PasskeyInfo {
        id: r.id,
        name: r.name.clone(),
        created_at: at(r.created_at_ms),
        last_used_at: r.last_used_at_ms.map(at),
        backed_up,
    }
}

/// A passkey's name: trimmed, 1–64 characters, no control characters; none given: "Passkey".
fn passkey_name(name: Option<&str>) -> Result<String, AuthError> {
    let name = name.map(str::trim).filter(|n| !n.is_empty()).unwrap_or("Passkey");
    if name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(AuthError::validation("name", format!("1 to {MAX_NAME_CHARS} characters, no control characters")));
    }
    Ok(name.to_owned())
}

fn rejected(what: &str, e: impl std::fmt::Display) -> AuthError {
    tracing::info!(error = %e, "passkey {what} refused");
    AuthError::PasskeyRejected
}

fn corrupt(what: &str) -> AuthError {
    AuthError::Store(fafnir_core::CoreError::Corrupt(format!("bad {what} in store")))
}

impl Auth {
    /// Enables passkeys with this relying party. Without it, the passkey operations answer
    /// `PasskeysUnavailable`.
    #[must_use]
    pub fn with_passkeys(mut self, rp: Arc<Passkeys>) -> Self {
        self.passkeys = Some(rp);
        self
    }

    fn rp(&self) -> Result<&Passkeys, AuthError> {
        self.passkeys.as_deref().ok_or(AuthError::PasskeysUnavailable)
    }

    async fn new_ceremony(
        &self,
        kind: CeremonyKind,
        user: Option<fafnir_core::UserId>,
        state: String,
    ) -> Result<String, AuthError> {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let id = URL_SAFE_NO_PAD.encode(bytes);
        let now = self.now_ms();
        self.store
            .put_ceremony(&CeremonyRecord {
                id_hash: sha256_hex(&id),
                kind,
                user_id: user,
                state,
                created_at_ms: now,
                expires_at_ms: now.saturating_add(dur_ms(CEREMONY_TTL)),
            })
            .await?;
        Ok(id)
    }

    async fn take(
        &self,
        ceremony: &str,
        kind: CeremonyKind,
        user: Option<fafnir_core::UserId>,
    ) -> Result<CeremonyRecord, AuthError> {
        if ceremony.is_empty() || ceremony.len() > 128 {
            return Err(AuthError::PasskeyCeremonyInvalid);
        }
        self.store
            .take_ceremony(&sha256_hex(ceremony), kind, user, self.now_ms())
            .await?
            .ok_or(AuthError::PasskeyCeremonyInvalid)
    }

    /// `user`'s passkeys, oldest first.
    pub async fn passkeys(&self, user: fafnir_core::UserId) -> Result<Vec<PasskeyInfo>, AuthError> {
        Ok(self.store.passkeys_of(user).await?.iter().map(info).collect())
    }

    /// Starts registering a passkey for the caller (a sign-in within the last 10 minutes, as
    /// for every new second factor): a discoverable credential with user verification.
    pub async fn passkey_register_start(&self, who: &Principal) -> Result<PasskeyStart, AuthError> {
        let rp = self.rp()?;
        self.check_recent_sign_in(who).await?;
        let user = self.store.user_by_id(who.user_id).await?.ok_or(AuthError::Unauthorized)?;
        let existing = self.store.passkeys_of(user.id).await?;
        if existing.len() >= MAX_PASSKEYS {
            return Err(AuthError::validation("passkeys", format!("an account holds at most {MAX_PASSKEYS} passkeys")));
        }
        // The authenticator is told which credentials it holds for this account already.
        let exclude = existing.iter().filter_map(|p| URL_SAFE_NO_PAD.decode(&p.credential_id).ok());
        let (options, state) = rp
            .webauthn()
            .start_passkey_registration(
                *user.id.as_uuid(),
                user.email.as_str(),
                user.email.as_str(),
                Some(exclude.collect()),
            )
            .map_err(|e| AuthError::Config(format!("passkey registration cannot start: {e}")))?;
        let mut options = serde_json::to_value(&options).map_err(|e| AuthError::Config(e.to_string()))?;
        // A passkey is a discoverable credential (sign-in without typing an e-mail): ask the
        // authenticator to keep it.
        if let Some(sel) = options.pointer_mut("/publicKey/authenticatorSelection").and_then(|v| v.as_object_mut()) {
            sel.insert("residentKey".into(), "required".into());
            sel.insert("requireResidentKey".into(), true.into());
        }
        let state = serde_json::to_string(&state).map_err(|e| AuthError::Config(e.to_string()))?;
        let ceremony = self.new_ceremony(CeremonyKind::Register, Some(user.id), state).await?;
        Ok(PasskeyStart { ceremony, options })
    }

    /// Finishes a registration with the authenticator's answer (the `PublicKeyCredential` of
    /// `navigator.credentials.create()`, as JSON). The first second factor of an account
    /// brings its recovery codes.
    pub async fn passkey_register_finish(
        &self,
        who: &Principal,
        ceremony: &str,
        credential: &serde_json::Value,
        name: Option<&str>,
        client: &ClientInfo,
    ) -> Result<PasskeyRegistered, AuthError> {
        let rp = self.rp()?;
        let name = passkey_name(name)?;
        let reg: RegisterPublicKeyCredential = serde_json::from_value(credential.clone())
            .map_err(|e| AuthError::validation("credential", format!("not a WebAuthn registration: {e}")))?;
        let c = self.take(ceremony, CeremonyKind::Register, Some(who.user_id)).await?;
        let state: PasskeyRegistration = serde_json::from_str(&c.state).map_err(|_| corrupt("passkey ceremony"))?;
        let pk = rp.webauthn().finish_passkey_registration(&reg, &state).map_err(|e| rejected("registration", e))?;
        let now = self.now_ms();
        let record = PasskeyRecord {
            id: Uuid::now_v7(),
            user_id: who.user_id,
            credential_id: URL_SAFE_NO_PAD.encode(AsRef::<[u8]>::as_ref(pk.cred_id())),
            name,
            credential: serde_json::to_string(&pk).map_err(|e| AuthError::Config(e.to_string()))?,
            sign_count: 0,
            created_at_ms: now,
            last_used_at_ms: None,
        };
        // Codes for the case that this is the first second factor (the store decides, atomically).
        let (codes, hashes) = crate::mfa::new_recovery_set(who.user_id);
        let recovery_codes = match self.store.add_passkey(&record, MAX_PASSKEYS, &hashes).await? {
            PasskeyAdded::Added { first_factor } => first_factor.then_some(codes),
            // The authenticator ignored the exclusion list, or someone else holds this credential.
            PasskeyAdded::Taken => return Err(rejected("registration", "the credential is registered already")),
            PasskeyAdded::Full => {
                return Err(AuthError::validation(
                    "passkeys",
                    format!("an account holds at most {MAX_PASSKEYS} passkeys"),
                ))
            }
        };
        self.methods.forget(&who.user_id);
        tracing::info!(user_id = %who.user_id, passkey_id = %record.id, "passkey registered");
        self.audit(
            AuditEvent::new(AuditKind::SecondFactorAdded)
                .own(who.user_id)
                .client(client)
                .detail("method", "passkey")
                .detail("passkey_id", record.id.to_string()),
        );
        if self.mail.is_some() {
            if let Err(e) = self.notice_second_factor(who.user_id, "A passkey").await {
                tracing::warn!(user_id = %who.user_id, error = %e, "the second-factor notice could not be queued");
            }
        }
        Ok(PasskeyRegistered { passkey: info(&record), recovery_codes })
    }

    /// Starts a usernameless sign-in: the browser offers the passkeys it holds for this site.
    pub async fn passkey_sign_in_start(&self) -> Result<PasskeyStart, AuthError> {
        let rp = self.rp()?;
        let (options, state) = rp
            .webauthn()
            .start_discoverable_authentication()
            .map_err(|e| AuthError::Config(format!("passkey sign-in cannot start: {e}")))?;
        let mut options = serde_json::to_value(&options).map_err(|e| AuthError::Config(e.to_string()))?;
        // Modal by default (a "Sign in with a passkey" button); a page that wants the
        // autofill form adds `mediation: "conditional"` itself.
        if let Some(o) = options.as_object_mut() {
            o.remove("mediation");
        }
        let state = serde_json::to_string(&state).map_err(|e| AuthError::Config(e.to_string()))?;
        let ceremony = self.new_ceremony(CeremonyKind::SignIn, None, state).await?;
        Ok(PasskeyStart { ceremony, options })
    }

    /// Finishes a passkey sign-in with the authenticator's assertion (the `PublicKeyCredential`
    /// of `navigator.credentials.get()`, as JSON) and opens a session. Counts as two factors:
    /// no further step. `PasskeyRejected` for anything that does not verify (wrong origin or
    /// relying party, unknown credential, bad signature, no user verification, a counter that
    /// did not move forward); `PasskeyCeremonyInvalid` for an unknown, used or expired ceremony.
    pub async fn passkey_sign_in_finish(
        &self,
        ceremony: &str,
        credential: &serde_json::Value,
        client: &ClientInfo,
    ) -> Result<Login, AuthError> {
        let rp = self.rp()?;
        let assertion: PublicKeyCredential = serde_json::from_value(credential.clone())
            .map_err(|e| AuthError::validation("credential", format!("not a WebAuthn assertion: {e}")))?;
        let c = self.take(ceremony, CeremonyKind::SignIn, None).await?;
        let state: DiscoverableAuthentication =
            serde_json::from_str(&c.state).map_err(|_| corrupt("passkey ceremony"))?;
        let r = self.verify_assertion(rp, &assertion, state).await;
        let (record, user) = match r {
            Ok(v) => v,
            Err(e) => {
                if matches!(e, AuthError::PasskeyRejected) {
                    self.audit(
                        AuditEvent::new(AuditKind::LoginFailed).client(client).detail("reason", "passkey_rejected"),
                    );
                }
                return Err(e);
            }
        };
        if user.disabled_at.is_some() {
            self.audit(
                AuditEvent::new(AuditKind::LoginFailed)
                    .subject(user.id)
                    .client(client)
                    .detail("reason", "account_disabled"),
            );
            return Err(AuthError::AccountDisabled);
        }
        if !user.email_verified && self.mail.as_ref().is_some_and(|m| m.settings().require_verified) {
            return Err(AuthError::EmailNotVerified);
        }
        let login = self.open_session(&user, client).await?;
        tracing::info!(user_id = %user.id, session_id = %login.session_id, outcome = "success", "login (passkey)");
        self.audit(
            AuditEvent::new(AuditKind::LoginSucceeded)
                .own(user.id)
                .client(client)
                .detail("session_id", login.session_id.to_string())
                .detail("method", "passkey")
                .detail("passkey_id", record.id.to_string()),
        );
        self.note_sign_in(user.id);
        Ok(login)
    }

    async fn verify_assertion(
        &self,
        rp: &Passkeys,
        assertion: &PublicKeyCredential,
        state: DiscoverableAuthentication,
    ) -> Result<(PasskeyRecord, crate::store::UserRecord), AuthError> {
        let (handle, cred_id) =
            rp.webauthn().identify_discoverable_authentication(assertion).map_err(|e| rejected("sign-in", e))?;
        let record = self
            .store
            .passkey_by_credential(&URL_SAFE_NO_PAD.encode(cred_id))
            .await?
            .ok_or_else(|| rejected("sign-in", "unknown credential"))?;
        // The user handle the authenticator returned must be the credential's owner.
        if record.user_id.as_uuid() != &handle {
            return Err(rejected("sign-in", "the user handle is not the credential's owner"));
        }
        let mut pk: Passkey = serde_json::from_str(&record.credential).map_err(|_| corrupt("passkey"))?;
        let result = rp
            .webauthn()
            .finish_discoverable_authentication_v2(assertion, state, &pk)
            .map_err(|e| rejected("sign-in", e))?;
        if !result.user_verified() {
            return Err(rejected("sign-in", "no user verification"));
        }
        pk.update_credential(&result);
        let credential = serde_json::to_string(&pk).map_err(|e| AuthError::Config(e.to_string()))?;
        let count = i64::from(result.counter());
        // Conditional on the counter moving forward (or staying 0): of two sign-ins with one
        // counter value, one fails — the other copy of a cloned authenticator.
        if !self.store.use_passkey(record.id, &credential, count, self.now_ms()).await? {
            return Err(rejected("sign-in", "the signature counter did not move forward"));
        }
        let user = self.store.user_by_id(record.user_id).await?.ok_or(AuthError::PasskeyRejected)?;
        Ok((record, user))
    }

    /// Renames one of the caller's passkeys.
    pub async fn rename_passkey(&self, who: &Principal, id: Uuid, name: &str) -> Result<PasskeyInfo, AuthError> {
        let name = passkey_name(Some(name))?;
        if !self.store.rename_passkey(who.user_id, id, &name).await? {
            return Err(AuthError::PasskeyNotFound);
        }
        self.store
            .passkeys_of(who.user_id)
            .await?
            .iter()
            .find(|p| p.id == id)
            .map(info)
            .ok_or(AuthError::PasskeyNotFound)
    }

    /// Removes one of the caller's passkeys (a sign-in within the last 10 minutes). Removing the
    /// account's last second factor also needs `proof` (the password, a TOTP code or a recovery
    /// code), as turning TOTP off does: `ReauthenticationRequired` without it. The last second
    /// factor takes the recovery codes with it; the last way to sign in cannot go.
    pub async fn delete_passkey(
        &self,
        who: &Principal,
        id: Uuid,
        proof: Option<crate::mfa::Reauth<'_>>,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        self.check_recent_sign_in(who).await?;
        let mine = self.store.passkeys_of(who.user_id).await?;
        if !mine.iter().any(|p| p.id == id) {
            return Err(AuthError::PasskeyNotFound);
        }
        let totp = self.store.totp(who.user_id).await?.is_some_and(|t| t.confirmed);
        if !totp && mine.len() <= 1 {
            let user = self.store.user_by_id(who.user_id).await?.ok_or(AuthError::Unauthorized)?;
            match proof {
                Some(p) => self.reauthenticate(&user, p, client).await?,
                None => return Err(AuthError::ReauthenticationRequired),
            }
        }
        match self.store.delete_passkey(who.user_id, id).await? {
            PasskeyRemoval::NotFound => Err(AuthError::PasskeyNotFound),
            PasskeyRemoval::LastMethod => Err(AuthError::LastSignInMethod),
            PasskeyRemoval::Removed { factors_left } => {
                self.methods.forget(&who.user_id);
                tracing::info!(user_id = %who.user_id, passkey_id = %id, factors_left, "passkey removed");
                self.audit(
                    AuditEvent::new(AuditKind::SecondFactorRemoved)
                        .own(who.user_id)
                        .client(client)
                        .detail("method", "passkey")
                        .detail("passkey_id", id.to_string()),
                );
                self.notice_second_factor_removed(who.user_id, "A passkey").await;
                Ok(())
            }
        }
    }
}
