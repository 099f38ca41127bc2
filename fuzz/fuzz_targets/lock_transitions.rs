//! Drives the production lock state machine (`shmsync::raw::RawMutex`) on
//! a deterministic, single-threaded fake word with an arbitrary sequence of
//! operations by four simulated threads (ids 1..=4, each with its own
//! private `Holds` per lock), on two lock instances (a non-recursive `Lock`
//! and a recursive `RLock`), and a peer that may overwrite any field of a
//! lock's slot with any value between any two steps.
//!
//! Every step is checked against a small reference model:
//! - always, scribbled or not: each thread's `Holds` is exactly the
//!   model's count of its holds (computed from its own calls only: the
//!   page never decides it); an acquire by a thread that holds the lock is
//!   decided by its count alone (`Recursive`/`Deadlock`, word untouched);
//!   an acquire by one that does not never says `Recursive`/`Deadlock`,
//!   and one that succeeds leaves the word naming it without
//!   `OWNER_DIED`; an unlock returns `true` exactly on the thread's last
//!   hold, and one with no holds changes nothing; nothing panics or waits
//!   unannounced (the target is built with debug assertions and overflow
//!   checks: `cargo fuzz run -a`);
//! - while the peer has not written to that lock: the result of every
//!   call, the owner, the observers' copy of the count (`extra`), the
//!   consistency state, the exact bits of the word (TID, `OWNER_DIED`,
//!   `WAITERS`, `NOT_RECOVERABLE`) and the wakes issued.
//!
//! After a scribble the word is anybody's: mutual exclusion on that lock
//! is not promised, so the model stops predicting the word; what stays
//! promised is the private state and the absence of panics and hangs.
//!
//! Nothing can block here: the fake word's `wait` panics unless the driver
//! armed it for one call. The driver only makes a blocking call when it
//! will not block: a `lock` that would block (by the model; after a
//! scribble, by the word it reads first) becomes a timed lock whose
//! deadline has already passed (it must return `WouldBlock` or
//! `NotRecoverable` without waiting), and the liveness path gets exactly
//! one armed wait (which returns at once, as a probe interval elapsing)
//! before the probe reports the owner dead. An unexpected wait is a
//! finding.
//!
//! ```sh
//! cargo +nightly fuzz run -a lock_transitions -- -max_total_time=60
//! ```
#![no_main]

use std::cell::Cell;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use shmsync::raw::{
    Acquired, Deadline, FutexWord, Holds, Liveness, RawMutex, Refused, NOT_RECOVERABLE, OWNER_DIED,
    TID_MASK, WAITERS,
};

/// A single-threaded futex word: `core`'s `AtomicU32` (deterministic on
/// one thread, and the production type's own atomic operations), wake
/// counters, and a `wait` that must be armed first.
#[derive(Debug)]
struct FakeWord {
    v: AtomicU32,
    /// Waits the driver allows (each returns at once, unchanged word).
    armed: Cell<u32>,
    wake_one: Cell<u32>,
    wake_all: Cell<u32>,
}

impl FakeWord {
    /// The word's value.
    fn get(&self) -> u32 {
        self.v.load(Ordering::Relaxed)
    }
}

impl FutexWord for FakeWord {
    type Atomic = AtomicU32;
    /// A few rounds, to run the spin code; the value cannot change.
    const SPIN_LIMIT: u32 = 3;

    fn new(v: u32) -> Self {
        FakeWord {
            v: AtomicU32::new(v),
            armed: Cell::new(0),
            wake_one: Cell::new(0),
            wake_all: Cell::new(0),
        }
    }
    fn atomic(&self) -> &AtomicU32 {
        &self.v
    }

    fn wait(&self, expected: u32, timeout: Option<Duration>) {
        let armed = self.armed.get();
        assert!(
            armed > 0,
            "wait({expected:#x}) reached: the call would block"
        );
        self.armed.set(armed - 1);
        assert_eq!(expected, self.get(), "sleeps on a stale value");
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

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq)]
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
    fn ix(self) -> usize {
        self as usize
    }
}

/// A field of the lock's slot.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Field {
    Word,
    Extra,
    State,
}

/// What the peer writes: any value, with the interesting ones made likely.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Val {
    Any(u32),
    Small(u8),
    /// A simulated thread's TID, with `OWNER_DIED` and/or `WAITERS`.
    Tid {
        who: Who,
        died: bool,
        waiters: bool,
    },
    Flags {
        died: bool,
        waiters: bool,
    },
    NotRecoverable {
        waiters: bool,
    },
}

impl Val {
    fn get(self) -> u32 {
        let bits = |died: bool, waiters: bool| {
            (if died { OWNER_DIED } else { 0 }) | (if waiters { WAITERS } else { 0 })
        };
        match self {
            Val::Any(v) => v,
            Val::Small(v) => u32::from(v),
            Val::Tid { who, died, waiters } => who as u32 | bits(died, waiters),
            Val::Flags { died, waiters } => bits(died, waiters),
            Val::NotRecoverable { waiters } => NOT_RECOVERABLE | bits(false, waiters),
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Op {
    /// Blocking `lock` (a timed one with a passed deadline where it would
    /// block).
    Lock(Who),
    TryLock(Who),
    /// `lock` with a deadline that has passed.
    TimedLock(Who),
    /// `unlock` with `who`'s own count, whatever it is (zero included).
    Unlock(Who),
    /// `unlock` as many times as `who`'s count says: the last one must
    /// release, and the count must end at zero.
    Drain(Who),
    /// `who` dies; the kernel's robust-list action marks the word if it
    /// names `who`. Its count dies with it (a later `who` is a new thread
    /// that reused the TID).
    Die(Who),
    /// `who` ends and nobody marks the word (no robust list, no probe yet);
    /// its count dies with it.
    Exit(Who),
    /// `mark_consistent`, when `who`'s count says it holds the lock.
    MarkConsistent(Who),
    /// `lock` with a liveness probe that reports the holder dead.
    ProbeLock(Who),
    /// The holder `who` has taken the (recursive) lock ~4 billion times:
    /// its count (and its copy in the page) set directly, to reach the
    /// overflow.
    DeepRecursion(Who),
    /// A peer writes `Val` into a field of the slot.
    Scribble(Field, Val),
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
    /// The word names `owner`; its count may be zero (it ended unmarked).
    Held {
        owner: u32,
        inconsistent: bool,
    },
    NotRecoverable,
}

/// What the model predicts about the page while nobody scribbled on it.
#[derive(Debug, Clone, Copy)]
struct Page {
    state: State,
    waiters: bool,
    /// The observers' copy of the holds beyond the first.
    extra: u32,
    wake_one: u32,
    wake_all: u32,
}

impl Page {
    fn word(&self) -> u32 {
        let w = if self.waiters { WAITERS } else { 0 };
        match self.state {
            State::Free { died: false } => w,
            State::Free { died: true } => OWNER_DIED | w,
            State::Held { owner, .. } => owner | w,
            State::NotRecoverable => NOT_RECOVERABLE | w,
        }
    }
}

/// The reference model of one lock.
#[derive(Debug)]
struct Model {
    /// Each thread's count of its holds (index 1..=4), from its own calls.
    holds: [u32; 5],
    /// `None` once a peer has written to the slot.
    page: Option<Page>,
}

/// One lock, the simulated threads' own counts on it, and its model.
struct Slot {
    m: RawMutex<FakeWord>,
    recursive: bool,
    /// The `Holds` each thread passes (index 1..=4).
    held: [Holds; 5],
    model: Model,
}

/// The acquiring calls.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Call {
    Lock,
    TryLock,
    Timed,
    Probe,
}

/// The slot's three fields, as read by the driver.
fn fields(m: &RawMutex<FakeWord>) -> [u32; 3] {
    [m.word().atomic(), m.extra(), m.state()].map(|w| w.load(Ordering::Relaxed))
}

impl Slot {
    fn new(recursive: bool) -> Self {
        Slot {
            m: RawMutex::new(),
            recursive,
            held: [Holds::NONE; 5],
            model: Model {
                holds: [0; 5],
                page: Some(Page {
                    state: State::Free { died: false },
                    waiters: false,
                    extra: 0,
                    wake_one: 0,
                    wake_all: 0,
                }),
            },
        }
    }

    /// Thread `ix` is gone: its count goes with it.
    fn forget(&mut self, ix: usize) {
        self.held[ix] = Holds::NONE;
        self.model.holds[ix] = 0;
    }

    /// One acquiring call by `who`, made non-blocking where it would block.
    fn acquire(&mut self, who: Who, call: Call, step: usize) {
        let (me, ix, recursive) = (who.id(), who.ix(), self.recursive);
        let h = self.model.holds[ix];
        if h > 0 {
            // Decided by the thread's own count: the word is not consulted.
            let before = fields(&self.m);
            let mut d = Expired { asked: 0 };
            let mut probe = AllDead { asked: Vec::new() };
            let held = &mut self.held[ix];
            let got = match call {
                Call::Lock => self.m.lock(me, held, recursive, None, None),
                Call::TryLock => self.m.try_lock(me, held, recursive),
                Call::Timed => self.m.lock(me, held, recursive, Some(&mut d), None),
                Call::Probe => self.m.lock(me, held, recursive, None, Some(&mut probe)),
            };
            let want = if recursive && h < u32::MAX {
                Ok(Acquired::Recursive)
            } else {
                Err(Refused::Deadlock)
            };
            assert_eq!(got, want, "step {step}: relock by {who:?} with {h} holds");
            assert_eq!(d.asked, 0, "step {step}: a relock asked the deadline");
            assert!(probe.asked.is_empty(), "step {step}: a relock probed");
            let after = fields(&self.m);
            assert_eq!(after[0], before[0], "step {step}: a relock wrote the word");
            assert_eq!(after[2], before[2], "step {step}: a relock wrote the state");
            if got.is_ok() {
                self.model.holds[ix] = h + 1;
                assert_eq!(after[1], h, "step {step}: the observers' copy");
                if let Some(p) = &mut self.model.page {
                    p.extra = h;
                }
            } else {
                assert_eq!(after[1], before[1], "step {step}: a refused relock");
            }
            return;
        }

        // The thread holds nothing: the word decides. Would the call block?
        let (blocks, want) = match &self.model.page {
            Some(p) => match p.state {
                State::Free { died: false } => (false, Some(Ok(Acquired::Locked))),
                State::Free { died: true } => (false, Some(Ok(Acquired::OwnerDied))),
                // Names this thread, which holds nothing: taken over.
                State::Held { owner, .. } if owner == me.get() => {
                    (false, Some(Ok(Acquired::OwnerDied)))
                }
                State::Held { .. } => (true, None),
                State::NotRecoverable => (false, Some(Err(Refused::NotRecoverable))),
            },
            None => {
                let owner = self.m.word().get() & TID_MASK;
                (
                    owner != 0 && owner != me.get() && owner != NOT_RECOVERABLE,
                    None,
                )
            }
        };
        let before_word = self.m.word().get();
        let mut d = Expired { asked: 0 };
        let mut probe = AllDead { asked: Vec::new() };
        let held = &mut self.held[ix];
        let got = match (call, blocks) {
            (Call::TryLock, _) => self.m.try_lock(me, held, recursive),
            (Call::Probe, true) => {
                // Sleeps once (armed), probes the holder, marks it dead and
                // takes the lock over.
                self.m.word().armed.set(1);
                self.m.lock(me, held, recursive, None, Some(&mut probe))
            }
            (Call::Probe, false) => self.m.lock(me, held, recursive, None, Some(&mut probe)),
            (Call::Lock, false) => self.m.lock(me, held, recursive, None, None),
            (Call::Lock | Call::Timed, _) => self.m.lock(me, held, recursive, Some(&mut d), None),
        };
        let armed_left = self.m.word().armed.replace(0);
        match got {
            Ok(Acquired::Locked | Acquired::OwnerDied) => {
                self.model.holds[ix] = 1;
                let w = self.m.word().get();
                assert_eq!(w & TID_MASK, me.get(), "step {step}: {got:?}, word {w:#x}");
                assert_eq!(w & OWNER_DIED, 0, "step {step}: held with OWNER_DIED");
            }
            Err(Refused::WouldBlock | Refused::NotRecoverable) => {}
            other => panic!("step {step}: {call:?} by {who:?} holding nothing: {other:?}"),
        }
        // Every owner the probe was asked about is dead by fiat: its count
        // goes with it (the probe only runs on a word naming another).
        for &w in &probe.asked {
            let dead = (w & TID_MASK) as usize;
            assert_ne!(dead, ix, "step {step}: probed itself");
            if (1..=4).contains(&dead) {
                self.forget(dead);
            }
        }
        let Some(p) = &mut self.model.page else {
            return;
        };
        assert_eq!(armed_left, 0, "step {step}: an armed wait was not used");
        match want {
            Some(want) => {
                assert_eq!(got, want, "step {step}: {call:?} by {who:?} on {p:?}");
                assert_eq!(d.asked, 0, "step {step}: no deadline without contention");
                assert!(probe.asked.is_empty(), "step {step}: probed a free lock");
                if let Ok(a) = got {
                    p.state = State::Held {
                        owner: me.get(),
                        inconsistent: a == Acquired::OwnerDied,
                    };
                    if a == Acquired::OwnerDied {
                        p.extra = 0;
                    }
                }
            }
            None => {
                let State::Held { owner, .. } = p.state else {
                    unreachable!()
                };
                match call {
                    // Held by someone else: try_lock fails untouched.
                    Call::TryLock => assert_eq!(got, Err(Refused::WouldBlock), "step {step}"),
                    // Announces itself (WAITERS) and gives up at its
                    // passed deadline.
                    Call::Lock | Call::Timed => {
                        assert_eq!(got, Err(Refused::WouldBlock), "step {step}");
                        assert_eq!(d.asked, 1, "step {step}: deadline checked once");
                        p.waiters = true;
                    }
                    // Probed the holder once after one sleep, marked it
                    // dead (waking one: WAITERS is set by then) and took
                    // the lock over, keeping WAITERS.
                    Call::Probe => {
                        assert_eq!(got, Ok(Acquired::OwnerDied), "step {step}");
                        assert_eq!(probe.asked, [before_word | WAITERS], "step {step}");
                        assert_eq!(owner, before_word & !WAITERS);
                        p.wake_one += 1;
                        p.waiters = true;
                        p.extra = 0;
                        p.state = State::Held {
                            owner: me.get(),
                            inconsistent: true,
                        };
                    }
                }
            }
        }
    }

    /// One `unlock` by `who` with its own count; returns what it returned.
    fn unlock(&mut self, who: Who, step: usize) -> bool {
        let ix = who.ix();
        let h = self.model.holds[ix];
        let before = fields(&self.m);
        let wakes = (self.m.word().wake_one.get(), self.m.word().wake_all.get());
        // SAFETY: by its own count, `who` holds the lock `h` times (and an
        // unlock with a count of zero does nothing).
        let last = unsafe { self.m.unlock(who.id(), &mut self.held[ix]) };
        assert_eq!(
            last,
            h == 1,
            "step {step}: unlock by {who:?} with {h} holds"
        );
        let after = fields(&self.m);
        if h <= 1 {
            self.model.holds[ix] = 0;
        } else {
            self.model.holds[ix] = h - 1;
        }
        if h == 0 {
            assert_eq!(after, before, "step {step}: an unlock without holds wrote");
            let now = (self.m.word().wake_one.get(), self.m.word().wake_all.get());
            assert_eq!(now, wakes, "step {step}: an unlock without holds woke");
            return last;
        }
        if h > 1 {
            // Only the observers' copy changes.
            assert_eq!([after[0], after[2]], [before[0], before[2]], "step {step}");
            assert_eq!(after[1], h - 2, "step {step}: the observers' copy");
        }
        let Some(p) = &mut self.model.page else {
            return last;
        };
        let State::Held {
            owner,
            inconsistent,
        } = p.state
        else {
            panic!("step {step}: {who:?} has {h} holds on a lock that is not held: {p:?}");
        };
        assert_eq!(owner, who as u32, "step {step}: holds without the word");
        if h > 1 {
            p.extra = h - 2;
        } else if inconsistent {
            p.state = State::NotRecoverable;
            p.waiters = false;
            p.wake_all += 1;
        } else {
            p.state = State::Free { died: false };
            if p.waiters {
                p.wake_one += 1;
            }
            p.waiters = false;
        }
        last
    }

    /// Unlocks as often as `who`'s count says.
    fn drain(&mut self, who: Who, step: usize) {
        let mut n = self.model.holds[who.ix()];
        if n > 3 {
            // Counted down by one, then as if all but the last two had been
            // released (identical calls; ~4 billion after DeepRecursion).
            assert!(!self.unlock(who, step), "step {step}");
            n = 2;
            self.held[who.ix()] = Holds::new(n);
            self.model.holds[who.ix()] = n;
        }
        for left in (0..n).rev() {
            assert_eq!(self.unlock(who, step), left == 0, "step {step}: drain");
        }
        assert_eq!(self.held[who.ix()], Holds::NONE, "step {step}: drained");
    }

    fn op(&mut self, op: Op, step: usize) {
        match op {
            Op::Lock(who) => self.acquire(who, Call::Lock, step),
            Op::TryLock(who) => self.acquire(who, Call::TryLock, step),
            Op::TimedLock(who) => self.acquire(who, Call::Timed, step),
            Op::ProbeLock(who) => self.acquire(who, Call::Probe, step),
            Op::Unlock(who) => {
                self.unlock(who, step);
            }
            Op::Drain(who) => self.drain(who, step),
            Op::Die(who) => {
                let names = self.m.word().get() & TID_MASK == who as u32;
                assert_eq!(self.m.mark_owner_dead(who.id()), names, "step {step}");
                self.forget(who.ix());
                if let Some(p) = &mut self.model.page {
                    let held = matches!(p.state, State::Held { owner, .. } if owner == who as u32);
                    assert_eq!(held, names, "step {step}");
                    if held {
                        p.state = State::Free { died: true };
                        if p.waiters {
                            p.wake_one += 1;
                        }
                    }
                }
            }
            Op::Exit(who) => self.forget(who.ix()),
            Op::MarkConsistent(who) => {
                if self.model.holds[who.ix()] > 0 {
                    // SAFETY: by its own count, `who` holds the lock.
                    unsafe { self.m.mark_consistent() };
                    if let Some(Page {
                        state: State::Held { inconsistent, .. },
                        ..
                    }) = &mut self.model.page
                    {
                        *inconsistent = false;
                    }
                }
            }
            Op::DeepRecursion(who) => {
                if self.model.holds[who.ix()] > 0 && self.recursive {
                    // The thread's own count, as if taken that often, and
                    // the copy it would have written.
                    self.held[who.ix()] = Holds::new(u32::MAX - 1);
                    self.model.holds[who.ix()] = u32::MAX - 1;
                    self.m.extra().store(u32::MAX - 2, Ordering::Relaxed);
                    if let Some(p) = &mut self.model.page {
                        p.extra = u32::MAX - 2;
                    }
                }
            }
            Op::Scribble(field, v) => {
                let w = match field {
                    Field::Word => self.m.word().atomic(),
                    Field::Extra => self.m.extra(),
                    Field::State => self.m.state(),
                };
                w.store(v.get(), Ordering::Relaxed);
                self.model.page = None;
            }
        }
    }

    fn check(&self, step: usize) {
        for ix in 1..=4 {
            assert_eq!(
                self.held[ix].get(),
                self.model.holds[ix],
                "step {step}: thread {ix}'s own count"
            );
        }
        let m = &self.m;
        let Some(p) = &self.model.page else {
            // The observers' calls on whatever the peer wrote: no panic,
            // and a held lock shows at least one hold.
            let locked = m.is_locked();
            assert_eq!(m.holds() > 0, locked, "step {step}");
            for who in 1..=4 {
                let me = NonZeroU32::new(who).unwrap();
                let names = m.word().get() & TID_MASK == who;
                assert_eq!(m.is_held_by(me), names, "step {step}");
            }
            return;
        };
        let word = m.word().get();
        assert_eq!(word, p.word(), "step {step}: word {word:#x}, model {p:?}");
        assert_eq!(
            m.word().wake_one.get(),
            p.wake_one,
            "step {step}: wake_one calls"
        );
        assert_eq!(
            m.word().wake_all.get(),
            p.wake_all,
            "step {step}: wake_all calls"
        );
        assert_eq!(m.word().armed.get(), 0, "step {step}: armed wait left");
        assert_eq!(
            m.extra().load(Ordering::Relaxed),
            p.extra,
            "step {step}: extra"
        );
        if let State::Held {
            owner,
            inconsistent,
        } = p.state
        {
            assert_eq!(
                m.state().load(Ordering::Relaxed),
                u32::from(inconsistent),
                "step {step}: consistency"
            );
            assert!(m.is_locked());
            assert_eq!(m.holds(), p.extra.saturating_add(1), "step {step}");
            let own = self.model.holds[owner as usize];
            if own > 0 {
                // Without scribbles the observers' copy is exact.
                assert_eq!(m.holds(), own, "step {step}: holds()");
            }
            for who in 1..=4 {
                let me = NonZeroU32::new(who).unwrap();
                assert_eq!(m.is_held_by(me), who == owner, "step {step}");
                if who != owner {
                    assert_eq!(self.model.holds[who as usize], 0, "step {step}: model");
                }
            }
        } else {
            assert!(!m.is_locked(), "step {step}");
            assert_eq!(m.holds(), 0, "step {step}");
            assert_eq!(self.model.holds, [0; 5], "step {step}: model");
        }
    }
}

fn run(ops: &[(bool, Op)]) {
    let mut locks = [Slot::new(false), Slot::new(true)];
    for (step, &(which, op)) in ops.iter().enumerate() {
        let l = &mut locks[usize::from(which)];
        l.op(op, step);
        l.check(step);
    }
    // Every thread's holds come back: an unlock sequence of the right
    // length releases each, whatever the peer wrote.
    for l in &mut locks {
        for who in [Who::A, Who::B, Who::C, Who::D] {
            l.drain(who, ops.len());
            l.check(ops.len());
        }
        assert_eq!(l.held, [Holds::NONE; 5]);
    }
}

fuzz_target!(|input: Input| {
    run(&input.ops);
});
