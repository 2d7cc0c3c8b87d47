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
use super::model::{
    CHAIN_KEY_LEN, ChainId, CheckpointRecord, HeadRecord, LatestCheckpointRecord, ShredRecord,
};
use super::scan;
use super::signing::KeyRing;
use crate::error::Result;
use crate::store::{Dir, JoinPart, Range, Reader, codec};

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

/// What a walk needs to know of a chain before its entries: read per chain ([`Meta::load`]) or,
/// in a full verify, taken from the tables read whole ([`Ledger`]) when a part reaches the chain.
struct Meta {
    chain: ChainId,
    head: Option<HeadRecord>,
    cps: Vec<CheckpointRecord>,
    /// Whether each of `cps` carries a valid signature ([`KeyRing::verifies_each`]: per chain,
    /// or for the whole ledger at once in a full verify, [`signature_verdicts`]).
    signed: Vec<bool>,
    shreds: Vec<(u64, u64)>,
    recorded_newest: Option<u64>,
}

impl Meta {
    /// Reads `chain`'s metadata and checks its checkpoints' signatures.
    fn load(r: &impl Reader, chain: &ChainId, keys: &KeyRing) -> Result<Meta> {
        let cps = ledger::checkpoints(r, chain)?;
        let with_chain: Vec<(ChainId, &CheckpointRecord)> =
            cps.iter().map(|cp| (*chain, cp)).collect();
        let signed = keys.verifies_each(&with_chain);
        Ok(Meta {
            chain: *chain,
            head: ledger::head(r, chain)?,
            cps,
            signed,
            shreds: ledger::shreds(r, chain)?,
            recorded_newest: ledger::latest_checkpoint_seq(r, chain)?,
        })
    }
}

/// Whether shreds and each chain's newest checkpoint are recorded in this file: before schema 4
/// they were not (a backup taken then is verified as it is, before any migration): absent data
/// is taken as shredded, and the checkpoints as they are.
fn recorded(r: &impl Reader) -> Result<bool> {
    Ok(crate::store::meta_u32(r, "schema_version")?.is_none_or(|v| v >= RECORDED_SINCE_SCHEMA))
}

/// One chain's walk: fed its entries in seq order from where it starts, then finished into its
/// report. The same code serves one chain ([`verify_chain`]) and every chain in one pass.
struct Walk {
    report: ChainReport,
    head_hash: [u8; 32],
    cps: Vec<CheckpointRecord>,
    shreds: Vec<(u64, u64)>,
    recorded: bool,
    failure: Option<Failure>,
    /// Set once the walk stopped at a bad entry (later entries are not looked at).
    stopped: bool,
    start: u64,
    expected: u64,
    prev: [u8; 32],
    /// The walked hash at each checkpoint's seq, for the check against the signed hash.
    at_checkpoints: Vec<(u64, [u8; 32])>,
    /// A walk of the rest of a chain cut between parts ([`Walk::continuation`]): its first
    /// entry's link is not checked here but when the walk is merged ([`Walk::absorb`]).
    continuation: bool,
    /// The seq of the first entry this walk was fed, if any.
    first_seq: Option<u64>,
    /// A continuation's first entry: its `prev` as stored and its envelope's length, once every
    /// check before the link passed.
    first_link: Option<(Vec<u8>, u64)>,
}

impl Walk {
    /// Notes the checkpoints whose signature did not verify (`meta.signed`) and checks that the
    /// newest stored is the newest recorded; the walk starts after `anchor` (a verified
    /// checkpoint's seq and hash) or at seq 1.
    fn new(meta: Meta, recorded: bool, anchor: Option<(u64, [u8; 32])>) -> Self {
        let (head_seq, head_hash) = match meta.head {
            Some(HeadRecord::V1 { seq, hash, .. }) => (seq, hash),
            None => (0, GENESIS),
        };
        let (start, prev) = match anchor {
            Some((seq, hash)) => (seq + 1, hash),
            None => (1, GENESIS),
        };
        let mut walk = Walk {
            report: ChainReport {
                chain: meta.chain.name(),
                ok: true,
                verified_from_seq: anchor.map_or(1, |(s, _)| s),
                head_seq,
                head_hash: hex_string(&head_hash),
                first_bad_seq: None,
                problem: None,
                entries_checked: 0,
                bytes_checked: 0,
            },
            head_hash,
            cps: meta.cps,
            shreds: meta.shreds,
            recorded,
            failure: None,
            stopped: false,
            start,
            expected: start,
            prev,
            at_checkpoints: Vec::new(),
            continuation: false,
            first_seq: None,
            first_link: None,
        };
        // The newest checkpoint stored must be the one recorded as the newest: the anchor must
        // not move back because the newest checkpoints were deleted.
        let stored_newest = walk.cps.last().map(|CheckpointRecord::V1 { seq, .. }| *seq);
        match (meta.recorded_newest, stored_newest) {
            _ if !recorded => {}
            (Some(rec), Some(st)) if st == rec => {}
            (Some(rec), st) if st.is_none_or(|st| st < rec) => walk.note(Failure {
                seq: rec,
                problem: format!(
                    "the checkpoint signed at seq {rec} is missing ({}): checkpoints were deleted",
                    st.map_or("no checkpoint is stored".to_string(), |st| format!(
                        "the newest stored is at seq {st}"
                    ))
                ),
            }),
            (rec, Some(st)) => walk.note(Failure {
                seq: st,
                problem: format!(
                    "the checkpoint at seq {st} is not the newest recorded ({}): the checkpoint records were altered",
                    rec.map_or("none is recorded".to_string(), |rec| format!("seq {rec}"))
                ),
            }),
            (_, None) => {}
        }
        let bad_signatures: Vec<u64> = walk
            .cps
            .iter()
            .enumerate()
            .filter(|(at, _)| !meta.signed.get(*at).copied().unwrap_or(false))
            .map(|(_, CheckpointRecord::V1 { seq, .. })| *seq)
            .collect();
        for seq in bad_signatures {
            walk.note(Failure {
                seq,
                problem: format!(
                    "the checkpoint at seq {seq} has an invalid signature or an unknown key"
                ),
            });
        }
        walk
    }

    fn note(&mut self, f: Failure) {
        if self.failure.as_ref().is_none_or(|old| f.seq < old.seq) {
            self.failure = Some(f);
        }
    }

    /// The walk of a chain from seq `from` on, for a chain cut between parts: it checks what
    /// [`Walk::entry`] checks, except its first entry's link to the entry before, which only
    /// the walk up to there knows; [`Walk::absorb`] checks it. The checkpoints' signatures and
    /// the head are left to the walk from seq 1 too.
    fn continuation(mut meta: Meta, recorded: bool, from: u64) -> Self {
        // Built as a walk with no checkpoints to check and nothing recorded, then given them.
        let cps = std::mem::take(&mut meta.cps);
        meta.recorded_newest = None;
        let mut walk = Walk::new(meta, false, None);
        walk.cps = cps;
        walk.recorded = recorded;
        (walk.start, walk.expected, walk.continuation) = (from, from, true);
        walk
    }

    /// Goes on with `next`, the continuation of this walk from where its part ended: the
    /// result is what one walk over both pieces would have found, failure for failure and
    /// count for count, so that [`Walk::finish`] then reports the chain as [`verify_chain`]
    /// does.
    fn absorb(&mut self, next: Walk) {
        // The walk stopped at a bad entry, or `next` saw nothing (its seqs are all missing).
        let Some(first_seq) = next.first_seq else {
            return;
        };
        if self.stopped {
            return;
        }
        let expected = self.expected;
        if expected < next.start {
            // Entries missing at the end of this piece: the next stored one is `next`'s first.
            self.note(Failure {
                seq: expected,
                problem: format!(
                    "entry {expected} is missing (the next stored entry is {first_seq})"
                ),
            });
            self.stopped = true;
            return;
        }
        if let Some((prev, env_len)) = &next.first_link
            && !hex_is(&self.prev, prev)
        {
            // One walk would have stopped on the link, with the entry hashed.
            self.report.entries_checked += 1;
            self.report.bytes_checked += env_len;
            self.note(Failure {
                seq: expected,
                problem: format!(
                    "entry {expected} does not link to the hash of entry {}",
                    expected - 1
                ),
            });
            self.stopped = true;
            return;
        }
        self.report.entries_checked += next.report.entries_checked;
        self.report.bytes_checked += next.report.bytes_checked;
        if let Some(f) = next.failure {
            self.note(f);
        }
        self.at_checkpoints.extend(next.at_checkpoints);
        (self.prev, self.expected, self.stopped) = (next.prev, next.expected, next.stopped);
    }

    /// Checks entry `seq` (its stored hash and envelope, and its data row when present).
    /// Returns whether the walk goes on.
    fn entry(&mut self, seq: u64, stored: &[u8], data: Option<&[u8]>) -> bool {
        if self.stopped {
            return false;
        }
        self.first_seq.get_or_insert(seq);
        match self.check(seq, stored, data) {
            Ok(computed) => {
                if self
                    .cps
                    .iter()
                    .any(|CheckpointRecord::V1 { seq: s, .. }| *s == seq)
                {
                    self.at_checkpoints.push((seq, computed));
                }
                self.prev = computed;
                self.expected += 1;
                true
            }
            Err(f) => {
                self.note(f);
                self.stopped = true;
                false
            }
        }
    }

    fn check(
        &mut self,
        seq: u64,
        stored: &[u8],
        data: Option<&[u8]>,
    ) -> std::result::Result<[u8; 32], Failure> {
        let fail = |seq: u64, problem: String| Failure { seq, problem };
        let expected = self.expected;
        if seq != expected {
            return Err(fail(
                expected,
                format!("entry {expected} is missing (the next stored entry is {seq})"),
            ));
        }
        let (stored_hash, env) = ledger::split_stored(stored)
            .ok_or_else(|| fail(seq, format!("entry {seq} is shorter than its hash")))?;
        let computed: [u8; 32] = Sha256::digest(env).into();
        self.report.entries_checked += 1;
        self.report.bytes_checked += env.len() as u64;
        if computed.as_slice() != stored_hash {
            return Err(fail(
                seq,
                format!("entry {seq} was altered: its content no longer matches its hash"),
            ));
        }
        // The envelope as the ledger writes it is read by the scanner; anything else (damaged
        // or unusual bytes) by serde_json, whose verdict and message stand.
        let parsed: scan::Parsed<'_>;
        let e = match scan::checked(env) {
            Some(fields) => fields,
            None => {
                parsed = serde_json::from_slice(env).map_err(|err| {
                    fail(seq, format!("entry {seq} is not a valid envelope: {err}"))
                })?;
                parsed.fields()
            }
        };
        if e.v != 1 {
            return Err(fail(
                seq,
                format!("entry {seq} has unknown format version {}", e.v),
            ));
        }
        if e.chain != self.report.chain.as_bytes() {
            return Err(fail(
                seq,
                format!(
                    "entry {seq} belongs to chain '{}'",
                    String::from_utf8_lossy(e.chain)
                ),
            ));
        }
        if e.seq != seq {
            return Err(fail(
                seq,
                format!("entry {seq} carries seq {} (entries were reordered)", e.seq),
            ));
        }
        if self.continuation && seq == self.start {
            // The entry before is another part's: `absorb` checks the link.
            self.first_link = Some((e.prev.to_vec(), env.len() as u64));
        } else if !hex_is(&self.prev, e.prev) {
            return Err(fail(
                seq,
                format!("entry {seq} does not link to the hash of entry {}", seq - 1),
            ));
        }
        // Present data must match its digest; absent data must have been shredded.
        match data {
            None if !self.recorded
                || self
                    .shreds
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
            Some(data) => {
                self.report.bytes_checked += data.len() as u64;
                let digest: [u8; 32] = Sha256::digest(data).into();
                if !hex_is(&digest, e.data_sha256) {
                    return Err(fail(
                        seq,
                        format!(
                            "the data of entry {seq} was altered: it no longer matches data_sha256"
                        ),
                    ));
                }
            }
        }
        Ok(computed)
    }

    /// The checks after the walk: checkpoints in the walked range name the walked hashes, none
    /// lies beyond the last entry, and the head names the last entry.
    fn finish(mut self) -> ChainReport {
        let walked_to = self.expected - 1;
        let (start, head_seq) = (self.start, self.report.head_seq);
        let cps = std::mem::take(&mut self.cps);
        for CheckpointRecord::V1 { seq, hash, .. } in &cps {
            if *seq > walked_to {
                self.note(Failure {
                    seq: walked_to + 1,
                    problem: format!(
                        "the chain ends at seq {walked_to}, below the signed checkpoint at seq {seq}: entries were truncated"
                    ),
                });
            } else if *seq >= start {
                let matches = self
                    .at_checkpoints
                    .iter()
                    .any(|(s, walked)| s == seq && walked == hash);
                if !matches {
                    self.note(Failure {
                        seq: *seq,
                        problem: format!(
                            "entry {seq} no longer matches the checkpoint signed at that seq"
                        ),
                    });
                }
            }
        }
        if head_seq > walked_to {
            self.note(Failure {
                seq: walked_to + 1,
                problem: format!(
                    "entries {}..={head_seq} are missing: the head names seq {head_seq}",
                    walked_to + 1
                ),
            });
        } else if head_seq < walked_to {
            self.note(Failure {
                seq: head_seq + 1,
                problem: format!("entries after the recorded head (seq {head_seq}) exist"),
            });
        } else if head_seq >= start && self.head_hash != self.prev {
            self.note(Failure {
                seq: head_seq,
                problem: format!("the recorded head hash does not match entry {head_seq}"),
            });
        }
        let mut report = self.report;
        if let Some(f) = self.failure {
            report.ok = false;
            report.first_bad_seq = Some(f.seq);
            report.problem = Some(f.problem);
        }
        report
    }
}

/// Each byte's two lowercase hex digits, by value (`HEX_PAIRS[0xa5] == *b"a5"`).
const HEX_PAIRS: [[u8; 2]; 256] = {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut pairs = [[0u8; 2]; 256];
    let mut b = 0;
    while b < 256 {
        pairs[b] = [DIGITS[b >> 4], DIGITS[b & 15]];
        b += 1;
    }
    pairs
};

/// The lowercase hex of a hash, on the stack.
fn hex_of(bytes: &[u8; 32]) -> [u8; 64] {
    let mut buf = [0u8; 64];
    for (pair, b) in buf.chunks_exact_mut(2).zip(bytes) {
        pair.copy_from_slice(&HEX_PAIRS[usize::from(*b)]);
    }
    buf
}

/// Whether `hex` is the lowercase hex of `bytes`: each stored digit pair against its byte's
/// pair, the differences or-ed together, so there is neither a branch per digit nor a call to
/// `memcmp` (a full verify compares two or three hashes per entry).
fn hex_is(bytes: &[u8; 32], hex: &[u8]) -> bool {
    let Ok(hex) = <&[u8; 64]>::try_from(hex) else {
        return false;
    };
    let diff = hex
        .chunks_exact(2)
        .zip(bytes)
        .fold(0u16, |diff, (pair, b)| {
            let [hi, lo] = HEX_PAIRS[usize::from(*b)];
            diff | (u16::from_ne_bytes([hi, lo]) ^ u16::from_ne_bytes([pair[0], pair[1]]))
        });
    diff == 0
}

/// The lowercase hex of a hash as a `String`, in one allocation of the exact size
/// (`hex::encode` pushes a `char` at a time; a full verify does this once per chain).
fn hex_string(bytes: &[u8; 32]) -> String {
    String::from_utf8(hex_of(bytes).to_vec()).unwrap_or_default()
}

/// The seq of an entry key (`chain key ‖ seq`), 0 when the key is too short.
fn key_seq(key: &[u8]) -> u64 {
    key.get(CHAIN_KEY_LEN..CHAIN_KEY_LEN + 8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_be_bytes)
}

/// Verifies `chain`. A chain without a head (no entries) verifies trivially with head 0.
pub fn verify_chain(
    r: &impl Reader,
    chain: &ChainId,
    keys: &KeyRing,
    mode: Mode,
) -> Result<ChainReport> {
    let meta = Meta::load(r, chain, keys)?;
    let recorded = recorded(r)?;
    // The anchor: the newest checkpoint that verifies and whose entry still hashes to it.
    let mut anchor: Option<(u64, [u8; 32])> = None;
    let (mut anchor_entries, mut anchor_bytes) = (0u64, 0u64);
    if mode == Mode::FromCheckpoint {
        // Among the checkpoints whose signature verifies (each checked once, in `Meta::load`).
        for (cp, ok) in meta.cps.iter().zip(&meta.signed).rev() {
            let CheckpointRecord::V1 { seq, hash, .. } = cp;
            if !ok {
                continue;
            }
            if let Some(stored) = r.get(ENTRIES, &ledger::entry_key(chain, *seq))? {
                anchor_bytes += stored.len() as u64;
                anchor_entries += 1;
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
    let mut walk = Walk::new(meta, recorded, anchor);
    walk.report.entries_checked += anchor_entries;
    walk.report.bytes_checked += anchor_bytes;
    let range = Range::prefix(&chain.key()).from(&ledger::entry_key(chain, walk.start));
    r.scan_joined(ENTRIES, DATA, &range, &mut |key, stored, data| {
        Ok(if walk.entry(key_seq(key), stored, data) {
            ControlFlow::Continue(())
        } else {
            ControlFlow::Break(())
        })
    })?;
    Ok(walk.finish())
}

/// Most threads a full verify uses (one per core up to this).
pub const MAX_THREADS: usize = 4;

/// The threads a full verify uses on this machine: one per core, at most [`MAX_THREADS`].
pub fn threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(MAX_THREADS)
}

/// Every chain's metadata for a full verify, each table read whole in key order: the heads
/// (which chains are walked, and how far), and the chain-keyed rows of the checkpoints, shreds
/// and newest-checkpoint tables. A part's walk takes each chain's rows as it reaches the chain
/// ([`ByChainCursor`]), so nothing per chain is built or moved before the scans.
struct Ledger {
    heads: Vec<(ChainId, HeadRecord)>,
    /// Each checkpoint with whether its signature verifies ([`signature_verdicts`]).
    cps: ByChain<(CheckpointRecord, bool)>,
    shreds: ByChain<(u64, u64)>,
    latest: ByChain<u64>,
}

impl Ledger {
    /// Reads the tables and checks every checkpoint's signature on `threads` threads.
    fn load(r: &impl Reader, keys: &KeyRing, threads: usize) -> Result<Ledger> {
        let cps = by_chain(r, ledger::CHECKPOINTS, |v| {
            codec::decode::<CheckpointRecord>(ledger::CHECKPOINTS.name(), v)
        })?;
        let signed = signature_verdicts(&cps, keys, threads);
        Ok(Ledger {
            heads: ledger::all_heads(r)?,
            cps: cps
                .into_iter()
                .zip(signed)
                .map(|((ck, cp), ok)| (ck, (cp, ok)))
                .collect(),
            shreds: by_chain(r, ledger::SHREDS, |v| {
                let ShredRecord::V1 {
                    from_seq,
                    through_seq,
                    ..
                } = codec::decode(ledger::SHREDS.name(), v)?;
                Ok((from_seq, through_seq))
            })?,
            latest: by_chain(r, ledger::LATEST_CHECKPOINT, |v| {
                let LatestCheckpointRecord::V1 { seq } =
                    codec::decode(ledger::LATEST_CHECKPOINT.name(), v)?;
                Ok(seq)
            })?,
        })
    }
}

/// Verifies every chain from seq 1 ([`Mode::Full`]) with one sequential pass over each ledger
/// table instead of a lookup per chain and per entry: the same checks as [`verify_chain`] in
/// [`Mode::Full`], entry for entry, for every chain with a head.
///
/// The key space is cut into `parts` ranges holding about as many entries each (by the heads'
/// seqs; a chain longer than a part is cut at a seq, see [`split`]), and each range is read and
/// checked on its own thread ([`Reader::scan_joined_parts`]): no entry is copied between
/// threads, and the work grows with the cores. `out` gets each chain's report, with the index
/// of its part (below `parts`; the parts follow the key order), from the thread that walked
/// it: in the chains' key order within a part, the parts at once.
///
/// Memory: the chains' heads, checkpoints and shreds.
pub fn verify_all_full(
    r: &impl Reader,
    keys: &KeyRing,
    parts: usize,
    out: &(dyn Fn(usize, ChainReport) + Sync),
) -> Result<()> {
    let recorded = recorded(r)?;
    // The signatures are checked on the cores, however many parts the scan is cut into.
    let ledger = Ledger::load(r, keys, parts.min(threads()))?;
    let (ranges, mut walkers): (Vec<Range>, Vec<PartWalk<'_>>) = split(&ledger.heads, parts)
        .into_iter()
        .enumerate()
        .map(|(part, (range, pieces))| {
            // The part's chains come in key order from its first piece's on.
            let first = pieces.first().map(|p| p.ck).unwrap_or_default();
            let walker = PartWalk {
                part,
                heads: &ledger.heads,
                cps: ByChainCursor::from(&ledger.cps, &first),
                shreds: ByChainCursor::from(&ledger.shreds, &first),
                latest: ByChainCursor::from(&ledger.latest, &first),
                pieces: pieces.into_iter(),
                current: None,
                cut: Vec::new(),
                recorded,
                out,
            };
            (range, walker)
        })
        .unzip();
    let scans: Vec<JoinPart<'_>> = ranges
        .into_iter()
        .zip(walkers.iter_mut())
        .map(|(range, walker)| {
            let visit = move |key: &[u8], stored: &[u8], data: Option<&[u8]>| {
                walker.entry(key, stored, data);
                Ok(ControlFlow::Continue(()))
            };
            (range, Box::new(visit) as _)
        })
        .collect();
    let read = r.scan_joined_parts(ENTRIES, DATA, scans);
    // The chains cut between parts: their pieces, in part order, merged into one walk each and
    // reported with the part of their first piece (where the chain is the last one).
    let mut merged: Option<(usize, [u8; CHAIN_KEY_LEN], Walk)> = None;
    for (part, ck, walk) in walkers.into_iter().flat_map(PartWalk::finish) {
        match merged.as_mut() {
            Some((_, chain, whole)) if *chain == ck => whole.absorb(walk),
            _ => {
                if let Some((part, _, whole)) = merged.replace((part, ck, walk)) {
                    out(part, whole.finish());
                }
            }
        }
    }
    if let Some((part, _, whole)) = merged {
        out(part, whole.finish());
    }
    Ok(read?)
}

/// Whether each checkpoint of `cps` carries a valid signature ([`KeyRing::verifies_each`], in
/// batches), checked on up to `threads` threads, each taking a run of the rows: the same
/// verdicts as [`KeyRing::verifies`] per checkpoint, for about a third of its cost. A row whose
/// key names no chain gets `false` (no chain's walk reaches it).
fn signature_verdicts(
    cps: &ByChain<CheckpointRecord>,
    keys: &KeyRing,
    threads: usize,
) -> Vec<bool> {
    let rows: Vec<Option<(ChainId, &CheckpointRecord)>> = cps
        .iter()
        .map(|(ck, cp)| ChainId::from_key(ck).map(|chain| (chain, cp)))
        .collect();
    let check = |rows: &[Option<(ChainId, &CheckpointRecord)>]| -> Vec<bool> {
        let named: Vec<(ChainId, &CheckpointRecord)> = rows.iter().flatten().copied().collect();
        let mut verdicts = keys.verifies_each(&named).into_iter();
        rows.iter()
            .map(|row| row.is_some() && verdicts.next().unwrap_or(false))
            .collect()
    };
    // Below a few batches a thread costs more than it saves.
    let per_thread = rows
        .len()
        .div_ceil(threads.max(1))
        .max(4 * crate::audit::signing::SIGNATURE_BATCH);
    if rows.len() <= per_thread {
        return check(&rows);
    }
    std::thread::scope(|scope| {
        let mut runs = rows.chunks(per_thread);
        let first = runs.next().unwrap_or_default();
        let others: Vec<_> = runs.map(|run| scope.spawn(move || check(run))).collect();
        let mut out = check(first);
        for other in others {
            // A panic in a check is a bug: it goes on as a panic of the caller.
            out.extend(
                other
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p)),
            );
        }
        out
    })
}

/// The rows of a ledger metadata table (keyed `chain key ‖ …`), decoded, in key order.
type ByChain<T> = Vec<([u8; CHAIN_KEY_LEN], T)>;

/// Reads `table` whole, in key order, decoding each value with `decode`.
fn by_chain<T>(
    r: &impl Reader,
    table: crate::store::Table,
    decode: impl Fn(&[u8]) -> std::result::Result<T, crate::store::Error>,
) -> Result<ByChain<T>> {
    let mut rows = Vec::new();
    r.scan(table, &Range::all(), Dir::Asc, &mut |k, v| {
        if let Some(ck) = chain_key(k) {
            rows.push((ck, decode(v)?));
        }
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(rows)
}

/// A part's place in a [`ByChain`] table: asked for the chains in key order, it hands each
/// its rows with no search and no copy (a merge of the table with the heads).
struct ByChainCursor<'a, T> {
    rest: &'a [([u8; CHAIN_KEY_LEN], T)],
}

impl<'a, T> ByChainCursor<'a, T> {
    /// The cursor at the first row of chain `first` or after.
    fn from(rows: &'a ByChain<T>, first: &[u8; CHAIN_KEY_LEN]) -> Self {
        let at = rows.partition_point(|(k, _)| ck_order(k, first).is_lt());
        ByChainCursor { rest: &rows[at..] }
    }

    /// The rows of chain `ck`, skipping those of chains before it (chains with no head, which
    /// are not walked). Called with the chains in key order.
    fn of(&mut self, ck: &[u8; CHAIN_KEY_LEN]) -> impl Iterator<Item = &'a T> + use<'a, T> {
        // Mostly the next row is this chain's or a later one's: the binary search, whose probes
        // each miss the cache in a table of a row per chain, only when rows are to be skipped.
        let skip = match self.rest.first() {
            Some((k, _)) if ck_order(k, ck).is_lt() => {
                self.rest.partition_point(|(k, _)| ck_order(k, ck).is_lt())
            }
            _ => 0,
        };
        let rest = &self.rest[skip..];
        let take = rest
            .iter()
            .take_while(|(k, _)| ck_order(k, ck).is_eq())
            .count();
        let (mine, after) = rest.split_at(take);
        self.rest = after;
        mine.iter().map(|(_, v)| v)
    }
}

/// Every chain's report of a full verify ([`verify_all_full`] on [`threads`]), in the chains'
/// key order (`platform`, then tenants by id), as [`ledger::all_heads`] lists them. Memory: a
/// report per chain.
pub fn all_full_reports(r: &impl Reader, keys: &KeyRing) -> Result<Vec<ChainReport>> {
    reports_in_parts(r, keys, threads())
}

/// [`all_full_reports`] in `parts` parts: a list per part, each filled by its own thread in key
/// order, so that concatenated they are in key order with no sort.
fn reports_in_parts(r: &impl Reader, keys: &KeyRing, parts: usize) -> Result<Vec<ChainReport>> {
    let lists: Vec<std::sync::Mutex<Vec<ChainReport>>> =
        (0..parts).map(|_| std::sync::Mutex::default()).collect();
    verify_all_full(r, keys, parts, &|part, report| {
        if let Some(list) = lists.get(part) {
            list.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(report);
        }
    })?;
    Ok(lists
        .into_iter()
        .flat_map(|list| {
            list.into_inner()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        })
        .collect())
}

/// A chain's share of a part of a full verify: the whole chain, or, for a chain cut between
/// parts, its seqs from `from` up to the next piece's first.
struct Piece {
    ck: [u8; CHAIN_KEY_LEN],
    /// The chain's place in [`Ledger::heads`].
    head: usize,
    /// The first seq of the piece: 1, or where a cut put it.
    from: u64,
    /// Whether the chain is cut between parts: the piece's walk is then merged with the
    /// others' ([`Walk::absorb`]) and reported after the scans.
    cut: bool,
}

/// Cuts the chains, in key order, into at most `parts` ranges with about the same number of
/// entries each (a chain's head seq), cutting a chain with more entries than a part holds at a
/// seq (a ledger whose entries are mostly in one chain still spreads over every part). The first
/// range starts at the first key and the last ends after the last, so together they cover every
/// entry; every part holds at least one entry, so there are fewer parts than `parts` when there
/// are fewer entries.
fn split(heads: &[(ChainId, HeadRecord)], parts: usize) -> Vec<(Range, Vec<Piece>)> {
    let entries = |HeadRecord::V1 { seq, .. }: &HeadRecord| u128::from(*seq);
    let total: u128 = heads.iter().map(|(_, h)| entries(h)).sum();
    let parts = parts.max(1);
    // The entries of the parts so far and of the part being filled: its share of the total.
    let share = |filled: usize| total * (filled as u128 + 1) / parts as u128;
    let mut out: Vec<(Range, Vec<Piece>)> = Vec::with_capacity(parts);
    let mut part_share = share(0);
    let (mut lo, mut current, mut done) = (None::<Vec<u8>>, Vec::new(), 0u128);
    let range = |lo: &Option<Vec<u8>>, hi: Option<&[u8]>| {
        let r = lo
            .as_deref()
            .map_or_else(Range::all, |lo| Range::all().from(lo));
        match hi {
            Some(hi) => r.until(hi),
            None => r,
        }
    };
    for (head, (chain, record)) in heads.iter().enumerate() {
        let (ck, n) = (chain.key(), entries(record));
        // The first seq of the chain not yet in a part.
        let mut from = 1u64;
        loop {
            let left = n.saturating_sub(u128::from(from - 1));
            let room = part_share.saturating_sub(done);
            if out.len() + 1 >= parts || left <= room {
                current.push(Piece {
                    ck,
                    head,
                    from,
                    cut: from > 1,
                });
                done += left;
                break;
            }
            // The part is full before the chain's end: the entries that fit go in (at least
            // one, so that no part is empty), and the part ends where the rest begins.
            let fits = if current.is_empty() {
                room.max(1)
            } else {
                room
            };
            let cut_at = from + u64::try_from(fits).unwrap_or(u64::MAX);
            let hi = if fits == 0 {
                ck.to_vec()
            } else {
                current.push(Piece {
                    ck,
                    head,
                    from,
                    cut: true,
                });
                done += fits;
                ledger::entry_key(chain, cut_at)
            };
            out.push((range(&lo, Some(&hi)), std::mem::take(&mut current)));
            part_share = share(out.len());
            lo = Some(hi);
            from = cut_at;
        }
    }
    out.push((range(&lo, None), current));
    out
}

/// The walks of one part of a full verify: fed the part's entries in key order, it walks each
/// chain of the part in turn and hands its report to `out`, or, for a chain cut between parts,
/// keeps its walk for [`verify_all_full`] to merge.
struct PartWalk<'a> {
    /// Every chain's head ([`Piece::head`] indexes it).
    heads: &'a [(ChainId, HeadRecord)],
    /// The part's place in each chain-keyed metadata table.
    cps: ByChainCursor<'a, (CheckpointRecord, bool)>,
    shreds: ByChainCursor<'a, (u64, u64)>,
    latest: ByChainCursor<'a, u64>,
    /// The part's pieces not yet walked, in key order (looked at through `as_slice`, which
    /// moves nothing, unlike a `Peekable`).
    pieces: std::vec::IntoIter<Piece>,
    /// The piece being walked: its chain key, whether it is cut, its walk.
    current: Option<([u8; CHAIN_KEY_LEN], bool, Walk)>,
    /// The walks of this part's pieces of cut chains, with their chain keys.
    cut: Vec<([u8; CHAIN_KEY_LEN], Walk)>,
    recorded: bool,
    /// This part's index, handed to `out` with each report.
    part: usize,
    out: &'a (dyn Fn(usize, ChainReport) + Sync),
}

impl PartWalk<'_> {
    fn entry(&mut self, key: &[u8], stored: &[u8], data: Option<&[u8]>) {
        let Some(ck) = chain_key(key) else { return };
        if self
            .current
            .as_ref()
            .is_none_or(|(c, _, _)| ck_order(c, &ck).is_ne())
        {
            if let Some((c, cut, walk)) = self.current.take() {
                self.close(c, cut, walk);
            }
            let next_is = |pieces: &std::vec::IntoIter<Piece>, order: std::cmp::Ordering| {
                pieces
                    .as_slice()
                    .first()
                    .is_some_and(|next| ck_order(&next.ck, &ck) == order)
            };
            // Chains with a head but no entry left: their walk finds nothing.
            while next_is(&self.pieces, std::cmp::Ordering::Less) {
                if let Some(piece) = self.pieces.next() {
                    let (c, cut, walk) = self.start(piece);
                    self.close(c, cut, walk);
                }
            }
            // Entries of a chain without a head are not walked (as per chain).
            if next_is(&self.pieces, std::cmp::Ordering::Equal)
                && let Some(piece) = self.pieces.next()
            {
                self.current = Some(self.start(piece));
            }
        }
        if let Some((_, _, walk)) = self.current.as_mut() {
            walk.entry(key_seq(key), stored, data);
        }
    }

    /// Starts the walk of `piece`, taking its chain's metadata rows (the pieces come in key
    /// order).
    fn start(&mut self, piece: Piece) -> ([u8; CHAIN_KEY_LEN], bool, Walk) {
        let (chain, head) = &self.heads[piece.head];
        let (cps, signed) = self.cps.of(&piece.ck).cloned().unzip();
        let meta = Meta {
            chain: *chain,
            head: Some(*head),
            cps,
            signed,
            shreds: self.shreds.of(&piece.ck).copied().collect(),
            recorded_newest: self.latest.of(&piece.ck).last().copied(),
        };
        let walk = if piece.from > 1 {
            Walk::continuation(meta, self.recorded, piece.from)
        } else {
            Walk::new(meta, self.recorded, None)
        };
        (piece.ck, piece.cut, walk)
    }

    fn close(&mut self, ck: [u8; CHAIN_KEY_LEN], cut: bool, walk: Walk) {
        if cut {
            self.cut.push((ck, walk));
        } else {
            (self.out)(self.part, walk.finish());
        }
    }

    /// Reports the chain being walked and the part's chains after the last entry, and returns
    /// the walks of its pieces of cut chains, with the part's index.
    fn finish(mut self) -> Vec<(usize, [u8; CHAIN_KEY_LEN], Walk)> {
        if let Some((ck, cut, walk)) = self.current.take() {
            self.close(ck, cut, walk);
        }
        while let Some(piece) = self.pieces.next() {
            let (ck, cut, walk) = self.start(piece);
            self.close(ck, cut, walk);
        }
        let part = self.part;
        self.cut
            .into_iter()
            .map(|(ck, walk)| (part, ck, walk))
            .collect()
    }
}

/// The chain key that starts a ledger key.
fn chain_key(key: &[u8]) -> Option<[u8; CHAIN_KEY_LEN]> {
    key.get(..CHAIN_KEY_LEN)?.try_into().ok()
}

/// Two chain keys in byte order, compared as a big-endian `u128` and the last byte: the same
/// order as `Ord` on the arrays, without the call to `memcmp` that costs more than the compare
/// (a full verify compares chain keys once or twice per entry).
fn ck_order(a: &[u8; CHAIN_KEY_LEN], b: &[u8; CHAIN_KEY_LEN]) -> std::cmp::Ordering {
    fn words(&[ref head @ .., last]: &[u8; CHAIN_KEY_LEN]) -> (u128, u8) {
        (u128::from_be_bytes(*head), last)
    }
    words(a).cmp(&words(b))
}

fn envelope_seq(env: &[u8]) -> Option<u64> {
    match scan::checked(env) {
        Some(fields) => Some(fields.seq),
        None => serde_json::from_slice::<scan::Parsed<'_>>(env)
            .ok()
            .map(|e| e.seq),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::actor::Actor;
    use crate::audit::Target;
    use crate::audit::signing::InstallKey;
    use crate::error::Error;
    use crate::store::Store;

    fn now() -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default()
    }

    fn tenant(n: u128) -> ChainId {
        ChainId::Tenant(uuid::Uuid::from_u128(n))
    }

    /// The hand-rolled comparisons agree with the obvious ones: `hex_is` with `hex::encode`
    /// and `ck_order` with `Ord` on the arrays, on bytes that differ in every position.
    #[test]
    fn hash_and_chain_key_comparisons_agree_with_the_plain_ones() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..2_000 {
            let mut hash = [0u8; 32];
            hash.iter_mut().for_each(|b| *b = next() as u8);
            let hex = hex::encode(hash);
            assert!(hex_is(&hash, hex.as_bytes()));
            assert_eq!(hex_of(&hash).as_slice(), hex.as_bytes());
            let at = (next() % 64) as usize;
            for other in [b'0', b'9', b'a', b'f', b'A', b'g'] {
                let mut changed = hex.clone().into_bytes();
                if changed[at] != other {
                    changed[at] = other;
                    assert!(!hex_is(&hash, &changed));
                }
            }
            assert!(!hex_is(&hash, &hex.as_bytes()[..63]));
            if hex.bytes().any(|c| c.is_ascii_alphabetic()) {
                assert!(!hex_is(&hash, hex.to_uppercase().as_bytes()));
            }

            let mut a = [0u8; CHAIN_KEY_LEN];
            a.iter_mut().for_each(|b| *b = next() as u8);
            let mut b = a;
            let i = (next() % CHAIN_KEY_LEN as u64) as usize;
            b[i] = next() as u8;
            assert_eq!(ck_order(&a, &b), a.cmp(&b), "{a:?} {b:?}");
            assert_eq!(ck_order(&b, &a), b.cmp(&a));
            assert!(ck_order(&a, &a).is_eq());
        }
    }

    /// A chain with most of the entries is cut at seqs so that every part holds about a
    /// quarter of them, and the parts' ranges meet end to end.
    #[test]
    fn one_busy_chain_is_cut_across_the_parts() {
        let head = |n: u128, seq: u64| {
            let head = HeadRecord::V1 {
                seq,
                hash: [0; 32],
                ts_micros: 0,
            };
            (tenant(n), head)
        };
        let parts = split(&[head(1, 2), head(2, 100), head(3, 2)], 4);
        let pieces: Vec<Vec<(u128, u64, bool)>> = parts
            .iter()
            .map(|(_, pieces)| {
                pieces
                    .iter()
                    // The chain's number is the last byte of its key (`Uuid::from_u128(n)`).
                    .map(|p| (u128::from(p.ck[CHAIN_KEY_LEN - 1]), p.from, p.cut))
                    .collect()
            })
            .collect();
        assert_eq!(
            pieces,
            [
                vec![(1, 1, false), (2, 1, true)],
                vec![(2, 25, true)],
                vec![(2, 51, true)],
                vec![(2, 77, true), (3, 1, false)],
            ]
        );
        let within =
            |part: usize, seq: u64| parts[part].0.contains(&ledger::entry_key(&tenant(2), seq));
        assert!(within(0, 24) && !within(0, 25) && within(1, 25) && within(1, 50));
        assert!(within(2, 51) && within(2, 76) && within(3, 77) && within(3, 101));
    }

    /// The one-pass walk over every chain reports exactly what the per-chain walk reports, for
    /// intact chains and for each kind of damage, cut into any number of parts.
    #[tokio::test]
    async fn the_one_pass_walk_reports_what_the_per_chain_walk_reports() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let key = Arc::new(InstallKey::from_seed(&[3; 32]));
        let ring = KeyRing::new([key.public()]);
        let mut chains = vec![ChainId::Platform];
        chains.extend((1..=10).map(tenant));
        for i in 0..12u64 {
            let (chains, key) = (chains.clone(), key.clone());
            store
                .write(now(), Actor::system("t"), move |ctx| {
                    for chain in &chains {
                        let a = ledger::append(
                            ctx,
                            chain,
                            "tenant.updated.v1",
                            &Target::new("row", i),
                            json!({"i": i}),
                        )?;
                        if i % 5 == 4 {
                            let cp = key.sign_checkpoint(
                                chain,
                                a.seq,
                                a.hash,
                                "2026-01-01T00:00:00.000000Z".into(),
                            );
                            ledger::put_checkpoint(ctx, chain, &cp)?;
                        }
                    }
                    Ok::<_, Error>(())
                })
                .await
                .unwrap();
        }
        // Damage: an entry removed (1), a data row altered (2), a data row deleted (3), the
        // newest entries truncated (4), an envelope byte changed (5), the newest checkpoint
        // deleted (6), every entry gone (7), entries of a chain with no head (8: head deleted),
        // an envelope rewritten with its hash (10: the next entry no longer links), a
        // checkpoint's signature altered (platform, seq 5: the full walk checks the signatures
        // in batches, the per-chain walk one by one). Shredded data is no damage (9), and the
        // shreds of the chain with no head are skipped (8).
        store
            .write(now(), Actor::system("t"), |ctx| {
                ctx.delete(ENTRIES, &ledger::entry_key(&tenant(1), 6))?;
                ctx.put(DATA, &ledger::entry_key(&tenant(2), 3), br#"{"i":99}"#)?;
                ctx.delete(DATA, &ledger::entry_key(&tenant(3), 8))?;
                for seq in 10..=12 {
                    ctx.delete(ENTRIES, &ledger::entry_key(&tenant(4), seq))?;
                }
                let k = ledger::entry_key(&tenant(5), 7);
                let mut stored = ctx.get(ENTRIES, &k)?.unwrap_or_default();
                if let Some(b) = stored.get_mut(40) {
                    *b ^= 1;
                }
                ctx.put(ENTRIES, &k, &stored)?;
                ctx.delete(ledger::CHECKPOINTS, &ledger::entry_key(&tenant(6), 10))?;
                ctx.delete_range(ENTRIES, &Range::prefix(&tenant(7).key()))?;
                ledger::shred_data(ctx, &tenant(8))?;
                ctx.delete(ledger::HEADS, &tenant(8).key())?;
                ledger::shred_data(ctx, &tenant(9))?;
                let k = ledger::entry_key(&tenant(10), 3);
                let stored = ctx.get(ENTRIES, &k)?.unwrap_or_default();
                let env = String::from_utf8_lossy(&stored[32..]).replace("row", "raw");
                let mut rewritten = Sha256::digest(env.as_bytes()).to_vec();
                rewritten.extend_from_slice(env.as_bytes());
                ctx.put(ENTRIES, &k, &rewritten)?;
                // The signature is the record's last field: its last byte is the top of `S`.
                let k = ledger::entry_key(&ChainId::Platform, 5);
                let mut cp = ctx.get(ledger::CHECKPOINTS, &k)?.unwrap_or_default();
                if let Some(b) = cp.last_mut() {
                    *b ^= 1;
                }
                ctx.put(ledger::CHECKPOINTS, &k, &cp)?;
                Ok::<_, Error>(())
            })
            .await
            .unwrap();
        let (per_chain, one_pass) = store
            .read(move |r| {
                let per_chain = ledger::all_heads(r)?
                    .iter()
                    .map(|(c, _)| verify_chain(r, c, &ring, Mode::Full))
                    .collect::<Result<Vec<_>>>()?;
                // One part, as many parts as threads, and more: parts of 132 / 16 and 132 / 50
                // entries cut every chain at one or more seqs, and 150 parts (one entry each)
                // at every seq, so each kind of damage falls before, on and after a cut.
                // The parts' lists are concatenated unsorted: in key order within each part,
                // the parts in key order.
                let one_pass = [1, 2, 3, 5, 7, 16, 50, 150]
                    .map(|parts| reports_in_parts(r, &ring, parts))
                    .into_iter()
                    .collect::<Result<Vec<_>>>()?;
                Ok::<_, Error>((per_chain, one_pass))
            })
            .await
            .unwrap();
        for reports in &one_pass {
            assert_eq!(*reports, per_chain);
        }
        let one_pass = &one_pass[0];
        let bad: Vec<(&str, Option<u64>)> = one_pass
            .iter()
            .filter(|r| !r.ok)
            .map(|r| (r.chain.as_str(), r.first_bad_seq))
            .collect();
        assert_eq!(bad.len(), 9, "{one_pass:#?}");
        assert_eq!(one_pass.len(), 10, "the chain without a head is not listed");
        assert!(one_pass.iter().all(|r| r.chain != tenant(8).to_string()));
        let first_bad = |n: u128| {
            one_pass
                .iter()
                .find(|r| r.chain == tenant(n).to_string())
                .and_then(|r| r.first_bad_seq)
        };
        assert_eq!(first_bad(1), Some(6));
        assert_eq!(first_bad(2), Some(3));
        assert_eq!(first_bad(3), Some(8));
        assert_eq!(first_bad(4), Some(10));
        assert_eq!(first_bad(5), Some(7));
        assert_eq!(first_bad(6), Some(10));
        assert_eq!(first_bad(7), Some(1));
        assert_eq!(first_bad(9), None);
        assert_eq!(first_bad(10), Some(4));
        let platform = one_pass.iter().find(|r| r.chain == "platform");
        assert_eq!(platform.and_then(|r| r.first_bad_seq), Some(5));
        assert!(
            platform
                .and_then(|r| r.problem.as_deref())
                .is_some_and(|p| p.contains("invalid signature")),
            "{platform:?}"
        );
    }
}
