//! How named objects are opened and created, and which descriptors
//! `from_fd` accepts: symbolic links are never followed, non-regular files
//! are refused without blocking, created files are mode 0600 whatever the
//! umask, unsealed memfds are refused, and a name left by a creator that
//! died inside `create` is reported as `Error::Stale` and removable with
//! `SharedMemory::unlink_name`.
//!
//! Header offsets used below: `common/layout.rs`.

mod common;

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::time::{Duration, Instant};

use common::layout::{OFF_INIT, OFF_MAGIC};
use common::{create_file, err, shm_file, ShmName};
use rustix::fs::{MemfdFlags, SealFlags};
use shmsync::{
    Array, AtomicArray, AtomicValue, Error, Lock, RLock, RawArray, RawValue, SharedMemory, Value,
};

/// The whole file behind `fd`, read through a mapping.
fn image_of(fd: BorrowedFd<'_>) -> Vec<u8> {
    let m = SharedMemory::from_fd(fd.try_clone_to_owned().unwrap()).unwrap();
    let mut b = vec![0; m.len()];
    m.read_at(0, &mut b).unwrap();
    b
}

/// A regular file outside `/dev/shm` (what a planted link points at),
/// removed on drop.
struct Target {
    path: PathBuf,
}

impl Target {
    fn with(bytes: &[u8]) -> Target {
        static N: AtomicU32 = AtomicU32::new(0);
        // Relaxed: only uniqueness matters.
        let n = N.fetch_add(1, Relaxed);
        let path =
            std::env::temp_dir().join(format!("shmsync_t_target_{}_{n}", std::process::id()));
        create_file(&path, bytes);
        Target { path }
    }

    fn bytes(&self) -> Vec<u8> {
        std::fs::read(&self.path).unwrap()
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Something planted under a `/dev/shm` name (a link, FIFO or directory),
/// removed on drop (also when the test fails half-way).
struct Planted(PathBuf);

impl Drop for Planted {
    fn drop(&mut self) {
        let p = &self.0;
        if std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()) {
            let _ = std::fs::remove_dir(p);
        } else {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Plants `/dev/shm/<name>` as a symbolic link to `target`.
fn plant_link(name: &ShmName, target: &Target) -> Planted {
    std::os::unix::fs::symlink(&target.path, name.path()).unwrap();
    Planted(name.path())
}

/// The error for a name that is a symbolic link.
fn is_link_refusal(e: &Error, name: &str) -> bool {
    matches!(e, Error::InvalidName { name: n, reason } if n == name && reason.contains("symbolic link"))
}

/// The error for a name that is no regular file.
fn is_nonregular_refusal(e: &Error, name: &str) -> bool {
    matches!(e, Error::InvalidName { name: n, reason } if n == name && reason.contains("not a regular file"))
}

// ---------------------------------------------------------------------------
// Symbolic links and non-regular files
// ---------------------------------------------------------------------------

#[test]
fn a_symlinked_name_is_never_followed() {
    let link = ShmName::new("link");
    // Targets are valid images, so that an open that followed the link
    // would succeed (and the write after it would change the target).
    let value = Target::with(&image_of(Value::<i32>::new(5).unwrap().as_fd()));
    let rlock = Target::with(&image_of(RLock::new().unwrap().as_fd()));
    let lock = Target::with(&image_of(Lock::new().unwrap().as_fd()));
    let (v0, r0, l0) = (value.bytes(), rlock.bytes(), lock.bytes());

    let planted = plant_link(&link, &value);
    match SharedMemory::open(&link) {
        Ok(m) => {
            let _ = m.write_at(0, b"followed");
            panic!("SharedMemory::open followed the link");
        }
        Err(e) => assert!(is_link_refusal(&e, &link), "{e:?}"),
    }
    match Value::<i32>::open(&link) {
        Ok(v) => {
            let _ = v.set(99);
            panic!("Value::open followed the link");
        }
        Err(e) => assert!(is_link_refusal(&e, &link), "{e:?}"),
    }
    // Creating over a link neither follows it nor calls it stale.
    assert_eq!(
        err(SharedMemory::create(&link, 4096)),
        Error::AlreadyExists {
            name: link.to_string()
        }
    );
    assert_eq!(
        err(Value::<i32>::create(&link, 1)),
        Error::AlreadyExists {
            name: link.to_string()
        }
    );
    drop(planted);

    let planted = plant_link(&link, &rlock);
    match RLock::open(&link) {
        Ok(l) => {
            drop(l.lock());
            panic!("RLock::open followed the link");
        }
        Err(e) => assert!(is_link_refusal(&e, &link), "{e:?}"),
    }
    drop(planted);

    let planted = plant_link(&link, &lock);
    match Lock::open(&link) {
        Ok(l) => {
            drop(l.lock());
            panic!("Lock::open followed the link");
        }
        Err(e) => assert!(is_link_refusal(&e, &link), "{e:?}"),
    }
    drop(planted);

    assert_eq!(value.bytes(), v0, "target of the link changed");
    assert_eq!(rlock.bytes(), r0, "target of the link changed");
    assert_eq!(lock.bytes(), l0, "target of the link changed");
}

#[test]
fn a_separate_lock_is_not_reattached_through_a_symlink() {
    let nl = ShmName::new("lklink");
    let nv = ShmName::new("lkval");
    let lock = RLock::create(&nl).unwrap();
    let v = Value::<i32>::create_with_lock(&nv, 1, &lock).unwrap();
    assert_eq!(Value::<i32>::open(&nv).unwrap().get().unwrap(), 1);

    // A copy of the lock's segment, with its identity: re-attaching it by
    // name through the link would pass the identity check.
    let target = Target::with(&image_of(lock.as_fd()));
    let before = target.bytes();
    lock.unlink().unwrap();
    let planted = plant_link(&nl, &target);
    match Value::<i32>::open(&nv) {
        Ok(v2) => {
            let _ = v2.set(2);
            panic!("Value::open re-attached its lock through the link");
        }
        Err(e) => assert!(is_link_refusal(&e, &nl), "{e:?}"),
    }
    assert_eq!(target.bytes(), before, "target of the link changed");
    drop(planted);
    drop((v, lock));
}

#[test]
fn non_regular_names_are_refused_without_blocking() {
    let fifo = ShmName::new("fifo");
    let c = std::ffi::CString::new(fifo.path().into_os_string().into_encoded_bytes()).unwrap();
    // SAFETY: `c` is a NUL-terminated path that outlives the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let planted = Planted(fifo.path());
    // Linux opens a FIFO read-write without blocking; the fstat check
    // refuses it.
    assert!(is_nonregular_refusal(
        &err(SharedMemory::open(&fifo)),
        &fifo
    ));
    assert!(is_nonregular_refusal(
        &err(Value::<i32>::open(&fifo)),
        &fifo
    ));
    assert!(is_nonregular_refusal(&err(RLock::open(&fifo)), &fifo));
    assert_eq!(
        err(Value::<i32>::create(&fifo, 0)),
        Error::AlreadyExists {
            name: fifo.to_string()
        }
    );
    drop(planted);

    let dir = ShmName::new("dir");
    std::fs::create_dir(dir.path()).unwrap();
    let planted = Planted(dir.path());
    assert!(is_nonregular_refusal(&err(SharedMemory::open(&dir)), &dir));
    assert!(is_nonregular_refusal(&err(Array::<u8>::open(&dir)), &dir));
    assert!(matches!(
        err(SharedMemory::unlink_name(&dir)),
        Error::Io {
            errno: libc::EISDIR,
            ..
        }
    ));
    drop(planted);
}

/// A file on which another process holds a write lease: a blocking open
/// would wait for the lease break (`/proc/sys/fs/lease-break-time`, 45 s
/// by default); `open` fails at once with `EAGAIN` instead.
#[test]
fn a_leased_file_is_not_waited_for() {
    const TEST: &str = "a_leased_file_is_not_waited_for";
    if common::run_child(TEST, |_| {
        // The lease break is signalled with SIGIO, whose default action
        // would end this process.
        // SAFETY: installs SIG_IGN (no handler code) for SIGIO, which
        // nothing else in this child process uses.
        let old = unsafe { libc::signal(libc::SIGIO, libc::SIG_IGN) };
        assert_ne!(old, libc::SIG_ERR);
        let f = shm_file(&common::arg("NAME"));
        // SAFETY: fcntl(F_SETLEASE) on an open descriptor of our own.
        let rc = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETLEASE, libc::F_WRLCK) };
        assert_eq!(rc, 0, "F_SETLEASE: {}", std::io::Error::last_os_error());
        common::tell("leased");
        common::await_msg("release");
        // SAFETY: as above.
        unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETLEASE, libc::F_UNLCK) };
    }) {
        return;
    }
    let name = ShmName::new("lease");
    let image = image_of(Value::<i32>::new(3).unwrap().as_fd());
    create_file(&name.path(), &image);
    let mut child = common::spawn(TEST, "holder").arg("NAME", &*name).start();
    child.expect("leased");
    let t = Instant::now();
    let e1 = err(SharedMemory::open(&name));
    let e2 = err(Value::<i32>::open(&name));
    let took = t.elapsed();
    child.send("release");
    child.wait();
    std::fs::remove_file(name.path()).unwrap();
    for e in [e1, e2] {
        assert!(
            matches!(
                e,
                Error::Io {
                    errno: libc::EAGAIN,
                    ..
                }
            ),
            "{e:?}"
        );
    }
    // Far below the 45 s lease-break time (not a tight timing assertion).
    assert!(took < Duration::from_secs(20), "open waited {took:?}");
}

// ---------------------------------------------------------------------------
// Mode
// ---------------------------------------------------------------------------

#[test]
fn created_names_are_0600_whatever_the_umask() {
    const TEST: &str = "created_names_are_0600_whatever_the_umask";
    if common::run_child(TEST, |_| {
        // SAFETY: umask(2) cannot fail; this child runs one test on one
        // thread, so nothing else creates files meanwhile.
        unsafe { libc::umask(0o277) };
        // The umask applies to /dev/shm: a plain file asked for 0600 is
        // 0400.
        let plain = ShmName::new("plain");
        create_file(&plain.path(), b"x");
        assert_eq!(common::mode_of(&plain), 0o400);
        std::fs::remove_file(plain.path()).unwrap();

        let all = common::every_kind("umask");
        for n in &all.names {
            assert_eq!(common::mode_of(n), 0o600, "{}", &**n);
        }
    }) {
        return;
    }
    common::spawn(TEST, "creator").start().wait();
}

// ---------------------------------------------------------------------------
// Descriptors
// ---------------------------------------------------------------------------

/// A memfd holding `bytes`, made with `flags`.
fn memfd_with(bytes: &[u8], flags: MemfdFlags) -> OwnedFd {
    let fd = rustix::fs::memfd_create("shmsync_test", MemfdFlags::CLOEXEC | flags).unwrap();
    let mut f = std::fs::File::from(fd);
    f.write_all(bytes).unwrap();
    OwnedFd::from(f)
}

type FromFd = Box<dyn Fn(OwnedFd) -> Result<(), Error>>;

/// Every `from_fd`, with an image of a valid object of its type.
fn every_from_fd() -> Vec<(&'static str, Vec<u8>, FromFd)> {
    let shared = RLock::new().unwrap();
    vec![
        (
            "SharedMemory",
            image_of(SharedMemory::anonymous(100).unwrap().as_fd()),
            Box::new(|fd| SharedMemory::from_fd(fd).map(drop)),
        ),
        (
            "Value",
            image_of(Value::<i32>::new(1).unwrap().as_fd()),
            Box::new(|fd| Value::<i32>::from_fd(fd).map(drop)),
        ),
        (
            "Value with lock",
            image_of(Value::<i32>::with_lock(1, &shared).unwrap().as_fd()),
            Box::new(move |fd| Value::<i32>::from_fd_with_lock(fd, &shared).map(drop)),
        ),
        (
            "RawValue",
            image_of(RawValue::<i32>::new(1).unwrap().as_fd()),
            Box::new(|fd| RawValue::<i32>::from_fd(fd).map(drop)),
        ),
        (
            "Array",
            image_of(Array::<i32>::from_slice(&[1, 2]).unwrap().as_fd()),
            Box::new(|fd| Array::<i32>::from_fd(fd).map(drop)),
        ),
        (
            "RawArray",
            image_of(RawArray::<i32>::from_slice(&[1, 2]).unwrap().as_fd()),
            Box::new(|fd| RawArray::<i32>::from_fd(fd).map(drop)),
        ),
        (
            "Lock",
            image_of(Lock::new().unwrap().as_fd()),
            Box::new(|fd| Lock::from_fd(fd).map(drop)),
        ),
        (
            "RLock",
            image_of(RLock::new().unwrap().as_fd()),
            Box::new(|fd| RLock::from_fd(fd).map(drop)),
        ),
        (
            "AtomicValue",
            image_of(AtomicValue::<u64>::new(1).unwrap().as_fd()),
            Box::new(|fd| AtomicValue::<u64>::from_fd(fd).map(drop)),
        ),
        (
            "AtomicArray",
            image_of(AtomicArray::<u64>::from_slice(&[1, 2]).unwrap().as_fd()),
            Box::new(|fd| AtomicArray::<u64>::from_fd(fd).map(drop)),
        ),
    ]
}

fn is_unsealed_refusal(e: &Error) -> bool {
    matches!(e, Error::InvalidArgument(w) if w.contains("F_SEAL_SHRINK"))
}

#[test]
fn from_fd_refuses_a_memfd_not_sealed_against_shrinking() {
    for (what, image, from_fd) in every_from_fd() {
        // No sealing possible at all.
        let fd = memfd_with(&image, MemfdFlags::empty());
        let e = err(from_fd(fd));
        assert!(is_unsealed_refusal(&e), "{what}: {e:?}");

        // Sealable, but only against growing.
        let fd = memfd_with(&image, MemfdFlags::ALLOW_SEALING);
        let e = err(from_fd(fd.try_clone().unwrap()));
        assert!(is_unsealed_refusal(&e), "{what}: {e:?}");
        rustix::fs::fcntl_add_seals(&fd, SealFlags::GROW).unwrap();
        let e = err(from_fd(fd.try_clone().unwrap()));
        assert!(is_unsealed_refusal(&e), "{what}: {e:?}");

        // Sealed against shrinking: accepted.
        rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK).unwrap();
        from_fd(fd).unwrap_or_else(|e| panic!("{what}: sealed memfd refused: {e:?}"));
    }
}

#[test]
fn from_fd_accepts_named_files_and_refuses_other_descriptors() {
    let name = ShmName::new("byfd");
    let v = Value::<i32>::create(&name, 4).unwrap();
    let open_file = || OwnedFd::from(shm_file(&name));
    let fd = open_file();
    assert_eq!(
        Value::<i32>::from_fd(open_file()).unwrap().get().unwrap(),
        4
    );
    assert!(SharedMemory::from_fd(open_file()).is_ok());
    // Still accepted once the name is gone (its link reads "(deleted)").
    v.unlink().unwrap();
    assert_eq!(Value::<i32>::from_fd(fd).unwrap().get().unwrap(), 4);
    drop(v);

    let (r, w) = std::os::unix::net::UnixStream::pair().unwrap();
    let (r, w) = (OwnedFd::from(r), OwnedFd::from(w));
    let not_regular = |e: &Error| matches!(e, Error::InvalidArgument(w) if w.contains("regular"));
    assert!(not_regular(&err(SharedMemory::from_fd(r))));
    assert!(not_regular(&err(Value::<i32>::from_fd(w))));
    let dir = OwnedFd::from(std::fs::File::open("/dev/shm").unwrap());
    assert!(not_regular(&err(RLock::from_fd(dir))));
}

// ---------------------------------------------------------------------------
// Stale names
// ---------------------------------------------------------------------------

/// The image of a `Value<i32>` whose creator never published its header.
fn unpublished_value_image() -> Vec<u8> {
    let mut image = image_of(Value::<i32>::new(8).unwrap().as_fd());
    assert_eq!(&image[OFF_INIT..OFF_INIT + 4], b"REDY");
    image[OFF_INIT..OFF_INIT + 4].fill(0);
    image
}

#[test]
fn an_empty_leftover_name_is_stale_and_unlink_name_recovers() {
    let name = ShmName::new("staleempty");
    // What a creator killed between creating the name and sizing it leaves.
    create_file(&name.path(), &[]);
    let stale = Error::Stale {
        name: name.to_string(),
    };
    assert_eq!(err(Value::<i32>::create(&name, 1)), stale);
    assert_eq!(err(Lock::create(&name)), stale);
    // Raw blocks have no header: any taken name is just taken.
    assert_eq!(
        err(SharedMemory::create(&name, 10)),
        Error::AlreadyExists {
            name: name.to_string()
        }
    );
    // The message tells the way out.
    assert!(
        stale.to_string().contains("SharedMemory::unlink_name"),
        "{stale}"
    );
    assert_eq!(
        std::io::Error::from(stale).kind(),
        std::io::ErrorKind::AlreadyExists
    );

    SharedMemory::unlink_name(&name).unwrap();
    common::assert_gone(&name);
    let v = Value::<i32>::create(&name, 6).unwrap();
    assert_eq!(Value::<i32>::open(&name).unwrap().get().unwrap(), 6);
    drop(v);
}

#[test]
fn an_unpublished_header_is_stale_and_unlink_name_recovers() {
    let name = ShmName::new("staleheader");
    create_file(&name.path(), &unpublished_value_image());
    let stale = Error::Stale {
        name: name.to_string(),
    };
    assert_eq!(err(Value::<i32>::create(&name, 1)), stale);
    assert_eq!(err(AtomicArray::<u8>::create(&name, &[1])), stale);
    // `open` reports the same file as not ready.
    assert_eq!(err(Value::<i32>::open(&name)), Error::NotReady);

    // With a leading slash, as POSIX names are written.
    SharedMemory::unlink_name(&format!("/{}", &*name)).unwrap();
    common::assert_gone(&name);
    let a = Array::<i32>::create(&name, &[1, 2, 3]).unwrap();
    assert_eq!(Array::<i32>::open(&name).unwrap().len(), 3);
    drop(a);
}

#[test]
fn live_or_foreign_names_are_already_exists() {
    let taken = |name: &ShmName| Error::AlreadyExists {
        name: name.to_string(),
    };
    // A live object: at once, not after the bounded wait.
    let live = ShmName::new("live");
    let v = Value::<i32>::create(&live, 1).unwrap();
    let t = Instant::now();
    assert_eq!(err(Value::<i32>::create(&live, 2)), taken(&live));
    assert_eq!(err(RLock::create(&live)), taken(&live));
    println!("AlreadyExists after {:?}", t.elapsed());
    assert_eq!(v.get().unwrap(), 1, "the live object was disturbed");
    drop(v);

    // Not a shmsync segment: a foreign magic, or too short for a header.
    let foreign = ShmName::new("foreign");
    let mut bytes = vec![0u8; 4096];
    bytes[OFF_MAGIC..OFF_MAGIC + 8].copy_from_slice(b"NOTSHMSY");
    create_file(&foreign.path(), &bytes);
    assert_eq!(err(Value::<i32>::create(&foreign, 1)), taken(&foreign));
    SharedMemory::unlink_name(&foreign).unwrap();
    let short = ShmName::new("short");
    create_file(&short.path(), b"hello");
    assert_eq!(err(Value::<i32>::create(&short, 1)), taken(&short));
    SharedMemory::unlink_name(&short).unwrap();
}

#[test]
fn a_creator_that_publishes_within_the_wait_is_not_stale() {
    // Retry only if this machine stalled past the one-second wait before
    // the header was published (then the run proves nothing).
    for attempt in 0.. {
        let name = ShmName::new("slowcreator");
        let m = SharedMemory::create(&name, unpublished_value_image().len()).unwrap();
        m.write_at(0, &unpublished_value_image()).unwrap();
        let n = name.to_string();
        let started = Instant::now();
        let creator = std::thread::spawn(move || Value::<i32>::create(&n, 1).map(drop));
        std::thread::sleep(Duration::from_millis(50));
        m.write_at(OFF_INIT, b"REDY").unwrap();
        let published = started.elapsed();
        let r = creator.join().unwrap();
        drop(m);
        common::assert_gone(&name);
        match r {
            Err(Error::AlreadyExists { .. }) => return,
            Err(Error::Stale { .. }) if published >= Duration::from_millis(900) && attempt < 5 => {
                println!("machine stalled ({published:?}), retrying");
            }
            r => panic!("expected AlreadyExists (published after {published:?}), got {r:?}"),
        }
    }
}

#[test]
fn unlink_name_removes_a_link_not_its_target() {
    assert!(matches!(
        err(SharedMemory::unlink_name("a/b")),
        Error::InvalidName { .. }
    ));
    let missing = ShmName::new("missing");
    assert_eq!(
        err(SharedMemory::unlink_name(&missing)),
        Error::NotFound {
            name: missing.to_string()
        }
    );
    let link = ShmName::new("unlinklink");
    let target = Target::with(b"keep me");
    let _planted = plant_link(&link, &target);
    SharedMemory::unlink_name(&link).unwrap();
    assert!(std::fs::symlink_metadata(link.path()).is_err());
    assert_eq!(target.bytes(), b"keep me");
}
