//! A Raft group's log, in the node's storage engine: openraft's `RaftLogStorage`.
//!
//! Entries live in `raft_log` under `partition | log index`, framed with a CRC32C that
//! every read verifies. An append is reported flushed to openraft only after a WAL fsync
//! that covers it; that fsync is shared with every other group's appends through
//! [`GroupCommit`]. The vote is synced before `save_vote` returns: a node must never
//! vote twice in a term, even across a power failure.

// openraft's traits fix `StorageError` (224 bytes) as the error type; the helpers
// that feed them return it unboxed rather than box and unbox it on every call.
#![allow(clippy::result_large_err)]

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, RaftLogId, RaftLogReader, StorageIOError, Vote};

use super::codec::{decode, encode, read_record};
use super::{Entry, LogId, RaftStorageError, TypeConfig};
use crate::keys::{self, Cf, RaftStateKind};
use crate::sim_hooks::{self, PlantedBug, VoteObservation};
use crate::storage::{checksummed, verify_checksum, GroupCommit, StorageEngine, WriteBatch};
use crate::types::{LogIndex, NodeId, PartitionId};

/// Most entries one read returns; openraft asks for bounded ranges anyway.
const READ_ENTRIES_MAX: usize = 64 * 1024;

#[derive(Clone)]
pub struct LogStore {
    partition: PartitionId,
    /// This node: only for the simulation's vote observations.
    node_id: NodeId,
    engine: Arc<dyn StorageEngine>,
    commit: GroupCommit,
    /// Most entry bytes one AppendEntries carries (at least one entry).
    append_entries_bytes_max: usize,
}

fn io_error(subject: ErrorSubject<NodeId>, verb: ErrorVerb, e: impl ToString) -> RaftStorageError {
    StorageIOError::new(subject, verb, openraft::AnyError::error(e.to_string())).into()
}

fn logs_error(verb: ErrorVerb, e: impl ToString) -> RaftStorageError {
    io_error(ErrorSubject::Logs, verb, e)
}

impl LogStore {
    pub fn new(
        partition: PartitionId,
        node_id: NodeId,
        engine: Arc<dyn StorageEngine>,
        commit: GroupCommit,
        append_entries_bytes_max: usize,
    ) -> Self {
        Self {
            partition,
            node_id,
            engine,
            commit,
            append_entries_bytes_max,
        }
    }

    fn read_state<T: serde::de::DeserializeOwned>(
        &self,
        kind: RaftStateKind,
    ) -> Result<Option<T>, RaftStorageError> {
        let key = keys::raft_state(self.partition, kind);
        read_record(self.engine.as_ref(), Cf::RaftState, &key)
            .map_err(|e| logs_error(ErrorVerb::Read, e))
    }

    fn state_put(
        &self,
        batch: &mut WriteBatch,
        kind: RaftStateKind,
        value: &impl serde::Serialize,
    ) {
        batch.put(
            Cf::RaftState,
            keys::raft_state(self.partition, kind),
            checksummed(&encode(value)),
        );
    }

    /// Tells the simulation about a vote (a no-op in real builds).
    fn observe_vote(&self, vote: &Vote<NodeId>, at_start: bool) {
        sim_hooks::observe_vote(VoteObservation {
            group: self.partition,
            node: self.node_id,
            term: vote.leader_id().get_term(),
            voted_for: vote.leader_id().voted_for(),
            committed: vote.is_committed(),
            at_start,
        });
    }

    pub(crate) fn decode_entry(key: &[u8], framed: &[u8]) -> Result<Entry, RaftStorageError> {
        let bytes = verify_checksum(Cf::RaftLog, key, framed)
            .map_err(|e| logs_error(ErrorVerb::Read, e))?;
        let entry: Entry = decode(bytes).map_err(|e| logs_error(ErrorVerb::Read, e))?;
        let index = keys::second_u64(key);
        if entry.get_log_id().index != index {
            return Err(logs_error(
                ErrorVerb::Read,
                format!(
                    "entry under index {index} says it is {}",
                    entry.get_log_id()
                ),
            ));
        }
        Ok(entry)
    }

    fn last_entry_id(&self) -> Result<Option<LogId>, RaftStorageError> {
        let from = keys::raft_log(self.partition, 0);
        let to = keys::partition_end(self.partition);
        let last = self
            .engine
            .last_in_range(Cf::RaftLog, &from, &to)
            .map_err(|e| logs_error(ErrorVerb::Read, e))?;
        match last {
            None => Ok(None),
            Some((key, framed)) => Ok(Some(*Self::decode_entry(&key, &framed)?.get_log_id())),
        }
    }

    /// Reads the entries with index in `[start, end)`, verifying each checksum.
    pub fn read_entries(&self, start: u64, end: u64) -> Result<Vec<Entry>, RaftStorageError> {
        self.read_entries_within(start, end, usize::MAX)
    }

    /// The entries with index in `[start, end)` whose stored bytes add up to at most
    /// `bytes_max`; always the first one, however large, so replication moves on.
    fn read_entries_within(
        &self,
        start: u64,
        end: u64,
        bytes_max: usize,
    ) -> Result<Vec<Entry>, RaftStorageError> {
        if start >= end {
            return Ok(Vec::new());
        }
        let from = keys::raft_log(self.partition, start);
        let to = keys::raft_log(self.partition, end);
        let limit = usize::try_from(end - start)
            .unwrap_or(usize::MAX)
            .min(READ_ENTRIES_MAX);
        let pairs = self
            .engine
            .scan(Cf::RaftLog, &from, &to, limit)
            .map_err(|e| logs_error(ErrorVerb::Read, e))?;
        let mut entries = Vec::with_capacity(pairs.len());
        let mut bytes = 0usize;
        for (key, framed) in pairs {
            bytes = bytes.saturating_add(framed.len());
            if !entries.is_empty() && bytes > bytes_max {
                break;
            }
            let entry = Self::decode_entry(&key, &framed)?;
            if let Some(prev) = entries.last() {
                let prev: &Entry = prev;
                assert_eq!(
                    prev.get_log_id().index + 1,
                    entry.get_log_id().index,
                    "{}: hole in the raft log",
                    self.partition
                );
            }
            entries.push(entry);
        }
        Ok(entries)
    }
}

fn range_to_bounds(range: &impl RangeBounds<u64>) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(s) => *s,
        Bound::Excluded(s) => s + 1,
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(e) => e.saturating_add(1),
        Bound::Excluded(e) => *e,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, RaftStorageError> {
        let (start, end) = range_to_bounds(&range);
        self.read_entries(start, end)
    }

    /// What replication sends in one AppendEntries: bounded by bytes as well as by
    /// openraft's entry count, so one large entry never rides with others past the
    /// RPC's time budget (openraft gives an AppendEntries one heartbeat interval).
    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<Entry>, RaftStorageError> {
        self.read_entries_within(start, end, self.append_entries_bytes_max)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, RaftStorageError> {
        let last_purged: Option<LogId> = self.read_state(RaftStateKind::LastPurged)?;
        let last = self.last_entry_id()?.or(last_purged);
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), RaftStorageError> {
        if !sim_hooks::is_planted(PlantedBug::VoteNotPersisted) {
            let mut batch = WriteBatch::default();
            self.state_put(&mut batch, RaftStateKind::Vote, vote);
            let vote_error =
                |e: crate::storage::StorageError| io_error(ErrorSubject::Vote, ErrorVerb::Write, e);
            self.engine.write(batch).map_err(vote_error)?;
            self.commit.sync().await.map_err(vote_error)?;
        }
        self.observe_vote(vote, false);
        Ok(())
    }

    /// The stored vote, except that a node never resumes leadership from disk. openraft
    /// 0.9 restores a node whose stored vote is its own committed (leader) vote as leader
    /// at once, without an election. After a power failure that is unsafe: a leader
    /// replicates entries before its own fsync, so its followers may hold, and have
    /// committed, entries its disk lost; resuming the same leader id, it would write other
    /// entries under the same log ids, and followers that match log ids keep theirs. So
    /// the vote comes back uncommitted: the node starts as a follower and must win a new
    /// election, in a new term, which a node missing committed entries cannot win.
    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, RaftStorageError> {
        let vote: Option<Vote<NodeId>> = self.read_state(RaftStateKind::Vote)?;
        let Some(vote) = vote else {
            return Ok(None);
        };
        self.observe_vote(&vote, true);
        let own = vote.leader_id().voted_for() == Some(self.node_id);
        if vote.is_committed() && own {
            return Ok(Some(Vote::new(vote.leader_id().get_term(), self.node_id)));
        }
        Ok(Some(vote))
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), RaftStorageError> {
        let mut batch = WriteBatch::default();
        self.state_put(&mut batch, RaftStateKind::Committed, &committed);
        self.engine
            .write(batch)
            .map_err(|e| logs_error(ErrorVerb::Write, e))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, RaftStorageError> {
        Ok(self
            .read_state::<Option<LogId>>(RaftStateKind::Committed)?
            .flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), RaftStorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut batch = WriteBatch::default();
        for entry in entries {
            let key = keys::raft_log(self.partition, entry.get_log_id().index);
            batch.put(Cf::RaftLog, key, checksummed(&encode(&entry)));
        }
        if let Err(e) = self.engine.write(batch) {
            let error = logs_error(ErrorVerb::Write, &e);
            callback.log_io_completed(Err(e.into_io()));
            return Err(error);
        }
        if sim_hooks::is_planted(PlantedBug::AckBeforeFsync) {
            callback.log_io_completed(Ok(()));
            self.commit.after_sync(Box::new(|_| {})).await;
            return Ok(());
        }
        self.commit
            .after_sync(Box::new(move |result| callback.log_io_completed(result)))
            .await;
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), RaftStorageError> {
        let mut batch = WriteBatch::default();
        batch.delete_range(
            Cf::RaftLog,
            keys::raft_log(self.partition, log_id.index),
            keys::partition_end(self.partition),
        );
        self.engine
            .write(batch)
            .map_err(|e| logs_error(ErrorVerb::Delete, e))
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), RaftStorageError> {
        let mut batch = WriteBatch::default();
        self.state_put(&mut batch, RaftStateKind::LastPurged, &log_id);
        batch.delete_range(
            Cf::RaftLog,
            keys::raft_log(self.partition, 0),
            keys::raft_log(self.partition, log_id.index + 1),
        );
        self.engine
            .write(batch)
            .map_err(|e| logs_error(ErrorVerb::Delete, e))
    }
}

/// Reads the entry at `log_index` of `partition`, verifying its checksum.
pub fn read_entry(
    engine: &dyn StorageEngine,
    partition: PartitionId,
    log_index: LogIndex,
) -> Result<Entry, crate::storage::StorageError> {
    let key = keys::raft_log(partition, log_index.0);
    let framed =
        engine
            .get(Cf::RaftLog, &key)?
            .ok_or_else(|| crate::storage::StorageError::Corrupt {
                cf: Cf::RaftLog.name(),
                key: key.to_vec(),
                reason: "entry referenced by the offset index is missing".into(),
            })?;
    let bytes = verify_checksum(Cf::RaftLog, &key, &framed)?;
    decode(bytes).map_err(|reason| crate::storage::StorageError::Corrupt {
        cf: Cf::RaftLog.name(),
        key: key.to_vec(),
        reason,
    })
}

/// Deletes every record of `partition` from the engine (replica removed, topic deleted).
pub fn delete_partition_data(
    engine: &dyn StorageEngine,
    partition: PartitionId,
) -> Result<(), crate::storage::StorageError> {
    let mut batch = WriteBatch::default();
    for cf in [
        Cf::RaftLog,
        Cf::RaftState,
        Cf::OffsetIndex,
        Cf::PartitionState,
    ] {
        batch.delete_range(
            cf,
            keys::partition_prefix(partition),
            keys::partition_end(partition),
        );
    }
    engine.write(batch)
}
