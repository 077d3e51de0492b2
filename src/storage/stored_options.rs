//! The `options` file: the on-disk choices a log was created with
//! (`segment_bytes`, `index_interval_bytes`), so that reopening it with
//! other options neither goes unnoticed nor fails in a misleading way.
//!
//! ```text
//!  0 [u8;8] "RPLGOPTS"
//!  8 u32    version (1)
//! 12 u32    index interval, bytes
//! 16 u64    segment size, bytes
//! 24 [u8;4] reserved, zero
//! 28 u32    CRC-32 of bytes 0..28
//! ```
//!
//! At open, an option the caller did not set takes the stored value (so a
//! log reopened with the defaults keeps its shape). One the caller set to
//! another value is a deliberate change: it applies to new segments and
//! index entries (existing segments keep theirs; each file describes
//! itself), is stored, and is reported in `RecoveryReport::options_changed`.
//! A log without the file (new, or written before it existed) gets one with
//! the options it is opened with.

use std::path::Path;

use super::fs::{read_if_exists, replace_small_file};
use super::layout;
use crate::error::{Damage, Error, Result};
use crate::format::{header, read_u32, read_u64, write_u32, write_u64};
use crate::options::Options;

const MAGIC: [u8; 8] = *b"RPLGOPTS";
const VERSION: u32 = 1;
const BYTES: usize = 32;

/// The options stored with a log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stored {
    segment_bytes: u64,
    index_interval_bytes: u32,
}

impl Stored {
    fn of(options: &Options) -> Stored {
        Stored {
            segment_bytes: options.segment_bytes,
            index_interval_bytes: options.index_interval_bytes,
        }
    }

    fn encode(&self) -> [u8; BYTES] {
        let mut out = [0u8; BYTES];
        write_u32(&mut out, 12, self.index_interval_bytes);
        write_u64(&mut out, 16, self.segment_bytes);
        header::seal(&mut out, &MAGIC, VERSION);
        out
    }

    fn decode(bytes: &[u8]) -> std::result::Result<Stored, Damage> {
        if bytes.len() != BYTES {
            return Err(Damage::BadLength);
        }
        let bytes = header::check(bytes, BYTES, &MAGIC, VERSION)?;
        Ok(Stored {
            index_interval_bytes: read_u32(bytes, 12),
            segment_bytes: read_u64(bytes, 16),
        })
    }
}

/// What [`reconcile`] decided.
pub(crate) struct Reconciled {
    /// The options to open with.
    pub options: Options,
    /// The `options` file must be (re)written once the open succeeded (a
    /// refused open changes nothing): it is missing, or an option changed.
    pub store: bool,
    /// Options set to another value than the stored one: (name, stored,
    /// new).
    pub changed: Vec<(&'static str, u64, u64)>,
}

/// The options to open the log in `dir` with: `given`, with each on-disk
/// choice the caller left unset taken from the `options` file.
///
/// # Errors
///
/// [`Error::Corrupt`] for a damaged file (delete it to take the options
/// given to open); [`Error::Io`].
pub(crate) fn reconcile(dir: &Path, mut given: Options) -> Result<Reconciled> {
    let path = dir.join(layout::OPTIONS);
    let Some(bytes) = read_if_exists(&path)? else {
        return Ok(Reconciled {
            options: given,
            store: true,
            changed: Vec::new(),
        });
    };
    let stored = Stored::decode(&bytes).map_err(|damage| Error::corrupt(&path, 0, damage))?;
    let mut changed = Vec::new();
    if !given.explicit.segment_bytes {
        given.segment_bytes = stored.segment_bytes;
    } else if given.segment_bytes != stored.segment_bytes {
        changed.push(("segment_bytes", stored.segment_bytes, given.segment_bytes));
    }
    if !given.explicit.index_interval_bytes {
        given.index_interval_bytes = stored.index_interval_bytes;
    } else if given.index_interval_bytes != stored.index_interval_bytes {
        let (old, new) = (stored.index_interval_bytes as u64, given.index_interval_bytes as u64);
        changed.push(("index_interval_bytes", old, new));
    }
    given.validate()?;
    Ok(Reconciled {
        options: given,
        store: !changed.is_empty(),
        changed,
    })
}

/// Durably writes the `options` file of `dir` with `options`' on-disk
/// choices.
pub(crate) fn store(dir: &Path, options: &Options) -> Result<()> {
    let bytes = Stored::of(options).encode();
    replace_small_file(&dir.join(layout::OPTIONS), &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_options_adopt_the_stored_ones_and_set_ones_are_changes() {
        let dir = tempfile::tempdir().unwrap();
        let first = Options::default().segment_bytes(1 << 20).index_interval_bytes(512);
        assert!(reconcile(dir.path(), first.clone()).unwrap().store, "no file yet");
        store(dir.path(), &first).unwrap();
        let adopted = reconcile(dir.path(), Options::default()).unwrap();
        assert!(!adopted.store && adopted.changed.is_empty());
        let options = adopted.options;
        assert_eq!((options.segment_bytes, options.index_interval_bytes), (1 << 20, 512));
        let same = reconcile(dir.path(), Options::default().segment_bytes(1 << 20)).unwrap();
        assert!(!same.store);
        let other = reconcile(dir.path(), Options::default().segment_bytes(2 << 20)).unwrap();
        assert_eq!(other.changed, vec![("segment_bytes", 1 << 20, 2 << 20)]);
        assert!(other.store);
        assert_eq!(other.options.index_interval_bytes, 512, "the unset one is adopted");
        std::fs::write(dir.path().join(layout::OPTIONS), b"garbage").unwrap();
        assert!(matches!(
            reconcile(dir.path(), Options::default()),
            Err(Error::Corrupt { .. })
        ));
    }
}
