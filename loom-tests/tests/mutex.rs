//! Mutual exclusion and happens-before of `Lock` (non-recursive) and
//! `RLock` (recursive), and `try_lock`, on the production state machine.
//!
//! Every access to the protected `loom::cell::UnsafeCell` is made by the
//! lock's holder, so loom proves both that no two holders overlap and that
//! each holder sees the previous holder's write (happens-before through the
//! word's Release/Acquire).
//!
//! Seeded bugs checked against this file (`--features <bug> --test mutex`),
//! with loom's verdict:
//!
//! | feature | loom's verdict |
//! |---|---|
//! | `bug-lost-wake` | every test: `deadlock; threads = [(Id(0), Blocked(..)), (Id(1), Blocked(..))]` (3–4 threads: the others `Terminated`) |
//! | `bug-weak-release` | every test: `Causality violation: Concurrent read and write accesses.` (`try_lock_against_lock`: `... Concurrent write accesses to UnsafeCell`) |
//! | `bug-weak-acquire` | every test: same as `bug-weak-release` |
//! | `bug-no-waiters-bit` | every test: `Model exceeded maximum number of branches` (a would-be sleeper's `wait(cur \| WAITERS)` never matches the word, so it spins) |
//! | `bug-acquire-drops-waiters` | `lock_three_threads`, `lock_four_threads`, `rlock_nested_three_threads`: `deadlock` (the second sleeper is forgotten); the 2-thread tests and `try_lock_against_lock` pass (one sleeper cannot be forgotten) |
//! | `bug-no-owner-died-bit`, `bug-keeps-owner-died`, `bug-liveness-relaxed` | pass (no owner dies here) |
//!
//! Runtime (loom 0.7.3, `LOOM_MAX_PREEMPTIONS=3`, `--release`, 2 cores):
//! `lock_four_threads` ≈ 103 000 executions in ≈ 7 s; the others < 1 s
//! each (`rlock_nested_three_threads`: ≈ 2 000 executions: a relock is
//! decided by the thread's own count and never touches the word).
//!
//! Each loom thread keeps its own `Holds` (a local), as each thread of each
//! process does in production.
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use shmsync::raw::{Acquired, Holds, Refused};
use shmsync_loom_tests::{id, model, Shared};

/// Each of `n` threads (main included) takes the lock once (twice, nested,
/// if `recursive`), increments the data, and releases it.
fn increments(n: u32, recursive: bool) {
    let name = format!("increments(threads={n}, recursive={recursive})");
    model(&name, move || {
        let s = Arc::new(Shared::<shmsync_loom_tests::TimeoutNow>::default());
        let work = move |s: &Shared, me: u32| {
            // This thread's own count of its holds.
            let mut h = Holds::NONE;
            assert_eq!(
                s.m.lock(id(me), &mut h, recursive, None, None),
                Ok(Acquired::Locked)
            );
            if recursive {
                assert_eq!(
                    s.m.lock(id(me), &mut h, recursive, None, None),
                    Ok(Acquired::Recursive)
                );
                assert_eq!(h.get(), 2);
            }
            // SAFETY: `me` holds the lock.
            unsafe { s.write(s.read() + 1) };
            if recursive {
                // SAFETY: `me` holds the lock twice.
                assert!(!unsafe { s.unlock(id(me), &mut h) });
            }
            // SAFETY: `me` holds the lock once.
            assert!(unsafe { s.unlock(id(me), &mut h) });
            assert_eq!(h, Holds::NONE);
        };
        let handles: Vec<_> = (2..=n)
            .map(|me| {
                let s = s.clone();
                thread::spawn(move || work(&s, me))
            })
            .collect();
        work(&s, 1);
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(
            s.m.lock(id(1), &mut Holds::default(), false, None, None),
            Ok(Acquired::Locked)
        );
        // SAFETY: 1 holds the lock.
        assert_eq!(unsafe { s.read() }, n);
        assert_eq!(s.word(), 1);
    });
}

#[test]
fn lock_two_threads() {
    increments(2, false);
}

#[test]
fn lock_three_threads() {
    increments(3, false);
}

#[test]
fn lock_four_threads() {
    increments(4, false);
}

#[test]
fn rlock_nested_two_threads() {
    increments(2, true);
}

#[test]
fn rlock_nested_three_threads() {
    increments(3, true);
}

/// `try_lock` against a holder: it either fails with `WouldBlock` and
/// touches nothing, or succeeds and sees the holder's complete write.
#[test]
fn try_lock_against_lock() {
    model("try_lock_against_lock", || {
        let s = Arc::new(Shared::<shmsync_loom_tests::TimeoutNow>::default());
        let s2 = s.clone();
        let t = thread::spawn(move || {
            let mut h2 = Holds::NONE;
            assert_eq!(
                s2.m.lock(id(2), &mut h2, true, None, None),
                Ok(Acquired::Locked)
            );
            // SAFETY: 2 holds the lock.
            unsafe { s2.write(7) };
            // SAFETY: 2 holds the lock.
            assert!(unsafe { s2.unlock(id(2), &mut h2) });
        });
        let mut h1 = Holds::NONE;
        let r = s.m.try_lock(id(1), &mut h1, true);
        match r {
            Ok(Acquired::Locked) => {
                // SAFETY: 1 holds the lock.
                let v = unsafe { s.read() };
                assert!(v == 0 || v == 7, "saw a partial state {v}");
                // SAFETY: 1 holds the lock.
                unsafe { s.write(v + 100) };
                // SAFETY: 1 holds the lock.
                assert!(unsafe { s.unlock(id(1), &mut h1) });
            }
            Err(Refused::WouldBlock) => assert_eq!(h1, Holds::NONE),
            other => panic!("try_lock: {other:?}"),
        }
        t.join().unwrap();
        assert_eq!(s.word(), 0);
        assert_eq!(s.m.try_lock(id(1), &mut h1, false), Ok(Acquired::Locked));
        // SAFETY: 1 holds the lock.
        let v = unsafe { s.read() };
        match r {
            Ok(_) => assert!(v == 7 || v == 107, "{v}"),
            Err(_) => assert_eq!(v, 7),
        }
    });
}
