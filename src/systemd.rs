//! systemd integration, all no-ops outside systemd:
//! - `sd_notify` (the `sd-notify` crate): `READY=1` once the store is open and the listener
//!   bound, `RELOADING=1`/`READY=1` around a SIGHUP reload, `STOPPING=1` when the drain starts,
//!   and `WATCHDOG=1` pings while the store answers (`WatchdogSec=` in the unit);
//! - logs for journald: when stderr is the journal (`JOURNAL_STREAM` names it), lines carry a
//!   `<N>` syslog priority prefix and no timestamp, since journald stamps every line itself.

use std::time::Duration;

use sd_notify::NotifyState;
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

use crate::actor::Actor;
use crate::store::Store;

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "sd_notify failed");
    }
}

/// `READY=1` with a status line.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// `STOPPING=1`: the graceful drain has started.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("draining")]);
}

/// `RELOADING=1` (with `MONOTONIC_USEC`, which newer systemd expects).
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

/// Starts the watchdog pings when the unit asks for them (`WATCHDOG_USEC`): every half period,
/// a no-op write request goes through the writer, and the ping is sent when it is answered
/// (even with a storage error: a full disk must not get the service killed in a loop, a writer
/// that no longer answers must).
pub fn spawn_watchdog(store: Store) -> Option<tokio::task::JoinHandle<()>> {
    let period = sd_notify::watchdog_enabled()?;
    let half = (period / 2).max(Duration::from_millis(100));
    tracing::info!(
        period_ms = period.as_millis() as u64,
        "systemd watchdog enabled"
    );
    Some(tokio::spawn(async move {
        loop {
            let probe = store.write(chrono::Utc::now(), Actor::system("watchdog"), |_| {
                Ok::<_, crate::store::Error>(())
            });
            match tokio::time::timeout(half, probe).await {
                Ok(Err(crate::store::Error::Closed)) => break,
                Ok(_) => send(&[NotifyState::Watchdog]),
                Err(_) => {
                    tracing::error!("the writer did not answer within half the watchdog period")
                }
            }
            tokio::time::sleep(half).await;
        }
    }))
}

/// Is stderr connected to the journal? (`JOURNAL_STREAM` is `device:inode` of that stream, and
/// must match stderr itself, not a stream a parent had.)
pub fn stderr_is_journal() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let Ok(var) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = var.split_once(':') else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    std::fs::File::from(fd)
        .metadata()
        .is_ok_and(|m| m.dev() == dev && m.ino() == ino)
}

/// The journald line format: `<N>` priority prefix, no timestamp, no colour; then level,
/// spans and fields as usual.
pub struct JournalFormat {
    inner: format::Format<format::Full, ()>,
}

impl Default for JournalFormat {
    fn default() -> Self {
        JournalFormat {
            inner: format::format().without_time().with_ansi(false),
        }
    }
}

/// The syslog priority journald reads from a `<N>` prefix.
pub fn priority(level: &tracing::Level) -> u8 {
    match *level {
        tracing::Level::ERROR => 3,
        tracing::Level::WARN => 4,
        tracing::Level::INFO => 6,
        _ => 7,
    }
}

impl<S, N> FormatEvent<S, N> for JournalFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    FormattedFields<N>: 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        write!(writer, "<{}>", priority(event.metadata().level()))?;
        self.inner.format_event(ctx, writer, event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_map_to_syslog_priorities() {
        assert_eq!(priority(&tracing::Level::ERROR), 3);
        assert_eq!(priority(&tracing::Level::WARN), 4);
        assert_eq!(priority(&tracing::Level::INFO), 6);
        assert_eq!(priority(&tracing::Level::TRACE), 7);
    }
}
