//! Second factors: TOTP (RFC 6238: SHA-1, 6 digits, 30-second steps, one step of skew) with
//! recovery codes, and the step-up that a login must pass once a second factor is on.
//!
//! - The TOTP secret (160 bits from the OS generator) is stored encrypted with ChaCha20-Poly1305
//!   under the deployment's MFA key ([`MfaKey`]), the account id as associated data: a copied
//!   row does not decrypt for another account, and the table alone gives nothing away.
//! - A code is accepted once: the step it matched is stored, and only a later step is accepted
//!   next (one statement, so two concurrent uses of one code cannot both pass).
//! - Recovery codes: ten, about 49 bits each, shown once, stored as SHA-256, used once.
//! - Step-up: a right password (or a provider sign-in) of an account with a second factor
//!   yields no session but an MFA challenge: a random token (stored hashed), valid five
//!   minutes, single use, at most five wrong codes. [`crate::Auth::mfa_verify`] finishes the
//!   login exactly as a password login does. Wrong codes count against the login throttle of
//!   the account and the client's address, like wrong passwords.

mod flow;
mod store;

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use fafnir_core::UserId;
use rand::RngCore;
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};

pub(crate) use flow::new_recovery_set;
pub use flow::{Factor, Reauth};
pub(crate) use store::replace_codes;
pub use store::{ChallengeRecord, MfaStore, TotpRecord};

/// How long an MFA challenge stays valid.
pub const CHALLENGE_TTL: Duration = Duration::from_secs(300);
/// Wrong codes one challenge takes before it dies.
pub const CHALLENGE_ATTEMPTS: i64 = 5;
/// Recovery codes per set.
pub const RECOVERY_CODES: usize = 10;
/// The TOTP step, in seconds.
pub const STEP_SECS: u64 = 30;

/// What a finished step-up delivers: a browser session (cookies) or tokens for an API client
/// (the token endpoint's answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Session,
    Token,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Session => "session",
            Via::Token => "token",
        }
    }

    pub(crate) fn parse(s: &str) -> Via {
        if s == "token" {
            Via::Token
        } else {
            Via::Session
        }
    }
}

/// A TOTP secret waiting for its first code.
#[derive(Clone)]
pub struct TotpSetup {
    /// Base32 (RFC 4648, no padding), for typing into an authenticator app.
    pub secret: String,
    /// `otpauth://totp/…`, for a QR code.
    pub otpauth_url: String,
}

impl std::fmt::Debug for TotpSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSetup(***)")
    }
}

/// An account's second factors as its owner sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct MfaStatus {
    /// TOTP is on (confirmed).
    pub totp: bool,
    /// Passkeys registered.
    pub passkeys: u32,
    pub recovery_codes_left: u32,
}

/// The ways a challenge can be answered, for an account with these factors: `totp` and
/// `recovery_code` through [`crate::Auth::mfa_verify`]; `passkey` means signing in with the
/// passkey instead (a whole sign-in on its own).
pub fn methods(s: &MfaStatus) -> Vec<&'static str> {
    let mut m = Vec::with_capacity(3);
    if s.totp {
        m.push("totp");
    }
    if s.passkeys > 0 {
        m.push("passkey");
    }
    if s.recovery_codes_left > 0 || m.is_empty() {
        m.push("recovery_code");
    }
    m
}

/// The deployment's key for TOTP secrets at rest (32 bytes).
pub struct MfaKey(LessSafeKey);

impl std::fmt::Debug for MfaKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MfaKey(***)")
    }
}

impl MfaKey {
    /// A key from 32 bytes (from configuration, or the deployment's shared secret).
    pub fn new(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != 32 {
            return None;
        }
        let key = UnboundKey::new(&CHACHA20_POLY1305, bytes).ok()?;
        Some(MfaKey(LessSafeKey::new(key)))
    }

    /// `nonce ‖ ciphertext ‖ tag`, base64url; bound to `user`.
    pub(crate) fn seal(&self, user: UserId, plain: &[u8]) -> String {
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let mut buf = plain.to_vec();
        // Sealing only fails for inputs beyond ChaCha20's limits (256 GiB); a secret is 20 bytes.
        let ok = self.0.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(user.to_string().as_bytes()),
            &mut buf,
        );
        debug_assert!(ok.is_ok());
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// The plaintext of [`MfaKey::seal`], if `sealed` was sealed for `user` under this key.
    pub(crate) fn open(&self, user: UserId, sealed: &str) -> Option<Vec<u8>> {
        let raw = URL_SAFE_NO_PAD.decode(sealed).ok()?;
        if raw.len() < 12 + aead::CHACHA20_POLY1305.tag_len() {
            return None;
        }
        let (nonce, rest) = raw.split_at(12);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = rest.to_vec();
        let plain = self.0.open_in_place(nonce, Aad::from(user.to_string().as_bytes()), &mut buf).ok()?;
        Some(plain.to_vec())
    }
}

/// The 6-digit code of `secret` for TOTP step `step` (RFC 6238, SHA-1).
pub fn code_at(secret: &[u8], step: u64) -> String {
    totp_rs::TOTP::new_unchecked(totp_rs::Algorithm::SHA1, 6, 0, STEP_SECS, secret.to_vec(), None, String::new())
        .generate(step.saturating_mul(STEP_SECS))
}

/// The step of `code` among `now_step - 1 ..= now_step + 1` (one step of skew either way), newest
/// first, compared in constant time.
pub(crate) fn matching_step(secret: &[u8], code: &str, now_step: u64) -> Option<u64> {
    use subtle::ConstantTimeEq;
    let code = code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut found = None;
    for step in [now_step + 1, now_step, now_step.saturating_sub(1)] {
        if bool::from(code_at(secret, step).as_bytes().ct_eq(code.as_bytes())) && found.is_none() {
            found = Some(step);
        }
    }
    found
}

/// Letters and digits that cannot be mistaken for each other (no i, l, o, 0, 1).
const RECOVERY_ALPHABET: &[u8; 31] = b"abcdefghjkmnpqrstuvwxyz23456789";

/// A recovery code: ten characters in two groups (`k7m2q-xw9rt`), about 49 bits from the OS
/// generator.
pub(crate) fn new_recovery_code() -> String {
    let alphabet = RECOVERY_ALPHABET;
    let mut out = String::with_capacity(11);
    let mut bytes = [0u8; 10];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    for (i, b) in bytes.iter().enumerate() {
        if i == 5 {
            out.push('-');
        }
        // 31 symbols: the modulo bias of 256 % 31 is negligible at this length.
        out.push(char::from(alphabet[usize::from(*b) % alphabet.len()]));
    }
    out
}

/// A recovery code as typed, normalised: lower case, without spaces or dashes.
pub(crate) fn normalize_recovery_code(typed: &str) -> String {
    typed.chars().filter(|c| !c.is_whitespace() && *c != '-').flat_map(char::to_lowercase).collect()
}

/// Base32 (RFC 4648, upper case, no padding), as authenticator apps take secrets.
pub(crate) fn base32(bytes: &[u8]) -> String {
    const A: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut buf, mut bits) = (0u32, 0u32);
    for b in bytes {
        buf = (buf << 8) | u32::from(*b);
        bits += 8;
        while bits >= 5 {
            out.push(char::from(A[((buf >> (bits - 5)) & 31) as usize]));
            bits -= 5;
        }
    }
    if bits > 0 {
        out.push(char::from(A[((buf << (5 - bits)) & 31) as usize]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238, Appendix B (SHA-1): the 8-digit values' last six digits are the 6-digit codes.
    #[test]
    fn rfc_6238_test_vectors() {
        let secret = b"12345678901234567890";
        for (time, eight) in [
            (59u64, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(code_at(secret, time / STEP_SECS), eight[2..], "t={time}");
        }
    }

    #[test]
    fn codes_match_within_one_step_only() {
        let secret = b"12345678901234567890";
        let now = 1_000_000;
        for (step, expect) in [(now - 1, Some(now - 1)), (now, Some(now)), (now + 1, Some(now + 1))] {
            assert_eq!(matching_step(secret, &code_at(secret, step), now), expect);
        }
        for far in [now - 2, now + 2] {
            let c = code_at(secret, far);
            // (A far code may collide with a near one by chance: one in a million.)
            if ![now - 1, now, now + 1].iter().any(|s| code_at(secret, *s) == c) {
                assert_eq!(matching_step(secret, &c, now), None);
            }
        }
        for junk in ["", "12345", "1234567", "abcdef", "12 456"] {
            assert_eq!(matching_step(secret, junk, now), None);
        }
    }

    #[test]
    fn sealed_secrets_open_only_for_their_account() {
        let key = MfaKey::new(&[7u8; 32]).unwrap();
        let (a, b) = (UserId::new(), UserId::new());
        let sealed = key.seal(a, b"secret bytes");
        assert_eq!(key.open(a, &sealed).unwrap(), b"secret bytes");
        assert_eq!(key.open(b, &sealed), None, "bound to the account");
        assert_eq!(MfaKey::new(&[8u8; 32]).unwrap().open(a, &sealed), None, "bound to the key");
        assert_eq!(key.open(a, "garbage"), None);
        assert!(MfaKey::new(&[1u8; 16]).is_none());
        assert!(MfaKey::new(&[1u8; 33]).is_none(), "exactly 32 bytes");
    }

    #[test]
    fn recovery_codes_and_base32() {
        let c = new_recovery_code();
        assert_eq!(c.len(), 11);
        assert_eq!(normalize_recovery_code(&c.to_uppercase().replace('-', " - ")), c.replace('-', ""));
        assert_ne!(new_recovery_code(), new_recovery_code());
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32(b"12345678901234567890"), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    }
}
