//! [`Array`] and [`RawArray`]: a fixed-length run of typed elements in
//! shared memory.

use core::fmt;
use core::time::Duration;

use crate::error::{Error, Result};
use crate::shared::{shared_object, Contents, SharedObject};
use crate::sync::{HasLock, HeldLock, LockHandle};
use crate::sync::{LockError, RLock, TryLockError};
use crate::typed::elements::typed_kind;
use crate::typed::{CChar, Element, Elements};

/// `len` elements of `T` in shared memory, protected by a recursive lock:
/// Python's `multiprocessing.Array`.
///
/// Each method takes the lock for its own duration; hold a guard from
/// [`lock`](Array::lock) to make several accesses one atomic step. As for
/// [`Value`](crate::Value), guards copy elements in and out and never hand
/// out references (the lock is recursive, so references could alias).
///
/// Indexing past the end panics, as slice indexing does.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use shmsync::Array;
/// let a = Array::from_slice(&[1i64, 2, 3])?;
/// a.set(0, 10).unwrap();
/// assert_eq!(a.update(2, |x| x * 10).unwrap(), 30);
/// {
///     let g = a.lock().unwrap();
///     let sum: i64 = (0..g.len()).map(|i| g.get(i)).sum();
///     g.set(1, sum);
/// }
/// assert_eq!(a.to_vec().unwrap(), vec![10, 42, 30]);
/// # Ok(()) }
/// ```
pub struct Array<T> {
    elems: Elements<T>,
    lock: RLock,
}

/// An [`Array`] locked by the current thread. Releases the lock when
/// dropped.
#[must_use = "if unused the lock will immediately unlock"]
pub struct ArrayGuard<'a, T: Element> {
    held: HeldLock<'a, Array<T>>,
}

impl<T: Element> HasLock for Array<T> {
    #[inline]
    fn lock_handle(&self) -> &LockHandle {
        self.lock.handle()
    }
}

type Res<'a, R, T> = core::result::Result<R, LockError<ArrayGuard<'a, T>>>;

typed_kind!(Array: Array, single: false, lock: Own, |obj, given| {
    let lock = RLock::protecting(&obj, given)?;
    Ok(Array {
        elems: Elements::wrap(obj),
        lock,
    })
});

shared_object! {
    impl[T: Element] Array<T>: "array", "shmsync::Array::<u8>";
    from_slice(data: &[T]) => Contents::Slice(data);
        " holding a copy of `data`, with its own lock", "from_slice(&[7, 8])", "create(&name, &[7, 8])";
    with_lock: "with_lock(&[7, 8], &lock)", "create_with_lock(&name, &[7, 8], &lock)";
}

/// `zeroed`, `open_len`, `len` and `is_empty`, the same for both array
/// kinds.
macro_rules! array_common {
    ($($ty:ident, $what:literal, $to_vec:literal;)*) => {$(
        impl<T: Element> $ty<T> {
            #[doc = concat!("A new anonymous array of `len` zeroed elements", $what, "; as")]
            #[doc = concat!("[`from_slice`](", stringify!($ty), "::from_slice) otherwise.")]
            ///
            /// ```
            /// # fn main() -> Result<(), shmsync::Error> {
            #[doc = concat!("let a = shmsync::", stringify!($ty), "::<u32>::zeroed(3)?;")]
            #[doc = concat!("assert_eq!(a.to_vec()", $to_vec, ", [0, 0, 0]);")]
            /// # Ok(()) }
            /// ```
            ///
            /// # Errors
            #[doc = concat!("As for [`from_slice`](", stringify!($ty), "::from_slice).")]
            pub fn zeroed(len: usize) -> Result<Self> {
                Self::create_object(None, Contents::Zeroed(len), None)
            }

            /// Opens an array and checks that it has `len` elements; see
            #[doc = concat!("[`open`](", stringify!($ty), "::open), and its `SIGBUS` limit.")]
            ///
            /// # Errors
            /// [`Error::SizeMismatch`] (in elements) if it has another length;
            #[doc = concat!("otherwise as [`open`](", stringify!($ty), "::open).")]
            pub fn open_len(name: &str, len: usize) -> Result<Self> {
                let a = Self::open(name)?;
                check_count(a.len(), len)?;
                Ok(a)
            }

            /// Number of elements.
            #[inline]
            pub fn len(&self) -> usize {
                self.elems.len()
            }

            /// Whether the array has no elements.
            pub fn is_empty(&self) -> bool {
                self.len() == 0
            }

            /// The address of element 0 in this handle's mapping, for code
            /// that hands the elements to another language (the Python
            /// package's buffer protocol): [`len`](Self::len) elements of
            /// `T` follow, `size_of::<T>()` apart and aligned for `T`,
            /// valid while this handle lives (an empty array's may point
            /// just past the mapping: nothing is to be read there).
            ///
            /// Accesses through it are unchecked and bypass every lock:
            /// other processes may write the elements at any time, so use
            /// atomic or volatile accesses, never references (as for
            /// [`SharedMemory::as_ptr`](crate::SharedMemory::as_ptr)). If a
            /// peer shrinks a named segment's file, accesses past its new
            /// end fault with `SIGBUS` (anonymous segments are sealed
            /// against that).
            ///
            /// ```
            /// # fn main() -> Result<(), shmsync::Error> {
            #[doc = concat!("let a = shmsync::", stringify!($ty), "::<u32>::from_slice(&[7, 8])?;")]
            /// // SAFETY: element 1 is in bounds and aligned; a volatile read
            /// // never makes a reference into the shared page.
            /// let second = unsafe { a.as_ptr().add(1).read_volatile() };
            /// assert_eq!(second, 8);
            /// # Ok(()) }
            /// ```
            #[inline]
            pub fn as_ptr(&self) -> *mut T {
                self.elems.as_ptr()
            }
        }
    )*};
}

array_common! {
    Array, ", with its own lock", ".unwrap()";
    RawArray, "", "";
}

impl<T: Element> Array<T> {
    /// Locks and reads element `i`.
    ///
    /// # Panics
    /// If `i >= len()`.
    ///
    /// # Errors
    /// See [`RLock::lock`].
    #[inline]
    pub fn get(&self, i: usize) -> Res<'_, T, T> {
        self.lock().map(|g| g.get(i))
    }

    /// Locks and writes element `i`.
    ///
    /// # Panics
    /// If `i >= len()`.
    ///
    /// # Errors
    /// See [`RLock::lock`].
    #[inline]
    pub fn set(&self, i: usize, v: T) -> Res<'_, (), T> {
        self.lock().map(|g| g.set(i, v))
    }

    /// Applies `f` to element `i` under the lock; returns the new value.
    ///
    /// # Panics
    /// If `i >= len()`.
    ///
    /// # Errors
    /// See [`RLock::lock`].
    #[inline]
    pub fn update(&self, i: usize, f: impl FnOnce(T) -> T) -> Res<'_, T, T> {
        self.lock().map(|g| g.update(i, f))
    }

    /// A locked snapshot of every element.
    ///
    /// # Errors
    /// See [`RLock::lock`].
    pub fn to_vec(&self) -> Res<'_, Vec<T>, T> {
        self.lock().map(|g| g.to_vec())
    }

    /// Iterates over a locked snapshot (the lock is released before the
    /// first item is returned).
    ///
    /// # Errors
    /// See [`RLock::lock`].
    pub fn iter(&self) -> Res<'_, std::vec::IntoIter<T>, T> {
        self.to_vec().map(Vec::into_iter)
    }

    /// Locks and copies elements `start..start + out.len()` into `out`.
    ///
    /// # Panics
    /// If the range is out of bounds.
    ///
    /// # Errors
    /// See [`RLock::lock`].
    pub fn read(&self, start: usize, out: &mut [T]) -> Res<'_, (), T> {
        self.lock().map(|g| g.read(start, out))
    }

    /// Locks and stores `data` at `start..start + data.len()`.
    ///
    /// # Panics
    /// If the range is out of bounds.
    ///
    /// # Errors
    /// See [`RLock::lock`].
    pub fn write(&self, start: usize, data: &[T]) -> Res<'_, (), T> {
        self.lock().map(|g| g.write(start, data))
    }

    /// Locks the array for a compound operation.
    ///
    /// # Errors
    /// See [`RLock::lock`].
    #[inline(always)]
    pub fn lock(&self) -> Res<'_, ArrayGuard<'_, T>, T> {
        HeldLock::acquire(self, |held| ArrayGuard { held })
    }

    /// Locks the array if the lock is free.
    ///
    /// # Errors
    /// See [`RLock::try_lock`].
    #[inline(always)]
    pub fn try_lock(&self) -> Result<ArrayGuard<'_, T>, TryLockError<ArrayGuard<'_, T>>> {
        HeldLock::try_acquire(self, None, |held| ArrayGuard { held })
    }

    /// Locks the array, waiting at most `timeout`.
    ///
    /// # Errors
    /// See [`RLock::lock_timeout`].
    pub fn lock_timeout(
        &self,
        timeout: Duration,
    ) -> Result<ArrayGuard<'_, T>, TryLockError<ArrayGuard<'_, T>>> {
        HeldLock::try_acquire(self, Some(timeout), |held| ArrayGuard { held })
    }

    /// The lock protecting this array (Python's `get_lock()`).
    pub fn get_lock(&self) -> &RLock {
        &self.lock
    }
}

impl Array<CChar> {
    /// The bytes up to the first NUL (Python's `c_char` array `.value`).
    ///
    /// # Errors
    /// See [`RLock::lock`].
    pub fn value(&self) -> Res<'_, Vec<u8>, CChar> {
        self.lock().map(|g| g.value())
    }

    /// All bytes (Python's `.raw`).
    ///
    /// # Errors
    /// See [`RLock::lock`].
    pub fn raw(&self) -> Res<'_, Vec<u8>, CChar> {
        self.lock().map(|g| g.raw())
    }
}

impl<T: Element> ArrayGuard<'_, T> {
    #[inline]
    fn elems(&self) -> &Elements<T> {
        &self.held.obj().elems
    }

    /// Number of elements.
    #[inline]
    pub fn len(&self) -> usize {
        self.elems().len()
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i`. Panics if out of bounds.
    #[inline]
    pub fn get(&self, i: usize) -> T {
        self.elems().load(i)
    }

    /// Writes element `i`. Panics if out of bounds.
    #[inline]
    pub fn set(&self, i: usize, v: T) {
        self.elems().store(i, v);
    }

    /// Applies `f` to element `i`; returns the new value.
    #[inline]
    pub fn update(&self, i: usize, f: impl FnOnce(T) -> T) -> T {
        let n = f(self.elems().load(i));
        self.elems().store(i, n);
        n
    }

    /// Copies elements `start..start + out.len()` into `out`.
    pub fn read(&self, start: usize, out: &mut [T]) {
        self.elems().read(start, out);
    }

    /// Stores `data` at `start..start + data.len()`.
    pub fn write(&self, start: usize, data: &[T]) {
        self.elems().write(start, data);
    }

    /// Every element.
    pub fn to_vec(&self) -> Vec<T> {
        self.elems().to_vec()
    }

    /// Declares the array repaired after [`LockError::OwnerDied`]; see
    /// [`RLockGuard::mark_consistent`](crate::RLockGuard::mark_consistent).
    pub fn mark_consistent(&self) {
        self.held.mark_consistent();
    }
}

impl ArrayGuard<'_, CChar> {
    /// The bytes up to the first NUL.
    pub fn value(&self) -> Vec<u8> {
        until_nul(self.raw())
    }

    /// All bytes.
    pub fn raw(&self) -> Vec<u8> {
        (0..self.len()).map(|i| self.get(i).0).collect()
    }

    /// Stores `bytes` followed by a NUL if there is room (Python's
    /// `.value = b"..."`).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `bytes` is longer than the array.
    pub fn set_value(&self, bytes: &[u8]) -> Result<()> {
        if bytes.len() > self.len() {
            return Err(Error::InvalidArgument("byte string too long"));
        }
        for (i, &b) in bytes.iter().enumerate() {
            self.set(i, CChar(b));
        }
        if bytes.len() < self.len() {
            self.set(bytes.len(), CChar(0));
        }
        Ok(())
    }
}

impl<T: Element + fmt::Debug> fmt::Debug for ArrayGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArrayGuard")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl<T: Element> fmt::Debug for Array<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Array")
            .field("name", &self.name())
            .field("len", &self.len())
            .field("lock", &self.lock)
            .finish()
    }
}

fn check_count(found: usize, expected: usize) -> Result<()> {
    if found == expected {
        Ok(())
    } else {
        Err(Error::SizeMismatch {
            expected: expected as u64,
            found: found as u64,
        })
    }
}

/// `len` elements of `T` in shared memory **without a lock**: Python's
/// `multiprocessing.RawArray`.
///
/// Each element access is one relaxed atomic load or store (per aligned
/// word of `T`): concurrent use is never undefined behaviour, but
/// read-modify-writes race and lose updates, as in Python.
///
/// ```
/// # fn main() -> Result<(), shmsync::Error> {
/// let a = shmsync::RawArray::<u16>::zeroed(4)?;
/// a.set(1, 7);
/// a.write(2, &[8, 9]);
/// assert_eq!(a.to_vec(), vec![0, 7, 8, 9]);
/// # Ok(()) }
/// ```
pub struct RawArray<T> {
    elems: Elements<T>,
}

typed_kind!(RawArray: RawArray, single: false, lock: None, |obj, _given| {
    Ok(RawArray {
        elems: Elements::wrap(obj),
    })
});

shared_object! {
    impl[T: Element] RawArray<T>: "array", "shmsync::RawArray::<u8>";
    from_slice(data: &[T]) => Contents::Slice(data);
        " holding a copy of `data`", "from_slice(&[7, 8])", "create(&name, &[7, 8])";
}

impl<T: Element> RawArray<T> {
    /// Element `i` (relaxed). Panics if out of bounds.
    #[inline]
    pub fn get(&self, i: usize) -> T {
        self.elems.load(i)
    }

    /// Writes element `i` (relaxed). Panics if out of bounds.
    #[inline]
    pub fn set(&self, i: usize, v: T) {
        self.elems.store(i, v);
    }

    /// Copies elements `start..start + out.len()` into `out`. Panics if out
    /// of bounds.
    pub fn read(&self, start: usize, out: &mut [T]) {
        self.elems.read(start, out);
    }

    /// Stores `data` at `start..start + data.len()`. Panics if out of
    /// bounds.
    pub fn write(&self, start: usize, data: &[T]) {
        self.elems.write(start, data);
    }

    /// A snapshot of every element (not atomic as a whole).
    pub fn to_vec(&self) -> Vec<T> {
        self.elems.to_vec()
    }

    /// Iterates over a snapshot.
    pub fn iter(&self) -> std::vec::IntoIter<T> {
        self.to_vec().into_iter()
    }
}

impl RawArray<CChar> {
    /// The bytes up to the first NUL.
    pub fn value(&self) -> Vec<u8> {
        until_nul(self.raw())
    }

    /// All bytes.
    pub fn raw(&self) -> Vec<u8> {
        (0..self.len()).map(|i| self.get(i).0).collect()
    }
}

impl<T: Element> fmt::Debug for RawArray<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawArray")
            .field("name", &self.name())
            .field("len", &self.len())
            .finish()
    }
}

/// The bytes of a C string: up to the first NUL, if any.
fn until_nul(mut v: Vec<u8>) -> Vec<u8> {
    if let Some(n) = v.iter().position(|&b| b == 0) {
        v.truncate(n);
    }
    v
}
