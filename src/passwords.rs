//! Passwords: Argon2id hashing and checking, run on a small bounded pool of its own (issue 12,
//! finding 2).
//!
//! Each hash costs about 19 MiB and tens of milliseconds of CPU. Sign-in is open to anyone, so
//! at most [`HASH_SLOTS`] hashes run at once (each on a blocking thread, so never more than
//! that many of the blocking pool's threads, which also serve every store read), and at most
//! [`MAX_WAITING`] wait for a slot; past that a caller is told 503 `busy` at once instead of
//! queueing without bound.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Semaphore;

use crate::error::{Error, Result};

/// Hashes running at once.
pub const HASH_SLOTS: usize = 2;
/// Hashes waiting for a slot; more are refused with 503 `busy`.
pub const MAX_WAITING: usize = 64;
/// The problem code of a refusal when the pool is full.
pub const BUSY: &str = "busy";

static SLOTS: Semaphore = Semaphore::const_new(HASH_SLOTS);
static QUEUED: AtomicUsize = AtomicUsize::new(0);

/// Hashes a password with Argon2id (the argon2 crate's defaults: m = 19 MiB, t = 2, p = 1, the
/// OWASP recommendation). Slow by design: call [`hash`] from async code.
///
/// Errors: 500 when hashing fails.
pub fn hash_password(password: &str) -> Result<String> {
    use argon2::PasswordHasher;
    argon2::Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| Error::Internal(format!("hashing a password: {e}")))
}

/// A real hash, made once, that unknown usernames are verified against, so that a wrong username
/// takes as long as a wrong password (no account enumeration by timing).
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password("tenantry-dummy-password").unwrap_or_default())
}

/// Checks `password` against a PHC hash (constant-time inside argon2). `None` checks against a
/// dummy hash, taking the same time, and returns false. Slow: call [`verify`] from async code.
pub fn verify_password(password: &str, phc: Option<&str>) -> bool {
    use argon2::PasswordVerifier;
    let ok =
        argon2::Argon2::default().verify_password(password.as_bytes(), phc.unwrap_or(dummy_hash()));
    phc.is_some() && ok.is_ok()
}

/// Runs `f` on a hashing slot.
///
/// Errors: 503 `busy` when [`MAX_WAITING`] callers already wait.
async fn on_slot<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    struct Queued;
    impl Drop for Queued {
        fn drop(&mut self) {
            QUEUED.fetch_sub(1, Ordering::AcqRel);
        }
    }
    if QUEUED.fetch_add(1, Ordering::AcqRel) >= HASH_SLOTS + MAX_WAITING {
        QUEUED.fetch_sub(1, Ordering::AcqRel);
        return Err(Error::Unavailable {
            code: BUSY,
            detail: "too many password checks are waiting: try again in a few seconds".into(),
        });
    }
    let _queued = Queued;
    let _slot = SLOTS
        .acquire()
        .await
        .map_err(|_| Error::Internal("the password pool is closed".into()))?;
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("hashing task: {e}")))
}

/// [`hash_password`] on the pool.
///
/// Errors: 503 `busy`; 500 when hashing fails.
pub async fn hash(password: String) -> Result<String> {
    on_slot(move || hash_password(&password)).await?
}

/// [`verify_password`] on the pool.
///
/// Errors: 503 `busy`.
pub async fn verify(password: String, phc: Option<String>) -> Result<bool> {
    on_slot(move || verify_password(&password, phc.as_deref())).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_of_checks_past_the_queue_is_refused_busy_at_once() {
        let n = HASH_SLOTS + MAX_WAITING + 40;
        let calls: Vec<_> = (0..n)
            .map(|_| tokio::spawn(verify("wrong".into(), None)))
            .collect();
        let mut busy = 0;
        for c in calls {
            match c.await.unwrap() {
                Ok(ok) => assert!(!ok),
                Err(Error::Unavailable { code, .. }) => {
                    assert_eq!(code, BUSY);
                    busy += 1;
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert!(busy >= 40, "only {busy} of {n} were refused");
        assert_eq!(
            QUEUED.load(Ordering::Acquire),
            0,
            "every slot was given back"
        );
    }
}
