//! Identities and pending logins: the trait and its sqlx implementation (both backends).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use fafnir_core::clock::from_ms;
use fafnir_core::error::is_unique_violation;
use fafnir_core::events::AccountEvent;
use fafnir_core::{CoreError, UserId};
use sqlx::any::AnyRow;
use sqlx::Row;
use uuid::Uuid;

use crate::error::AuthError;
use crate::store::{SqlAuthStore, UserRecord};

/// An identity as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityRecord {
    pub id: Uuid,
    pub user_id: UserId,
    pub provider: String,
    pub issuer: String,
    pub subject: String,
    pub email: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
}

/// One sign-in in flight at a provider. `Debug` hides the verifier.
#[derive(Clone, PartialEq, Eq)]
pub struct PendingLogin {
    pub state_hash: String,
    pub provider: String,
    pub binding_hash: String,
    pub pkce_verifier: String,
    pub nonce: Option<String>,
    pub return_to: String,
    /// Set for a link request: the account that asked.
    pub link_user: Option<UserId>,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
}

impl std::fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingLogin")
            .field("provider", &self.provider)
            .field("return_to", &self.return_to)
            .field("link_user", &self.link_user)
            .finish_non_exhaustive()
    }
}

/// Storage of identities and pending logins (part of every [`crate::AuthStore`]).
#[async_trait]
pub trait IdentityStore: Send + Sync {
    async fn put_pending(&self, p: &PendingLogin) -> Result<(), AuthError>;
    /// Removes and returns the pending login of `state_hash` if it has not expired. One
    /// statement: of two callbacks with the same state, only one gets it.
    async fn take_pending(&self, state_hash: &str, now_ms: i64) -> Result<Option<PendingLogin>, AuthError>;
    /// The identity (issuer, subject), if linked.
    async fn identity_by_subject(&self, issuer: &str, subject: &str) -> Result<Option<IdentityRecord>, AuthError>;
    /// Links an identity. `Ok(false)` when (issuer, subject) is already linked (to anyone).
    async fn link_identity(&self, identity: &IdentityRecord) -> Result<bool, AuthError>;
    /// Creates an account and links its first identity in one transaction (with `event` in the
    /// outbox). `EmailTaken` when the address was taken meanwhile; `Ok(false)` when the identity
    /// was linked meanwhile (nothing is created).
    async fn create_user_with_identity(
        &self,
        user: &UserRecord,
        event: &AccountEvent,
        identity: &IdentityRecord,
    ) -> Result<bool, AuthError>;
    /// Notes a sign-in through the identity (and the address the provider gave this time).
    async fn touch_identity(&self, id: Uuid, email: Option<&str>, now_ms: i64) -> Result<(), AuthError>;
    async fn identities_of(&self, user: UserId) -> Result<Vec<IdentityRecord>, AuthError>;
    /// Unlinks an identity of `user` unless it is the account's last way to sign in (no
    /// password and no other identity). Decided in the deleting statement itself.
    async fn unlink_identity(&self, user: UserId, id: Uuid) -> Result<Unlink, AuthError>;
}

/// The outcome of [`IdentityStore::unlink_identity`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unlink {
    Unlinked,
    NotFound,
    /// The identity is the account's last sign-in method.
    LastMethod,
}

fn corrupt(what: &str) -> AuthError {
    AuthError::Store(CoreError::Corrupt(format!("bad {what} in store")))
}

fn identity_row(row: &AnyRow) -> Result<IdentityRecord, AuthError> {
    let id: String = row.try_get("id")?;
    let user: String = row.try_get("user_id")?;
    Ok(IdentityRecord {
        id: Uuid::parse_str(&id).map_err(|_| corrupt("identity id"))?,
        user_id: UserId::parse(&user).map_err(|_| corrupt("user id"))?,
        provider: row.try_get("provider")?,
        issuer: row.try_get("issuer")?,
        subject: row.try_get("subject")?,
        email: row.try_get("email")?,
        created_at: from_ms(row.try_get("created_at")?),
        last_used_at: from_ms(row.try_get("last_used_at")?),
    })
}

const IDENTITY_COLS: &str = "id, user_id, provider, issuer, subject, email, created_at, last_used_at";

async fn insert_identity<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    exec: E,
    i: &IdentityRecord,
) -> Result<bool, AuthError> {
    let res =
        sqlx::query(&format!("INSERT INTO oauth_identities ({IDENTITY_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"))
            .bind(i.id.to_string())
            .bind(i.user_id.to_string())
            .bind(&i.provider)
            .bind(&i.issuer)
            .bind(&i.subject)
            .bind(i.email.as_deref())
            .bind(i.created_at.timestamp_millis())
            .bind(i.last_used_at.timestamp_millis())
            .execute(exec)
            .await;
    match res {
        Ok(_) => Ok(true),
        Err(e) if is_unique_violation(&e) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[async_trait]
impl IdentityStore for SqlAuthStore {
    async fn put_pending(&self, p: &PendingLogin) -> Result<(), AuthError> {
        sqlx::query(
            "INSERT INTO oauth_pending (state_hash, provider, binding_hash, pkce_verifier, nonce, return_to, \
             link_user_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&p.state_hash)
        .bind(&p.provider)
        .bind(&p.binding_hash)
        .bind(&p.pkce_verifier)
        .bind(p.nonce.as_deref())
        .bind(&p.return_to)
        .bind(p.link_user.map(|u| u.to_string()))
        .bind(p.created_at_ms)
        .bind(p.expires_at_ms)
        .execute(self.db().pool())
        .await?;
        Ok(())
    }

    async fn take_pending(&self, state_hash: &str, now_ms: i64) -> Result<Option<PendingLogin>, AuthError> {
        let row = sqlx::query(
            "DELETE FROM oauth_pending WHERE state_hash = $1 RETURNING state_hash, provider, binding_hash, \
             pkce_verifier, nonce, return_to, link_user_id, created_at, expires_at",
        )
        .bind(state_hash)
        .fetch_optional(self.db().pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let link: Option<String> = row.try_get("link_user_id")?;
        let p = PendingLogin {
            state_hash: row.try_get("state_hash")?,
            provider: row.try_get("provider")?,
            binding_hash: row.try_get("binding_hash")?,
            pkce_verifier: row.try_get("pkce_verifier")?,
            nonce: row.try_get("nonce")?,
            return_to: row.try_get("return_to")?,
            link_user: link.map(|u| UserId::parse(&u).map_err(|_| corrupt("user id"))).transpose()?,
            created_at_ms: row.try_get("created_at")?,
            expires_at_ms: row.try_get("expires_at")?,
        };
        Ok((p.expires_at_ms > now_ms).then_some(p))
    }

    async fn identity_by_subject(&self, issuer: &str, subject: &str) -> Result<Option<IdentityRecord>, AuthError> {
        let row =
            sqlx::query(&format!("SELECT {IDENTITY_COLS} FROM oauth_identities WHERE issuer = $1 AND subject = $2"))
                .bind(issuer)
                .bind(subject)
                .fetch_optional(self.db().pool())
                .await?;
        row.as_ref().map(identity_row).transpose()
    }

    async fn link_identity(&self, identity: &IdentityRecord) -> Result<bool, AuthError> {
        insert_identity(self.db().pool(), identity).await
    }

    async fn create_user_with_identity(
        &self,
        user: &UserRecord,
        event: &AccountEvent,
        identity: &IdentityRecord,
    ) -> Result<bool, AuthError> {
        let mut tx = self.db().pool().begin().await?;
        self.insert_user(&mut tx, user).await?;
        if !insert_identity(&mut *tx, identity).await? {
            return Ok(false);
        }
        self.outbox().enqueue(&mut tx, event).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn touch_identity(&self, id: Uuid, email: Option<&str>, now_ms: i64) -> Result<(), AuthError> {
        sqlx::query("UPDATE oauth_identities SET last_used_at = $1, email = COALESCE($2, email) WHERE id = $3")
            .bind(now_ms)
            .bind(email)
            .bind(id.to_string())
            .execute(self.db().pool())
            .await?;
        Ok(())
    }

    async fn identities_of(&self, user: UserId) -> Result<Vec<IdentityRecord>, AuthError> {
        let rows = sqlx::query(&format!(
            "SELECT {IDENTITY_COLS} FROM oauth_identities WHERE user_id = $1 ORDER BY created_at, id"
        ))
        .bind(user.to_string())
        .fetch_all(self.db().pool())
        .await?;
        rows.iter().map(identity_row).collect()
    }

    async fn unlink_identity(&self, user: UserId, id: Uuid) -> Result<Unlink, AuthError> {
        let user_s = user.to_string();
        let mut tx = self.db().pool().begin().await?;
        // Postgres: lock the account's row first, so that two unlinks of its last two identities
        // run one after the other and the second sees the first's deletion (under READ
        // COMMITTED each would otherwise see the other's identity still there). SQLite runs one
        // writer at a time.
        if self.db().backend() == fafnir_core::Backend::Postgres {
            sqlx::query("SELECT id FROM users WHERE id = $1 FOR UPDATE").bind(&user_s).execute(&mut *tx).await?;
        }
        let deleted = sqlx::query(
            "DELETE FROM oauth_identities WHERE id = $1 AND user_id = $2 AND ( \
               EXISTS (SELECT 1 FROM users WHERE id = $2 AND password_hash <> '') \
               OR EXISTS (SELECT 1 FROM oauth_identities o WHERE o.user_id = $2 AND o.id <> $1) \
               OR EXISTS (SELECT 1 FROM passkeys p WHERE p.user_id = $2))",
        )
        .bind(id.to_string())
        .bind(&user_s)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let outcome = if deleted > 0 {
            Unlink::Unlinked
        } else {
            let exists = sqlx::query("SELECT 1 AS one FROM oauth_identities WHERE id = $1 AND user_id = $2")
                .bind(id.to_string())
                .bind(&user_s)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            if exists {
                Unlink::LastMethod
            } else {
                Unlink::NotFound
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }
}
