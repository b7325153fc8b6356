//! Checker 1: every acknowledged event is readable at exactly one offset: the one its
//! acknowledgement named, in the partition it named, and nowhere else.

use super::{payload_places, show, Verdict};
use crate::history::{History, PartitionRef};

pub fn check(history: &History) -> Verdict {
    let mut verdict = Verdict::new("acked_readable");
    let places = payload_places(history);
    for (publish, index, offset) in history.acked() {
        verdict.checked += 1;
        let partition = PartitionRef {
            topic: publish.topic.clone(),
            index,
        };
        let payload = show(&publish.payload);
        match history
            .final_logs
            .get(&partition)
            .map(|log| log.get(offset as usize))
        {
            None => verdict.violations.push(format!(
                "{payload}: acked at {partition}@{offset}, partition never read"
            )),
            Some(None) => verdict.violations.push(format!(
                "{payload}: acked at {partition}@{offset}, but the log ends at {} (lost)",
                history.final_logs[&partition].len()
            )),
            Some(Some(found)) if *found != publish.payload => verdict.violations.push(format!(
                "{payload}: acked at {partition}@{offset}, which holds {}",
                show(found)
            )),
            Some(Some(_)) => {}
        }
        let count = places.get(publish.payload.as_slice()).map_or(0, Vec::len);
        if count > 1 {
            verdict
                .violations
                .push(format!("{payload}: acked once, found at {count} offsets"));
        }
    }
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Outcome, Publish};

    fn history(acked_offset: u64, log: &[&str]) -> History {
        let mut history = History::default();
        history.publishes.push(Publish {
            producer: "p".into(),
            topic: "t".into(),
            payload: b"a".to_vec(),
            outcome: Outcome::Acked {
                partition: 0,
                offset: acked_offset,
            },
        });
        history.final_logs.insert(
            PartitionRef {
                topic: "t".into(),
                index: 0,
            },
            log.iter().map(|s| s.as_bytes().to_vec()).collect(),
        );
        history
    }

    #[test]
    fn passes_when_the_acked_offset_holds_the_event() {
        assert!(check(&history(1, &["x", "a"])).passed());
    }

    #[test]
    fn catches_a_lost_a_moved_and_a_doubled_event() {
        assert!(!check(&history(2, &["x", "a"])).passed(), "lost");
        assert!(!check(&history(0, &["x", "a"])).passed(), "moved");
        assert!(!check(&history(1, &["a", "a"])).passed(), "doubled");
    }
}
