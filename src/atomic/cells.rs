#![allow(unsafe_code)]
// overlays `core` atomics on mapped bytes (`from_ptr`), and asserts `Send`/`Sync` for the store holding them.
//! [`AtomicCells`], the cells of a validated atomic object, and
//! [`AtomicRef`], a handle to one of them with the std atomic API.

use core::fmt;
use core::marker::PhantomData;
use core::sync::atomic::Ordering::{self, Relaxed};

use crate::raw::rmw::MappedAtomic;
use crate::shared::Contents;
use crate::shm::object::{Kind, LockMode, Object, Shape};
use crate::shm::segment::Segment;

use super::array::CACHE_LINE;
use super::element::{atomic_desc, AtomicBitwise, AtomicElement, AtomicNumber};

/// The cells of a validated atomic object.
pub(super) struct AtomicCells<T> {
    obj: Object,
    /// First cell: `obj`'s mapping + data offset. Cached so that the hot
    /// path is one address computation and one atomic instruction.
    data: *mut u8,
    pub(super) len: usize,
    pub(super) stride: usize,
    _t: PhantomData<T>,
}

// SAFETY: `data` points into the mapping that `obj` keeps alive (an
// `Arc<Segment>`, itself Send + Sync), and the cells behind it are only
// accessed through atomics; `T: AtomicElement` is Send + Sync.
unsafe impl<T: AtomicElement> Send for AtomicCells<T> {}
// SAFETY: as for Send: shared access is atomic access.
unsafe impl<T: AtomicElement> Sync for AtomicCells<T> {}

impl<T: AtomicElement> AtomicCells<T> {
    /// The shape of an atomic kind with cells of `T`, without a lock: a
    /// single packed cell, or an array packed or padded to a cache line.
    pub(super) const fn shape(kind: Kind, array: bool) -> Shape {
        let elem = atomic_desc::<T>();
        Shape {
            kind,
            elem,
            strides: [elem.size, if array { CACHE_LINE } else { elem.size }],
            lock: LockMode::None,
            shares_lock: false,
            single: !array,
            liveness: false,
        }
    }

    /// Writes the initial cells of a new object (before it is published).
    pub(super) fn fill(obj: &Object, init: Contents<'_, T>) {
        for i in 0..init.len() {
            // SAFETY: i < count (the object was made with `init.len()`
            // cells), so `elem_ptr` is in bounds; it is aligned and
            // accessed only atomically, as argued in `AtomicCells::word`;
            // the reference does not outlive this iteration, during which
            // `obj` (and its mapping) is borrowed.
            let w = unsafe { T::Atomic::from_ptr(obj.elem_ptr(i).cast()) };
            // Relaxed: published by `Object::create`'s Release store of
            // READY, which openers Acquire.
            T::store(w, init.get(i, T::ZERO), Relaxed);
        }
    }

    /// The cells of a validated object of an atomic kind.
    pub(super) fn wrap(obj: Object) -> Self {
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

    /// The segment the cells are in.
    pub(super) fn segment(&self) -> &Segment {
        &self.obj.seg
    }

    /// Cell `i`, unchecked.
    ///
    /// # Safety
    /// - `i < self.len`.
    #[inline]
    pub(super) unsafe fn word(&self, i: usize) -> &T::Atomic {
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
    pub(super) fn get(&self, i: usize) -> Option<AtomicRef<'_, T>> {
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
/// Obtained from [`AtomicArray::at`](crate::AtomicArray::at), [`AtomicArray::get`](crate::AtomicArray::get),
/// [`AtomicArray::iter`](crate::AtomicArray::iter) or [`AtomicValue::cell`](crate::AtomicValue::cell); it borrows the object,
/// so it cannot outlive the mapping. It is `Copy`, `Send` and `Sync`, and
/// has the same operations as [`AtomicValue`](crate::AtomicValue).
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
    pub(super) word: &'a T::Atomic,
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

pub(super) use cell_api;

cell_api!(['a,] AtomicRef, "let a = shmsync::AtomicArray::from_slice(&[", "])?;\nlet c = a.at(0);");
