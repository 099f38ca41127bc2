//! The atomic mode across real processes: 2 and 4 processes increment
//! named cells 100 000 times each without a lock and every increment
//! counts; `fetch_max`/`fetch_min` from several processes end at the true
//! extreme.
//!
//! Each test re-runs this test binary (`--exact <test>`) as its workers,
//! with [`ROLE_ENV`] = `<test>/<object name>/<worker index>`; the same test
//! function, seeing the variable, plays the worker and returns. Workers
//! attach by name, report ready on a named start gate and wait for the
//! parent's go, so that all of them run their loops at the same time.
//! Every wait is bounded by [`HANG_LIMIT`] (a watchdog, not a timing
//! assertion).

use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::time::{Duration, Instant};

use shmsync::{AtomicArray, AtomicValue};

const ROLE_ENV: &str = "SHMSYNC_ATOMIC_PROCS_ROLE";
const HANG_LIMIT: Duration = Duration::from_secs(120);
const ITERS: u32 = 100_000;

/// Gate cells: [ready workers, go].
const READY: usize = 0;
const GO: usize = 1;

/// This process's role in `test`, if it is a worker: (object name, index).
fn worker_role(test: &str) -> Option<(String, u32)> {
    let role = std::env::var(ROLE_ENV).ok()?;
    let mut parts = role.splitn(3, '/');
    if parts.next()? != test {
        return None;
    }
    let name = parts.next()?.to_owned();
    let idx = parts.next()?.parse().ok()?;
    Some((name, idx))
}

/// The start gate, as a worker: announce, then wait for go.
fn worker_gate(name: &str) {
    let gate = AtomicArray::<u32>::open(&format!("{name}_gate")).expect("open gate");
    gate.at(READY).fetch_add(1, Release);
    let start = Instant::now();
    // Acquire: pairs with the parent's Release store of go.
    while gate.at(GO).load(Acquire) == 0 {
        assert!(start.elapsed() < HANG_LIMIT, "no go from the parent");
        std::thread::yield_now();
    }
}

/// Runs `n` workers of `test` on the object `name`, releases them together
/// and checks that each exits successfully.
fn run_workers(test: &str, name: &str, n: u32) {
    let gate = AtomicArray::<u32>::create(&format!("{name}_gate"), &[0, 0]).unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut children: Vec<Child> = (0..n)
        .map(|i| {
            Command::new(&exe)
                .args(["--exact", test, "--nocapture", "--test-threads=1"])
                .env(ROLE_ENV, format!("{test}/{name}/{i}"))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn worker")
        })
        .collect();
    let start = Instant::now();
    while gate.at(READY).load(Acquire) < n {
        if start.elapsed() > HANG_LIMIT || children.iter_mut().any(exited) {
            kill_all(&mut children);
            panic!("workers did not all reach the start gate");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    // Release: the workers' Acquire loads of go.
    gate.at(GO).store(1, Release);
    for mut c in children {
        let deadline = Instant::now() + HANG_LIMIT;
        while c.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = c.kill();
                panic!("worker hung");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let out = c.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("1 passed"),
            "worker failed: {}\n{text}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn exited(c: &mut Child) -> bool {
    matches!(c.try_wait(), Ok(Some(_)))
}

fn kill_all(children: &mut [Child]) {
    for c in children {
        let _ = c.kill();
        let _ = c.wait();
    }
}

fn uniq(tag: &str, n: u32) -> String {
    format!("shmsync_atomic_procs_{tag}{n}_{}", std::process::id())
}

fn f64_fetch_add(n: u32) {
    let test = format!("f64_fetch_add_{n}_processes");
    if let Some((name, _)) = worker_role(&test) {
        let v = AtomicValue::<f64>::open(&name).unwrap();
        worker_gate(&name);
        for _ in 0..ITERS {
            v.fetch_add(1.0, Relaxed);
        }
        return;
    }
    let name = uniq("f64_", n);
    let v = AtomicValue::<f64>::create(&name, 0.0).unwrap();
    run_workers(&test, &name, n);
    // Exact: every partial sum is an integer below 2^53.
    assert_eq!(v.load(Acquire), f64::from(n * ITERS));
}

#[test]
fn f64_fetch_add_2_processes() {
    f64_fetch_add(2);
}

#[test]
fn f64_fetch_add_4_processes() {
    f64_fetch_add(4);
}

fn i64_fetch_add(n: u32) {
    let test = format!("i64_fetch_add_{n}_processes");
    if let Some((name, idx)) = worker_role(&test) {
        let v = AtomicValue::<i64>::open(&name).unwrap();
        worker_gate(&name);
        for k in 0..ITERS {
            // Half the workers add through fetch_add, half subtract -1,
            // and every 7th step goes through the CAS loop of fetch_update.
            if k % 7 == 0 {
                v.fetch_update(AcqRel, Acquire, |x| Some(x + 1)).unwrap();
            } else if idx % 2 == 0 {
                v.fetch_add(1, Relaxed);
            } else {
                v.fetch_sub(-1, Relaxed);
            }
        }
        return;
    }
    let name = uniq("i64_", n);
    let v = AtomicValue::<i64>::create(&name, 0).unwrap();
    run_workers(&test, &name, n);
    assert_eq!(v.load(Acquire), i64::from(n * ITERS));
}

#[test]
fn i64_fetch_add_2_processes() {
    i64_fetch_add(2);
}

#[test]
fn i64_fetch_add_4_processes() {
    i64_fetch_add(4);
}

const ARRAY_LEN: usize = 3;

/// Each worker adds 1 to every element, 100 000 times. With 2 processes
/// the array is packed (the three cells share a cache line), with 4 it is
/// padded.
fn array_fetch_add(n: u32) {
    let test = format!("array_fetch_add_{n}_processes");
    if let Some((name, _)) = worker_role(&test) {
        let a = AtomicArray::<i64>::open(&name).unwrap();
        assert_eq!(a.is_padded(), n == 4);
        worker_gate(&name);
        for _ in 0..ITERS {
            for c in a.iter() {
                c.fetch_add(1, Relaxed);
            }
        }
        return;
    }
    let name = uniq("arr_", n);
    let init = [0i64; ARRAY_LEN];
    let a = if n == 4 {
        AtomicArray::create_padded(&name, &init)
    } else {
        AtomicArray::create(&name, &init)
    }
    .unwrap();
    run_workers(&test, &name, n);
    assert_eq!(a.to_vec(), [i64::from(n * ITERS); ARRAY_LEN]);
}

#[test]
fn array_fetch_add_2_processes() {
    array_fetch_add(2);
}

#[test]
fn array_fetch_add_4_processes() {
    array_fetch_add(4);
}

/// The values worker `idx` feeds to `fetch_max`/`fetch_min`: a
/// deterministic pseudo-random sequence (an LCG), so that the parent can
/// compute the true extremes.
fn sequence(idx: u32) -> impl Iterator<Item = i64> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(idx).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    (0..ITERS).map(move |_| {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        // Spread over a wide range, both signs.
        (x >> 16) as i64 - (1 << 46)
    })
}

const MAX_WORKERS: u32 = 4;

/// Cells: [i64 max, i64 min] and [f64 max, f64 min].
#[test]
fn fetch_max_min_from_4_processes() {
    let test = "fetch_max_min_from_4_processes";
    if let Some((name, idx)) = worker_role(test) {
        let ints = AtomicArray::<i64>::open(&format!("{name}_i")).unwrap();
        let floats = AtomicArray::<f64>::open(&format!("{name}_f")).unwrap();
        worker_gate(&name);
        for v in sequence(idx) {
            let old_max = ints.at(0).fetch_max(v, AcqRel);
            let old_min = ints.at(1).fetch_min(v, AcqRel);
            // The cell only grows (shrinks): what we replaced is no more
            // than what is there now.
            assert!(old_max <= ints.at(0).load(Relaxed));
            assert!(old_min >= ints.at(1).load(Relaxed));
            #[allow(clippy::cast_precision_loss)] // any f64 near v will do
            let f = v as f64 / 1024.0;
            floats.at(0).fetch_max(f, Relaxed);
            floats.at(1).fetch_min(f, Relaxed);
        }
        return;
    }
    let name = uniq("max", MAX_WORKERS);
    let ints = AtomicArray::create(&format!("{name}_i"), &[i64::MIN, i64::MAX]).unwrap();
    let floats =
        AtomicArray::create_padded(&format!("{name}_f"), &[f64::NEG_INFINITY, f64::INFINITY])
            .unwrap();
    run_workers(test, &name, MAX_WORKERS);
    let all: Vec<i64> = (0..MAX_WORKERS).flat_map(sequence).collect();
    let (max, min) = (*all.iter().max().unwrap(), *all.iter().min().unwrap());
    assert_eq!(ints.to_vec(), [max, min]);
    #[allow(clippy::cast_precision_loss)]
    let want = [max as f64 / 1024.0, min as f64 / 1024.0];
    assert_eq!(floats.to_vec(), want);
}
