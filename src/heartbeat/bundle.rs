//! Heartbeat bundles for air-gapped installs (HEARTBEATS.md "Air gap").
//!
//! A bundle is one JSON file, signed as a whole with the install key:
//!
//! ```text
//! {"bundle": {"format": "tenantry.heartbeat-bundle", "v": 1,
//!             "install_id", "license_id", "install_public_key", "enrollment_proof"?, "created_at",
//!             "count", "first_seq", "last_seq",
//!             "heartbeats": [{"heartbeat": {...}, "key_id", "sig"}, ...]},
//!  "key_id": "...", "sig": "..."}
//! ```
//!
//! Each heartbeat keeps its own signature; the bundle's signature covers their order and
//! number, so removing, reordering or altering anything refuses the bundle as a whole. The
//! install's public key travels in the bundle: for an install registered without one, the
//! control plane binds it when the bundle also carries `enrollment_proof`, made with the
//! appliance's `[control_plane] enrollment_secret` (`onprem::enroll`).

use ed25519_dalek::VerifyingKey;
use serde_json::{Value, json};
use uuid::Uuid;

use super::outbox;
use crate::clock::rfc3339_micros;
use crate::error::{Error, Result};
use crate::license::gate;
use crate::onprem::signed::{self, Signed};
use crate::state::AppState;

/// Member name of a signed bundle.
pub const MEMBER: &str = "bundle";
/// The `format` member.
pub const FORMAT: &str = "tenantry.heartbeat-bundle";
/// Most heartbeats in one bundle (the outbox never holds more).
pub const MAX_HEARTBEATS: usize = 20_000;

/// Writes every heartbeat in the outbox as one signed bundle (`tenantry heartbeat export`). The
/// outbox is left as it is: heartbeats leave it when the control plane's import is
/// acknowledged (`tenantry heartbeat ack --through N`), so a lost file loses nothing.
///
/// Errors: 404 when this process is not an appliance; 409 `license_missing` without a verified
/// license (there is no install id to write for).
pub async fn export(state: &AppState) -> Result<Vec<u8>> {
    state.onprem().require_appliance("heartbeat export")?;
    let (gate, pending) = state
        .read(|r| {
            Ok::<_, Error>((
                gate::load(r)?,
                outbox::pending(r, MAX_HEARTBEATS, usize::MAX)?,
            ))
        })
        .await?;
    let (Some(install_id), Some(license_id)) = (
        gate.as_ref().and_then(|g| g.install_id),
        gate.as_ref().and_then(|g| g.license_id),
    ) else {
        return Err(Error::conflict(
            crate::license::model::LICENSE_MISSING,
            "this appliance has no verified license, so it has no install id to export for: see GET /api/license",
        ));
    };
    // A bundle speaks for one install: heartbeats written under an earlier license for another
    // install id stay in the outbox (the sender delivers them, or `ack` removes them).
    let mut heartbeats = Vec::with_capacity(pending.len());
    let mut seqs = Vec::with_capacity(pending.len());
    let wanted = install_id.to_string();
    for p in &pending {
        let v = serde_json::from_slice::<Value>(&p.signed)
            .map_err(|e| Error::Internal(format!("outbox seq {}: {e}", p.seq)))?;
        if v["heartbeat"]["install_id"].as_str() == Some(wanted.as_str()) {
            heartbeats.push(v);
            seqs.push(p.seq);
        }
    }
    let key = state.install_key();
    let enrollment_proof = state
        .config()
        .control_plane
        .as_ref()
        .and_then(|c| c.enrollment_secret.as_ref())
        .map(|s| s.prove(&install_id, &key.public()));
    let doc = json!({
        "format": FORMAT,
        "v": 1,
        "install_id": install_id.to_string(),
        "license_id": license_id.to_string(),
        "install_public_key": signed::public_key_b64(&key.public()),
        "created_at": rfc3339_micros(state.clock().now()),
        "count": heartbeats.len(),
        "first_seq": seqs.first(),
        "last_seq": seqs.last(),
        "heartbeats": heartbeats,
    });
    let mut doc = doc;
    if let (Some(p), Some(d)) = (enrollment_proof, doc.as_object_mut()) {
        d.insert("enrollment_proof".into(), Value::from(p));
    }
    let bundle =
        signed::sign(MEMBER, doc, key).map_err(|e| Error::Internal(format!("bundle: {e}")))?;
    let mut bytes =
        serde_json::to_vec(&bundle).map_err(|e| Error::Internal(format!("bundle: {e}")))?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// A bundle taken apart, before any key is trusted.
#[derive(Debug)]
pub struct ParsedBundle {
    /// The install it claims to come from.
    pub install_id: Uuid,
    /// The license it claims.
    pub license_id: Uuid,
    /// The key it claims to be signed with.
    pub public_key: VerifyingKey,
    /// Its `enrollment_proof`, if any (checked by the control plane only to bind a key).
    pub enrollment_proof: Option<String>,
    /// The signed bundle (its signature is checked by [`ParsedBundle::verify`]).
    pub signed: Signed,
    /// The signed heartbeats, in bundle order.
    pub heartbeats: Vec<Value>,
}

/// Parses a bundle file's bytes: the signed shape, the format, and the header members.
///
/// Errors: 400 `bad_request` when it is not JSON; 422 `invalid_bundle` naming what is wrong.
pub fn parse(bytes: &[u8]) -> Result<ParsedBundle> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        Error::bad_request(
            crate::error::BAD_REQUEST,
            format!("malformed JSON: the bundle is not JSON ({e})"),
        )
    })?;
    parse_value(value)
}

/// [`parse`] for an already parsed value.
pub fn parse_value(value: Value) -> Result<ParsedBundle> {
    let invalid = |m: String| Error::invalid("bundle", m);
    let signed = signed::split(MEMBER, value).map_err(|e| invalid(e.to_string()))?;
    let d = &signed.doc;
    if d.get("format").and_then(Value::as_str) != Some(FORMAT)
        || d.get("v").and_then(Value::as_u64) != Some(1)
    {
        return Err(invalid(format!(
            "not a heartbeat bundle: expected format \"{FORMAT}\" and v 1"
        )));
    }
    let uuid = |name: &str| {
        d.get(name)
            .and_then(Value::as_str)
            .and_then(crate::ids::parse_uuid)
            .ok_or_else(|| invalid(format!("member \"{name}\" is missing or not a UUID")))
    };
    let install_id = uuid("install_id")?;
    let license_id = uuid("license_id")?;
    let public_key = d
        .get("install_public_key")
        .and_then(Value::as_str)
        .and_then(signed::public_key_from_b64)
        .ok_or_else(|| {
            invalid("member \"install_public_key\" is missing or not a base64 Ed25519 key".into())
        })?;
    let enrollment_proof = match d.get("enrollment_proof") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) if p.len() <= 128 => Some(p.clone()),
        Some(_) => {
            return Err(invalid(
                "member \"enrollment_proof\" is not the base64 of a signature".into(),
            ));
        }
    };
    let heartbeats = d
        .get("heartbeats")
        .and_then(Value::as_array)
        .cloned()
        .ok_or_else(|| invalid("member \"heartbeats\" is missing or not an array".into()))?;
    if heartbeats.len() > MAX_HEARTBEATS {
        return Err(invalid(format!(
            "{} heartbeats is more than a bundle may hold ({MAX_HEARTBEATS})",
            heartbeats.len()
        )));
    }
    if d.get("count").and_then(Value::as_u64) != Some(heartbeats.len() as u64) {
        return Err(invalid(
            "member \"count\" does not match the number of heartbeats".into(),
        ));
    }
    Ok(ParsedBundle {
        install_id,
        license_id,
        public_key,
        enrollment_proof,
        signed,
        heartbeats,
    })
}

impl ParsedBundle {
    /// Checks the bundle's own signature with `key`.
    ///
    /// Errors: 401 `signature_invalid` saying the bundle was altered or signed by another key.
    pub fn verify(&self, key: &VerifyingKey) -> Result<()> {
        self.signed.verify(key).map_err(|e| {
            Error::BadSignature(format!(
                "the bundle is refused as a whole, nothing was imported: {e}"
            ))
        })
    }
}
