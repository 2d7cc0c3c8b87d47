//! The append-only, SHA-256 hash-chained audit ledger, exactly as AUDIT.md (format v1).
//!
//! - [`canonical`]: RFC 8785 canonical bytes.
//! - [`model`]: chain ids, targets, stored heads and checkpoints, entry views.
//! - [`ledger`]: append (in the caller's write transaction), reads, browse, checkpoint storage.
//! - [`verify`]: walking a chain from its last good checkpoint (or from seq 1).
//! - [`signing`]: the install's Ed25519 key and checkpoint signatures.
//! - [`api`]: the `/api/audit` routes.
//!
//! The async operations here combine a read snapshot (verification can be long, so it never runs
//! on the writer thread) with a short write that stores the signature.

pub mod api;
pub mod canonical;
pub mod ledger;
pub mod model;
pub mod queries;
mod scan;
pub mod signing;
pub mod verify;
pub mod views;

use std::ops::ControlFlow;
use std::sync::Arc;

use bytes::Bytes;

use crate::actor::Actor;
use chrono::{DateTime, Utc};

use crate::clock::rfc3339_micros;
use crate::error::{Error, Result};
use crate::store::{Dir, Range, Reader, Store};
pub use model::{ChainId, Checkpoint, EntryView, Target};
use model::{CheckpointRecord, HeadRecord};
use signing::{InstallKey, KeyRing};
pub use verify::{ChainReport, Mode};

use crate::http::context::{Context, NavItem};
use crate::rbac::{Access, Permission, Route, Scope};

/// The audit context: its routes, pages, permission entries, sidebar items and events.
pub const CONTEXT: Context = Context {
    name: "audit",
    tags: &[("audit", "Hash-chained audit ledger")],
    api: api::router,
    views: views::router,
    routes: ROUTES,
    nav: &[
        NavItem::new("/platform/audit", "Audit", Permission::Read),
        NavItem::tenant("/tenant/{tenant_id}/audit", "Audit", Scope::AuditRead).order(90),
    ],
    events: &[],
    ..Context::EMPTY
};

/// The permission entry of every route of this context.
const ROUTES: &[Route] = {
    use Access::*;
    use Permission::*;
    &[
        ("GET", "/api/audit", Requires(Read)),
        ("POST", "/api/audit/verify", Requires(AuditVerify)),
        ("POST", "/api/audit/checkpoints", Requires(AuditVerify)),
        ("GET", "/api/audit/checkpoints", Requires(Read)),
        ("GET", "/api/audit/export", Requires(AuditExport)),
        ("GET", "/api/audit/public-key", Requires(Read)),
        (
            "GET",
            "/api/tenants/{id}/audit",
            Tenant(Scope::AuditRead, Read),
        ),
        (
            "POST",
            "/api/tenants/{id}/audit/verify",
            Tenant(Scope::AuditRead, AuditVerify),
        ),
        ("GET", "/platform/audit", Requires(Read)),
        ("POST", "/platform/audit/verify", Requires(AuditVerify)),
        ("POST", "/platform/audit/checkpoint", Requires(AuditVerify)),
        (
            "GET",
            "/tenant/{tenant_id}/audit",
            Tenant(Scope::AuditRead, Read),
        ),
        (
            "POST",
            "/tenant/{tenant_id}/audit/verify",
            Tenant(Scope::AuditRead, AuditVerify),
        ),
    ]
};

/// Verifies `chain` (or every chain), then signs a new checkpoint at the head of each chain that
/// verified and moved since its last checkpoint (AUDIT.md: "Verify walks from the last
/// checkpoint that verified to the head, then signs a new checkpoint").
///
/// Errors: 404 when `chain` has no entries.
pub async fn verify_and_checkpoint(
    store: &Store,
    now: DateTime<Utc>,
    key: &Arc<InstallKey>,
    chain: Option<ChainId>,
    mode: Mode,
) -> Result<Vec<ChainReport>> {
    let reports = verify(store, key, chain, mode).await?;
    if chain.is_none() {
        record_verify(store, now, &reports).await?;
    }
    let to_sign: Vec<(ChainId, u64, [u8; 32])> = reports
        .iter()
        .filter(|r| r.ok && r.head_seq > 0)
        .filter_map(|r| {
            let hash: [u8; 32] = hex::decode(&r.head_hash).ok()?.try_into().ok()?;
            Some((ChainId::parse(&r.chain).ok()?, r.head_seq, hash))
        })
        .collect();
    sign_heads(store, now, key, to_sign).await?;
    Ok(reports)
}

/// Where the summary of the last verification of every chain is kept.
pub const LAST_VERIFY: crate::store::Table = crate::store::Table::new("audit_last_verify");

/// The outcome of the last verification of every chain (the console's verification badge).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct VerifySummary {
    /// When it ran.
    pub at: DateTime<Utc>,
    /// Chains checked.
    pub chains: u64,
    /// Chains that failed.
    pub broken: u64,
    /// The first broken chain and its first bad seq.
    pub first_broken: Option<(String, u64)>,
}

/// The stored form of [`VerifySummary`].
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
enum VerifySummaryRecord {
    V1 {
        at: i64,
        chains: u64,
        broken: u64,
        first_broken: Option<(String, u64)>,
    },
}

async fn record_verify(store: &Store, now: DateTime<Utc>, reports: &[ChainReport]) -> Result<()> {
    let broken: Vec<&ChainReport> = reports.iter().filter(|r| !r.ok).collect();
    let first_broken = broken
        .first()
        .map(|r| (r.chain.clone(), r.first_bad_seq.unwrap_or(0)));
    store_summary(
        store,
        now,
        reports.len() as u64,
        broken.len() as u64,
        first_broken,
    )
    .await
}

async fn store_summary(
    store: &Store,
    now: DateTime<Utc>,
    chains: u64,
    broken: u64,
    first_broken: Option<(String, u64)>,
) -> Result<()> {
    let rec = VerifySummaryRecord::V1 {
        at: crate::clock::to_micros(now),
        chains,
        broken,
        first_broken,
    };
    store
        .write(now, Actor::system("audit"), move |ctx| {
            ctx.put_record(LAST_VERIFY, b"all", &rec)?;
            Ok(())
        })
        .await
}

/// The last verification of every chain, if one ran.
pub fn last_verify(r: &impl Reader) -> Result<Option<VerifySummary>> {
    Ok(r.get_record::<VerifySummaryRecord>(LAST_VERIFY, b"all")?
        .map(
            |VerifySummaryRecord::V1 {
                 at,
                 chains,
                 broken,
                 first_broken,
             }| VerifySummary {
                at: crate::clock::from_micros(at),
                chains,
                broken,
                first_broken,
            },
        ))
}

/// The daily `verify_ledger` job: verifies every chain from seq 1 ([`Mode::Full`]: hashes,
/// links, `data` against `data_sha256`, shreds, checkpoints) in one read snapshot, records the
/// summary the dashboard shows ([`last_verify`]), and signs nothing. Returns a one-line summary.
///
/// Errors: 409 `chain_broken` naming the broken chains' count and the first one's first bad
/// seq (the run is recorded as failed); storage errors.
pub async fn verify_ledger(
    store: &Store,
    now: DateTime<Utc>,
    key: &Arc<InstallKey>,
) -> Result<String> {
    let ring = KeyRing::new([key.public()]);
    // Counts and the first broken report (in the chains' key order) only: the number of chains
    // is unbounded.
    let (chains, entries, broken, first) = store
        .read(move |r| {
            let tally = std::sync::Mutex::new((0u64, 0u64, 0u64, None::<ChainReport>));
            verify::verify_all_full(r, &ring, verify::threads(), &|_, report| {
                let mut t = tally
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                t.0 += 1;
                t.1 += report.entries_checked;
                if !report.ok {
                    t.2 += 1;
                    if t.3.as_ref().is_none_or(|f| report.chain < f.chain) {
                        t.3 = Some(report);
                    }
                }
            })?;
            Ok::<_, Error>(
                tally
                    .into_inner()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            )
        })
        .await?;
    let first_broken = first
        .as_ref()
        .map(|r| (r.chain.clone(), r.first_bad_seq.unwrap_or(0)));
    store_summary(store, now, chains, broken, first_broken).await?;
    match first {
        Some(b) => Err(Error::conflict(
            crate::audit::model::CHAIN_BROKEN,
            format!(
                "{broken} of {chains} chain(s) do not verify from seq 1, first {} at seq {}: {}",
                b.chain,
                b.first_bad_seq.unwrap_or(0),
                b.problem.unwrap_or_default()
            ),
        )),
        None => Ok(format!(
            "verified {chains} chain(s) from seq 1 ({entries} entries); all verify"
        )),
    }
}

/// Verifies without signing anything (offline CLI, and tests).
pub async fn verify(
    store: &Store,
    key: &Arc<InstallKey>,
    chain: Option<ChainId>,
    mode: Mode,
) -> Result<Vec<ChainReport>> {
    let ring = KeyRing::new([key.public()]);
    store
        .read(move |r| {
            let chains: Vec<ChainId> = match chain {
                Some(c) => {
                    if ledger::head(r, &c)?.is_none() {
                        return Err(Error::not_found("chain", c.to_string()));
                    }
                    vec![c]
                }
                None if mode == Mode::Full => return verify::all_full_reports(r, &ring),
                None => ledger::all_heads(r)?.into_iter().map(|(c, _)| c).collect(),
            };
            chains
                .iter()
                .map(|c| verify::verify_chain(r, c, &ring, mode))
                .collect()
        })
        .await
}

/// Signs `(seq, hash)` for each chain unless a checkpoint at or beyond `seq` exists. The entry
/// must still carry that hash when the signature is stored; the write re-checks it.
async fn sign_heads(
    store: &Store,
    now: DateTime<Utc>,
    key: &Arc<InstallKey>,
    heads: Vec<(ChainId, u64, [u8; 32])>,
) -> Result<Vec<Checkpoint>> {
    if heads.is_empty() {
        return Ok(Vec::new());
    }
    let key = key.clone();
    store
        .write(now, Actor::system("audit"), move |ctx| {
            let mut out = Vec::new();
            for (chain, seq, hash) in &heads {
                let existing = ledger::last_checkpoint(ctx, chain)?;
                if let Some(cp @ CheckpointRecord::V1 { seq: cp_seq, .. }) = &existing
                    && cp_seq >= seq
                {
                    out.push(signing::publish(chain, cp));
                    continue;
                }
                let still = ctx
                    .get(ledger::ENTRIES, &ledger::entry_key(chain, *seq))?
                    .is_some_and(|s| s.get(..32) == Some(hash.as_slice()));
                if !still {
                    continue;
                }
                let record = key.sign_checkpoint(chain, *seq, *hash, rfc3339_micros(ctx.now));
                ledger::put_checkpoint(ctx, chain, &record)?;
                out.push(signing::publish(chain, &record));
            }
            Ok(out)
        })
        .await
}

/// `POST /api/audit/checkpoints`: verifies `chain` from its last good checkpoint and signs its
/// head. Returns the newest checkpoint (an existing one when the head has not moved).
///
/// Errors: 404 unknown chain; 409 `chain_broken` naming the first bad seq.
pub async fn checkpoint(
    store: &Store,
    now: DateTime<Utc>,
    key: &Arc<InstallKey>,
    chain: ChainId,
) -> Result<Checkpoint> {
    let report = verify(store, key, Some(chain), Mode::FromCheckpoint)
        .await?
        .pop()
        .ok_or_else(|| Error::not_found("chain", chain.to_string()))?;
    if !report.ok {
        return Err(Error::conflict(
            crate::audit::model::CHAIN_BROKEN,
            format!(
                "chain {chain} does not verify (first bad seq {}: {}); it will not be signed",
                report.first_bad_seq.unwrap_or(0),
                report.problem.unwrap_or_default()
            ),
        ));
    }
    let hash: [u8; 32] = hex::decode(&report.head_hash)
        .ok()
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| Error::Internal("head hash is not 32 bytes".into()))?;
    sign_heads(store, now, key, vec![(chain, report.head_seq, hash)])
        .await?
        .pop()
        .ok_or_else(|| {
            Error::conflict(
                crate::error::CONFLICT,
                format!("chain {chain} moved while it was being signed; retry"),
            )
        })
}

/// What the `checkpoint_chains` job did.
#[derive(Debug, Default)]
pub struct CheckpointSummary {
    /// Chains signed.
    pub signed: usize,
    /// Chains that failed verification (left unsigned), with their report.
    pub broken: Vec<ChainReport>,
}

/// Signs every chain whose head moved since its last checkpoint, after verifying the new
/// segment. Broken chains are reported, never signed.
pub async fn checkpoint_dirty(
    store: &Store,
    now: DateTime<Utc>,
    key: &Arc<InstallKey>,
) -> Result<CheckpointSummary> {
    let ring = KeyRing::new([key.public()]);
    let reports = store
        .read(move |r| {
            ledger::dirty_chains(r)?
                .iter()
                .map(|c| verify::verify_chain(r, c, &ring, Mode::FromCheckpoint))
                .collect::<Result<Vec<_>>>()
        })
        .await?;
    let mut summary = CheckpointSummary::default();
    let mut heads = Vec::new();
    for r in reports {
        if r.ok {
            let hash = hex::decode(&r.head_hash)
                .ok()
                .and_then(|h| <[u8; 32]>::try_from(h).ok());
            if let (Ok(c), Some(h)) = (ChainId::parse(&r.chain), hash) {
                heads.push((c, r.head_seq, h));
            }
        } else {
            summary.broken.push(r);
        }
    }
    summary.signed = sign_heads(store, now, key, heads).await?.len();
    Ok(summary)
}

/// The published checkpoints of `chain`, oldest first.
pub async fn list_checkpoints(store: &Store, chain: ChainId) -> Result<Vec<Checkpoint>> {
    store
        .read(move |r| {
            Ok(ledger::checkpoints(r, &chain)?
                .iter()
                .map(|cp| signing::publish(&chain, cp))
                .collect())
        })
        .await
}

/// Streams `chain` as NDJSON (AUDIT.md "Export") from one consistent snapshot: one line
/// `{"entry": <envelope bytes as stored>, "hash": "<hex>", "data": <data> | null}` per entry in
/// seq order, then one `{"checkpoint": {...}}` line per checkpoint. Chunks of about 64 KiB.
///
/// Errors: 404 when the chain has no entries (checked before streaming starts).
/// Errors: 503 `busy` when `exports` has no free slot ([`crate::export`]).
pub async fn export(
    store: &Store,
    exports: &crate::export::Exports,
    chain: ChainId,
) -> Result<tokio::sync::mpsc::Receiver<Result<Bytes>>> {
    let exists = store
        .read(move |r| Ok::<_, Error>(ledger::head(r, &chain)?.is_some()))
        .await?;
    if !exists {
        return Err(Error::not_found("chain", chain.to_string()));
    }
    let (tx, rx) = exports.channel::<Result<Bytes>>()?;
    let store = store.clone();
    tokio::task::spawn_blocking(move || {
        let result = store.read_blocking(|r| write_export(r, &chain, &tx));
        if let Err(e) = result {
            let _ = tx.send_blocking(Err(e));
        }
    });
    Ok(rx)
}

/// Writes the export of `chain` into `tx` in chunks; stops quietly if the receiver is gone.
fn write_export(
    r: &impl Reader,
    chain: &ChainId,
    tx: &crate::export::ExportSink<Result<Bytes>>,
) -> Result<()> {
    const CHUNK: usize = 64 * 1024;
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK + 4096);
    let mut gone = false;
    let mut flush = |buf: &mut Vec<u8>, force: bool| {
        if !gone && (force || buf.len() >= CHUNK) && !buf.is_empty() {
            let chunk = Bytes::from(std::mem::take(buf));
            gone = !tx.send_blocking(Ok(chunk));
            buf.reserve(CHUNK + 4096);
        }
        gone
    };
    let mut failure = None;
    r.scan(
        ledger::ENTRIES,
        &Range::prefix(&chain.key()),
        Dir::Asc,
        &mut |key, stored| {
            let Some((hash, env)) = ledger::split_stored(stored) else {
                failure = Some(Error::Internal(format!(
                    "entry {key:?} is shorter than its hash"
                )));
                return Ok(ControlFlow::Break(()));
            };
            let data = r.get(ledger::DATA, key)?;
            buf.extend_from_slice(b"{\"entry\":");
            buf.extend_from_slice(env);
            buf.extend_from_slice(b",\"hash\":\"");
            buf.extend_from_slice(hex::encode(hash).as_bytes());
            buf.extend_from_slice(b"\",\"data\":");
            buf.extend_from_slice(data.as_deref().unwrap_or(b"null"));
            buf.extend_from_slice(b"}\n");
            Ok(if flush(&mut buf, false) {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            })
        },
    )?;
    if let Some(e) = failure {
        return Err(e);
    }
    for cp in ledger::checkpoints(r, chain)? {
        let line = serde_json::json!({ "checkpoint": signing::publish(chain, &cp) });
        buf.extend_from_slice(line.to_string().as_bytes());
        buf.push(b'\n');
    }
    flush(&mut buf, true);
    Ok(())
}

/// Head `(seq, hash hex)` of every chain: the witness heads a heartbeat carries.
pub async fn heads(store: &Store) -> Result<Vec<(ChainId, u64, String)>> {
    store
        .read(|r| {
            Ok(ledger::all_heads(r)?
                .into_iter()
                .map(|(c, HeadRecord::V1 { seq, hash, .. })| (c, seq, hex::encode(hash)))
                .collect())
        })
        .await
}
