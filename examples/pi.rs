//! Estimates π with several worker *processes* that pool their partial sums
//! in one shared `f64`, once through a locked [`Value`], once through an
//! [`AtomicValue`] (lock-free `fetch_add`), and once through a [`RawValue`]
//! without a lock, to show the updates the unlocked version loses (the
//! classic Python `multiprocessing` pitfall).
//!
//! ```text
//! cargo run --release --example pi
//! cargo run --release --example pi -- --workers 4 --terms 200000000 --chunk 100
//! ```
//!
//! π = ∫₀¹ 4/(1+x²) dx, by the midpoint rule with `--terms` points. Worker
//! `i` of `--workers` sums its slice of the points `--chunk` at a time and
//! adds each chunk's partial sum to the shared value: many small additions
//! from every process at once, so that unsynchronised read-modify-writes
//! collide often enough to see.
//!
//! The workers are this same executable started again with a `--worker`
//! role. The parent creates a named object (`/dev/shm/shmsync_pi_<pid>_<mode>`),
//! each worker opens it by name and says it is ready; the parent then
//! removes the name (the mappings stay valid), so nothing is left in
//! `/dev/shm` even if the run is interrupted, and starts them all at once.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use shmsync::{AtomicValue, RawValue, Value};

/// A shared `f64` that workers add their partial sums into.
trait Pool {
    /// Creates the named object, holding 0.0.
    fn create(name: &str) -> shmsync::Result<Self>
    where
        Self: Sized;
    /// Opens the object `name` made by [`Pool::create`] in another process.
    fn open(name: &str) -> shmsync::Result<Self>
    where
        Self: Sized;
    /// Adds `part` to the shared value, as safely as the mode allows.
    fn add(&self, part: f64) -> Result<(), String>;
    /// The value now.
    fn total(&self) -> Result<f64, String>;
    /// Removes the name (attached handles keep working).
    fn unlink(&self) -> shmsync::Result<()>;
}

impl Pool for Value<f64> {
    fn create(name: &str) -> shmsync::Result<Self> {
        Value::create(name, 0.0)
    }
    fn open(name: &str) -> shmsync::Result<Self> {
        Value::open(name)
    }
    fn add(&self, part: f64) -> Result<(), String> {
        // Read, add and write back under the value's lock.
        self.update(|x| x + part)
            .map(drop)
            .map_err(|e| e.to_string())
    }
    fn total(&self) -> Result<f64, String> {
        self.get().map_err(|e| e.to_string())
    }
    fn unlink(&self) -> shmsync::Result<()> {
        Value::unlink(self)
    }
}

impl Pool for AtomicValue<f64> {
    fn create(name: &str) -> shmsync::Result<Self> {
        AtomicValue::create(name, 0.0)
    }
    fn open(name: &str) -> shmsync::Result<Self> {
        AtomicValue::open(name)
    }
    fn add(&self, part: f64) -> Result<(), String> {
        // No lock: one compare-and-swap loop on the f64's bits. Relaxed:
        // only the sum matters, read after the workers have exited.
        self.fetch_add(part, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
    fn total(&self) -> Result<f64, String> {
        Ok(self.load(std::sync::atomic::Ordering::Relaxed))
    }
    fn unlink(&self) -> shmsync::Result<()> {
        AtomicValue::unlink(self)
    }
}

impl Pool for RawValue<f64> {
    fn create(name: &str) -> shmsync::Result<Self> {
        RawValue::create(name, 0.0)
    }
    fn open(name: &str) -> shmsync::Result<Self> {
        RawValue::open(name)
    }
    fn add(&self, part: f64) -> Result<(), String> {
        // Python's `r.value += part` on a RawValue: another process can
        // write between the read and the write, and one of the two
        // additions is lost.
        self.set(self.get() + part);
        Ok(())
    }
    fn total(&self) -> Result<f64, String> {
        Ok(self.get())
    }
    fn unlink(&self) -> shmsync::Result<()> {
        RawValue::unlink(self)
    }
}

/// One way of pooling the partial sums. A new mode is a [`Pool`] impl and
/// one entry in [`MODES`].
struct Mode {
    /// Its name on the command line (`--mode`) and in the table.
    name: &'static str,
    /// How it pools, as printed.
    how: &'static str,
    create: fn(&str) -> shmsync::Result<Box<dyn Pool>>,
    open: fn(&str) -> shmsync::Result<Box<dyn Pool>>,
}

impl Mode {
    const fn of<P: Pool + 'static>(name: &'static str, how: &'static str) -> Mode {
        Mode {
            name,
            how,
            create: |n| Ok(Box::new(P::create(n)?)),
            open: |n| Ok(Box::new(P::open(n)?)),
        }
    }
}

const MODES: &[Mode] = &[
    Mode::of::<Value<f64>>("locked", "Value<f64>: v.update(|x| x + part)"),
    Mode::of::<AtomicValue<f64>>("atomic", "AtomicValue<f64>: a.fetch_add(part)"),
    Mode::of::<RawValue<f64>>("raw", "RawValue<f64>: r.set(r.get() + part)"),
];

fn find_mode(name: &str) -> Result<&'static Mode, String> {
    MODES.iter().find(|m| m.name == name).ok_or_else(|| {
        let all: Vec<_> = MODES.iter().map(|m| m.name).collect();
        format!("unknown mode {name:?} (modes: {})", all.join(", "))
    })
}

/// The run's parameters.
struct Params {
    workers: u64,
    terms: u64,
    chunk: u64,
    modes: Vec<&'static Mode>,
}

const USAGE: &str = "\
usage: pi [--workers N] [--terms M] [--chunk K] [--mode NAME[,NAME...]]
  --workers N  worker processes (default: the number of CPUs)
  --terms M    points of the midpoint rule, in all (default: 1000000000)
  --chunk K    points per partial sum added to the shared value (default: 1000)
  --mode ...   pooling modes to run (default: all)";

fn parse_args(args: &[String]) -> Result<Params, String> {
    let mut p = Params {
        workers: std::thread::available_parallelism().map_or(1, |n| n.get() as u64),
        terms: 1_000_000_000,
        chunk: 1_000,
        modes: MODES.iter().collect(),
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| format!("{flag} needs a value"))
                .cloned()
        };
        let number = |v: String| -> Result<u64, String> {
            v.replace('_', "")
                .parse::<u64>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| format!("{flag}: expected a positive integer, got {v:?}"))
        };
        match flag.as_str() {
            "--workers" => p.workers = number(value()?)?,
            "--terms" => p.terms = number(value()?)?,
            "--chunk" => p.chunk = number(value()?)?,
            "--mode" => {
                p.modes = value()?
                    .split(',')
                    .map(find_mode)
                    .collect::<Result<_, _>>()?;
            }
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    if p.workers > 1024 {
        return Err("--workers: at most 1024".into());
    }
    if p.terms < p.workers {
        return Err("--terms must be at least --workers".into());
    }
    Ok(p)
}

/// Worker `index`'s share of the points: `[start, end)`.
fn slice(index: u64, workers: u64, terms: u64) -> (u64, u64) {
    let at = |i: u64| (u128::from(i) * u128::from(terms) / u128::from(workers)) as u64;
    (at(index), at(index + 1))
}

/// Sums points `start..end` of the midpoint rule with `terms` points,
/// adding each chunk's partial sum to `pool`.
fn work(pool: &dyn Pool, start: u64, end: u64, terms: u64, chunk: u64) -> Result<(), String> {
    let h = 1.0 / terms as f64;
    let mut i = start;
    while i < end {
        let stop = end.min(i.saturating_add(chunk));
        let mut sum = 0.0;
        for k in i..stop {
            let x = (k as f64 + 0.5) * h;
            sum += 4.0 / (1.0 + x * x);
        }
        pool.add(sum * h)?;
        i = stop;
    }
    Ok(())
}

/// The worker role: `--worker MODE NAME INDEX WORKERS TERMS CHUNK`.
fn worker(args: &[String]) -> Result<(), String> {
    let [mode, name, index, workers, terms, chunk] = args else {
        return Err("--worker needs MODE NAME INDEX WORKERS TERMS CHUNK".into());
    };
    let num = |s: &String| s.parse::<u64>().map_err(|e| format!("{s:?}: {e}"));
    let (index, workers, terms, chunk) = (num(index)?, num(workers)?, num(terms)?, num(chunk)?);
    if workers == 0 || index >= workers || chunk == 0 {
        return Err("bad worker parameters".into());
    }
    let pool = (find_mode(mode)?.open)(name).map_err(|e| format!("open {name}: {e}"))?;
    // Tell the parent we are attached, then wait for its "go" (EOF: the
    // parent gave up, so do nothing).
    println!("ready");
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    let mut go = String::new();
    std::io::stdin()
        .read_line(&mut go)
        .map_err(|e| e.to_string())?;
    if go.trim() != "go" {
        return Err("no start signal from the parent".into());
    }
    let (start, end) = slice(index, workers, terms);
    work(&*pool, start, end, terms, chunk)
}

/// Started workers; any not waited for are killed and reaped on drop.
struct Workers(Vec<Child>);

impl Drop for Workers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            if matches!(c.try_wait(), Ok(None)) {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
    }
}

/// Runs one mode; the estimate and the time from "go" to the last exit.
fn run_mode(mode: &Mode, p: &Params) -> Result<(f64, Duration), String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let name = format!("shmsync_pi_{}_{}", std::process::id(), mode.name);
    let pool = (mode.create)(&name).map_err(|e| format!("create {name}: {e}"))?;
    let mut workers = Workers(Vec::new());
    for i in 0..p.workers {
        let child = Command::new(&exe)
            .arg("--worker")
            .args([mode.name, &name])
            .args([i, p.workers, p.terms, p.chunk].map(|n| n.to_string()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting worker {i}: {e}"))?;
        workers.0.push(child);
    }
    // Every worker has the object open once it says "ready".
    let mut go: Vec<ChildStdin> = Vec::new();
    for (i, c) in workers.0.iter_mut().enumerate() {
        let mut line = String::new();
        if let Some(out) = c.stdout.take() {
            let _ = BufReader::new(out).read_line(&mut line);
        }
        if line.trim() != "ready" {
            return Err(format!("worker {i} failed to start"));
        }
        go.extend(c.stdin.take());
    }
    // No process needs the name any more.
    pool.unlink().map_err(|e| format!("unlink {name}: {e}"))?;
    let t = Instant::now();
    for mut g in go {
        // A worker that has already died shows up in its exit status.
        let _ = g.write_all(b"go\n");
    }
    for (i, c) in workers.0.iter_mut().enumerate() {
        let status = c
            .wait()
            .map_err(|e| format!("waiting for worker {i}: {e}"))?;
        if !status.success() {
            return Err(format!("worker {i} failed: {status}"));
        }
    }
    Ok((pool.total()?, t.elapsed()))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--worker") {
        return match worker(&args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("pi worker: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let p = match parse_args(&args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("pi: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let adds = p.terms.div_ceil(p.workers).div_ceil(p.chunk) * p.workers;
    println!(
        "pi = ∫₀¹ 4/(1+x²) dx by the midpoint rule: {} points, {} worker processes,",
        p.terms, p.workers
    );
    println!(
        "each adding a partial sum of {} points at a time into one shared f64 (~{adds} additions)",
        p.chunk
    );
    println!();
    println!(
        "{:<7} {:<38} {:>18} {:>9} {:>8}",
        "mode", "pooling", "estimate", "error", "time"
    );
    let mut failed = false;
    for mode in &p.modes {
        match run_mode(mode, &p) {
            Ok((pi, t)) => {
                let err = pi - std::f64::consts::PI;
                // Each addition carries about π / adds; a large error is
                // that many additions lost.
                let lost = (-err / (std::f64::consts::PI / adds as f64)).round();
                let note = if lost >= 1.0 {
                    format!("  ~{lost} of {adds} additions lost")
                } else {
                    String::new()
                };
                println!(
                    "{:<7} {:<38} {:>18.15} {:>9.1e} {:>7.3} s{note}",
                    mode.name,
                    mode.how,
                    pi,
                    err.abs(),
                    t.as_secs_f64()
                );
            }
            Err(e) => {
                failed = true;
                println!("{:<7} {:<38} failed: {e}", mode.name, mode.how);
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
