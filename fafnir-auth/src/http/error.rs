//! The one place where errors become HTTP responses:
//! `{"error": {"code": "UPPER_SNAKE", "message": "…", "details": …}}`, with `Retry-After` on 429.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AuthError;

/// The error body of every endpoint (but `/auth/token`, which speaks OAuth 2.0).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable `UPPER_SNAKE` code, e.g. `INVALID_CREDENTIALS`.
    pub code: String,
    /// A sentence for humans; may change.
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
}

/// The `Retry-After` of a 503: a database or service that is down is retried by clients after
/// this many seconds.
pub const UNAVAILABLE_RETRY_SECS: u64 = 2;

/// An error on its way out.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Option<serde_json::Value>,
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), details: None, retry_after_secs: None }
    }

    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "authentication required")
    }

    pub fn csrf() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "CSRF_TOKEN_INVALID",
            "this request needs the X-CSRF-Token header equal to the fafnir_csrf cookie, from an allowed origin",
        )
    }

    pub fn permission_denied(permission: &str) -> Self {
        Self::new(StatusCode::FORBIDDEN, "PERMISSION_DENIED", format!("this needs the permission {permission}"))
    }

    /// 503 `SERVICE_UNAVAILABLE` with `Retry-After`: something this server depends on (its
    /// database, the permission service) does not answer. Nothing was changed.
    pub fn unavailable(what: &str) -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "SERVICE_UNAVAILABLE",
            format!("{what} is unavailable; try again shortly"),
        );
        e.retry_after_secs = Some(UNAVAILABLE_RETRY_SECS);
        e
    }

    /// [`ApiError::unavailable`] with the cause, when it is known and safe to tell.
    pub fn unavailable_because(what: &str, why: &str) -> Self {
        let mut e = Self::unavailable(what);
        e.message = format!("{what} is unavailable: {why}");
        e
    }

    pub fn rate_limited(retry_after_secs: u64) -> Self {
        let secs = retry_after_secs.max(1);
        let unit = if secs == 1 { "second" } else { "seconds" };
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "RATE_LIMITED",
            format!("too many attempts; try again in {secs} {unit}"),
        );
        e.retry_after_secs = Some(retry_after_secs.max(1));
        e
    }

    pub fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", "internal error")
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let code = e.code();
        let (status, details) = match &e {
            AuthError::Validation { field, .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, Some(serde_json::json!({ "field": field })))
            }
            AuthError::EmailTaken => (StatusCode::CONFLICT, None),
            AuthError::InvalidCredentials
            | AuthError::Unauthorized
            | AuthError::InvalidRefreshToken
            | AuthError::RefreshTokenReused => (StatusCode::UNAUTHORIZED, None),
            AuthError::RateLimited { retry_after } => return ApiError::rate_limited(retry_after.as_secs()),
            AuthError::SessionNotFound | AuthError::UserNotFound => (StatusCode::NOT_FOUND, None),
            AuthError::TokenInvalid => (StatusCode::BAD_REQUEST, None),
            AuthError::EmailNotVerified | AuthError::AccountDisabled | AuthError::Forbidden(_) => {
                (StatusCode::FORBIDDEN, None)
            }
            AuthError::SignupDisabled => (StatusCode::FORBIDDEN, None),
            AuthError::MfaRequired { methods, .. } => {
                (StatusCode::UNAUTHORIZED, Some(serde_json::json!({ "methods": methods })))
            }
            AuthError::InvalidMfaCode | AuthError::MfaTokenInvalid => (StatusCode::UNAUTHORIZED, None),
            AuthError::MfaAlreadyEnabled | AuthError::MfaNotEnabled => (StatusCode::CONFLICT, None),
            AuthError::ProviderNotFound | AuthError::IdentityNotFound => (StatusCode::NOT_FOUND, None),
            AuthError::LastSignInMethod => (StatusCode::CONFLICT, None),
            AuthError::ReauthenticationRequired => (StatusCode::UNAUTHORIZED, None),
            AuthError::OAuth(r) => (
                match r {
                    crate::oauth::Refusal::ProviderError => StatusCode::BAD_GATEWAY,
                    crate::oauth::Refusal::RateLimited => StatusCode::TOO_MANY_REQUESTS,
                    crate::oauth::Refusal::Unauthorized => StatusCode::UNAUTHORIZED,
                    crate::oauth::Refusal::AccountNotLinked | crate::oauth::Refusal::IdentityLinkedElsewhere => {
                        StatusCode::CONFLICT
                    }
                    _ => StatusCode::FORBIDDEN,
                },
                None,
            ),
            AuthError::PasskeyRejected | AuthError::PasskeyCeremonyInvalid => (StatusCode::BAD_REQUEST, None),
            AuthError::PasskeyNotFound => (StatusCode::NOT_FOUND, None),
            AuthError::PasskeysUnavailable => (StatusCode::SERVICE_UNAVAILABLE, None),
            AuthError::Busy => return ApiError::unavailable("the server"),
            AuthError::Store(inner) if inner.is_unavailable() => {
                tracing::warn!(error = %inner, "database unavailable");
                return ApiError::unavailable("the database");
            }
            AuthError::Config(_) | AuthError::Store(_) => {
                tracing::error!(error = %e, "request failed");
                return ApiError::internal();
            }
        };
        ApiError { status, code, message: e.to_string(), details, retry_after_secs: None }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail { code: self.code.to_owned(), message: self.message, details: self.details },
        };
        let mut res = (self.status, Json(body)).into_response();
        if let Some(s) = self.retry_after_secs {
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            // RFC 6750 §3: how to authenticate. A refresh-token failure is not about the access
            // token, so it names no error.
            let value = if self.code == "UNAUTHORIZED" {
                r#"Bearer realm="fafnir", error="invalid_token""#
            } else {
                r#"Bearer realm="fafnir""#
            };
            res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(value));
        }
        res
    }
}
