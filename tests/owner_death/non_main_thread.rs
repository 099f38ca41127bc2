//! The owner is a non-main thread of a multi-threaded process, SIGKILLed
//! with a waiter already asleep on the lock or arriving after the death.

use std::sync::{mpsc, Arc};

use shmsync::raw::TID_MASK;
use shmsync::Value;

use crate::common::owner_death::{trials, Mode};
use crate::common::{arg, arg_parse, block_until_killed, gettid, spawn, tell};
use crate::{start_server, Trial, TRIALS};

pub(crate) fn scenario(test: &str, mode: Mode) {
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
pub(crate) fn mt_holder() {
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
