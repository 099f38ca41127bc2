//! The pipe's ring (`shmsync::raw::spsc::Ring`): messages arrive whole and
//! in order across wrap-around, with happens-before from the producer's
//! copy to the consumer's; no lost wake-up when either side sleeps; a
//! closed or dead producer is drained, then reported; a closed consumer
//! fails a blocked producer.
//!
//! The producer and the consumer are two loom threads standing in for two
//! processes; the ring's data are loom atomics (`LoomU32`), so a message
//! read before the producer's copy was published shows up as wrong bytes.
//! Timed waits sleep until woken here ([`TimeoutLate`]) except in the
//! death model: the production waiter sleeps in bounded slices, so with
//! timeouts that fire late a lost wake leaves a side blocked, which loom
//! reports as a deadlock; death is a step (the dying thread records it in
//! a [`DeadTable`] as its last action, the other side's probe reads it),
//! and there timeouts fire at once ([`TimeoutNow`]) so that the probe runs.
//!
//! Seeded bugs checked against this file (`--features <bug> --test pipe`),
//! with loom's verdict:
//!
//! | feature | loom's verdict |
//! |---|---|
//! | `bug-lost-wake` | `in_order_across_wrap`, `close_drains_then_disconnects`, `consumer_close_fails_a_blocked_producer`: `deadlock`; `dead_producer_is_drained_then_reported` passes (its timeouts fire at once) |
//! | `bug-weak-release`, `bug-weak-acquire` | `in_order_across_wrap`, `close_drains_then_disconnects`, `dead_producer_is_drained_then_reported`: a stale message (`left: [2, 2, 2, 2]`, or a length of 0); `consumer_close_fails_a_blocked_producer` passes |
//! | `bug-split-cas` | three models: `deadlock`; `dead_producer_is_drained_then_reported`: the message is lost (`Err(Disconnected)` first): the sleeper's non-atomic CAS overwrote the producer's publishing swap |
//! | `bug-no-waiters-bit` | every test: `Model exceeded maximum number of branches` (`WAITING` is bit 31, as the lock's `WAITERS`: a side whose bit was stripped never sleeps and spins) |
//! | `bug-pipe-close-lost` | `close_drains_then_disconnects`, `consumer_close_fails_a_blocked_producer`: `deadlock` |
//! | `bug-liveness-relaxed` | passes here (caught by `owner_death`) |
//!
//! Runtime (`LOOM_MAX_PREEMPTIONS=3`, `--release`): about 1.2 s in all (at
//! most ≈ 7 300 executions, `in_order_across_wrap`).
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use shmsync::raw::spsc::{ring_bytes, Out, Ring, RingError, Wait};
use shmsync::raw::AtomicWord;
use shmsync::raw::{FutexWord, Liveness};
use shmsync_loom_tests::{
    id, model, DeadTable, LoomFutex, LoomU32, TimeoutLate, TimeoutNow, TimeoutPolicy,
};

/// One direction of a pipe on loom words.
struct Heap<P: TimeoutPolicy> {
    head: LoomFutex<P>,
    tail: LoomFutex<P>,
    data: Vec<LoomU32>,
    cap: usize,
}

impl<P: TimeoutPolicy> Heap<P> {
    fn new(cap: usize) -> Arc<Self> {
        let words = ring_bytes(cap).unwrap() / 4;
        Arc::new(Heap {
            head: LoomFutex::new(0),
            tail: LoomFutex::new(0),
            data: (0..words).map(|_| LoomU32::new(0)).collect(),
            cap,
        })
    }

    fn ring(&self) -> Ring<'_, LoomFutex<P>, LoomU32> {
        Ring::new(&self.head, &self.tail, &self.data, self.cap).unwrap()
    }
}

/// A blocking wait whose peer never dies.
fn blocking(alive: &mut dyn FnMut() -> bool) -> Wait<'_> {
    Wait {
        block: true,
        deadline: None,
        peer_dead: alive,
    }
}

/// Message `i`: 4 bytes, all of them telling `i`.
fn msg(i: u8) -> [u8; 4] {
    [i + 1; 4]
}

/// Three 4-byte messages through an 8-byte ring (one record at a time):
/// every send but the first waits for the consumer, and every record
/// wraps to the same words; each arrives whole, in order.
#[test]
fn in_order_across_wrap() {
    model("in_order_across_wrap", || {
        let h = Heap::<TimeoutLate>::new(4);
        let h2 = h.clone();
        let p = thread::spawn(move || {
            let r = h2.ring();
            let mut p = r.producer().unwrap();
            let mut alive = || false;
            for i in 0..3 {
                assert_eq!(r.send(&mut p, &msg(i), &mut blocking(&mut alive)), Ok(true));
            }
        });
        let r = h.ring();
        let mut c = r.consumer().unwrap();
        let mut alive = || false;
        let mut v = Vec::new();
        for i in 0..3 {
            assert_eq!(
                r.recv(&mut c, Out::Vec(&mut v), &mut blocking(&mut alive)),
                Ok(Some(4))
            );
            assert_eq!(v, msg(i), "message {i} whole and in order");
        }
        p.join().unwrap();
    });
}

/// The producer sends two messages and closes; the consumer, maybe asleep
/// already, gets both, then `Disconnected`.
#[test]
fn close_drains_then_disconnects() {
    model("close_drains_then_disconnects", || {
        let h = Heap::<TimeoutLate>::new(12);
        let h2 = h.clone();
        let p = thread::spawn(move || {
            let r = h2.ring();
            let mut p = r.producer().unwrap();
            let mut alive = || false;
            for i in 0..2 {
                assert_eq!(r.send(&mut p, &msg(i), &mut blocking(&mut alive)), Ok(true));
            }
            r.close_producer();
        });
        let r = h.ring();
        let mut c = r.consumer().unwrap();
        let mut alive = || false;
        let mut v = Vec::new();
        for i in 0..2 {
            assert_eq!(
                r.recv(&mut c, Out::Vec(&mut v), &mut blocking(&mut alive)),
                Ok(Some(4))
            );
            assert_eq!(v, msg(i));
        }
        assert_eq!(
            r.recv(&mut c, Out::Vec(&mut v), &mut blocking(&mut alive)),
            Err(RingError::Disconnected)
        );
        p.join().unwrap();
    });
}

/// The producer sends one message and dies (a step: it records its death
/// last); the consumer gets the message, then `Disconnected`, through its
/// probe.
#[test]
fn dead_producer_is_drained_then_reported() {
    model("dead_producer_is_drained_then_reported", || {
        let h = Heap::<TimeoutNow>::new(4);
        let table = Arc::new(DeadTable::default());
        let (h2, t2) = (h.clone(), table.clone());
        let p = thread::spawn(move || {
            let r = h2.ring();
            let mut p = r.producer().unwrap();
            let mut alive = || false;
            assert_eq!(r.send(&mut p, &msg(0), &mut blocking(&mut alive)), Ok(true));
            t2.die(id(1));
        });
        let r = h.ring();
        let mut c = r.consumer().unwrap();
        let mut probe = table.probe();
        let mut dead = || probe.owner_is_dead(1);
        let mut v = Vec::new();
        assert_eq!(
            r.recv(&mut c, Out::Vec(&mut v), &mut blocking(&mut dead)),
            Ok(Some(4))
        );
        assert_eq!(v, msg(0));
        assert_eq!(
            r.recv(&mut c, Out::Vec(&mut v), &mut blocking(&mut dead)),
            Err(RingError::Disconnected)
        );
        p.join().unwrap();
    });
}

/// A producer blocked on a full ring is released by the consumer's close
/// and gets `Disconnected`.
#[test]
fn consumer_close_fails_a_blocked_producer() {
    model("consumer_close_fails_a_blocked_producer", || {
        let h = Heap::<TimeoutLate>::new(4);
        let h2 = h.clone();
        let p = thread::spawn(move || {
            let r = h2.ring();
            let mut p = r.producer().unwrap();
            let mut alive = || false;
            assert_eq!(r.send(&mut p, &msg(0), &mut blocking(&mut alive)), Ok(true));
            assert_eq!(
                r.send(&mut p, &msg(1), &mut blocking(&mut alive)),
                Err(RingError::Disconnected)
            );
        });
        let r = h.ring();
        // Wait until the ring is full, then close without reading.
        while r
            .head()
            .atomic()
            .load(core::sync::atomic::Ordering::Acquire)
            & 0xff
            == 0
        {
            thread::yield_now();
        }
        r.close_consumer();
        p.join().unwrap();
    });
}
