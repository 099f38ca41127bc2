//! Holders SIGKILLed at random moments while they loop lock / update /
//! unlock (`SHMSYNC_OD_SEED` replays a run): the lock is never left held
//! and the data is at most one step torn.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use shmsync::{Array, ArrayGuard, TryLockError};

use crate::common::owner_death::{assert_ok, trials, Mode, Outcome as _, Peek, Rng};
use crate::common::{arg, spawn, tell, Child, ShmName};
use crate::{start_server, LONG, TRIALS};

pub(crate) fn scenario(test: &str, mode: Mode) {
    let seed = Rng::seed();
    let mut rng = Rng::new(seed);
    let mut server = start_server(test, mode);
    let mut died = 0;
    // Cheap trials, and the windows they aim at are narrow: three times as
    // many as the other scenarios.
    let n = trials(3 * TRIALS);
    for i in 0..n {
        let r = catch_unwind(AssertUnwindSafe(|| {
            trial(test, mode, &mut rng, &mut server)
        }));
        match r {
            Ok(owner_died) => died += usize::from(owner_died),
            Err(e) => {
                eprintln!("random_kill {mode:?}: trial {i} failed (SHMSYNC_OD_SEED={seed})");
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
pub(crate) fn trial(test: &str, mode: Mode, rng: &mut Rng, server: &mut Child) -> bool {
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

pub(crate) fn looper() {
    let a = Array::<i64>::open(&arg("NAME")).unwrap();
    tell("looping");
    let mut k = 0u64;
    loop {
        k += 1;
        // Each entry point in turn (`lock`'s result widened to
        // `try_lock`'s; it never is `WouldBlock`).
        let (how, r) = match k % 3 {
            0 => ("try_lock", a.try_lock()),
            1 => ("lock_timeout", a.lock_timeout(Duration::from_millis(1))),
            _ => ("lock", a.lock().widen()),
        };
        let g = match r {
            Ok(g) => g,
            Err(TryLockError::WouldBlock) => continue,
            Err(TryLockError::OwnerDied(g)) => {
                repair_pair(&g);
                g
            }
            Err(e) => panic!("looper {how}: {e:?}"),
        };
        let n = g.get(0) + 1;
        g.set(0, n);
        g.set(1, n);
    }
}

/// Server command `after NAME`.
pub(crate) fn after_random_kill(name: &str) -> String {
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
