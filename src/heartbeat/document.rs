//! What a heartbeat says (HEARTBEATS.md "Heartbeat").
//!
//! Work that scans is done first, on a read snapshot ([`snapshot`]): which chains to report, the
//! failed job runs, the free disk. The document itself is built inside the outbox write
//! ([`build`]), so its `seq`, counts and heads are those of the transaction that stores it.
//!
//! **Which heads.** A heartbeat carries the platform chain's head, and the head of every chain
//! whose `(seq, hash)` differs from what an earlier heartbeat in the outbox or delivered already
//! reported (`hb_reported`), at most [`MAX_HEADS`] per heartbeat, least recently reported first.
//! Every head ever held by the ledger therefore reaches the control plane, with no heartbeat
//! growing with the number of tenants: at 100,000 tenants, full heads would make each heartbeat
//! about 12 MB. When the backlog policy drops a heartbeat, its heads are forgotten as reported,
//! so a later heartbeat carries them again.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use chrono::{DateTime, Datelike, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::audit::ChainId;
use crate::audit::ledger::{self, HEADS};
use crate::audit::model::HeadRecord;
use crate::clock::rfc3339_micros;
use crate::error::Result;
use crate::license::gate::{self, Gate};
use crate::scheduler::job::Job;
use crate::scheduler::runs::{self, Outcome, RUNS_KEPT};
use crate::state::AppState;
use crate::store::{Dir, Range, Reader, Table, WriteCtx, codec};
use crate::tenants::model::State;

/// Last head reported per chain: `chain key (17 bytes) -> ReportedRecord`.
pub const REPORTED: Table = Table::new("hb_reported");

/// Most audit heads in one heartbeat (about 130 bytes each).
pub const MAX_HEADS: usize = 200;

/// A chain head: `(chain, seq, hash)`.
pub type Head = (ChainId, u64, [u8; 32]);

/// A head as last reported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReportedRecord {
    /// Version 1.
    V1 {
        /// Reported seq.
        seq: u64,
        /// Reported hash.
        hash: [u8; 32],
        /// The heartbeat that reported it.
        heartbeat_seq: u64,
    },
}

/// What the heartbeat needs from scans done before its write.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Chains to report, platform first, at most [`MAX_HEADS`].
    pub chains: Vec<ChainId>,
    /// Failed job runs in the last 24 hours.
    pub failed_jobs_24h: u64,
    /// Free bytes on the data dir's file system.
    pub free_disk_bytes: u64,
    /// The clock when the snapshot was taken.
    pub now: DateTime<Utc>,
}

/// Scans for the next heartbeat: chains whose head moved since it was last reported, failed
/// job runs, free disk.
pub async fn snapshot(state: &AppState) -> Result<Snapshot> {
    let now = state.clock().now();
    let jobs: Vec<Job> = state.scheduler().jobs().collect();
    let day_ago = now - chrono::Duration::hours(24);
    let (chains, failed) = state
        .read(move |r| {
            let mut due: Vec<(u64, ChainId)> = Vec::new();
            r.scan(HEADS, &Range::all(), Dir::Asc, &mut |k, v| {
                let (Some(chain), Ok(HeadRecord::V1 { seq, hash, .. })) = (
                    ChainId::from_key(k),
                    codec::decode::<HeadRecord>(HEADS.name(), v),
                ) else {
                    return Ok(ControlFlow::Continue(()));
                };
                let reported: Option<ReportedRecord> = r.get_record(REPORTED, k)?;
                let last = match reported {
                    Some(ReportedRecord::V1 {
                        seq: s,
                        hash: h,
                        heartbeat_seq,
                    }) => {
                        if s == seq && h == hash && chain != ChainId::Platform {
                            return Ok(ControlFlow::Continue(()));
                        }
                        heartbeat_seq
                    }
                    None => 0,
                };
                // The platform chain always goes first.
                let rank = if chain == ChainId::Platform {
                    0
                } else {
                    last + 1
                };
                due.push((rank, chain));
                Ok(ControlFlow::Continue(()))
            })?;
            due.sort();
            let chains: Vec<ChainId> = due.into_iter().take(MAX_HEADS).map(|(_, c)| c).collect();
            let mut failed = 0u64;
            for job in jobs {
                failed += runs::runs(r, job, RUNS_KEPT)?
                    .iter()
                    .filter(|run| run.outcome == Outcome::Failed && run.started_at >= day_ago)
                    .count() as u64;
            }
            Ok::<_, crate::error::Error>((chains, failed))
        })
        .await?;
    Ok(Snapshot {
        chains,
        failed_jobs_24h: failed,
        free_disk_bytes: free_disk_bytes(&state.config().data_dir),
        now,
    })
}

/// Free bytes available to unprivileged users on the file system of `dir`; 0 when unknown.
pub fn free_disk_bytes(dir: &std::path::Path) -> u64 {
    rustix::fs::statvfs(dir)
        .map(|s| s.f_bavail.saturating_mul(s.f_frsize))
        .unwrap_or(0)
}

/// Builds the heartbeat `seq` inside the outbox write, recording its heads as reported.
/// Returns the document and the heads it carries.
pub fn build(
    ctx: &mut WriteCtx<'_>,
    gate: &Gate,
    seq: u64,
    snapshot: &Snapshot,
    started_at: DateTime<Utc>,
) -> Result<(Value, Vec<Head>)> {
    let mut heads = Vec::with_capacity(snapshot.chains.len());
    for chain in &snapshot.chains {
        if let Some(HeadRecord::V1 { seq: s, hash, .. }) = ledger::head(ctx, chain)? {
            heads.push((*chain, s, hash));
            ctx.put_record(
                REPORTED,
                &chain.key(),
                &ReportedRecord::V1 {
                    seq: s,
                    hash,
                    heartbeat_seq: seq,
                },
            )?;
        }
    }
    let summary = crate::tenants::queries::summary(ctx)?;
    let tenants: BTreeMap<&str, u64> = State::ALL
        .iter()
        .map(|s| {
            (
                s.as_str(),
                summary.by_state.get(s.as_str()).copied().unwrap_or(0),
            )
        })
        .collect();
    let now = ctx.now;
    let doc = json!({
        "install_id": gate.install_id.map(|i| i.to_string()),
        "license_id": gate.license_id.map(|i| i.to_string()),
        "seq": seq,
        "sent_at": rfc3339_micros(now),
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": (now - started_at).num_seconds().max(0),
        "tenants": tenants,
        "usage": {
            "period": format!("{:04}-{:02}", now.year(), now.month()),
            "tenants_in_use": gate::tenants_in_use(ctx)?,
        },
        "health": {
            "store_ok": true,
            "failed_jobs_24h": snapshot.failed_jobs_24h,
            "free_disk_bytes": snapshot.free_disk_bytes,
        },
        "llm_probe": Value::Null,
        "audit_heads": heads
            .iter()
            .map(|(c, s, h)| json!({"chain": c.to_string(), "seq": s, "hash": hex::encode(h)}))
            .collect::<Vec<_>>(),
    });
    Ok((doc, heads))
}

/// Forgets that the heads of a dropped heartbeat were reported, unless a later heartbeat
/// reported them again.
pub fn unreport(
    ctx: &mut WriteCtx<'_>,
    heartbeat_seq: u64,
    heads: &[(Vec<u8>, u64, [u8; 32])],
) -> Result<()> {
    for (key, _, _) in heads {
        if let Some(ReportedRecord::V1 {
            heartbeat_seq: by, ..
        }) = ctx.get_record::<ReportedRecord>(REPORTED, key)?
            && by == heartbeat_seq
        {
            ctx.delete(REPORTED, key)?;
        }
    }
    Ok(())
}
