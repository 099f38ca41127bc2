//! The ring state machine of [`crate::Queue`] and [`crate::MessageQueue`]:
//! a bounded multi-producer multi-consumer FIFO of slots in shared memory,
//! with no lock, that a process killed at any instruction cannot wedge.
//!
//! # Words
//!
//! - `head`, `tail`: the next position to take from and to put at (hints:
//!   the slots decide, these only say where to look). A position is `lap |
//!   index` with `index < capacity` in the low bits and the lap in the bits
//!   from `one_lap = capacity.next_power_of_two()` up; the position after
//!   the last index of a lap is index 0 of the next lap (as crossbeam's
//!   `ArrayQueue`), and all of it wraps.
//! - one 64-bit control word per slot: the position it serves (its
//!   *stamp*, bits 32–63), a state (bits 30–31), the [`WAITERS`] bit (29:
//!   someone waits for this slot to change and may sleep; it rides along
//!   every state below and is left out of the table) and a TID (bits
//!   0–28):
//!
//! | state     | TID      | meaning                                             |
//! |-----------|----------|-----------------------------------------------------|
//! | `FREE`    | 0 (any)  | free for a producer of position `stamp`             |
//! | `FREE`    | [`SEALED`] | closed and drained: nothing is ever put at `stamp` |
//! | `WRITING` | producer | a producer claimed position `stamp` and is writing  |
//! | `FULL`    | (0)      | the item of position `stamp` is ready               |
//! | `READING` | consumer | a consumer claimed it and is reading                |
//!
//! - `closed` (non-zero: closed), `lost` (a wrapping count of items lost
//!   to dead claimants), and two futex event counts: `readable` (consumers
//!   sleep on it), `writable` (producers sleep on it), wrapping
//!   generations that every wake advances.
//!
//! # Transitions of the slot serving position `p`
//!
//! ```text
//! FREE(p) --producer CAS--> WRITING(p, tid) --publish CAS--> FULL(p)
//!   --consumer CAS--> READING(p, tid) --release CAS--> FREE(p + one_lap)
//! FREE(p) --consumer that finds the queue closed and empty--> SEALED(p)
//! WRITING(p, dead) | READING(p, dead) --reap CAS--> FREE(p + one_lap), lost += 1
//! ```
//!
//! A claim names its claimant *in the same CAS*, so there is no instant at
//! which a slot is taken by nobody the others can judge. A claim keeps the
//! slot's [`WAITERS`] bit; every other transition (publish, release, reap,
//! seal) clears it, and wakes the sleepers if it was set. `tail`/`head` are
//! advanced after the claim by the claimant, or by anybody who finds the
//! slot at `tail` (`head`) already claimed or done (`help`), so a claimant
//! killed between its two CASes never stops the counters.
//!
//! # A claimant that dies
//!
//! A slot claimed by a process killed before its last CAS stays `WRITING`
//! or `READING`. A waiter whose way it blocks (a consumer at `head`, a
//! producer one lap behind it at `tail`) asks its [`Liveness`] before each
//! sleep whether that TID is dead (a non-blocking `try_` form asks once,
//! after a short spin on the same word) and, if so,
//! *reaps* the slot: one CAS to `FREE(p + one_lap)` (exactly one reaper
//! wins), `lost += 1`. The item that claimant was moving is lost (a
//! producer's half-written item is never delivered: consumers only take
//! `FULL` slots; a consumer that died had not returned the item), nothing
//! else is, and nothing is delivered twice: a slot is delivered only by the
//! consumer whose CAS took it from `FULL`. A claimant that finds its slot
//! reaped (its last CAS fails) reports it: that only happens to a live
//! claimant judged dead, which the liveness bytes rule out, or under a
//! scribbling peer.
//!
//! # Hostile words
//!
//! Every value of every word is a state: a position whose index is not
//! below the capacity, or a stamp that fits neither this lap, the one
//! before nor the one after (impossible in the protocol once the position
//! is re-read unchanged), makes the operation return [`RingError::Corrupt`] instead of
//! indexing out of range or looping; a static page makes an operation
//! help at most two laps before it returns.
//!
//! # Sleeping
//!
//! A waiter is blocked by one slot: the one at `head` that is not yet
//! `FULL` (a consumer), the one at `tail` that still serves the lap before
//! (a producer). It spins (the first re-check after 2^[`SPIN_FIRST_LOG`]
//! pauses, or 2^[`AHEAD_LOG`] when streaming, below; then doubling, at
//! most [`SPINS`] re-checks), gives its
//! CPU away ([`FutexWord::YIELD_LIMIT`]), then loads its event count (the
//! *token*), re-checks, probes the claimant in its way if there is one,
//! *marks* the blocking slot (a CAS that sets [`WAITERS`] on the word it
//! just read; if the word changed, it re-checks instead) and sleeps on the
//! token at most one slice ([`SLICE_FIRST`] doubling to [`SLICE_MAX`], at
//! most the liveness probe interval while a claimant is in the way).
//!
//! The CAS that next changes the slot's state comes after the mark in the
//! slot's modification order, so it sees the bit (a claim carries it on to
//! its publish or release) and its thread advances both counts and wakes
//! all their sleepers. The token was loaded before the waiter's last
//! re-check, which read the slot before that CAS; so the token is older
//! than the wake's advance (if the waiter's Acquire load had read the
//! advance, the re-check would have seen the slot change that its Release
//! follows), and the futex either finds the count changed or is woken.
//! `close` advances both counts unconditionally, after setting `closed`,
//! with the same pairing. No store-load pair on two words (which would
//! need `SeqCst`) and, on the fast path, no read-modify-write beyond the
//! claim, the counter hint and the publish or release: a publish or
//! release that finds no mark touches no other word. A notifier killed
//! before its wake can still lose one, so sleeps are bounded anyway.
//!
//! The first spin's length adapts, per thread and side, to what the other
//! side does (`Pace`, process-private; no state of the ring depends on
//! it). A waiter whose last [`QUICK_WAITS`] waits ended at their first
//! re-check has the other side streaming right in front of it: taking
//! each item as soon as it is published would pull the same cache lines of
//! slot words and payloads back and forth between the two sides for every
//! item, so its first re-check comes after 2^[`AHEAD_LOG`] pauses (about
//! 2 µs on the machine of `docs/BENCHMARKS.md`), the other side gets a few
//! lines ahead, and the waiter takes them a line at a time. It stays so
//! while it moves at least [`STREAM_RUN`] items between two waits; a wait
//! after fewer (a peer that answers requests one at a time) or one that
//! ends later goes back to the short first spin, so that a hand-off to a
//! waiting peer is taken at once (`cargo bench --bench queue`: `queue`
//! and `queue-pp`).

//! # Ordering
//!
//! The payload is written between the claim and the publish and read
//! between the claim and the release, with `Relaxed` atomics: the
//! publish's `Release` CAS pairs with the consumer's `Acquire` load and
//! claim CAS, and the release's with the next producer's. A reap
//! (`AcqRel`) passes on what the reaper's probe acquired of the death. `head`/`tail` are advanced with `AcqRel` and
//! loaded with `Acquire`, so that a slot read after a position is at least
//! as new as the claim that let the position pass it.

use core::sync::atomic::Ordering::{self, AcqRel, Acquire, Relaxed, Release};
use core::time::Duration;

use super::word::{AtomicWord, Deadline, FutexWord, Liveness};

/// State bits of a slot word's low half.
pub const STATE_MASK: u32 = 3 << 30;
/// A slot word's waiter bit: someone waits for this slot to change and may
/// sleep (the CAS that next changes its state wakes the sleepers).
pub const WAITERS: u32 = 1 << 29;
/// The TID bits of a slot word's low half.
pub const TID_BITS: u32 = WAITERS - 1;
/// Free for a producer (or sealed, with [`SEALED`] as TID).
pub const FREE: u32 = 0;
/// A producer is writing.
pub const WRITING: u32 = 1 << 30;
/// Ready for a consumer.
pub const FULL: u32 = 2 << 30;
/// A consumer is reading.
pub const READING: u32 = 3 << 30;
/// The TID of a `FREE` slot that is sealed: the queue is closed and
/// drained at its position (never a TID: the kernel's are below 2^22).
pub const SEALED: u32 = TID_BITS;

/// The largest capacity: `one_lap` ≤ 2^29, so that the stamps of three
/// consecutive laps are distinct modulo 2^32.
pub const MAX_CAPACITY: u32 = 1 << 29;

/// The first sleep of a waiter before it re-checks.
pub const SLICE_FIRST: Duration = Duration::from_millis(1);
/// The longest sleep of a waiter before it re-checks: the most a wake lost
/// to a killed notifier delays it.
pub const SLICE_MAX: Duration = Duration::from_millis(50);

/// A slot word from its stamp and its low half.
#[inline]
pub const fn pack(stamp: u32, tag: u32) -> u64 {
    ((stamp as u64) << 32) | tag as u64
}

/// The stamp (bits 32–63) of a slot word.
#[inline]
pub const fn stamp(w: u64) -> u32 {
    (w >> 32) as u32
}

/// The low half (state and TID) of a slot word.
#[inline]
pub const fn tag(w: u64) -> u32 {
    w as u32
}

/// The words of a ring, wherever they live (the mapped page, the heap, a
/// loom model).
#[derive(Debug)]
pub struct RingWords<'a, P, F, S> {
    /// Next position to take from.
    pub head: &'a P,
    /// Next position to put at.
    pub tail: &'a P,
    /// Non-zero once closed.
    pub closed: &'a P,
    /// Items lost to dead claimants (wrapping).
    pub lost: &'a P,
    /// Event count consumers sleep on.
    pub readable: &'a F,
    /// Event count producers sleep on.
    pub writable: &'a F,
    /// One control word per slot; the slice's length is the capacity.
    pub slots: &'a [S],
}

/// Why an operation did not move an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingError {
    /// No room (a `try`, or a timed put that expired).
    Full,
    /// No item (a `try`, or a timed get that expired).
    Empty,
    /// Closed (for a get: closed and drained).
    Closed,
    /// The item at the head was refused by the caller's `accept`.
    Refused,
    /// A word holds a value the protocol never writes.
    Corrupt,
}

/// A claimed slot: its index and its position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    /// The slot's index (below the capacity).
    pub index: usize,
    /// The position it serves.
    pub pos: u32,
}

/// What one attempt found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Claimed(Claim),
    /// Nothing to do now (full, or empty) until slot `index`, holding
    /// this word, changes.
    Wait(usize, u64),
    /// The way is blocked by a claimed slot: `index`, its word.
    Busy(usize, u64),
    Fail(RingError),
}

/// The log2 of the pauses before a waiter's first re-check (doubling up
/// to 2^[`SPIN_MAX_LOG`] per re-check): short, so that an item handed to
/// a waiting peer (a request answered through a queue) is taken at once.
pub const SPIN_FIRST_LOG: u32 = 1;
/// The log2 of the pauses before the first re-check of a waiter that is
/// streaming (`Pace`): the other side puts (or takes) items right in
/// front of it, and taking each as it lands would trade the slot words'
/// and payloads' cache lines between the two sides for every item; a
/// waiter that lets it get a few lines ahead takes them a line at a time
/// (module docs, "Sleeping"). 64 pauses are about 2 µs on the AMD EPYC of
/// `docs/BENCHMARKS.md` (16 and 32 moved fewer items per second there).
pub const AHEAD_LOG: u32 = 6;
/// The log2 of the most pauses between two re-checks of a spinning waiter.
pub const SPIN_MAX_LOG: u32 = 7;
/// The most re-checks of a spinning waiter (fewer if
/// [`FutexWord::SPIN_LIMIT`] says so): 2 + 4 + … + 128 + 2 × 128 = 510
/// pauses in all, no more than the other objects' waiters (a waiter whose
/// peer shares its CPU only delays it).
pub const SPINS: u32 = 9;

/// 2^`log` pauses.
#[inline]
fn pause<F: FutexWord>(log: u32) {
    for _ in 0..(1u32 << log) {
        F::spin_hint();
    }
}

/// How a thread's last waits on one ring went, per side: whether the
/// other side is streaming right in front of it (process-private, a
/// heuristic for the spin's length only: no state of the ring depends on
/// it).
#[derive(Clone, Copy)]
pub(crate) struct Pace {
    /// The ring (its slot words' address; 0: none yet).
    ring: usize,
    /// The stamp of the slot the last wait was for.
    at: u32,
    /// Consecutive waits that ended at their first re-check.
    quick: u8,
}

/// Quick waits in a row after which a waiter takes the long first spin.
pub const QUICK_WAITS: u8 = 3;
/// Items moved between two waits for the long first spin to stay: a
/// streaming side fills lines meanwhile; a peer answering requests moves
/// one.
pub const STREAM_RUN: u32 = 8;

std::thread_local! {
    static PACE: core::cell::Cell<[Pace; 2]> = const {
        core::cell::Cell::new([Pace { ring: 0, at: 0, quick: 0 }; 2])
    };
}

impl Pace {
    /// A wait on `ring` for the slot of stamp `at` begins: whether to take
    /// the long first spin.
    pub(crate) fn streaming(side: Side, ring: usize, at: u32) -> bool {
        PACE.try_with(|c| {
            let mut all = c.get();
            let p = &mut all[side as usize];
            let stream = if p.ring != ring {
                *p = Pace { ring, at, quick: 0 };
                false
            } else {
                let moved = at.wrapping_sub(p.at);
                p.at = at;
                if p.quick >= QUICK_WAITS && moved < STREAM_RUN {
                    p.quick = 0;
                }
                p.quick >= QUICK_WAITS
            };
            c.set(all);
            stream
        })
        .unwrap_or(false)
    }

    /// The wait begun by [`Pace::streaming`] ended with a claim, at its
    /// first re-check (`quick`) or later.
    pub(crate) fn ended(side: Side, quick: bool) {
        let _ = PACE.try_with(|c| {
            let mut all = c.get();
            let p = &mut all[side as usize];
            p.quick = if quick {
                p.quick.saturating_add(1).min(QUICK_WAITS)
            } else {
                0
            };
            c.set(all);
        });
    }
}

/// A waiter's progress through spin, mark and sleep.
struct Waiting {
    spins: u32,
    yields: u32,
    token: Option<u32>,
    slice: Duration,
}

impl Waiting {
    fn new() -> Self {
        Waiting {
            spins: 0,
            yields: 0,
            token: None,
            slice: SLICE_FIRST,
        }
    }
}

/// Which side an operation is on.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Put,
    Get,
}

/// The ring, over its words, with its capacity (process-private, validated:
/// never re-read from the page).
#[derive(Debug)]
pub struct RawRing<'a, P, F, S>
where
    P: AtomicWord<Int = u32>,
    F: FutexWord,
    S: AtomicWord<Int = u64>,
{
    w: RingWords<'a, P, F, S>,
    cap: u32,
    mask: u32,
}

impl<'a, P, F, S> RawRing<'a, P, F, S>
where
    P: AtomicWord<Int = u32>,
    F: FutexWord,
    S: AtomicWord<Int = u64>,
{
    /// The ring over `w`; `None` unless `1 ≤ w.slots.len() ≤ MAX_CAPACITY`.
    pub fn new(w: RingWords<'a, P, F, S>) -> Option<Self> {
        let cap = u32::try_from(w.slots.len()).ok()?;
        if cap == 0 || cap > MAX_CAPACITY {
            return None;
        }
        let mask = cap.next_power_of_two() - 1;
        Some(RawRing { w, cap, mask })
    }

    /// The initial control word of slot `i` (free for position `i` of lap
    /// 0): what a creator writes before publishing the ring.
    pub const fn initial_slot(i: u32) -> u64 {
        pack(i, FREE)
    }

    /// The capacity.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.cap as usize
    }

    #[inline]
    fn one_lap(&self) -> u32 {
        self.mask.wrapping_add(1)
    }

    /// The slot index of `pos`, if it is one.
    #[inline]
    fn index(&self, pos: u32) -> Option<usize> {
        let i = pos & self.mask;
        (i < self.cap).then_some(i as usize)
    }

    /// The position after `pos`.
    #[inline]
    fn next(&self, pos: u32) -> u32 {
        if (pos & self.mask).wrapping_add(1) < self.cap {
            pos.wrapping_add(1)
        } else {
            (pos & !self.mask).wrapping_add(self.one_lap())
        }
    }

    /// Moves `counter` from `pos` to the position after it, if nobody did.
    #[inline]
    fn advance(&self, counter: &P, pos: u32) {
        // AcqRel: releases the claim this thread observed (or made) at
        // `pos` to whoever loads the counter with Acquire (module docs);
        // failure: somebody else advanced it.
        let _ = counter.compare_exchange(pos, self.next(pos), AcqRel, Relaxed);
    }

    /// One attempt to claim a slot for a put.
    #[inline(always)]
    fn step_put(&self, me: u32) -> Step {
        let lap = self.one_lap();
        loop {
            // Relaxed: a flag with nothing to publish; a put that raced
            // with `close` is ordered by the slots (sealing).
            if self.w.closed.load(Relaxed) != 0 {
                return Step::Fail(RingError::Closed);
            }
            // Acquire: pairs with `advance`'s AcqRel.
            let t = self.w.tail.load(Acquire);
            let Some(i) = self.index(t) else {
                return Step::Fail(RingError::Corrupt);
            };
            let slot = &self.w.slots[i];
            // Acquire: pairs with the release of the consumer that freed it
            // (the payload reads before the payload writes).
            let w = slot.load(Acquire);
            let (s, g) = (stamp(w), tag(w));
            if s == t {
                match g & STATE_MASK {
                    FREE if g & TID_BITS == SEALED => return Step::Fail(RingError::Closed),
                    FREE => {
                        // Acquire: as the load above (the value it checks is
                        // the one written by the release).
                        if slot
                            .compare_exchange(
                                w,
                                pack(t, WRITING | (me & TID_BITS) | (g & WAITERS)),
                                Acquire,
                                Acquire,
                            )
                            .is_ok()
                        {
                            self.advance(self.w.tail, t);
                            return Step::Claimed(Claim { index: i, pos: t });
                        }
                    }
                    // Claimed or done already: the tail lags.
                    _ => self.advance(self.w.tail, t),
                }
            } else if s == t.wrapping_sub(lap) {
                // The lap before: not yet consumed.
                match g & STATE_MASK {
                    FULL => return Step::Wait(i, w),
                    WRITING | READING => return Step::Busy(i, w),
                    // FREE one lap behind the tail: the tail passed a
                    // position nobody claimed.
                    _ => {
                        if self.w.tail.load(Acquire) == t {
                            return Step::Fail(RingError::Corrupt);
                        }
                    }
                }
            } else if s == t.wrapping_add(lap) {
                // Already done for this lap: the tail lags.
                self.advance(self.w.tail, t);
            } else if self.w.tail.load(Acquire) == t {
                return Step::Fail(RingError::Corrupt);
            }
        }
    }

    /// One attempt to claim a slot for a get; `accept` sees the index of a
    /// full slot before it is claimed and may refuse it.
    #[inline(always)]
    fn step_get(&self, me: u32, accept: &mut dyn FnMut(usize) -> bool) -> Step {
        let lap = self.one_lap();
        loop {
            // Acquire: pairs with `advance`'s AcqRel.
            let h = self.w.head.load(Acquire);
            let Some(i) = self.index(h) else {
                return Step::Fail(RingError::Corrupt);
            };
            let slot = &self.w.slots[i];
            // Acquire: pairs with the publish.
            let w = slot.load(Acquire);
            let (s, g) = (stamp(w), tag(w));
            if s == h {
                match g & STATE_MASK {
                    FULL => {
                        if !accept(i) {
                            return Step::Fail(RingError::Refused);
                        }
                        // Acquire: pairs with the publish (payload reads
                        // follow).
                        if slot
                            .compare_exchange(
                                w,
                                pack(h, READING | (me & TID_BITS) | (g & WAITERS)),
                                Acquire,
                                Acquire,
                            )
                            .is_ok()
                        {
                            self.advance(self.w.head, h);
                            return Step::Claimed(Claim { index: i, pos: h });
                        }
                    }
                    READING => self.advance(self.w.head, h),
                    WRITING => return Step::Busy(i, w),
                    _ if g & TID_BITS == SEALED => return Step::Fail(RingError::Closed),
                    _ => {
                        // Empty here. Relaxed: a producer that read
                        // `closed` clear before `close` races the sealing
                        // CAS below for this very slot; one of them wins.
                        if self.w.closed.load(Relaxed) == 0 {
                            return Step::Wait(i, w);
                        }
                        // Relaxed: sealing publishes nothing (the wake's
                        // RMWs order it for the sleepers).
                        if slot
                            .compare_exchange(w, pack(h, FREE | SEALED), Relaxed, Relaxed)
                            .is_ok()
                        {
                            if g & WAITERS != 0 {
                                self.wake_all();
                            }
                            return Step::Fail(RingError::Closed);
                        }
                    }
                }
            } else if s == h.wrapping_add(lap) {
                // Taken (or reaped) already: the head lags.
                self.advance(self.w.head, h);
            } else if s == h.wrapping_sub(lap) && g & STATE_MASK == READING {
                // The lap before is still being read: empty here, and
                // its reader may be dead.
                return Step::Busy(i, w);
            } else if self.w.head.load(Acquire) == h {
                return Step::Fail(RingError::Corrupt);
            }
        }
    }

    /// Reaps slot `index` if it still holds `word` (a claim by a thread
    /// the caller found dead): frees it for the next lap, counts the lost
    /// item and wakes every sleeper. `true` if this call did it.
    pub fn reap(&self, index: usize, word: u64) -> bool {
        let g = tag(word) & STATE_MASK;
        if g != WRITING && g != READING {
            return false;
        }
        let Some(slot) = self.w.slots.get(index) else {
            return false;
        };
        let next = pack(stamp(word).wrapping_add(self.one_lap()), FREE);
        // AcqRel: acquires what the caller learnt of the death (its probe
        // acquired the dead claimant's writes) and releases it, with the
        // slot, to the next claimant.
        if slot.compare_exchange(word, next, AcqRel, Relaxed).is_err() {
            return false;
        }
        // Relaxed: a statistic; read after the fact (a process's exit, a
        // join) or as a hint.
        self.w.lost.fetch_add(1, Relaxed);
        if tag(word) & WAITERS != 0 {
            self.wake_all();
        }
        true
    }

    /// Publishes the item of `c` (claimed by `me` for a put) and wakes
    /// the sleepers if a waiter marked the slot. `false` if the slot was
    /// reaped meanwhile (`me` judged dead: the item is lost, and counted).
    #[inline]
    pub fn publish(&self, c: Claim, me: u32) -> bool {
        let mine = pack(c.pos, WRITING | (me & TID_BITS));
        // Release: the payload, to the consumer's Acquire.
        self.finish(c.index, mine, pack(c.pos, FULL), Release)
    }

    /// Frees the slot of `c` (claimed by `me` for a get) for the next lap
    /// and wakes the sleepers if a waiter marked the slot. `false` if it
    /// was reaped meanwhile.
    #[inline]
    pub fn release(&self, c: Claim, me: u32) -> bool {
        let mine = pack(c.pos, READING | (me & TID_BITS));
        let next = pack(c.pos.wrapping_add(self.one_lap()), FREE);
        // Release: the payload reads, before the next producer's writes.
        self.finish(c.index, mine, next, Release)
    }

    /// The last CAS of a claim: slot `index` from `mine` (or `mine` with
    /// [`WAITERS`], which a waiter may have set meanwhile) to `next`; wakes
    /// every sleeper if the replaced word had [`WAITERS`]. `false` if the
    /// slot holds anything else (reaped).
    #[inline]
    fn finish(&self, index: usize, mine: u64, next: u64, order: Ordering) -> bool {
        let Some(slot) = self.w.slots.get(index) else {
            return false;
        };
        let marked = mine | u64::from(WAITERS);
        let mut cur = mine;
        loop {
            match slot.compare_exchange(cur, next, order, Relaxed) {
                Ok(_) => {
                    if cur == marked {
                        self.wake_all();
                    }
                    return true;
                }
                // A waiter marked the slot: once at most (only this CAS
                // clears the bit).
                Err(found) if found == marked && cur == mine => cur = marked,
                Err(_) => return false,
            }
        }
    }

    /// Marks slot `index`, found holding `w` in a waiter's way, with
    /// [`WAITERS`]: the CAS that next changes it (a claim carries the bit
    /// on to the publish or release) then wakes the sleepers. `false` if
    /// the slot no longer holds `w` (re-check instead of sleeping).
    fn mark(&self, index: usize, w: u64) -> bool {
        if tag(w) & WAITERS != 0 {
            return true;
        }
        let Some(slot) = self.w.slots.get(index) else {
            return false;
        };
        // Relaxed: the bit orders nothing by itself: the CAS that clears
        // it comes after this one in the slot's modification order, so it
        // sees the bit and wakes; the waiter's token (loaded before its
        // last re-check, with Acquire) is then older than that wake's
        // increment (module docs, "Sleeping").
        slot.compare_exchange(w, w | u64::from(WAITERS), Relaxed, Relaxed)
            .is_ok()
    }

    /// Wakes every sleeper of both counts (they re-check).
    pub fn wake_all(&self) {
        for ev in [self.w.readable, self.w.writable] {
            // Release: pairs with a waiter's Acquire load of its token, so
            // that a waiter whose token is this new value re-checks a slot
            // (or `closed`) at least as new as what this wake announces;
            // advancing the count makes a waiter about to sleep on an older
            // value return at once.
            ev.atomic().fetch_add(1, Release);
            ev.wake_all();
        }
    }

    /// Closes the ring: later puts fail, gets drain then fail. Wakes every
    /// sleeper. `false` if it was closed already.
    pub fn close(&self) -> bool {
        // Relaxed: a flag with nothing to publish; a put racing the close
        // is arbitrated by the slot (the sealing CAS of `step_get`), and
        // the sleepers see it through `wake_all`'s RMWs.
        let was = self.w.closed.swap(1, Relaxed);
        self.wake_all();
        was == 0
    }

    /// Whether [`close`](Self::close) was called (any non-zero word).
    pub fn is_closed(&self) -> bool {
        // Relaxed: a snapshot.
        self.w.closed.load(Relaxed) != 0
    }

    /// Reaps every slot claimed by a thread that `live` finds dead, wherever
    /// it is (not only in somebody's way: a consumer that died with its
    /// item is otherwise found only when a producer needs the slot a lap
    /// later). One probe per claimed slot. Returns how many it reaped.
    pub fn reap_dead(&self, live: &mut dyn Liveness) -> u32 {
        let mut n = 0;
        for (i, slot) in self.w.slots.iter().enumerate() {
            // Acquire: as the loads of `step_put`/`step_get`.
            let w = slot.load(Acquire);
            let g = tag(w) & STATE_MASK;
            if (g == WRITING || g == READING)
                && live.owner_is_dead(tag(w) & TID_BITS)
                && self.reap(i, w)
            {
                n += 1;
            }
        }
        n
    }

    /// Items lost to dead claimants (wrapping count).
    pub fn lost(&self) -> u32 {
        // Relaxed: a statistic.
        self.w.lost.load(Relaxed)
    }

    /// The number of items, approximately (a snapshot of two counters that
    /// move independently), clamped to `0..=capacity`.
    pub fn len(&self) -> usize {
        // Relaxed: a snapshot.
        let t = self.w.tail.load(Relaxed);
        let h = self.w.head.load(Relaxed);
        let laps = ((t & !self.mask).wrapping_sub(h & !self.mask) as i32) >> self.mask.count_ones();
        let n = i64::from(laps) * i64::from(self.cap) + i64::from(t & self.mask)
            - i64::from(h & self.mask);
        n.clamp(0, i64::from(self.cap)) as usize
    }

    /// Whether [`len`](Self::len) is 0 (as approximate).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A non-blocking put: `write(index)` fills the claimed slot's payload.
    /// `Full` if there is no room now (or a claimant that is not found
    /// dead is in the way: a dead one is reaped first, after a short spin).
    ///
    /// # Errors
    /// `Full`, `Closed`, `Corrupt`.
    #[inline]
    pub fn try_put(
        &self,
        me: u32,
        live: &mut dyn Liveness,
        write: impl FnOnce(usize),
    ) -> Result<Claim, RingError> {
        let c = match self.step_put(me) {
            Step::Claimed(c) => c,
            Step::Fail(e) => return Err(e),
            _ => self.try_claim(Side::Put, me, live, &mut |_| true)?,
        };
        write(c.index);
        self.publish(c, me);
        Ok(c)
    }

    /// A non-blocking get: `accept(index)` may refuse the item at the head
    /// (it stays), `read(index)` copies the claimed payload out.
    ///
    /// # Errors
    /// `Empty`, `Closed` (closed and drained), `Refused`, `Corrupt`.
    #[inline]
    pub fn try_get(
        &self,
        me: u32,
        live: &mut dyn Liveness,
        accept: &mut dyn FnMut(usize) -> bool,
        read: impl FnOnce(usize),
    ) -> Result<Claim, RingError> {
        let c = match self.step_get(me, accept) {
            Step::Claimed(c) => c,
            Step::Fail(e) => return Err(e),
            _ => self.try_claim(Side::Get, me, live, accept)?,
        };
        read(c.index);
        self.release(c, me);
        Ok(c)
    }

    /// One attempt to claim a slot for a put, without spinning, probing or
    /// sleeping: the first step of [`try_put`](Self::try_put), for models
    /// and the fuzzer (the caller then writes the payload and calls
    /// [`publish`](Self::publish)).
    ///
    /// # Errors
    /// `Full` (also when a claimant is in the way), `Closed`, `Corrupt`.
    pub fn claim_put(&self, me: u32) -> Result<Claim, RingError> {
        match self.step_put(me) {
            Step::Claimed(c) => Ok(c),
            Step::Wait(..) | Step::Busy(..) => Err(RingError::Full),
            Step::Fail(e) => Err(e),
        }
    }

    /// One attempt to claim a slot for a get, as [`claim_put`](Self::claim_put)
    /// (then read and [`release`](Self::release)).
    ///
    /// # Errors
    /// `Empty` (also when a claimant is in the way), `Closed`, `Refused`,
    /// `Corrupt`.
    pub fn claim_get(
        &self,
        me: u32,
        accept: &mut dyn FnMut(usize) -> bool,
    ) -> Result<Claim, RingError> {
        match self.step_get(me, accept) {
            Step::Claimed(c) => Ok(c),
            Step::Wait(..) | Step::Busy(..) => Err(RingError::Empty),
            Step::Fail(e) => Err(e),
        }
    }

    fn step(&self, side: Side, me: u32, accept: &mut dyn FnMut(usize) -> bool) -> Step {
        match side {
            Side::Put => self.step_put(me),
            Side::Get => self.step_get(me, accept),
        }
    }

    #[inline(never)]
    fn try_claim(
        &self,
        side: Side,
        me: u32,
        live: &mut dyn Liveness,
        accept: &mut dyn FnMut(usize) -> bool,
    ) -> Result<Claim, RingError> {
        let nothing = match side {
            Side::Put => RingError::Full,
            Side::Get => RingError::Empty,
        };
        let mut spins = 0;
        let mut seen = None;
        loop {
            match self.step(side, me, accept) {
                Step::Claimed(c) => return Ok(c),
                Step::Fail(e) => return Err(e),
                Step::Wait(..) => return Err(nothing),
                Step::Busy(i, w) => {
                    // A claimant mid-operation finishes in a moment; one
                    // still there after a short spin may be dead: probe
                    // it once (a system call, only on this rare path).
                    if spins < F::SPIN_LIMIT {
                        spins += 1;
                        for _ in 0..(1u32 << spins.min(7)) {
                            F::spin_hint();
                        }
                        seen = Some((i, w));
                        continue;
                    }
                    if seen == Some((i, w))
                        && live.owner_is_dead(tag(w) & TID_BITS)
                        && self.reap(i, w)
                    {
                        spins = 0;
                        seen = None;
                        continue;
                    }
                    return Err(nothing);
                }
            }
        }
    }

    /// A blocking put (until `deadline`, if any): `write(index)` fills the
    /// claimed slot's payload.
    ///
    /// # Errors
    /// `Full` (the deadline passed), `Closed`, `Corrupt`.
    #[inline]
    pub fn put(
        &self,
        me: u32,
        deadline: Option<&mut dyn Deadline>,
        live: &mut dyn Liveness,
        write: impl FnOnce(usize),
    ) -> Result<Claim, RingError> {
        // The first attempt inline (the fast path), the rest out of line.
        let c = match self.step_put(me) {
            Step::Claimed(c) => c,
            Step::Fail(e) => return Err(e),
            _ => self.claim(Side::Put, me, deadline, live, &mut |_| true)?,
        };
        write(c.index);
        self.publish(c, me);
        Ok(c)
    }

    /// A blocking get (until `deadline`, if any), as
    /// [`try_get`](Self::try_get) otherwise.
    ///
    /// # Errors
    /// `Empty` (the deadline passed), `Closed` (closed and drained),
    /// `Refused`, `Corrupt`.
    #[inline]
    pub fn get(
        &self,
        me: u32,
        deadline: Option<&mut dyn Deadline>,
        live: &mut dyn Liveness,
        accept: &mut dyn FnMut(usize) -> bool,
        read: impl FnOnce(usize),
    ) -> Result<Claim, RingError> {
        let c = match self.step_get(me, accept) {
            Step::Claimed(c) => c,
            Step::Fail(e) => return Err(e),
            _ => self.claim(Side::Get, me, deadline, live, accept)?,
        };
        read(c.index);
        self.release(c, me);
        Ok(c)
    }

    #[inline(never)]
    fn claim(
        &self,
        side: Side,
        me: u32,
        mut deadline: Option<&mut dyn Deadline>,
        live: &mut dyn Liveness,
        accept: &mut dyn FnMut(usize) -> bool,
    ) -> Result<Claim, RingError> {
        let (ev, expired) = match side {
            Side::Put => (self.w.writable, RingError::Full),
            Side::Get => (self.w.readable, RingError::Empty),
        };
        let mut st = Waiting::new();
        // The spin's pace (real futex words only: loom's and the fuzzer's
        // never spin).
        let mut stream: Option<bool> = None;
        loop {
            let (i, w, busy) = match self.step(side, me, accept) {
                Step::Claimed(c) => {
                    if stream.is_some() {
                        Pace::ended(side, st.spins <= 1 && st.yields == 0 && st.token.is_none());
                    }
                    return Ok(c);
                }
                Step::Fail(e) => return Err(e),
                Step::Wait(i, w) => (i, w, false),
                Step::Busy(i, w) => (i, w, true),
            };
            // Probe a claimant in the way before each sleep (once the
            // token is taken: a live one that finishes later finds the
            // mark and wakes us).
            if busy && st.token.is_some() && live.owner_is_dead(tag(w) & TID_BITS) {
                self.reap(i, w);
                st = Waiting::new();
                continue;
            }
            if st.spins < F::SPIN_LIMIT.min(SPINS) {
                let ahead = *stream.get_or_insert_with(|| {
                    Pace::streaming(side, self.w.slots.as_ptr() as usize, stamp(w))
                });
                st.spins += 1;
                // The n-th spin: 2^(first + n - 1) pauses, at most
                // 2^SPIN_MAX_LOG.
                let first = if ahead { AHEAD_LOG } else { SPIN_FIRST_LOG };
                pause::<F>(
                    first
                        .saturating_add(st.spins - 1)
                        .min(SPIN_MAX_LOG.max(first)),
                );
                continue;
            }
            // Then give the CPU away a few times before sleeping: a peer
            // on this CPU runs and makes room (or an item), one on another
            // CPU gets the time to (`FutexWord::YIELD_LIMIT`).
            if st.yields < F::YIELD_LIMIT {
                st.yields += 1;
                F::yield_now();
                continue;
            }
            let Some(token) = st.token else {
                // Acquire: pairs with `wake_all`'s Release (module docs,
                // "Sleeping"). Then re-check before marking the slot.
                st.token = Some(ev.atomic().load(Acquire));
                continue;
            };
            let mut t = st.slice;
            if busy {
                if let Some(p) = live.probe_interval(tag(w) & TID_BITS) {
                    t = t.min(p);
                }
            }
            if let Some(d) = deadline.as_deref_mut() {
                match d.remaining() {
                    None => return Err(expired),
                    Some(left) => t = t.min(left),
                }
            }
            if !self.mark(i, w) {
                // The slot changed since the re-check: check again (the
                // token stays valid: it was loaded before).
                continue;
            }
            ev.wait(token, Some(t));
            st.token = None;
            st.slice = st.slice.saturating_mul(2).min(SLICE_MAX);
        }
    }
}
