//! `fafnir.users.v1.UserService` (feature `grpc`): the server over [`Profiles`], and the clients
//! other services use: [`RemoteProfiles`] (a [`ProfileDirectory`]) and [`UsersEventSink`].

use std::sync::Arc;

use chrono::{DateTime, Utc};
use fafnir_core::events::{AccountEvent, AccountEventHandler, HandlerError};
use fafnir_core::token::Authenticator;
use fafnir_core::{PermissionChecker, ServiceError, UserId};
use fafnir_proto::support::{
    authenticate, authenticate_internal, bearer, observe, user_id_or, with_bearer, with_retries, ClientOptions,
    EventSigner,
};
use fafnir_proto::users::v1 as pb;
use fafnir_proto::users::v1::user_service_client::UserServiceClient;
use fafnir_proto::users::v1::user_service_server::{UserService, UserServiceServer};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::{Page, Profile, ProfileDirectory, ProfileUpdate, Profiles, UsersError};

const SERVICE: &str = "fafnir.users.v1.UserService";

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
        Ok(authenticate(req.metadata(), &self.auth).await?.sub)
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
        let d = self.checker.check(bearer(req.metadata()), caller, permission).await.map_err(|e| match e {
            ServiceError::Unavailable(m) => Status::unavailable(m),
            ServiceError::Unauthenticated => Status::unauthenticated("the access token is invalid or expired"),
            ServiceError::Forbidden(m) => Status::permission_denied(m),
            ServiceError::NotFound(m) => Status::not_found(m),
            ServiceError::InvalidArgument(m) => Status::invalid_argument(m),
            ServiceError::Internal(m) => {
                // Another service's internals stay in our log, not in the caller's answer.
                tracing::error!(error = %m, "permission check failed");
                Status::internal("internal error")
            }
        })?;
        if d.allowed {
            Ok(())
        } else {
            Err(Status::permission_denied(format!("this needs the permission {permission}")))
        }
    }
}

fn ts(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.timestamp(), nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0) }
}

fn from_ts(t: Option<prost_types::Timestamp>) -> DateTime<Utc> {
    t.and_then(|t| DateTime::<Utc>::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0))).unwrap_or_default()
}

fn profile_to_pb(p: Profile) -> pb::Profile {
    pb::Profile {
        user_id: p.user_id.to_string(),
        first_name: p.first_name.unwrap_or_default(),
        last_name: p.last_name.unwrap_or_default(),
        display_name: p.display_name.unwrap_or_default(),
        avatar_url: p.avatar_url.unwrap_or_default(),
        bio: p.bio.unwrap_or_default(),
        locale: p.locale.unwrap_or_default(),
        timezone: p.timezone.unwrap_or_default(),
        created_at: Some(ts(p.created_at)),
        updated_at: Some(ts(p.updated_at)),
    }
}

fn profile_from_pb(p: pb::Profile) -> Result<Profile, UsersError> {
    let some = |s: String| (!s.is_empty()).then_some(s);
    Ok(Profile {
        user_id: UserId::parse(&p.user_id)
            .map_err(|_| UsersError::Unavailable("bad user id from user-service".into()))?,
        first_name: some(p.first_name),
        last_name: some(p.last_name),
        display_name: some(p.display_name),
        avatar_url: some(p.avatar_url),
        bio: some(p.bio),
        locale: some(p.locale),
        timezone: some(p.timezone),
        created_at: from_ts(p.created_at),
        updated_at: from_ts(p.updated_at),
    })
}

fn status(e: UsersError) -> Status {
    match e {
        UsersError::NotFound => Status::not_found("profile not found"),
        UsersError::Validation(_) | UsersError::InvalidCursor | UsersError::InvalidPageSize => {
            Status::invalid_argument(e.to_string())
        }
        UsersError::Unauthenticated => Status::unauthenticated(e.to_string()),
        UsersError::Forbidden(m) => Status::permission_denied(m),
        UsersError::Unavailable(m) => Status::unavailable(m),
        UsersError::Store(inner) => {
            tracing::error!(error = %inner, "profile store failed");
            Status::unavailable("the profile store is unavailable")
        }
    }
}

fn update_from_pb(r: &pb::UpdateProfileRequest) -> ProfileUpdate {
    let f = |v: &Option<String>| v.clone().map(Some);
    ProfileUpdate {
        first_name: f(&r.first_name),
        last_name: f(&r.last_name),
        display_name: f(&r.display_name),
        avatar_url: f(&r.avatar_url),
        bio: f(&r.bio),
        locale: f(&r.locale),
        timezone: f(&r.timezone),
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
            let user = UserId::parse(&req.get_ref().user_id)
                .map_err(|_| Status::invalid_argument("user_id must be a UUID"))?;
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
            authenticate_internal(req.metadata(), &self.auth).await?;
            let event: AccountEvent = serde_json::from_str(&req.get_ref().event_json)
                .map_err(|e| Status::invalid_argument(format!("event_json: {e}")))?;
            crate::ProfileEvents(self.profiles.clone()).handle(&event).await.map_err(|e| Status::unavailable(e.0))?;
            Ok(Response::new(pb::HandleAccountEventResponse {}))
        })
        .await
    }
}

fn client_error(s: Status) -> UsersError {
    let s = fafnir_proto::codec::from_peer(s);
    match s.code() {
        tonic::Code::NotFound => UsersError::NotFound,
        // The server words these as `UsersError`'s Display does (see `status`).
        tonic::Code::InvalidArgument if s.message() == UsersError::InvalidCursor.to_string() => {
            UsersError::InvalidCursor
        }
        tonic::Code::InvalidArgument if s.message() == UsersError::InvalidPageSize.to_string() => {
            UsersError::InvalidPageSize
        }
        tonic::Code::InvalidArgument => {
            // "invalid profile: <field> <message>[; …]": keep the first field and its message.
            let rest = s.message().strip_prefix("invalid profile: ").unwrap_or(s.message());
            let field = crate::profile::COLUMNS.iter().find(|f| rest.starts_with(*f)).copied();
            let message = match field {
                Some(f) => rest[f.len()..].trim_start().to_owned(),
                None => rest.to_owned(),
            };
            UsersError::Validation(vec![crate::FieldError { field: field.unwrap_or("request"), message }])
        }
        tonic::Code::Unauthenticated => UsersError::Unauthenticated,
        tonic::Code::PermissionDenied => UsersError::Forbidden(s.message().to_owned()),
        _ => UsersError::Unavailable(s.message().to_owned()),
    }
}

/// Profiles as a client of user-service: one shared channel, a timeout per call, retries for
/// reads.
#[derive(Debug, Clone)]
pub struct RemoteProfiles {
    client: UserServiceClient<Channel>,
    opts: ClientOptions,
}

impl RemoteProfiles {
    pub fn new(channel: Channel, opts: ClientOptions) -> Self {
        Self { client: UserServiceClient::new(channel), opts }
    }
}

#[async_trait::async_trait]
impl ProfileDirectory for RemoteProfiles {
    async fn get(&self, bearer: Option<&str>, user: UserId) -> Result<Profile, UsersError> {
        let r = with_retries(self.opts.attempts, || {
            let mut c = self.client.clone();
            let req = with_bearer(pb::GetProfileRequest { user_id: user.to_string() }, bearer, self.opts.timeout);
            async move { c.get_profile(req).await }
        })
        .await
        .map_err(client_error)?;
        profile_from_pb(r.into_inner().profile.ok_or(UsersError::NotFound)?)
    }

    async fn update(&self, bearer: Option<&str>, user: UserId, u: &ProfileUpdate) -> Result<Profile, UsersError> {
        // Writes are not retried: a timeout may hide a success.
        let flat = |v: &Option<Option<String>>| v.as_ref().map(|x| x.clone().unwrap_or_default());
        let msg = pb::UpdateProfileRequest {
            user_id: user.to_string(),
            first_name: flat(&u.first_name),
            last_name: flat(&u.last_name),
            display_name: flat(&u.display_name),
            avatar_url: flat(&u.avatar_url),
            bio: flat(&u.bio),
            locale: flat(&u.locale),
            timezone: flat(&u.timezone),
        };
        let r = self
            .client
            .clone()
            .update_profile(with_bearer(msg, bearer, self.opts.timeout))
            .await
            .map_err(client_error)?;
        profile_from_pb(r.into_inner().profile.ok_or(UsersError::NotFound)?)
    }

    async fn delete(&self, bearer: Option<&str>, user: UserId) -> Result<(), UsersError> {
        let req = with_bearer(pb::DeleteProfileRequest { user_id: user.to_string() }, bearer, self.opts.timeout);
        self.client.clone().delete_profile(req).await.map_err(client_error)?;
        Ok(())
    }

    async fn list(
        &self,
        bearer: Option<&str>,
        first: Option<u32>,
        after: Option<&str>,
    ) -> Result<Page<Profile>, UsersError> {
        let r = with_retries(self.opts.attempts, || {
            let mut c = self.client.clone();
            let msg = pb::ListProfilesRequest {
                page_size: first.unwrap_or(0),
                page_token: after.unwrap_or_default().to_owned(),
            };
            let req = with_bearer(msg, bearer, self.opts.timeout);
            async move { c.list_profiles(req).await }
        })
        .await
        .map_err(client_error)?
        .into_inner();
        let items = r.profiles.into_iter().map(profile_from_pb).collect::<Result<Vec<_>, _>>()?;
        Ok(Page { items, next_cursor: (!r.next_page_token.is_empty()).then_some(r.next_page_token) })
    }
}

/// Delivers account events to user-service (used by auth-service's outbox), under the same
/// subscriber name as the in-process handler.
#[derive(Debug, Clone)]
pub struct UsersEventSink {
    client: UserServiceClient<Channel>,
    signer: EventSigner,
}

impl UsersEventSink {
    pub fn new(channel: Channel, signer: EventSigner) -> Self {
        Self { client: UserServiceClient::new(channel), signer }
    }
}

#[async_trait::async_trait]
impl AccountEventHandler for UsersEventSink {
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
            .map_err(|s| HandlerError(format!("user-service: {}", s.message())))?;
        Ok(())
    }
}
