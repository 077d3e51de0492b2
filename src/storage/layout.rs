//! The names of the files in a log directory, built and parsed in one place.
//!
//! ```text
//! LOCK                            directory lock (see `lock`)
//! checkpoint                      recovery point, clean-shutdown flag
//! epochs                          leader epoch history
//! options                         the on-disk options the log was created with
//! replica                         replication state (epoch, high watermark)
//! <base>.log                      segment (base offset, 20 decimal digits)
//! <base>.index, <base>.timeindex  the segment's sparse indexes
//! <any of these>.tmp              a replacement being written (removed at open)
//! spare.tmp                       the next segment's file, prepared ahead of a
//!                                 roll (`storage::spare`; removed at open)
//! ```

use std::path::{Path, PathBuf};

/// Name of the lock file.
pub(crate) const LOCK: &str = "LOCK";
/// Name of the checkpoint file.
pub(crate) const CHECKPOINT: &str = "checkpoint";
/// Name of the epoch history file.
pub(crate) const EPOCHS: &str = "epochs";
/// Name of the file of stored options (`storage::stored_options`).
pub(crate) const OPTIONS: &str = "options";
/// Name of the replication state file (`replication::Replica`).
pub(crate) const REPLICA: &str = "replica";
/// Stem of the spare segment file, `spare.tmp` (`storage::spare`): only
/// ever written under its temporary name.
pub(crate) const SPARE: &str = "spare";

/// The files that belong to one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SegmentFile {
    /// `<base>.log`: the batches.
    Data,
    /// `<base>.index`: offset index and segment summary.
    OffsetIndex,
    /// `<base>.timeindex`: time index.
    TimeIndex,
}

impl SegmentFile {
    fn extension(self) -> &'static str {
        match self {
            SegmentFile::Data => "log",
            SegmentFile::OffsetIndex => "index",
            SegmentFile::TimeIndex => "timeindex",
        }
    }

    fn from_extension(extension: &str) -> Option<SegmentFile> {
        [SegmentFile::Data, SegmentFile::OffsetIndex, SegmentFile::TimeIndex]
            .into_iter()
            .find(|kind| kind.extension() == extension)
    }
}

/// `<dir>/<base, 20 digits>.<extension of kind>`.
pub(crate) fn segment_path(dir: &Path, base_offset: u64, kind: SegmentFile) -> PathBuf {
    dir.join(format!("{base_offset:020}.{}", kind.extension()))
}

/// What a directory entry's name says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entry {
    /// A file of the segment with this base offset.
    Segment(u64, SegmentFile),
    /// A temporary file the log writes and renames: a leftover of a crash.
    Temp,
    /// The lock, checkpoint, epoch or replica file.
    Metadata,
    /// Not a file of the log: ignored and left alone.
    Foreign,
}

/// Classifies a directory entry by its name.
pub(crate) fn parse(name: &str) -> Entry {
    if let Some(stem) = name.strip_suffix(".tmp") {
        return match parse(stem) {
            Entry::Segment(..) => Entry::Temp,
            Entry::Metadata if stem != LOCK => Entry::Temp,
            _ => Entry::Foreign,
        };
    }
    if [LOCK, CHECKPOINT, EPOCHS, OPTIONS, REPLICA, SPARE].contains(&name) {
        return Entry::Metadata;
    }
    let Some((stem, extension)) = name.split_once('.') else {
        return Entry::Foreign;
    };
    match (parse_base(stem), SegmentFile::from_extension(extension)) {
        (Some(base), Some(kind)) => Entry::Segment(base, kind),
        _ => Entry::Foreign,
    }
}

/// A 20-digit decimal file stem, as the log writes them.
fn parse_base(stem: &str) -> Option<u64> {
    (stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit())).then(|| stem.parse().ok())?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let dir = Path::new("/d");
        for kind in [SegmentFile::Data, SegmentFile::OffsetIndex, SegmentFile::TimeIndex] {
            let path = segment_path(dir, 4711, kind);
            let name = path.file_name().unwrap().to_str().unwrap();
            assert_eq!(parse(name), Entry::Segment(4711, kind));
            assert_eq!(parse(&format!("{name}.tmp")), Entry::Temp);
        }
        assert_eq!(parse("checkpoint.tmp"), Entry::Temp);
        assert_eq!(parse("epochs.tmp"), Entry::Temp);
        assert_eq!(parse("spare.tmp"), Entry::Temp);
        assert_eq!(parse("checkpoint"), Entry::Metadata);
        assert_eq!(parse("LOCK.tmp"), Entry::Foreign);
        assert_eq!(parse("notes.tmp"), Entry::Foreign);
        assert_eq!(parse("4711.log"), Entry::Foreign);
        assert_eq!(parse("0000000000000000000x.log"), Entry::Foreign);
        assert_eq!(parse("00000000000000004711.other"), Entry::Foreign);
        assert_eq!(parse("99999999999999999999.log"), Entry::Foreign, "overflows u64");
    }
}
