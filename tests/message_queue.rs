//! `MessageQueue` across real processes: random sizes 0..=max with
//! checksums from 2 sender to 2 receiver processes; oversize messages
//! refused whole; `recv_into` with a short buffer losing nothing; close;
//! a sender killed inside `send` (reaped, counted); a random-kill soak;
//! scribbled slots.

mod common;

use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::time::{Duration, Instant};

use common::owner_death::Rng;
use common::{arg, arg_parse, run_child, spawn, tell, wait_until, Child, ShmName, HANG_LIMIT};
use shmsync::{AtomicArray, AtomicValue, Error, MessageQueue};

/// The ring's area in a message queue's file (data offset 192) and its
/// words (`src/queue/mod.rs`).
const D: u64 = 192;
const SLOTS: u64 = D + 320;
const WRITING: u32 = 1 << 30;
/// A slot's waiter bit (`src/raw/ring.rs`).
const WAITERS: u32 = 1 << 29;

/// FNV-1a: the message checksum.
fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Message `seq` of sender `p`: a header (sender, sequence, checksum of
/// the rest) and a random-length body derived from them.
fn message(p: u64, seq: u64, max: usize) -> Vec<u8> {
    let mut rng = Rng::new((p << 32 | seq).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let len = match seq % 5 {
        0 => 0,
        1 => max,
        _ => rng.below(max as u64 + 1) as usize,
    };
    let salt = rng.next();
    let body: Vec<u8> = (0..len as u64)
        .map(|k| (salt.wrapping_add(k.wrapping_mul(0x9e37)) >> 7) as u8)
        .collect();
    if len < 24 {
        return body; // too short for a header: checked by its content
    }
    let mut m = body;
    m[..8].copy_from_slice(&p.to_ne_bytes());
    m[8..16].copy_from_slice(&seq.to_ne_bytes());
    let sum = fnv(&m[24..]);
    m[16..24].copy_from_slice(&sum.to_ne_bytes());
    m
}

/// Checks a received message: untorn (checksum), and returns (sender,
/// sequence) when it has a header.
fn check(m: &[u8], max: usize) -> Option<(u64, u64)> {
    assert!(m.len() <= max, "a {}-byte message", m.len());
    if m.len() < 24 {
        return None;
    }
    let p = u64::from_ne_bytes(m[..8].try_into().unwrap());
    let seq = u64::from_ne_bytes(m[8..16].try_into().unwrap());
    let sum = u64::from_ne_bytes(m[16..24].try_into().unwrap());
    assert_eq!(sum, fnv(&m[24..]), "torn message {p}/{seq}");
    assert_eq!(m, message(p, seq, max), "message {p}/{seq} differs");
    Some((p, seq))
}

fn roles(role: &str) {
    let q = MessageQueue::open(&arg("q")).unwrap();
    let seen = AtomicArray::<u8>::open(&arg("seen")).unwrap();
    let (id, n): (u64, u64) = (arg_parse("id"), arg_parse("n"));
    let max = q.max_size();
    tell("ready");
    match role {
        "sender" => {
            for s in 0..n {
                q.send(&message(id, s, max)).unwrap();
            }
        }
        "receiver" => {
            let mut buf = vec![0u8; max];
            let mut k = 0u64;
            loop {
                // Alternate the two receive forms.
                let r = if k % 2 == 0 {
                    q.recv()
                } else {
                    q.recv_into(&mut buf).map(|n| buf[..n].to_vec())
                };
                k += 1;
                match r {
                    Ok(m) => {
                        if let Some((p, s)) = check(&m, max) {
                            let was = seen.at((p * n + s) as usize).fetch_add(1, Relaxed);
                            assert_eq!(was, 0, "message {p}/{s} twice");
                        }
                    }
                    Err(Error::Closed) => break,
                    Err(e) => panic!("{e}"),
                }
            }
        }
        r => panic!("unknown role {r}"),
    }
}

#[test]
fn random_sizes_two_to_two_with_checksums() {
    let t = "random_sizes_two_to_two_with_checksums";
    if run_child(t, roles) {
        return;
    }
    const N: u64 = 3_000;
    for (cap, max) in [(8, 200), (1, 64), (3, 4096)] {
        let names: Vec<ShmName> = (0..2).map(|_| ShmName::new("mq_2")).collect();
        let q = MessageQueue::create(&names[0], cap, max).unwrap();
        let seen = AtomicArray::<u8>::create(&names[1], &vec![0; 2 * N as usize]).unwrap();
        let mut kids: Vec<Child> = Vec::new();
        for i in 0..2 {
            for role in ["sender", "receiver"] {
                kids.push(
                    spawn(t, role)
                        .note(&format!(" {i}"))
                        .arg("q", &*names[0])
                        .arg("seen", &*names[1])
                        .arg("id", i)
                        .arg("n", N)
                        .start(),
                );
            }
        }
        for k in &mut kids {
            k.expect("ready");
        }
        let (senders, receivers): (Vec<_>, Vec<_>) =
            kids.into_iter().enumerate().partition(|(i, _)| i % 2 == 0);
        for (_, k) in senders {
            k.wait();
        }
        q.close();
        for (_, k) in receivers {
            k.wait();
        }
        // Every message with a header arrived exactly once.
        for p in 0..2 {
            for s in 0..N {
                let long = message(p, s, q.max_size()).len() >= 24;
                let n = seen.at((p * N + s) as usize).load(Relaxed);
                assert_eq!(n, u8::from(long), "message {p}/{s} (cap {cap})");
            }
        }
        assert_eq!(q.lost(), 0);
        drop((q, seen));
    }
}

#[test]
fn oversize_messages_are_refused_whole() {
    let q = MessageQueue::new(2, 10).unwrap();
    assert_eq!(q.max_size(), 16, "rounded up to 8 bytes");
    q.send(&[7; 16]).unwrap();
    assert_eq!(
        q.send(&[1; 17]),
        Err(Error::MessageTooLarge { len: 17, max: 16 })
    );
    assert_eq!(
        q.try_send(&[1; 100]),
        Err(Error::MessageTooLarge { len: 100, max: 16 })
    );
    assert_eq!(q.len(), 1, "nothing of it was sent");
    assert_eq!(q.recv().unwrap(), [7; 16]);
    assert!(matches!(
        MessageQueue::new(2, usize::MAX),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        MessageQueue::new(0, 8),
        Err(Error::InvalidArgument(_))
    ));
    let z = MessageQueue::new(2, 0).unwrap();
    z.send(b"").unwrap();
    assert_eq!(z.recv().unwrap(), b"");
    assert!(matches!(z.send(b"x"), Err(Error::MessageTooLarge { .. })));
}

#[test]
fn recv_into_a_short_buffer_loses_nothing() {
    let q = MessageQueue::new(2, 64).unwrap();
    q.send(b"0123456789").unwrap();
    q.send(b"ab").unwrap();
    let mut small = [0u8; 4];
    for _ in 0..3 {
        assert_eq!(
            q.recv_into(&mut small),
            Err(Error::BufferTooSmall { needed: 10, len: 4 })
        );
        assert_eq!(
            q.try_recv_into(&mut small),
            Err(Error::BufferTooSmall { needed: 10, len: 4 })
        );
    }
    assert_eq!(q.len(), 2);
    let mut buf = [0u8; 10];
    assert_eq!(q.recv_into(&mut buf), Ok(10));
    assert_eq!(&buf, b"0123456789");
    assert_eq!(q.recv_into(&mut small), Ok(2));
    assert_eq!(&small[..2], b"ab");
    let mut none = [0u8; 0];
    q.send(b"").unwrap();
    assert_eq!(q.recv_into(&mut none), Ok(0));
}

#[test]
fn close_and_timeouts() {
    let q = MessageQueue::new(1, 8).unwrap();
    let t = Instant::now();
    assert_eq!(q.recv_timeout(Duration::from_millis(20)), Err(Error::Empty));
    assert!(t.elapsed() >= Duration::from_millis(20));
    q.send(b"a").unwrap();
    let t = Instant::now();
    assert_eq!(
        q.send_timeout(b"b", Duration::from_millis(20)),
        Err(Error::Full)
    );
    assert!(t.elapsed() >= Duration::from_millis(20));
    let q2 = q.clone();
    let h = std::thread::spawn(move || q2.send(b"c"));
    std::thread::sleep(Duration::from_millis(5));
    assert!(q.close());
    assert_eq!(h.join().unwrap(), Err(Error::Closed));
    assert_eq!(q.recv().unwrap(), b"a");
    assert_eq!(q.recv(), Err(Error::Closed));
    let mut buf = [0; 8];
    assert_eq!(q.recv_into(&mut buf), Err(Error::Closed));
    assert!(format!("{q:?}").contains("max_size: 8"));
}

/// A sender that claimed a slot and was killed before publishing: a
/// receiver blocked behind it in another process reaps it, the loss is
/// counted, and the next message arrives.
#[test]
fn a_sender_killed_inside_send_is_reaped() {
    let t = "a_sender_killed_inside_send_is_reaped";
    if run_child(t, |role| {
        let name = arg("q");
        let q = MessageQueue::open(&name).unwrap();
        match role {
            "victim" => {
                q.send(b"warm-up").unwrap();
                assert_eq!(q.recv().unwrap(), b"warm-up");
                let tid = common::gettid();
                // Slot 1, position 1: claimed, half written.
                common::shm_file(&name)
                    .write_all_at(
                        &((1u64 << 32) | u64::from(WRITING | tid)).to_ne_bytes(),
                        SLOTS + 8,
                    )
                    .unwrap();
                tell("claimed");
                common::block_until_killed();
            }
            "receiver" => {
                tell("ready");
                assert_eq!(q.recv().unwrap(), b"after");
            }
            r => panic!("unknown role {r}"),
        }
    }) {
        return;
    }
    let name = ShmName::new("mq_kill");
    let q = MessageQueue::create(&name, 4, 32).unwrap();
    let mut v = spawn(t, "victim").arg("q", &*name).start();
    v.expect("claimed");
    q.send(b"after").unwrap();
    let mut r = spawn(t, "receiver").arg("q", &*name).start();
    r.expect("ready");
    // The receiver, blocked by the claim, marks its slot before it sleeps.
    wait_until("the receiver asleep", || {
        let mut b = [0u8; 8];
        common::shm_file(&name)
            .read_exact_at(&mut b, SLOTS + 8)
            .unwrap();
        (u64::from_ne_bytes(b) as u32 & WAITERS != 0).then_some(())
    });
    assert_eq!(q.lost(), 0);
    v.kill();
    r.wait();
    assert_eq!(q.lost(), 1);
    drop(q);
}

/// Random kills of senders and receivers: no message twice, none torn,
/// the survivors finish, losses ≤ kills.
#[test]
fn random_kills_never_wedge_or_tear() {
    let t = "random_kills_never_wedge_or_tear";
    if run_child(t, |role| {
        let q = MessageQueue::open(&arg("q")).unwrap();
        let seen = AtomicArray::<u8>::open(&arg("seen")).unwrap();
        let stop = AtomicValue::<u32>::open(&arg("stop")).unwrap();
        let (id, n): (u64, u64) = (arg_parse("id"), arg_parse("n"));
        let max = q.max_size();
        tell("ready");
        if role == "sender" {
            // Acquire: pairs with the parent's Release store.
            for s in (0..n).take_while(|_| stop.load(Acquire) == 0) {
                q.send(&message(id, s, max)).unwrap();
            }
        } else {
            while let Ok(m) = q.recv() {
                if let Some((p, s)) = check(&m, max) {
                    let was = seen.at((p * n + s) as usize).fetch_add(1, Relaxed);
                    assert_eq!(was, 0, "message {p}/{s} twice");
                }
            }
        }
    }) {
        return;
    }
    const N: u64 = 1 << 18;
    let mut rng = Rng::new(Rng::seed());
    let mut lost = 0;
    for _ in 0..10 {
        let names: Vec<ShmName> = (0..3).map(|_| ShmName::new("mq_soak")).collect();
        let q = MessageQueue::create(&names[0], 1 + rng.below(3) as usize, 8192).unwrap();
        let seen = AtomicArray::<u8>::create(&names[1], &vec![0; 2 * N as usize]).unwrap();
        let stop = AtomicValue::<u32>::create(&names[2], 0).unwrap();
        let mut kids: Vec<Option<Child>> = Vec::new();
        for i in 0..2 {
            for role in ["sender", "receiver"] {
                kids.push(Some(
                    spawn(t, role)
                        .note(&format!(" {i}"))
                        .arg("q", &*names[0])
                        .arg("seen", &*names[1])
                        .arg("stop", &*names[2])
                        .arg("id", i)
                        .arg("n", N)
                        .start(),
                ));
            }
        }
        for k in kids.iter_mut().flatten() {
            k.expect("ready");
        }
        std::thread::sleep(Duration::from_micros(5_000 + rng.below(20_000)));
        let victim = rng.below(4) as usize;
        kids[victim].take().unwrap().kill_any();
        // Release: the senders' Acquire loads.
        stop.store(1, Release);
        for i in [0, 2] {
            if let Some(k) = kids[i].take() {
                k.wait();
            }
        }
        q.close();
        let start = Instant::now();
        for i in [1, 3] {
            if let Some(k) = kids[i].take() {
                k.wait();
            }
        }
        assert!(start.elapsed() < HANG_LIMIT);
        assert!(q.lost() <= 1, "{} losses for one kill", q.lost());
        lost += q.lost();
        drop((q, seen, stop));
    }
    println!("random kills: 10 trials, {lost} messages lost (and counted)");
}

/// A scribbled length never makes a receive read out of range or panic.
#[test]
fn scribbled_lengths_are_clamped() {
    let name = ShmName::new("mq_scr");
    let q = MessageQueue::create(&name, 2, 16).unwrap();
    let f = common::shm_file(&name);
    // Payloads start at 320 + 2 * 8 = 336 (8-aligned); a slot is 8 + 16.
    let payload = D + 336;
    for len in [17u64, u64::MAX, 1 << 40, 16, 0] {
        q.send(b"0123456789abcdef").unwrap();
        f.write_all_at(&len.to_ne_bytes(), payload).unwrap();
        let mut buf = [0u8; 16];
        match q.recv_into(&mut buf) {
            Ok(n) => assert!(n <= 16),
            Err(e) => panic!("{e}"),
        }
        // Back to slot 0 for the next round.
        q.send(b"").unwrap();
        q.recv().unwrap();
    }
    drop(q);
}

/// Typed messages across processes (feature `serde`): what one process
/// sends with `send_value`, another receives with `recv_value`.
#[cfg(feature = "serde")]
#[test]
fn typed_values_across_processes() {
    let t = "typed_values_across_processes";
    if run_child(t, |_| {
        let q = MessageQueue::open(&arg("q")).unwrap();
        for i in 0..100u32 {
            q.send_value(&(i, format!("item {i}"), vec![i as u8; i as usize]))
                .unwrap();
        }
        q.send_value(&Option::<u64>::None).unwrap();
    }) {
        return;
    }
    let name = ShmName::new("mq_serde");
    let q = MessageQueue::create(&name, 4, 256).unwrap();
    let child = spawn(t, "sender").arg("q", &*name).start();
    for i in 0..100u32 {
        let (n, s, v): (u32, String, Vec<u8>) = q.recv_value().unwrap();
        assert_eq!(
            (n, s, v),
            (i, format!("item {i}"), vec![i as u8; i as usize])
        );
    }
    assert_eq!(q.recv_value::<Option<u64>>(), Ok(None));
    child.wait();
    // Too large once encoded: refused whole.
    assert!(matches!(
        q.send_value(&vec![0u8; 300]),
        Err(Error::MessageTooLarge { .. })
    ));
    // Not a valid value of the type asked for.
    q.send(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).unwrap();
    assert!(matches!(
        q.recv_value::<u32>(),
        Err(Error::Serialization(_))
    ));
    drop(q);
}
