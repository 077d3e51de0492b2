//! The storage engine below the log handle: memory-mapped segment files,
//! their indexes, the checkpoint and epoch history, recovery, group commit,
//! the background pre-fault thread, the directory lock, and the file names
//! and small file-system steps they share. Nothing here knows about reading
//! APIs or the `Log` handle; they are built on top of it.

pub(crate) mod background;
pub(crate) mod checkpoint;
pub(crate) mod durability;
pub(crate) mod epochs;
pub(crate) mod fs;
pub(crate) mod index;
pub(crate) mod index_file;
pub(crate) mod layout;
pub(crate) mod lock;
pub(crate) mod mapping;
#[expect(
    unsafe_code,
    reason = "the mapping is the one place raw pointers are needed; see its module docs"
)]
pub(crate) mod mmap;
pub(crate) mod pool;
pub(crate) mod recovery;
pub(crate) mod scan;
pub(crate) mod segment;
pub(crate) mod segment_set;
pub(crate) mod segment_writer;
pub(crate) mod spare;
pub(crate) mod stored_options;
