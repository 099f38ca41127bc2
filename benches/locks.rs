//! `cargo bench --bench locks`: what one lock + increment + unlock costs,
//! uncontended and with two processes contending on the same lock, for
//! shmsync's [`RLock`] and [`Lock`] against glibc's process-shared pthread
//! mutexes and a raw atomic add, all in one run, with the ratios the issue
//! sets as targets.
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
//! Environment: `SHMSYNC_BENCH_QUICK=1` for a few-second smoke run (numbers
//! not meaningful), `SHMSYNC_BENCH_PROCS=N` to contend with N processes
//! instead of 2, `SHMSYNC_BENCH_VERBOSE=1` to print every sample.
//! Arguments select rows: `cargo bench --bench locks -- rlock glibc-normal`
//! keeps the rows with exactly these keys, or, if no key matches exactly,
//! the rows whose key or label contains an argument (`-- glibc`). The
//! bench never exits with an error status: a missed target prints `MISS`,
//! a broken lock prints `ERROR`.
//!
//! Adding a row: implement [`harness::Subject`] (one op, read and reset the
//! counter) and push a [`harness::Row`] in `rows()`. Adding a ratio: one
//! line in `TARGETS`.

use std::fmt::Display;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

use shmsync::{Lock, LockError, RLock, RawValue, SharedMemory, Value};

use harness::{Config, Row, Subject};

/// A small measuring harness: subjects, cross-process start line, forked
/// workers, sample statistics. Independent of what is measured, so that it
/// can move to `benches/common/` when a second bench needs it.
mod harness {
    use std::io::Write as _;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::sync::atomic::AtomicU32;
    use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
    use std::time::{Duration, Instant};

    use shmsync::SharedMemory;

    /// Something measured in *ops*. One op increments a counter in shared
    /// memory by one, however the subject protects it (a lock around a
    /// load + store, or a single atomic add).
    pub(crate) trait Subject {
        /// One op.
        fn op(&self);
        /// The counter (read while no process is running ops).
        fn count(&self) -> u64;
        /// Sets the counter to zero (while no process is running ops).
        fn reset(&self);
    }

    /// A [`Subject`] behind one virtual call per *batch*: the loop over `op`
    /// is monomorphised for each subject, so the dispatch costs nothing per
    /// op and `op` is inlined into the loop, as in real code.
    pub(crate) trait Batch {
        fn run(&self, iters: u64);
        fn count(&self) -> u64;
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

    /// One line of the table.
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
        pub(crate) fn new(
            key: &'static str,
            label: &'static str,
            s: impl Subject + 'static,
        ) -> Row {
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

    /// The run's sizes.
    #[derive(Debug, Clone, Copy)]
    pub(crate) struct Config {
        pub(crate) quick: bool,
        /// Print every sample as it is taken.
        pub(crate) verbose: bool,
        /// Ops per uncontended sample.
        pub(crate) iters: u64,
        /// Ops per process per contended sample.
        pub(crate) contended_iters: u64,
        /// Samples per row and mode.
        pub(crate) rounds: usize,
        /// Contending processes (this one included).
        pub(crate) procs: u32,
    }

    impl Config {
        pub(crate) fn from_env() -> Config {
            let flag = |name: &str| std::env::var_os(name).is_some_and(|v| v != "0");
            let quick = flag("SHMSYNC_BENCH_QUICK");
            let verbose = flag("SHMSYNC_BENCH_VERBOSE");
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

    /// Samples of one quantity.
    #[derive(Debug, Default, Clone)]
    pub(crate) struct Samples(Vec<f64>);

    impl Samples {
        pub(crate) fn push(&mut self, x: f64) {
            self.0.push(x);
        }
        fn sorted(&self) -> Vec<f64> {
            let mut v = self.0.clone();
            v.sort_by(f64::total_cmp);
            v
        }
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
    }

    /// Times `iters` ops in this process; ns per op.
    pub(crate) fn uncontended(s: &dyn Batch, iters: u64) -> f64 {
        let t = Instant::now();
        s.run(iters);
        t.elapsed().as_nanos() as f64 / iters as f64
    }

    /// Runs `iters` ops in each of `procs` processes (this one and
    /// `procs - 1` forked children) from a common start; returns the wall
    /// time from the start until all are done, after checking that the
    /// counter is exact.
    ///
    /// Must be called while this process has a single thread.
    pub(crate) fn contended(
        s: &dyn Batch,
        line: &StartLine,
        procs: u32,
        iters: u64,
    ) -> Result<Duration, String> {
        s.reset();
        line.reset();
        // One CPU per process where there are enough: left to itself, the
        // scheduler starts a child on its parent's CPU and moves it only
        // later, which makes short runs measure time-sharing, not
        // contention.
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

    /// A start line and a finish line in shared memory, for processes
    /// forked from the one that made it. Three counters, each on its own
    /// cache line.
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
            // mapped by `self.mem` for the returned lifetime, and these
            // bytes are only ever accessed through this AtomicU32.
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
        /// Forks a child that runs `f` and `_exit`s: status 0, or 101 if
        /// `f` panicked.
        ///
        /// Must be called while this process has a single thread.
        pub(crate) fn fork(f: impl FnOnce()) -> Result<Child, String> {
            let threads = std::fs::read_dir("/proc/self/task").map_or(1, Iterator::count);
            if threads != 1 {
                return Err(format!("cannot fork: {threads} threads are running"));
            }
            // Buffered output would otherwise be printed by both processes
            // (the child `_exit`s without flushing, but be sure).
            let _ = std::io::stdout().flush();
            let _ = std::io::stderr().flush();
            // SAFETY: the process is single-threaded (checked just above),
            // so the child inherits consistent allocator and lock state and
            // may run arbitrary code before `_exit`.
            let pid = unsafe { libc::fork() };
            match pid {
                -1 => Err(format!("fork: {}", std::io::Error::last_os_error())),
                0 => {
                    // The child: run the work and leave without unwinding
                    // into the parent's stack frames or running exit
                    // handlers and destructors that belong to the parent.
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

        /// The raw wait status if the child has ended.
        fn try_wait(&mut self) -> Result<Option<i32>, String> {
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
                // SAFETY: `pid` is our child and not reaped yet, so the pid
                // cannot have been reused by another process.
                unsafe { libc::kill(self.pid, libc::SIGKILL) };
                let _ = self.wait();
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
    /// `None`: printed for information.
    goal: Option<(bool, f64)>,
    source: &'static str,
}

const TARGETS: &[Target] = &[
    Target {
        row: "rlock",
        baseline: "glibc-recursive",
        metric: Metric::Uncontended,
        goal: Some((true, 1.0)),
        source: "issue #2",
    },
    Target {
        row: "rlock",
        baseline: "glibc-recursive",
        metric: Metric::Contended,
        goal: Some((false, 1.2)),
        source: "issue #2",
    },
    Target {
        row: "rlock",
        baseline: "glibc-robust-recursive",
        metric: Metric::Uncontended,
        goal: Some((true, 0.7)),
        source: "issue #3",
    },
    Target {
        row: "lock-raw",
        baseline: "glibc-normal",
        metric: Metric::Uncontended,
        goal: None,
        source: "info",
    },
    Target {
        row: "lock-raw",
        baseline: "glibc-normal",
        metric: Metric::Contended,
        goal: None,
        source: "info",
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
            None => String::new(),
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
            "  {:<50} {:>6.2}x  {verdict}  ({})",
            format!("{} / {} {col}", t.row, t.baseline),
            ratio,
            t.source
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

fn print_machine(cfg: &Config) {
    // SAFETY: gnu_get_libc_version returns a static NUL-terminated string.
    let glibc = unsafe { std::ffi::CStr::from_ptr(libc::gnu_get_libc_version()) };
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "shmsync lock bench: {} | {cpus} CPUs | Linux {} | glibc {}",
        first_line_of("/proc/cpuinfo", "model name").unwrap_or_else(|| "unknown CPU".into()),
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map_or_else(|_| "?".into(), |s| s.trim().to_owned()),
        glibc.to_string_lossy(),
    );
    if let Some(busy) = busy_cpus(std::time::Duration::from_millis(300)) {
        println!(
            "other work before the start: {busy:.2} CPUs busy{}",
            if busy > 0.2 {
                " (contended figures will be noisy)"
            } else {
                ""
            }
        );
    }
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

/// How many CPUs' worth of time other processes used over `window`, from
/// `/proc/stat` (this process sleeps meanwhile).
fn busy_cpus(window: std::time::Duration) -> Option<f64> {
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
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    Some((1.0 - idle / total) * cpus)
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
    let line = match harness::StartLine::new() {
        Ok(l) => l,
        Err(e) => return note(format_args!("start line: {e}")),
    };

    // Warm up: page faults, the TID cache, branch predictors.
    for r in &rows {
        r.subject.run(cfg.iters / 10);
    }
    for _ in 0..cfg.rounds {
        for r in &mut rows {
            let ns = harness::uncontended(&*r.subject, cfg.iters);
            if cfg.verbose {
                println!("  {:<24} uncontended {ns:8.2} ns/op", r.key);
            }
            r.uncontended.push(ns);
        }
    }
    if cfg.procs > 1 {
        for _ in 0..cfg.rounds {
            for r in &mut rows {
                match harness::contended(&*r.subject, &line, cfg.procs, cfg.contended_iters) {
                    Ok(d) => {
                        let ops = f64::from(cfg.procs) * cfg.contended_iters as f64;
                        let mops = ops / d.as_secs_f64() / 1e6;
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
