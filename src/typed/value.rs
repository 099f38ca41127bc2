//! [`Value`] and [`RawValue`]: one typed element in shared memory.

use core::fmt;
use core::time::Duration;

use crate::error::Result;
use crate::shared::{shared_object, Contents};
use crate::sync::{HasLock, HeldLock, LockHandle};
use crate::sync::{LockError, RLock, TryLockError};
use crate::typed::elements::typed_kind;
use crate::typed::{Element, Elements};

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

typed_kind!(Value: Value, single: true, lock: Own, |obj, given| {
    let lock = RLock::protecting(&obj, given)?;
    Ok(Value {
        elems: Elements::wrap(obj),
        lock,
    })
});

shared_object! {
    impl[T: Element] Value<T>: "value", "shmsync::Value::<u8>";
    new(v: T) => Contents::One(v); " holding `v`, with its own lock", "new(7)", "create(&name, 7)";
    with_lock: "with_lock(7, &lock)", "create_with_lock(&name, 7, &lock)";
}

impl<T: Element> Value<T> {
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

    /// Reads the value **without taking the lock** (multiprocessing's
    /// `get_obj().value`). The read itself is atomic (never torn); what it
    /// gives up is the exclusion: a thread that holds the lock elsewhere
    /// may be halfway through a compound update. Meant for code that
    /// already holds the lock through another handle, such as a guard of
    /// [`get_lock`](Value::get_lock) (Python's `with v.get_lock():`), and
    /// for monitoring.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmsync::Value;
    /// let v = Value::<u64>::new(1)?;
    /// let held = v.get_lock().lock().unwrap();
    /// v.set_unlocked(v.get_unlocked() + 1); // exclusion: `held`
    /// drop(held);
    /// assert_eq!(v.get().unwrap(), 2);
    /// # Ok(()) }
    /// ```
    #[inline]
    pub fn get_unlocked(&self) -> T {
        self.elems.load(0)
    }

    /// Writes the value **without taking the lock**; see
    /// [`get_unlocked`](Value::get_unlocked).
    #[inline]
    pub fn set_unlocked(&self, v: T) {
        self.elems.store(0, v);
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

typed_kind!(RawValue: RawValue, single: true, lock: None, |obj, _given| {
    Ok(RawValue {
        elems: Elements::wrap(obj),
    })
});

shared_object! {
    impl[T: Element] RawValue<T>: "value", "shmsync::RawValue::<u8>";
    new(v: T) => Contents::One(v); " holding `v`", "new(7)", "create(&name, 7)";
}

impl<T: Element> RawValue<T> {
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
