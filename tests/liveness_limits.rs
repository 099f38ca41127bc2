//! Limits of the liveness fallback (`src/sys/liveness.rs`) across real
//! processes, with `SHMSYNC_ROBUST=fallback` in every child that locks:
//!
//! - a process attached to more lock segments than any fixed table would
//!   hold still lets waiters detect a dead owner;
//! - the file descriptors each kind of object costs (the figures in
//!   `README.md` and `docs/ARCHITECTURE.md`);
//! - a process that cannot open its liveness description gets an error
//!   when it creates or opens a lock, instead of locking blind;
//! - a dead parent's liveness bytes do not outlive it in a forked child.

mod common;

use std::io::Write as _;
use std::os::fd::AsFd;
use std::panic::catch_unwind;
use std::time::Duration;

use common::owner_death::{kind, Mode};
use common::{arg, await_msg, block_until_killed, run_child, spawn, take_fd, tell, ShmName};
use shmsync::{
    AtomicValue, Error, Lock, LockError, RLock, RawValue, Robustness, SharedMemory, TryLockError,
    Value,
};

/// Lock objects held by the process of `many_lock_segments` (more than the
/// 1024 entries of the former fixed table).
const MANY: usize = 1100;

fn fallback_only() {
    assert_eq!(
        shmsync::robustness(),
        Robustness::Fallback,
        "child must run with SHMSYNC_ROBUST=fallback"
    );
}

/// Entries of `/proc/self/fd` (including the one `read_dir` uses).
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .count()
}

/// The `RLIMIT_NOFILE` limits.
fn nofile() -> libc::rlimit {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one valid `rlimit`.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) }, 0);
    rl
}

/// Sets the soft `RLIMIT_NOFILE`.
fn set_soft_nofile(soft: u64) {
    let rl = libc::rlimit {
        rlim_cur: soft,
        rlim_max: nofile().rlim_max,
    };
    // SAFETY: setrlimit reads one valid `rlimit`.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &rl) }, 0);
}

/// Raises the soft `RLIMIT_NOFILE` to at least `need`; `Err` with the hard
/// limit if it is lower.
fn raise_nofile(need: u64) -> Result<(), u64> {
    let rl = nofile();
    if rl.rlim_max < need {
        return Err(rl.rlim_max);
    }
    if rl.rlim_cur < need {
        set_soft_nofile(need);
    }
    Ok(())
}

// ===========================================================================
// More lock segments than a fixed table holds
// ===========================================================================

/// A process attached to `MANY` + 1 lock segments, which has locked each of
/// them, lives on while the owner of the last one is SIGKILLed: a waiter's
/// plain `lock()` gets `OwnerDied`. (With a fixed table of 1024
/// descriptions, that process locked the last ones blind, which left every
/// waiter on them undecided: `lock()` hung for as long as it lived.)
#[test]
fn many_lock_segments_keep_owner_death_detectable() {
    const TEST: &str = "many_lock_segments_keep_owner_death_detectable";
    if run_child(TEST, |role| {
        fallback_only();
        let victim = || Lock::open(&arg("VICTIM")).unwrap();
        match role {
            "many" => {
                let need = 2 * MANY as u64 + 256;
                if let Err(hard) = raise_nofile(need) {
                    tell(&format!("skip: RLIMIT_NOFILE hard limit {hard} < {need}"));
                    return;
                }
                let locks: Vec<Lock> = (0..MANY).map(|_| Lock::new().unwrap()).collect();
                for l in &locks {
                    drop(l.lock().unwrap());
                }
                // Attached after all the others: its description is the
                // last one in this process's table.
                let victim = victim();
                drop(victim.lock().unwrap());
                tell("ready");
                await_msg("end");
                drop(locks);
            }
            "owner" => {
                let victim = victim();
                let g = victim.lock().unwrap();
                tell("locked");
                let _g = g;
                block_until_killed();
            }
            "waiter" => {
                let victim = victim();
                // A plain lock: bounded only by the parent's watchdog
                // (`common::HANG_LIMIT`), which fails the test.
                let msg = match victim.lock() {
                    Err(LockError::OwnerDied(g)) => {
                        g.mark_consistent();
                        "owner-died"
                    }
                    Ok(_) => "Ok",
                    Err(_) => "another error",
                };
                tell(msg);
            }
            r => panic!("unknown role {r}"),
        }
    }) {
        return;
    }
    // Named, so that each process has a description of its own (a blind
    // lock is announced on it).
    let name = ShmName::new("many");
    let victim = Lock::create(&name).unwrap();
    let child = |role| {
        spawn(TEST, role)
            .mode(Mode::Fallback)
            .arg("VICTIM", &*name)
            .start()
    };
    let mut many = child("many");
    match many.recv().as_str() {
        "ready" => {}
        skip if skip.starts_with("skip") => {
            eprintln!("{TEST}: {skip}: not run");
            many.wait();
            return;
        }
        other => panic!("many: unexpected message {other:?}"),
    }
    let mut owner = child("owner");
    owner.expect("locked");
    owner.kill();
    let mut waiter = child("waiter");
    waiter.expect("owner-died");
    waiter.wait();
    many.send("end");
    many.wait();
    assert!(!victim.is_locked());
}

// ===========================================================================
// Descriptors per object
// ===========================================================================

/// Two descriptors for the first handle on a lock-bearing segment in a
/// process (the segment's and the liveness description, both taken when
/// the object is created or opened: locking adds none), one for each
/// further handle on the same file in the process, one for an object
/// without a lock; a forked child one fewer per description until it locks
/// on that file.
#[test]
fn descriptors_per_object() {
    const TEST: &str = "descriptors_per_object";
    const N: usize = 40;
    if run_child(TEST, |_| {
        fallback_only();
        let names: Vec<ShmName> = (0..N).map(|_| ShmName::new("fds")).collect();
        let c0 = open_fds();

        let locks: Vec<RLock> = names.iter().map(|n| RLock::create(n).unwrap()).collect();
        let c1 = open_fds();
        assert_eq!(c1 - c0, 2 * N, "named RLock::create: 2 descriptors each");
        for l in &locks {
            drop(l.lock().unwrap());
        }
        assert_eq!(open_fds(), c1, "locking opens no descriptor");
        let again: Vec<RLock> = names.iter().map(|n| RLock::open(n).unwrap()).collect();
        for l in &again {
            drop(l.lock().unwrap());
        }
        let c2 = open_fds();
        assert_eq!(c2 - c1, N, "a second handle in the process: 1 each");
        let clones: Vec<RLock> = locks.clone();
        assert_eq!(open_fds(), c2, "clones: none");

        let anon: Vec<Lock> = (0..N).map(|_| Lock::new().unwrap()).collect();
        let c3 = open_fds();
        assert_eq!(c3 - c2, 2 * N, "Lock::new: 2 each");
        let values: Vec<Value<i64>> = (0..N).map(|_| Value::new(0).unwrap()).collect();
        let c4 = open_fds();
        assert_eq!(c4 - c3, 2 * N, "Value (own lock): 2 each");

        let raw: Vec<RawValue<i64>> = (0..N).map(|_| RawValue::new(0).unwrap()).collect();
        let atomic: Vec<AtomicValue<i64>> = (0..N).map(|_| AtomicValue::new(0).unwrap()).collect();
        let shm: Vec<SharedMemory> = (0..N)
            .map(|_| SharedMemory::anonymous(64).unwrap())
            .collect();
        let c5 = open_fds();
        assert_eq!(c5 - c4, 3 * N, "objects without a lock: 1 each");

        // A forked child closes the inherited descriptions (3N: `locks`,
        // `anon`, `values`), and opens its own at its first lock of a file.
        std::io::stdout().flush().unwrap();
        // SAFETY: the child counts its descriptors and locks (read_dir
        // allocates: glibc's malloc is usable after fork), then `_exit`s.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork");
        if pid == 0 {
            let ok = catch_unwind(|| {
                let closed = open_fds() == c5 - 3 * N;
                drop(again[0].lock().unwrap());
                drop(values[0].lock().unwrap());
                closed && open_fds() == c5 - 3 * N + 2
            })
            .unwrap_or(false);
            // SAFETY: ends the forked child without running the parent's
            // destructors or exit handlers.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: waits for our own child; `status` is a valid out-pointer.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "forked child: another descriptor count (status {status:#x})"
        );

        drop((raw, atomic, shm, values, anon, clones, again));
        assert_eq!(open_fds(), c1, "dropped handles close theirs");
        drop(locks);
        assert_eq!(open_fds(), c0, "nothing left open");
    }) {
        return;
    }
    spawn(TEST, "count").mode(Mode::Fallback).start().wait();
}

// ===========================================================================
// No description: an error, not a blind lock
// ===========================================================================

/// Lowers the soft descriptor limit so that exactly `n` more descriptors
/// can be opened.
fn leave_descriptors(n: usize) {
    // The n + 1 lowest free numbers: every number below the last is in
    // use but the n others.
    let fds: Vec<_> = (0..=n)
        .map(|_| rustix::io::dup(std::io::stdin()).unwrap())
        .collect();
    let limit = std::os::fd::AsRawFd::as_raw_fd(&fds[n]) as u64;
    drop(fds);
    set_soft_nofile(limit);
}

fn assert_emfile<T: std::fmt::Debug>(what: &str, r: Result<T, Error>) {
    match r {
        Err(Error::Io { errno, .. }) if errno == libc::EMFILE => {}
        other => panic!("{what}: expected Error::Io with EMFILE, got {other:?}"),
    }
}

/// A process that cannot open its liveness description (here: out of
/// descriptors) gets `Error::Io` from `new`/`create`/`open`/`from_fd` of a
/// lock-bearing object, and a named `create` leaves no name behind; objects
/// without a lock need no description. (Before, such a process got its
/// object and locked blind at its first lock, making every waiter on that
/// lock undecided about a dead owner.)
#[test]
fn description_failure_is_an_error() {
    const TEST: &str = "description_failure_is_an_error";
    if run_child(TEST, |_| {
        fallback_only();
        let fresh = ShmName::new("nodesc");
        let lock_name = arg("LOCK");
        let value_name = arg("VALUE");
        let raw_name = arg("RAW");
        let saved = nofile();
        let fd = take_fd("LOCK_FD");

        // One descriptor: the segment's own, but not the description's.
        leave_descriptors(1);
        assert_emfile("Lock::new", Lock::new());
        assert_emfile("RLock::new", RLock::new());
        assert_emfile("Lock::create", Lock::create(&fresh));
        assert!(!fresh.exists(), "a failed create leaves its name behind");
        assert_emfile("Lock::open", Lock::open(&lock_name));
        assert_emfile("Value::open", Value::<i64>::open(&value_name));
        // No lock, no description: these open with the one descriptor.
        let raw = RawValue::<i64>::open(&raw_name).unwrap();
        assert_eq!(raw.get(), 7);
        drop(raw);
        let m = SharedMemory::open(&lock_name).unwrap();
        drop(m);
        set_soft_nofile(saved.rlim_cur);
        let same = fd.try_clone().unwrap();
        // `from_fd` is given the segment's descriptor: none left for the
        // description.
        leave_descriptors(0);
        assert_emfile("Lock::from_fd", Lock::from_fd(same));

        set_soft_nofile(saved.rlim_cur);
        let l = Lock::from_fd(fd).unwrap();
        drop(l.lock().unwrap());
        let l = Lock::open(&lock_name).unwrap();
        drop(l.lock().unwrap());
    }) {
        return;
    }
    let ln = ShmName::new("nodesc_lock");
    let vn = ShmName::new("nodesc_value");
    let rn = ShmName::new("nodesc_raw");
    let lock = Lock::create(&ln).unwrap();
    let _value = Value::<i64>::create(&vn, 1).unwrap();
    let _raw = RawValue::<i64>::create(&rn, 7).unwrap();
    spawn(TEST, "limited")
        .mode(Mode::Fallback)
        .arg("LOCK", &*ln)
        .arg("VALUE", &*vn)
        .arg("RAW", &*rn)
        .fd("LOCK_FD", lock.as_fd())
        .start()
        .wait();
}

// ===========================================================================
// Fork: the child's descriptions are its own
// ===========================================================================

// Single-threaded children (`Spawn::premain`): the role runs before
// libtest starts, in the main thread (for `fork`).
common::premain!(|role| {
    fallback_only();
    match role {
        "parent_dies" => parent_dies(),
        r => panic!("unknown premain role {r}"),
    }
});

/// Holds a lock, forks a child that waits for it, and waits to be killed.
fn parent_dies() {
    let lock = Lock::new().unwrap();
    let g = lock.lock().unwrap();
    // SAFETY: this process is single-threaded (a pre-main role); the child
    // ends with `_exit`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // Inherited: the parent's hold. Bounded, so that a regression
        // reports (and the child ends) rather than hanging.
        std::mem::forget(g);
        let r = catch_unwind(|| {
            // The parent lives: its hold must be judged alive.
            let r = lock.try_lock();
            tell(&format!("child waiting after {}", kind(&r)));
            let r = lock.lock_timeout(Duration::from_secs(30));
            if let Err(TryLockError::OwnerDied(g)) = &r {
                g.mark_consistent();
            }
            tell(&format!("child {}", kind(&r)));
        });
        let _ = std::io::stdout().flush();
        // SAFETY: ends the forked child without running the parent's
        // destructors or exit handlers.
        unsafe { libc::_exit(if r.is_ok() { 0 } else { 101 }) };
    }
    tell("parent holding");
    let _g = g;
    block_until_killed();
}

/// A parent killed while holding a lock, with a forked child waiting for
/// it: the child gets `OwnerDied`. (The child must hold no reference to
/// the parent's description, which would keep the parent's liveness byte
/// alive: the reason the description is neither the mapped nor the
/// exported file.)
#[test]
fn forked_child_sees_its_parent_die() {
    let mut p = spawn("forked_child_sees_its_parent_die", "parent_dies")
        .premain()
        .mode(Mode::Fallback)
        .start();
    let mut got = [p.recv(), p.recv()];
    got.sort();
    assert_eq!(got, ["child waiting after WouldBlock", "parent holding"]);
    // Let the child go to sleep on the word.
    std::thread::sleep(Duration::from_millis(50));
    p.kill_now();
    assert_eq!(p.recv(), "child OwnerDied");
    p.kill_any();
}
