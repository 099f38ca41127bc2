//! The soak: at least 1000 kill-while-held trials per mode of the
//! blocked-waiter and the random-time kill scenarios.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use crate::common::owner_death::{trials, Mode, Rng};
use crate::{random_kill, waiter_blocked};
use crate::{start_server, SOAK_TRIALS};

/// `cargo test --release --test owner_death -- --ignored soak --nocapture`
/// (`SHMSYNC_OD_TRIALS=N` to change the count, `SHMSYNC_OD_SOAK_MODE=list`
/// or `fallback` for one mode only): [`waiter_blocked::trial`] and
/// [`random_kill::trial`], [`SOAK_TRIALS`] each per mode; prints every
/// failing trial and a summary, fails if any trial failed.
pub(crate) fn run(test: &str) {
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
                waiter_blocked::trial(test, mode, trial, &mut ws)
            }));
            if let Err(e) = r {
                failures.push(format!(
                    "{mode:?} blocked-waiter trial {trial}: {}",
                    panic_msg(&e)
                ));
                ws = [start_server(test, mode), start_server(test, mode)];
            }
            let r = catch_unwind(AssertUnwindSafe(|| {
                random_kill::trial(test, mode, &mut rng, &mut server)
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
