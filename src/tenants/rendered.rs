//! Directory rows as the JSON page writes them, kept by tenant id together with the stored
//! record bytes each was written from (issue 13).
//!
//! Decoding a record and writing its row were about 28% of a directory page's CPU, for rows
//! that rarely change between two reads of the same page. A kept row is used only when the record
//! the page just read from its snapshot is byte for byte the record the row was written from, and
//! the row is a function of those bytes alone ([`super::api::page_json`]). So a page never shows
//! a row its snapshot does not hold: no invalidation, no commit hook, and no way to see a newer or
//! an older version than the page's own snapshot.
//!
//! Bounded: [`MAX_BYTES`] over [`SHARDS`] shards, each behind its own lock. A shard past its
//! share starts over (a bound, not an LRU: writing a row again costs about a microsecond).
//!
//! The rows of tenants a commit changed are dropped from its commit notice
//! ([`RenderedRows::on_commit`]), so a changed tenant's old row, with its contact and names, does
//! not stay in memory after an edit or a shred. That is for memory, not for correctness: a page
//! that was reading an older snapshot while the commit landed may keep the old row again, which
//! is never used (its bytes differ) and is replaced when the tenant is next listed.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use uuid::Uuid;

use crate::store::{CommitNotice, Topic};

/// Shards, each with its own lock, chosen by a tenant id's last byte (random in a UUIDv7).
pub const SHARDS: usize = 8;
/// Most bytes kept over all shards: stored records, written rows and a fixed cost per entry.
pub const MAX_BYTES: usize = 4 << 20;
const SHARD_BYTES: usize = MAX_BYTES / SHARDS;
/// Counted per entry besides its two byte strings: the map slot and two allocations' headers.
const ENTRY_OVERHEAD: usize = 96;

/// Written directory rows by tenant id (see the module doc). One per process, in the app state.
#[derive(Debug, Default)]
pub struct RenderedRows {
    shards: [Mutex<Shard>; SHARDS],
}

#[derive(Debug, Default)]
struct Shard {
    map: HashMap<Uuid, Entry>,
    bytes: usize,
}

#[derive(Debug)]
struct Entry {
    record: Box<[u8]>,
    row: Box<[u8]>,
}

impl Entry {
    fn cost(&self) -> usize {
        cost(&self.record, &self.row)
    }
}

fn cost(record: &[u8], row: &[u8]) -> usize {
    record.len() + row.len() + ENTRY_OVERHEAD
}

impl RenderedRows {
    fn shard(&self, id: &Uuid) -> MutexGuard<'_, Shard> {
        self.shards[usize::from(id.as_bytes()[15]) % SHARDS]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends to `out` the row kept for `id` if it was written from exactly `record` (the
    /// stored bytes the caller just read), and says whether it did. `out` is unchanged otherwise.
    pub fn write(&self, id: &Uuid, record: &[u8], out: &mut Vec<u8>) -> bool {
        match self.shard(id).map.get(id) {
            Some(e) if *e.record == *record => {
                out.extend_from_slice(&e.row);
                true
            }
            _ => false,
        }
    }

    /// Keeps `row`, written from the stored bytes `record`, for `id` (replacing what was kept).
    pub fn keep(&self, id: Uuid, record: &[u8], row: &[u8]) {
        let c = cost(record, row);
        if c > SHARD_BYTES {
            return;
        }
        let mut shard = self.shard(&id);
        if shard.bytes + c > SHARD_BYTES {
            shard.map.clear();
            shard.bytes = 0;
        }
        let entry = Entry {
            record: record.into(),
            row: row.into(),
        };
        if let Some(old) = shard.map.insert(id, entry) {
            shard.bytes -= old.cost();
        }
        shard.bytes += c;
    }

    /// Drops the rows of the tenants `notice` says changed (run on the writer's thread after
    /// each commit, before its callers get their answers).
    pub fn on_commit(&self, notice: &CommitNotice) {
        for topic in &notice.touched {
            if let Topic::Tenant(id) = topic {
                let mut shard = self.shard(id);
                if let Some(old) = shard.map.remove(id) {
                    shard.bytes -= old.cost();
                }
            }
        }
    }

    /// Rows kept and the bytes they count, over all shards.
    #[cfg(test)]
    pub fn size(&self) -> (usize, usize) {
        self.shards.iter().fold((0, 0), |(n, b), s| {
            let s = s.lock().unwrap_or_else(PoisonError::into_inner);
            (n + s.map.len(), b + s.bytes)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    #[test]
    fn a_row_is_used_only_for_the_exact_record_it_was_written_from() {
        let rows = RenderedRows::default();
        let mut out = b"[".to_vec();
        assert!(!rows.write(&id(1), b"rec-a", &mut out));
        rows.keep(id(1), b"rec-a", b"{\"a\":1}");
        assert!(rows.write(&id(1), b"rec-a", &mut out));
        assert_eq!(out, b"[{\"a\":1}");
        // The same id with other bytes (a changed record, or an older snapshot's), a prefix, an
        // extension, or another id: nothing is written.
        for (who, rec) in [
            (1, &b"rec-b"[..]),
            (1, b"rec-"),
            (1, b"rec-ab"),
            (2, b"rec-a"),
        ] {
            assert!(!rows.write(&id(who), rec, &mut out), "{who} {rec:?}");
        }
        assert_eq!(out, b"[{\"a\":1}");
        rows.keep(id(1), b"rec-b", b"{\"b\":2}");
        assert!(!rows.write(&id(1), b"rec-a", &mut out));
        assert!(rows.write(&id(1), b"rec-b", &mut out));
        assert_eq!(out, b"[{\"a\":1}{\"b\":2}");
        assert_eq!(rows.size(), (1, cost(b"rec-b", b"{\"b\":2}")));
    }

    #[test]
    fn a_commit_drops_the_rows_of_the_tenants_it_changed() {
        let rows = RenderedRows::default();
        for n in 1..=3 {
            rows.keep(id(n), b"rec", b"{}");
        }
        let notice = CommitNotice {
            touched: [
                Topic::Tenant(id(2)),
                Topic::Tenant(id(9)),
                Topic::Pool("p".into()),
            ]
            .into_iter()
            .collect(),
        };
        rows.on_commit(&notice);
        assert_eq!(rows.size(), (2, 2 * cost(b"rec", b"{}")));
        let mut out = Vec::new();
        assert!(!rows.write(&id(2), b"rec", &mut out));
        assert!(rows.write(&id(1), b"rec", &mut out) && rows.write(&id(3), b"rec", &mut out));
    }

    #[test]
    fn the_kept_bytes_never_pass_the_bound() {
        let rows = RenderedRows::default();
        let row = vec![b'x'; 700];
        for n in 0..50_000u128 {
            rows.keep(id(n), &n.to_be_bytes(), &row);
            assert!(rows.size().1 <= MAX_BYTES);
        }
        let (kept, bytes) = rows.size();
        assert!(kept > 1_000 && bytes > MAX_BYTES / 3, "{kept} {bytes}");
        // A row larger than a shard's share is not kept at all.
        rows.keep(id(7), b"r", &vec![b'y'; SHARD_BYTES]);
        assert!(!rows.write(&id(7), b"r", &mut Vec::new()));
    }
}
