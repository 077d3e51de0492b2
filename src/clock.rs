//! [`Clock`]: where a log gets the time, so a simulation can supply its own.

use std::fmt;

use rustix::time::{ClockId, clock_gettime};

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

/// The operating system's wall clock (`CLOCK_REALTIME`, what
/// `SystemTime::now` reads), in whole milliseconds; 0 before 1970.
///
/// Read once per append: straight from `clock_gettime` (the vDSO, no system
/// call) with integer arithmetic, it cost 24 ns where `SystemTime`'s
/// `duration_since` and `as_millis` made it 34 ns (a tight loop on the
/// 2-core VM of docs/BENCHMARKS.md), about 5% of a one-record append.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        let now = clock_gettime(ClockId::Realtime);
        if now.tv_sec < 0 {
            return 0;
        }
        now.tv_sec
            .saturating_mul(1000)
            .saturating_add(now.tv_nsec as i64 / 1_000_000)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{SystemTime, UNIX_EPOCH};

    use super::*;

    fn system_time_ms() -> i64 {
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
    }

    #[test]
    fn the_system_clock_reads_the_wall_clock_in_whole_milliseconds() {
        for _ in 0..1000 {
            let before = system_time_ms();
            let now = SystemClock.now_ms();
            let after = system_time_ms();
            assert!(before <= now && now <= after, "{before} <= {now} <= {after}");
        }
    }
}
