//! Verification against a remote issuer's JWKS (feature `jwks`): fetched on first use, cached,
//! and fetched again when a token names an unknown `kid` (at most every few seconds).

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use crate::clock::SharedClock;
use crate::error::CoreError;
use crate::token::{AccessClaims, Jwks, TokenAudience, TokenError, TokenVerifier, VerifyingKeys};

/// How often an unknown `kid` may trigger a fetch.
const REFETCH_INTERVAL: Duration = Duration::from_secs(5);

/// Verifies tokens with the keys published at a JWKS URL.
#[derive(Debug)]
pub struct JwksVerifier {
    url: String,
    http: reqwest::Client,
    keys: ArcSwap<VerifyingKeys>,
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
    clock: SharedClock,
}

impl JwksVerifier {
    /// `url` is the JWKS document, e.g. `http://127.0.0.1:8081/.well-known/jwks.json`.
    pub fn new(url: impl Into<String>, clock: SharedClock) -> Result<Self, CoreError> {
        let http = crate::remote::client().map_err(|e| CoreError::Config(e.to_string()))?;
        Ok(Self {
            url: url.into(),
            http,
            keys: ArcSwap::from_pointee(VerifyingKeys::default()),
            last_fetch: tokio::sync::Mutex::new(None),
            clock,
        })
    }

    /// Whether a key set has been fetched and holds at least one key.
    pub fn has_keys(&self) -> bool {
        !self.keys.load().is_empty()
    }

    /// Fetches the key set now.
    pub async fn refresh(&self) -> Result<(), CoreError> {
        let res =
            self.http.get(&self.url).send().await.map_err(|e| CoreError::Key(format!("fetching the JWKS: {e}")))?;
        if !res.status().is_success() {
            return Err(CoreError::Key(format!("fetching the JWKS: HTTP {}", res.status())));
        }
        let jwks: Jwks = res.json().await.map_err(|e| CoreError::Key(format!("reading the JWKS: {e}")))?;
        self.keys.store(Arc::new(VerifyingKeys::from_jwks(&jwks)));
        Ok(())
    }
}

#[async_trait::async_trait]
impl TokenVerifier for JwksVerifier {
    async fn verify(&self, token: &str, expect: &TokenAudience) -> Result<AccessClaims, TokenError> {
        let now = self.clock.now().timestamp();
        match self.keys.load().verify(token, expect, now) {
            Err(TokenError::UnknownKey) => {
                let mut last = self.last_fetch.lock().await;
                if last.is_none_or(|t| t.elapsed() >= REFETCH_INTERVAL) {
                    *last = Some(Instant::now());
                    if let Err(e) = self.refresh().await {
                        tracing::warn!(error = %e, url = %self.url, "JWKS fetch failed");
                    }
                }
                drop(last);
                self.keys.load().verify(token, expect, now)
            }
            other => other,
        }
    }
}
