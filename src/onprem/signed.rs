//! Signed documents, the one shape licenses, heartbeats and heartbeat bundles share
//! (HEARTBEATS.md): `{"<member>": {...}, "key_id": "<hex>", "sig": "<base64>"}`, where `sig` is an
//! Ed25519 signature over the RFC 8785 canonical bytes of the member's object and `key_id` is the
//! lowercase hex SHA-256 of the raw 32-byte public key (as for audit checkpoints, AUDIT.md).
//!
//! Anyone with JCS, SHA-256 and Ed25519 can check one (`scripts/verify_license.py` does, with
//! Python's standard library and `cryptography`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, VerifyingKey};
use serde_json::{Map, Value};

use crate::audit::canonical;
use crate::audit::signing::{InstallKey, key_id_of};

/// Why a signed document is refused. Each message says what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignedError {
    /// Not the `{"<member>", "key_id", "sig"}` shape.
    #[error("{0}")]
    Shape(String),
    /// Signed by another key than the one it must be signed with.
    #[error("signed by key {found}, but the expected key is {expected}")]
    WrongKey {
        /// `key_id` in the document.
        found: String,
        /// `key_id` of the trusted key.
        expected: String,
    },
    /// The signature does not verify over the canonical bytes: the document was altered after
    /// signing, or forged.
    #[error(
        "the signature does not verify: the document was altered after it was signed, or forged"
    )]
    BadSignature,
}

/// A signed document taken apart: the signed object, and its signature.
#[derive(Clone, Debug)]
pub struct Signed {
    /// The signed object (the value of the `<member>` member).
    pub doc: Map<String, Value>,
    /// `key_id` as given.
    pub key_id: String,
    /// The raw signature bytes.
    pub sig: Vec<u8>,
}

/// Signs `doc` (an object of integers, strings, booleans, nulls, arrays and objects) with `key`
/// and publishes it under `member`.
///
/// Errors: a float inside `doc` (signed documents are integer-only, like the ledger).
pub fn sign(
    member: &str,
    doc: Value,
    key: &InstallKey,
) -> Result<Value, canonical::CanonicalError> {
    let bytes = canonical::to_vec(&doc)?;
    let mut out = Map::new();
    out.insert(member.to_string(), doc);
    out.insert("key_id".into(), Value::from(key.key_id()));
    out.insert("sig".into(), Value::from(key.sign_b64(&bytes)));
    Ok(Value::Object(out))
}

/// Takes a signed document apart, checking its shape: an object with exactly `member` (an
/// object), `key_id` (a string) and `sig` (standard base64 of 64 bytes).
pub fn split(member: &str, value: Value) -> Result<Signed, SignedError> {
    let Value::Object(mut outer) = value else {
        return Err(SignedError::Shape(format!(
            "expected a JSON object {{\"{member}\": {{...}}, \"key_id\", \"sig\"}}"
        )));
    };
    if let Some(extra) = outer
        .keys()
        .find(|k| !matches!(k.as_str(), "key_id" | "sig") && k.as_str() != member)
    {
        return Err(SignedError::Shape(format!(
            "unexpected member '{extra}': a signed {member} has exactly \"{member}\", \"key_id\" and \"sig\""
        )));
    }
    let doc = match outer.remove(member) {
        Some(Value::Object(doc)) => doc,
        _ => {
            return Err(SignedError::Shape(format!(
                "member \"{member}\" is missing or not an object"
            )));
        }
    };
    let key_id = match outer.remove("key_id") {
        Some(Value::String(s)) => s,
        _ => {
            return Err(SignedError::Shape(
                "member \"key_id\" is missing or not a string".into(),
            ));
        }
    };
    let sig = match outer.remove("sig") {
        Some(Value::String(s)) => B64
            .decode(s.as_bytes())
            .ok()
            .filter(|b| b.len() == 64)
            .ok_or_else(|| {
                SignedError::Shape(
                    "member \"sig\" is not the standard base64 of a 64-byte Ed25519 signature"
                        .into(),
                )
            })?,
        _ => {
            return Err(SignedError::Shape(
                "member \"sig\" is missing or not a string".into(),
            ));
        }
    };
    Ok(Signed { doc, key_id, sig })
}

impl Signed {
    /// The canonical bytes of the signed object.
    ///
    /// Errors: the object holds a float, so it cannot have been signed by Tenantry.
    pub fn canonical(&self) -> Result<Vec<u8>, SignedError> {
        canonical::to_vec(&Value::Object(self.doc.clone()))
            .map_err(|e| SignedError::Shape(format!("not a signable document: {e}")))
    }

    /// Checks that `key` made the signature: `key_id` names it, and the signature verifies
    /// (strictly) over the canonical bytes.
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), SignedError> {
        let expected = key_id_of(key);
        if self.key_id != expected {
            return Err(SignedError::WrongKey {
                found: self.key_id.clone(),
                expected,
            });
        }
        let sig = Signature::from_slice(&self.sig).map_err(|_| SignedError::BadSignature)?;
        let bytes = self.canonical()?;
        key.verify_strict(&bytes, &sig)
            .map_err(|_| SignedError::BadSignature)
    }

    /// Puts the document back together in its published form.
    pub fn to_value(&self, member: &str) -> Value {
        let mut out = Map::new();
        out.insert(member.to_string(), Value::Object(self.doc.clone()));
        out.insert("key_id".into(), Value::from(self.key_id.clone()));
        out.insert("sig".into(), Value::from(B64.encode(&self.sig)));
        Value::Object(out)
    }
}

/// Decodes the standard base64 of a raw 32-byte Ed25519 public key.
pub fn public_key_from_b64(s: &str) -> Option<VerifyingKey> {
    let bytes: [u8; 32] = B64.decode(s.trim()).ok()?.try_into().ok()?;
    VerifyingKey::from_bytes(&bytes).ok()
}

/// Standard base64 of a public key.
pub fn public_key_b64(key: &VerifyingKey) -> String {
    B64.encode(key.as_bytes())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_signed_document_verifies_and_any_change_breaks_it() {
        let key = InstallKey::from_seed(&[3; 32]);
        let v = sign("thing", json!({"b": 2, "a": "x", "n": [1, null]}), &key).unwrap();
        let s = split("thing", v.clone()).unwrap();
        assert!(s.verify(&key.public()).is_ok());
        // Member order and whitespace do not matter: the canonical bytes are signed.
        let reordered: Value = serde_json::from_str(
            &format!(
                "{{ \"sig\": {}, \"key_id\": {}, \"thing\": {{\"n\": [1, null], \"a\": \"x\", \"b\": 2}} }}",
                v["sig"], v["key_id"]
            ),
        )
        .unwrap();
        assert!(
            split("thing", reordered)
                .unwrap()
                .verify(&key.public())
                .is_ok()
        );
        let mut altered = v.clone();
        altered["thing"]["b"] = json!(3);
        assert_eq!(
            split("thing", altered).unwrap().verify(&key.public()),
            Err(SignedError::BadSignature)
        );
        let other = InstallKey::from_seed(&[4; 32]);
        assert!(matches!(
            s.verify(&other.public()),
            Err(SignedError::WrongKey { .. })
        ));
        assert_eq!(split("thing", s.to_value("thing")).unwrap().sig, s.sig);
    }

    #[test]
    fn the_shape_is_checked_before_any_signature() {
        for (v, needle) in [
            (json!([1]), "expected a JSON object"),
            (json!({"thing": {}, "key_id": "k"}), "\"sig\""),
            (
                json!({"thing": 1, "key_id": "k", "sig": "x"}),
                "not an object",
            ),
            (
                json!({"thing": {}, "key_id": "k", "sig": "x", "more": 1}),
                "unexpected member 'more'",
            ),
            (
                json!({"thing": {}, "key_id": "k", "sig": "AAAA"}),
                "64-byte",
            ),
        ] {
            let err = split("thing", v).unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
        }
    }
}
