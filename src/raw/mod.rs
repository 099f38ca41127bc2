//! State machines on a lock word (and the event's and semaphore's words),
//! generic over the word.
//!
//! Nothing in this module makes a system call, maps memory or looks at
//! `cfg(loom)`: the same code runs on the mapped page in production (with
//! [`core::sync::atomic::AtomicU32`] and the shared futex of `src/sys/`),
//! under loom in `loom-tests/` (with loom atomics and a stand-in for
//! wait/wake), and in `fuzz/` (with a deterministic fake). That is what lets
//! the models check the production code rather than a copy of it.
//!
//! This module is public for those crates (and the crate's own tests and
//! benches) only: it is hidden from the documentation and **not** covered
//! by semver. Use [`crate::Lock`] and [`crate::RLock`].

pub mod barrier;
pub mod condvar;
pub mod event;
pub mod mutex;
pub mod ring;
pub mod rmw;
pub mod semaphore;
pub mod spsc;
pub mod word;

pub use barrier::RawBarrier;
pub use condvar::RawCondvar;
pub use event::RawEvent;
pub use mutex::{
    Acquired, Holds, RawMutex, Refused, NOT_RECOVERABLE, OWNER_DIED, TID_MASK, WAITERS,
};
pub use ring::{RawRing, RingError, RingWords};
pub use semaphore::{RawSemaphore, Records};
pub use word::{AtomicWord, Deadline, FutexWord, Liveness};

#[cfg(test)]
mod tests;
