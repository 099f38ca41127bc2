#![allow(unsafe_code)] // elements in the mapping, through `shm::access`
//! The element store shared by every typed object: a validated object and
//! bounds-checked atomic access to its elements.

use crate::shared::Contents;
use crate::shm::access;
use crate::shm::object::{Kind, LockMode, Object, Shape};
use crate::shm::segment::Segment;
use crate::typed::element::{elem_desc, Element};

/// `len` elements of `T` in a validated object.
#[derive(Debug)]
pub(crate) struct Elements<T> {
    obj: Object,
    /// Element 0, in the mapping `obj` keeps alive (the stride is
    /// `size_of::<T>()`, validated).
    data: *mut T,
    len: usize,
}

// SAFETY: the elements are only accessed through atomics (`access`), the
// mapping is kept alive by `obj`, and `T: Element` is `Send + Sync`.
unsafe impl<T: Element> Send for Elements<T> {}
// SAFETY: as for Send.
unsafe impl<T: Element> Sync for Elements<T> {}

impl<T: Element> Elements<T> {
    /// The shape of a typed kind with elements of `T`: packed, with its
    /// own lock that it may trade for another object's (`Own`), or none.
    pub(crate) const fn shape(kind: Kind, lock: LockMode, single: bool) -> Shape {
        let elem = elem_desc::<T>();
        Shape {
            kind,
            elem,
            strides: [elem.size, elem.size],
            lock,
            shares_lock: matches!(lock, LockMode::Own),
            single,
            liveness: false,
        }
    }

    /// Writes the initial elements of a new object (before it is
    /// published).
    pub(crate) fn fill(obj: &Object, init: Contents<'_, T>) {
        let zero = T::zeroed();
        for i in 0..init.len() {
            // SAFETY: i < count (the object was made with `init.len()`
            // elements); element slots are aligned for T (data_offset and
            // stride are multiples of align_of::<T>).
            unsafe { access::store(obj.elem_ptr(i).cast::<T>(), init.get(i, zero)) };
        }
    }

    /// The elements of a validated object of a typed kind.
    pub(crate) fn wrap(obj: Object) -> Self {
        debug_assert_eq!(obj.layout.stride, core::mem::size_of::<T>());
        // In the mapping or at its end (data_offset + count * stride ==
        // mapping length, validated); dereferenced only below `len`.
        let data = obj
            .seg
            .as_ptr()
            .wrapping_add(obj.layout.data_offset)
            .cast::<T>();
        Elements {
            len: obj.layout.count,
            data,
            obj,
        }
    }

    /// The segment the elements are in.
    pub(crate) fn segment(&self) -> &Segment {
        &self.obj.seg
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Element 0 (see the `data` field): `len` elements of `T` follow,
    /// `size_of::<T>()` apart, in the mapping that `obj` keeps alive.
    #[inline]
    pub(crate) fn as_ptr(&self) -> *mut T {
        self.data
    }

    #[inline]
    fn ptr(&self, i: usize) -> *mut T {
        assert!(
            i < self.len(),
            "index {i} out of bounds for length {}",
            self.len()
        );
        // SAFETY: i < count, checked just above; elements are `stride ==
        // size_of::<T>()` apart from element 0 (see `wrap`).
        unsafe { self.data.add(i) }
    }

    /// Element `i` (Relaxed). Panics if out of bounds.
    #[inline]
    pub(crate) fn load(&self, i: usize) -> T {
        let p = self.ptr(i);
        // SAFETY: in bounds and aligned for T (data_offset and stride are
        // multiples of align_of::<T>, validated); accessed atomically only.
        unsafe { access::load(p) }
    }

    /// Stores element `i` (Relaxed). Panics if out of bounds.
    #[inline]
    pub(crate) fn store(&self, i: usize, v: T) {
        let p = self.ptr(i);
        // SAFETY: as in `load`.
        unsafe { access::store(p, v) }
    }

    /// Copies elements `start..start + out.len()` into `out`.
    pub(crate) fn read(&self, start: usize, out: &mut [T]) {
        self.check_range(start, out.len());
        for (k, o) in out.iter_mut().enumerate() {
            *o = self.load(start + k);
        }
    }

    /// Stores `data` at `start..start + data.len()`.
    pub(crate) fn write(&self, start: usize, data: &[T]) {
        self.check_range(start, data.len());
        for (k, v) in data.iter().enumerate() {
            self.store(start + k, *v);
        }
    }

    pub(crate) fn to_vec(&self) -> Vec<T> {
        (0..self.len()).map(|i| self.load(i)).collect()
    }

    fn check_range(&self, start: usize, n: usize) {
        let end = start.checked_add(n);
        assert!(
            end.is_some_and(|e| e <= self.len()),
            "range {start}..{start}+{n} out of bounds for length {}",
            self.len()
        );
    }
}

/// The [`SharedObject`](crate::shared::SharedObject) impl of a typed kind:
/// `$ty<T>` holds `elems: Elements<T>` (and, for a locked kind, the
/// `RLock` that `$wrap` attaches); its segments are packed elements of `T`
/// with the lock mode given (`Own`: its own lock, which it may trade for
/// another object's; `None`).
macro_rules! typed_kind {
    (
        $ty:ident: $kind:ident, single: $single:literal, lock: $mode:ident,
        |$obj:ident, $given:ident| $wrap:expr
    ) => {
        impl<T: Element> crate::shared::SharedObject for $ty<T> {
            const SHAPE: crate::shm::object::Shape = Elements::<T>::shape(
                crate::shm::object::Kind::$kind,
                crate::shm::object::LockMode::$mode,
                $single,
            );
            type Init<'a> = crate::shared::Contents<'a, T>;

            fn count(init: &Self::Init<'_>) -> usize {
                init.len()
            }

            fn fill(obj: &crate::shm::object::Object, init: Self::Init<'_>) {
                Elements::fill(obj, init);
            }

            fn wrap(
                $obj: crate::shm::object::Object,
                $given: Option<&crate::sync::RLock>,
            ) -> crate::Result<Self> {
                $wrap
            }

            fn segment(&self) -> &crate::shm::segment::Segment {
                self.elems.segment()
            }
        }
    };
}
pub(crate) use typed_kind;
