//! Social login over REST: providers, the authorization redirect, the callback, and the caller's
//! identities.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::dto::{IdentityDto, ProviderDto};
use super::error::{ApiError, ErrorBody};
use super::extract::{Client, CurrentUser};
use super::handlers::{no_store, set_session_cookies};
use super::{cookies, AuthHttp};
use crate::oauth::{with_error, with_param, CallbackParams, Completed, Refusal};
use crate::AuthError;

pub(super) fn routes() -> OpenApiRouter<AuthHttp> {
    OpenApiRouter::new()
        .routes(routes!(providers))
        .routes(routes!(authorize))
        .routes(routes!(link))
        .routes(routes!(callback_get, callback_post))
        .routes(routes!(identities))
        .routes(routes!(unlink))
}

/// Query of the authorize and link redirects.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReturnToQuery {
    /// Where the browser lands afterwards: a path on this site (default `/`) or a URL on an
    /// allowed origin. On failure `?error=CODE` is added to it.
    pub return_to: Option<String>,
}

/// A provider's name as a metric label: only configured names (a URL could otherwise mint a
/// new series per request).
fn label(h: &AuthHttp, provider: &str) -> String {
    match h.auth().oauth().and_then(|p| p.get(provider)) {
        Some(p) => p.name.clone(),
        None => "unknown".to_owned(),
    }
}

fn redirect(to: &str) -> Response {
    let mut res = StatusCode::FOUND.into_response();
    match HeaderValue::from_str(to) {
        Ok(v) => {
            res.headers_mut().insert(header::LOCATION, v);
        }
        // A checked return path is always a valid header value; never redirect elsewhere.
        Err(_) => {
            res.headers_mut().insert(header::LOCATION, HeaderValue::from_static("/"));
        }
    }
    no_store(res.headers_mut());
    res
}

fn return_to_query(q: Option<&str>) -> Result<ReturnToQuery, ApiError> {
    serde_urlencoded::from_str(q.unwrap_or(""))
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "INVALID_REQUEST", "the query cannot be read"))
}

async fn begin(
    h: &AuthHttp,
    provider: &str,
    headers: &HeaderMap,
    q: Option<&str>,
    link: Option<&crate::Principal>,
) -> Result<Response, ApiError> {
    let q = return_to_query(q)?;
    let s = h.settings();
    let binding = cookies::read(headers, cookies::oauth_binding_name(s.cookie_secure));
    let mut allowed = s.allowed_origins.clone();
    allowed.extend(s.public_origin.clone());
    let started = h.auth().oauth_begin(provider, q.return_to.as_deref(), link, binding.as_deref(), &allowed).await;
    match started {
        Ok((begin, _)) => {
            let mut res = redirect(&begin.url);
            cookies::set_oauth_binding(res.headers_mut(), &begin.binding, s.cookie_secure);
            Ok(res)
        }
        Err(e @ (AuthError::OAuth(_) | AuthError::ReauthenticationRequired)) => {
            metrics::counter!("fafnir_oauth_logins_total", "provider" => label(h, provider), "outcome" => e.code())
                .increment(1);
            // Where to: the return path was checked before anything else.
            let back = crate::oauth::check_return_to(q.return_to.as_deref(), &allowed).unwrap_or_else(|| "/".into());
            Ok(redirect(&with_error(&back, e.code())))
        }
        Err(e) => Err(e.into()),
    }
}

/// The configured sign-in providers (public).
#[utoipa::path(get, path = "/auth/oauth/providers", tag = "oauth",
    responses((status = 200, body = [ProviderDto])))]
async fn providers(State(h): State<AuthHttp>) -> Json<Vec<ProviderDto>> {
    Json(h.auth().oauth_providers().into_iter().map(ProviderDto::from).collect())
}

/// Start a sign-in: 302 to the provider (authorization code, PKCE S256, `state`, `nonce` for
/// OpenID Connect). Sets the `fafnir_oauth` binding cookie: the callback must come back to the
/// browser that started it.
#[utoipa::path(get, path = "/auth/oauth/{provider}/authorize", tag = "oauth", params(
        ("provider" = String, Path, description = "The provider's name, as `GET /auth/oauth/providers` lists it"),
        ReturnToQuery),
    responses(
        (status = 302, description = "To the provider; or to `return_to?error=OAUTH_PROVIDER_ERROR` when the provider cannot be reached"),
        (status = 400, description = "INVALID_REQUEST: the query cannot be read", body = ErrorBody),
        (status = 404, description = "NOT_FOUND: no such provider", body = ErrorBody),
        (status = 422, description = "VALIDATION_FAILED: return_to is not a local path or on an allowed origin", body = ErrorBody),
        (status = 503, description = "SERVICE_UNAVAILABLE: the database does not answer", body = ErrorBody),
    ))]
async fn authorize(
    State(h): State<AuthHttp>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    begin(&h, &provider, &headers, q.as_deref(), None).await
}

/// Link another provider to the signed-in account: like `authorize`, and the callback links the
/// identity instead of signing in. Needs a sign-in within the last 10 minutes (else a 302 to
/// `return_to?error=REAUTHENTICATION_REQUIRED`); the owner is mailed a notice.
#[utoipa::path(get, path = "/auth/oauth/{provider}/link", tag = "oauth", params(
        ("provider" = String, Path, description = "The provider's name"),
        ReturnToQuery),
    responses(
        (status = 302, description = "To the provider; or to `return_to?error=REAUTHENTICATION_REQUIRED` (the sign-in is over 10 minutes old) or `?error=OAUTH_PROVIDER_ERROR`"),
        (status = 401, description = "UNAUTHORIZED", body = ErrorBody),
        (status = 404, description = "NOT_FOUND: no such provider", body = ErrorBody),
        (status = 422, description = "VALIDATION_FAILED: return_to is not a local path or on an allowed origin", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = [])))]
async fn link(
    State(h): State<AuthHttp>,
    CurrentUser(who): CurrentUser,
    Path(provider): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    begin(&h, &provider, &headers, q.as_deref(), Some(&who)).await
}

#[derive(Debug, Default, Deserialize)]
struct CallbackForm {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

async fn finish(h: &AuthHttp, provider: &str, headers: &HeaderMap, client: &crate::ClientInfo, raw: &[u8]) -> Response {
    // Unreadable parameters are a forged or broken response: nothing to match it with.
    let form: CallbackForm = serde_urlencoded::from_bytes(raw).unwrap_or_default();
    let params = CallbackParams {
        code: form.code,
        state: form.state,
        iss: form.iss,
        error: form.error,
        error_description: form.error_description,
    };
    let binding = cookies::read(headers, cookies::oauth_binding_name(h.settings().cookie_secure));
    // The browser's current session, for link requests. Read directly, without the CSRF check
    // of unsafe requests: the pending login and the binding cookie already tie this request to
    // the browser that started it.
    let current = match super::extract::presented(headers) {
        super::extract::Presented::Cookie(t) | super::extract::Presented::Bearer(t) => {
            h.auth().authenticate(&t).await.ok().map(|p| p.user_id)
        }
        super::extract::Presented::None => None,
    };
    let done = h.auth().oauth_callback(provider, &params, binding.as_deref(), current, client).await;
    let outcome = match &done.result {
        Ok(Completed::SignedIn(_)) => "signed_in",
        Ok(Completed::Linked) => "linked",
        Ok(Completed::MfaRequired { .. }) => "mfa_required",
        Err(r) => r.code(),
    };
    metrics::counter!("fafnir_oauth_logins_total", "provider" => label(h, provider), "outcome" => outcome).increment(1);
    match done.result {
        Ok(Completed::SignedIn(login)) => {
            let mut res = redirect(&done.return_to);
            set_session_cookies(h, res.headers_mut(), &login, None);
            res
        }
        Ok(Completed::Linked) => redirect(&done.return_to),
        Ok(Completed::MfaRequired { token }) => {
            // The page at return_to asks for the code and posts it to /auth/mfa/verify, which
            // takes the challenge from this cookie (the token never appears in a URL).
            let mut res = redirect(&with_param(&done.return_to, "mfa_required", "true"));
            cookies::set_mfa(res.headers_mut(), token.expose(), h.settings().cookie_secure);
            res
        }
        Err(r) => redirect(&with_error(&done.return_to, r.code())),
    }
}

/// The provider sends the browser back here. On success: the three session cookies and a 302 to
/// `return_to`. An account with a second factor gets no session yet: a 302 to
/// `return_to?mfa_required=true` and the `fafnir_mfa` cookie, for `POST /auth/mfa/verify`. On failure: a 302 to `return_to?error=CODE` with `OAUTH_STATE_INVALID`,
/// `OAUTH_PROVIDER_ERROR`, `ACCOUNT_NOT_LINKED`, `SIGNUP_DISABLED`, `OAUTH_EMAIL_UNVERIFIED`,
/// `IDENTITY_ALREADY_LINKED`, `ACCOUNT_DISABLED`, `EMAIL_NOT_VERIFIED`, `RATE_LIMITED` or
/// `UNAUTHORIZED`.
#[utoipa::path(get, path = "/auth/oauth/{provider}/callback", tag = "oauth", params(
        ("provider" = String, Path, description = "The provider's name"),
        ("code" = Option<String>, Query, description = "The authorization code"),
        ("state" = Option<String>, Query, description = "The state sent to the provider"),
        ("iss" = Option<String>, Query, description = "RFC 9207: the issuer of the response"),
        ("error" = Option<String>, Query, description = "The provider's error"),
    ),
    responses((status = 302, description = "To return_to, signed in (three cookies set), or with ?error=CODE")))]
async fn callback_get(
    State(h): State<AuthHttp>,
    Path(provider): Path<String>,
    Client(client): Client,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    finish(&h, &provider, &headers, &client, q.unwrap_or_default().as_bytes()).await
}

/// The callback for `response_mode=form_post`: the same parameters as a form body.
#[utoipa::path(post, path = "/auth/oauth/{provider}/callback", tag = "oauth", params(
        ("provider" = String, Path, description = "The provider's name")),
    request_body(content_type = "application/x-www-form-urlencoded", content = String,
        description = "code, state, iss, error, error_description"),
    responses((status = 302, description = "As the GET callback")))]
async fn callback_post(
    State(h): State<AuthHttp>,
    Path(provider): Path<String>,
    Client(client): Client,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let raw = if body.len() > super::body::MAX_BODY { &[][..] } else { &body[..] };
    finish(&h, &provider, &headers, &client, raw).await
}

/// The identities linked to the caller's account.
#[utoipa::path(get, path = "/auth/identities", tag = "oauth",
    responses(
        (status = 200, body = [IdentityDto]),
        (status = 401, description = "UNAUTHORIZED", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = [])))]
async fn identities(
    State(h): State<AuthHttp>,
    CurrentUser(who): CurrentUser,
) -> Result<Json<Vec<IdentityDto>>, ApiError> {
    Ok(Json(h.auth().identities(who.user_id).await?.into_iter().map(IdentityDto::from).collect()))
}

/// Unlink an identity. Refused with 409 `LAST_SIGN_IN_METHOD` when the account would be left
/// without a way to sign in.
#[utoipa::path(delete, path = "/auth/identities/{id}", tag = "oauth",
    params(("id" = String, Path, format = Uuid, description = "The identity's id")),
    responses(
        (status = 204, description = "Unlinked"),
        (status = 401, description = "UNAUTHORIZED", body = ErrorBody),
        (status = 403, description = "CSRF_TOKEN_INVALID (cookie authentication)", body = ErrorBody),
        (status = 404, description = "NOT_FOUND: no such identity on this account", body = ErrorBody),
        (status = 409, description = "LAST_SIGN_IN_METHOD", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = [])))]
async fn unlink(
    State(h): State<AuthHttp>,
    CurrentUser(who): CurrentUser,
    Client(client): Client,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = uuid::Uuid::parse_str(&id).map_err(|_| ApiError::from(AuthError::IdentityNotFound))?;
    h.auth().unlink_identity(who.user_id, id, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        AuthError::OAuth(r).into()
    }
}
