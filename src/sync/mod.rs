//! Locks: [`Lock`] and [`RLock`], their guards and errors; [`Event`].

pub(crate) mod deadline;
mod event;
mod lock;
mod lock_result;

pub use event::Event;
pub(crate) use lock::{HasLock, HeldLock, LockHandle};
pub use lock::{Lock, LockGuard, RLock, RLockGuard};
pub use lock_result::{LockError, TryLockError};
