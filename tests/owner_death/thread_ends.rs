//! A thread ends while holding (its guard forgotten) and its process lives
//! on: another thread of the process, asleep on the lock when the first
//! ends or arriving after, gets `OwnerDied`.

use std::sync::{mpsc, Arc};

use shmsync::Value;

use crate::checks::{check_value_after, check_word_after_death, lock_verdict};
use crate::common::owner_death::{trials, Mode, Peek};
use crate::common::{arg, gettid, spawn, tell, ShmName};
use crate::TRIALS;

pub(crate) fn scenario(test: &str, mode: Mode) {
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
pub(crate) fn thread_exit(mode: Mode) {
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
