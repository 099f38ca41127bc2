#![allow(unsafe_code)] // tests of the unsafe `unlock`, with `UnsafeCell` payloads
//! Unit tests of [`RawMutex`] on heap memory, with the production word
//! (`core`'s `AtomicU32` and the *shared* futex of `src/sys/futex.rs`).
//!
//! Owner ids are small made-up numbers (the state machine only needs them to
//! be distinct and non-zero), so one test thread can act as several owners,
//! and "the kernel" (the robust-list walk after a death) is played by calls
//! to [`RawMutex::mark_owner_dead`].
//!
//! Tests that must know that a waiter has really gone to sleep use [`Spy`],
//! the production word plus a counter of the `wait` calls it forwards.
//!
//! # Miri
//!
//! `MIRIFLAGS="-Zmiri-strict-provenance" cargo +nightly miri test --lib raw::`
//! runs every test here. Under Miri rustix uses its libc backend, so the
//! futex calls become `syscall(SYS_futex, ..)`, which Miri emulates for
//! shared (non-private) futexes too: waits with and without timeout and
//! wakes. (The production word issues its wakes with std's form of the
//! call under Miri, since rustix 1.1's `futex::wake` builds its unused
//! timeout argument with an integer-to-pointer cast that
//! `-Zmiri-strict-provenance` rejects; see `src/sys/futex.rs`.) Loop counts
//! shrink under Miri to keep its run short.

use core::cell::UnsafeCell;
use core::num::NonZeroU32;
use core::sync::atomic::AtomicU32;
use core::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use core::time::Duration;
use std::sync::atomic::AtomicBool;
use std::thread;

use super::*;

mod barrier;
mod condvar;
mod event;
mod ring;
mod semaphore;
mod spsc;

fn id(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).expect("test ids are non-zero")
}

/// The production word.
type Mutex = RawMutex<AtomicU32>;

/// A deadline that grants `left` more sleeps of 1 ms, then expires, and
/// counts how often it was asked.
struct Budget {
    left: u32,
    asked: u32,
}

impl Budget {
    fn new(left: u32) -> Self {
        Budget { left, asked: 0 }
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

/// The production word, counting the `wait` and `wake_*` calls it passes
/// on.
#[derive(Debug)]
struct Spy {
    w: AtomicU32,
    waits: AtomicU32,
    wakes: AtomicU32,
}

/// The word itself, for the tests' checks.
impl core::ops::Deref for Spy {
    type Target = AtomicU32;
    fn deref(&self) -> &AtomicU32 {
        &self.w
    }
}

impl FutexWord for Spy {
    type Atomic = AtomicU32;
    fn new(v: u32) -> Self {
        Spy {
            w: AtomicU32::new(v),
            waits: AtomicU32::new(0),
            wakes: AtomicU32::new(0),
        }
    }
    fn atomic(&self) -> &AtomicU32 {
        &self.w
    }
    fn wait(&self, expected: u32, timeout: Option<Duration>) {
        // Relaxed: a statistic read by the test thread, which only uses it
        // to decide when to go on; no data is published through it.
        self.waits.fetch_add(1, Relaxed);
        FutexWord::wait(&self.w, expected, timeout);
    }
    fn wake_one(&self) {
        // Relaxed: a statistic, as `waits`.
        self.wakes.fetch_add(1, Relaxed);
        self.w.wake_one();
    }
    fn wake_all(&self) {
        // Relaxed: a statistic, as `waits`.
        self.wakes.fetch_add(1, Relaxed);
        self.w.wake_all();
    }
}

/// Yields until `done()`; the other threads always get there (no timing
/// assumption, only progress).
fn until(mut done: impl FnMut() -> bool) {
    while !done() {
        thread::sleep(Duration::from_micros(200));
    }
}

/// Until `n` waits have been entered on `m`'s word and it shows `WAITERS`.
fn until_asleep(m: &RawMutex<Spy>, n: u32) {
    until(|| m.word.waits.load(Relaxed) >= n && m.word.load(Relaxed) & WAITERS != 0);
}

/// Data protected by a `RawMutex`, with no synchronisation of its own.
struct Guarded<W: FutexWord> {
    m: RawMutex<W>,
    data: UnsafeCell<u64>,
}

// SAFETY: `data` is only accessed by a thread that holds `m`.
unsafe impl<W: FutexWord> Sync for Guarded<W> where RawMutex<W>: Sync {}

#[test]
fn lock_unlock_uncontended() {
    let m = Mutex::new();
    let (mut h7, mut h8) = (Holds::NONE, Holds::NONE);
    assert!(!m.is_locked());
    assert_eq!(
        m.lock(id(7), &mut h7, false, None, None),
        Ok(Acquired::Locked)
    );
    assert_eq!(h7.get(), 1);
    assert_eq!(m.word.load(Relaxed), 7, "no WAITERS bit without a sleeper");
    assert!(m.is_locked());
    assert!(m.is_held_by(id(7)));
    assert!(!m.is_held_by(id(8)));
    // SAFETY: owner 7 holds it.
    assert!(unsafe { m.unlock(id(7), &mut h7) });
    assert_eq!(h7, Holds::NONE);
    assert_eq!(m.word.load(Relaxed), 0);
    assert!(!m.is_locked());
    assert_eq!(m.try_lock(id(8), &mut h8, false), Ok(Acquired::Locked));
    assert_eq!(h8.get(), 1);
    // SAFETY: owner 8 holds it.
    assert!(unsafe { m.unlock(id(8), &mut h8) });
    assert_eq!(h8, Holds::NONE);
}

#[test]
fn try_lock_would_block_from_another_thread() {
    let m = Mutex::new();
    let mut h1 = Holds::NONE;
    assert_eq!(m.try_lock(id(1), &mut h1, false), Ok(Acquired::Locked));
    thread::scope(|s| {
        s.spawn(|| {
            let mut h2 = Holds::NONE;
            assert_eq!(m.try_lock(id(2), &mut h2, false), Err(Refused::WouldBlock));
            assert_eq!(m.try_lock(id(2), &mut h2, true), Err(Refused::WouldBlock));
            assert_eq!(h2, Holds::NONE, "a refused acquire counts nothing");
        });
    });
    assert_eq!(m.word.load(Relaxed), 1, "try_lock leaves the word alone");
    // SAFETY: owner 1 holds it.
    unsafe { m.unlock(id(1), &mut h1) };
    thread::scope(|s| {
        s.spawn(|| {
            let mut h2 = Holds::NONE;
            assert_eq!(m.try_lock(id(2), &mut h2, false), Ok(Acquired::Locked));
            // SAFETY: owner 2 holds it.
            unsafe { m.unlock(id(2), &mut h2) };
        });
    });
}

#[test]
fn recursive_lock_counts_holds() {
    let m = Mutex::new();
    let (mut h3, mut h4) = (Holds::NONE, Holds::NONE);
    assert_eq!(
        m.lock(id(3), &mut h3, true, None, None),
        Ok(Acquired::Locked)
    );
    assert_eq!(
        m.lock(id(3), &mut h3, true, None, None),
        Ok(Acquired::Recursive)
    );
    assert_eq!(m.try_lock(id(3), &mut h3, true), Ok(Acquired::Recursive));
    let mut b = Budget::new(0);
    assert_eq!(
        m.lock(id(3), &mut h3, true, Some(&mut b), None),
        Ok(Acquired::Recursive)
    );
    assert_eq!(
        b.asked, 0,
        "a recursive acquire never consults the deadline"
    );
    assert_eq!(h3.get(), 4);
    assert_eq!(m.holds(), 4, "the observers' copy follows");
    assert_eq!(m.try_lock(id(4), &mut h4, true), Err(Refused::WouldBlock));
    for left in (1..4).rev() {
        // SAFETY: owner 3 holds it (4 holds).
        assert!(!unsafe { m.unlock(id(3), &mut h3) }, "still held");
        assert_eq!(h3.get(), left);
        assert_eq!(m.holds(), left);
        assert_eq!(m.word.load(Relaxed), 3);
    }
    // SAFETY: the last hold.
    assert!(unsafe { m.unlock(id(3), &mut h3) });
    assert_eq!(h3, Holds::NONE);
    assert_eq!(m.word.load(Relaxed), 0);
    assert_eq!(m.try_lock(id(4), &mut h4, true), Ok(Acquired::Locked));
    assert_eq!(h4.get(), 1, "a new owner starts at one hold");
    assert_eq!(m.holds(), 1);
}

#[test]
fn relock_of_non_recursive_lock_is_deadlock() {
    let m = Mutex::new();
    let mut h5 = Holds::NONE;
    assert_eq!(
        m.lock(id(5), &mut h5, false, None, None),
        Ok(Acquired::Locked)
    );
    assert_eq!(
        m.lock(id(5), &mut h5, false, None, None),
        Err(Refused::Deadlock)
    );
    assert_eq!(m.try_lock(id(5), &mut h5, false), Err(Refused::Deadlock));
    let mut b = Budget::new(3);
    assert_eq!(
        m.lock(id(5), &mut h5, false, Some(&mut b), None),
        Err(Refused::Deadlock)
    );
    assert_eq!(b.asked, 0);
    assert_eq!(m.word.load(Relaxed), 5, "a refused relock changes nothing");
    assert_eq!(h5.get(), 1);
    assert_eq!(m.holds(), 1);
    // SAFETY: owner 5 holds it once.
    assert!(unsafe { m.unlock(id(5), &mut h5) });
    assert_eq!(m.word.load(Relaxed), 0);
}

#[test]
fn recursion_count_overflow_is_deadlock() {
    let m = Mutex::new();
    let mut h5 = Holds::NONE;
    assert_eq!(
        m.lock(id(5), &mut h5, true, None, None),
        Ok(Acquired::Locked)
    );
    // As if taken u32::MAX - 1 times (the caller's own records say so).
    h5 = Holds::new(u32::MAX - 1);
    assert_eq!(
        m.lock(id(5), &mut h5, true, None, None),
        Ok(Acquired::Recursive)
    );
    assert_eq!(h5.get(), u32::MAX);
    assert_eq!(m.holds(), u32::MAX);
    assert_eq!(
        m.lock(id(5), &mut h5, true, None, None),
        Err(Refused::Deadlock)
    );
    assert_eq!(m.try_lock(id(5), &mut h5, true), Err(Refused::Deadlock));
    let mut b = Budget::new(1);
    assert_eq!(
        m.lock(id(5), &mut h5, true, Some(&mut b), None),
        Err(Refused::Deadlock)
    );
    assert_eq!(h5.get(), u32::MAX, "a refused relock counts nothing");
    assert_eq!(m.holds(), u32::MAX);
    assert_eq!(m.word.load(Relaxed), 5);
    // Counting down from the top: the last of them releases.
    // SAFETY: owner 5 holds it u32::MAX times.
    assert!(!unsafe { m.unlock(id(5), &mut h5) });
    assert_eq!(m.holds(), u32::MAX - 1);
    h5 = Holds::new(1);
    // SAFETY: as if the others were released: one hold left.
    assert!(unsafe { m.unlock(id(5), &mut h5) });
    assert_eq!(m.word.load(Relaxed), 0);
}

#[test]
fn timed_lock_gives_up_after_its_deadline() {
    let m = RawMutex::<Spy>::new();
    let (mut h1, mut h2) = (Holds::NONE, Holds::NONE);
    assert_eq!(
        m.lock(id(1), &mut h1, false, None, None),
        Ok(Acquired::Locked)
    );
    // Expired at once: no sleep at all.
    let mut b = Budget::new(0);
    assert_eq!(
        m.lock(id(2), &mut h2, false, Some(&mut b), None),
        Err(Refused::WouldBlock)
    );
    assert_eq!(b.asked, 1);
    assert_eq!(h2, Holds::NONE);
    assert_eq!(m.word.waits.load(Relaxed), 0);
    // It announced itself before giving up: the holder's unlock will wake.
    assert_eq!(m.word.load(Relaxed), 1 | WAITERS);
    // Three 1 ms sleeps, then expired.
    let mut b = Budget::new(3);
    thread::scope(|s| {
        s.spawn(|| {
            assert_eq!(
                m.lock(id(2), &mut h2, true, Some(&mut b), None),
                Err(Refused::WouldBlock)
            );
        });
    });
    assert_eq!(b.asked, 4, "asked before each of 3 sleeps and once more");
    assert_eq!(h2, Holds::NONE);
    assert!(m.word.waits.load(Relaxed) >= 3, "slept at least 3 times");
    assert_eq!(m.word.load(Relaxed), 1 | WAITERS, "the holder is untouched");
    // SAFETY: owner 1 holds it.
    assert!(unsafe { m.unlock(id(1), &mut h1) });
    assert_eq!(m.word.load(Relaxed), 0);
    let mut b = Budget::new(0);
    assert_eq!(
        m.lock(id(2), &mut h2, false, Some(&mut b), None),
        Ok(Acquired::Locked)
    );
    assert_eq!(b.asked, 0, "a free lock is taken without asking the clock");
    assert_eq!(h2.get(), 1);
}

#[test]
fn timed_lock_succeeds_when_released_in_time() {
    let m = RawMutex::<Spy>::new();
    let mut h1 = Holds::NONE;
    assert_eq!(
        m.lock(id(1), &mut h1, false, None, None),
        Ok(Acquired::Locked)
    );
    thread::scope(|s| {
        let t = s.spawn(|| {
            // A deadline that never expires, as a timed lock with a long
            // timeout: returns only once it holds the lock.
            struct Never;
            impl Deadline for Never {
                fn remaining(&mut self) -> Option<Duration> {
                    Some(Duration::from_millis(5))
                }
            }
            let mut h2 = Holds::NONE;
            let r = m.lock(id(2), &mut h2, false, Some(&mut Never), None);
            // SAFETY: owner 2 holds it if Ok.
            let last = r.is_ok() && unsafe { m.unlock(id(2), &mut h2) };
            (r, last)
        });
        until_asleep(&m, 1);
        // SAFETY: owner 1 holds it.
        unsafe { m.unlock(id(1), &mut h1) };
        assert_eq!(t.join().unwrap(), (Ok(Acquired::Locked), true));
    });
    assert_eq!(m.word.load(Relaxed), 0);
}

#[test]
fn sleepers_are_woken_and_take_turns() {
    const N: u32 = 3;
    let m = RawMutex::<Spy>::new();
    let mut h9 = Holds::NONE;
    assert_eq!(
        m.lock(id(9), &mut h9, false, None, None),
        Ok(Acquired::Locked)
    );
    let order = std::sync::Mutex::new(Vec::new());
    thread::scope(|s| {
        for t in 1..=N {
            let (m, order) = (&m, &order);
            s.spawn(move || {
                let mut h = Holds::NONE;
                assert_eq!(
                    m.lock(id(t), &mut h, false, None, None),
                    Ok(Acquired::Locked)
                );
                order.lock().unwrap().push(t);
                // SAFETY: owner t holds it.
                assert!(unsafe { m.unlock(id(t), &mut h) });
            });
        }
        until_asleep(&m, N);
        assert!(order.lock().unwrap().is_empty(), "nobody got in while held");
        // SAFETY: owner 9 holds it.
        assert!(unsafe { m.unlock(id(9), &mut h9) });
    });
    let mut got = order.into_inner().unwrap();
    got.sort_unstable();
    assert_eq!(got, (1..=N).collect::<Vec<_>>());
    assert_eq!(m.word.load(Relaxed), 0, "the last one out clears WAITERS");
}

#[test]
fn contended_increments_are_exact() {
    let threads: u32 = 4;
    let per: u64 = if cfg!(miri) { 30 } else { 20_000 };
    for recursive in [false, true] {
        let g = Guarded {
            m: Mutex::new(),
            data: UnsafeCell::new(0),
        };
        thread::scope(|s| {
            for t in 1..=threads {
                let g = &g;
                s.spawn(move || {
                    let mut h = Holds::NONE;
                    for _ in 0..per {
                        assert_eq!(
                            g.m.lock(id(t), &mut h, recursive, None, None),
                            Ok(Acquired::Locked)
                        );
                        // SAFETY: `t` holds the lock, which guards `data`.
                        unsafe { *g.data.get() += 1 };
                        // SAFETY: owner t holds it once.
                        assert!(unsafe { g.m.unlock(id(t), &mut h) });
                    }
                });
            }
        });
        assert_eq!(g.data.into_inner(), u64::from(threads) * per);
        assert_eq!(g.m.word.load(Relaxed), 0);
    }
}

#[test]
fn owner_death_is_reported_once_and_resets_the_count() {
    let m = Mutex::new();
    let (mut h1, mut h2, mut h3) = (Holds::NONE, Holds::NONE, Holds::NONE);
    assert_eq!(
        m.lock(id(1), &mut h1, true, None, None),
        Ok(Acquired::Locked)
    );
    assert_eq!(
        m.lock(id(1), &mut h1, true, None, None),
        Ok(Acquired::Recursive)
    );
    assert_eq!(
        m.lock(id(1), &mut h1, true, None, None),
        Ok(Acquired::Recursive)
    );
    assert_eq!(m.holds(), 3);
    assert!(!m.mark_owner_dead(id(2)), "2 does not own it");
    assert_eq!(m.word.load(Relaxed), 1);
    // Owner 1 dies holding it three times (its `h1` dies with it); the
    // kernel marks the word.
    assert_eq!(h1.get(), 3);
    assert!(m.mark_owner_dead(id(1)));
    assert_eq!(m.word.load(Relaxed), OWNER_DIED);
    assert!(!m.is_locked(), "free, but marked");
    assert!(!m.mark_owner_dead(id(1)), "a second walk finds nothing");
    assert_eq!(
        m.lock(id(2), &mut h2, true, None, None),
        Ok(Acquired::OwnerDied)
    );
    assert_eq!(h2.get(), 1);
    assert_eq!(m.word.load(Relaxed), 2, "OWNER_DIED never stays while held");
    assert_eq!(m.holds(), 1, "the dead owner's holds are gone");
    assert_eq!(m.try_lock(id(3), &mut h3, true), Err(Refused::WouldBlock));
    assert_eq!(
        m.lock(id(2), &mut h2, true, None, None),
        Ok(Acquired::Recursive)
    );
    // SAFETY: owner 2 holds it.
    unsafe { m.mark_consistent() };
    // SAFETY: owner 2 holds it twice.
    assert!(!unsafe { m.unlock(id(2), &mut h2) });
    // SAFETY: the last hold.
    assert!(unsafe { m.unlock(id(2), &mut h2) });
    assert_eq!(m.word.load(Relaxed), 0);
    // Back to normal: nobody sees the death again.
    assert_eq!(m.try_lock(id(3), &mut h3, false), Ok(Acquired::Locked));
    // SAFETY: owner 3 holds it.
    assert!(unsafe { m.unlock(id(3), &mut h3) });
    // A new thread with the dead owner's id starts from nothing.
    let mut h1 = Holds::NONE;
    assert_eq!(
        m.lock(id(1), &mut h1, true, None, None),
        Ok(Acquired::Locked)
    );
    assert_eq!(m.holds(), 1);
}

#[test]
fn owner_death_seen_by_try_lock_and_timed_lock() {
    let m = Mutex::new();
    let (mut h1, mut h2, mut h3) = (Holds::NONE, Holds::NONE, Holds::NONE);
    assert_eq!(
        m.lock(id(1), &mut h1, false, None, None),
        Ok(Acquired::Locked)
    );
    assert!(m.mark_owner_dead(id(1)));
    assert_eq!(m.try_lock(id(2), &mut h2, false), Ok(Acquired::OwnerDied));
    assert_eq!(h2.get(), 1);
    assert!(m.mark_owner_dead(id(2)), "the new owner dies too");
    let mut b = Budget::new(0);
    assert_eq!(
        m.lock(id(3), &mut h3, false, Some(&mut b), None),
        Ok(Acquired::OwnerDied)
    );
    assert_eq!(b.asked, 0);
    // SAFETY: owner 3 holds it.
    unsafe { m.mark_consistent() };
    // SAFETY: owner 3 holds it.
    assert!(unsafe { m.unlock(id(3), &mut h3) });
    assert_eq!(m.word.load(Relaxed), 0);
}

#[test]
fn sleepers_recover_a_dead_owner_exactly_once() {
    const N: u32 = 3;
    let m = RawMutex::<Spy>::new();
    let mut h9 = Holds::NONE;
    assert_eq!(
        m.lock(id(9), &mut h9, true, None, None),
        Ok(Acquired::Locked)
    );
    assert_eq!(
        m.lock(id(9), &mut h9, true, None, None),
        Ok(Acquired::Recursive)
    );
    let died = AtomicU32::new(0);
    thread::scope(|s| {
        for t in 1..=N {
            let (m, died) = (&m, &died);
            s.spawn(move || {
                let mut h = Holds::NONE;
                let r = m.lock(id(t), &mut h, true, None, None);
                assert_eq!(h.get(), 1);
                match r {
                    Ok(Acquired::OwnerDied) => {
                        // Relaxed: read after the joins, which synchronise.
                        died.fetch_add(1, Relaxed);
                        assert_eq!(m.holds(), 1);
                        // SAFETY: owner t holds it.
                        unsafe { m.mark_consistent() };
                    }
                    Ok(Acquired::Locked) => assert_eq!(m.holds(), 1),
                    other => panic!("waiter {t}: {other:?}"),
                }
                // SAFETY: owner t holds it once.
                assert!(unsafe { m.unlock(id(t), &mut h) });
            });
        }
        until_asleep(&m, N);
        // Owner 9 "dies": the kernel marks the word and wakes one sleeper.
        assert!(m.mark_owner_dead(id(9)));
    });
    assert_eq!(died.load(Relaxed), 1);
    assert_eq!(m.word.load(Relaxed), 0);
}

#[test]
fn unlock_without_mark_consistent_is_not_recoverable() {
    let m = Mutex::new();
    let (mut h1, mut h2) = (Holds::NONE, Holds::NONE);
    assert_eq!(
        m.lock(id(1), &mut h1, true, None, None),
        Ok(Acquired::Locked)
    );
    assert!(m.mark_owner_dead(id(1)));
    assert_eq!(
        m.lock(id(2), &mut h2, true, None, None),
        Ok(Acquired::OwnerDied)
    );
    assert_eq!(
        m.lock(id(2), &mut h2, true, None, None),
        Ok(Acquired::Recursive)
    );
    // SAFETY: owner 2 holds it twice.
    let last = unsafe { m.unlock(id(2), &mut h2) };
    assert!(!last, "an inner unlock only counts down");
    assert_eq!(m.word.load(Relaxed), 2);
    // SAFETY: the last hold, released without repair.
    assert!(unsafe { m.unlock(id(2), &mut h2) });
    assert_eq!(h2, Holds::NONE);
    assert_eq!(m.word.load(Relaxed), NOT_RECOVERABLE);
    assert!(!m.is_locked());
    for who in [1, 2, 3] {
        for recursive in [false, true] {
            let mut h = Holds::NONE;
            assert_eq!(
                m.lock(id(who), &mut h, recursive, None, None),
                Err(Refused::NotRecoverable)
            );
            assert_eq!(
                m.try_lock(id(who), &mut h, recursive),
                Err(Refused::NotRecoverable)
            );
            let mut b = Budget::new(2);
            assert_eq!(
                m.lock(id(who), &mut h, recursive, Some(&mut b), None),
                Err(Refused::NotRecoverable)
            );
            assert_eq!(b.asked, 0);
            assert_eq!(h, Holds::NONE);
        }
    }
    assert!(!m.mark_owner_dead(id(2)), "nobody owns it any more");
    assert_eq!(m.word.load(Relaxed), NOT_RECOVERABLE);
}

#[test]
fn sleepers_are_woken_with_not_recoverable() {
    const N: u32 = 2;
    let m = RawMutex::<Spy>::new();
    let (mut h1, mut h9) = (Holds::NONE, Holds::NONE);
    assert_eq!(
        m.lock(id(1), &mut h1, false, None, None),
        Ok(Acquired::Locked)
    );
    assert!(m.mark_owner_dead(id(1)));
    assert_eq!(
        m.lock(id(9), &mut h9, false, None, None),
        Ok(Acquired::OwnerDied)
    );
    thread::scope(|s| {
        let waiters: Vec<_> = (2..2 + N)
            .map(|t| {
                let m = &m;
                s.spawn(move || {
                    let mut h = Holds::NONE;
                    let r = m.lock(id(t), &mut h, false, None, None);
                    (r, h)
                })
            })
            .collect();
        until_asleep(&m, N);
        // SAFETY: owner 9 holds it; released without mark_consistent.
        assert!(unsafe { m.unlock(id(9), &mut h9) });
        for w in waiters {
            assert_eq!(
                w.join().unwrap(),
                (Err(Refused::NotRecoverable), Holds::NONE)
            );
        }
    });
    assert_eq!(m.word.load(Relaxed), NOT_RECOVERABLE);
}

#[test]
fn word_naming_the_caller_without_holds_is_taken_over() {
    // A peer (or a dead thread whose TID the caller now has) wrote the
    // caller's TID into the word; the caller's own records say it holds
    // nothing. Every kind of acquire takes it over as a dead owner's,
    // keeping WAITERS, and the usual repair or poisoning follows.
    for waiters in [0, WAITERS] {
        for how in 0..3 {
            let m = Mutex::new();
            // The peer's values: our TID, a leftover count, consistent.
            m.word.store(6 | waiters, Relaxed);
            m.extra.store(41, Relaxed);
            let mut h6 = Holds::NONE;
            assert!(m.is_held_by(id(6)), "the word does name us");
            let mut b = Budget::new(0);
            let r = match how {
                0 => m.try_lock(id(6), &mut h6, false),
                1 => m.lock(id(6), &mut h6, true, None, None),
                _ => m.lock(id(6), &mut h6, false, Some(&mut b), None),
            };
            assert_eq!(r, Ok(Acquired::OwnerDied), "how {how}");
            assert_eq!(b.asked, 0, "nothing to wait for");
            assert_eq!(h6.get(), 1, "one hold: ours");
            assert_eq!(m.word.load(Relaxed), 6 | waiters, "ours, WAITERS kept");
            assert_eq!(m.holds(), 1, "the forged count is reset");
            // Held now: others are refused; our relock is by our count.
            let mut h7 = Holds::NONE;
            assert_eq!(m.try_lock(id(7), &mut h7, true), Err(Refused::WouldBlock));
            let relock = m.try_lock(id(6), &mut h6, how == 1);
            if how == 1 {
                assert_eq!(relock, Ok(Acquired::Recursive));
                // SAFETY: owner 6 holds it twice.
                assert!(!unsafe { m.unlock(id(6), &mut h6) });
            } else {
                assert_eq!(relock, Err(Refused::Deadlock));
            }
            if waiters == 0 {
                // SAFETY: owner 6 holds it.
                unsafe { m.mark_consistent() };
                // SAFETY: owner 6 holds it once.
                assert!(unsafe { m.unlock(id(6), &mut h6) });
                assert_eq!(m.word.load(Relaxed), 0);
                assert_eq!(m.try_lock(id(7), &mut h7, false), Ok(Acquired::Locked));
            } else {
                // Released without repair: broken for good.
                // SAFETY: owner 6 holds it once.
                assert!(unsafe { m.unlock(id(6), &mut h6) });
                assert_eq!(m.word.load(Relaxed), NOT_RECOVERABLE);
                assert_eq!(
                    m.try_lock(id(7), &mut h7, false),
                    Err(Refused::NotRecoverable)
                );
            }
            assert_eq!(h6, Holds::NONE);
        }
    }
}

#[test]
fn scribbled_extra_does_not_move_the_release() {
    // Whatever a peer writes into the observers' copy of the count, the
    // holder releases after exactly as many unlocks as it took locks.
    for scribble in [0, 1, 2, 5, u32::MAX - 1, u32::MAX] {
        for holds in [1, 2, 3] {
            let m = Mutex::new();
            let mut h4 = Holds::NONE;
            for _ in 0..holds {
                assert!(m.lock(id(4), &mut h4, true, None, None).is_ok());
                m.extra.store(scribble, Relaxed);
            }
            for left in (0..holds).rev() {
                m.extra.store(scribble, Relaxed);
                // SAFETY: owner 4 holds it `left + 1` times.
                let last = unsafe { m.unlock(id(4), &mut h4) };
                assert_eq!(last, left == 0, "{scribble:#x}, {holds} holds");
                assert_eq!(h4.get(), left);
                let want = if left == 0 { 0 } else { 4 };
                assert_eq!(m.word.load(Relaxed), want, "{scribble:#x}, {holds} holds");
            }
            // No unlock is left that could release somebody else's hold.
            let mut h5 = Holds::NONE;
            assert_eq!(m.try_lock(id(5), &mut h5, true), Ok(Acquired::Locked));
            // SAFETY: 4 holds nothing: a no-op.
            assert!(!unsafe { m.unlock(id(4), &mut h4) });
            assert_eq!(m.word.load(Relaxed), 5);
        }
    }
}

#[test]
fn unlock_without_holds_leaves_the_word_alone() {
    let m = RawMutex::<Spy>::new();
    let mut nobody = Holds::NONE;
    // Free, held by another, held by the caller's own TID (forged or
    // left by a dead thread), dead, broken: an unlock by a thread whose
    // records show no hold changes nothing and wakes nobody.
    for word in [
        0,
        1,
        1 | WAITERS,
        3,
        3 | WAITERS,
        OWNER_DIED,
        NOT_RECOVERABLE,
    ] {
        for state in [0, 1] {
            m.word.store(word, Relaxed);
            m.extra.store(7, Relaxed);
            m.state.store(state, Relaxed);
            // SAFETY: not a hold: `nobody` is zero, so this does nothing.
            assert!(!unsafe { m.unlock(id(3), &mut nobody) });
            assert_eq!(nobody, Holds::NONE);
            assert_eq!(m.word.load(Relaxed), word);
            assert_eq!(m.extra.load(Relaxed), 7);
            assert_eq!(m.state.load(Relaxed), state);
            assert_eq!(m.word.wakes.load(Relaxed), 0, "woke somebody");
        }
    }
    // A real holder's lock survives a stray unlock by a thread without
    // holds, even one with the holder's id (a forked copy, a reused TID).
    m.word.store(0, Relaxed);
    m.extra.store(0, Relaxed);
    m.state.store(0, Relaxed);
    let mut h3 = Holds::NONE;
    assert_eq!(
        m.lock(id(3), &mut h3, false, None, None),
        Ok(Acquired::Locked)
    );
    // SAFETY: as above, a no-op.
    assert!(!unsafe { m.unlock(id(3), &mut nobody) });
    assert_eq!(m.word.load(Relaxed), 3);
    // SAFETY: owner 3 holds it.
    assert!(unsafe { m.unlock(id(3), &mut h3) });
    assert_eq!(m.word.load(Relaxed), 0);
}

/// A liveness probe backed by a table of dead owners, counting its probes.
struct Table<'a> {
    dead: &'a [AtomicBool],
    probes: u32,
    seen: Vec<u32>,
}

impl Liveness for Table<'_> {
    fn probe_interval(&mut self, _word: u32) -> Option<Duration> {
        Some(Duration::from_millis(1))
    }
    fn owner_is_dead(&mut self, word: u32) -> bool {
        self.probes += 1;
        self.seen.push(word);
        let owner = (word & TID_MASK) as usize;
        // Acquire: pairs with the Release store of the dying owner, so its
        // writes happen before the recovery (the kernel and the fcntl lock
        // release give the same edge in production).
        self.dead.get(owner).is_some_and(|d| d.load(Acquire))
    }
}

#[test]
fn liveness_probe_takes_over_from_a_dead_owner() {
    let dead: [AtomicBool; 4] = Default::default();
    let g = Guarded {
        m: RawMutex::<Spy>::new(),
        data: UnsafeCell::new(0),
    };
    let g = &g;
    thread::scope(|s| {
        // Owner 1 takes the lock twice, writes, and ends without unlocking;
        // its death becomes known (Release) only after that.
        s.spawn(|| {
            let mut h1 = Holds::NONE;
            assert_eq!(
                g.m.lock(id(1), &mut h1, true, None, None),
                Ok(Acquired::Locked)
            );
            assert_eq!(
                g.m.lock(id(1), &mut h1, true, None, None),
                Ok(Acquired::Recursive)
            );
            // SAFETY: owner 1 holds the lock that guards `data`.
            unsafe { *g.data.get() = 41 };
        })
        .join()
        .unwrap();
        let waiter = s.spawn(|| {
            let mut probe = Table {
                dead: &dead,
                probes: 0,
                seen: Vec::new(),
            };
            let mut h2 = Holds::NONE;
            let r = g.m.lock(id(2), &mut h2, true, None, Some(&mut probe));
            assert_eq!(r, Ok(Acquired::OwnerDied));
            assert_eq!(h2.get(), 1);
            assert_eq!(g.m.holds(), 1, "count reset");
            // SAFETY: owner 2 holds the lock that guards `data`.
            let v = unsafe { *g.data.get() };
            // SAFETY: owner 2 holds it.
            unsafe { g.m.mark_consistent() };
            // SAFETY: owner 2 holds it once.
            assert!(unsafe { g.m.unlock(id(2), &mut h2) });
            (v, probe.probes, probe.seen)
        });
        // Let it probe a live owner a few times before the death is known.
        until(|| g.m.word.waits.load(Relaxed) >= 3);
        dead[1].store(true, Release);
        let (v, probes, seen) = waiter.join().unwrap();
        assert_eq!(v, 41, "the dead owner's write is visible");
        assert!(probes >= 1);
        assert!(seen.iter().all(|&w| w == 1 | WAITERS), "{seen:x?}");
    });
    assert_eq!(g.m.word.load(Relaxed), 0);
}

#[test]
fn liveness_probe_of_a_live_owner_waits_until_the_deadline() {
    let dead: [AtomicBool; 4] = Default::default();
    let m = Mutex::new();
    let mut h1 = Holds::NONE;
    assert_eq!(
        m.lock(id(1), &mut h1, false, None, None),
        Ok(Acquired::Locked)
    );
    thread::scope(|s| {
        s.spawn(|| {
            let mut probe = Table {
                dead: &dead,
                probes: 0,
                seen: Vec::new(),
            };
            let mut b = Budget::new(3);
            let mut h2 = Holds::NONE;
            let r = m.lock(id(2), &mut h2, false, Some(&mut b), Some(&mut probe));
            assert_eq!(r, Err(Refused::WouldBlock));
            assert_eq!(h2, Holds::NONE);
            assert_eq!(b.asked, 4);
            // One probe after each of the 3 sleeps: the word never changed.
            assert_eq!(probe.probes, 3);
        });
    });
    assert_eq!(m.word.load(Relaxed), 1 | WAITERS, "still owner 1's");
    // SAFETY: owner 1 holds it.
    assert!(unsafe { m.unlock(id(1), &mut h1) });
}
