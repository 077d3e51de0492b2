//! Three openraft nodes in one process on an in-memory network.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, RaftError};
use openraft::storage::RaftLogStorage;
use openraft::{BasicNode, Config, Raft, ServerState};

use super::kv::KvStateMachine;
use super::network::Router;
use super::{Request, Response, TypeConfig};

/// A running cluster.
pub struct Cluster {
    /// The network.
    pub router: Router,
    /// The nodes still running.
    pub rafts: BTreeMap<u64, Raft<TypeConfig>>,
    /// Each node's state machine.
    pub machines: BTreeMap<u64, KvStateMachine>,
}

/// Timeouts short enough for a quick failover in one process.
pub fn config() -> Arc<Config> {
    let config = Config {
        cluster_name: "replog-openraft".into(),
        heartbeat_interval: 50,
        election_timeout_min: 150,
        election_timeout_max: 300,
        ..Default::default()
    };
    Arc::new(config.validate().expect("valid config"))
}

impl Cluster {
    /// Starts nodes 1..=`n` with the stores `make_store(id)` returns and
    /// initializes the cluster from node 1.
    pub async fn start<LS, F>(n: u64, mut make_store: F) -> Cluster
    where
        LS: RaftLogStorage<TypeConfig>,
        F: FnMut(u64) -> LS,
    {
        let router = Router::default();
        let mut rafts = BTreeMap::new();
        let mut machines = BTreeMap::new();
        for id in 1..=n {
            let machine = KvStateMachine::default();
            let raft = Raft::new(id, config(), router.clone(), make_store(id), machine.clone())
                .await
                .expect("start a node");
            router.add(id, raft.clone());
            rafts.insert(id, raft);
            machines.insert(id, machine);
        }
        let members: BTreeMap<u64, BasicNode> = (1..=n).map(|id| (id, BasicNode::default())).collect();
        rafts[&1].initialize(members).await.expect("initialize");
        Cluster {
            router,
            rafts,
            machines,
        }
    }

    /// Waits until a running node is leader and returns its id.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Option<u64> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            for (id, raft) in &self.rafts {
                if raft.metrics().borrow().state == ServerState::Leader {
                    return Some(*id);
                }
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        None
    }

    /// Stops node `id` (as if its machine went away) and makes it unreachable.
    pub async fn stop(&mut self, id: u64) {
        self.router.remove(id);
        if let Some(raft) = self.rafts.remove(&id) {
            raft.shutdown().await.expect("shutdown");
        }
    }

    /// Stops every node.
    pub async fn shutdown(mut self) {
        let ids: Vec<u64> = self.rafts.keys().copied().collect();
        for id in ids {
            self.stop(id).await;
        }
    }
}

/// Writes through `raft`; `Err` if it is not the leader or lost leadership.
pub async fn write(
    raft: &Raft<TypeConfig>,
    key: String,
    value: String,
) -> Result<Response, RaftError<u64, ClientWriteError<u64, BasicNode>>> {
    raft.client_write(Request { key, value })
        .await
        .map(|response| response.data)
}
