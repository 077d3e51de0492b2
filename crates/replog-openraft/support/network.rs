//! An in-memory network: RPCs are calls on the target's `Raft` handle.

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;

use openraft::error::{InstallSnapshotError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::{BasicNode, Raft, RaftNetwork, RaftNetworkFactory};
use parking_lot::Mutex;

use super::TypeConfig;

/// The nodes reachable now; a stopped node is removed.
#[derive(Clone, Default)]
pub struct Router {
    nodes: Arc<Mutex<BTreeMap<u64, Raft<TypeConfig>>>>,
}

impl Router {
    /// Makes `raft` reachable as `id`.
    pub fn add(&self, id: u64, raft: Raft<TypeConfig>) {
        self.nodes.lock().insert(id, raft);
    }

    /// Makes `id` unreachable.
    pub fn remove(&self, id: u64) {
        self.nodes.lock().remove(&id);
    }

    fn get(&self, id: u64) -> Option<Raft<TypeConfig>> {
        self.nodes.lock().get(&id).cloned()
    }
}

fn unreachable<E: std::error::Error>(id: u64) -> RPCError<u64, BasicNode, E> {
    let error = io::Error::new(io::ErrorKind::NotConnected, format!("node {id} is down"));
    RPCError::Unreachable(Unreachable::new(&error))
}

/// A connection to one node.
pub struct Connection {
    target: u64,
    router: Router,
}

impl RaftNetworkFactory<TypeConfig> for Router {
    type Network = Connection;

    async fn new_client(&mut self, target: u64, _node: &BasicNode) -> Connection {
        Connection {
            target,
            router: self.clone(),
        }
    }
}

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        let raft = self.router.get(self.target).ok_or_else(|| unreachable(self.target))?;
        raft.append_entries(rpc)
            .await
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>> {
        let raft = self.router.get(self.target).ok_or_else(|| unreachable(self.target))?;
        raft.install_snapshot(rpc)
            .await
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        _option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        let raft = self.router.get(self.target).ok_or_else(|| unreachable(self.target))?;
        raft.vote(rpc)
            .await
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}
