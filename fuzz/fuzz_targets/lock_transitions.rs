//! Drives the production lock state machine (`shmsync::raw::RawMutex`) on
//! a deterministic, single-threaded fake word with an arbitrary sequence of
//! operations by four simulated owners (ids 1..=4), on two lock instances
//! (a non-recursive `Lock` and a recursive `RLock`), and checks every step
//! against a small reference model: the result, the owner, the recursion
//! count, the consistency state, the exact bits of the word (TID,
//! `OWNER_DIED`, `WAITERS`, `NOT_RECOVERABLE`) and the wakes issued.
//!
//! Nothing can block here: the fake word's `wait` panics unless the driver
//! armed it for one call. The driver only makes a blocking call when the
//! model says it will not block: a `lock` that would block becomes a timed
//! lock whose deadline has already passed (it must return `WouldBlock`
//! without waiting), and the liveness path gets exactly one armed wait
//! (which returns at once, as a probe interval elapsing) before the probe
//! reports the owner dead. An unexpected wait is a finding.
//!
//! ```sh
//! cargo +nightly fuzz run lock_transitions -- -max_total_time=60
//! ```
#![no_main]

use std::cell::Cell;
use std::num::NonZeroU32;
use std::sync::atomic::Ordering;
use std::time::Duration;

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use shmsync::raw::{
    Acquired, AtomicWord, Deadline, FutexWord, Liveness, RawMutex, Refused, NOT_RECOVERABLE,
    OWNER_DIED, WAITERS,
};

/// A single-threaded word: plain cells, wake counters, and a `wait` that
/// must be armed first.
#[derive(Debug)]
struct FakeWord {
    v: Cell<u32>,
    /// Waits the driver allows (each returns at once, unchanged word).
    armed: Cell<u32>,
    wake_one: Cell<u32>,
    wake_all: Cell<u32>,
}

impl AtomicWord for FakeWord {
    fn new(v: u32) -> Self {
        FakeWord {
            v: Cell::new(v),
            armed: Cell::new(0),
            wake_one: Cell::new(0),
            wake_all: Cell::new(0),
        }
    }
    fn load(&self, _: Ordering) -> u32 {
        self.v.get()
    }
    fn store(&self, v: u32, _: Ordering) {
        self.v.set(v);
    }
    fn swap(&self, v: u32, _: Ordering) -> u32 {
        self.v.replace(v)
    }
    fn compare_exchange(&self, c: u32, n: u32, _: Ordering, _: Ordering) -> Result<u32, u32> {
        let cur = self.v.get();
        if cur == c {
            self.v.set(n);
            Ok(cur)
        } else {
            Err(cur)
        }
    }
}

impl FutexWord for FakeWord {
    /// A few rounds, to run the spin code; the value cannot change.
    const SPIN_LIMIT: u32 = 3;

    fn wait(&self, expected: u32, timeout: Option<Duration>) {
        let armed = self.armed.get();
        assert!(
            armed > 0,
            "wait({expected:#x}) reached: the call would block"
        );
        self.armed.set(armed - 1);
        assert_eq!(expected, self.v.get(), "sleeps on a stale value");
        assert!(timeout.is_some(), "the liveness path sleeps with a timeout");
    }
    fn wake_one(&self) {
        self.wake_one.set(self.wake_one.get() + 1);
    }
    fn wake_all(&self) {
        self.wake_all.set(self.wake_all.get() + 1);
    }
}

/// A deadline that has passed at its first check.
struct Expired {
    asked: u32,
}

impl Deadline for Expired {
    fn remaining(&mut self) -> Option<Duration> {
        self.asked += 1;
        None
    }
}

/// A liveness probe that reports every owner dead (the owner died without
/// the kernel marking the word), recording what it was asked.
struct AllDead {
    asked: Vec<u32>,
}

impl Liveness for AllDead {
    fn probe_interval(&mut self, _word: u32) -> Option<Duration> {
        Some(Duration::from_millis(1))
    }
    fn owner_is_dead(&mut self, word: u32) -> bool {
        self.asked.push(word);
        true
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Who {
    A = 1,
    B = 2,
    C = 3,
    D = 4,
}

impl Who {
    fn id(self) -> NonZeroU32 {
        NonZeroU32::new(self as u32).unwrap()
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Op {
    /// Blocking `lock` (a timed one with a passed deadline where the model
    /// says it would block).
    Lock(Who),
    TryLock(Who),
    /// `lock` with a deadline that has passed.
    TimedLock(Who),
    /// `unlock`, when the model says `who` holds the lock.
    Unlock(Who),
    /// The kernel's robust-list action for a dying `who`.
    Die(Who),
    /// `mark_consistent`, when `who` holds the lock.
    MarkConsistent(Who),
    /// `lock` with a liveness probe that reports the holder dead.
    ProbeLock(Who),
    /// The holder `who` has taken the (recursive) lock ~4 billion times:
    /// sets the count to `u32::MAX - 1` directly, to reach the overflow.
    DeepRecursion(Who),
}

#[derive(Arbitrary, Debug)]
struct Input {
    /// Each op acts on the non-recursive lock (false) or the recursive one.
    ops: Vec<(bool, Op)>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Free {
        died: bool,
    },
    Held {
        owner: u32,
        count: u32,
        inconsistent: bool,
    },
    NotRecoverable,
}

/// The reference model of one lock.
#[derive(Debug)]
struct Model {
    state: State,
    waiters: bool,
    wake_one: u32,
    wake_all: u32,
}

impl Model {
    fn word(&self) -> u32 {
        let w = if self.waiters { WAITERS } else { 0 };
        match self.state {
            State::Free { died: false } => w,
            State::Free { died: true } => OWNER_DIED | w,
            State::Held { owner, .. } => owner | w,
            State::NotRecoverable => NOT_RECOVERABLE | w,
        }
    }

    /// What any acquire by `me` that does not block gives; `None` if it
    /// would block.
    fn acquire(&mut self, me: u32, recursive: bool) -> Option<Result<Acquired, Refused>> {
        Some(match self.state {
            State::Free { died } => {
                self.state = State::Held {
                    owner: me,
                    count: 1,
                    inconsistent: died,
                };
                Ok(if died {
                    Acquired::OwnerDied
                } else {
                    Acquired::Locked
                })
            }
            State::Held {
                owner,
                ref mut count,
                ..
            } if owner == me => {
                if !recursive || *count == u32::MAX {
                    Err(Refused::Deadlock)
                } else {
                    *count += 1;
                    Ok(Acquired::Recursive)
                }
            }
            State::Held { .. } => return None,
            State::NotRecoverable => Err(Refused::NotRecoverable),
        })
    }
}

fn check(m: &RawMutex<FakeWord>, model: &Model, step: usize) {
    let word = m.word.load(Ordering::Relaxed);
    assert_eq!(
        word,
        model.word(),
        "step {step}: word {word:#x}, model {model:?}"
    );
    assert_eq!(
        m.word.wake_one.get(),
        model.wake_one,
        "step {step}: wake_one calls"
    );
    assert_eq!(
        m.word.wake_all.get(),
        model.wake_all,
        "step {step}: wake_all calls"
    );
    assert_eq!(
        m.word.armed.get(),
        0,
        "step {step}: an armed wait was not used"
    );
    if let State::Held {
        owner,
        count,
        inconsistent,
    } = model.state
    {
        assert_eq!(m.holds(), count, "step {step}: count");
        assert_eq!(
            m.state.load(Ordering::Relaxed),
            u32::from(inconsistent),
            "step {step}: consistency"
        );
        assert!(m.is_locked());
        for who in 1..=4 {
            let me = NonZeroU32::new(who).unwrap();
            assert_eq!(m.is_held_by(me), who == owner, "step {step}");
        }
    } else {
        assert!(!m.is_locked(), "step {step}");
    }
}

fn run(ops: &[(bool, Op)]) {
    let locks: [RawMutex<FakeWord>; 2] = [RawMutex::new(), RawMutex::new()];
    let mut models = [false, true].map(|_| Model {
        state: State::Free { died: false },
        waiters: false,
        wake_one: 0,
        wake_all: 0,
    });
    for (step, &(which, op)) in ops.iter().enumerate() {
        let recursive = which;
        let m = &locks[usize::from(which)];
        let model = &mut models[usize::from(which)];
        match op {
            Op::Lock(who) | Op::TryLock(who) | Op::TimedLock(who) => {
                let me = who.id();
                let before = model.state;
                match model.acquire(me.get(), recursive) {
                    Some(want) => {
                        let mut d = Expired { asked: 0 };
                        let got = match op {
                            Op::Lock(_) => m.lock(me, recursive, None, None),
                            Op::TryLock(_) => m.try_lock(me, recursive),
                            _ => m.lock(me, recursive, Some(&mut d), None),
                        };
                        assert_eq!(got, want, "step {step}: {op:?} on {before:?}");
                        assert_eq!(d.asked, 0, "step {step}: no deadline without contention");
                    }
                    None => {
                        // Held by someone else: try_lock fails untouched; a
                        // timed lock announces itself (WAITERS) and gives up
                        // at its passed deadline. A plain lock would block,
                        // so the driver makes it a timed one.
                        if let Op::TryLock(_) = op {
                            assert_eq!(m.try_lock(me, recursive), Err(Refused::WouldBlock));
                        } else {
                            let mut d = Expired { asked: 0 };
                            let got = m.lock(me, recursive, Some(&mut d), None);
                            assert_eq!(got, Err(Refused::WouldBlock), "step {step}");
                            assert_eq!(d.asked, 1, "step {step}: deadline checked once");
                            model.waiters = true;
                        }
                    }
                }
            }
            Op::ProbeLock(who) => {
                let me = who.id();
                let mut probe = AllDead { asked: Vec::new() };
                let before = model.state;
                let before_word = model.word();
                match model.acquire(me.get(), recursive) {
                    Some(want) => {
                        let got = m.lock(me, recursive, None, Some(&mut probe));
                        assert_eq!(got, want, "step {step}: {op:?} on {before:?}");
                        assert!(probe.asked.is_empty(), "step {step}: probed a free lock");
                    }
                    None => {
                        // Sleeps once (armed), probes the holder, marks it
                        // dead (waking one: WAITERS is set by then) and
                        // takes the lock over, keeping WAITERS.
                        let State::Held { owner, .. } = before else {
                            unreachable!()
                        };
                        m.word.armed.set(1);
                        let got = m.lock(me, recursive, None, Some(&mut probe));
                        assert_eq!(got, Ok(Acquired::OwnerDied), "step {step}");
                        assert_eq!(probe.asked, [before_word | WAITERS], "step {step}");
                        assert_eq!(owner, before_word & !WAITERS);
                        model.wake_one += 1;
                        model.waiters = true;
                        model.state = State::Held {
                            owner: me.get(),
                            count: 1,
                            inconsistent: true,
                        };
                    }
                }
            }
            Op::Unlock(who) => {
                let State::Held {
                    owner,
                    count,
                    inconsistent,
                } = model.state
                else {
                    continue;
                };
                if owner != who as u32 {
                    continue;
                }
                // SAFETY: the model says `who` holds the lock.
                let last = unsafe { m.unlock(who.id()) };
                assert_eq!(last, count == 1, "step {step}");
                if count > 1 {
                    model.state = State::Held {
                        owner,
                        count: count - 1,
                        inconsistent,
                    };
                } else if inconsistent {
                    model.state = State::NotRecoverable;
                    model.waiters = false;
                    model.wake_all += 1;
                } else {
                    model.state = State::Free { died: false };
                    if model.waiters {
                        model.wake_one += 1;
                    }
                    model.waiters = false;
                }
            }
            Op::Die(who) => {
                let holds = matches!(model.state, State::Held { owner, .. } if owner == who as u32);
                assert_eq!(m.mark_owner_dead(who.id()), holds, "step {step}");
                if holds {
                    model.state = State::Free { died: true };
                    if model.waiters {
                        model.wake_one += 1;
                    }
                }
            }
            Op::MarkConsistent(who) => {
                if let State::Held {
                    owner,
                    ref mut inconsistent,
                    ..
                } = model.state
                {
                    if owner == who as u32 {
                        // SAFETY: the model says `who` holds the lock.
                        unsafe { m.mark_consistent() };
                        *inconsistent = false;
                    }
                }
            }
            Op::DeepRecursion(who) => {
                if let State::Held {
                    owner,
                    ref mut count,
                    ..
                } = model.state
                {
                    if owner == who as u32 && recursive {
                        // The owner-only count, set as if taken that often.
                        m.extra.store(u32::MAX - 2, Ordering::Relaxed);
                        *count = u32::MAX - 1;
                    }
                }
            }
        }
        check(m, model, step);
    }
}

fuzz_target!(|input: Input| {
    run(&input.ops);
});
