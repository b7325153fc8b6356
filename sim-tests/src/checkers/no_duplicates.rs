//! Checker 2: integrity of the logs as a whole, and the idempotence window. No event
//! appears twice, unless its producer never learned the outcome (then the duplicates are
//! counted and reported, not excused silently); no event appears that no producer sent (a
//! corrupt or invented event); no event appears whose publish was refused. And no retry is
//! answered DUPLICATE_SEQUENCE ("in the log, offsets forgotten"): producers keep at most 5
//! requests in flight per partition, and the node remembers the last 5 of each producer,
//! so every retry must get its original offsets.

use std::collections::HashMap;

use super::{payload_places, show, Verdict};
use crate::history::{History, Outcome, Publish};

pub fn check(history: &History) -> Verdict {
    let mut verdict = Verdict::new("no_duplicates");
    let sent: HashMap<&[u8], &Publish> = history
        .publishes
        .iter()
        .map(|p| (p.payload.as_slice(), p))
        .collect();
    let mut unknown_duplicates = 0;
    for (payload, places) in payload_places(history) {
        verdict.checked += places.len();
        let Some(publish) = sent.get(payload) else {
            verdict.violations.push(format!(
                "{:?} at {}@{} was never sent (corrupt or invented)",
                show(payload),
                places[0].0,
                places[0].1
            ));
            continue;
        };
        match (&publish.outcome, places.len()) {
            (Outcome::Failed(reason), _) => verdict.violations.push(format!(
                "{}: refused ({reason}) yet found at {}@{}",
                show(payload),
                places[0].0,
                places[0].1
            )),
            (Outcome::OffsetsForgotten(reason), n) => verdict.violations.push(format!(
                "{}: a retry within the idempotence window of 5 lost its offsets ({reason}); \
                 found {n} times",
                show(payload)
            )),
            (_, 1) => {}
            (Outcome::Unknown(_), n) => {
                unknown_duplicates += n - 1;
                verdict.notes.push(format!(
                    "{}: outcome unknown, found {n} times",
                    show(payload)
                ));
            }
            (Outcome::Acked { .. }, n) => verdict
                .violations
                .push(format!("{}: acked, found {n} times", show(payload))),
        }
    }
    verdict.tolerated = unknown_duplicates;
    if unknown_duplicates > 0 {
        verdict.notes.insert(
            0,
            format!("{unknown_duplicates} duplicates of events whose outcome was unknown"),
        );
    }
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::PartitionRef;

    fn history(outcome: Outcome, log: &[&str]) -> History {
        let mut history = History::default();
        history.publishes.push(Publish {
            producer: "p".into(),
            topic: "t".into(),
            payload: b"a".to_vec(),
            outcome,
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

    fn acked() -> Outcome {
        Outcome::Acked {
            partition: 0,
            offset: 0,
        }
    }

    #[test]
    fn passes_a_clean_log_and_counts_unknown_duplicates() {
        assert!(check(&history(acked(), &["a"])).passed());
        let verdict = check(&history(Outcome::Unknown("deadline".into()), &["a", "a"]));
        assert!(verdict.passed());
        assert!(verdict.notes[0].starts_with("1 duplicates"));
        assert_eq!(verdict.tolerated, 1);
    }

    #[test]
    fn catches_duplicates_phantoms_and_refused_events() {
        assert!(!check(&history(acked(), &["a", "a"])).passed(), "duplicate");
        assert!(!check(&history(acked(), &["a", "b"])).passed(), "phantom");
        let refused = Outcome::Failed("invalid".into());
        assert!(!check(&history(refused, &["a"])).passed(), "refused");
    }

    #[test]
    fn catches_a_retry_that_lost_its_offsets_inside_the_window() {
        let forgotten = Outcome::OffsetsForgotten("DUPLICATE_SEQUENCE".into());
        let verdict = check(&history(forgotten, &["a"]));
        assert!(!verdict.passed());
        assert!(verdict.violations[0].contains("idempotence window"));
    }
}
