//! The only owner of column-family names and key encodings.
//!
//! Every key starts with the big-endian `PartitionId`, so one partition's keys are one
//! contiguous range (cheap to scan and to drop) and iteration order is numeric order.
//!
//! | column family     | key                                  | value                          |
//! |-------------------|--------------------------------------|--------------------------------|
//! | `raft_log`        | partition (8) + log index (8)        | crc32c (4) + bincode(entry)    |
//! | `raft_state`      | partition (8) + kind (1)             | crc32c (4) + bincode(vote ...) |
//! | `offset_index`    | partition (8) + base offset (8)      | log index (8) + segment (4)    |
//! | `partition_state` | partition (8) + kind (1) [+ id (8)]  | crc32c (4) + bincode(state)    |
//! | `meta`            | ascii name                           | node identity                  |

use crate::types::{GroupId, LogIndex, Offset, PartitionId, ProducerId};

/// Column families of the node's one RocksDB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cf {
    RaftLog,
    RaftState,
    OffsetIndex,
    PartitionState,
    Meta,
}

impl Cf {
    pub const ALL: [Cf; 5] = [
        Cf::RaftLog,
        Cf::RaftState,
        Cf::OffsetIndex,
        Cf::PartitionState,
        Cf::Meta,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Cf::RaftLog => "raft_log",
            Cf::RaftState => "raft_state",
            Cf::OffsetIndex => "offset_index",
            Cf::PartitionState => "partition_state",
            Cf::Meta => "meta",
        }
    }
}

/// Kinds of `raft_state` records.
#[derive(Debug, Clone, Copy)]
#[repr(u8)]
pub enum RaftStateKind {
    Vote = 1,
    Committed = 2,
    LastPurged = 3,
}

/// Kinds of `partition_state` records.
#[derive(Debug, Clone, Copy)]
#[repr(u8)]
pub enum PartitionStateKind {
    /// Last applied log id, membership, high watermark, log start offset.
    Applied = 1,
    /// One idempotent producer's last sequence; the key continues with the producer id.
    Producer = 2,
    /// The last snapshot built or installed (meta + data).
    Snapshot = 4,
    /// One consumer group (`__groups` partitions); the key continues with the group id.
    Group = 5,
}

/// Key of `meta`: this data dir's node id (a node refuses a data dir of another node).
pub const META_NODE_ID: &[u8] = b"node_id";

/// Key of `meta`: this data dir's cluster id (a node refuses a data dir of another cluster).
pub const META_CLUSTER_ID: &[u8] = b"cluster_id";

/// Key of `meta`: the storage format this data dir was written in (a big-endian u32; absent
/// in data dirs of format 1).
pub const META_STORAGE_FORMAT: &[u8] = b"storage_format";

/// The storage format this build reads and writes. Raise it whenever a stored encoding
/// changes (a key layout, an entry's or a record's bincode shape) and say in
/// docs/operations.md what an older data dir needs. 2: partition commands are wrapped in
/// `Command::Partition`, partition snapshots carry consumer groups (consumer groups issue).
pub const STORAGE_FORMAT: u32 = 2;

pub fn partition_prefix(partition: PartitionId) -> [u8; 8] {
    partition.0.to_be_bytes()
}

/// First key after every key of `partition` (exclusive upper bound of its range).
pub fn partition_end(partition: PartitionId) -> [u8; 8] {
    assert!(
        partition.0 < u64::MAX,
        "partition id {partition} has no successor"
    );
    (partition.0 + 1).to_be_bytes()
}

pub fn raft_log(partition: PartitionId, log_index: u64) -> [u8; 16] {
    two_u64(partition.0, log_index)
}

pub fn raft_state(partition: PartitionId, kind: RaftStateKind) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[..8].copy_from_slice(&partition.0.to_be_bytes());
    key[8] = kind as u8;
    key
}

pub fn offset_index(partition: PartitionId, base_offset: Offset) -> [u8; 16] {
    two_u64(partition.0, base_offset.0)
}

/// The base offset an `offset_index` key holds.
pub fn offset_index_base(key: &[u8]) -> Offset {
    Offset(second_u64(key))
}

pub fn partition_state(partition: PartitionId, kind: PartitionStateKind) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[..8].copy_from_slice(&partition.0.to_be_bytes());
    key[8] = kind as u8;
    key
}

pub fn producer_state(partition: PartitionId, producer_id: ProducerId) -> [u8; 17] {
    let mut key = [0u8; 17];
    key[..9].copy_from_slice(&partition_state(partition, PartitionStateKind::Producer));
    key[9..].copy_from_slice(&producer_id.0.to_be_bytes());
    key
}

/// The producer a `producer_state` key belongs to.
pub fn producer_of_key(key: &[u8]) -> ProducerId {
    assert_eq!(key.len(), 17, "not a producer state key: {key:?}");
    ProducerId(u64::from_be_bytes(key[9..17].try_into().expect("8 bytes")))
}

/// Key of one consumer group's record: the kind's prefix, then the group id's bytes.
pub fn group_state(partition: PartitionId, group: &GroupId) -> Vec<u8> {
    let mut key = partition_state(partition, PartitionStateKind::Group).to_vec();
    key.extend_from_slice(group.as_str().as_bytes());
    key
}

/// The group id of a `group_state` key; None when its bytes are not one.
pub fn group_of_key(key: &[u8]) -> Option<GroupId> {
    let name = std::str::from_utf8(key.get(9..)?).ok()?;
    GroupId::parse(name).ok()
}

/// Range `[start, end)` of every group record of `partition`.
pub fn group_range(partition: PartitionId) -> ([u8; 9], [u8; 9]) {
    let start = partition_state(partition, PartitionStateKind::Group);
    let mut end = start;
    end[8] += 1;
    (start, end)
}

/// Range `[start, end)` of every producer record of `partition`. The end is the bare
/// prefix of the next kind, which sorts before every longer key of that kind.
pub fn producer_range(partition: PartitionId) -> ([u8; 17], [u8; 9]) {
    let mut end = partition_state(partition, PartitionStateKind::Producer);
    end[8] += 1;
    (producer_state(partition, ProducerId::NONE), end)
}

/// Decodes the second u64 of a 16-byte key (log index or base offset).
pub fn second_u64(key: &[u8]) -> u64 {
    assert_eq!(key.len(), 16, "not a partition+u64 key: {key:?}");
    u64::from_be_bytes(key[8..16].try_into().expect("8 bytes"))
}

/// Value of an `offset_index` record: where the events starting at its base offset are:
/// the Raft entry's log index and the segment (produce request) inside it.
pub fn offset_location(log_index: LogIndex, segment: u32) -> [u8; 12] {
    let mut value = [0u8; 12];
    value[..8].copy_from_slice(&log_index.0.to_be_bytes());
    value[8..].copy_from_slice(&segment.to_be_bytes());
    value
}

pub fn decode_offset_location(value: &[u8]) -> Option<(LogIndex, u32)> {
    if value.len() != 12 {
        return None;
    }
    let log_index = u64::from_be_bytes(value[..8].try_into().ok()?);
    let segment = u32::from_be_bytes(value[8..].try_into().ok()?);
    Some((LogIndex(log_index), segment))
}

fn two_u64(a: u64, b: u64) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&a.to_be_bytes());
    key[8..].copy_from_slice(&b.to_be_bytes());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raft_log_keys_sort_by_partition_then_index() {
        let a = raft_log(PartitionId(1), 255);
        let b = raft_log(PartitionId(1), 256);
        let c = raft_log(PartitionId(2), 0);
        assert!(a < b && b < c);
        assert!(c.as_slice() >= partition_end(PartitionId(1)).as_slice());
        assert_eq!(second_u64(&b), 256);
    }

    #[test]
    fn producer_range_covers_only_producer_records() {
        let p = PartitionId(7);
        let (start, end) = producer_range(p);
        let record = producer_state(p, ProducerId(u64::MAX));
        assert!(start <= record && record.as_slice() < end.as_slice());
        let applied = partition_state(p, PartitionStateKind::Applied);
        assert!(applied.as_slice() < start.as_slice());
        let snapshot = partition_state(p, PartitionStateKind::Snapshot);
        assert!(snapshot.as_slice() >= end.as_slice());
    }
}
