//! Standard Webhooks signatures and the keeping of signing secrets.
//!
//! - A secret is `whsec_` and the standard (padded) base64 of [`SECRET_BYTES`] random bytes; the
//!   HMAC key is those bytes (the spec: "the part after the prefix, base64-decoded").
//! - `webhook-signature` is `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`; during a
//!   rotation's overlap it lists both signatures, space-separated, newest first.
//! - Secrets must be usable (HMAC needs them), so they cannot be stored as hashes like API keys.
//!   They are sealed with ChaCha20-Poly1305 under a key derived from `DATA_DIR/keys/webhooks.ed25519`
//!   (made at first start, 0600, carried by backups like the other keys), with the tenant and
//!   endpoint ids as associated data: a copied store row opens for no other endpoint, and the
//!   store (or a backup without keys) alone reveals no secret. The API shows a secret once.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::model::{SECRET_BYTES, SECRET_PREFIX};

/// HMAC-SHA256 (RFC 2104) of `parts` concatenated, with `key`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    for p in parts {
        inner.update(p);
    }
    let inner = inner.finalize();
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner);
    outer.finalize().into()
}

/// One `v1,<base64>` signature of a delivery.
pub fn sign(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let ts = timestamp.to_string();
    let mac = hmac_sha256(key, &[msg_id.as_bytes(), b".", ts.as_bytes(), b".", body]);
    format!("v1,{}", B64.encode(mac))
}

/// The `webhook-signature` value: one signature per key, space-separated.
pub fn signature_header(keys: &[&[u8]], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    keys.iter()
        .map(|k| sign(k, msg_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The text form of a secret's bytes: `whsec_<base64>`.
pub fn format_secret(bytes: &[u8]) -> String {
    format!("{SECRET_PREFIX}{}", B64.encode(bytes))
}

/// The bytes of a `whsec_` secret.
pub fn parse_secret(s: &str) -> Option<Vec<u8>> {
    B64.decode(s.strip_prefix(SECRET_PREFIX)?).ok()
}

/// A new secret's bytes.
///
/// Errors: no randomness from the OS.
pub fn new_secret() -> Result<Vec<u8>, String> {
    let mut b = vec![0u8; SECRET_BYTES];
    getrandom::fill(&mut b).map_err(|e| format!("no randomness: {e}"))?;
    Ok(b)
}

/// What lists show of a secret: `whsec_` and its first 4 characters.
pub fn hint(bytes: &[u8]) -> String {
    let s = format_secret(bytes);
    let end = (SECRET_PREFIX.len() + 4).min(s.len());
    format!("{}…", &s[..end])
}

/// Seals and opens endpoint secrets (see the module docs).
#[derive(Clone)]
pub struct Sealer {
    key: [u8; 32],
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(***)")
    }
}

const NONCE_LEN: usize = 12;

fn aad(tenant: &Uuid, endpoint: &Uuid) -> [u8; 32] {
    let mut a = [0u8; 32];
    a[..16].copy_from_slice(tenant.as_bytes());
    a[16..].copy_from_slice(endpoint.as_bytes());
    a
}

impl Sealer {
    /// A sealer whose key is derived from `seed` (the 32-byte seed of the webhook key file).
    pub fn from_seed(seed: &[u8; 32]) -> Sealer {
        let mut h = Sha256::new();
        h.update(b"tenantry webhook secrets v1\0");
        h.update(seed);
        Sealer {
            key: h.finalize().into(),
        }
    }

    /// `nonce ++ ciphertext` of `secret` for `endpoint` of `tenant`.
    ///
    /// Errors: no randomness, or the cipher refused (neither happens in practice).
    pub fn seal(&self, tenant: &Uuid, endpoint: &Uuid, secret: &[u8]) -> Result<Vec<u8>, String> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| format!("no randomness: {e}"))?;
        let cipher = ChaCha20Poly1305::new((&self.key).into());
        let ad = aad(tenant, endpoint);
        let ct = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: secret,
                    aad: &ad,
                },
            )
            .map_err(|_| "sealing a webhook secret failed".to_string())?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// The secret sealed in `sealed` for `endpoint` of `tenant`.
    ///
    /// Errors: the row was not sealed with this install's key for this endpoint.
    pub fn open(&self, tenant: &Uuid, endpoint: &Uuid, sealed: &[u8]) -> Result<Vec<u8>, String> {
        let (nonce, ct) = sealed
            .split_at_checked(NONCE_LEN)
            .ok_or_else(|| "sealed secret too short".to_string())?;
        let cipher = ChaCha20Poly1305::new((&self.key).into());
        let ad = aad(tenant, endpoint);
        cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: &ad })
            .map_err(|_| {
                format!("the secret of webhook {endpoint} does not open with this install's webhook key (keys/webhooks.ed25519)")
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_test_case_2() {
        let mac = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let long = [0xaau8; 131];
        let mac = hmac_sha256(
            &long,
            &[b"Test Using Larger Than Block-Size Key - Hash Key First"],
        );
        assert_eq!(
            hex::encode(mac),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn the_signature_matches_the_standard_webhooks_example() {
        // The reference example of the Standard Webhooks libraries' tests.
        let key = parse_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap_or_default();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            sign(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn a_sealed_secret_opens_only_for_its_endpoint() {
        let s = Sealer::from_seed(&[7u8; 32]);
        let (t, e, other) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let sealed = s.seal(&t, &e, b"secret").unwrap_or_default();
        assert_eq!(s.open(&t, &e, &sealed), Ok(b"secret".to_vec()));
        assert!(s.open(&t, &other, &sealed).is_err());
        assert!(Sealer::from_seed(&[8u8; 32]).open(&t, &e, &sealed).is_err());
    }

    #[test]
    fn secrets_round_trip_through_their_text_form() {
        let b = new_secret().unwrap_or_default();
        assert_eq!(b.len(), SECRET_BYTES);
        let s = format_secret(&b);
        assert!(s.starts_with("whsec_"));
        assert_eq!(parse_secret(&s), Some(b));
    }
}
