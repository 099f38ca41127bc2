#![allow(unsafe_code)] // the buffer protocol's C slot, which PyO3 does not offer under abi3-py38
//! The buffer protocol of the arrays: `memoryview(a)`,
//! `numpy.frombuffer(a, dtype)` and every other consumer see the shared
//! elements themselves, without a copy, on Python 3.11 and newer.
//!
//! The wheel is one abi3 wheel for CPython >= 3.8, and `Py_buffer` with the
//! `Py_bf_getbuffer` type slot entered the limited API and the stable ABI
//! only in 3.11 (<https://docs.python.org/3/c-api/buffer.html>, "Part of
//! the Stable ABI since version 3.11"; `Include/pybuffer.h`: "Py_buffer
//! struct layout and size is now part of the stable abi3"), so PyO3 offers
//! no `__getbuffer__` to this build. Instead, when the *running*
//! interpreter is 3.11 or newer, [`exporting_type`] makes, at import, a
//! heap subclass of the array's pyclass with `PyType_FromSpecWithBases`
//! (stable ABI since 3.3) whose one slot is `Py_bf_getbuffer`; with a
//! basic size of 0 it has the base's layout, and inherits its `tp_new`
//! (PyO3's, which allocates the subtype it is called with) and its
//! deallocation. The module exposes that subclass under the class's name,
//! and every constructor builds an object of the class it is called on
//! (`__new__`; `open` and `_attach` through the hidden `_made` argument,
//! see `array.rs`), so `Array(...)`, `open(name)` and unpickling all give
//! objects with the protocol. On 3.8 to 3.10 the module exposes the
//! pyclass itself and arrays have only their `.buffer` attribute.
//!
//! The view is 1-D, C-contiguous and writable, with the format of the
//! `.buffer` view (`'I'` for `'u'`); like `array.array`'s exporter
//! (`Modules/arraymodule.c`), it fills `format`, `shape` and `strides` only
//! when the request asks for them, and can meet every request. `obj` is a
//! new reference to the array, which owns the crate handle, which owns the
//! mapping: arrays have no `close`, so the mapping outlives every view, and
//! no export count or `bf_releasebuffer` is needed. Views bypass the
//! array's lock, as views of `multiprocessing`'s arrays do.

use std::ffi::{c_char, c_int, c_uint, c_void, CStr};
use std::panic::{self, AssertUnwindSafe};
use std::ptr;

use pyo3::exceptions::{PyBufferError, PyOverflowError, PyValueError};
use pyo3::ffi;
use pyo3::panic::PanicException;
use pyo3::prelude::*;
use pyo3::pyclass::boolean_struct::True;
use pyo3::types::{PyTuple, PyType};
use pyo3::PyClass;

/// `Py_buffer` as `Include/pybuffer.h` declares it (PyO3's definition is
/// gated on a 3.11 build). Its layout and size are part of the stable ABI
/// since 3.11 (<https://docs.python.org/3/c-api/buffer.html#c.Py_buffer>),
/// and it is only used under an interpreter of 3.11 or newer.
#[repr(C)]
struct PyBuffer {
    buf: *mut c_void,
    obj: *mut ffi::PyObject,
    len: ffi::Py_ssize_t,
    itemsize: ffi::Py_ssize_t,
    readonly: c_int,
    ndim: c_int,
    format: *mut c_char,
    shape: *mut ffi::Py_ssize_t,
    strides: *mut ffi::Py_ssize_t,
    suboffsets: *mut ffi::Py_ssize_t,
    internal: *mut c_void,
}

// The request flags (`Include/pybuffer.h`, stable since 3.11; PyO3 gates
// them on a 3.11 build too).
/// `PyBUF_FORMAT`: fill `format`.
const PYBUF_FORMAT: c_int = 0x0004;
/// `PyBUF_ND`: fill `shape`.
const PYBUF_ND: c_int = 0x0008;
/// `PyBUF_STRIDES`: fill `strides` (includes `PyBUF_ND`).
const PYBUF_STRIDES: c_int = 0x0010 | PYBUF_ND;

/// The elements as a view shows them: fixed when the array object is made
/// and kept in it, since a view's `shape` and `strides` point here (and the
/// view keeps the object alive).
pub(crate) struct Layout {
    /// `[number of elements]`.
    shape: [ffi::Py_ssize_t; 1],
    /// `[element size]` (the elements are packed).
    strides: [ffi::Py_ssize_t; 1],
    /// Bytes in all.
    nbytes: ffi::Py_ssize_t,
    format: &'static CStr,
}

impl Layout {
    /// `len` elements of `T`, of Python type code `code`; `elem` only
    /// names `T` (it is never read).
    pub(crate) fn new<T>(_elem: *mut T, len: usize, code: char) -> PyResult<Layout> {
        let size = std::mem::size_of::<T>();
        let too_long = || PyOverflowError::new_err("array too long for a buffer");
        let isize_of = |n: usize| ffi::Py_ssize_t::try_from(n).map_err(|_| too_long());
        Ok(Layout {
            shape: [isize_of(len)?],
            strides: [isize_of(size)?],
            nbytes: isize_of(len.checked_mul(size).ok_or_else(too_long)?)?,
            format: format_of(code, size)?,
        })
    }
}

/// The `struct`-module format of type code `code` (native sizes: the
/// crate's elements are C's types), as `.buffer` gives it: `'u'` (a 4-byte
/// `wchar_t` on Linux) as `'I'`, since `memoryview` has no `'u'`.
fn format_of(code: char, size: usize) -> PyResult<&'static CStr> {
    let f = match code {
        'c' => c"c",
        'u' if size == 4 => c"I",
        'b' => c"b",
        'B' => c"B",
        'h' => c"h",
        'H' => c"H",
        'i' => c"i",
        'I' => c"I",
        'l' => c"l",
        'L' => c"L",
        'q' => c"q",
        'Q' => c"Q",
        'f' => c"f",
        'd' => c"d",
        _ => {
            return Err(PyValueError::new_err(format!(
                "no buffer format for type code {code:?}"
            )))
        }
    };
    Ok(f)
}

/// An array class whose objects export their elements.
pub(crate) trait Exporter: PyClass<Frozen = True> + Sync {
    /// Element 0 in the object's own mapping (valid while the object
    /// lives, `layout.nbytes` bytes), and the layout.
    fn exported(&self) -> (*mut c_void, &Layout);
}

/// `bf_getbuffer` of the classes made by [`exporting_type`]: fills `view`
/// (or sets an exception and returns -1). No panic crosses into C.
unsafe extern "C" fn getbuffer<E: Exporter>(
    exporter: *mut ffi::PyObject,
    view: *mut PyBuffer,
    flags: c_int,
) -> c_int {
    let filled = panic::catch_unwind(AssertUnwindSafe(|| {
        Python::with_gil(|py| {
            // SAFETY: the interpreter calls `bf_getbuffer` with a live
            // object (borrowed for the call) whose type has this slot.
            let obj = unsafe { Bound::from_borrowed_ptr(py, exporter) };
            fill::<E>(&obj, view, flags).map_err(|e| e.restore(py))
        })
    }));
    match filled {
        Ok(Ok(())) => 0,
        Ok(Err(())) => failed(view),
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic in bf_getbuffer".to_owned());
            Python::with_gil(|py| PanicException::new_err(msg).restore(py));
            failed(view)
        }
    }
}

/// What a failed `bf_getbuffer` leaves: `view->obj` NULL (the protocol's
/// rule), -1.
fn failed(view: *mut PyBuffer) -> c_int {
    if !view.is_null() {
        // SAFETY: a non-NULL `view` is the caller's `Py_buffer`, writable
        // (bf_getbuffer's contract); a field write through the raw pointer
        // makes no reference.
        unsafe { ptr::addr_of_mut!((*view).obj).write(ptr::null_mut()) };
    }
    -1
}

/// Fills `view` for `obj`, an object of `E` or of a subclass.
fn fill<E: Exporter>(obj: &Bound<'_, PyAny>, view: *mut PyBuffer, flags: c_int) -> PyResult<()> {
    if view.is_null() {
        return Err(PyBufferError::new_err("a NULL view is obsolete"));
    }
    let this = obj.downcast::<E>()?;
    let (buf, layout) = this.get().exported();
    let asks = |f: c_int| flags & f == f;
    // Read-only for the consumer (the protocol's rule), as `array.array`'s
    // and PyBuffer_FillInfo's constant fields are.
    let field = |p: *const ffi::Py_ssize_t, f: c_int| {
        if asks(f) {
            p.cast_mut()
        } else {
            ptr::null_mut()
        }
    };
    let filled = PyBuffer {
        buf,
        // The view's own reference: keeps the array, hence the mapping,
        // alive until PyBuffer_Release.
        obj: obj.clone().into_ptr(),
        len: layout.nbytes,
        itemsize: layout.strides[0],
        readonly: 0,
        ndim: 1,
        format: if asks(PYBUF_FORMAT) {
            layout.format.as_ptr().cast_mut()
        } else {
            ptr::null_mut()
        },
        shape: field(layout.shape.as_ptr(), PYBUF_ND),
        strides: field(layout.strides.as_ptr(), PYBUF_STRIDES),
        suboffsets: ptr::null_mut(),
        internal: ptr::null_mut(),
    };
    // SAFETY: `view` is not NULL (checked) and is the caller's `Py_buffer`
    // to fill (bf_getbuffer's contract), laid out as `PyBuffer` (the
    // stable ABI of the running 3.11+ interpreter: this slot is installed
    // only there).
    unsafe { view.write(filled) };
    Ok(())
}

/// `getbuffer` as the slot's function type.
type GetBuffer = unsafe extern "C" fn(*mut ffi::PyObject, *mut PyBuffer, c_int) -> c_int;

/// The class the module exposes for `E`: on Python 3.11 and newer a
/// subclass named `name` (`module.Class`, static: 3.11 keeps the pointer as
/// `tp_name`) with the buffer protocol, else `E` itself.
pub(crate) fn exporting_type<'py, E: Exporter>(
    py: Python<'py>,
    name: &'static CStr,
) -> PyResult<Bound<'py, PyType>> {
    let base = py.get_type::<E>();
    if py.version_info() < (3, 11) {
        return Ok(base);
    }
    let get: GetBuffer = getbuffer::<E>;
    let mut slots = [
        ffi::PyType_Slot {
            slot: ffi::Py_bf_getbuffer,
            pfunc: get as *mut c_void,
        },
        ffi::PyType_Slot {
            slot: 0,
            pfunc: ptr::null_mut(),
        },
    ];
    let mut spec = ffi::PyType_Spec {
        name: name.as_ptr(),
        // 0: the base's layout, hence its tp_new and deallocation.
        basicsize: 0,
        itemsize: 0,
        flags: (ffi::Py_TPFLAGS_DEFAULT | ffi::Py_TPFLAGS_BASETYPE) as c_uint,
        slots: slots.as_mut_ptr(),
    };
    let bases = PyTuple::new(py, [&base])?;
    // SAFETY: `spec` and `slots` are valid for the call (the slots are
    // copied into the type; `name` is static, as 3.11 requires), the slot
    // list ends with a zero slot, `bases` is a tuple of one PyO3 class
    // that allows subclasses, and `getbuffer::<E>` has the type of
    // `getbufferproc` with `PyBuffer` laid out as `Py_buffer`.
    let t = unsafe { ffi::PyType_FromSpecWithBases(&mut spec, bases.as_ptr()) };
    // SAFETY: a new reference, or NULL with an exception set.
    let t = unsafe { Bound::from_owned_ptr_or_err(py, t) }?.downcast_into::<PyType>()?;
    t.setattr("__doc__", base.getattr("__doc__")?)?;
    Ok(t)
}
