//! [`Value`] and [`RawValue`]: one typed element in shared memory.

use core::fmt;
use core::time::Duration;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::error::Result;
use crate::shm::object::Kind;
use crate::sync::{HasLock, HeldLock, LockHandle};
use crate::sync::{LockError, RLock, TryLockError};
use crate::typed::Element;
use crate::typed::{Elements, NewLock};

/// One `T` in shared memory, protected by a recursive lock: Python's
/// `multiprocessing.Value`.
///
/// [`get`](Value::get), [`set`](Value::set) and [`update`](Value::update)
/// each take the lock; `update` applies a closure under it, so
/// `v.update(|x| x + 1)` never loses an increment (unlike Python's
/// `v.value += 1`). For longer critical sections take a guard with
/// [`lock`](Value::lock).
///
/// The lock is recursive, so the guard hands out **copies, never
/// references**: a thread already holding the lock can lock it again, and
/// two `&mut T` to the same data would be undefined behaviour. `get` and
/// `set` on the guard are plain copies in and out.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use shmsync::Value;
/// let v = Value::<i32>::new(0)?;
/// v.set(5).unwrap();
/// assert_eq!(v.update(|x| x + 1).unwrap(), 6);
/// {
///     let g = v.lock().unwrap();
///     g.set(g.get() * 2);
/// }
/// assert_eq!(v.get().unwrap(), 12);
/// # Ok(()) }
/// ```
pub struct Value<T> {
    elems: Elements<T>,
    lock: RLock,
}

/// A [`Value`] locked by the current thread. Releases the lock when dropped.
#[must_use = "if unused the lock will immediately unlock"]
pub struct ValueGuard<'a, T: Element> {
    held: HeldLock<'a, Value<T>>,
}

impl<T: Element> HasLock for Value<T> {
    #[inline]
    fn lock_handle(&self) -> &LockHandle {
        self.lock.handle()
    }
}

const VALUE: &[Kind] = &[Kind::Value];
const RAW_VALUE: &[Kind] = &[Kind::RawValue];

impl<T: Element> Value<T> {
    fn with(elems: Elements<T>, given: Option<&RLock>) -> Result<Self> {
        let lock = elems.attach_lock(given)?;
        Ok(Value { elems, lock })
    }

    /// A new anonymous value with its own lock.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) if the memfd cannot be made.
    pub fn new(v: T) -> Result<Self> {
        Self::with(
            Elements::create(None, Kind::Value, 1, NewLock::Own, |_| v)?,
            None,
        )
    }

    /// A new named value with its own lock (`O_EXCL`, mode 0600 whatever
    /// the umask; see [names, files and descriptors](crate::SharedMemory#names-files-and-descriptors)). The name
    /// is unlinked when this handle is dropped, unless
    /// [`persist`](Value::persist) is called.
    ///
    /// # Errors
    /// [`Error::InvalidName`](crate::Error::InvalidName),
    /// [`Error::AlreadyExists`](crate::Error::AlreadyExists),
    /// [`Error::Stale`](crate::Error::Stale) for a name left behind by a
    /// creator that died (remove it with
    /// [`SharedMemory::unlink_name`](crate::SharedMemory::unlink_name)),
    /// [`Error::Io`](crate::Error::Io).
    pub fn create(name: &str, v: T) -> Result<Self> {
        Self::with(
            Elements::create(Some(name), Kind::Value, 1, NewLock::Own, |_| v)?,
            None,
        )
    }

    /// A new anonymous value protected by an existing lock (Python's
    /// `Value(..., lock=rlock)`): several objects can share one lock.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io).
    pub fn with_lock(v: T, lock: &RLock) -> Result<Self> {
        Self::with(
            Elements::create(None, Kind::Value, 1, NewLock::External(lock), |_| v)?,
            Some(lock),
        )
    }

    /// A new named value protected by an existing *named* [`RLock`]; the
    /// lock's name is recorded so that [`open`](Value::open) re-attaches it.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) if the lock
    /// is anonymous or belongs to another object; otherwise as
    /// [`create`](Value::create).
    pub fn create_with_lock(name: &str, v: T, lock: &RLock) -> Result<Self> {
        Self::with(
            Elements::create(Some(name), Kind::Value, 1, NewLock::External(lock), |_| v)?,
            Some(lock),
        )
    }

    /// Opens a value created by any process, with its lock.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound),
    /// [`Error::TypeMismatch`](crate::Error::TypeMismatch) for another kind
    /// or element type, [`Error::LockMismatch`](crate::Error::LockMismatch)
    /// if its separate lock cannot be re-attached, and the validation errors
    /// for a damaged segment; [`Error::InvalidName`](crate::Error::InvalidName)
    /// also for a symbolic link (never followed) or a non-regular file.
    pub fn open(name: &str) -> Result<Self> {
        Self::with(Elements::open(name, VALUE)?, None)
    }

    /// Attaches to the value behind `fd` (see [`AsFd::as_fd`]).
    ///
    /// The descriptor must be a regular file, and a memfd must be sealed
    /// against shrinking (as anonymous objects are); see [names, files and descriptors](crate::SharedMemory#names-files-and-descriptors).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) for another
    /// kind of descriptor or an unsealed memfd; otherwise as
    /// [`open`](Value::open). A value whose separate lock is
    /// anonymous needs [`from_fd_with_lock`](Value::from_fd_with_lock).
    pub fn from_fd(fd: OwnedFd) -> Result<Self> {
        Self::with(Elements::from_fd(fd, VALUE)?, None)
    }

    /// Attaches to the value behind `fd`, which uses `lock`. The descriptor
    /// must be as for [`from_fd`](Value::from_fd).
    ///
    /// # Errors
    /// [`Error::LockMismatch`](crate::Error::LockMismatch) if the value was
    /// not created with this lock; otherwise as [`from_fd`](Value::from_fd).
    pub fn from_fd_with_lock(fd: OwnedFd, lock: &RLock) -> Result<Self> {
        Self::with(Elements::from_fd(fd, VALUE)?, Some(lock))
    }

    /// Locks and reads the value.
    ///
    /// # Errors
    /// See [`RLock::lock`]: [`LockError::OwnerDied`] carries a guard to
    /// repair the value with.
    #[inline]
    pub fn get(&self) -> Result<T, LockError<ValueGuard<'_, T>>> {
        self.lock().map(|g| g.get())
    }

    /// Locks and writes the value.
    ///
    /// # Errors
    /// See [`Value::get`].
    #[inline]
    pub fn set(&self, v: T) -> Result<(), LockError<ValueGuard<'_, T>>> {
        self.lock().map(|g| g.set(v))
    }

    /// Applies `f` under the lock and returns the new value: an atomic
    /// read-modify-write.
    ///
    /// # Errors
    /// See [`Value::get`]; `f` is not called on error.
    #[inline]
    pub fn update(&self, f: impl FnOnce(T) -> T) -> Result<T, LockError<ValueGuard<'_, T>>> {
        self.lock().map(|g| {
            let n = f(g.get());
            g.set(n);
            n
        })
    }

    /// Locks the value for a compound operation.
    ///
    /// # Errors
    /// See [`RLock::lock`].
    #[inline(always)]
    pub fn lock(&self) -> Result<ValueGuard<'_, T>, LockError<ValueGuard<'_, T>>> {
        HeldLock::acquire(self, |held| ValueGuard { held })
    }

    /// Locks the value if the lock is free.
    ///
    /// # Errors
    /// See [`RLock::try_lock`].
    #[inline(always)]
    pub fn try_lock(&self) -> Result<ValueGuard<'_, T>, TryLockError<ValueGuard<'_, T>>> {
        HeldLock::try_acquire(self, None, |held| ValueGuard { held })
    }

    /// Locks the value, waiting at most `timeout`.
    ///
    /// # Errors
    /// See [`RLock::lock_timeout`].
    pub fn lock_timeout(
        &self,
        timeout: Duration,
    ) -> Result<ValueGuard<'_, T>, TryLockError<ValueGuard<'_, T>>> {
        HeldLock::try_acquire(self, Some(timeout), |held| ValueGuard { held })
    }

    /// The lock protecting this value (Python's `get_lock()`).
    pub fn get_lock(&self) -> &RLock {
        &self.lock
    }
}

impl<T: Element> ValueGuard<'_, T> {
    #[inline]
    fn elems(&self) -> &Elements<T> {
        &self.held.obj().elems
    }

    /// Reads the value.
    #[inline]
    pub fn get(&self) -> T {
        self.elems().load(0)
    }

    /// Writes the value.
    #[inline]
    pub fn set(&self, v: T) {
        self.elems().store(0, v);
    }

    /// Declares the value repaired after [`LockError::OwnerDied`]; see
    /// [`RLockGuard::mark_consistent`](crate::RLockGuard::mark_consistent).
    pub fn mark_consistent(&self) {
        self.held.mark_consistent();
    }
}

impl<T: Element + fmt::Debug> fmt::Debug for ValueGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValueGuard")
            .field("value", &self.get())
            .finish()
    }
}

impl<T: Element + fmt::Debug> fmt::Debug for Value<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Value")
            .field("name", &self.name())
            .field("lock", &self.lock)
            .finish_non_exhaustive()
    }
}

/// One `T` in shared memory **without a lock**: Python's
/// `multiprocessing.RawValue`.
///
/// Every access is a single relaxed atomic load or store (per aligned word
/// of `T`), so concurrent use is never undefined behaviour, but a
/// read-modify-write such as `r.set(r.get() + 1)` from several processes
/// loses updates, exactly as in Python. Use [`Value`] or
/// [`AtomicValue`](crate::AtomicValue) when that matters.
///
/// ```
/// # fn main() -> Result<(), shmsync::Error> {
/// let r = shmsync::RawValue::<f64>::new(1.5)?;
/// r.set(r.get() * 2.0);
/// assert_eq!(r.get(), 3.0);
/// # Ok(()) }
/// ```
pub struct RawValue<T> {
    elems: Elements<T>,
}

impl<T: Element> RawValue<T> {
    /// A new anonymous value.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io).
    pub fn new(v: T) -> Result<Self> {
        Ok(RawValue {
            elems: Elements::create(None, Kind::RawValue, 1, NewLock::None, |_| v)?,
        })
    }

    /// A new named value; see [`Value::create`].
    ///
    /// # Errors
    /// As for [`Value::create`].
    pub fn create(name: &str, v: T) -> Result<Self> {
        Ok(RawValue {
            elems: Elements::create(Some(name), Kind::RawValue, 1, NewLock::None, |_| v)?,
        })
    }

    /// Opens a named value; see [`Value::open`].
    ///
    /// # Errors
    /// As for [`Value::open`].
    pub fn open(name: &str) -> Result<Self> {
        Ok(RawValue {
            elems: Elements::open(name, RAW_VALUE)?,
        })
    }

    /// Attaches to the value behind `fd`; see [`Value::from_fd`].
    ///
    /// # Errors
    /// As for [`Value::from_fd`].
    pub fn from_fd(fd: OwnedFd) -> Result<Self> {
        Ok(RawValue {
            elems: Elements::from_fd(fd, RAW_VALUE)?,
        })
    }

    /// Reads the value (relaxed).
    #[inline]
    pub fn get(&self) -> T {
        self.elems.load(0)
    }

    /// Writes the value (relaxed).
    #[inline]
    pub fn set(&self, v: T) {
        self.elems.store(0, v);
    }
}

impl<T: Element + fmt::Debug> fmt::Debug for RawValue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawValue")
            .field("name", &self.name())
            .field("value", &self.get())
            .finish()
    }
}

/// The naming and descriptor methods every object has.
macro_rules! object_common {
    ($($ty:ident),*) => {$(
        impl<T: Element> $ty<T> {
            /// The segment's name (without a leading `/`), `None` if
            /// anonymous.
            pub fn name(&self) -> Option<&str> {
                self.elems.obj.seg.name()
            }

            /// Keeps the name after this creating handle is dropped.
            pub fn persist(&self) {
                self.elems.obj.seg.persist();
            }

            /// Removes the name now; attached handles keep working.
            ///
            /// # Errors
            /// [`Error::NotFound`](crate::Error::NotFound) if already
            /// removed, [`Error::InvalidArgument`](crate::Error::InvalidArgument)
            /// if anonymous.
            pub fn unlink(&self) -> Result<()> {
                self.elems.obj.seg.unlink()
            }
        }

        impl<T: Element> AsFd for $ty<T> {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.elems.obj.seg.fd()
            }
        }
    )*};
}
pub(crate) use object_common;

object_common!(Value, RawValue);
