//! The durable heartbeat outbox (HEARTBEATS.md: "in the same transaction as its `seq`").
//!
//! Tables:
//! - `hb_outbox[seq]` = [`OutboxRecord`]: the signed heartbeat's canonical bytes, waiting for
//!   delivery (online, or by a bundle and `tenantry heartbeat ack`);
//! - `hb_state["state"]` = [`SyncRecord`]: the next seq and the delivery counters.
//!
//! **Bounded backlog: drop the oldest.** The outbox holds at most `backlog_max` heartbeats
//! (`[control_plane] backlog_max`, 2016 by default: one week at one every 5 minutes). Writing one
//! more removes the oldest undelivered heartbeat first, counts it in `dropped_total`, and forgets
//! its audit heads as reported so the next heartbeat carries them again. The newest heartbeats
//! are the ones worth keeping (current health, current heads); the control plane sees the hole
//! as missing seqs. Seqs are never reused, so a dropped seq stays missing.

use std::ops::ControlFlow;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::document::{self, Snapshot};
use crate::audit::ledger::{Audit, Subject};
use crate::audit::signing::InstallKey;
use crate::clock::{from_micros, to_micros};
use crate::error::{Error, Result};
use crate::license::LicenseState;
use crate::license::gate;
use crate::onprem::signed;
use crate::store::keys::Key;
use crate::store::{Dir, Range, Reader, Table, WriteCtx, codec};

/// Undelivered heartbeats: `seq (u64 BE) -> OutboxRecord`.
pub const OUTBOX: Table = Table::new("hb_outbox");
/// Sender state: `state -> SyncRecord`.
pub const STATE: Table = Table::new("hb_state");

const STATE_KEY: &[u8] = b"state";

/// One undelivered heartbeat.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum OutboxRecord {
    /// Version 1.
    V1 {
        /// When it was written, microseconds.
        created_at: i64,
        /// Canonical bytes of the signed heartbeat `{"heartbeat", "key_id", "sig"}`.
        signed: Vec<u8>,
        /// The heads it reports `(chain key, seq, hash)`, to forget them if it is dropped.
        heads: Vec<(Vec<u8>, u64, [u8; 32])>,
    },
}

/// Counters of the outbox.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncRecord {
    /// Version 1.
    V1 {
        /// The seq the next heartbeat takes (from 1).
        next_seq: u64,
        /// Highest seq the control plane acknowledged.
        last_delivered_seq: u64,
        /// When it last acknowledged, microseconds.
        last_delivered_at: Option<i64>,
        /// Heartbeats delivered online.
        delivered_total: u64,
        /// Heartbeats removed by `heartbeat ack` after a bundle import.
        acknowledged_total: u64,
        /// Heartbeats dropped by the backlog policy.
        dropped_total: u64,
        /// The last seq dropped.
        last_dropped_seq: u64,
    },
    /// Nothing written yet.
    #[default]
    Empty,
}

/// The counters, read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Next seq.
    pub next_seq: u64,
    /// Highest acknowledged seq.
    pub last_delivered_seq: u64,
    /// When the control plane last acknowledged.
    pub last_delivered_at: Option<DateTime<Utc>>,
    /// Delivered online.
    pub delivered_total: u64,
    /// Removed by ack.
    pub acknowledged_total: u64,
    /// Dropped by the backlog policy.
    pub dropped_total: u64,
    /// Last dropped seq.
    pub last_dropped_seq: u64,
}

/// Reads the counters.
pub fn counters(r: &impl Reader) -> Result<Counters> {
    Ok(
        match r
            .get_record::<SyncRecord>(STATE, STATE_KEY)?
            .unwrap_or_default()
        {
            SyncRecord::V1 {
                next_seq,
                last_delivered_seq,
                last_delivered_at,
                delivered_total,
                acknowledged_total,
                dropped_total,
                last_dropped_seq,
            } => Counters {
                next_seq,
                last_delivered_seq,
                last_delivered_at: last_delivered_at.map(from_micros),
                delivered_total,
                acknowledged_total,
                dropped_total,
                last_dropped_seq,
            },
            SyncRecord::Empty => Counters {
                next_seq: 1,
                ..Counters::default()
            },
        },
    )
}

fn save(ctx: &mut WriteCtx<'_>, c: &Counters) -> Result<()> {
    ctx.put_record(
        STATE,
        STATE_KEY,
        &SyncRecord::V1 {
            next_seq: c.next_seq,
            last_delivered_seq: c.last_delivered_seq,
            last_delivered_at: c.last_delivered_at.map(to_micros),
            delivered_total: c.delivered_total,
            acknowledged_total: c.acknowledged_total,
            dropped_total: c.dropped_total,
            last_dropped_seq: c.last_dropped_seq,
        },
    )?;
    Ok(())
}

fn seq_key(seq: u64) -> Vec<u8> {
    Key::new().u64(seq).into_bytes()
}

/// What [`enqueue`] wrote.
#[derive(Clone, Debug)]
pub struct Written {
    /// The heartbeat's seq.
    pub seq: u64,
    /// Heads it carries.
    pub heads: usize,
    /// Outbox depth after it.
    pub depth: u64,
    /// Heartbeats dropped to make room for it.
    pub dropped: u64,
    /// Dropped in all.
    pub dropped_total: u64,
}

/// Writes the next heartbeat into the outbox, signed with `key`, after dropping the oldest ones
/// while the outbox is full. `None` without a verified license (valid or expired): there is no
/// install id to report for.
pub fn enqueue(
    ctx: &mut WriteCtx<'_>,
    key: &Arc<InstallKey>,
    snapshot: &Snapshot,
    started_at: DateTime<Utc>,
    backlog_max: u32,
) -> Result<Option<Written>> {
    let Some(g) = gate::load(ctx)? else {
        return Ok(None);
    };
    if !matches!(g.state, LicenseState::Valid | LicenseState::Expired) || g.install_id.is_none() {
        return Ok(None);
    }
    let mut c = counters(ctx)?;
    let mut depth = ctx.len(OUTBOX)?;
    let mut dropped = 0u64;
    while depth >= u64::from(backlog_max) {
        let Some((k, v)) = ctx.first(OUTBOX, &Range::all(), Dir::Asc)? else {
            break;
        };
        let OutboxRecord::V1 { heads, .. } = codec::decode(OUTBOX.name(), &v)?;
        let seq = u64::from_be_bytes(k.as_slice().try_into().unwrap_or_default());
        ctx.delete(OUTBOX, &k)?;
        document::unreport(ctx, seq, &heads)?;
        c.dropped_total += 1;
        c.last_dropped_seq = seq;
        dropped += 1;
        depth -= 1;
    }
    let seq = c.next_seq;
    let (doc, heads) = document::build(ctx, &g, seq, snapshot, started_at)?;
    let signed = signed::sign(super::MEMBER, doc, key)
        .map_err(|e| Error::Internal(format!("heartbeat: {e}")))?;
    let bytes = crate::audit::canonical::to_vec(&signed)
        .map_err(|e| Error::Internal(format!("heartbeat: {e}")))?;
    let n_heads = heads.len();
    ctx.put_record(
        OUTBOX,
        &seq_key(seq),
        &OutboxRecord::V1 {
            created_at: to_micros(ctx.now),
            signed: bytes,
            heads: heads
                .into_iter()
                .map(|(c, s, h)| (c.key().to_vec(), s, h))
                .collect(),
        },
    )?;
    c.next_seq = seq + 1;
    save(ctx, &c)?;
    Ok(Some(Written {
        seq,
        heads: n_heads,
        depth: depth + 1,
        dropped,
        dropped_total: c.dropped_total,
    }))
}

/// One heartbeat read from the outbox.
#[derive(Clone, Debug)]
pub struct Pending {
    /// Its seq.
    pub seq: u64,
    /// When it was written.
    pub created_at: DateTime<Utc>,
    /// Canonical bytes of the signed heartbeat.
    pub signed: Vec<u8>,
}

/// The oldest undelivered heartbeats in seq order: at most `max` of them and about `max_bytes`
/// (always at least one).
pub fn pending(r: &impl Reader, max: usize, max_bytes: usize) -> Result<Vec<Pending>> {
    let mut out = Vec::new();
    let mut bytes = 0usize;
    r.scan(OUTBOX, &Range::all(), Dir::Asc, &mut |k, v| {
        let OutboxRecord::V1 {
            created_at, signed, ..
        } = codec::decode(OUTBOX.name(), v)?;
        if !out.is_empty() && bytes + signed.len() > max_bytes {
            return Ok(ControlFlow::Break(()));
        }
        bytes += signed.len();
        out.push(Pending {
            seq: u64::from_be_bytes(k.try_into().unwrap_or_default()),
            created_at: from_micros(created_at),
            signed,
        });
        Ok(if out.len() >= max {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        })
    })?;
    Ok(out)
}

/// Removes heartbeats the control plane acknowledged online and counts them.
pub fn delivered(ctx: &mut WriteCtx<'_>, seqs: &[u64]) -> Result<()> {
    let mut c = counters(ctx)?;
    let mut removed = 0u64;
    for seq in seqs {
        if ctx.delete(OUTBOX, &seq_key(*seq))? {
            removed += 1;
        }
        c.last_delivered_seq = c.last_delivered_seq.max(*seq);
    }
    c.delivered_total += removed;
    c.last_delivered_at = Some(ctx.now);
    save(ctx, &c)
}

/// Removes every heartbeat up to `through` after the control plane imported them from a bundle
/// (`tenantry heartbeat ack --through N`), writing `heartbeat.acknowledged.v1`. Returns how many
/// were removed; removing none writes nothing.
///
/// Errors: 422 when `through` is a seq that was never written.
pub fn acknowledge(ctx: &mut WriteCtx<'_>, through: u64) -> Result<u64> {
    let mut c = counters(ctx)?;
    if through == 0 || through >= c.next_seq {
        return Err(Error::invalid(
            "through",
            format!(
                "heartbeat {through} was never written: the last one is {}",
                c.next_seq.saturating_sub(1)
            ),
        ));
    }
    let mut seqs = Vec::new();
    ctx.scan(
        OUTBOX,
        &Range::all().until(&seq_key(through + 1)),
        Dir::Asc,
        &mut |k, _| {
            seqs.push(k.to_vec());
            Ok(ControlFlow::Continue(()))
        },
    )?;
    if seqs.is_empty() {
        return Ok(0);
    }
    for k in &seqs {
        ctx.delete(OUTBOX, k)?;
    }
    let removed = seqs.len() as u64;
    c.acknowledged_total += removed;
    c.last_delivered_seq = c.last_delivered_seq.max(through);
    save(ctx, &c)?;
    ctx.audit(
        "heartbeat.acknowledged.v1",
        &Subject::platform("heartbeat_outbox", "local"),
        json!({"through_seq": through, "removed": removed}),
    )?;
    Ok(removed)
}

/// Outbox depth and its oldest and newest entries.
#[derive(Clone, Debug, Default)]
pub struct Depth {
    /// Heartbeats waiting.
    pub depth: u64,
    /// Oldest waiting `(seq, written at)`.
    pub oldest: Option<(u64, DateTime<Utc>)>,
    /// Newest waiting seq.
    pub newest: Option<u64>,
}

/// Reads the outbox depth and ends.
pub fn depth(r: &impl Reader) -> Result<Depth> {
    let depth = r.len(OUTBOX)?;
    let oldest = match r.first(OUTBOX, &Range::all(), Dir::Asc)? {
        Some((k, v)) => {
            let OutboxRecord::V1 { created_at, .. } = codec::decode(OUTBOX.name(), &v)?;
            Some((
                u64::from_be_bytes(k.as_slice().try_into().unwrap_or_default()),
                from_micros(created_at),
            ))
        }
        None => None,
    };
    let newest = r
        .first(OUTBOX, &Range::all(), Dir::Desc)?
        .map(|(k, _)| u64::from_be_bytes(k.as_slice().try_into().unwrap_or_default()));
    Ok(Depth {
        depth,
        oldest,
        newest,
    })
}
