//! Drives the production pipe ring (`shmsync::raw::spsc::Ring`) on a
//! deterministic, single-threaded fake word with an arbitrary sequence of
//! sends and receives (non-blocking and timed, of every size, into vectors
//! and slices), polls, closes, deaths of either side (a producer dying
//! half-way through a send leaves unpublished bytes behind), a process
//! re-taking a side from the page, and a peer that overwrites any word of
//! the ring (positions or data) with any value between any two steps.
//!
//! Until the first scribble, a reference model (a `VecDeque` of messages,
//! the ring's byte budget, closed and dead flags) predicts every result
//! exactly: messages whole and in order, `Ok(false)`/`Ok(None)` exactly
//! when the ring is full/empty, `Disconnected` exactly when the other
//! side closed or (after a sleep, or in a `try` form) died and the ring
//! is drained, `BufferTooSmall` losing nothing. After a scribble only the
//! hostile-page rules are checked: nothing panics, overflows or hangs (the
//! fake `wait` returns at once, so a wait that did not end with its
//! deadline would hang the target), no message is longer than the
//! capacity, and a too-short buffer is reported, never overrun. `Reset`
//! starts a fresh ring and model.
//!
//! ```sh
//! cargo +nightly fuzz run -a pipe_transitions -- -max_total_time=60
//! ```
#![no_main]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::time::Duration;

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use shmsync::raw::spsc::{
    record_len, ring_bytes, Consumer, Out, Producer, Ring, RingError, Wait, POS_MASK,
};
use shmsync::raw::{Deadline, FutexWord};

/// A single-threaded futex word: a sleep returns at once, and must be on
/// the value the word holds, bounded.
#[derive(Debug)]
struct FakeWord(AtomicU32);

impl FutexWord for FakeWord {
    type Atomic = AtomicU32;
    fn new(v: u32) -> Self {
        FakeWord(AtomicU32::new(v))
    }
    fn atomic(&self) -> &AtomicU32 {
        &self.0
    }
    fn wait(&self, expected: u32, timeout: Option<Duration>) {
        assert_eq!(self.0.load(Relaxed), expected, "sleeps on the word it read");
        assert!(timeout.is_some(), "every sleep is bounded");
    }
    fn wake_one(&self) {}
    fn wake_all(&self) {
        panic!("one sleeper per word: wake_one");
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
    /// A send of `len % (cap + 2)` bytes (one more than allowed: too
    /// large); `None`: `try`, `Some(k)`: timed, `k % 4` slices.
    Send(u16, Option<u8>),
    /// A receive; into a slice of that length if given.
    Recv(Option<u16>, Option<u8>),
    Poll(Option<u8>),
    CloseProducer,
    CloseConsumer,
    /// The producer dies with these bytes written past the head.
    ProducerDies(Vec<u8>),
    ConsumerDies,
    /// A new process takes the producer's (or consumer's) side from the
    /// page.
    Retake(bool),
    /// A peer writes word `i` of (head, tail, data...).
    Scribble(u16, u32),
    /// A fresh ring of capacity `1 + c % 64`.
    Reset(u8),
}

struct World {
    head: FakeWord,
    tail: FakeWord,
    data: Vec<AtomicU32>,
    cap: usize,
}

impl World {
    fn new(cap: usize) -> World {
        let words = ring_bytes(cap).unwrap() / 4;
        World {
            head: FakeWord::new(0),
            tail: FakeWord::new(0),
            data: (0..words).map(|_| AtomicU32::new(0)).collect(),
            cap,
        }
    }
    fn ring(&self) -> Ring<'_, FakeWord, AtomicU32> {
        Ring::new(&self.head, &self.tail, &self.data, self.cap).unwrap()
    }
}

/// The model, and the sides' private state.
struct Model {
    msgs: VecDeque<Vec<u8>>,
    used: usize,
    size: usize,
    p_closed: bool,
    c_closed: bool,
    p_dead: bool,
    c_dead: bool,
    scribbled: bool,
    p: Option<Producer>,
    c: Option<Consumer>,
    seq: u8,
}

fn run(ops: Vec<Op>) {
    let mut cap = 24;
    let mut w = World::new(cap);
    let fresh = |cap: usize, w: &World| Model {
        msgs: VecDeque::new(),
        used: 0,
        size: ring_bytes(cap).unwrap(),
        p_closed: false,
        c_closed: false,
        p_dead: false,
        c_dead: false,
        scribbled: false,
        p: w.ring().producer().ok(),
        c: w.ring().consumer().ok(),
        seq: 0,
    };
    let mut m = fresh(cap, &w);
    for op in ops {
        if let Op::Reset(c) = op {
            cap = 1 + usize::from(c % 64);
            w = World::new(cap);
            m = fresh(cap, &w);
            continue;
        }
        let r = w.ring();
        match op {
            Op::Reset(_) => unreachable!(),
            Op::Send(len, block) => {
                let (Some(p), false, false) = (m.p.as_mut(), m.p_closed, m.p_dead) else {
                    continue;
                };
                let len = usize::from(len) % (cap + 2);
                m.seq = m.seq.wrapping_add(1);
                let msg: Vec<u8> = (0..len).map(|k| m.seq.wrapping_add(k as u8)).collect();
                let c_dead = m.c_dead;
                let mut dead = || c_dead;
                let mut budget = Budget(block.unwrap_or(0) % 4);
                let mut wait = Wait {
                    block: block.is_some(),
                    deadline: Some(&mut budget),
                    peer_dead: &mut dead,
                };
                let got = r.send(p, &msg, &mut wait);
                if m.scribbled {
                    continue;
                }
                let need = record_len(len).unwrap();
                let want = if len > cap {
                    Err(RingError::TooLarge)
                } else if m.c_closed {
                    Err(RingError::Disconnected)
                } else if m.size - m.used >= need {
                    Ok(true)
                } else if m.c_dead && (block.is_none() || block.unwrap() % 4 > 0) {
                    Err(RingError::Disconnected)
                } else {
                    Ok(false)
                };
                assert_eq!(got, want, "send of {len}");
                if got == Ok(true) {
                    m.used += need;
                    m.msgs.push_back(msg);
                }
            }
            Op::Recv(slice, block) => {
                let (Some(c), false, false) = (m.c.as_mut(), m.c_closed, m.c_dead) else {
                    continue;
                };
                let p_dead = m.p_dead;
                let mut dead = || p_dead;
                let mut budget = Budget(block.unwrap_or(0) % 4);
                let mut wait = Wait {
                    block: block.is_some(),
                    deadline: Some(&mut budget),
                    peer_dead: &mut dead,
                };
                let mut v = Vec::new();
                let mut buf = vec![0u8; usize::from(slice.unwrap_or(0))];
                let out = match slice {
                    Some(_) => Out::Slice(&mut buf),
                    None => Out::Vec(&mut v),
                };
                let got = r.recv(c, out, &mut wait);
                match got {
                    Ok(Some(n)) => {
                        assert!(n <= cap, "a message longer than the capacity");
                        assert!(slice.is_none() || n <= buf.len(), "overran the buffer");
                    }
                    Err(RingError::BufferTooSmall { needed }) => {
                        assert!(needed > buf.len() && needed <= cap);
                    }
                    _ => {}
                }
                if m.scribbled {
                    continue;
                }
                let want = match m.msgs.front() {
                    Some(f) if slice.is_some_and(|s| usize::from(s) < f.len()) => {
                        Err(RingError::BufferTooSmall { needed: f.len() })
                    }
                    Some(f) => Ok(Some(f.len())),
                    None if m.p_closed => Err(RingError::Disconnected),
                    None if m.p_dead && (block.is_none() || block.unwrap() % 4 > 0) => {
                        Err(RingError::Disconnected)
                    }
                    None => Ok(None),
                };
                assert_eq!(got, want, "recv");
                if let Ok(Some(_)) = got {
                    let f = m.msgs.pop_front().unwrap();
                    m.used -= record_len(f.len()).unwrap();
                    let data = if slice.is_some() {
                        &buf[..f.len()]
                    } else {
                        &v[..]
                    };
                    assert_eq!(data, &f[..], "the message whole");
                }
            }
            Op::Poll(block) => {
                let (Some(c), false, false) = (m.c.as_ref(), m.c_closed, m.c_dead) else {
                    continue;
                };
                let p_dead = m.p_dead;
                let mut dead = || p_dead;
                let mut budget = Budget(block.unwrap_or(0) % 4);
                let mut wait = Wait {
                    block: block.is_some(),
                    deadline: Some(&mut budget),
                    peer_dead: &mut dead,
                };
                let got = r.poll(c, &mut wait);
                if m.scribbled {
                    continue;
                }
                let want = if !m.msgs.is_empty() {
                    Ok(true)
                } else if m.p_closed || (m.p_dead && (block.is_none() || block.unwrap() % 4 > 0)) {
                    Err(RingError::Disconnected)
                } else {
                    Ok(false)
                };
                assert_eq!(got, want, "poll");
            }
            Op::CloseProducer => {
                if m.p.is_some() && !m.p_dead && !m.p_closed {
                    r.close_producer();
                    m.p_closed = true;
                }
            }
            Op::CloseConsumer => {
                if m.c.is_some() && !m.c_dead && !m.c_closed {
                    r.close_consumer();
                    m.c_closed = true;
                }
            }
            Op::ProducerDies(bytes) => {
                if let (Some(p), false) = (m.p, m.p_dead) {
                    // Half a send: bytes written past the head, unpublished
                    // (at most the free part of the ring).
                    if !m.scribbled {
                        let free = (m.size - m.used) / 4;
                        let words = w.data.len();
                        for (k, c) in bytes.chunks(4).take(free).enumerate() {
                            let mut b = [0u8; 4];
                            b[..c.len()].copy_from_slice(c);
                            let i = (p.pos() as usize / 4 + k) % words;
                            w.data[i].store(u32::from_le_bytes(b), Relaxed);
                        }
                    }
                    m.p_dead = true;
                }
            }
            Op::ConsumerDies => m.c_dead = true,
            Op::Retake(producer) => {
                if producer {
                    let got = r.producer();
                    if !m.scribbled {
                        assert_eq!(got.ok(), m.p, "the page's position is the producer's");
                    }
                    if !m.p_dead {
                        m.p = got.ok();
                    }
                } else {
                    let got = r.consumer();
                    if !m.scribbled {
                        assert_eq!(got.ok(), m.c, "the page's position is the consumer's");
                    }
                    if !m.c_dead {
                        m.c = got.ok();
                    }
                }
            }
            Op::Scribble(i, v) => {
                let i = usize::from(i) % (w.data.len() + 2);
                match i {
                    0 => w.head.0.store(v, Relaxed),
                    1 => w.tail.0.store(v, Relaxed),
                    i => w.data[i - 2].store(v, Relaxed),
                }
                m.scribbled = true;
            }
        }
        if !m.scribbled {
            // The page's positions are the sides' (masked).
            if let Some(p) = m.p {
                assert_eq!(w.head.0.load(Relaxed) & POS_MASK, p.pos());
            }
        }
    }
}

fuzz_target!(|ops: Vec<Op>| run(ops));
