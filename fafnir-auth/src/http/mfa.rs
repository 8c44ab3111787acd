//! Second factors over REST: TOTP setup, confirmation and removal, recovery codes, and the
//! login step-up (`POST /auth/mfa/verify`).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::body::JsonBody;
use super::dto::*;
use super::error::{ApiError, ErrorBody};
use super::extract::{Client, CurrentUser};
use super::handlers::{no_store, origin_check, session_response, token_response};
use super::{cookies, AuthHttp};
use crate::mfa::{Factor, Reauth, Via};
use crate::AuthError;

pub(super) fn routes() -> OpenApiRouter<AuthHttp> {
    OpenApiRouter::new()
        .routes(routes!(status))
        .routes(routes!(totp_setup))
        .routes(routes!(totp_confirm))
        .routes(routes!(totp_disable))
        .routes(routes!(recovery_codes))
        .routes(routes!(verify))
}

fn factor<'a>(code: Option<&'a str>, recovery: Option<&'a str>) -> Result<Factor<'a>, ApiError> {
    match (code, recovery) {
        (Some(c), None) => Ok(Factor::Totp(c)),
        (None, Some(r)) => Ok(Factor::RecoveryCode(r)),
        _ => Err(AuthError::Validation { field: "code", message: "give either code or recovery_code".into() }.into()),
    }
}

pub(super) fn reauth(r: &ReauthRequest) -> Result<Reauth<'_>, ApiError> {
    match (r.code.as_deref(), r.recovery_code.as_deref(), r.password.as_deref()) {
        (Some(c), None, None) => Ok(Reauth::Factor(Factor::Totp(c))),
        (None, Some(c), None) => Ok(Reauth::Factor(Factor::RecoveryCode(c))),
        (None, None, Some(p)) => Ok(Reauth::Password(p)),
        _ => {
            Err(AuthError::Validation { field: "code", message: "give one of code, recovery_code or password".into() }
                .into())
        }
    }
}

/// Recovery codes, shown once: never cached.
fn codes_response(codes: Vec<String>) -> Response {
    let mut res = Json(RecoveryCodesResponse { recovery_codes: codes }).into_response();
    no_store(res.headers_mut());
    res
}

/// The caller's second factors.
#[utoipa::path(get, path = "/auth/mfa", tag = "mfa",
    responses(
        (status = 200, body = MfaStatusResponse),
        (status = 401, description = "UNAUTHORIZED", body = ErrorBody),
        (status = 503, description = "SERVICE_UNAVAILABLE: the database does not answer", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = [])))]
async fn status(State(h): State<AuthHttp>, CurrentUser(who): CurrentUser) -> Result<Json<MfaStatusResponse>, ApiError> {
    let s = h.auth().mfa_status(who.user_id).await?;
    Ok(Json(MfaStatusResponse { totp: s.totp, passkeys: s.passkeys, recovery_codes_left: s.recovery_codes_left }))
}

/// Start TOTP: a new secret for the authenticator app. Not in force until confirmed with a code.
#[utoipa::path(post, path = "/auth/mfa/totp/setup", tag = "mfa",
    responses(
        (status = 200, body = TotpSetupResponse),
        (status = 401, description = "UNAUTHORIZED, or REAUTHENTICATION_REQUIRED (the sign-in is over 10 minutes old)", body = ErrorBody),
        (status = 403, description = "CSRF_TOKEN_INVALID (cookie authentication)", body = ErrorBody),
        (status = 409, description = "MFA_ALREADY_ENABLED", body = ErrorBody),
        (status = 503, description = "SERVICE_UNAVAILABLE: the database does not answer", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = [])))]
async fn totp_setup(State(h): State<AuthHttp>, CurrentUser(who): CurrentUser) -> Result<Response, ApiError> {
    let s = h.auth().totp_setup(&who).await?;
    let mut res = Json(TotpSetupResponse { secret: s.secret, otpauth_url: s.otpauth_url }).into_response();
    no_store(res.headers_mut());
    Ok(res)
}

/// Turn TOTP on with a first code from the app. Answers the ten recovery codes, shown once.
#[utoipa::path(post, path = "/auth/mfa/totp/confirm", tag = "mfa", request_body = TotpCodeRequest,
    responses(
        (status = 200, body = RecoveryCodesResponse),
        (status = 401, description = "UNAUTHORIZED, INVALID_MFA_CODE, or REAUTHENTICATION_REQUIRED (the sign-in is over 10 minutes old)", body = ErrorBody),
        (status = 403, description = "CSRF_TOKEN_INVALID (cookie authentication)", body = ErrorBody),
        (status = 409, description = "MFA_ALREADY_ENABLED, or MFA_NOT_ENABLED (no setup started)", body = ErrorBody),
        (status = 422, description = "VALIDATION_FAILED: the JSON has the wrong shape", body = ErrorBody),
        (status = 429, description = "RATE_LIMITED: too many wrong codes", body = ErrorBody),
        (status = 400, description = "MALFORMED_JSON, or INVALID_REQUEST when the body cannot be read", body = ErrorBody),
        (status = 413, description = "PAYLOAD_TOO_LARGE: the body is over 64 KiB", body = ErrorBody),
        (status = 415, description = "UNSUPPORTED_MEDIA_TYPE: the body is not application/json", body = ErrorBody),
        (status = 503, description = "SERVICE_UNAVAILABLE: the database does not answer", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = [])))]
async fn totp_confirm(
    State(h): State<AuthHttp>,
    CurrentUser(who): CurrentUser,
    Client(client): Client,
    JsonBody(req): JsonBody<TotpCodeRequest>,
) -> Result<Response, ApiError> {
    Ok(codes_response(h.auth().totp_confirm(&who, &req.code, &client).await?))
}

/// Turn TOTP off (the recovery codes go too), with a code, a recovery code or the password.
#[utoipa::path(delete, path = "/auth/mfa/totp", tag = "mfa", request_body = ReauthRequest,
    responses(
        (status = 204, description = "Off"),
        (status = 401, description = "UNAUTHORIZED, INVALID_MFA_CODE or INVALID_CREDENTIALS", body = ErrorBody),
        (status = 403, description = "CSRF_TOKEN_INVALID (cookie authentication)", body = ErrorBody),
        (status = 409, description = "MFA_NOT_ENABLED", body = ErrorBody),
        (status = 422, description = "VALIDATION_FAILED: not exactly one of code, recovery_code, password", body = ErrorBody),
        (status = 429, description = "RATE_LIMITED", body = ErrorBody),
        (status = 400, description = "MALFORMED_JSON, or INVALID_REQUEST when the body cannot be read", body = ErrorBody),
        (status = 413, description = "PAYLOAD_TOO_LARGE: the body is over 64 KiB", body = ErrorBody),
        (status = 415, description = "UNSUPPORTED_MEDIA_TYPE: the body is not application/json", body = ErrorBody),
        (status = 503, description = "SERVICE_UNAVAILABLE: the database does not answer", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = [])))]
async fn totp_disable(
    State(h): State<AuthHttp>,
    CurrentUser(who): CurrentUser,
    Client(client): Client,
    JsonBody(req): JsonBody<ReauthRequest>,
) -> Result<StatusCode, ApiError> {
    h.auth().totp_disable(&who, reauth(&req)?, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new set of recovery codes (the old ones stop working), after re-authentication.
#[utoipa::path(post, path = "/auth/mfa/recovery-codes", tag = "mfa", request_body = ReauthRequest,
    responses(
        (status = 200, body = RecoveryCodesResponse),
        (status = 401, description = "UNAUTHORIZED, INVALID_MFA_CODE or INVALID_CREDENTIALS", body = ErrorBody),
        (status = 403, description = "CSRF_TOKEN_INVALID (cookie authentication)", body = ErrorBody),
        (status = 409, description = "MFA_NOT_ENABLED", body = ErrorBody),
        (status = 422, description = "VALIDATION_FAILED", body = ErrorBody),
        (status = 429, description = "RATE_LIMITED", body = ErrorBody),
        (status = 400, description = "MALFORMED_JSON, or INVALID_REQUEST when the body cannot be read", body = ErrorBody),
        (status = 413, description = "PAYLOAD_TOO_LARGE: the body is over 64 KiB", body = ErrorBody),
        (status = 415, description = "UNSUPPORTED_MEDIA_TYPE: the body is not application/json", body = ErrorBody),
        (status = 503, description = "SERVICE_UNAVAILABLE: the database does not answer", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = [])))]
async fn recovery_codes(
    State(h): State<AuthHttp>,
    CurrentUser(who): CurrentUser,
    Client(client): Client,
    JsonBody(req): JsonBody<ReauthRequest>,
) -> Result<Response, ApiError> {
    Ok(codes_response(h.auth().regenerate_recovery_codes(&who, reauth(&req)?, &client).await?))
}

/// Finish a login held at the second factor: a TOTP code or a recovery code, with the
/// `mfa_token` of the login answer (or, after a provider sign-in, the `fafnir_mfa` cookie).
/// Answers exactly as the login would have: the three cookies and `{user, access_expires_at}`,
/// or, for a login started at `/auth/token`, the token endpoint's answer.
#[utoipa::path(post, path = "/auth/mfa/verify", tag = "mfa", request_body = MfaVerifyRequest,
    responses(
        (status = 200, description = "Signed in: three cookies and LoginResponse, or TokenResponse (no cookies) when the login began at /auth/token", body = LoginResponse),
        (status = 401, description = "INVALID_MFA_CODE, or MFA_TOKEN_INVALID (unknown, used, expired, or five wrong codes: sign in again)", body = ErrorBody),
        (status = 403, description = "CSRF_TOKEN_INVALID: Origin not allowed; ACCOUNT_DISABLED", body = ErrorBody),
        (status = 422, description = "VALIDATION_FAILED: not exactly one of code and recovery_code, or no mfa_token", body = ErrorBody),
        (status = 429, description = "RATE_LIMITED: too many wrong codes", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
        (status = 400, description = "MALFORMED_JSON, or INVALID_REQUEST when the body cannot be read", body = ErrorBody),
        (status = 413, description = "PAYLOAD_TOO_LARGE: the body is over 64 KiB", body = ErrorBody),
        (status = 415, description = "UNSUPPORTED_MEDIA_TYPE: the body is not application/json", body = ErrorBody),
        (status = 503, description = "SERVICE_UNAVAILABLE: the database does not answer", body = ErrorBody),
    ))]
async fn verify(
    State(h): State<AuthHttp>,
    Client(client): Client,
    headers: HeaderMap,
    JsonBody(req): JsonBody<MfaVerifyRequest>,
) -> Result<Response, ApiError> {
    origin_check(&h, &headers)?;
    let secure = h.settings().cookie_secure;
    let token =
        req.mfa_token.clone().or_else(|| cookies::read(&headers, cookies::mfa_name(secure))).ok_or_else(|| {
            ApiError::from(AuthError::Validation {
                field: "mfa_token",
                message: "the login's mfa_token is missing".into(),
            })
        })?;
    let f = factor(req.code.as_deref(), req.recovery_code.as_deref())?;
    let r = h.auth().mfa_verify(&token, f, &client).await;
    metrics::counter!("fafnir_mfa_verifications_total", "outcome" => match &r {
        Ok(_) => "success",
        Err(e) => e.code(),
    })
    .increment(1);
    let (login, via) = match r {
        Ok(v) => v,
        // A dead challenge: its cookie goes too (a planted or stale one would stay in the way).
        Err(e @ AuthError::MfaTokenInvalid) => {
            let mut res = ApiError::from(e).into_response();
            cookies::clear_mfa(res.headers_mut(), secure);
            return Ok(res);
        }
        Err(e) => return Err(e.into()),
    };
    let mut res = match via {
        Via::Token => token_response(&login),
        Via::Session => session_response(&h, &login),
    };
    cookies::clear_mfa(res.headers_mut(), secure);
    no_store(res.headers_mut());
    Ok(res)
}
