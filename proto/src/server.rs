//! What both gRPC servers share: authenticating calls (user tokens and the internal tokens of
//! event delivery), reading ids, and per-RPC telemetry.

use std::future::Future;
use std::time::Instant;

use fafnir_core::token::{AccessClaims, Authenticator, TokenError};
use fafnir_core::UserId;
use tonic::metadata::MetadataMap;
use tonic::{Code, Status};

pub use fafnir_core::token::INTERNAL_AUDIENCE_SUFFIX;

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

/// The caller of a user call: [`authenticate`]'s subject.
pub async fn caller(md: &MetadataMap, auth: &Authenticator) -> Result<UserId, Status> {
    Ok(authenticate(md, auth).await?.sub)
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

/// The refusal of a call whose caller lacks `permission`.
pub fn missing_permission(permission: &str) -> Status {
    crate::status::with_reason(
        Code::PermissionDenied,
        format!("this needs the permission {permission}"),
        "MISSING_PERMISSION",
        &[],
    )
}

/// Parses a user id field.
pub fn user_id(field: &str, value: &str) -> Result<UserId, Status> {
    UserId::parse(value).map_err(|_| {
        let m = format!("{field} must be a UUID");
        crate::status::with_reason(Code::InvalidArgument, m.clone(), "INVALID_USER_ID", &[(field, &m)])
    })
}

/// Parses a user id field; empty means `default` (the caller).
pub fn user_id_or(field: &str, value: &str, default: UserId) -> Result<UserId, Status> {
    if value.is_empty() {
        return Ok(default);
    }
    user_id(field, value)
}

/// Runs one RPC in a tracing span and records
/// `fafnir_grpc_requests_total{grpc_service, grpc_method, grpc_code}` and
/// `fafnir_grpc_request_duration_seconds` (`grpc_`-prefixed: Prometheus's scrape configuration
/// adds its own `service` label to every series).
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
    // Static labels: no allocation per call.
    let labels = [
        metrics::Label::from_static_parts("grpc_service", service),
        metrics::Label::from_static_parts("grpc_method", method),
        metrics::Label::from_static_parts("grpc_code", code_label(code)),
    ];
    metrics::counter!("fafnir_grpc_requests_total", labels.iter()).increment(1);
    metrics::histogram!("fafnir_grpc_request_duration_seconds", labels.iter()).record(start.elapsed().as_secs_f64());
    r
}

/// A status code as its metric label: the variant's name (`PermissionDenied`).
fn code_label(code: Code) -> &'static str {
    match code {
        Code::Ok => "Ok",
        Code::Cancelled => "Cancelled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}
