//! `cargo bench --bench atomics`: the atomic mode's `fetch_add` against the
//! raw operation it is built on, uncontended and with 2 processes, in one
//! run.
//!
//! | row       | one op                                                        |
//! |-----------|---------------------------------------------------------------|
//! | `raw_i64` | `AtomicI64::fetch_add(1, Relaxed)` on a shared mapping         |
//! | `av_i64`  | `AtomicValue::<i64>::fetch_add(1, Relaxed)`                    |
//! | `raw_f64` | a hand-written `AtomicU64` CAS loop adding 1.0 to f64 bits     |
//! | `av_f64`  | `AtomicValue::<f64>::fetch_add(1.0, Relaxed)`                  |
//!
//! Every counter lives in shared memory on a cache line of its own (the
//! raw rows in a `SharedMemory` block, at a line-aligned offset).
//!
//! - *uncontended*: one process, `iters` ops in a loop (monomorphised per
//!   row, the op inlined); ns per op; the best of the rounds (noise from
//!   other processes only adds time).
//! - *contended* (`common::contended`): `main` is single-threaded and
//!   `fork()`s one child per sample; the child only runs the loop and
//!   `_exit`s. Parent and child are pinned to different CPUs where there
//!   are two, meet at a start line in shared memory, each do `iters` ops,
//!   and the wall time runs from the start until both are done; the
//!   counter must then be exactly `2 × iters`. Total Mops/s, the median of
//!   the rounds.
//! - Rounds are interleaved (every round measures every row, in alternating
//!   order), so a slow moment on a shared machine hits all rows alike.
//!
//! Targets (`docs/BENCHMARKS.md`): uncontended ≤ 1.1× the raw op's time,
//! contended ≥ 0.9× its throughput; printed as PASS/MISS. The bench never
//! exits with an error status. `SHMSYNC_BENCH_QUICK=1` runs a few-second
//! smoke test (`benches/common/mod.rs`: 200 000 ops per uncontended
//! sample, 50 000 per process per contended sample, 3 rounds; full:
//! 20 000 000, 2 000 000, 11).

use std::hint::black_box;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicI64, AtomicU64};

use shmsync::{AtomicValue, SharedMemory};

mod common;

use common::{Row, Subject};

/// Processes in the contended samples.
const PROCS: u32 = 2;

/// Offset of the raw counters in their block: a line of their own, as the
/// data of an `AtomicValue` (which starts at a line boundary).
const RAW_OFFSET: usize = 192;

/// A raw counter: the address computed once, as a user holding an
/// `&AtomicI64` has it (the strictest baseline: no per-op address
/// computation).
struct RawI64 {
    cell: *const AtomicI64,
    _mem: SharedMemory,
}

impl RawI64 {
    fn new() -> shmsync::Result<Self> {
        let mem = SharedMemory::anonymous(4096)?;
        // RAW_OFFSET + 8 ≤ the block's 4096 bytes: in bounds.
        let cell = mem.as_ptr().wrapping_add(RAW_OFFSET).cast::<AtomicI64>();
        Ok(RawI64 { cell, _mem: mem })
    }
    fn cell(&self) -> &AtomicI64 {
        // SAFETY: `cell` points RAW_OFFSET bytes into `_mem`'s 4096-byte
        // page-aligned mapping (in bounds, 8-aligned), which lives as long
        // as `self`; these bytes are only accessed through this atomic.
        unsafe { AtomicI64::from_ptr(self.cell.cast_mut().cast()) }
    }
}

impl Subject for RawI64 {
    #[inline]
    fn op(&self) {
        black_box(self.cell().fetch_add(1, Relaxed));
    }
    fn count(&self) -> u64 {
        self.cell().load(Relaxed).unsigned_abs()
    }
    fn reset(&self) {
        self.cell().store(0, Relaxed);
    }
}

struct AvI64(AtomicValue<i64>);

impl Subject for AvI64 {
    #[inline]
    fn op(&self) {
        black_box(self.0.fetch_add(1, Relaxed));
    }
    fn count(&self) -> u64 {
        self.0.load(Relaxed).unsigned_abs()
    }
    fn reset(&self) {
        self.0.store(0, Relaxed);
    }
}

/// As [`RawI64`], for the f64 bits.
struct RawF64 {
    cell: *const AtomicU64,
    _mem: SharedMemory,
}

impl RawF64 {
    fn new() -> shmsync::Result<Self> {
        let mem = SharedMemory::anonymous(4096)?;
        let cell = mem.as_ptr().wrapping_add(RAW_OFFSET).cast::<AtomicU64>();
        Ok(RawF64 { cell, _mem: mem })
    }
    fn cell(&self) -> &AtomicU64 {
        // SAFETY: as in `RawI64::cell`.
        unsafe { AtomicU64::from_ptr(self.cell.cast_mut().cast()) }
    }
}

impl Subject for RawF64 {
    /// The textbook loop: what a user would write without shmsync.
    #[inline]
    fn op(&self) {
        let c = self.cell();
        let mut cur = c.load(Relaxed);
        loop {
            let new = (f64::from_bits(cur) + 1.0).to_bits();
            match c.compare_exchange_weak(cur, new, Relaxed, Relaxed) {
                Ok(prev) => {
                    black_box(prev);
                    return;
                }
                Err(found) => cur = found,
            }
        }
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    fn count(&self) -> u64 {
        f64::from_bits(self.cell().load(Relaxed)) as u64
    }
    fn reset(&self) {
        self.cell().store(0f64.to_bits(), Relaxed);
    }
}

struct AvF64(AtomicValue<f64>);

impl Subject for AvF64 {
    #[inline]
    fn op(&self) {
        black_box(self.0.fetch_add(1.0, Relaxed));
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    fn count(&self) -> u64 {
        self.0.load(Relaxed) as u64
    }
    fn reset(&self) {
        self.0.store(0.0, Relaxed);
    }
}

fn main() {
    // Never exit with an error status: report and stop.
    if let Err(e) = bench() {
        println!("ERROR: cannot set up the bench: {e}");
    }
}

fn bench() -> Result<(), shmsync::Error> {
    let quick = common::quick();
    let (iters, citers, rounds) = if quick {
        (200_000u64, 50_000u64, 3usize)
    } else {
        (20_000_000, 2_000_000, 11)
    };
    let mut rows = vec![
        Row::new("raw_i64", "AtomicI64::fetch_add (raw)", RawI64::new()?),
        Row::new(
            "av_i64",
            "AtomicValue<i64>::fetch_add",
            AvI64(AtomicValue::new(0)?),
        ),
        Row::new("raw_f64", "AtomicU64 CAS loop on f64 (raw)", RawF64::new()?),
        Row::new(
            "av_f64",
            "AtomicValue<f64>::fetch_add",
            AvF64(AtomicValue::new(0.0)?),
        ),
    ];
    let line = common::StartLine::new()?;
    common::print_machine("shmsync atomics bench");
    println!(
        "{iters} ops uncontended, {PROCS} processes × {citers} ops contended, {rounds} rounds{}",
        if quick {
            " (QUICK: numbers not meaningful)"
        } else {
            ""
        }
    );
    for round in 0..rounds {
        let order: Vec<usize> = if round % 2 == 0 {
            (0..rows.len()).collect()
        } else {
            (0..rows.len()).rev().collect()
        };
        for &i in &order {
            let r = &mut rows[i];
            r.subject.run(iters / 10); // warm up
            let ns = common::uncontended(&*r.subject, iters);
            r.uncontended.push(ns);
        }
        for &i in &order {
            let r = &mut rows[i];
            match common::contended(&*r.subject, &line, PROCS, citers) {
                Ok(d) => r.contended.push(common::mops(PROCS, citers, d)),
                Err(e) => r.errors.push(e),
            }
        }
    }

    println!();
    println!(
        "{:<34} {:>10} {:>10} {:>14} {:>18}",
        "row", "ns/op min", "ns/op med", "2-proc Mops/s", "Mops/s min..max"
    );
    let nan = |x: Option<f64>| x.unwrap_or(f64::NAN);
    for r in &rows {
        println!(
            "{:<34} {:>10.2} {:>10.2} {:>14.1} {:>8.1}..{:<8.1}",
            r.label,
            nan(r.uncontended.min()),
            nan(r.uncontended.median()),
            nan(r.contended.median()),
            nan(r.contended.min()),
            nan(r.contended.max()),
        );
    }
    let get = |k: &str| rows.iter().find(|r| r.key == k).expect("row exists");
    println!();
    for (ours, raw) in [("av_i64", "raw_i64"), ("av_f64", "raw_f64")] {
        let (o, r) = (get(ours), get(raw));
        let unc = nan(o.uncontended.min()) / nan(r.uncontended.min());
        let con = nan(o.contended.median()) / nan(r.contended.median());
        let verdict = |ok: bool| if ok { "PASS" } else { "MISS" };
        println!(
            "{ours} vs {raw}: uncontended {unc:.3}× the time (target ≤ 1.1: {}), \
             contended {con:.3}× the throughput (target ≥ 0.9: {})",
            verdict(unc <= 1.1),
            verdict(con >= 0.9),
        );
    }
    for r in &rows {
        for e in &r.errors {
            println!("ERROR {}: {e}", r.key);
        }
    }
    Ok(())
}
