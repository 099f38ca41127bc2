#![allow(unsafe_code)] // the lock slot in the mapping, and the robust list's unsafe fns
//! [`Lock`] and [`RLock`]: futex mutexes that live inside a shared page.

use core::fmt;
use core::marker::PhantomData;
use core::num::NonZeroU32;
use core::sync::atomic::AtomicU32;
use core::sync::atomic::Ordering::Relaxed;
use core::time::Duration;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::raw::{Acquired, Holds, Liveness, RawMutex, Refused, TID_MASK};
use crate::shared::SharedObject;
use crate::shm::header::LockSlot;
use crate::shm::object::{ElemDesc, Kind, LockMode, LockRef, Object, Shape};
use crate::shm::segment::Segment;
use crate::sync::deadline::Until;
use crate::sync::{LockError, TryLockError};
use crate::sys;
use crate::sys::robust::{self, Released, RobustHead, SlotKey};

/// A handle on one in-page lock slot: the segment that holds it (kept
/// mapped as long as the handle lives) and the slot's address.
#[derive(Clone)]
pub(crate) struct LockHandle {
    seg: Arc<Segment>,
    slot: *const LockSlot,
    /// Identity of the segment that holds the slot (recorded by objects
    /// that use this lock, checked when they re-attach it).
    id: u64,
    /// Kind of the object holding the slot (a lock object, or a Value/Array
    /// with its own lock).
    kind: Kind,
    recursive: bool,
    /// The slot's identity in every mapping of its file (process-private:
    /// from `fstat` on our own descriptor), keying this thread's records
    /// of its holds.
    key: SlotKey,
}

// SAFETY: the slot is made of atomics in a shared mapping that `seg` keeps
// alive; no thread-affine state is held (the owner is in the word).
unsafe impl Send for LockHandle {}
// SAFETY: as for Send: every access to the slot is atomic.
unsafe impl Sync for LockHandle {}

/// First sleep of a waiter between liveness probes; doubles up to
/// `PROBE_MAX`, so a dead owner on the fallback path is detected within
/// about `PROBE_MAX` while a long wait costs few wake-ups.
const PROBE_FIRST: Duration = Duration::from_micros(500);
const PROBE_MAX: Duration = Duration::from_millis(8);

/// The waiter's owner-liveness probe: on the fallback path, and as a
/// backstop on the kernel-list path for deaths the kernel does not report
/// (an `execve` by a non-main thread, a broken or overflowing list).
struct Probe<'a> {
    handle: &'a LockHandle,
    interval: Duration,
}

impl Liveness for Probe<'_> {
    fn probe_interval(&mut self, _word: u32) -> Option<Duration> {
        Some(self.interval)
    }

    fn owner_is_dead(&mut self, word: u32) -> bool {
        self.interval = (self.interval * 2).min(PROBE_MAX);
        let tid = word & TID_MASK;
        if tid == 0 || tid == crate::raw::NOT_RECOVERABLE {
            return false;
        }
        let seg = &self.handle.seg;
        seg.liveness.owner_dead(seg.fd(), tid)
    }
}

impl LockHandle {
    /// The lock slot of a validated object whose lock mode is `Own`.
    pub(crate) fn wrap(obj: &Object, recursive: bool) -> LockHandle {
        let slot = obj.lock_slot();
        let off = (slot as usize).wrapping_sub(obj.seg.as_ptr() as usize) as u64;
        // The file's entry in this process's liveness table (one per file,
        // shared by every handle on it) and the slot's offset: the same
        // lock in every mapping of the file.
        let key = match (obj.seg.liveness.file_index(), u32::try_from(off)) {
            (Some(i), Ok(off)) => SlotKey::new(i, off),
            // Not attached (never for a lock's segment): a key of this
            // mapping alone. Holds through another mapping of the same
            // file are then not recognised as this thread's, and the word
            // naming this thread is taken over as a dead owner's.
            _ => SlotKey::unique(slot as usize),
        };
        LockHandle {
            seg: obj.seg.clone(),
            slot,
            id: obj.layout.id,
            kind: obj.layout.kind,
            recursive,
            key,
        }
    }

    pub(crate) fn name(&self) -> Option<&str> {
        self.seg.name()
    }

    /// Whether the slot is a lock object of its own (not a Value's lock).
    pub(crate) fn is_lock_object(&self) -> bool {
        matches!(self.kind, Kind::Lock | Kind::RLock)
    }

    #[inline]
    fn slot(&self) -> &LockSlot {
        // SAFETY: `slot` points into the mapping kept alive by `self.seg`,
        // is 8-aligned (LOCK_OFFSET in a page-aligned mapping) and consists
        // of atomics only.
        unsafe { &*self.slot }
    }

    #[inline]
    pub(crate) fn raw(&self) -> &RawMutex<AtomicU32> {
        &self.slot().raw
    }

    /// One acquire (`try_lock` when `wait` is false), wrapped in the
    /// owner-death protocol:
    /// - always: this thread's liveness byte held before the acquiring CAS
    ///   (`sys::liveness`), and waiters (or a busy `try_lock`) probing the
    ///   owner named in the word;
    /// - on the kernel-list path (`head` is this thread's robust head):
    ///   `list_op_pending` around the attempt and the slot linked into the
    ///   list once the word is ours.
    ///
    /// Always inlined into the (always inlined) public `lock`s: the common
    /// case (a thread that holds nothing, a free word) is a few
    /// thread-local accesses, the CAS and the record; every other case is
    /// out of line (shaped with `cargo bench --bench locks`).
    #[inline(always)]
    fn acquire_raw(
        &self,
        me: NonZeroU32,
        head: Option<RobustHead>,
        wait: bool,
        timeout: Option<Duration>,
    ) -> Result<Acquired, Refused> {
        // This thread's liveness byte is held before the word can name it
        // (a thread-local check after the first time).
        self.seg.liveness.ensure(self.seg.fd(), me.get());
        // This thread's own count of its holds decides recursion, not the
        // word. The common case holds nothing at all (one thread-local
        // load); everything else is out of line.
        if robust::holds_nothing() {
            self.attempt(me, head, wait, timeout, Holds::NONE, true)
        } else {
            self.acquire_holding(me, head, wait, timeout)
        }
    }

    /// One acquire by a thread that holds the lock `held` times, in the
    /// robust-list protocol; `first`: the thread holds no lock at all.
    #[inline(always)]
    fn attempt(
        &self,
        me: NonZeroU32,
        head: Option<RobustHead>,
        wait: bool,
        timeout: Option<Duration>,
        mut held: Holds,
        first: bool,
    ) -> Result<Acquired, Refused> {
        let slot = self.slot();
        if let Some(h) = head {
            // SAFETY: the slot's node; `self` keeps its mapping alive.
            unsafe { robust::set_pending(h, slot.next.as_ptr() as usize) };
        }
        let r = match self.raw().try_lock(me, &mut held, self.recursive) {
            Ok(a) => {
                // SAFETY: this thread just acquired (or holds) the slot;
                // the guard that will release it borrows this handle,
                // which keeps the mapping alive until then. `note_first`
                // only when it held nothing.
                unsafe {
                    if first {
                        robust::note_first(head, &self.key, &slot.next, &slot.prev);
                    } else {
                        robust::note_acquire(head, &self.key, &slot.next, &slot.prev);
                    }
                }
                Ok(a)
            }
            Err(Refused::WouldBlock) => self.acquire_blocked(me, head, wait, timeout, held),
            Err(e) => Err(e),
        };
        if let Some(h) = head {
            // SAFETY: clears it.
            unsafe { robust::set_pending(h, 0) };
        }
        r
    }

    /// `acquire_raw` after the word was found held by another thread: wait
    /// (or probe the owner, for `try_lock`), then record.
    #[cold]
    #[inline(never)]
    fn acquire_blocked(
        &self,
        me: NonZeroU32,
        head: Option<RobustHead>,
        wait: bool,
        timeout: Option<Duration>,
        mut held: Holds,
    ) -> Result<Acquired, Refused> {
        let r = if wait {
            self.acquire_contended(me, &mut held, timeout)
        } else {
            self.try_dead_owner(me, &mut held)
        };
        if r.is_ok() {
            let slot = self.slot();
            // SAFETY: as in `attempt`.
            unsafe { robust::note_acquire(head, &self.key, &slot.next, &slot.prev) };
        }
        r
    }

    /// `acquire_raw` of a thread that holds some lock already (maybe this
    /// one): its records decide.
    #[cold]
    #[inline(never)]
    fn acquire_holding(
        &self,
        me: NonZeroU32,
        head: Option<RobustHead>,
        wait: bool,
        timeout: Option<Duration>,
    ) -> Result<Acquired, Refused> {
        let held = Holds::new(robust::holds_of(&self.key));
        self.attempt(me, head, wait, timeout, held, false)
    }

    /// The blocking part of `acquire_raw`, out of line.
    #[cold]
    #[inline(never)]
    fn acquire_contended(
        &self,
        me: NonZeroU32,
        held: &mut Holds,
        timeout: Option<Duration>,
    ) -> Result<Acquired, Refused> {
        let mut probe = Probe {
            handle: self,
            interval: PROBE_FIRST,
        };
        // A timeout too long to represent waits like the untimed call.
        match timeout.and_then(Until::after) {
            None => self
                .raw()
                .lock(me, held, self.recursive, None, Some(&mut probe)),
            Some(mut until) => {
                self.raw()
                    .lock(me, held, self.recursive, Some(&mut until), Some(&mut probe))
            }
        }
    }

    /// `try_lock` found the word held: one liveness probe, so that a dead
    /// owner is reported to `try_lock` too, not only to waiters.
    #[cold]
    #[inline(never)]
    fn try_dead_owner(&self, me: NonZeroU32, held: &mut Holds) -> Result<Acquired, Refused> {
        let mut probe = Probe {
            handle: self,
            interval: PROBE_FIRST,
        };
        let cur = self.raw().word.load(Relaxed);
        match NonZeroU32::new(cur & TID_MASK) {
            Some(d) if probe.owner_is_dead(cur) && self.raw().mark_owner_dead(d) => {
                self.raw().try_lock(me, held, self.recursive)
            }
            _ => Err(Refused::WouldBlock),
        }
    }

    /// Releases one hold (the inverse of `acquire_raw`). Decided by this
    /// thread's records alone: a hold it has no record of (a parent's guard
    /// copied into a forked child) is left alone.
    #[inline]
    fn release(&self, me: NonZeroU32, head: Option<RobustHead>) {
        let slot = self.slot();
        let node = slot.next.as_ptr() as usize;
        // The common case: this thread's only hold of anything.
        if let Some(succ) = robust::release_only(node) {
            // SAFETY: this thread held the slot once (its records said so),
            // through this mapping, linked by `acquire_raw`.
            unsafe { self.release_last(me, head, succ, 0) };
        } else {
            self.release_slow(me, head);
        }
    }

    /// [`release`](Self::release) with other records present.
    #[cold]
    #[inline(never)]
    fn release_slow(&self, me: NonZeroU32, head: Option<RobustHead>) {
        let node = self.slot().next.as_ptr() as usize;
        match robust::note_release(node) {
            Released::NotHeld => {}
            Released::More => {
                // Holds through this node remain: one fewer in the count.
                let mut held = Holds::new(robust::holds_of(&self.key).saturating_add(1));
                // SAFETY: this thread holds the lock (its records say so).
                unsafe { self.raw().unlock(me, &mut held) };
            }
            Released::Last { succ } => {
                // Holds through other mappings of the same file may remain.
                let others = robust::holds_of(&self.key);
                // SAFETY: the node's last hold, recorded by this thread.
                unsafe { self.release_last(me, head, succ, others) };
            }
        }
    }

    /// Unlinks the node of a hold that was its last (its record is gone;
    /// `succ` is its recorded successor), then gives up one of the
    /// thread's `others + 1` holds of the word: the word itself when
    /// `others` is 0. With holds through another mapping of the same slot
    /// left (`others > 0`), that mapping's node takes this one's place on
    /// the list (two mappings share the slot's link fields, so only one of
    /// them is ever linked).
    ///
    /// # Safety
    /// - the node was linked by this thread, which holds the lock
    ///   `others + 1` times.
    #[inline(always)]
    unsafe fn release_last(
        &self,
        me: NonZeroU32,
        head: Option<RobustHead>,
        succ: usize,
        others: u32,
    ) {
        let slot = self.slot();
        if let Some(h) = head {
            // SAFETY: the slot was linked by `acquire_raw` on this thread;
            // `self` keeps its mapping alive.
            unsafe {
                robust::set_pending(h, slot.next.as_ptr() as usize);
                robust::unlink(h, &slot.next, succ);
            }
            if others > 0 && succ != robust::UNLINKED {
                self.hand_over_link(h);
            }
        }
        let mut held = Holds::new(others.saturating_add(1));
        // SAFETY: per the caller.
        unsafe { self.raw().unlock(me, &mut held) };
        if let Some(h) = head {
            // SAFETY: clears it.
            unsafe { robust::set_pending(h, 0) };
        }
        if others == 0 {
            // The word is free: the wakes of conditions notified under it.
            super::deferred::flush();
        }
    }

    /// Links the node of another mapping of this slot held by this thread,
    /// in place of this one's, just unlinked (`release_last`).
    #[cold]
    #[inline(never)]
    fn hand_over_link(&self, h: RobustHead) {
        if let Some(n) = robust::take_over_link(&self.key) {
            // SAFETY: the node taken over is held through its own guard,
            // whose handle keeps its mapping alive; pending names it while
            // it is linked.
            unsafe {
                robust::set_pending(h, n);
                robust::relink(h, n);
            }
        }
    }

    /// Whether some thread holds the lock (a racy snapshot).
    pub(crate) fn is_locked(&self) -> bool {
        self.raw().is_locked()
    }

    /// Whether the calling thread holds the lock (its own records).
    pub(crate) fn is_held_by_current_thread(&self) -> bool {
        robust::holds_of(&self.key) > 0
    }
}
/// Something that holds a lock slot: what a guard points at. A guard is
/// one pointer to it, so that `lock()`'s `Result` comes back in registers
/// even where the call is not inlined.
pub(crate) trait HasLock {
    fn lock_handle(&self) -> &LockHandle;
}

impl HasLock for LockHandle {
    #[inline]
    fn lock_handle(&self) -> &LockHandle {
        self
    }
}

/// One hold of the lock of `O` by the current thread; releases it when
/// dropped. The common core of every guard in the crate.
///
/// It stores nothing but the pointer: the owner's TID and robust head are
/// per-thread facts that the release reads again (thread-local loads),
/// and the lock word itself says whether the hold is this thread's.
pub(crate) struct HeldLock<'a, O: HasLock = LockHandle> {
    obj: &'a O,
    /// The hold belongs to the thread whose TID is in the word: `!Send`.
    _not_send: PhantomData<*const ()>,
}

impl<'a, O: HasLock> HeldLock<'a, O> {
    #[inline]
    fn new(obj: &'a O) -> Self {
        HeldLock {
            obj,
            _not_send: PhantomData,
        }
    }

    /// The object whose lock is held.
    #[inline]
    pub(crate) fn obj(&self) -> &'a O {
        self.obj
    }

    /// Locks `obj`'s lock, as std's `LockResult` of the guard `wrap` makes.
    ///
    /// Always inlined, like every public `lock`/`try_lock` above it: the
    /// `Result` is then built in the caller's registers. Returned from a
    /// call, it travels through memory (the Rust ABI returns this enum
    /// indirectly), and a caller that copies it whole reads it back with a
    /// wider load than the two stores that wrote it: a store-forwarding
    /// stall on every lock (`cargo bench --bench locks` shows it).
    #[inline(always)]
    pub(crate) fn acquire<G>(obj: &'a O, wrap: impl FnOnce(Self) -> G) -> Result<G, LockError<G>> {
        let h = obj.lock_handle();
        let me = sys::thread::tid();
        match h.acquire_raw(me, robust::head(), true, None) {
            Ok(Acquired::Locked | Acquired::Recursive) => Ok(wrap(Self::new(obj))),
            Ok(Acquired::OwnerDied) => Err(LockError::OwnerDied(wrap(Self::new(obj)))),
            Err(r) => Err(refused(r)),
        }
    }

    /// `try_lock` (timeout `None`) or `lock_timeout`, as `TryLockResult`.
    #[inline(always)]
    pub(crate) fn try_acquire<G>(
        obj: &'a O,
        timeout: Option<Duration>,
        wrap: impl FnOnce(Self) -> G,
    ) -> Result<G, TryLockError<G>> {
        let h = obj.lock_handle();
        let me = sys::thread::tid();
        match h.acquire_raw(me, robust::head(), timeout.is_some(), timeout) {
            Ok(Acquired::Locked | Acquired::Recursive) => Ok(wrap(Self::new(obj))),
            Ok(Acquired::OwnerDied) => Err(TryLockError::OwnerDied(wrap(Self::new(obj)))),
            Err(Refused::WouldBlock) => Err(TryLockError::WouldBlock),
            Err(Refused::NotRecoverable) => Err(TryLockError::NotRecoverable),
            Err(Refused::Deadlock) => Err(TryLockError::Deadlock),
        }
    }

    pub(crate) fn mark_consistent(&self) {
        // SAFETY: this value exists only while the current thread holds the
        // lock.
        unsafe { self.obj.lock_handle().raw().mark_consistent() }
    }
}

/// Every hold of a lock that the current thread gave up to wait on a
/// condition ([`HeldLock::suspend`]), to be taken back by
/// [`Suspended::resume`]: Python's `_release_save` / `_acquire_restore`.
/// Process-private (the count comes from the thread's own records), and
/// `!Send` as the hold was.
pub(crate) struct Suspended<'a> {
    obj: &'a LockHandle,
    holds: u32,
    _not_send: PhantomData<*const ()>,
}

impl<'a> HeldLock<'a> {
    /// Releases every hold the current thread has of this lock (all the
    /// levels of a recursive lock, not only this guard's), so that other
    /// threads can take it; [`Suspended::resume`] takes them all back.
    ///
    /// # Errors
    /// The hold itself, unchanged, if some of the thread's holds are
    /// through another mapping of the same lock file (the lock opened
    /// twice by name and held through both handles): those cannot be
    /// released through this handle, so the lock would stay held.
    pub(crate) fn suspend(self) -> core::result::Result<Suspended<'a>, Self> {
        let h = self.obj;
        let me = sys::thread::tid();
        let head = robust::head();
        let mut released = 0u32;
        loop {
            let before = robust::holds_of(&h.key);
            if before == 0 {
                break;
            }
            h.release(me, head);
            if robust::holds_of(&h.key) >= before {
                // Not held through this handle's node.
                break;
            }
            released += 1;
        }
        if robust::holds_of(&h.key) > 0 {
            // Take back what went: the thread still holds the lock, so
            // these are recursive holds that cannot block (and cannot
            // fail: the thread held that many a moment ago).
            for _ in 0..released {
                let _ = h.acquire_raw(me, head, true, None);
            }
            return Err(self);
        }
        // The holds are gone (and this one's release is done): no drop.
        core::mem::forget(self);
        Ok(Suspended {
            obj: h,
            // A hold the thread has no record of (a parent's guard copied
            // into a forked child) released nothing; the guard given back
            // will be a real hold.
            holds: released.max(1),
            _not_send: PhantomData,
        })
    }
}

impl<'a> Suspended<'a> {
    /// Takes the lock back, blocking, with as many holds as
    /// [`HeldLock::suspend`] released (one guard stands for all of them
    /// again, as before).
    ///
    /// # Errors
    /// As for a blocking lock: [`LockError::OwnerDied`] (with the hold) if
    /// an owner died holding it meanwhile, [`LockError::NotRecoverable`].
    pub(crate) fn resume(self) -> core::result::Result<HeldLock<'a>, LockError<HeldLock<'a>>> {
        let h = self.obj;
        let me = sys::thread::tid();
        let head = robust::head();
        let died = match h.acquire_raw(me, head, true, None) {
            Ok(Acquired::OwnerDied) => true,
            Ok(Acquired::Locked | Acquired::Recursive) => false,
            Err(r) => return Err(refused(r)),
        };
        for _ in 1..self.holds {
            // Recursive holds of a lock the thread now holds: no blocking,
            // and no failure (the thread held that many before).
            if h.acquire_raw(me, head, true, None).is_err() {
                break;
            }
        }
        let held = HeldLock::new(h);
        if died {
            Err(LockError::OwnerDied(held))
        } else {
            Ok(held)
        }
    }
}

/// An untimed acquire that failed.
#[cold]
fn refused<G>(r: Refused) -> LockError<G> {
    match r {
        Refused::NotRecoverable => LockError::NotRecoverable,
        Refused::Deadlock => LockError::Deadlock,
        Refused::WouldBlock => unreachable!("untimed lock does not give up"),
    }
}

impl<O: HasLock> Drop for HeldLock<'_, O> {
    #[inline]
    fn drop(&mut self) {
        let h = self.obj.lock_handle();
        // Whether this thread holds the lock at all is decided inside, by
        // its own records (a copy of a guard that a parent held when it
        // forked is not the child's to release).
        h.release(sys::thread::tid(), robust::head());
    }
}

macro_rules! lock_type {
    (
        $(#[$doc:meta])*
        $name:ident, $guard:ident, $kind:expr, $recursive:expr, $what:literal, $path:literal
    ) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name {
            h: LockHandle,
        }

        impl SharedObject for $name {
            const SHAPE: Shape = Shape {
                kind: $kind,
                elem: ElemDesc::NONE,
                strides: [0, 0],
                lock: LockMode::Own,
                shares_lock: false,
                single: false,
                liveness: false,
            };
            type Init<'a> = ();

            fn wrap(obj: Object, _lock: Option<&RLock>) -> Result<Self> {
                Ok($name {
                    h: LockHandle::wrap(&obj, $recursive),
                })
            }

            fn segment(&self) -> &Segment {
                &self.h.seg
            }
        }

        crate::shared::shared_object! {
            impl[] $name: $what, $path;
            new() => (); "", "new()", "create(&name)";
        }

        impl $name {
            /// Acquires the lock, blocking while another thread (of any
            /// process) holds it.
            ///
            /// # Errors
            /// [`LockError::OwnerDied`] (with the guard) if the previous
            /// owner died holding it, [`LockError::NotRecoverable`],
            /// [`LockError::Deadlock`].
            #[inline(always)]
            pub fn lock(&self) -> Result<$guard<'_>, LockError<$guard<'_>>> {
                HeldLock::acquire(&self.h, |held| $guard { held })
            }

            /// Acquires the lock if it is free, without blocking.
            ///
            /// When another thread holds it, `try_lock` asks the kernel once
            /// whether that owner is still alive (two system calls), so that
            /// an owner that died is reported here too, on every path.
            ///
            /// # Errors
            /// [`TryLockError::WouldBlock`] if another thread holds it; the
            /// other variants as for [`lock`](Self::lock).
            #[inline(always)]
            pub fn try_lock(&self) -> Result<$guard<'_>, TryLockError<$guard<'_>>> {
                HeldLock::try_acquire(&self.h, None, |held| $guard { held })
            }

            /// Acquires the lock, blocking at most `timeout`.
            ///
            /// # Errors
            /// [`TryLockError::WouldBlock`] if it was still held when the
            /// timeout expired; the other variants as for
            /// [`lock`](Self::lock).
            pub fn lock_timeout(
                &self,
                timeout: Duration,
            ) -> Result<$guard<'_>, TryLockError<$guard<'_>>> {
                HeldLock::try_acquire(&self.h, Some(timeout), |held| $guard { held })
            }

            /// Whether any thread of any process holds the lock now (a
            /// snapshot that may be stale as soon as it is returned).
            pub fn is_locked(&self) -> bool {
                self.h.is_locked()
            }

            /// Whether the calling thread holds the lock.
            pub fn is_held_by_current_thread(&self) -> bool {
                self.h.is_held_by_current_thread()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("name", &self.name())
                    .field("locked", &self.is_locked())
                    .finish()
            }
        }

        #[doc = concat!("Proof that the current thread holds a [`", stringify!($name), "`];")]
        /// releases it when dropped.
        ///
        /// The guard is `!Send`: the hold belongs to the thread whose TID is
        /// in the lock word.
        #[must_use = "if unused the lock will immediately unlock"]
        pub struct $guard<'a> {
            held: HeldLock<'a>,
        }

        impl $guard<'_> {
            /// Declares the protected data repaired after
            /// [`LockError::OwnerDied`] / [`TryLockError::OwnerDied`].
            /// Without it, releasing the guard makes the lock permanently
            /// not recoverable. A no-op on a consistent lock.
            pub fn mark_consistent(&self) {
                self.held.mark_consistent();
            }
        }

        impl fmt::Debug for $guard<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($guard)).finish_non_exhaustive()
            }
        }

        impl<'a> $guard<'a> {
            /// The hold itself (to give it up and take it back: a
            /// condition's wait).
            pub(crate) fn into_held(self) -> HeldLock<'a> {
                self.held
            }

            /// A guard of a hold taken through `self`'s kind of lock.
            pub(crate) fn from_held(held: HeldLock<'a>) -> Self {
                $guard { held }
            }
        }

        impl $name {
            /// Opens the lock object `name` if its identity is `id`.
            fn open_slot_of(name: &str, id: u64) -> Result<$name> {
                let lock = $name::open_object(name)?;
                if lock.h.id != id {
                    return Err(Error::LockMismatch);
                }
                Ok(lock)
            }

            /// The lock of a validated object that `shares_lock`: its own
            /// slot, the separate lock object it records (re-opened by
            /// name), or `given`, checked against the recorded identity.
            pub(crate) fn protecting(obj: &Object, given: Option<&$name>) -> Result<$name> {
                match (obj.layout.lock, &obj.layout.lock_ref, given) {
                    (LockMode::Own, _, None) => Ok($name {
                        h: LockHandle::wrap(obj, $recursive),
                    }),
                    (LockMode::External, Some(r), Some(l)) if l.h.id == r.id => Ok(l.clone()),
                    (LockMode::External, Some(r), None) => match &r.name {
                        Some(n) => $name::open_slot_of(n, r.id),
                        None => Err(Error::LockMismatch),
                    },
                    _ => Err(Error::LockMismatch),
                }
            }

            /// This lock as another object records it; an object with a
            /// name (`named`) may only depend on a named lock object, which
            /// its `open` can re-open.
            pub(crate) fn lock_ref(&self, named: bool) -> Result<LockRef> {
                let h = &self.h;
                if named && (h.name().is_none() || !h.is_lock_object()) {
                    return Err(Error::InvalidArgument(concat!(
                        "a named object's separate lock must be a named ",
                        stringify!($name)
                    )));
                }
                Ok(LockRef {
                    id: h.id,
                    name: h.name().map(str::to_owned),
                })
            }
        }
    };
}

lock_type! {
    /// A recursive lock that lives in shared memory: Python's
    /// `multiprocessing.RLock`, without a semaphore or any other kernel
    /// object.
    ///
    /// The lock word is a futex in the mapped page holding the owner's
    /// kernel TID; the recursion count lives beside it. The thread that
    /// holds it can lock it again; every guard releases one hold. Handles
    /// are cheap to clone and are `Send + Sync`.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let lock = shmsync::RLock::new()?;
    /// let outer = lock.lock().unwrap();
    /// let inner = lock.lock().unwrap(); // same thread: recursion
    /// drop(inner);
    /// assert!(lock.is_locked());
    /// drop(outer);
    /// assert!(!lock.is_locked());
    /// # Ok(()) }
    /// ```
    RLock, RLockGuard, Kind::RLock, true, "recursive lock", "shmsync::RLock"
}

lock_type! {
    /// A non-recursive lock that lives in shared memory: Python's
    /// `multiprocessing.Lock`, without a semaphore or any other kernel
    /// object.
    ///
    /// Relocking by the owning thread is an error
    /// ([`LockError::Deadlock`]), never a hang.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmsync::{Lock, LockError};
    /// let lock = Lock::new()?;
    /// let g = lock.lock().unwrap();
    /// assert!(matches!(lock.lock(), Err(LockError::Deadlock)));
    /// drop(g);
    /// # Ok(()) }
    /// ```
    Lock, LockGuard, Kind::Lock, false, "lock", "shmsync::Lock"
}

impl RLock {
    pub(crate) fn handle(&self) -> &LockHandle {
        &self.h
    }
}

impl Lock {
    pub(crate) fn handle(&self) -> &LockHandle {
        &self.h
    }
}
