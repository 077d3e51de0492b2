//! What each fuzz target asserts, shared by the targets (under libFuzzer)
//! and by `tests/fuzz_corpus.rs` (which replays the checked-in corpus in
//! every `cargo test`). Depends on nothing but `replog` and `tempfile`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use replog::codec::{self, BATCH_HEADER_BYTES, RECORD_HEADER_BYTES};
use replog::replication::{Applied, FetchRequest, FetchResponse, Replica, ReplicaId, ReplicaOptions};
use replog::{Damage, Error, Log, NewRecord, Options, Record, SyncPolicy};

// ---------------------------------------------------------------------------
// batch_decode
// ---------------------------------------------------------------------------

/// Decoding arbitrary bytes as a batch never panics; a batch that validates
/// decodes into records inside its bounds, agrees with its header (count,
/// first and largest timestamp, length), is refused at any other expected
/// offset or when cut short, and re-encodes to the same bytes.
pub fn batch_decode(data: &[u8]) {
    let Some(base) = data.get(16..24).map(|b| u64::from_le_bytes(b.try_into().unwrap())) else {
        assert!(codec::validate_batch(data, 0).is_err(), "shorter than a batch header");
        return;
    };
    let Ok(header) = codec::validate_batch(data, base) else {
        return;
    };
    let len = header.batch_len as usize;
    assert!(header.record_count >= 1);
    assert!(len >= BATCH_HEADER_BYTES + RECORD_HEADER_BYTES * header.record_count as usize);
    let batch = &data[..len];
    let mut position = BATCH_HEADER_BYTES;
    let mut fields = Vec::new();
    for _ in 0..header.record_count {
        let (record, next) = codec::decode_record(batch, position).expect("a validated batch decodes");
        assert!(next > position && next <= batch.len());
        assert!(record.value.end <= batch.len() && record.value.start <= record.value.end);
        if let Some(key) = &record.key {
            assert!(key.start <= key.end && key.end <= record.value.start);
        }
        assert!(record.timestamp_ms <= header.max_timestamp_ms);
        fields.push(record);
        position = next;
    }
    assert_eq!(position, batch.len());
    assert_eq!(fields[0].timestamp_ms, header.first_timestamp_ms);
    assert_eq!(
        fields.iter().map(|f| f.timestamp_ms).max(),
        Some(header.max_timestamp_ms)
    );
    // The offset is inside the CRC and checked: anywhere else the batch is refused.
    assert!(codec::validate_batch(data, base.wrapping_add(1)).is_err());
    assert!(
        codec::validate_batch(&batch[..len - 1], base).is_err(),
        "a batch cut short"
    );
    let records: Vec<NewRecord<'_>> = fields.iter().map(|f| f.to_new_record(batch)).collect();
    let again = codec::encode_batch_to_vec(&records, header.base_offset, header.leader_epoch, 0);
    assert_eq!(again, batch, "re-encoding a valid batch gives the same bytes");
}

// ---------------------------------------------------------------------------
// open_segment
// ---------------------------------------------------------------------------

/// A directory whose only segment file holds `data` after a valid segment
/// header opens to an error or to a log whose every record reads back, the
/// same by `read` as by `iter`, whose time lookups give the first record at
/// or after each timestamp, that accepts appends, and that reopens after a
/// clean close holding the same records.
pub fn open_segment(data: &[u8]) {
    let dir = scratch_dir();
    let mut file = codec_segment_header(0).to_vec();
    file.extend_from_slice(data);
    std::fs::write(dir.path().join("00000000000000000000.log"), &file).expect("write segment");
    let options = || {
        Options::default()
            .segment_bytes(1 << 16)
            .prefault_bytes(0)
            .sync(SyncPolicy::Never)
    };
    let Ok(log) = Log::open(dir.path(), options()) else {
        return;
    };
    let end = log.next_offset();
    let mut records = Vec::new();
    for record in log.iter(0) {
        let Ok(record) = record else { break };
        assert_eq!(record.offset(), records.len() as u64);
        records.push(record);
    }
    assert_eq!(records.len() as u64, end, "a recovered tail reads back whole");
    let after = log.append(b"after").expect("append after recovery");
    assert_eq!(after, end);
    records.push(log.read(after).expect("read the appended record"));
    check_all_records(&log, &records, "after recovery");
    log.close().expect("clean close");

    let log = Log::open(dir.path(), options()).expect("reopen after a clean close");
    assert!(log.recovery_report().clean_shutdown, "{:?}", log.recovery_report());
    let again: Vec<Record> = log.iter(0).map(|r| r.expect("read after reopen")).collect();
    assert!(again == records, "reopened log holds the same records");
    check_all_records(&log, &records, "after reopen");
}

/// `records` are all of `log`'s records: each reads back by offset as it
/// iterated, and every time lookup finds the first record at or after it.
fn check_all_records(log: &Log, records: &[Record], context: &str) {
    assert_eq!(log.next_offset(), records.len() as u64, "{context}");
    for record in records {
        let read = log.read(record.offset()).expect("read a record iter returned");
        assert!(
            read == *record,
            "{context}: read({}) differs from iter",
            record.offset()
        );
    }
    assert!(matches!(
        log.read(records.len() as u64),
        Err(Error::OffsetOutOfRange { .. })
    ));
    let timestamps: Vec<i64> = records.iter().map(Record::timestamp_ms).collect();
    let mut queries = vec![i64::MIN, i64::MAX];
    for &t in &timestamps {
        queries.extend([t, t.saturating_add(1)]);
    }
    let first_at_or_after = FirstAtOrAfter::new(&timestamps);
    for t in queries {
        let found = log.offset_for_timestamp(t).expect("time lookup on a recovered log");
        assert_eq!(found, first_at_or_after.get(t), "{context}: offset_for_timestamp({t})");
        if let Some(offset) = found {
            assert!(timestamps[offset as usize] >= t);
        }
    }
    check_all_batches(log, records, context);
}

/// `records` are all of `log`'s records: `batches` gives them in whole
/// batches that validate as stored, agree with their headers, and whose
/// records (borrowed or owned) are the same; from inside the log, the first
/// batch holds the offset asked for.
fn check_all_batches(log: &Log, records: &[Record], context: &str) {
    let end = records.len() as u64;
    let mut offset = 0;
    for batch in log.batches(0) {
        let batch = batch.expect("batches of a recovered log");
        assert_eq!(batch.base_offset(), offset, "{context}");
        let bytes = batch.as_bytes();
        let header = codec::validate_batch(bytes, offset).expect("a stored batch validates");
        assert_eq!(bytes.len(), header.batch_len as usize);
        assert_eq!(batch.record_count(), header.record_count);
        assert_eq!(batch.next_offset(), header.next_offset());
        assert_eq!(batch.leader_epoch(), header.leader_epoch);
        assert_eq!(batch.max_timestamp_ms(), header.max_timestamp_ms);
        let mut count = 0;
        for record in batch.records() {
            let expected = records
                .get(record.offset() as usize)
                .expect("a batch record inside the log");
            assert_eq!(record.offset(), offset + count, "{context}");
            assert!(
                record.timestamp_ms() == expected.timestamp_ms()
                    && record.key() == expected.key()
                    && record.value() == &expected.value()[..]
                    && batch.leader_epoch() == expected.leader_epoch(),
                "{context}: batches differ from iter at {}",
                record.offset()
            );
            assert!(batch.record(record.offset()).as_ref() == Some(expected));
            count += 1;
        }
        assert_eq!(count, batch.record_count() as u64);
        assert!(batch.record(batch.next_offset()).is_none() && batch.record(offset.wrapping_sub(1)).is_none());
        offset = batch.next_offset();
    }
    assert_eq!(offset, end, "{context}: batches cover the log");
    for from in [end / 2, end.saturating_sub(1)].into_iter().filter(|&o| o < end) {
        let first = log
            .batches(from)
            .next()
            .expect("a batch")
            .expect("batches of a recovered log");
        assert!(first.base_offset() <= from && from < first.next_offset());
    }
    assert!(log.batches(end).next().is_none());
    assert!(matches!(
        log.batches(end + 1).next(),
        Some(Err(Error::OffsetOutOfRange { .. }))
    ));
}

/// The lowest offset whose timestamp is at or after a time: a binary search
/// over the running maximum of the timestamps.
struct FirstAtOrAfter {
    running_max: Vec<i64>,
}

impl FirstAtOrAfter {
    fn new(timestamps: &[i64]) -> FirstAtOrAfter {
        let running_max = timestamps
            .iter()
            .scan(i64::MIN, |max, &t| {
                *max = (*max).max(t);
                Some(*max)
            })
            .collect();
        FirstAtOrAfter { running_max }
    }

    fn get(&self, t: i64) -> Option<u64> {
        let i = self.running_max.partition_point(|&max| max < t);
        (i < self.running_max.len()).then_some(i as u64)
    }

    /// The same over the first `len` records only.
    fn get_below(&self, t: i64, len: usize) -> Option<u64> {
        self.get(t).filter(|&o| (o as usize) < len)
    }
}

// ---------------------------------------------------------------------------
// index_file
// ---------------------------------------------------------------------------

/// The log every `index_file` run starts from: five segments of 4 KiB (four
/// sealed, and the active one) with index entries every 512 bytes, closed
/// cleanly, and the records that went in.
struct Template {
    /// The directory's files (without `LOCK`): name and contents.
    files: Vec<(String, Vec<u8>)>,
    /// Base offsets of the segments, oldest first.
    bases: Vec<u64>,
    records: Vec<Expected>,
    first_at_or_after: FirstAtOrAfter,
    /// Timestamps to look up: every record's and one above, and the extremes.
    queries: Vec<i64>,
    /// The leader epoch the reopened log starts at.
    leader_epoch: u64,
}

#[derive(Debug, PartialEq, Eq)]
struct Expected {
    timestamp: i64,
    epoch: u64,
    key: Option<Vec<u8>>,
    value: Vec<u8>,
}

impl Expected {
    fn matches(&self, offset: u64, record: &Record) -> bool {
        record.offset() == offset
            && record.timestamp_ms() == self.timestamp
            && record.leader_epoch() == self.epoch
            && record.key().map(|k| k.to_vec()) == self.key
            && record.value()[..] == self.value[..]
    }
}

const TEMPLATE_BATCHES: u64 = 80;
const TS_BASE: i64 = 1_700_000_000_000;

fn index_file_options() -> Options {
    Options::default()
        .segment_bytes(replog::SEGMENT_BYTES_MIN)
        .index_interval_bytes(512)
        .prefault_bytes(0)
        .sync(SyncPolicy::Never)
}

/// Deterministic records for batch `b` whose first offset is `offset`:
/// one to four records, keyed or not, with timestamps that mostly rise but
/// sometimes go back, repeat, or jump ahead (so the time index has to carry
/// the maximum of earlier batches).
fn template_batch(b: u64, offset: u64) -> Vec<Expected> {
    (0..1 + b % 4)
        .map(|i| {
            let o = offset + i;
            let wiggle = [0, -35, 5, 0, -100, 3, 3][(o % 7) as usize];
            let timestamp = match o {
                // Far back in time, behind records that answer every lookup up to it.
                150 => TS_BASE - 1,
                // A jump ahead in each segment: lookups up to it find it,
                // and index entries after it carry it as the maximum before.
                _ if o % 40 == 12 && o < 160 => TS_BASE + 10 * o as i64 + 300,
                _ => TS_BASE + 10 * o as i64 + wiggle,
            };
            let value_len = 5 + (o * 37 % 90) as usize;
            Expected {
                timestamp,
                epoch: b / 9,
                key: (!o.is_multiple_of(3)).then(|| format!("author-{}", o % 5).into_bytes()),
                value: (0..value_len).map(|j| (o as usize * 31 + j * 7) as u8).collect(),
            }
        })
        .collect()
}

fn template() -> &'static Template {
    static TEMPLATE: OnceLock<Template> = OnceLock::new();
    TEMPLATE.get_or_init(build_template)
}

fn build_template() -> Template {
    let dir = scratch_dir();
    let log = Log::open(dir.path(), index_file_options()).expect("open template log");
    let mut records: Vec<Expected> = Vec::new();
    for b in 0..TEMPLATE_BATCHES {
        let batch = template_batch(b, records.len() as u64);
        if batch[0].epoch != log.leader_epoch() {
            log.set_leader_epoch(batch[0].epoch).unwrap();
        }
        let new: Vec<NewRecord<'_>> = batch
            .iter()
            .map(|e| {
                let r = NewRecord::new(&e.value).timestamp_ms(e.timestamp);
                match &e.key {
                    Some(key) => r.key(key),
                    None => r,
                }
            })
            .collect();
        assert_eq!(log.append_records(&new).unwrap(), records.len() as u64);
        records.extend(batch);
    }
    let leader_epoch = log.leader_epoch();
    log.close().unwrap();

    let mut files = Vec::new();
    let mut bases = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        if name == "LOCK" {
            continue;
        }
        if let Some(base) = name.strip_suffix(".log") {
            bases.push(base.parse().unwrap());
        }
        files.push((name, std::fs::read(entry.path()).unwrap()));
    }
    bases.sort_unstable();
    files.sort();
    assert!(bases.len() >= 3, "the template log has sealed segments: {bases:?}");
    for &base in &bases {
        for extension in ["index", "timeindex"] {
            let name = index_name(base, extension);
            let file = &files.iter().find(|(n, _)| *n == name).expect("index file").1;
            let header = if extension == "index" { 64 } else { 32 };
            assert!(file.len() > header + 12, "{name} has several entries");
        }
    }
    let timestamps: Vec<i64> = records.iter().map(|e| e.timestamp).collect();
    let mut queries = vec![i64::MIN, i64::MAX];
    for &t in &timestamps {
        queries.extend([t, t + 1]);
    }
    queries.sort_unstable();
    queries.dedup();
    let template = Template {
        files,
        bases,
        first_at_or_after: FirstAtOrAfter::new(&timestamps),
        records,
        queries,
        leader_epoch,
    };
    // The intact copy, and one without any index file, answer exactly.
    template.check_copy(&[], &[]);
    let no_index: Vec<String> = template
        .bases
        .iter()
        .flat_map(|&b| [index_name(b, "index"), index_name(b, "timeindex")])
        .collect();
    template.check_copy(&[], &no_index);
    template
}

fn index_name(base: u64, extension: &str) -> String {
    format!("{base:020}.{extension}")
}

/// How much a run may expect of the log, given what its input did to the
/// index files.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Expect {
    /// Every index file is intact, missing, or fails a check the library
    /// makes (magic, version, CRCs, lengths): it must be detected, and every
    /// answer must be exactly the truth.
    Exact,
    /// Some index file holds changed bytes under valid CRCs (a forgery: the
    /// harness fixed the CRCs, or libFuzzer solved them). The library cannot
    /// tell such a file from a real one by its checks, so it may answer
    /// `Error::Corrupt`, and a time lookup may answer a later record (one
    /// still at or after the time asked for) or `None`; but a record it
    /// returns is always the one at that offset, and nothing panics. (That
    /// holds only because no template record's value looks like a batch:
    /// see `forged_index_entry_fabricates_a_record` in `tests/fuzz_corpus.rs`.)
    Forged,
}

impl Template {
    /// Writes the template into a fresh directory with `replace`d and
    /// `remove`d files, opens it, and checks every answer exactly.
    fn check_copy(&self, replace: &[(String, Vec<u8>)], remove: &[String]) {
        let dir = self.copy(replace, remove);
        let log = Log::open(dir.path(), index_file_options()).expect("open copy");
        self.check_log(&log, self.records.len(), Expect::Exact, true);
    }

    fn copy(&self, replace: &[(String, Vec<u8>)], remove: &[String]) -> tempfile::TempDir {
        let dir = scratch_dir();
        for (name, bytes) in &self.files {
            if remove.contains(name) {
                continue;
            }
            let bytes = replace.iter().find(|(n, _)| n == name).map_or(bytes, |(_, b)| b);
            std::fs::write(dir.path().join(name), bytes).expect("write template file");
        }
        dir
    }

    fn original(&self, name: &str) -> &[u8] {
        &self.files.iter().find(|(n, _)| n == name).expect("template file").1
    }

    /// Checks the log's answers against the first `len` template records.
    fn check_log(&self, log: &Log, len: usize, expect: Expect, reads_first: bool) {
        assert_eq!(log.start_offset(), 0);
        assert_eq!(
            log.next_offset(),
            len as u64,
            "the index summary agrees with the segments"
        );
        if reads_first {
            self.check_reads(log, len, expect);
            self.check_times(log, len, expect);
        } else {
            self.check_times(log, len, expect);
            self.check_reads(log, len, expect);
        }
        // Iteration from the start, from each segment's base, and from an
        // offset inside a batch (locate goes through the offset index).
        let mut starts: Vec<u64> = self.bases.iter().copied().filter(|&b| b < len as u64).collect();
        starts.extend([0, 1, len as u64 / 2, len.saturating_sub(1) as u64, len as u64]);
        starts.retain(|&from| from <= len as u64);
        for (i, &from) in starts.iter().enumerate() {
            let mut iter = log.iter(from);
            let mut offset = from;
            // Whole iterations from the first two starts only, to keep runs fast.
            let limit = if i < 2 { len as u64 } else { (from + 3).min(len as u64) };
            while offset < limit {
                match iter.next() {
                    Some(Ok(record)) => {
                        assert!(
                            self.records[offset as usize].matches(offset, &record),
                            "iter({from}) at {offset}: {record:?}, expected {:?}",
                            self.records[offset as usize]
                        );
                    }
                    Some(Err(error)) => {
                        assert!(
                            expect == Expect::Forged && matches!(error, Error::Corrupt { .. }),
                            "iter({from}) at {offset}: {error}"
                        );
                        assert!(iter.next().is_none(), "an iterator ends after an error");
                        break;
                    }
                    None => panic!("iter({from}) ended at {offset}, before {limit}"),
                }
                offset += 1;
            }
            if offset == len as u64 {
                assert!(iter.next().is_none(), "iter({from}) goes no further than {len}");
            }
        }
        assert!(matches!(
            log.iter(len as u64 + 1).next(),
            Some(Err(Error::OffsetOutOfRange { .. }))
        ));
        for (i, &from) in starts.iter().enumerate() {
            self.check_batches(log, from, len, expect, i < 2);
        }
    }

    /// `batches(from)`: batches holding the records from `from` (all of them
    /// if `whole`, else the first), each stored as the template appended it.
    fn check_batches(&self, log: &Log, from: u64, len: usize, expect: Expect, whole: bool) {
        let mut batches = log.batches(from);
        let mut offset = from;
        while offset < len as u64 {
            let batch = match batches.next() {
                Some(Ok(batch)) => batch,
                Some(Err(error)) => {
                    assert!(
                        expect == Expect::Forged && matches!(error, Error::Corrupt { .. }),
                        "batches({from}) at {offset}: {error}"
                    );
                    assert!(batches.next().is_none(), "batches end after an error");
                    return;
                }
                None => panic!("batches({from}) ended at {offset}, before {len}"),
            };
            assert!(
                batch.base_offset() <= offset && offset < batch.next_offset() && batch.next_offset() <= len as u64,
                "batches({from}) at {offset}: a batch of {}..{}",
                batch.base_offset(),
                batch.next_offset()
            );
            assert!(codec::validate_batch(batch.as_bytes(), batch.base_offset()).is_ok());
            let mut count = 0;
            for record in batch.records() {
                let expected = &self.records[record.offset() as usize];
                assert!(
                    record.offset() == batch.base_offset() + count
                        && record.timestamp_ms() == expected.timestamp
                        && batch.leader_epoch() == expected.epoch
                        && record.key() == expected.key.as_deref()
                        && record.value() == &expected.value[..],
                    "batches({from}): record {} differs",
                    record.offset()
                );
                count += 1;
            }
            assert_eq!(count, batch.record_count() as u64);
            offset = batch.next_offset();
            if !whole {
                return;
            }
        }
        assert!(batches.next().is_none(), "batches({from}) goes no further than {len}");
    }

    fn check_reads(&self, log: &Log, len: usize, expect: Expect) {
        for (offset, expected) in self.records[..len].iter().enumerate() {
            let offset = offset as u64;
            match log.read(offset) {
                Ok(record) => assert!(
                    expected.matches(offset, &record),
                    "read({offset}) gave {record:?}, expected {expected:?}"
                ),
                Err(error) => assert!(
                    expect == Expect::Forged && matches!(error, Error::Corrupt { .. }),
                    "read({offset}): {error}"
                ),
            }
        }
        assert!(matches!(log.read(len as u64), Err(Error::OffsetOutOfRange { .. })));
    }

    fn check_times(&self, log: &Log, len: usize, expect: Expect) {
        for &t in &self.queries {
            let truth = self.first_at_or_after.get_below(t, len);
            let answer = log.offset_for_timestamp(t);
            match (expect, answer) {
                (_, Ok(found)) if found == truth => {}
                (Expect::Forged, Err(Error::Corrupt { .. }) | Ok(None)) => {}
                (Expect::Forged, Ok(Some(found))) => assert!(
                    truth.is_some_and(|truth| found > truth)
                        && (found as usize) < len
                        && self.records[found as usize].timestamp >= t,
                    "offset_for_timestamp({t}) gave {found}, the truth is {truth:?}"
                ),
                (_, answer) => panic!("offset_for_timestamp({t}) gave {answer:?}, the truth is {truth:?}"),
            }
        }
    }
}

/// An `index_file` input, decoded:
///
/// ```text
/// byte 0  flags: bits 0-2 pick the segment (modulo their number; the last
///         one is the active segment, whose index files a clean close wrote);
///         bit 3 deletes its .index, bit 4 its .timeindex; bit 5 sets the
///         entry counts from the files' lengths and bit 7 recomputes the
///         CRCs, after the patch (a forgery)
/// byte 1  after: bit 0 appends a record, bit 1 truncates at offset
///         (bytes 2-3, u16 LE, modulo records + 1), bit 2 closes and reopens,
///         bit 3 looks up timestamps before reading offsets
/// then    patch operations until the input ends, each an op byte (bits 0-1
///         the kind, bit 2 the file: 0 .index, 1 .timeindex) and arguments:
///           0 overwrite  u16 LE position (mod len + 1), u8 n, n bytes
///           1 xor        u16 LE position (mod len), u8 mask
///           2 truncate   u16 LE new length (mod len + 1)
///           3 append     u8 n, n bytes
/// ```
struct IndexInput<'a> {
    flags: u8,
    after: u8,
    cut: u16,
    ops: &'a [u8],
}

impl<'a> IndexInput<'a> {
    fn parse(data: &'a [u8]) -> IndexInput<'a> {
        let byte = |i: usize| data.get(i).copied().unwrap_or(0);
        IndexInput {
            flags: byte(0),
            after: byte(1),
            cut: u16::from_le_bytes([byte(2), byte(3)]),
            ops: data.get(4..).unwrap_or(&[]),
        }
    }

    /// Applies the operations to the two files (`.index`, `.timeindex`).
    fn patch(&self, files: &mut [Vec<u8>; 2]) {
        let mut input = self.ops;
        let mut take = |n: usize| -> &'a [u8] {
            let (taken, rest) = input.split_at(n.min(input.len()));
            input = rest;
            taken
        };
        let u16_of = |b: &[u8]| b.iter().rev().fold(0usize, |acc, &x| acc << 8 | x as usize);
        while let Some(&op) = take(1).first() {
            let file = &mut files[(op >> 2 & 1) as usize];
            match op & 3 {
                0 => {
                    let at = u16_of(take(2)) % (file.len() + 1);
                    let n = take(1).first().copied().unwrap_or(0) as usize;
                    let bytes = take(n);
                    if file.len() < at + bytes.len() {
                        file.resize(at + bytes.len(), 0);
                    }
                    file[at..at + bytes.len()].copy_from_slice(bytes);
                }
                1 => {
                    let at = u16_of(take(2));
                    let mask = take(1).first().copied().unwrap_or(0);
                    if !file.is_empty() {
                        let len = file.len();
                        file[at % len] ^= mask;
                    }
                }
                2 => {
                    let len = u16_of(take(2)) % (file.len() + 1);
                    file.truncate(len);
                }
                _ => {
                    let n = take(1).first().copied().unwrap_or(0) as usize;
                    file.extend_from_slice(take(n));
                }
            }
        }
    }
}

/// Layout of the two index files, as `src/index_file.rs` writes them.
struct IndexLayout {
    header: usize,
    entry: usize,
    count_at: usize,
    entries_crc_at: usize,
    header_crc_at: usize,
}

const INDEX_LAYOUTS: [IndexLayout; 2] = [
    IndexLayout {
        header: 64,
        entry: 8,
        count_at: 12,
        entries_crc_at: 56,
        header_crc_at: 60,
    },
    IndexLayout {
        header: 32,
        entry: 12,
        count_at: 12,
        entries_crc_at: 24,
        header_crc_at: 28,
    },
];

impl IndexLayout {
    fn set_count(&self, file: &mut [u8]) {
        if file.len() >= self.header {
            let count = ((file.len() - self.header) / self.entry) as u32;
            file[self.count_at..self.count_at + 4].copy_from_slice(&count.to_le_bytes());
        }
    }

    fn fix_crcs(&self, file: &mut [u8]) {
        if file.len() >= self.header {
            let entries = crc32(&file[self.header..]);
            file[self.entries_crc_at..self.entries_crc_at + 4].copy_from_slice(&entries.to_le_bytes());
            let header = crc32(&file[..self.header_crc_at]);
            file[self.header_crc_at..self.header_crc_at + 4].copy_from_slice(&header.to_le_bytes());
        }
    }

    fn crc_at(file: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(file[at..at + 4].try_into().unwrap())
    }

    /// Whether `file` differs from `original` in a part whose CRC holds, so
    /// that no check the library makes can tell it is not genuine.
    fn forged(&self, file: &[u8], original: &[u8]) -> bool {
        if file == original || file.len() < self.header {
            return false;
        }
        let header_valid = crc32(&file[..self.header_crc_at]) == Self::crc_at(file, self.header_crc_at);
        let entries_valid = crc32(&file[self.header..]) == Self::crc_at(file, self.entries_crc_at);
        header_valid && (file[..self.header] != original[..self.header] || entries_valid)
    }
}

/// Index files of a closed log's segment, damaged or forged as the input
/// says: the log opens and answers exactly as with intact index files (every
/// `read`, `offset_for_timestamp`, iteration, the leader epoch; and again
/// after a truncation, an append or a reopen, as the input asks) unless the
/// damage is a forgery with valid CRCs, in which case see [`Expect::Forged`].
pub fn index_file(data: &[u8]) {
    index_file_expecting(data, None);
}

/// [`index_file`], holding even forged index files to exact answers: what
/// the library would have to do to never answer wrongly from a forged index
/// (for regression tests of such findings).
pub fn index_file_exact(data: &[u8]) {
    index_file_expecting(data, Some(Expect::Exact));
}

fn index_file_expecting(data: &[u8], force: Option<Expect>) {
    let template = template();
    let input = IndexInput::parse(data);
    let base = template.bases[(input.flags & 7) as usize % template.bases.len()];
    let names = [index_name(base, "index"), index_name(base, "timeindex")];
    let originals = [template.original(&names[0]), template.original(&names[1])];
    let mut files = originals.map(<[u8]>::to_vec);
    input.patch(&mut files);
    for (layout, file) in INDEX_LAYOUTS.iter().zip(files.iter_mut()) {
        if input.flags & 0x20 != 0 {
            layout.set_count(file);
        }
        if input.flags & 0x80 != 0 {
            layout.fix_crcs(file);
        }
    }
    let mut remove = Vec::new();
    for (i, name) in names.iter().enumerate() {
        if input.flags & (0x08 << i) != 0 {
            remove.push(name.clone());
        }
    }
    let forged = (0..2).any(|i| !remove.contains(&names[i]) && INDEX_LAYOUTS[i].forged(&files[i], originals[i]));
    let expect = force.unwrap_or(if forged { Expect::Forged } else { Expect::Exact });
    let replace: Vec<(String, Vec<u8>)> = names.into_iter().zip(files).collect();
    let dir = template.copy(&replace, &remove);

    let log = match Log::open(dir.path(), index_file_options()) {
        Ok(log) => log,
        Err(Error::Corrupt { .. } | Error::Io { .. }) if expect == Expect::Forged => return,
        Err(error) => panic!("open with damaged index files: {error}"),
    };
    let reads_first = input.after & 8 == 0;
    let all = template.records.len();
    match expect {
        Expect::Exact => assert_eq!(log.leader_epoch(), template.leader_epoch),
        Expect::Forged => assert!(log.leader_epoch() >= template.leader_epoch),
    }
    template.check_log(&log, all, expect, reads_first);
    let mut len = all;
    if input.after & 2 != 0 {
        let cut = input.cut as usize % (all + 1);
        match log.truncate(cut as u64) {
            Ok(()) => {
                len = cut;
                template.check_log(&log, len, expect, !reads_first);
            }
            Err(Error::Corrupt { .. }) if expect == Expect::Forged => return,
            Err(error) => panic!("truncate({cut}): {error}"),
        }
    }
    if input.after & 1 != 0 {
        let value = b"appended after the checks";
        let record = NewRecord::new(value).key(b"fuzz").timestamp_ms(TS_BASE + 1_000_000);
        let offset = log.append_record(record).expect("append");
        assert_eq!(offset, len as u64);
        match log.read(offset) {
            Ok(read) => assert!(&read.value()[..] == value && read.timestamp_ms() == TS_BASE + 1_000_000),
            Err(error) => assert!(expect == Expect::Forged && matches!(error, Error::Corrupt { .. })),
        }
        match log.offset_for_timestamp(TS_BASE + 1_000_000) {
            Ok(Some(found)) => assert_eq!(found, offset),
            Err(Error::Corrupt { .. }) | Ok(None) if expect == Expect::Forged => {}
            answer => panic!("the appended record's time lookup: {answer:?}"),
        }
        match log.truncate(len as u64) {
            Ok(()) => {}
            Err(Error::Corrupt { .. }) if expect == Expect::Forged => return,
            Err(error) => panic!("truncate the appended record: {error}"),
        }
    }
    if input.after & 4 != 0 {
        log.close().expect("close");
        let log = Log::open(dir.path(), index_file_options()).expect("reopen");
        template.check_log(&log, len, expect, reads_first);
    }
}

// ---------------------------------------------------------------------------
// fetch_request_decode
// ---------------------------------------------------------------------------

/// Size of an encoded fetch request (`docs/FORMAT.md`, "Replication messages").
pub const REQUEST_BYTES: usize = 56;
/// Size of a fetch response's header; the batches follow it.
pub const RESPONSE_HEADER_BYTES: usize = 76;
/// Where a fetch response's header holds the length of its batches.
pub const RESPONSE_LENGTH_AT: u64 = 64;

/// Decoding arbitrary bytes as a fetch request never panics and fails only
/// with `InvalidMessage` and a damage the decoder documents; a request that
/// decodes re-encodes to exactly the input.
pub fn fetch_request_decode(data: &[u8]) {
    match FetchRequest::decode(data) {
        Ok(request) => {
            assert_eq!(request.encode(), data, "a decoded request re-encodes to its bytes");
            assert_eq!(data.len(), REQUEST_BYTES);
        }
        Err(Error::InvalidMessage { damage, .. }) => assert!(
            matches!(
                damage,
                Damage::Truncated
                    | Damage::BadLength
                    | Damage::BadMagic
                    | Damage::ChecksumMismatch { .. }
                    | Damage::UnknownVersion { .. }
            ),
            "an undocumented damage for a request: {damage}"
        ),
        Err(error) => panic!("a request fails to decode only with InvalidMessage: {error}"),
    }
}

// ---------------------------------------------------------------------------
// fetch_response_decode
// ---------------------------------------------------------------------------

/// The limit a `fetch_response_decode` input asks for, and its message.
/// Byte 0 picks the limit relative to the batch bytes the message carries
/// (its length past the 76-byte header): `0xFF` is no limit (`u64::MAX`),
/// any other byte adds itself as an `i8` (so `0x00` is exactly the
/// batches' length, `0x01..=0x7F` more, `0x80..=0xFE` less, at least 0).
pub fn fetch_response_input(data: &[u8]) -> Option<(u64, &[u8])> {
    let (&pick, message) = data.split_first()?;
    let body = message.len().saturating_sub(RESPONSE_HEADER_BYTES) as u64;
    let max_bytes = if pick == 0xFF {
        u64::MAX
    } else {
        body.saturating_add_signed(pick as i8 as i64)
    };
    Some((max_bytes, message))
}

/// Decoding arbitrary bytes as a fetch response (with the limit the input
/// picks, see [`fetch_response_input`]) never panics; it accepts exactly
/// what decodes without a limit and carries at most `max_bytes` of batches,
/// or exactly one whole batch of any size (several batches over the limit
/// are `InvalidMessage` with `BadLength` at the length field, position 64);
/// what it accepts re-encodes to the same bytes and holds whole, valid,
/// contiguous batches with non-decreasing epochs, starting at the fetch
/// offset it answers, inside the leader's range.
pub fn fetch_response_decode(data: &[u8]) {
    let Some((max_bytes, message)) = fetch_response_input(data) else {
        return;
    };
    let limited = FetchResponse::decode(message, max_bytes);
    let unlimited = FetchResponse::decode(message, u64::MAX);
    match (limited, unlimited) {
        (Ok(limited), Ok(unlimited)) => {
            assert_eq!(limited, unlimited, "the limit changes nothing it accepts");
            let count = check_decoded_response(&limited, message);
            let carried = (message.len() - RESPONSE_HEADER_BYTES) as u64;
            assert!(
                carried <= max_bytes || count == 1,
                "{count} batches ({carried} bytes) over max_bytes {max_bytes} accepted"
            );
        }
        (Err(error), Ok(unlimited)) => {
            let count = check_decoded_response(&unlimited, message);
            let carried = (message.len() - RESPONSE_HEADER_BYTES) as u64;
            assert!(carried > max_bytes, "refused under a limit it meets: {error}");
            assert!(count != 1, "one whole batch over the limit refused: {error}");
            assert!(
                matches!(
                    error,
                    Error::InvalidMessage {
                        position: RESPONSE_LENGTH_AT,
                        damage: Damage::BadLength
                    }
                ),
                "batches over the limit: {error}"
            );
        }
        (Ok(limited), Err(error)) => panic!("accepted under a limit ({limited:?}), refused without one: {error}"),
        (Err(limited), Err(unlimited)) => {
            for error in [limited, unlimited] {
                assert!(
                    matches!(error, Error::InvalidMessage { .. }),
                    "a response fails to decode only with InvalidMessage: {error}"
                );
            }
        }
    }
}

/// Checks a decoded response against its message; returns the number of
/// batches it carries.
fn check_decoded_response(response: &FetchResponse, message: &[u8]) -> usize {
    assert_eq!(response.encode(), message, "a decoded response re-encodes to its bytes");
    match response {
        FetchResponse::Records {
            epoch,
            fetch_offset,
            last_fetched_epoch,
            high_watermark,
            log_start,
            log_end,
            batches,
        } => {
            assert!(log_start <= log_end && high_watermark <= log_end && fetch_offset <= log_end);
            assert!(last_fetched_epoch <= epoch, "a last fetched epoch above the leader's");
            let mut position = 0;
            let mut expected = *fetch_offset;
            let mut last_epoch = 0;
            let mut count = 0;
            while position < batches.len() {
                let rest = &batches[position..];
                let header = codec::validate_batch(rest, expected)
                    .expect("an accepted batch validates where the previous one ends (the first at the fetch offset)");
                assert!(header.leader_epoch >= last_epoch, "epochs go back");
                assert!(header.base_offset >= *log_start && header.next_offset() <= *log_end);
                last_epoch = header.leader_epoch;
                expected = header.next_offset();
                position += header.batch_len as usize;
                count += 1;
            }
            count
        }
        _ => {
            assert_eq!(message.len(), RESPONSE_HEADER_BYTES, "only records carry batches");
            0
        }
    }
}

// ---------------------------------------------------------------------------
// follower_apply
// ---------------------------------------------------------------------------

/// The epoch the follower is at when the responses arrive (above every
/// epoch in its template log).
pub const FOLLOWER_EPOCH: u64 = 5;
const FOLLOWER: ReplicaId = ReplicaId(2);
const LEADER: ReplicaId = ReplicaId(1);

/// A field of a `follower_apply` operation, as encoded in the input: one
/// byte, `0x80` then a raw `u64` (LE), or any other byte as an `i8` added
/// to an anchor (the follower's epoch for epochs, its log end for offsets).
#[derive(Clone, Copy, Debug)]
pub enum Field {
    /// The anchor plus this (not -128).
    Rel(i8),
    /// This value.
    Raw(u64),
}

/// One response of a `follower_apply` input (see [`follower_apply_input`]).
#[derive(Clone, Debug)]
pub enum Op {
    /// `FetchResponse::Records` built from fields and batch bytes.
    Records {
        /// Bit 3 recomputes each batch's CRC, bit 4 renumbers the batches
        /// to continue the follower's log (see [`follower_apply`]).
        fix: u8,
        epoch: Field,
        /// The fetch offset and last fetched epoch the records answer
        /// (anchored at the follower's log end and last batch epoch);
        /// `None` is the follower's own position.
        position: Option<(Field, Field)>,
        high_watermark: Field,
        log_start: Field,
        log_end: Field,
        batches: Vec<u8>,
    },
    Diverging {
        epoch: Field,
        end_offset: Field,
    },
    FencedEpoch,
    NotLeader,
    UnknownEpoch,
    OffsetOutOfRange {
        log_start: Field,
    },
    /// An encoded response, decoded without a limit (skipped if it does
    /// not decode). `fix` as for records, bit 5 recomputes the header CRC,
    /// bit 6 writes the follower's position into a records header.
    Wire {
        fix: u8,
        bytes: Vec<u8>,
    },
}

/// Encodes a `follower_apply` input (the layout is in [`follower_apply`]).
pub fn follower_apply_input(setup: u8, high_watermark: u8, ops: &[Op]) -> Vec<u8> {
    fn field(out: &mut Vec<u8>, field: Field) {
        match field {
            Field::Rel(delta) => {
                assert!(delta != i8::MIN);
                out.push(delta as u8);
            }
            Field::Raw(value) => {
                out.push(0x80);
                out.extend(value.to_le_bytes());
            }
        }
    }
    fn bytes(out: &mut Vec<u8>, bytes: &[u8]) {
        out.extend(u16::try_from(bytes.len()).unwrap().to_le_bytes());
        out.extend(bytes);
    }
    let mut out = vec![setup, high_watermark];
    for op in ops {
        match op {
            Op::Records {
                fix,
                epoch,
                position,
                high_watermark,
                log_start,
                log_end,
                batches,
            } => {
                out.push(fix & 0x18 | if position.is_some() { 0x40 } else { 0 });
                field(&mut out, *epoch);
                if let Some((fetch_offset, last_fetched_epoch)) = position {
                    field(&mut out, *fetch_offset);
                    field(&mut out, *last_fetched_epoch);
                }
                for f in [high_watermark, log_start, log_end] {
                    field(&mut out, *f);
                }
                bytes(&mut out, batches);
            }
            Op::Diverging { epoch, end_offset } => {
                out.push(1);
                field(&mut out, *epoch);
                field(&mut out, *end_offset);
            }
            Op::FencedEpoch => out.push(2),
            Op::NotLeader => out.push(3),
            Op::UnknownEpoch => out.push(4),
            Op::OffsetOutOfRange { log_start } => {
                out.push(5);
                field(&mut out, *log_start);
            }
            Op::Wire { fix, bytes: wire } => {
                out.push(6 | (fix & 0x78));
                bytes(&mut out, wire);
            }
        }
    }
    out
}

/// The log options of the follower: small segments, so applied batches
/// roll them.
fn follower_options() -> ReplicaOptions {
    ReplicaOptions::new(
        Options::default()
            .segment_bytes(4096)
            .index_interval_bytes(256)
            .prefault_bytes(0)
            .sync(SyncPolicy::Never),
    )
}

/// The files of a follower's directory, built once per process.
struct FollowerTemplate {
    files: Vec<(String, Vec<u8>)>,
}

/// The template logs: 0 holds offsets 0..12 in five batches of epochs 1,
/// 1, 3, 3, 4; 1 was reset to start at 1000 and holds 1000..1005 in
/// batches of epochs 2 and 4; 2 is empty.
fn follower_template(which: usize) -> &'static FollowerTemplate {
    static TEMPLATES: [OnceLock<FollowerTemplate>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    TEMPLATES[which].get_or_init(|| {
        let dir = scratch_dir();
        let log = Log::open(dir.path(), follower_options().log_value().clone()).expect("template log");
        let (start, batches): (u64, &[(u64, u64)]) = match which {
            0 => (0, &[(1, 2), (1, 3), (3, 1), (3, 3), (4, 3)]),
            1 => (1000, &[(2, 3), (4, 2)]),
            _ => (0, &[]),
        };
        if start != 0 {
            log.reset(start).unwrap();
        }
        for &(epoch, count) in batches {
            if epoch != log.leader_epoch() {
                log.set_leader_epoch(epoch).unwrap();
            }
            let next = log.next_offset();
            let values: Vec<String> = (next..next + count).map(|o| format!("record {o}")).collect();
            let records: Vec<NewRecord<'_>> = values
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let record = NewRecord::new(v.as_bytes()).timestamp_ms(1_000 + next as i64 + i as i64);
                    if i % 2 == 0 { record.key(b"key") } else { record }
                })
                .collect();
            log.append_records(&records).unwrap();
        }
        log.close().unwrap();
        Replica::open(dir.path(), FOLLOWER, follower_options())
            .expect("template replica")
            .close()
            .unwrap();
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().into_string().unwrap();
            if name != "LOCK" {
                files.push((name, std::fs::read(entry.path()).unwrap()));
            }
        }
        FollowerTemplate { files }
    })
}

/// Everything `apply` may change, read through the public API; reading it
/// checks that the log reads end to end (every record by `iter`, every
/// batch by `batches`, each valid as stored).
#[derive(Debug, PartialEq, Eq)]
struct FollowerState {
    start: u64,
    next: u64,
    history: Vec<(u64, u64)>,
    high_watermark: u64,
    epoch: u64,
    records: Vec<Record>,
    bytes: Vec<u8>,
}

impl FollowerState {
    fn read(replica: &Replica) -> FollowerState {
        let log = replica.log();
        let (start, next) = (log.start_offset(), log.next_offset());
        let records: Vec<Record> = log
            .iter(start)
            .map(|r| r.expect("the follower's log reads end to end"))
            .collect();
        assert_eq!(records.len() as u64, next - start, "iter covers the log");
        for (i, record) in records.iter().enumerate() {
            assert_eq!(record.offset(), start + i as u64);
        }
        let mut bytes = Vec::new();
        let mut offset = start;
        for batch in log.batches(start) {
            let batch = batch.expect("the follower's batches read end to end");
            assert_eq!(batch.base_offset(), offset);
            codec::validate_batch(batch.as_bytes(), offset).expect("a stored batch validates");
            offset = batch.next_offset();
            bytes.extend_from_slice(batch.as_bytes());
        }
        assert_eq!(offset, next, "batches cover the log");
        let high_watermark = replica.high_watermark();
        assert!(
            high_watermark <= next,
            "the high watermark {high_watermark} is past the log end {next}"
        );
        FollowerState {
            start,
            next,
            history: log.epoch_history(),
            high_watermark,
            epoch: replica.epoch(),
            records,
            bytes,
        }
    }

    /// Where the log ends and the epoch of its last batch (0 if it is
    /// empty): the position a records answer must repeat to be applied.
    fn position(&self) -> (u64, u64) {
        (self.next, self.history.last().map_or(0, |&(epoch, _)| epoch))
    }

    /// Where the records of the largest epoch at or below `epoch` end, as
    /// `Log::end_offset_for_epoch` (the log start if there is none).
    fn end_for_epoch(&self, epoch: u64) -> u64 {
        let i = self.history.partition_point(|&(e, _)| e <= epoch);
        if i == 0 {
            return self.start;
        }
        self.history.get(i).map_or(self.next, |&(_, start)| start)
    }
}

/// A cursor over a `follower_apply` input: a missing byte ends it.
struct Input<'a> {
    data: &'a [u8],
}

impl Input<'_> {
    fn u8(&mut self) -> Option<u8> {
        let (&byte, rest) = self.data.split_first()?;
        self.data = rest;
        Some(byte)
    }

    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.data.len() < n {
            return None;
        }
        let (taken, rest) = self.data.split_at(n);
        self.data = rest;
        Some(taken)
    }

    fn field(&mut self, anchor: u64) -> Option<u64> {
        match self.u8()? {
            0x80 => Some(u64::from_le_bytes(self.take(8)?.try_into().unwrap())),
            delta => Some(anchor.saturating_add_signed(delta as i8 as i64)),
        }
    }

    /// A `u16` (LE) length, then up to that many bytes.
    fn bytes(&mut self) -> Option<Vec<u8>> {
        let n = u16::from_le_bytes(self.take(2)?.try_into().unwrap()) as usize;
        let n = n.min(self.data.len());
        Some(self.take(n)?.to_vec())
    }
}

/// Bit 4 of `fix`: renumbers the batches in `bytes` to continue from
/// `next`; bit 3: recomputes their CRCs. Stops at the first batch whose
/// length does not fit.
fn fix_batches(bytes: &mut [u8], mut next: u64, fix: u8) {
    let mut at = 0;
    while bytes.len() - at >= BATCH_HEADER_BYTES {
        let len = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
        if len < BATCH_HEADER_BYTES || len > bytes.len() - at {
            break;
        }
        if fix & 0x10 != 0 {
            bytes[at + 16..at + 24].copy_from_slice(&next.to_le_bytes());
        }
        let base = u64::from_le_bytes(bytes[at + 16..at + 24].try_into().unwrap());
        let count = u32::from_le_bytes(bytes[at + 12..at + 16].try_into().unwrap());
        next = base.wrapping_add(count as u64);
        if fix & 0x08 != 0 {
            let crc = codec::batch_checksum(&bytes[at..at + len]);
            bytes[at..at + 4].copy_from_slice(&crc.to_le_bytes());
        }
        at += len;
    }
}

/// The follower's position as its next fetch request states it: its log
/// end and the epoch of its last batch (0 if its log is empty).
fn fetch_position(replica: &Replica) -> (u64, u64) {
    let request = replica.fetch_request(0).expect("a follower of a known leader fetches");
    (request.fetch_offset, request.last_fetched_epoch)
}

/// Reads the next response of the input; `None` at its end.
fn next_response(input: &mut Input<'_>, replica: &Replica) -> Option<Option<FetchResponse>> {
    let op = input.u8()?;
    let epoch = replica.epoch();
    let (end, last_epoch) = fetch_position(replica);
    let response = match op & 7 {
        0 => {
            let e = input.field(epoch)?;
            // Bit 6: the position answered comes from the input (anchored at
            // the follower's own); clear, it is the follower's own.
            let (fetch_offset, last_fetched_epoch) = if op & 0x40 != 0 {
                (input.field(end)?, input.field(last_epoch)?)
            } else {
                (end, last_epoch)
            };
            let [hw, start, log_end] = [end, end, end].map(|anchor| input.field(anchor));
            let mut batches = input.bytes()?;
            fix_batches(&mut batches, end, op);
            FetchResponse::Records {
                epoch: e,
                fetch_offset,
                last_fetched_epoch,
                high_watermark: hw?,
                log_start: start?,
                log_end: log_end?,
                batches: batches.into(),
            }
        }
        1 => FetchResponse::Diverging {
            epoch: input.field(epoch)?,
            end_offset: input.field(end)?,
        },
        2 => FetchResponse::FencedEpoch,
        3 => FetchResponse::NotLeader,
        4 => FetchResponse::UnknownEpoch,
        5 => FetchResponse::OffsetOutOfRange {
            log_start: input.field(end)?,
        },
        _ => {
            let mut bytes = input.bytes()?;
            if bytes.len() >= RESPONSE_HEADER_BYTES {
                fix_batches(&mut bytes[RESPONSE_HEADER_BYTES..], end, op);
                if op & 0x40 != 0 && bytes[12..16] == [0; 4] {
                    // A records answer to the follower's own position.
                    bytes[24..32].copy_from_slice(&end.to_le_bytes());
                    bytes[32..40].copy_from_slice(&last_epoch.to_le_bytes());
                }
                if op & 0x20 != 0 {
                    let crc = crc32(&bytes[..72]);
                    bytes[72..76].copy_from_slice(&crc.to_le_bytes());
                }
            }
            return Some(match FetchResponse::decode(&bytes, u64::MAX) {
                Ok(response) => Some(response),
                Err(error) => {
                    assert!(matches!(error, Error::InvalidMessage { .. }), "{error}");
                    None
                }
            });
        }
    };
    Some(Some(response))
}

/// What one applied response did, for the seeds' own tests.
pub type Outcome = std::result::Result<Applied, String>;

/// A follower `Replica` applies arbitrary responses: it never panics; on an
/// error nothing changed (log bytes, records, start and end, epoch history,
/// epoch, high watermark); records that do not answer its position (its log
/// end and last batch epoch, 0 if empty) in its epoch are refused with
/// `UnexpectedResponse`, and records that do are applied if they carry no
/// batches; on success it did exactly what the response
/// says (records appended byte for byte and the high watermark raised to
/// at most the leader's and its own end; a divergence cut at the smaller of
/// the leader's end and its own end for that epoch, never below the high
/// watermark; a reset to the leader's start; a refusal changes nothing),
/// and the log still reads end to end with the high watermark at most its
/// end. After the responses it may close and reopen, and holds the same.
///
/// Input layout (see [`follower_apply_input`]):
///
/// ```text
/// byte 0  setup: bits 0-1 the template log (0: offsets 0..12, epochs
///         1 1 3 3 4; 1: reset to 1000, 1000..1005, epochs 2 4; 2 and 3:
///         empty); bit 2 close and reopen at the end
/// byte 1  the high watermark before the responses: log start + byte mod
///         (records + 1), raised by an empty records answer
/// then    responses until the input ends, each an op byte (bits 0-2 kind:
///         0 records, 1 diverging, 2 fenced epoch, 3 not leader, 4 unknown
///         epoch, 5 offset out of range, 6 and 7 wire-encoded; bit 3
///         recompute batch CRCs; bit 4 renumber batches from the log end;
///         bit 5 (wire) recompute the header CRC; bit 6 records: the
///         fetch offset and last fetched epoch are fields of the input,
///         else the follower's own position; wire: a records header gets
///         the follower's own position, at bytes 24..40), then its fields:
///         records: epoch, [fetch offset, last fetched epoch,] high
///         watermark, log start, log end, batches; diverging: epoch, end
///         offset; out of range: log start; wire: bytes. A field is 0x80
///         and a u64 (LE), or an i8 added to an anchor: the follower's
///         epoch (epoch), the epoch of its last batch (last fetched epoch),
///         its log end (offsets); bytes are a u16 (LE) length and that
///         many bytes (fewer at the input's end).
/// ```
pub fn follower_apply(data: &[u8]) {
    follower_apply_outcomes(data);
}

/// As [`follower_apply`]; returns what each response did.
pub fn follower_apply_outcomes(data: &[u8]) -> Vec<Outcome> {
    let mut input = Input { data };
    let (Some(setup), Some(hw_pick)) = (input.u8(), input.u8()) else {
        return Vec::new();
    };
    let template = follower_template((setup & 3).min(2) as usize);
    let dir = scratch_dir();
    for (name, bytes) in &template.files {
        std::fs::write(dir.path().join(name), bytes).expect("write template file");
    }
    let open = || Replica::open(dir.path(), FOLLOWER, follower_options()).expect("open the follower");
    let mut replica = open();
    replica
        .become_follower(FOLLOWER_EPOCH, LEADER)
        .expect("become a follower");
    let (start, end) = (replica.log().start_offset(), replica.log().next_offset());
    let high_watermark = start + hw_pick as u64 % (end - start + 1);
    let (fetch_offset, last_fetched_epoch) = fetch_position(&replica);
    assert_eq!(fetch_offset, end);
    let raised = replica.apply(FetchResponse::Records {
        epoch: FOLLOWER_EPOCH,
        fetch_offset,
        last_fetched_epoch,
        high_watermark,
        log_start: start,
        log_end: end,
        batches: Vec::new().into(),
    });
    assert!(matches!(raised, Ok(Applied::Records { records: 0, .. })), "{raised:?}");
    assert_eq!(replica.high_watermark(), high_watermark);

    let mut outcomes = Vec::new();
    while let Some(response) = next_response(&mut input, &replica) {
        let Some(response) = response else { continue };
        let before = FollowerState::read(&replica);
        let result = replica.apply(response.clone());
        let after = FollowerState::read(&replica);
        check_applied(&before, &after, &response, &result);
        outcomes.push(result.map_err(|e| e.to_string()));
    }
    if setup & 4 != 0 {
        let before = FollowerState::read(&replica);
        replica.close().expect("close the follower");
        replica = open();
        let after = FollowerState::read(&replica);
        assert_eq!(before, after, "the follower reopens as it closed");
        assert!(!replica.unclean_recovery());
    }
    drop(replica);
    outcomes
}

fn check_applied(
    before: &FollowerState,
    after: &FollowerState,
    response: &FetchResponse,
    result: &replog::Result<Applied>,
) {
    if let FetchResponse::Records {
        epoch,
        fetch_offset,
        last_fetched_epoch,
        batches,
        ..
    } = response
    {
        let answers_it = *epoch == before.epoch && (*fetch_offset, *last_fetched_epoch) == before.position();
        if !answers_it {
            assert!(
                matches!(result, Err(Error::UnexpectedResponse { .. })),
                "records of epoch {epoch} answering ({fetch_offset}, {last_fetched_epoch}) given to a follower \
                 of epoch {} at {:?}: {result:?}",
                before.epoch,
                before.position()
            );
        } else if batches.is_empty() {
            assert!(
                result.is_ok(),
                "records with no batches that answer the follower's position: {result:?}"
            );
        }
    }
    let applied = match result {
        Ok(applied) => applied,
        Err(error) => {
            assert!(
                !matches!(error, Error::Io { .. } | Error::Poisoned | Error::Corrupt { .. }),
                "a response broke the follower: {error}"
            );
            assert!(
                before == after,
                "apply failed ({error}) but changed the follower: {response:?}"
            );
            return;
        }
    };
    assert_eq!(after.epoch, before.epoch);
    match (applied, response) {
        (
            Applied::Records {
                records,
                high_watermark,
            },
            FetchResponse::Records {
                epoch,
                fetch_offset,
                last_fetched_epoch,
                high_watermark: leader_hw,
                batches,
                ..
            },
        ) => {
            assert_eq!(*epoch, before.epoch, "records of another epoch applied");
            assert_eq!(
                (*fetch_offset, *last_fetched_epoch),
                before.position(),
                "records answering another position applied"
            );
            assert_eq!((after.start, after.next), (before.start, before.next + records));
            assert_eq!(after.records[..before.records.len()], before.records[..]);
            assert!(
                after.bytes.len() == before.bytes.len() + batches.len()
                    && after.bytes[..before.bytes.len()] == before.bytes[..]
                    && after.bytes[before.bytes.len()..] == batches[..],
                "the batches were not appended byte for byte"
            );
            let mut history = before.history.clone();
            let mut position = 0;
            while position < batches.len() {
                let header = codec::BatchHeader::decode(&batches[position..]).unwrap();
                assert!(
                    header.leader_epoch <= *epoch,
                    "a batch above its leader's epoch applied"
                );
                if history.last().map(|&(e, _)| e) != Some(header.leader_epoch) {
                    history.push((header.leader_epoch, header.base_offset));
                }
                position += header.batch_len as usize;
            }
            assert_eq!(after.history, history);
            let expected_hw = before.high_watermark.max((*leader_hw).min(after.next));
            assert_eq!((after.high_watermark, *high_watermark), (expected_hw, expected_hw));
        }
        (Applied::Truncated { offset }, FetchResponse::Diverging { epoch, end_offset }) => {
            let offset = *offset;
            assert_eq!(offset, (*end_offset).min(before.end_for_epoch(*epoch)));
            assert!(offset < before.next, "a divergence that cuts nothing");
            assert!(offset >= before.high_watermark, "cut below the high watermark");
            assert_eq!(after.high_watermark, before.high_watermark);
            assert_eq!(after.next, offset);
            if offset >= before.start {
                assert_eq!(after.start, before.start);
                assert_eq!(after.records[..], before.records[..(offset - before.start) as usize]);
                let history: Vec<(u64, u64)> = before.history.iter().copied().filter(|&(_, s)| s < offset).collect();
                assert_eq!(after.history, history);
            } else {
                assert!(after.start == offset && after.records.is_empty() && after.history.is_empty());
            }
        }
        (Applied::Reset { offset }, FetchResponse::OffsetOutOfRange { log_start }) => {
            assert_eq!(offset, log_start);
            assert!(*offset > before.next, "reset a log that reaches the leader's start");
            assert!(after.start == *offset && after.next == *offset);
            assert!(after.records.is_empty() && after.history.is_empty());
            assert_eq!(after.high_watermark, before.high_watermark);
        }
        (Applied::Refused, response) => {
            assert!(response.is_refusal(), "{response:?} refused");
            assert!(before == after, "a refusal changed the follower");
        }
        (applied, response) => panic!("{response:?} gave {applied:?}"),
    }
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A fresh directory: on tmpfs when there is one (fsync is free there, and
/// these checks are about contents, not durability).
fn scratch_dir() -> tempfile::TempDir {
    static SCRATCH: OnceLock<PathBuf> = OnceLock::new();
    let parent = SCRATCH.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        if shm.is_dir() && tempfile::tempdir_in(shm).is_ok() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        }
    });
    tempfile::tempdir_in(parent).expect("temporary directory")
}

fn codec_segment_header(base: u64) -> [u8; 64] {
    // Same layout as the library writes (log id 0), checked by decoding it.
    let mut out = [0u8; 64];
    out[0..8].copy_from_slice(b"RPLGSEG\0");
    out[8..12].copy_from_slice(&1u32.to_le_bytes());
    out[12..16].copy_from_slice(&64u32.to_le_bytes());
    out[16..24].copy_from_slice(&base.to_le_bytes());
    let crc = crc32(&out[..60]);
    out[60..64].copy_from_slice(&crc.to_le_bytes());
    assert_eq!(codec::decode_segment_header(&out).map(|h| h.base_offset), Ok(base));
    out
}

/// Bitwise CRC-32 (IEEE), to avoid a dependency just for the header.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= byte as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
