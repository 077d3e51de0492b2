//! Disk-full behaviour with real processes: a file system that is really
//! full, and full disks emulated with `RLIMIT_FSIZE`.
//!
//! - A child runs on a 3 MiB tmpfs in a mount namespace of its own and
//!   appends until the segment file's next allocation step fails with
//!   `ENOSPC` (mmap invariant 5: nothing is written or pre-faulted past the
//!   allocation, so a full disk is an error, never SIGBUS). The directory is
//!   copied out before the namespace ends, and the parent reopens the copy
//!   and checks every reported record.
//!
//! The test binary re-executes itself as a child (`common::child`) through
//! `sh -c "trap '' XFSZ; ...; exec <test binary> ..."`, so the child ignores
//! SIGXFSZ and growing a file past the limit fails with `EFBIG` instead of
//! killing it. `RLIMIT_FSIZE` limits the size of each file, not the total, so:
//!
//! - To make the *second* segment fail while the first works, the child
//!   lowers its own limit after opening the log (with `setrlimit`; `ulimit`
//!   in the shell cannot do it, because opening the log already sizes the
//!   active segment's file to a whole segment). It then appends until a roll fails, and checks that
//!   the error is `Error::Io`, nothing was appended, the log still reads,
//!   further appends fail the same way (no panic, no SIGBUS), appends that
//!   still fit succeed, and the log closes cleanly. The parent then reopens
//!   the directory without the limit and checks every reported record.
//! - With the limit set by `ulimit -f` before the child starts, opening a
//!   log fails when it sizes the active segment's file; the directory must
//!   stay recoverable, after a clean close and after a crash.

#![cfg(target_os = "linux")]

mod common;

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use replog::codec::{BATCH_HEADER_BYTES, RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES};
use replog::{Error, Log, Options, SyncPolicy};

use common::{child, records};

const APPEND_CHILD: &str = "disk_full_append_child";
const OPEN_CHILD: &str = "disk_full_open_child";
const STEP_CHILD: &str = "disk_full_step_child";
/// Segment size of the step child: larger than several allocation steps.
const STEP_SEGMENT_BYTES: u64 = 16 << 20;
/// The size of the step child's file system: within its first segment,
/// past its first allocation steps.
const STEP_FS_BYTES: u64 = 3 << 20;
const ENV_LIMIT: &str = "REPLOG_DISK_FULL_LIMIT_BYTES";

const SEGMENT_BYTES: u64 = 64 << 10;
/// Every big record's value is this long.
const RECORD_BYTES: usize = 1000;
/// The file size limit the append child sets itself, well under a segment
/// and well over the index and checkpoint files it writes.
const APPEND_LIMIT_BYTES: u64 = 16 << 10;
/// SIGXFSZ on Linux (x86, ARM, RISC-V; not MIPS or Alpha).
const SIGXFSZ: u32 = 25;

fn options() -> Options {
    Options::default()
        .segment_bytes(SEGMENT_BYTES)
        .index_interval_bytes(1024)
        .sync(SyncPolicy::Always)
}

/// A big record: its offset, then filler derived from it.
fn big(offset: u64) -> Vec<u8> {
    let mut value = format!("{offset:08}:").into_bytes();
    value.extend((0..RECORD_BYTES - value.len()).map(|i| b'a' + ((offset as usize * 7 + i) % 26) as u8));
    value
}

/// A small record, appended into the space left when a roll fails.
fn small(offset: u64) -> Vec<u8> {
    format!("s{offset}").into_bytes()
}

/// Encoded size of a batch of one record of `len` bytes (no key).
fn one_record_batch(len: usize) -> u64 {
    (BATCH_HEADER_BYTES + RECORD_HEADER_BYTES + len) as u64
}

/// The soft `RLIMIT_FSIZE` of this process, in bytes, from /proc.
fn file_size_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").expect("reading /proc/self/limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max file size"))
        .expect("Max file size line");
    let soft = line["Max file size".len()..].split_whitespace().next()?;
    soft.parse().ok() // "unlimited" is None
}

/// Whether this process ignores SIGXFSZ, from /proc.
fn ignores_sigxfsz() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").expect("reading /proc/self/status");
    let mask = status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .expect("SigIgn line");
    let mask = u64::from_str_radix(mask.trim(), 16).expect("SigIgn mask");
    mask & (1 << (SIGXFSZ - 1)) != 0
}

/// Lowers this process's soft `RLIMIT_FSIZE` (rustix's `process` feature is
/// enabled for tests only).
fn lower_file_size_limit(bytes: u64) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Fsize);
    assert!(
        limit.maximum.is_none_or(|max| bytes <= max),
        "hard limit {:?} too low",
        limit.maximum
    );
    setrlimit(
        Resource::Fsize,
        Rlimit {
            current: Some(bytes),
            maximum: limit.maximum,
        },
    )
    .expect("setrlimit");
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    files.sort();
    files
}

fn leftover_temporary_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".tmp"))
        .collect()
}

/// Checks that `log` holds exactly `expected` (by offset), by `read` and by `iter`.
fn assert_holds(log: &Log, expected: &[Vec<u8>], context: &str) {
    assert_eq!(log.start_offset(), 0, "{context}");
    records::assert_holds(log, 0..expected.len() as u64, context, |record, offset| {
        assert_eq!(
            record.value()[..],
            expected[offset as usize][..],
            "{context}: value at {offset}"
        )
    });
}

/// Asserts `result` is the `Error::Io` of a file grown past `RLIMIT_FSIZE`.
fn assert_disk_full<T: std::fmt::Debug>(result: replog::Result<T>, what: &str) -> Error {
    assert_io_error(result, ErrorKind::StorageFull, what)
}

fn assert_file_too_large<T: std::fmt::Debug>(result: replog::Result<T>, what: &str) -> Error {
    assert_io_error(result, ErrorKind::FileTooLarge, what)
}

/// Checks that `result` is an `Error::Io` of `kind` (`ENOSPC`: a full file
/// system; `EFBIG`: past `RLIMIT_FSIZE`), and returns it.
fn assert_io_error<T: std::fmt::Debug>(result: replog::Result<T>, kind: ErrorKind, what: &str) -> Error {
    match result {
        Err(error @ Error::Io { .. }) => {
            let Error::Io { source, .. } = &error else {
                unreachable!()
            };
            assert_eq!(source.kind(), kind, "{what}: expected {kind:?}, got {error}");
            error
        }
        Err(other) => panic!("{what}: expected Error::Io, got {other:?}"),
        Ok(value) => panic!("{what}: expected Error::Io, got Ok({value:?})"),
    }
}

// ---------------------------------------------------------------------------
// The children.

/// Child: opens the log, lowers its file size limit below a segment, appends
/// until a roll fails, and checks the log's behaviour after that. Prints
/// `ACK <offset> big|small` per appended record, `ERROR <error>` for the
/// first failure and `CLOSED` at the end. Does nothing unless a parent test
/// started it (see `common::child`).
#[test]
fn disk_full_append_child() {
    let Some(dir) = child::dir(APPEND_CHILD) else {
        return;
    };
    let limit: u64 = std::env::var(ENV_LIMIT).unwrap().parse().unwrap();
    assert!(ignores_sigxfsz(), "the shell did not make the child ignore SIGXFSZ");
    let log = Log::open(&dir, options()).expect("open without a limit");
    lower_file_size_limit(limit);
    assert_eq!(file_size_limit(), Some(limit), "RLIMIT_FSIZE after setrlimit");
    println!("\nLIMIT {limit}"); // on a line of its own, after libtest's "test ... "

    let mut expected: Vec<Vec<u8>> = Vec::new();
    let error = loop {
        let offset = expected.len() as u64;
        assert!(
            offset < 10_000,
            "appends never failed under a {limit}-byte file size limit"
        );
        match log.append(big(offset)) {
            Ok(got) => {
                assert_eq!(got, offset);
                println!("ACK {offset} big");
                expected.push(big(offset));
            }
            Err(error) => break error,
        }
    };
    println!("ERROR {error}");
    assert_file_too_large::<()>(Err(error), "the append that needed a new segment");

    // The first segment filled up exactly as the format says it should.
    let used = SEGMENT_HEADER_BYTES as u64 + expected.len() as u64 * one_record_batch(RECORD_BYTES);
    assert!(used <= SEGMENT_BYTES && SEGMENT_BYTES - used < one_record_batch(RECORD_BYTES));
    // Nothing was appended and nothing was left behind.
    assert_holds(&log, &expected, "after the failed roll");
    assert_eq!(segment_files(&dir).len(), 1, "a failed roll left a segment file");
    assert!(
        leftover_temporary_files(&dir).is_empty(),
        "a failed roll left a temporary file"
    );

    // Further appends that need a new segment fail the same way.
    let offset = expected.len() as u64;
    assert_file_too_large(log.append(big(offset)), "a second big append");
    assert_file_too_large(log.append_batch([big(offset), big(offset + 1)]), "a batch append");
    assert_holds(&log, &expected, "after more failed rolls");

    // A record that still fits in the first segment is accepted.
    let remaining = SEGMENT_BYTES - used;
    if remaining >= one_record_batch(small(offset).len()) {
        assert_eq!(log.append(small(offset)).expect("a small append that fits"), offset);
        println!("ACK {offset} small");
        expected.push(small(offset));
        assert_file_too_large(log.append(big(offset + 1)), "a big append after the small one");
    }
    log.sync().expect("sync after failed rolls");
    assert_holds(&log, &expected, "before close");
    log.close().expect("close under the file size limit");
    assert!(leftover_temporary_files(&dir).is_empty(), "close left a temporary file");
    println!("CLOSED");
}

/// Child: runs on a file system of `STEP_FS_BYTES` (a tmpfs private to it)
/// and opens a log of 16 MiB segments there, then appends until the append
/// that needs the next allocation step of the segment file fails with
/// `ENOSPC`. Prints `ACK <offset>` per record and `CLOSED`. The script
/// around it copies the directory out before the file system goes away.
#[test]
fn disk_full_step_child() {
    let Some(dir) = child::dir(STEP_CHILD) else {
        return;
    };
    let log = Log::open(&dir, options().segment_bytes(STEP_SEGMENT_BYTES)).expect("open on the small file system");
    // On a line of its own: the harness prints the test's name without one.
    println!("\nOPEN");
    let mut appended = 0u64;
    let error = loop {
        assert!(appended < 100_000, "appends never failed");
        match log.append(big(appended)) {
            Ok(got) => {
                assert_eq!(got, appended);
                println!("ACK {appended}");
                appended += 1;
            }
            Err(error) => break error,
        }
    };
    println!("ERROR {error}");
    assert_disk_full::<()>(Err(error), "the append that needed the next allocation step");
    assert!(
        appended * one_record_batch(RECORD_BYTES) > STEP_FS_BYTES / 2,
        "failed long before the file system was full"
    );
    assert_disk_full(log.append(big(appended)), "the next append");
    let expected: Vec<Vec<u8>> = (0..appended).map(big).collect();
    assert_holds(&log, &expected, "after the failed step");
    log.close().expect("close on a full file system");
    println!("CLOSED");
}

/// Issue 11: a segment file is allocated in steps ahead of the writer, so a
/// full disk is the error of the append that needed the next step (not a
/// SIGBUS, and not a failure at open of a whole segment's worth). Run on a
/// real full file system: a tmpfs of `STEP_FS_BYTES`.
#[test]
fn append_fails_cleanly_when_the_next_allocation_step_fails() {
    let mount = tempfile::tempdir().unwrap();
    let copy = tempfile::tempdir().unwrap();
    let script = format!(
        "mount -t tmpfs -o size={STEP_FS_BYTES} tmpfs \"$REPLOG_CHILD_DIR\" || exit 98; \
         \"$0\" \"$@\"; status=$?; cp -a \"$REPLOG_CHILD_DIR/.\" \"{}\" || exit 97; exit $status",
        copy.path().display()
    );
    let mut process = child::spawn_in_mount_namespace(&script, STEP_CHILD, mount.path(), &[]);
    let output = wait_for_child(&mut process);
    let context = output.describe();
    assert!(output.status.success(), "the child's checks failed: {context}");
    assert!(output.stdout.contains("\nCLOSED\n"), "{context}");
    let acked = output.stdout.lines().filter(|l| l.starts_with("ACK ")).count() as u64;
    let log = Log::open(copy.path(), options()).unwrap();
    let mut expected: Vec<Vec<u8>> = (0..acked).map(big).collect();
    assert_holds(&log, &expected, "reopened on a disk with room");
    for _ in 0..100 {
        let offset = expected.len() as u64;
        assert_eq!(log.append(big(offset)).unwrap(), offset);
        expected.push(big(offset));
    }
    assert_holds(&log, &expected, "after appending again");
}

/// Child: started under `ulimit -f`, tries to open the log (twice), which
/// must fail cleanly with `Error::Io`. Prints `LIMIT <bytes>`, then
/// `OPEN FAILED <error>` per attempt, then `DONE`. Does nothing unless a
/// parent test started it.
#[test]
fn disk_full_open_child() {
    let Some(dir) = child::dir(OPEN_CHILD) else {
        return;
    };
    assert!(ignores_sigxfsz(), "the shell did not make the child ignore SIGXFSZ");
    let limit = file_size_limit().expect("the shell did not set a file size limit");
    println!("\nLIMIT {limit}"); // on a line of its own, after libtest's "test ... "
    assert!(
        limit < SEGMENT_BYTES,
        "limit {limit} does not stop preallocating a segment"
    );
    for _ in 0..2 {
        let error = assert_file_too_large(Log::open(&dir, options()), "open under the limit");
        println!("OPEN FAILED {error}");
    }
    println!("DONE");
}

// ---------------------------------------------------------------------------
// Running a child.

struct Output {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Output {
    fn describe(&self) -> String {
        format!(
            "child {}\nstdout:\n{}\nstderr:\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Runs child test `test` on `dir` through `sh`, with SIGXFSZ ignored and
/// `ulimit -f` set to `ulimit_blocks` if given. Kills it after a minute.
fn run_child(test: &str, dir: &Path, ulimit_blocks: Option<u64>, envs: &[(&str, String)]) -> Output {
    let ulimit = ulimit_blocks.map_or(String::new(), |blocks| format!("ulimit -f {blocks} || exit 99; "));
    let mut process = child::spawn_through_shell(&format!("trap '' XFSZ; {ulimit}"), test, dir, envs);
    wait_for_child(&mut process)
}

/// Collects a child's output; kills it after a minute.
fn wait_for_child(process: &mut std::process::Child) -> Output {
    let stdout = child::read_to_end(process.stdout.take().unwrap());
    let stderr = child::read_to_end(process.stderr.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = process.try_wait().expect("waiting for the child") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = process.kill();
            break process.wait().expect("waiting for the killed child");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

// ---------------------------------------------------------------------------
// The tests.

#[test]
fn append_fails_cleanly_when_a_new_segment_cannot_be_allocated() {
    let dir = tempfile::tempdir().unwrap();
    let output = run_child(
        APPEND_CHILD,
        dir.path(),
        None,
        &[(ENV_LIMIT, APPEND_LIMIT_BYTES.to_string())],
    );
    let context = output.describe();
    assert!(output.status.success(), "the child's checks failed: {context}");
    assert!(
        output.stdout.contains("\nCLOSED\n"),
        "the child did not finish: {context}"
    );
    assert_eq!(output.stdout.matches("ERROR ").count(), 1, "{context}");

    // Rebuild what the child reported, in order.
    let mut expected = Vec::new();
    for line in output.stdout.lines().filter_map(|l| l.strip_prefix("ACK ")) {
        let (offset, kind) = line.split_once(' ').unwrap();
        let offset: u64 = offset.parse().unwrap();
        assert_eq!(offset, expected.len() as u64, "{context}");
        expected.push(if kind == "big" { big(offset) } else { small(offset) });
    }
    assert!(
        expected.len() > 10,
        "the child appended too little before failing: {context}"
    );

    // Reopened without the limit: everything is there, and the log grows again.
    let log = Log::open(dir.path(), options()).unwrap();
    assert!(log.recovery_report().clean_shutdown, "{:?}", log.recovery_report());
    assert_holds(&log, &expected, "reopened without the limit");
    for _ in 0..200 {
        let offset = expected.len() as u64;
        assert_eq!(log.append(big(offset)).unwrap(), offset);
        expected.push(big(offset));
    }
    assert!(segment_files(dir.path()).len() >= 3, "appends did not roll segments");
    assert_holds(&log, &expected, "after appending again");
    log.close().unwrap();
    let log = Log::open(dir.path(), options()).unwrap();
    assert_holds(&log, &expected, "reopened at the end");
}

/// Opening a log preallocates its active segment; under a file size limit
/// that fails. The directory must be unharmed, whether the log was closed
/// cleanly or crashed before.
#[test]
fn open_fails_cleanly_when_the_active_segment_cannot_be_allocated() {
    for crashed in [false, true] {
        let context = if crashed {
            "after a crash"
        } else {
            "after a clean close"
        };
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), options()).unwrap();
        let mut expected = Vec::new();
        for offset in 0..10 {
            assert_eq!(log.append(big(offset)).unwrap(), offset);
            expected.push(big(offset));
        }
        let data_bytes = SEGMENT_HEADER_BYTES as u64 + 10 * one_record_batch(RECORD_BYTES);
        if crashed {
            log.simulate_crash(); // the segment stays preallocated to full size
        } else {
            log.close().unwrap(); // the segment is trimmed to its data
        }

        // `ulimit -f` counts 512-byte blocks in dash and 1024-byte blocks in
        // bash: either way the limit lies between the data and a segment.
        let blocks = 40;
        assert!(blocks * 512 > data_bytes && blocks * 1024 < SEGMENT_BYTES);
        let output = run_child(OPEN_CHILD, dir.path(), Some(blocks), &[]);
        let described = output.describe();
        assert!(
            output.status.success(),
            "{context}: the child's checks failed: {described}"
        );
        assert_eq!(
            output.stdout.matches("OPEN FAILED ").count(),
            2,
            "{context}: {described}"
        );
        assert!(output.stdout.contains("\nDONE\n"), "{context}: {described}");

        let log = Log::open(dir.path(), options()).unwrap_or_else(|e| panic!("{context}: reopen: {e}"));
        assert_eq!(
            log.recovery_report().truncated_at,
            None,
            "{context}: {:?}",
            log.recovery_report()
        );
        assert_holds(&log, &expected, context);
        for _ in 0..100 {
            let offset = expected.len() as u64;
            assert_eq!(log.append(big(offset)).unwrap(), offset);
            expected.push(big(offset));
        }
        assert_holds(&log, &expected, context);
        assert!(segment_files(dir.path()).len() >= 2, "{context}: appends did not roll");
    }
}
