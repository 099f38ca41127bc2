//! The atomic mode across real processes: 2 and 4 processes increment
//! named cells 100 000 times each without a lock and every increment
//! counts; `fetch_max`/`fetch_min` from several processes end at the true
//! extreme.
//!
//! Each test re-runs this test binary as its workers (`tests/common`):
//! workers attach by name, report ready and wait for the parent's go, so
//! that all of them run their loops at the same time.

mod common;

use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed};

use common::{arg, arg_parse, ready_go, run_child, run_together, spawn, ShmName};
use shmsync::{AtomicArray, AtomicValue};

const ITERS: u32 = 100_000;

/// Runs `n` workers of `test` on the object `name` (each gets its index as
/// `IDX`), releases them together and checks that each ran to its end.
fn run_workers(test: &str, name: &str, n: u32) {
    run_together(n as usize, |i| {
        spawn(test, "worker").arg("NAME", name).arg("IDX", i)
    });
}

fn f64_fetch_add(n: u32) {
    let test = format!("f64_fetch_add_{n}_processes");
    if run_child(&test, |_| {
        let v = AtomicValue::<f64>::open(&arg("NAME")).unwrap();
        ready_go();
        for _ in 0..ITERS {
            v.fetch_add(1.0, Relaxed);
        }
    }) {
        return;
    }
    let name = ShmName::new("f64");
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
    if run_child(&test, |_| {
        let idx: u32 = arg_parse("IDX");
        let v = AtomicValue::<i64>::open(&arg("NAME")).unwrap();
        ready_go();
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
    }) {
        return;
    }
    let name = ShmName::new("i64");
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
    if run_child(&test, |_| {
        let a = AtomicArray::<i64>::open(&arg("NAME")).unwrap();
        assert_eq!(a.is_padded(), n == 4);
        ready_go();
        for _ in 0..ITERS {
            for c in a.iter() {
                c.fetch_add(1, Relaxed);
            }
        }
    }) {
        return;
    }
    let name = ShmName::new("arr");
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
    if run_child(test, |_| {
        let ints = AtomicArray::<i64>::open(&arg("NAME")).unwrap();
        let floats = AtomicArray::<f64>::open(&arg("FLOATS")).unwrap();
        ready_go();
        for v in sequence(arg_parse("IDX")) {
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
    }) {
        return;
    }
    let ni = ShmName::new("maxi");
    let nf = ShmName::new("maxf");
    let ints = AtomicArray::create(&ni, &[i64::MIN, i64::MAX]).unwrap();
    let floats = AtomicArray::create_padded(&nf, &[f64::NEG_INFINITY, f64::INFINITY]).unwrap();
    run_together(MAX_WORKERS as usize, |i| {
        spawn(test, "worker")
            .arg("NAME", &*ni)
            .arg("FLOATS", &*nf)
            .arg("IDX", i)
    });
    let all: Vec<i64> = (0..MAX_WORKERS).flat_map(sequence).collect();
    let (max, min) = (*all.iter().max().unwrap(), *all.iter().min().unwrap());
    assert_eq!(ints.to_vec(), [max, min]);
    #[allow(clippy::cast_precision_loss)]
    let want = [max as f64 / 1024.0, min as f64 / 1024.0];
    assert_eq!(floats.to_vec(), want);
}
