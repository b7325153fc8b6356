//! A Raft group's state machine: openraft's `RaftStateMachine`, generic over what the
//! group keeps ([`GroupState`]: a partition's offsets, or the metadata).
//!
//! Each `apply` call turns its entries into ONE atomic write: the group's own records
//! (offset index, producers, metadata) plus the applied record (last applied log id,
//! membership, the group's summary). The write is not synced: the log entries it derives
//! from are, and the engine keeps writes in order, so after a crash the applied state is
//! never ahead of the log and openraft re-applies what is missing.

// openraft's traits fix `StorageError` (224 bytes) as the error type; the helpers
// that feed them return it unboxed rather than box and unbox it on every call.
#![allow(clippy::result_large_err)]

use std::io::Cursor;
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    EntryPayload, ErrorSubject, ErrorVerb, RaftSnapshotBuilder, SnapshotMeta, StorageIOError,
};
use serde::{Deserialize, Serialize};

use super::codec::{decode, encode, read_record};
use super::{
    Command, CommandResponse, Entry, LogId, RaftStorageError, StoredMembership, TypeConfig,
};
use crate::keys::{self, Cf, PartitionStateKind};
use crate::storage::{checksummed, StorageEngine, WriteBatch};
use crate::types::{LogIndex, NodeId, PartitionId};

/// What a group keeps in its state machine, beyond what every group keeps.
pub trait GroupState: Send + Sync + 'static {
    /// The commands this group's entries carry (unwrapped from [`Command`]).
    type Command: TryFrom<Command, Error = Command>;
    /// What applying one answers (wrapped into [`CommandResponse`]).
    type Response: Into<CommandResponse>;
    /// Applies one command at `log_index`, adding its records to `batch`.
    fn apply(
        &mut self,
        log_index: LogIndex,
        command: Self::Command,
        batch: &mut WriteBatch,
    ) -> Self::Response;
    /// A membership change was applied (the metadata group tracks the cluster's nodes).
    fn on_membership(&mut self, _membership: &StoredMembership) {}
    /// Small summary persisted with every apply (high watermark, ...), restored at start.
    fn summary(&self) -> Vec<u8>;
    /// Everything needed to rebuild this state elsewhere (a snapshot's payload).
    fn snapshot(&self) -> Vec<u8>;
    /// Replaces the state with a snapshot's payload, adding the records to `batch`.
    fn install(&mut self, snapshot: &[u8], batch: &mut WriteBatch) -> Result<(), String>;
    /// Called after the apply's write is visible: wake readers and watchers.
    fn publish(&mut self);
}

/// A snapshot as kept in `partition_state | Snapshot`: its meta and its data.
type StoredSnapshot = (SnapshotMeta<NodeId, openraft::BasicNode>, Vec<u8>);

/// Persisted with every apply under `partition_state | Applied`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AppliedRecord {
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
    pub summary: Vec<u8>,
}

/// A snapshot's data: the applied record and the group's payload.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SnapshotPayload {
    applied: AppliedRecord,
    state: Vec<u8>,
}

pub struct StateMachine<S: GroupState> {
    partition: PartitionId,
    engine: Arc<dyn StorageEngine>,
    applied: AppliedRecord,
    state: S,
}

fn sm_error(verb: ErrorVerb, e: impl ToString) -> RaftStorageError {
    StorageIOError::new(
        ErrorSubject::StateMachine,
        verb,
        openraft::AnyError::error(e.to_string()),
    )
    .into()
}

/// Reads the applied record a group persisted last (None for a new group).
pub fn load_applied(
    engine: &dyn StorageEngine,
    partition: PartitionId,
) -> Result<Option<AppliedRecord>, RaftStorageError> {
    let key = keys::partition_state(partition, PartitionStateKind::Applied);
    read_record(engine, Cf::PartitionState, &key).map_err(|e| sm_error(ErrorVerb::Read, e))
}

impl<S: GroupState> StateMachine<S> {
    /// `state` must already be restored from `applied.summary` and its own records.
    pub fn new(
        partition: PartitionId,
        engine: Arc<dyn StorageEngine>,
        applied: AppliedRecord,
        state: S,
    ) -> Self {
        Self {
            partition,
            engine,
            applied,
            state,
        }
    }

    fn put_applied(&mut self, batch: &mut WriteBatch) {
        self.applied.summary = self.state.summary();
        batch.put(
            Cf::PartitionState,
            keys::partition_state(self.partition, PartitionStateKind::Applied),
            checksummed(&encode(&self.applied)),
        );
    }

    fn current_snapshot(&self) -> Result<Option<StoredSnapshot>, RaftStorageError> {
        let key = keys::partition_state(self.partition, PartitionStateKind::Snapshot);
        read_record(self.engine.as_ref(), Cf::PartitionState, &key)
            .map_err(|e| sm_error(ErrorVerb::Read, e))
    }

    fn store_snapshot(
        &self,
        batch: &mut WriteBatch,
        meta: &SnapshotMeta<NodeId, openraft::BasicNode>,
        data: &[u8],
    ) {
        batch.put(
            Cf::PartitionState,
            keys::partition_state(self.partition, PartitionStateKind::Snapshot),
            checksummed(&encode(&(meta.clone(), data.to_vec()))),
        );
    }
}

impl<S: GroupState> RaftStateMachine<TypeConfig> for StateMachine<S> {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId>, StoredMembership), RaftStorageError> {
        Ok((self.applied.last_applied, self.applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandResponse>, RaftStorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut batch = WriteBatch::default();
        let mut responses = Vec::new();
        for entry in entries {
            assert!(
                Some(entry.log_id) > self.applied.last_applied,
                "{}: applying {} after {:?}",
                self.partition,
                entry.log_id,
                self.applied.last_applied
            );
            self.applied.last_applied = Some(entry.log_id);
            let response = match entry.payload {
                EntryPayload::Blank => CommandResponse::Empty,
                EntryPayload::Normal(command) => {
                    let command = S::Command::try_from(command).unwrap_or_else(|other| {
                        panic!(
                            "{}: {other:?} applied to the wrong kind of group",
                            self.partition
                        )
                    });
                    self.state
                        .apply(LogIndex(entry.log_id.index), command, &mut batch)
                        .into()
                }
                EntryPayload::Membership(membership) => {
                    self.applied.membership = StoredMembership::new(Some(entry.log_id), membership);
                    self.state.on_membership(&self.applied.membership);
                    CommandResponse::Empty
                }
            };
            responses.push(response);
        }
        self.put_applied(&mut batch);
        self.engine
            .write(batch)
            .map_err(|e| sm_error(ErrorVerb::Write, e))?;
        self.state.publish();
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        let payload = SnapshotPayload {
            applied: AppliedRecord {
                summary: self.state.summary(),
                ..self.applied.clone()
            },
            state: self.state.snapshot(),
        };
        SnapshotBuilder {
            partition: self.partition,
            engine: self.engine.clone(),
            payload: Some(payload),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, RaftStorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, openraft::BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), RaftStorageError> {
        let data = snapshot.into_inner();
        let payload: SnapshotPayload = decode(&data).map_err(|e| sm_error(ErrorVerb::Read, e))?;
        let mut batch = WriteBatch::default();
        self.state
            .install(&payload.state, &mut batch)
            .map_err(|e| sm_error(ErrorVerb::Write, e))?;
        self.applied = AppliedRecord {
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
            summary: Vec::new(),
        };
        self.state.on_membership(&self.applied.membership);
        self.put_applied(&mut batch);
        self.store_snapshot(&mut batch, meta, &data);
        self.engine
            .write(batch)
            .map_err(|e| sm_error(ErrorVerb::Write, e))?;
        self.state.publish();
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, RaftStorageError> {
        Ok(self.current_snapshot()?.map(|(meta, data)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}

/// Builds a snapshot from the state captured when openraft asked for a builder.
pub struct SnapshotBuilder {
    partition: PartitionId,
    engine: Arc<dyn StorageEngine>,
    payload: Option<SnapshotPayload>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, RaftStorageError> {
        let payload = self.payload.take().expect("a snapshot builder builds once");
        let last = payload.applied.last_applied;
        let meta = SnapshotMeta {
            last_log_id: last,
            last_membership: payload.applied.membership.clone(),
            snapshot_id: match last {
                Some(id) => format!("{}-{}-{}", self.partition.0, id.leader_id, id.index),
                None => format!("{}-empty", self.partition.0),
            },
        };
        let data = encode(&payload);
        let mut batch = WriteBatch::default();
        batch.put(
            Cf::PartitionState,
            keys::partition_state(self.partition, PartitionStateKind::Snapshot),
            checksummed(&encode(&(meta.clone(), data.clone()))),
        );
        self.engine
            .write(batch)
            .map_err(|e| sm_error(ErrorVerb::Write, e))?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}
