//! Owner death when the waiting process has the segment open twice.
//!
//! Liveness is an open-file-description lock on a per-thread byte of the
//! segment file. A process that opens the same segment twice must share one
//! description between its handles: two descriptions of its own would
//! conflict over the thread's byte, and the process would have to declare
//! itself unaccountable, which stops every waiter from judging dead owners.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use shmsync::{RLock, TryLockError};

const ROLE: &str = "SHMSYNC_REOPEN_ROLE";

#[test]
fn dead_fallback_owner_is_recovered_by_a_process_with_two_handles() {
    if let Ok(name) = std::env::var(ROLE) {
        // Child, on the fallback path: lock, report, wait to be killed.
        assert_eq!(shmsync::robustness(), shmsync::Robustness::Fallback);
        let lock = RLock::open(&name).unwrap();
        let g = lock.lock().unwrap();
        println!("locked");
        std::thread::sleep(Duration::from_secs(60));
        drop(g);
        return;
    }
    let name = format!("shmsync_t_reopen_{}", std::process::id());
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

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "dead_fallback_owner_is_recovered_by_a_process_with_two_handles",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE, &name)
        .env("SHMSYNC_ROBUST", "fallback")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("locked") {
        line.clear();
        assert_ne!(out.read_line(&mut line).unwrap(), 0, "child ended early");
    }
    child.kill().unwrap();
    child.wait().unwrap();

    // The kernel does not mark a fallback owner's word: only the liveness
    // probe of this (twice-attached) process can recover it.
    match second.lock_timeout(Duration::from_secs(10)) {
        Err(TryLockError::OwnerDied(g)) => g.mark_consistent(),
        Err(TryLockError::WouldBlock) => panic!("dead owner not detected within 10 s"),
        other => panic!("expected OwnerDied, got {other:?}"),
    }
    assert!(first.try_lock().is_ok());
    drop((first, second));
    assert!(!std::path::Path::new(&format!("/dev/shm/{name}")).exists());
}
