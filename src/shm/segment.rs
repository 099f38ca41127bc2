//! One mapping of one shared-memory file, and [`SharedMemory`], the raw
//! bytes API on top of it.

use core::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use memmap2::{MmapOptions, MmapRaw};

use crate::error::{Error, Result};
use crate::shm::access;
use crate::sys;
use crate::sys::liveness::Token;

/// A mapped shared-memory file. Lives behind an `Arc`: every handle onto
/// objects in it keeps the mapping alive.
pub(crate) struct Segment {
    map: MmapRaw,
    fd: OwnedFd,
    /// The name without its leading `/`, for named segments.
    name: Option<String>,
    /// PID of the process that created the name (0: not created here). A
    /// forked child inherits the handle but must not unlink its parent's name.
    creator_pid: u32,
    unlink_on_drop: AtomicBool,
    /// This process's owner-liveness token on the file, attached (to the
    /// process's description of the file) by `Object` only for segments
    /// with a lock slot.
    pub(crate) token: Token,
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
        let bare = sys::shm::check_name(name)?;
        check_len(len)?;
        let fd = sys::shm::create(bare)?;
        let made = (|| {
            sys::shm::set_len(&fd, len)?;
            map(&fd, len)
        })();
        match made {
            Ok(map) => Ok(Segment {
                map,
                fd,
                name: Some(bare.to_owned()),
                creator_pid: sys::thread::pid(),
                unlink_on_drop: AtomicBool::new(true),
                token: Token::default(),
            }),
            Err(e) => {
                let _ = sys::shm::unlink(bare);
                Err(e)
            }
        }
    }

    /// Creates an anonymous segment: a memfd whose size is sealed.
    pub(crate) fn create_anonymous(len: u64) -> Result<Segment> {
        check_len(len)?;
        let fd = sys::shm::memfd()?;
        sys::shm::set_len(&fd, len)?;
        sys::shm::seal_size(&fd)?;
        let map = map(&fd, len)?;
        Ok(Segment {
            map,
            fd,
            name: None,
            creator_pid: 0,
            unlink_on_drop: AtomicBool::new(false),
            token: Token::default(),
        })
    }

    /// Opens a named segment as it is now (size from `fstat`).
    pub(crate) fn open_named(name: &str) -> Result<(OwnedFd, String)> {
        let bare = sys::shm::check_name(name)?;
        Ok((sys::shm::open(bare)?, bare.to_owned()))
    }

    /// Maps an open file of (at least) `len` bytes, as checked by the caller
    /// against a fresh `fstat`.
    pub(crate) fn attach(fd: OwnedFd, name: Option<String>, len: u64) -> Result<Segment> {
        check_len(len)?;
        let map = map(&fd, len)?;
        Ok(Segment {
            map,
            fd,
            name,
            creator_pid: 0,
            unlink_on_drop: AtomicBool::new(false),
            token: Token::default(),
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
            Some(n) => sys::shm::unlink(n),
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
        if self.unlink_on_drop.load(Relaxed) && self.creator_pid == sys::thread::pid() {
            if let Some(n) = &self.name {
                // Only our own file: the name may have been unlinked and
                // reused by another creator meanwhile. (A reuse between this
                // check and the unlink remains possible, as with any
                // name-based unlink.)
                if sys::shm::name_is_file(n, &self.fd) {
                    let _ = sys::shm::unlink(n);
                }
            }
        }
    }
}

fn check_len(len: u64) -> Result<()> {
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
    // forked child). `len` was checked by `check_len`.
    MmapOptions::new()
        .len(usize::try_from(len).map_err(|_| Error::InvalidArgument("size too large"))?)
        .map_raw(fd)
        .map_err(|e| Error::Io {
            op: "mmap",
            errno: rustix::io::Errno::from_io_error(&e).unwrap_or(rustix::io::Errno::INVAL),
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
    /// Creates a new named block of `size` zero bytes, mode 0600.
    ///
    /// # Errors
    /// [`Error::InvalidName`], [`Error::InvalidArgument`] for a zero size,
    /// [`Error::AlreadyExists`], or [`Error::Io`].
    pub fn create(name: &str, size: usize) -> Result<Self> {
        Ok(SharedMemory {
            seg: Arc::new(Segment::create_named(name, size as u64)?),
        })
    }

    /// Opens an existing named block, mapping its whole current size.
    ///
    /// # Errors
    /// [`Error::InvalidName`], [`Error::NotFound`], [`Error::Truncated`] for
    /// an empty file, or [`Error::Io`].
    pub fn open(name: &str) -> Result<Self> {
        let (fd, bare) = Segment::open_named(name)?;
        let len = sys::shm::len(&fd)?;
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
    /// [`Error::Truncated`] for an empty file, or [`Error::Io`].
    pub fn from_fd(fd: OwnedFd) -> Result<Self> {
        let len = sys::shm::len(&fd)?;
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
}

impl AsFd for SharedMemory {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.seg.fd()
    }
}
