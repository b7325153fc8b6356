//! Checker 6: liveness after the heal. Once every fault is repaired, the cluster must
//! elect leaders, take a new event on every partition, let every consumer catch up and
//! bring every healthy replica level with its leader, each within a stated bound.

use super::Verdict;
use crate::history::History;

pub fn check(history: &History) -> Verdict {
    let mut verdict = Verdict::new("liveness");
    for probe in &history.liveness {
        verdict.checked += 1;
        match probe.took_ms {
            Some(took) if took <= probe.bound_ms => {}
            Some(took) => verdict.violations.push(format!(
                "{}: took {took} ms, bound {} ms",
                probe.what, probe.bound_ms
            )),
            None => verdict.violations.push(format!(
                "{}: did not happen within {} ms",
                probe.what, probe.bound_ms
            )),
        }
    }
    if history.liveness.is_empty() {
        verdict
            .violations
            .push("no liveness probe was recorded".to_string());
    }
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::LivenessProbe;

    #[test]
    fn a_probe_late_or_missing_fails() {
        let probe = |took_ms| LivenessProbe {
            what: "leader for t/0".into(),
            took_ms,
            bound_ms: 100,
        };
        let mut history = History::default();
        assert!(!check(&history).passed(), "nothing probed");
        history.liveness = vec![probe(Some(50))];
        assert!(check(&history).passed());
        history.liveness.push(probe(Some(150)));
        assert!(!check(&history).passed());
        history.liveness = vec![probe(None)];
        assert!(!check(&history).passed());
    }
}
