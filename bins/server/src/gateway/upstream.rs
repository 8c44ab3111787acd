//! auth-service as the gateway sees it: an HTTP service, in this process (its router, called
//! without a socket) or across the network. The gateway's auth mutations and the `/auth/*`
//! proxy are written once against it, so cookies, CSRF rules and throttling are those of REST.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, HeaderName, Method, Request, StatusCode};
use axum::Router;
use tower::ServiceExt;

/// Longest a call to auth-service may take (a login hashes a password: well under a second).
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest response body read from auth-service.
const MAX_RESPONSE: usize = 1024 * 1024;

/// Where auth-service is.
#[derive(Clone)]
pub enum AuthUpstream {
    /// The auth router of this process (`fafnir serve`).
    Local(Router),
    /// auth-service at `base` (`FAFNIR_AUTH_URL`, microservice mode).
    Remote { client: reqwest::Client, base: String },
}

impl std::fmt::Debug for AuthUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthUpstream::Local(_) => f.write_str("AuthUpstream::Local"),
            AuthUpstream::Remote { base, .. } => write!(f, "AuthUpstream::Remote({base})"),
        }
    }
}

/// A buffered response.
pub struct UpstreamResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl std::fmt::Debug for UpstreamResponse {
    // Never the headers (Set-Cookie) or the body (tokens).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamResponse").field("status", &self.status).finish_non_exhaustive()
    }
}

/// auth-service did not answer (refused, timed out, or cut the connection).
#[derive(Debug, thiserror::Error)]
#[error("auth-service is unavailable: {0}")]
pub struct Unavailable(pub String);

/// Request headers that mean something only on one hop, or that the client must not choose.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "content-length"
            | "x-forwarded-for"
            | "forwarded"
    )
}

impl AuthUpstream {
    /// The remote form, with its own connection pool.
    pub fn remote(base: &str) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(UPSTREAM_TIMEOUT)
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the auth-service client: {e}"))?;
        Ok(AuthUpstream::Remote { client, base: base.trim_end_matches('/').to_owned() })
    }

    /// Sends `method path_and_query` with `headers` (hop-by-hop ones dropped) and `body`.
    /// `client_ip` is who the request is really from: in this process it is handed over as the
    /// peer address; across the network as the one `X-Forwarded-For` entry (auth-service trusts
    /// it with `FAFNIR_TRUST_FORWARDED_FOR`).
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        headers: &HeaderMap,
        body: Bytes,
        client: ClientAddr,
    ) -> Result<UpstreamResponse, Unavailable> {
        match self {
            AuthUpstream::Local(router) => {
                let mut req = Request::builder().method(method).uri(path_and_query);
                if let Some(h) = req.headers_mut() {
                    for (k, v) in headers.iter().filter(|(k, _)| !hop_by_hop(k)) {
                        h.append(k, v.clone());
                    }
                    if let Some(xff) = &client.forwarded_for {
                        h.insert("x-forwarded-for", xff.clone());
                    }
                }
                let mut req = req.body(Body::from(body)).map_err(|e| Unavailable(e.to_string()))?;
                if let Some(peer) = client.peer {
                    req.extensions_mut().insert(ConnectInfo(peer));
                }
                let res = match router.clone().oneshot(req).await {
                    Ok(r) => r,
                    Err(never) => match never {},
                };
                let (parts, body) = res.into_parts();
                let body = axum::body::to_bytes(body, MAX_RESPONSE).await.map_err(|e| Unavailable(e.to_string()))?;
                Ok(UpstreamResponse { status: parts.status, headers: parts.headers, body })
            }
            AuthUpstream::Remote { client: http, base } => {
                let mut req = http.request(method, format!("{base}{path_and_query}"));
                // The Host stays the one the browser used: auth-service's same-origin checks then
                // see the gateway's origin, the only one the browser knows.
                for (k, v) in headers.iter().filter(|(k, _)| !hop_by_hop(k)) {
                    req = req.header(k, v);
                }
                if let Some(ip) = client.ip() {
                    req = req.header("x-forwarded-for", ip);
                }
                let res = req.body(body).send().await.map_err(|e| Unavailable(e.to_string()))?;
                let status = res.status();
                let headers = res.headers().clone();
                let body = res.bytes().await.map_err(|e| Unavailable(e.to_string()))?;
                if body.len() > MAX_RESPONSE {
                    return Err(Unavailable("auth-service answered an oversized body".into()));
                }
                Ok(UpstreamResponse { status, headers, body })
            }
        }
    }
}

/// Who a request is from, as the gateway saw it.
#[derive(Debug, Clone, Default)]
pub struct ClientAddr {
    /// The TCP peer.
    pub peer: Option<SocketAddr>,
    /// The request's own `X-Forwarded-For` (used only when this server trusts it).
    pub forwarded_for: Option<axum::http::HeaderValue>,
    /// Whether this server trusts `X-Forwarded-For` (`FAFNIR_TRUST_FORWARDED_FOR`).
    pub trust_forwarded_for: bool,
}

impl ClientAddr {
    /// The client address by the same rule as the REST layer's.
    pub fn ip(&self) -> Option<String> {
        let forwarded = self.forwarded_for.as_ref().and_then(|v| v.to_str().ok());
        fafnir_auth::http::client_ip(self.peer.map(|p| p.ip()), forwarded, self.trust_forwarded_for)
    }
}
