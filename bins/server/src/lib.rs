//! # fafnir-server
//!
//! What every Fafnir binary shares: configuration layering ([`ConfigArgs`]), wiring
//! ([`Stack`]), the HTTP application with its hardening ([`http::app`]), telemetry, and graceful
//! serving. The binaries in `bins/` are thin `main`s over this crate.

mod assets;
pub mod config;
pub mod gateway;
pub mod grpc;
pub mod harden;
pub mod http;
pub mod notify;
pub mod remote;
pub mod serve;
pub mod stack;
pub mod telemetry;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
pub use config::ConfigArgs;
pub use serve::{bind, serve, serve_with, HttpApp, Limits};
pub use stack::{Stack, StartError};
use tokio::net::TcpListener;

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

/// A shutdown signal several servers can wait on.
#[derive(Debug, Clone)]
pub struct Shutdown(tokio::sync::watch::Receiver<bool>);

impl Shutdown {
    /// Fires on Ctrl-C / SIGTERM.
    pub fn on_signal() -> Self {
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown_signal().await;
            let _ = tx.send(true);
        });
        Shutdown(rx)
    }

    /// Fires when `trigger` resolves (tests).
    pub fn on(trigger: impl Future<Output = ()> + Send + 'static) -> Self {
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            trigger.await;
            let _ = tx.send(true);
        });
        Shutdown(rx)
    }

    pub fn wait(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.0.clone();
        async move {
            let _ = rx.wait_for(|fired| *fired).await;
        }
    }
}

async fn listen(addr: SocketAddr, what: &str) -> Result<TcpListener, StartError> {
    let l = bind(addr).await?;
    let local = l.local_addr().map_err(|e| StartError::Io(e.to_string()))?;
    tracing::info!(%local, "{what} listening on {local}");
    Ok(l)
}

/// The gRPC services of an all-in-one stack: both, answered in-process, verifying tokens with
/// the stack's own keys.
pub fn local_grpc(stack: &Stack) -> grpc::GrpcServices {
    grpc::GrpcServices {
        security: Some(fafnir_rbac::grpc::SecurityGrpc::new(stack.rbac.clone(), stack.authn.clone())),
        users: Some(fafnir_users::grpc::UsersGrpc::new(
            stack.profiles.clone(),
            stack.rbac.clone(),
            stack.authn.clone(),
        )),
    }
}

/// `fafnir serve`: HTTP (REST, docs, health, metrics, and `extra`) and gRPC (both services) in
/// one process, until `shutdown`.
pub async fn run_all_in_one(config: fafnir_core::Config, extra: Router, shutdown: Shutdown) -> Result<(), StartError> {
    telemetry::init_logging(&config.log);
    Limits::install(&config);
    let stack = Stack::open(config).await?;
    let _background = stack.spawn_background();
    say_where_mail_goes(&stack);
    let (app, _) = http::all_in_one_app(&stack, extra).await?;
    let http_l = listen(stack.config.http_addr, "HTTP").await?;
    let grpc_l = listen(stack.config.grpc_addr, "gRPC").await?;
    let http = stack.config.http_addr;
    tracing::info!(
        "fafnir serving: database {}; REST http://{http}/auth, API docs http://{http}/docs, GraphQL http://{http}/graphql, gRPC {}",
        fafnir_core::db::describe_url(&stack.config.database_url),
        stack.config.grpc_addr
    );
    let (h, g) = tokio::join!(
        serve(http_l, app, shutdown.wait()),
        grpc::serve_grpc(grpc_l, local_grpc(&stack), shutdown.wait())
    );
    stack.db.close().await;
    h.and(g)
}

/// Once at start: where mail goes, with a warning when it goes to the log (its links are live).
fn say_where_mail_goes(stack: &Stack) {
    let remote = stack.config.notification_url.as_deref().is_some_and(|u| !u.is_empty());
    if say_mail_destination(&stack.config, remote, stack.mail.mailer().as_ref()) {
        // Mail really leaves: its links must reach people, over HTTPS.
        match stack.config.public_url.as_deref() {
            None => tracing::warn!(
                "FAFNIR_PUBLIC_URL is not set: mailed links point at http://{} — set it to the https:// origin people use",
                stack.config.http_addr
            ),
            Some(u) if !u.starts_with("https://") => {
                tracing::warn!("FAFNIR_PUBLIC_URL is {u}: mailed links carry their tokens without TLS")
            }
            Some(_) => {}
        }
    }
}

/// Says once where mail goes: a warning when it goes to the log (its links are live), else the
/// mailer. Whether mail really leaves (`handed_on`: to notification-service).
fn say_mail_destination(config: &fafnir_core::Config, handed_on: bool, mailer: &dyn fafnir_auth::Mailer) -> bool {
    if !handed_on && config.smtp_url.as_deref().is_none_or(str::is_empty) {
        tracing::warn!(
            "FAFNIR_SMTP_URL is not set: mail is written to this log instead of being sent, links included (fine on a developer's machine, never in production); see docs/email.md"
        );
        false
    } else {
        tracing::info!("mail goes through {}", mailer.describe());
        true
    }
}

/// `auth-service`: REST on its own; in microservice mode (both service URLs set) its account
/// events and permission checks go to security-service and user-service.
pub async fn run_auth_service(config: fafnir_core::Config, shutdown: Shutdown) -> Result<(), StartError> {
    telemetry::init_logging(&config.log);
    Limits::install(&config);
    let stack = stack::open_auth_service(config).await?;
    let _background = stack.spawn_background();
    say_where_mail_goes(&stack);
    let (app, _) = http::app(&stack, Router::new()).await?;
    let l = listen(stack.config.http_addr, "HTTP").await?;
    serve(l, app, shutdown.wait()).await?;
    stack.db.close().await;
    Ok(())
}

/// auth-service's published keys, as a verifying service fetches them.
type RemoteKeys = Arc<fafnir_core::jwks::JwksVerifier>;

/// The token verifier of a service that does not issue tokens: a configured key set
/// (`FAFNIR_JWKS_FILE`), else auth-service's JWKS — returned too, for the readiness check —
/// behind the verified-token cache.
fn jwks_verifier(
    config: &fafnir_core::Config,
    auth_url: &str,
    clock: fafnir_core::SharedClock,
) -> Result<(Arc<dyn fafnir_core::token::TokenVerifier>, Option<RemoteKeys>), StartError> {
    let (inner, remote): (Arc<dyn fafnir_core::token::TokenVerifier>, _) = if let Some(path) = &config.jwks_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| StartError::Io(format!("cannot read FAFNIR_JWKS_FILE {path}: {e}")))?;
        let jwks: fafnir_core::token::Jwks = serde_json::from_str(&text)
            .map_err(|e| StartError::Io(format!("FAFNIR_JWKS_FILE {path} is not a JWKS document: {e}")))?;
        (Arc::new(fafnir_core::token::StaticVerifier::new(&jwks, clock.clone())), None)
    } else {
        let url = format!("{}/.well-known/jwks.json", auth_url.trim_end_matches('/'));
        let jwks = Arc::new(fafnir_core::jwks::JwksVerifier::new(url, clock.clone())?);
        (jwks.clone(), Some(jwks))
    };
    Ok((Arc::new(fafnir_core::token::CachingVerifier::new(inner, clock, VERIFIED_TOKENS)), remote))
}

/// Entries of the caches a server keeps (verified tokens, sessions, profiles).
pub(crate) const VERIFIED_TOKENS: usize = fafnir_core::cache::DEFAULT_CAPACITY;

/// Where the services are when their URLs are not configured (the contract's ports).
const DEFAULT_AUTH_URL: &str = "http://127.0.0.1:8081";
const DEFAULT_SECURITY_URL: &str = "http://127.0.0.1:8082";
const DEFAULT_USERS_URL: &str = "http://127.0.0.1:8083";

/// How a verifying service authenticates callers, and what its readiness checks about
/// auth-service: the issuer learnt (or checked) from auth-service, its keys, its sessions.
async fn verifying(
    config: &fafnir_core::Config,
    clock: fafnir_core::SharedClock,
    gateway: bool,
) -> Result<(fafnir_core::token::Authenticator, remote::Check), StartError> {
    let auth_url = config.auth_url.clone().unwrap_or_else(|| DEFAULT_AUTH_URL.into());
    let watch = if gateway {
        remote::IssuerWatch::start_gateway(config, &auth_url).await?
    } else {
        remote::IssuerWatch::start(config, &auth_url).await?
    };
    let (tokens, jwks) = jwks_verifier(config, &auth_url, clock.clone())?;
    let authn = remote::authenticator(&auth_url, tokens, &watch, clock)?;
    Ok((authn, remote::Check::tokens(watch, jwks)))
}

/// The health/metrics port of a gRPC service has a budget of its own (probes keep working when
/// the gRPC listener's is spent).
fn side_port_limits(config: &fafnir_core::Config) -> Limits {
    Limits::new(serve::SIDE_PORT_CONNECTIONS, config.header_read_timeout, config.shutdown_timeout)
}

fn channel(url: &str) -> Result<tonic::transport::Channel, StartError> {
    fafnir_proto::client::channel(url).map_err(|e| StartError::Io(e.to_string()))
}

/// `security-service`: RBAC over gRPC on its own database; tokens verified against
/// auth-service's JWKS and sessions by its introspection (`FAFNIR_AUTH_URL`). Health, readiness
/// and metrics over HTTP on `http_addr`.
pub async fn run_security_service(config: fafnir_core::Config, shutdown: Shutdown) -> Result<(), StartError> {
    telemetry::init_logging(&config.log);
    Limits::install(&config);
    let clock: fafnir_core::SharedClock = Arc::new(fafnir_core::SystemClock);
    let db = fafnir_core::Db::connect(&config.database_url).await?;
    db.migrate().await?;
    let rbac =
        Arc::new(fafnir_rbac::Rbac::new(Arc::new(fafnir_rbac::SqlRbacStore::new(db.clone(), clock.clone()))).await?);
    let _watch = rbac.spawn_watcher(fafnir_rbac::DEFAULT_WATCH_INTERVAL);
    // Role changes made here are audited in this service's database, pruned like auth-service's.
    let audit = fafnir_core::AuditLog::new(db.clone(), clock.clone());
    rbac.record_to(audit.clone());
    let _prune = audit.spawn_prune(config.audit_retention);
    let (authn, tokens_ready) = verifying(&config, clock, false).await?;
    let svc = fafnir_rbac::grpc::SecurityGrpc::new(rbac, authn);
    let side = grpc::side_app(vec![remote::Check::database(db.clone()), tokens_ready]);
    let (g, h) = (listen(config.grpc_addr, "gRPC").await?, listen(config.http_addr, "health/metrics HTTP").await?);
    let side_limits = side_port_limits(&config);
    let (a, b) = tokio::join!(
        grpc::serve_grpc(g, grpc::GrpcServices { security: Some(svc), users: None }, shutdown.wait()),
        serve_with(h, side, shutdown.wait(), &side_limits)
    );
    db.close().await;
    a.and(b)
}

/// `user-service`: profiles over gRPC on its own database; tokens verified against
/// auth-service (`FAFNIR_AUTH_URL`), other users' data allowed by security-service
/// (`FAFNIR_SECURITY_URL`).
pub async fn run_user_service(config: fafnir_core::Config, shutdown: Shutdown) -> Result<(), StartError> {
    telemetry::init_logging(&config.log);
    Limits::install(&config);
    let clock: fafnir_core::SharedClock = Arc::new(fafnir_core::SystemClock);
    let db = fafnir_core::Db::connect(&config.database_url).await?;
    db.migrate().await?;
    let profiles = fafnir_users::Profiles::new(Arc::new(fafnir_users::SqlProfileStore::new(db.clone(), clock.clone())));
    let security_url = config.security_url.clone().unwrap_or_else(|| DEFAULT_SECURITY_URL.into());
    let security = channel(&security_url)?;
    let checker = Arc::new(fafnir_rbac::grpc::RemoteSecurity::new(
        security.clone(),
        fafnir_proto::client::ClientOptions::default(),
    ));
    let (authn, tokens_ready) = verifying(&config, clock, false).await?;
    let svc = fafnir_users::grpc::UsersGrpc::new(profiles, checker, authn);
    let side = grpc::side_app(vec![
        remote::Check::database(db.clone()),
        tokens_ready,
        remote::Check::grpc("security-service", security, SECURITY_SERVICE),
    ]);
    let (g, h) = (listen(config.grpc_addr, "gRPC").await?, listen(config.http_addr, "health/metrics HTTP").await?);
    let side_limits = side_port_limits(&config);
    let (a, b) = tokio::join!(
        grpc::serve_grpc(g, grpc::GrpcServices { security: None, users: Some(svc) }, shutdown.wait()),
        serve_with(h, side, shutdown.wait(), &side_limits)
    );
    db.close().await;
    a.and(b)
}

/// `notification-service`: sends the mail auth-service delivers to it (`POST /internal/mail`,
/// authenticated by auth-service's internal token) through `FAFNIR_SMTP_URL`, and keeps
/// nothing: the durable outbox, the retries and the dead letters are auth-service's. Health,
/// readiness (auth-service's keys) and metrics on the same port.
pub async fn run_notification_service(config: fafnir_core::Config, shutdown: Shutdown) -> Result<(), StartError> {
    telemetry::init_logging(&config.log);
    Limits::install(&config);
    let mailer = fafnir_auth::mailer_from_config(&config).map_err(|e| StartError::Io(e.to_string()))?;
    say_mail_destination(&config, false, mailer.as_ref());
    let clock: fafnir_core::SharedClock = Arc::new(fafnir_core::SystemClock);
    let (authn, tokens_ready) = verifying(&config, clock, false).await?;
    let app = grpc::side_app(vec![tokens_ready]).merge(notify::routes(authn, mailer));
    let settings = fafnir_auth::http::HttpSettings::from_config(&config);
    let app = http::harden(app, &settings, false);
    let l = listen(config.http_addr, "HTTP").await?;
    tracing::info!("notification-service serving on http://{}", config.http_addr);
    serve(l, app, shutdown.wait()).await
}

const SECURITY_SERVICE: &str = "fafnir.security.v1.SecurityService";
const USER_SERVICE: &str = "fafnir.users.v1.UserService";

/// `api-gateway`: GraphQL on `http_addr` over auth-service (`FAFNIR_AUTH_URL`, also proxied at
/// `/auth/*` and the JWKS), security-service (`FAFNIR_SECURITY_URL`) and user-service
/// (`FAFNIR_USERS_URL`). Keeps no database. Ready when all three are (its `/readyz` is public:
/// it names what is missing, and logs why).
pub async fn run_api_gateway(config: fafnir_core::Config, shutdown: Shutdown) -> Result<(), StartError> {
    use fafnir_auth::http::HttpSettings;
    use gateway::upstream::AuthUpstream;
    telemetry::init_logging(&config.log);
    Limits::install(&config);
    let _ = telemetry::prometheus();
    let clock: fafnir_core::SharedClock = Arc::new(fafnir_core::SystemClock);
    let auth_url = config.auth_url.clone().unwrap_or_else(|| DEFAULT_AUTH_URL.into());
    let security_url = config.security_url.clone().unwrap_or_else(|| DEFAULT_SECURITY_URL.into());
    let users_url = config.users_url.clone().unwrap_or_else(|| DEFAULT_USERS_URL.into());
    let (security_ch, users_ch) = (channel(&security_url)?, channel(&users_url)?);
    let security = Arc::new(fafnir_rbac::grpc::RemoteSecurity::new(
        security_ch.clone(),
        fafnir_proto::client::ClientOptions::default(),
    ));
    let profiles = Arc::new(fafnir_users::grpc::RemoteProfiles::new(
        users_ch.clone(),
        fafnir_proto::client::ClientOptions::default(),
    ));
    let upstream = AuthUpstream::remote(&auth_url).map_err(StartError::Io)?;
    let settings = HttpSettings::from_config(&config);
    let profiles = gateway::cached_profiles(profiles, clock.clone());
    let services = gateway::Services { checker: security.clone(), roles: security, profiles, auth: upstream.clone() };
    let (authn, tokens_ready) = verifying(&config, clock, true).await?;
    let gw = gateway::Gateway::new(
        services,
        authn,
        settings.clone(),
        gateway::CsrfCheck::Unbound,
        config.graphql_introspection,
    );
    let checks = Arc::new(vec![
        tokens_ready,
        remote::Check::grpc("security-service", security_ch, SECURITY_SERVICE),
        remote::Check::grpc("user-service", users_ch, USER_SERVICE),
    ]);
    let router = Router::new()
        .merge(gw.router())
        .merge(gateway::proxy_router(upstream, settings.trust_forwarded_for))
        .merge(assets::link_pages())
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route(
            "/readyz",
            axum::routing::get(move || {
                let checks = checks.clone();
                async move { remote::readiness(&checks, true).await }
            }),
        )
        .route("/metrics", axum::routing::get(http::render_metrics));
    let https = config.public_url.as_deref().is_some_and(|u| u.starts_with("https://"));
    // The `/auth/*` proxy passes the request's headers on: with the id among them, auth-service
    // logs and echoes the gateway's id.
    let app = http::harden_forwarding(router, &settings, https);
    let l = listen(config.http_addr, "HTTP").await?;
    tracing::info!(auth = %auth_url, security = %security_url, users = %users_url, "api-gateway serving");
    serve(l, app, shutdown.wait()).await
}

/// The body of a server binary's `main`: the configuration from its flags over `defaults` (then
/// environment and file), then `run` until Ctrl-C or SIGTERM; on failure one line on stderr and
/// exit status 1.
pub async fn main_with<F, Fut>(args: &ConfigArgs, defaults: fafnir_core::Config, run: F) -> std::process::ExitCode
where
    F: FnOnce(fafnir_core::Config, Shutdown) -> Fut,
    Fut: Future<Output = Result<(), StartError>>,
{
    let result = match args.load(defaults, crate::config::process_env()) {
        Ok(config) => run(config, Shutdown::on_signal()).await,
        Err(e) => Err(StartError::Core(e)),
    };
    telemetry::shutdown_tracing().await;
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
