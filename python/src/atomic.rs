//! `AtomicValue` and `AtomicArray`: lock-free `load`, `store`, `swap`,
//! `compare_exchange`, `fetch_add`/`sub`/`max`/`min` (numbers, floats
//! included) and `fetch_and`/`or`/`xor`/`nand` (integers and bool), all
//! sequentially consistent.

use std::sync::atomic::Ordering::SeqCst;

use pyo3::exceptions::{PyIndexError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use pyo3::IntoPyObjectExt;
use shmsync::inspect::Kind;
use shmsync::{AtomicArray, AtomicRef, AtomicValue};

use crate::elem::{
    atomic_enum, code_char, each_atomic, each_bitwise, each_number, make_atomic, Init, PyElem,
};
use crate::errors::ResultExt;
use crate::handle;

atomic_enum!(AnyAtomic, AtomicValue);
atomic_enum!(AnyAtomicArray, AtomicArray);

/// An operation on one cell.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Op {
    Load,
    Store,
    Swap,
    CompareExchange,
    Add,
    Sub,
    Max,
    Min,
    And,
    Or,
    Xor,
    Nand,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Load => "load",
            Op::Store => "store",
            Op::Swap => "swap",
            Op::CompareExchange => "compare_exchange",
            Op::Add => "fetch_add",
            Op::Sub => "fetch_sub",
            Op::Max => "fetch_max",
            Op::Min => "fetch_min",
            Op::And => "fetch_and",
            Op::Or => "fetch_or",
            Op::Xor => "fetch_xor",
            Op::Nand => "fetch_nand",
        }
    }
}

fn not_for(op: Op, what: &str) -> PyErr {
    PyTypeError::new_err(format!("{}() is not defined for {what} cells", op.name()))
}

/// The operations on one cell, whatever the object.
macro_rules! cell_ops {
    ($Enum:ident, $cell:expr, $py:expr, $op:expr, $arg:expr, $arg2:expr) => {{
        let py = $py;
        let op: Op = $op;
        match op {
            Op::Load => each_atomic!($Enum, $cell, c => cell_of(c).load(SeqCst).to_py(py)),
            Op::Store => each_atomic!($Enum, $cell, c => {
                cell_of(c).store(PyElem::from_py($arg)?, SeqCst);
                Ok(py.None())
            }),
            Op::Swap => each_atomic!($Enum, $cell, c => cell_of(c).swap(PyElem::from_py($arg)?, SeqCst).to_py(py)),
            Op::CompareExchange => each_atomic!($Enum, $cell, c => {
                let r = cell_of(c).compare_exchange(PyElem::from_py($arg)?, PyElem::from_py($arg2)?, SeqCst, SeqCst);
                let (ok, v) = match r { Ok(v) => (true, v), Err(v) => (false, v) };
                (ok, v.to_py(py)?).into_py_any(py)
            }),
            Op::Add => each_number!($Enum, $cell, c => cell_of(c).fetch_add(PyElem::from_py($arg)?, SeqCst).to_py(py), bool => Err(not_for(op, "bool"))),
            Op::Sub => each_number!($Enum, $cell, c => cell_of(c).fetch_sub(PyElem::from_py($arg)?, SeqCst).to_py(py), bool => Err(not_for(op, "bool"))),
            Op::Max => each_number!($Enum, $cell, c => cell_of(c).fetch_max(PyElem::from_py($arg)?, SeqCst).to_py(py), bool => Err(not_for(op, "bool"))),
            Op::Min => each_number!($Enum, $cell, c => cell_of(c).fetch_min(PyElem::from_py($arg)?, SeqCst).to_py(py), bool => Err(not_for(op, "bool"))),
            Op::And => each_bitwise!($Enum, $cell, c => cell_of(c).fetch_and(PyElem::from_py($arg)?, SeqCst).to_py(py), float => Err(not_for(op, "float"))),
            Op::Or => each_bitwise!($Enum, $cell, c => cell_of(c).fetch_or(PyElem::from_py($arg)?, SeqCst).to_py(py), float => Err(not_for(op, "float"))),
            Op::Xor => each_bitwise!($Enum, $cell, c => cell_of(c).fetch_xor(PyElem::from_py($arg)?, SeqCst).to_py(py), float => Err(not_for(op, "float"))),
            Op::Nand => each_bitwise!($Enum, $cell, c => cell_of(c).fetch_nand(PyElem::from_py($arg)?, SeqCst).to_py(py), float => Err(not_for(op, "float"))),
        }
    }};
}

/// The cell of an atomic value.
fn cell_of<T: shmsync::AtomicElement>(c: AtomicRef<'_, T>) -> AtomicRef<'_, T> {
    c
}

/// An enum of cells (`AtomicRef`s) of the atomic element types.
enum AnyCell<'a> {
    B(AtomicRef<'a, i8>),
    UB(AtomicRef<'a, u8>),
    H(AtomicRef<'a, i16>),
    UH(AtomicRef<'a, u16>),
    I(AtomicRef<'a, i32>),
    UI(AtomicRef<'a, u32>),
    Q(AtomicRef<'a, i64>),
    UQ(AtomicRef<'a, u64>),
    N(AtomicRef<'a, isize>),
    UN(AtomicRef<'a, usize>),
    F(AtomicRef<'a, f32>),
    D(AtomicRef<'a, f64>),
    Bool(AtomicRef<'a, bool>),
}

macro_rules! cell_from {
    ($Enum:ident, $e:expr, $x:ident => $cell:expr) => {
        match $e {
            $Enum::B($x) => AnyCell::B($cell),
            $Enum::UB($x) => AnyCell::UB($cell),
            $Enum::H($x) => AnyCell::H($cell),
            $Enum::UH($x) => AnyCell::UH($cell),
            $Enum::I($x) => AnyCell::I($cell),
            $Enum::UI($x) => AnyCell::UI($cell),
            $Enum::Q($x) => AnyCell::Q($cell),
            $Enum::UQ($x) => AnyCell::UQ($cell),
            $Enum::N($x) => AnyCell::N($cell),
            $Enum::UN($x) => AnyCell::UN($cell),
            $Enum::F($x) => AnyCell::F($cell),
            $Enum::D($x) => AnyCell::D($cell),
            $Enum::Bool($x) => AnyCell::Bool($cell),
        }
    };
}

fn run(
    py: Python<'_>,
    cell: AnyCell<'_>,
    op: Op,
    a: &Bound<'_, PyAny>,
    b: &Bound<'_, PyAny>,
) -> PyResult<PyObject> {
    cell_ops!(AnyCell, cell, py, op, a, b)
}

/// `shmsync.AtomicValue(typecode, value=0)`.
#[pyclass(frozen, module = "shmsync", name = "AtomicValue")]
pub(crate) struct PyAtomicValue {
    v: AnyAtomic,
    code: char,
}

impl PyAtomicValue {
    fn cell(&self) -> AnyCell<'_> {
        cell_from!(AnyAtomic, &self.v, x => x.cell())
    }

    /// One operation with one argument (`a`; ignored by `Load`).
    pub(crate) fn op(&self, py: Python<'_>, op: Op, a: &Bound<'_, PyAny>) -> PyResult<PyObject> {
        run(py, self.cell(), op, a, a)
    }
}

#[pymethods]
impl PyAtomicValue {
    #[new]
    #[pyo3(signature = (typecode, value=None, *, name=None))]
    fn new(typecode: &str, value: Option<&Bound<'_, PyAny>>, name: Option<&str>) -> PyResult<Self> {
        let code = code_char(typecode)?;
        let v = make_atomic!(AnyAtomic, code, T => {
            let x: T = match value {
                Some(v) => PyElem::from_py(v)?,
                None => <T as shmsync::AtomicElement>::ZERO,
            };
            match name {
                None => AtomicValue::<T>::new(x),
                Some(n) => AtomicValue::<T>::create(n, x),
            }.py()
        })?;
        Ok(PyAtomicValue {
            v,
            code: normal(code),
        })
    }

    #[staticmethod]
    fn open(py: Python<'_>, name: &str) -> PyResult<Self> {
        let (kind, code) = handle::code_of(py, name)?;
        handle::check_kind(py, kind, Kind::AtomicValue)?;
        let v = make_atomic!(AnyAtomic, code, T => AtomicValue::<T>::open(name).py())?;
        Ok(PyAtomicValue { v, code })
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
        let v = make_atomic!(AnyAtomic, code, T => match (name, fd) {
            (Some(n), _) => AtomicValue::<T>::open(n).py(),
            (None, Some(fd)) => AtomicValue::<T>::from_fd(handle::owned_fd(fd)?).py(),
            _ => Err(PyValueError::new_err("a name or a descriptor is needed")),
        })?;
        Ok(PyAtomicValue { v, code })
    }

    // `load`, `store`, `swap`, `fetch_*` and `value`: `fast.rs`.

    /// Stores `new` if the value is `expected`; returns `(True, expected)`
    /// on success, `(False, actual)` otherwise.
    fn compare_exchange(
        &self,
        py: Python<'_>,
        expected: &Bound<'_, PyAny>,
        new: &Bound<'_, PyAny>,
    ) -> PyResult<PyObject> {
        run(py, self.cell(), Op::CompareExchange, expected, new)
    }
    #[getter]
    fn typecode(&self) -> String {
        self.code.to_string()
    }
    #[getter]
    fn name(&self) -> Option<String> {
        each_atomic!(AnyAtomic, &self.v, v => v.name().map(str::to_owned))
    }
    fn persist(&self) {
        each_atomic!(AnyAtomic, &self.v, v => v.persist())
    }
    fn unlink(&self) -> PyResult<()> {
        each_atomic!(AnyAtomic, &self.v, v => v.unlink().py())
    }
    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        each_atomic!(AnyAtomic, &self.v, v => handle::reduce(
            py, "AtomicValue", v.name(), handle::raw_fd(v), Some(self.code), 1, None))
    }
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let v = self.op(py, Op::Load, &py.None().into_bound(py))?;
        Ok(format!(
            "<shmsync.AtomicValue {:?} {}>",
            self.code,
            v.bind(py).repr()?
        ))
    }
}

/// `l`/`L` are stored as `q`/`Q` (same width on 64-bit Linux).
fn normal(code: char) -> char {
    match code {
        'l' => 'q',
        'L' => 'Q',
        c => c,
    }
}

/// `shmsync.AtomicArray(typecode, size_or_initializer, padded=False)`.
#[pyclass(frozen, module = "shmsync", name = "AtomicArray")]
pub(crate) struct PyAtomicArray {
    a: AnyAtomicArray,
    code: char,
    len: usize,
}

impl PyAtomicArray {
    fn wrap(a: AnyAtomicArray, code: char) -> Self {
        let len = each_atomic!(AnyAtomicArray, &a, x => x.len());
        PyAtomicArray { a, code, len }
    }

    fn index(&self, i: isize) -> PyResult<usize> {
        let j = if i < 0 {
            i.checked_add_unsigned(self.len)
        } else {
            Some(i)
        };
        match j.and_then(|j| usize::try_from(j).ok()) {
            Some(j) if j < self.len => Ok(j),
            _ => Err(PyIndexError::new_err("index out of range")),
        }
    }

    fn cell(&self, i: isize) -> PyResult<AnyCell<'_>> {
        let i = self.index(i)?;
        Ok(cell_from!(AnyAtomicArray, &self.a, x => x.at(i)))
    }

    fn op(&self, py: Python<'_>, i: isize, op: Op, a: &Bound<'_, PyAny>) -> PyResult<PyObject> {
        run(py, self.cell(i)?, op, a, a)
    }
}

#[pymethods]
impl PyAtomicArray {
    #[new]
    #[pyo3(signature = (typecode, size_or_initializer, *, padded=false, name=None))]
    fn new(
        typecode: &str,
        size_or_initializer: &Bound<'_, PyAny>,
        padded: bool,
        name: Option<&str>,
    ) -> PyResult<Self> {
        let code = code_char(typecode)?;
        let a = make_atomic!(AnyAtomicArray, code, T => {
            let init = Init::<T>::from_py(size_or_initializer)?;
            let zero = <T as shmsync::AtomicElement>::ZERO;
            match (name, padded, init) {
                (None, false, init) => AtomicArray::<T>::from_slice(&init.into_vec(zero)?),
                (None, true, init) => AtomicArray::<T>::from_slice_padded(&init.into_vec(zero)?),
                (Some(n), false, init) => AtomicArray::<T>::create(n, &init.into_vec(zero)?),
                (Some(n), true, init) => AtomicArray::<T>::create_padded(n, &init.into_vec(zero)?),
            }.py()
        })?;
        Ok(Self::wrap(a, normal(code)))
    }

    #[staticmethod]
    fn open(py: Python<'_>, name: &str) -> PyResult<Self> {
        let (kind, code) = handle::code_of(py, name)?;
        handle::check_kind(py, kind, Kind::AtomicArray)?;
        let a = make_atomic!(AnyAtomicArray, code, T => AtomicArray::<T>::open(name).py())?;
        Ok(Self::wrap(a, code))
    }

    #[staticmethod]
    #[pyo3(signature = (name, fd, code, len, _lock))]
    fn _attach(
        py: Python<'_>,
        name: Option<&str>,
        fd: Option<i32>,
        code: &str,
        len: usize,
        _lock: Option<PyObject>,
    ) -> PyResult<Self> {
        let code = code_char(code)?;
        let a = make_atomic!(AnyAtomicArray, code, T => match (name, fd) {
            (Some(n), _) => AtomicArray::<T>::open(n).py(),
            (None, Some(fd)) => AtomicArray::<T>::from_fd(handle::owned_fd(fd)?).py(),
            _ => Err(PyValueError::new_err("a name or a descriptor is needed")),
        })?;
        let this = Self::wrap(a, code);
        handle::check_len(py, this.len, Some(len))?;
        Ok(this)
    }

    fn __len__(&self) -> usize {
        self.len
    }
    /// `a[i]`: `load(i)`.
    fn __getitem__(&self, py: Python<'_>, i: isize) -> PyResult<PyObject> {
        self.load(py, i)
    }
    /// `a[i] = v`: `store(i, v)`.
    fn __setitem__(&self, py: Python<'_>, i: isize, v: &Bound<'_, PyAny>) -> PyResult<()> {
        self.store(py, i, v)
    }
    fn __iter__(&self, py: Python<'_>) -> PyResult<PyObject> {
        PyList::new(py, self.tolist(py)?)?
            .try_iter()?
            .into_py_any(py)
    }
    /// Every element (each loaded on its own: not a snapshot).
    fn tolist(&self, py: Python<'_>) -> PyResult<Vec<PyObject>> {
        (0..self.len as isize).map(|i| self.load(py, i)).collect()
    }
    fn load(&self, py: Python<'_>, i: isize) -> PyResult<PyObject> {
        self.op(py, i, Op::Load, &py.None().into_bound(py))
    }
    fn store(&self, py: Python<'_>, i: isize, v: &Bound<'_, PyAny>) -> PyResult<()> {
        self.op(py, i, Op::Store, v).map(drop)
    }
    fn swap(&self, py: Python<'_>, i: isize, v: &Bound<'_, PyAny>) -> PyResult<PyObject> {
        self.op(py, i, Op::Swap, v)
    }
    fn compare_exchange(
        &self,
        py: Python<'_>,
        i: isize,
        expected: &Bound<'_, PyAny>,
        new: &Bound<'_, PyAny>,
    ) -> PyResult<PyObject> {
        run(py, self.cell(i)?, Op::CompareExchange, expected, new)
    }
    fn fetch_add(&self, py: Python<'_>, i: isize, v: &Bound<'_, PyAny>) -> PyResult<PyObject> {
        self.op(py, i, Op::Add, v)
    }
    fn fetch_sub(&self, py: Python<'_>, i: isize, v: &Bound<'_, PyAny>) -> PyResult<PyObject> {
        self.op(py, i, Op::Sub, v)
    }
    fn fetch_max(&self, py: Python<'_>, i: isize, v: &Bound<'_, PyAny>) -> PyResult<PyObject> {
        self.op(py, i, Op::Max, v)
    }
    fn fetch_min(&self, py: Python<'_>, i: isize, v: &Bound<'_, PyAny>) -> PyResult<PyObject> {
        self.op(py, i, Op::Min, v)
    }
    fn fetch_and(&self, py: Python<'_>, i: isize, v: &Bound<'_, PyAny>) -> PyResult<PyObject> {
        self.op(py, i, Op::And, v)
    }
    fn fetch_or(&self, py: Python<'_>, i: isize, v: &Bound<'_, PyAny>) -> PyResult<PyObject> {
        self.op(py, i, Op::Or, v)
    }
    fn fetch_xor(&self, py: Python<'_>, i: isize, v: &Bound<'_, PyAny>) -> PyResult<PyObject> {
        self.op(py, i, Op::Xor, v)
    }
    fn fetch_nand(&self, py: Python<'_>, i: isize, v: &Bound<'_, PyAny>) -> PyResult<PyObject> {
        self.op(py, i, Op::Nand, v)
    }
    /// Whether each element has a cache line of its own.
    #[getter]
    fn padded(&self) -> bool {
        each_atomic!(AnyAtomicArray, &self.a, a => a.is_padded())
    }
    #[getter]
    fn typecode(&self) -> String {
        self.code.to_string()
    }
    #[getter]
    fn name(&self) -> Option<String> {
        each_atomic!(AnyAtomicArray, &self.a, a => a.name().map(str::to_owned))
    }
    fn persist(&self) {
        each_atomic!(AnyAtomicArray, &self.a, a => a.persist())
    }
    fn unlink(&self) -> PyResult<()> {
        each_atomic!(AnyAtomicArray, &self.a, a => a.unlink().py())
    }
    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        each_atomic!(AnyAtomicArray, &self.a, a => handle::reduce(
            py, "AtomicArray", a.name(), handle::raw_fd(a), Some(self.code), self.len, None))
    }
    fn __repr__(&self) -> String {
        format!("<shmsync.AtomicArray {:?} len={}>", self.code, self.len)
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyAtomicValue>()?;
    m.add_class::<PyAtomicArray>()?;
    Ok(())
}
