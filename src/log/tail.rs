//! Tailing: waiting until the log holds an offset.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{Log, Shared};
use crate::error::Result;
use crate::read::Iter;
use crate::record::Record;

impl Log {
    /// A blocking iterator over the records from `from` on, that waits for
    /// new ones when it reaches the end: the loop of [`Log::wait_for`] and
    /// [`Log::iter`] every tailing reader would write. `next` returns
    /// `None` only once stopped (see [`Tail::stop_handle`]) or, with
    /// [`Tail::timeout`], after that long without a new record.
    ///
    /// Records appear as soon as they are appended, before they are
    /// durable (as for every reader). Errors follow [`Log::iter`]: one
    /// `Err(OffsetOutOfRange)` for a `from` outside the log, and the
    /// iteration ends after an error.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> replog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let log = replog::Log::open(dir.path(), replog::Options::default())?;
    /// log.append("first")?;
    /// let mut tail = log.tail(0).timeout(std::time::Duration::from_millis(10));
    /// assert_eq!(tail.next().unwrap()?.value(), "first");
    /// assert!(tail.next().is_none(), "nothing new within the timeout");
    /// log.append("second")?;
    /// assert_eq!(tail.next().unwrap()?.value(), "second");
    /// # Ok(()) }
    /// ```
    pub fn tail(&self, from: u64) -> Tail<'_> {
        Tail {
            log: self,
            next: from,
            current: None,
            timeout: None,
            stop: Arc::new(StopFlag {
                stopped: AtomicBool::new(false),
                shared: Arc::clone(&self.shared),
            }),
            done: false,
        }
    }

    /// Waits until the log holds `offset` (`next_offset() > offset`) or
    /// `timeout` passes (real time, not the log's clock); returns whether it
    /// does. For tailing readers: wakes as soon as an append publishes the
    /// offset, before it is durable.
    pub fn wait_for(&self, offset: u64, timeout: Duration) -> bool {
        self.shared.wait_for(offset, timeout)
    }
}

impl Shared {
    fn wait_for(&self, offset: u64, timeout: Duration) -> bool {
        self.wait_for_unless(offset, timeout, &AtomicBool::new(false))
    }

    /// [`Shared::wait_for`] that also ends once `stop` is set (by a
    /// [`TailStop`], which then wakes the waiters). Returns whether the log
    /// holds `offset`.
    fn wait_for_unless(&self, offset: u64, timeout: Duration, stop: &AtomicBool) -> bool {
        let holds = || self.next_offset.load(Ordering::SeqCst) > offset;
        let deadline = Instant::now() + timeout;
        self.tailers
            .wait_until(deadline, || holds() || stop.load(Ordering::SeqCst));
        holds()
    }
}

/// A blocking iterator over the records of a log, waiting for new ones at
/// its end: from [`Log::tail`].
pub struct Tail<'a> {
    log: &'a Log,
    /// Offset of the next record to return.
    next: u64,
    /// The iteration over what the log held when it was last looked at.
    current: Option<Iter>,
    timeout: Option<Duration>,
    stop: Arc<StopFlag>,
    done: bool,
}

/// Stops a [`Tail`] from any thread: its `next` returns `None` at once,
/// even while it waits. From [`Tail::stop_handle`].
#[derive(Clone)]
pub struct TailStop(Arc<StopFlag>);

struct StopFlag {
    stopped: AtomicBool,
    shared: Arc<Shared>,
}

impl TailStop {
    /// Stops the tail and wakes it if it waits.
    pub fn stop(&self) {
        self.0.stopped.store(true, Ordering::SeqCst);
        self.0.shared.tailers.notify();
    }
}

impl std::fmt::Debug for TailStop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TailStop")
            .field("stopped", &self.0.stopped.load(Ordering::SeqCst))
            .finish()
    }
}

impl Tail<'_> {
    /// Makes `next` return `None` after waiting `timeout` for a new record
    /// (real time). Without it, `next` waits until a record comes or the
    /// tail is stopped.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// A handle that stops this tail from another thread.
    pub fn stop_handle(&self) -> TailStop {
        TailStop(Arc::clone(&self.stop))
    }

    /// Offset of the next record the tail returns.
    pub fn next_offset(&self) -> u64 {
        self.next
    }
}

impl Iterator for Tail<'_> {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Result<Record>> {
        let deadline = self.timeout.map(|t| Instant::now() + t);
        loop {
            if self.done || self.stop.stopped.load(Ordering::SeqCst) {
                return None;
            }
            if let Some(item) = self.current.as_mut().and_then(Iterator::next) {
                match &item {
                    Ok(record) => self.next = record.offset() + 1,
                    Err(_) => self.done = true,
                }
                return Some(item);
            }
            let wait = deadline.map_or(Duration::from_secs(3600), |d| {
                d.saturating_duration_since(Instant::now())
            });
            let arrived = self.log.shared.wait_for_unless(self.next, wait, &self.stop.stopped);
            if !arrived && deadline.is_some_and(|d| Instant::now() >= d) {
                return None;
            }
            if arrived || self.log.next_offset() > self.next || self.log.start_offset() > self.next {
                self.current = Some(self.log.iter(self.next));
            }
        }
    }
}

impl std::fmt::Debug for Tail<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tail").field("next", &self.next).finish()
    }
}
