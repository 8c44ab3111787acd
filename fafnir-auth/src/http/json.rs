//! JSON written straight into a buffer, for the answers every client asks for most (`GET
//! /auth/me`). serde_json checks every byte of every string, keys included, against its escape
//! table one at a time: most of the cost of serialising `me`. Here the keys are constants
//! written as they are, and a string is copied in one piece when no byte of it needs escaping
//! (checked without a branch per byte, which the compiler can vectorise); only a string that
//! does goes through serde_json. The output is byte for byte serde_json's (tests compare the
//! two), and `me` names every field of `MeResponse`, so a new field does not compile until it
//! is written here; a changed serde attribute is caught by the tests.

use chrono::{DateTime, Utc};

use super::dto::MeResponse;

/// A JSON object being written.
struct Object {
    buf: Vec<u8>,
}

impl Object {
    fn with_capacity(n: usize) -> Self {
        let mut buf = Vec::with_capacity(n);
        buf.push(b'{');
        Self { buf }
    }

    /// A member's key: a constant that needs no escaping.
    fn key(&mut self, k: &'static str) {
        debug_assert!(!needs_escaping(k));
        // Only the opening brace so far: the first member.
        if self.buf.len() > 1 {
            self.buf.push(b',');
        }
        self.buf.push(b'"');
        self.buf.extend_from_slice(k.as_bytes());
        self.buf.extend_from_slice(b"\":");
    }

    fn string(&mut self, s: &str) {
        if needs_escaping(s) {
            // Writing a string into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut self.buf, s);
        } else {
            self.plain(s);
        }
    }

    /// A string known to need no escaping, in quotes.
    fn plain(&mut self, s: &str) {
        debug_assert!(!needs_escaping(s));
        self.buf.push(b'"');
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(b'"');
    }

    fn strings(&mut self, items: &[String]) {
        self.buf.push(b'[');
        for (i, s) in items.iter().enumerate() {
            if i > 0 {
                self.buf.push(b',');
            }
            self.string(s);
        }
        self.buf.push(b']');
    }

    fn bool(&mut self, v: bool) {
        self.buf.extend_from_slice(if v { b"true" } else { b"false" });
    }

    /// As `fafnir_core::clock::serialize_rfc3339` writes it.
    fn timestamp(&mut self, t: &DateTime<Utc>) {
        let mut text = [0u8; 30];
        match fafnir_core::clock::rfc3339_text(t, &mut text) {
            // Digits and separators only: nothing to check.
            Some(text) => self.plain(text),
            // Writing a timestamp into a Vec cannot fail.
            None => {
                let _ = serde_json::to_writer(&mut self.buf, t);
            }
        }
    }

    fn finish(mut self) -> Vec<u8> {
        self.buf.push(b'}');
        self.buf
    }
}

/// Whether serde_json would escape any byte of `s`: the control characters, `"` and `\`
/// (everything else, non-ASCII included, it writes as it is). No branch per byte: the
/// compiler can check many bytes at once.
fn needs_escaping(s: &str) -> bool {
    s.bytes().fold(false, |any, b| any | (b < 0x20) | (b == b'"') | (b == b'\\'))
}

/// `me` as `serde_json::to_vec` would write it, field for field in the struct's order.
pub(crate) fn me(m: &MeResponse) -> Vec<u8> {
    let MeResponse { id, email, email_verified, roles, permissions, created_at, sign_in_methods } = m;
    let mut o = Object::with_capacity(256);
    o.key("id");
    o.string(id);
    o.key("email");
    o.string(email);
    o.key("email_verified");
    o.bool(*email_verified);
    if let Some(roles) = roles {
        o.key("roles");
        o.strings(roles);
    }
    if let Some(permissions) = permissions {
        o.key("permissions");
        o.strings(permissions);
    }
    o.key("created_at");
    o.timestamp(created_at);
    o.key("sign_in_methods");
    o.strings(sign_in_methods);
    o.finish()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use chrono::TimeZone;

    use super::*;

    fn owned(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn me_is_written_byte_for_byte_as_serde_json_writes_it() {
        let at = Utc.with_ymd_and_hms(2026, 11, 29, 7, 32, 24).single().unwrap();
        let mut strings = vec![
            "ada@example.com".to_owned(),
            String::new(),
            "quote\"d@example.com".into(),
            "back\\slash".into(),
            "tab\there".into(),
            "del\u{7f} and nul\u{0}".into(),
            "ünïcödé@exämple.com ✓ 𝄞".into(),
            "\u{1f}\u{20}".into(),
        ];
        // Every byte below 0x80, alone and inside a longer string (word-at-a-time paths).
        for b in 0u8..0x80 {
            let c = char::from(b);
            strings.push(c.to_string());
            strings.push(format!("0123456789abcdef{c}0123456789abcdef0123456789"));
        }
        let leap = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
            .and_then(|d| d.and_hms_nano_opt(23, 59, 59, 1_500_000_000))
            .unwrap()
            .and_utc();
        let times = [
            at,
            at + chrono::Duration::milliseconds(817),
            at + chrono::Duration::nanoseconds(1),
            Utc.with_ymd_and_hms(10_000, 1, 1, 0, 0, 0).single().unwrap(),
            Utc.with_ymd_and_hms(-1, 6, 15, 12, 0, 0).single().unwrap(),
            leap,
        ];
        let mut checked = 0;
        for (i, s) in strings.iter().enumerate() {
            let lists = [None, Some(vec![]), Some(vec!["member"]), Some(vec![s.as_str(), "admin", ""])];
            for (j, roles) in lists.iter().enumerate() {
                for (k, t) in times.iter().enumerate() {
                    // Permissions and sign-in methods vary apart from the roles.
                    let permissions = lists[(j + k) % lists.len()].as_deref().map(owned);
                    let methods = [vec![], vec![s.as_str()], vec![s.as_str(), "github"]][(i + j + k) % 3].clone();
                    let m = MeResponse {
                        id: if i % 2 == 0 { "01a22638-2a71-71b4-b883-01d336e6cc2e".into() } else { s.clone() },
                        email: s.clone(),
                        email_verified: (i + k).is_multiple_of(2),
                        roles: roles.as_deref().map(owned),
                        permissions,
                        created_at: *t,
                        sign_in_methods: owned(&methods),
                    };
                    let expected = serde_json::to_vec(&m).unwrap();
                    assert_eq!(
                        String::from_utf8(me(&m)).unwrap(),
                        String::from_utf8(expected).unwrap(),
                        "{s:?} {roles:?} {t}"
                    );
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, strings.len() * 4 * times.len());
    }

    #[test]
    fn only_what_serde_json_escapes_is_escaped() {
        for b in 0u8..0x80 {
            let s = char::from(b).to_string();
            let plain = serde_json::to_string(&s).unwrap() == format!("\"{s}\"");
            assert_eq!(needs_escaping(&s), !plain, "byte {b:#04x}");
        }
    }
}
