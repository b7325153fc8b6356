//! The one place that touches clocks, randomness and task spawning, and that stops the
//! process when it must ([`crash`]).
//!
//! Normal builds use tokio; under `cfg(madsim)` the same calls go to the deterministic
//! simulator (madsim-tokio re-exports it as `tokio`). openraft gets its runtime through
//! [`RaftRuntime`]: tokio's own adapter normally, a small madsim adapter in simulation.

use std::future::Future;
use std::time::Duration;

pub use std::time::Instant;

/// Spawns a task on the current runtime.
pub fn spawn<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(future)
}

/// Runs blocking work (fsync, large reads) off the async threads. (madsim marks its
/// `spawn_blocking` deprecated; in simulation it runs the work as an ordinary task, which
/// is exactly what a deterministic run needs.)
#[cfg_attr(madsim, allow(deprecated))]
pub fn spawn_blocking<F, R>(f: F) -> tokio::task::JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    tokio::task::spawn_blocking(f)
}

pub async fn sleep(duration: Duration) {
    tokio::time::sleep(duration).await
}

/// Runs `future` for at most `duration`: `None` when the time ran out first.
pub async fn timeout<F: Future>(duration: Duration, future: F) -> Option<F::Output> {
    tokio::time::timeout(duration, future).await.ok()
}

pub fn now() -> Instant {
    Instant::now()
}

/// Milliseconds since the Unix epoch (simulated time under madsim).
pub fn unix_time_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// What a node that crashed on purpose says (in its log, and in simulation in its panic).
pub const CRASH_MESSAGE: &str = "evlog node crash";

/// Exit status of a node that crashed on purpose (EX_SOFTWARE).
pub const CRASH_EXIT_CODE: i32 = 70;

/// Stops the node at once, like a crash, because going on could break a promise: after a
/// failed fsync the kernel may have dropped the dirty pages it could not write, so a
/// retry could report lost writes durable ("fsyncgate"). Its supervisor restarts the
/// process, which recovers from what really is on disk. In simulation the node's task
/// panics with [`CRASH_MESSAGE`] and the harness restarts the node.
pub fn crash(reason: &str) -> ! {
    tracing::error!("{CRASH_MESSAGE}: {reason}");
    #[cfg(madsim)]
    panic!("{CRASH_MESSAGE}: {reason}");
    #[cfg(not(madsim))]
    std::process::exit(CRASH_EXIT_CODE);
}

/// openraft's runtime: tokio in production.
#[cfg(not(madsim))]
pub type RaftRuntime = openraft::TokioRuntime;

/// openraft's runtime: the madsim simulator.
#[cfg(madsim)]
pub type RaftRuntime = sim::MadsimRuntime;

#[cfg(madsim)]
mod sim {
    //! openraft's `AsyncRuntime` over madsim. Instants are tokio's (which read the clock
    //! madsim intercepts), sleeps, spawns and randomness are madsim's, so every run of a
    //! seed schedules and draws exactly the same.
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use std::time::Duration;

    use openraft::{AsyncRuntime, OptionalSend};

    #[derive(Debug, Default, PartialEq, Eq, Clone, Copy)]
    pub struct MadsimRuntime;

    /// The future of `timeout`: the inner future, raced against a madsim sleep.
    pub struct SimTimeout<F> {
        future: Pin<Box<F>>,
        sleep: Pin<Box<madsim::time::Sleep>>,
    }

    impl<R, F: Future<Output = R>> Future for SimTimeout<F> {
        type Output = Result<R, madsim::time::error::Elapsed>;

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            if let Poll::Ready(value) = self.future.as_mut().poll(cx) {
                return Poll::Ready(Ok(value));
            }
            match self.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(madsim::time::error::Elapsed)),
                Poll::Pending => Poll::Pending,
            }
        }
    }

    fn to_std(instant: openraft::TokioInstant) -> std::time::Instant {
        instant.into_std()
    }

    impl AsyncRuntime for MadsimRuntime {
        type JoinError = madsim::task::JoinError;
        type JoinHandle<T: OptionalSend + 'static> = madsim::task::JoinHandle<T>;
        type Sleep = madsim::time::Sleep;
        type Instant = openraft::TokioInstant;
        type TimeoutError = madsim::time::error::Elapsed;
        type Timeout<R, T: Future<Output = R> + OptionalSend> = SimTimeout<T>;
        type ThreadLocalRng = madsim::rand::GlobalRng;
        type OneshotSender<T: OptionalSend> = openraft::async_runtime::TokioOneShotSender<T>;
        type OneshotReceiverError = tokio::sync::oneshot::error::RecvError;
        type OneshotReceiver<T: OptionalSend> = tokio::sync::oneshot::Receiver<T>;

        fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
        where
            T: Future + OptionalSend + 'static,
            T::Output: OptionalSend + 'static,
        {
            madsim::task::spawn(future)
        }

        fn sleep(duration: Duration) -> Self::Sleep {
            madsim::time::sleep(duration)
        }

        fn sleep_until(deadline: Self::Instant) -> Self::Sleep {
            madsim::time::sleep_until(to_std(deadline))
        }

        fn timeout<R, F: Future<Output = R> + OptionalSend>(
            duration: Duration,
            future: F,
        ) -> Self::Timeout<R, F> {
            SimTimeout {
                future: Box::pin(future),
                sleep: Box::pin(madsim::time::sleep(duration)),
            }
        }

        fn timeout_at<R, F: Future<Output = R> + OptionalSend>(
            deadline: Self::Instant,
            future: F,
        ) -> Self::Timeout<R, F> {
            SimTimeout {
                future: Box::pin(future),
                sleep: Box::pin(madsim::time::sleep_until(to_std(deadline))),
            }
        }

        fn is_panic(join_error: &Self::JoinError) -> bool {
            join_error.is_panic()
        }

        fn thread_rng() -> Self::ThreadLocalRng {
            madsim::rand::thread_rng()
        }

        fn oneshot<T>() -> (Self::OneshotSender<T>, Self::OneshotReceiver<T>)
        where
            T: OptionalSend,
        {
            let (tx, rx) = tokio::sync::oneshot::channel();
            (openraft::async_runtime::TokioOneShotSender(tx), rx)
        }
    }
}
