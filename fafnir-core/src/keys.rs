//! Ed25519 signing keys: generated on first start, persisted in the store, published as a JWKS,
//! rotated on demand. A rotated-out key stays in the JWKS until every token it signed has expired.
//!
//! Several instances on one database agree: the active key is unique in the table (a unique
//! `active` column), each instance reloads periodically and at once when it meets an unknown `kid`.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};
use sqlx::Row;
use tokio::sync::Mutex;

use crate::clock::{dur_ms, SharedClock};
use crate::db::Db;
use crate::error::CoreError;
use crate::token::{AccessClaims, Jwk, Jwks, TokenAudience, TokenError, VerifyingKeys, ACCESS_TOKEN_TYP};

/// How often an unknown `kid` may trigger a reload from the store (bounds the work an attacker
/// can cause with made-up key ids).
const UNKNOWN_KID_RELOAD_INTERVAL: Duration = Duration::from_secs(5);

struct KeyRing {
    active_kid: String,
    /// When the active key was made (ms since the epoch).
    active_created_ms: i64,
    signing: EncodingKey,
    verifying: VerifyingKeys,
    jwks: Jwks,
}

/// Signs access tokens with the active key and verifies them with any published key.
pub struct KeyManager {
    db: Db,
    clock: SharedClock,
    retain_retired: Duration,
    ring: ArcSwap<KeyRing>,
    last_reload: Mutex<Instant>,
}

impl fmt::Debug for KeyManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyManager").field("active_kid", &self.ring.load().active_kid).finish_non_exhaustive()
    }
}

impl KeyManager {
    /// Loads the keys, generating and persisting the first one if the store has none.
    ///
    /// `retain_retired` is how long a rotated-out public key stays published: at least the
    /// access-token lifetime (plus clock skew).
    pub async fn load_or_create(db: Db, clock: SharedClock, retain_retired: Duration) -> Result<Self, CoreError> {
        let ring = load_ring(&db, &clock).await?;
        let ring = match ring {
            Some(r) => r,
            None => {
                // Two instances starting at once both get here; the unique `active` column lets
                // exactly one insert win, and both then load that one.
                insert_key(&db, &clock).await?;
                load_ring(&db, &clock)
                    .await?
                    .ok_or_else(|| CoreError::Key("no active signing key after creating one".into()))?
            }
        };
        Ok(Self {
            db,
            clock,
            retain_retired,
            ring: ArcSwap::from_pointee(ring),
            last_reload: Mutex::new(Instant::now()),
        })
    }

    pub fn active_kid(&self) -> String {
        self.ring.load().active_kid.clone()
    }

    /// How old the active signing key is (for the key-age alert: rotate with `fafnir keys rotate`).
    pub fn active_key_age(&self) -> std::time::Duration {
        let age = self.clock.now_ms().saturating_sub(self.ring.load().active_created_ms);
        std::time::Duration::from_millis(u64::try_from(age).unwrap_or(0))
    }

    /// The public keys, for `/.well-known/jwks.json`.
    pub fn jwks(&self) -> Jwks {
        self.ring.load().jwks.clone()
    }

    /// Signs access-token claims with the active key.
    pub fn sign(&self, claims: &AccessClaims) -> Result<String, CoreError> {
        let ring = self.ring.load();
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(ring.active_kid.clone());
        header.typ = Some(ACCESS_TOKEN_TYP.into());
        jsonwebtoken::encode(&header, claims, &ring.signing).map_err(|e| CoreError::Key(format!("signing failed: {e}")))
    }

    /// Verifies from memory; never touches the store.
    pub fn verify_cached(&self, token: &str, expect: &TokenAudience) -> Result<AccessClaims, TokenError> {
        let now_s = self.clock.now().timestamp();
        self.ring.load().verifying.verify(token, expect, now_s)
    }

    /// Verifies; on an unknown `kid` (another instance rotated) reloads the keys once, at most
    /// every few seconds, and tries again.
    pub async fn verify(&self, token: &str, expect: &TokenAudience) -> Result<AccessClaims, TokenError> {
        match self.verify_cached(token, expect) {
            Err(TokenError::UnknownKey) => {
                let mut last = self.last_reload.lock().await;
                if last.elapsed() >= UNKNOWN_KID_RELOAD_INTERVAL {
                    *last = Instant::now();
                    if let Err(e) = self.reload().await {
                        tracing::warn!(error = %e, "reloading signing keys failed");
                    }
                }
                drop(last);
                self.verify_cached(token, expect)
            }
            other => other,
        }
    }

    /// Re-reads the keys from the store (picks up rotations made by other instances).
    pub async fn reload(&self) -> Result<(), CoreError> {
        if let Some(ring) = load_ring(&self.db, &self.clock).await? {
            self.ring.store(Arc::new(ring));
        }
        Ok(())
    }

    /// Makes a new key active. The old one signs nothing more but stays published for
    /// `retain_retired`. Returns the new `kid`.
    pub async fn rotate(&self) -> Result<String, CoreError> {
        let kid = insert_key_retiring(&self.db, &self.clock, self.retain_retired).await?;
        self.reload().await?;
        Ok(kid)
    }

    /// Reloads every `every` in the background, so rotations by other instances are picked up
    /// for signing too. The task stops when the manager is dropped.
    pub fn spawn_refresh(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(km) = weak.upgrade() else { return };
                if let Err(e) = km.reload().await {
                    tracing::warn!(error = %e, "periodic signing key reload failed");
                }
            }
        })
    }
}

#[async_trait::async_trait]
impl crate::token::TokenVerifier for KeyManager {
    async fn verify(&self, token: &str, expect: &TokenAudience) -> Result<AccessClaims, TokenError> {
        KeyManager::verify(self, token, expect).await
    }
}

fn generate() -> Result<(Vec<u8>, Vec<u8>), CoreError> {
    let rng = SystemRandom::new();
    let pkcs8 =
        Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| CoreError::Key("could not generate an Ed25519 key".into()))?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
        .map_err(|_| CoreError::Key("generated key does not parse".into()))?;
    Ok((pkcs8.as_ref().to_vec(), pair.public_key().as_ref().to_vec()))
}

/// Inserts a new active key if there is none (losing a race is not an error).
async fn insert_key(db: &Db, clock: &SharedClock) -> Result<(), CoreError> {
    let (private, public) = generate()?;
    let kid = Jwk::thumbprint(&public);
    sqlx::query(
        "INSERT INTO signing_keys (kid, algorithm, private_key, public_key, created_at, active) \
         VALUES ($1, 'EdDSA', $2, $3, $4, 1) ON CONFLICT DO NOTHING",
    )
    .bind(&kid)
    .bind(private)
    .bind(public)
    .bind(clock.now_ms())
    .execute(db.pool())
    .await?;
    Ok(())
}

async fn insert_key_retiring(db: &Db, clock: &SharedClock, retain: Duration) -> Result<String, CoreError> {
    let (private, public) = generate()?;
    let kid = Jwk::thumbprint(&public);
    let now = clock.now_ms();
    let mut tx = db.pool().begin().await?;
    // The write comes first so SQLite takes its write lock at once (no lock upgrade later).
    sqlx::query("UPDATE signing_keys SET active = NULL, retired_at = $1, publish_until = $2 WHERE active = 1")
        .bind(now)
        .bind(now.saturating_add(dur_ms(retain)))
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO signing_keys (kid, algorithm, private_key, public_key, created_at, active) \
         VALUES ($1, 'EdDSA', $2, $3, $4, 1)",
    )
    .bind(&kid)
    .bind(private)
    .bind(public)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    // Keys whose tokens have all expired are no longer needed by anyone.
    sqlx::query("DELETE FROM signing_keys WHERE active IS NULL AND publish_until < $1")
        .bind(now)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    tracing::info!(kid = %kid, "signing key rotated");
    Ok(kid)
}

async fn load_ring(db: &Db, clock: &SharedClock) -> Result<Option<KeyRing>, CoreError> {
    let rows = sqlx::query(
        "SELECT kid, private_key, public_key, active, created_at FROM signing_keys \
         WHERE active = 1 OR publish_until > $1 ORDER BY created_at DESC",
    )
    .bind(clock.now_ms())
    .fetch_all(db.pool())
    .await?;
    let mut active = None;
    let mut jwks = Jwks::default();
    for row in rows {
        let kid: String = row.try_get("kid")?;
        let public: Vec<u8> = row.try_get("public_key")?;
        let is_active: Option<i64> = row.try_get("active")?;
        if is_active == Some(1) {
            let private: Vec<u8> = row.try_get("private_key")?;
            let created: i64 = row.try_get("created_at")?;
            active = Some((kid.clone(), EncodingKey::from_ed_der(&private), created));
        }
        jwks.keys.push(Jwk::ed25519(kid, &public));
    }
    Ok(active.map(|(active_kid, signing, active_created_ms)| KeyRing {
        active_kid,
        active_created_ms,
        signing,
        verifying: VerifyingKeys::from_jwks(&jwks),
        jwks,
    }))
}

/// A 32-byte random secret named `name`, shared by every instance on the database: created on
/// first use (concurrent first uses agree on one), read afterwards. Used for HMAC keys such as
/// the CSRF token key.
pub async fn server_secret(db: &Db, name: &str, now_ms: i64) -> Result<Vec<u8>, CoreError> {
    let mut fresh = [0u8; 32];
    ring::rand::SecureRandom::fill(&SystemRandom::new(), &mut fresh)
        .map_err(|_| CoreError::Key("no randomness for a server secret".into()))?;
    sqlx::query("INSERT INTO server_secrets (name, value, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
        .bind(name)
        .bind(fresh.to_vec())
        .bind(now_ms)
        .execute(db.pool())
        .await?;
    let value: Vec<u8> =
        sqlx::query_scalar("SELECT value FROM server_secrets WHERE name = $1").bind(name).fetch_one(db.pool()).await?;
    Ok(value)
}
