//! Owner death when the waiting process has the segment open twice.
//!
//! Liveness is an open-file-description lock on a per-thread byte of the
//! segment file. A process that opens the same segment twice must share one
//! description between its handles: two descriptions of its own would
//! conflict over the thread's byte, and the process would have to declare
//! itself unaccountable, which stops every waiter from judging dead owners.

mod common;

use std::time::Duration;

use common::owner_death::{expect_owner_died, Mode};
use common::{arg, block_until_killed, run_child, spawn, tell, ShmName};
use shmsync::RLock;

#[test]
fn dead_fallback_owner_is_recovered_by_a_process_with_two_handles() {
    const TEST: &str = "dead_fallback_owner_is_recovered_by_a_process_with_two_handles";
    if run_child(TEST, |_| {
        // On the fallback path (checked by `run_child`): lock, report,
        // wait to be killed.
        let lock = RLock::open(&arg("NAME")).unwrap();
        let _g = lock.lock().unwrap();
        tell("locked");
        block_until_killed();
    }) {
        return;
    }
    let name = ShmName::new("reopen");
    let first = RLock::create(&name).unwrap();
    let second = RLock::open(&name).unwrap();
    // This thread locks through both handles (taking its liveness byte on
    // the file through each of them).
    drop(first.lock().unwrap());
    drop(second.lock().unwrap());
    {
        let _a = first.lock().unwrap();
        let _b = second.lock().unwrap(); // the same lock: recursion
    }

    let mut child = spawn(TEST, "holder")
        .mode(Mode::Fallback)
        .arg("NAME", &*name)
        .start();
    child.expect("locked");
    child.kill();

    // The kernel does not mark a fallback owner's word: only the liveness
    // probe of this (twice-attached) process can recover it.
    let g = expect_owner_died(
        "lock_timeout(10 s) after the owner died",
        second.lock_timeout(Duration::from_secs(10)),
    );
    g.mark_consistent();
    drop(g);
    assert!(first.try_lock().is_ok());
    drop((first, second));
    common::assert_gone(&name);
}
