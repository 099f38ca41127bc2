//! `Pipe(duplex=True)` and `Connection`: multiprocessing's
//! `send_bytes`/`recv_bytes`/`recv_bytes_into`/`poll`/`close` and
//! `send(obj)`/`recv()` (pickled with multiprocessing's `ForkingPickler`),
//! `EOFError` once the other end is closed or dead; and `MessageQueue`, a
//! byte-message queue (`send`/`recv` with timeouts, `close`).
//!
//! Blocking calls wait in slices with the GIL released and check for
//! signals between them (Ctrl-C): a message stays in its ring between two
//! slices, so nothing is lost. A `Connection` is behind a mutex (the
//! crate's takes `&mut self`), locked with the GIL released.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use pyo3::exceptions::{PyBrokenPipeError, PyEOFError, PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyBytes, PyTuple, PyType};
use shmsync::{End, Error};

use crate::errors::err;
use crate::handle;
use crate::wait::{self, SLICE};

/// The slice to wait next until `end` (`None`: forever); `None` once it
/// passed.
fn next_slice(end: Option<Instant>) -> Option<Duration> {
    match end {
        None => Some(SLICE),
        Some(end) => {
            let left = end.saturating_duration_since(Instant::now());
            (!left.is_zero()).then(|| left.min(SLICE))
        }
    }
}

/// The deadline of a Python timeout (`None`: none, also for a huge one).
fn deadline(timeout: Option<f64>) -> PyResult<Option<Instant>> {
    Ok(wait::timeout(timeout)?.and_then(|d| Instant::now().checked_add(d)))
}

static PICKLER: GILOnceCell<Py<PyType>> = GILOnceCell::new();
static BUFFER_TOO_SHORT: GILOnceCell<Py<PyType>> = GILOnceCell::new();

fn pickler(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    PICKLER.import(py, "multiprocessing.reduction", "ForkingPickler")
}

/// A pipe error as Python's: `EOFError` (receiving) or `BrokenPipeError`
/// (sending) for a gone peer, `OSError` for an end in use elsewhere.
fn pipe_err(e: Error, sending: bool) -> PyErr {
    match e {
        Error::Disconnected if sending => PyBrokenPipeError::new_err("the other end is closed"),
        Error::Disconnected => PyEOFError::new_err(()),
        Error::EndInUse => PyOSError::new_err(e.to_string()),
        Error::MessageTooLarge { .. } => PyValueError::new_err(e.to_string()),
        e => err(e),
    }
}

/// The bytes of a bytes-like object, `[offset, offset + size)` checked as
/// Python's `send_bytes` does.
fn message(obj: &Bound<'_, PyAny>, offset: i64, size: Option<i64>) -> PyResult<Vec<u8>> {
    let all: Vec<u8> = match obj.downcast::<PyBytes>() {
        Ok(b) => b.as_bytes().to_vec(),
        Err(_) => {
            let b = obj.py().get_type::<PyBytes>().call1((obj,))?;
            b.downcast::<PyBytes>()?.as_bytes().to_vec()
        }
    };
    let n = all.len() as i64;
    if offset < 0 {
        return Err(PyValueError::new_err("offset is negative"));
    }
    if n < offset {
        return Err(PyValueError::new_err("buffer length < offset"));
    }
    let size = match size {
        None => n - offset,
        Some(s) if s < 0 => return Err(PyValueError::new_err("size is negative")),
        Some(s) if offset + s > n => {
            return Err(PyValueError::new_err("buffer length < offset + size"))
        }
        Some(s) => s,
    };
    Ok(all[offset as usize..(offset + size) as usize].to_vec())
}

/// `shmsync.Connection`: one end of a `Pipe`.
#[pyclass(frozen, module = "shmsync", name = "Connection")]
pub(crate) struct PyConnection {
    c: Mutex<Option<shmsync::Connection>>,
    end: End,
    readable: bool,
    writable: bool,
}

impl PyConnection {
    fn wrap(c: shmsync::Connection) -> Self {
        let duplex = c.is_duplex();
        let end = c.end();
        PyConnection {
            c: Mutex::new(Some(c)),
            end,
            readable: duplex || end == End::A,
            writable: duplex || end == End::B,
        }
    }

    /// Runs `f` on the open connection with the GIL released.
    fn with<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut shmsync::Connection) -> T + Send,
    ) -> PyResult<T> {
        let m = &self.c;
        py.allow_threads(move || {
            let mut g = m.lock().unwrap_or_else(|p| p.into_inner());
            g.as_mut().map(f)
        })
        .ok_or_else(|| PyOSError::new_err("handle is closed"))
    }

    fn send_vec(&self, py: Python<'_>, msg: Vec<u8>) -> PyResult<()> {
        if !self.writable {
            return Err(PyOSError::new_err("connection is read-only"));
        }
        loop {
            let msg = &msg[..];
            match self.with(py, |c| c.send_bytes_timeout(msg, SLICE))? {
                Ok(true) => return Ok(()),
                Ok(false) => py.check_signals()?,
                Err(e) => return Err(pipe_err(e, true)),
            }
        }
    }

    /// The next message (`None`: none before `end`).
    fn recv_vec(&self, py: Python<'_>, end: Option<Instant>) -> PyResult<Option<Vec<u8>>> {
        if !self.readable {
            return Err(PyOSError::new_err("connection is write-only"));
        }
        if let Some(m) = self
            .with(py, |c| c.try_recv_bytes())?
            .map_err(|e| pipe_err(e, false))?
        {
            return Ok(Some(m));
        }
        loop {
            let Some(slice) = next_slice(end) else {
                return Ok(None);
            };
            match self.with(py, |c| c.recv_bytes_timeout(slice))? {
                Ok(Some(m)) => return Ok(Some(m)),
                Ok(None) => py.check_signals()?,
                Err(e) => return Err(pipe_err(e, false)),
            }
        }
    }
}

#[pymethods]
impl PyConnection {
    #[staticmethod]
    #[pyo3(signature = (name, fd, code, _len, _lock))]
    fn _attach(
        name: Option<&str>,
        fd: Option<i32>,
        code: Option<&str>,
        _len: usize,
        _lock: Option<PyObject>,
    ) -> PyResult<Self> {
        let end = match code {
            Some("A") => End::A,
            Some("B") => End::B,
            _ => return Err(PyValueError::new_err("not an end of a pipe")),
        };
        let c = match (name, fd) {
            (Some(n), _) => shmsync::Connection::open(n, end),
            (None, Some(fd)) => shmsync::Connection::from_fd(handle::owned_fd(fd)?, end),
            _ => return Err(PyValueError::new_err("a name or a descriptor is needed")),
        }
        .map_err(err)?;
        Ok(Self::wrap(c))
    }

    /// Opens end `end` (`"A"`, the first `Pipe` returns, or `"B"`) of
    /// the pipe created under `name`.
    #[staticmethod]
    fn open(name: &str, end: &str) -> PyResult<Self> {
        Self::_attach(Some(name), None, Some(end), 0, None)
    }

    /// Sends `buf[offset:offset + size]` (bytes-like) as one message.
    /// `ValueError` if longer than the pipe's capacity; `BrokenPipeError`
    /// if the other end is closed or dead.
    #[pyo3(signature = (buf, offset=0, size=None))]
    fn send_bytes(
        &self,
        py: Python<'_>,
        buf: &Bound<'_, PyAny>,
        offset: i64,
        size: Option<i64>,
    ) -> PyResult<()> {
        let m = message(buf, offset, size)?;
        self.send_vec(py, m)
    }

    /// Receives one message. `EOFError` once the other end is closed or
    /// dead and nothing is left; `OSError` for `maxlength` exceeded (the
    /// message is dropped, as Python's).
    #[pyo3(signature = (maxlength=None))]
    fn recv_bytes<'py>(
        &self,
        py: Python<'py>,
        maxlength: Option<i64>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        if maxlength.is_some_and(|m| m < 0) {
            return Err(PyValueError::new_err("negative maxlength"));
        }
        let m = self
            .recv_vec(py, None)?
            .ok_or_else(|| PyEOFError::new_err(()))?;
        if maxlength.is_some_and(|l| m.len() as i64 > l) {
            return Err(PyOSError::new_err("bad message length"));
        }
        Ok(PyBytes::new(py, &m))
    }

    /// Receives one message into the writable buffer `buf` at `offset`:
    /// its length. A message too long for it raises
    /// `multiprocessing.BufferTooShort` carrying the message, as Python's.
    #[pyo3(signature = (buf, offset=0))]
    fn recv_bytes_into(
        &self,
        py: Python<'_>,
        buf: &Bound<'_, PyAny>,
        offset: i64,
    ) -> PyResult<usize> {
        let view = py
            .import("builtins")?
            .getattr("memoryview")?
            .call1((buf,))?
            .call_method1("cast", ("B",))?;
        let n = view.len()? as i64;
        if offset < 0 {
            return Err(PyValueError::new_err("negative offset"));
        }
        if offset > n {
            return Err(PyValueError::new_err("offset too large"));
        }
        let m = self
            .recv_vec(py, None)?
            .ok_or_else(|| PyEOFError::new_err(()))?;
        if m.len() as i64 > n - offset {
            let t = BUFFER_TOO_SHORT.import(py, "multiprocessing", "BufferTooShort")?;
            return Err(PyErr::from_type(
                t.clone(),
                (PyBytes::new(py, &m).unbind(),),
            ));
        }
        let slice =
            pyo3::types::PySlice::new(py, offset as isize, (offset as usize + m.len()) as isize, 1);
        view.set_item(slice, PyBytes::new(py, &m))?;
        Ok(m.len())
    }

    /// Sends `obj` pickled (multiprocessing's `ForkingPickler`).
    fn send(&self, py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<()> {
        let b = pickler(py)?.call_method1("dumps", (obj,))?;
        self.send_bytes(py, &b, 0, None)
    }

    /// Receives and unpickles one object.
    fn recv(&self, py: Python<'_>) -> PyResult<PyObject> {
        let b = self.recv_bytes(py, None)?;
        Ok(pickler(py)?.call_method1("loads", (b,))?.unbind())
    }

    /// Whether a receive would not block (a message, or the other end
    /// gone), waiting at most `timeout` seconds (`None`: forever).
    #[pyo3(signature = (timeout=0.0))]
    fn poll(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        if !self.readable {
            return Err(PyOSError::new_err("connection is write-only"));
        }
        let end = deadline(timeout)?;
        if self
            .with(py, |c| c.poll(Duration::ZERO))?
            .map_err(|e| pipe_err(e, false))?
        {
            return Ok(true);
        }
        loop {
            let Some(slice) = next_slice(end) else {
                return Ok(false);
            };
            if self
                .with(py, |c| c.poll(slice))?
                .map_err(|e| pipe_err(e, false))?
            {
                return Ok(true);
            }
            py.check_signals()?;
        }
    }

    /// Closes this end: the other end's receives drain, then raise
    /// `EOFError`.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let m = &self.c;
        let c = py.allow_threads(|| m.lock().unwrap_or_else(|p| p.into_inner()).take());
        if let Some(c) = c {
            c.close().map_err(err)?;
        }
        Ok(())
    }

    #[getter]
    fn closed(&self) -> bool {
        self.c.lock().map(|g| g.is_none()).unwrap_or(true)
    }

    #[getter]
    fn readable(&self) -> bool {
        self.readable
    }

    #[getter]
    fn writable(&self) -> bool {
        self.writable
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (_exc_type=None, _exc=None, _tb=None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let (name, fd) = self.with(py, |c| (c.name().map(str::to_owned), handle::raw_fd(&*c)))?;
        let code = match self.end {
            End::A => 'A',
            End::B => 'B',
        };
        handle::reduce(py, "Connection", name.as_deref(), fd, Some(code), 0, None)
    }

    fn __repr__(&self) -> String {
        format!("<shmsync.Connection end={:?}>", self.end)
    }
}

/// `Pipe(duplex=True, *, capacity=1 MiB, name=None)`: two connected
/// `Connection`s; with `duplex=False`, `(receiver, sender)`. Messages of
/// at most `capacity` bytes.
#[pyfunction]
#[pyo3(name = "Pipe", signature = (duplex=true, *, capacity=1 << 20, name=None))]
fn pipe(
    duplex: bool,
    capacity: usize,
    name: Option<&str>,
) -> PyResult<(PyConnection, PyConnection)> {
    let (a, b) = match (duplex, name) {
        (true, None) => shmsync::Pipe::new(capacity),
        (false, None) => shmsync::Pipe::simplex(capacity),
        (true, Some(n)) => shmsync::Pipe::create(n, capacity),
        (false, Some(n)) => shmsync::Pipe::create_simplex(n, capacity),
    }
    .map_err(err)?;
    Ok((PyConnection::wrap(a), PyConnection::wrap(b)))
}

/// `shmsync.MessageQueue`: a queue of byte messages between processes.
#[pyclass(frozen, module = "shmsync", name = "MessageQueue")]
pub(crate) struct PyMessageQueue {
    q: shmsync::MessageQueue,
}

fn queue_err(py: Python<'_>, e: Error) -> PyErr {
    let q = |class: &str| -> PyErr {
        match py.import("queue").and_then(|m| m.getattr(class)) {
            Ok(t) => match t.downcast_into::<PyType>() {
                Ok(t) => PyErr::from_type(t, ()),
                Err(e) => e.into(),
            },
            Err(e) => e,
        }
    };
    match e {
        Error::Full => q("Full"),
        Error::Empty => q("Empty"),
        Error::Closed => PyEOFError::new_err("the queue is closed"),
        Error::MessageTooLarge { .. } => PyValueError::new_err(e.to_string()),
        e => err(e),
    }
}

#[pymethods]
impl PyMessageQueue {
    /// Room for `maxsize` messages of at most `max_message` bytes each;
    /// anonymous, or named `name`.
    #[new]
    #[pyo3(signature = (maxsize, max_message, *, name=None))]
    fn new(maxsize: usize, max_message: usize, name: Option<&str>) -> PyResult<Self> {
        Ok(PyMessageQueue {
            q: match name {
                None => shmsync::MessageQueue::new(maxsize, max_message),
                Some(n) => shmsync::MessageQueue::create(n, maxsize, max_message),
            }
            .map_err(err)?,
        })
    }

    #[staticmethod]
    fn open(name: &str) -> PyResult<Self> {
        Ok(PyMessageQueue {
            q: shmsync::MessageQueue::open(name).map_err(err)?,
        })
    }

    #[staticmethod]
    #[pyo3(signature = (name, fd, _code, _len, _lock))]
    fn _attach(
        name: Option<&str>,
        fd: Option<i32>,
        _code: Option<&str>,
        _len: usize,
        _lock: Option<PyObject>,
    ) -> PyResult<Self> {
        match (name, fd) {
            (Some(n), _) => Self::open(n),
            (None, Some(fd)) => Ok(PyMessageQueue {
                q: shmsync::MessageQueue::from_fd(handle::owned_fd(fd)?).map_err(err)?,
            }),
            _ => Err(PyValueError::new_err("a name or a descriptor is needed")),
        }
    }

    /// Sends one message (bytes-like), waiting for room: `block=False` or
    /// `timeout` raise `queue.Full`; `EOFError` once closed; `ValueError`
    /// for a message longer than `max_message`.
    #[pyo3(signature = (msg, block=true, timeout=None))]
    fn send(
        &self,
        py: Python<'_>,
        msg: &Bound<'_, PyAny>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        let m = message(msg, 0, None)?;
        match self.q.try_send(&m) {
            Err(Error::Full) if block => {}
            r => return r.map_err(|e| queue_err(py, e)),
        }
        let end = deadline(timeout)?;
        let q = &self.q;
        loop {
            let Some(slice) = next_slice(end) else {
                return Err(queue_err(py, Error::Full));
            };
            match py.allow_threads(|| q.send_timeout(&m, slice)) {
                Err(Error::Full) => py.check_signals()?,
                r => return r.map_err(|e| queue_err(py, e)),
            }
        }
    }

    /// Receives one message, waiting for one: `block=False` or `timeout`
    /// raise `queue.Empty`; `EOFError` once closed and empty.
    #[pyo3(signature = (block=true, timeout=None))]
    fn recv<'py>(
        &self,
        py: Python<'py>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let r = match self.q.try_recv() {
            Err(Error::Empty) if block => {
                let end = deadline(timeout)?;
                let q = &self.q;
                loop {
                    let Some(slice) = next_slice(end) else {
                        break Err(Error::Empty);
                    };
                    match py.allow_threads(|| q.recv_timeout(slice)) {
                        Err(Error::Empty) => py.check_signals()?,
                        r => break r,
                    }
                }
            }
            r => r,
        };
        r.map(|m| PyBytes::new(py, &m))
            .map_err(|e| queue_err(py, e))
    }

    /// Closes the queue: sends fail, receives drain it and then raise
    /// `EOFError`.
    fn close(&self) -> bool {
        self.q.close()
    }

    #[getter]
    fn closed(&self) -> bool {
        self.q.is_closed()
    }

    fn qsize(&self) -> usize {
        self.q.len()
    }

    fn empty(&self) -> bool {
        self.q.is_empty()
    }

    fn full(&self) -> bool {
        self.q.is_full()
    }

    #[getter]
    fn maxsize(&self) -> usize {
        self.q.capacity()
    }

    #[getter]
    fn max_message(&self) -> usize {
        self.q.max_size()
    }

    #[getter]
    fn name(&self) -> Option<String> {
        self.q.name().map(str::to_owned)
    }

    fn persist(&self) {
        self.q.persist();
    }

    fn unlink(&self) -> PyResult<()> {
        self.q.unlink().map_err(err)
    }

    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        handle::reduce(
            py,
            "MessageQueue",
            self.q.name(),
            handle::raw_fd(&self.q),
            None,
            0,
            None,
        )
    }

    fn __repr__(&self) -> String {
        format!(
            "<shmsync.MessageQueue {}/{}>",
            self.q.len(),
            self.q.capacity()
        )
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyConnection>()?;
    m.add_class::<PyMessageQueue>()?;
    m.add_function(wrap_pyfunction!(pipe, m)?)
}
