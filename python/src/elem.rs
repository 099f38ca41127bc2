//! Type codes, conversions between Python objects and elements, and the
//! enums that hold one typed crate object of any element type.
//!
//! Conversions follow `ctypes` (what `multiprocessing.Value`/`Array`
//! store): integers are taken with `__index__` and wrap to the width of
//! the type (`Value('b', 300).value == 44`), a float where an integer is
//! expected is a `TypeError`, floats accept anything with `__float__`,
//! `'c'` is a one-byte `bytes` (or an int), `'u'` a one-character `str`.

use pyo3::exceptions::{PyOverflowError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyString};
use pyo3::IntoPyObjectExt;
use shmsync::{CChar, CLong, CULong, WChar};

/// An element type as Python sees it.
pub(crate) trait PyElem: Copy + Send + Sync + 'static {
    /// Python's type code.
    const CODE: char;
    /// The Python object for an element.
    fn to_py(self, py: Python<'_>) -> PyResult<PyObject>;
    /// The element for a Python object, or the exception ctypes raises.
    fn from_py(o: &Bound<'_, PyAny>) -> PyResult<Self>;
}

/// The integer `o` as 64 bits, wrapped as ctypes wraps it.
fn int_bits(o: &Bound<'_, PyAny>) -> PyResult<u64> {
    match o.extract::<i64>() {
        Ok(v) => Ok(v as u64),
        Err(e) if e.is_instance_of::<PyOverflowError>(o.py()) => {
            // Beyond i64: the low 64 bits (`__index__` already applied by
            // the failed conversion, so `o` is an integer).
            let low = o.call_method1("__and__", (u64::MAX,))?;
            low.extract::<u64>()
        }
        Err(e) => Err(e),
    }
}

macro_rules! int_elem {
    ($($t:ty => $code:literal, $wide:ty;)*) => {$(
        impl PyElem for $t {
            const CODE: char = $code;
            fn to_py(self, py: Python<'_>) -> PyResult<PyObject> {
                <$wide>::from(self).into_py_any(py)
            }
            fn from_py(o: &Bound<'_, PyAny>) -> PyResult<Self> {
                // Truncation is the point: ctypes' wrap-around.
                Ok(int_bits(o)? as $t)
            }
        }
    )*};
}

int_elem! {
    i8 => 'b', i64; u8 => 'B', u64; i16 => 'h', i64; u16 => 'H', u64;
    i32 => 'i', i64; u32 => 'I', u64; i64 => 'q', i64; u64 => 'Q', u64;
}

impl PyElem for isize {
    const CODE: char = 'n';
    fn to_py(self, py: Python<'_>) -> PyResult<PyObject> {
        self.into_py_any(py)
    }
    fn from_py(o: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(int_bits(o)? as isize)
    }
}

impl PyElem for usize {
    const CODE: char = 'N';
    fn to_py(self, py: Python<'_>) -> PyResult<PyObject> {
        self.into_py_any(py)
    }
    fn from_py(o: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(int_bits(o)? as usize)
    }
}

impl PyElem for CLong {
    const CODE: char = 'l';
    fn to_py(self, py: Python<'_>) -> PyResult<PyObject> {
        self.0.into_py_any(py)
    }
    fn from_py(o: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(CLong(int_bits(o)? as i64))
    }
}

impl PyElem for CULong {
    const CODE: char = 'L';
    fn to_py(self, py: Python<'_>) -> PyResult<PyObject> {
        self.0.into_py_any(py)
    }
    fn from_py(o: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(CULong(int_bits(o)?))
    }
}

impl PyElem for f64 {
    const CODE: char = 'd';
    fn to_py(self, py: Python<'_>) -> PyResult<PyObject> {
        self.into_py_any(py)
    }
    fn from_py(o: &Bound<'_, PyAny>) -> PyResult<Self> {
        o.extract::<f64>()
    }
}

impl PyElem for f32 {
    const CODE: char = 'f';
    fn to_py(self, py: Python<'_>) -> PyResult<PyObject> {
        f64::from(self).into_py_any(py)
    }
    fn from_py(o: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(o.extract::<f64>()? as f32)
    }
}

impl PyElem for bool {
    const CODE: char = '?';
    fn to_py(self, py: Python<'_>) -> PyResult<PyObject> {
        self.into_py_any(py)
    }
    fn from_py(o: &Bound<'_, PyAny>) -> PyResult<Self> {
        o.is_truthy()
    }
}

impl PyElem for CChar {
    const CODE: char = 'c';
    fn to_py(self, py: Python<'_>) -> PyResult<PyObject> {
        PyBytes::new(py, &[self.0]).into_py_any(py)
    }
    fn from_py(o: &Bound<'_, PyAny>) -> PyResult<Self> {
        if let Ok(b) = o.downcast::<PyBytes>() {
            if let [c] = b.as_bytes() {
                return Ok(CChar(*c));
            }
        } else if let Ok(b) = o.downcast::<PyByteArray>() {
            if b.len() == 1 {
                return Ok(CChar(b.to_vec()[0]));
            }
        } else if let Ok(i) = o.extract::<i64>() {
            return Ok(CChar(i as u8));
        }
        Err(PyTypeError::new_err(
            "one character bytes, bytearray or integer expected",
        ))
    }
}

impl PyElem for WChar {
    const CODE: char = 'u';
    fn to_py(self, py: Python<'_>) -> PyResult<PyObject> {
        // A peer may store any 32-bit value: not a character, U+FFFD.
        let c = self.to_char().unwrap_or(char::REPLACEMENT_CHARACTER);
        c.into_py_any(py)
    }
    fn from_py(o: &Bound<'_, PyAny>) -> PyResult<Self> {
        if let Ok(s) = o.downcast::<PyString>() {
            let s = s.to_cow()?;
            let mut cs = s.chars();
            if let (Some(c), None) = (cs.next(), cs.next()) {
                return Ok(WChar::from(c));
            }
        }
        Err(PyTypeError::new_err(
            "one character unicode string expected",
        ))
    }
}

/// `Err(TypeError)` for a type code that is not one of `codes`.
pub(crate) fn bad_code(code: char, codes: &str) -> PyErr {
    PyTypeError::new_err(format!(
        "bad type code {code:?} (expected one of {codes:?} or a matching ctypes type)"
    ))
}

/// The type code `s` as one character.
pub(crate) fn code_char(s: &str) -> PyResult<char> {
    let mut cs = s.chars();
    match (cs.next(), cs.next()) {
        (Some(c), None) => Ok(c),
        _ => Err(PyTypeError::new_err(format!("bad type code {s:?}"))),
    }
}

/// The 14 type codes of `Value`/`Array`.
pub(crate) const CODES: &str = "cubBhHiIlLqQfd";
/// The type codes of the atomics (`l`/`L` are taken as `q`/`Q`).
pub(crate) const ATOMIC_CODES: &str = "bBhHiIqQnNfd?";

/// `enum $name { C($ty<CChar>), ... }`: one typed object of any of the
/// 14 element types. [`each_typed!`] runs code on it whatever its type,
/// [`make_typed!`] builds one from a type code.
macro_rules! typed_enum {
    ($name:ident, $ty:ident) => {
        pub(crate) enum $name {
            C($ty<shmsync::CChar>),
            U($ty<shmsync::WChar>),
            B($ty<i8>),
            UB($ty<u8>),
            H($ty<i16>),
            UH($ty<u16>),
            I($ty<i32>),
            UI($ty<u32>),
            L($ty<shmsync::CLong>),
            UL($ty<shmsync::CULong>),
            Q($ty<i64>),
            UQ($ty<u64>),
            F($ty<f32>),
            D($ty<f64>),
        }
    };
}
pub(crate) use typed_enum;

/// `body` with `x` bound to the typed object in `e` (a [`typed_enum!`]
/// `$name`), whatever its element type.
macro_rules! each_typed {
    ($name:ident, $e:expr, $x:ident => $body:expr) => {
        match $e {
            $name::C($x) => $body,
            $name::U($x) => $body,
            $name::B($x) => $body,
            $name::UB($x) => $body,
            $name::H($x) => $body,
            $name::UH($x) => $body,
            $name::I($x) => $body,
            $name::UI($x) => $body,
            $name::L($x) => $body,
            $name::UL($x) => $body,
            $name::Q($x) => $body,
            $name::UQ($x) => $body,
            $name::F($x) => $body,
            $name::D($x) => $body,
        }
    };
}
pub(crate) use each_typed;

/// The [`typed_enum!`] `$name` of type code `code`, from `mk` (a
/// `PyResult` of the typed object, with `T` its element type), or a
/// `TypeError` for an unknown code.
macro_rules! make_typed {
    ($name:ident, $code:expr, $t:ident => $mk:expr) => {
        match $code {
            'c' => {
                type $t = shmsync::CChar;
                Ok($name::C($mk?))
            }
            'u' => {
                type $t = shmsync::WChar;
                Ok($name::U($mk?))
            }
            'b' => {
                type $t = i8;
                Ok($name::B($mk?))
            }
            'B' => {
                type $t = u8;
                Ok($name::UB($mk?))
            }
            'h' => {
                type $t = i16;
                Ok($name::H($mk?))
            }
            'H' => {
                type $t = u16;
                Ok($name::UH($mk?))
            }
            'i' => {
                type $t = i32;
                Ok($name::I($mk?))
            }
            'I' => {
                type $t = u32;
                Ok($name::UI($mk?))
            }
            'l' => {
                type $t = shmsync::CLong;
                Ok($name::L($mk?))
            }
            'L' => {
                type $t = shmsync::CULong;
                Ok($name::UL($mk?))
            }
            'q' => {
                type $t = i64;
                Ok($name::Q($mk?))
            }
            'Q' => {
                type $t = u64;
                Ok($name::UQ($mk?))
            }
            'f' => {
                type $t = f32;
                Ok($name::F($mk?))
            }
            'd' => {
                type $t = f64;
                Ok($name::D($mk?))
            }
            c => Err($crate::elem::bad_code(c, $crate::elem::CODES)),
        }
    };
}
pub(crate) use make_typed;

/// As [`typed_enum!`] for the 13 atomic element types.
macro_rules! atomic_enum {
    ($name:ident, $ty:ident) => {
        pub(crate) enum $name {
            B($ty<i8>),
            UB($ty<u8>),
            H($ty<i16>),
            UH($ty<u16>),
            I($ty<i32>),
            UI($ty<u32>),
            Q($ty<i64>),
            UQ($ty<u64>),
            N($ty<isize>),
            UN($ty<usize>),
            F($ty<f32>),
            D($ty<f64>),
            Bool($ty<bool>),
        }
    };
}
pub(crate) use atomic_enum;

/// `num` for the numbers (integers and floats), `other` for bool.
macro_rules! each_number {
    ($name:ident, $e:expr, $x:ident => $num:expr, bool => $other:expr) => {
        match $e {
            $name::B($x) => $num,
            $name::UB($x) => $num,
            $name::H($x) => $num,
            $name::UH($x) => $num,
            $name::I($x) => $num,
            $name::UI($x) => $num,
            $name::Q($x) => $num,
            $name::UQ($x) => $num,
            $name::N($x) => $num,
            $name::UN($x) => $num,
            $name::F($x) => $num,
            $name::D($x) => $num,
            $name::Bool(_) => $other,
        }
    };
}
pub(crate) use each_number;

/// `bits` for the integers and bool, `other` for the floats.
macro_rules! each_bitwise {
    ($name:ident, $e:expr, $x:ident => $bits:expr, float => $other:expr) => {
        match $e {
            $name::B($x) => $bits,
            $name::UB($x) => $bits,
            $name::H($x) => $bits,
            $name::UH($x) => $bits,
            $name::I($x) => $bits,
            $name::UI($x) => $bits,
            $name::Q($x) => $bits,
            $name::UQ($x) => $bits,
            $name::N($x) => $bits,
            $name::UN($x) => $bits,
            $name::Bool($x) => $bits,
            $name::F(_) | $name::D(_) => $other,
        }
    };
}
pub(crate) use each_bitwise;

/// Every atomic element type.
macro_rules! each_atomic {
    ($name:ident, $e:expr, $x:ident => $body:expr) => {
        match $e {
            $name::B($x) => $body,
            $name::UB($x) => $body,
            $name::H($x) => $body,
            $name::UH($x) => $body,
            $name::I($x) => $body,
            $name::UI($x) => $body,
            $name::Q($x) => $body,
            $name::UQ($x) => $body,
            $name::N($x) => $body,
            $name::UN($x) => $body,
            $name::F($x) => $body,
            $name::D($x) => $body,
            $name::Bool($x) => $body,
        }
    };
}
pub(crate) use each_atomic;

/// As [`make_typed!`] for the atomic element types.
macro_rules! make_atomic {
    ($name:ident, $code:expr, $t:ident => $mk:expr) => {
        match $code {
            'b' => {
                type $t = i8;
                Ok($name::B($mk?))
            }
            'B' => {
                type $t = u8;
                Ok($name::UB($mk?))
            }
            'h' => {
                type $t = i16;
                Ok($name::H($mk?))
            }
            'H' => {
                type $t = u16;
                Ok($name::UH($mk?))
            }
            'i' => {
                type $t = i32;
                Ok($name::I($mk?))
            }
            'I' => {
                type $t = u32;
                Ok($name::UI($mk?))
            }
            'q' | 'l' => {
                type $t = i64;
                Ok($name::Q($mk?))
            }
            'Q' | 'L' => {
                type $t = u64;
                Ok($name::UQ($mk?))
            }
            'n' => {
                type $t = isize;
                Ok($name::N($mk?))
            }
            'N' => {
                type $t = usize;
                Ok($name::UN($mk?))
            }
            'f' => {
                type $t = f32;
                Ok($name::F($mk?))
            }
            'd' => {
                type $t = f64;
                Ok($name::D($mk?))
            }
            '?' => {
                type $t = bool;
                Ok($name::Bool($mk?))
            }
            c => Err($crate::elem::bad_code(c, $crate::elem::ATOMIC_CODES)),
        }
    };
}
pub(crate) use make_atomic;

/// `n` copies of `zero`, or `MemoryError` when they cannot be allocated:
/// an absurd length is an exception, not an abort. (The zeros are copied
/// rather than made by the crate's `zeroed`, whose `fallocate` of an
/// absurd size exhausts memory instead of failing.)
pub(crate) fn zeros<T: Clone>(n: usize, zero: T) -> PyResult<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| {
        pyo3::exceptions::PyMemoryError::new_err(format!("cannot allocate {n} elements"))
    })?;
    v.resize(n, zero);
    Ok(v)
}

/// `size_or_initializer`: a length (zeros) or the elements.
pub(crate) enum Init<T> {
    Len(usize),
    Items(Vec<T>),
}

impl<T: Clone> Init<T> {
    /// Reads `size_or_initializer`: an int is a length (negative:
    /// `ValueError`), anything else an iterable of elements.
    pub(crate) fn from_py(o: &Bound<'_, PyAny>) -> PyResult<Init<T>>
    where
        T: PyElem,
    {
        if let Ok(n) = o.extract::<isize>() {
            return usize::try_from(n).map(Init::Len).map_err(|_| {
                pyo3::exceptions::PyValueError::new_err(format!(
                    "Array length must be >= 0, not {n}"
                ))
            });
        }
        let items = o
            .try_iter()?
            .map(|x| T::from_py(&x?))
            .collect::<PyResult<Vec<T>>>()?;
        Ok(Init::Items(items))
    }

    /// The elements, `zero` for each of a length.
    pub(crate) fn into_vec(self, zero: T) -> PyResult<Vec<T>> {
        match self {
            Init::Len(n) => zeros(n, zero),
            Init::Items(v) => Ok(v),
        }
    }
}
