//! E-mail addresses, parsed and normalised once at the edge.
//!
//! Policy (documented in `docs/security.md`):
//! - surrounding white space is trimmed, then the whole address is lower-cased, so addresses compare
//!   case-insensitively by construction (as Keycloak and most identity providers do);
//! - ASCII only: internationalised addresses (SMTPUTF8) are refused, and IDN domains must be given
//!   in their punycode (`xn--`) form. This rules out Unicode confusables (`pаypal.com` with a
//!   Cyrillic `а`) by construction;
//! - at most 254 characters in all and 64 in the local part (RFC 5321); the local part is an
//!   unquoted dot-atom; the domain has at least two labels of letters, digits and inner hyphens.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why an address was refused. Messages are safe to show to the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("email is required")]
    Empty,
    #[error("email must be at most 254 characters")]
    TooLong,
    #[error("email must contain exactly one @ between a local part and a domain")]
    MissingAt,
    #[error("email may only contain ASCII characters; give an internationalised domain in its xn-- form")]
    NonAscii,
    #[error("the part before @ must be 1 to 64 characters of letters, digits, dots and !#$%&'*+/=?^_`{{|}}~-, without leading, trailing or double dots")]
    InvalidLocalPart,
    #[error("the domain must be a name such as example.com")]
    InvalidDomain,
}

/// A syntactically valid, normalised (lower-case) e-mail address.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub fn parse(input: &str) -> Result<Self, EmailError> {
        // Cheap bound first: never scan megabytes of attacker input.
        if input.len() > 1024 {
            return Err(EmailError::TooLong);
        }
        let s = input.trim();
        if s.is_empty() {
            return Err(EmailError::Empty);
        }
        if !s.is_ascii() {
            return Err(EmailError::NonAscii);
        }
        if s.len() > 254 {
            return Err(EmailError::TooLong);
        }
        let s = s.to_ascii_lowercase();
        let (local, domain) = s.rsplit_once('@').ok_or(EmailError::MissingAt)?;
        if local.is_empty() || domain.is_empty() || local.contains('@') {
            return Err(EmailError::MissingAt);
        }
        if !valid_local(local) {
            return Err(EmailError::InvalidLocalPart);
        }
        if !valid_domain(domain) {
            return Err(EmailError::InvalidDomain);
        }
        Ok(Email(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn domain(&self) -> &str {
        // Parsing guarantees exactly one '@'.
        self.0.rsplit_once('@').map(|(_, d)| d).unwrap_or_default()
    }
}

fn valid_local(local: &str) -> bool {
    const SPECIALS: &[u8] = b"!#$%&'*+/=?^_`{|}~-";
    local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || SPECIALS.contains(&b))
}

fn valid_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && domain.len() <= 253
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        // The top-level domain is never all digits (that would be an IP address).
        && labels.last().is_some_and(|tld| !tld.bytes().all(|b| b.is_ascii_digit()))
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({})", self.0)
    }
}

impl std::str::FromStr for Email {
    type Err = EmailError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl<'de> Deserialize<'de> for Email {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Email::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn normalises_case_and_space() {
        let a = Email::parse("  Alice.Smith+tag@Example.COM \n").unwrap();
        assert_eq!(a.as_str(), "alice.smith+tag@example.com");
        assert_eq!(a, Email::parse("ALICE.SMITH+TAG@example.com").unwrap());
        assert_eq!(a.domain(), "example.com");
    }

    #[test]
    fn table_of_hostile_inputs() {
        let long_local = format!("{}@example.com", "a".repeat(65));
        let long_total = format!("a@{}.com", "b".repeat(250));
        let huge = "a".repeat(1 << 20);
        let cases: &[(&str, EmailError)] = &[
            ("", EmailError::Empty),
            ("   ", EmailError::Empty),
            ("plainaddress", EmailError::MissingAt),
            ("@example.com", EmailError::MissingAt),
            ("a@", EmailError::MissingAt),
            ("a@b@example.com", EmailError::MissingAt),
            ("a\0b@example.com", EmailError::InvalidLocalPart),
            ("a b@example.com", EmailError::InvalidLocalPart),
            (".a@example.com", EmailError::InvalidLocalPart),
            ("a..b@example.com", EmailError::InvalidLocalPart),
            ("\"quoted\"@example.com", EmailError::InvalidLocalPart),
            (&long_local, EmailError::InvalidLocalPart),
            (&long_total, EmailError::TooLong),
            (&huge, EmailError::TooLong),
            ("a@localhost", EmailError::InvalidDomain),
            ("a@-example.com", EmailError::InvalidDomain),
            ("a@example..com", EmailError::InvalidDomain),
            ("a@127.0.0.1", EmailError::InvalidDomain),
            ("a@exa_mple.com", EmailError::InvalidDomain),
            ("a@example.com\0", EmailError::InvalidDomain),
            // Cyrillic 'а' in the domain: a confusable of paypal.com.
            ("a@p\u{0430}ypal.com", EmailError::NonAscii),
            ("\u{0430}@example.com", EmailError::NonAscii),
            ("a@example.com\u{200b}", EmailError::NonAscii),
        ];
        for (input, want) in cases {
            assert_eq!(Email::parse(input).as_ref(), Err(want), "{input:?}");
        }
        assert!(Email::parse("a@xn--pypal-4ve.com").is_ok());
    }

    proptest! {
        #[test]
        fn never_panics_and_is_idempotent(s in "\\PC{0,300}") {
            if let Ok(e) = Email::parse(&s) {
                prop_assert_eq!(Email::parse(e.as_str()), Ok(e.clone()));
                prop_assert!(e.as_str().len() <= 254);
                prop_assert_eq!(e.as_str().to_ascii_lowercase(), e.as_str());
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = Email::parse(&String::from_utf8_lossy(&b));
        }
    }
}
