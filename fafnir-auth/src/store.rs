//! Account, session, refresh-token and throttle storage: the trait and its sqlx implementation.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use fafnir_core::clock::from_ms;
use fafnir_core::error::is_unique_violation;
use fafnir_core::events::{AccountEvent, Outbox};
use fafnir_core::{CoreError, Db, Email, SessionId, UserId};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::error::AuthError;

/// An account as stored.
#[derive(Clone)]
pub struct UserRecord {
    pub id: UserId,
    pub email: Email,
    /// `None` for an account made by a provider sign-in that has not set a password.
    pub password_hash: Option<String>,
    pub email_verified: bool,
    pub created_at: DateTime<Utc>,
    /// Set while an administrator has disabled the account.
    pub disabled_at: Option<DateTime<Utc>>,
    pub last_sign_in_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRecord").field("id", &self.id).field("email", &self.email).finish_non_exhaustive()
    }
}

/// A login session (one refresh-token family).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub id: SessionId,
    pub user_id: UserId,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

/// What happened to a presented refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// The token was the session's newest (or its immediate parent, within the grace window):
    /// the new token is stored.
    Rotated { session: SessionId, user: UserId },
    /// Unknown, expired, or its session was revoked.
    Invalid,
    /// A used token was replayed outside the grace window: the session is now revoked.
    Reused { session: SessionId, user: UserId },
}

/// Parameters of one rotation.
#[derive(Debug, Clone, Copy)]
pub struct RotateParams<'a> {
    pub presented_hash: &'a str,
    pub fresh_hash: &'a str,
    pub now_ms: i64,
    pub grace_ms: i64,
    pub ttl_ms: i64,
}

/// A throttling rule for one kind of key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleRule {
    /// Failures within `window_ms` before the key is locked.
    pub max_failures: i64,
    pub window_ms: i64,
    /// First lockout; doubles with every further failure.
    pub base_lockout_ms: i64,
    pub max_lockout_ms: i64,
}

#[async_trait]
pub trait AuthStore:
    crate::oauth::IdentityStore + crate::mfa::MfaStore + crate::passkey::PasskeyStore + Send + Sync + std::fmt::Debug
{
    /// Inserts the account and records `event` in the outbox, atomically.
    async fn create_user(&self, user: &UserRecord, event: &AccountEvent) -> Result<(), AuthError>;
    async fn user_by_email(&self, email: &Email) -> Result<Option<UserRecord>, AuthError>;
    async fn user_by_id(&self, id: UserId) -> Result<Option<UserRecord>, AuthError>;
    async fn set_password_hash(&self, id: UserId, hash: &str, now_ms: i64) -> Result<(), AuthError>;
    /// Deletes the account (its sessions go with it) and records `event`, atomically.
    async fn delete_user(&self, id: UserId, event: &AccountEvent) -> Result<bool, AuthError>;

    async fn create_session(&self, s: &SessionRecord, refresh_hash: &str) -> Result<(), AuthError>;
    async fn rotate_refresh(&self, p: RotateParams<'_>) -> Result<Rotation, AuthError>;
    /// The session's user, if the session is active (not revoked, not expired).
    async fn active_session(&self, id: SessionId, now_ms: i64) -> Result<Option<UserId>, AuthError>;
    async fn sessions_of(&self, user: UserId, now_ms: i64) -> Result<Vec<SessionRecord>, AuthError>;
    async fn revoke_session(&self, user: UserId, id: SessionId, reason: &str, now_ms: i64) -> Result<bool, AuthError>;
    /// Revokes every active session of `user` except `keep`; returns how many.
    async fn revoke_sessions(
        &self,
        user: UserId,
        keep: Option<SessionId>,
        reason: &str,
        now_ms: i64,
    ) -> Result<u64, AuthError>;
    /// The session behind a refresh token, if it is active.
    async fn session_of_refresh(
        &self,
        refresh_hash: &str,
        now_ms: i64,
    ) -> Result<Option<(SessionId, UserId)>, AuthError>;

    /// Claims an attempt on `key`. Refused — `Ok(Err(retry_after_ms))` — when the key is locked,
    /// or when as many attempts are already in flight as failures remain before the lock (at
    /// least one may always run once a lock has expired). Atomic on both backends, so parallel
    /// requests cannot all slip past the limit before any of them is counted.
    async fn begin_attempt(&self, key: &str, rule: ThrottleRule, now_ms: i64) -> Result<Result<(), i64>, AuthError>;
    /// Releases a claimed attempt. A failure is counted (and locks the key with exponential
    /// backoff once `max_failures` is reached); a success with `clear` forgets the key.
    async fn end_attempt(
        &self,
        key: &str,
        rule: ThrottleRule,
        failed: bool,
        clear: bool,
        now_ms: i64,
    ) -> Result<(), AuthError>;
    /// Claims an attempt on every key, or on none: the first refusal — `Ok(Err(retry_after_ms))`
    /// — releases the claims already made. The default claims one key at a time.
    async fn begin_attempts(&self, keys: &[(&str, ThrottleRule)], now_ms: i64) -> Result<Result<(), i64>, AuthError> {
        default_begin_attempts(self, keys, now_ms).await
    }
    /// Releases claims without counting a failure; keys marked `true` also forget their failures
    /// and lock (a success). The default releases one key at a time.
    async fn release_attempts(&self, keys: &[(&str, ThrottleRule, bool)], now_ms: i64) -> Result<(), AuthError> {
        default_release_attempts(self, keys, now_ms).await
    }
    /// Sets a new hash only if the stored one is still `old` (returns whether it did).
    async fn replace_password_hash(&self, id: UserId, old: &str, new: &str, now_ms: i64) -> Result<bool, AuthError>;
    /// How many sessions are active (not revoked, not expired) at `now_ms`.
    async fn count_active_sessions(&self, now_ms: i64) -> Result<i64, AuthError>;
    /// Deletes sessions (with their tokens) that ended before `before_ms`, and stale throttle rows.
    async fn prune(&self, before_ms: i64) -> Result<u64, AuthError>;

    /// A throttle key's failures and lock end (ms), if it has a row.
    async fn throttle_state(&self, key: &str) -> Result<Option<(i64, i64)>, AuthError>;
    /// Forgets a throttle key's failures and lock (an administrator's unlock); whether it was
    /// locked at `now_ms`.
    async fn clear_throttle(&self, key: &str, now_ms: i64) -> Result<bool, AuthError>;
    /// Disables (`Some(at)`) or enables (`None`) an account; whether it changed. Disabling also
    /// revokes every session, in the same transaction.
    async fn set_disabled(&self, id: UserId, at: Option<i64>) -> Result<bool, AuthError>;
    /// Records a sign-in time for the administrators' list.
    async fn note_sign_in(&self, id: UserId, at_ms: i64) -> Result<(), AuthError>;
    /// Accounts by e-mail (ascending), filtered; `after` is the last e-mail of the previous page.
    async fn list_users(&self, q: &UserQuery) -> Result<Vec<UserRecord>, AuthError>;
}

/// What [`AuthStore::list_users`] lists.
#[derive(Debug, Clone, Default)]
pub struct UserQuery {
    /// Accounts whose e-mail starts with this (case-insensitive: addresses are stored
    /// lower-cased).
    pub email_prefix: Option<String>,
    /// `Some(true)`: disabled accounts only; `Some(false)`: active ones only.
    pub disabled: Option<bool>,
    /// At most this many (the caller asks one more to know whether a next page exists).
    pub limit: usize,
    pub after_email: Option<String>,
}

/// The sqlx store, for SQLite and Postgres alike.
#[derive(Debug, Clone)]
pub struct SqlAuthStore {
    db: Db,
    outbox: Arc<Outbox>,
}

impl SqlAuthStore {
    pub fn new(db: Db, outbox: Arc<Outbox>) -> Self {
        Self { db, outbox }
    }

    pub(crate) fn db(&self) -> &Db {
        &self.db
    }

    pub(crate) fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// Inserts the account row (`EmailTaken` on a duplicate address).
    pub(crate) async fn insert_user(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        user: &UserRecord,
    ) -> Result<(), AuthError> {
        let now = user.created_at.timestamp_millis();
        let res = sqlx::query(
            "INSERT INTO users (id, email, password_hash, email_verified, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(user.id.to_string())
        .bind(user.email.as_str())
        .bind(user.password_hash.as_deref().unwrap_or(""))
        .bind(i64::from(user.email_verified))
        .bind(now)
        .execute(&mut **tx)
        .await;
        match res {
            Err(e) if is_unique_violation(&e) => Err(AuthError::EmailTaken),
            other => other.map(drop).map_err(AuthError::from),
        }
    }

    /// Selects the throttle rows of `keys` (placeholders) in a statement that changes several.
    /// On Postgres the rows are first locked in key order, so that two such statements on the
    /// same rows cannot deadlock; SQLite runs one writer at a time.
    fn key_filter(&self, keys: &[String]) -> String {
        let list = keys.join(", ");
        match self.db.backend() {
            fafnir_core::Backend::Sqlite => format!("key IN ({list})"),
            fafnir_core::Backend::Postgres => {
                format!("key IN (SELECT key FROM login_throttle WHERE key IN ({list}) ORDER BY key FOR UPDATE)")
            }
        }
    }
}

/// Claims older than this belong to a request that died with its instance.
const STALE_MS: i64 = 60_000;

/// A claim this recent belongs to an attempt still hashing: a slot frees within a second.
const LIVE_CLAIM_MS: i64 = 5_000;

/// How long a caller refused because every slot is in flight must wait: about a second while the
/// newest claim is live, else until the claims go stale (an instance died holding them).
fn inflight_wait(claimed_at: i64, now_ms: i64) -> i64 {
    if now_ms - claimed_at < LIVE_CLAIM_MS {
        1000
    } else {
        (claimed_at + STALE_MS - now_ms).max(1000)
    }
}

/// The claim `UPDATE` for the rows `filter` selects, given the placeholders of now and of the
/// staleness cut-off, and the expressions of a row's window start cut-off (now − window), `max` of its
/// `max_failures`. `failures` and `inflight` are taken as they count now (an expired window or
/// stale claims count 0); the row is claimed only when it is not locked and fewer attempts are
/// in flight than failures remain before the lock (at least one once a lock has expired).
fn claim_sql(filter: &str, now: &str, stale: &str, window: &str, max: &str) -> String {
    let failures = format!("(CASE WHEN window_start <= {window} THEN 0 ELSE failures END)");
    format!(
        "UPDATE login_throttle SET \
           failures = CASE WHEN window_start <= {window} THEN 0 ELSE failures END, \
           window_start = CASE WHEN window_start <= {window} THEN {now} ELSE window_start END, \
           inflight = CASE WHEN inflight_at <= {stale} THEN 1 ELSE inflight + 1 END, \
           inflight_at = {now} \
         WHERE {filter} AND locked_until <= {now} \
           AND (CASE WHEN inflight_at <= {stale} THEN 0 ELSE inflight END) < \
               (CASE WHEN {failures} >= {max} THEN 1 ELSE {max} - {failures} END)"
    )
}

/// For a claim of `n` keys: the placeholders of the keys ($1..$n), of now and of the
/// staleness cut-off, and CASE expressions picking each row's window cut-off and failure limit.
/// Binding order: the keys, now, the cut-off, then (window cut-off, max failures) per key.
struct ClaimParams {
    keys: Vec<String>,
    now: String,
    stale: String,
    window: String,
    max: String,
}

fn claim_params(n: usize) -> ClaimParams {
    let keys: Vec<String> = (1..=n).map(|i| format!("${i}")).collect();
    let rule = |i: usize, j: usize| format!("${}", n + 3 + 2 * i + j);
    let case = |j: usize| {
        let arms: String = (0..n).map(|i| format!(" WHEN {} THEN {}", keys[i], rule(i, j))).collect();
        format!("(CASE key{arms} END)")
    };
    let (window, max) = (case(0), case(1));
    ClaimParams { now: format!("${}", n + 1), stale: format!("${}", n + 2), keys, window, max }
}

async fn default_begin_attempts<S: AuthStore + ?Sized>(
    store: &S,
    keys: &[(&str, ThrottleRule)],
    now_ms: i64,
) -> Result<Result<(), i64>, AuthError> {
    for (i, (key, rule)) in keys.iter().enumerate() {
        if let Err(wait) = store.begin_attempt(key, *rule, now_ms).await? {
            for (k, r) in &keys[..i] {
                store.end_attempt(k, *r, false, false, now_ms).await?;
            }
            return Ok(Err(wait));
        }
    }
    Ok(Ok(()))
}

async fn default_release_attempts<S: AuthStore + ?Sized>(
    store: &S,
    keys: &[(&str, ThrottleRule, bool)],
    now_ms: i64,
) -> Result<(), AuthError> {
    for (key, rule, clear) in keys {
        store.end_attempt(key, *rule, false, *clear, now_ms).await?;
    }
    Ok(())
}

fn corrupt(what: &str) -> AuthError {
    AuthError::Store(CoreError::Corrupt(format!("bad {what} in store")))
}

fn user_row(row: &AnyRow) -> Result<UserRecord, AuthError> {
    let id: String = row.try_get("id")?;
    let email: String = row.try_get("email")?;
    Ok(UserRecord {
        id: UserId::parse(&id).map_err(|_| corrupt("user id"))?,
        email: Email::parse(&email).map_err(|_| corrupt("email"))?,
        // An account without a password stores '' (the column is NOT NULL on both dialects).
        password_hash: Some(row.try_get::<String, _>("password_hash")?).filter(|h| !h.is_empty()),
        email_verified: row.try_get::<i64, _>("email_verified")? != 0,
        created_at: from_ms(row.try_get("created_at")?),
        disabled_at: row.try_get::<Option<i64>, _>("disabled_at")?.map(from_ms),
        last_sign_in_at: row.try_get::<Option<i64>, _>("last_sign_in_at")?.map(from_ms),
    })
}

fn session_row(row: &AnyRow) -> Result<SessionRecord, AuthError> {
    let id: String = row.try_get("id")?;
    let user: String = row.try_get("user_id")?;
    Ok(SessionRecord {
        id: SessionId::parse(&id).map_err(|_| corrupt("session id"))?,
        user_id: UserId::parse(&user).map_err(|_| corrupt("user id"))?,
        created_at: from_ms(row.try_get("created_at")?),
        last_used_at: from_ms(row.try_get("last_used_at")?),
        expires_at: from_ms(row.try_get("expires_at")?),
        user_agent: row.try_get("user_agent")?,
        ip: row.try_get("ip")?,
    })
}

const USER_COLS: &str = "id, email, password_hash, email_verified, created_at, disabled_at, last_sign_in_at";
const SESSION_COLS: &str = "id, user_id, created_at, last_used_at, expires_at, user_agent, ip";

#[async_trait]
impl AuthStore for SqlAuthStore {
    async fn create_user(&self, user: &UserRecord, event: &AccountEvent) -> Result<(), AuthError> {
        let mut tx = self.db.pool().begin().await?;
        self.insert_user(&mut tx, user).await?;
        self.outbox.enqueue(&mut tx, event).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn user_by_email(&self, email: &Email) -> Result<Option<UserRecord>, AuthError> {
        let row = sqlx::query(&format!("SELECT {USER_COLS} FROM users WHERE email = $1"))
            .bind(email.as_str())
            .fetch_optional(self.db.pool())
            .await?;
        row.as_ref().map(user_row).transpose()
    }

    async fn user_by_id(&self, id: UserId) -> Result<Option<UserRecord>, AuthError> {
        let row = sqlx::query(&format!("SELECT {USER_COLS} FROM users WHERE id = $1"))
            .bind(id.to_string())
            .fetch_optional(self.db.pool())
            .await?;
        row.as_ref().map(user_row).transpose()
    }

    async fn set_password_hash(&self, id: UserId, hash: &str, now_ms: i64) -> Result<(), AuthError> {
        sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
            .bind(hash)
            .bind(now_ms)
            .bind(id.to_string())
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    async fn delete_user(&self, id: UserId, event: &AccountEvent) -> Result<bool, AuthError> {
        let mut tx = self.db.pool().begin().await?;
        let uid = id.to_string();
        // Children first: do not depend on ON DELETE CASCADE being switched on.
        sqlx::query("DELETE FROM refresh_tokens WHERE session_id IN (SELECT id FROM sessions WHERE user_id = $1)")
            .bind(&uid)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM sessions WHERE user_id = $1").bind(&uid).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM action_tokens WHERE user_id = $1").bind(&uid).execute(&mut *tx).await?;
        let n = sqlx::query("DELETE FROM users WHERE id = $1").bind(&uid).execute(&mut *tx).await?.rows_affected();
        if n == 0 {
            return Ok(false);
        }
        self.outbox.enqueue(&mut tx, event).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn create_session(&self, s: &SessionRecord, refresh_hash: &str) -> Result<(), AuthError> {
        let mut tx = self.db.pool().begin().await?;
        let now = s.created_at.timestamp_millis();
        sqlx::query(
            "INSERT INTO sessions (id, user_id, generation, created_at, last_used_at, rotated_at, expires_at, user_agent, ip) \
             VALUES ($1, $2, 0, $3, $3, $3, $4, $5, $6)",
        )
        .bind(s.id.to_string())
        .bind(s.user_id.to_string())
        .bind(now)
        .bind(s.expires_at.timestamp_millis())
        .bind(s.user_agent.clone())
        .bind(s.ip.clone())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, session_id, generation, created_at) VALUES ($1, $2, 0, $3)",
        )
        .bind(refresh_hash)
        .bind(s.id.to_string())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn rotate_refresh(&self, p: RotateParams<'_>) -> Result<Rotation, AuthError> {
        // Each pass reads the state, then tries one conditional write (compare-and-swap on the
        // session's generation). Losing the race to a concurrent refresh sends us round again,
        // where the grace rule now applies. Three passes are plenty: each loss means progress.
        for _ in 0..3 {
            let row = sqlx::query(
                "SELECT t.session_id, t.generation, s.user_id, s.generation AS current, s.rotated_at, \
                        s.expires_at, s.revoked_at \
                 FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id WHERE t.token_hash = $1",
            )
            .bind(p.presented_hash)
            .fetch_optional(self.db.pool())
            .await?;
            let Some(row) = row else {
                return Ok(Rotation::Invalid);
            };
            let sid: String = row.try_get("session_id")?;
            let session = SessionId::parse(&sid).map_err(|_| corrupt("session id"))?;
            let user = UserId::parse(&row.try_get::<String, _>("user_id")?).map_err(|_| corrupt("user id"))?;
            let generation: i64 = row.try_get("generation")?;
            let current: i64 = row.try_get("current")?;
            let rotated_at: i64 = row.try_get("rotated_at")?;
            let expires_at: i64 = row.try_get("expires_at")?;
            let revoked_at: Option<i64> = row.try_get("revoked_at")?;
            if revoked_at.is_some() || expires_at <= p.now_ms {
                return Ok(Rotation::Invalid);
            }

            let (swap_sql, new_generation) = if generation == current {
                // The newest token: advance the generation.
                (
                    "UPDATE sessions SET generation = $1, rotated_at = $2, last_used_at = $2, expires_at = $3 \
                     WHERE id = $4 AND generation = $5 AND revoked_at IS NULL",
                    current + 1,
                )
            } else if generation == current - 1 && p.now_ms - rotated_at <= p.grace_ms {
                // The immediate parent, just rotated by a concurrent request (another tab): issue a
                // sibling of the newest token instead of treating it as theft.
                (
                    "UPDATE sessions SET generation = $1, last_used_at = $2, expires_at = $3 \
                     WHERE id = $4 AND generation = $5 AND revoked_at IS NULL",
                    current,
                )
            } else {
                // Replay of a used token: somebody holds a copy. Revoke the whole family.
                sqlx::query(
                    "UPDATE sessions SET revoked_at = $1, revoke_reason = 'refresh_token_reused' \
                     WHERE id = $2 AND revoked_at IS NULL",
                )
                .bind(p.now_ms)
                .bind(&sid)
                .execute(self.db.pool())
                .await?;
                return Ok(Rotation::Reused { session, user });
            };

            let mut tx = self.db.pool().begin().await?;
            let swapped = sqlx::query(swap_sql)
                .bind(new_generation)
                .bind(p.now_ms)
                .bind(p.now_ms.saturating_add(p.ttl_ms))
                .bind(&sid)
                .bind(current)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if swapped == 0 {
                tx.rollback().await?;
                continue;
            }
            sqlx::query("UPDATE refresh_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL")
                .bind(p.now_ms)
                .bind(p.presented_hash)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO refresh_tokens (token_hash, session_id, generation, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(p.fresh_hash)
            .bind(&sid)
            .bind(new_generation)
            .bind(p.now_ms)
            .execute(&mut *tx)
            .await?;
            // Used tokens stay until the session ends: replaying any of them, however old, must be
            // recognised as reuse (and revoke the family), not as an unknown token.
            tx.commit().await?;
            return Ok(Rotation::Rotated { session, user });
        }
        // Three lost races in a row: heavy contention on one session. Let the client retry.
        Err(AuthError::Busy)
    }

    async fn active_session(&self, id: SessionId, now_ms: i64) -> Result<Option<UserId>, AuthError> {
        // A disabled account's sessions are not active, whatever raced its disabling (a login
        // that was hashing when the account was disabled may still have opened one).
        let row = sqlx::query(
            "SELECT s.user_id FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.id = $1 AND s.revoked_at IS NULL AND s.expires_at > $2 AND u.disabled_at IS NULL",
        )
        .bind(id.to_string())
        .bind(now_ms)
        .fetch_optional(self.db.pool())
        .await?;
        match row {
            Some(r) => Ok(Some(UserId::parse(&r.try_get::<String, _>("user_id")?).map_err(|_| corrupt("user id"))?)),
            None => Ok(None),
        }
    }

    async fn sessions_of(&self, user: UserId, now_ms: i64) -> Result<Vec<SessionRecord>, AuthError> {
        let rows = sqlx::query(&format!(
            "SELECT {SESSION_COLS} FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 \
             ORDER BY created_at DESC"
        ))
        .bind(user.to_string())
        .bind(now_ms)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter().map(session_row).collect()
    }

    async fn revoke_session(&self, user: UserId, id: SessionId, reason: &str, now_ms: i64) -> Result<bool, AuthError> {
        let n = sqlx::query(
            "UPDATE sessions SET revoked_at = $1, revoke_reason = $2 WHERE id = $3 AND user_id = $4 AND revoked_at IS NULL",
        )
        .bind(now_ms)
        .bind(reason)
        .bind(id.to_string())
        .bind(user.to_string())
        .execute(self.db.pool())
        .await?
        .rows_affected();
        Ok(n > 0)
    }

    async fn revoke_sessions(
        &self,
        user: UserId,
        keep: Option<SessionId>,
        reason: &str,
        now_ms: i64,
    ) -> Result<u64, AuthError> {
        let keep = keep.map(|k| k.to_string()).unwrap_or_default();
        let n = sqlx::query(
            "UPDATE sessions SET revoked_at = $1, revoke_reason = $2 WHERE user_id = $3 AND id <> $4 AND revoked_at IS NULL",
        )
        .bind(now_ms)
        .bind(reason)
        .bind(user.to_string())
        .bind(keep)
        .execute(self.db.pool())
        .await?
        .rows_affected();
        Ok(n)
    }

    async fn session_of_refresh(
        &self,
        refresh_hash: &str,
        now_ms: i64,
    ) -> Result<Option<(SessionId, UserId)>, AuthError> {
        let row = sqlx::query(
            "SELECT s.id, s.user_id FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id \
             WHERE t.token_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > $2",
        )
        .bind(refresh_hash)
        .bind(now_ms)
        .fetch_optional(self.db.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let sid = SessionId::parse(&row.try_get::<String, _>("id")?).map_err(|_| corrupt("session id"))?;
        let uid = UserId::parse(&row.try_get::<String, _>("user_id")?).map_err(|_| corrupt("user id"))?;
        Ok(Some((sid, uid)))
    }

    async fn begin_attempt(&self, key: &str, rule: ThrottleRule, now_ms: i64) -> Result<Result<(), i64>, AuthError> {
        // `failures` and `inflight` as they count now (an expired window or stale claims count 0).
        let claim = claim_sql("key = $1", "$2", "$4", "$3", "$5");
        for round in 0..3 {
            let n = sqlx::query(&claim)
                .bind(key)
                .bind(now_ms)
                .bind(now_ms - rule.window_ms)
                .bind(now_ms - STALE_MS)
                .bind(rule.max_failures)
                .execute(self.db.pool())
                .await?
                .rows_affected();
            if n > 0 {
                return Ok(Ok(()));
            }
            let row = sqlx::query("SELECT locked_until, inflight_at FROM login_throttle WHERE key = $1")
                .bind(key)
                .fetch_optional(self.db.pool())
                .await?;
            let locked = match row {
                Some(r) => Some((r.try_get::<i64, _>("locked_until")?, r.try_get::<i64, _>("inflight_at")?)),
                None => None,
            };
            match locked {
                Some((until, _)) if until > now_ms => return Ok(Err(until - now_ms)),
                // Not locked: either the row appeared after our claim looked for it (another
                // request created it), or every remaining attempt is in flight. Claim once more
                // before refusing, so that only the second case is refused.
                Some(_) if round == 0 => continue,
                Some((_, claimed_at)) => return Ok(Err(inflight_wait(claimed_at, now_ms))),
                // First attempt on this key: create it claimed. A concurrent creator may win the
                // insert; then go round again and claim against its row.
                None => {
                    let inserted = sqlx::query(
                        "INSERT INTO login_throttle (key, failures, window_start, locked_until, inflight, inflight_at) \
                         VALUES ($1, 0, $2, 0, 1, $2) ON CONFLICT DO NOTHING",
                    )
                    .bind(key)
                    .bind(now_ms)
                    .execute(self.db.pool())
                    .await?
                    .rows_affected();
                    if inserted > 0 {
                        return Ok(Ok(()));
                    }
                }
            }
        }
        Ok(Err(1000))
    }

    async fn end_attempt(
        &self,
        key: &str,
        rule: ThrottleRule,
        failed: bool,
        clear: bool,
        now_ms: i64,
    ) -> Result<(), AuthError> {
        if clear && !failed {
            // Reset in place rather than delete: the next login claims with one UPDATE.
            sqlx::query(
                "UPDATE login_throttle SET failures = 0, locked_until = 0, \
                   inflight = CASE WHEN inflight > 0 THEN inflight - 1 ELSE 0 END WHERE key = $1",
            )
            .bind(key)
            .execute(self.db.pool())
            .await?;
            return Ok(());
        }
        if !failed {
            sqlx::query("UPDATE login_throttle SET inflight = CASE WHEN inflight > 0 THEN inflight - 1 ELSE 0 END WHERE key = $1")
                .bind(key)
                .execute(self.db.pool())
                .await?;
            return Ok(());
        }
        // The failure is counted and, past the limit, the lock set in ONE statement: a separate
        // lock write would leave a gap in which another attempt could be claimed unlocked.
        // Lockout after the n-th failure past the limit: base × 2^n, capped. The ladder is
        // computed here and written as integer literals (no pow() in SQLite).
        let mut ladder = String::from("CASE failures + 1 - $2");
        for n in 0..=20u32 {
            let ms = rule.base_lockout_ms.saturating_mul(1i64 << n).min(rule.max_lockout_ms);
            ladder.push_str(&format!(" WHEN {n} THEN {ms}"));
            if ms >= rule.max_lockout_ms {
                break;
            }
        }
        ladder.push_str(&format!(" ELSE {} END", rule.max_lockout_ms));
        let sql = format!(
            "UPDATE login_throttle SET \
               inflight = CASE WHEN inflight > 0 THEN inflight - 1 ELSE 0 END, \
               failures = failures + 1, \
               locked_until = CASE WHEN failures + 1 >= $2 \
                 THEN (CASE WHEN locked_until > $3 + ({ladder}) THEN locked_until ELSE $3 + ({ladder}) END) \
                 ELSE locked_until END \
             WHERE key = $1"
        );
        sqlx::query(&sql).bind(key).bind(rule.max_failures).bind(now_ms).execute(self.db.pool()).await?;
        Ok(())
    }

    async fn begin_attempts(&self, keys: &[(&str, ThrottleRule)], now_ms: i64) -> Result<Result<(), i64>, AuthError> {
        if keys.len() < 2 {
            return default_begin_attempts(self, keys, now_ms).await;
        }
        // One statement claims every key whose row exists and allows it (the common case: a
        // login claims its account and its address); the rest go the one-key way.
        let p = claim_params(keys.len());
        let claim =
            format!("{} RETURNING key", claim_sql(&self.key_filter(&p.keys), &p.now, &p.stale, &p.window, &p.max));
        let mut q = sqlx::query_scalar::<_, String>(&claim);
        for (key, _) in keys {
            q = q.bind(*key);
        }
        q = q.bind(now_ms).bind(now_ms - STALE_MS);
        for (_, rule) in keys {
            q = q.bind(now_ms - rule.window_ms).bind(rule.max_failures);
        }
        let claimed: Vec<String> = q.fetch_all(self.db.pool()).await?;
        let mut held: Vec<(&str, ThrottleRule, bool)> =
            keys.iter().filter(|(k, _)| claimed.iter().any(|c| c == k)).map(|(k, r)| (*k, *r, false)).collect();
        for (key, rule) in keys.iter().filter(|(k, _)| !claimed.iter().any(|c| c == k)) {
            match self.begin_attempt(key, *rule, now_ms).await? {
                Ok(()) => held.push((key, *rule, false)),
                Err(wait) => {
                    self.release_attempts(&held, now_ms).await?;
                    return Ok(Err(wait));
                }
            }
        }
        Ok(Ok(()))
    }

    async fn release_attempts(&self, keys: &[(&str, ThrottleRule, bool)], now_ms: i64) -> Result<(), AuthError> {
        if keys.len() < 2 {
            return default_release_attempts(self, keys, now_ms).await;
        }
        let params: Vec<String> = (1..=keys.len()).map(|i| format!("${i}")).collect();
        let clear: Vec<&String> = keys.iter().zip(&params).filter(|((_, _, c), _)| *c).map(|(_, p)| p).collect();
        let reset = if clear.is_empty() {
            String::new()
        } else {
            let list = clear.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", ");
            format!(
                ", failures = CASE WHEN key IN ({list}) THEN 0 ELSE failures END, \
                 locked_until = CASE WHEN key IN ({list}) THEN 0 ELSE locked_until END"
            )
        };
        let sql = format!(
            "UPDATE login_throttle SET inflight = CASE WHEN inflight > 0 THEN inflight - 1 ELSE 0 END{reset} \
             WHERE {}",
            self.key_filter(&params)
        );
        let mut q = sqlx::query(&sql);
        for (key, _, _) in keys {
            q = q.bind(*key);
        }
        q.execute(self.db.pool()).await?;
        Ok(())
    }

    async fn replace_password_hash(&self, id: UserId, old: &str, new: &str, now_ms: i64) -> Result<bool, AuthError> {
        let n =
            sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3 AND password_hash = $4")
                .bind(new)
                .bind(now_ms)
                .bind(id.to_string())
                .bind(old)
                .execute(self.db.pool())
                .await?
                .rows_affected();
        Ok(n == 1)
    }

    async fn count_active_sessions(&self, now_ms: i64) -> Result<i64, AuthError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM sessions WHERE revoked_at IS NULL AND expires_at > $1")
            .bind(now_ms)
            .fetch_one(self.db.pool())
            .await?)
    }

    async fn throttle_state(&self, key: &str) -> Result<Option<(i64, i64)>, AuthError> {
        let row = sqlx::query("SELECT failures, locked_until FROM login_throttle WHERE key = $1")
            .bind(key)
            .fetch_optional(self.db.pool())
            .await?;
        row.map(|r| Ok((r.try_get("failures")?, r.try_get("locked_until")?))).transpose()
    }

    async fn clear_throttle(&self, key: &str, now_ms: i64) -> Result<bool, AuthError> {
        let locked = self.throttle_state(key).await?.is_some_and(|(_, until)| until > now_ms);
        sqlx::query("UPDATE login_throttle SET failures = 0, locked_until = 0 WHERE key = $1")
            .bind(key)
            .execute(self.db.pool())
            .await?;
        Ok(locked)
    }

    async fn set_disabled(&self, id: UserId, at: Option<i64>) -> Result<bool, AuthError> {
        let mut tx = self.db.pool().begin().await?;
        let uid = id.to_string();
        let n = match at {
            Some(at) => {
                sqlx::query("UPDATE users SET disabled_at = $1, updated_at = $1 WHERE id = $2 AND disabled_at IS NULL")
                    .bind(at)
                    .bind(&uid)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
            }
            None => sqlx::query("UPDATE users SET disabled_at = NULL WHERE id = $1 AND disabled_at IS NOT NULL")
                .bind(&uid)
                .execute(&mut *tx)
                .await?
                .rows_affected(),
        };
        if let Some(at) = at {
            sqlx::query(
                "UPDATE sessions SET revoked_at = $1, revoke_reason = 'account_disabled' WHERE user_id = $2 AND revoked_at IS NULL",
            )
            .bind(at)
            .bind(&uid)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(n > 0)
    }

    async fn note_sign_in(&self, id: UserId, at_ms: i64) -> Result<(), AuthError> {
        sqlx::query("UPDATE users SET last_sign_in_at = $1 WHERE id = $2")
            .bind(at_ms)
            .bind(id.to_string())
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    async fn list_users(&self, q: &UserQuery) -> Result<Vec<UserRecord>, AuthError> {
        let mut sql = format!("SELECT {USER_COLS} FROM users WHERE 1 = 1");
        let mut binds: Vec<String> = Vec::new();
        if let Some(p) = q.email_prefix.as_deref().filter(|p| !p.is_empty()) {
            // The prefix's own `%`, `_` and `!` match themselves only (`!` escapes: a backslash
            // would depend on Postgres's standard_conforming_strings).
            let escaped: String = p
                .to_lowercase()
                .chars()
                .flat_map(|c| if matches!(c, '%' | '_' | '!') { vec!['!', c] } else { vec![c] })
                .collect();
            binds.push(format!("{escaped}%"));
            sql.push_str(&format!(" AND email LIKE ${} ESCAPE '!'", binds.len()));
        }
        if let Some(after) = &q.after_email {
            binds.push(after.clone());
            sql.push_str(&format!(" AND email > ${}", binds.len()));
        }
        match q.disabled {
            Some(true) => sql.push_str(" AND disabled_at IS NOT NULL"),
            Some(false) => sql.push_str(" AND disabled_at IS NULL"),
            None => {}
        }
        sql.push_str(&format!(" ORDER BY email LIMIT {}", q.limit.clamp(1, 1001)));
        let mut query = sqlx::query(&sql);
        for b in &binds {
            query = query.bind(b);
        }
        let rows = query.fetch_all(self.db.pool()).await?;
        rows.iter().map(user_row).collect()
    }

    async fn prune(&self, before_ms: i64) -> Result<u64, AuthError> {
        let mut tx = self.db.pool().begin().await?;
        let ended = "SELECT id FROM sessions WHERE expires_at < $1 OR revoked_at < $1";
        sqlx::query(&format!("DELETE FROM refresh_tokens WHERE session_id IN ({ended})"))
            .bind(before_ms)
            .execute(&mut *tx)
            .await?;
        let n = sqlx::query("DELETE FROM sessions WHERE expires_at < $1 OR revoked_at < $1")
            .bind(before_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM login_throttle WHERE locked_until < $1 AND window_start < $1")
            .bind(before_ms)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM oauth_pending WHERE expires_at < $1").bind(before_ms).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM mfa_challenges WHERE expires_at < $1").bind(before_ms).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(n)
    }
}
