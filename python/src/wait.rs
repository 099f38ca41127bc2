#![allow(unsafe_code)] // a guard kept with the lock handle it borrows; guards moved out of `allow_threads`
//! Blocking the Python way, and the lock holds of Python threads.
//!
//! - [`block_on`]: a lock acquire (or any wait) that first tries without
//!   giving up the GIL, then waits with the GIL released in slices of at
//!   most [`SLICE`], checking for signals between them: Ctrl-C raises
//!   `KeyboardInterrupt` in a blocked `acquire()`, as in CPython's locks.
//! - [`Holds`]: Python's `acquire()`/`release()` are not scoped, the
//!   crate's guards are. A Python thread's holds are kept in a
//!   thread-local stack, each guard beside the (reference-counted) lock
//!   handle it borrows; `release()` drops the thread's newest hold of that
//!   handle. A thread that ends while holding leaves its locks held (the
//!   guards are forgotten, never released from a thread-local destructor):
//!   peers then see an owner that died, as for a killed process.

use std::cell::RefCell;
use std::mem::ManuallyDrop;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use shmsync::{LockGuard, RLockGuard, TryLockError};

/// Longest sleep with the GIL released between two checks for signals.
pub(crate) const SLICE: Duration = Duration::from_millis(20);

/// A value that crosses `allow_threads` back to the thread it was made on.
pub(crate) struct SameThread<T>(pub(crate) T);

// SAFETY: `Python::allow_threads` runs its closure on the calling thread
// and returns on it: the value (a `!Send` guard of a hold by this thread)
// never reaches another thread.
unsafe impl<T> Send for SameThread<T> {}

/// How an acquire ended.
pub(crate) enum Outcome<G> {
    /// Locked (or a recursive hold).
    Locked(G),
    /// Locked, and the previous owner died holding it.
    OwnerDied(G),
    /// Still held elsewhere at the deadline (or at once, not blocking).
    TimedOut,
    /// The lock is not recoverable.
    NotRecoverable,
    /// The calling thread holds this (non-recursive) lock.
    Deadlock,
}

/// When to give up.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Wait {
    /// Once, without blocking.
    Never,
    /// At this instant (`None`: never).
    Until(Option<Instant>),
}

impl Wait {
    /// Python's `(block, timeout)`: `timeout` `None` or negative waits
    /// forever; `block` false tries once.
    pub(crate) fn from_py(block: bool, timeout: Option<f64>) -> PyResult<Wait> {
        if !block {
            return Ok(Wait::Never);
        }
        match timeout {
            None => Ok(Wait::Until(None)),
            Some(t) if t.is_nan() => Err(pyo3::exceptions::PyValueError::new_err(
                "timeout must be a number, not NaN",
            )),
            Some(t) if t < 0.0 => Ok(Wait::Until(None)),
            Some(t) => Ok(Wait::Until(
                Duration::try_from_secs_f64(t)
                    .ok()
                    .and_then(|d| Instant::now().checked_add(d)),
            )),
        }
    }

    /// A whole wait without deadline.
    pub(crate) const FOREVER: Wait = Wait::Until(None);
}

/// Acquires with `attempt`: `attempt(None)` must try once without blocking,
/// `attempt(Some(d))` wait at most `d`. The first attempt keeps the GIL;
/// the waits after it release it and check for signals
/// (`KeyboardInterrupt`) between slices.
pub(crate) fn block_on<G, F>(py: Python<'_>, wait: Wait, attempt: F) -> PyResult<Outcome<G>>
where
    F: Fn(Option<Duration>) -> Result<G, TryLockError<G>> + Sync,
{
    // Not blocking: `try_lock`, which also asks whether a busy lock's
    // owner is alive. Blocking: first a wait of zero with the GIL held (the
    // crate's bounded spin, no system call: critical sections between
    // processes are often shorter than a GIL hand-over).
    let mut r = match wait {
        Wait::Never => attempt(None),
        Wait::Until(_) => attempt(Some(Duration::ZERO)),
    };
    loop {
        match r {
            Ok(g) => return Ok(Outcome::Locked(g)),
            Err(TryLockError::OwnerDied(g)) => return Ok(Outcome::OwnerDied(g)),
            Err(TryLockError::NotRecoverable) => return Ok(Outcome::NotRecoverable),
            Err(TryLockError::Deadlock) => return Ok(Outcome::Deadlock),
            Err(TryLockError::WouldBlock) => {}
            Err(_) => return Ok(Outcome::NotRecoverable),
        }
        let slice = match wait {
            Wait::Never => return Ok(Outcome::TimedOut),
            Wait::Until(None) => SLICE,
            Wait::Until(Some(end)) => {
                let left = end.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(Outcome::TimedOut);
                }
                left.min(SLICE)
            }
        };
        let attempt = &attempt;
        r = py.allow_threads(move || SameThread(attempt(Some(slice)))).0;
        if matches!(r, Err(TryLockError::WouldBlock)) {
            py.check_signals()?;
        }
    }
}

/// A lock object's handle, shared by its Python object and the holds taken
/// through it.
pub(crate) enum LockObj {
    Lock(shmsync::Lock),
    RLock(shmsync::RLock),
}

/// A hold of either lock type.
pub(crate) enum Guard<'a> {
    Lock(LockGuard<'a>),
    RLock(RLockGuard<'a>),
}

impl LockObj {
    /// Whether any thread holds the lock (a snapshot).
    #[inline]
    pub(crate) fn is_locked(&self) -> bool {
        match self {
            LockObj::Lock(l) => l.is_locked(),
            LockObj::RLock(l) => l.is_locked(),
        }
    }
}

impl Guard<'_> {
    pub(crate) fn mark_consistent(&self) {
        match self {
            Guard::Lock(g) => g.mark_consistent(),
            Guard::RLock(g) => g.mark_consistent(),
        }
    }
}

/// One hold: a guard and the handle it borrows.
struct Hold {
    /// Borrows `*lock`; dropped (released) before it.
    guard: ManuallyDrop<Guard<'static>>,
    lock: ManuallyDrop<Arc<LockObj>>,
}

impl Hold {
    fn new(lock: Arc<LockObj>, guard: Guard<'_>) -> Hold {
        // SAFETY: the guard borrows the `LockObj` inside the `Arc` (a heap
        // allocation that does not move); the `Hold` owns a strong
        // reference to it, and `Drop` drops the guard first. The lifetime
        // is only erased, the guard never outlives the handle; and it stays
        // on this thread (`Holds` is thread-local).
        let guard = unsafe { std::mem::transmute::<Guard<'_>, Guard<'static>>(guard) };
        Hold {
            guard: ManuallyDrop::new(guard),
            lock: ManuallyDrop::new(lock),
        }
    }

    /// Forgets the hold: the lock stays held by this thread, its mapping
    /// mapped.
    fn leak(self) {
        std::mem::forget(self);
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        // SAFETY: each field is dropped once, the guard before the handle
        // it borrows.
        unsafe {
            ManuallyDrop::drop(&mut self.guard);
            ManuallyDrop::drop(&mut self.lock);
        }
    }
}

/// The holds of the current thread, newest last.
struct Holds(Vec<Hold>);

impl Drop for Holds {
    fn drop(&mut self) {
        // The thread ends holding: keep the locks held (peers see a dead
        // owner) rather than run the crate's release in a thread-local
        // destructor.
        for h in self.0.drain(..) {
            h.leak();
        }
    }
}

thread_local! {
    static HOLDS: RefCell<Holds> = const { RefCell::new(Holds(Vec::new())) };
}

/// Records a hold of `lock` by the current thread.
pub(crate) fn push(lock: &Arc<LockObj>, guard: Guard<'_>) {
    let hold = Hold::new(lock.clone(), guard);
    HOLDS.with(|h| h.borrow_mut().0.push(hold));
}

/// Whether the current thread holds `lock` through this handle (a hold
/// recorded by `acquire`/`with`): its objects can then be read and written
/// without taking the lock again.
#[inline]
pub(crate) fn holds(lock: &Arc<LockObj>) -> bool {
    HOLDS.with(|h| h.borrow().0.iter().any(|x| Arc::ptr_eq(&x.lock, lock)))
}

/// Releases the current thread's newest hold of `lock`; `false` if it has
/// none.
pub(crate) fn pop(lock: &Arc<LockObj>) -> bool {
    let hold = HOLDS.with(|h| {
        let mut h = h.borrow_mut();
        let i = h.0.iter().rposition(|x| Arc::ptr_eq(&x.lock, lock))?;
        Some(h.0.remove(i))
    });
    // Released outside the borrow.
    hold.is_some()
}

/// Whether the current thread holds `lock` through this handle, and
/// `mark_consistent` on its newest hold.
pub(crate) fn mark_consistent(lock: &Arc<LockObj>) -> bool {
    HOLDS.with(|h| {
        let h = h.borrow();
        match h.0.iter().rev().find(|x| Arc::ptr_eq(&x.lock, lock)) {
            Some(x) => {
                x.guard.mark_consistent();
                true
            }
            None => false,
        }
    })
}

/// How many holds the current thread has of `lock` through this handle.
pub(crate) fn count(lock: &Arc<LockObj>) -> usize {
    HOLDS.with(|h| {
        h.borrow()
            .0
            .iter()
            .filter(|x| Arc::ptr_eq(&x.lock, lock))
            .count()
    })
}

/// Runs `f` on the current thread's newest hold of `lock` (through this
/// handle), taken out of the thread's holds meanwhile: `f` gets its guard
/// and gives it back (`Some`: recorded again as the newest hold of `lock`)
/// or gives it up (`None`: it was consumed, the hold is gone). `None` if
/// the thread has no hold of `lock`. The guard's lifetime is erased (it
/// borrows `*lock`, which stays alive until after `f`): `f` must not keep
/// it anywhere but in its result.
pub(crate) fn with_hold<R>(
    lock: &Arc<LockObj>,
    f: impl FnOnce(Guard<'static>) -> (Option<Guard<'static>>, R),
) -> Option<R> {
    let hold = HOLDS.with(|h| {
        let mut h = h.borrow_mut();
        let i = h.0.iter().rposition(|x| Arc::ptr_eq(&x.lock, lock))?;
        Some(h.0.remove(i))
    })?;
    let mut hold = ManuallyDrop::new(hold);
    // SAFETY: `hold` is never used nor dropped again (`ManuallyDrop`), so
    // each field is taken out once. The guard borrows the `LockObj` in
    // `handle`, which lives until after `f` and, if the guard comes back,
    // is recorded with it again (the guard dropped before it, `Hold`).
    let (guard, handle) = unsafe {
        (
            ManuallyDrop::take(&mut hold.guard),
            ManuallyDrop::take(&mut hold.lock),
        )
    };
    let (back, r) = f(guard);
    if let Some(g) = back {
        let hold = Hold {
            guard: ManuallyDrop::new(g),
            lock: ManuallyDrop::new(handle),
        };
        HOLDS.with(|h| h.borrow_mut().0.push(hold));
    }
    Some(r)
}

/// The `stop` callback of the crate's interruptible waits
/// (`wait_timeout_unless`): called with the GIL released, it takes the GIL
/// to run the signal handlers (Ctrl-C) and keeps their exception.
#[derive(Default)]
pub(crate) struct Interrupt {
    pub(crate) err: Option<PyErr>,
}

impl Interrupt {
    /// Whether to stop waiting: a signal handler raised.
    pub(crate) fn poll(&mut self) -> bool {
        if self.err.is_none() {
            self.err = Python::with_gil(|py| py.check_signals()).err();
        }
        self.err.is_some()
    }
}

/// A Python timeout (`None`: none; negative: 0) for the crate's waits
/// (`None` also for a timeout too large to represent).
pub(crate) fn timeout(t: Option<f64>) -> PyResult<Option<Duration>> {
    match t {
        None => Ok(None),
        Some(t) if t.is_nan() => Err(pyo3::exceptions::PyValueError::new_err(
            "timeout must be a number, not NaN",
        )),
        Some(t) => Ok(Duration::try_from_secs_f64(t.max(0.0)).ok()),
    }
}

/// Forgets the holds copied from the parent's forking thread: in a child
/// made by `fork` they are the parent's, not the child's (registered with
/// `os.register_at_fork` by the package).
#[pyfunction]
pub(crate) fn after_fork_child() {
    HOLDS.with(|h| {
        if let Ok(mut h) = h.try_borrow_mut() {
            for x in h.0.drain(..) {
                x.leak();
            }
        }
    });
}
