//! Random sequences of `Array` / `Value` / `RawArray` operations, checked
//! step by step against a plain `Vec` model, on anonymous and named
//! objects. Every object is used through two handles (the creator and one
//! from `open` or `from_fd`), so each step also checks that both see the
//! same memory.

mod common;

use std::os::fd::AsFd;

use common::ShmName;
use proptest::prelude::*;
use shmsync::{Array, CChar, RawArray, Value};

const CASES: u32 = 64;

/// Maps a random index into `0..len` (`len > 0`).
fn idx(i: usize, len: usize) -> usize {
    i % len
}

/// Maps a random range into one that fits `0..len`.
fn range(start: usize, n: usize, len: usize) -> (usize, usize) {
    let start = start % (len + 1);
    (start, n % (len - start + 1))
}

// ---------------------------------------------------------------------------
// Array<i64>
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum ArrOp {
    Set(bool, usize, i64),
    Get(bool, usize),
    Update(bool, usize, i64),
    Write(bool, usize, Vec<i64>),
    Read(bool, usize, usize),
    ToVec(bool),
    Iter(bool),
    /// Under one guard: swap two elements.
    GuardSwap(bool, usize, usize),
    /// Under one guard: running sums.
    GuardPrefixSum(bool),
    /// Under one guard: a range write, a range read and a snapshot.
    GuardRange(bool, usize, Vec<i64>),
    /// A guard held on one handle while the other handle (same lock: the
    /// thread holds it recursively) writes; the guard sees the write.
    GuardNested(bool, usize, i64),
}

fn arr_op() -> impl Strategy<Value = ArrOp> {
    let h = any::<bool>();
    let i = any::<usize>();
    let v = any::<i64>();
    let data = prop::collection::vec(any::<i64>(), 0..8);
    prop_oneof![
        (h, i, v).prop_map(|(h, i, v)| ArrOp::Set(h, i, v)),
        (h, i).prop_map(|(h, i)| ArrOp::Get(h, i)),
        (h, i, v).prop_map(|(h, i, v)| ArrOp::Update(h, i, v)),
        (h, i, data.clone()).prop_map(|(h, i, d)| ArrOp::Write(h, i, d)),
        (h, i, i).prop_map(|(h, s, n)| ArrOp::Read(h, s, n)),
        h.prop_map(ArrOp::ToVec),
        h.prop_map(ArrOp::Iter),
        (h, i, i).prop_map(|(h, a, b)| ArrOp::GuardSwap(h, a, b)),
        h.prop_map(ArrOp::GuardPrefixSum),
        (h, i, data).prop_map(|(h, s, d)| ArrOp::GuardRange(h, s, d)),
        (h, i, v).prop_map(|(h, i, v)| ArrOp::GuardNested(h, i, v)),
    ]
}

fn run_array(a: &Array<i64>, b: &Array<i64>, model: &mut [i64], ops: &[ArrOp]) {
    let len = model.len();
    let pick = |h: bool| if h { a } else { b };
    let other = |h: bool| if h { b } else { a };
    for op in ops {
        match op {
            ArrOp::Set(h, i, v) => {
                let i = idx(*i, len);
                pick(*h).set(i, *v).unwrap();
                model[i] = *v;
            }
            ArrOp::Get(h, i) => {
                let i = idx(*i, len);
                assert_eq!(pick(*h).get(i).unwrap(), model[i], "{op:?}");
            }
            ArrOp::Update(h, i, d) => {
                let i = idx(*i, len);
                let n = pick(*h).update(i, |x| x.wrapping_add(*d)).unwrap();
                model[i] = model[i].wrapping_add(*d);
                assert_eq!(n, model[i], "{op:?}");
            }
            ArrOp::Write(h, s, d) => {
                let (s, n) = range(*s, d.len(), len);
                pick(*h).write(s, &d[..n]).unwrap();
                model[s..s + n].copy_from_slice(&d[..n]);
            }
            ArrOp::Read(h, s, n) => {
                let (s, n) = range(*s, *n, len);
                let mut out = vec![0; n];
                pick(*h).read(s, &mut out).unwrap();
                assert_eq!(out, &model[s..s + n], "{op:?}");
            }
            ArrOp::ToVec(h) => assert_eq!(pick(*h).to_vec().unwrap(), model, "{op:?}"),
            ArrOp::Iter(h) => {
                let got: Vec<i64> = pick(*h).iter().unwrap().collect();
                assert_eq!(got, model, "{op:?}");
            }
            ArrOp::GuardSwap(h, i, j) => {
                let (i, j) = (idx(*i, len), idx(*j, len));
                let g = pick(*h).lock().unwrap();
                assert_eq!(g.len(), len);
                let (x, y) = (g.get(i), g.get(j));
                g.set(i, y);
                g.set(j, x);
                model.swap(i, j);
            }
            ArrOp::GuardPrefixSum(h) => {
                let g = pick(*h).lock().unwrap();
                for k in 1..g.len() {
                    g.update(k, |x| x.wrapping_add(g.get(k - 1)));
                    model[k] = model[k].wrapping_add(model[k - 1]);
                }
            }
            ArrOp::GuardRange(h, s, d) => {
                let (s, n) = range(*s, d.len(), len);
                let g = pick(*h).lock().unwrap();
                g.write(s, &d[..n]);
                model[s..s + n].copy_from_slice(&d[..n]);
                let mut out = vec![0; n];
                g.read(s, &mut out);
                assert_eq!(out, &model[s..s + n], "{op:?}");
                assert_eq!(g.to_vec(), model, "{op:?}");
            }
            ArrOp::GuardNested(h, i, v) => {
                let i = idx(*i, len);
                let g = pick(*h).lock().unwrap();
                other(*h).set(i, *v).unwrap();
                model[i] = *v;
                assert_eq!(g.get(i), *v, "{op:?}");
                assert!(pick(*h).get_lock().is_held_by_current_thread());
            }
        }
        // No operation leaves the lock held.
        assert!(!a.get_lock().is_locked(), "lock left held after {op:?}");
    }
    assert_eq!(a.to_vec().unwrap(), model);
    assert_eq!(b.to_vec().unwrap(), model);
}

fn arr_case() -> impl Strategy<Value = (Vec<i64>, Vec<ArrOp>)> {
    (
        prop::collection::vec(any::<i64>(), 1..16),
        prop::collection::vec(arr_op(), 1..40),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn array_anonymous_matches_vec_model((init, ops) in arr_case()) {
        let a = Array::from_slice(&init).unwrap();
        let b = Array::<i64>::from_fd(a.as_fd().try_clone_to_owned().unwrap()).unwrap();
        let mut model = init.clone();
        run_array(&a, &b, &mut model, &ops);
    }

    #[test]
    fn array_named_matches_vec_model((init, ops) in arr_case()) {
        let name = ShmName::new("propa");
        {
            let a = Array::create(&name, &init).unwrap();
            let b = Array::<i64>::open_len(&name, init.len()).unwrap();
            let mut model = init.clone();
            run_array(&a, &b, &mut model, &ops);
            // A third handle opened afterwards sees the final state.
            prop_assert_eq!(Array::<i64>::open(&name).unwrap().to_vec().unwrap(), model);
        }
        common::assert_gone(&name);
    }
}

// ---------------------------------------------------------------------------
// Value<f64>
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum ValOp {
    Set(bool, f64),
    Get(bool),
    Add(bool, f64),
    Mul(bool, f64),
    /// Under one guard: `x = x * k + c`.
    Guard(bool, f64, f64),
    /// A guard held on one handle; the other handle sets through the
    /// recursive lock, and the guard sees it.
    Nested(bool, f64),
}

fn finite() -> impl Strategy<Value = f64> {
    -1.0e3..1.0e3f64
}

fn val_op() -> impl Strategy<Value = ValOp> {
    let h = any::<bool>();
    prop_oneof![
        (h, finite()).prop_map(|(h, v)| ValOp::Set(h, v)),
        h.prop_map(ValOp::Get),
        (h, finite()).prop_map(|(h, v)| ValOp::Add(h, v)),
        (h, finite()).prop_map(|(h, v)| ValOp::Mul(h, v)),
        (h, finite(), finite()).prop_map(|(h, k, c)| ValOp::Guard(h, k, c)),
        (h, finite()).prop_map(|(h, v)| ValOp::Nested(h, v)),
    ]
}

fn run_value(a: &Value<f64>, b: &Value<f64>, init: f64, ops: &[ValOp]) {
    let mut m = init;
    let pick = |h: bool| if h { a } else { b };
    let other = |h: bool| if h { b } else { a };
    for op in ops {
        match *op {
            ValOp::Set(h, v) => {
                pick(h).set(v).unwrap();
                m = v;
            }
            ValOp::Get(h) => assert_eq!(pick(h).get().unwrap().to_bits(), m.to_bits()),
            ValOp::Add(h, d) => {
                m += d;
                assert_eq!(pick(h).update(|x| x + d).unwrap().to_bits(), m.to_bits());
            }
            ValOp::Mul(h, k) => {
                m *= k;
                assert_eq!(pick(h).update(|x| x * k).unwrap().to_bits(), m.to_bits());
            }
            ValOp::Guard(h, k, c) => {
                let g = pick(h).lock().unwrap();
                g.set(g.get() * k + c);
                m = m * k + c;
                assert_eq!(g.get().to_bits(), m.to_bits());
            }
            ValOp::Nested(h, v) => {
                let g = pick(h).lock().unwrap();
                other(h).set(v).unwrap();
                m = v;
                assert_eq!(g.get().to_bits(), v.to_bits());
            }
        }
        assert!(!a.get_lock().is_locked(), "lock left held after {op:?}");
    }
    assert_eq!(a.get().unwrap().to_bits(), m.to_bits());
    assert_eq!(b.get().unwrap().to_bits(), m.to_bits());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn value_anonymous_matches_model(init in finite(), ops in prop::collection::vec(val_op(), 1..40)) {
        let a = Value::new(init).unwrap();
        let b = Value::<f64>::from_fd(a.as_fd().try_clone_to_owned().unwrap()).unwrap();
        run_value(&a, &b, init, &ops);
    }

    #[test]
    fn value_named_matches_model(init in finite(), ops in prop::collection::vec(val_op(), 1..40)) {
        let name = ShmName::new("propv");
        {
            let a = Value::create(&name, init).unwrap();
            let b = Value::<f64>::open(&name).unwrap();
            run_value(&a, &b, init, &ops);
        }
        common::assert_gone(&name);
    }
}

// ---------------------------------------------------------------------------
// Array<CChar> (and RawArray<CChar>): value() / raw() / set_value()
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum StrOp {
    SetValue(bool, Vec<u8>),
    SetByte(bool, usize, u8),
    Value(bool),
    Raw(bool),
}

fn str_op() -> impl Strategy<Value = StrOp> {
    let h = any::<bool>();
    // Bytes biased towards NUL so that value() often stops early.
    let byte = prop_oneof![Just(0u8), any::<u8>(), any::<u8>()];
    prop_oneof![
        (h, prop::collection::vec(byte.clone(), 0..12)).prop_map(|(h, b)| StrOp::SetValue(h, b)),
        (h, any::<usize>(), byte).prop_map(|(h, i, b)| StrOp::SetByte(h, i, b)),
        h.prop_map(StrOp::Value),
        h.prop_map(StrOp::Raw),
    ]
}

fn up_to_nul(b: &[u8]) -> Vec<u8> {
    b.iter().copied().take_while(|&c| c != 0).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn char_array_value_and_raw_match_model(
        len in 1usize..10,
        named in any::<bool>(),
        ops in prop::collection::vec(str_op(), 1..30),
    ) {
        let name = ShmName::new("props");
        {
            let a = if named {
                Array::<CChar>::create(&name, &vec![CChar(0); len]).unwrap()
            } else {
                Array::<CChar>::zeroed(len).unwrap()
            };
            let b = if named {
                Array::<CChar>::open_len(&name, len).unwrap()
            } else {
                Array::<CChar>::from_fd(a.as_fd().try_clone_to_owned().unwrap()).unwrap()
            };
            // A raw mirror, written the same way, checked the same way.
            let r = RawArray::<CChar>::zeroed(len).unwrap();
            let mut model = vec![0u8; len];
            for op in &ops {
                let x = |h: bool| if h { &a } else { &b };
                match op {
                    StrOp::SetValue(h, bytes) => {
                        let res = x(*h).lock().unwrap().set_value(bytes);
                        if bytes.len() > len {
                            prop_assert!(res.is_err());
                        } else {
                            res.unwrap();
                            model[..bytes.len()].copy_from_slice(bytes);
                            if bytes.len() < len {
                                model[bytes.len()] = 0;
                            }
                            for (i, &c) in model.iter().enumerate() {
                                r.set(i, CChar(c));
                            }
                        }
                    }
                    StrOp::SetByte(h, i, c) => {
                        let i = idx(*i, len);
                        x(*h).set(i, CChar(*c)).unwrap();
                        r.set(i, CChar(*c));
                        model[i] = *c;
                    }
                    StrOp::Value(h) => {
                        prop_assert_eq!(x(*h).value().unwrap(), up_to_nul(&model));
                        prop_assert_eq!(x(*h).lock().unwrap().value(), up_to_nul(&model));
                        prop_assert_eq!(r.value(), up_to_nul(&model));
                    }
                    StrOp::Raw(h) => {
                        prop_assert_eq!(x(*h).raw().unwrap(), model.clone());
                        prop_assert_eq!(x(*h).lock().unwrap().raw(), model.clone());
                        prop_assert_eq!(r.raw(), model.clone());
                    }
                }
            }
            prop_assert_eq!(a.raw().unwrap(), model.clone());
            prop_assert_eq!(r.raw(), model);
        }
        common::assert_gone(&name);
    }
}

// ---------------------------------------------------------------------------
// RawArray<i32>
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum RawOp {
    Set(bool, usize, i32),
    Get(bool, usize),
    Write(bool, usize, Vec<i32>),
    Read(bool, usize, usize),
    ToVec(bool),
    Iter(bool),
}

fn raw_op() -> impl Strategy<Value = RawOp> {
    let h = any::<bool>();
    let i = any::<usize>();
    prop_oneof![
        (h, i, any::<i32>()).prop_map(|(h, i, v)| RawOp::Set(h, i, v)),
        (h, i).prop_map(|(h, i)| RawOp::Get(h, i)),
        (h, i, prop::collection::vec(any::<i32>(), 0..8))
            .prop_map(|(h, s, d)| RawOp::Write(h, s, d)),
        (h, i, i).prop_map(|(h, s, n)| RawOp::Read(h, s, n)),
        h.prop_map(RawOp::ToVec),
        h.prop_map(RawOp::Iter),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn raw_array_matches_vec_model(
        init in prop::collection::vec(any::<i32>(), 1..16),
        named in any::<bool>(),
        ops in prop::collection::vec(raw_op(), 1..40),
    ) {
        let name = ShmName::new("propr");
        {
            let a = if named {
                RawArray::create(&name, &init).unwrap()
            } else {
                RawArray::from_slice(&init).unwrap()
            };
            let b = if named {
                RawArray::<i32>::open_len(&name, init.len()).unwrap()
            } else {
                RawArray::<i32>::from_fd(a.as_fd().try_clone_to_owned().unwrap()).unwrap()
            };
            let len = init.len();
            prop_assert_eq!(a.len(), len);
            prop_assert_eq!(b.len(), len);
            let mut model = init.clone();
            for op in &ops {
                let x = |h: bool| if h { &a } else { &b };
                match op {
                    RawOp::Set(h, i, v) => {
                        let i = idx(*i, len);
                        x(*h).set(i, *v);
                        model[i] = *v;
                    }
                    RawOp::Get(h, i) => {
                        let i = idx(*i, len);
                        prop_assert_eq!(x(*h).get(i), model[i]);
                    }
                    RawOp::Write(h, s, d) => {
                        let (s, n) = range(*s, d.len(), len);
                        x(*h).write(s, &d[..n]);
                        model[s..s + n].copy_from_slice(&d[..n]);
                    }
                    RawOp::Read(h, s, n) => {
                        let (s, n) = range(*s, *n, len);
                        let mut out = vec![0; n];
                        x(*h).read(s, &mut out);
                        prop_assert_eq!(&out[..], &model[s..s + n]);
                    }
                    RawOp::ToVec(h) => prop_assert_eq!(x(*h).to_vec(), model.clone()),
                    RawOp::Iter(h) => {
                        prop_assert_eq!(x(*h).iter().collect::<Vec<_>>(), model.clone());
                    }
                }
            }
            prop_assert_eq!(a.to_vec(), model.clone());
            prop_assert_eq!(b.to_vec(), model);
        }
        common::assert_gone(&name);
    }
}
