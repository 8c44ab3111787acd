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

/// The issuer and audience that tokens must carry.
#[derive(Debug, Clone)]
pub struct TokenAudience {
    pub issuer: String,
    pub audience: String,
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
        if data.claims.exp <= now_s {
            return Err(TokenError::Expired);
        }
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
/// match), skipping the signature check on repeat calls. Issuer, audience and expiry are still
/// checked on every use. Bounded: emptied when full.
#[derive(Debug)]
pub struct CachingVerifier {
    inner: std::sync::Arc<dyn TokenVerifier>,
    clock: crate::clock::SharedClock,
    cache: std::sync::Mutex<HashMap<Box<str>, AccessClaims>>,
    max: usize,
}

impl CachingVerifier {
    pub fn new(inner: std::sync::Arc<dyn TokenVerifier>, clock: crate::clock::SharedClock, max: usize) -> Self {
        Self { inner, clock, cache: std::sync::Mutex::new(HashMap::new()), max }
    }
}

#[async_trait::async_trait]
impl TokenVerifier for CachingVerifier {
    async fn verify(&self, token: &str, expect: &TokenAudience) -> Result<AccessClaims, TokenError> {
        let hit = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(token).cloned();
        if let Some(c) = hit {
            if c.iss != expect.issuer || c.aud != expect.audience {
                return Err(TokenError::WrongIssuerOrAudience);
            }
            if c.exp <= self.clock.now().timestamp() {
                return Err(TokenError::Expired);
            }
            return Ok(c);
        }
        let c = self.inner.verify(token, expect).await?;
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= self.max {
            cache.clear();
        }
        cache.insert(token.into(), c.clone());
        Ok(c)
    }
}
