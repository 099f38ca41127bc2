#![allow(unsafe_code)] // takes cells through the unchecked accessor of `cells.rs` within the validated length.
//! [`AtomicArray`]: a fixed-length run of atomic cells in shared memory.

use core::fmt;
use core::mem::size_of;
use core::sync::atomic::Ordering::Relaxed;

use crate::error::Result;
use crate::shared::{shared_object, Contents, SharedObject};
use crate::shm::object::{Kind, Object, Shape};
use crate::shm::segment::Segment;
use crate::sync::RLock;

use super::cells::{AtomicCells, AtomicRef};
use super::element::AtomicElement;

/// The stride of a padded [`AtomicArray`]: one cache line per element, so
/// that processes updating neighbouring elements do not share a line.
pub const CACHE_LINE: usize = 64;

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

/// A new atomic array: its initial cells, and whether it is padded.
type NewCells<'a, T> = (Contents<'a, T>, bool);

impl<T: AtomicElement> SharedObject for AtomicArray<T> {
    const SHAPE: Shape = AtomicCells::<T>::shape(Kind::AtomicArray, true);
    type Init<'a> = NewCells<'a, T>;

    fn count((cells, _): &NewCells<'_, T>) -> usize {
        cells.len()
    }

    fn stride((_, padded): &NewCells<'_, T>) -> usize {
        Self::SHAPE.strides[usize::from(*padded)]
    }

    fn fill(obj: &Object, (cells, _): NewCells<'_, T>) {
        AtomicCells::fill(obj, cells);
    }

    fn wrap(obj: Object, _lock: Option<&RLock>) -> Result<Self> {
        Ok(AtomicArray {
            cells: AtomicCells::wrap(obj),
        })
    }

    fn segment(&self) -> &Segment {
        self.cells.segment()
    }
}

shared_object! {
    impl[T: AtomicElement] AtomicArray<T>: "array", "shmsync::AtomicArray::<u8>";
    from_slice(data: &[T]) => (Contents::Slice(data), false);
        " holding a copy of `data`, packed", "from_slice(&[7, 8])", "create(&name, &[7, 8])";
}

impl<T: AtomicElement> AtomicArray<T> {
    /// A new anonymous array of `len` zeros (`false` for `bool`), packed;
    /// as [`from_slice`](Self::from_slice) otherwise.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let a = shmsync::AtomicArray::<i32>::zeroed(3)?;
    /// assert_eq!(a.to_vec(), [0, 0, 0]);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As for [`from_slice`](Self::from_slice).
    pub fn zeroed(len: usize) -> Result<Self> {
        Self::create_object(None, (Contents::Zeroed(len), false), None)
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
    /// As for [`from_slice`](Self::from_slice).
    pub fn zeroed_padded(len: usize) -> Result<Self> {
        Self::create_object(None, (Contents::Zeroed(len), true), None)
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
    /// As for [`from_slice`](Self::from_slice).
    pub fn from_slice_padded(data: &[T]) -> Result<Self> {
        Self::create_object(None, (Contents::Slice(data), true), None)
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
        Self::create_object(Some(name), (Contents::Slice(data), true), None)
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
