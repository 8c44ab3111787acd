//! E-mail flows: address verification, password reset, change of address, and the security
//! notices (password changed or reset, address changed, account locked, second factor added).
//!
//! - Every link carries a single-use [`ActionToken`](crate::ActionToken) bound to its purpose,
//!   its account and the address it was mailed to. Links open pages (of the web app, or the
//!   server's built-in ones); opening a page never redeems a token, only its POST does.
//! - A mail is written to the durable [`MailOutbox`] in the same transaction as the change that
//!   causes it, so it is sent exactly when the change happened, even if the mail server is down.
//! - A redemption and the change it authorises are one transaction: a reset either redeems the
//!   token, sets the password, ends every session and queues the notice, or does none of it.
//! - Requests that name an address (forgot password, resend verification) answer alike whether
//!   or not an account has it, in body and in time: the work runs after the answer. They, and
//!   every request that mails, count against a throttle per target address and per client
//!   address, so they cannot flood anyone's inbox.

use std::sync::Arc;

use fafnir_core::error::is_unique_violation;
use fafnir_core::{Db, Email, UserId};
use minijinja::Value;

use crate::action_token::{ActionTokens, Purpose};
use crate::error::AuthError;
use crate::mail::Mail;
use crate::mail_outbox::MailOutbox;
use crate::password::Password;
use crate::service::{Auth, ClientInfo, Principal};
use crate::store::UserRecord;
use crate::templates::{human_duration, Message, Templates};
use crate::throttle::{self, Outcome, ThrottleConfig};
use fafnir_core::audit::{AuditEvent, AuditKind};

/// The throttle keys of password attempts have no prefix (second-factor codes: `mfa:`).
pub(crate) const THROTTLE_PASSWORD: &str = "";

/// Where links point and what the flows require.
#[derive(Debug, Clone)]
pub struct EmailSettings {
    /// The origin (and base path) of the pages the links open, without a trailing slash: the
    /// web app's, or this server's (`FAFNIR_PUBLIC_URL`).
    pub public_url: String,
    /// The page that confirms an address (`?token=…`): default `/verify-email`.
    pub verify_path: String,
    /// The page that sets a new password: default `/reset-password`.
    pub reset_path: String,
    /// The page that confirms a new address: default `/confirm-email`.
    pub change_path: String,
    /// Unverified accounts cannot sign in (`FAFNIR_REQUIRE_VERIFIED_EMAIL`).
    pub require_verified: bool,
    /// Requests that send mail, per target address and per client address.
    pub throttle: ThrottleConfig,
}

impl EmailSettings {
    /// The settings of `config`: links to `FAFNIR_PUBLIC_URL` (else this server's address).
    pub fn from_config(c: &fafnir_core::Config) -> Self {
        let public = c.public_url.clone().unwrap_or_else(|| format!("http://{}", c.http_addr));
        Self {
            public_url: public.trim_end_matches('/').to_owned(),
            verify_path: c.verify_email_path.clone(),
            reset_path: c.reset_password_path.clone(),
            change_path: c.confirm_email_path.clone(),
            require_verified: c.require_verified_email,
            throttle: ThrottleConfig::mail_requests(),
        }
    }

    fn link(&self, path: &str, token: &str) -> String {
        format!("{}{}?token={}", self.public_url, path, token)
    }
}

/// What the e-mail flows run on: the link tokens, the mail outbox and the templates.
#[derive(Debug, Clone)]
pub struct AccountMail {
    db: Db,
    tokens: ActionTokens,
    outbox: Arc<MailOutbox>,
    templates: Arc<Templates>,
    settings: EmailSettings,
}

impl AccountMail {
    pub fn new(
        db: Db,
        tokens: ActionTokens,
        outbox: Arc<MailOutbox>,
        templates: Arc<Templates>,
        settings: EmailSettings,
    ) -> Self {
        Self { db, tokens, outbox, templates, settings }
    }

    pub fn settings(&self) -> &EmailSettings {
        &self.settings
    }

    pub fn templates(&self) -> &Arc<Templates> {
        &self.templates
    }

    pub fn outbox(&self) -> &Arc<MailOutbox> {
        &self.outbox
    }

    fn render(&self, m: Message, to: &Email, vars: &[(&str, Value)]) -> Result<Mail, AuthError> {
        // The templates were all rendered once at load: a failure now is a bug or a value the
        // samples did not cover.
        self.templates.render(m, to, vars).map_err(|e| AuthError::Config(e.to_string()))
    }

    fn link_vars(&self, purpose: Purpose, path: &str, token: &str) -> [(&'static str, Value); 2] {
        [
            ("link", Value::from(self.settings.link(path, token))),
            ("lifetime", Value::from(human_duration(purpose.lifetime()))),
        ]
    }

    /// Queues `mail` on its own and wakes the dispatcher.
    async fn send(&self, mail: &Mail) -> Result<(), AuthError> {
        Ok(self.outbox.send_later(mail).await?)
    }
}

/// "a***@example.com": enough for the owner to recognise an address, little for anyone else
/// reading the old mailbox.
fn masked(e: &Email) -> String {
    let (local, domain) = e.as_str().split_once('@').unwrap_or((e.as_str(), ""));
    let first: String = local.chars().take(1).collect();
    format!("{first}***@{domain}")
}

impl Auth {
    fn account_mail(&self) -> Result<&AccountMail, AuthError> {
        self.mail
            .as_ref()
            .ok_or_else(|| AuthError::Config("e-mail is not set up on this Auth (Auth::with_mail)".into()))
    }

    /// Claims a mail request on the target address and the client address (every request
    /// counts, whatever happens next).
    async fn mail_claim(&self, prefix: &str, to: &Email, client: &ClientInfo) -> Result<(), AuthError> {
        let rules = self.account_mail()?.settings.throttle;
        let claim = self.claim(throttle::keys(prefix, Some(to), client), rules, Outcome::Failed).await?;
        claim.finish(Outcome::Failed).await
    }

    /// Issues a verification token for `user` at `email` and queues the link (registration).
    pub(crate) async fn send_verification(&self, user: UserId, email: &Email) -> Result<(), AuthError> {
        let Some(m) = &self.mail else { return Ok(()) };
        let mut tx = m.db.pool().begin().await?;
        let token = m.tokens.issue_in(&mut tx, Purpose::VerifyEmail, user, email).await?;
        let vars = m.link_vars(Purpose::VerifyEmail, &m.settings.verify_path, token.expose());
        let mail = m.render(Message::VerifyEmail, email, &vars)?;
        m.outbox.enqueue(&mut tx, &mail).await?;
        tx.commit().await?;
        m.outbox.notify();
        Ok(())
    }

    /// Mails the signed-in caller a new verification link (`POST /auth/email/verify/request`).
    /// An address already verified gets nothing; the answer is the same.
    pub async fn request_verification(&self, who: &Principal, client: &ClientInfo) -> Result<(), AuthError> {
        let user = self.store.user_by_id(who.user_id).await?.ok_or(AuthError::Unauthorized)?;
        self.mail_claim("mail:verify:", &user.email, client).await?;
        if !user.email_verified {
            self.send_verification(user.id, &user.email).await?;
        }
        Ok(())
    }

    /// Mails a verification link to `email` if an unverified account has it, for an account
    /// that cannot sign in yet (`FAFNIR_REQUIRE_VERIFIED_EMAIL`). Answers alike, in body and
    /// time, whether or not there is such an account: the lookup runs after the answer.
    pub async fn request_verification_for(self: &Arc<Self>, email: &str, client: &ClientInfo) -> Result<(), AuthError> {
        self.answer_then_mail("mail:verify:", email, client, |this, email| async move {
            match this.store.user_by_email(&email).await? {
                Some(u) if !u.email_verified => this.send_verification(u.id, &u.email).await,
                _ => Ok(()),
            }
        })
        .await
    }

    /// The shape of the requests that name an address: parse it, count the request against the
    /// throttle, answer, and only then do `work` (look the address up, queue the mail), so that
    /// the answer says nothing about accounts, in body or in time. `work` runs in the request's
    /// span, so its log lines carry the request id.
    async fn answer_then_mail<F, Fut>(
        self: &Arc<Self>,
        prefix: &str,
        email: &str,
        client: &ClientInfo,
        work: F,
    ) -> Result<(), AuthError>
    where
        F: FnOnce(Arc<Self>, Email) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<(), AuthError>> + Send + 'static,
    {
        let email = Email::parse(email).map_err(|e| AuthError::validation("email", e.to_string()))?;
        self.mail_claim(prefix, &email, client).await?;
        let this = self.clone();
        let span = tracing::Span::current();
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                if let Err(e) = work(this, email).await {
                    tracing::warn!(error = %e, "a link mail could not be queued");
                }
            },
            span,
        ));
        Ok(())
    }

    /// Redeems a verification token: the address it was sent to is verified, if it is still
    /// the account's (`POST /auth/email/verify`).
    pub async fn confirm_email(&self, token: &str) -> Result<(), AuthError> {
        self.confirm_email_from(token, &ClientInfo::default()).await
    }

    /// [`Auth::confirm_email`] for a request from `client` (audited with its address).
    pub async fn confirm_email_from(&self, token: &str, client: &ClientInfo) -> Result<(), AuthError> {
        let m = self.account_mail()?;
        let mut tx = m.db.pool().begin().await?;
        let Some(r) = m.tokens.redeem(&mut tx, Purpose::VerifyEmail, token).await? else {
            return Err(AuthError::TokenInvalid);
        };
        let n = sqlx::query("UPDATE users SET email_verified = 1, updated_at = $1 WHERE id = $2 AND email = $3")
            .bind(self.now_ms())
            .bind(r.user_id.to_string())
            .bind(r.email.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            // The account moved to another address (or is gone) since the link was sent.
            return Err(AuthError::TokenInvalid);
        }
        m.tokens.revoke(&mut tx, r.user_id, &[Purpose::VerifyEmail]).await?;
        tx.commit().await?;
        self.accounts.forget(&r.user_id);
        tracing::info!(user_id = %r.user_id, "e-mail address verified");
        self.audit(AuditEvent::new(AuditKind::EmailVerified).own(r.user_id).client(client));
        Ok(())
    }

    /// Mails a reset link if an account has `email` (`POST /auth/password/forgot`). Answers
    /// alike, in body and time, whether or not it does: the lookup runs after the answer.
    pub async fn forgot_password(self: &Arc<Self>, email: &str, client: &ClientInfo) -> Result<(), AuthError> {
        self.answer_then_mail("mail:reset:", email, client, |this, email| async move { this.send_reset(&email).await })
            .await
    }

    pub(crate) async fn send_reset(&self, email: &Email) -> Result<(), AuthError> {
        let m = self.account_mail()?;
        let Some(user) = self.store.user_by_email(email).await? else {
            tracing::info!("password reset asked for an address without an account");
            return Ok(());
        };
        let mut tx = m.db.pool().begin().await?;
        // One reset link at a time: a new request voids the earlier links.
        m.tokens.revoke(&mut tx, user.id, &[Purpose::ResetPassword]).await?;
        let token = m.tokens.issue_in(&mut tx, Purpose::ResetPassword, user.id, &user.email).await?;
        let vars = m.link_vars(Purpose::ResetPassword, &m.settings.reset_path, token.expose());
        let mail = m.render(Message::ResetPassword, &user.email, &vars)?;
        m.outbox.enqueue(&mut tx, &mail).await?;
        tx.commit().await?;
        m.outbox.notify();
        tracing::info!(user_id = %user.id, "password reset link queued");
        Ok(())
    }

    /// Sets a new password from a reset link (`POST /auth/password/reset`): in one transaction
    /// the token is redeemed, the password set, every session ended, the other link tokens
    /// revoked and the notice queued. No session is opened: sign in with the new password.
    /// The address the link reached is verified by the same proof.
    pub async fn reset_password(&self, token: &str, new_password: &str) -> Result<(), AuthError> {
        self.reset_password_from(token, new_password, &ClientInfo::default()).await
    }

    /// [`Auth::reset_password`] for a request from `client` (audited with its address).
    pub async fn reset_password_from(
        &self,
        token: &str,
        new_password: &str,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        let m = self.account_mail()?;
        // Look first (without redeeming), to check and hash the password outside the
        // transaction; the redemption below decides.
        let Some(seen) = m.tokens.peek(Purpose::ResetPassword, token).await? else {
            return Err(AuthError::TokenInvalid);
        };
        let new = Password::new(new_password);
        self.cfg
            .password_policy
            .check(&new, &[seen.email.as_str(), seen.email.as_str().split('@').next().unwrap_or_default()])
            .map_err(|msg| AuthError::validation("new_password", msg))?;
        let hash = self.hasher.hash(&new).await?;
        let now = self.now_ms();
        let mut tx = m.db.pool().begin().await?;
        let Some(r) = m.tokens.redeem(&mut tx, Purpose::ResetPassword, token).await? else {
            return Err(AuthError::TokenInvalid);
        };
        let n = sqlx::query(
            "UPDATE users SET password_hash = $1, email_verified = 1, updated_at = $2 WHERE id = $3 AND email = $4",
        )
        .bind(&hash)
        .bind(now)
        .bind(r.user_id.to_string())
        .bind(r.email.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(AuthError::TokenInvalid);
        }
        let ended = sqlx::query(
            "UPDATE sessions SET revoked_at = $1, revoke_reason = 'password_reset' WHERE user_id = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(r.user_id.to_string())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        m.tokens.revoke(&mut tx, r.user_id, &Purpose::ALL).await?;
        let notice = m.render(Message::PasswordChanged, &r.email, &[("reset", Value::from(true))])?;
        m.outbox.enqueue(&mut tx, &notice).await?;
        tx.commit().await?;
        m.outbox.notify();
        self.sessions.retain(|_, u| u != &r.user_id);
        self.accounts.forget(&r.user_id);
        self.methods.forget(&r.user_id);
        tracing::info!(user_id = %r.user_id, revoked_sessions = ended, "password reset");
        self.audit(
            AuditEvent::new(AuditKind::PasswordReset).own(r.user_id).client(client).detail("sessions_revoked", ended),
        );
        Ok(())
    }

    /// Starts a change of address (`POST /auth/email/change`): after the current password, a
    /// link goes to the new address and a notice to the old one. An address that another
    /// account holds gets nothing, and the answer is the same (it tells nobody which addresses
    /// have accounts); the confirmation would be refused anyway.
    pub async fn request_email_change(
        &self,
        who: &Principal,
        new_email: &str,
        current_password: &str,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        let m = self.account_mail()?;
        let user = self.store.user_by_id(who.user_id).await?.ok_or(AuthError::Unauthorized)?;
        let new_email = Email::parse(new_email).map_err(|e| AuthError::validation("new_email", e.to_string()))?;
        if new_email == user.email {
            return Err(AuthError::validation("new_email", "this is already the account's address"));
        }
        if user.password_hash.is_some() {
            self.check_current_password(&user, current_password, client).await?;
        } else {
            // An account made by a provider sign-in: a fresh sign-in stands in for the password.
            self.check_recent_sign_in(who).await?;
        }
        self.mail_claim("mail:change:", &new_email, client).await?;
        let taken = self.store.user_by_email(&new_email).await?.is_some();
        let mut tx = m.db.pool().begin().await?;
        m.tokens.revoke(&mut tx, user.id, &[Purpose::ChangeEmail]).await?;
        if !taken {
            let token = m.tokens.issue_in(&mut tx, Purpose::ChangeEmail, user.id, &new_email).await?;
            let vars = m.link_vars(Purpose::ChangeEmail, &m.settings.change_path, token.expose());
            let link = m.render(Message::ChangeEmail, &new_email, &vars)?;
            m.outbox.enqueue(&mut tx, &link).await?;
        }
        let notice =
            m.render(Message::EmailChangeRequested, &user.email, &[("new_email", Value::from(masked(&new_email)))])?;
        m.outbox.enqueue(&mut tx, &notice).await?;
        tx.commit().await?;
        m.outbox.notify();
        tracing::info!(user_id = %user.id, taken, "change of address requested");
        Ok(())
    }

    /// Confirms a change of address from the link mailed to the new one
    /// (`POST /auth/email/change/confirm`): the account moves to it (verified), every link
    /// token of the account is revoked, and the old address gets a notice.
    pub async fn confirm_email_change(&self, token: &str) -> Result<(), AuthError> {
        self.confirm_email_change_from(token, &ClientInfo::default()).await
    }

    /// [`Auth::confirm_email_change`] for a request from `client` (audited with its address).
    pub async fn confirm_email_change_from(&self, token: &str, client: &ClientInfo) -> Result<(), AuthError> {
        let m = self.account_mail()?;
        let mut tx = m.db.pool().begin().await?;
        let Some(r) = m.tokens.redeem(&mut tx, Purpose::ChangeEmail, token).await? else {
            return Err(AuthError::TokenInvalid);
        };
        let old = sqlx::query("SELECT email FROM users WHERE id = $1")
            .bind(r.user_id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(old) = old else { return Err(AuthError::TokenInvalid) };
        let old: String = sqlx::Row::try_get(&old, "email")?;
        let old = Email::parse(&old).map_err(|e| AuthError::Store(fafnir_core::CoreError::Corrupt(e.to_string())))?;
        let res = sqlx::query("UPDATE users SET email = $1, email_verified = 1, updated_at = $2 WHERE id = $3")
            .bind(r.email.as_str())
            .bind(self.now_ms())
            .bind(r.user_id.to_string())
            .execute(&mut *tx)
            .await;
        match res {
            Err(e) if is_unique_violation(&e) => return Err(AuthError::EmailTaken),
            other => other?,
        };
        m.tokens.revoke(&mut tx, r.user_id, &Purpose::ALL).await?;
        let notice = m.render(Message::EmailChanged, &old, &[("new_email", Value::from(masked(&r.email)))])?;
        m.outbox.enqueue(&mut tx, &notice).await?;
        tx.commit().await?;
        m.outbox.notify();
        self.accounts.forget(&r.user_id);
        tracing::info!(user_id = %r.user_id, "e-mail address changed");
        self.audit(AuditEvent::new(AuditKind::EmailChanged).own(r.user_id).client(client));
        Ok(())
    }

    /// Before a password change: the reset and change-of-address links still out are revoked
    /// (a password changed because someone else knew it must also stop what they started). An
    /// error here stops the change.
    pub(crate) async fn void_links_for_password_change(&self, user: UserId) -> Result<(), AuthError> {
        let Some(m) = &self.mail else { return Ok(()) };
        let mut tx = m.db.pool().begin().await?;
        m.tokens.revoke(&mut tx, user, &[Purpose::ResetPassword, Purpose::ChangeEmail]).await?;
        tx.commit().await?;
        Ok(())
    }

    /// After a password change: the owner is told.
    pub(crate) async fn password_changed(&self, user: &UserRecord, reset: bool) {
        let Some(m) = &self.mail else { return };
        let r = async {
            let notice = m.render(Message::PasswordChanged, &user.email, &[("reset", Value::from(reset))])?;
            m.send(&notice).await
        };
        if let Err(e) = r.await {
            tracing::warn!(user_id = %user.id, error = %e, "the password-changed notice could not be queued");
        }
    }

    /// After a failed attempt on the account of `email`: if that failure locked it (the first
    /// lock of its window) and an account has the address, the lock is audited and its owner told
    /// once. The lock is looked up for every address, so a failed login costs the same with or
    /// without an account.
    pub(crate) async fn notice_if_locked(&self, email: &Email, user: Option<&UserRecord>, client: &ClientInfo) {
        self.notice_if_locked_by(THROTTLE_PASSWORD, email, user, client).await;
    }

    /// [`Auth::notice_if_locked`] for the throttle keys under `prefix` (`""`: passwords,
    /// `"mfa:"`: second-factor codes).
    pub(crate) async fn notice_if_locked_by(
        &self,
        prefix: &str,
        email: &Email,
        user: Option<&UserRecord>,
        client: &ClientInfo,
    ) {
        if self.mail.is_none() && self.audit.is_none() {
            return;
        }
        let rule = self.cfg.throttle.per_account;
        let key = format!("{prefix}acct:{email}");
        let r = async {
            let state = self.store.throttle_state(&key).await?;
            let (Some((failures, locked_until)), Some(user)) = (state, user) else { return Ok(()) };
            let now = self.now_ms();
            if failures == rule.max_failures && locked_until > now {
                let wait = std::time::Duration::from_millis(u64::try_from(locked_until - now).unwrap_or(0));
                self.audit(
                    AuditEvent::new(AuditKind::AccountLocked)
                        .subject(user.id)
                        .client(client)
                        .detail("seconds", wait.as_secs()),
                );
                if let Some(m) = &self.mail {
                    let notice =
                        m.render(Message::AccountLocked, &user.email, &[("wait", Value::from(human_duration(wait)))])?;
                    m.send(&notice).await?;
                    tracing::info!(user_id = %user.id, "account locked by the throttle; owner notified");
                }
            }
            Ok::<_, AuthError>(())
        };
        if let Err(e) = r.await {
            tracing::warn!(error = %e, "the lock notice could not be queued");
        }
    }

    /// Tells the owner of a deleted account that it is (from the record read before the
    /// deletion: the address went with the account).
    pub(crate) async fn account_deleted_notice(&self, user: &UserRecord) {
        let Some(m) = &self.mail else { return };
        let r = async { m.send(&m.render(Message::AccountDeleted, &user.email, &[])?).await };
        if let Err(e) = r.await {
            tracing::warn!(user_id = %user.id, error = %e, "the account-deleted notice could not be queued");
        }
    }

    /// Tells `user` that sign-in with `provider` (its display name) was added to the account.
    pub(crate) async fn notice_identity_linked(&self, user: &UserRecord, provider: &str) {
        let Ok(m) = self.account_mail() else { return };
        let r = async {
            m.send(&m.render(Message::IdentityLinked, &user.email, &[("provider", Value::from(provider))])?).await
        };
        if let Err(e) = r.await {
            tracing::warn!(user_id = %user.id, error = %e, "the identity-linked notice could not be queued");
        }
    }

    /// Tells `user` that their second factor (`method`, as a person reads it) was removed.
    pub(crate) async fn notice_second_factor_removed(&self, user: UserId, method: &str) {
        let r = async {
            let m = self.account_mail()?;
            let rec = self.store.user_by_id(user).await?.ok_or(AuthError::UserNotFound)?;
            m.send(&m.render(Message::SecondFactorRemoved, &rec.email, &[("method", Value::from(method))])?).await
        };
        if self.mail.is_some() {
            if let Err(e) = r.await {
                tracing::warn!(user_id = %user, error = %e, "the second-factor-removed notice could not be queued");
            }
        }
    }

    /// Tells `user` that a second factor (`method`, as a person reads it) was added.
    pub async fn notice_second_factor(&self, user: UserId, method: &str) -> Result<(), AuthError> {
        let m = self.account_mail()?;
        let rec = self.store.user_by_id(user).await?.ok_or(AuthError::UserNotFound)?;
        let notice = m.render(Message::SecondFactorAdded, &rec.email, &[("method", Value::from(method))])?;
        m.send(&notice).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_masked_in_notices() {
        let e = Email::parse("nadia@example.com").expect("address");
        assert_eq!(masked(&e), "n***@example.com");
    }
}
