//! Chain verification (AUDIT.md "Tamper evidence").
//!
//! A walk starts from the newest checkpoint that still verifies (its signature is valid and the
//! stored entry at its seq hashes to the signed hash) or, in [`Mode::Full`], from seq 1. For
//! every entry it checks, in order: the entry exists at the expected seq (no gap), its stored
//! bytes hash to the stored hash, the envelope names this chain and this seq, `prev` links to
//! the previous hash, `data_sha256` matches the data when the data is present, and data is
//! absent only where a recorded shred covers it, and every checkpoint signed at that seq names
//! this hash. After the walk, the head must name the last entry, no checkpoint may lie beyond it
//! (a truncation below a checkpoint), and the newest stored checkpoint must be the one recorded
//! as the newest (deleting the newest checkpoints would otherwise move the anchor silently). The
//! first failure gives `first_bad_seq` and a sentence saying what is wrong.
//!
//! [`Mode::FromCheckpoint`] re-checks nothing below its anchor (neither hashes nor `data`); a
//! [`Mode::Full`] walk does, and the daily `verify_ledger` job runs one.
//!
//! Never "repair" a chain by re-hashing: verify only reports.

use std::ops::ControlFlow;

use sha2::{Digest, Sha256};

use super::ledger::{self, DATA, ENTRIES, GENESIS};
use super::model::{ChainId, CheckpointRecord, EnvelopeRef, HeadRecord};
use super::signing::KeyRing;
use crate::error::Result;
use crate::store::{Dir, Range, Reader};

/// Where a walk starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// From the newest checkpoint that verifies (the default of `POST /api/audit/verify`).
    FromCheckpoint,
    /// From seq 1, whatever the checkpoints say (offline `tenantry audit verify`).
    Full,
}

/// The outcome for one chain (`POST /api/audit/verify` result row).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChainReport {
    /// `platform` or `tenant:{uuid}`.
    pub chain: String,
    /// Whether every check passed.
    pub ok: bool,
    /// The seq the walk started from: the anchoring checkpoint's seq, or 1.
    pub verified_from_seq: u64,
    /// The recorded head seq.
    pub head_seq: u64,
    /// The recorded head hash (lowercase hex).
    pub head_hash: String,
    /// The first seq that failed, when not ok.
    pub first_bad_seq: Option<u64>,
    /// What failed, in a sentence, when not ok.
    pub problem: Option<String>,
    /// Entries whose hash was recomputed.
    pub entries_checked: u64,
    /// Envelope and data bytes hashed.
    pub bytes_checked: u64,
}

/// The schema version from which shreds and each chain's newest checkpoint are recorded
/// (`store::SCHEMA_VERSION` 4; older files are migrated at start).
const RECORDED_SINCE_SCHEMA: u32 = 4;

struct Failure {
    seq: u64,
    problem: String,
}

/// Verifies `chain`. A chain without a head (no entries) verifies trivially with head 0.
pub fn verify_chain(
    r: &impl Reader,
    chain: &ChainId,
    keys: &KeyRing,
    mode: Mode,
) -> Result<ChainReport> {
    let (head_seq, head_hash) = match ledger::head(r, chain)? {
        Some(HeadRecord::V1 { seq, hash, .. }) => (seq, hash),
        None => (0, GENESIS),
    };
    let cps = ledger::checkpoints(r, chain)?;
    // Before schema 4 shreds and the newest checkpoint were not recorded (a backup taken then
    // is verified as it is, before any migration): absent data is taken as shredded, and the
    // checkpoints as they are.
    let recorded =
        crate::store::meta_u32(r, "schema_version")?.is_none_or(|v| v >= RECORDED_SINCE_SCHEMA);
    let shreds = ledger::shreds(r, chain)?;
    let recorded_newest = ledger::latest_checkpoint_seq(r, chain)?;
    let mut report = ChainReport {
        chain: chain.to_string(),
        ok: true,
        verified_from_seq: 1,
        head_seq,
        head_hash: hex::encode(head_hash),
        first_bad_seq: None,
        problem: None,
        entries_checked: 0,
        bytes_checked: 0,
    };
    let mut failure: Option<Failure> = None;
    let mut note = |f: Failure| {
        if failure.as_ref().is_none_or(|old| f.seq < old.seq) {
            failure = Some(f);
        }
    };

    // The newest checkpoint stored must be the one recorded as the newest: the anchor must not
    // move back because the newest checkpoints were deleted.
    let stored_newest = cps.last().map(|CheckpointRecord::V1 { seq, .. }| *seq);
    match (recorded_newest, stored_newest) {
        _ if !recorded => {}
        (Some(rec), Some(st)) if st == rec => {}
        (Some(rec), st) if st.is_none_or(|st| st < rec) => note(Failure {
            seq: rec,
            problem: format!(
                "the checkpoint signed at seq {rec} is missing ({}): checkpoints were deleted",
                st.map_or("no checkpoint is stored".to_string(), |st| format!(
                    "the newest stored is at seq {st}"
                ))
            ),
        }),
        (rec, Some(st)) => note(Failure {
            seq: st,
            problem: format!(
                "the checkpoint at seq {st} is not the newest recorded ({}): the checkpoint records were altered",
                rec.map_or("none is recorded".to_string(), |rec| format!("seq {rec}"))
            ),
        }),
        (_, None) => {}
    }

    // Signatures of every checkpoint, and the anchor: the newest checkpoint that verifies.
    let mut anchor: Option<(u64, [u8; 32])> = None;
    for cp in &cps {
        let CheckpointRecord::V1 { seq, .. } = cp;
        if !keys.verifies(chain, cp) {
            note(Failure {
                seq: *seq,
                problem: format!(
                    "the checkpoint at seq {seq} has an invalid signature or an unknown key"
                ),
            });
        }
    }
    if mode == Mode::FromCheckpoint {
        for cp in cps.iter().rev() {
            let CheckpointRecord::V1 { seq, hash, .. } = cp;
            if !keys.verifies(chain, cp) {
                continue;
            }
            if let Some(stored) = r.get(ENTRIES, &ledger::entry_key(chain, *seq))? {
                report.bytes_checked += stored.len() as u64;
                report.entries_checked += 1;
                if let Some((stored_hash, env)) = ledger::split_stored(&stored) {
                    let computed: [u8; 32] = Sha256::digest(env).into();
                    if computed == *hash
                        && stored_hash == hash.as_slice()
                        && envelope_seq(env) == Some(*seq)
                    {
                        anchor = Some((*seq, *hash));
                        break;
                    }
                }
            }
        }
    }

    let (start, mut prev) = match anchor {
        Some((seq, hash)) => (seq + 1, hash),
        None => (1, GENESIS),
    };
    report.verified_from_seq = anchor.map_or(1, |(s, _)| s);
    let mut expected = start;
    let chain_name = chain.to_string();
    let range = Range::prefix(&chain.key()).from(&ledger::entry_key(chain, start));
    let mut walk_failure: Option<Failure> = None;
    r.scan(ENTRIES, &range, Dir::Asc, &mut |key, stored| {
        let seq = key
            .get(17..25)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0);
        let fail = |seq: u64, problem: String| Failure { seq, problem };
        let outcome: std::result::Result<[u8; 32], Failure> = (|| {
            if seq != expected {
                return Err(fail(
                    expected,
                    format!("entry {expected} is missing (the next stored entry is {seq})"),
                ));
            }
            let (stored_hash, env) = ledger::split_stored(stored)
                .ok_or_else(|| fail(seq, format!("entry {seq} is shorter than its hash")))?;
            let computed: [u8; 32] = Sha256::digest(env).into();
            report.entries_checked += 1;
            report.bytes_checked += env.len() as u64;
            if computed.as_slice() != stored_hash {
                return Err(fail(
                    seq,
                    format!("entry {seq} was altered: its content no longer matches its hash"),
                ));
            }
            let e: EnvelopeRef<'_> = serde_json::from_slice(env)
                .map_err(|err| fail(seq, format!("entry {seq} is not a valid envelope: {err}")))?;
            if e.v != 1 {
                return Err(fail(
                    seq,
                    format!("entry {seq} has unknown format version {}", e.v),
                ));
            }
            if e.chain != chain_name {
                return Err(fail(
                    seq,
                    format!("entry {seq} belongs to chain '{}'", e.chain),
                ));
            }
            if e.seq != seq {
                return Err(fail(
                    seq,
                    format!("entry {seq} carries seq {} (entries were reordered)", e.seq),
                ));
            }
            if e.prev != hex::encode(prev) {
                return Err(fail(
                    seq,
                    format!("entry {seq} does not link to the hash of entry {}", seq - 1),
                ));
            }
            // Present data must match its digest; absent data must have been shredded.
            let data = r
                .get(DATA, key)
                .map_err(|err| fail(seq, format!("reading the data of entry {seq}: {err}")))?;
            match data {
                None if !recorded
                    || shreds
                        .iter()
                        .any(|(from, through)| (*from..=*through).contains(&seq)) => {}
                None => {
                    return Err(fail(
                        seq,
                        format!(
                            "the data of entry {seq} is missing and no recorded shred covers it: it was deleted"
                        ),
                    ));
                }
                Some(_) => {}
            }
            if let Some(data) = data {
                report.bytes_checked += data.len() as u64;
                if hex::encode(Sha256::digest(&data)) != e.data_sha256 {
                    return Err(fail(
                        seq,
                        format!(
                            "the data of entry {seq} was altered: it no longer matches data_sha256"
                        ),
                    ));
                }
            }
            Ok(computed)
        })();
        match outcome {
            Ok(computed) => {
                prev = computed;
                expected += 1;
                Ok(ControlFlow::Continue(()))
            }
            Err(f) => {
                walk_failure = Some(f);
                Ok(ControlFlow::Break(()))
            }
        }
    })?;
    let walked_to = expected - 1;
    if let Some(f) = walk_failure {
        note(f);
    }

    // Checkpoints inside the walked range must name the walked hashes.
    for cp in &cps {
        let CheckpointRecord::V1 { seq, hash, .. } = cp;
        if *seq > walked_to {
            note(Failure {
                seq: walked_to + 1,
                problem: format!(
                    "the chain ends at seq {walked_to}, below the signed checkpoint at seq {seq}: entries were truncated"
                ),
            });
        } else if *seq >= start {
            let stored = r.get(ENTRIES, &ledger::entry_key(chain, *seq))?;
            let matches = stored
                .as_deref()
                .and_then(ledger::split_stored)
                .is_some_and(|(_, env)| Sha256::digest(env).as_slice() == hash.as_slice());
            if !matches {
                note(Failure {
                    seq: *seq,
                    problem: format!(
                        "entry {seq} no longer matches the checkpoint signed at that seq"
                    ),
                });
            }
        }
    }

    // The head must name the last entry walked.
    if head_seq > walked_to {
        note(Failure {
            seq: walked_to + 1,
            problem: format!(
                "entries {}..={head_seq} are missing: the head names seq {head_seq}",
                walked_to + 1
            ),
        });
    } else if head_seq < walked_to {
        note(Failure {
            seq: head_seq + 1,
            problem: format!("entries after the recorded head (seq {head_seq}) exist"),
        });
    } else if head_seq >= start && head_hash != prev {
        note(Failure {
            seq: head_seq,
            problem: format!("the recorded head hash does not match entry {head_seq}"),
        });
    }

    if let Some(f) = failure {
        report.ok = false;
        report.first_bad_seq = Some(f.seq);
        report.problem = Some(f.problem);
    }
    Ok(report)
}

fn envelope_seq(env: &[u8]) -> Option<u64> {
    serde_json::from_slice::<EnvelopeRef<'_>>(env)
        .ok()
        .map(|e| e.seq)
}
