//! Owner death across real processes, in both robustness modes (the
//! kernel's robust list, and the liveness-token fallback forced with
//! `SHMSYNC_ROBUST=fallback`): a lock whose holder dies is recovered, the
//! first locker after the death — and only it — gets `OwnerDied` with a
//! guard, the protected data stays readable, and `mark_consistent` /
//! `NotRecoverable` behave as POSIX robust mutexes do.
//!
//! Every scenario runs [`TRIALS`] times per mode (`SHMSYNC_OD_TRIALS`
//! overrides). `cargo test --test owner_death -- --ignored soak` runs the
//! kill-while-held soak (1000 trials per mode and scenario by default).
//! The child-process machinery is in `common/mod.rs` (shared with the
//! other cross-process tests), the owner-death specifics (modes, lock-word
//! peeks, locking outcomes, random trials) in `common/owner_death.rs`.

mod common;

use std::cell::Cell;
use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use common::owner_death::{
    assert_kind, assert_ok, expect_ok, expect_owner_died, kind, mode_tests, trials, Mode, Peek, Rng,
};
use common::{
    arg, arg_parse, await_msg, block_until_killed, gettid, glibc_timedlock, init_robust_mutex,
    robust_list, run_child, spawn, tell, wait_until, Child, ShmName,
};
use shmsync::raw::{OWNER_DIED, TID_MASK};
use shmsync::{Array, ArrayGuard, LockError, RLock, SharedMemory, TryLockError, Value, ValueGuard};

/// Trials per scenario and mode in `cargo test`.
const TRIALS: usize = 20;
/// Trials per scenario and mode in the soak.
const SOAK_TRIALS: usize = 1000;
/// A bound that is never reached when recovery works ("nothing hangs").
const LONG: Duration = Duration::from_secs(10);

// ===========================================================================
// Result helpers
// ===========================================================================

/// [`kind`] of a not-recoverable lock's every result.
const NR: &str = "NotRecoverable";

/// An `update` closure that changes nothing and records that it ran.
fn spy(called: &Cell<bool>) -> impl FnOnce(i64) -> i64 + '_ {
    move |x| {
        called.set(true);
        x
    }
}

/// A consistent value holding `want`, through every locking entry point.
/// `exclusive`: nobody else uses the lock now, so `try_lock` must succeed.
fn check_value_ok(v: &Value<i64>, want: i64, exclusive: bool) {
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
fn check_value_not_recoverable(v: &Value<i64>) {
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
fn check_array_ok(a: &Array<i64>, want: &[i64], exclusive: bool) {
    assert_ok("to_vec", a.to_vec(), |x| x == want);
    assert_ok("get", a.get(0), |&x| x == want[0]);
    assert_ok("update", a.update(1, |x| x), |&x| x == want[1]);
    assert_ok("lock_timeout", a.lock_timeout(LONG), |g| g.to_vec() == want);
    if exclusive {
        assert_ok("try_lock", a.try_lock(), |g| g.to_vec() == want);
    }
}

/// [`check_value_not_recoverable`] for an array.
fn check_array_not_recoverable(a: &Array<i64>) {
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
fn lock_verdict(v: &Value<i64>, val: i64, consistent: bool) -> &'static str {
    match v.lock() {
        Err(LockError::OwnerDied(g)) => {
            assert_eq!(g.get(), val, "data left by the dead owner");
            assert!(v.get_lock().is_held_by_current_thread());
            // One more (recursive) hold and its release: the lock is still
            // ours, with a count of 1 — not the dead owner's count.
            drop(v.lock().expect("recursive hold after OwnerDied"));
            assert!(v.get_lock().is_held_by_current_thread());
            g.set(val + 1);
            if consistent {
                g.mark_consistent();
            }
            drop(g);
            assert!(
                !v.get_lock().is_held_by_current_thread(),
                "one release after OwnerDied must free the lock (dead owner's count inherited?)"
            );
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

/// The parent's (another process's) view after the trial.
fn check_value_after(v: &Value<i64>, consistent: bool, want: i64) {
    if consistent {
        check_value_ok(v, want, true);
    } else {
        check_value_not_recoverable(v);
    }
}

/// The lock word `w` after its owner, thread `tid`, died and before anyone
/// locked: the kernel marks it in list mode; in the fallback nobody marks
/// it before a locker probes.
fn check_word_after_death(mode: Mode, w: u32, tid: u32) {
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

// ===========================================================================
// Objects
// ===========================================================================

/// Elements `base, base + 1, …` (`len` of them): what the scenarios write
/// into an object (a value has one element).
fn elements(base: i64, len: usize) -> Vec<i64> {
    (0..len as i64).map(|i| base + i).collect()
}

/// A held guard of a `Value<i64>` or an `Array<i64>`, its data seen as
/// [`elements`].
trait Held {
    fn data(&self) -> Vec<i64>;
    /// Writes `elements(base, len)`.
    fn fill(&self, base: i64);
    fn mark_consistent(&self);
}

impl Held for ValueGuard<'_, i64> {
    fn data(&self) -> Vec<i64> {
        vec![self.get()]
    }
    fn fill(&self, base: i64) {
        self.set(base);
    }
    fn mark_consistent(&self) {
        ValueGuard::mark_consistent(self);
    }
}

impl Held for ArrayGuard<'_, i64> {
    fn data(&self) -> Vec<i64> {
        self.to_vec()
    }
    fn fill(&self, base: i64) {
        for i in 0..self.len() {
            self.set(i, base + i as i64);
        }
    }
    fn mark_consistent(&self) {
        ArrayGuard::mark_consistent(self);
    }
}

/// Length of the arrays in [`Obj`].
const ARR_LEN: usize = 3;

/// A trial's object, by its kind: `value` or `array` (of [`ARR_LEN`]).
enum Obj {
    V(Value<i64>),
    A(Array<i64>),
}

impl Obj {
    /// A new named object holding -1 everywhere.
    fn create(kind: &str, name: &str) -> Obj {
        match kind {
            "value" => Obj::V(Value::create(name, -1).unwrap()),
            "array" => Obj::A(Array::create(name, &[-1; ARR_LEN]).unwrap()),
            k => panic!("unknown kind {k}"),
        }
    }

    fn open(kind: &str, name: &str) -> Obj {
        match kind {
            "value" => Obj::V(Value::open(name).unwrap()),
            "array" => Obj::A(Array::open(name).unwrap()),
            k => panic!("unknown kind {k}"),
        }
    }

    fn len(&self) -> usize {
        match self {
            Obj::V(_) => 1,
            Obj::A(a) => a.len(),
        }
    }

    fn get_lock(&self) -> &RLock {
        match self {
            Obj::V(v) => v.get_lock(),
            Obj::A(a) => a.get_lock(),
        }
    }

    /// `lock()`, which must succeed.
    fn lock(&self) -> Box<dyn Held + '_> {
        match self {
            Obj::V(v) => Box::new(v.lock().unwrap()),
            Obj::A(a) => Box::new(a.lock().unwrap()),
        }
    }

    /// The first call after the owner's death, `op` (one of [`FIRST_OPS`]
    /// for this kind): it must return `OwnerDied` with the guard, having
    /// done none of its work (`update` sets `called` if it runs its
    /// closure).
    fn first_call(&self, op: &str, called: &Cell<bool>) -> Box<dyn Held + '_> {
        let what = format!("{} after the owner died", op.trim_start_matches("arr_"));
        match self {
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

    /// This process's view after a trial: repaired to `elements(base, len)`
    /// and consistent, or not recoverable.
    fn check_after(&self, consistent: bool, base: i64) {
        match self {
            Obj::V(v) => check_value_after(v, consistent, base),
            Obj::A(a) if consistent => check_array_ok(a, &elements(base, a.len()), true),
            Obj::A(a) => check_array_not_recoverable(a),
        }
    }
}

// ===========================================================================
// Child roles (one dispatcher for every test)
// ===========================================================================

fn roles(role: &str) {
    let mode = Mode::of_child();
    match role {
        "server" => server(mode),
        "holder" => hold_and_block(),
        "looper" => looper(),
        "mt_holder" => mt_holder(),
        "exec_holder" => exec_holder(),
        "thread_exit" => thread_exit(mode),
        "interleave" => interleave(mode),
        r => panic!("unknown role {r}"),
    }
}

// Single-threaded children (`Spawn::premain`): the role runs before
// libtest starts, in the main thread.
common::premain!(|role| match role {
    "exec_holder" => exec_holder(),
    "forker" => forker(Mode::of_child()),
    r => panic!("unknown premain role {r}"),
});

/// Locks the object `NAME` (`KIND` value or array) twice (recursively),
/// writes `elements(VAL, len)`, reports `held <tid>` and waits to be
/// killed.
fn hold_and_block() {
    let obj = Obj::open(&arg("KIND"), &arg("NAME"));
    let g = obj.lock();
    let g2 = obj.lock();
    g2.fill(arg_parse("VAL"));
    tell(&format!("held {}", gettid()));
    let _keep = (g, g2);
    block_until_killed()
}

/// A long-lived child that locks on command, so that a trial costs one
/// process start (the victim's) rather than several.
fn server(mode: Mode) {
    tell("ready");
    loop {
        let mut line = String::new();
        if std::io::stdin().read_line(&mut line).expect("read stdin") == 0 {
            return;
        }
        let w: Vec<&str> = line.split_whitespace().collect();
        if w.is_empty() {
            continue;
        }
        let reply = match w[0] {
            "wait" => wait_cmd(w[1], w[2].parse().unwrap(), w[3] == "1"),
            "first" => first_locker(&w[1..]),
            "after" => after_random_kill(w[1]),
            "glibc" => glibc_check(&w[1..]),
            "mode" => {
                assert_eq!(shmsync::robustness(), mode.expected());
                format!("{:?}", shmsync::robustness())
            }
            c => panic!("unknown command {c}"),
        };
        tell(&reply);
    }
}

/// Server command `wait NAME VAL CONSISTENT`: `lock()` in a thread of its
/// own, so that a lock that is never recovered fails the test after
/// [`LONG`] with the state of its word instead of hanging it.
fn wait_cmd(name: &str, val: i64, consistent: bool) -> String {
    let (tx, rx) = mpsc::channel();
    let n = name.to_owned();
    std::thread::spawn(move || {
        let v = Value::<i64>::open(&n).unwrap();
        tell("locking");
        let _ = tx.send(lock_verdict(&v, val, consistent));
    });
    match rx.recv_timeout(LONG) {
        Ok(verdict) => verdict.to_owned(),
        Err(_) => {
            let w = Peek::open(name).word();
            panic!("lock() still blocked {LONG:?} after the owner's death: word {w:#x}")
        }
    }
}

// ===========================================================================
// Trial machinery
// ===========================================================================

fn start_server(test: &str, mode: Mode) -> Child {
    let mut k = spawn(test, "server").mode(mode).start();
    k.expect("ready");
    k
}

/// A `holder` ([`hold_and_block`]) of the `kind` object `name`, holding it
/// with `val` written; returns it and the holding thread's TID.
fn start_holder(test: &str, mode: Mode, name: &str, kind: &str, val: i64) -> (Child, u32) {
    let mut h = spawn(test, "holder")
        .mode(mode)
        .arg("NAME", name)
        .arg("KIND", kind)
        .arg("VAL", val)
        .start();
    let tid = h.expect_prefixed("held ").parse().unwrap();
    (h, tid)
}

/// One trial's `Value<i64>` (created holding -1), whose holder dies having
/// written `val`; whoever gets `OwnerDied` repairs it to `val + 1` and
/// marks it consistent or not ([`lock_verdict`]).
struct Trial {
    // Dropped in this order: the name last, after the objects using it.
    peek: Peek,
    v: Value<i64>,
    name: ShmName,
    val: i64,
    consistent: bool,
}

impl Trial {
    fn new(tag: &str, val: i64, consistent: bool) -> Trial {
        let name = ShmName::new(tag);
        let v = Value::<i64>::create(&name, -1).unwrap();
        let peek = Peek::open(&name);
        Trial {
            peek,
            v,
            name,
            val,
            consistent,
        }
    }

    /// Has `server` lock it (command `wait`, [`wait_cmd`]), in a thread
    /// of its own.
    fn send_wait(&self, server: &mut Child) {
        let c = u8::from(self.consistent);
        server.send(&format!("wait {} {} {c}", &*self.name, self.val));
        server.expect("locking");
    }

    /// Has `server` lock it around `die`, the holder's death: already
    /// asleep on the lock when `die` runs (`blocked`), or only after it.
    /// The server must get `OwnerDied` (`ctx` in the message otherwise).
    fn lock_around_death(&self, server: &mut Child, blocked: bool, die: impl FnOnce(), ctx: &str) {
        if blocked {
            self.send_wait(server);
            self.peek.wait_asleep("the waiter");
        }
        die();
        if !blocked {
            self.send_wait(server);
        }
        assert_eq!(server.recv(), "owner_died", "{ctx}");
    }

    /// This process's view afterwards (see [`check_value_after`]).
    fn check_after(&self) {
        check_value_after(&self.v, self.consistent, self.val + 1);
    }
}

// ===========================================================================
// Scenario 1: holder SIGKILLed while waiters (other processes) are blocked
// ===========================================================================

fn waiter_blocked(test: &str, mode: Mode) {
    let mut ws = [start_server(test, mode), start_server(test, mode)];
    for trial in 0..trials(TRIALS) {
        trial_waiter_blocked(test, mode, trial, &mut ws);
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
fn trial_waiter_blocked(test: &str, mode: Mode, trial: usize, ws: &mut [Child; 2]) {
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

mode_tests!(waiter_blocked: waiter_blocked_list, waiter_blocked_fallback, children: roles);

// ===========================================================================
// Scenario 2: holder dead before anyone locks; every entry point reports it
// ===========================================================================

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

fn dead_before_lock(test: &str, mode: Mode) {
    let mut server = start_server(test, mode);
    for trial in 0..trials(TRIALS) {
        trial_dead_before_lock(test, mode, trial, &mut server);
    }
    server.wait();
}

fn trial_dead_before_lock(test: &str, mode: Mode, trial: usize, server: &mut Child) {
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
/// after the owner's death, `OP`, gets `OwnerDied` ([`Obj::first_call`])
/// with the dead owner's data; the data is repaired to `VAL + 100`, marked
/// consistent or not, and checked.
fn first_locker(a: &[&str]) -> String {
    let (obj, op) = (Obj::open(a[0], a[1]), a[2]);
    let val: i64 = a[3].parse().unwrap();
    let consistent = a[4] == "1";
    let repaired = val + 100;
    let called = Cell::new(false);
    let g = obj.first_call(op, &called);
    assert!(
        !called.get(),
        "update ran its closure on a dead owner's data"
    );
    let left = elements(val, obj.len());
    assert_eq!(g.data(), left, "the dead owner's data, untouched by {op}");
    assert!(obj.get_lock().is_held_by_current_thread());
    g.fill(repaired);
    if consistent {
        g.mark_consistent();
    }
    drop(g);
    assert!(
        !obj.get_lock().is_held_by_current_thread(),
        "dead owner's recursion count inherited"
    );
    obj.check_after(consistent, repaired);
    "owner_died".to_owned()
}

mode_tests!(dead_before_lock: dead_before_lock_list, dead_before_lock_fallback, children: roles);

// ===========================================================================
// Scenario 3: holders killed at random times while looping lock/unlock
// ===========================================================================

fn random_kill(test: &str, mode: Mode) {
    let seed = Rng::seed();
    let mut rng = Rng::new(seed);
    let mut server = start_server(test, mode);
    let mut died = 0;
    // Cheap trials, and the windows they aim at are narrow: three times as
    // many as the other scenarios.
    let n = trials(3 * TRIALS);
    for trial in 0..n {
        let r = catch_unwind(AssertUnwindSafe(|| {
            trial_random_kill(test, mode, &mut rng, &mut server)
        }));
        match r {
            Ok(owner_died) => died += usize::from(owner_died),
            Err(e) => {
                eprintln!("random_kill {mode:?}: trial {trial} failed (SHMSYNC_OD_SEED={seed})");
                std::panic::resume_unwind(e);
            }
        }
    }
    println!("random_kill {mode:?}: {died} of {n} trials ended in OwnerDied");
    server.wait();
}

/// Two processes loop lock / update `a[0]`, `a[1]` / unlock (through
/// `lock`, `try_lock` and `lock_timeout`, repairing after `OwnerDied`) and
/// are SIGKILLed at random moments (a quarter of the trials before they
/// report running: during start-up and their first lock). Afterwards
/// `lock_timeout(10 s)` must give `Ok` with `a[0] == a[1]` or `OwnerDied`
/// with at most the one interrupted step — never `WouldBlock`. Returns
/// whether it was `OwnerDied`.
fn trial_random_kill(test: &str, mode: Mode, rng: &mut Rng, server: &mut Child) -> bool {
    let name = ShmName::new("rk");
    let a = Array::<i64>::create(&name, &[0, 0]).unwrap();
    let early = rng.below(4) == 0;
    let mut ls: Vec<Child> = (0..2)
        .map(|_| spawn(test, "looper").mode(mode).arg("NAME", &*name).start())
        .collect();
    if early {
        std::thread::sleep(Duration::from_micros(rng.below(15_000)));
    } else {
        for l in &mut ls {
            l.expect("looping");
        }
        std::thread::sleep(Duration::from_micros(rng.below(3_000)));
    }
    let first = rng.below(2) as usize;
    if ls[first].running() {
        ls[first].kill_now();
    }
    std::thread::sleep(Duration::from_micros(rng.below(500)));
    if ls[1 - first].running() {
        ls[1 - first].kill_now();
    }
    for l in ls {
        l.kill_any();
    }
    server.send(&format!("after {}", &*name));
    let verdict = server.recv();
    assert!(
        verdict == "ok" || verdict == "owner_died",
        "after the kill: {verdict}"
    );
    // Repaired and consistent now, for this process too.
    assert_ok("try_lock after repair", a.try_lock(), |g| {
        g.get(0) == g.get(1)
    });
    verdict == "owner_died"
}

fn repair_pair(g: &ArrayGuard<'_, i64>) {
    let m = g.get(0).max(g.get(1));
    g.set(0, m);
    g.set(1, m);
    g.mark_consistent();
}

fn looper() {
    let a = Array::<i64>::open(&arg("NAME")).unwrap();
    tell("looping");
    let mut k = 0u64;
    loop {
        k += 1;
        let g = match k % 3 {
            0 => match a.try_lock() {
                Ok(g) => g,
                Err(TryLockError::WouldBlock) => continue,
                Err(TryLockError::OwnerDied(g)) => {
                    repair_pair(&g);
                    g
                }
                Err(e) => panic!("looper try_lock: {e:?}"),
            },
            1 => match a.lock_timeout(Duration::from_millis(1)) {
                Ok(g) => g,
                Err(TryLockError::WouldBlock) => continue,
                Err(TryLockError::OwnerDied(g)) => {
                    repair_pair(&g);
                    g
                }
                Err(e) => panic!("looper lock_timeout: {e:?}"),
            },
            _ => match a.lock() {
                Ok(g) => g,
                Err(LockError::OwnerDied(g)) => {
                    repair_pair(&g);
                    g
                }
                Err(e) => panic!("looper lock: {e:?}"),
            },
        };
        let n = g.get(0) + 1;
        g.set(0, n);
        g.set(1, n);
    }
}

/// Server command `after NAME`.
fn after_random_kill(name: &str) -> String {
    let a = Array::<i64>::open(name).unwrap();
    let start = Instant::now();
    let r = a.lock_timeout(LONG);
    let verdict = match &r {
        Ok(g) => {
            assert_eq!(g.get(0), g.get(1), "torn data after a clean release");
            "ok"
        }
        Err(TryLockError::OwnerDied(g)) => {
            let (x, y) = (g.get(0), g.get(1));
            assert!(x == y || x == y + 1, "more than one step torn: {x} {y}");
            repair_pair(g);
            "owner_died"
        }
        Err(TryLockError::WouldBlock) => {
            let w = Peek::open(name).word();
            panic!(
                "still held {:?} after its holders were killed: word {w:#x}",
                start.elapsed()
            )
        }
        Err(e) => panic!("lock_timeout after the kill: {e:?}"),
    };
    verdict.to_owned()
}

mode_tests!(random_kill: random_kill_list, random_kill_fallback, children: roles);

// ===========================================================================
// Scenario 4: the owner is a non-main thread of a multi-threaded process
// ===========================================================================

fn non_main_thread(test: &str, mode: Mode) {
    let mut server = start_server(test, mode);
    for trial in 0..trials(TRIALS) {
        let blocked = trial % 2 == 0;
        let t = Trial::new("mt", 3000 + trial as i64, (trial / 2) % 2 == 0);
        let mut h = spawn(test, "mt_holder")
            .mode(mode)
            .arg("NAME", &*t.name)
            .arg("VAL", t.val)
            .start();
        let held = h.expect_prefixed("held ");
        let (tid, pid) = held.split_once(' ').unwrap();
        let (tid, pid): (u32, i32) = (tid.parse().unwrap(), pid.parse().unwrap());
        assert_eq!(pid, h.pid());
        assert_ne!(tid as i32, pid, "the owner must not be the main thread");
        assert_eq!(t.peek.word() & TID_MASK, tid);
        let ctx = format!("{mode:?} trial {trial}");
        t.lock_around_death(&mut server, blocked, || h.kill(), &ctx);
        t.check_after();
    }
    server.wait();
}

/// Four threads besides main; the second holds the lock.
fn mt_holder() {
    let v = Arc::new(Value::<i64>::open(&arg("NAME")).unwrap());
    let val: i64 = arg_parse("VAL");
    let (tx, rx) = mpsc::channel();
    for i in 0..4 {
        let v = Arc::clone(&v);
        let tx = tx.clone();
        std::thread::spawn(move || {
            if i == 1 {
                let g = v.lock().unwrap();
                g.set(val);
                tx.send(gettid()).unwrap();
                loop {
                    std::thread::park();
                    let _ = g.get();
                }
            }
            loop {
                std::thread::park();
            }
        });
    }
    let tid: u32 = rx.recv().unwrap();
    tell(&format!("held {tid} {}", std::process::id()));
    block_until_killed()
}

mode_tests!(non_main_thread: non_main_thread_list, non_main_thread_fallback, children: roles);

// ===========================================================================
// Scenario 5: a thread (not the process) ends while holding
// ===========================================================================

fn thread_ends(test: &str, mode: Mode) {
    let n = trials(TRIALS);
    let names: Vec<ShmName> = (0..n).map(|_| ShmName::new("te")).collect();
    let values: Vec<Value<i64>> = names
        .iter()
        .map(|nm| Value::<i64>::create(nm, -1).unwrap())
        .collect();
    let list: Vec<&str> = names.iter().map(|nm| &**nm).collect();
    let mut k = spawn(test, "thread_exit")
        .mode(mode)
        .arg("NAMES", list.join(","))
        .start();
    for i in 0..n {
        k.expect(&format!("trial {i} owner_died"));
    }
    k.wait();
    // Another process: repaired ones are consistent, the others dead.
    for (i, v) in values.iter().enumerate() {
        check_value_after(v, thread_exit_consistent(i), 5000 + i as i64 + 1);
    }
}

fn thread_exit_consistent(i: usize) -> bool {
    (i / 2) % 2 == 0
}

/// For each value: a thread locks it, writes, `mem::forget`s the guard and
/// returns; another thread — asleep on the lock when the first ends (even
/// trials) or arriving after it ended (odd) — gets `OwnerDied`.
fn thread_exit(mode: Mode) {
    let names = arg("NAMES");
    for (i, name) in names.split(',').enumerate() {
        let blocked = i % 2 == 0;
        let consistent = thread_exit_consistent(i);
        let val = 5000 + i as i64;
        let v = Arc::new(Value::<i64>::open(name).unwrap());
        let peek = Peek::open(name);
        let (held_tx, held_rx) = mpsc::channel();
        let (exit_tx, exit_rx) = mpsc::channel::<()>();
        let t1 = {
            let v = Arc::clone(&v);
            std::thread::spawn(move || {
                let g = v.lock().unwrap();
                g.set(val);
                held_tx.send(gettid()).unwrap();
                // The thread ends holding the lock.
                std::mem::forget(g);
                exit_rx.recv().unwrap();
            })
        };
        let tid1: u32 = held_rx.recv().unwrap();
        let locker =
            |v: Arc<Value<i64>>| std::thread::spawn(move || lock_verdict(&v, val, consistent));
        let verdict = if blocked {
            let t2 = locker(Arc::clone(&v));
            peek.wait_asleep("the second thread");
            exit_tx.send(()).unwrap();
            t1.join().unwrap();
            t2.join().unwrap()
        } else {
            exit_tx.send(()).unwrap();
            t1.join().unwrap();
            check_word_after_death(mode, peek.word(), tid1);
            locker(Arc::clone(&v)).join().unwrap()
        };
        assert_eq!(verdict, "owner_died", "trial {i}");
        tell(&format!("trial {i} owner_died"));
    }
}

mode_tests!(thread_ends: thread_ends_list, thread_ends_fallback, children: roles);

// ===========================================================================
// Scenario 6: the holder execve()s while holding
// ===========================================================================

fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim_end().to_owned())
        .unwrap_or_default()
}

/// Waits until the process `pid` runs `sleep` (the exec'd program).
fn wait_for_sleep(pid: i32) {
    wait_until("the holder to become `sleep`", || {
        (comm(pid) == "sleep").then_some(())
    });
}

fn exec_while_holding(test: &str, mode: Mode) {
    let mut server = start_server(test, mode);
    for trial in 0..trials(TRIALS) {
        // The exec'ing thread: the process's main thread (a single-threaded
        // child), or libtest's test thread (the kernel then cannot match the
        // word's TID: the liveness token recovers it).
        let main_thread = trial % 2 == 0;
        let blocked = (trial / 2) % 2 == 0;
        let t = Trial::new("ex", 4000 + trial as i64, (trial / 4) % 2 == 0);
        let mut sp = spawn(test, "exec_holder")
            .mode(mode)
            .arg("NAME", &*t.name)
            .arg("VAL", t.val);
        if main_thread {
            sp = sp.premain();
        }
        let mut h = sp.start();
        let tid: u32 = h.expect_prefixed("held ").parse().unwrap();
        assert_eq!(tid as i32 == h.pid(), main_thread);
        let pid = h.pid();
        let exec = || {
            h.send("exec");
            if !blocked {
                wait_for_sleep(pid);
                if mode.kernel_marks() && main_thread {
                    let w = t.peek.wait_for("the kernel to mark the word at exec", |w| {
                        w & TID_MASK != tid
                    });
                    assert_eq!(w, OWNER_DIED, "word after exec: {w:#x}");
                }
            }
        };
        let ctx = format!("{mode:?} trial {trial}");
        t.lock_around_death(&mut server, blocked, exec, &ctx);
        // Recovered while the exec'd program still runs (the kernel drops
        // the token at close-on-exec, just before it renames the process:
        // the rename may trail the recovery by a moment).
        wait_for_sleep(pid);
        assert!(h.running(), "the exec'd holder still runs");
        h.kill();
        t.check_after();
    }
    server.wait();
}

fn exec_holder() {
    let v = Value::<i64>::open(&arg("NAME")).unwrap();
    let g = v.lock().unwrap();
    g.set(arg_parse("VAL"));
    tell(&format!("held {}", gettid()));
    await_msg("exec");
    let err = std::process::Command::new("sleep").arg("30").exec();
    drop(g);
    panic!("exec failed: {err}");
}

mode_tests!(exec_while_holding: exec_while_holding_list, exec_while_holding_fallback, children: roles);

// ===========================================================================
// Scenario 7: glibc robust pthread mutexes held in the same thread as ours
// ===========================================================================

/// Byte offsets in the glibc block: mutex X, its data, mutex Y, its data.
const GX: usize = 0;
const GX_DATA: usize = 64;
const GY: usize = 128;
const GY_DATA: usize = 192;
/// Our locks A, B (two `Value`s) and glibc's X, Y.
const LOCKS: [&str; 4] = ["A", "B", "X", "Y"];

/// Lock/unlock sequences over A, B, X, Y: fixed orders first, then random.
fn glibc_sequence(trial: usize, rng: &mut Rng) -> Vec<(usize, bool)> {
    let fixed: [&[(usize, bool)]; 6] = [
        // ours then glibc's, both held
        &[(0, true), (2, true)],
        // glibc's then ours, both held
        &[(2, true), (0, true)],
        // unlock in lock order, then in reverse order; B and Y held
        &[
            (0, true),
            (2, true),
            (0, false),
            (2, false),
            (1, true),
            (3, true),
        ],
        &[
            (2, true),
            (0, true),
            (0, false),
            (2, false),
            (3, true),
            (1, true),
        ],
        // unlock from the middle of the list
        &[
            (0, true),
            (2, true),
            (1, true),
            (3, true),
            (2, false),
            (1, false),
        ],
        // everything released before death
        &[
            (3, true),
            (1, true),
            (0, true),
            (1, false),
            (3, false),
            (0, false),
        ],
    ];
    if trial < fixed.len() {
        return fixed[trial].to_vec();
    }
    let mut held = [false; 4];
    let len = 3 + rng.below(12) as usize;
    (0..len)
        .map(|_| {
            let l = rng.below(4) as usize;
            held[l] = !held[l];
            (l, held[l])
        })
        .collect()
}

fn glibc_interleaved(test: &str, mode: Mode) {
    let seed = Rng::seed();
    let mut rng = Rng::new(seed);
    let mut server = start_server(test, mode);
    for trial in 0..trials(TRIALS) {
        let seq = glibc_sequence(trial, &mut rng);
        let ctx = format!("{mode:?} trial {trial} seq {seq:?} (SHMSYNC_OD_SEED={seed})");
        let na = ShmName::new("ga");
        let nb = ShmName::new("gb");
        let ng = ShmName::new("gg");
        let va = Value::<i64>::create(&na, -1).unwrap();
        let vb = Value::<i64>::create(&nb, -1).unwrap();
        let gm = SharedMemory::create(&ng, 4096).unwrap();
        for (m, d) in [(GX, GX_DATA), (GY, GY_DATA)] {
            // SAFETY: the offsets lie inside the 4096-byte mapping, 8-aligned
            // for pthread_mutex_t (40 bytes, align 8); nobody else uses the
            // block yet.
            unsafe { init_robust_mutex(gm.as_ptr().add(m).cast()) };
            gm.write_at(d, &(-1i64).to_ne_bytes()).unwrap();
        }
        // Expected state at death: held or not, and the data last written
        // (the step number of the lock's last acquisition).
        let mut held = [false; 4];
        let mut data = [-1i64; 4];
        for (step, &(l, lock)) in seq.iter().enumerate() {
            held[l] = lock;
            if lock {
                data[l] = step as i64 + 1;
            }
        }
        let mask: u32 = (0..4).filter(|&l| held[l]).map(|l| 1 << l).sum();
        let seq_arg: Vec<String> = seq
            .iter()
            .map(|&(l, lock)| format!("{}{}", LOCKS[l], if lock { '+' } else { '-' }))
            .collect();
        let mut h = spawn(test, "interleave")
            .mode(mode)
            .arg("A", &*na)
            .arg("B", &*nb)
            .arg("G", &*ng)
            .arg("SEQ", seq_arg.join(" "))
            .start();
        h.expect("held");
        h.kill();
        let consistent = trial % 3 != 2;
        server.send(&format!(
            "glibc {} {} {} {mask} {} {} {} {} {}",
            &*na,
            &*nb,
            &*ng,
            data[0],
            data[1],
            data[2],
            data[3],
            u8::from(consistent)
        ));
        assert_eq!(server.recv(), "checked", "{ctx}");
        // Ours, from this process: a lock held at death and not repaired is
        // dead for everyone; the rest are consistent.
        for (l, v) in [(0, &va), (1, &vb)] {
            let want = if held[l] { data[l] + 1000 } else { data[l] };
            check_value_after(v, !held[l] || consistent, want);
        }
    }
    server.wait();
}

/// Runs `SEQ` over our A, B and glibc's X, Y in this one thread, checking
/// the thread's robust list after every step, then waits to be killed.
fn interleave(mode: Mode) {
    let va = Value::<i64>::open(&arg("A")).unwrap();
    let vb = Value::<i64>::open(&arg("B")).unwrap();
    let gm = SharedMemory::open(&arg("G")).unwrap();
    let mx: *mut libc::pthread_mutex_t = gm.as_ptr().wrapping_add(GX).cast();
    let my: *mut libc::pthread_mutex_t = gm.as_ptr().wrapping_add(GY).cast();
    let mut ga = None;
    let mut gb = None;
    // Held locks, most recently locked first (the list is LIFO).
    let mut order: Vec<usize> = Vec::new();
    let seq = arg("SEQ");
    let before = robust_list();
    for (step, tok) in seq.split_whitespace().enumerate() {
        let data = step as i64 + 1;
        let l = LOCKS.iter().position(|&n| tok.starts_with(n)).unwrap();
        let lock = tok.ends_with('+');
        let (m, d) = if l == 2 { (mx, GX_DATA) } else { (my, GY_DATA) };
        match (l, lock) {
            (0, true) => {
                let g = va.lock().unwrap();
                g.set(data);
                ga = Some(g);
            }
            (0, false) => ga = None,
            (1, true) => {
                let g = vb.lock().unwrap();
                g.set(data);
                gb = Some(g);
            }
            (1, false) => gb = None,
            (_, true) => {
                // SAFETY: an initialised robust pshared mutex in `gm`.
                assert_eq!(unsafe { libc::pthread_mutex_lock(m) }, 0);
                gm.write_at(d, &data.to_ne_bytes()).unwrap();
            }
            (_, false) => {
                // SAFETY: as above; this thread holds it.
                assert_eq!(unsafe { libc::pthread_mutex_unlock(m) }, 0);
            }
        }
        if lock {
            order.insert(0, l);
        } else {
            order.retain(|&x| x != l);
        }
        // The list holds exactly the held locks, in LIFO order: glibc's at
        // their own addresses, ours (list mode only) elsewhere.
        let nodes = robust_list();
        let want: Vec<usize> = order
            .iter()
            .copied()
            .filter(|&x| x >= 2 || mode.kernel_marks())
            .collect();
        let extra = before.len();
        assert_eq!(
            nodes.len(),
            want.len() + extra,
            "step {step} ({tok}) of {seq}: robust list {nodes:x?}, held {want:?}"
        );
        for (node, &x) in nodes.iter().zip(&want) {
            let glibc_node = |m: *mut libc::pthread_mutex_t| m as usize + 32;
            match x {
                2 => assert_eq!(*node, glibc_node(mx), "step {step}: X's place"),
                3 => assert_eq!(*node, glibc_node(my), "step {step}: Y's place"),
                _ => assert!(
                    *node != glibc_node(mx) && *node != glibc_node(my),
                    "step {step}: our lock's place"
                ),
            }
        }
    }
    tell("held");
    let _keep = (ga, gb);
    block_until_killed()
}

/// Server command `glibc A B G MASK dA dB dX dY CONSISTENT`: exactly the
/// locks held at death report the death (ours `OwnerDied`, glibc's
/// `EOWNERDEAD`), with the data last written.
fn glibc_check(a: &[&str]) -> String {
    let va = Value::<i64>::open(a[0]).unwrap();
    let vb = Value::<i64>::open(a[1]).unwrap();
    let gm = SharedMemory::open(a[2]).unwrap();
    let mask: u32 = a[3].parse().unwrap();
    let data: Vec<i64> = a[4..8].iter().map(|s| s.parse().unwrap()).collect();
    let consistent = a[8] == "1";
    for (l, v) in [(0, &va), (1, &vb)] {
        let held = mask & (1 << l) != 0;
        match v.lock_timeout(LONG) {
            Err(TryLockError::OwnerDied(g)) if held => {
                assert_eq!(g.get(), data[l], "{}: data", LOCKS[l]);
                g.set(data[l] + 1000);
                if consistent {
                    g.mark_consistent();
                }
            }
            Ok(g) if !held => assert_eq!(g.get(), data[l], "{}: data", LOCKS[l]),
            r => panic!("{} (held at death: {held}): {}", LOCKS[l], kind(&r)),
        }
    }
    for (l, off, d) in [(2, GX, GX_DATA), (3, GY, GY_DATA)] {
        let held = mask & (1 << l) != 0;
        let m: *mut libc::pthread_mutex_t = gm.as_ptr().wrapping_add(off).cast();
        // SAFETY: an initialised robust pshared mutex in `gm`.
        let rc = unsafe { glibc_timedlock(m, LONG) };
        let want = if held { libc::EOWNERDEAD } else { 0 };
        assert_eq!(rc, want, "{} (held at death: {held})", LOCKS[l]);
        let mut b = [0u8; 8];
        gm.read_at(d, &mut b).unwrap();
        assert_eq!(i64::from_ne_bytes(b), data[l], "{}: data", LOCKS[l]);
        // SAFETY: this thread holds `m`.
        unsafe {
            if held && consistent {
                assert_eq!(libc::pthread_mutex_consistent(m), 0);
            }
            assert_eq!(libc::pthread_mutex_unlock(m), 0);
            let again = glibc_timedlock(m, LONG);
            if held && !consistent {
                assert_eq!(again, libc::ENOTRECOVERABLE, "{}", LOCKS[l]);
            } else {
                assert_eq!(again, 0, "{}", LOCKS[l]);
                assert_eq!(libc::pthread_mutex_unlock(m), 0);
            }
        }
    }
    "checked".to_owned()
}

mode_tests!(glibc_interleaved: glibc_interleaved_list, glibc_interleaved_fallback, children: roles);

// ===========================================================================
// Scenario 8: fork while held
// ===========================================================================

fn fork_while_held(test: &str, mode: Mode) {
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
fn forker(mode: Mode) {
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
    // list (list mode) / token (fallback), not the parent's.
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

mode_tests!(fork_while_held: fork_while_held_list, fork_while_held_fallback, children: roles);

// ===========================================================================
// Mode check of the machinery itself
// ===========================================================================

/// The children really run in the mode they were started in (each child
/// also asserts it at start).
#[test]
fn children_run_in_their_mode() {
    let test = "children_run_in_their_mode";
    if run_child(test, roles) {
        return;
    }
    for mode in [Mode::List, Mode::Fallback] {
        let mut s = start_server(test, mode);
        s.send("mode");
        assert_eq!(s.recv(), format!("{:?}", mode.expected()));
        s.wait();
    }
    assert_eq!(Mode::List.expected(), shmsync::Robustness::KernelList);
}

// ===========================================================================
// Soak: ≥ 1000 kill-while-held trials per mode
// ===========================================================================

/// `cargo test --release --test owner_death -- --ignored soak --nocapture`
/// (`SHMSYNC_OD_TRIALS=N` to change the count, `SHMSYNC_OD_SOAK_MODE=list`
/// or `fallback` for one mode only): the blocked-waiter and
/// the random-time kill scenarios, `SOAK_TRIALS` each per mode; prints
/// every failing trial and a summary, fails if any trial failed.
#[test]
#[ignore = "soak: minutes; run explicitly"]
fn soak() {
    let test = "soak";
    if run_child(test, roles) {
        return;
    }
    let n = trials(SOAK_TRIALS);
    let modes: &[Mode] = match std::env::var("SHMSYNC_OD_SOAK_MODE").as_deref() {
        Ok("list") => &[Mode::List],
        Ok("fallback") => &[Mode::Fallback],
        _ => &[Mode::List, Mode::Fallback],
    };
    let mut failures = Vec::new();
    for &mode in modes {
        let seed = Rng::seed();
        let mut rng = Rng::new(seed);
        let start = Instant::now();
        let mut ws = [start_server(test, mode), start_server(test, mode)];
        let mut server = start_server(test, mode);
        let mut died = 0;
        for trial in 0..n {
            let r = catch_unwind(AssertUnwindSafe(|| {
                trial_waiter_blocked(test, mode, trial, &mut ws)
            }));
            if let Err(e) = r {
                failures.push(format!(
                    "{mode:?} blocked-waiter trial {trial}: {}",
                    panic_msg(&e)
                ));
                ws = [start_server(test, mode), start_server(test, mode)];
            }
            let r = catch_unwind(AssertUnwindSafe(|| {
                trial_random_kill(test, mode, &mut rng, &mut server)
            }));
            match r {
                Ok(d) => died += usize::from(d),
                Err(e) => {
                    failures.push(format!(
                        "{mode:?} random-kill trial {trial} (SHMSYNC_OD_SEED={seed}): {}",
                        panic_msg(&e)
                    ));
                    server = start_server(test, mode);
                }
            }
        }
        for k in ws {
            k.wait();
        }
        server.wait();
        println!(
            "soak {mode:?}: {n} blocked-waiter + {n} random-kill trials ({died} OwnerDied) in {:?}",
            start.elapsed()
        );
    }
    for f in &failures {
        println!("FAILED: {f}");
    }
    assert!(failures.is_empty(), "{} failed trials", failures.len());
}

fn panic_msg(e: &Box<dyn std::any::Any + Send>) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "panic".to_owned())
}
