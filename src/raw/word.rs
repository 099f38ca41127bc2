//! The seam between the state machines and the world they run in.

use core::fmt::Debug;
use core::sync::atomic::Ordering;
use core::time::Duration;

/// The operations of a std atomic integer, as the state machines use them:
/// the one seam between them and the memory they run on.
///
/// Implemented by `core`'s `AtomicI8` … `AtomicU64`, `AtomicIsize` and
/// `AtomicUsize` (production, heap tests, Miri: [`super::rmw`]), by
/// wrappers of loom's atomics (`loom-tests/`, where the seeded bugs are
/// applied) and, through `AtomicU32`, by the fuzzer's fake futex
/// (`fuzz/`). Every method has the meaning and the ordering rules
/// (including the panics on invalid orderings) of the std method of the
/// same name.
pub trait AtomicWord {
    /// The integer held.
    type Int: Copy + Eq + Debug;
    /// A new word holding `v`: heap, loom and fuzz instances only; words in
    /// a mapping are overlaid, never constructed.
    fn new(v: Self::Int) -> Self
    where
        Self: Sized;
    /// `load`.
    fn load(&self, order: Ordering) -> Self::Int;
    /// `store`.
    fn store(&self, v: Self::Int, order: Ordering);
    /// `swap`.
    fn swap(&self, v: Self::Int, order: Ordering) -> Self::Int;
    /// `compare_exchange`.
    ///
    /// # Errors
    /// The value found, when it was not `current`.
    fn compare_exchange(
        &self,
        current: Self::Int,
        new: Self::Int,
        success: Ordering,
        failure: Ordering,
    ) -> Result<Self::Int, Self::Int>;
    /// `compare_exchange_weak`.
    ///
    /// # Errors
    /// The value found, when it was not `current` (or spuriously).
    fn compare_exchange_weak(
        &self,
        current: Self::Int,
        new: Self::Int,
        success: Ordering,
        failure: Ordering,
    ) -> Result<Self::Int, Self::Int>;
    /// `fetch_add` (wrapping).
    fn fetch_add(&self, v: Self::Int, order: Ordering) -> Self::Int;
    /// `fetch_sub` (wrapping).
    fn fetch_sub(&self, v: Self::Int, order: Ordering) -> Self::Int;
    /// `fetch_and`.
    fn fetch_and(&self, v: Self::Int, order: Ordering) -> Self::Int;
    /// `fetch_or`.
    fn fetch_or(&self, v: Self::Int, order: Ordering) -> Self::Int;
    /// `fetch_xor`.
    fn fetch_xor(&self, v: Self::Int, order: Ordering) -> Self::Int;
    /// `fetch_nand`.
    fn fetch_nand(&self, v: Self::Int, order: Ordering) -> Self::Int;
    /// `fetch_max` (signed or unsigned, as `Int`).
    fn fetch_max(&self, v: Self::Int, order: Ordering) -> Self::Int;
    /// `fetch_min` (signed or unsigned, as `Int`).
    fn fetch_min(&self, v: Self::Int, order: Ordering) -> Self::Int;
}

/// A 32-bit word that threads (in production: threads of several
/// processes) can block on, as with `futex(2)`.
///
/// The atomic operations are those of [`FutexWord::atomic`]: in production
/// the word *is* `core`'s `AtomicU32` (`src/sys/futex.rs`), so that type has
/// a single implementation of [`AtomicWord`]; a stand-in (loom's futex, a
/// test spy, the fuzzer's fake) adds its waiting and waking to such a word
/// instead of forwarding every operation.
///
/// The contract is the kernel's: `wait` returns at the latest when the word
/// no longer holds `expected` and someone calls a `wake_*`, but it may also
/// return early (spuriously, on a signal, on timeout). Callers always
/// re-check the word in a loop and never rely on `wait`/`wake` for memory
/// ordering: all ordering goes through the word's own atomic operations.
pub trait FutexWord {
    /// The word's atomic operations.
    type Atomic: AtomicWord<Int = u32>;
    /// A new word holding `v` (heap, loom and fuzz instances only, as
    /// [`AtomicWord::new`]).
    fn new(v: u32) -> Self
    where
        Self: Sized;
    /// The word, for its atomic operations.
    fn atomic(&self) -> &Self::Atomic;
    /// Sleeps while the word holds `expected`, at most `timeout` if given.
    fn wait(&self, expected: u32, timeout: Option<Duration>);
    /// Wakes at least one thread blocked in [`FutexWord::wait`], if any.
    fn wake_one(&self);
    /// Wakes every thread blocked in [`FutexWord::wait`].
    fn wake_all(&self);
    /// How many times a locker re-reads a busy word before it sleeps. The
    /// `k`-th re-read is preceded by `2^min(k, 7)` calls of
    /// [`FutexWord::spin_hint`] (exponential backoff: polling the word
    /// back to back would keep taking its cache line away from the owner).
    /// Zero under loom, where spinning only multiplies interleavings.
    const SPIN_LIMIT: u32 = 10;
    /// Called between two re-reads while spinning.
    #[inline]
    fn spin_hint() {
        core::hint::spin_loop();
    }
    /// How many times a waiter whose partner is about to answer (an event,
    /// a semaphore, a condition, a barrier) gives its CPU away with
    /// [`FutexWord::yield_now`] and re-reads the word before it sleeps.
    ///
    /// A blocking hand-off between two processes costs a futex sleep and
    /// wake, and on a virtual machine the wake of an idle CPU dominates
    /// (about 40 µs per round trip measured here). Yielding instead of
    /// sleeping for a few rounds is faster both ways: with the partner on
    /// another CPU, `sched_yield` returns at once and the waiter sees the
    /// answer without ever sleeping; with the partner on the same CPU, it
    /// runs the partner at once. `cargo bench --bench sync` measured a raw
    /// futex ping-pong at 20 k round trips/s apart and 190 k together
    /// without yields, 2.2 M and 240 k with 10 (`docs/BENCHMARKS.md`).
    /// The cost: a waiter that ends up sleeping spent this many system
    /// calls first. Zero by default (loom, the fuzzer, tests): the
    /// production word sets it.
    const YIELD_LIMIT: u32 = 0;
    /// Gives the CPU to another runnable thread, if any, for a moment
    /// (the production word: `sched_yield`).
    #[inline]
    fn yield_now() {
        core::hint::spin_loop();
    }
}

/// Re-reads `word` up to [`FutexWord::YIELD_LIMIT`] times, yielding the
/// CPU before each read, until `ready` accepts the value; returns the last
/// value read (`cur` if there was none). What a waiter does before it
/// announces itself and sleeps.
#[inline]
pub fn yield_until<W: FutexWord>(
    word: &W,
    mut cur: u32,
    order: Ordering,
    ready: impl Fn(u32) -> bool,
) -> u32 {
    let mut n = 0;
    while n < W::YIELD_LIMIT && !ready(cur) {
        W::yield_now();
        cur = word.atomic().load(order);
        n += 1;
    }
    cur
}

/// The time budget of a blocking acquire with a timeout.
///
/// Kept abstract so that loom and the fuzzer, which have no clock, can say
/// "expired" after a chosen number of waits.
pub trait Deadline {
    /// Time left before the deadline; `None` once it has passed.
    fn remaining(&mut self) -> Option<Duration>;
}

/// Tells a waiter whether the thread that holds a lock is still alive.
///
/// The kernel's robust list marks a dead owner's word by itself; this is
/// the fallback (and the backstop) for owners the kernel will not report:
/// a process on a path without the robust list, or a process that shares
/// the segment from elsewhere. A waiter that has an implementation sleeps
/// at most [`Liveness::probe_interval`] at a time and asks after each
/// sleep.
pub trait Liveness {
    /// How long a waiter may sleep before probing the owner in `word` (the
    /// value it is about to sleep on); `None` when the owner is known to be
    /// covered by the kernel's robust list, whose death wake suffices.
    fn probe_interval(&mut self, word: u32) -> Option<Duration>;
    /// Whether the owner recorded in `word` (the value just read, owner TID
    /// in bits 0–29) is known to be dead. `false` when unsure: a wrong
    /// `true` would hand the lock to two owners. A `true` must also
    /// *acquire* the death (happen after the dead owner's last writes):
    /// [`RawMutex::mark_owner_dead`](super::RawMutex::mark_owner_dead)'s
    /// `Release` only passes on what the marking waiter has acquired. (The
    /// production probe learns of the death through a system call on the
    /// owner's liveness byte, after the owner's exit.)
    fn owner_is_dead(&mut self, word: u32) -> bool;
}
