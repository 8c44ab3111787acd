//! Time, behind a trait so that tests can move it: token expiry, grace windows and throttling
//! are all tested by advancing a [`ManualClock`], never by sleeping.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};

pub trait Clock: Send + Sync + fmt::Debug {
    fn now(&self) -> DateTime<Utc>;

    /// Milliseconds since the Unix epoch: the unit every table stores times in.
    fn now_ms(&self) -> i64 {
        self.now().timestamp_millis()
    }
}

/// The shared handle that every service holds.
pub type SharedClock = Arc<dyn Clock>;

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to.
#[derive(Debug)]
pub struct ManualClock {
    ms: AtomicI64,
}

impl ManualClock {
    /// Starts at the current system time.
    pub fn new() -> Arc<Self> {
        Arc::new(Self { ms: AtomicI64::new(Utc::now().timestamp_millis()) })
    }

    pub fn at(t: DateTime<Utc>) -> Arc<Self> {
        Arc::new(Self { ms: AtomicI64::new(t.timestamp_millis()) })
    }

    pub fn advance(&self, d: std::time::Duration) {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        self.ms.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        from_ms(self.ms.load(Ordering::SeqCst))
    }
}

/// Converts stored epoch milliseconds back to a timestamp (saturating on nonsense values).
pub fn from_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// A `std::time::Duration` as whole milliseconds, saturating.
pub fn dur_ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
