//! An in-memory key-value state machine with snapshots.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, EntryPayload, LogId, RaftSnapshotBuilder, SnapshotMeta, StorageError, StorageIOError, StoredMembership,
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::{Response, TypeConfig};

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct State {
    last_applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, BasicNode>,
    data: BTreeMap<String, String>,
}

#[derive(Default)]
struct Shared {
    state: State,
    snapshot: Option<(SnapshotMeta<u64, BasicNode>, Vec<u8>)>,
    snapshot_count: u64,
}

/// The state machine; clones share it, so the application can read it.
#[derive(Clone, Default)]
pub struct KvStateMachine {
    shared: Arc<Mutex<Shared>>,
}

impl KvStateMachine {
    /// The value of `key`, as applied so far.
    pub fn get(&self, key: &str) -> Option<String> {
        self.shared.lock().state.data.get(key).cloned()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.shared.lock().state.data.len()
    }
}

impl RaftSnapshotBuilder<TypeConfig> for KvStateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<u64>> {
        let mut shared = self.shared.lock();
        let bytes = postcard::to_allocvec(&shared.state.data).map_err(|e| StorageIOError::read_state_machine(&e))?;
        shared.snapshot_count += 1;
        let meta = SnapshotMeta {
            last_log_id: shared.state.last_applied,
            last_membership: shared.state.membership.clone(),
            snapshot_id: format!("{:?}-{}", shared.state.last_applied, shared.snapshot_count),
        };
        shared.snapshot = Some((meta.clone(), bytes.clone()));
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for KvStateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>), StorageError<u64>> {
        let shared = self.shared.lock();
        Ok((shared.state.last_applied, shared.state.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError<u64>>
    where
        I: IntoIterator<Item = openraft::Entry<TypeConfig>> + Send,
    {
        let mut shared = self.shared.lock();
        let mut responses = Vec::new();
        for entry in entries {
            shared.state.last_applied = Some(entry.log_id);
            let previous = match entry.payload {
                EntryPayload::Blank => None,
                EntryPayload::Normal(request) => shared.state.data.insert(request.key, request.value),
                EntryPayload::Membership(membership) => {
                    shared.state.membership = StoredMembership::new(Some(entry.log_id), membership);
                    None
                }
            };
            responses.push(Response { previous });
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError<u64>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<u64>> {
        let bytes = snapshot.into_inner();
        let data =
            postcard::from_bytes(&bytes).map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        let mut shared = self.shared.lock();
        shared.state = State {
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
            data,
        };
        shared.snapshot = Some((meta.clone(), bytes));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError<u64>> {
        let shared = self.shared.lock();
        Ok(shared.snapshot.as_ref().map(|(meta, bytes)| Snapshot {
            meta: meta.clone(),
            snapshot: Box::new(Cursor::new(bytes.clone())),
        }))
    }
}
