#![allow(unsafe_code)] // `unlock` and `mark_consistent` are `unsafe fn`s: the caller must hold the lock
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
//! # Holds are counted privately
//!
//! How many times a thread holds a recursive lock is decided by a count in
//! the caller's own memory ([`Holds`]), never by a value read from the
//! page: a peer that rewrites the page cannot make a holder release too
//! early, too late or not at all. Every acquire and release takes the
//! caller's `&mut Holds` and keeps it exact. The word's owner TID is
//! believed only together with that count: a word that names the calling
//! thread while its count is zero (a thread that reused a dead owner's TID,
//! or a peer that wrote it) is taken over as [`Acquired::OwnerDied`].
//!
//! # The other fields
//!
//! `extra` (a copy of the owner's holds beyond the first, for observers)
//! and `state` (consistency after an owner died) are written only by the
//! current owner, with `Relaxed` accesses: the `Acquire` that took the
//! word and the `Release` that gives it back order them between successive
//! owners, exactly as std's `ReentrantLock` leaves the synchronisation of
//! its `lock_count` to the mutex. Nothing here decides anything by
//! `extra`; `state` only decides whether a release leaves the lock
//! recoverable, which a peer that can write the page can spoil anyway.

use core::num::NonZeroU32;
use core::sync::atomic::Ordering::{Acquire, Relaxed, Release};

use super::word::{AtomicWord, Deadline, FutexWord, Liveness};

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

/// The calling thread's own count of its holds on one lock.
///
/// Kept in memory that other processes cannot write (a local variable, a
/// thread-local record), and passed to every acquire and release of that
/// thread on that lock. Zero: the thread does not hold the lock.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Holds(u32);

impl Holds {
    /// No holds.
    pub const NONE: Holds = Holds(0);

    /// A count of `n` holds (restored from the caller's own records).
    #[inline]
    pub const fn new(n: u32) -> Holds {
        Holds(n)
    }

    /// The number of holds.
    #[inline]
    pub const fn get(self) -> u32 {
        self.0
    }
}

/// A robust, optionally recursive mutex on three 32-bit words.
///
/// `#[repr(C)]`: on the mapped page this struct is overlaid on bytes that
/// other processes share, so its layout is part of the file format.
///
/// The fields are the crate's (`src/shm/header.rs` pins their offsets);
/// models, fuzzers and tests see them through [`RawMutex::word`],
/// [`RawMutex::extra`] and [`RawMutex::state`], as a peer process would.
#[repr(C)]
#[derive(Debug)]
pub struct RawMutex<W: FutexWord> {
    /// Owner TID | `OWNER_DIED` | `WAITERS` (see the module docs).
    pub(crate) word: W,
    /// A copy of the owner's holds beyond the first, for observers (the
    /// owner's [`Holds`] decide).
    pub(crate) extra: W::Atomic,
    /// `CONSISTENT` or `INCONSISTENT`; meaningful only to the owner.
    pub(crate) state: W::Atomic,
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
            extra: AtomicWord::new(0),
            state: AtomicWord::new(CONSISTENT),
        }
    }

    /// The lock word: its futex operations, and its atomic ones through
    /// [`FutexWord::atomic`].
    #[inline]
    pub fn word(&self) -> &W {
        &self.word
    }

    /// The word holding the owner's holds beyond the first (observers
    /// only).
    #[inline]
    pub fn extra(&self) -> &W::Atomic {
        &self.extra
    }

    /// The word holding the consistency state (meaningful to the owner
    /// only).
    #[inline]
    pub fn state(&self) -> &W::Atomic {
        &self.state
    }

    /// The lock word's atomic operations.
    #[inline(always)]
    fn w(&self) -> &W::Atomic {
        self.word.atomic()
    }

    /// Takes the lock without blocking. `held` is the calling thread's own
    /// count of its holds on this lock, updated on success.
    ///
    /// # Errors
    /// [`Refused::WouldBlock`] if another thread holds it; see [`Refused`].
    #[inline]
    pub fn try_lock(
        &self,
        me: NonZeroU32,
        held: &mut Holds,
        recursive: bool,
    ) -> Result<Acquired, Refused> {
        match self.first_attempt(me, held, recursive) {
            Ok(r) => r,
            Err(cur) => self.try_lock_slow(me.get(), cur, held),
        }
    }

    /// What every acquire tries first: a relock decided by `held` alone,
    /// or the `0 → me` CAS. `Err` carries the busy word it found.
    #[inline(always)]
    fn first_attempt(
        &self,
        me: NonZeroU32,
        held: &mut Holds,
        recursive: bool,
    ) -> Result<Result<Acquired, Refused>, u32> {
        if held.0 != 0 {
            return Ok(self.relock(held, recursive));
        }
        // Acquire: pairs with the Release swap in `unlock`, so the previous
        // owner's writes to the protected data happen before ours.
        match self.w().compare_exchange(0, me.get(), Acquire, Relaxed) {
            Ok(_) => {
                held.0 = 1;
                Ok(Ok(Acquired::Locked))
            }
            Err(cur) => Err(cur),
        }
    }

    #[cold]
    fn try_lock_slow(&self, me: u32, cur: u32, held: &mut Holds) -> Result<Acquired, Refused> {
        match self.step(me, cur, 0, held) {
            Step::Done(r) => r,
            Step::Busy(_) => Err(Refused::WouldBlock),
        }
    }

    /// Another hold by a thread whose own count says it holds the lock.
    /// The word is not consulted: the count is the caller's, the word is
    /// anybody's.
    #[cold]
    fn relock(&self, held: &mut Holds, recursive: bool) -> Result<Acquired, Refused> {
        // At most u32::MAX holds.
        match held.0.checked_add(1) {
            Some(n) if recursive => {
                held.0 = n;
                // Relaxed: a copy for observers, written by the owner only.
                self.extra.store(n - 1, Relaxed);
                Ok(Acquired::Recursive)
            }
            _ => Err(Refused::Deadlock),
        }
    }

    /// Takes the lock, sleeping while another thread holds it; with a
    /// `deadline`, gives up with [`Refused::WouldBlock`] once it has passed.
    /// With `liveness`, sleeps are capped at its probe interval and an owner
    /// it reports dead is marked so ([`RawMutex::mark_owner_dead`]), which
    /// makes the lock free with `OWNER_DIED`. `held` as for
    /// [`RawMutex::try_lock`].
    ///
    /// # Errors
    /// See [`Refused`].
    #[inline]
    pub fn lock(
        &self,
        me: NonZeroU32,
        held: &mut Holds,
        recursive: bool,
        deadline: Option<&mut dyn Deadline>,
        liveness: Option<&mut dyn Liveness>,
    ) -> Result<Acquired, Refused> {
        match self.first_attempt(me, held, recursive) {
            Ok(r) => r,
            Err(cur) => self.lock_contended(me.get(), cur, held, deadline, liveness),
        }
    }

    #[cold]
    fn lock_contended(
        &self,
        me: u32,
        mut cur: u32,
        held: &mut Holds,
        mut deadline: Option<&mut dyn Deadline>,
        mut liveness: Option<&mut dyn Liveness>,
    ) -> Result<Acquired, Refused> {
        // Once this thread has slept it acquires with WAITERS set: it cannot
        // know whether other sleepers remain, so the next unlock must wake.
        let mut sticky = 0;
        let mut polls = 0;
        loop {
            match self.step(me, cur, sticky, held) {
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
                cur = self.w().load(Relaxed);
                continue;
            }
            if cur & WAITERS == 0 {
                // Relaxed: only announces a sleeper; no data is published.
                if let Err(now) = self
                    .w()
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
            cur = self.w().load(Relaxed);
            if cur == seen {
                if let Some(l) = liveness.as_deref_mut() {
                    if l.owner_is_dead(cur) {
                        if let Some(dead) = NonZeroU32::new(cur & TID_MASK) {
                            self.mark_owner_dead(dead);
                        }
                        cur = self.w().load(Relaxed);
                    }
                }
            }
        }
    }

    /// One attempt on the value `cur` just read, by a thread that does not
    /// hold the lock (`held` is zero).
    #[inline]
    fn step(&self, me: u32, mut cur: u32, sticky: u32, held: &mut Holds) -> Step {
        loop {
            let owner = cur & TID_MASK;
            // Free (possibly with OWNER_DIED and/or WAITERS left in it), or
            // naming this thread although it holds nothing: a thread that
            // reused a dead owner's TID, or a value a peer wrote. The latter
            // is taken over like a dead owner's lock.
            if owner == 0 || owner == me {
                let new = me | (cur & WAITERS) | sticky;
                // Acquire: pairs with the Release swap in `unlock` (or the
                // kernel's atomic update of a dead owner's word).
                match self.w().compare_exchange(cur, new, Acquire, Relaxed) {
                    Ok(_) => {
                        held.0 = 1;
                        if cur & OWNER_DIED != 0 || owner == me {
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
            if owner == NOT_RECOVERABLE {
                return Step::Done(Err(Refused::NotRecoverable));
            }
            return Step::Busy(cur);
        }
    }

    /// Releases one hold of the lock. `held` is the calling thread's own
    /// count, decremented here. Returns `true` when this was the last hold
    /// and the lock is now free (or, if it was left inconsistent,
    /// permanently unrecoverable); `false` (doing nothing) when `held` is
    /// zero.
    ///
    /// # Safety
    /// - the calling thread, identified by `me`, holds the lock `held`
    ///   times.
    ///
    /// (Not a memory-safety requirement of this struct itself, but callers
    /// use the lock to protect data, which a wrong unlock would expose.)
    #[inline]
    pub unsafe fn unlock(&self, me: NonZeroU32, held: &mut Holds) -> bool {
        // SAFETY: forwarded to the caller.
        unsafe { self.unlock_with(me, held, || {}) }
    }

    /// [`RawMutex::unlock`], calling `before_release` on the last hold just
    /// before the word is released (the robust-list bookkeeping of the
    /// production lock runs there).
    ///
    /// # Safety
    /// As for [`RawMutex::unlock`].
    #[inline]
    pub unsafe fn unlock_with(
        &self,
        _me: NonZeroU32,
        held: &mut Holds,
        before_release: impl FnOnce(),
    ) -> bool {
        match held.0 {
            0 => return false,
            1 => held.0 = 0,
            n => {
                held.0 = n - 1;
                // Relaxed: a copy for observers, written by the owner only.
                self.extra.store(n - 2, Relaxed);
                return false;
            }
        }
        before_release();
        if self.state.load(Relaxed) == INCONSISTENT {
            self.poison();
            return true;
        }
        // Release: pairs with the Acquire of the next owner's CAS.
        let old = self.w().swap(0, Release);
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
        self.w().swap(NOT_RECOVERABLE, Release);
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

    /// How many times the owner holds the lock, as its copy in the page
    /// says (0 while free; a Relaxed snapshot for observers: the owner's
    /// [`Holds`] decide).
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
        self.w().load(Relaxed) & TID_MASK == me.get()
    }

    /// Whether some thread holds the lock right now (a racy snapshot).
    #[inline]
    pub fn is_locked(&self) -> bool {
        let owner = self.w().load(Relaxed) & TID_MASK;
        owner != 0 && owner != NOT_RECOVERABLE
    }

    /// What the kernel does to the word of a thread `dead` that dies holding
    /// the lock (robust list walk, `handle_futex_death`): clear the TID, set
    /// `OWNER_DIED`, keep `WAITERS`, wake one waiter if there were any.
    /// Returns `false` (and does nothing) if `dead` does not own the word.
    ///
    /// Used by the liveness fallback, by the loom models and by the fuzzer.
    pub fn mark_owner_dead(&self, dead: NonZeroU32) -> bool {
        let mut cur = self.w().load(Relaxed);
        loop {
            if cur & TID_MASK != dead.get() {
                return false;
            }
            let new = (cur & WAITERS) | OWNER_DIED;
            // Release: the dead owner's writes are (at best) as visible as
            // the kernel makes them; the next owner's Acquire pairs with this.
            match self.w().compare_exchange(cur, new, Release, Relaxed) {
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
