//! Locks: [`Lock`] and [`RLock`], their guards and errors.

mod error;
mod lock;

pub use error::{LockError, TryLockError};
pub(crate) use lock::{HasLock, HeldLock, LockHandle};
pub use lock::{Lock, LockGuard, RLock, RLockGuard};
