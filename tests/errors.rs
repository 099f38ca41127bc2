//! Every error of the crate triggered on purpose, and the naming, mode and
//! unlink rules of named segments.
//!
//! Segments are damaged on purpose at the header offsets of
//! `common/layout.rs`.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use common::layout::{
    DATA_OFFSET, HEADER_SIZE, LOCK_NAME_OFFSET, OFF_COUNT, OFF_DATA_OFFSET, OFF_ELEM_SIZE,
    OFF_INIT, OFF_KIND, OFF_LOCK_MODE, OFF_LOCK_NAME_LEN, OFF_MAGIC, OFF_STRIDE, OFF_TYPE_CODE,
    OFF_VERSION,
};
use common::{create_file, err, shm_file, shm_path, ShmName};
use shmsync::{
    bytemuck, Array, CChar, CLong, Error, Lock, LockError, RLock, RawArray, RawValue, SharedMemory,
    TryLockError, Value,
};

/// Overwrites bytes of the named segment through a raw mapping.
fn poke(name: &str, offset: usize, bytes: &[u8]) {
    SharedMemory::open(name)
        .unwrap()
        .write_at(offset, bytes)
        .unwrap();
}

/// Reads a little-endian `u32` of the named segment.
fn peek_u32(name: &str, offset: usize) -> u32 {
    let mut b = [0u8; 4];
    SharedMemory::open(name)
        .unwrap()
        .read_at(offset, &mut b)
        .unwrap();
    u32::from_le_bytes(b)
}

// ---------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------

#[test]
fn invalid_names_are_refused_everywhere() {
    let long = "x".repeat(256);
    let bad = [
        "", "/", "a/b", "/a/b", "//a", "a/", "a\0b", ".", "..", &long,
    ];
    for n in bad {
        let is_invalid = |e: Error| matches!(e, Error::InvalidName { .. });
        assert!(is_invalid(err(SharedMemory::create(n, 10))), "{n:?}");
        assert!(is_invalid(err(SharedMemory::open(n))), "{n:?}");
        assert!(is_invalid(err(Value::<i32>::create(n, 0))), "{n:?}");
        assert!(is_invalid(err(Value::<i32>::open(n))), "{n:?}");
        assert!(is_invalid(err(RawValue::<i32>::create(n, 0))), "{n:?}");
        assert!(is_invalid(err(Array::<i32>::create(n, &[1]))), "{n:?}");
        assert!(is_invalid(err(RawArray::<i32>::open(n))), "{n:?}");
        assert!(is_invalid(err(Lock::create(n))), "{n:?}");
        assert!(is_invalid(err(RLock::open(n))), "{n:?}");
    }
    // The error names the offending name.
    match err(Value::<i32>::create("a/b", 0)) {
        Error::InvalidName { name, .. } => assert_eq!(name, "a/b"),
        e => panic!("{e:?}"),
    }
}

/// A name of `len` bytes (without a slash) that no other test uses.
fn name_of_len(len: usize) -> ShmName {
    let base = ShmName::new("long");
    let long = ShmName::adopt(&format!("{}{}", &*base, "y".repeat(len - base.len())));
    assert_eq!(long.len(), len);
    long
}

fn check_long_name(len: usize) {
    let long = name_of_len(len);
    {
        let v = Value::<i32>::create(&long, 7).unwrap();
        assert_eq!(v.name(), Some(&*long));
        assert_eq!(Value::<i32>::open(&long).unwrap().get().unwrap(), 7);
        let slashed = format!("/{}", &*long);
        assert_eq!(Value::<i32>::open(&slashed).unwrap().get().unwrap(), 7);
    }
    common::assert_gone(&long);
}

#[test]
fn long_names_are_accepted() {
    check_long_name(254);
}

/// NAME_MAX (255 bytes, as CPython accepts) must work too.
#[test]
fn longest_name_255_bytes_is_accepted() {
    check_long_name(255);
}

#[test]
fn leading_slash_is_optional() {
    // With a leading '/': the same object, named without the slash.
    let name = ShmName::new("slash");
    let slashed = format!("/{}", &*name);
    let v = Value::<i32>::create(&slashed, 3).unwrap();
    assert_eq!(v.name(), Some(&*name));
    common::assert_exists(&name);
    assert_eq!(Value::<i32>::open(&name).unwrap().get().unwrap(), 3);
    assert_eq!(Value::<i32>::open(&slashed).unwrap().get().unwrap(), 3);
    let m = SharedMemory::open(&slashed).unwrap();
    assert_eq!(m.name(), Some(&*name));
    drop(m);
    drop(v);
    common::assert_gone(&name);

    let name = ShmName::new("slashlock");
    let l = RLock::create(&format!("/{}", &*name)).unwrap();
    assert_eq!(l.name(), Some(&*name));
    drop(RLock::open(&name).unwrap());
    drop(l);
    common::assert_gone(&name);
}

#[test]
fn missing_name_is_not_found() {
    let name = ShmName::new("missing");
    let is_nf = |e: Error| matches!(&e, Error::NotFound { name: n } if n == &*name);
    assert!(is_nf(err(SharedMemory::open(&name))));
    assert!(is_nf(err(Value::<i32>::open(&name))));
    assert!(is_nf(err(RawValue::<i32>::open(&name))));
    assert!(is_nf(err(Array::<i32>::open(&name))));
    assert!(is_nf(err(Array::<i32>::open_len(&name, 3))));
    assert!(is_nf(err(RawArray::<i32>::open(&name))));
    assert!(is_nf(err(RawArray::<i32>::open_len(&name, 3))));
    assert!(is_nf(err(Lock::open(&name))));
    assert!(is_nf(err(RLock::open(&name))));
    // Unlinking a name twice: the second time it is not there.
    let m = SharedMemory::create(&name, 16).unwrap();
    m.unlink().unwrap();
    common::assert_gone(&name);
    assert!(is_nf(err(m.unlink())));
}

#[test]
fn existing_name_is_already_exists() {
    let name = ShmName::new("exists");
    let v = Value::<i32>::create(&name, 1).unwrap();
    let is_ae = |e: Error| matches!(&e, Error::AlreadyExists { name: n } if n == &*name);
    assert!(is_ae(err(Value::<i32>::create(&name, 2))));
    assert!(is_ae(err(Value::<u64>::create(&name, 2))));
    assert!(is_ae(err(RawValue::<i32>::create(&name, 2))));
    assert!(is_ae(err(Array::<i32>::create(&name, &[1]))));
    assert!(is_ae(err(RawArray::<i32>::create(&name, &[1]))));
    assert!(is_ae(err(Lock::create(&name))));
    assert!(is_ae(err(RLock::create(&name))));
    assert!(is_ae(err(SharedMemory::create(&name, 100))));
    assert!(is_ae(err(SharedMemory::create(
        &format!("/{}", &*name),
        100
    ))));
    // The failed creates neither changed nor unlinked the original.
    assert_eq!(v.get().unwrap(), 1);
    common::assert_exists(&name);
    drop(v);
    common::assert_gone(&name);
}

// ---------------------------------------------------------------------------
// Type, size and content checks on open
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct P2 {
    x: f64,
    y: f64,
}
impl shmsync::Element for P2 {}

#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct P3 {
    x: f64,
    y: f64,
    z: f64,
}
impl shmsync::Element for P3 {}

fn is_type_mismatch(e: Error) -> bool {
    matches!(e, Error::TypeMismatch { .. })
}

#[test]
fn another_kind_or_element_type_is_type_mismatch() {
    let nv = ShmName::new("tmv");
    let v = Value::<i32>::create(&nv, 5).unwrap();
    assert!(is_type_mismatch(err(Value::<u32>::open(&nv))));
    assert!(is_type_mismatch(err(Value::<f32>::open(&nv))));
    assert!(is_type_mismatch(err(Value::<i64>::open(&nv))));
    assert!(is_type_mismatch(err(RawValue::<i32>::open(&nv))));
    assert!(is_type_mismatch(err(Array::<i32>::open(&nv))));
    assert!(is_type_mismatch(err(RawArray::<i32>::open(&nv))));
    assert!(is_type_mismatch(err(Lock::open(&nv))));
    assert!(is_type_mismatch(err(RLock::open(&nv))));
    match err(Value::<u32>::open(&nv)) {
        Error::TypeMismatch { expected, found } => {
            println!("Value<u32> on a Value<i32>: expected {expected}, found {found}");
            assert_ne!(expected, found);
        }
        e => panic!("{e:?}"),
    }

    let nr = ShmName::new("tmr");
    let rl = RLock::create(&nr).unwrap();
    assert!(is_type_mismatch(err(Value::<i32>::open(&nr))));
    assert!(is_type_mismatch(err(Array::<i32>::open(&nr))));
    assert!(is_type_mismatch(err(Lock::open(&nr))));

    let nl = ShmName::new("tml");
    let l = Lock::create(&nl).unwrap();
    assert!(is_type_mismatch(err(RLock::open(&nl))));
    assert!(is_type_mismatch(err(RawValue::<u8>::open(&nl))));

    let na = ShmName::new("tma");
    let a = Array::<i32>::create(&na, &[1, 2, 3]).unwrap();
    assert!(is_type_mismatch(err(Value::<i32>::open(&na))));
    assert!(is_type_mismatch(err(Array::<i64>::open(&na))));
    assert!(is_type_mismatch(err(Array::<u32>::open(&na))));
    assert!(is_type_mismatch(err(RawArray::<i32>::open(&na))));

    // C long ('l') and i64 ('q') have the same size but are different codes.
    let nc = ShmName::new("tmc");
    let c = Value::<CLong>::create(&nc, CLong(1)).unwrap();
    assert!(is_type_mismatch(err(Value::<i64>::open(&nc))));
    assert_eq!(Value::<CLong>::open(&nc).unwrap().get().unwrap(), CLong(1));

    // User structs: same code 'S', checked by size.
    let ns = ShmName::new("tms");
    let s = Value::create(&ns, P2 { x: 1.0, y: 2.0 }).unwrap();
    assert!(is_type_mismatch(err(Value::<P3>::open(&ns))));
    assert_eq!(
        Value::<P2>::open(&ns).unwrap().get().unwrap(),
        P2 { x: 1.0, y: 2.0 }
    );

    // The same checks apply to descriptors.
    let dup = |x: &dyn std::os::fd::AsFd| x.as_fd().try_clone_to_owned().unwrap();
    assert!(is_type_mismatch(err(Value::<u32>::from_fd(dup(&v)))));
    assert!(is_type_mismatch(err(RawValue::<i32>::from_fd(dup(&v)))));
    assert!(is_type_mismatch(err(Lock::from_fd(dup(&rl)))));
    assert!(is_type_mismatch(err(RLock::from_fd(dup(&l)))));
    assert!(is_type_mismatch(err(RawArray::<i32>::from_fd(dup(&a)))));

    // Failed opens did not disturb the objects.
    assert_eq!(v.get().unwrap(), 5);
    assert_eq!(a.to_vec().unwrap(), vec![1, 2, 3]);
    drop((v, rl, l, a, c, s));
    for n in [&nv, &nr, &nl, &na, &nc, &ns] {
        common::assert_gone(n);
    }
}

#[test]
fn tampered_element_layout_is_type_mismatch() {
    let name = ShmName::new("tmlay");
    let v = Value::<i32>::create(&name, 5).unwrap();
    poke(&name, OFF_ELEM_SIZE, &8u32.to_le_bytes());
    assert!(is_type_mismatch(err(Value::<i32>::open(&name))));
    poke(&name, OFF_ELEM_SIZE, &4u32.to_le_bytes());
    poke(&name, OFF_STRIDE, &8u32.to_le_bytes());
    assert!(is_type_mismatch(err(Value::<i32>::open(&name))));
    poke(&name, OFF_STRIDE, &4u32.to_le_bytes());
    assert_eq!(Value::<i32>::open(&name).unwrap().get().unwrap(), 5);
    drop(v);
    common::assert_gone(&name);
}

#[test]
fn wrong_length_or_grown_file_is_size_mismatch() {
    let name = ShmName::new("size");
    let a = Array::<i32>::create(&name, &[1, 2, 3]).unwrap();
    assert_eq!(
        err(Array::<i32>::open_len(&name, 4)),
        Error::SizeMismatch {
            expected: 4,
            found: 3
        }
    );
    assert!(matches!(
        err(RawArray::<i32>::open_len(&name, 3)),
        Error::TypeMismatch { .. }
    ));
    assert_eq!(Array::<i32>::open_len(&name, 3).unwrap().len(), 3);

    // Grow the file behind the header's back.
    let needed = DATA_OFFSET + 3 * 4;
    shm_file(&name).set_len(needed + 100).unwrap();
    assert_eq!(
        err(Array::<i32>::open(&name)),
        Error::SizeMismatch {
            expected: needed,
            found: needed + 100
        }
    );
    // The creator's mapping is unaffected by growth.
    assert_eq!(a.to_vec().unwrap(), vec![1, 2, 3]);
    drop(a);
    common::assert_gone(&name);

    // A header count that disagrees with the file: too small is a size
    // mismatch, too large is a truncated file.
    let name = ShmName::new("count");
    let a = Array::<i64>::create(&name, &[1, 2, 3, 4]).unwrap();
    poke(&name, OFF_COUNT, &3u64.to_le_bytes());
    assert_eq!(
        err(Array::<i64>::open(&name)),
        Error::SizeMismatch {
            expected: DATA_OFFSET + 24,
            found: DATA_OFFSET + 32
        }
    );
    poke(&name, OFF_COUNT, &5u64.to_le_bytes());
    assert_eq!(
        err(Array::<i64>::open(&name)),
        Error::Truncated {
            needed: DATA_OFFSET + 40,
            len: DATA_OFFSET + 32
        }
    );
    drop(a);
    common::assert_gone(&name);
}

#[test]
fn truncated_file_is_truncated_error() {
    // Shrunk below a header, through std::fs on /dev/shm/NAME (after the
    // creator has unmapped: shrinking under a live mapping would SIGBUS it).
    let name = ShmName::new("trunc1");
    Value::<i64>::create(&name, 9).unwrap().persist();
    shm_file(&name).set_len(64).unwrap();
    assert_eq!(
        err(Value::<i64>::open(&name)),
        Error::Truncated {
            needed: HEADER_SIZE,
            len: 64
        }
    );
    assert_eq!(
        err(RLock::open(&name)),
        Error::Truncated {
            needed: HEADER_SIZE,
            len: 64
        }
    );
    // Between the header and the end of the data.
    let name2 = ShmName::new("trunc2");
    Array::<i64>::create(&name2, &[1; 16]).unwrap().persist();
    let f2 = shm_file(&name2);
    f2.set_len(200).unwrap();
    assert_eq!(
        err(Array::<i64>::open(&name2)),
        Error::Truncated {
            needed: DATA_OFFSET + 16 * 8,
            len: 200
        }
    );
    // An empty file, to SharedMemory.
    f2.set_len(0).unwrap();
    assert_eq!(
        err(SharedMemory::open(&name2)),
        Error::Truncated { needed: 1, len: 0 }
    );
    SharedMemory::open(&name).unwrap().unlink().unwrap();
    std::fs::remove_file(common::shm_path(&name2)).unwrap();
    common::assert_gone(&name);
    common::assert_gone(&name2);
}

#[test]
fn truncated_copy_made_with_shared_memory_is_truncated_error() {
    // A valid header copied into a shorter segment made with SharedMemory.
    let src = ShmName::new("tcsrc");
    let dst = ShmName::new("tcdst");
    let a = Array::<i64>::create(&src, &[7; 16]).unwrap();
    let mut head = vec![0u8; 200];
    SharedMemory::open(&src)
        .unwrap()
        .read_at(0, &mut head)
        .unwrap();
    let m = SharedMemory::create(&dst, 200).unwrap();
    m.write_at(0, &head).unwrap();
    assert_eq!(
        err(Array::<i64>::open(&dst)),
        Error::Truncated {
            needed: DATA_OFFSET + 16 * 8,
            len: 200
        }
    );
    // Header only.
    let dst2 = ShmName::new("tcdst2");
    let m2 = SharedMemory::create(&dst2, 100).unwrap();
    m2.write_at(0, &head[..100]).unwrap();
    assert_eq!(
        err(Array::<i64>::open(&dst2)),
        Error::Truncated {
            needed: HEADER_SIZE,
            len: 100
        }
    );
    drop((a, m, m2));
    common::assert_gone(&src);
    common::assert_gone(&dst);
    common::assert_gone(&dst2);
}

#[test]
fn garbage_file_is_bad_magic() {
    // Random bytes written with std::fs, mode 0600.
    let name = ShmName::new("garbage");
    let mut bytes = common::random_bytes(4096);
    bytes[0] = 0xff; // never the magic, never "not yet written" (0)
    create_file(&shm_path(&name), &bytes);
    assert_eq!(common::mode_of(&name), 0o600);
    assert_eq!(err(Value::<i32>::open(&name)), Error::BadMagic);
    assert_eq!(err(Array::<u8>::open(&name)), Error::BadMagic);
    assert_eq!(err(RLock::open(&name)), Error::BadMagic);
    // Through a descriptor too.
    let fd = std::os::fd::OwnedFd::from(shm_file(&name));
    assert_eq!(err(RawValue::<i32>::from_fd(fd)), Error::BadMagic);
    std::fs::remove_file(common::shm_path(&name)).unwrap();

    // A published header (init = READY) with a foreign magic, made with
    // SharedMemory::create + write_at.
    let name2 = ShmName::new("foreign");
    let m = SharedMemory::create(&name2, 4096).unwrap();
    m.write_at(OFF_MAGIC, b"NOTSHMSY").unwrap();
    m.write_at(OFF_INIT, b"REDY").unwrap();
    assert_eq!(err(Value::<i32>::open(&name2)), Error::BadMagic);
    assert_eq!(err(Lock::open(&name2)), Error::BadMagic);
    drop(m);
    common::assert_gone(&name);
    common::assert_gone(&name2);
}

#[test]
fn changed_version_is_version_mismatch() {
    let name = ShmName::new("version");
    let v = Value::<i32>::create(&name, 1).unwrap();
    // The version this build writes, read back from the file.
    let ours = peek_u32(&name, OFF_VERSION);
    poke(&name, OFF_VERSION, &(ours + 1).to_le_bytes());
    assert_eq!(
        err(Value::<i32>::open(&name)),
        Error::VersionMismatch {
            expected: ours,
            found: ours + 1
        }
    );
    // Checked before the type: any request sees the version first.
    assert!(matches!(
        err(Array::<u64>::open(&name)),
        Error::VersionMismatch { found, .. } if found == ours + 1
    ));
    poke(&name, OFF_VERSION, &ours.to_le_bytes());
    assert_eq!(Value::<i32>::open(&name).unwrap().get().unwrap(), 1);
    drop(v);
    common::assert_gone(&name);
}

/// Creates a fresh `Value<i32>`, damages it, and returns what `open` says.
fn open_damaged_value(offset: usize, bytes: &[u8]) -> Error {
    let name = ShmName::new("corrupt");
    let v = Value::<i32>::create(&name, 1).unwrap();
    poke(&name, offset, bytes);
    let e = err(Value::<i32>::open(&name));
    drop(v);
    common::assert_gone(&name);
    e
}

fn is_corrupt(e: &Error) -> bool {
    matches!(e, Error::Corrupt(_))
}

#[test]
fn inconsistent_header_fields_are_corrupt() {
    let cases: &[(&str, usize, Vec<u8>)] = &[
        ("lock mode 7", OFF_LOCK_MODE, 7u32.to_le_bytes().to_vec()),
        (
            "lock mode none on a Value",
            OFF_LOCK_MODE,
            0u32.to_le_bytes().to_vec(),
        ),
        (
            "data offset 64",
            OFF_DATA_OFFSET,
            64u64.to_le_bytes().to_vec(),
        ),
        (
            "data offset past the end",
            OFF_DATA_OFFSET,
            4096u64.to_le_bytes().to_vec(),
        ),
        ("kind 99", OFF_KIND, 99u32.to_le_bytes().to_vec()),
        (
            "type code > 255",
            OFF_TYPE_CODE,
            0x169u32.to_le_bytes().to_vec(),
        ),
        ("count 2 on a Value", OFF_COUNT, 2u64.to_le_bytes().to_vec()),
    ];
    for (what, off, bytes) in cases {
        let e = open_damaged_value(*off, bytes);
        assert!(is_corrupt(&e), "{what}: {e:?}");
        println!("{what}: {e}");
    }

    // A lock mode a raw value cannot have.
    let name = ShmName::new("corraw");
    let r = RawValue::<i32>::create(&name, 1).unwrap();
    poke(&name, OFF_LOCK_MODE, &1u32.to_le_bytes());
    assert!(is_corrupt(&err(RawValue::<i32>::open(&name))));
    drop(r);

    // A count whose byte size overflows.
    let name2 = ShmName::new("corrcount");
    let a = Array::<i64>::create(&name2, &[1, 2]).unwrap();
    poke(&name2, OFF_COUNT, &u64::MAX.to_le_bytes());
    assert!(is_corrupt(&err(Array::<i64>::open(&name2))));
    drop(a);

    // A separate named lock whose recorded name is damaged.
    let nl = ShmName::new("corrl");
    let nv = ShmName::new("corrv");
    let l = RLock::create(&nl).unwrap();
    let v = Value::<i32>::create_with_lock(&nv, 1, &l).unwrap();
    assert_eq!(Value::<i32>::open(&nv).unwrap().get().unwrap(), 1);
    poke(&nv, OFF_LOCK_NAME_LEN, &300u32.to_le_bytes());
    assert!(is_corrupt(&err(Value::<i32>::open(&nv))));
    poke(&nv, OFF_LOCK_NAME_LEN, &(nl.len() as u32).to_le_bytes());
    poke(&nv, LOCK_NAME_OFFSET, b"a/");
    assert!(is_corrupt(&err(Value::<i32>::open(&nv))));
    poke(&nv, LOCK_NAME_OFFSET, &[0xff, 0xfe]);
    assert!(is_corrupt(&err(Value::<i32>::open(&nv))));
    drop((v, l));
    for n in [&name, &name2, &nl, &nv] {
        common::assert_gone(n);
    }
}

#[test]
fn header_never_published_is_not_ready_without_hanging() {
    // Header-sized, all zero: a creator that died before publishing.
    let name = ShmName::new("notready");
    let m = SharedMemory::create(&name, HEADER_SIZE as usize).unwrap();
    let t = Instant::now();
    assert_eq!(err(Value::<i32>::open(&name)), Error::NotReady);
    println!("NotReady after {:?}", t.elapsed());
    // Magic written, init never published: still not ready.
    m.write_at(OFF_MAGIC, b"SHMSYNC\0").unwrap();
    assert_eq!(err(RLock::open(&name)), Error::NotReady);
    drop(m);
    common::assert_gone(&name);
}

#[test]
fn empty_file_is_not_ready_without_hanging() {
    // An empty file: a creator that died before sizing it.
    let name2 = ShmName::new("empty");
    create_file(&shm_path(&name2), &[]);
    assert_eq!(err(Array::<i32>::open(&name2)), Error::NotReady);
    std::fs::remove_file(common::shm_path(&name2)).unwrap();
    common::assert_gone(&name2);
}

#[test]
fn open_waits_for_a_creator_that_publishes_late() {
    let src = ShmName::new("latesrc");
    let v = Value::<i32>::create(&src, 77).unwrap();
    let mut image = vec![0u8; (DATA_OFFSET + 4) as usize];
    SharedMemory::open(&src)
        .unwrap()
        .read_at(0, &mut image)
        .unwrap();
    drop(v);
    let ready = image[OFF_INIT..OFF_INIT + 4].to_vec();
    assert_eq!(ready, b"REDY");
    image[OFF_INIT..OFF_INIT + 4].fill(0);

    // Retry only if this machine stalled past open's one-second wait
    // before the header was published (then the run proves nothing).
    for attempt in 0.. {
        let name = ShmName::new("late");
        let m = SharedMemory::create(&name, image.len()).unwrap();
        m.write_at(0, &image).unwrap();
        let n = name.to_string();
        let started = Instant::now();
        let opener = std::thread::spawn(move || Value::<i32>::open(&n).map(|v| v.get().unwrap()));
        std::thread::sleep(Duration::from_millis(50));
        m.write_at(OFF_INIT, &ready).unwrap();
        let published = started.elapsed();
        let r = opener.join().unwrap();
        drop(m);
        common::assert_gone(&name);
        match r {
            Ok(x) => {
                assert_eq!(x, 77);
                return;
            }
            Err(Error::NotReady) if published >= Duration::from_millis(900) && attempt < 5 => {
                println!("machine stalled ({published:?}), retrying");
            }
            Err(e) => {
                panic!("open failed although the header was published after {published:?}: {e:?}")
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Ranges, locks and arguments
// ---------------------------------------------------------------------------

#[test]
fn shared_memory_ranges_out_of_bounds() {
    let m = SharedMemory::anonymous(100).unwrap();
    let mut two = [0u8; 2];
    assert_eq!(
        err(m.read_at(99, &mut two)),
        Error::OutOfBounds {
            offset: 99,
            len: 2,
            size: 100
        }
    );
    assert_eq!(
        err(m.write_at(100, &[1])),
        Error::OutOfBounds {
            offset: 100,
            len: 1,
            size: 100
        }
    );
    assert!(matches!(
        err(m.read_at(usize::MAX, &mut two)),
        Error::OutOfBounds { .. }
    ));
    // The edges themselves are fine; failed writes changed nothing.
    m.write_at(98, &[5, 6]).unwrap();
    m.read_at(98, &mut two).unwrap();
    assert_eq!(two, [5, 6]);
    m.read_at(100, &mut []).unwrap();
    let mut all = vec![0u8; 100];
    m.read_at(0, &mut all).unwrap();
    assert_eq!(all.iter().filter(|&&b| b != 0).count(), 2);
}

#[test]
fn array_index_out_of_bounds_panics_and_releases_the_lock() {
    let a = Array::<i32>::from_slice(&[1, 2, 3]).unwrap();
    assert!(catch_unwind(AssertUnwindSafe(|| a.get(3))).is_err());
    assert!(catch_unwind(AssertUnwindSafe(|| a.write(2, &[1, 2]))).is_err());
    assert!(catch_unwind(AssertUnwindSafe(|| {
        let mut out = [0; 2];
        a.read(usize::MAX, &mut out)
    }))
    .is_err());
    // The guards were dropped during unwinding: the lock is free for
    // another thread, and nothing was written.
    assert!(!a.get_lock().is_locked());
    std::thread::scope(|s| {
        s.spawn(|| drop(a.try_lock().expect("lock released after panic")));
    });
    assert_eq!(a.to_vec().unwrap(), vec![1, 2, 3]);
    let r = RawArray::<i32>::zeroed(2).unwrap();
    assert!(catch_unwind(AssertUnwindSafe(|| r.set(2, 1))).is_err());
    assert_eq!(r.to_vec(), vec![0, 0]);
}

#[test]
fn separate_lock_that_does_not_match_is_lock_mismatch() {
    let lock = RLock::new().unwrap();
    let other = RLock::new().unwrap();
    let v = Value::<i32>::with_lock(1, &lock).unwrap();
    let dup = || {
        use std::os::fd::AsFd;
        v.as_fd().try_clone_to_owned().unwrap()
    };
    assert_eq!(
        err(Value::<i32>::from_fd_with_lock(dup(), &other)),
        Error::LockMismatch
    );
    // An anonymous separate lock cannot be found from the value alone.
    assert_eq!(err(Value::<i32>::from_fd(dup())), Error::LockMismatch);
    // The right lock is accepted and really shared.
    let v2 = Value::<i32>::from_fd_with_lock(dup(), &lock).unwrap();
    let g = lock.lock().unwrap();
    std::thread::scope(|s| {
        s.spawn(|| assert!(matches!(v2.try_lock(), Err(TryLockError::WouldBlock))));
    });
    drop(g);
    v2.set(5).unwrap();
    assert_eq!(v.get().unwrap(), 5);

    // A value with its own lock given a separate one.
    let own = Value::<i32>::new(0).unwrap();
    let fd = {
        use std::os::fd::AsFd;
        own.as_fd().try_clone_to_owned().unwrap()
    };
    assert_eq!(
        err(Value::<i32>::from_fd_with_lock(fd, &lock)),
        Error::LockMismatch
    );
    let al = Array::<i32>::with_lock(&[1], &lock).unwrap();
    let fd = {
        use std::os::fd::AsFd;
        al.as_fd().try_clone_to_owned().unwrap()
    };
    assert_eq!(
        err(Array::<i32>::from_fd_with_lock(fd, &other)),
        Error::LockMismatch
    );

    // A named value whose named lock was replaced by another RLock.
    let nl = ShmName::new("lmlock");
    let nv = ShmName::new("lmval");
    let l1 = RLock::create(&nl).unwrap();
    let named = Value::<i32>::create_with_lock(&nv, 1, &l1).unwrap();
    l1.unlink().unwrap();
    // The lock's name is gone altogether: reported as that name missing.
    assert!(matches!(
        err(Value::<i32>::open(&nv)),
        Error::NotFound { name } if name == *nl
    ));
    let l2 = RLock::create(&nl).unwrap();
    assert_eq!(err(Value::<i32>::open(&nv)), Error::LockMismatch);
    drop((named, l1, l2));
    common::assert_gone(&nl);
    common::assert_gone(&nv);
}

#[test]
fn invalid_arguments() {
    let name = ShmName::new("zero");
    assert!(matches!(
        err(SharedMemory::create(&name, 0)),
        Error::InvalidArgument(_)
    ));
    common::assert_gone(&name);
    assert!(matches!(
        err(SharedMemory::anonymous(0)),
        Error::InvalidArgument(_)
    ));
    // Sizes that cannot exist.
    assert!(matches!(
        err(RawArray::<u64>::zeroed(usize::MAX)),
        Error::InvalidArgument(_)
    ));
    assert!(matches!(
        err(Array::<u64>::zeroed(usize::MAX / 16)),
        Error::InvalidArgument(_)
    ));
    // Sizes that could exist but not fit: refused before anything is
    // allocated (anonymous: the memory; named: /dev/shm's free space).
    let huge = 1usize << 50;
    for e in [
        err(RawArray::<u8>::zeroed(huge)),
        err(SharedMemory::anonymous(huge)),
        err(SharedMemory::create(&name, huge)),
    ] {
        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e:?}");
    }
    common::assert_gone(&name);
    // A named object's separate lock must be a named lock object.
    let anon = RLock::new().unwrap();
    assert!(matches!(
        err(Value::<i32>::create_with_lock(&name, 0, &anon)),
        Error::InvalidArgument(_)
    ));
    let nvl = ShmName::new("vlock");
    let owner = Value::<i32>::create(&nvl, 0).unwrap();
    assert!(matches!(
        err(Array::<i32>::create_with_lock(
            &name,
            &[1],
            owner.get_lock()
        )),
        Error::InvalidArgument(_)
    ));
    common::assert_gone(&name);
    // Anonymous objects have no name to unlink.
    assert!(matches!(
        err(SharedMemory::anonymous(8).unwrap().unlink()),
        Error::InvalidArgument(_)
    ));
    assert!(matches!(
        err(Value::<i32>::new(0).unwrap().unlink()),
        Error::InvalidArgument(_)
    ));
    assert!(matches!(
        err(RLock::new().unwrap().unlink()),
        Error::InvalidArgument(_)
    ));
    // A byte string longer than a 'c' array.
    let s = Array::<CChar>::zeroed(3).unwrap();
    let g = s.lock().unwrap();
    assert!(matches!(
        err(g.set_value(b"abcd")),
        Error::InvalidArgument(_)
    ));
    assert_eq!(g.raw(), vec![0, 0, 0]);
    g.set_value(b"abc").unwrap();
    drop(g);
    assert_eq!(s.value().unwrap(), b"abc");
    drop(owner);
    common::assert_gone(&nvl);

    // Zero-length arrays are fine.
    let e = Array::<i32>::zeroed(0).unwrap();
    assert!(e.is_empty());
    assert_eq!(e.to_vec().unwrap(), Vec::<i32>::new());
    let ne = ShmName::new("emptyarr");
    let created = RawArray::<i32>::create(&ne, &[]).unwrap();
    assert!(RawArray::<i32>::open_len(&ne, 0).unwrap().is_empty());
    drop(created);
    common::assert_gone(&ne);
}

#[test]
fn lock_relocked_by_owner_is_deadlock() {
    let l = Lock::new().unwrap();
    let g = l.lock().unwrap();
    assert!(matches!(l.lock(), Err(LockError::Deadlock)));
    assert!(matches!(l.try_lock(), Err(TryLockError::Deadlock)));
    assert!(matches!(
        l.lock_timeout(Duration::from_millis(1)),
        Err(TryLockError::Deadlock)
    ));
    let e: Error = l.lock().unwrap_err().into();
    assert_eq!(e, Error::Deadlock);
    // Still held once by us: the refused relocks changed nothing.
    assert!(l.is_held_by_current_thread());
    drop(g);
    assert!(!l.is_locked());
    drop(l.try_lock().unwrap());

    // An RLock relocks instead, and counts.
    let r = RLock::new().unwrap();
    let g1 = r.lock().unwrap();
    let g2 = r.lock().unwrap();
    let g3 = r.try_lock().unwrap();
    drop((g3, g2));
    assert!(r.is_held_by_current_thread());
    drop(g1);
    assert!(!r.is_locked());
}

#[test]
fn lock_held_by_another_thread_would_block() {
    let l = Lock::new().unwrap();
    let v = Value::<u8>::new(0).unwrap();
    let g = l.lock().unwrap();
    let vg = v.lock().unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            assert!(!l.is_held_by_current_thread());
            assert!(matches!(l.try_lock(), Err(TryLockError::WouldBlock)));
            assert!(matches!(v.try_lock(), Err(TryLockError::WouldBlock)));
            let e: Error = l.try_lock().unwrap_err().into();
            assert_eq!(e, Error::WouldBlock);
        });
    });
    drop((g, vg));
}

// ---------------------------------------------------------------------------
// Mode and unlink rules
// ---------------------------------------------------------------------------

#[test]
fn named_segments_are_created_mode_0600() {
    let mut all = common::every_kind("mode");
    for n in &all.names {
        assert_eq!(common::mode_of(n), 0o600, "{}", &**n);
    }
    all.objects.clear();
    for n in &all.names {
        common::assert_gone(n);
    }
}

#[test]
fn creator_unlinks_on_drop_persist_keeps_and_open_never_unlinks() {
    // Creator dropped: gone.
    let name = ShmName::new("drop");
    let v = Value::<i32>::create(&name, 1).unwrap();
    common::assert_exists(&name);
    // An opening handle dropped: still there.
    drop(Value::<i32>::open(&name).unwrap());
    drop(SharedMemory::open(&name).unwrap());
    common::assert_exists(&name);
    drop(v);
    common::assert_gone(&name);

    // Persisted: kept after the creator is dropped, usable, then unlinked
    // by hand; a handle keeps working after the unlink.
    let name = ShmName::new("persist");
    let a = Array::<u16>::create(&name, &[1, 2]).unwrap();
    a.persist();
    drop(a);
    common::assert_exists(&name);
    let b = Array::<u16>::open(&name).unwrap();
    assert_eq!(b.to_vec().unwrap(), vec![1, 2]);
    b.unlink().unwrap();
    common::assert_gone(&name);
    b.set(0, 9).unwrap();
    assert_eq!(b.get(0).unwrap(), 9);
    drop(b);

    // Clones: the name lives until the last clone of the creator is gone.
    let name = ShmName::new("clone");
    let l = RLock::create(&name).unwrap();
    let l2 = l.clone();
    drop(l);
    common::assert_exists(&name);
    drop(l2);
    common::assert_gone(&name);

    let name = ShmName::new("shmclone");
    let m = SharedMemory::create(&name, 8).unwrap();
    let m2 = m.clone();
    drop(m);
    common::assert_exists(&name);
    drop(m2);
    common::assert_gone(&name);

    // Unlinked explicitly, then dropped: no error, and the name can be
    // created afresh.
    let name = ShmName::new("explicit");
    let r = RawValue::<i8>::create(&name, 1).unwrap();
    r.unlink().unwrap();
    common::assert_gone(&name);
    let again = RawValue::<i8>::create(&name, 2).unwrap();
    drop(r);
    // Dropping the old creator did not remove the new object.
    common::assert_exists(&name);
    assert_eq!(RawValue::<i8>::open(&name).unwrap().get(), 2);
    drop(again);
    common::assert_gone(&name);
}

#[test]
fn errors_display_and_convert_to_io_errors() {
    use std::io::ErrorKind;
    let name = ShmName::new("disp");
    let nf = err(Value::<i32>::open(&name));
    assert!(nf.to_string().contains(&*name), "{nf}");
    assert_eq!(std::io::Error::from(nf).kind(), ErrorKind::NotFound);
    let v = Value::<i32>::create(&name, 0).unwrap();
    let ae = err(Value::<i32>::create(&name, 0));
    assert_eq!(std::io::Error::from(ae).kind(), ErrorKind::AlreadyExists);
    let tm = err(Value::<u8>::open(&name));
    assert!(!tm.to_string().is_empty());
    assert_eq!(std::io::Error::from(tm).kind(), ErrorKind::InvalidData);
    let inv = err(Value::<i32>::open(""));
    assert_eq!(std::io::Error::from(inv).kind(), ErrorKind::InvalidInput);
    drop(v);
    common::assert_gone(&name);
}

#[test]
fn creator_drop_does_not_unlink_a_successor_of_the_same_name() {
    let name = ShmName::new("successor");
    let old = Value::<i32>::create(&name, 1).unwrap();
    // Someone else removes the name and creates a new object under it.
    Value::<i32>::open(&name).unwrap().unlink().unwrap();
    let new = Value::<i32>::create(&name, 2).unwrap();
    new.persist();
    drop(old);
    let still = Value::<i32>::open(&name).map(|v| v.get().unwrap());
    new.unlink().ok();
    assert_eq!(
        still,
        Ok(2),
        "the old creator removed the new object's name"
    );
    drop(new);
    common::assert_gone(&name);
}
