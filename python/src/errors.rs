//! The crate's errors as Python exceptions.
//!
//! The exception classes are defined in Python (`shmsync/_errors.py`), so
//! that they can inherit from two bases (`MismatchError` is a
//! `ShmsyncError` and a `TypeError`); this module looks them up.

use pyo3::exceptions::{PyFileExistsError, PyFileNotFoundError, PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::PyType;
use shmsync::Error;

static ERRORS: GILOnceCell<Py<PyModule>> = GILOnceCell::new();

/// An exception of class `class` (a name in `shmsync._errors`).
pub(crate) fn exc(py: Python<'_>, class: &str, msg: impl Into<String>) -> PyErr {
    let msg = msg.into();
    let ty = ERRORS
        .get_or_try_init(py, || py.import("shmsync._errors").map(Bound::unbind))
        .and_then(|m| m.bind(py).getattr(class))
        .and_then(|t| t.downcast_into::<PyType>().map_err(PyErr::from));
    match ty {
        Ok(t) => PyErr::from_type(t, msg),
        Err(e) => e,
    }
}

/// A crate error as the Python exception documented for it.
pub(crate) fn err(e: Error) -> PyErr {
    let msg = e.to_string();
    match e {
        Error::NotFound { .. } => PyFileNotFoundError::new_err(msg),
        Error::AlreadyExists { .. } | Error::Stale { .. } => PyFileExistsError::new_err(msg),
        Error::InvalidName { .. } | Error::InvalidArgument(_) | Error::OutOfBounds { .. } => {
            PyValueError::new_err(msg)
        }
        Error::Io { errno, .. } => PyOSError::new_err((errno, msg)),
        e => Python::with_gil(|py| {
            let class = match e {
                Error::TypeMismatch { .. } | Error::SizeMismatch { .. } | Error::LockMismatch => {
                    "MismatchError"
                }
                Error::OwnerDied => "OwnerDiedError",
                Error::NotRecoverable => "NotRecoverableError",
                Error::Deadlock => "DeadlockError",
                _ => "SegmentError",
            };
            exc(py, class, msg)
        }),
    }
}

/// `map_err` for crate results.
pub(crate) trait ResultExt<T> {
    fn py(self) -> PyResult<T>;
}

impl<T> ResultExt<T> for Result<T, Error> {
    fn py(self) -> PyResult<T> {
        self.map_err(err)
    }
}
