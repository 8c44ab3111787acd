//! The admin CLI, as the real binary: create a user, grant admin, and see the grant take effect;
//! bad input exits non-zero with one line on stderr.

#![allow(clippy::unwrap_used)] // a panic in a test is a failing test

use std::io::Write;
use std::process::{Command, Output, Stdio};

use fafnir_core::Config;
use fafnir_server::Stack;

fn fafnir(db_url: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fafnir"))
        .args(args)
        .env("FAFNIR_DATABASE_URL", db_url)
        .env("FAFNIR_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn assert_one_line_error(out: &Output, needle: &str) {
    assert!(!out.status.success(), "should fail: {}", text(&out.stdout));
    let err = text(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err:?}");
    assert!(err.starts_with("error: ") && err.contains(needle), "{err:?}");
}

async fn check(url: &str, email: &str, permission: &str) -> bool {
    let stack = Stack::open(Config { database_url: url.into(), ..Config::default() }).await.unwrap();
    let user = stack.auth.user_by_email(email).await.unwrap();
    let allowed = stack.rbac.check_str(&user.id, permission).allowed;
    stack.db.close().await;
    allowed
}

async fn cli_creates_users_and_grants_roles(t: &fafnir_core::testing::TestDb) {
    let url = t.url.as_str();
    let out = fafnir(url, &["migrate"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "migrations applied");

    let out = fafnir(
        url,
        &["user", "create", "--email", "root@example.com", "--password-stdin"],
        Some("correct horse battery staple\n"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("created root@example.com ("));
    assert!(!check(url, "root@example.com", "users:read").await, "a new user is only a member");
    assert!(check(url, "root@example.com", "profile:read").await);

    let out = fafnir(url, &["role", "grant", "--email", "ROOT@example.com", "--role", "admin"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "granted admin to root@example.com");
    assert!(check(url, "root@example.com", "users:read").await, "admin passes an admin-only check");

    let out = fafnir(url, &["role", "revoke", "--email", "root@example.com", "--role", "admin"], None);
    assert!(out.status.success());
    assert!(!check(url, "root@example.com", "users:read").await);

    // A first admin in one step.
    let out = fafnir(
        url,
        &["user", "create", "--email", "boss@example.com", "--password-stdin", "--role", "admin"],
        Some("another long passphrase\n"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(check(url, "boss@example.com", "roles:manage").await);

    let out = fafnir(url, &["keys", "rotate"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("new signing key "));

    // Bad input: non-zero exit, one line, nothing changed.
    assert_one_line_error(
        &fafnir(url, &["role", "grant", "--email", "nobody@example.com", "--role", "admin"], None),
        "no account",
    );
    assert_one_line_error(
        &fafnir(url, &["role", "grant", "--email", "root@example.com", "--role", "Not A Role"], None),
        "invalid role",
    );
    assert_one_line_error(
        &fafnir(url, &["role", "grant", "--email", "root@example.com", "--role", "ghost"], None),
        "does not exist",
    );
    assert_one_line_error(
        &fafnir(
            url,
            &["user", "create", "--email", "root@example.com", "--password-stdin"],
            Some("yet another passphrase\n"),
        ),
        "already exists",
    );
    assert_one_line_error(
        &fafnir(url, &["user", "create", "--email", "weak@example.com", "--password-stdin"], Some("password1\n")),
        "password",
    );
    assert_one_line_error(
        &fafnir(url, &["user", "create", "--email", "x@example.com", "--password-stdin"], Some("")),
        "no password",
    );
    assert_one_line_error(
        &fafnir(
            url,
            &["user", "create", "--email", "x@example.com", "--password-stdin", "--role", "ghost"],
            Some("correct horse battery staple\n"),
        ),
        "does not exist",
    );
    assert_one_line_error(&fafnir("mysql://root@localhost/x", &["migrate"], None), "unsupported database URL");
    // A wrong mail setting stops the start, naming it, before any mail is due.
    let mut bad_smtp = Command::new(env!("CARGO_BIN_EXE_fafnir"));
    bad_smtp
        .args(["migrate"])
        .env("FAFNIR_DATABASE_URL", url)
        .env("FAFNIR_LOG", "warn")
        .env("FAFNIR_SMTP_URL", "http://mail.example.com");
    assert_one_line_error(&bad_smtp.output().unwrap(), "FAFNIR_SMTP_URL must start with smtp:// or smtps://");
    let stack = Stack::open(Config { database_url: url.into(), ..Config::default() }).await.unwrap();
    assert!(stack.auth.user_by_email("x@example.com").await.is_err(), "failed creates left nothing");
    assert!(stack.auth.user_by_email("weak@example.com").await.is_err());
    stack.db.close().await;

    // Usage errors are clap's (exit 2), with help text available.
    let out = fafnir(url, &["role", "grant", "--email"], None);
    assert_eq!(out.status.code(), Some(2));
    let help = fafnir(url, &["--help"], None);
    assert!(text(&help.stdout).contains("user") && text(&help.stdout).contains("First admin"));
}

/// `fafnir user list|disable|enable|unlock|delete` and `fafnir audit`, as the real binary.
async fn cli_administers_accounts(t: &fafnir_core::testing::TestDb) {
    let url = t.url.as_str();
    let pw = Some("correct horse battery staple\n");
    for e in ["ann@example.com", "ben@example.com"] {
        assert!(fafnir(url, &["user", "create", "--email", e, "--password-stdin"], pw).status.success());
    }
    let ok = |args: &[&str]| {
        let out = fafnir(url, args, None);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    let list = ok(&["user", "list"]);
    assert!(list.contains("ann@example.com") && list.contains("ben@example.com") && list.contains("active"), "{list}");
    assert!(!ok(&["user", "list", "--query", "be"]).contains("ann@"));
    assert!(ok(&["user", "disable", "--email", "ben@example.com"]).contains("disabled"));
    assert!(ok(&["user", "disable", "--email", "ben@example.com"]).contains("already disabled"));
    assert!(ok(&["user", "list", "--state", "disabled"]).contains("ben@example.com"));
    assert!(!ok(&["user", "list", "--state", "disabled"]).contains("ann@example.com"));
    let stack = Stack::open(Config { database_url: url.into(), ..Config::default() }).await.unwrap();
    let login = stack.auth.login("ben@example.com", "correct horse battery staple", &Default::default()).await;
    assert!(matches!(login, Err(fafnir_auth::AuthError::AccountDisabled)), "{login:?}");
    stack.audit.flush().await;
    stack.db.close().await;
    assert!(ok(&["user", "enable", "--email", "ben@example.com"]).contains("enabled"));
    assert!(ok(&["user", "unlock", "--email", "ben@example.com"]).contains("was not locked"));
    assert!(ok(&["user", "delete", "--email", "ann@example.com"]).contains("deleted"));
    assert!(!ok(&["user", "list"]).contains("ann@example.com"));
    let audit = ok(&["audit", "--email", "ben@example.com"]);
    for kind in ["account_disabled", "account_enabled", "account_unlocked", "login_failed"] {
        assert!(audit.contains(kind), "{kind} in {audit}");
    }
    assert!(ok(&["audit", "--type", "account_deleted"]).contains("account_deleted"));
    assert!(ok(&["keys", "rotate"]).contains("new signing key"));
    assert!(ok(&["audit", "--type", "key_rotated"]).contains("key_rotated"));
    assert_one_line_error(&fafnir(url, &["user", "disable", "--email", "nobody@example.com"], None), "no account");
    assert_one_line_error(&fafnir(url, &["user", "list", "--state", "asleep"], None), "--state");
    assert_one_line_error(&fafnir(url, &["audit", "--type", "nonsense"], None), "unknown event type");
}

fafnir_core::conformance_tests!(@testdb cli_creates_users_and_grants_roles, cli_administers_accounts);

/// `fafnir serve` as the real process: REST and GraphQL on one port, the CLI's admin visible
/// through GraphQL, and a clean exit on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_rest_and_graphql() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("f.db").display());
    let port = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (http, grpc) = (port(), port());
    let out = fafnir(
        &url,
        &["user", "create", "--email", "root@example.com", "--password-stdin", "--role", "admin"],
        Some("correct horse battery staple\n"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let server = Command::new(env!("CARGO_BIN_EXE_fafnir"))
        .env("FAFNIR_DATABASE_URL", &url)
        .env("FAFNIR_HTTP_ADDR", format!("127.0.0.1:{http}"))
        .env("FAFNIR_GRPC_ADDR", format!("127.0.0.1:{grpc}"))
        .env("FAFNIR_LOG", "warn")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{http}");
    let c = reqwest::Client::new();
    let mut up = false;
    for _ in 0..200 {
        if c.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status().is_success()) {
            up = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(up, "fafnir serve did not become ready");
    let tok: serde_json::Value = c
        .post(format!("{base}/auth/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", "root@example.com"),
            ("password", "correct horse battery staple"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = tok["access_token"].as_str().unwrap();
    let q = "{ me { user { email } roles } users(first: 5) { nodes { roles } } }";
    let r: serde_json::Value = c
        .post(format!("{base}/graphql"))
        .bearer_auth(token)
        .json(&serde_json::json!({ "query": q }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(r.get("errors").is_none(), "{r}");
    assert_eq!(r["data"]["me"]["user"]["email"], "root@example.com");
    assert_eq!(r["data"]["me"]["roles"], serde_json::json!(["admin", "member"]));
    assert_eq!(r["data"]["users"]["nodes"][0]["roles"], serde_json::json!(["admin", "member"]));
    let graphiql = c.get(format!("{base}/graphql")).send().await.unwrap();
    assert!(graphiql.headers()["content-type"].to_str().unwrap().starts_with("text/html"));

    // The container health check: ok against the running server, exit 1 where none listens.
    let health = |addr: String| {
        Command::new(env!("CARGO_BIN_EXE_fafnir"))
            .env("FAFNIR_HTTP_ADDR", addr)
            .env("FAFNIR_DATABASE_URL", &url)
            .arg("healthcheck")
            .output()
            .unwrap()
    };
    let ok = health(format!("0.0.0.0:{http}"));
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    assert_eq!(text(&ok.stdout).trim(), "ok");
    let down = health(format!("127.0.0.1:{}", port()));
    assert_eq!(down.status.code(), Some(1));
    assert_one_line_error(&down, "does not answer");

    let term = Command::new("kill").args(["-TERM", &server.id().to_string()]).status().unwrap();
    assert!(term.success());
    let out = server.wait_with_output().unwrap();
    assert!(out.status.success(), "exit after SIGTERM: {:?}", out.status);
    // No SMTP configured: said once at start, as a warning.
    let log = text(&out.stdout);
    assert_eq!(log.matches("FAFNIR_SMTP_URL is not set").count(), 1, "{log}");
}

/// `fafnir oauth providers`: the callback URL to register for each provider, and whether each
/// OpenID Connect provider's discovery works now (a real discovery document served on loopback).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_lists_oauth_providers() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let doc = serde_json::json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/auth"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    });
    let app = axum::Router::new()
        .route("/.well-known/openid-configuration", axum::routing::get(move || async move { axum::Json(doc) }))
        .route("/jwks", axum::routing::get(|| async { axum::Json(serde_json::json!({"keys": []})) }));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let run = |env: &[(&str, &str)]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_fafnir"));
        c.args(["oauth", "providers"]).env("FAFNIR_LOG", "warn").env_remove("FAFNIR_PUBLIC_URL");
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    let none = run(&[]);
    assert!(none.status.success());
    assert!(text(&none.stdout).contains("no social login provider is configured"));

    let out = tokio::task::spawn_blocking({
        let issuer = issuer.clone();
        move || {
            run(&[
                ("FAFNIR_PUBLIC_URL", "https://auth.example.com"),
                ("FAFNIR_OAUTH_CORP_CLIENT_ID", "fafnir"),
                ("FAFNIR_OAUTH_CORP_ISSUER", &issuer),
                ("FAFNIR_OAUTH_GITHUB_CLIENT_ID", "gh"),
                ("FAFNIR_OAUTH_GITHUB_CLIENT_SECRET", "never printed"),
            ])
        }
    })
    .await
    .unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("callback URL: https://auth.example.com/auth/oauth/corp/callback"), "{stdout}");
    assert!(stdout.contains("discovery ok"), "{stdout}");
    assert!(stdout.contains("https://auth.example.com/auth/oauth/github/callback"), "{stdout}");
    assert!(!stdout.contains("never printed"));

    // A provider that cannot be reached: listed, and exit 1 with one line on stderr.
    let out = run(&[
        ("FAFNIR_PUBLIC_URL", "https://auth.example.com"),
        ("FAFNIR_OAUTH_CORP_CLIENT_ID", "fafnir"),
        ("FAFNIR_OAUTH_CORP_ISSUER", "http://127.0.0.1:1"),
    ]);
    assert!(text(&out.stdout).contains("UNREACHABLE"), "{}", text(&out.stdout));
    assert_one_line_error(&out, "1 provider(s) cannot be reached");
    // Without the public URL, the callback URLs cannot be made: one line naming the setting.
    let out = run(&[("FAFNIR_OAUTH_GOOGLE_CLIENT_ID", "g")]);
    assert_one_line_error(&out, "FAFNIR_PUBLIC_URL");
    server.abort();
}

/// With `FAFNIR_OTLP_ENDPOINT`, the spans of `fafnir serve` reach an OTLP collector: a real
/// OTLP/gRPC `TraceService` on loopback, which records what it is sent. The last spans are
/// flushed when the process stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_are_exported_over_otlp() {
    use std::sync::{Arc, Mutex};

    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
    use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
    use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;

    #[derive(Clone, Default)]
    struct Collector(Arc<Mutex<Vec<ExportTraceServiceRequest>>>);

    #[tonic::async_trait]
    impl TraceService for Collector {
        async fn export(
            &self,
            req: tonic::Request<ExportTraceServiceRequest>,
        ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
            self.0.lock().unwrap().push(req.into_inner());
            Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
        }
    }

    let port = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (otlp, http, grpc) = (port(), port(), port());
    let collector = Collector::default();
    let server = tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(collector.clone()))
        .serve(format!("127.0.0.1:{otlp}").parse().unwrap());
    tokio::spawn(server);

    let dir = tempfile::tempdir().unwrap();
    let fafnir = Command::new(env!("CARGO_BIN_EXE_fafnir"))
        .env("FAFNIR_DATABASE_URL", format!("sqlite://{}", dir.path().join("f.db").display()))
        .env("FAFNIR_HTTP_ADDR", format!("127.0.0.1:{http}"))
        .env("FAFNIR_GRPC_ADDR", format!("127.0.0.1:{grpc}"))
        .env("FAFNIR_OTLP_ENDPOINT", format!("http://127.0.0.1:{otlp}"))
        .env("FAFNIR_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{http}");
    let c = reqwest::Client::new();
    let mut up = false;
    for _ in 0..200 {
        if c.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status().is_success()) {
            up = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(up, "fafnir serve did not become ready");
    let reg = c
        .post(format!("{base}/auth/register"))
        .json(&serde_json::json!({"email": "otel@example.com", "password": "correct horse battery staple"}))
        .send()
        .await
        .unwrap();
    assert_eq!(reg.status().as_u16(), 201);
    assert!(Command::new("kill").args(["-TERM", &fafnir.id().to_string()]).status().unwrap().success());
    let out = fafnir.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("exporting traces over OTLP"), "{}", text(&out.stdout));

    let got = collector.0.lock().unwrap().clone();
    let spans: Vec<(String, String)> = got
        .iter()
        .flat_map(|r| r.resource_spans.iter())
        .flat_map(|rs| {
            let service = rs
                .resource
                .as_ref()
                .and_then(|r| r.attributes.iter().find(|a| a.key == "service.name"))
                .and_then(|a| a.value.as_ref()?.value.clone())
                .map(|v| match v {
                    AnyValue::StringValue(s) => s,
                    other => format!("{other:?}"),
                })
                .unwrap_or_default();
            rs.scope_spans.iter().flat_map(move |ss| {
                ss.spans.iter().map({
                    let service = service.clone();
                    move |s| (service.clone(), s.name.clone())
                })
            })
        })
        .collect();
    assert!(!spans.is_empty(), "no span reached the collector");
    assert!(spans.iter().all(|(svc, _)| svc == "fafnir"), "{spans:?}");
    assert!(spans.iter().any(|(_, name)| name == "http"), "the requests' spans: {spans:?}");
}
