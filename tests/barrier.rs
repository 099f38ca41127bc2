//! `Barrier` across real processes: 4 processes × 1 000 rounds with a
//! generation check, Python's `abort`/`wait_timeout`/`reset` semantics
//! (threads and processes), parties SIGKILLed while waiting and between
//! rounds (both robustness modes: the others get `Broken`, never hang), a
//! random-kill test and its `#[ignore]`d soak (`soak_barrier`), a
//! scribbled page, bad party counts, descriptors and the kind check.

mod common;

use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use common::owner_death::{mode_tests, Mode, Rng};
use common::{
    arg, block_until_killed, run_child, spawn, take_fd, tell, wait_until, ShmName, HANG_LIMIT,
};
use shmsync::{AtomicArray, Barrier, BarrierError, Error, Event, RawArray};

/// Where a barrier's word lies in its file; its records follow
/// (`docs/ARCHITECTURE.md`).
const WORD_OFFSET: u64 = 192;
/// The word's count bits (`src/raw/barrier.rs`).
const COUNT_MASK: u32 = 0xfff;

/// The barrier word of the named barrier, as a peer reads it.
fn word(name: &str) -> u32 {
    let mut b = [0u8; 4];
    common::shm_file(name)
        .read_exact_at(&mut b, WORD_OFFSET)
        .expect("read the barrier word");
    u32::from_ne_bytes(b)
}

/// Waits on `b`, which must end broken, with a watchdog: a wait that
/// only ends by its (generous) timeout fails the test as hung instead of
/// blocking it.
fn broken_watched(b: &Barrier, what: &str) {
    let start = Instant::now();
    let r = b.wait_timeout(HANG_LIMIT);
    assert!(start.elapsed() < HANG_LIMIT, "{what}: hung in wait");
    assert_eq!(r, Err(BarrierError::Broken), "{what}");
}

/// Until `n` parties are counted in the named barrier's current round.
fn until_counted(name: &str, n: u32) {
    wait_until("parties counted", || {
        (word(name) & COUNT_MASK == n).then_some(())
    });
}

#[test]
fn four_processes_1000_rounds_never_pass_early() {
    const ROUNDS: u64 = 1000;
    const N: usize = 4;
    if run_child("four_processes_1000_rounds_never_pass_early", |_| {
        let b = Barrier::open(&arg("b")).unwrap();
        let slots = RawArray::<u64>::open(&arg("slots")).unwrap();
        let leaders = AtomicArray::<u64>::open(&arg("leaders")).unwrap();
        let me: usize = arg("me").parse().unwrap();
        common::ready_go();
        for r in 1..=ROUNDS {
            slots.set(me, r);
            let res = b.wait().expect("no round breaks");
            // Every party wrote round r before its wait: none passed early.
            for p in 0..N {
                let s = slots.get(p);
                assert!(s >= r, "party {p} at {s} when {me} passed round {r}");
                assert!(s <= r + 1, "party {p} two rounds ahead at {s}");
            }
            assert!(res.index() < N);
            assert_eq!(res.is_leader(), res.index() == N - 1);
            let seen = leaders
                .at(r as usize - 1)
                .fetch_or(1 << res.index(), Relaxed);
            assert_eq!(seen & 1 << res.index(), 0, "index given twice");
        }
    }) {
        return;
    }
    let names: Vec<ShmName> = (0..3).map(|_| ShmName::new("bar_4x")).collect();
    let b = Barrier::create(&names[0], N).unwrap();
    let slots = RawArray::<u64>::create(&names[1], &[0; N]).unwrap();
    let leaders = AtomicArray::<u64>::create(&names[2], &[0; ROUNDS as usize]).unwrap();
    common::run_together(N, |i| {
        spawn("four_processes_1000_rounds_never_pass_early", "party")
            .note(&format!(" {i}"))
            .arg("b", &*names[0])
            .arg("slots", &*names[1])
            .arg("leaders", &*names[2])
            .arg("me", i)
    });
    for (r, l) in leaders.to_vec().iter().enumerate() {
        assert_eq!(*l, (1 << N) - 1, "round {r}: every index once");
    }
    assert!(!b.is_broken());
    drop((b, slots, leaders));
}

/// Python's semantics with threads: `abort` breaks the waiters and later
/// arrivals until `reset`; a `wait_timeout` that expires breaks the
/// barrier for every waiter; `reset` breaks the current waiters and leaves
/// an empty, usable barrier; `n_waiting` and `parties`.
#[test]
fn python_semantics_with_threads() {
    let b = Barrier::new(3).unwrap();
    assert_eq!(b.parties(), 3);
    let wait_in_thread = || {
        let b = b.clone();
        std::thread::spawn(move || b.wait())
    };
    // abort
    let t = wait_in_thread();
    wait_until("1 waiting", || (b.n_waiting() == 1).then_some(()));
    b.abort();
    assert_eq!(t.join().unwrap(), Err(BarrierError::Broken));
    assert!(b.is_broken());
    assert_eq!(b.wait(), Err(BarrierError::Broken));
    b.reset();
    assert!(!b.is_broken());
    // wait_timeout breaks it for the other waiter too
    let t = wait_in_thread();
    wait_until("1 waiting", || (b.n_waiting() == 1).then_some(()));
    let start = Instant::now();
    assert_eq!(
        b.wait_timeout(Duration::from_millis(30)),
        Err(BarrierError::Broken)
    );
    assert!(
        start.elapsed() >= Duration::from_millis(30),
        "not before its time"
    );
    assert_eq!(t.join().unwrap(), Err(BarrierError::Broken));
    assert!(b.is_broken());
    // reset while two wait
    b.reset();
    let ts = [wait_in_thread(), wait_in_thread()];
    wait_until("2 waiting", || (b.n_waiting() == 2).then_some(()));
    b.reset();
    for t in ts {
        assert_eq!(t.join().unwrap(), Err(BarrierError::Broken));
    }
    assert!(!b.is_broken(), "reset leaves it usable");
    assert_eq!(b.n_waiting(), 0);
    // a full round, with Duration::MAX (no deadline)
    let ts = [wait_in_thread(), wait_in_thread()];
    let me = b.wait_timeout(Duration::MAX).unwrap();
    let mut idx = vec![me.index()];
    idx.extend(ts.map(|t| t.join().unwrap().unwrap().index()));
    idx.sort_unstable();
    assert_eq!(idx, [0, 1, 2]);
}

fn semantics_roles(role: &str) {
    let b = Barrier::open(&arg("b")).unwrap();
    let step = Event::open(&arg("step")).unwrap();
    tell("ready");
    match role {
        // Waits, is broken by the parent's abort, then by its reset, then
        // passes a round with it.
        "waiter" => {
            assert_eq!(b.wait(), Err(BarrierError::Broken), "abort");
            step.wait();
            step.clear();
            tell("again");
            assert_eq!(b.wait(), Err(BarrierError::Broken), "reset");
            tell("again");
            let r = b.wait().unwrap();
            assert_eq!(r.index(), 0, "first of the round");
            // Times out: the parent, waiting too, is broken with it.
            assert_eq!(
                b.wait_timeout(Duration::from_millis(20)),
                Err(BarrierError::Broken)
            );
        }
        r => panic!("unknown role {r}"),
    }
}

#[test]
fn python_semantics_across_processes() {
    let test = "python_semantics_across_processes";
    if run_child(test, semantics_roles) {
        return;
    }
    let names: Vec<ShmName> = (0..2).map(|_| ShmName::new("bar_py")).collect();
    let b = Barrier::create(&names[0], 3).unwrap();
    let step = Event::create(&names[1]).unwrap();
    let mut c = spawn(test, "waiter")
        .arg("b", &*names[0])
        .arg("step", &*names[1])
        .start();
    c.expect("ready");
    until_counted(&names[0], 1);
    b.abort();
    wait_until("broken", || b.is_broken().then_some(()));
    b.reset();
    step.set();
    c.expect("again");
    until_counted(&names[0], 1);
    b.reset();
    c.expect("again");
    // A round of 3: the child (first), a thread and this thread.
    until_counted(&names[0], 1);
    let b2 = b.clone();
    let t = std::thread::spawn(move || b2.wait());
    until_counted(&names[0], 2);
    let r = b.wait().unwrap();
    assert!(r.is_leader() && r.index() == 2);
    assert!(!t.join().unwrap().unwrap().is_leader());
    // The child's wait_timeout breaks this wait.
    assert_eq!(b.wait(), Err(BarrierError::Broken));
    c.wait();
    assert!(b.is_broken());
    drop((b, step));
}

/// Roles of the death scenarios: `waiter` waits once (and must be
/// broken); `victim` waits once (`killed-waiting`) or passes one round and
/// then blocks outside `wait` (`killed-between`) until killed; `looper`
/// loops `wait` until broken.
fn death_roles(role: &str) {
    let b = Barrier::open(&arg("b")).unwrap();
    match role {
        "victim-waiting" => {
            tell("ready");
            let _ = b.wait();
            panic!("the victim must be killed while waiting");
        }
        "victim-between" => {
            tell("ready");
            b.wait().expect("the first round passes");
            tell("passed");
            block_until_killed();
        }
        "waiter" => {
            tell("ready");
            broken_watched(&b, "waiter");
        }
        "between" => {
            tell("ready");
            b.wait().expect("the first round passes");
            tell("passed");
            common::await_msg("go");
            broken_watched(&b, "the other party");
        }
        "looper" => {
            tell("ready");
            let mut rounds = 0u64;
            loop {
                let start = Instant::now();
                let r = b.wait_timeout(HANG_LIMIT);
                assert!(start.elapsed() < HANG_LIMIT, "looper hung in wait");
                if r.is_err() {
                    break;
                }
                rounds += 1;
            }
            tell(&format!("broken after {rounds}"));
        }
        r => panic!("unknown role {r}"),
    }
}

/// A party SIGKILLed while waiting: the other waiters (another process and
/// this one) get `Broken`, never hang.
fn killed_while_waiting(test: &str, mode: Mode) {
    let name = ShmName::new("bar_kw");
    let b = Barrier::create(&name, 3).unwrap();
    let mut victim = spawn(test, "victim-waiting")
        .mode(mode)
        .arg("b", &*name)
        .start();
    victim.expect("ready");
    until_counted(&name, 1);
    let mut waiter = spawn(test, "waiter").mode(mode).arg("b", &*name).start();
    waiter.expect("ready");
    until_counted(&name, 2);
    victim.kill();
    waiter.wait();
    broken_watched(&b, "parent");
    // reset makes it usable (the dead party's round is forgotten).
    b.reset();
    let b2 = b.clone();
    let b3 = b.clone();
    let ts = [
        std::thread::spawn(move || b2.wait()),
        std::thread::spawn(move || b3.wait()),
    ];
    b.wait().unwrap();
    for t in ts {
        t.join().unwrap().unwrap();
    }
    drop(b);
}

/// A party SIGKILLed after passing a round, before its next arrival: the
/// others' next round breaks.
fn killed_between_rounds(test: &str, mode: Mode) {
    let name = ShmName::new("bar_kb");
    let b = Barrier::create(&name, 3).unwrap();
    let mut victim = spawn(test, "victim-between")
        .mode(mode)
        .arg("b", &*name)
        .start();
    let mut other = spawn(test, "between").mode(mode).arg("b", &*name).start();
    victim.expect("ready");
    other.expect("ready");
    b.wait().unwrap();
    victim.expect("passed");
    other.expect("passed");
    victim.kill();
    other.send("go");
    broken_watched(&b, "parent");
    other.wait();
    drop(b);
}

mode_tests! {
    children: death_roles;
    killed_while_waiting: a_party_killed_while_waiting_breaks_the_barrier_list,
        a_party_killed_while_waiting_breaks_the_barrier_fallback;
    killed_between_rounds: a_party_killed_between_rounds_breaks_the_next_list,
        a_party_killed_between_rounds_breaks_the_next_fallback;
}

/// One trial: three processes loop `wait` on a `Barrier(3)`; one of them
/// is SIGKILLed at a random moment (before arriving, after arriving, while
/// completing or waking a round, between rounds). The other two must end
/// their loops broken, never hang; the barrier is usable after a reset.
fn random_kill_trial(test: &str, mode: Mode, rng: &mut Rng) {
    let name = ShmName::new("bar_rk");
    let b = Barrier::create(&name, 3).unwrap();
    let mut kids: Vec<_> = (0..3)
        .map(|i| {
            spawn(test, "looper")
                .mode(mode)
                .note(&format!(" {i}"))
                .arg("b", &*name)
                .start()
        })
        .collect();
    for k in &mut kids {
        k.expect("ready");
    }
    std::thread::sleep(Duration::from_micros(rng.below(20_000)));
    let victim = kids.remove(rng.below(3) as usize);
    victim.kill_any();
    for mut k in kids {
        let m = k.expect_prefixed("broken after ");
        let _: u64 = m.parse().unwrap();
        k.wait();
    }
    assert!(b.is_broken());
    b.reset();
    assert!(!b.is_broken());
    drop(b);
}

fn random_kills(test: &str, mode: Mode) {
    let seed = Rng::seed();
    let mut rng = Rng::new(seed);
    for _ in 0..4 {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            random_kill_trial(test, mode, &mut rng)
        }));
        assert!(r.is_ok(), "trial failed (SHMSYNC_OD_SEED={seed})");
    }
}

mode_tests! {
    children: death_roles;
    random_kills: random_kills_never_hang_list, random_kills_never_hang_fallback;
}

/// `cargo test --release --test barrier -- --ignored soak_barrier --nocapture`
/// (`SHMSYNC_BARRIER_TRIALS=N`, default 500 per mode; `SHMSYNC_OD_SEED`
/// replays).
#[test]
#[ignore]
fn soak_barrier() {
    let test = "soak_barrier";
    if run_child(test, death_roles) {
        return;
    }
    let n: usize = std::env::var("SHMSYNC_BARRIER_TRIALS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(500);
    let seed = Rng::seed();
    let mut rng = Rng::new(seed);
    let start = Instant::now();
    for trial in 0..2 * n {
        let mode = if trial % 2 == 0 {
            Mode::List
        } else {
            Mode::Fallback
        };
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            random_kill_trial(test, mode, &mut rng)
        }));
        assert!(r.is_ok(), "trial {trial} failed (SHMSYNC_OD_SEED={seed})");
    }
    println!(
        "soak_barrier: {} random-kill trials in {:?}",
        2 * n,
        start.elapsed()
    );
}

fn leave_roles(_role: &str) {
    let b = Barrier::open(&arg("b")).unwrap();
    tell("ready");
    b.wait().expect("a round with the parent");
    // Dropping the handle (here: at the end of the process) leaves the
    // barrier.
}

/// A party that passes a round and then leaves (drops its handle and
/// exits) is not expected in the next round: a new process takes its
/// place, after the parent has waited (and probed) for a while.
#[test]
fn a_party_that_leaves_does_not_break_the_next_round() {
    let test = "a_party_that_leaves_does_not_break_the_next_round";
    if run_child(test, leave_roles) {
        return;
    }
    let name = ShmName::new("bar_lv");
    let b = Barrier::create(&name, 2).unwrap();
    let mut first = spawn(test, "first").arg("b", &*name).start();
    first.expect("ready");
    b.wait().unwrap();
    first.wait();
    let b2 = b.clone();
    let here = std::thread::spawn(move || b2.wait_timeout(HANG_LIMIT));
    until_counted(&name, 1);
    // Several probing slices (1 + 2 + 4 + ... ms) before the newcomer.
    std::thread::sleep(Duration::from_millis(100));
    let mut second = spawn(test, "second").arg("b", &*name).start();
    second.expect("ready");
    assert!(here.join().unwrap().is_ok(), "the next round passes");
    second.wait();
    drop(b);
}

#[test]
fn a_scribbled_page_never_hangs_or_panics() {
    let name = ShmName::new("bar_scr");
    let b = Barrier::create(&name, 2).unwrap();
    let f = common::shm_file(&name);
    let bytes = common::random_bytes(5 * 4 * 32);
    for (i, page) in bytes.chunks(5 * 4).enumerate() {
        let mut page = page.to_vec();
        if i < 3 {
            // A count at/beyond the parties, everything set, all zero.
            let w = [2u32, u32::MAX, 0][i];
            page[..4].copy_from_slice(&w.to_ne_bytes());
        }
        f.write_all_at(&page, WORD_OFFSET).unwrap();
        let _ = (b.n_waiting(), b.is_broken(), format!("{b:?}"));
        let _ = b.wait_timeout(Duration::from_millis(1));
        b.abort();
        assert!(b.is_broken());
        b.reset();
        assert!(!b.is_broken());
        // Usable again: a round of two, once the scribbler's records are
        // gone. (A scribbled record that names a dead thread with the tag
        // of this round, or of the one before, is a dead party: a waiter
        // that sleeps long enough to probe it breaks the round, a typed
        // `Broken`, which is not what this checks.)
        f.write_all_at(&[0u8; 4 * 4], WORD_OFFSET + 4).unwrap();
        let b2 = b.clone();
        let t = std::thread::spawn(move || b2.wait());
        b.wait().unwrap();
        t.join().unwrap().unwrap();
    }
    drop(b);
}

#[test]
fn bad_party_counts_are_errors() {
    assert!(matches!(Barrier::new(0), Err(Error::InvalidArgument(_))));
    assert!(matches!(
        Barrier::new(Barrier::MAX_PARTIES + 1),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        Barrier::new(usize::MAX),
        Err(Error::InvalidArgument(_))
    ));
    let name = ShmName::new("bar_bad");
    assert!(matches!(
        Barrier::create(&name, 0),
        Err(Error::InvalidArgument(_))
    ));
    assert!(!name.exists(), "nothing created");
    let b = Barrier::new(Barrier::MAX_PARTIES).unwrap();
    assert_eq!(b.parties(), Barrier::MAX_PARTIES);
}

#[test]
fn opening_as_the_wrong_kind_is_type_mismatch() {
    let (a, e) = (ShmName::new("bar_k"), ShmName::new("bar_k"));
    let b = Barrier::create(&a, 2).unwrap();
    let ev = Event::create(&e).unwrap();
    assert!(matches!(Event::open(&a), Err(Error::TypeMismatch { .. })));
    assert!(matches!(Barrier::open(&e), Err(Error::TypeMismatch { .. })));
    let again = Barrier::open(&a).unwrap();
    assert_eq!(again.parties(), 2);
    drop((b, ev, again));
}

#[test]
fn a_descriptor_passed_to_another_process() {
    let test = "a_descriptor_passed_to_another_process";
    if run_child(test, |_| {
        let b = Barrier::from_fd(take_fd("b")).unwrap();
        assert_eq!(b.parties(), 2);
        tell("ready");
        assert!(b.wait().unwrap().index() < 2);
    }) {
        return;
    }
    let b = Barrier::new(2).unwrap();
    let mut c = spawn(test, "party").fd("b", b.as_fd()).start();
    c.expect("ready");
    b.wait().unwrap();
    c.wait();
}

// Single-threaded children (`Spawn::premain`): the role runs before
// libtest starts, in the main thread (for `fork`).
common::premain!(|role| match role {
    "forker" => forker(),
    r => panic!("unknown premain role {r}"),
});

/// Makes an anonymous barrier, forks, and does 100 rounds with the child
/// (which inherits it); then the child is killed while waiting: the
/// round it arrived in completes with the parent, and the next breaks.
fn forker() {
    let b = Barrier::new(2).unwrap();
    // SAFETY: this process is single-threaded (a pre-main role); the child
    // ends with `_exit`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let ok = std::panic::catch_unwind(|| {
            for _ in 0..100 {
                b.wait().expect("a round with the parent");
            }
            let _ = b.wait(); // killed in it
        })
        .is_ok();
        // SAFETY: `_exit` ends the child.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    for _ in 0..100 {
        b.wait().expect("a round with the child");
    }
    while b.n_waiting() == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    // SAFETY: kill(2) and waitpid(2) on our own unreaped child.
    unsafe {
        assert_eq!(libc::kill(pid, libc::SIGKILL), 0);
        let mut status = 0;
        assert_eq!(libc::waitpid(pid, &mut status, 0), pid);
    }
    // The child had arrived: this round completes, the next one breaks.
    assert!(b.wait().expect("the dead child's round").is_leader());
    broken_watched(&b, "the forker");
    tell("forker broken");
}

#[test]
fn a_forked_child_shares_the_barrier() {
    let mut p = spawn("a_forked_child_shares_the_barrier", "forker")
        .premain()
        .start();
    p.expect("forker broken");
    p.wait();
}
