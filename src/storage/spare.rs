//! The spare segment file: the next segment's file, created and fully
//! allocated in the background before the roll that needs it.
//!
//! Creating and allocating a segment file waits on the file system: under
//! heavy write-back, `fallocate` waited up to hundreds of milliseconds for
//! block bitmaps to be read behind the queued writes (perf, issue 10). A
//! roll that finds a spare only writes the segment header into it and
//! renames it to the segment's name, so neither wait falls on the writer;
//! and the new segment never allocates again, so neither does an append.
//!
//! A spare lives under a temporary name (`spare.tmp`, see `layout`) until a
//! roll takes it: a crash leaves at most that file, which opening the log
//! removes like any temporary file, and a spare never taken is removed when
//! dropped. It holds one segment's worth of disk blocks while it waits.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::fs::{create_truncated, preallocate};
use super::layout::SPARE;
use crate::error::{Error, Result};

/// A prepared segment file under its temporary name: `capacity_bytes` long,
/// every block allocated, contents all zeros.
#[derive(Debug)]
pub(crate) struct Spare {
    /// `None` once taken (the file then belongs to a segment).
    file: Option<File>,
    path: PathBuf,
    capacity_bytes: u64,
}

impl Spare {
    /// Creates `spare.tmp` in `dir` (replacing a leftover one), allocates
    /// all of its `capacity_bytes`, and sizes it to that.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if creating or allocating fails (a full disk); nothing
    /// is left behind then.
    pub(crate) fn prepare(dir: &Path, capacity_bytes: u64) -> Result<Spare> {
        let path = dir.join(format!("{SPARE}.tmp"));
        let file = create_truncated(&path, "create spare segment")?;
        // Owned from here, so a failure below removes the file.
        let spare = Spare {
            file: Some(file),
            path,
            capacity_bytes,
        };
        let file = spare.file.as_ref().expect("just set");
        preallocate(file, &spare.path, 0..capacity_bytes)?;
        file.set_len(capacity_bytes)
            .map_err(|e| Error::io("size spare segment", &spare.path, e))?;
        Ok(spare)
    }

    /// The size it was prepared for.
    pub(crate) fn capacity_bytes(&self) -> u64 {
        self.capacity_bytes
    }

    /// The open file, to write the segment header into.
    pub(crate) fn file(&self) -> &File {
        self.file.as_ref().expect("a spare not taken holds its file")
    }

    /// Renames the file to `path` and hands it over: from here on it is
    /// that segment's file, and dropping the spare removes nothing.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the rename fails; the spare is then dropped (and
    /// its file removed) by the caller.
    pub(crate) fn take_as(mut self, path: &Path) -> Result<File> {
        std::fs::rename(&self.path, path).map_err(|e| Error::io("rename spare segment", path, e))?;
        Ok(self.file.take().expect("a spare is taken once"))
    }
}

impl Drop for Spare {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            // Best effort: a leftover is removed when the log is next opened.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spare_is_allocated_whole_and_removed_unless_taken() {
        let dir = tempfile::tempdir().unwrap();
        let spare = Spare::prepare(dir.path(), 1 << 20).unwrap();
        let tmp = dir.path().join("spare.tmp");
        let metadata = std::fs::metadata(&tmp).unwrap();
        assert_eq!(metadata.len(), 1 << 20);
        use std::os::unix::fs::MetadataExt;
        assert!(
            metadata.blocks() * 512 >= 1 << 20,
            "not allocated: {} blocks",
            metadata.blocks()
        );
        drop(spare);
        assert!(!tmp.exists());

        let spare = Spare::prepare(dir.path(), 1 << 20).unwrap();
        let taken = dir.path().join("taken");
        let file = spare.take_as(&taken).unwrap();
        assert!(!tmp.exists());
        assert_eq!(file.metadata().unwrap().len(), 1 << 20);
        assert!(taken.exists());
    }
}
