//! [`FollowerDriver`]: the thread that keeps a follower fetching.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::follow::Applied;
use super::transport::Transport;
use super::{Replica, Role};
use crate::error::{Error, Result};

/// Settings of a [`FollowerDriver`].
#[derive(Debug, Clone, Copy)]
pub struct DriverOptions {
    /// `max_bytes` of each fetch (default 1 MiB).
    pub max_bytes: u64,
    /// First pause after an error or a refusal (default 1 ms); doubles on
    /// each further one.
    pub backoff_min: Duration,
    /// Longest pause (default 100 ms).
    pub backoff_max: Duration,
}

impl Default for DriverOptions {
    fn default() -> Self {
        DriverOptions {
            max_bytes: 1 << 20,
            backoff_min: Duration::from_millis(1),
            backoff_max: Duration::from_millis(100),
        }
    }
}

/// A thread that, while its replica follows a known leader, loops: build a
/// fetch, send it through the transport, apply the answer; it pauses
/// (backing off exponentially) after an error or a refusal, and waits for a
/// role change while the replica leads or knows no leader. The
/// application supplies only the [`Transport`].
///
/// Stops on [`FollowerDriver::stop`] or when dropped, within one fetch.
#[derive(Debug)]
pub struct FollowerDriver {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl FollowerDriver {
    /// Starts the driver thread for `replica`.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the thread cannot be spawned.
    pub fn start(replica: Arc<Replica>, transport: Arc<dyn Transport>, options: DriverOptions) -> Result<Self> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let thread_stop = Arc::clone(&stop);
        let name = format!("replog-follower-{}", replica.id().0);
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || drive(&replica, &*transport, options, &thread_stop))
            .map_err(|e| Error::io("spawn follower driver", "", e))?;
        Ok(FollowerDriver {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the thread and waits for it.
    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        *self.stop.0.lock() = true;
        self.stop.1.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for FollowerDriver {
    fn drop(&mut self) {
        self.stop_inner();
    }
}

fn drive(replica: &Replica, transport: &dyn Transport, options: DriverOptions, stop: &(Mutex<bool>, Condvar)) {
    let mut backoff = options.backoff_min;
    let pause = |duration: Duration| {
        let mut stopped = stop.0.lock();
        if !*stopped {
            stop.1.wait_until(&mut stopped, Instant::now() + duration);
        }
        *stopped
    };
    loop {
        if *stop.0.lock() {
            return;
        }
        let leader = match (replica.role(), replica.leader()) {
            (Role::Follower, Some(leader)) => leader,
            _ => {
                if pause(options.backoff_max) {
                    return;
                }
                continue;
            }
        };
        let progressed = replica
            .fetch_request(options.max_bytes)
            .and_then(|request| transport.fetch(leader, &request))
            .and_then(|response| replica.apply(response))
            .is_ok_and(|applied| applied != Applied::Refused);
        if progressed {
            backoff = options.backoff_min;
        } else {
            if pause(backoff) {
                return;
            }
            backoff = (backoff * 2).min(options.backoff_max);
        }
    }
}
