//! The one shape of every shared object.
//!
//! Each object type (`Value`, `Array`, `AtomicValue`, `Lock`, ...) is a
//! thin wrapper around a validated segment. It implements
//! [`SharedObject`]: its [`Shape`] (the kind constant recorded in the
//! header, the element, the strides and the lock it may have), how a new
//! one is filled, and [`SharedObject::wrap`], the one way a handle is made
//! from a validated segment. The trait's provided methods create, open and
//! attach; [`shared_object!`] turns them into the public constructors
//! (`new`/`create`/`open`/`from_fd`, and the `_with_lock` family of the
//! objects that may share another object's lock), `name`, `persist`,
//! `unlink` and `AsFd`, with the same documentation for every object.
//! `docs/ARCHITECTURE.md` ("Adding an object kind") lists the steps for a
//! new kind.

use std::os::fd::OwnedFd;

use crate::error::Result;
use crate::shm::object::{LockMode, Object, Shape, Spec};
use crate::shm::segment::Segment;
use crate::sync::RLock;

/// A kind of shared object: what its segments look like and how a handle
/// on one is made. Crate-private, so sealed.
pub(crate) trait SharedObject: Sized {
    /// What every segment of this kind looks like (checked by `open`).
    const SHAPE: Shape;

    /// What a new object is made from: its initial contents.
    type Init<'a>;

    /// The number of elements of a new object made from `init`.
    fn count(_init: &Self::Init<'_>) -> usize {
        0
    }

    /// The stride of a new object made from `init`.
    fn stride(_init: &Self::Init<'_>) -> usize {
        Self::SHAPE.strides[0]
    }

    /// Writes `init` into a new object, before its header is published.
    fn fill(_obj: &Object, _init: Self::Init<'_>) {}

    /// Wraps a validated segment of this kind: the one way a handle is
    /// made. `lock` is the lock given to a `_with_lock` constructor (kinds
    /// whose shape `shares_lock`), `None` everywhere else.
    ///
    /// # Errors
    /// What attaching the object's lock gives (`Error::LockMismatch`).
    fn wrap(obj: Object, lock: Option<&RLock>) -> Result<Self>;

    /// The segment, for the naming and descriptor methods.
    fn segment(&self) -> &Segment;

    /// Creates a new object, named or anonymous (`name` `None`), with its
    /// own lock, or with `lock` if one is given (kinds that `shares_lock`).
    fn create_object(
        name: Option<&str>,
        init: Self::Init<'_>,
        lock: Option<&RLock>,
    ) -> Result<Self> {
        let shape = Self::SHAPE;
        let (mode, lock_ref) = match lock {
            None => (shape.lock, None),
            Some(l) => {
                debug_assert!(shape.shares_lock);
                (LockMode::External, Some(l.lock_ref(name.is_some())?))
            }
        };
        let spec = Spec {
            shape,
            count: Self::count(&init),
            stride: Self::stride(&init),
            lock: mode,
            lock_ref,
        };
        let obj = Object::create(name, &spec, |obj| Self::fill(obj, init))?;
        Self::wrap(obj, lock)
    }

    /// Opens the named object `name` and validates it as this kind.
    fn open_object(name: &str) -> Result<Self> {
        Self::wrap(Object::open(name, &Self::SHAPE)?, None)
    }

    /// Attaches to the object behind `fd` and validates it as this kind.
    fn from_fd_object(fd: OwnedFd, lock: Option<&RLock>) -> Result<Self> {
        Self::wrap(Object::from_fd(fd, &Self::SHAPE)?, lock)
    }
}

/// The initial elements of a new object.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Contents<'a, T> {
    /// One element: a value.
    One(T),
    /// This many zero elements.
    Zeroed(usize),
    /// A copy of a slice.
    Slice(&'a [T]),
}

impl<T: Copy> Contents<'_, T> {
    /// The number of elements.
    pub(crate) fn len(&self) -> usize {
        match self {
            Contents::One(_) => 1,
            Contents::Zeroed(n) => *n,
            Contents::Slice(d) => d.len(),
        }
    }

    /// Element `i` (`i < len()`), with `zero` for the zero element.
    pub(crate) fn get(&self, i: usize, zero: T) -> T {
        match self {
            Contents::One(v) => *v,
            Contents::Zeroed(_) => zero,
            Contents::Slice(d) => d[i],
        }
    }
}

/// The public constructors, naming and descriptor methods of a
/// [`SharedObject`], with the same documentation for every object:
///
/// ```text
/// shared_object! {
///     impl[T: Element] Value<T>: "value", "shmsync::Value::<u8>";
///     new(v: T) => Contents::One(v); ", holding `v`", "new(7)", "create(&name, 7)";
///     with_lock: "with_lock(7, &lock)", "create_with_lock(&name, 7, &lock)";
/// }
/// ```
///
/// generates, on `Value<T>` (called "value" in the docs), the anonymous
/// constructor `new(v: T)` and `create(name, v: T)`, both made from the
/// `Init` `Contents::One(v)`; `open`, `from_fd`, `name`, `persist`,
/// `unlink` and `AsFd`; and, with the `with_lock:` line (kinds whose shape
/// `shares_lock`), `with_lock`, `create_with_lock` and `from_fd_with_lock`
/// with the same arguments plus the lock. The doc examples call the type
/// through the path given (`shmsync::Value::<u8>`) with the argument lists
/// given.
macro_rules! shared_object {
    (
        impl[$($gen:tt)*] $ty:ty: $what:literal, $path:literal;
        $new:ident($($arg:ident: $argty:ty),*) => $init:expr;
            $holding:literal, $new_ex:literal, $create_ex:literal;
        with_lock: $with_ex:literal, $create_with_ex:literal;
    ) => {
        crate::shared::shared_object!(@common [$($gen)*] $ty, $what, $path;
            $new($($arg: $argty),*) => $init; $holding, $new_ex, $create_ex;
            "[`Error::LockMismatch`](crate::Error::LockMismatch) if its separate \
             lock cannot be re-attached (the object records its name and identity); ",
            "An object whose separate lock is anonymous needs \
             [`from_fd_with_lock`](Self::from_fd_with_lock).");
        crate::shared::shared_object!(@with_lock [$($gen)*] $ty, $what, $path;
            $new($($arg: $argty),*) => $init; $with_ex, $create_with_ex);
    };
    (
        impl[$($gen:tt)*] $ty:ty: $what:literal, $path:literal;
        $new:ident($($arg:ident: $argty:ty),*) => $init:expr;
            $holding:literal, $new_ex:literal, $create_ex:literal;
    ) => {
        crate::shared::shared_object!(@common [$($gen)*] $ty, $what, $path;
            $new($($arg: $argty),*) => $init; $holding, $new_ex, $create_ex; "", "");
    };
    (
        @common [$($gen:tt)*] $ty:ty, $what:literal, $path:literal;
        $new:ident($($arg:ident: $argty:ty),*) => $init:expr;
            $holding:literal, $new_ex:literal, $create_ex:literal;
            $open_lock_err:literal, $fd_lock_doc:literal
    ) => {
        impl<$($gen)*> $ty {
            #[doc = concat!("A new anonymous ", $what, $holding, ".")]
            ///
            /// It is a memfd sealed against resizing, shared with children
            /// by `fork` or through its descriptor
            /// ([`AsFd`](std::os::fd::AsFd), [`from_fd`](Self::from_fd)).
            ///
            /// ```
            /// # fn main() -> Result<(), shmsync::Error> {
            #[doc = concat!("let x = ", $path, "::", $new_ex, "?;")]
            /// assert_eq!(x.name(), None);
            /// # Ok(()) }
            /// ```
            ///
            /// # Errors
            /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) if
            /// it would be too large to map or its element type is aligned
            /// to more than 4096 bytes;
            /// [`Error::Io`](crate::Error::Io) if the memfd cannot be made.
            pub fn $new($($arg: $argty),*) -> crate::Result<Self> {
                <Self as crate::shared::SharedObject>::create_object(None, $init, None)
            }

            #[doc = concat!("A new named ", $what, $holding, ".")]
            ///
            /// The file is `/dev/shm/NAME`, made with `O_EXCL` and mode 0600
            /// whatever the umask (see [names, files and
            /// descriptors](crate::SharedMemory#names-files-and-descriptors)).
            /// Any process can then [`open`](Self::open) it by name.
            ///
            /// This handle unlinks the name when it (and every clone of it)
            /// is dropped, in the creating process only (not in forked
            /// children), unless [`persist`](Self::persist) was called. A
            /// named file can be truncated by any process allowed to write
            /// it, which makes accesses fault with `SIGBUS`: see
            #[doc = concat!("[`open`](Self::open). For a ", $what, " private to this process")]
            #[doc = concat!("and its children, use [`", stringify!($new), "`](Self::", stringify!($new), ").")]
            ///
            /// ```
            /// # fn main() -> Result<(), shmsync::Error> {
            /// let name = format!("doc_create_{}", std::process::id());
            #[doc = concat!("let x = ", $path, "::", $create_ex, "?;")]
            /// assert_eq!(x.name(), Some(name.as_str()));
            #[doc = concat!("let again = ", $path, "::", $create_ex, ";")]
            /// assert!(matches!(again, Err(shmsync::Error::AlreadyExists { .. })));
            /// drop(x); // unlinks the name
            /// # Ok(()) }
            /// ```
            ///
            /// # Errors
            /// [`Error::InvalidName`](crate::Error::InvalidName) for a name
            /// that is empty, longer than 255 bytes, or contains `/` (after
            /// an optional leading one) or NUL;
            /// [`Error::AlreadyExists`](crate::Error::AlreadyExists);
            /// [`Error::Stale`](crate::Error::Stale) for a name left behind
            /// by a creator that died (remove it with
            /// [`SharedMemory::unlink_name`](crate::SharedMemory::unlink_name));
            #[doc = concat!("otherwise as [`", stringify!($new), "`](Self::", stringify!($new), ").")]
            pub fn create(name: &str, $($arg: $argty),*) -> crate::Result<Self> {
                <Self as crate::shared::SharedObject>::create_object(Some(name), $init, None)
            }

            #[doc = concat!("Opens the ", $what, " created under `name` by any process (one")]
            /// leading `/` is optional).
            ///
            /// The name is opened without following a symbolic link and
            /// must be a regular file. `open` waits (at most a second) for
            /// a creator that has not finished, then validates the whole
            /// segment once, against the file's real size and this type.
            ///
            /// # Truncation
            ///
            /// A named file cannot be sealed: any process allowed to write
            /// `/dev/shm/NAME` can shrink it (`ftruncate`) while this
            /// handle lives, and the handle's next access to the lost
            /// pages then faults with `SIGBUS`, which kills the process
            /// unless it handles the signal. The size is checked here,
            /// once; it cannot be checked on every access. Anonymous
            /// objects (memfds) are sealed against it. See [names, files
            /// and descriptors](crate::SharedMemory#names-files-and-descriptors).
            ///
            /// ```
            /// # fn main() -> Result<(), shmsync::Error> {
            /// let name = format!("doc_open_{}", std::process::id());
            #[doc = concat!("let x = ", $path, "::", $create_ex, "?;")]
            #[doc = concat!("let y = ", $path, "::open(&name)?; // e.g. in another process")]
            /// assert_eq!(y.name(), x.name());
            /// # Ok(()) }
            /// ```
            ///
            /// # Errors
            /// [`Error::NotFound`](crate::Error::NotFound);
            /// [`Error::InvalidName`](crate::Error::InvalidName) for a bad
            /// name (as for [`create`](Self::create)), a symbolic link or a
            /// file that is not regular;
            /// [`Error::TypeMismatch`](crate::Error::TypeMismatch) if the
            /// name holds another kind of object, another element type or
            /// another element stride;
            /// [`Error::NotReady`](crate::Error::NotReady) if its creator
            /// has not finished within the wait (or died);
            #[doc = concat!($open_lock_err, "for a damaged segment")]
            /// [`Error::BadMagic`](crate::Error::BadMagic),
            /// [`Error::VersionMismatch`](crate::Error::VersionMismatch),
            /// [`Error::Corrupt`](crate::Error::Corrupt),
            /// [`Error::Truncated`](crate::Error::Truncated) or
            /// [`Error::SizeMismatch`](crate::Error::SizeMismatch);
            /// [`Error::Io`](crate::Error::Io).
            pub fn open(name: &str) -> crate::Result<Self> {
                <Self as crate::shared::SharedObject>::open_object(name)
            }

            #[doc = concat!("Attaches to the ", $what, " behind `fd`: a descriptor from")]
            /// [`AsFd::as_fd`](std::os::fd::AsFd::as_fd) of a handle in
            /// another process (inherited, or passed over a Unix socket).
            ///
            /// The descriptor must be a regular file, and a memfd must be
            /// sealed against shrinking, as the crate's anonymous objects
            /// are: whoever holds an unsealed memfd could shrink it under
            /// the mapping.
            #[doc = $fd_lock_doc]
            ///
            /// # Truncation
            ///
            /// A descriptor of a named file (`/dev/shm/NAME`) has the limit
            /// of [`open`](Self::open): a peer that shrinks the file makes
            /// this handle's accesses to the lost pages fault with
            /// `SIGBUS`. See [names, files and
            /// descriptors](crate::SharedMemory#names-files-and-descriptors).
            ///
            /// ```
            /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
            /// use std::os::fd::AsFd;
            #[doc = concat!("let x = ", $path, "::", $new_ex, "?;")]
            /// let fd = x.as_fd().try_clone_to_owned()?; // or received over a socket
            #[doc = concat!("let y = ", $path, "::from_fd(fd)?;")]
            /// assert_eq!(y.name(), None);
            /// # Ok(()) }
            /// ```
            ///
            /// # Errors
            /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) for
            /// a descriptor that is not a regular file or an unsealed memfd;
            /// otherwise as for [`open`](Self::open).
            pub fn from_fd(fd: std::os::fd::OwnedFd) -> crate::Result<Self> {
                <Self as crate::shared::SharedObject>::from_fd_object(fd, None)
            }

            /// The segment's name (without a leading `/`), `None` if
            /// anonymous.
            ///
            /// ```
            /// # fn main() -> Result<(), shmsync::Error> {
            /// let name = format!("/doc_name_{}", std::process::id());
            #[doc = concat!("let x = ", $path, "::", $create_ex, "?;")]
            /// assert_eq!(x.name(), Some(&name[1..]));
            /// # Ok(()) }
            /// ```
            pub fn name(&self) -> Option<&str> {
                crate::shared::SharedObject::segment(self).name()
            }

            /// Keeps the name after this creating handle is dropped (the
            /// handle that created a name unlinks it on drop, in the
            /// creating process only).
            ///
            /// ```
            /// # fn main() -> Result<(), shmsync::Error> {
            /// let name = format!("doc_persist_{}", std::process::id());
            #[doc = concat!("let x = ", $path, "::", $create_ex, "?;")]
            /// x.persist();
            /// drop(x);
            #[doc = concat!("let y = ", $path, "::open(&name)?;")]
            /// y.unlink()?; // clean up
            /// # Ok(()) }
            /// ```
            pub fn persist(&self) {
                crate::shared::SharedObject::segment(self).persist();
            }

            /// Removes the name now; attached handles keep working.
            ///
            /// ```
            /// # fn main() -> Result<(), shmsync::Error> {
            /// let name = format!("doc_unlink_{}", std::process::id());
            #[doc = concat!("let x = ", $path, "::", $create_ex, "?;")]
            /// x.unlink()?;
            #[doc = concat!("let gone = ", $path, "::open(&name);")]
            /// assert!(matches!(gone, Err(shmsync::Error::NotFound { .. })));
            /// # Ok(()) }
            /// ```
            ///
            /// # Errors
            /// [`Error::NotFound`](crate::Error::NotFound) if already
            /// removed, [`Error::InvalidArgument`](crate::Error::InvalidArgument)
            /// if anonymous.
            pub fn unlink(&self) -> crate::Result<()> {
                crate::shared::SharedObject::segment(self).unlink()
            }
        }

        impl<$($gen)*> std::os::fd::AsFd for $ty {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                crate::shared::SharedObject::segment(self).fd()
            }
        }
    };
    (
        @with_lock [$($gen:tt)*] $ty:ty, $what:literal, $path:literal;
        $new:ident($($arg:ident: $argty:ty),*) => $init:expr;
            $with_ex:literal, $create_with_ex:literal
    ) => {
        impl<$($gen)*> $ty {
            #[doc = concat!("A new anonymous ", $what, " protected by an existing lock (Python's")]
            /// `lock=` argument): several objects can share one lock.
            ///
            /// ```
            /// # fn main() -> Result<(), shmsync::Error> {
            /// let lock = shmsync::RLock::new()?;
            #[doc = concat!("let a = ", $path, "::", $with_ex, "?;")]
            #[doc = concat!("let b = ", $path, "::", $with_ex, "?;")]
            /// let _g = a.lock().unwrap();
            /// assert!(b.get_lock().is_held_by_current_thread()); // one lock for both
            /// # Ok(()) }
            /// ```
            ///
            /// # Errors
            #[doc = concat!("As for [`", stringify!($new), "`](Self::", stringify!($new), ").")]
            pub fn with_lock($($arg: $argty,)* lock: &crate::RLock) -> crate::Result<Self> {
                <Self as crate::shared::SharedObject>::create_object(None, $init, Some(lock))
            }

            #[doc = concat!("A new named ", $what, " protected by an existing *named* [`RLock`](crate::RLock)")]
            /// object, whose name and identity are recorded, so that
            /// [`open`](Self::open) re-attaches it. See
            /// [`create`](Self::create) for the name and
            /// [`with_lock`](Self::with_lock) for the lock.
            ///
            /// ```
            /// # fn main() -> Result<(), shmsync::Error> {
            /// let pid = std::process::id();
            /// let (name, lock_name) = (format!("doc_cwl_{pid}"), format!("doc_cwl_lock_{pid}"));
            /// let lock = shmsync::RLock::create(&lock_name)?;
            #[doc = concat!("let x = ", $path, "::", $create_with_ex, "?;")]
            #[doc = concat!("let y = ", $path, "::open(&name)?; // re-opens the lock by its name")]
            /// let _g = y.lock().unwrap();
            /// assert!(x.get_lock().is_held_by_current_thread()); // one lock
            /// # Ok(()) }
            /// ```
            ///
            /// # Errors
            /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) if
            /// the lock is anonymous or is not an `RLock` object (the lock
            /// of another object); otherwise as for
            /// [`create`](Self::create).
            pub fn create_with_lock(
                name: &str,
                $($arg: $argty,)*
                lock: &crate::RLock,
            ) -> crate::Result<Self> {
                <Self as crate::shared::SharedObject>::create_object(Some(name), $init, Some(lock))
            }

            #[doc = concat!("Attaches to the ", $what, " behind `fd`, which uses `lock`. The")]
            /// descriptor must be as for [`from_fd`](Self::from_fd), with
            /// its `SIGBUS` limit for a named file.
            ///
            /// ```
            /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
            /// use std::os::fd::AsFd;
            /// let lock = shmsync::RLock::new()?;
            #[doc = concat!("let x = ", $path, "::", $with_ex, "?;")]
            /// let fd = x.as_fd().try_clone_to_owned()?;
            #[doc = concat!("assert!(", $path, "::from_fd(fd.try_clone()?).is_err()); // the lock has no name")]
            #[doc = concat!("let y = ", $path, "::from_fd_with_lock(fd, &lock)?;")]
            /// let _g = y.lock().unwrap();
            /// assert!(lock.is_held_by_current_thread());
            /// # Ok(()) }
            /// ```
            ///
            /// # Errors
            /// [`Error::LockMismatch`](crate::Error::LockMismatch) if it was
            /// not created with this lock; otherwise as for
            /// [`from_fd`](Self::from_fd).
            pub fn from_fd_with_lock(
                fd: std::os::fd::OwnedFd,
                lock: &crate::RLock,
            ) -> crate::Result<Self> {
                <Self as crate::shared::SharedObject>::from_fd_object(fd, Some(lock))
            }
        }
    };
}
pub(crate) use shared_object;
