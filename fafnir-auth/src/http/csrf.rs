//! CSRF defence for cookie-authenticated unsafe requests: a signed double-submit token bound to
//! the session, plus an Origin/Referer check.
//!
//! The token is `nonce.mac`, where `mac = HMAC-SHA256(key, session_id "." nonce)` and the key is
//! a server secret shared by all instances. A request passes when its `X-CSRF-Token` header
//! equals the `fafnir_csrf` cookie (compared in constant time), the MAC matches the session of
//! the access token, and its `Origin` (or `Referer`), when present, is allowed.

use axum::http::{header, HeaderMap, Method};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use fafnir_core::SessionId;
use rand::RngCore;
use ring::hmac;
use subtle::ConstantTimeEq;

pub const HEADER: &str = "x-csrf-token";

/// Issues and checks CSRF tokens.
pub struct CsrfKey(hmac::Key);

impl std::fmt::Debug for CsrfKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CsrfKey(***)")
    }
}

impl CsrfKey {
    pub fn new(secret: &[u8]) -> Self {
        CsrfKey(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    fn mac(&self, sid: &SessionId, nonce: &str) -> String {
        URL_SAFE_NO_PAD.encode(hmac::sign(&self.0, format!("{sid}.{nonce}").as_bytes()))
    }

    pub fn issue(&self, sid: &SessionId) -> String {
        let mut nonce = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let nonce = URL_SAFE_NO_PAD.encode(nonce);
        let mac = self.mac(sid, &nonce);
        format!("{nonce}.{mac}")
    }

    /// Header and cookie must be equal; with `sid`, the token must also be bound to it.
    pub fn verify(&self, sid: Option<&SessionId>, header_value: Option<&str>, cookie_value: Option<&str>) -> bool {
        let Some(h) = header_value.filter(|_| double_submit_matches(header_value, cookie_value)) else {
            return false;
        };
        match sid {
            None => true,
            Some(sid) => match h.split_once('.') {
                Some((nonce, mac)) => {
                    let Ok(mac) = URL_SAFE_NO_PAD.decode(mac) else {
                        return false;
                    };
                    hmac::verify(&self.0, format!("{sid}.{nonce}").as_bytes(), &mac).is_ok()
                }
                None => false,
            },
        }
    }
}

/// The double-submit half of the check: the header is present, not absurdly long, and equal to
/// the cookie (compared in constant time). A server without the CSRF key (the gateway in
/// microservice mode) can check this much.
pub fn double_submit_matches(header_value: Option<&str>, cookie_value: Option<&str>) -> bool {
    let (Some(h), Some(c)) = (header_value, cookie_value) else {
        return false;
    };
    !h.is_empty() && h.len() <= 256 && h.len() == c.len() && bool::from(h.as_bytes().ct_eq(c.as_bytes()))
}

/// POST, PUT, PATCH, DELETE (anything but GET, HEAD, OPTIONS, TRACE).
pub fn is_unsafe(m: &Method) -> bool {
    !matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE)
}

/// `scheme://host[:port]` of a URL, lower-cased.
pub fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    if authority.is_empty() || !matches!(scheme, "http" | "https") {
        return None;
    }
    Some(format!("{}://{}", scheme.to_ascii_lowercase(), authority.to_ascii_lowercase()))
}

/// The Origin (or, failing that, Referer) check. No header at all passes: non-browser clients
/// send neither, and browsers always send Origin on cross-site unsafe requests.
pub fn origin_allowed(headers: &HeaderMap, allowed: &[String], own_origin: Option<&str>) -> bool {
    let claimed = match headers.get(header::ORIGIN) {
        Some(o) => match o.to_str() {
            Ok(o) => origin_of(o),
            Err(_) => None, // "null" and garbage never pass
        },
        None => match headers.get(header::REFERER) {
            Some(r) => r.to_str().ok().and_then(origin_of),
            None => return true,
        },
    };
    let Some(claimed) = claimed else { return false };
    if allowed.iter().any(|a| origin_of(a).as_deref() == Some(claimed.as_str())) {
        return true;
    }
    if let Some(own) = own_origin {
        return own.eq_ignore_ascii_case(&claimed);
    }
    // Without a configured public URL, the server's own origin is the one the Host header names.
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).map(str::to_ascii_lowercase);
    matches!((host, claimed.split_once("://")), (Some(h), Some((_, authority))) if h == authority)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn tokens_bind_to_sessions() {
        let k = CsrfKey::new(b"0123456789abcdef0123456789abcdef");
        let s1 = SessionId::new();
        let t = k.issue(&s1);
        assert!(k.verify(Some(&s1), Some(&t), Some(&t)));
        assert!(!k.verify(Some(&SessionId::new()), Some(&t), Some(&t)), "another session's token");
        assert!(!k.verify(Some(&s1), Some(&t), Some("other")), "header differs from cookie");
        assert!(!k.verify(Some(&s1), None, Some(&t)));
        assert!(!k.verify(Some(&s1), Some("a.b"), Some("a.b")));
        assert!(k.verify(None, Some("x"), Some("x")));
    }

    #[test]
    fn origins() {
        let allowed = vec!["https://app.example.com".to_owned()];
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("api.example.com"));
        assert!(origin_allowed(&h, &allowed, None), "no Origin, no Referer: not a browser");
        h.insert(header::ORIGIN, HeaderValue::from_static("https://app.example.com"));
        assert!(origin_allowed(&h, &allowed, None));
        h.insert(header::ORIGIN, HeaderValue::from_static("https://evil.example"));
        assert!(!origin_allowed(&h, &allowed, None));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!origin_allowed(&h, &allowed, None));
        h.insert(header::ORIGIN, HeaderValue::from_static("http://api.example.com"));
        assert!(origin_allowed(&h, &allowed, None), "same host");
        assert!(!origin_allowed(&h, &allowed, Some("https://api.example.com")), "public URL is https");
        h.remove(header::ORIGIN);
        h.insert(header::REFERER, HeaderValue::from_static("https://evil.example/page"));
        assert!(!origin_allowed(&h, &allowed, None));
    }
}
