//! The consumer groups a `__groups` partition coordinates: members, epochs, target and
//! current assignment, committed offsets. Applied from [`GroupCommand`]s inside the
//! partition's state machine (`partition::state`), deterministically, and persisted one
//! record per group (`partition_state | Group | group id`) in the apply's write.
//!
//! Invariants, asserted after every command:
//! - a partition is in at most one member's `owned` (never two owners at once);
//! - a member owns only partitions of topics it subscribes to that exist;
//! - a member's epoch never decreases, nor does a group's;
//! - a committed offset never decreases, except by `Reset`.
//!
//! Moves are cooperative: a partition leaves its owner's `owned` only when the owner
//! released it (an `Update` without it), left, or was expelled; only then can the
//! member it is targeted for get it (`reconcile`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::assign::{target_assignment, Assignment};
use super::command::{
    Commit, GroupCommand, GroupRefusal, GroupResponse, Join, MemberAssignment, TopicPartition,
    Update,
};
use crate::sim_hooks::PlantedBug;
use crate::types::{GroupId, MemberEpoch, MemberId, Offset};

/// Most members one group may have (live or departed static ones).
pub const MEMBERS_MAX: usize = 1000;

/// Most groups one `__groups` partition coordinates.
pub const GROUPS_PER_PARTITION_MAX: usize = 100_000;

/// One consumer group as its coordinator keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// Bumped by every change that can change the target. Never decreases.
    pub epoch: u64,
    pub members: BTreeMap<MemberId, Member>,
    /// Partition counts of the topics the members subscribe to, as last proposed.
    pub partition_counts: BTreeMap<String, u32>,
    /// Where each member's assignment is heading.
    pub target: Assignment,
    pub offsets: BTreeMap<TopicPartition, Committed>,
    /// When the group last became empty (None while it has members).
    pub empty_since_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub instance_id: Option<String>,
    pub subscription: BTreeSet<String>,
    pub session_timeout_ms: u32,
    /// Grows every time what the member is told changes (other members' joins and leaves
    /// change it too). Never decreases.
    pub epoch: MemberEpoch,
    /// What it may consume or is revoking, each with the member epoch it was given at.
    pub owned: BTreeMap<TopicPartition, MemberEpoch>,
    /// A static member that left: kept, idle, until expelled, so a restarted instance
    /// takes its partitions back without a rebalance.
    pub departed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Committed {
    pub offset: Offset,
    pub metadata: String,
    pub committed_ms: i64,
}

impl Group {
    /// What `member` is told now: partitions it may consume and those it must give up.
    pub fn assignment_of(&self, member: &MemberId) -> Option<MemberAssignment> {
        let m = self.members.get(member)?;
        let target = self.target.get(member);
        let (assigned, revoking) = m
            .owned
            .keys()
            .cloned()
            .partition(|tp| target.is_some_and(|t| t.contains(tp)));
        Some(MemberAssignment {
            member: Some(member.clone()),
            epoch: m.epoch,
            assigned,
            revoking,
        })
    }

    /// Whether every member owns exactly its target (nothing to move).
    pub fn is_stable(&self) -> bool {
        self.members.iter().all(|(id, m)| {
            let target = self.target.get(id).cloned().unwrap_or_default();
            m.owned.keys().cloned().collect::<BTreeSet<_>>() == target
        })
    }

    /// The member holding `partition`, if any.
    pub fn owner_of(&self, partition: &TopicPartition) -> Option<&MemberId> {
        self.members
            .iter()
            .find(|(_, m)| m.owned.contains_key(partition))
            .map(|(id, _)| id)
    }

    fn subscriptions(&self) -> BTreeMap<MemberId, BTreeSet<String>> {
        self.members
            .iter()
            .map(|(id, m)| (id.clone(), m.subscription.clone()))
            .collect()
    }

    /// A change that can move partitions: a new group epoch and a new target.
    fn retarget(&mut self) {
        self.epoch += 1;
        let topics: BTreeSet<&String> = self
            .members
            .values()
            .flat_map(|m| &m.subscription)
            .collect();
        self.partition_counts
            .retain(|topic, _| topics.contains(topic));
        self.target =
            target_assignment(&self.subscriptions(), &self.partition_counts, &self.target);
        // Partitions that no longer exist are nobody's to revoke.
        let counts = self.partition_counts.clone();
        for m in self.members.values_mut() {
            m.owned.retain(|tp, _| {
                m.subscription.contains(&tp.topic)
                    && counts.get(&tp.topic).is_some_and(|n| tp.partition < *n)
            });
        }
    }

    /// Gives each member the partitions of its target that nobody holds, stamped with the
    /// epoch the member moves to at the end of this command (`advance_epochs`).
    fn reconcile(&mut self) {
        let mut held: BTreeSet<TopicPartition> = self
            .members
            .values()
            .flat_map(|m| m.owned.keys().cloned())
            .collect();
        let ids: Vec<MemberId> = self.members.keys().cloned().collect();
        if crate::sim_hooks::is_planted(PlantedBug::AssignBeforeRevoke) {
            self.take_revoking_partitions(&mut held);
        }
        for id in ids {
            let grants: Vec<TopicPartition> = self
                .target
                .get(&id)
                .map(|t| t.iter().filter(|tp| !held.contains(*tp)).cloned().collect())
                .unwrap_or_default();
            let member = self.members.get_mut(&id).expect("a member");
            let next = MemberEpoch(member.epoch.0 + 1);
            for tp in grants {
                held.insert(tp.clone());
                member.owned.insert(tp, next);
            }
        }
    }

    /// Moves to a new epoch every member whose view (assigned, revoking) differs from
    /// what `before` told it, and `joined` (a join always starts a new epoch).
    fn advance_epochs(&mut self, before: Option<&Group>, joined: Option<&MemberId>) {
        let ids: Vec<MemberId> = self.members.keys().cloned().collect();
        for id in ids {
            let view = |g: &Group| g.assignment_of(&id).map(|a| (a.assigned, a.revoking));
            let told = before.and_then(view);
            if joined == Some(&id) || told.is_none() || told != view(self) {
                let member = self.members.get_mut(&id).expect("a member");
                member.epoch = MemberEpoch(member.epoch.0 + 1);
            }
        }
    }

    /// The planted bug `AssignBeforeRevoke`: every partition still held by a member that
    /// is revoking it is taken from it at once, before it said it stopped.
    fn take_revoking_partitions(&mut self, held: &mut BTreeSet<TopicPartition>) {
        let target = self.target.clone();
        for (id, member) in self.members.iter_mut() {
            let mine = target.get(id);
            member.owned.retain(|tp, _| {
                let keep = mine.is_some_and(|t| t.contains(tp));
                if !keep {
                    held.remove(tp);
                }
                keep
            });
        }
    }

    fn check_invariants(&self, group: &GroupId) {
        let mut seen = BTreeMap::new();
        for (id, m) in &self.members {
            for tp in m.owned.keys() {
                if let Some(other) = seen.insert(tp, id) {
                    panic!("group {group}: {tp} owned by both {other} and {id}");
                }
                assert!(
                    m.subscription.contains(&tp.topic),
                    "group {group}: {id} owns {tp} without subscribing to it"
                );
            }
        }
    }
}

/// Every group of one `__groups` partition.
#[derive(Debug, Clone, Default)]
pub struct GroupTable {
    groups: BTreeMap<GroupId, Arc<Group>>,
}

/// What applying a command changed, for the caller's write: a group's new record, or its
/// deletion (None).
pub type Touched = Option<(GroupId, Option<Arc<Group>>)>;

impl GroupTable {
    pub fn from_groups(groups: impl IntoIterator<Item = (GroupId, Group)>) -> Self {
        Self {
            groups: groups
                .into_iter()
                .map(|(id, g)| (id, Arc::new(g)))
                .collect(),
        }
    }

    pub fn groups(&self) -> &BTreeMap<GroupId, Arc<Group>> {
        &self.groups
    }

    /// Applies one command; returns the answer and what to persist.
    pub fn apply(&mut self, command: GroupCommand) -> (GroupResponse, Touched) {
        let id = command.group().clone();
        let existing = self.groups.get(&id).cloned();
        let joined = match &command {
            GroupCommand::Join(join) => Some(join.member.clone()),
            _ => None,
        };
        let mut group = existing.as_deref().cloned();
        if existing.is_none() && self.groups.len() >= GROUPS_PER_PARTITION_MAX {
            let refusal = GroupRefusal::Invalid(format!(
                "this coordinator already holds {GROUPS_PER_PARTITION_MAX} groups; delete unused ones"
            ));
            return (GroupResponse::Refused(refusal), None);
        }
        let answer = match command {
            GroupCommand::Join(join) => {
                self::join(group.get_or_insert_with(Group::default), &id, join)
            }
            GroupCommand::Update(update) => {
                with(&mut group, &id, |g| update_member(g, &id, update))
            }
            GroupCommand::Leave { member, now_ms, .. } => {
                with(&mut group, &id, |g| remove_member(g, &member, now_ms, true))
            }
            GroupCommand::Expel { member, now_ms, .. } => with(&mut group, &id, |g| {
                remove_member(g, &member, now_ms, false)
            }),
            GroupCommand::Topics {
                partition_counts, ..
            } => with(&mut group, &id, |g| {
                if g.partition_counts != partition_counts {
                    g.partition_counts = partition_counts;
                    g.retarget();
                    g.reconcile();
                }
                Ok(GroupResponse::Done)
            }),
            GroupCommand::Commit(commit) => with(&mut group, &id, |g| self::commit(g, &id, commit)),
            GroupCommand::Reset {
                offsets, now_ms, ..
            } => {
                let g = group.get_or_insert_with(|| Group {
                    empty_since_ms: Some(now_ms),
                    ..Group::default()
                });
                reset(g, &id, offsets, now_ms)
            }
            GroupCommand::Delete { .. } => match &group {
                None => Err(GroupRefusal::UnknownGroup(id.clone())),
                Some(g) if !g.members.is_empty() => Err(not_empty(&id, g, "it can be deleted")),
                Some(_) => {
                    group = None;
                    Ok(GroupResponse::Done)
                }
            },
            GroupCommand::Expire { empty_since_ms, .. } => {
                if group.as_ref().is_some_and(|g| {
                    g.members.is_empty() && g.empty_since_ms == Some(empty_since_ms)
                }) {
                    group = None;
                }
                Ok(GroupResponse::Done)
            }
        };
        let answer = match answer {
            Ok(answer) => answer,
            // Refused: nothing changes.
            Err(refusal) => return (GroupResponse::Refused(refusal), None),
        };
        let joined = joined.as_ref();
        if let Some(g) = &mut group {
            g.advance_epochs(existing.as_deref(), joined);
        }
        let answer = match answer {
            GroupResponse::Member(told) => {
                let member = told.member.expect("join and update name their member");
                let g = group.as_ref().expect("a member's group");
                GroupResponse::Member(g.assignment_of(&member).expect("a member"))
            }
            other => other,
        };
        if let Some(g) = &group {
            g.check_invariants(&id);
            if let Some(before) = &existing {
                assert!(g.epoch >= before.epoch, "group {id}: epoch went back");
            }
        }
        let touched = match group {
            Some(g) => {
                let g = Arc::new(g);
                self.groups.insert(id.clone(), g.clone());
                Some(g)
            }
            None => {
                self.groups.remove(&id);
                None
            }
        };
        (answer, Some((id, touched)))
    }
}

/// Runs `change` on an existing group; UNKNOWN_GROUP otherwise.
fn with(
    group: &mut Option<Group>,
    id: &GroupId,
    change: impl FnOnce(&mut Group) -> Result<GroupResponse, GroupRefusal>,
) -> Result<GroupResponse, GroupRefusal> {
    match group {
        Some(g) => change(g),
        None => Err(GroupRefusal::UnknownGroup(id.clone())),
    }
}

fn not_empty(id: &GroupId, g: &Group, what: &str) -> GroupRefusal {
    GroupRefusal::NotEmpty {
        group: id.clone(),
        members: g.members.len(),
        what: what.to_owned(),
    }
}

fn fenced(id: &GroupId, member: &MemberId) -> GroupRefusal {
    GroupRefusal::FencedMember {
        group: id.clone(),
        member: member.clone(),
    }
}

fn join(g: &mut Group, id: &GroupId, join: Join) -> Result<GroupResponse, GroupRefusal> {
    if !g.members.contains_key(&join.member) && g.members.len() >= MEMBERS_MAX {
        return Err(GroupRefusal::Invalid(format!(
            "group {id} has {MEMBERS_MAX} members, the most a group may have"
        )));
    }
    let returning = join.instance_id.as_ref().and_then(|instance| {
        g.members
            .iter()
            .find(|(id, m)| **id != join.member && m.instance_id.as_ref() == Some(instance))
            .map(|(id, _)| id.clone())
    });
    let mut member = Member {
        instance_id: join.instance_id,
        subscription: join.subscription,
        session_timeout_ms: join.session_timeout_ms,
        epoch: MemberEpoch::JOINING,
        owned: BTreeMap::new(),
        departed: false,
    };
    let mut subscription_changed = true;
    if let Some(old_id) = returning {
        // A static member comes back: it takes over the old slot, fencing the old id.
        let old = g.members.remove(&old_id).expect("found above");
        subscription_changed = old.subscription != member.subscription;
        member.epoch = old.epoch;
        member.owned = old.owned;
        if let Some(target) = g.target.remove(&old_id) {
            g.target.insert(join.member.clone(), target);
        }
    } else if let Some(old) = g.members.remove(&join.member) {
        // The same id joining again has dropped what it held.
        member.epoch = old.epoch;
    }
    g.members.insert(join.member.clone(), member);
    g.empty_since_ms = None;
    if subscription_changed || g.partition_counts != join.partition_counts {
        g.partition_counts = join.partition_counts;
        g.retarget();
    }
    g.reconcile();
    Ok(GroupResponse::Member(
        g.assignment_of(&join.member).expect("inserted above"),
    ))
}

fn update_member(
    g: &mut Group,
    id: &GroupId,
    update: Update,
) -> Result<GroupResponse, GroupRefusal> {
    let target = g.target.get(&update.member).cloned().unwrap_or_default();
    let Some(m) = g.members.get_mut(&update.member) else {
        return Err(fenced(id, &update.member));
    };
    // Released: asked to revoke, and no longer held.
    m.owned
        .retain(|tp, _| target.contains(tp) || update.owned.contains(tp));
    m.departed = false;
    let retarget =
        m.subscription != update.subscription || g.partition_counts != update.partition_counts;
    m.subscription = update.subscription;
    if retarget {
        g.partition_counts = update.partition_counts;
        g.retarget();
    }
    g.reconcile();
    Ok(GroupResponse::Member(
        g.assignment_of(&update.member).expect("checked above"),
    ))
}

/// `leaving`: a clean leave (a static member stays, idle, until expelled); otherwise an
/// expulsion.
fn remove_member(
    g: &mut Group,
    member: &MemberId,
    now_ms: i64,
    leaving: bool,
) -> Result<GroupResponse, GroupRefusal> {
    let Some(m) = g.members.get_mut(member) else {
        return Ok(GroupResponse::Done); // Already gone: leaving twice is leaving.
    };
    if leaving && m.instance_id.is_some() {
        m.departed = true;
        return Ok(GroupResponse::Done);
    }
    g.members.remove(member);
    g.target.remove(member);
    if g.members.is_empty() {
        g.empty_since_ms = Some(now_ms);
    }
    g.retarget();
    g.reconcile();
    Ok(GroupResponse::Done)
}

fn commit(g: &mut Group, id: &GroupId, commit: Commit) -> Result<GroupResponse, GroupRefusal> {
    let Some(m) = g.members.get(&commit.member) else {
        if crate::sim_hooks::is_planted(PlantedBug::AcceptFencedCommit) {
            for c in commit.offsets {
                let committed = Committed {
                    offset: c.next_offset,
                    metadata: c.metadata,
                    committed_ms: commit.now_ms,
                };
                g.offsets.insert(c.partition, committed);
            }
            return Ok(GroupResponse::Done);
        }
        return Err(fenced(id, &commit.member));
    };
    if commit.epoch > m.epoch {
        return Err(GroupRefusal::StaleEpoch(format!(
            "member {} committed with epoch {}, but its epoch is {}",
            commit.member, commit.epoch, m.epoch
        )));
    }
    for c in &commit.offsets {
        let Some(given_at) = m.owned.get(&c.partition) else {
            return Err(GroupRefusal::StaleEpoch(format!(
                "member {} does not own {} (any more): its commit is refused",
                commit.member, c.partition
            )));
        };
        if commit.epoch < *given_at {
            return Err(GroupRefusal::StaleEpoch(format!(
                "member {} committed {} with epoch {}, older than epoch {given_at} at which it got it",
                commit.member, c.partition, commit.epoch
            )));
        }
        if let Some(done) = g.offsets.get(&c.partition) {
            if c.next_offset < done.offset {
                return Err(GroupRefusal::Invalid(format!(
                    "offset {} of {} is below the committed {}: committed offsets never go \
                     back (reset them while the group is empty)",
                    c.next_offset, c.partition, done.offset
                )));
            }
        }
    }
    for c in commit.offsets {
        g.offsets.insert(
            c.partition,
            Committed {
                offset: c.next_offset,
                metadata: c.metadata,
                committed_ms: commit.now_ms,
            },
        );
    }
    Ok(GroupResponse::Done)
}

fn reset(
    g: &mut Group,
    id: &GroupId,
    offsets: Vec<(TopicPartition, Offset)>,
    now_ms: i64,
) -> Result<GroupResponse, GroupRefusal> {
    if !g.members.is_empty() {
        return Err(not_empty(id, g, "its offsets can be reset"));
    }
    for (partition, offset) in offsets {
        g.offsets.insert(
            partition,
            Committed {
                offset,
                metadata: String::new(),
                committed_ms: now_ms,
            },
        );
    }
    Ok(GroupResponse::Done)
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
