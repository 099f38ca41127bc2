//! The event state machine of [`crate::Event`]: a flag that threads of
//! every process can wait for, on one futex word and with no lock.
//!
//! # The word
//!
//! | bits  | meaning                                                        |
//! |-------|----------------------------------------------------------------|
//! | 0     | [`SET`]: the flag                                              |
//! | 1     | [`WAITERS`]: someone may sleep on the word; `set` must wake    |
//! | 2–31  | generation ([`GEN_MASK`]): advanced (wrapping) by every `set` that raises the flag |
//!
//! Every `u32` is a valid word (the page is writable by every peer): no
//! value makes an operation panic, overflow or loop forever.
//!
//! Transitions:
//! - *set*: `gen | 0 | W? → (gen + 1) | SET` (one `Release` CAS), then a
//!   shared wake of everybody if `WAITERS` was set; on a word that is
//!   already `SET`, nothing (no write, no system call);
//! - *clear*: `SET → 0` in bit 0 (`fetch_and`), generation and `WAITERS`
//!   kept; nothing on a clear word;
//! - *wait*: returns `true` as soon as it sees `SET`, or a generation other
//!   than the one it started with (a `set` happened meanwhile, maybe
//!   already undone by a `clear`: as Python's `Event.wait`, a waiter present
//!   at a `set` returns `true`); otherwise announces itself
//!   (`→ | WAITERS`) and sleeps on that value.
//!
//! # No lock, and a setter that dies
//!
//! No operation holds anything across two steps, so a thread killed at any
//! instruction leaves a word that the others handle like any other. The one
//! step whose loss would matter is `set`'s wake, which comes after the CAS
//! that raised the flag: a setter killed between the two would leave the
//! sleepers asleep on a value the word no longer has. So waiters never
//! rely on the wake: they sleep in bounded slices ([`SLICE_FIRST`],
//! doubling up to [`SLICE_MAX`]) and re-read the word after each. The wake
//! is what makes the common case fast; the slices bound the cost of a
//! lost wake to at most [`SLICE_MAX`] of extra latency (and a long wait
//! costs a wake-up every [`SLICE_MAX`]).
//!
//! # Ordering
//!
//! `set`'s CAS is `Release` and every load of a waiter is `Acquire`: what
//! the setter wrote before `set` is visible to a waiter that returns
//! because of it. A waiter that returns on a changed generation after a
//! `clear` reads a value written by `clear`'s read-modify-write (or a
//! waiter's announcing CAS), which continues the release sequence of the
//! `set`, so the same holds. A `set` on an already set event writes
//! nothing and publishes nothing.
//!
//! The generation has 30 bits: a waiter misses a `set` that was undone by
//! a `clear` only if exactly a multiple of 2³⁰ such pairs happened while
//! it slept one slice.

use core::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use core::time::Duration;

use super::word::{yield_until, AtomicWord, Deadline, FutexWord};

/// Bit 0: the flag.
pub const SET: u32 = 1;
/// Bit 1: waiters may sleep on the word; the next `set` wakes them.
pub const WAITERS: u32 = 2;
/// Bits 2–31: the generation, advanced by every `set` that raises the flag.
pub const GEN_MASK: u32 = !(SET | WAITERS);
/// One generation step.
pub const GEN_ONE: u32 = 4;

/// The first sleep of a waiter before it re-reads the word.
pub const SLICE_FIRST: Duration = Duration::from_millis(1);
/// The longest sleep of a waiter before it re-reads the word: the extra
/// latency of a waiter whose wake was lost (a setter killed after raising
/// the flag).
pub const SLICE_MAX: Duration = Duration::from_millis(50);

/// An event on one futex word.
///
/// `#[repr(transparent)]`: on the mapped page it is overlaid on the word
/// that every process shares.
#[repr(transparent)]
#[derive(Debug)]
pub struct RawEvent<W: FutexWord> {
    word: W,
}

impl<W: FutexWord> Default for RawEvent<W> {
    fn default() -> Self {
        Self::new()
    }
}

impl<W: FutexWord> RawEvent<W> {
    /// A clear event (heap, loom and fuzz instances: on the page the word
    /// is zero-filled by `ftruncate`).
    pub fn new() -> Self {
        RawEvent { word: W::new(0) }
    }

    /// The word, as a peer process sees it.
    pub fn word(&self) -> &W {
        &self.word
    }

    #[inline(always)]
    fn w(&self) -> &W::Atomic {
        self.word.atomic()
    }

    /// Whether the flag is set (one `Acquire` load: what the setter wrote
    /// before `set` is visible after a `true`).
    #[inline]
    pub fn is_set(&self) -> bool {
        self.w().load(Acquire) & SET != 0
    }

    /// Raises the flag and wakes every sleeper. Returns `false`, having
    /// written nothing, if it was already set.
    pub fn set(&self) -> bool {
        let w = self.w();
        // Relaxed: only a guess for the CAS, which re-checks it.
        let mut cur = w.load(Relaxed);
        loop {
            if cur & SET != 0 {
                return false;
            }
            let new = ((cur & GEN_MASK).wrapping_add(GEN_ONE) & GEN_MASK) | SET;
            // Release: pairs with the waiters' Acquire loads (module docs).
            match w.compare_exchange(cur, new, Release, Relaxed) {
                Ok(_) => {
                    if cur & WAITERS != 0 {
                        self.word.wake_all();
                    }
                    return true;
                }
                Err(found) => cur = found,
            }
        }
    }

    /// Lowers the flag. Returns whether it was set.
    pub fn clear(&self) -> bool {
        let w = self.w();
        // Relaxed: clearing publishes nothing; the read-modify-write keeps
        // the release sequence of the `set` it undoes (module docs).
        if w.load(Relaxed) & SET == 0 {
            return false;
        }
        w.fetch_and(!SET, Relaxed) & SET != 0
    }

    /// Waits until the flag is set, or a `set` happened since the call
    /// began; `false` if `deadline` expired first.
    ///
    /// Sleeps in slices of at most [`SLICE_MAX`] (module docs), so a lost
    /// wake delays the return by at most that much.
    pub fn wait(&self, mut deadline: Option<&mut dyn Deadline>) -> bool {
        let w = self.w();
        // Acquire: pairs with `set`'s Release (module docs); also for every
        // later load below.
        let mut cur = w.load(Acquire);
        let gen = cur & GEN_MASK;
        // A setter about to answer is seen without sleeping (and then
        // needs no wake): `FutexWord::YIELD_LIMIT`. Acquire as above.
        cur = yield_until(&self.word, cur, Acquire, |v| {
            v & SET != 0 || v & GEN_MASK != gen
        });
        let mut slice = SLICE_FIRST;
        loop {
            if cur & SET != 0 || cur & GEN_MASK != gen {
                return true;
            }
            if cur & WAITERS == 0 {
                // Relaxed on success: the value is only slept on, never
                // returned on; Acquire on failure, as the loads.
                match w.compare_exchange(cur, cur | WAITERS, Relaxed, Acquire) {
                    Ok(_) => cur |= WAITERS,
                    Err(found) => {
                        cur = found;
                        continue;
                    }
                }
            }
            let t = match deadline.as_deref_mut() {
                None => slice,
                Some(d) => match d.remaining() {
                    None => return false,
                    Some(left) => left.min(slice),
                },
            };
            self.word.wait(cur, Some(t));
            slice = slice.saturating_mul(2).min(SLICE_MAX);
            cur = w.load(Acquire);
        }
    }
}
