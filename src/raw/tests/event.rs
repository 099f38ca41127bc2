//! Unit tests of [`RawEvent`] on heap memory, with the production word
//! (and [`Spy`], to count its system calls). Run under Miri as the rest of
//! `src/raw/tests.rs`.

use core::cell::UnsafeCell;
use core::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread;

use super::{until, Budget, Spy};
use crate::raw::event::{RawEvent, GEN_MASK, GEN_ONE, SET, WAITERS};

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

/// Until `n` waits have been entered on `e`'s word and it shows `WAITERS`.
fn until_waiting(e: &RawEvent<Spy>, n: u32) {
    until(|| e.word().waits.load(Relaxed) >= n && e.word().load(Relaxed) & WAITERS != 0);
}

#[test]
fn set_clear_is_set_and_no_wake_without_waiters() {
    let e = RawEvent::<Spy>::new();
    assert!(!e.is_set());
    assert!(!e.clear(), "clearing a clear event changes nothing");
    assert!(e.set());
    assert!(e.is_set());
    assert!(!e.set(), "an already set event is left alone");
    assert_eq!(e.word().load(Relaxed), GEN_ONE | SET);
    assert!(e.clear());
    assert!(!e.is_set());
    assert_eq!(
        e.word().load(Relaxed),
        GEN_ONE,
        "clear keeps the generation"
    );
    assert_eq!(e.word().wakes.load(Relaxed), 0, "nobody waited: no wake");
    // A set event: wait returns at once, without sleeping.
    e.set();
    assert!(e.wait(None));
    assert!(e.wait(Some(&mut Budget::new(0))));
    assert_eq!(e.word().waits.load(Relaxed), 0);
}

#[test]
fn set_wakes_every_sleeper_once() {
    let n = if cfg!(miri) { 2 } else { 4 };
    let e = Arc::new(RawEvent::<Spy>::new());
    let hs: Vec<_> = (0..n)
        .map(|_| {
            let e = e.clone();
            thread::spawn(move || e.wait(None))
        })
        .collect();
    until_waiting(&e, n);
    assert!(e.set());
    assert!(!e.set(), "the second set makes no system call");
    for h in hs {
        assert!(join_watched(h));
    }
    assert_eq!(e.word().wakes.load(Relaxed), 1, "one wake for all");
    assert_eq!(e.word().load(Relaxed) & WAITERS, 0, "set takes WAITERS off");
}

#[test]
fn a_set_undone_by_clear_still_releases_the_sleeper() {
    let e = Arc::new(RawEvent::<Spy>::new());
    let e2 = e.clone();
    let h = thread::spawn(move || e2.wait(None));
    until_waiting(&e, 1);
    e.set();
    e.clear();
    assert!(join_watched(h), "a waiter present at the set returns true");
    assert!(!e.is_set());
}

#[test]
fn a_lost_wake_delays_the_sleeper_but_does_not_strand_it() {
    // A setter killed between its CAS and its wake: the flag is up, the
    // WAITERS bit is gone, and nobody wakes the sleeper.
    let e = Arc::new(RawEvent::<Spy>::new());
    let e2 = e.clone();
    let h = thread::spawn(move || e2.wait(None));
    until_waiting(&e, 1);
    let cur = e.word().load(Relaxed);
    e.word().store(((cur & GEN_MASK) + GEN_ONE) | SET, Relaxed);
    assert!(join_watched(h));
    assert_eq!(e.word().wakes.load(Relaxed), 0);
}

#[test]
fn timed_wait_gives_up_after_its_deadline() {
    let e = RawEvent::<Spy>::new();
    let mut b = Budget::new(3);
    assert!(!e.wait(Some(&mut b)));
    assert_eq!(b.asked, 4, "three sleeps, then the expired deadline");
    assert!(e.word().waits.load(Relaxed) >= 3);
    assert!(!e.is_set());
}

#[test]
fn timed_wait_returns_true_when_set_in_time() {
    let e = Arc::new(RawEvent::<Spy>::new());
    let e2 = e.clone();
    let h = thread::spawn(move || e2.wait(Some(&mut Budget::new(u32::MAX))));
    until_waiting(&e, 1);
    e.set();
    assert!(join_watched(h));
}

/// What the setter wrote before `set` is visible to the waiter after
/// `wait` (Miri's race detector checks the payload).
#[test]
fn set_happens_before_the_returning_wait() {
    struct Shared {
        e: RawEvent<core::sync::atomic::AtomicU32>,
        data: UnsafeCell<u64>,
    }
    // SAFETY: `data` is written before `set` and read after `wait`
    // returned, which the event orders.
    unsafe impl Sync for Shared {}
    let rounds = if cfg!(miri) { 3 } else { 200 };
    for i in 0..rounds {
        let s = Arc::new(Shared {
            e: RawEvent::new(),
            data: UnsafeCell::new(0),
        });
        let s2 = s.clone();
        let h = thread::spawn(move || {
            // SAFETY: only this thread writes, before `set`.
            unsafe { *s2.data.get() = i + 1 };
            s2.e.set();
        });
        assert!(s.e.wait(None));
        // SAFETY: after `wait`, ordered after the write by the event.
        assert_eq!(unsafe { *s.data.get() }, i + 1);
        h.join().unwrap();
    }
}

/// Any word a peer may have written: nothing panics, loops or overflows,
/// and the flag ends as asked.
#[test]
fn every_word_value_is_handled() {
    let mut values = vec![0, u32::MAX, GEN_MASK, GEN_MASK | WAITERS, SET, WAITERS];
    values.extend((0..16).map(|k| 1u32.rotate_left(k * 2 + 1) | (k & 3)));
    for v in values {
        let e = RawEvent::<Spy>::new();
        e.word().store(v, Relaxed);
        assert_eq!(e.is_set(), v & SET != 0);
        e.set();
        assert!(e.is_set(), "{v:#x}");
        assert!(e.wait(Some(&mut Budget::new(0))));
        e.clear();
        assert!(!e.is_set(), "{v:#x}");
        assert!(!e.wait(Some(&mut Budget::new(1))), "{v:#x}");
        e.word().store(v, Relaxed);
        e.clear();
        assert!(!e.is_set());
        e.word().store(v, Relaxed);
        assert_eq!(e.wait(Some(&mut Budget::new(0))), v & SET != 0, "{v:#x}");
    }
    // The highest generation wraps to zero.
    let e = RawEvent::<Spy>::new();
    e.word().store(GEN_MASK, Relaxed);
    assert!(e.set());
    assert_eq!(e.word().load(Relaxed), SET);
}
