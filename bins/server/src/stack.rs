//! Wiring: the database, keys, RBAC, profiles, the outbox and auth, for one process.

use std::sync::Arc;
use std::time::Duration;

use fafnir_auth::{Auth, AuthConfig, SqlAuthStore};
use fafnir_core::events::{AccountEventHandler, Outbox};
use fafnir_core::keys::KeyManager;
use fafnir_core::{Config, CoreError, Db, SharedClock, SystemClock};
use fafnir_rbac::{Rbac, RbacEvents, SqlRbacStore};
use fafnir_users::{ProfileEvents, Profiles, SqlProfileStore};

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
        let clock: SharedClock = Arc::new(SystemClock);
        let db = Db::connect(&config.database_url).await?;
        db.migrate().await?;
        let rbac = Arc::new(Rbac::new(Arc::new(SqlRbacStore::new(db.clone(), clock.clone()))).await?);
        let profiles = Profiles::new(Arc::new(SqlProfileStore::new(db.clone(), clock.clone())));
        let subscribers: Vec<Arc<dyn AccountEventHandler>> =
            vec![Arc::new(RbacEvents(rbac.clone())), Arc::new(ProfileEvents(profiles.clone()))];
        let outbox = Arc::new(Outbox::new(db.clone(), clock.clone(), subscribers));
        let auth_cfg = AuthConfig {
            issuer: config.issuer(),
            audience: config.audience.clone(),
            access_ttl: config.access_ttl,
            refresh_ttl: config.refresh_ttl,
            ..base()
        };
        // Retired keys stay published for one access-token lifetime plus a minute of skew.
        let retain = auth_cfg.access_ttl + Duration::from_secs(60);
        let keys = Arc::new(KeyManager::load_or_create(db.clone(), clock.clone(), retain).await?);
        let store = Arc::new(SqlAuthStore::new(db.clone(), outbox.clone()));
        let auth = Arc::new(Auth::new(auth_cfg, store, keys.clone(), clock.clone(), outbox.clone())?);
        Ok(Self { config, db, clock, keys, rbac, profiles, outbox, auth })
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
        vec![
            self.outbox.spawn_dispatcher(Duration::from_secs(5)),
            self.rbac.spawn_watcher(fafnir_rbac::DEFAULT_WATCH_INTERVAL),
            self.keys.spawn_refresh(Duration::from_secs(60)),
            prune,
        ]
    }
}
