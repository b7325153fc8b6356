//! Checker 5: after convergence, the committed logs of a group's healthy replicas are
//! byte-identical: every index up to the smallest committed index holds the same stored
//! bytes (entry and checksum) on every replica that holds it, and no replica has a hole.
//! Entries the fault injector damaged on purpose are left out by the history (their
//! replica never serves them: the checksum catches them); a replica that copied damaged
//! bytes from another is caught here.

use super::Verdict;
use crate::history::History;

pub fn check(history: &History) -> Verdict {
    let mut verdict = Verdict::new("replicas_identical");
    for (group, replicas) in &history.replica_logs {
        let Some(common) = replicas.iter().map(|r| r.committed_index).min() else {
            continue;
        };
        if replicas.len() < 2 {
            continue;
        }
        for index in 1..=common {
            let mut reference: Option<(u64, &Vec<u8>)> = None;
            for replica in replicas {
                verdict.checked += 1;
                let Some(bytes) = replica.entries.get(&index) else {
                    continue;
                };
                match reference {
                    None => reference = Some((replica.node, bytes)),
                    Some((node, expected)) if expected != bytes => {
                        verdict.violations.push(format!(
                            "group {group} index {index}: node {} differs from node {node}",
                            replica.node
                        ));
                        break;
                    }
                    Some(_) => {}
                }
            }
        }
    }
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::ReplicaLog;

    fn replica(node: u64, entries: &[(u64, &[u8])]) -> ReplicaLog {
        ReplicaLog {
            node,
            committed_index: entries.len() as u64,
            entries: entries.iter().map(|(i, b)| (*i, b.to_vec())).collect(),
        }
    }

    #[test]
    fn identical_replicas_pass_differing_bytes_fail() {
        let mut history = History::default();
        history.replica_logs.insert(
            1,
            vec![
                replica(1, &[(1, b"a"), (2, b"b")]),
                replica(2, &[(1, b"a"), (2, b"b")]),
            ],
        );
        assert!(check(&history).passed());
        history
            .replica_logs
            .get_mut(&1)
            .unwrap()
            .push(replica(3, &[(1, b"a"), (2, b"x")]));
        assert!(!check(&history).passed());
    }
}
