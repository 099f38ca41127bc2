//! The production word: `core`'s `AtomicU32` with the kernel's *shared*
//! futex (`futex(2)`, no `FUTEX_PRIVATE_FLAG`: waiters live in other
//! processes, and the kernel's owner-died wake is a shared wake).
//!
//! See <https://man7.org/linux/man-pages/man2/futex.2.html>.

use core::sync::atomic::{AtomicU32, Ordering};
use core::time::Duration;

use rustix::io::Errno;
use rustix::thread::futex;

use crate::raw::{AtomicWord, FutexWord};

impl AtomicWord for AtomicU32 {
    #[inline]
    fn new(v: u32) -> Self {
        AtomicU32::new(v)
    }
    #[inline]
    fn load(&self, order: Ordering) -> u32 {
        AtomicU32::load(self, order)
    }
    #[inline]
    fn store(&self, v: u32, order: Ordering) {
        AtomicU32::store(self, v, order);
    }
    #[inline]
    fn swap(&self, v: u32, order: Ordering) -> u32 {
        AtomicU32::swap(self, v, order)
    }
    #[inline]
    fn compare_exchange(
        &self,
        current: u32,
        new: u32,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u32, u32> {
        AtomicU32::compare_exchange(self, current, new, success, failure)
    }
}

impl FutexWord for AtomicU32 {
    fn wait(&self, expected: u32, timeout: Option<Duration>) {
        let ts = timeout.map(|t| futex::Timespec {
            tv_sec: t.as_secs().try_into().unwrap_or(i64::MAX),
            tv_nsec: t.subsec_nanos().into(),
        });
        // Shared futex: Flags::empty(), never Flags::PRIVATE.
        match futex::wait(self, futex::Flags::empty(), expected, ts.as_ref()) {
            // Woken, value changed, signal, timeout: the caller re-checks.
            Ok(()) | Err(Errno::AGAIN | Errno::INTR | Errno::TIMEDOUT) => {}
            Err(e) => debug_assert!(false, "futex wait: {e}"),
        }
    }

    #[inline]
    fn wake_one(&self) {
        // Errors are impossible on a valid, aligned word; nothing to do if
        // one happened anyway (the waiter's timed or re-checked wait copes).
        let _ = futex::wake(self, futex::Flags::empty(), 1);
    }

    #[inline]
    fn wake_all(&self) {
        let _ = futex::wake(self, futex::Flags::empty(), i32::MAX as u32);
    }
}
