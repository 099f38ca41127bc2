//! [`AtomicValue`]: one atomic cell in shared memory.

use core::fmt;
use core::sync::atomic::Ordering::{self, Relaxed};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::error::Result;
use crate::shm::object::Kind;

use super::cells::{atomic_common, cell_api, AtomicCells, AtomicRef};
use super::element::{AtomicBitwise, AtomicElement, AtomicNumber};

cell_api!([] AtomicValue, "let c = shmsync::AtomicValue::new(", ")?;");

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

atomic_common! {
    AtomicValue, "::create(", ", 0u8)?;";
}
