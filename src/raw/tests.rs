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

/// The production word, counting the `wait` calls it passes on (and, under
/// Miri, issuing its own wakes: see the module docs).
#[derive(Debug)]
struct Spy {
    w: AtomicU32,
    waits: AtomicU32,
}

impl AtomicWord for Spy {
    fn new(v: u32) -> Self {
        Spy {
            w: AtomicU32::new(v),
            waits: AtomicU32::new(0),
        }
    }
    fn load(&self, o: core::sync::atomic::Ordering) -> u32 {
        self.w.load(o)
    }
    fn store(&self, v: u32, o: core::sync::atomic::Ordering) {
        self.w.store(v, o);
    }
    fn swap(&self, v: u32, o: core::sync::atomic::Ordering) -> u32 {
        self.w.swap(v, o)
    }
    fn compare_exchange(
        &self,
        c: u32,
        n: u32,
        s: core::sync::atomic::Ordering,
        f: core::sync::atomic::Ordering,
    ) -> Result<u32, u32> {
        self.w.compare_exchange(c, n, s, f)
    }
}

impl FutexWord for Spy {
    fn wait(&self, expected: u32, timeout: Option<Duration>) {
        // Relaxed: a statistic read by the test thread, which only uses it
        // to decide when to go on; no data is published through it.
        self.waits.fetch_add(1, Relaxed);
        FutexWord::wait(&self.w, expected, timeout);
    }
    fn wake_one(&self) {
        self.w.wake_one();
    }
    fn wake_all(&self) {
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
struct Guarded<W> {
    m: RawMutex<W>,
    data: UnsafeCell<u64>,
}

// SAFETY: `data` is only accessed by a thread that holds `m`.
unsafe impl<W: Sync> Sync for Guarded<W> {}

#[test]
fn lock_unlock_uncontended() {
    let m = Mutex::new();
    assert!(!m.is_locked());
    assert_eq!(m.lock(id(7), false, None, None), Ok(Acquired::Locked));
    assert_eq!(m.word.load(Relaxed), 7, "no WAITERS bit without a sleeper");
    assert!(m.is_locked());
    assert!(m.is_held_by(id(7)));
    assert!(!m.is_held_by(id(8)));
    // SAFETY: owner 7 holds it.
    assert!(unsafe { m.unlock(id(7)) });
    assert_eq!(m.word.load(Relaxed), 0);
    assert!(!m.is_locked());
    assert_eq!(m.try_lock(id(8), false), Ok(Acquired::Locked));
    // SAFETY: owner 8 holds it.
    assert!(unsafe { m.unlock(id(8)) });
}

#[test]
fn try_lock_would_block_from_another_thread() {
    let m = Mutex::new();
    assert_eq!(m.try_lock(id(1), false), Ok(Acquired::Locked));
    thread::scope(|s| {
        s.spawn(|| {
            assert_eq!(m.try_lock(id(2), false), Err(Refused::WouldBlock));
            assert_eq!(m.try_lock(id(2), true), Err(Refused::WouldBlock));
        });
    });
    assert_eq!(m.word.load(Relaxed), 1, "try_lock leaves the word alone");
    // SAFETY: owner 1 holds it.
    unsafe { m.unlock(id(1)) };
    thread::scope(|s| {
        s.spawn(|| {
            assert_eq!(m.try_lock(id(2), false), Ok(Acquired::Locked));
            // SAFETY: owner 2 holds it.
            unsafe { m.unlock(id(2)) };
        });
    });
}

#[test]
fn recursive_lock_counts_holds() {
    let m = Mutex::new();
    assert_eq!(m.lock(id(3), true, None, None), Ok(Acquired::Locked));
    assert_eq!(m.lock(id(3), true, None, None), Ok(Acquired::Recursive));
    assert_eq!(m.try_lock(id(3), true), Ok(Acquired::Recursive));
    let mut b = Budget::new(0);
    assert_eq!(
        m.lock(id(3), true, Some(&mut b), None),
        Ok(Acquired::Recursive)
    );
    assert_eq!(
        b.asked, 0,
        "a recursive acquire never consults the deadline"
    );
    assert_eq!(m.holds(), 4);
    assert_eq!(m.try_lock(id(4), true), Err(Refused::WouldBlock));
    for left in (1..4).rev() {
        // SAFETY: owner 3 holds it (4 holds).
        assert!(!unsafe { m.unlock(id(3)) }, "still held");
        assert_eq!(m.holds(), left);
        assert_eq!(m.word.load(Relaxed), 3);
    }
    // SAFETY: the last hold.
    assert!(unsafe { m.unlock(id(3)) });
    assert_eq!(m.word.load(Relaxed), 0);
    assert_eq!(m.try_lock(id(4), true), Ok(Acquired::Locked));
    assert_eq!(m.holds(), 1, "a new owner starts at one hold");
}

#[test]
fn relock_of_non_recursive_lock_is_deadlock() {
    let m = Mutex::new();
    assert_eq!(m.lock(id(5), false, None, None), Ok(Acquired::Locked));
    assert_eq!(m.lock(id(5), false, None, None), Err(Refused::Deadlock));
    assert_eq!(m.try_lock(id(5), false), Err(Refused::Deadlock));
    let mut b = Budget::new(3);
    assert_eq!(
        m.lock(id(5), false, Some(&mut b), None),
        Err(Refused::Deadlock)
    );
    assert_eq!(m.word.load(Relaxed), 5, "a refused relock changes nothing");
    assert_eq!(m.holds(), 1);
    // SAFETY: owner 5 holds it once.
    assert!(unsafe { m.unlock(id(5)) });
    assert_eq!(m.word.load(Relaxed), 0);
}

#[test]
fn recursion_count_overflow_is_deadlock() {
    let m = Mutex::new();
    assert_eq!(m.lock(id(5), true, None, None), Ok(Acquired::Locked));
    // Owner-only field: we are the owner.
    m.extra.store(u32::MAX - 1, Relaxed);
    assert_eq!(m.lock(id(5), true, None, None), Err(Refused::Deadlock));
    assert_eq!(m.try_lock(id(5), true), Err(Refused::Deadlock));
    assert_eq!(m.holds(), u32::MAX);
}

#[test]
fn timed_lock_gives_up_after_its_deadline() {
    let m = RawMutex::<Spy>::new();
    assert_eq!(m.lock(id(1), false, None, None), Ok(Acquired::Locked));
    // Expired at once: no sleep at all.
    let mut b = Budget::new(0);
    assert_eq!(
        m.lock(id(2), false, Some(&mut b), None),
        Err(Refused::WouldBlock)
    );
    assert_eq!(b.asked, 1);
    assert_eq!(m.word.waits.load(Relaxed), 0);
    // It announced itself before giving up: the holder's unlock will wake.
    assert_eq!(m.word.load(Relaxed), 1 | WAITERS);
    // Three 1 ms sleeps, then expired.
    let mut b = Budget::new(3);
    thread::scope(|s| {
        s.spawn(|| {
            assert_eq!(
                m.lock(id(2), true, Some(&mut b), None),
                Err(Refused::WouldBlock)
            );
        });
    });
    assert_eq!(b.asked, 4, "asked before each of 3 sleeps and once more");
    assert!(m.word.waits.load(Relaxed) >= 3, "slept at least 3 times");
    assert_eq!(m.word.load(Relaxed), 1 | WAITERS, "the holder is untouched");
    // SAFETY: owner 1 holds it.
    assert!(unsafe { m.unlock(id(1)) });
    assert_eq!(m.word.load(Relaxed), 0);
    let mut b = Budget::new(0);
    assert_eq!(
        m.lock(id(2), false, Some(&mut b), None),
        Ok(Acquired::Locked)
    );
    assert_eq!(b.asked, 0, "a free lock is taken without asking the clock");
}

#[test]
fn timed_lock_succeeds_when_released_in_time() {
    let m = RawMutex::<Spy>::new();
    assert_eq!(m.lock(id(1), false, None, None), Ok(Acquired::Locked));
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
            let r = m.lock(id(2), false, Some(&mut Never), None);
            // SAFETY: owner 2 holds it if Ok.
            let last = r.is_ok() && unsafe { m.unlock(id(2)) };
            (r, last)
        });
        until_asleep(&m, 1);
        // SAFETY: owner 1 holds it.
        unsafe { m.unlock(id(1)) };
        assert_eq!(t.join().unwrap(), (Ok(Acquired::Locked), true));
    });
    assert_eq!(m.word.load(Relaxed), 0);
}

#[test]
fn sleepers_are_woken_and_take_turns() {
    const N: u32 = 3;
    let m = RawMutex::<Spy>::new();
    assert_eq!(m.lock(id(9), false, None, None), Ok(Acquired::Locked));
    let order = std::sync::Mutex::new(Vec::new());
    thread::scope(|s| {
        for t in 1..=N {
            let (m, order) = (&m, &order);
            s.spawn(move || {
                assert_eq!(m.lock(id(t), false, None, None), Ok(Acquired::Locked));
                order.lock().unwrap().push(t);
                // SAFETY: owner t holds it.
                assert!(unsafe { m.unlock(id(t)) });
            });
        }
        until_asleep(&m, N);
        assert!(order.lock().unwrap().is_empty(), "nobody got in while held");
        // SAFETY: owner 9 holds it.
        assert!(unsafe { m.unlock(id(9)) });
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
                    for _ in 0..per {
                        assert_eq!(g.m.lock(id(t), recursive, None, None), Ok(Acquired::Locked));
                        // SAFETY: `t` holds the lock, which guards `data`.
                        unsafe { *g.data.get() += 1 };
                        // SAFETY: owner t holds it once.
                        assert!(unsafe { g.m.unlock(id(t)) });
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
    assert_eq!(m.lock(id(1), true, None, None), Ok(Acquired::Locked));
    assert_eq!(m.lock(id(1), true, None, None), Ok(Acquired::Recursive));
    assert_eq!(m.lock(id(1), true, None, None), Ok(Acquired::Recursive));
    assert!(!m.mark_owner_dead(id(2)), "2 does not own it");
    assert_eq!(m.word.load(Relaxed), 1);
    // Owner 1 dies holding it three times; the kernel marks the word.
    assert!(m.mark_owner_dead(id(1)));
    assert_eq!(m.word.load(Relaxed), OWNER_DIED);
    assert!(!m.is_locked(), "free, but marked");
    assert!(!m.mark_owner_dead(id(1)), "a second walk finds nothing");
    assert_eq!(m.lock(id(2), true, None, None), Ok(Acquired::OwnerDied));
    assert_eq!(m.word.load(Relaxed), 2, "OWNER_DIED never stays while held");
    assert_eq!(m.holds(), 1, "the dead owner's holds are gone");
    assert_eq!(m.try_lock(id(3), true), Err(Refused::WouldBlock));
    assert_eq!(m.lock(id(2), true, None, None), Ok(Acquired::Recursive));
    // SAFETY: owner 2 holds it.
    unsafe { m.mark_consistent() };
    // SAFETY: owner 2 holds it twice.
    assert!(!unsafe { m.unlock(id(2)) });
    // SAFETY: the last hold.
    assert!(unsafe { m.unlock(id(2)) });
    assert_eq!(m.word.load(Relaxed), 0);
    // Back to normal: nobody sees the death again.
    assert_eq!(m.try_lock(id(3), false), Ok(Acquired::Locked));
    // SAFETY: owner 3 holds it.
    assert!(unsafe { m.unlock(id(3)) });
    assert_eq!(m.lock(id(1), true, None, None), Ok(Acquired::Locked));
}

#[test]
fn owner_death_seen_by_try_lock_and_timed_lock() {
    let m = Mutex::new();
    assert_eq!(m.lock(id(1), false, None, None), Ok(Acquired::Locked));
    assert!(m.mark_owner_dead(id(1)));
    assert_eq!(m.try_lock(id(2), false), Ok(Acquired::OwnerDied));
    assert!(m.mark_owner_dead(id(2)), "the new owner dies too");
    let mut b = Budget::new(0);
    assert_eq!(
        m.lock(id(3), false, Some(&mut b), None),
        Ok(Acquired::OwnerDied)
    );
    assert_eq!(b.asked, 0);
    // SAFETY: owner 3 holds it.
    unsafe { m.mark_consistent() };
    // SAFETY: owner 3 holds it.
    assert!(unsafe { m.unlock(id(3)) });
    assert_eq!(m.word.load(Relaxed), 0);
}

#[test]
fn sleepers_recover_a_dead_owner_exactly_once() {
    const N: u32 = 3;
    let m = RawMutex::<Spy>::new();
    assert_eq!(m.lock(id(9), true, None, None), Ok(Acquired::Locked));
    assert_eq!(m.lock(id(9), true, None, None), Ok(Acquired::Recursive));
    let died = AtomicU32::new(0);
    thread::scope(|s| {
        for t in 1..=N {
            let (m, died) = (&m, &died);
            s.spawn(move || {
                let r = m.lock(id(t), true, None, None);
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
                assert!(unsafe { m.unlock(id(t)) });
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
    assert_eq!(m.lock(id(1), true, None, None), Ok(Acquired::Locked));
    assert!(m.mark_owner_dead(id(1)));
    assert_eq!(m.lock(id(2), true, None, None), Ok(Acquired::OwnerDied));
    assert_eq!(m.lock(id(2), true, None, None), Ok(Acquired::Recursive));
    // SAFETY: owner 2 holds it twice.
    let last = unsafe { m.unlock(id(2)) };
    assert!(!last, "an inner unlock only counts down");
    assert_eq!(m.word.load(Relaxed), 2);
    // SAFETY: the last hold, released without repair.
    assert!(unsafe { m.unlock(id(2)) });
    assert_eq!(m.word.load(Relaxed), NOT_RECOVERABLE);
    assert!(!m.is_locked());
    for who in [1, 2, 3] {
        for recursive in [false, true] {
            assert_eq!(
                m.lock(id(who), recursive, None, None),
                Err(Refused::NotRecoverable)
            );
            assert_eq!(m.try_lock(id(who), recursive), Err(Refused::NotRecoverable));
            let mut b = Budget::new(2);
            assert_eq!(
                m.lock(id(who), recursive, Some(&mut b), None),
                Err(Refused::NotRecoverable)
            );
            assert_eq!(b.asked, 0);
        }
    }
    assert!(!m.mark_owner_dead(id(2)), "nobody owns it any more");
    assert_eq!(m.word.load(Relaxed), NOT_RECOVERABLE);
}

#[test]
fn sleepers_are_woken_with_not_recoverable() {
    const N: u32 = 2;
    let m = RawMutex::<Spy>::new();
    assert_eq!(m.lock(id(1), false, None, None), Ok(Acquired::Locked));
    assert!(m.mark_owner_dead(id(1)));
    assert_eq!(m.lock(id(9), false, None, None), Ok(Acquired::OwnerDied));
    thread::scope(|s| {
        let waiters: Vec<_> = (2..2 + N)
            .map(|t| {
                let m = &m;
                s.spawn(move || m.lock(id(t), false, None, None))
            })
            .collect();
        until_asleep(&m, N);
        // SAFETY: owner 9 holds it; released without mark_consistent.
        assert!(unsafe { m.unlock(id(9)) });
        for w in waiters {
            assert_eq!(w.join().unwrap(), Err(Refused::NotRecoverable));
        }
    });
    assert_eq!(m.word.load(Relaxed), NOT_RECOVERABLE);
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
            assert_eq!(g.m.lock(id(1), true, None, None), Ok(Acquired::Locked));
            assert_eq!(g.m.lock(id(1), true, None, None), Ok(Acquired::Recursive));
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
            let r = g.m.lock(id(2), true, None, Some(&mut probe));
            assert_eq!(r, Ok(Acquired::OwnerDied));
            assert_eq!(g.m.holds(), 1, "count reset");
            // SAFETY: owner 2 holds the lock that guards `data`.
            let v = unsafe { *g.data.get() };
            // SAFETY: owner 2 holds it.
            unsafe { g.m.mark_consistent() };
            // SAFETY: owner 2 holds it once.
            assert!(unsafe { g.m.unlock(id(2)) });
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
    assert_eq!(m.lock(id(1), false, None, None), Ok(Acquired::Locked));
    thread::scope(|s| {
        s.spawn(|| {
            let mut probe = Table {
                dead: &dead,
                probes: 0,
                seen: Vec::new(),
            };
            let mut b = Budget::new(3);
            let r = m.lock(id(2), false, Some(&mut b), Some(&mut probe));
            assert_eq!(r, Err(Refused::WouldBlock));
            assert_eq!(b.asked, 4);
            // One probe after each of the 3 sleeps: the word never changed.
            assert_eq!(probe.probes, 3);
        });
    });
    assert_eq!(m.word.load(Relaxed), 1 | WAITERS, "still owner 1's");
    // SAFETY: owner 1 holds it.
    assert!(unsafe { m.unlock(id(1)) });
}
