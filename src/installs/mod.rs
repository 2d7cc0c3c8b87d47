//! On-prem installs, control-plane side (HEARTBEATS.md "Control-plane routes"; operator guide
//! §9): registering installs and issuing their licenses, taking in heartbeats online and from
//! air-gap bundles, the outside witness of their audit heads, and silence.
//!
//! - [`model`]: stored records and the tables.
//! - [`service`]: the rules, inside one write request each.
//! - [`queries`]: the read model (registry, detail, heartbeats, witnessed heads).
//! - [`api`]: the `/api/installs` routes and their wire types. [`views`]: `/platform/installs`.
//!
//! The async functions here check signatures off the writer thread, then take the delivery in
//! with one write ([`service::intake`]), which re-checks the install's key.
//!
//! **Trust.** An install's key is bound at registration when the operator gives
//! `install_public_key`. Otherwise registration issues a one-time enrollment secret
//! (`onprem::enroll`, shown once; only its verifier is stored), and the key is bound by the first
//! accepted delivery or imported bundle that carries `enrollment_proof`, made with that secret
//! over the install id and the key. The enrollment is consumed in the same transaction, audited
//! as `install.key.bound.v1`; knowing the install id and license id (every Read role does) binds
//! nothing. After that, only that key is accepted. An operator re-issues a secret for an install
//! not bound yet (`install.enrollment.issued.v1`, with a new license naming it).
//!
//! Deliveries are public, so they are limited per install (`onprem::rate`, 429 with
//! `Retry-After`) before any signature is checked, and each heartbeat is held to the sender's
//! caps ([`service::caps`]).

pub mod api;
pub mod model;
pub mod queries;
pub mod service;
pub mod views;

use ed25519_dalek::VerifyingKey;
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::actor::{Actor, ActorKind};
use crate::error::{Error, Result};
use crate::heartbeat::bundle;
use crate::onprem::enroll::EnrollmentSecret;
use crate::onprem::signed;
use crate::state::AppState;
use model::Via;
use service::{Delivery, InstallDraft, IntakeResult, LicenseDraft};

use crate::config::Role as InstallRole;
use crate::http::context::{Context, NavItem};
use crate::rbac::{Access, Permission, Route};

/// The installs context (control plane): its routes, pages, permission entries, sidebar items and events.
pub const CONTEXT: Context = Context {
    name: "installs",
    tags: &[(
        "on-prem",
        "Installs, licenses and heartbeats (HEARTBEATS.md); routes of the other role answer 404",
    )],
    api: api::router,
    views: views::router,
    routes: ROUTES,
    nav: &[
        NavItem::new("/platform/installs", "Installs", Permission::Read)
            .in_role(InstallRole::is_control_plane),
    ],
    events: &[
        "install.registered.v1",
        "license.issued.v1",
        "install.key.bound.v1",
        "install.enrollment.issued.v1",
        "install.witness.contradicted.v1",
        "install.recovered.v1",
        "install.bundle.imported.v1",
        "install.silent.v1",
    ],
    uploads: &[
        (api::BUNDLES_PATH, bundle_limit),
        (views::UPLOAD_PATH, bundle_limit),
    ],
    ..Context::EMPTY
};

/// The permission entry of every route of this context.
const ROUTES: &[Route] = {
    use Access::*;
    use Permission::*;
    &[
        ("POST", "/api/installs", Requires(InstallsManage)),
        ("GET", "/api/installs", Requires(Read)),
        ("GET", "/api/installs/{id}", Requires(Read)),
        (
            "POST",
            "/api/installs/{id}/licenses",
            Requires(InstallsManage),
        ),
        (
            "POST",
            "/api/installs/{id}/enrollment",
            Requires(InstallsManage),
        ),
        ("GET", "/api/installs/{id}/heartbeats", Requires(Read)),
        // Authenticated by the install's Ed25519 signature, not by a token.
        ("POST", "/api/installs/{id}/heartbeats", Public),
        ("GET", "/api/installs/{id}/audit-heads", Requires(Read)),
        (
            "POST",
            "/api/installs/heartbeat-bundles",
            Requires(InstallsManage),
        ),
        ("GET", "/platform/installs", Requires(Read)),
        ("POST", "/platform/installs", Requires(InstallsManage)),
        (
            "POST",
            "/platform/installs/bundles",
            Requires(InstallsManage),
        ),
        ("GET", "/platform/installs/{id}", Requires(Read)),
        (
            "GET",
            "/platform/installs/{id}/license.json",
            Requires(Read),
        ),
        (
            "POST",
            "/platform/installs/{id}/licenses",
            Requires(InstallsManage),
        ),
        (
            "POST",
            "/platform/installs/{id}/enrollment",
            Requires(InstallsManage),
        ),
    ]
};

/// The bundle uploads' body limit, `[installs] bundle_limit_bytes`.
fn bundle_limit(config: &crate::config::Config) -> usize {
    config.installs.bundle_limit_bytes
}

/// Every license ever issued to `inst`.
fn licenses_of(inst: &model::InstallV1) -> Vec<Uuid> {
    let mut all = inst.previous_licenses.clone();
    all.push(inst.license_id);
    all
}

/// The key heartbeats of `install` must be signed with: the bound one, else the one offered.
fn trusted_key(
    install_id: &Uuid,
    bound: Option<[u8; 32]>,
    offered: Option<VerifyingKey>,
) -> Result<VerifyingKey> {
    match (bound, offered) {
        (Some(b), Some(o)) if b != o.to_bytes() => Err(Error::BadSignature(format!(
            "install {install_id} is bound to key {}, but this delivery offers key {}: nothing was stored",
            hex::encode(Sha256::digest(b)),
            crate::audit::signing::key_id_of(&o)
        ))),
        (Some(b), _) => VerifyingKey::from_bytes(&b)
            .map_err(|_| Error::Internal(format!("install {install_id}: stored key is invalid"))),
        (None, Some(o)) => Ok(o),
        (None, None) => Err(Error::BadSignature(format!(
            "install {install_id} has no key yet: the first delivery must carry install_public_key and enrollment_proof (or give the key at registration); nothing was stored"
        ))),
    }
}

/// Takes in an online delivery `{"heartbeats": [...], "install_public_key"?,
/// "enrollment_proof"?}` for `install_id`.
///
/// Errors: 404 unknown install; 403 `install_air_gapped`; 422 for a malformed body or heartbeat,
/// or one over the caps ([`service::caps`]); 401 `signature_invalid` for any heartbeat not
/// signed by the install's key (nothing stored); 403 `install_enrollment_required` /
/// `install_enrollment_invalid` when the install has no key and the proof is missing or wrong;
/// 409 `heartbeat_seq_conflict`.
pub async fn deliver(state: &AppState, install_id: Uuid, body: Value) -> Result<IntakeResult> {
    let Value::Object(mut body) = body else {
        return Err(Error::invalid(
            "body",
            "expected {\"heartbeats\": [signed heartbeats], \"install_public_key\": \"<base64>\"}",
        ));
    };
    let inst = state.read(move |r| service::load(r, &install_id)).await?;
    if inst.air_gapped {
        return Err(Error::denied(
            crate::installs::model::INSTALL_AIR_GAPPED,
            format!(
                "install {install_id} is registered air-gapped and may never reach the control plane: import its heartbeats as a bundle (tenantry heartbeat import FILE)"
            ),
        ));
    }
    if let Some(extra) = body.keys().find(|k| {
        !matches!(
            k.as_str(),
            "heartbeats" | "install_public_key" | "enrollment_proof"
        )
    }) {
        return Err(Error::invalid(
            extra,
            "unknown member: a delivery has \"heartbeats\", \"install_public_key\" and \"enrollment_proof\"",
        ));
    }
    let enrollment_proof = match body.remove("enrollment_proof") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.len() <= 128 => Some(s),
        Some(_) => {
            return Err(Error::invalid(
                "enrollment_proof",
                "must be the standard base64 of a 64-byte signature",
            ));
        }
    };
    let offered = match body.remove("install_public_key") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(signed::public_key_from_b64(&s).ok_or_else(|| {
            Error::invalid(
                "install_public_key",
                "not the standard base64 of a 32-byte Ed25519 key",
            )
        })?),
        Some(_) => {
            return Err(Error::invalid("install_public_key", "must be a string"));
        }
    };
    let heartbeats = match body.remove("heartbeats") {
        Some(Value::Array(a)) if !a.is_empty() && a.len() <= service::MAX_DELIVERY => a,
        _ => {
            return Err(Error::invalid(
                "heartbeats",
                format!(
                    "give 1 to {} signed heartbeats as an array",
                    service::MAX_DELIVERY
                ),
            ));
        }
    };
    let key = trusted_key(&install_id, inst.key, offered)?;
    let licenses = licenses_of(&inst);
    let verified = tokio::task::spawn_blocking(move || {
        service::verify_heartbeats(heartbeats, &key, &install_id, &licenses)
    })
    .await
    .map_err(|e| Error::Internal(format!("verifying heartbeats: {e}")))??;
    let delivery = Delivery {
        via: Via::Online,
        key,
        heartbeats: verified,
        bundle_sha256: None,
        enrollment_proof,
    };
    let actor = Actor {
        kind: ActorKind::Install,
        id: install_id.to_string(),
    };
    state
        .write(actor, move |ctx| {
            service::intake(ctx, &install_id, &delivery)
        })
        .await
}

/// Imports a heartbeat bundle file (`tenantry heartbeat import`, the console's upload): every
/// signature is checked, the bundle's own included, before anything is stored; a repeat import
/// changes nothing.
///
/// Errors: 404 when this process is not a control plane or the install is unknown; 422 over
/// `bundle_limit_bytes`; 400/422 for a file that is not a bundle; 401 `signature_invalid` for an
/// altered bundle or one signed by another key (nothing stored); 409 `heartbeat_seq_conflict`.
pub async fn import_bundle(state: &AppState, actor: Actor, bytes: Vec<u8>) -> Result<IntakeResult> {
    state.onprem().require_control_plane("heartbeat import")?;
    let limit = state.config().installs.bundle_limit_bytes;
    if bytes.len() > limit {
        return Err(Error::invalid(
            "bundle",
            format!(
                "the bundle is {} bytes, over [installs] bundle_limit_bytes ({limit}): raise the limit, or export fewer heartbeats at a time",
                bytes.len()
            ),
        ));
    }
    let sha = hex::encode(Sha256::digest(&bytes));
    let parsed = tokio::task::spawn_blocking(move || bundle::parse(&bytes))
        .await
        .map_err(|e| Error::Internal(format!("parsing the bundle: {e}")))??;
    import_parsed(state, actor, parsed, sha).await
}

/// [`import_bundle`] for a bundle already parsed from a JSON body.
pub async fn import_parsed(
    state: &AppState,
    actor: Actor,
    parsed: bundle::ParsedBundle,
    sha: String,
) -> Result<IntakeResult> {
    let install_id = parsed.install_id;
    let inst = state.read(move |r| service::load(r, &install_id)).await?;
    if !inst.holds(&parsed.license_id) {
        return Err(Error::invalid(
            "bundle",
            format!(
                "the bundle is for license {}, which was never issued to install {install_id}",
                parsed.license_id
            ),
        ));
    }
    let key = trusted_key(&install_id, inst.key, Some(parsed.public_key))?;
    let licenses = licenses_of(&inst);
    let enrollment_proof = parsed.enrollment_proof.clone();
    let verified = tokio::task::spawn_blocking(move || {
        parsed.verify(&key)?;
        let hbs = service::verify_heartbeats(parsed.heartbeats, &key, &install_id, &licenses)
            .map_err(|e| match e {
                Error::BadSignature(m) => {
                    Error::BadSignature(format!("the bundle is refused as a whole: {m}"))
                }
                other => other,
            })?;
        Ok::<_, Error>((key, hbs))
    })
    .await
    .map_err(|e| Error::Internal(format!("verifying the bundle: {e}")))??;
    let (key, heartbeats) = verified;
    let delivery = Delivery {
        via: Via::Bundle,
        key,
        heartbeats,
        bundle_sha256: Some(sha),
        enrollment_proof,
    };
    state
        .write(actor, move |ctx| {
            service::intake(ctx, &install_id, &delivery)
        })
        .await
}

/// Runs the `silent_installs` job: marks silent every online install not heard from for
/// `silent_after_missed` intervals (3 by default). Recovery is written when a heartbeat comes
/// back, in the same transaction that takes it in.
pub async fn silent_installs(
    state: &AppState,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<String> {
    let cfg = state.config().installs.clone();
    let now = crate::clock::to_micros(at);
    let window =
        (cfg.heartbeat_interval_secs as i64) * i64::from(cfg.silent_after_missed) * 1_000_000;
    let all = state.read(service::all).await?;
    let due: Vec<Uuid> = all
        .iter()
        .filter(|(_, i)| {
            !i.air_gapped
                && i.silent_since.is_none()
                && i.last_seen_at.is_some_and(|t| now - t > window)
        })
        .map(|(id, _)| *id)
        .collect();
    let mut marked = 0usize;
    for id in due {
        let interval = cfg.heartbeat_interval_secs;
        let after = cfg.silent_after_missed;
        if state
            .store()
            .write(at, Actor::job("silent_installs"), move |ctx| {
                service::mark_silent(ctx, &id, interval, after)
            })
            .await?
        {
            marked += 1;
        }
    }
    let silent = all.iter().filter(|(_, i)| i.silent_since.is_some()).count() + marked;
    Ok(format!(
        "{marked} install(s) went silent; {silent} silent of {}",
        all.len()
    ))
}

/// Registers an install and issues its license (the API route and the console form). Without
/// `install_public_key`, it also issues the install's enrollment secret, returned once.
///
/// Errors: 404 off the control-plane role; 422 for bad input.
pub async fn register(
    s: &AppState,
    actor: crate::actor::Actor,
    draft: InstallDraft,
) -> Result<service::Registered> {
    s.onprem().require_control_plane("POST /api/installs")?;
    let input = draft.parse()?;
    let secret = EnrollmentSecret::generate().map_err(Error::Internal)?;
    let state = s.clone();
    s.write(actor, move |ctx| {
        let key = state.onprem().license_key()?;
        service::register(ctx, &input, key, &secret)
    })
    .await
}

/// Issues a new enrollment secret (returned once) and a license naming it, to an install whose
/// key is not bound yet (the API route and the console form).
///
/// Errors: 404 off the control-plane role or for an unknown install; 409
/// `install_already_enrolled`.
pub async fn reissue_enrollment(
    s: &AppState,
    actor: crate::actor::Actor,
    id: Uuid,
) -> Result<service::Registered> {
    s.onprem()
        .require_control_plane("POST /api/installs/{id}/enrollment")?;
    let secret = EnrollmentSecret::generate().map_err(Error::Internal)?;
    let state = s.clone();
    s.write(actor, move |ctx| {
        let key = state.onprem().license_key()?;
        service::reissue_enrollment(ctx, &id, &secret, key)
    })
    .await
}

/// Issues a new license to an install (the API route and the console form).
///
/// Errors: 404 off the control-plane role or for an unknown install; 422 for bad input.
pub async fn renew(
    s: &AppState,
    actor: crate::actor::Actor,
    id: Uuid,
    draft: LicenseDraft,
) -> Result<service::Registered> {
    s.onprem()
        .require_control_plane("POST /api/installs/{id}/licenses")?;
    let input = draft.parse()?;
    let state = s.clone();
    s.write(actor, move |ctx| {
        let key = state.onprem().license_key()?;
        service::renew(ctx, &id, &input, key)
    })
    .await
}
