//! A holder SIGKILLed while other processes sleep on its lock: exactly one
//! waiter gets `OwnerDied` with the dead owner's data, the other (and this
//! process) then sees the repaired value or `NotRecoverable`. Two
//! long-lived waiter processes (`server`), one holder process per trial.

use shmsync::raw::TID_MASK;

use crate::common::owner_death::{trials, Mode};
use crate::common::Child;
use crate::{start_holder, start_server, Trial, TRIALS};

pub(crate) fn scenario(test: &str, mode: Mode) {
    let mut ws = [start_server(test, mode), start_server(test, mode)];
    for i in 0..trials(TRIALS) {
        trial(test, mode, i, &mut ws);
    }
    for w in ws {
        w.wait();
    }
}

/// One holder (recursion count 2) and two waiter processes asleep on the
/// lock; the holder is SIGKILLed. Exactly one waiter gets `OwnerDied`
/// with the dead owner's data; the other then gets `Ok` (repaired and
/// marked consistent) or `NotRecoverable` (dropped without it), and so
/// does this (third) process.
pub(crate) fn trial(test: &str, mode: Mode, trial: usize, ws: &mut [Child; 2]) {
    let t = Trial::new("wb", 1000 + trial as i64, trial % 2 == 0);
    let (h, tid) = start_holder(test, mode, &t.name, "value", t.val);
    assert_eq!(t.peek.word() & TID_MASK, tid, "holder's TID in the word");
    for w in ws.iter_mut() {
        t.send_wait(w);
    }
    t.peek.wait_asleep("a waiter");
    h.kill();
    let mut verdicts: Vec<String> = ws.iter_mut().map(Child::recv).collect();
    verdicts.sort();
    let other = if t.consistent {
        "ok"
    } else {
        "not_recoverable"
    };
    let mut want = vec![other, "owner_died"];
    want.sort();
    assert_eq!(
        verdicts, want,
        "{mode:?} trial {trial}: exactly one OwnerDied"
    );
    t.check_after();
}
