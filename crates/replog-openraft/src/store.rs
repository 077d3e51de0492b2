//! [`LogStore`]: opening, the shared state, and the checks that tie the log
//! to its metadata file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::{LogId, NodeId, RaftLogId, RaftTypeConfig};
use parking_lot::Mutex;
use replog::{Log, Options, SyncPolicy};

use crate::codec;
use crate::error::{Error, Result};
use openraft::storage::LogFlushed;

use crate::flush::{self, DurableListener, FlushQueue, FlushStats, Flusher};
use crate::meta::{self, Meta};

/// Name of the replog directory inside the store's directory.
pub const LOG_DIR_NAME: &str = "log";
/// Name of the metadata file inside the store's directory.
pub const META_FILE_NAME: &str = "meta";

/// An openraft log store on a replog [`Log`]: one entry per record, Raft log
/// index = replog offset.
///
/// Implements [`RaftLogStorage`](openraft::storage::RaftLogStorage); its
/// [`LogReader`](crate::LogReader) implements
/// [`RaftLogReader`](openraft::RaftLogReader). The directory holds the log
/// (`log/`) and the metadata file (`meta`: vote, committed and last purged
/// log ids).
///
/// # Examples
///
/// ```
/// # use std::io::Cursor;
/// # openraft::declare_raft_types!(pub Config: D = u64, R = u64, NodeId = u64,
/// #     Node = openraft::BasicNode, Entry = openraft::Entry<Config>,
/// #     SnapshotData = Cursor<Vec<u8>>, AsyncRuntime = openraft::TokioRuntime);
/// # fn main() -> replog_openraft::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// let store = replog_openraft::LogStore::<Config>::open(dir.path())?;
/// assert_eq!(store.log().next_offset(), 0);
/// store.close()?;
/// # Ok(()) }
/// ```
pub struct LogStore<C: RaftTypeConfig> {
    // Declared first so it is dropped first: it syncs what still waits.
    flusher: Option<Flusher<LogFlushed<C>>>,
    pub(crate) inner: Arc<Inner<C>>,
}

/// What the store and its readers share.
pub(crate) struct Inner<C: RaftTypeConfig> {
    pub(crate) log: Arc<Log>,
    pub(crate) queue: Arc<FlushQueue<LogFlushed<C>>>,
    pub(crate) meta_path: PathBuf,
    pub(crate) state: Mutex<State<C::NodeId>>,
}

/// The metadata as last written (plus the committed id, kept in memory
/// until the next write) and the id of the last entry.
pub(crate) struct State<NID: NodeId> {
    pub(crate) meta: Meta<NID>,
    pub(crate) last_log_id: Option<LogId<NID>>,
}

impl<NID: NodeId> State<NID> {
    /// The first index whose entry is present: above the purged ones.
    pub(crate) fn first_index(&self, log: &Log) -> u64 {
        let after_purged = self.meta.purged.as_ref().map_or(0, |p| p.index + 1);
        log.start_offset().max(after_purged)
    }
}

impl<C: RaftTypeConfig> LogStore<C> {
    /// Opens the store in `dir`, creating it if needed, with replog's
    /// default options (256 MiB segments).
    ///
    /// # Errors
    ///
    /// As [`LogStore::open_with`].
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        LogStore::open_with(dir, Options::default())
    }

    /// Opens the store in `dir` with these replog options. The store sets
    /// [`SyncPolicy::Never`] and its own listener (its flusher thread syncs,
    /// shared by all appends in flight); do not set a retention: the store
    /// deletes whole segments itself once openraft has purged them.
    ///
    /// Cost: opening the log (no data read after a clean close), reading
    /// the metadata file and decoding the last entry.
    ///
    /// # Errors
    ///
    /// [`Error::Log`] if the log cannot be opened (including
    /// [`replog::Error::Locked`] while another handle has it, and
    /// [`replog::Error::Corrupt`] for a segment of another log);
    /// [`Error::MetaCorrupt`] for a damaged metadata file,
    /// [`Error::MetaMissing`] if it is gone while the log has entries,
    /// [`Error::MetaForeign`] if it belongs to another log,
    /// [`Error::Inconsistent`], [`Error::MetaIo`], [`Error::Codec`].
    pub fn open_with(dir: impl AsRef<Path>, options: Options) -> Result<Self> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|source| Error::MetaIo {
            op: "create directory",
            path: dir.to_owned(),
            source,
        })?;
        let queue = Arc::new(FlushQueue::new());
        let options = options
            .sync(SyncPolicy::Never)
            .listener(Arc::new(DurableListener(queue.clone())));
        let log = Arc::new(Log::open(dir.join(LOG_DIR_NAME), options)?);
        let meta_path = dir.join(META_FILE_NAME);
        let meta = load_or_create_meta(&log, &meta_path)?;
        reconcile_purged(&log, &meta)?;
        let last_log_id = read_last_log_id::<C>(&log, &meta)?;
        let inner = Arc::new(Inner {
            log: log.clone(),
            queue: queue.clone(),
            meta_path,
            state: Mutex::new(State { meta, last_log_id }),
        });
        let flusher = Flusher::spawn(queue.clone(), log).map_err(|source| Error::MetaIo {
            op: "spawn flusher thread",
            path: dir.to_owned(),
            source,
        })?;
        if let Some(purged) = &inner.state.lock().meta.purged {
            // Segments a crash kept from being deleted after a purge.
            queue.request_delete_before(purged.index + 1);
        }
        Ok(LogStore {
            flusher: Some(flusher),
            inner,
        })
    }

    /// The replog log under the store, for inspection (offsets, durable
    /// offset, recovery report). Write to it only through openraft.
    pub fn log(&self) -> &Log {
        &self.inner.log
    }

    /// A reader of this store, for use outside openraft (it keeps the log
    /// open after the store is handed to `Raft::new`).
    pub fn reader(&self) -> crate::LogReader<C> {
        crate::LogReader::new(self.inner.clone())
    }

    /// How appends' flush callbacks met the syncs so far (group commit).
    pub fn flush_stats(&self) -> FlushStats {
        self.inner.queue.stats()
    }

    /// Syncs what is waiting (firing its callbacks), writes the committed
    /// log id into the metadata file, and closes the log cleanly. Dropping
    /// the store does the same, ignoring errors. If a reader is still alive
    /// the log itself closes when the last reader is dropped.
    ///
    /// # Errors
    ///
    /// [`Error::Poisoned`] after a failed sync, [`Error::MetaIo`],
    /// [`Error::Log`].
    pub fn close(mut self) -> Result<()> {
        self.close_inner()
    }

    fn close_inner(&mut self) -> Result<()> {
        let Some(flusher) = self.flusher.take() else {
            return Ok(());
        };
        drop(flusher);
        if let Some(message) = self.inner.queue.poisoned() {
            return Err(Error::Poisoned(message));
        }
        {
            let state = self.inner.state.lock();
            meta::store(&self.inner.meta_path, &state.meta)?;
        }
        self.inner.log.sync()?;
        Ok(())
    }
}

impl<C: RaftTypeConfig> Drop for LogStore<C> {
    fn drop(&mut self) {
        let _ = self.close_inner();
    }
}

impl<C: RaftTypeConfig> Inner<C> {
    /// Makes every append so far durable (firing its callbacks) before a
    /// write that must not overtake it.
    /// Refused once a sync has failed (the store stays poisoned).
    pub(crate) fn sync_appends(&self) -> Result<()> {
        if let Some(message) = self.queue.poisoned() {
            return Err(Error::Poisoned(message));
        }
        flush::sync(&self.queue, &self.log).map_err(|e| Error::Poisoned(e.to_string()))
    }

    /// Writes `meta` durably, then makes it the state's.
    pub(crate) fn write_meta(&self, state: &mut State<C::NodeId>, meta: Meta<C::NodeId>) -> Result<()> {
        meta::store(&self.meta_path, &meta)?;
        state.meta = meta;
        Ok(())
    }

    /// The log id of the entry before `index`, or the last purged one if
    /// that entry is not present.
    pub(crate) fn log_id_before(&self, state: &State<C::NodeId>, index: u64) -> Result<Option<LogId<C::NodeId>>> {
        if index == 0 || index - 1 < state.first_index(&self.log) {
            return Ok(state.meta.purged.clone());
        }
        read_log_id::<C>(&self.log, index - 1).map(Some)
    }
}

fn load_or_create_meta<NID: NodeId>(log: &Log, path: &Path) -> Result<Meta<NID>> {
    meta::remove_leftover(path)?;
    match meta::load::<NID>(path)? {
        Some(meta) if meta.log_id != log.log_id() => Err(Error::MetaForeign {
            path: path.to_owned(),
            meta_log_id: meta.log_id,
            log_id: log.log_id(),
        }),
        Some(meta) => Ok(meta),
        None if log.next_offset() > log.start_offset() => Err(Error::MetaMissing { path: path.to_owned() }),
        None => {
            let meta = Meta::new(log.log_id());
            meta::store(path, &meta)?;
            Ok(meta)
        }
    }
}

/// Finishes a purge a crash interrupted: a purge past the last entry
/// writes the metadata, then resets the log past it.
fn reconcile_purged<NID: NodeId>(log: &Log, meta: &Meta<NID>) -> Result<()> {
    let Some(purged) = &meta.purged else {
        return Ok(());
    };
    if log.next_offset() <= purged.index {
        log.reset(purged.index + 1)?;
    } else if log.start_offset() > purged.index + 1 {
        return Err(Error::Inconsistent(format!(
            "the log starts at {} but only entries up to {purged} were purged",
            log.start_offset()
        )));
    }
    Ok(())
}

fn read_last_log_id<C: RaftTypeConfig>(log: &Log, meta: &Meta<C::NodeId>) -> Result<Option<LogId<C::NodeId>>> {
    let state = State {
        meta: meta.clone(),
        last_log_id: None,
    };
    let next = log.next_offset();
    if next > state.first_index(log) {
        read_log_id::<C>(log, next - 1).map(Some)
    } else {
        Ok(meta.purged.clone())
    }
}

/// Decodes the entry at `index` for its log id.
pub(crate) fn read_log_id<C: RaftTypeConfig>(log: &Log, index: u64) -> Result<LogId<C::NodeId>> {
    let record = log.read(index)?;
    let entry: C::Entry = codec::decode(index, record.value())?;
    let log_id = entry.get_log_id().clone();
    if log_id.index != index {
        return Err(Error::Inconsistent(format!(
            "the entry at offset {index} has log id {log_id}"
        )));
    }
    Ok(log_id)
}
