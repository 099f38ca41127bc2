//! A holder SIGKILLed before anyone locks: its word is marked by the
//! kernel (list mode) or by nobody (fallback), and the first call after
//! the death — rotated over the locking entry points of `Value` and
//! `Array` ([`FIRST_OPS`]) — gets `OwnerDied` having done none of its
//! work.

use std::cell::Cell;

use crate::checks::{check_word_after_death, repair_and_release, spy};
use crate::common::owner_death::{expect_owner_died, trials, Mode, Peek};
use crate::common::{Child, ShmName};
use crate::objects::{elements, Held, Obj};
use crate::{start_holder, start_server, LONG, TRIALS};

/// The first call after the death, rotated over the typed objects'
/// surface: each must return `OwnerDied` with the guard and must not have
/// done its work (a failed `set` did not write, `update` did not call its
/// closure).
const FIRST_OPS: [&str; 10] = [
    "lock",
    "try_lock",
    "lock_timeout",
    "get",
    "set",
    "update",
    "arr_set",
    "arr_update",
    "arr_to_vec",
    "arr_try_lock",
];

pub(crate) fn scenario(test: &str, mode: Mode) {
    let mut server = start_server(test, mode);
    for i in 0..trials(TRIALS) {
        trial(test, mode, i, &mut server);
    }
    server.wait();
}

pub(crate) fn trial(test: &str, mode: Mode, trial: usize, server: &mut Child) {
    let op = FIRST_OPS[(trial / 2) % FIRST_OPS.len()];
    let consistent = trial % 2 == 0;
    let val = 2000 + 10 * trial as i64;
    let name = ShmName::new("db");
    let kind = if op.starts_with("arr_") {
        "array"
    } else {
        "value"
    };
    let obj = Obj::create(kind, &name);
    let peek = Peek::open(&name);
    let (h, tid) = start_holder(test, mode, &name, kind, val);
    h.kill();
    check_word_after_death(mode, peek.word(), tid);
    server.send(&format!(
        "first {kind} {} {op} {val} {}",
        &*name,
        u8::from(consistent)
    ));
    assert_eq!(
        server.recv(),
        "owner_died",
        "{mode:?} trial {trial} op {op}"
    );
    obj.check_after(consistent, val + 100);
}

/// Server command `first KIND NAME OP VAL CONSISTENT`: the first call
/// after the owner's death, `OP`, gets `OwnerDied` ([`first_call`])
/// with the dead owner's data; the data is repaired to `VAL + 100`, marked
/// consistent or not, and checked.
pub(crate) fn first_locker(a: &[&str]) -> String {
    let (obj, op) = (Obj::open(a[0], a[1]), a[2]);
    let val: i64 = a[3].parse().unwrap();
    let consistent = a[4] == "1";
    let repaired = val + 100;
    let called = Cell::new(false);
    let g = first_call(&obj, op, &called);
    assert!(
        !called.get(),
        "update ran its closure on a dead owner's data"
    );
    let left = elements(val, obj.len());
    assert_eq!(g.data(), left, "the dead owner's data, untouched by {op}");
    repair_and_release(g, obj.get_lock(), repaired, consistent);
    obj.check_after(consistent, repaired);
    "owner_died".to_owned()
}

/// The first call on `obj` after the owner's death, `op` (one of
/// [`FIRST_OPS`] for its kind): it must return `OwnerDied` with the guard,
/// having done none of its work (`update` sets `called` if it runs its
/// closure).
fn first_call<'a>(obj: &'a Obj, op: &str, called: &Cell<bool>) -> Box<dyn Held + 'a> {
    let what = format!("{} after the owner died", op.trim_start_matches("arr_"));
    match obj {
        Obj::V(v) => Box::new(match op {
            "lock" => expect_owner_died(&what, v.lock()),
            "try_lock" => expect_owner_died(&what, v.try_lock()),
            "lock_timeout" => expect_owner_died(&what, v.lock_timeout(LONG)),
            "get" => expect_owner_died(&what, v.get()),
            "set" => expect_owner_died(&what, v.set(-5)),
            "update" => expect_owner_died(&what, v.update(spy(called))),
            o => panic!("unknown op {o}"),
        }),
        Obj::A(a) => Box::new(match op {
            "arr_set" => expect_owner_died(&what, a.set(0, -5)),
            "arr_update" => expect_owner_died(&what, a.update(1, spy(called))),
            "arr_to_vec" => expect_owner_died(&what, a.to_vec()),
            "arr_try_lock" => expect_owner_died(&what, a.try_lock()),
            o => panic!("unknown op {o}"),
        }),
    }
}
