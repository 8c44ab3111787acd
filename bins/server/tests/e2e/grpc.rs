//! Both gRPC services over real gRPC on loopback, against SQLite and Postgres: every RPC's
//! success path, and unauthenticated, forbidden, not found and invalid argument; health and
//! reflection.

use std::net::SocketAddr;

use fafnir_core::testing::TestDb;
use fafnir_core::token::AccessClaims;
use fafnir_core::{Config, SessionId, UserId};
use fafnir_proto::security::v1 as sec;
use fafnir_proto::security::v1::security_service_client::SecurityServiceClient;
use fafnir_proto::users::v1 as usr;
use fafnir_proto::users::v1::user_service_client::UserServiceClient;
use fafnir_server::{bind, grpc, local_grpc, Stack};
use tonic::transport::Channel;
use tonic::{Code, Request};

const PW: &str = "correct horse battery staple";

fn req<T>(msg: T, token: Option<&str>) -> Request<T> {
    let mut r = Request::new(msg);
    if let Some(t) = token {
        r.metadata_mut().insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    r
}

async fn user(stack: &Stack, email: &str) -> (UserId, String) {
    let a = stack.auth.register(email, PW, None).await.unwrap();
    let l = stack.auth.login(email, PW, &Default::default()).await.unwrap();
    (a.id, l.access_token.expose().to_owned())
}

fn code<T: std::fmt::Debug>(r: Result<T, tonic::Status>) -> Code {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(s) => s.code(),
    }
}

/// A `fafnir serve`-like stack serving both services on a loopback port, an administrator and a
/// member signed in, and what the tests need to make bad requests.
struct Fixture {
    stack: Stack,
    addr: SocketAddr,
    ch: Channel,
    s: SecurityServiceClient<Channel>,
    u: UserServiceClient<Channel>,
    admin: UserId,
    admin_t: String,
    member: UserId,
    member_t: String,
    /// A user id nobody has.
    ghost: String,
    /// A genuine token of the member, expired.
    expired: String,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<Result<(), fafnir_server::StartError>>,
}

impl Fixture {
    async fn start(t: &TestDb) -> Fixture {
        // Install the metrics recorder before any call is counted.
        let _ = fafnir_server::telemetry::prometheus();
        let config = Config { database_url: t.url.clone(), ..Config::default() };
        let stack = Stack::open_with(config, || fafnir_auth::AuthConfig {
            argon2: fafnir_auth::Argon2Config { memory_kib: 64, iterations: 1, parallelism: 1 },
            ..Default::default()
        })
        .await
        .unwrap();
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(grpc::serve_grpc(listener, local_grpc(&stack), async move {
            let _ = stopped.await;
        }));
        let ch = Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
        let (admin, admin_t) = user(&stack, "admin@example.com").await;
        stack.rbac.grant(admin, &fafnir_rbac::RoleName::parse("admin").unwrap()).await.unwrap();
        let (member, member_t) = user(&stack, "member@example.com").await;
        let now = chrono::Utc::now().timestamp();
        let expired = stack
            .keys
            .sign(&AccessClaims {
                iss: stack.auth.config().issuer.clone(),
                aud: stack.auth.config().audience.clone(),
                sub: member,
                sid: SessionId::new(),
                iat: now - 2000,
                exp: now - 1000,
                jti: "x".into(),
                nbf: None,
            })
            .unwrap();
        Fixture {
            s: SecurityServiceClient::new(ch.clone()),
            u: UserServiceClient::new(ch.clone()),
            stack,
            addr,
            ch,
            admin,
            admin_t,
            member,
            member_t,
            ghost: UserId::new().to_string(),
            expired,
            stop,
            server,
        }
    }

    /// The admin's and the member's tokens, as call arguments.
    fn tokens(&self) -> (Option<&str>, Option<&str>) {
        (Some(self.admin_t.as_str()), Some(self.member_t.as_str()))
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.server.await.unwrap().unwrap();
    }
}

/// Every RPC of both services refuses a missing, malformed or expired token, and a user's token where an internal one is needed.
async fn every_rpc_authenticates_its_caller(t: &TestDb) {
    let f = Fixture::start(t).await;
    let mut s = f.s.clone();
    let mut u = f.u.clone();
    let (a, _) = f.tokens();
    let expired = &f.expired;
    // ---- authentication, on every RPC of both services
    for token in [None, Some("garbage"), Some(expired.as_str())] {
        assert_eq!(
            code(s.check_permission(req(sec::CheckPermissionRequest::default(), token)).await),
            Code::Unauthenticated
        );
        assert_eq!(
            code(s.check_permissions(req(sec::CheckPermissionsRequest::default(), token)).await),
            Code::Unauthenticated
        );
        assert_eq!(
            code(s.get_user_roles(req(sec::GetUserRolesRequest::default(), token)).await),
            Code::Unauthenticated
        );
        assert_eq!(code(s.assign_role(req(sec::AssignRoleRequest::default(), token)).await), Code::Unauthenticated);
        assert_eq!(code(s.revoke_role(req(sec::RevokeRoleRequest::default(), token)).await), Code::Unauthenticated);
        assert_eq!(code(s.list_roles(req(sec::ListRolesRequest::default(), token)).await), Code::Unauthenticated);
        assert_eq!(code(s.create_role(req(sec::CreateRoleRequest::default(), token)).await), Code::Unauthenticated);
        assert_eq!(code(s.delete_role(req(sec::DeleteRoleRequest::default(), token)).await), Code::Unauthenticated);
        assert_eq!(
            code(s.set_role_permissions(req(sec::SetRolePermissionsRequest::default(), token)).await),
            Code::Unauthenticated
        );
        assert_eq!(
            code(s.handle_account_event(req(sec::HandleAccountEventRequest::default(), token)).await),
            Code::Unauthenticated
        );
        assert_eq!(code(u.get_profile(req(usr::GetProfileRequest::default(), token)).await), Code::Unauthenticated);
        assert_eq!(
            code(u.update_profile(req(usr::UpdateProfileRequest::default(), token)).await),
            Code::Unauthenticated
        );
        assert_eq!(
            code(u.delete_profile(req(usr::DeleteProfileRequest::default(), token)).await),
            Code::Unauthenticated
        );
        assert_eq!(code(u.list_profiles(req(usr::ListProfilesRequest::default(), token)).await), Code::Unauthenticated);
        assert_eq!(
            code(u.handle_account_event(req(usr::HandleAccountEventRequest::default(), token)).await),
            Code::Unauthenticated
        );
    }
    // A user's token is not an internal one.
    let ev = sec::HandleAccountEventRequest { event_json: "{}".into(), occurred_at: None };
    assert_eq!(code(s.handle_account_event(req(ev, a)).await), Code::Unauthenticated);
    f.stop().await;
}

/// `CheckPermission` and `CheckPermissions`: for oneself, for others with `users:read`, batch limits.
async fn permission_checks(t: &TestDb) {
    let f = Fixture::start(t).await;
    let mut s = f.s.clone();
    let (a, m) = f.tokens();
    let admin = f.admin;
    let member = f.member;
    let ghost = &f.ghost;
    // ---- CheckPermission / CheckPermissions
    let check = |user: &str, p: &str| sec::CheckPermissionRequest { user_id: user.into(), permission: p.into() };
    let r = s.check_permission(req(check("", "profile:read"), m)).await.unwrap().into_inner();
    assert!(r.has_permission);
    assert_eq!(r.code(), sec::PermissionCode::PermissionGranted);
    let r = s.check_permission(req(check("", "users:read"), m)).await.unwrap().into_inner();
    assert_eq!((r.has_permission, r.code()), (false, sec::PermissionCode::PermissionDenied));
    let r = s.check_permission(req(check("", "Not A Permission"), m)).await.unwrap().into_inner();
    assert_eq!(r.code(), sec::PermissionCode::InvalidPermission);
    assert_eq!(code(s.check_permission(req(check(&admin.to_string(), "users:read"), m)).await), Code::PermissionDenied);
    let r = s.check_permission(req(check(&member.to_string(), "profile:write"), a)).await.unwrap().into_inner();
    assert!(r.has_permission);
    let r = s.check_permission(req(check(ghost, "profile:read"), a)).await.unwrap().into_inner();
    assert_eq!(r.code(), sec::PermissionCode::UserNotFound);
    assert_eq!(code(s.check_permission(req(check("not-a-uuid", "x:y"), a)).await), Code::InvalidArgument);
    let batch = sec::CheckPermissionsRequest {
        user_id: String::new(),
        permissions: vec!["profile:read".into(), "users:read".into(), "bad".into()],
    };
    let r = s.check_permissions(req(batch, m)).await.unwrap().into_inner();
    let codes: Vec<_> = r.results.iter().map(|x| (x.permission.as_str(), x.code())).collect();
    assert_eq!(
        codes,
        [
            ("profile:read", sec::PermissionCode::PermissionGranted),
            ("users:read", sec::PermissionCode::PermissionDenied),
            ("bad", sec::PermissionCode::InvalidPermission)
        ]
    );
    let too_many = sec::CheckPermissionsRequest { user_id: String::new(), permissions: vec!["a:b".into(); 101] };
    assert_eq!(code(s.check_permissions(req(too_many, m)).await), Code::InvalidArgument);
    f.stop().await;
}

/// `GetUserRoles`: one's own, others' only with `users:read`, unknown users.
async fn user_roles(t: &TestDb) {
    let f = Fixture::start(t).await;
    let mut s = f.s.clone();
    let (a, m) = f.tokens();
    let admin = f.admin;
    let ghost = &f.ghost;
    // ---- GetUserRoles
    let r = s.get_user_roles(req(sec::GetUserRolesRequest::default(), m)).await.unwrap().into_inner();
    assert_eq!(r.roles, ["member"]);
    assert_eq!(r.permissions, ["profile:read", "profile:write"]);
    assert_eq!(
        code(s.get_user_roles(req(sec::GetUserRolesRequest { user_id: admin.to_string() }, m)).await),
        Code::PermissionDenied
    );
    assert_eq!(
        code(s.get_user_roles(req(sec::GetUserRolesRequest { user_id: ghost.clone() }, a)).await),
        Code::NotFound
    );
    f.stop().await;
}

/// Creating, changing, granting, revoking and deleting roles, each failure with its code and reason.
async fn role_management(t: &TestDb) {
    let f = Fixture::start(t).await;
    let mut s = f.s.clone();
    let (a, m) = f.tokens();
    let member = f.member;
    let ghost = &f.ghost;
    let check = |user: &str, p: &str| sec::CheckPermissionRequest { user_id: user.into(), permission: p.into() };
    // ---- role management
    let create = |name: &str, perms: &[&str], inherits: &[&str]| sec::CreateRoleRequest {
        name: name.into(),
        description: "test role".into(),
        permissions: perms.iter().map(|p| p.to_string()).collect(),
        inherits: inherits.iter().map(|p| p.to_string()).collect(),
    };
    assert_eq!(code(s.create_role(req(create("editor", &["docs:write"], &[]), m)).await), Code::PermissionDenied);
    let r = s.create_role(req(create("editor", &["docs:write"], &["member"]), a)).await.unwrap().into_inner();
    assert_eq!(r.role.unwrap().inherits, ["member"]);
    assert_eq!(code(s.create_role(req(create("editor", &[], &[]), a)).await), Code::AlreadyExists);
    assert_eq!(code(s.create_role(req(create("Bad Name", &[], &[]), a)).await), Code::InvalidArgument);
    assert_eq!(code(s.create_role(req(create("x", &["nope"], &[]), a)).await), Code::InvalidArgument);
    assert_eq!(code(s.create_role(req(create("y", &[], &["ghost"]), a)).await), Code::NotFound);
    let roles = s.list_roles(req(sec::ListRolesRequest {}, m)).await.unwrap().into_inner().roles;
    assert_eq!(roles.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["admin", "editor", "member"]);
    assert!(roles[0].builtin && !roles[1].builtin);

    let set = |name: &str, perms: &[&str]| sec::SetRolePermissionsRequest {
        name: name.into(),
        permissions: perms.iter().map(|p| p.to_string()).collect(),
    };
    assert_eq!(code(s.set_role_permissions(req(set("editor", &["docs:*"]), m)).await), Code::PermissionDenied);
    let r = s.set_role_permissions(req(set("editor", &["docs:*"]), a)).await.unwrap().into_inner();
    assert_eq!(r.role.unwrap().permissions, ["docs:*"]);
    assert_eq!(code(s.set_role_permissions(req(set("ghost", &[]), a)).await), Code::NotFound);
    assert_eq!(code(s.set_role_permissions(req(set("editor", &["bad"]), a)).await), Code::InvalidArgument);

    let assign = |user: &str, role: &str| sec::AssignRoleRequest { user_id: user.into(), role: role.into() };
    assert_eq!(code(s.assign_role(req(assign(&member.to_string(), "editor"), m)).await), Code::PermissionDenied);
    assert!(s.assign_role(req(assign(&member.to_string(), "editor"), a)).await.unwrap().into_inner().changed);
    assert!(!s.assign_role(req(assign(&member.to_string(), "editor"), a)).await.unwrap().into_inner().changed);
    assert_eq!(code(s.assign_role(req(assign(ghost, "editor"), a)).await), Code::NotFound);
    assert_eq!(code(s.assign_role(req(assign(&member.to_string(), "ghost"), a)).await), Code::NotFound);
    assert_eq!(code(s.assign_role(req(assign("nope", "editor"), a)).await), Code::InvalidArgument);
    // Each failure names its reason (and the field at fault) in the standard error details.
    let why = |r: Result<tonic::Response<sec::AssignRoleResponse>, tonic::Status>| {
        let s = r.unwrap_err();
        (fafnir_proto::status::reason(&s), fafnir_proto::status::violations(&s))
    };
    assert_eq!(why(s.assign_role(req(assign(ghost, "editor"), a)).await).0.as_deref(), Some("USER_NOT_FOUND"));
    assert_eq!(
        why(s.assign_role(req(assign(&member.to_string(), "ghost"), a)).await).0.as_deref(),
        Some("ROLE_NOT_FOUND")
    );
    assert_eq!(
        why(s.assign_role(req(assign(&member.to_string(), "editor"), m)).await).0.as_deref(),
        Some("MISSING_PERMISSION")
    );
    let (reason, fields) = why(s.assign_role(req(assign("nope", "editor"), a)).await);
    assert_eq!((reason.as_deref(), fields[0].0.as_str()), (Some("INVALID_USER_ID"), "user_id"));
    let r = s.check_permission(req(check("", "docs:publish"), m)).await.unwrap().into_inner();
    assert!(r.has_permission, "the grant took effect at once");

    let revoke = |user: &str, role: &str| sec::RevokeRoleRequest { user_id: user.into(), role: role.into() };
    assert_eq!(code(s.revoke_role(req(revoke(&member.to_string(), "editor"), m)).await), Code::PermissionDenied);
    assert!(s.revoke_role(req(revoke(&member.to_string(), "editor"), a)).await.unwrap().into_inner().changed);
    assert_eq!(code(s.revoke_role(req(revoke(&member.to_string(), "ghost"), a)).await), Code::NotFound);

    let del = |name: &str| sec::DeleteRoleRequest { name: name.into() };
    assert_eq!(code(s.delete_role(req(del("editor"), m)).await), Code::PermissionDenied);
    assert_eq!(code(s.delete_role(req(del("admin"), a)).await), Code::FailedPrecondition);
    s.delete_role(req(del("editor"), a)).await.unwrap();
    assert_eq!(code(s.delete_role(req(del("editor"), a)).await), Code::NotFound);
    f.stop().await;
}

/// Reading, updating, listing and deleting profiles, with the permissions each needs.
async fn profiles(t: &TestDb) {
    let f = Fixture::start(t).await;
    let mut u = f.u.clone();
    let (a, m) = f.tokens();
    let admin = f.admin;
    let member = f.member;
    let ghost = &f.ghost;
    let stack = &f.stack;
    // ---- profiles
    let p = u.get_profile(req(usr::GetProfileRequest::default(), m)).await.unwrap().into_inner().profile.unwrap();
    assert_eq!(p.user_id, member.to_string());
    assert!(p.created_at.is_some());
    assert_eq!(
        code(u.get_profile(req(usr::GetProfileRequest { user_id: admin.to_string() }, m)).await),
        Code::PermissionDenied
    );
    assert_eq!(
        u.get_profile(req(usr::GetProfileRequest { user_id: member.to_string() }, a))
            .await
            .unwrap()
            .into_inner()
            .profile
            .unwrap()
            .user_id,
        member.to_string()
    );
    assert_eq!(code(u.get_profile(req(usr::GetProfileRequest { user_id: ghost.clone() }, a)).await), Code::NotFound);
    assert_eq!(
        code(u.get_profile(req(usr::GetProfileRequest { user_id: "x".into() }, a)).await),
        Code::InvalidArgument
    );

    let upd = usr::UpdateProfileRequest {
        first_name: Some("Mem".into()),
        locale: Some("pt_BR".into()),
        ..Default::default()
    };
    let p = u.update_profile(req(upd, m)).await.unwrap().into_inner().profile.unwrap();
    assert_eq!((p.first_name.as_str(), p.locale.as_str(), p.last_name.as_str()), ("Mem", "pt-BR", ""));
    let bad = usr::UpdateProfileRequest { avatar_url: Some("javascript:alert(1)".into()), ..Default::default() };
    let st = u.update_profile(req(bad, m)).await.unwrap_err();
    assert_eq!(st.code(), Code::InvalidArgument);
    assert!(st.message().contains("avatar_url"), "{}", st.message());
    // Without `profile:write` (member revoked), not even one's own profile changes.
    let (loner, loner_t) = user(stack, "loner@example.com").await;
    stack.rbac.revoke(loner, &fafnir_rbac::RoleName::parse("member").unwrap()).await.unwrap();
    let mine = usr::UpdateProfileRequest { bio: Some("x".into()), ..Default::default() };
    assert_eq!(code(u.update_profile(req(mine, Some(loner_t.as_str()))).await), Code::PermissionDenied);
    let other = usr::UpdateProfileRequest { user_id: admin.to_string(), bio: Some("x".into()), ..Default::default() };
    assert_eq!(code(u.update_profile(req(other, m)).await), Code::PermissionDenied);
    let clear = usr::UpdateProfileRequest {
        user_id: member.to_string(),
        first_name: Some(String::new()),
        ..Default::default()
    };
    assert_eq!(u.update_profile(req(clear, a)).await.unwrap().into_inner().profile.unwrap().first_name, "");

    assert_eq!(code(u.list_profiles(req(usr::ListProfilesRequest::default(), m)).await), Code::PermissionDenied);
    let page = u
        .list_profiles(req(usr::ListProfilesRequest { page_size: 2, page_token: String::new() }, a))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.profiles.len(), 2, "admin, member, loner: two on the first page");
    assert!(!page.next_page_token.is_empty());
    let page2 = u
        .list_profiles(req(usr::ListProfilesRequest { page_size: 2, page_token: page.next_page_token }, a))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page2.profiles.len(), 1);
    assert!(page2.next_page_token.is_empty());
    assert_eq!(
        code(u.list_profiles(req(usr::ListProfilesRequest { page_size: 0, page_token: "!!".into() }, a)).await),
        Code::InvalidArgument
    );
    assert_eq!(
        code(u.list_profiles(req(usr::ListProfilesRequest { page_size: 101, page_token: String::new() }, a)).await),
        Code::InvalidArgument
    );

    assert_eq!(
        code(u.delete_profile(req(usr::DeleteProfileRequest { user_id: admin.to_string() }, m)).await),
        Code::PermissionDenied
    );
    assert_eq!(
        code(u.delete_profile(req(usr::DeleteProfileRequest { user_id: member.to_string() }, m)).await),
        Code::PermissionDenied,
        "not even one's own"
    );
    assert_eq!(
        code(u.delete_profile(req(usr::DeleteProfileRequest { user_id: "x".into() }, a)).await),
        Code::InvalidArgument
    );
    u.delete_profile(req(usr::DeleteProfileRequest { user_id: member.to_string() }, a)).await.unwrap();
    assert_eq!(
        code(u.delete_profile(req(usr::DeleteProfileRequest { user_id: member.to_string() }, a)).await),
        Code::NotFound
    );
    f.stop().await;
}

/// Internal account events, delivered twice, apply once; a malformed one is refused.
async fn account_events_are_idempotent(t: &TestDb) {
    let f = Fixture::start(t).await;
    let mut s = f.s.clone();
    let mut u = f.u.clone();
    let stack = &f.stack;
    // ---- internal account events: idempotent
    let token =
        fafnir_proto::events::internal_token(&stack.keys, stack.clock.as_ref(), &stack.auth.config().token_audience())
            .unwrap();
    let newcomer = UserId::new();
    let json = format!(r#"{{"type":"user_created","user_id":"{newcomer}","display_name":"New"}}"#);
    for _ in 0..2 {
        s.handle_account_event(req(
            sec::HandleAccountEventRequest { event_json: json.clone(), occurred_at: None },
            Some(&token),
        ))
        .await
        .unwrap();
        u.handle_account_event(req(
            usr::HandleAccountEventRequest { event_json: json.clone(), occurred_at: None },
            Some(&token),
        ))
        .await
        .unwrap();
    }
    assert_eq!(stack.rbac.user_roles(&newcomer).unwrap().len(), 1);
    assert_eq!(stack.profiles.get(newcomer).await.unwrap().display_name.as_deref(), Some("New"));
    let bad = sec::HandleAccountEventRequest { event_json: "not json".into(), occurred_at: None };
    assert_eq!(code(s.handle_account_event(req(bad, Some(&token))).await), Code::InvalidArgument);
    f.stop().await;
}

/// The standard health service and server reflection.
async fn health_and_reflection(t: &TestDb) {
    let f = Fixture::start(t).await;
    let ch = &f.ch;
    // ---- health and reflection
    let mut health = tonic_health::pb::health_client::HealthClient::new(ch.clone());
    for svc in ["fafnir.security.v1.SecurityService", "fafnir.users.v1.UserService"] {
        let r = health.check(tonic_health::pb::HealthCheckRequest { service: svc.into() }).await.unwrap().into_inner();
        assert_eq!(r.status(), tonic_health::pb::health_check_response::ServingStatus::Serving, "{svc}");
    }
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    let mut refl = ServerReflectionClient::new(ch.clone());
    let q = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = refl.server_reflection_info(tokio_stream::iter(vec![q])).await.unwrap().into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) = stream.message().await.unwrap().unwrap().message_response
    else {
        panic!("no service list")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for want in ["fafnir.security.v1.SecurityService", "fafnir.users.v1.UserService", "grpc.health.v1.Health"] {
        assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
    }
    f.stop().await;
}

/// `RemoteProfiles` and `RemoteSecurity` behind their traits: answers, and the server's exact errors rebuilt from the status details.
async fn remote_clients_read_structured_errors(t: &TestDb) {
    let f = Fixture::start(t).await;
    let (a, m) = f.tokens();
    let admin = f.admin;
    let member = f.member;
    let ch = &f.ch;
    // ---- the client side: RemoteProfiles and RemoteSecurity behind their traits
    use fafnir_core::PermissionChecker;
    use fafnir_users::ProfileDirectory;
    let opts = fafnir_proto::client::ClientOptions::default();
    let remote = fafnir_users::grpc::RemoteProfiles::new(ch.clone(), opts);
    let p = remote.get(a, admin).await.unwrap();
    assert_eq!(p.user_id, admin);
    let upd: fafnir_users::ProfileUpdate = serde_json::from_str(r#"{"display_name": "Root", "bio": null}"#).unwrap();
    assert_eq!(remote.update(a, admin, &upd).await.unwrap().display_name.as_deref(), Some("Root"));
    let page = remote.list(a, Some(10), None).await.unwrap();
    assert!(page.items.iter().any(|p| p.user_id == admin) && page.next_cursor.is_none());
    assert!(matches!(remote.list(m, None, None).await, Err(fafnir_users::UsersError::Forbidden(_))));
    assert!(matches!(remote.get(a, UserId::new()).await, Err(fafnir_users::UsersError::NotFound)));
    assert!(matches!(remote.get(None, admin).await, Err(fafnir_users::UsersError::Unauthenticated)));
    // The server's exact error comes back from the status details, every field at fault with it.
    use fafnir_users::UsersError;
    let too_many = Some(fafnir_users::MAX_PAGE_SIZE + 1);
    assert!(matches!(remote.list(a, too_many, None).await, Err(UsersError::InvalidPageSize)));
    assert!(matches!(remote.list(a, None, Some("not-a-cursor")).await, Err(UsersError::InvalidCursor)));
    let bad: fafnir_users::ProfileUpdate =
        serde_json::from_str(r#"{"avatar_url": "javascript:alert(1)", "locale": "not a locale!"}"#).unwrap();
    match remote.update(a, admin, &bad).await {
        Err(UsersError::Validation(fields)) => {
            let names: Vec<&str> = fields.iter().map(|f| f.field).collect();
            assert_eq!(names, ["avatar_url", "locale"], "{fields:?}");
            assert!(fields[0].message.contains("http(s) URL"), "{fields:?}");
        }
        other => panic!("expected both fields at fault, got {other:?}"),
    }
    let checker = fafnir_rbac::grpc::RemoteSecurity::new(ch.clone(), opts);
    assert!(checker.check(a, admin, "users:read").await.unwrap().allowed);
    let grants = checker.grants(m, member).await.unwrap().unwrap();
    assert_eq!(grants.roles, ["member"]);
    let many = checker.check_many(m, member, &["profile:read".into(), "users:read".into()]).await.unwrap();
    assert_eq!(many.iter().map(|d| d.allowed).collect::<Vec<_>>(), [true, false]);
    f.stop().await;
}

/// Each RPC is counted by service, method and code.
async fn per_rpc_metrics(t: &TestDb) {
    let f = Fixture::start(t).await;
    let mut s = f.s.clone();
    let (_, m) = f.tokens();
    let member = f.member;
    // A refusal to count.
    let assign = sec::AssignRoleRequest { user_id: member.to_string(), role: "admin".into() };
    assert_eq!(code(s.assign_role(req(assign, m)).await), Code::PermissionDenied);
    // ---- per-RPC metrics
    let rendered = fafnir_server::telemetry::prometheus().unwrap().render();
    assert!(
        rendered.contains(r#"fafnir_grpc_requests_total{grpc_service="fafnir.security.v1.SecurityService",grpc_method="AssignRole",grpc_code="PermissionDenied"}"#),
        "{rendered}"
    );
    assert!(rendered.contains("fafnir_grpc_request_duration_seconds_bucket"));
    f.stop().await;
}

/// A client of a stopped service answers UNAVAILABLE after its retries, without hanging.
async fn a_stopped_service_is_unavailable_to_clients(t: &TestDb) {
    use fafnir_core::PermissionChecker;
    let f = Fixture::start(t).await;
    let (token, admin, addr) = (f.admin_t.clone(), f.admin, f.addr);
    f.stop().await;
    let opts = fafnir_proto::client::ClientOptions::default();
    let down =
        fafnir_rbac::grpc::RemoteSecurity::new(fafnir_proto::client::channel(&format!("http://{addr}")).unwrap(), opts);
    let e = down.check(Some(&token), admin, "users:read").await.unwrap_err();
    assert!(matches!(e, fafnir_core::ServiceError::Unavailable(_)), "{e:?}");
}

fafnir_core::conformance_tests!(@testdb
    every_rpc_authenticates_its_caller,
    permission_checks,
    user_roles,
    role_management,
    profiles,
    account_events_are_idempotent,
    health_and_reflection,
    remote_clients_read_structured_errors,
    per_rpc_metrics,
    a_stopped_service_is_unavailable_to_clients,
);
