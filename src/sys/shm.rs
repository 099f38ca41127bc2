//! Shared-memory objects: `shm_open(3)` names in `/dev/shm`, `memfd_create(2)`
//! for anonymous segments, sizes and seals.
//!
//! See <https://man7.org/linux/man-pages/man3/shm_open.3.html> and
//! <https://man7.org/linux/man-pages/man2/memfd_create.2.html>.

use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::{MemfdFlags, Mode, SealFlags};
use rustix::io::Errno;
use rustix::shm;

use crate::error::{Error, Result};

/// The longest name `shm_open` accepts on Linux (`NAME_MAX`), without the
/// leading slash.
pub(crate) const NAME_MAX: usize = 255;

/// Checks a user's name and returns it without its leading `/`.
///
/// Accepted: 1–255 bytes, no interior `/`, no NUL, not `.` or `..`; one
/// leading `/` is optional (CPython's `SharedMemory.name` has none, POSIX
/// names have one).
pub(crate) fn check_name(name: &str) -> Result<&str> {
    let bad = |reason| Error::InvalidName {
        name: name.to_owned(),
        reason,
    };
    let bare = name.strip_prefix('/').unwrap_or(name);
    if bare.is_empty() {
        return Err(bad("empty"));
    }
    if bare.len() > NAME_MAX {
        return Err(bad("longer than 255 bytes"));
    }
    if bare.contains('/') {
        return Err(bad("contains '/'"));
    }
    if bare.contains('\0') {
        return Err(bad("contains NUL"));
    }
    if bare == "." || bare == ".." {
        return Err(bad("'.' and '..' are not object names"));
    }
    Ok(bare)
}

/// `shm_open("/bare", O_RDWR | O_CREAT | O_EXCL, 0600)`.
pub(crate) fn create(bare: &str) -> Result<OwnedFd> {
    let flags = shm::OFlags::RDWR | shm::OFlags::CREATE | shm::OFlags::EXCL;
    // The bare name: rustix (like glibc) maps it to /dev/shm/NAME, and a
    // leading slash would count against the 255-byte limit.
    shm::open(bare, flags, Mode::RUSR | Mode::WUSR).map_err(|e| match e {
        Errno::EXIST => Error::AlreadyExists {
            name: bare.to_owned(),
        },
        e => Error::Io {
            op: "shm_open",
            errno: e,
        },
    })
}

/// `shm_open("/bare", O_RDWR, 0)`.
pub(crate) fn open(bare: &str) -> Result<OwnedFd> {
    shm::open(bare, shm::OFlags::RDWR, Mode::empty()).map_err(|e| match e {
        Errno::NOENT => Error::NotFound {
            name: bare.to_owned(),
        },
        e => Error::Io {
            op: "shm_open",
            errno: e,
        },
    })
}

/// `shm_unlink("/bare")`.
pub(crate) fn unlink(bare: &str) -> Result<()> {
    shm::unlink(bare).map_err(|e| match e {
        Errno::NOENT => Error::NotFound {
            name: bare.to_owned(),
        },
        e => Error::Io {
            op: "shm_unlink",
            errno: e,
        },
    })
}

/// `memfd_create("shmsync", MFD_CLOEXEC | MFD_ALLOW_SEALING)`.
pub(crate) fn memfd() -> Result<OwnedFd> {
    rustix::fs::memfd_create("shmsync", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)
        .map_err(Error::io("memfd_create"))
}

/// Seals a memfd's size for good: no shrink (a peer could otherwise make our
/// accesses fault with SIGBUS), no grow, no further seal changes.
pub(crate) fn seal_size(fd: impl AsFd) -> Result<()> {
    rustix::fs::fcntl_add_seals(fd, SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)
        .map_err(Error::io("fcntl(F_ADD_SEALS)"))
}

/// `ftruncate(fd, len)`, then `fallocate` the pages, so that a full
/// `/dev/shm` (or memory cgroup) is an `ENOSPC` error here rather than a
/// `SIGBUS` on first touch. File systems without `fallocate` skip that step.
pub(crate) fn set_len(fd: impl AsFd, len: u64) -> Result<()> {
    rustix::fs::ftruncate(&fd, len).map_err(Error::io("ftruncate"))?;
    match rustix::fs::fallocate(&fd, rustix::fs::FallocateFlags::empty(), 0, len) {
        Ok(()) | Err(Errno::OPNOTSUPP | Errno::NOSYS) => Ok(()),
        Err(e) => Err(Error::Io {
            op: "fallocate",
            errno: e,
        }),
    }
}

/// Whether `/dev/shm/bare` is still the file behind `fd` (same device and
/// inode): a creator must not unlink a successor that reused its name.
pub(crate) fn name_is_file(bare: &str, fd: impl AsFd) -> bool {
    let Ok(ours) = rustix::fs::fstat(fd) else {
        return false;
    };
    match rustix::fs::stat(format!("/dev/shm/{bare}")) {
        Ok(st) => st.st_dev == ours.st_dev && st.st_ino == ours.st_ino,
        Err(_) => false,
    }
}

/// The file's size, from `fstat`.
pub(crate) fn len(fd: impl AsFd) -> Result<u64> {
    let st = rustix::fs::fstat(fd).map_err(Error::io("fstat"))?;
    u64::try_from(st.st_size).map_err(|_| Error::Corrupt("negative file size"))
}

/// 64 random bits from `getrandom(2)` (object identities).
pub(crate) fn random_u64() -> Result<u64> {
    let mut b = [0u8; 8];
    let mut filled = 0;
    while filled < b.len() {
        filled += rustix::rand::getrandom(&mut b[filled..], rustix::rand::GetRandomFlags::empty())
            .map_err(Error::io("getrandom"))?;
    }
    Ok(u64::from_ne_bytes(b))
}
