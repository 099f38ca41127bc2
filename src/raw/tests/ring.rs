//! Unit tests of [`RawRing`] on heap memory, with the production words
//! (and [`Spy`], to count the event counts' system calls). Run under Miri
//! as the rest of `src/raw/tests.rs`.

use core::sync::atomic::Ordering::{Relaxed, SeqCst};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64};
use core::time::Duration;
use std::thread;

use super::{until, Budget, Spy};
use crate::raw::ring::{
    pack, tag, Claim, RawRing, RingError, RingWords, FREE, FULL, READING, SEALED, WAITERS, WRITING,
};
use crate::raw::Liveness;

/// A ring's words and payloads (one `u64` per slot) on the heap.
struct Heap {
    head: AtomicU32,
    tail: AtomicU32,
    closed: AtomicU32,
    lost: AtomicU32,
    readable: Spy,
    writable: Spy,
    slots: Vec<AtomicU64>,
    data: Vec<AtomicU64>,
}

type Ring<'a> = RawRing<'a, AtomicU32, Spy, AtomicU64>;

impl Heap {
    fn new(cap: u32) -> Heap {
        Heap {
            head: AtomicU32::new(0),
            tail: AtomicU32::new(0),
            closed: AtomicU32::new(0),
            lost: AtomicU32::new(0),
            readable: crate::raw::FutexWord::new(0),
            writable: crate::raw::FutexWord::new(0),
            slots: (0..cap)
                .map(|i| AtomicU64::new(Ring::initial_slot(i)))
                .collect(),
            data: (0..cap).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn ring(&self) -> Ring<'_> {
        RawRing::new(RingWords {
            head: &self.head,
            tail: &self.tail,
            closed: &self.closed,
            lost: &self.lost,
            readable: &self.readable,
            writable: &self.writable,
            slots: &self.slots,
        })
        .expect("a valid capacity")
    }

    fn try_put(&self, me: u32, v: u64) -> Result<Claim, RingError> {
        // Relaxed: ordered by the slot word (module docs of `ring`).
        self.ring()
            .try_put(me, &mut Alive, |i| self.data[i].store(v, Relaxed))
    }

    fn try_get(&self, me: u32) -> Result<u64, RingError> {
        let mut v = 0;
        // Relaxed: ordered by the slot word.
        self.ring().try_get(me, &mut Alive, &mut |_| true, |i| {
            v = self.data[i].load(Relaxed)
        })?;
        Ok(v)
    }

    fn get(&self, me: u32, live: &mut dyn Liveness) -> Result<u64, RingError> {
        let mut v = 0;
        // Relaxed: ordered by the slot word.
        self.ring().get(me, None, live, &mut |_| true, |i| {
            v = self.data[i].load(Relaxed)
        })?;
        Ok(v)
    }
}

/// Every claimant is alive.
struct Alive;
impl Liveness for Alive {
    fn probe_interval(&mut self, _word: u32) -> Option<Duration> {
        Some(Duration::from_millis(1))
    }
    fn owner_is_dead(&mut self, _word: u32) -> bool {
        false
    }
}

/// These TIDs are dead; counts the probes.
struct Dead<'a>(&'a [u32], u32);
impl Liveness for Dead<'_> {
    fn probe_interval(&mut self, _word: u32) -> Option<Duration> {
        Some(Duration::from_millis(1))
    }
    fn owner_is_dead(&mut self, word: u32) -> bool {
        self.1 += 1;
        self.0.contains(&(word & crate::raw::ring::TID_BITS))
    }
}

#[test]
fn fifo_and_wrap_around_for_small_capacities() {
    for cap in [1u32, 2, 3, 5] {
        let h = Heap::new(cap);
        let mut next_in = 0u64;
        let mut next_out = 0u64;
        for round in 0..40u64 {
            // Fill to a varying level, then drain part of it.
            let want = (round % u64::from(cap + 1)).min(u64::from(cap));
            while (h.ring().len() as u64) < want {
                h.try_put(1, next_in).unwrap();
                next_in += 1;
            }
            if h.ring().len() == cap as usize {
                assert_eq!(h.try_put(1, 999), Err(RingError::Full), "cap {cap}");
            }
            while h.ring().len() > (round % 2) as usize {
                assert_eq!(h.try_get(2), Ok(next_out), "cap {cap}");
                next_out += 1;
            }
        }
        while let Ok(v) = h.try_get(2) {
            assert_eq!(v, next_out);
            next_out += 1;
        }
        assert_eq!(next_out, next_in);
        assert_eq!(h.try_get(2), Err(RingError::Empty));
        assert!(next_in > u64::from(3 * cap), "several laps for cap {cap}");
    }
}

#[test]
fn positions_wrap_around_u32() {
    // Start both counters (and the slots' stamps) just below 2^32.
    for cap in [1u32, 3, 4] {
        let h = Heap::new(cap);
        let lap = cap.next_power_of_two();
        let start = 0u32.wrapping_sub(2 * lap);
        h.head.store(start, Relaxed);
        h.tail.store(start, Relaxed);
        for (i, s) in h.slots.iter().enumerate() {
            s.store(pack(start.wrapping_add(i as u32), FREE), Relaxed);
        }
        for v in 0..(10 * u64::from(cap)) {
            h.try_put(1, v).unwrap();
            assert_eq!(h.ring().len(), 1);
            assert_eq!(h.try_get(2), Ok(v));
        }
        assert!(h.head.load(Relaxed) < start, "wrapped");
    }
}

#[test]
fn close_fails_puts_and_drains_gets_then_seals() {
    let h = Heap::new(3);
    h.try_put(1, 10).unwrap();
    h.try_put(1, 11).unwrap();
    assert!(h.ring().close());
    assert!(!h.ring().close(), "closed once");
    assert!(h.ring().is_closed());
    assert_eq!(h.try_put(1, 12), Err(RingError::Closed));
    assert_eq!(h.try_get(2), Ok(10));
    assert_eq!(h.try_get(2), Ok(11));
    assert_eq!(h.try_get(2), Err(RingError::Closed));
    // The slot at the head is sealed: no put can ever land there, even one
    // that read the flag before the close.
    let w = h.slots[2].load(Relaxed);
    assert_eq!(tag(w), FREE | SEALED);
    h.closed.store(0, Relaxed);
    assert_eq!(h.try_put(1, 13), Err(RingError::Closed), "sealed");
    assert_eq!(h.try_get(2), Err(RingError::Closed));
}

#[test]
fn no_wake_without_sleepers() {
    let h = Heap::new(2);
    for v in 0..10 {
        h.try_put(1, v).unwrap();
        assert_eq!(h.try_get(2), Ok(v));
    }
    assert_eq!(h.readable.wakes.load(Relaxed), 0);
    assert_eq!(h.writable.wakes.load(Relaxed), 0);
    assert_eq!(h.readable.waits.load(Relaxed), 0);
}

#[test]
fn a_marked_slot_wakes_once_when_it_changes() {
    let h = Heap::new(1);
    let w = u64::from(WAITERS);
    let wakes = || h.readable.wakes.load(Relaxed) + h.writable.wakes.load(Relaxed);
    // A consumer's mark on the empty slot: the claim carries it, the
    // publish clears it and wakes both counts.
    h.slots[0].fetch_or(w, Relaxed);
    let r = h.ring();
    let c = r.claim_put(1).unwrap();
    assert_eq!(h.slots[0].load(Relaxed), pack(0, WRITING | 1 | WAITERS));
    assert_eq!(wakes(), 0);
    assert!(r.publish(c, 1));
    assert_eq!(h.slots[0].load(Relaxed), pack(0, FULL));
    assert_eq!(wakes(), 2);
    // A producer's mark on the full slot: carried by the consumer's claim,
    // cleared by its release.
    h.slots[0].fetch_or(w, Relaxed);
    let c = r.claim_get(2, &mut |_| true).unwrap();
    assert_eq!(h.slots[0].load(Relaxed), pack(0, READING | 2 | WAITERS));
    assert!(r.release(c, 2));
    assert_eq!(h.slots[0].load(Relaxed), pack(1, FREE));
    assert_eq!(wakes(), 4);
    // A mark made while the claimant works (the claim had none).
    let c = r.claim_put(1).unwrap();
    h.slots[0].fetch_or(w, Relaxed);
    assert!(r.publish(c, 1));
    assert_eq!(wakes(), 6);
    // Unmarked: no wake.
    assert_eq!(h.try_get(2), Ok(0));
    assert_eq!(wakes(), 6);
    // A mark on a claim of another thread is not this claimant's.
    let c = r.claim_put(1).unwrap();
    h.slots[0].store(pack(c.pos, WRITING | 7 | WAITERS), Relaxed);
    assert!(!r.publish(c, 1));
    assert_eq!(wakes(), 6);
}

#[test]
fn a_sleeping_consumer_is_woken_by_a_put() {
    let h = Heap::new(2);
    thread::scope(|s| {
        let c = s.spawn(|| h.get(2, &mut Alive));
        until(|| h.readable.waits.load(Relaxed) >= 1);
        h.try_put(1, 42).unwrap();
        assert_eq!(c.join().unwrap(), Ok(42));
    });
    assert!(h.readable.wakes.load(Relaxed) >= 1, "the put woke it");
}

#[test]
fn a_sleeping_producer_is_woken_by_a_get_and_by_close() {
    let h = Heap::new(1);
    h.try_put(1, 1).unwrap();
    thread::scope(|s| {
        let p = s.spawn(|| {
            h.ring()
                .put(3, None, &mut Alive, |i| h.data[i].store(2, Relaxed))
        });
        until(|| h.writable.waits.load(Relaxed) >= 1);
        assert_eq!(h.try_get(2), Ok(1));
        assert!(p.join().unwrap().is_ok());
        assert_eq!(h.try_get(2), Ok(2));
    });
    // Blocked producers and consumers are released by close.
    h.try_put(1, 5).unwrap();
    thread::scope(|s| {
        let p = s.spawn(|| {
            h.ring()
                .put(3, None, &mut Alive, |i| h.data[i].store(6, Relaxed))
        });
        until(|| h.writable.waits.load(Relaxed) >= 2);
        h.ring().close();
        assert_eq!(p.join().unwrap(), Err(RingError::Closed));
    });
    assert_eq!(h.try_get(2), Ok(5));
    let h2 = Heap::new(1);
    thread::scope(|s| {
        let c = s.spawn(|| h2.get(2, &mut Alive));
        until(|| h2.readable.waits.load(Relaxed) >= 1);
        h2.ring().close();
        assert_eq!(c.join().unwrap(), Err(RingError::Closed));
    });
}

#[test]
fn timed_operations_expire() {
    let h = Heap::new(1);
    let mut b = Budget::new(3);
    let r = h
        .ring()
        .get(2, Some(&mut b), &mut Alive, &mut |_| true, |_| {});
    assert_eq!(r, Err(RingError::Empty));
    assert!(b.asked >= 4);
    h.try_put(1, 1).unwrap();
    let mut b = Budget::new(2);
    let r = h.ring().put(1, Some(&mut b), &mut Alive, |_| {});
    assert_eq!(r, Err(RingError::Full));
    assert_eq!(h.try_get(2), Ok(1));
}

#[test]
fn refused_items_stay() {
    let h = Heap::new(2);
    h.try_put(1, 7).unwrap();
    let r = h
        .ring()
        .try_get(2, &mut Alive, &mut |_| false, |_| panic!("not read"));
    assert_eq!(r, Err(RingError::Refused));
    assert_eq!(h.try_get(2), Ok(7));
}

/// A producer that died after its claim (slot `WRITING`, maybe before it
/// advanced the tail) is reaped by a blocked consumer: one loss, counted,
/// and the items behind it still arrive.
#[test]
fn a_dead_writer_is_reaped_by_a_waiting_consumer() {
    for advanced in [false, true] {
        let h = Heap::new(3);
        h.slots[0].store(pack(0, WRITING | 77), Relaxed);
        if advanced {
            h.tail.store(1, Relaxed);
        }
        h.try_put(1, 5).unwrap();
        // try_get does not see past it while 77 lives.
        assert_eq!(h.try_get(2), Err(RingError::Empty));
        let mut live = Dead(&[77], 0);
        assert_eq!(h.get(2, &mut live), Ok(5));
        assert!(live.1 >= 1, "probed");
        assert_eq!(h.ring().lost(), 1);
        assert_eq!(h.try_get(2), Err(RingError::Empty));
        // The ring goes on over the reaped slot.
        for v in 0..7 {
            h.try_put(1, v).unwrap();
            assert_eq!(h.try_get(2), Ok(v));
        }
    }
}

/// A consumer that died after its claim (slot `READING`) is reaped by a
/// producer blocked on the full ring.
#[test]
fn a_dead_reader_is_reaped_by_a_waiting_producer() {
    let h = Heap::new(1);
    h.try_put(1, 5).unwrap();
    h.slots[0].store(pack(0, READING | 88), Relaxed);
    h.head.store(1, Relaxed);
    assert_eq!(h.try_put(1, 6), Err(RingError::Full), "88 lives");
    let mut live = Dead(&[88], 0);
    let r = h
        .ring()
        .put(1, None, &mut live, |i| h.data[i].store(6, Relaxed));
    assert!(r.is_ok());
    assert_eq!(h.ring().lost(), 1);
    assert_eq!(h.try_get(2), Ok(6));
}

/// A consumer that died holding its item is found by `reap_dead` (what
/// `lost()` runs), though nobody waits behind it; live claims stay.
#[test]
fn reap_dead_finds_claims_nobody_waits_for() {
    let h = Heap::new(3);
    h.try_put(1, 5).unwrap();
    h.try_put(1, 6).unwrap();
    h.slots[0].store(pack(0, READING | 88), Relaxed);
    h.head.store(1, Relaxed);
    h.slots[2].store(pack(2, WRITING | 89), Relaxed);
    let mut live = Dead(&[88], 0);
    assert_eq!(h.ring().reap_dead(&mut live), 1);
    assert_eq!(live.1, 2, "one probe per claimed slot");
    assert_eq!(h.ring().lost(), 1);
    assert_eq!(tag(h.slots[2].load(Relaxed)), WRITING | 89, "alive: kept");
    assert_eq!(h.try_get(2), Ok(6));
}

/// Exactly one of several reapers wins.
#[test]
fn one_reap_per_dead_claim() {
    let h = Heap::new(2);
    let w = pack(0, WRITING | 9);
    h.slots[0].store(w, Relaxed);
    let wins: u32 = thread::scope(|s| {
        let hs: Vec<_> = (0..4).map(|_| s.spawn(|| h.ring().reap(0, w))).collect();
        hs.into_iter().map(|t| u32::from(t.join().unwrap())).sum()
    });
    assert_eq!(wins, 1);
    assert_eq!(h.ring().lost(), 1);
    assert!(!h.ring().reap(0, pack(0, FULL)), "only claims are reaped");
}

/// A claimant judged dead while alive (impossible with the liveness
/// bytes, possible under a scribbling peer) loses its item, counted, and
/// nothing is delivered from the reaped slot.
#[test]
fn a_claimant_reaped_mid_write_delivers_nothing() {
    let h = Heap::new(2);
    let r = h.ring().try_put(1, &mut Alive, |i| {
        let w = h.slots[i].load(Relaxed);
        assert_eq!(tag(w), WRITING | 1);
        assert!(h.ring().reap(i, w));
    });
    assert!(r.is_ok());
    assert_eq!(h.ring().lost(), 1);
    assert_eq!(h.try_get(2), Err(RingError::Empty));
    h.try_put(1, 3).unwrap();
    assert_eq!(h.try_get(2), Ok(3));
}

/// Any word values: no panic, no endless loop, bounded timed waits.
#[test]
fn scribbled_words_never_panic_or_hang() {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let rounds = if cfg!(miri) { 30 } else { 3000 };
    for _ in 0..rounds {
        let cap = (rnd() % 5 + 1) as u32;
        let h = Heap::new(cap);
        let pick = |r: u64, lap: u32, cap: u32| -> u32 {
            match r % 4 {
                0 => r as u32 >> 8,
                1 => (r as u32 >> 8) % (cap + 1),
                2 => (r as u32 >> 8) % (lap * 3),
                _ => 0u32.wrapping_sub((r as u32 >> 8) % (lap * 3)),
            }
        };
        let lap = cap.next_power_of_two();
        h.head.store(pick(rnd(), lap, cap), Relaxed);
        h.tail.store(pick(rnd(), lap, cap), Relaxed);
        h.closed
            .store((rnd() % 4 == 0) as u32 * rnd() as u32, Relaxed);
        for s in &h.slots {
            let r = rnd();
            let st = pick(r, lap, cap);
            s.store(pack(st, rnd() as u32), Relaxed);
        }
        for _ in 0..4 {
            let _ = h.try_put(1, 1);
            let _ = h.try_get(2);
            let _ = h.ring().len();
            let mut b = Budget::new(1);
            let _ = h.ring().put(1, Some(&mut b), &mut Dead(&[], 0), |_| {});
            let mut b = Budget::new(1);
            let _ = h
                .ring()
                .get(2, Some(&mut b), &mut Dead(&[], 0), &mut |_| true, |_| {});
        }
        assert!(h.ring().len() <= cap as usize);
    }
}

/// Several producers and consumers on threads: every item exactly once,
/// each producer's items in its order.
#[test]
fn mpmc_every_item_once_in_producer_order() {
    const P: u64 = 3;
    let n: u64 = if cfg!(miri) { 30 } else { 20_000 };
    for cap in [1u32, 3, 8] {
        let h = Heap::new(cap);
        let done = AtomicBool::new(false);
        let taken = AtomicU64::new(0);
        let got: Vec<Vec<u64>> = thread::scope(|s| {
            for p in 0..P {
                let h = &h;
                s.spawn(move || {
                    for k in 0..n {
                        let v = (p << 32) | k;
                        h.ring()
                            .put(10 + p as u32, None, &mut Alive, |i| {
                                h.data[i].store(v, Relaxed)
                            })
                            .unwrap();
                    }
                });
            }
            let cons: Vec<_> = (0..P as u32)
                .map(|c| {
                    let (h, done, taken) = (&h, &done, &taken);
                    s.spawn(move || {
                        let mut mine = Vec::new();
                        let mut last = [None::<u64>; P as usize];
                        loop {
                            let mut v = 0;
                            let mut b = Budget::new(5);
                            match h.ring().get(
                                20 + c,
                                Some(&mut b),
                                &mut Alive,
                                &mut |_| true,
                                |i| v = h.data[i].load(Relaxed),
                            ) {
                                Ok(_) => {
                                    taken.fetch_add(1, SeqCst);
                                    let (p, k) = ((v >> 32) as usize, v & 0xffff_ffff);
                                    if let Some(l) = last[p] {
                                        assert!(k > l, "producer {p}: {k} after {l}");
                                    }
                                    last[p] = Some(k);
                                    mine.push(v);
                                }
                                Err(RingError::Empty) if done.load(SeqCst) => break,
                                Err(RingError::Empty) => {}
                                Err(e) => panic!("{e:?}"),
                            }
                        }
                        mine
                    })
                })
                .collect();
            until(|| taken.load(SeqCst) == P * n);
            done.store(true, SeqCst);
            let mut all = Vec::new();
            for c in cons {
                all.push(c.join().unwrap());
            }
            all
        });
        let mut all: Vec<u64> = got.into_iter().flatten().collect();
        all.sort_unstable();
        let want: Vec<u64> = (0..P)
            .flat_map(|p| (0..n).map(move |k| (p << 32) | k))
            .collect();
        assert_eq!(all.len(), want.len(), "cap {cap}");
        assert_eq!(all, want, "cap {cap}");
    }
}

/// The spin's pace (a heuristic, `Pace`): quick waits in a row switch a
/// thread to the long first spin, a wait after a short run switches it
/// back, another ring starts over, and the two sides are apart.
#[test]
fn the_pace_follows_streaming_and_requests() {
    use crate::raw::ring::{Pace, Side};
    std::thread::spawn(|| {
        let ring = 0x1000;
        // Three quick waits 100 items apart: streaming.
        let mut at = 0u32;
        for _ in 0..3 {
            assert!(!Pace::streaming(Side::Get, ring, at));
            Pace::ended(Side::Get, true);
            at += 100;
        }
        assert!(Pace::streaming(Side::Get, ring, at));
        Pace::ended(Side::Get, true);
        // The other side is not.
        assert!(!Pace::streaming(Side::Put, ring, at));
        // One item since the last wait (a request answered): not any more.
        at += 1;
        assert!(!Pace::streaming(Side::Get, ring, at));
        Pace::ended(Side::Get, true);
        // A slow wait resets the count.
        at += 100;
        Pace::streaming(Side::Get, ring, at);
        Pace::ended(Side::Get, true);
        Pace::streaming(Side::Get, ring, at + 100);
        Pace::ended(Side::Get, false);
        for i in 2..5 {
            assert!(!Pace::streaming(Side::Get, ring, at + 100 * i));
            Pace::ended(Side::Get, true);
        }
        assert!(Pace::streaming(Side::Get, ring, at + 500));
        // Another ring starts over.
        assert!(!Pace::streaming(Side::Get, ring + 8, 0));
    })
    .join()
    .unwrap();
}
