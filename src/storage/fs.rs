//! Small file-system helpers: directory fsync, preallocation, the one
//! write-temp-then-rename sequence, and removal that tolerates absence.

use std::fs::{self, File};
use std::io::ErrorKind;
use std::ops::Range;
use std::path::{Path, PathBuf};

use rustix::fs::FallocateFlags;
use rustix::io::Errno;

use crate::error::{Error, Result};

/// Makes the creation, rename or removal of entries in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("fsync directory", dir, e))
}

/// Makes the first `head_bytes` of the file at `path` durable, with the
/// file's size and allocation, without writing back the rest of its dirty
/// pages: rewrites them through a descriptor opened `O_DSYNC`, whose write
/// syncs only its own range (data and the metadata needed to read it back,
/// then a device flush), where `fdatasync` would write every dirty page of
/// the file. For the header of a segment the writer is filling: syncing
/// all of it would write back pages the writer still maps, write-protecting
/// each with a TLB flush and making the writer fault on it again.
///
/// # Errors
///
/// [`Error::Io`] if the file cannot be opened, read or written.
pub(crate) fn sync_file_head(path: &Path, head_bytes: usize) -> Result<()> {
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    let file = File::options()
        .read(true)
        .write(true)
        .custom_flags(rustix::fs::OFlags::DSYNC.bits() as i32)
        .open(path)
        .map_err(|e| Error::io("open for a synced write", path, e))?;
    let mut head = vec![0u8; head_bytes];
    file.read_exact_at(&mut head, 0)
        .map_err(|e| Error::io("read file head", path, e))?;
    file.write_all_at(&head, 0)
        .map_err(|e| Error::io("sync file head", path, e))
}

/// Allocates disk blocks for `range` of `file`, growing the file to
/// `range.end` if it is shorter, so later writes through a mapping into that
/// range cannot fail for lack of space (a full disk is reported here, as an
/// error, instead of as SIGBUS on a write). Falls back to writing zeros over
/// the range on file systems without `fallocate`; the caller guarantees the
/// range holds nothing yet.
pub(crate) fn preallocate(file: &File, path: &Path, range: Range<u64>) -> Result<()> {
    if range.is_empty() {
        return Ok(());
    }
    match rustix::fs::fallocate(file, FallocateFlags::empty(), range.start, range.end - range.start) {
        Ok(()) => Ok(()),
        Err(Errno::OPNOTSUPP) => write_zeros(file, path, range),
        Err(e) => Err(Error::io("fallocate", path, e.into())),
    }
}

fn write_zeros(file: &File, path: &Path, range: Range<u64>) -> Result<()> {
    use std::os::unix::fs::FileExt;
    let zeros = vec![0u8; 1 << 20];
    let mut position = range.start;
    while position < range.end {
        let n = (range.end - position).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..n], position)
            .map_err(|e| Error::io("preallocate (write zeros)", path, e))?;
        position += n as u64;
    }
    Ok(())
}

/// Whether [`replace_file`] makes the new file durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durability {
    /// fsync the file before the rename and the directory after it, so a
    /// crash leaves the old file or the new one, whole.
    Synced,
    /// Neither: for derived files (indexes) that are checked when read and
    /// rebuilt when damaged or missing.
    Unsynced,
}

/// The temporary name `path` is written under before it is renamed:
/// `<path>.tmp`. Open removes such leftovers of a crash.
pub(crate) fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

/// Replaces `path` atomically: `fill` writes the new contents into a fresh
/// `<path>.tmp`, which is then (per `durability`) fsynced, renamed over
/// `path`, and the directory fsynced. Returns the new file, open for
/// reading and writing. On error the temporary file is removed and `path`
/// is untouched.
pub(crate) fn replace_file(
    path: &Path,
    durability: Durability,
    fill: impl FnOnce(&File, &Path) -> Result<()>,
) -> Result<File> {
    let tmp = temp_path(path);
    let result = (|| {
        let file = create_truncated(&tmp, "create file")?;
        fill(&file, &tmp)?;
        if durability == Durability::Synced {
            file.sync_data().map_err(|e| Error::io("fsync", &tmp, e))?;
        }
        fs::rename(&tmp, path).map_err(|e| Error::io("rename", path, e))?;
        Ok(file)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    let file = result?;
    if durability == Durability::Synced {
        sync_dir(path.parent().unwrap_or(Path::new(".")))?;
    }
    Ok(file)
}

/// Writes `chunks` at the start of `file` (a fill for [`replace_file`]).
pub(crate) fn write_chunks(file: &File, path: &Path, chunks: &[&[u8]]) -> Result<()> {
    use std::io::Write;
    let mut writer = file;
    for chunk in chunks {
        writer.write_all(chunk).map_err(|e| Error::io("write", path, e))?;
    }
    Ok(())
}

/// Durably replaces the small file `path` with `bytes` ([`replace_file`],
/// synced): the checkpoint, epoch history, options and replica files.
pub(crate) fn replace_small_file(path: &Path, bytes: &[u8]) -> Result<()> {
    replace_file(path, Durability::Synced, |file, path| {
        write_chunks(file, path, &[bytes])
    })?;
    Ok(())
}

/// Reads a whole small file; `Ok(None)` if it does not exist.
pub(crate) fn read_if_exists(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", path, e)),
    }
}

/// Removes `path`; a file that is already gone is not an error.
pub(crate) fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove file", path, e)),
    }
}

/// Opens `path` for reading and writing, creating it or emptying what it
/// held; `op` names the step in the error.
///
/// # Errors
///
/// [`Error::Io`] if the file cannot be opened or created.
pub(crate) fn create_truncated(path: &Path, op: &'static str) -> Result<File> {
    File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|e| Error::io(op, path, e))
}

/// A fresh read-write file `name` in `dir`, `len` bytes of zeros (sparse),
/// for tests of code that maps files.
#[cfg(test)]
pub(crate) fn scratch_file(dir: &Path, name: &str, len: u64) -> (File, PathBuf) {
    let path = dir.join(name);
    let file = create_truncated(&path, "create scratch file").expect("creating a scratch file");
    file.set_len(len).expect("sizing a scratch file");
    (file, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_file_head_changes_nothing_and_reports_a_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let contents: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        fs::write(&path, &contents).unwrap();
        sync_file_head(&path, 64).unwrap();
        assert_eq!(fs::read(&path).unwrap(), contents);
        let missing = dir.path().join("missing");
        assert!(matches!(sync_file_head(&missing, 64), Err(Error::Io { .. })));
        fs::write(&missing, b"short").unwrap();
        assert!(matches!(sync_file_head(&missing, 64), Err(Error::Io { .. })));
    }

    #[test]
    fn replace_file_leaves_old_contents_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        replace_file(&path, Durability::Synced, |file, tmp| {
            write_chunks(file, tmp, &[b"one"])
        })
        .unwrap();
        let failed = replace_file(&path, Durability::Synced, |_, tmp| {
            Err(Error::io("fill", tmp, std::io::Error::other("boom")))
        });
        assert!(failed.is_err());
        assert_eq!(fs::read(&path).unwrap(), b"one");
        assert!(!temp_path(&path).exists());
        replace_file(&path, Durability::Unsynced, |file, tmp| {
            write_chunks(file, tmp, &[b"tw", b"o"])
        })
        .unwrap();
        assert_eq!(read_if_exists(&path).unwrap().unwrap(), b"two");
        remove_if_exists(&path).unwrap();
        remove_if_exists(&path).unwrap();
        assert_eq!(read_if_exists(&path).unwrap(), None);
    }
}
