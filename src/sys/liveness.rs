#![allow(unsafe_code)] // libc calls (`fcntl` OFD locks, `close`, `pthread_atfork`) and the table's never-freed chunks
//! Owner liveness: the fallback (and backstop) owner-death detector.
//!
//! Liveness is keyed by the TID that the
//! lock word itself holds, so that there is no moment at which the word
//! names an owner that waiters cannot judge.
//!
//! Each process opens its own *description* of a segment file (re-opened
//! through `/proc/self/fd`, close-on-exec, not kept by a forked child) and,
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
//! can call a live owner dead; `docs/ROBUST.md`), except for threads of
//! our own process, where `tgkill(getpid(), tid, 0)` is exact.
//!
//! # The description
//!
//! One per (process, file), shared by every handle on that file in the
//! process (two descriptions of one process would conflict over its
//! bytes), opened by [`LivenessFile::attach`] when the first handle on a segment
//! with a lock slot is created or attached, so that a process that cannot
//! open it (out of descriptors, no `/proc`) gets an error there instead of
//! locking unaccounted for. It costs one descriptor per such file and
//! process, on top of the segment's own. The segment's own descriptor
//! cannot serve: a description's locks last until its *last* reference is
//! gone, and
//! - the mapping made from it references it too, and is inherited by
//!   every forked child, which cannot drop it: a dead parent's bytes would
//!   outlive it in its children (measured), which would wait forever;
//! - it is what `AsFd` hands out (duplicates share the description): a
//!   process holding a copy would keep the bytes of a dead owner alive.
//!
//! The re-opened description is never mapped and never handed out.
//!
//! # The table
//!
//! Descriptions live in a process-wide table that only grows: chunk `k`
//! holds `64 << k` entries, allocated on demand and never freed or moved,
//! so an entry is read without a lock and the table can hold more entries
//! than a process can have descriptors. Entries are found by device and
//! inode under a spin lock (a linear scan when a handle is attached).
//! A forked child must be able to walk it without allocating or taking a
//! `Mutex` (its atfork handler runs in an async-signal context): atomics
//! and `close` only.
//!
//! # Fork
//!
//! The inherited descriptions are the parent's: a child locking on them
//! would be indistinguishable from its parent, and holding them would keep
//! a dead parent's bytes alive. So the atfork child handler closes them
//! (keeping the entries and their handles' references), and the child
//! re-opens each one, through a segment descriptor of its handle, at its
//! first lock of that file or its next attach of it (the attach fails
//! with an error if it cannot; a lock cannot fail: its thread locks
//! *blind*, below). A fork thus costs the child one `close` per
//! description, and no `open` for files it does not lock. A prepare
//! handler holds the table's lock across the `fork`, so that no
//! description is half-registered in the child.
//!
//! # Blind
//!
//! A thread that cannot take its byte (`ENOLCK`: the kernel is out of lock
//! memory; `EAGAIN`: a live thread with the same TID in another PID
//! namespace holds it; or no description, above) takes a shared read lock
//! on byte `BLIND` instead: while it is held, every waiter on that file is
//! undecided about owners that hold no byte, rather than calling a live
//! owner dead. That lock is released with the description it was taken
//! on. Should even it fail (`ENOLCK` again), the thread locks unaccounted
//! for, and a waiter may judge it dead: the one remaining hole, open only
//! while the kernel is out of lock memory.
//!
//! # Claims (per-process and per-handle identities)
//!
//! The bytes above are per *thread*: right for a lock, whose owner is a
//! thread. An object whose parts belong to a *process* (a pipe's ends)
//! needs an identity that outlives the thread that took it, and claim
//! bytes `CLAIM_BASE + k` provide two:
//!
//! - [`LivenessFile::claim`]: an exclusive lock on this process's
//!   description (the one above). It lasts until [`LivenessFile::release`],
//!   `execve` or the process's death, whatever thread took it, and a
//!   forked child does not hold it (its inherited descriptions are closed).
//! - [`HandleClaim`]: a shared (read) lock on a description of the
//!   handle's own, whose descriptor a forked child inherits: like an
//!   inherited pipe descriptor, it is held until every process holding a
//!   copy closed it or died (close-on-exec).
//!
//! Both are judged through a [`HandleClaim`]'s description, which sees
//! every other description's locks, this process's own included
//! ([`HandleClaim::held_elsewhere`]).

use core::cell::{Cell, RefCell};
use core::ptr;
use core::sync::atomic::{
    AtomicBool, AtomicI32, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize,
    Ordering::{AcqRel, Acquire, Relaxed, Release},
};
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::sync::OnceLock;

use rustix::io::Errno;

use crate::error::{Error, Result};

/// Byte of thread `tid`: far beyond any segment's data.
const TID_BASE: i64 = 1 << 40;
/// Claim byte `k` is `CLAIM_BASE + k` (module docs, "Claims"): beyond every
/// TID byte (TIDs are below 2^30).
const CLAIM_BASE: i64 = 1 << 41;
/// Read-locked by a process that holds locks without a TID byte.
const BLIND: i64 = TID_BASE - 1;

/// Incremented in every forked child: descriptor numbers recorded before
/// are not ours.
static FORK_GEN: AtomicU32 = AtomicU32::new(0);
/// Identities of [`LivenessFile`]s, never reused (thread-local cache keys).
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The number of forks in this process's ancestry since it started (or
/// since its last `execve`): a value recorded in one process and read
/// again in a forked child differs. Counted by the thread module's atfork
/// handler, registered by the first [`crate::sys::thread::tid`].
pub(crate) fn fork_generation() -> u32 {
    // Relaxed: a forked child increments it in its only thread.
    FORK_GEN.load(Relaxed)
}

/// The thread part of the atfork child handler (`sys::thread`): the
/// forking thread's cache names the parent's descriptions. The table is
/// handled by this module's own handlers (`atfork_child`).
pub(crate) fn forget_in_child() {
    // Relaxed: the child has a single thread at this point.
    FORK_GEN.fetch_add(1, Relaxed);
    // (The const-initialised thread locals have no lazy registration:
    // plain stores, async-signal-safe.)
    MINE.with(|m| m.iter().for_each(|c| c.set(0)));
}

const CACHE: usize = 4;

thread_local! {
    /// Identities (`LivenessFile::id`) of the descriptions holding this thread's byte.
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
/// Every segment has one; only segments with a lock slot are
/// [`attach`](LivenessFile::attach)ed (objects without a lock pay nothing).
#[derive(Debug)]
pub(crate) struct LivenessFile {
    id: u64,
    /// Table index + 1 of the description; 0: not attached.
    entry: AtomicUsize,
}

impl Default for LivenessFile {
    fn default() -> Self {
        LivenessFile {
            // Relaxed: only uniqueness matters.
            id: NEXT_ID.fetch_add(1, Relaxed),
            entry: AtomicUsize::new(0),
        }
    }
}

impl LivenessFile {
    /// Takes this process's description of `file` (opening it if no other
    /// handle in the process has): to be called before the handle is
    /// shared or used to lock.
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be re-opened through
    /// `/proc/self/fd` (`EMFILE`, `ENFILE`, no `/proc`, ...), `fstat`
    /// fails, or the atfork handlers cannot be registered.
    pub(crate) fn attach(&self, file: BorrowedFd<'_>) -> Result<()> {
        let st = rustix::fs::fstat(file).map_err(Error::io("fstat"))?;
        register_atfork()?;
        loop {
            let g = RegistryLock::take();
            // Relaxed (all table and `entry` accesses under the registry
            // lock): ordered by it.
            if self.entry.load(Relaxed) != 0 {
                return Ok(());
            }
            let high = HIGH.load(Relaxed);
            let mut free = None;
            let mut found = None;
            for_each_entry(high, |i, e| {
                if e.refs.load(Relaxed) == 0 {
                    free = free.or(Some(i));
                    true
                } else if e.dev.load(Relaxed) == st.st_dev && e.ino.load(Relaxed) == st.st_ino {
                    found = Some((i, e));
                    false
                } else {
                    true
                }
            });
            if let Some((i, e)) = found {
                if e.fd.load(Relaxed) < 0 {
                    // Not re-opened yet in a forked child (module docs).
                    e.fd.store(reopen(file)?, Relaxed);
                }
                let refs = e.refs.load(Relaxed);
                // Cannot overflow (every handle holds a descriptor of its
                // own), but checked all the same.
                let refs = refs
                    .checked_add(1)
                    .ok_or(Error::os("liveness table", Errno::OVERFLOW))?;
                e.refs.store(refs, Relaxed);
                self.entry.store(i + 1, Relaxed);
                return Ok(());
            }
            let i = free.unwrap_or(high);
            let Some(e) = entry(i) else {
                // Allocate the next chunk outside the lock: the atfork
                // prepare handler waits for the lock, so an allocator that
                // takes its own locks at fork would wait for us, and we
                // for it.
                drop(g);
                grow(i)?;
                continue;
            };
            let fd = reopen(file)?;
            e.dev.store(st.st_dev, Relaxed);
            e.ino.store(st.st_ino, Relaxed);
            e.refs.store(1, Relaxed);
            e.fd.store(fd, Relaxed);
            if i == high {
                HIGH.store(high + 1, Relaxed);
            }
            self.entry.store(i + 1, Relaxed);
            return Ok(());
        }
    }

    /// The table index of this process's description of the file, while
    /// attached: the same for every handle on one file in this process, and
    /// not reused while any of them lives.
    pub(crate) fn file_index(&self) -> Option<usize> {
        // Relaxed: written once by `attach`, before the handle is shared.
        self.entry.load(Relaxed).checked_sub(1)
    }

    /// Makes sure the calling thread `tid`'s byte is held on this
    /// process's description (before any acquiring CAS).
    #[inline]
    pub(crate) fn ensure(&self, file: BorrowedFd<'_>, tid: u32) {
        // The cache is cleared in a forked child, whose descriptions are
        // new, so this handle's identity is the whole key.
        let key = self.id;
        if MINE.with(|m| m.iter().any(|c| c.get() == key)) {
            return;
        }
        self.ensure_slow(file, tid, key);
    }

    #[cold]
    fn ensure_slow(&self, file: BorrowedFd<'_>, tid: u32, key: u64) {
        let gen = FORK_GEN.load(Relaxed);
        let fd = self.description(file);
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
            // rather than let one call it dead while it lives (see the
            // module docs). Should even this fail, the thread locks
            // unaccounted for.
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

    /// This process's description, re-opened in a forked child at first
    /// use. `None` if not attached or not re-openable.
    fn description(&self, file: BorrowedFd<'_>) -> Option<RawFd> {
        if let Some(fd) = self.current() {
            return Some(fd);
        }
        let e = entry(self.entry.load(Relaxed).checked_sub(1)?)?;
        let _g = RegistryLock::take();
        // Relaxed: ordered by the registry lock.
        let fd = e.fd.load(Relaxed);
        if fd >= 0 {
            return Some(fd);
        }
        let fd = reopen(file).ok()?;
        e.fd.store(fd, Relaxed);
        Some(fd)
    }

    /// This process's description, if open.
    fn current(&self) -> Option<RawFd> {
        // Relaxed: `entry` and the entry's descriptor were stored before
        // this handle was shared with the calling thread (or by it); the
        // descriptor stays open while the handle holds its reference. (A
        // forked child's re-open at first use is done under the lock, in
        // `description`.)
        let e = entry(self.entry.load(Relaxed).checked_sub(1)?)?;
        let fd = e.fd.load(Relaxed);
        (fd >= 0).then_some(fd)
    }

    /// Takes claim byte `k` for this process, exclusively: `Ok(false)`,
    /// taking nothing, if another description holds it (another process's
    /// claim, or a claim of this process, judged through `probe`). The
    /// claim lasts until [`release`](Self::release), `execve` or the
    /// process's death; a forked child does not hold it.
    ///
    /// # Errors
    /// [`Error::Io`] if this process's description cannot be (re-)opened
    /// or the kernel refuses the lock for another reason than a holder.
    pub(crate) fn claim(&self, file: BorrowedFd<'_>, probe: &HandleClaim, k: u32) -> Result<bool> {
        let fd = self
            .description(file)
            .ok_or(Error::os("open(/proc/self/fd/N)", Errno::BADF))?;
        let at = CLAIM_BASE + i64::from(k);
        // Two handles of this process claiming at once would both succeed
        // on the one description: the registry lock serialises them.
        let _g = RegistryLock::take();
        match held(probe.fd.as_raw_fd(), at) {
            Some(false) => {}
            Some(true) => return Ok(false),
            None => return Err(Error::os("fcntl(F_OFD_GETLK)", last_errno())),
        }
        if set(fd, libc::F_WRLCK, at) {
            return Ok(true);
        }
        match last_errno() {
            Errno::AGAIN | Errno::ACCESS => Ok(false),
            e => Err(Error::os("fcntl(F_OFD_SETLK)", e)),
        }
    }

    /// Gives back claim byte `k` taken by [`claim`](Self::claim) in this
    /// process (not in a forked child: its description is another).
    pub(crate) fn release(&self, k: u32) {
        if let Some(fd) = self.current() {
            set(fd, libc::F_UNLCK, CLAIM_BASE + i64::from(k));
        }
    }

    /// Whether thread `tid`, which the lock word names as the owner, is
    /// known to be dead (see the module docs). `false` when unsure.
    pub(crate) fn owner_dead(&self, file: BorrowedFd<'_>, tid: u32) -> bool {
        if own_thread_alive(tid) {
            return false;
        }
        // Through this process's own description, whose locks (ours) do
        // not count: a description shared with another process (the
        // segment's, inherited or passed) would hide that process's locks.
        let probe = self.current().unwrap_or(file.as_raw_fd());
        if held(probe, TID_BASE + i64::from(tid)) != Some(false) {
            return false;
        }
        held(probe, BLIND) == Some(false)
    }
}

impl Drop for LivenessFile {
    fn drop(&mut self) {
        let Some(e) = self.entry.load(Relaxed).checked_sub(1).and_then(entry) else {
            return;
        };
        let _g = RegistryLock::take();
        // Relaxed: ordered by the registry lock.
        match e.refs.load(Relaxed) {
            0 => {}
            1 => {
                let fd = e.fd.swap(-1, Relaxed);
                e.refs.store(0, Relaxed);
                if fd >= 0 {
                    // SAFETY: the last reference to this table entry, whose
                    // descriptor was opened by `reopen` and is owned by the
                    // table alone; cleared by the swap, so closed once.
                    unsafe { libc::close(fd) };
                }
            }
            n => e.refs.store(n - 1, Relaxed),
        }
    }
}

/// A handle's own description of a segment file, holding a shared lock
/// on one claim byte while any process holds its descriptor (module docs,
/// "Claims"): close-on-exec, never mapped, never handed out.
#[derive(Debug)]
pub(crate) struct HandleClaim {
    fd: std::os::fd::OwnedFd,
}

impl HandleClaim {
    /// Opens a new description of `file` and read-locks claim byte `k`
    /// on it.
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be re-opened through
    /// `/proc/self/fd` or the lock is refused (`ENOLCK`).
    pub(crate) fn take(file: BorrowedFd<'_>, k: u32) -> Result<HandleClaim> {
        use std::os::fd::FromRawFd;
        let raw = reopen(file)?;
        // SAFETY: `reopen` returned a new descriptor, owned from here on.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) };
        if !set(raw, libc::F_RDLCK, CLAIM_BASE + i64::from(k)) {
            return Err(Error::os("fcntl(F_OFD_SETLK)", last_errno()));
        }
        Ok(HandleClaim { fd })
    }

    /// Whether claim byte `k` is locked, shared or exclusively, by a
    /// description other than this handle's: any process's, this one's
    /// included. `None` if the kernel would not say.
    pub(crate) fn held_elsewhere(&self, k: u32) -> Option<bool> {
        held(self.fd.as_raw_fd(), CLAIM_BASE + i64::from(k))
    }
}

fn last_errno() -> Errno {
    Errno::from_raw_os_error(
        std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO),
    )
}

/// One process-wide description of a segment file.
struct Entry {
    /// -1: none (free, or not re-opened yet in a forked child).
    fd: AtomicI32,
    /// Handles ([`LivenessFile`]s) using it; 0 = free entry.
    refs: AtomicU32,
    dev: AtomicU64,
    ino: AtomicU64,
}

/// Entries of chunk 0; chunk `k` has `CHUNK0 << k`.
const CHUNK0: usize = 64;
/// Chunks: `64 * (2^26 - 1)` entries in all, more than the 2^31
/// descriptors a process can have.
const CHUNKS: usize = 26;

/// The chunks: null until allocated, then never freed or moved.
static CHUNK: [AtomicPtr<Entry>; CHUNKS] = [const { AtomicPtr::new(ptr::null_mut()) }; CHUNKS];
/// Entries `0..HIGH` have been used (their chunks exist); under the
/// registry lock.
static HIGH: AtomicUsize = AtomicUsize::new(0);

/// Chunk and offset of entry `i`.
fn locate(i: usize) -> Option<(usize, usize)> {
    // Chunk k starts at entry CHUNK0 * (2^k - 1).
    let j = i / CHUNK0 + 1;
    let k = (usize::BITS - 1 - j.leading_zeros()) as usize;
    (k < CHUNKS).then(|| (k, i - CHUNK0 * ((1 << k) - 1)))
}

/// Entry `i`, if its chunk exists.
fn entry(i: usize) -> Option<&'static Entry> {
    let (k, off) = locate(i)?;
    // Acquire: pairs with the AcqRel install in `grow`, so the entries
    // are initialised.
    let p = CHUNK[k].load(Acquire);
    if p.is_null() {
        return None;
    }
    // SAFETY: chunk `k` has `CHUNK0 << k` entries and `off` is below that
    // (`locate`); installed chunks are never freed or moved, and entries
    // are atomics, shared only within this process.
    Some(unsafe { &*p.add(off) })
}

/// Calls `f` on entries `0..high` in order while it returns `true`.
fn for_each_entry(high: usize, mut f: impl FnMut(usize, &'static Entry) -> bool) {
    let mut start = 0;
    for (k, c) in CHUNK.iter().enumerate() {
        if start >= high {
            return;
        }
        // Acquire: as in `entry`.
        let p = c.load(Acquire);
        if p.is_null() {
            return;
        }
        let len = (CHUNK0 << k).min(high - start);
        for off in 0..len {
            // SAFETY: as in `entry` (`off` < `CHUNK0 << k`).
            if !f(start + off, unsafe { &*p.add(off) }) {
                return;
            }
        }
        start += CHUNK0 << k;
    }
}

/// Allocates the chunk that holds entry `i` (if no other thread did).
fn grow(i: usize) -> Result<()> {
    let full = Error::os("liveness table", Errno::NOMEM);
    let (k, _) = locate(i).ok_or(full.clone())?;
    let len = CHUNK0 << k;
    let mut v: Vec<Entry> = Vec::new();
    v.try_reserve_exact(len).map_err(|_| full)?;
    v.extend((0..len).map(|_| Entry {
        fd: AtomicI32::new(-1),
        refs: AtomicU32::new(0),
        dev: AtomicU64::new(0),
        ino: AtomicU64::new(0),
    }));
    let p = Box::into_raw(v.into_boxed_slice()).cast::<Entry>();
    // AcqRel: publishes the initialised entries (pairs with the Acquire
    // loads in `entry`), and reads another installer's on failure.
    if CHUNK[k]
        .compare_exchange(ptr::null_mut(), p, AcqRel, Acquire)
        .is_err()
    {
        // SAFETY: `p` is the boxed slice of `len` entries made above,
        // never published.
        drop(unsafe { Box::from_raw(ptr::slice_from_raw_parts_mut(p, len)) });
    }
    Ok(())
}

/// A spin lock over the table (taken briefly: when a handle is attached or
/// dropped, and across a `fork`). A spin lock rather than a `Mutex`,
/// because the atfork handlers take it in `prepare` and release it in
/// `parent` and `child`. Nothing allocates while holding it.
static REGISTRY: AtomicBool = AtomicBool::new(false);

fn lock_registry() {
    // Acquire: pairs with the Release in `unlock_registry`, ordering the
    // table.
    while REGISTRY
        .compare_exchange_weak(false, true, Acquire, Relaxed)
        .is_err()
    {
        std::thread::yield_now();
    }
}

fn unlock_registry() {
    // Release: pairs with the Acquire in `lock_registry`.
    REGISTRY.store(false, Release);
}

struct RegistryLock;

impl RegistryLock {
    fn take() -> RegistryLock {
        lock_registry();
        RegistryLock
    }
}

impl Drop for RegistryLock {
    fn drop(&mut self) {
        unlock_registry();
    }
}

/// Registers the atfork handlers (once per process).
fn register_atfork() -> Result<()> {
    static DONE: OnceLock<core::result::Result<(), Errno>> = OnceLock::new();
    let r = *DONE.get_or_init(|| {
        // SAFETY: registering handlers is always sound; they only take and
        // release the registry lock and re-open table entries, with
        // atomics and async-signal-safe system calls.
        let rc = unsafe {
            libc::pthread_atfork(
                Some(atfork_prepare),
                Some(atfork_parent),
                Some(atfork_child),
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(Errno::from_raw_os_error(rc))
        }
    });
    r.map_err(Error::io("pthread_atfork"))
}

/// No table change is under way while a thread forks. (The forking thread
/// never holds the lock itself: nothing done under it forks. A signal
/// handler that forks while its thread holds it would spin here forever.)
extern "C" fn atfork_prepare() {
    lock_registry();
}

extern "C" fn atfork_parent() {
    unlock_registry();
}

/// Drops the parent's descriptions in the child (see the module docs).
/// Runs in the child's only thread, which holds the registry lock
/// (`prepare`): atomics and `close` only.
extern "C" fn atfork_child() {
    // Relaxed: one thread, and the lock taken in `prepare` ordered the
    // table before the fork.
    let high = HIGH.load(Relaxed);
    for_each_entry(high, |_, e| {
        let old = e.fd.swap(-1, Relaxed);
        if old >= 0 {
            // SAFETY: the parent's description, inherited at this number
            // and owned by the table alone; cleared by the swap, so closed
            // once. The entry (and its handles' references) stays: it is
            // re-opened at first use.
            unsafe { libc::close(old) };
        }
        true
    });
    unlock_registry();
}

/// A new open file description of `file`, close-on-exec.
fn reopen(file: BorrowedFd<'_>) -> Result<RawFd> {
    reopen_raw(file.as_raw_fd()).map_err(Error::io("open(/proc/self/fd/N)"))
}

/// `open("/proc/self/fd/<fd>", O_RDWR | O_CLOEXEC | O_NONBLOCK)` (as the
/// named opens of `sys::shm`: `EAGAIN` rather than a wait for a peer's
/// lease on the file), async-signal-safe (no allocation).
fn reopen_raw(fd: RawFd) -> core::result::Result<RawFd, Errno> {
    const PREFIX: &[u8] = b"/proc/self/fd/";
    // The prefix, at most 10 digits, and a NUL.
    let mut path = [0u8; 32];
    path[..PREFIX.len()].copy_from_slice(PREFIX);
    let mut digits = [0u8; 10];
    let mut n = fd.unsigned_abs();
    let mut len = 0;
    for d in digits.iter_mut() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
        len += 1;
        if n == 0 {
            break;
        }
    }
    for (to, from) in path[PREFIX.len()..]
        .iter_mut()
        .zip(digits[..len].iter().rev())
    {
        *to = *from;
    }
    // SAFETY: `path` is NUL-terminated (zeroed, at most 24 bytes written);
    // the result is checked.
    let new = unsafe {
        libc::open(
            path.as_ptr().cast(),
            libc::O_RDWR | libc::O_CLOEXEC | libc::O_NONBLOCK,
        )
    };
    if new >= 0 {
        Ok(new)
    } else {
        Err(Errno::from_raw_os_error(
            std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO),
        ))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_tile_the_index_space() {
        let mut expect = (0, 0);
        for i in 0..CHUNK0 * 20 {
            let got = locate(i).unwrap();
            assert_eq!(got, expect, "entry {i}");
            expect.1 += 1;
            if expect.1 == CHUNK0 << expect.0 {
                expect = (expect.0 + 1, 0);
            }
        }
        let last = CHUNK0 * ((1 << CHUNKS) - 1);
        assert_eq!(
            locate(last - 1),
            Some((CHUNKS - 1, (CHUNK0 << (CHUNKS - 1)) - 1))
        );
        assert_eq!(locate(last), None);
        assert_eq!(locate(usize::MAX), None);
    }

    #[test]
    #[cfg_attr(miri, ignore = "memfd_create and /proc are not emulated by Miri")]
    fn reopen_finds_multi_digit_numbers() {
        use std::os::fd::{AsFd, FromRawFd, OwnedFd};
        let f = crate::sys::file::memfd().unwrap();
        let high = rustix::io::fcntl_dupfd_cloexec(&f, 1234).unwrap();
        let n = high.as_raw_fd();
        assert!(n >= 1234);
        let again = reopen_raw(n).unwrap();
        // SAFETY: `reopen_raw` returned a new descriptor, owned here.
        let again = unsafe { OwnedFd::from_raw_fd(again) };
        let (a, b) = (
            rustix::fs::fstat(f.as_fd()).unwrap(),
            rustix::fs::fstat(again.as_fd()).unwrap(),
        );
        assert_eq!((a.st_dev, a.st_ino), (b.st_dev, b.st_ino));
        assert_eq!(reopen_raw(i32::MAX).unwrap_err(), Errno::NOENT);
    }
}
