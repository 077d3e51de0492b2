//! What openraft's suite does not test: reopening, damaged or foreign
//! files, readers during appends, poisoning.

mod common;
#[path = "../support/mod.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::{RaftLogReader, Vote};
use replog_openraft::{Error, LOG_DIR_NAME, META_FILE_NAME};

use common::{entry, log_id, open};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn reopen_keeps_the_vote_the_log_and_the_committed_and_purged_ids() {
    let dir = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let mut store = open(dir.path()).unwrap();
        store.save_vote(&Vote::new_committed(3, 1)).await.unwrap();
        for index in 0..1000 {
            store.blocking_append([entry(3, index)]).await.unwrap();
        }
        store.save_committed(Some(log_id(3, 950))).await.unwrap();
        store.purge(log_id(3, 599)).await.unwrap();
        store.close().unwrap();

        let mut store = open(dir.path()).unwrap();
        assert_eq!(store.read_vote().await.unwrap(), Some(Vote::new_committed(3, 1)));
        assert_eq!(store.read_committed().await.unwrap(), Some(log_id(3, 950)));
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(log_id(3, 599)));
        assert_eq!(state.last_log_id, Some(log_id(3, 999)));
        let entries = store.try_get_log_entries(0..2000).await.unwrap();
        assert_eq!(entries.len(), 400, "entries 600..1000 and nothing purged");
        for (i, e) in entries.iter().enumerate() {
            assert_eq!(format!("{e:?}"), format!("{:?}", entry(3, 600 + i as u64)));
        }
        // The purge's segment deletion happens on the flusher thread, off the
        // caller's path: wait for it (bounded).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while store.log().start_offset() == 0 && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert!(store.log().start_offset() > 0, "no segment below the purge was deleted");
        assert!(
            store.log().start_offset() <= 600,
            "a segment above the purge was deleted"
        );
        store.blocking_append([entry(4, 1000)]).await.unwrap();
        store.close().unwrap();
    });
}

#[test]
fn a_flush_callback_fires_only_once_the_log_is_durable_past_its_entries() {
    // SIGKILL keeps the page cache, so the crash test cannot see an early
    // callback; the log's durable offset can.
    let seed = common::rng::seed("a_flush_callback_fires_only_once_the_log_is_durable_past_its_entries");
    let mut rng = common::rng::Rng::new(seed);
    let dir = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let mut store = open(dir.path()).unwrap();
        let mut next = 0;
        for _ in 0..300 {
            let count = 1 + rng.below(20);
            store
                .blocking_append((next..next + count).map(|i| entry(1, i)))
                .await
                .unwrap();
            next += count;
            let durable = store.log().durable_offset();
            assert!(
                durable >= next,
                "callback fired with the log durable to {durable}, entries end at {next}"
            );
        }
        let stats = store.flush_stats();
        assert_eq!((stats.callbacks, stats.entries), (300, next));
    });
}

#[test]
fn a_purge_past_the_last_entry_moves_the_log_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let mut store = open(dir.path()).unwrap();
        for index in 1..10 {
            store.blocking_append([entry(1, index)]).await.unwrap();
        }
        store.purge(log_id(2, 20)).await.unwrap();
        store.close().unwrap();
        let mut store = open(dir.path()).unwrap();
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id, Some(log_id(2, 20)));
        assert!(store.try_get_log_entries(0..100).await.unwrap().is_empty());
        store.blocking_append([entry(2, 21), entry(2, 22)]).await.unwrap();
        assert_eq!(store.try_get_log_entries(0..100).await.unwrap().len(), 2);
        // A hole is refused, with the log id in the error.
        let error = store.blocking_append([entry(2, 30)]).await.unwrap_err();
        assert!(error.to_string().contains("30"), "{error}");
    });
}

#[test]
fn truncate_then_append_replaces_the_suffix_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let mut store = open(dir.path()).unwrap();
        store.blocking_append((0..50).map(|i| entry(1, i))).await.unwrap();
        store.truncate(log_id(1, 30)).await.unwrap();
        assert_eq!(store.get_log_state().await.unwrap().last_log_id, Some(log_id(1, 29)));
        store.blocking_append((30..40).map(|i| entry(2, i))).await.unwrap();
        store.close().unwrap();
        let mut store = open(dir.path()).unwrap();
        let entries = store.try_get_log_entries(..).await.unwrap();
        assert_eq!(entries.len(), 40);
        assert_eq!(entries[29].log_id, log_id(1, 29));
        assert_eq!(entries[30].log_id, log_id(2, 30));
    });
}

#[test]
fn a_damaged_metadata_file_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let mut store = open(dir.path()).unwrap();
        store.save_vote(&Vote::new(5, 2)).await.unwrap();
        store.blocking_append([entry(5, 0)]).await.unwrap();
        store.close().unwrap();
    });
    let path = dir.path().join(META_FILE_NAME);
    let good = std::fs::read(&path).unwrap();
    for position in [0, 9, 14, 17, good.len() - 1] {
        let mut damaged = good.clone();
        damaged[position] ^= 0x40;
        std::fs::write(&path, &damaged).unwrap();
        assert!(
            matches!(open(dir.path()), Err(Error::MetaCorrupt { .. })),
            "byte {position} flipped was accepted"
        );
    }
    std::fs::write(&path, &good[..good.len() / 2]).unwrap();
    assert!(matches!(open(dir.path()), Err(Error::MetaCorrupt { .. })));
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(open(dir.path()), Err(Error::MetaMissing { .. })));
    std::fs::write(&path, &good).unwrap();
    let mut store = open(dir.path()).unwrap();
    assert_eq!(runtime().block_on(store.read_vote()).unwrap(), Some(Vote::new(5, 2)));
}

#[test]
fn a_metadata_file_or_a_segment_of_another_log_is_refused() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    runtime().block_on(async {
        for dir in [&a, &b] {
            let mut store = open(dir.path()).unwrap();
            store.blocking_append((0..20).map(|i| entry(1, i))).await.unwrap();
            store.close().unwrap();
        }
    });
    let meta_b = std::fs::read(b.path().join(META_FILE_NAME)).unwrap();
    std::fs::copy(a.path().join(META_FILE_NAME), b.path().join(META_FILE_NAME)).unwrap();
    assert!(matches!(open(b.path()), Err(Error::MetaForeign { .. })));
    std::fs::write(b.path().join(META_FILE_NAME), meta_b).unwrap();
    drop(open(b.path()).unwrap());

    // Replace b's segment files with a's (same names: both start at 0).
    let mut copied = 0;
    for file in std::fs::read_dir(a.path().join(LOG_DIR_NAME)).unwrap() {
        let file = file.unwrap();
        let name = file.file_name().to_string_lossy().into_owned();
        if name.ends_with(".log") {
            std::fs::copy(file.path(), b.path().join(LOG_DIR_NAME).join(&name)).unwrap();
            copied += 1;
        }
    }
    assert!(copied > 0, "no segment file found to copy");
    match open(b.path()) {
        Err(Error::Log(e)) => assert!(e.damage().is_some(), "{e}"),
        Err(e) => panic!("refused for another reason: {e}"),
        Ok(_) => panic!("a segment of another log was accepted"),
    }
}

#[test]
fn a_reader_sees_entries_while_appends_go_on() {
    const ENTRIES: u64 = 3000;
    let dir = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let mut store = open(dir.path()).unwrap();
        let mut reader = store.get_log_reader().await;
        let done = Arc::new(AtomicBool::new(false));
        let reading = {
            let done = done.clone();
            tokio::spawn(async move {
                let (mut next, mut reads_during_appends) = (0u64, 0u64);
                while next < ENTRIES {
                    let writer_done = done.load(Ordering::Acquire);
                    let entries = reader.try_get_log_entries(next..ENTRIES).await.unwrap();
                    for e in &entries {
                        assert_eq!(e.log_id.index, next, "entries out of order or missing");
                        assert!(common::is_well_formed(e), "bad entry at {next}");
                        next += 1;
                    }
                    if !entries.is_empty() && !writer_done {
                        reads_during_appends += 1;
                    }
                    tokio::task::yield_now().await;
                }
                reads_during_appends
            })
        };
        let mut index = 0;
        while index < ENTRIES {
            let batch = (index % 7 + 1).min(ENTRIES - index);
            store
                .blocking_append((index..index + batch).map(|i| entry(1, i)))
                .await
                .unwrap();
            index += batch;
        }
        done.store(true, Ordering::Release);
        let reads_during_appends = reading.await.unwrap();
        assert!(
            reads_during_appends > 10,
            "the reader saw entries only {reads_during_appends} times while appending"
        );
    });
}

#[test]
fn after_a_failed_sync_every_write_is_refused_until_reopen() {
    let dir = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let mut store = open(dir.path()).unwrap();
        store.blocking_append([entry(1, 0)]).await.unwrap();
        store.log().poison_for_testing();
        let error = store.blocking_append([entry(1, 1)]).await.unwrap_err();
        assert!(
            error.to_string().contains("T1-N1-1"),
            "the error names the log id: {error}"
        );
        let error = store.save_vote(&Vote::new(2, 1)).await.unwrap_err();
        assert!(error.to_string().contains("vote"), "{error}");
        assert!(store.truncate(log_id(1, 0)).await.is_err());
        assert!(store.purge(log_id(1, 0)).await.is_err());
        // Reads go on.
        assert_eq!(store.try_get_log_entries(..).await.unwrap().len(), 1);
        assert!(store.close().is_err(), "close of a poisoned store succeeded");
        let mut store = open(dir.path()).unwrap();
        assert_eq!(store.get_log_state().await.unwrap().last_log_id, Some(log_id(1, 0)));
        store.blocking_append([entry(1, 1)]).await.unwrap();
    });
}
