//! Configuration types shared by the crates and binaries, with the contract's defaults and the
//! `FAFNIR_*` environment overlay. (Flags and the TOML file are layered on by the binaries:
//! flag > environment > file > default.)

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::CoreError;

/// Everything a Fafnir process can be told. `Debug` shows the database URL without its
/// credentials.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `sqlite://…` or `postgres://…`.
    pub database_url: String,
    pub http_addr: SocketAddr,
    pub grpc_addr: SocketAddr,
    /// The URL browsers use to reach this server (its origin is trusted for CSRF checks).
    pub public_url: Option<String>,
    /// `iss` of issued tokens; defaults to the public URL, else `fafnir`.
    pub issuer: Option<String>,
    /// `aud` of issued tokens.
    pub audience: String,
    /// Origins allowed for CORS with credentials and for CSRF Origin checks.
    pub allowed_origins: Vec<String>,
    pub cookie_secure: bool,
    /// Behind a reverse proxy that appends the client address to `X-Forwarded-For`: take the
    /// client address from its last entry instead of the TCP peer. Off by default.
    pub trust_forwarded_for: bool,
    #[serde(with = "duration_str")]
    pub access_ttl: Duration,
    #[serde(with = "duration_str")]
    pub refresh_ttl: Duration,
    /// A tracing filter, such as `info,fafnir_auth=debug`.
    pub log: String,
    pub auth_url: Option<String>,
    pub security_url: Option<String>,
    pub users_url: Option<String>,
    /// A JWKS document on disk: gRPC services verify tokens with these keys instead of fetching
    /// auth-service's JWKS.
    pub jwks_file: Option<String>,
    /// Open connections per process, across its listeners (more wait in the accept queue).
    pub max_connections: usize,
    /// A connection must send a request's headers within this time, or it is closed.
    #[serde(with = "duration_str")]
    pub header_read_timeout: Duration,
    /// After SIGTERM, in-flight requests get this long to finish; then the process exits.
    #[serde(with = "duration_str")]
    pub shutdown_timeout: Duration,
    /// GraphQL introspection (`__schema`, `__type`). On by default; turn it off in production
    /// if you do not want the schema discoverable (it is public in docs/schema.graphql anyway).
    pub graphql_introspection: bool,
    /// Where mail goes: `smtp://user:pass@host:port` (STARTTLS, required except on a loopback
    /// host) or `smtps://…` (implicit TLS). Unset: messages are written to the log. Holds a
    /// password: never printed.
    pub smtp_url: Option<String>,
    /// The `From` of every message, such as `Fafnir <no-reply@example.com>`.
    pub mail_from: String,
    /// The product name in mail (`FAFNIR_PRODUCT_NAME`).
    pub product_name: String,
    /// A directory of mail templates replacing the built-in ones file by file
    /// (`FAFNIR_MAIL_TEMPLATES`).
    pub mail_templates: Option<String>,
    /// Unverified accounts cannot sign in (`FAFNIR_REQUIRE_VERIFIED_EMAIL`, default false).
    pub require_verified_email: bool,
    /// The page, under the public URL, that a verification link opens
    /// (`FAFNIR_VERIFY_EMAIL_PATH`, default `/verify-email`).
    pub verify_email_path: String,
    /// The page a password reset link opens (`FAFNIR_RESET_PASSWORD_PATH`, default
    /// `/reset-password`).
    pub reset_password_path: String,
    /// The page a change-of-address link opens (`FAFNIR_CONFIRM_EMAIL_PATH`, default
    /// `/confirm-email`).
    pub confirm_email_path: String,
    /// notification-service (microservice mode): auth-service hands its mail to it instead of
    /// sending it itself (`FAFNIR_NOTIFICATION_URL`).
    pub notification_url: Option<String>,
    /// How long audit events are kept (`FAFNIR_AUDIT_RETENTION`, default 90 days).
    #[serde(with = "duration_str")]
    pub audit_retention: Duration,
    /// New accounts may be created by registration and by a first provider sign-in
    /// (`FAFNIR_ALLOW_SIGNUP`, default true). Off, only an administrator creates accounts.
    pub allow_signup: bool,
    /// Social login providers by the name the operator picks (`[oauth.<name>]`, or
    /// `FAFNIR_OAUTH_<NAME>_*`; see [`OAuthProviderConfig`]).
    pub oauth: BTreeMap<String, OAuthProviderConfig>,
    /// A provider sign-in whose e-mail belongs to an existing account links to it when the
    /// provider asserts the address verified and the account's address is verified too
    /// (`FAFNIR_OAUTH_LINK_VERIFIED_EMAIL`, default false: such a sign-in answers
    /// `ACCOUNT_NOT_LINKED`).
    pub oauth_link_verified_email: bool,
    /// The key of TOTP secrets at rest: 32 bytes in base64 (`FAFNIR_MFA_KEY`). Unset, the
    /// deployment's instances share one generated in the database. Never printed.
    pub mfa_key: Option<String>,
    /// The passkeys' relying party id (`FAFNIR_WEBAUTHN_RP_ID`): a host name, the public URL's
    /// host or a parent domain of it. Unset, the public URL's host.
    pub webauthn_rp_id: Option<String>,
}

/// One social login provider. Either `issuer` (OpenID Connect discovery) or the three endpoint
/// URLs (plain OAuth 2.0); the presets `google`, `github`, `microsoft` and `gitlab` fill them in.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OAuthProviderConfig {
    pub client_id: String,
    /// Never printed.
    pub client_secret: Option<String>,
    pub issuer: Option<String>,
    pub auth_url: Option<String>,
    pub token_url: Option<String>,
    pub userinfo_url: Option<String>,
    /// Space- or comma-separated; default `openid email profile` (OIDC) or the preset's.
    pub scopes: Option<String>,
    pub display_name: Option<String>,
}

impl std::fmt::Debug for OAuthProviderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthProviderConfig")
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "***"))
            .field("issuer", &self.issuer)
            .field("auth_url", &self.auth_url)
            .field("token_url", &self.token_url)
            .field("userinfo_url", &self.userinfo_url)
            .field("scopes", &self.scopes)
            .field("display_name", &self.display_name)
            .finish()
    }
}

/// The settings of one provider, as the suffixes of `FAFNIR_OAUTH_<NAME>_…`.
const OAUTH_ENV_SUFFIXES: [&str; 8] =
    ["_CLIENT_ID", "_CLIENT_SECRET", "_ISSUER", "_AUTH_URL", "_TOKEN_URL", "_USERINFO_URL", "_SCOPES", "_DISPLAY_NAME"];

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("database", &crate::db::describe_url(&self.database_url))
            .field("http_addr", &self.http_addr)
            .field("grpc_addr", &self.grpc_addr)
            .field("public_url", &self.public_url)
            .field("issuer", &self.issuer())
            .field("audience", &self.audience)
            .field("allowed_origins", &self.allowed_origins)
            .field("cookie_secure", &self.cookie_secure)
            .field("oauth", &self.oauth.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            database_url: "sqlite://fafnir.db".into(),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 50051)),
            public_url: None,
            issuer: None,
            audience: "fafnir".into(),
            allowed_origins: Vec::new(),
            cookie_secure: true,
            trust_forwarded_for: false,
            access_ttl: Duration::from_secs(15 * 60),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
            log: "info".into(),
            auth_url: None,
            security_url: None,
            users_url: None,
            jwks_file: None,
            max_connections: 1024,
            header_read_timeout: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(10),
            graphql_introspection: true,
            smtp_url: None,
            mail_from: "Fafnir <no-reply@localhost>".into(),
            product_name: "Fafnir".into(),
            mail_templates: None,
            require_verified_email: false,
            verify_email_path: "/verify-email".into(),
            reset_password_path: "/reset-password".into(),
            confirm_email_path: "/confirm-email".into(),
            notification_url: None,
            audit_retention: Duration::from_secs(90 * 86_400),
            allow_signup: true,
            oauth: BTreeMap::new(),
            oauth_link_verified_email: false,
            mfa_key: None,
            webauthn_rp_id: None,
        }
    }
}

impl Config {
    /// The issuer: explicit, else the public URL, else `fafnir`.
    pub fn issuer(&self) -> String {
        self.issuer.clone().or_else(|| self.public_url.clone()).unwrap_or_else(|| "fafnir".into())
    }

    /// Overlays `FAFNIR_*` variables read through `var` (pass `|k| std::env::var(k).ok()`).
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), CoreError> {
        let parse_addr = |k: &str, v: String| {
            v.parse::<SocketAddr>()
                .map_err(|_| CoreError::Config(format!("{k} must be host:port, such as 127.0.0.1:8080")))
        };
        if let Some(v) = var("FAFNIR_DATABASE_URL") {
            self.database_url = v;
        }
        if let Some(v) = var("FAFNIR_HTTP_ADDR") {
            self.http_addr = parse_addr("FAFNIR_HTTP_ADDR", v)?;
        }
        if let Some(v) = var("FAFNIR_GRPC_ADDR") {
            self.grpc_addr = parse_addr("FAFNIR_GRPC_ADDR", v)?;
        }
        if let Some(v) = var("FAFNIR_PUBLIC_URL") {
            self.public_url = Some(v);
        }
        if let Some(v) = var("FAFNIR_ISSUER") {
            self.issuer = Some(v);
        }
        if let Some(v) = var("FAFNIR_ALLOWED_ORIGINS") {
            self.allowed_origins = v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
        }
        if let Some(v) = var("FAFNIR_COOKIE_SECURE") {
            self.cookie_secure =
                parse_bool(&v).ok_or_else(|| CoreError::Config("FAFNIR_COOKIE_SECURE must be true or false".into()))?;
        }
        if let Some(v) = var("FAFNIR_TRUST_FORWARDED_FOR") {
            self.trust_forwarded_for = parse_bool(&v)
                .ok_or_else(|| CoreError::Config("FAFNIR_TRUST_FORWARDED_FOR must be true or false".into()))?;
        }
        if let Some(v) = var("FAFNIR_ACCESS_TTL") {
            self.access_ttl = parse_duration(&v).map_err(|e| CoreError::Config(format!("FAFNIR_ACCESS_TTL: {e}")))?;
        }
        if let Some(v) = var("FAFNIR_REFRESH_TTL") {
            self.refresh_ttl = parse_duration(&v).map_err(|e| CoreError::Config(format!("FAFNIR_REFRESH_TTL: {e}")))?;
        }
        if let Some(v) = var("FAFNIR_LOG") {
            self.log = v;
        }
        if let Some(v) = var("FAFNIR_MAX_CONNECTIONS") {
            self.max_connections = v
                .trim()
                .parse()
                .map_err(|_| CoreError::Config("FAFNIR_MAX_CONNECTIONS must be a whole number, such as 1024".into()))?;
        }
        if let Some(v) = var("FAFNIR_HEADER_READ_TIMEOUT") {
            self.header_read_timeout =
                parse_duration(&v).map_err(|e| CoreError::Config(format!("FAFNIR_HEADER_READ_TIMEOUT: {e}")))?;
        }
        if let Some(v) = var("FAFNIR_SHUTDOWN_TIMEOUT") {
            self.shutdown_timeout =
                parse_duration(&v).map_err(|e| CoreError::Config(format!("FAFNIR_SHUTDOWN_TIMEOUT: {e}")))?;
        }
        if let Some(v) = var("FAFNIR_MAIL_FROM") {
            self.mail_from = v;
        }
        if let Some(v) = var("FAFNIR_AUDIT_RETENTION") {
            self.audit_retention =
                parse_duration(&v).map_err(|e| CoreError::Config(format!("FAFNIR_AUDIT_RETENTION: {e}")))?;
        }
        if let Some(v) = var("FAFNIR_REQUIRE_VERIFIED_EMAIL") {
            self.require_verified_email = parse_bool(&v)
                .ok_or_else(|| CoreError::Config("FAFNIR_REQUIRE_VERIFIED_EMAIL must be true or false".into()))?;
        }
        for (k, slot) in [
            ("FAFNIR_PRODUCT_NAME", &mut self.product_name),
            ("FAFNIR_VERIFY_EMAIL_PATH", &mut self.verify_email_path),
            ("FAFNIR_RESET_PASSWORD_PATH", &mut self.reset_password_path),
            ("FAFNIR_CONFIRM_EMAIL_PATH", &mut self.confirm_email_path),
        ] {
            if let Some(v) = var(k) {
                *slot = v;
            }
        }
        for (k, slot) in [
            ("FAFNIR_ALLOW_SIGNUP", &mut self.allow_signup),
            ("FAFNIR_OAUTH_LINK_VERIFIED_EMAIL", &mut self.oauth_link_verified_email),
        ] {
            if let Some(v) = var(k) {
                *slot = parse_bool(&v).ok_or_else(|| CoreError::Config(format!("{k} must be true or false")))?;
            }
        }
        if let Some(v) = var("FAFNIR_GRAPHQL_INTROSPECTION") {
            self.graphql_introspection = parse_bool(&v)
                .ok_or_else(|| CoreError::Config("FAFNIR_GRAPHQL_INTROSPECTION must be true or false".into()))?;
        }
        for (k, slot) in [
            ("FAFNIR_AUTH_URL", &mut self.auth_url),
            ("FAFNIR_SECURITY_URL", &mut self.security_url),
            ("FAFNIR_USERS_URL", &mut self.users_url),
            ("FAFNIR_JWKS_FILE", &mut self.jwks_file),
            ("FAFNIR_SMTP_URL", &mut self.smtp_url),
            ("FAFNIR_MAIL_TEMPLATES", &mut self.mail_templates),
            ("FAFNIR_NOTIFICATION_URL", &mut self.notification_url),
            ("FAFNIR_MFA_KEY", &mut self.mfa_key),
            ("FAFNIR_WEBAUTHN_RP_ID", &mut self.webauthn_rp_id),
        ] {
            if let Some(v) = var(k) {
                *slot = Some(v);
            }
        }
        self.validate()
    }

    /// Overlays the social login providers named in `FAFNIR_OAUTH_<NAME>_<SETTING>` variables
    /// (`<NAME>` is lowercased: `FAFNIR_OAUTH_MY_IDP_CLIENT_ID` configures `my_idp`). Takes every
    /// variable, since the names are the operator's; others are ignored.
    pub fn apply_oauth_env<K: AsRef<str>, V: AsRef<str>>(
        &mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Result<(), CoreError> {
        for (k, v) in vars {
            let (k, v) = (k.as_ref(), v.as_ref());
            let Some(rest) = k.strip_prefix("FAFNIR_OAUTH_") else { continue };
            let Some(suffix) = OAUTH_ENV_SUFFIXES.iter().find(|s| rest.ends_with(*s) && rest.len() > s.len()) else {
                continue;
            };
            let name = rest[..rest.len() - suffix.len()].to_ascii_lowercase();
            let p = self.oauth.entry(name).or_default();
            let v = v.to_owned();
            match *suffix {
                "_CLIENT_ID" => p.client_id = v,
                "_CLIENT_SECRET" => p.client_secret = Some(v),
                "_ISSUER" => p.issuer = Some(v),
                "_AUTH_URL" => p.auth_url = Some(v),
                "_TOKEN_URL" => p.token_url = Some(v),
                "_USERINFO_URL" => p.userinfo_url = Some(v),
                "_SCOPES" => p.scopes = Some(v),
                _ => p.display_name = Some(v),
            }
        }
        self.validate()
    }

    /// Refuses combinations that would make Fafnir unsafe or unusable.
    pub fn validate(&self) -> Result<(), CoreError> {
        for (name, p) in &self.oauth {
            let ok_name = !name.is_empty()
                && name.len() <= 32
                && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
                && name != "password";
            if !ok_name {
                return Err(CoreError::Config(format!(
                    "oauth provider name {:?}: use 1-32 lowercase letters, digits, `_` or `-` (and not `password`)",
                    name.chars().take(40).collect::<String>()
                )));
            }
            if p.client_id.trim().is_empty() {
                return Err(CoreError::Config(format!(
                    "oauth provider `{name}` has no client id (FAFNIR_OAUTH_{}_CLIENT_ID)",
                    name.to_ascii_uppercase()
                )));
            }
        }
        if self.access_ttl < Duration::from_secs(10) || self.access_ttl > Duration::from_secs(24 * 3600) {
            return Err(CoreError::Config("access TTL must be between 10s and 24h".into()));
        }
        if self.refresh_ttl < self.access_ttl {
            return Err(CoreError::Config("refresh TTL must not be shorter than the access TTL".into()));
        }
        if self.max_connections == 0 {
            return Err(CoreError::Config("max_connections must be at least 1".into()));
        }
        if self.header_read_timeout < Duration::from_secs(1) {
            return Err(CoreError::Config("the header read timeout must be at least 1s".into()));
        }
        for (name, path) in [
            ("the verify-email path", &self.verify_email_path),
            ("the reset-password path", &self.reset_password_path),
            ("the confirm-email path", &self.confirm_email_path),
        ] {
            let ok = path.starts_with('/')
                && !path.starts_with("//")
                && !path.contains(['?', '#'])
                && !path.chars().any(|c| c.is_control() || c.is_whitespace());
            if !ok {
                return Err(CoreError::Config(format!(
                    "{name} must be a path starting with one `/`, without query, fragment or spaces (got {:?})",
                    path.chars().take(60).collect::<String>()
                )));
            }
        }
        if self.audit_retention < Duration::from_secs(86_400) {
            return Err(CoreError::Config("the audit retention must be at least 1d".into()));
        }
        if self.product_name.trim().is_empty() || self.product_name.chars().any(char::is_control) {
            return Err(CoreError::Config("the product name must be one line of text".into()));
        }
        Ok(())
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Parses `90s`, `15m`, `12h`, `30d` (or a bare number of seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{}` is not a duration such as 15m or 30d", s.chars().take(40).collect::<String>()))?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "unknown duration unit `{}`: use s, m, h or d",
                unit.chars().take(10).collect::<String>()
            ))
        }
    };
    n.checked_mul(mult).map(Duration::from_secs).ok_or_else(|| "duration is too large".into())
}

/// Formats a duration the way [`parse_duration`] reads it.
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => "0s".into(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

mod duration_str {
    use super::*;
    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(*d))
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(2_592_000)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        for bad in ["", "m", "15x", "-5m", "1.5h", "99999999999999999999d", "15 m"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        assert_eq!(format_duration(Duration::from_secs(900)), "15m");
    }

    #[test]
    fn env_overlays_defaults_and_rejects_nonsense() {
        let env: HashMap<&str, &str> = [
            ("FAFNIR_ACCESS_TTL", "5m"),
            ("FAFNIR_COOKIE_SECURE", "false"),
            ("FAFNIR_TRUST_FORWARDED_FOR", "yes"),
            ("FAFNIR_ALLOWED_ORIGINS", "https://a.example, https://b.example,"),
        ]
        .into();
        let mut c = Config::default();
        c.apply_env(|k| env.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!(c.access_ttl, Duration::from_secs(300));
        assert!(!c.cookie_secure);
        assert!(c.trust_forwarded_for);
        assert_eq!(c.allowed_origins, vec!["https://a.example", "https://b.example"]);

        let mut c = Config::default();
        let err = c.apply_env(|k| (k == "FAFNIR_HTTP_ADDR").then(|| "nope".into())).unwrap_err();
        assert!(err.to_string().contains("FAFNIR_HTTP_ADDR"));
        let mut c = Config::default();
        assert!(c.apply_env(|k| (k == "FAFNIR_ACCESS_TTL").then(|| "1s".into())).is_err());
    }

    #[test]
    fn oauth_providers_from_env() {
        let mut c = Config::default();
        c.apply_oauth_env([
            ("FAFNIR_OAUTH_GOOGLE_CLIENT_ID", "g-id"),
            ("FAFNIR_OAUTH_GOOGLE_CLIENT_SECRET", "g-secret"),
            ("FAFNIR_OAUTH_MY_IDP_CLIENT_ID", "m-id"),
            ("FAFNIR_OAUTH_MY_IDP_ISSUER", "https://idp.example"),
            ("FAFNIR_OAUTH_LINK_VERIFIED_EMAIL", "true"),
            ("FAFNIR_OAUTH__CLIENT_ID", "ignored: no name"),
            ("PATH", "/bin"),
        ])
        .unwrap();
        assert_eq!(c.oauth.keys().collect::<Vec<_>>(), ["google", "my_idp"]);
        assert_eq!(c.oauth["google"].client_secret.as_deref(), Some("g-secret"));
        assert_eq!(c.oauth["my_idp"].issuer.as_deref(), Some("https://idp.example"));
        assert!(!format!("{:?}", c.oauth["google"]).contains("g-secret"));
        // A setting without a client id is refused, naming the variable.
        let err = Config::default().apply_oauth_env([("FAFNIR_OAUTH_CORP_ISSUER", "https://x")]).unwrap_err();
        assert!(err.to_string().contains("FAFNIR_OAUTH_CORP_CLIENT_ID"), "{err}");
    }
}
