//! Locks: [`Lock`] and [`RLock`], their guards and errors; [`Event`].

mod deadline;
mod event;
mod lock;
mod lock_result;

pub(crate) use deadline::Until;
pub use event::Event;
pub(crate) use lock::{HasLock, HeldLock, LockHandle};
pub use lock::{Lock, LockGuard, RLock, RLockGuard};
pub use lock_result::{LockError, TryLockError};
