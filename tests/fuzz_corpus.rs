//! Replays the checked-in fuzz corpora (`fuzz/corpus/<target>/`) through the
//! same checks the fuzz targets run, so every `cargo test` exercises them.

#[path = "../fuzz/checks.rs"]
mod checks;

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) {
            continue;
        }
        let data = std::fs::read(&path).unwrap();
        eprintln!("replaying {}", path.display());
        check(&data);
        count += 1;
    }
    assert!(count > 0, "no corpus files in {}", dir.display());
}

#[test]
fn batch_decode_corpus() {
    replay("batch_decode", checks::batch_decode);
}

#[test]
fn open_segment_corpus() {
    replay("open_segment", checks::open_segment);
}

#[test]
fn seed_batches_are_valid() {
    // The seeds were generated outside Rust: check they match our encoder, so
    // the corpus starts from real batches and not only from noise.
    let seed =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/batch_decode/three_records_mixed_keys"))
            .unwrap();
    let header = replog::codec::validate_batch(&seed, 0).unwrap();
    assert_eq!(header.record_count, 3);
}
