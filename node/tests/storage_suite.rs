//! Goal: prove the RocksDB-backed log store and state machine meet openraft's storage
//! contract. Method: run `openraft::testing::Suite` (every case on a fresh RocksDB in a
//! temporary directory) against the production `LogStore` + `StateMachine<PartitionState>`.

use std::sync::Arc;

use evlog_node::partition::state::PartitionState;
use evlog_node::raft::log_store::LogStore;
use evlog_node::raft::state_machine::{AppliedRecord, StateMachine};
use evlog_node::raft::{RaftStorageError, TypeConfig};
use evlog_node::storage::rocks::RocksTuning;
use evlog_node::storage::{GroupCommit, RocksEngine, StorageEngine};
use evlog_node::types::PartitionId;
use openraft::testing::{StoreBuilder, Suite};

struct RocksBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine<PartitionState>, tempfile::TempDir>
    for RocksBuilder
{
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachine<PartitionState>), RaftStorageError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let tuning = RocksTuning {
            block_cache_bytes: 8 << 20,
            write_buffer_bytes: 8 << 20,
        };
        let engine: Arc<dyn StorageEngine> = Arc::new(
            RocksEngine::open(dir.path(), tuning)
                .await
                .expect("open rocksdb"),
        );
        let commit = GroupCommit::start(engine.clone(), 64);
        let partition = PartitionId(7);
        let log = LogStore::new(partition, 1, engine.clone(), commit);
        let state = PartitionState::restore(partition, engine.as_ref(), &[]).expect("fresh state");
        let sm = StateMachine::new(partition, engine, AppliedRecord::default(), state);
        Ok((dir, log, sm))
    }
}

#[test]
fn rocksdb_log_store_and_state_machine_pass_the_openraft_storage_suite() {
    Suite::test_all(RocksBuilder).expect("openraft storage suite");
}

/// Goal: a node never resumes leadership from disk. Its own committed (leader) vote comes
/// back uncommitted, so it starts as a follower and must win a new election: after a
/// power failure its log may lack entries it had replicated under that leader id. Any
/// other vote comes back as stored.
#[test]
fn a_stored_leader_vote_of_this_node_is_read_back_uncommitted() {
    use openraft::storage::RaftLogStorage;
    use openraft::Vote;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            let (_dir, mut log, _sm) = RocksBuilder.build().await.expect("store");
            log.save_vote(&Vote::new_committed(3, 1))
                .await
                .expect("save");
            assert_eq!(log.read_vote().await.expect("read"), Some(Vote::new(3, 1)));
            log.save_vote(&Vote::new_committed(4, 2))
                .await
                .expect("save");
            let vote = log.read_vote().await.expect("read");
            assert_eq!(
                vote,
                Some(Vote::new_committed(4, 2)),
                "another leader's vote"
            );
        });
}
