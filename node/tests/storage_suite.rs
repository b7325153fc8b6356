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

/// Builds the store on a fresh RocksDB; `append_entries_bytes_max` bounds what one
/// AppendEntries read returns.
struct RocksBuilder {
    append_entries_bytes_max: usize,
}

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
        // One byte: every AppendEntries read returns exactly one entry, which the suite's
        // `limited_get_log_entries` case accepts (a bounded, non-empty prefix).
        let log = LogStore::new(
            partition,
            1,
            engine.clone(),
            commit,
            self.append_entries_bytes_max,
        );
        let state = PartitionState::restore(partition, engine.as_ref(), &[]).expect("fresh state");
        let sm = StateMachine::new(partition, engine, AppliedRecord::default(), state);
        Ok((dir, log, sm))
    }
}

#[test]
fn rocksdb_log_store_and_state_machine_pass_the_openraft_storage_suite() {
    Suite::test_all(RocksBuilder {
        append_entries_bytes_max: 1,
    })
    .expect("openraft storage suite");
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
            let (_dir, mut log, _sm) = RocksBuilder {
                append_entries_bytes_max: usize::MAX,
            }
            .build()
            .await
            .expect("store");
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

/// Goal: what replication reads for one AppendEntries is bounded by bytes: a prefix whose
/// stored size fits the bound, and always at least one entry however large. Method: ten
/// entries of ~1 KiB, read with bounds of 0, 2.5 entries and unbounded.
#[test]
fn an_append_entries_read_is_a_byte_bounded_prefix_of_at_least_one_entry() {
    use evlog_node::partition::command::{AppendBatch, PartitionCommand, ProduceSegment};
    use evlog_node::raft::{Command, Entry};
    use openraft::storage::RaftLogReader;
    use openraft::testing::log_id;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            let dir = tempfile::tempdir().expect("temp dir");
            let engine: Arc<dyn StorageEngine> = Arc::new(
                RocksEngine::open(dir.path(), RocksTuning::default())
                    .await
                    .expect("open rocksdb"),
            );
            let commit = GroupCommit::start(engine.clone(), 64);
            let store =
                |bound| LogStore::new(PartitionId(7), 1, engine.clone(), commit.clone(), bound);
            let event = evlog_node::types::Event {
                key: None,
                value: vec![7u8; 1024].into(),
                headers: Vec::new(),
                timestamp_ms: 1,
            };
            let entries: Vec<Entry> = (1..=10)
                .map(|index| Entry {
                    log_id: log_id(1, 1, index),
                    payload: openraft::EntryPayload::Normal(Command::Partition(
                        PartitionCommand::Append(AppendBatch {
                            segments: vec![ProduceSegment {
                                producer_id: evlog_node::types::ProducerId::NONE,
                                first_sequence: 0,
                                events: vec![event.clone()],
                            }],
                        }),
                    )),
                })
                .collect();
            // Stored as `LogStore::append` stores them (openraft's flush callback cannot be
            // built outside openraft).
            let mut batch = evlog_node::storage::WriteBatch::default();
            for entry in &entries {
                batch.put(
                    evlog_node::keys::Cf::RaftLog,
                    evlog_node::keys::raft_log(PartitionId(7), entry.log_id.index),
                    evlog_node::storage::checksummed(&evlog_node::raft::codec::encode(entry)),
                );
            }
            engine.write(batch).expect("write entries");
            for (bound, expected) in [(0, 1), (2 * 1024 + 512, 2), (usize::MAX, 10)] {
                let got = store(bound)
                    .limited_get_log_entries(1, 11)
                    .await
                    .expect("read");
                assert_eq!(got.len(), expected, "bound {bound}");
                assert_eq!(got[0].log_id.index, 1);
            }
            let all = store(0).try_get_log_entries(1..11).await.expect("read all");
            assert_eq!(all.len(), 10, "try_get_log_entries stays unbounded");
        });
}
