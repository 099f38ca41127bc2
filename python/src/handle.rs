#![allow(unsafe_code)] // descriptors received from Python (`from_raw_fd`)
//! Names, descriptors, pickling and `inspect`.
//!
//! Pickling (`__reduce__`) goes through `shmsync/_reduce.py`: a named
//! object travels as its name, an anonymous one as its descriptor
//! (`multiprocessing.reduction.DupFd`); both are rebuilt by the class's
//! `_attach`, which checks the kind, type code and length as `open` does.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use shmsync::inspect::{self as crate_inspect, Inspection, Kind, Status};
use shmsync::Error;

use crate::errors::{err, exc, ResultExt};

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

/// What a segment's header records, read with `shmsync::inspect` and
/// judged as a typed `open` would judge it.
pub(crate) struct Seen {
    pub(crate) kind: Kind,
    pub(crate) code: char,
    pub(crate) len: usize,
    pub(crate) elem_size: usize,
    pub(crate) stride: usize,
    pub(crate) data_offset: usize,
    pub(crate) size: usize,
    pub(crate) lock_mode: u32,
    pub(crate) lock_name: Option<String>,
}

/// How long `open` waits for a creator that has not published its header
/// (as the crate's typed `open` does).
const READY_WAIT: Duration = Duration::from_secs(1);

/// The verdict of `inspect` as the exception a typed `open` would raise.
fn judge(py: Python<'_>, i: Inspection) -> PyResult<Seen> {
    match i.status {
        Status::Ok => {}
        Status::Foreign => return Err(exc(py, "SegmentError", "not a shmsync segment")),
        Status::NotReady => return Err(err(Error::NotReady)),
        Status::Broken(e) => return Err(err(e)),
        _ => return Err(exc(py, "SegmentError", "segment not usable")),
    }
    let (Some(h), Some(kind)) = (i.header, i.kind) else {
        return Err(exc(py, "SegmentError", "unknown object kind"));
    };
    let us = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
    Ok(Seen {
        kind,
        code: u8::try_from(h.type_code).map(char::from).unwrap_or('\0'),
        len: us(h.count),
        elem_size: h.elem_size as usize,
        stride: h.stride as usize,
        data_offset: us(h.data_offset),
        size: us(i.file.len),
        lock_mode: h.lock_mode,
        lock_name: i.lock_name,
    })
}

/// What the named segment holds, waiting (at most a second, the GIL
/// released) for a creator that has not finished.
pub(crate) fn seen(py: Python<'_>, name: &str) -> PyResult<Seen> {
    let start = Instant::now();
    loop {
        let i = crate_inspect::inspect(name, 0).py()?;
        if i.status == Status::NotReady && start.elapsed() < READY_WAIT {
            py.allow_threads(|| std::thread::sleep(Duration::from_millis(1)));
            continue;
        }
        return judge(py, i);
    }
}

/// [`seen`] of a descriptor (no wait: a handle's own segment is
/// published).
pub(crate) fn seen_fd(py: Python<'_>, fd: BorrowedFd<'_>) -> PyResult<Seen> {
    judge(py, crate_inspect::inspect_fd(fd, 0).py()?)
}

/// The kind and type code recorded for `name`.
pub(crate) fn code_of(py: Python<'_>, name: &str) -> PyResult<(Kind, char)> {
    let s = seen(py, name)?;
    Ok((s.kind, s.code))
}

/// `inspect(name)`: what the named segment holds, as a dict (`kind`,
/// `typecode`, `length`, `elem_size`, `stride`, `data_offset`, `size`,
/// `lock`: `None`, `"own"` or `("shared", lock_name_or_None)`).
#[pyfunction]
fn inspect<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyDict>> {
    info_dict(py, seen(py, name)?)
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
    let b = unsafe { BorrowedFd::borrow_raw(fd) };
    info_dict(py, seen_fd(py, b)?)
}

fn info_dict(py: Python<'_>, i: Seen) -> PyResult<Bound<'_, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("kind", format!("{:?}", i.kind))?;
    let code = (i.code != '\0').then(|| i.code.to_string());
    d.set_item("typecode", code)?;
    d.set_item("length", i.len)?;
    d.set_item("elem_size", i.elem_size)?;
    d.set_item("stride", i.stride)?;
    d.set_item("data_offset", i.data_offset)?;
    d.set_item("size", i.size)?;
    match i.lock_mode {
        0 => d.set_item("lock", py.None())?,
        1 => d.set_item("lock", "own")?,
        _ => d.set_item("lock", ("shared", i.lock_name))?,
    }
    Ok(d)
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(inspect, m)?)?;
    m.add_function(wrap_pyfunction!(inspect_fd, m)?)?;
    Ok(())
}
