//! Durable mail: messages are written to `mail_outbox` in the same transaction as the change
//! that causes them (a reset request, an address change), then sent by a dispatcher through a
//! [`Mailer`]. Nothing is lost while the mail server is down.
//!
//! - Messages are independent: one that fails never holds back the others (unlike account
//!   events, mail has no order to keep).
//! - A transient failure is retried with backoff (1 s, 2 s, 4 s … at most 10 minutes apart);
//!   a message the server refuses for good, or still unsent after [`MAX_ATTEMPTS`] tries (about
//!   37 minutes), is dead: kept for the operator with its last error, counted in metrics.
//! - A failure of the settings (credentials refused, TLS unavailable) is retried like a
//!   transient one and ends the pass: one wrong password must not burn every queued message.
//! - Several instances may run dispatchers: a message is leased before it is sent, so one
//!   message is sent once (twice only if an instance dies between the server's acceptance and
//!   the acknowledgement, as with any SMTP client).
//! - The subject and bodies, which may carry a single-use link, are erased once a message is
//!   sent or dead.

use std::sync::Arc;
use std::time::Duration;

use fafnir_core::events::{spawn_dispatch, Dispatch};
use fafnir_core::{CoreError, Db, SharedClock};
use sqlx::{Any, Row, Transaction};
use tokio::sync::Notify;

use crate::mail::{Mail, MailError, Mailer};

/// Tries before a message is dead.
pub const MAX_ATTEMPTS: i64 = 12;

/// How long a dispatcher owns a message it is sending (then another may try).
const LEASE: Duration = Duration::from_secs(120);

/// Messages sent per pass, at most.
const BATCH: i64 = 50;

/// Retry schedule: 1 s, 2 s, 4 s … capped at 10 minutes.
fn backoff(attempts: i64) -> Duration {
    let exp = u32::try_from(attempts.clamp(0, 10)).unwrap_or(10);
    Duration::from_secs(1u64 << exp).min(Duration::from_secs(600))
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    pub sent: usize,
    /// Failed for now; retried later.
    pub retrying: usize,
    /// Refused for good, or out of tries.
    pub dead: usize,
}

/// The mail outbox and its dispatcher.
pub struct MailOutbox {
    db: Db,
    clock: SharedClock,
    mailer: Arc<dyn Mailer>,
    wake: Notify,
    pass: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for MailOutbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailOutbox").field("mailer", &self.mailer.describe()).finish_non_exhaustive()
    }
}

impl MailOutbox {
    pub fn new(db: Db, clock: SharedClock, mailer: Arc<dyn Mailer>) -> Self {
        Self { db, clock, mailer, wake: Notify::new(), pass: tokio::sync::Mutex::new(()) }
    }

    /// The mailer messages leave through.
    pub fn mailer(&self) -> &Arc<dyn Mailer> {
        &self.mailer
    }

    /// Records `mail` inside the caller's transaction: it will be sent if and only if the
    /// change that caused it commits. Call [`MailOutbox::notify`] after the commit.
    pub async fn enqueue(&self, tx: &mut Transaction<'static, Any>, mail: &Mail) -> Result<(), CoreError> {
        let now = self.clock.now_ms();
        sqlx::query(
            "INSERT INTO mail_outbox (recipient, subject, body_text, body_html, created_at, attempts, next_attempt_at) \
             VALUES ($1, $2, $3, $4, $5, 0, $5)",
        )
        .bind(mail.to.as_str())
        .bind(mail.one_line_subject())
        .bind(&mail.text)
        .bind(&mail.html)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Records `mail` on its own (a notice that goes with no other change) and wakes the
    /// dispatcher.
    pub async fn send_later(&self, mail: &Mail) -> Result<(), CoreError> {
        let mut tx = self.db.pool().begin().await?;
        self.enqueue(&mut tx, mail).await?;
        tx.commit().await?;
        self.notify();
        Ok(())
    }

    /// Asks the dispatcher to run now.
    pub fn notify(&self) {
        self.wake.notify_one();
    }

    /// Sends every due message once.
    pub async fn deliver_pending(&self) -> Result<Pass, CoreError> {
        let _pass = self.pass.lock().await;
        let now = self.clock.now_ms();
        let due = sqlx::query(
            "SELECT id, recipient, subject, body_text, body_html, attempts, next_attempt_at FROM mail_outbox \
             WHERE sent_at IS NULL AND dead_at IS NULL AND next_attempt_at <= $1 ORDER BY id LIMIT $2",
        )
        .bind(now)
        .bind(BATCH)
        .fetch_all(self.db.pool())
        .await?;
        let mut pass = Pass::default();
        for row in due {
            let id: i64 = row.try_get("id")?;
            let attempts: i64 = row.try_get::<i64, _>("attempts")? + 1;
            let was_due: i64 = row.try_get("next_attempt_at")?;
            // The lease, from the time it is taken (a pass may run for minutes): only the
            // dispatcher that moves `next_attempt_at` sends, and its later updates hold only
            // while the lease is still its own.
            let lease = self.clock.now_ms().saturating_add(ms(LEASE));
            let leased = sqlx::query(
                "UPDATE mail_outbox SET attempts = $1, next_attempt_at = $2 \
                 WHERE id = $3 AND next_attempt_at = $4 AND sent_at IS NULL AND dead_at IS NULL",
            )
            .bind(attempts)
            .bind(lease)
            .bind(id)
            .bind(was_due)
            .execute(self.db.pool())
            .await?
            .rows_affected();
            if leased == 0 {
                continue;
            }
            let outcome = if attempts > MAX_ATTEMPTS {
                // Leased again and again without an outcome (a dispatcher that dies while
                // sending it): given up, like any message out of tries.
                Err(MailError::Unavailable("no outcome after every try".into()))
            } else {
                let recipient: String = row.try_get("recipient")?;
                match fafnir_core::Email::parse(&recipient) {
                    Ok(to) => {
                        let mail = Mail {
                            to,
                            subject: row.try_get("subject")?,
                            text: row.try_get("body_text")?,
                            html: row.try_get("body_html")?,
                        };
                        self.mailer.send(&mail).await
                    }
                    Err(e) => Err(MailError::Rejected(format!("stored recipient is not an address: {e}"))),
                }
            };
            let done = self.clock.now_ms();
            let settings = outcome.as_ref().err().is_some_and(MailError::is_settings);
            let (sql, next, error, counted) = match &outcome {
                Ok(()) => (
                    "UPDATE mail_outbox SET sent_at = $1, subject = '', body_text = '', body_html = '', \
                     last_error = $2 WHERE id = $3 AND next_attempt_at = $4",
                    done,
                    None,
                    &mut pass.sent,
                ),
                Err(e) if (e.is_transient() || e.is_settings()) && attempts < MAX_ATTEMPTS => {
                    tracing::warn!(id, attempts, error = %e, "mail not sent; will retry");
                    metrics::counter!("fafnir_mail_failures_total", "outcome" => "retry").increment(1);
                    (
                        "UPDATE mail_outbox SET next_attempt_at = $1, last_error = $2 \
                         WHERE id = $3 AND next_attempt_at = $4",
                        done.saturating_add(ms(backoff(attempts - 1))),
                        Some(e.to_string()),
                        &mut pass.retrying,
                    )
                }
                Err(e) => {
                    tracing::error!(id, attempts, error = %e, "mail given up: dead");
                    metrics::counter!("fafnir_mail_failures_total", "outcome" => "dead").increment(1);
                    (
                        "UPDATE mail_outbox SET dead_at = $1, subject = '', body_text = '', body_html = '', \
                         last_error = $2 WHERE id = $3 AND next_attempt_at = $4",
                        done,
                        Some(e.to_string()),
                        &mut pass.dead,
                    )
                }
            };
            let updated = sqlx::query(sql)
                .bind(next)
                .bind(error.map(|e| e.chars().take(500).collect::<String>()))
                .bind(id)
                .bind(lease)
                .execute(self.db.pool())
                .await?
                .rows_affected();
            if updated == 0 {
                // Our lease ran out while sending and another dispatcher took the message.
                tracing::warn!(id, "mail outcome not recorded: the message's lease was lost");
            } else {
                *counted += 1;
                if outcome.is_ok() {
                    metrics::counter!("fafnir_mail_sent_total").increment(1);
                }
            }
            if settings {
                // Every other message would fail the same way: leave them for the next pass.
                break;
            }
        }
        Ok(pass)
    }

    /// Messages not yet sent and not dead (the backlog, for metrics and readiness).
    pub async fn backlog(&self) -> Result<i64, CoreError> {
        Ok(self.counts().await?.0)
    }

    /// Dead messages (for metrics and the operator).
    pub async fn dead(&self) -> Result<i64, CoreError> {
        Ok(self.counts().await?.1)
    }

    /// The backlog and the dead messages, in one query.
    pub async fn counts(&self) -> Result<(i64, i64), CoreError> {
        let row = sqlx::query(
            "SELECT COALESCE(SUM(CASE WHEN sent_at IS NULL AND dead_at IS NULL THEN 1 ELSE 0 END), 0) AS backlog, \
                    COALESCE(SUM(CASE WHEN dead_at IS NOT NULL THEN 1 ELSE 0 END), 0) AS dead FROM mail_outbox",
        )
        .fetch_one(self.db.pool())
        .await?;
        Ok((row.try_get("backlog")?, row.try_get("dead")?))
    }

    /// Deletes sent and dead messages older than `age`; returns how many.
    pub async fn prune(&self, age: Duration) -> Result<u64, CoreError> {
        let cutoff = self.clock.now_ms().saturating_sub(ms(age));
        Ok(sqlx::query("DELETE FROM mail_outbox WHERE sent_at < $1 OR dead_at < $1")
            .bind(cutoff)
            .execute(self.db.pool())
            .await?
            .rows_affected())
    }

    /// Runs the dispatcher until the outbox is dropped: on every `notify` and every `every`.
    pub fn spawn_dispatcher(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        spawn_dispatch(self, every)
    }
}

#[async_trait::async_trait]
impl Dispatch for MailOutbox {
    const NAME: &'static str = "mail outbox";

    async fn pass(&self) -> Result<(), CoreError> {
        self.deliver_pending().await.map(drop)
    }

    fn wake(&self) -> &Notify {
        &self.wake
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_gives_up_after_about_37_minutes() {
        assert_eq!(backoff(0), Duration::from_secs(1));
        assert_eq!(backoff(9), Duration::from_secs(512));
        assert_eq!(backoff(10), Duration::from_secs(600));
        let total: Duration = (0..MAX_ATTEMPTS - 1).map(backoff).sum();
        assert_eq!(total, Duration::from_secs(1023 + 600));
    }
}
