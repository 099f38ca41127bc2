//! The lock state machine shared by [`crate::Lock`] and [`crate::RLock`].
//!
//! # The word
//!
//! The lock word has the kernel's robust-futex format, so that the kernel
//! can release the lock of a thread that dies holding it
//! (`Documentation/locking/robust-futex-ABI.rst`):
//!
//! | bits  | meaning                                                     |
//! |-------|-------------------------------------------------------------|
//! | 0–29  | kernel TID of the owner, 0 when free ([`TID_MASK`])         |
//! | 30    | [`OWNER_DIED`]: the owner died holding it (set by the kernel)|
//! | 31    | [`WAITERS`]: someone may sleep on the word; unlock must wake |
//!
//! | word                      | state                                        |
//! |---------------------------|----------------------------------------------|
//! | `0`                       | free                                         |
//! | `tid`                     | held by `tid`, nobody asleep                 |
//! | `tid \| WAITERS`          | held by `tid`, waiters may be asleep         |
//! | `OWNER_DIED [\| WAITERS]` | free, but its last owner died holding it     |
//! | `NOT_RECOVERABLE [\| ..]` | permanently unusable                         |
//!
//! Transitions:
//! - *acquire*: `0 → me`; `OWNER_DIED[|W] → me[|W]` (reported as
//!   [`Acquired::OwnerDied`]); a thread that has slept acquires with
//!   `WAITERS`, because it cannot know whether others still sleep;
//! - *wait*: `tid → tid | WAITERS`, then sleep on that value;
//! - *release*: `me[|W] → 0`, waking one sleeper if `WAITERS` was set; a lock
//!   taken over from a dead owner and released without
//!   [`RawMutex::mark_consistent`] becomes `NOT_RECOVERABLE` instead and
//!   wakes everybody, as POSIX robust mutexes do;
//! - *owner death* (the kernel, or the liveness fallback acting for it):
//!   `tid[|W] → OWNER_DIED[|W]`.
//!
//! `NOT_RECOVERABLE` is the TID value `0x3fff_ffff`, which no thread can
//! have (Linux's `pid_max` is at most 2²²), so the kernel never touches it.
//!
//! # The other fields
//!
//! `extra` (the owner's holds beyond the first) and `state` (consistency
//! after an owner died) are read and written only by the current owner, with
//! `Relaxed` accesses:
//! the `Acquire` that took the word and the `Release` that gives it back
//! order them between successive owners, exactly as std's `ReentrantLock`
//! leaves the synchronisation of its `lock_count` to the mutex.
//!
//! `extra` is 0 whenever the lock is free, so the first acquire and the
//! last release need not write it: only recursion does. A dead owner's
//! leftover is reset by the thread that takes the lock over.

use core::num::NonZeroU32;
use core::sync::atomic::Ordering::{Acquire, Relaxed, Release};

use super::word::{Deadline, FutexWord, Liveness};

/// Bits 0–29: the owner's kernel TID (`FUTEX_TID_MASK`).
pub const TID_MASK: u32 = 0x3fff_ffff;
/// Bit 30: the owner died holding the lock (`FUTEX_OWNER_DIED`).
pub const OWNER_DIED: u32 = 0x4000_0000;
/// Bit 31: threads may be asleep on the word (`FUTEX_WAITERS`).
pub const WAITERS: u32 = 0x8000_0000;
/// The owner value of a lock that can never be taken again.
pub const NOT_RECOVERABLE: u32 = TID_MASK;

/// `state`: the data is consistent.
const CONSISTENT: u32 = 0;
/// `state`: the lock was taken over from a dead owner and the new owner has
/// not called `mark_consistent` yet.
const INCONSISTENT: u32 = 1;

/// How a successful acquire went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquired {
    /// The lock was free; the caller now holds it once.
    Locked,
    /// The caller already held this recursive lock; the count went up.
    Recursive,
    /// The previous owner died holding the lock. The caller holds it and the
    /// lock stays *inconsistent* until [`RawMutex::mark_consistent`].
    OwnerDied,
}

/// Why an acquire did not succeed. The caller does not hold the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Held by another thread (`try_lock`) or still held at the deadline.
    WouldBlock,
    /// The caller already holds it and cannot take it again: a
    /// non-recursive lock, or a recursion count at its limit.
    Deadlock,
    /// A previous owner released it without repairing it after an owner
    /// death; it can never be taken again.
    NotRecoverable,
}

/// A robust, optionally recursive mutex on three 32-bit words.
///
/// `#[repr(C)]`: on the mapped page this struct is overlaid on bytes that
/// other processes share, so its layout is part of the file format.
#[repr(C)]
#[derive(Debug)]
pub struct RawMutex<W> {
    /// Owner TID | `OWNER_DIED` | `WAITERS` (see the module docs).
    pub word: W,
    /// The owner's holds beyond the first (0 while free); meaningful only
    /// to the owner.
    pub extra: W,
    /// `CONSISTENT` or `INCONSISTENT`; meaningful only to the owner.
    pub state: W,
}

/// What the next step of an acquire should be.
enum Step {
    Done(Result<Acquired, Refused>),
    /// Held by someone else; the word read was this.
    Busy(u32),
}

impl<W: FutexWord> Default for RawMutex<W> {
    fn default() -> Self {
        Self::new()
    }
}

impl<W: FutexWord> RawMutex<W> {
    /// A free, consistent lock (heap, loom and fuzz instances; locks in a
    /// mapping start as zeroed bytes, which is the same state).
    pub fn new() -> Self {
        RawMutex {
            word: W::new(0),
            extra: W::new(0),
            state: W::new(CONSISTENT),
        }
    }

    /// Takes the lock without blocking.
    ///
    /// # Errors
    /// [`Refused::WouldBlock`] if another thread holds it; see [`Refused`].
    #[inline]
    pub fn try_lock(&self, me: NonZeroU32, recursive: bool) -> Result<Acquired, Refused> {
        let me = me.get();
        // Acquire: pairs with the Release swap in `unlock`, so the previous
        // owner's writes to the protected data happen before ours.
        match self.word.compare_exchange(0, me, Acquire, Relaxed) {
            // `extra` is already 0: the word was free.
            Ok(_) => Ok(Acquired::Locked),
            Err(cur) => self.try_lock_slow(me, cur, recursive),
        }
    }

    #[cold]
    fn try_lock_slow(&self, me: u32, cur: u32, recursive: bool) -> Result<Acquired, Refused> {
        match self.step(me, cur, 0, recursive) {
            Step::Done(r) => r,
            Step::Busy(_) => Err(Refused::WouldBlock),
        }
    }

    /// Takes the lock, sleeping while another thread holds it; with a
    /// `deadline`, gives up with [`Refused::WouldBlock`] once it has passed.
    /// With `liveness`, sleeps are capped at its probe interval and an owner
    /// it reports dead is marked so ([`RawMutex::mark_owner_dead`]), which
    /// makes the lock free with `OWNER_DIED`.
    ///
    /// # Errors
    /// See [`Refused`].
    #[inline]
    pub fn lock(
        &self,
        me: NonZeroU32,
        recursive: bool,
        deadline: Option<&mut dyn Deadline>,
        liveness: Option<&mut dyn Liveness>,
    ) -> Result<Acquired, Refused> {
        let me = me.get();
        // Acquire: pairs with the Release swap in `unlock`.
        match self.word.compare_exchange(0, me, Acquire, Relaxed) {
            Ok(_) => Ok(Acquired::Locked),
            Err(cur) => self.lock_contended(me, cur, recursive, deadline, liveness),
        }
    }

    #[cold]
    fn lock_contended(
        &self,
        me: u32,
        mut cur: u32,
        recursive: bool,
        mut deadline: Option<&mut dyn Deadline>,
        mut liveness: Option<&mut dyn Liveness>,
    ) -> Result<Acquired, Refused> {
        // Once this thread has slept it acquires with WAITERS set: it cannot
        // know whether other sleepers remain, so the next unlock must wake.
        let mut sticky = 0;
        let mut polls = 0;
        loop {
            match self.step(me, cur, sticky, recursive) {
                Step::Done(r) => return r,
                Step::Busy(busy) => cur = busy,
            }
            // Spin a little with loads only, while nobody sleeps: a short
            // critical section in another process often ends meanwhile.
            // Backing off exponentially between polls leaves the cache line
            // to the owner.
            if polls < W::SPIN_LIMIT && cur & WAITERS == 0 {
                for _ in 0..1u32 << polls.min(7) {
                    W::spin_hint();
                }
                polls += 1;
                cur = self.word.load(Relaxed);
                continue;
            }
            if cur & WAITERS == 0 {
                // Relaxed: only announces a sleeper; no data is published.
                if let Err(now) = self
                    .word
                    .compare_exchange(cur, cur | WAITERS, Relaxed, Relaxed)
                {
                    cur = now;
                    continue;
                }
            }
            sticky = WAITERS;
            let mut timeout = match deadline.as_deref_mut() {
                None => None,
                Some(d) => match d.remaining() {
                    Some(t) => Some(t),
                    None => return Err(Refused::WouldBlock),
                },
            };
            if let Some(p) = liveness
                .as_deref_mut()
                .and_then(|l| l.probe_interval(cur | WAITERS))
            {
                timeout = Some(timeout.map_or(p, |t| t.min(p)));
            }
            self.word.wait(cur | WAITERS, timeout);
            let seen = cur | WAITERS;
            cur = self.word.load(Relaxed);
            if cur == seen {
                if let Some(l) = liveness.as_deref_mut() {
                    if l.owner_is_dead(cur) {
                        if let Some(dead) = NonZeroU32::new(cur & TID_MASK) {
                            self.mark_owner_dead(dead);
                        }
                        cur = self.word.load(Relaxed);
                    }
                }
            }
        }
    }

    /// One attempt on the value `cur` just read.
    #[inline]
    fn step(&self, me: u32, mut cur: u32, sticky: u32, recursive: bool) -> Step {
        loop {
            let owner = cur & TID_MASK;
            if owner == 0 {
                // Free, possibly with OWNER_DIED and/or WAITERS left in it.
                let new = me | (cur & WAITERS) | sticky;
                // Acquire: pairs with the Release swap in `unlock` (or the
                // kernel's atomic update of a dead owner's word).
                match self.word.compare_exchange(cur, new, Acquire, Relaxed) {
                    Ok(_) => {
                        if cur & OWNER_DIED != 0 {
                            // The dead owner's holds die with it.
                            self.extra.store(0, Relaxed);
                            self.state.store(INCONSISTENT, Relaxed);
                            return Step::Done(Ok(Acquired::OwnerDied));
                        }
                        return Step::Done(Ok(Acquired::Locked));
                    }
                    Err(now) => {
                        cur = now;
                        continue;
                    }
                }
            }
            if owner == me {
                // Relaxed is enough: only this thread stores its own TID, so
                // reading it means this thread holds the lock (coherence).
                if !recursive {
                    return Step::Done(Err(Refused::Deadlock));
                }
                // At most u32::MAX holds, so that `holds` cannot overflow.
                let n = self.extra.load(Relaxed);
                return Step::Done(if n < u32::MAX - 1 {
                    self.extra.store(n + 1, Relaxed);
                    Ok(Acquired::Recursive)
                } else {
                    Err(Refused::Deadlock)
                });
            }
            if owner == NOT_RECOVERABLE {
                return Step::Done(Err(Refused::NotRecoverable));
            }
            return Step::Busy(cur);
        }
    }

    /// Releases one hold of the lock. Returns `true` when this was the last
    /// hold and the lock is now free (or, if it was left inconsistent,
    /// permanently unrecoverable).
    ///
    /// # Safety
    /// - the calling thread, identified by `me`, holds the lock.
    ///
    /// (Not a memory-safety requirement of this struct itself, but callers
    /// use the lock to protect data, which a wrong unlock would expose.)
    #[inline]
    pub unsafe fn unlock(&self, me: NonZeroU32) -> bool {
        // SAFETY: forwarded to the caller.
        unsafe { self.unlock_with(me, || {}) }
    }

    /// [`RawMutex::unlock`], calling `before_release` on the last hold just
    /// before the word is released (the robust-list bookkeeping of the
    /// production lock runs there).
    ///
    /// # Safety
    /// As for [`RawMutex::unlock`].
    #[inline]
    pub unsafe fn unlock_with(&self, me: NonZeroU32, before_release: impl FnOnce()) -> bool {
        debug_assert_eq!(self.word.load(Relaxed) & TID_MASK, me.get());
        let n = self.extra.load(Relaxed);
        if n > 0 {
            self.extra.store(n - 1, Relaxed);
            return false;
        }
        before_release();
        if self.state.load(Relaxed) == INCONSISTENT {
            self.poison();
            return true;
        }
        // Release: pairs with the Acquire of the next owner's CAS.
        let old = self.word.swap(0, Release);
        if old & WAITERS != 0 {
            self.word.wake_one();
        }
        true
    }

    /// Released while inconsistent: nobody may take it again.
    #[cold]
    fn poison(&self) {
        // Release: pairs with lockers' Acquire CAS/loads; there is nothing
        // for them to read, but the state store stays ordered before.
        self.word.swap(NOT_RECOVERABLE, Release);
        self.word.wake_all();
    }

    /// Declares the protected data repaired after [`Acquired::OwnerDied`].
    ///
    /// # Safety
    /// - the calling thread holds the lock.
    #[inline]
    pub unsafe fn mark_consistent(&self) {
        self.state.store(CONSISTENT, Relaxed);
    }

    /// How many times the owner holds the lock (0 while free; a Relaxed
    /// snapshot, exact for the owner itself).
    pub fn holds(&self) -> u32 {
        if self.is_locked() {
            self.extra.load(Relaxed).saturating_add(1)
        } else {
            0
        }
    }

    /// Whether the lock is held by the thread `me` (a Relaxed snapshot: exact
    /// for `me` itself, a hint for anyone else).
    #[inline]
    pub fn is_held_by(&self, me: NonZeroU32) -> bool {
        self.word.load(Relaxed) & TID_MASK == me.get()
    }

    /// Whether some thread holds the lock right now (a racy snapshot).
    #[inline]
    pub fn is_locked(&self) -> bool {
        let owner = self.word.load(Relaxed) & TID_MASK;
        owner != 0 && owner != NOT_RECOVERABLE
    }

    /// What the kernel does to the word of a thread `dead` that dies holding
    /// the lock (robust list walk, `handle_futex_death`): clear the TID, set
    /// `OWNER_DIED`, keep `WAITERS`, wake one waiter if there were any.
    /// Returns `false` (and does nothing) if `dead` does not own the word.
    ///
    /// Used by the liveness fallback, by the loom models and by the fuzzer.
    pub fn mark_owner_dead(&self, dead: NonZeroU32) -> bool {
        let mut cur = self.word.load(Relaxed);
        loop {
            if cur & TID_MASK != dead.get() {
                return false;
            }
            let new = (cur & WAITERS) | OWNER_DIED;
            // Release: the dead owner's writes are (at best) as visible as
            // the kernel makes them; the next owner's Acquire pairs with this.
            match self.word.compare_exchange(cur, new, Release, Relaxed) {
                Ok(_) => {
                    if cur & WAITERS != 0 {
                        self.word.wake_one();
                    }
                    return true;
                }
                Err(now) => cur = now,
            }
        }
    }
}
