//! The one retry loop: route an attempt, bound it by the request timeout, learn from its
//! failure (leader hints, metadata refresh), back off with jitter, give up at the
//! operation deadline.
//!
//! `Retrier` holds the decision state (backoff step, deadline); `call` is the loop every
//! unary operation uses; the subscription drives a `Retrier` itself because its attempts
//! are long-lived streams.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use tonic::transport::Channel;

use crate::client::Shared;
use crate::error::ClientError;
use crate::metadata::Route;

/// First backoff step.
pub(crate) const BACKOFF_BASE: Duration = Duration::from_millis(20);
/// Largest backoff step.
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Leader hints followed in a row without sleeping, before backing off anyway.
const QUICK_RETRIES_MAX: u32 = 3;

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Disposition {
    /// Give up now and return the error.
    Fatal,
    /// Try again after the backoff delay.
    Retry,
    /// Try again at once: a leader hint points to the node to try next.
    RetryNow,
}

/// What an attempt knows about the attempts before it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Attempt {
    /// 0 for the first attempt.
    pub number: u32,
    /// An earlier attempt failed in a way that may have left it applied.
    pub prior_outcome_unknown: bool,
}

/// Backoff and deadline state of one operation.
#[derive(Debug)]
pub(crate) struct Retrier {
    base: Duration,
    max: Duration,
    budget: Duration,
    started: Instant,
    deadline: Instant,
    failures: u32,
    quick: u32,
    attempt: Attempt,
}

/// The delay before retry number `failures` (0-based): `base * 2^failures` capped at
/// `max`, scaled by a jitter factor in `[0.5, 1.0]` (`jitter` in `[0, 1)` picks it).
pub(crate) fn backoff_delay(base: Duration, max: Duration, failures: u32, jitter: f64) -> Duration {
    let exp = base.saturating_mul(1u32 << failures.min(20));
    let capped = exp.min(max);
    capped.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

impl Retrier {
    /// A retrier giving up `budget` from now, with the standard backoff steps.
    pub(crate) fn new(budget: Duration) -> Self {
        Self::with_backoff(budget, BACKOFF_BASE, BACKOFF_MAX)
    }

    /// A retrier with explicit backoff steps (tests use tiny ones).
    pub(crate) fn with_backoff(budget: Duration, base: Duration, max: Duration) -> Self {
        let now = Instant::now();
        Self {
            base,
            max,
            budget,
            started: now,
            deadline: now + budget,
            failures: 0,
            quick: 0,
            attempt: Attempt::default(),
        }
    }

    /// Starts over after progress: a fresh deadline and the smallest backoff step.
    pub(crate) fn reset(&mut self) {
        *self = Self::with_backoff(self.budget, self.base, self.max);
    }

    /// Facts about the attempt about to be made.
    pub(crate) fn attempt(&self) -> Attempt {
        self.attempt
    }

    /// Time left before the deadline.
    pub(crate) fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Records a failed attempt: returns the error when it is fatal or the deadline has
    /// passed (as `DeadlineExceeded`), else sleeps the backoff delay and returns `Ok`.
    pub(crate) async fn after_failure(
        &mut self,
        error: ClientError,
        disposition: Disposition,
    ) -> Result<(), ClientError> {
        self.attempt.number += 1;
        self.attempt.prior_outcome_unknown |= error.outcome_unknown();
        if disposition == Disposition::Fatal {
            return Err(error);
        }
        let delay = if disposition == Disposition::RetryNow && self.quick < QUICK_RETRIES_MAX {
            self.quick += 1;
            Duration::ZERO
        } else {
            self.quick = 0;
            let jitter = crate::rng::random_unit();
            let delay = backoff_delay(self.base, self.max, self.failures, jitter);
            self.failures += 1;
            // A node that says how long to wait (overloaded, forming) is believed.
            delay.max(error.retry_after())
        };
        let now = Instant::now();
        if now >= self.deadline || now + delay >= self.deadline {
            return Err(ClientError::DeadlineExceeded {
                elapsed_ms: now.duration_since(self.started).as_millis() as u64,
                attempts: self.attempt.number,
                last_error: Box::new(error),
            });
        }
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        Ok(())
    }
}

/// Runs `op` against the node `route` picks until it succeeds, fails fatally or the
/// operation deadline passes. Each attempt is bounded by the request timeout; each
/// failure updates the metadata cache (leader hints, refresh) before the backoff.
pub(crate) async fn call<T, F, Fut>(shared: &Shared, route: &Route, op: F) -> Result<T, ClientError>
where
    F: FnMut(Channel, Attempt) -> Fut,
    Fut: Future<Output = Result<T, ClientError>>,
{
    let mut retrier = Retrier::new(shared.config.operation_deadline());
    Ok(call_with(shared, route, &mut retrier, op).await?.1)
}

/// Retries `op` (no routing: it picks its own nodes) while its errors are retryable,
/// until `budget` is spent.
pub(crate) async fn until_ok<T, F, Fut>(budget: Duration, mut op: F) -> Result<T, ClientError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ClientError>>,
{
    let mut retrier = Retrier::new(budget);
    loop {
        match op().await {
            Ok(value) => return Ok(value),
            Err(e) => {
                let disposition = if e.is_retryable() {
                    Disposition::Retry
                } else {
                    Disposition::Fatal
                };
                retrier.after_failure(e, disposition).await?;
            }
        }
    }
}

/// [`call`] with a caller-owned [`Retrier`] (whose deadline may span several calls);
/// also returns the address of the node that answered.
pub(crate) async fn call_with<T, F, Fut>(
    shared: &Shared,
    route: &Route,
    retrier: &mut Retrier,
    mut op: F,
) -> Result<(String, T), ClientError>
where
    F: FnMut(Channel, Attempt) -> Fut,
    Fut: Future<Output = Result<T, ClientError>>,
{
    loop {
        let (addr, error) = match attempt_once(shared, route, retrier, &mut op).await {
            Ok(answered) => {
                if let Route::Coordinator { group } = route {
                    // The node that answered is the coordinator: go there next time.
                    shared
                        .metadata
                        .with_state(|s| s.coordinators.insert(group.clone(), answered.0.clone()));
                }
                return Ok(answered);
            }
            Err(failed) => failed,
        };
        let disposition = match &addr {
            // Learning from the failure may refresh the metadata (a round of calls to the
            // nodes): it must not outlast the operation's own budget.
            Some(addr) => {
                let observe = shared.metadata.observe(route, addr, &error);
                match tokio::time::timeout(retrier.remaining(), observe).await {
                    Ok(disposition) => disposition,
                    Err(_) if error.is_retryable() => Disposition::Retry,
                    Err(_) => Disposition::Fatal,
                }
            }
            None if error.is_retryable() => Disposition::Retry,
            None => Disposition::Fatal,
        };
        retrier.after_failure(error, disposition).await?;
    }
}

/// One attempt: pick the node, bound the call by the request timeout. A failure comes
/// with the address tried, if the attempt got that far.
async fn attempt_once<T, F, Fut>(
    shared: &Shared,
    route: &Route,
    retrier: &Retrier,
    op: &mut F,
) -> Result<(String, T), (Option<String>, ClientError)>
where
    F: FnMut(Channel, Attempt) -> Fut,
    Fut: Future<Output = Result<T, ClientError>>,
{
    // Picking may refresh the metadata: bounded by what is left of the operation.
    let pick = shared.metadata.pick(route);
    let addr = match tokio::time::timeout(retrier.remaining(), pick).await {
        Ok(picked) => picked.map_err(|e| (None, e))?,
        Err(_) => {
            let e = ClientError::server(
                crate::error::ErrorCode::Unavailable,
                "no node to send the request to yet (metadata refresh still running)",
            );
            return Err((None, e));
        }
    };
    let channel = shared.metadata.channel(&addr).map_err(|e| (None, e))?;
    let timeout = shared
        .config
        .request_timeout()
        .min(retrier.remaining())
        .max(Duration::from_millis(1));
    match tokio::time::timeout(timeout, op(channel, retrier.attempt())).await {
        Ok(Ok(value)) => Ok((addr, value)),
        Ok(Err(e)) => {
            let e = e.with_addr(&addr);
            Err((Some(addr), e))
        }
        Err(_) => {
            let e = ClientError::Transport {
                addr: addr.clone(),
                code: tonic::Code::DeadlineExceeded,
                message: format!("no answer within {} ms", timeout.as_millis()),
            };
            Err((Some(addr), e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn backoff_doubles_from_base_and_caps_at_max() {
        // Goal: 20ms, 40ms, 80ms ... capped at 1s without jitter (jitter = 1.0 -> factor 1).
        let steps: Vec<u128> = (0..8)
            .map(|n| backoff_delay(BACKOFF_BASE, BACKOFF_MAX, n, 1.0).as_millis())
            .collect();
        assert_eq!(steps, vec![20, 40, 80, 160, 320, 640, 1000, 1000]);
        assert_eq!(
            backoff_delay(BACKOFF_BASE, BACKOFF_MAX, 1000, 1.0),
            BACKOFF_MAX
        );
    }

    #[test]
    fn backoff_jitter_stays_within_half_to_full_step() {
        for n in 0..10 {
            let full = backoff_delay(BACKOFF_BASE, BACKOFF_MAX, n, 1.0);
            let low = backoff_delay(BACKOFF_BASE, BACKOFF_MAX, n, 0.0);
            assert_eq!(low, full / 2);
            let mid = backoff_delay(BACKOFF_BASE, BACKOFF_MAX, n, 0.5);
            assert!(low <= mid && mid <= full);
        }
    }

    fn unavailable() -> ClientError {
        ClientError::server(ErrorCode::Unavailable, "no quorum")
    }

    #[tokio::test]
    async fn retrier_gives_up_at_the_deadline_with_the_last_error() {
        // Goal: retryable failures end in DeadlineExceeded once the budget is spent.
        // Method: 1 ms backoff steps, a 30 ms budget; count the retries allowed.
        let mut retrier = Retrier::with_backoff(
            Duration::from_millis(30),
            Duration::from_millis(1),
            Duration::from_millis(2),
        );
        let started = Instant::now();
        let mut retries = 0;
        let error = loop {
            match retrier
                .after_failure(unavailable(), Disposition::Retry)
                .await
            {
                Ok(()) => retries += 1,
                Err(e) => break e,
            }
            assert!(retries < 10_000, "the retrier never gave up");
        };
        assert!(retries >= 2, "only {retries} retries");
        assert!(started.elapsed() < Duration::from_secs(5));
        match error {
            ClientError::DeadlineExceeded {
                attempts,
                last_error,
                ..
            } => {
                assert_eq!(attempts, retries + 1);
                assert_eq!(last_error.code(), Some(ErrorCode::Unavailable));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn retrier_returns_fatal_errors_at_once() {
        let mut retrier = Retrier::new(Duration::from_secs(30));
        let fatal = ClientError::server(ErrorCode::EventTooLarge, "too big");
        let e = retrier
            .after_failure(fatal, Disposition::Fatal)
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::EventTooLarge));
    }

    #[tokio::test]
    async fn retrier_follows_leader_hints_without_sleeping_a_few_times() {
        // Goal: RetryNow is immediate QUICK_RETRIES_MAX times in a row, then backs off.
        let mut retrier = Retrier::with_backoff(
            Duration::from_secs(30),
            Duration::from_secs(10),
            Duration::from_secs(10),
        );
        let hint = || ClientError::NotLeader {
            message: "m".into(),
            leader_id: Some(1),
            leader_addr: Some("n1:1".into()),
        };
        for _ in 0..QUICK_RETRIES_MAX {
            retrier
                .after_failure(hint(), Disposition::RetryNow)
                .await
                .unwrap();
        }
        // The next one would sleep 5-10 s: past nothing yet, but check it is not immediate.
        let slow = tokio::time::timeout(
            Duration::from_millis(20),
            retrier.after_failure(hint(), Disposition::RetryNow),
        )
        .await;
        assert!(slow.is_err(), "the fourth hint should back off");
    }

    #[tokio::test]
    async fn retrier_remembers_unknown_outcomes() {
        let mut retrier = Retrier::with_backoff(
            Duration::from_secs(30),
            Duration::from_millis(1),
            Duration::from_millis(1),
        );
        assert!(!retrier.attempt().prior_outcome_unknown);
        let lost = ClientError::from_status("a:1", tonic::Status::unavailable("reset"));
        retrier
            .after_failure(lost, Disposition::Retry)
            .await
            .unwrap();
        assert!(retrier.attempt().prior_outcome_unknown);
        assert_eq!(retrier.attempt().number, 1);
    }
}
