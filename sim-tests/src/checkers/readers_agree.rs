//! Checker 3: all readers agree on each partition's order. Every consumer (subscriber or
//! reader) must have seen a dense, monotonic run of offsets, never skipping or going
//! back, and at every offset exactly what the final log holds there: so every two
//! readers agree, and no reader ever saw an event the log later lost or changed.

use super::{show, Verdict};
use crate::history::History;

pub fn check(history: &History) -> Verdict {
    let mut verdict = Verdict::new("readers_agree");
    for consumed in &history.consumed {
        let who = format!("{} on {}", consumed.consumer, consumed.partition);
        let log = history.final_logs.get(&consumed.partition);
        let mut previous: Option<u64> = None;
        for (offset, payload) in &consumed.events {
            verdict.checked += 1;
            if let Some(previous) = previous {
                if *offset != previous + 1 {
                    verdict.violations.push(format!(
                        "{who}: offset {offset} after {previous} ({})",
                        if *offset <= previous {
                            "went back"
                        } else {
                            "skipped"
                        }
                    ));
                }
            }
            previous = Some(*offset);
            match log.map(|log| log.get(*offset as usize)) {
                Some(Some(expected)) if expected == payload => {}
                Some(Some(expected)) => verdict.violations.push(format!(
                    "{who}: saw {} at {offset}, the log holds {}",
                    show(payload),
                    show(expected)
                )),
                _ => verdict.violations.push(format!(
                    "{who}: saw {} at {offset}, past the end of the final log",
                    show(payload)
                )),
            }
        }
    }
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Consumed, PartitionRef};

    fn history(seen: &[(u64, &str)]) -> History {
        let partition = PartitionRef {
            topic: "t".into(),
            index: 0,
        };
        let mut history = History::default();
        history.final_logs.insert(
            partition.clone(),
            ["a", "b", "c"]
                .iter()
                .map(|s| s.as_bytes().to_vec())
                .collect(),
        );
        history.consumed.push(Consumed {
            consumer: "c".into(),
            partition,
            events: seen
                .iter()
                .map(|(o, p)| (*o, p.as_bytes().to_vec()))
                .collect(),
        });
        history
    }

    #[test]
    fn passes_a_dense_run_from_anywhere() {
        assert!(check(&history(&[(1, "b"), (2, "c")])).passed());
    }

    #[test]
    fn catches_skips_repeats_disagreement_and_lost_reads() {
        assert!(!check(&history(&[(0, "a"), (2, "c")])).passed(), "skip");
        assert!(!check(&history(&[(0, "a"), (0, "a")])).passed(), "repeat");
        assert!(!check(&history(&[(0, "b")])).passed(), "disagree");
        assert!(!check(&history(&[(3, "d")])).passed(), "lost");
    }
}
