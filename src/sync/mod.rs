//! Locks: [`Lock`] and [`RLock`], their guards and errors; [`Event`];
//! [`Semaphore`] and [`BoundedSemaphore`] with their [`Permit`];
//! [`Condition`]; [`Barrier`].

mod barrier;
mod condition;
pub(crate) mod deadline;
mod deferred;
mod event;
mod lock;
mod lock_result;
mod semaphore;

pub use barrier::{Barrier, BarrierError, BarrierWaitResult};
pub use condition::{Condition, ConditionLock, WaitTimeoutLockResult, WaitTimeoutResult};
pub(crate) use deadline::Until;
pub use event::Event;
pub(crate) use lock::{HasLock, HeldLock, LockHandle};
pub use lock::{Lock, LockGuard, RLock, RLockGuard};
pub use lock_result::{LockError, TryLockError};
pub use semaphore::{BoundedSemaphore, Permit, Semaphore, HOLDER_CAPACITY};
