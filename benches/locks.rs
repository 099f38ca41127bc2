//! `cargo bench --bench locks`: what one lock + increment + unlock costs,
//! uncontended and with two processes contending on the same lock, for
//! shmsync's [`RLock`] and [`Lock`] against glibc's process-shared pthread
//! mutexes and a raw atomic add, all in one run, with the target ratios
//! of `docs/BENCHMARKS.md`.
//!
//! How it measures:
//! - every lock and its counter live in shared memory (memfd mappings), the
//!   counter on the cache line after the lock's, as in a `Value<u64>`;
//! - *uncontended*: one process, a loop of ops, ns per op;
//! - *contended*: the bench `fork()`s (its `main` is single-threaded; the
//!   child only runs the loop and `_exit`s), each process is pinned to a
//!   CPU of its own, all wait at a start line in shared memory, each does
//!   the same number of ops, and the wall time runs from the start until
//!   all are done; the counter must then be exact, or the row reports the
//!   lost updates as an `ERROR`;
//! - rounds are interleaved (each round measures every row once), so a slow
//!   moment on a shared machine hits all rows alike; the table shows the
//!   median and the spread over the rounds. Ratios use the best
//!   uncontended time (noise from other processes only adds time) and the
//!   median contended throughput (noise can inflate it too: a process
//!   that is descheduled leaves the other one running alone, uncontended).
//!
//! Environment (`benches/common/mod.rs`): `SHMSYNC_BENCH_QUICK=1` for a
//! few-second smoke run (100 000 ops per uncontended sample, 20 000 per
//! process per contended sample, 3 rounds; full: 2 000 000, 1 000 000, 9),
//! `SHMSYNC_BENCH_PROCS=N` to contend with N processes instead of 2,
//! `SHMSYNC_BENCH_VERBOSE=1` to print every sample.
//! Arguments select rows: `cargo bench --bench locks -- rlock glibc-normal`
//! keeps the rows with exactly these keys, or, if no key matches exactly,
//! the rows whose key or label contains an argument (`-- glibc`). The
//! bench never exits with an error status: a missed target prints `MISS`,
//! a broken lock prints `ERROR`.
//!
//! Adding a row: implement [`common::Subject`] (one op, read and reset the
//! counter) and push a [`common::Row`] in `rows()`. Adding a ratio: one
//! line in `TARGETS`.

use std::fmt::Display;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

use shmsync::{Lock, LockError, RLock, RawValue, SharedMemory, Value};

mod common;

use common::{Row, Subject};

/// The run's sizes.
#[derive(Debug, Clone, Copy)]
struct Config {
    quick: bool,
    /// Print every sample as it is taken.
    verbose: bool,
    /// Ops per uncontended sample.
    iters: u64,
    /// Ops per process per contended sample.
    contended_iters: u64,
    /// Samples per row and mode.
    rounds: usize,
    /// Contending processes (this one included).
    procs: u32,
}

impl Config {
    fn from_env() -> Config {
        let quick = common::quick();
        let verbose = common::flag("SHMSYNC_BENCH_VERBOSE");
        let procs = std::env::var("SHMSYNC_BENCH_PROCS")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&n| (1..=64).contains(&n))
            .unwrap_or(2);
        if quick {
            Config {
                quick,
                verbose,
                iters: 100_000,
                contended_iters: 20_000,
                rounds: 3,
                procs,
            }
        } else {
            Config {
                quick,
                verbose,
                iters: 2_000_000,
                contended_iters: 1_000_000,
                rounds: 9,
                procs,
            }
        }
    }
}

/// Unwraps a lock result: the bench's locks are never abandoned, so any
/// error means the lock is broken (the panic ends a forked worker with
/// status 101, which the parent reports).
fn held<T, G>(r: Result<T, LockError<G>>, what: &str) -> T {
    r.unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// `Value<u64>` with its own in-page `RLock`: lock, `get`, `set(+1)`,
/// unlock through the guard. Lock on one cache line, value on the next.
struct ValueRLock(Value<u64>);

impl Subject for ValueRLock {
    #[inline]
    fn op(&self) {
        let g = held(self.0.lock(), "Value::lock");
        g.set(g.get() + 1);
    }
    fn count(&self) -> u64 {
        held(self.0.get(), "Value::get")
    }
    fn reset(&self) {
        held(self.0.set(0), "Value::set");
    }
}

/// A lock object guarding a `RawValue<u64>` (a separate mapping).
struct Guarding<L> {
    lock: L,
    counter: RawValue<u64>,
}

impl<L> Guarding<L> {
    #[inline]
    fn bump(&self) {
        self.counter.set(self.counter.get() + 1);
    }
}

impl Subject for Guarding<RLock> {
    #[inline]
    fn op(&self) {
        let _g = held(self.lock.lock(), "RLock::lock");
        self.bump();
    }
    fn count(&self) -> u64 {
        self.counter.get()
    }
    fn reset(&self) {
        self.counter.set(0);
    }
}

impl Subject for Guarding<Lock> {
    #[inline]
    fn op(&self) {
        let _g = held(self.lock.lock(), "Lock::lock");
        self.bump();
    }
    fn count(&self) -> u64 {
        self.counter.get()
    }
    fn reset(&self) {
        self.counter.set(0);
    }
}

/// Offset of the counter after a lock at offset 0 of a block: the next
/// cache line, as the data after the lock slot of a `Value`.
const COUNTER_OFFSET: usize = 64;

/// A `u64` counter in a shared block, accessed atomically only.
fn counter_at(mem: &SharedMemory, offset: usize) -> &AtomicU64 {
    assert!(offset % 8 == 0 && offset + 8 <= mem.len());
    // SAFETY: in bounds and 8-aligned (checked; the mapping is
    // page-aligned), mapped for as long as `mem` is borrowed, and the bench
    // only accesses these bytes through this AtomicU64.
    unsafe { AtomicU64::from_ptr(mem.as_ptr().add(offset).cast()) }
}

/// A glibc `pthread_mutex_t` with `PTHREAD_PROCESS_SHARED`, at offset 0 of
/// a shared block, guarding a counter at [`COUNTER_OFFSET`].
struct Pthread {
    mem: SharedMemory,
}

impl Pthread {
    fn new(kind: libc::c_int, robust: bool) -> Result<Pthread, String> {
        let mem = SharedMemory::anonymous(4096).map_err(|e| e.to_string())?;
        let check = |what: &str, rc: libc::c_int| {
            if rc == 0 {
                Ok(())
            } else {
                Err(format!("{what}: {}", std::io::Error::from_raw_os_error(rc)))
            }
        };
        let mut attr = std::mem::MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
        // SAFETY: `attr` is initialised by pthread_mutexattr_init before any
        // other use and destroyed once; the mutex pointer is 8-aligned, in
        // bounds (40 bytes in a 4096-byte block) and not yet in use by any
        // thread.
        unsafe {
            check(
                "pthread_mutexattr_init",
                libc::pthread_mutexattr_init(attr.as_mut_ptr()),
            )?;
            let r = (|| {
                check(
                    "pthread_mutexattr_setpshared",
                    libc::pthread_mutexattr_setpshared(
                        attr.as_mut_ptr(),
                        libc::PTHREAD_PROCESS_SHARED,
                    ),
                )?;
                check(
                    "pthread_mutexattr_settype",
                    libc::pthread_mutexattr_settype(attr.as_mut_ptr(), kind),
                )?;
                if robust {
                    check(
                        "pthread_mutexattr_setrobust",
                        libc::pthread_mutexattr_setrobust(
                            attr.as_mut_ptr(),
                            libc::PTHREAD_MUTEX_ROBUST,
                        ),
                    )?;
                }
                check(
                    "pthread_mutex_init",
                    libc::pthread_mutex_init(mem.as_ptr().cast(), attr.as_ptr()),
                )
            })();
            libc::pthread_mutexattr_destroy(attr.as_mut_ptr());
            r?;
        }
        Ok(Pthread { mem })
    }

    #[inline]
    fn mutex(&self) -> *mut libc::pthread_mutex_t {
        self.mem.as_ptr().cast()
    }
}

impl Subject for Pthread {
    #[inline]
    fn op(&self) {
        // SAFETY: the mutex was initialised in `new`, stays mapped while
        // `self` lives, and is never held across ops (no EDEADLK, and no
        // EOWNERDEAD since no holder dies).
        let rc = unsafe { libc::pthread_mutex_lock(self.mutex()) };
        if rc != 0 {
            pthread_failed("pthread_mutex_lock", rc);
        }
        let c = counter_at(&self.mem, COUNTER_OFFSET);
        c.store(c.load(Relaxed) + 1, Relaxed);
        // SAFETY: this thread locked the mutex just above.
        let rc = unsafe { libc::pthread_mutex_unlock(self.mutex()) };
        if rc != 0 {
            pthread_failed("pthread_mutex_unlock", rc);
        }
    }
    fn count(&self) -> u64 {
        counter_at(&self.mem, COUNTER_OFFSET).load(Relaxed)
    }
    fn reset(&self) {
        counter_at(&self.mem, COUNTER_OFFSET).store(0, Relaxed);
    }
}

impl Drop for Pthread {
    fn drop(&mut self) {
        // SAFETY: initialised in `new` and not held (ops always unlock).
        unsafe { libc::pthread_mutex_destroy(self.mutex()) };
    }
}

#[cold]
fn pthread_failed(what: &str, rc: libc::c_int) -> ! {
    panic!("{what}: {}", std::io::Error::from_raw_os_error(rc))
}

/// The floor: one `fetch_add` on a shared counter, no lock.
struct RawAtomic(SharedMemory);

impl Subject for RawAtomic {
    #[inline]
    fn op(&self) {
        // Relaxed: a pure counter; the final count is read after the
        // start line's Release/Acquire (`finish` / `wait_for`).
        counter_at(&self.0, COUNTER_OFFSET).fetch_add(1, Relaxed);
    }
    fn count(&self) -> u64 {
        counter_at(&self.0, COUNTER_OFFSET).load(Relaxed)
    }
    fn reset(&self) {
        counter_at(&self.0, COUNTER_OFFSET).store(0, Relaxed);
    }
}

/// Every row of the table, in print order.
fn rows() -> Result<Vec<Row>, String> {
    let e = |e: shmsync::Error| e.to_string();
    Ok(vec![
        Row::new(
            "rlock",
            "shmsync RLock (Value<u64> guard get/set)",
            ValueRLock(Value::new(0).map_err(e)?),
        ),
        Row::new(
            "rlock-raw",
            "shmsync RLock + RawValue<u64>",
            Guarding {
                lock: RLock::new().map_err(e)?,
                counter: RawValue::new(0).map_err(e)?,
            },
        ),
        Row::new(
            "lock-raw",
            "shmsync Lock + RawValue<u64>",
            Guarding {
                lock: Lock::new().map_err(e)?,
                counter: RawValue::new(0).map_err(e)?,
            },
        ),
        Row::new(
            "glibc-normal",
            "glibc pthread_mutex pshared normal",
            Pthread::new(libc::PTHREAD_MUTEX_NORMAL, false)?,
        ),
        Row::new(
            "glibc-recursive",
            "glibc pthread_mutex pshared recursive",
            Pthread::new(libc::PTHREAD_MUTEX_RECURSIVE, false)?,
        ),
        Row::new(
            "glibc-robust-recursive",
            "glibc pthread_mutex pshared robust+recursive",
            Pthread::new(libc::PTHREAD_MUTEX_RECURSIVE, true)?,
        ),
        Row::new(
            "atomic",
            "raw AtomicU64::fetch_add (no lock)",
            RawAtomic(SharedMemory::anonymous(4096).map_err(e)?),
        ),
    ])
}

/// Which column a ratio compares.
#[derive(Clone, Copy)]
enum Metric {
    /// ns per op, lower is better.
    Uncontended,
    /// Mops/s, higher is better.
    Contended,
}

/// A ratio `row / baseline` and what it should be.
struct Target {
    row: &'static str,
    baseline: &'static str,
    metric: Metric,
    /// `Some((true, x))`: at most x; `Some((false, x))`: at least x;
    /// `None`: printed for information. The targets are explained in
    /// `docs/BENCHMARKS.md`.
    goal: Option<(bool, f64)>,
}

const TARGETS: &[Target] = &[
    Target {
        row: "rlock",
        baseline: "glibc-recursive",
        metric: Metric::Uncontended,
        goal: Some((true, 1.0)),
    },
    Target {
        row: "rlock",
        baseline: "glibc-recursive",
        metric: Metric::Contended,
        goal: Some((false, 1.2)),
    },
    Target {
        row: "rlock",
        baseline: "glibc-robust-recursive",
        metric: Metric::Uncontended,
        goal: Some((true, 0.7)),
    },
    Target {
        row: "lock-raw",
        baseline: "glibc-normal",
        metric: Metric::Uncontended,
        goal: None,
    },
    Target {
        row: "lock-raw",
        baseline: "glibc-normal",
        metric: Metric::Contended,
        goal: None,
    },
];

fn cell(x: Option<f64>, prec: usize) -> String {
    x.map_or_else(|| "-".to_owned(), |x| format!("{x:.prec$}"))
}

fn print_table(rows: &[Row], cfg: &Config) {
    println!();
    println!(
        "{:<46} {:>24}   {:>27}",
        "",
        "uncontended ns/op",
        format!("{} procs contended Mops/s", cfg.procs)
    );
    println!(
        "{:<46} {:>7} {:>7} {:>8}   {:>8} {:>8} {:>9}",
        "lock + increment + unlock", "median", "min", "max", "median", "min", "max"
    );
    for r in rows {
        println!(
            "{:<46} {:>7} {:>7} {:>8}   {:>8} {:>8} {:>9}",
            r.label,
            cell(r.uncontended.median(), 2),
            cell(r.uncontended.min(), 2),
            cell(r.uncontended.max(), 2),
            cell(r.contended.median(), 2),
            cell(r.contended.min(), 2),
            cell(r.contended.max(), 2),
        );
    }
    for r in rows {
        for e in &r.errors {
            println!("ERROR {}: {e}", r.key);
        }
    }
}

fn print_ratios(rows: &[Row]) {
    let find = |k: &str| rows.iter().find(|r| r.key == k);
    println!();
    println!("ratios (this run; uncontended: best of the rounds, contended: median):");
    for t in TARGETS {
        let (Some(a), Some(b)) = (find(t.row), find(t.baseline)) else {
            continue;
        };
        let (col, ra, rb) = match t.metric {
            Metric::Uncontended => (
                "uncontended ns/op",
                a.uncontended.min(),
                b.uncontended.min(),
            ),
            Metric::Contended => (
                "contended Mops/s",
                a.contended.median(),
                b.contended.median(),
            ),
        };
        let ratio = match (ra, rb) {
            (Some(x), Some(y)) if y > 0.0 => x / y,
            _ => {
                println!("  {} / {} {col}: no data", t.row, t.baseline);
                continue;
            }
        };
        let verdict = match t.goal {
            None => "(info)".to_owned(),
            Some((at_most, goal)) => {
                let ok = if at_most {
                    ratio <= goal
                } else {
                    ratio >= goal
                };
                let sign = if at_most { "<=" } else { ">=" };
                format!(
                    "target {sign} {goal:.2}x  {}",
                    if ok { "PASS" } else { "MISS" }
                )
            }
        };
        println!(
            "  {:<50} {:>6.2}x  {verdict}",
            format!("{} / {} {col}", t.row, t.baseline),
            ratio,
        );
    }
}

fn print_machine(cfg: &Config) {
    common::print_machine("shmsync lock bench");
    println!(
        "{} rounds; uncontended {} ops/sample; contended {} procs x {} ops/sample{}",
        cfg.rounds,
        cfg.iters,
        cfg.procs,
        cfg.contended_iters,
        if cfg.quick {
            "  (SHMSYNC_BENCH_QUICK: smoke run, numbers are not meaningful)"
        } else {
            ""
        }
    );
}

fn note(what: impl Display) {
    println!("ERROR {what}");
}

fn main() {
    let cfg = Config::from_env();
    // `cargo bench` passes `--bench`; any other argument filters rows.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    print_machine(&cfg);

    let mut rows = match rows() {
        Ok(r) => r,
        Err(e) => return note(format_args!("setting up: {e}")),
    };
    // A filter equal to a row's key selects that row; otherwise rows whose
    // key or label contains the filter are kept.
    let exact = filter.iter().any(|f| rows.iter().any(|r| r.key == f));
    rows.retain(|r| {
        filter.is_empty()
            || filter.iter().any(|f| {
                r.key == f
                    || (!exact && (r.key.contains(f.as_str()) || r.label.contains(f.as_str())))
            })
    });
    let line = match common::StartLine::new() {
        Ok(l) => l,
        Err(e) => return note(format_args!("start line: {e}")),
    };

    // Warm up: page faults, the TID cache, branch predictors.
    for r in &rows {
        r.subject.run(cfg.iters / 10);
    }
    for _ in 0..cfg.rounds {
        for r in &mut rows {
            let ns = common::uncontended(&*r.subject, cfg.iters);
            if cfg.verbose {
                println!("  {:<24} uncontended {ns:8.2} ns/op", r.key);
            }
            r.uncontended.push(ns);
        }
    }
    if cfg.procs > 1 {
        for _ in 0..cfg.rounds {
            for r in &mut rows {
                match common::contended(&*r.subject, &line, cfg.procs, cfg.contended_iters) {
                    Ok(d) => {
                        let mops = common::mops(cfg.procs, cfg.contended_iters, d);
                        if cfg.verbose {
                            println!("  {:<24} contended {mops:8.2} Mops/s", r.key);
                        }
                        r.contended.push(mops);
                    }
                    Err(e) => r.errors.push(e),
                }
            }
        }
    }
    print_table(&rows, &cfg);
    print_ratios(&rows);
}
