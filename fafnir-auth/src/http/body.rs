//! Request bodies: JSON (and forms, for the OAuth 2.0 token endpoint), with our error body for
//! every way a body can be wrong.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// A JSON body. Wrong content type → 415, unreadable or too large body → 400/413, malformed JSON
/// (including bad UTF-8) → 400 `MALFORMED_JSON`, well-formed JSON of the wrong shape → 422
/// `VALIDATION_FAILED`.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

fn content_type(req: &Request) -> String {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
        .unwrap_or_default()
}

fn is_json(ct: &str) -> bool {
    ct == "application/json" || (ct.starts_with("application/") && ct.ends_with("+json"))
}

/// The largest body any Fafnir endpoint accepts. Bodies are read whole up to the transport's
/// hard cap (the server sets 1 MiB), then refused here: reading them whole lets the connection
/// end cleanly with our 413 instead of a reset.
pub const MAX_BODY: usize = 64 * 1024;

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "PAYLOAD_TOO_LARGE",
        format!("request body is larger than {MAX_BODY} bytes"),
    )
}

async fn bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    let body = Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            ApiError::new(StatusCode::BAD_REQUEST, "INVALID_REQUEST", "request body could not be read")
        }
    })?;
    if body.len() > MAX_BODY {
        return Err(too_large());
    }
    Ok(body)
}

pub(crate) fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Data => {
                let mut err = ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "VALIDATION_FAILED",
                    format!("invalid request: {e}"),
                );
                err.details = Some(serde_json::json!({ "line": e.line(), "column": e.column() }));
                err
            }
            _ => ApiError::new(StatusCode::BAD_REQUEST, "MALFORMED_JSON", "request body is not valid JSON"),
        }
    })
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(&content_type(&req)) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UNSUPPORTED_MEDIA_TYPE",
                "send the body as application/json",
            ));
        }
        let body = bytes(req, state).await?;
        parse_json(&body).map(JsonBody)
    }
}

/// An optional JSON body: no body at all (length 0) is `None`; a body must be JSON.
#[derive(Debug)]
pub struct OptionalJson<T>(pub Option<T>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let ct = content_type(&req);
        let body = bytes(req, state).await?;
        if body.is_empty() {
            return Ok(OptionalJson(None));
        }
        if !is_json(&ct) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UNSUPPORTED_MEDIA_TYPE",
                "send the body as application/json",
            ));
        }
        parse_json(&body).map(|v| OptionalJson(Some(v)))
    }
}

/// The OAuth 2.0 token request: `application/x-www-form-urlencoded` (RFC 6749) or JSON.
#[derive(Debug)]
pub struct JsonOrForm<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonOrForm<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let ct = content_type(&req);
        let body = bytes(req, state).await?;
        if is_json(&ct) {
            parse_json(&body).map(JsonOrForm)
        } else if ct == "application/x-www-form-urlencoded" {
            serde_urlencoded::from_bytes(&body)
                .map(JsonOrForm)
                .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "INVALID_REQUEST", "the form could not be read"))
        } else {
            Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UNSUPPORTED_MEDIA_TYPE",
                "send the body as application/x-www-form-urlencoded or application/json",
            ))
        }
    }
}
