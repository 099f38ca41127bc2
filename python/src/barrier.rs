//! `Barrier`: multiprocessing's `Barrier(parties, action=None,
//! timeout=None)` over the crate's `Barrier` (a party that dies breaks
//! it), raising `threading.BrokenBarrierError` as Python does.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyTuple, PyType};

use crate::errors::ResultExt;
use crate::handle;
use crate::wait::{self, Interrupt};

static BROKEN: GILOnceCell<Py<PyType>> = GILOnceCell::new();

/// `threading.BrokenBarrierError`.
fn broken(py: Python<'_>) -> PyErr {
    match BROKEN.import(py, "threading", "BrokenBarrierError") {
        Ok(t) => PyErr::from_type(t.clone(), ()),
        Err(e) => e,
    }
}

/// `shmsync.Barrier`: multiprocessing's `Barrier`, in shared memory.
#[pyclass(frozen, module = "shmsync", name = "Barrier")]
pub(crate) struct PyBarrier {
    b: shmsync::Barrier,
    action: Option<PyObject>,
    timeout: Option<f64>,
}

impl PyBarrier {
    fn with(py: Python<'_>, b: shmsync::Barrier, extra: Option<PyObject>) -> PyResult<Self> {
        let (action, timeout) = match extra {
            None => (None, None),
            Some(x) => x.extract::<(Option<PyObject>, Option<f64>)>(py)?,
        };
        Ok(PyBarrier {
            b,
            action: action.filter(|a| !a.is_none(py)),
            timeout,
        })
    }
}

#[pymethods]
impl PyBarrier {
    /// A barrier for `parties` parties (1 to 4095) of any processes:
    /// anonymous, or named `name`. `action` is called by the last party
    /// to arrive in each round (see `wait`); `timeout` is the default of
    /// `wait`.
    #[new]
    #[pyo3(signature = (parties, action=None, timeout=None, *, name=None))]
    fn new(
        py: Python<'_>,
        parties: i64,
        action: Option<PyObject>,
        timeout: Option<f64>,
        name: Option<&str>,
    ) -> PyResult<Self> {
        let parties = usize::try_from(parties)
            .ok()
            .filter(|&p| (1..=shmsync::Barrier::MAX_PARTIES).contains(&p))
            .ok_or_else(|| PyValueError::new_err("parties must be 1 to 4095"))?;
        wait::timeout(timeout)?;
        let b = match name {
            None => shmsync::Barrier::new(parties),
            Some(n) => shmsync::Barrier::create(n, parties),
        }
        .py()?;
        Ok(PyBarrier {
            b,
            action: action.filter(|a| !a.is_none(py)),
            timeout,
        })
    }

    /// Opens the barrier created under `name` by any process (Python or
    /// Rust).
    #[staticmethod]
    #[pyo3(signature = (name, action=None, timeout=None))]
    fn open(
        py: Python<'_>,
        name: &str,
        action: Option<PyObject>,
        timeout: Option<f64>,
    ) -> PyResult<Self> {
        wait::timeout(timeout)?;
        Ok(PyBarrier {
            b: shmsync::Barrier::open(name).py()?,
            action: action.filter(|a| !a.is_none(py)),
            timeout,
        })
    }

    /// `extra`: the `(action, timeout)` of the pickled barrier.
    #[staticmethod]
    #[pyo3(signature = (name, fd, _code, _len, extra))]
    fn _attach(
        py: Python<'_>,
        name: Option<&str>,
        fd: Option<i32>,
        _code: Option<&str>,
        _len: usize,
        extra: Option<PyObject>,
    ) -> PyResult<Self> {
        let b = match (name, fd) {
            (Some(n), _) => shmsync::Barrier::open(n).py()?,
            (None, Some(fd)) => shmsync::Barrier::from_fd(handle::owned_fd(fd)?).py()?,
            _ => return Err(PyValueError::new_err("a name or a descriptor is needed")),
        };
        Self::with(py, b, extra)
    }

    /// Waits until all parties have called `wait` in this round, at most
    /// `timeout` seconds (`None`: the barrier's default): the caller's
    /// index in the round (0 to parties - 1, in order of arrival). The last
    /// to arrive calls `action` (if any) once the round has passed; if it
    /// raises, the barrier is broken (aborted) and the exception
    /// propagates. `threading.BrokenBarrierError` if the barrier is or
    /// gets broken: `abort()`, `reset()` while waiting, a timeout (which
    /// breaks it, as in Python), or a party that dies (found within about
    /// 50 ms). The GIL is released; Ctrl-C interrupts the wait and breaks
    /// the barrier, as in Python.
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<usize> {
        let t = wait::timeout(timeout.or(self.timeout))?;
        let mut intr = Interrupt::default();
        let b = &self.b;
        let stop = &mut intr;
        let r = py.allow_threads(move || b.wait_timeout_unless(t, || stop.poll()));
        if let Some(e) = intr.err {
            return Err(e);
        }
        let r = r.map_err(|_| broken(py))?;
        if r.is_leader() {
            if let Some(a) = &self.action {
                if let Err(e) = a.call0(py) {
                    self.b.abort();
                    return Err(e);
                }
            }
        }
        Ok(r.index())
    }

    /// Returns the barrier to its empty state; the parties waiting get
    /// `BrokenBarrierError`.
    fn reset(&self) {
        self.b.reset();
    }

    /// Breaks the barrier: the waiting parties and every later `wait` get
    /// `BrokenBarrierError` until `reset()`.
    fn abort(&self) {
        self.b.abort();
    }

    #[getter]
    fn parties(&self) -> usize {
        self.b.parties()
    }

    #[getter]
    fn n_waiting(&self) -> usize {
        self.b.n_waiting()
    }

    #[getter]
    fn broken(&self) -> bool {
        self.b.is_broken()
    }

    #[getter]
    fn name(&self) -> Option<String> {
        self.b.name().map(str::to_owned)
    }

    fn persist(&self) {
        self.b.persist();
    }

    fn unlink(&self) -> PyResult<()> {
        self.b.unlink().py()
    }

    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let action = self.action.as_ref().map(|a| a.clone_ref(py));
        let extra = (action, self.timeout)
            .into_pyobject(py)?
            .into_any()
            .unbind();
        handle::reduce(
            py,
            "Barrier",
            self.b.name(),
            handle::raw_fd(&self.b),
            None,
            0,
            Some(extra),
        )
    }

    fn __repr__(&self) -> String {
        format!(
            "<shmsync.Barrier parties={} n_waiting={} broken={}>",
            self.b.parties(),
            self.b.n_waiting(),
            self.b.is_broken()
        )
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyBarrier>()
}
