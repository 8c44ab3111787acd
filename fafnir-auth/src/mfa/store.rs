//! Second-factor storage: the trait and its sqlx implementation (both backends).

use async_trait::async_trait;
use fafnir_core::{CoreError, UserId};
use sqlx::Row;

use crate::error::AuthError;
use crate::store::SqlAuthStore;

/// An account's TOTP row.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpRecord {
    /// Sealed with the MFA key ([`super::MfaKey`]).
    pub secret_enc: String,
    pub confirmed: bool,
    pub last_step: i64,
}

impl std::fmt::Debug for TotpRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpRecord").field("confirmed", &self.confirmed).field("last_step", &self.last_step).finish()
    }
}

/// An MFA challenge as stored (only the token's hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChallengeRecord {
    pub token_hash: String,
    pub user_id: UserId,
    pub via: super::Via,
    pub attempts: i64,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
}

/// Storage of second factors and MFA challenges (part of every [`crate::AuthStore`]).
#[async_trait]
pub trait MfaStore: Send + Sync {
    async fn totp(&self, user: UserId) -> Result<Option<TotpRecord>, AuthError>;
    /// Stores a new, unconfirmed secret (replacing an unconfirmed one). `Ok(false)`: TOTP is
    /// already on, nothing changed.
    async fn put_totp_pending(&self, user: UserId, secret_enc: &str, now_ms: i64) -> Result<bool, AuthError>;
    /// Turns TOTP on with the step of its first code, and stores a new set of recovery codes,
    /// in one transaction. `Ok(false)`: no pending secret (or already on).
    async fn confirm_totp(
        &self,
        user: UserId,
        secret_enc: &str,
        step: i64,
        code_hashes: &[String],
        now_ms: i64,
    ) -> Result<bool, AuthError>;
    /// Accepts a code's step once: `true` if `step` is newer than the last accepted one.
    async fn use_totp_step(&self, user: UserId, step: i64) -> Result<bool, AuthError>;
    /// Uses a recovery code once: `true` if it was unused.
    async fn use_recovery_code(&self, user: UserId, code_hash: &str, now_ms: i64) -> Result<bool, AuthError>;
    async fn recovery_codes_left(&self, user: UserId) -> Result<i64, AuthError>;
    /// Replaces the recovery codes (all old ones die).
    async fn replace_recovery_codes(&self, user: UserId, code_hashes: &[String], now_ms: i64) -> Result<(), AuthError>;
    /// Turns TOTP off; when no passkey remains, the recovery codes and open challenges go too.
    /// `true` if it was on.
    async fn delete_totp(&self, user: UserId) -> Result<bool, AuthError>;
    /// Removes every second factor (TOTP, passkeys, recovery codes) and open challenge of
    /// `user`; `true` if one was on.
    async fn delete_second_factors(&self, user: UserId) -> Result<bool, AuthError>;
    async fn put_challenge(&self, c: &ChallengeRecord) -> Result<(), AuthError>;
    /// Claims one attempt on the challenge (one statement) and returns it, if it exists, has
    /// not expired and had attempts left; it dies at [`super::CHALLENGE_ATTEMPTS`].
    async fn claim_challenge(&self, token_hash: &str, now_ms: i64) -> Result<Option<ChallengeRecord>, AuthError>;
    /// Uses the challenge up (after a claimed attempt succeeded): `true` for exactly one caller.
    async fn take_challenge(&self, token_hash: &str, now_ms: i64) -> Result<bool, AuthError>;
}

fn corrupt(what: &str) -> AuthError {
    AuthError::Store(CoreError::Corrupt(format!("bad {what} in store")))
}

#[async_trait]
impl MfaStore for SqlAuthStore {
    async fn totp(&self, user: UserId) -> Result<Option<TotpRecord>, AuthError> {
        let row = sqlx::query("SELECT secret_enc, confirmed_at, last_step FROM mfa_totp WHERE user_id = $1")
            .bind(user.to_string())
            .fetch_optional(self.db().pool())
            .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(TotpRecord {
            secret_enc: row.try_get("secret_enc")?,
            confirmed: row.try_get::<Option<i64>, _>("confirmed_at")?.is_some(),
            last_step: row.try_get("last_step")?,
        }))
    }

    async fn put_totp_pending(&self, user: UserId, secret_enc: &str, now_ms: i64) -> Result<bool, AuthError> {
        let n = sqlx::query(
            "INSERT INTO mfa_totp (user_id, secret_enc, confirmed_at, last_step, created_at) \
             VALUES ($1, $2, NULL, 0, $3) \
             ON CONFLICT (user_id) DO UPDATE SET secret_enc = $2, last_step = 0, created_at = $3 \
             WHERE mfa_totp.confirmed_at IS NULL",
        )
        .bind(user.to_string())
        .bind(secret_enc)
        .bind(now_ms)
        .execute(self.db().pool())
        .await?
        .rows_affected();
        Ok(n > 0)
    }

    async fn confirm_totp(
        &self,
        user: UserId,
        secret_enc: &str,
        step: i64,
        code_hashes: &[String],
        now_ms: i64,
    ) -> Result<bool, AuthError> {
        let mut tx = self.db().pool().begin().await?;
        let n = sqlx::query(
            "UPDATE mfa_totp SET confirmed_at = $1, last_step = $2 \
             WHERE user_id = $3 AND confirmed_at IS NULL AND last_step < $2 AND secret_enc = $4",
        )
        .bind(now_ms)
        .bind(step)
        .bind(user.to_string())
        .bind(secret_enc)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        replace_codes(&mut tx, user, code_hashes, now_ms).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn use_totp_step(&self, user: UserId, step: i64) -> Result<bool, AuthError> {
        let n = sqlx::query(
            "UPDATE mfa_totp SET last_step = $1 WHERE user_id = $2 AND confirmed_at IS NOT NULL AND last_step < $1",
        )
        .bind(step)
        .bind(user.to_string())
        .execute(self.db().pool())
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    async fn use_recovery_code(&self, user: UserId, code_hash: &str, now_ms: i64) -> Result<bool, AuthError> {
        let n = sqlx::query(
            "UPDATE mfa_recovery_codes SET used_at = $1 WHERE user_id = $2 AND code_hash = $3 AND used_at IS NULL",
        )
        .bind(now_ms)
        .bind(user.to_string())
        .bind(code_hash)
        .execute(self.db().pool())
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    async fn recovery_codes_left(&self, user: UserId) -> Result<i64, AuthError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM mfa_recovery_codes WHERE user_id = $1 AND used_at IS NULL")
            .bind(user.to_string())
            .fetch_one(self.db().pool())
            .await?;
        Ok(row.try_get("n")?)
    }

    async fn replace_recovery_codes(&self, user: UserId, code_hashes: &[String], now_ms: i64) -> Result<(), AuthError> {
        let mut tx = self.db().pool().begin().await?;
        replace_codes(&mut tx, user, code_hashes, now_ms).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_totp(&self, user: UserId) -> Result<bool, AuthError> {
        let mut tx = self.db().pool().begin().await?;
        let id = user.to_string();
        let on =
            sqlx::query("DELETE FROM mfa_totp WHERE user_id = $1").bind(&id).execute(&mut *tx).await?.rows_affected();
        for table in ["mfa_recovery_codes", "mfa_challenges"] {
            sqlx::query(&format!(
                "DELETE FROM {table} WHERE user_id = $1 AND NOT EXISTS (SELECT 1 FROM passkeys WHERE user_id = $1)"
            ))
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(on > 0)
    }

    async fn delete_second_factors(&self, user: UserId) -> Result<bool, AuthError> {
        let mut tx = self.db().pool().begin().await?;
        let id = user.to_string();
        let totp = sqlx::query("DELETE FROM mfa_totp WHERE user_id = $1 AND confirmed_at IS NOT NULL")
            .bind(&id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let passkeys =
            sqlx::query("DELETE FROM passkeys WHERE user_id = $1").bind(&id).execute(&mut *tx).await?.rows_affected();
        let on = totp + passkeys;
        for table in ["mfa_totp", "mfa_recovery_codes", "mfa_challenges", "passkey_ceremonies"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE user_id = $1")).bind(&id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(on > 0)
    }

    async fn put_challenge(&self, c: &ChallengeRecord) -> Result<(), AuthError> {
        sqlx::query(
            "INSERT INTO mfa_challenges (token_hash, user_id, via, attempts, created_at, expires_at) \
             VALUES ($1, $2, $3, 0, $4, $5)",
        )
        .bind(&c.token_hash)
        .bind(c.user_id.to_string())
        .bind(c.via.as_str())
        .bind(c.created_at_ms)
        .bind(c.expires_at_ms)
        .execute(self.db().pool())
        .await?;
        Ok(())
    }

    async fn claim_challenge(&self, token_hash: &str, now_ms: i64) -> Result<Option<ChallengeRecord>, AuthError> {
        let n = sqlx::query(
            "UPDATE mfa_challenges SET attempts = attempts + 1 \
             WHERE token_hash = $1 AND expires_at > $2 AND attempts < $3",
        )
        .bind(token_hash)
        .bind(now_ms)
        .bind(super::CHALLENGE_ATTEMPTS)
        .execute(self.db().pool())
        .await?
        .rows_affected();
        if n == 0 {
            return Ok(None);
        }
        let row = sqlx::query(
            "SELECT token_hash, user_id, via, attempts, created_at, expires_at FROM mfa_challenges WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(self.db().pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let user: String = row.try_get("user_id")?;
        Ok(Some(ChallengeRecord {
            token_hash: row.try_get("token_hash")?,
            user_id: UserId::parse(&user).map_err(|_| corrupt("user id"))?,
            via: super::Via::parse(&row.try_get::<String, _>("via")?),
            attempts: row.try_get("attempts")?,
            created_at_ms: row.try_get("created_at")?,
            expires_at_ms: row.try_get("expires_at")?,
        }))
    }

    async fn take_challenge(&self, token_hash: &str, now_ms: i64) -> Result<bool, AuthError> {
        // The attempt that succeeded was claimed already: only expiry matters here.
        let n = sqlx::query("DELETE FROM mfa_challenges WHERE token_hash = $1 AND expires_at > $2")
            .bind(token_hash)
            .bind(now_ms)
            .execute(self.db().pool())
            .await?
            .rows_affected();
        Ok(n == 1)
    }
}

/// Replaces `user`'s recovery codes inside `tx` (also used by a first passkey).
pub(crate) async fn replace_codes(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    user: UserId,
    code_hashes: &[String],
    now_ms: i64,
) -> Result<(), AuthError> {
    let id = user.to_string();
    sqlx::query("DELETE FROM mfa_recovery_codes WHERE user_id = $1").bind(&id).execute(&mut **tx).await?;
    for h in code_hashes {
        sqlx::query("INSERT INTO mfa_recovery_codes (user_id, code_hash, created_at) VALUES ($1, $2, $3)")
            .bind(&id)
            .bind(h)
            .bind(now_ms)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}
