//! The REST surface of fafnir-auth (feature `axum`): every `/auth/*` path of the contract, the
//! JWKS, the browser cookie flow with CSRF protection, and extractors for integrators.
//!
//! ```ignore
//! let http = AuthHttp::new(auth, rbac_as_checker, HttpSettings::from_config(&config), &db).await?;
//! let app: axum::Router = axum::Router::new()
//!     .merge(fafnir_auth::http::router(http.clone()))
//!     .route("/mine", get(|CurrentUser(who): CurrentUser| async move { who.user_id.to_string() }))
//!     .with_state(http);
//! ```

mod admin;
mod body;
mod cookies;
mod csrf;
pub mod dto;
mod error;
mod extract;
mod handlers;
mod json;
mod mfa;
mod oauth;
mod passkey;

use std::sync::Arc;

use axum::Router;
use fafnir_core::{Config, Db, PermissionChecker};
use handlers::SecuritySchemes;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

pub use admin::{
    Admin, AdminActionResponse, AdminUserDto, AuditEventDto, AuditResponse, DeleteAccountRequest, UsersManage,
    UsersResponse,
};
pub use body::{JsonBody, JsonOrForm, OptionalJson, MAX_BODY};
pub use cookies::read as read_cookie;
pub use cookies::{
    ACCESS as ACCESS_COOKIE, CSRF as CSRF_COOKIE, OAUTH_BINDING as OAUTH_BINDING_COOKIE,
    OAUTH_BINDING_HOST as OAUTH_BINDING_HOST_COOKIE, REFRESH as REFRESH_COOKIE,
};
pub use csrf::{double_submit_matches, is_unsafe};
pub use csrf::{origin_allowed, CsrfKey, HEADER as CSRF_HEADER};
pub use error::{ApiError, ErrorBody, ErrorDetail};
pub use extract::{client_ip, presented, Authorized, Client, CurrentUser, Presented, RequiredPermission};

use crate::{Auth, AuthError};

/// Transport settings of the REST layer.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Add `Secure` to cookies (`FAFNIR_COOKIE_SECURE`, default true).
    pub cookie_secure: bool,
    /// Origins trusted for CSRF checks (`FAFNIR_ALLOWED_ORIGINS`).
    pub allowed_origins: Vec<String>,
    /// This server's own origin, from `FAFNIR_PUBLIC_URL`; without it, the Host header's.
    pub public_origin: Option<String>,
    /// Take the client address from the last `X-Forwarded-For` entry, the one your proxy
    /// appended (`FAFNIR_TRUST_FORWARDED_FOR`). Only behind a proxy you control. Off by default.
    pub trust_forwarded_for: bool,
}

impl HttpSettings {
    pub fn from_config(c: &Config) -> Self {
        Self {
            cookie_secure: c.cookie_secure,
            allowed_origins: c.allowed_origins.clone(),
            public_origin: c.public_url.as_deref().and_then(csrf::origin_of),
            trust_forwarded_for: c.trust_forwarded_for,
        }
    }
}

struct Inner {
    auth: Arc<Auth>,
    checker: Arc<dyn PermissionChecker>,
    settings: HttpSettings,
    csrf: CsrfKey,
    /// Callers refused administration recently (their refusals are audited once a minute).
    denied: fafnir_core::cache::TtlCache<fafnir_core::UserId, (), fafnir_core::cache::TrustedKeys>,
}

/// The state the router and the extractors need. Cheap to clone. Make it reachable from your
/// own state with `impl FromRef<YourState> for AuthHttp` to use the extractors.
#[derive(Clone)]
pub struct AuthHttp(Arc<Inner>);

impl std::fmt::Debug for AuthHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthHttp").field("settings", &self.0.settings).finish_non_exhaustive()
    }
}

/// The name of the shared secret that keys CSRF tokens.
const CSRF_SECRET: &str = "csrf";

impl AuthHttp {
    /// Loads (or creates) the CSRF key shared by all instances on `db`.
    pub async fn new(
        auth: Arc<Auth>,
        checker: Arc<dyn PermissionChecker>,
        settings: HttpSettings,
        db: &Db,
    ) -> Result<Self, AuthError> {
        let now = chrono::Utc::now().timestamp_millis();
        let secret = fafnir_core::keys::server_secret(db, CSRF_SECRET, now).await?;
        Ok(Self::with_csrf_secret(auth, checker, settings, &secret))
    }

    pub fn with_csrf_secret(
        auth: Arc<Auth>,
        checker: Arc<dyn PermissionChecker>,
        settings: HttpSettings,
        secret: &[u8],
    ) -> Self {
        AuthHttp(Arc::new(Inner {
            auth,
            checker,
            settings,
            csrf: CsrfKey::new(secret),
            denied: fafnir_core::cache::TtlCache::trusted(10_000),
        }))
    }

    pub fn auth(&self) -> &Arc<Auth> {
        &self.0.auth
    }

    pub fn checker(&self) -> &Arc<dyn PermissionChecker> {
        &self.0.checker
    }

    pub fn settings(&self) -> &HttpSettings {
        &self.0.settings
    }

    pub fn csrf_key(&self) -> &CsrfKey {
        &self.0.csrf
    }

    /// Whether a refusal of `user` should be audited now (the first in a minute).
    fn note_denied(&self, user: fafnir_core::UserId) -> bool {
        let now = chrono::Utc::now().timestamp_millis();
        if self.0.denied.get(&user, now, 60_000).is_some() {
            return false;
        }
        self.0.denied.put(user, (), now);
        true
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Fafnir",
        description = "Authentication for browsers (HttpOnly cookies + CSRF header) and API clients (Bearer tokens from /auth/token).",
        license(name = "MIT OR Apache-2.0")
    ),
    modifiers(&SecuritySchemes),
    tags(
        (name = "auth", description = "Accounts, login, tokens and sessions"),
        (name = "email", description = "Verification, password reset and change of address, by mailed links"),
        (name = "oauth", description = "Social login: sign in with OAuth 2.0 / OpenID Connect providers, link and unlink identities"),
        (name = "mfa", description = "Second factors: TOTP with recovery codes, and the login step-up"),
        (name = "passkeys", description = "Passkeys (WebAuthn): register while signed in, sign in without an e-mail or password"),
        (name = "account", description = "The caller's own account: deletion, recent sign-ins"),
        (name = "admin", description = "Administration (permission users:manage): accounts and the audit log"),
        (name = "keys", description = "Public keys")
    )
)]
struct ApiDoc;

fn parts() -> (Router<AuthHttp>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(handlers::routes())
        .merge(oauth::routes())
        .merge(mfa::routes())
        .merge(passkey::routes())
        .merge(admin::routes())
        .split_for_parts()
}

/// The `/auth/*` and `/.well-known/jwks.json` routes, ready to merge into any router.
/// Every answer is `Cache-Control: no-store` (they carry personal data and tokens) unless the
/// handler chose otherwise (the JWKS and the metadata are public and cacheable), whichever app
/// mounts the router.
pub fn router<S: Clone + Send + Sync + 'static>(state: AuthHttp) -> Router<S> {
    use axum::http::{header, HeaderValue};
    // Not a `map_response` middleware: that boxes a future on every request.
    let no_store = tower_http::set_header::SetResponseHeaderLayer::if_not_present(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    parts().0.with_state(state).layer(no_store)
}

/// [`router`] without its `Cache-Control: no-store` layer, for a server that puts that header
/// on every answer itself (fafnir-server's hardening layer does): the layer wraps every route,
/// and each wrapped route costs every request a boxed clone. Anywhere else, use [`router`].
pub fn router_for_no_store_server<S: Clone + Send + Sync + 'static>(state: AuthHttp) -> Router<S> {
    parts().0.with_state(state)
}

/// The OpenAPI 3.1 document of [`router`], generated from the handlers.
pub fn openapi() -> utoipa::openapi::OpenApi {
    parts().1
}
