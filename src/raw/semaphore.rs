//! The semaphore state machine of [`crate::Semaphore`] and
//! [`crate::BoundedSemaphore`]: a count on one futex word, and holder
//! records from which the permits of dead holders are recovered.
//!
//! # The count word
//!
//! | bits  | meaning                                                        |
//! |-------|----------------------------------------------------------------|
//! | 0–30  | the value: permits available ([`VALUE`], at most [`MAX_VALUE`]) |
//! | 31    | [`WAITERS`]: someone may sleep on the word; a release must wake |
//!
//! Every `u32` is a valid word: no value makes an operation panic,
//! overflow or loop forever (a scribbled value is a wrong number of
//! permits, nothing worse).
//!
//! Transitions:
//! - *acquire*: `v | W? → (v - 1) | W?` for `v > 0` (one `Acquire` CAS); a
//!   thread that has slept takes its permit with `WAITERS` set (others may
//!   still sleep: its own wake-up may have been the only one), and wakes
//!   one more sleeper if permits are left (a release made while it was
//!   woken but not yet running found `WAITERS` clear and woke nobody);
//! - *wait*: on `v = 0`, up to `FutexWord::YIELD_LIMIT` yields of the CPU
//!   and re-reads (no busy spin: a semaphore's releaser is often the very
//!   process the waiter must let run), then `0 → 0 | WAITERS` (CAS) and a
//!   futex wait on that value, in bounded slices ([`SLICE_FIRST`] doubling to [`SLICE_MAX`]);
//!   after each slice that finds no permit, the waiter runs the recovery
//!   hook (the records, below); a waiter that slept and gives up
//!   (deadline) leaves `WAITERS` set (one that never slept never set it);
//! - *release n*: `v | W? → (v + n)` with `WAITERS` cleared (one `Release`
//!   CAS), refused when `v + n` exceeds the caller's bound (private state:
//!   the semaphore's maximum or the bounded semaphore's initial value);
//!   then, if `WAITERS` was set, a wake of one sleeper (`n = 1`) or all.
//!
//! # Holder records
//!
//! A permit held through a guard is recorded so that it can be returned if
//! its holder dies. A record is one word, owned by one thread:
//!
//! | bits  | meaning                                                      |
//! |-------|--------------------------------------------------------------|
//! | 0–21  | the owner's TID ([`REC_TID`]; 0: the record is free)         |
//! | 22–31 | permits it holds through guards ([`REC_HELD_SHIFT`], at most [`REC_HELD_MAX`]) |
//!
//! - a thread *claims* a free record once (`0 → tid`, CAS) and keeps it
//!   while it lives (its held count is its own private state; only it
//!   writes the record afterwards, with plain stores of `tid | held`);
//! - *acquire through a guard*: the count CAS, then the store of `held + 1`;
//! - *release of a guard*: the store of `held - 1`, then the count CAS;
//! - *recovery*: a prober that judges a record's TID dead (the liveness
//!   hook) claims the record with a CAS `tid | k → 0` and returns the `k`
//!   permits (capped at the bound). The CAS makes recovery happen exactly
//!   once, whoever else probes concurrently.
//!
//! ## A holder killed at any instruction
//!
//! The record is written *after* the count RMW on acquire and *before* it
//! on release, so a record never claims a permit the count has not given
//! out: a permit is never counted twice. The price is one window on each
//! side, where a holder killed between its two steps loses one permit for
//! good: after the acquiring CAS and before the record store, and after
//! the record store and before the releasing CAS. A prober killed between
//! its claiming CAS and the return of the permits loses them too (the
//! record's `k`, usually one). Each window is a few instructions long, with
//! no system call inside; every other instruction of acquire, release and
//! recovery leaves a state that the others handle.
//!
//! ## Hostile records
//!
//! Records are read only by probers: a record's TID is judged (never
//! trusted), its `k` is capped at the bound when returned, and an index is
//! never read from the page. A forged record naming a dead (or never
//! existing) TID makes its `k` permits appear; the bound still caps the
//! value.
//!
//! # Ordering
//!
//! The acquiring CAS is `Acquire` and the releasing CAS `Release`: what a
//! releaser wrote before `release` is visible to the thread that takes the
//! permit. The waiters' `WAITERS` CAS is an RMW and continues the release
//! sequence. A recovery acquires the dead holder's writes through the
//! liveness hook (as the lock's does) and passes them on with its
//! releasing CAS. Record stores are `Relaxed`: a record is read only after
//! its owner's death has been judged, which orders every store of the dead
//! owner before the read.

use core::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use core::time::Duration;

use super::word::{yield_until, AtomicWord, Deadline, FutexWord};

/// Bits 0–30: the permits available.
pub const VALUE: u32 = 0x7fff_ffff;
/// Bit 31: waiters may sleep on the word; the next release wakes them.
pub const WAITERS: u32 = 0x8000_0000;
/// The largest value of a semaphore (glibc's `SEM_VALUE_MAX`).
pub const MAX_VALUE: u32 = VALUE;

/// Bits 0–21 of a record: its owner's TID (the kernel's TIDs are below
/// 2^22, `PID_MAX_LIMIT`); 0: free.
pub const REC_TID: u32 = (1 << 22) - 1;
/// Bits 22–31 of a record: the permits its owner holds through guards.
pub const REC_HELD_SHIFT: u32 = 22;
/// The most permits one record counts; further guards of the same thread
/// are not recorded (and not recoverable).
pub const REC_HELD_MAX: u32 = (1 << (32 - REC_HELD_SHIFT)) - 1;

/// The first sleep of a waiter before it re-reads the word.
pub const SLICE_FIRST: Duration = Duration::from_millis(10);
/// The longest sleep of a waiter before it re-reads the word and probes
/// the holders: the extra latency of a lost wake (a releaser killed
/// between its CAS and its wake) and of noticing a dead holder.
pub const SLICE_MAX: Duration = Duration::from_millis(50);

/// The record word of `tid` holding `held` permits.
#[inline]
pub fn record(tid: u32, held: u32) -> u32 {
    (tid & REC_TID) | (held.min(REC_HELD_MAX) << REC_HELD_SHIFT)
}

/// A release that would take the value past the bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overflow;

/// A semaphore's count on one futex word.
///
/// `#[repr(transparent)]`: on the mapped page it is overlaid on the word
/// that every process shares.
#[repr(transparent)]
#[derive(Debug)]
pub struct RawSemaphore<W: FutexWord> {
    word: W,
}

impl<W: FutexWord> RawSemaphore<W> {
    /// A semaphore holding `value` permits (heap, loom and fuzz instances:
    /// on the page the creator stores the word).
    pub fn new(value: u32) -> Self {
        RawSemaphore {
            word: W::new(value & VALUE),
        }
    }

    /// The word, as a peer process sees it.
    pub fn word(&self) -> &W {
        &self.word
    }

    #[inline(always)]
    fn w(&self) -> &W::Atomic {
        self.word.atomic()
    }

    /// The permits available now (a snapshot).
    #[inline]
    pub fn value(&self) -> u32 {
        // Relaxed: a snapshot that publishes and acquires nothing.
        self.w().load(Relaxed) & VALUE
    }

    /// Takes a permit if one is available, without waiting.
    #[inline]
    pub fn try_acquire(&self) -> bool {
        let w = self.w();
        // Relaxed: only a guess for the CAS, which re-checks it.
        let mut cur = w.load(Relaxed);
        while cur & VALUE != 0 {
            // Acquire: pairs with the releasing CAS (module docs).
            match w.compare_exchange(cur, cur - 1, Acquire, Relaxed) {
                Ok(_) => return true,
                Err(found) => cur = found,
            }
        }
        false
    }

    /// Takes a permit, waiting until one is available or `deadline`
    /// expires (`None`: never). After every slice of sleep that found no
    /// permit, calls `recover`, which may return permits of dead holders
    /// to the semaphore (it returns how many).
    ///
    /// `Ok(recovered)`: a permit was taken, after `recovered` permits had
    /// been returned by this call's `recover`s; `Err(recovered)`: the
    /// deadline expired.
    pub fn acquire(
        &self,
        mut deadline: Option<&mut dyn Deadline>,
        recover: &mut dyn FnMut() -> u32,
    ) -> Result<u32, u32> {
        if self.try_acquire() {
            return Ok(0);
        }
        let w = self.w();
        // Relaxed: only a guess for the CASes, which re-check it.
        let cur = w.load(Relaxed);
        // A releaser about to answer is seen without sleeping (and then
        // needs no wake): `FutexWord::YIELD_LIMIT`. Relaxed as above.
        let mut cur = yield_until(&self.word, cur, Relaxed, |v| v & VALUE != 0);
        let mut slept = false;
        let mut probed = false;
        let mut recovered = 0u32;
        let mut slice = SLICE_FIRST;
        let mut next: Option<Duration> = None;
        loop {
            if cur & VALUE != 0 {
                // A sleeper takes its permit with WAITERS set: other
                // sleepers may depend on the next release's wake.
                let keep = if slept { WAITERS } else { 0 };
                // Acquire: pairs with the releasing CAS (module docs).
                match w.compare_exchange(cur, (cur - 1) | keep, Acquire, Relaxed) {
                    Ok(_) => {
                        // Permits left: another sleeper may have missed
                        // its wake (a release while this one was woken
                        // but not yet running found WAITERS clear).
                        if slept && (cur - 1) & VALUE != 0 {
                            self.word.wake_one();
                        }
                        return Ok(recovered);
                    }
                    Err(found) => {
                        cur = found;
                        continue;
                    }
                }
            }
            if slept && !probed {
                probed = true;
                recovered = recovered.saturating_add(recover());
                cur = w.load(Relaxed);
                continue;
            }
            // The next slice, asked once per sleep.
            let t = match next.take() {
                Some(t) => t,
                None => match deadline.as_deref_mut() {
                    None => slice,
                    Some(d) => match d.remaining() {
                        Some(left) => left.min(slice),
                        // A waiter that never slept announced nothing; one
                        // that slept leaves WAITERS set, so that it never
                        // strands the others (module docs).
                        None if !slept || cur & WAITERS != 0 => return Err(recovered),
                        None => {
                            // Relaxed: as the announcing CAS below.
                            if let Err(found) =
                                w.compare_exchange(cur, cur | WAITERS, Relaxed, Relaxed)
                            {
                                cur = found;
                                continue;
                            }
                            return Err(recovered);
                        }
                    },
                },
            };
            if cur & WAITERS == 0 {
                // Relaxed: the value is only slept on; an RMW, so the
                // release sequence of the last release continues.
                match w.compare_exchange(cur, cur | WAITERS, Relaxed, Relaxed) {
                    Ok(_) => cur |= WAITERS,
                    Err(found) => {
                        next = Some(t);
                        cur = found;
                        continue;
                    }
                }
            }
            self.word.wait(cur, Some(t));
            slept = true;
            probed = false;
            slice = slice.saturating_mul(2).min(SLICE_MAX);
            cur = w.load(Relaxed);
        }
    }

    /// Returns `n` permits, unless the value would exceed `bound`
    /// ([`Overflow`], nothing changed); wakes sleepers if there are any.
    pub fn release(&self, n: u32, bound: u32) -> Result<(), Overflow> {
        let w = self.w();
        let bound = bound.min(MAX_VALUE);
        // Relaxed: only a guess for the CAS, which re-checks it.
        let mut cur = w.load(Relaxed);
        loop {
            let new = match (cur & VALUE).checked_add(n) {
                Some(v) if v <= bound => v,
                _ => return Err(Overflow),
            };
            // Release: pairs with the acquiring CAS (module docs).
            match w.compare_exchange(cur, new, Release, Relaxed) {
                Ok(_) => {
                    if cur & WAITERS != 0 {
                        if n == 1 {
                            self.word.wake_one();
                        } else {
                            self.word.wake_all();
                        }
                    }
                    return Ok(());
                }
                Err(found) => cur = found,
            }
        }
    }

    /// Returns up to `n` permits, as many as `bound` allows; how many.
    pub fn release_capped(&self, n: u32, bound: u32) -> u32 {
        let mut n = n;
        while n > 0 {
            let room = bound.min(MAX_VALUE).saturating_sub(self.value());
            let k = n.min(room);
            if k == 0 {
                return 0;
            }
            if self.release(k, bound).is_ok() {
                return k;
            }
            // The value moved meanwhile: try again with what fits now.
            n = k;
        }
        0
    }
}

/// The holder records of a semaphore: words owned by one thread each
/// (module docs, "Holder records").
#[derive(Debug, Clone, Copy)]
pub struct Records<'a, A: AtomicWord<Int = u32>> {
    recs: &'a [A],
}

impl<'a, A: AtomicWord<Int = u32>> Records<'a, A> {
    /// The records in `recs` (a slice of private length: the count of
    /// words comes from the validated layout, never from the page).
    pub fn new(recs: &'a [A]) -> Self {
        Records { recs }
    }

    /// How many records there are.
    pub fn capacity(&self) -> usize {
        self.recs.len()
    }

    /// Record `i` as a peer sees it (`None` out of range).
    pub fn get(&self, i: usize) -> Option<u32> {
        // Relaxed: a snapshot.
        self.recs.get(i).map(|r| r.load(Relaxed))
    }

    /// Claims a record for `tid` (non-zero, below 2^22): one that already
    /// names it holding nothing (claimed earlier by this thread, which
    /// forgot its index: it is the only writer of records naming it), a
    /// free one, or else one whose owner `is_dead` judges dead while it
    /// holds nothing. `None` when every record is taken by a live (or
    /// undecided) owner or holds permits.
    pub fn claim(&self, tid: u32, mut is_dead: impl FnMut(u32) -> bool) -> Option<usize> {
        let mine = record(tid, 0);
        // Relaxed: the record carries no data.
        if let Some(i) = self.recs.iter().position(|r| r.load(Relaxed) == mine) {
            return Some(i);
        }
        for (i, r) in self.recs.iter().enumerate() {
            // Relaxed: the record carries no data.
            if r.load(Relaxed) == 0 && r.compare_exchange(0, mine, Relaxed, Relaxed).is_ok() {
                return Some(i);
            }
        }
        for (i, r) in self.recs.iter().enumerate() {
            // Relaxed: as above; a record that holds nothing returns
            // nothing, so no death needs to be acquired.
            let cur = r.load(Relaxed);
            let owner = cur & REC_TID;
            if cur >> REC_HELD_SHIFT == 0
                && owner != tid
                && (owner == 0 || is_dead(owner))
                && r.compare_exchange(cur, mine, Relaxed, Relaxed).is_ok()
            {
                return Some(i);
            }
        }
        None
    }

    /// The owner's store of its record `i`: `tid` holding `held` permits
    /// (out of range: nothing).
    #[inline]
    pub fn set(&self, i: usize, tid: u32, held: u32) {
        if let Some(r) = self.recs.get(i) {
            // Relaxed: read only after the owner's death has been judged
            // (module docs, "Ordering").
            r.store(record(tid, held), Relaxed);
        }
    }

    /// Returns the permits of every record whose owner `is_dead` judges
    /// dead to `sem` (capped at `bound`), each record exactly once
    /// whatever other probers do; returns how many permits it returned.
    pub fn recover<W: FutexWord>(
        &self,
        sem: &RawSemaphore<W>,
        bound: u32,
        mut is_dead: impl FnMut(u32) -> bool,
    ) -> u32 {
        let mut returned = 0u32;
        for r in self.recs {
            // Relaxed: a guess; the claiming CAS below re-checks it, and
            // the death is acquired by `is_dead`.
            let cur = r.load(Relaxed);
            let owner = cur & REC_TID;
            let held = cur >> REC_HELD_SHIFT;
            if owner == 0 || held == 0 || !is_dead(owner) {
                continue;
            }
            // The claim: exactly one prober wins the record.
            if r.compare_exchange(cur, 0, Relaxed, Relaxed).is_ok() {
                returned = returned.saturating_add(sem.release_capped(held, bound));
            }
        }
        returned
    }
}
