//! Sign-in throttling: failed attempts are counted per username and per client address in a
//! sliding window; past the limit, attempts are refused without checking the password until the
//! window frees up (OWASP authentication cheat sheet: throttle, don't lock out forever).
//!
//! In memory, per process: a restart forgets the windows, while the daily failure counts in the
//! store persist for the dashboard.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Duration, Utc};

/// Failures allowed per username in [`WINDOW`].
pub const PER_USERNAME: usize = 5;
/// Failures allowed per client address in [`WINDOW`].
pub const PER_CLIENT: usize = 20;
/// The sliding window.
pub const WINDOW: Duration = Duration::minutes(15);
/// Most keys tracked; past this the oldest windows are dropped (bounds memory under a spray).
const MAX_KEYS: usize = 50_000;

/// The throttle's state.
#[derive(Debug, Default)]
pub struct Throttle {
    windows: Mutex<HashMap<String, VecDeque<DateTime<Utc>>>>,
    failures: AtomicU64,
    throttled: AtomicU64,
}

fn user_key(username: &str) -> String {
    format!("u:{}", username.to_ascii_lowercase())
}

fn client_key(client: &str) -> String {
    format!("c:{client}")
}

impl Throttle {
    /// `Err(seconds to wait)` when `username` or `client` is over its limit at `now`.
    pub fn check(&self, username: &str, client: &str, now: DateTime<Utc>) -> Result<(), i64> {
        let mut w = self
            .windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut wait = 0i64;
        for (key, limit) in [
            (user_key(username), PER_USERNAME),
            (client_key(client), PER_CLIENT),
        ] {
            if let Some(q) = w.get_mut(&key) {
                while q.front().is_some_and(|t| now - *t >= WINDOW) {
                    q.pop_front();
                }
                if q.len() >= limit
                    && let Some(first) = q.front()
                {
                    wait = wait.max((*first + WINDOW - now).num_seconds().max(1));
                }
            }
        }
        if wait > 0 {
            self.throttled.fetch_add(1, Ordering::Relaxed);
            Err(wait)
        } else {
            Ok(())
        }
    }

    /// Counts a failure for `username` and `client`.
    pub fn failed(&self, username: &str, client: &str, now: DateTime<Utc>) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        let mut w = self
            .windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if w.len() >= MAX_KEYS {
            w.retain(|_, q| q.back().is_some_and(|t| now - *t < WINDOW));
        }
        for key in [user_key(username), client_key(client)] {
            w.entry(key).or_default().push_back(now);
        }
    }

    /// Clears the username's window after a successful sign-in.
    pub fn succeeded(&self, username: &str) {
        let mut w = self
            .windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        w.remove(&user_key(username));
    }

    /// `(failures, throttled attempts)` since start.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.failures.load(Ordering::Relaxed),
            self.throttled.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_username_is_throttled_after_five_failures_and_freed_by_time() {
        let t = Throttle::default();
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        for i in 0..PER_USERNAME {
            assert!(t.check("alice", &format!("10.0.0.{i}"), now).is_ok());
            t.failed("alice", &format!("10.0.0.{i}"), now);
        }
        let wait = t.check("ALICE", "10.9.9.9", now).unwrap_err();
        assert_eq!(wait, WINDOW.num_seconds());
        assert!(
            t.check("bob", "10.9.9.9", now).is_ok(),
            "other users are not affected"
        );
        assert!(t.check("alice", "10.9.9.9", now + WINDOW).is_ok());
    }

    #[test]
    fn a_client_spraying_usernames_is_throttled() {
        let t = Throttle::default();
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        for i in 0..PER_CLIENT {
            t.failed(&format!("user{i}"), "203.0.113.7", now);
        }
        assert!(t.check("someone-new", "203.0.113.7", now).is_err());
        assert!(t.check("someone-new", "203.0.113.8", now).is_ok());
    }
}
