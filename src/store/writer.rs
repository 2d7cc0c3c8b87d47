//! The single writer thread and its group commit.
//!
//! redb allows one write transaction at a time and each durable write costs an fsync, so one
//! thread owns writing. It takes every request waiting in the queue (up to [`MAX_BATCH`] requests
//! and [`MAX_WEIGHT`] units of work), runs them in one transaction, makes it durable with one
//! redo-log record ([`super::wal`]; a durable redb commit instead when a checkpoint is due),
//! commits once, publishes a [`CommitNotice`] to observers, then answers each caller with its own
//! result.
//!
//! A request that fails must leave no trace and must not fail its neighbours:
//! - a request that refuses before writing simply gets its error; the batch goes on;
//! - a request that fails (or panics) after writing poisons the transaction, so the writer
//!   aborts it and re-runs the batch without that request.
//!
//! After a commit the observers run (a panicking one is logged and changes no answer), then
//! every caller is answered. A panic outside a request and outside an observer comes from below
//! (redb, the file) and ends the process ([`writer_died`]): the writer cannot tell whether the
//! batch committed, and without a writer every later write would be answered "closed".

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

use super::wal::{AppendError, Plan, Wal};
use super::{CommitNotice, CommitObserver, Error, TableSet, WriteCtx};
use crate::actor::Actor;

/// Most requests committed in one transaction.
pub const MAX_BATCH: usize = 512;
/// Most units of work committed in one transaction: a request weighs 1 unless it says more (a
/// usage batch weighs its events). This bounds how long one commit holds every other write:
/// 512 ingest requests of 1,000 events spread over many tenants would otherwise be one commit
/// of about 46 s of writer time (issue 10's measure, about 90 µs per such event). A request
/// heavier than this commits alone.
pub const MAX_WEIGHT: u64 = 10_000;
/// The most redo-log payload memory the writer keeps between batches, bytes: more than a full
/// batch of ordinary writes needs, so only heavy batches give theirs back.
const LOG_KEEP: usize = 4 * 1024 * 1024;
/// Capacity of the request queue.
const QUEUE: usize = 4096;
/// How long a caller waits for room in a full queue before [`Error::Overloaded`].
const ADMISSION: Duration = Duration::from_secs(5);

/// One queued request, type-erased.
trait Job: Send {
    fn now(&self) -> DateTime<Utc>;
    fn actor(&self) -> &Actor;
    /// Its units of work, counted against [`MAX_WEIGHT`].
    fn weight(&self) -> u64;
    /// Runs the closure; `true` when it succeeded.
    fn run(&mut self, ctx: &mut WriteCtx<'_>) -> bool;
    /// Marks the request as failed with a storage-level error.
    fn fail(&mut self, err: Error);
    /// Answers the caller with the request's result.
    fn finish(self: Box<Self>);
}

struct TypedJob<F, T, E> {
    f: F,
    now: DateTime<Utc>,
    actor: Actor,
    weight: u64,
    result: Option<Result<T, E>>,
    reply: oneshot::Sender<Result<T, E>>,
}

impl<F, T, E> Job for TypedJob<F, T, E>
where
    F: FnMut(&mut WriteCtx<'_>) -> Result<T, E> + Send,
    T: Send,
    E: From<Error> + Send,
{
    fn now(&self) -> DateTime<Utc> {
        self.now
    }
    fn actor(&self) -> &Actor {
        &self.actor
    }
    fn weight(&self) -> u64 {
        self.weight
    }
    fn run(&mut self, ctx: &mut WriteCtx<'_>) -> bool {
        let r = (self.f)(ctx);
        let ok = r.is_ok();
        self.result = Some(r);
        ok
    }
    fn fail(&mut self, err: Error) {
        // A clean refusal keeps its own, more useful, error.
        if !matches!(self.result, Some(Err(_))) {
            self.result = Some(Err(err.into()));
        }
    }
    fn finish(self: Box<Self>) {
        let result = self.result.unwrap_or_else(|| Err(Error::Panicked.into()));
        // The caller may have given up (request cancelled); nothing to do then.
        let _ = self.reply.send(result);
    }
}

/// Counters of the writer, read without locking.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct WriterStats {
    /// Committed transactions.
    pub batches: u64,
    /// Requests answered.
    pub requests: u64,
    /// Batches re-run because a request failed after writing.
    pub reruns: u64,
    /// Total time spent in `commit`, microseconds.
    pub commit_micros: u64,
    /// Largest batch seen.
    pub max_batch: u64,
    /// Batches made durable by a redo-log record ([`super::wal`]).
    pub logged: u64,
    /// Durable redb commits (checkpoints), each writing the pages of the batches logged before.
    pub checkpoints: u64,
}

#[derive(Default)]
struct Counters {
    batches: AtomicU64,
    requests: AtomicU64,
    reruns: AtomicU64,
    commit_micros: AtomicU64,
    max_batch: AtomicU64,
    logged: AtomicU64,
    checkpoints: AtomicU64,
}

pub(super) struct Writer {
    tx: RwLock<Option<mpsc::Sender<Box<dyn Job>>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    counters: Arc<Counters>,
}

impl Writer {
    pub(super) fn spawn(
        db: Arc<super::integrity::Sealed>,
        wal: Wal,
        observers: Arc<RwLock<Vec<CommitObserver>>>,
        min_free: Arc<AtomicU64>,
    ) -> super::Result<Writer> {
        let (tx, rx) = mpsc::channel::<Box<dyn Job>>(QUEUE);
        let counters = Arc::new(Counters::default());
        let c = counters.clone();
        let thread = std::thread::Builder::new()
            .name("tenantry-writer".into())
            .spawn(move || writer_loop(&db, wal, rx, &observers, &c, &min_free))
            .map_err(|e| Error::storage(format!("starting the writer thread: {e}")))?;
        Ok(Writer {
            tx: RwLock::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
            counters,
        })
    }

    pub(super) async fn submit<T, E, F>(
        &self,
        now: DateTime<Utc>,
        actor: Actor,
        weight: u64,
        f: F,
    ) -> Result<T, E>
    where
        F: FnMut(&mut WriteCtx<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<Error> + Send + 'static,
    {
        let sender = self
            .tx
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or(Error::Closed)?;
        let (reply, answer) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(TypedJob {
            f,
            now,
            actor,
            weight: weight.max(1),
            result: None,
            reply,
        });
        match tokio::time::timeout(ADMISSION, sender.send(job)).await {
            Err(_) => return Err(Error::Overloaded.into()),
            Ok(Err(_)) => return Err(Error::Closed.into()),
            Ok(Ok(())) => {}
        }
        drop(sender);
        answer.await.unwrap_or_else(|_| Err(Error::Closed.into()))
    }

    pub(super) fn stats(&self) -> WriterStats {
        let c = &self.counters;
        WriterStats {
            batches: c.batches.load(Ordering::Relaxed),
            requests: c.requests.load(Ordering::Relaxed),
            reruns: c.reruns.load(Ordering::Relaxed),
            commit_micros: c.commit_micros.load(Ordering::Relaxed),
            max_batch: c.max_batch.load(Ordering::Relaxed),
            logged: c.logged.load(Ordering::Relaxed),
            checkpoints: c.checkpoints.load(Ordering::Relaxed),
        }
    }

    pub(super) async fn close(&self) {
        // Dropping the last sender ends the loop once the queue is drained.
        self.tx
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let handle = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = handle {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
    }
}

fn writer_loop(
    db: &super::integrity::Sealed,
    mut wal: Wal,
    mut rx: mpsc::Receiver<Box<dyn Job>>,
    observers: &RwLock<Vec<CommitObserver>>,
    counters: &Counters,
    min_free: &AtomicU64,
) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BATCH);
    // A request taken from the queue that would have pushed its batch over `MAX_WEIGHT`: it
    // starts the next batch.
    let mut held: Option<Box<dyn Job>> = None;
    // The batch's redo-log payload, reused from batch to batch.
    let mut log: Vec<u8> = Vec::new();
    loop {
        let first = match held.take() {
            Some(job) => job,
            None => match rx.blocking_recv() {
                Some(job) => job,
                None => break,
            },
        };
        let mut weight = first.weight();
        batch.push(first);
        while batch.len() < MAX_BATCH && weight < MAX_WEIGHT {
            match rx.try_recv() {
                Ok(job) if weight.saturating_add(job.weight()) > MAX_WEIGHT => {
                    held = Some(job);
                    break;
                }
                Ok(job) => {
                    weight += job.weight();
                    batch.push(job);
                }
                Err(_) => break,
            }
        }
        // A request's panic is caught around the request (see `run_batch`) and an observer's
        // around the observer. A panic anywhere else comes from below the writer (redb, the
        // file): whether the batch committed is unknown, so no answer would be true, and a
        // writer that is gone would answer every later write "closed". Fail fast instead, and
        // let the supervisor (systemd) restart the process, which recovers the file.
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| {
            match space_left(db.path(), min_free.load(Ordering::Relaxed)) {
                Ok(()) => run_batch(db, &mut wal, &mut log, &mut batch, observers, counters),
                Err((free_bytes, reserve_bytes)) => {
                    for job in &mut batch {
                        job.fail(Error::StorageFull {
                            free_bytes,
                            reserve_bytes,
                        });
                    }
                }
            }
        })) {
            writer_died(&panic_message(&*panic));
        }
        counters
            .requests
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        counters
            .max_batch
            .fetch_max(batch.len() as u64, Ordering::Relaxed);
        for job in batch.drain(..) {
            job.finish();
        }
        // A heavy batch (a migration pass, a request over `MAX_WEIGHT`) does not keep its
        // payload's memory for the life of the process.
        if log.capacity() > LOG_KEEP {
            log = Vec::new();
        }
    }
    // Closing: the batches only the log holds go into the file, so a clean close leaves nothing
    // to replay.
    if wal.has_pending()
        && let Err(panic) = catch_unwind(AssertUnwindSafe(|| checkpoint(db, &mut wal, counters)))
    {
        writer_died(&panic_message(&*panic));
    }
    if !wal.has_pending()
        && let Err(e) = wal.clear()
    {
        tracing::warn!(error = %e, "clearing the redo log at close failed; the next start reads it through");
    }
}

/// A durable commit of an empty transaction: every commit made without durability since the
/// last checkpoint reaches the file. A failure is logged; the log still holds those batches and
/// the next open replays them.
fn checkpoint(db: &redb::Database, wal: &mut Wal, counters: &Counters) {
    let started = Instant::now();
    let done = db
        .begin_write()
        .map_err(Error::from)
        .and_then(|txn| txn.commit().map_err(Error::from));
    counters
        .commit_micros
        .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
    match done {
        Ok(()) => {
            wal.checkpointed();
            counters.checkpoints.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => {
            tracing::error!(error = %e, "the closing checkpoint failed; the next start replays the redo log")
        }
    }
}

/// Runs the batch to a commit (re-running without poisoning requests as needed), records a
/// commit failure in each job's result, and notifies observers. Jobs are answered by the caller.
fn run_batch(
    db: &redb::Database,
    wal: &mut Wal,
    log: &mut Vec<u8>,
    batch: &mut [Box<dyn Job>],
    observers: &RwLock<Vec<CommitObserver>>,
    counters: &Counters,
) {
    let mut excluded = vec![false; batch.len()];
    loop {
        log.clear();
        let txn = match db.begin_write() {
            Ok(txn) => txn,
            Err(e) => {
                let err = Error::from(e);
                for (job, _) in batch.iter_mut().zip(&excluded).filter(|(_, x)| !**x) {
                    job.fail(Error::storage(&err));
                }
                return;
            }
        };
        let mut tables = TableSet::default();
        let mut notice = CommitNotice::default();
        let mut poisoned = false;
        for (i, job) in batch.iter_mut().enumerate() {
            if excluded[i] {
                continue;
            }
            let mut ctx = WriteCtx::new(
                &txn,
                tables,
                std::mem::take(log),
                job.now(),
                job.actor().clone(),
            );
            let outcome = catch_unwind(AssertUnwindSafe(|| job.run(&mut ctx)));
            let (open, ops, changed, wrote) = ctx.finish();
            tables = open;
            *log = ops;
            match outcome {
                Ok(true) => notice.merge(changed),
                Ok(false) if !wrote => {}
                Ok(false) => {
                    excluded[i] = true;
                    poisoned = true;
                }
                Err(_) => {
                    tracing::error!("a write request panicked; it was rolled back");
                    job.fail(Error::Panicked);
                    excluded[i] = true;
                    poisoned = wrote;
                }
            }
            if poisoned {
                break;
            }
        }
        if poisoned {
            drop(tables);
            counters.reruns.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = txn.abort() {
                tracing::error!(error = %e, "aborting a poisoned write transaction failed");
            }
            continue;
        }
        // A batch that changed something is logged and committed without durability, unless a
        // checkpoint is due (see `wal`). Its transaction records its LSN, so the file knows
        // which logged batches it holds.
        let plan = if log.is_empty() {
            None
        } else {
            Some(wal.plan(log.len()))
        };
        if let Some(Plan::Log(lsn)) = plan {
            let stored = tables
                .open(&txn, super::META)
                .and_then(|meta| super::wal::store_lsn(&mut meta.borrow_mut(), lsn));
            if let Err(e) = stored {
                drop(tables);
                let _ = txn.abort();
                for (job, _) in batch.iter_mut().zip(&excluded).filter(|(_, x)| !**x) {
                    job.fail(Error::storage(&e));
                }
                return;
            }
        }
        // The open tables write their roots back as they close, before the commit or abort.
        drop(tables);
        let started = Instant::now();
        let committed = match plan {
            Some(Plan::Log(lsn)) => commit_logged(txn, wal, lsn, log, counters),
            Some(Plan::Durable) => {
                let committed = txn.commit().map_err(Error::from);
                if committed.is_ok() {
                    wal.checkpointed();
                    counters.checkpoints.fetch_add(1, Ordering::Relaxed);
                }
                committed
            }
            // Nothing changed (every request refused or only read): there is nothing to make
            // durable, and an abort costs no fsync.
            None => txn.abort().map_err(Error::from),
        };
        counters
            .commit_micros
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        counters.batches.fetch_add(1, Ordering::Relaxed);
        match committed {
            Ok(()) => {
                // Every answer is settled before the observers run, so an observer cannot
                // change one: a committed write is answered as committed even if an observer
                // panics. They still run before the answers are sent, so a cache is invalid
                // before the response that changed it leaves (ARCHITECTURE.md "Commit
                // observers").
                let obs = observers.read().unwrap_or_else(PoisonError::into_inner);
                for o in obs.iter() {
                    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| o(&notice))) {
                        tracing::error!(
                            panic = %panic_message(&*panic),
                            "a commit observer panicked; the commit stands and its callers are answered"
                        );
                    }
                }
            }
            Err(err) => {
                tracing::error!(error = %err, "commit failed; the batch is lost and every request in it is answered with the error");
                for (job, _) in batch.iter_mut().zip(&excluded).filter(|(_, x)| !**x) {
                    job.fail(Error::storage(&err));
                }
            }
        }
        return;
    }
}

/// Commits a logged batch: its record first (synced), then redb without durability. A commit
/// that fails after the record was written cancels the record, so no replay brings back a
/// batch that was answered as failed; when neither the record's fate nor its cancellation is
/// known, the process stops ([`writer_died`]).
fn commit_logged(
    mut txn: redb::WriteTransaction,
    wal: &mut Wal,
    lsn: u64,
    log: &[u8],
    counters: &Counters,
) -> Result<(), Error> {
    match wal.append(lsn, log) {
        Ok(()) => {}
        Err(AppendError::Refused(e)) => {
            let _ = txn.abort();
            return Err(e);
        }
        Err(AppendError::Unknown(e)) => writer_died(&format!(
            "writing the redo log failed and the record could not be cancelled ({e})"
        )),
    }
    // Refused only while persistent savepoints change (Tenantry makes none); the commit is then
    // durable, which is slower and as correct.
    let _ = txn.set_durability(redb::Durability::None);
    let committed = txn.commit().map_err(Error::from);
    match &committed {
        Ok(()) => {
            wal.committed_lazily();
            counters.logged.fetch_add(1, Ordering::Relaxed);
        }
        Err(_) => {
            if let Err(e) = wal.cancel_last(lsn, log.len()) {
                writer_died(&format!(
                    "a commit failed after its redo-log record was written, and cancelling the record failed too ({e})"
                ));
            }
        }
    }
    committed
}

/// Refuses a batch before it touches the file when the data file's file system has less than
/// `reserve` bytes available (`[store] min_free_mib`): a disk that fills inside a commit fails
/// redb for good (every later call answers `PreviousIo` until the file is reopened), while a
/// refusal here changes nothing, and the next batch after space is freed commits. One
/// `statvfs` per batch. A file system that cannot answer is not refused on that account.
///
/// Errors: `(free bytes, reserve bytes)` when the space is short.
fn space_left(data_file: &std::path::Path, reserve: u64) -> Result<(), (u64, u64)> {
    if reserve == 0 {
        return Ok(());
    }
    let dir = data_file.parent().unwrap_or(data_file);
    let Ok(st) = rustix::fs::statvfs(dir) else {
        return Ok(());
    };
    let free = st.f_bavail.saturating_mul(st.f_frsize);
    if free < reserve {
        return Err((free, reserve));
    }
    Ok(())
}

/// The text of a panic payload (`panic!` with a literal or a formatted message).
pub(super) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Ends the process after the writer thread panicked outside a request: logged, printed to
/// stderr (the log may not be flushed), then `abort`, so that no caller is answered and the
/// supervisor restarts the process. redb recovers the file at the next open.
fn writer_died(message: &str) -> ! {
    let line = format!(
        "the writer thread died ({message}); stopping the process so that no write is answered wrongly: restart it to recover the data file"
    );
    tracing::error!("{line}");
    eprintln!("tenantry: {line}");
    std::process::abort()
}
