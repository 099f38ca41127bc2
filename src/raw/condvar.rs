//! The condition-variable state machine of [`crate::Condition`]: a
//! sequence counter that waiters sleep on, and a count of waiters so that
//! a `notify` with nobody waiting writes nothing and makes no system call.
//!
//! # The words
//!
//! | word        | meaning                                                     |
//! |-------------|-------------------------------------------------------------|
//! | `seq` (@0)  | the futex: advanced (wrapping) by every `notify` that finds waiters |
//! | `waiters` (@4) | how many threads are between [`RawCondvar::enter`] and [`RawCondvar::leave`] (saturating both ways) |
//!
//! Every pair of `u32`s is a valid state (the page is writable by every
//! peer): no value makes an operation panic, overflow or loop forever. A
//! wrong `waiters` only costs or saves a wake: too high, `notify` makes a
//! `FUTEX_WAKE` that finds nobody; too low (zero while threads sleep),
//! `notify` skips the wake and the sleepers notice the next change of
//! `seq` only at the end of their slice (below), or never if `notify`
//! skipped advancing too: a peer that zeroes the count can delay waiters
//! as a peer that never notifies would.
//!
//! # Protocol
//!
//! The caller holds the lock that protects the predicate:
//! 1. *enter* (holding the lock): `waiters += 1`, then read `seq` = `s`;
//! 2. release the lock (every hold of it);
//! 3. *sleep*: while `seq == s`, `FUTEX_WAIT(seq, s)` in bounded slices;
//!    returns `true` once `seq` moved, `false` when the deadline expired;
//! 4. *leave*: `waiters -= 1` (saturating at zero);
//! 5. re-acquire the lock.
//!
//! *notify(n)*: if `waiters == 0`, nothing (one load); else `seq += 1`,
//! then `FUTEX_WAKE(seq, n)`. *notify_all*: the same, waking everyone.
//!
//! # No lost wake-up
//!
//! A notifier that changed the predicate under the lock (and notifies
//! while holding it, or after releasing it) is ordered after every waiter
//! that checked the predicate before it, by the lock: the waiter's
//! `waiters += 1` and its read of `seq` happen before the lock's release,
//! which happens before the notifier's acquire. So the notifier's load of
//! `waiters` sees the waiter (coherence), and its `seq += 1` comes after
//! the waiter's read in `seq`'s modification order: the waiter sleeps on
//! a value that the notify replaces, and `FUTEX_WAIT` compares the word
//! atomically with going to sleep. Hence every ordering here is `Relaxed`:
//! the lock orders the steps, and a woken waiter re-acquires the lock
//! (`Acquire`) before it looks at anything the notifier wrote.
//!
//! # Death, and spurious wake-ups
//!
//! Nothing is registered per waiter but the count: a waiter killed inside
//! its wait leaves `waiters` one too high for good, which makes every
//! later `notify` issue a `FUTEX_WAKE` that may find nobody (it never
//! blocks anybody). A notifier killed between `seq += 1` and its wake
//! would leave the sleepers asleep on a value the word no longer has;
//! so, as the event's waiters, they never rely on the wake: they sleep in
//! slices of [`SLICE`] (50 ms) and re-read `seq` after each, which bounds
//! a lost wake's cost to one slice.
//!
//! The price is spurious wake-ups: any waiter that sees `seq` move
//! returns, so `notify(n)` wakes `n` sleepers at once (the kernel's
//! `FUTEX_WAKE(n)`) and every other waiter that was present returns
//! within a slice, as if notified. Callers re-check their predicate in a
//! loop, as they must with any condition variable.
//!
//! A waiter misses a notify only if exactly a multiple of 2³² of them
//! happen while it sleeps one slice.

use core::sync::atomic::Ordering::Relaxed;
use core::time::Duration;

use super::word::{AtomicWord, Deadline, FutexWord};

/// The longest sleep of a waiter before it re-reads the sequence: the
/// extra latency of a waiter whose wake was lost (a notifier killed
/// between its increment and its wake), and the delay after which a
/// waiter that `notify(n)` did not wake returns spuriously.
///
/// One fixed slice, not the event's 1 ms doubling to 50 ms: a short
/// timeout is the CPU's earliest timer and re-programs the timer hardware
/// at every sleep, which in a virtual machine costs more than the rest of
/// a hand-off (measured: a 2-process ping-pong at 0.46x glibc's
/// `pthread_cond_t` with a 1 ms first slice, 1.07x with 50 ms). A lost
/// wake costs at most a slice either way.
pub const SLICE: Duration = Duration::from_millis(50);

/// A condition variable on two 32-bit words.
///
/// `#[repr(C)]`: on the mapped page it is overlaid on the bytes that every
/// process shares (`seq` at 0, `waiters` at 4).
#[repr(C)]
#[derive(Debug)]
pub struct RawCondvar<W: FutexWord> {
    seq: W,
    waiters: W,
}

impl<W: FutexWord> Default for RawCondvar<W> {
    fn default() -> Self {
        Self::new()
    }
}

impl<W: FutexWord> RawCondvar<W> {
    /// A condition nobody waits on (heap, loom and fuzz instances: on the
    /// page the words are zero-filled by `ftruncate`).
    pub fn new() -> Self {
        RawCondvar {
            seq: W::new(0),
            waiters: W::new(0),
        }
    }

    /// The sequence word, as a peer process sees it.
    pub fn seq(&self) -> &W {
        &self.seq
    }

    /// The waiter count, as a peer process sees it.
    pub fn waiters(&self) -> &W {
        &self.waiters
    }

    /// Step 1 of a wait, **called holding the lock**: counts the caller
    /// as a waiter and returns the sequence value to sleep on.
    #[inline]
    pub fn enter(&self) -> u32 {
        let w = self.waiters.atomic();
        // Relaxed: ordered before the notifier's load by the lock (module
        // docs, "No lost wake-up"). Saturating: a count a peer raised to
        // the top stays there (every notify wakes) instead of wrapping to
        // zero (no notify would).
        let mut cur = w.load(Relaxed);
        while cur != u32::MAX {
            match w.compare_exchange_weak(cur, cur + 1, Relaxed, Relaxed) {
                Ok(_) => break,
                Err(found) => cur = found,
            }
        }
        // Relaxed: the same; a notify ordered after this thread's critical
        // section comes later in `seq`'s modification order.
        self.seq.atomic().load(Relaxed)
    }

    /// Step 3, **without the lock**: sleeps until the sequence is no
    /// longer `s` (`true`) or `deadline` expired (`false`).
    ///
    /// Sleeps in slices of at most [`SLICE`], re-reading the sequence
    /// after each (module docs).
    pub fn sleep(&self, s: u32, mut deadline: Option<&mut dyn Deadline>) -> bool {
        loop {
            // Relaxed: only "did it move"; the lock, re-acquired next,
            // orders everything else.
            if self.seq.atomic().load(Relaxed) != s {
                return true;
            }
            let t = match deadline.as_deref_mut() {
                None => SLICE,
                Some(d) => match d.remaining() {
                    None => return false,
                    Some(left) => left.min(SLICE),
                },
            };
            self.seq.wait(s, Some(t));
        }
    }

    /// Step 4: no longer a waiter. Saturates at zero (a count a peer
    /// lowered is not wrapped around).
    #[inline]
    pub fn leave(&self) {
        let w = self.waiters.atomic();
        // Relaxed: a count; its readers only decide whether to wake.
        let mut cur = w.load(Relaxed);
        while cur != 0 {
            match w.compare_exchange_weak(cur, cur - 1, Relaxed, Relaxed) {
                Ok(_) => return,
                Err(found) => cur = found,
            }
        }
    }

    /// Wakes at least `n` of the threads sleeping in [`sleep`](Self::sleep)
    /// (every waiter present returns within a slice: module docs).
    /// Returns whether there were waiters (`false`: nothing was written and
    /// no system call made). `n = 0` does nothing.
    #[inline]
    pub fn notify(&self, n: u32) -> bool {
        if n == 0 || !self.advance() {
            return false;
        }
        self.seq.wake_n(n);
        true
    }

    /// Wakes every thread sleeping in [`sleep`](Self::sleep). Returns
    /// whether there were waiters (`false`: nothing written, no system
    /// call).
    #[inline]
    pub fn notify_all(&self) -> bool {
        if !self.advance() {
            return false;
        }
        self.seq.wake_all();
        true
    }

    /// Advances the sequence if anybody waits (the write half of a
    /// notify, without its wake).
    #[inline]
    pub fn advance(&self) -> bool {
        // Relaxed: sees every waiter whose critical section came before
        // the notifier's (module docs).
        if self.waiters.atomic().load(Relaxed) == 0 {
            return false;
        }
        // Relaxed: waiters only compare it; the lock orders the data.
        self.seq.atomic().fetch_add(1, Relaxed);
        true
    }
}
