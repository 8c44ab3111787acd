//! The gateway's one error type and its mapping from every service's errors: each GraphQL
//! error carries `extensions.code` (and, where REST gave one, `extensions.reason`).

use async_graphql::ErrorExtensions;
use fafnir_auth::http::ErrorBody;
use fafnir_core::ServiceError;
use fafnir_users::UsersError;

use super::upstream::{Unavailable, UpstreamResponse};

/// The codes of `extensions.code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Unauthenticated,
    Forbidden,
    BadUserInput,
    NotFound,
    RateLimited,
    CsrfTokenInvalid,
    Unavailable,
    Internal,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Unauthenticated => "UNAUTHENTICATED",
            Code::Forbidden => "FORBIDDEN",
            Code::BadUserInput => "BAD_USER_INPUT",
            Code::NotFound => "NOT_FOUND",
            Code::RateLimited => "RATE_LIMITED",
            Code::CsrfTokenInvalid => "CSRF_TOKEN_INVALID",
            Code::Unavailable => "UNAVAILABLE",
            Code::Internal => "INTERNAL",
        }
    }
}

/// An error a resolver returns. Clone (the batch loader shares one failure among its keys).
#[derive(Debug, Clone)]
pub struct GqlError {
    pub code: Code,
    pub message: String,
    /// The REST error code behind it (`EMAIL_TAKEN`, `INVALID_CREDENTIALS`…).
    pub reason: Option<String>,
    /// The offending field, for validation failures.
    pub field: Option<String>,
    /// Seconds to wait, for `RATE_LIMITED`.
    pub retry_after: Option<u64>,
    /// For `login` of an account with a second factor (`reason: MFA_REQUIRED`): the challenge
    /// to answer with `verifyMfa`, and the methods it takes.
    pub mfa: Option<Box<MfaChallenge>>,
}

/// A login's MFA challenge, carried to the client in the error's extensions. `Debug` hides it.
#[derive(Clone)]
pub struct MfaChallenge {
    pub token: String,
    pub methods: Vec<String>,
}

impl std::fmt::Debug for MfaChallenge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MfaChallenge").field("methods", &self.methods).finish_non_exhaustive()
    }
}

impl GqlError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), reason: None, field: None, retry_after: None, mfa: None }
    }

    pub fn unauthenticated() -> Self {
        Self::new(Code::Unauthenticated, "log in first: send the access cookie or an Authorization: Bearer token")
    }

    pub fn forbidden(permission: &str) -> Self {
        Self::new(Code::Forbidden, format!("this needs the permission {permission}"))
    }

    pub fn bad_input(field: &str, message: impl Into<String>) -> Self {
        Self { field: Some(field.to_owned()), ..Self::new(Code::BadUserInput, message) }
    }

    pub fn csrf() -> Self {
        Self::new(
            Code::CsrfTokenInvalid,
            "a mutation authenticated by cookie needs the X-CSRF-Token header (the fafnir_csrf cookie's value) from an allowed origin",
        )
    }

    pub fn unavailable(service: &str) -> Self {
        Self::new(Code::Unavailable, format!("{service} is unavailable; try again shortly"))
    }

    fn internal() -> Self {
        Self::new(Code::Internal, "internal error")
    }
}

/// `avatar_url` → `avatarUrl`: fields are named as in the schema.
fn camel(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut upper = false;
    for c in field.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

impl From<GqlError> for async_graphql::Error {
    fn from(e: GqlError) -> Self {
        async_graphql::Error::new(e.message.clone()).extend_with(|_, ext| {
            ext.set("code", e.code.as_str());
            if let Some(r) = &e.reason {
                ext.set("reason", r.as_str());
            }
            if let Some(f) = &e.field {
                ext.set("field", camel(f));
            }
            if let Some(s) = e.retry_after {
                ext.set("retryAfter", s);
            }
            if let Some(m) = &e.mfa {
                ext.set("mfaToken", m.token.as_str());
                ext.set("methods", m.methods.clone());
            }
        })
    }
}

/// A service behind the gateway failed: which one, for the message.
pub fn service(name: &str, e: ServiceError) -> GqlError {
    match e {
        ServiceError::Unavailable(m) => {
            tracing::warn!(service = name, error = %m, "service unavailable");
            GqlError::unavailable(name)
        }
        ServiceError::Unauthenticated => GqlError::unauthenticated(),
        ServiceError::Forbidden(m) => GqlError::new(Code::Forbidden, m),
        ServiceError::NotFound(m) => GqlError::new(Code::NotFound, m),
        ServiceError::InvalidArgument(m) => GqlError::new(Code::BadUserInput, m),
        ServiceError::Internal(m) => {
            tracing::error!(service = name, error = %m, "service failed");
            GqlError::internal()
        }
    }
}

pub fn users(e: UsersError) -> GqlError {
    match e {
        UsersError::NotFound => GqlError::new(Code::NotFound, "no such profile"),
        UsersError::Validation(errors) => {
            let field = errors.first().map(|f| f.field.to_string());
            GqlError { field, ..GqlError::new(Code::BadUserInput, UsersError::Validation(errors).to_string()) }
        }
        UsersError::InvalidCursor => GqlError::bad_input("after", "invalid page cursor"),
        UsersError::InvalidPageSize => GqlError::bad_input("first", e.to_string()),
        UsersError::Unauthenticated => GqlError::unauthenticated(),
        UsersError::Forbidden(m) => GqlError::new(Code::Forbidden, m),
        UsersError::Unavailable(m) => {
            tracing::warn!(error = %m, "user-service unavailable");
            GqlError::unavailable("the user service")
        }
        UsersError::Store(inner) => {
            tracing::error!(error = %inner, "profile store failed");
            GqlError::unavailable("the user service")
        }
    }
}

pub fn upstream_unavailable(e: Unavailable) -> GqlError {
    tracing::warn!(error = %e, "auth-service unavailable");
    GqlError::unavailable("the auth service")
}

/// A REST error answer of auth-service, as a GraphQL error.
pub fn rest(res: &UpstreamResponse) -> GqlError {
    let parsed: Option<ErrorBody> = serde_json::from_slice(&res.body).ok();
    let (reason, message, details) = match parsed {
        Some(e) => (Some(e.error.code), e.error.message, e.error.details),
        None => (None, format!("auth-service answered {}", res.status), None),
    };
    let code = match res.status.as_u16() {
        400 | 409 | 413 | 415 | 422 => Code::BadUserInput,
        401 => Code::Unauthenticated,
        403 if reason.as_deref() == Some("CSRF_TOKEN_INVALID") => Code::CsrfTokenInvalid,
        403 => Code::Forbidden,
        404 => Code::NotFound,
        429 => Code::RateLimited,
        502..=504 => Code::Unavailable,
        _ => {
            tracing::error!(status = %res.status, "auth-service failed");
            return GqlError::internal();
        }
    };
    let retry_after =
        res.headers.get(axum::http::header::RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    let field = details.as_ref().and_then(|d| d.get("field")).and_then(|f| f.as_str()).map(str::to_owned);
    GqlError { code, message, reason, field, retry_after, mfa: None }
}
