//! `Semaphore`, `BoundedSemaphore`: multiprocessing's
//! `acquire(block=True, timeout=None)`, `release()`, `get_value()`,
//! context manager.
//!
//! Python's acquire and release are not paired per thread (one process
//! acquires, another releases: signalling), so permits are taken for good
//! (the crate's `take` family, no holder record) and `release` returns
//! one.

use std::time::{Duration, Instant};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::errors::ResultExt;
use crate::handle;
use crate::wait::{Wait, SLICE};

/// Takes a permit of `s` per `wait`: first without releasing the GIL, then
/// in slices with it released, checking for signals between them (a
/// permit released between two slices stays in the count: nothing is
/// lost).
fn take<S: Sync>(
    py: Python<'_>,
    s: &S,
    wait: Wait,
    try_take: impl Fn(&S) -> Option<bool>,
    take_timeout: impl Fn(&S, Duration) -> Option<bool> + Sync,
) -> PyResult<bool> {
    if try_take(s).is_some() {
        return Ok(true);
    }
    loop {
        let slice = match wait {
            Wait::Never => return Ok(false),
            Wait::Until(None) => SLICE,
            Wait::Until(Some(end)) => {
                let left = end.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(false);
                }
                left.min(SLICE)
            }
        };
        let tt = &take_timeout;
        if py.allow_threads(|| tt(s, slice)).is_some() {
            return Ok(true);
        }
        py.check_signals()?;
    }
}

macro_rules! semaphore_class {
    ($rust:ident, $py:literal, $kind:ident) => {
        #[doc = concat!("`shmsync.", $py, "`: multiprocessing's `", $py, "` in shared memory.")]
        #[pyclass(frozen, module = "shmsync", name = $py)]
        pub(crate) struct $rust {
            s: shmsync::$kind,
        }

        #[pymethods]
        impl $rust {
            /// A new semaphore holding `value` permits: anonymous, or
            /// named `name`.
            #[new]
            #[pyo3(signature = (value=1, *, name=None))]
            fn new(value: i64, name: Option<&str>) -> PyResult<Self> {
                if value < 0 {
                    return Err(PyValueError::new_err(
                        "semaphore initial value must be >= 0",
                    ));
                }
                let v = u32::try_from(value)
                    .map_err(|_| PyValueError::new_err("semaphore initial value too large"))?;
                Ok($rust {
                    s: match name {
                        None => shmsync::$kind::new(v),
                        Some(n) => shmsync::$kind::create(n, v),
                    }
                    .py()?,
                })
            }

            /// Opens the semaphore created under `name` by any process.
            #[staticmethod]
            fn open(name: &str) -> PyResult<Self> {
                Ok($rust {
                    s: shmsync::$kind::open(name).py()?,
                })
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
                    (None, Some(fd)) => Ok($rust {
                        s: shmsync::$kind::from_fd(handle::owned_fd(fd)?).py()?,
                    }),
                    _ => Err(PyValueError::new_err("a name or a descriptor is needed")),
                }
            }

            /// Takes a permit: `block=False` tries once, `timeout`
            /// (seconds; `None`: forever) bounds the wait. Whether one was
            /// taken. The GIL is released while it waits; Ctrl-C
            /// interrupts it.
            #[pyo3(signature = (block=true, timeout=None))]
            fn acquire(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<bool> {
                let wait = match (block, timeout) {
                    // multiprocessing: a negative timeout is 0.
                    (true, Some(t)) if t < 0.0 => Wait::from_py(true, Some(0.0))?,
                    _ => Wait::from_py(block, timeout)?,
                };
                take(
                    py,
                    &self.s,
                    wait,
                    |s| s.try_take(),
                    |s, d| s.take_timeout(d),
                )
            }

            /// Returns `n` permits (waking as many waiters).
            #[doc = concat!("`ValueError` past the bound of a `BoundedSemaphore` ")]
            /// (nothing is returned then).
            #[pyo3(signature = (n=1))]
            fn release(&self, n: i64) -> PyResult<()> {
                if n < 1 {
                    return Err(PyValueError::new_err("n must be one or more"));
                }
                let n = u32::try_from(n).map_err(|_| {
                    PyValueError::new_err("semaphore or lock released too many times")
                })?;
                let r = if n == 1 {
                    self.s.release()
                } else {
                    self.s.release_n(n)
                };
                r.map_err(|_| PyValueError::new_err("semaphore or lock released too many times"))
            }

            /// The permits available now (a snapshot).
            fn get_value(&self) -> u32 {
                self.s.value()
            }

            fn __enter__(&self, py: Python<'_>) -> PyResult<bool> {
                self.acquire(py, true, None)
            }

            #[pyo3(signature = (_exc_type=None, _exc=None, _tb=None))]
            fn __exit__(
                &self,
                _exc_type: Option<&Bound<'_, PyAny>>,
                _exc: Option<&Bound<'_, PyAny>>,
                _tb: Option<&Bound<'_, PyAny>>,
            ) -> PyResult<bool> {
                self.release(1)?;
                Ok(false)
            }

            #[getter]
            fn name(&self) -> Option<String> {
                self.s.name().map(str::to_owned)
            }

            fn persist(&self) {
                self.s.persist();
            }

            fn unlink(&self) -> PyResult<()> {
                self.s.unlink().py()
            }

            fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
                handle::reduce(
                    py,
                    $py,
                    self.s.name(),
                    handle::raw_fd(&self.s),
                    None,
                    0,
                    None,
                )
            }

            fn __repr__(&self) -> String {
                format!("<shmsync.{} value={}>", $py, self.s.value())
            }
        }
    };
}

semaphore_class!(PySemaphore, "Semaphore", Semaphore);
semaphore_class!(PyBoundedSemaphore, "BoundedSemaphore", BoundedSemaphore);

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PySemaphore>()?;
    m.add_class::<PyBoundedSemaphore>()
}
