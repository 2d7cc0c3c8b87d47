//! Appending to and reading the ledger.
//!
//! Tables (all keyed by the 17-byte chain prefix of [`ChainId::key`]):
//! - `audit_entries[(chain, seq)]` = SHA-256 of the envelope (32 bytes) ++ the canonical
//!   envelope bytes exactly as hashed, so verify hashes stored bytes without re-encoding and
//!   export streams them;
//! - `audit_data[(chain, seq)]` = canonical `data` bytes, deleted when shredded;
//! - `audit_heads[chain]` = [`HeadRecord`];
//! - `audit_checkpoints[(chain, seq)]` = [`CheckpointRecord`];
//! - `audit_index[...]` = browse indexes by time, actor and action;
//! - `audit_dirty[chain]` = chains whose head moved since their last checkpoint, so the
//!   checkpoint job never scans every chain;
//! - `audit_shreds[(chain, through_seq)]` = [`ShredRecord`]: data deleted on purpose, so verify
//!   tells a shredded data row from a deleted one;
//! - `audit_latest_checkpoint[chain]` = [`LatestCheckpointRecord`]: the newest checkpoint's seq,
//!   so verify notices when the newest checkpoints are deleted.
//!
//! **Architecture Invariant:** a service records a change with [`Audit::audit`]
//! (`ctx.audit(action, &subject, data)`) inside the same write request as the change, once per
//! change, after every check has passed. [`append`] is the primitive underneath; only the ledger's
//! own metadata and tests call it directly.

use std::ops::ControlFlow;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::canonical;
use super::model::{
    CHAIN_KEY_LEN, CheckpointRecord, EntryView, EnvelopeRef, HeadRecord, LatestCheckpointRecord,
    ShredRecord,
};
pub use super::model::{ChainId, Subject, Target};
use crate::clock::{from_micros, rfc3339_micros, to_micros};
use crate::error::{Error, Result};
use crate::store::keys::{Key, KeyReader};
use crate::store::page::{Cursor, Scan, Step, page};
use crate::store::{Dir, Range, Reader, Table, Topic, WriteCtx, codec};

/// Entries: `(chain, seq) -> hash ++ envelope`.
pub const ENTRIES: Table = Table::new("audit_entries");
/// Shreddable data: `(chain, seq) -> canonical data`.
pub const DATA: Table = Table::new("audit_data");
/// Heads: `chain -> HeadRecord`.
pub const HEADS: Table = Table::new("audit_heads");
/// Checkpoints: `(chain, seq) -> CheckpointRecord`.
pub const CHECKPOINTS: Table = Table::new("audit_checkpoints");
/// Browse indexes.
pub const INDEX: Table = Table::new("audit_index");
/// Chains to checkpoint.
pub const DIRTY: Table = Table::new("audit_dirty");
/// Shreds: `(chain, through_seq) -> ShredRecord`.
pub const SHREDS: Table = Table::new("audit_shreds");
/// The newest checkpoint of each chain: `chain -> LatestCheckpointRecord`.
pub const LATEST_CHECKPOINT: Table = Table::new("audit_latest_checkpoint");

/// The `prev` of a chain's first entry: 64 zeros.
pub const GENESIS: [u8; 32] = [0; 32];

const IDX_TIME: u8 = 0;
const IDX_ACTOR: u8 = 1;
const IDX_ACTION: u8 = 2;

/// Key of entry `seq` of `chain`.
pub fn entry_key(chain: &ChainId, seq: u64) -> Vec<u8> {
    Key::new().raw(&chain.key()).u64(seq).into_bytes()
}

fn short_hash(s: &str) -> [u8; 16] {
    let h = blake3::hash(s.as_bytes());
    let mut out = [0u8; 16];
    out.copy_from_slice(&h.as_bytes()[..16]);
    out
}

/// What [`append`] wrote.
#[derive(Clone, Debug)]
pub struct Appended {
    /// The entry's seq.
    pub seq: u64,
    /// Its hash.
    pub hash: [u8; 32],
}

/// The head of `chain`, if it has entries.
pub fn head(r: &impl Reader, chain: &ChainId) -> Result<Option<HeadRecord>> {
    Ok(r.get_record(HEADS, &chain.key())?)
}

/// Appends one entry to `chain` in the caller's write request: `action` by `ctx.actor` at
/// `ctx.now` (clamped so `ts` never goes backwards within a chain), about `target`, with `data`
/// (a JSON object of integers, strings, booleans, nulls, arrays and objects). An integer beyond
/// ±(2^53 - 1) is recorded as its decimal string ([`canonical::safe_integers`]).
///
/// Errors: `Internal` if `data` holds a float (a programming error: the ledger is integer-only).
pub fn append(
    ctx: &mut WriteCtx<'_>,
    chain: &ChainId,
    action: &str,
    target: &Target,
    mut data: Value,
) -> Result<Appended> {
    // Integers a double cannot hold exactly are recorded as their decimal strings, so every
    // RFC 8785 verifier reads `data` as hashed (see `canonical`).
    canonical::safe_integers(&mut data);
    let data_bytes =
        canonical::to_vec_safe(&data).map_err(|e| Error::Internal(format!("{action}: {e}")))?;
    let data_sha = hex::encode(Sha256::digest(&data_bytes));
    let (seq, prev, last_ts) = match head(ctx, chain)? {
        Some(HeadRecord::V1 {
            seq,
            hash,
            ts_micros,
        }) => (seq + 1, hash, ts_micros),
        None => (1, GENESIS, i64::MIN),
    };
    let ts_micros = to_micros(ctx.now).max(last_ts);
    let envelope = json!({
        "v": 1,
        "chain": chain.to_string(),
        "seq": seq,
        "ts": rfc3339_micros(from_micros(ts_micros)),
        "action": action,
        "actor": {"kind": ctx.actor.kind.as_str(), "id": ctx.actor.id},
        "target": {"kind": target.kind, "id": target.id},
        "tenant_id": chain.tenant_id().map(|t| t.to_string()),
        "data_sha256": data_sha,
        "prev": hex::encode(prev),
    });
    let env_bytes =
        canonical::to_vec_safe(&envelope).map_err(|e| Error::Internal(e.to_string()))?;
    let hash: [u8; 32] = Sha256::digest(&env_bytes).into();

    let key = entry_key(chain, seq);
    let mut stored = Vec::with_capacity(32 + env_bytes.len());
    stored.extend_from_slice(&hash);
    stored.extend_from_slice(&env_bytes);
    ctx.put(ENTRIES, &key, &stored)?;
    ctx.put(DATA, &key, &data_bytes)?;
    ctx.put_record(
        HEADS,
        &chain.key(),
        &HeadRecord::V1 {
            seq,
            hash,
            ts_micros,
        },
    )?;
    let tail = Key::new().i64(ts_micros).raw(&chain.key()).u64(seq);
    ctx.put(
        INDEX,
        Key::new().u8(IDX_TIME).raw(tail.as_bytes()).as_bytes(),
        &[],
    )?;
    let actor_key = Key::new()
        .u8(IDX_ACTOR)
        .raw(&short_hash(&ctx.actor.id))
        .raw(tail.as_bytes());
    ctx.put(INDEX, actor_key.as_bytes(), &[])?;
    let action_key = Key::new()
        .u8(IDX_ACTION)
        .raw(&short_hash(action))
        .raw(tail.as_bytes());
    ctx.put(INDEX, action_key.as_bytes(), &[])?;
    // A chain already marked keeps its mark: rewriting it would dirty one more page per
    // append (issue 13's profile: the writer is bound by the pages each write rewrites).
    if !ctx.contains(DIRTY, &chain.key())? {
        ctx.put(DIRTY, &chain.key(), &[])?;
    }
    ctx.touch(Topic::Chain(chain.to_string()));
    Ok(Appended { seq, hash })
}

/// The one way a service records a change: `ctx.audit("tenant.suspended.v1",
/// &Subject::tenant(id), json!({"reason": ..}))` appends one entry, by the request's actor at its
/// `now`, to the chain of `subject`, in the request's own write transaction. Review "exactly one
/// entry per change" here and at the call sites, which all go through this method.
pub trait Audit {
    /// Appends the entry for `action` (a versioned event name, `noun.verb.vN`) about `subject`
    /// with `data` (a JSON object of integers, strings, booleans, nulls, arrays and objects).
    ///
    /// Errors: `Internal` for a malformed event name or a float in `data` (programming errors);
    /// storage errors.
    fn audit(&mut self, action: &str, subject: &Subject, data: Value) -> Result<Appended>;
}

impl Audit for WriteCtx<'_> {
    fn audit(&mut self, action: &str, subject: &Subject, data: Value) -> Result<Appended> {
        if !is_event_name(action) {
            return Err(Error::Internal(format!(
                "'{action}' is not an event name: use noun.verb.vN (AUDIT.md)"
            )));
        }
        append(self, &subject.chain, action, &subject.target, data)
    }
}

/// Is `s` a versioned event name: lowercase dotted words ending in `.v<N>`?
pub fn is_event_name(s: &str) -> bool {
    let Some((name, version)) = s.rsplit_once(".v") else {
        return false;
    };
    !version.is_empty()
        && version.bytes().all(|b| b.is_ascii_digit())
        && name.contains('.')
        && name
            .split('.')
            .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
}

/// Deletes the `data` of every entry of `chain` (shredding) and records the shred
/// ([`ShredRecord`], seqs 1 to the head), so verify can tell these absent rows from deleted
/// ones; the envelopes stay, so the chain still verifies and exports with `"data": null`.
/// Returns how many rows were deleted.
pub fn shred_data(ctx: &mut WriteCtx<'_>, chain: &ChainId) -> Result<u64> {
    let deleted = ctx.delete_range(DATA, &Range::prefix(&chain.key()))?;
    if let Some(HeadRecord::V1 { seq, .. }) = head(ctx, chain)? {
        let at_micros = crate::clock::to_micros(ctx.now);
        record_shred(ctx, chain, 1, seq, at_micros)?;
    }
    Ok(deleted)
}

/// Records that the data of `from_seq..=through_seq` of `chain` was shredded (also used by the
/// schema migration that backfills shreds made before shreds were recorded).
pub fn record_shred(
    ctx: &mut WriteCtx<'_>,
    chain: &ChainId,
    from_seq: u64,
    through_seq: u64,
    at_micros: i64,
) -> Result<()> {
    ctx.put_record(
        SHREDS,
        &entry_key(chain, through_seq),
        &ShredRecord::V1 {
            from_seq,
            through_seq,
            at_micros,
        },
    )?;
    Ok(())
}

/// The shredded seq ranges `(from, through)` of `chain`, oldest first.
pub fn shreds(r: &impl Reader, chain: &ChainId) -> Result<Vec<(u64, u64)>> {
    let mut out = Vec::new();
    r.scan(
        SHREDS,
        &Range::prefix(&chain.key()),
        Dir::Asc,
        &mut |_, v| {
            let ShredRecord::V1 {
                from_seq,
                through_seq,
                ..
            } = codec::decode(SHREDS.name(), v)?;
            out.push((from_seq, through_seq));
            Ok(ControlFlow::Continue(()))
        },
    )?;
    Ok(out)
}

/// The seq of the newest checkpoint signed for `chain`, as recorded apart from the checkpoints.
pub fn latest_checkpoint_seq(r: &impl Reader, chain: &ChainId) -> Result<Option<u64>> {
    Ok(
        r.get_record::<LatestCheckpointRecord>(LATEST_CHECKPOINT, &chain.key())?
            .map(|LatestCheckpointRecord::V1 { seq }| seq),
    )
}

/// Records `seq` as the newest checkpoint of `chain` unless a newer one is recorded.
pub fn record_latest_checkpoint(ctx: &mut WriteCtx<'_>, chain: &ChainId, seq: u64) -> Result<()> {
    if latest_checkpoint_seq(ctx, chain)?.is_none_or(|s| s < seq) {
        ctx.put_record(
            LATEST_CHECKPOINT,
            &chain.key(),
            &LatestCheckpointRecord::V1 { seq },
        )?;
    }
    Ok(())
}

/// Splits a stored entry into its hash and envelope bytes.
pub fn split_stored(stored: &[u8]) -> Option<(&[u8], &[u8])> {
    stored.split_at_checked(32)
}

/// Decodes one stored entry (and its data row) into its view.
pub fn view(stored: &[u8], data: Option<&[u8]>) -> Result<EntryView> {
    let corrupt = |d: String| {
        Error::Store(crate::store::Error::Corrupt {
            table: ENTRIES.name(),
            detail: d,
        })
    };
    let (hash, env) =
        split_stored(stored).ok_or_else(|| corrupt("entry shorter than its hash".into()))?;
    let e: EnvelopeRef<'_> = serde_json::from_slice(env).map_err(|e| corrupt(e.to_string()))?;
    let data = match data {
        Some(d) => Some(serde_json::from_slice(d).map_err(|e| corrupt(e.to_string()))?),
        None => None,
    };
    Ok(EntryView {
        chain: e.chain.into_owned(),
        seq: e.seq,
        ts: e.ts.into_owned(),
        action: e.action.into_owned(),
        actor: e.actor,
        target: e.target,
        tenant_id: e.tenant_id,
        data_sha256: e.data_sha256.into_owned(),
        prev: e.prev.into_owned(),
        hash: hex::encode(hash),
        data,
    })
}

/// Reads entry `seq` of `chain`.
pub fn read_entry(r: &impl Reader, chain: &ChainId, seq: u64) -> Result<Option<EntryView>> {
    let key = entry_key(chain, seq);
    let Some(stored) = r.get(ENTRIES, &key)? else {
        return Ok(None);
    };
    let data = r.get(DATA, &key)?;
    view(&stored, data.as_deref()).map(Some)
}

/// The checkpoints of `chain`, oldest first.
pub fn checkpoints(r: &impl Reader, chain: &ChainId) -> Result<Vec<CheckpointRecord>> {
    let mut out = Vec::new();
    r.scan(
        CHECKPOINTS,
        &Range::prefix(&chain.key()),
        Dir::Asc,
        &mut |_, v| {
            out.push(codec::decode(CHECKPOINTS.name(), v)?);
            Ok(ControlFlow::Continue(()))
        },
    )?;
    Ok(out)
}

/// The newest checkpoint of `chain`.
pub fn last_checkpoint(r: &impl Reader, chain: &ChainId) -> Result<Option<CheckpointRecord>> {
    match r.first(CHECKPOINTS, &Range::prefix(&chain.key()), Dir::Desc)? {
        Some((_, v)) => Ok(Some(codec::decode(CHECKPOINTS.name(), &v)?)),
        None => Ok(None),
    }
}

/// Stores a signed checkpoint, records it as the chain's newest, and, when it signs the current
/// head, clears the chain's dirty mark.
pub fn put_checkpoint(
    ctx: &mut WriteCtx<'_>,
    chain: &ChainId,
    record: &CheckpointRecord,
) -> Result<()> {
    let CheckpointRecord::V1 { seq, .. } = record;
    ctx.put_record(CHECKPOINTS, &entry_key(chain, *seq), record)?;
    record_latest_checkpoint(ctx, chain, *seq)?;
    if let Some(HeadRecord::V1 { seq: head_seq, .. }) = head(ctx, chain)?
        && head_seq == *seq
    {
        ctx.delete(DIRTY, &chain.key())?;
    }
    Ok(())
}

/// Chains whose head moved since their last checkpoint.
pub fn dirty_chains(r: &impl Reader) -> Result<Vec<ChainId>> {
    let mut out = Vec::new();
    r.scan(DIRTY, &Range::all(), Dir::Asc, &mut |k, _| {
        if let Some(c) = ChainId::from_key(k) {
            out.push(c);
        }
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(out)
}

/// Every chain that has entries, with its head.
pub fn all_heads(r: &impl Reader) -> Result<Vec<(ChainId, HeadRecord)>> {
    // Sized once: a ledger of many tenants has as many heads (no regrowth copies).
    let mut out = Vec::with_capacity(usize::try_from(r.len(HEADS)?).unwrap_or(0));
    r.scan(HEADS, &Range::all(), Dir::Asc, &mut |k, v| {
        if let Some(c) = ChainId::from_key(k) {
            out.push((c, codec::decode(HEADS.name(), v)?));
        }
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(out)
}

/// Filters of `GET /api/audit` (API.md), already parsed.
#[derive(Clone, Debug, Default)]
pub struct AuditQuery {
    /// One chain (a `tenant_id` filter becomes its tenant chain).
    pub chain: Option<ChainId>,
    /// Entries by this actor id.
    pub actor_id: Option<String>,
    /// Entries with this action.
    pub action: Option<String>,
    /// Entries whose actor is of this kind (e.g. operators only, for "recent admin activity").
    pub actor_kind: Option<crate::actor::ActorKind>,
    /// Entries at or after this instant (microseconds).
    pub from: Option<i64>,
    /// Entries at or before this instant (microseconds).
    pub to: Option<i64>,
    /// Page size.
    pub limit: usize,
    /// Where the previous page stopped.
    pub cursor: Option<Cursor>,
}

/// A page of entries, newest first.
#[derive(Debug)]
pub struct AuditPage {
    /// The entries.
    pub items: Vec<EntryView>,
    /// Where the next page starts, if more may follow.
    pub next_cursor: Option<Cursor>,
}

/// Most index rows one page may examine before it returns what it has, with a cursor to go on:
/// a page costs O(page + budget), never O(ledger), however rare the filter combination.
pub const SCAN_BUDGET: usize = 20_000;

/// Browses the ledger newest first. A chain filter scans that chain; otherwise the actor, action
/// or time index is used (in that order of preference), and the remaining filters are applied
/// to each candidate.
pub fn browse(r: &impl Reader, q: &AuditQuery) -> Result<AuditPage> {
    let (source, prefix): (u8, Vec<u8>) = match (&q.chain, &q.actor_id, &q.action) {
        (Some(c), _, _) => (0xFF, c.key().to_vec()),
        (None, Some(a), _) => (
            IDX_ACTOR,
            Key::new().u8(IDX_ACTOR).raw(&short_hash(a)).into_bytes(),
        ),
        (None, None, Some(a)) => (
            IDX_ACTION,
            Key::new().u8(IDX_ACTION).raw(&short_hash(a)).into_bytes(),
        ),
        (None, None, None) => (IDX_TIME, vec![IDX_TIME]),
    };
    let mut range = Range::prefix(&prefix);
    if source != 0xFF {
        if let Some(from) = q.from {
            range = range.from(Key::new().raw(&prefix).i64(from).as_bytes());
        }
        if let Some(to) = q.to {
            range = range.until(Key::new().raw(&prefix).i64(to.saturating_add(1)).as_bytes());
        }
    }
    let table = if source == 0xFF { ENTRIES } else { INDEX };
    let scan = Scan {
        table,
        range,
        dir: Dir::Desc,
        limit: q.limit,
        cursor: q.cursor.as_ref(),
        budget: Some(SCAN_BUDGET),
    };
    let page = page(r, scan, |k, v| -> Result<Step<EntryView>> {
        let (chain, seq, stored) = if source == 0xFF {
            let mut kr = KeyReader::new(k);
            let chain = kr.raw(CHAIN_KEY_LEN).and_then(ChainId::from_key);
            let seq = kr.u64();
            match (chain, seq) {
                (Some(c), Some(s)) => (c, s, Some(v.to_vec())),
                _ => return Ok(Step::Skip),
            }
        } else {
            // Index keys: the prefix, then ts, chain, seq.
            let mut kr = KeyReader::new(&k[prefix.len()..]);
            let _ts = kr.i64();
            let chain = kr.raw(CHAIN_KEY_LEN).and_then(ChainId::from_key);
            let seq = kr.u64();
            match (chain, seq) {
                (Some(c), Some(s)) => (c, s, None),
                _ => return Ok(Step::Skip),
            }
        };
        let key = entry_key(&chain, seq);
        let stored = match stored {
            Some(s) => s,
            None => match r.get(ENTRIES, &key)? {
                Some(s) => s,
                None => return Ok(Step::Skip),
            },
        };
        let data = r.get(DATA, &key)?;
        let entry = view(&stored, data.as_deref())?;
        let ts = chrono::DateTime::parse_from_rfc3339(&entry.ts)
            .map(|t| t.timestamp_micros())
            .unwrap_or(0);
        if q.from.is_some_and(|f| ts < f) {
            // Within a chain `ts` never decreases, so older entries cannot match either.
            return Ok(if source == 0xFF {
                Step::Stop
            } else {
                Step::Skip
            });
        }
        let keep = q.to.is_none_or(|t| ts <= t)
            && q.actor_id.as_ref().is_none_or(|a| &entry.actor.id == a)
            && q.action.as_ref().is_none_or(|a| &entry.action == a)
            && q.actor_kind.is_none_or(|k| entry.actor.kind == k);
        Ok(if keep { Step::Keep(entry) } else { Step::Skip })
    })?;
    Ok(AuditPage {
        items: page.items,
        next_cursor: page.next,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::actor::Actor;
    use crate::audit::signing::{InstallKey, KeyRing};
    use crate::audit::verify::{Mode, verify_chain};
    use crate::store::Store;

    fn now() -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default()
    }

    #[tokio::test]
    async fn integers_beyond_2_pow_53_in_data_are_recorded_as_strings_and_the_chain_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let chain = ChainId::Platform;
        store
            .write(now(), Actor::system("t"), move |ctx| {
                append(
                    ctx,
                    &chain,
                    "tenant.suspended.v1",
                    &Target::new("quota", "q"),
                    json!({"limit": u64::MAX, "used": 9007199254740991u64, "delta": -9007199254740992i64}),
                )
            })
            .await
            .unwrap();
        let ring = KeyRing::new([InstallKey::from_seed(&[1; 32]).public()]);
        let (data, report) = store
            .read(move |r| {
                let data = r.get(DATA, &entry_key(&chain, 1))?.unwrap_or_default();
                Ok::<_, Error>((data, verify_chain(r, &chain, &ring, Mode::Full)?))
            })
            .await
            .unwrap();
        assert_eq!(
            String::from_utf8(data).unwrap(),
            r#"{"delta":"-9007199254740992","limit":"18446744073709551615","used":9007199254740991}"#
        );
        assert!(report.ok, "{report:?}");
    }
}
