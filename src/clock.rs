//! Time as a parameter.
//!
//! Every service receives `now` from a [`Clock`]: the system clock in production, a manual clock
//! in tests and in the demo seeder's replay. The scheduler sleeps through [`Clock::sleep_until`],
//! so moving a manual clock wakes it at once: tests move time instead of sleeping.

use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use tokio::sync::watch;

/// Source of "now" for services and the scheduler. Cheap to clone.
#[derive(Clone, Debug)]
pub enum Clock {
    /// Wall-clock UTC time.
    System,
    /// Time that only moves when told to ([`Clock::advance`], [`Clock::set`]).
    Manual(Arc<ManualClock>),
}

/// The state behind [`Clock::Manual`]: the current instant and a channel that tells sleepers
/// when it moved.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
    moved: watch::Sender<DateTime<Utc>>,
}

impl Clock {
    /// A manual clock that starts at `start`.
    pub fn manual(start: DateTime<Utc>) -> Clock {
        let (moved, _) = watch::channel(start);
        Clock::Manual(Arc::new(ManualClock {
            now: Mutex::new(start),
            moved,
        }))
    }

    /// The current instant, truncated to microseconds (the ledger's precision, AUDIT.md `ts`).
    pub fn now(&self) -> DateTime<Utc> {
        let t = match self {
            Clock::System => Utc::now(),
            Clock::Manual(m) => *m.now.lock().unwrap_or_else(PoisonError::into_inner),
        };
        truncate_micros(t)
    }

    /// Moves a manual clock forward by `by`; does nothing on the system clock.
    pub fn advance(&self, by: chrono::Duration) {
        if let Clock::Manual(m) = self {
            let mut now = m.now.lock().unwrap_or_else(PoisonError::into_inner);
            *now += by;
            m.moved.send_replace(*now);
        }
    }

    /// Sets a manual clock to `to` (which may be earlier); does nothing on the system clock.
    pub fn set(&self, to: DateTime<Utc>) {
        if let Clock::Manual(m) = self {
            let mut now = m.now.lock().unwrap_or_else(PoisonError::into_inner);
            *now = to;
            m.moved.send_replace(to);
        }
    }

    /// Waits until the clock reads `deadline` or later. On the system clock this is a timer; on a
    /// manual clock it waits for [`Clock::advance`] or [`Clock::set`] to pass the deadline.
    pub async fn sleep_until(&self, deadline: DateTime<Utc>) {
        match self {
            Clock::System => {
                let wait = (deadline - Utc::now()).to_std().unwrap_or_default();
                tokio::time::sleep(wait).await;
            }
            Clock::Manual(m) => {
                let mut rx = m.moved.subscribe();
                loop {
                    if self.now() >= deadline {
                        return;
                    }
                    if rx.changed().await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// Drops sub-microsecond precision so a time survives a round trip through the ledger's
/// microsecond `ts` and the store's `i64` microseconds.
pub fn truncate_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

/// Microseconds since the Unix epoch, the unit of every stored instant.
pub fn to_micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// The inverse of [`to_micros`]; out-of-range values clamp to the epoch.
pub fn from_micros(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

/// RFC 3339 UTC with microseconds and a `Z`, the ledger's `ts` format
/// (`2026-11-21T10:04:05.123456Z`, AUDIT.md).
pub fn rfc3339_micros(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn manual_clock_wakes_sleepers_when_advanced_past_the_deadline() {
        let start = DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        let clock = Clock::manual(start);
        let sleeper = {
            let clock = clock.clone();
            tokio::spawn(async move { clock.sleep_until(start + chrono::Duration::hours(1)).await })
        };
        clock.advance(chrono::Duration::minutes(30));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        clock.advance(chrono::Duration::minutes(31));
        tokio::time::timeout(std::time::Duration::from_secs(5), sleeper)
            .await
            .expect("sleeper woke")
            .expect("sleeper did not panic");
    }

    #[test]
    fn ledger_timestamps_have_microseconds_and_z() {
        let t = DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap_or_default();
        assert_eq!(rfc3339_micros(t), "2023-11-14T22:13:20.123456Z");
    }
}
