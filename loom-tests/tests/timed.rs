//! The timed path: `lock` with a [`Deadline`](shmsync::raw::Deadline) that
//! expires after `k` waits ([`Budget`]).
//!
//! loom has no clock, so each model runs under two timeout policies of the
//! stand-in: `TimeoutNow` (every timed wait returns at once, as if its
//! timeout fired immediately) and `TimeoutLate` (a timed wait sleeps until
//! woken, as if its timeout fired late — so a timed waiter can consume a
//! `wake_one` that another sleeper needed, which the kernel allows). In
//! both, a timed waiter that gives up must leave the lock in a state where
//! every other waiter is still woken (no lost wake-up, reported by loom as a
//! deadlock), and one that succeeds holds the lock with happens-before.
//!
//! Seeded bugs checked against this file (`--features <bug> --test timed`),
//! with loom's verdict:
//!
//! | feature | loom's verdict |
//! |---|---|
//! | `bug-lost-wake` | every `expires_*` test: `deadlock; threads = [(Id(0), Blocked(..)), (Id(1), Terminated), (Id(2), Blocked(..))]`; `gives_up_on_a_holder` passes (nobody is woken there) |
//! | `bug-weak-release`, `bug-weak-acquire` | every `expires_*` test: `Causality violation: Concurrent read and write accesses.`; `gives_up_on_a_holder` passes (no data) |
//! | `bug-no-waiters-bit` | every `expires_*` test: `Model exceeded maximum number of branches`; `gives_up_on_a_holder`: `assertion left == right failed (left: 1, right: 2147483649)` (the word lacks `WAITERS`) |
//! | `bug-acquire-drops-waiters` | `expires_after_one_wait_late`, `expires_after_two_waits_late`: `deadlock` — only with `TimeoutLate`, where the timed waiter sleeps, is woken, takes the lock without `WAITERS` and strands the untimed sleeper; the `TimeoutNow` variants pass |
//! | `bug-no-owner-died-bit`, `bug-keeps-owner-died`, `bug-liveness-relaxed` | pass (no death) |
//!
//! Runtime (`LOOM_MAX_PREEMPTIONS=3`, `--release`): < 0.5 s per test
//! (at most ≈ 3 200 executions, `expires_after_two_waits_now`).
//! `gives_up_on_a_holder` is a single execution: the holder's relock and
//! inner unlock touch only the observers' copy of the count, never the
//! word the timed waiter works on, so loom has nothing to interleave.
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use shmsync::raw::{Acquired, Holds, Refused, WAITERS};
use shmsync_loom_tests::{id, model, Budget, Shared, TimeoutLate, TimeoutNow, TimeoutPolicy};

/// Main holds the lock and releases it; thread 2 tries with a deadline of
/// `k` waits; thread 3 waits without a deadline.
fn timed_and_untimed<P: TimeoutPolicy + Send + Sync + 'static>(k: u32, policy: &str) {
    let name = format!("timed_and_untimed(k={k}, {policy})");
    model(&name, move || {
        let s = Arc::new(Shared::<P>::default());
        let mut h1 = Holds::NONE;
        assert_eq!(
            s.m.lock(id(1), &mut h1, false, None, None),
            Ok(Acquired::Locked)
        );
        let s2 = s.clone();
        let timed = thread::spawn(move || {
            let mut b = Budget::new(k);
            let mut h2 = Holds::NONE;
            match s2.m.lock(id(2), &mut h2, false, Some(&mut b), None) {
                Ok(Acquired::Locked) => {
                    // SAFETY: 2 holds the lock.
                    let v = unsafe { s2.read() };
                    assert!(v == 1 || v == 11, "{v}");
                    // SAFETY: 2 holds the lock.
                    unsafe { s2.write(v + 100) };
                    // SAFETY: 2 holds the lock.
                    assert!(unsafe { s2.unlock(id(2), &mut h2) });
                    true
                }
                Err(Refused::WouldBlock) => {
                    assert_eq!(h2, Holds::NONE);
                    assert!(b.expired(), "gave up before its deadline");
                    assert_eq!(b.asked, k + 1);
                    false
                }
                other => panic!("timed lock: {other:?}"),
            }
        });
        let s3 = s.clone();
        let untimed = thread::spawn(move || {
            let mut h3 = Holds::NONE;
            assert_eq!(
                s3.m.lock(id(3), &mut h3, false, None, None),
                Ok(Acquired::Locked)
            );
            // SAFETY: 3 holds the lock.
            unsafe { s3.write(s3.read() + 10) };
            // SAFETY: 3 holds the lock.
            assert!(unsafe { s3.unlock(id(3), &mut h3) });
        });
        // SAFETY: 1 holds the lock.
        unsafe { s.write(1) };
        // SAFETY: 1 holds the lock.
        assert!(unsafe { s.unlock(id(1), &mut h1) });
        let got = timed.join().unwrap();
        untimed.join().unwrap();
        assert_eq!(s.word(), 0, "free, and no WAITERS left behind");
        assert_eq!(s.m.try_lock(id(1), &mut h1, false), Ok(Acquired::Locked));
        // SAFETY: 1 holds the lock.
        let v = unsafe { s.read() };
        if got {
            assert_eq!(v, 111);
        } else {
            assert_eq!(v, 11);
        }
    });
}

#[test]
fn expires_at_once_now() {
    timed_and_untimed::<TimeoutNow>(0, "TimeoutNow");
}

#[test]
fn expires_after_one_wait_now() {
    timed_and_untimed::<TimeoutNow>(1, "TimeoutNow");
}

#[test]
fn expires_after_two_waits_now() {
    timed_and_untimed::<TimeoutNow>(2, "TimeoutNow");
}

#[test]
fn expires_at_once_late() {
    timed_and_untimed::<TimeoutLate>(0, "TimeoutLate");
}

#[test]
fn expires_after_one_wait_late() {
    timed_and_untimed::<TimeoutLate>(1, "TimeoutLate");
}

#[test]
fn expires_after_two_waits_late() {
    timed_and_untimed::<TimeoutLate>(2, "TimeoutLate");
}

/// A timed lock against a holder that keeps the lock (re-locking it
/// recursively meanwhile): it must give up after exactly its budget, with
/// the lock untouched except for `WAITERS`.
#[test]
fn gives_up_on_a_holder() {
    model("gives_up_on_a_holder", || {
        let s = Arc::new(Shared::<TimeoutNow>::default());
        let mut h1 = Holds::NONE;
        assert_eq!(
            s.m.lock(id(1), &mut h1, true, None, None),
            Ok(Acquired::Locked)
        );
        let s2 = s.clone();
        let t = thread::spawn(move || {
            let mut b = Budget::new(2);
            let mut h2 = Holds::NONE;
            assert_eq!(
                s2.m.lock(id(2), &mut h2, true, Some(&mut b), None),
                Err(Refused::WouldBlock)
            );
            assert_eq!(b.asked, 3);
            assert_eq!(h2, Holds::NONE);
        });
        assert_eq!(
            s.m.lock(id(1), &mut h1, true, None, None),
            Ok(Acquired::Recursive)
        );
        // SAFETY: 1 holds the lock twice.
        assert!(!unsafe { s.unlock(id(1), &mut h1) });
        t.join().unwrap();
        assert_eq!(s.word(), 1 | WAITERS);
        assert_eq!(h1.get(), 1);
        assert_eq!(s.count(), 1);
        // SAFETY: 1 holds the lock.
        assert!(unsafe { s.unlock(id(1), &mut h1) });
        assert_eq!(s.word(), 0);
    });
}
