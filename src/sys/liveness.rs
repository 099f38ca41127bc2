//! Owner liveness tokens: the fallback (and backstop) owner-death detector.
//!
//! Each process that locks a lock in a segment holds a *token* on that
//! segment's file: an open-file-description lock (`F_OFD_SETLK`, not a
//! classic `fcntl` lock, which any `close` of the file would drop) on one
//! byte at `TOKEN_BASE + t`, far past the data. `t` comes from a counter in
//! the segment's header and is never handed out twice, which is what the
//! "generation" protects against: a new process cannot inherit a dead one's
//! token. The kernel drops the lock when the owning process dies (its last
//! descriptor of that open file description closes).
//!
//! A lock's owner publishes `tid << 32 | t` in the slot while it holds the
//! lock; a waiter that sleeps in timed waits asks `F_OFD_GETLK` whether the
//! byte is still locked. Unlocked means the owner process is gone.
//!
//! The token lives on a descriptor of its own (re-opened through
//! `/proc/self/fd`, so a new open file description), and a forked child
//! closes its inherited copies at once (the atfork handler below): the
//! child must not keep its parent's token alive, and takes its own token
//! when it first locks.
//!
//! PIDs are deliberately not used (`kill(pid, 0)` across PID namespaces
//! can call a live owner dead; `shared/ROBUST.md`), except for threads of
//! our own process, where `tgkill(getpid(), tid, 0)` is exact.

use core::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::sync::Mutex;

/// First token byte: far beyond any segment's data.
const TOKEN_BASE: i64 = 1 << 40;

/// Incremented in every forked child: tokens taken before are not ours.
static FORK_GEN: AtomicU32 = AtomicU32::new(0);

/// Descriptors holding tokens, closed in a forked child (async-signal-safe:
/// atomics and `close` only). -1 = free entry.
const MAX_TOKEN_FDS: usize = 1024;
static TOKEN_FDS: [AtomicI32; MAX_TOKEN_FDS] = [const { AtomicI32::new(-1) }; MAX_TOKEN_FDS];

/// The atfork child handler's part: drop the parent's tokens.
pub(crate) fn forget_in_child() {
    // Relaxed: the child has a single thread at this point.
    FORK_GEN.fetch_add(1, Relaxed);
    for slot in &TOKEN_FDS {
        let fd = slot.swap(-1, Relaxed);
        if fd >= 0 {
            // SAFETY: `fd` was registered by `Token::take` and is closed
            // only here (or in `Token::drop`, which first takes it out of
            // the table with the same swap).
            unsafe { libc::close(fd) };
        }
    }
}

/// One process's token on one segment file.
#[derive(Debug, Default)]
pub(crate) struct Token {
    /// `(fork generation + 1) << 32 | t`; 0 = none yet.
    fast: AtomicU64,
    /// Serialises taking the token; holds the table index of its fd.
    slow: Mutex<Option<usize>>,
}

impl Token {
    /// This process's token number, taking one on first use.
    /// `None` if no token can be had (no `/proc`, table full, ...): owners
    /// then publish no token, and waiters on the fallback path cannot
    /// recover from their death (the kernel list still can).
    #[inline]
    pub(crate) fn get(&self, file: BorrowedFd<'_>, counter: &AtomicU32) -> Option<u32> {
        // Relaxed: FORK_GEN changes only in a single-threaded child.
        let gen = u64::from(FORK_GEN.load(Relaxed)) + 1;
        // Relaxed: written under `slow` by this process; a stale read just
        // takes the slow path.
        let f = self.fast.load(Relaxed);
        if f >> 32 == gen {
            return Some(f as u32);
        }
        self.take(file, counter, gen)
    }

    /// This process's current token, without taking one.
    pub(crate) fn current(&self) -> Option<u32> {
        let gen = u64::from(FORK_GEN.load(Relaxed)) + 1;
        let f = self.fast.load(Relaxed);
        (f >> 32 == gen).then_some(f as u32)
    }

    #[cold]
    fn take(&self, file: BorrowedFd<'_>, counter: &AtomicU32, gen: u64) -> Option<u32> {
        let mut slow = self
            .slow
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let f = self.fast.load(Relaxed);
        if f >> 32 == gen {
            return Some(f as u32);
        }
        // A token from before a fork was closed by `forget_in_child`,
        // which also freed its table entry: just forget the index.
        *slow = None;
        let fd = reopen(file)?;
        for _ in 0..64 {
            // Relaxed: uniqueness comes from the RMW itself.
            let t = counter.fetch_add(1, Relaxed);
            // u32::MAX marks kernel-list owners (`sync::lock::KERNEL_LIST`).
            if t != u32::MAX && set_lock(fd, t) {
                let Some(i) = register(fd) else { break };
                *slow = Some(i);
                self.fast.store(gen << 32 | u64::from(t), Relaxed);
                return Some(t);
            }
        }
        // SAFETY: `fd` was opened by `reopen` and never registered.
        unsafe { libc::close(fd) };
        None
    }
}

impl Drop for Token {
    fn drop(&mut self) {
        let gen = u64::from(FORK_GEN.load(Relaxed)) + 1;
        let slow = self.slow.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = slow.take() {
            if self.fast.load(Relaxed) >> 32 == gen {
                release(i);
            }
        }
    }
}

fn register(fd: RawFd) -> Option<usize> {
    TOKEN_FDS
        .iter()
        .position(|s| s.compare_exchange(-1, fd, Relaxed, Relaxed).is_ok())
}

fn release(i: usize) {
    let fd = TOKEN_FDS[i].swap(-1, Relaxed);
    if fd >= 0 {
        // SAFETY: taken out of the table by this swap: closed exactly once.
        unsafe { libc::close(fd) };
    }
}

/// A new open file description of the same file.
fn reopen(file: BorrowedFd<'_>) -> Option<RawFd> {
    let path = format!("/proc/self/fd/{}\0", file.as_raw_fd());
    // SAFETY: NUL-terminated path; the result is checked.
    let fd = unsafe { libc::open(path.as_ptr().cast(), libc::O_RDWR | libc::O_CLOEXEC) };
    (fd >= 0).then_some(fd)
}

fn flock(ty: libc::c_short, t: u32) -> libc::flock {
    // SAFETY: `flock` is plain data; all-zero is a valid value.
    let mut fl: libc::flock = unsafe { core::mem::zeroed() };
    fl.l_type = ty;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = TOKEN_BASE + i64::from(t);
    fl.l_len = 1;
    fl
}

fn set_lock(fd: RawFd, t: u32) -> bool {
    let fl = flock(libc::F_WRLCK as libc::c_short, t);
    // SAFETY: F_OFD_SETLK reads one valid `struct flock`.
    unsafe { libc::fcntl(fd, libc::F_OFD_SETLK, &fl) == 0 }
}

/// Whether token `t` is still held by some open file description other
/// than `probe`'s. `None` if the kernel would not say.
pub(crate) fn token_held(probe: BorrowedFd<'_>, t: u32) -> Option<bool> {
    let mut fl = flock(libc::F_WRLCK as libc::c_short, t);
    // SAFETY: F_OFD_GETLK reads and writes one valid `struct flock`.
    let rc = unsafe { libc::fcntl(probe.as_raw_fd(), libc::F_OFD_GETLK, &mut fl) };
    (rc == 0).then_some(fl.l_type != libc::F_UNLCK as libc::c_short)
}

/// Whether thread `tid` of this process is alive.
pub(crate) fn own_thread_alive(tid: u32) -> bool {
    // SAFETY: tgkill with signal 0 only checks existence and permission.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_tgkill,
            libc::c_long::from(libc::getpid()),
            libc::c_long::from(tid as i32),
            0 as libc::c_long,
        )
    };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}
