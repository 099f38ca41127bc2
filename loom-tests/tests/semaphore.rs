//! The semaphore (`shmsync::raw::RawSemaphore` and its holder
//! `Records`): no lost wake-up (one or two sleepers, single releases),
//! happens-before from a release to the acquire that takes its permit, a
//! dead holder's permit recovered exactly once by concurrent probers, and
//! reaching a waiter with the dead holder's writes visible.
//!
//! Sleeping models use [`TimeoutLate`]: the production waiter sleeps in
//! bounded slices, so with timeouts that fire a lost wake would only cost
//! time; with every slice ending late, a lost wake leaves the waiter
//! blocked, which loom reports as a deadlock. The recovery-to-a-waiter
//! model uses [`TimeoutNow`] instead: nobody releases there, the waiter's
//! slices must end for it to probe. Death is a step (the dying thread's
//! last act is [`DeadTable::die`]).
//!
//! Seeded bugs checked against this file (`--features <bug> --test
//! semaphore`), with loom's verdict:
//!
//! | feature | loom's verdict |
//! |---|---|
//! | `bug-lost-wake` | `one_sleeper`, `two_sleepers_single_releases`: `deadlock` |
//! | `bug-weak-release`, `bug-weak-acquire` | `one_sleeper`, `two_sleepers_single_releases`: `Causality violation: Concurrent read and write accesses.` |
//! | `bug-split-cas` | `recovery_exactly_once`: `recovered exactly once` (left: 2: two probers returned one record); `one_sleeper`: `deadlock`; `two_sleepers_single_releases`: a permit left over |
//! | `bug-no-waiters-bit`, `bug-acquire-drops-waiters` | `one_sleeper`, `two_sleepers_single_releases`: `Model exceeded maximum number of branches` (a waiter can never announce itself: it retries forever) |
//! | `bug-sem-taker-drops-waiters` | `two_sleepers_single_releases`: `deadlock` (a woken sleeper takes its permit without `WAITERS`; the other is never woken) |
//! | `bug-liveness-relaxed` | `dead_holder_permit_reaches_a_waiter`: `Causality violation` (the dead holder's write) |
//! | the lock's owner-died bugs | pass (bit 30 of a count word is a value bit, not reached) |
//!
//! Without `wake_one` by a woken sleeper that leaves permits behind (the
//! production code's baton pass), `two_sleepers_single_releases` fails
//! with `deadlock`: two releases before the first woken sleeper runs, the
//! second finding `WAITERS` clear. (That is how this model found it.)
//!
//! Runtime (`LOOM_MAX_PREEMPTIONS=3`, `--release`): ≈ 4 s in all, nearly
//! all of it `two_sleepers_single_releases` (≈ 28 000 executions).
#![cfg(loom)]

use core::sync::atomic::Ordering::{Acquire, Relaxed, Release};

use loom::cell::UnsafeCell;
use loom::sync::atomic::AtomicBool;
use loom::sync::Arc;
use loom::thread;
use shmsync::raw::semaphore::{RawSemaphore, Records, WAITERS};
use shmsync::raw::{AtomicWord, FutexWord, Liveness};
use shmsync_loom_tests::{
    id, model, DeadTable, LoomFutex, LoomU32, TimeoutLate, TimeoutNow, TimeoutPolicy, Unseeded,
};

/// A semaphore, its holder records and data published through it.
struct Shared<P: TimeoutPolicy> {
    s: RawSemaphore<LoomFutex<P>>,
    recs: Vec<LoomU32>,
    data: UnsafeCell<u32>,
    dead: DeadTable,
}

// SAFETY: `data` is written by the holder of a permit (or before a
// release) and read by the thread that takes that permit; loom checks it.
unsafe impl<P: TimeoutPolicy> Sync for Shared<P> {}

impl<P: TimeoutPolicy> Shared<P> {
    fn new(value: u32, records: usize) -> Arc<Self> {
        Arc::new(Shared {
            s: RawSemaphore::new(value),
            recs: (0..records).map(|_| LoomU32::new(0)).collect(),
            data: UnsafeCell::new(0),
            dead: DeadTable::default(),
        })
    }

    fn records(&self) -> Records<'_, LoomU32> {
        Records::new(&self.recs)
    }

    fn publish(&self, v: u32) {
        // SAFETY: only the publisher writes, before its release (or
        // death); the readers are ordered after it (loom checks).
        self.data.with_mut(|p| unsafe { *p = v });
    }

    fn read(&self) -> u32 {
        // SAFETY: after taking the permit published by the writer.
        self.data.with(|p| unsafe { *p })
    }

    /// The count word, as the model sees it (no seeded bug).
    fn word(&self) -> u32 {
        self.s.word().atomic().load_unseeded(Relaxed)
    }

    /// One recovery pass, judging with the death table.
    fn recover(&self, bound: u32) -> u32 {
        let mut probe = self.dead.probe();
        self.records()
            .recover(&self.s, bound, |tid| probe.owner_is_dead(tid))
    }
}

fn no_recovery() -> u32 {
    0
}

/// One sleeper, one release: the sleeper takes the permit and sees the
/// payload.
#[test]
fn one_sleeper() {
    model("one_sleeper", || {
        let sh = Shared::<TimeoutLate>::new(0, 0);
        let s2 = sh.clone();
        let w = thread::spawn(move || {
            assert_eq!(s2.s.acquire(None, &mut no_recovery), Ok(0));
            assert_eq!(s2.read(), 7);
        });
        sh.publish(7);
        sh.s.release(1, 10).unwrap();
        w.join().unwrap();
        assert_eq!(sh.s.value(), 0);
    });
}

/// Two sleepers, two single releases: both get a permit (the first woken
/// keeps `WAITERS` so that the second release wakes the other), both see
/// the payload.
#[test]
fn two_sleepers_single_releases() {
    model("two_sleepers_single_releases", || {
        let sh = Shared::<TimeoutLate>::new(0, 0);
        let ws: Vec<_> = (0..2)
            .map(|_| {
                let s = sh.clone();
                thread::spawn(move || {
                    assert_eq!(s.s.acquire(None, &mut no_recovery), Ok(0));
                    assert_eq!(s.read(), 9);
                })
            })
            .collect();
        sh.publish(9);
        sh.s.release(1, 10).unwrap();
        sh.s.release(1, 10).unwrap();
        for w in ws {
            w.join().unwrap();
        }
        assert_eq!(sh.s.value(), 0);
    });
}

/// A dead holder's record probed by two threads at once: its permit comes
/// back exactly once.
#[test]
fn recovery_exactly_once() {
    model("recovery_exactly_once", || {
        let sh = Shared::<TimeoutNow>::new(0, 2);
        // Holder 1 took the semaphore's one permit through a guard and
        // died.
        let i = sh.records().claim(1, |_| false).unwrap();
        sh.records().set(i, 1, 1);
        sh.dead.die(id(1));
        let ps: Vec<_> = (0..2)
            .map(|_| {
                let s = sh.clone();
                // A bound far above the permits: a double return shows.
                thread::spawn(move || s.recover(100))
            })
            .collect();
        let total: u32 = ps.into_iter().map(|p| p.join().unwrap()).sum();
        assert_eq!(total, 1, "recovered exactly once");
        assert_eq!(sh.word() & !WAITERS, 1);
        assert_eq!(sh.recs[i].load_unseeded(Relaxed), 0);
    });
}

/// A holder takes the one permit through a guard, writes, and dies; a
/// waiter that finds no permit probes, recovers it, takes it, learns that
/// it recovered one, and sees the dead holder's write.
#[test]
fn dead_holder_permit_reaches_a_waiter() {
    model("dead_holder_permit_reaches_a_waiter", || {
        let sh = Shared::<TimeoutNow>::new(1, 2);
        let holding = Arc::new(AtomicBool::new(false));
        let (s1, h1) = (sh.clone(), holding.clone());
        let holder = thread::spawn(move || {
            let i = s1.records().claim(1, |_| false).unwrap();
            assert!(s1.s.try_acquire());
            s1.records().set(i, 1, 1);
            // Release/Acquire: only so that the waiter starts after the
            // permit is taken; the write below is after it.
            h1.store(true, Release);
            s1.publish(5);
            s1.dead.die(id(1));
        });
        let (s2, h2) = (sh.clone(), holding.clone());
        let waiter = thread::spawn(move || {
            while !h2.load(Acquire) {
                thread::yield_now();
            }
            let r = s2.s.acquire(None, &mut || s2.recover(1));
            assert_eq!(r, Ok(1), "took the recovered permit");
            assert_eq!(s2.read(), 5, "the dead holder's write is visible");
        });
        holder.join().unwrap();
        waiter.join().unwrap();
        assert_eq!(sh.s.value(), 0);
        assert_eq!(
            sh.recs
                .iter()
                .map(|r| r.load_unseeded(Relaxed))
                .collect::<Vec<_>>(),
            [0, 0]
        );
    });
}
