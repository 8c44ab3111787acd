//! Wiring: the database, keys, RBAC, profiles, the outbox and auth, for one process.

use std::sync::Arc;
use std::time::Duration;

use fafnir_auth::{Auth, AuthConfig, SqlAuthStore};
use fafnir_core::events::{AccountEventHandler, Outbox};
use fafnir_core::keys::KeyManager;
use fafnir_core::token::{Authenticator, CachingVerifier, Expected};
use fafnir_core::{Config, CoreError, Db, PermissionChecker, SharedClock, SystemClock};
use fafnir_proto::support::{channel, ClientOptions, EventSigner};
use fafnir_rbac::grpc::{RemoteSecurity, SecurityEventSink};
use fafnir_rbac::{Rbac, RbacEvents, SqlRbacStore};
use fafnir_users::grpc::UsersEventSink;
use fafnir_users::{ProfileEvents, Profiles, SqlProfileStore};

/// How often each instance re-reads the signing keys (to sign with a key rotated elsewhere).
pub const KEY_RELOAD: Duration = Duration::from_secs(60);

/// Everything one Fafnir process runs on.
#[derive(Debug, Clone)]
pub struct Stack {
    pub config: Config,
    pub db: Db,
    pub clock: SharedClock,
    pub keys: Arc<KeyManager>,
    pub rbac: Arc<Rbac>,
    pub profiles: Profiles,
    pub outbox: Arc<Outbox>,
    pub auth: Arc<Auth>,
    /// Who answers permission checks for the REST layer: the local `rbac`, or security-service.
    pub checker: Arc<dyn PermissionChecker>,
    /// Whether roles and profiles live in this process (false: in the remote services).
    pub local_policy: bool,
    /// How this process's gRPC and GraphQL surfaces authenticate callers: its own keys (one
    /// verified-token cache for all of them) and its own sessions.
    pub authn: Authenticator,
}

/// Where roles and profiles live.
#[derive(Debug, Clone, Default)]
pub enum Mode {
    /// In this process, on this database (`fafnir serve`, the admin CLI).
    #[default]
    AllInOne,
    /// In security-service and user-service (microservice mode): account events go to them
    /// through the outbox, and permission checks go to security-service.
    Remote { security_url: String, users_url: String },
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error(transparent)]
    Auth(#[from] fafnir_auth::AuthError),
    #[error(transparent)]
    Rbac(#[from] fafnir_rbac::RbacError),
    #[error("{0}")]
    Io(String),
}

impl Stack {
    /// Connects, migrates (creating the SQLite file if needed), loads or creates the signing
    /// key and the policy. Starts nothing in the background.
    pub async fn open(config: Config) -> Result<Self, StartError> {
        Self::open_with(config, AuthConfig::default).await
    }

    /// As [`Stack::open`], with the auth settings built from `base()` and the config's tokens.
    pub async fn open_with(config: Config, base: impl FnOnce() -> AuthConfig) -> Result<Self, StartError> {
        Self::open_mode(config, base, Mode::AllInOne).await
    }

    /// auth-service: remote mode when both `FAFNIR_SECURITY_URL` and `FAFNIR_USERS_URL` are set,
    /// else self-contained (all in one process, REST only).
    pub async fn open_auth_service(config: Config) -> Result<Self, StartError> {
        let mode = match (&config.security_url, &config.users_url) {
            (Some(s), Some(u)) => Mode::Remote { security_url: s.clone(), users_url: u.clone() },
            (None, None) => Mode::AllInOne,
            _ => {
                return Err(StartError::Core(CoreError::Config(
                    "set both FAFNIR_SECURITY_URL and FAFNIR_USERS_URL, or neither".into(),
                )))
            }
        };
        Self::open_mode(config, AuthConfig::default, mode).await
    }

    pub async fn open_mode(config: Config, base: impl FnOnce() -> AuthConfig, mode: Mode) -> Result<Self, StartError> {
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
            Mode::Remote { security_url, users_url } => {
                let signer =
                    EventSigner { keys: keys.clone(), clock: clock.clone(), audience: auth_cfg.token_audience() };
                let security = channel(security_url).map_err(|e| StartError::Io(e.to_string()))?;
                let users = channel(users_url).map_err(|e| StartError::Io(e.to_string()))?;
                (
                    vec![
                        Arc::new(SecurityEventSink::new(security.clone(), signer.clone())),
                        Arc::new(UsersEventSink::new(users, signer)),
                    ],
                    Arc::new(RemoteSecurity::new(security, ClientOptions::default())),
                    false,
                )
            }
        };
        let outbox = Arc::new(Outbox::new(db.clone(), clock.clone(), subscribers));
        let store = Arc::new(SqlAuthStore::new(db.clone(), outbox.clone()));
        let auth = Arc::new(Auth::new(auth_cfg, store, keys.clone(), clock.clone(), outbox.clone())?);
        let tokens = Arc::new(CachingVerifier::new(keys.clone(), clock.clone(), crate::VERIFIED_TOKENS));
        let authn = Authenticator::new(tokens, auth.clone(), Expected::fixed(auth.config().token_audience()));
        Ok(Self { config, db, clock, keys, rbac, profiles, outbox, auth, checker, local_policy, authn })
    }

    /// The background work of a serving process: event delivery, policy and key refresh,
    /// pruning of ended sessions. The tasks stop when the stack's parts are dropped.
    pub fn spawn_background(&self) -> Vec<tokio::task::JoinHandle<()>> {
        let auth = self.auth.clone();
        let prune = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(3600));
            loop {
                tick.tick().await;
                match auth.prune().await {
                    Ok(n) if n > 0 => tracing::info!(sessions = n, "pruned ended sessions"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "pruning sessions failed"),
                }
            }
        });
        let mut tasks =
            vec![self.outbox.spawn_dispatcher(Duration::from_secs(5)), self.keys.spawn_refresh(KEY_RELOAD), prune];
        if self.local_policy {
            tasks.push(self.rbac.spawn_watcher(fafnir_rbac::DEFAULT_WATCH_INTERVAL));
        }
        tasks
    }
}
