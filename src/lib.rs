//! Typed shared memory between processes, done right.
//!
//! shmsync gives Rust the API of Python's `multiprocessing` shared objects
//! — [`Value`], [`RawValue`], [`Array`], [`RawArray`], [`Lock`], [`RLock`],
//! [`Event`], [`Semaphore`], [`BoundedSemaphore`], [`Condition`],
//! [`Barrier`], the [`Pipe`] and raw [`SharedMemory`] — plus a lock-free
//! mode ([`AtomicValue`], [`AtomicArray`]), without Python's weak points:
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
//! Linux only; MSRV Rust 1.82.
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
//!
//! Every object is `Send + Sync` and can be created anonymous (`new`,
//! `zeroed`, `from_slice`: a sealed memfd), named (`create`: `/dev/shm/NAME`,
//! `O_EXCL`, mode 0600), opened by name (`open`), inherited across `fork`, or
//! passed as a file descriptor ([`AsFd`](std::os::fd::AsFd) / `from_fd`).
//! The handle that created a name unlinks it when dropped, in the creating
//! process only; `persist()` keeps it.
//!
//! # Guarantees
//!
//! - **Mutual exclusion across processes**, with happens-before between
//!   successive holders: the lock word is taken with `Acquire` and given
//!   back with `Release`. The lock's state machine is the same code that
//!   the repository's loom models and fuzzer check.
//! - **No undefined behaviour from peers.** Mapped memory is never turned
//!   into references: every access to a shared byte is an atomic load,
//!   store or read-modify-write. A segment is validated once, on `open`,
//!   against the file's real size and the requested type; bounds are never
//!   read again from shared memory. A wrong, truncated or garbage segment
//!   gives a typed [`Error`].
//! - **A dead owner never deadlocks the others.** The next locker gets
//!   [`LockError::OwnerDied`] (or [`TryLockError::OwnerDied`]) with the
//!   guard; it holds the lock, repairs the data and calls
//!   `mark_consistent()` on the guard, or the lock becomes
//!   [`LockError::NotRecoverable`] when released, as with POSIX robust
//!   mutexes. Deaths are detected by the kernel's robust list where it is
//!   proven to fit (64-bit glibc) and by per-thread liveness locks on the
//!   segment file everywhere, as the fallback and backstop ([`robustness`]).
//! - **No deadlock with yourself**: relocking a [`Lock`] that the thread
//!   holds is [`LockError::Deadlock`] (or [`TryLockError::Deadlock`]),
//!   never a hang.
//! - **Guards never alias**: they copy values in and out and never hand out
//!   `&T` or `&mut T` (the [`RLock`] is recursive). Guards are `!Send`: a
//!   hold belongs to the thread whose kernel TID is in the lock word.
//! - **Fork-safe**: a child created by `fork` is a different owner; it cannot
//!   release or take over its parent's holds.
//! - **A hostile peer cannot crash a holder.** A process that can write a
//!   segment can break mutual exclusion of the locks it writes on, but
//!   nothing it writes makes a holder write outside the segment, panic, or
//!   release too early, too late or never: every thread counts its holds in
//!   its own memory, and robust-list links read back from a lock slot are
//!   used only where they agree with what the thread recorded itself.
//! - **Names are opened safely**: `create` makes the file with `O_EXCL` and
//!   mode 0600 whatever the umask; `open` never follows a symbolic link and
//!   refuses anything but a regular file ([`Error::InvalidName`]); `from_fd`
//!   refuses a memfd that is not sealed against shrinking
//!   ([`Error::InvalidArgument`]). A name left by a creator that died half
//!   way is reported as [`Error::Stale`] by `create` and removed with
//!   [`SharedMemory::unlink_name`].
//!
//! # Limits
//!
//! - Linux only (futexes, memfd, `/dev/shm`, open-file-description locks).
//! - A peer that truncates a *named* segment's file (`ftruncate` on
//!   `/dev/shm/NAME`) makes later accesses fault with `SIGBUS`: POSIX shared
//!   memory objects cannot be sealed. Anonymous segments are sealed against
//!   shrinking and growing.
//! - A peer that writes garbage into a lock word can break mutual exclusion
//!   for that lock (never memory safety): lock words are shared by design.
//!   A word that names the calling thread while it holds no guard is taken
//!   over as `OwnerDied` (a dead thread whose TID was reused, or a forgery).
//! - The kernel's walk of a dying thread's robust list reads the links in
//!   the pages: a peer that rewrites a held lock's links can make it miss
//!   entries (our locks are then recovered by the liveness backstop, glibc
//!   robust mutexes behind them are not).
//! - Raw types ([`RawValue`], [`RawArray`]) and unlocked access lose
//!   racing updates, as in Python (but are never undefined behaviour).
//! - The kernel walks at most 2048 robust-list entries per thread (shared
//!   with glibc), and glibc's small unlock window (between releasing the
//!   word and clearing the thread's pending-operation slot) remains, as for
//!   glibc's own robust mutexes.
//! - `mem::forget` of a guard keeps the lock held for good; the object's
//!   mapping is then kept (leaked) when the thread that forgot it drops the
//!   last handle, so that its robust list never points at unmapped memory.
//!   Dropping that last handle on *another* thread unmaps it: don't.
//! - A thread may hold any number of locks; past 16 at once its records of
//!   them move to the heap, and each acquire and release searches them.
//! - File descriptors: an object with its own lock costs two (its file and
//!   the process's liveness description of it), one more handle on the
//!   same file one, an object without a lock one.
//! - On the fallback path a dead owner is noticed by waiters that poll
//!   (within about 8 ms); a lock word naming a thread that holds no
//!   liveness lock (for instance a word forged by a peer) counts as a dead
//!   owner; and a dead owner whose TID is reused by a new thread sharing
//!   the segment before any waiter looked appears alive until that thread
//!   ends. PIDs are never used to judge liveness (PID namespaces).
//! - A [`Pipe`] costs three descriptors in a process that has both ends
//!   (the file, the process's liveness description, one description per
//!   [`Connection`]); a dead peer is noticed by a waiting receive or send
//!   within about 50 ms, but a send that finds room does not look, so a
//!   ring's worth of messages can go to a reader that has died; an end
//!   that was never used counts as closed once no process holds a handle
//!   of it.
//! - A [`Semaphore`]'s permits are recoverable for [`HOLDER_CAPACITY`]
//!   holding threads at once (beyond, [`Permit::is_recorded`] is false and
//!   a permit dies with its holder); a holder killed between the count and
//!   its record loses one permit for good.
//! - Timeouts are relative (`CLOCK_MONOTONIC`).
//!
//! The repository's `docs/` describe the design (`ARCHITECTURE.md`), the
//! owner-death protocol (`ROBUST.md`) and the benchmarks (`BENCHMARKS.md`).
#![cfg_attr(loom, allow(dead_code, unreachable_pub))]
#![doc(test(attr(deny(warnings))))]
// `unsafe` is allowed module by module, each saying why (`docs/STYLE.md`).
#![deny(unsafe_code)]

#[cfg(not(target_os = "linux"))]
compile_error!("shmsync supports Linux only (futexes, memfd, /dev/shm)");

mod atomic;
mod error;
pub mod inspect;
mod queue;
// The state machines, public for the repository's loom models, fuzzer,
// tests and benches only: hidden from the documentation and exempt from
// semver (a cargo feature would have to be enabled by each of them, and
// `cargo bench` would skip the bench that needs it).
#[doc(hidden)]
pub mod raw;
mod shared;
mod shm;
mod sync;
mod sys;
mod typed;

pub use atomic::{
    AtomicArray, AtomicBitwise, AtomicElement, AtomicNumber, AtomicRef, AtomicValue, CACHE_LINE,
};
pub use bytemuck;
pub use error::{Error, Result};
pub use queue::{Connection, End, MessageQueue, Pipe, Queue};
pub use shm::segment::SharedMemory;
pub use sync::{
    Barrier, BarrierError, BarrierWaitResult, BoundedSemaphore, Condition, ConditionLock, Event,
    Lock, LockError, LockGuard, Permit, RLock, RLockGuard, Semaphore, TryLockError,
    WaitTimeoutLockResult, WaitTimeoutResult, HOLDER_CAPACITY,
};
pub use sys::robust::Robustness;
pub use typed::{
    Array, ArrayGuard, CChar, CLong, CULong, Element, RawArray, RawValue, Value, ValueGuard, WChar,
};

/// How this process detects that a lock's owner died: the kernel's robust
/// list ([`Robustness::KernelList`], on 64-bit glibc where the list is
/// proven to fit) or liveness bytes probed by waiters
/// ([`Robustness::Fallback`]; forced with the environment variable
/// `SHMSYNC_ROBUST=fallback`, read once per process).
///
/// ```
/// println!("owner-death detection: {:?}", shmsync::robustness());
/// ```
pub fn robustness() -> Robustness {
    sys::robust::mode()
}

/// The README's Rust blocks, compiled and run as doctests so that the API
/// tour cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
