//! Opening a log directory: find the segments, trust what the checkpoint
//! vouches for, scan the rest, cut a torn tail, rebuild damaged indexes.
//!
//! - After a clean close (the checkpoint's clean flag, a trimmed active
//!   segment, and its intact index files agree), nothing is scanned: the
//!   cost does not grow with the log.
//! - After a crash, segments before the recovery point are trusted (their
//!   batches are checked when first read, and damage is reported then as
//!   `Error::Corrupt`); from the recovery point on, every batch is checked.
//!   Only the last segment can hold a torn tail, or the segments before it
//!   whose seal may not have finished (under `SyncPolicy::Always` a roll
//!   syncs a segment before anything is appended to the next; under the
//!   other policies seals run in the background, in roll order, see
//!   `log::seal`), so only there is the log cut at the first batch that
//!   fails, and what was cut is reported in [`RecoveryReport`]. Damage in
//!   any other segment is left in place and reported when read, never cut:
//!   it is not a torn write, and cutting there would delete the healthy
//!   segments after it. A segment before the last may be torn when it is
//!   one of the run of segments right before the last that look never
//!   sealed (see `tail::looks_unsealed`), all past the recovery point, or
//!   when it is the one before a last that holds no batch (a crash inside
//!   a roll). A segment past the recovery point whose header never reached
//!   the disk ends the log: it and any segment after it are removed.
//! - A damaged checkpoint, or one that points outside the segments it
//!   describes, is set aside: it costs a scan of every segment, never data.
//! - Read-only, the same decisions are made and reported, and nothing on
//!   disk changes: the log is served as recovery would leave it.

mod found;
mod tail;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use self::found::{Found, check_log_id, drop_stale_generations, list_segments, recovery_point};
use self::tail::{
    Context, clean_tail, holds_a_batch, looks_unsealed, nonzero_bytes_past, open_read_only_tail, open_trusted,
    scan_tail, seal_scanned,
};
use super::checkpoint::Checkpoint;
use super::durability::LogPosition;
use super::fs::sync_dir;
use super::index_file;
use super::mapping::MapCache;
use super::segment::Segment;
use super::segment_writer::{ActiveTail, SegmentConfig, SegmentWriter, allocate_active, allocation_for};
use crate::error::{Damage, Error, Result};
use crate::format::SEGMENT_HEADER_BYTES;
use crate::options::Options;

/// What opening the log found and did (or, opened read-only, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// The log was opened read-only: every count below says what recovery
    /// would do, and nothing on disk was changed.
    pub read_only: bool,
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
    /// to its first all-zero MiB past the cut.
    pub bytes_truncated: u64,
    /// Segments deleted because they lay past the cut.
    pub segments_deleted: usize,
    /// Segments whose index files were missing, damaged or stale and were
    /// rebuilt by scanning.
    pub indexes_rebuilt: usize,
    /// The epoch history file was missing, damaged or disagreed with the
    /// segments, and was rebuilt from the batch headers.
    pub epochs_rebuilt: bool,
    /// Leftover temporary files of an interrupted write, and index files
    /// without a segment, that open removed.
    pub stray_files_removed: Vec<PathBuf>,
    /// On-disk options (`segment_bytes`, `index_interval_bytes`) the open
    /// set to another value than the log had stored: (name, stored, new).
    /// They apply to new segments and index entries. Options left unset
    /// take the stored values.
    pub options_changed: Vec<(&'static str, u64, u64)>,
    /// Files in the directory whose names are not the log's: left alone.
    pub files_ignored: Vec<PathBuf>,
    /// The checkpoint failed its checks (or pointed outside the segments)
    /// and was set aside: every segment was scanned instead.
    pub checkpoint_damage: Option<Damage>,
    /// Base offsets of segments other than the last in which the scan found
    /// damage. It was left in place (reads of it return `Error::Corrupt`);
    /// nothing after it was cut.
    pub damaged_segments: Vec<u64>,
}

/// Whether opening may change the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Recover: cut a torn tail, rebuild indexes, write the checkpoint.
    ReadWrite,
    /// Change nothing on disk; serve the log as recovery would leave it.
    ReadOnly,
}

/// A recovered log, ready to serve.
pub(crate) struct Recovered {
    pub log_id: u64,
    /// Reset generation of the segments.
    pub generation: u64,
    /// Every segment; the last one is the active one.
    pub segments: Vec<Arc<Segment>>,
    /// The active segment's writer; `None` when opened read-only.
    pub writer: Option<SegmentWriter>,
    pub leader_epoch: u64,
    pub durable: LogPosition,
    pub report: RecoveryReport,
}

/// Opens the log in `dir` (which the caller has locked).
pub(crate) fn recover(dir: &Path, options: &Options, access: Access, cache: &Arc<MapCache>) -> Result<Recovered> {
    let cx = Context {
        dir,
        options,
        access,
        cache,
    };
    let mut report = RecoveryReport {
        read_only: access == Access::ReadOnly,
        ..RecoveryReport::default()
    };
    let mut checkpoint = match Checkpoint::read(dir) {
        // A newer format's checkpoint is not damage: refuse, as for segments.
        Err(Error::Corrupt { damage, .. }) if !matches!(damage, Damage::UnknownVersion { .. }) => {
            report.checkpoint_damage = Some(damage);
            None
        }
        other => other?,
    };
    let rp_base = checkpoint.map(|c| c.recovery_point.segment_base);
    let mut found = list_segments(dir, access, rp_base, &mut report)?;
    // Log ids first: a foreign segment must be refused, never taken for the
    // newest generation that makes this log's own segments stale.
    if let Some(first) = found.first() {
        check_log_id(&found, checkpoint.map_or(first.log_id, |c| c.log_id))?;
    }
    let listed = found.len();
    let generation = drop_stale_generations(dir, &mut found, access, &mut report)?;
    let points_into_stale = |c: &Checkpoint| !found.iter().any(|f| f.base == c.recovery_point.segment_base);
    if found.len() < listed && checkpoint.as_ref().is_some_and(points_into_stale) {
        // A reset was committed by its new segment, and the checkpoint still
        // points into the segments it replaced: check everything instead.
        checkpoint = None;
    }
    if found.is_empty() {
        if checkpoint.is_some() {
            return Err(Error::corrupt(
                dir.join(super::layout::CHECKPOINT),
                0,
                crate::error::Damage::MissingRecords { offset: 0 },
            ));
        }
        if access == Access::ReadOnly {
            return Err(Error::io(
                "open read-only",
                dir,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no log in this directory"),
            ));
        }
        return create_empty(&cx, report);
    }
    let log_id = checkpoint.map_or(found[0].log_id, |c| c.log_id);
    check_log_id(&found, log_id)?;
    let rp = match recovery_point(dir, &found, checkpoint) {
        Ok(rp) => rp,
        // Pointing into a sealed segment that is now shorter or missing: set
        // aside, scan everything. (Pointing into the last segment or past
        // it stays an error: records it vouched for are gone.)
        Err(Error::Corrupt {
            damage: Damage::OutOfBounds,
            ..
        }) if checkpoint.is_some_and(|c| c.recovery_point.segment_base < found[found.len() - 1].base) => {
            report.checkpoint_damage = Some(Damage::OutOfBounds);
            checkpoint = None;
            recovery_point(dir, &found, None)?
        }
        Err(error) => return Err(error),
    };
    let rp_index = found
        .iter()
        .position(|f| f.base == rp.recovery_point.segment_base)
        .expect("checked by recovery_point");

    let mut segments = Vec::new();
    let next_bases: Vec<u64> = found.iter().skip(1).map(|f| f.base).collect();
    let trusted: Vec<Found> = found.drain(..rp_index).collect();
    for (i, segment) in trusted.into_iter().enumerate() {
        segments.push(open_trusted(&cx, segment, next_bases[i], &mut report)?);
    }

    let clean = checkpoint.filter(|c| c.clean);
    if let Some(tail) = clean.and_then(|c| clean_tail(&cx, &found, &c)) {
        report.clean_shutdown = true;
        let last = found.pop().expect("clean_tail checked there is one segment");
        return finish(&cx, (log_id, generation), segments, last, tail, rp.leader_epoch, report);
    }
    if clean.is_some() {
        // A clean close wrote the active segment's index files; they were
        // unusable, so the scan below rebuilds that index.
        report.indexes_rebuilt += 1;
    }

    // Crash path: check every batch from the recovery point on.
    let mut position = rp.recovery_point.position;
    let mut expected = rp.recovery_point.offset;
    let mut epoch = rp.leader_epoch;
    // The segments that may hold a torn tail, from `may_be_torn` on: the
    // last; the one before it if a crash inside a roll left the last without
    // a batch; and the segments whose seal never finished (`log::seal`):
    // seals run in roll order, so those are the run of segments just before
    // the last that look never sealed. All of them lie past the recovery
    // point (`found` starts there).
    let last = found.len() - 1;
    let mut torn_from = last;
    if last > 0 && !holds_a_batch(&found[last])? {
        torn_from = last - 1;
    }
    let mut before = last;
    while before > 0 && looks_unsealed(dir, &found[before - 1])? {
        before -= 1;
    }
    let may_be_torn = found[torn_from.min(before)].base;
    let mut found = found.into_iter().peekable();
    loop {
        let segment = found.next().expect("loop ends at the last segment");
        let limit = found.peek().map(|next| next.base);
        let scanned = scan_tail(&cx, &segment, position, expected, limit, &mut report)?;
        epoch = epoch.max(scanned.tail.last_epoch);
        if let Some(limit) = limit.filter(|&limit| scanned.tail.next_offset == limit) {
            segments.push(seal_scanned(&cx, segment, scanned)?);
            position = SEGMENT_HEADER_BYTES as u64;
            expected = limit;
            continue;
        }
        if let Some(limit) = limit.filter(|_| segment.base < may_be_torn) {
            // Damage in a segment that was synced when it was sealed: leave
            // it to be reported when read, and go on with the next.
            // Opened as a trusted segment is: from its index files when they
            // are intact (their entries past the damage let reads resume),
            // with every byte kept and every batch checked when read.
            report.damaged_segments.push(segment.base);
            segments.push(open_trusted(&cx, segment, limit, &mut report)?);
            position = SEGMENT_HEADER_BYTES as u64;
            expected = limit;
            continue;
        }
        // The tail ends inside this segment: it becomes the active one, and
        // anything after it was never acknowledged as part of the log.
        let cut_here = scanned.damaged || limit.is_some() || scanned.nonzero_after > 0;
        if cut_here {
            report.truncated_at = Some(scanned.tail.next_offset);
            report.bytes_truncated += scanned.nonzero_after;
        }
        for later in found {
            report.bytes_truncated += nonzero_bytes_past(&later, SEGMENT_HEADER_BYTES as u64)?;
            report.segments_deleted += 1;
            if cx.access == Access::ReadWrite {
                super::fs::remove_if_exists(&later.path)?;
                index_file::remove(dir, later.base)?;
            }
        }
        if cx.access == Access::ReadWrite {
            segment
                .file
                .set_len(scanned.tail.end_position)
                .map_err(|e| Error::io("truncate segment", &segment.path, e))?;
        }
        return finish(
            &cx,
            (log_id, generation),
            segments,
            segment,
            scanned.tail,
            epoch,
            report,
        );
    }
}

/// Creates the first segment of a new log.
fn create_empty(cx: &Context<'_>, report: RecoveryReport) -> Result<Recovered> {
    let log_id = new_log_id();
    let (active, writer) = SegmentWriter::create(&segment_config(cx, log_id, 0), 0, &[])?;
    let durable = LogPosition::segment_start(0);
    write_open_checkpoint(cx.dir, durable, 0, log_id)?;
    Ok(Recovered {
        log_id,
        generation: 0,
        segments: vec![active],
        writer: Some(writer),
        leader_epoch: 0,
        durable,
        report,
    })
}

fn segment_config<'a>(cx: &'a Context<'a>, log_id: u64, generation: u64) -> SegmentConfig<'a> {
    SegmentConfig {
        dir: cx.dir,
        log_id,
        capacity_bytes: cx.options.segment_bytes,
        index_interval_bytes: cx.options.index_interval_bytes,
        cache: cx.cache,
        generation,
    }
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

/// Preallocates and maps the active segment, syncs what recovery kept, and
/// records the new recovery point (read-write); or opens the last segment
/// as recovery would leave it (read-only).
fn finish(
    cx: &Context<'_>,
    (log_id, generation): (u64, u64),
    mut segments: Vec<Arc<Segment>>,
    last: Found,
    tail: ActiveTail,
    leader_epoch: u64,
    report: RecoveryReport,
) -> Result<Recovered> {
    let leader_epoch = leader_epoch.max(tail.last_epoch);
    let durable = LogPosition {
        offset: tail.next_offset,
        segment_base: last.base,
        position: tail.end_position,
    };
    if cx.access == Access::ReadOnly {
        segments.push(open_read_only_tail(cx, &last, tail)?);
        return Ok(Recovered {
            log_id,
            generation,
            segments,
            writer: None,
            leader_epoch,
            durable,
            report,
        });
    }
    let config = segment_config(cx, log_id, generation);
    let capacity = config.capacity_for(tail.end_position);
    let allocated = allocation_for(tail.end_position, capacity);
    allocate_active(&last.file, &last.path, allocated, capacity)?;
    last.file
        .sync_data()
        .map_err(|e| Error::io("fsync segment", &last.path, e))?;
    sync_dir(cx.dir)?;
    let (active, writer) = SegmentWriter::open_active(&config, last.base, (last.file, allocated), tail)?;
    segments.push(active);
    write_open_checkpoint(cx.dir, durable, leader_epoch, log_id)?;
    Ok(Recovered {
        log_id,
        generation,
        segments,
        writer: Some(writer),
        leader_epoch,
        durable,
        report,
    })
}

/// The checkpoint of an open log: not clean, recovery point at `durable`.
pub(crate) fn write_open_checkpoint(dir: &Path, durable: LogPosition, leader_epoch: u64, log_id: u64) -> Result<()> {
    Checkpoint {
        clean: false,
        recovery_point: durable,
        leader_epoch,
        log_id,
    }
    .write(dir)
}
