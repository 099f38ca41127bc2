//! A hostile peer against a lock holder, through the real API: one thread
//! takes and releases shmsync locks and glibc robust mutexes in any order
//! while a "peer" overwrites any field of the held locks' slots (the word,
//! the holds copy, the state, the robust-list links) with zeros, garbage,
//! addresses of the holder's private memory, of its other nodes, of
//! glibc's mutexes or of its list head.
//!
//! The peer writes through a second mapping of each lock's file, as a
//! process with write access to the segment would. What must hold whatever
//! it writes:
//! - the holder never crashes, panics or hangs (only `try_lock` is used:
//!   a scribbled word may name a live stranger);
//! - its private memory (a canary block, glibc's mutexes) is unchanged but
//!   for glibc's own bookkeeping;
//! - its holds are its own: `is_held_by_current_thread` is true exactly
//!   while it has guards (through any mapping of the lock), and releasing
//!   every guard releases the lock;
//! - its robust list, walked from the head, holds exactly the locks it
//!   holds (unless the peer rewrote the links of a node while it was
//!   linked, where the kernel's walk is the peer's to spoil) and is empty
//!   once everything is released.
//!
//! ```sh
//! cargo +nightly fuzz run peer_scribble -- -max_total_time=60
//! ```
#![no_main]

use std::os::fd::AsFd;
use std::sync::OnceLock;

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use shmsync::{RLock, RLockGuard, SharedMemory, TryLockError};

/// Handles: the first `FILES` are distinct lock files; the rest are second
/// mappings of the first files (recursion across mappings of one slot,
/// whose nodes share the slot's link fields).
const LOCKS: usize = 6;
const FILES: usize = 4;
const GLIBC: usize = 2;
const CANARY: u64 = 0x5eed_5eed_5eed_5eed;

/// Offsets of the slot's fields in the lock's file.
const WORD: usize = 128;
const EXTRA: usize = 132;
const STATE: usize = 136;
const PREV: usize = 152;
const NEXT: usize = 160;

struct World {
    locks: Vec<RLock>,
    /// The peer's view of each lock's file (another mapping).
    peer: Vec<SharedMemory>,
    glibc: Vec<*mut libc::pthread_mutex_t>,
    canary: *mut [u64; 16],
    head: usize,
}

// SAFETY: the fuzzer runs one thread; the raw pointers are leaked heap
// blocks that live for the whole process.
unsafe impl Send for World {}
// SAFETY: as above.
unsafe impl Sync for World {}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let mut locks: Vec<RLock> = (0..FILES).map(|_| RLock::new().unwrap()).collect();
        for i in 0..LOCKS - FILES {
            let fd = locks[i].as_fd().try_clone_to_owned().unwrap();
            locks.push(RLock::from_fd(fd).unwrap());
        }
        let peer = locks
            .iter()
            .map(|l| SharedMemory::from_fd(l.as_fd().try_clone_to_owned().unwrap()).unwrap())
            .collect();
        let glibc = (0..GLIBC)
            .map(|_| {
                // SAFETY: zeroed storage for a mutex, initialised below.
                let m: *mut libc::pthread_mutex_t =
                    Box::into_raw(Box::new(unsafe { std::mem::zeroed() }));
                // SAFETY: a fresh, private mutex and a local attribute.
                unsafe {
                    let mut a: libc::pthread_mutexattr_t = std::mem::zeroed();
                    libc::pthread_mutexattr_init(&mut a);
                    libc::pthread_mutexattr_setrobust(&mut a, 1);
                    assert_eq!(libc::pthread_mutex_init(m, &a), 0);
                    libc::pthread_mutexattr_destroy(&mut a);
                }
                m
            })
            .collect();
        let canary = Box::into_raw(Box::new([CANARY; 16]));
        World {
            locks,
            peer,
            glibc,
            canary,
            head: robust_head(),
        }
    })
}

/// This thread's robust-list head.
fn robust_head() -> usize {
    let mut head: usize = 0;
    let mut len: usize = 0;
    // SAFETY: two valid out-pointers; pid 0 is this thread.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_get_robust_list,
            0 as libc::c_long,
            &raw mut head,
            &raw mut len,
        )
    };
    assert_eq!(rc, 0);
    head
}

/// Reads a word of our memory without risking a fault.
fn peek(addr: usize) -> Option<usize> {
    let mut out = 0usize;
    let local = libc::iovec {
        iov_base: (&raw mut out).cast(),
        iov_len: 8,
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: 8,
    };
    // SAFETY: our own buffer; the kernel checks the remote range.
    let n = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
    (n == 8).then_some(out)
}

/// The list from the head, or `None` if it does not come back to the head
/// within 64 readable entries.
fn list(head: usize) -> Option<Vec<usize>> {
    let mut out = Vec::new();
    let mut cur = peek(head)? & !1;
    while cur != head {
        if out.len() > 64 {
            return None;
        }
        out.push(cur);
        cur = peek(cur)? & !1;
    }
    Some(out)
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Field {
    Word,
    Extra,
    State,
    Prev,
    Next,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Val {
    Zero,
    Raw(u64),
    /// An address inside the holder's canary block.
    Canary(u8),
    /// The head, or the address just in front of it.
    Head(bool),
    /// A glibc mutex's node.
    Glibc(u8),
    /// This thread's TID (for the word).
    MyTid,
    /// A value read from another slot's field (a real address of the
    /// holder's list, in the wrong place).
    CopyOf(u8, Field),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Op {
    Lock(u8),
    /// Drop the k-th guard of lock i.
    Unlock(u8, u8),
    GlibcLock(u8),
    GlibcUnlock(u8),
    Scribble(u8, Field, Val),
}

/// The lock file behind handle `i`.
fn file_of(i: usize) -> usize {
    if i < FILES {
        i
    } else {
        i - FILES
    }
}

fn off(f: Field) -> usize {
    match f {
        Field::Word => WORD,
        Field::Extra => EXTRA,
        Field::State => STATE,
        Field::Prev => PREV,
        Field::Next => NEXT,
    }
}

fn check_canary(w: &World) {
    // SAFETY: a leaked heap block nobody else writes.
    let c = unsafe { std::ptr::read_volatile(w.canary) };
    assert_eq!(c, [CANARY; 16], "the holder's private memory was written");
}

fuzz_target!(|ops: Vec<Op>| {
    let w = world();
    // A fresh start: no holds, every slot zeroed by the peer.
    for p in &w.peer[..FILES] {
        p.write_at(WORD, &[0u8; 48]).unwrap();
    }
    let mut guards: Vec<Vec<RLockGuard<'static>>> = (0..LOCKS).map(|_| Vec::new()).collect();
    let mut glibc_held = [false; GLIBC];
    // Locks whose links the peer rewrote while they were linked.
    let mut spoiled = [false; FILES];
    let me = u64::try_from(unsafe { libc::gettid() }).unwrap();
    for op in ops.into_iter().take(64) {
        match op {
            Op::Lock(i) => {
                let i = usize::from(i) % LOCKS;
                match w.locks[i].try_lock() {
                    Ok(g) => guards[i].push(g),
                    Err(TryLockError::OwnerDied(g)) => {
                        g.mark_consistent();
                        guards[i].push(g);
                    }
                    Err(_) => {}
                }
            }
            Op::Unlock(i, k) => {
                let i = usize::from(i) % LOCKS;
                if !guards[i].is_empty() {
                    let k = usize::from(k) % guards[i].len();
                    drop(guards[i].remove(k));
                }
            }
            Op::GlibcLock(j) => {
                let j = usize::from(j) % GLIBC;
                if !glibc_held[j] {
                    // SAFETY: an initialised robust mutex, not held.
                    let rc = unsafe { libc::pthread_mutex_lock(w.glibc[j]) };
                    assert_eq!(rc, 0);
                    glibc_held[j] = true;
                }
            }
            Op::GlibcUnlock(j) => {
                let j = usize::from(j) % GLIBC;
                if glibc_held[j] {
                    // SAFETY: held by this thread.
                    let rc = unsafe { libc::pthread_mutex_unlock(w.glibc[j]) };
                    assert_eq!(rc, 0);
                    glibc_held[j] = false;
                }
            }
            Op::Scribble(i, f, v) => {
                let i = usize::from(i) % LOCKS;
                let value: u64 = match v {
                    Val::Zero => 0,
                    Val::Raw(x) => x,
                    Val::Canary(k) => w.canary as u64 + u64::from(k % 16) * 8,
                    Val::Head(front) => w.head as u64 - if front { 8 } else { 0 },
                    Val::Glibc(j) => w.glibc[usize::from(j) % GLIBC] as u64 + 32,
                    Val::MyTid => me,
                    Val::CopyOf(j, g) => {
                        let mut b = [0u8; 8];
                        w.peer[usize::from(j) % LOCKS]
                            .read_at(off(g), &mut b)
                            .unwrap();
                        u64::from_ne_bytes(b)
                    }
                };
                match f {
                    Field::Prev | Field::Next => {
                        w.peer[i].write_at(off(f), &value.to_ne_bytes()).unwrap();
                        let fi = file_of(i);
                        if (0..LOCKS).any(|j| file_of(j) == fi && !guards[j].is_empty()) {
                            spoiled[fi] = true;
                        }
                    }
                    _ => w.peer[i]
                        .write_at(off(f), &(value as u32).to_ne_bytes())
                        .unwrap(),
                }
            }
        }
        check_canary(w);
        // Whether the file of handle `i` is held through any handle.
        let file_held = |i: usize| {
            let f = file_of(i);
            (0..LOCKS).any(|j| file_of(j) == f && !guards[j].is_empty())
        };
        for i in 0..LOCKS {
            assert_eq!(
                w.locks[i].is_held_by_current_thread(),
                file_held(i),
                "lock {i}: holds are the holder's own"
            );
            if !file_held(i) {
                spoiled[file_of(i)] = false;
            }
        }
        if shmsync::robustness() == shmsync::Robustness::KernelList && !spoiled.iter().any(|&s| s) {
            let l = list(w.head).expect("the robust list comes back to its head");
            let want = (0..FILES).filter(|&f| file_held(f)).count()
                + glibc_held.iter().filter(|&&h| h).count();
            assert_eq!(l.len(), want, "the list holds exactly what is held: {l:x?}");
            for (j, &h) in glibc_held.iter().enumerate() {
                let node = w.glibc[j] as usize + 32;
                assert_eq!(l.contains(&node), h, "glibc mutex {j} linked iff held");
            }
        }
    }
    // Release everything, in a fixed order, and check the end state.
    for g in guards.iter_mut() {
        while let Some(x) = g.pop() {
            drop(x);
        }
    }
    for (j, h) in glibc_held.iter_mut().enumerate() {
        if *h {
            // SAFETY: held by this thread.
            assert_eq!(unsafe { libc::pthread_mutex_unlock(w.glibc[j]) }, 0);
            *h = false;
        }
    }
    check_canary(w);
    for l in &w.locks {
        assert!(!l.is_held_by_current_thread());
    }
    if shmsync::robustness() == shmsync::Robustness::KernelList {
        assert_eq!(
            list(w.head),
            Some(Vec::new()),
            "everything released: an empty list"
        );
    }
});
