#![allow(unsafe_code)] // descriptors received from Python (`from_raw_fd`)
//! Names, descriptors, pickling and `inspect`.
//!
//! Pickling (`__reduce__`) goes through `shmsync/_reduce.py`: a named
//! object travels as its name, an anonymous one as its descriptor
//! (`multiprocessing.reduction.DupFd`); both are rebuilt by the class's
//! `_attach`, which checks the kind, type code and length as `open` does.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use shmsync::{Kind, SegmentLock};

use crate::errors::{exc, ResultExt};

/// Takes ownership of the descriptor `fd` (from `DupFd.detach()`).
pub(crate) fn owned_fd(fd: i32) -> PyResult<OwnedFd> {
    if fd < 0 {
        return Err(PyValueError::new_err("negative file descriptor"));
    }
    // SAFETY: the caller (`_reduce._rebuild`) hands over a descriptor that
    // it owns and no longer uses (`DupFd.detach()` gives one), which is
    // what `OwnedFd` requires.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The descriptor of a handle, for pickling (borrowed: `DupFd` duplicates
/// it).
pub(crate) fn raw_fd(h: &impl AsFd) -> i32 {
    h.as_fd().as_raw_fd()
}

/// `__reduce__` of an object of class `class`: see `_reduce.reduce`.
pub(crate) fn reduce<'py>(
    py: Python<'py>,
    class: &str,
    name: Option<&str>,
    fd: i32,
    code: Option<char>,
    len: usize,
    lock: Option<PyObject>,
) -> PyResult<Bound<'py, PyTuple>> {
    let m = py.import("shmsync._reduce")?;
    let r = m
        .getattr("reduce")?
        .call1((class, name, fd, code, len, lock))?;
    Ok(r.downcast_into::<PyTuple>()?)
}

/// A `MismatchError` unless `found` is `expected`.
pub(crate) fn check_kind(py: Python<'_>, found: Kind, expected: Kind) -> PyResult<()> {
    if found == expected {
        Ok(())
    } else {
        Err(exc(
            py,
            "MismatchError",
            format!("segment holds a {found:?}, expected a {expected:?}"),
        ))
    }
}

/// A `MismatchError` unless `found` is `expected` (a length).
pub(crate) fn check_len(py: Python<'_>, found: usize, expected: Option<usize>) -> PyResult<()> {
    match expected {
        Some(e) if e != found => Err(exc(
            py,
            "MismatchError",
            format!("segment holds {found} elements, expected {e}"),
        )),
        _ => Ok(()),
    }
}

/// The type code and kind recorded for `name`.
pub(crate) fn code_of(name: &str) -> PyResult<(Kind, char)> {
    let info = shmsync::inspect(name).py()?;
    Ok((info.kind, char::from(info.type_code)))
}

/// `inspect(name)`: what the named segment holds, as a dict (`kind`,
/// `typecode`, `length`, `elem_size`, `stride`, `data_offset`, `size`,
/// `lock`: `None`, `"own"` or `("shared", lock_name_or_None)`).
#[pyfunction]
fn inspect<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyDict>> {
    info_dict(py, shmsync::inspect(name).py()?)
}

/// `inspect_fd(fd)`: `inspect` for a descriptor (which the caller keeps).
#[pyfunction]
fn inspect_fd(py: Python<'_>, fd: i32) -> PyResult<Bound<'_, PyDict>> {
    if fd < 0 {
        return Err(PyValueError::new_err("negative file descriptor"));
    }
    // SAFETY: borrowed for the duration of the call only; the caller
    // keeps the descriptor open meanwhile (Python's contract for an fd
    // argument).
    let b = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    info_dict(py, shmsync::inspect_fd(b).py()?)
}

pub(crate) fn info_dict(py: Python<'_>, i: shmsync::SegmentInfo) -> PyResult<Bound<'_, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("kind", format!("{:?}", i.kind))?;
    let code = if i.type_code == 0 {
        None
    } else {
        Some(char::from(i.type_code).to_string())
    };
    d.set_item("typecode", code)?;
    d.set_item("length", i.len)?;
    d.set_item("elem_size", i.elem_size)?;
    d.set_item("stride", i.stride)?;
    d.set_item("data_offset", i.data_offset)?;
    d.set_item("size", i.size)?;
    match i.lock {
        SegmentLock::None => d.set_item("lock", py.None())?,
        SegmentLock::Own => d.set_item("lock", "own")?,
        SegmentLock::Shared { name } => d.set_item("lock", ("shared", name))?,
        _ => d.set_item("lock", "unknown")?,
    }
    Ok(d)
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(inspect, m)?)?;
    m.add_function(wrap_pyfunction!(inspect_fd, m)?)?;
    Ok(())
}
