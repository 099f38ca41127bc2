//! What a process sees of a value or an array after its lock's owner died:
//! every locking entry point, in this process or another, once the dead
//! owner's data was repaired and marked consistent, or not.

use std::cell::Cell;
use std::time::Duration;

use shmsync::raw::{OWNER_DIED, TID_MASK};
use shmsync::{Array, LockError, RLock, Value};

use crate::common::owner_death::{assert_kind, assert_ok, Mode};
use crate::objects::Held;
use crate::LONG;

/// [`kind`] of a not-recoverable lock's every result.
pub(crate) const NR: &str = "NotRecoverable";

/// An `update` closure that changes nothing and records that it ran.
pub(crate) fn spy(called: &Cell<bool>) -> impl FnOnce(i64) -> i64 + '_ {
    move |x| {
        called.set(true);
        x
    }
}

/// A consistent value holding `want`, through every locking entry point.
/// `exclusive`: nobody else uses the lock now, so `try_lock` must succeed.
pub(crate) fn check_value_ok(v: &Value<i64>, want: i64, exclusive: bool) {
    assert_ok(&format!("get (want {want})"), v.get(), |&x| x == want);
    assert_ok("update", v.update(|x| x), |&x| x == want);
    assert_ok("lock_timeout", v.lock_timeout(LONG), |g| g.get() == want);
    assert_ok("lock", v.lock(), |g| g.get() == want);
    if exclusive {
        assert_ok("try_lock", v.try_lock(), |g| g.get() == want);
    }
}

/// A value whose lock was released without `mark_consistent` after an
/// owner death: every entry point fails with `NotRecoverable`, and no
/// closure runs.
pub(crate) fn check_value_not_recoverable(v: &Value<i64>) {
    let called = Cell::new(false);
    assert_kind("lock", v.lock(), NR);
    assert_kind("try_lock", v.try_lock(), NR);
    assert_kind("lock_timeout", v.lock_timeout(Duration::from_millis(1)), NR);
    assert_kind("get", v.get(), NR);
    assert_kind("set", v.set(1), NR);
    assert_kind("update", v.update(spy(&called)), NR);
    assert!(
        !called.get(),
        "update ran its closure on a not-recoverable lock"
    );
    assert!(
        !v.get_lock().is_locked(),
        "a not-recoverable lock is not 'locked'"
    );
}

/// [`check_value_ok`] for an array holding `want`.
pub(crate) fn check_array_ok(a: &Array<i64>, want: &[i64], exclusive: bool) {
    assert_ok("to_vec", a.to_vec(), |x| x == want);
    assert_ok("get", a.get(0), |&x| x == want[0]);
    assert_ok("update", a.update(1, |x| x), |&x| x == want[1]);
    assert_ok("lock_timeout", a.lock_timeout(LONG), |g| g.to_vec() == want);
    if exclusive {
        assert_ok("try_lock", a.try_lock(), |g| g.to_vec() == want);
    }
}

/// [`check_value_not_recoverable`] for an array.
pub(crate) fn check_array_not_recoverable(a: &Array<i64>) {
    let called = Cell::new(false);
    assert_kind("lock", a.lock(), NR);
    assert_kind("try_lock", a.try_lock(), NR);
    assert_kind("to_vec", a.to_vec(), NR);
    assert_kind("set", a.set(0, 1), NR);
    assert_kind("update", a.update(0, spy(&called)), NR);
    assert!(
        !called.get(),
        "update ran its closure on a not-recoverable lock"
    );
}

/// Locks `v`, whose holder died (or another waiter recovered it), and says
/// what happened. After `OwnerDied`: checks the dead owner's data (`val`),
/// that its recursion count was not inherited, repairs to `val + 1`, marks
/// it consistent or not, and checks the outcome in this process.
pub(crate) fn lock_verdict(v: &Value<i64>, val: i64, consistent: bool) -> &'static str {
    match v.lock() {
        Err(LockError::OwnerDied(g)) => {
            assert_eq!(g.get(), val, "data left by the dead owner");
            assert!(v.get_lock().is_held_by_current_thread());
            // One more (recursive) hold and its release: the lock is still
            // ours, with a count of 1 — not the dead owner's count.
            drop(v.lock().expect("recursive hold after OwnerDied"));
            repair_and_release(Box::new(g), v.get_lock(), val + 1, consistent);
            if consistent {
                check_value_ok(v, val + 1, false);
            } else {
                check_value_not_recoverable(v);
            }
            "owner_died"
        }
        Ok(g) => {
            assert_eq!(g.get(), val + 1, "Ok only after another locker repaired it");
            "ok"
        }
        Err(LockError::NotRecoverable) => "not_recoverable",
        Err(e) => panic!("lock after the owner died: {e:?}"),
    }
}

/// After `OwnerDied` on `lock`, with its guard `g` (held by this thread):
/// repairs the data to `elements(repaired, len)`, marks it consistent or
/// not and drops the guard, which must free the lock (the dead owner's
/// recursion count is not inherited).
pub(crate) fn repair_and_release(
    g: Box<dyn Held + '_>,
    lock: &RLock,
    repaired: i64,
    consistent: bool,
) {
    assert!(
        lock.is_held_by_current_thread(),
        "OwnerDied without the lock"
    );
    g.fill(repaired);
    if consistent {
        g.mark_consistent();
    }
    drop(g);
    assert!(
        !lock.is_held_by_current_thread(),
        "one release after OwnerDied must free the lock (dead owner's count inherited?)"
    );
}

/// The parent's (another process's) view after the trial.
pub(crate) fn check_value_after(v: &Value<i64>, consistent: bool, want: i64) {
    if consistent {
        check_value_ok(v, want, true);
    } else {
        check_value_not_recoverable(v);
    }
}

/// The lock word `w` after its owner, thread `tid`, died and before anyone
/// locked: the kernel marks it in list mode; in the fallback nobody marks
/// it before a locker probes.
pub(crate) fn check_word_after_death(mode: Mode, w: u32, tid: u32) {
    if mode.kernel_marks() {
        assert_eq!(
            w, OWNER_DIED,
            "the kernel marks a dead list-mode owner's word ({w:#x})"
        );
    } else {
        assert_eq!(
            w & (TID_MASK | OWNER_DIED),
            tid,
            "nobody marks a fallback owner's word before a locker probes ({w:#x})"
        );
    }
}
