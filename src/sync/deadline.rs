//! [`Until`]: the monotonic-clock deadline of every timed wait.

use core::time::Duration;
use std::time::Instant;

use crate::raw::Deadline;

/// A deadline on the monotonic clock.
pub(crate) struct Until(Instant);

impl Until {
    /// `timeout` from now; `None` when that instant cannot be represented
    /// (a huge timeout), which callers treat as no deadline at all.
    pub(crate) fn after(timeout: Duration) -> Option<Until> {
        Instant::now().checked_add(timeout).map(Until)
    }
}

impl Deadline for Until {
    fn remaining(&mut self) -> Option<Duration> {
        self.0
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
    }
}

/// A deadline (`None`: none) that a callback can end early: `stop()`
/// returning `true` counts as expiry. The waits call `remaining` before
/// each sleep of a bounded slice (at most 50 ms), so `stop` is polled at
/// least that often, never while spinning.
pub(crate) struct Stoppable<F> {
    pub(crate) until: Option<Until>,
    pub(crate) stop: F,
}

impl<F: FnMut() -> bool> Deadline for Stoppable<F> {
    fn remaining(&mut self) -> Option<Duration> {
        if (self.stop)() {
            return None;
        }
        match &mut self.until {
            None => Some(Duration::MAX),
            Some(u) => u.remaining(),
        }
    }
}
