//! Drives the production event state machine (`shmsync::raw::RawEvent`)
//! on a deterministic, single-threaded fake word with an arbitrary
//! sequence of `set`, `clear`, `is_set`, timed `wait`s and a peer that
//! overwrites the word with any value between any two steps.
//!
//! The event's behaviour is a function of the word alone, so a reference
//! model of the word (`src/raw/event.rs`, "The word") predicts every step
//! exactly, scribbled or not: the result of every call, the word after it,
//! the wakes issued (one `wake_all` exactly when `set` raises the flag of a
//! word with `WAITERS`) and the sleeps of a wait (one per granted slice of
//! its deadline, none on a set word). Nothing may panic or overflow (built
//! with debug assertions and overflow checks: `cargo fuzz run -a`), and
//! the fake `wait` returns at once, so a wait that did not end when its
//! deadline did would hang the target.
//!
//! ```sh
//! cargo +nightly fuzz run -a event_transitions -- -max_total_time=60
//! ```
#![no_main]

use std::sync::atomic::Ordering;

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use shmsync::raw::event::{GEN_MASK, GEN_ONE, SET, WAITERS};
use shmsync::raw::RawEvent;
use shmsync_fuzz::{Budget, Rules};

/// An event wakes everybody, never one.
struct EventRules;

impl Rules for EventRules {
    const NO_WAKE_ONE: Option<&'static str> = Some("an event wakes everybody, never one");
}

type FakeWord = shmsync_fuzz::FakeWord<EventRules>;

#[derive(Debug, Arbitrary)]
enum Op {
    Set,
    Clear,
    IsSet,
    /// A wait whose deadline grants this many slices (capped at 16).
    Wait(u8),
    /// A peer writes the word.
    Scribble(u32),
}

fuzz_target!(|ops: Vec<Op>| {
    let e = RawEvent::<FakeWord>::new();
    let w = e.word();
    let mut m: u32 = 0;
    for op in ops {
        let (waits, wakes) = (w.waits.get(), w.wake_all.get());
        let (mut want_waits, mut want_wakes) = (waits, wakes);
        match op {
            Op::Set => {
                let raised = m & SET == 0;
                assert_eq!(e.set(), raised);
                if raised {
                    want_wakes += u32::from(m & WAITERS != 0);
                    m = ((m & GEN_MASK).wrapping_add(GEN_ONE) & GEN_MASK) | SET;
                }
            }
            Op::Clear => {
                assert_eq!(e.clear(), m & SET != 0);
                m &= !SET;
            }
            Op::IsSet => assert_eq!(e.is_set(), m & SET != 0),
            Op::Wait(k) => {
                let k = k % 17;
                let set = m & SET != 0;
                assert_eq!(e.wait(Some(&mut Budget(k))), set);
                if !set {
                    m |= WAITERS;
                    want_waits += u32::from(k);
                }
            }
            Op::Scribble(v) => {
                w.v.store(v, Ordering::Relaxed);
                m = v;
            }
        }
        assert_eq!(w.v.load(Ordering::Relaxed), m, "the word after {op:?}");
        assert_eq!(w.waits.get(), want_waits, "sleeps in {op:?}");
        assert_eq!(w.wake_all.get(), want_wakes, "wakes in {op:?}");
    }
});
