//! Permissions: `resource:action`, where either side may be the wildcard `*`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a permission string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PermissionError {
    #[error("permission must have the form resource:action")]
    Format,
    #[error(
        "permission parts must be `*` or 1 to 64 characters of a-z, 0-9, `_`, `-` and `.`, starting with a letter"
    )]
    Part,
}

/// A parsed permission. Both parts are lower-case; `*` matches anything in its position.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Permission {
    // "resource:action", kept whole so that `as_str` borrows and hashing is one string.
    full: String,
    colon: usize,
}

pub const WILDCARD: &str = "*";

impl Permission {
    pub fn parse(s: &str) -> Result<Self, PermissionError> {
        if s.len() > 129 {
            return Err(PermissionError::Part);
        }
        let (resource, action) = s.split_once(':').ok_or(PermissionError::Format)?;
        if action.contains(':') {
            return Err(PermissionError::Format);
        }
        if !valid_part(resource) || !valid_part(action) {
            return Err(PermissionError::Part);
        }
        Ok(Permission { full: s.to_owned(), colon: resource.len() })
    }

    /// `resource:action` from two parts (each validated).
    pub fn new(resource: &str, action: &str) -> Result<Self, PermissionError> {
        Self::parse(&format!("{resource}:{action}"))
    }

    pub fn resource(&self) -> &str {
        &self.full[..self.colon]
    }

    pub fn action(&self) -> &str {
        &self.full[self.colon + 1..]
    }

    pub fn as_str(&self) -> &str {
        &self.full
    }

    pub fn is_wildcard(&self) -> bool {
        self.resource() == WILDCARD || self.action() == WILDCARD
    }

    /// Whether holding `self` grants `requested`. `users:*` grants `users:read`; `*:*` grants all.
    /// A wildcard in the *requested* permission is matched literally: asking for `users:*`
    /// needs a grant of `users:*` (or `*:*`), not merely `users:read`.
    pub fn grants(&self, requested: &Permission) -> bool {
        (self.resource() == WILDCARD || self.resource() == requested.resource())
            && (self.action() == WILDCARD || self.action() == requested.action())
    }
}

fn valid_part(p: &str) -> bool {
    if p == WILDCARD {
        return true;
    }
    let b = p.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_lowercase()
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'-' | b'.'))
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

impl fmt::Debug for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Permission({})", self.full)
    }
}

impl std::str::FromStr for Permission {
    type Err = PermissionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for Permission {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.full)
    }
}

impl<'de> Deserialize<'de> for Permission {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Permission::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> Permission {
        Permission::parse(s).unwrap()
    }

    #[test]
    fn parses_parts() {
        let x = p("users:read");
        assert_eq!((x.resource(), x.action()), ("users", "read"));
        assert!(p("*:*").is_wildcard());
        assert!(!x.is_wildcard());
    }

    #[test]
    fn table_of_hostile_inputs() {
        let long = format!("{}:read", "a".repeat(65));
        for bad in [
            "",
            ":",
            "users",
            "users:",
            ":read",
            "users:read:write",
            "Users:read",
            "users:READ",
            "us ers:read",
            "users:re\0ad",
            "1users:read",
            "users:**",
            "us*rs:read",
            "users :read",
            "u\u{0455}ers:read", // Cyrillic 's'
            &long,
        ] {
            assert!(Permission::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(Permission::parse("users"), Err(PermissionError::Format));
        assert_eq!(Permission::parse("Users:read"), Err(PermissionError::Part));
    }

    #[test]
    fn wildcard_grants() {
        assert!(p("*:*").grants(&p("users:read")));
        assert!(p("users:*").grants(&p("users:read")));
        assert!(p("*:read").grants(&p("users:read")));
        assert!(!p("users:read").grants(&p("users:write")));
        assert!(!p("users:read").grants(&p("users:*")));
        assert!(p("users:*").grants(&p("users:*")));
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,200}") {
            if let Ok(x) = Permission::parse(&s) {
                prop_assert_eq!(x.as_str(), s.as_str());
                prop_assert!(x.grants(&x));
            }
        }
    }
}
