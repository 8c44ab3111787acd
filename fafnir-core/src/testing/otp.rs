//! RFC 6238 TOTP written for the tests, apart from Fafnir's own code (`fafnir-auth` uses
//! `totp-rs`): HMAC-SHA1 from `ring`, 6 digits, 30-second steps. A test that computes codes
//! here does not only agree with itself.

/// RFC 4648 base32 (upper case, no padding), as a secret is shown to a person.
///
/// # Panics
/// On a character outside the alphabet (test input is trusted).
pub fn unbase32(s: &str) -> Vec<u8> {
    const A: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut buf, mut bits, mut out) = (0u32, 0u32, Vec::new());
    for c in s.chars() {
        let v = A.find(c).unwrap_or_else(|| panic!("{c:?} is not base32"));
        buf = (buf << 5) | u32::try_from(v).unwrap_or(0);
        bits += 5;
        if bits >= 8 {
            out.push(((buf >> (bits - 8)) & 0xff) as u8);
            bits -= 8;
        }
    }
    out
}

/// The 6-digit code of `secret` for 30-second step `step`.
pub fn totp(secret: &[u8], step: u64) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let mac = ring::hmac::sign(&key, &step.to_be_bytes());
    let h = mac.as_ref();
    let o = usize::from(h[19] & 0x0f);
    let bin = u32::from_be_bytes([h[o] & 0x7f, h[o + 1], h[o + 2], h[o + 3]]);
    format!("{:06}", bin % 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B (SHA-1), the last six digits.
    #[test]
    fn rfc_6238_vectors() {
        assert_eq!(totp(b"12345678901234567890", 59 / 30), "287082");
        assert_eq!(totp(b"12345678901234567890", 1_111_111_109 / 30), "081804");
        assert_eq!(unbase32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"), b"12345678901234567890");
    }
}
