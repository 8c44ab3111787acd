//! The profile model and its validation.

use chrono::{DateTime, Utc};
use fafnir_core::UserId;
use serde::{Deserialize, Deserializer, Serialize};

/// A user's public-facing profile. Every registered user has one (created empty on
/// registration); every field but the id and timestamps is optional.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    pub user_id: UserId,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub display_name: Option<String>,
    pub avatar_url: Option<String>,
    pub bio: Option<String>,
    /// A BCP 47 language tag such as `en` or `pt-BR`.
    pub locale: Option<String>,
    /// An IANA time zone name such as `Europe/Paris`, or `UTC`.
    pub timezone: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A partial update. A field left out (`None`) is unchanged; `Some(None)` or an empty string
/// clears it; `Some(Some(v))` sets it after validation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileUpdate {
    #[serde(default, deserialize_with = "present")]
    pub first_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub last_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub display_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub avatar_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub bio: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub locale: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub timezone: Option<Option<String>>,
}

/// A field that is present in the JSON (even as `null`) becomes `Some`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// One invalid field, with a message fit for the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

/// The profile columns, in the order `ProfileUpdate::fields` yields them.
pub(crate) const COLUMNS: [&str; 7] =
    ["first_name", "last_name", "display_name", "avatar_url", "bio", "locale", "timezone"];

impl ProfileUpdate {
    pub fn is_empty(&self) -> bool {
        self.fields().iter().all(|f| f.is_none())
    }

    pub(crate) fn fields(&self) -> [&Option<Option<String>>; 7] {
        [
            &self.first_name,
            &self.last_name,
            &self.display_name,
            &self.avatar_url,
            &self.bio,
            &self.locale,
            &self.timezone,
        ]
    }

    /// Validates and normalises (trims; empty means clear). Returns the column updates, or every
    /// invalid field at once.
    pub fn validate(&self) -> Result<Vec<(&'static str, Option<String>)>, Vec<FieldError>> {
        let mut out = Vec::new();
        let mut errors = Vec::new();
        for (column, value) in COLUMNS.iter().zip(self.fields()) {
            let Some(value) = value else { continue };
            let v = value.as_deref().map(str::trim).filter(|s| !s.is_empty());
            match v.map(|s| validate_field(column, s)).transpose() {
                Ok(v) => out.push((*column, v)),
                Err(message) => errors.push(FieldError { field: column, message }),
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors)
        }
    }
}

fn text(s: &str, max: usize, multiline: bool) -> Result<String, String> {
    if s.chars().count() > max {
        return Err(format!("must be at most {max} characters"));
    }
    let bad = |c: char| c.is_control() && !(multiline && (c == '\n' || c == '\t'));
    if s.chars().any(bad) {
        return Err("must not contain control characters".into());
    }
    // Bidirectional overrides can disguise a name ("evil\u{202e}gpj.exe").
    if s.chars().any(|c| matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')) {
        return Err("must not contain bidirectional control characters".into());
    }
    Ok(s.to_owned())
}

fn validate_field(column: &str, s: &str) -> Result<String, String> {
    if s.len() > 8192 {
        return Err("is too long".into());
    }
    match column {
        "first_name" | "last_name" | "display_name" => text(s, 100, false),
        "bio" => text(s, 1000, true),
        "avatar_url" => avatar_url(s),
        "locale" => locale(s),
        "timezone" => timezone(s),
        _ => Err("is not a profile field".into()),
    }
}

fn avatar_url(s: &str) -> Result<String, String> {
    const MSG: &str = "must be an http(s) URL of at most 2048 characters";
    if s.len() > 2048 {
        return Err(MSG.into());
    }
    let u = url::Url::parse(s).map_err(|_| MSG.to_string())?;
    // `javascript:`, `data:` and friends would be an XSS vector wherever the URL is rendered.
    if !matches!(u.scheme(), "https" | "http") || u.host_str().is_none() || !u.username().is_empty() {
        return Err(MSG.into());
    }
    Ok(u.to_string())
}

fn locale(s: &str) -> Result<String, String> {
    const MSG: &str = "must be a language tag such as en or pt-BR";
    let mut parts = s.split(['-', '_']);
    let lang = parts.next().unwrap_or_default();
    if s.len() > 35 || !(2..=3).contains(&lang.len()) || !lang.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(MSG.into());
    }
    if !parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric())) {
        return Err(MSG.into());
    }
    Ok(s.replace('_', "-"))
}

fn timezone(s: &str) -> Result<String, String> {
    const MSG: &str = "must be an IANA time zone such as Europe/Paris, or UTC";
    let ok = s.len() <= 64
        && s.split('/').all(|p| {
            !p.is_empty()
                && p.as_bytes()[0].is_ascii_alphabetic()
                && p.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'+'))
        });
    if ok {
        Ok(s.to_owned())
    } else {
        Err(MSG.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn upd(json: &str) -> ProfileUpdate {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn absent_null_and_empty() {
        let u = upd(r#"{"first_name": "  Ada ", "bio": null, "locale": ""}"#);
        assert_eq!(u.validate().unwrap(), vec![("first_name", Some("Ada".into())), ("bio", None), ("locale", None)]);
        assert!(upd("{}").is_empty());
        assert!(serde_json::from_str::<ProfileUpdate>(r#"{"user_id": "x"}"#).is_err());
    }

    #[test]
    fn hostile_values_are_refused_field_by_field() {
        let long = "x".repeat(101);
        let cases = [
            ("first_name", long.as_str()),
            ("last_name", "a\0b"),
            ("display_name", "evil\u{202e}gpj.exe"),
            ("avatar_url", "javascript:alert(1)"),
            ("avatar_url", "data:image/png;base64,AAAA"),
            ("avatar_url", "https://user:pw@example.com/a.png"),
            ("avatar_url", "not a url"),
            ("locale", "english"),
            ("locale", "e"),
            ("timezone", "../../etc/passwd"),
            ("timezone", "Europe/Pa ris"),
        ];
        for (field, value) in cases {
            let json = serde_json::json!({ field: value }).to_string();
            let errs = upd(&json).validate().unwrap_err();
            assert_eq!(errs.len(), 1, "{field}={value:?}");
            assert_eq!(errs[0].field, field);
        }
        let ok = upd(
            r#"{"avatar_url": "https://cdn.example.com/a.png", "locale": "pt_BR", "timezone": "America/Sao_Paulo", "bio": "line one\nline two"}"#,
        );
        let v = ok.validate().unwrap();
        assert!(v.contains(&("locale", Some("pt-BR".into()))));
    }

    proptest! {
        #[test]
        fn validation_never_panics(field in 0usize..7, s in "\\PC{0,300}") {
            let mut u = ProfileUpdate::default();
            let slot = match field {
                0 => &mut u.first_name, 1 => &mut u.last_name, 2 => &mut u.display_name,
                3 => &mut u.avatar_url, 4 => &mut u.bio, 5 => &mut u.locale, _ => &mut u.timezone,
            };
            *slot = Some(Some(s));
            let _ = u.validate();
        }
    }
}
