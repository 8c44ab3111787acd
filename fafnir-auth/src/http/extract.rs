//! Extractors for integrators: the current user, and a permission guard.

use std::marker::PhantomData;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};

use super::error::ApiError;
use super::{cookies, csrf, AuthHttp};
use crate::{ClientInfo, Principal};

/// The token a request presents, and how.
#[derive(Debug)]
pub enum Presented {
    Bearer(String),
    Cookie(String),
    None,
}

/// A header value as text, as `HeaderValue::to_str` gives it. A header value holds visible
/// ASCII, tabs and bytes of 0x80 and above only (hyper's parser and `HeaderValue::from_bytes`
/// refuse the other control bytes; only a value built unchecked could hold them), so it is
/// text exactly when it is ASCII, which the standard library checks a word at a time
/// (`to_str` checks each byte of a token of hundreds of bytes).
fn header_text(v: &axum::http::HeaderValue) -> Option<&str> {
    std::str::from_utf8(v.as_bytes()).ok().filter(|s| s.is_ascii())
}

/// The access token of a request: `Authorization: Bearer` first, else the access cookie.
pub fn presented(headers: &HeaderMap) -> Presented {
    if let Some(v) = headers.get(header::AUTHORIZATION).and_then(header_text) {
        if let Some(t) = v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")) {
            return Presented::Bearer(t.trim().to_owned());
        }
    }
    match cookies::read(headers, cookies::ACCESS) {
        Some(c) if !c.is_empty() => Presented::Cookie(c),
        _ => Presented::None,
    }
}

impl AuthHttp {
    /// Whether the authenticated caller holds `permission`; 503 when the checker cannot say.
    pub(crate) async fn holds(&self, who: &Principal, permission: &str) -> Result<bool, ApiError> {
        let decision = self.checker().check(Some(who.token.expose()), who.user_id, permission).await.map_err(|e| {
            tracing::warn!(error = %e, "permission checker unavailable");
            ApiError::unavailable("the permission service")
        })?;
        Ok(decision.allowed)
    }

    /// Authenticates a request: a Bearer token needs nothing more; the access cookie needs the
    /// CSRF checks on unsafe methods. 401 without valid credentials, 403 on a CSRF failure.
    pub async fn authenticate_parts(&self, parts: &Parts) -> Result<Principal, ApiError> {
        match presented(&parts.headers) {
            Presented::Bearer(t) => Ok(self.auth().authenticate_owned(t).await?),
            Presented::Cookie(t) => {
                let who = self.auth().authenticate_owned(t).await?;
                if csrf::is_unsafe(&parts.method) {
                    self.check_csrf(&parts.headers, Some(&who))?;
                }
                Ok(who)
            }
            Presented::None => Err(ApiError::unauthorized()),
        }
    }

    /// The CSRF checks of a cookie-authenticated unsafe request.
    pub(crate) fn check_csrf(&self, headers: &HeaderMap, who: Option<&Principal>) -> Result<(), ApiError> {
        self.check_csrf_session(headers, who.map(|w| &w.session_id))
    }

    /// The CSRF checks, with the token bound to session `sid` when it is known (a request that
    /// names no live session can only be checked for double submit and origin).
    pub(crate) fn check_csrf_session(
        &self,
        headers: &HeaderMap,
        sid: Option<&fafnir_core::SessionId>,
    ) -> Result<(), ApiError> {
        let s = self.settings();
        let header_value = headers.get(csrf::HEADER).and_then(|v| v.to_str().ok());
        let cookie_value = cookies::read(headers, cookies::CSRF);
        if self.csrf_key().verify(sid, header_value, cookie_value.as_deref())
            && csrf::origin_allowed(headers, &s.allowed_origins, s.public_origin.as_deref())
        {
            Ok(())
        } else {
            Err(ApiError::csrf())
        }
    }
}

/// The authenticated caller. Rejects with 401 `UNAUTHORIZED` (no or bad token, ended session)
/// or 403 `CSRF_TOKEN_INVALID` (cookie-authenticated unsafe request failing the CSRF checks).
///
/// ```ignore
/// async fn handler(CurrentUser(who): CurrentUser) -> String { who.user_id.to_string() }
/// ```
#[derive(Debug, Clone)]
pub struct CurrentUser(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for CurrentUser
where
    AuthHttp: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        AuthHttp::from_ref(state).authenticate_parts(parts).await.map(CurrentUser)
    }
}

/// `Option<CurrentUser>`: the caller when one is authenticated, `None` for anonymous requests
/// (no credentials, or a token that is invalid, expired or whose session has ended). A
/// cookie-authenticated unsafe request failing the CSRF checks is still refused (403), and an
/// unavailable session store still answers 503: neither is "anonymous".
impl<S: Send + Sync> axum::extract::OptionalFromRequestParts<S> for CurrentUser
where
    AuthHttp: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Option<Self>, Self::Rejection> {
        match AuthHttp::from_ref(state).authenticate_parts(parts).await {
            Ok(who) => Ok(Some(CurrentUser(who))),
            Err(e) if e.status == axum::http::StatusCode::UNAUTHORIZED => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// A permission, named at the type level for [`Authorized`]. Declare one with
/// [`permission!`](crate::permission).
pub trait RequiredPermission: Send + Sync + 'static {
    const PERMISSION: &'static str;
}

/// Declares a type for [`Authorized`]: `fafnir_auth::permission!(pub UsersRead = "users:read");`
#[macro_export]
macro_rules! permission {
    ($vis:vis $name:ident = $perm:literal) => {
        #[derive(Debug)]
        $vis struct $name;
        impl $crate::http::RequiredPermission for $name {
            const PERMISSION: &'static str = $perm;
        }
    };
}

/// The authenticated caller, who also holds permission `P`. Rejects like [`CurrentUser`], and
/// with 403 `PERMISSION_DENIED` when the RBAC check denies, 503 `UNAVAILABLE` when the checker
/// cannot answer.
#[derive(Debug)]
pub struct Authorized<P: RequiredPermission>(pub Principal, PhantomData<P>);

impl<P: RequiredPermission> Authorized<P> {
    pub fn principal(&self) -> &Principal {
        &self.0
    }
}

impl<S: Send + Sync, P: RequiredPermission> FromRequestParts<S> for Authorized<P>
where
    AuthHttp: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let http = AuthHttp::from_ref(state);
        let who = http.authenticate_parts(parts).await?;
        if http.holds(&who, P::PERMISSION).await? {
            Ok(Authorized(who, PhantomData))
        } else {
            Err(ApiError::permission_denied(P::PERMISSION))
        }
    }
}

/// Where a request comes from: the peer address (or the first `X-Forwarded-For` hop when the
/// server is configured to trust its proxy) and the User-Agent.
#[derive(Debug, Clone)]
pub struct Client(pub ClientInfo);

impl<S: Send + Sync> FromRequestParts<S> for Client
where
    AuthHttp: FromRef<S>,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let trust = AuthHttp::from_ref(state).settings().trust_forwarded_for;
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        let forwarded = parts.headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
        let ip = client_ip(peer, forwarded, trust);
        let user_agent =
            parts.headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(|s| s.chars().take(256).collect());
        Ok(Client(ClientInfo { ip, user_agent }))
    }
}

/// The client address for throttling and the session list. With `trust` (behind our own proxy),
/// the *last* `X-Forwarded-For` entry: the one our proxy appended. Earlier entries are whatever
/// the client sent and prove nothing.
pub fn client_ip(peer: Option<std::net::IpAddr>, forwarded: Option<&str>, trust: bool) -> Option<String> {
    let hop = trust
        .then_some(forwarded)
        .flatten()
        .and_then(|v| v.rsplit(',').next())
        .map(str::trim)
        .and_then(|s| s.parse::<std::net::IpAddr>().ok());
    hop.or(peer).map(|ip| ip.to_string())
}

#[cfg(test)]
mod tests {
    use super::{client_ip, header_text};

    #[test]
    fn header_text_accepts_what_to_str_accepts() {
        // Every byte a header value can hold, alone and inside a token-like value.
        for b in 0..=255u8 {
            for bytes in [vec![b], [b"abc".as_slice(), &[b], b"def"].concat()] {
                let Ok(v) = axum::http::HeaderValue::from_bytes(&bytes) else { continue };
                assert_eq!(header_text(&v), v.to_str().ok(), "byte {b:#04x}");
            }
        }
    }

    #[test]
    fn forwarded_for_is_used_only_when_trusted_and_only_its_last_hop() {
        let peer = Some("10.0.0.2".parse().unwrap());
        assert_eq!(client_ip(peer, Some("1.1.1.1, 203.0.113.9"), false).as_deref(), Some("10.0.0.2"));
        assert_eq!(client_ip(peer, Some("1.1.1.1, 203.0.113.9"), true).as_deref(), Some("203.0.113.9"));
        assert_eq!(client_ip(peer, Some("spoofed, not-an-ip"), true).as_deref(), Some("10.0.0.2"));
        assert_eq!(client_ip(peer, None, true).as_deref(), Some("10.0.0.2"));
        assert_eq!(client_ip(None, None, false), None);
    }
}
