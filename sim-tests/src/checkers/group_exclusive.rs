//! Checker 8: no two members of a consumer group hold the same partition at the same time,
//! judged from the members' own logs: each member's holding of a partition runs from its
//! `Assigned` to its `Released` (or to the end of the run), and two members' holdings of
//! one partition must not overlap. A member must also consume only partitions it holds.

use std::collections::BTreeMap;

use super::Verdict;
use crate::history::{History, MemberEntry, PartitionRef};

/// A member's holding of a partition: `[from, to)` in ms; `to` is None while held at the end.
#[derive(Debug, Clone)]
struct Holding<'a> {
    member: &'a str,
    from: u64,
    to: Option<u64>,
}

pub fn check(history: &History) -> Verdict {
    let mut verdict = Verdict::new("group_exclusive");
    let mut holdings: BTreeMap<&PartitionRef, Vec<Holding>> = BTreeMap::new();
    for log in &history.group_members {
        let mut open: BTreeMap<&PartitionRef, u64> = BTreeMap::new();
        for entry in &log.entries {
            verdict.checked += 1;
            match entry {
                MemberEntry::Assigned { at_ms, partition } => {
                    if open.insert(partition, *at_ms).is_some() {
                        verdict.violations.push(format!(
                            "{}: assigned {partition} at {at_ms} ms while holding it",
                            log.member
                        ));
                    }
                }
                MemberEntry::Released { at_ms, partition } => {
                    if let Some(from) = open.remove(partition) {
                        holdings.entry(partition).or_default().push(Holding {
                            member: &log.member,
                            from,
                            to: Some(*at_ms),
                        });
                    }
                }
                MemberEntry::Consumed {
                    at_ms,
                    partition,
                    offset,
                } => {
                    if !open.contains_key(partition) {
                        verdict.violations.push(format!(
                            "{}: consumed {partition}@{offset} at {at_ms} ms without holding it",
                            log.member
                        ));
                    }
                }
            }
        }
        for (partition, from) in open {
            holdings.entry(partition).or_default().push(Holding {
                member: &log.member,
                from,
                to: None,
            });
        }
    }
    for (partition, list) in &holdings {
        for (i, a) in list.iter().enumerate() {
            for b in &list[i + 1..] {
                let overlap = a.member != b.member
                    && b.to.is_none_or(|to| a.from < to)
                    && a.to.is_none_or(|to| b.from < to);
                if overlap {
                    verdict.violations.push(format!(
                        "{partition} held by {} [{} ms, {:?}) and {} [{} ms, {:?}) at once",
                        a.member, a.from, a.to, b.member, b.from, b.to
                    ));
                }
            }
        }
    }
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::MemberLog;

    fn p0() -> PartitionRef {
        PartitionRef {
            topic: "t".into(),
            index: 0,
        }
    }

    fn log(member: &str, entries: &[(char, u64)]) -> MemberLog {
        MemberLog {
            member: member.into(),
            entries: entries
                .iter()
                .map(|(kind, at_ms)| match kind {
                    'a' => MemberEntry::Assigned {
                        at_ms: *at_ms,
                        partition: p0(),
                    },
                    'r' => MemberEntry::Released {
                        at_ms: *at_ms,
                        partition: p0(),
                    },
                    _ => MemberEntry::Consumed {
                        at_ms: *at_ms,
                        partition: p0(),
                        offset: *at_ms,
                    },
                })
                .collect(),
        }
    }

    fn history(logs: Vec<MemberLog>) -> History {
        History {
            group_members: logs,
            ..History::default()
        }
    }

    #[test]
    fn passes_a_partition_handed_from_one_member_to_the_next() {
        let h = history(vec![
            log("m1", &[('a', 0), ('c', 5), ('r', 10)]),
            log("m2", &[('a', 10), ('c', 12)]),
        ]);
        assert!(check(&h).passed(), "{:?}", check(&h).violations);
    }

    #[test]
    fn catches_two_holders_at_once_and_consuming_without_holding() {
        let overlap = history(vec![
            log("m1", &[('a', 0), ('r', 10)]),
            log("m2", &[('a', 9)]),
        ]);
        assert!(!check(&overlap).passed(), "overlap");
        let still_held = history(vec![log("m1", &[('a', 0)]), log("m2", &[('a', 50)])]);
        assert!(!check(&still_held).passed(), "never released");
        let unheld = history(vec![log("m1", &[('a', 0), ('r', 10), ('c', 11)])]);
        assert!(!check(&unheld).passed(), "consumed after release");
    }
}
