//! Runs the same workloads against replog, commitlog, raft-engine, okaywal and
//! two raw baselines in one process, interleaved, and reports median rates.
//!
//! `cargo run --release [-- --quick] [--out PATH] [--dir PATH]`; see README.md.

mod harness;
mod latency;
mod machine;
mod raw;
mod report;
mod stores;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use harness::{Budget, Sample, Values, Window};
use raw::Prealloc;
use report::{Peer, Row};
use stores::BATCH;

/// Run lengths; `--quick` shortens them all for a smoke run.
pub struct Settings {
    pub quick: bool,
    /// Repetitions of the append and read rows.
    pub reps: usize,
    /// Repetitions of the durable rows: shorter and more of them, because a
    /// disk shared with other work is noisy in bursts, and more, shorter turns
    /// spread a burst over all stores instead of one.
    pub durable_reps: usize,
    /// Single-threaded, non-durable appends (workloads 1 and 2).
    pub append: Budget,
    /// okaywal's batches in workload 2: each is fsynced, so a shorter warm-up.
    pub durable_append: Budget,
    pub read_records: u64,
    pub durable_warmup: Duration,
    pub durable_run: Duration,
    /// Size of the raw `write` + `fdatasync` file, one record / 100 per op.
    pub raw_sync_bytes: (u64, u64),
    /// The latency rows: bytes appended one record per call, segment size.
    pub latency_bytes: (u64, u64),
    /// Fresh logs in a row, and the bytes each gets one by one, then batched.
    pub fresh_logs: (usize, u64),
}

impl Settings {
    fn new(quick: bool) -> Settings {
        let secs = |s: f64| Duration::from_secs_f64(s);
        if quick {
            Settings {
                quick,
                reps: 3,
                durable_reps: 3,
                append: Budget {
                    warmup: secs(0.05),
                    warmup_records: 20_000,
                    duration: secs(0.2),
                    cap_records: 500_000,
                },
                durable_append: Budget {
                    warmup: secs(0.05),
                    warmup_records: 20_000,
                    duration: secs(0.3),
                    cap_records: 500_000,
                },
                read_records: 200_000,
                durable_warmup: secs(0.1),
                durable_run: secs(0.3),
                raw_sync_bytes: (32 << 20, 128 << 20),
                latency_bytes: (256 << 20, 16 << 20),
                fresh_logs: (4, 20_000_000),
            }
        } else {
            Settings {
                quick,
                reps: 5,
                durable_reps: 9,
                append: Budget {
                    warmup: secs(0.2),
                    warmup_records: 100_000,
                    duration: secs(1.0),
                    cap_records: 2_000_000,
                },
                durable_append: Budget {
                    warmup: secs(0.2),
                    warmup_records: 100_000,
                    duration: secs(1.2),
                    cap_records: 2_000_000,
                },
                read_records: 1_000_000,
                durable_warmup: secs(0.2),
                durable_run: secs(0.7),
                raw_sync_bytes: (64 << 20, 256 << 20),
                latency_bytes: (2 << 30, 128 << 20),
                fresh_logs: (4, 100_000_000),
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Non-durable appends, `per_step` records per call (okaywal's are durable).
    Append { per_step: u64 },
    /// Sequential read of `Settings::read_records` records, written
    /// `per_append` per call (100: batches; 1: one-record batches); replog's
    /// through `Log::batches` (borrowed records) if `replog_batches`, else
    /// through `Log::iter` (an owned `Record` per record).
    Read { replog_batches: bool, per_append: u64 },
    /// Durable appends from `threads` writers, `per_op` records per call;
    /// if `replicated`, replog's are to the leader of three replicas in
    /// this process with `Acks::All` (the peers stay single nodes).
    Durable {
        threads: usize,
        per_op: u64,
        replicated: bool,
    },
}

pub struct Workload {
    pub label: String,
    pub kind: Kind,
    pub peers: Vec<Peer>,
}

fn workloads() -> Vec<Workload> {
    use Peer::*;
    let mut list = vec![
        Workload {
            label: "append, 1 record per call".into(),
            kind: Kind::Append { per_step: 1 },
            peers: vec![Replog, Commitlog, RaftEngine, Raw, RawFalloc],
        },
        Workload {
            label: "append, batches of 100".into(),
            kind: Kind::Append { per_step: BATCH },
            peers: vec![Replog, Commitlog, RaftEngine, Okaywal, Raw, RawFalloc],
        },
        Workload {
            label: "sequential read (replog: `iter`)".into(),
            kind: Kind::Read {
                replog_batches: false,
                per_append: BATCH,
            },
            peers: vec![Replog, Commitlog, RaftEngine, Okaywal, Raw],
        },
        Workload {
            label: "sequential read (replog: `batches`)".into(),
            kind: Kind::Read {
                replog_batches: true,
                per_append: BATCH,
            },
            peers: vec![Replog, Commitlog, RaftEngine, Okaywal, Raw],
        },
        // A log written one record per append (a timeline store's posts)
        // holds one-record batches: the per-batch cost of reading shows.
        // okaywal (a commit, so an fdatasync, per record) and raft-engine
        // would make the fill itself take minutes: left out.
        Workload {
            label: "sequential read, one-record batches (replog: `iter`)".into(),
            kind: Kind::Read {
                replog_batches: false,
                per_append: 1,
            },
            peers: vec![Replog, Commitlog, Raw],
        },
        Workload {
            label: "sequential read, one-record batches (replog: `batches`)".into(),
            kind: Kind::Read {
                replog_batches: true,
                per_append: 1,
            },
            peers: vec![Replog, Commitlog, Raw],
        },
        Workload {
            label: "durable append, batches of 100, 1 thread".into(),
            kind: Kind::Durable {
                threads: 1,
                per_op: BATCH,
                replicated: false,
            },
            peers: vec![Replog, RaftEngine, Okaywal, Raw, RawFalloc],
        },
    ];
    for threads in [1, 4, 16] {
        list.push(Workload {
            label: format!(
                "durable append, {threads} thread{}",
                if threads == 1 { "" } else { "s" }
            ),
            kind: Kind::Durable {
                threads,
                per_op: 1,
                replicated: false,
            },
            peers: vec![Replog, RaftEngine, Okaywal, Raw, RawFalloc],
        });
    }
    list.push(Workload {
        label: "replicated durable append, 16 threads (replog: leader + 2 followers, `Acks::All` ‡)".into(),
        kind: Kind::Durable {
            threads: 16,
            per_op: 1,
            replicated: true,
        },
        peers: vec![Replog, RaftEngine, Okaywal, Raw, RawFalloc],
    });
    list
}

/// The data sets of a read workload, one per store of the workload, built
/// once per workload.
struct ReadFixtures {
    replog: Option<stores::ReplogRead>,
    commitlog: Option<stores::CommitlogRead>,
    raft: Option<stores::RaftRead>,
    okaywal: Option<stores::OkaywalRead>,
    raw: Option<raw::MmapRead>,
    expected: u64,
}

impl ReadFixtures {
    /// Fills the stores of `peers` with `records` records, `per_append` per
    /// call (raft-engine and okaywal only support the batched fill).
    fn build(base: &Path, values: &Values, records: u64, per_append: u64, peers: &[Peer]) -> ReadFixtures {
        eprintln!("  building the read data sets ({records} records each, {per_append} per append)...");
        let has = |peer| peers.contains(&peer);
        // Their fills are batched only (see `workloads`).
        let batched = |peer| {
            assert!(!has(peer) || per_append == BATCH, "{}: batched fill only", peer.name());
            has(peer)
        };
        ReadFixtures {
            replog: has(Peer::Replog).then(|| stores::ReplogRead::build(base, values, records, per_append)),
            commitlog: has(Peer::Commitlog).then(|| stores::CommitlogRead::build(base, values, records, per_append)),
            raft: batched(Peer::RaftEngine).then(|| stores::RaftRead::build(base, values, records)),
            okaywal: batched(Peer::Okaywal).then(|| stores::OkaywalRead::build(base, values, records)),
            // The raw file has no batches: the same layout either way.
            raw: has(Peer::Raw).then(|| raw::MmapRead::build(base, values, records)),
            expected: values.expected_touch(records),
        }
    }

    fn read(&self, peer: Peer, records: u64, replog_batches: bool) -> Sample {
        let expected = self.expected;
        let missing = "no read data set for this store";
        match peer {
            Peer::Replog => self
                .replog
                .as_ref()
                .expect(missing)
                .read(records, expected, replog_batches),
            Peer::Commitlog => self.commitlog.as_ref().expect(missing).read(records, expected),
            Peer::RaftEngine => self.raft.as_ref().expect(missing).read(records, expected),
            Peer::Okaywal => self.okaywal.as_ref().expect(missing).read(records, expected),
            Peer::Raw => self.raw.as_ref().expect(missing).read(records, expected),
            Peer::RawFalloc => unreachable!("no read variant"),
        }
    }
}

fn measure(base: &Path, values: &Values, s: &Settings, kind: Kind, peer: Peer, reads: Option<&ReadFixtures>) -> Sample {
    match kind {
        Kind::Append { per_step } => match peer {
            Peer::Replog => stores::replog_append(base, values, per_step, s.append),
            Peer::Commitlog => stores::commitlog_append(base, values, per_step, s.append),
            Peer::RaftEngine => stores::raft_append(base, values, per_step, s.append),
            Peer::Okaywal => stores::okaywal_append(base, values, per_step, s.durable_append),
            Peer::Raw => raw::mmap_append(base, values, per_step, s.append, true),
            Peer::RawFalloc => raw::mmap_append(base, values, per_step, s.append, false),
        },
        Kind::Read { replog_batches, .. } => reads.expect("read fixtures").read(peer, s.read_records, replog_batches),
        Kind::Durable {
            threads,
            per_op,
            replicated,
        } => {
            let window = Window {
                warmup: s.durable_warmup,
                run: s.durable_run,
            };
            let raw_bytes = if per_op == 1 {
                s.raw_sync_bytes.0
            } else {
                s.raw_sync_bytes.1
            };
            match peer {
                Peer::Replog if replicated => stores::replog_replicated(base, values, threads, window),
                Peer::Replog => stores::replog_durable(base, values, threads, per_op, window),
                Peer::Commitlog => unreachable!("commitlog never syncs its data"),
                Peer::RaftEngine => stores::raft_durable(base, values, threads, per_op, window),
                Peer::Okaywal => stores::okaywal_durable(base, values, threads, per_op, window),
                Peer::Raw => raw::sync_append(base, values, threads, per_op, Prealloc::ZeroFilled, raw_bytes, window),
                Peer::RawFalloc => raw::sync_append(
                    base,
                    values,
                    threads,
                    per_op,
                    Prealloc::FallocateOnly,
                    raw_bytes,
                    window,
                ),
            }
        }
    }
}

/// Which workloads `--only` keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Only {
    Append,
    Read,
    Durable,
    /// Only the latency and fresh-log sections.
    Latency,
}

impl Only {
    fn parse(name: &str) -> Only {
        match name {
            "append" => Only::Append,
            "read" => Only::Read,
            "durable" => Only::Durable,
            "latency" => Only::Latency,
            other => {
                eprintln!("--only takes append, read, durable or latency, not {other:?}");
                std::process::exit(2);
            }
        }
    }

    fn keeps(self, kind: Kind) -> bool {
        matches!(
            (self, kind),
            (Only::Append, Kind::Append { .. })
                | (Only::Read, Kind::Read { .. })
                | (Only::Durable, Kind::Durable { .. })
        )
    }
}

struct Args {
    quick: bool,
    only: Option<Only>,
    out: Option<PathBuf>,
    dir: PathBuf,
}

fn parse_args() -> Args {
    let mut args = Args {
        quick: false,
        only: None,
        out: None,
        dir: std::env::temp_dir(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => args.quick = true,
            "--only" => args.only = Some(Only::parse(&it.next().expect("--only needs a kind"))),
            "--out" => args.out = Some(it.next().expect("--out needs a path").into()),
            "--dir" => args.dir = it.next().expect("--dir needs a path").into(),
            "-h" | "--help" => {
                println!(
                    "usage: replog-compare [--quick] [--only KIND] [--out PATH] [--dir PATH]\n\
                     \x20 --quick     short runs (about a minute) for a smoke test\n\
                     \x20 --only KIND only the workloads of one kind: append, read, durable or latency\n\
                     \x20 --out PATH  where the Markdown goes (default: results.md, or results-quick.md\n\
                     \x20             with --quick or --only, next to this crate's Cargo.toml)\n\
                     \x20 --dir PATH  where the temporary stores are created (default: $TMPDIR or /tmp)"
                );
                std::process::exit(0);
            }
            other => {
                eprintln!("unknown argument {other:?} (try --help)");
                std::process::exit(2);
            }
        }
    }
    args
}

fn main() {
    let args = parse_args();
    let started = Instant::now();
    let settings = Settings::new(args.quick);
    let out = args.out.unwrap_or_else(|| {
        // A partial run must not overwrite the kept results either.
        let name = if args.quick || args.only.is_some() {
            "results-quick.md"
        } else {
            "results.md"
        };
        Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
    });
    let base = args.dir;
    std::fs::create_dir_all(&base).expect("create --dir");
    let mut machine = machine::Machine::probe(&base);
    eprintln!(
        "{} ({} cores), {}, {}; stores under {}\nreplog: {}\nload average {}; disk traffic of others: {}",
        machine.cpu,
        machine.cores,
        machine.kernel,
        machine.fs,
        base.display(),
        machine.replog,
        machine.load_at_start,
        machine.disk_before
    );
    let values = Values::new();

    let mut rows = Vec::new();
    let chosen = workloads()
        .into_iter()
        .filter(|w| args.only.is_none_or(|only| only.keeps(w.kind)));
    for workload in chosen {
        eprintln!("{}", workload.label);
        let reads = match workload.kind {
            Kind::Read { per_append, .. } => Some(per_append),
            _ => None,
        }
        .map(|per_append| {
            let fixtures = ReadFixtures::build(&base, &values, settings.read_records, per_append, &workload.peers);
            // Warm-up: one untimed read of each data set.
            for &peer in &workload.peers {
                fixtures.read(peer, settings.read_records, false);
            }
            fixtures
        });
        let mut row = Row::new(&workload);
        let reps = match workload.kind {
            Kind::Durable { .. } => settings.durable_reps,
            _ => settings.reps,
        };
        for rep in 0..reps {
            // Round-robin, starting one peer later each repetition, so noise
            // and the after-effects of a run (writeback, cache) hit all peers alike.
            let n = workload.peers.len();
            for k in 0..n {
                let peer = workload.peers[(rep + k) % n];
                let sample = measure(&base, &values, &settings, workload.kind, peer, reads.as_ref());
                eprintln!(
                    "  rep {}/{} {:<24} {:>12} records/s ({} records in {:.3} s)",
                    rep + 1,
                    reps,
                    peer.name(),
                    report::rate(sample.rate()),
                    sample.records,
                    sample.elapsed.as_secs_f64()
                );
                row.push(peer, sample.rate());
            }
        }
        drop(reads);
        rows.push(row);
    }

    let latency = args
        .only
        .is_none_or(|only| only == Only::Latency)
        .then(|| latency_section(&base, &values, &settings));

    let elapsed = started.elapsed();
    machine.finish();
    let table = report::table(&rows);
    println!("\n{table}");
    println!(
        "(median records/s of {} repetitions, {} for the durable rows; run took {})",
        settings.reps,
        settings.durable_reps,
        report::duration(elapsed)
    );
    let mut markdown = report::markdown(&machine, &settings, &base, &rows, elapsed);
    if let Some(section) = latency {
        println!("\n{section}");
        markdown.push_str(&section);
    }
    std::fs::write(&out, markdown).expect("write results");
    println!("Markdown written to {}", out.display());
}

/// Issue 10's latency and fresh-log rows, as a Markdown section.
fn latency_section(base: &Path, values: &Values, s: &Settings) -> String {
    use std::fmt::Write as _;
    let (bytes, segment_bytes) = s.latency_bytes;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n## Append latency, one record per call (issue 10)\n\n{} MiB of 256-byte values, one `append` per value, \
         {} MiB segments, `SyncPolicy::Never`, each call timed alone; \"raw\" copies each value into maps of the \
         same size whose pages were all faulted in before timing, timed the same way. Runs alternate, replog first.\n",
        bytes >> 20,
        segment_bytes >> 20
    );
    let _ = writeln!(
        out,
        "| run | calls | segment changes | p50 | p99 | p99.9 | p99.99 | max |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|");
    for rep in 1..=2 {
        eprintln!("append latency, rep {rep}/2");
        let runs = [
            ("replog", latency::replog_append(base, values, bytes, segment_bytes)),
            ("raw", latency::raw_copy(base, values, bytes, segment_bytes)),
        ];
        for (name, l) in runs {
            let _ = writeln!(
                out,
                "| {name} ({rep}) | {} | {} | {:?} | {:?} | {:?} | {:?} | {:?} |",
                l.calls, l.rolls, l.p50, l.p99, l.p999, l.p9999, l.max
            );
        }
    }
    let (logs, per_log) = s.fresh_logs;
    eprintln!("fresh logs: {logs} in a row");
    let rates = latency::fresh_logs(base, values, logs, per_log);
    let mut sorted = rates.clone();
    sorted.sort_by(f64::total_cmp);
    let median = (sorted[(logs - 1) / 2] + sorted[logs / 2]) / 2.0;
    let spread = rates.iter().map(|r| (r / median - 1.0).abs()).fold(0.0, f64::max);
    let _ = writeln!(
        out,
        "\n## Fresh logs one after another (issue 10)\n\n{logs} logs opened in turn in this process, each given {} MB of \
         one-record appends, then timed appending {} MB more in batches of 100 (`SyncPolicy::Never`, 1 GiB \
         segments). Records/s in order: {}; the farthest from the median ({}) is {:.0}% off.\n",
        per_log / 1_000_000,
        per_log / 1_000_000,
        rates.iter().map(|r| report::rate(*r)).collect::<Vec<_>>().join(", "),
        report::rate(median),
        spread * 100.0
    );
    out
}
