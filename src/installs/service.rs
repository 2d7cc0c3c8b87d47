//! The control plane's rules for installs, each inside one write request: register (issue the
//! license), take in verified heartbeats (idempotent per seq, the witness check, recovery), and
//! mark silence. Every check runs before the first write, so a refusal writes nothing.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use ed25519_dalek::VerifyingKey;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::model::*;
use crate::audit::ledger::{Audit, ChainId, Subject};
use crate::audit::signing::{InstallKey, key_id_of};
use crate::clock::{from_micros, rfc3339_micros, to_micros};
use crate::error::{Error, Result, Validator};
use crate::heartbeat::{self, HeartbeatDoc};
use crate::license::{self, License, Limits};
use crate::onprem::enroll::{self, EnrollmentSecret};
use crate::onprem::signed::{self, SignedError};
use crate::store::{Reader, WriteCtx};

/// Default license term when registration names no `expires_at`.
pub const DEFAULT_TERM_DAYS: i64 = 365;
/// Most heartbeats in one online delivery.
pub const MAX_DELIVERY: usize = 500;

/// Receiver caps on one heartbeat (issue 12 finding 4): what the appliance's own code never
/// exceeds, so a heartbeat over them was not written by it. The heads per heartbeat are the
/// sender's [`heartbeat::document::MAX_HEADS`].
pub mod caps {
    /// Canonical bytes of one signed heartbeat (200 heads are about 26 KB).
    pub const MAX_SIGNED_BYTES: usize = 64 * 1024;
    /// Characters of `version`.
    pub const MAX_VERSION: usize = 64;
    /// Characters of `llm_probe.status`, of a `tenants` state and of `usage.period`.
    pub const MAX_NAME: usize = 32;
    /// Entries of `tenants` (there are 6 lifecycle states).
    pub const MAX_TENANT_STATES: usize = 16;
}

/// An install to register, unchecked: what `POST /api/installs` and the console's form give
/// (HEARTBEATS.md "Control-plane routes").
#[derive(Clone, Debug, Default)]
pub struct InstallDraft {
    /// The customer, 1–200 characters.
    pub customer: String,
    /// The install may never reach the control plane: heartbeats only as bundles.
    pub air_gapped: Option<bool>,
    /// License expiry (RFC 3339), in the future; one year from now by default.
    pub expires_at: Option<String>,
    /// `limits.max_tenants`: most tenants at once, 1–1,000,000; no limit when absent.
    pub max_tenants: Option<i64>,
    /// Feature names (a-z, 0-9, `_`, `-`, `.`; at most 32).
    pub features: Option<Vec<String>>,
    /// The install's public key (standard base64), when known.
    pub install_public_key: Option<String>,
}

/// A checked [`InstallDraft`].
#[derive(Clone, Debug)]
pub struct RegisterInput {
    customer: String,
    air_gapped: bool,
    expires_at: Option<DateTime<Utc>>,
    max_tenants: Option<u64>,
    features: Vec<String>,
    key: Option<VerifyingKey>,
}

impl InstallDraft {
    /// Checks every field; one `validation_failed` error lists each bad one.
    pub fn parse(self) -> Result<RegisterInput> {
        let mut v = Validator::new();
        let customer = self.customer.trim().to_string();
        if customer.is_empty() || customer.chars().count() > 200 {
            v.add("customer", "give the customer's name, 1 to 200 characters");
        } else if customer.chars().any(char::is_control) {
            v.add("customer", "control characters are not allowed");
        }
        let expires_at = match self.expires_at.as_deref() {
            None => None,
            Some(s) => v.take(
                "expires_at",
                DateTime::parse_from_rfc3339(s)
                    .map(|t| crate::clock::truncate_micros(t.with_timezone(&Utc)))
                    .map_err(|_| {
                        format!("'{s}' is not an RFC 3339 time, e.g. 2027-11-21T00:00:00Z")
                    }),
            ),
        };
        let max_tenants = match self.max_tenants {
            None => None,
            Some(n) if (1..=1_000_000).contains(&n) => Some(n as u64),
            Some(n) => {
                v.add(
                    "limits.max_tenants",
                    format!("{n} is out of range: use 1 to 1000000, or leave it out for no limit"),
                );
                None
            }
        };
        let mut features = BTreeSet::new();
        let given = self.features.unwrap_or_default();
        if given.len() > 32 {
            v.add("features", "at most 32 features");
        }
        for f in given {
            if f.is_empty()
                || f.len() > 64
                || !f
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.".contains(&b))
            {
                v.add(
                    "features",
                    format!("feature '{f}' is invalid: use a-z, 0-9, '_', '-' and '.', up to 64 characters"),
                );
            } else {
                features.insert(f);
            }
        }
        let key = match self.install_public_key.as_deref() {
            None => None,
            Some(s) => v.take(
                "install_public_key",
                signed::public_key_from_b64(s).ok_or_else(|| {
                    "not the standard base64 of a 32-byte Ed25519 key: copy public_key from the appliance's GET /api/audit/public-key".to_string()
                }),
            ),
        };
        v.finish()?;
        Ok(RegisterInput {
            customer,
            air_gapped: self.air_gapped.unwrap_or(false),
            expires_at,
            max_tenants,
            features: features.into_iter().collect(),
            key,
        })
    }
}

/// What registration returns.
#[derive(Clone, Debug)]
pub struct Registered {
    /// The new install.
    pub install_id: Uuid,
    /// Its signed license `{"license", "key_id", "sig"}`.
    pub license: Value,
    /// The enrollment secret (`tenroll_...`), when one was issued by this request: shown once,
    /// only its verifier is stored.
    pub enrollment_secret: Option<String>,
}

/// Registers an install and issues its license, signed with `key` (the control plane's license
/// key). Without `install_public_key`, `enrollment` becomes the install's pending enrollment
/// and the license names its verifier (`enrollment_key_id`) instead of an install key. Writes
/// `install.registered.v1`.
///
/// Errors: 422 `validation_failed` when `expires_at` is not in the future.
pub fn register(
    ctx: &mut WriteCtx<'_>,
    input: &RegisterInput,
    key: &InstallKey,
    enrollment: &EnrollmentSecret,
) -> Result<Registered> {
    let now = ctx.now;
    let expires_at = input
        .expires_at
        .unwrap_or(now + chrono::Duration::days(DEFAULT_TERM_DAYS));
    if expires_at <= now {
        return Err(Error::invalid(
            "expires_at",
            format!(
                "{} is not in the future: a license must expire after it is issued",
                rfc3339_micros(expires_at)
            ),
        ));
    }
    let install_id = crate::ids::new_id(now);
    let install_key_id = input.key.as_ref().map(key_id_of);
    let enrollment = input.key.is_none().then_some(enrollment);
    let enrollment_key_id = enrollment.map(EnrollmentSecret::verifier_id);
    let lic = License {
        license_id: crate::ids::new_id(now),
        install_id,
        customer: input.customer.clone(),
        issued_at: now,
        expires_at,
        limits: Limits {
            max_tenants: input.max_tenants,
        },
        features: input.features.clone(),
        air_gapped: input.air_gapped,
        install_key_id: install_key_id.clone(),
        enrollment_key_id: enrollment_key_id.clone(),
    };
    let signed_license = license::issue(&lic, key)?;
    let bytes = crate::audit::canonical::to_vec(&signed_license)
        .map_err(|e| Error::Internal(format!("license: {e}")))?;
    let record = InstallV1 {
        customer: lic.customer.clone(),
        license_id: lic.license_id,
        previous_licenses: Vec::new(),
        license: bytes,
        air_gapped: lic.air_gapped,
        issued_at: to_micros(now),
        expires_at: to_micros(expires_at),
        max_tenants: lic.limits.max_tenants,
        features: lic.features.clone(),
        registered_at: to_micros(now),
        key: input.key.map(|k| k.to_bytes()),
        key_bound_at: input.key.map(|_| to_micros(now)),
        key_binding: input.key.map(|_| KeyBinding::Registration),
        last_seen_at: None,
        last_seq: 0,
        last_sent_at: None,
        received: 0,
        arrivals: 0,
        version: None,
        llm_status: None,
        llm_checked_at: None,
        tenants: None,
        health: None,
        silent_since: None,
        contradictions: 0,
    };
    ctx.put_record(
        INSTALLS,
        &install_key(&install_id),
        &InstallRecord::V1(record),
    )?;
    if let Some(e) = enrollment {
        ctx.put_record(
            ENROLLMENTS,
            &install_key(&install_id),
            &EnrollmentRecord::V1 {
                verifier: e.verifier(),
                issued_at: to_micros(now),
            },
        )?;
    }
    ctx.audit(
        "install.registered.v1",
        &Subject::platform("install", install_id),
        json!({
            "customer": lic.customer,
            "license_id": lic.license_id.to_string(),
            "license_key_id": key.key_id(),
            "air_gapped": lic.air_gapped,
            "expires_at": rfc3339_micros(expires_at),
            "max_tenants": lic.limits.max_tenants,
            "features": lic.features,
            "install_key_id": install_key_id,
            "enrollment_key_id": enrollment_key_id,
        }),
    )?;
    Ok(Registered {
        install_id,
        license: signed_license,
        enrollment_secret: enrollment.map(EnrollmentSecret::encode),
    })
}

/// The pending enrollment of install `id`, if any.
pub fn pending_enrollment(r: &impl Reader, id: &Uuid) -> Result<Option<EnrollmentRecord>> {
    Ok(r.get_record(ENROLLMENTS, &install_key(id))?)
}

/// Issues a new enrollment secret to install `id`, whose key is not bound yet (the previous
/// secret, if any, stops working), and a new license naming it, signed with `key`: the license
/// an appliance holds names the enrollment it must hold the secret of. Writes
/// `install.enrollment.issued.v1` and `license.issued.v1`.
///
/// Errors: 404 unknown install; 409 `install_already_enrolled` once a key is bound (renew the
/// license instead: it names the key).
pub fn reissue_enrollment(
    ctx: &mut WriteCtx<'_>,
    id: &Uuid,
    secret: &EnrollmentSecret,
    key: &InstallKey,
) -> Result<Registered> {
    let inst = load(ctx, id)?;
    if inst.key.is_some() {
        return Err(Error::conflict(
            INSTALL_ALREADY_ENROLLED,
            format!(
                "install {id} already has its key bound ({}): there is nothing to enroll. Renew its license instead (POST /api/installs/{id}/licenses)",
                inst.key_binding.map_or("", KeyBinding::as_str)
            ),
        ));
    }
    let previous = pending_enrollment(ctx, id)?
        .and_then(|EnrollmentRecord::V1 { verifier, .. }| enroll::verifier_id_of(&verifier));
    ctx.put_record(
        ENROLLMENTS,
        &install_key(id),
        &EnrollmentRecord::V1 {
            verifier: secret.verifier(),
            issued_at: to_micros(ctx.now),
        },
    )?;
    ctx.audit(
        "install.enrollment.issued.v1",
        &Subject::platform("install", id),
        json!({
            "enrollment_key_id": secret.verifier_id(),
            "replaces": previous,
        }),
    )?;
    let keep = RenewInput {
        expires_at: Some(from_micros(inst.expires_at)).filter(|t| *t > ctx.now),
        max_tenants: None,
        features: None,
    };
    let mut out = renew(ctx, id, &keep, key)?;
    out.enrollment_secret = Some(secret.encode());
    Ok(out)
}

/// Loads an install.
///
/// Errors: 404 `not_found`.
pub fn load(r: &impl Reader, id: &Uuid) -> Result<InstallV1> {
    match r.get_record::<InstallRecord>(INSTALLS, &install_key(id))? {
        Some(InstallRecord::V1(i)) => Ok(i),
        None => Err(Error::not_found("install", id.to_string())),
    }
}

fn save(ctx: &mut WriteCtx<'_>, id: &Uuid, i: &InstallV1) -> Result<()> {
    ctx.put_record(INSTALLS, &install_key(id), &InstallRecord::V1(i.clone()))?;
    Ok(())
}

/// A renewal, unchecked (`POST /api/installs/{id}/licenses`, the console's form). Members left
/// out keep the current license's terms.
#[derive(Clone, Debug, Default)]
pub struct LicenseDraft {
    /// New expiry (RFC 3339), in the future; one year from now by default.
    pub expires_at: Option<String>,
    /// New limits: `Some(max_tenants)` (`Some(None)`: no limit); the current ones when `None`.
    pub limits: Option<Option<i64>>,
    /// New features; the current ones by default.
    pub features: Option<Vec<String>>,
}

/// A checked [`LicenseDraft`].
#[derive(Clone, Debug)]
pub struct RenewInput {
    expires_at: Option<DateTime<Utc>>,
    max_tenants: Option<Option<u64>>,
    features: Option<Vec<String>>,
}

impl LicenseDraft {
    /// Checks every field, with the rules of registration.
    pub fn parse(self) -> Result<RenewInput> {
        let given_limits = self.limits.is_some();
        let given_features = self.features.is_some();
        let checked = InstallDraft {
            customer: "renewal".into(),
            expires_at: self.expires_at,
            max_tenants: self.limits.flatten(),
            features: self.features,
            ..InstallDraft::default()
        }
        .parse()?;
        Ok(RenewInput {
            expires_at: checked.expires_at,
            max_tenants: given_limits.then_some(checked.max_tenants),
            features: given_features.then_some(checked.features),
        })
    }
}

/// Issues a new license to install `id` (same install id and air gap, bound to the install's
/// key once known; a new `license_id`), signed with `key`. The previous license stays acceptable for heartbeats
/// written under it. Writes `license.issued.v1`.
///
/// Errors: 404 unknown install; 422 when `expires_at` is not in the future.
pub fn renew(
    ctx: &mut WriteCtx<'_>,
    id: &Uuid,
    input: &RenewInput,
    key: &InstallKey,
) -> Result<Registered> {
    let mut inst = load(ctx, id)?;
    let now = ctx.now;
    let expires_at = input
        .expires_at
        .unwrap_or(now + chrono::Duration::days(DEFAULT_TERM_DAYS));
    if expires_at <= now {
        return Err(Error::invalid(
            "expires_at",
            format!(
                "{} is not in the future: a license must expire after it is issued",
                rfc3339_micros(expires_at)
            ),
        ));
    }
    // Once the install's key is known, however it was bound, the new license names it; before,
    // the license names the pending enrollment, and without one it is not issued (it would bind
    // to any appliance).
    let install_key_id = inst
        .key
        .and_then(|k| VerifyingKey::from_bytes(&k).ok())
        .map(|k| key_id_of(&k));
    let enrollment_key_id = match install_key_id {
        Some(_) => None,
        None => {
            let pending = pending_enrollment(ctx, id)?.and_then(
                |EnrollmentRecord::V1 { verifier, .. }| enroll::verifier_id_of(&verifier),
            );
            if pending.is_none() {
                return Err(Error::denied(
                    INSTALL_ENROLLMENT_REQUIRED,
                    format!(
                        "install {id} has no bound key and no pending enrollment, so its license would bind to any appliance: issue an enrollment secret (POST /api/installs/{id}/enrollment), which also issues the license"
                    ),
                ));
            }
            pending
        }
    };
    let lic = License {
        license_id: crate::ids::new_id(now),
        install_id: *id,
        customer: inst.customer.clone(),
        issued_at: now,
        expires_at,
        limits: Limits {
            max_tenants: input.max_tenants.unwrap_or(inst.max_tenants),
        },
        features: input
            .features
            .clone()
            .unwrap_or_else(|| inst.features.clone()),
        air_gapped: inst.air_gapped,
        install_key_id,
        enrollment_key_id,
    };
    let signed_license = license::issue(&lic, key)?;
    let previous = inst.license_id;
    inst.previous_licenses.push(previous);
    inst.license_id = lic.license_id;
    inst.license = crate::audit::canonical::to_vec(&signed_license)
        .map_err(|e| Error::Internal(format!("license: {e}")))?;
    inst.issued_at = to_micros(now);
    inst.expires_at = to_micros(expires_at);
    inst.max_tenants = lic.limits.max_tenants;
    inst.features = lic.features.clone();
    save(ctx, id, &inst)?;
    ctx.audit(
        "license.issued.v1",
        &Subject::platform("install", id),
        json!({
            "license_id": lic.license_id.to_string(),
            "replaces": previous.to_string(),
            "license_key_id": key.key_id(),
            "expires_at": rfc3339_micros(expires_at),
            "max_tenants": lic.limits.max_tenants,
            "features": lic.features,
        }),
    )?;
    Ok(Registered {
        install_id: *id,
        license: signed_license,
        enrollment_secret: None,
    })
}

/// A heartbeat whose signature verified, parsed.
#[derive(Clone, Debug)]
pub struct VerifiedHeartbeat {
    /// The document.
    pub doc: HeartbeatDoc,
    /// Its heads, parsed.
    pub heads: Vec<(ChainId, u64, [u8; 32])>,
    /// SHA-256 of the heartbeat's canonical bytes.
    pub digest: [u8; 32],
    /// Canonical bytes of the signed heartbeat, as stored.
    pub signed: Vec<u8>,
}

/// Verifies signed heartbeats with `key`, then checks their fields against the install.
/// Every signature is checked before any field: a forged heartbeat is a 401, whatever it says.
///
/// Errors: 401 `signature_invalid` for a heartbeat not signed by `key` (altered, forged, or
/// signed by another install); 422 `validation_failed` for a malformed one, one for another
/// install or license, bad heads, or a seq repeated in the batch.
pub fn verify_heartbeats(
    values: Vec<Value>,
    key: &VerifyingKey,
    install_id: &Uuid,
    licenses: &[Uuid],
) -> Result<Vec<VerifiedHeartbeat>> {
    let mut out: Vec<VerifiedHeartbeat> = Vec::with_capacity(values.len());
    let mut seqs = BTreeSet::new();
    for (i, v) in values.into_iter().enumerate() {
        let field = format!("heartbeats[{i}]");
        let s = signed::split(heartbeat::MEMBER, v)
            .map_err(|e| Error::invalid(&field, e.to_string()))?;
        s.verify(key).map_err(|e| {
            Error::BadSignature(match e {
                SignedError::WrongKey { found, expected } => format!(
                    "heartbeat {i} is signed by key {found}, but install {install_id} is bound to key {expected}: nothing was stored"
                ),
                other => format!("heartbeat {i} is refused ({other}): nothing was stored"),
            })
        })?;
        let bytes = s
            .canonical()
            .map_err(|e| Error::invalid(&field, e.to_string()))?;
        if bytes.len() > caps::MAX_SIGNED_BYTES {
            return Err(Error::invalid(
                &field,
                format!(
                    "the heartbeat is {} bytes, over the {} a heartbeat may hold",
                    bytes.len(),
                    caps::MAX_SIGNED_BYTES
                ),
            ));
        }
        let digest: [u8; 32] = Sha256::digest(&bytes).into();
        let doc: HeartbeatDoc = serde_json::from_value(Value::Object(s.doc.clone()))
            .map_err(|e| Error::invalid(&field, format!("not a heartbeat: {e}")))?;
        check_caps(&doc)
            .map_err(|m| Error::invalid(&field, format!("heartbeat seq {}: {m}", doc.seq)))?;
        if doc.install_id != *install_id {
            return Err(Error::invalid(
                &field,
                format!(
                    "heartbeat seq {} is for install {}, not {install_id}",
                    doc.seq, doc.install_id
                ),
            ));
        }
        if !licenses.contains(&doc.license_id) {
            return Err(Error::invalid(
                &field,
                format!(
                    "heartbeat seq {} names license {}, which was never issued to install {install_id}",
                    doc.seq, doc.license_id
                ),
            ));
        }
        if doc.seq == 0 || !seqs.insert(doc.seq) {
            return Err(Error::invalid(
                &field,
                format!("seq {} is 0 or repeated in this batch", doc.seq),
            ));
        }
        let mut chains = BTreeSet::new();
        let mut heads = Vec::with_capacity(doc.audit_heads.len());
        for h in &doc.audit_heads {
            let chain = ChainId::parse(&h.chain).map_err(|m| Error::invalid(&field, m))?;
            let hash: [u8; 32] = hex::decode(&h.hash)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| {
                    Error::invalid(&field, format!("audit head of {} has a bad hash", h.chain))
                })?;
            if h.seq == 0 || !chains.insert(chain) {
                return Err(Error::invalid(
                    &field,
                    format!("audit head of {} is at seq 0 or repeated", h.chain),
                ));
            }
            heads.push((chain, h.seq, hash));
        }
        let signed_bytes = crate::audit::canonical::to_vec(&s.to_value(heartbeat::MEMBER))
            .map_err(|e| Error::invalid(&field, e.to_string()))?;
        out.push(VerifiedHeartbeat {
            doc,
            heads,
            digest,
            signed: signed_bytes,
        });
    }
    out.sort_by_key(|h| h.doc.seq);
    Ok(out)
}

/// Checks a heartbeat's members against [`caps`]; the message names the member and its cap.
fn check_caps(doc: &HeartbeatDoc) -> std::result::Result<(), String> {
    let long = |s: &str, max: usize| s.chars().count() > max;
    if doc.audit_heads.len() > heartbeat::document::MAX_HEADS {
        return Err(format!(
            "{} audit heads, over the {} a heartbeat carries",
            doc.audit_heads.len(),
            heartbeat::document::MAX_HEADS
        ));
    }
    if long(&doc.version, caps::MAX_VERSION) {
        return Err(format!("version is over {} characters", caps::MAX_VERSION));
    }
    if doc.tenants.len() > caps::MAX_TENANT_STATES
        || doc.tenants.keys().any(|k| long(k, caps::MAX_NAME))
    {
        return Err(format!(
            "tenants has over {} states, or a state over {} characters",
            caps::MAX_TENANT_STATES,
            caps::MAX_NAME
        ));
    }
    if long(&doc.usage.period, caps::MAX_NAME)
        || doc
            .llm_probe
            .as_ref()
            .is_some_and(|p| long(&p.status, caps::MAX_NAME))
    {
        return Err(format!(
            "usage.period or llm_probe.status is over {} characters",
            caps::MAX_NAME
        ));
    }
    Ok(())
}

/// A verified delivery, ready to take in.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// Online or bundle.
    pub via: Via,
    /// The key every signature was checked with.
    pub key: VerifyingKey,
    /// The heartbeats, in seq order.
    pub heartbeats: Vec<VerifiedHeartbeat>,
    /// SHA-256 of the bundle file, for a bundle.
    pub bundle_sha256: Option<String>,
    /// `enrollment_proof` as offered (`onprem::enroll`): needed to bind the key of an install
    /// that has none yet.
    pub enrollment_proof: Option<String>,
}

/// What happened to one heartbeat.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ItemResult {
    /// Its seq.
    pub seq: u64,
    /// `accepted`, or `duplicate` (already received: nothing changed).
    pub status: String,
}

/// The answer to a delivery or import.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct IntakeResult {
    /// The install.
    pub install_id: Uuid,
    /// One entry per heartbeat, in seq order.
    pub results: Vec<ItemResult>,
    /// Newly stored.
    pub accepted: u64,
    /// Already received before (idempotent: a repeat is not an error).
    pub duplicates: u64,
    /// Highest seq received from this install: `tenantry heartbeat ack --through` takes it.
    pub last_seq: u64,
    /// Witness contradictions found in these heartbeats.
    pub contradictions: u64,
}

/// Decides whether a reported head `(seq, hash)` in heartbeat `hb` contradicts what was
/// witnessed before: `exact` is the head first witnessed at that same seq, `highest` the
/// highest head witnessed for the chain. A chain only grows, and a later heartbeat never
/// reports a lower head, so these are the contradictions heads alone can show:
/// - the same seq with another hash (`rewritten`);
/// - a later heartbeat reporting a lower seq than an earlier one, or an earlier heartbeat
///   (arriving late, from a bundle) reporting a higher one (`went_backwards`).
///
/// A rewrite that also grew the chain past every witnessed seq is not visible in heads; it is
/// visible when an export of the chain is checked against the witnessed heads (the
/// `install_witness` table keeps every one).
pub fn judge(
    exact: Option<&WitnessRecord>,
    highest: Option<&HeadWitness>,
    hb: u64,
    seq: u64,
    hash: &[u8; 32],
) -> Option<(ContradictionKind, u64, [u8; 32], u64)> {
    if let Some(WitnessRecord::V1 {
        hash: h,
        heartbeat_seq,
        ..
    }) = exact
        && h != hash
    {
        return Some((ContradictionKind::Rewritten, seq, *h, *heartbeat_seq));
    }
    if let Some(HeadWitness::V1 {
        seq: top,
        hash: h,
        heartbeat_seq,
        ..
    }) = highest
        && ((*heartbeat_seq < hb && *top > seq) || (*heartbeat_seq > hb && *top < seq))
    {
        return Some((ContradictionKind::WentBackwards, *top, *h, *heartbeat_seq));
    }
    None
}

/// Takes in a verified delivery for install `id`: binds the key when the delivery proves it with
/// the pending enrollment (consuming it), stores each new seq, answers a repeated seq as a
/// duplicate, runs the witness check on the heads, updates the registry, and ends a silence.
/// Audited: `install.key.bound.v1` (enrollment),
/// `install.recovered.v1`, `install.witness.contradicted.v1`, and `install.bundle.imported.v1`
/// for a bundle that brought anything new. A delivery of duplicates only writes nothing.
///
/// Errors: 404 unknown install; 401 `signature_invalid` when the install's key is no longer the
/// one the signatures were checked with; 403 `install_enrollment_required` when the install has
/// no key and the delivery no proof (or the install no pending enrollment), 403
/// `install_enrollment_invalid` when the proof does not verify; 409 `heartbeat_seq_conflict` when a seq was already
/// received with other content (the appliance was restored from a backup, or equivocates):
/// the whole delivery is refused.
pub fn intake(ctx: &mut WriteCtx<'_>, id: &Uuid, d: &Delivery) -> Result<IntakeResult> {
    let mut inst = load(ctx, id)?;
    let bind = match inst.key {
        Some(k) if k == d.key.to_bytes() => None,
        Some(k) => {
            return Err(Error::BadSignature(format!(
                "install {id} is bound to key {}, not {}: nothing was stored",
                hex::encode(sha2::Sha256::digest(k)),
                key_id_of(&d.key)
            )));
        }
        None => Some(enrolled(ctx, id, d)?),
    };
    // Every check before the first write: duplicates and conflicts.
    let mut results = Vec::with_capacity(d.heartbeats.len());
    let mut fresh = Vec::new();
    for hb in &d.heartbeats {
        match ctx.get(SEEN, &seq_key(id, hb.doc.seq))? {
            Some(digest) if digest.as_slice() == hb.digest.as_slice() => results.push(ItemResult {
                seq: hb.doc.seq,
                status: "duplicate".into(),
            }),
            Some(_) => {
                return Err(Error::conflict(
                    crate::installs::model::HEARTBEAT_SEQ_CONFLICT,
                    format!(
                        "install {id} already sent a different heartbeat {}: nothing was stored. An appliance restored from an older backup reuses seqs; see the install's heartbeat history",
                        hb.doc.seq
                    ),
                ));
            }
            None => {
                results.push(ItemResult {
                    seq: hb.doc.seq,
                    status: "accepted".into(),
                });
                fresh.push(hb);
            }
        }
    }
    let duplicates = (d.heartbeats.len() - fresh.len()) as u64;
    if fresh.is_empty() {
        return Ok(IntakeResult {
            install_id: *id,
            results,
            accepted: 0,
            duplicates,
            last_seq: inst.last_seq,
            contradictions: 0,
        });
    }
    let now = ctx.now;
    let subject = Subject::platform("install", id);
    if let Some((how, enrollment_key_id)) = bind {
        inst.key = Some(d.key.to_bytes());
        inst.key_bound_at = Some(to_micros(now));
        inst.key_binding = Some(how);
        // Consumed: the secret binds once.
        ctx.delete(ENROLLMENTS, &install_key(id))?;
        ctx.audit(
            "install.key.bound.v1",
            &subject,
            json!({
                "install_key_id": key_id_of(&d.key),
                "license_id": inst.license_id.to_string(),
                "binding": how.as_str(),
                "enrollment_key_id": enrollment_key_id,
            }),
        )?;
    }
    let mut found = Vec::new();
    for hb in &fresh {
        let seq = hb.doc.seq;
        ctx.put(SEEN, &seq_key(id, seq), &hb.digest)?;
        inst.arrivals += 1;
        ctx.put_record(
            HEARTBEATS,
            &seq_key(id, seq),
            &HeartbeatRecord::V1 {
                received_at: to_micros(now),
                arrival: inst.arrivals,
                via: d.via,
                signed: hb.signed.clone(),
            },
        )?;
        if seq > KEEP_HEARTBEATS {
            ctx.delete_range(
                HEARTBEATS,
                &crate::store::Range::between(
                    seq_key(id, 0),
                    seq_key(id, seq - KEEP_HEARTBEATS + 1),
                ),
            )?;
        }
        inst.received += 1;
        for (chain, cseq, hash) in &hb.heads {
            let ck = chain.key();
            let exact: Option<WitnessRecord> =
                ctx.get_record(WITNESS, &witness_key(id, &ck, *cseq))?;
            let highest: Option<HeadWitness> = ctx.get_record(HEADS, &chain_key(id, &ck))?;
            if let Some((kind, wseq, whash, win)) =
                judge(exact.as_ref(), highest.as_ref(), seq, *cseq, hash)
            {
                found.push(ContradictionRecord::V1 {
                    chain: chain.to_string(),
                    kind,
                    reported_seq: *cseq,
                    reported_hash: *hash,
                    reported_in: seq,
                    witnessed_seq: wseq,
                    witnessed_hash: whash,
                    witnessed_in: win,
                    detected_at: to_micros(now),
                });
            }
            if exact.is_none() {
                ctx.put_record(
                    WITNESS,
                    &witness_key(id, &ck, *cseq),
                    &WitnessRecord::V1 {
                        hash: *hash,
                        heartbeat_seq: seq,
                        witnessed_at: to_micros(now),
                    },
                )?;
            }
            let higher = match &highest {
                Some(HeadWitness::V1 { seq: top, .. }) => cseq > top,
                None => true,
            };
            if higher {
                ctx.put_record(
                    HEADS,
                    &chain_key(id, &ck),
                    &HeadWitness::V1 {
                        seq: *cseq,
                        hash: *hash,
                        heartbeat_seq: seq,
                        witnessed_at: to_micros(now),
                    },
                )?;
            }
        }
        if seq > inst.last_seq {
            inst.last_seq = seq;
            inst.last_sent_at = Some(to_micros(hb.doc.sent_at));
            inst.version = Some(hb.doc.version.clone());
            inst.llm_status = hb.doc.llm_probe.as_ref().map(|p| p.status.clone());
            inst.llm_checked_at = hb.doc.llm_probe.as_ref().map(|p| to_micros(p.checked_at));
            inst.tenants = Some(
                hb.doc
                    .tenants
                    .iter()
                    .map(|(k, v)| (k.clone(), *v))
                    .collect(),
            );
            inst.health = Some((
                hb.doc.health.store_ok,
                hb.doc.health.failed_jobs_24h,
                hb.doc.health.free_disk_bytes,
            ));
        }
    }
    inst.last_seen_at = Some(to_micros(now));
    if !found.is_empty() {
        let first_n = inst.contradictions;
        inst.contradictions += found.len() as u64;
        let mut listed = Vec::new();
        for (n, c) in found.iter().enumerate() {
            ctx.put_record(CONTRADICTIONS, &seq_key(id, first_n + n as u64 + 1), c)?;
            if listed.len() < 20 {
                listed.push(contradiction_json(c));
            }
        }
        ctx.audit(
            "install.witness.contradicted.v1",
            &subject,
            json!({"count": found.len(), "contradictions": listed}),
        )?;
        tracing::error!(install = %id, count = found.len(), "witness check: the install's audit heads contradict earlier ones (a rewritten chain)");
    }
    if let Some(since) = inst.silent_since.take() {
        ctx.audit(
            "install.recovered.v1",
            &subject,
            json!({
                "silent_since": rfc3339_micros(from_micros(since)),
                "silent_for_s": (to_micros(now) - since) / 1_000_000,
                "heartbeat_seq": fresh.last().map(|h| h.doc.seq),
            }),
        )?;
    }
    if d.via == Via::Bundle {
        ctx.audit(
            "install.bundle.imported.v1",
            &subject,
            json!({
                "accepted": fresh.len(),
                "duplicates": duplicates,
                "first_seq": d.heartbeats.first().map(|h| h.doc.seq),
                "last_seq": d.heartbeats.last().map(|h| h.doc.seq),
                "bundle_sha256": d.bundle_sha256,
            }),
        )?;
    }
    save(ctx, id, &inst)?;
    ctx.touch(crate::store::Topic::Other("installs"));
    Ok(IntakeResult {
        install_id: *id,
        results,
        accepted: fresh.len() as u64,
        duplicates,
        last_seq: inst.last_seq,
        contradictions: found.len() as u64,
    })
}

/// Checks that delivery `d` may bind its key to install `id`, which has none: the install has a
/// pending enrollment and `d` carries its proof for this key. Returns how the key is bound and
/// the enrollment's key id. Writes nothing.
///
/// Errors: 403 `install_enrollment_required`, 403 `install_enrollment_invalid`.
fn enrolled(ctx: &WriteCtx<'_>, id: &Uuid, d: &Delivery) -> Result<(KeyBinding, String)> {
    let Some(EnrollmentRecord::V1 { verifier, .. }) = pending_enrollment(ctx, id)? else {
        return Err(Error::denied(
            INSTALL_ENROLLMENT_REQUIRED,
            format!(
                "install {id} has no bound key and no pending enrollment (registered before enrollment secrets, or its secret was used): the operator issues a new secret (POST /api/installs/{id}/enrollment) and gives it to the appliance as [control_plane] enrollment_secret; nothing was stored"
            ),
        ));
    };
    let Some(proof) = d.enrollment_proof.as_deref() else {
        return Err(Error::denied(
            INSTALL_ENROLLMENT_REQUIRED,
            format!(
                "install {id} has no bound key yet: the first delivery must carry enrollment_proof, made with the enrollment secret the control plane issued at registration ([control_plane] enrollment_secret on the appliance); nothing was stored"
            ),
        ));
    };
    if !enroll::verify(&verifier, id, &d.key, proof) {
        return Err(Error::denied(
            INSTALL_ENROLLMENT_INVALID,
            format!(
                "the enrollment_proof for install {id} and key {} does not verify with its pending enrollment: the appliance's enrollment_secret is wrong or was replaced; nothing was stored",
                key_id_of(&d.key)
            ),
        ));
    }
    let how = match d.via {
        Via::Online => KeyBinding::EnrolledDelivery,
        Via::Bundle => KeyBinding::EnrolledBundle,
    };
    Ok((how, enroll::verifier_id_of(&verifier).unwrap_or_default()))
}

/// A contradiction as JSON (audit data and the API).
pub fn contradiction_json(c: &ContradictionRecord) -> Value {
    let ContradictionRecord::V1 {
        chain,
        kind,
        reported_seq,
        reported_hash,
        reported_in,
        witnessed_seq,
        witnessed_hash,
        witnessed_in,
        detected_at,
    } = c;
    json!({
        "chain": chain,
        "kind": kind,
        "reported_seq": reported_seq,
        "reported_hash": hex::encode(reported_hash),
        "reported_in_heartbeat": reported_in,
        "witnessed_seq": witnessed_seq,
        "witnessed_hash": hex::encode(witnessed_hash),
        "witnessed_in_heartbeat": witnessed_in,
        "detected_at": rfc3339_micros(from_micros(*detected_at)),
    })
}

/// Marks install `id` silent if it still is due at `now`: an online install, heard from
/// before, not silent yet, and quiet for more than `after` intervals of `interval_s`. Writes
/// `install.silent.v1`. Returns whether it was marked.
pub fn mark_silent(ctx: &mut WriteCtx<'_>, id: &Uuid, interval_s: u64, after: u32) -> Result<bool> {
    let mut inst = load(ctx, id)?;
    let now = to_micros(ctx.now);
    let Some(last) = inst.last_seen_at else {
        return Ok(false);
    };
    let window = (interval_s as i64) * i64::from(after) * 1_000_000;
    if inst.air_gapped || inst.silent_since.is_some() || now - last <= window {
        return Ok(false);
    }
    inst.silent_since = Some(now);
    save(ctx, id, &inst)?;
    ctx.audit(
        "install.silent.v1",
        &Subject::platform("install", id),
        json!({
            "last_seen_at": rfc3339_micros(from_micros(last)),
            "last_seq": inst.last_seq,
            "interval_s": interval_s,
            "missed_intervals": (now - last) / (interval_s as i64 * 1_000_000).max(1),
        }),
    )?;
    Ok(true)
}

/// `(id, record)` of every install, in registration order.
pub fn all(r: &impl Reader) -> Result<Vec<(Uuid, InstallV1)>> {
    let mut out = Vec::new();
    r.scan(
        INSTALLS,
        &crate::store::Range::all(),
        crate::store::Dir::Asc,
        &mut |k, v| {
            if let (Ok(id), Ok(InstallRecord::V1(i))) = (
                Uuid::from_slice(k),
                crate::store::codec::decode::<InstallRecord>(INSTALLS.name(), v),
            ) {
                out.push((id, i));
            }
            Ok(std::ops::ControlFlow::Continue(()))
        },
    )?;
    Ok(out)
}

/// Tenants of the newest heartbeat as a map.
pub fn tenants_map(i: &InstallV1) -> Option<BTreeMap<String, u64>> {
    i.tenants.as_ref().map(|t| t.iter().cloned().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(hash: u8, hb: u64) -> WitnessRecord {
        WitnessRecord::V1 {
            hash: [hash; 32],
            heartbeat_seq: hb,
            witnessed_at: 0,
        }
    }
    fn top(seq: u64, hash: u8, hb: u64) -> HeadWitness {
        HeadWitness::V1 {
            seq,
            hash: [hash; 32],
            heartbeat_seq: hb,
            witnessed_at: 0,
        }
    }

    #[test]
    fn the_witness_flags_a_changed_hash_at_a_witnessed_seq() {
        let got = judge(Some(&w(1, 3)), Some(&top(10, 1, 3)), 4, 10, &[2; 32]);
        assert_eq!(got.map(|g| g.0), Some(ContradictionKind::Rewritten));
        assert_eq!(
            judge(Some(&w(1, 3)), Some(&top(10, 1, 3)), 4, 10, &[1; 32]),
            None
        );
    }

    #[test]
    fn the_witness_flags_a_chain_that_went_backwards_in_either_arrival_order() {
        // Heartbeat 5 saw seq 10; heartbeat 6 reports seq 8.
        let got = judge(None, Some(&top(10, 1, 5)), 6, 8, &[2; 32]);
        assert_eq!(got.map(|g| g.0), Some(ContradictionKind::WentBackwards));
        // Heartbeat 6 saw seq 8; heartbeat 5 arrives late reporting seq 10.
        let got = judge(None, Some(&top(8, 1, 6)), 5, 10, &[2; 32]);
        assert_eq!(got.map(|g| g.0), Some(ContradictionKind::WentBackwards));
    }

    #[test]
    fn growth_and_late_arrivals_of_lower_heads_are_consistent() {
        assert_eq!(judge(None, Some(&top(10, 1, 5)), 6, 12, &[2; 32]), None);
        assert_eq!(judge(None, Some(&top(10, 1, 5)), 4, 9, &[2; 32]), None);
        assert_eq!(judge(None, None, 1, 1, &[2; 32]), None);
    }

    #[test]
    fn registration_input_is_checked_field_by_field() {
        let err = InstallDraft {
            customer: " ".into(),
            expires_at: Some("tomorrow".into()),
            max_tenants: Some(0),
            features: Some(vec!["Bad Name".into()]),
            install_public_key: Some("xx".into()),
            ..InstallDraft::default()
        }
        .parse()
        .unwrap_err();
        let Error::Validation(fields) = err else {
            panic!("{err}")
        };
        let names: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(
            names,
            [
                "customer",
                "expires_at",
                "limits.max_tenants",
                "features",
                "install_public_key"
            ]
        );
    }
}
