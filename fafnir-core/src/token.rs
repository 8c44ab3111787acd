//! Access tokens: the claims, and verification against a set of public keys.
//!
//! Issuing lives in [`crate::keys::KeyManager`]; verification is here because every service
//! (REST, gRPC, GraphQL) verifies tokens, locally, against the issuer's JWKS.

use std::collections::HashMap;
use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};

use crate::id::{SessionId, UserId};

/// The JOSE `typ` of Fafnir access tokens (RFC 9068), so that no other JWT signed by the same
/// key can pass as an access token.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// Claims of a Fafnir access token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    pub sub: UserId,
    pub sid: SessionId,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    /// Not before (seconds). Fafnir does not set it; a token that carries it is held to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
}

impl fmt::Debug for AccessClaims {
    // The claims are not secret, but a token id is only worth logging as a correlation id.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessClaims")
            .field("sub", &self.sub)
            .field("sid", &self.sid)
            .field("exp", &self.exp)
            .finish_non_exhaustive()
    }
}

/// Why a token was refused. Shown to callers only as "invalid or expired token".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token is malformed")]
    Malformed,
    #[error("token algorithm or type is not accepted")]
    UnsupportedAlgorithm,
    #[error("token was signed by an unknown key")]
    UnknownKey,
    #[error("token signature is invalid")]
    BadSignature,
    #[error("token has expired")]
    Expired,
    #[error("token issuer or audience is wrong")]
    WrongIssuerOrAudience,
    /// `iat` or `nbf` lies in the future (beyond the clock-skew leeway), or the token claims a
    /// lifetime longer than the issuer's access-token TTL: not a token we issued.
    #[error("token times are not plausible")]
    ImplausibleTimes,
    /// The token is genuine but its session has ended (logout, revocation, password change).
    #[error("the token's session has ended")]
    SessionEnded,
    /// The session could not be checked right now (the auth service does not answer).
    #[error("the token's session cannot be checked right now")]
    Unavailable,
}

/// One public key of a JWKS (RFC 7517), Ed25519 only (RFC 8037).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    pub kty: String,
    pub crv: String,
    pub x: String,
    pub kid: String,
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
}

impl Jwk {
    pub fn ed25519(kid: String, public_key: &[u8]) -> Self {
        Jwk {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x: URL_SAFE_NO_PAD.encode(public_key),
            kid,
            use_: Some("sig".into()),
            alg: Some("EdDSA".into()),
        }
    }

    /// RFC 7638 thumbprint, used as the `kid`.
    pub fn thumbprint(public_key: &[u8]) -> String {
        let x = URL_SAFE_NO_PAD.encode(public_key);
        let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
        URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes()))
    }

    /// The verification key, if this is a well-formed Ed25519 key.
    pub fn decoding_key(&self) -> Option<DecodingKey> {
        if self.kty != "OKP" || self.crv != "Ed25519" {
            return None;
        }
        let raw = URL_SAFE_NO_PAD.decode(&self.x).ok()?;
        (raw.len() == 32).then(|| DecodingKey::from_ed_der(&raw))
    }
}

/// A JSON Web Key Set, as served at `/.well-known/jwks.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

/// The issuer and audience that tokens must carry, and the longest lifetime (`exp - iat`) a
/// genuine token can have: the issuer's access-token TTL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenAudience {
    pub issuer: String,
    pub audience: String,
    pub max_lifetime: std::time::Duration,
}

/// Clock skew tolerated between the issuer and a verifier: `iat`/`nbf` may be this far ahead.
pub const CLOCK_LEEWAY_S: i64 = 60;

impl TokenAudience {
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>, max_lifetime: std::time::Duration) -> Self {
        Self { issuer: issuer.into(), audience: audience.into(), max_lifetime }
    }

    /// Unexpired at `now_s`, and times that an issuer of ours could have written.
    pub fn check_times(&self, c: &AccessClaims, now_s: i64) -> Result<(), TokenError> {
        if c.exp <= now_s {
            return Err(TokenError::Expired);
        }
        if !self.plausible_times(c, now_s) {
            return Err(TokenError::ImplausibleTimes);
        }
        Ok(())
    }

    /// Whether the claims' times could come from a token issued now or earlier by an issuer
    /// whose access tokens live at most `max_lifetime` (with [`CLOCK_LEEWAY_S`] of skew).
    pub fn plausible_times(&self, c: &AccessClaims, now_s: i64) -> bool {
        let max = i64::try_from(self.max_lifetime.as_secs()).unwrap_or(i64::MAX);
        c.iat <= now_s.saturating_add(CLOCK_LEEWAY_S)
            && c.nbf.is_none_or(|nbf| nbf <= now_s.saturating_add(CLOCK_LEEWAY_S))
            && c.exp.saturating_sub(c.iat) <= max.saturating_add(CLOCK_LEEWAY_S)
    }
}

/// Public keys by `kid`, ready to verify.
#[derive(Clone, Default)]
pub struct VerifyingKeys {
    keys: HashMap<String, DecodingKey>,
}

impl fmt::Debug for VerifyingKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKeys").field("kids", &self.keys.keys()).finish()
    }
}

impl VerifyingKeys {
    pub fn from_jwks(jwks: &Jwks) -> Self {
        let keys = jwks.keys.iter().filter_map(|k| Some((k.kid.clone(), k.decoding_key()?))).collect();
        Self { keys }
    }

    pub fn contains(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Verifies signature, algorithm, type, issuer, audience and expiry (against `now_s`,
    /// seconds since the epoch, from the caller's clock).
    pub fn verify(&self, token: &str, expect: &TokenAudience, now_s: i64) -> Result<AccessClaims, TokenError> {
        if token.len() > 4096 {
            return Err(TokenError::Malformed);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        // Only EdDSA is ever accepted: `alg: none` and HS256-with-the-public-key fail here.
        if header.alg != Algorithm::EdDSA || header.typ.as_deref() != Some(ACCESS_TOKEN_TYP) {
            return Err(TokenError::UnsupportedAlgorithm);
        }
        let kid = header.kid.ok_or(TokenError::UnknownKey)?;
        let key = self.keys.get(&kid).ok_or(TokenError::UnknownKey)?;
        let mut v = Validation::new(Algorithm::EdDSA);
        v.validate_exp = false; // checked below against our own clock
        v.set_required_spec_claims(&["exp", "iat", "sub", "iss", "aud"]);
        v.set_issuer(&[&expect.issuer]);
        v.set_audience(&[&expect.audience]);
        let data = jsonwebtoken::decode::<AccessClaims>(token, key, &v).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::InvalidSignature => TokenError::BadSignature,
                K::InvalidIssuer | K::InvalidAudience => TokenError::WrongIssuerOrAudience,
                K::InvalidAlgorithm => TokenError::UnsupportedAlgorithm,
                _ => TokenError::Malformed,
            }
        })?;
        expect.check_times(&data.claims, now_s)?;
        Ok(data.claims)
    }
}

/// Verifies access tokens: locally with the issuer's keys ([`crate::keys::KeyManager`]), with a
/// configured key set ([`StaticVerifier`]), or against a remote JWKS (`JwksVerifier`, feature
/// `jwks`).
#[async_trait::async_trait]
pub trait TokenVerifier: Send + Sync + fmt::Debug {
    async fn verify(&self, token: &str, expect: &TokenAudience) -> Result<AccessClaims, TokenError>;
}

/// A fixed set of public keys (e.g. configured from a JWKS document on disk).
#[derive(Debug)]
pub struct StaticVerifier {
    keys: VerifyingKeys,
    clock: crate::clock::SharedClock,
}

impl StaticVerifier {
    pub fn new(jwks: &Jwks, clock: crate::clock::SharedClock) -> Self {
        Self { keys: VerifyingKeys::from_jwks(jwks), clock }
    }
}

#[async_trait::async_trait]
impl TokenVerifier for StaticVerifier {
    async fn verify(&self, token: &str, expect: &TokenAudience) -> Result<AccessClaims, TokenError> {
        self.keys.verify(token, expect, self.clock.now().timestamp())
    }
}

/// Remembers verified tokens (keyed by the whole token string, so only the very same token can
/// match), skipping the signature check on repeat calls. Issuer, audience, expiry and the
/// plausibility of its times are still checked on every use. Bounded: emptied when full.
#[derive(Debug)]
pub struct CachingVerifier {
    inner: std::sync::Arc<dyn TokenVerifier>,
    clock: crate::clock::SharedClock,
    // foldhash instead of SipHash: keys are whole tokens (hundreds of bytes, hashed on every
    // request), and only tokens whose signature was verified are stored, so no outsider
    // chooses a key.
    cache: crate::cache::TtlCache<Box<str>, AccessClaims, crate::cache::TrustedKeys>,
}

impl CachingVerifier {
    pub fn new(inner: std::sync::Arc<dyn TokenVerifier>, clock: crate::clock::SharedClock, max: usize) -> Self {
        Self { inner, clock, cache: crate::cache::TtlCache::trusted(max) }
    }
}

#[async_trait::async_trait]
impl TokenVerifier for CachingVerifier {
    async fn verify(&self, token: &str, expect: &TokenAudience) -> Result<AccessClaims, TokenError> {
        let now_ms = self.clock.now_ms();
        if let Some(c) = self.cache.get(token, now_ms, i64::MAX) {
            // The signature was checked when it was cached; the rest is checked on every use.
            if c.iss != expect.issuer || c.aud != expect.audience {
                return Err(TokenError::WrongIssuerOrAudience);
            }
            expect.check_times(&c, now_ms / 1000)?;
            return Ok(c);
        }
        let c = self.inner.verify(token, expect).await?;
        self.cache.put(token.into(), c.clone(), now_ms);
        Ok(c)
    }
}

/// Whether the session behind a genuine access token is still active. In one process it is the
/// auth service itself; across processes, a client of auth-service's introspection endpoint.
#[async_trait::async_trait]
pub trait SessionCheck: Send + Sync + fmt::Debug {
    /// `Ok(false)` when the session has ended; `Err` when it cannot be known right now.
    async fn is_active(&self, token: &str, claims: &AccessClaims) -> Result<bool, crate::ServiceError>;
}

/// The audience suffix of the tokens auth-service mints for its own calls to the other services
/// (outbox delivery). User tokens never carry it, and these tokens name no user and no session.
pub const INTERNAL_AUDIENCE_SUFFIX: &str = "-internal";

impl TokenAudience {
    /// The audience of internal tokens of this issuer.
    pub fn internal(&self) -> TokenAudience {
        TokenAudience {
            issuer: self.issuer.clone(),
            audience: format!("{}{INTERNAL_AUDIENCE_SUFFIX}", self.audience),
            max_lifetime: self.max_lifetime,
        }
    }

    /// The internal audience of one receiving service (`<audience>-internal:<service>`): a
    /// token meant for it is refused by every other service, and the reverse.
    pub fn internal_for(&self, service: &str) -> TokenAudience {
        TokenAudience {
            issuer: self.issuer.clone(),
            audience: format!("{}{INTERNAL_AUDIENCE_SUFFIX}:{service}", self.audience),
            max_lifetime: self.max_lifetime,
        }
    }
}

/// What a service expects of tokens: configured, or learnt from auth-service's metadata
/// document (microservice mode), in which case it is unknown until auth-service has answered.
#[derive(Debug, Clone)]
pub struct Expected(std::sync::Arc<arc_swap::ArcSwapOption<TokenAudience>>);

impl Expected {
    pub fn fixed(audience: TokenAudience) -> Self {
        Expected(std::sync::Arc::new(arc_swap::ArcSwapOption::from_pointee(audience)))
    }

    /// Not known yet: tokens are refused as `Unavailable` until [`Expected::set`].
    pub fn pending() -> Self {
        Expected(std::sync::Arc::new(arc_swap::ArcSwapOption::empty()))
    }

    pub fn set(&self, audience: TokenAudience) {
        self.0.store(Some(std::sync::Arc::new(audience)));
    }

    pub fn get(&self) -> Option<std::sync::Arc<TokenAudience>> {
        self.0.load_full()
    }
}

/// How every service that is handed a token decides who is calling: the token's signature,
/// issuer, audience and times ([`TokenVerifier`]), then whether its session is still active
/// ([`SessionCheck`]), so that a logout, a password change or a revoked refresh family reaches
/// every service within the session check's cache time. Internal service tokens are checked
/// against the internal audience and have no session.
#[derive(Debug, Clone)]
pub struct Authenticator {
    tokens: std::sync::Arc<dyn TokenVerifier>,
    sessions: std::sync::Arc<dyn SessionCheck>,
    expected: Expected,
}

impl Authenticator {
    pub fn new(
        tokens: std::sync::Arc<dyn TokenVerifier>,
        sessions: std::sync::Arc<dyn SessionCheck>,
        expected: Expected,
    ) -> Self {
        Self { tokens, sessions, expected }
    }

    pub fn expected(&self) -> &Expected {
        &self.expected
    }

    /// A user's access token: genuine, for us, unexpired, and its session active.
    pub async fn user(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let expect = self.expected.get().ok_or(TokenError::Unavailable)?;
        let claims = self.tokens.verify(token, &expect).await?;
        match self.sessions.is_active(token, &claims).await {
            Ok(true) => Ok(claims),
            Ok(false) => Err(TokenError::SessionEnded),
            Err(e) => {
                // Every request says so while the session store is down: warn once in a while.
                static LAST_WARNING_S: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
                let now = chrono::Utc::now().timestamp();
                let last = LAST_WARNING_S.load(std::sync::atomic::Ordering::Relaxed);
                if now - last >= 10
                    && LAST_WARNING_S
                        .compare_exchange(
                            last,
                            now,
                            std::sync::atomic::Ordering::Relaxed,
                            std::sync::atomic::Ordering::Relaxed,
                        )
                        .is_ok()
                {
                    tracing::warn!(error = %e, "cannot check tokens' sessions (said at most every 10 s)");
                } else {
                    tracing::debug!(error = %e, "cannot check a token's session");
                }
                Err(TokenError::Unavailable)
            }
        }
    }

    /// An internal token of auth-service (no session behind it).
    pub async fn internal(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let expect = self.expected.get().ok_or(TokenError::Unavailable)?;
        self.tokens.verify(token, &expect.internal()).await
    }

    /// Verifies an internal token meant for `service` only ([`TokenAudience::internal_for`]).
    pub async fn internal_for(&self, token: &str, service: &str) -> Result<AccessClaims, TokenError> {
        let expect = self.expected.get().ok_or(TokenError::Unavailable)?;
        self.tokens.verify(token, &expect.internal_for(service)).await
    }
}
