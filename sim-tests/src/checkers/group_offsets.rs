//! Checker 7: a consumer group's committed offsets per partition never decrease and never
//! pass the partition's high watermark (the final log's length: watermarks only grow, so
//! an offset past it was past every earlier watermark too).

use std::collections::BTreeMap;

use super::Verdict;
use crate::history::{History, PartitionRef};

pub fn check(history: &History) -> Verdict {
    let mut verdict = Verdict::new("group_offsets");
    let mut last: BTreeMap<&PartitionRef, (u64, u64)> = BTreeMap::new();
    for seen in &history.group_commits {
        verdict.checked += 1;
        if let Some((offset, at_ms)) = last.insert(&seen.partition, (seen.offset, seen.at_ms)) {
            if seen.offset < offset {
                verdict.violations.push(format!(
                    "{}: committed offset went back from {offset} (at {at_ms} ms) to {} (at {} ms)",
                    seen.partition, seen.offset, seen.at_ms
                ));
            }
        }
        let high = history.final_logs.get(&seen.partition).map_or(0, Vec::len) as u64;
        if seen.offset > high {
            verdict.violations.push(format!(
                "{}: committed offset {} (at {} ms) is past the high watermark {high}",
                seen.partition, seen.offset, seen.at_ms
            ));
        }
    }
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::CommitSeen;

    fn history(offsets: &[u64]) -> History {
        let partition = PartitionRef {
            topic: "t".into(),
            index: 0,
        };
        let mut history = History::default();
        history
            .final_logs
            .insert(partition.clone(), vec![b"e".to_vec(); 5]);
        history.group_commits = offsets
            .iter()
            .enumerate()
            .map(|(i, offset)| CommitSeen {
                at_ms: i as u64,
                partition: partition.clone(),
                offset: *offset,
            })
            .collect();
        history
    }

    #[test]
    fn passes_offsets_that_grow_up_to_the_watermark() {
        assert!(check(&history(&[0, 2, 2, 5])).passed());
    }

    #[test]
    fn catches_an_offset_going_back_or_past_the_watermark() {
        assert!(!check(&history(&[3, 2])).passed(), "back");
        assert!(!check(&history(&[6])).passed(), "past the watermark");
    }
}
