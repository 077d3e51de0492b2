//! Which segments are mapped: the active segment always; sealed ones on
//! demand, at most `Options::mapped_segments_max` at once, least recently
//! used out first.
//!
//! A [`MapSlot`] stands for one segment file. A pinned slot (the active
//! segment, while it has a writer) holds its mapping for good. An unpinned
//! slot maps its file read-only on first use, registers with the log's
//! [`MapCache`], and may be unmapped again when the cache is over its
//! limit. Unmapping only drops the slot's own reference: a reader that holds
//! bytes of the mapping (a `Record`, a `Batch`, an iterator's view) holds the
//! mapping alive, so nothing a reader holds is ever unmapped. A mapped
//! sealed segment holds no file descriptor (the mapping outlives the
//! descriptor it was made from), so the cache bounds descriptors too.
//!
//! A slot remembers the identity (device, inode) of its file: if the path
//! now names another file (a truncation replaced it) or none (retention
//! deleted it), mapping it again fails instead of reading the wrong bytes.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::{Mutex, RwLock};

use super::mmap::MappedFile;
use crate::error::{Damage, Error, Result};

/// The mapped, unpinned slots of one log, and the limit on their number.
#[derive(Debug)]
pub(crate) struct MapCache {
    mapped: Mutex<Vec<Weak<MapSlot>>>,
    limit: usize,
    /// Advanced on every use of a slot that was not the latest used; slots
    /// record it as their `last_used`.
    tick: AtomicU64,
}

impl MapCache {
    /// A cache keeping at most `limit` (at least 1) unpinned slots mapped.
    pub(crate) fn new(limit: usize) -> Arc<MapCache> {
        Arc::new(MapCache {
            mapped: Mutex::new(Vec::new()),
            limit: limit.max(1),
            tick: AtomicU64::new(1),
        })
    }

    /// Unpinned slots mapped now (for tests and diagnostics).
    pub(crate) fn mapped_count(&self) -> usize {
        let mut mapped = self.mapped.lock();
        mapped.retain(|slot| slot.strong_count() > 0);
        mapped.len()
    }

    /// Adds a newly mapped slot, then unmaps the least recently used ones
    /// over the limit. Victims are unmapped after the cache lock is released,
    /// so slot locks are never taken under it (a slot takes the cache lock
    /// while it maps, without its own lock held).
    fn register(&self, slot: &Arc<MapSlot>) {
        let victims = {
            let mut mapped = self.mapped.lock();
            mapped.retain(|slot| slot.strong_count() > 0);
            mapped.push(Arc::downgrade(slot));
            let mut victims = Vec::new();
            while mapped.len() > self.limit {
                let oldest = (0..mapped.len())
                    .min_by_key(|&i| mapped[i].upgrade().map_or(0, |s| s.last_used.load(Ordering::Relaxed)))
                    .expect("over a limit of at least 1");
                victims.extend(mapped.swap_remove(oldest).upgrade());
            }
            victims
        };
        for victim in victims {
            *victim.map.write() = None;
        }
    }

    fn touch(&self, slot: &MapSlot) {
        let now = self.tick.load(Ordering::Relaxed);
        if slot.last_used.load(Ordering::Relaxed) != now {
            slot.last_used
                .store(self.tick.fetch_add(1, Ordering::Relaxed) + 1, Ordering::Relaxed);
        }
    }
}

/// One segment file's mapping, mapped while needed.
#[derive(Debug)]
pub(crate) struct MapSlot {
    path: PathBuf,
    /// Device and inode of the file this slot maps.
    identity: (u64, u64),
    /// A read-write lock: concurrent readers of one segment share it.
    map: RwLock<Option<Arc<MappedFile>>>,
    pinned: AtomicBool,
    last_used: AtomicU64,
    cache: Arc<MapCache>,
}

impl MapSlot {
    /// A pinned slot holding `map`, the mapping of `file` (the active segment).
    pub(crate) fn pinned(file: &File, map: Arc<MappedFile>, cache: &Arc<MapCache>) -> Result<Arc<MapSlot>> {
        let path = map.path().to_path_buf();
        Ok(Arc::new(MapSlot {
            identity: identity(file, &path)?,
            path,
            map: RwLock::new(Some(map)),
            pinned: AtomicBool::new(true),
            last_used: AtomicU64::new(0),
            cache: Arc::clone(cache),
        }))
    }

    /// An unmapped slot for the sealed segment file `file` at `path`.
    pub(crate) fn unmapped(file: &File, path: &Path, cache: &Arc<MapCache>) -> Result<Arc<MapSlot>> {
        Ok(Arc::new(MapSlot {
            identity: identity(file, path)?,
            path: path.to_path_buf(),
            map: RwLock::new(None),
            pinned: AtomicBool::new(false),
            last_used: AtomicU64::new(0),
            cache: Arc::clone(cache),
        }))
    }

    /// The file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The mapping, mapping the file again if it was unmapped. The file must
    /// hold at least `frozen_at_least` bytes.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] (kind `NotFound`) if the file is gone or was replaced
    /// by another (a truncation or reset rewrote it, retention deleted it),
    /// or cannot be mapped; [`Error::Corrupt`] ([`Damage::Truncated`]) if
    /// it is shorter than `frozen_at_least`.
    pub(crate) fn get(self: &Arc<Self>, frozen_at_least: u64) -> Result<Arc<MappedFile>> {
        if let Some(map) = self.map.read().as_ref() {
            if !self.pinned.load(Ordering::Relaxed) {
                self.cache.touch(self);
            }
            return Ok(Arc::clone(map));
        }
        let map = self.map_again(frozen_at_least)?;
        {
            let mut slot = self.map.write();
            if let Some(existing) = slot.as_ref() {
                return Ok(Arc::clone(existing));
            }
            *slot = Some(Arc::clone(&map));
        }
        self.cache.touch(self);
        self.cache.register(self);
        Ok(map)
    }

    /// Unpins the slot (its segment was sealed): from now on the cache may
    /// unmap it.
    pub(crate) fn unpin(self: &Arc<Self>) {
        if self.pinned.swap(false, Ordering::AcqRel) {
            self.cache.touch(self);
            self.cache.register(self);
        }
    }

    /// Whether the slot holds its mapping now.
    #[cfg(test)]
    pub(crate) fn is_mapped(&self) -> bool {
        self.map.read().is_some()
    }

    /// Drops the slot's own mapping, pinned or not (at close): bytes readers
    /// hold stay mapped through their own references, and a later read maps
    /// the file again.
    pub(crate) fn release(&self) {
        self.pinned.store(false, Ordering::Release);
        *self.map.write() = None;
    }

    fn map_again(&self, frozen_at_least: u64) -> Result<Arc<MappedFile>> {
        let gone = || {
            Error::io(
                "map segment again",
                &self.path,
                std::io::Error::new(std::io::ErrorKind::NotFound, "segment file was removed or replaced"),
            )
        };
        let file = File::open(&self.path).map_err(|_| gone())?;
        if identity(&file, &self.path)? != self.identity {
            return Err(gone());
        }
        let len = file
            .metadata()
            .map_err(|e| Error::io("stat segment", &self.path, e))?
            .len();
        if len < frozen_at_least {
            return Err(Error::corrupt(&self.path, len, Damage::Truncated));
        }
        MappedFile::map(&file, &self.path, len, len)
    }
}

fn identity(file: &File, path: &Path) -> Result<(u64, u64)> {
    let metadata = file.metadata().map_err(|e| Error::io("stat segment", path, e))?;
    Ok((metadata.dev(), metadata.ino()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_of(dir: &Path, name: &str, len: usize) -> (File, PathBuf) {
        let path = dir.join(name);
        std::fs::write(&path, vec![7u8; len]).unwrap();
        (File::open(&path).expect("opening the file just written"), path)
    }

    #[test]
    fn least_recently_used_is_unmapped_and_mapped_again() {
        let dir = tempfile::tempdir().unwrap();
        let cache = MapCache::new(2);
        let slots: Vec<_> = (0..3)
            .map(|i| {
                let (file, path) = file_of(dir.path(), &format!("s{i}"), 4096);
                MapSlot::unmapped(&file, &path, &cache).unwrap()
            })
            .collect();
        let held = slots[0].get(4096).unwrap().bytes(0..10).unwrap();
        slots[1].get(0).unwrap();
        slots[0].get(0).unwrap();
        slots[2].get(0).unwrap();
        assert_eq!(cache.mapped_count(), 2);
        assert!(!slots[1].is_mapped(), "slot 1 was least recently used");
        assert!(slots[0].is_mapped() && slots[2].is_mapped());
        slots[1].get(0).unwrap();
        assert!(!slots[0].is_mapped(), "now slot 0 is the oldest");
        assert_eq!(&held[..], &[7u8; 10], "bytes a reader holds outlive the unmapping");
    }

    #[test]
    fn a_replaced_or_removed_file_is_not_mapped_again() {
        let dir = tempfile::tempdir().unwrap();
        let cache = MapCache::new(1);
        let (file, path) = file_of(dir.path(), "s", 100);
        let slot = MapSlot::unmapped(&file, &path, &cache).unwrap();
        std::fs::remove_file(&path).unwrap();
        file_of(dir.path(), "s", 100);
        assert!(matches!(slot.get(0), Err(Error::Io { .. })));
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(slot.get(0), Err(Error::Io { .. })));
    }
}
