//! Drives the production queue ring (`shmsync::raw::RawRing`) with several
//! simulated processes on one thread: puts and gets done whole or in steps
//! (claim; write or read; publish or release), processes killed between
//! any two steps (their claims stay), `close`, waiters' marks (the
//! `WAITERS` bit set on any slot, which must change no outcome), and a
//! peer that overwrites any word with any value.
//!
//! Until the first scribble, a reference model predicts every outcome: a
//! queue of positions (`VecDeque`), each being written by a process,
//! ready with its value, being read, or done. A whole `try_put`/`try_get`
//! reaps a dead process's claim in its way (counted in `lost`), a step
//! never does; a get returns the values in position order, each once;
//! `close` fails later puts and, once drained, gets. After a scribble only
//! the absence of panics, overflows and hangs is checked (built with
//! debug assertions and overflow checks: `cargo fuzz run -a`).
//!
//! ```sh
//! cargo +nightly fuzz run -a ring_transitions -- -max_total_time=60
//! ```
#![no_main]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use shmsync::raw::ring::{Claim, TID_BITS, WAITERS};
use shmsync::raw::{Liveness, RawRing, RingError, RingWords};

const PROCS: usize = 4;

#[derive(Debug, Arbitrary)]
enum Op {
    /// A whole `try_put` of a value by process `p`.
    Put(u8, u16),
    /// A whole `try_get` by process `p`.
    Get(u8),
    /// The claim of a put by `p` (no reaping).
    BeginPut(u8, u16),
    /// Writes and publishes `p`'s claimed put.
    FinishPut(u8),
    /// The claim of a get by `p` (no reaping).
    BeginGet(u8),
    /// Reads and releases `p`'s claimed get.
    FinishGet(u8),
    /// SIGKILL `p`: it never acts again; its claim stays.
    Kill(u8),
    Close,
    /// A waiter marks slot `k` (sets `WAITERS`, whatever its state): no
    /// outcome changes, only wakes.
    Mark(u8),
    /// A peer writes word `k` (head, tail, closed, lost, the two counts,
    /// then the slots) with `v`.
    Scribble(u8, u64),
}

#[derive(Debug, Arbitrary)]
struct Input {
    cap: u8,
    ops: Vec<Op>,
}

/// One position of the reference model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    Writing(usize),
    Ready(u64),
    Reading(usize),
    Done,
}

/// What a simulated process is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proc {
    Idle,
    Putting(Claim, u64),
    /// A claimed get, and the value the model says it will read.
    Getting(Claim, u64),
    Dead,
}

/// The processes' liveness, as the waiters' probe sees it.
struct Live<'a>(&'a [Proc; PROCS]);

impl Liveness for Live<'_> {
    fn probe_interval(&mut self, _word: u32) -> Option<Duration> {
        Some(Duration::from_millis(1))
    }
    fn owner_is_dead(&mut self, word: u32) -> bool {
        let tid = (word & TID_BITS) as usize;
        (1..=PROCS).contains(&tid) && self.0[tid - 1] == Proc::Dead
    }
}

struct Model {
    cap: usize,
    q: VecDeque<Entry>,
    closed: bool,
    sealed: bool,
    lost: u32,
}

impl Model {
    fn trim(&mut self) {
        while self.q.front() == Some(&Entry::Done) {
            self.q.pop_front();
        }
    }

    /// Index of the head entry (first one not yet taken).
    fn head(&self) -> Option<usize> {
        self.q
            .iter()
            .position(|e| matches!(e, Entry::Writing(_) | Entry::Ready(_)))
    }

    /// The claimant blocking a put (the entry whose slot the tail needs).
    fn put_blocker(&self) -> Option<Entry> {
        (self.q.len() >= self.cap).then(|| self.q[0])
    }

    fn is_dead(procs: &[Proc; PROCS], e: Entry) -> bool {
        match e {
            Entry::Writing(p) | Entry::Reading(p) => procs[p] == Proc::Dead,
            _ => false,
        }
    }

    fn reap_front(&mut self) {
        self.q[0] = Entry::Done;
        self.lost += 1;
        self.trim();
    }

    /// A put: `reap` for a whole `try_put`.
    fn put(
        &mut self,
        procs: &[Proc; PROCS],
        p: usize,
        claim_only: bool,
        v: u64,
    ) -> Result<(), RingError> {
        loop {
            if self.closed || self.sealed {
                return Err(RingError::Closed);
            }
            match self.put_blocker() {
                None => {
                    self.q.push_back(if claim_only {
                        Entry::Writing(p)
                    } else {
                        Entry::Ready(v)
                    });
                    return Ok(());
                }
                Some(e) if !claim_only && Self::is_dead(procs, e) => self.reap_front(),
                Some(_) => return Err(RingError::Full),
            }
        }
    }

    /// A get (or the claim of one): the value it takes.
    fn get(&mut self, procs: &[Proc; PROCS], p: usize, claim_only: bool) -> Result<u64, RingError> {
        loop {
            match self.head() {
                Some(i) => match self.q[i] {
                    Entry::Ready(v) => {
                        if claim_only {
                            self.q[i] = Entry::Reading(p);
                            return Ok(v);
                        }
                        self.q[i] = Entry::Done;
                        self.trim();
                        return Ok(v);
                    }
                    e @ Entry::Writing(_) => {
                        if !claim_only && Self::is_dead(procs, e) {
                            self.q[i] = Entry::Done;
                            self.lost += 1;
                            self.trim();
                            continue;
                        }
                        return Err(RingError::Empty);
                    }
                    _ => unreachable!(),
                },
                None => {
                    // The slot at the head still serves the lap before?
                    if let Some(e) = self.put_blocker() {
                        if !claim_only && Self::is_dead(procs, e) {
                            self.reap_front();
                            continue;
                        }
                        return Err(RingError::Empty);
                    }
                    if self.sealed {
                        return Err(RingError::Closed);
                    }
                    if self.closed {
                        self.sealed = true;
                        return Err(RingError::Closed);
                    }
                    return Err(RingError::Empty);
                }
            }
        }
    }
}

fuzz_target!(|input: Input| {
    let cap = usize::from(input.cap % 4) + 1;
    let words: [AtomicU32; 6] = Default::default();
    let [head, tail, closed, lost, readable, writable] = &words;
    type Ring<'a> = RawRing<'a, AtomicU32, AtomicU32, AtomicU64>;
    let slots: Vec<AtomicU64> = (0..cap as u32)
        .map(|i| AtomicU64::new(Ring::initial_slot(i)))
        .collect();
    let data: Vec<AtomicU64> = (0..cap).map(|_| AtomicU64::new(0)).collect();
    let ring: Ring<'_> = RawRing::new(RingWords {
        head,
        tail,
        closed,
        lost,
        readable,
        writable,
        slots: &slots,
    })
    .unwrap();
    let mut procs = [Proc::Idle; PROCS];
    let mut m = Model {
        cap,
        q: VecDeque::new(),
        closed: false,
        sealed: false,
        lost: 0,
    };
    let mut trusted = true;
    for op in input.ops {
        match op {
            Op::Put(p, v) => {
                let p = usize::from(p) % PROCS;
                if procs[p] != Proc::Idle {
                    continue;
                }
                let v = u64::from(v);
                let got = ring.try_put(p as u32 + 1, &mut Live(&procs), |i| {
                    data[i].store(v, Relaxed)
                });
                if trusted {
                    assert_eq!(got.map(drop), m.put(&procs, p, false, v), "{op:?}");
                }
            }
            Op::BeginPut(p, v) => {
                let p = usize::from(p) % PROCS;
                if procs[p] != Proc::Idle {
                    continue;
                }
                let got = ring.claim_put(p as u32 + 1);
                if trusted {
                    assert_eq!(got.map(drop), m.put(&procs, p, true, 0), "{op:?}");
                }
                if let Ok(c) = got {
                    procs[p] = Proc::Putting(c, u64::from(v));
                }
            }
            Op::FinishPut(p) => {
                let p = usize::from(p) % PROCS;
                let Proc::Putting(c, v) = procs[p] else {
                    continue;
                };
                data[c.index].store(v, Relaxed);
                let ok = ring.publish(c, p as u32 + 1);
                if trusted {
                    assert!(ok, "a live claim is never reaped");
                    let e = m.q.iter_mut().find(|e| **e == Entry::Writing(p)).unwrap();
                    *e = Entry::Ready(v);
                }
                procs[p] = Proc::Idle;
            }
            Op::Get(p) => {
                let p = usize::from(p) % PROCS;
                if procs[p] != Proc::Idle {
                    continue;
                }
                let mut v = None;
                let got = ring.try_get(p as u32 + 1, &mut Live(&procs), &mut |_| true, |i| {
                    v = Some(data[i].load(Relaxed))
                });
                if trusted {
                    let want = m.get(&procs, p, false);
                    assert_eq!(got.map(|_| v.unwrap_or(u64::MAX)), want, "{op:?}");
                }
            }
            Op::BeginGet(p) => {
                let p = usize::from(p) % PROCS;
                if procs[p] != Proc::Idle {
                    continue;
                }
                let got = ring.claim_get(p as u32 + 1, &mut |_| true);
                let mut want = 0;
                if trusted {
                    let m_got = m.get(&procs, p, true);
                    assert_eq!(got.map(drop), m_got.map(drop), "{op:?}");
                    want = m_got.unwrap_or(0);
                }
                if let Ok(c) = got {
                    procs[p] = Proc::Getting(c, want);
                }
            }
            Op::FinishGet(p) => {
                let p = usize::from(p) % PROCS;
                let Proc::Getting(c, want) = procs[p] else {
                    continue;
                };
                let v = data[c.index].load(Relaxed);
                let ok = ring.release(c, p as u32 + 1);
                if trusted {
                    assert!(ok, "a live claim is never reaped");
                    // Nothing overwrote the slot while it was being read.
                    assert_eq!(v, want, "{op:?}");
                    let i = m.q.iter().position(|e| *e == Entry::Reading(p)).unwrap();
                    m.q[i] = Entry::Done;
                    m.trim();
                }
                procs[p] = Proc::Idle;
            }
            Op::Kill(p) => procs[usize::from(p) % PROCS] = Proc::Dead,
            Op::Close => {
                ring.close();
                m.closed = true;
            }
            Op::Mark(k) => {
                slots[usize::from(k) % cap].fetch_or(u64::from(WAITERS), Relaxed);
            }
            Op::Scribble(k, v) => {
                let k = usize::from(k) % (6 + cap);
                if k < 6 {
                    words[k].store(v as u32, Relaxed);
                } else {
                    slots[k - 6].store(v, Relaxed);
                }
                trusted = false;
            }
        }
        assert!(ring.len() <= cap);
        if trusted {
            assert_eq!(ring.lost(), m.lost, "lost after {op:?}");
        }
    }
});
