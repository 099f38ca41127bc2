//! Property tests: random operation sequences on mapped atomic cells
//! against a model, single-threaded.
//!
//! - Integers and `bool`: the model is std's own atomic of the same type on
//!   the heap (every return value and the final value must agree).
//! - Floats: the model is a plain `f64`/`f32` with the documented semantics
//!   (`compare_exchange` on bit patterns; `fetch_add` = `old + v`;
//!   `fetch_max/min` = `f64::max/min`), fed with edge values (NaNs with
//!   payloads, ±0.0, ±inf, subnormals, extremes) as well as arbitrary bit
//!   patterns. Results are compared bit for bit, except where Rust leaves
//!   the bits unspecified: the sign and payload of a NaN produced by
//!   arithmetic (LLVM may commute the operands), and which zero `max`/`min`
//!   of `0.0` and `-0.0` return. There any NaN (any zero) is accepted and
//!   the model adopts the cell's bits, so that later bitwise exchanges stay
//!   comparable.
//!
//! Each case runs on a value, a packed and a padded array element.

use std::sync::atomic::Ordering::{self, AcqRel, Acquire, Relaxed, Release, SeqCst};

use proptest::prelude::*;
use shmsync::{AtomicArray, AtomicRef, AtomicValue};

fn ordering() -> impl Strategy<Value = Ordering> {
    prop_oneof![
        Just(Relaxed),
        Just(Release),
        Just(Acquire),
        Just(AcqRel),
        Just(SeqCst)
    ]
}

/// `o` made valid for a load / a CAS failure (std panics otherwise).
fn load_order(o: Ordering) -> Ordering {
    match o {
        Release | AcqRel => Relaxed,
        o => o,
    }
}

/// `o` made valid for a store.
fn store_order(o: Ordering) -> Ordering {
    match o {
        Acquire | AcqRel => Release,
        o => o,
    }
}

/// What `compare_exchange` is asked to expect.
#[derive(Debug, Clone, Copy)]
enum Expect<T> {
    /// The current value (succeeds, unless a weak exchange fails
    /// spuriously).
    Current,
    /// An arbitrary value (usually fails).
    Other(T),
}

#[derive(Debug, Clone, Copy)]
enum Op<T> {
    Load,
    Store(T),
    Swap(T),
    Cas(Expect<T>, T, bool),
    /// `fetch_update` that adds the operand, or declines when `decline`.
    Update(T, bool),
    Add(T),
    Sub(T),
    Max(T),
    Min(T),
    And(T),
    Or(T),
    Xor(T),
    Nand(T),
}

fn ops<T: Copy + std::fmt::Debug + 'static>(
    val: impl Strategy<Value = T> + Clone + 'static,
    bitwise: bool,
) -> impl Strategy<Value = Vec<(Op<T>, Ordering)>> {
    let v = val;
    let expect = prop_oneof![Just(Expect::Current), v.clone().prop_map(Expect::Other)];
    let common = prop_oneof![
        Just(Op::Load),
        v.clone().prop_map(Op::Store),
        v.clone().prop_map(Op::Swap),
        (expect, v.clone(), any::<bool>()).prop_map(|(e, n, w)| Op::Cas(e, n, w)),
        (v.clone(), any::<bool>()).prop_map(|(x, d)| Op::Update(x, d)),
        v.clone().prop_map(Op::Add),
        v.clone().prop_map(Op::Sub),
        v.clone().prop_map(Op::Max),
        v.clone().prop_map(Op::Min),
    ];
    let bits = prop_oneof![
        v.clone().prop_map(Op::And),
        v.clone().prop_map(Op::Or),
        v.clone().prop_map(Op::Xor),
        v.prop_map(Op::Nand),
    ];
    let op = if bitwise {
        prop_oneof![3 => common, 2 => bits].boxed()
    } else {
        common.boxed()
    };
    prop::collection::vec((op, ordering()), 1..48)
}

/// The three cells every case runs on.
struct Cells<T: shmsync::AtomicElement> {
    value: AtomicValue<T>,
    packed: AtomicArray<T>,
    padded: AtomicArray<T>,
}

impl<T: shmsync::AtomicElement> Cells<T> {
    fn new(init: T) -> Self {
        Cells {
            value: AtomicValue::new(init).unwrap(),
            packed: AtomicArray::from_slice(&[init; 3]).unwrap(),
            padded: AtomicArray::from_slice_padded(&[init; 2]).unwrap(),
        }
    }
    fn each(&self) -> [AtomicRef<'_, T>; 3] {
        [self.value.cell(), self.packed.at(1), self.padded.at(0)]
    }
}

/// Retries a weak exchange that failed spuriously (returned the value it
/// expected), so the outcome is deterministic.
fn cas<T: shmsync::AtomicElement + PartialEq>(
    c: AtomicRef<'_, T>,
    cur: T,
    new: T,
    o: Ordering,
    weak: bool,
    same: impl Fn(T, T) -> bool,
) -> Result<T, T> {
    let f = load_order(o);
    if !weak {
        return c.compare_exchange(cur, new, o, f);
    }
    loop {
        match c.compare_exchange_weak(cur, new, o, f) {
            Err(found) if same(found, cur) => continue,
            r => return r,
        }
    }
}

macro_rules! int_props {
    ($($name:ident: $t:ty, $std:ident;)*) => {$(
        proptest! {
            #[test]
            fn $name(init: $t, seq in ops(any::<$t>(), true)) {
                let cells = Cells::<$t>::new(init);
                for c in cells.each() {
                    let m = std::sync::atomic::$std::new(init);
                    for &(op, o) in &seq {
                        let lo = load_order(o);
                        match op {
                            Op::Load => prop_assert_eq!(c.load(lo), m.load(lo)),
                            Op::Store(v) => {
                                c.store(v, store_order(o));
                                m.store(v, store_order(o));
                            }
                            Op::Swap(v) => prop_assert_eq!(c.swap(v, o), m.swap(v, o)),
                            Op::Cas(e, n, weak) => {
                                let cur = match e {
                                    Expect::Current => m.load(Relaxed),
                                    Expect::Other(x) => x,
                                };
                                prop_assert_eq!(
                                    cas(c, cur, n, o, weak, |a, b| a == b),
                                    m.compare_exchange(cur, n, o, lo)
                                );
                            }
                            Op::Update(x, decline) => {
                                let f = |v: $t| (!decline).then(|| v.wrapping_add(x));
                                prop_assert_eq!(c.fetch_update(o, lo, f), m.fetch_update(o, lo, f));
                            }
                            Op::Add(v) => prop_assert_eq!(c.fetch_add(v, o), m.fetch_add(v, o)),
                            Op::Sub(v) => prop_assert_eq!(c.fetch_sub(v, o), m.fetch_sub(v, o)),
                            Op::Max(v) => prop_assert_eq!(c.fetch_max(v, o), m.fetch_max(v, o)),
                            Op::Min(v) => prop_assert_eq!(c.fetch_min(v, o), m.fetch_min(v, o)),
                            Op::And(v) => prop_assert_eq!(c.fetch_and(v, o), m.fetch_and(v, o)),
                            Op::Or(v) => prop_assert_eq!(c.fetch_or(v, o), m.fetch_or(v, o)),
                            Op::Xor(v) => prop_assert_eq!(c.fetch_xor(v, o), m.fetch_xor(v, o)),
                            Op::Nand(v) => prop_assert_eq!(c.fetch_nand(v, o), m.fetch_nand(v, o)),
                        }
                        prop_assert_eq!(c.load(SeqCst), m.load(SeqCst));
                    }
                }
                // Only the element under test changed.
                prop_assert_eq!(cells.packed.at(0).load(Relaxed), init);
                prop_assert_eq!(cells.packed.at(2).load(Relaxed), init);
                prop_assert_eq!(cells.padded.at(1).load(Relaxed), init);
            }
        }
    )*};
}

int_props! {
    props_i8: i8, AtomicI8;
    props_u8: u8, AtomicU8;
    props_i16: i16, AtomicI16;
    props_u16: u16, AtomicU16;
    props_i32: i32, AtomicI32;
    props_u32: u32, AtomicU32;
    props_i64: i64, AtomicI64;
    props_u64: u64, AtomicU64;
    props_isize: isize, AtomicIsize;
    props_usize: usize, AtomicUsize;
}

proptest! {
    #[test]
    fn props_bool(init: bool, seq in ops(any::<bool>(), true)) {
        let cells = Cells::<bool>::new(init);
        for c in cells.each() {
            let m = std::sync::atomic::AtomicBool::new(init);
            for &(op, o) in &seq {
                let lo = load_order(o);
                match op {
                    Op::Load => prop_assert_eq!(c.load(lo), m.load(lo)),
                    Op::Store(v) => {
                        c.store(v, store_order(o));
                        m.store(v, store_order(o));
                    }
                    Op::Swap(v) => prop_assert_eq!(c.swap(v, o), m.swap(v, o)),
                    Op::Cas(e, n, weak) => {
                        let cur = match e {
                            Expect::Current => m.load(Relaxed),
                            Expect::Other(x) => x,
                        };
                        prop_assert_eq!(
                            cas(c, cur, n, o, weak, |a, b| a == b),
                            m.compare_exchange(cur, n, o, lo)
                        );
                    }
                    Op::Update(x, decline) => {
                        let f = |v: bool| (!decline).then_some(v ^ x);
                        prop_assert_eq!(c.fetch_update(o, lo, f), m.fetch_update(o, lo, f));
                    }
                    // bool has no arithmetic: these draw bitwise ops instead.
                    Op::Add(v) | Op::And(v) => prop_assert_eq!(c.fetch_and(v, o), m.fetch_and(v, o)),
                    Op::Sub(v) | Op::Or(v) => prop_assert_eq!(c.fetch_or(v, o), m.fetch_or(v, o)),
                    Op::Max(v) | Op::Xor(v) => prop_assert_eq!(c.fetch_xor(v, o), m.fetch_xor(v, o)),
                    Op::Min(v) | Op::Nand(v) => prop_assert_eq!(c.fetch_nand(v, o), m.fetch_nand(v, o)),
                }
                prop_assert_eq!(c.load(SeqCst), m.load(SeqCst));
            }
        }
    }
}

macro_rules! float_props {
    ($($name:ident: $t:ty, $bits:ty, $edge:ident;)*) => {$(
        fn $edge() -> impl Strategy<Value = $t> + Clone {
            prop_oneof![
                3 => prop::sample::select(vec![
                    0.0, -0.0, 1.0, -1.0, 0.5, 3.0,
                    <$t>::INFINITY, <$t>::NEG_INFINITY, <$t>::NAN, -<$t>::NAN,
                    <$t>::MAX, <$t>::MIN, <$t>::MIN_POSITIVE, <$t>::EPSILON,
                    <$t>::from_bits(1),                     // smallest subnormal
                    <$t>::from_bits(<$t>::NAN.to_bits() | 1), // NaN with a payload
                ]),
                1 => any::<$bits>().prop_map(<$t>::from_bits),
                1 => (-100i16..100).prop_map(<$t>::from),
            ]
        }

        proptest! {
            #[test]
            fn $name(init in $edge(), seq in ops($edge(), false)) {
                let bits = |x: $t| x.to_bits();
                let same = |a: $t, b: $t| a.to_bits() == b.to_bits();
                // The cell's new value `got` agrees with the model's `want`
                // (module docs); returns the model's next value.
                let adopt = |got: $t, want: $t, zeros: bool| -> Result<$t, TestCaseError> {
                    let unspecified =
                        (got.is_nan() && want.is_nan()) || (zeros && got == 0.0 && want == 0.0);
                    prop_assert!(
                        same(got, want) || unspecified,
                        "cell has {:?} ({:#x}), model {:?} ({:#x})",
                        got, bits(got), want, bits(want)
                    );
                    Ok(got)
                };
                let cells = Cells::<$t>::new(init);
                for c in cells.each() {
                    let mut m: $t = init;
                    for &(op, o) in &seq {
                        let lo = load_order(o);
                        match op {
                            Op::Load => prop_assert_eq!(bits(c.load(lo)), bits(m)),
                            Op::Store(v) => {
                                c.store(v, store_order(o));
                                m = v;
                            }
                            Op::Swap(v) => {
                                prop_assert_eq!(bits(c.swap(v, o)), bits(m));
                                m = v;
                            }
                            Op::Cas(e, n, weak) => {
                                let cur = match e {
                                    Expect::Current => m,
                                    Expect::Other(x) => x,
                                };
                                let r = cas(c, cur, n, o, weak, same);
                                // Bitwise: -0.0 != 0.0, NaN == NaN (same payload).
                                if same(cur, m) {
                                    prop_assert_eq!(r.map(bits), Ok(bits(m)));
                                    m = n;
                                } else {
                                    prop_assert_eq!(r.map_err(bits), Err(bits(m)));
                                }
                            }
                            Op::Update(x, decline) => {
                                let r = c.fetch_update(o, lo, |v| (!decline).then(|| v + x));
                                if decline {
                                    prop_assert_eq!(r.map_err(bits), Err(bits(m)));
                                } else {
                                    prop_assert_eq!(r.map(bits), Ok(bits(m)));
                                    m = adopt(c.load(Relaxed), m + x, false)?;
                                }
                            }
                            Op::Add(v) => {
                                prop_assert_eq!(bits(c.fetch_add(v, o)), bits(m));
                                m = adopt(c.load(Relaxed), m + v, false)?;
                            }
                            Op::Sub(v) => {
                                prop_assert_eq!(bits(c.fetch_sub(v, o)), bits(m));
                                m = adopt(c.load(Relaxed), m - v, false)?;
                            }
                            Op::Max(v) | Op::Min(v) => {
                                let is_max = matches!(op, Op::Max(_));
                                let old = if is_max { c.fetch_max(v, o) } else { c.fetch_min(v, o) };
                                prop_assert_eq!(bits(old), bits(m));
                                let want = if is_max { m.max(v) } else { m.min(v) };
                                m = adopt(c.load(Relaxed), want, true)?;
                            }
                            Op::And(_) | Op::Or(_) | Op::Xor(_) | Op::Nand(_) => {
                                unreachable!("floats draw no bitwise ops")
                            }
                        }
                        prop_assert_eq!(bits(c.load(SeqCst)), bits(m));
                    }
                }
                prop_assert_eq!(bits(cells.packed.at(0).load(Relaxed)), bits(init));
                prop_assert_eq!(bits(cells.padded.at(1).load(Relaxed)), bits(init));
            }
        }
    )*};
}

float_props! {
    props_f32: f32, u32, edge_f32;
    props_f64: f64, u64, edge_f64;
}
