//! Batch loaders: one call to a service for many keys of one request.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, Loader};
use fafnir_core::{RoleDirectory, UserId, MAX_ROLES_BATCH};

use crate::gateway::errors::{self, GqlError};

use super::context::*;

/// The per-request batch loader of roles (it carries the caller's token).
pub fn roles_loader(services: &Services, info: &RequestInfo) -> DataLoader<RolesLoader> {
    DataLoader::new(RolesLoader { roles: services.roles.clone(), bearer: info.token.clone() }, tokio::spawn)
}

/// Roles of many users in one call to the role directory.
pub struct RolesLoader {
    roles: Arc<dyn RoleDirectory>,
    bearer: Option<String>,
}

impl std::fmt::Debug for RolesLoader {
    // Never the caller's token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RolesLoader").field("roles", &self.roles).finish_non_exhaustive()
    }
}

impl Loader<UserId> for RolesLoader {
    type Value = Vec<String>;
    type Error = GqlError;

    async fn load(&self, keys: &[UserId]) -> Result<HashMap<UserId, Vec<String>>, GqlError> {
        let mut out = HashMap::with_capacity(keys.len());
        for chunk in keys.chunks(MAX_ROLES_BATCH) {
            let part = self
                .roles
                .roles_of(self.bearer.as_deref(), chunk)
                .await
                .map_err(|e| errors::service("the security service", e))?;
            out.extend(part);
        }
        Ok(out)
    }
}
