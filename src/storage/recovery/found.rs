//! The files recovery finds in a log directory: segments (each header
//! checked), stray files, and the recovery point checked against them.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

use super::{Access, RecoveryReport};
use crate::error::{Damage, Error, Result};
use crate::format::{SEGMENT_HEADER_BYTES, decode_segment_header};
use crate::options::SEGMENT_BYTES_MAX;
use crate::storage::checkpoint::Checkpoint;
use crate::storage::durability::LogPosition;
use crate::storage::index_file;
use crate::storage::layout::{self, Entry, SegmentFile};

/// One segment file found in the directory.
pub(super) struct Found {
    pub base: u64,
    pub log_id: u64,
    pub generation: u64,
    pub path: PathBuf,
    pub file: File,
    pub len: u64,
}

/// Lists segment files in offset order, checking each header. Then removes
/// leftover temporary files and orphan index files (read-write), or only
/// reports them (read-only): only once every header passed, so an open that
/// is refused (a damaged segment, an unknown version) removes nothing.
///
/// A segment file may be *unborn*: created by a roll whose seal did not
/// finish before a machine crash (`log::seal`), so its header never reached
/// the disk and reads as zeros (or the file is shorter than a header).
/// Nothing in it was ever durable, nor in any segment after it (seals run
/// in roll order). When its base lies past `recovery_point_base` (the
/// checkpoint's; `None` if there is no valid checkpoint, which vouches for
/// nothing), it is removed like a temporary file, and any segment after it
/// is removed as cut (reported in `truncated_at`, `segments_deleted` and
/// `bytes_truncated`); otherwise it is damage, and the open is refused.
pub(super) fn list_segments(
    dir: &Path,
    access: Access,
    recovery_point_base: Option<u64>,
    report: &mut RecoveryReport,
) -> Result<Vec<Found>> {
    let entries = fs::read_dir(dir).map_err(|e| Error::io("read directory", dir, e))?;
    let mut logs = BTreeMap::new();
    let mut temps = Vec::new();
    let mut indexes = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("read directory", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            report.files_ignored.push(entry.path());
            continue;
        };
        match layout::parse(name) {
            Entry::Temp => temps.push(entry.path()),
            Entry::Segment(base, SegmentFile::Data) => {
                logs.insert(base, entry.path());
            }
            Entry::Segment(base, _) => indexes.push((base, entry.path())),
            Entry::Foreign => report.files_ignored.push(entry.path()),
            Entry::Metadata => {}
        }
    }
    let unborn = first_unborn(&logs, recovery_point_base)?;
    let past_unborn = match unborn {
        Some(base) => {
            let mut later = logs.split_off(&base);
            temps.push(later.remove(&base).expect("split at a key"));
            later
        }
        None => BTreeMap::new(),
    };
    let found = logs
        .into_iter()
        .map(|(base, path)| open_found(base, path, access))
        .collect::<Result<Vec<Found>>>()?;
    if !past_unborn.is_empty() {
        // Newest first: a crash in between leaves no hole before the rest.
        for (&base, path) in past_unborn.iter().rev() {
            remove_past_unborn(dir, base, path, access, report)?;
        }
        report.truncated_at = unborn;
    }
    let orphans = indexes
        .into_iter()
        .filter(|(base, _)| !found.iter().any(|f| f.base == *base) && !past_unborn.contains_key(base))
        .map(|(_, path)| path);
    for path in temps.into_iter().chain(orphans) {
        if access == Access::ReadWrite {
            crate::storage::fs::remove_if_exists(&path)?;
        }
        report.stray_files_removed.push(path);
    }
    Ok(found)
}

/// The base of the first segment past the recovery point whose file is
/// unborn (see [`list_segments`]); `None` without a recovery point.
fn first_unborn(logs: &BTreeMap<u64, PathBuf>, recovery_point_base: Option<u64>) -> Result<Option<u64>> {
    let Some(rp_base) = recovery_point_base else {
        return Ok(None);
    };
    for (&base, path) in logs.range(rp_base.saturating_add(1)..) {
        if is_unborn(path)? {
            return Ok(Some(base));
        }
    }
    Ok(None)
}

/// Removes (read-write) a segment created after an unborn one, with its
/// index files, and reports what it held as cut: seals run in roll order,
/// so nothing in it was durable.
fn remove_past_unborn(dir: &Path, base: u64, path: &Path, access: Access, report: &mut RecoveryReport) -> Result<()> {
    report.bytes_truncated += nonzero_bytes_in(path)?;
    report.segments_deleted += 1;
    if access == Access::ReadWrite {
        crate::storage::fs::remove_if_exists(path)?;
        index_file::remove(dir, base)?;
    }
    Ok(())
}

/// Non-zero bytes past the header of the segment file at `path`, up to its
/// last non-zero byte (the whole file is read, in 1 MiB pieces: these are
/// the rare files a writer left past the durable point and an unborn one).
fn nonzero_bytes_in(path: &Path) -> Result<u64> {
    use std::io::Read;
    let mut file = fs::File::open(path).map_err(|e| Error::io("open segment", path, e))?;
    let mut buffer = vec![0u8; 1 << 20];
    let (mut read, mut last_nonzero) = (0u64, None);
    loop {
        let n = file.read(&mut buffer).map_err(|e| Error::io("read segment", path, e))?;
        if n == 0 {
            break;
        }
        if let Some(i) = buffer[..n].iter().rposition(|&b| b != 0) {
            last_nonzero = Some(read + i as u64 + 1);
        }
        read += n as u64;
    }
    Ok(last_nonzero.map_or(0, |end| end.saturating_sub(SEGMENT_HEADER_BYTES as u64)))
}

/// Whether the segment file at `path` has no header yet: shorter than one,
/// or zeros where it belongs.
fn is_unborn(path: &Path) -> Result<bool> {
    let file = fs::File::open(path).map_err(|e| Error::io("open segment", path, e))?;
    let mut header = [0u8; SEGMENT_HEADER_BYTES];
    match std::os::unix::fs::FileExt::read_exact_at(&file, &mut header, 0) {
        Ok(()) => Ok(header.iter().all(|&b| b == 0)),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(true),
        Err(e) => Err(Error::io("read segment header", path, e)),
    }
}

fn open_found(base: u64, path: PathBuf, access: Access) -> Result<Found> {
    let file = OpenOptions::new()
        .read(true)
        .write(access == Access::ReadWrite)
        .open(&path)
        .map_err(|e| Error::io("open segment", &path, e))?;
    let len = file.metadata().map_err(|e| Error::io("stat segment", &path, e))?.len();
    if len > SEGMENT_BYTES_MAX {
        return Err(Error::corrupt(&path, 0, Damage::BadLength));
    }
    let mut header = [0u8; SEGMENT_HEADER_BYTES];
    let read = (len >= SEGMENT_HEADER_BYTES as u64)
        .then(|| std::os::unix::fs::FileExt::read_exact_at(&file, &mut header, 0))
        .transpose()
        .map_err(|e| Error::io("read segment header", &path, e))?;
    let header = match read {
        Some(()) => decode_segment_header(&header),
        None => Err(Damage::Truncated),
    }
    .map_err(|damage| Error::corrupt(&path, 0, damage))?;
    if header.base_offset != base {
        return Err(Error::corrupt(
            &path,
            16,
            Damage::UnexpectedOffset {
                expected: base,
                found: header.base_offset,
            },
        ));
    }
    Ok(Found {
        base,
        log_id: header.log_id,
        generation: header.generation,
        path,
        file,
        len,
    })
}

/// Checks that every segment belongs to log `log_id`.
pub(super) fn check_log_id(found: &[Found], log_id: u64) -> Result<()> {
    match found.iter().find(|f| f.log_id != log_id) {
        Some(stranger) => Err(Error::corrupt(
            &stranger.path,
            24,
            Damage::ForeignLog {
                expected: log_id,
                found: stranger.log_id,
            },
        )),
        None => Ok(()),
    }
}

/// The point up to which data is vouched for: the checkpoint's, or the start
/// of the first segment when there is no checkpoint.
pub(super) fn recovery_point(dir: &Path, found: &[Found], checkpoint: Option<Checkpoint>) -> Result<Checkpoint> {
    let Some(checkpoint) = checkpoint else {
        let first = &found[0];
        return Ok(Checkpoint {
            clean: false,
            recovery_point: LogPosition::segment_start(first.base),
            leader_epoch: 0,
            log_id: first.log_id,
        });
    };
    let point = checkpoint.recovery_point;
    let holder = found.iter().find(|f| f.base == point.segment_base);
    match holder {
        Some(f)
            if point.position >= SEGMENT_HEADER_BYTES as u64
                && point.position <= f.len
                && point.offset >= f.base
                // Every record takes bytes: no more offsets than positions.
                && point.offset - f.base <= point.position =>
        {
            Ok(checkpoint)
        }
        _ => Err(Error::corrupt(dir.join(layout::CHECKPOINT), 16, Damage::OutOfBounds)),
    }
}

/// Removes (read-write) or sets aside (read-only) the segments of an older
/// reset generation than the newest: leftovers of a reset interrupted after
/// its first new segment was written, which committed it. Returns the
/// current generation.
pub(super) fn drop_stale_generations(
    dir: &Path,
    found: &mut Vec<Found>,
    access: Access,
    report: &mut RecoveryReport,
) -> Result<u64> {
    let generation = found.iter().map(|f| f.generation).max().unwrap_or(0);
    let mut kept = Vec::with_capacity(found.len());
    for segment in found.drain(..) {
        if segment.generation == generation {
            kept.push(segment);
            continue;
        }
        if access == Access::ReadWrite {
            crate::storage::fs::remove_if_exists(&segment.path)?;
            index_file::remove(dir, segment.base)?;
        }
        report.stray_files_removed.push(segment.path);
    }
    *found = kept;
    Ok(generation)
}
