//! Unit tests of [`RawBarrier`] on heap memory, with the production word
//! (and [`Spy`], to see sleeps and wakes). Run under Miri as the rest of
//! `src/raw/tests.rs`.

use core::num::NonZeroU32;
use core::sync::atomic::AtomicU32;
use core::sync::atomic::Ordering::Relaxed;
use core::time::Duration;
use std::sync::Arc;
use std::thread;

use super::{id, until, Budget, Spy};
use crate::raw::barrier::{
    Broken, RawBarrier, BROKEN, COUNT_MASK, GEN_MASK, GEN_ONE, HIST_SHIFT, MAX_PARTIES,
    REC_TAG_SHIFT, WAITERS,
};
use crate::raw::{FutexWord, Liveness};

/// A barrier's word and records on the heap.
struct Heap<W: FutexWord = Spy> {
    word: W,
    recs: Vec<AtomicU32>,
}

impl<W: FutexWord<Atomic = AtomicU32>> Heap<W> {
    fn new(parties: usize) -> Arc<Self> {
        Arc::new(Heap {
            word: W::new(0),
            recs: (0..2 * parties).map(|_| AtomicU32::new(0)).collect(),
        })
    }

    fn b(&self) -> RawBarrier<'_, W> {
        RawBarrier::new(&self.word, &self.recs).expect("a valid party count")
    }

    fn load(&self) -> u32 {
        self.word.atomic().load(Relaxed)
    }
}

/// The record of `tid` claimed in round `gen` (word bits).
fn rec(tid: u32, gen: u32) -> u32 {
    tid | ((gen >> 18) & 0x3ff) << REC_TAG_SHIFT
}

/// A liveness probe that knows which ids are dead, and records every id it
/// was asked about.
#[derive(Default)]
struct Dead {
    dead: Vec<u32>,
    asked: Vec<u32>,
}

impl Liveness for Dead {
    fn probe_interval(&mut self, _word: u32) -> Option<Duration> {
        None
    }
    fn owner_is_dead(&mut self, tid: u32) -> bool {
        self.asked.push(tid);
        self.dead.contains(&tid)
    }
}

/// A watchdog deadline for a wait that must end by itself: many slices
/// (each at most 1 ms); check [`ended_by_itself`] afterwards.
fn watchdog() -> Budget {
    Budget::new(20_000)
}

/// Whether a wait with a [`watchdog`] ended before its deadline.
fn ended_by_itself(b: &Budget) -> bool {
    b.left > 0
}

/// Joins `h`, failing (instead of hanging) if it has not ended within a
/// generous watchdog.
fn join_watched<T>(h: thread::JoinHandle<T>) -> T {
    let start = std::time::Instant::now();
    while !h.is_finished() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "a waiter was never released"
        );
        thread::sleep(Duration::from_millis(1));
    }
    h.join().unwrap()
}

/// Until `h`'s word counts `n` waiting parties and shows `WAITERS` after
/// `sleeps` sleeps.
fn until_waiting(h: &Heap, n: u32, sleeps: u32) {
    until(|| {
        let w = h.load();
        w & COUNT_MASK == n && w & WAITERS != 0 && h.word.waits.load(Relaxed) >= sleeps
    });
}

#[test]
fn party_counts_are_checked() {
    let w = AtomicU32::new(0);
    let recs: Vec<AtomicU32> = (0..2 * (MAX_PARTIES as usize + 1))
        .map(|_| AtomicU32::new(0))
        .collect();
    assert!(RawBarrier::new(&w, &recs[..0]).is_none(), "no parties");
    assert!(RawBarrier::new(&w, &recs[..3]).is_none(), "an odd count");
    assert!(RawBarrier::new(&w, &recs).is_none(), "too many parties");
    let max = RawBarrier::new(&w, &recs[..2 * MAX_PARTIES as usize]).unwrap();
    assert_eq!(max.parties(), MAX_PARTIES);
    assert_eq!(RawBarrier::new(&w, &recs[..2]).unwrap().parties(), 1);
}

#[test]
fn one_party_passes_at_once_and_leads() {
    let h = Heap::<Spy>::new(1);
    for round in 1..=3 {
        assert_eq!(h.b().wait(id(7), None, None), Ok(0));
        assert_eq!(h.load() & GEN_MASK, round * GEN_ONE);
        assert_eq!(h.load() & COUNT_MASK, 0);
    }
    assert_eq!(h.word.waits.load(Relaxed), 0, "nobody slept");
    assert_eq!(h.word.wakes.load(Relaxed), 0, "nobody to wake");
}

#[test]
fn two_parties_indices_and_leader() {
    let h = Heap::<Spy>::new(2);
    let h2 = h.clone();
    let t = thread::spawn(move || h2.b().wait(id(1), None, None));
    until_waiting(&h, 1, 1);
    assert_eq!(h.b().n_waiting(), 1);
    assert_eq!(
        h.b().wait(id(2), None, None),
        Ok(1),
        "the last arrival leads"
    );
    assert_eq!(join_watched(t), Ok(0));
    assert_eq!(h.word.wakes.load(Relaxed), 1, "one wake for the sleeper");
    assert_eq!(h.load(), GEN_ONE, "round 1, empty, nobody asleep");
    assert_eq!(h.b().n_waiting(), 0);
}

/// Every party writes its round into its slot before `wait` and, after
/// it, finds every slot at that round or beyond: nobody passes a round
/// before all arrived, a fast party re-entering cannot pass the next one
/// early, and each round has distinct indices and one leader.
#[test]
fn rounds_publish_every_partys_write() {
    let (n, rounds) = if cfg!(miri) { (2, 4) } else { (3, 300) };
    let h = Heap::<AtomicU32>::new(n);
    let slots = Arc::new((0..n).map(|_| AtomicU32::new(0)).collect::<Vec<_>>());
    let seen: Arc<Vec<AtomicU32>> = Arc::new((0..rounds).map(|_| AtomicU32::new(0)).collect());
    let hs: Vec<_> = (0..n)
        .map(|p| {
            let (h, slots, seen) = (h.clone(), slots.clone(), seen.clone());
            thread::spawn(move || {
                for r in 1..=rounds as u32 {
                    // Relaxed: ordered by the barrier (the test's point).
                    slots[p].store(r, Relaxed);
                    let i = h.b().wait(id(p as u32 + 1), None, None).unwrap();
                    for s in slots.iter() {
                        assert!(s.load(Relaxed) >= r, "a party passed round {r} early");
                    }
                    let bit = seen[r as usize - 1].fetch_or(1 << i, Relaxed);
                    assert_eq!(bit & 1 << i, 0, "index {i} given twice in round {r}");
                }
            })
        })
        .collect();
    for t in hs {
        join_watched(t);
    }
    for s in seen.iter() {
        assert_eq!(s.load(Relaxed), (1 << n) - 1, "every index once per round");
    }
}

#[test]
fn abort_breaks_waiters_and_arrivals_until_reset() {
    let h = Heap::<Spy>::new(3);
    let h2 = h.clone();
    let t = thread::spawn(move || h2.b().wait(id(1), None, None));
    until_waiting(&h, 1, 1);
    h.b().abort();
    assert_eq!(join_watched(t), Err(Broken));
    assert!(h.b().is_broken());
    assert_eq!(h.b().n_waiting(), 0);
    assert_eq!(
        h.b().wait(id(2), None, None),
        Err(Broken),
        "an arrival at a broken barrier"
    );
    h.b().abort(); // again: nothing
    h.b().reset();
    assert!(!h.b().is_broken());
    assert_eq!(h.load() & COUNT_MASK, 0);
    // Usable again: a full round.
    let ts: Vec<_> = (0..2)
        .map(|i| {
            let h = h.clone();
            thread::spawn(move || h.b().wait(id(10 + i), None, None))
        })
        .collect();
    let me = h.b().wait(id(12), None, None);
    let mut idx: Vec<u32> = ts.into_iter().map(|t| join_watched(t).unwrap()).collect();
    idx.push(me.unwrap());
    idx.sort_unstable();
    assert_eq!(idx, [0, 1, 2]);
}

#[test]
fn reset_breaks_the_waiters_and_empties_the_barrier() {
    let h = Heap::<Spy>::new(3);
    let ts: Vec<_> = (0..2)
        .map(|i| {
            let h = h.clone();
            thread::spawn(move || h.b().wait(id(1 + i), None, None))
        })
        .collect();
    until_waiting(&h, 2, 2);
    let gen = h.load() & GEN_MASK;
    h.b().reset();
    for t in ts {
        assert_eq!(join_watched(t), Err(Broken), "a waiter at a reset");
    }
    assert_eq!(h.load() & GEN_MASK, gen.wrapping_add(GEN_ONE));
    assert_eq!(h.b().n_waiting(), 0);
    assert!(!h.b().is_broken());
}

#[test]
fn a_timeout_breaks_the_round_for_everybody() {
    let h = Heap::<Spy>::new(3);
    let h2 = h.clone();
    let t = thread::spawn(move || h2.b().wait(id(1), None, None));
    until_waiting(&h, 1, 1);
    let mut b = Budget::new(2);
    assert_eq!(h.b().wait(id(2), Some(&mut b), None), Err(Broken));
    assert_eq!(b.asked, 3, "two sleeps, then the expired deadline");
    assert_eq!(join_watched(t), Err(Broken), "the other waiter too");
    assert!(h.b().is_broken());
    // An expired deadline at arrival: arrives, then breaks.
    h.b().reset();
    assert_eq!(
        h.b().wait(id(2), Some(&mut Budget::new(0)), None),
        Err(Broken)
    );
    assert!(h.b().is_broken());
    // ... unless the arrival completes the round.
    let h1 = Heap::<Spy>::new(1);
    assert_eq!(h1.b().wait(id(2), Some(&mut Budget::new(0)), None), Ok(0));
}

#[test]
fn a_round_completed_as_the_deadline_expires_is_passed() {
    // The waiter's deadline expires just as the round completes: when it
    // looks again before breaking anything, it finds the round passed.
    struct Completes<'a>(&'a Heap);
    impl crate::raw::Deadline for Completes<'_> {
        fn remaining(&mut self) -> Option<Duration> {
            self.0.word.store(GEN_ONE, Relaxed);
            None
        }
    }
    let h = Heap::<Spy>::new(2);
    assert_eq!(h.b().wait(id(1), Some(&mut Completes(&h)), None), Ok(0));
    assert!(!h.b().is_broken());
    assert_eq!(h.load(), GEN_ONE);
}

#[test]
fn a_dead_waiting_party_breaks_the_round() {
    // Party 77 claimed its record, was counted and died while waiting.
    let h = Heap::<Spy>::new(3);
    h.recs[0].store(rec(77, 0), Relaxed);
    h.word.store(1, Relaxed);
    let mut live = Dead {
        dead: vec![77],
        asked: vec![],
    };
    let mut dog = watchdog();
    assert_eq!(
        h.b().wait(id(5), Some(&mut dog), Some(&mut live)),
        Err(Broken)
    );
    assert!(
        ended_by_itself(&dog),
        "broken by the probe, not the deadline"
    );
    assert!(live.asked.contains(&77));
    assert!(!live.asked.contains(&5), "never probes itself");
    assert!(h.b().is_broken());
}

#[test]
fn a_dead_party_of_the_last_round_breaks_the_next() {
    // Round 0 completed with parties 77 and 5; 77 died before arriving in
    // round 1.
    let h = Heap::<Spy>::new(2);
    h.recs[0].store(rec(77, 0), Relaxed);
    h.recs[1].store(rec(5, 0), Relaxed);
    h.word.store(GEN_ONE, Relaxed);
    let mut live = Dead {
        dead: vec![77],
        asked: vec![],
    };
    let mut dog = watchdog();
    assert_eq!(
        h.b().wait(id(5), Some(&mut dog), Some(&mut live)),
        Err(Broken)
    );
    assert!(
        ended_by_itself(&dog),
        "broken by the probe, not the deadline"
    );
    assert!(h.b().is_broken());
    // After a reset, the last round's parties are not expected: a waiter
    // is not broken by 77 (its deadline ends its wait).
    h.b().reset();
    let mut live = Dead {
        dead: vec![77],
        asked: vec![],
    };
    assert_eq!(
        h.b()
            .wait(id(5), Some(&mut Budget::new(3)), Some(&mut live)),
        Err(Broken)
    );
    assert!(
        !live.asked.contains(&77),
        "the reset round's parties are not probed"
    );
}

#[test]
fn a_party_dead_between_claim_and_count_breaks_the_round() {
    let h = Heap::<Spy>::new(2);
    h.recs[0].store(rec(77, 0), Relaxed); // claimed, never counted
    let mut live = Dead {
        dead: vec![77],
        asked: vec![],
    };
    let mut dog = watchdog();
    assert_eq!(
        h.b().wait(id(5), Some(&mut dog), Some(&mut live)),
        Err(Broken)
    );
    assert!(
        ended_by_itself(&dog),
        "broken by the probe, not the deadline"
    );
}

#[test]
fn a_lost_wake_delays_the_sleeper_but_does_not_strand_it() {
    // The leader completed the round and died before waking.
    let h = Heap::<Spy>::new(2);
    let h2 = h.clone();
    let t = thread::spawn(move || h2.b().wait(id(1), None, None));
    until_waiting(&h, 1, 1);
    h.word.store(GEN_ONE, Relaxed);
    assert_eq!(join_watched(t), Ok(0));
    assert_eq!(h.word.wakes.load(Relaxed), 0);
}

#[test]
fn a_full_bank_makes_the_arrival_wait_for_the_next_round() {
    // Both records of round 0 taken by live parties that are not counted
    // (more threads than parties): the arrival waits for the round to
    // change, and then arrives in the new one.
    let h = Heap::<Spy>::new(2);
    h.recs[0].store(rec(70, 0), Relaxed);
    h.recs[1].store(rec(71, 0), Relaxed);
    let h2 = h.clone();
    let t = thread::spawn(move || h2.b().wait(id(5), None, None));
    until(|| h.word.waits.load(Relaxed) >= 2);
    assert_eq!(h.load() & COUNT_MASK, 0, "not counted without a record");
    h.word.store(GEN_ONE, Relaxed); // the round moves on
    h.word.wake_all();
    until_waiting(&h, 1, 3);
    assert_eq!(h.load() & GEN_MASK, GEN_ONE, "counted in round 1");
    assert_eq!(h.b().wait(id(6), None, None), Ok(1));
    assert_eq!(join_watched(t), Ok(0));
    // A deadline ends such a wait (breaking the round).
    h.recs[0].store(rec(70, 2 * GEN_ONE), Relaxed);
    h.recs[1].store(rec(71, 2 * GEN_ONE), Relaxed);
    assert_eq!(
        h.b().wait(id(5), Some(&mut Budget::new(2)), None),
        Err(Broken)
    );
    assert!(h.b().is_broken());
}

#[test]
fn history_tells_a_late_waiter_how_its_round_ended() {
    let h = Heap::<Spy>::new(2);
    let run = |word: u32| {
        let h2 = h.clone();
        h.word.store(0, Relaxed);
        h.recs.iter().for_each(|r| r.store(0, Relaxed));
        let t = thread::spawn(move || h2.b().wait(id(1), None, None));
        until_waiting(&h, 1, h.word.waits.load(Relaxed) + 1);
        h.word.store(word, Relaxed);
        join_watched(t)
    };
    // Round 0 completed, then round 1 was reset: d = 2, bit 1 = 0.
    assert_eq!(run((2 * GEN_ONE) | (1 << HIST_SHIFT)), Ok(0));
    // Round 0 was reset, then round 1 completed: bit 1 = 1.
    assert_eq!(run((2 * GEN_ONE) | (2 << HIST_SHIFT)), Err(Broken));
    // Forgotten (d = 5): passed.
    assert_eq!(run((5 * GEN_ONE) | (0xf << HIST_SHIFT)), Ok(0));
}

#[test]
fn withdraw_removes_the_callers_records() {
    let h = Heap::<Spy>::new(2);
    h.recs[0].store(rec(5, 0), Relaxed);
    h.recs[3].store(rec(5, GEN_ONE), Relaxed);
    h.recs[1].store(rec(6, 0), Relaxed);
    h.b().withdraw(NonZeroU32::new(5).unwrap());
    let v: Vec<u32> = h.recs.iter().map(|r| r.load(Relaxed)).collect();
    assert_eq!(v, [0, rec(6, 0), 0, 0]);
}

#[test]
fn scribbled_words_and_records_never_hang_or_panic() {
    let h = Heap::<Spy>::new(3);
    let words = [
        0,
        u32::MAX,
        COUNT_MASK,
        3,
        2,
        BROKEN,
        !BROKEN,
        WAITERS | 2,
        GEN_MASK | 2,
        0x1234_5678,
        0xdead_beef,
    ];
    for (k, &v) in words.iter().enumerate() {
        h.word.store(v, Relaxed);
        for (i, r) in h.recs.iter().enumerate() {
            r.store(v.rotate_left(i as u32 + k as u32), Relaxed);
        }
        let _ = h.b().n_waiting();
        let _ = h.b().is_broken();
        let mut live = Dead {
            dead: vec![],
            asked: vec![],
        };
        let r = h
            .b()
            .wait(id(9), Some(&mut Budget::new(2)), Some(&mut live));
        if v & BROKEN != 0 || v & COUNT_MASK >= 3 {
            assert_eq!(r, Err(Broken), "word {v:#x}");
        }
        h.b().abort();
        assert!(h.b().is_broken());
        h.b().reset();
        assert!(!h.b().is_broken());
        assert!(h.b().n_waiting() < 3);
    }
}

#[test]
fn the_spinning_hint_halves_when_the_waiter_sleeps() {
    use crate::raw::barrier::SPIN_START;
    let h = Heap::<Spy>::new(2);
    let hint = Arc::new(AtomicU32::new(SPIN_START));
    let (h2, hint2) = (h.clone(), hint.clone());
    let t = thread::spawn(move || h2.b().wait_spinning(id(1), None, None, Some(&hint2)));
    until_waiting(&h, 1, 1);
    assert_eq!(h.b().wait(id(2), None, None), Ok(1));
    assert_eq!(join_watched(t), Ok(0));
    assert_eq!(
        hint.load(Relaxed),
        (1 << 16) | (SPIN_START / 2),
        "halved, one sleep counted"
    );
    // Any hint is valid: a huge one is capped.
    hint.store(u32::MAX, Relaxed);
    let (h2, hint2) = (h.clone(), hint.clone());
    let t = thread::spawn(move || h2.b().wait_spinning(id(1), None, None, Some(&hint2)));
    until_waiting(&h, 1, 2);
    assert_eq!(h.b().wait(id(2), None, None), Ok(1));
    assert_eq!(join_watched(t), Ok(0));
}

#[test]
fn records_of_ended_threads_are_forgotten_after_a_reset_or_a_withdraw() {
    // Round 0 completed with parties 77 and 78, which then ended without
    // withdrawing (scoped threads borrowing a handle): a new party waiting
    // in round 1 finds them dead...
    let h = Heap::<Spy>::new(2);
    let gone = |h: &Heap| {
        h.recs.iter().for_each(|r| r.store(0, Relaxed));
        h.recs[0].store(rec(77, 0), Relaxed);
        h.recs[1].store(rec(78, 0), Relaxed);
        h.word.store(GEN_ONE, Relaxed);
    };
    let dead = || Dead {
        dead: vec![77, 78],
        asked: vec![],
    };
    gone(&h);
    let mut dog = watchdog();
    assert_eq!(
        h.b().wait(id(5), Some(&mut dog), Some(&mut dead())),
        Err(Broken)
    );
    assert!(ended_by_itself(&dog));
    // ... unless they withdrew, or the barrier was reset since.
    for forget in [0, 1] {
        gone(&h);
        if forget == 0 {
            h.b().withdraw(id(77));
            h.b().withdraw(id(78));
        } else {
            h.b().reset();
        }
        let h2 = h.clone();
        let base = h.word.waits.load(Relaxed);
        let t = thread::spawn(move || h2.b().wait(id(5), None, Some(&mut dead())));
        // Two sleeps (so at least one probe), or broken (then the round
        // below fails instead of hanging).
        until(|| t.is_finished() || h.word.waits.load(Relaxed) >= base + 2);
        assert_eq!(h.b().wait(id(6), None, None), Ok(1));
        assert_eq!(join_watched(t), Ok(0));
    }
}
