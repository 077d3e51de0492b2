//! openraft's own conformance suite on `LogStore`.

#[path = "../support/mod.rs"]
mod support;

use openraft::StorageError;
use openraft::testing::{StoreBuilder, Suite};
use replog_openraft::LogStore;
use support::TypeConfig;
use support::kv::KvStateMachine;

struct Builder;

impl StoreBuilder<TypeConfig, LogStore<TypeConfig>, KvStateMachine, tempfile::TempDir> for Builder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore<TypeConfig>, KvStateMachine), StorageError<u64>> {
        let dir = tempfile::tempdir().expect("temp dir");
        // Small segments keep the suite's hundreds of stores cheap to create.
        let options = replog::Options::default().segment_bytes(1 << 20).prefault_bytes(0);
        let store = LogStore::open_with(dir.path(), options).expect("open store");
        Ok((dir, store, KvStateMachine::default()))
    }
}

#[test]
fn openraft_suite_passes() {
    Suite::test_all(Builder).expect("openraft's suite");
}
