//! The three browser cookies of the contract.

use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue};
use cookie::time::Duration as CookieDuration;
use cookie::{Cookie, SameSite};

pub const ACCESS: &str = "fafnir_access";
pub const REFRESH: &str = "fafnir_refresh";
pub const CSRF: &str = "fafnir_csrf";
/// Binds a social login to the browser that started it (a random value; the server keeps its
/// hash with the pending login). With `Secure` cookies it is [`OAUTH_BINDING_HOST`] instead.
pub const OAUTH_BINDING: &str = "fafnir_oauth";
/// The binding cookie's name with `Secure` cookies: the `__Host-` prefix makes browsers refuse
/// it unless it was set by this very host, over HTTPS, for `/` and without `Domain`, so a
/// sibling domain or a plain-HTTP injection cannot plant a binding of its own.
pub const OAUTH_BINDING_HOST: &str = "__Host-fafnir_oauth";

/// The binding cookie's name for the `Secure` setting.
pub fn oauth_binding_name(secure: bool) -> &'static str {
    if secure {
        OAUTH_BINDING_HOST
    } else {
        OAUTH_BINDING
    }
}

/// The value of cookie `name` in the request, if present (the first one wins).
pub fn read(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| Cookie::split_parse(v.to_owned()).filter_map(Result::ok).collect::<Vec<_>>())
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

fn add(headers: &mut HeaderMap, c: Cookie<'_>) {
    // Cookie values we set are base64url or JWTs: always valid header bytes.
    if let Ok(v) = HeaderValue::from_str(&c.to_string()) {
        headers.append(SET_COOKIE, v);
    }
}

fn secs(d: std::time::Duration) -> CookieDuration {
    CookieDuration::seconds(i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Sets `fafnir_access` (HttpOnly, Lax, /), `fafnir_refresh` (HttpOnly, Strict, /auth) and
/// `fafnir_csrf` (readable by scripts, Lax, /).
pub fn set_session(
    headers: &mut HeaderMap,
    access: &str,
    access_ttl: std::time::Duration,
    refresh: &str,
    refresh_ttl: std::time::Duration,
    csrf: &str,
    secure: bool,
) {
    add(
        headers,
        Cookie::build((ACCESS, access.to_owned()))
            .http_only(true)
            .same_site(SameSite::Lax)
            .path("/")
            .max_age(secs(access_ttl))
            .secure(secure)
            .build(),
    );
    add(
        headers,
        Cookie::build((REFRESH, refresh.to_owned()))
            .http_only(true)
            .same_site(SameSite::Strict)
            .path("/auth")
            .max_age(secs(refresh_ttl))
            .secure(secure)
            .build(),
    );
    add(
        headers,
        Cookie::build((CSRF, csrf.to_owned()))
            .http_only(false)
            .same_site(SameSite::Lax)
            .path("/")
            .max_age(secs(refresh_ttl))
            .secure(secure)
            .build(),
    );
}

/// Clears all three (same names, paths and attributes; empty value; Max-Age=0).
pub fn clear_session(headers: &mut HeaderMap, secure: bool) {
    for (name, path, http_only, same_site) in [
        (ACCESS, "/", true, SameSite::Lax),
        (REFRESH, "/auth", true, SameSite::Strict),
        (CSRF, "/", false, SameSite::Lax),
    ] {
        add(
            headers,
            Cookie::build((name, ""))
                .http_only(http_only)
                .same_site(same_site)
                .path(path)
                .max_age(CookieDuration::ZERO)
                .secure(secure)
                .build(),
        );
    }
}

/// Sets the binding cookie (HttpOnly, path `/` as `__Host-` requires, ten minutes).
/// `SameSite=None` when the cookies are `Secure`, so that a provider's cross-site `form_post`
/// callback carries it too; `Lax` otherwise (browsers refuse `None` without `Secure`), which
/// covers the usual GET callback.
pub fn set_oauth_binding(headers: &mut HeaderMap, value: &str, secure: bool) {
    add(
        headers,
        Cookie::build((oauth_binding_name(secure), value.to_owned()))
            .http_only(true)
            .same_site(if secure { SameSite::None } else { SameSite::Lax })
            .path("/")
            .max_age(secs(crate::oauth::PENDING_TTL))
            .secure(secure)
            .build(),
    );
}

/// Holds an MFA challenge between a provider sign-in and `POST /auth/mfa/verify` (HttpOnly,
/// path `/auth/mfa`, five minutes). With `Secure` cookies it is [`MFA_SECURE`].
pub const MFA: &str = "fafnir_mfa";
/// The challenge cookie's name with `Secure` cookies: browsers take a `__Secure-` cookie only
/// over HTTPS with `Secure` set, so a plain-HTTP injection cannot plant one.
pub const MFA_SECURE: &str = "__Secure-fafnir_mfa";

/// The challenge cookie's name for the `Secure` setting.
pub fn mfa_name(secure: bool) -> &'static str {
    if secure {
        MFA_SECURE
    } else {
        MFA
    }
}

pub fn set_mfa(headers: &mut HeaderMap, token: &str, secure: bool) {
    add(
        headers,
        Cookie::build((mfa_name(secure), token.to_owned()))
            .http_only(true)
            .same_site(SameSite::Lax)
            .path("/auth/mfa")
            .max_age(secs(crate::mfa::CHALLENGE_TTL))
            .secure(secure)
            .build(),
    );
}

pub fn clear_mfa(headers: &mut HeaderMap, secure: bool) {
    add(
        headers,
        Cookie::build((mfa_name(secure), ""))
            .http_only(true)
            .same_site(SameSite::Lax)
            .path("/auth/mfa")
            .max_age(CookieDuration::ZERO)
            .secure(secure)
            .build(),
    );
}
