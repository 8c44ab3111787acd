//! Passkeys (WebAuthn) by `webauthn-rs`: registration while signed in, and usernameless
//! sign-in with a discoverable credential, which counts as two factors (the device, and the
//! PIN or biometric that unlocked it: user verification is required).
//!
//! - The relying party is this deployment: its id is the host of `FAFNIR_PUBLIC_URL` (or
//!   `FAFNIR_WEBAUTHN_RP_ID`), and assertions are accepted from that origin and from
//!   `FAFNIR_ALLOWED_ORIGINS`. Without a public URL, `http://localhost:<port>`.
//! - A ceremony's state (its challenge) is kept in the database, not by the browser: five
//!   minutes, used once, so any instance can finish what another began, and a replayed answer
//!   finds nothing to finish.
//! - The sign-in counter is kept per credential and moves only forward (one conditional
//!   statement): an assertion whose counter does not move a non-zero counter forward is
//!   refused as a possible clone, as webauthn-rs advises. Synced passkeys report 0 and are not
//!   counted; their backup flags are stored as the authenticator reports them.

mod flow;
mod store;

use std::time::Duration;

use fafnir_core::Config;
use webauthn_rs::prelude::{Url, Webauthn, WebauthnBuilder};

use crate::error::AuthError;

pub use flow::{PasskeyInfo, PasskeyRegistered, PasskeyStart};
pub use store::{CeremonyKind, CeremonyRecord, PasskeyAdded, PasskeyRecord, PasskeyRemoval, PasskeyStore};

/// How long a ceremony (a started registration or sign-in) may take.
pub const CEREMONY_TTL: Duration = Duration::from_secs(300);
/// Passkeys one account may register.
pub const MAX_PASSKEYS: usize = 20;
/// Longest passkey name, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// The relying party: who passkeys are registered with, and which origins may use them.
pub struct Passkeys {
    webauthn: Webauthn,
    rp_id: String,
}

impl std::fmt::Debug for Passkeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passkeys").field("rp_id", &self.rp_id).finish_non_exhaustive()
    }
}

impl Passkeys {
    /// The relying party of `origin` (the site people use, e.g. `https://auth.example.com`):
    /// its id is `rp_id`, else the origin's host; `more` are further origins allowed to use
    /// the passkeys (under the same id, or a subdomain of it).
    pub fn new(origin: &str, rp_id: Option<&str>, more: &[String], name: &str) -> Result<Self, AuthError> {
        let bad = |what: String| AuthError::Config(format!("passkeys: {what}"));
        let origin = Url::parse(origin).map_err(|e| bad(format!("the public URL {origin:?} is not a URL ({e})")))?;
        let host = origin.host_str().ok_or_else(|| bad(format!("the public URL {origin} has no host")))?.to_owned();
        let rp_id = rp_id.map(str::to_owned).unwrap_or(host);
        if rp_id.parse::<std::net::IpAddr>().is_ok() || rp_id.starts_with('[') {
            return Err(bad(format!(
                "the relying party id {rp_id} is an IP address, which WebAuthn does not allow: \
                 set FAFNIR_PUBLIC_URL to a host name (http://localhost:… in development)"
            )));
        }
        let mut b = WebauthnBuilder::new(&rp_id, &origin)
            .map_err(|e| bad(format!("{origin} cannot use the relying party id {rp_id} ({e})")))?
            .rp_name(name)
            .timeout(CEREMONY_TTL);
        let extra: Vec<Url> = more.iter().filter_map(|o| Url::parse(o).ok()).collect();
        for o in &extra {
            b = b.append_allowed_origin(o);
        }
        let webauthn = b.build().map_err(|e| bad(format!("the relying party {rp_id} is not valid ({e})")))?;
        Ok(Self { webauthn, rp_id })
    }

    /// The relying party of a deployment: `FAFNIR_PUBLIC_URL` (else `http://localhost:<port>`),
    /// `FAFNIR_WEBAUTHN_RP_ID`, `FAFNIR_ALLOWED_ORIGINS`, and the product name.
    pub fn from_config(c: &Config) -> Result<Self, AuthError> {
        let origin = match &c.public_url {
            Some(u) => u.trim_end_matches('/').to_owned(),
            None => format!("http://localhost:{}", c.http_addr.port()),
        };
        Self::new(&origin, c.webauthn_rp_id.as_deref(), &c.allowed_origins, &c.product_name)
    }

    /// The relying party id (a host name).
    pub fn rp_id(&self) -> &str {
        &self.rp_id
    }

    pub(crate) fn webauthn(&self) -> &Webauthn {
        &self.webauthn
    }
}
