//! Looking at a segment without opening it as an object: what the
//! `shmsync` command-line tool shows, and what a program (or a language
//! binding) reads before it chooses which typed `open` to call.
//!
//! [`inspect`] opens `/dev/shm/NAME` **read-only** and reads it with
//! `pread(2)`: it never maps the file (a truncated file cannot raise
//! `SIGBUS`), never writes it, never takes its lock and never waits. It
//! reports the file's metadata, the header's fields as recorded, the
//! verdict that a typed `open` of the right type would reach
//! ([`Status`]), the lock slot's words, and the first bytes of the data.
//! Every field is a snapshot: the processes using the segment may change
//! it at once.
//!
//! ```
//! # fn main() -> Result<(), shmsync::Error> {
//! use shmsync::inspect::{inspect, Kind, Status};
//! let name = format!("doc_inspect_{}", std::process::id());
//! let v = shmsync::Value::<f64>::create(&name, 2.5)?;
//! let seen = inspect(&name, 64)?;
//! assert_eq!(seen.status, Status::Ok);
//! assert_eq!(seen.kind, Some(Kind::Value));
//! let h = seen.header.unwrap();
//! assert_eq!((h.type_code, h.count), (u32::from(b'd'), 1));
//! assert_eq!(shmsync::inspect::format_element(b'd', &seen.data), Some("2.5".into()));
//! assert!(seen.lock.unwrap().owner().is_none()); // free
//! # drop(v); Ok(()) }
//! ```
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::{FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::error::{Error, Result};
use crate::raw::{NOT_RECOVERABLE, OWNER_DIED, TID_MASK, WAITERS};
use crate::shm::header::{HEADER_SIZE, LOCK_NAME_MAX, LOCK_NAME_OFFSET, LOCK_OFFSET};
use crate::shm::object::LockMode;
use crate::sys;

pub use crate::shm::header::HeaderFields as Header;

/// Offset of the in-page lock's futex word in a segment whose header
/// records a lock of its own (where its waiters sleep).
pub const LOCK_WORD_OFFSET: u64 = LOCK_OFFSET as u64;
pub use crate::shm::object::Kind;

/// What [`inspect`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Inspection {
    /// The name, without a leading `/` (`None` for [`inspect_fd`]).
    pub name: Option<String>,
    /// The file's metadata.
    pub file: FileInfo,
    /// The verdict.
    pub status: Status,
    /// The header's fields as recorded, if the file is long enough to hold
    /// one and starts with shmsync's magic number.
    pub header: Option<Header>,
    /// The recorded kind, if the header names a known one.
    pub kind: Option<Kind>,
    /// The in-page lock's words, for a segment whose header records a lock
    /// of its own (values and arrays with a lock, `Lock`, `RLock`) and
    /// whose file holds the slot.
    pub lock: Option<LockSlot>,
    /// The name of the separate lock object a value or array uses
    /// (`with_lock`), if it records one and it reads as a name.
    pub lock_name: Option<String>,
    /// The first bytes of the data (at most the `data_limit` passed to
    /// [`inspect`]); empty unless the status is [`Status::Ok`]. Elements
    /// are `header.stride` bytes apart; [`format_element`] shows one.
    pub data: Vec<u8>,
}

/// A segment file's metadata (`fstat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileInfo {
    /// Size in bytes.
    pub len: u64,
    /// Owner's user ID.
    pub uid: u32,
    /// Permission bits (e.g. `0o600`).
    pub mode: u32,
    /// Device and inode: what `/proc/PID/maps` lists for a mapping of it.
    pub dev: u64,
    /// See `dev`.
    pub inode: u64,
    /// Last modification (of the size or the contents through `write`;
    /// stores through a mapping do not update it).
    pub modified: SystemTime,
}

/// The verdict on a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Status {
    /// A published shmsync object whose header agrees with its file:
    /// a typed `open` of the recorded kind and type accepts it.
    Ok,
    /// Not a shmsync object: no shmsync magic number (another program's
    /// segment, such as CPython's `psm_*`, or a raw
    /// [`SharedMemory`](crate::SharedMemory) block with other contents).
    Foreign,
    /// Empty, or zero where the header would be: a creator still
    /// initialising it, one that died half-way (`open` reports
    /// [`Error::NotReady`], `create` [`Error::Stale`]), or a zero-filled raw
    /// block.
    NotReady,
    /// A shmsync header that `open` refuses, with the error it gives
    /// (another layout version, a truncated file, a damaged field).
    Broken(Error),
}

/// The words of an in-page lock slot (`docs/ARCHITECTURE.md`, "Segment
/// layout"), as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LockSlot {
    /// The futex word: owner TID (bits 0–29), owner died (30), waiters (31).
    pub word: u32,
    /// The owner's holds beyond the first (an `RLock` held recursively).
    pub extra: u32,
    /// Consistency state: 0 consistent, 1 taken over from a dead owner and
    /// not yet marked consistent.
    pub state: u32,
    /// Robust-list link `prev` (an address in the owner's process).
    pub prev: u64,
    /// Robust-list link `next` (an address in the owner's process).
    pub next: u64,
}

impl LockSlot {
    /// The owner's kernel TID (in the owner's PID namespace), if the lock
    /// is held by a thread (`None` when free or not recoverable).
    pub fn owner(&self) -> Option<u32> {
        match self.word & TID_MASK {
            0 => None,
            t if t == NOT_RECOVERABLE => None,
            t => Some(t),
        }
    }

    /// Whether threads may be asleep waiting for it.
    pub fn waiters(&self) -> bool {
        self.word & WAITERS != 0
    }

    /// Whether the kernel or a waiter marked the owner dead and nobody has
    /// taken the lock over yet.
    pub fn owner_died(&self) -> bool {
        self.word & OWNER_DIED != 0
    }

    /// Whether the lock was released without `mark_consistent` after an
    /// owner died: it can never be taken again.
    pub fn not_recoverable(&self) -> bool {
        self.word & TID_MASK == NOT_RECOVERABLE
    }
}

/// Reads the segment `/dev/shm/NAME` without changing it (module docs),
/// with at most `data_limit` bytes of its data.
///
/// Errors: an invalid name ([`Error::InvalidName`], also for a symbolic
/// link or a file that is not a regular file), [`Error::NotFound`], or
/// [`Error::Io`] (`EACCES`: no permission to read it). Anything wrong
/// *inside* the file is not an error but a [`Status`].
pub fn inspect(name: &str, data_limit: usize) -> Result<Inspection> {
    let bare = sys::file::check_name(name)?;
    let bad = |reason| Error::InvalidName {
        name: bare.to_owned(),
        reason,
    };
    // As `open`, read-only: no symbolic link, no blocking on a FIFO or a
    // leased file.
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
    let fd = rustix::fs::open(format!("/dev/shm/{bare}"), flags, Mode::empty()).map_err(
        |e| match e {
            Errno::NOENT => Error::NotFound {
                name: bare.to_owned(),
            },
            Errno::LOOP => bad("a symbolic link (never followed)"),
            e => Error::os("open", e),
        },
    )?;
    let mut seen = inspect_fd(fd.as_fd(), data_limit)?;
    seen.name = Some(bare.to_owned());
    Ok(seen)
}

/// [`inspect`] of an open file (any regular file; opened read-only is
/// enough).
pub fn inspect_fd(fd: BorrowedFd<'_>, data_limit: usize) -> Result<Inspection> {
    let st = rustix::fs::fstat(fd).map_err(Error::io("fstat"))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(Error::InvalidName {
            name: String::new(),
            reason: "not a regular file",
        });
    }
    let secs = u64::try_from(st.st_mtime).unwrap_or(0);
    let nanos = u32::try_from(st.st_mtime_nsec)
        .unwrap_or(0)
        .min(999_999_999);
    let file = FileInfo {
        len: u64::try_from(st.st_size).unwrap_or(0),
        uid: st.st_uid,
        mode: st.st_mode & 0o7777,
        dev: st.st_dev,
        inode: st.st_ino,
        modified: UNIX_EPOCH + Duration::new(secs, nanos),
    };
    let mut seen = Inspection {
        name: None,
        file,
        status: Status::NotReady,
        header: None,
        kind: None,
        lock: None,
        lock_name: None,
        data: Vec::new(),
    };
    let mut raw = [0u8; HEADER_SIZE];
    let got = read_at(fd, 0, &mut raw)?;
    let magic_len = 8.min(got);
    if raw[..magic_len].iter().all(|&b| b == 0) {
        // Empty, or a header not written yet (or a zeroed raw block).
        return Ok(seen);
    }
    if raw[..magic_len] != crate::shm::header::MAGIC.to_ne_bytes()[..magic_len] {
        seen.status = Status::Foreign;
        return Ok(seen);
    }
    if got < HEADER_SIZE {
        seen.status = Status::Broken(Error::Truncated {
            needed: HEADER_SIZE as u64,
            len: got as u64,
        });
        return Ok(seen);
    }
    let h = Header::from_bytes(&raw);
    seen.header = Some(h);
    seen.kind = Kind::from_u32(h.kind);
    if h.init != crate::shm::header::READY {
        return Ok(seen);
    }
    let lock = match h.check(file.len) {
        Ok((_, _, lock)) => {
            seen.status = Status::Ok;
            Some(lock)
        }
        Err(e) => {
            seen.status = Status::Broken(e);
            None
        }
    };
    if h.lock_mode == LockMode::Own as u32 {
        let mut b = [0u8; 40];
        if read_at(fd, LOCK_OFFSET as u64, &mut b)? == b.len() {
            let u32_at = |o: usize| u32::from_ne_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
            let u64_at = |o: usize| {
                let mut w = [0u8; 8];
                w.copy_from_slice(&b[o..o + 8]);
                u64::from_ne_bytes(w)
            };
            seen.lock = Some(LockSlot {
                word: u32_at(0),
                extra: u32_at(4),
                state: u32_at(8),
                prev: u64_at(24),
                next: u64_at(32),
            });
        }
    }
    let name_len = h.lock_name_len as usize;
    if h.lock_mode == LockMode::External as u32 && (1..=LOCK_NAME_MAX).contains(&name_len) {
        let mut b = vec![0u8; name_len];
        if read_at(fd, LOCK_NAME_OFFSET as u64, &mut b)? == name_len {
            seen.lock_name = String::from_utf8(b).ok();
        }
    }
    if lock.is_some() {
        let len = file.len.saturating_sub(h.data_offset);
        let n = usize::try_from(len).unwrap_or(usize::MAX).min(data_limit);
        let mut b = vec![0u8; n];
        let got = read_at(fd, h.data_offset, &mut b)?;
        b.truncate(got);
        seen.data = b;
    }
    Ok(seen)
}

/// `pread` until `buf` is full or the file ends; the bytes read.
fn read_at(fd: BorrowedFd<'_>, offset: u64, buf: &mut [u8]) -> Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        let at = offset.saturating_add(done as u64);
        match rustix::io::pread(fd, &mut buf[done..], at) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(Errno::INTR) => {}
            Err(e) => return Err(Error::os("pread", e)),
        }
    }
    Ok(done)
}

/// One element of type code `code` (`b'i'`, `b'd'`, ... as the header's
/// `type_code`), shown as Python would print it; `None` for a code this
/// crate does not define (structs: `b'S'`) or too few bytes.
///
/// ```
/// use shmsync::inspect::format_element;
/// assert_eq!(format_element(b'i', &(-7i32).to_ne_bytes()), Some("-7".into()));
/// assert_eq!(format_element(b'c', b"A"), Some("b'A'".into()));
/// assert_eq!(format_element(b'S', &[0; 8]), None);
/// ```
pub fn format_element(code: u8, bytes: &[u8]) -> Option<String> {
    fn arr<const N: usize>(b: &[u8]) -> Option<[u8; N]> {
        b.get(..N)?.try_into().ok()
    }
    Some(match code {
        b'b' => i8::from_ne_bytes(arr(bytes)?).to_string(),
        b'B' => u8::from_ne_bytes(arr(bytes)?).to_string(),
        b'h' => i16::from_ne_bytes(arr(bytes)?).to_string(),
        b'H' => u16::from_ne_bytes(arr(bytes)?).to_string(),
        b'i' => i32::from_ne_bytes(arr(bytes)?).to_string(),
        b'I' => u32::from_ne_bytes(arr(bytes)?).to_string(),
        b'q' | b'l' => i64::from_ne_bytes(arr(bytes)?).to_string(),
        b'Q' | b'L' => u64::from_ne_bytes(arr(bytes)?).to_string(),
        b'f' => format!("{:?}", f32::from_ne_bytes(arr(bytes)?)),
        b'd' => format!("{:?}", f64::from_ne_bytes(arr(bytes)?)),
        b'c' => format!("b'{}'", core::ascii::escape_default(*bytes.first()?)),
        b'u' => {
            let v = u32::from_ne_bytes(arr(bytes)?);
            match char::from_u32(v) {
                Some(c) => format!("{c:?}"),
                None => format!("\\U{v:08x} (not a character)"),
            }
        }
        _ => return None,
    })
}

/// The creator's identity recorded in a header, if any: `(pid, start)`,
/// the PID and the start time in clock ticks after boot
/// ([`Header::creator_pid`], [`Header::creator_start`]).
///
/// [`creator_alive`] judges it.
pub fn creator(h: &Header) -> Option<(u32, u64)> {
    (h.creator_pid != 0).then_some((h.creator_pid, h.creator_start))
}

/// Whether the process that created a segment still runs, judged from
/// this process's `/proc`: the recorded PID exists and started at the
/// recorded time (PID reuse gives another start time). `false` for a
/// creator in another PID namespace whose PID this one does not show (or
/// shows as another process): callers that remove segments must also check
/// that no process has the segment mapped or open.
pub fn creator_alive(pid: u32, start: u64) -> bool {
    match sys::thread::start_time(pid) {
        Some(t) => start == 0 || t == start,
        None => false,
    }
}
