#![allow(unsafe_code)] // core atomics overlaid on the mapped cells (`from_ptr`)
//! [`AtomicValue`] and [`AtomicArray`]: lock-free cells in shared memory,
//! with the API of `std::sync::atomic`.
//!
//! Python's `v.value += 1` loses updates even with `lock=True`, and CPython
//! has no atomic operations (python/cpython#75835). These objects make a
//! read-modify-write one atomic instruction (integers) or one
//! compare-and-swap loop (floats), across processes, without a lock.
//!
//! # Layout and safety
//!
//! An atomic object is a segment with the common header (kind
//! `AtomicValue`/`AtomicArray`, the element's type code, size and
//! alignment, the stride) followed by the cells. Each cell is naturally
//! aligned (64-bit cells are 8-aligned) and is only ever accessed through
//! `core`'s atomics of its own width (`AtomicU64::from_ptr` on an aligned,
//! in-bounds pointer into the live mapping): whatever another process
//! writes, reading it is never undefined behaviour. No `&AtomicXX` outlives
//! the borrow of the handle that keeps the mapping alive.
//!
//! The read-modify-write logic lives in [`crate::raw::rmw`], generic
//! over the word, so that the loom models of `loom-tests/` check this very
//! code.

use core::fmt;
use core::marker::PhantomData;
use core::mem::{align_of, size_of};
use core::sync::atomic::Ordering::{self, Relaxed};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::error::Result;
use crate::raw::rmw::{MappedAtomic, Repr};
use crate::shm::object::{ElemDesc, Expect, Kind, LockMode, Object, Spec};

/// The stride of a padded [`AtomicArray`]: one cache line per element, so
/// that processes updating neighbouring elements do not share a line.
pub const CACHE_LINE: usize = 64;

/// The element traits' supertraits: sealing, and the raw representation
/// traits (`crate::raw::rmw`), which are not public API and so are named
/// here rather than in the public bounds.
mod sealed {
    use crate::raw::rmw::{Arith, Bitwise, Repr};

    pub trait Sealed: Repr {}
    pub trait Number: Arith {}
    impl<T: Arith> Number for T {}
    pub trait Bits: Bitwise {}
    impl<T: Bitwise> Bits for T {}
}

/// A type that can live in an [`AtomicValue`] or an [`AtomicArray`].
///
/// Sealed: implemented for `i8 u8 i16 u16 i32 u32 i64 u64 isize usize f32
/// f64 bool`, each stored in the `core` atomic of its width (floats in
/// `AtomicU32`/`AtomicU64` as bit patterns, `bool` in an `AtomicU8`).
///
/// | type | code | | type | code | | type | code |
/// |------|------|-|------|------|-|------|------|
/// | `i8` | `b` | | `i32` | `i` | | `isize` | `n` |
/// | `u8` | `B` | | `u32` | `I` | | `usize` | `N` |
/// | `i16` | `h` | | `i64` | `q` | | `f32` | `f` |
/// | `u16` | `H` | | `u64` | `Q` | | `f64` | `d` |
/// | `bool` | `?` | | | | | | |
///
/// The codes are those of Python's `struct` module; `open` checks them, so
/// a cell created as `f64` cannot be opened as `i64`.
///
/// # `bool`
///
/// A `bool` cell is one byte, written as 0 or 1 and **read as
/// `byte != 0`**: a peer that stores 2 into it makes it `true`, never
/// undefined behaviour. Every operation acts on that truth value
/// (`compare_exchange(true, ..)` matches any non-zero byte).
///
/// ```
/// # fn main() -> Result<(), shmsync::Error> {
/// use std::sync::atomic::Ordering::SeqCst;
/// fn bump<T: shmsync::AtomicNumber>(c: shmsync::AtomicRef<'_, T>, by: T) -> T {
///     c.fetch_add(by, SeqCst)
/// }
/// let a = shmsync::AtomicArray::from_slice(&[1.5f64, 2.5])?;
/// let v = shmsync::AtomicValue::new(7u16)?;
/// assert_eq!(bump(a.at(1), 1.0), 2.5);
/// assert_eq!(bump(v.cell(), 1), 7);
/// assert_eq!(a.to_vec(), [1.5, 3.5]);
/// # Ok(()) }
/// ```
pub trait AtomicElement: sealed::Sealed + Send + Sync + fmt::Debug + 'static {
    /// The `core` atomic a cell is accessed through.
    #[doc(hidden)]
    type Atomic: MappedAtomic<Int = <Self as Repr>::Int>;
    /// The type code recorded in the header.
    #[doc(hidden)]
    const CODE: u8;
    /// Zero, `0.0` or `false`: the all-zero word.
    #[doc(hidden)]
    const ZERO: Self;
}

/// The element types with `fetch_add`, `fetch_sub`, `fetch_max` and
/// `fetch_min`: the integers and the floats. Sealed.
///
/// Integers wrap on overflow and use one hardware read-modify-write.
/// Floats use a compare-and-swap loop on the bit pattern:
/// `fetch_add`/`fetch_sub` store `old + v`/`old - v`, and
/// `fetch_max`/`fetch_min` store [`f64::max`]/[`f64::min`] of the old value
/// and `v` (so a NaN operand leaves the cell as it is, and a NaN cell takes
/// the operand). As for any Rust float arithmetic, the sign and payload of
/// a NaN result, and which zero `max(0.0, -0.0)` returns, are unspecified.
///
/// ```
/// # fn main() -> Result<(), shmsync::Error> {
/// use std::sync::atomic::Ordering::SeqCst;
/// let v = shmsync::AtomicValue::new(f64::NAN)?;
/// assert!(v.fetch_max(1.0, SeqCst).is_nan());
/// assert_eq!(v.fetch_max(f64::NAN, SeqCst), 1.0);
/// assert_eq!(v.load(SeqCst), 1.0);
/// # Ok(()) }
/// ```
pub trait AtomicNumber: AtomicElement + sealed::Number {}

/// The element types with `fetch_and`, `fetch_or`, `fetch_xor` and
/// `fetch_nand`: the integers and `bool`. Sealed.
///
/// ```
/// # fn main() -> Result<(), shmsync::Error> {
/// use std::sync::atomic::Ordering::SeqCst;
/// let flags = shmsync::AtomicValue::new(0b0101u8)?;
/// assert_eq!(flags.fetch_or(0b0010, SeqCst), 0b0101);
/// let b = shmsync::AtomicValue::new(true)?;
/// assert!(b.fetch_xor(true, SeqCst));
/// assert!(!b.load(SeqCst));
/// # Ok(()) }
/// ```
pub trait AtomicBitwise: AtomicElement + sealed::Bits {}

macro_rules! elements {
    ($($t:ty => $atomic:ident, $code:literal, $zero:literal, [$($cap:ident),*];)*) => {$(
        impl sealed::Sealed for $t {}
        impl AtomicElement for $t {
            type Atomic = core::sync::atomic::$atomic;
            const CODE: u8 = $code;
            const ZERO: $t = $zero;
        }
        $(impl $cap for $t {})*
    )*};
}

elements! {
    i8 => AtomicI8, b'b', 0, [AtomicNumber, AtomicBitwise];
    u8 => AtomicU8, b'B', 0, [AtomicNumber, AtomicBitwise];
    i16 => AtomicI16, b'h', 0, [AtomicNumber, AtomicBitwise];
    u16 => AtomicU16, b'H', 0, [AtomicNumber, AtomicBitwise];
    i32 => AtomicI32, b'i', 0, [AtomicNumber, AtomicBitwise];
    u32 => AtomicU32, b'I', 0, [AtomicNumber, AtomicBitwise];
    i64 => AtomicI64, b'q', 0, [AtomicNumber, AtomicBitwise];
    u64 => AtomicU64, b'Q', 0, [AtomicNumber, AtomicBitwise];
    isize => AtomicIsize, b'n', 0, [AtomicNumber, AtomicBitwise];
    usize => AtomicUsize, b'N', 0, [AtomicNumber, AtomicBitwise];
    f32 => AtomicU32, b'f', 0.0, [AtomicNumber];
    f64 => AtomicU64, b'd', 0.0, [AtomicNumber];
    bool => AtomicU8, b'?', false, [AtomicBitwise];
}

fn atomic_desc<T: AtomicElement>() -> ElemDesc {
    ElemDesc {
        code: T::CODE,
        size: size_of::<T::Atomic>(),
        align: align_of::<T::Atomic>(),
    }
}

/// The cells of a validated atomic object.
struct AtomicCells<T> {
    obj: Object,
    /// First cell: `obj`'s mapping + data offset. Cached so that the hot
    /// path is one address computation and one atomic instruction.
    data: *mut u8,
    len: usize,
    stride: usize,
    _t: PhantomData<T>,
}

// SAFETY: `data` points into the mapping that `obj` keeps alive (an
// `Arc<Segment>`, itself Send + Sync), and the cells behind it are only
// accessed through atomics; `T: AtomicElement` is Send + Sync.
unsafe impl<T: AtomicElement> Send for AtomicCells<T> {}
// SAFETY: as for Send: shared access is atomic access.
unsafe impl<T: AtomicElement> Sync for AtomicCells<T> {}

impl<T: AtomicElement> AtomicCells<T> {
    fn from_obj(obj: Object) -> Self {
        let l = &obj.layout;
        // `wrapping_add` keeps the mapping's provenance; the offset is
        // within the mapping (validated: data_offset + len * stride ==
        // mapping length), so the pointer is in bounds or one past the end
        // (an empty array, whose `data` is never dereferenced).
        let data = obj.seg.as_ptr().wrapping_add(l.data_offset);
        let (len, stride) = (l.count, l.stride);
        AtomicCells {
            obj,
            data,
            len,
            stride,
            _t: PhantomData,
        }
    }

    fn create(
        name: Option<&str>,
        kind: Kind,
        len: usize,
        padded: bool,
        init: impl Fn(usize) -> T,
    ) -> Result<Self> {
        let spec = Spec {
            kind,
            elem: atomic_desc::<T>(),
            count: len,
            stride: if padded {
                CACHE_LINE
            } else {
                size_of::<T::Atomic>()
            },
            lock: LockMode::None,
            lock_ref: None,
        };
        let obj = Object::create(name, &spec, |obj| {
            for i in 0..len {
                // SAFETY: i < len == count, so `elem_ptr` is in bounds; it
                // is aligned and accessed only atomically, as argued in
                // `AtomicCells::word`; the reference does not outlive this
                // iteration, during which `obj` (and its mapping) is
                // borrowed.
                let w = unsafe { T::Atomic::from_ptr(obj.elem_ptr(i).cast()) };
                // Relaxed: published by `Object::create`'s Release store of
                // READY, which openers Acquire.
                T::store(w, init(i), Relaxed);
            }
        })?;
        Ok(Self::from_obj(obj))
    }

    fn open(name: &str, kind: Kind) -> Result<Self> {
        let strides = Self::strides(kind);
        let kinds = [kind];
        let expect = Self::expect(&kinds, &strides);
        Ok(Self::from_obj(Object::open(name, &expect)?))
    }

    fn from_fd(fd: OwnedFd, kind: Kind) -> Result<Self> {
        let strides = Self::strides(kind);
        let kinds = [kind];
        let expect = Self::expect(&kinds, &strides);
        Ok(Self::from_obj(Object::from_fd(fd, &expect)?))
    }

    /// Arrays may be packed or padded to a cache line; values are packed.
    fn strides(kind: Kind) -> [usize; 2] {
        let size = size_of::<T::Atomic>();
        match kind {
            Kind::AtomicArray => [size, CACHE_LINE],
            _ => [size, size],
        }
    }

    fn expect<'a>(kinds: &'a [Kind], strides: &'a [usize]) -> Expect<'a> {
        Expect {
            kinds,
            elem: atomic_desc::<T>(),
            strides,
        }
    }

    /// Cell `i`, unchecked.
    ///
    /// # Safety
    /// - `i < self.len`.
    #[inline]
    unsafe fn word(&self, i: usize) -> &T::Atomic {
        debug_assert!(i < self.len);
        let p = self.data.wrapping_add(i * self.stride);
        debug_assert!(p.cast::<T::Atomic>().is_aligned());
        // SAFETY:
        // - in bounds: i < len (caller), and data + len * stride is the
        //   end of the mapping (validated by `Object` on create and open);
        // - aligned: the mapping is page aligned, data_offset is a multiple
        //   of 64 and of the cell's alignment, and the stride (the cell's
        //   size, or 64) is a multiple of the alignment (`desc` records
        //   `align_of::<T::Atomic>()`; `open` requires the same);
        // - lifetime: the mapping lives as long as `self.obj` (an Arc),
        //   which the returned reference borrows;
        // - atomic only: every access to the cells, in every process, goes
        //   through `T::Atomic` of this width (the header's type code and
        //   size are checked on open).
        unsafe { T::Atomic::from_ptr(p.cast()) }
    }

    #[inline]
    fn get(&self, i: usize) -> Option<AtomicRef<'_, T>> {
        if i < self.len {
            // SAFETY: i < len, checked just above.
            let word = unsafe { self.word(i) };
            Some(AtomicRef { word })
        } else {
            None
        }
    }
}

/// A handle to one atomic cell in shared memory: what `&AtomicI64` is to a
/// `[AtomicI64]`, for every [`AtomicElement`] (floats and `bool`
/// included).
///
/// Obtained from [`AtomicArray::at`], [`AtomicArray::get`],
/// [`AtomicArray::iter`] or [`AtomicValue::cell`]; it borrows the object,
/// so it cannot outlive the mapping. It is `Copy`, `Send` and `Sync`, and
/// has the same operations as [`AtomicValue`].
///
/// ```
/// # fn main() -> Result<(), shmsync::Error> {
/// use std::sync::atomic::Ordering::Relaxed;
/// let hits = shmsync::AtomicArray::<u64>::zeroed_padded(4)?;
/// std::thread::scope(|s| {
///     for worker in 0..4 {
///         let cell = hits.at(worker);
///         s.spawn(move || for _ in 0..1000 { cell.fetch_add(1, Relaxed); });
///     }
/// });
/// assert_eq!(hits.to_vec(), [1000; 4]);
/// # Ok(()) }
/// ```
pub struct AtomicRef<'a, T: AtomicElement> {
    word: &'a T::Atomic,
}

impl<T: AtomicElement> Clone for AtomicRef<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: AtomicElement> Copy for AtomicRef<'_, T> {}

impl<T: AtomicElement> AtomicRef<'_, T> {
    #[inline]
    fn word(&self) -> &T::Atomic {
        self.word
    }
}

impl<T: AtomicElement> fmt::Debug for AtomicRef<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Relaxed, as std's atomics print themselves.
        fmt::Debug::fmt(&self.load(Relaxed), f)
    }
}

/// The std atomic API, generated for [`AtomicValue`] and [`AtomicRef`]
/// with examples that construct the receiver `c` from `$pre VALUE $post`.
macro_rules! cell_api {
    ([$($gen:tt)*] $ty:ident, $pre:literal, $post:literal) => {
        impl<$($gen)* T: AtomicElement> $ty<$($gen)* T> {
            /// Loads the value.
            ///
            /// # Panics
            /// If `order` is `Release` or `AcqRel`, as std.
            ///
            /// ```
            /// # fn main() -> Result<(), shmsync::Error> {
            /// use std::sync::atomic::Ordering::Acquire;
            #[doc = concat!($pre, "7u32", $post)]
            /// assert_eq!(c.load(Acquire), 7);
            /// # Ok(()) }
            /// ```
            #[inline]
            pub fn load(&self, order: Ordering) -> T {
                T::load(self.word(), order)
            }

            /// Stores `v`.
            ///
            /// # Panics
            /// If `order` is `Acquire` or `AcqRel`, as std.
            ///
            /// ```
            /// # fn main() -> Result<(), shmsync::Error> {
            /// use std::sync::atomic::Ordering::{Acquire, Release};
            #[doc = concat!($pre, "0.5f64", $post)]
            /// c.store(-2.25, Release);
            /// assert_eq!(c.load(Acquire), -2.25);
            /// # Ok(()) }
            /// ```
            #[inline]
            pub fn store(&self, v: T, order: Ordering) {
                T::store(self.word(), v, order);
            }

            /// Stores `v` and returns the previous value.
            ///
            /// ```
            /// # fn main() -> Result<(), shmsync::Error> {
            /// use std::sync::atomic::Ordering::AcqRel;
            #[doc = concat!($pre, "false", $post)]
            /// assert_eq!(c.swap(true, AcqRel), false);
            /// assert_eq!(c.swap(true, AcqRel), true);
            /// # Ok(()) }
            /// ```
            #[inline]
            pub fn swap(&self, v: T, order: Ordering) -> T {
                T::swap(self.word(), v, order)
            }

            /// Stores `new` if the value is `current`; returns the previous
            /// value, `Ok` if it was `current`.
            ///
            /// Floats are compared **bitwise**: `-0.0` does not match `0.0`,
            /// and a NaN matches only a NaN with the same payload. That is
            /// what makes the retry loop `current = found` terminate. `bool`
            /// compares truth values (see [`AtomicElement`]). Orderings as
            /// std's `compare_exchange`.
            ///
            /// # Errors
            /// `Err(found)` when the value was not `current`.
            ///
            /// # Panics
            /// If `failure` is `Release` or `AcqRel`, as std.
            ///
            /// ```
            /// # fn main() -> Result<(), shmsync::Error> {
            /// use std::sync::atomic::Ordering::{Acquire, Relaxed};
            #[doc = concat!($pre, "-0.0f64", $post)]
            /// assert!(c.compare_exchange(0.0, 1.0, Acquire, Relaxed).is_err());
            /// assert!(c.compare_exchange(-0.0, 1.0, Acquire, Relaxed).is_ok());
            /// assert_eq!(c.load(Relaxed), 1.0);
            /// # Ok(()) }
            /// ```
            #[inline]
            pub fn compare_exchange(
                &self,
                current: T,
                new: T,
                success: Ordering,
                failure: Ordering,
            ) -> core::result::Result<T, T> {
                T::compare_exchange(self.word(), current, new, success, failure)
            }

            /// As [`compare_exchange`](Self::compare_exchange), but may fail
            /// spuriously: cheaper in a retry loop on some platforms.
            ///
            /// # Errors
            /// `Err(found)` when the value was not `current`, or spuriously.
            ///
            /// # Panics
            /// If `failure` is `Release` or `AcqRel`, as std.
            ///
            /// ```
            /// # fn main() -> Result<(), shmsync::Error> {
            /// use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed};
            #[doc = concat!($pre, "3i32", $post)]
            /// // Double it, whatever other processes do meanwhile.
            /// let mut cur = c.load(Relaxed);
            /// while let Err(found) = c.compare_exchange_weak(cur, cur * 2, AcqRel, Acquire) {
            ///     cur = found;
            /// }
            /// assert_eq!(c.load(Relaxed), 6);
            /// # Ok(()) }
            /// ```
            #[inline]
            pub fn compare_exchange_weak(
                &self,
                current: T,
                new: T,
                success: Ordering,
                failure: Ordering,
            ) -> core::result::Result<T, T> {
                T::compare_exchange_weak(self.word(), current, new, success, failure)
            }

            /// Applies `f` until its result is stored, as std's
            /// `fetch_update`: loads use `fetch_order`, the successful
            /// exchange `set_order`. `f` may run several times when other
            /// threads or processes write in between.
            ///
            /// # Errors
            /// `Err(previous)` if `f` returned `None`.
            ///
            /// # Panics
            /// If `fetch_order` is `Release` or `AcqRel`, as std.
            ///
            /// ```
            /// # fn main() -> Result<(), shmsync::Error> {
            /// use std::sync::atomic::Ordering::{AcqRel, Acquire};
            #[doc = concat!($pre, "10u64", $post)]
            /// let take = |n: u64| n.checked_sub(4);
            /// assert_eq!(c.fetch_update(AcqRel, Acquire, take), Ok(10));
            /// assert_eq!(c.fetch_update(AcqRel, Acquire, take), Ok(6));
            /// assert_eq!(c.fetch_update(AcqRel, Acquire, take), Err(2));
            /// # Ok(()) }
            /// ```
            #[inline]
            pub fn fetch_update<F>(
                &self,
                set_order: Ordering,
                fetch_order: Ordering,
                f: F,
            ) -> core::result::Result<T, T>
            where
                F: FnMut(T) -> Option<T>,
            {
                T::fetch_update(self.word(), set_order, fetch_order, f)
            }
        }

        impl<$($gen)* T: AtomicNumber> $ty<$($gen)* T> {
            /// Adds `v` and returns the previous value. Integers wrap on
            /// overflow; floats store `old + v` (a compare-and-swap loop).
            ///
            /// ```
            /// # fn main() -> Result<(), shmsync::Error> {
            /// use std::sync::atomic::Ordering::Relaxed;
            #[doc = concat!($pre, "0.5f64", $post)]
            /// assert_eq!(c.fetch_add(1.0, Relaxed), 0.5);
            /// assert_eq!(c.load(Relaxed), 1.5);
            /// # Ok(()) }
            /// ```
            #[inline]
            pub fn fetch_add(&self, v: T, order: Ordering) -> T {
                T::fetch_add(self.word(), v, order)
            }

            /// Subtracts `v` and returns the previous value. Integers wrap
            /// on overflow; floats store `old - v`.
            ///
            /// ```
            /// # fn main() -> Result<(), shmsync::Error> {
            /// use std::sync::atomic::Ordering::Relaxed;
            #[doc = concat!($pre, "0u8", $post)]
            /// assert_eq!(c.fetch_sub(1, Relaxed), 0);
            /// assert_eq!(c.load(Relaxed), 255);
            /// # Ok(()) }
            /// ```
            #[inline]
            pub fn fetch_sub(&self, v: T, order: Ordering) -> T {
                T::fetch_sub(self.word(), v, order)
            }

            /// Stores the maximum of the value and `v`; returns the
            /// previous value. Floats follow [`f64::max`] (NaN is ignored).
            ///
            /// ```
            /// # fn main() -> Result<(), shmsync::Error> {
            /// use std::sync::atomic::Ordering::SeqCst;
            #[doc = concat!($pre, "-5i64", $post)]
            /// assert_eq!(c.fetch_max(3, SeqCst), -5);
            /// assert_eq!(c.fetch_max(1, SeqCst), 3);
            /// assert_eq!(c.load(SeqCst), 3);
            /// # Ok(()) }
            /// ```
            #[inline]
            pub fn fetch_max(&self, v: T, order: Ordering) -> T {
                T::fetch_max(self.word(), v, order)
            }

            /// Stores the minimum of the value and `v`; returns the
            /// previous value. Floats follow [`f64::min`] (NaN is ignored).
            ///
            /// ```
            /// # fn main() -> Result<(), shmsync::Error> {
            /// use std::sync::atomic::Ordering::SeqCst;
            #[doc = concat!($pre, "2.0f32", $post)]
            /// assert_eq!(c.fetch_min(f32::NEG_INFINITY, SeqCst), 2.0);
            /// assert_eq!(c.load(SeqCst), f32::NEG_INFINITY);
            /// # Ok(()) }
            /// ```
            #[inline]
            pub fn fetch_min(&self, v: T, order: Ordering) -> T {
                T::fetch_min(self.word(), v, order)
            }
        }

        impl<$($gen)* T: AtomicBitwise> $ty<$($gen)* T> {
            /// Bitwise (or logical, for `bool`) AND with `v`; returns the
            /// previous value.
            ///
            /// ```
            /// # fn main() -> Result<(), shmsync::Error> {
            /// use std::sync::atomic::Ordering::SeqCst;
            #[doc = concat!($pre, "0b1100u8", $post)]
            /// assert_eq!(c.fetch_and(0b1010, SeqCst), 0b1100);
            /// assert_eq!(c.load(SeqCst), 0b1000);
            /// # Ok(()) }
            /// ```
            #[inline]
            pub fn fetch_and(&self, v: T, order: Ordering) -> T {
                T::fetch_and(self.word(), v, order)
            }

            /// Bitwise (or logical) OR with `v`; returns the previous value.
            ///
            /// ```
            /// # fn main() -> Result<(), shmsync::Error> {
            /// use std::sync::atomic::Ordering::SeqCst;
            #[doc = concat!($pre, "false", $post)]
            /// assert_eq!(c.fetch_or(true, SeqCst), false);
            /// assert_eq!(c.load(SeqCst), true);
            /// # Ok(()) }
            /// ```
            #[inline]
            pub fn fetch_or(&self, v: T, order: Ordering) -> T {
                T::fetch_or(self.word(), v, order)
            }

            /// Bitwise (or logical) XOR with `v`; returns the previous
            /// value.
            ///
            /// ```
            /// # fn main() -> Result<(), shmsync::Error> {
            /// use std::sync::atomic::Ordering::SeqCst;
            #[doc = concat!($pre, "0x0fi16", $post)]
            /// assert_eq!(c.fetch_xor(0xff, SeqCst), 0x0f);
            /// assert_eq!(c.load(SeqCst), 0xf0);
            /// # Ok(()) }
            /// ```
            #[inline]
            pub fn fetch_xor(&self, v: T, order: Ordering) -> T {
                T::fetch_xor(self.word(), v, order)
            }

            /// Stores `!(old & v)` (for `bool`: `!(old && v)`); returns the
            /// previous value.
            ///
            /// ```
            /// # fn main() -> Result<(), shmsync::Error> {
            /// use std::sync::atomic::Ordering::SeqCst;
            #[doc = concat!($pre, "true", $post)]
            /// assert_eq!(c.fetch_nand(true, SeqCst), true);
            /// assert_eq!(c.load(SeqCst), false);
            /// # Ok(()) }
            /// ```
            #[inline]
            pub fn fetch_nand(&self, v: T, order: Ordering) -> T {
                T::fetch_nand(self.word(), v, order)
            }
        }
    };
}

cell_api!([] AtomicValue, "let c = shmsync::AtomicValue::new(", ")?;");
cell_api!(['a,] AtomicRef, "let a = shmsync::AtomicArray::from_slice(&[", "])?;\nlet c = a.at(0);");

/// One atomic `T` in shared memory: `std::sync::atomic` across processes.
///
/// Named ([`create`](Self::create) / [`open`](Self::open)), anonymous
/// ([`new`](Self::new); shared with children through `fork`, or by file
/// descriptor with [`AsFd`] and [`from_fd`](Self::from_fd)). The methods
/// are std's, with explicit [`Ordering`]s; see [`AtomicElement`] for the
/// types and the semantics of floats and `bool`.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::atomic::Ordering::Relaxed;
/// use shmsync::AtomicValue;
/// let name = format!("doc_total_{}", std::process::id());
/// let total = AtomicValue::<f64>::create(&name, 0.0)?; // unlinked on drop
/// let same = AtomicValue::<f64>::open(&name)?;        // e.g. in a worker process
/// same.fetch_add(0.25, Relaxed);
/// total.fetch_add(0.5, Relaxed);
/// assert_eq!(total.load(Relaxed), 0.75);
/// assert!(AtomicValue::<i64>::open(&name).is_err()); // TypeMismatch
/// # Ok(()) }
/// ```
pub struct AtomicValue<T> {
    cells: AtomicCells<T>,
}

const ATOMIC_VALUE: Kind = Kind::AtomicValue;
const ATOMIC_ARRAY: Kind = Kind::AtomicArray;

impl<T: AtomicElement> AtomicValue<T> {
    fn with(cells: AtomicCells<T>) -> Self {
        debug_assert_eq!(cells.len, 1, "validated by Object");
        AtomicValue { cells }
    }

    /// The cell.
    #[inline]
    fn word(&self) -> &T::Atomic {
        // SAFETY: a value has exactly one cell (count 1 on create; `open`
        // rejects a single-value kind with another count).
        unsafe { self.cells.word(0) }
    }

    /// A new anonymous value (a memfd, sealed against resizing).
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let v = shmsync::AtomicValue::new(42i64)?;
    /// assert_eq!(v.load(std::sync::atomic::Ordering::Relaxed), 42);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) if the memfd cannot be made.
    pub fn new(v: T) -> Result<Self> {
        Ok(Self::with(AtomicCells::create(
            None,
            ATOMIC_VALUE,
            1,
            false,
            |_| v,
        )?))
    }

    /// A new named value (`O_EXCL`, mode 0600 whatever the umask; see
    /// [names, files and descriptors](crate::SharedMemory#names-files-and-descriptors)). The name is unlinked when
    /// this handle is dropped, unless [`persist`](Self::persist) is called.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let name = format!("doc_av_create_{}", std::process::id());
    /// let v = shmsync::AtomicValue::create(&name, 1u32)?;
    /// assert_eq!(v.name(), Some(name.as_str()));
    /// assert!(shmsync::AtomicValue::create(&name, 1u32).is_err()); // AlreadyExists
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidName`](crate::Error::InvalidName),
    /// [`Error::AlreadyExists`](crate::Error::AlreadyExists),
    /// [`Error::Stale`](crate::Error::Stale) for a name left behind by a
    /// creator that died,
    /// [`Error::Io`](crate::Error::Io).
    pub fn create(name: &str, v: T) -> Result<Self> {
        Ok(Self::with(AtomicCells::create(
            Some(name),
            ATOMIC_VALUE,
            1,
            false,
            |_| v,
        )?))
    }

    /// Opens a value created by any process.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// use std::sync::atomic::Ordering::Relaxed;
    /// let name = format!("doc_av_open_{}", std::process::id());
    /// let a = shmsync::AtomicValue::create(&name, 0u64)?;
    /// let b = shmsync::AtomicValue::<u64>::open(&name)?;
    /// b.fetch_add(5, Relaxed);
    /// assert_eq!(a.load(Relaxed), 5);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound);
    /// [`Error::TypeMismatch`](crate::Error::TypeMismatch) if the segment
    /// holds another kind of object (a [`Value`](crate::Value) too) or
    /// another element type; the validation errors of a damaged segment.
    pub fn open(name: &str) -> Result<Self> {
        Ok(Self::with(AtomicCells::open(name, ATOMIC_VALUE)?))
    }

    /// Attaches to the value behind `fd` (see [`AsFd`]).
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::os::fd::AsFd;
    /// use std::sync::atomic::Ordering::Relaxed;
    /// let v = shmsync::AtomicValue::new(1i8)?;
    /// let fd = v.as_fd().try_clone_to_owned()?; // or passed over a socket
    /// let w = shmsync::AtomicValue::<i8>::from_fd(fd)?;
    /// w.store(-1, Relaxed);
    /// assert_eq!(v.load(Relaxed), -1);
    /// # Ok(()) }
    /// ```
    ///
    /// The descriptor must be a regular file, and a memfd must be sealed
    /// against shrinking (as anonymous objects are); see [names, files and descriptors](crate::SharedMemory#names-files-and-descriptors).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) for another
    /// kind of descriptor or an unsealed memfd; otherwise as
    /// [`open`](Self::open).
    pub fn from_fd(fd: OwnedFd) -> Result<Self> {
        Ok(Self::with(AtomicCells::from_fd(fd, ATOMIC_VALUE)?))
    }

    /// The value's cell as an [`AtomicRef`], for code that takes cells of
    /// values and of arrays alike.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// use std::sync::atomic::Ordering::Relaxed;
    /// let v = shmsync::AtomicValue::new(1usize)?;
    /// let c = v.cell();
    /// c.fetch_add(1, Relaxed);
    /// assert_eq!(v.load(Relaxed), 2);
    /// # Ok(()) }
    /// ```
    #[inline]
    pub fn cell(&self) -> AtomicRef<'_, T> {
        AtomicRef { word: self.word() }
    }
}

impl<T: AtomicElement> fmt::Debug for AtomicValue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AtomicValue")
            .field("name", &self.name())
            .field("value", &self.load(Relaxed))
            .finish()
    }
}

/// A fixed-length array of atomic `T` in shared memory.
///
/// Elements are reached through [`AtomicRef`] handles —
/// [`at(i)`](Self::at) (panics out of bounds, like slice indexing),
/// [`get(i)`](Self::get) (`None` out of bounds) or [`iter`](Self::iter) —
/// which have the whole std atomic API: `a.at(i).fetch_add(1, Relaxed)` is
/// what `a[i].fetch_add(1, Relaxed)` is on a `[AtomicU64]`.
///
/// Elements are packed (stride = element size) unless the array is made
/// with a `_padded` constructor, which gives every element its own cache
/// line ([`CACHE_LINE`] bytes) so that processes updating neighbouring
/// elements do not slow each other down (false sharing). `open` accepts
/// either layout.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::atomic::Ordering::Relaxed;
/// use shmsync::AtomicArray;
/// let name = format!("doc_hist_{}", std::process::id());
/// let hist = AtomicArray::<u32>::create_padded(&name, &[0; 8])?;
/// let other = AtomicArray::<u32>::open(&name)?; // in another process
/// other.at(3).fetch_add(2, Relaxed);
/// hist.at(3).fetch_add(1, Relaxed);
/// assert_eq!(hist.at(3).load(Relaxed), 3);
/// assert!(hist.get(8).is_none());
/// assert_eq!(hist.to_vec(), [0, 0, 0, 3, 0, 0, 0, 0]);
/// # Ok(()) }
/// ```
pub struct AtomicArray<T> {
    cells: AtomicCells<T>,
}

impl<T: AtomicElement> AtomicArray<T> {
    fn make(name: Option<&str>, len: usize, padded: bool, f: impl Fn(usize) -> T) -> Result<Self> {
        Ok(AtomicArray {
            cells: AtomicCells::create(name, ATOMIC_ARRAY, len, padded, f)?,
        })
    }

    /// A new anonymous array of `len` zeros (`false` for `bool`), packed.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let a = shmsync::AtomicArray::<i32>::zeroed(3)?;
    /// assert_eq!(a.to_vec(), [0, 0, 0]);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) if too
    /// large; [`Error::Io`](crate::Error::Io).
    pub fn zeroed(len: usize) -> Result<Self> {
        Self::make(None, len, false, |_| T::ZERO)
    }

    /// As [`zeroed`](Self::zeroed), one element per cache line.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let a = shmsync::AtomicArray::<u64>::zeroed_padded(4)?;
    /// assert!(a.is_padded());
    /// assert_eq!(a.len(), 4);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As for [`zeroed`](Self::zeroed).
    pub fn zeroed_padded(len: usize) -> Result<Self> {
        Self::make(None, len, true, |_| T::ZERO)
    }

    /// A new anonymous array holding a copy of `data`, packed.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let a = shmsync::AtomicArray::from_slice(&[true, false])?;
    /// assert_eq!(a.to_vec(), [true, false]);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As for [`zeroed`](Self::zeroed).
    pub fn from_slice(data: &[T]) -> Result<Self> {
        Self::make(None, data.len(), false, |i| data[i])
    }

    /// As [`from_slice`](Self::from_slice), one element per cache line.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let a = shmsync::AtomicArray::from_slice_padded(&[1.0f32, 2.0])?;
    /// assert_eq!(a.to_vec(), [1.0, 2.0]);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As for [`zeroed`](Self::zeroed).
    pub fn from_slice_padded(data: &[T]) -> Result<Self> {
        Self::make(None, data.len(), true, |i| data[i])
    }

    /// A new named array holding a copy of `data`, packed (`O_EXCL`, mode
    /// 0600 whatever the umask; see
    /// [names, files and descriptors](crate::SharedMemory#names-files-and-descriptors));
    /// unlinked when this handle is dropped unless
    /// [`persist`](Self::persist) is called.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let name = format!("doc_aa_create_{}", std::process::id());
    /// let a = shmsync::AtomicArray::create(&name, &[1i64, 2])?;
    /// assert_eq!(shmsync::AtomicArray::<i64>::open(&name)?.to_vec(), [1, 2]);
    /// drop(a); // unlinks the name
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidName`](crate::Error::InvalidName),
    /// [`Error::AlreadyExists`](crate::Error::AlreadyExists),
    /// [`Error::Stale`](crate::Error::Stale) for a name left behind by a
    /// creator that died,
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument),
    /// [`Error::Io`](crate::Error::Io).
    pub fn create(name: &str, data: &[T]) -> Result<Self> {
        Self::make(Some(name), data.len(), false, |i| data[i])
    }

    /// As [`create`](Self::create), one element per cache line.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let name = format!("doc_aa_padded_{}", std::process::id());
    /// let _a = shmsync::AtomicArray::create_padded(&name, &[0u64; 2])?;
    /// assert!(shmsync::AtomicArray::<u64>::open(&name)?.is_padded());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As for [`create`](Self::create).
    pub fn create_padded(name: &str, data: &[T]) -> Result<Self> {
        Self::make(Some(name), data.len(), true, |i| data[i])
    }

    /// Opens an array created by any process, packed or padded.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let name = format!("doc_aa_open_{}", std::process::id());
    /// let _a = shmsync::AtomicArray::create(&name, &[0u8; 3])?;
    /// assert_eq!(shmsync::AtomicArray::<u8>::open(&name)?.len(), 3);
    /// assert!(shmsync::AtomicArray::<i8>::open(&name).is_err()); // TypeMismatch
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound);
    /// [`Error::TypeMismatch`](crate::Error::TypeMismatch) for another kind
    /// of object, another element type or a stride other than the element
    /// size or [`CACHE_LINE`]; the validation errors of a damaged segment.
    pub fn open(name: &str) -> Result<Self> {
        Ok(AtomicArray {
            cells: AtomicCells::open(name, ATOMIC_ARRAY)?,
        })
    }

    /// Attaches to the array behind `fd` (see [`AsFd`]).
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::os::fd::AsFd;
    /// let a = shmsync::AtomicArray::from_slice(&[7u16, 8])?;
    /// let fd = a.as_fd().try_clone_to_owned()?;
    /// assert_eq!(shmsync::AtomicArray::<u16>::from_fd(fd)?.to_vec(), [7, 8]);
    /// # Ok(()) }
    /// ```
    ///
    /// The descriptor must be a regular file, and a memfd must be sealed
    /// against shrinking (as anonymous objects are); see [names, files and descriptors](crate::SharedMemory#names-files-and-descriptors).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) for another
    /// kind of descriptor or an unsealed memfd; otherwise as
    /// [`open`](Self::open).
    pub fn from_fd(fd: OwnedFd) -> Result<Self> {
        Ok(AtomicArray {
            cells: AtomicCells::from_fd(fd, ATOMIC_ARRAY)?,
        })
    }

    /// The number of elements.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// assert_eq!(shmsync::AtomicArray::<f64>::zeroed(5)?.len(), 5);
    /// # Ok(()) }
    /// ```
    #[inline]
    pub fn len(&self) -> usize {
        self.cells.len
    }

    /// Whether the array has no elements.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// assert!(shmsync::AtomicArray::<f64>::zeroed(0)?.is_empty());
    /// # Ok(()) }
    /// ```
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.cells.len == 0
    }

    /// Whether each element has its own cache line.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// assert!(!shmsync::AtomicArray::<u8>::zeroed(2)?.is_padded());
    /// # Ok(()) }
    /// ```
    #[inline]
    pub fn is_padded(&self) -> bool {
        self.cells.stride == CACHE_LINE && size_of::<T::Atomic>() != CACHE_LINE
    }

    /// Element `i`, or `None` if `i >= len()`.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// use std::sync::atomic::Ordering::Relaxed;
    /// let a = shmsync::AtomicArray::from_slice(&[1u32, 2])?;
    /// assert_eq!(a.get(1).map(|c| c.load(Relaxed)), Some(2));
    /// assert!(a.get(2).is_none());
    /// # Ok(()) }
    /// ```
    #[inline]
    pub fn get(&self, i: usize) -> Option<AtomicRef<'_, T>> {
        self.cells.get(i)
    }

    /// Element `i`.
    ///
    /// # Panics
    /// If `i >= len()`, as slice indexing.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// use std::sync::atomic::Ordering::Relaxed;
    /// let a = shmsync::AtomicArray::<i64>::zeroed(2)?;
    /// a.at(1).fetch_sub(3, Relaxed);
    /// assert_eq!(a.to_vec(), [0, -3]);
    /// # Ok(()) }
    /// ```
    #[inline]
    #[track_caller]
    pub fn at(&self, i: usize) -> AtomicRef<'_, T> {
        match self.cells.get(i) {
            Some(c) => c,
            None => panic!("index {i} out of bounds for length {}", self.len()),
        }
    }

    /// The elements, in order.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// use std::sync::atomic::Ordering::Relaxed;
    /// let a = shmsync::AtomicArray::from_slice(&[1u8, 2, 3])?;
    /// for c in a.iter() {
    ///     c.fetch_add(10, Relaxed);
    /// }
    /// assert_eq!(a.to_vec(), [11, 12, 13]);
    /// # Ok(()) }
    /// ```
    pub fn iter(&self) -> impl ExactSizeIterator<Item = AtomicRef<'_, T>> + DoubleEndedIterator {
        (0..self.len()).map(move |i| AtomicRef {
            // SAFETY: i < len by the range.
            word: unsafe { self.cells.word(i) },
        })
    }

    /// A copy of the elements, each loaded with `Relaxed`.
    ///
    /// Each element is read atomically, but the copy is not one atomic
    /// snapshot of the whole array: elements written meanwhile may appear
    /// in their old or new state independently.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let a = shmsync::AtomicArray::from_slice_padded(&[1i16, -1])?;
    /// assert_eq!(a.to_vec(), vec![1, -1]);
    /// # Ok(()) }
    /// ```
    pub fn to_vec(&self) -> Vec<T> {
        // Relaxed: a racy snapshot by contract (above).
        self.iter().map(|c| c.load(Relaxed)).collect()
    }
}

impl<T: AtomicElement> fmt::Debug for AtomicArray<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AtomicArray")
            .field("name", &self.name())
            .field("len", &self.len())
            .field("padded", &self.is_padded())
            .finish_non_exhaustive()
    }
}

/// Naming and descriptors, as every object has. Examples build the object
/// `x` from `$pre NAME $post`.
macro_rules! atomic_common {
    ($($ty:ident, $pre:literal, $post:literal;)*) => {$(
        impl<T: AtomicElement> $ty<T> {
            /// The segment's name (without a leading `/`), `None` if
            /// anonymous.
            ///
            /// ```
            /// # fn main() -> Result<(), shmsync::Error> {
            /// let name = format!("/doc_name_{}", std::process::id());
            #[doc = concat!("let x = shmsync::", stringify!($ty), $pre, "&name", $post)]
            /// assert_eq!(x.name(), Some(&name[1..]));
            /// # Ok(()) }
            /// ```
            pub fn name(&self) -> Option<&str> {
                self.cells.obj.seg.name()
            }

            /// Keeps the name after this creating handle is dropped (the
            /// handle that created a name unlinks it on drop, in the
            /// creating process only).
            ///
            /// ```
            /// # fn main() -> Result<(), shmsync::Error> {
            /// let name = format!("doc_persist_{}", std::process::id());
            #[doc = concat!("let x = shmsync::", stringify!($ty), $pre, "&name", $post)]
            /// x.persist();
            /// drop(x);
            #[doc = concat!("let y = shmsync::", stringify!($ty), "::<u8>::open(&name)?;")]
            /// y.unlink()?; // clean up
            /// # Ok(()) }
            /// ```
            pub fn persist(&self) {
                self.cells.obj.seg.persist();
            }

            /// Removes the name now; attached handles keep working.
            ///
            /// ```
            /// # fn main() -> Result<(), shmsync::Error> {
            /// let name = format!("doc_unlink_{}", std::process::id());
            #[doc = concat!("let x = shmsync::", stringify!($ty), $pre, "&name", $post)]
            /// x.unlink()?;
            #[doc = concat!("let gone = shmsync::", stringify!($ty), "::<u8>::open(&name);")]
            /// assert!(matches!(gone, Err(shmsync::Error::NotFound { .. })));
            /// # Ok(()) }
            /// ```
            ///
            /// # Errors
            /// [`Error::NotFound`](crate::Error::NotFound) if already
            /// removed, [`Error::InvalidArgument`](crate::Error::InvalidArgument)
            /// if anonymous.
            pub fn unlink(&self) -> Result<()> {
                self.cells.obj.seg.unlink()
            }
        }

        impl<T: AtomicElement> AsFd for $ty<T> {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.cells.obj.seg.fd()
            }
        }
    )*};
}

atomic_common! {
    AtomicValue, "::create(", ", 0u8)?;";
    AtomicArray, "::create(", ", &[0u8; 4])?;";
}

static_assertions::assert_impl_all!(AtomicValue<f64>: Send, Sync);
static_assertions::assert_impl_all!(AtomicArray<bool>: Send, Sync);
static_assertions::assert_impl_all!(AtomicRef<'static, i64>: Send, Sync, Copy);
