//! The read path: committed events of a partition from an offset, served by the replica
//! itself ([`Replica::read`], [`Replica::watermark_for`]); the api layer only converts
//! what it returns to the wire.
//!
//! `offset_index` maps each appended segment's base offset to its Raft entry and segment;
//! a read finds the record at or before the requested offset, then walks the index
//! forward, decoding each entry once. It never returns an offset at or past the high
//! watermark, so only committed events are ever visible.

use std::time::Duration;

use crate::keys::{self, Cf};
use crate::raft::log_store::read_entry;
use crate::raft::{Command, Entry};

use super::command::PartitionCommand;
use super::Replica;
use crate::storage::{StorageEngine, StorageError};
use crate::types::{Event, LogIndex, Offset, PartitionId};

use super::state::Watermark;

/// Index records fetched per scan while walking forward.
const INDEX_SCAN_BATCH: usize = 256;

/// Most events one read returns, whatever the caller asks for.
pub const READ_EVENTS_MAX: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub offset: Offset,
    pub event: Event,
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(
        "offset {offset} is out of range: the partition holds [{log_start}, {high_watermark})"
    )]
    OutOfRange {
        offset: Offset,
        log_start: Offset,
        high_watermark: Offset,
    },
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Committed data that cannot be read back (a checksum mismatch): the replica has
    /// stopped for good, and the client retries on the leader the others elect.
    #[error("replica stopped on a storage error: {0}")]
    ReplicaStopped(StorageError),
    /// A new leader could not confirm its leadership before serving past its watermark:
    /// it may have lost it. Retryable (elsewhere); not "out of range".
    #[error("{partition} could not confirm its leadership: {reason}")]
    Unconfirmed {
        partition: PartitionId,
        reason: String,
    },
    #[error("read task failed: {0}")]
    TaskFailed(String),
}

/// Bounds of one read.
#[derive(Debug, Clone, Copy)]
pub struct ReadLimits {
    /// Stop once this many accounted event bytes are collected (at least one event is
    /// returned).
    pub max_bytes: usize,
    pub max_events: usize,
}

impl Replica {
    /// Committed events from `offset` (inclusive) below `watermark.high`, read on a
    /// blocking thread (RocksDB reads must not stall the async workers). A storage error
    /// on committed data fail-stops this replica.
    pub async fn read(
        &self,
        offset: Offset,
        watermark: Watermark,
        limits: ReadLimits,
    ) -> Result<Vec<StoredEvent>, ReadError> {
        let engine = self.engine.clone();
        let partition = self.partition;
        let read = crate::rt::spawn_blocking(move || {
            read_events(engine.as_ref(), partition, offset, watermark, limits)
        });
        match read.await {
            Err(e) => Err(ReadError::TaskFailed(e.to_string())),
            Ok(Err(ReadError::Storage(storage))) => {
                self.fail_stop(&storage.to_string());
                Err(ReadError::ReplicaStopped(storage))
            }
            Ok(result) => result,
        }
    }

    /// The watermark to serve `offset` against. A leader that was just elected may not
    /// have applied everything its predecessor committed yet; when `offset` lies past its
    /// watermark, it first confirms its leadership with a quorum and waits until it has
    /// applied everything committed before (openraft's read index), so a reader that
    /// follows a failover never sees "out of range" for an offset that exists.
    pub async fn watermark_for(
        &self,
        offset: Offset,
        timeout: Duration,
    ) -> Result<Watermark, ReadError> {
        let current = *self.watermark.borrow();
        if offset <= current.high {
            return Ok(current);
        }
        let unconfirmed = |reason: String| ReadError::Unconfirmed {
            partition: self.partition,
            reason,
        };
        match crate::rt::timeout(timeout, self.raft.ensure_linearizable()).await {
            Some(Ok(_)) => Ok(*self.watermark.borrow()),
            Some(Err(e)) => Err(unconfirmed(e.to_string())),
            None => Err(unconfirmed(format!("not within {timeout:?}"))),
        }
    }
}

/// Reads committed events from `offset` (inclusive), below `watermark.high`.
pub fn read_events(
    engine: &dyn StorageEngine,
    partition: PartitionId,
    offset: Offset,
    watermark: Watermark,
    limits: ReadLimits,
) -> Result<Vec<StoredEvent>, ReadError> {
    if offset < watermark.log_start || offset > watermark.high {
        return Err(ReadError::OutOfRange {
            offset,
            log_start: watermark.log_start,
            high_watermark: watermark.high,
        });
    }
    let mut out = Vec::new();
    if offset == watermark.high || limits.max_events == 0 {
        return Ok(out);
    }
    let start = keys::offset_index(partition, Offset::ZERO);
    let Some((first_key, _)) = engine.last_in_range(
        Cf::OffsetIndex,
        &start,
        &keys::offset_index(partition, offset.plus(1)),
    )?
    else {
        return Err(ReadError::OutOfRange {
            offset,
            log_start: watermark.log_start,
            high_watermark: watermark.high,
        });
    };
    let end = keys::offset_index(partition, watermark.high);
    let mut cursor = first_key;
    let mut bytes = 0usize;
    let mut cached: Option<Entry> = None;
    let max_events = limits.max_events.min(READ_EVENTS_MAX);
    'walk: loop {
        let records = engine.scan(Cf::OffsetIndex, &cursor, &end, INDEX_SCAN_BATCH)?;
        let Some(last) = records.last() else { break };
        let next_cursor = keys::offset_index(partition, keys::offset_index_base(&last.0).plus(1));
        for (key, value) in records {
            let base = keys::offset_index_base(&key);
            let (log_index, segment) =
                keys::decode_offset_location(&value).ok_or_else(|| StorageError::Corrupt {
                    cf: Cf::OffsetIndex.name(),
                    key: key.clone(),
                    reason: format!("offset location of {} bytes", value.len()),
                })?;
            if cached.as_ref().map(|e| LogIndex(e.log_id.index)) != Some(log_index) {
                cached = Some(read_entry(engine, partition, log_index)?);
            }
            let events = segment_events(cached.as_ref().expect("just cached"), segment, partition);
            for (i, event) in events.iter().enumerate() {
                let event_offset = base.plus(i as u64);
                if event_offset < offset {
                    continue;
                }
                if event_offset >= watermark.high {
                    break 'walk;
                }
                let size = event.accounted_bytes();
                if !out.is_empty() && (bytes + size > limits.max_bytes || out.len() >= max_events) {
                    break 'walk;
                }
                bytes += size;
                out.push(StoredEvent {
                    offset: event_offset,
                    event: event.clone(),
                });
            }
        }
        cursor = next_cursor.to_vec();
    }
    Ok(out)
}

fn segment_events(entry: &Entry, segment: u32, partition: PartitionId) -> &[Event] {
    match &entry.payload {
        openraft::EntryPayload::Normal(Command::Partition(PartitionCommand::Append(batch))) => {
            match batch.segments.get(segment as usize) {
                Some(s) => &s.events,
                None => panic!(
                    "{partition}: offset index points at segment {segment} of {}",
                    entry.log_id
                ),
            }
        }
        _ => panic!(
            "{partition}: offset index points at non-append entry {}",
            entry.log_id
        ),
    }
}

#[cfg(all(test, feature = "rocksdb"))]
mod tests {
    //! Goal: a read's size bound counts each event's overhead, so tiny or empty events
    //! cannot make a response unbounded. Method: one stored entry of 20,000 empty events,
    //! read with byte and event limits.
    use super::*;
    use crate::partition::command::{AppendBatch, ProduceSegment};
    use crate::raft::codec::encode;
    use crate::storage::rocks::RocksTuning;
    use crate::storage::{checksummed, RocksEngine, WriteBatch};

    fn store_empty_events(engine: &dyn StorageEngine, partition: PartitionId, count: usize) {
        let event = Event {
            key: None,
            value: Default::default(),
            headers: Vec::new(),
            timestamp_ms: 1,
        };
        let batch = AppendBatch {
            segments: vec![ProduceSegment {
                producer_id: crate::types::ProducerId::NONE,
                first_sequence: 0,
                events: vec![event; count],
            }],
        };
        let entry = Entry {
            log_id: openraft::LogId::new(openraft::CommittedLeaderId::new(1, 1), 5),
            payload: openraft::EntryPayload::Normal(Command::Partition(PartitionCommand::Append(
                batch,
            ))),
        };
        let mut writes = WriteBatch::default();
        writes.put(
            Cf::RaftLog,
            keys::raft_log(partition, 5),
            checksummed(&encode(&entry)),
        );
        writes.put(
            Cf::OffsetIndex,
            keys::offset_index(partition, Offset::ZERO),
            keys::offset_location(LogIndex(5), 0),
        );
        engine.write(writes).unwrap();
    }

    #[test]
    fn reads_of_empty_events_are_bounded_by_overhead_and_count() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let engine = runtime
            .block_on(RocksEngine::open(dir.path(), RocksTuning::default()))
            .unwrap();
        let partition = PartitionId(9);
        store_empty_events(&engine, partition, 20_000);
        let watermark = Watermark {
            high: Offset(20_000),
            log_start: Offset::ZERO,
        };
        let by_bytes = ReadLimits {
            max_bytes: 100 * evlog_proto::limits::EVENT_OVERHEAD_BYTES,
            max_events: usize::MAX,
        };
        let events = read_events(&engine, partition, Offset::ZERO, watermark, by_bytes).unwrap();
        assert_eq!(events.len(), 100);
        let unbounded = ReadLimits {
            max_bytes: usize::MAX,
            max_events: usize::MAX,
        };
        let events = read_events(&engine, partition, Offset(10), watermark, unbounded).unwrap();
        assert_eq!(events.len(), READ_EVENTS_MAX);
        assert_eq!(events[0].offset, Offset(10));
    }
}
