//! The directory lock, through the public API: one open log per directory,
//! in this process or another, and no spurious `Locked` because a child
//! process was spawned while a log was closed and reopened.
//!
//! The cross-process test re-executes this test binary as a child (the
//! `lock_child` "test", which does nothing unless `REPLOG_LOCK_CHILD_DIR` is
//! set); the child tries to open the log and prints the outcome.

#![cfg(unix)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use replog::{Error, Log, Options};

const CHILD_TEST: &str = "lock_child";
const ENV_DIR: &str = "REPLOG_LOCK_CHILD_DIR";
const PREFIX: &str = "CHILD: ";

/// Threads that spawn children while the log is reopened.
const SPAWNERS: usize = 2;
/// Children each spawner spawns, at least.
const SPAWNS: u64 = 200;
/// How long the log is reopened in a loop, at least.
const REOPEN_FOR: Duration = Duration::from_secs(3);

fn options() -> Options {
    Options::default().segment_bytes(1 << 16)
}

/// The acceptance test: spawning child processes (fork, then exec,
/// inside `Command::spawn`) in a loop while another thread closes and
/// reopens a log never makes an open fail with `Locked`. Between its fork
/// and its exec a child holds copies of all the parent's descriptors, the
/// lock file's included; an `flock` lock would go with them.
#[test]
fn spawning_children_while_reopening_never_sees_locked() {
    let dir = tempfile::tempdir().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let spawned = Arc::new(AtomicU64::new(0));
    let spawners: Vec<_> = (0..SPAWNERS)
        .map(|_| {
            let stop = Arc::clone(&stop);
            let spawned = Arc::clone(&spawned);
            std::thread::spawn(move || {
                let mut n = 0;
                while n < SPAWNS || !stop.load(Ordering::Relaxed) {
                    let status = Command::new("true")
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status()
                        .expect("spawning `true`");
                    assert!(status.success(), "`true` failed: {status}");
                    n += 1;
                    spawned.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    let start = Instant::now();
    let (mut opens, mut locked) = (0u64, 0u64);
    let mut first_locked = None;
    while start.elapsed() < REOPEN_FOR {
        match Log::open(dir.path(), options()) {
            Ok(log) => {
                log.append(opens.to_le_bytes()).unwrap();
                log.close().unwrap();
                opens += 1;
            }
            Err(Error::Locked { .. }) => {
                locked += 1;
                first_locked.get_or_insert(opens);
            }
            Err(e) => panic!("open {opens}: {e}"),
        }
    }
    stop.store(true, Ordering::Relaxed);
    for spawner in spawners {
        spawner.join().unwrap();
    }
    let spawned = spawned.load(Ordering::Relaxed);
    eprintln!("{opens} opens, {locked} refused as Locked, {spawned} children spawned");
    assert_eq!(
        locked,
        0,
        "{locked} of {} opens failed with Locked (the first after {first_locked:?} opens) \
         while {spawned} children were spawned",
        opens + locked
    );
    let log = Log::open(dir.path(), options()).unwrap();
    assert_eq!(log.next_offset(), opens);
}

#[test]
fn a_second_open_in_process_is_locked_through_any_path() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("log");
    let log = Log::open(&dir, options()).unwrap();
    log.append(b"a").unwrap();
    let link = parent.path().join("link");
    std::os::unix::fs::symlink(&dir, &link).unwrap();
    for path in [&dir, &link] {
        match Log::open(path, options()) {
            Err(Error::Locked { dir }) => assert_eq!(&dir, path),
            Err(e) => panic!("second open through {}: {e}", path.display()),
            Ok(_) => panic!("second open through {}: opened", path.display()),
        }
    }
    // The refused opens did not release the first one's lock.
    assert_eq!(child_open(&dir), "locked");
    log.append(b"b").unwrap();
    log.close().unwrap();
    let log = Log::open(&link, options()).unwrap();
    assert_eq!(log.next_offset(), 2);
}

#[test]
fn another_process_cannot_open_until_the_log_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), options()).unwrap();
    assert_eq!(child_open(dir.path()), "locked");
    log.close().unwrap();
    assert_eq!(child_open(dir.path()), "opened");
    // Dropping without close releases the lock as well.
    let log = Log::open(dir.path(), options()).unwrap();
    assert_eq!(child_open(dir.path()), "locked");
    drop(log);
    assert_eq!(child_open(dir.path()), "opened");
}

/// The child side of [`child_open`].
#[test]
fn lock_child() {
    let Some(dir) = std::env::var_os(ENV_DIR) else {
        return;
    };
    let outcome = match Log::open(&dir, options()) {
        Ok(log) => {
            log.close().unwrap();
            "opened".to_owned()
        }
        Err(Error::Locked { .. }) => "locked".to_owned(),
        Err(e) => format!("error {e}"),
    };
    // libtest has printed "test lock_child ... " without a newline: end it.
    println!("\n{PREFIX}{outcome}");
}

/// Opens the log in `dir` from a child process: "opened", "locked" or
/// "error ...".
fn child_open(dir: &Path) -> String {
    let exe = std::env::current_exe().expect("current_exe");
    let output = Command::new(exe)
        .args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
        .env(ENV_DIR, dir)
        .stdin(Stdio::null())
        .output()
        .expect("running the child");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "child failed: {}\nstdout: {stdout}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .find_map(|line| line.strip_prefix(PREFIX))
        .unwrap_or_else(|| panic!("the child printed no outcome: {stdout}"))
        .to_owned()
}
