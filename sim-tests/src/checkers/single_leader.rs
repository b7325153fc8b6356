//! Checker 4: at most one leader per partition per term.
//!
//! evlog runs openraft with its default leader id, `(term, node id)`: two candidates may
//! both win a term *number* (the higher node id supersedes), like Paxos ballots, and each
//! leader id is held by one node by construction. What keeps that safe, and what a
//! broken node breaks, is that **no node's vote ever goes backward**: not when it votes
//! again, not across a crash, a restart or a power failure. So this checker verifies,
//! per group and node, that the votes a node saves and the vote it finds on disk when it
//! starts never fall below a vote it saved before. A node that forgot its vote can grant
//! the same term to two candidates, which is how two leaders end up in one term.
//! Leaders found for one term number (committed votes) are reported, as a note.

use std::collections::{BTreeMap, BTreeSet};

use super::Verdict;
use crate::history::{History, VoteSeen};

pub fn check(history: &History) -> Verdict {
    let mut verdict = Verdict::new("single_leader");
    let mut highest: BTreeMap<(u64, u64), VoteSeen> = BTreeMap::new();
    let mut leaders: BTreeMap<(u64, u64), BTreeSet<u64>> = BTreeMap::new();
    for vote in &history.votes {
        verdict.checked += 1;
        if vote.committed {
            if let Some(leader) = vote.voted_for {
                leaders
                    .entry((vote.group, vote.term))
                    .or_default()
                    .insert(leader);
            }
        }
        let key = (vote.group, vote.node);
        match highest.get(&key) {
            Some(before) if vote.rank() < before.rank() => verdict.violations.push(format!(
                "group {} node {}: vote went back from {} to {}{}",
                vote.group,
                vote.node,
                show(before),
                show(vote),
                if vote.at_start {
                    " (found on disk at start)"
                } else {
                    ""
                }
            )),
            Some(before) if vote.rank() == before.rank() => {}
            _ => {
                highest.insert(key, *vote);
            }
        }
    }
    let shared = leaders.values().filter(|nodes| nodes.len() > 1).count();
    if shared > 0 {
        verdict.notes.push(format!(
            "{shared} term numbers had leaders with different node ids (distinct leader ids)"
        ));
    }
    verdict
}

fn show(vote: &VoteSeen) -> String {
    format!(
        "T{}-N{}{}",
        vote.term,
        vote.voted_for.map_or("none".to_string(), |n| n.to_string()),
        if vote.committed { " committed" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vote(node: u64, term: u64, voted_for: u64, committed: bool, at_start: bool) -> VoteSeen {
        VoteSeen {
            group: 1,
            node,
            term,
            voted_for: Some(voted_for),
            committed,
            at_start,
        }
    }

    #[test]
    fn votes_that_only_go_forward_pass() {
        let history = History {
            votes: vec![
                vote(1, 1, 1, false, false),
                vote(1, 1, 1, true, false),
                vote(1, 1, 1, true, true),
                vote(1, 2, 3, false, false),
                vote(2, 1, 1, false, false),
            ],
            ..History::default()
        };
        assert!(check(&history).passed());
    }

    #[test]
    fn a_vote_forgotten_across_a_restart_fails() {
        let history = History {
            votes: vec![vote(1, 3, 2, false, false), vote(1, 2, 2, true, true)],
            ..History::default()
        };
        let verdict = check(&history);
        assert!(!verdict.passed());
        assert!(verdict.violations[0].contains("found on disk"));
    }
}
