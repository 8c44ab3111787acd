//! Attempt throttling (logins, current-password checks, registrations): the rules, the keys,
//! and [`Claim`], the in-flight attempt that is always released.
//!
//! An attempt first *claims* a slot on its account key and its address key (refused while a key
//! is locked, or while as many attempts are in flight as failures remain before the lock), then
//! does its work (an Argon2 verification), then *ends* the claim with its outcome. The store
//! makes claiming atomic; this module makes ending certain: a request whose client disconnects
//! mid-hash is dropped by the server, and the claim it held is released in the background
//! instead of blocking the key until it goes stale.

use std::sync::Arc;
use std::time::Duration;

use fafnir_core::{Email, SharedClock};

use crate::error::AuthError;
use crate::service::ClientInfo;
use crate::store::{AuthStore, ThrottleRule};

/// Failed-login throttling, per account (e-mail) and per client address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleConfig {
    pub per_account: ThrottleRule,
    pub per_address: ThrottleRule,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        const MIN: i64 = 60_000;
        Self {
            // 5 failures in 15 minutes lock the account for 30 s, doubling up to 15 minutes.
            // Short, growing lockouts stop guessing without letting an attacker lock a victim
            // out for long.
            per_account: ThrottleRule {
                max_failures: 5,
                window_ms: 15 * MIN,
                base_lockout_ms: 30_000,
                max_lockout_ms: 15 * MIN,
            },
            // An address gets more room (offices share one behind NAT): 100 failures, then 1 min
            // doubling up to an hour. At most that many attempts may be in flight at once.
            per_address: ThrottleRule {
                max_failures: 100,
                window_ms: 15 * MIN,
                base_lockout_ms: MIN,
                max_lockout_ms: 60 * MIN,
            },
        }
    }
}

impl ThrottleConfig {
    /// Registration attempts: 5 an hour per e-mail address, 30 an hour per client address; then
    /// 5 minutes doubling up to an hour.
    pub fn registrations() -> Self {
        const MIN: i64 = 60_000;
        Self {
            per_account: ThrottleRule {
                max_failures: 5,
                window_ms: 60 * MIN,
                base_lockout_ms: 5 * MIN,
                max_lockout_ms: 60 * MIN,
            },
            per_address: ThrottleRule {
                max_failures: 30,
                window_ms: 60 * MIN,
                base_lockout_ms: 5 * MIN,
                max_lockout_ms: 60 * MIN,
            },
        }
    }

    pub(crate) fn rule(&self, scope: Scope) -> ThrottleRule {
        if scope == Scope::Account {
            self.per_account
        } else {
            self.per_address
        }
    }

    /// Requests that send mail (reset links, verification links, changes of address): 5 an
    /// hour per target address, 20 an hour per client address; then 15 minutes doubling up to
    /// an hour. Enough for a person who did not get the first mail; too few to flood an inbox.
    pub fn mail_requests() -> Self {
        const MIN: i64 = 60_000;
        Self {
            per_account: ThrottleRule {
                max_failures: 5,
                window_ms: 60 * MIN,
                base_lockout_ms: 15 * MIN,
                max_lockout_ms: 60 * MIN,
            },
            per_address: ThrottleRule {
                max_failures: 20,
                window_ms: 60 * MIN,
                base_lockout_ms: 15 * MIN,
                max_lockout_ms: 60 * MIN,
            },
        }
    }

    /// Never locks (for benchmarks and load tests of the work itself).
    pub fn unlimited() -> Self {
        let rule = ThrottleRule { max_failures: i64::MAX, window_ms: 60_000, base_lockout_ms: 0, max_lockout_ms: 0 };
        Self { per_account: rule, per_address: rule }
    }
}

/// The throttling key of a client address: IPv4 as is, IPv6 by its /64 (one subscriber usually
/// holds a whole /64, so single addresses would give an attacker 2^64 fresh keys). An
/// IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, what a dual-stack listener reports for IPv4
/// clients) is its IPv4 address: keyed by /64, every IPv4 client would share one key.
pub fn address_key(ip: &str) -> String {
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_some() => {
            v6.to_ipv4_mapped().map(|v4| v4.to_string()).unwrap_or_default()
        }
        Ok(std::net::IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Ok(v4) => v4.to_string(),
        Err(_) => ip.chars().take(64).collect(),
    }
}

/// How a throttled attempt ended.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Outcome {
    Failed,
    Succeeded,
    /// Ended without a verdict (an internal error): neither counted nor cleared.
    Released,
    /// The request was dropped before its verdict (the client went away). The account key is
    /// released uncounted — abandoned requests must not lock anyone's account — but the address
    /// key counts a failure: the hash still ran, and an address that keeps abandoning requests
    /// is throttled like one that keeps failing.
    Abandoned,
}

/// Which limit a key counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// The account (its e-mail address): locks protect the account from guessing.
    Account,
    /// The client address: bounds what one source may try across accounts.
    Address,
}

/// A throttle counter: its name in the store, and the limit it counts against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Key {
    pub(crate) name: String,
    pub(crate) scope: Scope,
}

/// The keys of an attempt: `{prefix}acct:{email}` (per account) and `{prefix}ip:{address}` (per
/// client address, see [`address_key`]).
pub(crate) fn keys(prefix: &str, email: Option<&Email>, client: &ClientInfo) -> Vec<Key> {
    let mut keys = Vec::with_capacity(2);
    if let Some(e) = email {
        keys.push(Key { name: format!("{prefix}acct:{e}"), scope: Scope::Account });
    }
    if let Some(ip) = &client.ip {
        keys.push(Key { name: format!("{prefix}ip:{}", address_key(ip)), scope: Scope::Address });
    }
    keys
}

/// Claimed attempt slots, held while an attempt runs. End them with [`Claim::finish`]; a claim
/// dropped unfinished (its request was cancelled) is ended in the background with the outcome
/// chosen at [`Claim::begin`]: for logins [`Outcome::Abandoned`] (the account key released
/// uncounted — the caller never saw a verdict, so the guess taught it nothing — the address key
/// counted), for registrations a failure like any attempt.
#[must_use = "a claim must be finished with its outcome"]
pub(crate) struct Claim {
    store: Arc<dyn AuthStore>,
    clock: SharedClock,
    keys: Vec<Key>,
    rules: ThrottleConfig,
    /// How the claim ends if it is dropped unfinished.
    if_abandoned: Outcome,
    /// Still to be released (false once `finish` has taken over).
    held: bool,
}

impl Claim {
    /// Claims an attempt on every key, or refuses with `RateLimited` and the real wait.
    ///
    /// Cancellation-safe: the claim is made by a task of its own, and handed over as a `Claim`
    /// through a channel. If the caller is gone by then (the request was dropped while the
    /// statement ran), the undelivered `Claim` is dropped and so released.
    pub(crate) async fn begin(
        store: Arc<dyn AuthStore>,
        clock: SharedClock,
        keys: Vec<Key>,
        rules: ThrottleConfig,
        if_abandoned: Outcome,
    ) -> Result<Self, AuthError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let now = clock.now_ms();
            let claims: Vec<(&str, ThrottleRule)> =
                keys.iter().map(|k| (k.name.as_str(), rules.rule(k.scope))).collect();
            let answer = match store.begin_attempts(&claims, now).await {
                Ok(Ok(())) => Ok(Claim { store: store.clone(), clock, keys, rules, if_abandoned, held: true }),
                Ok(Err(wait_ms)) => {
                    let ms = u64::try_from(wait_ms).unwrap_or(1000);
                    Err(AuthError::RateLimited { retry_after: Duration::from_millis(ms.div_ceil(1000) * 1000) })
                }
                Err(e) => Err(e),
            };
            // Err: nobody is waiting any more. No hash ran for this claim, so dropping it only
            // releases it (it does not count as an abandoned attempt).
            if let Err(Ok(mut undelivered)) = tx.send(answer) {
                undelivered.if_abandoned = Outcome::Released;
            }
        });
        rx.await.map_err(|_| AuthError::Config("the throttle task ended without an answer".into()))?
    }

    /// Ends the attempt. The release runs as its own task, so it completes even if the request
    /// is cancelled while it is being written.
    pub(crate) async fn finish(mut self, outcome: Outcome) -> Result<(), AuthError> {
        self.held = false;
        let (store, keys, rules, now) =
            (self.store.clone(), std::mem::take(&mut self.keys), self.rules, self.clock.now_ms());
        let task = tokio::spawn(async move { end(&*store, &keys, &rules, outcome, now).await });
        task.await.map_err(|e| AuthError::Config(format!("throttle task failed: {e}")))?
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if !self.held {
            return;
        }
        let (store, keys, rules, now) =
            (self.store.clone(), std::mem::take(&mut self.keys), self.rules, self.clock.now_ms());
        let outcome = self.if_abandoned;
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    if let Err(e) = end(&*store, &keys, &rules, outcome, now).await {
                        tracing::warn!(error = %e, "releasing an abandoned throttle claim failed; it expires on its own");
                    }
                });
            }
            Err(_) => tracing::warn!("abandoned throttle claim outside a runtime; it expires on its own"),
        }
    }
}

/// Releases claims with their outcome: a failure is counted on every key; a success clears the
/// account's failures, not the address's (or one working account would launder an address's
/// failures); a release counts nothing.
async fn end(
    store: &dyn AuthStore,
    keys: &[Key],
    rules: &ThrottleConfig,
    outcome: Outcome,
    now: i64,
) -> Result<(), AuthError> {
    // Per key: count a failure, or release (clearing the account's failures on a success; an
    // address's are never cleared, or one working account would launder its failures).
    let counted = |k: &Key| match outcome {
        Outcome::Failed => true,
        Outcome::Abandoned => k.scope == Scope::Address,
        Outcome::Succeeded | Outcome::Released => false,
    };
    let clear = |k: &Key| matches!(outcome, Outcome::Succeeded) && k.scope == Scope::Account;
    // Every key is ended even if one of them fails: a claim left behind blocks its key.
    let mut first_error = None;
    for key in keys.iter().filter(|k| counted(k)) {
        if let Err(e) = store.end_attempt(&key.name, rules.rule(key.scope), true, false, now).await {
            first_error.get_or_insert(e);
        }
    }
    let releases: Vec<(&str, ThrottleRule, bool)> =
        keys.iter().filter(|k| !counted(k)).map(|k| (k.name.as_str(), rules.rule(k.scope), clear(k))).collect();
    if !releases.is_empty() {
        if let Err(e) = store.release_attempts(&releases, now).await {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}
