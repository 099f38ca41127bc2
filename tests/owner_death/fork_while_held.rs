//! A single-threaded process forks while it holds a lock: its child sees
//! the lock held (`WouldBlock`), gets it (`Ok`, not `OwnerDied`) once the
//! parent releases, then dies holding another lock (SIGKILL or `_exit`),
//! which the parent recovers.

use std::io::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use shmsync::raw::TID_MASK;
use shmsync::Value;

use crate::checks::{check_value_after, check_value_ok};
use crate::common::owner_death::{
    assert_kind, assert_ok, expect_ok, expect_owner_died, trials, Mode, Peek,
};
use crate::common::{arg, await_msg, gettid, spawn, tell, ShmName};
use crate::TRIALS;

pub(crate) fn scenario(test: &str, mode: Mode) {
    for trial in 0..trials(TRIALS) {
        let killed = trial % 2 == 0;
        let consistent = (trial / 2) % 2 == 0;
        let n1 = ShmName::new("f1");
        let n2 = ShmName::new("f2");
        let v1 = Value::<i64>::create(&n1, 0).unwrap();
        let v2 = Value::<i64>::create(&n2, 0).unwrap();
        let peek1 = Peek::open(&n1);
        let mut p = spawn(test, "forker")
            .mode(mode)
            .premain()
            .arg("V1", &*n1)
            .arg("V2", &*n2)
            .arg("END", if killed { "kill" } else { "exit" })
            .arg("CONSISTENT", u8::from(consistent))
            .start();
        let ptid: u32 = p.expect_prefixed("parent_holds ").parse().unwrap();
        p.expect("child_blocking");
        // The child is asleep on v1, which its parent holds.
        let w = peek1.wait_asleep("the forked child");
        assert_eq!(w & TID_MASK, ptid, "still the parent's");
        p.send("release");
        let cpid: i32 = p.expect_prefixed("child_holds_v2 ").parse().unwrap();
        if killed {
            // SAFETY: kill(2) on the forker's child, which the forker reaps
            // only after "child_killed": the PID cannot be reused before.
            assert_eq!(unsafe { libc::kill(cpid, libc::SIGKILL) }, 0);
            p.send("child_killed");
        }
        p.expect("parent_recovered");
        p.wait();
        check_value_after(&v2, consistent, 51);
        check_value_ok(&v1, 3, true);
    }
}

/// Single-threaded: holds v1, forks. The child: `try_lock` is
/// `WouldBlock`, `lock` sleeps until the parent releases (and is `Ok`, not
/// `OwnerDied`), then it takes v2 and dies holding it (`_exit` or
/// SIGKILL); the forker then gets `OwnerDied` on v2.
pub(crate) fn forker(mode: Mode) {
    let v1 = Value::<i64>::open(&arg("V1")).unwrap();
    let v2 = Value::<i64>::open(&arg("V2")).unwrap();
    let killed = arg("END") == "kill";
    let consistent = arg("CONSISTENT") == "1";
    let g = v1.lock().unwrap();
    g.set(1);
    let ptid = gettid();
    tell(&format!("parent_holds {ptid}"));
    // SAFETY: this process is single-threaded (a pre-main role), so the
    // child may run arbitrary code; it ends with `_exit`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let ok = catch_unwind(AssertUnwindSafe(|| {
            forked_child(&v1, &v2, ptid, mode, killed)
        }))
        .is_ok();
        if !ok {
            tell("child_failed");
        }
        let _ = std::io::stdout().flush();
        // SAFETY: ends the forked child without running the parent's
        // destructors or exit handlers.
        unsafe { libc::_exit(if ok { 0 } else { 101 }) };
    }
    await_msg("release");
    g.set(2);
    drop(g);
    if killed {
        await_msg("child_killed");
    }
    let mut status = 0;
    // SAFETY: waits for our own child; `status` is a valid out-pointer.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    if killed {
        assert!(
            libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL,
            "child status {status:#x}"
        );
    } else {
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "child status {status:#x}"
        );
    }
    // The child died holding v2: its lock was on the child's own robust
    // list (list mode) / liveness byte (fallback), not the parent's.
    let g = expect_owner_died("v2 after the forked child died holding it", v2.lock());
    assert_eq!(g.get(), 50, "the child's data");
    g.set(51);
    if consistent {
        g.mark_consistent();
    }
    drop(g);
    // v1 was released by the child normally.
    assert_ok("v1", v1.lock(), |g| g.get() == 3);
    check_value_after(&v2, consistent, 51);
    tell("parent_recovered");
}

fn forked_child(v1: &Value<i64>, v2: &Value<i64>, ptid: u32, mode: Mode, killed: bool) {
    assert_eq!(shmsync::robustness(), mode.expected());
    assert_ne!(gettid(), ptid);
    assert!(!v1.get_lock().is_held_by_current_thread());
    let r = v1.try_lock();
    assert_kind("child's try_lock while the parent holds", r, "WouldBlock");
    let r = v1.lock_timeout(Duration::from_millis(1));
    assert_kind(
        "child's lock_timeout while the parent holds",
        r,
        "WouldBlock",
    );
    tell("child_blocking");
    let g = expect_ok("child's lock after the parent released", v1.lock());
    assert_eq!(g.get(), 2, "the child got v1 before its parent released it");
    g.set(3);
    drop(g);
    let g2 = v2.lock().unwrap();
    g2.set(50);
    tell(&format!("child_holds_v2 {}", std::process::id()));
    if killed {
        loop {
            // SAFETY: pause(2) only waits for a signal.
            unsafe { libc::pause() };
        }
    }
    // `_exit` (by the caller) while still holding v2.
    std::mem::forget(g2);
}
