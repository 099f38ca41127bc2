//! Owner death across real processes, in both robustness modes (the
//! kernel's robust list, and the liveness-byte fallback forced with
//! `SHMSYNC_ROBUST=fallback`): a lock whose holder dies is recovered, the
//! first locker after the death — and only it — gets `OwnerDied` with a
//! guard, the protected data stays readable, and `mark_consistent` /
//! `NotRecoverable` behave as POSIX robust mutexes do.
//!
//! Every scenario runs [`TRIALS`] times per mode (`SHMSYNC_OD_TRIALS`
//! overrides). `cargo test --test owner_death -- --ignored soak` runs the
//! kill-while-held soak (1000 trials per mode and scenario by default).
//!
//! One module per scenario, named like its tests (`waiter_blocked.rs` for
//! `waiter_blocked_list` and `waiter_blocked_fallback`): the scenario, its
//! trial, and the child roles and server commands only it uses. This file
//! holds the list of tests, the child-role dispatcher, the long-lived
//! `server` child and what several scenarios share ([`Trial`], the
//! `holder` child); `checks.rs` what a process sees after a death,
//! `objects.rs` the value or array a trial's holder dies holding. The
//! child-process machinery is in `tests/common/mod.rs` (shared with the
//! other cross-process suites), the owner-death specifics (modes, lock-word
//! peeks, locking outcomes, random trials) in `tests/common/owner_death.rs`.

#[path = "../common/mod.rs"]
mod common;

mod checks;
mod objects;

mod dead_before_lock;
mod exec_while_holding;
mod fork_while_held;
mod glibc_interleaved;
mod non_main_thread;
mod random_kill;
mod soak;
mod thread_ends;
mod waiter_blocked;

use std::sync::mpsc;
use std::time::Duration;

use common::owner_death::{mode_tests, Mode, Peek};
use common::{arg, arg_parse, block_until_killed, gettid, run_child, spawn, tell, Child, ShmName};
use shmsync::Value;

use checks::{check_value_after, lock_verdict};
use objects::Obj;

/// Trials per scenario and mode in `cargo test`.
const TRIALS: usize = 20;
/// Trials per scenario and mode in the soak.
const SOAK_TRIALS: usize = 1000;
/// A bound that is never reached when recovery works ("nothing hangs").
const LONG: Duration = Duration::from_secs(10);

// ===========================================================================
// The tests: one pair per scenario (its module), one per mode
// ===========================================================================

mode_tests! {
    children: roles;
    // A holder SIGKILLed while waiters (other processes) are blocked.
    waiter_blocked::scenario: waiter_blocked_list, waiter_blocked_fallback;
    // A holder dead before anyone locks; every entry point reports it.
    dead_before_lock::scenario: dead_before_lock_list, dead_before_lock_fallback;
    // Holders killed at random times while looping lock/unlock.
    random_kill::scenario: random_kill_list, random_kill_fallback;
    // The owner is a non-main thread of a multi-threaded process.
    non_main_thread::scenario: non_main_thread_list, non_main_thread_fallback;
    // A thread (not the process) ends while holding.
    thread_ends::scenario: thread_ends_list, thread_ends_fallback;
    // The holder execve()s while holding.
    exec_while_holding::scenario: exec_while_holding_list, exec_while_holding_fallback;
    // glibc robust pthread mutexes held in the same thread as ours.
    glibc_interleaved::scenario: glibc_interleaved_list, glibc_interleaved_fallback;
    // A single-threaded holder forks.
    fork_while_held::scenario: fork_while_held_list, fork_while_held_fallback;
}

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

/// The soak ([`soak::run`]): `cargo test --release --test owner_death --
/// --ignored soak --nocapture`.
#[test]
#[ignore = "soak: minutes; run explicitly"]
fn soak() {
    let test = "soak";
    if !run_child(test, roles) {
        soak::run(test);
    }
}

// ===========================================================================
// Child roles (one dispatcher for every test)
// ===========================================================================

/// Runs `role` in a child process started for any test of this suite.
fn roles(role: &str) {
    let mode = Mode::of_child();
    match role {
        "server" => server(mode),
        "holder" => hold_and_block(),
        "looper" => random_kill::looper(),
        "mt_holder" => non_main_thread::mt_holder(),
        "exec_holder" => exec_while_holding::exec_holder(),
        "thread_exit" => thread_ends::thread_exit(mode),
        "interleave" => glibc_interleaved::interleave(mode),
        r => panic!("unknown role {r}"),
    }
}

// Single-threaded children (`Spawn::premain`): the role runs before
// libtest starts, in the main thread.
common::premain!(|role| match role {
    "exec_holder" => exec_while_holding::exec_holder(),
    "forker" => fork_while_held::forker(Mode::of_child()),
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
            "first" => dead_before_lock::first_locker(&w[1..]),
            "after" => random_kill::after_random_kill(w[1]),
            "glibc" => glibc_interleaved::glibc_check(&w[1..]),
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
