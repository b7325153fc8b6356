//! The consumer's book of owned partitions, shared by the member task (which follows the
//! coordinator) and the `Consumer` stream (which hands events to the application).
//!
//! Per owned partition it records the generation (bumped every time the partition is
//! gained, so events fetched under an earlier ownership are dropped), whether it is being
//! revoked, the events handed out and not yet done, the offset up to which everything is
//! *processed*, and the last committed offset. With the stream, an event is done when the
//! application asks for the next one (as Kafka's `poll`), or on close; with
//! `process_keyed`, when its handler finished. Events may finish out of order there, so
//! `processed` is the lowest offset still in flight (everything below it is done), never
//! more. A revoked partition is finished (committed, released) only when none of its
//! events are in flight.

use std::collections::{BTreeMap, BTreeSet};

use tokio::time::Instant;

use crate::group_admin::TopicPartition;

/// One owned partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Owned {
    pub generation: u64,
    pub revoking: bool,
    /// Offsets handed out and not done yet.
    pub in_flight: BTreeSet<u64>,
    /// One past the last offset handed out.
    pub handed_up_to: Option<u64>,
    /// The next offset to consume: every event below it was processed (None: nothing
    /// processed since it was gained).
    pub processed: Option<u64>,
    /// What is committed for it (as far as this member knows).
    pub committed: Option<u64>,
}

/// The event the application holds: handed out, not yet processed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InHand {
    pub partition: TopicPartition,
    pub generation: u64,
    pub offset: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Book {
    pub owned: BTreeMap<TopicPartition, Owned>,
    pub in_hand: Option<InHand>,
    next_generation: u64,
    /// Until when the member may hand out events: the send time of its last answered
    /// heartbeat plus its session timeout minus one heartbeat interval. Past it the
    /// coordinator may be about to give its partitions away.
    pub valid_until: Option<Instant>,
    /// Set once an event was refused because `valid_until` passed: the member must drop
    /// every partition (without committing) before it hands out anything again, even if a
    /// heartbeat is answered meanwhile (the refused events would otherwise be a gap).
    pub lapsed: bool,
}

impl Book {
    /// Records a newly gained partition (starting at `committed`); its generation.
    pub fn gain(&mut self, partition: TopicPartition, committed: Option<u64>) -> u64 {
        self.next_generation += 1;
        let generation = self.next_generation;
        self.owned.insert(
            partition,
            Owned {
                generation,
                revoking: false,
                in_flight: BTreeSet::new(),
                handed_up_to: None,
                processed: None,
                committed,
            },
        );
        generation
    }

    /// Whether an event of `partition` fetched under `generation` may still be handed out
    /// (sets `lapsed` when the session's validity has passed).
    pub fn deliverable(&mut self, partition: &TopicPartition, generation: u64) -> bool {
        let owned = self
            .owned
            .get(partition)
            .is_some_and(|o| o.generation == generation && !o.revoking);
        if !owned || self.lapsed {
            return false;
        }
        if self.valid_until.is_none_or(|until| Instant::now() >= until) {
            self.lapsed = true;
            return false;
        }
        true
    }

    /// The application asks for the next event: the one it held is processed.
    pub fn finish_in_hand(&mut self) {
        if let Some(held) = self.in_hand.take() {
            self.done(&held.partition, held.generation, held.offset);
        }
    }

    /// Hands out an event to the stream's caller (done at its next poll).
    pub fn hand_out(&mut self, partition: TopicPartition, generation: u64, offset: u64) {
        self.start(&partition, generation, offset);
        self.in_hand = Some(InHand {
            partition,
            generation,
            offset,
        });
    }

    /// An event goes to a handler (done when it finished).
    pub fn start(&mut self, partition: &TopicPartition, generation: u64, offset: u64) {
        if let Some(owned) = self.owned.get_mut(partition) {
            if owned.generation == generation {
                owned.in_flight.insert(offset);
                owned.handed_up_to =
                    Some(owned.handed_up_to.map_or(offset + 1, |h| h.max(offset + 1)));
            }
        }
    }

    /// An event is done: everything below the lowest event still in flight is processed.
    pub fn done(&mut self, partition: &TopicPartition, generation: u64, offset: u64) {
        let Some(owned) = self.owned.get_mut(partition) else {
            return;
        };
        if owned.generation != generation {
            return; // An ownership that ended: nothing of it is committed any more.
        }
        owned.in_flight.remove(&offset);
        owned.processed = owned.in_flight.first().copied().or(owned.handed_up_to);
    }

    /// Whether events of `partition` fetched under `generation` still belong to this
    /// member (revoking ones included: they are finished before the release).
    pub fn still_owned(&self, partition: &TopicPartition, generation: u64) -> bool {
        self.owned
            .get(partition)
            .is_some_and(|o| o.generation == generation)
    }

    /// Revoked partitions with no event in flight: ready to commit and release.
    pub fn revoked_and_idle(&self) -> Vec<TopicPartition> {
        self.owned
            .iter()
            .filter(|(_, o)| o.revoking && o.in_flight.is_empty())
            .map(|(tp, _)| tp.clone())
            .collect()
    }

    /// Offsets processed beyond what is committed, for the partitions in `which`.
    pub fn to_commit(&self, which: impl Fn(&Owned) -> bool) -> Vec<(TopicPartition, u64)> {
        self.owned
            .iter()
            .filter(|(_, o)| which(o))
            .filter_map(|(tp, o)| {
                let processed = o.processed?;
                (o.committed.is_none_or(|c| processed > c)).then(|| (tp.clone(), processed))
            })
            .collect()
    }

    /// Records a successful commit.
    pub fn committed(&mut self, offsets: &[(TopicPartition, u64)]) {
        for (tp, offset) in offsets {
            if let Some(owned) = self.owned.get_mut(tp) {
                owned.committed = Some(owned.committed.map_or(*offset, |c| c.max(*offset)));
            }
        }
    }

    /// Forgets partitions (released, lost or fenced); the event in hand from one of them
    /// is no longer counted.
    pub fn forget(&mut self, partitions: &[TopicPartition]) {
        for tp in partitions {
            self.owned.remove(tp);
        }
        if self
            .in_hand
            .as_ref()
            .is_some_and(|h| !self.owned.contains_key(&h.partition))
        {
            self.in_hand = None;
        }
    }
}

#[cfg(test)]
mod tests {
    //! Goal: only processed events are committed, a revoked partition waits for the event
    //! in hand, and events of an earlier ownership are never handed out. Method: drive the
    //! book as the stream and the member task do.
    use super::*;

    fn tp(p: u32) -> TopicPartition {
        TopicPartition::new("orders", p)
    }

    fn valid_book() -> Book {
        Book {
            valid_until: Some(Instant::now() + std::time::Duration::from_secs(600)),
            ..Book::default()
        }
    }

    #[test]
    fn nothing_is_handed_out_once_the_session_may_have_lapsed_until_the_member_dropped_all() {
        // Goal: a member cut off from its coordinator stops before the coordinator may give
        // its partitions away, and an answered heartbeat afterwards does not resume the
        // old ownership (the refused events would be a gap). Method: expire the validity.
        let mut book = valid_book();
        let generation = book.gain(tp(0), None);
        assert!(book.deliverable(&tp(0), generation));
        book.valid_until = Some(Instant::now());
        assert!(!book.deliverable(&tp(0), generation));
        assert!(book.lapsed);
        book.valid_until = Some(Instant::now() + std::time::Duration::from_secs(600));
        assert!(
            !book.deliverable(&tp(0), generation),
            "sticky until dropped"
        );
    }

    #[test]
    fn an_event_counts_as_processed_when_the_next_one_is_asked_for() {
        let mut book = valid_book();
        let generation = book.gain(tp(0), Some(5));
        book.hand_out(tp(0), generation, 5);
        assert!(book.to_commit(|_| true).is_empty(), "held, not processed");
        book.finish_in_hand();
        assert_eq!(book.to_commit(|_| true), vec![(tp(0), 6)]);
        book.committed(&[(tp(0), 6)]);
        assert!(book.to_commit(|_| true).is_empty());
    }

    #[test]
    fn a_revoked_partition_is_released_only_once_its_event_in_hand_is_processed() {
        let mut book = valid_book();
        let generation = book.gain(tp(0), None);
        book.hand_out(tp(0), generation, 0);
        book.owned.get_mut(&tp(0)).unwrap().revoking = true;
        assert!(book.revoked_and_idle().is_empty());
        assert!(
            !book.deliverable(&tp(0), generation),
            "no more events once revoking"
        );
        book.finish_in_hand();
        assert_eq!(book.revoked_and_idle(), vec![tp(0)]);
        assert_eq!(book.to_commit(|o| o.revoking), vec![(tp(0), 1)]);
    }

    #[test]
    fn events_of_an_earlier_ownership_are_not_delivered_or_counted() {
        let mut book = valid_book();
        let first = book.gain(tp(0), None);
        book.hand_out(tp(0), first, 3);
        book.forget(&[tp(0)]);
        assert!(book.in_hand.is_none());
        let second = book.gain(tp(0), Some(10));
        assert!(!book.deliverable(&tp(0), first));
        assert!(book.deliverable(&tp(0), second));
        book.finish_in_hand();
        assert!(book.to_commit(|_| true).is_empty());
    }

    #[test]
    fn out_of_order_completions_commit_only_below_the_lowest_event_in_flight() {
        // Goal: with parallel handlers, a crash after a commit never skips an event.
        let mut book = Book::default();
        let generation = book.gain(tp(0), None);
        for offset in 0..4 {
            book.start(&tp(0), generation, offset);
        }
        book.done(&tp(0), generation, 1);
        book.done(&tp(0), generation, 3);
        assert_eq!(
            book.to_commit(|_| true),
            vec![(tp(0), 0)],
            "0 is still running"
        );
        book.done(&tp(0), generation, 0);
        assert_eq!(
            book.to_commit(|_| true),
            vec![(tp(0), 2)],
            "2 is still running"
        );
        book.done(&tp(0), generation, 2);
        assert_eq!(book.to_commit(|_| true), vec![(tp(0), 4)]);
    }
}
