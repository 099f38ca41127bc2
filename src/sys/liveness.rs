//! Owner liveness: the fallback (and backstop) owner-death detector.
//!
//! Liveness is keyed by the TID that the
//! lock word itself holds, so that there is no moment at which the word
//! names an owner that waiters cannot judge.
//!
//! Each process opens its own *description* of a segment file (re-opened
//! through `/proc/self/fd`, close-on-exec, closed in a forked child) and,
//! before a thread's first acquire on that segment, takes an
//! open-file-description lock (`F_OFD_SETLK`) on byte `TID_BASE + tid` of
//! it. The byte is held until the thread ends (a thread-local destructor
//! unlocks it), the process execs (close-on-exec) or dies (the kernel
//! drops the description's locks). So a waiter that reads owner `tid` from
//! the word decides:
//!
//! - `tid` is a live thread of this process (`tgkill(getpid(), tid, 0)`):
//!   alive;
//! - otherwise, if some *other* description holds byte `TID_BASE + tid`
//!   (`F_OFD_GETLK` through this process's own description, so that the
//!   bytes of this process's own dead threads do not count): alive;
//! - otherwise, if some process announced that it locks without a byte
//!   (a shared read lock on `BLIND`): undecided;
//! - otherwise: dead.
//!
//! The byte is taken *before* the acquiring CAS, so an owner killed at any
//! instruction of its acquire or release is judged correctly; no owner
//! record in the page is needed.
//!
//! PIDs are deliberately not used (`kill(pid, 0)` across PID namespaces
//! can call a live owner dead; `shared/ROBUST.md`), except for threads of
//! our own process, where `tgkill(getpid(), tid, 0)` is exact.

use core::cell::{Cell, RefCell};
use core::sync::atomic::{
    AtomicBool, AtomicI32, AtomicU32, AtomicU64,
    Ordering::{Acquire, Relaxed, Release},
};
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

/// Byte of thread `tid`: far beyond any segment's data.
const TID_BASE: i64 = 1 << 40;
/// Read-locked by a process that holds locks without a TID byte.
const BLIND: i64 = TID_BASE - 1;

/// Incremented in every forked child: descriptions opened before are not
/// ours.
static FORK_GEN: AtomicU32 = AtomicU32::new(0);
/// Identities of [`Token`]s, never reused (thread-local cache keys).
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The atfork child handler's part: drop the parent's descriptions (the
/// child takes its own on first use), whatever state the registry was in.
pub(crate) fn forget_in_child() {
    // Relaxed: the child has a single thread at this point.
    FORK_GEN.fetch_add(1, Relaxed);
    for e in &FILES {
        let fd = e.fd.swap(-1, Relaxed);
        if fd >= 0 {
            // SAFETY: this process's copy of a registered descriptor; the
            // entry is cleared by the same swap, so it is closed once.
            unsafe { libc::close(fd) };
        }
        e.refs.store(0, Relaxed);
    }
    REGISTRY.store(false, Relaxed);
    // The forking thread's cache named the parent's descriptions. (The
    // const-initialised thread locals have no lazy registration: plain
    // stores, async-signal-safe.)
    MINE.with(|m| m.iter().for_each(|c| c.set(0)));
}

const CACHE: usize = 4;

thread_local! {
    /// Identities (`Token::id`) of the descriptions holding this thread's byte.
    static MINE: [Cell<u64>; CACHE] = const { [const { Cell::new(0) }; CACHE] };
    static NEXT: Cell<usize> = const { Cell::new(0) };
    /// Unlocks this thread's bytes when it ends.
    static EXIT: ThreadBytes = const {
        ThreadBytes {
            fds: RefCell::new(Vec::new()),
        }
    };
}

/// The descriptions on which the current thread took its byte.
struct ThreadBytes {
    fds: RefCell<Vec<(RawFd, u32)>>,
}

impl Drop for ThreadBytes {
    fn drop(&mut self) {
        let tid = crate::sys::thread::tid().get();
        // Relaxed: see `forget_in_child`.
        let gen = FORK_GEN.load(Relaxed);
        for &(fd, g) in self.fds.borrow().iter() {
            if g == gen {
                // A descriptor number may have been closed and reused: an
                // unlock of this thread's byte is harmless on any file (no
                // other thread ever locks that byte in this process).
                set(fd, libc::F_UNLCK, TID_BASE + i64::from(tid));
            }
        }
        MINE.with(|m| m.iter().for_each(|c| c.set(0)));
    }
}

/// A segment handle's use of this process's description of its file.
///
/// One description per (process, file), shared by every handle on that
/// file in the process (a process that opens a segment twice must not
/// have two descriptions: their byte locks would conflict with each
/// other) and kept open while any of them lives.
#[derive(Debug)]
pub(crate) struct Token {
    id: u64,
    /// `(fork generation + 1) << 32 | table index`; 0 = none yet.
    fast: AtomicU64,
}

impl Default for Token {
    fn default() -> Self {
        Token {
            // Relaxed: only uniqueness matters.
            id: NEXT_ID.fetch_add(1, Relaxed),
            fast: AtomicU64::new(0),
        }
    }
}

impl Token {
    /// Makes sure the calling thread `tid`'s byte is held on this
    /// process's description (before any acquiring CAS).
    #[inline]
    pub(crate) fn ensure(&self, file: BorrowedFd<'_>, tid: u32) {
        // The cache is cleared in a forked child, whose descriptions are
        // new, so the token's identity is the whole key.
        let key = self.id;
        if MINE.with(|m| m.iter().any(|c| c.get() == key)) {
            return;
        }
        self.ensure_slow(file, tid, key);
    }

    #[cold]
    fn ensure_slow(&self, file: BorrowedFd<'_>, tid: u32, key: u64) {
        let gen = FORK_GEN.load(Relaxed);
        let fd = self.open(file);
        let ok = fd.is_some_and(|fd| set(fd, libc::F_WRLCK, TID_BASE + i64::from(tid)));
        if let (true, Some(fd)) = (ok, fd) {
            let _ = EXIT.try_with(|e| {
                let mut fds = e.fds.borrow_mut();
                if !fds.contains(&(fd, gen)) {
                    fds.push((fd, gen));
                }
            });
        } else {
            // Nobody can vouch for this thread: make every waiter undecided
            // rather than let one call it dead while it lives.
            let on = fd.unwrap_or(file.as_raw_fd());
            set(on, libc::F_RDLCK, BLIND);
        }
        MINE.with(|m| {
            let i = NEXT.with(|n| {
                let i = n.get();
                n.set((i + 1) % CACHE);
                i
            });
            m[i].set(key);
        });
    }

    /// This process's description of the file, opened (or shared with
    /// another handle on the same file) on first use.
    fn open(&self, file: BorrowedFd<'_>) -> Option<RawFd> {
        if let Some(fd) = self.current() {
            return Some(fd);
        }
        let gen = u64::from(FORK_GEN.load(Relaxed)) + 1;
        let st = rustix::fs::fstat(file).ok()?;
        let _g = RegistryLock::take();
        let f = self.fast.load(Relaxed);
        if f >> 32 == gen {
            return Some(FILES[f as u32 as usize].fd.load(Relaxed));
        }
        let (dev, ino) = (st.st_dev, st.st_ino);
        // Relaxed (all table accesses): ordered by the registry lock.
        let i = match FILES.iter().position(|e| {
            e.fd.load(Relaxed) >= 0 && e.dev.load(Relaxed) == dev && e.ino.load(Relaxed) == ino
        }) {
            Some(i) => {
                FILES[i].refs.fetch_add(1, Relaxed);
                i
            }
            None => {
                let i = FILES.iter().position(|e| e.fd.load(Relaxed) < 0)?;
                let fd = reopen(file)?;
                let e = &FILES[i];
                e.dev.store(dev, Relaxed);
                e.ino.store(ino, Relaxed);
                e.refs.store(1, Relaxed);
                e.fd.store(fd, Relaxed);
                i
            }
        };
        self.fast.store(gen << 32 | i as u64, Relaxed);
        Some(FILES[i].fd.load(Relaxed))
    }

    /// This process's description in this fork generation, if open.
    fn current(&self) -> Option<RawFd> {
        let gen = u64::from(FORK_GEN.load(Relaxed)) + 1;
        let f = self.fast.load(Relaxed);
        // Relaxed: the entry cannot change while this handle holds a
        // reference to it (refs > 0) in this fork generation.
        (f >> 32 == gen).then(|| FILES[f as u32 as usize].fd.load(Relaxed))
    }

    /// Whether thread `tid`, which the lock word names as the owner, is
    /// known to be dead (see the module docs). `false` when unsure.
    pub(crate) fn owner_dead(&self, file: BorrowedFd<'_>, tid: u32) -> bool {
        if own_thread_alive(tid) {
            return false;
        }
        let probe = self.current().unwrap_or(file.as_raw_fd());
        if held(probe, TID_BASE + i64::from(tid)) != Some(false) {
            return false;
        }
        held(file.as_raw_fd(), BLIND) == Some(false)
    }
}

impl Drop for Token {
    fn drop(&mut self) {
        let gen = u64::from(FORK_GEN.load(Relaxed)) + 1;
        let f = self.fast.load(Relaxed);
        if f == 0 || f >> 32 != gen {
            // Never opened, or opened before a fork (closed in the child).
            return;
        }
        let _g = RegistryLock::take();
        let e = &FILES[f as u32 as usize];
        // Relaxed: ordered by the registry lock.
        if e.refs.fetch_sub(1, Relaxed) == 1 {
            let fd = e.fd.swap(-1, Relaxed);
            if fd >= 0 {
                // SAFETY: the last reference to this table entry: the fd
                // was opened by `reopen` and is closed exactly once.
                unsafe { libc::close(fd) };
            }
        }
    }
}

/// One process-wide description of a segment file.
struct FileEntry {
    /// -1 = free entry.
    fd: AtomicI32,
    dev: AtomicU64,
    ino: AtomicU64,
    /// Handles (`Token`s) using it.
    refs: AtomicU32,
}

const MAX_FILES: usize = 1024;

/// The descriptions (async-signal-safe to clear in a forked child: atomics
/// and `close` only).
static FILES: [FileEntry; MAX_FILES] = [const {
    FileEntry {
        fd: AtomicI32::new(-1),
        dev: AtomicU64::new(0),
        ino: AtomicU64::new(0),
        refs: AtomicU32::new(0),
    }
}; MAX_FILES];

/// A spin lock over `FILES` (taken briefly, on first use of a segment by a
/// handle and when a handle is dropped). A spin lock rather than a
/// `Mutex`, because a forked child must be able to reset it: a thread of
/// the parent may have held it at the fork.
static REGISTRY: AtomicBool = AtomicBool::new(false);

struct RegistryLock;

impl RegistryLock {
    fn take() -> RegistryLock {
        // Acquire: pairs with the Release in `drop`, ordering the table.
        while REGISTRY
            .compare_exchange_weak(false, true, Acquire, Relaxed)
            .is_err()
        {
            std::thread::yield_now();
        }
        RegistryLock
    }
}

impl Drop for RegistryLock {
    fn drop(&mut self) {
        // Release: pairs with the Acquire in `take`.
        REGISTRY.store(false, Release);
    }
}

/// A new open file description of the same file.
fn reopen(file: BorrowedFd<'_>) -> Option<RawFd> {
    let path = format!("/proc/self/fd/{}\0", file.as_raw_fd());
    // SAFETY: NUL-terminated path; the result is checked.
    let fd = unsafe { libc::open(path.as_ptr().cast(), libc::O_RDWR | libc::O_CLOEXEC) };
    (fd >= 0).then_some(fd)
}

fn flock(ty: libc::c_int, at: i64) -> libc::flock {
    // SAFETY: `flock` is plain data; all-zero is a valid value.
    let mut fl: libc::flock = unsafe { core::mem::zeroed() };
    fl.l_type = ty as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = at;
    fl.l_len = 1;
    fl
}

fn set(fd: RawFd, ty: libc::c_int, at: i64) -> bool {
    let fl = flock(ty, at);
    // SAFETY: F_OFD_SETLK reads one valid `struct flock`.
    unsafe { libc::fcntl(fd, libc::F_OFD_SETLK, &fl) == 0 }
}

/// Whether byte `at` is locked by a description other than `probe`'s.
/// `None` if the kernel would not say.
fn held(probe: RawFd, at: i64) -> Option<bool> {
    let mut fl = flock(libc::F_WRLCK, at);
    // SAFETY: F_OFD_GETLK reads and writes one valid `struct flock`.
    let rc = unsafe { libc::fcntl(probe, libc::F_OFD_GETLK, &mut fl) };
    (rc == 0).then_some(fl.l_type != libc::F_UNLCK as libc::c_short)
}

/// Whether thread `tid` of this process is alive.
fn own_thread_alive(tid: u32) -> bool {
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
