//! openraft 0.9 on `raft-log`, the write-ahead log Databend wrote for its
//! Raft log (and openraft's `log-wal` example store uses): the bench's
//! "store to beat". Written here for openraft 0.9 after the shape of that
//! example: every append is followed by `flush(true)`, whose fsync runs on
//! raft-log's worker thread and fires the callback.

use std::fmt::Debug;
use std::io::{self, Read, Write};
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{Entry, LogId, LogState, RaftLogReader, StorageError, StorageIOError, Vote};
use parking_lot::Mutex;
use raft_log::api::raft_log_writer::RaftLogWriter;
use raft_log::codeq::{Decode, Encode};
use raft_log::{Config, RaftLog};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::TypeConfig;

/// A value raft-log stores, encoded as a length and postcard bytes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Coded<T>(pub T);

impl<T: Serialize> Encode for Coded<T> {
    fn encode<W: Write>(&self, mut w: W) -> Result<usize, io::Error> {
        let bytes = postcard::to_allocvec(&self.0).map_err(io::Error::other)?;
        w.write_all(&(bytes.len() as u32).to_le_bytes())?;
        w.write_all(&bytes)?;
        Ok(4 + bytes.len())
    }
}

impl<T: DeserializeOwned> Decode for Coded<T> {
    fn decode<R: Read>(mut r: R) -> Result<Self, io::Error> {
        let mut len = [0u8; 4];
        r.read_exact(&mut len)?;
        let mut bytes = vec![0u8; u32::from_le_bytes(len) as usize];
        r.read_exact(&mut bytes)?;
        postcard::from_bytes(&bytes).map(Coded).map_err(io::Error::other)
    }
}

/// What a raft-log flush reports to.
pub enum WalCallback {
    /// openraft's append callback.
    Flushed(LogFlushed<TypeConfig>),
    /// A caller waiting (save_vote).
    Done(tokio::sync::oneshot::Sender<io::Result<()>>),
}

impl raft_log::Callback for WalCallback {
    fn send(self, res: Result<(), io::Error>) {
        match self {
            WalCallback::Flushed(callback) => callback.log_io_completed(res),
            WalCallback::Done(tx) => {
                let _ = tx.send(res);
            }
        }
    }
}

/// The raft-log type parameters.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WalTypes;

impl raft_log::Types for WalTypes {
    type LogId = Coded<LogId<u64>>;
    type LogPayload = Coded<Entry<TypeConfig>>;
    type Vote = Coded<Vote<u64>>;
    type Callback = WalCallback;
    type UserData = Coded<u64>;

    fn log_index(log_id: &Self::LogId) -> u64 {
        log_id.0.index
    }

    fn payload_size(_payload: &Self::LogPayload) -> u64 {
        64
    }
}

/// The store; clones share the log.
#[derive(Clone)]
pub struct WalLogStore {
    log: Arc<Mutex<RaftLog<WalTypes>>>,
}

impl WalLogStore {
    /// Opens (creating) the raft-log in `dir` with its default config, or
    /// with `flush_batch_wait` set (its default, 1 ms, is how long a flush
    /// waits to gather more requests before it syncs).
    pub fn open(dir: &std::path::Path, flush_batch_wait: Option<std::time::Duration>) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut config = Config::new(dir.display());
        if flush_batch_wait.is_some() {
            config.wal.flush_batch_wait = flush_batch_wait;
        }
        let log = RaftLog::open(Arc::new(config))?;
        Ok(WalLogStore {
            log: Arc::new(Mutex::new(log)),
        })
    }
}

fn io_err(e: io::Error) -> StorageError<u64> {
    StorageIOError::write_logs(&e).into()
}

impl RaftLogReader<TypeConfig> for WalLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<u64>> {
        let start = match range.start_bound() {
            Bound::Included(&n) => n,
            Bound::Excluded(&n) => n + 1,
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&n) => n + 1,
            Bound::Excluded(&n) => n,
            Bound::Unbounded => u64::MAX,
        };
        let log = self.log.lock();
        log.read(start, end)
            .map(|r| r.map(|(_, payload)| payload.0))
            .collect::<Result<_, _>>()
            .map_err(io_err)
    }
}

impl RaftLogStorage<TypeConfig> for WalLogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<u64>> {
        let log = self.log.lock();
        let state = log.log_state();
        Ok(LogState {
            last_purged_log_id: state.purged().map(|id| id.0),
            last_log_id: state.last().map(|id| id.0),
        })
    }

    async fn get_log_reader(&mut self) -> Self {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError<u64>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        {
            let mut log = self.log.lock();
            log.save_vote(Coded(*vote)).map_err(io_err)?;
            log.flush(true, Some(WalCallback::Done(tx))).map_err(io_err)?;
        }
        rx.await.map_err(io::Error::other).and_then(|r| r).map_err(io_err)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError<u64>> {
        Ok(self.log.lock().log_state().vote().map(|v| v.0))
    }

    async fn save_committed(&mut self, committed: Option<LogId<u64>>) -> Result<(), StorageError<u64>> {
        if let Some(committed) = committed {
            self.log.lock().commit(Coded(committed)).map_err(io_err)?;
        }
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>, StorageError<u64>> {
        Ok(self.log.lock().log_state().committed().map(|id| id.0))
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
    {
        let mut log = self.log.lock();
        log.append(entries.into_iter().map(|e| (Coded(e.log_id), Coded(e))))
            .map_err(io_err)?;
        log.flush(true, Some(WalCallback::Flushed(callback))).map_err(io_err)
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        let mut log = self.log.lock();
        let next = log.log_state().last().map_or(0, |id| id.0.index + 1);
        if log_id.index < next {
            log.truncate(log_id.index).map_err(io_err)?;
        }
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        let mut log = self.log.lock();
        if log.log_state().purged().is_some_and(|p| p.0.index >= log_id.index) {
            return Ok(());
        }
        log.purge(Coded(log_id)).map_err(io_err)?;
        log.flush(true, None).map_err(io_err)
    }
}
