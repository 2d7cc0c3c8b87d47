//! The control plane's per-install rate limit on heartbeat deliveries (issue 12 finding 4): a
//! token bucket per install id, in memory, on the app clock (so tests move time).
//!
//! `POST /api/installs/{id}/heartbeats` is public and each request may carry up to 500
//! signatures to check, so it is limited before any of them is checked, and before the install
//! is looked up. An appliance sends one delivery per heartbeat (every 5 minutes by default) and,
//! after an outage, its backlog in batches of 100 back to back: a week of backlog (2016
//! heartbeats) is 21 requests, well inside [`BURST`].
//!
//! **Bounded.** At most [`MAX_TRACKED`] ids are tracked. When the map is full, ids whose bucket
//! has refilled are forgotten (forgetting one only gives it a full bucket again), and if none
//! has, the one seen longest ago is. So a flood of made-up ids costs memory up to the bound and
//! never makes a real install wait longer.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Deliveries an install may make at once.
pub const BURST: u32 = 60;
/// One more delivery is allowed every this long (720 an hour; 12 are expected).
pub const REFILL: Duration = Duration::from_secs(5);
/// Most install ids tracked at once.
pub const MAX_TRACKED: usize = 10_000;

#[derive(Clone, Copy, Debug)]
struct Bucket {
    /// Tokens in thousandths, at `at`.
    milli: u64,
    at: DateTime<Utc>,
}

/// Token buckets keyed by install id.
#[derive(Debug, Default)]
pub struct DeliveryLimiter {
    buckets: Mutex<HashMap<Uuid, Bucket>>,
}

const FULL: u64 = BURST as u64 * 1000;

fn refill_ms() -> u64 {
    REFILL.as_millis() as u64
}

fn refilled(b: Bucket, now: DateTime<Utc>) -> u64 {
    let elapsed = (now - b.at).num_milliseconds().max(0) as u64;
    b.milli
        .saturating_add(elapsed.saturating_mul(1000) / refill_ms())
        .min(FULL)
}

impl DeliveryLimiter {
    /// Takes one delivery from `install`'s bucket at `now`.
    ///
    /// Errors: the bucket is empty; the value is how long until the next delivery is allowed
    /// (whole seconds, at least 1: the `Retry-After` header).
    pub fn take(&self, install: Uuid, now: DateTime<Utc>) -> Result<(), u64> {
        let mut map = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if !map.contains_key(&install) && map.len() >= MAX_TRACKED {
            map.retain(|_, b| refilled(*b, now) < FULL);
            if map.len() >= MAX_TRACKED
                && let Some(oldest) = map.iter().min_by_key(|(_, b)| b.at).map(|(k, _)| *k)
            {
                map.remove(&oldest);
            }
        }
        let b = map.entry(install).or_insert(Bucket {
            milli: FULL,
            at: now,
        });
        let have = refilled(*b, now);
        if have >= 1000 {
            *b = Bucket {
                milli: have - 1000,
                at: now,
            };
            Ok(())
        } else {
            let wait_ms = (1000 - have) * refill_ms() / 1000;
            Err(wait_ms.div_ceil(1000).max(1))
        }
    }

    /// Ids tracked now.
    pub fn tracked(&self) -> usize {
        self.buckets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_790_000_000 + s, 0).unwrap_or_default()
    }

    #[test]
    fn a_burst_is_allowed_then_one_delivery_per_refill() {
        let l = DeliveryLimiter::default();
        let id = Uuid::from_u128(1);
        for _ in 0..BURST {
            assert_eq!(l.take(id, t(0)), Ok(()));
        }
        assert_eq!(l.take(id, t(0)), Err(REFILL.as_secs()));
        // Another install has its own bucket.
        assert_eq!(l.take(Uuid::from_u128(2), t(0)), Ok(()));
        assert_eq!(l.take(id, t(REFILL.as_secs() as i64)), Ok(()));
        assert!(l.take(id, t(REFILL.as_secs() as i64)).is_err());
    }

    #[test]
    fn the_map_stays_bounded_and_forgetting_never_tightens() {
        let l = DeliveryLimiter::default();
        let busy = Uuid::from_u128(u128::MAX);
        for _ in 0..BURST {
            l.take(busy, t(0)).unwrap();
        }
        for n in 0..(MAX_TRACKED as u128 + 50) {
            let _ = l.take(Uuid::from_u128(n), t(1));
        }
        assert!(l.tracked() <= MAX_TRACKED);
    }
}
