//! `Log::reset` and verbatim appends under SIGKILL: a child appends
//! (durably) and resets its log at random moments, copying every other
//! batch from a leader with `append_encoded`; the parent kills it at a
//! random moment and checks the reopened log:
//!
//! - a reset that returned is in force: the log starts at its offset;
//! - a reset in flight is all or nothing: the log is the old one (holding
//!   every acknowledged append) or the empty one at the reset's offset;
//! - every acknowledged append after the last reset is there, and every
//!   record present has the value its offset determines.
//!
//! Randomized: prints its seed; `REPLOG_SEED=<seed>` replays the child's
//! choices (the kill timing still varies).

#![cfg(unix)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::time::{Duration, Instant};

use common::child;
use common::rng::{Rng, mix, seed};
use replog::codec::encode_batch_to_vec;
use replog::{Log, NewRecord, Options, SyncPolicy};

const CHILD_TEST: &str = "reset_child";
const ENV_SEED: &str = "REPLOG_RESET_CHILD_SEED";

fn options() -> Options {
    Options::default().segment_bytes(16 << 10).sync(SyncPolicy::Always)
}

/// The value stored at `offset`.
fn value_at(offset: u64) -> Vec<u8> {
    let mut value = offset.to_le_bytes().to_vec();
    value.extend(std::iter::repeat_n(mix(offset) as u8, (mix(offset) % 40) as usize));
    value
}

/// The child: appends and resets until killed, printing what returned.
#[test]
fn reset_child() {
    let Some(dir) = child::dir(CHILD_TEST) else { return };
    let seed: u64 = std::env::var(ENV_SEED).unwrap().parse().unwrap();
    let mut rng = Rng::new(seed);
    let log = Log::open(&dir, options()).unwrap();
    let mut out = std::io::stdout().lock();
    writeln!(out, "OPEN {} {}", log.start_offset(), log.next_offset()).unwrap();
    loop {
        if rng.percent(5) {
            let target = log.next_offset() + rng.below(300);
            writeln!(out, "RESETTING {target}").unwrap();
            out.flush().unwrap();
            log.reset(target).unwrap();
            writeln!(out, "RESET {target}").unwrap();
        } else {
            let base = log.next_offset();
            let count = rng.in_range(1..5) as u64;
            let values: Vec<Vec<u8>> = (base..base + count).map(value_at).collect();
            let records: Vec<NewRecord<'_>> = values.iter().map(NewRecord::new).collect();
            if rng.percent(50) {
                log.append_records(&records).unwrap();
            } else {
                // As a follower would: the batch arrives encoded.
                let bytes = encode_batch_to_vec(&records, base, log.leader_epoch(), 0);
                log.append_encoded(&bytes).unwrap();
            }
            writeln!(out, "ACK {}", base + count).unwrap();
        }
        out.flush().unwrap();
    }
}

/// What the child's output says the log must be.
#[derive(Debug, Default)]
struct Expected {
    /// Start of the log after the last reset that returned (or at open).
    start: u64,
    /// Every offset below this was acknowledged since `start`.
    acked_end: u64,
    /// A reset that started and did not return.
    in_flight: Option<u64>,
}

fn expected(output: &str) -> Expected {
    let mut expected = Expected::default();
    for line in output.lines() {
        // The test harness may print its own words before the child's first.
        let line = line.find("OPEN ").map_or(line, |at| &line[at..]);
        let mut words = line.split_whitespace();
        let (Some(word), Some(number)) = (words.next(), words.next()) else {
            continue;
        };
        let Ok(number) = number.parse::<u64>() else { continue };
        match word {
            "OPEN" => {
                let next: u64 = words.next().unwrap().parse().unwrap();
                expected = Expected {
                    start: number,
                    acked_end: next,
                    in_flight: None,
                };
            }
            "ACK" => expected.acked_end = number,
            "RESETTING" => expected.in_flight = Some(number),
            "RESET" => {
                expected = Expected {
                    start: number,
                    acked_end: number,
                    in_flight: None,
                }
            }
            _ => {}
        }
    }
    expected
}

fn check(log: &Log, expected: &Expected, round: u64) {
    let context = format!(
        "round {round}: {expected:?}, log {}..{}, report {:?}",
        log.start_offset(),
        log.next_offset(),
        log.recovery_report()
    );
    match expected.in_flight {
        Some(target) if log.start_offset() == target && log.next_offset() == target => {}
        _ => {
            assert_eq!(log.start_offset(), expected.start, "{context}");
            assert!(
                log.next_offset() >= expected.acked_end,
                "{context}: acknowledged appends lost"
            );
        }
    }
    for record in log.iter(log.start_offset()) {
        let record = record.unwrap_or_else(|e| panic!("{context}: {e}"));
        assert_eq!(record.value(), &value_at(record.offset())[..], "{context}");
    }
}

#[test]
fn kill_during_resets_and_verbatim_appends() {
    let seed = seed("kill_during_resets_and_verbatim_appends");
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().unwrap();
    let rounds = common::env_u64("REPLOG_CRASH_ROUNDS").unwrap_or(12);
    let (mut in_flight, mut completed_in_flight) = (0, 0);
    for round in 0..rounds {
        let child_seed = mix(seed ^ round).to_string();
        let mut process = child::spawn(CHILD_TEST, dir.path(), &[(ENV_SEED, child_seed)]);
        let stderr = child::read_to_end(process.stderr.take().unwrap());
        let mut stdout = BufReader::new(process.stdout.take().unwrap());
        let mut output = String::new();
        // Let the child get going, then kill it at a random moment.
        let lines = 5 + rng.below(300);
        let deadline = Instant::now() + Duration::from_secs(60);
        for _ in 0..lines {
            let mut line = String::new();
            if stdout.read_line(&mut line).unwrap() == 0 {
                break;
            }
            output.push_str(&line);
            assert!(Instant::now() < deadline, "round {round}: the child is too slow");
        }
        std::thread::sleep(Duration::from_micros(rng.below(2000)));
        process.kill().unwrap();
        process.wait().unwrap();
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut rest);
        output.push_str(&rest);
        let errors = stderr.join().unwrap();
        assert!(
            !errors.contains("panicked"),
            "round {round}: the child panicked:\n{errors}"
        );
        let log = Log::open(dir.path(), options()).unwrap();
        let expected = expected(&output);
        check(&log, &expected, round);
        if let Some(target) = expected.in_flight {
            in_flight += 1;
            completed_in_flight += u64::from(log.start_offset() == target);
        }
    }
    println!("{rounds} rounds, {in_flight} killed during a reset ({completed_in_flight} of those found it done)");
}
