//! [`Clock`]: where a log gets the time, so a simulation can supply its own.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// The source of time of a [`Log`](crate::Log): it stamps records appended
/// without a timestamp, ages segments for [`Retention`](crate::Retention),
/// and paces [`SyncPolicy::Interval`](crate::SyncPolicy::Interval) syncs and
/// the recovery-point writes.
///
/// The default is [`SystemClock`]. A deterministic simulation supplies a
/// clock it advances itself (see [`Options::clock`](crate::Options::clock)).
/// The clock is read on every append: keep `now_ms` cheap and non-blocking.
///
/// # Threading
///
/// Called from any thread that appends, syncs or enforces retention, and
/// from the background pool's interval sync, with the log's internal locks held:
/// it must not call back into the log.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicI64, Ordering};
/// use replog::{Clock, Log, Options};
///
/// #[derive(Debug, Default)]
/// struct Manual(AtomicI64);
/// impl Clock for Manual {
///     fn now_ms(&self) -> i64 {
///         self.0.load(Ordering::SeqCst)
///     }
/// }
///
/// # fn main() -> replog::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// let clock = Arc::new(Manual::default());
/// clock.0.store(1_000, Ordering::SeqCst);
/// let log = Log::open(dir.path(), Options::default().clock(clock.clone()))?;
/// let offset = log.append(b"at virtual time 1000")?;
/// assert_eq!(log.read(offset)?.timestamp_ms(), 1_000);
/// # Ok(()) }
/// ```
pub trait Clock: Send + Sync + fmt::Debug {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

/// The operating system's wall clock (`SystemTime::now`); 0 before 1970.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    }
}
