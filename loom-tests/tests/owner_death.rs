//! Owner death as a step of the model.
//!
//! A "dying" thread takes the lock (twice: a recursive count is left
//! behind), writes the data, and returns without unlocking. Its death is
//! made known either
//! - by the kernel's robust-list action, played by the dying thread's last
//!   step `mark_owner_dead(its id)` (the kernel runs it after the thread's
//!   last instruction: `tid[|WAITERS] → OWNER_DIED[|WAITERS]`, wake one), or
//! - by the liveness fallback: the dying thread's last step is
//!   `DeadTable::die(its id)` and the waiters probe it through the lock's
//!   `Liveness` hook, marking the word themselves.
//!
//! Two others contend for the lock throughout: one sleeps untimed, the
//! other (in the liveness variant) probes with timed waits. Each thread
//! keeps its own `Holds` (the dying thread's dies with it). Checked:
//! exactly one acquirer (counting a final `try_lock` after everybody is
//! joined) sees `OwnerDied`; while it holds the lock the word names it and
//! `OWNER_DIED` is clear (`WAITERS` may be either); it sees the dead
//! owner's write (happens-before), its own count is one and the observers'
//! copy was reset to one; a sleeper is woken by the death (else loom
//! reports a deadlock); then either `mark_consistent` makes the lock
//! normal again, or an unlock without it makes it `NotRecoverable` for
//! everyone, including sleepers woken by that unlock.
//!
//! `reused_tid_takes_over_keeping_waiters`: a thread ends holding the lock
//! and nobody marks the word; a new thread with the same TID (whose own
//! count is zero) takes it over as `OwnerDied`, keeping a sleeper's
//! `WAITERS`.
//!
//! Seeded bugs checked against this file
//! (`--features <bug> --test owner_death`), with loom's verdict:
//!
//! | feature | loom's verdict |
//! |---|---|
//! | `bug-lost-wake` | every test: `deadlock; threads = [(Id(0), Blocked(..)), (Id(1), Terminated), (Id(2), Blocked(..))]` (a sleeper is never woken by the death, by the unrepaired release, or by the reused TID's release) |
//! | `bug-weak-release`, `bug-weak-acquire` | the four `*_death_*` tests: `Causality violation: Concurrent read and write accesses to UnsafeCell` (the recoverer's read of the dead owner's write); `reused_tid_takes_over_keeping_waiters`: `Causality violation: Concurrent read and write accesses.` (the sleeper's read of the repair); `unrepaired_release_wakes_every_sleeper` passes (no data) |
//! | `bug-no-waiters-bit` | every test: `Model exceeded maximum number of branches` |
//! | `bug-acquire-drops-waiters` | the four `*_death_*` tests: `deadlock`; `unrepaired_release_wakes_every_sleeper` passes (it wakes everyone); `reused_tid_takes_over_keeping_waiters` passes (that stand-in drops `WAITERS` only when taking a word without a TID) |
//! | `bug-no-owner-died-bit` | `*_then_mark_consistent`: `3 got Locked after an unreported death (data 5)` (probe: `1 got ...`); `*_then_not_recoverable`: `assertion left == right failed: 3 got Locked after an unreported death`; `unrepaired_release_wakes_every_sleeper`: `assertion left == right failed (left: Ok(Locked), right: Ok(OwnerDied))`; `reused_tid_takes_over_keeping_waiters` passes (no `OWNER_DIED` there) |
//! | `bug-keeps-owner-died` | the four `*_death_*` tests and `unrepaired_release_wakes_every_sleeper`: `assertion left == right failed: OWNER_DIED left set while held: 0x40000003` (probe: `0xc0000001`; unrepaired: `0x40000001`), and nothing else fails without that assertion (the bit is otherwise harmless to the state machine); `reused_tid_takes_over_keeping_waiters` passes (no `OWNER_DIED` to keep) |
//! | `bug-liveness-relaxed` | `probed_death_then_mark_consistent`, `probed_death_then_not_recoverable`: `Causality violation: Concurrent read and write accesses.` (the `Liveness` contract: a probe that reports a death must Acquire it); the other tests pass |
//!
//! Runtime (`LOOM_MAX_PREEMPTIONS=3`, `--release`): < 1.5 s per test (at
//! most ≈ 8 000 executions, `probed_death_then_mark_consistent`).
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use shmsync::raw::{Acquired, Holds, Refused, NOT_RECOVERABLE, OWNER_DIED, TID_MASK};
use shmsync_loom_tests::{id, model, DeadTable, Shared, TimeoutNow};

/// How the death becomes known.
#[derive(Clone, Copy, Debug)]
enum Death {
    /// The kernel's robust-list walk (`mark_owner_dead` by the dying
    /// thread's last step).
    Kernel,
    /// The liveness fallback (the waiters probe a `DeadTable`).
    Probe,
}

/// What the thread that sees `OwnerDied` does before releasing.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Repair {
    MarkConsistent,
    Skip,
}

const DEAD_ID: u32 = 2;
const DEAD_WRITE: u32 = 5;
const REPAIRED: u32 = 6;

/// One contender's outcome.
#[derive(Debug, PartialEq, Clone, Copy)]
enum Seen {
    Locked,
    OwnerDied,
    NotRecoverable,
}

/// Checks, while `me` holds a lock it took over, that the word says so: the
/// TID bits name `me` and `OWNER_DIED` is gone (`WAITERS` may be either:
/// others can announce themselves meanwhile). Relaxed: only waiters'
/// `| WAITERS` can follow the owner's own CAS in the word's order.
fn assert_taken_over_by(s: &Shared, me: u32) {
    let w = s.word();
    assert_eq!(w & TID_MASK, me, "{me} holds it: word {w:#x}");
    assert_eq!(w & OWNER_DIED, 0, "OWNER_DIED left set while held: {w:#x}");
}

/// Takes the lock as `me` (probing `table` if `probe`), checks what it
/// finds, and releases it.
fn contend(s: &Shared, table: &DeadTable, me: u32, probe: bool, repair: Repair) -> Seen {
    let mut prober = table.probe();
    let liveness: Option<&mut dyn shmsync::raw::Liveness> =
        if probe { Some(&mut prober) } else { None };
    // This thread's own count of its holds.
    let mut h = Holds::NONE;
    let r = s.m.lock(id(me), &mut h, true, None, liveness);
    match r {
        Ok(Acquired::Locked) => {
            // SAFETY: `me` holds the lock.
            let v = unsafe { s.read() };
            match repair {
                // Before the death (0) or after the repair.
                Repair::MarkConsistent => assert!(
                    v == 0 || v == REPAIRED,
                    "{me} got Locked after an unreported death (data {v})"
                ),
                // After an unrepaired death nobody gets the lock again.
                Repair::Skip => {
                    assert_eq!(v, 0, "{me} got Locked after an unreported death");
                }
            }
            // SAFETY: `me` holds the lock.
            assert!(unsafe { s.unlock(id(me), &mut h) });
            Seen::Locked
        }
        Ok(Acquired::OwnerDied) => {
            assert_taken_over_by(s, me);
            // SAFETY: `me` holds the lock.
            assert_eq!(unsafe { s.read() }, DEAD_WRITE, "the dead owner's write");
            assert_eq!(h.get(), 1, "one hold: ours");
            assert_eq!(s.count(), 1, "the dead owner's recursion is gone");
            if repair == Repair::MarkConsistent {
                // SAFETY: `me` holds the lock.
                unsafe { s.write(REPAIRED) };
                // SAFETY: `me` holds the lock.
                unsafe { s.m.mark_consistent() };
            }
            // SAFETY: `me` holds the lock.
            assert!(unsafe { s.unlock(id(me), &mut h) });
            Seen::OwnerDied
        }
        Err(Refused::NotRecoverable) => {
            assert_eq!(h, Holds::NONE);
            assert_eq!(repair, Repair::Skip);
            Seen::NotRecoverable
        }
        other => panic!("contender {me}: {other:?}"),
    }
}

fn death(death: Death, repair: Repair) {
    let name = format!("death({death:?}, {repair:?})");
    model(&name, move || {
        let s = Arc::new(Shared::<TimeoutNow>::default());
        let table = Arc::new(DeadTable::default());
        let (s2, t2) = (s.clone(), table.clone());
        let dying = thread::spawn(move || {
            let me = id(DEAD_ID);
            let mut h = Holds::NONE;
            assert_eq!(
                s2.m.lock(me, &mut h, true, None, None),
                Ok(Acquired::Locked)
            );
            assert_eq!(
                s2.m.lock(me, &mut h, true, None, None),
                Ok(Acquired::Recursive)
            );
            // SAFETY: DEAD_ID holds the lock.
            unsafe { s2.write(DEAD_WRITE) };
            // Dies holding it (its count `h` dies with it); this is the
            // last thing that happens.
            match death {
                Death::Kernel => assert!(s2.m.mark_owner_dead(me)),
                Death::Probe => t2.die(me),
            }
        });
        let (s3, t3) = (s.clone(), table.clone());
        // Thread 3 never probes: it sleeps until woken (by the kernel's
        // wake, or by the wake of the prober's `mark_owner_dead`). Only the
        // main thread probes, in `Probe` mode: two threads that both spin
        // on timed waits make loom explore their ping-pong without end.
        let other = thread::spawn(move || contend(&s3, &t3, 3, false, repair));
        let mut seen = Vec::new();
        match death {
            Death::Kernel => {
                seen.push(contend(&s, &table, 1, false, repair));
                dying.join().unwrap();
            }
            Death::Probe => {
                // The prober keeps watch until the death has been dealt
                // with: if it got the lock before the death, it comes
                // back after it (else thread 3 could sleep forever on a
                // dead owner that nobody probes — in production every
                // waiter probes in fallback mode).
                let first = contend(&s, &table, 1, true, repair);
                seen.push(first);
                dying.join().unwrap();
                if first == Seen::Locked {
                    seen.push(contend(&s, &table, 1, true, repair));
                }
            }
        }
        seen.push(other.join().unwrap());

        // Everybody is done. If nobody has recovered yet (kernel mode, all
        // contenders came before the death), the next locker must.
        let last = match s.m.try_lock(id(4), &mut Holds::default(), true) {
            Ok(Acquired::OwnerDied) => {
                assert_taken_over_by(&s, 4);
                // SAFETY: 4 holds the lock.
                assert_eq!(unsafe { s.read() }, DEAD_WRITE);
                // SAFETY: 4 holds the lock.
                unsafe { s.m.mark_consistent() };
                Seen::OwnerDied
            }
            Ok(Acquired::Locked) => Seen::Locked,
            Err(Refused::NotRecoverable) => Seen::NotRecoverable,
            other => panic!("final try_lock: {other:?}"),
        };
        if let Death::Probe = death {
            assert_ne!(last, Seen::OwnerDied, "the prober recovered it");
        }
        seen.push(last);
        let died = seen.iter().filter(|&&x| x == Seen::OwnerDied).count();
        assert_eq!(died, 1, "OwnerDied exactly once: {seen:?}");
        match (repair, last) {
            (_, Seen::OwnerDied) => {}
            (Repair::MarkConsistent, l) => assert_eq!(l, Seen::Locked),
            (Repair::Skip, l) => {
                assert_eq!(l, Seen::NotRecoverable);
                assert_eq!(s.word(), NOT_RECOVERABLE);
            }
        }
    });
}

#[test]
fn kernel_death_then_mark_consistent() {
    death(Death::Kernel, Repair::MarkConsistent);
}

#[test]
fn kernel_death_then_not_recoverable() {
    death(Death::Kernel, Repair::Skip);
}

#[test]
fn probed_death_then_mark_consistent() {
    death(Death::Probe, Repair::MarkConsistent);
}

#[test]
fn probed_death_then_not_recoverable() {
    death(Death::Probe, Repair::Skip);
}

/// Two sleepers on a lock whose repairer gives up: the unlock without
/// `mark_consistent` must wake both (`wake_all`), and both see
/// `NotRecoverable`.
#[test]
fn unrepaired_release_wakes_every_sleeper() {
    model("unrepaired_release_wakes_every_sleeper", || {
        let s = Arc::new(Shared::<TimeoutNow>::default());
        assert_eq!(
            s.m.lock(id(DEAD_ID), &mut Holds::default(), false, None, None),
            Ok(Acquired::Locked)
        );
        assert!(s.m.mark_owner_dead(id(DEAD_ID)));
        let mut h1 = Holds::NONE;
        assert_eq!(
            s.m.lock(id(1), &mut h1, false, None, None),
            Ok(Acquired::OwnerDied)
        );
        let sleepers: Vec<_> = [3, 4]
            .into_iter()
            .map(|me| {
                let s = s.clone();
                thread::spawn(move || {
                    let mut h = Holds::NONE;
                    let r = s.m.lock(id(me), &mut h, false, None, None);
                    (r, h)
                })
            })
            .collect();
        assert_taken_over_by(&s, 1);
        // SAFETY: 1 holds the lock; released without repair.
        assert!(unsafe { s.unlock(id(1), &mut h1) });
        for h in sleepers {
            assert_eq!(
                h.join().unwrap(),
                (Err(Refused::NotRecoverable), Holds::NONE)
            );
        }
        assert_eq!(s.word(), NOT_RECOVERABLE);
    });
}

/// A thread dies holding the lock and nobody marks its word (no robust
/// list, no probe); a new thread gets the same TID. Its own count says it
/// holds nothing, so it takes the word that names it over as a dead
/// owner's, keeping the `WAITERS` of a contender asleep meanwhile: the
/// release after the repair must wake it (else loom reports a deadlock).
#[test]
fn reused_tid_takes_over_keeping_waiters() {
    model("reused_tid_takes_over_keeping_waiters", || {
        let s = Arc::new(Shared::<TimeoutNow>::default());
        let s2 = s.clone();
        thread::spawn(move || {
            let mut h = Holds::NONE;
            assert_eq!(
                s2.m.lock(id(DEAD_ID), &mut h, true, None, None),
                Ok(Acquired::Locked)
            );
            // SAFETY: DEAD_ID holds the lock.
            unsafe { s2.write(DEAD_WRITE) };
            // Ends holding it; nobody marks the word.
        })
        .join()
        .unwrap();
        let s3 = s.clone();
        let contender = thread::spawn(move || {
            let mut h = Holds::NONE;
            assert_eq!(
                s3.m.lock(id(3), &mut h, true, None, None),
                Ok(Acquired::Locked)
            );
            // SAFETY: 3 holds the lock.
            let v = unsafe { s3.read() };
            assert_eq!(v, REPAIRED, "got in before the repair");
            // SAFETY: 3 holds the lock.
            assert!(unsafe { s3.unlock(id(3), &mut h) });
        });
        // The new thread with the dead one's TID.
        let mut h = Holds::NONE;
        assert_eq!(
            s.m.lock(id(DEAD_ID), &mut h, true, None, None),
            Ok(Acquired::OwnerDied)
        );
        assert_taken_over_by(&s, DEAD_ID);
        assert_eq!(h.get(), 1);
        // SAFETY: DEAD_ID (the new thread) holds the lock.
        assert_eq!(unsafe { s.read() }, DEAD_WRITE);
        // SAFETY: as above.
        unsafe { s.write(REPAIRED) };
        // SAFETY: as above.
        unsafe { s.m.mark_consistent() };
        // SAFETY: as above, once.
        assert!(unsafe { s.unlock(id(DEAD_ID), &mut h) });
        contender.join().unwrap();
        assert_eq!(s.word(), 0);
    });
}
