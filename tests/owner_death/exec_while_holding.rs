//! The holder `execve()`s while holding, from the main thread of a
//! single-threaded child (a pre-`main` role) or from libtest's test
//! thread: the lock is recovered while the exec'd program still runs (by
//! the kernel at exec for the main thread in list mode, by the liveness
//! byte, closed at close-on-exec, otherwise).

use std::os::unix::process::CommandExt as _;

use shmsync::raw::{OWNER_DIED, TID_MASK};
use shmsync::Value;

use crate::common::owner_death::{trials, Mode};
use crate::common::{arg, arg_parse, await_msg, gettid, spawn, tell, wait_until};
use crate::{start_server, Trial, TRIALS};

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

pub(crate) fn scenario(test: &str, mode: Mode) {
    let mut server = start_server(test, mode);
    for trial in 0..trials(TRIALS) {
        // The exec'ing thread: the process's main thread (a single-threaded
        // child), or libtest's test thread (the kernel then cannot match the
        // word's TID: the liveness byte recovers it).
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
        // Recovered while the exec'd program still runs (close-on-exec
        // releases the liveness byte just before the kernel renames the
        // process: the rename may trail the recovery by a moment).
        wait_for_sleep(pid);
        assert!(h.running(), "the exec'd holder still runs");
        h.kill();
        t.check_after();
    }
    server.wait();
}

pub(crate) fn exec_holder() {
    let v = Value::<i64>::open(&arg("NAME")).unwrap();
    let g = v.lock().unwrap();
    g.set(arg_parse("VAL"));
    tell(&format!("held {}", gettid()));
    await_msg("exec");
    let err = std::process::Command::new("sleep").arg("30").exec();
    drop(g);
    panic!("exec failed: {err}");
}
