//! Streamed exports (the audit NDJSON, the tenant directory CSV): a blocking thread reads the
//! store in one read transaction and sends chunks to the response through a channel. A client
//! that stops reading would pin that thread and that transaction (which holds back the store's
//! page reuse) for as long as it liked, so (issue 12, finding 6):
//! - at most `[http] max_exports` exports stream at once; more are refused with 503 `busy`;
//! - each chunk waits at most `[http] export_send_timeout_secs` for the client to take it,
//!   then the export stops and its thread and transaction are released.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use crate::error::{Error, Result};

/// The problem code of an export refused because the slots are taken.
pub const BUSY: &str = "busy";
/// Chunks buffered between the reading thread and the response.
const DEPTH: usize = 8;

/// The export slots of a process.
#[derive(Debug, Clone)]
pub struct Exports {
    slots: Arc<Semaphore>,
    send_timeout: Duration,
}

impl Exports {
    /// `max` exports at once, each waiting at most `send_timeout` per chunk.
    pub fn new(max: usize, send_timeout: Duration) -> Self {
        Exports {
            slots: Arc::new(Semaphore::new(max)),
            send_timeout,
        }
    }

    /// A channel for one export, holding a slot until its [`ExportSink`] is dropped.
    ///
    /// Errors: 503 `busy` when every slot is taken.
    pub fn channel<T>(&self) -> Result<(ExportSink<T>, mpsc::Receiver<T>)> {
        let slot = self
            .slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| Error::Unavailable {
                code: BUSY,
                detail: "too many exports are running: try again when one has finished ([http] max_exports)".into(),
            })?;
        let (tx, rx) = mpsc::channel(DEPTH);
        Ok((
            ExportSink {
                tx,
                send_timeout: self.send_timeout,
                _slot: slot,
            },
            rx,
        ))
    }
}

/// The sending side of one export (see the module docs).
#[derive(Debug)]
pub struct ExportSink<T> {
    tx: mpsc::Sender<T>,
    send_timeout: Duration,
    _slot: OwnedSemaphorePermit,
}

impl<T> ExportSink<T> {
    /// Sends `item` from a blocking thread of the runtime: `false` when the client is gone or
    /// did not take it within the send timeout (the export should stop).
    pub fn send_blocking(&self, item: T) -> bool {
        let item = match self.tx.try_send(item) {
            Ok(()) => return true,
            Err(mpsc::error::TrySendError::Closed(_)) => return false,
            Err(mpsc::error::TrySendError::Full(item)) => item,
        };
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return self.tx.blocking_send(item).is_ok();
        };
        match handle.block_on(self.tx.send_timeout(item, self.send_timeout)) {
            Ok(()) => true,
            Err(mpsc::error::SendTimeoutError::Timeout(_)) => {
                tracing::warn!(
                    timeout_secs = self.send_timeout.as_secs(),
                    "an export's client stopped reading; the export was cut off"
                );
                false
            }
            Err(mpsc::error::SendTimeoutError::Closed(_)) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn exports_are_capped_and_a_client_that_stops_reading_is_cut_off() {
        let exports = Exports::new(1, Duration::from_millis(200));
        let (sink, rx) = exports.channel::<u32>().unwrap();
        assert!(
            matches!(
                exports.channel::<u32>(),
                Err(Error::Unavailable { code: BUSY, .. })
            ),
            "a second export waits for the first"
        );
        // The client never reads: the buffer fills, then a send gives up instead of blocking.
        let sent = tokio::task::spawn_blocking(move || {
            let n = (0..DEPTH as u32 + 5)
                .take_while(|i| sink.send_blocking(*i))
                .count();
            drop(sink);
            n
        })
        .await
        .unwrap();
        assert_eq!(sent, DEPTH);
        drop(rx);
        assert!(exports.channel::<u32>().is_ok(), "the slot was given back");
    }
}
