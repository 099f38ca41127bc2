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
//! - *contended*: `main` is single-threaded and `fork()`s one child per
//!   sample before any thread exists; the child only runs the loop and
//!   `_exit`s. Parent and child are pinned to different CPUs where there
//!   are two, meet at a start line in shared memory, each do `iters` ops,
//!   and the wall time runs from the start until both are done; the
//!   counter must then be exactly `2 × iters`. Total Mops/s, the median of
//!   the rounds.
//! - Rounds are interleaved (every round measures every row, in alternating
//!   order), so a slow moment on a shared machine hits all rows alike.
//!
//! Targets (issue #4): uncontended ≤ 1.1× the raw op's time, contended
//! ≥ 0.9× its throughput; printed as PASS/MISS. The bench never exits with
//! an error status. `SHMSYNC_BENCH_QUICK=1` runs a few-second smoke test
//! (numbers not meaningful).

use std::hint::black_box;
use std::io::Write as _;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::time::{Duration, Instant};

use shmsync::{AtomicArray, AtomicValue, SharedMemory};

/// One counter in shared memory, incremented by one per op.
trait Subject {
    fn op(&self);
    /// The counter as an integer count of ops.
    fn count(&self) -> u64;
    fn reset(&self);
}

/// Runs `n` ops; one copy per subject, with `op` inlined.
#[inline(never)]
fn run<S: Subject>(s: &S, n: u64) {
    for _ in 0..n {
        s.op();
    }
}

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

/// A subject behind one virtual call per batch (not per op).
trait Batch {
    fn run(&self, n: u64);
    fn count(&self) -> u64;
    fn reset(&self);
}

impl<S: Subject> Batch for S {
    fn run(&self, n: u64) {
        run(self, n);
    }
    fn count(&self) -> u64 {
        Subject::count(self)
    }
    fn reset(&self) {
        Subject::reset(self);
    }
}

struct Row {
    key: &'static str,
    label: &'static str,
    subject: Box<dyn Batch>,
    /// ns per op, one per round.
    uncontended: Vec<f64>,
    /// Total Mops/s, one per round.
    contended: Vec<f64>,
    errors: Vec<String>,
}

/// The start line: [children ready, go, processes done], a line each.
struct StartLine(AtomicArray<u32>);

impl StartLine {
    const READY: usize = 0;
    const GO: usize = 1;
    const DONE: usize = 2;

    fn reset(&self) {
        // Relaxed: no other process exists yet (fork copies nothing racy).
        for c in self.0.iter() {
            c.store(0, Relaxed);
        }
    }
    fn wait(&self, which: usize, n: u32, child: libc::pid_t) -> Result<(), String> {
        let mut spins = 0u32;
        // Acquire: pairs with the Release increments of READY and DONE.
        while self.0.at(which).load(Acquire) < n {
            spins = spins.wrapping_add(1);
            if spins % 1024 == 0 && child != 0 {
                let mut status = 0;
                // SAFETY: polling our own child with a valid status pointer.
                if unsafe { libc::waitpid(child, &mut status, libc::WNOHANG) } == child {
                    return Err(format!("worker ended early, status {status:#x}"));
                }
            }
            std::thread::yield_now();
        }
        Ok(())
    }
}

fn cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is a plain bit array; all-zero is valid.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid cpu_set_t of the size passed.
    if unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) } != 0 {
        return Vec::new();
    }
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: CPU_ISSET only reads `set`; `i` is in range.
        .filter(|&i| unsafe { libc::CPU_ISSET(i, &set) })
        .collect()
}

/// Pins the calling thread to `cpu` (best effort) and returns the old mask.
fn pin(cpu: Option<usize>) -> Option<libc::cpu_set_t> {
    let cpu = cpu?;
    // SAFETY: as in `cpus`.
    let mut old: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: valid set and size.
    unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&old), &mut old) };
    // SAFETY: as in `cpus`.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: CPU_SET writes inside `set`; `cpu` comes from `cpus()`.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: valid set and size.
    unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) };
    Some(old)
}

fn unpin(old: Option<libc::cpu_set_t>) {
    if let Some(set) = old {
        // SAFETY: valid set and size.
        unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) };
    }
}

/// 2 processes × `n` ops from a common start; total Mops/s.
///
/// Must be called while this process has a single thread (it forks).
fn contended(s: &dyn Batch, line: &StartLine, n: u64) -> Result<f64, String> {
    s.reset();
    line.reset();
    let cpus = cpus();
    let two = cpus.len() >= 2;
    let old = pin(two.then(|| cpus[0]));
    let _ = std::io::stdout().flush();
    // SAFETY: `main` never starts a thread, so the child inherits a
    // consistent process; it only runs the loop on memory mapped before the
    // fork and `_exit`s.
    let child = unsafe { libc::fork() };
    if child == 0 {
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pin(two.then(|| cpus[1]));
            // Release: publishes nothing but keeps the protocol symmetric.
            line.0.at(StartLine::READY).fetch_add(1, Release);
            // Acquire: pairs with the parent's Release store of GO.
            while line.0.at(StartLine::GO).load(Acquire) == 0 {
                std::hint::spin_loop();
            }
            s.run(n);
            // Release: our last increment happens before the parent's check.
            line.0.at(StartLine::DONE).fetch_add(1, Release);
        }))
        .is_ok();
        // SAFETY: leaves the child without running the parent's destructors.
        unsafe { libc::_exit(if ok { 0 } else { 101 }) };
    }
    if child < 0 {
        unpin(old);
        return Err(format!("fork: {}", std::io::Error::last_os_error()));
    }
    let result = (|| {
        line.wait(StartLine::READY, 1, child)?;
        let t = Instant::now();
        // Release: pairs with the child's Acquire load of GO.
        line.0.at(StartLine::GO).store(1, Release);
        s.run(n);
        line.0.at(StartLine::DONE).fetch_add(1, Release);
        line.wait(StartLine::DONE, 2, child)?;
        Ok::<Duration, String>(t.elapsed())
    })();
    let mut status = 0;
    if result.is_err() {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child, libc::SIGKILL) };
    }
    // SAFETY: reaping our own child with a valid status pointer.
    unsafe { libc::waitpid(child, &mut status, 0) };
    unpin(old);
    let elapsed = result?;
    if status != 0 {
        return Err(format!("worker exited with status {status:#x}"));
    }
    let got = s.count();
    if got != 2 * n {
        return Err(format!(
            "counter is {got}, expected {}: lost updates",
            2 * n
        ));
    }
    #[allow(clippy::cast_precision_loss)]
    Ok((2 * n) as f64 / elapsed.as_secs_f64() / 1e6)
}

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn main() {
    // Never exit with an error status: report and stop.
    if let Err(e) = bench() {
        println!("ERROR: cannot set up the bench: {e}");
    }
}

fn bench() -> Result<(), shmsync::Error> {
    let quick = std::env::var_os("SHMSYNC_BENCH_QUICK").is_some_and(|v| v != "0");
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
    let line = StartLine(AtomicArray::zeroed_padded(3)?);
    println!(
        "shmsync atomics bench: {iters} ops uncontended, 2 processes × {citers} ops contended, \
         {rounds} rounds{}",
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
            let t = Instant::now();
            r.subject.run(iters);
            #[allow(clippy::cast_precision_loss)]
            r.uncontended
                .push(t.elapsed().as_nanos() as f64 / iters as f64);
        }
        for &i in &order {
            let r = &mut rows[i];
            match contended(&*r.subject, &line, citers) {
                Ok(m) => r.contended.push(m),
                Err(e) => r.errors.push(e),
            }
        }
    }

    println!();
    println!(
        "{:<34} {:>10} {:>10} {:>14} {:>18}",
        "row", "ns/op min", "ns/op med", "2-proc Mops/s", "Mops/s min..max"
    );
    for r in &rows {
        println!(
            "{:<34} {:>10.2} {:>10.2} {:>14.1} {:>8.1}..{:<8.1}",
            r.label,
            min(&r.uncontended),
            median(&r.uncontended),
            median(&r.contended),
            min(&r.contended),
            r.contended.iter().copied().fold(f64::NAN, f64::max),
        );
    }
    let get = |k: &str| rows.iter().find(|r| r.key == k).expect("row exists");
    println!();
    for (ours, raw) in [("av_i64", "raw_i64"), ("av_f64", "raw_f64")] {
        let (o, r) = (get(ours), get(raw));
        let unc = min(&o.uncontended) / min(&r.uncontended);
        let con = median(&o.contended) / median(&r.contended);
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

impl Row {
    fn new(key: &'static str, label: &'static str, s: impl Subject + 'static) -> Row {
        Row {
            key,
            label,
            subject: Box::new(s),
            uncontended: Vec::new(),
            contended: Vec::new(),
            errors: Vec::new(),
        }
    }
}
