//! Goal: membership, cooperative moves and commit fencing behave as the design says,
//! and no partition ever has two owners. Method: drive a table with commands as a
//! coordinator would and inspect the answers (every `apply` also asserts the
//! invariants).
use super::*;
use crate::partition::group::command::OffsetCommit;

fn gid() -> GroupId {
    GroupId::parse("billing").unwrap()
}

fn mid(id: &str) -> MemberId {
    MemberId::parse(id).unwrap()
}

fn tp(partition: u32) -> TopicPartition {
    TopicPartition {
        topic: "orders".into(),
        partition,
    }
}

fn counts(n: u32) -> BTreeMap<String, u32> {
    [("orders".to_string(), n)].into()
}

fn join(table: &mut GroupTable, member: &str, instance: Option<&str>) -> MemberAssignment {
    let command = GroupCommand::Join(Join {
        group: gid(),
        member: mid(member),
        instance_id: instance.map(str::to_owned),
        subscription: ["orders".to_string()].into(),
        partition_counts: counts(6),
        session_timeout_ms: 10_000,
        now_ms: 1,
    });
    match table.apply(command).0 {
        GroupResponse::Member(assignment) => assignment,
        other => panic!("join answered {other:?}"),
    }
}

/// The member reports that it holds what it was assigned and nothing it was revoking.
fn release(table: &mut GroupTable, member: &str) -> MemberAssignment {
    let now = table.groups()[&gid()].assignment_of(&mid(member)).unwrap();
    let command = GroupCommand::Update(Update {
        group: gid(),
        member: mid(member),
        owned: now.assigned,
        subscription: ["orders".to_string()].into(),
        partition_counts: counts(6),
    });
    match table.apply(command).0 {
        GroupResponse::Member(assignment) => assignment,
        other => panic!("update answered {other:?}"),
    }
}

fn assignment(table: &GroupTable, member: &str) -> MemberAssignment {
    table.groups()[&gid()].assignment_of(&mid(member)).unwrap()
}

fn commit(
    table: &mut GroupTable,
    member: &str,
    epoch: u64,
    partition: u32,
    offset: u64,
) -> GroupResponse {
    let command = GroupCommand::Commit(Commit {
        group: gid(),
        member: mid(member),
        epoch: MemberEpoch(epoch),
        offsets: vec![OffsetCommit {
            partition: tp(partition),
            next_offset: Offset(offset),
            metadata: String::new(),
        }],
        now_ms: 5,
    });
    table.apply(command).0
}

#[test]
fn three_members_share_six_partitions_two_each() {
    let mut table = GroupTable::default();
    for m in ["a", "b", "c"] {
        join(&mut table, m, None);
    }
    for m in ["a", "b"] {
        release(&mut table, m);
    }
    let group = &table.groups()[&gid()];
    assert!(group.is_stable(), "{group:?}");
    for m in ["a", "b", "c"] {
        assert_eq!(assignment(&table, m).assigned.len(), 2, "{m}");
    }
}

#[test]
fn a_partition_moves_to_a_new_member_only_after_its_owner_released_it() {
    let mut table = GroupTable::default();
    let a = join(&mut table, "a", None);
    assert_eq!(a.assigned.len(), 6);
    let b = join(&mut table, "b", None);
    assert!(b.assigned.is_empty(), "everything is still a's: {b:?}");
    let a = assignment(&table, "a");
    assert_eq!((a.assigned.len(), a.revoking.len()), (3, 3));
    let moving = a.revoking.clone();
    release(&mut table, "a");
    let b = assignment(&table, "b");
    assert_eq!(b.assigned, moving, "b gets exactly what a released");
    assert!(assignment(&table, "a").revoking.is_empty());
}

#[test]
fn an_expelled_members_partitions_go_to_the_others_at_once() {
    let mut table = GroupTable::default();
    join(&mut table, "a", None);
    join(&mut table, "b", None);
    release(&mut table, "a");
    let command = GroupCommand::Expel {
        group: gid(),
        member: mid("b"),
        now_ms: 9,
    };
    assert_eq!(table.apply(command).0, GroupResponse::Done);
    assert_eq!(assignment(&table, "a").assigned.len(), 6);
    let fenced = commit(&mut table, "b", 1, 0, 1);
    assert!(
        matches!(
            fenced,
            GroupResponse::Refused(GroupRefusal::FencedMember { .. })
        ),
        "{fenced:?}"
    );
}

#[test]
fn commits_are_fenced_by_ownership_and_the_epoch_a_partition_was_given_at() {
    let mut table = GroupTable::default();
    let a = join(&mut table, "a", None);
    let first_epoch = a.epoch.0;
    assert_eq!(
        commit(&mut table, "a", first_epoch, 0, 10),
        GroupResponse::Done
    );
    join(&mut table, "b", None);
    release(&mut table, "a");
    let a = assignment(&table, "a");
    let b = assignment(&table, "b");
    assert!(a.epoch.0 > first_epoch);
    // An older epoch is fine for a partition a has owned since then (KIP-1251).
    let kept = a.assigned.iter().next().unwrap().partition;
    assert_eq!(
        commit(&mut table, "a", first_epoch, kept, 13),
        GroupResponse::Done
    );
    // Not a's any more: refused, nothing changed.
    let moved = b.assigned.iter().next().unwrap().partition;
    let stale = commit(&mut table, "a", a.epoch.0, moved, 20);
    assert!(
        matches!(stale, GroupResponse::Refused(GroupRefusal::StaleEpoch(_))),
        "{stale:?}"
    );
    // b got it at its current epoch: a commit with an epoch before that is stale.
    let early = commit(&mut table, "b", b.epoch.0 - 1, moved, 20);
    assert!(
        matches!(early, GroupResponse::Refused(GroupRefusal::StaleEpoch(_))),
        "{early:?}"
    );
    let future = commit(&mut table, "b", b.epoch.0 + 1, moved, 20);
    assert!(
        matches!(future, GroupResponse::Refused(GroupRefusal::StaleEpoch(_))),
        "{future:?}"
    );
    assert_eq!(
        commit(&mut table, "b", b.epoch.0, moved, 20),
        GroupResponse::Done
    );
    // Committed offsets never go back.
    let back = commit(&mut table, "b", b.epoch.0, moved, 19);
    assert!(
        matches!(back, GroupResponse::Refused(GroupRefusal::Invalid(_))),
        "{back:?}"
    );
    assert_eq!(
        table.groups()[&gid()].offsets[&tp(moved)].offset,
        Offset(20)
    );
}

#[test]
fn a_static_member_that_restarts_takes_its_partitions_back_without_a_rebalance() {
    let mut table = GroupTable::default();
    join(&mut table, "a", Some("instance-1"));
    join(&mut table, "b", Some("instance-2"));
    release(&mut table, "a");
    let before = assignment(&table, "b");
    let group_epoch = table.groups()[&gid()].epoch;
    let leave = GroupCommand::Leave {
        group: gid(),
        member: mid("b"),
        now_ms: 3,
    };
    table.apply(leave);
    assert_eq!(
        assignment(&table, "b").assigned,
        before.assigned,
        "kept while away"
    );
    let back = join(&mut table, "b2", Some("instance-2"));
    assert_eq!(back.assigned, before.assigned);
    assert!(back.epoch > before.epoch);
    assert_eq!(table.groups()[&gid()].epoch, group_epoch, "no new target");
    let old = commit(&mut table, "b", before.epoch.0, 0, 1);
    assert!(matches!(
        old,
        GroupResponse::Refused(GroupRefusal::FencedMember { .. })
    ));
}

#[test]
fn offsets_are_reset_and_groups_deleted_only_while_empty() {
    let mut table = GroupTable::default();
    join(&mut table, "a", None);
    let reset = GroupCommand::Reset {
        group: gid(),
        offsets: vec![(tp(0), Offset(7))],
        now_ms: 2,
    };
    let refused = table.apply(reset.clone()).0;
    assert!(matches!(
        refused,
        GroupResponse::Refused(GroupRefusal::NotEmpty { .. })
    ));
    let delete = GroupCommand::Delete { group: gid() };
    let refused = table.apply(delete.clone()).0;
    assert!(matches!(
        refused,
        GroupResponse::Refused(GroupRefusal::NotEmpty { .. })
    ));
    let leave = GroupCommand::Leave {
        group: gid(),
        member: mid("a"),
        now_ms: 3,
    };
    table.apply(leave);
    assert_eq!(table.groups()[&gid()].empty_since_ms, Some(3));
    assert_eq!(table.apply(reset).0, GroupResponse::Done);
    assert_eq!(table.groups()[&gid()].offsets[&tp(0)].offset, Offset(7));
    // Expiry of an older empty period does nothing; of this one forgets the group.
    let stale = GroupCommand::Expire {
        group: gid(),
        empty_since_ms: 1,
    };
    table.apply(stale);
    assert!(table.groups().contains_key(&gid()));
    assert_eq!(table.apply(delete.clone()).0, GroupResponse::Done);
    let unknown = table.apply(delete).0;
    assert!(matches!(
        unknown,
        GroupResponse::Refused(GroupRefusal::UnknownGroup(_))
    ));
}

#[test]
fn new_partitions_of_a_subscribed_topic_are_assigned() {
    let mut table = GroupTable::default();
    join(&mut table, "a", None);
    let grown = GroupCommand::Topics {
        group: gid(),
        partition_counts: counts(8),
    };
    table.apply(grown);
    assert_eq!(assignment(&table, "a").assigned.len(), 8);
}

#[test]
fn a_group_cannot_grow_past_its_member_limit() {
    let mut table = GroupTable::default();
    for i in 0..MEMBERS_MAX {
        join(&mut table, &format!("m{i}"), None);
    }
    let command = GroupCommand::Join(Join {
        group: gid(),
        member: mid("one-too-many"),
        instance_id: None,
        subscription: ["orders".to_string()].into(),
        partition_counts: counts(6),
        session_timeout_ms: 10_000,
        now_ms: 1,
    });
    let (answer, touched) = table.apply(command);
    assert!(matches!(
        answer,
        GroupResponse::Refused(GroupRefusal::Invalid(_))
    ));
    assert!(touched.is_none(), "nothing changed");
    assert_eq!(table.groups()[&gid()].members.len(), MEMBERS_MAX);
}
