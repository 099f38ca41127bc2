//! The barrier (`shmsync::raw::RawBarrier`): happens-before from every
//! party's writes to every party leaving the round, generations (a fast
//! party cannot pass the next round early), breaking (`abort`, `reset`)
//! and a dead party breaking the round instead of stranding the others.
//!
//! The sleeping models use [`TimeoutLate`] (a slice ends only when woken:
//! a lost wake is a deadlock, which loom reports); the dead-party model
//! uses timeouts that fire at once ([`TimeoutNow`]), since a waiter learns
//! of a death only by probing after a slice. A death is a step: the dying
//! party records it in a [`DeadTable`] (loom cannot kill a thread), with
//! its records left in the page as a party killed between two rounds
//! leaves them.
//!
//! Seeded bugs checked against this file (`--features <bug> --test
//! barrier`), with loom's verdict:
//!
//! | feature | loom's verdict |
//! |---|---|
//! | `bug-lost-wake` | every test but `a_dead_party_breaks_the_round` (whose timeouts fire): `deadlock; threads = [..Blocked..]` |
//! | `bug-weak-release`, `bug-weak-acquire` | `one_round_publishes`: `Causality violation: Concurrent read and write accesses.`; `two_rounds_never_pass_early`: `passed round 2 early`; the others pass (a break publishes nothing) |
//! | `bug-split-cas` | every test but `a_dead_party_breaks_the_round`: `deadlock` |
//! | `bug-barrier-keeps-count` | `two_rounds_never_pass_early`: `passed round 2 early`; `one_round_publishes`, `reset_releases_a_sleeper`: the word keeps a count |
//! | `bug-barrier-drops-broken` | `abort_releases_a_sleeper`: `deadlock`; `a_dead_party_breaks_the_round`: `not broken` |
//! | the lock's bit bugs (`bug-no-waiters-bit` ..), `bug-liveness-relaxed`, `bug-event-no-generation` | pass (bits 30–31 are high generation bits, not reached; a break publishes nothing) |
//!
//! Runtime (`LOOM_MAX_PREEMPTIONS=3`, `--release`): about 0.5 s in all (at
//! most ≈ 12 000 executions, `two_rounds_never_pass_early`).
#![cfg(loom)]

use core::sync::atomic::Ordering::Relaxed;

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;
use shmsync::raw::barrier::{Broken, RawBarrier, COUNT_MASK, GEN_ONE};
use shmsync::raw::{AtomicWord, FutexWord};
use shmsync_loom_tests::{
    id, model, DeadTable, LoomFutex, LoomU32, TimeoutLate, TimeoutNow, TimeoutPolicy, Unseeded,
};

/// A barrier of 2 or 3 parties, with data published through it.
struct Shared<P: TimeoutPolicy> {
    word: LoomFutex<P>,
    recs: Vec<LoomU32>,
    /// Written by party `i` before `wait`, read by the others after it.
    data: [UnsafeCell<u32>; 3],
    /// Round numbers (atomics: written again in the next round while a
    /// slow party may still read them).
    slots: [LoomU32; 3],
    dead: DeadTable,
}

// SAFETY: `data[i]` is written by party `i` only before its `wait` of the
// one round the models publish it in, and read by the others only after
// theirs returned `Ok`: loom checks exactly that.
unsafe impl<P: TimeoutPolicy> Sync for Shared<P> {}

impl<P: TimeoutPolicy> Shared<P> {
    fn new(parties: usize) -> Arc<Self> {
        Arc::new(Shared {
            word: LoomFutex::new(0),
            recs: (0..2 * parties).map(|_| LoomU32::new(0)).collect(),
            data: [UnsafeCell::new(0), UnsafeCell::new(0), UnsafeCell::new(0)],
            slots: [LoomU32::new(0), LoomU32::new(0), LoomU32::new(0)],
            dead: DeadTable::default(),
        })
    }

    fn b(&self) -> RawBarrier<'_, LoomFutex<P>> {
        RawBarrier::new(&self.word, &self.recs).unwrap()
    }

    /// The word, as the model sees it (no seeded bug).
    fn word(&self) -> u32 {
        self.word.atomic().load_unseeded(Relaxed)
    }

    /// Party `i` (id `i + 1`) waits (no liveness probe).
    fn wait(&self, i: usize) -> Result<u32, Broken> {
        self.b().wait(id(i as u32 + 1), None, None)
    }

    fn publish(&self, i: usize, v: u32) {
        // SAFETY: see the `Sync` impl.
        self.data[i].with_mut(|p| unsafe { *p = v });
    }

    fn read(&self, i: usize) -> u32 {
        // SAFETY: see the `Sync` impl.
        self.data[i].with(|p| unsafe { *p })
    }
}

/// Two parties, one round: both return `Ok` with distinct indices (the
/// last to arrive leads), and each sees what the other wrote before.
#[test]
fn one_round_publishes() {
    model("one_round_publishes", || {
        let s = Shared::<TimeoutLate>::new(2);
        let s2 = s.clone();
        let t = thread::spawn(move || {
            s2.publish(1, 7);
            let i = s2.wait(1).unwrap();
            assert_eq!(s2.read(0), 5);
            i
        });
        s.publish(0, 5);
        let mine = s.wait(0).unwrap();
        assert_eq!(s.read(1), 7);
        let theirs = t.join().unwrap();
        assert_eq!(mine + theirs, 1, "indices 0 and 1");
        assert_eq!(s.word(), GEN_ONE, "round 1, empty, nobody asleep");
    });
}

/// Two parties, two rounds each: a party leaving round `r` finds the
/// other's slot at `r` or beyond, so the faster one, re-entering at once,
/// cannot pass round 2 before the other arrives in it.
#[test]
fn two_rounds_never_pass_early() {
    model("two_rounds_never_pass_early", || {
        let s = Shared::<TimeoutLate>::new(2);
        let party = |s: Arc<Shared<TimeoutLate>>, me: usize| {
            for r in 1..=2 {
                s.slots[me].store_unseeded(r, Relaxed);
                s.wait(me).unwrap();
                let other = s.slots[1 - me].load_unseeded(Relaxed);
                assert!(other >= r, "passed round {r} early");
            }
        };
        let s2 = s.clone();
        let t = thread::spawn(move || party(s2, 1));
        party(s.clone(), 0);
        t.join().unwrap();
        assert_eq!(s.word(), 2 * GEN_ONE);
    });
}

/// `abort` releases a sleeping waiter with `Broken`, and the barrier stays
/// broken for later arrivals.
#[test]
fn abort_releases_a_sleeper() {
    model("abort_releases_a_sleeper", || {
        let s = Shared::<TimeoutLate>::new(2);
        let s2 = s.clone();
        let t = thread::spawn(move || s2.wait(1));
        s.b().abort();
        assert_eq!(t.join().unwrap(), Err(Broken));
        assert!(s.b().is_broken());
        assert_eq!(s.wait(0), Err(Broken));
    });
}

/// `reset` releases the waiters of the round with `Broken` and leaves an
/// empty barrier.
#[test]
fn reset_releases_a_sleeper() {
    model("reset_releases_a_sleeper", || {
        let s = Shared::<TimeoutLate>::new(2);
        let s2 = s.clone();
        let t = thread::spawn(move || s2.wait(1));
        while s.word() & COUNT_MASK == 0 {
            thread::yield_now();
        }
        s.b().reset();
        assert_eq!(t.join().unwrap(), Err(Broken));
        assert!(!s.b().is_broken());
        assert_eq!(s.word() & COUNT_MASK, 0);
    });
}

/// Two parties; round 0 completed with both. Party 2 dies before
/// arriving in round 1 (its record of round 0 stays in the page, as a
/// party killed between rounds leaves it); party 1 waits in round 1,
/// probing after each slice: it returns `Broken`, never hangs.
#[test]
fn a_dead_party_breaks_the_round() {
    model("a_dead_party_breaks_the_round", || {
        let s = Shared::<TimeoutNow>::new(2);
        // Round 0's records (tag 0): parties 1 and 2.
        s.recs[0].store_unseeded(1, Relaxed);
        s.recs[1].store_unseeded(2, Relaxed);
        s.word.atomic().store_unseeded(GEN_ONE, Relaxed);
        let s2 = s.clone();
        let dying = thread::spawn(move || s2.dead.die(id(2)));
        let mut probe = s.dead.probe();
        assert_eq!(s.b().wait(id(1), None, Some(&mut probe)), Err(Broken));
        dying.join().unwrap();
        assert!(s.b().is_broken(), "not broken");
    });
}
