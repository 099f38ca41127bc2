//! The objects a trial's holder dies holding: a `Value<i64>` or an
//! `Array<i64>`, seen through one interface.

use shmsync::{Array, ArrayGuard, RLock, Value, ValueGuard};

use crate::checks::{check_array_not_recoverable, check_array_ok, check_value_after};

/// Elements `base, base + 1, …` (`len` of them): what the scenarios write
/// into an object (a value has one element).
pub(crate) fn elements(base: i64, len: usize) -> Vec<i64> {
    (0..len as i64).map(|i| base + i).collect()
}

/// A held guard of a `Value<i64>` or an `Array<i64>`, its data seen as
/// [`elements`].
pub(crate) trait Held {
    fn data(&self) -> Vec<i64>;
    /// Writes `elements(base, len)`.
    fn fill(&self, base: i64);
    fn mark_consistent(&self);
}

impl Held for ValueGuard<'_, i64> {
    fn data(&self) -> Vec<i64> {
        vec![self.get()]
    }
    fn fill(&self, base: i64) {
        self.set(base);
    }
    fn mark_consistent(&self) {
        ValueGuard::mark_consistent(self);
    }
}

impl Held for ArrayGuard<'_, i64> {
    fn data(&self) -> Vec<i64> {
        self.to_vec()
    }
    fn fill(&self, base: i64) {
        for i in 0..self.len() {
            self.set(i, base + i as i64);
        }
    }
    fn mark_consistent(&self) {
        ArrayGuard::mark_consistent(self);
    }
}

/// Length of the arrays in [`Obj`].
pub(crate) const ARR_LEN: usize = 3;

/// A trial's object, by its kind: `value` or `array` (of [`ARR_LEN`]).
pub(crate) enum Obj {
    V(Value<i64>),
    A(Array<i64>),
}

impl Obj {
    /// A new named object holding -1 everywhere.
    pub(crate) fn create(kind: &str, name: &str) -> Obj {
        match kind {
            "value" => Obj::V(Value::create(name, -1).unwrap()),
            "array" => Obj::A(Array::create(name, &[-1; ARR_LEN]).unwrap()),
            k => panic!("unknown kind {k}"),
        }
    }

    pub(crate) fn open(kind: &str, name: &str) -> Obj {
        match kind {
            "value" => Obj::V(Value::open(name).unwrap()),
            "array" => Obj::A(Array::open(name).unwrap()),
            k => panic!("unknown kind {k}"),
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Obj::V(_) => 1,
            Obj::A(a) => a.len(),
        }
    }

    pub(crate) fn get_lock(&self) -> &RLock {
        match self {
            Obj::V(v) => v.get_lock(),
            Obj::A(a) => a.get_lock(),
        }
    }

    /// `lock()`, which must succeed.
    pub(crate) fn lock(&self) -> Box<dyn Held + '_> {
        match self {
            Obj::V(v) => Box::new(v.lock().unwrap()),
            Obj::A(a) => Box::new(a.lock().unwrap()),
        }
    }

    /// This process's view after a trial: repaired to `elements(base, len)`
    /// and consistent, or not recoverable.
    pub(crate) fn check_after(&self, consistent: bool, base: i64) {
        match self {
            Obj::V(v) => check_value_after(v, consistent, base),
            Obj::A(a) if consistent => check_array_ok(a, &elements(base, a.len()), true),
            Obj::A(a) => check_array_not_recoverable(a),
        }
    }
}
