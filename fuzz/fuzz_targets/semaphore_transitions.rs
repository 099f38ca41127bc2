//! Drives the production semaphore state machine
//! (`shmsync::raw::RawSemaphore` and its holder `Records`) on a
//! deterministic, single-threaded fake word with an arbitrary sequence of
//! acquires (immediate and timed), releases (checked and capped), record
//! claims, stores and recoveries, and a peer that overwrites the count word
//! or any record with any value between any two steps.
//!
//! The semaphore's behaviour is a function of the words alone, so a
//! reference model of them (`src/raw/semaphore.rs`, "The count word" and
//! "Holder records") predicts every step exactly, scribbled or not: the
//! result of every call, the words after it, the wakes issued (one
//! `wake_one` for a single permit, one `wake_all` for more, exactly when
//! `WAITERS` was set), and the sleeps and probes of a timed acquire (one
//! each per granted slice). Nothing may panic or overflow (built with
//! debug assertions and overflow checks: `cargo fuzz run -a`), the value
//! never exceeds the bound through a release or a recovery, and the fake
//! `wait` returns at once, so an acquire that did not end when its
//! deadline did would hang the target.
//!
//! ```sh
//! cargo +nightly fuzz run -a semaphore_transitions -- -max_total_time=60
//! ```
#![no_main]

use std::cell::Cell;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use shmsync::raw::semaphore::{
    record, RawSemaphore, Records, MAX_VALUE, REC_HELD_SHIFT, REC_TID, VALUE, WAITERS,
};
use shmsync::raw::{Deadline, FutexWord};

/// A single-threaded futex word: `core`'s `AtomicU32`, and counters of the
/// sleeps and wakes (a sleep returns at once with the word unchanged).
#[derive(Debug)]
struct FakeWord {
    v: AtomicU32,
    waits: Cell<u32>,
    wake_one: Cell<u32>,
    wake_all: Cell<u32>,
}

impl FutexWord for FakeWord {
    type Atomic = AtomicU32;

    fn new(v: u32) -> Self {
        FakeWord {
            v: AtomicU32::new(v),
            waits: Cell::new(0),
            wake_one: Cell::new(0),
            wake_all: Cell::new(0),
        }
    }

    fn atomic(&self) -> &AtomicU32 {
        &self.v
    }

    fn wait(&self, expected: u32, timeout: Option<Duration>) {
        assert_eq!(
            self.v.load(Ordering::Relaxed),
            expected,
            "sleeps on the word it read"
        );
        assert!(expected & WAITERS != 0, "sleeps only once announced");
        assert!(timeout.is_some(), "every sleep of a waiter is bounded");
        self.waits.set(self.waits.get() + 1);
    }

    fn wake_one(&self) {
        self.wake_one.set(self.wake_one.get() + 1);
    }

    fn wake_all(&self) {
        self.wake_all.set(self.wake_all.get() + 1);
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

/// Records in the target.
const RECORDS: usize = 4;

#[derive(Debug, Arbitrary)]
enum Op {
    TryAcquire,
    /// A timed acquire whose deadline grants this many slices (capped at
    /// 16); every probe returns nothing.
    Acquire(u8),
    Release {
        n: u32,
        bound: u32,
    },
    ReleaseCapped {
        n: u32,
        bound: u32,
    },
    /// A claim by thread `tid` (made non-zero and below 2^22), judging the
    /// owners in `dead` (bit `tid % 32`) dead.
    Claim {
        tid: u32,
        dead: u32,
    },
    /// An owner's store of record `i` (any index).
    Set {
        i: u8,
        tid: u32,
        held: u32,
    },
    /// A recovery pass judging the owners in `dead` dead.
    Recover {
        dead: u32,
        bound: u32,
    },
    /// A peer writes the count word.
    ScribbleCount(u32),
    /// A peer writes record `i % RECORDS`.
    ScribbleRecord(u8, u32),
}

/// The model of one release of `n` under `bound`: the new word and the
/// wakes, or `None` if refused.
fn release_model(m: u32, n: u32, bound: u32) -> Option<(u32, u32, u32)> {
    let v = (m & VALUE).checked_add(n)?;
    if v > bound.min(MAX_VALUE) {
        return None;
    }
    let w = m & WAITERS != 0;
    Some((v, u32::from(w && n == 1), u32::from(w && n != 1)))
}

fuzz_target!(|ops: Vec<Op>| {
    let s = RawSemaphore::<FakeWord>::new(0);
    let w = s.word();
    let recs: Vec<AtomicU32> = (0..RECORDS).map(|_| AtomicU32::new(0)).collect();
    let r = Records::new(&recs);
    let mut m: u32 = 0;
    let mut mr = [0u32; RECORDS];
    for op in ops {
        let (waits, ones, alls) = (w.waits.get(), w.wake_one.get(), w.wake_all.get());
        let (mut want_waits, mut want_ones, mut want_alls) = (waits, ones, alls);
        match op {
            Op::TryAcquire => {
                let took = m & VALUE != 0;
                assert_eq!(s.try_acquire(), took);
                if took {
                    m -= 1;
                }
            }
            Op::Acquire(k) => {
                let k = k % 17;
                let mut probes = 0u32;
                let got = s.acquire(Some(&mut Budget(k)), &mut || {
                    probes += 1;
                    0
                });
                if m & VALUE != 0 {
                    assert_eq!(got, Ok(0));
                    m -= 1;
                    assert_eq!(probes, 0);
                } else {
                    assert_eq!(got, Err(0));
                    if k > 0 {
                        m |= WAITERS;
                    }
                    want_waits += u32::from(k);
                    assert_eq!(probes, u32::from(k), "a probe after every sleep");
                }
            }
            Op::Release { n, bound } => match release_model(m, n, bound) {
                Some((nm, one, all)) => {
                    assert_eq!(s.release(n, bound), Ok(()));
                    m = nm;
                    want_ones += one;
                    want_alls += all;
                }
                None => assert!(s.release(n, bound).is_err()),
            },
            Op::ReleaseCapped { n, bound } => {
                let room = bound.min(MAX_VALUE).saturating_sub(m & VALUE);
                let k = n.min(room);
                assert_eq!(s.release_capped(n, bound), k);
                if k > 0 {
                    let (nm, one, all) = release_model(m, k, bound).expect("fits");
                    m = nm;
                    want_ones += one;
                    want_alls += all;
                }
            }
            Op::Claim { tid, dead } => {
                let tid = (tid & REC_TID).max(1);
                let is_dead = |t: u32| dead & (1 << (t % 32)) != 0;
                let mine = record(tid, 0);
                let want = mr.iter().position(|&x| x == mine).or_else(|| {
                    mr.iter().position(|&x| x == 0).or_else(|| {
                        mr.iter().position(|&x| {
                            let owner = x & REC_TID;
                            x >> REC_HELD_SHIFT == 0 && owner != tid && is_dead(owner)
                        })
                    })
                });
                assert_eq!(r.claim(tid, is_dead), want);
                if let Some(i) = want {
                    mr[i] = mine;
                }
            }
            Op::Set { i, tid, held } => {
                r.set(usize::from(i), tid, held);
                if let Some(x) = mr.get_mut(usize::from(i)) {
                    *x = record(tid, held);
                }
            }
            Op::Recover { dead, bound } => {
                let is_dead = |t: u32| dead & (1 << (t % 32)) != 0;
                let before = m & VALUE;
                let mut want = 0u32;
                for x in mr.iter_mut() {
                    let (owner, held) = (*x & REC_TID, *x >> REC_HELD_SHIFT);
                    if owner == 0 || held == 0 || !is_dead(owner) {
                        continue;
                    }
                    *x = 0;
                    let room = bound.min(MAX_VALUE).saturating_sub(m & VALUE);
                    let k = held.min(room);
                    if k > 0 {
                        let (nm, one, all) = release_model(m, k, bound).expect("fits");
                        m = nm;
                        want_ones += one;
                        want_alls += all;
                        want += k;
                    }
                }
                assert_eq!(r.recover(&s, bound, is_dead), want);
                assert!(
                    m & VALUE <= before.max(bound.min(MAX_VALUE)),
                    "a recovery never passes the bound"
                );
            }
            Op::ScribbleCount(v) => {
                w.v.store(v, Ordering::Relaxed);
                m = v;
            }
            Op::ScribbleRecord(i, v) => {
                let i = usize::from(i) % RECORDS;
                recs[i].store(v, Ordering::Relaxed);
                mr[i] = v;
            }
        }
        assert_eq!(w.v.load(Ordering::Relaxed), m, "the count after {op:?}");
        for (i, x) in mr.iter().enumerate() {
            assert_eq!(r.get(i), Some(*x), "record {i} after {op:?}");
        }
        assert_eq!(s.value(), m & VALUE);
        assert_eq!(w.waits.get(), want_waits, "sleeps in {op:?}");
        assert_eq!(w.wake_one.get(), want_ones, "wake_one in {op:?}");
        assert_eq!(w.wake_all.get(), want_alls, "wake_all in {op:?}");
    }
});
