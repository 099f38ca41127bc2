//! `cargo bench --bench sync`: how fast the synchronisation objects hand
//! control from one process to another, against the kernel's and glibc's
//! primitives and Python's `multiprocessing` objects, all in one run, with
//! the target ratios of `docs/BENCHMARKS.md`.
//!
//! What it measures:
//! - **ping-pong** (round trips/s): two processes (this one and a forked
//!   child) pass a turn back and forth through a pair of objects; one round
//!   trip is two blocking hand-offs. Baselines: a raw futex pair
//!   (`FUTEX_WAIT`/`FUTEX_WAKE` on two words: the floor of any futex
//!   object), glibc's process-shared `sem_t` and `pthread_cond_t` + mutex.
//! - **barrier** (cycles/s): two processes pass a `Barrier(2)` again and
//!   again; baseline glibc's process-shared `pthread_barrier_t`.
//! - **uncontended** (ns per acquire + release in one process): the
//!   semaphore against glibc's `sem_wait` + `sem_post`.
//! - **Python** (through `python3`, `multiprocessing` with the `fork`
//!   start method: the same ping-pongs and barrier); skipped with a message
//!   when `python3` is missing.
//!
//! Rounds are interleaved (every round measures every row once), so a slow
//! moment of a shared machine hits all rows alike; the table shows the
//! median and the spread. The processes are not pinned: the figures are
//! what a user gets from the scheduler (the issue's measurements too).
//!
//! Environment (`benches/common/mod.rs`): `SHMSYNC_BENCH_QUICK=1` for a
//! smoke run of a few seconds (2 000 round trips per sample, 3 rounds;
//! full: 20 000 and 5). Arguments keep the rows whose key contains one of
//! them (`cargo bench --bench sync -- event sem`). The bench never exits
//! with an error status: a missed target prints `MISS`, a failed row
//! `ERROR`.
//!
//! Adding a row: implement [`Pair`] (what each side does in one round
//! trip) and push it in `pairs()`; a ratio is one line in `TARGETS`.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::AtomicU32;
use std::sync::atomic::Ordering::{Acquire, Release};
use std::time::Instant;

use std::sync::atomic::Ordering::Relaxed;

use shmsync::{AtomicValue, Barrier, Condition, Event, Lock, Semaphore, SharedMemory};

mod common;

use common::{Affinity, Child, Samples};

/// The run's sizes.
#[derive(Debug, Clone, Copy)]
struct Config {
    /// Round trips (or barrier cycles) per sample.
    trips: u64,
    /// Samples per row.
    rounds: usize,
    /// Uncontended acquire + release pairs per sample.
    iters: u64,
}

impl Config {
    fn from_env() -> Config {
        if common::quick() {
            Config {
                trips: 2_000,
                rounds: 3,
                iters: 200_000,
            }
        } else {
            Config {
                trips: 20_000,
                rounds: 5,
                iters: 2_000_000,
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Two-process hand-offs
// ---------------------------------------------------------------------------

/// A pair of objects shared by two processes that hand a turn back and
/// forth. Made before the `fork`, so both processes use the same objects.
trait Pair {
    /// The parent's half of one round trip: give the turn, wait for it back.
    fn ping(&self);
    /// The child's half: wait for the turn, give it back.
    fn pong(&self);
}

/// Where the two processes run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placement {
    /// Pinned to two different CPUs: every hand-off wakes the other CPU.
    Apart,
    /// Both pinned to one CPU: every hand-off is a context switch.
    Together,
    /// Wherever the scheduler puts them.
    Free,
}

impl Placement {
    const ALL: [Placement; 3] = [Placement::Apart, Placement::Together, Placement::Free];

    fn name(self) -> &'static str {
        match self {
            Placement::Apart => "apart",
            Placement::Together => "together",
            Placement::Free => "free",
        }
    }

    /// The CPUs of the parent and the child, if pinned.
    fn cpus(self) -> Option<(usize, usize)> {
        let cpus = Affinity::cpus();
        match (self, cpus.as_slice()) {
            (Placement::Apart, [a, b, ..]) => Some((*a, *b)),
            (Placement::Together, [a, ..]) => Some((*a, *a)),
            _ => None,
        }
    }
}

/// Times `trips` round trips between this process and a forked child
/// (after 100 unmeasured ones), placed as `place` says; round trips per
/// second.
#[allow(clippy::cast_precision_loss)]
fn ping_pong(p: &dyn Pair, trips: u64, place: Placement) -> Result<f64, String> {
    const WARM: u64 = 100;
    let _restore = Affinity::save();
    let cpus = place.cpus();
    if let Some((mine, _)) = cpus {
        Affinity::pin(mine);
    }
    let mut child = Child::fork(|| {
        if let Some((_, theirs)) = cpus {
            Affinity::pin(theirs);
        }
        for _ in 0..WARM + trips {
            p.pong();
        }
    })?;
    for _ in 0..WARM {
        p.ping();
    }
    let t = Instant::now();
    for _ in 0..trips {
        p.ping();
    }
    let d = t.elapsed();
    match child.wait()? {
        0 => Ok(trips as f64 / d.as_secs_f64()),
        s => Err(format!("the child ended with status {s:#x}")),
    }
}

/// Shared memory for the baselines: one mapping, at least a page.
fn block(len: usize) -> SharedMemory {
    SharedMemory::anonymous(len.max(4096)).expect("an anonymous mapping for a baseline")
}

/// Two futex words, one per direction; the floor of any futex hand-off.
struct RawFutex {
    mem: SharedMemory,
}

impl RawFutex {
    fn word(&self, i: usize) -> &AtomicU32 {
        // SAFETY: two words at offsets 0 and 64 of a 4096-byte mapping kept
        // alive by `self.mem`, page-aligned, accessed only as AtomicU32.
        unsafe { AtomicU32::from_ptr(self.mem.as_ptr().add(64 * i).cast()) }
    }

    /// Raises word `i` to 1 and wakes its sleeper.
    fn give(&self, i: usize) {
        // Release: pairs with the Acquire swap in `take`.
        self.word(i).store(1, Release);
        futex(self.word(i), libc::FUTEX_WAKE, 1);
    }

    /// Waits for word `i` to be 1 and lowers it.
    fn take(&self, i: usize) {
        // Acquire: pairs with the Release store in `give`.
        while self.word(i).swap(0, Acquire) == 0 {
            futex(self.word(i), libc::FUTEX_WAIT, 0);
        }
    }
}

fn futex(w: &AtomicU32, op: i32, val: u32) {
    // SAFETY: `w` is a valid, aligned futex word in a shared mapping (no
    // FUTEX_PRIVATE_FLAG: the other process waits on it too); no timeout.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            w.as_ptr(),
            op,
            val,
            std::ptr::null::<libc::timespec>(),
        );
    }
}

impl Pair for RawFutex {
    fn ping(&self) {
        self.give(0);
        self.take(1);
    }
    fn pong(&self) {
        self.take(0);
        self.give(1);
    }
}

/// Two process-shared glibc semaphores.
struct GlibcSem {
    mem: SharedMemory,
}

impl GlibcSem {
    fn new() -> GlibcSem {
        let s = GlibcSem { mem: block(4096) };
        for i in 0..2 {
            // SAFETY: `sem(i)` is a suitably aligned, unused sem_t-sized
            // area of the shared mapping; pshared = 1, initial value 0.
            unsafe { libc::sem_init(s.sem(i), 1, 0) };
        }
        s
    }

    fn sem(&self, i: usize) -> *mut libc::sem_t {
        // 128 bytes apart in a page-aligned page: in bounds and aligned.
        self.mem.as_ptr().wrapping_add(128 * i).cast()
    }

    fn post(&self, i: usize) {
        // SAFETY: an initialised process-shared semaphore (`new`).
        unsafe { libc::sem_post(self.sem(i)) };
    }

    fn wait(&self, i: usize) {
        // SAFETY: as in `post`; EINTR is retried.
        while unsafe { libc::sem_wait(self.sem(i)) } != 0 {}
    }
}

impl Pair for GlibcSem {
    fn ping(&self) {
        self.post(0);
        self.wait(1);
    }
    fn pong(&self) {
        self.wait(0);
        self.post(1);
    }
}

/// A process-shared `pthread_cond_t` + mutex and a turn word, one
/// condition for both directions (only one side ever waits).
struct GlibcCond {
    mem: SharedMemory,
}

impl GlibcCond {
    const MUTEX: usize = 0;
    const COND: usize = 64;
    const TURN: usize = 192;

    fn new() -> GlibcCond {
        let c = GlibcCond { mem: block(4096) };
        // SAFETY: the attribute objects are initialised before use and
        // destroyed after; the mutex and condition are initialised in
        // their own aligned, unused areas of the shared mapping.
        unsafe {
            let mut ma: libc::pthread_mutexattr_t = std::mem::zeroed();
            libc::pthread_mutexattr_init(&mut ma);
            libc::pthread_mutexattr_setpshared(&mut ma, libc::PTHREAD_PROCESS_SHARED);
            libc::pthread_mutex_init(c.mutex(), &ma);
            libc::pthread_mutexattr_destroy(&mut ma);
            let mut ca: libc::pthread_condattr_t = std::mem::zeroed();
            libc::pthread_condattr_init(&mut ca);
            libc::pthread_condattr_setpshared(&mut ca, libc::PTHREAD_PROCESS_SHARED);
            libc::pthread_cond_init(c.cond(), &ca);
            libc::pthread_condattr_destroy(&mut ca);
        }
        c
    }

    fn mutex(&self) -> *mut libc::pthread_mutex_t {
        self.mem.as_ptr().wrapping_add(Self::MUTEX).cast()
    }

    fn cond(&self) -> *mut libc::pthread_cond_t {
        self.mem.as_ptr().wrapping_add(Self::COND).cast()
    }

    fn turn(&self) -> &AtomicU32 {
        // SAFETY: in bounds and aligned in the page kept by `self.mem`,
        // only ever accessed as an AtomicU32.
        unsafe { AtomicU32::from_ptr(self.mem.as_ptr().add(Self::TURN).cast()) }
    }

    /// Under the mutex: sets the turn to `give`, signals, and waits until
    /// the other side sets it to `want`.
    fn hand(&self, give: u32, want: u32) {
        // SAFETY: initialised process-shared objects (`new`); the mutex is
        // held around the wait as pthread_cond_wait requires.
        unsafe {
            libc::pthread_mutex_lock(self.mutex());
            // Acquire/Release: the mutex orders everything already; these
            // only need to be atomic.
            self.turn().store(give, Release);
            libc::pthread_cond_signal(self.cond());
            while self.turn().load(Acquire) != want {
                libc::pthread_cond_wait(self.cond(), self.mutex());
            }
            libc::pthread_mutex_unlock(self.mutex());
        }
    }
}

impl Pair for GlibcCond {
    // Turn 1: the child's; 2: the parent's (0 at the start: nobody's).
    fn ping(&self) {
        self.hand(1, 2);
    }
    fn pong(&self) {
        // SAFETY: as in `hand`.
        unsafe {
            libc::pthread_mutex_lock(self.mutex());
            while self.turn().load(Acquire) != 1 {
                libc::pthread_cond_wait(self.cond(), self.mutex());
            }
            self.turn().store(2, Release);
            libc::pthread_cond_signal(self.cond());
            libc::pthread_mutex_unlock(self.mutex());
        }
    }
}

/// A process-shared `pthread_barrier_t` of two.
struct GlibcBarrier {
    mem: SharedMemory,
}

impl GlibcBarrier {
    fn new() -> GlibcBarrier {
        let b = GlibcBarrier { mem: block(4096) };
        // SAFETY: the attribute is initialised before use and destroyed
        // after; the barrier lives in an aligned, unused area of the
        // shared mapping.
        unsafe {
            let mut a: libc::pthread_barrierattr_t = std::mem::zeroed();
            libc::pthread_barrierattr_init(&mut a);
            libc::pthread_barrierattr_setpshared(&mut a, libc::PTHREAD_PROCESS_SHARED);
            libc::pthread_barrier_init(b.mem.as_ptr().cast(), &a, 2);
            libc::pthread_barrierattr_destroy(&mut a);
        }
        b
    }
}

impl Pair for GlibcBarrier {
    fn ping(&self) {
        // SAFETY: an initialised process-shared barrier of two (`new`).
        unsafe { libc::pthread_barrier_wait(self.mem.as_ptr().cast()) };
    }
    fn pong(&self) {
        self.ping();
    }
}

/// Two shmsync events, one per direction; each is cleared by its waiter.
struct Events([Event; 2]);

impl Pair for Events {
    fn ping(&self) {
        self.0[0].set();
        self.0[1].wait();
        self.0[1].clear();
    }
    fn pong(&self) {
        self.0[0].wait();
        self.0[0].clear();
        self.0[1].set();
    }
}

/// Two shmsync semaphores, one per direction (the producer/consumer
/// pattern: a permit taken and forgotten, given back by `release`).
struct Sems([Semaphore; 2]);

impl Pair for Sems {
    fn ping(&self) {
        self.0[0].release().expect("the bench semaphore");
        self.0[1].take();
    }
    fn pong(&self) {
        self.0[0].take();
        self.0[1].release().expect("the bench semaphore");
    }
}

/// A shmsync `Condition` over a `Lock` and a turn, one condition for both
/// directions; `notify_one` under the lock (Python's pattern) or after the
/// unlock.
struct Cond {
    lock: Lock,
    cond: Condition<Lock>,
    turn: AtomicValue<u32>,
    under_lock: bool,
}

impl Cond {
    fn new(under_lock: bool) -> shmsync::Result<Cond> {
        let lock = Lock::new()?;
        let cond = Condition::with_lock(&lock)?;
        Ok(Cond {
            lock,
            cond,
            turn: AtomicValue::new(0)?,
            under_lock,
        })
    }

    /// Waits for turn `me`, then gives the turn to `next`.
    fn hand(&self, me: u32, next: u32) {
        let g = self.lock.lock().expect("the bench lock");
        let g = self
            .cond
            .wait_while(g, |_| self.turn.load(Relaxed) != me)
            .expect("the bench lock");
        // Relaxed: the lock orders it.
        self.turn.store(next, Relaxed);
        if self.under_lock {
            self.cond.notify_one();
            drop(g);
        } else {
            drop(g);
            self.cond.notify_one();
        }
    }
}

impl Pair for Cond {
    // Turn 0: the parent's; 1: the child's.
    fn ping(&self) {
        self.hand(0, 1);
    }
    fn pong(&self) {
        self.hand(1, 0);
    }
}

/// A shmsync `Barrier` of two.
struct Barrier2(Barrier);

impl Pair for Barrier2 {
    fn ping(&self) {
        self.0.wait().expect("the bench barrier");
    }
    fn pong(&self) {
        self.ping();
    }
}

/// A row of the hand-off table.
struct Row {
    key: &'static str,
    label: &'static str,
    /// What one sample counts.
    unit: &'static str,
    pair: Box<dyn Pair>,
    /// One set of samples per placement ([`Placement::ALL`] order).
    samples: [Samples; 3],
    errors: Vec<String>,
}

fn row(key: &'static str, label: &'static str, unit: &'static str, p: impl Pair + 'static) -> Row {
    Row {
        key,
        label,
        unit,
        pair: Box::new(p),
        samples: Default::default(),
        errors: Vec::new(),
    }
}

fn pairs() -> shmsync::Result<Vec<Row>> {
    const RT: &str = "round trips/s";
    Ok(vec![
        row(
            "futex",
            "raw futex pair (floor)",
            RT,
            RawFutex { mem: block(4096) },
        ),
        row("glibc-sem", "glibc sem_t pair", RT, GlibcSem::new()),
        row(
            "glibc-cond",
            "glibc pthread_cond_t + mutex",
            RT,
            GlibcCond::new(),
        ),
        row(
            "glibc-barrier",
            "glibc pthread_barrier_t(2)",
            "cycles/s",
            GlibcBarrier::new(),
        ),
        row(
            "sem",
            "shmsync Semaphore pair",
            RT,
            Sems([Semaphore::new(0)?, Semaphore::new(0)?]),
        ),
        row(
            "event",
            "shmsync Event pair",
            RT,
            Events([Event::new()?, Event::new()?]),
        ),
        row(
            "cond",
            "shmsync Condition, notify locked",
            RT,
            Cond::new(true)?,
        ),
        row(
            "cond-unlocked",
            "shmsync Condition, notify after",
            RT,
            Cond::new(false)?,
        ),
        row(
            "barrier",
            "shmsync Barrier(2)",
            "cycles/s",
            Barrier2(Barrier::new(2)?),
        ),
    ])
}

// ---------------------------------------------------------------------------
// Uncontended
// ---------------------------------------------------------------------------

/// ns per `f()` (one acquire + release), over `iters` calls.
#[allow(clippy::cast_precision_loss)]
fn ns_per(iters: u64, mut f: impl FnMut()) -> f64 {
    let t = Instant::now();
    for _ in 0..iters {
        f();
    }
    t.elapsed().as_nanos() as f64 / iters as f64
}

/// How a shmsync semaphore is taken and given back.
#[derive(Clone, Copy)]
enum SemWay {
    /// `drop(acquire())`: an owned `Permit`.
    Permit,
    /// `acquire().forget()` + `release()`.
    Forget,
    /// `take()` + `release()`: a permit taken for good, without a record.
    Take,
}

/// ns per shmsync acquire + release, taken `way`.
fn sem_uncontended(iters: u64, way: SemWay) -> f64 {
    let Ok(s) = Semaphore::new(1) else {
        return f64::NAN;
    };
    match way {
        SemWay::Permit => ns_per(iters, || drop(std::hint::black_box(s.acquire()))),
        SemWay::Forget => ns_per(iters, || {
            s.acquire().forget();
            let _ = std::hint::black_box(s.release());
        }),
        SemWay::Take => ns_per(iters, || {
            std::hint::black_box(s.take());
            let _ = std::hint::black_box(s.release());
        }),
    }
}

/// ns per glibc `sem_wait` + `sem_post` on a process-shared semaphore.
#[allow(clippy::cast_precision_loss)]
fn glibc_sem_uncontended(iters: u64) -> f64 {
    let mem = block(4096);
    let sem: *mut libc::sem_t = mem.as_ptr().cast();
    // SAFETY: an aligned, unused sem_t area of the mapping; pshared.
    unsafe { libc::sem_init(sem, 1, 1) };
    let t = Instant::now();
    for _ in 0..iters {
        // SAFETY: the semaphore was initialised above and the mapping is
        // alive; it holds one permit, so the wait never blocks.
        unsafe {
            libc::sem_wait(sem);
            libc::sem_post(sem);
        }
    }
    t.elapsed().as_nanos() as f64 / iters as f64
}

// ---------------------------------------------------------------------------
// Python
// ---------------------------------------------------------------------------

/// Python's objects, timed by `python3` itself: one `name rate` line per
/// measurement.
const PYTHON: &str = r#"
import multiprocessing as mp, sys, time
ctx = mp.get_context("fork")
N = int(sys.argv[1])
WARM = 100

def timed(child, parent):
    p = ctx.Process(target=child, args=(N + WARM,))
    p.start()
    parent(WARM)
    t = time.perf_counter()
    parent(N)
    d = time.perf_counter() - t
    p.join()
    return N / d

e1, e2 = ctx.Event(), ctx.Event()
def ev_child(n):
    for _ in range(n):
        e1.wait(); e1.clear(); e2.set()
def ev_parent(n):
    for _ in range(n):
        e1.set(); e2.wait(); e2.clear()

s1, s2 = ctx.Semaphore(0), ctx.Semaphore(0)
def sem_child(n):
    for _ in range(n):
        s1.acquire(); s2.release()
def sem_parent(n):
    for _ in range(n):
        s1.release(); s2.acquire()

c = ctx.Condition()
turn = ctx.RawValue("i", 0)
def cond_child(n):
    for _ in range(n):
        with c:
            while turn.value != 1:
                c.wait()
            turn.value = 2
            c.notify()
def cond_parent(n):
    for _ in range(n):
        with c:
            turn.value = 1
            c.notify()
            while turn.value != 2:
                c.wait()

b = ctx.Barrier(2)
def bar(n):
    for _ in range(n):
        b.wait()

for name, ch, pa in [("python-event", ev_child, ev_parent),
                     ("python-sem", sem_child, sem_parent),
                     ("python-cond", cond_child, cond_parent),
                     ("python-barrier", bar, bar)]:
    print(name, timed(ch, pa), flush=True)
"#;

/// Runs the Python measurements once; `key → rate`, or why not.
fn python_round(trips: u64) -> Result<BTreeMap<String, f64>, String> {
    let out = Command::new("python3")
        .arg("-c")
        .arg(PYTHON)
        .arg(trips.to_string())
        .output()
        .map_err(|e| format!("python3 not run ({e}): Python rows skipped"))?;
    if !out.status.success() {
        return Err(format!(
            "python3 failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_owned(), v.trim().parse().ok()?))
        })
        .collect())
}

// ---------------------------------------------------------------------------
// Targets
// ---------------------------------------------------------------------------

/// `(ours, baseline, minimum ratio ours/baseline, what it means)`: both
/// keys are rows (or Python keys); a higher rate is better.
const TARGETS: &[(&str, &str, f64, &str)] = &[
    (
        "sem",
        "glibc-sem",
        1.0,
        "Semaphore ping-pong ≥ 1.0× glibc sem_t ping-pong",
    ),
    (
        "event",
        "glibc-sem",
        1.0,
        "Event ping-pong ≥ 1.0× glibc sem_t ping-pong",
    ),
    (
        "event",
        "python-event",
        3.0,
        "Event ping-pong ≥ 3× Python's Event",
    ),
    (
        "cond",
        "glibc-cond",
        1.0,
        "Condition ping-pong (notify under the lock) ≥ 1.0× glibc pthread_cond_t",
    ),
    (
        "cond",
        "python-cond",
        3.0,
        "Condition ping-pong ≥ 3× Python's Condition",
    ),
    (
        "barrier",
        "glibc-barrier",
        1.0,
        "Barrier(2) cycles/s ≥ 1.0× glibc pthread_barrier_t",
    ),
    (
        "barrier",
        "python-barrier",
        8.0,
        "Barrier(2) ≥ 8× Python's Barrier",
    ),
];

fn main() {
    common::print_machine("sync");
    let cfg = Config::from_env();
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let keep = |key: &str| filters.is_empty() || filters.iter().any(|f| key.contains(f.as_str()));
    let mut rows = match pairs() {
        Ok(r) => r,
        Err(e) => {
            println!("ERROR: cannot make the objects: {e}");
            return;
        }
    };
    rows.retain(|r| keep(r.key));
    // Uncontended ns per acquire + release, by key.
    let mut unc: BTreeMap<&str, Samples> = BTreeMap::new();
    let mut python: BTreeMap<String, Samples> = BTreeMap::new();
    let mut python_note = None;
    println!(
        "{} round trips per sample, {} rounds (interleaved), medians",
        cfg.trips, cfg.rounds
    );
    for _ in 0..cfg.rounds {
        for (i, place) in Placement::ALL.into_iter().enumerate() {
            for r in &mut rows {
                match ping_pong(r.pair.as_ref(), cfg.trips, place) {
                    Ok(x) => r.samples[i].push(x),
                    Err(e) => r.errors.push(format!("{}: {e}", place.name())),
                }
            }
        }
        if keep("uncontended") {
            for (k, x) in [
                ("glibc-sem", glibc_sem_uncontended(cfg.iters)),
                ("sem-take", sem_uncontended(cfg.iters, SemWay::Take)),
                ("sem-forget", sem_uncontended(cfg.iters, SemWay::Forget)),
                ("sem-permit", sem_uncontended(cfg.iters, SemWay::Permit)),
            ] {
                unc.entry(k).or_default().push(x);
            }
        }
        if keep("python") && python_note.is_none() {
            match python_round(cfg.trips.min(5_000)) {
                Ok(m) => {
                    for (k, v) in m {
                        python.entry(k).or_default().push(v);
                    }
                }
                Err(e) => python_note = Some(e),
            }
        }
    }
    // "key@placement" → median rate.
    let mut rates: BTreeMap<String, f64> = BTreeMap::new();
    println!(
        "\nmedian (min–max) per placement: apart = pinned to two CPUs, together = \
         pinned to one, free = unpinned"
    );
    print!("{:<16} {:<30}", "key", "what");
    for place in Placement::ALL {
        print!(" {:>24}", place.name());
    }
    println!();
    for r in &rows {
        print!("{:<16} {:<30}", r.key, r.label);
        for (i, place) in Placement::ALL.into_iter().enumerate() {
            let s = &r.samples[i];
            match (s.median(), s.min(), s.max()) {
                (Some(m), Some(lo), Some(hi)) => {
                    print!(" {:>24}", format!("{m:.0} ({lo:.0}–{hi:.0})"));
                    rates.insert(format!("{}@{}", r.key, place.name()), m);
                }
                _ => print!(" {:>24}", "-"),
            }
        }
        println!("  {}", r.unit);
        for e in &r.errors {
            println!("ERROR {}: {e}", r.key);
        }
    }
    for (k, s) in &python {
        if let (Some(m), Some(lo), Some(hi)) = (s.median(), s.min(), s.max()) {
            print!("{k:<16} {:<30}", "multiprocessing (fork)");
            println!(
                " {:>24} {:>24} {:>24}",
                "-",
                "-",
                format!("{m:.0} ({lo:.0}–{hi:.0})")
            );
            rates.insert(format!("{k}@free"), m);
        }
    }
    if let Some(n) = python_note {
        println!("{n}");
    }
    if !unc.is_empty() {
        println!("\nuncontended acquire + release, ns (best round):");
    }
    for (k, what) in [
        ("glibc-sem", "glibc sem_wait + sem_post"),
        ("sem-take", "take() + release()"),
        ("sem-forget", "acquire().forget() + release()"),
        ("sem-permit", "drop(acquire()): a Permit"),
    ] {
        if let Some(best) = unc.get(k).and_then(Samples::min) {
            println!("  {k:<14} {what:<34} {best:>8.2}");
        }
    }
    for (ours, max, what) in [
        (
            "sem-take",
            1.0,
            "Semaphore take() + release() ≤ 1.0× glibc sem_wait + sem_post",
        ),
        (
            "sem-forget",
            1.0,
            "Semaphore acquire().forget() + release() ≤ 1.0× glibc sem_wait + sem_post",
        ),
        (
            "sem-permit",
            1.5,
            "Semaphore through a Permit ≤ 1.5× glibc sem_wait + sem_post",
        ),
    ] {
        let best = |k| unc.get(k).and_then(Samples::min);
        if let (Some(a), Some(b)) = (best(ours), best("glibc-sem")) {
            let ratio = a / b;
            let verdict = if ratio <= max { "ok" } else { "MISS" };
            println!("  {verdict:<4} {ratio:>6.2}×  {what}");
        }
    }
    println!("\ntargets (ratios of medians, per placement):");
    for (ours, base, min, what) in TARGETS {
        for place in Placement::ALL {
            let (a, b) = (
                rates.get(&format!("{ours}@{}", place.name())),
                rates.get(&format!("{base}@{}", place.name())),
            );
            if let (Some(a), Some(b)) = (a, b) {
                let ratio = a / b;
                let verdict = if ratio >= *min { "ok" } else { "MISS" };
                println!("  {verdict:<4} {ratio:>6.2}× {:<9} {what}", place.name());
            }
        }
    }
}
