//! Opening a log directory: find the segments, trust what the checkpoint
//! vouches for, scan the rest, cut a torn tail, rebuild damaged indexes.
//!
//! - After a clean close (the checkpoint's clean flag, a trimmed active
//!   segment, and its intact index files agree), nothing is scanned: the
//!   cost does not grow with the log.
//! - After a crash, segments before the recovery point are trusted (their
//!   batches are checked when first read, and damage is reported then as
//!   `Error::Corrupt`); from the recovery point on, every batch is checked,
//!   and the log is cut at the first one that fails (a torn tail). Later
//!   segments are deleted. What was cut is reported in [`RecoveryReport`].

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::format::{BatchHeader, SEGMENT_HEADER_BYTES, decode_segment_header};
use crate::fsutil::{preallocate, sync_dir};
use crate::index::{IndexBuilder, SparseIndex, capacity_for};
use crate::index_file::{self, SegmentSummary};
use crate::mmap::MappedFile;
use crate::options::{Options, SEGMENT_BYTES_MAX};
use crate::segment::{ActiveTail, Segment, SegmentWriter, scan};
use crate::sync::SyncedTo;

/// What opening the log found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// The log was closed cleanly and opened without scanning.
    pub clean_shutdown: bool,
    /// Segments whose batches were scanned and checked.
    pub segments_scanned: usize,
    /// Bytes of batches scanned and checked.
    pub bytes_scanned: u64,
    /// Offset at which a torn or damaged tail was cut, if one was.
    pub truncated_at: Option<u64>,
    /// Non-zero bytes discarded past the cut (the torn batch and anything
    /// after it, deleted later segments included). Each file is examined up
    /// to its first all-zero MiB past the cut (see `nonzero_bytes_after`).
    pub bytes_truncated: u64,
    /// Segments deleted because they lay past the cut.
    pub segments_deleted: usize,
    /// Segments whose index files were missing, damaged or stale and were
    /// rebuilt by scanning.
    pub indexes_rebuilt: usize,
}

/// A recovered log, ready to serve.
pub(crate) struct Recovered {
    pub log_id: u64,
    pub sealed: Vec<Arc<Segment>>,
    pub active: Arc<Segment>,
    pub writer: SegmentWriter,
    pub leader_epoch: u64,
    pub synced: SyncedTo,
    pub report: RecoveryReport,
}

/// What every step of opening needs to know.
#[derive(Clone, Copy)]
struct Opening<'a> {
    dir: &'a Path,
    log_id: u64,
    options: &'a Options,
}

/// One segment file found in the directory.
struct Found {
    base: u64,
    log_id: u64,
    path: PathBuf,
    file: File,
    len: u64,
}

/// Opens the log in `dir` (which the caller has locked).
pub(crate) fn recover(dir: &Path, options: &Options) -> Result<Recovered> {
    let mut found = list_segments(dir)?;
    let checkpoint = Checkpoint::read(dir)?;
    if found.is_empty() {
        if checkpoint.is_some() {
            return Err(Error::corrupt(dir, 0, "checkpoint present but no segment files"));
        }
        return create_empty(dir, options);
    }
    let log_id = checkpoint.map_or(found[0].log_id, |c| c.log_id);
    if let Some(stranger) = found.iter().find(|f| f.log_id != log_id) {
        return Err(Error::corrupt(
            &stranger.path,
            24,
            "segment belongs to another log (its log id differs)",
        ));
    }
    let opening = Opening { dir, log_id, options };
    let mut report = RecoveryReport::default();
    let rp = recovery_point(dir, &found, checkpoint)?;
    let rp_index = found
        .iter()
        .position(|f| f.base == rp.segment_base)
        .expect("checked by recovery_point");

    let mut sealed = Vec::new();
    let next_bases: Vec<u64> = found.iter().skip(1).map(|f| f.base).collect();
    let trusted: Vec<Found> = found.drain(..rp_index).collect();
    for (i, segment) in trusted.into_iter().enumerate() {
        sealed.push(open_trusted(dir, segment, next_bases[i], options, &mut report)?);
    }

    let clean = checkpoint.filter(|c| c.clean);
    if let Some(tail) = clean.and_then(|c| clean_tail(dir, &found, &c, options)) {
        report.clean_shutdown = true;
        let last = found.pop().expect("clean_tail checked there is one segment");
        return finish(opening, sealed, last, tail, rp.leader_epoch, report);
    }
    if clean.is_some() {
        // A clean close wrote the active segment's index files; they were
        // unusable, so the scan below rebuilds that index.
        report.indexes_rebuilt += 1;
    }

    // Crash path: check every batch from the recovery point on.
    let mut position = rp.position;
    let mut expected = rp.next_offset;
    let mut epoch = rp.leader_epoch;
    let mut segments = found.into_iter().peekable();
    loop {
        let segment = segments.next().expect("loop ends at the last segment");
        let limit = segments.peek().map(|next| next.base);
        let scanned = scan_tail(&segment, position, expected, limit, options, &mut report)?;
        epoch = epoch.max(scanned.last_epoch);
        if let Some(limit) = limit.filter(|&limit| scanned.next_offset == limit) {
            sealed.push(seal_scanned(dir, segment, &scanned, options)?);
            position = SEGMENT_HEADER_BYTES as u64;
            expected = limit;
            continue;
        }
        // The tail ends inside this segment: it becomes the active one, and
        // anything after it was never acknowledged as part of the log.
        let cut_here = scanned.damaged || limit.is_some() || scanned.nonzero_after > 0;
        if cut_here {
            report.truncated_at = Some(scanned.next_offset);
            report.bytes_truncated += scanned.nonzero_after;
        }
        for later in segments {
            report.bytes_truncated += nonzero_bytes_past(&later, SEGMENT_HEADER_BYTES as u64)?;
            report.segments_deleted += 1;
            remove_segment(dir, &later)?;
        }
        segment
            .file
            .set_len(scanned.tail.end_position)
            .map_err(|e| Error::io("truncate segment", &segment.path, e))?;
        return finish(opening, sealed, segment, scanned.tail, epoch, report);
    }
}

/// Creates the first segment of a new log.
fn create_empty(dir: &Path, options: &Options) -> Result<Recovered> {
    let log_id = new_log_id();
    let (active, writer) = Segment::create(dir, log_id, 0, options.segment_bytes, options.index_interval_bytes, &[])?;
    let synced = SyncedTo {
        offset: 0,
        segment_base: 0,
        position: writer.position(),
    };
    write_open_checkpoint(dir, &synced, 0, log_id)?;
    Ok(Recovered {
        log_id,
        sealed: Vec::new(),
        active,
        writer,
        leader_epoch: 0,
        synced,
        report: RecoveryReport::default(),
    })
}

/// A random log id (from the standard library's per-process random hash
/// keys, the clock and the process id; no cryptographic strength needed).
fn new_log_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.write_u32(std::process::id());
    hasher.finish()
}

/// Lists `NNNNNNNNNNNNNNNNNNNN.log` files in offset order, checking each
/// header. Removes leftover temporary files and orphan index files.
fn list_segments(dir: &Path) -> Result<Vec<Found>> {
    let entries = fs::read_dir(dir).map_err(|e| Error::io("read directory", dir, e))?;
    let mut logs = BTreeMap::new();
    let mut indexes = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("read directory", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if is_own_temp_file(name) {
            let _ = fs::remove_file(entry.path());
            continue;
        }
        let Some((stem, extension)) = name.split_once('.') else {
            continue;
        };
        let Some(base) = parse_base(stem) else { continue };
        match extension {
            "log" => {
                logs.insert(base, entry.path());
            }
            "index" | "timeindex" => indexes.push(base),
            _ => {}
        }
    }
    for base in indexes {
        if !logs.contains_key(&base) {
            index_file::remove(dir, base)?;
        }
    }
    logs.into_iter().map(|(base, path)| open_found(base, path)).collect()
}

/// A temporary file the log writes and renames (a leftover of a crash):
/// `checkpoint.tmp`, or `<base>.log.tmp`, `<base>.index.tmp`, `<base>.timeindex.tmp`.
fn is_own_temp_file(name: &str) -> bool {
    let Some(stem) = name.strip_suffix(".tmp") else {
        return false;
    };
    if stem == "checkpoint" {
        return true;
    }
    let Some((base, extension)) = stem.split_once('.') else {
        return false;
    };
    parse_base(base).is_some() && matches!(extension, "log" | "index" | "timeindex")
}

/// A 20-digit decimal file stem, as the log writes them.
fn parse_base(stem: &str) -> Option<u64> {
    (stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit())).then(|| stem.parse().ok())?
}

fn open_found(base: u64, path: PathBuf) -> Result<Found> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io("open segment", &path, e))?;
    let len = file.metadata().map_err(|e| Error::io("stat segment", &path, e))?.len();
    let mut header = [0u8; SEGMENT_HEADER_BYTES];
    if len < SEGMENT_HEADER_BYTES as u64 {
        return Err(Error::corrupt(&path, 0, "segment file shorter than its header"));
    }
    if len > SEGMENT_BYTES_MAX {
        return Err(Error::corrupt(&path, 0, "segment file larger than a segment can be"));
    }
    std::os::unix::fs::FileExt::read_exact_at(&file, &mut header, 0)
        .map_err(|e| Error::io("read segment header", &path, e))?;
    match decode_segment_header(&header) {
        Ok(header) if header.base_offset == base => Ok(Found {
            base,
            log_id: header.log_id,
            path,
            file,
            len,
        }),
        Ok(_) => Err(Error::corrupt(
            &path,
            16,
            "segment header base offset differs from the file name",
        )),
        Err(reason) => Err(Error::corrupt(&path, 0, reason)),
    }
}

/// The point up to which data is vouched for: the checkpoint's, or the start
/// of the first segment when there is no checkpoint.
fn recovery_point(dir: &Path, found: &[Found], checkpoint: Option<Checkpoint>) -> Result<Checkpoint> {
    let Some(checkpoint) = checkpoint else {
        let first = &found[0];
        return Ok(Checkpoint {
            clean: false,
            segment_base: first.base,
            position: SEGMENT_HEADER_BYTES as u64,
            next_offset: first.base,
            leader_epoch: 0,
            log_id: first.log_id,
        });
    };
    let holder = found.iter().find(|f| f.base == checkpoint.segment_base);
    match holder {
        Some(f)
            if checkpoint.position >= SEGMENT_HEADER_BYTES as u64
                && checkpoint.position <= f.len
                && checkpoint.next_offset >= f.base
                // Every record takes bytes: no more offsets than positions.
                && checkpoint.next_offset - f.base <= checkpoint.position =>
        {
            Ok(checkpoint)
        }
        _ => Err(Error::corrupt(
            dir.join(crate::checkpoint::FILE_NAME),
            16,
            "recovery point lies outside the segment files",
        )),
    }
}

/// Opens a sealed segment before the recovery point. Its end comes from its
/// index header, or from a scan when that is missing or stale. Damage is
/// left in place, to be reported when read.
fn open_trusted(
    dir: &Path,
    segment: Found,
    next_base: u64,
    options: &Options,
    report: &mut RecoveryReport,
) -> Result<Arc<Segment>> {
    let summary = index_file::read_summary(dir, segment.base).filter(|s| {
        s.next_offset == next_base && s.end_position <= segment.len && s.end_position >= SEGMENT_HEADER_BYTES as u64
    });
    let summary = match summary {
        Some(summary) => summary,
        None => {
            report.indexes_rebuilt += 1;
            summarize_by_scan(&segment, next_base)?
        }
    };
    if segment.len > summary.end_position {
        let past_end = nonzero_bytes_past(&segment, summary.end_position)?;
        if trim_unpublished(&segment, summary.end_position, past_end)? {
            segment
                .file
                .sync_data()
                .map_err(|e| Error::io("fsync segment", &segment.path, e))?;
        }
    }
    Segment::open_sealed(dir, segment.file, &summary, options.index_interval_bytes)
}

fn summarize_by_scan(segment: &Found, next_base: u64) -> Result<SegmentSummary> {
    let scanned = with_contents(segment, |data| {
        scan(
            data,
            SEGMENT_HEADER_BYTES as u64,
            segment.base,
            Some(next_base),
            |_, _| {},
        )
    })?;
    let reached_next = scanned.damage.is_none() && scanned.next_offset == next_base;
    Ok(SegmentSummary {
        base_offset: segment.base,
        // Damaged: keep every byte, so reads reach the damage and report it.
        end_position: if reached_next { scanned.position } else { segment.len },
        next_offset: next_base,
        max_timestamp_ms: if reached_next {
            scanned.max_timestamp_ms
        } else {
            i64::MAX
        },
        last_epoch: scanned.last_epoch.unwrap_or(0),
    })
}

/// The active segment's state from its index files, when the checkpoint
/// says the log was closed cleanly and the files agree.
fn clean_tail(dir: &Path, found: &[Found], checkpoint: &Checkpoint, options: &Options) -> Option<ActiveTail> {
    let last = found.last()?;
    if found.len() != 1 || last.base != checkpoint.segment_base || last.len != checkpoint.position {
        return None;
    }
    let summary = index_file::read_summary(dir, last.base)?;
    if summary.end_position != checkpoint.position || summary.next_offset != checkpoint.next_offset {
        return None;
    }
    let entries = index_file::read(dir, &summary)?;
    let capacity = options.segment_bytes.max(summary.end_position);
    let index = SparseIndex::with_capacity(entries.len() + capacity_for(capacity, options.index_interval_bytes));
    for entry in &entries {
        index.push(*entry);
    }
    let since_entry = entries.last().map_or(options.index_interval_bytes as u64, |e| {
        summary.end_position - e.position as u64
    });
    Some(ActiveTail {
        end_position: summary.end_position,
        unchecked_end: summary.end_position,
        next_offset: summary.next_offset,
        last_epoch: summary.last_epoch,
        index,
        builder: IndexBuilder::resume(options.index_interval_bytes, since_entry, summary.max_timestamp_ms),
    })
}

/// The result of scanning one segment from the recovery point on.
struct TailScan {
    tail: ActiveTail,
    next_offset: u64,
    last_epoch: u64,
    max_timestamp_ms: i64,
    damaged: bool,
    /// Non-zero bytes past the last valid batch.
    nonzero_after: u64,
}

/// Rebuilds a segment's index from its start and checks every batch from
/// `position` (the recovery point, or the segment header) on.
fn scan_tail(
    segment: &Found,
    position: u64,
    expected: u64,
    limit: Option<u64>,
    options: &Options,
    report: &mut RecoveryReport,
) -> Result<TailScan> {
    with_contents(segment, |data| {
        let capacity = options.segment_bytes.max(segment.len);
        let index = SparseIndex::with_capacity(capacity_for(capacity, options.index_interval_bytes));
        let mut builder = IndexBuilder::new(options.index_interval_bytes);
        // Index the trusted part before the recovery point by walking headers.
        let mut walk = SEGMENT_HEADER_BYTES as u64;
        let mut walk_offset = segment.base;
        while walk < position {
            let Ok(header) = BatchHeader::decode(&data[walk as usize..]) else {
                break;
            };
            if header.base_offset != walk_offset || walk + header.batch_len as u64 > position {
                break;
            }
            builder.observe(&index, segment.base, walk, &header);
            walk += header.batch_len as u64;
            walk_offset = header.next_offset();
        }
        let scanned = scan(data, position, expected, limit, |at, header| {
            builder.observe(&index, segment.base, at, header)
        });
        report.segments_scanned += 1;
        report.bytes_scanned += scanned.position - position;
        let nonzero_after = nonzero_bytes_after(data, scanned.position);
        let last_epoch = scanned.last_epoch.unwrap_or(0);
        TailScan {
            next_offset: scanned.next_offset,
            last_epoch,
            max_timestamp_ms: builder.max_timestamp_ms,
            damaged: scanned.damage.is_some(),
            nonzero_after,
            tail: ActiveTail {
                end_position: scanned.position,
                unchecked_end: position,
                next_offset: scanned.next_offset,
                last_epoch,
                index,
                builder,
            },
        }
    })
}

/// How far past `from` the last non-zero byte of `data` lies, looking no
/// further than the first window of [`ZERO_WINDOW_BYTES`] (counted from
/// `from`) that is all zeros. The writer fills a segment front to back, so past such a window
/// lies only preallocation never written; stopping there keeps recovery's
/// cost proportional to what was written, not to the segment's size.
fn nonzero_bytes_after(data: &[u8], from: u64) -> u64 {
    let mut last = None;
    let mut window_start = from as usize;
    while window_start < data.len() {
        let window_end = (window_start + ZERO_WINDOW_BYTES).min(data.len());
        match data[window_start..window_end].iter().rposition(|&b| b != 0) {
            Some(i) => last = Some(window_start + i + 1),
            None => break,
        }
        window_start = window_end;
    }
    last.map_or(0, |end| (end as u64).saturating_sub(from))
}

/// See [`nonzero_bytes_after`].
const ZERO_WINDOW_BYTES: usize = 1 << 20;

/// A scanned segment that ends exactly where the next begins: trim, write
/// its index files, open it sealed.
fn seal_scanned(dir: &Path, segment: Found, scanned: &TailScan, options: &Options) -> Result<Arc<Segment>> {
    let summary = SegmentSummary {
        base_offset: segment.base,
        end_position: scanned.tail.end_position,
        next_offset: scanned.next_offset,
        max_timestamp_ms: scanned.max_timestamp_ms,
        last_epoch: scanned.last_epoch,
    };
    // The scan measured what lies past the end already.
    trim_unpublished(&segment, summary.end_position, scanned.nonzero_after)?;
    segment
        .file
        .sync_data()
        .map_err(|e| Error::io("fsync segment", &segment.path, e))?;
    index_file::write(dir, &summary, &scanned.tail.index.entries())?;
    Segment::open_sealed(dir, segment.file, &summary, options.index_interval_bytes)
}

/// Calls `look` with the whole file's bytes (mapped; no mapping of the file
/// exists yet while recovery runs, so they cannot change).
fn with_contents<T>(segment: &Found, look: impl FnOnce(&[u8]) -> T) -> Result<T> {
    let map = MappedFile::map(&segment.file, &segment.path, segment.len, segment.len)?;
    Ok(look(map.view(0..segment.len).expect("whole file is frozen")))
}

/// How far past `from` the last non-zero byte of a segment file lies.
fn nonzero_bytes_past(segment: &Found, from: u64) -> Result<u64> {
    with_contents(segment, |data| nonzero_bytes_after(data, from))
}

/// Trims a sealed segment's file to `end` if only zeros lie past it
/// (`nonzero_past_end == 0`: preallocation never written); returns whether
/// it did (the caller syncs). Non-zero bytes past the end were cut by a
/// truncation, and records an earlier handle in this process returned may
/// still map them: shortening the file under them would make reading them
/// fault (`mmap` invariant 4), so they stay until the segment is deleted.
fn trim_unpublished(segment: &Found, end: u64, nonzero_past_end: u64) -> Result<bool> {
    if segment.len <= end || nonzero_past_end > 0 {
        return Ok(false);
    }
    segment
        .file
        .set_len(end)
        .map_err(|e| Error::io("trim segment", &segment.path, e))?;
    Ok(true)
}

fn remove_segment(dir: &Path, segment: &Found) -> Result<()> {
    fs::remove_file(&segment.path).map_err(|e| Error::io("remove segment", &segment.path, e))?;
    index_file::remove(dir, segment.base)
}

/// Preallocates and maps the active segment, syncs what recovery kept, and
/// records the new recovery point.
fn finish(
    log: Opening<'_>,
    sealed: Vec<Arc<Segment>>,
    last: Found,
    tail: ActiveTail,
    leader_epoch: u64,
    report: RecoveryReport,
) -> Result<Recovered> {
    let capacity = log.options.segment_bytes.max(tail.end_position);
    preallocate(&last.file, &last.path, capacity)?;
    last.file
        .sync_data()
        .map_err(|e| Error::io("fsync segment", &last.path, e))?;
    sync_dir(log.dir)?;
    let leader_epoch = leader_epoch.max(tail.last_epoch);
    let synced = SyncedTo {
        offset: tail.next_offset,
        segment_base: last.base,
        position: tail.end_position,
    };
    let (active, writer) = Segment::open_active(
        log.dir,
        last.base,
        last.file,
        capacity,
        log.options.index_interval_bytes,
        tail,
    )?;
    write_open_checkpoint(log.dir, &synced, leader_epoch, log.log_id)?;
    Ok(Recovered {
        log_id: log.log_id,
        sealed,
        active,
        writer,
        leader_epoch,
        synced,
        report,
    })
}

/// The checkpoint of an open log: not clean, recovery point at `synced`.
pub(crate) fn write_open_checkpoint(dir: &Path, synced: &SyncedTo, leader_epoch: u64, log_id: u64) -> Result<()> {
    Checkpoint {
        clean: false,
        segment_base: synced.segment_base,
        position: synced.position,
        next_offset: synced.offset,
        leader_epoch,
        log_id,
    }
    .write(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn nonzero_bytes_are_found_up_to_the_first_zero_mib() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        preallocate(&file, &path, 8 << 20).unwrap();
        let map = MappedFile::map(&file, &path, 8 << 20, 8 << 20).unwrap();
        let data = map.view(0..8 << 20).unwrap();
        assert_eq!(nonzero_bytes_after(data, 100), 0);
        file.write_all_at(b"x", (1 << 20) + 5).unwrap();
        file.write_all_at(b"yz", (2 << 20) + 7).unwrap();
        file.write_all_at(b"far", 6 << 20).unwrap();
        assert_eq!(
            nonzero_bytes_after(data, 100),
            (2 << 20) + 9 - 100,
            "stops at the zero MiB before 6 MiB"
        );
        assert_eq!(nonzero_bytes_after(data, (2 << 20) + 9), 0);
        assert_eq!(
            nonzero_bytes_after(data, 5 << 20),
            0,
            "a whole zero MiB ends the search"
        );
        assert_eq!(
            nonzero_bytes_after(data, (5 << 20) + 10),
            (6 << 20) + 3 - (5 << 20) - 10
        );
    }
}
