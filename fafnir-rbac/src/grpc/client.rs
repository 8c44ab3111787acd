//! The clients other services use to reach security-service.

use std::collections::HashMap;

use fafnir_core::{Decision, Grants, PermissionChecker, RoleDirectory, RoleInfo, ServiceError, UserId};
use fafnir_proto::client::{Client, ClientOptions};
use fafnir_proto::events::{EventSigner, EventSink};
use fafnir_proto::security::v1 as pb;
use fafnir_proto::security::v1::security_service_client::SecurityServiceClient;
use tonic::transport::Channel;

use super::convert::{code_from_pb, role_from_pb, service_error};

/// The permission checker and role directory as a client of security-service: one shared
/// HTTP/2 channel, a deadline per call, retries for the idempotent reads (writes are sent
/// once).
#[derive(Debug, Clone)]
pub struct RemoteSecurity {
    client: Client<SecurityServiceClient<Channel>>,
}

impl RemoteSecurity {
    pub fn new(channel: Channel, opts: ClientOptions) -> Self {
        Self { client: Client::new(SecurityServiceClient::new(channel), opts) }
    }
}

#[async_trait::async_trait]
impl PermissionChecker for RemoteSecurity {
    async fn check(&self, bearer: Option<&str>, user: UserId, permission: &str) -> Result<Decision, ServiceError> {
        let msg = pb::CheckPermissionRequest { user_id: user.to_string(), permission: permission.to_owned() };
        let r = self
            .client
            .read(msg, bearer, |mut c, r| async move { c.check_permission(r).await })
            .await
            .map_err(service_error)?;
        Ok(Decision { allowed: r.has_permission, code: code_from_pb(r.code)? })
    }

    async fn check_many(
        &self,
        bearer: Option<&str>,
        user: UserId,
        permissions: &[String],
    ) -> Result<Vec<Decision>, ServiceError> {
        let msg = pb::CheckPermissionsRequest { user_id: user.to_string(), permissions: permissions.to_vec() };
        let r = self
            .client
            .read(msg, bearer, |mut c, r| async move { c.check_permissions(r).await })
            .await
            .map_err(service_error)?;
        r.results.into_iter().map(|x| Ok(Decision { allowed: x.has_permission, code: code_from_pb(x.code)? })).collect()
    }

    async fn grants(&self, bearer: Option<&str>, user: UserId) -> Result<Option<Grants>, ServiceError> {
        let msg = pb::GetUserRolesRequest { user_id: user.to_string() };
        match self.client.read(msg, bearer, |mut c, r| async move { c.get_user_roles(r).await }).await {
            Ok(r) => Ok(Some(Grants { roles: r.roles, permissions: r.permissions })),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
            Err(s) => Err(service_error(s)),
        }
    }
}

#[async_trait::async_trait]
impl RoleDirectory for RemoteSecurity {
    async fn roles(&self, bearer: Option<&str>) -> Result<Vec<RoleInfo>, ServiceError> {
        let r = self
            .client
            .read(pb::ListRolesRequest {}, bearer, |mut c, r| async move { c.list_roles(r).await })
            .await
            .map_err(service_error)?;
        Ok(r.roles.into_iter().map(role_from_pb).collect())
    }

    async fn assign(
        &self,
        bearer: Option<&str>,
        _actor: UserId,
        user: UserId,
        role: &str,
    ) -> Result<bool, ServiceError> {
        let msg = pb::AssignRoleRequest { user_id: user.to_string(), role: role.to_owned() };
        let r = self
            .client
            .write(msg, bearer, |mut c, r| async move { c.assign_role(r).await })
            .await
            .map_err(service_error)?;
        Ok(r.changed)
    }

    async fn revoke(
        &self,
        bearer: Option<&str>,
        _actor: UserId,
        user: UserId,
        role: &str,
    ) -> Result<bool, ServiceError> {
        let msg = pb::RevokeRoleRequest { user_id: user.to_string(), role: role.to_owned() };
        let r = self
            .client
            .write(msg, bearer, |mut c, r| async move { c.revoke_role(r).await })
            .await
            .map_err(service_error)?;
        Ok(r.changed)
    }

    async fn roles_of(
        &self,
        bearer: Option<&str>,
        users: &[UserId],
    ) -> Result<HashMap<UserId, Vec<String>>, ServiceError> {
        let msg = pb::BatchGetUserRolesRequest { user_ids: users.iter().map(|u| u.to_string()).collect() };
        let r = self
            .client
            .read(msg, bearer, |mut c, r| async move { c.batch_get_user_roles(r).await })
            .await
            .map_err(service_error)?;
        r.users
            .into_iter()
            .map(|u| {
                let id = UserId::parse(&u.user_id)
                    .map_err(|_| ServiceError::Internal("security-service answered a malformed user id".into()))?;
                Ok((id, u.roles))
            })
            .collect()
    }
}

/// Delivers account events to security-service.
pub type SecurityEventSink = EventSink<SecurityServiceClient<Channel>>;

/// The outbox subscriber that delivers account events to security-service, under the same name
/// as the in-process handler ([`crate::SUBSCRIBER`]).
pub fn security_event_sink(channel: Channel, signer: EventSigner) -> SecurityEventSink {
    EventSink::new(SecurityServiceClient::new(channel), signer, crate::SUBSCRIBER, "security-service", |mut c, r| {
        Box::pin(async move {
            let r = r.map(|event_json| pb::HandleAccountEventRequest { event_json, occurred_at: None });
            c.handle_account_event(r).await.map(drop)
        })
    })
}
