#![allow(unsafe_code)] // elements in the mapping, through `shm::access`
//! The element store shared by every typed object: a validated object and
//! bounds-checked atomic access to its elements.

use std::os::fd::OwnedFd;

use crate::error::{Error, Result};
use crate::shm::access;
use crate::shm::object::{Expect, Kind, LockMode, LockRef, Object, Spec};
use crate::sync::{LockHandle, RLock};
use crate::typed::element::{elem_desc, Element};

/// `len` elements of `T` in a validated object.
#[derive(Debug)]
pub(crate) struct Elements<T> {
    pub(crate) obj: Object,
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

/// Where a new object's lock is.
pub(crate) enum NewLock<'a> {
    None,
    Own,
    External(&'a RLock),
}

impl<T: Element> Elements<T> {
    /// Creates an object of `kind` with `len` elements, element `i`
    /// initialised to `init(i)` before the header is published.
    pub(crate) fn create(
        name: Option<&str>,
        kind: Kind,
        len: usize,
        lock: NewLock<'_>,
        init: impl Fn(usize) -> T,
    ) -> Result<Self> {
        let (mode, lock_ref) = match lock {
            NewLock::None => (LockMode::None, None),
            NewLock::Own => (LockMode::Own, None),
            NewLock::External(l) => {
                let h = l.handle();
                if name.is_some() && (h.name().is_none() || !h.is_lock_object()) {
                    return Err(Error::InvalidArgument(
                        "a named object's separate lock must be a named RLock",
                    ));
                }
                (
                    LockMode::External,
                    Some(LockRef {
                        id: h.id(),
                        name: h.name().map(str::to_owned),
                    }),
                )
            }
        };
        let spec = Spec {
            kind,
            elem: elem_desc::<T>(),
            count: len,
            stride: core::mem::size_of::<T>(),
            lock: mode,
            lock_ref,
        };
        let obj = Object::create(name, &spec, |obj| {
            for i in 0..len {
                // SAFETY: i < count; element slots are aligned for T
                // (data_offset and stride are multiples of align_of::<T>).
                unsafe { access::store(obj.elem_ptr(i).cast::<T>(), init(i)) };
            }
        })?;
        Ok(Elements::of(obj))
    }

    fn of(obj: Object) -> Self {
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

    fn expect(kind: &[Kind]) -> Expect<'_> {
        Expect {
            kinds: kind,
            elem: elem_desc::<T>(),
            strides: &[],
        }
    }

    pub(crate) fn open(name: &str, kind: &[Kind]) -> Result<Self> {
        Ok(Elements::of(Object::open(name, &Self::expect(kind))?))
    }

    pub(crate) fn from_fd(fd: OwnedFd, kind: &[Kind]) -> Result<Self> {
        Ok(Elements::of(Object::from_fd(fd, &Self::expect(kind))?))
    }

    /// The lock of a locked object: its own slot, the separate lock object
    /// it records (re-opened by name), or `given`, checked against the
    /// recorded identity.
    pub(crate) fn attach_lock(&self, given: Option<&RLock>) -> Result<RLock> {
        match (self.obj.layout.lock, &self.obj.layout.lock_ref, given) {
            (LockMode::Own, _, None) => Ok(RLock::from_handle(LockHandle::of(&self.obj, true))),
            (LockMode::External, Some(r), Some(l)) if l.handle().id() == r.id => Ok(l.clone()),
            (LockMode::External, Some(r), None) => match &r.name {
                Some(n) => RLock::open_slot_of(n, r.id),
                None => Err(Error::LockMismatch),
            },
            _ => Err(Error::LockMismatch),
        }
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    #[inline]
    fn ptr(&self, i: usize) -> *mut T {
        assert!(
            i < self.len(),
            "index {i} out of bounds for length {}",
            self.len()
        );
        // SAFETY: i < count, checked just above; elements are `stride ==
        // size_of::<T>()` apart from element 0 (see `of`).
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
