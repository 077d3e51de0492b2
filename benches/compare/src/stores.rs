//! The same workloads against replog and its peers, each in a fresh temporary
//! directory that is deleted when the run ends.
//!
//! Every function returns one `Sample`; what is timed is only the appends or
//! the reads themselves (plus, for okaywal's read, its open: see `okaywal_read`).

use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use commitlog::message::{MessageBuf, MessageSet};
use commitlog::{CommitLog, LogOptions, ReadLimit};
use okaywal::{Configuration, EntryId, LogManager, LogVoid, ReadChunkResult, SegmentReader, WriteAheadLog};
use raft_engine::{Config as RaftConfig, Engine, LogBatch, MessageExt};
use raft_proto::eraftpb::Entry;
use replog::replication::{
    Acks, DriverOptions, FollowerDriver, InMemoryTransport, Replica, ReplicaId, ReplicaOptions, Transport,
};
use replog::{Log, NewRecord, Options, SyncPolicy};
use tempfile::TempDir;

use crate::harness::{Budget, Sample, Values, Window, threaded_run, timed_loop, touch};

/// Records per batch in the batch workloads.
pub const BATCH: u64 = 100;

pub fn temp_dir(base: &Path) -> TempDir {
    tempfile::Builder::new()
        .prefix("replog-compare-")
        .tempdir_in(base)
        .expect("create temp dir")
}

// ---------------------------------------------------------------------------
// replog

/// 1 GiB segments, as in replog's own criterion bench, so a run (at most a few
/// hundred MiB) stays in one preallocated segment; otherwise production defaults.
fn replog_options(sync: SyncPolicy) -> Options {
    Options::default().segment_bytes(1 << 30).sync(sync)
}

/// `SyncPolicy::Never`; `append` per record or `append_batch` per `per_step`.
pub fn replog_append(base: &Path, values: &Values, per_step: u64, budget: Budget) -> Sample {
    let dir = temp_dir(base);
    let log = Log::open(dir.path(), replog_options(SyncPolicy::Never)).expect("replog open");
    let mut refs: Vec<&[u8]> = Vec::with_capacity(per_step as usize);
    let sample = timed_loop(per_step, budget, |i| {
        if per_step == 1 {
            log.append(values.get(i)).expect("replog append");
        } else {
            refs.clear();
            refs.extend((i..i + per_step).map(|j| values.get(j)));
            log.append_batch(&refs).expect("replog append_batch");
        }
    });
    // Not timed. Skips the final sync of a few hundred MiB that nobody reads:
    // the directory is deleted right after.
    log.simulate_crash();
    sample
}

/// `SyncPolicy::Always`, `threads` writers sharing one `Log` (group commit).
pub fn replog_durable(base: &Path, values: &Values, threads: usize, per_op: u64, window: Window) -> Sample {
    let dir = temp_dir(base);
    let log = Log::open(dir.path(), replog_options(SyncPolicy::Always)).expect("replog open");
    let sample = threaded_run(threads, window, |thread, done, _stop| {
        let first = thread as u64 * 1_000_003 + done;
        if per_op == 1 {
            log.append(values.get(first)).expect("replog append");
        } else {
            let refs: Vec<&[u8]> = (first..first + per_op).map(|j| values.get(j)).collect();
            log.append_batch(&refs).expect("replog append_batch");
        }
        per_op
    });
    log.close().expect("replog close");
    sample
}

/// `SyncPolicy::Always` on three replicas in this process (a leader and two
/// followers, each with a follower driver over the in-memory transport);
/// `threads` writers append one record per call to the leader with
/// `Acks::All`.
pub fn replog_replicated(base: &Path, values: &Values, threads: usize, window: Window) -> Sample {
    let ids = [ReplicaId(1), ReplicaId(2), ReplicaId(3)];
    let dirs: Vec<TempDir> = ids.iter().map(|_| temp_dir(base)).collect();
    let options = ReplicaOptions::new(replog_options(SyncPolicy::Always));
    let replicas: Vec<Arc<Replica>> = ids
        .iter()
        .zip(&dirs)
        .map(|(id, dir)| Arc::new(Replica::open(dir.path(), *id, options.clone()).expect("replica open")))
        .collect();
    let transport = Arc::new(InMemoryTransport::new());
    for replica in &replicas {
        transport.register(replica);
    }
    replicas[0].become_leader(1, &ids, &ids).expect("become leader");
    let drivers: Vec<FollowerDriver> = replicas[1..]
        .iter()
        .map(|follower| {
            follower.become_follower(1, ids[0]).expect("become follower");
            let transport: Arc<dyn Transport> = transport.clone();
            FollowerDriver::start(Arc::clone(follower), transport, DriverOptions::default()).expect("driver")
        })
        .collect();
    let leader = &replicas[0];
    let sample = threaded_run(threads, window, |thread, done, _stop| {
        let first = thread as u64 * 1_000_003 + done;
        leader
            .append(&[NewRecord::new(values.get(first))], Acks::All)
            .expect("replog replicated append");
        1
    });
    for driver in drivers {
        driver.stop();
    }
    drop(replicas);
    sample
}

pub struct ReplogRead {
    dir: TempDir,
}

impl ReplogRead {
    /// `records` records, `per_append` per call: `append` when 1 (so
    /// one-record batches), else `append_batch`.
    pub fn build(base: &Path, values: &Values, records: u64, per_append: u64) -> ReplogRead {
        let dir = temp_dir(base);
        let log = Log::open(dir.path(), replog_options(SyncPolicy::Never)).expect("replog open");
        let mut refs: Vec<&[u8]> = Vec::with_capacity(per_append as usize);
        for i in (0..records).step_by(per_append as usize) {
            if per_append == 1 {
                log.append(values.get(i)).expect("replog append");
                continue;
            }
            refs.clear();
            refs.extend((i..(i + per_append).min(records)).map(|j| values.get(j)));
            log.append_batch(&refs).expect("replog append_batch");
        }
        log.close().expect("replog close");
        ReplogRead { dir }
    }

    /// Reopens the log (so every batch's CRC is checked, as for data this
    /// process did not write), then times `iter(0)`, or `batches(0)` with
    /// each batch's borrowed records, over all of it.
    pub fn read(&self, records: u64, expected: u64, batches: bool) -> Sample {
        let log = Log::open(self.dir.path(), replog_options(SyncPolicy::Never)).expect("replog open");
        let start = Instant::now();
        let (mut n, mut sum) = (0u64, 0u64);
        if batches {
            for batch in log.batches(0) {
                for record in batch.expect("replog read").records() {
                    sum += touch(record.value());
                    n += 1;
                }
            }
        } else {
            for record in log.iter(0) {
                let record = record.expect("replog read");
                sum += touch(record.value());
                n += 1;
            }
        }
        let elapsed = start.elapsed();
        check_read("replog", n, records, sum, expected);
        log.close().expect("replog close");
        Sample { records: n, elapsed }
    }
}

fn check_read(store: &str, n: u64, records: u64, sum: u64, expected: u64) {
    assert_eq!(n, records, "{store}: read {n} records, expected {records}");
    assert_eq!(sum, expected, "{store}: read wrong data");
}

// ---------------------------------------------------------------------------
// commitlog

/// Defaults: 1 GB segments, an index entry per message, messages (here: a
/// whole message set) up to 1 MB.
fn commitlog_open(dir: &Path) -> CommitLog {
    CommitLog::new(LogOptions::new(dir)).expect("commitlog open")
}

/// `append_msg` per record, or `append` of a `MessageBuf` of `per_step`
/// messages (filling the buffer is timed: it encodes and checksums them).
pub fn commitlog_append(base: &Path, values: &Values, per_step: u64, budget: Budget) -> Sample {
    let dir = temp_dir(base);
    let mut log = commitlog_open(dir.path());
    let mut buf = MessageBuf::default();
    timed_loop(per_step, budget, |i| {
        if per_step == 1 {
            log.append_msg(values.get(i)).expect("commitlog append");
        } else {
            buf.clear();
            for j in i..i + per_step {
                buf.push(values.get(j)).expect("commitlog push");
            }
            log.append(&mut buf).expect("commitlog append");
        }
    })
}

pub struct CommitlogRead {
    dir: TempDir,
}

impl CommitlogRead {
    /// `records` records, `per_append` per call: `append_msg` when 1, else
    /// `append` of a `MessageBuf`.
    pub fn build(base: &Path, values: &Values, records: u64, per_append: u64) -> CommitlogRead {
        let dir = temp_dir(base);
        let mut log = commitlog_open(dir.path());
        let mut buf = MessageBuf::default();
        for i in (0..records).step_by(per_append as usize) {
            if per_append == 1 {
                log.append_msg(values.get(i)).expect("commitlog append_msg");
                continue;
            }
            buf.clear();
            for j in i..(i + per_append).min(records) {
                buf.push(values.get(j)).expect("commitlog push");
            }
            log.append(&mut buf).expect("commitlog append");
        }
        log.flush().expect("commitlog flush");
        CommitlogRead { dir }
    }

    /// Reopens the log, then reads it from offset 0 with 1 MiB `ReadLimit`s
    /// (each read is a `pread` into a fresh buffer whose messages' CRC-32Cs
    /// are checked).
    pub fn read(&self, records: u64, expected: u64) -> Sample {
        let log = commitlog_open(self.dir.path());
        let end = log.next_offset();
        let start = Instant::now();
        let (mut n, mut sum, mut offset) = (0u64, 0u64, 0u64);
        while offset < end {
            let messages = log.read(offset, ReadLimit::max_bytes(1 << 20)).expect("commitlog read");
            for message in messages.iter() {
                sum += touch(message.payload());
                n += 1;
                offset = message.offset() + 1;
            }
        }
        let elapsed = start.elapsed();
        check_read("commitlog", n, records, sum, expected);
        Sample { records: n, elapsed }
    }
}

// ---------------------------------------------------------------------------
// raft-engine

/// What TiKV's `MessageExtTyped` is: ties raft-engine's entry API to raft's
/// protobuf `Entry`, whose `index` field is the entry's position in its region.
#[derive(Clone)]
pub struct MessageExtTyped;

impl MessageExt for MessageExtTyped {
    type Entry = Entry;

    fn index(entry: &Entry) -> u64 {
        entry.index
    }
}

/// raft-engine's defaults (those TiKV starts from): 128 MiB files, batches
/// over 8 KiB LZ4-compressed, log recycling on, format V2.
fn raft_open(dir: &Path) -> Engine {
    let config = RaftConfig {
        dir: dir.to_str().expect("utf-8 temp path").to_owned(),
        ..RaftConfig::default()
    };
    Engine::open(config).expect("raft-engine open")
}

/// A reusable `LogBatch` and entry vector.
struct RaftWriter {
    batch: LogBatch,
    entries: Vec<Entry>,
}

impl RaftWriter {
    fn new(capacity: u64) -> RaftWriter {
        RaftWriter {
            batch: LogBatch::default(),
            entries: Vec::with_capacity(capacity as usize),
        }
    }

    /// Writes entries `first..first + count` of `region` (raft indexes start
    /// at 1, so record `i` is entry `i + 1`) as one `LogBatch`.
    fn write(&mut self, engine: &Engine, values: &Values, region: u64, first: u64, count: u64, sync: bool) {
        self.entries.clear();
        self.entries.extend((first..first + count).map(|i| Entry {
            term: 1,
            index: i + 1,
            data: values.bytes(i),
            ..Entry::default()
        }));
        self.batch
            .add_entries::<MessageExtTyped>(region, &self.entries)
            .expect("raft-engine add_entries");
        engine.write(&mut self.batch, sync).expect("raft-engine write");
    }
}

/// One `LogBatch` of `per_step` entries per `write`, `sync = false`.
pub fn raft_append(base: &Path, values: &Values, per_step: u64, budget: Budget) -> Sample {
    let dir = temp_dir(base);
    let engine = raft_open(dir.path());
    let mut writer = RaftWriter::new(per_step);
    timed_loop(per_step, budget, |i| {
        writer.write(&engine, values, 1, i, per_step, false)
    })
}

/// `write(.., sync = true)` from `threads` writers, each its own region.
pub fn raft_durable(base: &Path, values: &Values, threads: usize, per_op: u64, window: Window) -> Sample {
    let dir = temp_dir(base);
    let engine = raft_open(dir.path());
    threaded_run(threads, window, |thread, done, _stop| {
        // Each thread its own region, whose entries are 1..=done so far.
        RaftWriter::new(per_op).write(&engine, values, thread as u64 + 1, done, per_op, true);
        per_op
    })
}

pub struct RaftRead {
    dir: TempDir,
}

impl RaftRead {
    pub fn build(base: &Path, values: &Values, records: u64) -> RaftRead {
        let dir = temp_dir(base);
        let engine = raft_open(dir.path());
        let mut writer = RaftWriter::new(BATCH);
        for i in (0..records).step_by(BATCH as usize) {
            writer.write(&engine, values, 1, i, BATCH.min(records - i), false);
        }
        engine.sync().expect("raft-engine sync");
        RaftRead { dir }
    }

    /// Reopens the engine (its recovery reads all files to rebuild the
    /// in-memory index: not timed), then `fetch_entries_to` 1024 entries at a
    /// time. Each fetch reads and decodes a batch's block once (a per-thread
    /// block cache) and parses each protobuf `Entry` out of it.
    pub fn read(&self, records: u64, expected: u64) -> Sample {
        let engine = raft_open(self.dir.path());
        let mut entries: Vec<Entry> = Vec::with_capacity(1024);
        let start = Instant::now();
        let (mut n, mut sum, mut index) = (0u64, 0u64, 1u64);
        while index <= records {
            let end = (index + 1024).min(records + 1);
            engine
                .fetch_entries_to::<MessageExtTyped>(1, index, end, None, &mut entries)
                .expect("raft-engine fetch");
            for entry in &entries {
                sum += touch(&entry.data);
                n += 1;
            }
            entries.clear();
            index = end;
        }
        let elapsed = start.elapsed();
        check_read("raft-engine", n, records, sum, expected);
        Sample { records: n, elapsed }
    }
}

// ---------------------------------------------------------------------------
// okaywal

/// One entry of `per_op` chunks, committed: `commit` returns once the entry is
/// on disk (okaywal has no non-durable append). Default configuration: 1 MiB
/// preallocated files, checkpointed (here: to `LogVoid`, i.e. dropped) and
/// recycled every 768 KiB.
pub fn okaywal_append(base: &Path, values: &Values, per_op: u64, budget: Budget) -> Sample {
    let dir = temp_dir(base);
    let wal = WriteAheadLog::recover(dir.path(), LogVoid).expect("okaywal open");
    let sample = timed_loop(per_op, budget, |i| okaywal_write(&wal, values, i, per_op));
    // Lets its checkpoint thread finish before the directory goes.
    wal.shutdown().expect("okaywal shutdown");
    sample
}

fn okaywal_write(wal: &WriteAheadLog, values: &Values, first: u64, count: u64) {
    let mut writer = wal.begin_entry().expect("okaywal begin_entry");
    for i in first..first + count {
        writer.write_chunk(values.get(i)).expect("okaywal write_chunk");
    }
    writer.commit().expect("okaywal commit");
}

/// `threads` writers, each writing and committing its own entries.
pub fn okaywal_durable(base: &Path, values: &Values, threads: usize, per_op: u64, window: Window) -> Sample {
    let dir = temp_dir(base);
    let wal = WriteAheadLog::recover(dir.path(), LogVoid).expect("okaywal open");
    let sample = threaded_run(threads, window, |thread, done, _stop| {
        okaywal_write(&wal, values, thread as u64 * 1_000_003 + done, per_op);
        per_op
    });
    wal.shutdown().expect("okaywal shutdown");
    sample
}

/// Records per okaywal entry when filling the read data set: every commit is
/// an fdatasync, so bigger entries keep the fill short.
const OKAYWAL_FILL_BATCH: u64 = 1000;

pub struct OkaywalRead {
    dir: TempDir,
}

/// Reads every chunk of every entry okaywal hands to `LogManager::recover`.
#[derive(Debug)]
struct ReadAll {
    records: Arc<AtomicU64>,
    sum: Arc<AtomicU64>,
}

impl LogManager for ReadAll {
    fn recover(&mut self, entry: &mut okaywal::Entry<'_>) -> io::Result<()> {
        let mut value = [0u8; 4096];
        let (mut n, mut sum) = (0u64, 0u64);
        loop {
            match entry.read_chunk()? {
                ReadChunkResult::Chunk(mut chunk) => {
                    let len = chunk.bytes_remaining() as usize;
                    chunk.read_exact(&mut value[..len])?;
                    if !chunk.check_crc()? {
                        return Err(io::Error::new(io::ErrorKind::InvalidData, "okaywal: bad chunk crc"));
                    }
                    sum += touch(&value[..len]);
                    n += 1;
                }
                ReadChunkResult::EndOfEntry => break,
                ReadChunkResult::AbortedEntry => {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "okaywal: aborted entry"));
                }
            }
        }
        self.records.fetch_add(n, Ordering::Relaxed);
        self.sum.fetch_add(sum, Ordering::Relaxed);
        Ok(())
    }

    fn checkpoint_to(&mut self, _last: EntryId, _entries: &mut SegmentReader, _wal: &WriteAheadLog) -> io::Result<()> {
        Ok(())
    }
}

/// Never checkpoint, so the whole data set stays in the log to be read.
fn okaywal_keep_all(dir: &Path) -> Configuration {
    Configuration::default_for(dir).checkpoint_after_bytes(u64::MAX)
}

impl OkaywalRead {
    pub fn build(base: &Path, values: &Values, records: u64) -> OkaywalRead {
        let dir = temp_dir(base);
        let wal = okaywal_keep_all(dir.path()).open(LogVoid).expect("okaywal open");
        for i in (0..records).step_by(OKAYWAL_FILL_BATCH as usize) {
            okaywal_write(&wal, values, i, OKAYWAL_FILL_BATCH.min(records - i));
        }
        wal.shutdown().expect("okaywal shutdown");
        OkaywalRead { dir }
    }

    /// okaywal's only way to read its log in order is recovery: opening it
    /// hands every entry not yet checkpointed to `LogManager::recover`. So the
    /// timed part is the open itself.
    pub fn read(&self, records: u64, expected: u64) -> Sample {
        let counts = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let manager = ReadAll {
            records: Arc::clone(&counts.0),
            sum: Arc::clone(&counts.1),
        };
        let start = Instant::now();
        let wal = okaywal_keep_all(self.dir.path()).open(manager).expect("okaywal open");
        let elapsed = start.elapsed();
        let (n, sum) = (counts.0.load(Ordering::Relaxed), counts.1.load(Ordering::Relaxed));
        check_read("okaywal", n, records, sum, expected);
        wal.shutdown().expect("okaywal shutdown");
        Sample { records: n, elapsed }
    }
}
