//! Account lifecycle events and their durable delivery (a transactional outbox).
//!
//! When an account is created or deleted, other parts of Fafnir must follow: RBAC grants the
//! `member` role, the profile store creates an empty profile, and on deletion both forget the
//! user. In microservice mode those parts live in other processes with their own databases, and
//! one of them may be down. So the producer writes one outbox row per subscriber *in the same
//! transaction* as the account change; a dispatcher delivers rows in order, per subscriber, until
//! each is acknowledged, backing off on failure. Handlers are idempotent, so a row delivered
//! twice (by two instances, or after a crash between delivery and acknowledgement) is harmless.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::{Any, Row, Transaction};
use tokio::sync::Notify;

use crate::clock::SharedClock;
use crate::db::Db;
use crate::error::CoreError;
use crate::id::UserId;

/// Something that happened to an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AccountEvent {
    UserCreated { user_id: UserId, display_name: Option<String> },
    UserDeleted { user_id: UserId },
}

/// A failed delivery; the row is retried later.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HandlerError(pub String);

/// A subscriber to account events. Must be idempotent: the same event may arrive twice.
#[async_trait::async_trait]
pub trait AccountEventHandler: Send + Sync {
    /// Stable name, stored in the outbox rows addressed to this subscriber.
    fn name(&self) -> &str;
    async fn handle(&self, event: &AccountEvent) -> Result<(), HandlerError>;
}

/// Retry schedule: 1 s, 2 s, 4 s … capped at 5 minutes.
fn backoff(attempts: i64) -> Duration {
    let exp = u32::try_from(attempts.clamp(0, 9)).unwrap_or(9);
    Duration::from_secs(1u64 << exp).min(Duration::from_secs(300))
}

/// The outbox: enqueue in the producer's transaction, deliver to the registered handlers.
pub struct Outbox {
    db: Db,
    clock: SharedClock,
    handlers: Vec<Arc<dyn AccountEventHandler>>,
    wake: Notify,
    // One delivery pass at a time per instance: concurrent callers would only deliver the same
    // rows twice.
    pass: tokio::sync::Mutex<()>,
    /// The last failure reported per subscriber: a failure that repeats on every retry (a
    /// service down, a configuration that disagrees) is logged at warn once per cause, and at
    /// debug afterwards.
    last_failure: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

impl fmt::Debug for Outbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.handlers.iter().map(|h| h.name()).collect();
        f.debug_struct("Outbox").field("subscribers", &names).finish_non_exhaustive()
    }
}

impl Outbox {
    pub fn new(db: Db, clock: SharedClock, handlers: Vec<Arc<dyn AccountEventHandler>>) -> Self {
        Self {
            db,
            clock,
            handlers,
            wake: Notify::new(),
            pass: tokio::sync::Mutex::new(()),
            last_failure: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    pub fn subscribers(&self) -> impl Iterator<Item = &str> {
        self.handlers.iter().map(|h| h.name())
    }

    /// Records `event` for every subscriber, inside the caller's transaction: the event exists
    /// if and only if the change that caused it was committed.
    pub async fn enqueue(&self, tx: &mut Transaction<'static, Any>, event: &AccountEvent) -> Result<(), CoreError> {
        let payload =
            serde_json::to_string(event).map_err(|e| CoreError::Corrupt(format!("event does not serialise: {e}")))?;
        let now = self.clock.now_ms();
        for h in &self.handlers {
            sqlx::query(
                "INSERT INTO outbox (subscriber, payload, created_at, attempts, next_attempt_at) \
                 VALUES ($1, $2, $3, 0, $3)",
            )
            .bind(h.name())
            .bind(&payload)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }

    /// Whether `error` is new for `subscriber` (then it is remembered).
    fn first_failure(&self, subscriber: &str, error: &str) -> bool {
        let mut last = self.last_failure.lock().unwrap_or_else(|p| p.into_inner());
        if last.get(subscriber).map(String::as_str) == Some(error) {
            return false;
        }
        last.insert(subscriber.to_owned(), error.to_owned());
        true
    }

    fn recovered(&self, subscriber: &str) {
        let mut last = self.last_failure.lock().unwrap_or_else(|p| p.into_inner());
        if last.remove(subscriber).is_some() {
            tracing::info!(subscriber = %subscriber, "event delivery recovered");
        }
    }

    /// Asks the background dispatcher to run now (after a commit that enqueued events).
    pub fn notify(&self) {
        self.wake.notify_one();
    }

    /// Delivers every due row once, in id order per subscriber; a subscriber that fails is
    /// skipped for the rest of this pass so that its events are never delivered out of order.
    /// Returns how many rows were acknowledged.
    pub async fn deliver_pending(&self) -> Result<usize, CoreError> {
        let _pass = self.pass.lock().await;
        let now = self.clock.now_ms();
        // Per subscriber, so that one that is down cannot starve the others; and not only the
        // due rows: an earlier row still backing off must hold back later rows of the same
        // subscriber, or a deletion could overtake the creation it follows.
        let mut rows = Vec::new();
        for h in &self.handlers {
            rows.extend(
                sqlx::query(
                    "SELECT id, subscriber, payload, attempts, next_attempt_at FROM outbox \
                     WHERE subscriber = $1 AND delivered_at IS NULL ORDER BY id LIMIT 200",
                )
                .bind(h.name())
                .fetch_all(self.db.pool())
                .await?,
            );
        }
        let mut blocked: HashSet<String> = HashSet::new();
        let mut delivered = 0;
        for row in rows {
            let id: i64 = row.try_get("id")?;
            let subscriber: String = row.try_get("subscriber")?;
            if blocked.contains(&subscriber) {
                continue;
            }
            let due: i64 = row.try_get("next_attempt_at")?;
            if due > now {
                blocked.insert(subscriber);
                continue;
            }
            let payload: String = row.try_get("payload")?;
            let attempts: i64 = row.try_get("attempts")?;
            let Some(handler) = self.handlers.iter().find(|h| h.name() == subscriber) else {
                // A subscriber this instance does not know (another deployment's); leave it.
                blocked.insert(subscriber);
                continue;
            };
            let result = match serde_json::from_str::<AccountEvent>(&payload) {
                Ok(event) => handler.handle(&event).await,
                Err(e) => Err(HandlerError(format!("unreadable event: {e}"))),
            };
            match result {
                Ok(()) => {
                    self.recovered(&subscriber);
                    sqlx::query("UPDATE outbox SET delivered_at = $1 WHERE id = $2")
                        .bind(self.clock.now_ms())
                        .bind(id)
                        .execute(self.db.pool())
                        .await?;
                    delivered += 1;
                }
                Err(e) => {
                    if self.first_failure(&subscriber, &e.0) {
                        tracing::warn!(subscriber = %subscriber, event_id = id, attempts, error = %e,
                            "event delivery failed; will retry (repeats of this error are logged at debug)");
                    } else {
                        tracing::debug!(subscriber = %subscriber, event_id = id, attempts, error = %e,
                            "event delivery failed again; will retry");
                    }
                    let next =
                        self.clock.now_ms() + i64::try_from(backoff(attempts).as_millis()).unwrap_or(i64::MAX / 2);
                    sqlx::query(
                        "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $1, \
                         last_error = $2 WHERE id = $3",
                    )
                    .bind(next)
                    .bind(e.0.chars().take(500).collect::<String>())
                    .bind(id)
                    .execute(self.db.pool())
                    .await?;
                    blocked.insert(subscriber);
                }
            }
        }
        Ok(delivered)
    }

    /// How many rows still wait for delivery (for metrics and tests).
    pub async fn pending(&self) -> Result<i64, CoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL")
            .fetch_one(self.db.pool())
            .await?;
        Ok(n)
    }

    /// Runs the dispatcher until the outbox is dropped: on every `notify` and every `every`.
    pub fn spawn_dispatcher(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        spawn_dispatch(self, every)
    }
}

#[async_trait::async_trait]
impl Dispatch for Outbox {
    const NAME: &'static str = "outbox";

    async fn pass(&self) -> Result<(), CoreError> {
        self.deliver_pending().await.map(drop)
    }

    fn wake(&self) -> &Notify {
        &self.wake
    }
}

/// Something that delivers what is pending in passes (the account-event outbox, the mail
/// outbox): run by [`spawn_dispatch`].
#[async_trait::async_trait]
pub trait Dispatch: Send + Sync + 'static {
    /// What the log calls it when a pass fails.
    const NAME: &'static str;
    /// One pass over what is due.
    async fn pass(&self) -> Result<(), CoreError>;
    /// Notified when something new is due (a pass then runs at once).
    fn wake(&self) -> &Notify;
}

/// Runs `d`'s passes until it is dropped: at once, on every wake-up, and every `every`.
pub fn spawn_dispatch<D: Dispatch>(d: &Arc<D>, every: Duration) -> tokio::task::JoinHandle<()> {
    let weak = Arc::downgrade(d);
    tokio::spawn(async move {
        loop {
            let Some(d) = weak.upgrade() else { return };
            if let Err(e) = d.pass().await {
                tracing::warn!(error = %e, "{} pass failed", D::NAME);
            }
            // A notify during the pass is not lost: Notify keeps one permit.
            let _ = tokio::time::timeout(every, d.wake().notified()).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(backoff(0), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(8));
        assert_eq!(backoff(50), Duration::from_secs(300));
        assert_eq!(backoff(-1), Duration::from_secs(1));
    }

    /// A failure that repeats on every retry is reported once per distinct cause: again only
    /// when the error changes, or after a recovery.
    #[tokio::test]
    async fn repeated_failures_are_reported_once_per_cause() {
        let t = crate::testing::TestDb::sqlite().await;
        let outbox = Outbox::new(t.db.clone(), Arc::new(crate::SystemClock), Vec::new());
        assert!(outbox.first_failure("users", "wrong issuer `a` vs `b`"));
        assert!(!outbox.first_failure("users", "wrong issuer `a` vs `b`"), "the same cause: not again");
        assert!(outbox.first_failure("rbac", "wrong issuer `a` vs `b`"), "another subscriber: its own");
        assert!(outbox.first_failure("users", "connection refused"), "a new cause: reported");
        outbox.recovered("users");
        assert!(outbox.first_failure("users", "connection refused"), "after a recovery: reported again");
        t.cleanup().await;
    }
}
