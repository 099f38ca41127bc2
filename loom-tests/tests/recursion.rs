//! Recursion of `RLock` against a contender, and the relock of a
//! non-recursive `Lock` (an error, not a deadlock).
//!
//! Seeded bugs checked against this file (`--features <bug> --test recursion`),
//! with loom's verdict:
//!
//! | feature | loom's verdict |
//! |---|---|
//! | `bug-lost-wake` | both tests: `deadlock; threads = [(Id(0), Blocked(..)), (Id(1), Blocked(..))]` |
//! | `bug-weak-release`, `bug-weak-acquire` | both tests: `Causality violation: Concurrent read and write accesses.` |
//! | `bug-no-waiters-bit` | both tests: `Model exceeded maximum number of branches` |
//! | `bug-acquire-drops-waiters`, `bug-no-owner-died-bit`, `bug-keeps-owner-died`, `bug-liveness-relaxed` | pass (one sleeper at most; no death) |
//!
//! Runtime (`LOOM_MAX_PREEMPTIONS=3`, `--release`): < 0.1 s in all
//! (≈ 180 executions).
//!
//! The holder's own `Holds` decides its relocks and its last release; the
//! observers' copy in the page (`Shared::count`) is checked to follow.
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use shmsync::raw::{Acquired, Holds, Refused};
use shmsync_loom_tests::{id, model, Shared, TimeoutNow};

/// Thread 1 takes an `RLock` three times (lock, try_lock, lock), writing
/// between the holds, and releases one hold at a time; a contender must
/// never get in before the last release, and then sees the final write.
#[test]
fn rlock_holds_until_last_release() {
    model("rlock_holds_until_last_release", || {
        let s = Arc::new(Shared::<TimeoutNow>::default());
        let s2 = s.clone();
        let contender = thread::spawn(move || {
            let mut h2 = Holds::NONE;
            let first = s2.m.try_lock(id(2), &mut h2, true);
            let got = match first {
                Ok(a) => a,
                Err(Refused::WouldBlock) => s2.m.lock(id(2), &mut h2, true, None, None).unwrap(),
                Err(e) => panic!("{e:?}"),
            };
            assert_eq!(got, Acquired::Locked);
            // SAFETY: 2 holds the lock.
            let v = unsafe { s2.read() };
            assert!(v == 0 || v == 4, "got in between holds: {v}");
            // SAFETY: 2 holds the lock.
            unsafe { s2.write(v + 100) };
            // SAFETY: 2 holds the lock.
            assert!(unsafe { s2.unlock(id(2), &mut h2) });
        });
        let me = id(1);
        let mut h = Holds::NONE;
        assert_eq!(s.m.lock(me, &mut h, true, None, None), Ok(Acquired::Locked));
        // SAFETY: 1 holds the lock (each write below too).
        unsafe { s.write(1) };
        assert_eq!(s.m.try_lock(me, &mut h, true), Ok(Acquired::Recursive));
        // SAFETY: as above.
        unsafe { s.write(2) };
        assert_eq!(
            s.m.lock(me, &mut h, true, None, None),
            Ok(Acquired::Recursive)
        );
        assert_eq!(h.get(), 3);
        assert_eq!(s.count(), 3, "the observers' copy");
        // SAFETY: 1 holds it three times.
        assert!(!unsafe { s.unlock(me, &mut h) });
        // SAFETY: as above.
        unsafe { s.write(3) };
        // SAFETY: 1 holds it twice.
        assert!(!unsafe { s.unlock(me, &mut h) });
        assert!(s.m.is_held_by(me));
        assert_eq!(s.count(), 1);
        // SAFETY: as above.
        unsafe { s.write(4) };
        // SAFETY: the last hold.
        assert!(unsafe { s.unlock(me, &mut h) });
        assert_eq!(h, Holds::NONE);
        contender.join().unwrap();
        assert_eq!(s.m.lock(me, &mut h, true, None, None), Ok(Acquired::Locked));
        // SAFETY: 1 holds the lock.
        let v = unsafe { s.read() };
        // 4: the contender came first (and saw 0); 104: it came after.
        assert!(v == 4 || v == 104, "{v}");
    });
}

/// A non-recursive lock refuses its owner's relock (`Deadlock`, from
/// `lock`, `try_lock` and a timed lock) without changing anything, while a
/// contender waits; the contender still gets the lock after the release.
#[test]
fn lock_relock_is_refused() {
    model("lock_relock_is_refused", || {
        let s = Arc::new(Shared::<TimeoutNow>::default());
        let me = id(1);
        let mut h = Holds::NONE;
        assert_eq!(
            s.m.lock(me, &mut h, false, None, None),
            Ok(Acquired::Locked)
        );
        let s2 = s.clone();
        let contender = thread::spawn(move || {
            let mut h2 = Holds::NONE;
            assert_eq!(
                s2.m.lock(id(2), &mut h2, false, None, None),
                Ok(Acquired::Locked)
            );
            // SAFETY: 2 holds the lock.
            let v = unsafe { s2.read() };
            assert_eq!(v, 1);
            // SAFETY: 2 holds the lock.
            assert!(unsafe { s2.unlock(id(2), &mut h2) });
        });
        assert_eq!(
            s.m.lock(me, &mut h, false, None, None),
            Err(Refused::Deadlock)
        );
        assert_eq!(s.m.try_lock(me, &mut h, false), Err(Refused::Deadlock));
        let mut b = shmsync_loom_tests::Budget::new(1);
        assert_eq!(
            s.m.lock(me, &mut h, false, Some(&mut b), None),
            Err(Refused::Deadlock)
        );
        assert_eq!(b.asked, 0);
        assert!(s.m.is_held_by(me));
        assert_eq!(h.get(), 1);
        assert_eq!(s.count(), 1);
        // SAFETY: 1 holds the lock.
        unsafe { s.write(1) };
        // SAFETY: 1 holds the lock once.
        assert!(unsafe { s.unlock(me, &mut h) });
        contender.join().unwrap();
        assert_eq!(s.word(), 0);
    });
}
