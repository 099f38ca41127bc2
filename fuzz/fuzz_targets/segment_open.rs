//! Feeds arbitrary bytes as a segment file to `from_fd` of every object
//! kind and element type. Each must return a value or a typed `Error` —
//! never panic, read out of bounds or take a `SIGBUS` — and a value it
//! returns must survive a few reads and writes (through `try_lock`, never a
//! blocking lock: the lock word is as arbitrary as the rest).
//!
//! Inputs come in two shapes, so that the fuzzer reaches past the magic
//! check: raw bytes, or a valid segment (made by the real constructors)
//! with arbitrary edits and a size change. Edits can write this process's
//! own TID, so a forged lock word that names us as the owner is tried too.
//!
//! The header's `init` word is set to `READY` whenever the magic is 0 or
//! right: otherwise `from_fd` waits (correctly) up to its 1 s open timeout
//! for a creator, which would stall the fuzzer. The not-ready path is
//! covered by the main crate's tests.
//!
//! ```sh
//! cargo +nightly fuzz run segment_open -- -max_total_time=60
//! ```
#![no_main]

use std::os::fd::{AsFd, BorrowedFd};
use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use shmsync::bytemuck::{Pod, Zeroable};
use shmsync::{
    Array, CChar, Element, Error, Lock, RLock, RawArray, RawValue, SharedMemory, TryLockError,
    Value, WChar,
};

/// A user struct (element code `'S'`).
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[bytemuck(crate = "shmsync::bytemuck")]
#[repr(C)]
struct Pt {
    x: f64,
    y: f64,
    id: u32,
    tag: u32,
}
impl Element for Pt {}

/// A struct aligned beyond a cache line (moves the data offset).
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[bytemuck(crate = "shmsync::bytemuck")]
#[repr(C, align(128))]
struct Wide {
    w: [u64; 16],
}
impl Element for Wide {}

const MAGIC: u64 = u64::from_le_bytes(*b"SHMSYNC\0");
const READY: u32 = u32::from_le_bytes(*b"REDY");
const INIT_OFFSET: usize = 72;
const MAX_LEN: usize = 16 * 1024;

#[derive(Arbitrary, Debug)]
enum Edit {
    Byte(u16, u8),
    U32(u16, u32),
    U64(u16, u64),
    /// This process's TID, as a forged owner (aligned 4-byte write).
    OurTid(u16),
    /// Our TID with `WAITERS`/`OWNER_DIED` bits.
    OurTidBits(u16, u8),
    /// The in-page lock slot (offset 128): a chosen word, count and state.
    LockSlot(Word, u32, u32),
}

/// Lock words worth trying (`src/raw/mutex.rs`'s state table).
#[derive(Arbitrary, Debug)]
enum Word {
    Free,
    /// Owner died (with or without `WAITERS`).
    OwnerDied(bool),
    NotRecoverable,
    /// Held by this thread (with `WAITERS` if true).
    Us(bool),
    /// Held by another thread id.
    Other(u32),
}

const LOCK_SLOT: usize = 128;
const WAITERS: u32 = 1 << 31;
const OWNER_DIED: u32 = 1 << 30;

#[derive(Arbitrary, Debug)]
enum Input {
    /// The file is exactly these bytes.
    Raw(Vec<u8>),
    /// A valid segment of template `which`, edited, then resized by
    /// `resize` bytes (zero-filled when it grows).
    Template {
        which: u8,
        edits: Vec<Edit>,
        resize: i16,
    },
}

fn bytes_of(fd: BorrowedFd<'_>) -> Vec<u8> {
    let m = SharedMemory::from_fd(fd.try_clone_to_owned().unwrap()).unwrap();
    let mut b = vec![0; m.len()];
    m.read_at(0, &mut b).unwrap();
    b
}

/// One valid segment of each shape the crate makes.
fn templates() -> &'static [Vec<u8>] {
    static T: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    T.get_or_init(|| {
        let shared = RLock::new().unwrap();
        let pt = Pt {
            x: 1.5,
            y: -2.0,
            id: 7,
            tag: 9,
        };
        #[allow(unused_mut)]
        let mut t = vec![
            bytes_of(Value::<i32>::new(-5).unwrap().as_fd()),
            bytes_of(Value::<f64>::new(0.25).unwrap().as_fd()),
            bytes_of(Value::<Pt>::new(pt).unwrap().as_fd()),
            bytes_of(Value::<i32>::with_lock(3, &shared).unwrap().as_fd()),
            bytes_of(RawValue::<u8>::new(200).unwrap().as_fd()),
            bytes_of(RawValue::<Wide>::new(Wide { w: [3; 16] }).unwrap().as_fd()),
            bytes_of(Array::<i64>::from_slice(&[1, -2, 3]).unwrap().as_fd()),
            bytes_of(
                Array::<CChar>::from_slice(&[CChar(b'h'), CChar(b'i'), CChar(0)])
                    .unwrap()
                    .as_fd(),
            ),
            bytes_of(Array::<Pt>::from_slice(&[pt, pt]).unwrap().as_fd()),
            bytes_of(
                RawArray::<u16>::from_slice(&[1, 2, 3, 4, 5])
                    .unwrap()
                    .as_fd(),
            ),
            bytes_of(RawArray::<WChar>::zeroed(4).unwrap().as_fd()),
            bytes_of(Array::<u8>::zeroed(0).unwrap().as_fd()),
            bytes_of(Lock::new().unwrap().as_fd()),
            bytes_of(RLock::new().unwrap().as_fd()),
        ];
        t.extend([
            bytes_of(shmsync::AtomicValue::<i64>::new(-9).unwrap().as_fd()),
            bytes_of(
                shmsync::AtomicArray::<f64>::from_slice(&[0.5, 2.0])
                    .unwrap()
                    .as_fd(),
            ),
            bytes_of(
                shmsync::AtomicArray::<f64>::zeroed_padded(3)
                    .unwrap()
                    .as_fd(),
            ),
        ]);
        t
    })
}

fn tid() -> u32 {
    // SAFETY: gettid(2) has no preconditions and cannot fail.
    let t = unsafe { libc::gettid() };
    u32::try_from(t).unwrap()
}

fn build(input: &Input) -> Vec<u8> {
    let mut b = match input {
        Input::Raw(b) => b.clone(),
        Input::Template {
            which,
            edits,
            resize,
        } => {
            let t = templates();
            let mut b = t[usize::from(*which) % t.len()].clone();
            for e in edits {
                let len = b.len();
                let at = |off: u16, width: usize| (usize::from(off) % len.div_ceil(width)) * width;
                let mut put = |o: usize, v: &[u8]| {
                    for (i, x) in v.iter().enumerate() {
                        if let Some(d) = b.get_mut(o + i) {
                            *d = *x;
                        }
                    }
                };
                match *e {
                    Edit::Byte(o, v) => put(at(o, 1), &[v]),
                    Edit::U32(o, v) => put(at(o, 4), &v.to_le_bytes()),
                    Edit::U64(o, v) => put(at(o, 8), &v.to_le_bytes()),
                    Edit::OurTid(o) => put(at(o, 4), &tid().to_le_bytes()),
                    Edit::OurTidBits(o, bits) => {
                        let v = tid() | (u32::from(bits & 3) << 30);
                        put(at(o, 4), &v.to_le_bytes());
                    }
                    Edit::LockSlot(ref w, count, state) => {
                        let w = match *w {
                            Word::Free => 0,
                            Word::OwnerDied(waiters) => {
                                OWNER_DIED | if waiters { WAITERS } else { 0 }
                            }
                            Word::NotRecoverable => 0x3fff_ffff,
                            Word::Us(waiters) => tid() | if waiters { WAITERS } else { 0 },
                            Word::Other(v) => v,
                        };
                        put(LOCK_SLOT, &w.to_le_bytes());
                        put(LOCK_SLOT + 4, &count.to_le_bytes());
                        put(LOCK_SLOT + 8, &state.to_le_bytes());
                    }
                }
            }
            let len = (b.len() as isize + isize::from(*resize)).clamp(1, MAX_LEN as isize);
            b.resize(len as usize, 0);
            b
        }
    };
    b.truncate(MAX_LEN);
    if b.len() >= INIT_OFFSET + 4 {
        let magic = u64::from_le_bytes(b[..8].try_into().unwrap());
        if magic == 0 || magic == MAGIC {
            b[INIT_OFFSET..INIT_OFFSET + 4].copy_from_slice(&READY.to_le_bytes());
        }
    }
    b
}

/// Bitwise equality (floats read from arbitrary bytes may be NaN).
fn same<T: Element>(a: T, b: T) -> bool {
    shmsync::bytemuck::bytes_of(&a) == shmsync::bytemuck::bytes_of(&b)
}

/// `from_fd` may fail, but only with a validation error.
fn expect_typed(e: &Error) {
    assert!(
        !matches!(e, Error::Io { .. } | Error::NotReady),
        "unexpected error on a valid memfd: {e:?}"
    );
}

fn use_value<T: Element>(fd: BorrowedFd<'_>) {
    match Value::<T>::from_fd(fd.try_clone_to_owned().unwrap()) {
        Ok(v) => {
            let _ = v.get_lock().is_locked();
            match v.try_lock() {
                Ok(g) => {
                    let x = g.get();
                    g.set(x);
                    assert!(same(g.get(), x));
                }
                Err(TryLockError::OwnerDied(g)) => {
                    let _ = g.get(); // dropped without repair
                }
                Err(_) => {}
            }
            let _ = v.lock_timeout(Duration::ZERO).map(|g| g.get());
        }
        Err(e) => expect_typed(&e),
    }
}

fn use_raw_value<T: Element>(fd: BorrowedFd<'_>) {
    match RawValue::<T>::from_fd(fd.try_clone_to_owned().unwrap()) {
        Ok(v) => {
            let x = v.get();
            v.set(x);
        }
        Err(e) => expect_typed(&e),
    }
}

fn use_array<T: Element>(fd: BorrowedFd<'_>) {
    match Array::<T>::from_fd(fd.try_clone_to_owned().unwrap()) {
        Ok(a) => {
            let n = a.len();
            let g = match a.try_lock() {
                Ok(g) => g,
                Err(TryLockError::OwnerDied(g)) => g,
                Err(_) => return,
            };
            assert_eq!(g.len(), n);
            let all = g.to_vec();
            assert_eq!(all.len(), n);
            for (i, x) in all.iter().enumerate().take(4) {
                assert!(same(g.get(i), *x));
                g.set(i, *x);
            }
            if n > 0 {
                let mut last = [T::zeroed()];
                g.read(n - 1, &mut last);
                g.write(n - 1, &last);
            }
        }
        Err(e) => expect_typed(&e),
    }
}

fn use_raw_array<T: Element>(fd: BorrowedFd<'_>) {
    match RawArray::<T>::from_fd(fd.try_clone_to_owned().unwrap()) {
        Ok(a) => {
            let all = a.to_vec();
            assert_eq!(all.len(), a.len());
            if let Some(x) = all.first() {
                assert!(same(a.get(0), *x));
                a.set(0, *x);
            }
            assert_eq!(a.iter().count(), a.len());
        }
        Err(e) => expect_typed(&e),
    }
}

fn use_cchars(fd: BorrowedFd<'_>) {
    if let Ok(a) = Array::<CChar>::from_fd(fd.try_clone_to_owned().unwrap()) {
        if let Ok(g) = a.try_lock() {
            let v = g.value();
            assert!(v.len() <= g.len() && !v.contains(&0));
            assert_eq!(g.raw().len(), g.len());
            let _ = g.set_value(&v);
        }
    }
    if let Ok(a) = RawArray::<CChar>::from_fd(fd.try_clone_to_owned().unwrap()) {
        assert!(a.value().len() <= a.len());
    }
}

fn use_locks(fd: BorrowedFd<'_>) {
    match Lock::from_fd(fd.try_clone_to_owned().unwrap()) {
        Ok(l) => {
            let _ = l.is_locked();
            let _ = l.try_lock().map(drop);
            let _ = l.lock_timeout(Duration::ZERO).map(drop);
        }
        Err(e) => expect_typed(&e),
    }
    match RLock::from_fd(fd.try_clone_to_owned().unwrap()) {
        Ok(l) => {
            let _ = l.is_held_by_current_thread();
            if let Ok(g) = l.try_lock() {
                // Recursion on a forged page: a second hold, both released.
                let _ = l.try_lock().map(drop);
                drop(g);
            }
        }
        Err(e) => expect_typed(&e),
    }
}

/// Atomic kinds: `AtomicValue<T>` / `AtomicArray<T>` (`from_fd`, then
/// `load`/`store`/`fetch_add`/`to_vec`).
fn use_atomics(fd: BorrowedFd<'_>) {
    use std::sync::atomic::Ordering::SeqCst;
    match shmsync::AtomicValue::<i64>::from_fd(fd.try_clone_to_owned().unwrap()) {
        Ok(v) => {
            let x = v.load(SeqCst);
            v.store(x, SeqCst);
        }
        Err(e) => expect_typed(&e),
    }
    match shmsync::AtomicArray::<f64>::from_fd(fd.try_clone_to_owned().unwrap()) {
        Ok(a) => {
            assert_eq!(a.to_vec().len(), a.len());
            if let Some(c) = a.get(a.len().saturating_sub(1)) {
                c.fetch_add(0.0, SeqCst);
            }
        }
        Err(e) => expect_typed(&e),
    }
}

fuzz_target!(|input: Input| {
    let b = build(&input);
    if b.is_empty() {
        return;
    }
    let seg = SharedMemory::anonymous(b.len()).unwrap();
    seg.write_at(0, &b).unwrap();
    let fd = seg.as_fd();

    use_value::<i32>(fd);
    use_value::<f64>(fd);
    use_value::<Pt>(fd);
    use_value::<u8>(fd);
    use_raw_value::<u8>(fd);
    use_raw_value::<i64>(fd);
    use_raw_value::<Wide>(fd);
    use_array::<i64>(fd);
    use_array::<Pt>(fd);
    use_array::<u8>(fd);
    use_raw_array::<u16>(fd);
    use_raw_array::<WChar>(fd);
    use_raw_array::<f32>(fd);
    use_cchars(fd);
    use_locks(fd);
    use_atomics(fd);
});
