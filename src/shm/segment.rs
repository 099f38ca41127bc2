#![allow(unsafe_code)] // the mapping's bytes through `shm::access`, and its unmap (kept while a lock is held)
//! One mapping of one shared-memory file, and [`SharedMemory`], the raw
//! bytes API on top of it.

use core::mem::ManuallyDrop;
use core::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use memmap2::{MmapOptions, MmapRaw};

use crate::error::{Error, Result};
use crate::shm::access;
use crate::sys;
use crate::sys::liveness::LivenessFile;

/// A mapped shared-memory file. Lives behind an `Arc`: every handle onto
/// objects in it keeps the mapping alive.
pub(crate) struct Segment {
    /// Unmapped on drop, unless this thread still has a lock of it linked
    /// into its robust list (a forgotten guard): the mapping is then left
    /// in place, so that the list never points at unmapped memory.
    map: ManuallyDrop<MmapRaw>,
    fd: OwnedFd,
    /// The name without its leading `/`, for named segments.
    name: Option<String>,
    /// PID of the process that created the name (0: not created here). A
    /// forked child inherits the handle but must not unlink its parent's name.
    creator_pid: u32,
    unlink_on_drop: AtomicBool,
    /// This process's liveness description of the file, attached (to the
    /// process's description of the file) by `Object` only for segments
    /// with a lock slot. Kept, like the mapping, while a forgotten guard's
    /// record names it (its table entry is part of the lock's key).
    pub(crate) liveness: ManuallyDrop<LivenessFile>,
}

impl core::fmt::Debug for Segment {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Segment")
            .field("name", &self.name)
            .field("len", &self.map.len())
            .field("ptr", &self.map.as_ptr())
            .finish_non_exhaustive()
    }
}

impl Segment {
    /// Creates a named segment of `len` zero bytes (`O_EXCL`, mode 0600).
    /// The name is unlinked again if anything after `shm_open` fails.
    pub(crate) fn create_named(name: &str, len: u64) -> Result<Segment> {
        let bare = sys::file::check_name(name)?;
        check_size(len)?;
        let fd = sys::file::create(bare)?;
        let made = (|| {
            sys::file::set_len(&fd, len)?;
            map(&fd, len)
        })();
        match made {
            Ok(map) => Ok(Segment {
                map: ManuallyDrop::new(map),
                fd,
                name: Some(bare.to_owned()),
                creator_pid: sys::thread::pid(),
                unlink_on_drop: AtomicBool::new(true),
                liveness: ManuallyDrop::new(LivenessFile::default()),
            }),
            Err(e) => {
                let _ = sys::file::unlink(bare);
                Err(e)
            }
        }
    }

    /// Creates an anonymous segment: a memfd whose size is sealed.
    pub(crate) fn create_anonymous(len: u64) -> Result<Segment> {
        check_size(len)?;
        let fd = sys::file::memfd()?;
        sys::file::set_len(&fd, len)?;
        sys::file::seal_size(&fd)?;
        let map = map(&fd, len)?;
        Ok(Segment {
            map: ManuallyDrop::new(map),
            fd,
            name: None,
            creator_pid: 0,
            unlink_on_drop: AtomicBool::new(false),
            liveness: ManuallyDrop::new(LivenessFile::default()),
        })
    }

    /// Opens a named segment as it is now (size from `fstat`).
    pub(crate) fn open_named(name: &str) -> Result<(OwnedFd, String)> {
        let bare = sys::file::check_name(name)?;
        Ok((sys::file::open(bare)?, bare.to_owned()))
    }

    /// Maps an open file of (at least) `len` bytes, as checked by the caller
    /// against a fresh `fstat`.
    pub(crate) fn attach(fd: OwnedFd, name: Option<String>, len: u64) -> Result<Segment> {
        check_size(len)?;
        let map = map(&fd, len)?;
        Ok(Segment {
            map: ManuallyDrop::new(map),
            fd,
            name,
            creator_pid: 0,
            unlink_on_drop: AtomicBool::new(false),
            liveness: ManuallyDrop::new(LivenessFile::default()),
        })
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    #[inline]
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.map.as_mut_ptr()
    }

    pub(crate) fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    #[inline]
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Keeps the name after this process's handles are dropped.
    pub(crate) fn persist(&self) {
        self.unlink_on_drop.store(false, Relaxed);
    }

    /// Removes the name now (the memory lives on while mapped anywhere).
    pub(crate) fn unlink(&self) -> Result<()> {
        self.unlink_on_drop.store(false, Relaxed);
        match &self.name {
            Some(n) => sys::file::unlink(n),
            None => Err(Error::InvalidArgument("an anonymous segment has no name")),
        }
    }

    /// Copies bytes out, bounds-checked.
    pub(crate) fn read_at(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        self.check_range(offset, buf.len())?;
        // SAFETY: the range lies inside the mapping (checked above), which
        // lives as long as `self`.
        unsafe { access::copy_out(self.as_ptr().add(offset), buf) };
        Ok(())
    }

    /// Copies bytes in, bounds-checked.
    pub(crate) fn write_at(&self, offset: usize, data: &[u8]) -> Result<()> {
        self.check_range(offset, data.len())?;
        // SAFETY: the range lies inside the (writable, shared) mapping.
        unsafe { access::copy_in(self.as_ptr().add(offset), data) };
        Ok(())
    }

    fn check_range(&self, offset: usize, len: usize) -> Result<()> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len() => Ok(()),
            _ => Err(Error::OutOfBounds {
                offset,
                len,
                size: self.len(),
            }),
        }
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        if !crate::sys::robust::holds_node_in(self.as_ptr() as usize, self.len()) {
            // SAFETY: dropped once, here; nothing uses the mapping or the
            // liveness description after the last handle (this `Segment`) is gone.
            unsafe {
                ManuallyDrop::drop(&mut self.map);
                ManuallyDrop::drop(&mut self.liveness);
            }
        }
        if self.unlink_on_drop.load(Relaxed) && self.creator_pid == sys::thread::pid() {
            if let Some(n) = &self.name {
                // Only our own file: the name may have been unlinked and
                // reused by another creator meanwhile. (A reuse between this
                // check and the unlink remains possible, as with any
                // name-based unlink.)
                if sys::file::name_is_file(n, &self.fd) {
                    let _ = sys::file::unlink(n);
                }
            }
        }
    }
}

fn check_size(len: u64) -> Result<()> {
    if len == 0 {
        return Err(Error::InvalidArgument("size must be positive"));
    }
    if usize::try_from(len).map_or(true, |l| l > isize::MAX as usize) {
        return Err(Error::InvalidArgument(
            "size does not fit the address space",
        ));
    }
    Ok(())
}

fn map(fd: &OwnedFd, len: u64) -> Result<MmapRaw> {
    // `map_raw` is a MAP_SHARED, read-write mapping of the file (never
    // `map_anon`, which is MAP_PRIVATE and would not be shared with a
    // forked child). `len` was checked by `check_size`.
    MmapOptions::new()
        .len(usize::try_from(len).map_err(|_| Error::InvalidArgument("size too large"))?)
        .map_raw(fd)
        .map_err(|e| Error::Io {
            op: "mmap",
            errno: e.raw_os_error().unwrap_or(libc::EINVAL),
        })
}

/// A raw block of shared bytes: Python's
/// `multiprocessing.shared_memory.SharedMemory`.
///
/// Named blocks are POSIX shared-memory objects (`/dev/shm/NAME`), and are
/// byte-compatible with CPython: a block created here can be opened by
/// `SharedMemory(name)` in Python, and one created by Python with
/// `SharedMemory(create=True, size=n)` can be opened here by its `.name`.
/// Anonymous blocks are memfds, shared with children through `fork` or by
/// passing the file descriptor ([`SharedMemory::as_fd`],
/// [`SharedMemory::from_fd`]).
///
/// The bytes are never exposed as a slice, since other processes may write
/// them at any time: copy them with [`read_at`](Self::read_at) and
/// [`write_at`](Self::write_at), or use [`as_ptr`](Self::as_ptr) with
/// atomics or volatile accesses of your own.
///
/// The handle that created a name unlinks it when its last clone is dropped
/// (in the creating process only, not in forked children), unless
/// [`persist`](Self::persist) was called; handles from
/// [`open`](Self::open) never unlink.
///
/// # Names, files and descriptors
///
/// These rules hold for every object of the crate, typed or raw:
///
/// - **Mode.** `create` makes `/dev/shm/NAME` with `O_EXCL` and then sets
///   its mode to exactly 0600 (`fchmod`), whatever the process's umask:
///   only the creating user (and root) can open it.
/// - **No symbolic links.** `open` (and the re-attachment of a separate
///   lock by its recorded name) opens `/dev/shm/NAME` with `O_NOFOLLOW`,
///   never waits in the open itself (`O_NONBLOCK`), and requires a regular
///   file: a symbolic link, directory or FIFO under the name is
///   [`Error::InvalidName`], so another user cannot redirect our writes to
///   a file of their choosing.
/// - **Descriptors.** `from_fd` requires a regular file; a memfd must be
///   sealed against shrinking (`F_SEAL_SHRINK`, as this crate's anonymous
///   objects are), else [`Error::InvalidArgument`]: whoever holds an
///   unsealed memfd could shrink it under our mapping. A named file passed
///   by descriptor is accepted with the same limit as a named `open`: a
///   peer that may write the file may also truncate it, and accesses past
///   its new end fault with `SIGBUS`.
/// - **Truncation.** A named file cannot be sealed: any process allowed to
///   write `/dev/shm/NAME` can shrink it (`ftruncate`) while it is mapped,
///   and an access to the lost pages then faults with `SIGBUS`, which
///   kills the process unless it handles the signal. `open` checks the
///   size once; nothing can check it on every access. This holds for every
///   named object (`create`, `open`, and `from_fd` of a named file), and is
///   why anonymous objects, which are memfds sealed against resizing, are
///   preferred between related processes.
/// - **Stale names.** A creator killed inside `create` can leave its name
///   behind, empty or with a header never published. `open` then gives
///   [`Error::NotReady`] and a typed `create` gives [`Error::Stale`] (after
///   the same bounded wait, in case the creator is only slow);
///   [`SharedMemory::unlink_name`] removes the name.
///
/// ```
/// # fn main() -> Result<(), shmsync::Error> {
/// use shmsync::SharedMemory;
/// let name = format!("doc_shm_{}", std::process::id());
/// let a = SharedMemory::create(&name, 4096)?;
/// a.write_at(0, b"hello")?;
/// let b = SharedMemory::open(&name)?;
/// let mut buf = [0u8; 5];
/// b.read_at(0, &mut buf)?;
/// assert_eq!(&buf, b"hello");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SharedMemory {
    seg: Arc<Segment>,
}

impl SharedMemory {
    /// Creates a new named block of `size` zero bytes, mode 0600 whatever
    /// the umask (see [Names, files and
    /// descriptors](SharedMemory#names-files-and-descriptors)).
    ///
    /// # Errors
    /// [`Error::InvalidName`], [`Error::InvalidArgument`] for a zero size,
    /// [`Error::AlreadyExists`] for any taken name (a raw block has no
    /// header by which a dead creator's leftover could be told apart: see
    /// [`unlink_name`](Self::unlink_name)), or [`Error::Io`].
    pub fn create(name: &str, size: usize) -> Result<Self> {
        Ok(SharedMemory {
            seg: Arc::new(Segment::create_named(name, size as u64)?),
        })
    }

    /// Opens an existing named block, mapping its whole current size.
    ///
    /// The name must be a regular file: a symbolic link is never followed
    /// (see [Names, files and
    /// descriptors](SharedMemory#names-files-and-descriptors)).
    ///
    /// # Truncation
    ///
    /// A process allowed to write the file can shrink it while this handle
    /// lives; [`read_at`](Self::read_at), [`write_at`](Self::write_at) and
    /// accesses through [`as_ptr`](Self::as_ptr) to the lost pages then
    /// fault with `SIGBUS` (see [Names, files and
    /// descriptors](SharedMemory#names-files-and-descriptors)).
    ///
    /// # Errors
    /// [`Error::InvalidName`] (also for a symbolic link or a non-regular
    /// file), [`Error::NotFound`], [`Error::Truncated`] for an empty file,
    /// or [`Error::Io`] (`EAGAIN` while another process holds a lease on
    /// the file).
    pub fn open(name: &str) -> Result<Self> {
        let (fd, bare) = Segment::open_named(name)?;
        let len = sys::file::len(&fd)?;
        if len == 0 {
            return Err(Error::Truncated { needed: 1, len: 0 });
        }
        Ok(SharedMemory {
            seg: Arc::new(Segment::attach(fd, Some(bare), len)?),
        })
    }

    /// Creates an anonymous block (a memfd sealed against shrinking and
    /// growing), shared with children by `fork` or by its file descriptor.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let m = shmsync::SharedMemory::anonymous(100)?;
    /// assert_eq!(m.len(), 100);
    /// assert_eq!(m.name(), None);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a zero size, or [`Error::Io`].
    pub fn anonymous(size: usize) -> Result<Self> {
        Ok(SharedMemory {
            seg: Arc::new(Segment::create_anonymous(size as u64)?),
        })
    }

    /// Maps the block behind a file descriptor received from another
    /// process (e.g. over a Unix socket, or inherited by a child).
    ///
    /// The descriptor must be a regular file opened read-write. A memfd
    /// must be sealed against shrinking (`F_SEAL_SHRINK`), as
    /// [`anonymous`](Self::anonymous) blocks are: otherwise any process
    /// holding it could truncate it under the mapping. A named file is
    /// accepted, and like a named block it faults with `SIGBUS` past its
    /// end if a peer truncates it.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// use std::os::fd::AsFd;
    /// let m = shmsync::SharedMemory::anonymous(64)?;
    /// let fd = m.as_fd().try_clone_to_owned().unwrap();
    /// let same = shmsync::SharedMemory::from_fd(fd)?;
    /// m.write_at(3, &[7])?;
    /// let mut b = [0];
    /// same.read_at(3, &mut b)?;
    /// assert_eq!(b, [7]);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a descriptor that is not a regular
    /// file or an unsealed memfd, [`Error::Truncated`] for an empty file,
    /// or [`Error::Io`].
    pub fn from_fd(fd: OwnedFd) -> Result<Self> {
        sys::file::check_passed_fd(fd.as_fd())?;
        let len = sys::file::len(&fd)?;
        if len == 0 {
            return Err(Error::Truncated { needed: 1, len: 0 });
        }
        Ok(SharedMemory {
            seg: Arc::new(Segment::attach(fd, None, len)?),
        })
    }

    /// The name, without a leading `/` (as CPython's `.name`), or `None`
    /// for an anonymous block.
    pub fn name(&self) -> Option<&str> {
        self.seg.name()
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.seg.len()
    }

    /// Always `false`: blocks have at least one byte.
    pub fn is_empty(&self) -> bool {
        self.seg.len() == 0
    }

    /// The start of the mapping, valid while any clone of this handle lives.
    ///
    /// Other processes may write these bytes concurrently: use atomic or
    /// volatile accesses, never references. If a peer shrinks a named
    /// block's file, accesses past the new end fault with `SIGBUS`
    /// (anonymous blocks are sealed against that).
    pub fn as_ptr(&self) -> *mut u8 {
        self.seg.as_ptr()
    }

    /// Copies `buf.len()` bytes starting at `offset` into `buf`.
    ///
    /// # Errors
    /// [`Error::OutOfBounds`] if the range does not fit the block.
    pub fn read_at(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        self.seg.read_at(offset, buf)
    }

    /// Copies `data` into the block starting at `offset`.
    ///
    /// # Errors
    /// [`Error::OutOfBounds`] if the range does not fit the block.
    pub fn write_at(&self, offset: usize, data: &[u8]) -> Result<()> {
        self.seg.write_at(offset, data)
    }

    /// Removes the name from `/dev/shm` now; mappings stay valid.
    ///
    /// # Errors
    /// [`Error::NotFound`] if it was already removed,
    /// [`Error::InvalidArgument`] for an anonymous block.
    pub fn unlink(&self) -> Result<()> {
        self.seg.unlink()
    }

    /// Keeps the name when this (creating) handle is dropped.
    pub fn persist(&self) {
        self.seg.persist();
    }

    /// Removes the name `name` from `/dev/shm`, whatever it is: the way out
    /// of [`Error::Stale`] (or of a [`Error::NotReady`] that never ends)
    /// left by a creator that died inside `create`.
    ///
    /// It removes the name of *any* object, live ones included (processes
    /// that have it open keep using it, but nobody can open it by name any
    /// more, and the next `create` makes a separate object), and a symbolic
    /// link itself rather than its target. Make sure no process uses the
    /// name. Like `shm_unlink`, it needs write permission on `/dev/shm`,
    /// which is sticky: only the file's owner (or root) can remove it.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// use shmsync::{Error, SharedMemory, Value};
    /// let name = format!("doc_unlink_name_{}", std::process::id());
    /// // What a creator killed inside `create` can leave: an empty file.
    /// std::fs::File::create(format!("/dev/shm/{name}")).unwrap();
    /// assert!(matches!(Value::<u32>::create(&name, 0), Err(Error::Stale { .. })));
    /// SharedMemory::unlink_name(&name)?;
    /// let v = Value::<u32>::create(&name, 7)?;
    /// assert_eq!(v.get().unwrap(), 7);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidName`], [`Error::NotFound`], or [`Error::Io`]
    /// (`EACCES`/`EPERM` for another user's name, `EISDIR` for a directory).
    pub fn unlink_name(name: &str) -> Result<()> {
        sys::file::unlink(sys::file::check_name(name)?)
    }
}

impl AsFd for SharedMemory {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.seg.fd()
    }
}
