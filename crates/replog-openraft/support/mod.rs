//! Code shared by the crate's tests, example and bench (included with
//! `#[path]`; not part of the library): a type config, an in-memory
//! key-value state machine, an in-memory network, a three-node cluster, and
//! the two log stores the bench compares against (in memory, raft-log).
//!
//! Each includer uses a different part of it.
#![allow(dead_code, unused_imports)]

pub mod cluster;
pub mod kv;
pub mod mem_log;
pub mod network;
pub mod wal_log;

use std::io::Cursor;

use serde::{Deserialize, Serialize};

/// A client write: set `key` to `value`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
}

/// The previous value of the key, if any.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Response {
    /// The value the key had before the write.
    pub previous: Option<String>,
}

openraft::declare_raft_types!(
    /// The type config of the tests, example and bench.
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);
