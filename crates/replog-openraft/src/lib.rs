//! replog-openraft: [replog] as the log storage of
//! [openraft] 0.9 (`storage-v2`).
//!
//! [`LogStore`] implements openraft's `RaftLogStorage` on a replog
//! [`Log`](replog::Log): one entry per record (postcard-encoded), Raft log
//! index = replog offset. The vote, the committed log id and the last
//! purged log id live in a small checksummed metadata file beside the log,
//! replaced atomically.
//!
//! ```no_run
//! # use std::io::Cursor;
//! # use openraft::{RaftNetworkFactory, storage::RaftStateMachine};
//! # openraft::declare_raft_types!(pub Config: D = u64, R = u64, NodeId = u64,
//! #     Node = openraft::BasicNode, Entry = openraft::Entry<Config>,
//! #     SnapshotData = Cursor<Vec<u8>>, AsyncRuntime = openraft::TokioRuntime);
//! async fn start(
//!     network: impl RaftNetworkFactory<Config>,
//!     state_machine: impl RaftStateMachine<Config>,
//! ) -> Result<openraft::Raft<Config>, Box<dyn std::error::Error>> {
//!     let log_store = replog_openraft::LogStore::<Config>::open("data/raft-1")?;
//!     let config = std::sync::Arc::new(openraft::Config::default().validate()?);
//!     Ok(openraft::Raft::new(1, config, network, log_store, state_machine).await?)
//! }
//! ```
//!
//! # Guarantees
//!
//! - **`append` returns once the entries are readable, and openraft's flush
//!   callback fires only once they are durable.** A flusher thread syncs the
//!   log whenever callbacks wait; appends in flight together share one sync
//!   (replog's group commit) and no append pays a sync of its own.
//! - **A failed sync is an error to openraft** (every waiting callback
//!   fails) and the store stays poisoned: writes fail until it is reopened.
//! - **The vote is durable when `save_vote` returns**, and appends made
//!   before it are durable first (writes are serialized).
//! - **`purge` never waits on file deletion**: it records the last purged
//!   log id durably; whole segments below it are deleted by the flusher.
//! - **Nothing is defaulted silently**: a damaged, missing or foreign
//!   metadata file, or a segment of another log, is an error at open.
//! - `get_log_state` and `read_vote` are answered from memory; reads seek
//!   through replog's index, never scan.
//!
//! Errors are [`Error`]; at openraft's boundary they become `StorageError`s
//! naming the operation and the log id or vote concerned.

#![warn(missing_docs)]
#![deny(unsafe_code)]

mod codec;
mod error;
mod flush;
mod meta;
mod raft;
mod store;

pub use error::{Error, Result};
pub use flush::FlushStats;
pub use raft::LogReader;
pub use store::{LOG_DIR_NAME, LogStore, META_FILE_NAME};
