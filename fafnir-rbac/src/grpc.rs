//! `fafnir.security.v1.SecurityService` (feature `grpc`): the server over [`Rbac`], and the
//! clients other services use: [`RemoteSecurity`] (a [`PermissionChecker`]) and
//! [`SecurityEventSink`] (delivers account events from auth-service's outbox).

use std::collections::HashMap;
use std::sync::Arc;

use fafnir_core::events::{AccountEvent, AccountEventHandler, HandlerError};
use fafnir_core::token::Authenticator;
use fafnir_core::{Decision, Grants, Permission, PermissionChecker, RoleDirectory, RoleInfo, ServiceError, UserId};
use fafnir_proto::security::v1 as pb;
use fafnir_proto::security::v1::security_service_client::SecurityServiceClient;
use fafnir_proto::security::v1::security_service_server::{SecurityService, SecurityServiceServer};
pub use fafnir_proto::support::channel;
use fafnir_proto::support::{
    authenticate, authenticate_internal, observe, user_id_or, with_bearer, with_retries, ClientOptions, EventSigner,
};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::{CheckCode, NewRole, Rbac, RbacError, Role, RoleName};

/// Most permissions one `CheckPermissions` call may ask about.
pub const MAX_BATCH: usize = 100;

const SERVICE: &str = "fafnir.security.v1.SecurityService";

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
        let caller = authenticate(req.metadata(), &self.auth).await?.sub;
        self.rbac.learn(&[caller]).await.map_err(status)?;
        Ok(caller)
    }

    fn require(&self, caller: UserId, permission: &str) -> Result<(), Status> {
        if self.rbac.check_str(&caller, permission).allowed {
            Ok(())
        } else {
            Err(Status::permission_denied(format!("this needs the permission {permission}")))
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

fn role_name(field: &str, s: &str) -> Result<RoleName, Status> {
    RoleName::parse(s).map_err(|_| Status::invalid_argument(format!("{field}: {}", RbacError::InvalidRoleName)))
}

fn permissions(list: &[String]) -> Result<Vec<Permission>, Status> {
    list.iter()
        .map(|p| {
            Permission::parse(p).map_err(|e| {
                Status::invalid_argument(format!("permission `{}`: {e}", p.chars().take(80).collect::<String>()))
            })
        })
        .collect()
}

fn status(e: RbacError) -> Status {
    match e {
        RbacError::InvalidRoleName | RbacError::InvalidPermission(_) => Status::invalid_argument(e.to_string()),
        RbacError::RoleNotFound(_) | RbacError::UserNotFound(_) => Status::not_found(e.to_string()),
        RbacError::RoleExists(_) => Status::already_exists(e.to_string()),
        RbacError::BuiltinRole(_) | RbacError::Cycle(..) => Status::failed_precondition(e.to_string()),
        RbacError::Store(inner) => {
            tracing::error!(error = %inner, "RBAC store failed");
            Status::unavailable("the policy store is unavailable")
        }
    }
}

pub fn code_to_pb(c: CheckCode) -> pb::PermissionCode {
    match c {
        CheckCode::PermissionGranted => pb::PermissionCode::PermissionGranted,
        CheckCode::PermissionDenied => pb::PermissionCode::PermissionDenied,
        CheckCode::UserNotFound => pb::PermissionCode::UserNotFound,
        CheckCode::InvalidPermission => pb::PermissionCode::InvalidPermission,
    }
}

fn code_from_pb(c: i32) -> Option<CheckCode> {
    match pb::PermissionCode::try_from(c).ok()? {
        pb::PermissionCode::PermissionGranted => Some(CheckCode::PermissionGranted),
        pb::PermissionCode::PermissionDenied => Some(CheckCode::PermissionDenied),
        pb::PermissionCode::UserNotFound => Some(CheckCode::UserNotFound),
        pb::PermissionCode::InvalidPermission => Some(CheckCode::InvalidPermission),
        pb::PermissionCode::Unspecified => None,
    }
}

fn role_to_pb(r: Role) -> pb::Role {
    pb::Role {
        name: r.name.to_string(),
        description: r.description,
        permissions: r.permissions.iter().map(|p| p.to_string()).collect(),
        inherits: r.inherits.iter().map(|p| p.to_string()).collect(),
        builtin: r.builtin,
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
            let roles = self.rbac.user_roles(&user).ok_or_else(|| Status::not_found("user not found"))?;
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
            let users = ids
                .iter()
                .map(|id| UserId::parse(id).map_err(|_| Status::invalid_argument("user_ids must be UUIDs")))
                .collect::<Result<Vec<_>, _>>()?;
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
            let user = UserId::parse(&r.user_id).map_err(|_| Status::invalid_argument("user_id must be a UUID"))?;
            let changed = self.rbac.grant(user, &role_name("role", &r.role)?).await.map_err(status)?;
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
            let user = UserId::parse(&r.user_id).map_err(|_| Status::invalid_argument("user_id must be a UUID"))?;
            let changed = self.rbac.revoke(user, &role_name("role", &r.role)?).await.map_err(status)?;
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
                permissions: permissions(&r.permissions)?,
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
            self.rbac.set_role_permissions(&name, permissions(&r.permissions)?).await.map_err(status)?;
            let role = self.rbac.role(&name).ok_or_else(|| Status::not_found("role not found"))?;
            Ok(Response::new(pb::SetRolePermissionsResponse { role: Some(role_to_pb(role)) }))
        })
        .await
    }

    async fn handle_account_event(
        &self,
        req: Request<pb::HandleAccountEventRequest>,
    ) -> Result<Response<pb::HandleAccountEventResponse>, Status> {
        observe(SERVICE, "HandleAccountEvent", async {
            authenticate_internal(req.metadata(), &self.auth).await?;
            let event: AccountEvent = serde_json::from_str(&req.get_ref().event_json)
                .map_err(|e| Status::invalid_argument(format!("event_json: {e}")))?;
            crate::RbacEvents(self.rbac.clone()).handle(&event).await.map_err(|e| Status::unavailable(e.0))?;
            Ok(Response::new(pb::HandleAccountEventResponse {}))
        })
        .await
    }
}

fn service_error(s: Status) -> ServiceError {
    let s = fafnir_proto::codec::from_peer(s);
    match s.code() {
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => {
            ServiceError::Unavailable(format!("security-service: {}", s.message()))
        }
        tonic::Code::Unauthenticated => ServiceError::Unauthenticated,
        tonic::Code::PermissionDenied => ServiceError::Forbidden(s.message().to_owned()),
        tonic::Code::NotFound => ServiceError::NotFound(s.message().to_owned()),
        tonic::Code::InvalidArgument => ServiceError::InvalidArgument(s.message().to_owned()),
        _ => ServiceError::Internal(format!("security-service: {:?}: {}", s.code(), s.message())),
    }
}

/// The permission checker as a client of security-service: one shared HTTP/2 channel, a timeout
/// per call, retries for these idempotent reads.
#[derive(Debug, Clone)]
pub struct RemoteSecurity {
    client: SecurityServiceClient<Channel>,
    opts: ClientOptions,
}

impl RemoteSecurity {
    pub fn new(channel: Channel, opts: ClientOptions) -> Self {
        Self { client: SecurityServiceClient::new(channel), opts }
    }
}

#[async_trait::async_trait]
impl PermissionChecker for RemoteSecurity {
    async fn check(&self, bearer: Option<&str>, user: UserId, permission: &str) -> Result<Decision, ServiceError> {
        let r = with_retries(self.opts.attempts, || {
            let mut c = self.client.clone();
            let req = with_bearer(
                pb::CheckPermissionRequest { user_id: user.to_string(), permission: permission.to_owned() },
                bearer,
                self.opts.timeout,
            );
            async move { c.check_permission(req).await }
        })
        .await
        .map_err(service_error)?
        .into_inner();
        let code = code_from_pb(r.code).ok_or_else(|| ServiceError::Internal("unspecified permission code".into()))?;
        Ok(Decision { allowed: r.has_permission, code })
    }

    async fn check_many(
        &self,
        bearer: Option<&str>,
        user: UserId,
        permissions: &[String],
    ) -> Result<Vec<Decision>, ServiceError> {
        let r = with_retries(self.opts.attempts, || {
            let mut c = self.client.clone();
            let req = with_bearer(
                pb::CheckPermissionsRequest { user_id: user.to_string(), permissions: permissions.to_vec() },
                bearer,
                self.opts.timeout,
            );
            async move { c.check_permissions(req).await }
        })
        .await
        .map_err(service_error)?
        .into_inner();
        r.results
            .into_iter()
            .map(|x| {
                let code =
                    code_from_pb(x.code).ok_or_else(|| ServiceError::Internal("unspecified permission code".into()))?;
                Ok(Decision { allowed: x.has_permission, code })
            })
            .collect()
    }

    async fn grants(&self, bearer: Option<&str>, user: UserId) -> Result<Option<Grants>, ServiceError> {
        let r = with_retries(self.opts.attempts, || {
            let mut c = self.client.clone();
            let req = with_bearer(pb::GetUserRolesRequest { user_id: user.to_string() }, bearer, self.opts.timeout);
            async move { c.get_user_roles(req).await }
        })
        .await;
        match r {
            Ok(r) => {
                let r = r.into_inner();
                Ok(Some(Grants { roles: r.roles, permissions: r.permissions }))
            }
            Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
            Err(s) => Err(service_error(s)),
        }
    }
}

fn role_from_pb(r: pb::Role) -> RoleInfo {
    RoleInfo {
        name: r.name,
        description: r.description,
        permissions: r.permissions,
        inherits: r.inherits,
        builtin: r.builtin,
    }
}

/// The role directory as a client of security-service. Reads are retried; writes are not.
#[async_trait::async_trait]
impl RoleDirectory for RemoteSecurity {
    async fn roles(&self, bearer: Option<&str>) -> Result<Vec<RoleInfo>, ServiceError> {
        let r = with_retries(self.opts.attempts, || {
            let mut c = self.client.clone();
            let req = with_bearer(pb::ListRolesRequest {}, bearer, self.opts.timeout);
            async move { c.list_roles(req).await }
        })
        .await
        .map_err(service_error)?;
        Ok(r.into_inner().roles.into_iter().map(role_from_pb).collect())
    }

    async fn assign(&self, bearer: Option<&str>, user: UserId, role: &str) -> Result<bool, ServiceError> {
        let req = with_bearer(
            pb::AssignRoleRequest { user_id: user.to_string(), role: role.to_owned() },
            bearer,
            self.opts.timeout,
        );
        Ok(self.client.clone().assign_role(req).await.map_err(service_error)?.into_inner().changed)
    }

    async fn revoke(&self, bearer: Option<&str>, user: UserId, role: &str) -> Result<bool, ServiceError> {
        let req = with_bearer(
            pb::RevokeRoleRequest { user_id: user.to_string(), role: role.to_owned() },
            bearer,
            self.opts.timeout,
        );
        Ok(self.client.clone().revoke_role(req).await.map_err(service_error)?.into_inner().changed)
    }

    async fn roles_of(
        &self,
        bearer: Option<&str>,
        users: &[UserId],
    ) -> Result<HashMap<UserId, Vec<String>>, ServiceError> {
        let ids: Vec<String> = users.iter().map(|u| u.to_string()).collect();
        let r = with_retries(self.opts.attempts, || {
            let mut c = self.client.clone();
            let req = with_bearer(pb::BatchGetUserRolesRequest { user_ids: ids.clone() }, bearer, self.opts.timeout);
            async move { c.batch_get_user_roles(req).await }
        })
        .await
        .map_err(service_error)?;
        r.into_inner()
            .users
            .into_iter()
            .map(|u| {
                let id = UserId::parse(&u.user_id)
                    .map_err(|_| ServiceError::Internal("security-service answered a malformed user id".into()))?;
                Ok((id, u.roles))
            })
            .collect()
    }
}

/// Delivers account events to security-service (used by auth-service's outbox). Subscribes under
/// the same name as the in-process handler, so pending events survive a change of deployment.
#[derive(Debug, Clone)]
pub struct SecurityEventSink {
    client: SecurityServiceClient<Channel>,
    signer: EventSigner,
}

impl SecurityEventSink {
    pub fn new(channel: Channel, signer: EventSigner) -> Self {
        Self { client: SecurityServiceClient::new(channel), signer }
    }
}

#[async_trait::async_trait]
impl AccountEventHandler for SecurityEventSink {
    fn name(&self) -> &str {
        crate::SUBSCRIBER
    }

    async fn handle(&self, event: &AccountEvent) -> Result<(), HandlerError> {
        let req =
            self.signer.request(event, |json| pb::HandleAccountEventRequest { event_json: json, occurred_at: None })?;
        self.client
            .clone()
            .handle_account_event(req)
            .await
            .map_err(|s| HandlerError(format!("security-service: {}", s.message())))?;
        Ok(())
    }
}
