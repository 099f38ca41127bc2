//! `Condition`: multiprocessing's `Condition(lock=None)` over the crate's
//! `Condition<RLock>` (its own recursive lock, or a given `RLock`) or
//! `Condition<Lock>` (a given `Lock`).
//!
//! The lock is a Python `Lock`/`RLock` object of `lock.rs`: `acquire`,
//! `release` and `with` go through it (its holds, its owner-death
//! protocol), and `wait` takes the calling thread's newest hold of it out
//! of the thread's holds, hands its guard to the crate's wait (which
//! releases every level of the lock and takes them all back) and records
//! it again.

use std::sync::Arc;
use std::time::Duration;

use pyo3::exceptions::{PyAssertionError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use shmsync::{LockError, WaitTimeoutLockResult};

use crate::errors::{exc, ResultExt};
use crate::handle;
use crate::lock::{self, PyLock, PyRLock};
use crate::wait::{self, Guard, Interrupt, LockObj, SameThread, Wait};

/// The crate's condition over either lock type.
enum Cond {
    Lock(shmsync::Condition<shmsync::Lock>),
    RLock(shmsync::Condition<shmsync::RLock>),
}

impl Cond {
    fn code(&self) -> char {
        match self {
            Cond::Lock(_) => 'L',
            Cond::RLock(_) => 'R',
        }
    }

    fn name(&self) -> Option<&str> {
        match self {
            Cond::Lock(c) => c.name(),
            Cond::RLock(c) => c.name(),
        }
    }

    fn fd(&self) -> i32 {
        match self {
            Cond::Lock(c) => handle::raw_fd(c),
            Cond::RLock(c) => handle::raw_fd(c),
        }
    }

    /// The Python object of the condition's own lock (or of the lock it
    /// recorded, re-opened).
    fn lock_object(&self, py: Python<'_>) -> PyResult<PyObject> {
        Ok(match self {
            Cond::Lock(c) => Py::new(py, PyLock::wrap(c.get_lock().clone()))?.into_any(),
            Cond::RLock(c) => Py::new(py, PyRLock::wrap(c.get_lock().clone()))?.into_any(),
        })
    }
}

/// One wait's result: the guard back (or not), and what to return.
type Waited = (Option<Guard<'static>>, PyResult<bool>);

fn waited<G>(
    py: Python<'_>,
    r: WaitTimeoutLockResult<G>,
    back: impl FnOnce(G) -> Guard<'static>,
) -> Waited {
    match r {
        Ok((g, t)) => (Some(back(g)), Ok(!t.timed_out())),
        Err(LockError::OwnerDied((g, _))) => (Some(back(g)), Err(lock::owner_died(py, true))),
        Err(LockError::NotRecoverable) => (None, Err(lock::not_recoverable(py))),
        Err(LockError::Deadlock) => (
            None,
            Err(exc(
                py,
                "DeadlockError",
                "the lock is also held through another handle of it (opened separately), \
                 which a wait cannot release; this hold was released",
            )),
        ),
        // A future error: the hold is gone.
        Err(_) => (None, Err(lock::not_recoverable(py))),
    }
}

/// `shmsync.Condition`: multiprocessing's `Condition`, in shared memory.
#[pyclass(frozen, module = "shmsync", name = "Condition")]
pub(crate) struct PyCondition {
    c: Cond,
    /// The Python lock object (`Lock` or `RLock`).
    lock: PyObject,
    /// Its handle (the key of the threads' holds).
    handle: Arc<LockObj>,
    /// Whether the lock is the condition's own (not pickled with it).
    own: bool,
}

impl PyCondition {
    fn make(py: Python<'_>, c: Cond, lock: Option<PyObject>, own: bool) -> PyResult<Self> {
        let lock = match lock {
            Some(l) => l,
            None => c.lock_object(py)?,
        };
        let handle = lock_handle(lock.bind(py))?.0;
        Ok(PyCondition {
            c,
            lock,
            handle,
            own,
        })
    }

    fn open_with(py: Python<'_>, name: &str, lock: Option<PyObject>) -> PyResult<Self> {
        let seen = handle::seen(py, name)?;
        handle::check_kind(py, seen.kind, shmsync::inspect::Kind::Condition)?;
        let c = match seen.code {
            'L' => Cond::Lock(shmsync::Condition::open(name).py()?),
            _ => Cond::RLock(shmsync::Condition::open(name).py()?),
        };
        Self::make(py, c, lock, seen.lock_mode == 1)
    }

    fn owned(&self) -> bool {
        wait::count(&self.handle) > 0
    }
}

/// The handle of a Python `Lock`/`RLock`, and whether it is an `RLock`.
fn lock_handle(l: &Bound<'_, PyAny>) -> PyResult<(Arc<LockObj>, bool)> {
    if let Ok(r) = l.downcast::<PyRLock>() {
        Ok((r.get().lock.clone(), true))
    } else if let Ok(r) = l.downcast::<PyLock>() {
        Ok((r.get().lock.clone(), false))
    } else {
        Err(PyTypeError::new_err(
            "lock must be a shmsync.Lock or shmsync.RLock",
        ))
    }
}

#[pymethods]
impl PyCondition {
    /// A new condition: over a recursive lock of its own (`lock=None`,
    /// multiprocessing's default) or the given shmsync `Lock`/`RLock`;
    /// anonymous, or named `name` (a named condition over a given lock
    /// needs a named lock).
    #[new]
    #[pyo3(signature = (lock=None, *, name=None))]
    fn new(py: Python<'_>, lock: Option<PyObject>, name: Option<&str>) -> PyResult<Self> {
        let Some(l) = lock.filter(|l| !l.is_none(py)) else {
            let c = match name {
                None => shmsync::Condition::<shmsync::RLock>::new(),
                Some(n) => shmsync::Condition::<shmsync::RLock>::create(n),
            }
            .py()?;
            return Self::make(py, Cond::RLock(c), None, true);
        };
        let b = l.bind(py);
        let c = if let Ok(r) = b.downcast::<PyRLock>() {
            let LockObj::RLock(inner) = &*r.get().lock else {
                unreachable!("an RLock holds an RLock")
            };
            Cond::RLock(
                match name {
                    None => shmsync::Condition::with_lock(inner),
                    Some(n) => shmsync::Condition::create_with_lock(n, inner),
                }
                .py()?,
            )
        } else if let Ok(r) = b.downcast::<PyLock>() {
            let LockObj::Lock(inner) = &*r.get().lock else {
                unreachable!("a Lock holds a Lock")
            };
            Cond::Lock(
                match name {
                    None => shmsync::Condition::with_lock(inner),
                    Some(n) => shmsync::Condition::create_with_lock(n, inner),
                }
                .py()?,
            )
        } else {
            return Err(PyTypeError::new_err(
                "lock must be a shmsync.Lock or shmsync.RLock (or None)",
            ));
        };
        Self::make(py, c, Some(l), false)
    }

    /// Opens the condition created under `name` by any process (Python
    /// or Rust), with its lock.
    #[staticmethod]
    fn open(py: Python<'_>, name: &str) -> PyResult<Self> {
        Self::open_with(py, name, None)
    }

    #[staticmethod]
    #[pyo3(signature = (name, fd, code, _len, lock))]
    fn _attach(
        py: Python<'_>,
        name: Option<&str>,
        fd: Option<i32>,
        code: Option<&str>,
        _len: usize,
        lock: Option<PyObject>,
    ) -> PyResult<Self> {
        let lock = lock.filter(|l| !l.is_none(py));
        match (name, fd) {
            (Some(n), _) => {
                let c = Self::open_with(py, n, lock)?;
                if code != Some(&c.c.code().to_string()) {
                    return Err(exc(
                        py,
                        "MismatchError",
                        "a condition over another lock type",
                    ));
                }
                Ok(c)
            }
            (None, Some(fd)) => {
                let fd = handle::owned_fd(fd)?;
                let c = match (code, &lock) {
                    (Some("R"), None) => Cond::RLock(shmsync::Condition::from_fd(fd).py()?),
                    (Some("L"), None) => Cond::Lock(shmsync::Condition::from_fd(fd).py()?),
                    (_, Some(l)) => match &*lock_handle(l.bind(py))?.0 {
                        LockObj::RLock(inner) if code == Some("R") => {
                            Cond::RLock(shmsync::Condition::from_fd_with_lock(fd, inner).py()?)
                        }
                        LockObj::Lock(inner) if code == Some("L") => {
                            Cond::Lock(shmsync::Condition::from_fd_with_lock(fd, inner).py()?)
                        }
                        _ => {
                            return Err(exc(
                                py,
                                "MismatchError",
                                "a condition over another lock type",
                            ))
                        }
                    },
                    _ => return Err(exc(py, "MismatchError", "not a condition's type code")),
                };
                let own = lock.is_none();
                Self::make(py, c, lock, own)
            }
            _ => Err(PyValueError::new_err("a name or a descriptor is needed")),
        }
    }

    /// The condition's lock (a shmsync `Lock` or `RLock`).
    fn get_lock(&self, py: Python<'_>) -> PyObject {
        self.lock.clone_ref(py)
    }

    /// `acquire(block=True, timeout=None)` of the lock (its owner-death
    /// protocol: `OwnerDiedError` with the lock held).
    #[pyo3(signature = (block=true, timeout=None))]
    fn acquire(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<bool> {
        lock::acquire(py, &self.handle, Wait::from_py(block, timeout)?, true)
    }

    /// `release()` of the lock.
    fn release(&self, py: Python<'_>) -> PyResult<()> {
        self.lock.bind(py).call_method0("release").map(drop)
    }

    /// `mark_consistent()` of the lock (after `OwnerDiedError`).
    fn mark_consistent(&self, py: Python<'_>) -> PyResult<()> {
        self.lock.bind(py).call_method0("mark_consistent").map(drop)
    }

    fn __enter__(&self, py: Python<'_>) -> PyResult<bool> {
        lock::acquire(py, &self.handle, Wait::FOREVER, false)
    }

    #[pyo3(signature = (exc_type=None, _exc=None, _tb=None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        // A wait that lost the lock (NotRecoverableError) leaves nothing to
        // release: its exception goes on unmasked.
        if exc_type.is_some_and(|t| !t.is_none()) && !self.owned() {
            return Ok(false);
        }
        self.release(py)?;
        Ok(false)
    }

    /// Releases the lock (every level of an `RLock`), waits until notified
    /// or `timeout` seconds pass (`None`: forever), and takes the lock
    /// back: whether it was notified (`False`: timed out). The calling
    /// thread must hold the lock. The GIL is released; Ctrl-C interrupts
    /// the wait (the lock taken back first). A spurious wake-up may
    /// return `True` without a notify: wait in a loop or use `wait_for`.
    /// `OwnerDiedError` (the lock held) if an owner died holding the lock
    /// meanwhile.
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let t = wait::timeout(timeout)?;
        let mut intr = Interrupt::default();
        let c = &self.c;
        let r = wait::with_hold(&self.handle, |g| -> Waited {
            let stop = &mut intr;
            match (c, g) {
                (Cond::RLock(c), Guard::RLock(g)) => {
                    let g = SameThread(g);
                    let r = py
                        .allow_threads(move || {
                            let g = g;
                            SameThread(c.wait_timeout_unless(g.0, t, || stop.poll()))
                        })
                        .0;
                    waited(py, r, Guard::RLock)
                }
                (Cond::Lock(c), Guard::Lock(g)) => {
                    let g = SameThread(g);
                    let r = py
                        .allow_threads(move || {
                            let g = g;
                            SameThread(c.wait_timeout_unless(g.0, t, || stop.poll()))
                        })
                        .0;
                    waited(py, r, Guard::Lock)
                }
                (_, g) => (
                    Some(g),
                    Err(PyTypeError::new_err("a condition over another lock type")),
                ),
            }
        });
        let r = r.ok_or_else(|| {
            PyAssertionError::new_err("must acquire() condition before using wait()")
        })?;
        match intr.err {
            Some(e) => Err(e),
            None => r,
        }
    }

    /// Waits until `predicate()` is true (checked first, then after each
    /// wake-up, holding the lock) or `timeout` seconds pass: the last
    /// value of `predicate()`. multiprocessing's `wait_for`.
    #[pyo3(signature = (predicate, timeout=None))]
    fn wait_for(
        &self,
        py: Python<'_>,
        predicate: &Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<PyObject> {
        let mut result = predicate.call0()?;
        // `None`: no timeout, or one too large to represent.
        let end = wait::timeout(timeout)?.and_then(|d| std::time::Instant::now().checked_add(d));
        while !result.is_truthy()? {
            let left = match end {
                None => None,
                Some(end) => {
                    let left = end.saturating_duration_since(std::time::Instant::now());
                    if left == Duration::ZERO {
                        break;
                    }
                    Some(left.as_secs_f64())
                }
            };
            self.wait(py, left)?;
            result = predicate.call0()?;
        }
        Ok(result.unbind())
    }

    /// Wakes `n` waiting threads (of any process; others may wake too,
    /// spuriously). The calling thread must hold the lock.
    #[pyo3(signature = (n=1))]
    fn notify(&self, n: i64) -> PyResult<()> {
        if !self.owned() {
            return Err(PyAssertionError::new_err("lock is not owned"));
        }
        let n = u32::try_from(n.max(0)).unwrap_or(u32::MAX);
        match &self.c {
            Cond::Lock(c) => c.notify(n),
            Cond::RLock(c) => c.notify(n),
        }
        Ok(())
    }

    /// Wakes every waiting thread. The calling thread must hold the lock.
    fn notify_all(&self) -> PyResult<()> {
        if !self.owned() {
            return Err(PyAssertionError::new_err("lock is not owned"));
        }
        match &self.c {
            Cond::Lock(c) => c.notify_all(),
            Cond::RLock(c) => c.notify_all(),
        }
        Ok(())
    }

    #[getter]
    fn name(&self) -> Option<String> {
        self.c.name().map(str::to_owned)
    }

    fn persist(&self) {
        match &self.c {
            Cond::Lock(c) => c.persist(),
            Cond::RLock(c) => c.persist(),
        }
    }

    fn unlink(&self) -> PyResult<()> {
        match &self.c {
            Cond::Lock(c) => c.unlink(),
            Cond::RLock(c) => c.unlink(),
        }
        .py()
    }

    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let lock = (!self.own).then(|| self.lock.clone_ref(py));
        handle::reduce(
            py,
            "Condition",
            self.c.name(),
            self.c.fd(),
            Some(self.c.code()),
            0,
            lock,
        )
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let l = self.lock.bind(py).repr()?;
        Ok(match self.c.name() {
            Some(n) => format!("<shmsync.Condition {n:?} {l}>"),
            None => format!("<shmsync.Condition {l}>"),
        })
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyCondition>()
}
