//! A short-lived cache in front of a [`ProfileDirectory`], for the caller's own profile (what
//! the gateway's `me` reads on every request).

use std::sync::Arc;
use std::time::Duration;

use fafnir_core::cache::TtlCache;
use fafnir_core::{SharedClock, UserId};

use crate::error::UsersError;
use crate::profile::{Profile, ProfileUpdate};
use crate::service::{Page, ProfileDirectory};

/// Remembers profiles read through it for `ttl`, keyed by the caller's token *and* the user, so
/// an entry is only ever served to a caller the directory itself answered (a remote
/// user-service checks who may read whose profile). Writes through it forget the user at once;
/// a write elsewhere is seen within `ttl`, like the accounts `me` shows. Bounded: emptied when
/// full.
#[derive(Debug)]
pub struct CachingProfiles {
    inner: Arc<dyn ProfileDirectory>,
    clock: SharedClock,
    ttl_ms: i64,
    /// By token: the last profile read with it (for `me`, the caller's own), and whose.
    entries: TtlCache<Box<str>, (UserId, Profile)>,
}

impl CachingProfiles {
    pub fn new(inner: Arc<dyn ProfileDirectory>, clock: SharedClock, ttl: Duration, max: usize) -> Self {
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        Self { inner, clock, ttl_ms, entries: TtlCache::new(max) }
    }

    fn forget(&self, user: UserId) {
        self.entries.retain(|_, (u, _)| *u != user);
    }
}

#[async_trait::async_trait]
impl ProfileDirectory for CachingProfiles {
    async fn get(&self, bearer: Option<&str>, user: UserId) -> Result<Profile, UsersError> {
        let Some(token) = bearer else { return self.inner.get(None, user).await };
        let now = self.clock.now_ms();
        // Looked up by the token as it is (no allocation on a hit).
        if let Some((u, p)) = self.entries.get(token, now, self.ttl_ms) {
            if u == user {
                return Ok(p);
            }
        }
        let p = self.inner.get(bearer, user).await?;
        self.entries.put(token.into(), (user, p.clone()), now);
        Ok(p)
    }

    async fn update(&self, bearer: Option<&str>, user: UserId, update: &ProfileUpdate) -> Result<Profile, UsersError> {
        let r = self.inner.update(bearer, user, update).await;
        self.forget(user);
        r
    }

    async fn delete(&self, bearer: Option<&str>, user: UserId) -> Result<(), UsersError> {
        let r = self.inner.delete(bearer, user).await;
        self.forget(user);
        r
    }

    async fn list(
        &self,
        bearer: Option<&str>,
        first: Option<u32>,
        after: Option<&str>,
    ) -> Result<Page<Profile>, UsersError> {
        self.inner.list(bearer, first, after).await
    }
}
