//! The target assignment: which member of a group should own which partition.
//!
//! Computed inside `apply` from replicated state only (subscriptions, partition counts, the
//! previous target), so every replica of the coordinator computes the same one. Per topic,
//! in name order, the topic's partitions are shared among the members subscribed to it so
//! that counts differ by at most one (balanced); a member keeps the partitions it was
//! targeted for before, up to its share (sticky); the rest go to the member with room that
//! holds the fewest partitions over all topics so far, ties by member id (so many
//! one-partition topics spread over the members instead of piling on the first).

use std::collections::{BTreeMap, BTreeSet};

use super::command::TopicPartition;
use crate::types::MemberId;

pub type Assignment = BTreeMap<MemberId, BTreeSet<TopicPartition>>;

/// The new target of every member in `subscriptions` (members absent from it get
/// nothing), given each topic's partition count and the previous target.
pub fn target_assignment(
    subscriptions: &BTreeMap<MemberId, BTreeSet<String>>,
    partition_counts: &BTreeMap<String, u32>,
    previous: &Assignment,
) -> Assignment {
    let mut target: Assignment = subscriptions
        .keys()
        .map(|member| (member.clone(), BTreeSet::new()))
        .collect();
    let mut load: BTreeMap<&MemberId, usize> = subscriptions.keys().map(|m| (m, 0)).collect();
    for (topic, &count) in partition_counts {
        let subscribers: Vec<&MemberId> = subscriptions
            .iter()
            .filter(|(_, topics)| topics.contains(topic))
            .map(|(member, _)| member)
            .collect();
        if subscribers.is_empty() || count == 0 {
            continue;
        }
        let shares = topic_shares(topic, count, &subscribers, previous, &load);
        for (member, partitions) in shares {
            *load.get_mut(member).expect("a subscriber is a member") += partitions.len();
            target
                .get_mut(member)
                .expect("a subscriber is a member")
                .extend(partitions.into_iter().map(|partition| TopicPartition {
                    topic: topic.clone(),
                    partition,
                }));
        }
    }
    target
}

/// One topic's partitions among its subscribers.
fn topic_shares<'m>(
    topic: &str,
    count: u32,
    subscribers: &[&'m MemberId],
    previous: &Assignment,
    load: &BTreeMap<&MemberId, usize>,
) -> BTreeMap<&'m MemberId, Vec<u32>> {
    let held = |member: &MemberId| -> Vec<u32> {
        previous.get(member).map_or_else(Vec::new, |owned| {
            owned
                .iter()
                .filter(|tp| tp.topic == topic && tp.partition < count)
                .map(|tp| tp.partition)
                .collect()
        })
    };
    let held: BTreeMap<&MemberId, Vec<u32>> = subscribers.iter().map(|m| (*m, held(m))).collect();
    let base = count as usize / subscribers.len();
    let extra = count as usize % subscribers.len();
    // Who gets one more than the base share: those already holding more of this topic
    // (fewest moves), then the least loaded, then by id.
    let mut order: Vec<&MemberId> = subscribers.to_vec();
    order.sort_by_key(|m| (std::cmp::Reverse(held[m].len()), load[m], *m));
    let quota: BTreeMap<&MemberId, usize> = order
        .iter()
        .enumerate()
        .map(|(rank, m)| (*m, base + usize::from(rank < extra)))
        .collect();
    let mut shares: BTreeMap<&MemberId, Vec<u32>> = BTreeMap::new();
    let mut taken = BTreeSet::new();
    for member in subscribers {
        let kept: Vec<u32> = held[member].iter().copied().take(quota[member]).collect();
        taken.extend(kept.iter().copied());
        shares.insert(*member, kept);
    }
    for partition in (0..count).filter(|p| !taken.contains(p)) {
        let member = *subscribers
            .iter()
            .filter(|m| shares[*m].len() < quota[*m])
            .min_by_key(|m| (load[*m] + shares[*m].len(), **m))
            .expect("the quotas add up to the partition count");
        shares
            .get_mut(member)
            .expect("a share per subscriber")
            .push(partition);
    }
    shares
}

#[cfg(test)]
mod tests {
    //! Goal: the target is balanced (per topic, counts differ by at most one), complete
    //! (every partition of a subscribed topic has one owner), sticky (a member that joins
    //! or leaves moves only the partitions it must) and deterministic. Method: compute
    //! targets for small groups and check each property.
    use super::*;

    fn member(id: &str) -> MemberId {
        MemberId::parse(id).unwrap()
    }

    fn subs(members: &[(&str, &[&str])]) -> BTreeMap<MemberId, BTreeSet<String>> {
        members
            .iter()
            .map(|(m, topics)| (member(m), topics.iter().map(|t| t.to_string()).collect()))
            .collect()
    }

    fn counts(topics: &[(&str, u32)]) -> BTreeMap<String, u32> {
        topics.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    fn owners(target: &Assignment) -> BTreeMap<TopicPartition, Vec<MemberId>> {
        let mut owners: BTreeMap<TopicPartition, Vec<MemberId>> = BTreeMap::new();
        for (m, tps) in target {
            for tp in tps {
                owners.entry(tp.clone()).or_default().push(m.clone());
            }
        }
        owners
    }

    #[test]
    fn every_partition_has_exactly_one_owner_and_shares_differ_by_at_most_one() {
        let s = subs(&[("a", &["orders"]), ("b", &["orders"]), ("c", &["orders"])]);
        let target = target_assignment(&s, &counts(&[("orders", 7)]), &Assignment::new());
        let owners = owners(&target);
        assert_eq!(owners.len(), 7);
        assert!(owners.values().all(|o| o.len() == 1));
        let sizes: Vec<usize> = target.values().map(BTreeSet::len).collect();
        assert_eq!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap(), 1);
    }

    #[test]
    fn a_joining_member_takes_only_its_share_and_the_others_keep_the_rest() {
        let c = counts(&[("orders", 6)]);
        let two = subs(&[("a", &["orders"]), ("b", &["orders"])]);
        let before = target_assignment(&two, &c, &Assignment::new());
        let three = subs(&[("a", &["orders"]), ("b", &["orders"]), ("c", &["orders"])]);
        let after = target_assignment(&three, &c, &before);
        assert_eq!(after[&member("c")].len(), 2);
        for m in ["a", "b"] {
            assert!(
                after[&member(m)].is_subset(&before[&member(m)]),
                "{m} kept its own"
            );
            assert_eq!(after[&member(m)].len(), 2);
        }
    }

    #[test]
    fn a_leaving_members_partitions_are_shared_among_the_rest() {
        let c = counts(&[("orders", 6)]);
        let three = subs(&[("a", &["orders"]), ("b", &["orders"]), ("c", &["orders"])]);
        let before = target_assignment(&three, &c, &Assignment::new());
        let two = subs(&[("a", &["orders"]), ("b", &["orders"])]);
        let after = target_assignment(&two, &c, &before);
        for m in ["a", "b"] {
            assert!(before[&member(m)].is_subset(&after[&member(m)]));
            assert_eq!(after[&member(m)].len(), 3);
        }
    }

    #[test]
    fn only_subscribers_get_a_topic_and_single_partition_topics_spread() {
        let s = subs(&[
            ("a", &["t1", "t2", "t3", "t4"]),
            ("b", &["t1", "t2", "t3", "t4", "x"]),
        ]);
        let c = counts(&[("t1", 1), ("t2", 1), ("t3", 1), ("t4", 1), ("x", 2)]);
        let target = target_assignment(&s, &c, &Assignment::new());
        assert!(target[&member("a")].iter().all(|tp| tp.topic != "x"));
        let a_singles = target[&member("a")].len();
        let b_singles = target[&member("b")]
            .iter()
            .filter(|tp| tp.topic != "x")
            .count();
        assert_eq!((a_singles, b_singles), (2, 2), "{target:?}");
    }

    #[test]
    fn new_partitions_of_a_topic_are_assigned_and_vanished_ones_dropped() {
        let s = subs(&[("a", &["orders"]), ("b", &["orders"])]);
        let before = target_assignment(&s, &counts(&[("orders", 2)]), &Assignment::new());
        let grown = target_assignment(&s, &counts(&[("orders", 4)]), &before);
        assert_eq!(owners(&grown).len(), 4);
        for m in ["a", "b"] {
            assert!(before[&member(m)].is_subset(&grown[&member(m)]));
        }
        let gone = target_assignment(&s, &counts(&[]), &grown);
        assert!(gone.values().all(BTreeSet::is_empty));
    }

    #[test]
    fn the_same_inputs_give_the_same_target() {
        let s = subs(&[("m2", &["a", "b"]), ("m1", &["a"]), ("m3", &["b"])]);
        let c = counts(&[("a", 5), ("b", 3)]);
        let first = target_assignment(&s, &c, &Assignment::new());
        assert_eq!(first, target_assignment(&s, &c, &Assignment::new()));
        assert_eq!(
            first,
            target_assignment(&s, &c, &first),
            "a target is its own fixpoint"
        );
    }
}
