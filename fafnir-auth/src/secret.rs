//! Opaque secrets: refresh tokens. Generated with 256 random bits, stored only as SHA-256.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;

/// A secret string whose `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(s: String) -> Self {
        SecretString(s)
    }

    /// The secret itself, to put in a cookie or a response body.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A new refresh token: 32 random bytes from the OS generator, base64url (43 characters).
pub(crate) fn new_refresh_token() -> SecretString {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    SecretString(URL_SAFE_NO_PAD.encode(bytes))
}

/// What the store keeps of a refresh token: the hex SHA-256. The token has 256 bits of entropy,
/// so a fast hash is enough (no salt or stretching needed, unlike passwords), and lookups by
/// hash stay indexable.
pub(crate) fn token_hash(token: &str) -> String {
    sha256_hex(token)
}

/// SHA-256 of `s`, as lower-case hex (64 characters).
pub fn sha256_hex(s: &str) -> String {
    use std::fmt::Write;
    let d = ring::digest::digest(&ring::digest::SHA256, s.as_bytes());
    d.as_ref().iter().fold(String::with_capacity(64), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// Whether a presented token could be one of ours (cheap, before touching the store).
pub(crate) fn plausible_refresh_token(token: &str) -> bool {
    token.len() == 43 && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hashed() {
        let a = new_refresh_token();
        let b = new_refresh_token();
        assert_ne!(a, b);
        assert!(plausible_refresh_token(a.expose()));
        assert_eq!(token_hash(a.expose()).len(), 64);
        assert_ne!(token_hash(a.expose()), token_hash(b.expose()));
        assert_eq!(format!("{a:?}"), "***");
        assert!(!plausible_refresh_token("short") && !plausible_refresh_token(&"a".repeat(42).replace('a', "é")));
    }
}
