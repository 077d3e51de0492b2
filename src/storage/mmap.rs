//! Memory-mapped segment files: the only module with `unsafe` code.
//!
//! # Why the mapping is sound
//!
//! A [`MappedFile`] is a shared, read-write mapping of a whole segment file
//! (`memmap2::MmapRaw`, which hands out raw pointers, never references). Rust
//! references (`&[u8]`) are created only over bytes that cannot change while
//! the reference lives. That rests on these invariants:
//!
//! 1. **Exclusive directory.** `Log::open` locks the directory exclusively
//!    (the `lock` module): a POSIX record lock on its `LOCK` file excludes
//!    other processes, and a process-wide registry of locked directories
//!    excludes other handles in this process. So no other replog handle (in
//!    this or another process) writes these files. Tools that modify the
//!    files while the log is open are outside the contract, as with any
//!    mmap-based store.
//! 2. **Frozen prefix.** Each mapping keeps `frozen`, an atomic byte count
//!    that only grows. Bytes in `[0, frozen)` are never written again through
//!    any mapping, and [`MappedFile::view`] and [`MappedFile::bytes`] refuse
//!    ranges that reach past `frozen`. The writer stores `frozen` with
//!    `Release` after the bytes are complete; readers load it with `Acquire`.
//! 3. **One writer.** Bytes at or past `frozen` are written only through the
//!    single [`MapWriter`] of the mapping (`MappedFile::writer` hands out at
//!    most one), whose writing methods take `&mut self`. Slices of unfrozen
//!    bytes borrow the writer, so they cannot coexist with a write.
//! 4. **No shrinking under views.** A mapped file is only shortened (trimmed)
//!    at or past its `frozen` mark, and pre-faulting is stopped before it is,
//!    so no access ever touches a page past the end of the file (which would
//!    raise SIGBUS). Truncating the log never rewrites or shortens frozen
//!    bytes: it starts a new segment file instead.
//! 5. **No writes past the allocation.** A segment file is sized to its
//!    whole mapping when created (so no page of the mapping lies past the
//!    end of the file) but its blocks are allocated with `fallocate` in
//!    steps ahead of the writer; past the allocated length it is sparse.
//!    The allocated length ([`MappedFile::allocated`]) is raised only after
//!    `fallocate` returned ([`MappedFile::allocate_to`], by the writer or
//!    ahead of it by the pre-fault task), and the [`MapWriter`]'s writes
//!    never reach past it (asserted); pre-faulting is likewise kept below
//!    it. So a write through the mapping never needs a block allocation and
//!    cannot fault with SIGBUS on a full disk: the full disk is the error of
//!    the `fallocate` of the next step.

use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use memmap2::{Advice, MmapOptions, MmapRaw};

use super::fs::preallocate;
use crate::error::{Error, Result};
use crate::format::ByteSink;

/// A shared read-write mapping of one segment file.
#[derive(Debug)]
pub(crate) struct MappedFile {
    map: MmapRaw,
    path: PathBuf,
    /// The file, for writable mappings only (to start write-back).
    file: Option<File>,
    /// Bytes below this are complete and immutable forever (invariant 2).
    frozen: AtomicU64,
    /// Set once the single writer has been handed out (invariant 3).
    writer_taken: AtomicBool,
    /// Bytes of the file allocated (`fallocate`): writes and pre-faulting
    /// stay below it (invariant 5). Only grows.
    allocated: AtomicU64,
    /// Serializes `allocate_to`, so the zero-writing fallback never writes
    /// over bytes another caller's allocation already let the writer fill.
    allocating: parking_lot::Mutex<()>,
}

impl MappedFile {
    /// Maps the first `len` bytes of `file`, whose first `frozen` bytes are
    /// already complete (for a file found on disk) or zero (for a new one).
    pub(crate) fn map(file: &File, path: &Path, len: u64, frozen: u64) -> Result<Arc<MappedFile>> {
        assert!(frozen <= len, "frozen prefix {frozen} beyond mapping length {len}");
        let mut options = MmapOptions::new();
        options.len(len as usize);
        // Nothing past `frozen` means nothing will ever be written: map it
        // read-only, so a stray write would fault instead of corrupting.
        let map = if frozen == len {
            options.map_raw_read_only(file)
        } else {
            options.map_raw(file)
        };
        let map = map.map_err(|e| Error::io("mmap", path, e))?;
        let file = if frozen == len {
            None
        } else {
            Some(file.try_clone().map_err(|e| Error::io("dup segment file", path, e))?)
        };
        Ok(Arc::new(MappedFile {
            map,
            path: path.to_path_buf(),
            file,
            frozen: AtomicU64::new(frozen),
            writer_taken: AtomicBool::new(false),
            allocated: AtomicU64::new(0),
            allocating: parking_lot::Mutex::new(()),
        }))
    }

    /// The one writer of this mapping, for a file allocated (`fallocate`)
    /// up to `allocated` bytes; `None` if it was handed out before.
    pub(crate) fn writer(self: &Arc<Self>, allocated: u64) -> Option<MapWriter> {
        if self.writer_taken.swap(true, Ordering::AcqRel) {
            return None;
        }
        self.allocated.fetch_max(allocated.min(self.len()), Ordering::AcqRel);
        Some(MapWriter { map: Arc::clone(self) })
    }

    /// Bytes of the file known to be allocated (invariant 5).
    pub(crate) fn allocated(&self) -> u64 {
        self.allocated.load(Ordering::Acquire)
    }

    /// Allocates the file's blocks up to `target` bytes (at most the
    /// mapping's length) if they are not yet, then raises
    /// [`MappedFile::allocated`]. Called by the writer when it needs the
    /// room, and ahead of it by the pre-fault task.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if `fallocate` fails (a full disk); nothing changes.
    pub(crate) fn allocate_to(&self, target: u64) -> Result<()> {
        let target = target.min(self.len());
        let _serial = self.allocating.lock();
        let from = self.allocated();
        if target <= from {
            return Ok(());
        }
        let Some(file) = &self.file else {
            return Ok(());
        };
        preallocate(file, &self.path, from..target)?;
        self.allocated.fetch_max(target, Ordering::AcqRel);
        Ok(())
    }

    /// Length of the mapping in bytes.
    pub(crate) fn len(&self) -> u64 {
        self.map.len() as u64
    }

    /// Bytes that may be viewed: `[0, frozen_len)`.
    pub(crate) fn frozen_len(&self) -> u64 {
        self.frozen.load(Ordering::Acquire)
    }

    /// Path of the mapped file (for error messages).
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// A borrowed view of frozen bytes; `None` if `range` reaches past them.
    pub(crate) fn view(&self, range: Range<u64>) -> Option<&[u8]> {
        if range.start > range.end || range.end > self.frozen_len() {
            return None;
        }
        // SAFETY: `range` lies inside `[0, frozen)` (checked just above), which
        // is inside the mapping (`frozen <= len`, asserted in `map` and
        // `MapWriter::freeze`). Frozen bytes are never written again
        // (invariant 2) and the file is never shortened below them
        // (invariant 4), so they stay valid and unchanged for the lifetime
        // of `&self`, which keeps the mapping alive.
        Some(unsafe {
            std::slice::from_raw_parts(
                self.map.as_ptr().add(range.start as usize),
                (range.end - range.start) as usize,
            )
        })
    }

    /// A zero-copy `Bytes` of frozen bytes that keeps the mapping alive;
    /// `None` if `range` reaches past the frozen prefix. Costs one small
    /// allocation; slice the result for further zero-copy pieces.
    pub(crate) fn bytes(self: &Arc<Self>, range: Range<u64>) -> Option<Bytes> {
        self.view(range.clone())?;
        Some(Bytes::from_owner(FrozenSlice {
            map: Arc::clone(self),
            start: range.start as usize,
            len: (range.end - range.start) as usize,
        }))
    }

    /// Writes back the pages covering `range` and waits for the device
    /// (`msync(MS_SYNC)`, a ranged `fdatasync` on Linux).
    pub(crate) fn flush(&self, range: Range<u64>) -> Result<()> {
        let (start, len) = self.page_span(range);
        if len == 0 {
            return Ok(());
        }
        self.map
            .flush_range(start, len)
            .map_err(|e| Error::io("msync", &self.path, e))
    }

    /// Faults in the pages covering `range` as writable, without changing
    /// their contents (`MADV_POPULATE_WRITE`), so the writer takes no page
    /// fault there. The caller keeps `range` inside the file (invariant 4).
    pub(crate) fn populate(&self, range: Range<u64>) -> std::io::Result<()> {
        let (start, len) = self.page_span(range);
        if len == 0 {
            return Ok(());
        }
        self.map.advise_range(Advice::PopulateWrite, start, len)
    }

    /// Starts writing back the dirty pages covering `range`, without waiting
    /// for them and without a device flush. Makes nothing durable; a later
    /// sync finds less to do. The caller passes frozen bytes the writer has
    /// left behind.
    ///
    /// It first unmaps the range from this process (`MADV_DONTNEED`; the
    /// pages and their contents stay in the page cache, and a later access
    /// maps them again with a minor fault), then starts write-back
    /// (`POSIX_FADV_DONTNEED`, which on Linux starts it and drops only clean
    /// pages no one maps). Cleaning a page that is still mapped
    /// write-protects it with a TLB flush of its own, an interrupt to every
    /// other core per 4 KiB page; unmapping first flushes once per range.
    pub(crate) fn start_write_back(&self, range: Range<u64>) -> std::io::Result<()> {
        let (start, len) = self.page_span(range.clone());
        self.unmap_pages(range)?;
        match (&self.file, std::num::NonZeroU64::new(len as u64)) {
            (Some(file), Some(len)) => {
                rustix::fs::fadvise(file, start as u64, Some(len), rustix::fs::Advice::DontNeed).map_err(Into::into)
            }
            _ => Ok(()),
        }
    }

    /// Removes the pages covering `range` from this process's page tables
    /// (`MADV_DONTNEED`), leaving them and their contents in the page cache:
    /// a later access maps them again with a minor fault. Writing back a
    /// dirty page that is still mapped write-protects it first, with a TLB
    /// flush (an interrupt to every other core) per 4 KiB page; once they
    /// are unmapped, one flush covers the whole range. The caller passes
    /// frozen bytes the writer has left behind, or pages just pre-faulted
    /// ahead of it (which it may be writing by then: its stores are kept,
    /// see below).
    pub(crate) fn unmap_pages(&self, range: Range<u64>) -> std::io::Result<()> {
        let (start, len) = self.page_span(range);
        if len == 0 {
            return Ok(());
        }
        // SAFETY: `start..start + len` lies inside the mapping
        // (`page_span` clamps it). On a shared file mapping `MADV_DONTNEED`
        // only removes this process's page-table entries: the file's pages
        // keep their contents (dirty state moves to the page cache), and any
        // later access, including through a view or `Bytes` handed out
        // earlier, maps the same contents again. So no byte any reader can
        // see changes (invariant 2) and the mapping itself stays valid. A
        // store by the writer racing with it is kept too: the kernel moves
        // a page-table entry's dirty bit to the page as it clears the
        // entry, and a store after that faults the cached page back in.
        unsafe {
            self.map
                .unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, len)
        }
    }

    /// `range` clamped to the mapping and widened to whole pages.
    fn page_span(&self, range: Range<u64>) -> (usize, usize) {
        let end = range.end.min(self.len());
        let start = range.start.min(end) / PAGE_BYTES * PAGE_BYTES;
        (start as usize, (end - start) as usize)
    }
}

/// Page granularity used to align `msync` and `madvise` ranges.
const PAGE_BYTES: u64 = 4096;

/// The owner behind a zero-copy `Bytes`: keeps the mapping alive.
struct FrozenSlice {
    map: Arc<MappedFile>,
    start: usize,
    len: usize,
}

impl AsRef<[u8]> for FrozenSlice {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `MappedFile::bytes` built this owner only after `view`
        // confirmed `start..start + len` lies in the frozen prefix. The prefix
        // only grows and frozen bytes never change or disappear (invariants
        // 2 and 4); `self.map` keeps the mapping alive as long as `self`.
        unsafe { std::slice::from_raw_parts(self.map.map.as_ptr().add(self.start), self.len) }
    }
}

/// The single writer of a [`MappedFile`]: writes bytes past the frozen
/// prefix, then freezes them.
#[derive(Debug)]
pub(crate) struct MapWriter {
    map: Arc<MappedFile>,
}

impl MapWriter {
    /// Bytes of the file known to be allocated.
    pub(crate) fn allocated(&self) -> u64 {
        self.map.allocated()
    }

    /// Turns read-around on page faults on or off for the whole mapping
    /// (`MADV_NORMAL` / `MADV_RANDOM`). On, a fault (pre-faulting included)
    /// brings in up to the device's read-ahead size around the page (8 MiB
    /// on virtio), zero-filling new pages in bulk: the fast way to pre-fault
    /// for a busy writer, and megabytes of page cache wasted per fault for
    /// one that appends a few records. Advice only: failure changes nothing.
    pub(crate) fn set_read_around(&self, on: bool) {
        let _ = self.map.map.advise(if on { Advice::Normal } else { Advice::Random });
    }

    /// The mapping this writer writes to.
    pub(crate) fn mapping(&self) -> &Arc<MappedFile> {
        &self.map
    }

    /// Copies `bytes` to `position`, which must be at or past the frozen
    /// prefix and inside the mapping.
    pub(crate) fn write(&mut self, position: u64, bytes: &[u8]) {
        let end = position + bytes.len() as u64;
        assert!(
            position >= self.map.frozen_len(),
            "write at {position} into frozen bytes"
        );
        assert!(end <= self.map.len(), "write to {end} past the mapping");
        assert!(
            end <= self.map.allocated(),
            "write to {end} past the allocated {}",
            self.map.allocated()
        );
        // SAFETY: the destination `position..end` is inside the mapping
        // (asserted) and at or past `frozen` (asserted), so no reader views it
        // (invariant 2) and no other writer exists (invariant 3; `&mut self`).
        // It lies within the file's allocated length (asserted; invariant 5).
        // The source is a distinct Rust slice, so the ranges cannot overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.map.map.as_mut_ptr().add(position as usize),
                bytes.len(),
            );
        }
    }

    /// A sequential sink that writes from `position` on.
    pub(crate) fn cursor(&mut self, position: u64) -> MapCursor<'_> {
        MapCursor { writer: self, position }
    }

    /// Reads back bytes this writer wrote but has not frozen yet.
    pub(crate) fn unfrozen(&self, range: Range<u64>) -> &[u8] {
        assert!(range.start >= self.map.frozen_len() && range.start <= range.end);
        assert!(range.end <= self.map.len());
        // SAFETY: the range is inside the mapping and past `frozen` (asserted),
        // so only this writer accesses it (invariants 2 and 3); writes need
        // `&mut self`, which cannot happen while this `&self` borrow lives.
        unsafe {
            std::slice::from_raw_parts(
                self.map.map.as_ptr().add(range.start as usize),
                (range.end - range.start) as usize,
            )
        }
    }

    /// Makes `[0, end)` visible and immutable. `end` never moves backwards.
    pub(crate) fn freeze(&mut self, end: u64) {
        assert!(end <= self.map.len(), "freeze to {end} past the mapping");
        // This writer is the only one that stores `frozen` (invariant 3), so
        // a plain load sees its own last store, and a plain store replaces
        // a `swap` (a locked instruction on every append).
        let previous = self.map.frozen.load(Ordering::Relaxed);
        assert!(
            previous <= end,
            "frozen prefix moved backwards from {previous} to {end}"
        );
        self.map.frozen.store(end, Ordering::Release);
    }
}

/// A [`ByteSink`] that writes sequentially into the mapping.
pub(crate) struct MapCursor<'a> {
    writer: &'a mut MapWriter,
    position: u64,
}

impl ByteSink for MapCursor<'_> {
    fn put(&mut self, bytes: &[u8]) {
        self.writer.write(self.position, bytes);
        self.position += bytes.len() as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapped(len: u64) -> (tempfile::TempDir, Arc<MappedFile>) {
        let dir = tempfile::tempdir().unwrap();
        let (file, path) = crate::storage::fs::scratch_file(dir.path(), "f", len);
        let map = MappedFile::map(&file, &path, len, 0).unwrap();
        (dir, map)
    }

    #[test]
    fn views_stop_at_the_frozen_prefix() {
        let (_dir, map) = mapped(8192);
        let mut writer = map.writer(8192).unwrap();
        assert!(map.writer(8192).is_none(), "only one writer");
        writer.write(0, b"hello");
        assert!(map.view(0..5).is_none(), "unfrozen bytes are invisible");
        assert_eq!(writer.unfrozen(0..5), b"hello");
        writer.freeze(5);
        assert_eq!(map.view(0..5).unwrap(), b"hello");
        let bytes = map.bytes(1..5).unwrap();
        drop(writer);
        assert_eq!(&bytes[..], b"ello");
        assert!(map.view(0..6).is_none());
    }

    #[test]
    #[should_panic(expected = "into frozen bytes")]
    fn writing_frozen_bytes_is_refused() {
        let (_dir, map) = mapped(4096);
        let mut writer = map.writer(4096).unwrap();
        writer.write(0, b"ab");
        writer.freeze(2);
        writer.write(1, b"c");
    }

    #[test]
    #[should_panic(expected = "past the allocated")]
    fn writing_past_the_allocated_length_is_refused() {
        let (_dir, map) = mapped(8192);
        let mut writer = map.writer(4096).unwrap();
        writer.write(4090, b"0123456789");
    }

    /// Pre-faulting with read-around changes no byte: what the writer
    /// wrote before stays, the rest reads as zeros, through the mapping
    /// and in the file.
    #[test]
    fn populating_with_read_around_changes_no_byte() {
        let len = 1 << 20;
        let (dir, map) = mapped(len);
        let mut writer = map.writer(len).unwrap();
        writer.write(0, b"written before");
        writer.freeze(14);
        writer.set_read_around(true);
        map.populate(0..len).unwrap();
        writer.write(4096 * 3, b"written after");
        writer.freeze(4096 * 3 + 13);
        map.flush(0..len).unwrap();
        let view = map.view(0..4096 * 3 + 13).unwrap();
        assert_eq!(&view[..14], b"written before");
        assert!(view[14..4096 * 3].iter().all(|&b| b == 0));
        assert_eq!(&view[4096 * 3..], b"written after");
        let file = std::fs::read(dir.path().join("f")).unwrap();
        assert_eq!(&file[..4096 * 3 + 13], view);
        assert!(file[4096 * 3 + 13..].iter().all(|&b| b == 0));
    }

    #[test]
    fn populate_and_flush_accept_ranges_past_the_end() {
        let (_dir, map) = mapped(8192);
        map.populate(100..1 << 20).unwrap();
        map.flush(4000..100_000).unwrap();
    }
}
