//! The one error type of the crate.

use core::fmt;

use rustix::io::Errno;

/// Everything that can go wrong when creating, opening or using a shared
/// object.
///
/// Operating-system failures ([`Error::Io`]) carry the operation that
/// failed and the raw `errno` ([`Error::raw_os_error`]; an
/// [`std::io::Error`] through `From`); problems with the *contents* of a segment (written by
/// another process, possibly a hostile or buggy one) have variants of their
/// own, so that a caller can tell "not there" from "not what I asked for"
/// from "damaged".
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// No segment of that name exists (`ENOENT` from `shm_open`).
    NotFound {
        /// The name as given by the caller.
        name: String,
    },
    /// A segment of that name already exists (`EEXIST`: names are created
    /// with `O_EXCL`, never reused silently).
    AlreadyExists {
        /// The name as given by the caller.
        name: String,
    },
    /// The name is not a valid shared-memory name (empty, longer than 255
    /// bytes, or containing `/` other than one leading slash, or NUL), or
    /// `/dev/shm/NAME` is not a regular file: a symbolic link (never
    /// followed, as glibc's `shm_open` and CPython do not), a directory, a
    /// FIFO, ...
    InvalidName {
        /// The name as given by the caller.
        name: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// An argument is out of range (a zero or too large size, a named
    /// object that would depend on an anonymous lock, ...).
    InvalidArgument(&'static str),
    /// The segment does not start with the shmsync magic number: it was not
    /// created by shmsync (or has been overwritten).
    BadMagic,
    /// The segment was written by an incompatible layout version.
    VersionMismatch {
        /// The layout version this build reads and writes.
        expected: u32,
        /// The version recorded in the segment.
        found: u32,
    },
    /// The segment holds another kind of object or another element type
    /// than the one requested.
    TypeMismatch {
        /// What the caller asked for, e.g. `Value<i32> ('i', 4 bytes)`.
        expected: String,
        /// What the segment's header records.
        found: String,
    },
    /// The segment's size disagrees with what its header or the caller
    /// requires.
    SizeMismatch {
        /// The size in bytes (or elements, for lengths) required.
        expected: u64,
        /// The size found.
        found: u64,
    },
    /// The file is shorter than the header says it must be, or shorter than
    /// a header.
    Truncated {
        /// Bytes needed.
        needed: u64,
        /// Bytes the file really has.
        len: u64,
    },
    /// A header field is inconsistent (an offset out of range or
    /// misaligned, an unknown lock mode, ...): the segment is damaged.
    Corrupt(&'static str),
    /// The creator has not finished initialising the segment within the
    /// bounded wait of `open` (it is still starting, or it died half-way:
    /// then [`SharedMemory::unlink_name`](crate::SharedMemory::unlink_name)
    /// removes the name).
    NotReady,
    /// `create` found the name taken by a segment that never became ready
    /// within the bounded wait of `open`: empty, or a header that was never
    /// published. Most likely its creator died half-way through `create`;
    /// it may also be a file that shmsync did not make (a raw
    /// [`SharedMemory`](crate::SharedMemory) block of zeros, for instance).
    /// If no process uses it, remove it with
    /// [`SharedMemory::unlink_name`](crate::SharedMemory::unlink_name) and
    /// create again. Only typed objects can tell: [`SharedMemory::create`](crate::SharedMemory::create)
    /// reports any taken name as [`AlreadyExists`](Error::AlreadyExists).
    Stale {
        /// The name, without a leading `/`.
        name: String,
    },
    /// A byte range lies outside the segment.
    OutOfBounds {
        /// Start of the requested range.
        offset: usize,
        /// Length of the requested range.
        len: usize,
        /// Size of the segment.
        size: usize,
    },
    /// The object is protected by a separate lock object that could not be
    /// re-attached: it was anonymous, or the lock found under its name is
    /// not the one the object was created with.
    LockMismatch,
    /// A lock's previous owner died holding it (converted from
    /// [`crate::LockError::OwnerDied`], whose guard was dropped: the lock is
    /// now not recoverable).
    OwnerDied,
    /// A lock is not recoverable (see [`crate::LockError::NotRecoverable`]).
    NotRecoverable,
    /// The calling thread already holds the lock (see
    /// [`crate::LockError::Deadlock`]).
    Deadlock,
    /// The lock was held elsewhere (see [`crate::TryLockError::WouldBlock`]).
    WouldBlock,
    /// The other end of a [`Pipe`](crate::Pipe) is closed, or the process
    /// that used it died (or the end itself was closed by the process that
    /// used it): a receive gets it once every message sent before is
    /// received, a send at once. Final: the pipe does not reconnect.
    Disconnected,
    /// This end of a [`Pipe`](crate::Pipe) is used by another process (or
    /// by another handle of this process): each end belongs to the first
    /// process that uses it (see [`Connection`](crate::Connection)).
    EndInUse,
    /// A queue had no room for the item (a `try_put`, or a timed put
    /// whose timeout passed: Python's `queue.Full`).
    Full,
    /// A queue had no item (a `try_get`, or a timed get whose timeout
    /// passed: Python's `queue.Empty`).
    Empty,
    /// The queue was closed: no more puts, and (for a get) nothing left.
    Closed,
    /// A message is longer than the queue's maximum message size (it was
    /// not sent: messages are never truncated).
    MessageTooLarge {
        /// The message's length in bytes.
        len: usize,
        /// The largest message the queue takes.
        max: usize,
    },
    /// The buffer given to receive a message is shorter than the message,
    /// which stays in the queue (receive it with a buffer of `needed`
    /// bytes, or as a `Vec`).
    BufferTooSmall {
        /// The message's length in bytes.
        needed: usize,
        /// The buffer's length.
        len: usize,
    },
    /// A value could not be encoded, or a message could not be decoded as
    /// the type asked for (feature `serde`: the typed messages of
    /// `MessageQueue::send_value` / `recv_value`); postcard's reason.
    Serialization(String),
    /// A system call failed.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmsync::{Error, SharedMemory};
    /// // A directory where a segment should be (`unlink` on it: EISDIR).
    /// let dir = format!("doc_error_io_{}", std::process::id());
    /// std::fs::create_dir(format!("/dev/shm/{dir}"))?;
    /// let e = SharedMemory::unlink_name(&dir).unwrap_err();
    /// std::fs::remove_dir(format!("/dev/shm/{dir}"))?;
    /// assert!(matches!(e, Error::Io { .. }));
    /// assert_eq!(e.raw_os_error(), Some(libc::EISDIR));
    /// let io: std::io::Error = e.into();
    /// assert_eq!(io.kind(), std::io::ErrorKind::IsADirectory);
    /// # Ok(()) }
    /// ```
    Io {
        /// The operation that failed (`"shm_open"`, `"ftruncate"`, ...).
        op: &'static str,
        /// The raw OS error code (`errno`), as in
        /// [`std::io::Error::raw_os_error`].
        errno: i32,
    },
}

impl Error {
    /// The [`Error::Io`] of the operation `op` that failed with `errno`.
    pub(crate) fn os(op: &'static str, errno: Errno) -> Error {
        Error::Io {
            op,
            errno: errno.raw_os_error(),
        }
    }

    /// [`Error::os`] as a `map_err` argument.
    pub(crate) fn io(op: &'static str) -> impl FnOnce(Errno) -> Error {
        move |errno| Error::os(op, errno)
    }

    /// The raw OS error code of an [`Error::Io`], as
    /// [`std::io::Error::raw_os_error`]; `None` for the other variants.
    ///
    /// ```
    /// let e = shmsync::Error::NotReady;
    /// assert_eq!(e.raw_os_error(), None);
    /// ```
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Io { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotFound { name } => write!(f, "no shared segment named {name:?}"),
            Error::AlreadyExists { name } => {
                write!(f, "a shared segment named {name:?} already exists")
            }
            Error::InvalidName { name, reason } => {
                write!(f, "invalid shared-memory name {name:?}: {reason}")
            }
            Error::InvalidArgument(what) => write!(f, "invalid argument: {what}"),
            Error::BadMagic => f.write_str("not a shmsync segment (bad magic number)"),
            Error::VersionMismatch { expected, found } => write!(
                f,
                "segment layout version {found}, this build uses version {expected}"
            ),
            Error::TypeMismatch { expected, found } => {
                write!(f, "segment holds {found}, expected {expected}")
            }
            Error::SizeMismatch { expected, found } => {
                write!(f, "size mismatch: expected {expected}, found {found}")
            }
            Error::Truncated { needed, len } => {
                write!(f, "segment truncated: needs {needed} bytes, file has {len}")
            }
            Error::Corrupt(what) => write!(f, "corrupt segment header: {what}"),
            Error::NotReady => f.write_str(
                "segment not initialised in time (creator still starting or died half-way)",
            ),
            Error::Stale { name } => write!(
                f,
                "a shared segment named {name:?} exists but was never initialised (its creator \
                 probably died); if no process uses it, remove it with \
                 SharedMemory::unlink_name({name:?})"
            ),
            Error::OutOfBounds { offset, len, size } => write!(
                f,
                "range {offset}..{} out of bounds of a {size}-byte segment",
                offset.saturating_add(*len)
            ),
            Error::LockMismatch => {
                f.write_str("the object's separate lock could not be re-attached")
            }
            Error::OwnerDied => f.write_str("a lock's previous owner died holding it"),
            Error::NotRecoverable => f.write_str("the lock is not recoverable"),
            Error::Deadlock => f.write_str("the calling thread already holds the lock"),
            Error::WouldBlock => f.write_str("the lock is held elsewhere"),
            Error::Disconnected => f.write_str("the other end of the pipe is closed or dead"),
            Error::EndInUse => {
                f.write_str("this end of the pipe is used by another process or handle")
            }
            Error::Full => f.write_str("the queue is full"),
            Error::Empty => f.write_str("the queue is empty"),
            Error::Closed => f.write_str("the queue is closed"),
            Error::MessageTooLarge { len, max } => {
                write!(
                    f,
                    "a {len}-byte message exceeds the queue's maximum of {max} bytes"
                )
            }
            Error::BufferTooSmall { needed, len } => {
                write!(
                    f,
                    "a {needed}-byte message does not fit a {len}-byte buffer"
                )
            }
            Error::Serialization(why) => write!(f, "typed message: {why}"),
            Error::Io { op, errno } => write!(
                f,
                "{op} failed: {}",
                std::io::Error::from_raw_os_error(*errno)
            ),
        }
    }
}

impl std::error::Error for Error {}

impl From<Error> for std::io::Error {
    fn from(e: Error) -> Self {
        use std::io::ErrorKind as K;
        let kind = match &e {
            Error::Io { errno, .. } => return std::io::Error::from_raw_os_error(*errno),
            Error::NotFound { .. } => K::NotFound,
            Error::AlreadyExists { .. } | Error::Stale { .. } => K::AlreadyExists,
            Error::InvalidName { .. } | Error::InvalidArgument(_) | Error::OutOfBounds { .. } => {
                K::InvalidInput
            }
            Error::Disconnected => K::BrokenPipe,
            Error::EndInUse => K::Other,
            Error::Full | Error::Empty => K::WouldBlock,
            Error::Closed => K::BrokenPipe,
            Error::MessageTooLarge { .. } | Error::BufferTooSmall { .. } => K::InvalidInput,
            Error::Serialization(_) => K::InvalidData,
            _ => K::InvalidData,
        };
        std::io::Error::new(kind, e)
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = core::result::Result<T, E>;
