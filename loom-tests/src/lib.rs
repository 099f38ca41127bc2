//! loom stand-ins for the world shmsync's state machines run in: a futex
//! word ([`LoomFutex`]), deadlines ([`Budget`]) and owner liveness
//! ([`DeadTable`]), and the loom atomics as shmsync's `AtomicWord`
//! ([`Loom`]: the one place where a seeded bug that the model files in
//! `tests/` were checked against is applied).
//!
//! The models run the **production** state machine (`shmsync::raw`, generic
//! over the word: `docs/STYLE.md`), not a copy of it. Run them with
//!
//! ```sh
//! RUSTFLAGS="--cfg loom -C debug-assertions" LOOM_MAX_PREEMPTIONS=3 \
//!   cargo test --manifest-path loom-tests/Cargo.toml --release
//! ```
//!
//! and re-check one seeded bug with `--features bug-<name> --test <model>`
//! (the model is then expected to fail with the verdict its header lists).
//! To debug a failing model: `LOOM_LOG=trace LOOM_LOCATION=1` on that test.
//!
//! # What the stand-ins can and cannot show
//!
//! - loom treats `SeqCst` accesses as `AcqRel` and does not explore load
//!   buffering (loom's README); the lock uses no `SeqCst`.
//! - [`LoomFutex`] serialises the check-and-sleep with a loom `Mutex` (the
//!   kernel's hash-bucket lock). That mutex adds happens-before edges from
//!   a waker to the thread it wakes which the kernel does not promise. The
//!   lock never relies on them (all ordering goes through the word), but a
//!   weakened ordering is therefore only *caught* on paths where the next
//!   owner did not sleep; the models make sure such paths exist.
//! - loom threads stand in for processes, with `MAX_THREADS` = 5 including
//!   the model's main thread; the models use 2–3.
//! - loom cannot kill a thread. Owner death is a step: the "dying" thread
//!   returns while holding the lock, and either the kernel's robust-list
//!   action is played by [`shmsync::raw::RawMutex::mark_owner_dead`], or
//!   the dying thread records its death in a [`DeadTable`] that waiters
//!   probe through the lock's [`Liveness`] hook. The kernel's own behaviour
//!   is tested with real processes in the main crate's `tests/`.
//!
//! # Seeded bugs
//!
//! Each `bug-*` feature of this crate turns every [`Loom`] word (or
//! [`DeadTable`]) into a known-broken variant, without touching the
//! production code: the lock's state machine and the atomic cells' RMWs
//! alike (a model's own observations go through [`Unseeded`]). Enable at
//! most one. (Bugs in the atomic cells' logic above the word are compiled
//! into the crate instead: `src/raw/rmw.rs`, "Seeded bugs".)
//!
//! | feature                     | what breaks                                                        |
//! |-----------------------------|--------------------------------------------------------------------|
//! | `bug-lost-wake`             | `wake_one`/`wake_all` do nothing                                    |
//! | `bug-weak-release`          | `Release` (and the release half of `AcqRel`/`SeqCst`) become `Relaxed` on every store and RMW (swap, CAS, `fetch_*`) |
//! | `bug-weak-acquire`          | `Acquire` (and the acquire half of `AcqRel`/`SeqCst`) become `Relaxed` on every load and RMW, and in a CAS's failure ordering |
//! | `bug-split-cas`             | a CAS is a load, a compare and a store: not atomic                  |
//! | `bug-no-waiters-bit`        | the `WAITERS` bit is stripped from every CAS's new value            |
//! | `bug-acquire-drops-waiters` | an acquiring CAS (on a word with no owner) drops `WAITERS`          |
//! | `bug-no-owner-died-bit`     | the `OWNER_DIED` bit is stripped from every CAS's new value         |
//! | `bug-keeps-owner-died`      | a CAS that writes an owner keeps the `OWNER_DIED` bit it replaces   |
//! | `bug-event-no-generation`   | a CAS that raises an event's flag (bit 0) keeps the generation (bits 2–31) instead of advancing it |
//! | `bug-barrier-keeps-count`   | a CAS that moves a barrier word to its next round (bits 18–31) with count 0 keeps the count it replaces (bits 0–11) |
//! | `bug-barrier-drops-broken`  | a CAS that sets a barrier word's `BROKEN` (bit 13) leaves it clear |
//! | `bug-sem-taker-drops-waiters` | a CAS that takes a semaphore permit (value − 1) drops `WAITERS` |
//! | `bug-liveness-relaxed`      | [`DeadTable`] reads the death flag `Relaxed` instead of `Acquire`   |
//! | `bug-cond-no-advance`       | a `fetch_add` adds nothing (a condition's sequence never moves)    |
//! | `bug-cond-no-register`      | a CAS that adds one to a word writes the old value (a condition's waiter count never rises; models use owner ids ≥ 10 so that no lock CAS is a `+ 1`) |
//! | `bug-pipe-close-lost`       | a `fetch_or` of the pipe ring's `CLOSED` bit writes nothing         |
//! | `bug-ring-anonymous-claim`  | a ring slot's claiming CAS (to `WRITING`/`READING`) drops the claimant's TID, so a dead claim names nobody |
//! | `bug-ring-drops-waiters`    | a ring slot's CAS drops the `WAITERS` bit from its new value (a waiter's mark, and the bit a claim carries) |

use core::marker::PhantomData;
use core::num::NonZeroU32;
use core::sync::atomic::Ordering::{self, AcqRel, Acquire, Relaxed, Release, SeqCst};
use core::time::Duration;

use std::cell::Cell;

use loom::sync::atomic::AtomicBool;
use loom::sync::{Condvar, Mutex};
use shmsync::raw::{AtomicWord, Deadline, FutexWord, Holds, Liveness, RawMutex, TID_MASK};

pub use shmsync::raw;

/// When a wait with a timeout ends, in a [`LoomFutex`]. loom has no clock,
/// so this is a choice made per model.
pub trait TimeoutPolicy {
    /// `true`: a timed wait sleeps like an untimed one and only ends when
    /// woken (every timeout fires late). `false`: a timed wait returns at
    /// once, after a `yield_now` (every timeout fires immediately).
    const TIMED_WAIT_SLEEPS: bool;
}

/// Timeouts fire immediately (the default): a timed wait is a yield.
#[derive(Debug)]
pub struct TimeoutNow;
impl TimeoutPolicy for TimeoutNow {
    const TIMED_WAIT_SLEEPS: bool = false;
}

/// Timeouts fire late: a timed wait sleeps until a wake (and so may
/// consume a `wake_one` meant for someone else, as the kernel allows).
#[derive(Debug)]
pub struct TimeoutLate;
impl TimeoutPolicy for TimeoutLate {
    const TIMED_WAIT_SLEEPS: bool = true;
}

/// The mapped futex word, as loom sees it: a [`LoomU32`] and the kernel's
/// wait queue for it.
///
/// futex(2): "the load, the comparison with the expected value, and
/// starting to sleep are performed atomically and totally ordered with
/// respect to other futex operations on the same futex word" — hence the
/// `bucket` lock around the check-and-sleep and around every wake, and one
/// condition variable per word (no address keys).
#[derive(Debug)]
pub struct LoomFutex<P: TimeoutPolicy = TimeoutNow> {
    v: LoomU32,
    bucket: Mutex<()>,
    queue: Condvar,
    _policy: PhantomData<P>,
}

impl<P: TimeoutPolicy> FutexWord for LoomFutex<P> {
    type Atomic = LoomU32;

    /// Spinning only multiplies interleavings under loom.
    const SPIN_LIMIT: u32 = 0;

    fn new(v: u32) -> Self {
        LoomFutex {
            v: LoomU32::new(v),
            bucket: Mutex::new(()),
            queue: Condvar::new(),
            _policy: PhantomData,
        }
    }

    fn atomic(&self) -> &LoomU32 {
        &self.v
    }

    fn spin_hint() {
        loom::thread::yield_now();
    }

    fn wait(&self, expected: u32, timeout: Option<Duration>) {
        if timeout.is_some() && !P::TIMED_WAIT_SLEEPS {
            // The timeout fires at once. Yield, so that loom treats a
            // caller that loops on this as a spin loop, not a livelock.
            loom::thread::yield_now();
            return;
        }
        let g = self.bucket.lock().unwrap();
        // Relaxed: the kernel's compare is a plain read; ordering between
        // the waker and the woken comes from the word's own atomics. (The
        // kernel is not the code under test: no seeded bug applies.)
        if self.v.load_unseeded(Relaxed) != expected {
            return; // EAGAIN
        }
        drop(self.queue.wait(g).unwrap());
    }

    fn wake_one(&self) {
        if ActiveBug::WAKES {
            let _g = self.bucket.lock().unwrap();
            self.queue.notify_one();
        }
    }

    fn wake_all(&self) {
        if ActiveBug::WAKES {
            let _g = self.bucket.lock().unwrap();
            self.queue.notify_all();
        }
    }
}

/// A known bug, applied by every [`Loom`] word and [`LoomFutex`].
pub trait Bug {
    /// Transforms the ordering of a load.
    fn load_order(o: Ordering) -> Ordering {
        o
    }
    /// Transforms the ordering of a store, swap or successful CAS.
    fn write_order(o: Ordering) -> Ordering {
        o
    }
    /// Transforms the value a CAS writes, given the value it expects.
    fn cas_new(_current: u32, new: u32) -> u32 {
        new
    }
    /// Transforms the value a CAS of a 64-bit word writes (the ring's slot
    /// words), given the value it expects.
    fn cas_new64(_current: u64, new: u64) -> u64 {
        new
    }
    /// Whether wakes reach the sleepers.
    const WAKES: bool = true;
    /// Whether a CAS is split into a load and a store (not atomic).
    const SPLIT_CAS: bool = false;
    /// Whether `fetch_add` adds (`false`: it adds zero).
    const ADDS: bool = true;
}

/// No bug: the words behave exactly as loom's atomics.
#[derive(Debug)]
pub struct NoBug;
impl Bug for NoBug {}

/// `bug-lost-wake`: wakes are dropped.
#[derive(Debug)]
pub struct LostWake;
impl Bug for LostWake {
    const WAKES: bool = false;
}

/// `bug-weak-release`: no store, swap or CAS releases.
#[derive(Debug)]
pub struct WeakRelease;
impl Bug for WeakRelease {
    fn write_order(o: Ordering) -> Ordering {
        match o {
            Release => Relaxed,
            AcqRel | SeqCst => Acquire,
            o => o,
        }
    }
}

/// `bug-weak-acquire`: no load or CAS acquires.
#[derive(Debug)]
pub struct WeakAcquire;
impl Bug for WeakAcquire {
    fn load_order(o: Ordering) -> Ordering {
        match o {
            Acquire | SeqCst => Relaxed,
            o => o,
        }
    }
    fn write_order(o: Ordering) -> Ordering {
        match o {
            Acquire => Relaxed,
            AcqRel | SeqCst => Release,
            o => o,
        }
    }
}

/// `bug-split-cas`: a CAS reads, compares and then writes, so another
/// thread's write can fall in between and be lost.
#[derive(Debug)]
pub struct SplitCas;
impl Bug for SplitCas {
    const SPLIT_CAS: bool = true;
}

/// `bug-no-waiters-bit`: `WAITERS` is never written by a CAS.
#[derive(Debug)]
pub struct NoWaitersBit;
impl Bug for NoWaitersBit {
    fn cas_new(_current: u32, new: u32) -> u32 {
        new & !raw::WAITERS
    }
}

/// `bug-cond-no-advance`: `notify` does not move the sequence, so a
/// woken waiter goes back to sleep.
#[derive(Debug)]
pub struct CondNoAdvance;
impl Bug for CondNoAdvance {
    const ADDS: bool = false;
}

/// `bug-cond-no-register`: a waiter's `waiters + 1` is lost, so `notify`
/// believes nobody waits.
#[derive(Debug)]
pub struct CondNoRegister;
impl Bug for CondNoRegister {
    fn cas_new(current: u32, new: u32) -> u32 {
        if new == current.wrapping_add(1) {
            current
        } else {
            new
        }
    }
}

/// `bug-acquire-drops-waiters`: a thread taking a free word (TID 0) does
/// not keep `WAITERS`, so the sleepers it cannot see are forgotten.
#[derive(Debug)]
pub struct AcquireDropsWaiters;
impl Bug for AcquireDropsWaiters {
    fn cas_new(current: u32, new: u32) -> u32 {
        if current & TID_MASK == 0 {
            new & !raw::WAITERS
        } else {
            new
        }
    }
}

/// `bug-no-owner-died-bit`: a dead owner's word is freed without
/// `OWNER_DIED`, so nobody learns of the death.
#[derive(Debug)]
pub struct NoOwnerDiedBit;
impl Bug for NoOwnerDiedBit {
    fn cas_new(_current: u32, new: u32) -> u32 {
        new & !raw::OWNER_DIED
    }
}

/// `bug-keeps-owner-died`: a CAS that writes an owner TID keeps the
/// `OWNER_DIED` bit of the value it replaces, so a lock taken over from a
/// dead owner is held with `OWNER_DIED` still set.
#[derive(Debug)]
pub struct KeepsOwnerDied;
impl Bug for KeepsOwnerDied {
    fn cas_new(current: u32, new: u32) -> u32 {
        if new & TID_MASK != 0 {
            new | (current & raw::OWNER_DIED)
        } else {
            new
        }
    }
}

/// `bug-sem-taker-drops-waiters`: a CAS that takes a semaphore permit
/// (the value in bits 0–30 goes down by one) does not keep `WAITERS`, so a
/// woken sleeper that takes its permit forgets the sleepers behind it.
#[derive(Debug)]
pub struct SemTakerDropsWaiters;
impl Bug for SemTakerDropsWaiters {
    fn cas_new(current: u32, new: u32) -> u32 {
        let v = raw::semaphore::VALUE;
        if current & v != 0 && new & v == (current & v) - 1 {
            new & !raw::semaphore::WAITERS
        } else {
            new
        }
    }
}

/// `bug-event-no-generation`: `set` raises the flag without advancing
/// the generation, so a waiter that sleeps through a `set` undone by a
/// `clear` cannot tell that it happened.
#[derive(Debug)]
pub struct EventNoGeneration;
impl Bug for EventNoGeneration {
    fn cas_new(current: u32, new: u32) -> u32 {
        if current & raw::event::SET == 0 && new & raw::event::SET != 0 {
            (current & raw::event::GEN_MASK) | raw::event::SET
        } else {
            new
        }
    }
}

/// `bug-barrier-keeps-count`: a barrier's next round starts with the
/// count of the one before, so a fast party completes it alone.
#[derive(Debug)]
pub struct BarrierKeepsCount;
impl Bug for BarrierKeepsCount {
    fn cas_new(current: u32, new: u32) -> u32 {
        use raw::barrier::{COUNT_MASK, GEN_MASK};
        if (current ^ new) & GEN_MASK != 0 && new & COUNT_MASK == 0 {
            new | (current & COUNT_MASK)
        } else {
            new
        }
    }
}

/// `bug-barrier-drops-broken`: breaking a barrier does not stick.
#[derive(Debug)]
pub struct BarrierDropsBroken;
impl Bug for BarrierDropsBroken {
    fn cas_new(current: u32, new: u32) -> u32 {
        use raw::barrier::BROKEN;
        if current & BROKEN == 0 && new & BROKEN != 0 {
            new & !BROKEN
        } else {
            new
        }
    }
}

/// `bug-ring-anonymous-claim`: a slot claimed for writing or reading does
/// not record its claimant, so a claimant that dies there cannot be judged.
#[derive(Debug)]
pub struct RingAnonymousClaim;
impl Bug for RingAnonymousClaim {
    fn cas_new64(_current: u64, new: u64) -> u64 {
        let state = (new as u32) & raw::ring::STATE_MASK;
        if state == raw::ring::WRITING || state == raw::ring::READING {
            new & !u64::from(raw::ring::TID_BITS)
        } else {
            new
        }
    }
}

/// `bug-ring-drops-waiters`: a ring slot's CAS never writes the waiter
/// bit, so a waiter's mark is lost and the CAS that changes the slot next
/// does not wake it.
#[derive(Debug)]
pub struct RingDropsWaiters;
impl Bug for RingDropsWaiters {
    fn cas_new64(_current: u64, new: u64) -> u64 {
        new & !u64::from(raw::ring::WAITERS)
    }
}

thread_local! {
    /// Failed exchanges of any [`Loom`] word on this test's thread (loom
    /// runs a model's threads as coroutines of the test thread):
    /// bookkeeping outside the model.
    static CAS_FAILURES: Cell<u64> = const { Cell::new(0) };
}

/// How many exchanges of [`Loom`] words have failed on this test's thread
/// so far (a model that should retry a CAS loop checks that loom explored
/// a retry).
pub fn cas_failures() -> u64 {
    CAS_FAILURES.with(Cell::get)
}

fn count_failure<T, E>(r: Result<T, E>) -> Result<T, E> {
    if r.is_err() {
        CAS_FAILURES.with(|n| n.set(n.get() + 1));
    }
    r
}

/// The pipe ring's `CLOSED` bit, for `bug-pipe-close-lost` (32-bit words
/// only).
trait CloseBit: Sized {
    fn close_bit() -> Option<Self>;
}

impl CloseBit for u32 {
    fn close_bit() -> Option<u32> {
        Some(raw::spsc::CLOSED)
    }
}

macro_rules! no_close_bit {
    ($($int:ty),*) => {$(
        impl CloseBit for $int {
            fn close_bit() -> Option<$int> {
                None
            }
        }
    )*};
}

no_close_bit!(u8, i64, u64);

/// The lock bugs' value transforms ([`Bug::cas_new`]) act on 32-bit words;
/// other widths are left alone.
trait CasNew: Sized {
    fn cas_new(current: Self, new: Self) -> Self;
}

impl CasNew for u32 {
    fn cas_new(current: u32, new: u32) -> u32 {
        ActiveBug::cas_new(current, new)
    }
}

macro_rules! other_widths {
    ($($int:ty),*) => {$(
        impl CasNew for $int {
            fn cas_new(_current: $int, new: $int) -> $int {
                new
            }
        }
    )*};
}

other_widths!(u8, i64);

impl CasNew for u64 {
    fn cas_new(current: u64, new: u64) -> u64 {
        ActiveBug::cas_new64(current, new)
    }
}

/// A loom atomic `A` as shmsync's [`AtomicWord`], with this build's
/// [`ActiveBug`] applied to what the code under test does with it. The
/// state machines are unchanged; only the word misbehaves.
///
/// This is the models' one implementation of [`AtomicWord`]: the lock's
/// words ([`LoomFutex`] wraps a [`LoomU32`]) and the atomic cells' words
/// ([`LoomU8`], [`LoomU32`], [`LoomI64`], [`LoomU64`]) alike.
#[derive(Debug)]
pub struct Loom<A>(A);

/// A CAS's new value and orderings under [`ActiveBug`].
fn seeded_cas<I: CasNew>(
    current: I,
    new: I,
    success: Ordering,
    failure: Ordering,
) -> (I, Ordering, Ordering) {
    (
        I::cas_new(current, new),
        ActiveBug::write_order(success),
        ActiveBug::load_order(failure),
    )
}

/// The acquire part of a CAS's `success` ordering, as a load ordering.
fn acquire_part(o: Ordering) -> Ordering {
    match o {
        Acquire | AcqRel => Acquire,
        SeqCst => SeqCst,
        _ => Relaxed,
    }
}

/// The release part of a CAS's `success` ordering, as a store ordering.
fn release_part(o: Ordering) -> Ordering {
    match o {
        Release | AcqRel => Release,
        SeqCst => SeqCst,
        _ => Relaxed,
    }
}

/// `bug-split-cas`: a load, a compare and a store, each with its part of
/// the orderings: everything a CAS does except being atomic.
macro_rules! split_cas {
    ($a:expr, $current:expr, $new:expr, $success:expr, $failure:expr) => {{
        let found = $a.load(acquire_part($success));
        if found == $current {
            $a.store($new, release_part($success));
            Ok(found)
        } else {
            // The failed compare reads with `failure` (at most as strong
            // as the load above, which it reuses).
            let _ = $failure;
            Err(found)
        }
    }};
}

macro_rules! loom_word {
    ($($atomic:ident($int:ty)),* $(,)?) => {$(
        impl AtomicWord for Loom<loom::sync::atomic::$atomic> {
            type Int = $int;
            fn new(v: $int) -> Self {
                Loom(loom::sync::atomic::$atomic::new(v))
            }
            fn load(&self, o: Ordering) -> $int {
                self.0.load(ActiveBug::load_order(o))
            }
            fn store(&self, v: $int, o: Ordering) {
                self.0.store(v, ActiveBug::write_order(o));
            }
            fn swap(&self, v: $int, o: Ordering) -> $int {
                self.0.swap(v, ActiveBug::write_order(o))
            }
            fn compare_exchange(
                &self,
                current: $int,
                new: $int,
                success: Ordering,
                failure: Ordering,
            ) -> Result<$int, $int> {
                let (new, success, failure) = seeded_cas(current, new, success, failure);
                count_failure(if ActiveBug::SPLIT_CAS {
                    split_cas!(self.0, current, new, success, failure)
                } else {
                    self.0.compare_exchange(current, new, success, failure)
                })
            }
            fn compare_exchange_weak(
                &self,
                current: $int,
                new: $int,
                success: Ordering,
                failure: Ordering,
            ) -> Result<$int, $int> {
                let (new, success, failure) = seeded_cas(current, new, success, failure);
                count_failure(if ActiveBug::SPLIT_CAS {
                    split_cas!(self.0, current, new, success, failure)
                } else {
                    self.0.compare_exchange_weak(current, new, success, failure)
                })
            }
            fn fetch_add(&self, v: $int, o: Ordering) -> $int {
                let v = if ActiveBug::ADDS { v } else { 0 };
                self.0.fetch_add(v, ActiveBug::write_order(o))
            }
            fn fetch_sub(&self, v: $int, o: Ordering) -> $int {
                self.0.fetch_sub(v, ActiveBug::write_order(o))
            }
            fn fetch_and(&self, v: $int, o: Ordering) -> $int {
                self.0.fetch_and(v, ActiveBug::write_order(o))
            }
            fn fetch_or(&self, v: $int, o: Ordering) -> $int {
                if cfg!(feature = "bug-pipe-close-lost") && <$int>::close_bit() == Some(v) {
                    return self.0.load(ActiveBug::load_order(acquire_part(o)));
                }
                self.0.fetch_or(v, ActiveBug::write_order(o))
            }
            fn fetch_xor(&self, v: $int, o: Ordering) -> $int {
                self.0.fetch_xor(v, ActiveBug::write_order(o))
            }
            fn fetch_nand(&self, v: $int, o: Ordering) -> $int {
                self.0.fetch_nand(v, ActiveBug::write_order(o))
            }
            fn fetch_max(&self, v: $int, o: Ordering) -> $int {
                self.0.fetch_max(v, ActiveBug::write_order(o))
            }
            fn fetch_min(&self, v: $int, o: Ordering) -> $int {
                self.0.fetch_min(v, ActiveBug::write_order(o))
            }
        }
    )*};
}

loom_word! {
    AtomicU8(u8), AtomicU32(u32), AtomicI64(i64), AtomicU64(u64),
}

/// Access to a [`Loom`] word that no seeded bug touches: for a model's own
/// observations and publications around the code under test (a seeded
/// ordering bug must be caught in the code under test, not in the model's
/// own accesses).
pub trait Unseeded: AtomicWord {
    /// `load`, as loom does it.
    fn load_unseeded(&self, order: Ordering) -> Self::Int;
    /// `store`, as loom does it.
    fn store_unseeded(&self, v: Self::Int, order: Ordering);
}

macro_rules! unseeded {
    ($($atomic:ident),* $(,)?) => {$(
        impl Unseeded for Loom<loom::sync::atomic::$atomic> {
            fn load_unseeded(&self, order: Ordering) -> Self::Int {
                self.0.load(order)
            }
            fn store_unseeded(&self, v: Self::Int, order: Ordering) {
                self.0.store(v, order);
            }
        }
    )*};
}

unseeded!(AtomicU8, AtomicU32, AtomicI64, AtomicU64);

/// A loom `AtomicU8` word (`u8` and `bool` cells).
pub type LoomU8 = Loom<loom::sync::atomic::AtomicU8>;
/// A loom `AtomicU32` word (the lock's words, `f32` cells).
pub type LoomU32 = Loom<loom::sync::atomic::AtomicU32>;
/// A loom `AtomicI64` word (`i64` cells).
pub type LoomI64 = Loom<loom::sync::atomic::AtomicI64>;
/// A loom `AtomicU64` word (`f64` cells).
pub type LoomU64 = Loom<loom::sync::atomic::AtomicU64>;

/// How many word bug features this build enables.
const WORD_BUGS: usize = cfg!(feature = "bug-lost-wake") as usize
    + cfg!(feature = "bug-weak-release") as usize
    + cfg!(feature = "bug-weak-acquire") as usize
    + cfg!(feature = "bug-split-cas") as usize
    + cfg!(feature = "bug-no-waiters-bit") as usize
    + cfg!(feature = "bug-acquire-drops-waiters") as usize
    + cfg!(feature = "bug-no-owner-died-bit") as usize
    + cfg!(feature = "bug-keeps-owner-died") as usize
    + cfg!(feature = "bug-event-no-generation") as usize
    + cfg!(feature = "bug-barrier-keeps-count") as usize
    + cfg!(feature = "bug-barrier-drops-broken") as usize
    + cfg!(feature = "bug-cond-no-advance") as usize
    + cfg!(feature = "bug-cond-no-register") as usize
    + cfg!(feature = "bug-sem-taker-drops-waiters") as usize
    + cfg!(feature = "bug-ring-anonymous-claim") as usize
    + cfg!(feature = "bug-ring-drops-waiters") as usize;
// The count is a constant that is usually 0, which clippy finds absurd.
#[allow(clippy::absurd_extreme_comparisons)]
const _: () = assert!(WORD_BUGS <= 1, "enable at most one word bug-* feature");

/// The word bug selected by this build's `bug-*` feature ([`NoBug`] by
/// default).
#[cfg(feature = "bug-lost-wake")]
pub type ActiveBug = LostWake;
/// The word bug selected by this build's `bug-*` feature.
#[cfg(feature = "bug-weak-release")]
pub type ActiveBug = WeakRelease;
/// The word bug selected by this build's `bug-*` feature.
#[cfg(feature = "bug-weak-acquire")]
pub type ActiveBug = WeakAcquire;
/// The word bug selected by this build's `bug-*` feature.
#[cfg(feature = "bug-split-cas")]
pub type ActiveBug = SplitCas;
/// The word bug selected by this build's `bug-*` feature.
#[cfg(feature = "bug-no-waiters-bit")]
pub type ActiveBug = NoWaitersBit;
/// The word bug selected by this build's `bug-*` feature.
#[cfg(feature = "bug-acquire-drops-waiters")]
pub type ActiveBug = AcquireDropsWaiters;
/// The word bug selected by this build's `bug-*` feature.
#[cfg(feature = "bug-no-owner-died-bit")]
pub type ActiveBug = NoOwnerDiedBit;
/// The word bug selected by this build's `bug-*` feature.
#[cfg(feature = "bug-keeps-owner-died")]
pub type ActiveBug = KeepsOwnerDied;
/// The word bug selected by this build's `bug-*` feature.
#[cfg(feature = "bug-event-no-generation")]
pub type ActiveBug = EventNoGeneration;
/// The word bug selected by this build's `bug-*` feature.
#[cfg(feature = "bug-barrier-keeps-count")]
pub type ActiveBug = BarrierKeepsCount;
/// The word bug selected by this build's `bug-*` feature.
#[cfg(feature = "bug-barrier-drops-broken")]
pub type ActiveBug = BarrierDropsBroken;
/// The word bug selected by this build's `bug-*` feature.
#[cfg(feature = "bug-cond-no-advance")]
pub type ActiveBug = CondNoAdvance;
/// The word bug selected by this build's `bug-*` feature.
#[cfg(feature = "bug-cond-no-register")]
pub type ActiveBug = CondNoRegister;
/// The word bug selected by this build's `bug-*` feature.
#[cfg(feature = "bug-sem-taker-drops-waiters")]
pub type ActiveBug = SemTakerDropsWaiters;
/// The word bug selected by this build's `bug-*` feature.
#[cfg(feature = "bug-ring-anonymous-claim")]
pub type ActiveBug = RingAnonymousClaim;
/// The word bug selected by this build's `bug-*` feature.
#[cfg(feature = "bug-ring-drops-waiters")]
pub type ActiveBug = RingDropsWaiters;
/// The word bug selected by this build's `bug-*` feature ([`NoBug`]: none).
#[cfg(not(any(
    feature = "bug-ring-anonymous-claim",
    feature = "bug-ring-drops-waiters",
    feature = "bug-barrier-keeps-count",
    feature = "bug-barrier-drops-broken",
    feature = "bug-cond-no-advance",
    feature = "bug-cond-no-register",
    feature = "bug-sem-taker-drops-waiters",
    feature = "bug-event-no-generation",
    feature = "bug-lost-wake",
    feature = "bug-weak-release",
    feature = "bug-weak-acquire",
    feature = "bug-split-cas",
    feature = "bug-no-waiters-bit",
    feature = "bug-acquire-drops-waiters",
    feature = "bug-no-owner-died-bit",
    feature = "bug-keeps-owner-died",
)))]
pub type ActiveBug = NoBug;

/// The word every lock model runs on: [`LoomFutex`], with this build's
/// [`ActiveBug`] (none by default).
pub type ModelWord<P = TimeoutNow> = LoomFutex<P>;

/// The production lock state machine on the model word.
pub type ModelMutex<P = TimeoutNow> = RawMutex<ModelWord<P>>;

/// Runs `f` under `loom::model` and prints how many executions loom
/// explored and how long it took (shown with `--nocapture`).
pub fn model<F>(name: &str, f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed as StdRelaxed};
    // A std (not loom) counter: bookkeeping outside the model.
    let runs = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = runs.clone();
    let start = std::time::Instant::now();
    loom::model(move || {
        counted.fetch_add(1, StdRelaxed);
        f();
    });
    println!(
        "loom model {name}: {} executions in {:.1?}",
        runs.load(StdRelaxed),
        start.elapsed()
    );
}

/// Owner id `n` (models use 1..=4).
pub fn id(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).expect("model ids are non-zero")
}

/// A deadline that allows `left` more waits and then expires, counting how
/// often it was asked (loom has no clock).
#[derive(Debug)]
pub struct Budget {
    left: u32,
    /// Calls of [`Deadline::remaining`] so far.
    pub asked: u32,
}

impl Budget {
    /// Expires after `waits` waits (0: at the first check).
    pub fn new(waits: u32) -> Self {
        Budget {
            left: waits,
            asked: 0,
        }
    }
    /// Whether it has expired.
    pub fn expired(&self) -> bool {
        self.left == 0
    }
}

impl Deadline for Budget {
    fn remaining(&mut self) -> Option<Duration> {
        self.asked += 1;
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        Some(Duration::from_millis(1))
    }
}

/// Which owner ids have died, as a liveness fallback would learn it (in
/// production: an OFD lock on the segment's fd released by the kernel).
///
/// A dying thread calls [`DeadTable::die`] as its last step (Release); a
/// waiter's probe reads it with Acquire, so the dead owner's writes happen
/// before the recovery. This is the contract a [`Liveness`] must meet.
#[derive(Debug)]
pub struct DeadTable {
    dead: [AtomicBool; 5],
}

impl Default for DeadTable {
    fn default() -> Self {
        DeadTable {
            dead: core::array::from_fn(|_| AtomicBool::new(false)),
        }
    }
}

impl DeadTable {
    /// Records that owner `who` (1..=4) has died. Call it last.
    pub fn die(&self, who: NonZeroU32) {
        // Release: pairs with the Acquire load in `owner_is_dead`.
        self.dead[who.get() as usize].store(true, Release);
    }

    /// A [`Liveness`] probe on this table.
    pub fn probe(&self) -> Probe<'_> {
        Probe {
            table: self,
            probes: 0,
        }
    }
}

/// One waiter's [`Liveness`] view of a [`DeadTable`].
#[derive(Debug)]
pub struct Probe<'a> {
    table: &'a DeadTable,
    /// How many times the waiter asked.
    pub probes: u32,
}

/// The ordering of the death-flag read: `Acquire`, or `Relaxed` with the
/// `bug-liveness-relaxed` feature.
const DEATH_READ: Ordering = if cfg!(feature = "bug-liveness-relaxed") {
    Relaxed
} else {
    // Acquire: pairs with the Release store in `DeadTable::die`.
    Acquire
};

impl Liveness for Probe<'_> {
    fn probe_interval(&mut self, _word: u32) -> Option<Duration> {
        Some(Duration::from_millis(1))
    }

    fn owner_is_dead(&mut self, word: u32) -> bool {
        self.probes += 1;
        let owner = (word & TID_MASK) as usize;
        self.table
            .dead
            .get(owner)
            .is_some_and(|d| d.load(DEATH_READ))
    }
}

/// A lock and the data it protects, shared by the model's threads.
#[derive(Debug)]
pub struct Shared<P: TimeoutPolicy = TimeoutNow> {
    /// The production state machine.
    pub m: ModelMutex<P>,
    /// Data that only the lock's holder may touch: loom reports any access
    /// not ordered by the lock as a causality violation.
    pub data: loom::cell::UnsafeCell<u32>,
}

// SAFETY: `data` is only accessed through `read`/`write`, whose callers
// hold `m` (their contract); `m` is made of loom atomics and locks.
unsafe impl<P: TimeoutPolicy> Sync for Shared<P> {}

impl<P: TimeoutPolicy> Default for Shared<P> {
    fn default() -> Self {
        Shared {
            m: RawMutex::new(),
            data: loom::cell::UnsafeCell::new(0),
        }
    }
}

impl<P: TimeoutPolicy> Shared<P> {
    /// Reads the protected data.
    ///
    /// # Safety
    /// - the calling thread holds `m`.
    pub unsafe fn read(&self) -> u32 {
        // SAFETY: the caller holds the lock, so no write is concurrent.
        self.data.with(|p| unsafe { *p })
    }

    /// Writes the protected data.
    ///
    /// # Safety
    /// - the calling thread holds `m`.
    pub unsafe fn write(&self, v: u32) {
        // SAFETY: the caller holds the lock, so no access is concurrent.
        self.data.with_mut(|p| unsafe { *p = v });
    }

    /// The lock word (Relaxed: for checks after the other threads were
    /// joined, or by the word's owner).
    pub fn word(&self) -> u32 {
        self.m.word().atomic().load_unseeded(Relaxed)
    }

    /// The owner's holds as its copy in the page says (Relaxed: exact when
    /// read by the owner; the owner's own [`Holds`] decide).
    pub fn count(&self) -> u32 {
        self.m.holds()
    }

    /// Releases one hold of owner `me`, whose own count is `held`; `true`
    /// when the lock is now free.
    ///
    /// # Safety
    /// - owner `me` holds `m` `held` times.
    pub unsafe fn unlock(&self, me: NonZeroU32, held: &mut Holds) -> bool {
        // SAFETY: forwarded to the caller.
        unsafe { self.m.unlock(me, held) }
    }
}
