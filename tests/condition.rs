//! `Condition` across real processes: a predicate-guarded queue of four
//! processes (`wait_while`, `notify(1)`, `notify_all`), an `RLock` held
//! twice across `wait`, a waiter SIGKILLed inside `wait`, a lock owner
//! SIGKILLed while others wait (both robustness modes), an anonymous
//! condition over an anonymous lock across `fork`, timeouts, a hostile
//! page, the kind checks, and a random-kill soak (`soak_condition`,
//! `#[ignore]`d; a few trials run in `random_kill_never_hangs_the_rest`).

mod common;

use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use common::owner_death::{mode_tests, Mode, Rng};
use common::{arg, await_msg, run_child, spawn, tell, wait_until, ShmName, HANG_LIMIT};
use shmsync::{
    AtomicArray, AtomicValue, Condition, ConditionLock, Error, Event, Lock, LockError, RLock,
};

/// Where a condition's words lie in its file (`docs/ARCHITECTURE.md`):
/// the sequence at `D`, the waiter count at `D + 4`; `D` is 192 with a
/// lock of its own, 448 with a recorded lock object.
const D_OWN: u64 = 192;
const D_EXTERNAL: u64 = 448;

/// Word `at` of the named segment, as a peer reads it from the file.
fn word(name: &str, at: u64) -> u32 {
    let mut b = [0u8; 4];
    common::shm_file(name)
        .read_exact_at(&mut b, at)
        .expect("read a condition word");
    u32::from_ne_bytes(b)
}

/// Until the named condition (words at `d`) counts `n` waiters.
fn until_waiters(name: &str, d: u64, n: u32) {
    wait_until(&format!("{n} waiters"), || {
        (word(name, d + 4) >= n).then_some(())
    });
}

/// A lock result, with a dead owner's state declared repaired.
fn recovered<G: Marked>(r: Result<G, LockError<G>>) -> G {
    match r {
        Ok(g) => g,
        Err(LockError::OwnerDied(g)) => {
            g.mark();
            g
        }
        Err(e) => panic!("lock failed: {e:?}"),
    }
}

/// Both guards' `mark_consistent`.
trait Marked {
    fn mark(&self);
}
impl Marked for shmsync::RLockGuard<'_> {
    fn mark(&self) {
        self.mark_consistent();
    }
}
impl Marked for shmsync::LockGuard<'_> {
    fn mark(&self) {
        self.mark_consistent();
    }
}

// ---------------------------------------------------------------------------
// A queue across four processes
// ---------------------------------------------------------------------------

const ITEMS: u64 = 3000;
const SLOTS: usize = 4;
/// Queue cells: head, tail, producers done, then the slots.
const HEAD: usize = 0;
const TAIL: usize = 1;
const DONE: usize = 2;

/// Two producers, two consumers, a ring of [`SLOTS`] under one named
/// `RLock`, with two named conditions that record it (`not_empty`,
/// `not_full`). Producers `wait_while` full and `notify(1)`; the last
/// producer `notify_all`s the consumers out. Every item is consumed
/// exactly once.
#[test]
fn queue_across_four_processes() {
    let test = "queue_across_four_processes";
    if run_child(test, |role| {
        let not_empty = Condition::<RLock>::open(&arg("ne")).unwrap();
        let not_full = Condition::<RLock>::open(&arg("nf")).unwrap();
        let q = AtomicArray::<u64>::open(&arg("q")).unwrap();
        let seen = AtomicArray::<u8>::open(&arg("seen")).unwrap();
        let me: u64 = arg("me").parse().unwrap();
        // Relaxed everywhere on `q`: the lock orders it.
        let len = |q: &AtomicArray<u64>| q.at(TAIL).load(Relaxed) - q.at(HEAD).load(Relaxed);
        tell("ready");
        await_msg("go");
        match role {
            "producer" => {
                for i in 0..ITEMS {
                    let g = not_full.lock().unwrap();
                    let g = not_full.wait_while(g, |_| len(&q) == SLOTS as u64).unwrap();
                    let t = q.at(TAIL).load(Relaxed);
                    q.at(3 + (t as usize % SLOTS))
                        .store(me * ITEMS + i, Relaxed);
                    q.at(TAIL).store(t + 1, Relaxed);
                    not_empty.notify(1);
                    drop(g);
                }
                let _g = not_full.lock().unwrap();
                q.at(DONE).fetch_add(1, Relaxed);
                not_empty.notify_all();
            }
            "consumer" => loop {
                let g = not_empty.lock().unwrap();
                let g = not_empty
                    .wait_while(g, |_| len(&q) == 0 && q.at(DONE).load(Relaxed) < 2)
                    .unwrap();
                if len(&q) == 0 {
                    break;
                }
                let h = q.at(HEAD).load(Relaxed);
                let item = q.at(3 + (h as usize % SLOTS)).load(Relaxed);
                q.at(HEAD).store(h + 1, Relaxed);
                not_full.notify(1);
                drop(g);
                seen.at(item as usize).fetch_add(1, Relaxed);
            },
            r => panic!("unknown role {r}"),
        }
    }) {
        return;
    }
    let names: Vec<ShmName> = (0..5).map(|_| ShmName::new("cv_q")).collect();
    let lock = RLock::create(&names[0]).unwrap();
    let ne = Condition::create_with_lock(&names[1], &lock).unwrap();
    let nf = Condition::create_with_lock(&names[2], &lock).unwrap();
    let q = AtomicArray::<u64>::zeroed_create(&names[3], 3 + SLOTS);
    let seen = AtomicArray::<u8>::zeroed_create(&names[4], 2 * ITEMS as usize);
    common::run_together(4, |i| {
        spawn(test, if i < 2 { "producer" } else { "consumer" })
            .note(&format!(" {i}"))
            .arg("ne", &*names[1])
            .arg("nf", &*names[2])
            .arg("q", &*names[3])
            .arg("seen", &*names[4])
            .arg("me", i % 2)
    });
    for i in 0..2 * ITEMS as usize {
        assert_eq!(seen.at(i).load(Relaxed), 1, "item {i} consumed once");
    }
    assert_eq!(q.at(HEAD).load(Relaxed), 2 * ITEMS);
    drop((ne, nf, lock, q, seen));
}

/// `AtomicArray::create` of zeroes, by name.
trait ZeroedCreate: Sized {
    fn zeroed_create(name: &str, n: usize) -> Self;
}
impl ZeroedCreate for AtomicArray<u64> {
    fn zeroed_create(name: &str, n: usize) -> Self {
        AtomicArray::create(name, &vec![0; n]).unwrap()
    }
}
impl ZeroedCreate for AtomicArray<u8> {
    fn zeroed_create(name: &str, n: usize) -> Self {
        AtomicArray::create(name, &vec![0; n]).unwrap()
    }
}

// ---------------------------------------------------------------------------
// An RLock held twice across wait
// ---------------------------------------------------------------------------

#[test]
fn rlock_held_twice_across_wait() {
    let test = "rlock_held_twice_across_wait";
    if run_child(test, |_| {
        let c = Condition::<RLock>::open(&arg("c")).unwrap();
        let flag = AtomicValue::<u32>::open(&arg("flag")).unwrap();
        tell("ready");
        // Blocks until the parent's wait released both levels.
        let g = c.lock().unwrap();
        flag.store(1, Relaxed);
        c.notify_one();
        drop(g);
    }) {
        return;
    }
    let (cn, fnm) = (ShmName::new("cv_rl"), ShmName::new("cv_rl"));
    let c = Condition::<RLock>::create(&cn).unwrap();
    let flag = AtomicValue::<u32>::create(&fnm, 0).unwrap();
    let outer = c.lock().unwrap();
    let inner = c.lock().unwrap();
    let mut child = spawn(test, "notifier")
        .arg("c", &*cn)
        .arg("flag", &*fnm)
        .start();
    child.expect("ready");
    let inner = c.wait_while(inner, |_| flag.load(Relaxed) == 0).unwrap();
    // Both levels are back: one release leaves it held.
    assert!(c.get_lock().is_held_by_current_thread());
    drop(inner);
    assert!(c.get_lock().is_held_by_current_thread());
    assert!(c.get_lock().is_locked());
    drop(outer);
    assert!(!c.get_lock().is_held_by_current_thread());
    assert!(!c.get_lock().is_locked());
    child.wait();
    drop((c, flag));
}

// ---------------------------------------------------------------------------
// A waiter killed inside wait
// ---------------------------------------------------------------------------

#[test]
fn a_waiter_killed_in_wait_never_blocks_notify() {
    let test = "a_waiter_killed_in_wait_never_blocks_notify";
    if run_child(test, |role| {
        let c = Condition::<Lock>::open(&arg("c")).unwrap();
        let flag = AtomicValue::<u32>::open(&arg("flag")).unwrap();
        let g = c.lock().unwrap();
        tell("waiting");
        let g = c.wait_while(g, |_| flag.load(Relaxed) == 0).unwrap();
        assert_eq!(role, "survivor", "the victim must be killed while waiting");
        drop(g);
    }) {
        return;
    }
    let (ln, cn, fnm) = (
        ShmName::new("cv_kw"),
        ShmName::new("cv_kw"),
        ShmName::new("cv_kw"),
    );
    let lock = Lock::create(&ln).unwrap();
    let c = Condition::create_with_lock(&cn, &lock).unwrap();
    let flag = AtomicValue::<u32>::create(&fnm, 0).unwrap();
    let start = |role| {
        let mut k = spawn(test, role).arg("c", &*cn).arg("flag", &*fnm).start();
        k.expect("waiting");
        k
    };
    let victim = start("victim");
    until_waiters(&cn, D_EXTERNAL, 1);
    std::thread::sleep(Duration::from_millis(5));
    victim.kill();
    // The dead waiter is still counted; the lock is free (it slept).
    assert_eq!(word(&cn, D_EXTERNAL + 4), 1);
    let survivor = start("survivor");
    until_waiters(&cn, D_EXTERNAL, 2);
    let g = c.lock().unwrap();
    flag.store(1, Relaxed);
    c.notify(1);
    drop(g);
    survivor.wait();
    // And the condition keeps working in this process.
    let g = c.lock().unwrap();
    let (g, r) = c.wait_timeout(g, Duration::from_millis(5)).unwrap();
    assert!(r.timed_out());
    drop(g);
    drop((c, lock, flag));
}

/// A notifier killed between advancing the sequence and waking the
/// sleepers, played by writing the sequence through the file (a peer's
/// write: no wake): the waiter still returns (its sliced sleep re-reads
/// the word).
#[test]
fn a_notifier_killed_before_its_wake_never_strands_the_waiter() {
    let test = "a_notifier_killed_before_its_wake_never_strands_the_waiter";
    if run_child(test, |_| {
        let c = Condition::<RLock>::open(&arg("c")).unwrap();
        let flag = AtomicValue::<u32>::open(&arg("flag")).unwrap();
        let g = c.lock().unwrap();
        tell("waiting");
        drop(c.wait_while(g, |_| flag.load(Relaxed) == 0).unwrap());
    }) {
        return;
    }
    let (cn, fnm) = (ShmName::new("cv_nk"), ShmName::new("cv_nk"));
    let c = Condition::<RLock>::create(&cn).unwrap();
    let flag = AtomicValue::<u32>::create(&fnm, 0).unwrap();
    let mut w = spawn(test, "waiter")
        .arg("c", &*cn)
        .arg("flag", &*fnm)
        .start();
    w.expect("waiting");
    until_waiters(&cn, D_OWN, 1);
    // Let it reach its longest slices.
    std::thread::sleep(Duration::from_millis(150));
    let g = c.lock().unwrap();
    flag.store(1, Relaxed);
    let seq = word(&cn, D_OWN);
    common::shm_file(&cn)
        .write_all_at(&seq.wrapping_add(1).to_ne_bytes(), D_OWN)
        .unwrap();
    drop(g);
    w.wait();
    drop((c, flag));
}

// ---------------------------------------------------------------------------
// A lock owner killed while others wait (both modes)
// ---------------------------------------------------------------------------

fn owner_killed_roles(role: &str) {
    let c = Condition::<RLock>::open(&arg("c")).unwrap();
    let flag = AtomicValue::<u32>::open(&arg("flag")).unwrap();
    match role {
        "waiter" => {
            let g = c.lock().unwrap();
            tell("waiting");
            let verdict = match c.wait_while(g, |_| flag.load(Relaxed) == 0) {
                Ok(g) => {
                    assert_eq!(flag.load(Relaxed), 1);
                    drop(g);
                    "ok"
                }
                Err(LockError::OwnerDied(g)) => {
                    assert_eq!(flag.load(Relaxed), 1, "the dead owner's write");
                    g.mark_consistent();
                    drop(g);
                    "owner_died"
                }
                Err(e) => panic!("wait failed: {e:?}"),
            };
            tell(verdict);
        }
        "killer" => {
            let _g = c.lock().unwrap();
            flag.store(1, Relaxed);
            c.notify_all();
            tell("holding");
            common::block_until_killed();
        }
        r => panic!("unknown role {r}"),
    }
}

/// Two waiter processes asleep on the condition; a third locks, changes
/// the state, `notify_all`s and is SIGKILLed holding the lock. Exactly one
/// waiter gets `OwnerDied` (it repairs); the other then proceeds (`Ok`).
fn owner_killed_scenario(test: &str, mode: Mode) {
    for _ in 0..3 {
        let (cn, fnm) = (ShmName::new("cv_ok"), ShmName::new("cv_ok"));
        let c = Condition::<RLock>::create(&cn).unwrap();
        let flag = AtomicValue::<u32>::create(&fnm, 0).unwrap();
        let start = |role: &str, i: usize| {
            spawn(test, role)
                .mode(mode)
                .note(&format!(" {i}"))
                .arg("c", &*cn)
                .arg("flag", &*fnm)
                .start()
        };
        let mut ws = [start("waiter", 0), start("waiter", 1)];
        for w in &mut ws {
            w.expect("waiting");
        }
        until_waiters(&cn, D_OWN, 2);
        let mut k = start("killer", 2);
        k.expect("holding");
        k.kill();
        let mut verdicts: Vec<String> = ws.iter_mut().map(|w| w.recv()).collect();
        verdicts.sort();
        assert_eq!(
            verdicts,
            ["ok", "owner_died"],
            "{mode:?}: exactly one OwnerDied"
        );
        for w in ws {
            w.wait();
        }
        // Repaired: this process locks normally.
        drop(c.lock().unwrap());
        drop((c, flag));
    }
}

mode_tests! {
    children: owner_killed_roles;
    owner_killed_scenario: lock_owner_killed_while_others_wait_list,
        lock_owner_killed_while_others_wait_fallback;
}

// ---------------------------------------------------------------------------
// Anonymous, across fork
// ---------------------------------------------------------------------------

common::premain!(|role| match role {
    "forker" => forker(),
    r => panic!("unknown premain role {r}"),
});

/// Single-threaded: an anonymous `Lock`, a condition over it and a flag;
/// the forked child waits, this process changes the flag under the lock
/// and notifies; the child returns and exits 0.
fn forker() {
    let lock = Lock::new().unwrap();
    let c = Condition::with_lock(&lock).unwrap();
    let flag = AtomicValue::<u32>::new(0).unwrap();
    // SAFETY: this process is single-threaded (a pre-main role).
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork");
    if pid == 0 {
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let g = lock.lock().unwrap();
            let g = c.wait_while(g, |_| flag.load(Relaxed) == 0).unwrap();
            assert_eq!(flag.load(Relaxed), 1);
            drop(g);
        }))
        .is_ok();
        // SAFETY: _exit in the forked child, skipping the parent's atexit
        // handlers and buffers.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    // Until the child sleeps (its count in the page).
    let start = Instant::now();
    loop {
        let g = lock.lock().unwrap();
        drop(g);
        if format!("{c:?}").contains("waiters: 1") {
            break;
        }
        assert!(start.elapsed() < HANG_LIMIT, "the child never waited");
        std::thread::sleep(Duration::from_millis(1));
    }
    let g = lock.lock().unwrap();
    flag.store(1, Relaxed);
    c.notify_one();
    drop(g);
    let mut status = 0;
    // SAFETY: waits for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child failed: {status:#x}"
    );
}

#[test]
fn anonymous_condition_over_an_anonymous_lock_across_fork() {
    spawn(
        "anonymous_condition_over_an_anonymous_lock_across_fork",
        "forker",
    )
    .premain()
    .start()
    .wait();
}

// ---------------------------------------------------------------------------
// Timeouts
// ---------------------------------------------------------------------------

#[test]
fn timeouts_return_after_roughly_their_time() {
    let c = Condition::<RLock>::new().unwrap();
    let d = Duration::from_millis(30);
    let g = c.lock().unwrap();
    let t = Instant::now();
    let (g, r) = c.wait_timeout(g, d).unwrap();
    assert!(r.timed_out());
    assert!(t.elapsed() >= d, "not before its time");
    assert!(t.elapsed() < HANG_LIMIT);
    let t = Instant::now();
    let (g, r) = c.wait_timeout_while(g, d, |_| true).unwrap();
    assert!(r.timed_out());
    assert!(t.elapsed() >= d, "not before its time");
    // A false predicate: no wait at all.
    let (g, r) = c.wait_timeout_while(g, d, |_| false).unwrap();
    assert!(!r.timed_out());
    let (g, r) = c.wait_timeout(g, Duration::ZERO).unwrap();
    assert!(r.timed_out());
    drop(g);
    // Duration::MAX cannot be added to the clock: waits until notified.
    std::thread::scope(|s| {
        let g = c.lock().unwrap();
        s.spawn(|| {
            let _g = c.lock().unwrap();
            c.notify_all();
        });
        let (g, r) = c.wait_timeout(g, Duration::MAX).unwrap();
        assert!(!r.timed_out());
        drop(g);
    });
}

#[test]
fn notify_without_waiters_writes_nothing() {
    let name = ShmName::new("cv_nw");
    let c = Condition::<RLock>::create(&name).unwrap();
    c.notify_one();
    c.notify(5);
    c.notify_all();
    assert_eq!(word(&name, D_OWN), 0, "the sequence did not move");
    let g = c.lock().unwrap();
    let (g, _) = c.wait_timeout(g, Duration::from_millis(1)).unwrap();
    drop(g);
    assert_eq!(word(&name, D_OWN + 4), 0, "the waiter left");
    drop(c);
}

// ---------------------------------------------------------------------------
// A hostile page, kinds
// ---------------------------------------------------------------------------

#[test]
fn scribbled_words_never_hang_or_panic() {
    let name = ShmName::new("cv_scr");
    let c = Condition::<RLock>::create(&name).unwrap();
    let f = common::shm_file(&name);
    let bytes = common::random_bytes(8 * 32);
    for (i, ch) in bytes.chunks(8).enumerate() {
        let mut seq = u32::from_ne_bytes(ch[..4].try_into().unwrap());
        let mut waiters = u32::from_ne_bytes(ch[4..].try_into().unwrap());
        if i < 4 {
            (seq, waiters) = [(0, u32::MAX), (u32::MAX, 0), (u32::MAX, u32::MAX), (1, 1)][i];
        }
        f.write_all_at(&seq.to_ne_bytes(), D_OWN).unwrap();
        f.write_all_at(&waiters.to_ne_bytes(), D_OWN + 4).unwrap();
        c.notify(3);
        c.notify_all();
        let g = c.lock().unwrap();
        let (g, _) = c.wait_timeout(g, Duration::from_millis(1)).unwrap();
        // A waiter is released by a notify whatever the words held.
        std::thread::scope(|s| {
            s.spawn(|| {
                let _g = c.lock().unwrap();
                c.notify_all();
            });
            let (g, r) = c.wait_timeout(g, HANG_LIMIT).unwrap();
            assert!(!r.timed_out(), "{seq:#x} {waiters:#x}: not released");
            drop(g);
        });
    }
    drop(c);
}

#[test]
fn opening_as_the_wrong_kind_or_lock_is_refused() {
    let (a, b, l) = (
        ShmName::new("cv_k"),
        ShmName::new("cv_k"),
        ShmName::new("cv_k"),
    );
    let c = Condition::<RLock>::create(&a).unwrap();
    let e = Event::create(&b).unwrap();
    assert!(matches!(Event::open(&a), Err(Error::TypeMismatch { .. })));
    assert!(matches!(
        Condition::<RLock>::open(&b),
        Err(Error::TypeMismatch { .. })
    ));
    assert!(matches!(
        Condition::<Lock>::open(&a),
        Err(Error::TypeMismatch { .. })
    ));
    // A named condition needs a named lock object.
    let anon = RLock::new().unwrap();
    assert!(matches!(
        Condition::create_with_lock(&l, &anon),
        Err(Error::InvalidArgument(_))
    ));
    // An fd-passed condition is attached to its own lock only.
    let other = RLock::new().unwrap();
    let x = Condition::with_lock(&anon).unwrap();
    let fd = std::os::fd::AsFd::as_fd(&x).try_clone_to_owned().unwrap();
    assert!(matches!(
        Condition::from_fd_with_lock(fd, &other),
        Err(Error::LockMismatch)
    ));
    drop((c, e));
}

/// Works with both guards through one generic helper (the sealed
/// `ConditionLock` bound).
fn bounce<L: ConditionLock>(c: &Condition<L>) {
    c.notify_one();
}

#[test]
fn generic_over_both_locks() {
    bounce(&Condition::<RLock>::new().unwrap());
    bounce(&Condition::<Lock>::new().unwrap());
    let c = Condition::<Lock>::new().unwrap();
    let g = c.lock().unwrap();
    assert!(matches!(c.lock(), Err(LockError::Deadlock)), "a Lock");
    let (g, r) = c.wait_timeout(g, Duration::from_millis(1)).unwrap();
    assert!(r.timed_out());
    drop(g);
}

// ---------------------------------------------------------------------------
// Random kills
// ---------------------------------------------------------------------------

const PING_ROUNDS: u64 = 2000;

/// The roles of a random-kill trial: two `pinger`s hand a token back and
/// forth through the condition with untimed `wait_while` (a lost wake-up
/// hangs them), while `victim`s loop lock / notify / wait / notify_all on
/// the same condition and lock until SIGKILLed at a random point (holding
/// the lock, asleep in `wait`, between a notify's increment and its
/// wake...).
fn random_kill_roles(role: &str) {
    let c = Condition::<RLock>::open(&arg("c")).unwrap();
    let token = AtomicValue::<u64>::open(&arg("token")).unwrap();
    tell("ready");
    match role {
        "pinger" => {
            let me: u64 = arg("me").parse().unwrap();
            for _ in 0..PING_ROUNDS {
                let g = recovered(c.lock());
                let g = match c.wait_while(g, |_| token.load(Relaxed) % 2 != me) {
                    Ok(g) => g,
                    Err(LockError::OwnerDied(g)) => {
                        g.mark_consistent();
                        recovered(c.wait_while(g, |_| token.load(Relaxed) % 2 != me))
                    }
                    Err(e) => panic!("{e:?}"),
                };
                token.store(token.load(Relaxed) + 1, Relaxed);
                c.notify_all();
                drop(g);
            }
        }
        "victim" => {
            let mut rng = Rng::new(arg("seed").parse().unwrap());
            loop {
                let g = recovered(c.lock());
                match rng.below(4) {
                    0 => c.notify(1),
                    1 => c.notify_all(),
                    _ => {}
                }
                let g = match c.wait_timeout(g, Duration::from_micros(rng.below(500))) {
                    Ok((g, _)) => g,
                    Err(LockError::OwnerDied((g, _))) => {
                        g.mark_consistent();
                        g
                    }
                    Err(e) => panic!("{e:?}"),
                };
                drop(g);
                c.notify_all();
            }
        }
        r => panic!("unknown role {r}"),
    }
}

fn random_kill_trial(test: &str, rng: &mut Rng, mode: Mode) {
    let (cn, tn) = (ShmName::new("cv_rk"), ShmName::new("cv_rk"));
    let c = Condition::<RLock>::create(&cn).unwrap();
    let token = AtomicValue::<u64>::create(&tn, 0).unwrap();
    let start = |role: &str, i: u64| {
        let mut k = spawn(test, role)
            .mode(mode)
            .note(&format!(" {i}"))
            .arg("c", &*cn)
            .arg("token", &*tn)
            .arg("me", i)
            .arg("seed", rng_seed(i))
            .start();
        k.expect("ready");
        k
    };
    let victims: Vec<_> = (0..2).map(|i| start("victim", 10 + i)).collect();
    let pingers: Vec<_> = (0..2).map(|i| start("pinger", i)).collect();
    // Killed while the pingers run (2 000 rounds take tens of ms).
    for v in victims {
        std::thread::sleep(Duration::from_micros(rng.below(10_000)));
        v.kill();
    }
    for p in pingers {
        p.wait();
    }
    assert_eq!(token.load(Relaxed), 2 * PING_ROUNDS);
    drop((c, token));
}

fn rng_seed(i: u64) -> u64 {
    u64::from(std::process::id()).wrapping_mul(0x9e37_79b9) ^ i
}

fn random_kill_scenario(test: &str, mode: Mode) {
    let seed = Rng::seed();
    let mut rng = Rng::new(seed);
    for _ in 0..3 {
        random_kill_trial(test, &mut rng, mode);
    }
}

mode_tests! {
    children: random_kill_roles;
    random_kill_scenario: random_kill_never_hangs_the_rest_list,
        random_kill_never_hangs_the_rest_fallback;
}

/// `cargo test --release --test condition -- --ignored soak_condition
/// --nocapture` (`SHMSYNC_CONDITION_TRIALS=N` per mode, default 200;
/// `SHMSYNC_OD_SEED` replays).
#[test]
#[ignore]
fn soak_condition() {
    let test = "soak_condition";
    if run_child(test, random_kill_roles) {
        return;
    }
    let n: usize = std::env::var("SHMSYNC_CONDITION_TRIALS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let seed = Rng::seed();
    let mut rng = Rng::new(seed);
    let start = Instant::now();
    for mode in [Mode::List, Mode::Fallback] {
        for trial in 0..n {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                random_kill_trial(test, &mut rng, mode)
            }));
            assert!(
                r.is_ok(),
                "{mode:?} trial {trial} failed (SHMSYNC_OD_SEED={seed})"
            );
        }
    }
    println!(
        "soak_condition: {n} random-kill trials per mode in {:?}",
        start.elapsed()
    );
}
