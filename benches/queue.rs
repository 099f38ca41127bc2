//! `cargo bench --bench queue`: how fast the queues and the pipe move data
//! from one process to another, against the kernel's pipes and sockets, a
//! spinning ring (the ceiling) and Python's `multiprocessing` objects, all
//! in one run, with the target ratios of `docs/BENCHMARKS.md`.
//!
//! What it measures (two processes, this one and a forked child, unless a
//! row says otherwise):
//! - **one way** (items or messages/s, and MB/s for 4 KiB messages): the
//!   child sends, this process receives and checks every item (sequence
//!   numbers: the consumer must see exactly 1, 2, ..., n; the 2→2 row sums
//!   and counts). Baselines: `pipe(2)` and an AF_UNIX `socketpair` with 8-
//!   and 4096-byte messages (one `write` and one `read` each), and a
//!   spinning single-producer single-consumer ring of `u64` in shared
//!   memory (the ceiling: no system call while the other side keeps up; it
//!   yields after 4096 fruitless spins, so that it survives a descheduled
//!   peer). shmsync: `Queue<u64>` (capacity 1024 and 64; one item per
//!   call, and the batch form `put_slice` / `get_into` of 256),
//!   `Queue<u64>` with 2 producer and 2 consumer processes, `MessageQueue`
//!   (capacity 256 and 16 messages: 16 is 64 KiB, `pipe(2)`'s buffer) and
//!   `Pipe` (a 64 KiB ring, and an 8 KiB one that holds a single message)
//!   with 4 KiB messages.
//! - **ping-pong** (round trips/s): this process sends 8 bytes, the child
//!   sends them back; through two `pipe(2)`s, or one duplex shmsync `Pipe`.
//! - **uncontended** (ns per `try_put` + `try_get` of a `u64` in one
//!   thread): the fast path's cost.
//! - **Python** (through `python3`, `multiprocessing` with the `fork` start
//!   method: `Queue` of small ints and of 4 KiB bytes, `Pipe` one way, round
//!   trips and `send_bytes` of 4 KiB); skipped with a message when `python3`
//!   is missing.
//!
//! Each row's sample size is calibrated (two short trials) to take about
//! 0.3 s (quick: 0.04 s), and shrunk after a slower sample. Beside the
//! rate, each row shows how often its processes blocked (voluntary context
//! switches of all of them, from `getrusage`, per 1000 items): a queue
//! whose sides sleep and wake each other shows it there. Rounds are
//! interleaved (every round measures every row once), so a slow moment of
//! a shared machine hits all rows alike; the table shows the median and
//! the spread. The processes are not pinned, except in `ring` and
//! `queue-apart` (two different CPUs): the other figures are what a user
//! gets from the scheduler.
//!
//! Environment (`benches/common/mod.rs`): `SHMSYNC_BENCH_QUICK=1` for a
//! smoke run of a few seconds (3 rounds; full: 7). Arguments keep the rows
//! whose key contains one of them (`cargo bench --bench queue -- queue
//! pipe`). The bench never exits with an error status: a missed target
//! prints `MISS`, a failed row (a lost, duplicated or reordered item, a
//! child that failed) `ERROR`.

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::time::{Duration, Instant};

use shmsync::{Error, MessageQueue, Pipe, Queue, SharedMemory};

mod common;

use common::{Affinity, Child, Samples};

/// The run's sizes.
#[derive(Debug, Clone, Copy)]
struct Config {
    /// Seconds a sample should take.
    secs: f64,
    /// Samples per row.
    rounds: usize,
    /// Uncontended `try_put` + `try_get` pairs per sample.
    iters: u64,
    /// Python: messages per one-way sample (round trips: a quarter).
    py_n: u64,
}

impl Config {
    fn from_env() -> Config {
        if common::quick() {
            Config {
                secs: 0.04,
                rounds: 3,
                iters: 200_000,
                py_n: 2_000,
            }
        } else {
            Config {
                secs: 0.3,
                rounds: 7,
                iters: 2_000_000,
                py_n: 20_000,
            }
        }
    }
}

/// 4 KiB: the size of the large messages.
const BIG: usize = 4096;

// ---------------------------------------------------------------------------
// Two processes
// ---------------------------------------------------------------------------

/// A start line in shared memory: the children arrive, this process gives
/// the start (so the clock does not count `fork`).
struct Line {
    mem: SharedMemory,
}

impl Line {
    const READY: usize = 0;
    const GO: usize = 64;
    /// Producers that have finished (2→2).
    const SENT: usize = 128;
    /// Items and their sum received by the child consumer (2→2).
    const COUNT: usize = 192;
    const SUM: usize = 256;

    fn new() -> Result<Line, String> {
        Ok(Line {
            mem: SharedMemory::anonymous(4096).map_err(|e| format!("start line: {e}"))?,
        })
    }

    fn u32(&self, off: usize) -> &AtomicU32 {
        // SAFETY: in bounds (off ≤ 256 in a 4096-byte mapping kept by
        // `self.mem`), aligned (page-aligned mapping, off a multiple of
        // 64), these bytes only ever accessed as this atomic type.
        unsafe { AtomicU32::from_ptr(self.mem.as_ptr().add(off).cast()) }
    }

    fn u64(&self, off: usize) -> &AtomicU64 {
        // SAFETY: as in `u32`.
        unsafe { AtomicU64::from_ptr(self.mem.as_ptr().add(off).cast()) }
    }

    /// A child: arrives and waits for the start.
    fn arrive(&self) {
        // Relaxed: only counts; the GO load orders what follows.
        self.u32(Self::READY).fetch_add(1, Relaxed);
        // Acquire: pairs with the Release store in `start`.
        while self.u32(Self::GO).load(Acquire) == 0 {
            std::thread::yield_now();
        }
    }

    /// Waits for `n` children to arrive (failing if one ends), then starts
    /// them and the clock.
    fn start(&self, n: u32, children: &mut [Child]) -> Result<Instant, String> {
        let mut spins = 0u32;
        while self.u32(Self::READY).load(Relaxed) < n {
            spins = spins.wrapping_add(1);
            if spins % 64 == 0 {
                for c in children.iter_mut() {
                    if let Some(s) = c.try_wait()? {
                        return Err(format!("a child ended before the start ({s:#x})"));
                    }
                }
            }
            std::thread::yield_now();
        }
        let t = Instant::now();
        // Release: pairs with the Acquire load in `arrive`.
        self.u32(Self::GO).store(1, Release);
        Ok(t)
    }
}

/// Voluntary context switches (the process blocked: a sleep in a futex,
/// `read` or `write`) so far of this process and of its reaped children.
fn switches() -> (i64, i64) {
    let get = |who| {
        // SAFETY: all-zero is a valid `rusage`.
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `u` is a valid out-pointer.
        unsafe { libc::getrusage(who, &mut u) };
        u.ru_nvcsw
    };
    (get(libc::RUSAGE_SELF), get(libc::RUSAGE_CHILDREN))
}

/// The voluntary context switches of all processes of the last sample.
static LAST_SWITCHES: AtomicU64 = AtomicU64::new(0);

/// Records the switches since `before` (call after reaping the children).
fn record_switches(before: (i64, i64)) {
    let (s, c) = switches();
    let n = (s - before.0) + (c - before.1);
    // Relaxed: this process's own counter.
    LAST_SWITCHES.store(u64::try_from(n).unwrap_or(0), Relaxed);
}

/// Reaps `children`; an error unless all exited with status 0.
fn reap(children: &mut [Child]) -> Result<(), String> {
    for c in children {
        match c.wait()? {
            0 => {}
            s => return Err(format!("a child ended with status {s:#x}")),
        }
    }
    Ok(())
}

/// One sample of a one-way row: `make` the channel; a forked child runs
/// `produce(channel, n)`; this process runs `consume(channel, n)`, which
/// must check what it receives. The time from the start to the last item.
fn one_way<S: Chan>(
    n: u64,
    make: impl FnOnce() -> Result<S, String>,
    produce: impl FnOnce(&S, u64) -> Result<(), String>,
    consume: impl FnOnce(&S, u64) -> Result<(), String>,
) -> Result<Duration, String> {
    one_way_on(false, n, make, produce, consume)
}

/// [`one_way`], with the two processes pinned to two different CPUs if
/// `apart` (and there are two).
fn one_way_on<S: Chan>(
    apart: bool,
    n: u64,
    make: impl FnOnce() -> Result<S, String>,
    produce: impl FnOnce(&S, u64) -> Result<(), String>,
    consume: impl FnOnce(&S, u64) -> Result<(), String>,
) -> Result<Duration, String> {
    let line = Line::new()?;
    let mut ch = make()?;
    let _restore = Affinity::save();
    let cpus = match Affinity::cpus().as_slice() {
        [a, b, ..] if apart => Some((*a, *b)),
        _ => None,
    };
    if let Some((mine, _)) = cpus {
        Affinity::pin(mine);
    }
    let before = switches();
    let mut child = [Child::fork(|| {
        if let Some((_, theirs)) = cpus {
            Affinity::pin(theirs);
        }
        line.arrive();
        let r = produce(&ch, n);
        ch.produced();
        if let Err(e) = r {
            panic!("producer: {e}");
        }
    })?];
    ch.forked();
    let t = line.start(1, &mut child)?;
    consume(&ch, n)?;
    let d = t.elapsed();
    reap(&mut child)?;
    record_switches(before);
    Ok(d)
}

/// What a one-way or ping-pong channel does so that a receiver never waits
/// for ever for an item that was lost, or for a child that died: it then
/// reports an error instead (end of file, `Closed`, `Disconnected`).
trait Chan {
    /// In this process after the `fork`: drops its copies of the child's
    /// descriptors (so that the child's exit is an end of file).
    fn forked(&mut self) {}
    /// In the child, after it sent everything (or failed to): marks the
    /// end of the stream.
    fn produced(&self) {}
}

impl Chan for () {}

/// An error unless `got` is the `want`th item.
fn check_seq(got: u64, want: u64) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("item {want} received as {got}: lost or reordered"))
    }
}

// ---------------------------------------------------------------------------
// Kernel baselines
// ---------------------------------------------------------------------------

fn os_err(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

/// `(read end, write end)` of a `pipe(2)`, or the two ends of an AF_UNIX
/// stream `socketpair`.
fn fd_pair(socket: bool) -> Result<(OwnedFd, OwnedFd), String> {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` is a valid array of two ints for the call to fill.
    let rc = unsafe {
        if socket {
            libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, fds.as_mut_ptr())
        } else {
            libc::pipe(fds.as_mut_ptr())
        }
    };
    if rc != 0 {
        return Err(os_err(if socket { "socketpair" } else { "pipe" }));
    }
    // SAFETY: both descriptors were just opened and are owned by nobody
    // else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Writes all of `buf` (one `write` unless the kernel takes less).
fn write_all(fd: &OwnedFd, mut buf: &[u8]) -> Result<(), String> {
    while !buf.is_empty() {
        // SAFETY: `buf` is valid for reads of its length.
        let r = unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
        match usize::try_from(r) {
            Ok(k) => buf = &buf[k..],
            Err(_) if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => {
            }
            Err(_) => return Err(os_err("write")),
        }
    }
    Ok(())
}

/// Fills all of `buf` (one `read` unless the kernel gives less).
fn read_exact(fd: &OwnedFd, buf: &mut [u8]) -> Result<(), String> {
    let mut at = 0;
    while at < buf.len() {
        let rest = &mut buf[at..];
        // SAFETY: `rest` is valid for writes of its length.
        let r = unsafe { libc::read(fd.as_raw_fd(), rest.as_mut_ptr().cast(), rest.len()) };
        match usize::try_from(r) {
            Ok(0) => return Err("end of file before the last item".into()),
            Ok(k) => at += k,
            Err(_) if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => {
            }
            Err(_) => return Err(os_err("read")),
        }
    }
    Ok(())
}

fn seq_of(buf: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[..8]);
    u64::from_le_bytes(b)
}

/// The read end (this process's) and the write end (the child's) of a
/// one-way channel of descriptors.
struct FdChan {
    r: OwnedFd,
    w: Option<OwnedFd>,
}

impl Chan for FdChan {
    fn forked(&mut self) {
        self.w = None;
    }
}

/// `n` messages of `size` bytes (≥ 8, sequence number first) one way
/// through a pipe or a socketpair.
fn fd_one_way(n: u64, size: usize, socket: bool) -> Result<Duration, String> {
    one_way(
        n,
        || {
            let (r, w) = fd_pair(socket)?;
            Ok(FdChan { r, w: Some(w) })
        },
        |FdChan { w, .. }, n| {
            let w = w.as_ref().ok_or("no write end")?;
            let mut buf = vec![0u8; size];
            for i in 1..=n {
                buf[..8].copy_from_slice(&i.to_le_bytes());
                write_all(w, &buf)?;
            }
            Ok(())
        },
        |FdChan { r, .. }, n| {
            let mut buf = vec![0u8; size];
            for i in 1..=n {
                read_exact(r, &mut buf)?;
                check_seq(seq_of(&buf), i)?;
            }
            Ok(())
        },
    )
}

/// A sample of `n` ping-pong round trips (8 bytes each way) between this
/// process and a forked child: `ping(i)` sends `i` and returns what came
/// back; `pong` echoes `n` times.
fn ping_pong<S: Chan>(
    n: u64,
    make: impl FnOnce() -> Result<S, String>,
    pong: impl FnOnce(&mut S, u64) -> Result<(), String>,
    mut ping: impl FnMut(&mut S, u64) -> Result<u64, String>,
) -> Result<Duration, String> {
    let line = Line::new()?;
    let mut ch = make()?;
    let before = switches();
    let mut child = [Child::fork(|| {
        line.arrive();
        if let Err(e) = pong(&mut ch, n) {
            panic!("pong: {e}");
        }
    })?];
    ch.forked();
    let t = line.start(1, &mut child)?;
    for i in 1..=n {
        check_seq(ping(&mut ch, i)?, i)?;
    }
    let d = t.elapsed();
    reap(&mut child)?;
    record_switches(before);
    Ok(d)
}

/// Two `pipe(2)`s: `to` the child and `from` it.
struct FdPair {
    to: (OwnedFd, OwnedFd),
    from: FdChan,
}

impl Chan for FdPair {
    fn forked(&mut self) {
        self.from.forked();
    }
}

impl Chan for (shmsync::Connection, shmsync::Connection) {}

/// Two `pipe(2)`s, one per direction, 8 bytes each way.
fn fd_ping_pong(n: u64) -> Result<Duration, String> {
    ping_pong(
        n,
        || {
            let (r, w) = fd_pair(false)?;
            Ok(FdPair {
                to: fd_pair(false)?,
                from: FdChan { r, w: Some(w) },
            })
        },
        |FdPair { to: (r, _), from }, n| {
            let w = from.w.as_ref().ok_or("no write end")?;
            let mut b = [0u8; 8];
            for _ in 0..n {
                read_exact(r, &mut b)?;
                write_all(w, &b)?;
            }
            Ok(())
        },
        |FdPair {
             to: (_, w),
             from: FdChan { r, .. },
         },
         i| {
            write_all(w, &i.to_le_bytes())?;
            let mut b = [0u8; 8];
            read_exact(r, &mut b)?;
            Ok(u64::from_le_bytes(b))
        },
    )
}

// ---------------------------------------------------------------------------
// The spinning ring (the ceiling)
// ---------------------------------------------------------------------------

/// A single-producer single-consumer ring of `u64` in shared memory: the
/// head and the tail on cache lines of their own, each side caching the
/// other's index; no system call while the other side keeps up (it yields
/// after 4096 fruitless spins, in case the other process is descheduled).
struct Spsc {
    mem: SharedMemory,
}

impl Spsc {
    const CAP: u64 = 1024;
    const HEAD: usize = 0;
    const TAIL: usize = 128;
    /// Non-zero once the producer is done.
    const DONE: usize = 192;
    const SLOTS: usize = 256;

    fn new() -> Result<Spsc, String> {
        Ok(Spsc {
            mem: SharedMemory::anonymous(Self::SLOTS + 8 * Self::CAP as usize)
                .map_err(|e| format!("ring: {e}"))?,
        })
    }

    fn at(&self, off: usize) -> &AtomicU64 {
        debug_assert!(off % 8 == 0 && off + 8 <= self.mem.len());
        // SAFETY: in bounds (the slots end at the mapping's size), 8-byte
        // aligned (page-aligned mapping, multiples of 8), kept mapped by
        // `self.mem`, only ever accessed as AtomicU64.
        unsafe { AtomicU64::from_ptr(self.mem.as_ptr().add(off).cast()) }
    }

    #[allow(clippy::cast_possible_truncation)]
    fn slot(&self, i: u64) -> &AtomicU64 {
        self.at(Self::SLOTS + 8 * (i % Self::CAP) as usize)
    }

    /// One fruitless spin; whether it yielded.
    fn wait(spins: &mut u32) -> bool {
        *spins += 1;
        if *spins >= 1 << 12 {
            *spins = 0;
            std::thread::yield_now();
            true
        } else {
            std::hint::spin_loop();
            false
        }
    }

    fn produce(&self, n: u64) {
        let (head, tail) = (self.at(Self::HEAD), self.at(Self::TAIL));
        let mut seen_head = 0;
        for t in 0..n {
            let mut spins = 0;
            while t - seen_head >= Self::CAP {
                // Acquire: pairs with the consumer's Release store of the
                // head (the slot is free to overwrite).
                seen_head = head.load(Acquire);
                if t - seen_head >= Self::CAP {
                    Self::wait(&mut spins);
                }
            }
            // Relaxed: published by the Release store of the tail.
            self.slot(t).store(t + 1, Relaxed);
            // Release: pairs with the consumer's Acquire load of the tail.
            tail.store(t + 1, Release);
        }
    }

    fn consume(&self, n: u64) -> Result<(), String> {
        let (head, tail) = (self.at(Self::HEAD), self.at(Self::TAIL));
        let mut seen_tail = 0;
        for h in 0..n {
            let mut spins = 0;
            while seen_tail == h {
                // Acquire: pairs with the producer's Release store.
                seen_tail = tail.load(Acquire);
                // Acquire: pairs with the Release store in `produced`
                // (then the tail read next is the producer's last).
                if seen_tail == h
                    && Self::wait(&mut spins)
                    && self.at(Self::DONE).load(Acquire) != 0
                    && tail.load(Acquire) == h
                {
                    return Err(format!("item {} never came", h + 1));
                }
            }
            // Relaxed: ordered by the Acquire load of the tail.
            let v = self.slot(h).load(Relaxed);
            // Release: pairs with the producer's Acquire load of the head.
            head.store(h + 1, Release);
            check_seq(v, h + 1)?;
        }
        Ok(())
    }
}

impl Chan for Spsc {
    fn produced(&self) {
        // Release: pairs with the Acquire load in `consume`.
        self.at(Self::DONE).store(1, Release);
    }
}

impl Chan for Queue<u64> {
    fn produced(&self) {
        self.close();
    }
}

impl Chan for MessageQueue {
    fn produced(&self) {
        self.close();
    }
}

// ---------------------------------------------------------------------------
// shmsync
// ---------------------------------------------------------------------------

fn lib(e: Error) -> String {
    e.to_string()
}

/// Item `i` could not be received (`Closed`: the producer was done).
fn missing(i: u64, e: Error) -> String {
    format!("item {i} not received: {e}")
}

fn queue(cap: usize) -> impl FnOnce() -> Result<Queue<u64>, String> {
    move || Queue::new(cap).map_err(lib)
}

/// `Queue<u64>` 1→1, one item per call.
fn queue_one_way(n: u64, cap: usize) -> Result<Duration, String> {
    one_way(
        n,
        queue(cap),
        |q, n| (1..=n).try_for_each(|i| q.put(i).map_err(lib)),
        |q, n| (1..=n).try_for_each(|i| check_seq(q.get().map_err(|e| missing(i, e))?, i)),
    )
}

/// The batch size of the `put_slice` / `get_into` rows.
const BATCH: usize = 256;

/// `Queue<u64>` 1→1 in batches of up to [`BATCH`].
fn queue_batch(n: u64, cap: usize) -> Result<Duration, String> {
    one_way(
        n,
        queue(cap),
        |q, n| {
            let mut buf = [0u64; BATCH];
            let mut next = 1;
            while next <= n {
                let k = usize::try_from((n + 1 - next).min(BATCH as u64)).unwrap_or(BATCH);
                for (j, x) in buf[..k].iter_mut().enumerate() {
                    *x = next + j as u64;
                }
                q.put_slice(&buf[..k]).map_err(lib)?;
                next += k as u64;
            }
            Ok(())
        },
        |q, n| {
            let mut buf = [0u64; BATCH];
            let mut want = 1;
            while want <= n {
                let k = q.get_into(&mut buf).map_err(|e| missing(want, e))?;
                for &v in &buf[..k] {
                    check_seq(v, want)?;
                    want += 1;
                }
            }
            Ok(())
        },
    )
}

/// `Queue<u64>` with two producer and two consumer processes (this one is
/// a consumer): `n` items in all. Producer `p` puts `2i + p` for `i` in
/// `1..=n/2`; the last producer to finish closes the queue, and each
/// consumer takes until it is closed and empty. The received items must
/// be as many as were put and sum to the same.
fn queue_2x2(n: u64, cap: usize) -> Result<Duration, String> {
    let per = n / 2;
    let line = Line::new()?;
    let q = queue(cap)()?;
    let before = switches();
    let mut children = Vec::new();
    for p in 0..2u64 {
        let (line, q) = (&line, &q);
        children.push(Child::fork(move || {
            line.arrive();
            let r = (1..=per).try_for_each(|i| q.put(2 * i + p));
            // AcqRel: the last producer sees the other's puts finished.
            // (Counted after a failure too: the consumers must not wait.)
            if line
                .u32(Line::SENT)
                .fetch_add(1, std::sync::atomic::Ordering::AcqRel)
                == 1
            {
                q.close();
            }
            if let Err(e) = r {
                panic!("producer: {e}");
            }
        })?);
    }
    let take = |q: &Queue<u64>| -> Result<(u64, u64), String> {
        let (mut count, mut sum) = (0u64, 0u64);
        loop {
            match q.get() {
                Ok(v) => {
                    count += 1;
                    sum = sum.wrapping_add(v);
                }
                Err(Error::Closed) => return Ok((count, sum)),
                Err(e) => return Err(lib(e)),
            }
        }
    };
    {
        let (line, q) = (&line, &q);
        children.push(Child::fork(move || {
            line.arrive();
            match take(q) {
                Ok((c, s)) => {
                    // Relaxed: read after this process is reaped.
                    line.u64(Line::COUNT).store(c, Relaxed);
                    line.u64(Line::SUM).store(s, Relaxed);
                }
                Err(e) => panic!("consumer: {e}"),
            }
        })?);
    }
    let t = line.start(3, &mut children)?;
    let (c0, s0) = take(&q)?;
    reap(&mut children)?;
    let d = t.elapsed();
    record_switches(before);
    let count = c0 + line.u64(Line::COUNT).load(Relaxed);
    let sum = s0.wrapping_add(line.u64(Line::SUM).load(Relaxed));
    // Σ 2i + p over i in 1..=per, p in {0, 1} = 2·per(per+1) + per.
    let want_sum = 2 * per * (per + 1) + per;
    if count != 2 * per || sum != want_sum {
        return Err(format!(
            "received {count} items summing to {sum}, sent {} summing to {want_sum}",
            2 * per
        ));
    }
    Ok(d)
}

/// `MessageQueue` of `cap` messages of 4 KiB.
fn mq_one_way(n: u64, cap: usize) -> Result<Duration, String> {
    one_way(
        n,
        || MessageQueue::new(cap, BIG).map_err(lib),
        |q, n| {
            let mut buf = vec![0u8; BIG];
            for i in 1..=n {
                buf[..8].copy_from_slice(&i.to_le_bytes());
                q.send(&buf).map_err(lib)?;
            }
            Ok(())
        },
        |q, n| {
            let mut buf = vec![0u8; BIG];
            for i in 1..=n {
                let len = q.recv_into(&mut buf).map_err(|e| missing(i, e))?;
                if len != BIG {
                    return Err(format!("message {i} has {len} bytes"));
                }
                check_seq(seq_of(&buf), i)?;
            }
            Ok(())
        },
    )
}

/// A simplex shmsync `Pipe` for messages of up to `cap` bytes, 4 KiB
/// messages.
fn pipe_one_way(n: u64, cap: usize) -> Result<Duration, String> {
    // Each process uses its own end (the pair is a Connection each): the
    // child the sender, this process the receiver.
    let (r, w) = Pipe::simplex(cap).map_err(lib)?;
    let (r, w) = (std::cell::RefCell::new(r), std::cell::RefCell::new(w));
    one_way(
        n,
        || Ok(()),
        |(), n| {
            let mut w = w.borrow_mut();
            let mut buf = vec![0u8; BIG];
            for i in 1..=n {
                buf[..8].copy_from_slice(&i.to_le_bytes());
                w.send_bytes(&buf).map_err(lib)?;
            }
            Ok(())
        },
        |(), n| {
            let mut r = r.borrow_mut();
            let mut buf = vec![0u8; BIG];
            for i in 1..=n {
                let len = r.recv_bytes_into(&mut buf).map_err(|e| missing(i, e))?;
                if len != BIG {
                    return Err(format!("message {i} has {len} bytes"));
                }
                check_seq(seq_of(&buf), i)?;
            }
            Ok(())
        },
    )
}

/// A duplex shmsync `Pipe`, 8 bytes each way.
fn pipe_ping_pong(n: u64) -> Result<Duration, String> {
    ping_pong(
        n,
        || Pipe::new(64).map_err(lib),
        |(_, b), n| {
            let mut buf = [0u8; 8];
            for _ in 0..n {
                let len = b.recv_bytes_into(&mut buf).map_err(lib)?;
                b.send_bytes(&buf[..len]).map_err(lib)?;
            }
            Ok(())
        },
        |(a, _), i| {
            a.send_bytes(&i.to_le_bytes()).map_err(lib)?;
            let mut buf = [0u8; 8];
            if a.recv_bytes_into(&mut buf).map_err(lib)? != 8 {
                return Err("a short echo".into());
            }
            Ok(u64::from_le_bytes(buf))
        },
    )
}

/// Two `Queue<u64>`s, one per direction: a request answered through a
/// queue (the latency of a hand-off to a waiting peer).
fn queue_ping_pong(n: u64) -> Result<Duration, String> {
    ping_pong(
        n,
        || Ok(QueuePair(queue(64)()?, queue(64)()?)),
        |QueuePair(to, from), n| {
            for _ in 0..n {
                from.put(to.get().map_err(lib)?).map_err(lib)?;
            }
            Ok(())
        },
        |QueuePair(to, from), i| {
            to.put(i).map_err(lib)?;
            from.get().map_err(lib)
        },
    )
}

/// A queue to the child and one from it.
struct QueuePair(Queue<u64>, Queue<u64>);

impl Chan for QueuePair {}

/// ns per `try_put` + `try_get` of a `u64` in this thread.
#[allow(clippy::cast_precision_loss)]
fn uncontended(iters: u64) -> Result<f64, String> {
    let q = Queue::<u64>::new(1024).map_err(lib)?;
    let mut sum = 0u64;
    let t = Instant::now();
    for i in 0..iters {
        q.try_put(std::hint::black_box(i)).map_err(lib)?;
        sum = sum.wrapping_add(q.try_get().map_err(lib)?);
    }
    let ns = t.elapsed().as_nanos() as f64 / iters as f64;
    if sum == iters.wrapping_mul(iters.wrapping_sub(1)) / 2 {
        Ok(ns)
    } else {
        Err(format!("items sum to {sum}"))
    }
}

// ---------------------------------------------------------------------------
// Rows
// ---------------------------------------------------------------------------

/// What a row counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    /// Items or messages per second (`bytes` each: MB/s as well if > 8).
    Msgs {
        bytes: usize,
    },
    RoundTrips,
}

type Sample = fn(u64) -> Result<Duration, String>;

/// A row of the table.
struct Row {
    key: &'static str,
    label: &'static str,
    unit: Unit,
    sample: Sample,
    /// Items per sample (calibrated).
    n: u64,
    /// Rates (items or round trips per second).
    rates: Samples,
    /// Voluntary context switches (all processes) per 1000 items.
    sleeps: Samples,
    errors: Vec<String>,
}

fn rows() -> Vec<Row> {
    let small = Unit::Msgs { bytes: 8 };
    let big = Unit::Msgs { bytes: BIG };
    let table: [(&str, &str, Unit, Sample); 18] = [
        ("pipe2-8", "pipe(2), 8-byte msgs", small, |n| {
            fd_one_way(n, 8, false)
        }),
        ("socket-8", "socketpair, 8-byte msgs", small, |n| {
            fd_one_way(n, 8, true)
        }),
        ("pipe2-4k", "pipe(2), 4 KiB msgs", big, |n| {
            fd_one_way(n, BIG, false)
        }),
        ("socket-4k", "socketpair, 4 KiB msgs", big, |n| {
            fd_one_way(n, BIG, true)
        }),
        (
            "pipe2-pp",
            "pipe(2) pair, 8-byte ping-pong",
            Unit::RoundTrips,
            fd_ping_pong,
        ),
        (
            "ring",
            "spinning SPSC ring u64, apart (ceiling)",
            small,
            |n| {
                one_way_on(
                    true,
                    n,
                    Spsc::new,
                    |r, n| {
                        r.produce(n);
                        Ok(())
                    },
                    Spsc::consume,
                )
            },
        ),
        ("queue", "Queue<u64> 1→1, cap 1024", small, |n| {
            queue_one_way(n, 1024)
        }),
        (
            "queue-apart",
            "Queue<u64> 1→1, cap 1024, apart",
            small,
            |n| {
                let p = |q: &Queue<u64>, n| (1..=n).try_for_each(|i| q.put(i).map_err(lib));
                let c = |q: &Queue<u64>, n| {
                    (1..=n).try_for_each(|i| check_seq(q.get().map_err(|e| missing(i, e))?, i))
                };
                one_way_on(true, n, queue(1024), p, c)
            },
        ),
        ("queue-64", "Queue<u64> 1→1, cap 64", small, |n| {
            queue_one_way(n, 64)
        }),
        (
            "queue-batch",
            "Queue<u64> 1→1 batch 256, cap 1024",
            small,
            |n| queue_batch(n, 1024),
        ),
        (
            "queue-batch-64",
            "Queue<u64> 1→1 batch 256, cap 64",
            small,
            |n| queue_batch(n, 64),
        ),
        ("queue-2x2", "Queue<u64> 2→2, cap 1024", small, |n| {
            queue_2x2(n, 1024)
        }),
        ("mq", "MessageQueue 4 KiB, cap 256", big, |n| {
            mq_one_way(n, 256)
        }),
        ("mq-16", "MessageQueue 4 KiB, cap 16", big, |n| {
            mq_one_way(n, 16)
        }),
        ("pipe", "Pipe 4 KiB, 64 KiB ring", big, |n| {
            pipe_one_way(n, 65_536 - 4)
        }),
        ("pipe-8k", "Pipe 4 KiB, 8 KiB ring (1 msg)", big, |n| {
            pipe_one_way(n, BIG)
        }),
        (
            "pipe-pp",
            "Pipe duplex, 8-byte ping-pong",
            Unit::RoundTrips,
            pipe_ping_pong,
        ),
        (
            "queue-pp",
            "Queue<u64> pair, ping-pong",
            Unit::RoundTrips,
            queue_ping_pong,
        ),
    ];
    table
        .into_iter()
        .map(|(key, label, unit, sample)| Row {
            key,
            label,
            unit,
            sample,
            n: 0,
            rates: Samples::default(),
            sleeps: Samples::default(),
            errors: Vec::new(),
        })
        .collect()
}

/// Runs `r` once with `n` items; its rate and its processes' voluntary
/// context switches per 1000 items.
#[allow(clippy::cast_precision_loss)]
fn measure(r: &Row, n: u64) -> Result<(f64, f64), String> {
    // Relaxed (both): only this thread uses it.
    LAST_SWITCHES.store(0, Relaxed);
    let d = (r.sample)(n)?;
    let sw = LAST_SWITCHES.load(Relaxed) as f64 * 1000.0 / n as f64;
    Ok((n as f64 / d.as_secs_f64().max(1e-9), sw))
}

/// Items for a sample of about `secs` at `rate` (even, for the 2→2 row).
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn items(rate: f64, secs: f64) -> u64 {
    ((rate * secs) as u64).clamp(1_000, 50_000_000) & !1
}

/// Picks the row's sample size from two short trials: about `secs` per
/// sample at the slower one's rate. (Some rows run in two regimes, by
/// where the scheduler puts the processes; `main` shrinks the size again
/// whenever a sample is slower, so that one row cannot eat the run.)
fn calibrate(r: &mut Row, secs: f64) {
    let trial = match r.unit {
        Unit::RoundTrips => 1_000,
        Unit::Msgs { bytes } if bytes > 8 => 2_000,
        Unit::Msgs { .. } => 20_000,
    };
    let mut slowest = f64::INFINITY;
    for _ in 0..2 {
        match measure(r, trial) {
            Ok((rate, _)) => slowest = slowest.min(rate),
            Err(e) => {
                r.errors.push(format!("trial: {e}"));
                return;
            }
        }
    }
    r.n = items(slowest, secs);
}

// ---------------------------------------------------------------------------
// Python
// ---------------------------------------------------------------------------

/// Python's objects, timed by `python3` itself: one `key rate` line per
/// measurement (`key ERROR what` when the items are wrong). The child
/// sends, the parent receives and checks every item, after `WARM`
/// unmeasured ones.
const PYTHON: &str = r#"
import multiprocessing as mp, sys, time
ctx = mp.get_context("fork")
N = int(sys.argv[1])
WARM = 100
PAD = bytes(4088)

def big(i):
    return i.to_bytes(8, "little") + PAD

def timed(name, n, child, parent):
    p = ctx.Process(target=child, args=(n,))
    p.start()
    try:
        parent(0, WARM)
        t = time.perf_counter()
        parent(WARM, n)
        d = time.perf_counter() - t
        print(name, n / d, flush=True)
    except Exception as e:
        print(name, "ERROR", e, flush=True)
        p.kill()
    p.join()

def check(got, want):
    if got != want:
        raise ValueError("item %d received as %r" % (want, got))

q = ctx.Queue()
def q_int_child(n):
    for i in range(WARM + n):
        q.put(i)
def q_int_parent(start, n):
    for i in range(start, start + n):
        check(q.get(), i)

def q_big_child(n):
    for i in range(WARM + n):
        q.put(big(i))
def q_big_parent(start, n):
    for i in range(start, start + n):
        m = q.get()
        check(len(m), 4096)
        check(int.from_bytes(m[:8], "little"), i)

r, w = ctx.Pipe(duplex=False)
def p_child(n):
    for i in range(WARM + n):
        w.send(i)
def p_parent(start, n):
    for i in range(start, start + n):
        check(r.recv(), i)

def pb_child(n):
    for i in range(WARM + n):
        w.send_bytes(big(i))
def pb_parent(start, n):
    for i in range(start, start + n):
        m = r.recv_bytes()
        check(len(m), 4096)
        check(int.from_bytes(m[:8], "little"), i)

a, b = ctx.Pipe()
def pp_child(n):
    for _ in range(WARM + n):
        b.send(b.recv())
def pp_parent(start, n):
    for i in range(start, start + n):
        a.send(i)
        check(a.recv(), i)

timed("py-queue-int", N, q_int_child, q_int_parent)
timed("py-queue-4k", N, q_big_child, q_big_parent)
timed("py-pipe", N, p_child, p_parent)
timed("py-pipe-pp", N // 4, pp_child, pp_parent)
timed("py-pipe-bytes-4k", N, pb_child, pb_parent)
"#;

/// Runs the Python measurements once: `key → rate` and errors, or why
/// not.
fn python_round(n: u64) -> Result<(BTreeMap<String, f64>, Vec<String>), String> {
    let out = Command::new("python3")
        .arg("-c")
        .arg(PYTHON)
        .arg(n.to_string())
        .output()
        .map_err(|e| format!("python3 not run ({e}): Python rows skipped"))?;
    if !out.status.success() {
        return Err(format!(
            "python3 failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let mut rates = BTreeMap::new();
    let mut errors = Vec::new();
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        let Some((k, v)) = l.split_once(' ') else {
            continue;
        };
        match v.trim().parse() {
            Ok(x) => {
                rates.insert(k.to_owned(), x);
            }
            Err(_) => errors.push(l.to_owned()),
        }
    }
    Ok((rates, errors))
}

/// The Python keys, their labels and units.
const PY_ROWS: &[(&str, &str, Unit)] = &[
    (
        "py-queue-int",
        "Python Queue, small ints",
        Unit::Msgs { bytes: 8 },
    ),
    (
        "py-queue-4k",
        "Python Queue, 4 KiB bytes",
        Unit::Msgs { bytes: BIG },
    ),
    (
        "py-pipe",
        "Python Pipe send/recv ints",
        Unit::Msgs { bytes: 8 },
    ),
    ("py-pipe-pp", "Python Pipe ping-pong", Unit::RoundTrips),
    (
        "py-pipe-bytes-4k",
        "Python Pipe send_bytes 4 KiB",
        Unit::Msgs { bytes: BIG },
    ),
];

// ---------------------------------------------------------------------------
// Targets
// ---------------------------------------------------------------------------

/// `(ours, baseline, minimum ratio ours/baseline, what it means)`: keys of
/// rows or Python keys; the ratio of their rates (for two 4 KiB rows, the
/// same as the ratio of MB/s). A minimum of 0 is a figure to report, not a
/// target.
const TARGETS: &[(&str, &str, f64, &str)] = &[
    (
        "queue",
        "pipe2-8",
        5.0,
        "Queue<u64> 1→1 ≥ 5× pipe(2) one-way 8-byte msgs/s",
    ),
    (
        "queue",
        "py-queue-int",
        100.0,
        "Queue<u64> 1→1 ≥ 100× Python Queue (small ints)",
    ),
    (
        "mq",
        "pipe2-4k",
        1.0,
        "MessageQueue 4 KiB MB/s ≥ 1.0× pipe(2) 4 KiB",
    ),
    (
        "mq",
        "py-pipe-bytes-4k",
        3.0,
        "MessageQueue 4 KiB MB/s ≥ 3× Python Pipe.send_bytes",
    ),
    (
        "pipe",
        "pipe2-4k",
        1.0,
        "Pipe 4 KiB MB/s ≥ 1.0× pipe(2) 4 KiB",
    ),
    (
        "pipe",
        "py-pipe-bytes-4k",
        3.0,
        "Pipe 4 KiB MB/s ≥ 3× Python Pipe.send_bytes",
    ),
    (
        "pipe-pp",
        "pipe2-pp",
        1.0,
        "Pipe ping-pong ≥ 1.0× pipe(2) ping-pong",
    ),
    (
        "queue-apart",
        "ring",
        0.0,
        "Queue<u64> 1→1 / spinning ring, both pinned apart",
    ),
    (
        "queue",
        "ring",
        0.0,
        "Queue<u64> 1→1 (unpinned) / spinning ring",
    ),
    ("queue-2x2", "ring", 0.0, "Queue<u64> 2→2 / spinning ring"),
    (
        "queue-pp",
        "pipe-pp",
        0.0,
        "Queue<u64> pair ping-pong / Pipe ping-pong",
    ),
    ("queue-2x2", "queue", 0.0, "Queue<u64> 2→2 / 1→1"),
    ("queue-64", "queue", 0.0, "Queue<u64> cap 64 / cap 1024"),
    ("queue-batch", "queue", 0.0, "Queue<u64> batch / one by one"),
    (
        "queue-batch-64",
        "queue-batch",
        0.0,
        "Queue<u64> batch, cap 64 / cap 1024",
    ),
    ("mq-16", "mq", 0.0, "MessageQueue cap 16 / cap 256"),
    (
        "mq-16",
        "pipe2-4k",
        0.0,
        "MessageQueue cap 16 (64 KiB, pipe(2)'s buffer) / pipe(2) 4 KiB",
    ),
    ("pipe-8k", "pipe", 0.0, "Pipe 8 KiB ring / 64 KiB ring"),
];

/// `"median (min–max)"` of rates scaled by `k` with `prec` decimals.
fn spread(s: &Samples, k: f64, prec: usize) -> String {
    match (s.median(), s.min(), s.max()) {
        (Some(m), Some(lo), Some(hi)) => {
            format!("{:.prec$} ({:.prec$}–{:.prec$})", m * k, lo * k, hi * k)
        }
        _ => "-".into(),
    }
}

fn print_row(key: &str, label: &str, unit: Unit, s: &Samples, sleeps: Option<&Samples>) {
    if s.is_empty() {
        println!("{key:<17} {label:<36} {:>32}", "-");
        return;
    }
    let (rate, mbs) = match unit {
        Unit::RoundTrips => (format!("{} k trips/s", spread(s, 1e-3, 1)), String::new()),
        #[allow(clippy::cast_precision_loss)]
        Unit::Msgs { bytes } => (
            format!("{} M/s", spread(s, 1e-6, 3)),
            if bytes > 8 {
                format!("{} MB/s", spread(s, bytes as f64 / 1e6, 0))
            } else {
                String::new()
            },
        ),
    };
    let sw = sleeps
        .and_then(Samples::median)
        .map_or_else(String::new, |m| format!("{m:.1}"));
    println!("{key:<17} {label:<36} {rate:>32} {mbs:>24} {sw:>9}");
}

fn main() {
    common::print_machine("queue");
    if let Ok(l) = std::fs::read_to_string("/proc/loadavg") {
        println!("load average: {}", l.trim());
    }
    let cfg = Config::from_env();
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let keep = |key: &str| filters.is_empty() || filters.iter().any(|f| key.contains(f.as_str()));
    let mut rows = rows();
    rows.retain(|r| keep(r.key));
    let run_python = keep("python") || PY_ROWS.iter().any(|&(k, _, _)| keep(k));
    for r in &mut rows {
        calibrate(r, cfg.secs);
    }
    println!(
        "{} rounds (interleaved), about {} s per sample; median (min–max)",
        cfg.rounds, cfg.secs
    );
    let mut unc = Samples::default();
    let mut unc_err = None;
    let mut python: BTreeMap<String, Samples> = BTreeMap::new();
    let mut python_errors = Vec::new();
    let mut python_note = None;
    for _ in 0..cfg.rounds {
        for r in &mut rows {
            if r.n == 0 {
                continue;
            }
            match measure(r, r.n) {
                Ok((x, sw)) => {
                    r.rates.push(x);
                    r.sleeps.push(sw);
                    r.n = r.n.min(items(x, cfg.secs));
                }
                Err(e) => r.errors.push(e),
            }
        }
        if keep("uncontended") {
            match uncontended(cfg.iters) {
                Ok(x) => unc.push(x),
                Err(e) => unc_err = Some(e),
            }
        }
        if run_python && python_note.is_none() {
            match python_round(cfg.py_n) {
                Ok((m, errs)) => {
                    for (k, v) in m {
                        python.entry(k).or_default().push(v);
                    }
                    python_errors.extend(errs);
                }
                Err(e) => python_note = Some(e),
            }
        }
    }
    println!(
        "\n{:<17} {:<36} {:>32} {:>24} {:>9}",
        "key", "what", "rate", "throughput", "sleeps/1k"
    );
    let mut rates: BTreeMap<&str, f64> = BTreeMap::new();
    for r in &rows {
        print_row(r.key, r.label, r.unit, &r.rates, Some(&r.sleeps));
        if let Some(m) = r.rates.median() {
            rates.insert(r.key, m);
        }
        for e in &r.errors {
            println!("ERROR {}: {e}", r.key);
        }
    }
    for &(k, label, unit) in PY_ROWS {
        if let Some(s) = python.get(k) {
            print_row(k, label, unit, s, None);
            if let Some(m) = s.median() {
                rates.insert(k, m);
            }
        }
    }
    for e in &python_errors {
        println!("ERROR {e}");
    }
    if let Some(n) = python_note {
        println!("{n}");
    }
    if let Some(best) = unc.min() {
        println!("\nuncontended try_put + try_get of a u64, one thread: {best:.1} ns (best round)");
    }
    if let Some(e) = unc_err {
        println!("ERROR uncontended: {e}");
    }
    println!("\ntargets (ratios of medians):");
    for &(ours, base, min, what) in TARGETS {
        if let (Some(a), Some(b)) = (rates.get(ours), rates.get(base)) {
            let ratio = a / b;
            let verdict = if min == 0.0 {
                ""
            } else if ratio >= min {
                "ok"
            } else {
                "MISS"
            };
            println!("  {verdict:<4} {ratio:>8.3}×  {what}");
        }
    }
}
