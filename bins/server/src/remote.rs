//! The services that verify auth-service's tokens without issuing them (security-service,
//! user-service, api-gateway): how they learn what the tokens carry, how they check sessions,
//! and what their `/readyz` checks.
//!
//! The issuer and audience come from auth-service's metadata document
//! (`/.well-known/oauth-authorization-server`), unless `FAFNIR_ISSUER` is set on the service; a
//! configured issuer that disagrees with auth-service's stops the service at start with both
//! values named (or, if auth-service was down at start, turns `/readyz` not ready with them).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use fafnir_core::issuer::{BrowserSettings, IssuerMetadata};
use fafnir_core::remote::{fetch_metadata, RemoteSessionCheck};
use fafnir_core::token::{Authenticator, Expected, TokenAudience, TokenVerifier};
use fafnir_core::{Config, SharedClock};

use crate::StartError;

/// How long a verified session stays trusted before auth-service is asked again: a revocation
/// reaches the other services within this time.
pub const SESSION_CHECK_TTL: Duration = Duration::from_secs(2);
/// How long a service waits for auth-service's metadata at start before serving anyway (not
/// ready) and learning it in the background.
const START_WAIT: Duration = Duration::from_secs(5);
const RETRY: Duration = Duration::from_secs(2);
const RECHECK: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq)]
enum IssuerState {
    Pending(String),
    Agreed,
    Conflict(String),
}

#[derive(Debug)]
struct WatchInner {
    auth_url: String,
    configured: Option<TokenAudience>,
    /// A gateway's own browser settings, which must match auth-service's.
    browser: Option<BrowserSettings>,
    expected: Expected,
    state: Mutex<IssuerState>,
}

/// What this service expects of tokens, learnt from auth-service and checked again every
/// [`RECHECK`] (a disagreement found later makes the service not ready).
#[derive(Debug, Clone)]
pub struct IssuerWatch(Arc<WatchInner>);

impl IssuerWatch {
    /// Asks auth-service (for up to a few seconds); a configured issuer or audience that
    /// disagrees is an error naming both. If auth-service does not answer, the service starts
    /// not ready and keeps asking in the background.
    pub async fn start(config: &Config, auth_url: &str) -> Result<Self, StartError> {
        Self::start_checking(config, auth_url, None).await
    }

    /// [`IssuerWatch::start`] for a gateway in front of auth-service: its browser settings
    /// (public origin, allowed origins, cookie security) must be auth-service's too, or
    /// browsers pass the CSRF check at one and fail it at the other.
    pub async fn start_gateway(config: &Config, auth_url: &str) -> Result<Self, StartError> {
        let ours = fafnir_auth::http::HttpSettings::from_config(config);
        let browser = BrowserSettings {
            public_origin: ours.public_origin,
            allowed_origins: ours.allowed_origins,
            cookie_secure: ours.cookie_secure,
        };
        Self::start_checking(config, auth_url, Some(browser)).await
    }

    async fn start_checking(
        config: &Config,
        auth_url: &str,
        browser: Option<BrowserSettings>,
    ) -> Result<Self, StartError> {
        // Only an explicit FAFNIR_ISSUER pins the issuer: the public URL is this service's own
        // address, not necessarily auth-service's issuer.
        let configured =
            config.issuer.as_ref().map(|i| TokenAudience::new(i.clone(), config.audience.clone(), config.access_ttl));
        let expected = match &configured {
            Some(c) => Expected::fixed(c.clone()),
            None => Expected::pending(),
        };
        let watch = IssuerWatch(Arc::new(WatchInner {
            auth_url: auth_url.to_owned(),
            configured,
            browser,
            expected,
            state: Mutex::new(IssuerState::Pending(format!("auth-service at {auth_url} has not answered yet"))),
        }));
        let deadline = tokio::time::Instant::now() + START_WAIT;
        loop {
            match watch.check().await {
                IssuerState::Agreed => break,
                IssuerState::Conflict(m) => return Err(StartError::Io(m)),
                IssuerState::Pending(_) if tokio::time::Instant::now() >= deadline => {
                    tracing::warn!(auth = %auth_url, "auth-service does not answer yet; serving, not ready, until it does");
                    break;
                }
                IssuerState::Pending(_) => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
        watch.spawn();
        Ok(watch)
    }

    pub fn expected(&self) -> Expected {
        self.0.expected.clone()
    }

    /// Why tokens cannot be verified now, if they cannot.
    pub fn problem(&self) -> Option<String> {
        match &*self.0.state.lock().unwrap_or_else(|p| p.into_inner()) {
            IssuerState::Agreed => None,
            IssuerState::Pending(m) | IssuerState::Conflict(m) => Some(m.clone()),
        }
    }

    /// Fetches the metadata once and records the outcome.
    async fn check(&self) -> IssuerState {
        let inner = &self.0;
        let state = match fetch_metadata(&inner.auth_url).await {
            Ok(meta) => self.compare(&meta),
            Err(e) => IssuerState::Pending(format!("cannot read auth-service's metadata: {e}")),
        };
        let mut current = inner.state.lock().unwrap_or_else(|p| p.into_inner());
        if *current != state {
            match &state {
                IssuerState::Agreed => tracing::info!(auth = %inner.auth_url, "token issuer agreed with auth-service"),
                IssuerState::Conflict(m) => tracing::error!("{m}"),
                IssuerState::Pending(m) => tracing::warn!("{m}"),
            }
        }
        *current = state.clone();
        state
    }

    fn compare(&self, meta: &IssuerMetadata) -> IssuerState {
        let inner = &self.0;
        let theirs = meta.audience();
        match &inner.configured {
            Some(ours) if ours.issuer != theirs.issuer || ours.audience != theirs.audience => {
                IssuerState::Conflict(format!(
                    "token issuer mismatch: this service is configured with FAFNIR_ISSUER `{}` (audience `{}`), \
                     but auth-service at {} issues tokens with issuer `{}` (audience `{}`); set the same \
                     FAFNIR_ISSUER on every service, or unset it here to learn it from auth-service",
                    ours.issuer, ours.audience, inner.auth_url, theirs.issuer, theirs.audience
                ))
            }
            _ => {
                if let (Some(ours), Some(theirs)) = (&inner.browser, &meta.fafnir_browser) {
                    let set = |b: &BrowserSettings| {
                        let mut o: Vec<String> = b.allowed_origins.iter().map(|x| x.to_ascii_lowercase()).collect();
                        o.sort();
                        o.dedup();
                        (b.public_origin.clone(), o, b.cookie_secure)
                    };
                    if set(ours) != set(theirs) {
                        return IssuerState::Conflict(format!(
                            "browser settings differ between this gateway and auth-service at {}: here public origin {:?}, \
                             allowed origins {:?}, cookie secure {}; auth-service has {:?}, {:?}, {}. Set \
                             FAFNIR_PUBLIC_URL, FAFNIR_ALLOWED_ORIGINS and FAFNIR_COOKIE_SECURE alike on both",
                            inner.auth_url,
                            ours.public_origin,
                            ours.allowed_origins,
                            ours.cookie_secure,
                            theirs.public_origin,
                            theirs.allowed_origins,
                            theirs.cookie_secure
                        ));
                    }
                }
                inner.expected.set(theirs);
                IssuerState::Agreed
            }
        }
    }

    fn spawn(&self) {
        let weak: Weak<WatchInner> = Arc::downgrade(&self.0);
        tokio::spawn(async move {
            loop {
                let pause = match weak.upgrade() {
                    Some(inner) => match IssuerWatch(inner).check().await {
                        IssuerState::Agreed => RECHECK,
                        _ => RETRY,
                    },
                    None => return,
                };
                tokio::time::sleep(pause).await;
            }
        });
    }
}

/// The authenticator of a verifying service: tokens by auth-service's JWKS (or
/// `FAFNIR_JWKS_FILE`), sessions by its introspection endpoint, the issuer from `watch`.
pub fn authenticator(
    auth_url: &str,
    tokens: Arc<dyn TokenVerifier>,
    watch: &IssuerWatch,
    clock: SharedClock,
) -> Result<Authenticator, StartError> {
    let sessions = RemoteSessionCheck::new(auth_url, clock, SESSION_CHECK_TTL, crate::VERIFIED_TOKENS)
        .map_err(|e| StartError::Io(e.to_string()))?;
    Ok(Authenticator::new(tokens, Arc::new(sessions), watch.expected()))
}

type CheckFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// One thing a service needs in order to be ready; `Err(reason)` when it is missing.
#[derive(Clone)]
pub struct Check {
    pub name: &'static str,
    run: Arc<dyn Fn() -> CheckFuture + Send + Sync>,
}

impl std::fmt::Debug for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Check").field("name", &self.name).finish_non_exhaustive()
    }
}

impl Check {
    pub fn new<F, Fut>(name: &'static str, f: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        Check { name, run: Arc::new(move || Box::pin(f())) }
    }

    /// The database answers.
    pub fn database(db: fafnir_core::Db) -> Self {
        Check::new("database", move || {
            let db = db.clone();
            async move { db.ping().await.map_err(|_| "the database does not answer".to_owned()) }
        })
    }

    /// auth-service's tokens can be verified: its issuer is known and agreed, and its JWKS (when
    /// the keys are not configured from a file) is fetched again now and has keys.
    pub fn tokens(watch: IssuerWatch, jwks: Option<Arc<fafnir_core::jwks::JwksVerifier>>) -> Self {
        Check::new("auth-service", move || {
            let (watch, jwks) = (watch.clone(), jwks.clone());
            async move {
                if let Some(p) = watch.problem() {
                    return Err(p);
                }
                let Some(jwks) = jwks else { return Ok(()) };
                jwks.refresh().await.map_err(|e| e.to_string())?;
                if jwks.has_keys() {
                    Ok(())
                } else {
                    Err("auth-service's JWKS has no keys".into())
                }
            }
        })
    }

    /// A gRPC service answers SERVING on the standard health service.
    pub fn grpc(name: &'static str, channel: tonic::transport::Channel, service: &'static str) -> Self {
        Check::new(name, move || {
            let channel = channel.clone();
            async move {
                use tonic_health::pb::health_client::HealthClient;
                use tonic_health::pb::{health_check_response::ServingStatus, HealthCheckRequest};
                let r = HealthClient::new(channel)
                    .check(HealthCheckRequest { service: service.to_owned() })
                    .await
                    .map_err(|s| format!("{name} does not answer: {}", s.message()))?;
                if r.get_ref().status == ServingStatus::Serving as i32 {
                    Ok(())
                } else {
                    Err(format!("{name} is not serving"))
                }
            }
        })
    }
}

/// How long one readiness check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs `checks` concurrently: 200 `ready`, or 503 `not ready` with one line per failing check:
/// its reason on an internal port, only its name on a public one (api-gateway's), where the
/// reasons (internal URLs, configuration values) go to the log instead.
pub async fn readiness(checks: &[Check], public: bool) -> Response {
    let runs = checks.iter().map(|c| async move {
        match tokio::time::timeout(CHECK_TIMEOUT, (c.run)()).await {
            Ok(Ok(())) => None,
            Ok(Err(reason)) => Some((c.name, reason)),
            Err(_) => Some((c.name, format!("no answer within {CHECK_TIMEOUT:?}"))),
        }
    });
    let failures: Vec<(&str, String)> = futures_util::future::join_all(runs).await.into_iter().flatten().collect();
    if failures.is_empty() {
        return "ready".into_response();
    }
    let lines: Vec<String> = failures
        .iter()
        .map(|(name, reason)| {
            if public {
                tracing::warn!("not ready: {name}: {reason}");
                format!("{name}: not ready (the reason is in this service's log)")
            } else {
                format!("{name}: {reason}")
            }
        })
        .collect();
    (StatusCode::SERVICE_UNAVAILABLE, format!("not ready\n{}\n", lines.join("\n"))).into_response()
}
