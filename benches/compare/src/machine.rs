//! What the results were measured on: CPU, memory, kernel, and the file
//! system under the temporary directories.

use std::ffi::CStr;
use std::fs;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory: String,
    pub kernel: String,
    pub fs: String,
    pub rustc: String,
    pub replog: String,
    /// Load average when the run started, and when it ended.
    pub load_at_start: String,
    pub load_at_end: String,
    /// The block device under the stores, as /proc/diskstats names it.
    pub device: Option<String>,
    /// Other processes' disk traffic just before the run, and just after.
    pub disk_before: String,
    pub disk_after: String,
    /// Free page reporting at the start of the run (see [`PageReporting`]),
    /// and the memory reported to the host during the run.
    pub reporting: Option<PageReporting>,
    pub reported_during_kib: Option<u64>,
}

/// The guest kernel's free page reporting (`virtio_balloon`), when the
/// machine is a VM that has it: free memory is handed back to the host,
/// and the next first touch of each page of it costs a fault in the host
/// as well. Every fresh page-cache page a log maps pays that, so a row that
/// writes fresh logs is as fast as the memory the host gives back.
pub struct PageReporting {
    /// The smallest free block reported, as a power of two of pages.
    pub order: String,
    /// How long memory stays free before it is reported (0: at once).
    pub min_free_ms: String,
    /// KiB reported to the host since boot.
    pub reported_kib: u64,
}

impl PageReporting {
    const DIR: &str = "/sys/module/page_reporting/parameters";

    /// The reporting settings and counter, or `None` without reporting.
    pub fn probe() -> Option<PageReporting> {
        let read = |name: &str| {
            fs::read_to_string(Path::new(Self::DIR).join(name))
                .ok()
                .map(|s| s.trim().to_owned())
        };
        Some(PageReporting {
            reported_kib: read("reported_kib")?.parse().ok()?,
            order: read("page_reporting_order").unwrap_or_else(|| "unknown".to_owned()),
            min_free_ms: read("min_free_ms").unwrap_or_else(|| "unknown".to_owned()),
        })
    }

    /// One line for the machine section: the settings and what the run
    /// gave back (`reported_during_kib`).
    pub fn describe(&self, reported_during_kib: Option<u64>) -> String {
        let during = reported_during_kib.map_or_else(
            || "unknown".to_owned(),
            |kib| format!("{:.1} GiB", kib as f64 / (1 << 20) as f64),
        );
        format!(
            "on (order {}, min_free_ms {}); memory reported to the host during the run: {during}",
            self.order, self.min_free_ms
        )
    }
}

impl Machine {
    pub fn probe(dir: &Path) -> Machine {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|line| line.strip_prefix("model name").and_then(|rest| rest.split_once(':')))
            .map(|(_, name)| name.trim().to_owned())
            .unwrap_or_else(|| "unknown".to_owned());
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        let memory = fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| m.lines().find(|l| l.starts_with("MemTotal:")).map(str::to_owned))
            .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<u64>().ok()))
            .map_or_else(
                || "unknown".to_owned(),
                |kb| format!("{:.1} GiB", kb as f64 / (1 << 20) as f64),
            );
        let mount = mount_of(dir);
        let device = mount.as_ref().and_then(|m| block_device(&m.device));
        let rustc = std::process::Command::new("rustc")
            .arg("--version")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map_or_else(|| "unknown".to_owned(), |s| s.trim().to_owned());
        Machine {
            cpu,
            cores,
            memory,
            kernel: kernel(),
            fs: filesystem(dir, mount.as_ref()),
            rustc,
            replog: replog_revision(),
            load_at_start: load_average(),
            load_at_end: String::new(),
            device: device.clone(),
            disk_before: disk_activity(device.as_deref()),
            disk_after: String::new(),
            reporting: PageReporting::probe(),
            reported_during_kib: None,
        }
    }

    /// Records the load and the disk traffic after the run.
    pub fn finish(&mut self) {
        self.load_at_end = load_average();
        // Before the 2 s of watching the disk, which is not the run.
        let start = self.reporting.as_ref().map(|r| r.reported_kib);
        let end = PageReporting::probe().map(|r| r.reported_kib);
        self.reported_during_kib = start.zip(end).map(|(start, end)| end.saturating_sub(start));
        self.disk_after = disk_activity(self.device.as_deref());
    }
}

/// Requests per second to `device` over two seconds in which this program
/// does nothing: writes, flushes (each `fsync` issues one on most devices) and
/// megabytes written. The durable rows compete with all of it.
pub fn disk_activity(device: Option<&str>) -> String {
    let Some(device) = device else {
        return "unknown (device not found)".to_owned();
    };
    // Fields after the name: 5 writes completed, 7 sectors written, 16 flushes completed.
    let read = || -> Option<(u64, u64, u64)> {
        let stats = fs::read_to_string("/proc/diskstats").ok()?;
        let f: Vec<&str> = stats.lines().map(str::split_whitespace).find_map(|mut w| {
            let name = w.nth(2)?;
            (name == device).then(|| w.collect())
        })?;
        let field = |n: usize| f.get(n - 1).and_then(|v| v.parse::<u64>().ok());
        Some((field(5)?, field(7)?, field(16).unwrap_or(0)))
    };
    let secs = 2.0;
    let Some(before) = read() else {
        return format!("unknown ({device} not in /proc/diskstats)");
    };
    std::thread::sleep(std::time::Duration::from_secs_f64(secs));
    let Some(after) = read() else {
        return "unknown".to_owned();
    };
    format!(
        "{:.0} writes/s, {:.0} flushes/s, {:.1} MB/s written",
        (after.0 - before.0) as f64 / secs,
        (after.2 - before.2) as f64 / secs,
        (after.1 - before.1) as f64 * 512.0 / secs / 1e6
    )
}

/// The 1, 5 and 15 minute load averages, from /proc/loadavg.
pub fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" / "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// The commit of the replog checkout this crate was built in, and which of
/// the files that make up the library had uncommitted changes at run time.
fn replog_revision() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(&root)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
    };
    let Some(commit) = git(&["log", "-1", "--format=%h (%s)"]) else {
        return "unknown (not a git checkout)".to_owned();
    };
    let dirty = git(&["status", "--porcelain", "--", "src", "Cargo.toml"]).unwrap_or_default();
    let dirty: Vec<&str> = dirty.lines().filter_map(|l| l.get(3..)).collect();
    if dirty.is_empty() {
        format!("commit {}", commit.trim())
    } else {
        format!(
            "commit {} plus uncommitted changes to {}",
            commit.trim(),
            dirty.join(", ")
        )
    }
}

fn kernel() -> String {
    // SAFETY: `utsname` is plain old data, so all-zeros is a valid value;
    // `uname` fills it in and NUL-terminates each field.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `uts` is a valid, writable `utsname` for the duration of the call.
    if unsafe { libc::uname(&mut uts) } != 0 {
        return "unknown".to_owned();
    }
    // SAFETY: `uname` succeeded, so `release` holds a NUL-terminated string.
    let release = unsafe { CStr::from_ptr(uts.release.as_ptr()) };
    format!("Linux {}", release.to_string_lossy())
}

/// The file system type (from `statfs`) and the device, mount point and
/// options of the mount that holds `dir`.
fn filesystem(dir: &Path, mount: Option<&Mount>) -> String {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let mut path = dir.as_os_str().as_encoded_bytes().to_vec();
    path.push(0);
    // SAFETY: `statfs` is plain old data, so all-zeros is a valid value.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `st` is valid and writable for the call.
    let magic = if unsafe { libc::statfs(path.as_ptr().cast(), &mut st) } == 0 {
        Some(st.f_type as u64)
    } else {
        None
    };
    let kind = match magic {
        Some(0xEF53) => "ext2/3/4".to_owned(),
        Some(0x5846_5342) => "xfs".to_owned(),
        Some(0x9123_683E) => "btrfs".to_owned(),
        Some(0x0102_1994) => "tmpfs (fsync is a no-op: durable figures mean nothing)".to_owned(),
        Some(0x794C_7630) => "overlayfs".to_owned(),
        Some(0x2FC1_2FC1) => "zfs".to_owned(),
        Some(m) => format!("statfs magic {m:#x}"),
        None => "unknown".to_owned(),
    };
    match mount {
        Some(m) => format!("{kind}: {} on {} type {} ({})", m.device, m.point, m.fstype, m.options),
        None => kind,
    }
}

/// One line of /proc/self/mounts.
struct Mount {
    device: String,
    point: String,
    fstype: String,
    options: String,
}

/// The mount that holds `dir`: the longest mount point that is a prefix of it.
fn mount_of(dir: &Path) -> Option<Mount> {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let mounts = fs::read_to_string("/proc/self/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            (f.len() >= 4 && dir.starts_with(f[1])).then(|| Mount {
                device: f[0].to_owned(),
                point: f[1].to_owned(),
                fstype: f[2].to_owned(),
                options: f[3].to_owned(),
            })
        })
        .max_by_key(|m| m.point.len())
}

/// `/dev/vda` -> `vda`; `/dev/mapper/x` -> the `dm-N` it links to; a
/// partition -> itself (diskstats lists partitions too).
fn block_device(device: &str) -> Option<String> {
    let path = Path::new(device);
    if !path.starts_with("/dev") {
        return None;
    }
    let real = path.canonicalize().ok()?;
    real.file_name().map(|n| n.to_string_lossy().into_owned())
}

/// Now as `YYYY-MM-DD HH:MM UTC`.
pub fn now_utc() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}
