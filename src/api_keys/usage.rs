//! `last_used_at` without a store write per request (issue 9): each use of a key is noted in
//! memory, and a background flush writes the latest time of every key used since the previous
//! flush in one write request, every [`FLUSH_EVERY`]. A key's record is thus written at most
//! once per flush interval, whatever its traffic.
//!
//! Bounded: at most [`MAX_PENDING`] keys wait; past that, new keys' uses are dropped until the
//! next flush (the time is bookkeeping; losing one is harmless) and counted.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// How often pending uses are written.
pub const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_secs(60);
/// Most keys waiting for a flush.
pub const MAX_PENDING: usize = 100_000;

/// Uses of keys noted since the last flush.
#[derive(Debug, Default)]
pub struct LastUsed {
    pending: Mutex<HashMap<(Uuid, Uuid), DateTime<Utc>>>,
    dropped: AtomicU64,
}

impl LastUsed {
    /// Notes that key `id` of `tenant` was used at `at`.
    pub fn note(&self, tenant: Uuid, id: Uuid, at: DateTime<Utc>) {
        let mut p = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let full = p.len() >= MAX_PENDING;
        match p.get_mut(&(tenant, id)) {
            Some(t) => *t = (*t).max(at),
            None if full => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            None => {
                p.insert((tenant, id), at);
            }
        }
    }

    /// Takes every pending use, leaving none.
    pub fn drain(&self) -> Vec<(Uuid, Uuid, DateTime<Utc>)> {
        let mut p = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        p.drain().map(|((t, k), at)| (t, k, at)).collect()
    }

    /// Uses dropped because [`MAX_PENDING`] keys were waiting.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uses_coalesce_to_the_latest_time_per_key() {
        let l = LastUsed::default();
        let (t, k) = (Uuid::now_v7(), Uuid::now_v7());
        let now = Utc::now();
        for s in [5, 1, 9, 3] {
            l.note(t, k, now + chrono::Duration::seconds(s));
        }
        let d = l.drain();
        assert_eq!(d, vec![(t, k, now + chrono::Duration::seconds(9))]);
        assert!(l.drain().is_empty());
    }
}
