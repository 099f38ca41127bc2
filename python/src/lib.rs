//! `import shmsync`: the Python binding of the shmsync crate.
//!
//! One module per object kind, each registering its classes in
//! [`_shmsync`]: `lock.rs` (Lock, RLock), `value.rs` (Synchronized,
//! RawValue), `array.rs` (SynchronizedArray, RawArray; `buffer.rs` gives them
//! the buffer protocol on Python 3.11+), `atomic.rs`
//! (AtomicValue, AtomicArray), `event.rs` (Event), `condition.rs`
//! (Condition), `barrier.rs` (Barrier), `semaphore.rs`
//! (Semaphore, BoundedSemaphore), `pipe.rs` (Pipe, Connection,
//! MessageQueue). What they share:
//! `elem.rs` (type codes, Python <-> element conversions, the enums over
//! the element types), `wait.rs` (blocking with the GIL released and
//! signals checked; the thread's lock holds), `errors.rs` (crate errors as
//! Python exceptions), `handle.rs` (names, descriptors, pickling). A new
//! kind (Semaphore, Condition, ...) is one more module with a `register`
//! function called below, using `wait::block_on` for its blocking calls.
//!
//! The pure-Python package `shmsync` (python/shmsync/) wraps these with
//! multiprocessing's factory signatures.

mod array;
mod atomic;
mod barrier;
mod buffer;
mod condition;
mod elem;
mod errors;
mod event;
mod fast;
mod handle;
mod lock;
mod pipe;
mod semaphore;
mod value;
mod wait;

use pyo3::prelude::*;

/// The extension module `shmsync._shmsync`.
#[pymodule]
fn _shmsync(m: &Bound<'_, PyModule>) -> PyResult<()> {
    lock::register(m)?;
    value::register(m)?;
    array::register(m)?;
    atomic::register(m)?;
    event::register(m)?;
    condition::register(m)?;
    barrier::register(m)?;
    semaphore::register(m)?;
    pipe::register(m)?;
    handle::register(m)?;
    m.add_function(wrap_pyfunction!(wait::after_fork_child, m)?)?;
    fast::install(m.py())?;
    Ok(())
}
