//! The one small-cache type of Fafnir: entries trusted for a while after they were stored
//! (verified tokens, active sessions, accounts, profiles).
//!
//! Read-mostly: a hit takes a shared lock (no writer, no wait), so the request threads of a
//! busy server do not queue behind each other on every request. Bounded: when full it is
//! emptied, and entries are re-learnt (one store query or one signature check each).

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// How many entries Fafnir's caches hold (verified tokens, sessions, accounts, profiles): a
/// few MB at most each.
pub const DEFAULT_CAPACITY: usize = 10_000;

/// A fast hasher (foldhash) for maps whose keys no outsider chooses: ids this process made or
/// checked, addresses, values verified before they are stored. Keys a client picks freely stay
/// on the standard library's SipHash, which resists chosen collisions.
pub type TrustedKeys = foldhash::fast::RandomState;

/// `S` hashes the keys: the standard library's SipHash by default; a faster hasher only where
/// no one outside can choose the keys (see [`TtlCache::with_hasher`]).
pub struct TtlCache<K, V, S = RandomState> {
    entries: RwLock<HashMap<K, (V, i64), S>>,
    max: usize,
}

/// Only the size: keys can be access tokens, values accounts or profiles.
impl<K, V, S> std::fmt::Debug for TtlCache<K, V, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.entries.read().map_or(0, |m| m.len());
        f.debug_struct("TtlCache").field("entries", &n).field("max", &self.max).finish()
    }
}

impl<K: Hash + Eq, V: Clone> TtlCache<K, V> {
    pub fn new(max: usize) -> Self {
        Self::with_hasher(max, RandomState::new())
    }
}

impl<K: Hash + Eq, V: Clone> TtlCache<K, V, TrustedKeys> {
    /// A cache whose keys no outsider chooses (see [`TrustedKeys`]): hashed with foldhash.
    pub fn trusted(max: usize) -> Self {
        Self::with_hasher(max, TrustedKeys::default())
    }
}

impl<K: Hash + Eq, V: Clone, S: BuildHasher> TtlCache<K, V, S> {
    /// A cache hashing its keys with `hasher`. A hasher that is fast but only weakly resistant
    /// to chosen collisions suits only keys that outsiders cannot choose: values this process
    /// made or checked before storing them (ids, tokens whose signature was verified).
    pub fn with_hasher(max: usize, hasher: S) -> Self {
        Self { entries: RwLock::new(HashMap::with_hasher(hasher)), max }
    }

    fn read(&self) -> RwLockReadGuard<'_, HashMap<K, (V, i64), S>> {
        self.entries.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<K, (V, i64), S>> {
        self.entries.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The value stored for `k` less than `ttl_ms` before `now_ms`.
    pub fn get<Q>(&self, k: &Q, now_ms: i64, ttl_ms: i64) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.read().get(k).filter(|(_, at)| now_ms.saturating_sub(*at) < ttl_ms).map(|(v, _)| v.clone())
    }

    pub fn put(&self, k: K, v: V, now_ms: i64) {
        let mut map = self.write();
        if map.len() >= self.max {
            map.clear();
        }
        map.insert(k, (v, now_ms));
    }

    /// For caches whose entries never go stale (bounded only): the entry, whatever its age.
    pub fn remembered<Q>(&self, k: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.read().get(k).map(|(v, _)| v.clone())
    }

    /// Stores an entry that never goes stale (see [`TtlCache::remembered`]).
    pub fn remember(&self, k: K, v: V) {
        self.put(k, v, 0);
    }

    pub fn forget<Q>(&self, k: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.write().remove(k);
    }

    pub fn retain(&self, keep: impl Fn(&K, &V) -> bool) {
        self.write().retain(|k, (v, _)| keep(k, v));
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_the_cache_stays_bounded() {
        let c: TtlCache<String, u32> = TtlCache::new(2);
        c.put("a".into(), 1, 1000);
        assert_eq!(c.get("a", 1500, 1000), Some(1));
        assert_eq!(c.get("a", 2000, 1000), None, "expired at the TTL");
        c.put("b".into(), 2, 1000);
        c.put("c".into(), 3, 1000); // full: emptied first
        assert_eq!(c.len(), 1);
        c.forget("c");
        assert!(c.is_empty());
        c.put("secret-token".into(), 1, 0);
        assert!(!format!("{c:?}").contains("secret-token"), "Debug never shows a key");
    }
}
