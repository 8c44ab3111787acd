//! Passwords: the policy a new password must meet, and Argon2id hashing off the async executor.
//!
//! Policy (NIST SP 800-63B, OWASP ASVS 2.1): the password is NFKC-normalised (so that the same
//! characters typed on different keyboards hash alike), then must be 8 to 128 characters
//! (counted as Unicode scalar values, after normalisation), must not contain NUL, and must not be
//! easy to guess: zxcvbn, with the user's e-mail address as context, must estimate more than
//! 10^6 guesses, which refuses common passwords (`password1`, `qwertyuiop`), keyboard walks,
//! repeats and the address itself. Nothing is ever truncated: Argon2 hashes every byte.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq;
use tokio::sync::{OnceCell, Semaphore};
use unicode_normalization::UnicodeNormalization;

use crate::error::AuthError;

/// A password as typed. Its `Debug` never shows it.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// Wraps and NFKC-normalises, without applying the policy (login uses this: an old password
    /// that predates a stricter policy must still work).
    pub fn new(s: impl AsRef<str>) -> Self {
        Password(s.as_ref().nfkc().collect())
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// What a new password must satisfy.
#[derive(Debug, Clone)]
pub struct PasswordPolicy {
    pub min_chars: usize,
    pub max_chars: usize,
    /// Refuse passwords zxcvbn scores 0 or 1 (at most 10^6 guesses).
    pub reject_guessable: bool,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self { min_chars: 8, max_chars: 128, reject_guessable: true }
    }
}

impl PasswordPolicy {
    /// Checks a new password; `context` holds words the password must not be built on (the
    /// e-mail address). Returns a message fit for the user.
    pub fn check(&self, password: &Password, context: &[&str]) -> Result<(), String> {
        let p = password.expose();
        // Bound the work before counting: a megabyte of input is refused on its byte length.
        if p.len() > self.max_chars * 4 {
            return Err(format!("password must be at most {} characters", self.max_chars));
        }
        let n = p.chars().count();
        if n < self.min_chars {
            return Err(format!("password must be at least {} characters", self.min_chars));
        }
        if n > self.max_chars {
            return Err(format!("password must be at most {} characters", self.max_chars));
        }
        if p.contains('\0') {
            return Err("password must not contain NUL characters".into());
        }
        if self.reject_guessable {
            let entropy = zxcvbn::zxcvbn(p, context);
            if entropy.score() < zxcvbn::Score::Two {
                return Err("password is too common or too easy to guess; try a longer phrase".into());
            }
        }
        Ok(())
    }
}

/// Argon2id cost parameters. The default is OWASP's first recommendation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Config {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for Argon2Config {
    fn default() -> Self {
        Self { memory_kib: 19_456, iterations: 2, parallelism: 1 }
    }
}

impl Argon2Config {
    fn params(&self) -> Result<Params, AuthError> {
        Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|e| AuthError::Config(format!("invalid Argon2 parameters: {e}")))
    }
}

/// Hashes and verifies on the blocking pool, at most `permits` at a time.
///
/// Each hash needs `memory_kib` of working memory. Rather than allocating it per hash (which,
/// spread over the blocking pool's threads, makes the allocator keep hundreds of megabytes), the
/// hasher keeps one buffer per permit and reuses it: hashing memory is bounded by
/// `permits × memory_kib`, allocated on first use.
pub struct PasswordHasher {
    argon: Argon2<'static>,
    params: Params,
    permits: Arc<Semaphore>,
    queued: Arc<AtomicUsize>,
    memory: Arc<MemoryPool>,
    dummy: OnceCell<String>,
}

/// Reusable Argon2 working memory, one buffer per permit.
struct MemoryPool {
    blocks: usize,
    max_buffers: usize,
    free: std::sync::Mutex<Vec<Vec<Block>>>,
}

impl MemoryPool {
    fn take(&self, blocks: usize) -> Vec<Block> {
        if blocks == self.blocks {
            if let Some(buf) = self.free.lock().unwrap_or_else(|p| p.into_inner()).pop() {
                return buf;
            }
        }
        vec![Block::default(); blocks]
    }

    fn give(&self, buf: Vec<Block>) {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        if buf.len() == self.blocks && free.len() < self.max_buffers {
            free.push(buf);
        }
    }
}

impl fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", &self.params)
            .field("available_permits", &self.permits.available_permits())
            .finish()
    }
}

/// The outcome of a verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub ok: bool,
    /// The stored hash used other parameters (or algorithm) than the configured ones.
    pub needs_rehash: bool,
}

/// A stored hash demanding more than this many times the configured memory is refused rather
/// than computed (a corrupted or planted hash must not make the server allocate gigabytes).
const MAX_STORED_COST_FACTOR: usize = 8;

impl PasswordHasher {
    /// `max_concurrent` hashes run at once (default: the number of cores).
    pub fn new(config: Argon2Config, max_concurrent: usize) -> Result<Self, AuthError> {
        let params = config.params()?;
        let permits = max_concurrent.max(1);
        Ok(Self {
            argon: Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone()),
            memory: Arc::new(MemoryPool {
                blocks: params.block_count(),
                max_buffers: permits,
                free: std::sync::Mutex::new(Vec::new()),
            }),
            params,
            permits: Arc::new(Semaphore::new(permits)),
            queued: Arc::new(AtomicUsize::new(0)),
            dummy: OnceCell::new(),
        })
    }

    /// Hash operations waiting for or holding a permit (the "hash queue depth" metric).
    pub fn queue_depth(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Argon2<'static>, &MemoryPool) -> T + Send + 'static,
    ) -> Result<T, AuthError> {
        self.queued.fetch_add(1, Ordering::Relaxed);
        let _dec = DecOnDrop(self.queued.clone());
        let permit =
            self.permits.clone().acquire_owned().await.map_err(|_| AuthError::Config("hasher closed".into()))?;
        let argon = self.argon.clone();
        let memory = self.memory.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            f(&argon, &memory)
        })
        .await
        .map_err(|e| AuthError::Config(format!("hash task failed: {e}")))
    }

    /// A PHC string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`).
    pub async fn hash(&self, password: &Password) -> Result<String, AuthError> {
        let pw = password.expose().to_owned();
        let params = self.params.clone();
        self.run(move |argon, memory| {
            let salt = SaltString::generate(&mut OsRng);
            let mut salt_buf = [0u8; 64];
            let salt_bytes = salt.as_salt().decode_b64(&mut salt_buf)?;
            let mut mem = memory.take(params.block_count());
            let out = Output::init_with(Params::DEFAULT_OUTPUT_LEN, |out| {
                argon.hash_password_into_with_memory(pw.as_bytes(), salt_bytes, out, &mut mem).map_err(Into::into)
            });
            memory.give(mem);
            let phc = PasswordHash {
                algorithm: argon2::ARGON2ID_IDENT,
                version: Some(Version::V0x13.into()),
                params: ParamsString::try_from(&params)?,
                salt: Some(salt.as_salt()),
                hash: Some(out?),
            };
            Ok::<String, argon2::password_hash::Error>(phc.to_string())
        })
        .await?
        .map_err(|e| AuthError::Config(format!("hashing failed: {e}")))
    }

    /// Verifies against `stored`, or, when the account does not exist (`None`), against a
    /// dummy hash with the same cost, so that an unknown e-mail takes as long as a wrong password.
    pub async fn verify(&self, password: &Password, stored: Option<&str>) -> Result<Verified, AuthError> {
        let stored = match stored {
            Some(s) => s.to_owned(),
            None => {
                let dummy = self
                    .dummy
                    .get_or_try_init(|| async { self.hash(&Password::new("fafnir-dummy-password")).await })
                    .await?;
                let _ = self.verify_phc(password, dummy.clone()).await?;
                return Ok(Verified { ok: false, needs_rehash: false });
            }
        };
        self.verify_phc(password, stored).await
    }

    async fn verify_phc(&self, password: &Password, stored: String) -> Result<Verified, AuthError> {
        let pw = password.expose().to_owned();
        let want = self.params.clone();
        let max_blocks = self.params.block_count().saturating_mul(MAX_STORED_COST_FACTOR);
        self.run(move |_, memory| {
            // A corrupt stored hash never matches.
            let no = Verified { ok: false, needs_rehash: false };
            let Ok(parsed) = PasswordHash::new(&stored) else { return no };
            let (Ok(alg), Ok(params)) = (Algorithm::try_from(parsed.algorithm), Params::try_from(&parsed)) else {
                return no;
            };
            let version = parsed.version.map(Version::try_from).unwrap_or(Ok(Version::V0x13));
            let (Ok(version), Some(expected), Some(salt)) = (version, parsed.hash, parsed.salt) else { return no };
            if params.block_count() > max_blocks {
                tracing::warn!("stored password hash demands too much memory; refusing to verify it");
                return no;
            }
            let mut salt_buf = [0u8; 64];
            let Ok(salt_bytes) = salt.decode_b64(&mut salt_buf) else { return no };
            let argon = Argon2::new(alg, version, params.clone());
            let mut mem = memory.take(params.block_count());
            let mut out = vec![0u8; expected.len()];
            let computed = argon.hash_password_into_with_memory(pw.as_bytes(), salt_bytes, &mut out, &mut mem);
            memory.give(mem);
            let ok = computed.is_ok() && bool::from(out.as_slice().ct_eq(expected.as_bytes()));
            let needs_rehash = alg != Algorithm::Argon2id
                || version != Version::V0x13
                || params.m_cost() != want.m_cost()
                || params.t_cost() != want.t_cost()
                || params.p_cost() != want.p_cost();
            Verified { ok, needs_rehash }
        })
        .await
    }
}

struct DecOnDrop(Arc<AtomicUsize>);
impl Drop for DecOnDrop {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn policy() -> PasswordPolicy {
        PasswordPolicy::default()
    }

    #[test]
    fn table_of_passwords() {
        let ok = ["correct horse battery staple", "Tr0ub4dor&3-xylophone", "ünïcødé-pässwörd-λ", "zq8#Lm2!vR"];
        for p in ok {
            assert_eq!(policy().check(&Password::new(p), &["ada@example.com"]), Ok(()), "{p}");
        }
        let long = "x".repeat(129);
        let huge = "x".repeat(1 << 20);
        let bad = [
            ("", "at least 8"),
            ("short1!", "at least 8"),
            (long.as_str(), "at most 128"),
            (huge.as_str(), "at most 128"),
            ("abc\0defghij-klm", "NUL"),
            ("password1", "too common"),
            ("12345678", "too common"),
            ("qwertyuiop", "too common"),
            ("aaaaaaaaaaaa", "too common"),
            ("ada@example.com", "too common"),
        ];
        for (p, want) in bad {
            let err = policy().check(&Password::new(p), &["ada@example.com"]).unwrap_err();
            assert!(err.contains(want), "{p:?}: {err}");
        }
    }

    #[test]
    fn length_counts_characters_not_bytes_and_normalises() {
        // 8 four-byte characters: 32 bytes but 8 characters.
        let emoji = "🐉🔥🗝️🏰🛡️⚔️🐲💎";
        assert!(Password::new(emoji).expose().chars().count() >= 8);
        // NFKC: the "ﬁ" ligature and "fi" are the same password.
        assert_eq!(Password::new("ﬁre-dragon-hoard").expose(), Password::new("fire-dragon-hoard").expose());
        assert_eq!(format!("{:?}", Password::new("secret")), "Password(***)");
    }

    #[tokio::test]
    async fn hashes_verify_and_report_rehash() {
        let cheap = Argon2Config { memory_kib: 8, iterations: 1, parallelism: 1 };
        let h = PasswordHasher::new(cheap, 2).unwrap();
        let pw = Password::new("correct horse battery staple");
        let phc = h.hash(&pw).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=8,t=1,p=1$"), "{phc}");
        assert_eq!(h.verify(&pw, Some(&phc)).await.unwrap(), Verified { ok: true, needs_rehash: false });
        assert!(!h.verify(&Password::new("wrong"), Some(&phc)).await.unwrap().ok);
        assert!(!h.verify(&pw, None).await.unwrap().ok);
        assert!(!h.verify(&pw, Some("not a phc string")).await.unwrap().ok);
        let stronger = PasswordHasher::new(Argon2Config { memory_kib: 16, ..cheap }, 1).unwrap();
        assert_eq!(stronger.verify(&pw, Some(&phc)).await.unwrap(), Verified { ok: true, needs_rehash: true });
        assert_eq!(h.queue_depth(), 0);
        assert!(PasswordHasher::new(Argon2Config { memory_kib: 0, iterations: 0, parallelism: 0 }, 1).is_err());
        // Interoperable: the argon2 crate's own verifier accepts our PHC strings, and we accept its.
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let parsed = PasswordHash::new(&phc).unwrap();
        assert!(Argon2::default().verify_password(pw.expose().as_bytes(), &parsed).is_ok());
        let salt = SaltString::generate(&mut OsRng);
        // (theirs uses argon2i v0x10: verified, and flagged for rehash)
        let theirs = Argon2::new(Algorithm::Argon2i, Version::V0x10, Params::new(16, 1, 1, None).unwrap())
            .hash_password(pw.expose().as_bytes(), &salt)
            .unwrap()
            .to_string();
        assert_eq!(h.verify(&pw, Some(&theirs)).await.unwrap(), Verified { ok: true, needs_rehash: true });
        // A planted hash demanding 4 GiB is refused, not computed.
        let huge = phc.replace("m=8,", "m=4194304,");
        assert!(!h.verify(&pw, Some(&huge)).await.unwrap().ok);
    }

    proptest! {
        #[test]
        fn policy_never_panics(s in "\\PC{0,300}") {
            let _ = policy().check(&Password::new(&s), &["x@example.com"]);
        }
    }
}
