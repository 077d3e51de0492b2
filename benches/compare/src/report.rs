//! The results table (plain Markdown, printed and written to a file) and the
//! notes that say what each figure means.

use std::fmt::Write;
use std::path::Path;
use std::time::Duration;

use crate::machine::{Machine, now_utc};
use crate::raw::{POPULATE_FALLBACK, RECORD_BYTES};
use crate::{Kind, Settings, Workload};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    Replog,
    Commitlog,
    RaftEngine,
    Okaywal,
    /// `memcpy` into a map (non-durable rows, reads); `write` + `fdatasync`
    /// on a zero-filled file (durable rows).
    Raw,
    /// `write` + `fdatasync` on a file that was only `fallocate`d.
    RawFalloc,
}

const COLUMNS: [Peer; 6] = [
    Peer::Replog,
    Peer::Commitlog,
    Peer::RaftEngine,
    Peer::Okaywal,
    Peer::Raw,
    Peer::RawFalloc,
];

impl Peer {
    pub fn name(self) -> &'static str {
        match self {
            Peer::Replog => "replog",
            Peer::Commitlog => "commitlog",
            Peer::RaftEngine => "raft-engine",
            Peer::Okaywal => "okaywal",
            Peer::Raw => "raw",
            Peer::RawFalloc => "raw, fallocate-only",
        }
    }
}

/// All repetitions of one workload, per peer.
pub struct Row {
    label: String,
    kind: Kind,
    rates: Vec<(Peer, Vec<f64>)>,
}

impl Row {
    pub fn new(workload: &Workload) -> Row {
        Row {
            label: workload.label.clone(),
            kind: workload.kind,
            rates: workload.peers.iter().map(|&p| (p, Vec::new())).collect(),
        }
    }

    pub fn push(&mut self, peer: Peer, rate: f64) {
        let slot = self
            .rates
            .iter_mut()
            .find(|(p, _)| *p == peer)
            .expect("peer of this row");
        slot.1.push(rate);
    }

    fn samples(&self, peer: Peer) -> Option<&[f64]> {
        self.rates.iter().find(|(p, _)| *p == peer).map(|(_, r)| &r[..])
    }

    fn median(&self, peer: Peer) -> Option<f64> {
        median(self.samples(peer)?.to_vec())
    }

    /// replog's rate over `peer`'s, taken within each repetition (where the
    /// two ran seconds apart, under much the same noise) and then the median
    /// of those: steadier than the ratio of the medians when the machine's
    /// speed drifts during the run.
    fn ratio(&self, peer: Peer) -> Option<f64> {
        let ours = self.samples(Peer::Replog)?;
        let theirs = self.samples(peer)?;
        median(ours.iter().zip(theirs).map(|(a, b)| a / b).collect())
    }

    /// The label, with what "raw" is in this row.
    fn title(&self) -> String {
        let raw = match self.kind {
            Kind::Append { .. } | Kind::Read { .. } => "raw = mmap",
            Kind::Durable { .. } => "raw = write+fdatasync",
        };
        format!("{} ({raw})", self.label)
    }

    /// okaywal's appends are always durable: marked where the row is not.
    fn mark(&self, peer: Peer) -> &'static str {
        match (self.kind, peer) {
            (Kind::Append { .. }, Peer::Okaywal) => " †",
            (Kind::Durable { replicated: true, .. }, Peer::Replog) => " ‡",
            _ => "",
        }
    }
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    })
}

/// `12.3 M`, `456 k`, `789`: three significant digits.
pub fn rate(r: f64) -> String {
    let (v, unit) = if r >= 1e6 {
        (r / 1e6, " M")
    } else if r >= 1e3 {
        (r / 1e3, " k")
    } else {
        (r, "")
    };
    let digits = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    format!("{v:.digits$}{unit}")
}

pub fn duration(d: Duration) -> String {
    let s = d.as_secs();
    format!("{} min {:02} s", s / 60, s % 60)
}

/// The main table: medians, then replog's ratio to each other column.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::from("| workload (records/s) |");
    for peer in COLUMNS {
        let _ = write!(out, " {} |", peer.name());
    }
    for peer in &COLUMNS[1..] {
        let _ = write!(out, " replog / {} |", peer.name());
    }
    out.push_str("\n|---|");
    out.push_str(&"---:|".repeat(COLUMNS.len() * 2 - 1));
    out.push('\n');
    for row in rows {
        let _ = write!(out, "| {} |", row.title());
        for peer in COLUMNS {
            match row.median(peer) {
                Some(m) => {
                    let _ = write!(out, " {}{} |", rate(m), row.mark(peer));
                }
                None => out.push_str(" — |"),
            }
        }
        for peer in &COLUMNS[1..] {
            match row.ratio(*peer) {
                Some(ratio) => {
                    let _ = write!(out, " {ratio:.2}×{} |", row.mark(*peer));
                }
                None => out.push_str(" — |"),
            }
        }
        out.push('\n');
    }
    out
}

/// Every repetition's rate, so the noise can be judged.
fn spread(rows: &[Row]) -> String {
    let mut out = String::from("| workload |");
    for peer in COLUMNS {
        let _ = write!(out, " {} |", peer.name());
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(COLUMNS.len()));
    out.push('\n');
    for row in rows {
        let _ = write!(out, "| {} |", row.label);
        for peer in COLUMNS {
            match row.samples(peer) {
                Some(rates) if !rates.is_empty() => {
                    let (lo, hi) = rates
                        .iter()
                        .fold((f64::MAX, f64::MIN), |(lo, hi), &r| (lo.min(r), hi.max(r)));
                    let _ = write!(out, " {} – {} |", rate(lo), rate(hi));
                }
                _ => out.push_str(" — |"),
            }
        }
        out.push('\n');
    }
    out
}

pub fn markdown(machine: &Machine, s: &Settings, base: &Path, rows: &[Row], elapsed: Duration) -> String {
    let mut md = String::new();
    let mode = if s.quick {
        "`--quick` (smoke run: short, noisy)"
    } else {
        "full"
    };
    let _ = writeln!(md, "# replog and its peers, side by side\n");
    let _ = writeln!(
        md,
        "Written by `benches/compare` (`cargo run --release`), mode: {mode}, on {}. The whole run took {}.\n",
        now_utc(),
        duration(elapsed)
    );
    let _ = writeln!(md, "## Machine\n");
    let _ = writeln!(md, "- CPU: {}, {} cores available", machine.cpu, machine.cores);
    let _ = writeln!(md, "- Memory: {}", machine.memory);
    let reporting = machine.reporting.as_ref().map_or_else(
        || "off (no page_reporting module)".to_owned(),
        |r| r.describe(machine.reported_during_kib),
    );
    let _ = writeln!(
        md,
        "- Free page reporting to the host: {reporting}. Memory reported is given back; touching it again \
         costs a fault in the host, which every fresh page-cache page of a new log pays."
    );
    let _ = writeln!(md, "- Kernel: {}", machine.kernel);
    let _ = writeln!(md, "- Stores under `{}`: {}", base.display(), machine.fs);
    let _ = writeln!(md, "- Toolchain: {}", machine.rustc);
    let _ = writeln!(md, "- replog: {}", machine.replog);
    let _ = writeln!(
        md,
        "- Load average (1 / 5 / 15 min) when the run started: {}; when it ended: {}.",
        machine.load_at_start, machine.load_at_end
    );
    let _ = writeln!(
        md,
        "- Disk traffic of other processes on {}, over 2 s just before the run: {}; just after: {}. Other \
         processes' CPU use and flushes show up as noise, the flushes in the durable rows above all.\n",
        machine.device.as_deref().unwrap_or("the device"),
        machine.disk_before,
        machine.disk_after
    );
    let _ = writeln!(md, "## Results\n");
    let _ = writeln!(
        md,
        "Records per second, 256-byte values; each figure is the median of {} repetitions ({} for the durable \
         rows), the stores taking turns within each repetition (see *How it is measured*). Each ratio is the median \
         of replog's rate over the other's within each repetition (so it need not equal the ratio of the two \
         medians); above 1 means replog is faster. \"raw\" is the machine's limit for one writer: `memcpy` into a pre-faulted map for \
         the append and read rows, `write` + `fdatasync` on a zero-filled file for the durable rows; \"raw, \
         fallocate-only\" is the same on a file that was only `fallocate`d: for appends, a map whose pages are \
         faulted in (and zeroed by the kernel) as they are first written, which is what any log writing new \
         pages pays; for durable rows, `write` + `fdatasync` into unwritten extents. † okaywal has \
         no non-durable append: its figure there is for durable (fsynced) batches. ‡ replog replicated: three \
         replicas in this process, every append acknowledged by all three (see *Semantics notes*); the peers and \
         the raw baselines in that row are the single-node figures of the same workload.\n",
        s.reps, s.durable_reps
    );
    md.push_str(&table(rows));
    let _ = writeln!(md, "\nRange (slowest – fastest repetition) of the same runs:\n");
    md.push_str(&spread(rows));
    md.push_str(&semantics(s));
    md
}

fn semantics(s: &Settings) -> String {
    let fallback = if POPULATE_FALLBACK.load(std::sync::atomic::Ordering::Relaxed) {
        "`MADV_POPULATE_WRITE` was refused on this kernel, so every page was touched instead"
    } else {
        "`MADV_POPULATE_WRITE`"
    };
    let secs = |d: Duration| format!("{:.2} s", d.as_secs_f64());
    let a = &s.append;
    let d = &s.durable_append;
    format!(
        r#"
## How it is measured

- One process runs every store. For each workload, each repetition runs every store once, in turn, starting one
  store later each repetition; every run gets a fresh temporary directory, deleted when the run ends.
- Values: a pool of 4096 distinct pseudo-random 256-byte values (record *i* carries value *i* mod 4096), the
  same for every store, so nothing compresses (raft-engine LZ4-compresses batches over 8 KiB by default).
- Non-durable appends (rows 1, 2): each run warms up for {aw} or {awr} records, whichever comes first, into the
  same store, then is timed for {ad} or {acap} records, whichever comes first. okaywal's durable batches in row 2
  use the same shape ({dw} / {dd}).
- Sequential read: each store is filled once per row with {reads} records in batches of 100 (okaywal: entries
  of 1000 chunks, since each of its commits is an fsync), or, in the one-record-batch rows, one record per call
  (replog `append`, commitlog `append_msg`; the raw file is the same in both), read once untimed, then each repetition reopens the store
  (untimed) and times one read of everything from the start. Every value's length, first and last byte are
  summed and the sum is checked, so each store must return every record with its content. All data sets fit in
  the page cache: this measures the read path's CPU cost, not the disk.
- Durable appends: the writers run for {dwarm} untimed, then the records completed in the next {drun} are
  counted.

## Semantics notes

- **replog**: `Options::default().segment_bytes(1 GiB)` (as in replog's own bench: a run stays inside one
  preallocated segment, so no segment roll is timed) with `SyncPolicy::Never` for rows 1-3 and
  `SyncPolicy::Always` for the durable rows (every append durable when it returns; concurrent appenders share
  one `msync`). Row 1: `log.append(&value)`; row 2: `log.append_batch(&refs)` (one atomic batch, one CRC);
  read: `log.iter(0)` after a reopen, so every batch's CRC-32 is checked. Under `SyncPolicy::Never` replog still
  starts writeback of its data in the background (1 MiB behind the writer) and pre-faults its map ahead of
  the writer on another thread; both are part of what is measured. Non-durable runs end with
  `Log::simulate_crash` (untimed) to skip the final sync of data that is deleted right after.
- **commitlog 0.2**: never fsyncs its data. `flush()` is `File::flush` (a no-op for `std::fs::File`), and
  only its memory-mapped index is `msync`ed. Its appends are one `write(2)` each into the page cache, so it
  has no durable rows. Defaults (1 GB segments, an index entry per message). Row 1: `append_msg`; row 2:
  `append` of a `MessageBuf` of 100 (filling the buffer, which encodes and CRC-32C's each message, is timed);
  read: `read(offset, ReadLimit::max_bytes(1 MiB))` in a loop, each a `pread` into a new buffer whose
  messages' CRC-32Cs are checked.
- **raft-engine 0.4**: used as TiKV does: entries are raft's protobuf `eraftpb::Entry` (`raft-proto` 0.7,
  `protobuf-codec`), added with `LogBatch::add_entries::<MessageExtTyped>(region, &entries)` and written with
  `Engine::write(&mut batch, sync)`; read back with `fetch_entries_to` 1024 at a time (it parses every
  protobuf entry out of its batch's block). Each entry carries term and index besides the value, and the
  engine keeps an in-memory index of every entry of every region. Rows 1-2 use `sync = false` (data reaches
  the page cache only), the durable rows `sync = true` (the write group's leader `fdatasync`s for the whole
  group), one region per writer thread. Default `Config` (128 MiB files, 8 KiB compression threshold, log
  recycling on). Reopening it (untimed) replays all its files to rebuild that index.
- **okaywal 0.3**: a write-ahead log meant to sit in front of another store: every entry is durable when
  `commit` returns (it `fdatasync`s; concurrent committers share syncs), and files are checkpointed and
  recycled once they pass 768 KiB (default `Configuration`; `LogVoid` as the manager, which checkpoints
  into nothing). There is no non-durable append, so in row 2 it is the only store paying for durability (†);
  compare it in the durable rows instead. A "batch of 100" is one entry of 100 chunks (`write_chunk` per
  record, one `commit`); a record in the one-record rows is an entry of one chunk. okaywal has no API to
  read its log in order except recovery: the read row times `WriteAheadLog` opening a never-checkpointed log
  and handing every entry to `LogManager::recover`, which reads each chunk into a buffer and checks its
  CRC-32C.
- **raw, mmap** (append and read rows): a file preallocated with `fallocate` and mapped, every page faulted
  in beforehand with {fallback}; an append is an 8-byte length prefix and the 256-byte value, {rec} bytes,
  copied into the map (a batch of 100 is 100 such copies). Nothing is synced, checksummed or indexed: the cost
  of the bytes alone. The read walks a fresh map of such a file by its length prefixes. **raw, mmap,
  fallocate-only** (append rows) is the same without faulting the pages in beforehand: each new page is
  faulted in, and zeroed by the kernel, when first written. A log that keeps writing new pages of its files
  pays that cost somewhere (replog pays it on its pre-fault thread, on the other core).
- **raw, write + fdatasync** (durable rows): the same {rec}-byte records, written with one `write(2)` per
  record (or per 100 records in the batch row), each followed by `fdatasync(2)`, into a file of {small} MiB
  ({big} MiB for the batch row) preallocated by writing zeros and `fsync`ing, so the blocks are allocated and
  written and `fdatasync` only has data to flush: the device's limit. With several threads, each `pwrite`s
  the next free range of the same file and `fdatasync`s it. **raw, fallocate-only** does the same on a file
  only `fallocate`d (and `fsync`ed): on ext4 its extents stay "unwritten" until written, so each
  `fdatasync` must also commit the extent conversion through the journal. That is what a naive
  preallocation gets, and what replog's `fallocate`d segments get.
- **replog, replicated** (the last row, ‡): a leader and two followers (`replog::replication`), each a
  `Replica` over its own log with `SyncPolicy::Always` in its own temporary directory, in this one process,
  connected by the crate's `InMemoryTransport` (a follower's fetch is a call into the leader, no copy) with a
  `FollowerDriver` thread per follower. The writers append one record per call to the leader with
  `Acks::All`: an append returns once the high watermark covers it, that is once the leader and both
  followers hold it durably (each follower syncs what it applied before it fetches again, which is when the
  leader counts it). Three logs on the same disk and two cores: every record is synced three times. The row
  above it is the same workload on a single replog log.
- With several threads the raw rows are *not* a limit: each thread syncs on its own, with no group commit,
  whereas replog, raft-engine and okaywal let one sync cover many writers. What one sync can cover is bounded
  by the durable batch row, where one `write` + `fdatasync` carries 100 records.
"#,
        aw = secs(a.warmup),
        awr = a.warmup_records,
        ad = secs(a.duration),
        acap = a.cap_records,
        dw = secs(d.warmup),
        dd = secs(d.duration),
        reads = s.read_records,
        dwarm = secs(s.durable_warmup),
        drun = secs(s.durable_run),
        fallback = fallback,
        rec = RECORD_BYTES,
        small = s.raw_sync_bytes.0 >> 20,
        big = s.raw_sync_bytes.1 >> 20,
    )
}
