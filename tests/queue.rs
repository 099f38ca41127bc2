//! `Queue<T>` across real processes: every item exactly once and in each
//! producer's order with 1, 2 and 4 producer and consumer processes;
//! wrap-around with capacities 1, 2 and 3; `close` releasing producers and
//! consumers blocked in other processes; timeouts; a producer or consumer
//! SIGKILLed inside its operation (reaped, counted, never blocking the
//! others); scribbled rings; and a random-kill soak (`soak_queue`, 20
//! trials here, 1000 under `--ignored`).

mod common;

use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::time::{Duration, Instant};

use common::owner_death::Rng;
use common::{arg, arg_parse, run_child, spawn, tell, wait_until, Child, ShmName, HANG_LIMIT};
use shmsync::{AtomicArray, AtomicValue, Error, Event, Queue};

/// Where the ring's area starts in a `Queue<u64>` file (the data offset,
/// `docs/ARCHITECTURE.md`), and its words (`src/queue/mod.rs`).
const D: u64 = 192;
const HEAD: u64 = D;
const SLOTS: u64 = D + 320;
/// Slot states (`src/raw/ring.rs`).
const WRITING: u32 = 1 << 30;
const READING: u32 = 3 << 30;
/// A slot's waiter bit (`src/raw/ring.rs`): a waiter marked the slot in
/// its way before sleeping.
const WAITERS: u32 = 1 << 29;

fn read32(name: &str, off: u64) -> u32 {
    let mut b = [0u8; 4];
    common::shm_file(name).read_exact_at(&mut b, off).unwrap();
    u32::from_ne_bytes(b)
}

fn write32(name: &str, off: u64, v: u32) {
    common::shm_file(name)
        .write_all_at(&v.to_ne_bytes(), off)
        .unwrap();
}

fn write64(name: &str, off: u64, v: u64) {
    common::shm_file(name)
        .write_all_at(&v.to_ne_bytes(), off)
        .unwrap();
}

fn read64(name: &str, off: u64) -> u64 {
    let mut b = [0u8; 8];
    common::shm_file(name).read_exact_at(&mut b, off).unwrap();
    u64::from_ne_bytes(b)
}

/// Waits until a waiter has marked slot `index` (it sleeps, or is about
/// to: give it a moment).
fn until_asleep(name: &str, index: u64, what: &str) {
    wait_until(what, || {
        (read64(name, SLOTS + 8 * index) as u32 & WAITERS != 0).then_some(())
    });
    std::thread::sleep(Duration::from_millis(5));
}

fn item(producer: u64, seq: u64) -> u64 {
    (producer << 32) | seq
}

/// A consumer's loop: takes items until the queue is closed and drained,
/// checks each producer's order, marks each item in `seen` (a second mark
/// is a duplicate), and returns how many it took.
fn consume(q: &Queue<u64>, seen: &AtomicArray<u8>, n: u64, batch: bool) -> u64 {
    let mut last: Vec<Option<u64>> = vec![None; 8];
    let mut taken = 0;
    let mut buf = [0u64; 16];
    loop {
        let got = if batch {
            match q.get_into(&mut buf) {
                Ok(k) => &buf[..k],
                Err(Error::Closed) => return taken,
                Err(e) => panic!("get_into: {e}"),
            }
        } else {
            match q.get() {
                Ok(v) => {
                    buf[0] = v;
                    &buf[..1]
                }
                Err(Error::Closed) => return taken,
                Err(e) => panic!("get: {e}"),
            }
        };
        for &v in got {
            let (p, s) = ((v >> 32) as usize, v & 0xffff_ffff);
            assert!(p < 8 && s < n, "item {v:#x} was never put");
            if let Some(l) = last[p] {
                assert!(s > l, "producer {p}: item {s} after {l}");
            }
            last[p] = Some(s);
            let was = seen.at(p * n as usize + s as usize).fetch_add(1, Relaxed);
            assert_eq!(was, 0, "item {v:#x} delivered twice");
            taken += 1;
        }
    }
}

fn produce(q: &Queue<u64>, p: u64, n: u64, batch: bool) {
    if batch {
        let items: Vec<u64> = (0..n).map(|s| item(p, s)).collect();
        for c in items.chunks(7) {
            q.put_slice(c).unwrap();
        }
    } else {
        for s in 0..n {
            q.put(item(p, s)).unwrap();
        }
    }
}

/// `procs` producer and `procs` consumer processes, `n` items per
/// producer, capacity `cap`; every item exactly once.
fn mpmc(test: &str, procs: usize, n: u64, cap: usize) {
    let names: Vec<ShmName> = (0..2).map(|_| ShmName::new("q_mpmc")).collect();
    let q = Queue::<u64>::create(&names[0], cap).unwrap();
    let seen = AtomicArray::<u8>::create(&names[1], &vec![0; procs * n as usize]).unwrap();
    let mut kids: Vec<Child> = Vec::new();
    for i in 0..procs {
        for role in ["producer", "consumer"] {
            kids.push(
                spawn(test, role)
                    .note(&format!(" {i}"))
                    .arg("q", &*names[0])
                    .arg("seen", &*names[1])
                    .arg("id", i)
                    .arg("n", n)
                    .arg("batch", i % 2)
                    .start(),
            );
        }
    }
    for k in &mut kids {
        k.expect("ready");
    }
    for k in &mut kids {
        k.send("go");
    }
    // Producers first (even indices), then close, then the consumers.
    let (producers, consumers): (Vec<_>, Vec<_>) =
        kids.into_iter().enumerate().partition(|(i, _)| i % 2 == 0);
    for (_, k) in producers {
        k.wait();
    }
    q.close();
    let mut total = 0;
    for (_, mut k) in consumers {
        total += k.expect_prefixed("took ").parse::<u64>().unwrap();
        k.wait();
    }
    assert_eq!(total, procs as u64 * n);
    assert!(
        seen.iter().all(|c| c.load(Relaxed) == 1),
        "an item is missing"
    );
    assert_eq!(q.lost(), 0);
    assert_eq!(q.get(), Err(Error::Closed));
    drop((q, seen));
}

fn mpmc_roles(role: &str) {
    let q = Queue::<u64>::open(&arg("q")).unwrap();
    let seen = AtomicArray::<u8>::open(&arg("seen")).unwrap();
    let (id, n): (u64, u64) = (arg_parse("id"), arg_parse("n"));
    let batch = arg_parse::<u32>("batch") == 1;
    common::ready_go();
    match role {
        "producer" => produce(&q, id, n, batch),
        "consumer" => tell(&format!("took {}", consume(&q, &seen, n, batch))),
        r => panic!("unknown role {r}"),
    }
}

#[test]
fn one_to_one_100000() {
    let t = "one_to_one_100000";
    if run_child(t, mpmc_roles) {
        return;
    }
    mpmc(t, 1, 100_000, 64);
}

#[test]
fn two_to_two_100000() {
    let t = "two_to_two_100000";
    if run_child(t, mpmc_roles) {
        return;
    }
    mpmc(t, 2, 100_000, 64);
}

#[test]
fn four_to_four_100000() {
    let t = "four_to_four_100000";
    if run_child(t, mpmc_roles) {
        return;
    }
    mpmc(t, 4, 100_000, 64);
}

#[test]
fn wrap_around_with_capacity_1_2_3() {
    let t = "wrap_around_with_capacity_1_2_3";
    if run_child(t, mpmc_roles) {
        return;
    }
    for cap in [1, 2, 3] {
        mpmc(t, 2, 5_000, cap);
    }
}

#[test]
fn close_releases_producers_and_consumers_blocked_in_other_processes() {
    let t = "close_releases_producers_and_consumers_blocked_in_other_processes";
    if run_child(t, |role| {
        let q = Queue::<u64>::open(&arg("q")).unwrap();
        tell("blocking");
        let start = Instant::now();
        match role {
            "producer" => assert_eq!(q.put(9), Err(Error::Closed)),
            "consumer" => assert_eq!(q.get(), Err(Error::Closed)),
            r => panic!("unknown role {r}"),
        }
        assert!(start.elapsed() < HANG_LIMIT);
        // Closed for good, in this process too.
        assert_eq!(q.try_put(1), Err(Error::Closed));
    }) {
        return;
    }
    let names: Vec<ShmName> = (0..2).map(|_| ShmName::new("q_close")).collect();
    let full = Queue::<u64>::create(&names[0], 1).unwrap();
    let empty = Queue::<u64>::create(&names[1], 2).unwrap();
    full.put(7).unwrap();
    let mut kids = Vec::new();
    for i in 0..2 {
        kids.push(
            spawn(t, "producer")
                .note(&format!(" {i}"))
                .arg("q", &*names[0])
                .start(),
        );
        kids.push(
            spawn(t, "consumer")
                .note(&format!(" {i}"))
                .arg("q", &*names[1])
                .start(),
        );
    }
    for k in &mut kids {
        k.expect("blocking");
    }
    // Both blocked by slot 0: the producers by the item of lap 0, the
    // consumers by the empty slot.
    until_asleep(&names[0], 0, "producers asleep");
    until_asleep(&names[1], 0, "consumers asleep");
    assert!(full.close());
    assert!(empty.close());
    for k in kids {
        k.wait();
    }
    // What was in it is still delivered, then Closed.
    assert_eq!(full.get(), Ok(7));
    assert_eq!(full.get(), Err(Error::Closed));
    assert_eq!(empty.try_get(), Err(Error::Closed));
    drop((full, empty));
}

#[test]
fn timeouts_return_after_their_time() {
    let q = Queue::<u64>::new(1).unwrap();
    let t = Instant::now();
    assert_eq!(q.get_timeout(Duration::from_millis(30)), Err(Error::Empty));
    assert!(t.elapsed() >= Duration::from_millis(30));
    assert_eq!(q.get_timeout(Duration::ZERO), Err(Error::Empty));
    q.put(1).unwrap();
    let t = Instant::now();
    assert_eq!(
        q.put_timeout(2, Duration::from_millis(30)),
        Err(Error::Full)
    );
    assert!(t.elapsed() >= Duration::from_millis(30));
    assert!(t.elapsed() < HANG_LIMIT);
    assert_eq!(q.try_put(2), Err(Error::Full));
    // Duration::MAX cannot be added to the clock: waits until an item.
    let q2 = q.clone();
    let h = std::thread::spawn(move || {
        q2.put_timeout(3, Duration::MAX).unwrap();
    });
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(q.get_timeout(Duration::MAX), Ok(1));
    h.join().unwrap();
    assert_eq!(q.get_timeout(Duration::from_millis(1)), Ok(3));
}

#[test]
fn bad_arguments_and_kinds_are_errors() {
    assert!(matches!(
        Queue::<u64>::new(0),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        Queue::<u64>::new(usize::MAX),
        Err(Error::InvalidArgument(_))
    ));
    #[derive(Clone, Copy, shmsync::bytemuck::Zeroable, shmsync::bytemuck::Pod)]
    #[repr(C)]
    struct Nothing;
    impl shmsync::Element for Nothing {}
    assert!(matches!(
        Queue::<Nothing>::new(4),
        Err(Error::InvalidArgument(_))
    ));
    let (a, b) = (ShmName::new("q_kind"), ShmName::new("q_kind"));
    let q = Queue::<u64>::create(&a, 4).unwrap();
    let e = Event::create(&b).unwrap();
    assert!(matches!(
        Queue::<u32>::open(&a),
        Err(Error::TypeMismatch { .. })
    ));
    assert!(matches!(Event::open(&a), Err(Error::TypeMismatch { .. })));
    assert!(matches!(
        Queue::<u64>::open(&b),
        Err(Error::TypeMismatch { .. })
    ));
    let again = Queue::<u64>::open(&a).unwrap();
    again.put(5).unwrap();
    assert_eq!(q.get(), Ok(5));
    assert_eq!(again.capacity(), 4);
    drop((q, e, again));
}

/// A scribbled capacity is refused at open (its own bounds are never
/// believed), and a scribbled ring never makes an operation panic, hang or
/// index out of range.
#[test]
fn scribbled_rings_never_panic_or_hang() {
    let name = ShmName::new("q_scr");
    let q = Queue::<u64>::create(&name, 3).unwrap();
    write32(&name, D + 264, 1000);
    assert!(matches!(Queue::<u64>::open(&name), Err(Error::Corrupt(_))));
    write32(&name, D + 264, 3);
    let f = common::shm_file(&name);
    let mut rng = Rng::new(Rng::seed());
    for round in 0..300 {
        let n = 320 + 3 * 8 + 3 * 8;
        let mut bytes = common::random_bytes(n);
        // Keep some rounds plausible: small positions and stamps.
        if round % 2 == 0 {
            for c in bytes.chunks_mut(4) {
                c.copy_from_slice(
                    &((rng.below(12) as u32) << (8 * (rng.below(2) as u32))).to_ne_bytes(),
                );
            }
        }
        // The fixed fields (capacity, slot bytes) are left alone: they are
        // read once, at open.
        f.write_all_at(&bytes[..264], D).unwrap();
        f.write_all_at(&bytes[320..], D + 320).unwrap();
        let _ = q.try_put(1);
        let _ = q.try_get();
        let _ = q.put_timeout(2, Duration::from_millis(1));
        let _ = q.get_timeout(Duration::from_millis(1));
        let mut buf = [0; 4];
        let _ = q.put_slice(&[]);
        let _ = q.get_into(&mut buf[..0]);
        assert!(q.len() <= 3);
        let _ = (q.is_full(), q.is_empty(), q.lost(), q.is_closed());
    }
    drop(q);
}

/// A child that does one `put` (so its liveness byte is held), then makes
/// the slot at `index` look claimed by itself (as if killed inside an
/// operation, after its claim) and waits to be killed.
fn claim_and_die(role: &str) {
    let q = Queue::<u64>::open(&arg("q")).unwrap();
    let name = arg("q");
    let tid = common::gettid();
    let index: u64 = arg_parse("index");
    let stamp: u32 = arg_parse("stamp");
    match role {
        "writer" => {
            q.put(1).unwrap();
            assert_eq!(q.get(), Ok(1));
            write64(
                &name,
                SLOTS + 8 * index,
                (u64::from(stamp) << 32) | u64::from(WRITING | tid),
            );
        }
        "reader" => {
            q.put(1).unwrap();
            write64(
                &name,
                SLOTS + 8 * index,
                (u64::from(stamp) << 32) | u64::from(READING | tid),
            );
            write32(&name, HEAD, read32(&name, HEAD).wrapping_add(1));
        }
        r => panic!("unknown role {r}"),
    }
    tell("claimed");
    common::block_until_killed();
}

/// A producer killed after claiming a slot, before publishing: a consumer
/// blocked behind it (in another process) reaps the slot, the loss is
/// counted once, and the items put behind it arrive.
#[test]
fn a_producer_killed_inside_put_is_reaped_by_a_waiting_consumer() {
    let t = "a_producer_killed_inside_put_is_reaped_by_a_waiting_consumer";
    if run_child(t, |role| match role {
        "consumer" => {
            let q = Queue::<u64>::open(&arg("q")).unwrap();
            tell("ready");
            let start = Instant::now();
            assert_eq!(q.get(), Ok(42));
            assert!(start.elapsed() < HANG_LIMIT);
        }
        r => claim_and_die(r),
    }) {
        return;
    }
    let name = ShmName::new("q_kw");
    let q = Queue::<u64>::create(&name, 4).unwrap();
    // The writer's put/get leave head = tail = 1; it claims slot 1 for
    // position 1 and "advances" nothing (killed before the tail CAS).
    let mut w = spawn(t, "writer")
        .arg("q", &*name)
        .arg("index", 1)
        .arg("stamp", 1)
        .start();
    w.expect("claimed");
    q.put(42).unwrap(); // lands behind the dead claim, at position 2
    let mut c = spawn(t, "consumer").arg("q", &*name).start();
    c.expect("ready");
    until_asleep(&name, 1, "consumer blocked by the claim");
    assert_eq!(q.lost(), 0, "a live claimant is never reaped");
    w.kill();
    c.wait();
    assert_eq!(q.lost(), 1);
    assert_eq!(q.try_get(), Err(Error::Empty));
    q.put(43).unwrap();
    assert_eq!(q.get(), Ok(43));
    drop(q);
}

/// A consumer killed after claiming an item, before freeing its slot: a
/// producer blocked on the full queue (in another process) reaps it.
#[test]
fn a_consumer_killed_inside_get_is_reaped_by_a_waiting_producer() {
    let t = "a_consumer_killed_inside_get_is_reaped_by_a_waiting_producer";
    if run_child(t, |role| match role {
        "producer" => {
            let q = Queue::<u64>::open(&arg("q")).unwrap();
            tell("ready");
            q.put(2).unwrap();
        }
        r => claim_and_die(r),
    }) {
        return;
    }
    let name = ShmName::new("q_kr");
    let q = Queue::<u64>::create(&name, 1).unwrap();
    // The reader puts 1 (full) and claims it for reading.
    let mut r = spawn(t, "reader")
        .arg("q", &*name)
        .arg("index", 0)
        .arg("stamp", 0)
        .start();
    r.expect("claimed");
    let mut p = spawn(t, "producer").arg("q", &*name).start();
    p.expect("ready");
    until_asleep(&name, 0, "producer blocked by the claim");
    assert_eq!(q.lost(), 0);
    r.kill();
    p.wait();
    assert_eq!(q.lost(), 1, "the item the reader was taking");
    assert_eq!(q.get(), Ok(2));
    drop(q);
}

/// One soak trial: 2 producers and 2 consumers on a small queue; one of
/// them (or, every third trial, one producer and one consumer) SIGKILLed
/// at a random moment. The survivors finish; then the queue is closed and
/// drained. No item is delivered twice; every item a producer finished
/// putting arrives, except at most one per kill; `lost()` agrees.
fn soak_trial(test: &str, rng: &mut Rng) -> (u64, u64) {
    const N: u64 = 1 << 20;
    let names: Vec<ShmName> = (0..4).map(|_| ShmName::new("q_soak")).collect();
    let stop = AtomicValue::<u32>::create(&names[3], 0).unwrap();
    let q = Queue::<u64>::create(&names[0], 1 + rng.below(4) as usize).unwrap();
    let seen = AtomicArray::<u8>::create(&names[1], &vec![0; 2 * N as usize]).unwrap();
    let sent = AtomicArray::<u64>::create(&names[2], &[0, 0]).unwrap();
    let mut kids: Vec<Option<Child>> = Vec::new();
    for i in 0..2 {
        for role in ["producer", "consumer"] {
            kids.push(Some(
                spawn(test, role)
                    .note(&format!(" {i}"))
                    .arg("q", &*names[0])
                    .arg("seen", &*names[1])
                    .arg("sent", &*names[2])
                    .arg("stop", &*names[3])
                    .arg("id", i)
                    .arg("n", N)
                    .start(),
            ));
        }
    }
    for k in kids.iter_mut().flatten() {
        k.expect("ready");
    }
    // Victims: index 0, 2 producers; 1, 3 consumers.
    let first = rng.below(4) as usize;
    let mut victims = vec![first];
    if rng.below(3) == 0 {
        victims.push((first + 1) % 4);
    }
    std::thread::sleep(Duration::from_micros(1_000 + rng.below(15_000)));
    let mut killed_producers = 0;
    let mut killed_consumers = 0;
    for &v in &victims {
        let k = kids[v].take().unwrap();
        k.kill_any();
        if v % 2 == 0 {
            killed_producers += 1;
        } else {
            killed_consumers += 1;
        }
    }
    // Release: the producers' Acquire loads of `stop`.
    stop.store(1, Release);
    for i in [0, 2] {
        if let Some(k) = kids[i].take() {
            k.wait();
        }
    }
    q.close();
    for i in [1, 3] {
        if let Some(k) = kids[i].take() {
            k.wait();
        }
    }
    // Every process that could touch the queue is gone: count.
    let kills = victims.len() as u64;
    let mut missing = 0;
    for p in 0..2 {
        // Acquire: pairs with the producer's Release store (and its exit).
        let c = sent.at(p).load(Acquire);
        for s in 0..N {
            let n = seen.at(p * N as usize + s as usize).load(Relaxed);
            assert!(n <= 1, "item {p}/{s} delivered {n} times");
            if s > c {
                assert_eq!(n, 0, "item {p}/{s} was never put");
            } else if s < c && n == 0 {
                missing += 1;
            }
        }
    }
    let lost = u64::from(q.lost());
    assert!(lost <= kills, "{lost} losses for {kills} kills");
    assert!(
        missing <= kills,
        "{missing} items missing for {kills} kills"
    );
    // A dead consumer's claim is a loss of a sent item; a dead producer's
    // is an item it never finished putting; a consumer killed after its
    // get returned took the item without recording it.
    assert!(
        missing <= lost + killed_consumers,
        "{missing} missing, {lost} counted"
    );
    assert!(
        lost <= missing + killed_producers,
        "{lost} counted, {missing} missing"
    );
    assert_eq!(q.try_get(), Err(Error::Closed));
    drop((q, seen, sent, stop));
    (kills, lost)
}

fn soak_roles(role: &str) {
    let q = Queue::<u64>::open(&arg("q")).unwrap();
    let seen = AtomicArray::<u8>::open(&arg("seen")).unwrap();
    let sent = AtomicArray::<u64>::open(&arg("sent")).unwrap();
    let stop = AtomicValue::<u32>::open(&arg("stop")).unwrap();
    let (id, n): (u64, u64) = (arg_parse("id"), arg_parse("n"));
    tell("ready");
    match role {
        "producer" => {
            // Acquire: pairs with the parent's Release store.
            for s in (0..n).take_while(|_| stop.load(Acquire) == 0) {
                q.put(item(id, s)).unwrap();
                // Release: the parent's Acquire load after this exits.
                sent.at(id as usize).store(s + 1, Release);
            }
        }
        // One item at a time: a consumer killed after a batch returned
        // would take several items without recording them.
        "consumer" => {
            consume(&q, &seen, n, false);
        }
        r => panic!("unknown role {r}"),
    }
}

#[test]
fn random_kills_never_wedge_the_queue() {
    let t = "random_kills_never_wedge_the_queue";
    if run_child(t, soak_roles) {
        return;
    }
    let seed = Rng::seed();
    let mut rng = Rng::new(seed);
    let mut lost = 0;
    for trial in 0..20 {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| soak_trial(t, &mut rng)));
        assert!(r.is_ok(), "trial {trial} failed (SHMSYNC_OD_SEED={seed})");
        lost += r.map_or(0, |(_, l)| l);
    }
    println!("random kills: 20 trials, {lost} items lost (and counted)");
}

/// `cargo test --release --test queue -- --ignored soak_queue --nocapture`
/// (`SHMSYNC_QUEUE_TRIALS=N`, default 1000; `SHMSYNC_OD_SEED` replays).
#[test]
#[ignore]
fn soak_queue() {
    let t = "soak_queue";
    if run_child(t, soak_roles) {
        return;
    }
    let n: usize = std::env::var("SHMSYNC_QUEUE_TRIALS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let seed = Rng::seed();
    let mut rng = Rng::new(seed);
    let start = Instant::now();
    let (mut kills, mut lost) = (0, 0);
    for trial in 0..n {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| soak_trial(t, &mut rng)));
        assert!(r.is_ok(), "trial {trial} failed (SHMSYNC_OD_SEED={seed})");
        let (k, l) = r.unwrap_or_default();
        kills += k;
        lost += l;
    }
    println!(
        "soak_queue: {n} random-kill trials ({kills} kills, {lost} items lost and counted) in {:?}",
        start.elapsed()
    );
}

#[test]
fn len_capacity_and_debug() {
    let q = Queue::<u64>::new(3).unwrap();
    assert_eq!(q.capacity(), 3);
    assert!(q.is_empty() && !q.is_full());
    q.put_slice(&[1, 2, 3]).unwrap();
    assert!(q.is_full());
    assert_eq!(q.len(), 3);
    assert!(format!("{q:?}").contains("capacity: 3"));
    let mut buf = [0; 2];
    assert_eq!(q.get_into(&mut buf), Ok(2));
    assert_eq!(buf, [1, 2]);
    assert_eq!(q.len(), 1);
}

/// A consumer killed holding an item that no producer needs yet (room
/// left): `lost()` finds it all the same, and only once it is dead.
#[test]
fn lost_counts_a_dead_consumer_nobody_waits_for() {
    let t = "lost_counts_a_dead_consumer_nobody_waits_for";
    if run_child(t, claim_and_die) {
        return;
    }
    let name = ShmName::new("q_lostscan");
    let q = Queue::<u64>::create(&name, 4).unwrap();
    let mut r = spawn(t, "reader")
        .arg("q", &*name)
        .arg("index", 0)
        .arg("stamp", 0)
        .start();
    r.expect("claimed");
    assert_eq!(q.lost(), 0, "alive");
    r.kill();
    assert_eq!(q.lost(), 1);
    assert_eq!(q.lost(), 1, "counted once");
    q.put(3).unwrap();
    assert_eq!(q.get(), Ok(3));
    drop(q);
}
