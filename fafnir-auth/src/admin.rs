//! Account lifecycle and administration on [`Auth`]: deleting one's own account, and what an
//! administrator does to others' (list, disable, enable, unlock, end sessions, send a reset
//! link, delete). Every change is audited with its actor. Whether the caller may administer is
//! the transport's check (permission `users:manage`).

use chrono::{DateTime, Utc};
use fafnir_core::UserId;
use serde::Serialize;

use crate::error::AuthError;
use crate::service::{Auth, ClientInfo, Principal};
use crate::store::{UserQuery, UserRecord};
use fafnir_core::audit::{AuditEvent, AuditKind};

/// An account as administrators see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AdminUser {
    pub id: UserId,
    pub email: String,
    pub email_verified: bool,
    /// `active` or `disabled`.
    pub state: &'static str,
    pub created_at: DateTime<Utc>,
    pub last_sign_in_at: Option<DateTime<Utc>>,
}

impl From<&UserRecord> for AdminUser {
    fn from(u: &UserRecord) -> Self {
        AdminUser {
            id: u.id,
            email: u.email.as_str().to_owned(),
            email_verified: u.email_verified,
            state: if u.disabled_at.is_some() { "disabled" } else { "active" },
            created_at: u.created_at,
            last_sign_in_at: u.last_sign_in_at,
        }
    }
}

/// A page of [`Auth::list_users`].
#[derive(Debug, Clone, Default)]
pub struct UserPage {
    pub users: Vec<AdminUser>,
    /// The cursor of the next page, if there is one.
    pub next: Option<String>,
}

/// The account states an administrator can filter by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountState {
    Active,
    Disabled,
}

impl AccountState {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(AccountState::Active),
            "disabled" => Some(AccountState::Disabled),
            _ => None,
        }
    }
}

/// Largest page of [`Auth::list_users`].
pub const MAX_USERS_PAGE: usize = 100;

impl Auth {
    /// Deletes the caller's own account after checking the current password (throttled like a
    /// login): every session ends at once, and the deletion reaches roles and profiles through
    /// the outbox. A confirmation is mailed to the address first.
    pub async fn delete_account(
        &self,
        who: &Principal,
        current_password: &str,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        let user = self.store.user_by_id(who.user_id).await?.ok_or(AuthError::Unauthorized)?;
        if user.password_hash.is_some() {
            self.check_current_password(&user, current_password, client).await?;
        } else {
            // An account made by a provider sign-in: a fresh sign-in stands in for the password.
            self.check_recent_sign_in(who).await?;
        }
        self.remove_user(user.id).await?;
        // After the deletion (the record is still in hand): never "deleted" for an account that
        // is not.
        self.account_deleted_notice(&user).await;
        self.audit(AuditEvent::new(AuditKind::AccountDeleted).own(user.id).client(client).detail("by", "owner"));
        Ok(())
    }

    /// Accounts by e-mail, `first` at a time (1 to [`MAX_USERS_PAGE`]), after the cursor
    /// `after` of the previous page; `email_prefix` and `state` filter.
    pub async fn list_users(
        &self,
        email_prefix: Option<&str>,
        state: Option<AccountState>,
        first: usize,
        after: Option<&str>,
    ) -> Result<UserPage, AuthError> {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        let first = first.clamp(1, MAX_USERS_PAGE);
        // The cursor is opaque (it keeps addresses out of URLs and access logs).
        let after_email = match after.filter(|a| !a.is_empty()) {
            None => None,
            Some(a) => Some(
                URL_SAFE_NO_PAD
                    .decode(a)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| AuthError::validation("after", "not a cursor of this list"))?,
            ),
        };
        let q = UserQuery {
            email_prefix: email_prefix.map(str::to_owned),
            disabled: state.map(|s| s == AccountState::Disabled),
            limit: first + 1,
            after_email,
        };
        let rows = self.store.list_users(&q).await?;
        let more = rows.len() > first;
        let users: Vec<AdminUser> = rows.iter().take(first).map(AdminUser::from).collect();
        let next = if more { users.last().map(|u| URL_SAFE_NO_PAD.encode(&u.email)) } else { None };
        Ok(UserPage { users, next })
    }

    /// One account as administrators see it.
    pub async fn admin_user(&self, id: UserId) -> Result<AdminUser, AuthError> {
        let u = self.store.user_by_id(id).await?.ok_or(AuthError::UserNotFound)?;
        Ok(AdminUser::from(&u))
    }

    /// Disables an account: it cannot sign in, and every session ends now (the same
    /// transaction). Disabling a disabled account changes nothing. Returns whether it changed.
    pub async fn disable_user(
        &self,
        actor: Option<UserId>,
        id: UserId,
        client: &ClientInfo,
    ) -> Result<bool, AuthError> {
        self.store.user_by_id(id).await?.ok_or(AuthError::UserNotFound)?;
        let changed = self.store.set_disabled(id, Some(self.now_ms())).await?;
        self.sessions.retain(|_, u| u != &id);
        self.accounts.forget(&id);
        if changed {
            self.audit(admin_event(AuditKind::AccountDisabled, actor, id, client));
        }
        Ok(changed)
    }

    /// Enables a disabled account (its owner signs in again). Returns whether it changed.
    pub async fn enable_user(&self, actor: Option<UserId>, id: UserId, client: &ClientInfo) -> Result<bool, AuthError> {
        self.store.user_by_id(id).await?.ok_or(AuthError::UserNotFound)?;
        let changed = self.store.set_disabled(id, None).await?;
        if changed {
            self.audit(admin_event(AuditKind::AccountEnabled, actor, id, client));
        }
        Ok(changed)
    }

    /// Lifts the failed-login lock of an account (and forgets its failures). Returns whether it
    /// was locked.
    pub async fn unlock_user(&self, actor: Option<UserId>, id: UserId, client: &ClientInfo) -> Result<bool, AuthError> {
        let u = self.store.user_by_id(id).await?.ok_or(AuthError::UserNotFound)?;
        // Both locks: wrong passwords, and wrong second-factor codes.
        let now = self.now_ms();
        let password = self.store.clear_throttle(&format!("acct:{}", u.email), now).await?;
        let codes = self.store.clear_throttle(&format!("mfa:acct:{}", u.email), now).await?;
        let was_locked = password || codes;
        self.audit(admin_event(AuditKind::AccountUnlocked, actor, id, client).detail("was_locked", was_locked));
        Ok(was_locked)
    }

    /// Ends every session of an account now; returns how many.
    pub async fn revoke_user_sessions(
        &self,
        actor: Option<UserId>,
        id: UserId,
        client: &ClientInfo,
    ) -> Result<u64, AuthError> {
        self.store.user_by_id(id).await?.ok_or(AuthError::UserNotFound)?;
        let n = self.store.revoke_sessions(id, None, "revoked_by_administrator", self.now_ms()).await?;
        self.sessions.retain(|_, u| u != &id);
        self.audit(admin_event(AuditKind::SessionsRevoked, actor, id, client).detail("sessions", n));
        Ok(n)
    }

    /// Mails the account a password reset link (the owner chooses the new password).
    pub async fn send_password_reset(
        &self,
        actor: Option<UserId>,
        id: UserId,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        let u = self.store.user_by_id(id).await?.ok_or(AuthError::UserNotFound)?;
        self.send_reset(&u.email).await?;
        self.audit(admin_event(AuditKind::PasswordResetLinkSent, actor, id, client));
        Ok(())
    }

    /// Deletes an account as an administrator.
    pub async fn admin_delete_user(
        &self,
        actor: Option<UserId>,
        id: UserId,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        let u = self.store.user_by_id(id).await?.ok_or(AuthError::UserNotFound)?;
        self.remove_user(id).await?;
        self.account_deleted_notice(&u).await;
        self.audit(admin_event(AuditKind::AccountDeleted, actor, id, client).detail("by", "administrator"));
        Ok(())
    }

    /// Records that `user` signed in now, for the administrators' list (in the background: a
    /// login must not wait for it).
    pub(crate) fn note_sign_in(&self, user: UserId) {
        let (store, now) = (self.store.clone(), self.now_ms());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = store.note_sign_in(user, now).await {
                    tracing::debug!(error = %e, "the sign-in time was not recorded");
                }
            });
        }
    }
}

fn admin_event(kind: AuditKind, actor: Option<UserId>, subject: UserId, client: &ClientInfo) -> AuditEvent {
    let ev = AuditEvent::new(kind).subject(subject).client(client);
    match actor {
        Some(a) => ev.actor(a),
        None => ev.detail("by", "cli"),
    }
}
