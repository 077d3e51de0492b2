//! openraft's storage traits on [`LogStore`] and [`LogReader`].

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{
    ErrorSubject, ErrorVerb, LogId, LogState, OptionalSend, RaftLogId, RaftLogReader, RaftTypeConfig, StorageError,
    Vote,
};

use crate::codec;
use crate::error::{Error, Result, log_error};
use crate::store::{Inner, LogStore};

/// Reads entries for openraft's replication tasks; any number may read
/// while the store appends (replog readers never block its writer).
pub struct LogReader<C: RaftTypeConfig> {
    inner: Arc<Inner<C>>,
}

impl<C: RaftTypeConfig> Clone for LogReader<C> {
    fn clone(&self) -> Self {
        LogReader {
            inner: self.inner.clone(),
        }
    }
}

impl<C: RaftTypeConfig> LogReader<C> {
    pub(crate) fn new(inner: Arc<Inner<C>>) -> Self {
        LogReader { inner }
    }

    /// As [`LogStore::flush_stats`]: a reader outlives the store's move into
    /// `Raft::new`, so it can report them afterwards.
    pub fn flush_stats(&self) -> crate::FlushStats {
        self.inner.queue.stats()
    }
}

impl<C: RaftTypeConfig> Inner<C> {
    /// The present entries in `range`: clamped to the first present index
    /// and the end of the log. Cost: a seek (index lookup) and one decode
    /// per entry.
    fn read_range(&self, range: impl RangeBounds<u64>) -> Result<Vec<C::Entry>> {
        let first = self.state.lock().first_index(&self.log);
        let start = match range.start_bound() {
            Bound::Included(&n) => n,
            Bound::Excluded(&n) => n.saturating_add(1),
            Bound::Unbounded => 0,
        }
        .max(first);
        let end = match range.end_bound() {
            Bound::Included(&n) => n.saturating_add(1),
            Bound::Excluded(&n) => n,
            Bound::Unbounded => u64::MAX,
        }
        .min(self.log.next_offset());
        if start >= end {
            return Ok(Vec::new());
        }
        let mut entries = Vec::with_capacity((end - start).min(1024) as usize);
        for record in self.log.iter(start).take((end - start) as usize) {
            let record = record?;
            entries.push(codec::decode(record.offset(), record.value())?);
        }
        Ok(entries)
    }
}

fn range_error<NID: openraft::NodeId>(e: Error, range: &impl Debug) -> StorageError<NID> {
    e.into_storage(ErrorSubject::Logs, ErrorVerb::Read, format!("read entries {range:?}"))
}

impl<C: RaftTypeConfig> RaftLogReader<C> for LogReader<C> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, StorageError<C::NodeId>> {
        self.inner.read_range(range.clone()).map_err(|e| range_error(e, &range))
    }
}

impl<C: RaftTypeConfig> RaftLogReader<C> for LogStore<C> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, StorageError<C::NodeId>> {
        self.inner.read_range(range.clone()).map_err(|e| range_error(e, &range))
    }
}

impl<C: RaftTypeConfig> LogStore<C> {
    /// Writes the entries into the log as one replog batch (atomic), and
    /// queues `callback` for the flusher. Returns the end offset.
    fn append_entries(&self, entries: Vec<C::Entry>) -> Result<u64> {
        let inner = &self.inner;
        if let Some(message) = inner.queue.poisoned() {
            return Err(Error::Poisoned(message));
        }
        let Some(first_entry) = entries.first() else {
            return Ok(inner.log.next_offset());
        };
        let first = first_entry.get_log_id().index;
        let mut state = inner.state.lock();
        let next = inner.log.next_offset();
        if first != next {
            // Only a log without present entries may jump: it starts where
            // openraft's first index is. (openraft's own suite also appends
            // at or below the purged id into an empty log; those entries stay
            // hidden below the purge point.)
            if state.first_index(&inner.log) < next {
                return Err(Error::NotContiguous {
                    index: first,
                    expected: next,
                });
            }
            inner.log.reset(first)?;
        }
        let mut values = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            let index = entry.get_log_id().index;
            let expected = first + i as u64;
            if index != expected {
                return Err(Error::NotContiguous { index, expected });
            }
            values.push(codec::encode(index, entry)?);
        }
        let base = inner.log.append_batch(&values)?;
        assert_eq!(base, first, "replog placed the batch at another offset");
        state.last_log_id = Some(entries[entries.len() - 1].get_log_id().clone());
        Ok(first + entries.len() as u64)
    }
}

impl<C: RaftTypeConfig> RaftLogStorage<C> for LogStore<C> {
    type LogReader = LogReader<C>;

    async fn get_log_state(&mut self) -> Result<LogState<C>, StorageError<C::NodeId>> {
        let state = self.inner.state.lock();
        let last_purged_log_id = state.meta.purged.clone();
        let last_log_id = state.last_log_id.clone().max(last_purged_log_id.clone());
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        LogReader {
            inner: self.inner.clone(),
        }
    }

    async fn save_vote(&mut self, vote: &Vote<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        let to_storage = |e: Error| e.into_storage(ErrorSubject::Vote, ErrorVerb::Write, format!("save vote {vote}"));
        // Writes are serialized: appends before the vote are durable first.
        self.inner.sync_appends().map_err(to_storage)?;
        let mut state = self.inner.state.lock();
        let mut meta = state.meta.clone();
        meta.vote = Some(vote.clone());
        self.inner.write_meta(&mut state, meta).map_err(to_storage)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<C::NodeId>>, StorageError<C::NodeId>> {
        Ok(self.inner.state.lock().meta.vote.clone())
    }

    /// Kept in memory and written with the next metadata write (a vote, a
    /// purge, close): an fsync per commit would cost more than the append.
    /// After a crash the committed id read back may lag, which openraft
    /// handles by applying from the state machine's last applied id.
    async fn save_committed(&mut self, committed: Option<LogId<C::NodeId>>) -> Result<(), StorageError<C::NodeId>> {
        let mut state = self.inner.state.lock();
        if committed > state.meta.committed {
            state.meta.committed = committed;
        }
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<C::NodeId>>, StorageError<C::NodeId>> {
        Ok(self.inner.state.lock().meta.committed.clone())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<C>) -> Result<(), StorageError<C::NodeId>>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<C::Entry> = entries.into_iter().collect();
        let first = entries.first().map(|e| e.get_log_id().clone());
        let count = entries.len() as u64;
        match self.append_entries(entries) {
            Ok(end) => {
                self.inner.queue.push(&self.inner.log, end, count, callback);
                Ok(())
            }
            Err(e) => Err(match first {
                Some(log_id) => log_error(e, log_id, ErrorVerb::Write, "append from"),
                None => e.into_storage(ErrorSubject::Logs, ErrorVerb::Write, "append"),
            }),
        }
    }

    async fn truncate(&mut self, log_id: LogId<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        let inner = &self.inner;
        let result = (|| {
            if log_id.index >= inner.log.next_offset() {
                return Ok(());
            }
            // Callbacks queued for entries about to go are fired now, while
            // those entries are what they acknowledge; left queued, a later
            // sync would acknowledge the entries that replace them.
            inner.sync_appends()?;
            let mut state = inner.state.lock();
            inner.log.truncate(log_id.index.max(inner.log.start_offset()))?;
            state.last_log_id = inner.log_id_before(&state, log_id.index)?;
            Ok(())
        })();
        result.map_err(|e| log_error(e, log_id, ErrorVerb::Delete, "truncate since"))
    }

    async fn purge(&mut self, log_id: LogId<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        let inner = &self.inner;
        let result = (|| {
            // Writes are serialized (and the reset below would drop queued
            // entries): what was appended is made durable first.
            inner.sync_appends()?;
            let beyond_last = log_id.index >= inner.log.next_offset();
            let mut state = inner.state.lock();
            if state.meta.purged.as_ref() >= Some(&log_id) {
                return Ok(());
            }
            let mut meta = state.meta.clone();
            meta.purged = Some(log_id.clone());
            inner.write_meta(&mut state, meta)?;
            if beyond_last {
                inner.log.reset(log_id.index + 1)?;
            } else {
                // Whole segments go on the flusher thread, off this call.
                inner.queue.request_delete_before(log_id.index + 1);
            }
            if state.last_log_id.as_ref() < Some(&log_id) {
                state.last_log_id = Some(log_id.clone());
            }
            Ok(())
        })();
        result.map_err(|e| log_error(e, log_id, ErrorVerb::Delete, "purge up to"))
    }
}
