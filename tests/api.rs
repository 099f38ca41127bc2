//! Plain single-process use of the public API: threads sharing objects,
//! and the auto traits every object must have.

use std::sync::Arc;

use shmsync::{Array, Lock, RLock, RawArray, RawValue, SharedMemory, Value};

#[test]
fn objects_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Value<i32>>();
    check::<RawValue<f64>>();
    check::<Array<u8>>();
    check::<RawArray<i64>>();
    check::<Lock>();
    check::<RLock>();
    check::<SharedMemory>();
}

#[test]
fn threads_of_one_process_increment_exactly() {
    const THREADS: usize = 4;
    const N: i64 = 50_000;
    let v = Arc::new(Value::<i64>::new(3).unwrap());
    let a = Arc::new(Array::<i64>::zeroed(3).unwrap());
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let (v, a) = (Arc::clone(&v), Arc::clone(&a));
            std::thread::spawn(move || {
                for _ in 0..N {
                    v.update(|x| x + 1).unwrap();
                    let g = a.lock().unwrap();
                    for j in 0..g.len() {
                        g.set(j, g.get(j) + j as i64);
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let total = THREADS as i64 * N;
    assert_eq!(v.get().unwrap(), 3 + total);
    assert_eq!(a.to_vec().unwrap(), vec![0, total, 2 * total]);
    assert!(!v.get_lock().is_locked());
}

#[test]
fn one_lock_shared_by_several_objects() {
    let l = RLock::new().unwrap();
    let x = Value::<i32>::with_lock(1, &l).unwrap();
    let y = Array::<i32>::with_lock(&[2, 3], &l).unwrap();
    // Holding the shared lock covers both objects (recursively).
    let g = l.lock().unwrap();
    x.set(x.get().unwrap() + y.get(1).unwrap()).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            assert!(x.try_lock().is_err());
            assert!(y.try_lock().is_err());
        });
    });
    drop(g);
    assert_eq!(x.get().unwrap(), 4);
    assert!(!l.is_locked());
}

/// A child forked while its parent holds a lock inherits copies of the
/// parent's guards; dropping them must not release (or count down) the
/// parent's holds. The child only drops guards, reads the lock word and
/// `_exit`s (no allocation, no locks: async-signal-safe), so forking from
/// the multi-threaded test harness is sound.
#[test]
fn guard_copies_dropped_in_a_forked_child_keep_the_parents_holds() {
    let v = Value::<i64>::new(7).unwrap();
    let g1 = v.lock().unwrap();
    let g2 = v.lock().unwrap();
    let lock = v.get_lock();
    // SAFETY: the child runs only the code described above, then `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        drop(g2);
        drop(g1);
        let code = if !lock.is_locked() {
            1
        } else if lock.is_held_by_current_thread() {
            2
        } else {
            0
        };
        // SAFETY: `_exit` is async-signal-safe and ends the child.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waiting for our own child with a valid status pointer.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(
        libc::WIFEXITED(status),
        "the child did not exit normally: {status:#x}"
    );
    assert_eq!(
        libc::WEXITSTATUS(status),
        0,
        "1: the child's drops released the lock; 2: the child held it"
    );
    assert!(lock.is_held_by_current_thread());
    g2.set(8);
    drop(g2);
    assert!(
        lock.is_held_by_current_thread(),
        "the child's drops counted the recursion down"
    );
    drop(g1);
    assert!(!lock.is_locked());
    assert_eq!(v.get().unwrap(), 8);
}
