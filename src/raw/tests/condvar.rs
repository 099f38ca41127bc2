//! Unit tests of [`RawCondvar`] on heap memory, with the production word
//! (and [`Spy`], to count its system calls) and a [`RawMutex`] as the
//! lock. Run under Miri as the rest of `src/raw/tests.rs`.

use core::cell::UnsafeCell;
use core::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread;

use super::{id, until, Budget, Spy};
use crate::raw::{Holds, RawCondvar, RawMutex};

/// A lock, a condition and data protected by the lock.
struct Shared {
    m: RawMutex<core::sync::atomic::AtomicU32>,
    c: RawCondvar<Spy>,
    data: UnsafeCell<u64>,
}

// SAFETY: `data` is only accessed by a thread that holds `m`.
unsafe impl Sync for Shared {}

impl Shared {
    fn new() -> Arc<Shared> {
        Arc::new(Shared {
            m: RawMutex::new(),
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

    /// Holding the lock: the data.
    fn get(&self) -> u64 {
        // SAFETY: the caller holds `m`.
        unsafe { *self.data.get() }
    }

    /// Holding the lock: sets the data.
    fn set(&self, v: u64) {
        // SAFETY: the caller holds `m`.
        unsafe { *self.data.get() = v };
    }

    /// The whole wait protocol (holding the lock once): returns holding
    /// it again, and whether the sequence moved.
    fn wait(&self, me: u32, h: Holds, budget: Option<&mut Budget>) -> (Holds, bool) {
        let s = self.c.enter();
        self.unlock(me, h);
        let moved = match budget {
            Some(b) => self.c.sleep(s, Some(b)),
            None => self.c.sleep(s, None),
        };
        self.c.leave();
        (self.lock(me), moved)
    }

    /// Waits (lock held) until the data is at least `v`.
    fn wait_for(&self, me: u32, v: u64) {
        let mut h = self.lock(me);
        while self.get() < v {
            h = self.wait(me, h, None).0;
        }
        self.unlock(me, h);
    }
}

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

/// Until `n` threads are counted as waiters and `n` sleeps were entered.
fn until_waiting(s: &Shared, n: u32) {
    until(|| s.c.waiters().load(Relaxed) >= n && s.c.seq().waits.load(Relaxed) >= n);
}

#[test]
fn notify_without_waiters_writes_nothing() {
    let c = RawCondvar::<Spy>::new();
    assert!(!c.notify(1));
    assert!(!c.notify(u32::MAX));
    assert!(!c.notify_all());
    assert_eq!(c.seq().load(Relaxed), 0, "nothing written");
    assert_eq!(c.seq().wakes.load(Relaxed), 0, "no system call");
    // A waiter that entered and left leaves no trace.
    let s = c.enter();
    c.leave();
    assert_eq!(s, 0);
    assert!(!c.notify_all());
    assert_eq!(c.waiters().load(Relaxed), 0);
}

#[test]
fn notify_releases_a_sleeper_and_orders_the_data() {
    let rounds = if cfg!(miri) { 2 } else { 100 };
    for i in 1..=rounds {
        let s = Shared::new();
        let s2 = s.clone();
        let w = thread::spawn(move || s2.wait_for(7, i));
        until_waiting(&s, 1);
        let h = s.lock(1);
        s.set(i);
        assert!(s.c.notify(1), "a waiter is counted");
        s.unlock(1, h);
        join_watched(w);
        assert_eq!(s.c.waiters().load(Relaxed), 0);
    }
}

#[test]
fn notify_outside_the_lock_after_the_change_is_not_lost() {
    let rounds = if cfg!(miri) { 3 } else { 300 };
    for i in 1..=rounds {
        let s = Shared::new();
        let s2 = s.clone();
        // No waiting for the waiter: every interleaving of its check with
        // the change and the notify.
        let w = thread::spawn(move || s2.wait_for(7, i));
        let h = s.lock(1);
        s.set(i);
        s.unlock(1, h);
        s.c.notify(1);
        join_watched(w);
    }
}

#[test]
fn notify_all_releases_every_sleeper_with_one_wake() {
    let n = if cfg!(miri) { 2 } else { 4 };
    let s = Shared::new();
    let ws: Vec<_> = (0..n)
        .map(|k| {
            let s = s.clone();
            thread::spawn(move || s.wait_for(10 + k, 1))
        })
        .collect();
    until_waiting(&s, n);
    let h = s.lock(1);
    s.set(1);
    assert!(s.c.notify_all());
    s.unlock(1, h);
    for w in ws {
        join_watched(w);
    }
    assert_eq!(s.c.seq().wakes.load(Relaxed), 1);
    assert_eq!(s.c.seq().load(Relaxed), 1, "one advance");
}

#[test]
fn notify_n_wakes_and_the_rest_return_within_a_slice() {
    let n = if cfg!(miri) { 2 } else { 3 };
    let s = Shared::new();
    let ws: Vec<_> = (0..n)
        .map(|k| {
            let s = s.clone();
            thread::spawn(move || {
                let h = s.lock(10 + k);
                let (h, moved) = s.wait(10 + k, h, None);
                s.unlock(10 + k, h);
                moved
            })
        })
        .collect();
    until_waiting(&s, n);
    assert!(s.c.notify(1));
    // Every waiter present returns (the others spuriously, at their next
    // slice), each having seen the sequence move.
    for w in ws {
        assert!(join_watched(w));
    }
    assert_eq!(s.c.seq().wakes.load(Relaxed), 1);
}

#[test]
fn a_lost_wake_delays_the_sleeper_but_does_not_strand_it() {
    // A notifier killed between its increment and its wake.
    let s = Shared::new();
    let s2 = s.clone();
    let w = thread::spawn(move || s2.wait_for(7, 1));
    until_waiting(&s, 1);
    let h = s.lock(1);
    s.set(1);
    s.unlock(1, h);
    s.c.seq().fetch_add(1, Relaxed);
    join_watched(w);
    assert_eq!(s.c.seq().wakes.load(Relaxed), 0);
}

#[test]
fn timed_sleep_gives_up_after_its_deadline() {
    let s = Shared::new();
    let h = s.lock(1);
    let mut b = Budget::new(3);
    let (h, moved) = s.wait(1, h, Some(&mut b));
    s.unlock(1, h);
    assert!(!moved);
    assert_eq!(b.asked, 4, "three sleeps, then the expired deadline");
    assert!(s.c.seq().waits.load(Relaxed) >= 3);
    assert_eq!(s.c.waiters().load(Relaxed), 0, "left");
}

#[test]
fn a_dead_waiter_costs_a_wake_but_blocks_nobody() {
    let c = RawCondvar::<Spy>::new();
    c.enter(); // and never leaves: killed
    assert!(c.notify(1), "counted");
    assert!(c.notify_all());
    assert_eq!(c.seq().wakes.load(Relaxed), 2);
    assert_eq!(c.seq().load(Relaxed), 2);
}

/// Any pair of words a peer may have written: nothing panics, wraps the
/// count or loops, and a waiter still returns once notified.
#[test]
fn every_word_value_is_handled() {
    for (seq, waiters) in [
        (0, 0),
        (u32::MAX, 0),
        (0, u32::MAX),
        (u32::MAX, u32::MAX),
        (0x8000_0000, 1),
        (7, 0x7fff_ffff),
    ] {
        let c = RawCondvar::<Spy>::new();
        c.seq().store(seq, Relaxed);
        c.waiters().store(waiters, Relaxed);
        let s = c.enter();
        assert_eq!(s, seq);
        assert_eq!(
            c.waiters().load(Relaxed),
            waiters.saturating_add(1),
            "saturating"
        );
        assert!(!c.sleep(s, Some(&mut Budget::new(1))));
        assert!(c.notify(1));
        assert_eq!(c.seq().load(Relaxed), seq.wrapping_add(1));
        assert!(
            c.sleep(s, Some(&mut Budget::new(0))),
            "moved: returns at once"
        );
        c.leave();
        c.leave();
        assert_eq!(
            c.waiters().load(Relaxed),
            waiters.saturating_add(1).saturating_sub(2)
        );
        c.waiters().store(0, Relaxed);
        c.leave();
        assert_eq!(c.waiters().load(Relaxed), 0, "never wraps below zero");
    }
}
