//! The redo log (`tenantry.wal`): what makes a batch durable without writing its pages.
//!
//! A durable redb commit writes every page its transaction dirtied, copy-on-write, then
//! fsyncs. A tenant lifecycle write dirties about seven 4 KiB leaves at random places (the
//! record, four index keys, the audit entry, its data and the chain head), so 64 of them wrote
//! about 2 MB per commit (issue 13's measure: 34 KB written per write). A usage batch of 100
//! events for random tenants dirties a few hundred.
//!
//! Instead, the writer appends what the batch changed (its puts and deletes, as keys and values)
//! to this log, fdatasyncs that one sequential append, and commits to redb without durability
//! (`Durability::None`): readers see the commit at once, and its pages stay in redb's write
//! buffer. A **checkpoint** is a durable redb commit: it writes each dirty page once for every
//! batch since the last one, after which the log starts again from its beginning. The writer
//! makes a batch's own commit the checkpoint every [`CHECKPOINT_EVERY`], when the log is full,
//! and at close. This is PostgreSQL's design (a write-ahead log plus checkpoints), at the level
//! of redb's keys.
//!
//! **Replay.** Each logged batch has a log sequence number (LSN), and its transaction stores it
//! in `meta["wal_lsn"]`, so the durable file knows the last batch it holds. [`replay`] (at every
//! open, before the writer starts) applies the records after it in order and commits them
//! durably. A batch is answered only after its record is synced, and committed to redb only
//! then, so an answered write survives a crash, and nothing a reader saw can be lost.
//!
//! **Format.** Records follow each other from offset 0. Each is a 32-byte header (the magic
//! `TWL1`, the payload length as u32 LE, the LSN as u64 LE, the first 16 bytes of the keyed BLAKE3
//! of LSN ++ length ++ payload) and its payload, a sequence of operations:
//! - `1` put: table, key, value;
//! - `2` delete: table, key;
//! - `3` delete range: table, lower bound, upper bound;
//!
//! where a table is a u8 length and its name, a key or value a u32 LE length and its bytes, and a
//! bound a tag (`0` unbounded, `1` included, `2` excluded) and, unless unbounded, a key. Reading
//! stops at the first header whose magic, checksum or length does not hold (a torn or cancelled
//! record, zeros, or an older record), and at an LSN that does not follow the previous one.
//! Records older than the file's `wal_lsn` (left over from before a checkpoint) are skipped.
//!
//! The checksum's key is 32 random bytes kept in the data file (`meta["wal_key"]`, made at the
//! first open). A client's stored value can therefore hold the bytes of a record, and a replay
//! that reads from a stale place still cannot take them for one: without the key, no one can
//! make a checksum hold.
//!
//! The file grows in [`GROW_BY`] steps of written zeros up to [`CAPACITY`], so an append
//! overwrites allocated blocks and its fdatasync has no file size to record.

use std::fs::File;
use std::io::Read;
use std::ops::Bound;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use redb::{ReadableTable, TableDefinition};

use super::{Error, META, Result};

/// File name of the redo log inside the data dir.
pub const WAL_FILE: &str = "tenantry.wal";
/// The log's largest size: a batch that does not fit in what is left commits durably instead
/// (a checkpoint), and the log starts again.
pub const CAPACITY: u64 = 64 * 1024 * 1024;
/// The log grows by this many bytes of zeros at a time.
pub const GROW_BY: u64 = 1024 * 1024;
/// The longest time between two checkpoints while writes come in; it bounds the work of a
/// replay and how long redb's write buffer holds a page.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// The `meta` key holding the LSN of the last logged batch a transaction contains (u64 BE).
pub const LSN_KEY: &[u8] = b"wal_lsn";
/// The `meta` key holding the checksum key of the records (32 bytes).
pub const KEY_KEY: &[u8] = b"wal_key";

const MAGIC: &[u8; 4] = b"TWL1";
const HEADER: usize = 32;

pub(super) const OP_PUT: u8 = 1;
pub(super) const OP_DELETE: u8 = 2;
pub(super) const OP_DELETE_RANGE: u8 = 3;

/// Appends one operation to a batch's payload (see the module doc for the encoding).
pub(super) fn encode_op(out: &mut Vec<u8>, op: u8, table: &str, key: &[u8], value: Option<&[u8]>) {
    out.push(op);
    put_table(out, table);
    put_bytes(out, key);
    if let Some(v) = value {
        put_bytes(out, v);
    }
}

/// Appends a delete-range operation to a batch's payload.
pub(super) fn encode_range(out: &mut Vec<u8>, table: &str, lo: Bound<&[u8]>, hi: Bound<&[u8]>) {
    out.push(OP_DELETE_RANGE);
    put_table(out, table);
    for b in [lo, hi] {
        match b {
            Bound::Unbounded => out.push(0),
            Bound::Included(k) => {
                out.push(1);
                put_bytes(out, k);
            }
            Bound::Excluded(k) => {
                out.push(2);
                put_bytes(out, k);
            }
        }
    }
}

fn put_table(out: &mut Vec<u8>, table: &str) {
    // Table names are short constants (`Table::new`); the encoding allows 255 bytes.
    let name = &table.as_bytes()[..table.len().min(255)];
    out.push(name.len() as u8);
    out.extend_from_slice(name);
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

fn checksum(key: &[u8; 32], lsn: u64, payload: &[u8]) -> [u8; 16] {
    let mut h = blake3::Hasher::new_keyed(key);
    h.update(&lsn.to_le_bytes());
    h.update(&(payload.len() as u32).to_le_bytes());
    h.update(payload);
    let mut out = [0u8; 16];
    out.copy_from_slice(&h.finalize().as_bytes()[..16]);
    out
}

/// The open log, owned by the writer thread.
pub(super) struct Wal {
    file: File,
    /// The checksum key (`meta["wal_key"]`).
    key: [u8; 32],
    path: PathBuf,
    /// Where the next record goes.
    pos: u64,
    /// Bytes of the file known to be allocated and written (zeros or records).
    len: u64,
    /// The LSN of the next record.
    next_lsn: u64,
    /// Checkpoint interval.
    every: Duration,
    /// When the file last took a durable commit.
    last_checkpoint: Instant,
    /// Non-durable commits since then.
    pending: u64,
}

/// The decision for one batch's commit.
pub(super) enum Plan {
    /// Log the batch under this LSN, then commit without durability.
    Log(u64),
    /// Commit durably (a checkpoint); the log is not needed for this batch.
    Durable,
}

impl Wal {
    /// Opens (creating if needed) the log beside `data_file`, for appending after `last_lsn`
    /// (the file's `wal_lsn` after [`replay`]). Records already in it are all at or below
    /// `last_lsn` then, so the next append may overwrite them from offset 0.
    ///
    /// Errors: [`Error::Storage`] for I/O.
    pub(super) fn open(
        data_file: &Path,
        key: [u8; 32],
        last_lsn: u64,
        every: Duration,
    ) -> Result<Wal> {
        let path = wal_path(data_file);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::storage(format!("opening {}: {e}", path.display())))?;
        super::set_private_file(&path)?;
        let len = file
            .metadata()
            .map_err(|e| Error::storage(format!("{}: {e}", path.display())))?
            .len();
        Ok(Wal {
            file,
            key,
            path,
            pos: 0,
            len,
            next_lsn: last_lsn + 1,
            every,
            last_checkpoint: Instant::now(),
            pending: 0,
        })
    }

    /// How to commit a batch whose payload is `payload_len` bytes: durably when a checkpoint is
    /// due or the record would not fit, else logged.
    pub(super) fn plan(&self, payload_len: usize) -> Plan {
        let due = self.last_checkpoint.elapsed() >= self.every;
        let fits = self.pos + (HEADER + payload_len) as u64 <= CAPACITY;
        if due || !fits {
            Plan::Durable
        } else {
            Plan::Log(self.next_lsn)
        }
    }

    /// Writes record `lsn` with `payload` at the end of the log and syncs it. On `Err` the log
    /// is as before the call (the partial record was cancelled).
    ///
    /// Errors: [`AppendError::Refused`] when nothing of the record will be replayed;
    /// [`AppendError::Unknown`] when the write failed and so did its cancellation.
    pub(super) fn append(
        &mut self,
        lsn: u64,
        payload: &[u8],
    ) -> std::result::Result<(), AppendError> {
        let end = self.pos + (HEADER + payload.len()) as u64;
        self.grow_to(end).map_err(AppendError::Refused)?;
        let mut record = Vec::with_capacity(HEADER + payload.len());
        record.extend_from_slice(MAGIC);
        record.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        record.extend_from_slice(&lsn.to_le_bytes());
        record.extend_from_slice(&checksum(&self.key, lsn, payload));
        record.extend_from_slice(payload);
        let written = self
            .file
            .write_all_at(&record, self.pos)
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            let err = Error::storage(format!("writing {}: {e}", self.path.display()));
            return match self.cancel_at(self.pos) {
                Ok(()) => Err(AppendError::Refused(err)),
                Err(_) => Err(AppendError::Unknown(err)),
            };
        }
        self.pos = end;
        self.next_lsn = lsn + 1;
        Ok(())
    }

    /// Undoes the last [`Wal::append`] after its redb commit failed: the record's header is
    /// zeroed and synced, so a replay stops before it, and its LSN and place are used again.
    ///
    /// Errors: [`Error::Storage`]; the record may then still be replayed.
    pub(super) fn cancel_last(&mut self, lsn: u64, payload_len: usize) -> Result<()> {
        let at = self.pos - (HEADER + payload_len) as u64;
        self.cancel_at(at)?;
        self.pos = at;
        self.next_lsn = lsn;
        Ok(())
    }

    fn cancel_at(&self, at: u64) -> Result<()> {
        self.file
            .write_all_at(&[0u8; HEADER], at)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| Error::storage(format!("writing {}: {e}", self.path.display())))
    }

    /// Makes sure the file is written up to `end` (in [`GROW_BY`] steps of zeros), and synced.
    fn grow_to(&mut self, end: u64) -> Result<()> {
        if end <= self.len {
            return Ok(());
        }
        let target = end.div_ceil(GROW_BY) * GROW_BY;
        let zeros = vec![0u8; GROW_BY as usize];
        let mut at = self.len;
        while at < target {
            let n = (target - at).min(GROW_BY) as usize;
            self.file
                .write_all_at(&zeros[..n], at)
                .map_err(|e| Error::storage(format!("growing {}: {e}", self.path.display())))?;
            at += n as u64;
        }
        self.file
            .sync_all()
            .map_err(|e| Error::storage(format!("growing {}: {e}", self.path.display())))?;
        self.len = target;
        Ok(())
    }

    /// Records a commit without durability (it needs a later checkpoint).
    pub(super) fn committed_lazily(&mut self) {
        self.pending += 1;
    }

    /// Records a durable commit: every logged batch is in the file, so the log starts again.
    pub(super) fn checkpointed(&mut self) {
        self.pos = 0;
        self.pending = 0;
        self.last_checkpoint = Instant::now();
    }

    /// Are there commits that only the log holds?
    pub(super) fn has_pending(&self) -> bool {
        self.pending > 0
    }

    /// After the last checkpoint of a clean close: cancels the record at offset 0, so the next
    /// open's replay stops at once instead of reading (and skipping) up to [`CAPACITY`] of
    /// records the file already holds.
    ///
    /// Errors: [`Error::Storage`]; the log is then only slower to replay, never wrong.
    pub(super) fn clear(&mut self) -> Result<()> {
        if self.len == 0 {
            return Ok(());
        }
        self.cancel_at(0)?;
        self.pos = 0;
        Ok(())
    }
}

/// Why an append failed.
pub(super) enum AppendError {
    /// Nothing of the record will be replayed: the batch may be failed.
    Refused(Error),
    /// The record could neither be completed nor cancelled: whether a replay applies it is
    /// unknown, so no answer to its batch would be true.
    Unknown(Error),
}

/// The log's path beside `data_file`.
pub fn wal_path(data_file: &Path) -> PathBuf {
    data_file.with_file_name(WAL_FILE)
}

/// The LSN stored in a transaction's `meta` (0 when none).
fn stored_lsn(meta: &impl ReadableTable<&'static [u8], &'static [u8]>) -> Result<u64> {
    Ok(meta
        .get(LSN_KEY)?
        .and_then(|v| <[u8; 8]>::try_from(v.value()).ok())
        .map_or(0, u64::from_be_bytes))
}

fn stored_key(meta: &impl ReadableTable<&'static [u8], &'static [u8]>) -> Result<Option<[u8; 32]>> {
    Ok(meta
        .get(KEY_KEY)?
        .and_then(|v| <[u8; 32]>::try_from(v.value()).ok()))
}

/// The file's checksum key for the log, made (random) and stored durably at its first open.
///
/// Errors: [`Error::Storage`] for I/O or when the system has no random source.
pub(super) fn key(db: &redb::Database) -> Result<[u8; 32]> {
    let txn = db.begin_write()?;
    let found = stored_key(&txn.open_table(META.def())?)?;
    if let Some(k) = found {
        // Every open after the first: nothing to write, so no commit (and no fsync) at start.
        txn.abort()?;
        return Ok(k);
    }
    let mut k = [0u8; 32];
    getrandom::fill(&mut k).map_err(|e| Error::storage(format!("no random source: {e}")))?;
    txn.open_table(META.def())?.insert(KEY_KEY, k.as_slice())?;
    txn.commit()?;
    Ok(k)
}

/// Stores `lsn` as the last logged batch in the transaction (inside a batch or a replay).
pub(super) fn store_lsn(
    meta: &mut redb::Table<'_, &'static [u8], &'static [u8]>,
    lsn: u64,
) -> Result<()> {
    meta.insert(LSN_KEY, lsn.to_be_bytes().as_slice())?;
    Ok(())
}

/// What [`replay`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Replayed {
    /// Records applied.
    pub records: u64,
    /// The LSN the file holds afterwards.
    pub last_lsn: u64,
}

/// Applies the log's records newer than the file's `wal_lsn`, in order, in one durable commit
/// (see the module doc). Without a log, or with nothing newer, it writes nothing.
///
/// Errors: [`Error::Storage`] for I/O and for a record that does not decode (its checksum held,
/// so that is a bug, not a torn write).
pub(super) fn replay(db: &redb::Database, data_file: &Path) -> Result<Replayed> {
    let path = wal_path(data_file);
    let (last, key) = {
        let txn = redb::ReadableDatabase::begin_read(db)?;
        match txn.open_table(META.def()) {
            Ok(meta) => (stored_lsn(&meta)?, stored_key(&meta)?),
            Err(redb::TableError::TableDoesNotExist(_)) => (0, None),
            Err(e) => return Err(e.into()),
        }
    };
    let mut done = Replayed {
        records: 0,
        last_lsn: last,
    };
    // No key: no record was ever written for this file.
    let Some(key) = key else {
        return Ok(done);
    };
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(done),
        Err(e) => return Err(Error::storage(format!("opening {}: {e}", path.display()))),
    };
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let txn = db.begin_write()?;
    let mut payload = Vec::new();
    loop {
        let mut header = [0u8; HEADER];
        if reader.read_exact(&mut header).is_err() || &header[..4] != MAGIC {
            break;
        }
        let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let mut lsn_bytes = [0u8; 8];
        lsn_bytes.copy_from_slice(&header[8..16]);
        let lsn = u64::from_le_bytes(lsn_bytes);
        if len as u64 > CAPACITY {
            break;
        }
        payload.resize(len, 0);
        if reader.read_exact(&mut payload).is_err()
            || header[16..32] != checksum(&key, lsn, &payload)
        {
            break;
        }
        if lsn <= last && done.records == 0 {
            // Already in the file: left from before the last checkpoint.
            continue;
        }
        if lsn != done.last_lsn + 1 {
            break;
        }
        apply(&txn, &payload).map_err(|e| {
            Error::storage(format!("replaying record {lsn} of {}: {e}", path.display()))
        })?;
        done.records += 1;
        done.last_lsn = lsn;
    }
    if done.records == 0 {
        txn.abort()?;
        return Ok(done);
    }
    {
        let mut meta = txn.open_table(META.def())?;
        store_lsn(&mut meta, done.last_lsn)?;
    }
    txn.commit()?;
    Ok(done)
}

/// A reader over one record's payload.
struct Ops<'a>(&'a [u8]);

impl<'a> Ops<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(Error::storage("a record ends inside an operation"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn table(&mut self) -> Result<&'a str> {
        let n = self.u8()? as usize;
        std::str::from_utf8(self.take(n)?).map_err(|_| Error::storage("a table name is not UTF-8"))
    }
    fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.take(4)?;
        let n = u32::from_le_bytes([n[0], n[1], n[2], n[3]]) as usize;
        self.take(n)
    }
    fn bound(&mut self) -> Result<Bound<&'a [u8]>> {
        match self.u8()? {
            0 => Ok(Bound::Unbounded),
            1 => Ok(Bound::Included(self.bytes()?)),
            2 => Ok(Bound::Excluded(self.bytes()?)),
            t => Err(Error::storage(format!("unknown bound tag {t}"))),
        }
    }
}

/// Applies one record's operations in `txn`.
fn apply(txn: &redb::WriteTransaction, payload: &[u8]) -> Result<()> {
    let mut ops = Ops(payload);
    while !ops.0.is_empty() {
        let op = ops.u8()?;
        let name = ops.table()?;
        let def: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new(name);
        match op {
            OP_PUT => {
                let (k, v) = (ops.bytes()?, ops.bytes()?);
                txn.open_table(def)?.insert(k, v)?;
            }
            OP_DELETE => {
                let k = ops.bytes()?;
                txn.open_table(def)?.remove(k)?;
            }
            OP_DELETE_RANGE => {
                let (lo, hi) = (ops.bound()?, ops.bound()?);
                txn.open_table(def)?
                    .retain_in::<&[u8], _>((lo, hi), |_, _| false)?;
            }
            other => return Err(Error::storage(format!("unknown operation {other}"))),
        }
    }
    Ok(())
}
