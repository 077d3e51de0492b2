//! Small file-system helpers: directory fsync, preallocation, wall clock.

use std::fs::File;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use rustix::fs::FallocateFlags;
use rustix::io::Errno;

use crate::error::{Error, Result};

/// Makes the creation, rename or removal of entries in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("fsync directory", dir, e))
}

/// Allocates disk blocks for `[0, len)` of `file`, growing it to `len`, so
/// later writes through a mapping cannot fail for lack of space (a full disk
/// is reported here, as an error, instead of as SIGBUS on a write). Falls
/// back to writing zeros on file systems without `fallocate`.
pub(crate) fn preallocate(file: &File, path: &Path, len: u64) -> Result<()> {
    match rustix::fs::fallocate(file, FallocateFlags::empty(), 0, len) {
        Ok(()) => Ok(()),
        Err(Errno::OPNOTSUPP) => write_zeros(file, path, len),
        Err(e) => Err(Error::io("fallocate", path, e.into())),
    }
}

fn write_zeros(file: &File, path: &Path, len: u64) -> Result<()> {
    use std::os::unix::fs::FileExt;
    let current = file.metadata().map_err(|e| Error::io("stat", path, e))?.len();
    let zeros = vec![0u8; 1 << 20];
    let mut position = current;
    while position < len {
        let n = (len - position).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..n], position)
            .map_err(|e| Error::io("preallocate (write zeros)", path, e))?;
        position += n as u64;
    }
    Ok(())
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
