//! Flush callbacks fired from replog's group commit.
//!
//! `append` writes entries into the log (readable at once) and queues
//! openraft's [`LogFlushed`] callback with the offset the entries end at.
//! A background thread, the flusher, calls [`Log::sync`] whenever callbacks
//! wait: appends that arrive while a sync runs are covered by the next one,
//! so one `msync` serves every append in flight and no append pays a sync
//! of its own. The callbacks are fired by the log's
//! [`LogListener::post_durable`] hook, from whichever thread completed the
//! sync, once the durable offset passes their end. The same thread carries
//! out purges' segment deletions ([`Log::delete_before`]) off the caller's
//! path.
//!
//! A failed sync poisons the log (replog refuses writes until reopened);
//! the flusher fails every waiting callback with the error and the queue
//! refuses new ones.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;

use openraft::RaftTypeConfig;
use openraft::storage::LogFlushed;
use parking_lot::{Condvar, Mutex};
use replog::{Log, LogListener};

/// What the queue fires: openraft's [`LogFlushed`] (and, in tests, a
/// channel).
pub(crate) trait FlushCallback: Send + 'static {
    /// Reports that the entries are durable, or that they may not be.
    fn complete(self, result: io::Result<()>);
}

impl<C: RaftTypeConfig> FlushCallback for LogFlushed<C> {
    fn complete(self, result: io::Result<()>) {
        self.log_io_completed(result);
    }
}

/// Callbacks waiting for durability, and work for the flusher thread.
pub(crate) struct FlushQueue<CB> {
    state: Mutex<State<CB>>,
    wake: Condvar,
}

struct State<CB> {
    /// `(end offset, callback)`, in append order, so ends ascend.
    waiting: VecDeque<(u64, CB)>,
    /// Set once a sync failed: the message every later callback gets.
    poisoned: Option<String>,
    /// A purge asked for whole segments before this offset to be deleted.
    delete_before: Option<u64>,
    stop: bool,
    stats: FlushStats,
}

/// How the flush callbacks met the syncs, since the store was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlushStats {
    /// Flush callbacks queued (one per `append` call).
    pub callbacks: u64,
    /// Entries those appends carried.
    pub entries: u64,
    /// Syncs the flusher ran for them (appends per sync = group commit).
    pub syncs: u64,
    /// Time the flusher spent in those syncs, in microseconds.
    pub sync_us_total: u64,
    /// Most callbacks ever waiting at once: 1 means openraft never had a
    /// second append in flight while one waited for its sync.
    pub waiting_max: u64,
}

impl<CB: FlushCallback> FlushQueue<CB> {
    pub(crate) fn new() -> Self {
        FlushQueue {
            state: Mutex::new(State {
                waiting: VecDeque::new(),
                poisoned: None,
                delete_before: None,
                stop: false,
                stats: FlushStats::default(),
            }),
            wake: Condvar::new(),
        }
    }

    /// Queues `callback` to fire once every offset below `end` is durable;
    /// fires it at once if they already are (`durable_offset` is read under
    /// the queue's lock, so a sync that completed before the push is not
    /// missed).
    pub(crate) fn push(&self, log: &Log, end: u64, entries: u64, callback: CB) {
        let mut state = self.state.lock();
        state.stats.callbacks += 1;
        state.stats.entries += entries;
        if let Some(message) = &state.poisoned {
            let error = io::Error::other(message.clone());
            drop(state);
            callback.complete(Err(error));
            return;
        }
        if state.waiting.is_empty() && log.durable_offset() >= end {
            drop(state);
            callback.complete(Ok(()));
            return;
        }
        debug_assert!(state.waiting.back().is_none_or(|(last, _)| *last <= end));
        state.waiting.push_back((end, callback));
        state.stats.waiting_max = state.stats.waiting_max.max(state.waiting.len() as u64);
        drop(state);
        self.wake.notify_one();
    }

    /// Fires, with success, every callback whose entries are now below
    /// `durable_offset`.
    pub(crate) fn fire_durable(&self, durable_offset: u64) {
        let mut ready = Vec::new();
        {
            let mut state = self.state.lock();
            while state.waiting.front().is_some_and(|(end, _)| *end <= durable_offset) {
                ready.push(state.waiting.pop_front().expect("front exists").1);
            }
        }
        for callback in ready {
            callback.complete(Ok(()));
        }
    }

    /// Records a failed sync and fails every waiting callback with it.
    pub(crate) fn poison(&self, message: String) {
        let failed: Vec<_> = {
            let mut state = self.state.lock();
            state.poisoned.get_or_insert(message.clone());
            state.waiting.drain(..).map(|(_, callback)| callback).collect()
        };
        for callback in failed {
            callback.complete(Err(io::Error::other(message.clone())));
        }
    }

    /// The message of the failed sync, if one failed.
    pub(crate) fn poisoned(&self) -> Option<String> {
        self.state.lock().poisoned.clone()
    }

    /// Asks the flusher to delete whole segments before `offset`.
    pub(crate) fn request_delete_before(&self, offset: u64) {
        let mut state = self.state.lock();
        state.delete_before = Some(state.delete_before.map_or(offset, |o| o.max(offset)));
        drop(state);
        self.wake.notify_one();
    }

    /// The counters so far.
    pub(crate) fn stats(&self) -> FlushStats {
        self.state.lock().stats
    }

    fn stop(&self) {
        self.state.lock().stop = true;
        self.wake.notify_one();
    }
}

/// The log listener that fires callbacks as syncs complete.
pub(crate) struct DurableListener<CB>(pub(crate) Arc<FlushQueue<CB>>);

impl<CB: FlushCallback> LogListener for DurableListener<CB> {
    fn post_durable(&self, durable_offset: u64) {
        // Runs under the log's durability lock: it only moves callbacks out
        // of the queue and sends on their channels, which never blocks.
        self.0.fire_durable(durable_offset);
    }
}

/// The flusher thread; stopped and joined on drop, after it has synced
/// whatever was still waiting.
pub(crate) struct Flusher<CB: FlushCallback> {
    queue: Arc<FlushQueue<CB>>,
    thread: Option<JoinHandle<()>>,
}

impl<CB: FlushCallback> Flusher<CB> {
    pub(crate) fn spawn(queue: Arc<FlushQueue<CB>>, log: Arc<Log>) -> io::Result<Self> {
        let worker_queue = queue.clone();
        let thread = std::thread::Builder::new()
            .name("replog-openraft-flush".into())
            .spawn(move || run(&worker_queue, &log))?;
        Ok(Flusher {
            queue,
            thread: Some(thread),
        })
    }
}

impl<CB: FlushCallback> Drop for Flusher<CB> {
    fn drop(&mut self) {
        self.queue.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run<CB: FlushCallback>(queue: &FlushQueue<CB>, log: &Log) {
    loop {
        let delete_before = {
            let mut state = queue.state.lock();
            while state.waiting.is_empty() && state.delete_before.is_none() && !state.stop {
                queue.wake.wait(&mut state);
            }
            if state.stop && state.waiting.is_empty() && state.delete_before.is_none() {
                return;
            }
            state.delete_before.take()
        };
        sync_waiting(queue, log);
        if let Some(offset) = delete_before {
            // Best effort: a failure here leaves segments for the next purge
            // (or the next open) to delete; nothing is lost.
            let _ = log.delete_before(offset.min(log.next_offset()));
        }
    }
}

/// One sync for everything waiting now; the listener fires the callbacks.
fn sync_waiting<CB: FlushCallback>(queue: &FlushQueue<CB>, log: &Log) {
    {
        let mut state = queue.state.lock();
        if state.waiting.is_empty() {
            return;
        }
        state.stats.syncs += 1;
    }
    let started = std::time::Instant::now();
    let _ = sync(queue, log);
    queue.state.lock().stats.sync_us_total += started.elapsed().as_micros() as u64;
}

/// Syncs the log (shared with concurrent syncs: group commit) and fires
/// what became durable; a failure poisons the queue and fails every
/// waiting callback. Cost: nothing when everything is durable already.
pub(crate) fn sync<CB: FlushCallback>(queue: &FlushQueue<CB>, log: &Log) -> io::Result<()> {
    match log.sync() {
        // The listener has fired them already; this covers a sync that
        // completed on another thread between our check and our call.
        Ok(()) => {
            queue.fire_durable(log.durable_offset());
            Ok(())
        }
        Err(e) => {
            let message = format!("sync of the log failed: {e}");
            queue.poison(message.clone());
            Err(io::Error::other(message))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use replog::Options;

    use super::*;

    impl FlushCallback for mpsc::Sender<io::Result<()>> {
        fn complete(self, result: io::Result<()>) {
            let _ = self.send(result);
        }
    }

    type Queue = FlushQueue<mpsc::Sender<io::Result<()>>>;

    fn open(dir: &std::path::Path) -> (Arc<Queue>, Log) {
        let queue = Arc::new(Queue::new());
        let options = Options::default()
            .segment_bytes(1 << 20)
            .sync(replog::SyncPolicy::Never)
            .listener(Arc::new(DurableListener(queue.clone())));
        (queue.clone(), Log::open(dir, options).unwrap())
    }

    fn append(queue: &Queue, log: &Log) -> mpsc::Receiver<io::Result<()>> {
        log.append(b"entry").unwrap();
        let (tx, rx) = mpsc::channel();
        queue.push(log, log.next_offset(), 1, tx);
        rx
    }

    #[test]
    fn callbacks_fire_only_once_durable_and_one_sync_serves_all_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let (queue, log) = open(dir.path());
        let waiting: Vec<_> = (0..3).map(|_| append(&queue, &log)).collect();
        for rx in &waiting {
            assert!(rx.try_recv().is_err(), "fired before any sync");
        }
        assert_eq!(queue.stats().waiting_max, 3);
        sync_waiting(&queue, &log);
        for rx in &waiting {
            assert!(rx.try_recv().unwrap().is_ok());
        }
        assert_eq!(queue.stats().syncs, 1);
        // Durable already: fires at once.
        let (tx, rx) = mpsc::channel();
        queue.push(&log, log.next_offset(), 0, tx);
        assert!(rx.try_recv().unwrap().is_ok());
    }

    #[test]
    fn a_failed_sync_fails_every_waiting_callback_and_the_queue_stays_poisoned() {
        let dir = tempfile::tempdir().unwrap();
        let (queue, log) = open(dir.path());
        let waiting: Vec<_> = (0..2).map(|_| append(&queue, &log)).collect();
        log.poison_for_testing();
        assert!(sync(&queue, &log).is_err());
        for rx in &waiting {
            assert!(rx.try_recv().unwrap().is_err());
        }
        assert!(queue.poisoned().is_some());
        let (tx, rx) = mpsc::channel();
        queue.push(&log, 0, 0, tx);
        assert!(rx.try_recv().unwrap().is_err(), "a poisoned queue acknowledged");
    }
}
