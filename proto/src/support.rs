//! What both gRPC servers and their clients share: authenticating calls, internal tokens for
//! service-to-service event delivery, error mapping helpers and per-RPC telemetry.

use std::future::Future;
use std::time::{Duration, Instant};

use std::sync::Arc;

use fafnir_core::events::{AccountEvent, HandlerError};
use fafnir_core::keys::KeyManager;
use fafnir_core::token::{AccessClaims, Authenticator, TokenAudience, TokenError};
use fafnir_core::ServiceError;
use fafnir_core::{Clock, SessionId, SharedClock, UserId};
use tonic::metadata::MetadataMap;
use tonic::transport::Channel;
use tonic::Request;
use tonic::{Code, Status};

pub use fafnir_core::token::INTERNAL_AUDIENCE_SUFFIX;

/// The audience of internal tokens for an issuer audience `aud`.
pub fn internal_audience(expect: &TokenAudience) -> TokenAudience {
    expect.internal()
}

/// The Bearer token of a call's `authorization` metadata.
pub fn bearer(md: &MetadataMap) -> Option<&str> {
    let v = md.get("authorization")?.to_str().ok()?;
    v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")).map(str::trim).filter(|t| !t.is_empty())
}

/// Authenticates a user call: a genuine access token whose session is active, else
/// UNAUTHENTICATED (with a message that says what to send and nothing about why a token failed),
/// or UNAVAILABLE when that cannot be decided now (auth-service does not answer).
pub async fn authenticate(md: &MetadataMap, auth: &Authenticator) -> Result<AccessClaims, Status> {
    let Some(token) = bearer(md) else {
        return Err(Status::unauthenticated("send `authorization: Bearer <access token>` metadata"));
    };
    auth.user(token).await.map_err(token_status)
}

/// Authenticates an internal call (outbox delivery from auth-service).
pub async fn authenticate_internal(md: &MetadataMap, auth: &Authenticator) -> Result<(), Status> {
    let Some(token) = bearer(md) else {
        return Err(Status::unauthenticated("send `authorization: Bearer <internal token>` metadata"));
    };
    match auth.internal(token).await {
        Ok(_) => Ok(()),
        Err(TokenError::WrongIssuerOrAudience) => {
            // Said once per distinct cause in auth-service's log, where the operator looks.
            Err(Status::unauthenticated(wrong_issuer_message(token, auth)))
        }
        Err(e) => Err(token_status(e)),
    }
}

fn token_status(e: TokenError) -> Status {
    match e {
        TokenError::Unavailable => Status::unavailable("the token cannot be checked right now; retry shortly"),
        _ => Status::unauthenticated("the access token is invalid or expired"),
    }
}

/// "issuer `a` / audience `b` expected, token has `c` / `d`": what an operator needs to fix a
/// mismatched configuration. Only an issuer and an audience are named, both public.
fn wrong_issuer_message(token: &str, auth: &Authenticator) -> String {
    let presented = unverified_iss_aud(token);
    match (auth.expected().get(), presented) {
        (Some(e), Some((iss, aud))) => format!(
            "wrong token issuer or audience: this service expects issuer `{}` and audience `{}`, the token has issuer `{iss}` and audience `{aud}`",
            e.issuer,
            e.internal().audience
        ),
        _ => "the internal token is invalid or expired".into(),
    }
}

/// `iss` and `aud` of a token, read without verifying it (for an error message only).
fn unverified_iss_aud(token: &str) -> Option<(String, String)> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let clip = |s: &str| s.chars().take(200).collect::<String>();
    Some((clip(v.get("iss")?.as_str()?), clip(v.get("aud")?.as_str()?)))
}

/// Mints a one-minute internal token (needs the issuer's signing key).
pub fn internal_token(keys: &KeyManager, clock: &dyn Clock, expect: &TokenAudience) -> Result<String, Status> {
    let now = clock.now().timestamp();
    let nil = uuid::Uuid::nil();
    let claims = AccessClaims {
        iss: expect.issuer.clone(),
        aud: internal_audience(expect).audience,
        sub: UserId::from(nil),
        sid: SessionId::from(nil),
        iat: now,
        exp: now + 60,
        jti: uuid::Uuid::new_v4().simple().to_string(),
        nbf: None,
    };
    keys.sign(&claims).map_err(|e| Status::internal(format!("cannot sign an internal token: {e}")))
}

/// Parses a user id field; empty means `default` (the caller).
pub fn user_id_or(field: &str, value: &str, default: UserId) -> Result<UserId, Status> {
    if value.is_empty() {
        return Ok(default);
    }
    UserId::parse(value).map_err(|_| Status::invalid_argument(format!("{field} must be a UUID")))
}

/// Runs one RPC in a tracing span and records `fafnir_grpc_requests_total{service, method, code}`
/// and `fafnir_grpc_request_duration_seconds`.
pub async fn observe<T>(
    service: &'static str,
    method: &'static str,
    f: impl Future<Output = Result<T, Status>>,
) -> Result<T, Status> {
    use tracing::Instrument;
    let start = Instant::now();
    let span = tracing::info_span!("grpc", service, method);
    let r = f.instrument(span).await;
    let code = match &r {
        Ok(_) => Code::Ok,
        Err(s) => s.code(),
    };
    let labels = [("service", service.to_owned()), ("method", method.to_owned()), ("code", format!("{code:?}"))];
    metrics::counter!("fafnir_grpc_requests_total", &labels).increment(1);
    metrics::histogram!("fafnir_grpc_request_duration_seconds", &labels).record(start.elapsed().as_secs_f64());
    r
}

/// Whether a failed idempotent call is worth one more try.
pub fn retryable(s: &Status) -> bool {
    matches!(s.code(), Code::Unavailable | Code::Unknown) || s.message().contains("transport")
}

/// Retries an idempotent call on transient failure: up to `attempts` tries, 50 ms, 100 ms … apart.
pub async fn with_retries<T, F, Fut>(attempts: u32, mut f: F) -> Result<T, Status>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    let mut delay = Duration::from_millis(50);
    let mut last = None;
    for _ in 0..attempts.max(1) {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if retryable(&e) => {
                last = Some(e);
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| Status::unavailable("no attempt made")))
}

/// Timeouts and retries of the clients.
#[derive(Debug, Clone, Copy)]
pub struct ClientOptions {
    /// Per call.
    pub timeout: Duration,
    /// Tries of an idempotent read (checks, role reads) before giving up.
    pub attempts: u32,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self { timeout: Duration::from_secs(2), attempts: 3 }
    }
}

/// A lazily connected channel to `url` (`http://host:port`): creating it never fails because
/// the service is down; calls fail with UNAVAILABLE until it is up, and the channel reconnects.
pub fn channel(url: &str) -> Result<Channel, ServiceError> {
    Ok(Channel::from_shared(url.to_owned())
        .map_err(|e| ServiceError::Internal(format!("bad service URL {url}: {e}")))?
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true)
        .connect_lazy())
}

pub fn with_bearer<T>(msg: T, bearer: Option<&str>, timeout: Duration) -> Request<T> {
    let mut req = Request::new(msg);
    req.set_timeout(timeout);
    if let Some(mut v) = bearer.and_then(|b| format!("Bearer {b}").parse::<tonic::metadata::MetadataValue<_>>().ok()) {
        // Kept out of Debug output and of HTTP/2 header compression tables.
        v.set_sensitive(true);
        req.metadata_mut().insert("authorization", v);
    }
    req
}

/// Signs outbox deliveries to another service: each carries a fresh one-minute internal token.
#[derive(Debug, Clone)]
pub struct EventSigner {
    pub keys: Arc<KeyManager>,
    pub clock: SharedClock,
    pub audience: TokenAudience,
}

impl EventSigner {
    /// A `HandleAccountEvent` request built by `build` from the event's JSON, with the token and
    /// a 3 s deadline.
    pub fn request<T>(
        &self,
        event: &AccountEvent,
        build: impl FnOnce(String) -> T,
    ) -> Result<Request<T>, HandlerError> {
        let token =
            internal_token(&self.keys, self.clock.as_ref(), &self.audience).map_err(|e| HandlerError(e.to_string()))?;
        let json = serde_json::to_string(event).map_err(|e| HandlerError(e.to_string()))?;
        Ok(with_bearer(build(json), Some(&token), Duration::from_secs(3)))
    }
}
