//! Lock results, shaped like std's `LockResult` / `TryLockResult`.

use core::fmt;

/// Why a blocking [`lock`](crate::RLock::lock) did not simply succeed.
///
/// Like std's `PoisonError`, [`LockError::OwnerDied`] still hands over the
/// guard: the lock *is* held, and the caller can repair the data and call
/// `mark_consistent()` on the guard.
#[non_exhaustive]
pub enum LockError<G> {
    /// The previous owner died while holding the lock (its thread or process
    /// ended). The caller holds the lock now; the data it protects may be
    /// half-updated. Repair it and call the guard's `mark_consistent()`, or
    /// drop the guard to make the lock permanently
    /// [`NotRecoverable`](LockError::NotRecoverable) for everyone.
    OwnerDied(G),
    /// An owner-died lock was released without `mark_consistent()`; it can
    /// never be acquired again (POSIX `ENOTRECOVERABLE`).
    NotRecoverable,
    /// The calling thread already holds this lock and cannot take it again:
    /// a (non-recursive) [`Lock`](crate::Lock) relocked by its owner, or an
    /// [`RLock`](crate::RLock) whose recursion count is exhausted. Locking
    /// would never succeed, so it fails instead of hanging (POSIX `EDEADLK`).
    Deadlock,
}

/// Why a [`try_lock`](crate::RLock::try_lock) or
/// [`lock_timeout`](crate::RLock::lock_timeout) did not simply succeed.
#[non_exhaustive]
pub enum TryLockError<G> {
    /// Another thread holds the lock (and, for `lock_timeout`, still held it
    /// when the timeout expired).
    WouldBlock,
    /// See [`LockError::OwnerDied`]: the caller holds the lock.
    OwnerDied(G),
    /// See [`LockError::NotRecoverable`].
    NotRecoverable,
    /// See [`LockError::Deadlock`].
    Deadlock,
}

impl<G> LockError<G> {
    /// The guard, if this is [`LockError::OwnerDied`].
    pub fn into_guard(self) -> Option<G> {
        match self {
            LockError::OwnerDied(g) => Some(g),
            _ => None,
        }
    }

    /// Maps the guard of [`LockError::OwnerDied`] to another type.
    pub fn map<H>(self, f: impl FnOnce(G) -> H) -> LockError<H> {
        match self {
            LockError::OwnerDied(g) => LockError::OwnerDied(f(g)),
            LockError::NotRecoverable => LockError::NotRecoverable,
            LockError::Deadlock => LockError::Deadlock,
        }
    }
}

impl<G> TryLockError<G> {
    /// The guard, if this is [`TryLockError::OwnerDied`].
    pub fn into_guard(self) -> Option<G> {
        match self {
            TryLockError::OwnerDied(g) => Some(g),
            _ => None,
        }
    }

    /// Maps the guard of [`TryLockError::OwnerDied`] to another type.
    pub fn map<H>(self, f: impl FnOnce(G) -> H) -> TryLockError<H> {
        match self {
            TryLockError::WouldBlock => TryLockError::WouldBlock,
            TryLockError::OwnerDied(g) => TryLockError::OwnerDied(f(g)),
            TryLockError::NotRecoverable => TryLockError::NotRecoverable,
            TryLockError::Deadlock => TryLockError::Deadlock,
        }
    }
}

impl<G> From<LockError<G>> for TryLockError<G> {
    fn from(e: LockError<G>) -> Self {
        match e {
            LockError::OwnerDied(g) => TryLockError::OwnerDied(g),
            LockError::NotRecoverable => TryLockError::NotRecoverable,
            LockError::Deadlock => TryLockError::Deadlock,
        }
    }
}

impl<G> fmt::Debug for LockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::OwnerDied(_) => f.write_str("OwnerDied(..)"),
            LockError::NotRecoverable => f.write_str("NotRecoverable"),
            LockError::Deadlock => f.write_str("Deadlock"),
        }
    }
}

impl<G> fmt::Debug for TryLockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryLockError::WouldBlock => f.write_str("WouldBlock"),
            TryLockError::OwnerDied(_) => f.write_str("OwnerDied(..)"),
            TryLockError::NotRecoverable => f.write_str("NotRecoverable"),
            TryLockError::Deadlock => f.write_str("Deadlock"),
        }
    }
}

impl<G> fmt::Display for LockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LockError::OwnerDied(_) => "the previous owner of the lock died holding it",
            LockError::NotRecoverable => "the lock is not recoverable",
            LockError::Deadlock => "the calling thread already holds the lock",
        })
    }
}

impl<G> fmt::Display for TryLockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryLockError::WouldBlock => f.write_str("the lock is held by another thread"),
            TryLockError::OwnerDied(_) => {
                f.write_str("the previous owner of the lock died holding it")
            }
            TryLockError::NotRecoverable => f.write_str("the lock is not recoverable"),
            TryLockError::Deadlock => f.write_str("the calling thread already holds the lock"),
        }
    }
}

impl<G> std::error::Error for LockError<G> {}
impl<G> std::error::Error for TryLockError<G> {}

impl<G> From<LockError<G>> for crate::Error {
    /// Drops the guard: after [`LockError::OwnerDied`] that makes the lock
    /// not recoverable (the data was not declared repaired).
    fn from(e: LockError<G>) -> Self {
        match e {
            LockError::OwnerDied(_) => crate::Error::OwnerDied,
            LockError::NotRecoverable => crate::Error::NotRecoverable,
            LockError::Deadlock => crate::Error::Deadlock,
        }
    }
}

impl<G> From<TryLockError<G>> for crate::Error {
    /// As for [`LockError`]; `WouldBlock` becomes [`crate::Error::WouldBlock`].
    fn from(e: TryLockError<G>) -> Self {
        match e {
            TryLockError::WouldBlock => crate::Error::WouldBlock,
            TryLockError::OwnerDied(_) => crate::Error::OwnerDied,
            TryLockError::NotRecoverable => crate::Error::NotRecoverable,
            TryLockError::Deadlock => crate::Error::Deadlock,
        }
    }
}
