//! `cargo bench --bench owner_death`: how fast a waiter learns that a
//! lock's owner died, in the kernel-list mode and in the liveness-token
//! fallback, and what the robust-list bookkeeping costs an uncontended
//! `RLock` next to glibc's robust recursive process-shared mutex.
//!
//! How it measures:
//! - *death → return*: the measuring process forks a holder (while it is
//!   single-threaded; the child only locks, reports over a pipe and waits),
//!   starts a waiter thread that blocks in `RLock::lock`, waits until the
//!   lock word shows a sleeper plus a random 1–20 ms (so that a fallback
//!   waiter is at a random point of its probe schedule), then the holder
//!   dies, and the waiter takes a `CLOCK_MONOTONIC` timestamp when `lock()`
//!   returns (it must return `OwnerDied`). Two ways to die, alternating:
//!   - *self-kill* (the headline figure): told to die over a pipe, the
//!     running holder writes a `CLOCK_MONOTONIC` timestamp into shared
//!     memory and at once SIGKILLs itself: the time of death is exact;
//!   - *kill(2)*: the measuring process timestamps just before it
//!     SIGKILLs the holder asleep in `pause`: this also counts the signal's
//!     delivery and the victim's wake-up (an upper bound);
//! - the fallback figures come from the same code run in a child process
//!   started with `SHMSYNC_ROBUST=fallback` (the mode is decided once per
//!   process), which reports back over its stdout;
//! - *uncontended*: lock + unlock in a loop, interleaved rounds, median
//!   ns per pair; glibc's mutex lives in a shared mapping, initialised
//!   `PTHREAD_MUTEX_RECURSIVE`, robust and process-shared.
//!
//! The death table shows nearest-rank percentiles of the trials (p50 as
//! the median); the uncontended figures are the median of the rounds.
//!
//! `SHMSYNC_BENCH_QUICK=1` (`benches/common/mod.rs`): 10 deaths per mode,
//! 3 rounds of 200 000 pairs (full: 200 deaths, 9 rounds of 3 000 000).
//! `SHMSYNC_ODB_ONLY=uncontended`: only the uncontended loops, in this
//! process's mode (e.g. under `valgrind --tool=callgrind` to count
//! instructions per lock+unlock). Targets (`docs/BENCHMARKS.md`): list
//! median ≤ 50 µs and max ≤ 1 ms, fallback max ≤ 20 ms, uncontended
//! `RLock` ≤ 0.7× glibc. A miss prints `MISS`; the bench never exits with
//! an error status for a miss.

use std::hint::black_box;
use std::io::Write as _;
use std::num::NonZeroU32;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use shmsync::raw::{Holds, RawMutex, WAITERS};
use shmsync::{LockError, RLock, Robustness, SharedMemory};

mod common;

use common::{Child, Samples};

/// Set in the fallback child: its role.
const ROLE_ENV: &str = "SHMSYNC_ODB_ROLE";
/// Prefix of the child's result lines.
const OUT: &str = "@@odb ";
/// Offset of the lock word in a lock object's segment (`LockSlot` at 128).
const LOCK_WORD_OFFSET: usize = 128;

struct Config {
    deaths: usize,
    rounds: usize,
    iters: u64,
}

fn config() -> Config {
    if common::quick() {
        Config {
            deaths: 10,
            rounds: 3,
            iters: 200_000,
        }
    } else {
        Config {
            deaths: 200,
            rounds: 9,
            iters: 3_000_000,
        }
    }
}

fn main() {
    let cfg = config();
    if std::env::var(ROLE_ENV).as_deref() == Ok("measure") {
        // The fallback child: measure and report.
        let d = deaths(&cfg, false);
        println!("{OUT}mode {:?}", shmsync::robustness());
        for (key, v) in [("self", &d.self_kill), ("ext", &d.external)] {
            let line: Vec<String> = v.iter().map(|x| x.as_nanos().to_string()).collect();
            println!("{OUT}{key} {}", line.join(" "));
        }
        let u = uncontended(&cfg);
        println!("{OUT}unc {} {} {}", u.ours, u.glibc, u.raw);
        return;
    }

    if std::env::var("SHMSYNC_ODB_ONLY").as_deref() == Ok("uncontended") {
        // For instruction counting (`valgrind --tool=callgrind`): no fork.
        let u = uncontended(&cfg);
        println!(
            "RLock {:.2} ns, glibc {:.2} ns, raw {:.2} ns ({:?})",
            u.ours,
            u.glibc,
            u.raw,
            shmsync::robustness()
        );
        return;
    }
    common::print_machine("shmsync owner-death bench");
    println!("{} deaths per mode", cfg.deaths);
    let mode = shmsync::robustness();
    let list = deaths(&cfg, false);
    let base = deaths(&cfg, true);
    let u = uncontended(&cfg);

    let fb = fallback_child();

    println!();
    println!("owner death -> the waiter's lock() returns OwnerDied");
    println!(
        "{:<34} {:>6} {:>10} {:>10} {:>10} {:>10}   {:<30} verdict",
        "mode / how the holder dies", "trials", "median", "p90", "p99", "max", "target"
    );
    let list_label = if mode == Robustness::KernelList {
        "list".to_owned()
    } else {
        format!("list?? ({mode:?})")
    };
    let list_target: &dyn Fn(&Stats) -> bool =
        &|s| s.median <= Duration::from_micros(50) && s.max <= Duration::from_millis(1);
    let list_t = "median <= 50 us, max <= 1 ms";
    death_row(
        &format!("{list_label} / self-kill"),
        &list.self_kill,
        list_t,
        Some(list_target),
    );
    death_row(
        &format!("{list_label} / kill(2)"),
        &list.external,
        list_t,
        Some(list_target),
    );
    death_row(
        "glibc robust mutex / self-kill",
        &base.self_kill,
        "(baseline)",
        None,
    );
    death_row(
        "glibc robust mutex / kill(2)",
        &base.external,
        "(baseline)",
        None,
    );
    let fb_target: &dyn Fn(&Stats) -> bool = &|s| s.max <= Duration::from_millis(20);
    match &fb {
        Ok(fb) => {
            let l = if fb.mode == "Fallback" {
                "fallback".to_owned()
            } else {
                format!("fallback?? ({})", fb.mode)
            };
            death_row(
                &format!("{l} / self-kill"),
                &fb.deaths.self_kill,
                "max <= 20 ms",
                Some(fb_target),
            );
            death_row(
                &format!("{l} / kill(2)"),
                &fb.deaths.external,
                "max <= 20 ms",
                Some(fb_target),
            );
        }
        Err(e) => println!("{:<34} ERROR: {e}", "fallback"),
    }

    println!();
    println!(
        "uncontended lock+unlock, median of {} rounds x {} pairs",
        cfg.rounds, cfg.iters
    );
    let (ours, glibc) = (u.ours, u.glibc);
    println!(
        "{:<52} {:>8.2} ns",
        "shmsync RLock (list mode, robust-list bookkeeping)", ours
    );
    println!(
        "{:<52} {:>8.2} ns",
        "glibc robust recursive pshared pthread mutex", glibc
    );
    println!(
        "{:<52} {:>8.2} ns   (floor: the word's CAS + swap, no list, no owner record)",
        "shmsync::raw::RawMutex alone (same mapping)", u.raw
    );
    let ratio = ours / glibc;
    println!(
        "{:<52} {:>8.2} x   target <= 0.70 x   {}",
        "ratio RLock / glibc",
        ratio,
        if ratio <= 0.70 { "PASS" } else { "MISS" }
    );
    if let Ok(fb) = &fb {
        println!(
            "{:<52} {:>8.2} ns   (glibc in that process: {:.2} ns, ratio {:.2} x)",
            "shmsync RLock (fallback mode, child process)",
            fb.u.ours,
            fb.u.glibc,
            fb.u.ours / fb.u.glibc
        );
    }
}

struct Stats {
    median: Duration,
    p90: Duration,
    p99: Duration,
    max: Duration,
}

/// Nearest-rank percentiles of the trials (whole nanoseconds, exact in an
/// `f64`).
fn stats(d: &[Duration]) -> Option<Stats> {
    let s: Samples = d.iter().map(|d| d.as_nanos() as f64).collect();
    let at = |q: f64| s.percentile(q).map(|ns| Duration::from_nanos(ns as u64));
    Some(Stats {
        median: at(0.5)?,
        p90: at(0.9)?,
        p99: at(0.99)?,
        max: at(1.0)?,
    })
}

fn death_row(label: &str, d: &[Duration], target: &str, pass: Option<&dyn Fn(&Stats) -> bool>) {
    let Some(s) = stats(d) else {
        println!("{label:<34} no samples");
        return;
    };
    println!(
        "{:<34} {:>6} {:>10} {:>10} {:>10} {:>10}   {:<30} {}",
        label,
        d.len(),
        fmt_d(s.median),
        fmt_d(s.p90),
        fmt_d(s.p99),
        fmt_d(s.max),
        target,
        match pass {
            None => "-",
            Some(p) if p(&s) => "PASS",
            Some(_) => "MISS",
        }
    );
}

fn fmt_d(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.1} us")
    } else {
        format!("{:.2} ms", us / 1000.0)
    }
}

struct Fallback {
    mode: String,
    deaths: Deaths,
    u: Unc,
}

/// Runs this bench again as the measuring process of the fallback mode.
fn fallback_child() -> Result<Fallback, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = Command::new(exe)
        .env(ROLE_ENV, "measure")
        .env("SHMSYNC_ROBUST", "fallback")
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("fallback child failed: {}", out.status));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut fb = Fallback {
        mode: String::new(),
        deaths: Deaths::default(),
        u: Unc {
            ours: f64::NAN,
            glibc: f64::NAN,
            raw: f64::NAN,
        },
    };
    let parse = |w: std::str::SplitWhitespace<'_>| -> Vec<Duration> {
        w.filter_map(|x| x.parse().ok())
            .map(Duration::from_nanos)
            .collect()
    };
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(OUT) else {
            continue;
        };
        let mut w = rest.split_whitespace();
        match w.next() {
            Some("mode") => fb.mode = w.next().unwrap_or("?").to_owned(),
            Some("self") => fb.deaths.self_kill = parse(w),
            Some("ext") => fb.deaths.external = parse(w),
            Some("unc") => {
                let mut f = || w.next().and_then(|x| x.parse().ok()).unwrap_or(f64::NAN);
                fb.u = Unc {
                    ours: f(),
                    glibc: f(),
                    raw: f(),
                };
            }
            _ => {}
        }
    }
    Ok(fb)
}

// ---------------------------------------------------------------------------
// Death -> return
// ---------------------------------------------------------------------------

/// A small deterministic generator for the pre-kill delays.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// Kill-to-return times, by how the holder died.
#[derive(Default)]
struct Deaths {
    self_kill: Vec<Duration>,
    external: Vec<Duration>,
}

/// `CLOCK_MONOTONIC` in ns: comparable between processes.
fn mono_ns() -> u64 {
    // SAFETY: `ts` is a valid out-pointer.
    let ts = unsafe {
        let mut ts: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
        ts
    };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// What dies holding: our lock, or glibc's robust mutex (the baseline:
/// the same kernel mechanism, glibc's code).
#[derive(Clone)]
enum Subject {
    Ours(RLock),
    /// Address of a robust process-shared glibc mutex in a shared mapping
    /// that outlives every trial.
    Glibc(usize),
}

impl Subject {
    /// In the forked holder: takes it (and never releases it).
    fn hold(&self) -> bool {
        match self {
            Subject::Ours(l) => {
                let g = match l.lock() {
                    Ok(g) => g,
                    Err(LockError::OwnerDied(g)) => {
                        g.mark_consistent();
                        g
                    }
                    Err(_) => return false,
                };
                std::mem::forget(g);
                true
            }
            &Subject::Glibc(m) => {
                let m = m as *mut libc::pthread_mutex_t;
                // SAFETY: an initialised robust pshared mutex (see
                // `Subject::glibc`).
                unsafe {
                    match libc::pthread_mutex_lock(m) {
                        0 => true,
                        libc::EOWNERDEAD => libc::pthread_mutex_consistent(m) == 0,
                        _ => false,
                    }
                }
            }
        }
    }

    /// In the waiter thread: blocks until it gets it; returns the
    /// `CLOCK_MONOTONIC` time of the return and whether the owner died.
    fn wait(&self) -> (u64, bool) {
        match self {
            Subject::Ours(l) => {
                let r = l.lock();
                let t1 = mono_ns();
                let died = match r {
                    Err(LockError::OwnerDied(g)) => {
                        g.mark_consistent();
                        true
                    }
                    _ => false,
                };
                (t1, died)
            }
            &Subject::Glibc(m) => {
                let m = m as *mut libc::pthread_mutex_t;
                // SAFETY: as in `hold`; unlocked again by this thread.
                unsafe {
                    let rc = libc::pthread_mutex_lock(m);
                    let t1 = mono_ns();
                    let died = rc == libc::EOWNERDEAD;
                    if died {
                        libc::pthread_mutex_consistent(m);
                    }
                    if rc == 0 || died {
                        libc::pthread_mutex_unlock(m);
                    }
                    (t1, died)
                }
            }
        }
    }
}

/// A robust, process-shared glibc mutex at `m`.
///
/// # Safety
/// `m` is writable, 8-aligned memory for a `pthread_mutex_t` in a shared
/// mapping, used by nobody yet.
unsafe fn init_glibc(m: *mut libc::pthread_mutex_t, recursive: bool) {
    // SAFETY: a local attribute object; `m` per the caller.
    unsafe {
        let mut attr: libc::pthread_mutexattr_t = std::mem::zeroed();
        libc::pthread_mutexattr_init(&mut attr);
        if recursive {
            libc::pthread_mutexattr_settype(&mut attr, libc::PTHREAD_MUTEX_RECURSIVE);
        }
        libc::pthread_mutexattr_setpshared(&mut attr, libc::PTHREAD_PROCESS_SHARED);
        libc::pthread_mutexattr_setrobust(&mut attr, 1);
        assert_eq!(libc::pthread_mutex_init(m, &attr), 0);
        libc::pthread_mutexattr_destroy(&mut attr);
    }
}

/// `cfg.deaths` trials of each kind, alternating, for our `RLock` (or,
/// with `glibc`, for glibc's robust mutex). Must be called while this
/// process is single-threaded (it forks).
fn deaths(cfg: &Config, glibc: bool) -> Deaths {
    let name = format!("shmsync_odb_{}", std::process::id());
    let lock = RLock::create(&name).expect("create lock");
    let peek = SharedMemory::open(&name).expect("map lock");
    lock.unlink().expect("unlink");
    // The holder's time of death at 0, glibc's mutex at 64: memory shared
    // with the forked holders.
    let shared = SharedMemory::anonymous(4096).expect("shared mapping");
    // SAFETY: 8-aligned (page-aligned mapping), live as long as `shared`,
    // accessed only atomically.
    let stamp = unsafe { &*shared.as_ptr().cast::<AtomicU64>() };
    let (subject, word) = if glibc {
        let m = shared.as_ptr().wrapping_add(64);
        // SAFETY: inside the 4096-byte mapping, 8-aligned, unused.
        unsafe { init_glibc(m.cast(), false) };
        // SAFETY: glibc's futex word (`__lock`) is the mutex's first
        // 4 bytes; only read, atomically.
        (Subject::Glibc(m as usize), unsafe {
            &*m.cast::<AtomicU32>()
        })
    } else {
        // SAFETY: the word is 4-aligned at offset 128 of a live mapping that
        // `peek` keeps; it is only read, atomically.
        let w = unsafe { &*peek.as_ptr().add(LOCK_WORD_OFFSET).cast::<AtomicU32>() };
        (Subject::Ours(lock.clone()), w)
    };
    let mut rng = Lcg(0x5eed ^ u64::from(std::process::id()));
    let mut out = Deaths::default();
    let mut failures = 0;
    for i in 0..2 * cfg.deaths {
        let self_kill = i % 2 == 0;
        match one_death(&subject, word, stamp, self_kill, &mut rng) {
            Ok(d) if self_kill => out.self_kill.push(d),
            Ok(d) => out.external.push(d),
            Err(e) => {
                failures += 1;
                eprintln!("owner_death bench: trial failed: {e}");
            }
        }
    }
    if failures > 0 {
        eprintln!("owner_death bench: {failures} failed trials");
    }
    out
}

fn pipe() -> Result<(i32, i32), String> {
    let mut fds = [0i32; 2];
    // SAFETY: pipe(2) fills the two-element array.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err("pipe failed".into());
    }
    Ok((fds[0], fds[1]))
}

fn one_death(
    subject: &Subject,
    word: &AtomicU32,
    stamp: &AtomicU64,
    self_kill: bool,
    rng: &mut Lcg,
) -> Result<Duration, String> {
    let (ready_r, ready_w) = pipe()?;
    let (go_r, go_w) = pipe()?;
    // This process is single-threaded here (the previous trial's waiter
    // was joined); the holder dies by SIGKILL or `_exit`.
    let child = Child::fork(|| holder(subject, stamp, ready_w, go_r, self_kill));
    // SAFETY: closes our copies of the child's ends (our own fds).
    unsafe {
        libc::close(ready_w);
        libc::close(go_r);
    }
    let mut b = [0u8; 1];
    // SAFETY: reads one byte into a valid buffer (a failed read, e.g. on a
    // fork that failed, is `n != 1`); closes our own fd.
    let n = unsafe {
        let n = libc::read(ready_r, b.as_mut_ptr().cast(), 1);
        libc::close(ready_r);
        n
    };
    let mut child = match child {
        Ok(c) if n == 1 => c,
        r => {
            // SAFETY: our own fd.
            unsafe { libc::close(go_w) };
            // A child that did not lock is reaped as it is dropped.
            return Err(r.err().unwrap_or_else(|| "holder did not lock".into()));
        }
    };
    let s2 = subject.clone();
    let waiter = std::thread::spawn(move || s2.wait());
    // Relaxed: a hint that the waiter has announced itself (it sleeps on
    // the word right after setting WAITERS); no data is read through it.
    let start = Instant::now();
    while word.load(Relaxed) & WAITERS == 0 && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_micros(50));
    }
    std::thread::sleep(Duration::from_micros(1000 + rng.below(19_000)));
    let t0 = if self_kill {
        // SAFETY: one byte from a valid buffer to the holder's pipe.
        unsafe { libc::write(go_w, b"g".as_ptr().cast(), 1) };
        None
    } else {
        let t0 = mono_ns();
        child.kill();
        Some(t0)
    };
    let (t1, died) = waiter.join().map_err(|_| "waiter panicked")?;
    // SAFETY: our own fd.
    unsafe { libc::close(go_w) };
    child.wait()?;
    if !died {
        return Err("waiter was not told that the owner died".into());
    }
    // Relaxed: the holder's store happened before its death, which
    // happened before the waiter's return (through the lock word).
    let t0 = t0.unwrap_or_else(|| stamp.load(Relaxed));
    Ok(Duration::from_nanos(t1.saturating_sub(t0)))
}

/// The forked holder: locks, says so, then dies as told.
fn holder(subject: &Subject, stamp: &AtomicU64, ready_w: i32, go_r: i32, self_kill: bool) -> ! {
    if !subject.hold() {
        // SAFETY: ends the child at once.
        unsafe { libc::_exit(2) };
    }
    // SAFETY: one byte from a valid buffer to our pipe.
    unsafe { libc::write(ready_w, b"h".as_ptr().cast(), 1) };
    if self_kill {
        let mut b = [0u8; 1];
        // SAFETY: reads one byte into a valid buffer.
        unsafe { libc::read(go_r, b.as_mut_ptr().cast(), 1) };
        // Relaxed: see `one_death`.
        stamp.store(mono_ns(), Relaxed);
        // SAFETY: kills this process, still holding the lock.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    }
    loop {
        // SAFETY: pause(2) waits for the SIGKILL.
        unsafe { libc::pause() };
    }
}

// ---------------------------------------------------------------------------
// Uncontended
// ---------------------------------------------------------------------------

/// Median ns per lock+unlock.
struct Unc {
    /// shmsync `RLock`.
    ours: f64,
    /// glibc's robust recursive pshared mutex.
    glibc: f64,
    /// `shmsync::raw::RawMutex` alone: the floor under `ours`.
    raw: f64,
}

/// Rounds interleaved, so that a slow moment hits every row alike.
fn uncontended(cfg: &Config) -> Unc {
    let lock = RLock::new().expect("lock");
    let mem = SharedMemory::anonymous(4096).expect("mapping");
    let m: *mut libc::pthread_mutex_t = mem.as_ptr().cast();
    // SAFETY: page-aligned memory of the mapping, large enough for a
    // pthread_mutex_t, used by nobody else.
    unsafe { init_glibc(m, true) };
    // SAFETY: 4-aligned, inside the mapping, apart from the pthread mutex
    // (which ends at 40); `RawMutex<AtomicU32>` is three atomics, for which
    // zeroed bytes are the free state.
    let raw = unsafe { &*mem.as_ptr().add(256).cast::<RawMutex<AtomicU32>>() };
    let me = NonZeroU32::new(rustix::thread::gettid().as_raw_nonzero().get() as u32).expect("tid");
    let mut ours = Samples::default();
    let mut glibc = Samples::default();
    let mut floor = Samples::default();
    // Warm-up.
    run_ours(&lock, cfg.iters / 10);
    run_glibc(m, cfg.iters / 10);
    run_raw(raw, me, cfg.iters / 10);
    for _ in 0..cfg.rounds {
        ours.push(run_ours(&lock, cfg.iters));
        glibc.push(run_glibc(m, cfg.iters));
        floor.push(run_raw(raw, me, cfg.iters));
    }
    let _ = std::io::stdout().flush();
    Unc {
        ours: median(ours),
        glibc: median(glibc),
        raw: median(floor),
    }
}

#[inline(never)]
fn run_raw(raw: &RawMutex<AtomicU32>, me: NonZeroU32, iters: u64) -> f64 {
    let t = Instant::now();
    for _ in 0..iters {
        let mut held = Holds::NONE;
        let r = black_box(raw.lock(me, &mut held, true, None, None));
        if r.is_ok() {
            // SAFETY: this thread just acquired it (`held` is one).
            unsafe { raw.unlock(me, &mut held) };
        }
    }
    t.elapsed().as_nanos() as f64 / iters as f64
}

#[inline(never)]
fn run_ours(lock: &RLock, iters: u64) -> f64 {
    let t = Instant::now();
    for _ in 0..iters {
        let g = black_box(lock.lock());
        drop(g);
    }
    t.elapsed().as_nanos() as f64 / iters as f64
}

#[inline(never)]
fn run_glibc(m: *mut libc::pthread_mutex_t, iters: u64) -> f64 {
    let t = Instant::now();
    for _ in 0..iters {
        // SAFETY: an initialised mutex in a live mapping, locked and
        // unlocked by this thread only.
        unsafe {
            black_box(libc::pthread_mutex_lock(m));
            black_box(libc::pthread_mutex_unlock(m));
        }
    }
    t.elapsed().as_nanos() as f64 / iters as f64
}

fn median(v: Samples) -> f64 {
    v.median().unwrap_or(f64::NAN)
}
