//! Waiter wake-up: no lost wake-ups.
//!
//! Sleepers really sleep here (untimed waits block on the stand-in's
//! condition variable), so a wake-up that is lost leaves a thread blocked
//! forever, which loom reports as a deadlock.
//!
//! Seeded bugs checked against this file (`--features <bug> --test wakeup`),
//! with loom's verdict:
//!
//! | feature | loom's verdict |
//! |---|---|
//! | `bug-lost-wake` | every test: `deadlock; threads = [(Id(0), Blocked(..)), (Id(1), Terminated), (Id(2), Blocked(..))]` (`one_sleeper`: both `Blocked`) |
//! | `bug-weak-release`, `bug-weak-acquire` | every test: `Causality violation: Concurrent read and write accesses.` |
//! | `bug-no-waiters-bit` | every test: `Model exceeded maximum number of branches` |
//! | `bug-acquire-drops-waiters` | `two_sleepers`, `two_sleepers_recursive`, `sleeper_and_barger`: `deadlock`; `one_sleeper` passes |
//! | `bug-no-owner-died-bit`, `bug-keeps-owner-died`, `bug-liveness-relaxed` | pass (no death) |
//!
//! Runtime (`LOOM_MAX_PREEMPTIONS=3`, `--release`): < 0.5 s per test
//! (at most ≈ 3 000 executions, `sleeper_and_barger`).
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use shmsync::raw::{Acquired, Holds, WAITERS};
use shmsync_loom_tests::{id, model, Shared, TimeoutNow};

/// The main thread holds the lock while `n - 1` others try to take it (and
/// go to sleep, in most interleavings); then it releases it. Every sleeper
/// must get the lock in turn, and the data shows every increment.
fn sleepers(n: u32, recursive: bool) {
    let name = format!("sleepers(threads={n}, recursive={recursive})");
    model(&name, move || {
        let s = Arc::new(Shared::<TimeoutNow>::default());
        let mut h1 = Holds::NONE;
        assert_eq!(
            s.m.lock(id(1), &mut h1, recursive, None, None),
            Ok(Acquired::Locked)
        );
        let handles: Vec<_> = (2..=n)
            .map(|me| {
                let s = s.clone();
                thread::spawn(move || {
                    let mut h = Holds::NONE;
                    assert_eq!(
                        s.m.lock(id(me), &mut h, recursive, None, None),
                        Ok(Acquired::Locked)
                    );
                    // SAFETY: `me` holds the lock.
                    unsafe { s.write(s.read() + 1) };
                    // SAFETY: `me` holds the lock.
                    assert!(unsafe { s.unlock(id(me), &mut h) });
                })
            })
            .collect();
        // SAFETY: 1 holds the lock.
        unsafe { s.write(100) };
        // SAFETY: 1 holds the lock.
        assert!(unsafe { s.unlock(id(1), &mut h1) });
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(s.word(), 0, "the last one out clears WAITERS");
        assert_eq!(s.m.try_lock(id(1), &mut h1, false), Ok(Acquired::Locked));
        // SAFETY: 1 holds the lock.
        assert_eq!(unsafe { s.read() }, 100 + n - 1);
    });
}

#[test]
fn one_sleeper() {
    sleepers(2, false);
}

#[test]
fn two_sleepers() {
    sleepers(3, false);
}

#[test]
fn two_sleepers_recursive() {
    sleepers(3, true);
}

/// A barging thread takes the lock between the release and the woken
/// sleeper's retry: the sleeper must sleep again and still be woken (it
/// re-announces itself, and the barger's release sees `WAITERS`).
#[test]
fn sleeper_and_barger() {
    model("sleeper_and_barger", || {
        let s = Arc::new(Shared::<TimeoutNow>::default());
        let mut h1 = Holds::NONE;
        assert_eq!(
            s.m.lock(id(1), &mut h1, false, None, None),
            Ok(Acquired::Locked)
        );
        let s2 = s.clone();
        let sleeper = thread::spawn(move || {
            let mut h2 = Holds::NONE;
            assert_eq!(
                s2.m.lock(id(2), &mut h2, false, None, None),
                Ok(Acquired::Locked)
            );
            // SAFETY: 2 holds the lock.
            unsafe { s2.write(s2.read() + 1) };
            // SAFETY: 2 holds the lock.
            assert!(unsafe { s2.unlock(id(2), &mut h2) });
        });
        let s3 = s.clone();
        let barger = thread::spawn(move || {
            let mut h3 = Holds::NONE;
            // Comes and goes twice: once may be before the sleeper sleeps.
            for _ in 0..2 {
                assert_eq!(
                    s3.m.lock(id(3), &mut h3, false, None, None),
                    Ok(Acquired::Locked)
                );
                // SAFETY: 3 holds the lock.
                unsafe { s3.write(s3.read() + 10) };
                // SAFETY: 3 holds the lock.
                assert!(unsafe { s3.unlock(id(3), &mut h3) });
            }
        });
        // SAFETY: 1 holds the lock.
        assert!(unsafe { s.unlock(id(1), &mut h1) });
        sleeper.join().unwrap();
        barger.join().unwrap();
        assert_eq!(s.word() & WAITERS, 0);
        assert_eq!(s.m.try_lock(id(1), &mut h1, false), Ok(Acquired::Locked));
        // SAFETY: 1 holds the lock.
        assert_eq!(unsafe { s.read() }, 21);
    });
}
