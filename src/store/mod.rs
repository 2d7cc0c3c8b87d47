//! The embedded store: one redb file in the data dir, one writer thread with group commit, and
//! read transactions off the async runtime.
//!
//! **Architecture Invariant:** only this module names redb types. Everything above sees
//! [`Table`] handles, byte keys built with [`keys::Key`], records encoded by [`codec`], and the
//! two contexts [`ReadCtx`] and [`WriteCtx`].
//!
//! Every table is `&[u8] -> &[u8]`. A table that was never written reads as empty, so a context
//! declares its tables as constants next to its code (`pub const TENANTS: Table =
//! Table::new("tenants")`) without a central registry.

pub mod codec;
mod error;
mod integrity;
pub mod keys;
mod offline;
pub mod page;
pub mod snapshot;
pub mod wal;
mod writer;

use std::collections::BTreeSet;
use std::ops::{Bound, ControlFlow};
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use chrono::{DateTime, Utc};
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Serialize, de::DeserializeOwned};
use uuid::Uuid;

pub use error::{Error, Result};
pub use offline::{Compacted, OfflineLock, check_file, compact, lock_offline};
pub use writer::{MAX_WEIGHT, WriterStats};

use crate::actor::Actor;

/// The schema version this build writes. A data file with a higher one is refused
/// ([`Error::SchemaTooNew`]); lower ones are migrated at start by [`crate::upgrade`].
///
/// - 1: the appliance core.
/// - 2: `job_runs` keyed by job name instead of the job's position in the enum.
/// - 3: tenant identity: every tenant has system roles seeded from its app's role templates.
/// - 4: audit shreds and each chain's newest checkpoint are recorded (`audit_shreds`,
///   `audit_latest_checkpoint`), so verify tells a shred from a deletion and notices deleted
///   checkpoints.
/// - 5: revenue-posture counters (`tenant_posture_counts`: tenants by plan, paying tenants by
///   plan, daily trial buckets), maintained with every tenant change.
/// - 6: raw usage events kept by receipt (`usage_event_receipts`, `usage_event_scrubs`); the
///   per-tenant rows of `usage_event_log` are still read, pruned and shredded.
/// - 7: the usage deduplication set keyed by event id first (`usage_dedupe`, moved from
///   `usage_event_ids`).
pub const SCHEMA_VERSION: u32 = 7;

/// File name of the redb database inside the data dir.
pub const DATA_FILE: &str = "tenantry.redb";

/// The meta table: `schema_version`, install id, key ids (DESIGN.md "Tables and keys").
pub const META: Table = Table::new("meta");

/// The page cache of [`Store::open`], bytes (the server uses `[store] cache_mib`).
pub const DEFAULT_CACHE_BYTES: usize = 16 * 1024 * 1024;

/// A named `&[u8] -> &[u8]` table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Table {
    name: &'static str,
}

impl Table {
    /// Declares a table by name. Names are part of the file format: never rename one.
    pub const fn new(name: &'static str) -> Table {
        Table { name }
    }
    /// The table's name in the file.
    pub fn name(self) -> &'static str {
        self.name
    }
    fn def(self) -> TableDefinition<'static, &'static [u8], &'static [u8]> {
        TableDefinition::new(self.name)
    }
}

/// A key range for scans: `[lo, hi)` style bounds over encoded keys.
#[derive(Clone, Debug)]
pub struct Range {
    lo: Bound<Vec<u8>>,
    hi: Bound<Vec<u8>>,
}

impl Range {
    /// Every key of the table.
    pub fn all() -> Range {
        Range {
            lo: Bound::Unbounded,
            hi: Bound::Unbounded,
        }
    }
    /// Every key that starts with `prefix`.
    pub fn prefix(prefix: &[u8]) -> Range {
        Range {
            lo: Bound::Included(prefix.to_vec()),
            hi: keys::prefix_end(prefix).map_or(Bound::Unbounded, Bound::Excluded),
        }
    }
    /// `[lo, hi)`.
    pub fn between(lo: Vec<u8>, hi: Vec<u8>) -> Range {
        Range {
            lo: Bound::Included(lo),
            hi: Bound::Excluded(hi),
        }
    }
    /// Narrows the range to keys strictly after `key` (ascending pagination).
    pub fn after(mut self, key: &[u8]) -> Range {
        if bound_allows_lo(&self.lo, key) {
            self.lo = Bound::Excluded(key.to_vec());
        }
        self
    }
    /// Narrows the range to keys strictly before `key` (descending pagination).
    pub fn before(mut self, key: &[u8]) -> Range {
        if bound_allows_hi(&self.hi, key) {
            self.hi = Bound::Excluded(key.to_vec());
        }
        self
    }
    /// Narrows the lower bound to `key` inclusive, if that is narrower.
    pub fn from(mut self, key: &[u8]) -> Range {
        if bound_allows_lo(&self.lo, key) {
            self.lo = Bound::Included(key.to_vec());
        }
        self
    }
    /// Narrows the upper bound to `key` exclusive, if that is narrower.
    pub fn until(mut self, key: &[u8]) -> Range {
        if bound_allows_hi(&self.hi, key) {
            self.hi = Bound::Excluded(key.to_vec());
        }
        self
    }
    /// Does the range hold `key`?
    pub fn contains(&self, key: &[u8]) -> bool {
        let lo = match &self.lo {
            Bound::Unbounded => true,
            Bound::Included(b) => key >= b.as_slice(),
            Bound::Excluded(b) => key > b.as_slice(),
        };
        let hi = match &self.hi {
            Bound::Unbounded => true,
            Bound::Included(b) => key <= b.as_slice(),
            Bound::Excluded(b) => key < b.as_slice(),
        };
        lo && hi
    }
    fn bounds(&self) -> (Bound<&[u8]>, Bound<&[u8]>) {
        (as_ref_bound(&self.lo), as_ref_bound(&self.hi))
    }
}

fn bound_allows_lo(lo: &Bound<Vec<u8>>, key: &[u8]) -> bool {
    match lo {
        Bound::Unbounded => true,
        Bound::Included(b) | Bound::Excluded(b) => key >= b.as_slice(),
    }
}
fn bound_allows_hi(hi: &Bound<Vec<u8>>, key: &[u8]) -> bool {
    match hi {
        Bound::Unbounded => true,
        Bound::Included(b) | Bound::Excluded(b) => key <= b.as_slice(),
    }
}
fn as_ref_bound(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(v) => Bound::Included(v.as_slice()),
        Bound::Excluded(v) => Bound::Excluded(v.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// Scan direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// Ascending key order.
    Asc,
    /// Descending key order.
    Desc,
}

/// What a committed batch changed, published to observers before callers get their answers so
/// that caches are already invalid when a response leaves (DESIGN.md "Write path").
#[derive(Clone, Debug, Default)]
pub struct CommitNotice {
    /// Things changed by the batch.
    pub touched: BTreeSet<Topic>,
}

/// One kind of thing a write changed.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Topic {
    /// An audit chain moved (its id, e.g. `platform`).
    Chain(String),
    /// A tenant record changed.
    Tenant(Uuid),
    /// A pool record changed (its id, e.g. `admin-2`).
    Pool(String),
    /// Anything else, named.
    Other(&'static str),
}

impl CommitNotice {
    fn merge(&mut self, other: CommitNotice) {
        self.touched.extend(other.touched);
    }
}

/// A callback run on the writer thread after each commit.
pub type CommitObserver = Arc<dyn Fn(&CommitNotice) + Send + Sync>;

/// The visitor of a scan: called with each `(key, value)`; return `Break` to stop.
pub type Visit<'a> = dyn FnMut(&[u8], &[u8]) -> Result<ControlFlow<()>> + 'a;

/// The visitor of [`Reader::scan_joined`]: `(key, value in a, value in b if any)`.
pub type JoinVisit<'a> = dyn FnMut(&[u8], &[u8], Option<&[u8]>) -> Result<ControlFlow<()>> + 'a;

/// One range of [`Reader::scan_joined_parts`] and its visitor, which may run on another thread.
pub type JoinPart<'a> = (
    Range,
    Box<dyn FnMut(&[u8], &[u8], Option<&[u8]>) -> Result<ControlFlow<()>> + Send + 'a>,
);

/// Read operations shared by [`ReadCtx`] and [`WriteCtx`].
pub trait Reader {
    /// The raw value at `key`, if any.
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Calls `f` with the value at `key`, if any, and says whether there was one. A snapshot
    /// lends the value straight from its page, with no copy (a directory page reads 50 records
    /// this way); a write copies it, as [`Reader::get`] does.
    fn get_with(
        &self,
        table: Table,
        key: &[u8],
        f: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<bool> {
        match self.get(table, key)? {
            Some(v) => f(&v).map(|()| true),
            None => Ok(false),
        }
    }

    /// Calls `f` with each `(key, value)` in `range`, in `dir` order, until it breaks.
    fn scan(&self, table: Table, range: &Range, dir: Dir, f: &mut Visit<'_>) -> Result<()>;

    /// Number of keys in `table`.
    fn len(&self, table: Table) -> Result<u64>;

    /// Calls `f` with each `(key, value)` of `a` in `range`, ascending, and the value at the
    /// same key in `b` if there is one, until it breaks: a join of two tables keyed alike (an
    /// audit entry and its data row). [`ReadCtx`] walks both tables once, side by side, instead
    /// of looking `b` up per key.
    fn scan_joined(&self, a: Table, b: Table, range: &Range, f: &mut JoinVisit<'_>) -> Result<()> {
        self.scan(a, range, Dir::Asc, &mut |k, v| {
            let other = self.get(b, k)?;
            f(k, v, other.as_deref())
        })
    }

    /// [`Reader::scan_joined`] over several ranges, each with its own visitor: a bulk read (a
    /// full verify). A snapshot ([`ReadCtx`]) scans them at once, one thread per range after the
    /// first (which runs on the calling thread): its pages are immutable, so the threads share
    /// them and copy nothing between them; and the pages it reads from the file do not enter the
    /// page cache ([`redb::without_cache_fill`]). A write scans them in turn. Returns the first
    /// error, after every part ran.
    fn scan_joined_parts(&self, a: Table, b: Table, parts: Vec<JoinPart<'_>>) -> Result<()> {
        let mut first_error = Ok(());
        for (range, mut f) in parts {
            let done = self.scan_joined(a, b, &range, &mut *f);
            first_error = first_error.and(done);
        }
        first_error
    }

    /// Decodes the record at `key`.
    fn get_record<R: DeserializeOwned>(&self, table: Table, key: &[u8]) -> Result<Option<R>>
    where
        Self: Sized,
    {
        self.get(table, key)?
            .map(|bytes| codec::decode(table.name(), &bytes))
            .transpose()
    }

    /// Is there a value at `key`?
    fn contains(&self, table: Table, key: &[u8]) -> Result<bool>
    where
        Self: Sized,
    {
        Ok(self.get(table, key)?.is_some())
    }

    /// The first `(key, value)` of `range` in `dir` order.
    fn first(&self, table: Table, range: &Range, dir: Dir) -> Result<Option<(Vec<u8>, Vec<u8>)>>
    where
        Self: Sized,
    {
        let mut out = None;
        self.scan(table, range, dir, &mut |k, v| {
            out = Some((k.to_vec(), v.to_vec()));
            Ok(ControlFlow::Break(()))
        })?;
        Ok(out)
    }
}

fn scan_table<T: ReadableTable<&'static [u8], &'static [u8]>>(
    t: &T,
    range: &Range,
    dir: Dir,
    f: &mut Visit<'_>,
) -> Result<()> {
    let iter = t.range::<&[u8]>(range.bounds())?;
    let mut step = |item: std::result::Result<_, redb::StorageError>| -> Result<ControlFlow<()>> {
        let (k, v): (redb::AccessGuard<&[u8]>, redb::AccessGuard<&[u8]>) = item?;
        f(k.value(), v.value())
    };
    match dir {
        Dir::Asc => {
            for item in iter {
                if step(item)?.is_break() {
                    break;
                }
            }
        }
        Dir::Desc => {
            for item in iter.rev() {
                if step(item)?.is_break() {
                    break;
                }
            }
        }
    }
    Ok(())
}

type ReadTable = redb::ReadOnlyTable<&'static [u8], &'static [u8]>;
/// The tables a snapshot opened, by name (`None`: the table was never written).
type OpenTables = std::cell::RefCell<Vec<(&'static str, Option<std::rc::Rc<SnapshotTable>>)>>;

/// A table a snapshot opened, with the leaf its last point read reached.
struct SnapshotTable {
    rows: ReadTable,
    finger: std::cell::RefCell<redb::LeafFinger>,
}

impl SnapshotTable {
    /// The value at `key`. Point reads of a snapshot start from the leaf the table's previous
    /// one reached ([`redb::ReadOnlyTable::get_near`]): the 50 records of a directory page,
    /// read in the order of their index, mostly share leaves, and a lookup that stays in the
    /// leaf skips the three page reads of a descent from the root.
    fn get(&self, key: &[u8]) -> Result<Option<redb::AccessGuard<'static, &'static [u8]>>> {
        // Taken out for the lookup, so a read from within a visitor finds no finger, not a
        // borrowed one.
        let mut finger = self.finger.take();
        let found = self.rows.get_near(key, &mut finger);
        self.finger.replace(finger);
        Ok(found?)
    }
}
/// A row read from a table: its key and value.
type Row<'a> = (
    redb::AccessGuard<'a, &'static [u8]>,
    redb::AccessGuard<'a, &'static [u8]>,
);

/// Most tables a snapshot keeps open (a read touches a handful; past this, the oldest goes).
const OPEN_TABLES: usize = 16;

/// A consistent snapshot for reads; never waits for the writer.
///
/// Tables are opened once per snapshot and kept: redb's `open_table` looks the table up by name
/// in the table tree, and a walk that reads a row per entry (verify, a page of tenants with their
/// details) would otherwise pay that lookup on every read.
pub struct ReadCtx {
    txn: redb::ReadTransaction,
    open: OpenTables,
}

impl ReadCtx {
    fn new(txn: redb::ReadTransaction) -> ReadCtx {
        ReadCtx {
            txn,
            open: std::cell::RefCell::default(),
        }
    }

    /// The open table, or `None` when it was never written.
    fn table(&self, table: Table) -> Result<Option<std::rc::Rc<SnapshotTable>>> {
        if let Some((_, t)) = self.open.borrow().iter().find(|(n, _)| *n == table.name) {
            return Ok(t.clone());
        }
        let t = match self.txn.open_table(table.def()) {
            Ok(rows) => Some(std::rc::Rc::new(SnapshotTable {
                rows,
                finger: Default::default(),
            })),
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(e.into()),
        };
        let mut open = self.open.borrow_mut();
        if open.len() >= OPEN_TABLES {
            open.remove(0);
        }
        open.push((table.name, t.clone()));
        Ok(t)
    }
}

impl Reader for ReadCtx {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let Some(t) = self.table(table)? else {
            return Ok(None);
        };
        Ok(t.get(key)?.map(|v| v.value().to_vec()))
    }
    fn get_with(
        &self,
        table: Table,
        key: &[u8],
        f: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<bool> {
        let Some(t) = self.table(table)? else {
            return Ok(false);
        };
        match t.get(key)? {
            Some(v) => f(v.value()).map(|()| true),
            None => Ok(false),
        }
    }
    fn scan(&self, table: Table, range: &Range, dir: Dir, f: &mut Visit<'_>) -> Result<()> {
        match self.table(table)? {
            Some(t) => scan_table(&t.rows, range, dir, f),
            None => Ok(()),
        }
    }
    fn len(&self, table: Table) -> Result<u64> {
        match self.table(table)? {
            Some(t) => Ok(t.rows.len()?),
            None => Ok(0),
        }
    }
    fn scan_joined(&self, a: Table, b: Table, range: &Range, f: &mut JoinVisit<'_>) -> Result<()> {
        let Some(ta) = self.table(a)? else {
            return Ok(());
        };
        let tb = self.table(b)?;
        join_tables(&ta.rows, tb.as_deref().map(|t| &t.rows), range, f)
    }
    fn scan_joined_parts(&self, a: Table, b: Table, parts: Vec<JoinPart<'_>>) -> Result<()> {
        let Some(ta) = self.table(a)? else {
            return Ok(());
        };
        let tb = self.table(b)?;
        let (ta, tb) = (&ta.rows, tb.as_deref().map(|t| &t.rows));
        let mut parts = parts.into_iter();
        let Some((range, mut first)) = parts.next() else {
            return Ok(());
        };
        std::thread::scope(|scope| {
            // A bulk read: the pages it reads from the file do not enter the page cache, so it
            // neither evicts the pages the server keeps hot nor pays an insert and an eviction
            // per page it will not read again.
            let scan = |range: &Range, f: &mut JoinVisit<'_>| {
                redb::without_cache_fill(|| join_tables(ta, tb, range, f))
            };
            let others: Vec<_> = parts
                .map(|(range, mut f)| scope.spawn(move || scan(&range, &mut *f)))
                .collect();
            let mut result = scan(&range, &mut *first);
            for other in others {
                // A visitor's panic is a bug: it goes on as a panic of the caller.
                let done = other
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p));
                result = result.and(done);
            }
            result
        })
    }
}

/// The join of [`Reader::scan_joined`] on two open tables: walks both once, side by side,
/// instead of looking `b` up per key.
fn join_tables(
    ta: &ReadTable,
    tb: Option<&ReadTable>,
    range: &Range,
    f: &mut JoinVisit<'_>,
) -> Result<()> {
    let mut others = match tb {
        Some(t) => Some(t.range::<&[u8]>(range.bounds())?),
        None => None,
    };
    // The pending row of `b`: its key is at or after the current key of `a`.
    let mut pending: Option<Row<'_>> = None;
    for item in ta.range::<&[u8]>(range.bounds())? {
        let (k, v) = item?;
        let key = k.value();
        let mut matched: Option<&[u8]> = None;
        if let Some(it) = others.as_mut() {
            loop {
                if pending.is_none() {
                    match it.next() {
                        Some(row) => pending = Some(row?),
                        None => break,
                    }
                }
                let Some((pk, _)) = pending.as_ref() else {
                    break;
                };
                match pk.value().cmp(key) {
                    std::cmp::Ordering::Less => pending = None,
                    std::cmp::Ordering::Equal => break,
                    std::cmp::Ordering::Greater => break,
                }
            }
            if let Some((pk, pv)) = pending.as_ref()
                && pk.value() == key
            {
                matched = Some(pv.value());
            }
        }
        if f(key, v.value(), matched)?.is_break() {
            break;
        }
    }
    Ok(())
}

/// The context of one write request inside a group-commit batch: the shared write
/// transaction, the request's `now` and actor, and what it changed.
pub struct WriteCtx<'t> {
    txn: &'t redb::WriteTransaction,
    tables: TableSet<'t>,
    /// The instant the request was made (from the [`crate::clock::Clock`]).
    pub now: DateTime<Utc>,
    /// Who made the request; the actor of its audit entries.
    pub actor: Actor,
    writes: usize,
    notice: CommitNotice,
    /// The batch's changes so far, as redo-log operations ([`wal`]).
    log: Vec<u8>,
}

impl<'t> WriteCtx<'t> {
    fn new(
        txn: &'t redb::WriteTransaction,
        tables: TableSet<'t>,
        log: Vec<u8>,
        now: DateTime<Utc>,
        actor: Actor,
    ) -> Self {
        WriteCtx {
            txn,
            tables,
            now,
            actor,
            writes: 0,
            notice: CommitNotice::default(),
            log,
        }
    }

    /// Ends the request: the batch's open tables and redo log (for the next request), what it
    /// changed, and whether it wrote.
    fn finish(self) -> (TableSet<'t>, Vec<u8>, CommitNotice, bool) {
        (self.tables, self.log, self.notice, self.writes > 0)
    }

    /// Stores `value` at `key`.
    pub fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> Result<()> {
        self.writes += 1;
        let t = self.tables.open(self.txn, table)?;
        self.tables.created(table);
        t.borrow_mut().insert(key, value)?;
        wal::encode_op(&mut self.log, wal::OP_PUT, table.name, key, Some(value));
        Ok(())
    }

    /// Stores `value` at `key` unless the key exists; returns whether it stored. An existing key
    /// keeps its value. One B-tree descent instead of a lookup and then an insert: for sets
    /// such as the usage deduplication ids, where the value is empty and the repeat is rare.
    pub fn insert_new(&mut self, table: Table, key: &[u8], value: &[u8]) -> Result<bool> {
        self.writes += 1;
        let t = self.tables.open(self.txn, table)?;
        self.tables.created(table);
        let mut t = t.borrow_mut();
        let old = t.insert(key, value)?.map(|v| v.value().to_vec());
        match old {
            None => {
                wal::encode_op(&mut self.log, wal::OP_PUT, table.name, key, Some(value));
                Ok(true)
            }
            Some(old) => {
                if old != value {
                    t.insert(key, old.as_slice())?;
                }
                Ok(false)
            }
        }
    }

    /// Encodes and stores a record.
    pub fn put_record<R: Serialize>(&mut self, table: Table, key: &[u8], record: &R) -> Result<()> {
        let bytes = codec::encode(record)?;
        self.put(table, key, &bytes)
    }

    /// Removes `key`; returns whether it existed.
    pub fn delete(&mut self, table: Table, key: &[u8]) -> Result<bool> {
        self.writes += 1;
        if !self.tables.exists(self.txn, table)? {
            return Ok(false);
        }
        let t = self.tables.open(self.txn, table)?;
        let existed = t.borrow_mut().remove(key)?.is_some();
        if existed {
            wal::encode_op(&mut self.log, wal::OP_DELETE, table.name, key, None);
        }
        Ok(existed)
    }

    /// Removes every key in `range`; returns how many were removed.
    pub fn delete_range(&mut self, table: Table, range: &Range) -> Result<u64> {
        self.writes += 1;
        if !self.tables.exists(self.txn, table)? {
            return Ok(0);
        }
        let t = self.tables.open(self.txn, table)?;
        let mut n = 0u64;
        t.borrow_mut()
            .retain_in::<&[u8], _>(range.bounds(), |_, _| {
                n += 1;
                false
            })?;
        if n > 0 {
            let (lo, hi) = range.bounds();
            wal::encode_range(&mut self.log, table.name, lo, hi);
        }
        Ok(n)
    }

    /// Records that this request changed `topic` (for caches, after commit).
    pub fn touch(&mut self, topic: Topic) {
        self.notice.touched.insert(topic);
    }

    /// Has this request written anything yet? A request that fails after writing forces its
    /// batch to be re-run without it.
    pub fn has_written(&self) -> bool {
        self.writes > 0
    }
}

// redb's `WriteTransaction::open_table` creates a missing table, and a created table is part of
// the commit even when empty. Reads therefore check [`TableSet`] first and read a missing table
// as empty, so a request that only read and then refused leaves no trace in the file.
impl Reader for WriteCtx<'_> {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if !self.tables.exists(self.txn, table)? {
            return Ok(None);
        }
        let t = self.tables.open(self.txn, table)?;
        let v = t.borrow().get(key)?.map(|v| v.value().to_vec());
        Ok(v)
    }
    fn scan(&self, table: Table, range: &Range, dir: Dir, f: &mut Visit<'_>) -> Result<()> {
        if !self.tables.exists(self.txn, table)? {
            return Ok(());
        }
        let t = self.tables.open(self.txn, table)?;
        let t = t.borrow();
        scan_table(&*t, range, dir, f)
    }
    fn len(&self, table: Table) -> Result<u64> {
        if !self.tables.exists(self.txn, table)? {
            return Ok(0);
        }
        let t = self.tables.open(self.txn, table)?;
        let n = t.borrow().len()?;
        Ok(n)
    }
}

/// A table open in the batch's write transaction, shared by the batch's requests.
type OpenTable<'t> = std::rc::Rc<std::cell::RefCell<redb::Table<'t, &'static [u8], &'static [u8]>>>;

/// The tables of one write transaction: which exist (listed from the file once, on the first
/// read of a table not yet known, then kept up to date by [`WriteCtx::put`]), and the ones
/// opened so far, kept open until the batch commits. Opening a redb table looks it up in the
/// file's table tree, and closing it writes its root back, so a batch that opened and closed a
/// table per key spent most of its time there (issue 13's profile): now each table is opened
/// once per batch. One per transaction, handed from request to request of its batch, and
/// dropped before the commit (a re-run gets a fresh one with its fresh transaction).
///
/// Puts never run while a scan of the same table is open (`scan` borrows the context, `put`
/// needs it mutably), so the shared borrow of a scan and the exclusive one of a write never
/// meet; reads nested in a scan share it.
#[derive(Default)]
pub(crate) struct TableSet<'t> {
    names: std::cell::RefCell<Option<std::collections::HashSet<&'static str>>>,
    listed: std::cell::RefCell<Option<std::collections::HashSet<String>>>,
    open: std::cell::RefCell<std::collections::HashMap<&'static str, OpenTable<'t>>>,
}

impl<'t> TableSet<'t> {
    fn open(&self, txn: &'t redb::WriteTransaction, table: Table) -> Result<OpenTable<'t>> {
        if let Some(t) = self.open.borrow().get(table.name) {
            return Ok(t.clone());
        }
        let t = std::rc::Rc::new(std::cell::RefCell::new(txn.open_table(table.def())?));
        self.open.borrow_mut().insert(table.name, t.clone());
        Ok(t)
    }

    fn exists(&self, txn: &redb::WriteTransaction, table: Table) -> Result<bool> {
        if self
            .names
            .borrow()
            .as_ref()
            .is_some_and(|n| n.contains(table.name))
        {
            return Ok(true);
        }
        let mut listed = self.listed.borrow_mut();
        if listed.is_none() {
            *listed = Some(
                txn.list_tables()?
                    .map(|t| redb::TableHandle::name(&t).to_string())
                    .collect(),
            );
        }
        let found = listed.as_ref().is_some_and(|l| l.contains(table.name));
        if found {
            self.created(table);
        }
        Ok(found)
    }

    fn created(&self, table: Table) {
        self.names
            .borrow_mut()
            .get_or_insert_with(Default::default)
            .insert(table.name);
    }
}

struct Inner {
    /// `None` once [`Store::close`] ran: the file is released when the last in-flight read ends.
    db: RwLock<Option<Arc<integrity::Sealed>>>,
    path: PathBuf,
    writer: writer::Writer,
    observers: Arc<RwLock<Vec<CommitObserver>>>,
    /// The free-space reserve in bytes ([`Store::set_min_free`]).
    min_free: Arc<std::sync::atomic::AtomicU64>,
}

/// The free space, in bytes, that writes leave on the data dir's file system unless
/// [`Store::set_min_free`] says otherwise (`[store] min_free_mib`, 64 MiB).
pub const DEFAULT_MIN_FREE: u64 = 64 * 1024 * 1024;

/// Handle to the open store. Cheap to clone; the last [`Store::close`] drains the writer.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish()
    }
}

impl Store {
    /// Opens (creating if needed) `data_dir/tenantry.redb`, after checking every page
    /// checksum of an existing file without changing it (`integrity`: redb checks them only
    /// when it recovers from a crash, so a byte changed on disk would otherwise be read as
    /// written). The check reads the whole file once; it is skipped when a clean close sealed
    /// the file and its length and modification time are as the seal says.
    ///
    /// Errors: [`Error::Locked`] when another process holds the file, [`Error::IntegrityFailed`]
    /// when a checksum does not match, [`Error::SchemaTooNew`] when a newer Tenantry wrote it,
    /// [`Error::Storage`] for I/O.
    pub fn open(data_dir: &Path) -> Result<Store> {
        Store::open_with_cache(data_dir, DEFAULT_CACHE_BYTES)
    }

    /// [`Store::open`] with a page cache of `cache_bytes` (`[store] cache_mib`).
    ///
    /// Errors: as [`Store::open`].
    pub fn open_with_cache(data_dir: &Path, cache_bytes: usize) -> Result<Store> {
        ensure_private_dir(data_dir)?;
        let path = data_dir.join(DATA_FILE);
        integrity::open_check(&path)?;
        let file = open_data_file(&path)
            .map_err(|e| Error::storage(format!("opening {}: {e}", path.display())))?;
        let db = redb::Database::builder()
            .set_cache_size(cache_bytes)
            .create_file(file)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => Error::Locked {
                    path: path.display().to_string(),
                },
                other => Error::storage(format!("opening {}: {other}", path.display())),
            })?;
        set_private_file(&path)?;
        Store::from_database(db, path, wal::CHECKPOINT_EVERY)
    }

    /// Opens the store over a custom redb backend (fault-injection tests), with a checkpoint
    /// every `checkpoint_every` (zero: every batch is a durable redb commit, so the injected
    /// failures meet redb's own I/O at each batch).
    #[cfg(test)]
    pub(crate) fn open_with_backend(
        path: PathBuf,
        backend: impl redb::StorageBackend,
        checkpoint_every: std::time::Duration,
    ) -> Result<Store> {
        let db = redb::Database::builder()
            .create_with_backend(backend)
            .map_err(|e| Error::storage(format!("opening {}: {e}", path.display())))?;
        Store::from_database(db, path, checkpoint_every)
    }

    /// Wraps an open database: replays the redo log into it ([`wal::replay`]), checks the
    /// schema, and starts the writer, which checkpoints every `checkpoint_every`.
    fn from_database(
        db: redb::Database,
        path: PathBuf,
        checkpoint_every: std::time::Duration,
    ) -> Result<Store> {
        let db = Arc::new(integrity::Sealed::new(db, path.clone()));
        let replayed = wal::replay(&db, &path)?;
        if replayed.records > 0 {
            tracing::warn!(
                records = replayed.records,
                lsn = replayed.last_lsn,
                "replayed the redo log after an unclean stop"
            );
        }
        check_and_init_schema(&db)?;
        let key = wal::key(&db)?;
        let log = wal::Wal::open(&path, key, replayed.last_lsn, checkpoint_every)?;
        let observers: Arc<RwLock<Vec<CommitObserver>>> = Arc::default();
        let min_free = Arc::new(std::sync::atomic::AtomicU64::new(DEFAULT_MIN_FREE));
        let writer = writer::Writer::spawn(db.clone(), log, observers.clone(), min_free.clone())?;
        Ok(Store {
            inner: Arc::new(Inner {
                db: RwLock::new(Some(db)),
                path,
                writer,
                observers,
                min_free,
            }),
        })
    }

    /// Path of the data file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Registers a callback run on the writer thread after every commit, before callers are
    /// answered. Its answers are already settled: a panicking observer is logged, and the
    /// batch's callers still get their results.
    pub fn on_commit(&self, observer: CommitObserver) {
        let mut obs = self
            .inner
            .observers
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        obs.push(observer);
    }

    /// Runs `f` on a read snapshot, on the blocking pool.
    pub async fn read<T, E, F>(&self, f: F) -> std::result::Result<T, E>
    where
        F: FnOnce(&ReadCtx) -> std::result::Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<Error> + Send + 'static,
    {
        let store = self.clone();
        match tokio::task::spawn_blocking(move || store.read_blocking(f)).await {
            Ok(r) => r,
            Err(_) => Err(Error::Panicked.into()),
        }
    }

    /// Runs `f` on a read snapshot on the current thread (for code already off the runtime).
    pub fn read_blocking<T, E, F>(&self, f: F) -> std::result::Result<T, E>
    where
        F: FnOnce(&ReadCtx) -> std::result::Result<T, E>,
        E: From<Error>,
    {
        let db = self
            .inner
            .db
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or(Error::Closed)?;
        let txn = db.begin_read().map_err(Error::from)?;
        f(&ReadCtx::new(txn))
    }

    /// Queues `f` for the writer, which runs it inside a group-commit batch and answers after
    /// the batch is committed and durable (its redo-log record synced, [`wal`]).
    ///
    /// `f` may run more than once: when another request of its batch fails after writing, the
    /// batch is rolled back and re-run without that request. It must therefore depend only on
    /// its captures and the transaction. A request that returns `Err` must not have written
    /// anything, or its batch is re-run without it; either way, it leaves no trace.
    ///
    /// Errors: the closure's own error, or [`Error::Overloaded`] when the queue stays full,
    /// [`Error::Closed`] during shutdown, [`Error::Storage`] when the commit fails.
    pub async fn write<T, E, F>(
        &self,
        now: DateTime<Utc>,
        actor: Actor,
        f: F,
    ) -> std::result::Result<T, E>
    where
        F: FnMut(&mut WriteCtx<'_>) -> std::result::Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<Error> + Send + 'static,
    {
        self.write_weighted(now, actor, 1, f).await
    }

    /// [`Store::write`] for a request of `weight` units of work (a usage batch: its events),
    /// so that one commit holds at most [`MAX_WEIGHT`] of them; a request heavier than
    /// that commits alone. Same guarantees and errors as [`Store::write`].
    pub async fn write_weighted<T, E, F>(
        &self,
        now: DateTime<Utc>,
        actor: Actor,
        weight: u64,
        f: F,
    ) -> std::result::Result<T, E>
    where
        F: FnMut(&mut WriteCtx<'_>) -> std::result::Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<Error> + Send + 'static,
    {
        self.inner.writer.submit(now, actor, weight, f).await
    }

    /// Sets the free space, in bytes, that writes leave on the data dir's file system: below it
    /// every write answers [`Error::StorageFull`] without touching the file (0: no check).
    pub fn set_min_free(&self, bytes: u64) {
        self.inner
            .min_free
            .store(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    /// Counters of the writer (batches, requests, commit time), for benchmarks and metrics.
    pub fn writer_stats(&self) -> WriterStats {
        self.inner.writer.stats()
    }

    /// Stops accepting writes, lets the writer finish what is queued, and joins it; then
    /// releases the data file, so the same process may open it again (later reads and writes
    /// on any clone answer [`Error::Closed`]).
    pub async fn close(&self) {
        self.inner.writer.close().await;
        // Release the data file now rather than when the last clone of this handle drops
        // (a connection task may still hold one for a moment): reads from here on answer
        // `Closed`, and the file lock goes with the last in-flight read.
        let db = self
            .inner
            .db
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        // Every queued write is committed: the file is sealed once the last handle is gone.
        if let Some(db) = db {
            db.closed_cleanly();
        }
    }

    /// Names of the tables in the data file, sorted (diagnostics, and the check that a refused
    /// request leaves no empty table behind).
    ///
    /// Errors: [`Error::Closed`] after [`Store::close`], [`Error::Storage`] for I/O.
    pub async fn table_names(&self) -> Result<Vec<String>> {
        self.read(|r| {
            let mut names: Vec<String> = r
                .txn
                .list_tables()?
                .map(|t| redb::TableHandle::name(&t).to_string())
                .collect();
            names.sort();
            Ok(names)
        })
        .await
    }

    /// Size of the data file in bytes.
    pub fn file_size(&self) -> u64 {
        std::fs::metadata(&self.inner.path)
            .map(|m| m.len())
            .unwrap_or(0)
    }
}

/// Reads a `u32` meta value.
pub fn meta_u32(r: &impl Reader, key: &str) -> Result<Option<u32>> {
    Ok(r.get(META, key.as_bytes())?
        .and_then(|v| <[u8; 4]>::try_from(v.as_slice()).ok())
        .map(u32::from_be_bytes))
}

/// The schema version recorded in the file (written at creation, moved by migrations).
///
/// Errors: [`Error::Corrupt`] when the meta table has none.
pub fn schema_version(r: &impl Reader) -> Result<u32> {
    meta_u32(r, "schema_version")?.ok_or_else(|| Error::Corrupt {
        table: "meta",
        detail: "no schema_version".into(),
    })
}

/// Reads a raw meta value.
pub fn meta_get(r: &impl Reader, key: &str) -> Result<Option<Vec<u8>>> {
    r.get(META, key.as_bytes())
}

/// Writes a raw meta value.
pub fn meta_put(ctx: &mut WriteCtx<'_>, key: &str, value: &[u8]) -> Result<()> {
    ctx.put(META, key.as_bytes(), value)
}

fn check_and_init_schema(db: &redb::Database) -> Result<()> {
    let txn = db.begin_write()?;
    {
        let mut meta = txn.open_table(META.def())?;
        let found = meta
            .get(b"schema_version".as_slice())?
            .and_then(|v| <[u8; 4]>::try_from(v.value()).ok())
            .map(u32::from_be_bytes);
        match found {
            Some(v) if v > SCHEMA_VERSION => {
                return Err(Error::SchemaTooNew {
                    found: v,
                    supported: SCHEMA_VERSION,
                });
            }
            Some(_) => {}
            None => {
                meta.insert(
                    b"schema_version".as_slice(),
                    SCHEMA_VERSION.to_be_bytes().as_slice(),
                )?;
            }
        }
    }
    txn.commit()?;
    Ok(())
}

/// Creates `dir` (and parents) and makes it owner-only (0700), as the admin socket and keys
/// require (DESIGN.md "admin socket").
pub fn ensure_private_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::storage(format!("creating data dir {}: {e}", dir.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::storage(format!("setting mode 0700 on {}: {e}", dir.display())))?;
    }
    Ok(())
}

/// Opens (creating when missing) the data file for redb, read and write, as redb's own
/// `Builder::create` does, and on Linux with `O_NOATIME`: every page read is a `pread`, and
/// without the flag each one asks the kernel whether the file's access time is due (about 1.5% of
/// a full audit verify's CPU in issue 13's profile). Nothing in Tenantry reads access times. The
/// kernel allows the flag only to the file's owner (or `CAP_FOWNER`); otherwise (`EPERM`) the file
/// is opened without it.
///
/// Errors: the `open(2)` error.
fn open_data_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::OpenOptionsExt;
        match options.clone().custom_flags(libc::O_NOATIME).open(path) {
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {}
            opened => return opened,
        }
    }
    options.open(path)
}

/// Makes a file owner-only (0600).
pub fn set_private_file(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::storage(format!("setting mode 0600 on {}: {e}", path.display())))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
