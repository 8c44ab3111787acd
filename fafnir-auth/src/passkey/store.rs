//! Passkey storage: the trait and its sqlx implementation (both backends).

use async_trait::async_trait;
use fafnir_core::{CoreError, UserId};
use sqlx::Row;
use uuid::Uuid;

use crate::error::AuthError;
use crate::store::SqlAuthStore;

/// A registered passkey as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyRecord {
    pub id: Uuid,
    pub user_id: UserId,
    /// The credential id, base64url without padding.
    pub credential_id: String,
    pub name: String,
    /// webauthn-rs's `Passkey` as JSON: the public key, counter and backup flags (no secret).
    pub credential: String,
    /// The authenticator's signature counter as last accepted (0: it keeps none).
    pub sign_count: i64,
    pub created_at_ms: i64,
    pub last_used_at_ms: Option<i64>,
}

/// What a ceremony is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CeremonyKind {
    Register,
    SignIn,
}

impl CeremonyKind {
    fn as_str(self) -> &'static str {
        match self {
            CeremonyKind::Register => "register",
            CeremonyKind::SignIn => "sign_in",
        }
    }
}

/// A started ceremony as stored (only its id's hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CeremonyRecord {
    pub id_hash: String,
    pub kind: CeremonyKind,
    /// The account registering; `None` for a sign-in.
    pub user_id: Option<UserId>,
    /// webauthn-rs's ceremony state as JSON (the challenge and what it expects).
    pub state: String,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
}

/// What [`PasskeyStore::add_passkey`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasskeyAdded {
    /// Stored; `first_factor`: the account had no second factor before, and the recovery codes
    /// given were stored with it.
    Added { first_factor: bool },
    /// The credential id is registered already (to anyone): nothing changed.
    Taken,
    /// The account holds the most passkeys allowed: nothing changed.
    Full,
}

/// What [`PasskeyStore::delete_passkey`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasskeyRemoval {
    /// Removed; `factors_left` says whether any second factor (TOTP, another passkey) remains.
    Removed {
        factors_left: bool,
    },
    NotFound,
    /// It is the account's last way to sign in (no password, no provider, no other passkey).
    LastMethod,
}

/// Storage of passkeys and their ceremonies (part of every [`crate::AuthStore`]).
#[async_trait]
pub trait PasskeyStore: Send + Sync {
    async fn passkeys_of(&self, user: UserId) -> Result<Vec<PasskeyRecord>, AuthError>;
    async fn passkey_by_credential(&self, credential_id: &str) -> Result<Option<PasskeyRecord>, AuthError>;
    /// Stores a new passkey unless the account has `max` already or the credential is taken.
    /// When it is the account's first second factor, `first_codes` (recovery code hashes) are
    /// stored as its recovery codes, in the same transaction: of two first registrations at
    /// once, one is first.
    async fn add_passkey(
        &self,
        p: &PasskeyRecord,
        max: usize,
        first_codes: &[String],
    ) -> Result<PasskeyAdded, AuthError>;
    /// Records a sign-in with the passkey: its new state, and the counter, which must move
    /// forward when it is not 0. `Ok(false)`: it did not (another sign-in raced it, or a clone).
    async fn use_passkey(&self, id: Uuid, credential: &str, sign_count: i64, now_ms: i64) -> Result<bool, AuthError>;
    /// Renames one of `user`'s passkeys: `false` if it is not theirs.
    async fn rename_passkey(&self, user: UserId, id: Uuid, name: &str) -> Result<bool, AuthError>;
    /// Removes one of `user`'s passkeys unless it is their last way to sign in; when no second
    /// factor remains, the recovery codes and open MFA challenges go too.
    async fn delete_passkey(&self, user: UserId, id: Uuid) -> Result<PasskeyRemoval, AuthError>;
    /// Stores a started ceremony, dropping expired ones.
    async fn put_ceremony(&self, c: &CeremonyRecord) -> Result<(), AuthError>;
    /// Takes a ceremony of `kind` begun for `user` (`None`: a sign-in) — used up, one caller gets
    /// it — if it exists and has not expired. Someone else's ceremony is left alone.
    async fn take_ceremony(
        &self,
        id_hash: &str,
        kind: CeremonyKind,
        user: Option<UserId>,
        now_ms: i64,
    ) -> Result<Option<CeremonyRecord>, AuthError>;
}

fn corrupt(what: &str) -> AuthError {
    AuthError::Store(CoreError::Corrupt(format!("bad {what} in store")))
}

const COLS: &str = "id, user_id, credential_id, name, credential, sign_count, created_at, last_used_at";

fn passkey_row(row: &sqlx::any::AnyRow) -> Result<PasskeyRecord, AuthError> {
    let id: String = row.try_get("id")?;
    let user: String = row.try_get("user_id")?;
    Ok(PasskeyRecord {
        id: Uuid::parse_str(&id).map_err(|_| corrupt("passkey id"))?,
        user_id: UserId::parse(&user).map_err(|_| corrupt("user id"))?,
        credential_id: row.try_get("credential_id")?,
        name: row.try_get("name")?,
        credential: row.try_get("credential")?,
        sign_count: row.try_get("sign_count")?,
        created_at_ms: row.try_get("created_at")?,
        last_used_at_ms: row.try_get("last_used_at")?,
    })
}

#[async_trait]
impl PasskeyStore for SqlAuthStore {
    async fn passkeys_of(&self, user: UserId) -> Result<Vec<PasskeyRecord>, AuthError> {
        let rows = sqlx::query(&format!("SELECT {COLS} FROM passkeys WHERE user_id = $1 ORDER BY created_at, id"))
            .bind(user.to_string())
            .fetch_all(self.db().pool())
            .await?;
        rows.iter().map(passkey_row).collect()
    }

    async fn passkey_by_credential(&self, credential_id: &str) -> Result<Option<PasskeyRecord>, AuthError> {
        let row = sqlx::query(&format!("SELECT {COLS} FROM passkeys WHERE credential_id = $1"))
            .bind(credential_id)
            .fetch_optional(self.db().pool())
            .await?;
        row.as_ref().map(passkey_row).transpose()
    }

    async fn add_passkey(
        &self,
        p: &PasskeyRecord,
        max: usize,
        first_codes: &[String],
    ) -> Result<PasskeyAdded, AuthError> {
        let user_s = p.user_id.to_string();
        let mut tx = self.db().pool().begin().await?;
        // Postgres: one change of the account's factors at a time, so the count and "first"
        // below see every other registration. SQLite: the insert comes first and takes the
        // database's one write lock.
        if self.db().backend() == fafnir_core::Backend::Postgres {
            sqlx::query("SELECT id FROM users WHERE id = $1 FOR UPDATE").bind(&user_s).execute(&mut *tx).await?;
        }
        let n = sqlx::query(
            "INSERT INTO passkeys (id, user_id, credential_id, name, credential, sign_count, created_at) \
             SELECT $1, $2, $3, $4, $5, $6, $7 \
             WHERE (SELECT COUNT(*) FROM passkeys WHERE user_id = $2) < $8 \
             ON CONFLICT (credential_id) DO NOTHING",
        )
        .bind(p.id.to_string())
        .bind(&user_s)
        .bind(&p.credential_id)
        .bind(&p.name)
        .bind(&p.credential)
        .bind(p.sign_count)
        .bind(p.created_at_ms)
        .bind(i64::try_from(max).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            let taken = sqlx::query("SELECT 1 AS one FROM passkeys WHERE credential_id = $1")
                .bind(&p.credential_id)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            return Ok(if taken { PasskeyAdded::Taken } else { PasskeyAdded::Full });
        }
        let other = sqlx::query(
            "SELECT 1 AS one FROM passkeys WHERE user_id = $1 AND id <> $2 \
             UNION ALL SELECT 1 AS one FROM mfa_totp WHERE user_id = $1 AND confirmed_at IS NOT NULL",
        )
        .bind(&user_s)
        .bind(p.id.to_string())
        .fetch_optional(&mut *tx)
        .await?
        .is_some();
        if !other {
            crate::mfa::replace_codes(&mut tx, p.user_id, first_codes, p.created_at_ms).await?;
        }
        tx.commit().await?;
        Ok(PasskeyAdded::Added { first_factor: !other })
    }

    async fn use_passkey(&self, id: Uuid, credential: &str, sign_count: i64, now_ms: i64) -> Result<bool, AuthError> {
        let n = sqlx::query(
            "UPDATE passkeys SET credential = $1, sign_count = $2, last_used_at = $3 \
             WHERE id = $4 AND (sign_count < $2 OR (sign_count = 0 AND $2 = 0))",
        )
        .bind(credential)
        .bind(sign_count)
        .bind(now_ms)
        .bind(id.to_string())
        .execute(self.db().pool())
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    async fn rename_passkey(&self, user: UserId, id: Uuid, name: &str) -> Result<bool, AuthError> {
        let n = sqlx::query("UPDATE passkeys SET name = $1 WHERE id = $2 AND user_id = $3")
            .bind(name)
            .bind(id.to_string())
            .bind(user.to_string())
            .execute(self.db().pool())
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    async fn delete_passkey(&self, user: UserId, id: Uuid) -> Result<PasskeyRemoval, AuthError> {
        let user_s = user.to_string();
        let mut tx = self.db().pool().begin().await?;
        // Postgres: one change of the account's ways in at a time (see `unlink_identity`).
        if self.db().backend() == fafnir_core::Backend::Postgres {
            sqlx::query("SELECT id FROM users WHERE id = $1 FOR UPDATE").bind(&user_s).execute(&mut *tx).await?;
        }
        let deleted = sqlx::query(
            "DELETE FROM passkeys WHERE id = $1 AND user_id = $2 AND ( \
               EXISTS (SELECT 1 FROM users WHERE id = $2 AND password_hash <> '') \
               OR EXISTS (SELECT 1 FROM oauth_identities o WHERE o.user_id = $2) \
               OR EXISTS (SELECT 1 FROM passkeys p WHERE p.user_id = $2 AND p.id <> $1))",
        )
        .bind(id.to_string())
        .bind(&user_s)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let outcome = if deleted > 0 {
            let totp = sqlx::query("SELECT 1 AS one FROM mfa_totp WHERE user_id = $1 AND confirmed_at IS NOT NULL")
                .bind(&user_s)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            let more = sqlx::query("SELECT 1 AS one FROM passkeys WHERE user_id = $1")
                .bind(&user_s)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            let factors_left = totp || more;
            if !factors_left {
                for table in ["mfa_recovery_codes", "mfa_challenges"] {
                    sqlx::query(&format!("DELETE FROM {table} WHERE user_id = $1"))
                        .bind(&user_s)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            PasskeyRemoval::Removed { factors_left }
        } else {
            let exists = sqlx::query("SELECT 1 AS one FROM passkeys WHERE id = $1 AND user_id = $2")
                .bind(id.to_string())
                .bind(&user_s)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            if exists {
                PasskeyRemoval::LastMethod
            } else {
                PasskeyRemoval::NotFound
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }

    async fn put_ceremony(&self, c: &CeremonyRecord) -> Result<(), AuthError> {
        sqlx::query("DELETE FROM passkey_ceremonies WHERE expires_at <= $1")
            .bind(c.created_at_ms)
            .execute(self.db().pool())
            .await?;
        sqlx::query(
            "INSERT INTO passkey_ceremonies (id_hash, kind, user_id, state, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&c.id_hash)
        .bind(c.kind.as_str())
        .bind(c.user_id.map(|u| u.to_string()))
        .bind(&c.state)
        .bind(c.created_at_ms)
        .bind(c.expires_at_ms)
        .execute(self.db().pool())
        .await?;
        Ok(())
    }

    async fn take_ceremony(
        &self,
        id_hash: &str,
        kind: CeremonyKind,
        user: Option<UserId>,
        now_ms: i64,
    ) -> Result<Option<CeremonyRecord>, AuthError> {
        let whose = if user.is_some() { "user_id = $4" } else { "user_id IS NULL" };
        let q = format!(
            "DELETE FROM passkey_ceremonies WHERE id_hash = $1 AND kind = $2 AND expires_at > $3 AND {whose} \
             RETURNING id_hash, user_id, state, created_at, expires_at"
        );
        let mut q = sqlx::query(&q).bind(id_hash).bind(kind.as_str()).bind(now_ms);
        if let Some(u) = user {
            q = q.bind(u.to_string());
        }
        let row = q.fetch_optional(self.db().pool()).await?;
        let Some(row) = row else { return Ok(None) };
        let user: Option<String> = row.try_get("user_id")?;
        Ok(Some(CeremonyRecord {
            id_hash: row.try_get("id_hash")?,
            kind,
            user_id: user.map(|u| UserId::parse(&u).map_err(|_| corrupt("user id"))).transpose()?,
            state: row.try_get("state")?,
            created_at_ms: row.try_get("created_at")?,
            expires_at_ms: row.try_get("expires_at")?,
        }))
    }
}
