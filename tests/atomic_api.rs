//! The atomic mode on real mappings: every operation of every element type
//! against std's atomics, object management (named, anonymous, by fd,
//! across fork), layout (packed, padded), the type checks of `open`, and a
//! peer's non-canonical `bool` byte.
//!
//! Not for Miri (memfd, shm_open, mmap, fork): the heap-level logic is
//! covered under Miri by the unit tests in `src/raw/rmw.rs`.

use std::os::fd::AsFd;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release, SeqCst};
use std::sync::atomic::{self as std_atomic};

use shmsync::{
    AtomicArray, AtomicElement, AtomicRef, AtomicValue, Error, RawValue, SharedMemory, Value,
    CACHE_LINE,
};

/// A unique name for this process and call site.
fn uniq(tag: &str) -> String {
    static N: std_atomic::AtomicU32 = std_atomic::AtomicU32::new(0);
    format!(
        "shmsync_atomic_api_{tag}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Relaxed)
    )
}

fn assert_type_mismatch<T: std::fmt::Debug>(r: Result<T, Error>, what: &str) {
    match r {
        Err(Error::TypeMismatch { .. }) => {}
        other => panic!("{what}: expected TypeMismatch, got {other:?}"),
    }
}

/// Every integer operation on `cell`, mirrored on a std heap atomic whose
/// results must be identical.
macro_rules! int_ops_test {
    ($($name:ident: $t:ty, $std:ident;)*) => {$(
        #[test]
        fn $name() {
            let vals: [$t; 6] = [0, 1, 5, <$t>::MAX, <$t>::MIN, <$t>::MAX / 3];
            let value = AtomicValue::<$t>::new(vals[2]).unwrap();
            let packed = AtomicArray::<$t>::from_slice(&[0, vals[2], 0]).unwrap();
            let padded = AtomicArray::<$t>::from_slice_padded(&[vals[2]; 2]).unwrap();
            for cell in [value.cell(), packed.at(1), padded.at(1)] {
                let m = std_atomic::$std::new(vals[2]);
                for &v in &vals {
                    for o in [Relaxed, Release, Acquire, AcqRel, SeqCst] {
                        let lo = if matches!(o, Release | AcqRel) { Relaxed } else { o };
                        assert_eq!(cell.fetch_add(v, o), m.fetch_add(v, o));
                        assert_eq!(cell.fetch_sub(v / 2, o), m.fetch_sub(v / 2, o));
                        assert_eq!(cell.fetch_max(v, o), m.fetch_max(v, o));
                        assert_eq!(cell.fetch_min(v ^ 3, o), m.fetch_min(v ^ 3, o));
                        assert_eq!(cell.fetch_and(v | 1, o), m.fetch_and(v | 1, o));
                        assert_eq!(cell.fetch_or(v & 6, o), m.fetch_or(v & 6, o));
                        assert_eq!(cell.fetch_xor(v, o), m.fetch_xor(v, o));
                        assert_eq!(cell.fetch_nand(v, o), m.fetch_nand(v, o));
                        assert_eq!(cell.swap(v, o), m.swap(v, o));
                        let cur = m.load(lo);
                        assert_eq!(
                            cell.compare_exchange(cur, cur.wrapping_add(1), o, lo),
                            m.compare_exchange(cur, cur.wrapping_add(1), o, lo)
                        );
                        assert_eq!(
                            cell.compare_exchange(cur, 7, o, lo),
                            m.compare_exchange(cur, 7, o, lo),
                            "a stale `current` fails"
                        );
                        let cur = m.load(lo);
                        let mut r = cell.compare_exchange_weak(cur, v, o, lo);
                        while r == Err(cur) {
                            r = cell.compare_exchange_weak(cur, v, o, lo); // spurious
                        }
                        assert_eq!(r, Ok(cur));
                        m.store(v, o.min_store());
                        cell.store(v, o.min_store());
                        let f = |x: $t| x.checked_add(1);
                        assert_eq!(cell.fetch_update(o, lo, f), m.fetch_update(o, lo, f));
                        assert_eq!(cell.load(lo), m.load(lo));
                    }
                }
                cell.store(vals[1], SeqCst);
                assert_eq!(cell.load(SeqCst), vals[1]);
            }
            // The neighbours of the element under test were not touched.
            assert_eq!(packed.at(0).load(Relaxed), 0);
            assert_eq!(packed.at(2).load(Relaxed), 0);
            assert_eq!(padded.at(0).load(Relaxed), vals[2]);
        }
    )*};
}

/// `Ordering` usable for a store: `Acquire`/`AcqRel` are not.
trait MinStore {
    fn min_store(self) -> std_atomic::Ordering;
}
impl MinStore for std_atomic::Ordering {
    fn min_store(self) -> std_atomic::Ordering {
        match self {
            Acquire => Relaxed,
            AcqRel => Release,
            o => o,
        }
    }
}

int_ops_test! {
    ops_i8: i8, AtomicI8;
    ops_u8: u8, AtomicU8;
    ops_i16: i16, AtomicI16;
    ops_u16: u16, AtomicU16;
    ops_i32: i32, AtomicI32;
    ops_u32: u32, AtomicU32;
    ops_i64: i64, AtomicI64;
    ops_u64: u64, AtomicU64;
    ops_isize: isize, AtomicIsize;
    ops_usize: usize, AtomicUsize;
}

#[test]
fn ops_bool_match_atomic_bool() {
    let value = AtomicValue::new(false).unwrap();
    let arr = AtomicArray::from_slice_padded(&[true, false]).unwrap();
    for cell in [value.cell(), arr.at(1)] {
        let m = std_atomic::AtomicBool::new(cell.load(SeqCst));
        for v in [false, true, true, false] {
            for o in [Relaxed, Release, Acquire, AcqRel, SeqCst] {
                let lo = if matches!(o, Release | AcqRel) {
                    Relaxed
                } else {
                    o
                };
                assert_eq!(cell.fetch_and(v, o), m.fetch_and(v, o));
                assert_eq!(cell.fetch_or(v, o), m.fetch_or(v, o));
                assert_eq!(cell.fetch_xor(v, o), m.fetch_xor(v, o));
                assert_eq!(cell.fetch_nand(v, o), m.fetch_nand(v, o));
                assert_eq!(cell.swap(v, o), m.swap(v, o));
                assert_eq!(
                    cell.compare_exchange(v, !v, o, lo),
                    m.compare_exchange(v, !v, o, lo)
                );
                let f = |b: bool| (!b).then_some(true);
                assert_eq!(cell.fetch_update(o, lo, f), m.fetch_update(o, lo, f));
                assert_eq!(cell.load(lo), m.load(lo));
            }
        }
    }
}

macro_rules! float_ops_test {
    ($($name:ident: $t:ty;)*) => {$(
        #[test]
        fn $name() {
            let v = AtomicValue::<$t>::new(1.5).unwrap();
            let a = AtomicArray::<$t>::from_slice(&[0.0, -1.0]).unwrap();
            for (cell, start) in [(v.cell(), 1.5), (a.at(1), -1.0)] {
                assert_eq!(cell.load(Relaxed), start);
                assert_eq!(cell.fetch_add(2.0, AcqRel), start);
                assert_eq!(cell.fetch_sub(0.5, Release), start + 2.0);
                assert_eq!(cell.load(Acquire), start + 1.5);
                cell.store(3.0, SeqCst);
                assert_eq!(cell.fetch_max(7.0, SeqCst), 3.0);
                assert_eq!(cell.fetch_max(<$t>::NAN, SeqCst), 7.0);
                assert_eq!(cell.fetch_min(-<$t>::INFINITY, SeqCst), 7.0);
                assert_eq!(cell.swap(<$t>::NAN, SeqCst), -<$t>::INFINITY);
                assert!(cell.fetch_min(2.0, SeqCst).is_nan());
                assert_eq!(cell.load(SeqCst), 2.0);
                assert_eq!(cell.fetch_add(<$t>::INFINITY, SeqCst), 2.0);
                assert!(cell.fetch_sub(<$t>::INFINITY, SeqCst).is_infinite());
                assert!(cell.load(SeqCst).is_nan(), "inf - inf");

                // Bitwise compare_exchange: -0.0 is not 0.0, NaN is itself.
                cell.store(-0.0, SeqCst);
                assert_eq!(
                    cell.compare_exchange(0.0, 1.0, SeqCst, SeqCst).map_err(<$t>::to_bits),
                    Err((-0.0 as $t).to_bits())
                );
                assert_eq!(cell.compare_exchange(-0.0, <$t>::NAN, SeqCst, SeqCst), Ok(-0.0));
                let nan = cell.load(Relaxed);
                assert!(cell.compare_exchange(nan, 4.0, SeqCst, Relaxed).is_ok());
                let mut cur = cell.load(Relaxed);
                while let Err(f) = cell.compare_exchange_weak(cur, cur * 2.0, AcqRel, Acquire) {
                    cur = f;
                }
                assert_eq!(cell.load(Relaxed), 8.0);
                assert_eq!(cell.fetch_update(SeqCst, SeqCst, |x| Some(x / 4.0)), Ok(8.0));
                assert_eq!(cell.fetch_update(SeqCst, SeqCst, |_| None), Err(2.0));
            }
            assert_eq!(a.at(0).load(Relaxed).to_bits(), 0, "neighbour untouched");
        }
    )*};
}

float_ops_test! {
    ops_f32: f32;
    ops_f64: f64;
}

#[test]
fn named_open_from_fd_persist_unlink() {
    let name = uniq("named");
    let v = AtomicValue::<u64>::create(&name, 7).unwrap();
    assert_eq!(v.name(), Some(name.as_str()));
    assert!(matches!(
        AtomicValue::<u64>::create(&name, 1),
        Err(Error::AlreadyExists { .. })
    ));
    let w = AtomicValue::<u64>::open(&format!("/{name}")).unwrap();
    w.fetch_add(3, SeqCst);
    assert_eq!(v.load(SeqCst), 10);
    assert_eq!(
        format!("{v:?}"),
        format!("AtomicValue {{ name: Some({name:?}), value: 10 }}")
    );

    let fd = v.as_fd().try_clone_to_owned().unwrap();
    let by_fd = AtomicValue::<u64>::from_fd(fd).unwrap();
    by_fd.fetch_sub(1, SeqCst);
    assert_eq!(w.load(SeqCst), 9);

    // An opener never unlinks; the creator does, unless persisted.
    drop(w);
    assert!(AtomicValue::<u64>::open(&name).is_ok());
    v.persist();
    drop(v);
    let again = AtomicValue::<u64>::open(&name).unwrap();
    assert_eq!(again.load(SeqCst), 9);
    again.unlink().unwrap();
    assert!(matches!(
        AtomicValue::<u64>::open(&name),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(again.unlink(), Err(Error::NotFound { .. })));
    assert_eq!(by_fd.load(SeqCst), 9, "attached handles keep working");
    assert!(matches!(
        AtomicValue::new(1u8).unwrap().unlink(),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn named_array_and_drop_unlinks() {
    let name = uniq("arr");
    {
        let a = AtomicArray::<i32>::create(&name, &[1, 2, 3]).unwrap();
        let b = AtomicArray::<i32>::open(&name).unwrap();
        b.at(2).fetch_add(10, Relaxed);
        assert_eq!(a.to_vec(), [1, 2, 13]);
        assert_eq!(b.len(), 3);
        assert!(!b.is_empty());
        assert!(!b.is_padded());
        let fd = b.as_fd().try_clone_to_owned().unwrap();
        assert_eq!(
            AtomicArray::<i32>::from_fd(fd).unwrap().to_vec(),
            [1, 2, 13]
        );
        assert!(format!("{a:?}").contains("len: 3"));
    }
    assert!(matches!(
        AtomicArray::<i32>::open(&name),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn array_accessors() {
    let a = AtomicArray::from_slice(&[1u16, 2, 3]).unwrap();
    assert!(a.get(3).is_none());
    assert_eq!(a.get(2).map(|c| c.load(Relaxed)), Some(3));
    let loaded: Vec<u16> = a.iter().rev().map(|c| c.load(Relaxed)).collect();
    assert_eq!(loaded, [3, 2, 1]);
    assert_eq!(a.iter().len(), 3);
    assert_eq!(format!("{:?}", a.at(1)), "2");
    let e = AtomicArray::<f32>::zeroed(0).unwrap();
    assert!(e.is_empty() && e.to_vec().is_empty() && e.get(0).is_none());
    assert_eq!(AtomicArray::<bool>::zeroed(2).unwrap().to_vec(), [false; 2]);
    assert_eq!(
        AtomicArray::<f64>::zeroed_padded(2).unwrap().to_vec(),
        [0.0; 2]
    );
    assert!(matches!(
        AtomicArray::<u64>::zeroed(usize::MAX / 4),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
#[should_panic(expected = "index 2 out of bounds for length 2")]
fn at_out_of_bounds_panics() {
    let a = AtomicArray::<u8>::zeroed(2).unwrap();
    let _ = a.at(2);
}

/// Byte offsets of the elements of a named array of distinct marker
/// values, found in the raw file.
fn marker_offsets(name: &str, markers: &[u64]) -> (Vec<usize>, usize) {
    let shm = SharedMemory::open(name).unwrap();
    let mut bytes = vec![0u8; shm.len()];
    shm.read_at(0, &mut bytes).unwrap();
    let offs = markers
        .iter()
        .map(|m| {
            let pat = m.to_ne_bytes();
            let hits: Vec<usize> = (0..=bytes.len() - 8)
                .filter(|&i| bytes[i..i + 8] == pat)
                .collect();
            assert_eq!(hits.len(), 1, "marker {m:#x} found once");
            hits[0]
        })
        .collect();
    (offs, shm.len())
}

#[test]
fn padded_arrays_give_each_element_a_cache_line() {
    let markers = [
        0x1111_2222_3333_4444u64,
        0x5555_6666_7777_8888,
        0x9999_aaaa_bbbb_cccc,
    ];
    let packed_name = uniq("packed");
    let padded_name = uniq("padded");
    let packed = AtomicArray::create(&packed_name, &markers).unwrap();
    let padded = AtomicArray::create_padded(&padded_name, &markers).unwrap();
    assert!(padded.is_padded() && !packed.is_padded());

    let (p, packed_len) = marker_offsets(&packed_name, &markers);
    assert!(
        p.iter().all(|o| o % 8 == 0),
        "64-bit cells are 8-aligned: {p:?}"
    );
    assert_eq!([p[1] - p[0], p[2] - p[1]], [8, 8]);

    let (q, padded_len) = marker_offsets(&padded_name, &markers);
    assert!(q.iter().all(|o| o % CACHE_LINE == 0), "line aligned: {q:?}");
    assert_eq!([q[1] - q[0], q[2] - q[1]], [CACHE_LINE, CACHE_LINE]);
    assert_eq!(padded_len - packed_len, 3 * (CACHE_LINE - 8));

    // `open` accepts both layouts and reports which one it found.
    assert!(AtomicArray::<u64>::open(&padded_name).unwrap().is_padded());
    assert!(!AtomicArray::<u64>::open(&packed_name).unwrap().is_padded());
    padded.at(2).fetch_add(1, Relaxed);
    assert_eq!(
        AtomicArray::<u64>::open(&padded_name).unwrap().to_vec()[2],
        markers[2] + 1
    );
}

#[test]
fn small_cells_are_naturally_aligned() {
    // i16 / f32 markers, found as above but with their own widths.
    let name = uniq("align32");
    let a = AtomicArray::create(
        &name,
        &[f32::from_bits(0x1234_5678), f32::from_bits(0x2345_6789)],
    )
    .unwrap();
    let shm = SharedMemory::open(&name).unwrap();
    let mut bytes = vec![0u8; shm.len()];
    shm.read_at(0, &mut bytes).unwrap();
    let at = (0..bytes.len() - 4)
        .find(|&i| bytes[i..i + 4] == 0x1234_5678u32.to_ne_bytes())
        .unwrap();
    assert_eq!(at % 4, 0);
    assert_eq!(bytes[at + 4..at + 8], 0x2345_6789u32.to_ne_bytes());
    drop(a);
}

#[test]
fn open_checks_kind_and_type() {
    let f = uniq("f64");
    let _f = AtomicValue::<f64>::create(&f, 1.0).unwrap();
    assert_type_mismatch(AtomicValue::<i64>::open(&f), "f64 as i64");
    assert_type_mismatch(AtomicValue::<u64>::open(&f), "f64 as u64");
    assert_type_mismatch(AtomicValue::<f32>::open(&f), "f64 as f32");
    assert_type_mismatch(AtomicArray::<f64>::open(&f), "value as array");
    assert_type_mismatch(Value::<f64>::open(&f), "atomic as locked Value");
    assert_type_mismatch(RawValue::<f64>::open(&f), "atomic as RawValue");

    let v = uniq("value");
    let _v = Value::<f64>::create(&v, 1.0).unwrap();
    assert_type_mismatch(
        AtomicValue::<f64>::open(&v),
        "Value<f64> as AtomicValue<f64>",
    );
    let r = uniq("raw");
    let _r = RawValue::<f64>::create(&r, 1.0).unwrap();
    assert_type_mismatch(AtomicValue::<f64>::open(&r), "RawValue as AtomicValue");

    let a = uniq("arr");
    let _a = AtomicArray::<u32>::create_padded(&a, &[1, 2]).unwrap();
    assert_type_mismatch(AtomicArray::<f32>::open(&a), "u32 as f32 (same size)");
    assert_type_mismatch(AtomicArray::<i32>::open(&a), "u32 as i32");
    assert_type_mismatch(AtomicValue::<u32>::open(&a), "array as value");

    let i = uniq("i64");
    let _i = AtomicArray::<i64>::create(&i, &[1]).unwrap();
    assert_type_mismatch(AtomicArray::<isize>::open(&i), "i64 ('q') as isize ('n')");
    let b = uniq("bool");
    let _b = AtomicValue::<bool>::create(&b, true).unwrap();
    assert_type_mismatch(AtomicValue::<u8>::open(&b), "bool as u8");
    assert!(matches!(
        AtomicValue::<u8>::open(&uniq("missing")),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        AtomicValue::<u8>::create("bad/name", 0),
        Err(Error::InvalidName { .. })
    ));
}

#[test]
fn open_rejects_other_strides() {
    let name = uniq("stride");
    let a = AtomicArray::<u64>::create(&name, &[1, 2]).unwrap();
    // Header offset 28 is the stride (pinned by `static_assertions` in
    // src/shm/header.rs). 16 is neither the element size nor a line.
    let shm = SharedMemory::open(&name).unwrap();
    shm.write_at(28, &16u32.to_ne_bytes()).unwrap();
    assert_type_mismatch(AtomicArray::<u64>::open(&name), "stride 16");
    drop(a);
}

/// Finds the byte of a named `AtomicValue<bool>` in its file.
fn bool_byte_offset(name: &str, v: &AtomicValue<bool>) -> usize {
    let shm = SharedMemory::open(name).unwrap();
    let snap = |shm: &SharedMemory| {
        let mut b = vec![0u8; shm.len()];
        shm.read_at(0, &mut b).unwrap();
        b
    };
    v.store(false, SeqCst);
    let before = snap(&shm);
    v.store(true, SeqCst);
    let after = snap(&shm);
    let diff: Vec<usize> = (0..before.len())
        .filter(|&i| before[i] != after[i])
        .collect();
    assert_eq!(diff.len(), 1);
    assert_eq!((before[diff[0]], after[diff[0]]), (0, 1), "stored as 0/1");
    diff[0]
}

#[test]
fn bool_cell_written_with_other_bytes_by_a_peer() {
    let name = uniq("bool2");
    let v = AtomicValue::<bool>::create(&name, false).unwrap();
    let off = bool_byte_offset(&name, &v);
    let peer = SharedMemory::open(&name).unwrap();
    let poke = |b: u8| peer.write_at(off, &[b]).unwrap();
    let byte = || {
        let mut b = [0u8];
        peer.read_at(off, &mut b).unwrap();
        b[0]
    };
    for b in [2u8, 0x80, 0xff] {
        poke(b);
        assert!(v.load(SeqCst), "any non-zero byte reads as true");
        assert_eq!(v.compare_exchange(false, true, SeqCst, SeqCst), Err(true));
        assert_eq!(v.compare_exchange(true, false, SeqCst, SeqCst), Ok(true));
        assert_eq!(byte(), 0);
        poke(b);
        // A weak exchange may fail spuriously (`Err(true)`), not forever.
        let r = loop {
            match v.compare_exchange_weak(true, false, SeqCst, SeqCst) {
                Err(true) => continue,
                other => break other,
            }
        };
        assert_eq!(r, Ok(true));
        assert_eq!(byte(), 0);
        poke(b);
        assert!(v.fetch_xor(true, SeqCst));
        assert_eq!(byte(), 0, "xor acts on the truth value");
        poke(b);
        assert!(v.fetch_and(true, SeqCst));
        assert_eq!(byte(), b, "and(true) keeps the byte");
        assert!(v.fetch_nand(true, SeqCst));
        assert_eq!(byte(), 0);
        poke(b);
        assert!(v.swap(false, SeqCst));
        assert_eq!(byte(), 0);
        assert!(format!("{v:?}").contains("value: false"));
    }
}

#[test]
fn threads_share_mapped_cells() {
    let v = AtomicValue::new(0.0f64).unwrap();
    let a = AtomicArray::<i64>::zeroed_padded(2).unwrap();
    let n = 20_000;
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..n {
                    v.fetch_add(0.5, Relaxed);
                    a.at(0).fetch_add(1, Relaxed);
                    a.at(1).fetch_max(3, Relaxed);
                }
            });
        }
    });
    assert_eq!(v.load(SeqCst), f64::from(n));
    assert_eq!(a.to_vec(), [2 * i64::from(n), 3]);
}

fn takes_cells<T: AtomicElement>(cells: &[AtomicRef<'_, T>]) -> Vec<T> {
    cells.iter().map(|c| c.load(Relaxed)).collect()
}

#[test]
fn value_cells_and_array_cells_mix() {
    let v = AtomicValue::new(-1i8).unwrap();
    let a = AtomicArray::from_slice(&[1i8, 2]).unwrap();
    assert_eq!(takes_cells(&[v.cell(), a.at(1), a.at(0)]), [-1, 2, 1]);
}

/// Inherited across `fork`: the child only performs atomic operations on
/// the already-mapped cells and `_exit`s (async-signal-safe), so forking
/// from the multi-threaded test harness is sound.
#[test]
fn inherited_across_fork() {
    let v = AtomicValue::new(0.0f64).unwrap();
    let a = AtomicArray::<u32>::zeroed_padded(2).unwrap();
    // SAFETY: the child runs only atomic operations on memory mapped
    // before the fork (no allocation, no locks) and then `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        for _ in 0..1000 {
            v.fetch_add(1.0, Relaxed);
            a.at(1).fetch_add(2, Relaxed);
        }
        // SAFETY: `_exit` is async-signal-safe and ends the child.
        unsafe { libc::_exit(0) };
    }
    for _ in 0..1000 {
        v.fetch_add(1.0, Relaxed);
        a.at(0).fetch_add(1, Relaxed);
    }
    let mut status = 0;
    // SAFETY: waiting for our own child with a valid status pointer.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(r, pid);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    assert_eq!(v.load(Acquire), 2000.0);
    assert_eq!(a.to_vec(), [1000, 2000]);
}
