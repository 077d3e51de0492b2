//! Re-executing the test binary as a child process.
//!
//! A child is a `#[test]` function of the same binary that returns at once
//! when it runs with the rest of the suite, and does its work only when a
//! parent test re-executes the binary to run it alone (with `--exact`). It
//! starts with
//!
//! ```ignore
//! let Some(dir) = common::child::dir("my_child") else {
//!     return;
//! };
//! ```
//!
//! and the parent starts it with `common::child::spawn("my_child", dir, envs)`
//! (or [`spawn_through_shell`]). libtest has printed `test my_child ... `
//! without a newline when the child's own output starts: a child that
//! prints lines for its parent ends that line first.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;

/// Set in a child's environment to the name of the child test it runs.
const ENV_TEST: &str = "REPLOG_CHILD_TEST";
/// Set in a child's environment to the directory it works in.
const ENV_DIR: &str = "REPLOG_CHILD_DIR";

/// The directory the parent gave this process if it runs as child test
/// `test`; `None` when `test` runs as an ordinary test (then it should
/// return at once).
pub fn dir(test: &str) -> Option<PathBuf> {
    if std::env::var_os(ENV_TEST)? != test {
        return None;
    }
    let dir = std::env::var_os(ENV_DIR).unwrap_or_else(|| panic!("child {test}: {ENV_DIR} is not set"));
    Some(PathBuf::from(dir))
}

/// Re-executes this test binary to run only child test `test`, on `dir`,
/// with `envs` added to its environment. Its stdin is null, its stdout and
/// stderr are piped.
pub fn spawn(test: &str, dir: &Path, envs: &[(&str, String)]) -> Child {
    start(Command::new(exe()), test, dir, envs)
}

/// As [`spawn`], through `/bin/sh -c "<setup>exec <test binary> ..."`, so
/// that what `setup` does in the shell (`trap`, `ulimit`) applies to the
/// child. `setup` is empty or ends with a separator (`; `).
pub fn spawn_through_shell(setup: &str, test: &str, dir: &Path, envs: &[(&str, String)]) -> Child {
    let mut shell = Command::new("/bin/sh");
    shell.arg("-c").arg(format!("{setup}exec \"$0\" \"$@\"")).arg(exe());
    start(shell, test, dir, envs)
}

/// Starts child test `test` in a new user and mount namespace (`unshare
/// --user --map-root-user --mount`, which needs no privilege where
/// unprivileged user namespaces are allowed), through `/bin/sh -c script`
/// with this binary as `$0` and its arguments as `"$@"`, so the script can
/// mount a file system private to the child before running it.
pub fn spawn_in_mount_namespace(script: &str, test: &str, dir: &Path, envs: &[(&str, String)]) -> Child {
    let mut command = Command::new("unshare");
    command
        .args(["--user", "--map-root-user", "--mount", "/bin/sh", "-c", script])
        .arg(exe());
    start(command, test, dir, envs)
}

/// Reads `output` (a child's stdout or stderr) to its end on a thread of
/// its own; the thread returns the text (lossily decoded).
pub fn read_to_end(mut output: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = output.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

fn exe() -> PathBuf {
    std::env::current_exe().expect("current_exe")
}

/// Adds the arguments that run only `test` (to `command`, which runs this
/// binary), the child's environment and its standard streams, and starts it.
fn start(mut command: Command, test: &str, dir: &Path, envs: &[(&str, String)]) -> Child {
    command
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(ENV_TEST, test)
        .env(ENV_DIR, dir)
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning child test {test}: {e}"))
}
