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

/// Attempts allowed per username in [`WINDOW`] (a success gives its attempt back).
pub const PER_USERNAME: usize = 5;
/// Attempts allowed per client address in [`WINDOW`] (a success gives its attempt back).
pub const PER_CLIENT: usize = 20;
/// The sliding window.
pub const WINDOW: Duration = Duration::minutes(15);
/// Most keys tracked. Past it, stale windows go first; if all are fresh (a spray of new
/// usernames or addresses), the least recently used half goes, so the map never grows past
/// this, at an amortised cost of O(1) per attempt.
pub const MAX_KEYS: usize = 50_000;
/// Longest username or email, in bytes, that a sign-in looks at; longer ones are refused
/// before anything is counted, looked up or hashed.
pub const MAX_NAME_BYTES: usize = 254;

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
    /// Takes an attempt for `username` from `client` at `now`, before the password is checked:
    /// `Err(seconds to wait)` when either is at its limit; otherwise the attempt counts against
    /// both windows at once, so a parallel burst gets no more than the limit between it and the
    /// slow hash. Call [`Throttle::succeeded`] when the password was right.
    pub fn begin(&self, username: &str, client: &str, now: DateTime<Utc>) -> Result<(), i64> {
        let mut w = self
            .windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let keys = [
            (user_key(username), PER_USERNAME),
            (client_key(client), PER_CLIENT),
        ];
        let mut wait = 0i64;
        for (key, limit) in &keys {
            if let Some(q) = w.get_mut(key) {
                while q.front().is_some_and(|t| now - *t >= WINDOW) {
                    q.pop_front();
                }
                if q.len() >= *limit
                    && let Some(first) = q.front()
                {
                    wait = wait.max((*first + WINDOW - now).num_seconds().max(1));
                }
            }
        }
        if wait > 0 {
            self.throttled.fetch_add(1, Ordering::Relaxed);
            return Err(wait);
        }
        if w.len() + 2 > MAX_KEYS {
            evict(&mut w, now);
        }
        for (key, _) in keys {
            w.entry(key).or_default().push_back(now);
        }
        Ok(())
    }

    /// Counts a failed attempt (for `/metrics`; the attempt was counted by [`Throttle::begin`]).
    pub fn failed(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    /// After a right password: clears the username's window and gives `client` back the attempt
    /// taken at `at`.
    pub fn succeeded(&self, username: &str, client: &str, at: DateTime<Utc>) {
        let mut w = self
            .windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        w.remove(&user_key(username));
        if let Some(q) = w.get_mut(&client_key(client))
            && let Some(i) = q.iter().rposition(|t| *t == at)
        {
            q.remove(i);
        }
    }

    /// Keys tracked now.
    pub fn keys(&self) -> usize {
        self.windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// `(failures, throttled attempts)` since start.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.failures.load(Ordering::Relaxed),
            self.throttled.load(Ordering::Relaxed),
        )
    }
}

/// Makes room: drops stale windows, then, if that freed less than a quarter, the least
/// recently used half.
fn evict(w: &mut HashMap<String, VecDeque<DateTime<Utc>>>, now: DateTime<Utc>) {
    w.retain(|_, q| q.back().is_some_and(|t| now - *t < WINDOW));
    if w.len() <= MAX_KEYS * 3 / 4 {
        return;
    }
    let mut last: Vec<DateTime<Utc>> = w.values().filter_map(|q| q.back().copied()).collect();
    let mid = last.len() / 2;
    let (_, cut, _) = last.select_nth_unstable(mid);
    let cut = *cut;
    let mut dropped = 0;
    w.retain(|_, q| {
        let keep = q.back().is_some_and(|t| *t > cut) || dropped >= mid;
        if !keep {
            dropped += 1;
        }
        keep
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_username_is_throttled_after_five_failures_and_freed_by_time() {
        let t = Throttle::default();
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        for i in 0..PER_USERNAME {
            assert!(t.begin("alice", &format!("10.0.0.{i}"), now).is_ok());
        }
        let wait = t.begin("ALICE", "10.9.9.9", now).unwrap_err();
        assert_eq!(wait, WINDOW.num_seconds());
        assert!(
            t.begin("bob", "10.9.9.9", now).is_ok(),
            "other users are not affected"
        );
        assert!(t.begin("alice", "10.9.9.9", now + WINDOW).is_ok());
    }

    #[test]
    fn a_client_spraying_usernames_is_throttled() {
        let t = Throttle::default();
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        for i in 0..PER_CLIENT {
            assert!(t.begin(&format!("user{i}"), "203.0.113.7", now).is_ok());
        }
        assert!(t.begin("someone-new", "203.0.113.7", now).is_err());
        assert!(t.begin("someone-new", "203.0.113.8", now).is_ok());
    }

    #[test]
    fn a_success_gives_its_attempt_back() {
        let t = Throttle::default();
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        // A shared office address: many people sign in successfully.
        for i in 0..PER_CLIENT * 3 {
            let user = format!("user{i}");
            t.begin(&user, "198.51.100.1", now).unwrap();
            t.succeeded(&user, "198.51.100.1", now);
        }
        assert!(t.begin("late", "198.51.100.1", now).is_ok());
    }

    #[test]
    fn a_spray_of_fresh_keys_never_grows_the_map_past_its_bound() {
        let t = Throttle::default();
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        for i in 0..MAX_KEYS * 2 {
            // Every attempt a new username and a new address, all within the window.
            let _ = t.begin(
                &format!("u{i}"),
                &format!("c{i}"),
                now + Duration::milliseconds(i as i64),
            );
            assert!(t.keys() <= MAX_KEYS);
        }
        // The newest ones are still tracked.
        let last = MAX_KEYS * 2 - 1;
        for _ in 0..PER_USERNAME - 1 {
            let _ = t.begin(&format!("u{last}"), "x", now + Duration::seconds(200));
        }
        assert!(
            t.begin(&format!("u{last}"), "y", now + Duration::seconds(200))
                .is_err()
        );
    }
}
