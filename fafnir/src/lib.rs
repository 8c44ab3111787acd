//! # fafnir
//!
//! Authentication and identity for a Rust service, in one dependency and one call:
//!
//! ```no_run
//! # async fn run() -> Result<(), fafnir::Error> {
//! let fafnir = fafnir::Fafnir::open(fafnir::Config::default()).await?;   // sqlite://fafnir.db
//! let _background = fafnir.spawn_background();                          // event delivery, key refresh
//! fafnir.auth.register("ada@example.com", "correct horse battery staple", Some("Ada")).await?;
//! let login = fafnir.auth.login("ada@example.com", "correct horse battery staple", &Default::default()).await?;
//! let who = fafnir.auth.authenticate(login.access_token.expose()).await?;
//! assert!(fafnir.rbac.check_str(&who.user_id, "profile:read").allowed);
//! # Ok(()) }
//! ```
//!
//! [`Fafnir::open`] connects to the database (`sqlite://…` or `postgres://…`), applies the
//! migrations, loads or creates the signing key, loads the RBAC policy, and wires accounts, roles
//! and profiles together through a durable outbox. What it hands out:
//!
//! | field | what |
//! |---|---|
//! | [`Fafnir::auth`] | registration, login, tokens, refresh rotation, sessions, passwords ([`Auth`]) |
//! | [`Fafnir::rbac`] | roles, permissions, grants, checks from memory ([`Rbac`]) |
//! | [`Fafnir::profiles`] | user profiles ([`Profiles`]) |
//! | [`Fafnir::authn`] | who is calling, for any transport: token + live session ([`Authenticator`]) |
//! | [`Fafnir::mail`] | mail waiting to be sent, sent by the background dispatcher ([`MailOutbox`]) |
//!
//! Features: `sqlite` (default), `postgres`, `smtp` (mail through `FAFNIR_SMTP_URL`; without it
//! mail goes to the log and a set SMTP URL is refused at open), `axum` (the REST router and the `CurrentUser` /
//! `Authorized<P>` extractors: [`Fafnir::router`]), `grpc` (SecurityService and UserService:
//! [`Fafnir::grpc_services`], and microservice wiring with [`Mode::Remote`]). The GraphQL
//! gateway and the servers are in the `fafnir-server` crate and the binaries.

use std::sync::Arc;
use std::time::Duration;

use fafnir_auth::SqlAuthStore;
pub use fafnir_auth::{
    Account, AccountMail, ActionTokens, AuditLog, Auth, AuthConfig, AuthError, ClientInfo, EmailSettings, Login, Mail,
    MailOutbox, Mailer, Principal, Templates,
};
pub use fafnir_core::events::{AccountEventHandler, Outbox};
pub use fafnir_core::keys::KeyManager;
pub use fafnir_core::token::Authenticator;
use fafnir_core::token::Expected;
pub use fafnir_core::{Config, CoreError, Db, Email, Permission, PermissionChecker, SharedClock, SystemClock, UserId};
pub use fafnir_rbac::{Rbac, RbacError, RoleName};
use fafnir_rbac::{RbacEvents, SqlRbacStore};
pub use fafnir_users::Profiles;
use fafnir_users::{ProfileEvents, SqlProfileStore};

/// The crates underneath, for what the facade does not re-export.
pub use {fafnir_auth as auth_crate, fafnir_core as core, fafnir_rbac as rbac_crate, fafnir_users as users_crate};

/// The REST layer (feature `axum`): the router's state, the extractors, errors, settings.
#[cfg(feature = "axum")]
pub use fafnir_auth::http;
/// Declares a permission type for [`http::Authorized`]: `fafnir::permission!(pub ReportsRead = "reports:read");`
#[cfg(feature = "axum")]
pub use fafnir_auth::permission;

/// How often each instance re-reads the signing keys (to sign with a key rotated elsewhere).
pub const KEY_RELOAD: Duration = Duration::from_secs(60);

/// How long sent and dead mail is kept (recipient, times and last error only) before pruning.
pub const MAIL_KEPT: Duration = Duration::from_secs(7 * 24 * 3600);

/// What can stop Fafnir from opening.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Rbac(#[from] RbacError),
    #[error("{0}")]
    Other(String),
}

/// Where roles and profiles live.
#[derive(Debug, Clone, Default)]
pub enum Mode {
    /// In this process, on this database (`fafnir serve`, an embedding app, the admin CLI).
    #[default]
    AllInOne,
    /// In security-service and user-service (microservice mode, feature `grpc`): account events
    /// go to them through the outbox, and permission checks go to security-service.
    #[cfg(feature = "grpc")]
    Remote { security_url: String, users_url: String },
}

/// Everything one Fafnir process runs on. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Fafnir {
    pub config: Config,
    pub db: Db,
    pub clock: SharedClock,
    pub keys: Arc<KeyManager>,
    pub rbac: Arc<Rbac>,
    pub profiles: Profiles,
    pub outbox: Arc<Outbox>,
    /// Mail waiting to be sent, and its dispatcher: through `FAFNIR_SMTP_URL` (feature `smtp`),
    /// or to the log when it is not set.
    pub mail: Arc<MailOutbox>,
    /// Security events (also written as `fafnir::audit` log lines); pruned after
    /// `config.audit_retention` by the background tasks.
    pub audit: AuditLog,
    pub auth: Arc<Auth>,
    /// Who answers permission checks for the REST layer: the local `rbac`, or security-service.
    pub checker: Arc<dyn PermissionChecker>,
    /// Whether roles and profiles live in this process (false: in the remote services).
    pub local_policy: bool,
    /// How this process's transports authenticate callers: its own keys (one verified-token
    /// cache for all of them) and its own sessions.
    pub authn: Authenticator,
}

/// Options for [`Fafnir::open`]: `Fafnir::builder().config(c).auth(a).open().await`.
#[derive(Debug, Default)]
#[must_use]
pub struct Builder {
    config: Config,
    auth: Option<AuthConfig>,
    mode: Mode,
    mailer: Option<Arc<dyn Mailer>>,
}

impl Builder {
    /// The configuration (database URL, issuer, token lifetimes…); default [`Config::default`].
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Auth settings beyond the configuration (Argon2 cost, throttling, password policy). The
    /// issuer, audience and token lifetimes always come from the configuration.
    pub fn auth(mut self, auth: AuthConfig) -> Self {
        self.auth = Some(auth);
        self
    }

    /// Where roles and profiles live; default [`Mode::AllInOne`].
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Where mail leaves; default from the configuration ([`fafnir_auth::mailer_from_config`]:
    /// SMTP when `FAFNIR_SMTP_URL` is set, else the log).
    pub fn mailer(mut self, mailer: Arc<dyn Mailer>) -> Self {
        self.mailer = Some(mailer);
        self
    }

    pub async fn open(self) -> Result<Fafnir, Error> {
        let auth = self.auth;
        Fafnir::open_inner(self.config, move || auth.unwrap_or_default(), self.mode, self.mailer).await
    }
}

impl Fafnir {
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// Connects, migrates (creating the SQLite file if needed), loads or creates the signing
    /// key and the policy. Starts nothing in the background: see [`Fafnir::spawn_background`].
    pub async fn open(config: Config) -> Result<Self, Error> {
        Self::open_with(config, AuthConfig::default).await
    }

    /// As [`Fafnir::open`], with the auth settings built from `base()` and the config's tokens.
    pub async fn open_with(config: Config, base: impl FnOnce() -> AuthConfig) -> Result<Self, Error> {
        Self::open_mode(config, base, Mode::AllInOne).await
    }

    pub async fn open_mode(config: Config, base: impl FnOnce() -> AuthConfig, mode: Mode) -> Result<Self, Error> {
        Self::open_inner(config, base, mode, None).await
    }

    async fn open_inner(
        config: Config,
        base: impl FnOnce() -> AuthConfig,
        mode: Mode,
        mailer: Option<Arc<dyn Mailer>>,
    ) -> Result<Self, Error> {
        // Mail settings first: a wrong SMTP URL or template stops the start, not the first message.
        let mailer = match mailer {
            Some(m) => m,
            None => fafnir_auth::mailer_from_config(&config).map_err(|e| Error::Other(e.to_string()))?,
        };
        let templates = Arc::new(
            Templates::load(&config.product_name, config.mail_templates.as_deref().map(std::path::Path::new))
                .map_err(|e| Error::Other(e.to_string()))?,
        );
        let clock: SharedClock = Arc::new(SystemClock);
        let db = Db::connect(&config.database_url).await?;
        db.migrate().await?;
        let rbac = Arc::new(Rbac::new(Arc::new(SqlRbacStore::new(db.clone(), clock.clone()))).await?);
        let profiles = Profiles::new(Arc::new(SqlProfileStore::new(db.clone(), clock.clone())));
        let auth_cfg = AuthConfig {
            issuer: config.issuer(),
            audience: config.audience.clone(),
            access_ttl: config.access_ttl,
            refresh_ttl: config.refresh_ttl,
            allow_signup: config.allow_signup,
            oauth_link_verified_email: config.oauth_link_verified_email,
            ..base()
        };
        // Retired keys stay published for one access-token lifetime, plus two key-reload
        // intervals (another instance may sign with the old key until its next reload), plus skew.
        let retain = auth_cfg.access_ttl + 2 * KEY_RELOAD + Duration::from_secs(30);
        let keys = Arc::new(KeyManager::load_or_create(db.clone(), clock.clone(), retain).await?);
        let (subscribers, checker, local_policy): (
            Vec<Arc<dyn AccountEventHandler>>,
            Arc<dyn PermissionChecker>,
            bool,
        ) = match &mode {
            Mode::AllInOne => (
                vec![Arc::new(RbacEvents(rbac.clone())), Arc::new(ProfileEvents(profiles.clone()))],
                rbac.clone(),
                true,
            ),
            #[cfg(feature = "grpc")]
            Mode::Remote { security_url, users_url } => {
                use fafnir_proto::client::{channel, ClientOptions};
                use fafnir_proto::events::EventSigner;
                let signer =
                    EventSigner { keys: keys.clone(), clock: clock.clone(), audience: auth_cfg.token_audience() };
                let security = channel(security_url).map_err(|e| Error::Other(e.to_string()))?;
                let users = channel(users_url).map_err(|e| Error::Other(e.to_string()))?;
                (
                    vec![
                        Arc::new(fafnir_rbac::grpc::security_event_sink(security.clone(), signer.clone())),
                        Arc::new(fafnir_users::grpc::users_event_sink(users, signer)),
                    ],
                    Arc::new(fafnir_rbac::grpc::RemoteSecurity::new(security, ClientOptions::default())),
                    false,
                )
            }
        };
        let outbox = Arc::new(Outbox::new(db.clone(), clock.clone(), subscribers));
        let mail = Arc::new(MailOutbox::new(db.clone(), clock.clone(), mailer));
        let store = Arc::new(SqlAuthStore::new(db.clone(), outbox.clone()));
        let account_mail = AccountMail::new(
            db.clone(),
            ActionTokens::new(db.clone(), clock.clone()),
            mail.clone(),
            templates,
            EmailSettings::from_config(&config),
        );
        let audit = AuditLog::new(db.clone(), clock.clone());
        // TOTP secrets at rest: FAFNIR_MFA_KEY when set (kept apart from the database), else a
        // key the deployment's instances share through the database.
        let mfa_key = match &config.mfa_key {
            Some(k) => {
                use base64::Engine;
                let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(k.trim().trim_end_matches('='))
                    .or_else(|_| {
                        base64::engine::general_purpose::STANDARD_NO_PAD.decode(k.trim().trim_end_matches('='))
                    })
                    .map_err(|_| Error::Other("FAFNIR_MFA_KEY must be 32 bytes in base64".into()))?;
                fafnir_auth::mfa::MfaKey::new(&raw)
                    .filter(|_| raw.len() == 32)
                    .ok_or_else(|| Error::Other("FAFNIR_MFA_KEY must be 32 bytes in base64".into()))?
            }
            None => {
                let now = clock.now_ms();
                let secret = fafnir_core::keys::server_secret(&db, "mfa", now).await?;
                fafnir_auth::mfa::MfaKey::new(&secret)
                    .ok_or_else(|| Error::Other("the shared MFA secret is shorter than 32 bytes".into()))?
            }
        };
        rbac.record_to(audit.clone());
        let mut auth = Auth::new(auth_cfg, store, keys.clone(), clock.clone(), outbox.clone())?
            .with_mail(account_mail)
            .with_audit(audit.clone())
            .with_oauth(Arc::new(fafnir_auth::oauth::Providers::from_config(&config)?))
            .with_mfa_key(mfa_key);
        // Passkeys need a relying party: a host name people reach this deployment at. Without
        // one (a public URL that is an IP address) the rest works and passkeys answer
        // PASSKEYS_UNAVAILABLE.
        match fafnir_auth::passkey::Passkeys::from_config(&config) {
            Ok(rp) => auth = auth.with_passkeys(Arc::new(rp)),
            Err(e) => tracing::warn!(error = %e, "passkeys are off"),
        }
        let auth = Arc::new(auth);
        // One verified-token cache per process: auth's own, shared by every transport.
        let authn =
            Authenticator::new(auth.token_verifier(), auth.clone(), Expected::fixed(auth.config().token_audience()));
        Ok(Self { config, db, clock, keys, rbac, profiles, outbox, mail, audit, auth, checker, local_policy, authn })
    }

    /// The background work of a serving process: event and mail delivery, policy and key
    /// refresh, pruning of ended sessions, spent link tokens and old mail. Keep the returned
    /// handle: dropping it stops the tasks.
    pub fn spawn_background(&self) -> Background {
        let (auth, mail, audit, retention) =
            (self.auth.clone(), self.mail.clone(), self.audit.clone(), self.config.audit_retention);
        let tokens = ActionTokens::new(self.db.clone(), self.clock.clone());
        let prune = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(3600));
            loop {
                tick.tick().await;
                match auth.prune().await {
                    Ok(n) if n > 0 => tracing::info!(sessions = n, "pruned ended sessions"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "pruning sessions failed"),
                }
                if let Err(e) = tokens.prune().await {
                    tracing::warn!(error = %e, "pruning link tokens failed");
                }
                if let Err(e) = mail.prune(MAIL_KEPT).await {
                    tracing::warn!(error = %e, "pruning sent mail failed");
                }
                if let Err(e) = audit.prune(retention).await {
                    tracing::warn!(error = %e, "pruning the audit log failed");
                }
            }
        });
        let mut tasks = vec![
            self.outbox.spawn_dispatcher(Duration::from_secs(5)),
            self.mail.spawn_dispatcher(Duration::from_secs(5)),
            self.keys.spawn_refresh(KEY_RELOAD),
            prune,
        ];
        if self.local_policy {
            tasks.push(self.rbac.spawn_watcher(fafnir_rbac::DEFAULT_WATCH_INTERVAL));
        }
        Background(tasks)
    }

    /// The REST layer's state (feature `axum`): what the router and the extractors need. Make
    /// it reachable from your state with `impl FromRef<YourState> for fafnir::http::AuthHttp`.
    #[cfg(feature = "axum")]
    pub async fn http(&self) -> Result<fafnir_auth::http::AuthHttp, Error> {
        let settings = fafnir_auth::http::HttpSettings::from_config(&self.config);
        Ok(fafnir_auth::http::AuthHttp::new(self.auth.clone(), self.checker.clone(), settings, &self.db).await?)
    }

    /// The `/auth/*` routes, the JWKS and the metadata document (feature `axum`), to merge into
    /// your router, with the state the extractors need.
    #[cfg(feature = "axum")]
    pub async fn router<S: Clone + Send + Sync + 'static>(
        &self,
    ) -> Result<(axum::Router<S>, fafnir_auth::http::AuthHttp), Error> {
        let http = self.http().await?;
        Ok((fafnir_auth::http::router(http.clone()), http))
    }

    /// SecurityService and UserService answered in this process (feature `grpc`), ready for
    /// `tonic::transport::Server::add_service(x.into_server())`.
    #[cfg(feature = "grpc")]
    pub fn grpc_services(&self) -> (fafnir_rbac::grpc::SecurityGrpc, fafnir_users::grpc::UsersGrpc) {
        (
            fafnir_rbac::grpc::SecurityGrpc::new(self.rbac.clone(), self.authn.clone()),
            fafnir_users::grpc::UsersGrpc::new(self.profiles.clone(), self.rbac.clone(), self.authn.clone()),
        )
    }
}

/// The background tasks of a [`Fafnir`]; they stop when this is dropped.
#[derive(Debug)]
#[must_use = "dropping it stops event delivery, key refresh and policy reloads"]
pub struct Background(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Background {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}
