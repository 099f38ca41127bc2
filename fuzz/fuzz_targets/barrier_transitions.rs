//! Drives the production barrier state machine (`shmsync::raw::RawBarrier`)
//! on a deterministic, single-threaded fake word with an arbitrary
//! sequence of `wait`s (any caller id, any deadline, any set of dead
//! parties), `abort`, `reset`, `withdraw`, the observers, and a peer that
//! overwrites the word or any record with any value between any two steps.
//!
//! On one thread nobody else arrives while a party waits, so a reference
//! model of the word and the records (`src/raw/barrier.rs`, "The word" and
//! "Party records") predicts every step exactly, scribbled or not: the
//! result, the word and every record after it, the wakes (one `wake_all`
//! exactly when a round completes, breaks or is reset with `WAITERS` set)
//! and the sleeps of a wait (one per granted slice of its deadline, or one
//! in all when a recorded party is dead). Nothing may panic, overflow or
//! index out of range (built with debug assertions and overflow checks:
//! `cargo fuzz run -a`), and the fake `wait` returns at once, so a wait
//! that did not end with its deadline would hang the target.
//!
//! ```sh
//! cargo +nightly fuzz run -a barrier_transitions -- -max_total_time=60
//! ```
#![no_main]

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use shmsync::raw::barrier::{
    Broken, BROKEN, COUNT_MASK, GEN_MASK, GEN_ONE, GEN_SHIFT, HIST_MASK, HIST_SHIFT, REC_TAG_SHIFT,
    REC_TID, WAITERS,
};
use shmsync::raw::{FutexWord, Liveness, RawBarrier};
use shmsync_fuzz::{Budget, Rules};

/// A barrier wakes everybody, never one.
struct BarrierRules;

impl Rules for BarrierRules {
    const NO_WAKE_ONE: Option<&'static str> = Some("a barrier wakes everybody, never one");
}

type FakeWord = shmsync_fuzz::FakeWord<BarrierRules>;

/// Parties whose id's low 3 bits are set in the mask are dead.
struct Dead(u8);

fn is_dead(mask: u8, tid: u32) -> bool {
    mask >> (tid & 7) & 1 != 0
}

impl Liveness for Dead {
    fn probe_interval(&mut self, _word: u32) -> Option<Duration> {
        None
    }
    fn owner_is_dead(&mut self, tid: u32) -> bool {
        assert!(tid != 0 && tid <= REC_TID, "probes only recorded TIDs");
        is_dead(self.0, tid)
    }
}

#[derive(Debug, Arbitrary)]
enum Op {
    /// Caller id (made non-zero), slices granted (capped at 8), dead mask.
    Wait(u32, u8, u8),
    Abort,
    Reset,
    Withdraw(u32),
    Observe,
    /// A peer writes the word.
    ScribbleWord(u32),
    /// A peer writes a record (index taken modulo their number).
    ScribbleRecord(u8, u32),
}

#[derive(Debug, Arbitrary)]
struct Input {
    parties: u8,
    ops: Vec<Op>,
}

/// The model: the word and the records.
struct Model {
    m: u32,
    recs: Vec<u32>,
    parties: u32,
    wakes: u32,
}

fn tag(gen: u32) -> u32 {
    ((gen >> GEN_SHIFT) & (u32::MAX >> REC_TAG_SHIFT)) << REC_TAG_SHIFT
}

impl Model {
    fn break_round(&mut self) {
        if self.m & BROKEN == 0 {
            self.wakes += u32::from(self.m & WAITERS != 0);
            self.m = (self.m | BROKEN) & !WAITERS;
        }
    }

    /// Whether a waiter `me` would find a dead recorded party.
    fn anyone_dead(&self, me: u32, dead: u8) -> bool {
        let n = self.parties as usize;
        let gen = self.m & GEN_MASK;
        let bank = ((gen >> GEN_SHIFT) & 1) as usize;
        let check = |bank: usize, tag: u32| {
            self.recs[bank * n..(bank + 1) * n].iter().any(|&v| {
                let tid = v & REC_TID;
                v & !REC_TID == tag && tid != 0 && tid != me && is_dead(dead, tid)
            })
        };
        check(bank, tag(gen))
            || (self.m & (1 << HIST_SHIFT) == 0 && check(bank ^ 1, tag(gen.wrapping_sub(GEN_ONE))))
    }

    /// A wait that cannot end by another party: sleeps until the deadline
    /// or a dead party, then breaks the round. Returns the sleeps.
    fn sleep_then_break(&mut self, me: u32, k: u8, dead: u8) -> u32 {
        self.m |= WAITERS;
        let sleeps = if k == 0 {
            0
        } else if self.anyone_dead(me, dead) {
            1
        } else {
            u32::from(k)
        };
        self.break_round();
        sleeps
    }

    /// `wait`: the result and the sleeps.
    fn wait(&mut self, me: u32, k: u8, dead: u8) -> (Result<u32, Broken>, u32) {
        let me = me & REC_TID;
        if self.m & BROKEN != 0 {
            return (Err(Broken), 0);
        }
        let c = self.m & COUNT_MASK;
        if c >= self.parties {
            self.break_round();
            return (Err(Broken), 0);
        }
        let n = self.parties as usize;
        let gen = self.m & GEN_MASK;
        let base = ((gen >> GEN_SHIFT) & 1) as usize * n;
        let free = (0..n).map(|j| base + (c as usize + j) % n).find(|&i| {
            let v = self.recs[i];
            v & REC_TID == 0 || v & !REC_TID != tag(gen)
        });
        let Some(i) = free else {
            // No record to claim: waits for a round that never comes.
            return (Err(Broken), self.sleep_then_break(me, k, dead));
        };
        self.recs[i] = me | tag(gen);
        if c + 1 == self.parties {
            self.wakes += u32::from(self.m & WAITERS != 0);
            let hist = ((self.m & HIST_MASK) << 1) & HIST_MASK;
            self.m = gen.wrapping_add(GEN_ONE) | hist;
            return (Ok(c), 0);
        }
        self.m += 1;
        (Err(Broken), self.sleep_then_break(me, k, dead))
    }
}

fuzz_target!(|input: Input| {
    let parties = u32::from(input.parties % 4) + 1;
    let word = FakeWord::new(0);
    let recs: Vec<AtomicU32> = (0..2 * parties).map(|_| AtomicU32::new(0)).collect();
    let b = RawBarrier::new(&word, &recs).expect("1 to 4 parties");
    let mut model = Model {
        m: 0,
        recs: vec![0; recs.len()],
        parties,
        wakes: 0,
    };
    for op in input.ops {
        let waits = word.waits.get();
        let mut want_waits = waits;
        match op {
            Op::Wait(me, k, dead) => {
                let me = NonZeroU32::new(me).unwrap_or(NonZeroU32::MIN);
                let k = k % 9;
                let (want, sleeps) = model.wait(me.get(), k, dead);
                let got = b.wait(me, Some(&mut Budget(k)), Some(&mut Dead(dead)));
                assert_eq!(got, want, "the result of {op:?}");
                want_waits += sleeps;
            }
            Op::Abort => {
                b.abort();
                model.break_round();
            }
            Op::Reset => {
                b.reset();
                model.wakes += u32::from(model.m & WAITERS != 0);
                let hist = ((model.m & HIST_MASK) << 1 | 1 << HIST_SHIFT) & HIST_MASK;
                model.m = (model.m & GEN_MASK).wrapping_add(GEN_ONE) | hist;
            }
            Op::Withdraw(me) => {
                let me = NonZeroU32::new(me).unwrap_or(NonZeroU32::MIN);
                b.withdraw(me);
                for v in &mut model.recs {
                    if *v & REC_TID == me.get() & REC_TID {
                        *v = 0;
                    }
                }
            }
            Op::Observe => {
                assert_eq!(b.parties(), parties);
                assert_eq!(b.is_broken(), model.m & BROKEN != 0);
                let n = if model.m & BROKEN != 0 {
                    0
                } else {
                    (model.m & COUNT_MASK).min(parties - 1)
                };
                assert_eq!(b.n_waiting(), n);
            }
            Op::ScribbleWord(v) => {
                word.v.store(v, Ordering::Relaxed);
                model.m = v;
            }
            Op::ScribbleRecord(i, v) => {
                let i = usize::from(i) % recs.len();
                recs[i].store(v, Ordering::Relaxed);
                model.recs[i] = v;
            }
        }
        assert_eq!(
            word.v.load(Ordering::Relaxed),
            model.m,
            "the word after {op:?}"
        );
        for (i, r) in recs.iter().enumerate() {
            assert_eq!(
                r.load(Ordering::Relaxed),
                model.recs[i],
                "record {i} after {op:?}"
            );
        }
        assert_eq!(word.waits.get(), want_waits, "sleeps in {op:?}");
        assert_eq!(word.wake_all.get(), model.wakes, "wakes after {op:?}");
    }
});
