//! Single-use tokens for actions taken from an e-mailed link: verifying an address, resetting a
//! password, confirming a new address.
//!
//! - 256 bits from the OS generator, sent once (in the link) and stored only as their SHA-256:
//!   the table leaks nothing usable.
//! - Bound to a [`Purpose`], an account and the address they were sent to: a reset token cannot
//!   verify an address, and a verification proves the address it was sent to, not whatever the
//!   account's address is by then.
//! - Short-lived ([`Purpose::lifetime`]) and single use: [`ActionTokens::redeem`] marks a token
//!   used in the caller's transaction, together with the change it authorises, so a failure
//!   after it changes nothing and leaves the token usable, and two concurrent redemptions cannot
//!   both succeed.
//! - Revocable per account and purpose ([`ActionTokens::revoke`]): outstanding tokens die when
//!   the password or the address changes.
//!
//! Opening a link must never redeem a token (mail scanners open links); only the POST of the
//! page behind it does. That is the transports' concern; this module only keeps the tokens.

use std::fmt;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use fafnir_core::{CoreError, Db, Email, SharedClock, UserId};
use rand::RngCore;
use sqlx::{Any, Row, Transaction};

use crate::secret::sha256_hex;

/// What a token authorises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// Proves that the account's holder receives mail at the address.
    VerifyEmail,
    /// Sets a new password without the old one.
    ResetPassword,
    /// Moves the account to a new address (the token was sent there).
    ChangeEmail,
}

impl Purpose {
    /// The name stored in the table.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::VerifyEmail => "verify_email",
            Purpose::ResetPassword => "reset_password",
            Purpose::ChangeEmail => "change_email",
        }
    }

    /// How long a token stays valid: a day to verify (people read mail late), half an hour to
    /// reset a password (a reset link is as good as the password), an hour to change address.
    pub fn lifetime(self) -> Duration {
        match self {
            Purpose::VerifyEmail => Duration::from_secs(24 * 3600),
            Purpose::ResetPassword => Duration::from_secs(30 * 60),
            Purpose::ChangeEmail => Duration::from_secs(3600),
        }
    }

    pub const ALL: [Purpose; 3] = [Purpose::VerifyEmail, Purpose::ResetPassword, Purpose::ChangeEmail];
}

/// A token as sent in a link. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct ActionToken(String);

impl ActionToken {
    /// The token itself, to put in a link.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ActionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ActionToken(***)")
    }
}

/// What a redeemed token was issued for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redeemed {
    pub user_id: UserId,
    /// The address the token was sent to.
    pub email: Email,
}

fn redeemed_row(row: &sqlx::any::AnyRow) -> Result<Redeemed, CoreError> {
    let user: String = row.try_get("user_id")?;
    let email: String = row.try_get("email")?;
    Ok(Redeemed {
        user_id: UserId::parse(&user).map_err(|_| CoreError::Corrupt(format!("bad user id {user:?}")))?,
        email: Email::parse(&email).map_err(|e| CoreError::Corrupt(format!("bad stored address: {e}")))?,
    })
}

/// The store of action tokens (table `action_tokens`, both backends).
#[derive(Debug, Clone)]
pub struct ActionTokens {
    db: Db,
    clock: SharedClock,
}

/// Longest text accepted as a token before any lookup: real ones are 43 characters.
const MAX_TOKEN_LEN: usize = 128;

impl ActionTokens {
    pub fn new(db: Db, clock: SharedClock) -> Self {
        Self { db, clock }
    }

    /// Issues a token for `purpose`, bound to `user` and the address it will be sent to.
    pub async fn issue(&self, purpose: Purpose, user: UserId, email: &Email) -> Result<ActionToken, CoreError> {
        let mut tx = self.db.pool().begin().await?;
        let token = self.issue_in(&mut tx, purpose, user, email).await?;
        tx.commit().await?;
        Ok(token)
    }

    /// [`ActionTokens::issue`] inside the caller's transaction (with the mail that carries it).
    pub async fn issue_in(
        &self,
        tx: &mut Transaction<'static, Any>,
        purpose: Purpose,
        user: UserId,
        email: &Email,
    ) -> Result<ActionToken, CoreError> {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let token = URL_SAFE_NO_PAD.encode(bytes);
        let now = self.clock.now_ms();
        let lifetime = i64::try_from(purpose.lifetime().as_millis()).unwrap_or(i64::MAX);
        sqlx::query(
            "INSERT INTO action_tokens (token_hash, purpose, user_id, email, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(sha256_hex(&token))
        .bind(purpose.as_str())
        .bind(user.to_string())
        .bind(email.as_str())
        .bind(now)
        .bind(now.saturating_add(lifetime))
        .execute(&mut **tx)
        .await?;
        Ok(ActionToken(token))
    }

    /// What `token` would redeem for `purpose`, without redeeming it (to prepare the change it
    /// authorises, such as hashing a new password, outside the transaction that redeems it).
    pub async fn peek(&self, purpose: Purpose, token: &str) -> Result<Option<Redeemed>, CoreError> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Ok(None);
        }
        let row = sqlx::query(
            "SELECT user_id, email FROM action_tokens \
             WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3",
        )
        .bind(sha256_hex(token))
        .bind(purpose.as_str())
        .bind(self.clock.now_ms())
        .fetch_optional(self.db.pool())
        .await?;
        row.as_ref().map(redeemed_row).transpose()
    }

    /// Redeems `token` for `purpose` inside `tx`: `None` when it is unknown, issued for another
    /// purpose, expired or already used (the caller answers all of these alike). The token
    /// counts as used only if `tx` commits.
    pub async fn redeem(
        &self,
        tx: &mut Transaction<'static, Any>,
        purpose: Purpose,
        token: &str,
    ) -> Result<Option<Redeemed>, CoreError> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Ok(None);
        }
        let now = self.clock.now_ms();
        // One statement: of two concurrent redemptions, the second finds `used_at` set.
        let row = sqlx::query(
            "UPDATE action_tokens SET used_at = $1 \
             WHERE token_hash = $2 AND purpose = $3 AND used_at IS NULL AND expires_at > $1 \
             RETURNING user_id, email",
        )
        .bind(now)
        .bind(sha256_hex(token))
        .bind(purpose.as_str())
        .fetch_optional(&mut **tx)
        .await?;
        row.as_ref().map(redeemed_row).transpose()
    }

    /// Ends every outstanding token of `user` for the given purposes (inside the caller's
    /// transaction, so with the change that makes them stale). Returns how many ended.
    pub async fn revoke(
        &self,
        tx: &mut Transaction<'static, Any>,
        user: UserId,
        purposes: &[Purpose],
    ) -> Result<u64, CoreError> {
        let now = self.clock.now_ms();
        let mut ended = 0;
        for p in purposes {
            ended += sqlx::query(
                "UPDATE action_tokens SET used_at = $1 WHERE user_id = $2 AND purpose = $3 AND used_at IS NULL",
            )
            .bind(now)
            .bind(user.to_string())
            .bind(p.as_str())
            .execute(&mut **tx)
            .await?
            .rows_affected();
        }
        Ok(ended)
    }

    /// Deletes tokens that can no longer be redeemed (used or expired) for over a day; returns
    /// how many.
    pub async fn prune(&self) -> Result<u64, CoreError> {
        let cutoff = self.clock.now_ms().saturating_sub(24 * 3600 * 1000);
        Ok(sqlx::query("DELETE FROM action_tokens WHERE expires_at < $1 OR used_at < $1")
            .bind(cutoff)
            .execute(self.db.pool())
            .await?
            .rows_affected())
    }
}
