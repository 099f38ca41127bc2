//! `Synchronized` (what `shmsync.Value(...)` returns: a value with a lock)
//! and `RawValue`.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use shmsync::inspect::Kind;
use shmsync::{RawValue, Value};

use crate::elem::{code_char, each_typed, make_typed, typed_enum, PyElem};
use crate::errors::ResultExt;
use crate::handle;
use crate::lock::{self, PyRLock};

typed_enum!(AnyValue, Value);
typed_enum!(AnyRawValue, RawValue);

/// Runs `f` on the value's guard, the lock taken as `v.value` takes it
/// ([`lock::one_shot`]).
pub(crate) fn locked<T: PyElem + shmsync::Element, R>(
    py: Python<'_>,
    v: &Value<T>,
    f: impl FnOnce(&shmsync::ValueGuard<'_, T>) -> PyResult<R>,
) -> PyResult<R> {
    let g = lock::one_shot(py, |t| match t {
        None => v.try_lock(),
        Some(d) => v.lock_timeout(d),
    })?;
    f(&g)
}

/// `shmsync.Value(typecode, value, lock=True)`: one element with a lock.
#[pyclass(frozen, module = "shmsync", name = "Synchronized")]
pub(crate) struct Synchronized {
    v: AnyValue,
    code: char,
    lock: Py<PyRLock>,
    /// The lock is another object's (given at creation): pickled with it.
    shared: bool,
}

impl Synchronized {
    fn wrap(py: Python<'_>, v: AnyValue, code: char, given: Option<Py<PyRLock>>) -> PyResult<Self> {
        let shared = given.is_some();
        let lock = match given {
            Some(l) => l,
            None => Py::new(
                py,
                PyRLock::wrap(each_typed!(AnyValue, &v, x => x.get_lock().clone())),
            )?,
        };
        Ok(Synchronized {
            v,
            code,
            lock,
            shared,
        })
    }

    /// `v.value` (also `fast.rs`'s getter): under the lock, or directly
    /// when this thread holds it.
    pub(crate) fn value_get(&self, py: Python<'_>) -> PyResult<PyObject> {
        if self.held() {
            return each_typed!(AnyValue, &self.v, v => v.get_unlocked().to_py(py));
        }
        each_typed!(AnyValue, &self.v, v => locked(py, v, |g| g.get().to_py(py)))
    }

    /// `v.value = x` (also `fast.rs`'s setter).
    pub(crate) fn value_set(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        each_typed!(AnyValue, &self.v, v => {
            let x = PyElem::from_py(value)?;
            if self.held() {
                v.set_unlocked(x);
                return Ok(());
            }
            locked(py, v, |g| { g.set(x); Ok(()) })
        })
    }

    /// The lock object.
    pub(crate) fn lock_py(&self) -> &Py<PyRLock> {
        &self.lock
    }

    /// The lock's handle.
    pub(crate) fn lock_handle(&self) -> &std::sync::Arc<crate::wait::LockObj> {
        &self.lock.get().lock
    }

    /// Whether the calling thread holds the value's lock (`with
    /// v.get_lock():`, `v.acquire()`): `v.value` then needs no lock of its
    /// own, the hold excludes the others.
    #[inline]
    fn held(&self) -> bool {
        let lock = &self.lock.get().lock;
        // A free lock is held by nobody: one load of the word spares the
        // thread's records (the usual case of a `v.value` outside `with`).
        lock.is_locked() && crate::wait::holds(lock)
    }

    fn given_lock<'a>(lock: &'a Option<Bound<'_, PyRLock>>) -> Option<&'a shmsync::RLock> {
        lock.as_ref().map(|l| match &*l.get().lock {
            crate::wait::LockObj::RLock(r) => r,
            crate::wait::LockObj::Lock(_) => unreachable!("a PyRLock holds an RLock"),
        })
    }
}

#[pymethods]
impl Synchronized {
    #[new]
    #[pyo3(signature = (typecode, value, *, lock=None, name=None))]
    fn new(
        py: Python<'_>,
        typecode: &str,
        value: &Bound<'_, PyAny>,
        lock: Option<Bound<'_, PyRLock>>,
        name: Option<&str>,
    ) -> PyResult<Self> {
        let code = code_char(typecode)?;
        let l = Self::given_lock(&lock);
        let v = make_typed!(AnyValue, code, T => {
            let x = <T as PyElem>::from_py(value)?;
            match (name, l) {
                (None, None) => Value::<T>::new(x),
                (Some(n), None) => Value::<T>::create(n, x),
                (None, Some(l)) => Value::<T>::with_lock(x, l),
                (Some(n), Some(l)) => Value::<T>::create_with_lock(n, x, l),
            }.py()
        })?;
        Self::wrap(py, v, code, lock.map(Bound::unbind))
    }

    /// Opens the locked value created under `name` (by Python or Rust),
    /// with the type its header records.
    #[staticmethod]
    fn open(py: Python<'_>, name: &str) -> PyResult<Self> {
        let (kind, code) = handle::code_of(py, name)?;
        handle::check_kind(py, kind, Kind::Value)?;
        let v = make_typed!(AnyValue, code, T => Value::<T>::open(name).py())?;
        Self::wrap(py, v, code, None)
    }

    #[staticmethod]
    #[pyo3(signature = (name, fd, code, _len, lock))]
    fn _attach(
        py: Python<'_>,
        name: Option<&str>,
        fd: Option<i32>,
        code: &str,
        _len: usize,
        lock: Option<Bound<'_, PyRLock>>,
    ) -> PyResult<Self> {
        let code = code_char(code)?;
        let l = Self::given_lock(&lock);
        let v = make_typed!(AnyValue, code, T => match (name, fd, l) {
            (Some(n), _, _) => Value::<T>::open(n).py(),
            (None, Some(fd), None) => Value::<T>::from_fd(handle::owned_fd(fd)?).py(),
            (None, Some(fd), Some(l)) => Value::<T>::from_fd_with_lock(handle::owned_fd(fd)?, l).py(),
            _ => Err(PyValueError::new_err("a name or a descriptor is needed")),
        })?;
        let shared = name.is_none() && lock.is_some();
        Self::wrap(
            py,
            v,
            code,
            if shared {
                lock.map(Bound::unbind)
            } else {
                None
            },
        )
    }

    // `value`, `get_lock`, `acquire`, `release`, `__enter__`, `__exit__`:
    // `fast.rs`.

    /// multiprocessing's `Synchronized.get_obj()`: here the object itself.
    fn get_obj(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// The type code.
    #[getter]
    fn typecode(&self) -> String {
        self.code.to_string()
    }

    /// The name, `None` if anonymous.
    #[getter]
    fn name(&self) -> Option<String> {
        each_typed!(AnyValue, &self.v, v => v.name().map(str::to_owned))
    }

    fn persist(&self) {
        each_typed!(AnyValue, &self.v, v => v.persist())
    }

    fn unlink(&self) -> PyResult<()> {
        each_typed!(AnyValue, &self.v, v => v.unlink().py())
    }

    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let lock = self.shared.then(|| self.lock.clone_ref(py).into_any());
        each_typed!(AnyValue, &self.v, v => handle::reduce(
            py, "Synchronized", v.name(), handle::raw_fd(v), Some(self.code), 1, lock))
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let v = self.value_get(py)?;
        Ok(format!(
            "<shmsync.Synchronized {:?} {}>",
            self.code,
            v.bind(py).repr()?
        ))
    }
}

/// `shmsync.RawValue(typecode, value)`: one element without a lock.
#[pyclass(frozen, module = "shmsync", name = "RawValue")]
pub(crate) struct PyRawValue {
    v: AnyRawValue,
    code: char,
}

#[pymethods]
impl PyRawValue {
    #[new]
    #[pyo3(signature = (typecode, value, *, name=None))]
    fn new(typecode: &str, value: &Bound<'_, PyAny>, name: Option<&str>) -> PyResult<Self> {
        let code = code_char(typecode)?;
        let v = make_typed!(AnyRawValue, code, T => {
            let x = <T as PyElem>::from_py(value)?;
            match name {
                None => RawValue::<T>::new(x),
                Some(n) => RawValue::<T>::create(n, x),
            }.py()
        })?;
        Ok(PyRawValue { v, code })
    }

    #[staticmethod]
    fn open(py: Python<'_>, name: &str) -> PyResult<Self> {
        let (kind, code) = handle::code_of(py, name)?;
        handle::check_kind(py, kind, Kind::RawValue)?;
        let v = make_typed!(AnyRawValue, code, T => RawValue::<T>::open(name).py())?;
        Ok(PyRawValue { v, code })
    }

    #[staticmethod]
    #[pyo3(signature = (name, fd, code, _len, _lock))]
    fn _attach(
        name: Option<&str>,
        fd: Option<i32>,
        code: &str,
        _len: usize,
        _lock: Option<PyObject>,
    ) -> PyResult<Self> {
        let code = code_char(code)?;
        let v = make_typed!(AnyRawValue, code, T => match (name, fd) {
            (Some(n), _) => RawValue::<T>::open(n).py(),
            (None, Some(fd)) => RawValue::<T>::from_fd(handle::owned_fd(fd)?).py(),
            _ => Err(PyValueError::new_err("a name or a descriptor is needed")),
        })?;
        Ok(PyRawValue { v, code })
    }

    /// The value (no lock: racing read-modify-writes lose updates).
    #[getter]
    fn get_value(&self, py: Python<'_>) -> PyResult<PyObject> {
        each_typed!(AnyRawValue, &self.v, v => v.get().to_py(py))
    }

    #[setter]
    fn set_value(&self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        each_typed!(AnyRawValue, &self.v, v => { v.set(PyElem::from_py(value)?); Ok(()) })
    }

    #[getter]
    fn typecode(&self) -> String {
        self.code.to_string()
    }

    #[getter]
    fn name(&self) -> Option<String> {
        each_typed!(AnyRawValue, &self.v, v => v.name().map(str::to_owned))
    }

    fn persist(&self) {
        each_typed!(AnyRawValue, &self.v, v => v.persist())
    }

    fn unlink(&self) -> PyResult<()> {
        each_typed!(AnyRawValue, &self.v, v => v.unlink().py())
    }

    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        each_typed!(AnyRawValue, &self.v, v => handle::reduce(
            py, "RawValue", v.name(), handle::raw_fd(v), Some(self.code), 1, None))
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let v = self.get_value(py)?;
        Ok(format!(
            "<shmsync.RawValue {:?} {}>",
            self.code,
            v.bind(py).repr()?
        ))
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Synchronized>()?;
    m.add_class::<PyRawValue>()?;
    Ok(())
}
