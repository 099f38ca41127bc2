//! `SynchronizedArray` (what `shmsync.Array(...)` returns: an array with a
//! lock) and `RawArray`: `len`, indices (negative too), slices (get and
//! set, with steps), iteration, `'c'` arrays' `.value` and `.raw`, and
//! `.buffer`, a zero-copy `memoryview` of the elements; on Python 3.11 and
//! newer the objects themselves have the buffer protocol (`buffer.rs`).

use std::ffi::c_void;
use std::os::fd::AsFd;
use std::sync::Mutex;

use pyo3::exceptions::{
    PyAttributeError, PyIndexError, PyOverflowError, PyTypeError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PySlice, PyString, PyTuple, PyType};
use pyo3::IntoPyObjectExt;
use shmsync::bytemuck::{self, Zeroable};
use shmsync::inspect::Kind;
use shmsync::{Array, ArrayGuard, CChar, Element, RawArray};

use crate::buffer::{self as export, Exporter, Layout};
use crate::elem::{code_char, each_typed, make_typed, typed_enum, Init, PyElem};
use crate::errors::ResultExt;
use crate::handle;
use crate::lock::{self, PyRLock};
use crate::wait::LockObj;

typed_enum!(AnyArray, Array);
typed_enum!(AnyRawArray, RawArray);

/// Element access to an array, locked or not.
trait Store<T> {
    fn get(&self, i: usize) -> T;
    fn set(&self, i: usize, v: T);
}

impl<T: Element> Store<T> for ArrayGuard<'_, T> {
    fn get(&self, i: usize) -> T {
        ArrayGuard::get(self, i)
    }
    fn set(&self, i: usize, v: T) {
        ArrayGuard::set(self, i, v)
    }
}

impl<T: Element> Store<T> for RawArray<T> {
    fn get(&self, i: usize) -> T {
        RawArray::get(self, i)
    }
    fn set(&self, i: usize, v: T) {
        RawArray::set(self, i, v)
    }
}

/// An index or slice resolved against the (process-private) length.
enum Index {
    One(usize),
    /// start, step, count.
    Slice(isize, isize, usize),
}

impl Index {
    fn parse(idx: &Bound<'_, PyAny>, len: usize) -> PyResult<Index> {
        if let Ok(s) = idx.downcast::<PySlice>() {
            let len = isize::try_from(len).map_err(|_| PyOverflowError::new_err("too long"))?;
            let i = s.indices(len)?;
            return Ok(Index::Slice(i.start, i.step, i.slicelength));
        }
        let i = match idx.extract::<isize>() {
            Ok(i) => i,
            Err(e) if e.is_instance_of::<PyOverflowError>(idx.py()) => {
                return Err(PyIndexError::new_err(
                    "cannot fit 'int' into an index-sized integer",
                ))
            }
            Err(_) => return Err(PyTypeError::new_err("indices must be integers")),
        };
        let j = if i < 0 {
            i.checked_add_unsigned(len)
        } else {
            Some(i)
        };
        match j.and_then(|j| usize::try_from(j).ok()) {
            Some(j) if j < len => Ok(Index::One(j)),
            _ => Err(PyIndexError::new_err("invalid index")),
        }
    }

    /// The element indices of a slice (all in bounds: from `indices`).
    fn positions(start: isize, step: isize, n: usize) -> impl Iterator<Item = usize> {
        (0..n).map(move |k| (start + step * k as isize) as usize)
    }
}

/// Elements `values` of type code `T::CODE` as Python sees a slice: bytes
/// for `'c'`, str for `'u'`, a list otherwise.
fn slice_to_py<T: PyElem + Element>(py: Python<'_>, values: &[T]) -> PyResult<PyObject> {
    match <T as PyElem>::CODE {
        'c' => PyBytes::new(py, bytemuck::cast_slice::<T, u8>(values)).into_py_any(py),
        'u' => {
            let s: String = bytemuck::cast_slice::<T, u32>(values)
                .iter()
                .map(|&c| char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER))
                .collect();
            PyString::new(py, &s).into_py_any(py)
        }
        _ => {
            let items = values
                .iter()
                .map(|v| v.to_py(py))
                .collect::<PyResult<Vec<_>>>()?;
            PyList::new(py, items)?.into_py_any(py)
        }
    }
}

/// The elements of the sequence `value` for a slice of `n` elements.
fn slice_from_py<T: PyElem>(value: &Bound<'_, PyAny>, n: usize) -> PyResult<Vec<T>> {
    let same = || PyValueError::new_err("Can only assign sequence of same size");
    if value.len().map_err(|_| same())? != n {
        return Err(same());
    }
    let out = value
        .try_iter()
        .map_err(|_| same())?
        .map(|x| T::from_py(&x?))
        .collect::<PyResult<Vec<T>>>()?;
    if out.len() != n {
        return Err(same());
    }
    Ok(out)
}

/// What a get of `idx` needs from the store.
fn get_at<T: PyElem + Element>(
    py: Python<'_>,
    s: &impl Store<T>,
    idx: &Index,
) -> PyResult<PyObject> {
    match *idx {
        Index::One(i) => s.get(i).to_py(py),
        Index::Slice(start, step, n) => {
            let v: Vec<T> = Index::positions(start, step, n).map(|i| s.get(i)).collect();
            slice_to_py(py, &v)
        }
    }
}

/// A set, its values converted before the store is touched (and, for a
/// locked array, before the lock is taken).
enum Put<T> {
    One(usize, T),
    Many(isize, isize, Vec<T>),
}

impl<T: PyElem> Put<T> {
    fn parse(idx: Index, value: &Bound<'_, PyAny>) -> PyResult<Put<T>> {
        Ok(match idx {
            Index::One(i) => Put::One(i, T::from_py(value)?),
            Index::Slice(start, step, n) => Put::Many(start, step, slice_from_py(value, n)?),
        })
    }

    fn apply(self, s: &impl Store<T>) {
        match self {
            Put::One(i, v) => s.set(i, v),
            Put::Many(start, step, vs) => {
                for (i, v) in Index::positions(start, step, vs.len()).zip(vs) {
                    s.set(i, v);
                }
            }
        }
    }
}

/// `'c'` arrays' `.value`: the bytes up to the first NUL.
fn c_value(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    &bytes[..end]
}

/// `'c'` arrays' `.value = b` / `.raw = b` as ctypes does them: at most
/// the length, and `.value` NUL-terminates when there is room.
fn c_store(s: &impl Store<CChar>, len: usize, b: &[u8], terminate: bool) -> PyResult<()> {
    if b.len() > len {
        return Err(PyValueError::new_err("byte string too long"));
    }
    for (i, c) in b.iter().enumerate() {
        s.set(i, CChar(*c));
    }
    if terminate && b.len() < len {
        s.set(b.len(), CChar(0));
    }
    Ok(())
}

fn c_bytes<'a>(value: &'a Bound<'_, PyAny>) -> PyResult<&'a [u8]> {
    value
        .downcast::<PyBytes>()
        .map(|b| b.as_bytes())
        .map_err(|_| {
            PyTypeError::new_err(format!(
                "bytes expected instead of {} instance",
                value
                    .get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            ))
        })
}

fn no_attr(class: &str, attr: &str) -> PyErr {
    PyAttributeError::new_err(format!("'{class}' object has no attribute '{attr}'"))
}

/// `memoryview` of the `len` elements of `T`, through a mapping of the
/// segment's file made by Python's `mmap` (which the view keeps alive). The
/// data offset comes from the header, validated by `inspect_fd` against
/// the file's size; the length is this handle's own.
fn buffer<T: Element>(
    py: Python<'_>,
    fd: &impl AsFd,
    code: char,
    len: usize,
) -> PyResult<PyObject> {
    let info = handle::seen_fd(py, fd.as_fd())?;
    let nbytes = len.saturating_mul(std::mem::size_of::<T>());
    if info.data_offset.saturating_add(nbytes) > info.size {
        return Err(crate::errors::exc(
            py,
            "MismatchError",
            "the segment's header changed",
        ));
    }
    let fmt = match code {
        'u' => 'I',
        c => c,
    };
    let m = py.import("shmsync._buffer")?;
    Ok(m.getattr("view")?
        .call1((
            handle::raw_fd(fd),
            info.size,
            info.data_offset,
            nbytes,
            fmt.to_string(),
        ))?
        .unbind())
}

/// [`buffer`] of a typed array (its element type from the handle).
fn buffer_of<A: AsFd + ElemOf<T>, T: Element>(
    py: Python<'_>,
    a: &A,
    code: char,
    len: usize,
) -> PyResult<PyObject> {
    buffer::<T>(py, a, code, len)
}

/// The element type of an array handle.
trait ElemOf<T> {}
impl<T> ElemOf<T> for Array<T> {}
impl<T> ElemOf<T> for RawArray<T> {}

/// An array object made by `open` or `_attach`, on its way into an object
/// of the class they were called on: the constructors' hidden `_made`
/// argument. On Python 3.11 and newer the module's classes are subclasses
/// with the buffer protocol (`buffer.rs`), whose objects only the class's
/// own `__new__` can make.
#[pyclass(frozen)]
struct Made(Mutex<Option<Built>>);

enum Built {
    Sync(SynchronizedArray),
    Raw(PyRawArray),
}

impl Made {
    fn take(&self) -> Option<Built> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// An object of `cls` (an array class of this module) holding `built`.
fn build<'py>(cls: &Bound<'py, PyType>, code: char, built: Built) -> PyResult<Bound<'py, PyAny>> {
    let py = cls.py();
    let kwargs = PyDict::new(py);
    kwargs.set_item("_made", Made(Mutex::new(Some(built))))?;
    cls.call((code.to_string(), 0), Some(&kwargs))
}

fn not_made() -> PyErr {
    PyTypeError::new_err("_made is not an array of this class")
}

/// `shmsync.Array(typecode, size_or_initializer, lock=True)`.
#[pyclass(frozen, subclass, module = "shmsync", name = "SynchronizedArray")]
pub(crate) struct SynchronizedArray {
    a: AnyArray,
    code: char,
    len: usize,
    lock: Py<PyRLock>,
    shared: bool,
    layout: Layout,
}

impl Exporter for SynchronizedArray {
    fn exported(&self) -> (*mut c_void, &Layout) {
        let p = each_typed!(AnyArray, &self.a, a => a.as_ptr().cast::<c_void>());
        (p, &self.layout)
    }
}

fn rlock_of<'a>(l: &'a Option<Bound<'_, PyRLock>>) -> Option<&'a shmsync::RLock> {
    l.as_ref().map(|l| match &*l.get().lock {
        LockObj::RLock(r) => r,
        LockObj::Lock(_) => unreachable!("a PyRLock holds an RLock"),
    })
}

impl SynchronizedArray {
    /// The lock object.
    pub(crate) fn lock_py(&self) -> &Py<PyRLock> {
        &self.lock
    }

    /// The lock's handle.
    pub(crate) fn lock_handle(&self) -> &std::sync::Arc<crate::wait::LockObj> {
        &self.lock.get().lock
    }

    fn wrap(py: Python<'_>, a: AnyArray, code: char, given: Option<Py<PyRLock>>) -> PyResult<Self> {
        let shared = given.is_some();
        let lock = match given {
            Some(l) => l,
            None => Py::new(
                py,
                PyRLock::wrap(each_typed!(AnyArray, &a, x => x.get_lock().clone())),
            )?,
        };
        let len = each_typed!(AnyArray, &a, x => x.len());
        let layout = each_typed!(AnyArray, &a, x => Layout::new(x.as_ptr(), len, code))?;
        Ok(SynchronizedArray {
            a,
            code,
            len,
            lock,
            shared,
            layout,
        })
    }
}

/// The guard of a one-shot access of `a`.
fn guard<'a, T: Element>(py: Python<'_>, a: &'a Array<T>) -> PyResult<ArrayGuard<'a, T>> {
    lock::one_shot(py, |t| match t {
        None => a.try_lock(),
        Some(d) => a.lock_timeout(d),
    })
}

#[pymethods]
impl SynchronizedArray {
    #[new]
    #[pyo3(signature = (typecode, size_or_initializer, *, lock=None, name=None, _made=None))]
    fn new(
        py: Python<'_>,
        typecode: &str,
        size_or_initializer: &Bound<'_, PyAny>,
        lock: Option<Bound<'_, PyRLock>>,
        name: Option<&str>,
        _made: Option<&Bound<'_, Made>>,
    ) -> PyResult<Self> {
        if let Some(m) = _made {
            return match m.get().take() {
                Some(Built::Sync(a)) => Ok(a),
                _ => Err(not_made()),
            };
        }
        let code = code_char(typecode)?;
        let l = rlock_of(&lock);
        let a = make_typed!(AnyArray, code, T => {
            let init = Init::<T>::from_py(size_or_initializer)?;
            match (name, l, init) {
                (None, None, init) => Array::<T>::from_slice(&init.into_vec(T::zeroed())?),
                (Some(n), None, init) => Array::<T>::create(n, &init.into_vec(T::zeroed())?),
                (None, Some(l), init) => Array::<T>::with_lock(&init.into_vec(T::zeroed())?, l),
                (Some(n), Some(l), init) => {
                    Array::<T>::create_with_lock(n, &init.into_vec(T::zeroed())?, l)
                }
            }.py()
        })?;
        Self::wrap(py, a, code, lock.map(Bound::unbind))
    }

    #[classmethod]
    fn open<'py>(cls: &Bound<'py, PyType>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        let py = cls.py();
        let (kind, code) = handle::code_of(py, name)?;
        handle::check_kind(py, kind, Kind::Array)?;
        let a = make_typed!(AnyArray, code, T => Array::<T>::open(name).py())?;
        build(cls, code, Built::Sync(Self::wrap(py, a, code, None)?))
    }

    #[classmethod]
    #[pyo3(signature = (name, fd, code, len, lock))]
    fn _attach<'py>(
        cls: &Bound<'py, PyType>,
        name: Option<&str>,
        fd: Option<i32>,
        code: &str,
        len: usize,
        lock: Option<Bound<'_, PyRLock>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = cls.py();
        let code = code_char(code)?;
        let l = rlock_of(&lock);
        let a = make_typed!(AnyArray, code, T => match (name, fd, l) {
            (Some(n), _, _) => Array::<T>::open(n).py(),
            (None, Some(fd), None) => Array::<T>::from_fd(handle::owned_fd(fd)?).py(),
            (None, Some(fd), Some(l)) => Array::<T>::from_fd_with_lock(handle::owned_fd(fd)?, l).py(),
            _ => Err(PyValueError::new_err("a name or a descriptor is needed")),
        })?;
        let shared = name.is_none() && lock.is_some();
        let this = Self::wrap(
            py,
            a,
            code,
            if shared {
                lock.map(Bound::unbind)
            } else {
                None
            },
        )?;
        handle::check_len(py, this.len, Some(len))?;
        build(cls, code, Built::Sync(this))
    }

    fn __len__(&self) -> usize {
        self.len
    }

    fn __getitem__(&self, py: Python<'_>, idx: &Bound<'_, PyAny>) -> PyResult<PyObject> {
        let idx = Index::parse(idx, self.len)?;
        each_typed!(AnyArray, &self.a, a => {
            let g = guard(py, a)?;
            get_at(py, &g, &idx)
        })
    }

    fn __setitem__(
        &self,
        py: Python<'_>,
        idx: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let idx = Index::parse(idx, self.len)?;
        each_typed!(AnyArray, &self.a, a => {
            let put = Put::parse(idx, value)?;
            let g = guard(py, a)?;
            put.apply(&g);
            Ok(())
        })
    }

    fn __iter__(&self, py: Python<'_>) -> PyResult<PyObject> {
        let items = each_typed!(AnyArray, &self.a, a => {
            let v = guard(py, a)?.to_vec();
            v.into_iter().map(|x| x.to_py(py)).collect::<PyResult<Vec<_>>>()?
        });
        Ok(PyList::new(py, items)?.try_iter()?.into_any().unbind())
    }

    /// `'c'` arrays: the bytes up to the first NUL.
    #[getter]
    fn get_value(&self, py: Python<'_>) -> PyResult<PyObject> {
        match &self.a {
            AnyArray::C(a) => {
                let v = guard(py, a)?.raw();
                PyBytes::new(py, c_value(&v)).into_py_any(py)
            }
            _ => Err(no_attr("SynchronizedArray", "value")),
        }
    }

    #[setter]
    fn set_value(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        match &self.a {
            AnyArray::C(a) => {
                let b = c_bytes(value)?;
                c_store(&guard(py, a)?, self.len, b, true)
            }
            _ => Err(no_attr("SynchronizedArray", "value")),
        }
    }

    /// `'c'` arrays: every byte.
    #[getter]
    fn get_raw(&self, py: Python<'_>) -> PyResult<PyObject> {
        match &self.a {
            AnyArray::C(a) => PyBytes::new(py, &guard(py, a)?.raw()).into_py_any(py),
            _ => Err(no_attr("SynchronizedArray", "raw")),
        }
    }

    #[setter]
    fn set_raw(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        match &self.a {
            AnyArray::C(a) => {
                let b = c_bytes(value)?;
                c_store(&guard(py, a)?, self.len, b, false)
            }
            _ => Err(no_attr("SynchronizedArray", "raw")),
        }
    }

    /// A `memoryview` of the elements, without a copy (`numpy.frombuffer`
    /// takes it); on Python 3.11+ `memoryview(a)` is the same view.
    /// Accesses through it **bypass the lock**: hold `get_lock()` around
    /// them where it matters.
    #[getter]
    fn buffer(&self, py: Python<'_>) -> PyResult<PyObject> {
        each_typed!(AnyArray, &self.a, a => buffer_of(py, a, self.code, self.len))
    }

    // `get_lock`, `acquire`, `release`, `__enter__`, `__exit__`: `fast.rs`.

    fn get_obj(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[getter]
    fn typecode(&self) -> String {
        self.code.to_string()
    }

    #[getter]
    fn name(&self) -> Option<String> {
        each_typed!(AnyArray, &self.a, a => a.name().map(str::to_owned))
    }

    fn persist(&self) {
        each_typed!(AnyArray, &self.a, a => a.persist())
    }

    fn unlink(&self) -> PyResult<()> {
        each_typed!(AnyArray, &self.a, a => a.unlink().py())
    }

    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let lock = self.shared.then(|| self.lock.clone_ref(py).into_any());
        each_typed!(AnyArray, &self.a, a => handle::reduce(
            py, "SynchronizedArray", a.name(), handle::raw_fd(a), Some(self.code), self.len, lock))
    }

    fn __repr__(&self) -> String {
        format!(
            "<shmsync.SynchronizedArray {:?} len={}>",
            self.code, self.len
        )
    }
}

/// `shmsync.RawArray(typecode, size_or_initializer)`.
#[pyclass(frozen, subclass, module = "shmsync", name = "RawArray")]
pub(crate) struct PyRawArray {
    a: AnyRawArray,
    code: char,
    len: usize,
    layout: Layout,
}

impl Exporter for PyRawArray {
    fn exported(&self) -> (*mut c_void, &Layout) {
        let p = each_typed!(AnyRawArray, &self.a, a => a.as_ptr().cast::<c_void>());
        (p, &self.layout)
    }
}

impl PyRawArray {
    fn wrap(a: AnyRawArray, code: char) -> PyResult<Self> {
        let len = each_typed!(AnyRawArray, &a, x => x.len());
        let layout = each_typed!(AnyRawArray, &a, x => Layout::new(x.as_ptr(), len, code))?;
        Ok(PyRawArray {
            a,
            code,
            len,
            layout,
        })
    }
}

#[pymethods]
impl PyRawArray {
    #[new]
    #[pyo3(signature = (typecode, size_or_initializer, *, name=None, _made=None))]
    fn new(
        typecode: &str,
        size_or_initializer: &Bound<'_, PyAny>,
        name: Option<&str>,
        _made: Option<&Bound<'_, Made>>,
    ) -> PyResult<Self> {
        if let Some(m) = _made {
            return match m.get().take() {
                Some(Built::Raw(a)) => Ok(a),
                _ => Err(not_made()),
            };
        }
        let code = code_char(typecode)?;
        let a = make_typed!(AnyRawArray, code, T => {
            let init = Init::<T>::from_py(size_or_initializer)?;
            match (name, init) {
                (None, init) => RawArray::<T>::from_slice(&init.into_vec(T::zeroed())?),
                (Some(n), init) => RawArray::<T>::create(n, &init.into_vec(T::zeroed())?),
            }.py()
        })?;
        Self::wrap(a, code)
    }

    #[classmethod]
    fn open<'py>(cls: &Bound<'py, PyType>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        let (kind, code) = handle::code_of(cls.py(), name)?;
        handle::check_kind(cls.py(), kind, Kind::RawArray)?;
        let a = make_typed!(AnyRawArray, code, T => RawArray::<T>::open(name).py())?;
        build(cls, code, Built::Raw(Self::wrap(a, code)?))
    }

    #[classmethod]
    #[pyo3(signature = (name, fd, code, len, _lock))]
    fn _attach<'py>(
        cls: &Bound<'py, PyType>,
        name: Option<&str>,
        fd: Option<i32>,
        code: &str,
        len: usize,
        _lock: Option<PyObject>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let code = code_char(code)?;
        let a = make_typed!(AnyRawArray, code, T => match (name, fd) {
            (Some(n), _) => RawArray::<T>::open(n).py(),
            (None, Some(fd)) => RawArray::<T>::from_fd(handle::owned_fd(fd)?).py(),
            _ => Err(PyValueError::new_err("a name or a descriptor is needed")),
        })?;
        let this = Self::wrap(a, code)?;
        handle::check_len(cls.py(), this.len, Some(len))?;
        build(cls, code, Built::Raw(this))
    }

    fn __len__(&self) -> usize {
        self.len
    }

    fn __getitem__(&self, py: Python<'_>, idx: &Bound<'_, PyAny>) -> PyResult<PyObject> {
        let idx = Index::parse(idx, self.len)?;
        each_typed!(AnyRawArray, &self.a, a => get_at(py, a, &idx))
    }

    fn __setitem__(&self, idx: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let idx = Index::parse(idx, self.len)?;
        each_typed!(AnyRawArray, &self.a, a => {
            Put::parse(idx, value)?.apply(a);
            Ok(())
        })
    }

    fn __iter__(&self, py: Python<'_>) -> PyResult<PyObject> {
        let items = each_typed!(AnyRawArray, &self.a, a => {
            a.to_vec().into_iter().map(|x| x.to_py(py)).collect::<PyResult<Vec<_>>>()?
        });
        Ok(PyList::new(py, items)?.try_iter()?.into_any().unbind())
    }

    #[getter]
    fn get_value(&self, py: Python<'_>) -> PyResult<PyObject> {
        match &self.a {
            AnyRawArray::C(a) => PyBytes::new(py, c_value(&a.raw())).into_py_any(py),
            _ => Err(no_attr("RawArray", "value")),
        }
    }

    #[setter]
    fn set_value(&self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        match &self.a {
            AnyRawArray::C(a) => c_store(a, self.len, c_bytes(value)?, true),
            _ => Err(no_attr("RawArray", "value")),
        }
    }

    #[getter]
    fn get_raw(&self, py: Python<'_>) -> PyResult<PyObject> {
        match &self.a {
            AnyRawArray::C(a) => PyBytes::new(py, &a.raw()).into_py_any(py),
            _ => Err(no_attr("RawArray", "raw")),
        }
    }

    #[setter]
    fn set_raw(&self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        match &self.a {
            AnyRawArray::C(a) => c_store(a, self.len, c_bytes(value)?, false),
            _ => Err(no_attr("RawArray", "raw")),
        }
    }

    /// A `memoryview` of the elements, without a copy; on Python 3.11+
    /// `memoryview(a)` is the same view.
    #[getter]
    fn buffer(&self, py: Python<'_>) -> PyResult<PyObject> {
        each_typed!(AnyRawArray, &self.a, a => buffer_of(py, a, self.code, self.len))
    }

    #[getter]
    fn typecode(&self) -> String {
        self.code.to_string()
    }

    #[getter]
    fn name(&self) -> Option<String> {
        each_typed!(AnyRawArray, &self.a, a => a.name().map(str::to_owned))
    }

    fn persist(&self) {
        each_typed!(AnyRawArray, &self.a, a => a.persist())
    }

    fn unlink(&self) -> PyResult<()> {
        each_typed!(AnyRawArray, &self.a, a => a.unlink().py())
    }

    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        each_typed!(AnyRawArray, &self.a, a => handle::reduce(
            py, "RawArray", a.name(), handle::raw_fd(a), Some(self.code), self.len, None))
    }

    fn __repr__(&self) -> String {
        format!("<shmsync.RawArray {:?} len={}>", self.code, self.len)
    }
}

/// Adds the array classes: on Python 3.11 and newer their subclasses with
/// the buffer protocol (`buffer.rs`), under the same names.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add(
        "SynchronizedArray",
        export::exporting_type::<SynchronizedArray>(py, c"shmsync.SynchronizedArray")?,
    )?;
    m.add(
        "RawArray",
        export::exporting_type::<PyRawArray>(py, c"shmsync.RawArray")?,
    )?;
    Ok(())
}
