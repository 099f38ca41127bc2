#![allow(unsafe_code)] // `MappedAtomic`: core atomics overlaid on mapped bytes (`from_ptr`)
//! Read-modify-write logic of the atomic cells, written once and generic
//! over the word.
//!
//! [`crate::AtomicValue`] and [`crate::AtomicArray`] overlay `core` atomics
//! on the mapped page (`AtomicU64::from_ptr` and friends); `loom-tests/`
//! runs the *same* functions on loom's atomics, which have another
//! representation and can never be overlaid on mapped bytes (`docs/STYLE.md`).
//! What is shared is everything above the single hardware operation:
//!
//! - [`fetch_update`], the one compare-and-swap loop of the crate, with
//!   std's contract;
//! - [`Repr`]: how a value type maps to its word (integers are their own
//!   word, floats are their bit pattern, `bool` is a byte read as
//!   `byte != 0`), and the bitwise `compare_exchange` that follows from it;
//! - [`Arith`] (`fetch_add/sub/max/min`) and [`Bitwise`]
//!   (`fetch_and/or/xor/nand`): one hardware RMW for integers, a CAS loop on
//!   the bit pattern for floats and for the `bool` operations whose result
//!   depends on a normalised value.
//!
//! # Float semantics
//!
//! A float cell holds a bit pattern. `compare_exchange` compares **bits**,
//! not values: `-0.0` does not match `0.0`, and a NaN matches a NaN with the
//! same payload only. That is the only comparison under which the usual
//! `current = found` retry loop terminates. `fetch_add`/`fetch_sub` store
//! `old + v`/`old - v` as computed by Rust (so, as for any Rust float
//! arithmetic, a NaN result has an unspecified sign and payload);
//! `fetch_max`/`fetch_min` store [`f64::max`]/[`f64::min`] of the old value
//! and the operand (a NaN operand leaves the cell unchanged, a NaN cell
//! takes the operand; which zero `max(0.0, -0.0)` gives is unspecified).
//!
//! # Orderings of the CAS loops
//!
//! An RMW built from a loop takes one ordering `order`, like std's
//! `fetch_add`. The successful `compare_exchange_weak` carries `order`; the
//! loads that only feed the next attempt (the first load and each failed
//! exchange) use [`failure_order`]`(order)`: `order` without its release
//! part, as std requires of a failure ordering. The value returned is the
//! one the successful exchange replaced, so it is read with `order`'s
//! acquire part, exactly as with a hardware RMW.
//!
//! # Seeded bugs
//!
//! The loom models in `loom-tests/tests/atomic_ops.rs` show that they catch
//! known bugs. Bugs in what the word does (an ordering weakened, a
//! non-atomic exchange) are seeded outside this code, by the models' word
//! (`loom-tests/src/lib.rs`, one cargo feature each, as for the lock). Bugs
//! in the logic *above* the word cannot be seeded that way, and are
//! compiled in here with `RUSTFLAGS='--cfg loom --cfg
//! shmsync_atomic_bug="NAME"'`, `NAME` one of `stale_new` and `no_retry`
//! (described at [`fetch_update`]) or `bool_bytes` (`bool`'s
//! `compare_exchange` compares bytes, not truth values). Never set it
//! otherwise: each is compiled out unless named.

use core::fmt::Debug;

use super::word::AtomicWord;
use core::sync::atomic::Ordering::{self, AcqRel, Acquire, Relaxed, Release, SeqCst};

/// A word that can be overlaid on mapped memory: one of `core`'s atomics.
///
/// # Safety
/// Implementors have the size and alignment of `Self::Int` (or a larger
/// alignment that [`MappedAtomic::from_ptr`] callers check) and are valid
/// for every bit pattern, so that any bytes a peer process wrote are a valid
/// value.
pub unsafe trait MappedAtomic: AtomicWord + Sync {
    /// `AtomicXX::from_ptr`.
    ///
    /// # Safety
    /// As for `AtomicU64::from_ptr`:
    /// - `p` is aligned to `align_of::<Self>()` and valid for reads and
    ///   writes of `size_of::<Self>()` bytes for all of `'a`;
    /// - during `'a` those bytes are accessed only atomically, and only
    ///   with this width (no mixed-size access).
    unsafe fn from_ptr<'a>(p: *mut Self::Int) -> &'a Self;
}

macro_rules! core_atomic {
    ($($atomic:ident($int:ty)),* $(,)?) => {$(
        impl AtomicWord for core::sync::atomic::$atomic {
            type Int = $int;
            #[inline]
            fn new(v: $int) -> Self {
                Self::new(v)
            }
            #[inline]
            fn load(&self, order: Ordering) -> $int {
                self.load(order)
            }
            #[inline]
            fn store(&self, v: $int, order: Ordering) {
                self.store(v, order);
            }
            #[inline]
            fn swap(&self, v: $int, order: Ordering) -> $int {
                self.swap(v, order)
            }
            #[inline]
            fn compare_exchange(
                &self,
                current: $int,
                new: $int,
                success: Ordering,
                failure: Ordering,
            ) -> Result<$int, $int> {
                self.compare_exchange(current, new, success, failure)
            }
            #[inline]
            fn compare_exchange_weak(
                &self,
                current: $int,
                new: $int,
                success: Ordering,
                failure: Ordering,
            ) -> Result<$int, $int> {
                self.compare_exchange_weak(current, new, success, failure)
            }
            #[inline]
            fn fetch_add(&self, v: $int, order: Ordering) -> $int {
                self.fetch_add(v, order)
            }
            #[inline]
            fn fetch_sub(&self, v: $int, order: Ordering) -> $int {
                self.fetch_sub(v, order)
            }
            #[inline]
            fn fetch_and(&self, v: $int, order: Ordering) -> $int {
                self.fetch_and(v, order)
            }
            #[inline]
            fn fetch_or(&self, v: $int, order: Ordering) -> $int {
                self.fetch_or(v, order)
            }
            #[inline]
            fn fetch_xor(&self, v: $int, order: Ordering) -> $int {
                self.fetch_xor(v, order)
            }
            #[inline]
            fn fetch_nand(&self, v: $int, order: Ordering) -> $int {
                self.fetch_nand(v, order)
            }
            #[inline]
            fn fetch_max(&self, v: $int, order: Ordering) -> $int {
                self.fetch_max(v, order)
            }
            #[inline]
            fn fetch_min(&self, v: $int, order: Ordering) -> $int {
                self.fetch_min(v, order)
            }
        }

        // SAFETY: `core`'s atomic integers have the size of their integer,
        // an alignment equal to their size, and every bit pattern valid.
        unsafe impl MappedAtomic for core::sync::atomic::$atomic {
            #[inline]
            unsafe fn from_ptr<'a>(p: *mut $int) -> &'a Self {
                // SAFETY: forwarded to the caller (the trait's contract is
                // `from_ptr`'s).
                unsafe { Self::from_ptr(p) }
            }
        }
    )*};
}

core_atomic! {
    AtomicI8(i8), AtomicU8(u8), AtomicI16(i16), AtomicU16(u16),
    AtomicI32(i32), AtomicU32(u32), AtomicI64(i64), AtomicU64(u64),
    AtomicIsize(isize), AtomicUsize(usize),
}

/// The ordering of the loads of a CAS loop whose exchange uses `success`:
/// `success` without its release part (`Release → Relaxed`,
/// `AcqRel → Acquire`, others unchanged), as std derives the failure
/// ordering of `compare_exchange` from the success one.
#[inline]
#[must_use]
pub const fn failure_order(success: Ordering) -> Ordering {
    match success {
        Relaxed | Release => Relaxed,
        Acquire | AcqRel => Acquire,
        _ => SeqCst,
    }
}

/// std's `fetch_update`: applies `f` to the current value until a
/// `compare_exchange_weak` installs its result, or `f` returns `None`.
///
/// Loads (the first one and the value found by each failed exchange) use
/// `fetch`; the successful exchange uses `set`. Returns `Ok(previous)` when
/// a value was stored, `Err(previous)` when `f` declined. `f` may run
/// several times, on different values, when other threads or processes
/// write in between.
///
/// This is the only CAS loop of the crate: every float operation and the
/// `bool` operations that need one go through it. Two of the seeded bugs
/// (`cfg(shmsync_atomic_bug = "...")`, module docs) live here:
/// - `stale_new`: the value to store is computed once and reused after a
///   failed exchange, although it was computed from a stale value;
/// - `no_retry`: a failed exchange ends the loop (`Err(found)`).
///
/// # Errors
/// `Err(previous)` when `f` returned `None`.
///
/// # Panics
/// As std: if `fetch` is `Release` or `AcqRel` (by the underlying atomic).
#[inline]
pub fn fetch_update<W, F>(w: &W, set: Ordering, fetch: Ordering, mut f: F) -> Result<W::Int, W::Int>
where
    W: AtomicWord + ?Sized,
    F: FnMut(W::Int) -> Option<W::Int>,
{
    let mut prev = w.load(fetch);
    let mut stale: Option<W::Int> = None;
    loop {
        let next = match stale {
            Some(n) if cfg!(shmsync_atomic_bug = "stale_new") => n,
            _ => match f(prev) {
                Some(n) => n,
                None => return Err(prev),
            },
        };
        match w.compare_exchange_weak(prev, next, set, fetch) {
            Ok(p) => return Ok(p),
            Err(found) => {
                if cfg!(shmsync_atomic_bug = "no_retry") {
                    return Err(found);
                }
                stale = Some(next);
                prev = found;
            }
        }
    }
}

/// An RMW that always stores `f(old)`, with one ordering (the loads use
/// [`failure_order`]`(order)`). Returns the previous value.
#[inline]
pub fn update<W, F>(w: &W, order: Ordering, mut f: F) -> W::Int
where
    W: AtomicWord + ?Sized,
    F: FnMut(W::Int) -> W::Int,
{
    match fetch_update(w, order, failure_order(order), |x| Some(f(x))) {
        Ok(prev) | Err(prev) => prev,
    }
}

/// A value type held in an atomic word of type `Self::Int`.
///
/// The default methods treat the value as its word: `compare_exchange`
/// compares words (for floats: bit patterns). `bool` overrides them to
/// compare truth values, since a peer may have stored any non-zero byte.
pub trait Repr: Copy {
    /// The integer of the word.
    type Int: Copy + Eq + Debug;
    /// The word that stores `self`.
    fn to_int(self) -> Self::Int;
    /// The value a word holds. Total: every word is some value.
    fn from_int(i: Self::Int) -> Self;

    /// `load`.
    #[inline]
    fn load<W: AtomicWord<Int = Self::Int> + ?Sized>(w: &W, order: Ordering) -> Self {
        Self::from_int(w.load(order))
    }
    /// `store`.
    #[inline]
    fn store<W: AtomicWord<Int = Self::Int> + ?Sized>(w: &W, v: Self, order: Ordering) {
        w.store(v.to_int(), order);
    }
    /// `swap`.
    #[inline]
    fn swap<W: AtomicWord<Int = Self::Int> + ?Sized>(w: &W, v: Self, order: Ordering) -> Self {
        Self::from_int(w.swap(v.to_int(), order))
    }
    /// `compare_exchange`, comparing words.
    ///
    /// # Errors
    /// The value found, when its word was not `current`'s.
    #[inline]
    fn compare_exchange<W: AtomicWord<Int = Self::Int> + ?Sized>(
        w: &W,
        current: Self,
        new: Self,
        success: Ordering,
        failure: Ordering,
    ) -> Result<Self, Self> {
        w.compare_exchange(current.to_int(), new.to_int(), success, failure)
            .map(Self::from_int)
            .map_err(Self::from_int)
    }
    /// `compare_exchange_weak`, comparing words.
    ///
    /// # Errors
    /// The value found, when its word was not `current`'s, or spuriously.
    #[inline]
    fn compare_exchange_weak<W: AtomicWord<Int = Self::Int> + ?Sized>(
        w: &W,
        current: Self,
        new: Self,
        success: Ordering,
        failure: Ordering,
    ) -> Result<Self, Self> {
        w.compare_exchange_weak(current.to_int(), new.to_int(), success, failure)
            .map(Self::from_int)
            .map_err(Self::from_int)
    }
    /// std's `fetch_update` (see [`fetch_update`]). `f` sees values; the
    /// exchange compares the word that was read, so it works for every
    /// representation.
    ///
    /// # Errors
    /// `Err(previous)` when `f` returned `None`.
    #[inline]
    fn fetch_update<W, F>(w: &W, set: Ordering, fetch: Ordering, mut f: F) -> Result<Self, Self>
    where
        W: AtomicWord<Int = Self::Int> + ?Sized,
        F: FnMut(Self) -> Option<Self>,
    {
        fetch_update(w, set, fetch, |i| f(Self::from_int(i)).map(Self::to_int))
            .map(Self::from_int)
            .map_err(Self::from_int)
    }
}

/// `fetch_add`, `fetch_sub`, `fetch_max`, `fetch_min`: integers and floats.
pub trait Arith: Repr {
    /// `fetch_add`: wrapping for integers, `old + v` for floats.
    fn fetch_add<W: AtomicWord<Int = Self::Int> + ?Sized>(w: &W, v: Self, order: Ordering) -> Self;
    /// `fetch_sub`: wrapping for integers, `old - v` for floats.
    fn fetch_sub<W: AtomicWord<Int = Self::Int> + ?Sized>(w: &W, v: Self, order: Ordering) -> Self;
    /// `fetch_max`: `Ord::max` for integers, `f64::max` for floats.
    fn fetch_max<W: AtomicWord<Int = Self::Int> + ?Sized>(w: &W, v: Self, order: Ordering) -> Self;
    /// `fetch_min`: `Ord::min` for integers, `f64::min` for floats.
    fn fetch_min<W: AtomicWord<Int = Self::Int> + ?Sized>(w: &W, v: Self, order: Ordering) -> Self;
}

/// `fetch_and`, `fetch_or`, `fetch_xor`, `fetch_nand`: integers and `bool`.
pub trait Bitwise: Repr {
    /// `fetch_and`.
    fn fetch_and<W: AtomicWord<Int = Self::Int> + ?Sized>(w: &W, v: Self, order: Ordering) -> Self;
    /// `fetch_or`.
    fn fetch_or<W: AtomicWord<Int = Self::Int> + ?Sized>(w: &W, v: Self, order: Ordering) -> Self;
    /// `fetch_xor`.
    fn fetch_xor<W: AtomicWord<Int = Self::Int> + ?Sized>(w: &W, v: Self, order: Ordering) -> Self;
    /// `fetch_nand`: stores `!(old & v)`.
    fn fetch_nand<W: AtomicWord<Int = Self::Int> + ?Sized>(w: &W, v: Self, order: Ordering)
        -> Self;
}

macro_rules! int_repr {
    ($($t:ty),* $(,)?) => {$(
        impl Repr for $t {
            type Int = $t;
            #[inline]
            fn to_int(self) -> $t {
                self
            }
            #[inline]
            fn from_int(i: $t) -> $t {
                i
            }
        }

        // Integers: one hardware RMW each (`lock xadd`, or a CAS loop the
        // compiler emits itself where the ISA has no such instruction).
        impl Arith for $t {
            #[inline]
            fn fetch_add<W: AtomicWord<Int = $t> + ?Sized>(w: &W, v: $t, order: Ordering) -> $t {
                w.fetch_add(v, order)
            }
            #[inline]
            fn fetch_sub<W: AtomicWord<Int = $t> + ?Sized>(w: &W, v: $t, order: Ordering) -> $t {
                w.fetch_sub(v, order)
            }
            #[inline]
            fn fetch_max<W: AtomicWord<Int = $t> + ?Sized>(w: &W, v: $t, order: Ordering) -> $t {
                w.fetch_max(v, order)
            }
            #[inline]
            fn fetch_min<W: AtomicWord<Int = $t> + ?Sized>(w: &W, v: $t, order: Ordering) -> $t {
                w.fetch_min(v, order)
            }
        }

        impl Bitwise for $t {
            #[inline]
            fn fetch_and<W: AtomicWord<Int = $t> + ?Sized>(w: &W, v: $t, order: Ordering) -> $t {
                w.fetch_and(v, order)
            }
            #[inline]
            fn fetch_or<W: AtomicWord<Int = $t> + ?Sized>(w: &W, v: $t, order: Ordering) -> $t {
                w.fetch_or(v, order)
            }
            #[inline]
            fn fetch_xor<W: AtomicWord<Int = $t> + ?Sized>(w: &W, v: $t, order: Ordering) -> $t {
                w.fetch_xor(v, order)
            }
            #[inline]
            fn fetch_nand<W: AtomicWord<Int = $t> + ?Sized>(w: &W, v: $t, order: Ordering) -> $t {
                w.fetch_nand(v, order)
            }
        }
    )*};
}

int_repr!(i8, u8, i16, u16, i32, u32, i64, u64, isize, usize);

macro_rules! float_repr {
    ($($t:ty => $bits:ty),* $(,)?) => {$(
        impl Repr for $t {
            type Int = $bits;
            #[inline]
            fn to_int(self) -> $bits {
                self.to_bits()
            }
            #[inline]
            fn from_int(i: $bits) -> $t {
                <$t>::from_bits(i)
            }
        }

        // Floats: CAS loops on the bit pattern (module docs).
        impl Arith for $t {
            #[inline]
            fn fetch_add<W: AtomicWord<Int = $bits> + ?Sized>(w: &W, v: $t, order: Ordering) -> $t {
                <$t>::from_bits(update(w, order, |b| (<$t>::from_bits(b) + v).to_bits()))
            }
            #[inline]
            fn fetch_sub<W: AtomicWord<Int = $bits> + ?Sized>(w: &W, v: $t, order: Ordering) -> $t {
                <$t>::from_bits(update(w, order, |b| (<$t>::from_bits(b) - v).to_bits()))
            }
            #[inline]
            fn fetch_max<W: AtomicWord<Int = $bits> + ?Sized>(w: &W, v: $t, order: Ordering) -> $t {
                <$t>::from_bits(update(w, order, |b| <$t>::from_bits(b).max(v).to_bits()))
            }
            #[inline]
            fn fetch_min<W: AtomicWord<Int = $bits> + ?Sized>(w: &W, v: $t, order: Ordering) -> $t {
                <$t>::from_bits(update(w, order, |b| <$t>::from_bits(b).min(v).to_bits()))
            }
        }
    )*};
}

float_repr!(f32 => u32, f64 => u64);

/// `bool` is one byte, written as 0 or 1 and read as `byte != 0`.
///
/// A peer process can store any byte in the cell (2, 0xff, ...). Reading it
/// is never undefined behaviour (the byte is loaded as a `u8`, never as a
/// `bool`), and every operation acts on the truth value `byte != 0`:
/// `compare_exchange(true, ..)` succeeds on any non-zero byte, `fetch_xor`
/// and `fetch_nand` compute from the truth value. Operations that store
/// write 0 or 1, except `fetch_and(true)` and `fetch_or(false)`, which keep
/// the byte (and so the truth value) as it is.
impl Repr for bool {
    type Int = u8;
    #[inline]
    fn to_int(self) -> u8 {
        u8::from(self)
    }
    #[inline]
    fn from_int(i: u8) -> bool {
        i != 0
    }

    /// Compares truth values: retries with the byte found while it has the
    /// truth value `current` (a peer's non-zero byte other than 1).
    #[inline]
    fn compare_exchange<W: AtomicWord<Int = u8> + ?Sized>(
        w: &W,
        current: bool,
        new: bool,
        success: Ordering,
        failure: Ordering,
    ) -> Result<bool, bool> {
        let mut expected = u8::from(current);
        loop {
            match w.compare_exchange(expected, u8::from(new), success, failure) {
                Ok(_) => return Ok(current),
                Err(found) if (found != 0) == current && !BOOL_BYTES => expected = found,
                Err(found) => return Err(found != 0),
            }
        }
    }

    /// As [`compare_exchange`](Repr::compare_exchange); may fail
    /// spuriously (returning `Err(current)`), but never because the byte
    /// found was another representation of `current`.
    #[inline]
    fn compare_exchange_weak<W: AtomicWord<Int = u8> + ?Sized>(
        w: &W,
        current: bool,
        new: bool,
        success: Ordering,
        failure: Ordering,
    ) -> Result<bool, bool> {
        let mut expected = u8::from(current);
        loop {
            match w.compare_exchange_weak(expected, u8::from(new), success, failure) {
                Ok(_) => return Ok(current),
                // Another representation of `current`: retry with it.
                Err(found) if found != expected && (found != 0) == current && !BOOL_BYTES => {
                    expected = found;
                }
                Err(found) => return Err(found != 0),
            }
        }
    }
}

/// Seeded bug `bool_bytes`: `bool`'s `compare_exchange` compares bytes.
const BOOL_BYTES: bool = cfg!(shmsync_atomic_bug = "bool_bytes");

impl Bitwise for bool {
    /// `fetch_and(true)` keeps any byte (`x & 0xff`), `fetch_and(false)`
    /// stores 0: correct for every byte, one hardware RMW.
    #[inline]
    fn fetch_and<W: AtomicWord<Int = u8> + ?Sized>(w: &W, v: bool, order: Ordering) -> bool {
        w.fetch_and(if v { u8::MAX } else { 0 }, order) != 0
    }
    /// `x | 1` is non-zero and `x | 0` is `x`: correct for every byte.
    #[inline]
    fn fetch_or<W: AtomicWord<Int = u8> + ?Sized>(w: &W, v: bool, order: Ordering) -> bool {
        w.fetch_or(u8::from(v), order) != 0
    }
    /// A byte XOR would keep 2 non-zero: a CAS loop on the truth value.
    #[inline]
    fn fetch_xor<W: AtomicWord<Int = u8> + ?Sized>(w: &W, v: bool, order: Ordering) -> bool {
        update(w, order, |b| u8::from((b != 0) ^ v)) != 0
    }
    /// As `fetch_xor`: a CAS loop storing `!(old && v)`.
    #[inline]
    fn fetch_nand<W: AtomicWord<Int = u8> + ?Sized>(w: &W, v: bool, order: Ordering) -> bool {
        update(w, order, |b| u8::from(!((b != 0) && v))) != 0
    }
}

#[cfg(test)]
mod tests {
    //! Heap tests of the generic logic with `core` atomics; they run under
    //! Miri too (`cargo +nightly miri test --lib atomic`), which checks the
    //! loops for data races and the orderings for validity.

    use super::*;
    use core::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, AtomicU8};
    use std::sync::Arc;
    use std::thread;

    const ORDERS: [Ordering; 5] = [Relaxed, Release, Acquire, AcqRel, SeqCst];

    /// Miri is slow: fewer iterations there, same code.
    const ITERS: u32 = if cfg!(miri) { 50 } else { 20_000 };

    #[test]
    fn failure_order_drops_release() {
        assert_eq!(failure_order(Relaxed), Relaxed);
        assert_eq!(failure_order(Release), Relaxed);
        assert_eq!(failure_order(Acquire), Acquire);
        assert_eq!(failure_order(AcqRel), Acquire);
        assert_eq!(failure_order(SeqCst), SeqCst);
    }

    #[test]
    fn float_rmw_every_ordering() {
        for o in ORDERS {
            let w = AtomicU64::new(1.5f64.to_bits());
            assert_eq!(f64::fetch_add(&w, 2.0, o), 1.5);
            assert_eq!(f64::fetch_sub(&w, 0.5, o), 3.5);
            assert_eq!(f64::fetch_max(&w, 7.0, o), 3.0);
            assert_eq!(f64::fetch_min(&w, -1.0, o), 7.0);
            assert_eq!(f64::load(&w, Relaxed), -1.0);
            let w = AtomicU32::new(1.5f32.to_bits());
            assert_eq!(f32::fetch_add(&w, 2.0, o), 1.5);
            assert_eq!(f32::load(&w, Relaxed), 3.5);
        }
    }

    #[test]
    fn float_compare_exchange_is_bitwise() {
        let w = AtomicU64::new((-0.0f64).to_bits());
        // 0.0 == -0.0 as values, but not as bits.
        let r = f64::compare_exchange(&w, 0.0, 1.0, SeqCst, SeqCst);
        assert_eq!(r.map_err(f64::to_bits), Err((-0.0f64).to_bits()));
        assert_eq!(
            f64::compare_exchange(&w, -0.0, 1.0, SeqCst, SeqCst),
            Ok(-0.0)
        );

        let nan = f64::from_bits(0x7ff8_0000_0000_0001);
        let other_nan = f64::from_bits(0x7ff8_0000_0000_0002);
        f64::store(&w, nan, Relaxed);
        // A NaN with another payload does not match; the same payload does.
        let r = f64::compare_exchange(&w, other_nan, 2.0, SeqCst, Relaxed);
        assert_eq!(r.map_err(f64::to_bits), Err(nan.to_bits()));
        assert_eq!(
            f64::compare_exchange(&w, nan, 2.0, SeqCst, Relaxed).map(f64::to_bits),
            Ok(nan.to_bits())
        );
        assert_eq!(f64::load(&w, Relaxed), 2.0);
    }

    #[test]
    fn float_max_min_follow_std() {
        let cases = [
            (1.0, 2.0),
            (2.0, 1.0),
            (f64::NAN, 3.0),
            (3.0, f64::NAN),
            (f64::INFINITY, 1.0),
            (f64::NEG_INFINITY, 1.0),
            (-0.0, 0.0),
            (0.0, -0.0),
        ];
        // `f64::max(-0.0, 0.0)` may be either zero (Miri picks one at
        // random), so zeros compare as values; everything else by bits.
        let same = |a: f64, b: f64| {
            if a == 0.0 && b == 0.0 {
                true
            } else {
                a.to_bits() == b.to_bits()
            }
        };
        for (old, v) in cases {
            let w = AtomicU64::new(f64::to_bits(old));
            assert_eq!(f64::fetch_max(&w, v, SeqCst).to_bits(), old.to_bits());
            assert!(same(f64::load(&w, SeqCst), old.max(v)), "max({old}, {v})");
            let w = AtomicU64::new(f64::to_bits(old));
            assert_eq!(f64::fetch_min(&w, v, SeqCst).to_bits(), old.to_bits());
            assert!(same(f64::load(&w, SeqCst), old.min(v)), "min({old}, {v})");
        }
    }

    #[test]
    fn fetch_update_contract() {
        let w = AtomicI64::new(5);
        assert_eq!(i64::fetch_update(&w, SeqCst, SeqCst, |_| None), Err(5));
        assert_eq!(
            i64::fetch_update(&w, SeqCst, SeqCst, |x| Some(x * 3)),
            Ok(5)
        );
        assert_eq!(w.load(Relaxed), 15);
        // `f` sees the float value, the exchange compares bits.
        let w = AtomicU64::new((-0.0f64).to_bits());
        let r = f64::fetch_update(&w, AcqRel, Acquire, |x| Some(x + 1.0));
        assert_eq!(r.map(f64::to_bits), Ok((-0.0f64).to_bits()));
        assert_eq!(f64::load(&w, Relaxed), 1.0);
    }

    #[test]
    fn bool_reads_any_nonzero_byte_as_true() {
        for byte in [2u8, 0x80, 0xff] {
            let w = AtomicU8::new(byte);
            assert!(bool::load(&w, Relaxed));
            // compare_exchange compares truth values, strong and weak.
            assert_eq!(
                bool::compare_exchange(&w, false, false, SeqCst, SeqCst),
                Err(true)
            );
            assert_eq!(
                bool::compare_exchange(&w, true, false, SeqCst, SeqCst),
                Ok(true)
            );
            assert_eq!(w.load(Relaxed), 0);
            w.store(byte, Relaxed);
            let mut r = bool::compare_exchange_weak(&w, true, false, SeqCst, Relaxed);
            while r == Err(true) {
                // Only spurious failures may repeat; the byte is still `byte`.
                r = bool::compare_exchange_weak(&w, true, false, SeqCst, Relaxed);
            }
            assert_eq!(r, Ok(true));
            assert_eq!(w.load(Relaxed), 0);

            w.store(byte, Relaxed);
            assert!(bool::fetch_and(&w, true, SeqCst));
            assert_eq!(w.load(Relaxed), byte, "fetch_and(true) keeps the byte");
            assert!(bool::fetch_or(&w, false, SeqCst));
            assert_eq!(w.load(Relaxed), byte, "fetch_or(false) keeps the byte");
            assert!(bool::fetch_xor(&w, true, SeqCst));
            assert_eq!(w.load(Relaxed), 0, "xor on the truth value");
            w.store(byte, Relaxed);
            assert!(bool::fetch_nand(&w, true, SeqCst));
            assert_eq!(w.load(Relaxed), 0);
            w.store(byte, Relaxed);
            assert!(bool::fetch_nand(&w, false, SeqCst));
            assert_eq!(w.load(Relaxed), 1);
            w.store(byte, Relaxed);
            assert!(bool::fetch_and(&w, false, SeqCst));
            assert_eq!(w.load(Relaxed), 0);
            w.store(byte, Relaxed);
            assert!(bool::swap(&w, false, SeqCst));
            assert!(!bool::fetch_update(&w, SeqCst, SeqCst, |b| Some(!b)).unwrap());
            assert_eq!(w.load(Relaxed), 1);
        }
    }

    #[test]
    fn bool_ops_match_std_on_normal_bytes() {
        use core::sync::atomic::AtomicBool;
        type Op = fn(&AtomicU8, bool) -> bool;
        type StdOp = fn(&AtomicBool, bool) -> bool;
        let ours: [Op; 4] = [
            |w, v| bool::fetch_and(w, v, SeqCst),
            |w, v| bool::fetch_or(w, v, SeqCst),
            |w, v| bool::fetch_xor(w, v, SeqCst),
            |w, v| bool::fetch_nand(w, v, SeqCst),
        ];
        let std: [StdOp; 4] = [
            |w, v| w.fetch_and(v, SeqCst),
            |w, v| w.fetch_or(v, SeqCst),
            |w, v| w.fetch_xor(v, SeqCst),
            |w, v| w.fetch_nand(v, SeqCst),
        ];
        for (op, sop) in ours.iter().zip(std) {
            for old in [false, true] {
                for v in [false, true] {
                    let w = AtomicU8::new(u8::from(old));
                    let s = AtomicBool::new(old);
                    assert_eq!(op(&w, v), sop(&s, v));
                    assert_eq!(w.load(Relaxed), u8::from(s.load(Relaxed)));
                }
            }
        }
    }

    #[test]
    fn integer_ops_delegate() {
        let w = AtomicI64::new(-3);
        assert_eq!(i64::fetch_add(&w, 5, SeqCst), -3);
        assert_eq!(i64::fetch_sub(&w, 1, SeqCst), 2);
        assert_eq!(i64::fetch_max(&w, -10, SeqCst), 1);
        assert_eq!(i64::fetch_min(&w, -10, SeqCst), 1);
        assert_eq!(i64::fetch_or(&w, 0b11, SeqCst), -10);
        assert_eq!(i64::fetch_and(&w, 0b110, SeqCst), -9);
        assert_eq!(i64::fetch_xor(&w, 1, SeqCst), 6);
        assert_eq!(i64::fetch_nand(&w, 0b111, SeqCst), 7);
        assert_eq!(i64::load(&w, SeqCst), !0b111);
        let u = core::sync::atomic::AtomicU8::new(250);
        assert_eq!(u8::fetch_add(&u, 10, SeqCst), 250);
        assert_eq!(u8::load(&u, SeqCst), 4, "integer fetch_add wraps");
    }

    /// Threads racing on one float and one integer cell: no update is lost
    /// (Miri also checks the loop for data races).
    #[test]
    fn concurrent_sums_are_exact() {
        let f = Arc::new(AtomicU64::new(0f64.to_bits()));
        let i = Arc::new(AtomicI64::new(0));
        let b = Arc::new(AtomicU8::new(0));
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let (f, i, b) = (f.clone(), i.clone(), b.clone());
                thread::spawn(move || {
                    for _ in 0..ITERS {
                        f64::fetch_add(&*f, 1.0, Relaxed);
                        i64::fetch_add(&*i, 1, Relaxed);
                        bool::fetch_xor(&*b, true, AcqRel);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(f64::load(&*f, SeqCst), f64::from(3 * ITERS));
        assert_eq!(i.load(SeqCst), i64::from(3 * ITERS));
        // An even number of flips in total (3 * even).
        assert_eq!(b.load(SeqCst), u8::from(ITERS % 2 == 1));
    }

    /// A Release float RMW publishes plain data to an Acquire reader
    /// (Miri reports a data race if the loop loses the ordering).
    #[test]
    fn release_acquire_through_float_rmw() {
        struct Shared {
            flag: AtomicU64,
            data: core::cell::UnsafeCell<u64>,
        }
        // SAFETY: `data` is written before the Release RMW on `flag` and
        // read only after an Acquire load has seen that RMW's value.
        unsafe impl Sync for Shared {}
        let s = Arc::new(Shared {
            flag: AtomicU64::new(0f64.to_bits()),
            data: core::cell::UnsafeCell::new(0),
        });
        let writer = {
            let s = s.clone();
            thread::spawn(move || {
                // SAFETY: nobody reads `data` before the flag is set.
                unsafe { *s.data.get() = 42 };
                f64::fetch_add(&s.flag, 1.0, Release);
            })
        };
        while f64::load(&s.flag, Acquire) == 0.0 {
            std::hint::spin_loop();
        }
        // SAFETY: the Acquire load saw the Release RMW: the write to `data`
        // happens before this read.
        assert_eq!(unsafe { *s.data.get() }, 42);
        writer.join().unwrap();
    }
}
