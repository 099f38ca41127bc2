#![allow(unsafe_code)]
// takes its one cell through the unchecked accessor of `cells.rs` (a validated single value has exactly one).
//! [`AtomicValue`]: one atomic cell in shared memory.

use core::fmt;
use core::sync::atomic::Ordering::{self, Relaxed};

use crate::error::Result;
use crate::shared::{shared_object, Contents, SharedObject};
use crate::shm::object::{Kind, Object, Shape};
use crate::shm::segment::Segment;
use crate::sync::RLock;

use super::cells::{cell_api, AtomicCells, AtomicRef};
use super::element::{AtomicBitwise, AtomicElement, AtomicNumber};

cell_api!([] AtomicValue, "let c = shmsync::AtomicValue::new(", ")?;");

/// One atomic `T` in shared memory: `std::sync::atomic` across processes.
///
/// Named ([`create`](Self::create) / [`open`](Self::open)), anonymous
/// ([`new`](Self::new); shared with children through `fork`, or by file
/// descriptor with [`AsFd`](std::os::fd::AsFd) and [`from_fd`](Self::from_fd)). The methods
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

impl<T: AtomicElement> SharedObject for AtomicValue<T> {
    const SHAPE: Shape = AtomicCells::<T>::shape(Kind::AtomicValue, false);
    type Init<'a> = Contents<'a, T>;

    fn count(init: &Contents<'_, T>) -> usize {
        init.len()
    }

    fn fill(obj: &Object, init: Contents<'_, T>) {
        AtomicCells::fill(obj, init);
    }

    fn wrap(obj: Object, _lock: Option<&RLock>) -> Result<Self> {
        let cells = AtomicCells::wrap(obj);
        debug_assert_eq!(cells.len, 1, "validated by Object");
        Ok(AtomicValue { cells })
    }

    fn segment(&self) -> &Segment {
        self.cells.segment()
    }
}

shared_object! {
    impl[T: AtomicElement] AtomicValue<T>: "value", "shmsync::AtomicValue::<u8>";
    new(v: T) => Contents::One(v); " holding `v`", "new(7)", "create(&name, 7)";
}

impl<T: AtomicElement> AtomicValue<T> {
    /// The cell.
    #[inline]
    fn word(&self) -> &T::Atomic {
        // SAFETY: a value has exactly one cell (count 1 on create; `open`
        // rejects a single-value kind with another count).
        unsafe { self.cells.word(0) }
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
