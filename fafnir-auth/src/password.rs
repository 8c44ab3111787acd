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
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
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

/// Hashes and verifies on the blocking pool, at most `permits` at a time. Each hash holds
/// `memory_kib` of memory, so the semaphore bounds memory as well as CPU.
pub struct PasswordHasher {
    argon: Argon2<'static>,
    params: Params,
    permits: Arc<Semaphore>,
    queued: Arc<AtomicUsize>,
    dummy: OnceCell<String>,
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

impl PasswordHasher {
    /// `max_concurrent` hashes run at once (default: the number of cores).
    pub fn new(config: Argon2Config, max_concurrent: usize) -> Result<Self, AuthError> {
        let params = config.params()?;
        Ok(Self {
            argon: Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone()),
            params,
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
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
        f: impl FnOnce(&Argon2<'static>) -> T + Send + 'static,
    ) -> Result<T, AuthError> {
        self.queued.fetch_add(1, Ordering::Relaxed);
        let _dec = DecOnDrop(self.queued.clone());
        let permit =
            self.permits.clone().acquire_owned().await.map_err(|_| AuthError::Config("hasher closed".into()))?;
        let argon = self.argon.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            f(&argon)
        })
        .await
        .map_err(|e| AuthError::Config(format!("hash task failed: {e}")))
    }

    /// A PHC string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`).
    pub async fn hash(&self, password: &Password) -> Result<String, AuthError> {
        let pw = password.expose().to_owned();
        self.run(move |argon| {
            let salt = SaltString::generate(&mut OsRng);
            argon.hash_password(pw.as_bytes(), &salt).map(|h| h.to_string())
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
        self.run(move |argon| {
            let Ok(parsed) = PasswordHash::new(&stored) else {
                // A corrupt stored hash never matches (and is logged by the caller's outcome).
                return Verified { ok: false, needs_rehash: false };
            };
            let ok = argon.verify_password(pw.as_bytes(), &parsed).is_ok();
            let needs_rehash = parsed.algorithm.as_str() != "argon2id"
                || Params::try_from(&parsed)
                    .map(|p| p.m_cost() != want.m_cost() || p.t_cost() != want.t_cost() || p.p_cost() != want.p_cost())
                    .unwrap_or(true);
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
    }

    proptest! {
        #[test]
        fn policy_never_panics(s in "\\PC{0,300}") {
            let _ = policy().check(&Password::new(&s), &["x@example.com"]);
        }
    }
}
