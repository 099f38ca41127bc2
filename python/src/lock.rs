//! `Lock` and `RLock`: `acquire(block=True, timeout=None)`, `release()`,
//! context manager, and the owner-death protocol (`OwnerDiedError`,
//! `mark_consistent()`, `NotRecoverableError`).

use std::sync::Arc;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use shmsync::TryLockError;

use crate::errors::{exc, ResultExt};
use crate::handle;
use crate::wait::{self, block_on, Guard, LockObj, Outcome, Wait};

/// Acquires `lock` for the calling thread and records the hold.
/// `Ok(false)`: timed out (or, not blocking forever, held by this thread).
/// `OwnerDiedError` with the lock held when `keep_dead` is true, released
/// (and so made not recoverable) otherwise.
pub(crate) fn acquire(
    py: Python<'_>,
    lock: &Arc<LockObj>,
    wait: Wait,
    keep_dead: bool,
) -> PyResult<bool> {
    let outcome = match &**lock {
        LockObj::Lock(l) => block_on(py, wait, |t| {
            match t {
                None => l.try_lock(),
                Some(d) => l.lock_timeout(d),
            }
            .map(Guard::Lock)
            .map_err(|e| map_guard(e, Guard::Lock))
        })?,
        LockObj::RLock(l) => block_on(py, wait, |t| {
            match t {
                None => l.try_lock(),
                Some(d) => l.lock_timeout(d),
            }
            .map(Guard::RLock)
            .map_err(|e| map_guard(e, Guard::RLock))
        })?,
    };
    match outcome {
        Outcome::Locked(g) => {
            wait::push(lock, g);
            Ok(true)
        }
        Outcome::OwnerDied(g) => {
            if keep_dead {
                wait::push(lock, g);
                Err(owner_died(py, true))
            } else {
                drop(g);
                Err(owner_died(py, false))
            }
        }
        Outcome::TimedOut => Ok(false),
        Outcome::NotRecoverable => Err(not_recoverable(py)),
        Outcome::Deadlock => match wait {
            Wait::Until(None) => Err(exc(
                py,
                "DeadlockError",
                "the calling thread already holds this Lock (use an RLock to lock it again)",
            )),
            _ => Ok(false),
        },
    }
}

/// Python's error for releasing an `RLock` the thread does not hold.
pub(crate) fn rlock_not_held() -> PyErr {
    pyo3::exceptions::PyAssertionError::new_err(
        "attempt to release recursive lock not owned by thread",
    )
}

fn map_guard<G, H>(e: TryLockError<G>, f: impl FnOnce(G) -> H) -> TryLockError<H> {
    e.map(f)
}

/// The `OwnerDiedError` of an acquire that keeps the lock (`held`) or
/// released it.
pub(crate) fn owner_died(py: Python<'_>, held: bool) -> PyErr {
    let msg = if held {
        "the previous owner died holding the lock: this thread holds it now; repair the \
         data, call mark_consistent(), then release()"
    } else {
        "the previous owner died holding the lock; it was released unrepaired, so it is now \
         not recoverable (acquire() instead of `with` to repair it, see shmsync.held)"
    };
    exc(py, "OwnerDiedError", msg)
}

pub(crate) fn not_recoverable(py: Python<'_>) -> PyErr {
    exc(
        py,
        "NotRecoverableError",
        "the lock is not recoverable: its owner died and it was released without \
         mark_consistent()",
    )
}

macro_rules! lock_class {
    ($rust:ident, $py:literal, $kind:ident, $variant:ident) => {
        #[doc = concat!("`shmsync.", $py, "`.")]
        #[pyclass(frozen, module = "shmsync", name = $py)]
        pub(crate) struct $rust {
            pub(crate) lock: Arc<LockObj>,
        }

        impl $rust {
            fn inner(&self) -> &shmsync::$kind {
                match &*self.lock {
                    LockObj::$variant(l) => l,
                    _ => unreachable!("a {} holds a {}", $py, stringify!($kind)),
                }
            }

            pub(crate) fn wrap(l: shmsync::$kind) -> Self {
                $rust {
                    lock: Arc::new(LockObj::$variant(l)),
                }
            }
        }

        #[pymethods]
        impl $rust {
            /// A new lock: anonymous, or named `name` (created; any
            /// process can `open` it).
            #[new]
            #[pyo3(signature = (*, name=None))]
            fn new(name: Option<&str>) -> PyResult<Self> {
                Ok(Self::wrap(match name {
                    None => shmsync::$kind::new(),
                    Some(n) => shmsync::$kind::create(n),
                }
                .py()?))
            }

            /// Opens the lock created under `name` by any process (Python
            /// or Rust).
            #[staticmethod]
            fn open(name: &str) -> PyResult<Self> {
                Ok(Self::wrap(shmsync::$kind::open(name).py()?))
            }

            #[staticmethod]
            #[pyo3(signature = (name, fd, _code, _len, _lock))]
            fn _attach(
                name: Option<&str>,
                fd: Option<i32>,
                _code: Option<&str>,
                _len: usize,
                _lock: Option<PyObject>,
            ) -> PyResult<Self> {
                match (name, fd) {
                    (Some(n), _) => Self::open(n),
                    (None, Some(fd)) => Ok(Self::wrap(
                        shmsync::$kind::from_fd(handle::owned_fd(fd)?).py()?,
                    )),
                    _ => Err(PyValueError::new_err("a name or a descriptor is needed")),
                }
            }

            /// Declares the protected data repaired after `OwnerDiedError`
            /// (the calling thread must hold the lock). A no-op on a
            /// consistent lock.
            fn mark_consistent(&self) -> PyResult<()> {
                if wait::mark_consistent(&self.lock) {
                    Ok(())
                } else {
                    Err(PyValueError::new_err(
                        "mark_consistent() needs the lock held by this thread (through this object)",
                    ))
                }
            }

            /// Whether some thread of some process holds the lock (a
            /// snapshot).
            fn locked(&self) -> bool {
                self.inner().is_locked()
            }

            /// Whether the calling thread holds the lock.
            fn _is_owned(&self) -> bool {
                self.inner().is_held_by_current_thread()
            }

            // `acquire`, `release`, `__enter__` and `__exit__`: `fast.rs`.

            /// The name, `None` if anonymous.
            #[getter]
            fn name(&self) -> Option<String> {
                self.inner().name().map(str::to_owned)
            }

            /// Keeps the name when this (creating) handle goes away.
            fn persist(&self) {
                self.inner().persist();
            }

            /// Removes the name now.
            fn unlink(&self) -> PyResult<()> {
                self.inner().unlink().py()
            }

            fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
                let l = self.inner();
                handle::reduce(py, $py, l.name(), handle::raw_fd(l), None, 0, None)
            }

            fn __repr__(&self) -> String {
                let l = self.inner();
                let state = if l.is_held_by_current_thread() {
                    "held by this thread"
                } else if l.is_locked() {
                    "locked"
                } else {
                    "unlocked"
                };
                match l.name() {
                    Some(n) => format!("<shmsync.{} {:?} {}>", $py, n, state),
                    None => format!("<shmsync.{} {}>", $py, state),
                }
            }

            /// How many holds the calling thread has through this object.
            fn _count(&self) -> usize {
                wait::count(&self.lock)
            }
        }
    };
}

lock_class!(PyLock, "Lock", Lock, Lock);
lock_class!(PyRLock, "RLock", RLock, RLock);

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyLock>()?;
    m.add_class::<PyRLock>()?;
    Ok(())
}

/// One locked access of an object's own lock (`v.value`, `a[i]`): the
/// guard `attempt` gives (as in [`block_on`]), or the exception; an owner's
/// death releases the lock unrepaired and raises `OwnerDiedError`.
pub(crate) fn one_shot<G, F>(py: Python<'_>, attempt: F) -> PyResult<G>
where
    F: Fn(Option<std::time::Duration>) -> Result<G, TryLockError<G>> + Sync,
{
    match block_on(py, Wait::FOREVER, attempt)? {
        Outcome::Locked(g) => Ok(g),
        Outcome::OwnerDied(g) => {
            drop(g);
            Err(owner_died(py, false))
        }
        // An RLock without deadline: neither happens.
        Outcome::NotRecoverable | Outcome::Deadlock | Outcome::TimedOut => Err(not_recoverable(py)),
    }
}
