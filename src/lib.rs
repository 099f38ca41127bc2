//! Typed shared memory between processes, done right.
//!
//! shmsync gives Rust the API of Python's `multiprocessing` shared objects
//! — [`Value`], [`RawValue`], [`Array`], [`RawArray`], [`Lock`], [`RLock`]
//! and raw [`SharedMemory`] — plus a lock-free mode ([`AtomicValue`],
//! [`AtomicArray`]), without Python's weak points:
//!
//! - the locks are futex mutexes **inside the mapped page**: no semaphore,
//!   no kernel object, no server process;
//! - a segment written by another process (possibly a buggy or hostile
//!   one) is validated once on `open` and then accessed only through
//!   atomics, so it can give a typed [`Error`] but never undefined
//!   behaviour;
//! - a lock whose owner dies (SIGKILL, thread exit, `execve`) is handed to
//!   the next locker as [`LockError::OwnerDied`], never left held forever
//!   ([`robustness`] tells how this process detects it);
//! - [`Value::update`] is an atomic read-modify-write, and
//!   [`AtomicValue::fetch_add`] needs no lock at all, floats included.
//!
//! Linux only. See the README for the guarantees and limits.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use shmsync::Value;
//! let name = format!("doc_counter_{}", std::process::id());
//! let counter = Value::<u64>::create(&name, 0)?;   // unlinked on drop
//! let other = Value::<u64>::open(&name)?;         // e.g. in another process
//! other.update(|n| n + 1).unwrap();
//! assert_eq!(counter.get().unwrap(), 1);
//! # Ok(()) }
//! ```
#![cfg_attr(loom, allow(dead_code, unreachable_pub))]
#![doc(test(attr(deny(warnings))))]

#[cfg(not(target_os = "linux"))]
compile_error!("shmsync supports Linux only (futexes, memfd, /dev/shm)");

mod array;
mod atomic;
mod element;
mod error;
pub mod raw;
mod shm;
mod sync;
mod sys;
mod typed;
mod value;

pub use array::{Array, ArrayGuard, RawArray};
pub use atomic::{
    AtomicArray, AtomicBitwise, AtomicElement, AtomicNumber, AtomicRef, AtomicValue, CACHE_LINE,
};
pub use bytemuck;
pub use element::{CChar, CLong, CULong, Element, WChar};
pub use error::{Errno, Error, Result};
pub use shm::segment::SharedMemory;
pub use sync::{Lock, LockError, LockGuard, RLock, RLockGuard, TryLockError};
pub use sys::robust::Robustness;
pub use value::{RawValue, Value, ValueGuard};

/// How this process detects that a lock's owner died: the kernel's robust
/// list ([`Robustness::KernelList`], on 64-bit glibc where the list is
/// proven to fit) or liveness tokens probed by waiters
/// ([`Robustness::Fallback`]; forced with the environment variable
/// `SHMSYNC_ROBUST=fallback`, read once per process).
///
/// ```
/// println!("owner-death detection: {:?}", shmsync::robustness());
/// ```
pub fn robustness() -> Robustness {
    sys::robust::mode()
}
