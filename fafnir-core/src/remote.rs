//! Talking to auth-service from another service (feature `jwks`): whether a token's session is
//! still active ([`RemoteSessionCheck`], over its introspection endpoint) and what its tokens
//! carry ([`IssuerMetadata`], its RFC 8414 metadata document).

use std::time::Duration;

use serde::Deserialize;

use crate::authz::ServiceError;
use crate::cache::{TrustedKeys, TtlCache};
use crate::clock::SharedClock;
use crate::id::SessionId;
use crate::token::{AccessClaims, SessionCheck};

pub use crate::issuer::{IssuerMetadata, INTROSPECTION_PATH, METADATA_PATH};

/// The one HTTP client for talking to auth-service (metadata, JWKS, introspection): built once
/// per process, short timeouts, and it never follows a redirect (only ever a configured URL).
pub(crate) fn client() -> Result<reqwest::Client, ServiceError> {
    static CLIENT: std::sync::OnceLock<Result<reqwest::Client, String>> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .timeout(Duration::from_secs(3))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| format!("HTTP client: {e}"))
        })
        .clone()
        .map_err(ServiceError::Internal)
}

/// Fetches auth-service's metadata from its base URL (e.g. `http://127.0.0.1:8081`).
pub async fn fetch_metadata(auth_url: &str) -> Result<IssuerMetadata, ServiceError> {
    let url = format!("{}{METADATA_PATH}", auth_url.trim_end_matches('/'));
    let res = client()?
        .get(&url)
        .send()
        .await
        .map_err(|e| ServiceError::Unavailable(format!("auth-service at {auth_url} does not answer: {e}")))?;
    if !res.status().is_success() {
        return Err(ServiceError::Unavailable(format!("auth-service at {url} answered HTTP {}", res.status())));
    }
    res.json().await.map_err(|e| ServiceError::Internal(format!("{url} is not Fafnir's metadata document: {e}")))
}

/// Asks auth-service whether a token's session is active, and remembers the answer: "active"
/// for `ttl` (a revocation is seen within that time), "ended" for good when auth-service says
/// the session has ended (it never comes back). An answer about the token itself (expired on
/// auth-service's clock, another issuer) is not remembered: it says nothing about the session.
/// Bounded: emptied when full.
#[derive(Debug)]
pub struct RemoteSessionCheck {
    url: String,
    http: reqwest::Client,
    clock: SharedClock,
    ttl_ms: i64,
    /// Sessions auth-service said are active, trusted for `ttl_ms`. Keyed by session ids
    /// read from verified tokens: hashed with foldhash.
    active: TtlCache<SessionId, (), TrustedKeys>,
    /// Sessions auth-service said have ended: for good.
    ended: TtlCache<SessionId, (), TrustedKeys>,
}

#[derive(Deserialize)]
struct Introspection {
    active: bool,
    #[serde(default)]
    sid: Option<String>,
    /// On an inactive answer: the session has ended for good (else the token was refused).
    #[serde(default)]
    session_ended: Option<bool>,
}

impl RemoteSessionCheck {
    /// `auth_url` is auth-service's base URL; answers are trusted for `ttl`.
    pub fn new(auth_url: &str, clock: SharedClock, ttl: Duration, max: usize) -> Result<Self, ServiceError> {
        Ok(Self {
            url: format!("{}{INTROSPECTION_PATH}", auth_url.trim_end_matches('/')),
            http: client()?,
            clock,
            ttl_ms: i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX),
            active: TtlCache::trusted(max),
            ended: TtlCache::trusted(max),
        })
    }

    fn cached(&self, sid: &SessionId, now: i64) -> Option<bool> {
        if self.ended.get(sid, now, i64::MAX).is_some() {
            return Some(false);
        }
        self.active.get(sid, now, self.ttl_ms).map(|()| true)
    }

    fn remember(&self, sid: SessionId, active: bool, now: i64) {
        if active {
            self.active.put(sid, (), now);
        } else {
            self.active.forget(&sid);
            self.ended.put(sid, (), now);
        }
    }
}

#[async_trait::async_trait]
impl SessionCheck for RemoteSessionCheck {
    async fn is_active(&self, token: &str, claims: &AccessClaims) -> Result<bool, ServiceError> {
        let now = self.clock.now_ms();
        if let Some(active) = self.cached(&claims.sid, now) {
            return Ok(active);
        }
        let res = self
            .http
            .post(&self.url)
            .form(&[("token", token)])
            .send()
            .await
            .map_err(|e| ServiceError::Unavailable(format!("auth-service does not answer: {e}")))?;
        if !res.status().is_success() {
            return Err(ServiceError::Unavailable(format!(
                "auth-service introspection answered HTTP {}",
                res.status()
            )));
        }
        let answer: Introspection =
            res.json().await.map_err(|e| ServiceError::Internal(format!("introspection answer: {e}")))?;
        // An active answer must be about this very session.
        let active = answer.active && answer.sid.as_deref() == Some(claims.sid.to_string().as_str());
        if active || answer.session_ended == Some(true) {
            self.remember(claims.sid, active, now);
        }
        Ok(active)
    }
}
