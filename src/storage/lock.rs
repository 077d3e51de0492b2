//! [`DirLock`]: the lock that makes one log directory one process's (and one
//! handle's) for as long as a log is open on it.
//!
//! # Why POSIX record locks, not `flock`
//!
//! A log directory is locked through its `LOCK` file. `flock` locks (and
//! Linux's open-file-description locks, `F_OFD_SETLK`) belong to the open
//! file description, which `fork` shares with the child: a child process
//! spawned by any thread of the application (`std::process::Command` forks,
//! then execs) holds a copy of the lock file's descriptor from its fork until
//! its exec closes it (every descriptor is close-on-exec). If the log is
//! closed in that window, the lock stays held by the child, and reopening the
//! log sees a spurious [`Error::Locked`].
//!
//! Classic POSIX record locks (`fcntl(F_SETLK)`, issued here through
//! `rustix::fs::fcntl_lock`) belong to the *process* instead, and a child
//! does not inherit them: what the child holds between fork and exec is a
//! descriptor, not the lock. So the lock is released exactly when the log
//! releases it, whatever the application spawns meanwhile.
//!
//! # Why a process-wide registry
//!
//! Process-scoped locks have two traps, both of which this module closes
//! with [`REGISTRY`], a map from each locked directory's identity (device
//! and inode, so two paths naming the same directory collide) to what this
//! process holds on it:
//!
//! - **No conflicts within a process.** A process that asks for a lock it
//!   (or another of its threads) already holds simply gets it again. A
//!   second `Log::open` of the same directory in the same process must
//!   still fail, so conflicts within the process are decided by the
//!   registry: an exclusive lock conflicts with anything registered, a
//!   shared lock with a registered exclusive one.
//! - **Closing any descriptor releases everything.** When a process closes
//!   *any* descriptor of a file, it loses *all* its record locks on that
//!   file, including ones taken through other descriptors. So the registry
//!   is consulted before the `LOCK` file is opened (a refused attempt never
//!   opens, and so never closes, a descriptor of it), several shared holders
//!   in one process share one descriptor and one lock (with a count, closed
//!   when the last holder drops), and the check, the open, the lock and the
//!   registration all happen under the registry's mutex, as do the removal
//!   and the close on drop, so no acquire ever sees a stale state.
//!
//! The second trap also binds code outside this module: nothing else in the
//! process may open (and so close) the `LOCK` file of an open log, or the
//! log would silently lose its lock against other processes. And a child
//! forked without exec inherits a copy of the registry but none of the
//! locks: it must not use logs its parent had open.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use parking_lot::Mutex;
use rustix::fs::{FlockOperation, fcntl_lock};
use rustix::io::Errno;

use crate::error::{Error, Result};

/// Name of the lock file inside a log directory.
use super::layout::LOCK as LOCK_FILE;

/// How a directory is locked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LockMode {
    /// For a writer: conflicts with every other lock on the directory, in
    /// this process or another.
    Exclusive,
    /// For a read-only opener: conflicts only with an exclusive lock. Any
    /// number of shared locks may be held at once, in any processes.
    Shared,
}

/// Identity of a directory: its device and inode numbers.
type DirId = (u64, u64);

/// What this process holds on one directory.
#[derive(Debug)]
struct Entry {
    mode: LockMode,
    /// Number of [`DirLock`]s sharing this entry: 1 for an exclusive lock.
    holders: usize,
    /// The locked `LOCK` file; closing it releases the process's lock.
    /// `None` for a shared lock on a directory that has no `LOCK` file.
    _file: Option<File>,
}

/// Every directory this process holds a lock on.
static REGISTRY: Mutex<BTreeMap<DirId, Entry>> = Mutex::new(BTreeMap::new());

/// A lock on a log directory, held for as long as a log is open on the
/// directory; dropping it releases the lock.
///
/// It excludes other processes through a POSIX record lock on the
/// directory's `LOCK` file (which a forked child does not inherit) and other
/// handles in this process through a process-wide registry; see the module
/// documentation.
#[derive(Debug)]
pub(crate) struct DirLock {
    id: DirId,
}

impl DirLock {
    /// Locks `dir` (which must exist) in `mode`, without waiting.
    ///
    /// [`LockMode::Exclusive`] creates `<dir>/LOCK` if it is missing, the
    /// only change it makes to the disk, and takes a write lock on it.
    ///
    /// [`LockMode::Shared`] never creates or modifies any file. It takes a
    /// read lock on `<dir>/LOCK`, shared with the other shared holders in
    /// this process. If `LOCK` does not exist, no writer has ever opened the
    /// directory, and the shared lock is held in this process only: it
    /// excludes exclusive lockers in this process, not in others.
    ///
    /// # Errors
    ///
    /// [`Error::Locked`] if the directory is locked in a conflicting mode,
    /// by this process (through any path that names the same directory) or
    /// by another one. [`Error::Io`] if `dir` is not a directory that can be
    /// read, if the lock file cannot be opened (or created), or if the lock
    /// call fails for another reason than a conflict.
    pub(crate) fn acquire(dir: &Path, mode: LockMode) -> Result<DirLock> {
        let metadata = std::fs::metadata(dir).map_err(|e| Error::io("stat directory", dir, e))?;
        if !metadata.is_dir() {
            let not_dir = io::Error::new(io::ErrorKind::NotADirectory, "not a directory");
            return Err(Error::io("lock directory", dir, not_dir));
        }
        let id = (metadata.dev(), metadata.ino());
        let locked = || Error::Locked { dir: dir.to_path_buf() };

        // Held until the lock is registered: two threads must not both find
        // the directory unregistered and both lock it (the second lock call
        // would succeed, as locks never conflict within a process).
        let mut registry = REGISTRY.lock();
        if let Some(entry) = registry.get_mut(&id) {
            // Decided before the lock file is opened: opening and closing a
            // descriptor of it here would release the holder's lock.
            return match (entry.mode, mode) {
                (LockMode::Shared, LockMode::Shared) => {
                    entry.holders += 1;
                    Ok(DirLock { id })
                }
                _ => Err(locked()),
            };
        }

        let path = dir.join(LOCK_FILE);
        let open_error = |e| Error::io("open lock file", &path, e);
        let (file, operation) = match mode {
            LockMode::Exclusive => {
                let file = File::options()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(&path)
                    .map_err(open_error)?;
                (Some(file), FlockOperation::NonBlockingLockExclusive)
            }
            LockMode::Shared => match File::open(&path) {
                Ok(file) => (Some(file), FlockOperation::NonBlockingLockShared),
                Err(e) if e.kind() == io::ErrorKind::NotFound => (None, FlockOperation::NonBlockingLockShared),
                Err(e) => return Err(open_error(e)),
            },
        };
        if let Some(file) = &file {
            // On failure `file` is closed on return; that releases nothing,
            // as this process held no lock on the file (it was unregistered).
            fcntl_lock(file, operation).map_err(|errno| {
                if errno == Errno::WOULDBLOCK || errno == Errno::AGAIN || errno == Errno::ACCESS {
                    locked()
                } else {
                    Error::io("lock directory", &path, errno.into())
                }
            })?;
        }
        registry.insert(
            id,
            Entry {
                mode,
                holders: 1,
                _file: file,
            },
        );
        Ok(DirLock { id })
    }
}

impl Drop for DirLock {
    /// Unregisters this holder; the last holder of an entry also closes the
    /// lock file, which releases the process's lock on it. Both happen under
    /// the registry's mutex, so a concurrent acquire sees either the lock
    /// held and registered or released and unregistered.
    fn drop(&mut self) {
        let mut registry = REGISTRY.lock();
        let Some(entry) = registry.get_mut(&self.id) else {
            return;
        };
        entry.holders = entry.holders.saturating_sub(1);
        if entry.holders == 0 {
            let removed = registry.remove(&self.id);
            // Closes the lock file (if any) while the mutex is held.
            drop(removed);
        }
        drop(registry);
    }
}

#[cfg(test)]
mod tests {
    //! The cross-process checks re-execute this test binary as a child (the
    //! `child_probe` "test", which does nothing unless `ENV_DIR` is set).
    //! The child tries to lock the directory and prints the outcome; with
    //! `ENV_HOLD` set it then keeps what it got until its stdin is closed.

    use std::io::{BufRead, BufReader, Write};
    use std::path::PathBuf;
    use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

    use super::*;

    const CHILD_TEST: &str = "storage::lock::tests::child_probe";
    const ENV_DIR: &str = "REPLOG_LOCK_PROBE_DIR";
    const ENV_MODE: &str = "REPLOG_LOCK_PROBE_MODE";
    const ENV_HOLD: &str = "REPLOG_LOCK_PROBE_HOLD";
    const PREFIX: &str = "PROBE: ";

    fn mode_name(mode: LockMode) -> &'static str {
        match mode {
            LockMode::Exclusive => "exclusive",
            LockMode::Shared => "shared",
        }
    }

    /// What an acquire came to, as one word.
    fn outcome(result: &Result<DirLock>) -> String {
        match result {
            Ok(_) => "acquired".to_owned(),
            Err(Error::Locked { .. }) => "locked".to_owned(),
            Err(e) => format!("error {e}"),
        }
    }

    #[test]
    fn child_probe() {
        let Some(dir) = std::env::var_os(ENV_DIR) else {
            return;
        };
        let mode = match std::env::var(ENV_MODE).as_deref() {
            Ok("exclusive") => LockMode::Exclusive,
            Ok("shared") => LockMode::Shared,
            other => panic!("bad {ENV_MODE}: {other:?}"),
        };
        let result = DirLock::acquire(Path::new(&dir), mode);
        // libtest has printed "test ... " without a newline: end it.
        let mut out = std::io::stdout().lock();
        write!(out, "\n{PREFIX}{}\n", outcome(&result)).unwrap();
        out.flush().unwrap();
        if std::env::var_os(ENV_HOLD).is_some() {
            // Hold the lock until the parent closes our stdin.
            std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink()).unwrap();
        }
        drop(result);
    }

    /// A child process that has tried to lock a directory.
    struct Probe {
        child: Child,
        stdin: Option<ChildStdin>,
        stdout: BufReader<ChildStdout>,
    }

    impl Probe {
        fn spawn(dir: &Path, mode: LockMode, hold: bool) -> Probe {
            let exe = std::env::current_exe().expect("current_exe");
            let mut command = Command::new(exe);
            command
                .args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
                .env(ENV_DIR, dir)
                .env(ENV_MODE, mode_name(mode))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit());
            if hold {
                command.env(ENV_HOLD, "1");
            }
            let mut child = command.spawn().expect("spawning the probe");
            let stdin = child.stdin.take();
            let stdout = BufReader::new(child.stdout.take().unwrap());
            Probe { child, stdin, stdout }
        }

        /// The outcome the child printed.
        fn outcome(&mut self) -> String {
            let mut line = String::new();
            loop {
                line.clear();
                let n = self.stdout.read_line(&mut line).expect("reading the probe's stdout");
                assert!(n > 0, "the probe exited without printing an outcome");
                if let Some(rest) = line.strip_prefix(PREFIX) {
                    return rest.trim_end().to_owned();
                }
            }
        }

        /// Lets a holding child release its lock and exit; waits for it.
        fn finish(mut self) {
            drop(self.stdin.take());
            let mut rest = String::new();
            let _ = std::io::Read::read_to_string(&mut self.stdout, &mut rest);
            let status = self.child.wait().expect("waiting for the probe");
            assert!(status.success(), "probe failed: {status}; output: {rest}");
        }
    }

    /// Tries `mode` on `dir` from a child process, which exits at once.
    fn probe(dir: &Path, mode: LockMode) -> String {
        let mut probe = Probe::spawn(dir, mode, false);
        let outcome = probe.outcome();
        probe.finish();
        outcome
    }

    fn exclusive(dir: &Path) -> Result<DirLock> {
        DirLock::acquire(dir, LockMode::Exclusive)
    }

    fn shared(dir: &Path) -> Result<DirLock> {
        DirLock::acquire(dir, LockMode::Shared)
    }

    fn assert_locked(result: Result<DirLock>, dir: &Path) {
        match result {
            Err(Error::Locked { dir: got }) => assert_eq!(got, dir),
            other => panic!("expected Locked on {}, got {}", dir.display(), outcome(&other)),
        }
    }

    #[test]
    fn exclusive_twice_in_process_is_locked_and_the_first_stays_held() {
        let dir = tempfile::tempdir().unwrap();
        let first = exclusive(dir.path()).unwrap();
        assert_locked(exclusive(dir.path()), dir.path());
        assert_locked(shared(dir.path()), dir.path());
        // The refused attempts opened and closed no descriptor of LOCK, so
        // other processes still see it held.
        assert_eq!(probe(dir.path(), LockMode::Exclusive), "locked");
        assert_eq!(probe(dir.path(), LockMode::Shared), "locked");
        drop(first);
        assert_eq!(probe(dir.path(), LockMode::Exclusive), "acquired");
        let again = exclusive(dir.path()).unwrap();
        assert_eq!(probe(dir.path(), LockMode::Exclusive), "locked");
        drop(again);
    }

    #[test]
    fn another_process_cannot_lock_until_the_holder_drops() {
        let dir = tempfile::tempdir().unwrap();
        let lock = exclusive(dir.path()).unwrap();
        assert_eq!(probe(dir.path(), LockMode::Exclusive), "locked");
        drop(lock);
        assert_eq!(probe(dir.path(), LockMode::Exclusive), "acquired");

        // The other way round: a child holds it, this process is refused,
        // and the refusal leaves nothing behind in the registry.
        let mut holder = Probe::spawn(dir.path(), LockMode::Exclusive, true);
        assert_eq!(holder.outcome(), "acquired");
        assert_locked(exclusive(dir.path()), dir.path());
        assert_locked(shared(dir.path()), dir.path());
        holder.finish();
        let lock = exclusive(dir.path()).unwrap();
        drop(lock);
    }

    #[test]
    fn shared_locks_coexist_and_count() {
        let dir = tempfile::tempdir().unwrap();
        drop(exclusive(dir.path()).unwrap()); // creates LOCK
        let first = shared(dir.path()).unwrap();
        let second = shared(dir.path()).unwrap();
        assert_locked(exclusive(dir.path()), dir.path());
        assert_eq!(probe(dir.path(), LockMode::Shared), "acquired");
        assert_eq!(probe(dir.path(), LockMode::Exclusive), "locked");
        // One holder left: the shared descriptor and its lock stay.
        drop(first);
        assert_locked(exclusive(dir.path()), dir.path());
        assert_eq!(probe(dir.path(), LockMode::Exclusive), "locked");
        drop(second);
        assert_eq!(probe(dir.path(), LockMode::Exclusive), "acquired");
        drop(exclusive(dir.path()).unwrap());

        // A child holding a shared lock admits shared, refuses exclusive.
        let mut holder = Probe::spawn(dir.path(), LockMode::Shared, true);
        assert_eq!(holder.outcome(), "acquired");
        let third = shared(dir.path()).unwrap();
        drop(third);
        assert_locked(exclusive(dir.path()), dir.path());
        holder.finish();
        drop(exclusive(dir.path()).unwrap());
    }

    #[test]
    fn shared_and_exclusive_conflict_both_ways() {
        let dir = tempfile::tempdir().unwrap();
        let writer = exclusive(dir.path()).unwrap();
        assert_locked(shared(dir.path()), dir.path());
        drop(writer);
        let reader = shared(dir.path()).unwrap();
        assert_locked(exclusive(dir.path()), dir.path());
        drop(reader);
        drop(exclusive(dir.path()).unwrap());
    }

    #[test]
    fn shared_never_creates_the_lock_file() {
        let dir = tempfile::tempdir().unwrap();
        let names = || std::fs::read_dir(dir.path()).unwrap().count();
        let first = shared(dir.path()).unwrap();
        let second = shared(dir.path()).unwrap();
        assert_eq!(names(), 0, "a shared lock created a file");
        assert_locked(exclusive(dir.path()), dir.path());
        drop(first);
        assert_locked(exclusive(dir.path()), dir.path());
        drop(second);
        assert_eq!(names(), 0);
        let writer = exclusive(dir.path()).unwrap();
        assert!(dir.path().join(LOCK_FILE).is_file());
        assert_locked(shared(dir.path()), dir.path());
        drop(writer);
    }

    #[test]
    fn shared_without_a_lock_file_is_in_process_only() {
        // As documented: with no LOCK file (no writer has ever opened the
        // directory), a shared lock excludes only this process's writers.
        let dir = tempfile::tempdir().unwrap();
        let reader = shared(dir.path()).unwrap();
        assert_locked(exclusive(dir.path()), dir.path());
        assert_eq!(probe(dir.path(), LockMode::Exclusive), "acquired");
        drop(reader);
    }

    #[test]
    fn drop_releases() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [LockMode::Exclusive, LockMode::Shared, LockMode::Exclusive] {
            let lock = DirLock::acquire(dir.path(), mode).unwrap();
            drop(lock);
        }
        let metadata = std::fs::metadata(dir.path()).unwrap();
        let id = (metadata.dev(), metadata.ino());
        let first = shared(dir.path()).unwrap();
        let second = shared(dir.path()).unwrap();
        drop(first);
        assert!(REGISTRY.lock().contains_key(&id));
        drop(second);
        assert!(!REGISTRY.lock().contains_key(&id), "the last holder left an entry");
        drop(exclusive(dir.path()).unwrap());
        assert!(!REGISTRY.lock().contains_key(&id));
        assert_eq!(probe(dir.path(), LockMode::Exclusive), "acquired");
    }

    #[test]
    fn paths_naming_the_same_directory_collide() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("log");
        std::fs::create_dir(&dir).unwrap();
        let link = parent.path().join("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        let dotted: PathBuf = dir.join(".");

        let lock = exclusive(&dir).unwrap();
        assert_locked(exclusive(&link), &link);
        assert_locked(shared(&link), &link);
        assert_locked(exclusive(&dotted), &dotted);
        assert_eq!(probe(&link, LockMode::Exclusive), "locked");
        drop(lock);

        let lock = exclusive(&link).unwrap();
        assert_locked(exclusive(&dir), &dir);
        drop(lock);
        drop(exclusive(&dir).unwrap());
    }

    #[test]
    fn bad_directories_are_io_errors() {
        let parent = tempfile::tempdir().unwrap();
        let missing = parent.path().join("missing");
        let file = parent.path().join("file");
        std::fs::write(&file, b"").unwrap();
        let lock_is_dir = parent.path().join("lock-is-dir");
        std::fs::create_dir_all(lock_is_dir.join(LOCK_FILE)).unwrap();
        for mode in [LockMode::Exclusive, LockMode::Shared] {
            for dir in [&missing, &file] {
                match DirLock::acquire(dir, mode) {
                    Err(Error::Io { .. }) => {}
                    other => panic!("{mode:?} on {}: {}", dir.display(), outcome(&other)),
                }
            }
        }
        assert!(!missing.exists());
        match exclusive(&lock_is_dir) {
            Err(Error::Io {
                op: "open lock file", ..
            }) => {}
            other => panic!("LOCK is a directory: {}", outcome(&other)),
        }
        // A shared lock may or may not be taken on a directory's descriptor;
        // either way it must not panic, and must leave the registry clean.
        drop(shared(&lock_is_dir));
        drop(exclusive(parent.path()).unwrap());
    }
}
