//! What auth-service tells the services that verify its tokens: its metadata document
//! (RFC 8414, with Fafnir's token audience and lifetime) and where it answers introspection.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::token::TokenAudience;

/// Where auth-service publishes its metadata (RFC 8414).
pub const METADATA_PATH: &str = "/.well-known/oauth-authorization-server";
/// Where auth-service answers whether an access token's session is active (RFC 7662 shape).
pub const INTROSPECTION_PATH: &str = "/auth/introspect";

/// The metadata document of auth-service: RFC 8414 fields, plus what a verifier needs to know
/// about Fafnir's access tokens (their audience and longest lifetime).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuerMetadata {
    pub issuer: String,
    pub jwks_uri: String,
    pub token_endpoint: String,
    pub introspection_endpoint: String,
    pub grant_types_supported: Vec<String>,
    pub response_types_supported: Vec<String>,
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// `aud` of Fafnir access tokens.
    pub fafnir_access_token_audience: String,
    /// Seconds an access token lives (`exp - iat`).
    pub fafnir_access_token_ttl: u64,
    /// What browsers must agree on with a gateway in front: the origin auth-service takes as its
    /// own (from its public URL), the other origins it allows, and whether its cookies are
    /// `Secure`. Public facts: CORS answers and `Set-Cookie` show them anyway.
    #[serde(default)]
    pub fafnir_browser: Option<BrowserSettings>,
}

/// The browser-facing settings that auth-service and a gateway in front of it must share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrowserSettings {
    pub public_origin: Option<String>,
    pub allowed_origins: Vec<String>,
    pub cookie_secure: bool,
}

impl IssuerMetadata {
    /// What tokens of this issuer carry.
    pub fn audience(&self) -> TokenAudience {
        TokenAudience::new(
            self.issuer.clone(),
            self.fafnir_access_token_audience.clone(),
            Duration::from_secs(self.fafnir_access_token_ttl),
        )
    }
}
