//! Consumer groups (design: docs/design/0001-consumer-groups.md). A group's state lives in
//! one partition of the internal topic `__groups` and is applied by that partition's state
//! machine; the partition's leader is the group's coordinator.
//!
//! - [`command`]: what the entries carry and answer (wrapped in `PartitionCommand::Group`).
//! - [`state`]: the groups of one `__groups` partition and how each command changes them.
//! - [`assign`]: the balanced, sticky target assignment.
//! - [`coordinator`]: what the node does for the groups whose partition it leads
//!   (heartbeats, commits, admin), and [`expiry`]: its clock (session timeouts, retention).

pub mod assign;
pub mod command;
pub mod coordinator;
pub mod expiry;
pub mod state;

/// The internal topic holding every group's state.
pub const GROUPS_TOPIC: &str = "__groups";

/// The `__groups` partition of `group`, for a topic of `partitions` partitions: FNV-1a
/// (64 bits) of the id's bytes, so the mapping is the same in every build and language.
pub fn partition_of(group: &crate::types::GroupId, partitions: u32) -> u32 {
    assert!(partitions > 0, "{GROUPS_TOPIC} has partitions");
    let hash = evlog_proto::hash::fnv1a64(group.as_str().as_bytes());
    (hash % u64::from(partitions)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::GroupId;

    #[test]
    fn a_group_maps_by_fnv1a_64_so_every_client_computes_the_same_partition() {
        // Goal: the mapping is FNV-1a 64, not a hash that may change between builds.
        // Method: the published test vectors ("a", "foobar"), taken modulo counts that
        // keep all of the hash's low bits.
        let vectors = [
            ("a", 0xaf63_dc4c_8601_ec8c_u64),
            ("foobar", 0x8594_4171_f739_67e8),
        ];
        for (name, fnv) in vectors {
            let group = GroupId::parse(name).unwrap();
            assert_eq!(
                partition_of(&group, 1 << 31),
                (fnv % (1 << 31)) as u32,
                "{name}"
            );
            assert_eq!(partition_of(&group, 8), (fnv % 8) as u32, "{name}");
        }
        assert_eq!(partition_of(&GroupId::parse("billing").unwrap(), 1), 0);
    }
}
