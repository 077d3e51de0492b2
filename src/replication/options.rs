//! [`ReplicaOptions`]: the log's [`Options`] plus the replication settings.

use std::sync::Arc;
use std::time::Duration;

use super::listener::{NoReplicaListener, ReplicaListener};
use crate::options::Options;

/// Default [`ReplicaOptions::min_insync_replicas`]: 2, so that an
/// acknowledged record is on two machines (one is the default that lost
/// data for Kafka users).
pub const MIN_INSYNC_REPLICAS_DEFAULT: usize = 2;
/// Default [`ReplicaOptions::replica_lag_max`].
pub const REPLICA_LAG_MAX_DEFAULT: Duration = Duration::from_secs(10);
/// Default [`ReplicaOptions::ack_timeout`].
pub const ACK_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);
/// Default [`ReplicaOptions::high_watermark_persist_interval`].
pub const HIGH_WATERMARK_PERSIST_INTERVAL_DEFAULT: Duration = Duration::from_secs(1);

/// How a [`Replica`](super::Replica) is opened: the options of its
/// [`Log`](crate::Log) and the replication settings. Build with
/// `ReplicaOptions::default()` or [`ReplicaOptions::new`] and the setters.
///
/// Time (`replica_lag_max`, the persist interval) is measured by the log's
/// clock ([`Options::clock`]), so a simulation drives it; the
/// acknowledgement timeout is real time, as it bounds a blocked caller.
#[derive(Clone, Debug)]
pub struct ReplicaOptions {
    pub(crate) log: Options,
    pub(crate) min_insync_replicas: usize,
    pub(crate) replica_lag_max: Duration,
    pub(crate) ack_timeout: Duration,
    pub(crate) high_watermark_persist_interval: Duration,
    pub(crate) listener: Arc<dyn ReplicaListener>,
}

impl Default for ReplicaOptions {
    fn default() -> Self {
        ReplicaOptions::new(Options::default())
    }
}

impl ReplicaOptions {
    /// The defaults, around the given log options.
    pub fn new(log: Options) -> Self {
        ReplicaOptions {
            log,
            min_insync_replicas: MIN_INSYNC_REPLICAS_DEFAULT,
            replica_lag_max: REPLICA_LAG_MAX_DEFAULT,
            ack_timeout: ACK_TIMEOUT_DEFAULT,
            high_watermark_persist_interval: HIGH_WATERMARK_PERSIST_INTERVAL_DEFAULT,
            listener: Arc::new(NoReplicaListener),
        }
    }

    /// Replaces the log's options. Use `SyncPolicy::Always` for the
    /// strongest contract: an `Acks::All` record is then durable on every
    /// replica of the in-sync set.
    pub fn log(mut self, log: Options) -> Self {
        self.log = log;
        self
    }

    /// The log's options.
    pub fn log_value(&self) -> &Options {
        &self.log
    }

    /// The high watermark advances, and `Acks::All` appends are accepted,
    /// only while the confirmed in-sync set has at least this many
    /// replicas, the leader included (default 2).
    pub fn min_insync_replicas(mut self, count: usize) -> Self {
        self.min_insync_replicas = count;
        self
    }

    /// A follower that has not caught up with the leader's log end for
    /// this long is proposed for removal from the in-sync set (default 10 s).
    pub fn replica_lag_max(mut self, lag: Duration) -> Self {
        self.replica_lag_max = lag;
        self
    }

    /// How long an `Acks::All` append waits for its records to commit
    /// before it returns [`Error::CommitTimeout`](crate::Error::CommitTimeout)
    /// (default 30 s).
    pub fn ack_timeout(mut self, timeout: Duration) -> Self {
        self.ack_timeout = timeout;
        self
    }

    /// Least time between two durable writes of an advancing high
    /// watermark (default 1 s). Role changes and `close` always write it.
    /// After a crash the high watermark restarts from the last write: at
    /// most this much behind, never ahead of the log.
    pub fn high_watermark_persist_interval(mut self, interval: Duration) -> Self {
        self.high_watermark_persist_interval = interval;
        self
    }

    /// Hooks called after replication events (see [`ReplicaListener`]).
    pub fn listener(mut self, listener: Arc<dyn ReplicaListener>) -> Self {
        self.listener = listener;
        self
    }
}

impl From<Options> for ReplicaOptions {
    fn from(log: Options) -> Self {
        ReplicaOptions::new(log)
    }
}
