//! The read model of the install registry (control plane), shared by `/api/installs` and the
//! console's installs pages: the registry (red for silent or expired), an install's detail
//! (heartbeat history, witnessed heads, contradictions). Each read answers 404 off the
//! control-plane role, like the routes.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::model::*;
use super::service;
use crate::audit::model::ChainId;
use crate::clock::from_micros;
use crate::error::{Error, INVALID_QUERY, Result};
use crate::heartbeat::{Health, LlmProbe};
use crate::state::AppState;
use crate::store::page::{self, Cursor, Scan, Step};
use crate::store::{Dir, Range, Reader, codec};

/// The witness check's verdict on an install.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct WitnessSummary {
    /// `consistent`, or `contradicted` once any later heads contradicted earlier ones.
    pub status: String,
    /// Contradictions found.
    pub contradictions: u64,
}

/// An install in the registry.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct InstallView {
    /// The install.
    pub install_id: Uuid,
    /// The customer.
    pub customer: String,
    /// `pending`, `healthy`, `silent` or `expired`.
    pub status: InstallStatus,
    /// Show it red: silent, expired, or its witness check was contradicted.
    pub alert: bool,
    /// Its license.
    pub license_id: Uuid,
    /// Heartbeats travel only as bundles.
    pub air_gapped: bool,
    /// License issue time.
    pub issued_at: DateTime<Utc>,
    /// License expiry.
    pub expires_at: DateTime<Utc>,
    /// License limits.
    pub limits: InstallLimits,
    /// License features.
    pub features: Vec<String>,
    /// When it was registered.
    pub registered_at: DateTime<Utc>,
    /// When a new heartbeat was last accepted.
    pub last_seen_at: Option<DateTime<Utc>>,
    /// Highest seq received.
    pub last_seq: u64,
    /// `sent_at` of that heartbeat.
    pub last_sent_at: Option<DateTime<Utc>>,
    /// Distinct heartbeats received.
    pub heartbeats_received: u64,
    /// Seqs below `last_seq` never received (dropped by the appliance's backlog policy, or in a
    /// bundle not imported yet).
    pub missing_seqs: u64,
    /// Tenantry version of the newest heartbeat.
    pub version: Option<String>,
    /// LLM probe of the newest heartbeat; null when the install runs none.
    pub llm_probe: Option<LlmProbe>,
    /// `key_id` of the install's bound key; null until bound.
    pub install_key_id: Option<String>,
    /// The bound key itself (standard base64): the appliance's audit checkpoints verify with it
    /// (`scripts/verify_export.py`), as its heartbeats do.
    pub install_public_key: Option<String>,
    /// When the key was bound.
    pub key_bound_at: Option<DateTime<Utc>>,
    /// How it was bound.
    pub key_binding: Option<KeyBinding>,
    /// Silent since (cleared when heartbeats return).
    pub silent_since: Option<DateTime<Utc>>,
    /// The witness check.
    pub witness: WitnessSummary,
    /// Tenants by state, from the newest heartbeat.
    pub tenants: Option<BTreeMap<String, u64>>,
    /// Health, from the newest heartbeat.
    pub health: Option<Health>,
}

/// The registry row of install `id` at `now`.
pub fn view(id: Uuid, i: &InstallV1, now: DateTime<Utc>) -> InstallView {
    let status = i.status(now);
    let key = i
        .key
        .and_then(|k| ed25519_dalek::VerifyingKey::from_bytes(&k).ok());
    InstallView {
        install_id: id,
        customer: i.customer.clone(),
        status,
        alert: matches!(status, InstallStatus::Silent | InstallStatus::Expired)
            || i.contradictions > 0,
        license_id: i.license_id,
        air_gapped: i.air_gapped,
        issued_at: from_micros(i.issued_at),
        expires_at: from_micros(i.expires_at),
        limits: InstallLimits {
            max_tenants: i.max_tenants,
        },
        features: i.features.clone(),
        registered_at: from_micros(i.registered_at),
        last_seen_at: i.last_seen_at.map(from_micros),
        last_seq: i.last_seq,
        last_sent_at: i.last_sent_at.map(from_micros),
        heartbeats_received: i.received,
        missing_seqs: i.last_seq.saturating_sub(i.received),
        version: i.version.clone(),
        llm_probe: match (&i.llm_status, i.llm_checked_at) {
            (Some(status), Some(at)) => Some(LlmProbe {
                status: status.clone(),
                checked_at: from_micros(at),
            }),
            _ => None,
        },
        install_key_id: key.as_ref().map(crate::audit::signing::key_id_of),
        install_public_key: key.as_ref().map(crate::onprem::signed::public_key_b64),
        key_bound_at: i.key_bound_at.map(from_micros),
        key_binding: i.key_binding,
        silent_since: i.silent_since.map(from_micros),
        witness: WitnessSummary {
            status: if i.contradictions > 0 {
                "contradicted".into()
            } else {
                "consistent".into()
            },
            contradictions: i.contradictions,
        },
        tenants: service::tenants_map(i),
        health: i
            .health
            .map(|(store_ok, failed_jobs_24h, free_disk_bytes)| Health {
                store_ok,
                failed_jobs_24h,
                free_disk_bytes,
            }),
    }
}

/// The limits of an install's license.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct InstallLimits {
    /// Most tenants at once; null: no limit.
    pub max_tenants: Option<u64>,
}

/// Filters of the registry (`GET /api/installs`), as text.
#[derive(Clone, Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct InstallsFilter {
    /// Only installs in this status: `pending`, `healthy`, `silent` or `expired`.
    pub status: Option<String>,
    /// Only installs to show red (`true`).
    pub alert: Option<bool>,
    /// Page size, 1–500 (default 50).
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Paging of an install's heartbeats or witnessed heads, as text.
#[derive(Clone, Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PageFilter {
    /// Page size, 1–500 (default 50).
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageFilter {
    fn parse(&self) -> Result<(usize, Option<Cursor>)> {
        Ok((
            page::limit(self.limit)?,
            self.cursor.as_deref().map(Cursor::decode).transpose()?,
        ))
    }
}

/// A page of the registry.
#[derive(Serialize, utoipa::ToSchema)]
pub struct InstallList {
    /// Installs, newest registration first.
    pub items: Vec<InstallView>,
    /// Where the next page starts; null on the last page.
    pub next_cursor: Option<String>,
}

/// A page of the registry, newest registration first.
///
/// Errors: 404 off the control-plane role; 400 for a bad query.
pub async fn list(s: &AppState, f: InstallsFilter) -> Result<InstallList> {
    s.onprem().require_control_plane("GET /api/installs")?;
    let (limit, cursor) = PageFilter {
        limit: f.limit,
        cursor: f.cursor,
    }
    .parse()?;
    let status = match f.status.as_deref() {
        None => None,
        Some(x) => Some(InstallStatus::parse(x).ok_or_else(|| {
            Error::bad_request(
                INVALID_QUERY,
                format!("status '{x}' is unknown: use pending, healthy, silent or expired"),
            )
        })?),
    };
    let now = s.clock().now();
    let alert = f.alert;
    let page = s
        .read(move |r| {
            let scan = Scan {
                table: INSTALLS,
                range: Range::all(),
                dir: Dir::Desc,
                limit,
                cursor: cursor.as_ref(),
                budget: None,
            };
            page::page(r, scan, |k, v| -> Result<Step<InstallView>> {
                let Ok(id) = Uuid::from_slice(k) else {
                    return Ok(Step::Skip);
                };
                let InstallRecord::V1(i) = codec::decode(INSTALLS.name(), v)?;
                let v = view(id, &i, now);
                let keep =
                    status.is_none_or(|st| v.status == st) && alert.is_none_or(|a| v.alert == a);
                Ok(if keep { Step::Keep(v) } else { Step::Skip })
            })
        })
        .await?;
    Ok(InstallList {
        items: page.items,
        next_cursor: page.next.map(|c| c.encode()),
    })
}

/// One witness contradiction.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ContradictionView {
    /// The chain.
    pub chain: String,
    /// `rewritten` (same seq, another hash) or `went_backwards` (a later heartbeat reports a
    /// lower head).
    pub kind: ContradictionKind,
    /// The seq now reported.
    pub reported_seq: u64,
    /// The hash now reported.
    pub reported_hash: String,
    /// The heartbeat reporting it.
    pub reported_in_heartbeat: u64,
    /// The earlier witnessed seq it contradicts.
    pub witnessed_seq: u64,
    /// The earlier witnessed hash.
    pub witnessed_hash: String,
    /// The heartbeat that reported it.
    pub witnessed_in_heartbeat: u64,
    /// When it was found.
    pub detected_at: DateTime<Utc>,
}

/// An install's detail.
#[derive(Serialize, utoipa::ToSchema)]
pub struct InstallDetail {
    /// The registry row.
    #[serde(flatten)]
    pub install: InstallView,
    /// The signed license as issued (to hand to the customer again).
    #[schema(value_type = Object)]
    pub license: Value,
    /// Witness contradictions, newest first (at most 100).
    pub contradictions: Vec<ContradictionView>,
    /// Chains with witnessed heads (`GET /api/installs/{id}/audit-heads` lists them).
    pub witnessed_chains: u64,
    /// The pending enrollment (its verifier's key id, never the secret); null once a key is
    /// bound, which uses it up, or when none was issued.
    pub enrollment: Option<PendingEnrollment>,
}

/// A pending enrollment, as the API shows it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PendingEnrollment {
    /// Key id of the secret's verifier: the license's `enrollment_key_id`.
    pub enrollment_key_id: String,
    /// When the secret was issued.
    pub issued_at: DateTime<Utc>,
}

/// One install's detail (the API route and the console page).
///
/// Errors: 404 off the control-plane role or for an unknown install.
pub async fn detail(s: &AppState, id: Uuid) -> Result<InstallDetail> {
    s.onprem().require_control_plane("GET /api/installs/{id}")?;
    let now = s.clock().now();
    let detail = s
        .read(move |r| {
            let i = service::load(r, &id)?;
            let license: Value = serde_json::from_slice(&i.license)
                .map_err(|e| Error::Internal(format!("stored license: {e}")))?;
            let mut contradictions = Vec::new();
            r.scan(
                CONTRADICTIONS,
                &Range::prefix(&install_key(&id)),
                Dir::Desc,
                &mut |_, v| {
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
                    } = codec::decode(CONTRADICTIONS.name(), v)?;
                    contradictions.push(ContradictionView {
                        chain,
                        kind,
                        reported_seq,
                        reported_hash: hex::encode(reported_hash),
                        reported_in_heartbeat: reported_in,
                        witnessed_seq,
                        witnessed_hash: hex::encode(witnessed_hash),
                        witnessed_in_heartbeat: witnessed_in,
                        detected_at: from_micros(detected_at),
                    });
                    Ok(if contradictions.len() >= 100 {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    })
                },
            )?;
            let enrollment = service::pending_enrollment(r, &id)?.map(
                |super::model::EnrollmentRecord::V1 {
                     verifier,
                     issued_at,
                 }| PendingEnrollment {
                    enrollment_key_id: crate::onprem::enroll::verifier_id_of(&verifier)
                        .unwrap_or_default(),
                    issued_at: from_micros(issued_at),
                },
            );
            let mut chains = 0u64;
            r.scan(
                HEADS,
                &Range::prefix(&install_key(&id)),
                Dir::Asc,
                &mut |_, _| {
                    chains += 1;
                    Ok(ControlFlow::Continue(()))
                },
            )?;
            Ok::<_, Error>(InstallDetail {
                install: view(id, &i, now),
                license,
                enrollment,
                contradictions,
                witnessed_chains: chains,
            })
        })
        .await?;
    Ok(detail)
}

/// A received heartbeat.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ReceivedHeartbeat {
    /// Its seq.
    pub seq: u64,
    /// When the appliance wrote it.
    pub sent_at: Option<String>,
    /// When the control plane accepted it.
    pub received_at: DateTime<Utc>,
    /// Its place in the install's arrival order (1 = first accepted).
    pub arrival: u64,
    /// `online` or `bundle`.
    pub via: Via,
    /// Audit heads it carried.
    pub audit_heads: u64,
    /// The signed heartbeat exactly as received: `{"heartbeat": {...}, "key_id", "sig"}`.
    #[schema(value_type = Object)]
    pub document: Value,
}

/// The seq of an `(install, seq)` key.
fn seq_of(key: &[u8]) -> u64 {
    key.get(16..24)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(0, u64::from_be_bytes)
}

/// A page of heartbeats.
#[derive(Serialize, utoipa::ToSchema)]
pub struct HeartbeatList {
    /// Heartbeats, newest seq first.
    pub items: Vec<ReceivedHeartbeat>,
    /// Where the next page starts; null on the last page.
    pub next_cursor: Option<String>,
}

/// A page of an install's received heartbeats, newest first (the last 10,000 are kept).
///
/// Errors: 404 off the control-plane role or for an unknown install; 400 for a bad cursor.
pub async fn heartbeats(s: &AppState, id: Uuid, f: PageFilter) -> Result<HeartbeatList> {
    s.onprem()
        .require_control_plane("GET /api/installs/{id}/heartbeats")?;
    let (limit, cursor) = f.parse()?;
    let page = s
        .read(move |r| {
            service::load(r, &id)?;
            let scan = Scan {
                table: HEARTBEATS,
                range: Range::prefix(&install_key(&id)),
                dir: Dir::Desc,
                limit,
                cursor: cursor.as_ref(),
                budget: None,
            };
            page::page(r, scan, |k, v| -> Result<Step<ReceivedHeartbeat>> {
                let HeartbeatRecord::V1 {
                    received_at,
                    arrival,
                    via,
                    signed,
                } = codec::decode(HEARTBEATS.name(), v)?;
                let document: Value = serde_json::from_slice(&signed).unwrap_or(Value::Null);
                Ok(Step::Keep(ReceivedHeartbeat {
                    seq: seq_of(k),
                    sent_at: document["heartbeat"]["sent_at"]
                        .as_str()
                        .map(str::to_string),
                    received_at: from_micros(received_at),
                    arrival,
                    via,
                    audit_heads: document["heartbeat"]["audit_heads"]
                        .as_array()
                        .map_or(0, |a| a.len() as u64),
                    document,
                }))
            })
        })
        .await?;
    Ok(HeartbeatList {
        items: page.items,
        next_cursor: page.next.map(|c| c.encode()),
    })
}

/// A witnessed head.
#[derive(Serialize, utoipa::ToSchema)]
pub struct WitnessedHead {
    /// The chain.
    pub chain: String,
    /// The highest seq witnessed.
    pub seq: u64,
    /// Its hash, as witnessed.
    pub hash: String,
    /// The heartbeat that reported it.
    pub heartbeat_seq: u64,
    /// When.
    pub witnessed_at: DateTime<Utc>,
}

/// A page of witnessed heads.
#[derive(Serialize, utoipa::ToSchema)]
pub struct WitnessedHeadList {
    /// Heads, platform first, then tenant chains by id.
    pub items: Vec<WitnessedHead>,
    /// Where the next page starts; null on the last page.
    pub next_cursor: Option<String>,
}

/// A page of an install's witnessed heads: platform first, then tenant chains by id.
///
/// Errors: 404 off the control-plane role or for an unknown install; 400 for a bad cursor.
pub async fn audit_heads(s: &AppState, id: Uuid, f: PageFilter) -> Result<WitnessedHeadList> {
    s.onprem()
        .require_control_plane("GET /api/installs/{id}/audit-heads")?;
    let (limit, cursor) = f.parse()?;
    let page = s
        .read(move |r| {
            service::load(r, &id)?;
            let scan = Scan {
                table: HEADS,
                range: Range::prefix(&install_key(&id)),
                dir: Dir::Asc,
                limit,
                cursor: cursor.as_ref(),
                budget: None,
            };
            page::page(r, scan, |k, v| -> Result<Step<WitnessedHead>> {
                let Some(chain) = k.get(16..).and_then(ChainId::from_key) else {
                    return Ok(Step::Skip);
                };
                let HeadWitness::V1 {
                    seq,
                    hash,
                    heartbeat_seq,
                    witnessed_at,
                } = codec::decode(HEADS.name(), v)?;
                Ok(Step::Keep(WitnessedHead {
                    chain: chain.to_string(),
                    seq,
                    hash: hex::encode(hash),
                    heartbeat_seq,
                    witnessed_at: from_micros(witnessed_at),
                }))
            })
        })
        .await?;
    Ok(WitnessedHeadList {
        items: page.items,
        next_cursor: page.next.map(|c| c.encode()),
    })
}
