//! `Event`: `set`, `clear`, `is_set`, `wait(timeout=None)`.

use std::time::{Duration, Instant};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::errors::ResultExt;
use crate::handle;
use crate::wait::SLICE;

/// `shmsync.Event`: Python's `multiprocessing.Event` in one futex word.
#[pyclass(frozen, module = "shmsync", name = "Event")]
pub(crate) struct PyEvent {
    e: shmsync::Event,
}

#[pymethods]
impl PyEvent {
    #[new]
    #[pyo3(signature = (*, name=None))]
    fn new(name: Option<&str>) -> PyResult<Self> {
        let e = match name {
            None => shmsync::Event::new(),
            Some(n) => shmsync::Event::create(n),
        }
        .py()?;
        Ok(PyEvent { e })
    }

    #[staticmethod]
    fn open(name: &str) -> PyResult<Self> {
        Ok(PyEvent {
            e: shmsync::Event::open(name).py()?,
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
            (None, Some(fd)) => Ok(PyEvent {
                e: shmsync::Event::from_fd(handle::owned_fd(fd)?).py()?,
            }),
            _ => Err(PyValueError::new_err("a name or a descriptor is needed")),
        }
    }

    fn set(&self) {
        self.e.set();
    }

    fn clear(&self) {
        self.e.clear();
    }

    fn is_set(&self) -> bool {
        self.e.is_set()
    }

    /// Waits until the flag is set or `timeout` seconds pass (`None`:
    /// forever); returns the flag. The GIL is released, and signals are
    /// checked between slices of the wait (Ctrl-C interrupts it).
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let end = match timeout {
            None => None,
            Some(t) if t.is_nan() => return Err(PyValueError::new_err("timeout is NaN")),
            Some(t) => Some(
                Duration::try_from_secs_f64(t.max(0.0))
                    .ok()
                    .and_then(|d| Instant::now().checked_add(d)),
            ),
        };
        if self.e.is_set() {
            return Ok(true);
        }
        loop {
            let slice = match end {
                None | Some(None) => SLICE,
                Some(Some(end)) => {
                    let left = end.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(self.e.is_set());
                    }
                    left.min(SLICE)
                }
            };
            let e = &self.e;
            if py.allow_threads(|| e.wait_timeout(slice)) {
                return Ok(true);
            }
            py.check_signals()?;
        }
    }

    #[getter]
    fn name(&self) -> Option<String> {
        self.e.name().map(str::to_owned)
    }

    fn persist(&self) {
        self.e.persist();
    }

    fn unlink(&self) -> PyResult<()> {
        self.e.unlink().py()
    }

    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        handle::reduce(
            py,
            "Event",
            self.e.name(),
            handle::raw_fd(&self.e),
            None,
            0,
            None,
        )
    }

    fn __repr__(&self) -> String {
        format!("<shmsync.Event set={}>", self.e.is_set())
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyEvent>()
}
