//! `shmsync::inspect`: reading segments of every kind, and damaged or
//! foreign ones, without changing them; a lock held by another process.

mod common;

use std::os::unix::fs::symlink;

use common::layout::{OFF_COUNT, OFF_INIT, OFF_VERSION};
use common::{
    arg, block_until_killed, create_file, err, every_kind, run_child, shm_file, shm_path, spawn,
    tell, ShmName,
};
use shmsync::inspect::{format_element, inspect, Kind, Status};
use shmsync::{Error, Event, Lock, SharedMemory, Value};

fn poke(name: &str, offset: usize, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    shm_file(name)
        .write_all_at(bytes, offset as u64)
        .expect("write into the segment file");
}

#[test]
fn every_kind_is_reported_with_its_fields() {
    let all = every_kind("insp");
    let want = [
        None, // raw SharedMemory: no header
        Some(Kind::Value),
        Some(Kind::RawValue),
        Some(Kind::Array),
        Some(Kind::RawArray),
        Some(Kind::Lock),
        Some(Kind::AtomicValue),
        Some(Kind::AtomicArray),
        Some(Kind::Value),
        Some(Kind::RLock),
    ];
    for (name, kind) in all.names.iter().zip(want) {
        let before = std::fs::read(name.path()).unwrap();
        let seen = inspect(name, 4096).unwrap();
        assert_eq!(seen.name.as_deref(), Some(name.as_str()));
        assert_eq!(seen.kind, kind, "{}", name.as_str());
        assert_eq!(seen.file.len, before.len() as u64);
        assert_eq!(seen.file.mode, 0o600);
        // SAFETY: getuid has no preconditions.
        assert_eq!(seen.file.uid, unsafe { libc::getuid() });
        match kind {
            None => assert_eq!(seen.status, Status::NotReady, "zero-filled raw block"),
            Some(k) => {
                assert_eq!(
                    seen.status,
                    Status::Ok,
                    "{}: {:?}",
                    name.as_str(),
                    seen.status
                );
                let h = seen.header.unwrap();
                assert_eq!(h.kind, k.number());
                assert_eq!(h.creator_pid, std::process::id());
                assert!(shmsync::inspect::creator_alive(
                    h.creator_pid,
                    h.creator_start
                ));
            }
        }
        // Reading changed nothing.
        assert_eq!(std::fs::read(name.path()).unwrap(), before);
    }
    // Typed values: the element, and the lock slot where there is one.
    let v = inspect(&all.names[1], 64).unwrap();
    assert_eq!(format_element(b'i', &v.data), Some("0".into()));
    assert!(v.lock.is_some());
    assert!(inspect(&all.names[2], 64).unwrap().lock.is_none());
    // The value locked by the RLock records its name.
    assert_eq!(
        inspect(&all.names[8], 0).unwrap().lock_name.as_deref(),
        Some(all.names[9].as_str())
    );
}

#[test]
fn values_and_events_show_their_data() {
    let n = ShmName::new("insp_val");
    let v = Value::<f64>::create(&n, -1.5).unwrap();
    let seen = inspect(&n, 8).unwrap();
    assert_eq!(seen.header.unwrap().type_code, u32::from(b'd'));
    assert_eq!(format_element(b'd', &seen.data), Some("-1.5".into()));
    assert_eq!(inspect(&n, 0).unwrap().data, Vec::<u8>::new());
    drop(v);

    let n = ShmName::new("insp_event");
    let e = Event::create(&n).unwrap();
    let word = |n: &str| {
        let d = inspect(n, 4).unwrap().data;
        u32::from_ne_bytes(d[..4].try_into().unwrap())
    };
    assert_eq!(word(&n) & 1, 0);
    e.set();
    assert_eq!(word(&n) & 1, 1);
    assert_eq!(inspect(&n, 4).unwrap().kind, Some(Kind::Event));
}

#[test]
fn damaged_foreign_and_unpublished_files_are_statuses_not_errors() {
    // Garbage: foreign.
    let g = ShmName::new("insp_garbage");
    create_file(
        &g.path(),
        b"this is not a shmsync segment at all, just text",
    );
    assert_eq!(inspect(&g, 64).unwrap().status, Status::Foreign);
    std::fs::remove_file(g.path()).unwrap();

    // Empty and zero-filled: not ready.
    let z = ShmName::new("insp_zero");
    create_file(&z.path(), b"");
    assert_eq!(inspect(&z, 64).unwrap().status, Status::NotReady);
    std::fs::remove_file(z.path()).unwrap();

    // A header cut short: broken, truncated.
    let n = ShmName::new("insp_trunc");
    let v = Value::<u64>::create(&n, 7).unwrap();
    let bytes = std::fs::read(n.path()).unwrap();
    let t = ShmName::new("insp_trunc_copy");
    create_file(&t.path(), &bytes[..100]);
    assert!(matches!(
        inspect(&t, 64).unwrap().status,
        Status::Broken(Error::Truncated { .. })
    ));
    std::fs::remove_file(t.path()).unwrap();
    // The data cut short: broken, truncated; header still shown.
    create_file(&t.path(), &bytes[..bytes.len() - 1]);
    let seen = inspect(&t, 64).unwrap();
    assert!(matches!(
        seen.status,
        Status::Broken(Error::Truncated { .. })
    ));
    assert_eq!(seen.kind, Some(Kind::Value));
    assert!(seen.data.is_empty());
    std::fs::remove_file(t.path()).unwrap();

    // Another version, an absurd count, an unpublished header.
    poke(&n, OFF_VERSION, &99u32.to_ne_bytes());
    assert!(matches!(
        inspect(&n, 64).unwrap().status,
        Status::Broken(Error::VersionMismatch { found: 99, .. })
    ));
    poke(&n, OFF_VERSION, &bytes[OFF_VERSION..OFF_VERSION + 4]);
    poke(&n, OFF_COUNT, &u64::MAX.to_ne_bytes());
    assert!(matches!(
        inspect(&n, 64).unwrap().status,
        Status::Broken(Error::Corrupt(_) | Error::Truncated { .. })
    ));
    poke(&n, OFF_COUNT, &bytes[OFF_COUNT..OFF_COUNT + 8]);
    poke(&n, OFF_INIT, &0u32.to_ne_bytes());
    assert_eq!(inspect(&n, 64).unwrap().status, Status::NotReady);
    poke(&n, OFF_INIT, &bytes[OFF_INIT..OFF_INIT + 4]);
    assert_eq!(inspect(&n, 64).unwrap().status, Status::Ok);
    drop(v);
}

#[test]
fn bad_names_are_errors() {
    assert!(matches!(
        err(inspect("shmsync_t_insp_no_such_name", 0)),
        Error::NotFound { .. }
    ));
    assert!(matches!(err(inspect("a/b", 0)), Error::InvalidName { .. }));
    let target = ShmName::new("insp_target");
    let v = Value::<u8>::create(&target, 1).unwrap();
    let link = ShmName::new("insp_link");
    symlink(shm_path(&target), link.path()).unwrap();
    assert!(matches!(err(inspect(&link, 0)), Error::InvalidName { .. }));
    std::fs::remove_file(link.path()).unwrap();
    drop(v);
    // A raw block with other contents is foreign.
    let r = ShmName::new("insp_raw");
    let m = SharedMemory::create(&r, 64).unwrap();
    m.write_at(0, b"PSM-like bytes").unwrap();
    assert_eq!(inspect(&r, 0).unwrap().status, Status::Foreign);
}

#[test]
fn lock_held_by_another_process_shows_its_owner() {
    let test = "lock_held_by_another_process_shows_its_owner";
    if run_child(test, |_| {
        let lock = Lock::open(&arg("name")).unwrap();
        let _g = lock.lock().unwrap();
        tell("held");
        block_until_killed();
    }) {
        return;
    }
    let n = ShmName::new("insp_lock");
    let lock = Lock::create(&n).unwrap();
    assert!(inspect(&n, 0).unwrap().lock.unwrap().owner().is_none());
    let mut child = spawn(test, "holder").arg("name", &*n).start();
    child.expect("held");
    let slot = inspect(&n, 0).unwrap().lock.unwrap();
    // The owner is a thread of the child.
    let tid = slot.owner().expect("an owner");
    let task = format!("/proc/{}/task/{tid}", child.pid());
    assert!(std::path::Path::new(&task).exists(), "{task}");
    assert!(!slot.owner_died() && !slot.not_recoverable() && !slot.waiters());
    child.kill();
    // The holder is dead: the kernel marked the word (robust list), or it
    // still names the dead thread (fallback mode) until someone locks.
    let s = inspect(&n, 0).unwrap().lock.unwrap();
    assert!(s.owner_died() || s.owner() == Some(tid), "{s:?}");
    drop(lock.lock());
    assert!(inspect(&n, 0).unwrap().lock.unwrap().owner().is_none());
}
