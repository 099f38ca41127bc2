//! `Event` across real processes: ping-pong, one `set` waking every waiter
//! of several processes, processes SIGKILLed inside `wait` and inside
//! `set`/`clear` (never blocking the others), timeouts, the kind check, and
//! an `#[ignore]`d random-kill soak (`soak_event`).

mod common;

use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::time::{Duration, Instant};

use common::owner_death::Rng;
use common::{arg, run_child, spawn, tell, wait_until, ShmName, HANG_LIMIT};
use shmsync::{AtomicValue, Error, Event, Lock, Value};

/// Where an event's word lies in its file (`docs/ARCHITECTURE.md`).
const WORD_OFFSET: u64 = 192;
/// The word's bits (`src/raw/event.rs`).
const SET: u32 = 1;
const WAITERS: u32 = 2;

/// The event word of the named event, as a peer reads it from the file.
fn word(name: &str) -> u32 {
    let mut b = [0u8; 4];
    common::shm_file(name)
        .read_exact_at(&mut b, WORD_OFFSET)
        .expect("read the event word");
    u32::from_ne_bytes(b)
}

/// Waits for `e` with a watchdog: a hang fails the test instead of
/// blocking it.
fn wait_watched(e: &Event, what: &str) {
    assert!(e.wait_timeout(HANG_LIMIT), "{what}: hung in wait");
}

#[test]
fn ping_pong_10000() {
    const ROUNDS: u64 = 10_000;
    if run_child("ping_pong_10000", |_| {
        let ping = Event::open(&arg("ping")).unwrap();
        let pong = Event::open(&arg("pong")).unwrap();
        let raw = AtomicValue::<u64>::open(&arg("raw")).unwrap();
        tell("ready");
        for i in 0..ROUNDS {
            wait_watched(&ping, "child");
            ping.clear();
            // Relaxed: ordered by the event (set's Release, wait's Acquire).
            assert_eq!(raw.load(Relaxed), 2 * i, "the parent's write is visible");
            raw.store(2 * i + 1, Relaxed);
            pong.set();
        }
    }) {
        return;
    }
    let names: Vec<ShmName> = (0..3).map(|_| ShmName::new("ev_pp")).collect();
    let ping = Event::create(&names[0]).unwrap();
    let pong = Event::create(&names[1]).unwrap();
    let raw = AtomicValue::<u64>::create(&names[2], 0).unwrap();
    let mut child = spawn("ping_pong_10000", "pong")
        .arg("ping", &*names[0])
        .arg("pong", &*names[1])
        .arg("raw", &*names[2])
        .start();
    child.expect("ready");
    for i in 0..ROUNDS {
        raw.store(2 * i, Relaxed);
        ping.set();
        wait_watched(&pong, "parent");
        pong.clear();
        assert_eq!(raw.load(Relaxed), 2 * i + 1, "the child's write is visible");
    }
    child.wait();
    drop((ping, pong, raw));
}

#[test]
fn one_set_wakes_eight_waiters_in_four_processes() {
    if run_child("one_set_wakes_eight_waiters_in_four_processes", |_| {
        let e = Event::open(&arg("ev")).unwrap();
        let waiting = AtomicValue::<u32>::open(&arg("waiting")).unwrap();
        let woken = AtomicValue::<u32>::open(&arg("woken")).unwrap();
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    waiting.fetch_add(1, Relaxed);
                    wait_watched(&e, "waiter");
                    woken.fetch_add(1, Relaxed);
                });
            }
        });
    }) {
        return;
    }
    let names: Vec<ShmName> = (0..3).map(|_| ShmName::new("ev_8")).collect();
    let e = Event::create(&names[0]).unwrap();
    let waiting = AtomicValue::<u32>::create(&names[1], 0).unwrap();
    let woken = AtomicValue::<u32>::create(&names[2], 0).unwrap();
    let kids: Vec<_> = (0..4)
        .map(|i| {
            spawn("one_set_wakes_eight_waiters_in_four_processes", "waiter")
                .note(&format!(" {i}"))
                .arg("ev", &*names[0])
                .arg("waiting", &*names[1])
                .arg("woken", &*names[2])
                .start()
        })
        .collect();
    wait_until("8 waiters", || (waiting.load(Relaxed) == 8).then_some(()));
    // Let them fall asleep (not needed for correctness: the test is that
    // the one set below releases them all, asleep or not).
    wait_until("WAITERS", || (word(&names[0]) & WAITERS != 0).then_some(()));
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(woken.load(Relaxed), 0, "nobody returns before the set");
    e.set();
    for k in kids {
        k.wait();
    }
    assert_eq!(woken.load(Relaxed), 8);
    drop((e, waiting, woken));
}

#[test]
fn a_waiter_killed_in_wait_never_blocks_the_others() {
    if run_child("a_waiter_killed_in_wait_never_blocks_the_others", |role| {
        let e = Event::open(&arg("ev")).unwrap();
        tell("waiting");
        match role {
            "victim" => {
                e.wait();
                panic!("the victim must be killed while waiting");
            }
            _ => wait_watched(&e, "survivor"),
        }
    }) {
        return;
    }
    let name = ShmName::new("ev_kw");
    let e = Event::create(&name).unwrap();
    let test = "a_waiter_killed_in_wait_never_blocks_the_others";
    let mut victim = spawn(test, "victim").arg("ev", &*name).start();
    victim.expect("waiting");
    wait_until("the victim asleep", || {
        (word(&name) & WAITERS != 0).then_some(())
    });
    std::thread::sleep(Duration::from_millis(5));
    victim.kill();
    // Another process and this one wait; one set releases both.
    let mut survivor = spawn(test, "survivor").arg("ev", &*name).start();
    survivor.expect("waiting");
    let e2 = e.clone();
    let here = std::thread::spawn(move || wait_watched(&e2, "parent thread"));
    e.set();
    survivor.wait();
    here.join().unwrap();
    // And the event keeps working.
    e.clear();
    assert!(!e.wait_timeout(Duration::from_millis(5)));
    e.set();
    wait_watched(&e, "parent");
    drop(e);
}

/// One trial: a process loops `set`/`clear` on a shared event and is
/// SIGKILLed at a random moment (maybe between raising the flag and
/// waking the sleepers), while another process loops `wait`. Afterwards
/// one `set` (maybe a no-op on a flag left raised) must release that
/// waiter, and a fresh wait on the set flag must return.
fn killed_setter_trial(test: &str, rng: &mut Rng) {
    let names: Vec<ShmName> = (0..2).map(|_| ShmName::new("ev_ks")).collect();
    let e = Event::create(&names[0]).unwrap();
    let stop = AtomicValue::<u32>::create(&names[1], 0).unwrap();
    let mut setter = spawn(test, "setter").arg("ev", &*names[0]).start();
    let mut waiter = spawn(test, "waiter")
        .arg("ev", &*names[0])
        .arg("stop", &*names[1])
        .start();
    setter.expect("ready");
    waiter.expect("ready");
    std::thread::sleep(Duration::from_micros(rng.below(20_000)));
    setter.kill();
    // Release: the waiter's Acquire load of `stop` after its wait returns.
    stop.store(1, Release);
    e.set();
    waiter.wait();
    assert!(e.is_set());
    wait_watched(&e, "parent");
    drop((e, stop));
}

fn killed_setter_roles(role: &str) {
    let e = Event::open(&arg("ev")).unwrap();
    match role {
        "setter" => {
            tell("ready");
            loop {
                e.set();
                e.clear();
            }
        }
        "waiter" => {
            let stop = AtomicValue::<u32>::open(&arg("stop")).unwrap();
            tell("ready");
            let start = Instant::now();
            // Acquire: pairs with the parent's Release store.
            while stop.load(Acquire) == 0 {
                assert!(start.elapsed() < HANG_LIMIT, "waiter hung");
                e.wait_timeout(HANG_LIMIT);
            }
        }
        r => panic!("unknown role {r}"),
    }
}

#[test]
fn a_setter_killed_in_set_never_strands_the_waiters() {
    let test = "a_setter_killed_in_set_never_strands_the_waiters";
    if run_child(test, killed_setter_roles) {
        return;
    }
    let seed = Rng::seed();
    let mut rng = Rng::new(seed);
    for _ in 0..5 {
        killed_setter_trial(test, &mut rng);
    }
}

/// `cargo test --release --test event -- --ignored soak_event --nocapture`
/// (`SHMSYNC_EVENT_TRIALS=N`, default 1000; `SHMSYNC_OD_SEED` replays).
#[test]
#[ignore]
fn soak_event() {
    let test = "soak_event";
    if run_child(test, killed_setter_roles) {
        return;
    }
    let n: usize = std::env::var("SHMSYNC_EVENT_TRIALS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let seed = Rng::seed();
    let mut rng = Rng::new(seed);
    let start = Instant::now();
    for trial in 0..n {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            killed_setter_trial(test, &mut rng)
        }));
        assert!(r.is_ok(), "trial {trial} failed (SHMSYNC_OD_SEED={seed})");
    }
    println!(
        "soak_event: {n} killed-setter trials in {:?}",
        start.elapsed()
    );
}

#[test]
fn wait_timeout_returns_and_saturates() {
    let e = Event::new().unwrap();
    let t = Instant::now();
    assert!(!e.wait_timeout(Duration::from_millis(30)));
    assert!(
        t.elapsed() >= Duration::from_millis(30),
        "not before its time"
    );
    assert!(!e.wait_timeout(Duration::ZERO));
    // Duration::MAX cannot be added to the clock: waits until set.
    let e2 = e.clone();
    let t = std::thread::spawn(move || e2.wait_timeout(Duration::MAX));
    std::thread::sleep(Duration::from_millis(5));
    e.set();
    assert!(t.join().unwrap());
    assert!(e.wait_timeout(Duration::MAX));
}

#[test]
fn set_on_a_set_event_and_is_set_write_nothing() {
    let name = ShmName::new("ev_nw");
    let e = Event::create(&name).unwrap();
    assert_eq!(word(&name), 0);
    assert!(!e.is_set());
    e.clear();
    assert_eq!(word(&name), 0, "clearing a clear event writes nothing");
    e.set();
    let w = word(&name);
    assert_eq!(w & SET, SET);
    e.set();
    assert!(e.is_set());
    assert_eq!(word(&name), w, "a second set changes nothing");
    drop(e);
}

#[test]
fn a_scribbled_word_never_hangs_or_panics() {
    let name = ShmName::new("ev_scr");
    let e = Event::create(&name).unwrap();
    let f = common::shm_file(&name);
    let bytes = common::random_bytes(4 * 64);
    for (i, c) in bytes.chunks(4).enumerate() {
        let mut v = u32::from_ne_bytes(c.try_into().unwrap());
        if i < 4 {
            v = [0, u32::MAX, !SET, !WAITERS][i];
        }
        f.write_all_at(&v.to_ne_bytes(), WORD_OFFSET).unwrap();
        assert_eq!(e.is_set(), v & SET != 0);
        assert_eq!(e.wait_timeout(Duration::from_millis(1)), v & SET != 0);
        e.set();
        assert!(e.is_set());
        wait_watched(&e, "scribbled");
        e.clear();
        assert!(!e.wait_timeout(Duration::from_millis(1)));
    }
    drop(e);
}

#[test]
fn opening_as_the_wrong_kind_is_type_mismatch() {
    let (a, b) = (ShmName::new("ev_k"), ShmName::new("ev_k"));
    let e = Event::create(&a).unwrap();
    let l = Lock::create(&b).unwrap();
    assert!(matches!(Lock::open(&a), Err(Error::TypeMismatch { .. })));
    assert!(matches!(
        Value::<u32>::open(&a),
        Err(Error::TypeMismatch { .. })
    ));
    assert!(matches!(Event::open(&b), Err(Error::TypeMismatch { .. })));
    let again = Event::open(&a).unwrap();
    again.set();
    assert!(e.is_set());
    drop((e, l, again));
}
