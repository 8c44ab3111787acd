//! The UserService server over [`Profiles`].

use std::sync::Arc;

use fafnir_core::token::Authenticator;
use fafnir_core::{PermissionChecker, UserId};
use fafnir_proto::server::{bearer, caller, missing_permission, observe, user_id, user_id_or};
use fafnir_proto::status::from_service_error;
use fafnir_proto::users::v1 as pb;
use fafnir_proto::users::v1::user_service_server::{UserService, UserServiceServer};
use tonic::{Request, Response, Status};

use super::convert::{profile_to_pb, status, update_from_pb};
use super::SERVICE;
use crate::Profiles;

/// The server.
#[derive(Debug, Clone)]
pub struct UsersGrpc {
    profiles: Profiles,
    checker: Arc<dyn PermissionChecker>,
    auth: Authenticator,
}

impl UsersGrpc {
    /// `checker` answers whether the caller may touch other users' profiles (in-process RBAC, or
    /// a client of security-service that forwards the caller's token).
    pub fn new(profiles: Profiles, checker: Arc<dyn PermissionChecker>, auth: Authenticator) -> Self {
        Self { profiles, checker, auth }
    }

    pub fn into_server(self) -> UserServiceServer<Self> {
        UserServiceServer::new(self)
    }

    async fn caller<T>(&self, req: &Request<T>) -> Result<UserId, Status> {
        caller(req.metadata(), &self.auth).await
    }

    /// The caller may act on `user`: themselves, or anyone with `permission`.
    async fn allow<T>(&self, req: &Request<T>, caller: UserId, user: UserId, permission: &str) -> Result<(), Status> {
        if user == caller {
            return Ok(());
        }
        self.require(req, caller, permission).await
    }

    /// The caller holds `permission` (asked of the permission checker, forwarding the token).
    async fn require<T>(&self, req: &Request<T>, caller: UserId, permission: &str) -> Result<(), Status> {
        let d = self.checker.check(bearer(req.metadata()), caller, permission).await.map_err(from_service_error)?;
        if d.allowed {
            Ok(())
        } else {
            Err(missing_permission(permission))
        }
    }
}

#[tonic::async_trait]
impl UserService for UsersGrpc {
    async fn get_profile(
        &self,
        req: Request<pb::GetProfileRequest>,
    ) -> Result<Response<pb::GetProfileResponse>, Status> {
        observe(SERVICE, "GetProfile", async {
            let caller = self.caller(&req).await?;
            let user = user_id_or("user_id", &req.get_ref().user_id, caller)?;
            self.allow(&req, caller, user, "users:read").await?;
            let p = self.profiles.get(user).await.map_err(status)?;
            Ok(Response::new(pb::GetProfileResponse { profile: Some(profile_to_pb(p)) }))
        })
        .await
    }

    async fn update_profile(
        &self,
        req: Request<pb::UpdateProfileRequest>,
    ) -> Result<Response<pb::UpdateProfileResponse>, Status> {
        observe(SERVICE, "UpdateProfile", async {
            let caller = self.caller(&req).await?;
            let user = user_id_or("user_id", &req.get_ref().user_id, caller)?;
            // One's own profile needs `profile:write` (every member has it); others', `users:write`.
            let needed = if user == caller { "profile:write" } else { "users:write" };
            self.require(&req, caller, needed).await?;
            let p = self.profiles.update(user, &update_from_pb(req.get_ref())).await.map_err(status)?;
            Ok(Response::new(pb::UpdateProfileResponse { profile: Some(profile_to_pb(p)) }))
        })
        .await
    }

    async fn delete_profile(
        &self,
        req: Request<pb::DeleteProfileRequest>,
    ) -> Result<Response<pb::DeleteProfileResponse>, Status> {
        observe(SERVICE, "DeleteProfile", async {
            let caller = self.caller(&req).await?;
            let user = user_id("user_id", &req.get_ref().user_id)?;
            // Always `users:write`, one's own included: an account's profile goes away with the
            // account (through auth-service), not on its own.
            self.require(&req, caller, "users:write").await?;
            self.profiles.delete(user).await.map_err(status)?;
            Ok(Response::new(pb::DeleteProfileResponse {}))
        })
        .await
    }

    async fn list_profiles(
        &self,
        req: Request<pb::ListProfilesRequest>,
    ) -> Result<Response<pb::ListProfilesResponse>, Status> {
        observe(SERVICE, "ListProfiles", async {
            let caller = self.caller(&req).await?;
            // Listing is never "one's own data".
            self.require(&req, caller, "users:read").await?;
            let r = req.get_ref();
            let first = (r.page_size != 0).then_some(r.page_size);
            let after = (!r.page_token.is_empty()).then_some(r.page_token.as_str());
            let page = self.profiles.list(first, after).await.map_err(status)?;
            Ok(Response::new(pb::ListProfilesResponse {
                profiles: page.items.into_iter().map(profile_to_pb).collect(),
                next_page_token: page.next_cursor.unwrap_or_default(),
            }))
        })
        .await
    }

    async fn handle_account_event(
        &self,
        req: Request<pb::HandleAccountEventRequest>,
    ) -> Result<Response<pb::HandleAccountEventResponse>, Status> {
        observe(SERVICE, "HandleAccountEvent", async {
            let handler = crate::ProfileEvents(self.profiles.clone());
            fafnir_proto::events::receive(req.metadata(), &self.auth, &req.get_ref().event_json, &handler).await?;
            Ok(Response::new(pb::HandleAccountEventResponse {}))
        })
        .await
    }
}
