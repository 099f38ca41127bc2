//! Seeds and regressions of the `segment_open` fuzz target (`fuzz/`): a
//! segment file whose bytes another process forged. `from_fd` must give a
//! value or a typed error, and the objects it gives must stay usable
//! through their non-blocking calls without panicking.
//!
//! No crash has been found so far (see `fuzz/`); these are the deep paths
//! the fuzzer reaches only through its templates: lock words that name a
//! dead owner, this very thread (taken over: this thread's own records,
//! not the word, say what it holds), or a permanently broken lock.

use std::os::fd::AsFd;
use std::time::Duration;

use shmsync::{Error, Lock, LockError, RLock, SharedMemory, TryLockError, Value};

const LOCK_SLOT: usize = 128;
const WAITERS: u32 = 1 << 31;
const OWNER_DIED: u32 = 1 << 30;
const NOT_RECOVERABLE: u32 = 0x3fff_ffff;

/// The bytes of a fresh object's segment.
fn bytes_of(fd: std::os::fd::BorrowedFd<'_>) -> Vec<u8> {
    let m = SharedMemory::from_fd(fd.try_clone_to_owned().unwrap()).unwrap();
    let mut b = vec![0; m.len()];
    m.read_at(0, &mut b).unwrap();
    b
}

/// A new memfd holding `bytes`, with the lock slot's word, count and state
/// replaced (as a hostile or crashed peer could leave them).
fn forged(mut bytes: Vec<u8>, word: u32, count: u32, state: u32) -> SharedMemory {
    bytes[LOCK_SLOT..LOCK_SLOT + 4].copy_from_slice(&word.to_le_bytes());
    bytes[LOCK_SLOT + 4..LOCK_SLOT + 8].copy_from_slice(&count.to_le_bytes());
    bytes[LOCK_SLOT + 8..LOCK_SLOT + 12].copy_from_slice(&state.to_le_bytes());
    let m = SharedMemory::anonymous(bytes.len()).unwrap();
    m.write_at(0, &bytes).unwrap();
    m
}

fn word_of(m: &SharedMemory) -> u32 {
    let mut w = [0; 4];
    m.read_at(LOCK_SLOT, &mut w).unwrap();
    u32::from_le_bytes(w)
}

fn my_tid() -> u32 {
    // SAFETY: gettid(2) has no preconditions and cannot fail.
    u32::try_from(unsafe { libc::gettid() }).unwrap()
}

#[test]
fn owner_died_word_is_reported_then_not_recoverable() {
    let template = bytes_of(Value::<i32>::new(41).unwrap().as_fd());
    for waiters in [0, WAITERS] {
        // A dead owner left a recursion count of 7 and an inconsistent state.
        let m = forged(template.clone(), OWNER_DIED | waiters, 7, 1);
        let v = Value::<i32>::from_fd(m.as_fd().try_clone_to_owned().unwrap()).unwrap();
        match v.try_lock() {
            Err(TryLockError::OwnerDied(g)) => assert_eq!(g.get(), 41),
            other => panic!("expected OwnerDied, got {:?}", other.map(|g| g.get())),
        }
        // Released without mark_consistent: broken for good.
        assert_eq!(word_of(&m), NOT_RECOVERABLE);
        assert!(matches!(v.try_lock(), Err(TryLockError::NotRecoverable)));
        assert!(matches!(v.get(), Err(LockError::NotRecoverable)));
    }
}

#[test]
fn owner_died_word_repaired_is_normal_again() {
    let template = bytes_of(Value::<i32>::new(1).unwrap().as_fd());
    let m = forged(template, OWNER_DIED, 3, 0);
    let v = Value::<i32>::from_fd(m.as_fd().try_clone_to_owned().unwrap()).unwrap();
    match v.lock() {
        Err(LockError::OwnerDied(g)) => {
            g.set(2);
            g.mark_consistent();
        }
        other => panic!("expected OwnerDied, got {:?}", other.map(|g| g.get())),
    }
    assert_eq!(word_of(&m), 0);
    assert_eq!(v.get().unwrap(), 2);
}

#[test]
fn not_recoverable_word_refuses_everyone() {
    let template = bytes_of(RLock::new().unwrap().as_fd());
    let m = forged(template, NOT_RECOVERABLE, 0, 1);
    let l = RLock::from_fd(m.as_fd().try_clone_to_owned().unwrap()).unwrap();
    assert!(!l.is_locked());
    assert!(matches!(l.try_lock(), Err(TryLockError::NotRecoverable)));
    assert!(matches!(
        l.lock_timeout(Duration::from_millis(1)),
        Err(TryLockError::NotRecoverable)
    ));
    assert!(matches!(l.lock(), Err(LockError::NotRecoverable)));
}

#[test]
fn word_forged_with_our_tid_is_taken_over() {
    // The word names this thread, but this thread's own records say it
    // holds nothing: the word is not believed. Whatever count was forged,
    // the lock is taken over as a dead owner's (OwnerDied, WAITERS kept),
    // relocks are counted by this thread alone, the release after exactly
    // as many unlocks as locks frees it, and the robust-list bookkeeping
    // survives.
    let me = my_tid();
    for waiters in [0, WAITERS] {
        for count in [0, 1, 5, u32::MAX] {
            let r = forged(
                bytes_of(RLock::new().unwrap().as_fd()),
                me | waiters,
                count,
                0,
            );
            let l = RLock::from_fd(r.as_fd().try_clone_to_owned().unwrap()).unwrap();
            assert!(l.is_locked());
            assert!(!l.is_held_by_current_thread(), "not by our records");
            match l.try_lock() {
                Err(TryLockError::OwnerDied(g)) => {
                    assert_eq!(word_of(&r), me | waiters, "ours, WAITERS kept");
                    assert!(l.is_held_by_current_thread());
                    let g2 = l.try_lock().expect("a relock, by our own count");
                    drop(g2);
                    assert_eq!(word_of(&r), me | waiters, "still held once");
                    g.mark_consistent();
                    drop(g);
                }
                other => panic!("count {count}: expected OwnerDied, got {other:?}"),
            }
            assert_eq!(word_of(&r), 0, "count {count}: released");
            assert!(!l.is_held_by_current_thread());
            drop(l.try_lock().expect("consistent again"));

            let p = forged(
                bytes_of(Lock::new().unwrap().as_fd()),
                me | waiters,
                count,
                0,
            );
            let l = Lock::from_fd(p.as_fd().try_clone_to_owned().unwrap()).unwrap();
            match l.lock() {
                Err(LockError::OwnerDied(g)) => {
                    assert!(matches!(l.try_lock(), Err(TryLockError::Deadlock)));
                    // Released without mark_consistent: broken for good.
                    drop(g);
                }
                other => panic!("count {count}: expected OwnerDied, got {other:?}"),
            }
            assert_eq!(word_of(&p), NOT_RECOVERABLE);
            assert!(matches!(l.try_lock(), Err(TryLockError::NotRecoverable)));
        }
    }
    // Our own locks still work (the thread's robust list is intact).
    let l = RLock::new().unwrap();
    for _ in 0..3 {
        let g = l.lock().unwrap();
        let g2 = l.try_lock().unwrap();
        drop(g2);
        drop(g);
        assert!(!l.is_locked());
    }
}

#[test]
fn word_naming_a_thread_without_a_liveness_byte_is_a_dead_owner() {
    // TID 1 (init) "holds" it, but no process holds TID 1's liveness byte
    // on this file: an owner that is not alive by the protocol is dead, so
    // the lock is recovered (reported as OwnerDied), never left to hang.
    let m = forged(bytes_of(Lock::new().unwrap().as_fd()), 1, 1, 0);
    let l = Lock::from_fd(m.as_fd().try_clone_to_owned().unwrap()).unwrap();
    assert!(l.is_locked());
    match l.try_lock() {
        Err(TryLockError::OwnerDied(g)) => g.mark_consistent(),
        other => panic!("expected OwnerDied, got {other:?}"),
    }
    assert!(!l.is_locked());
    assert!(l.try_lock().is_ok(), "consistent again");
}

#[test]
fn garbage_and_truncated_files_are_typed_errors() {
    for len in [1, 64, 127, 128, 191, 192, 4096] {
        for fill in [0x00u8, 0xff, 0x5a] {
            let m = SharedMemory::anonymous(len).unwrap();
            let mut b = vec![fill; len];
            if fill == 0 && len >= 76 {
                // Zero magic with READY: validated, not waited for.
                b[72..76].copy_from_slice(b"REDY");
            }
            m.write_at(0, &b).unwrap();
            let fd = || m.as_fd().try_clone_to_owned().unwrap();
            for r in [
                Value::<i32>::from_fd(fd()).map(drop),
                Lock::from_fd(fd()).map(drop),
                RLock::from_fd(fd()).map(drop),
            ] {
                let e = r.expect_err("garbage opened");
                assert!(
                    matches!(e, Error::BadMagic | Error::Truncated { .. }),
                    "len {len} fill {fill:#x}: {e:?}"
                );
            }
        }
    }
}
