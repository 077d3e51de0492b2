//! What each fuzz target asserts, shared by the targets (under libFuzzer)
//! and by `tests/fuzz_corpus.rs` (which replays the checked-in corpus in
//! every `cargo test`). Depends on nothing but `replog` and `tempfile`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use replog::codec::{self, BATCH_HEADER_BYTES, RECORD_HEADER_BYTES};
use replog::{Error, Log, NewRecord, Options, Record, SyncPolicy};

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
