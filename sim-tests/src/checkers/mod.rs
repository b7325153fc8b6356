//! The checkers: each judges one property of a run from its [`History`] alone, one file
//! per property. A checker returns a [`Verdict`]: what it checked and every violation it
//! found, never just a boolean, so a failing seed says exactly what broke.
//!
//! 1. [`acked_readable`]: every acknowledged event is readable at exactly one offset, its own.
//! 2. [`no_duplicates`]: no event appears twice (unless its outcome was unknown, counted),
//!    none appears that was never sent or that was refused.
//! 3. [`readers_agree`]: every consumer saw a dense, monotonic run of the one log.
//! 4. [`single_leader`]: at most one leader per Raft group per term.
//! 5. [`replicas_identical`]: after convergence, replicas' committed logs are byte-identical.
//! 6. [`liveness`]: after the heal, the cluster converged and served within its bound.
//! 7. [`group_offsets`]: a group's committed offsets never decrease nor pass the watermark.
//! 8. [`group_exclusive`]: no two members hold one partition at once (their own logs).
//! 9. [`group_delivered`]: every event below a final committed offset reached a member.

pub mod acked_readable;
pub mod group_delivered;
pub mod group_exclusive;
pub mod group_offsets;
pub mod liveness;
pub mod no_duplicates;
pub mod readers_agree;
pub mod replicas_identical;
pub mod single_leader;

use std::collections::HashMap;

use crate::history::{History, PartitionRef};

/// What one checker concluded.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub checker: &'static str,
    /// How many items (events, observations, terms...) it examined.
    pub checked: usize,
    pub violations: Vec<String>,
    /// Facts worth reporting that are not violations (e.g. duplicates of unknown outcome).
    pub notes: Vec<String>,
    /// Anomalies the contract allows and that are counted rather than excused silently:
    /// extra copies of events whose publish outcome was unknown.
    pub tolerated: usize,
}

impl Verdict {
    fn new(checker: &'static str) -> Self {
        Verdict {
            checker,
            checked: 0,
            violations: Vec::new(),
            notes: Vec::new(),
            tolerated: 0,
        }
    }

    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Runs every checker.
pub fn check_all(history: &History) -> Vec<Verdict> {
    vec![
        acked_readable::check(history),
        no_duplicates::check(history),
        readers_agree::check(history),
        single_leader::check(history),
        replicas_identical::check(history),
        liveness::check(history),
        group_offsets::check(history),
        group_exclusive::check(history),
        group_delivered::check(history),
    ]
}

/// The verdicts as a report: one line per checker, then up to ten violations each.
pub fn report(verdicts: &[Verdict]) -> String {
    let mut out = String::new();
    for verdict in verdicts {
        let status = if verdict.passed() { "ok" } else { "FAILED" };
        out.push_str(&format!(
            "{:<20} {status:<6} checked {}, violations {}\n",
            verdict.checker,
            verdict.checked,
            verdict.violations.len()
        ));
        for violation in verdict.violations.iter().take(10) {
            out.push_str(&format!("    violation: {violation}\n"));
        }
        for note in verdict.notes.iter().take(5) {
            out.push_str(&format!("    note: {note}\n"));
        }
    }
    out
}

/// Where each payload sits in the final logs.
fn payload_places(history: &History) -> HashMap<&[u8], Vec<(&PartitionRef, u64)>> {
    let mut places: HashMap<&[u8], Vec<(&PartitionRef, u64)>> = HashMap::new();
    for (partition, log) in &history.final_logs {
        for (offset, payload) in log.iter().enumerate() {
            places
                .entry(payload.as_slice())
                .or_default()
                .push((partition, offset as u64));
        }
    }
    places
}

/// A payload as text for reports (the workload's payloads are ASCII).
/// A payload as the reports print it: its id, the part before the padding
/// ([`crate::workload::payload`]), or all of it when it is damaged.
fn show(payload: &[u8]) -> String {
    let text = String::from_utf8_lossy(payload);
    match text.split_once(' ') {
        Some((id, _)) if crate::workload::payload(id) == payload => id.to_owned(),
        _ => text.into_owned(),
    }
}
