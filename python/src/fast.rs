#![allow(unsafe_code)] // CPython method and attribute descriptors made by hand
//! The hottest calls without PyO3's generic entry: `acquire`, `release`,
//! `with lock:` / `with v.get_lock():` / `with v:` (`__enter__`,
//! `__exit__`), `get_lock()`, `v.value` of a `Synchronized`, and the
//! one-call operations of an `AtomicValue` (`load`, `store`, `fetch_add`,
//! ..., `.value`).
//!
//! PyO3 enters every method through a generic trampoline that checks the
//! receiver's type against its lazily made type object, parses arguments
//! from a tuple (an abi3 build for CPython 3.8 cannot use the vectorcall
//! convention), and counts the GIL; for `v.value += 1` inside `with`
//! that is most of the time spent outside the interpreter
//! (`python/bench.py`). After PyO3 has made the classes, [`install`]
//! adds these attributes to them: CPython descriptors made from plain
//! `PyMethodDef`/`PyGetSetDef` entries whose functions call the same Rust
//! code as the classes' other methods (the classes do not define them).
//!
//! Why the shortcuts are sound:
//! - **The receiver's type**: a method or getset descriptor checks that
//!   `self` is an instance of the type it was made for
//!   (`descr_check` in CPython's `Objects/descrobject.c`) before it calls
//!   the function, so the functions below may take `slf` as that class.
//! - **The GIL** is held by whoever calls a descriptor's function. PyO3's
//!   own count of GIL holds is not raised here: nothing below drops an
//!   unbound `Py<T>` (results leave with `into_ptr`, errors with
//!   `restore`), and one dropped inside PyO3 would only have its decref
//!   deferred to PyO3's next entry, not lost.
//! - **Panics** are caught and raised as `PanicException`, as PyO3 does.
//! - **Calling convention**: `__exit__` takes `METH_FASTCALL` (no argument
//!   tuple) where the running CPython's stable ABI has it (3.10 and later),
//!   `METH_VARARGS` before.

use std::ffi::{c_int, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::Arc;

use pyo3::exceptions::{PyAttributeError, PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyTuple};
use pyo3::{PyClass, PyTypeInfo};

use crate::atomic::{Op, PyAtomicValue};
use crate::lock::{PyLock, PyRLock};
use crate::value::Synchronized;
use crate::wait::{LockObj, Wait};

/// `METH_FASTCALL` (`Include/methodobject.h`; in the stable ABI from 3.10,
/// which pyo3-ffi's abi3-py38 build does not declare).
const METH_FASTCALL: c_int = 0x0080;

/// A class whose instances stand for one lock (a lock, or an object
/// protected by one): what `with obj:` takes.
pub(crate) trait Guarded: PyClass + Sync {
    /// The lock.
    fn lock_obj(&self) -> &Arc<LockObj>;
    /// `release()` by a thread that does not hold it.
    fn not_held() -> PyErr;
}

impl Guarded for PyRLock {
    fn lock_obj(&self) -> &Arc<LockObj> {
        &self.lock
    }
    fn not_held() -> PyErr {
        crate::lock::rlock_not_held()
    }
}

impl Guarded for PyLock {
    fn lock_obj(&self) -> &Arc<LockObj> {
        &self.lock
    }
    fn not_held() -> PyErr {
        PyValueError::new_err("semaphore or lock released too many times")
    }
}

impl Guarded for Synchronized {
    fn lock_obj(&self) -> &Arc<LockObj> {
        self.lock_handle()
    }
    fn not_held() -> PyErr {
        crate::lock::rlock_not_held()
    }
}

impl Guarded for crate::array::SynchronizedArray {
    fn lock_obj(&self) -> &Arc<LockObj> {
        self.lock_handle()
    }
    fn not_held() -> PyErr {
        crate::lock::rlock_not_held()
    }
}

/// An object protected by a lock object of its own or shared:
/// `get_lock()`.
pub(crate) trait Protected: Guarded {
    /// The lock object.
    fn lock_object(&self) -> &Py<PyRLock>;
}

impl Protected for Synchronized {
    fn lock_object(&self) -> &Py<PyRLock> {
        self.lock_py()
    }
}

impl Protected for crate::array::SynchronizedArray {
    fn lock_object(&self) -> &Py<PyRLock> {
        self.lock_py()
    }
}

/// Runs `f` with the GIL token, as a CPython entry point: an error or a
/// panic becomes the raised exception and `null`.
///
/// # Safety
/// Called only by CPython with the GIL held.
unsafe fn entry<R>(null: R, f: impl FnOnce(Python<'_>) -> PyResult<R>) -> R {
    // SAFETY: CPython calls descriptors' functions with the GIL held.
    let py = unsafe { Python::assume_gil_acquired() };
    match catch_unwind(AssertUnwindSafe(|| f(py))) {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            e.restore(py);
            null
        }
        Err(_) => {
            pyo3::panic::PanicException::new_err("a panic in shmsync's binding").restore(py);
            null
        }
    }
}

/// Runs `f` on `slf` as the `T` it is.
///
/// # Safety
/// `slf` is a live instance of `T` (or of a subclass) for the call, and
/// the GIL is held.
unsafe fn with_this<T, R>(py: Python<'_>, slf: *mut ffi::PyObject, f: impl FnOnce(&T) -> R) -> R
where
    T: PyClass<Frozen = pyo3::pyclass::boolean_struct::True> + Sync,
{
    // SAFETY: the caller's contract: `slf` is a live object for the call.
    let b = unsafe { pyo3::Borrowed::from_ptr(py, slf) };
    // SAFETY: the caller's contract: it is a `T` (the descriptor checked
    // its type).
    let t = unsafe { b.downcast_unchecked::<T>() };
    f(t.get())
}

/// `__enter__` (`METH_NOARGS`): a blocking acquire; an owner's death is
/// raised after releasing (`lock.rs`, `__enter__`).
unsafe extern "C" fn enter<T>(slf: *mut ffi::PyObject, _: *mut ffi::PyObject) -> *mut ffi::PyObject
where
    T: Guarded + PyClass<Frozen = pyo3::pyclass::boolean_struct::True>,
{
    // SAFETY: called by CPython through the method descriptor made for `T`
    // (type checked), with the GIL held.
    unsafe {
        entry(ptr::null_mut(), |py| {
            let held = with_this(py, slf, |t: &T| {
                crate::lock::acquire(py, t.lock_obj(), Wait::FOREVER, false)
            })?;
            Ok(PyBool::new(py, held).to_owned().into_ptr())
        })
    }
}

/// `get_lock()` (`METH_NOARGS`).
unsafe extern "C" fn get_lock<T>(
    slf: *mut ffi::PyObject,
    _: *mut ffi::PyObject,
) -> *mut ffi::PyObject
where
    T: Protected + PyClass<Frozen = pyo3::pyclass::boolean_struct::True>,
{
    // SAFETY: called by CPython through the method descriptor made for `T`
    // (type checked), with the GIL held.
    unsafe {
        entry(ptr::null_mut(), |py| {
            Ok(with_this(py, slf, |t: &T| t.lock_object().clone_ref(py)).into_ptr())
        })
    }
}

/// Releases one hold of the calling thread, for `__exit__`.
///
/// # Safety
/// As [`with_this`].
unsafe fn exit_of<T>(py: Python<'_>, slf: *mut ffi::PyObject) -> PyResult<*mut ffi::PyObject>
where
    T: Guarded + PyClass<Frozen = pyo3::pyclass::boolean_struct::True>,
{
    // SAFETY: the caller's contract.
    let popped = unsafe { with_this(py, slf, |t: &T| crate::wait::pop(t.lock_obj())) };
    if !popped {
        return Err(T::not_held());
    }
    Ok(PyBool::new(py, false).to_owned().into_ptr())
}

/// `__exit__(*args)` as `METH_FASTCALL`.
unsafe extern "C" fn exit_fast<T>(
    slf: *mut ffi::PyObject,
    _args: *const *mut ffi::PyObject,
    _nargs: ffi::Py_ssize_t,
) -> *mut ffi::PyObject
where
    T: Guarded + PyClass<Frozen = pyo3::pyclass::boolean_struct::True>,
{
    // SAFETY: called by CPython through the descriptor made for `T`, GIL
    // held; the arguments are not looked at.
    unsafe { entry(ptr::null_mut(), |py| exit_of::<T>(py, slf)) }
}

/// `__exit__(*args)` as `METH_VARARGS` (CPython before 3.10).
unsafe extern "C" fn exit_args<T>(
    slf: *mut ffi::PyObject,
    _args: *mut ffi::PyObject,
) -> *mut ffi::PyObject
where
    T: Guarded + PyClass<Frozen = pyo3::pyclass::boolean_struct::True>,
{
    // SAFETY: as `exit_fast`.
    unsafe { entry(ptr::null_mut(), |py| exit_of::<T>(py, slf)) }
}

/// `release()` (`METH_NOARGS`): one hold of the calling thread.
unsafe extern "C" fn release<T>(
    slf: *mut ffi::PyObject,
    _: *mut ffi::PyObject,
) -> *mut ffi::PyObject
where
    T: Guarded + PyClass<Frozen = pyo3::pyclass::boolean_struct::True>,
{
    // SAFETY: called by CPython through the method descriptor made for `T`
    // (type checked), with the GIL held.
    unsafe {
        entry(ptr::null_mut(), |py| {
            if with_this(py, slf, |t: &T| crate::wait::pop(t.lock_obj())) {
                Ok(py.None().into_ptr())
            } else {
                Err(T::not_held())
            }
        })
    }
}

/// `acquire(block=True, timeout=None)`'s arguments: `block` is any
/// object's truth (multiprocessing's accepts integers), `timeout` `None`
/// or a number.
fn acquire_args(
    args: &Bound<'_, PyTuple>,
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<(bool, Option<f64>)> {
    let n = args.len();
    if n > 2 {
        return Err(PyTypeError::new_err(format!(
            "acquire() takes at most 2 arguments ({n} given)"
        )));
    }
    let mut block = match n {
        0 => None,
        _ => Some(args.get_item(0)?),
    };
    let mut timeout = match n {
        2 => Some(args.get_item(1)?),
        _ => None,
    };
    if let Some(kw) = kwargs {
        for (k, v) in kw.iter() {
            let slot = match k.extract::<String>()?.as_str() {
                "block" => &mut block,
                "timeout" => &mut timeout,
                other => {
                    return Err(PyTypeError::new_err(format!(
                        "acquire() got an unexpected keyword argument '{other}'"
                    )))
                }
            };
            if slot.is_some() {
                return Err(PyTypeError::new_err(format!(
                    "acquire() got multiple values for argument '{k}'"
                )));
            }
            *slot = Some(v);
        }
    }
    let block = match block {
        None => true,
        Some(b) => b.is_truthy()?,
    };
    let timeout = match timeout {
        Some(t) if !t.is_none() => Some(t.extract::<f64>()?),
        _ => None,
    };
    Ok((block, timeout))
}

/// `acquire(block=True, timeout=None)` (`METH_VARARGS | METH_KEYWORDS`):
/// as the PyO3 method (`lock.rs`).
unsafe extern "C" fn acquire<T>(
    slf: *mut ffi::PyObject,
    args: *mut ffi::PyObject,
    kwargs: *mut ffi::PyObject,
) -> *mut ffi::PyObject
where
    T: Guarded + PyClass<Frozen = pyo3::pyclass::boolean_struct::True>,
{
    // SAFETY: called by CPython through the method descriptor made for `T`
    // (type checked), with the GIL held; `args` is a tuple and `kwargs`
    // null or a dict (`METH_VARARGS | METH_KEYWORDS`), both borrowed.
    unsafe {
        entry(ptr::null_mut(), |py| {
            let args = pyo3::Borrowed::from_ptr(py, args);
            let args = args.downcast_unchecked::<PyTuple>();
            let kwargs = pyo3::Borrowed::from_ptr_or_opt(py, kwargs);
            let kwargs = kwargs.as_ref().map(|k| k.downcast_unchecked::<PyDict>());
            let (block, timeout) = acquire_args(args, kwargs)?;
            let wait = Wait::from_py(block, timeout)?;
            let got = with_this(py, slf, |t: &T| {
                crate::lock::acquire(py, t.lock_obj(), wait, true)
            })?;
            Ok(PyBool::new(py, got).to_owned().into_ptr())
        })
    }
}

/// The getter of `Synchronized.value`.
unsafe extern "C" fn value_get(slf: *mut ffi::PyObject, _: *mut c_void) -> *mut ffi::PyObject {
    // SAFETY: called by CPython through the getset descriptor made for
    // `Synchronized` (type checked), with the GIL held.
    unsafe {
        entry(ptr::null_mut(), |py| {
            Ok(with_this(py, slf, |v: &Synchronized| v.value_get(py))?.into_ptr())
        })
    }
}

/// The setter of `Synchronized.value` (`value` null: `del v.value`).
unsafe extern "C" fn value_set(
    slf: *mut ffi::PyObject,
    value: *mut ffi::PyObject,
    _: *mut c_void,
) -> c_int {
    // SAFETY: as `value_get`; `value`, if not null, is a borrowed object.
    unsafe {
        entry(-1, |py| {
            if value.is_null() {
                return Err(PyAttributeError::new_err("can't delete attribute"));
            }
            let x = pyo3::Borrowed::from_ptr(py, value);
            with_this(py, slf, |v: &Synchronized| v.value_set(py, &x))?;
            Ok(0)
        })
    }
}

/// `AtomicValue` methods of one argument (`METH_O`), each one operation.
macro_rules! atomic_o {
    ($($f:ident: $op:ident),* $(,)?) => {$(
        unsafe extern "C" fn $f(
            slf: *mut ffi::PyObject,
            arg: *mut ffi::PyObject,
        ) -> *mut ffi::PyObject {
            // SAFETY: called by CPython through the method descriptor made
            // for `AtomicValue` (type checked), GIL held, `arg` borrowed.
            unsafe {
                entry(ptr::null_mut(), |py| {
                    let a = pyo3::Borrowed::from_ptr(py, arg);
                    let r = with_this(py, slf, |v: &PyAtomicValue| v.op(py, Op::$op, &a))?;
                    Ok(match Op::$op {
                        Op::Store => py.None().into_ptr(),
                        _ => r.into_ptr(),
                    })
                })
            }
        }
    )*};
}

atomic_o!(
    atomic_store: Store,
    atomic_swap: Swap,
    atomic_add: Add,
    atomic_sub: Sub,
    atomic_max: Max,
    atomic_min: Min,
    atomic_and: And,
    atomic_or: Or,
    atomic_xor: Xor,
    atomic_nand: Nand,
);

/// `AtomicValue.load()` (`METH_NOARGS`).
unsafe extern "C" fn atomic_load(
    slf: *mut ffi::PyObject,
    _: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: as `atomic_o!`'s functions.
    unsafe {
        entry(ptr::null_mut(), |py| {
            let none = py.None().into_bound(py);
            Ok(with_this(py, slf, |v: &PyAtomicValue| v.op(py, Op::Load, &none))?.into_ptr())
        })
    }
}

/// The getter of `AtomicValue.value`: `load()`.
unsafe extern "C" fn atomic_value_get(
    slf: *mut ffi::PyObject,
    _: *mut c_void,
) -> *mut ffi::PyObject {
    // SAFETY: as `atomic_o!`'s functions (a getset descriptor).
    unsafe { atomic_load(slf, ptr::null_mut()) }
}

/// The setter of `AtomicValue.value`: `store()` (`value` null: `del`).
unsafe extern "C" fn atomic_value_set(
    slf: *mut ffi::PyObject,
    value: *mut ffi::PyObject,
    _: *mut c_void,
) -> c_int {
    if value.is_null() {
        // SAFETY: called by CPython with the GIL held.
        return unsafe {
            entry(-1, |_| {
                Err(PyAttributeError::new_err("can't delete attribute"))
            })
        };
    }
    // SAFETY: as `atomic_o!`'s functions (a getset descriptor).
    let r = unsafe { atomic_store(slf, value) };
    if r.is_null() {
        -1
    } else {
        // SAFETY: `r` is the new reference `atomic_store` returned (None).
        unsafe { ffi::Py_DecRef(r) };
        0
    }
}

/// Replaces the one-call methods of `AtomicValue`.
fn install_atomic(py: Python<'_>) -> PyResult<()> {
    let one: [(&'static CStr, ffi::PyCFunction); 10] = [
        (c"store", atomic_store),
        (c"swap", atomic_swap),
        (c"fetch_add", atomic_add),
        (c"fetch_sub", atomic_sub),
        (c"fetch_max", atomic_max),
        (c"fetch_min", atomic_min),
        (c"fetch_and", atomic_and),
        (c"fetch_or", atomic_or),
        (c"fetch_xor", atomic_xor),
        (c"fetch_nand", atomic_nand),
    ];
    let methods = one
        .into_iter()
        .map(|(name, f)| (name, f, ffi::METH_O))
        .chain([(c"load", atomic_load as ffi::PyCFunction, ffi::METH_NOARGS)]);
    for (name, f, flags) in methods {
        method::<PyAtomicValue>(
            py,
            name,
            ffi::PyMethodDefPointer { PyCFunction: f },
            flags,
            c"",
        )?;
    }
    getset::<PyAtomicValue>(
        py,
        c"value",
        atomic_value_get,
        atomic_value_set,
        c"`load()` / `store()`.",
    )
}

/// Leaks `x`: the definitions a descriptor points to live as long as the
/// process (a module's are static in C).
fn leak<X>(x: X) -> *mut X {
    Box::into_raw(Box::new(x))
}

/// Sets `name` of `T`'s type to `descr` (a new reference, or null with an
/// exception set).
fn set<T: PyTypeInfo>(py: Python<'_>, name: &CStr, descr: *mut ffi::PyObject) -> PyResult<()> {
    // SAFETY: `descr` is the owned result of a descriptor constructor.
    let d = unsafe { Bound::from_owned_ptr_or_err(py, descr) }?;
    T::type_object(py).setattr(name.to_str().unwrap_or_default(), d)
}

/// Sets method `name` of `T`'s type: `meth` called as `flags` say.
fn method<T: PyTypeInfo>(
    py: Python<'_>,
    name: &'static CStr,
    meth: ffi::PyMethodDefPointer,
    flags: c_int,
    doc: &'static CStr,
) -> PyResult<()> {
    let def = leak(ffi::PyMethodDef {
        ml_name: name.as_ptr(),
        ml_meth: meth,
        ml_flags: flags,
        ml_doc: doc.as_ptr(),
    });
    // SAFETY: the type object is alive (held by PyO3's type cache); the
    // definition is leaked, so it outlives the descriptor.
    set::<T>(py, name, unsafe {
        ffi::PyDescr_NewMethod(T::type_object(py).as_type_ptr(), def)
    })
}

/// Sets the attribute `name` of `T`'s type to a getter and setter.
fn getset<T: PyTypeInfo>(
    py: Python<'_>,
    name: &'static CStr,
    get: ffi::getter,
    set_: ffi::setter,
    doc: &'static CStr,
) -> PyResult<()> {
    let def = leak(ffi::PyGetSetDef {
        name: name.as_ptr(),
        get: Some(get),
        set: Some(set_),
        doc: doc.as_ptr(),
        closure: ptr::null_mut(),
    });
    // SAFETY: as in `method`.
    set::<T>(py, name, unsafe {
        ffi::PyDescr_NewGetSet(T::type_object(py).as_type_ptr(), def)
    })
}

/// Replaces `acquire`, `release`, `__enter__` and `__exit__` of `T`.
fn install_with<T>(py: Python<'_>, fastcall: bool) -> PyResult<()>
where
    T: Guarded + PyClass<Frozen = pyo3::pyclass::boolean_struct::True>,
{
    let exit = if fastcall {
        // SAFETY: CPython calls an `ml_meth` through the type its
        // `ml_flags` name (`METH_FASTCALL`: `_PyCFunctionFast`, the
        // signature of `exit_fast`); the union's field only carries the
        // pointer (C code casts it the same way).
        let f = unsafe {
            std::mem::transmute::<
                unsafe extern "C" fn(
                    *mut ffi::PyObject,
                    *const *mut ffi::PyObject,
                    ffi::Py_ssize_t,
                ) -> *mut ffi::PyObject,
                ffi::PyCFunction,
            >(exit_fast::<T>)
        };
        (f, METH_FASTCALL)
    } else {
        (exit_args::<T> as ffi::PyCFunction, ffi::METH_VARARGS)
    };
    let one = |f: ffi::PyCFunction| ffi::PyMethodDefPointer { PyCFunction: f };
    method::<T>(
        py,
        c"acquire",
        ffi::PyMethodDefPointer {
            PyCFunctionWithKeywords: acquire::<T>,
        },
        ffi::METH_VARARGS | ffi::METH_KEYWORDS,
        c"acquire(block=True, timeout=None) -> bool: acquires the lock; block=False tries \
          once, timeout (seconds; None or negative: forever) bounds the wait. Raises \
          OwnerDiedError holding the lock if its previous owner died holding it (repair, \
          mark_consistent(), release()), NotRecoverableError, and DeadlockError for a \
          blocking acquire of a Lock this thread holds.",
    )?;
    method::<T>(
        py,
        c"release",
        one(release::<T>),
        ffi::METH_NOARGS,
        c"Releases one hold of the calling thread.",
    )?;
    method::<T>(
        py,
        c"__enter__",
        one(enter::<T>),
        ffi::METH_NOARGS,
        c"with: acquires (blocking); an owner's death is raised as OwnerDiedError after \
          releasing the lock unrepaired, so a with block never runs on unrepaired data.",
    )?;
    method::<T>(py, c"__exit__", one(exit.0), exit.1, c"Releases the lock.")
}

/// Installs the fast descriptors on the classes (after they are made).
pub(crate) fn install(py: Python<'_>) -> PyResult<()> {
    let fastcall = py.version_info() >= (3, 10);
    install_with::<PyRLock>(py, fastcall)?;
    install_with::<PyLock>(py, fastcall)?;
    install_with::<Synchronized>(py, fastcall)?;
    install_with::<crate::array::SynchronizedArray>(py, fastcall)?;
    let get_lock_doc = c"The lock protecting the object (an `RLock`).";
    let get_lock_s = ffi::PyMethodDefPointer {
        PyCFunction: get_lock::<Synchronized>,
    };
    method::<Synchronized>(py, c"get_lock", get_lock_s, ffi::METH_NOARGS, get_lock_doc)?;
    let get_lock_a = ffi::PyMethodDefPointer {
        PyCFunction: get_lock::<crate::array::SynchronizedArray>,
    };
    method::<crate::array::SynchronizedArray>(
        py,
        c"get_lock",
        get_lock_a,
        ffi::METH_NOARGS,
        get_lock_doc,
    )?;
    getset::<Synchronized>(
        py,
        c"value",
        value_get,
        value_set,
        c"The value, read and written under its lock (without taking it again while this \
          thread holds it).",
    )?;
    install_atomic(py)
}
