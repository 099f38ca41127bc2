//! Locks: [`Lock`] and [`RLock`], their guards and errors; [`Event`];
//! [`Semaphore`] and [`BoundedSemaphore`] with their [`Permit`].

mod deadline;
mod event;
mod lock;
mod lock_result;
mod semaphore;

pub use event::Event;
pub(crate) use lock::{HasLock, HeldLock, LockHandle};
pub use lock::{Lock, LockGuard, RLock, RLockGuard};
pub use lock_result::{LockError, TryLockError};
pub use semaphore::{BoundedSemaphore, Permit, Semaphore, HOLDER_CAPACITY};
