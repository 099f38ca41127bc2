//! Drives the production condition-variable state machine
//! (`shmsync::raw::RawCondvar`) on deterministic, single-threaded fake
//! words with an arbitrary sequence of `enter`, `sleep` (timed, on any
//! ticket a waiter got), `leave`, `notify(n)`, `notify_all` and a peer
//! that overwrites either word with any value between any two steps.
//!
//! Its behaviour is a function of the two words alone, so a reference
//! model of them (`src/raw/condvar.rs`, "The words" and "Protocol")
//! predicts every step exactly, scribbled or not: the ticket `enter`
//! returns, the words after each step (the count saturating both ways,
//! the sequence wrapping), the wakes (`FUTEX_WAKE(n)` on the sequence
//! exactly when a notify finds waiters and `n > 0`, none on the count) and
//! the sleeps of a `sleep` (one per granted slice while the sequence still
//! holds its ticket, none once it moved). Nothing may panic or overflow
//! (built with debug assertions and overflow checks: `cargo fuzz run
//! -a`), and the fake `wait` returns at once, so a sleep that did not end
//! when its deadline did would hang the target.
//!
//! ```sh
//! cargo +nightly fuzz run -a condition_transitions -- -max_total_time=60
//! ```
#![no_main]

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use shmsync::raw::{Deadline, FutexWord, RawCondvar};

/// A single-threaded futex word: `core`'s `AtomicU32`, and counters of the
/// sleeps and wakes (a sleep returns at once with the word unchanged).
#[derive(Debug)]
struct FakeWord {
    v: AtomicU32,
    waits: Cell<u32>,
    /// The `n` of every `wake_n` / `wake_one` (1) / `wake_all` (`u32::MAX`).
    wakes: RefCell<Vec<u32>>,
}

impl FakeWord {
    fn wake(&self, n: u32) {
        self.wakes.borrow_mut().push(n);
    }

    fn take_wakes(&self) -> Vec<u32> {
        self.wakes.take()
    }
}

impl FutexWord for FakeWord {
    type Atomic = AtomicU32;

    fn new(v: u32) -> Self {
        FakeWord {
            v: AtomicU32::new(v),
            waits: Cell::new(0),
            wakes: RefCell::new(Vec::new()),
        }
    }

    fn atomic(&self) -> &AtomicU32 {
        &self.v
    }

    fn wait(&self, expected: u32, timeout: Option<Duration>) {
        assert_eq!(
            self.v.load(Ordering::Relaxed),
            expected,
            "sleeps on the ticket, which the word still holds"
        );
        assert!(timeout.is_some(), "every sleep of a waiter is bounded");
        self.waits.set(self.waits.get() + 1);
    }

    fn wake_one(&self) {
        self.wake(1);
    }

    fn wake_all(&self) {
        self.wake(u32::MAX);
    }

    fn wake_n(&self, n: u32) {
        self.wake(n);
    }
}

/// A deadline that grants `left` slices.
struct Budget(u8);

impl Deadline for Budget {
    fn remaining(&mut self) -> Option<Duration> {
        if self.0 == 0 {
            return None;
        }
        self.0 -= 1;
        Some(Duration::from_millis(1))
    }
}

#[derive(Debug, Arbitrary)]
enum Op {
    /// A waiter enters (holding the lock): its ticket is kept.
    Enter,
    /// Waiter `i % waiters` (if any) sleeps on its ticket with a deadline
    /// of this many slices (capped at 16).
    Sleep(u8, u8),
    /// A waiter leaves (maybe one that never entered: a count a peer
    /// lowered).
    Leave,
    Notify(u32),
    NotifyAll,
    /// A peer writes the sequence.
    ScribbleSeq(u32),
    /// A peer writes the count.
    ScribbleWaiters(u32),
}

fuzz_target!(|ops: Vec<Op>| {
    let c = RawCondvar::<FakeWord>::new();
    let (seq, cnt) = (c.seq(), c.waiters());
    let (mut m_seq, mut m_cnt) = (0u32, 0u32);
    let mut tickets: Vec<u32> = Vec::new();
    for op in ops {
        let waits = seq.waits.get();
        let mut want_waits = waits;
        let mut want_wakes = Vec::new();
        match op {
            Op::Enter => {
                assert_eq!(c.enter(), m_seq, "the ticket is the sequence");
                tickets.push(m_seq);
                m_cnt = m_cnt.saturating_add(1);
            }
            Op::Sleep(i, k) => {
                if !tickets.is_empty() {
                    let t = tickets[usize::from(i) % tickets.len()];
                    let k = k % 17;
                    let moved = m_seq != t;
                    assert_eq!(c.sleep(t, Some(&mut Budget(k))), moved);
                    if !moved {
                        want_waits += u32::from(k);
                    }
                }
            }
            Op::Leave => {
                c.leave();
                m_cnt = m_cnt.saturating_sub(1);
            }
            Op::Notify(n) => {
                let any = n > 0 && m_cnt != 0;
                assert_eq!(c.notify(n), any);
                if any {
                    m_seq = m_seq.wrapping_add(1);
                    want_wakes.push(n);
                }
            }
            Op::NotifyAll => {
                let any = m_cnt != 0;
                assert_eq!(c.notify_all(), any);
                if any {
                    m_seq = m_seq.wrapping_add(1);
                    want_wakes.push(u32::MAX);
                }
            }
            Op::ScribbleSeq(v) => {
                seq.v.store(v, Ordering::Relaxed);
                m_seq = v;
            }
            Op::ScribbleWaiters(v) => {
                cnt.v.store(v, Ordering::Relaxed);
                m_cnt = v;
            }
        }
        assert_eq!(
            seq.v.load(Ordering::Relaxed),
            m_seq,
            "sequence after {op:?}"
        );
        assert_eq!(cnt.v.load(Ordering::Relaxed), m_cnt, "count after {op:?}");
        assert_eq!(seq.waits.get(), want_waits, "sleeps in {op:?}");
        assert_eq!(seq.take_wakes(), want_wakes, "wakes in {op:?}");
        assert_eq!(cnt.waits.get(), 0, "nobody sleeps on the count");
        assert!(cnt.take_wakes().is_empty(), "nobody wakes the count");
    }
});
