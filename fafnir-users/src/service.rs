//! The profile service and the directory seam other services use.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use fafnir_core::UserId;

use crate::error::UsersError;
use crate::profile::{Profile, ProfileUpdate};
use crate::store::ProfileStore;

pub const DEFAULT_PAGE_SIZE: u32 = 20;
pub const MAX_PAGE_SIZE: u32 = 100;

/// One page of a listing. `next_cursor` is `None` on the last page.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// The profile service.
#[derive(Debug, Clone)]
pub struct Profiles {
    store: Arc<dyn ProfileStore>,
}

impl Profiles {
    pub fn new(store: Arc<dyn ProfileStore>) -> Self {
        Self { store }
    }

    pub async fn get(&self, user: UserId) -> Result<Profile, UsersError> {
        self.store.get(user).await?.ok_or(UsersError::NotFound)
    }

    /// Creates the empty profile of a new user (idempotent).
    pub async fn create(&self, user: UserId, display_name: Option<&str>) -> Result<(), UsersError> {
        let display_name = display_name.map(str::trim).filter(|s| !s.is_empty());
        let checked = ProfileUpdate { display_name: Some(display_name.map(String::from)), ..Default::default() }
            .validate()
            .map_err(UsersError::Validation)?;
        let display_name = checked.into_iter().next().and_then(|(_, v)| v);
        self.store.create(user, display_name.as_deref()).await
    }

    /// Applies a partial update; an invalid field refuses the whole update.
    pub async fn update(&self, user: UserId, update: &ProfileUpdate) -> Result<Profile, UsersError> {
        let columns = update.validate().map_err(UsersError::Validation)?;
        if columns.is_empty() {
            return self.get(user).await;
        }
        self.store.update(user, &columns).await?.ok_or(UsersError::NotFound)
    }

    pub async fn delete(&self, user: UserId) -> Result<(), UsersError> {
        if self.store.delete(user).await? {
            Ok(())
        } else {
            Err(UsersError::NotFound)
        }
    }

    /// A page of profiles in creation order. `after` is the `next_cursor` of the previous page.
    pub async fn list(&self, first: Option<u32>, after: Option<&str>) -> Result<Page<Profile>, UsersError> {
        let limit = first.unwrap_or(DEFAULT_PAGE_SIZE);
        if !(1..=MAX_PAGE_SIZE).contains(&limit) {
            return Err(UsersError::InvalidPageSize);
        }
        let after = after.map(decode_cursor).transpose()?;
        // One extra row tells whether another page follows.
        let mut items = self.store.list(after, limit + 1).await?;
        let more = items.len() > limit as usize;
        items.truncate(limit as usize);
        let next_cursor = if more { items.last().map(|p| encode_cursor(&p.user_id)) } else { None };
        Ok(Page { items, next_cursor })
    }
}

/// Profile reads and writes as other services use them: in-process ([`Profiles`]) or as a
/// client of user-service (`grpc::RemoteProfiles`, feature `grpc`). `bearer` is the caller's
/// access token, forwarded by the remote implementation and ignored in-process (where the
/// caller's permissions are checked before calling).
#[async_trait::async_trait]
pub trait ProfileDirectory: Send + Sync + std::fmt::Debug {
    async fn get(&self, bearer: Option<&str>, user: UserId) -> Result<Profile, UsersError>;
    async fn update(&self, bearer: Option<&str>, user: UserId, update: &ProfileUpdate) -> Result<Profile, UsersError>;
    async fn delete(&self, bearer: Option<&str>, user: UserId) -> Result<(), UsersError>;
    async fn list(
        &self,
        bearer: Option<&str>,
        first: Option<u32>,
        after: Option<&str>,
    ) -> Result<Page<Profile>, UsersError>;
}

#[async_trait::async_trait]
impl ProfileDirectory for Profiles {
    async fn get(&self, _bearer: Option<&str>, user: UserId) -> Result<Profile, UsersError> {
        Profiles::get(self, user).await
    }
    async fn update(&self, _bearer: Option<&str>, user: UserId, update: &ProfileUpdate) -> Result<Profile, UsersError> {
        Profiles::update(self, user, update).await
    }
    async fn delete(&self, _bearer: Option<&str>, user: UserId) -> Result<(), UsersError> {
        Profiles::delete(self, user).await
    }
    async fn list(
        &self,
        _bearer: Option<&str>,
        first: Option<u32>,
        after: Option<&str>,
    ) -> Result<Page<Profile>, UsersError> {
        Profiles::list(self, first, after).await
    }
}

/// Cursors are opaque to clients (base64 of `v1:<user id>`), so the format can change.
fn encode_cursor(id: &UserId) -> String {
    URL_SAFE_NO_PAD.encode(format!("v1:{id}"))
}

fn decode_cursor(c: &str) -> Result<UserId, UsersError> {
    if c.len() > 128 {
        return Err(UsersError::InvalidCursor);
    }
    let raw = URL_SAFE_NO_PAD.decode(c).map_err(|_| UsersError::InvalidCursor)?;
    let s = std::str::from_utf8(&raw).map_err(|_| UsersError::InvalidCursor)?;
    let id = s.strip_prefix("v1:").ok_or(UsersError::InvalidCursor)?;
    UserId::parse(id).map_err(|_| UsersError::InvalidCursor)
}
