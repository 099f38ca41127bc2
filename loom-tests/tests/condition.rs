//! The condition variable (`shmsync::raw::RawCondvar`) with the production
//! lock: no lost wake-up (sequence + waiter count + notify), whatever the
//! interleaving of a waiter's check, its sleep and a notifier's change,
//! with the notify made inside or after the notifier's critical section;
//! and happens-before from the notifier's change to the returning waiter
//! (through the lock).
//!
//! The condition's timed sleeps end late here ([`TimeoutLate`]): the
//! production waiter sleeps in bounded slices, so with slices that end a
//! lost wake-up would only cost time; with every slice ending only on a
//! wake, a lost wake-up leaves the waiter blocked, which loom reports as
//! a deadlock. Owner ids are ≥ 10 (`bug-cond-no-register` rewrites any
//! CAS that adds one).
//!
//! Seeded bugs checked against this file (`--features <bug> --test
//! condition`), with loom's verdict:
//!
//! | feature | loom's verdict |
//! |---|---|
//! | `bug-cond-no-advance` | every test: `deadlock` (a woken waiter sees the same sequence and sleeps again) |
//! | `bug-cond-no-register` | every test: `deadlock` (notify sees no waiter: no advance, no wake) |
//! | `bug-lost-wake` | every test: `deadlock` |
//! | `bug-weak-release`, `bug-weak-acquire`, `bug-split-cas` | every test: `Causality violation: Concurrent read and write accesses.` (the lock no longer orders the protected data) |
//! | `bug-no-waiters-bit` | every test: `Model exceeded maximum number of branches` (the lock's sleepers spin) |
//! | `bug-acquire-drops-waiters` | `notify_all_two_waiters`: `deadlock` (two woken waiters contend for the lock and one is forgotten); the others pass |
//! | `bug-no-owner-died-bit`, `bug-keeps-owner-died`, `bug-liveness-relaxed` | pass (no owner dies here) |
//!
//! Runtime (`LOOM_MAX_PREEMPTIONS=3`, `--release`): < 2 s in all
//! (`notify_all_two_waiters`: ≈ 5 000 executions, `ping_pong` ≈ 2 100).
#![cfg(loom)]

use core::sync::atomic::Ordering::Relaxed;

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;
use shmsync::raw::{FutexWord, Holds, RawCondvar};
use shmsync_loom_tests::{id, model, LoomFutex, ModelMutex, TimeoutLate, Unseeded};

/// A lock, a condition, and data the lock protects.
struct Shared {
    m: ModelMutex,
    c: RawCondvar<LoomFutex<TimeoutLate>>,
    data: UnsafeCell<u32>,
}

// SAFETY: `data` is only accessed by the holder of `m`; loom checks it.
unsafe impl Sync for Shared {}

impl Shared {
    fn new() -> Arc<Shared> {
        Arc::new(Shared {
            m: ModelMutex::new(),
            c: RawCondvar::new(),
            data: UnsafeCell::new(0),
        })
    }

    fn lock(&self, me: u32) -> Holds {
        let mut h = Holds::NONE;
        self.m.lock(id(me), &mut h, false, None, None).unwrap();
        h
    }

    fn unlock(&self, me: u32, mut h: Holds) {
        // SAFETY: `me` holds it once (`lock`).
        unsafe { self.m.unlock(id(me), &mut h) };
    }

    /// Holding the lock.
    fn get(&self) -> u32 {
        // SAFETY: the caller holds `m`.
        self.data.with(|p| unsafe { *p })
    }

    /// Holding the lock.
    fn set(&self, v: u32) {
        // SAFETY: the caller holds `m`.
        self.data.with_mut(|p| unsafe { *p = v });
    }

    /// A waiter: holding the lock, waits until `done(data)`, then applies
    /// `then` to the data; releases the lock.
    fn wait_until(&self, me: u32, done: impl Fn(u32) -> bool, then: impl Fn(u32) -> u32) {
        let mut h = self.lock(me);
        while !done(self.get()) {
            let s = self.c.enter();
            self.unlock(me, h);
            assert!(self.c.sleep(s, None));
            self.c.leave();
            h = self.lock(me);
        }
        self.set(then(self.get()));
        self.unlock(me, h);
    }

    /// The waiter count, as the model sees it.
    fn waiters(&self) -> u32 {
        self.c.waiters().atomic().load_unseeded(Relaxed)
    }
}

/// One waiter; the notifier changes the data under the lock and notifies
/// after releasing it.
#[test]
fn notify_after_unlock() {
    model("notify_after_unlock", || {
        let s = Shared::new();
        let s2 = s.clone();
        let w = thread::spawn(move || s2.wait_until(11, |d| d == 1, |_| 2));
        let h = s.lock(10);
        s.set(1);
        s.unlock(10, h);
        s.c.notify(1);
        w.join().unwrap();
        let h = s.lock(10);
        assert_eq!(s.get(), 2);
        s.unlock(10, h);
        assert_eq!(s.waiters(), 0);
    });
}

/// One waiter; the notifier notifies while holding the lock.
#[test]
fn notify_under_the_lock() {
    model("notify_under_the_lock", || {
        let s = Shared::new();
        let s2 = s.clone();
        let w = thread::spawn(move || s2.wait_until(11, |d| d == 1, |_| 2));
        let h = s.lock(10);
        s.set(1);
        s.c.notify_all();
        s.unlock(10, h);
        w.join().unwrap();
    });
}

/// Two waiters, one `notify_all`.
#[test]
fn notify_all_two_waiters() {
    model("notify_all_two_waiters", || {
        let s = Shared::new();
        let ws: Vec<_> = (0..2)
            .map(|k| {
                let s = s.clone();
                thread::spawn(move || s.wait_until(11 + k, |d| d >= 1, |d| d + 1))
            })
            .collect();
        let h = s.lock(10);
        s.set(1);
        s.unlock(10, h);
        s.c.notify_all();
        for w in ws {
            w.join().unwrap();
        }
        let h = s.lock(10);
        assert_eq!(s.get(), 3);
        s.unlock(10, h);
    });
}

/// Ping-pong: each side waits for its turn and notifies the other, twice.
#[test]
fn ping_pong() {
    model("ping_pong", || {
        let s = Shared::new();
        let s2 = s.clone();
        let w = thread::spawn(move || {
            for r in 0..2 {
                s2.wait_until(11, |d| d == 2 * r + 1, |d| d + 1);
                s2.c.notify(1);
            }
        });
        for r in 0..2 {
            s.wait_until(10, |d| d == 2 * r, |d| d + 1);
            s.c.notify(1);
        }
        w.join().unwrap();
    });
}
