//! Shared-memory objects: `shm_open(3)` names in `/dev/shm`, `memfd_create(2)`
//! for anonymous segments, sizes and seals.
//!
//! See <https://man7.org/linux/man-pages/man3/shm_open.3.html> and
//! <https://man7.org/linux/man-pages/man2/memfd_create.2.html>.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use rustix::fs::{FileType, MemfdFlags, Mode, OFlags, SealFlags};
use rustix::io::Errno;

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

/// `/dev/shm/bare`: where glibc's `shm_open` (and CPython's) put the name.
fn path_of(bare: &str) -> String {
    format!("/dev/shm/{bare}")
}

/// The named object's permission bits, whatever the creator's umask.
pub(crate) const MODE: u32 = 0o600;

/// `shm_open("/bare", O_RDWR | O_CREAT | O_EXCL, 0600)` as glibc does it
/// (`O_NOFOLLOW | O_CLOEXEC` added), then `fchmod(0600)`: the mode is 0600
/// regardless of the umask (which can only have removed bits).
pub(crate) fn create(bare: &str) -> Result<OwnedFd> {
    // rustix's `shm::open` adds `O_CLOEXEC` but not `O_NOFOLLOW`, so the
    // file is opened here. `O_EXCL` already refuses any existing name,
    // a symbolic link included; `O_NOFOLLOW` says so explicitly.
    let flags = OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd =
        rustix::fs::open(path_of(bare), flags, Mode::from_raw_mode(MODE)).map_err(|e| match e {
            Errno::EXIST => Error::AlreadyExists {
                name: bare.to_owned(),
            },
            e => Error::os("shm_open", e),
        })?;
    // Until then the mode is 0600 minus umask bits: never more open.
    if let Err(e) = rustix::fs::fchmod(&fd, Mode::from_raw_mode(MODE)) {
        if name_is_file(bare, &fd) {
            let _ = unlink(bare);
        }
        return Err(Error::os("fchmod", e));
    }
    Ok(fd)
}

/// Opens the existing object `/dev/shm/bare` read-write, as glibc's
/// `shm_open` does (`O_NOFOLLOW | O_CLOEXEC`), and more:
///
/// - a symbolic link is never followed (another user could otherwise point
///   a name at a file only we may write): `InvalidName`;
/// - `O_NONBLOCK`, so that no kind of file makes the open wait: a FIFO
///   (which Linux opens read-write without blocking anyway) or a file on
///   which another process holds a lease (the open fails with `EAGAIN`
///   instead of waiting for the lease break, up to
///   `/proc/sys/fs/lease-break-time`); the flag is cleared again once the
///   file is known to be a regular file;
/// - `fstat` must report a regular file (not a directory, FIFO, socket or
///   device): `InvalidName` otherwise.
pub(crate) fn open(bare: &str) -> Result<OwnedFd> {
    let bad = |reason| Error::InvalidName {
        name: bare.to_owned(),
        reason,
    };
    let flags = OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
    let fd = rustix::fs::open(path_of(bare), flags, Mode::empty()).map_err(|e| match e {
        Errno::NOENT => Error::NotFound {
            name: bare.to_owned(),
        },
        // O_NOFOLLOW on a symbolic link (the name has no other component
        // that could be one).
        Errno::LOOP => bad("a symbolic link (never followed)"),
        Errno::ISDIR => bad("not a regular file"),
        e => Error::os("shm_open", e),
    })?;
    let st = rustix::fs::fstat(&fd).map_err(Error::io("fstat"))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(bad("not a regular file"));
    }
    // Clears O_NONBLOCK (the only status flag set above), so that the
    // descriptor users get from `as_fd` is what `shm_open` would give.
    rustix::fs::fcntl_setfl(&fd, OFlags::empty()).map_err(Error::io("fcntl(F_SETFL)"))?;
    Ok(fd)
}

/// `shm_unlink("/bare")`: removes the name, whatever file it is (a symbolic
/// link itself, not its target).
pub(crate) fn unlink(bare: &str) -> Result<()> {
    rustix::fs::unlink(path_of(bare)).map_err(|e| match e {
        Errno::NOENT => Error::NotFound {
            name: bare.to_owned(),
        },
        e => Error::os("shm_unlink", e),
    })
}

/// Checks a descriptor handed to `from_fd`: it must be a regular file, and
/// a memfd must be sealed against shrinking (`F_SEAL_SHRINK`).
///
/// A memfd (`memfd_create(2)`) has no name that permissions protect: any
/// process holding it can `ftruncate` it under our mapping (`SIGBUS`), and
/// shmsync's anonymous objects promise that this cannot happen. A memfd is
/// recognised by its `/proc/self/fd` link, `/memfd:NAME (deleted)` (where
/// `/proc` is not mounted: by having no link count, which an unlinked
/// named file shares). A named file (of `/dev/shm` or elsewhere) is
/// accepted as `open` accepts it: whoever may write it may also shrink it.
pub(crate) fn check_passed_fd(fd: BorrowedFd<'_>) -> Result<()> {
    let st = rustix::fs::fstat(fd).map_err(Error::io("fstat"))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(Error::InvalidArgument(
            "the file descriptor is not a regular file",
        ));
    }
    let seals = match rustix::fs::fcntl_get_seals(fd) {
        Ok(s) => s,
        // Not a shmem or hugetlbfs file: no memfd.
        Err(Errno::INVAL) => return Ok(()),
        Err(e) => return Err(Error::os("fcntl(F_GET_SEALS)", e)),
    };
    if seals.contains(SealFlags::SHRINK) {
        return Ok(());
    }
    let memfd = match rustix::fs::readlink(format!("/proc/self/fd/{}", fd.as_raw_fd()), Vec::new())
    {
        Ok(target) => target.as_bytes().starts_with(b"/memfd:"),
        Err(_) => st.st_nlink == 0,
    };
    if memfd {
        return Err(Error::InvalidArgument(
            "a memfd must be sealed against shrinking (F_SEAL_SHRINK)",
        ));
    }
    Ok(())
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
///
/// A size larger than the room left is refused with `ENOSPC` before
/// anything is allocated ([`room_for`]): `fallocate` would otherwise fill
/// the memory first (a memfd has no size limit of its own), pushing the
/// machine towards its OOM killer before it fails.
pub(crate) fn set_len(fd: impl AsFd, len: u64) -> Result<()> {
    if !room_for(fd.as_fd(), len) {
        return Err(Error::os("fallocate", Errno::NOSPC));
    }
    rustix::fs::ftruncate(&fd, len).map_err(Error::io("ftruncate"))?;
    match rustix::fs::fallocate(&fd, rustix::fs::FallocateFlags::empty(), 0, len) {
        Ok(()) | Err(Errno::OPNOTSUPP | Errno::NOSYS) => Ok(()),
        Err(e) => Err(Error::os("fallocate", e)),
    }
}

/// Whether `len` bytes can be allocated for the file behind `fd`: the file
/// system's free space where it has a limit (`fstatvfs`: a `/dev/shm`
/// mount), else (a memfd's internal mount reports none) the memory and swap
/// the kernel says are available (`/proc/meminfo`). `true` when neither can
/// be read: `fallocate` then decides. Others allocate concurrently, so this
/// only catches sizes that cannot fit, not every shortage.
fn room_for(fd: BorrowedFd<'_>, len: u64) -> bool {
    if let Ok(st) = rustix::fs::fstatvfs(fd) {
        if st.f_blocks > 0 {
            return len <= st.f_bavail.saturating_mul(st.f_frsize);
        }
    }
    let Ok(info) = std::fs::read_to_string("/proc/meminfo") else {
        return true;
    };
    let kib = |key: &str| -> Option<u64> {
        let line = info.lines().find(|l| l.starts_with(key))?;
        line[key.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    };
    match (kib("MemAvailable:"), kib("SwapFree:")) {
        (Some(mem), swap) => len <= mem.saturating_add(swap.unwrap_or(0)).saturating_mul(1024),
        (None, _) => true,
    }
}

/// Whether `/dev/shm/bare` is still the file behind `fd` (same device and
/// inode): a creator must not unlink a successor that reused its name.
pub(crate) fn name_is_file(bare: &str, fd: impl AsFd) -> bool {
    let Ok(ours) = rustix::fs::fstat(fd) else {
        return false;
    };
    // `lstat`: the name itself, which a symbolic link to our file is not.
    match rustix::fs::lstat(path_of(bare)) {
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
