//! The measuring harness of every bench (`mod common;` at the top of
//! `benches/locks.rs`, `benches/atomics.rs` and `benches/owner_death.rs`).
//! It knows nothing about what is measured.
//!
//! # Environment
//!
//! - `SHMSYNC_BENCH_QUICK`: set to anything but an empty string or `0`
//!   ([`quick`]), every bench runs as a smoke test of a few seconds: fewer
//!   ops per sample, fewer rounds, fewer deaths (each bench states its
//!   sizes). Quick runs check that the bench works (counters stay exact,
//!   deaths are reported, nothing hangs); their figures are noisy and not
//!   comparable with a full run's. Ratios within one quick run are still
//!   indicative.
//! - `SHMSYNC_BENCH_VERBOSE` (same rule): print every sample (locks).
//! - `SHMSYNC_BENCH_PROCS=N`: contending processes, 2 by default (locks).
//!
//! # What is here
//!
//! - [`Subject`] (one op on a counter in shared memory) and [`Batch`] (the
//!   same behind one virtual call per batch of ops);
//! - [`uncontended`] (ns per op in this process) and [`contended`] (N
//!   processes, forked, pinned to a CPU each, released together by a
//!   [`StartLine`] in shared memory, the counter checked afterwards);
//! - [`Child`]: `fork` of a single-threaded process, reaped or killed;
//! - [`Affinity`]: CPU pinning, restored on drop;
//! - [`Samples`]: min, max, median and nearest-rank percentiles;
//! - [`print_machine`]: the header line that every bench prints first.
//!
//! Every bench prints `ERROR` for a broken lock or a failed trial and
//! `MISS` for a missed target, and never exits with an error status.
// Each bench uses a subset of the harness.
#![allow(dead_code)]

use std::io::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::AtomicU32;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::time::{Duration, Instant};

use shmsync::SharedMemory;

// ---------------------------------------------------------------------------
// Environment
// ---------------------------------------------------------------------------

/// Whether the environment variable `name` is set to anything but an empty
/// string or `0`.
pub(crate) fn flag(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty() && v != "0")
}

/// Quick mode (`SHMSYNC_BENCH_QUICK`, see the module docs).
pub(crate) fn quick() -> bool {
    flag("SHMSYNC_BENCH_QUICK")
}

// ---------------------------------------------------------------------------
// Subjects
// ---------------------------------------------------------------------------

/// Something measured in *ops*. One op increments a counter in shared
/// memory by one, however the subject protects it (a lock around a load +
/// store, or a single atomic add).
pub(crate) trait Subject {
    /// One op.
    fn op(&self);
    /// The counter, as a count of ops (read while no process runs ops).
    fn count(&self) -> u64;
    /// Sets the counter to zero (while no process runs ops).
    fn reset(&self);
}

/// A [`Subject`] behind one virtual call per *batch*: the loop over `op`
/// is monomorphised for each subject, so the dispatch costs nothing per op
/// and `op` is inlined into the loop, as in real code.
pub(crate) trait Batch {
    /// `iters` ops in a loop.
    fn run(&self, iters: u64);
    /// [`Subject::count`].
    fn count(&self) -> u64;
    /// [`Subject::reset`].
    fn reset(&self);
}

impl<S: Subject> Batch for S {
    #[inline(never)]
    fn run(&self, iters: u64) {
        for _ in 0..iters {
            self.op();
        }
    }
    fn count(&self) -> u64 {
        Subject::count(self)
    }
    fn reset(&self) {
        Subject::reset(self);
    }
}

/// One line of a bench's table.
pub(crate) struct Row {
    /// Short stable name, used by filters and ratios.
    pub(crate) key: &'static str,
    /// What the row measures, as printed.
    pub(crate) label: &'static str,
    pub(crate) subject: Box<dyn Batch>,
    /// ns per op, one sample per round.
    pub(crate) uncontended: Samples,
    /// Total Mops/s of all processes, one sample per round.
    pub(crate) contended: Samples,
    /// What went wrong, if anything (printed under the table).
    pub(crate) errors: Vec<String>,
}

impl Row {
    pub(crate) fn new(key: &'static str, label: &'static str, s: impl Subject + 'static) -> Row {
        Row {
            key,
            label,
            subject: Box::new(s),
            uncontended: Samples::default(),
            contended: Samples::default(),
            errors: Vec::new(),
        }
    }
}

// ---------------------------------------------------------------------------
// Measuring
// ---------------------------------------------------------------------------

/// Times `iters` ops in this process; ns per op.
#[allow(clippy::cast_precision_loss)]
pub(crate) fn uncontended(s: &dyn Batch, iters: u64) -> f64 {
    let t = Instant::now();
    s.run(iters);
    t.elapsed().as_nanos() as f64 / iters as f64
}

/// Total Mops/s of `procs` processes that did `iters` ops each in `d`.
#[allow(clippy::cast_precision_loss)]
pub(crate) fn mops(procs: u32, iters: u64, d: Duration) -> f64 {
    f64::from(procs) * iters as f64 / d.as_secs_f64() / 1e6
}

/// Runs `iters` ops in each of `procs` processes (this one and `procs - 1`
/// forked children) from a common start; returns the wall time from the
/// start until all are done, after checking that the counter is exact.
///
/// Each process is pinned to a CPU of its own where there are enough: left
/// to itself, the scheduler starts a child on its parent's CPU and moves it
/// only later, which makes short runs measure time-sharing, not
/// contention.
///
/// Must be called while this process has a single thread (it forks).
pub(crate) fn contended(
    s: &dyn Batch,
    line: &StartLine,
    procs: u32,
    iters: u64,
) -> Result<Duration, String> {
    s.reset();
    line.reset();
    let _restore = Affinity::save();
    let cpus = Affinity::cpus();
    let pin = |i: usize| {
        if cpus.len() >= procs as usize {
            Affinity::pin(cpus[i]);
        }
    };
    pin(0);
    let mut children = Vec::new();
    for i in 1..procs as usize {
        children.push(Child::fork(|| {
            pin(i);
            line.arrive();
            line.wait_go();
            s.run(iters);
            line.finish();
        })?);
    }
    line.wait_for(StartLine::READY, procs - 1, &mut children)?;
    let t = Instant::now();
    line.go();
    s.run(iters);
    line.finish();
    line.wait_for(StartLine::DONE, procs, &mut children)?;
    let elapsed = t.elapsed();
    for c in &mut children {
        let status = c.wait()?;
        if status != 0 {
            return Err(format!("worker exited with status {status:#x}"));
        }
    }
    let want = u64::from(procs) * iters;
    let got = s.count();
    if got != want {
        return Err(format!(
            "counter is {got}, expected {want}: {} updates lost, the lock is broken",
            want.abs_diff(got)
        ));
    }
    Ok(elapsed)
}

/// A start line and a finish line in shared memory, for processes forked
/// from the one that made it. Three counters, each on its own cache line.
#[derive(Debug)]
pub(crate) struct StartLine {
    mem: SharedMemory,
}

impl StartLine {
    /// Children that have arrived at the start.
    const READY: usize = 0;
    /// Non-zero once the start is given.
    const GO: usize = 64;
    /// Processes that have finished.
    const DONE: usize = 128;

    pub(crate) fn new() -> shmsync::Result<StartLine> {
        Ok(StartLine {
            mem: SharedMemory::anonymous(4096)?,
        })
    }

    fn word(&self, offset: usize) -> &AtomicU32 {
        debug_assert!(offset % 4 == 0 && offset + 4 <= self.mem.len());
        // SAFETY: in bounds (offset ≤ 128 in a 4096-byte block), aligned
        // (the mapping is page-aligned, offset a multiple of 4), kept
        // mapped by `self.mem` for the returned lifetime, and these bytes
        // are only ever accessed through this AtomicU32.
        unsafe { AtomicU32::from_ptr(self.mem.as_ptr().add(offset).cast()) }
    }

    fn reset(&self) {
        // Relaxed: no other process exists yet; `fork` copies the state.
        for w in [Self::READY, Self::GO, Self::DONE] {
            self.word(w).store(0, Relaxed);
        }
    }

    fn arrive(&self) {
        // Relaxed: only counts; nothing is published through it.
        self.word(Self::READY).fetch_add(1, Relaxed);
    }

    fn go(&self) {
        // Release: pairs with the Acquire load in `wait_go` (orders the
        // parent's setup, e.g. the counter reset, before the start).
        self.word(Self::GO).store(1, Release);
    }

    fn wait_go(&self) {
        // Acquire: pairs with the Release store in `go`.
        while self.word(Self::GO).load(Acquire) == 0 {
            std::hint::spin_loop();
        }
    }

    fn finish(&self) {
        // Release: pairs with the Acquire load in `wait_for`, so this
        // process's last counter update is visible to the checker.
        self.word(Self::DONE).fetch_add(1, Release);
    }

    /// Waits until counter `which` reaches `n`, failing if a child ends
    /// before that.
    fn wait_for(&self, which: usize, n: u32, children: &mut [Child]) -> Result<(), String> {
        let mut spins = 0u32;
        // Acquire: pairs with the Release `fetch_add` in `finish`.
        while self.word(which).load(Acquire) < n {
            spins = spins.wrapping_add(1);
            if spins % 256 == 0 {
                for c in children.iter_mut() {
                    if let Some(status) = c.try_wait()? {
                        return Err(format!("worker ended early, status {status:#x}"));
                    }
                }
            }
            std::thread::yield_now();
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Processes and CPUs
// ---------------------------------------------------------------------------

/// The CPU affinity of the calling thread; restores the saved mask when
/// dropped.
pub(crate) struct Affinity(Option<libc::cpu_set_t>);

impl Affinity {
    pub(crate) fn save() -> Affinity {
        // SAFETY: cpu_set_t is a plain bit array; all-zero is valid.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid cpu_set_t of the size passed.
        let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
        Affinity((rc == 0).then_some(set))
    }

    /// The CPUs this thread may run on, in order.
    pub(crate) fn cpus() -> Vec<usize> {
        let Some(set) = Affinity::save().0.take() else {
            return Vec::new();
        };
        (0..libc::CPU_SETSIZE as usize)
            // SAFETY: CPU_ISSET only reads the set, `i` is in range.
            .filter(|&i| unsafe { libc::CPU_ISSET(i, &set) })
            .collect()
    }

    /// Binds the calling thread to `cpu` (best effort: a failure only
    /// makes the measurement noisier).
    pub(crate) fn pin(cpu: usize) {
        // SAFETY: cpu_set_t is a plain bit array; all-zero is valid.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: CPU_SET writes inside `set`; it ignores out-of-range
        // CPUs (`cpu` comes from `cpus()`, so it is in range anyway).
        unsafe { libc::CPU_SET(cpu, &mut set) };
        // SAFETY: `set` is a valid cpu_set_t of the size passed.
        unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) };
    }
}

impl Drop for Affinity {
    fn drop(&mut self) {
        if let Some(set) = self.0.take() {
            // SAFETY: `set` is a valid cpu_set_t of the size passed.
            unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) };
        }
    }
}

/// A forked child process; killed and reaped if dropped before it was
/// waited for.
#[derive(Debug)]
pub(crate) struct Child {
    pid: libc::pid_t,
    status: Option<i32>,
}

impl Child {
    /// Forks a child that runs `f` and `_exit`s: status 0, or 101 if `f`
    /// panicked (`f` may also end the child itself, e.g. by a signal).
    ///
    /// Must be called while this process has a single thread; fails
    /// otherwise.
    pub(crate) fn fork(f: impl FnOnce()) -> Result<Child, String> {
        single_threaded()?;
        // Buffered output would otherwise be printed by both processes
        // (the child `_exit`s without flushing, but be sure).
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
        // SAFETY: the process is single-threaded (checked just above), so
        // the child inherits consistent allocator and lock state and may
        // run arbitrary code before `_exit`.
        let pid = unsafe { libc::fork() };
        match pid {
            -1 => Err(format!("fork: {}", std::io::Error::last_os_error())),
            0 => {
                // The child: run the work and leave without unwinding into
                // the parent's stack frames or running exit handlers and
                // destructors that belong to the parent.
                let code = match catch_unwind(AssertUnwindSafe(f)) {
                    Ok(()) => 0,
                    Err(_) => 101,
                };
                // SAFETY: `_exit` is always sound to call.
                unsafe { libc::_exit(code) }
            }
            pid => Ok(Child { pid, status: None }),
        }
    }

    /// Sends SIGKILL (a no-op once the child was reaped).
    pub(crate) fn kill(&self) {
        if self.status.is_none() {
            // SAFETY: `pid` is our child and not reaped yet, so the pid
            // cannot have been reused by another process.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
        }
    }

    /// The raw wait status if the child has ended.
    pub(crate) fn try_wait(&mut self) -> Result<Option<i32>, String> {
        self.reap(libc::WNOHANG)
    }

    /// Waits for the child; its raw wait status.
    pub(crate) fn wait(&mut self) -> Result<i32, String> {
        self.reap(0)?
            .ok_or_else(|| "waitpid returned without a status".to_owned())
    }

    fn reap(&mut self, flags: i32) -> Result<Option<i32>, String> {
        if let Some(s) = self.status {
            return Ok(Some(s));
        }
        let mut status = 0;
        loop {
            // SAFETY: `pid` is our unreaped child; `status` is a valid
            // out-pointer.
            let r = unsafe { libc::waitpid(self.pid, &mut status, flags) };
            match r {
                0 => return Ok(None),
                r if r == self.pid => {
                    self.status = Some(status);
                    return Ok(Some(status));
                }
                _ => {
                    let e = std::io::Error::last_os_error();
                    if e.kind() != std::io::ErrorKind::Interrupted {
                        return Err(format!("waitpid: {e}"));
                    }
                }
            }
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.status.is_none() {
            self.kill();
            let _ = self.wait();
        }
    }
}

/// Checks that this process has one thread. A thread that was just joined
/// can still be listed in `/proc/self/task` for a moment (the join returns
/// when the kernel clears its TID, a little before the task is released),
/// so this waits up to 100 ms for the count to settle.
fn single_threaded() -> Result<(), String> {
    let mut threads = 0;
    for _ in 0..1000 {
        threads = std::fs::read_dir("/proc/self/task").map_or(1, Iterator::count);
        if threads == 1 {
            return Ok(());
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    Err(format!("cannot fork: {threads} threads are running"))
}

// ---------------------------------------------------------------------------
// Statistics
// ---------------------------------------------------------------------------

/// Samples of one quantity.
#[derive(Debug, Default, Clone)]
pub(crate) struct Samples(Vec<f64>);

impl Samples {
    pub(crate) fn push(&mut self, x: f64) {
        self.0.push(x);
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn sorted(&self) -> Vec<f64> {
        let mut v = self.0.clone();
        v.sort_by(f64::total_cmp);
        v
    }

    /// The middle sample (the mean of the two middle ones for an even
    /// count).
    pub(crate) fn median(&self) -> Option<f64> {
        let v = self.sorted();
        let n = v.len();
        match n {
            0 => None,
            _ if n % 2 == 1 => Some(v[n / 2]),
            _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
        }
    }

    pub(crate) fn min(&self) -> Option<f64> {
        self.sorted().first().copied()
    }

    pub(crate) fn max(&self) -> Option<f64> {
        self.sorted().last().copied()
    }

    /// The `q`-quantile by nearest rank: the sample at index
    /// `round((n - 1) * q)` in sorted order (`q` in `0.0..=1.0`; `1.0` is
    /// the maximum).
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    pub(crate) fn percentile(&self, q: f64) -> Option<f64> {
        let v = self.sorted();
        let last = v.len().checked_sub(1)?;
        let i = (last as f64 * q.clamp(0.0, 1.0)).round() as usize;
        v.get(i.min(last)).copied()
    }
}

impl FromIterator<f64> for Samples {
    fn from_iter<I: IntoIterator<Item = f64>>(iter: I) -> Self {
        Samples(iter.into_iter().collect())
    }
}

// ---------------------------------------------------------------------------
// The machine
// ---------------------------------------------------------------------------

/// Prints what the figures depend on: `"<bench>: CPU | n CPUs | Linux x |
/// glibc y"`, then how busy the machine was just before (other processes'
/// CPU use over 300 ms: on a shared machine, contended figures are noisy
/// when it is high).
pub(crate) fn print_machine(bench: &str) {
    // SAFETY: gnu_get_libc_version returns a static NUL-terminated string.
    let glibc = unsafe { std::ffi::CStr::from_ptr(libc::gnu_get_libc_version()) };
    let cpus = std::thread::available_parallelism().map_or(0, std::num::NonZeroUsize::get);
    println!(
        "{bench}: {} | {cpus} CPUs | Linux {} | glibc {}",
        first_line_of("/proc/cpuinfo", "model name").unwrap_or_else(|| "unknown CPU".into()),
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map_or_else(|_| "?".into(), |s| s.trim().to_owned()),
        glibc.to_string_lossy(),
    );
    if let Some(busy) = busy_cpus(Duration::from_millis(300)) {
        println!(
            "other work before the start: {busy:.2} CPUs busy{}",
            if busy > 0.2 {
                " (contended figures will be noisy)"
            } else {
                ""
            }
        );
    }
}

fn first_line_of(path: &str, prefix: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().find(|l| l.starts_with(prefix))?;
    Some(
        line.split_once(':')
            .map_or(line, |(_, v)| v)
            .trim()
            .to_owned(),
    )
}

/// How many CPUs' worth of time other processes used over `window`, from
/// `/proc/stat` (this process sleeps meanwhile).
#[allow(clippy::cast_precision_loss)]
fn busy_cpus(window: Duration) -> Option<f64> {
    fn sample() -> Option<(u64, u64)> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let line = stat.lines().find(|l| l.starts_with("cpu "))?;
        let v: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|x| x.parse().ok())
            .collect();
        let idle = v.get(3)? + v.get(4)?;
        Some((v.iter().sum(), idle))
    }
    let (t0, i0) = sample()?;
    std::thread::sleep(window);
    let (t1, i1) = sample()?;
    let total = t1.checked_sub(t0).filter(|&t| t > 0)? as f64;
    let idle = i1.saturating_sub(i0) as f64;
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get) as f64;
    Some((1.0 - idle / total) * cpus)
}
