#![cfg_attr(miri, allow(unsafe_code))] // under Miri, the wake is a raw `syscall`
//! The production word: `core`'s `AtomicU32` with the kernel's *shared*
//! futex (`futex(2)`, no `FUTEX_PRIVATE_FLAG`: waiters live in other
//! processes, and the kernel's owner-died wake is a shared wake).
//!
//! See <https://man7.org/linux/man-pages/man2/futex.2.html>.

use core::sync::atomic::AtomicU32;
use core::time::Duration;

use rustix::io::Errno;
use rustix::thread::futex;

use crate::raw::FutexWord;

/// The word is its own atomic: `AtomicU32`'s one implementation of
/// `AtomicWord` is the generic one of `src/raw/rmw.rs`.
impl FutexWord for AtomicU32 {
    type Atomic = AtomicU32;

    #[inline]
    fn new(v: u32) -> Self {
        AtomicU32::new(v)
    }

    #[inline(always)]
    fn atomic(&self) -> &AtomicU32 {
        self
    }

    /// Measured: `FutexWord::YIELD_LIMIT`'s docs.
    const YIELD_LIMIT: u32 = 10;

    #[inline]
    fn yield_now() {
        std::thread::yield_now();
    }

    fn wait(&self, expected: u32, timeout: Option<Duration>) {
        let ts = timeout.map(|t| futex::Timespec {
            tv_sec: t.as_secs().try_into().unwrap_or(i64::MAX),
            tv_nsec: t.subsec_nanos().into(),
        });
        // Shared futex: Flags::empty(), never Flags::PRIVATE.
        match futex::wait(self, futex::Flags::empty(), expected, ts.as_ref()) {
            // Woken, value changed, signal, timeout: the caller re-checks.
            Ok(()) | Err(Errno::AGAIN | Errno::INTR | Errno::TIMEDOUT) => {}
            // Anything else (EFAULT for a page a peer truncated away,
            // ...): treated as a spurious wake-up, after yielding so that
            // a persistent error cannot spin a CPU at full speed. Never a
            // panic: the word is in a peer-writable page.
            Err(_) => std::thread::yield_now(),
        }
    }

    #[inline]
    fn wake_one(&self) {
        wake(self, 1);
    }

    #[inline]
    fn wake_all(&self) {
        wake(self, i32::MAX as u32);
    }
}

/// Shared `FUTEX_WAKE` of up to `n` waiters.
#[inline]
fn wake(word: &AtomicU32, n: u32) {
    // Errors are impossible on a valid, aligned word; nothing to do if one
    // happened anyway (waiters re-check, and sleep in bounded waits).
    #[cfg(not(miri))]
    let _ = futex::wake(word, futex::Flags::empty(), n);
    // Under Miri, rustix's libc backend passes the unused timeout argument
    // as an integer cast to a pointer, which `-Zmiri-strict-provenance`
    // rejects; this is std's form of the same call.
    #[cfg(miri)]
    // SAFETY: `word` is a live, aligned AtomicU32; FUTEX_WAKE reads only the
    // first three arguments and writes no memory.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, n as i32);
    }
}
