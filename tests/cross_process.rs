//! Cross-process behaviour with real processes: each test re-spawns this
//! test binary in a child role (see `common/mod.rs`).

mod common;

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use common::{await_msg, ready_go, run_child, run_together, spawn, tell, ShmName};
use shmsync::{Array, Error, Lock, RLock, RawArray, RawValue, SharedMemory, TryLockError, Value};

const INCREMENTS: i64 = 100_000;

// ---------------------------------------------------------------------------
// Locked increments give exact totals
// ---------------------------------------------------------------------------

fn value_increments(test: &str, procs: usize) {
    if run_child(test, |_| {
        let v = Value::<i32>::open(&common::arg("NAME")).unwrap();
        ready_go();
        for _ in 0..INCREMENTS {
            v.update(|x| x + 1).unwrap();
        }
    }) {
        return;
    }
    let name = ShmName::new("vinc");
    let v = Value::<i32>::create(&name, 0).unwrap();
    run_together(procs, |_| spawn(test, "inc").arg("NAME", &*name));
    assert_eq!(i64::from(v.get().unwrap()), procs as i64 * INCREMENTS);
    // Children only opened the name: it is still there until we drop ours.
    common::assert_exists(&name);
    drop(v);
    common::assert_gone(&name);
}

#[test]
fn locked_value_increments_2_processes() {
    value_increments("locked_value_increments_2_processes", 2);
}

#[test]
fn locked_value_increments_4_processes() {
    value_increments("locked_value_increments_4_processes", 4);
}

const ARRAY_LEN: usize = 4;

fn array_increments(test: &str, procs: usize) {
    if run_child(test, |_| {
        let a = Array::<i64>::open_len(&common::arg("NAME"), ARRAY_LEN).unwrap();
        ready_go();
        for k in 0..INCREMENTS {
            if k % 2 == 0 {
                // One lock acquisition per element.
                for j in 0..ARRAY_LEN {
                    a.update(j, |x| x + 1).unwrap();
                }
            } else {
                // One compound step under one guard.
                let g = a.lock().unwrap();
                for j in 0..g.len() {
                    g.set(j, g.get(j) + 1);
                }
            }
        }
    }) {
        return;
    }
    let name = ShmName::new("ainc");
    // Distinct starting values: a mix-up between elements would show.
    let start: Vec<i64> = (0..ARRAY_LEN as i64).map(|j| j * 1_000_000_000).collect();
    let a = Array::<i64>::create(&name, &start).unwrap();
    run_together(procs, |_| spawn(test, "inc").arg("NAME", &*name));
    let want: Vec<i64> = start
        .iter()
        .map(|s| s + procs as i64 * INCREMENTS)
        .collect();
    assert_eq!(a.to_vec().unwrap(), want);
    drop(a);
    common::assert_gone(&name);
}

#[test]
fn locked_array_increments_2_processes() {
    array_increments("locked_array_increments_2_processes", 2);
}

#[test]
fn locked_array_increments_4_processes() {
    array_increments("locked_array_increments_4_processes", 4);
}

// ---------------------------------------------------------------------------
// Unlocked increments lose updates but stay sound
// ---------------------------------------------------------------------------

#[test]
fn raw_value_unlocked_increments_from_2_processes() {
    const TEST: &str = "raw_value_unlocked_increments_from_2_processes";
    const N: i64 = 1_000_000;
    if run_child(TEST, |_| {
        let r = RawValue::<i64>::open(&common::arg("NAME")).unwrap();
        ready_go();
        for _ in 0..N {
            r.set(r.get() + 1);
        }
    }) {
        return;
    }
    let name = ShmName::new("rawinc");
    let r = RawValue::<i64>::create(&name, 0).unwrap();
    run_together(2, |_| spawn(TEST, "inc").arg("NAME", &*name));
    let total = r.get();
    // Every stored value is a read value plus one, so it is at most the
    // number of stores; lost updates make it smaller, never larger.
    assert!(total > 0 && total <= 2 * N, "total {total}");
    println!(
        "RawValue<i64>, 2 processes x {N} unlocked increments: {total} ({} lost, {:.2}%)",
        2 * N - total,
        (2 * N - total) as f64 * 100.0 / (2 * N) as f64
    );
    drop(r);
    common::assert_gone(&name);
}

// ---------------------------------------------------------------------------
// Locks across processes
// ---------------------------------------------------------------------------

#[test]
fn rlock_held_twice_blocks_other_process_until_both_releases() {
    const TEST: &str = "rlock_held_twice_blocks_other_process_until_both_releases";
    if run_child(TEST, |_| {
        let l = RLock::open(&common::arg("NAME")).unwrap();
        let outer = l.lock().unwrap();
        let inner = l.try_lock().unwrap(); // recursion: no WouldBlock
        assert!(l.is_held_by_current_thread());
        tell("locked twice");
        await_msg("release one");
        drop(inner);
        assert!(l.is_held_by_current_thread());
        tell("released one");
        await_msg("release two");
        drop(outer);
        assert!(!l.is_held_by_current_thread());
        tell("released two");
        await_msg("bye");
    }) {
        return;
    }
    let name = ShmName::new("rlock2");
    let l = RLock::create(&name).unwrap();
    let mut kid = spawn(TEST, "holder").arg("NAME", &*name).start();
    kid.expect("locked twice");
    assert!(l.is_locked());
    assert!(!l.is_held_by_current_thread());
    assert!(matches!(l.try_lock(), Err(TryLockError::WouldBlock)));
    kid.send("release one");
    kid.expect("released one");
    assert!(l.is_locked(), "one release of two must keep it held");
    assert!(matches!(l.try_lock(), Err(TryLockError::WouldBlock)));
    kid.send("release two");
    kid.expect("released two");
    assert!(!l.is_locked());
    let g = l.try_lock().expect("free after both releases");
    assert!(l.is_held_by_current_thread());
    drop(g);
    kid.send("bye");
    kid.wait();
    drop(l);
    common::assert_gone(&name);
}

#[test]
fn lock_timeout_on_lock_held_by_other_process_would_block() {
    const TEST: &str = "lock_timeout_on_lock_held_by_other_process_would_block";
    if run_child(TEST, |_| {
        let lock = Lock::open(&common::arg("LOCK")).unwrap();
        let rlock = RLock::open(&common::arg("RLOCK")).unwrap();
        let value = Value::<u64>::open(&common::arg("VALUE")).unwrap();
        let g1 = lock.lock().unwrap();
        let g2 = rlock.lock().unwrap();
        let g3 = value.lock().unwrap();
        tell("locked");
        await_msg("release");
        drop((g1, g2, g3));
        tell("released");
        await_msg("bye");
    }) {
        return;
    }
    let (n1, n2, n3) = (
        ShmName::new("tol"),
        ShmName::new("tor"),
        ShmName::new("tov"),
    );
    let lock = Lock::create(&n1).unwrap();
    let rlock = RLock::create(&n2).unwrap();
    let value = Value::<u64>::create(&n3, 5).unwrap();
    let mut kid = spawn(TEST, "holder")
        .arg("LOCK", &*n1)
        .arg("RLOCK", &*n2)
        .arg("VALUE", &*n3)
        .start();
    kid.expect("locked");
    let timeout = Duration::from_millis(150);

    let t = Instant::now();
    let r = lock.lock_timeout(timeout);
    let waited = t.elapsed();
    assert!(matches!(r, Err(TryLockError::WouldBlock)), "Lock: {r:?}");
    assert!(waited >= timeout, "Lock gave up after {waited:?}");

    let t = Instant::now();
    let r = rlock.lock_timeout(timeout);
    let waited = t.elapsed();
    assert!(matches!(r, Err(TryLockError::WouldBlock)), "RLock: {r:?}");
    assert!(waited >= timeout, "RLock gave up after {waited:?}");

    let t = Instant::now();
    let r = value.lock_timeout(timeout);
    let waited = t.elapsed();
    assert!(matches!(r, Err(TryLockError::WouldBlock)), "Value: {r:?}");
    assert!(waited >= timeout, "Value gave up after {waited:?}");
    println!("lock_timeout({timeout:?}) on a held lock returned WouldBlock after {waited:?}");

    // The error converts to the crate's error type.
    let e: Error = lock.lock_timeout(Duration::ZERO).unwrap_err().into();
    assert_eq!(e, Error::WouldBlock);

    kid.send("release");
    kid.expect("released");
    // Free now: a (generous) timeout succeeds.
    drop(lock.lock_timeout(Duration::from_secs(30)).unwrap());
    drop(rlock.lock_timeout(Duration::from_secs(30)).unwrap());
    assert_eq!(
        value.lock_timeout(Duration::from_secs(30)).unwrap().get(),
        5
    );
    kid.send("bye");
    kid.wait();
}

#[test]
fn blocked_lock_is_woken_by_release_in_other_process() {
    const TEST: &str = "blocked_lock_is_woken_by_release_in_other_process";
    if run_child(TEST, |_| {
        let v = Value::<i64>::open(&common::arg("VALUE")).unwrap();
        let lock = Lock::open(&common::arg("LOCK")).unwrap();
        let gl = lock.lock().unwrap();
        let g = v.lock().unwrap();
        tell("locked");
        await_msg("go");
        // Give the parent time to go to sleep on the words (not needed for
        // correctness, only to exercise the futex wake path).
        std::thread::sleep(Duration::from_millis(100));
        g.set(42);
        drop(g);
        drop(gl);
    }) {
        return;
    }
    let (nv, nl) = (ShmName::new("wakev"), ShmName::new("wakel"));
    let v = Value::<i64>::create(&nv, 0).unwrap();
    let lock = Lock::create(&nl).unwrap();
    let mut kid = spawn(TEST, "holder")
        .arg("VALUE", &*nv)
        .arg("LOCK", &*nl)
        .start();
    kid.expect("locked");
    kid.send("go");
    // Blocks until the child releases; the child wrote 42 before releasing,
    // so mutual exclusion plus release/acquire ordering make it visible.
    let g = v.lock().unwrap();
    assert_eq!(g.get(), 42);
    drop(g);
    drop(lock.lock().unwrap());
    kid.wait();
}

// ---------------------------------------------------------------------------
// Objects passed by file descriptor, and opened by name, in another process
// ---------------------------------------------------------------------------

#[test]
fn objects_passed_by_fd_and_by_name_to_child() {
    const TEST: &str = "objects_passed_by_fd_and_by_name_to_child";
    if run_child(TEST, |_| {
        let v = Value::<i64>::from_fd(common::take_fd("VALUE")).unwrap();
        assert_eq!(v.get().unwrap(), 41);
        v.set(42).unwrap();

        let shared = RLock::from_fd(common::take_fd("RLOCK")).unwrap();
        // The parent holds this lock: it is the same lock, not a copy.
        assert!(matches!(shared.try_lock(), Err(TryLockError::WouldBlock)));
        let lv_fd = common::take_fd("LOCKED_VALUE");
        // Its lock is anonymous and separate: not re-attachable by itself.
        let dup = lv_fd.try_clone().unwrap();
        assert!(matches!(
            Value::<i64>::from_fd(dup),
            Err(Error::LockMismatch)
        ));
        let other = RLock::new().unwrap();
        let dup = lv_fd.try_clone().unwrap();
        assert!(matches!(
            Value::<i64>::from_fd_with_lock(dup, &other),
            Err(Error::LockMismatch)
        ));
        let lv = Value::<i64>::from_fd_with_lock(lv_fd, &shared).unwrap();
        tell("checked");
        await_msg("go");
        assert_eq!(lv.update(|x| x + 1).unwrap(), 8);

        let ra = RawArray::<u16>::from_fd(common::take_fd("RAW_ARRAY")).unwrap();
        assert_eq!(ra.to_vec(), vec![1, 2, 3]);
        ra.set(2, 30);

        let m = SharedMemory::from_fd(common::take_fd("SHM")).unwrap();
        assert_eq!(m.len(), 100);
        assert_eq!(m.name(), None);
        let mut b = [0u8; 5];
        m.read_at(10, &mut b).unwrap();
        assert_eq!(&b, b"hello");
        m.write_at(20, b"world").unwrap();

        // An anonymous segment is sealed: a peer cannot shrink it under us.
        assert!(rustix::fs::ftruncate(m.as_fd(), 10).is_err());

        let named = Array::<f64>::open(&common::arg("ARRAY")).unwrap();
        assert_eq!(named.to_vec().unwrap(), vec![0.5, 1.5]);
        named.update(1, |x| x * 2.0).unwrap();
        assert_eq!(named.name(), Some(&*common::arg("ARRAY")));
    }) {
        return;
    }
    let name = ShmName::new("fdnamed");
    let v = Value::<i64>::new(41).unwrap();
    let shared = RLock::new().unwrap();
    let lv = Value::<i64>::with_lock(7, &shared).unwrap();
    let ra = RawArray::<u16>::from_slice(&[1, 2, 3]).unwrap();
    let m = SharedMemory::anonymous(100).unwrap();
    m.write_at(10, b"hello").unwrap();
    let named = Array::<f64>::create(&name, &[0.5, 1.5]).unwrap();

    let held = shared.lock().unwrap();
    let mut kid = spawn(TEST, "user")
        .fd("VALUE", v.as_fd())
        .fd("RLOCK", shared.as_fd())
        .fd("LOCKED_VALUE", lv.as_fd())
        .fd("RAW_ARRAY", ra.as_fd())
        .fd("SHM", m.as_fd())
        .arg("ARRAY", &*name)
        .start();
    kid.expect("checked");
    drop(held);
    kid.send("go");
    kid.wait();

    assert_eq!(v.get().unwrap(), 42);
    assert_eq!(lv.get().unwrap(), 8);
    assert_eq!(ra.to_vec(), vec![1, 2, 30]);
    let mut b = [0u8; 5];
    m.read_at(20, &mut b).unwrap();
    assert_eq!(&b, b"world");
    assert_eq!(named.to_vec().unwrap(), vec![0.5, 3.0]);
    // The child's `open` handle did not unlink the name.
    common::assert_exists(&name);
    drop(named);
    common::assert_gone(&name);
}

#[test]
fn named_value_with_named_lock_reattaches_in_child() {
    const TEST: &str = "named_value_with_named_lock_reattaches_in_child";
    if run_child(TEST, |_| {
        // `open` re-attaches the recorded named lock by itself.
        let v = Value::<i32>::open(&common::arg("VALUE")).unwrap();
        let a = Array::<i32>::open(&common::arg("ARRAY")).unwrap();
        let l = RLock::open(&common::arg("LOCK")).unwrap();
        // The parent holds the shared lock: every path to it is blocked.
        assert!(matches!(v.try_lock(), Err(TryLockError::WouldBlock)));
        assert!(matches!(a.try_lock(), Err(TryLockError::WouldBlock)));
        assert!(matches!(l.try_lock(), Err(TryLockError::WouldBlock)));
        tell("blocked");
        await_msg("go");
        // One guard on the lock covers both objects (recursion through the
        // objects' own lock() calls).
        let g = l.lock().unwrap();
        let vg = v.lock().unwrap();
        let ag = a.lock().unwrap();
        vg.set(vg.get() + ag.get(0));
        ag.set(0, 0);
        drop((ag, vg, g));
    }) {
        return;
    }
    let (nl, nv, na) = (
        ShmName::new("shl"),
        ShmName::new("shv"),
        ShmName::new("sha"),
    );
    let l = RLock::create(&nl).unwrap();
    let v = Value::<i32>::create_with_lock(&nv, 1, &l).unwrap();
    let a = Array::<i32>::create_with_lock(&na, &[10, 20], &l).unwrap();
    let g = l.lock().unwrap();
    let mut kid = spawn(TEST, "user")
        .arg("VALUE", &*nv)
        .arg("ARRAY", &*na)
        .arg("LOCK", &*nl)
        .start();
    kid.expect("blocked");
    drop(g);
    kid.send("go");
    kid.wait();
    assert_eq!(v.get().unwrap(), 11);
    assert_eq!(a.to_vec().unwrap(), vec![0, 20]);
    drop((v, a, l));
    common::assert_gone(&nl);
    common::assert_gone(&nv);
    common::assert_gone(&na);
}
