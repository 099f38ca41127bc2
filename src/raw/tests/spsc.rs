//! Unit tests of the SPSC ring ([`crate::raw::spsc`]) on heap memory, with
//! the production word (and [`Spy`], to count its system calls). Run under
//! Miri as the rest of `src/raw/tests.rs`.

use core::sync::atomic::AtomicU32;
use core::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::thread;

use super::{until, Budget, Spy};
use crate::raw::spsc::{
    record_len, ring_bytes, Out, Ring, RingError, Wait, CLOSED, MAX_CAPACITY, POS_MASK, WAITING,
};

/// A heap ring: its two words and data.
struct Heap {
    head: Spy,
    tail: Spy,
    data: Vec<AtomicU32>,
    cap: usize,
}

impl Heap {
    fn new(cap: usize) -> Arc<Heap> {
        let bytes = ring_bytes(cap).unwrap();
        Arc::new(Heap {
            head: <Spy as crate::raw::FutexWord>::new(0),
            tail: <Spy as crate::raw::FutexWord>::new(0),
            data: (0..bytes / 4).map(|_| AtomicU32::new(0)).collect(),
            cap,
        })
    }
    fn ring(&self) -> Ring<'_, Spy, AtomicU32> {
        Ring::new(&self.head, &self.tail, &self.data, self.cap).unwrap()
    }
}

fn alive() -> bool {
    false
}

/// A non-blocking wait with a live peer.
fn now() -> Wait<'static> {
    Wait {
        block: false,
        deadline: None,
        peer_dead: Box::leak(Box::new(alive)),
    }
}

/// A blocking wait without deadline, peer judged by `dead`.
fn block(dead: &mut dyn FnMut() -> bool) -> Wait<'_> {
    Wait {
        block: true,
        deadline: None,
        peer_dead: dead,
    }
}

fn msg(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|k| (i * 31 + k * 7) as u8).collect()
}

#[test]
fn geometry() {
    assert_eq!(record_len(0), Some(4));
    assert_eq!(record_len(1), Some(8));
    assert_eq!(record_len(4), Some(8));
    assert_eq!(record_len(5), Some(12));
    assert_eq!(record_len(usize::MAX), None);
    assert_eq!(ring_bytes(0), None);
    assert_eq!(ring_bytes(1), Some(8));
    assert_eq!(ring_bytes(4), Some(8));
    assert_eq!(ring_bytes(5), Some(16));
    assert_eq!(ring_bytes(4092), Some(4096));
    assert_eq!(ring_bytes(4093), Some(8192));
    assert_eq!(ring_bytes(MAX_CAPACITY), Some(MAX_CAPACITY * 2));
    assert_eq!(ring_bytes(MAX_CAPACITY + 1), None);
    // Wrong private geometry is refused.
    let w = (Spy::new_word(), Spy::new_word());
    let d: Vec<AtomicU32> = (0..3).map(|_| AtomicU32::new(0)).collect();
    assert!(Ring::new(&w.0, &w.1, &d, 4).is_none(), "not a power of two");
    assert!(
        Ring::new(&w.0, &w.1, &d[..2], 5).is_none(),
        "record too large"
    );
    assert!(Ring::new(&w.0, &w.1, &d[..2], 0).is_none(), "zero capacity");
    assert!(Ring::new(&w.0, &w.1, &d[..1], 0).is_none(), "too small");
}

impl Spy {
    fn new_word() -> Spy {
        <Spy as crate::raw::FutexWord>::new(0)
    }
}

#[test]
fn sizes_zero_to_max_and_wrap_around_without_syscalls() {
    for cap in [1usize, 3, 4, 5, 13, 64] {
        let h = Heap::new(cap);
        let r = h.ring();
        let (mut p, mut c) = (r.producer().unwrap(), r.consumer().unwrap());
        let mut got = Vec::new();
        for i in 0..300 {
            let len = i % (cap + 1);
            let m = msg(i, len);
            assert_eq!(
                r.send(&mut p, &m, &mut now()),
                Ok(true),
                "cap {cap} msg {i}"
            );
            assert_eq!(
                r.recv(&mut c, Out::Vec(&mut got), &mut now()),
                Ok(Some(len))
            );
            assert_eq!(got, m);
        }
        assert_eq!(r.recv(&mut c, Out::Vec(&mut got), &mut now()), Ok(None));
        assert_eq!(h.head.waits.load(Relaxed) + h.head.wakes.load(Relaxed), 0);
        assert_eq!(h.tail.waits.load(Relaxed) + h.tail.wakes.load(Relaxed), 0);
    }
}

#[test]
fn full_ring_refuses_then_accepts() {
    let h = Heap::new(12); // 16-byte ring
    let r = h.ring();
    let (mut p, mut c) = (r.producer().unwrap(), r.consumer().unwrap());
    assert_eq!(r.send(&mut p, &[1; 12], &mut now()), Ok(true));
    assert_eq!(r.send(&mut p, &[], &mut now()), Ok(false), "full");
    assert_eq!(
        r.send(&mut p, &[1; 13], &mut now()),
        Err(RingError::TooLarge)
    );
    let mut small = [0u8; 11];
    assert_eq!(
        r.recv(&mut c, Out::Slice(&mut small), &mut now()),
        Err(RingError::BufferTooSmall { needed: 12 })
    );
    let mut big = [0u8; 20];
    assert_eq!(
        r.recv(&mut c, Out::Slice(&mut big), &mut now()),
        Ok(Some(12))
    );
    assert_eq!(&big[..12], &[1; 12]);
    // Two small messages fit at once.
    assert_eq!(r.send(&mut p, &[2; 4], &mut now()), Ok(true));
    assert_eq!(r.send(&mut p, &[3; 4], &mut now()), Ok(true));
    assert_eq!(r.send(&mut p, &[], &mut now()), Ok(false));
    let mut v = Vec::new();
    assert_eq!(r.recv(&mut c, Out::Vec(&mut v), &mut now()), Ok(Some(4)));
    assert_eq!(v, [2; 4]);
    assert_eq!(r.recv(&mut c, Out::Vec(&mut v), &mut now()), Ok(Some(4)));
    assert_eq!(v, [3; 4]);
}

#[test]
fn positions_wrap_at_2_pow_30() {
    let h = Heap::new(8);
    let start = POS_MASK + 1 - 8;
    h.head.store(start, Relaxed);
    h.tail.store(start, Relaxed);
    let r = h.ring();
    let (mut p, mut c) = (r.producer().unwrap(), r.consumer().unwrap());
    let mut v = Vec::new();
    for i in 0..10 {
        assert_eq!(r.send(&mut p, &msg(i, 5), &mut now()), Ok(true));
        assert_eq!(r.recv(&mut c, Out::Vec(&mut v), &mut now()), Ok(Some(5)));
        assert_eq!(v, msg(i, 5));
    }
    assert!(p.pos() < start, "wrapped");
}

#[test]
fn close_drains_then_disconnects() {
    let h = Heap::new(16);
    let r = h.ring();
    let (mut p, mut c) = (r.producer().unwrap(), r.consumer().unwrap());
    r.send(&mut p, b"a", &mut now()).unwrap();
    r.send(&mut p, b"bc", &mut now()).unwrap();
    r.close_producer();
    let mut v = Vec::new();
    assert_eq!(r.recv(&mut c, Out::Vec(&mut v), &mut now()), Ok(Some(1)));
    assert_eq!(r.poll(&c, &mut now()), Ok(true));
    assert_eq!(r.recv(&mut c, Out::Vec(&mut v), &mut now()), Ok(Some(2)));
    assert_eq!(v, b"bc");
    assert_eq!(
        r.recv(&mut c, Out::Vec(&mut v), &mut now()),
        Err(RingError::Disconnected)
    );
    assert_eq!(r.poll(&c, &mut now()), Err(RingError::Disconnected));
    // The consumer closes: sends fail at once, even with room.
    let h = Heap::new(16);
    let r = h.ring();
    let mut p = r.producer().unwrap();
    r.close_consumer();
    assert_eq!(
        r.send(&mut p, b"x", &mut now()),
        Err(RingError::Disconnected)
    );
}

#[test]
fn dead_peer_is_reported_after_draining() {
    let h = Heap::new(16);
    let r = h.ring();
    let (mut p, mut c) = (r.producer().unwrap(), r.consumer().unwrap());
    r.send(&mut p, b"last", &mut now()).unwrap();
    let mut dead = || true;
    let mut v = Vec::new();
    let mut w = Wait {
        block: false,
        deadline: None,
        peer_dead: &mut dead,
    };
    assert_eq!(r.recv(&mut c, Out::Vec(&mut v), &mut w), Ok(Some(4)));
    assert_eq!(
        r.recv(&mut c, Out::Vec(&mut v), &mut w),
        Err(RingError::Disconnected)
    );
    // Blocking: after a slice.
    let mut probes = 0;
    let mut dead = || {
        probes += 1;
        probes > 2
    };
    assert_eq!(
        r.recv(&mut c, Out::Vec(&mut v), &mut block(&mut dead)),
        Err(RingError::Disconnected)
    );
    // A producer with a full ring (32 bytes) and a dead consumer.
    assert_eq!(r.send(&mut p, &[0; 12], &mut now()), Ok(true));
    assert_eq!(r.send(&mut p, &[0; 12], &mut now()), Ok(true));
    let mut dead = || true;
    assert_eq!(
        r.send(&mut p, &[0; 12], &mut block(&mut dead)),
        Err(RingError::Disconnected)
    );
}

#[test]
fn deadline_expires() {
    let h = Heap::new(4);
    let r = h.ring();
    let (mut p, mut c) = (r.producer().unwrap(), r.consumer().unwrap());
    let mut budget = Budget::new(2);
    let mut live = alive;
    let mut w = Wait {
        block: true,
        deadline: Some(&mut budget),
        peer_dead: &mut live,
    };
    assert_eq!(r.recv(&mut c, Out::Vec(&mut Vec::new()), &mut w), Ok(None));
    assert_eq!(r.poll(&c, &mut w), Ok(false));
    r.send(&mut p, b"1234", &mut now()).unwrap();
    let mut budget = Budget::new(2);
    let mut w = Wait {
        block: true,
        deadline: Some(&mut budget),
        peer_dead: &mut live,
    };
    assert_eq!(r.send(&mut p, b"5", &mut w), Ok(false));
    assert!(budget.asked >= 1);
}

#[test]
fn scribbled_words_and_lengths_never_panic_or_hang() {
    let h = Heap::new(8);
    let r = h.ring();
    let mut v = Vec::new();
    let mut small = [0u8; 3];
    for x in [
        1u32,
        3,
        12,
        17,
        POS_MASK,
        CLOSED | 5,
        WAITING | 9,
        u32::MAX,
        0x1234_5678,
    ] {
        for (hv, tv) in [(x, 0), (0, x), (x, x), (x, x.wrapping_add(4))] {
            h.head.store(hv, Relaxed);
            h.tail.store(tv, Relaxed);
            for d in &h.data {
                d.store(x, Relaxed);
            }
            if let (Ok(mut p), Ok(mut c)) = (r.producer(), r.consumer()) {
                for len in [0usize, 3, 8] {
                    let _ = r.send(&mut p, &msg(1, len), &mut now());
                    let _ = r.recv(&mut c, Out::Vec(&mut v), &mut now());
                    let _ = r.recv(&mut c, Out::Slice(&mut small), &mut now());
                    let _ = r.poll(&c, &mut now());
                    assert!(v.len() <= 8);
                }
            }
        }
    }
    // A length beyond the maximum is Corrupt, not a huge allocation.
    h.head.store(8, Relaxed);
    h.tail.store(0, Relaxed);
    h.data[0].store(u32::MAX, Relaxed);
    let mut c = r.consumer().unwrap();
    assert_eq!(
        r.recv(&mut c, Out::Vec(&mut v), &mut now()),
        Err(RingError::Corrupt)
    );
    // Positions further apart than the ring are Corrupt.
    h.head.store(64, Relaxed);
    assert_eq!(r.consumer(), Err(RingError::Corrupt));
    assert_eq!(r.producer(), Err(RingError::Corrupt));
}

#[test]
fn threads_stream_in_order_with_sleeps_and_wakes() {
    const N: usize = if cfg!(miri) { 60 } else { 20_000 };
    let h = Heap::new(24);
    let h2 = h.clone();
    let done = Arc::new(AtomicBool::new(false));
    let prod = thread::spawn(move || {
        let r = h2.ring();
        let mut p = r.producer().unwrap();
        let mut live = alive;
        for i in 0..N {
            let m = msg(i, i % 25);
            assert_eq!(r.send(&mut p, &m, &mut block(&mut live)), Ok(true));
        }
        r.close_producer();
    });
    let r = h.ring();
    let mut c = r.consumer().unwrap();
    let mut live = alive;
    let mut v = Vec::new();
    for i in 0..N {
        assert_eq!(
            r.recv(&mut c, Out::Vec(&mut v), &mut block(&mut live)),
            Ok(Some(i % 25))
        );
        assert_eq!(v, msg(i, i % 25), "message {i}");
    }
    assert_eq!(
        r.recv(&mut c, Out::Vec(&mut v), &mut block(&mut live)),
        Err(RingError::Disconnected)
    );
    prod.join().unwrap();
    done.store(true, Relaxed);
}

#[test]
fn a_sleeping_consumer_is_woken_by_a_send() {
    let h = Heap::new(8);
    let h2 = h.clone();
    let t = thread::spawn(move || {
        let r = h2.ring();
        let mut c = r.consumer().unwrap();
        let mut live = alive;
        let mut v = Vec::new();
        r.recv(&mut c, Out::Vec(&mut v), &mut block(&mut live))
            .unwrap();
        v
    });
    until(|| h.head.waits.load(Relaxed) >= 1 && h.head.load(Relaxed) & WAITING != 0);
    let r = h.ring();
    let mut p = r.producer().unwrap();
    r.send(&mut p, b"wake", &mut now()).unwrap();
    assert_eq!(t.join().unwrap(), b"wake");
    assert!(h.head.wakes.load(Relaxed) >= 1);
    assert_eq!(
        h.head.load(Relaxed) & WAITING,
        0,
        "the swap takes WAITING off"
    );
}
