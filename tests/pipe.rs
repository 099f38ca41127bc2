//! `Pipe` across real processes: ping-pong of 10 000 messages of every
//! size, a peer that closes (drain, then `Disconnected`), a peer SIGKILLed
//! idle, in the middle of sends and in the middle of receives (drain, then
//! `Disconnected`, never a hang, never a torn or repeated message), the
//! rule that each end belongs to one process (by name and after `fork`),
//! `poll`, a scribbled page, and a random-kill soak (`soak_pipe`, 20
//! trials here, 1000 with `--ignored`).

mod common;

use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use common::owner_death::Rng;
use common::{arg, arg_parse, run_child, spawn, tell, ShmName, HANG_LIMIT};
use shmsync::{Connection, End, Error, Event, Pipe};

/// Where a pipe's words start in its file (`docs/ARCHITECTURE.md`, "The
/// pipe").
const WORDS: u64 = 192;
/// The control words before the rings' data.
const CTRL: u64 = 80;

/// A message that tells its own sequence number and length: the number
/// (8 bytes) and a pattern derived from it, `len` ≥ 8 bytes in all.
fn payload(seq: u64, len: usize) -> Vec<u8> {
    let mut v = seq.to_le_bytes().to_vec();
    v.extend((8..len).map(|k| (seq as usize).wrapping_mul(31).wrapping_add(k) as u8));
    v
}

/// The length of message `seq` for a pipe of capacity `cap` (8..=cap,
/// including both bounds).
fn len_of(seq: u64, cap: usize) -> usize {
    match seq % 5 {
        0 => cap,
        1 => 8,
        _ => 8 + (seq.wrapping_mul(7919) as usize) % (cap - 7),
    }
}

/// Checks that `m` is message `want` whole; returns its length.
fn check(m: &[u8], want: u64, cap: usize) {
    assert!(m.len() >= 8, "a message of {} bytes", m.len());
    let seq = u64::from_le_bytes(m[..8].try_into().unwrap());
    assert_eq!(
        seq, want,
        "messages in order, none lost between, none twice"
    );
    assert_eq!(m.len(), len_of(seq, cap), "message {seq}: length");
    assert_eq!(m, payload(seq, m.len()), "message {seq}: torn");
}

/// Receives with a watchdog: a hang fails the test.
fn recv_watched(c: &mut Connection) -> Result<Vec<u8>, Error> {
    match c.recv_bytes_timeout(HANG_LIMIT) {
        Ok(Some(m)) => Ok(m),
        Ok(None) => panic!("recv hung"),
        Err(e) => Err(e),
    }
}

/// Sends with a watchdog.
fn send_watched(c: &mut Connection, m: &[u8]) -> Result<(), Error> {
    match c.send_bytes_timeout(m, HANG_LIMIT) {
        Ok(true) => Ok(()),
        Ok(false) => panic!("send hung"),
        Err(e) => Err(e),
    }
}

/// A word of the pipe's control area, as a peer reads it from the file.
fn word(name: &str, i: u64) -> u32 {
    let mut b = [0u8; 4];
    common::shm_file(name)
        .read_exact_at(&mut b, WORDS + 4 * i)
        .expect("read a pipe word");
    u32::from_ne_bytes(b)
}

#[test]
fn ping_pong_10000_messages_of_every_size() {
    const ROUNDS: u64 = 10_000;
    const CAP: usize = 1000; // a 1 KiB ring: wraps every few messages
    let test = "ping_pong_10000_messages_of_every_size";
    if run_child(test, |_| {
        let mut b = Connection::open(&arg("pipe"), End::B).unwrap();
        tell("opened");
        let mut empty_seen = false;
        for i in 0..ROUNDS {
            let m = recv_watched(&mut b).unwrap();
            // Sizes 0 and max and everything between, echoed reversed.
            let len = (i as usize * 37) % (CAP + 1);
            assert_eq!(m.len(), len);
            assert!(m
                .iter()
                .enumerate()
                .all(|(k, &x)| x == (i as usize + k) as u8));
            empty_seen |= m.is_empty();
            let back: Vec<u8> = m.iter().rev().copied().collect();
            send_watched(&mut b, &back).unwrap();
        }
        assert!(empty_seen);
    }) {
        return;
    }
    let name = ShmName::new("pipe_pp");
    let (mut a, b) = Pipe::create(&name, CAP).unwrap();
    let mut child = spawn(test, "echo").arg("pipe", &*name).start();
    child.expect("opened");
    drop(b); // the child holds end B now
    let start = Instant::now();
    let (mut max_seen, mut zero_seen) = (false, false);
    for i in 0..ROUNDS {
        let len = (i as usize * 37) % (CAP + 1);
        max_seen |= len == CAP;
        zero_seen |= len == 0;
        let m: Vec<u8> = (0..len).map(|k| (i as usize + k) as u8).collect();
        send_watched(&mut a, &m).unwrap();
        let back = recv_watched(&mut a).unwrap();
        assert!(back.iter().rev().eq(m.iter()), "round {i}");
    }
    println!("{ROUNDS} round trips in {:?}", start.elapsed());
    assert!(max_seen && zero_seen);
    // Positions went round the 1 KiB ring many times.
    assert!(word(&name, 16) & ((1 << 30) - 1) > 100 * 1024);
    child.wait();
    // The child dropped its end: drained, then disconnected.
    assert_eq!(recv_watched(&mut a), Err(Error::Disconnected));
    drop(a);
}

#[test]
fn a_peer_that_closes_is_drained_then_disconnected() {
    let test = "a_peer_that_closes_is_drained_then_disconnected";
    if run_child(test, |_| {
        let mut b = Connection::open(&arg("pipe"), End::B).unwrap();
        for i in 0..3u64 {
            b.send_bytes(&payload(i, 8)).unwrap();
        }
        b.close().unwrap();
        tell("closed");
        // This process lives on: the close alone disconnects.
        common::await_msg("exit");
    }) {
        return;
    }
    let name = ShmName::new("pipe_close");
    let (mut a, b) = Pipe::create(&name, 64).unwrap();
    let mut child = spawn(test, "closer").arg("pipe", &*name).start();
    child.expect("closed");
    drop(b);
    for i in 0..3 {
        assert_eq!(recv_watched(&mut a).unwrap(), payload(i, 8));
    }
    assert_eq!(recv_watched(&mut a), Err(Error::Disconnected));
    assert_eq!(a.try_recv_bytes(), Err(Error::Disconnected));
    assert!(a.poll(Duration::ZERO).unwrap(), "poll: end of file");
    assert_eq!(a.send_bytes(b"x"), Err(Error::Disconnected));
    child.send("exit");
    child.wait();
}

/// How a killed child was busy.
#[derive(Clone, Copy, Debug)]
enum Busy {
    /// Sent some messages, then waits for the kill.
    Idle,
    /// Sending in a loop (into a small ring: mostly full).
    Sending,
    /// Receiving in a loop.
    Receiving,
}

fn killed_roles(role: &str) {
    let mut b = Connection::open(&arg("pipe"), End::B).unwrap();
    let cap: usize = arg_parse("cap");
    match role {
        "idle" => {
            // Three 12-byte records: they fit the ring of any cap ≥ 40.
            for i in 0..3u64 {
                b.send_bytes(&payload(i, 8)).unwrap();
            }
            tell("sent");
            common::block_until_killed();
        }
        "sending" => {
            tell("ready");
            for i in 0.. {
                b.send_bytes(&payload(i, len_of(i, cap))).unwrap();
            }
        }
        "receiving" => {
            tell("ready");
            for i in 0.. {
                check(&b.recv_bytes().unwrap(), i, cap);
            }
        }
        r => panic!("unknown role {r}"),
    }
}

/// One trial: a child that uses end B is SIGKILLed while `busy`, after a
/// random delay; this process's end A must drain what was sent whole and
/// in order, then report `Disconnected` (receive and send), never hang.
fn killed_trial(test: &str, busy: Busy, rng: &mut Rng) -> Duration {
    let cap = 40 + rng.below(200) as usize;
    let name = ShmName::new("pipe_kill");
    let (mut a, b) = Pipe::create(&name, cap).unwrap();
    let role = match busy {
        Busy::Idle => "idle",
        Busy::Sending => "sending",
        Busy::Receiving => "receiving",
    };
    let mut child = spawn(test, role)
        .arg("pipe", &*name)
        .arg("cap", cap)
        .start();
    child.expect(if let Busy::Idle = busy {
        "sent"
    } else {
        "ready"
    });
    drop(b);
    let mut next = 0u64;
    // Traffic for a random time (the child is mid-operation when killed).
    let until = Instant::now() + Duration::from_micros(rng.below(20_000));
    match busy {
        Busy::Idle => {}
        Busy::Sending => {
            while Instant::now() < until {
                if let Some(m) = a.try_recv_bytes().unwrap() {
                    check(&m, next, cap);
                    next += 1;
                }
            }
        }
        Busy::Receiving => {
            while Instant::now() < until {
                if a.try_send_bytes(&payload(next, len_of(next, cap))).unwrap() {
                    next += 1;
                }
            }
        }
    }
    child.kill();
    let killed = Instant::now();
    match busy {
        Busy::Idle | Busy::Sending => {
            loop {
                match recv_watched(&mut a) {
                    Ok(m) => {
                        match busy {
                            Busy::Idle => assert_eq!(m, payload(next, 8)),
                            _ => check(&m, next, cap),
                        }
                        next += 1;
                    }
                    Err(e) => {
                        assert_eq!(e, Error::Disconnected);
                        break;
                    }
                }
            }
            if let Busy::Idle = busy {
                assert_eq!(next, 3, "everything sent before the death is received");
            }
            assert_eq!(a.send_bytes(b"x"), Err(Error::Disconnected));
        }
        Busy::Receiving => {
            // Sends fill the ring (nobody reads), then report the death.
            let err = loop {
                if let Err(e) = send_watched(&mut a, &payload(next, len_of(next, cap))) {
                    break e;
                }
                next += 1;
            };
            assert_eq!(err, Error::Disconnected);
            assert_eq!(recv_watched(&mut a), Err(Error::Disconnected));
        }
    }
    let took = killed.elapsed();
    drop(a);
    took
}

#[test]
fn a_peer_killed_idle_is_drained_then_disconnected() {
    let test = "a_peer_killed_idle_is_drained_then_disconnected";
    if run_child(test, killed_roles) {
        return;
    }
    let mut rng = Rng::new(Rng::seed());
    // A receiver already asleep when the peer dies is woken by its probe.
    let name = ShmName::new("pipe_kidle");
    let (mut a, b) = Pipe::create(&name, 40).unwrap();
    let mut child = spawn(test, "idle")
        .arg("pipe", &*name)
        .arg("cap", 40)
        .start();
    child.expect("sent");
    drop(b);
    for i in 0..3 {
        assert_eq!(recv_watched(&mut a).unwrap(), payload(i, 8));
    }
    let t = std::thread::spawn(move || {
        let r = recv_watched(&mut a);
        (r, Instant::now())
    });
    // Let it fall asleep (the WAITING bit on ring 0's head).
    common::wait_until("the receiver asleep", || {
        (word(&name, 16) & (1 << 31) != 0).then_some(())
    });
    std::thread::sleep(Duration::from_millis(60));
    child.kill();
    let killed = Instant::now();
    let (r, at) = t.join().unwrap();
    assert_eq!(r, Err(Error::Disconnected));
    println!(
        "an asleep receiver learnt of the death after {:?}",
        at - killed
    );
    let took = killed_trial(test, Busy::Idle, &mut rng);
    println!("idle peer killed: drained and disconnected in {took:?}");
}

#[test]
fn a_peer_killed_mid_send_never_tears_or_repeats() {
    let test = "a_peer_killed_mid_send_never_tears_or_repeats";
    if run_child(test, killed_roles) {
        return;
    }
    let seed = Rng::seed();
    let mut rng = Rng::new(seed);
    for trial in 0..5 {
        let took = killed_trial(test, Busy::Sending, &mut rng);
        println!("trial {trial} (seed {seed}): disconnected {took:?} after the kill");
    }
}

#[test]
fn a_peer_killed_mid_recv_makes_sends_fail() {
    let test = "a_peer_killed_mid_recv_makes_sends_fail";
    if run_child(test, killed_roles) {
        return;
    }
    let seed = Rng::seed();
    let mut rng = Rng::new(seed);
    for trial in 0..5 {
        let took = killed_trial(test, Busy::Receiving, &mut rng);
        println!("trial {trial} (seed {seed}): disconnected {took:?} after the kill");
    }
}

/// `cargo test --release --test pipe -- --ignored soak_pipe --nocapture`
/// (`SHMSYNC_PIPE_TRIALS=N`, default 1000; `SHMSYNC_OD_SEED` replays).
#[test]
#[ignore]
fn soak_pipe() {
    soak("soak_pipe", "SHMSYNC_PIPE_TRIALS", 1000);
}

#[test]
fn soak_pipe_quick() {
    soak("soak_pipe_quick", "SHMSYNC_PIPE_QUICK_TRIALS", 20);
}

fn soak(test: &str, env: &str, default: usize) {
    if run_child(test, killed_roles) {
        return;
    }
    let n: usize = std::env::var(env)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    let seed = Rng::seed();
    let mut rng = Rng::new(seed);
    let start = Instant::now();
    let mut worst = Duration::ZERO;
    for trial in 0..n {
        let busy = [Busy::Idle, Busy::Sending, Busy::Receiving][trial % 3];
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            killed_trial(test, busy, &mut rng)
        }));
        match r {
            Ok(took) => worst = worst.max(took),
            Err(_) => panic!("trial {trial} ({busy:?}) failed (SHMSYNC_OD_SEED={seed})"),
        }
    }
    println!(
        "{test}: {n} random-kill trials in {:?}; slowest drain-and-disconnect {worst:?}",
        start.elapsed()
    );
}

#[test]
fn each_end_belongs_to_one_process() {
    let test = "each_end_belongs_to_one_process";
    if run_child(test, |role| {
        let name = arg("pipe");
        match role {
            "intruder" => {
                // End A is the parent's: refused, and nothing is disturbed.
                let mut a = Connection::open(&name, End::A).unwrap();
                assert_eq!(a.send_bytes(b"x"), Err(Error::EndInUse));
                assert_eq!(a.try_recv_bytes(), Err(Error::EndInUse));
                drop(a); // closes nothing: never taken here
                         // End B is free: taken here.
                let mut b = Connection::open(&name, End::B).unwrap();
                b.send_bytes(b"from b").unwrap();
                tell("took b");
                common::await_msg("exit");
            }
            "late" => {
                // End B was used by a process that has exited: gone for good.
                let mut b = Connection::open(&name, End::B).unwrap();
                assert_eq!(b.send_bytes(b"x"), Err(Error::Disconnected));
            }
            r => panic!("unknown role {r}"),
        }
    }) {
        return;
    }
    let name = ShmName::new("pipe_own");
    let (mut a, b) = Pipe::create(&name, 64).unwrap();
    a.send_bytes(b"from a").unwrap(); // end A is taken by this process
                                      // A second handle of end A in this process is refused too.
    let mut a2 = Connection::open(&name, End::A).unwrap();
    assert_eq!(a2.send_bytes(b"x"), Err(Error::EndInUse));
    drop(a2);
    let mut child = spawn(test, "intruder").arg("pipe", &*name).start();
    child.expect("took b");
    drop(b);
    assert_eq!(recv_watched(&mut a).unwrap(), b"from b");
    // This process's own copy of end B is refused now.
    let mut b2 = Connection::open(&name, End::B).unwrap();
    assert_eq!(b2.try_recv_bytes(), Err(Error::EndInUse));
    child.send("exit");
    child.wait();
    // The user of B exited: B is closed; nobody can take it again.
    assert_eq!(b2.try_recv_bytes(), Err(Error::Disconnected));
    drop(b2);
    spawn(test, "late").arg("pipe", &*name).start().wait();
    assert_eq!(recv_watched(&mut a), Err(Error::Disconnected));
    drop(a);
}

#[test]
fn poll_waits_for_a_message_or_the_end() {
    let test = "poll_waits_for_a_message_or_the_end";
    if run_child(test, |_| {
        let mut b = Connection::open(&arg("pipe"), End::B).unwrap();
        tell("opened");
        common::await_msg("send");
        b.send_bytes(b"late").unwrap();
        common::await_msg("exit");
    }) {
        return;
    }
    let name = ShmName::new("pipe_poll");
    let (mut a, b) = Pipe::create(&name, 64).unwrap();
    let mut child = spawn(test, "sender").arg("pipe", &*name).start();
    child.expect("opened");
    drop(b);
    assert!(!a.poll(Duration::ZERO).unwrap());
    let t = Instant::now();
    assert!(!a.poll(Duration::from_millis(30)).unwrap());
    assert!(
        t.elapsed() >= Duration::from_millis(30),
        "not before its time"
    );
    child.send("send");
    assert!(a.poll(HANG_LIMIT).unwrap());
    assert!(a.poll(Duration::ZERO).unwrap(), "poll consumes nothing");
    assert_eq!(a.recv_bytes().unwrap(), b"late");
    assert!(!a.poll(Duration::ZERO).unwrap());
    child.send("exit");
    child.wait();
    assert!(a.poll(HANG_LIMIT).unwrap(), "end of file");
    assert_eq!(a.recv_bytes(), Err(Error::Disconnected));
    drop(a);
}

// Single-threaded children (`Spawn::premain`), for `fork`.
common::premain!(|role| match role {
    "forker" => forker(),
    "fork_child_dies" => fork_child_dies(),
    r => panic!("unknown premain role {r}"),
});

/// Python's pattern: make a pipe, fork, the parent keeps end A and the
/// child end B, each dropping the other.
fn forker() {
    let (mut a, b) = Pipe::new(128).unwrap();
    a.send_bytes(b"before fork").unwrap(); // end A is the parent's already
                                           // SAFETY: single-threaded (a pre-main role); the child ends with
                                           // `_exit`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let mut a = a;
            let mut b = b;
            // The parent's end stays the parent's.
            assert_eq!(a.try_send_bytes(b"x"), Err(Error::EndInUse));
            drop(a); // closes nothing
            assert_eq!(b.recv_bytes().unwrap(), b"before fork");
            for i in 0..100u32 {
                let m = b.recv_bytes().unwrap();
                assert_eq!(m, i.to_le_bytes());
                b.send_bytes(&(i + 1).to_le_bytes()).unwrap();
            }
        }));
        // SAFETY: ends the forked child without the parent's destructors.
        unsafe { libc::_exit(if r.is_ok() { 0 } else { 101 }) };
    }
    drop(b); // closes nothing: the child has it
    for i in 0..100u32 {
        a.send_bytes(&i.to_le_bytes()).unwrap();
        assert_eq!(recv_watched(&mut a).unwrap(), (i + 1).to_le_bytes());
    }
    // The child exits (ending its use of B): drained, then disconnected.
    assert_eq!(recv_watched(&mut a), Err(Error::Disconnected));
    let mut status = 0;
    // SAFETY: waits for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child failed"
    );
    tell("forked ping-pong done");
}

/// A forked child that dies before it ever uses its end: the parent,
/// having dropped its copy, learns it from the end's holds.
fn fork_child_dies() {
    let (mut a, b) = Pipe::new(16).unwrap();
    // SAFETY: as in `forker`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        drop(a);
        let _keep = b;
        // Holds its end unused for a while, then dies without using it
        // (SIGKILL by itself).
        std::thread::sleep(Duration::from_millis(200));
        // SAFETY: raising a signal in our own process.
        unsafe { libc::raise(libc::SIGKILL) };
        // SAFETY: not reached.
        unsafe { libc::_exit(1) };
    }
    drop(b);
    // The child holds end B (unused): not gone.
    assert_eq!(a.try_recv_bytes(), Ok(None));
    assert_eq!(recv_watched(&mut a), Err(Error::Disconnected));
    let mut status = 0;
    // SAFETY: waits for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFSIGNALED(status), "the child died of its SIGKILL");
    tell("disconnected");
}

#[test]
fn fork_parent_keeps_one_end_the_child_the_other() {
    let mut p = spawn("fork_parent_keeps_one_end_the_child_the_other", "forker")
        .premain()
        .start();
    p.expect("forked ping-pong done");
    p.wait();
}

#[test]
fn a_forked_child_dead_before_using_its_end_disconnects() {
    let mut p = spawn(
        "a_forked_child_dead_before_using_its_end_disconnects",
        "fork_child_dies",
    )
    .premain()
    .start();
    p.expect("disconnected");
    p.wait();
}

#[test]
fn both_ends_in_one_process_and_simplex_rules() {
    let (mut a, mut b) = Pipe::new(16).unwrap();
    a.send_bytes(b"ab").unwrap();
    b.send_bytes(b"ba").unwrap();
    assert_eq!(b.recv_bytes().unwrap(), b"ab");
    assert_eq!(a.recv_bytes().unwrap(), b"ba");
    // Both ends live in this process: neither is judged dead.
    assert_eq!(a.try_recv_bytes(), Ok(None));
    assert_eq!(
        a.send_bytes(&[0; 17]),
        Err(Error::MessageTooLarge { len: 17, max: 16 })
    );
    let mut small = [0u8; 1];
    b.send_bytes(b"xy").unwrap();
    assert_eq!(
        a.recv_bytes_into(&mut small),
        Err(Error::BufferTooSmall { needed: 2, len: 1 })
    );
    assert_eq!(recv_watched(&mut a).unwrap(), b"xy", "nothing lost");
    drop(b);
    assert_eq!(a.recv_bytes(), Err(Error::Disconnected));

    let (mut r, mut w) = Pipe::simplex(8).unwrap();
    assert!(matches!(r.send_bytes(b"x"), Err(Error::InvalidArgument(_))));
    assert!(matches!(w.recv_bytes(), Err(Error::InvalidArgument(_))));
    assert!(matches!(
        w.poll(Duration::ZERO),
        Err(Error::InvalidArgument(_))
    ));
    w.send_bytes(b"x").unwrap();
    assert_eq!(r.recv_bytes().unwrap(), b"x");
    drop(r);
    assert_eq!(w.send_bytes(b"x"), Err(Error::Disconnected));

    for bad in [0, (1 << 28) + 1, usize::MAX] {
        assert!(matches!(Pipe::new(bad), Err(Error::InvalidArgument(_))));
    }
}

#[test]
fn opening_as_the_wrong_kind_is_type_mismatch() {
    let (p, e) = (ShmName::new("pipe_k"), ShmName::new("pipe_k"));
    let pipe = Pipe::create(&p, 8).unwrap();
    let ev = Event::create(&e).unwrap();
    assert!(matches!(Event::open(&p), Err(Error::TypeMismatch { .. })));
    assert!(matches!(
        Connection::open(&e, End::A),
        Err(Error::TypeMismatch { .. })
    ));
    drop((pipe, ev));
}

#[test]
fn a_scribbled_page_never_hangs_or_panics() {
    let name = ShmName::new("pipe_scr");
    let (mut a, mut b) = Pipe::create(&name, 24).unwrap();
    a.send_bytes(b"x").unwrap();
    b.recv_bytes().unwrap();
    let f = common::shm_file(&name);
    let len = f.metadata().unwrap().len();
    let words = (len - WORDS) / 4;
    assert_eq!(words, CTRL + 2 * 8, "two 32-byte rings");
    let bytes = common::random_bytes(4 * 4096);
    let special = [0u32, u32::MAX, 1 << 30, 1 << 31, (1 << 30) - 4, 7, 28, 32];
    for (i, c) in bytes.chunks(8).enumerate() {
        let r = u32::from_ne_bytes(c[..4].try_into().unwrap());
        let v = if i % 3 == 0 {
            special[i / 3 % special.len()]
        } else {
            r
        };
        // One of the words that matter: flags, heads, tails, data.
        let at = [2, 3, 16, 32, 48, 64, CTRL, CTRL + 1, CTRL + 8, CTRL + 15]
            [u32::from_ne_bytes(c[4..].try_into().unwrap()) as usize % 10];
        f.write_all_at(&v.to_ne_bytes(), WORDS + 4 * at).unwrap();
        let short = Duration::from_micros(100);
        let _ = a.send_bytes_timeout(b"abc", short);
        let _ = b.recv_bytes_timeout(short);
        let _ = b.send_bytes_timeout(&[1; 24], short);
        let _ = a.recv_bytes_timeout(short);
        let mut buf = [0u8; 3];
        let _ = a.recv_bytes_into_timeout_free(&mut buf);
        let _ = a.poll(Duration::ZERO);
    }
    drop((a, b));
}

/// `recv_bytes_into` without blocking on a scribbled page: only if a
/// message is ready.
trait IntoFree {
    fn recv_bytes_into_timeout_free(&mut self, buf: &mut [u8]) -> Result<usize, Error>;
}

impl IntoFree for Connection {
    fn recv_bytes_into_timeout_free(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        if self.poll(Duration::ZERO)? {
            self.recv_bytes_into(buf)
        } else {
            Ok(0)
        }
    }
}

/// `send(&T)` / `recv::<T>()` (feature `serde`) across processes.
#[cfg(feature = "serde")]
#[test]
fn typed_messages_across_processes() {
    let test = "typed_messages_across_processes";
    if run_child(test, |_| {
        let mut b = Connection::open(&arg("pipe"), End::B).unwrap();
        let (n, s, v): (u32, String, Vec<u64>) = b.recv().unwrap();
        b.send(&(n + 1, s.to_uppercase(), v.iter().sum::<u64>()))
            .unwrap();
        // A message that is not a `String`: an error, not a panic.
        assert!(matches!(b.recv::<String>(), Err(Error::Serialization(_))));
    }) {
        return;
    }
    let name = ShmName::new("pipe_serde");
    let (mut a, b) = Pipe::create(&name, 256).unwrap();
    let child = spawn(test, "typed").arg("pipe", &*name).start();
    a.send(&(41u32, "answer", vec![1u64, 2, 3])).unwrap();
    let got: (u32, String, u64) = a.recv().unwrap();
    assert_eq!(got, (42, "ANSWER".to_owned(), 6));
    a.send_bytes(&[0xff, 0xff, 0xff]).unwrap();
    assert!(matches!(
        a.send(&vec![0u8; 300]),
        Err(Error::MessageTooLarge { .. })
    ));
    child.wait();
    drop((a, b));
}

/// An end taken by a thread that has ended stays its process's: the
/// claim is per process, not per thread.
#[test]
fn an_end_outlives_the_thread_that_took_it() {
    let test = "an_end_outlives_the_thread_that_took_it";
    if run_child(test, |_| {
        let b = Connection::open(&arg("pipe"), End::B).unwrap();
        let mut b = std::thread::spawn(move || {
            let mut b = b;
            b.send_bytes(b"from a thread").unwrap();
            b
        })
        .join()
        .unwrap();
        tell("thread ended");
        common::await_msg("go");
        b.send_bytes(b"from main").unwrap();
        common::await_msg("exit");
    }) {
        return;
    }
    let name = ShmName::new("pipe_thr");
    let (mut a, b) = Pipe::create(&name, 64).unwrap();
    let mut child = spawn(test, "threads").arg("pipe", &*name).start();
    child.expect("thread ended");
    drop(b);
    assert_eq!(recv_watched(&mut a).unwrap(), b"from a thread");
    // Longer than a probe slice: still connected.
    assert_eq!(a.recv_bytes_timeout(Duration::from_millis(120)), Ok(None));
    assert_eq!(a.try_recv_bytes(), Ok(None));
    child.send("go");
    assert_eq!(recv_watched(&mut a).unwrap(), b"from main");
    child.send("exit");
    child.wait();
    assert_eq!(recv_watched(&mut a), Err(Error::Disconnected));
    drop(a);
}
