//! The atomic cells' read-modify-write logic under loom: the production
//! functions of `shmsync::raw::rmw` (every `Repr`/`Arith`/`Bitwise`
//! operation: the CAS loop `fetch_update`, the float RMWs built on it,
//! `bool`'s truth-value exchanges, the integers' single hardware RMWs), run
//! on loom's atomics instead of the mapped `core` atomics.
//!
//! Words: loom's `AtomicU64`, `AtomicI64`, `AtomicU32` and `AtomicU8` as
//! shmsync's [`AtomicWord`] (`LoomU64` ... of this crate's `src/lib.rs`;
//! loom atomics cannot be overlaid on mapped memory, which is why the
//! logic is generic over the word). Threads stand in for processes (`loom::MAX_THREADS` is
//! 5 including main).
//!
//! Two groups of models:
//!
//! - **Values** (9 tests, 2–3 threads): the loops lose no update, retry
//!   and decline as std's contract says (a declined `fetch_update` reads
//!   with its `fetch` ordering), and `bool` compares truth values.
//! - **Orderings** (`cell_<type>::<op>`, 48 tests): for every RMW of every
//!   element kind, its release half publishes and its acquire half
//!   observes a `loom::cell::UnsafeCell` payload ([`release_model`],
//!   [`acquire_model`]; 2 threads), each with all three orderings that
//!   have that half. Kinds: `i64` and `u8` (integers: one hardware RMW of
//!   the cell's own width; signed and unsigned `fetch_max`/`fetch_min`),
//!   `f64` and `f32` (bit patterns; arithmetic as CAS loops on a 64- and a
//!   32-bit word), `bool` (a byte: hardware `swap`/`fetch_and`/`fetch_or`,
//!   loops for the exchanges, `fetch_xor`, `fetch_nand`, started from a
//!   peer's non-canonical byte 2). Every cell uses the `core` atomic of its
//!   own width, so there is no sub-word class (no CAS on a wider word).
//!   Not modelled: `fetch_and(true)`/`fetch_or(false)` on `bool` (they
//!   keep the byte, so no observer can tell that they ran).
//!
//! Run (own target dir; the lock models' README has the full command set):
//!
//! ```sh
//! RUSTFLAGS="--cfg loom -C debug-assertions" LOOM_MAX_PREEMPTIONS=3 \
//!   cargo test --manifest-path loom-tests/Cargo.toml --release --test atomic_ops
//! ```
//!
//! Whole file: 57 tests (297 loom models), about 2 s at
//! `LOOM_MAX_PREEMPTIONS=3` after the build (each ordering model explores
//! 5–9 executions).
//!
//! # Seeded bugs
//!
//! `check-bugs.sh` re-checks them all. Two kinds (README.md):
//!
//! - the word misbehaves: a `bug-*` feature of this crate, applied by the
//!   models' word (`Loom`, `src/lib.rs`) to everything the code under test
//!   does with it; the models' own observations and publications (the
//!   payload flag, the peer's store) go through `Unseeded` and stay exact;
//! - the logic above the word is wrong: compiled into `src/raw/rmw.rs` with
//!   `RUSTFLAGS='--cfg loom -C debug-assertions --cfg
//!   shmsync_atomic_bug="NAME"'` (see its docs).
//!
//! Verdicts recorded with loom 0.7.3, `LOOM_MAX_PREEMPTIONS=3`,
//! `--release`; "Causality" is loom's "Causality violation: Concurrent read
//! and write accesses" on the payload:
//!
//! | bug                  | what breaks                                   | loom's verdict                                                                                   |
//! |----------------------|-----------------------------------------------|--------------------------------------------------------------------------------------------------|
//! | `bug-weak-release`   | every store and RMW drops its release half    | all 48 `cell_*` tests, each in its first release model: Causality (`check-bugs.sh` requires every one) |
//! | `bug-weak-acquire`   | every load and RMW drops its acquire half     | all 48 `cell_*` tests, each in its first acquire model (its 3 release models pass), and `declined_fetch_update_acquires`: Causality (required, each) |
//! | `bug-split-cas`      | a CAS is a load, a compare and a store        | all 9 value tests: lost updates (`float_fetch_add_sums_exactly`: 1.0 ≠ 3.0, `fetch_update_retries_and_declines`: 1.0 ≠ 2.0, ...), `bool_truth_value_exchange`'s assertion, `declined_fetch_update_acquires`: Causality; the `cell_*` tests pass (one writer each) |
//! | `stale_new` (cfg)    | value to store not recomputed after a failed exchange | 6 tests: lost updates (`float_fetch_add_sums_exactly`: 2.0 ≠ 3.0; `fetch_update_retries_and_declines`: the cap taken 3 times; `fetch_max_min_converge`: min 0.0 ≠ -1.0; int `fetch_update`, `fetch_sub`, bool `fetch_xor`) |
//! | `no_retry` (cfg)     | a failed exchange ends the loop               | the same 6 (lost updates, `fetch_update` reports `Err` with the cap not reached), and `cell_*::fetch_update` (5): Causality (the `Err` value was read `Relaxed`) |
//! | `bool_bytes` (cfg)   | `bool` exchange compares bytes, not truth     | `bool_truth_value_exchange`: `compare_exchange(true, false)` on the peer's 2 gives `Err(true)`; `cell_bool::compare_exchange`: "the checked branch was never taken"; `cell_bool::compare_exchange_weak`: the model's retry loop never ends (loom's branch limit) |
//!
//! Every ordering model runs one operation of one cell type, so the two
//! ordering bugs failing each of them shows what the in-crate ordering
//! bugs they replace showed per group of operations (`fetch_max`/`min`,
//! `fetch_sub`, every `bool` RMW, float exchanges, a CAS loop's exchange,
//! a declined `fetch_update`'s load): each model catches its operation's
//! ordering weakened, in each half. A non-atomic CAS loop (formerly
//! `split_rmw`) is `bug-split-cas`.
//!
//! The half was checked with `--nocapture` (which prints each model that
//! passed): under `bug-weak-release` no model of a `cell_*` test passes,
//! under `bug-weak-acquire` exactly its three release models do. Each
//! ordering model was also checked on its own, with a temporary variant
//! that weakens only one of `Acquire`/`AcqRel`/`SeqCst`
//! (`Release`/`AcqRel`/`SeqCst`): all 48 tests failed, each in the model of
//! that ordering and half.
//!
//! Without the main thread's `yield_now` after spawning (loom#392, see
//! [`three`]), a payload model explored 1 execution and could not have
//! caught `relaxed_success`; [`checked`] now fails such a model ("the
//! checked branch was never taken"). Every value model also asserts that
//! loom explored at least one failed exchange where it has a CAS loop.
#![cfg(loom)]

use core::cell::Cell;
use core::sync::atomic::Ordering::{self, AcqRel, Acquire, Relaxed, Release, SeqCst};

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;
use shmsync::raw::rmw::{Arith, Bitwise, Repr};
use shmsync::raw::AtomicWord;
use shmsync_loom_tests::{cas_failures, model, LoomI64, LoomU32, LoomU64, LoomU8, Unseeded};

thread_local! {
    /// Executions in which a model took its interesting branch (loom runs
    /// a model's threads as coroutines of the test thread).
    static HITS: Cell<u64> = const { Cell::new(0) };
}

/// Runs a model and checks that loom explored what makes it meaningful: at
/// least one failed exchange (a retry of the CAS loop) if `retries`, and at
/// least one execution through the branch that calls [`hit`] if `branch`.
/// Guards against loom silently skipping executions (loom#392).
fn checked<F>(name: &str, retries: bool, branch: bool, f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    let (fails, hits) = (cas_failures(), HITS.with(Cell::get));
    model(name, f);
    if retries {
        assert!(cas_failures() > fails, "{name}: no CAS retry explored");
    }
    if branch {
        assert!(
            HITS.with(Cell::get) > hits,
            "{name}: the checked branch was never taken"
        );
    }
}

fn hit() {
    HITS.with(|n| n.set(n.get() + 1));
}

/// Runs `work(i)` on two spawned threads (i = 1, 2) and on the model's main
/// thread (i = 0); returns the three results in thread order.
fn three<S, R>(shared: &Arc<S>, work: fn(&S, usize) -> R) -> [R; 3]
where
    S: Send + Sync + 'static,
    R: Send + 'static,
{
    let spawned: Vec<_> = (1..3)
        .map(|i| {
            let s = shared.clone();
            thread::spawn(move || work(&s, i))
        })
        .collect();
    // loom#392: without this yield, loom never schedules a spawned thread
    // whose first operation is an atomic load (every CAS loop's is) before
    // the main thread's next atomic access, and silently skips those
    // executions. Checked: a main-thread load after two spawned CAS-loop
    // increments saw only 0 in 162 executions, and 0, 1 and 2 with it.
    thread::yield_now();
    let mine = work(shared, 0);
    let mut out = spawned.into_iter().map(|h| h.join().unwrap());
    [mine, out.next().unwrap(), out.next().unwrap()]
}

fn sorted(mut v: [f64; 3]) -> [f64; 3] {
    v.sort_by(f64::total_cmp);
    v
}

/// 3 threads × `f64::fetch_add(1.0)`: the sum is exact and the previous
/// values returned are 0, 1, 2 in some order (each RMW saw a distinct,
/// complete predecessor).
#[test]
fn float_fetch_add_sums_exactly() {
    checked("float_fetch_add_sums_exactly", true, false, || {
        let w = Arc::new(LoomU64::new(0f64.to_bits()));
        let olds = three(&w, |w, _| f64::fetch_add(w, 1.0, Relaxed));
        assert_eq!(f64::load(&*w, Relaxed), 3.0);
        assert_eq!(sorted(olds), [0.0, 1.0, 2.0]);
    });
}

/// The same with `fetch_sub` and mixed orderings, from a non-zero start.
#[test]
fn float_fetch_sub_mixed_orders() {
    checked("float_fetch_sub_mixed_orders", true, false, || {
        let w = Arc::new(LoomU64::new(10f64.to_bits()));
        let olds = three(&w, |w, i| {
            let o = [AcqRel, Release, SeqCst][i];
            f64::fetch_sub(w, 2.5, o)
        });
        assert_eq!(f64::load(&*w, Relaxed), 2.5);
        assert_eq!(sorted(olds), [5.0, 7.5, 10.0]);
    });
}

/// 3 threads × `i64::fetch_add(1)` (one loom RMW, as production is one
/// `lock xadd`) and × an increment through the generic `fetch_update`.
#[test]
fn int_fetch_add_and_fetch_update_sum_exactly() {
    checked(
        "int_fetch_add_and_fetch_update_sum_exactly",
        true,
        false,
        || {
            struct S {
                add: LoomI64,
                upd: LoomI64,
            }
            let s = Arc::new(S {
                add: LoomI64::new(0),
                upd: LoomI64::new(0),
            });
            let olds = three(&s, |s, _| {
                let a = i64::fetch_add(&s.add, 1, Relaxed);
                let u = i64::fetch_update(&s.upd, Relaxed, Relaxed, |x| Some(x + 1)).unwrap();
                (a, u)
            });
            assert_eq!(i64::load(&s.add, Relaxed), 3);
            assert_eq!(i64::load(&s.upd, Relaxed), 3);
            let mut u: Vec<i64> = olds.iter().map(|p| p.1).collect();
            u.sort_unstable();
            assert_eq!(u, [0, 1, 2]);
        },
    );
}

/// A user's retry loop on `compare_exchange` (strong, threads 0 and 2) and
/// `compare_exchange_weak` (thread 1): `current = found` always converges,
/// and starting from a guess of `0.0` on a cell holding `-0.0` (equal as
/// values, not as bits) costs one retry, never a livelock.
#[test]
fn float_compare_exchange_retry_loops() {
    checked("float_compare_exchange_retry_loops", true, false, || {
        let w = Arc::new(LoomU64::new((-0.0f64).to_bits()));
        let olds = three(&w, |w, i| {
            let mut cur = 0.0f64; // a wrong guess: the cell holds -0.0 or more
            loop {
                let r = if i == 1 {
                    f64::compare_exchange_weak(w, cur, cur + 1.0, AcqRel, Acquire)
                } else {
                    f64::compare_exchange(w, cur, cur + 1.0, AcqRel, Acquire)
                };
                match r {
                    Ok(prev) => break prev,
                    Err(found) => cur = found,
                }
            }
        });
        assert_eq!(f64::load(&*w, Relaxed), 3.0);
        // Exactly one thread replaced -0.0 (bitwise), the others 1.0 and 2.0.
        let mut bits: Vec<u64> = olds.iter().map(|x| x.to_bits()).collect();
        bits.sort_unstable();
        let mut want = vec![(-0.0f64).to_bits(), 1f64.to_bits(), 2f64.to_bits()];
        want.sort_unstable();
        assert_eq!(bits, want);
    });
}

/// `fetch_update` retries while `f` accepts and reports `Err(current)` once
/// it declines: a counter capped at 2 is taken exactly twice, and the
/// refused thread saw the cap.
#[test]
fn fetch_update_retries_and_declines() {
    checked("fetch_update_retries_and_declines", true, false, || {
        let w = Arc::new(LoomU64::new(0f64.to_bits()));
        let res = three(&w, |w, _| {
            f64::fetch_update(w, AcqRel, Acquire, |x| (x < 2.0).then_some(x + 1.0))
        });
        assert_eq!(f64::load(&*w, Relaxed), 2.0);
        let mut ok: Vec<f64> = res.iter().filter_map(|r| r.ok()).collect();
        ok.sort_by(f64::total_cmp);
        assert_eq!(ok, [0.0, 1.0], "{res:?}");
        assert!(res.contains(&Err(2.0)), "{res:?}");
    });
}

/// `fetch_max`/`fetch_min` from 3 threads converge to the extreme, for
/// floats (CAS loop) and integers, and no thread sees a value beyond it.
#[test]
fn fetch_max_min_converge() {
    checked("fetch_max_min_converge", true, false, || {
        struct S {
            fmax: LoomU64,
            fmin: LoomU64,
            imax: LoomI64,
        }
        let s = Arc::new(S {
            fmax: LoomU64::new(f64::NAN.to_bits()), // NaN: taken over by any value
            fmin: LoomU64::new(0f64.to_bits()),
            imax: LoomI64::new(i64::MIN),
        });
        let seen = three(&s, |s, i| {
            let v = [3.0, -1.0, 2.0][i];
            (
                f64::fetch_max(&s.fmax, v, AcqRel),
                f64::fetch_min(&s.fmin, v, Release),
                i64::fetch_max(&s.imax, v as i64, Acquire),
            )
        });
        assert_eq!(f64::load(&s.fmax, Relaxed), 3.0);
        assert_eq!(f64::load(&s.fmin, Relaxed), -1.0);
        assert_eq!(i64::load(&s.imax, Relaxed), 3);
        // Exactly one max RMW found the initial NaN; none saw more than 3.
        assert_eq!(seen.iter().filter(|t| t.0.is_nan()).count(), 1);
        assert!(seen.iter().all(|t| t.0.is_nan() || t.0 <= 3.0));
        assert!(seen.iter().all(|t| t.1 >= -1.0 && t.2 <= 3));
    });
}

/// `fetch_update` that declines reports the value it read with the
/// `fetch` ordering: an `Err(1.0)` read with `Acquire` synchronises with
/// the writer's `Release` store.
#[test]
fn declined_fetch_update_acquires() {
    checked("declined_fetch_update_acquires", false, true, || {
        struct S {
            flag: LoomU64,
            data: UnsafeCell<u32>,
        }
        let s = Arc::new(S {
            flag: LoomU64::new(0f64.to_bits()),
            data: UnsafeCell::new(0),
        });
        let t = {
            let s = s.clone();
            thread::spawn(move || {
                s.data.with_mut(|d| {
                    // SAFETY: no reader before the flag is set.
                    unsafe { *d = 7 }
                });
                s.flag.store_unseeded(1f64.to_bits(), Release);
            })
        };
        thread::yield_now(); // loom#392, see `three`
                             // Take the flag's value only while it is 0; decline once it is set.
        let r = f64::fetch_update(&s.flag, Relaxed, Acquire, |x| (x == 0.0).then_some(0.0));
        if r == Err(1.0) {
            hit();
            // SAFETY: the Acquire load that returned 1.0 read the Release
            // store, so the write to `data` happens before this read.
            assert_eq!(s.data.with(|d| unsafe { *d }), 7);
        }
        t.join().unwrap();
    });
}

/// `bool` compares truth values: a peer that stores the byte 2 (another
/// `true`) while this thread runs `compare_exchange(true, false)` does not
/// make it fail. Thread 2 flips with `fetch_xor`, a CAS loop on the truth
/// value; the bitwise `fetch_or(false)`/`fetch_and(true)` keep the byte.
#[test]
fn bool_truth_value_exchange() {
    /// What each thread of the model reports.
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Seen {
        /// Thread 0: its strong and its weak exchange.
        Exchanges(Result<bool, bool>, Result<bool, bool>),
        /// Thread 1: the byte its swap replaced.
        Swapped(u8),
        /// Thread 2: the bytes its `fetch_or(false)`/`fetch_and(true)` saw.
        Kept,
    }
    checked("bool_truth_value_exchange", true, true, || {
        let w = Arc::new(LoomU8::new(1));
        let r = three(&w, |w, i| match i {
            0 => Seen::Exchanges(
                bool::compare_exchange(w, true, false, AcqRel, Acquire),
                bool::compare_exchange_weak(w, false, true, AcqRel, Acquire),
            ),
            // A peer's non-canonical `true`. A swap, not a store: loom
            // (tokio-rs/loom#254, tokio-rs/loom#389) lets a plain store slip between the read and the
            // write of a concurrent RMW, an execution hardware forbids.
            1 => Seen::Swapped(w.swap(2, Release)),
            _ => {
                bool::fetch_or(w, false, Relaxed);
                bool::fetch_and(w, true, Relaxed);
                Seen::Kept
            }
        });
        let Seen::Exchanges(a, b) = r[0] else {
            unreachable!()
        };
        if r[1] == Seen::Swapped(1) && a == Ok(true) {
            // The 2 was in the cell before the strong exchange started
            // (the swap replaced the initial 1, not the exchanges' bytes).
            hit();
        }
        // Whether the peer's 2 came before or after: `true` either way.
        assert_eq!(a, Ok(true), "{r:?}");
        // Then false → true, unless the peer's 2 landed in between (the
        // weak exchange may also fail spuriously, reporting `false`).
        assert!(matches!(b, Ok(false) | Err(true) | Err(false)), "{r:?}");
        assert!(bool::load(&*w, Relaxed) || b == Err(false), "{r:?}");
    });
}

/// `fetch_xor(true)` from 3 threads flips exactly 3 times (a CAS loop that
/// normalises the byte), and the previous values alternate.
#[test]
fn bool_xor_flips_exactly() {
    checked("bool_xor_flips_exactly", true, false, || {
        let w = Arc::new(LoomU8::new(0));
        let olds = three(&w, |w, _| bool::fetch_xor(w, true, AcqRel));
        assert!(bool::load(&*w, Relaxed));
        assert_eq!(w.load(Relaxed), 1);
        assert_eq!(olds.iter().filter(|&&b| b).count(), 1, "{olds:?}");
    });
}

// ---------------------------------------------------------------------
// Orderings of every read-modify-write: what its release half publishes
// and what its acquire half observes.
// ---------------------------------------------------------------------

/// One read-modify-write under test, on a cell of type `T` held in a `W`:
/// `rmw(w, current, order)` runs the operation with `order` (an exchange's
/// success ordering; its failure ordering is `Relaxed`), expecting the
/// cell to hold `current` where the operation has such an argument, and
/// returns the previous value it reports.
type Rmw<T, W> = fn(&W, T, Ordering) -> T;

/// A word and a payload published through it.
struct Published<W> {
    w: W,
    data: UnsafeCell<u32>,
}

/// The payload's value once written (0 before).
const PAYLOAD: u32 = 42;

/// Release half: the spawned thread writes the payload, then runs `rmw`
/// with `order` on the word holding `init`; the main thread loads the word
/// with `Acquire` and, if it no longer holds `init`, reads the payload.
/// The RMW is the only write to the word, so the load then read the
/// value the RMW stored, and the read of the payload happens after its
/// write only if the RMW passed the release half of `order` on to the
/// word (loom reports "Causality violation" otherwise).
fn release_model<T, W>(init: W::Int, rmw: Rmw<T, W>, order: Ordering)
where
    T: Repr<Int = W::Int> + 'static,
    W: Unseeded + Send + Sync + 'static,
    W::Int: Send + Sync + 'static,
{
    let s = Arc::new(Published {
        w: W::new(init),
        data: UnsafeCell::new(0),
    });
    let t = {
        let s = s.clone();
        thread::spawn(move || {
            s.data.with_mut(|d| {
                // SAFETY: the main thread reads `data` only after its
                // Acquire load saw this thread's RMW (loom checks that).
                unsafe { *d = PAYLOAD }
            });
            rmw(&s.w, T::from_int(init), order);
        })
    };
    thread::yield_now(); // loom#392, see `three`
    if s.w.load_unseeded(Acquire) != init {
        hit();
        // SAFETY: the Acquire load read the value the RMW stored after
        // writing `data`; loom reports the race if the RMW did not release.
        assert_eq!(s.data.with(|d| unsafe { *d }), PAYLOAD);
    }
    t.join().unwrap();
}

/// Acquire half: the spawned thread writes the payload, then stores `peer`
/// into the word (holding `init`) with `Release`; the main thread runs
/// `rmw` with `order`, passing the value of `peer` as `current`, and reads
/// the payload if the RMW reports that value as the previous one (i.e. it
/// read the peer's store). That read happens after the payload's write
/// only if the RMW passed the acquire half of `order` on to the word.
fn acquire_model<T, W>(init: W::Int, peer: W::Int, rmw: Rmw<T, W>, order: Ordering)
where
    T: Repr<Int = W::Int> + 'static,
    W: Unseeded + Send + Sync + 'static,
    W::Int: Send + Sync + 'static,
{
    let s = Arc::new(Published {
        w: W::new(init),
        data: UnsafeCell::new(0),
    });
    let t = {
        let s = s.clone();
        thread::spawn(move || {
            s.data.with_mut(|d| {
                // SAFETY: the main thread reads `data` only after its RMW
                // read the Release store below (loom checks that).
                unsafe { *d = PAYLOAD }
            });
            s.w.store_unseeded(peer, Release);
        })
    };
    thread::yield_now(); // loom#392, see `three`
    let peers = T::from_int(peer);
    if rmw(&s.w, peers, order).to_int() == peers.to_int() {
        hit();
        // SAFETY: the RMW read the peer's Release store; loom reports the
        // race if the RMW did not acquire.
        assert_eq!(s.data.with(|d| unsafe { *d }), PAYLOAD);
    }
    t.join().unwrap();
}

/// Runs [`release_model`] with `Release`, `AcqRel` and `SeqCst` (from a
/// word holding `init`), then [`acquire_model`] with `Acquire`, `AcqRel`
/// and `SeqCst` (from `acq_init`, the peer storing `peer`); each must take
/// its payload-reading branch in some execution.
fn orders<T, W>(name: &str, init: W::Int, acq_init: W::Int, peer: W::Int, rmw: Rmw<T, W>)
where
    T: Repr<Int = W::Int> + 'static,
    W: Unseeded + Send + Sync + 'static,
    W::Int: Send + Sync + 'static,
{
    assert_ne!(
        T::from_int(acq_init).to_int(),
        T::from_int(peer).to_int(),
        "{name}: the peer's value must differ from the start"
    );
    for o in [Release, AcqRel, SeqCst] {
        let n = format!("{name}, release half ({o:?})");
        checked(&n, false, true, move || release_model(init, rmw, o));
    }
    for o in [Acquire, AcqRel, SeqCst] {
        let n = format!("{name}, acquire half ({o:?})");
        checked(&n, false, true, move || {
            acquire_model(acq_init, peer, rmw, o)
        });
    }
}

/// The RMWs of the numeric cells (integers and floats), as [`Rmw`]s.
/// Operands are chosen so that each one changes the models' start value 5.
mod num {
    use super::*;

    /// `n` as a `T`.
    fn n<T: From<u8>>(n: u8) -> T {
        T::from(n)
    }

    pub(crate) fn swap<T: Repr + From<u8>, W: AtomicWord<Int = T::Int>>(
        w: &W,
        _: T,
        o: Ordering,
    ) -> T {
        T::swap(w, n(2), o)
    }
    pub(crate) fn compare_exchange<T: Repr + From<u8>, W: AtomicWord<Int = T::Int>>(
        w: &W,
        cur: T,
        o: Ordering,
    ) -> T {
        T::compare_exchange(w, cur, n(2), o, Relaxed).unwrap_or_else(|found| found)
    }
    pub(crate) fn compare_exchange_weak<T: Repr + From<u8>, W: AtomicWord<Int = T::Int>>(
        w: &W,
        cur: T,
        o: Ordering,
    ) -> T {
        // A spurious failure reports `cur` without having read it with
        // `o`: retry it, as a user's loop would.
        loop {
            match T::compare_exchange_weak(w, cur, n(2), o, Relaxed) {
                Ok(prev) => return prev,
                Err(found) if found.to_int() != cur.to_int() => return found,
                Err(_) => {}
            }
        }
    }
    pub(crate) fn fetch_update<T: Repr + From<u8>, W: AtomicWord<Int = T::Int>>(
        w: &W,
        _: T,
        o: Ordering,
    ) -> T {
        // `fetch` Relaxed: only the successful exchange's `set` orders.
        T::fetch_update(w, o, Relaxed, |_| Some(n(2))).unwrap_or_else(|prev| prev)
    }
    pub(crate) fn fetch_add<T: Arith + From<u8>, W: AtomicWord<Int = T::Int>>(
        w: &W,
        _: T,
        o: Ordering,
    ) -> T {
        T::fetch_add(w, n(1), o)
    }
    pub(crate) fn fetch_sub<T: Arith + From<u8>, W: AtomicWord<Int = T::Int>>(
        w: &W,
        _: T,
        o: Ordering,
    ) -> T {
        T::fetch_sub(w, n(1), o)
    }
    pub(crate) fn fetch_max<T: Arith + From<u8>, W: AtomicWord<Int = T::Int>>(
        w: &W,
        _: T,
        o: Ordering,
    ) -> T {
        T::fetch_max(w, n(7), o)
    }
    pub(crate) fn fetch_min<T: Arith + From<u8>, W: AtomicWord<Int = T::Int>>(
        w: &W,
        _: T,
        o: Ordering,
    ) -> T {
        T::fetch_min(w, n(3), o)
    }
    pub(crate) fn fetch_and<T: Bitwise + From<u8>, W: AtomicWord<Int = T::Int>>(
        w: &W,
        _: T,
        o: Ordering,
    ) -> T {
        T::fetch_and(w, n(4), o)
    }
    pub(crate) fn fetch_or<T: Bitwise + From<u8>, W: AtomicWord<Int = T::Int>>(
        w: &W,
        _: T,
        o: Ordering,
    ) -> T {
        T::fetch_or(w, n(2), o)
    }
    pub(crate) fn fetch_xor<T: Bitwise + From<u8>, W: AtomicWord<Int = T::Int>>(
        w: &W,
        _: T,
        o: Ordering,
    ) -> T {
        T::fetch_xor(w, n(1), o)
    }
    pub(crate) fn fetch_nand<T: Bitwise + From<u8>, W: AtomicWord<Int = T::Int>>(
        w: &W,
        _: T,
        o: Ordering,
    ) -> T {
        T::fetch_nand(w, n(4), o)
    }
}

/// The RMWs of `bool` cells, as [`Rmw`]s. The release models start from
/// the byte 2 (a peer's `true`) and each operation changes it; in the
/// acquire models a peer stores 2 into a `false` cell.
mod boolean {
    use super::*;

    pub(crate) fn swap(w: &LoomU8, _: bool, o: Ordering) -> bool {
        bool::swap(w, false, o)
    }
    /// `true → false`: on the byte 2, a failed exchange (byte 1 expected,
    /// `Relaxed`) and a retry with 2 (ordered with `o`).
    pub(crate) fn compare_exchange(w: &LoomU8, cur: bool, o: Ordering) -> bool {
        bool::compare_exchange(w, cur, !cur, o, Relaxed).unwrap_or_else(|found| found)
    }
    pub(crate) fn compare_exchange_weak(w: &LoomU8, cur: bool, o: Ordering) -> bool {
        loop {
            match bool::compare_exchange_weak(w, cur, !cur, o, Relaxed) {
                Ok(prev) => return prev,
                Err(found) if found != cur => return found,
                Err(_) => {} // spurious
            }
        }
    }
    pub(crate) fn fetch_update(w: &LoomU8, _: bool, o: Ordering) -> bool {
        bool::fetch_update(w, o, Relaxed, |b| Some(!b)).unwrap_or_else(|prev| prev)
    }
    pub(crate) fn fetch_and(w: &LoomU8, _: bool, o: Ordering) -> bool {
        bool::fetch_and(w, false, o)
    }
    /// 2 → 3: the byte changes, the truth value does not.
    pub(crate) fn fetch_or(w: &LoomU8, _: bool, o: Ordering) -> bool {
        bool::fetch_or(w, true, o)
    }
    pub(crate) fn fetch_xor(w: &LoomU8, _: bool, o: Ordering) -> bool {
        bool::fetch_xor(w, true, o)
    }
    pub(crate) fn fetch_nand(w: &LoomU8, _: bool, o: Ordering) -> bool {
        bool::fetch_nand(w, true, o)
    }
}

/// One test per RMW of one cell type: `$module::$op` runs [`orders`] on
/// `$ops::$op`.
macro_rules! order_models {
    ($(#[$doc:meta])* $module:ident: $t:ty, $word:ty, $ops:ident,
     release from $init:expr, acquire from $acq:expr, peer $peer:expr;
     $($op:ident)*) => {
        $(#[$doc])*
        mod $module {
            use super::*;
            $(
                #[test]
                fn $op() {
                    let rmw: Rmw<$t, $word> = $ops::$op;
                    let name = concat!(stringify!($module), "::", stringify!($op));
                    orders(name, $init, $acq, $peer, rmw);
                }
            )*
        }
    };
}

order_models! {
    /// `i64`: one hardware RMW per operation (signed `fetch_max`/`fetch_min`).
    cell_i64: i64, LoomI64, num, release from 5, acquire from 5, peer 9;
    swap compare_exchange compare_exchange_weak fetch_update
    fetch_add fetch_sub fetch_max fetch_min
    fetch_and fetch_or fetch_xor fetch_nand
}

order_models! {
    /// `u8`: the narrowest integer (unsigned), on the word type `bool` uses.
    cell_u8: u8, LoomU8, num, release from 5, acquire from 5, peer 9;
    swap compare_exchange compare_exchange_weak fetch_update
    fetch_add fetch_sub fetch_max fetch_min
    fetch_and fetch_or fetch_xor fetch_nand
}

order_models! {
    /// `f64`: `swap`/`compare_exchange` on the bit pattern, the arithmetic
    /// as CAS loops.
    cell_f64: f64, LoomU64, num,
    release from 5f64.to_bits(), acquire from 5f64.to_bits(), peer 9f64.to_bits();
    swap compare_exchange compare_exchange_weak fetch_update
    fetch_add fetch_sub fetch_max fetch_min
}

order_models! {
    /// `f32`: the same on a 32-bit word.
    cell_f32: f32, LoomU32, num,
    release from 5f32.to_bits(), acquire from 5f32.to_bits(), peer 9f32.to_bits();
    swap compare_exchange compare_exchange_weak fetch_update
    fetch_add fetch_sub fetch_max fetch_min
}

order_models! {
    /// `bool`: `swap`, `fetch_and`, `fetch_or` one hardware RMW, the
    /// exchanges a loop over the bytes of a truth value, `fetch_xor`,
    /// `fetch_nand` CAS loops.
    cell_bool: bool, LoomU8, boolean, release from 2, acquire from 0, peer 2;
    swap compare_exchange compare_exchange_weak fetch_update
    fetch_and fetch_or fetch_xor fetch_nand
}
