//! The files of a log directory: `<base>.log` segments (the base offset in
//! 20 digits) with their `<base>.index` and `<base>.timeindex` files.

use std::fs;
use std::path::{Path, PathBuf};

/// The segment file of the segment based at `base`.
pub fn segment_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.log"))
}

/// The file with `extension` (`index`, `timeindex`) of the segment based at
/// `base`.
pub fn index_path(dir: &Path, base: u64, extension: &str) -> PathBuf {
    dir.join(format!("{base:020}.{extension}"))
}

/// Base offsets of the segment files in `dir`, in order. Only names the log
/// itself takes for a segment count (20 ASCII digits, then `.log`).
pub fn segment_bases(dir: &Path) -> Vec<u64> {
    let mut bases: Vec<u64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|entry| {
            let name = entry.unwrap().file_name().into_string().ok()?;
            let stem = name.strip_suffix(".log")?;
            (stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit())).then(|| stem.parse().unwrap())
        })
        .collect();
    bases.sort_unstable();
    bases
}

/// Copies the regular files of `from` (not the lock file) into `to`.
pub fn copy_files(from: &Path, to: &Path) {
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() && entry.file_name() != "LOCK" {
            fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}
