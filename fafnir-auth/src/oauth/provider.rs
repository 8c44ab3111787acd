//! The configured providers and every request Fafnir makes to them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fafnir_core::{Config, OAuthProviderConfig};
use openidconnect::core::{
    CoreAuthDisplay, CoreClaimName, CoreClaimType, CoreClient, CoreClientAuthMethod, CoreGrantType, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm, CoreResponseMode, CoreResponseType,
    CoreSubjectIdentifierType, CoreUserInfoClaims,
};
use openidconnect::{
    AdditionalProviderMetadata, AuthType, AuthenticationFlow, AuthorizationCode, ClaimsVerificationError, ClientId,
    ClientSecret, CsrfToken, JsonWebKeySet, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier,
    ProviderMetadata, RedirectUrl, Scope, SignatureVerificationError, TokenResponse,
};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::ProviderInfo;
use crate::error::AuthError;

/// Discovery metadata and signing keys are fetched again after this long.
const METADATA_TTL: Duration = Duration::from_secs(3600);
/// An ID token naming an unknown key refetches the keys at most this often.
const KEY_REFRESH_MIN: Duration = Duration::from_secs(60);
/// Every request to a provider.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest response accepted from a provider (discovery, keys, user info).
const MAX_BODY: usize = 1 << 20;

/// RFC 9207's metadata flag, beside the standard fields.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IssParameter {
    #[serde(default)]
    authorization_response_iss_parameter_supported: bool,
}
impl AdditionalProviderMetadata for IssParameter {}

type Metadata = ProviderMetadata<
    IssParameter,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// Who signed in at the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteIdentity {
    /// The issuer for OpenID Connect; for plain OAuth 2.0, the authorization endpoint
    /// (`https://github.com/login/oauth/authorize`).
    pub issuer: String,
    pub subject: String,
    pub email: Option<String>,
    /// The provider asserted that the account's holder controls `email`.
    pub email_verified: bool,
}

/// A failure at or with the provider: its detail is logged, the user sees
/// `OAUTH_PROVIDER_ERROR` (or `OAUTH_STATE_INVALID` for a mix-up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ProviderFailure {
    /// The response came from another issuer than this provider (RFC 9207), or none where one
    /// is required.
    MixUp(String),
    Failed(String),
}

impl ProviderFailure {
    fn failed(what: &str, e: impl std::fmt::Display) -> Self {
        ProviderFailure::Failed(format!("{what}: {e}"))
    }
}

struct Discovered {
    meta: Metadata,
    fetched_at: Instant,
    keys_fetched_at: Instant,
    /// Multi-tenant issuers (Microsoft's `common`): the metadata's issuer holds `{tenantid}`,
    /// and a token's `iss` must match it with one tenant id in its place.
    tenant_template: Option<String>,
}

enum Kind {
    Oidc {
        issuer: String,
        discovered: Mutex<Option<Arc<Discovered>>>,
    },
    Plain {
        auth_url: String,
        token_url: String,
        userinfo_url: String,
        /// GitHub: the verified primary address comes from here, not from the user info.
        emails_url: Option<String>,
        /// The identity's issuer: the authorization endpoint (without query).
        issuer: String,
    },
}

/// One configured provider.
pub struct Provider {
    pub name: String,
    pub display_name: String,
    client_id: String,
    client_secret: Option<String>,
    scopes: Vec<String>,
    redirect_uri: String,
    kind: Kind,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider").field("name", &self.name).finish_non_exhaustive()
    }
}

/// What `fafnir oauth providers` shows of one provider.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderCheck {
    pub name: String,
    pub display_name: String,
    /// `oidc` or `oauth2`.
    pub kind: &'static str,
    /// The issuer (OIDC) or the authorization endpoint (OAuth 2.0).
    pub endpoint: String,
    /// The callback URL to register at the provider.
    pub redirect_uri: String,
    /// `None` when discovery (or, for OAuth 2.0, nothing) failed; else why.
    pub problem: Option<String>,
}

struct Preset {
    display: &'static str,
    issuer: Option<&'static str>,
    auth: Option<&'static str>,
    token: Option<&'static str>,
    userinfo: Option<&'static str>,
    scopes: &'static str,
}

fn preset(name: &str) -> Option<Preset> {
    let oidc = |display, issuer| Preset {
        display,
        issuer: Some(issuer),
        auth: None,
        token: None,
        userinfo: None,
        scopes: "openid email profile",
    };
    match name {
        "google" => Some(oidc("Google", "https://accounts.google.com")),
        "microsoft" => Some(oidc("Microsoft", "https://login.microsoftonline.com/common/v2.0")),
        "gitlab" => Some(oidc("GitLab", "https://gitlab.com")),
        "github" => Some(Preset {
            display: "GitHub",
            issuer: None,
            auth: Some("https://github.com/login/oauth/authorize"),
            token: Some("https://github.com/login/oauth/access_token"),
            userinfo: Some("https://api.github.com/user"),
            scopes: "read:user user:email",
        }),
        _ => None,
    }
}

fn valid_url(what: &str, name: &str, u: &str) -> Result<String, AuthError> {
    let parsed = url::Url::parse(u)
        .map_err(|e| AuthError::Config(format!("oauth provider `{name}`: {what} {u:?} is not a URL: {e}")))?;
    let loopback = parsed.host_str().is_some_and(|h| h == "localhost" || h == "127.0.0.1" || h == "[::1]");
    if parsed.scheme() != "https" && !(parsed.scheme() == "http" && loopback) {
        return Err(AuthError::Config(format!(
            "oauth provider `{name}`: {what} must use https (plain http only on a loopback host)"
        )));
    }
    Ok(u.trim_end_matches('/').to_owned())
}

impl Provider {
    fn from_config(name: &str, c: &OAuthProviderConfig, public_url: &str) -> Result<Self, AuthError> {
        let p = preset(name);
        let pick = |own: &Option<String>, pre: Option<&'static str>| own.clone().or(pre.map(String::from));
        let issuer = pick(&c.issuer, p.as_ref().and_then(|p| p.issuer));
        let explicit_plain = c.auth_url.is_some() || c.token_url.is_some() || c.userinfo_url.is_some();
        let kind = match issuer {
            Some(issuer) if !explicit_plain => {
                Kind::Oidc { issuer: valid_url("issuer", name, &issuer)?, discovered: Mutex::new(None) }
            }
            _ => {
                let need = |own: &Option<String>, pre: Option<&'static str>, what: &str, var: &str| {
                    pick(own, pre).ok_or_else(|| {
                        AuthError::Config(format!(
                            "oauth provider `{name}` needs either an issuer (FAFNIR_OAUTH_{n}_ISSUER) or all three \
                             endpoints; {what} (FAFNIR_OAUTH_{n}_{var}) is missing",
                            n = name.to_ascii_uppercase()
                        ))
                    })
                };
                let auth_url = need(&c.auth_url, p.as_ref().and_then(|p| p.auth), "the authorization URL", "AUTH_URL")?;
                let token_url = need(&c.token_url, p.as_ref().and_then(|p| p.token), "the token URL", "TOKEN_URL")?;
                let userinfo_url =
                    need(&c.userinfo_url, p.as_ref().and_then(|p| p.userinfo), "the user info URL", "USERINFO_URL")?;
                let auth_url = valid_url("the authorization URL", name, &auth_url)?;
                let userinfo_url = valid_url("the user info URL", name, &userinfo_url)?;
                // The identity's issuer: the authorization endpoint itself (not only its origin:
                // two providers on one host, such as two realms of one server, are two subject
                // spaces).
                let issuer = url::Url::parse(&auth_url)
                    .map(|mut u| {
                        u.set_query(None);
                        u.set_fragment(None);
                        u.to_string().trim_end_matches('/').to_owned()
                    })
                    .map_err(|e| AuthError::Config(e.to_string()))?;
                let github = userinfo_url.starts_with("https://api.github.com/");
                Kind::Plain {
                    token_url: valid_url("the token URL", name, &token_url)?,
                    emails_url: github.then(|| "https://api.github.com/user/emails".to_owned()),
                    auth_url,
                    userinfo_url,
                    issuer,
                }
            }
        };
        let scopes = c.scopes.clone().or(p.as_ref().map(|p| p.scopes.to_owned())).unwrap_or_else(|| {
            if matches!(kind, Kind::Oidc { .. }) {
                "openid email profile".into()
            } else {
                String::new()
            }
        });
        let display_name = c.display_name.clone().or(p.as_ref().map(|p| p.display.to_owned())).unwrap_or_else(|| {
            let mut n = name.to_owned();
            if let Some(f) = n.get_mut(0..1) {
                f.make_ascii_uppercase();
            }
            n
        });
        Ok(Provider {
            name: name.to_owned(),
            display_name,
            client_id: c.client_id.clone(),
            client_secret: c.client_secret.clone().filter(|s| !s.is_empty()),
            scopes: scopes.split([' ', ',']).filter(|s| !s.is_empty()).map(String::from).collect(),
            redirect_uri: format!("{}/auth/oauth/{name}/callback", public_url.trim_end_matches('/')),
            kind,
        })
    }

    pub fn is_oidc(&self) -> bool {
        matches!(self.kind, Kind::Oidc { .. })
    }

    /// The callback URL to register at the provider.
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    fn endpoint(&self) -> &str {
        match &self.kind {
            Kind::Oidc { issuer, .. } => issuer,
            Kind::Plain { auth_url, .. } => auth_url,
        }
    }

    async fn discovered(&self, http: &reqwest::Client, force_keys: bool) -> Result<Arc<Discovered>, ProviderFailure> {
        let Kind::Oidc { issuer, discovered } = &self.kind else {
            return Err(ProviderFailure::Failed("not an OpenID Connect provider".into()));
        };
        let mut slot = discovered.lock().await;
        if let Some(d) = slot.as_ref() {
            let fresh = d.fetched_at.elapsed() < METADATA_TTL;
            let keys_recent = d.keys_fetched_at.elapsed() < KEY_REFRESH_MIN;
            if fresh && (!force_keys || keys_recent) {
                return Ok(d.clone());
            }
            if fresh && force_keys {
                // The keys may have rotated: fetch them again, keep the metadata.
                let jwks: JsonWebKeySet<CoreJsonWebKey> =
                    get_json(http, d.meta.jwks_uri().url().as_str(), None).await?;
                let d = Arc::new(Discovered {
                    meta: d.meta.clone().set_jwks(jwks),
                    fetched_at: d.fetched_at,
                    keys_fetched_at: Instant::now(),
                    tenant_template: d.tenant_template.clone(),
                });
                *slot = Some(d.clone());
                return Ok(d);
            }
        }
        let url = format!("{issuer}/.well-known/openid-configuration");
        let meta: Metadata = get_json(http, &url, None).await?;
        let announced = meta.issuer().as_str().trim_end_matches('/').to_owned();
        let tenant_template = if announced == *issuer {
            None
        } else if announced.contains("{tenantid}") {
            Some(announced)
        } else {
            return Err(ProviderFailure::Failed(format!(
                "discovery at {url} announces issuer {announced:?}, not the configured {issuer:?}"
            )));
        };
        // The endpoints come from the provider's document, not the operator: held to the same
        // rule as configured URLs (https, or http on a loopback host).
        let mut endpoints = vec![meta.authorization_endpoint().url().as_str(), meta.jwks_uri().url().as_str()];
        endpoints.extend(meta.token_endpoint().map(|u| u.url().as_str()));
        endpoints.extend(meta.userinfo_endpoint().map(|u| u.url().as_str()));
        for e in endpoints {
            valid_url("a discovered endpoint", &self.name, e).map_err(|e| ProviderFailure::Failed(e.to_string()))?;
        }
        let jwks: JsonWebKeySet<CoreJsonWebKey> = get_json(http, meta.jwks_uri().url().as_str(), None).await?;
        let now = Instant::now();
        let d =
            Arc::new(Discovered { meta: meta.set_jwks(jwks), fetched_at: now, keys_fetched_at: now, tenant_template });
        *slot = Some(d.clone());
        Ok(d)
    }

    fn oidc_client(&self, d: &Discovered) -> Result<OidcClient, ProviderFailure> {
        let methods = d.meta.token_endpoint_auth_methods_supported();
        let basic = methods.is_none_or(|m| m.contains(&CoreClientAuthMethod::ClientSecretBasic));
        let client = CoreClient::from_provider_metadata(
            d.meta.clone(),
            ClientId::new(self.client_id.clone()),
            self.client_secret.clone().map(ClientSecret::new),
        )
        .set_redirect_uri(
            RedirectUrl::new(self.redirect_uri.clone()).map_err(|e| ProviderFailure::failed("redirect URI", e))?,
        )
        .set_auth_type(if basic { AuthType::BasicAuth } else { AuthType::RequestBody });
        Ok(client)
    }

    /// The URL that starts a sign-in at the provider.
    pub(crate) async fn authorize_url(
        &self,
        http: &reqwest::Client,
        state: &str,
        pkce_verifier: &str,
        nonce: Option<&str>,
    ) -> Result<String, ProviderFailure> {
        let challenge = PkceCodeChallenge::from_code_verifier_sha256(&PkceCodeVerifier::new(pkce_verifier.to_owned()));
        match &self.kind {
            Kind::Oidc { .. } => {
                let d = self.discovered(http, false).await?;
                let client = self.oidc_client(&d)?;
                let (state, nonce) = (state.to_owned(), nonce.unwrap_or_default().to_owned());
                let mut req = client
                    .authorize_url(
                        AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
                        move || CsrfToken::new(state),
                        move || Nonce::new(nonce),
                    )
                    .set_pkce_challenge(challenge);
                for s in self.scopes.iter().filter(|s| *s != "openid") {
                    req = req.add_scope(Scope::new(s.clone()));
                }
                Ok(req.url().0.to_string())
            }
            Kind::Plain { .. } => {
                let client = self.plain_client()?;
                let state = state.to_owned();
                let mut req = client.authorize_url(move || CsrfToken::new(state)).set_pkce_challenge(challenge);
                for s in &self.scopes {
                    req = req.add_scope(Scope::new(s.clone()));
                }
                Ok(req.url().0.to_string())
            }
        }
    }

    fn plain_client(&self) -> Result<PlainClient, ProviderFailure> {
        let Kind::Plain { auth_url, token_url, .. } = &self.kind else {
            return Err(ProviderFailure::Failed("not a plain OAuth 2.0 provider".into()));
        };
        let mut client = oauth2::basic::BasicClient::new(ClientId::new(self.client_id.clone()))
            .set_auth_uri(oauth2::AuthUrl::new(auth_url.clone()).map_err(|e| ProviderFailure::failed("auth URL", e))?)
            .set_token_uri(
                oauth2::TokenUrl::new(token_url.clone()).map_err(|e| ProviderFailure::failed("token URL", e))?,
            )
            .set_redirect_uri(
                RedirectUrl::new(self.redirect_uri.clone()).map_err(|e| ProviderFailure::failed("redirect URI", e))?,
            )
            .set_auth_type(AuthType::BasicAuth);
        if let Some(s) = &self.client_secret {
            client = client.set_client_secret(ClientSecret::new(s.clone()));
        }
        Ok(client)
    }

    /// Checks RFC 9207's `iss` of an authorization response: it must name this provider, and
    /// must be present when the provider says it always sends it.
    pub(crate) async fn check_response_issuer(
        &self,
        http: &reqwest::Client,
        iss: Option<&str>,
    ) -> Result<(), ProviderFailure> {
        match &self.kind {
            Kind::Oidc { issuer, .. } => {
                let d = self.discovered(http, false).await?;
                match iss {
                    Some(iss) => {
                        let ok = match &d.tenant_template {
                            Some(t) => matches_tenant(t, iss),
                            None => iss.trim_end_matches('/') == issuer,
                        };
                        if !ok {
                            return Err(ProviderFailure::MixUp(format!("the response names issuer {iss:?}")));
                        }
                    }
                    None if d.meta.additional_metadata().authorization_response_iss_parameter_supported => {
                        return Err(ProviderFailure::MixUp(
                            "the response names no issuer, though the provider sends one".into(),
                        ));
                    }
                    None => {}
                }
            }
            Kind::Plain { auth_url, .. } => {
                // A plain OAuth 2.0 provider announces no issuer: one sent back must at least be
                // on the authorization endpoint's origin.
                if let Some(iss) = iss {
                    let origin = |u: &str| url::Url::parse(u).ok().map(|u| u.origin().ascii_serialization());
                    if origin(iss).is_none() || origin(iss) != origin(auth_url) {
                        return Err(ProviderFailure::MixUp(format!("the response names issuer {iss:?}")));
                    }
                }
            }
        }
        Ok(())
    }

    /// Exchanges the code (with the PKCE verifier) and reads who signed in: from the verified ID
    /// token (OpenID Connect; the user info fills in a missing e-mail) or from the user info
    /// (plain OAuth 2.0).
    pub(crate) async fn identify(
        &self,
        http: &reqwest::Client,
        code: &str,
        pkce_verifier: &str,
        nonce: Option<&str>,
    ) -> Result<RemoteIdentity, ProviderFailure> {
        let verifier = PkceCodeVerifier::new(pkce_verifier.to_owned());
        let limited = Limited(http);
        match &self.kind {
            Kind::Oidc { .. } => {
                let d = self.discovered(http, false).await?;
                let client = self.oidc_client(&d)?;
                let token = client
                    .exchange_code(AuthorizationCode::new(code.to_owned()))
                    .map_err(|e| ProviderFailure::failed("token endpoint", e))?
                    .set_pkce_verifier(verifier)
                    .request_async(&limited)
                    .await
                    .map_err(|e| ProviderFailure::failed("code exchange", describe_token_error(&e)))?;
                let id_token = token
                    .id_token()
                    .ok_or_else(|| ProviderFailure::Failed("the token response has no ID token".into()))?;
                let nonce = Nonce::new(nonce.unwrap_or_default().to_owned());
                let verify = |d: &Discovered, client: &OidcClient| {
                    let mut v = client.id_token_verifier();
                    if d.tenant_template.is_some() {
                        v = v.require_issuer_match(false);
                    }
                    id_token.claims(&v, &nonce).cloned()
                };
                let claims = match verify(&d, &client) {
                    Err(ClaimsVerificationError::SignatureVerification(
                        SignatureVerificationError::NoMatchingKey | SignatureVerificationError::AmbiguousKeyId(_),
                    )) => {
                        // The provider may have rotated its keys since they were fetched.
                        let d = self.discovered(http, true).await?;
                        let client = self.oidc_client(&d)?;
                        verify(&d, &client)
                    }
                    other => other,
                }
                .map_err(|e| ProviderFailure::failed("the ID token does not verify", e))?;
                let issuer = claims.issuer().as_str().trim_end_matches('/').to_owned();
                if let Some(t) = &d.tenant_template {
                    if !matches_tenant(t, &issuer) {
                        return Err(ProviderFailure::Failed(format!(
                            "the ID token's issuer {issuer:?} does not match {t:?}"
                        )));
                    }
                }
                let mut id = RemoteIdentity {
                    issuer,
                    subject: claims.subject().as_str().to_owned(),
                    email: claims.email().map(|e| e.as_str().to_owned()),
                    email_verified: claims.email_verified().unwrap_or(false),
                };
                if id.email.is_none() && d.meta.userinfo_endpoint().is_some() {
                    let info: CoreUserInfoClaims = client
                        .user_info(token.access_token().clone(), Some(claims.subject().clone()))
                        .map_err(|e| ProviderFailure::failed("user info", e))?
                        .request_async(&limited)
                        .await
                        .map_err(|e| ProviderFailure::failed("user info", e))?;
                    id.email = info.email().map(|e| e.as_str().to_owned());
                    id.email_verified = info.email_verified().unwrap_or(false);
                }
                Ok(id)
            }
            Kind::Plain { userinfo_url, emails_url, issuer, .. } => {
                let client = self.plain_client()?;
                let token = client
                    .exchange_code(AuthorizationCode::new(code.to_owned()))
                    .set_pkce_verifier(verifier)
                    .request_async(&limited)
                    .await
                    .map_err(|e| ProviderFailure::failed("code exchange", describe_token_error(&e)))?;
                let bearer = token.access_token().secret();
                let info: serde_json::Value = get_json(http, userinfo_url, Some(bearer)).await?;
                let subject = match info.get("sub").or_else(|| info.get("id")) {
                    Some(serde_json::Value::String(s)) if !s.is_empty() => s.clone(),
                    Some(serde_json::Value::Number(n)) => n.to_string(),
                    _ => return Err(ProviderFailure::Failed("the user info has no `sub` or `id`".into())),
                };
                let (email, email_verified) = match emails_url {
                    Some(url) => {
                        // GitHub: the primary address, if GitHub verified it.
                        let list: Vec<GitHubEmail> = get_json(http, url, Some(bearer)).await?;
                        match list.into_iter().find(|e| e.primary) {
                            Some(e) => (Some(e.email), e.verified),
                            None => (None, false),
                        }
                    }
                    None => (
                        info.get("email").and_then(|v| v.as_str()).map(String::from),
                        match info.get("email_verified") {
                            Some(serde_json::Value::Bool(b)) => *b,
                            Some(serde_json::Value::String(s)) => s == "true",
                            _ => false,
                        },
                    ),
                };
                Ok(RemoteIdentity { issuer: issuer.clone(), subject, email, email_verified })
            }
        }
    }
}

type OidcClient = CoreClient<
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

type PlainClient = oauth2::basic::BasicClient<
    oauth2::EndpointSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointSet,
>;

#[derive(Deserialize)]
struct GitHubEmail {
    email: String,
    primary: bool,
    verified: bool,
}

/// Whether `iss` is `template` with `{tenantid}` replaced by one tenant id (letters, digits, `-`).
fn matches_tenant(template: &str, iss: &str) -> bool {
    let Some((pre, post)) = template.split_once("{tenantid}") else { return false };
    let iss = iss.trim_end_matches('/');
    iss.len() > pre.len() + post.len()
        && iss.starts_with(pre)
        && iss.ends_with(post)
        && iss[pre.len()..iss.len() - post.len()].bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn describe_token_error<RE: std::error::Error + 'static, T: oauth2::ErrorResponse + 'static>(
    e: &oauth2::RequestTokenError<RE, T>,
) -> String {
    match e {
        oauth2::RequestTokenError::ServerResponse(r) => format!("the provider answered {r}"),
        oauth2::RequestTokenError::Request(e) => format!("request failed: {e}"),
        oauth2::RequestTokenError::Parse(e, _) => format!("unreadable response: {e}"),
        oauth2::RequestTokenError::Other(e) => e.clone(),
    }
}

/// Why a provider request failed (for oauth2 and openidconnect, which take any HTTP client).
#[derive(Debug, thiserror::Error)]
pub(crate) enum HttpFailure {
    #[error(transparent)]
    Request(#[from] reqwest::Error),
    #[error("the response is over {} bytes", MAX_BODY)]
    TooLarge,
    #[error(transparent)]
    Http(#[from] oauth2::http::Error),
}

/// Reads a response body, refusing one over [`MAX_BODY`] (checked as it arrives, so a provider
/// cannot make Fafnir buffer an endless body).
async fn read_limited(mut resp: reqwest::Response) -> Result<Vec<u8>, HttpFailure> {
    if resp.content_length().is_some_and(|n| n > MAX_BODY as u64) {
        return Err(HttpFailure::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(HttpFailure::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// One request of oauth2 / openidconnect (the token endpoint, the user info), through Fafnir's
/// client: no redirects, the timeout, and the size limit.
async fn limited_call(http: &reqwest::Client, req: oauth2::HttpRequest) -> Result<oauth2::HttpResponse, HttpFailure> {
    let resp = http.execute(req.try_into()?).await?;
    let mut builder = oauth2::http::Response::builder().status(resp.status());
    for (name, value) in resp.headers() {
        builder = builder.header(name, value);
    }
    let body = read_limited(resp).await?;
    Ok(builder.body(body)?)
}

/// Fafnir's client as oauth2 and openidconnect take it (boxed, like their own reqwest client).
struct Limited<'a>(&'a reqwest::Client);

impl<'c> oauth2::AsyncHttpClient<'c> for Limited<'_> {
    type Error = HttpFailure;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<oauth2::HttpResponse, HttpFailure>> + Send + Sync + 'c>,
    >;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(limited_call(self.0, request))
    }
}

/// GETs a JSON document from a provider (optionally with a bearer token): 2xx, at most
/// [`MAX_BODY`], no redirects followed (the client refuses them).
async fn get_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
    bearer: Option<&str>,
) -> Result<T, ProviderFailure> {
    let mut req = http.get(url).header(reqwest::header::ACCEPT, "application/json");
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    let resp = req.send().await.map_err(|e| ProviderFailure::failed(url, e))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(ProviderFailure::Failed(format!("{url}: HTTP {status}")));
    }
    let body = read_limited(resp).await.map_err(|e| ProviderFailure::failed(url, e))?;
    serde_json::from_slice(&body).map_err(|e| ProviderFailure::failed(url, e))
}

/// The configured providers, with the one HTTP client that talks to them.
pub struct Providers {
    list: Vec<Arc<Provider>>,
    pub(crate) http: reqwest::Client,
}

impl std::fmt::Debug for Providers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.list.iter().map(|p| &p.name)).finish()
    }
}

impl Providers {
    /// The providers of `config` (none is fine). Their callback URLs are under the public URL,
    /// which must therefore be set once any provider is.
    pub fn from_config(config: &Config) -> Result<Self, AuthError> {
        let http = reqwest::Client::builder()
            // The SSRF advice of oauth2 and openidconnect: never follow a provider's redirects.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(PROVIDER_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("fafnir/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| AuthError::Config(format!("HTTP client: {e}")))?;
        let mut list = Vec::new();
        if !config.oauth.is_empty() {
            let public = config.public_url.as_deref().ok_or_else(|| {
                AuthError::Config(
                    "social login needs FAFNIR_PUBLIC_URL: the providers send the browser back to \
                     <public URL>/auth/oauth/<name>/callback"
                        .into(),
                )
            })?;
            for (name, c) in &config.oauth {
                list.push(Arc::new(Provider::from_config(name, c, public)?));
            }
        }
        Ok(Self { list, http })
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Provider>> {
        self.list.iter().find(|p| p.name == name)
    }

    pub fn list(&self) -> Vec<ProviderInfo> {
        self.list.iter().map(|p| ProviderInfo { name: p.name.clone(), display_name: p.display_name.clone() }).collect()
    }

    /// Each provider with its callback URL and whether Fafnir can reach it (OpenID Connect:
    /// discovery and keys fetched now).
    pub async fn check(&self) -> Vec<ProviderCheck> {
        let mut out = Vec::new();
        for p in &self.list {
            let problem = if p.is_oidc() {
                p.discovered(&self.http, true).await.err().map(|e| match e {
                    ProviderFailure::MixUp(m) | ProviderFailure::Failed(m) => m,
                })
            } else {
                None
            };
            out.push(ProviderCheck {
                name: p.name.clone(),
                display_name: p.display_name.clone(),
                kind: if p.is_oidc() { "oidc" } else { "oauth2" },
                endpoint: p.endpoint().to_owned(),
                redirect_uri: p.redirect_uri.clone(),
                problem,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Providers, AuthError> {
        let mut c = Config { public_url: Some("https://auth.example/".into()), ..Config::default() };
        c.apply_oauth_env(pairs.iter().copied()).map_err(AuthError::Store)?;
        Providers::from_config(&c)
    }

    #[test]
    fn presets_need_only_the_client() {
        let p = cfg(&[
            ("FAFNIR_OAUTH_GOOGLE_CLIENT_ID", "g"),
            ("FAFNIR_OAUTH_GITHUB_CLIENT_ID", "h"),
            ("FAFNIR_OAUTH_CORP_CLIENT_ID", "c"),
            ("FAFNIR_OAUTH_CORP_ISSUER", "https://sso.corp.example/"),
            ("FAFNIR_OAUTH_CORP_DISPLAY_NAME", "Corp SSO"),
        ])
        .unwrap();
        let google = p.get("google").unwrap();
        assert!(google.is_oidc());
        assert_eq!(google.endpoint(), "https://accounts.google.com");
        assert_eq!(google.redirect_uri(), "https://auth.example/auth/oauth/google/callback");
        let github = p.get("github").unwrap();
        assert!(!github.is_oidc());
        assert!(
            matches!(&github.kind, Kind::Plain { issuer, emails_url: Some(_), .. } if issuer == "https://github.com/login/oauth/authorize")
        );
        assert_eq!(p.get("corp").unwrap().endpoint(), "https://sso.corp.example");
        assert_eq!(
            p.list().iter().map(|i| i.display_name.as_str()).collect::<Vec<_>>(),
            ["Corp SSO", "GitHub", "Google"]
        );
    }

    #[test]
    fn refuses_what_cannot_work() {
        let e = cfg(&[("FAFNIR_OAUTH_CORP_CLIENT_ID", "c")]).unwrap_err().to_string();
        assert!(e.contains("FAFNIR_OAUTH_CORP_ISSUER") && e.contains("AUTH_URL"), "{e}");
        let e = cfg(&[("FAFNIR_OAUTH_CORP_CLIENT_ID", "c"), ("FAFNIR_OAUTH_CORP_ISSUER", "http://sso.corp.example")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("https"), "{e}");
        let mut c = Config::default();
        c.apply_oauth_env([("FAFNIR_OAUTH_GOOGLE_CLIENT_ID", "g")]).unwrap();
        assert!(Providers::from_config(&c).unwrap_err().to_string().contains("FAFNIR_PUBLIC_URL"));
    }

    #[test]
    fn microsofts_common_metadata_keeps_its_tenant_template() {
        // The shape of https://login.microsoftonline.com/common/v2.0/.well-known/openid-configuration.
        let doc = serde_json::json!({
            "issuer": "https://login.microsoftonline.com/{tenantid}/v2.0",
            "authorization_endpoint": "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
            "token_endpoint": "https://login.microsoftonline.com/common/oauth2/v2.0/token",
            "jwks_uri": "https://login.microsoftonline.com/common/discovery/v2.0/keys",
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
        });
        let meta: Metadata = serde_json::from_value(doc).unwrap();
        assert_eq!(meta.issuer().as_str(), "https://login.microsoftonline.com/{tenantid}/v2.0");
        assert!(!meta.additional_metadata().authorization_response_iss_parameter_supported);
    }

    #[test]
    fn tenant_templates() {
        let t = "https://login.microsoftonline.com/{tenantid}/v2.0";
        assert!(matches_tenant(t, "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0"));
        assert!(!matches_tenant(t, "https://login.microsoftonline.com//v2.0"));
        assert!(!matches_tenant(t, "https://login.microsoftonline.com/a/b/v2.0"));
        assert!(!matches_tenant(t, "https://evil.example/9188040d/v2.0"));
    }
}
