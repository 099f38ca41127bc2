//! `Semaphore` and `BoundedSemaphore` across real processes: a bounded
//! buffer (2 producers × 2 consumers), over-release and maximum errors,
//! timeouts, a holder SIGKILLed with a permit (the permit comes back and
//! the recovery is reported, in both robustness modes), a forgotten permit
//! (not recovered), scribbled words, the kind check, and a random-kill
//! trial (`#[ignore]`d soak: `soak_semaphore`).

mod common;

use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::time::{Duration, Instant};

use common::owner_death::{mode_tests, Mode, Rng};
use common::{arg, arg_parse, block_until_killed, run_child, spawn, tell, ShmName, HANG_LIMIT};
use shmsync::{AtomicValue, BoundedSemaphore, Error, Event, Lock, RawArray, Semaphore};

/// Where a semaphore's count word lies in its file, and its first holder
/// record (`docs/ARCHITECTURE.md`, "The semaphore").
const COUNT_OFFSET: u64 = 192;
const RECORDS_OFFSET: u64 = 192 + 16 * 4;

/// The word at `off` of the named segment, as a peer reads it.
fn word_at(name: &str, off: u64) -> u32 {
    let mut b = [0u8; 4];
    common::shm_file(name)
        .read_exact_at(&mut b, off)
        .expect("read a semaphore word");
    u32::from_ne_bytes(b)
}

/// A permit within the watchdog, or a failed test.
fn take<'a>(s: &'a Semaphore, what: &str) -> shmsync::Permit<'a> {
    s.acquire_timeout(HANG_LIMIT)
        .unwrap_or_else(|| panic!("{what}: hung in acquire"))
}

fn take_bounded<'a>(s: &'a BoundedSemaphore, what: &str) -> shmsync::Permit<'a> {
    s.acquire_timeout(HANG_LIMIT)
        .unwrap_or_else(|| panic!("{what}: hung in acquire"))
}

/// Slots of the bounded buffer.
const SLOTS: usize = 8;
/// Items each producer puts (each consumer takes as many).
const PER_PRODUCER: u64 = 50_000;
/// Where the put and take counters live in the buffer's array.
const PUT: usize = SLOTS;
const TAKE: usize = SLOTS + 1;

#[test]
fn bounded_buffer_2_producers_2_consumers() {
    let test = "bounded_buffer_2_producers_2_consumers";
    if run_child(test, |role| {
        let empty = BoundedSemaphore::open(&arg("empty")).unwrap();
        let full = Semaphore::open(&arg("full")).unwrap();
        let lock = Lock::open(&arg("lock")).unwrap();
        let buf = RawArray::<u64>::open(&arg("buf")).unwrap();
        let seen = RawArray::<u8>::open(&arg("seen")).unwrap();
        let who: u64 = arg_parse("who");
        common::ready_go();
        for i in 0..PER_PRODUCER {
            if role == "producer" {
                take_bounded(&empty, "producer").forget();
                {
                    let _g = lock.lock().unwrap();
                    let put = buf.get(PUT);
                    buf.set(put as usize % SLOTS, who * PER_PRODUCER + i);
                    buf.set(PUT, put + 1);
                }
                full.release().unwrap();
            } else {
                take(&full, "consumer").forget();
                {
                    let _g = lock.lock().unwrap();
                    let t = buf.get(TAKE);
                    let item = buf.get(t as usize % SLOTS) as usize;
                    buf.set(TAKE, t + 1);
                    seen.set(item, seen.get(item).wrapping_add(1));
                    assert!(
                        buf.get(PUT) > t,
                        "a consumer took a slot no producer filled"
                    );
                }
                empty.release().unwrap();
            }
        }
    }) {
        return;
    }
    let names: Vec<ShmName> = (0..5).map(|_| ShmName::new("sem_bb")).collect();
    let total = 2 * PER_PRODUCER as usize;
    let empty = BoundedSemaphore::create(&names[0], SLOTS as u32).unwrap();
    let full = Semaphore::create(&names[1], 0).unwrap();
    let lock = Lock::create(&names[2]).unwrap();
    let buf = RawArray::<u64>::create(&names[3], &[0; SLOTS + 2]).unwrap();
    let seen = RawArray::<u8>::create(&names[4], &vec![0; total]).unwrap();
    let start = Instant::now();
    common::run_together(4, |i| {
        let role = if i < 2 { "producer" } else { "consumer" };
        spawn(test, role)
            .note(&format!(" {i}"))
            .arg("empty", &*names[0])
            .arg("full", &*names[1])
            .arg("lock", &*names[2])
            .arg("buf", &*names[3])
            .arg("seen", &*names[4])
            .arg("who", i % 2)
    });
    println!("bounded buffer: {total} items in {:?}", start.elapsed());
    let seen_v = seen.to_vec();
    let bad: Vec<usize> = (0..total).filter(|&i| seen_v[i] != 1).collect();
    assert!(
        bad.is_empty(),
        "{} items not consumed exactly once (first: {:?}, seen {})",
        bad.len(),
        bad.first(),
        bad.first().map_or(0, |&i| seen_v[i])
    );
    assert_eq!(buf.get(PUT), total as u64);
    assert_eq!(buf.get(TAKE), total as u64);
    assert_eq!(empty.value(), SLOTS as u32);
    assert_eq!(full.value(), 0);
    drop((empty, full, lock, buf, seen));
}

#[test]
fn bounded_semaphore_over_release_errors_in_every_process() {
    let test = "bounded_semaphore_over_release_errors_in_every_process";
    if run_child(test, |_| {
        let s = BoundedSemaphore::open(&arg("sem")).unwrap();
        assert_eq!(s.value(), 1, "the parent took one");
        s.release().unwrap();
        assert!(matches!(s.release(), Err(Error::InvalidArgument(_))));
        assert!(matches!(s.release_n(1), Err(Error::InvalidArgument(_))));
        assert_eq!(s.value(), 2, "an over-release changes nothing");
    }) {
        return;
    }
    let name = ShmName::new("sem_over");
    let s = BoundedSemaphore::create(&name, 2).unwrap();
    assert!(matches!(s.release(), Err(Error::InvalidArgument(_))));
    s.acquire().forget();
    spawn(test, "child").arg("sem", &*name).start().wait();
    assert_eq!(s.value(), 2);
    // release_n past the bound: nothing changes.
    let (a, b) = (s.acquire(), s.acquire());
    a.forget();
    b.forget();
    assert!(s.release_n(3).is_err());
    assert_eq!(s.value(), 0);
    s.release_n(2).unwrap();
    assert_eq!(s.value(), 2);
    assert!(matches!(s.release_n(0), Err(Error::InvalidArgument(_))));
    // A permit whose return would exceed the bound is discarded.
    let p = s.acquire();
    s.release().unwrap();
    drop(p);
    assert_eq!(s.value(), 2);
    // Bound 0: nothing to release ever.
    let z = BoundedSemaphore::new(0).unwrap();
    assert!(z.release().is_err());
    assert!(z.try_acquire().is_none());
    drop(s);
}

#[test]
fn semaphore_counts_to_its_maximum_and_errors_past_it() {
    assert_eq!(Semaphore::MAX_VALUE, i32::MAX as u32);
    assert!(matches!(
        Semaphore::new(Semaphore::MAX_VALUE + 1),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        BoundedSemaphore::new(u32::MAX),
        Err(Error::InvalidArgument(_))
    ));
    let name = ShmName::new("sem_max");
    assert!(matches!(
        Semaphore::create(&name, u32::MAX),
        Err(Error::InvalidArgument(_))
    ));
    assert!(!name.exists(), "a refused create leaves no file");
    let s = Semaphore::create(&name, Semaphore::MAX_VALUE - 2).unwrap();
    s.release_n(2).unwrap();
    assert_eq!(s.value(), Semaphore::MAX_VALUE);
    assert!(matches!(s.release(), Err(Error::InvalidArgument(_))));
    assert!(matches!(
        s.release_n(u32::MAX),
        Err(Error::InvalidArgument(_))
    ));
    assert_eq!(s.value(), Semaphore::MAX_VALUE);
    let other = Semaphore::open(&name).unwrap();
    assert!(
        other.release().is_err(),
        "the maximum holds in every handle"
    );
    let p = s.acquire();
    assert_eq!(s.value(), Semaphore::MAX_VALUE - 1);
    drop(p);
    assert_eq!(s.value(), Semaphore::MAX_VALUE);
    drop((s, other));
}

#[test]
fn timeouts_return_after_roughly_their_time() {
    let s = Semaphore::new(0).unwrap();
    for ms in [0u64, 30, 120] {
        let t = Instant::now();
        assert!(s.acquire_timeout(Duration::from_millis(ms)).is_none());
        let took = t.elapsed();
        assert!(took >= Duration::from_millis(ms), "{ms} ms: returned early");
        assert!(
            took < Duration::from_millis(ms) + Duration::from_secs(5),
            "{ms} ms: took {took:?}"
        );
    }
    assert!(s.try_acquire().is_none());
    // Released from another thread before the timeout: taken.
    let s2 = s.clone();
    let t = std::thread::spawn(move || s2.acquire_timeout(HANG_LIMIT).map(|p| p.forget()));
    std::thread::sleep(Duration::from_millis(10));
    s.release().unwrap();
    assert!(t.join().unwrap().is_some());
    // Duration::MAX cannot be added to the clock: waits until released.
    let s2 = s.clone();
    let t = std::thread::spawn(move || s2.acquire_timeout(Duration::MAX).map(|p| p.forget()));
    std::thread::sleep(Duration::from_millis(5));
    s.release().unwrap();
    assert!(t.join().unwrap().is_some());
    assert_eq!(s.value(), 0);
}

/// The child roles of the death scenarios.
fn death_roles(role: &str) {
    let s = Semaphore::open(&arg("sem")).unwrap();
    match role {
        "holder" => {
            let p = s.acquire();
            assert!(p.is_recorded());
            tell(&format!("held {}", common::gettid()));
            block_until_killed();
        }
        "forgetter" => {
            s.acquire().forget();
            assert!(!s.take()); // taken for good too, without a record
            let _kept = s.acquire();
            tell("held");
            block_until_killed();
        }
        "waiter" => {
            tell("waiting");
            let p = take(&s, "waiter");
            tell(&format!("recovered={}", p.recovered()));
        }
        r => panic!("unknown role {r}"),
    }
}

/// A holder SIGKILLed with a `Permit`: a waiter asleep in another process
/// gets the permit back and is told so; the semaphore is whole again.
fn holder_killed(test: &str, mode: Mode) {
    let name = ShmName::new("sem_kill");
    let s = Semaphore::create(&name, 1).unwrap();
    let mut holder = spawn(test, "holder").mode(mode).arg("sem", &*name).start();
    let tid: u32 = holder.expect_prefixed("held ").parse().unwrap();
    assert_eq!(s.value(), 0);
    let rec = word_at(&name, RECORDS_OFFSET);
    assert_eq!(rec & ((1 << 22) - 1), tid, "the record names it");
    assert_eq!(rec >> 22, 1, "holding one permit");
    let mut waiter = spawn(test, "waiter").mode(mode).arg("sem", &*name).start();
    waiter.expect("waiting");
    common::wait_until("the waiter asleep", || {
        (word_at(&name, COUNT_OFFSET) & 0x8000_0000 != 0).then_some(())
    });
    assert!(s.try_acquire().is_none(), "no permit while it lives");
    holder.kill();
    assert_eq!(waiter.expect_prefixed("recovered="), "true");
    waiter.wait();
    assert_eq!(s.value(), 1, "the permit is back");
    let p = s.try_acquire().expect("one permit");
    assert!(!p.recovered(), "recovered once only");
    drop(p);
    assert_eq!(
        word_at(&name, RECORDS_OFFSET),
        0,
        "the dead's record is free"
    );
    drop(s);
}

/// A holder SIGKILLed with one forgotten permit, one taken by `take` and
/// one `Permit`: only the latter comes back, found by a `try_acquire` (no
/// waiter asleep).
fn forgotten_not_recovered(test: &str, mode: Mode) {
    let name = ShmName::new("sem_forget");
    let s = Semaphore::create(&name, 3).unwrap();
    let mut holder = spawn(test, "forgetter")
        .mode(mode)
        .arg("sem", &*name)
        .start();
    holder.expect("held");
    assert_eq!(s.value(), 0);
    holder.kill();
    let p = common::wait_until("the recovered permit", || s.try_acquire());
    assert!(p.recovered());
    assert!(
        s.acquire_timeout(Duration::from_millis(100)).is_none(),
        "the forgotten and taken permits stay taken"
    );
    drop(p);
    assert_eq!(s.value(), 1);
    // What the consumers of the forgotten and taken ones would do.
    s.release_n(2).unwrap();
    assert_eq!(s.value(), 3);
    // `take` itself recovers a dead holder's permit.
    let mut again = spawn(test, "holder").mode(mode).arg("sem", &*name).start();
    again.expect_prefixed("held ");
    assert_eq!(s.value(), 2);
    assert_eq!(s.try_take(), Some(false));
    assert_eq!(s.try_take(), Some(false));
    assert_eq!(s.try_take(), None, "the holder lives");
    again.kill();
    assert!(common::wait_until("the recovered permit", || s.try_take()));
    s.release_n(3).unwrap();
    assert_eq!(s.value(), 3);
    drop(s);
}

mode_tests! {
    children: death_roles;
    holder_killed: holder_killed_list, holder_killed_fallback;
    forgotten_not_recovered: forgotten_not_recovered_list, forgotten_not_recovered_fallback;
}

/// Permits of the trial semaphore, and its workers.
const TRIAL_PERMITS: u32 = 2;
const TRIAL_WORKERS: usize = 4;

fn kill_roles(_role: &str) {
    let s = Semaphore::open(&arg("sem")).unwrap();
    let stop = AtomicValue::<u32>::open(&arg("stop")).unwrap();
    let work = AtomicValue::<u64>::open(&arg("work")).unwrap();
    tell("ready");
    let mut i = 0u64;
    let start = Instant::now();
    // Acquire: pairs with the parent's Release store.
    while stop.load(Acquire) == 0 {
        assert!(start.elapsed() < HANG_LIMIT, "worker hung");
        i += 1;
        if i % 3 == 0 {
            // A forgotten permit, given back by release().
            if let Some(p) = s.acquire_timeout(Duration::from_millis(200)) {
                p.forget();
                assert!(s.value() < TRIAL_PERMITS);
                s.release().unwrap();
            }
        } else if let Some(p) = s.acquire_timeout(Duration::from_millis(200)) {
            assert!(s.value() < TRIAL_PERMITS, "more permits than there are");
            work.fetch_add(1, Relaxed);
            drop(p);
        }
    }
}

/// One trial: workers loop acquire/release on a semaphore of 2 permits;
/// one is SIGKILLed at a random moment. The others never hang; afterwards
/// the permits that can be taken are never more than 2, and at least 1
/// (a death loses at most one permit: `docs/ARCHITECTURE.md`).
fn kill_trial(test: &str, mode: Mode, rng: &mut Rng) {
    let names: Vec<ShmName> = (0..3).map(|_| ShmName::new("sem_kt")).collect();
    let s = Semaphore::create(&names[0], TRIAL_PERMITS).unwrap();
    let stop = AtomicValue::<u32>::create(&names[1], 0).unwrap();
    let work = AtomicValue::<u64>::create(&names[2], 0).unwrap();
    let mut kids: Vec<_> = (0..TRIAL_WORKERS)
        .map(|i| {
            spawn(test, "worker")
                .mode(mode)
                .note(&format!(" {i}"))
                .arg("sem", &*names[0])
                .arg("stop", &*names[1])
                .arg("work", &*names[2])
                .start()
        })
        .collect();
    for k in &mut kids {
        k.expect("ready");
    }
    std::thread::sleep(Duration::from_micros(rng.below(20_000)));
    let victim = kids.remove(rng.below(TRIAL_WORKERS as u64) as usize);
    victim.kill_any();
    // Let the survivors run on (and recover) for a while.
    let w = work.load(Relaxed);
    common::wait_until("progress after the kill", || {
        (work.load(Relaxed) > w + 20).then_some(())
    });
    // Release: the workers' Acquire loads of `stop`.
    stop.store(1, Release);
    for k in kids {
        k.wait();
    }
    let mut got = Vec::new();
    while let Some(p) = s.try_acquire() {
        got.push(p);
        assert!(got.len() as u32 <= TRIAL_PERMITS, "a permit counted twice");
    }
    assert!(
        got.len() as u32 >= TRIAL_PERMITS - 1,
        "more than one permit lost to one death"
    );
    drop(got);
    drop((s, stop, work));
}

fn kill_trials(test: &str, mode: Mode) {
    let seed = Rng::seed();
    let mut rng = Rng::new(seed);
    for trial in 0..3 {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            kill_trial(test, mode, &mut rng)
        }));
        assert!(r.is_ok(), "trial {trial} failed (SHMSYNC_OD_SEED={seed})");
    }
}

mode_tests! {
    children: kill_roles;
    kill_trials: random_kill_list, random_kill_fallback;
}

/// `cargo test --release --test semaphore -- --ignored soak_semaphore --nocapture`
/// (`SHMSYNC_SEM_TRIALS=N`, default 300 per mode; `SHMSYNC_OD_SEED` replays).
#[test]
#[ignore]
fn soak_semaphore() {
    let test = "soak_semaphore";
    if run_child(test, kill_roles) {
        return;
    }
    let n: usize = std::env::var("SHMSYNC_SEM_TRIALS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let seed = Rng::seed();
    let mut rng = Rng::new(seed);
    let start = Instant::now();
    for mode in [Mode::List, Mode::Fallback] {
        for trial in 0..n {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                kill_trial(test, mode, &mut rng)
            }));
            assert!(
                r.is_ok(),
                "{mode:?} trial {trial} failed (SHMSYNC_OD_SEED={seed})"
            );
        }
    }
    println!(
        "soak_semaphore: {n} random-kill trials per mode in {:?}",
        start.elapsed()
    );
}

#[test]
fn scribbled_words_never_hang_panic_or_exceed_the_bound() {
    let name = ShmName::new("sem_scr");
    let s = BoundedSemaphore::create(&name, 3).unwrap();
    let f = common::shm_file(&name);
    let bytes = common::random_bytes(4 * 64);
    for (i, c) in bytes.chunks(4).enumerate() {
        let mut v = u32::from_ne_bytes(c.try_into().unwrap());
        if i < 4 {
            v = [0, u32::MAX, 0x8000_0000, 0x7fff_ffff][i];
        }
        f.write_all_at(&v.to_ne_bytes(), COUNT_OFFSET).unwrap();
        // Records naming anybody (dead or never alive) holding anything.
        for r in 0..4u64 {
            let rv = v.rotate_left(r as u32 * 7) ^ (r as u32);
            f.write_all_at(&rv.to_ne_bytes(), RECORDS_OFFSET + 4 * r)
                .unwrap();
        }
        let _ = s.value();
        let p = s.acquire_timeout(Duration::from_millis(1));
        let q = s.try_acquire();
        drop((p, q));
        let _ = s.release();
        let _ = s.release_n(u32::MAX);
        // Nothing raised it: releases past the bound are refused (a
        // scribbled value above it only goes down).
        assert!(s.value() <= 3.max(v & 0x7fff_ffff), "{v:#x}");
        // Back to a sane word: the semaphore works as before.
        f.write_all_at(&0u32.to_ne_bytes(), COUNT_OFFSET).unwrap();
        s.release_n(3).unwrap();
        let (a, b) = (s.acquire(), s.acquire());
        assert!(s.release().is_ok());
        drop((a, b));
        assert_eq!(s.value(), 3, "{v:#x}");
        for r in 0..4u64 {
            f.write_all_at(&0u32.to_ne_bytes(), RECORDS_OFFSET + 4 * r)
                .unwrap();
        }
    }
    drop(s);
}

#[test]
fn opening_as_the_wrong_kind_is_type_mismatch() {
    let (a, b) = (ShmName::new("sem_k"), ShmName::new("sem_k"));
    let s = Semaphore::create(&a, 1).unwrap();
    let bs = BoundedSemaphore::create(&b, 1).unwrap();
    assert!(matches!(
        BoundedSemaphore::open(&a),
        Err(Error::TypeMismatch { .. })
    ));
    assert!(matches!(
        Semaphore::open(&b),
        Err(Error::TypeMismatch { .. })
    ));
    assert!(matches!(Event::open(&a), Err(Error::TypeMismatch { .. })));
    assert!(matches!(Lock::open(&b), Err(Error::TypeMismatch { .. })));
    let again = BoundedSemaphore::open(&b).unwrap();
    again.acquire().forget();
    assert_eq!(bs.value(), 0);
    assert!(again.release().is_ok());
    assert!(bs.release().is_err(), "the bound is the creator's");
    drop((s, bs, again));
}

#[test]
fn a_thread_that_ends_with_a_leaked_permit_gives_it_back() {
    use std::os::fd::AsFd;
    // A descriptor-passed handle and a thread that ends holding a leaked
    // guard (its permit comes back: the thread is dead).
    let s = Semaphore::new(2).unwrap();
    let fd = s.as_fd().try_clone_to_owned().unwrap();
    let t = Semaphore::from_fd(fd).unwrap();
    let t2 = t.clone();
    std::thread::spawn(move || std::mem::forget(t2.acquire()))
        .join()
        .unwrap();
    assert_eq!(s.value(), 1);
    let a = s.acquire();
    let b = common::wait_until("the leaked permit", || s.try_acquire());
    assert!(b.recovered());
    drop((a, b));
    assert_eq!(s.value(), 2);
}

#[test]
fn past_the_holder_capacity_permits_work_unrecorded() {
    let s = Semaphore::new(100).unwrap();
    let n = shmsync::HOLDER_CAPACITY + 2;
    let all_in = std::sync::Barrier::new(n + 1);
    let release = std::sync::Barrier::new(n + 1);
    let recorded: usize = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..n)
            .map(|_| {
                sc.spawn(|| {
                    let p = s.acquire();
                    let r = p.is_recorded();
                    all_in.wait();
                    release.wait();
                    drop(p);
                    r
                })
            })
            .collect();
        all_in.wait();
        assert_eq!(s.value(), 100 - n as u32);
        release.wait();
        hs.into_iter().map(|h| usize::from(h.join().unwrap())).sum()
    });
    assert_eq!(
        recorded,
        shmsync::HOLDER_CAPACITY,
        "one record per holding thread"
    );
    assert_eq!(
        s.value(),
        100,
        "unrecorded permits are returned all the same"
    );
    // The records of the threads that ended are taken over by new ones.
    let again: usize = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..4)
            .map(|_| sc.spawn(|| usize::from(s.acquire().is_recorded())))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(again, 4);
}

#[test]
fn a_thread_that_found_every_record_taken_looks_again_later() {
    let s = Semaphore::new(200).unwrap();
    let n = shmsync::HOLDER_CAPACITY;
    let all_in = std::sync::Barrier::new(n + 1);
    let release = std::sync::Barrier::new(n + 1);
    std::thread::scope(|sc| {
        for _ in 0..n {
            sc.spawn(|| {
                let p = s.acquire();
                all_in.wait();
                release.wait();
                drop(p);
            });
        }
        all_in.wait();
        // Every record is a live holder's: this thread's permits go
        // unrecorded ...
        let first = s.acquire();
        assert!(!first.is_recorded());
        drop(first);
        release.wait();
    });
    // ... for a while after the records were freed (their owners ended),
    // then it claims one.
    let flags: Vec<bool> = (0..100).map(|_| s.acquire().is_recorded()).collect();
    assert!(!flags[0], "not looking at once");
    assert!(flags[99], "looking again later");
    assert_eq!(s.value(), 200);
}

// Single-threaded children (`Spawn::premain`): the role runs before
// libtest starts, in the main thread (for `fork`).
common::premain!(|role| match role {
    "fork_with_permit" => fork_with_permit(),
    r => panic!("unknown premain role {r}"),
});

/// Holds a permit and forks: the child's copy of the guard releases
/// nothing; then, killed, the parent's permit is recovered by the child.
fn fork_with_permit() {
    let s = Semaphore::new(1).unwrap();
    let p = s.acquire();
    // SAFETY: this process is single-threaded (a pre-main role); the child
    // ends with `_exit`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            drop(p); // the parent's permit: nothing happens
            tell(&format!("child value {}", s.value()));
            let q = s.acquire_timeout(Duration::from_secs(30));
            tell(&format!(
                "child recovered={}",
                q.as_ref().is_some_and(|q| q.recovered())
            ));
        }));
        use std::io::Write;
        let _ = std::io::stdout().flush();
        // SAFETY: ends the forked child without running the parent's
        // destructors or exit handlers.
        unsafe { libc::_exit(if r.is_ok() { 0 } else { 101 }) };
    }
    tell("parent holding");
    let _p = p;
    block_until_killed();
}

#[test]
fn a_forked_childs_copy_of_a_permit_is_not_its_own() {
    let mut p = spawn(
        "a_forked_childs_copy_of_a_permit_is_not_its_own",
        "fork_with_permit",
    )
    .premain()
    .start();
    let mut got = [p.recv(), p.recv()];
    got.sort();
    assert_eq!(got, ["child value 0", "parent holding"]);
    // Let the child go to sleep.
    std::thread::sleep(Duration::from_millis(50));
    p.kill_now();
    assert_eq!(p.recv(), "child recovered=true");
    p.kill_any();
}
