//! Both gRPC services over real gRPC on loopback, against SQLite and Postgres: every RPC's
//! success path, and unauthenticated, forbidden, not found and invalid argument; health and
//! reflection.

#![allow(clippy::unwrap_used)] // a panic in a test is a failing test

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

async fn every_rpc_with_its_failure_modes(t: &TestDb) {
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
    let mut s = SecurityServiceClient::new(ch.clone());
    let mut u = UserServiceClient::new(ch.clone());

    let (admin, admin_t) = user(&stack, "admin@example.com").await;
    stack.rbac.grant(admin, &fafnir_rbac::RoleName::parse("admin").unwrap()).await.unwrap();
    let (member, member_t) = user(&stack, "member@example.com").await;
    let (a, m) = (Some(admin_t.as_str()), Some(member_t.as_str()));
    let ghost = UserId::new().to_string();
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
    let r = s.check_permission(req(check(&ghost, "profile:read"), a)).await.unwrap().into_inner();
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
    assert_eq!(code(s.assign_role(req(assign(&ghost, "editor"), a)).await), Code::NotFound);
    assert_eq!(code(s.assign_role(req(assign(&member.to_string(), "ghost"), a)).await), Code::NotFound);
    assert_eq!(code(s.assign_role(req(assign("nope", "editor"), a)).await), Code::InvalidArgument);
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
    let (loner, loner_t) = user(&stack, "loner@example.com").await;
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

    // ---- internal account events: idempotent
    let token =
        fafnir_proto::support::internal_token(&stack.keys, stack.clock.as_ref(), &stack.auth.config().token_audience())
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

    // ---- the client side: RemoteProfiles and RemoteSecurity behind their traits
    use fafnir_core::PermissionChecker;
    use fafnir_users::ProfileDirectory;
    let opts = fafnir_proto::support::ClientOptions::default();
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
    let checker = fafnir_rbac::grpc::RemoteSecurity::new(ch.clone(), opts);
    assert!(checker.check(a, admin, "users:read").await.unwrap().allowed);
    let grants = checker.grants(m, member).await.unwrap().unwrap();
    assert_eq!(grants.roles, ["member"]);
    let many = checker.check_many(m, member, &["profile:read".into(), "users:read".into()]).await.unwrap();
    assert_eq!(many.iter().map(|d| d.allowed).collect::<Vec<_>>(), [true, false]);

    // ---- per-RPC metrics
    let rendered = fafnir_server::telemetry::prometheus().unwrap().render();
    assert!(
        rendered.contains(r#"fafnir_grpc_requests_total{service="fafnir.security.v1.SecurityService",method="AssignRole",code="PermissionDenied"}"#),
        "{rendered}"
    );
    assert!(rendered.contains("fafnir_grpc_request_duration_seconds_bucket"));

    let _ = stop.send(());
    server.await.unwrap().unwrap();

    // ---- a service that is down: the client answers UNAVAILABLE (after its retries), no hang.
    let down = fafnir_rbac::grpc::RemoteSecurity::new(
        fafnir_proto::support::channel(&format!("http://{addr}")).unwrap(),
        opts,
    );
    let e = down.check(a, admin, "users:read").await.unwrap_err();
    assert!(matches!(e, fafnir_core::ServiceError::Unavailable(_)), "{e:?}");
}

fafnir_core::conformance_tests!(@testdb every_rpc_with_its_failure_modes);
