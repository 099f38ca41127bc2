//! A hostile or careless peer: another process with write access to a
//! segment's file, using nothing but `pwrite(2)` and `ftruncate(2)` on
//! `/dev/shm/NAME`, while a holder process holds the segment's lock.
//!
//! The promise under test: such a peer can break mutual exclusion of the
//! lock it scribbles on, but never the holder's memory safety. After every
//! scribble the holder releases its guards without a crash or a panic (in
//! this debug build: no overflow, no assertion on a shared value), its
//! private memory is unchanged, its other locks — ours and glibc's robust
//! mutexes in the same thread — still lock and unlock, and when it is then
//! killed holding one of each, both are recovered by the next locker.
//!
//! Every scenario runs in both owner-death modes (the kernel's robust list
//! and the liveness fallback, `SHMSYNC_ROBUST=fallback`).

mod common;

use std::os::unix::fs::FileExt as _;
use std::time::Duration;

use common::layout::{SLOT_EXTRA, SLOT_NEXT, SLOT_PREV, SLOT_STATE, SLOT_WORD};
use common::owner_death::{expect_owner_died, mode_tests, Mode};
use common::{
    arg, await_msg, block_until_killed, gettid, glibc_timedlock, init_robust_mutex, robust_list,
    run_child, shm_file, spawn, tell, ShmName, Spawn,
};
use shmsync::{LockError, RLock, SharedMemory, TryLockError, Value};

/// What the holder's private canary holds throughout.
const CANARY: u64 = 0x5eed_5eed_5eed_5eed;

/// Offset of the glibc robust mutex in the `G` block.
const GLIBC_AT: usize = 64;

/// How the holder holds its locks when the peer writes.
#[derive(Debug, Clone, Copy)]
enum Layout {
    /// One lock, alone on the thread's robust list.
    Alone,
    /// Two of ours, `B` taken after `A`; the peer scribbles on `B`, the
    /// holder releases `A` first, then `B`.
    NestedOuter,
    /// Two of ours; the peer scribbles on `A` (the one linked first).
    NestedInner,
    /// A glibc robust mutex, then ours on top of it.
    OverGlibc,
}

impl Layout {
    fn parse(s: &str) -> Layout {
        match s {
            "Alone" => Layout::Alone,
            "NestedOuter" => Layout::NestedOuter,
            "NestedInner" => Layout::NestedInner,
            "OverGlibc" => Layout::OverGlibc,
            _ => panic!("layout {s}"),
        }
    }
}

/// Writes `bytes` at `off` of the segment's file, as a peer.
fn pwrite(name: &str, off: usize, bytes: &[u8]) {
    shm_file(name)
        .write_all_at(bytes, off as u64)
        .expect("pwrite");
}

/// The holder, once it has released everything after the scribble: its
/// canary is intact, locks of every kind work, its robust list is well
/// formed; then it holds the glibc mutex and `C`'s lock and waits to be
/// killed.
fn holder_after(canary: &u64, g: &SharedMemory, c: &Value<i64>) {
    assert_eq!(
        std::hint::black_box(*canary),
        CANARY,
        "private memory changed"
    );
    let gm: *mut libc::pthread_mutex_t = g.as_ptr().wrapping_add(GLIBC_AT).cast();
    for _ in 0..3 {
        c.update(|x| x + 1).unwrap();
        // SAFETY: an initialised robust shared mutex in a live mapping.
        unsafe {
            assert_eq!(libc::pthread_mutex_lock(gm), 0);
            assert_eq!(libc::pthread_mutex_unlock(gm), 0);
        }
        let extra = Value::<i64>::new(0).unwrap();
        extra.update(|x| x + 1).unwrap();
    }
    if shmsync::robustness() == shmsync::Robustness::KernelList {
        assert_eq!(robust_list(), Vec::<usize>::new(), "list empty again");
    }
    assert_eq!(
        std::hint::black_box(*canary),
        CANARY,
        "private memory changed"
    );
    // Hold one of each and die: both must be recovered.
    // SAFETY: as above.
    assert_eq!(unsafe { libc::pthread_mutex_lock(gm) }, 0);
    let guard = c.lock().unwrap();
    guard.set(1000);
    if shmsync::robustness() == shmsync::Robustness::KernelList {
        assert_eq!(robust_list().len(), 2, "both linked");
    }
    tell("holding");
    block_until_killed();
}

/// The parent, after killing the holder: the glibc mutex and `C` were
/// recovered.
fn check_recovered(g: &SharedMemory, c: &Value<i64>) {
    let gm: *mut libc::pthread_mutex_t = g.as_ptr().wrapping_add(GLIBC_AT).cast();
    // SAFETY: an initialised robust shared mutex in a live mapping, whose
    // holder is dead.
    unsafe {
        assert_eq!(
            glibc_timedlock(gm, Duration::from_secs(20)),
            libc::EOWNERDEAD,
            "glibc's robust mutex recovered"
        );
        libc::pthread_mutex_consistent(gm);
        libc::pthread_mutex_unlock(gm);
    }
    let g = expect_owner_died(
        "our lock after its holder died",
        c.lock_timeout(Duration::from_secs(20)),
    );
    assert_eq!(g.get(), 1000);
    g.mark_consistent();
}

/// The objects a holder uses: `A` and `B` (ours, scribbled on), `C` (ours,
/// checked afterwards) and `G` (a block with a glibc robust mutex).
struct Objects {
    // Dropped in this order: the objects, then their names.
    a: Value<i64>,
    b: Value<i64>,
    c: Value<i64>,
    g: SharedMemory,
    na: ShmName,
    nb: ShmName,
    nc: ShmName,
    ng: ShmName,
}

impl Objects {
    /// New objects, named `<tag>a` ... `<tag>g`.
    fn new(tag: &str) -> Objects {
        let name = |x: &str| ShmName::new(&format!("{tag}{x}"));
        let (na, nb, nc, ng) = (name("a"), name("b"), name("c"), name("g"));
        let g = SharedMemory::create(&ng, 4096).unwrap();
        // SAFETY: the offset lies inside the mapping, 8-aligned; nobody uses
        // the block yet.
        unsafe { init_robust_mutex(g.as_ptr().add(GLIBC_AT).cast()) };
        Objects {
            a: Value::create(&na, 0).unwrap(),
            b: Value::create(&nb, 0).unwrap(),
            c: Value::create(&nc, 0).unwrap(),
            g,
            na,
            nb,
            nc,
            ng,
        }
    }

    /// A holder child of `test` in `mode`, given the objects' names as `A`,
    /// `B`, `C` and `G`; `note` names the case in failure messages.
    fn holder(&self, test: &str, mode: Mode, note: &str) -> Spawn {
        spawn(test, "holder")
            .mode(mode)
            .arg("A", &*self.na)
            .arg("B", &*self.nb)
            .arg("C", &*self.nc)
            .arg("G", &*self.ng)
            .note(note)
    }
}

/// Holder role for the link scribbles: holds per `LAYOUT`, reports the
/// canary's address, waits for the peer, releases, then [`holder_after`].
fn link_holder() {
    let a = Value::<i64>::open(&arg("A")).unwrap();
    let b = Value::<i64>::open(&arg("B")).unwrap();
    let c = Value::<i64>::open(&arg("C")).unwrap();
    let g = SharedMemory::open(&arg("G")).unwrap();
    let canary = Box::new(CANARY);
    let gm: *mut libc::pthread_mutex_t = g.as_ptr().wrapping_add(GLIBC_AT).cast();
    let layout = Layout::parse(&arg("LAYOUT"));
    tell(&format!("canary {}", &raw const *canary as usize));
    match layout {
        Layout::Alone => {
            let ga = a.lock().unwrap();
            tell("held");
            await_msg("go");
            drop(ga);
        }
        Layout::NestedOuter | Layout::NestedInner => {
            let ga = a.lock().unwrap();
            let gb = b.lock().unwrap();
            tell("held");
            await_msg("go");
            drop(ga);
            drop(gb);
        }
        Layout::OverGlibc => {
            // SAFETY: an initialised robust shared mutex in a live mapping.
            assert_eq!(unsafe { libc::pthread_mutex_lock(gm) }, 0);
            let ga = a.lock().unwrap();
            tell("held");
            await_msg("go");
            drop(ga);
            // SAFETY: held by this thread.
            assert_eq!(unsafe { libc::pthread_mutex_unlock(gm) }, 0);
        }
    }
    // The objects scribbled on go away (their mappings with them).
    drop(a);
    drop(b);
    holder_after(&canary, &g, &c);
}

fn link_scribble(test: &str, mode: Mode) {
    if run_child(test, |_| link_holder()) {
        return;
    }
    for layout in ["Alone", "NestedOuter", "NestedInner", "OverGlibc"] {
        for field in [SLOT_NEXT, SLOT_PREV] {
            for value in ["zero", "garbage", "canary", "swap"] {
                let ctx = format!("{layout} field {field} value {value}");
                let o = Objects::new("hp");
                let mut h = o.holder(test, mode, &ctx).arg("LAYOUT", layout).start();
                let canary: u64 = h.expect_prefixed("canary ").parse().unwrap();
                h.expect("held");
                let target = if layout == "NestedOuter" {
                    &o.nb
                } else {
                    &o.na
                };
                let v: u64 = match value {
                    "zero" => 0,
                    "garbage" => 0xdead_beef_0000,
                    // A write through it would change the holder's canary.
                    "canary" => canary,
                    _ => 0,
                };
                if value == "swap" {
                    // Real addresses of the holder's list, in the wrong
                    // places: `prev` into `next` and `next` into `prev`.
                    let f = shm_file(target);
                    let (prev, next) = (SLOT_PREV as u64, SLOT_NEXT as u64);
                    let mut p = [0u8; 8];
                    let mut n = [0u8; 8];
                    f.read_exact_at(&mut p, prev).unwrap();
                    f.read_exact_at(&mut n, next).unwrap();
                    f.write_all_at(&n, prev).unwrap();
                    f.write_all_at(&p, next).unwrap();
                } else {
                    pwrite(target, field, &v.to_ne_bytes());
                }
                h.send("go");
                h.expect("holding");
                h.kill();
                check_recovered(&o.g, &o.c);
                // The scribbled lock itself: released by the holder's
                // guard, so it can be taken again (mutual exclusion of a
                // scribbled lock is not promised, but a release is).
                for v in [&o.a, &o.b] {
                    match v.try_lock() {
                        Ok(_) => {}
                        Err(e) => panic!("{ctx}: not released: {e:?}"),
                    }
                }
            }
        }
    }
}

mode_tests! {
    link_scribble: link_scribble_list, link_scribble_fallback;
}

/// Holder role for the count and word scribbles: holds `A` once, lets the
/// peer write, drops the guard and the object, then [`holder_after`].
fn count_holder() {
    let a = Value::<i64>::open(&arg("A")).unwrap();
    let c = Value::<i64>::open(&arg("C")).unwrap();
    let g = SharedMemory::open(&arg("G")).unwrap();
    let canary = Box::new(CANARY);
    let ga = a.lock().unwrap();
    ga.set(7);
    tell("held");
    await_msg("go");
    drop(ga);
    tell("released");
    await_msg("checked");
    drop(a);
    holder_after(&canary, &g, &c);
}

fn count_scribble(test: &str, mode: Mode) {
    if run_child(test, |_| count_holder()) {
        return;
    }
    let cases: [(&str, usize, Vec<u8>); 7] = [
        ("extra raised", SLOT_EXTRA, 5u32.to_ne_bytes().to_vec()),
        ("extra max", SLOT_EXTRA, u32::MAX.to_ne_bytes().to_vec()),
        ("word zeroed", SLOT_WORD, 0u32.to_ne_bytes().to_vec()),
        (
            "word other owner",
            SLOT_WORD,
            12345u32.to_ne_bytes().to_vec(),
        ),
        ("word all bits", SLOT_WORD, u32::MAX.to_ne_bytes().to_vec()),
        ("state garbage", SLOT_STATE, 77u32.to_ne_bytes().to_vec()),
        ("truncated", 0, Vec::new()),
    ];
    for (what, off, bytes) in cases {
        let o = Objects::new("hc");
        let mut h = o.holder(test, mode, what).start();
        h.expect("held");
        if what == "truncated" {
            shm_file(&o.na).set_len(1).unwrap();
        } else {
            pwrite(&o.na, off, &bytes);
        }
        h.send("go");
        h.expect("released");
        if what.starts_with("extra") {
            // The holder's only guard released the lock, whatever the page
            // said about its holds.
            let g =
                o.a.try_lock()
                    .unwrap_or_else(|e| panic!("{what}: still held after the only guard: {e:?}"));
            assert_eq!(g.get(), 7);
        }
        h.send("checked");
        h.expect("holding");
        h.kill();
        check_recovered(&o.g, &o.c);
        drop(o);
    }
}

mode_tests! {
    count_scribble: count_and_word_scribble_list, count_and_word_scribble_fallback;
}

/// A word that names the calling thread, which holds no guard, is a dead
/// owner's (a thread that reused its TID) or a peer's doing: the caller
/// takes it over and is told, instead of taking a recursive hold that no
/// guard would ever release.
#[test]
fn word_naming_the_caller_is_taken_over() {
    let name = ShmName::new("hme");
    let v = Value::<i64>::create(&name, 3).unwrap();
    let tid = gettid();
    pwrite(&name, SLOT_WORD, &tid.to_ne_bytes());
    match v.lock() {
        Err(LockError::OwnerDied(g)) => {
            assert_eq!(g.get(), 3);
            g.mark_consistent();
        }
        other => panic!("expected OwnerDied, got {other:?}"),
    }
    // Released by that one guard: another thread can take it.
    std::thread::scope(|s| {
        s.spawn(|| assert!(v.try_lock().is_ok()));
    });
    // A recursive lock held through two handles of one file (two mappings)
    // is still the same thread's recursion.
    let rl_name = ShmName::new("hrl");
    let l1 = RLock::create(&rl_name).unwrap();
    let l2 = RLock::open(&rl_name).unwrap();
    let g1 = l1.lock().unwrap();
    let g2 = l2.lock().unwrap();
    assert!(l2.is_held_by_current_thread());
    drop(g1);
    assert!(l1.is_locked(), "one hold left");
    std::thread::scope(|s| {
        s.spawn(|| assert!(matches!(l1.try_lock(), Err(TryLockError::WouldBlock))));
    });
    drop(g2);
    assert!(!l1.is_locked());
}

/// Timeouts saturate: any `Duration` waits like `lock()` (no overflow
/// panic), and returns as soon as the lock is released.
#[test]
fn huge_timeouts_wait_like_lock() {
    for t in [
        Duration::MAX,
        Duration::from_secs(u64::MAX / 2),
        Duration::new(u64::MAX, 999_999_999),
    ] {
        let l = RLock::new().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::scope(|s| {
            let g = l.lock().unwrap();
            let l2 = &l;
            s.spawn(move || {
                tx.send(()).unwrap();
                let got = l2.lock_timeout(t);
                assert!(got.is_ok(), "{t:?}: {got:?}");
            });
            rx.recv().unwrap();
            std::thread::sleep(Duration::from_millis(50));
            drop(g);
        });
    }
}

/// A careless holder: a guard forgotten with `mem::forget`, then its
/// object dropped. The lock stays held, but the mapping stays in place, so
/// that this thread's robust list never points at unmapped memory: glibc's
/// robust mutexes and our other locks keep working.
fn forgotten_guard(test: &str, mode: Mode) {
    if run_child(test, |_| {
        let v = Value::<i64>::new(1).unwrap();
        std::mem::forget(v.lock().unwrap());
        drop(v);
        // SAFETY: all-zero bytes are valid storage for a mutex (initialised
        // below before use).
        let mut m = Box::new(unsafe { std::mem::zeroed::<libc::pthread_mutex_t>() });
        // SAFETY: private storage for a mutex nobody else uses.
        unsafe { init_robust_mutex(&mut *m) };
        for _ in 0..3 {
            // SAFETY: an initialised robust mutex.
            unsafe {
                assert_eq!(libc::pthread_mutex_lock(&mut *m), 0);
                assert_eq!(libc::pthread_mutex_unlock(&mut *m), 0);
            }
            let other = Value::<i64>::new(0).unwrap();
            other.update(|x| x + 1).unwrap();
        }
        if shmsync::robustness() == shmsync::Robustness::KernelList {
            assert_eq!(robust_list().len(), 1, "the forgotten hold, still mapped");
        }
    }) {
        return;
    }
    spawn(test, "careless").mode(mode).start().wait();
}

mode_tests! {
    forgotten_guard: forgotten_guard_list, forgotten_guard_fallback;
}

/// More locks held at once than the inline records: all are counted,
/// linked, released in any order, and recovered when the holder dies.
fn many_locks(test: &str, mode: Mode) {
    const N: usize = 40;
    if run_child(test, |role| {
        let names: Vec<String> = (0..N).map(|i| arg(&format!("L{i}"))).collect();
        let locks: Vec<RLock> = names.iter().map(|n| RLock::open(n).unwrap()).collect();
        // Second mappings of the same files: recursion across them.
        let again: Vec<RLock> = names.iter().map(|n| RLock::open(n).unwrap()).collect();
        let kernel = shmsync::robustness() == shmsync::Robustness::KernelList;
        let mut guards: Vec<_> = locks.iter().map(|l| Some(l.lock().unwrap())).collect();
        let mut inner: Vec<_> = again.iter().map(|l| Some(l.lock().unwrap())).collect();
        if kernel {
            // One node per lock: two mappings of one slot share its links.
            assert_eq!(robust_list().len(), N, "every lock linked once");
        }
        // Release in a scrambled order, outer and inner guards mixed.
        for k in 0..2 * N {
            let i = (k * 7) % N;
            let g = if k % 2 == 0 {
                &mut guards[i]
            } else {
                &mut inner[i]
            };
            let g = if g.is_some() {
                g
            } else if k % 2 == 0 {
                &mut inner[i]
            } else {
                &mut guards[i]
            };
            drop(g.take());
            if kernel {
                let held = (0..N)
                    .filter(|&j| guards[j].is_some() || inner[j].is_some())
                    .count();
                assert_eq!(robust_list().len(), held, "linked: exactly the held locks");
            }
        }
        for l in &locks {
            assert!(!l.is_locked(), "every lock released");
        }
        if kernel {
            assert_eq!(robust_list(), Vec::<usize>::new());
        }
        if role == "die" {
            let _held: Vec<_> = locks.iter().map(|l| l.lock().unwrap()).collect();
            tell("holding");
            block_until_killed();
        }
    }) {
        return;
    }
    let names: Vec<ShmName> = (0..N).map(|_| ShmName::new("hml")).collect();
    let locks: Vec<RLock> = names.iter().map(|n| RLock::create(n).unwrap()).collect();
    let mut s = spawn(test, "die").mode(mode);
    for (i, n) in names.iter().enumerate() {
        s = s.arg(&format!("L{i}"), &**n);
    }
    let mut h = s.start();
    h.expect("holding");
    h.kill();
    for l in &locks {
        let r = l.lock_timeout(Duration::from_secs(20));
        expect_owner_died("a lock after its holder died", r).mark_consistent();
    }
}

mode_tests! {
    many_locks: many_locks_list, many_locks_fallback;
}
