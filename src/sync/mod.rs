//! Locks: [`Lock`] and [`RLock`], their guards and errors.

mod lock;
mod lock_result;

pub(crate) use lock::{HasLock, HeldLock, LockHandle};
pub use lock::{Lock, LockGuard, RLock, RLockGuard};
pub use lock_result::{LockError, TryLockError};
