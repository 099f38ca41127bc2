#![allow(unsafe_code)] // `pthread_atfork` through libc
//! Thread identity: the kernel TID, cached per thread and forgotten in a
//! forked child.
//!
//! A lock's owner is the kernel TID, the only identity that is unique across
//! processes and that the kernel's robust-futex walk understands. Reading it
//! costs a system call, so each thread caches it; a child created by
//! `fork(2)` inherits the parent thread's cache but is a different thread,
//! so a `pthread_atfork` child handler clears the cache (without that, a
//! child's locks would carry its parent's TID: `docs/ROBUST.md`).

use core::cell::Cell;
use core::num::NonZeroU32;
use std::sync::Once;

thread_local! {
    /// The TID, 0 while not known (new thread, or just forked).
    static TID: Cell<u32> = const { Cell::new(0) };
}

static ATFORK: Once = Once::new();

extern "C" fn forget_tid_in_child() {
    // Runs in the child right after fork, in the only thread there. The
    // const-initialised thread local has no destructor and no lazy
    // registration, so this is a plain store (async-signal-safe).
    TID.with(|t| t.set(0));
    super::robust::forget_in_child();
    super::liveness::forget_in_child();
}

/// The calling thread's kernel TID.
#[inline]
pub(crate) fn tid() -> NonZeroU32 {
    match NonZeroU32::new(TID.with(Cell::get)) {
        Some(id) => id,
        None => tid_slow(),
    }
}

#[cold]
fn tid_slow() -> NonZeroU32 {
    ATFORK.call_once(|| {
        // SAFETY: registering a handler is always sound; the handler only
        // stores to const-initialised thread locals.
        let rc = unsafe { libc::pthread_atfork(None, None, Some(forget_tid_in_child)) };
        assert_eq!(rc, 0, "pthread_atfork failed");
    });
    let raw = rustix::thread::gettid().as_raw_nonzero();
    // The kernel's TIDs are positive and below 2^22 (`PID_MAX_LIMIT`),
    // so they fit the word's 30 bits.
    let t = raw.get().unsigned_abs() & crate::raw::TID_MASK;
    TID.with(|c| c.set(t));
    NonZeroU32::new(t).unwrap_or(NonZeroU32::MIN)
}

/// The calling process's PID.
pub(crate) fn pid() -> u32 {
    rustix::process::getpid()
        .as_raw_nonzero()
        .get()
        .unsigned_abs()
}

/// When process `pid` started, in clock ticks after boot (field 22 of
/// `/proc/PID/stat`): with the PID, an identity that PID reuse does not
/// repeat. `None` if there is no such process (or no `/proc`).
pub(crate) fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses,
    // so the fields are counted from the last ')'; starttime is the 20th
    // after it.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// [`start_time`] of the calling process, read from `/proc` once per
/// process (a forked child has another PID and reads its own): what every
/// `create` records in the header. 0 if unknown.
pub(crate) fn own_start_time() -> u64 {
    use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
    static PID: AtomicU32 = AtomicU32::new(0);
    static START: AtomicU64 = AtomicU64::new(0);
    let me = pid();
    // Acquire: pairs with the Release store of PID below, so START is
    // this process's value once PID names it. Two threads racing both
    // read `/proc` and store the same value.
    if PID.load(Ordering::Acquire) == me {
        return START.load(Ordering::Relaxed);
    }
    let t = start_time(me).unwrap_or(0);
    // Relaxed: published by the Release store of PID.
    START.store(t, Ordering::Relaxed);
    PID.store(me, Ordering::Release);
    t
}

/// Sleeps the calling thread briefly (the bounded wait for a creator).
pub(crate) fn nap(d: core::time::Duration) {
    std::thread::sleep(d);
}
