//! The audit log: an append-only record of security events (`audit_events`, both backends),
//! also written as structured log lines (target `fafnir::audit`) for a log pipeline.
//!
//! - Recording never holds up the request that causes it: the row is written by the log's
//!   writer task, after the log line, in the order the events were recorded. (An instance that
//!   dies in that millisecond loses the row, not the log line.)
//! - No secret is ever recorded: events carry types, ids, the client's address and user agent,
//!   and small details (a reason, a role name) chosen by the code, never by the caller.
//! - Rows are never updated; [`AuditLog::prune`] deletes those older than the retention.

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use sqlx::Row;

use crate::{CoreError, Db, SharedClock, UserId};

/// Who is calling, as far as the transport knows: for throttling, the session list and the
/// audit log.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    LoginSucceeded,
    LoginFailed,
    AccountLocked,
    Logout,
    LogoutAll,
    RefreshReuseDetected,
    PasswordChanged,
    PasswordReset,
    /// An administrator had a reset link mailed (the reset itself is `PasswordReset`).
    PasswordResetLinkSent,
    EmailVerified,
    EmailChanged,
    AccountDisabled,
    AccountEnabled,
    AccountUnlocked,
    AccountDeleted,
    SessionsRevoked,
    RoleGranted,
    RoleRevoked,
    KeyRotated,
    /// A signed-in caller was refused an administration operation (at most once a minute per
    /// caller).
    AccessDenied,
    /// Reserved for second factors (TOTP, passkeys) when they exist.
    SecondFactorAdded,
    SecondFactorRemoved,
    /// Reserved for social login's linked identities when they exist.
    IdentityLinked,
    IdentityUnlinked,
}

impl AuditKind {
    pub const ALL: [AuditKind; 24] = [
        AuditKind::LoginSucceeded,
        AuditKind::LoginFailed,
        AuditKind::AccountLocked,
        AuditKind::Logout,
        AuditKind::LogoutAll,
        AuditKind::RefreshReuseDetected,
        AuditKind::PasswordChanged,
        AuditKind::PasswordReset,
        AuditKind::PasswordResetLinkSent,
        AuditKind::EmailVerified,
        AuditKind::EmailChanged,
        AuditKind::AccountDisabled,
        AuditKind::AccountEnabled,
        AuditKind::AccountUnlocked,
        AuditKind::AccountDeleted,
        AuditKind::SessionsRevoked,
        AuditKind::RoleGranted,
        AuditKind::RoleRevoked,
        AuditKind::KeyRotated,
        AuditKind::AccessDenied,
        AuditKind::SecondFactorAdded,
        AuditKind::SecondFactorRemoved,
        AuditKind::IdentityLinked,
        AuditKind::IdentityUnlinked,
    ];

    /// The stored, snake_case name (`login_succeeded`).
    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::LoginSucceeded => "login_succeeded",
            AuditKind::LoginFailed => "login_failed",
            AuditKind::AccountLocked => "account_locked",
            AuditKind::Logout => "logout",
            AuditKind::LogoutAll => "logout_all",
            AuditKind::RefreshReuseDetected => "refresh_reuse_detected",
            AuditKind::PasswordChanged => "password_changed",
            AuditKind::PasswordReset => "password_reset",
            AuditKind::PasswordResetLinkSent => "password_reset_link_sent",
            AuditKind::EmailVerified => "email_verified",
            AuditKind::EmailChanged => "email_changed",
            AuditKind::AccountDisabled => "account_disabled",
            AuditKind::AccountEnabled => "account_enabled",
            AuditKind::AccountUnlocked => "account_unlocked",
            AuditKind::AccountDeleted => "account_deleted",
            AuditKind::SessionsRevoked => "sessions_revoked",
            AuditKind::RoleGranted => "role_granted",
            AuditKind::RoleRevoked => "role_revoked",
            AuditKind::KeyRotated => "key_rotated",
            AuditKind::AccessDenied => "access_denied",
            AuditKind::SecondFactorAdded => "second_factor_added",
            AuditKind::SecondFactorRemoved => "second_factor_removed",
            AuditKind::IdentityLinked => "identity_linked",
            AuditKind::IdentityUnlinked => "identity_unlinked",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for AuditKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One event to record.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub kind: AuditKind,
    /// Who did it (`None`: the system, or an unauthenticated caller).
    pub actor: Option<UserId>,
    /// Whose account it concerns.
    pub subject: Option<UserId>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// Small, code-chosen details (`{"reason": "invalid_credentials"}`, `{"role": "admin"}`).
    pub details: serde_json::Value,
    /// When it happened (ms); set by [`AuditLog::record`], else the time it is stored.
    pub at: Option<i64>,
}

impl AuditEvent {
    pub fn new(kind: AuditKind) -> Self {
        Self { kind, actor: None, subject: None, ip: None, user_agent: None, details: serde_json::json!({}), at: None }
    }

    #[must_use]
    pub fn actor(mut self, who: UserId) -> Self {
        self.actor = Some(who);
        self
    }

    #[must_use]
    pub fn subject(mut self, whose: UserId) -> Self {
        self.subject = Some(whose);
        self
    }

    /// By `who`, on their own account.
    #[must_use]
    pub fn own(self, who: UserId) -> Self {
        self.actor(who).subject(who)
    }

    #[must_use]
    pub fn client(mut self, c: &ClientInfo) -> Self {
        self.ip = c.ip.as_ref().map(|s| s.chars().take(64).collect());
        self.user_agent = c.user_agent.as_ref().map(|s| s.chars().take(256).collect());
        self
    }

    #[must_use]
    pub fn detail(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        if let Some(m) = self.details.as_object_mut() {
            m.insert(key.to_owned(), value.into());
        }
        self
    }
}

/// A recorded event, as listed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRecord {
    pub id: i64,
    pub at: chrono::DateTime<chrono::Utc>,
    #[serde(rename = "type")]
    pub kind: String,
    pub actor_id: Option<String>,
    pub subject_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub details: serde_json::Value,
}

/// What to list: every filter optional; newest first; `after` is the `id` of the last event of
/// the previous page.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub kinds: Vec<AuditKind>,
    pub actor: Option<UserId>,
    pub subject: Option<UserId>,
    pub first: usize,
    pub after: Option<i64>,
}

/// Largest page.
pub const MAX_PAGE: usize = 100;

/// A background task that stops when this is dropped.
#[derive(Debug)]
#[must_use = "dropping it stops the task"]
pub struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Writes in flight, for [`AuditLog::flush`].
#[derive(Debug, Default)]
struct InFlight {
    count: std::sync::atomic::AtomicUsize,
    done: tokio::sync::Notify,
}

/// The audit log of one database. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AuditLog {
    db: Db,
    clock: SharedClock,
    in_flight: std::sync::Arc<InFlight>,
    /// The writer task's queue, started on the first event.
    writer: std::sync::Arc<std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<AuditEvent>>>,
}

impl AuditLog {
    pub fn new(db: Db, clock: SharedClock) -> Self {
        Self { db, clock, in_flight: Default::default(), writer: Default::default() }
    }

    /// The writer: one task storing the events one after another, in the order recorded.
    fn writer(&self) -> &tokio::sync::mpsc::UnboundedSender<AuditEvent> {
        self.writer.get_or_init(|| {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<AuditEvent>();
            let this = AuditLog {
                db: self.db.clone(),
                clock: self.clock.clone(),
                in_flight: self.in_flight.clone(),
                writer: Default::default(),
            };
            tokio::spawn(async move {
                while let Some(event) = rx.recv().await {
                    if let Err(e) = this.store(&event).await {
                        tracing::warn!(error = %e, r#type = event.kind.as_str(), "an audit event was not stored");
                    }
                    this.in_flight.count.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                    this.in_flight.done.notify_waiters();
                }
            });
            tx
        })
    }

    /// Waits until every event recorded so far is stored (a command-line tool calls it before
    /// it exits).
    pub async fn flush(&self) {
        use std::sync::atomic::Ordering;
        loop {
            let done = self.in_flight.done.notified();
            if self.in_flight.count.load(Ordering::SeqCst) == 0 {
                return;
            }
            done.await;
        }
    }

    /// Logs `event` at once and stores it in the background.
    pub fn record(&self, mut event: AuditEvent) {
        event.at.get_or_insert_with(|| self.clock.now_ms());
        tracing::info!(
            target: "fafnir::audit",
            r#type = event.kind.as_str(),
            actor = event.actor.map(|u| u.to_string()),
            subject = event.subject.map(|u| u.to_string()),
            ip = event.ip.as_deref(),
            user_agent = event.user_agent.as_deref(),
            details = %event.details,
            "audit"
        );
        metrics::counter!("fafnir_audit_events_total", "type" => event.kind.as_str()).increment(1);
        if tokio::runtime::Handle::try_current().is_err() {
            tracing::warn!("an audit event outside a runtime was not stored");
            return;
        }
        use std::sync::atomic::Ordering;
        self.in_flight.count.fetch_add(1, Ordering::SeqCst);
        if let Err(e) = self.writer().send(event) {
            // The writer is gone (its runtime ended): store this one directly.
            self.in_flight.count.fetch_sub(1, Ordering::SeqCst);
            let (this, event) = (self.clone(), e.0);
            tokio::spawn(async move {
                if let Err(e) = this.store(&event).await {
                    tracing::warn!(error = %e, "an audit event was not stored");
                }
            });
        }
    }

    /// Stores `event` now (the CLI, which exits right after).
    pub async fn store(&self, event: &AuditEvent) -> Result<(), CoreError> {
        sqlx::query(
            "INSERT INTO audit_events (at, type, actor_id, subject_id, ip, user_agent, details) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(event.at.unwrap_or_else(|| self.clock.now_ms()))
        .bind(event.kind.as_str())
        .bind(event.actor.map(|u| u.to_string()))
        .bind(event.subject.map(|u| u.to_string()))
        .bind(event.ip.as_deref())
        .bind(event.user_agent.as_deref())
        .bind(event.details.to_string())
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    /// Events matching `q`, newest first, and the cursor of the next page.
    pub async fn list(&self, q: &AuditQuery) -> Result<(Vec<AuditRecord>, Option<i64>), CoreError> {
        let first = q.first.clamp(1, MAX_PAGE);
        let mut sql = String::from(
            "SELECT id, at, type, actor_id, subject_id, ip, user_agent, details FROM audit_events WHERE 1 = 1",
        );
        let mut binds: Vec<String> = Vec::new();
        let mut n = 0;
        let mut param = |binds: &mut Vec<String>, v: String| {
            n += 1;
            binds.push(v);
            format!("${n}")
        };
        if !q.kinds.is_empty() {
            let ps: Vec<String> = q.kinds.iter().map(|k| param(&mut binds, k.as_str().to_owned())).collect();
            sql.push_str(&format!(" AND type IN ({})", ps.join(", ")));
        }
        if let Some(a) = q.actor {
            sql.push_str(&format!(" AND actor_id = {}", param(&mut binds, a.to_string())));
        }
        if let Some(s) = q.subject {
            sql.push_str(&format!(" AND subject_id = {}", param(&mut binds, s.to_string())));
        }
        let after = q.after.map(|a| {
            n += 1;
            (format!(" AND id < ${n}"), a)
        });
        if let Some((clause, _)) = &after {
            sql.push_str(clause);
        }
        sql.push_str(&format!(" ORDER BY id DESC LIMIT {}", first + 1));
        let mut query = sqlx::query(&sql);
        for b in &binds {
            query = query.bind(b);
        }
        if let Some((_, a)) = after {
            query = query.bind(a);
        }
        let rows = query.fetch_all(self.db.pool()).await?;
        let mut out = Vec::with_capacity(rows.len().min(first));
        for row in rows.iter().take(first) {
            let details: String = row.try_get("details")?;
            out.push(AuditRecord {
                id: row.try_get("id")?,
                at: crate::clock::from_ms(row.try_get("at")?),
                kind: row.try_get("type")?,
                actor_id: row.try_get("actor_id")?,
                subject_id: row.try_get("subject_id")?,
                ip: row.try_get("ip")?,
                user_agent: row.try_get("user_agent")?,
                details: serde_json::from_str(&details).unwrap_or(serde_json::Value::Null),
            });
        }
        let next = (rows.len() > first).then(|| out.last().map(|r| r.id)).flatten();
        Ok((out, next))
    }

    /// Prunes every hour, for a process that has no other background pass (security-service),
    /// until the returned handle is dropped.
    pub fn spawn_prune(&self, retention: Duration) -> AbortOnDrop {
        let this = self.clone();
        AbortOnDrop(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(3600));
            loop {
                tick.tick().await;
                if let Err(e) = this.prune(retention).await {
                    tracing::warn!(error = %e, "pruning the audit log failed");
                }
            }
        }))
    }

    /// Deletes events older than `retention`; returns how many.
    pub async fn prune(&self, retention: Duration) -> Result<u64, CoreError> {
        let cutoff = self.clock.now_ms().saturating_sub(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX));
        Ok(sqlx::query("DELETE FROM audit_events WHERE at < $1")
            .bind(cutoff)
            .execute(self.db.pool())
            .await?
            .rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_have_stable_snake_case_names() {
        for k in AuditKind::ALL {
            assert_eq!(AuditKind::parse(k.as_str()), Some(k));
            assert_eq!(serde_json::to_value(k).unwrap_or_default(), serde_json::json!(k.as_str()));
        }
        assert_eq!(AuditKind::parse("nope"), None);
    }
}
