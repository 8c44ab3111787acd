//! A software passkey for tests, written from the WebAuthn Level 3 specification and
//! independent of the server's WebAuthn library: one ES256 (P-256) key per credential,
//! "none" attestation, the user-presence and user-verification flags, a signature counter, and
//! the answers a browser would give as JSON (`PublicKeyCredential.toJSON()`).
//!
//! Every field that a test may want wrong is public: the origin is an argument, and
//! [`SoftPasskey::rp_id`], [`SoftPasskey::user_verified`] and [`SoftPasskey::counter_step`]
//! change what the next answer claims. `Clone` copies the keys: a cloned authenticator.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::digest::{digest, SHA256};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use serde_json::{json, Value};

#[derive(Clone)]
struct Credential {
    id: Vec<u8>,
    rp_id: String,
    user_handle: Vec<u8>,
    pkcs8: Vec<u8>,
    counter: u32,
}

/// A software authenticator holding discoverable credentials.
#[derive(Clone)]
pub struct SoftPasskey {
    creds: Vec<Credential>,
    /// Claim this relying party id (its hash goes into the authenticator data) instead of
    /// the one the options name.
    pub rp_id: Option<String>,
    /// Set the user-verified flag (a PIN or biometric was checked). On by default.
    pub user_verified: bool,
    /// How much the signature counter moves per use; 0 is a synced passkey keeping none.
    pub counter_step: u32,
    /// The backup-eligible and backed-up flags.
    pub backup: (bool, bool),
    /// Return this user handle in assertions instead of the one the credential was made for.
    pub user_handle: Option<Vec<u8>>,
}

impl std::fmt::Debug for SoftPasskey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftPasskey").field("credentials", &self.creds.len()).finish_non_exhaustive()
    }
}

impl Default for SoftPasskey {
    fn default() -> Self {
        Self::new()
    }
}

fn b64(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

fn unb64(v: &Value) -> Result<Vec<u8>, String> {
    let s = v.as_str().ok_or("not a string")?;
    URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).map_err(|e| e.to_string())
}

/// CBOR (RFC 8949) header of `major` type with `len`.
fn cbor_head(out: &mut Vec<u8>, major: u8, len: u64) {
    let m = major << 5;
    match len {
        0..=23 => out.push(m | len as u8),
        24..=0xff => out.extend([m | 24, len as u8]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend((len as u16).to_be_bytes());
        }
        _ => {
            out.push(m | 26);
            out.extend((len as u32).to_be_bytes());
        }
    }
}

fn cbor_int(out: &mut Vec<u8>, v: i64) {
    if v >= 0 {
        cbor_head(out, 0, v as u64);
    } else {
        cbor_head(out, 1, (-1 - v) as u64);
    }
}

fn cbor_bytes(out: &mut Vec<u8>, b: &[u8]) {
    cbor_head(out, 2, b.len() as u64);
    out.extend_from_slice(b);
}

fn cbor_text(out: &mut Vec<u8>, s: &str) {
    cbor_head(out, 3, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

impl SoftPasskey {
    pub fn new() -> Self {
        Self {
            creds: Vec::new(),
            rp_id: None,
            user_verified: true,
            counter_step: 1,
            backup: (false, false),
            user_handle: None,
        }
    }

    fn flags(&self, attested: bool) -> u8 {
        let mut f = 0x01; // user present
        if self.user_verified {
            f |= 0x04;
        }
        if self.backup.0 {
            f |= 0x08;
        }
        if self.backup.1 {
            f |= 0x10;
        }
        if attested {
            f |= 0x40;
        }
        f
    }

    fn client_data(kind: &str, challenge: &Value, origin: &str) -> Vec<u8> {
        json!({ "type": kind, "challenge": challenge, "origin": origin, "crossOrigin": false }).to_string().into_bytes()
    }

    /// The answer to `navigator.credentials.create(options)` made at `origin`: a new
    /// discoverable credential. `options` is the server's `{publicKey: …}`.
    pub fn create(&mut self, options: &Value, origin: &str) -> Result<Value, String> {
        let o = options.get("publicKey").ok_or("no publicKey")?;
        let rp_id = self.rp_id.clone().or_else(|| o.pointer("/rp/id").and_then(Value::as_str).map(String::from));
        let rp_id = rp_id.ok_or("no rp.id")?;
        let user_handle = unb64(o.pointer("/user/id").ok_or("no user.id")?)?;
        if !o["pubKeyCredParams"].as_array().is_some_and(|a| a.iter().any(|p| p["alg"] == -7)) {
            return Err("ES256 not offered".into());
        }
        for ex in o["excludeCredentials"].as_array().into_iter().flatten() {
            let id = unb64(&ex["id"])?;
            if self.creds.iter().any(|c| c.id == id) {
                return Err("InvalidStateError: this authenticator holds an excluded credential".into());
            }
        }
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).map_err(|e| e.to_string())?;
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|e| e.to_string())?;
        let point = key.public_key().as_ref(); // 0x04 ‖ x ‖ y
        let mut id = vec![0u8; 32];
        rng.fill(&mut id).map_err(|e| e.to_string())?;
        let counter = self.counter_step;

        let mut auth_data = digest(&SHA256, rp_id.as_bytes()).as_ref().to_vec();
        auth_data.push(self.flags(true));
        auth_data.extend(counter.to_be_bytes());
        auth_data.extend([0u8; 16]); // AAGUID: none
        auth_data.extend((id.len() as u16).to_be_bytes());
        auth_data.extend(&id);
        // COSE_Key: {1: 2 (EC2), 3: -7 (ES256), -1: 1 (P-256), -2: x, -3: y}
        cbor_head(&mut auth_data, 5, 5);
        for (k, v) in [(1, 2), (3, -7), (-1, 1)] {
            cbor_int(&mut auth_data, k);
            cbor_int(&mut auth_data, v);
        }
        cbor_int(&mut auth_data, -2);
        cbor_bytes(&mut auth_data, &point[1..33]);
        cbor_int(&mut auth_data, -3);
        cbor_bytes(&mut auth_data, &point[33..65]);

        let mut att = Vec::new();
        cbor_head(&mut att, 5, 3);
        cbor_text(&mut att, "fmt");
        cbor_text(&mut att, "none");
        cbor_text(&mut att, "attStmt");
        cbor_head(&mut att, 5, 0);
        cbor_text(&mut att, "authData");
        cbor_bytes(&mut att, &auth_data);

        let client_data = Self::client_data("webauthn.create", &o["challenge"], origin);
        self.creds.push(Credential { id: id.clone(), rp_id, user_handle, pkcs8: pkcs8.as_ref().to_vec(), counter });
        Ok(json!({
            "id": b64(&id),
            "rawId": b64(&id),
            "type": "public-key",
            "response": {
                "attestationObject": b64(&att),
                "clientDataJSON": b64(&client_data),
                "transports": ["internal"],
            },
            "clientExtensionResults": {},
        }))
    }

    /// The answer to `navigator.credentials.get(options)` made at `origin`: an assertion by
    /// the newest credential for the relying party that the options allow (any of this
    /// relying party's when they list none: a discoverable sign-in).
    pub fn get(&mut self, options: &Value, origin: &str) -> Result<Value, String> {
        let o = options.get("publicKey").ok_or("no publicKey")?;
        let asked_rp = o["rpId"].as_str().ok_or("no rpId")?.to_owned();
        let allowed: Vec<Vec<u8>> =
            o["allowCredentials"].as_array().into_iter().flatten().filter_map(|c| unb64(&c["id"]).ok()).collect();
        let step = self.counter_step;
        let flags = self.flags(false);
        let claimed_rp = self.rp_id.clone().unwrap_or_else(|| asked_rp.clone());
        let handle_override = self.user_handle.clone();
        let cred = self
            .creds
            .iter_mut()
            .rev()
            .find(|c| c.rp_id == asked_rp && (allowed.is_empty() || allowed.contains(&c.id)))
            .ok_or("NotAllowedError: no credential for this relying party")?;
        cred.counter = cred.counter.wrapping_add(step);
        let mut auth_data = digest(&SHA256, claimed_rp.as_bytes()).as_ref().to_vec();
        auth_data.push(flags);
        auth_data.extend(cred.counter.to_be_bytes());
        let client_data = Self::client_data("webauthn.get", &o["challenge"], origin);
        let mut signed = auth_data.clone();
        signed.extend(digest(&SHA256, &client_data).as_ref());
        let rng = SystemRandom::new();
        let key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &cred.pkcs8, &rng).map_err(|e| e.to_string())?;
        let sig = key.sign(&rng, &signed).map_err(|e| e.to_string())?;
        Ok(json!({
            "id": b64(&cred.id),
            "rawId": b64(&cred.id),
            "type": "public-key",
            "response": {
                "authenticatorData": b64(&auth_data),
                "clientDataJSON": b64(&client_data),
                "signature": b64(sig.as_ref()),
                "userHandle": b64(handle_override.as_deref().unwrap_or(&cred.user_handle)),
            },
            "clientExtensionResults": {},
        }))
    }

    /// How many credentials this authenticator holds.
    pub fn len(&self) -> usize {
        self.creds.len()
    }

    pub fn is_empty(&self) -> bool {
        self.creds.is_empty()
    }
}
