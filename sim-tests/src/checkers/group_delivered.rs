//! Checker 9: every event below a consumer group's final committed offset of a partition
//! was delivered to some member (a commit never skips an event: at-least-once).

use std::collections::{BTreeMap, BTreeSet};

use super::Verdict;
use crate::history::{History, MemberEntry, PartitionRef};

pub fn check(history: &History) -> Verdict {
    let mut verdict = Verdict::new("group_delivered");
    let mut delivered: BTreeMap<&PartitionRef, BTreeSet<u64>> = BTreeMap::new();
    for log in &history.group_members {
        for entry in &log.entries {
            if let MemberEntry::Consumed {
                partition, offset, ..
            } = entry
            {
                delivered.entry(partition).or_default().insert(*offset);
            }
        }
    }
    let mut last: BTreeMap<&PartitionRef, u64> = BTreeMap::new();
    for seen in &history.group_commits {
        last.insert(&seen.partition, seen.offset);
    }
    for (partition, committed) in last {
        let seen = delivered.get(partition);
        let missing: Vec<u64> = (0..committed)
            .filter(|offset| !seen.is_some_and(|s| s.contains(offset)))
            .collect();
        verdict.checked += committed as usize;
        if let Some(first) = missing.first() {
            verdict.violations.push(format!(
                "{partition}: committed up to {committed} but {} events below it were never \
                 delivered to a member (the first at offset {first})",
                missing.len()
            ));
        }
    }
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{CommitSeen, MemberLog};

    fn history(delivered: &[u64], committed: u64) -> History {
        let partition = PartitionRef {
            topic: "t".into(),
            index: 0,
        };
        History {
            group_members: vec![MemberLog {
                member: "m".into(),
                entries: delivered
                    .iter()
                    .map(|offset| MemberEntry::Consumed {
                        at_ms: *offset,
                        partition: partition.clone(),
                        offset: *offset,
                    })
                    .collect(),
            }],
            group_commits: vec![CommitSeen {
                at_ms: 99,
                partition,
                offset: committed,
            }],
            ..History::default()
        }
    }

    #[test]
    fn passes_a_commit_below_what_was_delivered() {
        assert!(check(&history(&[0, 1, 2, 3], 3)).passed());
    }

    #[test]
    fn catches_a_commit_past_an_undelivered_event() {
        assert!(!check(&history(&[0, 2, 3], 3)).passed());
    }
}
