//! Thread identity: the kernel TID, cached per thread and forgotten in a
//! forked child.
//!
//! A lock's owner is the kernel TID, the only identity that is unique across
//! processes and that the kernel's robust-futex walk understands. Reading it
//! costs a system call, so each thread caches it; a child created by
//! `fork(2)` inherits the parent thread's cache but is a different thread,
//! so a `pthread_atfork` child handler clears the cache (without that, a
//! child's locks would carry its parent's TID: `shared/ROBUST.md`, pitfall 2).

use core::cell::Cell;
use core::num::NonZeroU32;
use std::sync::Once;

/// In the thread cache: the thread is the one that a `fork` copied into a
/// child (it may carry copies of its parent's guards). TIDs fit 30 bits.
const FORKED: u32 = 1 << 31;

thread_local! {
    /// The TID, 0 while not known (new thread, or just forked), with
    /// `FORKED` added in a forked child.
    static TID: Cell<u32> = const { Cell::new(0) };
}

static ATFORK: Once = Once::new();

extern "C" fn forget_tid_in_child() {
    // Runs in the child right after fork, in the only thread there. The
    // const-initialised thread local has no destructor and no lazy
    // registration, so this is a plain store (async-signal-safe).
    TID.with(|t| t.set(FORKED));
    super::robust::forget_in_child();
    super::liveness::forget_in_child();
}

/// The calling thread's kernel TID.
#[inline]
pub(crate) fn tid() -> NonZeroU32 {
    current().0
}

/// The calling thread's kernel TID, and whether the thread continues a
/// thread of a parent process in a child made by `fork`: only such a thread
/// can hold copies of guards that are not its own (guards are `!Send`, so
/// no other thread can). One thread-local load for both.
#[inline]
pub(crate) fn current() -> (NonZeroU32, bool) {
    let t = TID.with(Cell::get);
    match NonZeroU32::new(t & !FORKED) {
        Some(id) => (id, t & FORKED != 0),
        None => tid_slow(),
    }
}

#[cold]
fn tid_slow() -> (NonZeroU32, bool) {
    ATFORK.call_once(|| {
        // SAFETY: registering a handler is always sound; the handler only
        // stores to const-initialised thread locals.
        let rc = unsafe { libc::pthread_atfork(None, None, Some(forget_tid_in_child)) };
        assert_eq!(rc, 0, "pthread_atfork failed");
    });
    let raw = rustix::thread::gettid().as_raw_nonzero();
    let t = u32::try_from(raw.get()).expect("kernel TID is positive");
    debug_assert!(t < crate::raw::NOT_RECOVERABLE, "TID does not fit 30 bits");
    let forked = TID.with(Cell::get) & FORKED != 0;
    TID.with(|c| c.set(t | if forked { FORKED } else { 0 }));
    (NonZeroU32::new(t).expect("kernel TID is non-zero"), forked)
}

/// The calling process's PID.
pub(crate) fn pid() -> u32 {
    rustix::process::getpid()
        .as_raw_nonzero()
        .get()
        .unsigned_abs()
}

/// Sleeps the calling thread briefly (the bounded wait for a creator).
pub(crate) fn nap(d: core::time::Duration) {
    std::thread::sleep(d);
}
