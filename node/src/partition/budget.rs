//! A node-wide memory budget: bytes that requests and subscriptions may hold at once, all
//! partitions together (`memory.produce_bytes_max`, `memory.subscribe_bytes_max`).
//!
//! Whoever holds bytes holds a [`BudgetPermit`] for them; dropping it gives them back.
//! Waiting for room is fair (first come, first served), so a large request is not starved
//! by a stream of small ones, and every wait is bounded by its caller. What waits is held
//! too (a decoded request waiting for room is in memory), so at most a budget's worth of
//! bytes may wait: beyond that [`MemoryBudget::acquire`] refuses at once. A node's produce
//! requests thus hold at most twice `memory.produce_bytes_max`, however many arrive.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// One budget, cheap to clone (clones share the bytes).
#[derive(Clone, Debug)]
pub struct MemoryBudget {
    /// The config field that sets it, for refusals that name their limit.
    name: &'static str,
    bytes_max: usize,
    semaphore: Arc<Semaphore>,
    /// Bytes of the callers of `acquire` waiting for room (at most `bytes_max`).
    waiting: Arc<AtomicUsize>,
}

/// Bytes held from a [`MemoryBudget`]; given back on drop.
#[derive(Debug)]
pub struct BudgetPermit {
    permit: Option<OwnedSemaphorePermit>,
}

/// The budget stayed full for the whole wait.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error(
    "{name} is full: {in_use} of {bytes_max} bytes in use, {waiting} more waiting, {wanted} \
     more wanted for {waited_ms} ms"
)]
pub struct BudgetExhausted {
    pub name: &'static str,
    pub bytes_max: usize,
    pub in_use: usize,
    /// Bytes of the other callers waiting when this one was refused.
    pub waiting: usize,
    pub wanted: usize,
    pub waited_ms: u64,
}

impl MemoryBudget {
    /// A budget of `bytes_max` bytes, named after the config field `name`.
    pub fn new(name: &'static str, bytes_max: usize) -> Self {
        // tokio's semaphore holds at most usize::MAX >> 3 permits.
        let bytes_max = bytes_max.clamp(1, usize::MAX >> 3);
        Self {
            name,
            bytes_max,
            semaphore: Arc::new(Semaphore::new(bytes_max)),
            waiting: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn bytes_max(&self) -> usize {
        self.bytes_max
    }

    /// Bytes held right now.
    pub fn in_use(&self) -> usize {
        self.bytes_max - self.semaphore.available_permits()
    }

    /// Takes `bytes` (at least 1, at most the whole budget), waiting up to `wait` for
    /// them. Callers check sizes against the budget first: asking for more than the whole
    /// budget takes all of it, it never waits forever.
    pub async fn acquire(
        &self,
        bytes: usize,
        wait: Duration,
    ) -> Result<BudgetPermit, BudgetExhausted> {
        let wanted = self.permits_for(bytes);
        if let Ok(permit) = self.semaphore.clone().try_acquire_many_owned(wanted) {
            return Ok(BudgetPermit {
                permit: Some(permit),
            });
        }
        let waiting = Waiting::join(&self.waiting, wanted as usize);
        if waiting.before + wanted as usize > self.bytes_max {
            return Err(self.exhausted(bytes, waiting.before, Duration::ZERO));
        }
        let acquire = self.semaphore.clone().acquire_many_owned(wanted);
        match crate::rt::timeout(wait, acquire).await {
            Some(Ok(permit)) => Ok(BudgetPermit {
                permit: Some(permit),
            }),
            Some(Err(_closed)) => unreachable!("a memory budget's semaphore is never closed"),
            None => Err(self.exhausted(bytes, waiting.others(), wait)),
        }
    }

    fn exhausted(&self, wanted: usize, waiting: usize, waited: Duration) -> BudgetExhausted {
        BudgetExhausted {
            name: self.name,
            bytes_max: self.bytes_max,
            in_use: self.in_use(),
            waiting,
            wanted,
            waited_ms: waited.as_millis() as u64,
        }
    }

    /// Takes `bytes` (at least 1, at most the whole budget), waiting as long as it takes
    /// (for callers that bound the wait themselves).
    pub async fn acquire_waiting(&self, bytes: usize) -> BudgetPermit {
        let permit = self
            .semaphore
            .clone()
            .acquire_many_owned(self.permits_for(bytes))
            .await
            .expect("a memory budget's semaphore is never closed");
        BudgetPermit {
            permit: Some(permit),
        }
    }

    /// Takes `bytes` only if they are free now.
    pub fn try_acquire(&self, bytes: usize) -> Option<BudgetPermit> {
        let permit = self
            .semaphore
            .clone()
            .try_acquire_many_owned(self.permits_for(bytes))
            .ok()?;
        Some(BudgetPermit {
            permit: Some(permit),
        })
    }

    fn permits_for(&self, bytes: usize) -> u32 {
        let bytes = bytes.clamp(1, self.bytes_max);
        u32::try_from(bytes).unwrap_or(u32::MAX)
    }
}

/// One caller's bytes counted in a budget's `waiting` while it waits (also when its
/// future is dropped mid-wait).
struct Waiting<'a> {
    counter: &'a AtomicUsize,
    bytes: usize,
    /// What was waiting when this caller joined.
    before: usize,
}

impl<'a> Waiting<'a> {
    fn join(counter: &'a AtomicUsize, bytes: usize) -> Self {
        let before = counter.fetch_add(bytes, Ordering::AcqRel);
        Self {
            counter,
            bytes,
            before,
        }
    }

    /// What the other callers have waiting now.
    fn others(&self) -> usize {
        self.counter
            .load(Ordering::Acquire)
            .saturating_sub(self.bytes)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.counter.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

impl BudgetPermit {
    /// A permit that holds nothing (for callers outside any budget, e.g. tests).
    pub fn none() -> Self {
        Self { permit: None }
    }

    /// Gives back what this permit holds beyond `bytes` (at least 1 byte stays held):
    /// for a caller that reserved its most and then used less.
    pub fn shrink_to(&mut self, bytes: usize) {
        if let Some(permit) = &mut self.permit {
            let keep = u32::try_from(bytes.max(1)).unwrap_or(u32::MAX);
            drop(permit.split(permit.num_permits().saturating_sub(keep as usize)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_shrunk_permit_gives_back_what_it_did_not_use() {
        let budget = MemoryBudget::new("test.bytes_max", 1000);
        let mut permit = budget.acquire_waiting(600).await;
        assert_eq!(budget.in_use(), 600);
        permit.shrink_to(100);
        assert_eq!(budget.in_use(), 100);
        permit.shrink_to(0);
        assert_eq!(budget.in_use(), 1, "at least one byte stays held");
        drop(permit);
        assert_eq!(budget.in_use(), 0);
    }

    #[tokio::test]
    async fn bytes_come_back_when_the_permit_is_dropped() {
        // Goal: the budget bounds what is held at once and refuses after the wait.
        // Method: take most of it, fail to take more, drop, take again.
        let budget = MemoryBudget::new("memory.test_bytes_max", 100);
        let held = budget.acquire(80, Duration::ZERO).await.unwrap();
        assert_eq!(budget.in_use(), 80);
        let refused = budget
            .acquire(30, Duration::from_millis(5))
            .await
            .unwrap_err();
        assert_eq!(refused.name, "memory.test_bytes_max");
        assert_eq!((refused.in_use, refused.wanted), (80, 30));
        assert!(budget.try_acquire(30).is_none());
        drop(held);
        assert_eq!(budget.in_use(), 0);
        assert!(budget.try_acquire(30).is_some());
    }

    #[tokio::test]
    async fn at_most_a_budget_of_bytes_waits_beyond_it_callers_are_refused_at_once() {
        // Goal: waiting requests are held in memory too, so only a budget's worth may
        // wait; the next is refused without waiting (it would wait its whole 5 s before).
        let budget = MemoryBudget::new("memory.test_bytes_max", 100);
        let held = budget.acquire(100, Duration::ZERO).await.unwrap();
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let budget = budget.clone();
                tokio::spawn(async move { budget.acquire(50, Duration::from_secs(5)).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let started = std::time::Instant::now();
        let refused = budget.acquire(1, Duration::from_secs(5)).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!((refused.waiting, refused.waited_ms), (100, 0));
        assert!(
            refused.to_string().contains("100 more waiting"),
            "{refused}"
        );
        drop(held);
        for waiter in waiters {
            assert!(waiter.await.unwrap().is_ok());
        }
        assert_eq!(budget.waiting.load(Ordering::Acquire), 0);
        assert!(budget.acquire(1, Duration::ZERO).await.is_ok());
    }

    #[tokio::test]
    async fn a_waiter_gets_the_bytes_freed_during_its_wait() {
        let budget = MemoryBudget::new("memory.test_bytes_max", 10);
        let held = budget.acquire(10, Duration::ZERO).await.unwrap();
        let waiter = {
            let budget = budget.clone();
            tokio::spawn(async move { budget.acquire(4, Duration::from_secs(5)).await })
        };
        tokio::task::yield_now().await;
        drop(held);
        assert!(waiter.await.unwrap().is_ok());
    }
}
