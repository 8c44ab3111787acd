//! The SecurityService server over [`Rbac`].

use std::sync::Arc;

use fafnir_core::token::Authenticator;
use fafnir_core::UserId;
use fafnir_proto::security::v1 as pb;
use fafnir_proto::security::v1::security_service_server::{SecurityService, SecurityServiceServer};
use fafnir_proto::server::{caller, missing_permission, observe, user_id, user_id_or};
use tonic::{Request, Response, Status};

use super::convert::{code_to_pb, permissions, role_name, role_to_pb, status};
use super::{MAX_BATCH, SERVICE};
use crate::{NewRole, Rbac, RbacError};

/// The server.
#[derive(Debug, Clone)]
pub struct SecurityGrpc {
    rbac: Arc<Rbac>,
    auth: Authenticator,
}

impl SecurityGrpc {
    /// `auth` decides who calls: a genuine token of the issuer whose session is active.
    pub fn new(rbac: Arc<Rbac>, auth: Authenticator) -> Self {
        Self { rbac, auth }
    }

    pub fn into_server(self) -> SecurityServiceServer<Self> {
        SecurityServiceServer::new(self)
    }

    /// The authenticated caller, known to the snapshot if the store knows them.
    async fn caller<T>(&self, req: &Request<T>) -> Result<UserId, Status> {
        let caller = caller(req.metadata(), &self.auth).await?;
        self.rbac.learn(&[caller]).await.map_err(status)?;
        Ok(caller)
    }

    fn require(&self, caller: UserId, permission: &str) -> Result<(), Status> {
        if self.rbac.check_str(&caller, permission).allowed {
            Ok(())
        } else {
            Err(missing_permission(permission))
        }
    }

    /// The user a request is about: the caller, or someone else when the caller may read users.
    fn subject(&self, caller: UserId, user_id: &str) -> Result<UserId, Status> {
        let user = user_id_or("user_id", user_id, caller)?;
        if user != caller {
            self.require(caller, "users:read")?;
        }
        Ok(user)
    }
}

#[tonic::async_trait]
impl SecurityService for SecurityGrpc {
    async fn check_permission(
        &self,
        req: Request<pb::CheckPermissionRequest>,
    ) -> Result<Response<pb::CheckPermissionResponse>, Status> {
        observe(SERVICE, "CheckPermission", async {
            let caller = self.caller(&req).await?;
            let r = req.get_ref();
            let user = self.subject(caller, &r.user_id)?;
            self.rbac.learn(&[user]).await.map_err(status)?;
            let d = self.rbac.check_str(&user, &r.permission);
            Ok(Response::new(pb::CheckPermissionResponse {
                has_permission: d.allowed,
                code: code_to_pb(d.code).into(),
            }))
        })
        .await
    }

    async fn check_permissions(
        &self,
        req: Request<pb::CheckPermissionsRequest>,
    ) -> Result<Response<pb::CheckPermissionsResponse>, Status> {
        observe(SERVICE, "CheckPermissions", async {
            let caller = self.caller(&req).await?;
            let r = req.get_ref();
            if r.permissions.len() > MAX_BATCH {
                return Err(Status::invalid_argument(format!("at most {MAX_BATCH} permissions per call")));
            }
            let user = self.subject(caller, &r.user_id)?;
            self.rbac.learn(&[user]).await.map_err(status)?;
            let results = self
                .rbac
                .check_many(&user, &r.permissions)
                .into_iter()
                .zip(&r.permissions)
                .map(|(d, p)| pb::CheckPermissionResult {
                    permission: p.clone(),
                    has_permission: d.allowed,
                    code: code_to_pb(d.code).into(),
                })
                .collect();
            Ok(Response::new(pb::CheckPermissionsResponse { results }))
        })
        .await
    }

    async fn get_user_roles(
        &self,
        req: Request<pb::GetUserRolesRequest>,
    ) -> Result<Response<pb::GetUserRolesResponse>, Status> {
        observe(SERVICE, "GetUserRoles", async {
            let caller = self.caller(&req).await?;
            let user = self.subject(caller, &req.get_ref().user_id)?;
            self.rbac.learn(&[user]).await.map_err(status)?;
            let roles = self.rbac.user_roles(&user).ok_or_else(|| status(RbacError::UserNotFound(user)))?;
            let permissions = self.rbac.user_permissions(&user).unwrap_or_default();
            Ok(Response::new(pb::GetUserRolesResponse {
                roles: roles.iter().map(|r| r.to_string()).collect(),
                permissions: permissions.iter().map(|p| p.to_string()).collect(),
            }))
        })
        .await
    }

    async fn batch_get_user_roles(
        &self,
        req: Request<pb::BatchGetUserRolesRequest>,
    ) -> Result<Response<pb::BatchGetUserRolesResponse>, Status> {
        observe(SERVICE, "BatchGetUserRoles", async {
            let caller = self.caller(&req).await?;
            let ids = &req.get_ref().user_ids;
            if ids.len() > fafnir_core::MAX_ROLES_BATCH {
                return Err(Status::invalid_argument(format!(
                    "user_ids: at most {} per call",
                    fafnir_core::MAX_ROLES_BATCH
                )));
            }
            let users = ids.iter().map(|id| user_id("user_ids", id)).collect::<Result<Vec<_>, _>>()?;
            if users.iter().any(|u| *u != caller) {
                self.require(caller, "users:read")?;
            }
            self.rbac.learn(&users).await.map_err(status)?;
            let users = users
                .into_iter()
                .filter_map(|u| {
                    self.rbac.user_roles(&u).map(|roles| pb::UserRoles {
                        user_id: u.to_string(),
                        roles: roles.iter().map(|r| r.to_string()).collect(),
                    })
                })
                .collect();
            Ok(Response::new(pb::BatchGetUserRolesResponse { users }))
        })
        .await
    }

    async fn assign_role(
        &self,
        req: Request<pb::AssignRoleRequest>,
    ) -> Result<Response<pb::AssignRoleResponse>, Status> {
        observe(SERVICE, "AssignRole", async {
            let caller = self.caller(&req).await?;
            self.require(caller, "roles:manage")?;
            let r = req.get_ref();
            let user = user_id("user_id", &r.user_id)?;
            let changed = self.rbac.grant_by(Some(caller), user, &role_name("role", &r.role)?).await.map_err(status)?;
            Ok(Response::new(pb::AssignRoleResponse { changed }))
        })
        .await
    }

    async fn revoke_role(
        &self,
        req: Request<pb::RevokeRoleRequest>,
    ) -> Result<Response<pb::RevokeRoleResponse>, Status> {
        observe(SERVICE, "RevokeRole", async {
            let caller = self.caller(&req).await?;
            self.require(caller, "roles:manage")?;
            let r = req.get_ref();
            let user = user_id("user_id", &r.user_id)?;
            let changed =
                self.rbac.revoke_by(Some(caller), user, &role_name("role", &r.role)?).await.map_err(status)?;
            Ok(Response::new(pb::RevokeRoleResponse { changed }))
        })
        .await
    }

    async fn list_roles(&self, req: Request<pb::ListRolesRequest>) -> Result<Response<pb::ListRolesResponse>, Status> {
        observe(SERVICE, "ListRoles", async {
            self.caller(&req).await?;
            Ok(Response::new(pb::ListRolesResponse { roles: self.rbac.roles().into_iter().map(role_to_pb).collect() }))
        })
        .await
    }

    async fn create_role(
        &self,
        req: Request<pb::CreateRoleRequest>,
    ) -> Result<Response<pb::CreateRoleResponse>, Status> {
        observe(SERVICE, "CreateRole", async {
            let caller = self.caller(&req).await?;
            self.require(caller, "roles:manage")?;
            let r = req.get_ref();
            let name = role_name("name", &r.name)?;
            let inherits = r.inherits.iter().map(|n| role_name("inherits", n)).collect::<Result<Vec<_>, _>>()?;
            if r.description.chars().count() > 500 {
                return Err(Status::invalid_argument("description must be at most 500 characters"));
            }
            let role = NewRole {
                name: name.clone(),
                description: r.description.clone(),
                permissions: permissions("permissions", &r.permissions)?,
                inherits,
            };
            self.rbac.create_role(role).await.map_err(status)?;
            let role = self.rbac.role(&name).ok_or_else(|| Status::internal("role vanished after creation"))?;
            Ok(Response::new(pb::CreateRoleResponse { role: Some(role_to_pb(role)) }))
        })
        .await
    }

    async fn delete_role(
        &self,
        req: Request<pb::DeleteRoleRequest>,
    ) -> Result<Response<pb::DeleteRoleResponse>, Status> {
        observe(SERVICE, "DeleteRole", async {
            let caller = self.caller(&req).await?;
            self.require(caller, "roles:manage")?;
            self.rbac.delete_role(&role_name("name", &req.get_ref().name)?).await.map_err(status)?;
            Ok(Response::new(pb::DeleteRoleResponse {}))
        })
        .await
    }

    async fn set_role_permissions(
        &self,
        req: Request<pb::SetRolePermissionsRequest>,
    ) -> Result<Response<pb::SetRolePermissionsResponse>, Status> {
        observe(SERVICE, "SetRolePermissions", async {
            let caller = self.caller(&req).await?;
            self.require(caller, "roles:manage")?;
            let r = req.get_ref();
            let name = role_name("name", &r.name)?;
            self.rbac.set_role_permissions(&name, permissions("permissions", &r.permissions)?).await.map_err(status)?;
            let role = self.rbac.role(&name).ok_or_else(|| status(RbacError::RoleNotFound(name.clone())))?;
            Ok(Response::new(pb::SetRolePermissionsResponse { role: Some(role_to_pb(role)) }))
        })
        .await
    }

    async fn handle_account_event(
        &self,
        req: Request<pb::HandleAccountEventRequest>,
    ) -> Result<Response<pb::HandleAccountEventResponse>, Status> {
        observe(SERVICE, "HandleAccountEvent", async {
            let handler = crate::RbacEvents(self.rbac.clone());
            fafnir_proto::events::receive(req.metadata(), &self.auth, &req.get_ref().event_json, &handler).await?;
            Ok(Response::new(pb::HandleAccountEventResponse {}))
        })
        .await
    }
}
