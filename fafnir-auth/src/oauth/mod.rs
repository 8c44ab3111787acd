//! Social login: Fafnir as an OAuth 2.0 / OpenID Connect relying party.
//!
//! - [`Providers`] holds the configured providers: OpenID Connect ones found by discovery from
//!   their issuer (metadata and signing keys cached, refetched when a token names an unknown
//!   key), plain OAuth 2.0 ones (GitHub) by their three endpoints. Every request to a provider
//!   goes through one HTTP client that never follows redirects and times out.
//! - A sign-in starts with [`crate::Auth::oauth_begin`]: a pending login is stored server-side
//!   (`state` and the browser binding only as SHA-256 hashes, the PKCE verifier, the nonce, the
//!   return path; single use; ten minutes) and the browser is sent to the provider with PKCE
//!   (S256), `state` and, for OpenID Connect, `nonce`.
//! - [`crate::Auth::oauth_callback`] takes the pending login (one statement: a replay finds
//!   nothing), checks the browser binding and RFC 9207's `iss`, exchanges the code with the
//!   verifier, verifies the ID token (signature by the provider's keys, `iss`, `aud`, `exp`,
//!   `nonce`), reads the user info, and applies [`decide`]: the identity, keyed by (issuer,
//!   subject) and never by e-mail, signs in the account it is linked to; a link request links;
//!   an e-mail of an existing account is `ACCOUNT_NOT_LINKED` unless the operator allows linking
//!   by verified e-mail; otherwise an account without a password is created (unless sign-up is
//!   off). The sign-in then opens the same session as a password login.
//! - Provider tokens are used once, to read who signed in, and never stored.

mod flow;
mod provider;
mod store;

use chrono::{DateTime, Utc};
use fafnir_core::UserId;
use serde::Serialize;
use uuid::Uuid;

pub use flow::{Callback, Completed};
pub use provider::{Provider, ProviderCheck, Providers, RemoteIdentity};
pub use store::{IdentityRecord, IdentityStore, PendingLogin, Unlink};

/// How long a started sign-in may take at the provider.
pub const PENDING_TTL: std::time::Duration = std::time::Duration::from_secs(600);

/// How recent a sign-in must be to set a first password without a current one.
pub const RECENT_SIGN_IN: std::time::Duration = std::time::Duration::from_secs(600);

/// A provider as the sign-in page lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProviderInfo {
    pub name: String,
    pub display_name: String,
}

/// An identity as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    pub id: Uuid,
    pub provider: String,
    pub email: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
}

/// What the provider sent back to the callback.
#[derive(Debug, Clone, Default)]
pub struct CallbackParams {
    pub code: Option<String>,
    pub state: Option<String>,
    /// RFC 9207: the issuer that sent the response.
    pub iss: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// A started sign-in: send the browser to `url`; `binding` goes into the browser's binding
/// cookie (the same value for every sign-in this browser starts).
#[derive(Debug, Clone)]
pub struct Begin {
    pub url: String,
    pub binding: String,
}

/// Why a provider sign-in did not sign anyone in: the contract's code goes to the return path
/// as `?error=CODE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Unknown, used, expired or forged `state`, another browser's sign-in, or a mix-up
    /// (`iss` of another provider).
    StateInvalid,
    /// The provider refused, failed or answered something that does not verify.
    ProviderError,
    /// The e-mail belongs to an existing account: sign in to it, then link.
    AccountNotLinked,
    /// The account would have to be created and sign-up is off.
    SignupDisabled,
    /// The provider did not assert a verified e-mail, which creating or linking by e-mail needs.
    EmailUnverified,
    /// The identity already signs in another account.
    IdentityLinkedElsewhere,
    /// The account is disabled.
    AccountDisabled,
    /// `FAFNIR_REQUIRE_VERIFIED_EMAIL` and the account's address is not verified.
    EmailNotVerified,
    /// Locked by the login throttle.
    RateLimited,
    /// A link was asked for but the browser is no longer signed in as the account that asked.
    Unauthorized,
}

impl Refusal {
    pub fn code(self) -> &'static str {
        match self {
            Refusal::StateInvalid => "OAUTH_STATE_INVALID",
            Refusal::ProviderError => "OAUTH_PROVIDER_ERROR",
            Refusal::AccountNotLinked => "ACCOUNT_NOT_LINKED",
            Refusal::SignupDisabled => "SIGNUP_DISABLED",
            Refusal::EmailUnverified => "OAUTH_EMAIL_UNVERIFIED",
            Refusal::IdentityLinkedElsewhere => "IDENTITY_ALREADY_LINKED",
            Refusal::AccountDisabled => "ACCOUNT_DISABLED",
            Refusal::EmailNotVerified => "EMAIL_NOT_VERIFIED",
            Refusal::RateLimited => "RATE_LIMITED",
            Refusal::Unauthorized => "UNAUTHORIZED",
        }
    }
}

/// The account decision of a callback, given what the store knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The identity is linked to this account: sign it in.
    SignIn(UserId),
    /// A signed-in link request: link the identity to this account (the browser stays signed in
    /// as it).
    Link(UserId),
    /// A link request for an identity the account already has: nothing to do.
    AlreadyLinked(UserId),
    /// Linking by verified e-mail applies: link to this account and sign it in.
    LinkByEmail(UserId),
    /// Create an account without a password, link the identity, sign it in.
    Create,
    Refuse(Refusal),
}

/// What the store knows about an incoming identity.
#[derive(Debug, Clone, Copy, Default)]
pub struct Facts {
    /// The account the identity (issuer, subject) is linked to.
    pub owner: Option<UserId>,
    /// The account that asked to link (a link request).
    pub link_for: Option<UserId>,
    /// The account with the provider's e-mail, and whether its address is verified.
    pub email_account: Option<(UserId, bool)>,
    /// The provider gave an e-mail and asserted it verified.
    pub provider_email_verified: bool,
    /// The provider gave an e-mail at all.
    pub provider_email: bool,
}

/// The operator's rules.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub link_verified_email: bool,
    pub allow_signup: bool,
}

/// The account decision table (the contract's "Social login" section): by identity first, never
/// by e-mail unless the operator allows it, and then only when both sides verified the address.
pub fn decide(f: Facts, rules: Rules) -> Decision {
    if let Some(me) = f.link_for {
        return match f.owner {
            Some(owner) if owner == me => Decision::AlreadyLinked(me),
            Some(_) => Decision::Refuse(Refusal::IdentityLinkedElsewhere),
            None => Decision::Link(me),
        };
    }
    if let Some(owner) = f.owner {
        return Decision::SignIn(owner);
    }
    if let Some((account, local_verified)) = f.email_account {
        return if rules.link_verified_email && f.provider_email_verified && local_verified {
            Decision::LinkByEmail(account)
        } else {
            Decision::Refuse(Refusal::AccountNotLinked)
        };
    }
    if !rules.allow_signup {
        return Decision::Refuse(Refusal::SignupDisabled);
    }
    if !f.provider_email || !f.provider_email_verified {
        // An account made from an address nobody proved could be taken over by the address's
        // owner later (or pre-claimed by an attacker): refused.
        return Decision::Refuse(Refusal::EmailUnverified);
    }
    Decision::Create
}

/// A return path: a path on this site (`/…`, not `//…` or `/\…`), or an absolute URL on one of
/// `allowed` origins. Anything else is an open redirect and refused.
pub fn check_return_to(return_to: Option<&str>, allowed: &[String]) -> Option<String> {
    let r = match return_to.map(str::trim) {
        None | Some("") => return Some("/".into()),
        Some(r) => r,
    };
    if r.len() > 1024 || r.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return None;
    }
    if let Some(rest) = r.strip_prefix('/') {
        if rest.starts_with('/') || rest.starts_with('\\') {
            return None;
        }
        return Some(r.to_owned());
    }
    let url = url::Url::parse(r).ok()?;
    if !matches!(url.scheme(), "http" | "https") || !url.username().is_empty() || url.password().is_some() {
        return None;
    }
    let origin = url.origin().ascii_serialization();
    allowed.iter().any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(&origin)).then(|| url.to_string())
}

/// `return_to` with `error=CODE` added to its query.
pub fn with_error(return_to: &str, code: &str) -> String {
    with_param(return_to, "error", code)
}

/// `return_to` with `name=value` added to its query (both URL-safe already).
pub fn with_param(return_to: &str, name: &str, value: &str) -> String {
    let (base, fragment) = match return_to.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (return_to, None),
    };
    let sep = if base.contains('?') { '&' } else { '?' };
    let mut out = format!("{base}{sep}{name}={value}");
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(link_verified_email: bool, allow_signup: bool) -> Rules {
        Rules { link_verified_email, allow_signup }
    }

    #[test]
    fn the_decision_table() {
        let (a, b) = (UserId::new(), UserId::new());
        let verified = Facts { provider_email: true, provider_email_verified: true, ..Facts::default() };
        let open = rules(false, true);
        // Known identity: signs in its account, whatever the e-mail says.
        assert_eq!(
            decide(Facts { owner: Some(a), email_account: Some((b, true)), ..verified }, open),
            Decision::SignIn(a)
        );
        assert_eq!(decide(Facts { owner: Some(a), ..Facts::default() }, rules(false, false)), Decision::SignIn(a));
        // Link requests.
        assert_eq!(decide(Facts { link_for: Some(a), ..verified }, open), Decision::Link(a));
        assert_eq!(decide(Facts { link_for: Some(a), owner: Some(a), ..verified }, open), Decision::AlreadyLinked(a));
        assert_eq!(
            decide(Facts { link_for: Some(a), owner: Some(b), ..verified }, open),
            Decision::Refuse(Refusal::IdentityLinkedElsewhere)
        );
        // A link request does not need a verified e-mail, nor sign-up.
        assert_eq!(decide(Facts { link_for: Some(a), ..Facts::default() }, rules(false, false)), Decision::Link(a));
        // The e-mail of an existing account: never linked automatically...
        assert_eq!(
            decide(Facts { email_account: Some((b, true)), ..verified }, open),
            Decision::Refuse(Refusal::AccountNotLinked)
        );
        // ...unless the operator allows it and both sides verified the address.
        let linking = rules(true, true);
        assert_eq!(decide(Facts { email_account: Some((b, true)), ..verified }, linking), Decision::LinkByEmail(b));
        assert_eq!(
            decide(Facts { email_account: Some((b, false)), ..verified }, linking),
            Decision::Refuse(Refusal::AccountNotLinked)
        );
        let unverified = Facts { provider_email: true, provider_email_verified: false, ..Facts::default() };
        assert_eq!(
            decide(Facts { email_account: Some((b, true)), ..unverified }, linking),
            Decision::Refuse(Refusal::AccountNotLinked)
        );
        // New people.
        assert_eq!(decide(verified, open), Decision::Create);
        assert_eq!(decide(verified, rules(true, false)), Decision::Refuse(Refusal::SignupDisabled));
        assert_eq!(decide(unverified, open), Decision::Refuse(Refusal::EmailUnverified));
        assert_eq!(decide(Facts::default(), open), Decision::Refuse(Refusal::EmailUnverified));
    }

    #[test]
    fn return_paths() {
        let allowed = vec!["https://app.example".to_string()];
        assert_eq!(check_return_to(None, &allowed).as_deref(), Some("/"));
        assert_eq!(check_return_to(Some("/account?tab=security"), &allowed).as_deref(), Some("/account?tab=security"));
        assert_eq!(check_return_to(Some("https://app.example/x"), &allowed).as_deref(), Some("https://app.example/x"));
        for bad in [
            "//evil.example/",
            "/\\evil.example",
            "https://evil.example/",
            "https://app.example.evil.example/",
            "https://user@app.example/",
            "javascript:alert(1)",
            "evil.example",
            "/a b",
            "/a\nb",
        ] {
            assert_eq!(check_return_to(Some(bad), &allowed), None, "{bad:?}");
        }
        assert_eq!(with_error("/", "SIGNUP_DISABLED"), "/?error=SIGNUP_DISABLED");
        assert_eq!(with_error("/a?b=1#top", "X"), "/a?b=1&error=X#top");
    }
}
