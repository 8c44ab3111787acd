//! Passkeys over REST: registration (signed in), usernameless sign-in, listing, renaming and
//! removal.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::body::JsonBody;
use super::dto::*;
use super::error::{ApiError, ErrorBody};
use super::extract::{Client, CurrentUser};
use super::handlers::{no_store, origin_check, session_response};
use super::AuthHttp;
use crate::passkey::PasskeyStart;
use crate::AuthError;

pub(super) fn routes() -> OpenApiRouter<AuthHttp> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(register_start))
        .routes(routes!(register_finish))
        .routes(routes!(login_start))
        .routes(routes!(login_finish))
        .routes(routes!(rename, remove))
}

fn start_response(s: PasskeyStart) -> Response {
    let mut res = Json(PasskeyStartResponse { ceremony: s.ceremony, options: s.options }).into_response();
    no_store(res.headers_mut());
    res
}

fn passkey_id(id: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(id).map_err(|_| ApiError::from(AuthError::PasskeyNotFound))
}

/// The caller's passkeys, oldest first.
#[utoipa::path(get, path = "/auth/passkeys", tag = "passkeys",
    responses(
        (status = 200, body = [PasskeyDto]),
        (status = 401, description = "UNAUTHORIZED", body = ErrorBody),
        (status = 503, description = "SERVICE_UNAVAILABLE: the database does not answer", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = [])))]
async fn list(State(h): State<AuthHttp>, CurrentUser(who): CurrentUser) -> Result<Json<Vec<PasskeyDto>>, ApiError> {
    Ok(Json(h.auth().passkeys(who.user_id).await?.into_iter().map(PasskeyDto::from).collect()))
}

/// Start registering a passkey (a sign-in within the last 10 minutes): options for
/// `navigator.credentials.create()`. A discoverable credential with user verification.
#[utoipa::path(post, path = "/auth/passkeys/register/start", tag = "passkeys",
    responses(
        (status = 200, body = PasskeyStartResponse),
        (status = 401, description = "UNAUTHORIZED, or REAUTHENTICATION_REQUIRED (the sign-in is over 10 minutes old)", body = ErrorBody),
        (status = 403, description = "CSRF_TOKEN_INVALID (cookie authentication)", body = ErrorBody),
        (status = 422, description = "VALIDATION_FAILED: the account holds 20 passkeys already", body = ErrorBody),
        (status = 503, description = "PASSKEYS_UNAVAILABLE (no relying party: FAFNIR_PUBLIC_URL is an IP address), or SERVICE_UNAVAILABLE", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = [])))]
async fn register_start(State(h): State<AuthHttp>, CurrentUser(who): CurrentUser) -> Result<Response, ApiError> {
    Ok(start_response(h.auth().passkey_register_start(&who).await?))
}

/// Finish the registration with the browser's answer. The account's first second factor
/// answers its ten recovery codes too (shown once). From now on a password alone no longer
/// signs this account in.
#[utoipa::path(post, path = "/auth/passkeys/register/finish", tag = "passkeys", request_body = PasskeyRegisterFinishRequest,
    responses(
        (status = 200, body = PasskeyRegisteredResponse),
        (status = 400, description = "PASSKEY_REJECTED (wrong origin or relying party, no user verification, registered already), PASSKEY_CEREMONY_INVALID (unknown, used, expired: start again), MALFORMED_JSON, or INVALID_REQUEST", body = ErrorBody),
        (status = 401, description = "UNAUTHORIZED", body = ErrorBody),
        (status = 403, description = "CSRF_TOKEN_INVALID (cookie authentication)", body = ErrorBody),
        (status = 413, description = "PAYLOAD_TOO_LARGE: the body is over 64 KiB", body = ErrorBody),
        (status = 415, description = "UNSUPPORTED_MEDIA_TYPE: the body is not application/json", body = ErrorBody),
        (status = 422, description = "VALIDATION_FAILED: the credential is not a WebAuthn registration, or the name is too long", body = ErrorBody),
        (status = 503, description = "PASSKEYS_UNAVAILABLE, or SERVICE_UNAVAILABLE", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = [])))]
async fn register_finish(
    State(h): State<AuthHttp>,
    CurrentUser(who): CurrentUser,
    Client(client): Client,
    JsonBody(req): JsonBody<PasskeyRegisterFinishRequest>,
) -> Result<Response, ApiError> {
    let r = h.auth().passkey_register_finish(&who, &req.ceremony, &req.credential, req.name.as_deref(), &client).await;
    metrics::counter!("fafnir_passkey_ceremonies_total", "kind" => "register", "outcome" => match &r {
        Ok(_) => "success",
        Err(e) => e.code(),
    })
    .increment(1);
    let r = r?;
    let mut res =
        Json(PasskeyRegisteredResponse { passkey: r.passkey.into(), recovery_codes: r.recovery_codes }).into_response();
    no_store(res.headers_mut());
    Ok(res)
}

/// Start a passkey sign-in: options for `navigator.credentials.get()` with no credential list
/// (the browser offers the passkeys it holds for this site; no e-mail needed).
#[utoipa::path(post, path = "/auth/passkeys/login/start", tag = "passkeys",
    responses(
        (status = 200, body = PasskeyStartResponse),
        (status = 403, description = "CSRF_TOKEN_INVALID: Origin not allowed", body = ErrorBody),
        (status = 503, description = "PASSKEYS_UNAVAILABLE, or SERVICE_UNAVAILABLE", body = ErrorBody),
    ))]
async fn login_start(State(h): State<AuthHttp>, headers: HeaderMap) -> Result<Response, ApiError> {
    origin_check(&h, &headers)?;
    Ok(start_response(h.auth().passkey_sign_in_start().await?))
}

/// Finish a passkey sign-in with the browser's assertion. Counts as two factors: answers
/// exactly as a password login of an account without a second factor (three cookies and
/// `{user, access_expires_at}`).
#[utoipa::path(post, path = "/auth/passkeys/login/finish", tag = "passkeys", request_body = PasskeyLoginFinishRequest,
    responses(
        (status = 200, description = "Signed in: three cookies and LoginResponse", body = LoginResponse),
        (status = 400, description = "PASSKEY_REJECTED (wrong origin or relying party, unknown credential, bad signature, no user verification, a replayed or cloned answer), PASSKEY_CEREMONY_INVALID, MALFORMED_JSON, or INVALID_REQUEST", body = ErrorBody),
        (status = 403, description = "CSRF_TOKEN_INVALID: Origin not allowed; ACCOUNT_DISABLED; EMAIL_NOT_VERIFIED", body = ErrorBody),
        (status = 413, description = "PAYLOAD_TOO_LARGE: the body is over 64 KiB", body = ErrorBody),
        (status = 415, description = "UNSUPPORTED_MEDIA_TYPE: the body is not application/json", body = ErrorBody),
        (status = 422, description = "VALIDATION_FAILED: the credential is not a WebAuthn assertion", body = ErrorBody),
        (status = 503, description = "PASSKEYS_UNAVAILABLE, or SERVICE_UNAVAILABLE", body = ErrorBody),
    ))]
async fn login_finish(
    State(h): State<AuthHttp>,
    Client(client): Client,
    headers: HeaderMap,
    JsonBody(req): JsonBody<PasskeyLoginFinishRequest>,
) -> Result<Response, ApiError> {
    origin_check(&h, &headers)?;
    let r = h.auth().passkey_sign_in_finish(&req.ceremony, &req.credential, &client).await;
    metrics::counter!("fafnir_passkey_ceremonies_total", "kind" => "sign_in", "outcome" => match &r {
        Ok(_) => "success",
        Err(e) => e.code(),
    })
    .increment(1);
    let login = r?;
    let mut res = session_response(&h, &login);
    no_store(res.headers_mut());
    Ok(res)
}

/// Rename one of the caller's passkeys.
#[utoipa::path(patch, path = "/auth/passkeys/{id}", tag = "passkeys", request_body = PasskeyRenameRequest,
    params(("id" = String, Path, format = Uuid, description = "The passkey's id")),
    responses(
        (status = 200, body = PasskeyDto),
        (status = 400, description = "MALFORMED_JSON, or INVALID_REQUEST when the body cannot be read", body = ErrorBody),
        (status = 401, description = "UNAUTHORIZED", body = ErrorBody),
        (status = 403, description = "CSRF_TOKEN_INVALID (cookie authentication)", body = ErrorBody),
        (status = 404, description = "NOT_FOUND: no such passkey on this account", body = ErrorBody),
        (status = 413, description = "PAYLOAD_TOO_LARGE: the body is over 64 KiB", body = ErrorBody),
        (status = 415, description = "UNSUPPORTED_MEDIA_TYPE: the body is not application/json", body = ErrorBody),
        (status = 422, description = "VALIDATION_FAILED: the name is empty, too long, or has control characters", body = ErrorBody),
        (status = 503, description = "SERVICE_UNAVAILABLE: the database does not answer", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = [])))]
async fn rename(
    State(h): State<AuthHttp>,
    CurrentUser(who): CurrentUser,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<PasskeyRenameRequest>,
) -> Result<Json<PasskeyDto>, ApiError> {
    let id = passkey_id(&id)?;
    Ok(Json(h.auth().rename_passkey(&who, id, &req.name).await?.into()))
}

/// Remove one of the caller's passkeys (a sign-in within the last 10 minutes). Removing the
/// account's last second factor also needs one of the password, a TOTP code or a recovery code
/// in the body (as turning TOTP off does), and takes the recovery codes with it; the last way
/// to sign in cannot be removed.
#[utoipa::path(delete, path = "/auth/passkeys/{id}", tag = "passkeys", request_body(content = Option<ReauthRequest>, description = "Needed for the last second factor"),
    params(("id" = String, Path, format = Uuid, description = "The passkey's id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, description = "MALFORMED_JSON", body = ErrorBody),
        (status = 401, description = "UNAUTHORIZED, INVALID_CREDENTIALS or INVALID_MFA_CODE (a wrong proof), or REAUTHENTICATION_REQUIRED (the sign-in is over 10 minutes old, or the last second factor goes without a proof)", body = ErrorBody),
        (status = 422, description = "VALIDATION_FAILED: more than one of code, recovery_code, password", body = ErrorBody),
        (status = 429, description = "RATE_LIMITED: too many wrong proofs", body = ErrorBody),
        (status = 403, description = "CSRF_TOKEN_INVALID (cookie authentication)", body = ErrorBody),
        (status = 404, description = "NOT_FOUND: no such passkey on this account", body = ErrorBody),
        (status = 409, description = "LAST_SIGN_IN_METHOD: no password, provider or other passkey would be left", body = ErrorBody),
        (status = 503, description = "SERVICE_UNAVAILABLE: the database does not answer", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = [])))]
async fn remove(
    State(h): State<AuthHttp>,
    CurrentUser(who): CurrentUser,
    Client(client): Client,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<StatusCode, ApiError> {
    let id = passkey_id(&id)?;
    // The body is optional: only the last second factor needs a proof.
    let req: ReauthRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ReauthRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "MALFORMED_JSON",
                format!("the body is not a re-authentication: {e}"),
            )
        })?
    };
    let proof = if req.code.is_none() && req.recovery_code.is_none() && req.password.is_none() {
        None
    } else {
        Some(super::mfa::reauth(&req)?)
    };
    h.auth().delete_passkey(&who, id, proof, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}
