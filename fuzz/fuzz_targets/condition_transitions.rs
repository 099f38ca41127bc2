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

use std::sync::atomic::Ordering;

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use shmsync::raw::RawCondvar;
use shmsync_fuzz::{Budget, Rules};

/// A waiter sleeps on its ticket; every wake, `wake_n` included, is
/// logged with its `n`.
struct ConditionRules;

impl Rules for ConditionRules {
    const WAIT_VALUE_MSG: &'static str = "sleeps on the ticket, which the word still holds";
    const LOG_WAKE_N: bool = true;
}

type FakeWord = shmsync_fuzz::FakeWord<ConditionRules>;

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
