//! Unit tests of [`RawSemaphore`] and its holder [`Records`] on heap
//! memory, with the production word (and [`Spy`], to count its system
//! calls). Run under Miri as the rest of `src/raw/tests.rs`.
//!
//! Thread ids are small made-up numbers; "death" is a flag in a table that
//! the recovery's judge reads (`Acquire`, as the production liveness probe
//! acquires a death through the kernel).

use core::cell::UnsafeCell;
use core::sync::atomic::AtomicU32;
use core::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::thread;

use super::{until, Budget, Spy};
use crate::raw::semaphore::{
    record, Overflow, RawSemaphore, Records, MAX_VALUE, REC_HELD_MAX, REC_HELD_SHIFT, REC_TID,
    VALUE, WAITERS,
};

type Sem = RawSemaphore<Spy>;

/// Joins `h`, failing (instead of hanging) if it has not ended within a
/// generous watchdog: a waiter that is never released.
fn join_watched<T>(h: thread::JoinHandle<T>) -> T {
    let start = std::time::Instant::now();
    while !h.is_finished() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "a waiter was never released"
        );
        thread::sleep(std::time::Duration::from_millis(1));
    }
    h.join().unwrap()
}

/// Until `n` waits have been entered on `s`'s word and it shows `WAITERS`.
fn until_waiting(s: &Sem, n: u32) {
    until(|| s.word().waits.load(Relaxed) >= n && s.word().load(Relaxed) & WAITERS != 0);
}

fn no_recovery() -> u32 {
    0
}

#[test]
fn uncontended_acquire_release_and_bound() {
    let s = Sem::new(2);
    assert_eq!(s.value(), 2);
    assert!(s.try_acquire());
    assert_eq!(s.acquire(None, &mut no_recovery), Ok(0));
    assert!(!s.try_acquire());
    assert_eq!(
        s.acquire(Some(&mut Budget::new(0)), &mut no_recovery),
        Err(0)
    );
    assert_eq!(s.release(1, 2), Ok(()));
    assert_eq!(s.release(2, 2), Err(Overflow), "past the bound: refused");
    assert_eq!(s.value() & VALUE, 1, "and nothing changed");
    assert_eq!(s.release(1, 2), Ok(()));
    assert_eq!(s.release(1, 2), Err(Overflow));
    assert_eq!(s.value(), 2);
    assert_eq!(s.word().wakes.load(Relaxed), 0, "nobody slept: no wake");
    // The maximum.
    let m = Sem::new(MAX_VALUE - 1);
    assert_eq!(m.release(1, MAX_VALUE), Ok(()));
    assert_eq!(m.release(1, MAX_VALUE), Err(Overflow));
    assert_eq!(
        m.release(1, u32::MAX),
        Err(Overflow),
        "bounds cap at MAX_VALUE"
    );
    assert_eq!(m.value(), MAX_VALUE);
    assert_eq!(m.release_capped(5, MAX_VALUE), 0);
    let c = Sem::new(1);
    assert_eq!(c.release_capped(5, 3), 2, "as many as fit");
    assert_eq!(c.value(), 3);
}

#[test]
fn a_release_wakes_a_sleeper_which_keeps_waiters_set() {
    let s = Arc::new(Sem::new(0));
    let s2 = s.clone();
    let h = thread::spawn(move || s2.acquire(None, &mut no_recovery));
    until_waiting(&s, 1);
    assert_eq!(s.release(1, 10), Ok(()));
    assert_eq!(join_watched(h), Ok(0));
    assert_eq!(s.word().wakes.load(Relaxed), 1);
    assert_eq!(
        s.word().load(Relaxed),
        WAITERS,
        "a sleeper takes its permit with WAITERS set"
    );
    // The next release wakes (nobody) and clears it.
    assert_eq!(s.release(1, 10), Ok(()));
    assert_eq!(s.word().load(Relaxed), 1);
}

#[test]
fn every_sleeper_gets_a_permit_from_single_releases() {
    let n = if cfg!(miri) { 2 } else { 4 };
    let s = Arc::new(Sem::new(0));
    let hs: Vec<_> = (0..n)
        .map(|_| {
            let s = s.clone();
            thread::spawn(move || s.acquire(None, &mut no_recovery))
        })
        .collect();
    until_waiting(&s, n);
    for _ in 0..n {
        s.release(1, 100).unwrap();
    }
    for h in hs {
        assert_eq!(join_watched(h), Ok(0));
    }
    assert_eq!(s.value(), 0);
}

#[test]
fn release_n_wakes_everybody() {
    let n = if cfg!(miri) { 2 } else { 3 };
    let s = Arc::new(Sem::new(0));
    let hs: Vec<_> = (0..n)
        .map(|_| {
            let s = s.clone();
            thread::spawn(move || s.acquire(None, &mut no_recovery))
        })
        .collect();
    until_waiting(&s, n);
    s.release(n, 100).unwrap();
    for h in hs {
        assert_eq!(join_watched(h), Ok(0));
    }
    assert_eq!(s.value(), 0);
}

#[test]
fn a_lost_wake_delays_the_sleeper_but_does_not_strand_it() {
    // A releaser killed between its CAS and its wake: the permit is there,
    // WAITERS is gone, and nobody wakes the sleeper.
    let s = Arc::new(Sem::new(0));
    let s2 = s.clone();
    let h = thread::spawn(move || s2.acquire(None, &mut no_recovery));
    until_waiting(&s, 1);
    s.word().store(1, Release);
    assert_eq!(join_watched(h), Ok(0));
    assert_eq!(s.word().wakes.load(Relaxed), 0);
}

#[test]
fn timed_acquire_gives_up_and_leaves_waiters_set() {
    let s = Sem::new(0);
    let mut b = Budget::new(3);
    let mut probes = 0;
    assert_eq!(
        s.acquire(Some(&mut b), &mut || {
            probes += 1;
            0
        }),
        Err(0)
    );
    assert_eq!(b.asked, 4, "three sleeps, then the expired deadline");
    assert_eq!(probes, 3, "a probe after every sleep that found nothing");
    assert_eq!(s.word().load(Relaxed), WAITERS);
    // A deadline that expires before any sleep announces nothing.
    let s = Sem::new(0);
    assert_eq!(
        s.acquire(Some(&mut Budget::new(0)), &mut no_recovery),
        Err(0)
    );
    assert_eq!(s.word().load(Relaxed), 0);
}

/// What a releaser wrote before `release` is visible to the thread that
/// takes the permit (Miri's race detector checks the payload).
#[test]
fn release_happens_before_the_acquire() {
    struct Shared {
        s: RawSemaphore<AtomicU32>,
        data: UnsafeCell<u64>,
    }
    // SAFETY: `data` is written before `release` and read after the
    // acquire that took that permit.
    unsafe impl Sync for Shared {}
    let rounds = if cfg!(miri) { 3 } else { 200 };
    for i in 0..rounds {
        let sh = Arc::new(Shared {
            s: RawSemaphore::new(0),
            data: UnsafeCell::new(0),
        });
        let s2 = sh.clone();
        let h = thread::spawn(move || {
            // SAFETY: only this thread writes, before `release`.
            unsafe { *s2.data.get() = i + 1 };
            s2.s.release(1, 1).unwrap();
        });
        assert_eq!(sh.s.acquire(None, &mut no_recovery), Ok(0));
        // SAFETY: after the acquire, ordered after the write.
        assert_eq!(unsafe { *sh.data.get() }, i + 1);
        h.join().unwrap();
    }
}

/// A table of dead ids, read with `Acquire` (the dying thread's `Release`
/// store stands for its exit).
fn judge(dead: &[AtomicBool]) -> impl FnMut(u32) -> bool + '_ {
    |tid| dead.get(tid as usize).is_some_and(|d| d.load(Acquire))
}

fn words(n: usize) -> Vec<AtomicU32> {
    (0..n).map(|_| AtomicU32::new(0)).collect()
}

#[test]
fn records_claim_adopt_and_reclaim() {
    let dead: [AtomicBool; 8] = Default::default();
    let w = words(3);
    let r = Records::new(&w);
    assert_eq!(r.capacity(), 3);
    assert_eq!(r.claim(1, judge(&dead)), Some(0));
    assert_eq!(r.claim(2, judge(&dead)), Some(1));
    assert_eq!(
        r.claim(1, judge(&dead)),
        Some(0),
        "its own idle record again"
    );
    r.set(0, 1, 2);
    assert_eq!(r.get(0), Some(record(1, 2)));
    assert_eq!(r.claim(3, judge(&dead)), Some(2));
    assert_eq!(r.claim(4, judge(&dead)), None, "full of live owners");
    dead[3].store(true, Release);
    dead[1].store(true, Release);
    assert_eq!(
        r.claim(4, judge(&dead)),
        Some(2),
        "a dead owner's idle record, not the one that holds permits"
    );
    r.set(7, 4, 1); // out of range: nothing
    assert_eq!(r.get(7), None);
}

#[test]
fn a_dead_holders_permits_come_back_once() {
    let dead: [AtomicBool; 8] = Default::default();
    let s = Sem::new(3);
    let w = words(4);
    let r = Records::new(&w);
    // Holder 5 takes two permits through guards, holder 6 one.
    for (tid, k) in [(5, 2), (6, 1)] {
        let i = r.claim(tid, judge(&dead)).unwrap();
        for held in 1..=k {
            assert!(s.try_acquire());
            r.set(i, tid, held);
        }
    }
    assert_eq!(s.value(), 0);
    assert_eq!(r.recover(&s, 3, judge(&dead)), 0, "nobody is dead");
    dead[5].store(true, Release);
    assert_eq!(r.recover(&s, 3, judge(&dead)), 2);
    assert_eq!(s.value(), 2);
    assert_eq!(r.recover(&s, 3, judge(&dead)), 0, "exactly once");
    assert_eq!(r.get(0), Some(0), "the record is free again");
    // A waiter learns of the recovery it made.
    s.try_acquire();
    s.try_acquire();
    dead[6].store(true, Release);
    let got = s.acquire(None, &mut || r.recover(&s, 3, judge(&dead)));
    assert_eq!(got, Ok(1), "recovered one, took it");
    assert_eq!(s.value(), 0);
}

#[test]
fn concurrent_probers_recover_each_record_once() {
    let rounds = if cfg!(miri) { 2 } else { 50 };
    for _ in 0..rounds {
        let dead: [AtomicBool; 8] = Default::default();
        let s = Sem::new(4);
        let w = words(4);
        let r = Records::new(&w);
        for tid in 1..=4 {
            let i = r.claim(tid, judge(&dead)).unwrap();
            assert!(s.try_acquire());
            r.set(i, tid, 1);
        }
        for d in &dead {
            d.store(true, Release);
        }
        let total: u32 = thread::scope(|sc| {
            let hs: Vec<_> = (0..3)
                // A bound far above the permits: a record returned twice
                // would show.
                .map(|_| sc.spawn(|| r.recover(&s, 100, judge(&dead))))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(total, 4);
        assert_eq!(s.value(), 4, "never more than the permits taken");
    }
}

/// Any count word or record a peer may have written: nothing panics, loops
/// or overflows, the bound is never exceeded by a release or a recovery.
#[test]
fn every_word_value_is_handled() {
    let mut values = vec![0, 1, u32::MAX, VALUE, WAITERS, WAITERS | 1, MAX_VALUE - 1];
    values.extend((0..16).map(|k| 1u32.rotate_left(k * 2 + 1) | (k & 3)));
    for &v in &values {
        let s = Sem::new(0);
        s.word().store(v, Relaxed);
        assert_eq!(s.value(), v & VALUE);
        let took = s.try_acquire();
        assert_eq!(took, v & VALUE != 0, "{v:#x}");
        let _ = s.release(1, 5);
        assert!(s.value() <= (v & VALUE).max(5), "{v:#x}");
        assert!(s.release_capped(u32::MAX, 7) <= 7);
        let _ = s.acquire(Some(&mut Budget::new(1)), &mut no_recovery);
        // Records holding anything, by anybody, dead.
        let w = words(2);
        w[0].store(v, Relaxed);
        w[1].store(!v, Relaxed);
        let r = Records::new(&w);
        let s = Sem::new(1);
        let back = r.recover(&s, 4, |_| true);
        assert!(back <= 3 && s.value() <= 4, "{v:#x}: {back}");
        let _ = r.claim(9, |_| true);
    }
    assert_eq!(
        record(u32::MAX, u32::MAX),
        REC_TID | (REC_HELD_MAX << REC_HELD_SHIFT)
    );
}
