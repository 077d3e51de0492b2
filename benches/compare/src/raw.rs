//! The machine's limits: what appending 256-byte records costs with nothing
//! but a `memcpy` into a memory map, or a `write` and an `fdatasync`.
//!
//! Both write each record as an 8-byte little-endian length followed by the
//! 256-byte value (264 bytes), with no checksum, no index and no header.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use memmap2::{Advice, Mmap, MmapMut};
use tempfile::TempDir;

use crate::harness::{Budget, Sample, VALUE_BYTES, Values, Window, threaded_run, timed_loop, touch};
use crate::stores::temp_dir;

/// Bytes per raw record: length prefix and value.
pub const RECORD_BYTES: usize = 8 + VALUE_BYTES;

/// Set if `MADV_POPULATE_WRITE` was refused and pages were touched instead.
pub static POPULATE_FALLBACK: AtomicBool = AtomicBool::new(false);

#[inline]
pub fn encode(out: &mut [u8], value: &[u8]) {
    out[..8].copy_from_slice(&(value.len() as u64).to_le_bytes());
    out[8..8 + value.len()].copy_from_slice(value);
}

fn create(dir: &TempDir) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(dir.path().join("raw"))
        .expect("create raw file")
}

/// Allocates `len` bytes to `file` with `fallocate(2)` (mode 0: extends the
/// size; on ext4 the new extents are "unwritten" and read as zeros).
fn fallocate(file: &File, len: u64) {
    // SAFETY: plain system call on a file descriptor this function borrows
    // for its duration; no memory is passed.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len as libc::off_t) };
    assert_eq!(rc, 0, "fallocate: {}", std::io::Error::last_os_error());
}

/// Writes `len` bytes of zeros to `file` and syncs it: every block is then
/// allocated and written, so a later overwrite plus `fdatasync` has no
/// metadata to commit.
fn zero_fill(file: &File, len: u64) {
    let zeros = vec![0u8; 1 << 20];
    let mut left = len;
    let mut writer = file;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        writer.write_all(&zeros[..n]).expect("zero-fill");
        left -= n as u64;
    }
    file.sync_all().expect("fsync");
}

/// A new file at `path` of `len` bytes (`fallocate`), mapped read-write,
/// every page faulted in: the latency baseline's "segments".
pub fn prefaulted_map(path: &Path, len: u64) -> MmapMut {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
        .expect("create raw file");
    fallocate(&file, len);
    let mut map = map_mut(&file, len);
    prefault(&mut map);
    map
}

/// Maps `file` (already `len` bytes long) read-write.
fn map_mut(file: &File, len: u64) -> MmapMut {
    // SAFETY: the file was created by this process in its own fresh temporary
    // directory and nothing else opens, truncates or resizes it while the map
    // lives, so the mapped pages stay valid and are only changed through this map.
    unsafe { memmap2::MmapOptions::new().len(len as usize).map_mut(file) }.expect("mmap")
}

/// Faults every page of `map` in, writable, before anything is timed:
/// `MADV_POPULATE_WRITE`, or touching each page where that is unsupported.
fn prefault(map: &mut MmapMut) {
    if map.advise(Advice::PopulateWrite).is_err() {
        POPULATE_FALLBACK.store(true, Ordering::Relaxed);
        for page in (0..map.len()).step_by(4096) {
            map[page] = 0;
        }
    }
}

/// Appends by `memcpy` into a preallocated (`fallocate`) map of a file;
/// `per_step` records per step (a batch is just that many copies). Nothing
/// is ever synced. With `prefaulted`, every page is faulted in before the
/// timing starts (the cost of the bytes alone); without, each new page is
/// faulted in (and zeroed by the kernel) when first written, as it must be
/// for a log that keeps writing new pages of its files.
pub fn mmap_append(base: &Path, values: &Values, per_step: u64, budget: Budget, prefaulted: bool) -> Sample {
    let dir = temp_dir(base);
    let file = create(&dir);
    let len = budget.max_records(per_step) * RECORD_BYTES as u64;
    fallocate(&file, len);
    let mut map = map_mut(&file, len);
    if prefaulted {
        prefault(&mut map);
    }
    let mut pos = 0usize;
    timed_loop(per_step, budget, |first| {
        for i in first..first + per_step {
            encode(&mut map[pos..pos + RECORD_BYTES], values.get(i));
            pos += RECORD_BYTES;
        }
    })
}

/// The read baseline: records laid out as `mmap_append` writes them.
pub struct MmapRead {
    dir: TempDir,
}

impl MmapRead {
    pub fn build(base: &Path, values: &Values, records: u64) -> MmapRead {
        let dir = temp_dir(base);
        let file = create(&dir);
        let len = records * RECORD_BYTES as u64;
        fallocate(&file, len);
        let mut map = map_mut(&file, len);
        for (i, out) in map.chunks_mut(RECORD_BYTES).enumerate() {
            encode(out, values.get(i as u64));
        }
        MmapRead { dir }
    }

    /// Maps the file afresh (read-only) and walks it record by record,
    /// following the length prefixes (the first access of each page faults,
    /// from the page cache).
    pub fn read(&self, records: u64, expected: u64) -> Sample {
        let file = File::open(self.dir.path().join("raw")).expect("open raw file");
        // SAFETY: as in `map_mut`: the file is private to this process and
        // nothing modifies or truncates it while it is mapped.
        let map = unsafe { Mmap::map(&file) }.expect("mmap");
        let start = Instant::now();
        let (mut n, mut sum, mut pos) = (0u64, 0u64, 0usize);
        while pos < map.len() {
            let len = u64::from_le_bytes(map[pos..pos + 8].try_into().expect("8 bytes")) as usize;
            sum += touch(&map[pos + 8..pos + 8 + len]);
            n += 1;
            pos += 8 + len;
        }
        let elapsed = start.elapsed();
        assert_eq!((n, sum), (records, expected), "raw mmap: read wrong data");
        Sample { records: n, elapsed }
    }
}

/// How the file of the `write` + `fdatasync` baseline is preallocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prealloc {
    /// Zeros written and synced: overwriting then needs no metadata change.
    ZeroFilled,
    /// `fallocate` only: on ext4 each first write into an "unwritten" extent
    /// converts it, and `fdatasync` commits that through the journal.
    FallocateOnly,
}

/// `threads` writers, each writing `per_op` records with one `write` (one
/// thread: the file offset advances) or `pwrite` (several threads: each takes
/// the next free range of one shared file), then `fdatasync`. The file holds
/// `file_bytes`; a writer that reaches the end stops the run early.
pub fn sync_append(
    base: &Path,
    values: &Values,
    threads: usize,
    per_op: u64,
    prealloc: Prealloc,
    file_bytes: u64,
    window: Window,
) -> Sample {
    let dir = temp_dir(base);
    let file = create(&dir);
    match prealloc {
        Prealloc::ZeroFilled => zero_fill(&file, file_bytes),
        Prealloc::FallocateOnly => {
            fallocate(&file, file_bytes);
            file.sync_all().expect("fsync");
        }
    }
    (&file).seek(SeekFrom::Start(0)).expect("seek");
    let op_bytes = per_op * RECORD_BYTES as u64;
    let next = AtomicU64::new(0);
    threaded_run(threads, window, |thread, done, stop| {
        let offset = next.fetch_add(op_bytes, Ordering::Relaxed);
        if offset + op_bytes > file_bytes {
            stop.store(true, Ordering::Relaxed);
            return 0;
        }
        let mut buf = vec![0u8; op_bytes as usize];
        let first = thread as u64 * 1_000_003 + done;
        for (i, out) in buf.chunks_mut(RECORD_BYTES).enumerate() {
            encode(out, values.get(first + i as u64));
        }
        if threads == 1 {
            (&file).write_all(&buf).expect("write");
        } else {
            file.write_all_at(&buf, offset).expect("pwrite");
        }
        file.sync_data().expect("fdatasync");
        per_op
    })
}
