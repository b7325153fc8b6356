//! Fatal node errors: failures that stop a node from starting or keep running. Request
//! errors that a client can retry (not the leader, unavailable) are not here: they are
//! wire `ErrorCode`s built in `api`.

use crate::config::ConfigError;
use crate::storage::StorageError;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("raft storage: {0}")]
    RaftStorage(Box<openraft::StorageError<u64>>),
    #[error("raft: {0}")]
    Raft(String),
    #[error("data dir {data_dir} belongs to node {found}, but this is node {expected}: refusing to start")]
    WrongDataDir {
        data_dir: String,
        found: u64,
        expected: u64,
    },
    #[error("data dir {data_dir} belongs to cluster {found:?}, but this node is configured for cluster {expected:?}: refusing to start")]
    WrongCluster {
        data_dir: String,
        found: String,
        expected: String,
    },
    #[error("data dir {data_dir} is in storage format {found}, but this build reads format {expected} only: refusing to start (run the build that wrote it: there is no in-place upgrade between storage formats yet)")]
    StorageFormat {
        data_dir: String,
        found: u32,
        expected: u32,
    },
    #[error("cannot listen on {addr}: {message}")]
    Listen { addr: String, message: String },
}

impl From<openraft::StorageError<u64>> for NodeError {
    fn from(e: openraft::StorageError<u64>) -> Self {
        NodeError::RaftStorage(Box::new(e))
    }
}
