//! Entry points of the fuzz targets (`fuzz/`): each feeds arbitrary bytes to one family
//! of evlog's decoders, those that read what a disk or a peer hands the node. A decoder
//! must answer garbage with an error: a panic, an abort or a runaway allocation is a bug.
//! None of them needs RocksDB, so `fuzz/` builds this crate without it.

use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{SnapshotMeta, Vote};
use prost::Message;

use crate::keys::{self, Cf};
use crate::raft::codec::decode;
use crate::raft::log_store::LogStore;
use crate::raft::network::PeerIdentity;
use crate::raft::state_machine::AppliedRecord;
use crate::raft::{Entry, LogId, TypeConfig};
use crate::types::{NodeId, PartitionId};

/// What the node reads back from its own storage: log entries (with and without their
/// checksum frame), the applied record, snapshots, votes and log ids, partition and
/// metadata state.
pub fn stored_records(bytes: &[u8]) {
    let key = keys::raft_log(PartitionId(1), 1);
    let _ = crate::storage::verify_checksum(Cf::RaftLog, &key, bytes);
    let _ = LogStore::decode_entry(&key, bytes);
    let _ = decode::<Entry>(bytes);
    let _ = decode::<AppliedRecord>(bytes);
    let _ = decode::<(SnapshotMeta<NodeId, openraft::BasicNode>, Vec<u8>)>(bytes);
    let _ = decode::<Vote<NodeId>>(bytes);
    let _ = decode::<LogId>(bytes);
    crate::partition::state::decode_records(bytes);
    let _ = crate::metadata::state::MetadataState::restore(bytes);
}

/// What a peer sends: the transport's protobuf envelope, then the bincode payloads of
/// every Raft request and response.
pub fn raft_messages(bytes: &[u8]) {
    if let Ok(request) = evlog_proto::raft::v1::RaftRequest::decode(bytes) {
        let identity = PeerIdentity {
            cluster_id: "evlog".to_owned(),
            node_id: 1,
        };
        let _ = identity.refusal(request.envelope.as_ref());
    }
    let _ = decode::<AppendEntriesRequest<TypeConfig>>(bytes);
    let _ = decode::<VoteRequest<NodeId>>(bytes);
    let _ = decode::<InstallSnapshotRequest<TypeConfig>>(bytes);
    let _ = decode::<Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>>(bytes);
    let _ = decode::<Result<VoteResponse<NodeId>, RaftError<NodeId>>>(bytes);
    let _ = decode::<
        Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>,
    >(bytes);
}

/// Values of the offset index.
pub fn index_values(bytes: &[u8]) {
    let _ = keys::decode_offset_location(bytes);
}

/// A config file, then validation, and the `--initial-cluster` flag's syntax.
pub fn config(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    if let Ok(config) = toml::from_str::<crate::config::Config>(text) {
        let _ = config.validate();
    }
    let _ = crate::config::parse_initial_cluster(text);
}
