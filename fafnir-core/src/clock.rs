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

    /// Straight from the system time: a calendar date is never built (`now()` builds one, and
    /// cache checks ask for the time several times per request).
    fn now_ms(&self) -> i64 {
        match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            // Before 1970 (only a wrong system clock): rounded down, as chrono does.
            Err(before) => i64::try_from(before.duration().as_nanos().div_ceil(1_000_000)).map_or(i64::MIN, |ms| -ms),
        }
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

    fn ms(&self) -> i64 {
        self.ms.load(Ordering::SeqCst)
    }

    pub fn advance(&self, d: std::time::Duration) {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        self.ms.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        from_ms(self.ms())
    }

    fn now_ms(&self) -> i64 {
        self.ms()
    }
}

/// Converts stored epoch milliseconds back to a timestamp (saturating on nonsense values).
pub fn from_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Serialises a timestamp exactly as chrono's `Serialize` does (RFC 3339 with `Z`, and a
/// fraction of 0, 3, 6 or 9 digits, as many as it needs), written straight into a buffer (see
/// [`rfc3339_text`]): chrono goes through `fmt`, which serde_json then escapes one character
/// at a time, a cost every `GET /auth/me` paid. For `#[serde(serialize_with = …)]`.
pub fn serialize_rfc3339<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    use serde::Serialize;
    let mut buf = [0u8; 30];
    match rfc3339_text(t, &mut buf) {
        Some(text) => s.serialize_str(text),
        None => t.serialize(s),
    }
}

/// `t` as chrono's `Serialize` writes it (see [`serialize_rfc3339`]), written into `buf`: only
/// ASCII digits and separators, nothing a JSON string needs to escape. `None` for years outside
/// 0–9999 and for leap seconds, which are left to chrono.
pub fn rfc3339_text<'b>(t: &DateTime<Utc>, buf: &'b mut [u8; 30]) -> Option<&'b str> {
    use chrono::{Datelike, Timelike};
    // The fields of the UTC date and time, read once: each of `DateTime`'s own accessors
    // works out the local (here UTC) date and time again.
    let t_utc = t.naive_utc();
    let (year, nanos) = (t_utc.year(), t_utc.nanosecond());
    let year = u32::try_from(year).ok().filter(|y| *y <= 9999)?;
    if nanos >= 1_000_000_000 {
        return None;
    }
    let mut n = 0;
    // `v` as `digits` decimal digits, then `after` (separators and the final `Z`).
    let mut put = |v: u32, digits: u32, after: &[u8]| {
        for i in 0..digits {
            buf[n + i as usize] = b'0' + (v / 10u32.pow(digits - 1 - i) % 10) as u8;
        }
        n += digits as usize;
        buf[n..n + after.len()].copy_from_slice(after);
        n += after.len();
    };
    put(year, 4, b"-");
    put(t_utc.month(), 2, b"-");
    put(t_utc.day(), 2, b"T");
    put(t_utc.hour(), 2, b":");
    put(t_utc.minute(), 2, b":");
    let digits = match nanos {
        0 => 0,
        _ if nanos % 1_000_000 == 0 => 3,
        _ if nanos % 1_000 == 0 => 6,
        _ => 9,
    };
    if digits == 0 {
        put(t_utc.second(), 2, b"Z");
    } else {
        put(t_utc.second(), 2, b".");
        put(nanos / 10u32.pow(9 - digits), digits, b"Z");
    }
    // Only ASCII digits and separators were written.
    std::str::from_utf8(&buf[..n]).ok()
}

/// A `std::time::Duration` as whole milliseconds, saturating.
pub fn dur_ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_serialise_exactly_as_chrono_does() {
        #[derive(serde::Serialize)]
        struct Fast(#[serde(serialize_with = "serialize_rfc3339")] DateTime<Utc>);
        let base = Utc.with_ymd_and_hms(2026, 11, 29, 23, 5, 9).single().expect("a valid date");
        let mut cases = vec![
            base,
            Utc.with_ymd_and_hms(0, 1, 1, 0, 0, 0).single().expect("year 0"),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).single().expect("year 9999"),
            Utc.with_ymd_and_hms(10_000, 1, 1, 0, 0, 0).single().expect("year 10000"),
            Utc.with_ymd_and_hms(-1, 6, 15, 12, 0, 0).single().expect("year -1"),
            DateTime::<Utc>::MIN_UTC,
            DateTime::<Utc>::MAX_UTC,
        ];
        for nanos in [1, 7, 1_000, 120_000, 746_000_000, 999_999_999, 1_000_000, 5_000_000, 500_000_000] {
            cases.push(base + chrono::Duration::nanoseconds(nanos));
        }
        // Every millisecond of a few seconds, and a spread of whole timestamps.
        for ms in (0..3_000).chain((0..2_000).map(|i| i * 86_400_123 + 17)) {
            cases.push(from_ms(1_700_000_000_000 + ms));
            cases.push(from_ms(-ms * 1_000));
        }
        for t in cases {
            let fast = serde_json::to_string(&Fast(t)).expect("serialises");
            let chrono = serde_json::to_string(&t).expect("serialises");
            assert_eq!(fast, chrono, "{t:?}");
        }
    }

    #[test]
    fn the_system_clock_gives_the_same_milliseconds_both_ways() {
        let (a, b, c) =
            (SystemClock.now().timestamp_millis(), SystemClock.now_ms(), SystemClock.now().timestamp_millis());
        assert!(a <= b && b <= c, "{a} <= {b} <= {c}");
        let m = ManualClock::at(from_ms(1_700_000_000_123));
        assert_eq!(m.now_ms(), 1_700_000_000_123);
        m.advance(std::time::Duration::from_millis(5));
        assert_eq!((m.now_ms(), m.now().timestamp_millis()), (1_700_000_000_128, 1_700_000_000_128));
    }
}
