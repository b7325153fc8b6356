//! Logs for people: a fault that repeats (a peer refusing messages, a replica that cannot
//! start) prints one line, then at most one line per [`INTERVAL`] per kind of fault, saying
//! how many were left out; not thousands of lines an operator has to scroll past.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::rt::Instant;

/// Shortest time between two lines of one kind.
pub const INTERVAL: Duration = Duration::from_secs(30);

/// When each kind last printed, and how many lines of it were left out since.
fn last_printed() -> &'static Mutex<HashMap<&'static str, (Instant, u64)>> {
    static LAST: OnceLock<Mutex<HashMap<&'static str, (Instant, u64)>>> = OnceLock::new();
    LAST.get_or_init(|| Mutex::new(HashMap::new()))
}

/// `Some(left out since the last line)` when a line of `kind` may print now.
fn admit(kind: &'static str) -> Option<u64> {
    let now = crate::rt::now();
    let mut last = last_printed().lock().expect("log throttle poisoned");
    match last.get_mut(kind) {
        Some((at, skipped)) if now.duration_since(*at) < INTERVAL => {
            *skipped += 1;
            None
        }
        Some((at, skipped)) => {
            let left_out = *skipped;
            *at = now;
            *skipped = 0;
            Some(left_out)
        }
        None => {
            last.insert(kind, (now, 0));
            Some(0)
        }
    }
}

/// A WARN line of `kind`, unless one printed less than [`INTERVAL`] ago.
pub fn warn_every(kind: &'static str, message: fmt::Arguments<'_>) {
    match admit(kind) {
        Some(0) => tracing::warn!("{message}"),
        Some(left_out) => tracing::warn!(
            "{message} ({left_out} more like it in the last {}s)",
            INTERVAL.as_secs()
        ),
        None => tracing::debug!("{message}"),
    }
}

/// An ERROR line of `kind`, unless one printed less than [`INTERVAL`] ago.
pub fn error_every(kind: &'static str, message: fmt::Arguments<'_>) {
    match admit(kind) {
        Some(0) => tracing::error!("{message}"),
        Some(left_out) => tracing::error!(
            "{message} ({left_out} more like it in the last {}s)",
            INTERVAL.as_secs()
        ),
        None => tracing::debug!("{message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_kind_prints_once_per_interval_and_counts_the_rest() {
        // Goal: the first line of a kind prints, the next ones within the interval do not,
        // and another kind is not held back by it.
        assert_eq!(admit("test kind a"), Some(0));
        assert_eq!(admit("test kind a"), None);
        assert_eq!(admit("test kind a"), None);
        assert_eq!(admit("test kind b"), Some(0));
        let mut last = last_printed().lock().unwrap();
        let (at, skipped) = last.get_mut("test kind a").unwrap();
        assert_eq!(*skipped, 2);
        *at -= INTERVAL;
        drop(last);
        assert_eq!(
            admit("test kind a"),
            Some(2),
            "after the interval it prints with the count"
        );
    }
}
