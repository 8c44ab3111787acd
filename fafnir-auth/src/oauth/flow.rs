//! The social login operations of [`Auth`].

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use fafnir_core::audit::{AuditEvent, AuditKind};
use fafnir_core::clock::{dur_ms, from_ms};
use fafnir_core::events::AccountEvent;
use fafnir_core::{Email, UserId};
use rand::RngCore;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::provider::ProviderFailure;
use super::store::Unlink;
use super::{
    check_return_to, decide, Begin, CallbackParams, Decision, Facts, Identity, IdentityRecord, PendingLogin,
    ProviderInfo, Providers, Refusal, Rules, PENDING_TTL,
};
use crate::error::AuthError;
use crate::secret::sha256_hex;
use crate::service::{Auth, ClientInfo, Login};
use crate::store::UserRecord;
use crate::throttle::{self, Outcome};

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A binding cookie value as Fafnir makes them (43 URL-safe characters).
fn plausible_binding(b: &str) -> bool {
    b.len() == 43 && b.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
}

/// Where a callback ended: where to send the browser, and what happened.
#[derive(Debug)]
pub struct Callback {
    /// The return path of the sign-in (`/` when the pending login is unknown).
    pub return_to: String,
    /// What the sign-in came to, or why nothing happened.
    pub result: Result<Completed, Refusal>,
}

/// A callback that succeeded.
#[derive(Debug)]
pub enum Completed {
    /// A session to deliver.
    SignedIn(Login),
    /// A link request completed (or the identity was linked already).
    Linked,
    /// The account has a second factor: no session yet. Answer the challenge `token` with
    /// [`Auth::mfa_verify`].
    MfaRequired { token: crate::SecretString },
}

impl Auth {
    /// Uses `providers` for social login.
    #[must_use]
    pub fn with_oauth(mut self, providers: Arc<Providers>) -> Self {
        self.oauth = Some(providers);
        self
    }

    /// The configured providers (an empty list without social login).
    pub fn oauth_providers(&self) -> Vec<ProviderInfo> {
        self.oauth.as_ref().map(|p| p.list()).unwrap_or_default()
    }

    /// The providers, if social login is set up.
    pub fn oauth(&self) -> Option<&Arc<Providers>> {
        self.oauth.as_ref()
    }

    /// Starts a sign-in (or, with `link`, a link to that caller's account) at `provider`: stores
    /// the pending login and returns the provider's URL. A link needs a sign-in within the last
    /// 10 minutes (`ReauthenticationRequired`): a stolen, older session cannot add a way in that
    /// would outlive a password change. `binding` is the browser's binding cookie, if it has one
    /// (it is kept, so that sign-ins started in two tabs both complete). `return_to` must be a
    /// local path or on one of `allowed_origins`.
    pub async fn oauth_begin(
        &self,
        provider: &str,
        return_to: Option<&str>,
        link: Option<&crate::Principal>,
        binding: Option<&str>,
        allowed_origins: &[String],
    ) -> Result<(Begin, String), AuthError> {
        let providers = self.oauth.as_ref().ok_or(AuthError::ProviderNotFound)?;
        let p = providers.get(provider).ok_or(AuthError::ProviderNotFound)?;
        let return_to = check_return_to(return_to, allowed_origins).ok_or_else(|| {
            AuthError::validation("return_to", "must be a path on this site or a URL on an allowed origin")
        })?;
        if let Some(who) = link {
            self.check_recent_sign_in(who).await?;
        }
        let link_user = link.map(|w| w.user_id);
        let binding = binding.filter(|b| plausible_binding(b)).map(String::from).unwrap_or_else(random_token);
        let (state, verifier) = (random_token(), random_token());
        let nonce = p.is_oidc().then(random_token);
        let url = p.authorize_url(&providers.http, &state, &verifier, nonce.as_deref()).await.map_err(|e| {
            let (ProviderFailure::MixUp(m) | ProviderFailure::Failed(m)) = e;
            tracing::warn!(provider, error = %m, "social login cannot start: the provider is unreachable or misconfigured");
            AuthError::OAuth(Refusal::ProviderError)
        })?;
        let now = self.now_ms();
        self.store
            .put_pending(&PendingLogin {
                state_hash: sha256_hex(&state),
                provider: provider.to_owned(),
                binding_hash: sha256_hex(&binding),
                pkce_verifier: verifier,
                nonce,
                return_to: return_to.clone(),
                link_user,
                created_at_ms: now,
                expires_at_ms: now.saturating_add(dur_ms(PENDING_TTL)),
            })
            .await?;
        Ok((Begin { url, binding }, return_to))
    }

    /// Completes a sign-in at `provider` with what the provider sent back. `binding` is the
    /// browser's binding cookie; `current` the account the browser is signed in as (for link
    /// requests). Nothing is written unless the whole sign-in succeeds (the pending login is
    /// used up either way).
    pub async fn oauth_callback(
        &self,
        provider: &str,
        params: &CallbackParams,
        binding: Option<&str>,
        current: Option<UserId>,
        client: &ClientInfo,
    ) -> Callback {
        let mut return_to = "/".to_owned();
        let result = self.callback_inner(provider, params, binding, current, client, &mut return_to).await;
        let result = match result {
            Ok(v) => Ok(v),
            Err(CallbackError::Refused(r)) => Err(r),
            Err(CallbackError::Internal(e)) => {
                tracing::error!(provider, error = %e, "social login failed inside Fafnir");
                Err(Refusal::ProviderError)
            }
        };
        if let Err(r) = &result {
            tracing::info!(provider, outcome = r.code(), "social login refused");
        }
        Callback { return_to, result }
    }

    async fn callback_inner(
        &self,
        provider: &str,
        params: &CallbackParams,
        binding: Option<&str>,
        current: Option<UserId>,
        client: &ClientInfo,
        return_to: &mut String,
    ) -> Result<Completed, CallbackError> {
        use CallbackError::Refused;
        let state = params.state.as_deref().filter(|s| !s.is_empty() && s.len() <= 128);
        let state = state.ok_or(Refused(Refusal::StateInvalid))?;
        let pending = self.store.take_pending(&sha256_hex(state), self.now_ms()).await?;
        let pending = pending.ok_or(Refused(Refusal::StateInvalid))?;
        *return_to = pending.return_to.clone();
        let same_browser =
            binding.is_some_and(|b| bool::from(sha256_hex(b).as_bytes().ct_eq(pending.binding_hash.as_bytes())));
        if pending.provider != provider || !same_browser {
            return Err(Refused(Refusal::StateInvalid));
        }
        let providers = self.oauth.as_ref().ok_or(Refused(Refusal::ProviderError))?;
        let p = providers.get(provider).ok_or(Refused(Refusal::ProviderError))?;
        let provider_failed = |e: ProviderFailure| match e {
            ProviderFailure::MixUp(m) => {
                tracing::warn!(provider, error = %m, "social login: the response is not from this provider");
                Refused(Refusal::StateInvalid)
            }
            ProviderFailure::Failed(m) => {
                tracing::warn!(provider, error = %m, "social login: the provider failed");
                Refused(Refusal::ProviderError)
            }
        };
        if let Some(err) = &params.error {
            let detail = params.error_description.as_deref().unwrap_or_default();
            return Err(provider_failed(ProviderFailure::Failed(format!("the provider answered {err}: {detail}"))));
        }
        let waited = std::time::Instant::now();
        p.check_response_issuer(&providers.http, params.iss.as_deref()).await.map_err(provider_failed)?;
        let code = params.code.as_deref().filter(|c| !c.is_empty() && c.len() <= 2048);
        let code = code.ok_or_else(|| provider_failed(ProviderFailure::Failed("no code in the response".into())))?;
        let remote = p.identify(&providers.http, code, &pending.pkce_verifier, pending.nonce.as_deref()).await;
        // The time spent waiting for the provider (code exchange, keys, user info), apart from
        // Fafnir's own: together with the request duration, the server's share of a sign-in.
        metrics::histogram!("fafnir_oauth_provider_seconds", "provider" => provider.to_owned())
            .record(waited.elapsed().as_secs_f64());
        let remote = remote.map_err(provider_failed)?;

        if let Some(asked) = pending.link_user {
            if current != Some(asked) {
                return Err(Refused(Refusal::Unauthorized));
            }
        }
        let known = self.store.identity_by_subject(&remote.issuer, &remote.subject).await?;
        let email = remote.email.as_deref().and_then(|e| Email::parse(e).ok());
        let email_account = match (&email, known.is_none() && pending.link_user.is_none()) {
            (Some(e), true) => self.store.user_by_email(e).await?.map(|u| (u.id, u.email_verified)),
            _ => None,
        };
        let facts = Facts {
            owner: known.as_ref().map(|i| i.user_id),
            link_for: pending.link_user,
            email_account,
            provider_email_verified: email.is_some() && remote.email_verified,
            provider_email: email.is_some(),
        };
        let rules =
            Rules { link_verified_email: self.cfg.oauth_link_verified_email, allow_signup: self.cfg.allow_signup };
        let now = self.now_ms();
        let new_identity = |user_id: UserId| IdentityRecord {
            id: Uuid::now_v7(),
            user_id,
            provider: provider.to_owned(),
            issuer: remote.issuer.clone(),
            subject: remote.subject.clone(),
            email: email.as_ref().map(|e| e.as_str().to_owned()),
            created_at: from_ms(now),
            last_used_at: from_ms(now),
        };
        match decide(facts, rules) {
            Decision::Refuse(r) => Err(Refused(r)),
            Decision::AlreadyLinked(_) => Ok(Completed::Linked),
            Decision::Link(user) => {
                let record = self.store.user_by_id(user).await?.ok_or(Refused(Refusal::Unauthorized))?;
                let identity = new_identity(user);
                if !self.store.link_identity(&identity).await? {
                    return Err(Refused(Refusal::IdentityLinkedElsewhere));
                }
                self.identity_linked(&identity, client, "link");
                self.notice_identity_linked(&record, &p.display_name).await;
                Ok(Completed::Linked)
            }
            Decision::SignIn(user) => {
                let identity = known.ok_or(Refused(Refusal::ProviderError))?;
                let record = self.store.user_by_id(user).await?.ok_or(Refused(Refusal::ProviderError))?;
                self.gate(&record.email, client).await?;
                self.check_may_sign_in(&record, provider, client)?;
                self.store.touch_identity(identity.id, identity_email(&email), now).await?;
                self.provider_sign_in(&record, provider, client).await
            }
            Decision::LinkByEmail(user) => {
                let record = self.store.user_by_id(user).await?.ok_or(Refused(Refusal::ProviderError))?;
                // An account with a second factor is never linked on the provider's word alone:
                // the link would be written before the factor is asked for. Sign in, then link.
                if self.has_second_factor(user).await? {
                    return Err(Refused(Refusal::AccountNotLinked));
                }
                // Every gate before anything is written.
                self.gate(&record.email, client).await?;
                self.check_may_sign_in(&record, provider, client)?;
                let identity = new_identity(user);
                if !self.store.link_identity(&identity).await? {
                    return Err(Refused(Refusal::StateInvalid));
                }
                self.identity_linked(&identity, client, "verified_email");
                self.notice_identity_linked(&record, &p.display_name).await;
                self.provider_sign_in(&record, provider, client).await
            }
            Decision::Create => {
                let address = email.clone().ok_or(Refused(Refusal::EmailUnverified))?;
                self.gate(&address, client).await?;
                let user = UserRecord {
                    id: UserId::new(),
                    email: address,
                    password_hash: None,
                    // `decide` creates only from an address the provider verified.
                    email_verified: true,
                    created_at: from_ms(now),
                    disabled_at: None,
                    last_sign_in_at: None,
                };
                let identity = new_identity(user.id);
                let event = AccountEvent::UserCreated { user_id: user.id, display_name: None };
                match self.store.create_user_with_identity(&user, &event, &identity).await {
                    Ok(true) => {}
                    // Raced by another sign-in of the same person: refuse this one.
                    Ok(false) => return Err(Refused(Refusal::StateInvalid)),
                    Err(AuthError::EmailTaken) => return Err(Refused(Refusal::AccountNotLinked)),
                    Err(e) => return Err(e.into()),
                }
                tracing::info!(user_id = %user.id, provider, "account created by a provider sign-in");
                self.deliver_events().await;
                self.identity_linked(&identity, client, "sign_up");
                self.provider_sign_in(&user, provider, client).await
            }
        }
    }

    /// The login throttle of `email` and of the client's address, as a password login passes it
    /// (a locked account stays locked). A provider sign-in proves nothing about the password: it
    /// neither counts as a failure nor clears the account's failures.
    async fn gate(&self, email: &Email, client: &ClientInfo) -> Result<(), CallbackError> {
        let claim =
            match self.claim(throttle::keys("", Some(email), client), self.cfg.throttle, Outcome::Released).await {
                Ok(c) => c,
                Err(AuthError::RateLimited { .. }) => return Err(CallbackError::Refused(Refusal::RateLimited)),
                Err(e) => return Err(e.into()),
            };
        claim.finish(Outcome::Released).await?;
        Ok(())
    }

    fn identity_linked(&self, identity: &IdentityRecord, client: &ClientInfo, how: &'static str) {
        self.methods.forget(&identity.user_id);
        tracing::info!(user_id = %identity.user_id, provider = %identity.provider, how, "identity linked");
        self.audit(
            AuditEvent::new(AuditKind::IdentityLinked)
                .own(identity.user_id)
                .client(client)
                .detail("provider", identity.provider.clone())
                .detail("how", how),
        );
    }

    /// The account-state checks of a sign-in, after the provider vouched for the person: the
    /// same as a password login's.
    fn check_may_sign_in(&self, user: &UserRecord, provider: &str, client: &ClientInfo) -> Result<(), CallbackError> {
        let refuse = |reason: &'static str, r: Refusal| {
            self.audit(
                AuditEvent::new(AuditKind::LoginFailed)
                    .subject(user.id)
                    .client(client)
                    .detail("reason", reason)
                    .detail("method", format!("oauth:{provider}")),
            );
            Err(CallbackError::Refused(r))
        };
        if user.disabled_at.is_some() {
            return refuse("account_disabled", Refusal::AccountDisabled);
        }
        if !user.email_verified && self.mail.as_ref().is_some_and(|m| m.settings().require_verified) {
            return refuse("email_not_verified", Refusal::EmailNotVerified);
        }
        Ok(())
    }

    /// Opens a session for `user` after a provider sign-in whose gates have passed: the same
    /// session, audit and last sign-in as a password login.
    async fn provider_sign_in(
        &self,
        user: &UserRecord,
        provider: &str,
        client: &ClientInfo,
    ) -> Result<Completed, CallbackError> {
        // A provider vouches for one factor: an account with a second factor must pass it too.
        if self.has_second_factor(user.id).await? {
            tracing::info!(user_id = %user.id, provider, outcome = "mfa_required", "provider sign-in: second factor required");
            return match self.mfa_challenge(user.id, crate::mfa::Via::Session).await {
                AuthError::MfaRequired { token, .. } => Ok(Completed::MfaRequired { token }),
                e => Err(e.into()),
            };
        }
        let login = self.open_session(user, client).await?;
        tracing::info!(user_id = %user.id, session_id = %login.session_id, provider, outcome = "success", "login");
        self.audit(
            AuditEvent::new(AuditKind::LoginSucceeded)
                .own(user.id)
                .client(client)
                .detail("session_id", login.session_id.to_string())
                .detail("method", format!("oauth:{provider}")),
        );
        self.note_sign_in(user.id);
        Ok(Completed::SignedIn(login))
    }

    /// The identities linked to `user`.
    pub async fn identities(&self, user: UserId) -> Result<Vec<Identity>, AuthError> {
        Ok(self
            .store
            .identities_of(user)
            .await?
            .into_iter()
            .map(|i| Identity {
                id: i.id,
                provider: i.provider,
                email: i.email,
                created_at: i.created_at,
                last_used_at: i.last_used_at,
            })
            .collect())
    }

    /// Unlinks one of `user`'s identities: `LastSignInMethod` if the account would be left with
    /// no way to sign in, `IdentityNotFound` if it is not `user`'s.
    pub async fn unlink_identity(&self, user: UserId, id: Uuid, client: &ClientInfo) -> Result<(), AuthError> {
        let provider = self.store.identities_of(user).await?.into_iter().find(|i| i.id == id).map(|i| i.provider);
        match self.store.unlink_identity(user, id).await? {
            Unlink::Unlinked => {
                self.methods.forget(&user);
                self.audit(
                    AuditEvent::new(AuditKind::IdentityUnlinked)
                        .own(user)
                        .client(client)
                        .detail("provider", provider.unwrap_or_default()),
                );
                Ok(())
            }
            Unlink::NotFound => Err(AuthError::IdentityNotFound),
            Unlink::LastMethod => Err(AuthError::LastSignInMethod),
        }
    }

    /// How `user` can sign in: `password` if it has one, then each linked provider's name
    /// (remembered for `session_check_ttl`; changes made through this instance are seen at once).
    pub async fn sign_in_methods(&self, user: UserId) -> Result<Vec<String>, AuthError> {
        let now = self.now_ms();
        if let Some(m) = self.methods.get(&user, now, dur_ms(self.cfg.session_check_ttl)) {
            return Ok(m);
        }
        let record = self.store.user_by_id(user).await?.ok_or(AuthError::Unauthorized)?;
        let mut methods = Vec::new();
        if record.password_hash.is_some() {
            methods.push("password".to_owned());
        }
        for i in self.store.identities_of(user).await? {
            if !methods.contains(&i.provider) {
                methods.push(i.provider);
            }
        }
        if !self.store.passkeys_of(user).await?.is_empty() {
            methods.push("passkey".to_owned());
        }
        self.methods.put(user, methods.clone(), now);
        Ok(methods)
    }
}

fn identity_email(email: &Option<Email>) -> Option<&str> {
    email.as_ref().map(Email::as_str)
}

enum CallbackError {
    Refused(Refusal),
    Internal(AuthError),
}

impl From<AuthError> for CallbackError {
    fn from(e: AuthError) -> Self {
        CallbackError::Internal(e)
    }
}
