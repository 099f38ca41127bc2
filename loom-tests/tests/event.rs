//! The event (`shmsync::raw::RawEvent`): no lost wake-up, and
//! happens-before from a `set` to a waiter that returns.
//!
//! Timed waits sleep until woken here ([`TimeoutLate`]): the production
//! waiter sleeps in bounded slices, so with timeouts that fire a lost wake
//! would only cost time; with every slice ending late, a lost wake leaves
//! the waiter blocked, which loom reports as a deadlock.
//!
//! Seeded bugs checked against this file (`--features <bug> --test event`),
//! with loom's verdict:
//!
//! | feature | loom's verdict |
//! |---|---|
//! | `bug-lost-wake` | every test: `deadlock; threads = [..Blocked..]` |
//! | `bug-weak-release`, `bug-weak-acquire` | every test: `Causality violation: Concurrent read and write accesses.` |
//! | `bug-split-cas` | `one_waiter`, `two_waiters`, `set_clear_set_with_a_waiter`: `deadlock` (a waiter's `WAITERS` lost to the set's non-atomic CAS); `set_then_clear_releases_the_sleeper` passes |
//! | `bug-event-no-generation` | `set_then_clear_releases_the_sleeper`: `deadlock`; the others pass |
//! | the lock's bit bugs (`bug-no-waiters-bit` ..) | pass (bits 30–31 of an event word are high generation bits, not reached) |
//!
//! Runtime (`LOOM_MAX_PREEMPTIONS=3`, `--release`): < 0.5 s in all (at most
//! ≈ 1 900 executions, `two_waiters`).
#![cfg(loom)]

use core::sync::atomic::Ordering::Relaxed;

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;
use shmsync::raw::event::WAITERS;
use shmsync::raw::{FutexWord, RawEvent};
use shmsync_loom_tests::{model, LoomFutex, TimeoutLate, Unseeded};

/// An event and data published through it.
struct Shared {
    e: RawEvent<LoomFutex<TimeoutLate>>,
    data: UnsafeCell<u32>,
}

// SAFETY: `data` is written before `set` and read only after a `wait`
// that returned because of that set; loom checks exactly that.
unsafe impl Sync for Shared {}

impl Shared {
    fn new() -> Arc<Shared> {
        Arc::new(Shared {
            e: RawEvent::new(),
            data: UnsafeCell::new(0),
        })
    }

    /// The setter's publication (before `set`).
    fn publish(&self, v: u32) {
        // SAFETY: only the setter writes, before its `set`.
        self.data.with_mut(|p| unsafe { *p = v });
    }

    /// A returning waiter's read.
    fn read(&self) -> u32 {
        // SAFETY: after a `wait` that returned: ordered after the write.
        self.data.with(|p| unsafe { *p })
    }

    /// The word, as the model sees it (no seeded bug).
    fn word(&self) -> u32 {
        self.e.word().atomic().load_unseeded(Relaxed)
    }
}

/// One waiter, one setter: the waiter returns and sees the payload.
#[test]
fn one_waiter() {
    model("one_waiter", || {
        let s = Shared::new();
        let s2 = s.clone();
        let w = thread::spawn(move || {
            assert!(s2.e.wait(None));
            assert_eq!(s2.read(), 7);
        });
        s.publish(7);
        assert!(s.e.set());
        w.join().unwrap();
        assert!(s.e.is_set());
    });
}

/// Two waiters, both released by one `set`, both see the payload.
#[test]
fn two_waiters() {
    model("two_waiters", || {
        let s = Shared::new();
        let ws: Vec<_> = (0..2)
            .map(|_| {
                let s = s.clone();
                thread::spawn(move || {
                    assert!(s.e.wait(None));
                    assert_eq!(s.read(), 9);
                })
            })
            .collect();
        s.publish(9);
        s.e.set();
        for w in ws {
            w.join().unwrap();
        }
        assert_eq!(s.word() & WAITERS, 0, "set takes WAITERS off");
    });
}

/// A waiter that has announced itself (the word shows `WAITERS`) before a
/// `set` returns `true` even if a `clear` follows at once, and sees the
/// payload (its last read may be of the clear's value: the release
/// sequence of the set).
#[test]
fn set_then_clear_releases_the_sleeper() {
    model("set_then_clear_releases_the_sleeper", || {
        let s = Shared::new();
        let s2 = s.clone();
        let w = thread::spawn(move || {
            assert!(s2.e.wait(None));
            assert_eq!(s2.read(), 5);
        });
        while s.word() & WAITERS == 0 {
            thread::yield_now();
        }
        s.publish(5);
        s.e.set();
        s.e.clear();
        w.join().unwrap();
        assert!(!s.e.is_set());
    });
}

/// A setter and a clearer race a waiter: whatever the order, the waiter
/// never blocks for good once the event is set for the last time, and a
/// waiter that returns sees the payload.
#[test]
fn set_clear_set_with_a_waiter() {
    model("set_clear_set_with_a_waiter", || {
        let s = Shared::new();
        let s2 = s.clone();
        let w = thread::spawn(move || {
            assert!(s2.e.wait(None));
            assert_eq!(s2.read(), 3);
        });
        let s3 = s.clone();
        let c = thread::spawn(move || {
            s3.e.clear();
        });
        s.publish(3);
        s.e.set();
        c.join().unwrap();
        s.e.set();
        w.join().unwrap();
        assert!(s.e.is_set());
    });
}
