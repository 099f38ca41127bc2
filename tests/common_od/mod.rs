//! What only the owner-death tests (`tests/owner_death.rs`) need on top of
//! the shared machinery in `common/mod.rs`: child processes started in a
//! chosen robustness mode, a look at a lock word, and reproducible random
//! trials.
//!
//! Every child gets `SHMSYNC_ROBUST=fallback` or no such variable,
//! according to its [`Mode`], and checks at its start that
//! [`shmsync::robustness`] reports that mode ([`run_child`], or
//! [`Mode::of_child`] in a pre-`main` child).
#![allow(dead_code)]

use shmsync::raw::WAITERS;
use shmsync::{Robustness, SharedMemory};

use crate::common::{self, wait_until, Spawn};

/// The child's intended mode (`list` or `fallback`).
const MODE_ENV: &str = "SHMSYNC_OD_MODE";

/// Offset of the lock word in every object's segment (the in-page
/// `LockSlot`, `docs/ROBUST.md`: a glibc-shaped 40-byte node at 128).
pub(crate) const LOCK_WORD_OFFSET: usize = 128;

// ---------------------------------------------------------------------------
// Modes
// ---------------------------------------------------------------------------

/// The owner-death mechanism a child process is started in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// The default: the kernel's robust list where it fits (64-bit glibc).
    List,
    /// `SHMSYNC_ROBUST=fallback`: liveness tokens only.
    Fallback,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::List => "list",
            Mode::Fallback => "fallback",
        }
    }

    /// What [`shmsync::robustness`] must report in a child of this mode.
    pub(crate) fn expected(self) -> Robustness {
        match self {
            // The list is proven to fit on 64-bit glibc (this machine);
            // elsewhere the default is the fallback.
            Mode::List if cfg!(all(target_env = "gnu", target_pointer_width = "64")) => {
                Robustness::KernelList
            }
            _ => Robustness::Fallback,
        }
    }

    /// Whether the kernel marks our locks when their owner dies.
    pub(crate) fn kernel_marks(self) -> bool {
        self.expected() == Robustness::KernelList
    }

    fn apply(self, sp: Spawn) -> Spawn {
        let sp = match self {
            Mode::List => sp.env_remove("SHMSYNC_ROBUST"),
            Mode::Fallback => sp.env("SHMSYNC_ROBUST", "fallback"),
        };
        sp.env(MODE_ENV, self.as_str()).note(&format!("({self:?})"))
    }

    /// In a child: the mode it was started in, checked against the crate.
    pub(crate) fn of_child() -> Mode {
        let m = match std::env::var(MODE_ENV).as_deref() {
            Ok("list") => Mode::List,
            Ok("fallback") => Mode::Fallback,
            other => panic!("{MODE_ENV} not set properly: {other:?}"),
        };
        assert_eq!(
            shmsync::robustness(),
            m.expected(),
            "child started in mode {m:?} runs in the wrong mode"
        );
        m
    }
}

/// A child running `role` of `test` in `mode` ([`common::spawn`] with the
/// mode's environment).
pub(crate) fn spawn(test: &str, role: &str, mode: Mode) -> Spawn {
    mode.apply(common::spawn(test, role))
}

/// [`common::run_child`] that first checks the mode the child was started
/// in and passes it to `role`.
pub(crate) fn run_child(test: &str, role: impl FnOnce(&str, Mode)) -> bool {
    common::run_child(test, |r| role(r, Mode::of_child()))
}

// ---------------------------------------------------------------------------
// Lock word
// ---------------------------------------------------------------------------

/// A second mapping of an object's segment, to read its lock word (never
/// written; an opened `SharedMemory` never unlinks).
#[derive(Debug)]
pub(crate) struct Peek(SharedMemory);

impl Peek {
    pub(crate) fn open(name: &str) -> Peek {
        Peek(SharedMemory::open(name).expect("open segment to peek"))
    }

    /// The lock word now.
    pub(crate) fn word(&self) -> u32 {
        let mut b = [0u8; 4];
        self.0
            .read_at(LOCK_WORD_OFFSET, &mut b)
            .expect("read lock word");
        u32::from_ne_bytes(b)
    }

    /// The lock slot's owner record (`tid << 32 | liveness token`, at 16
    /// in the slot; diagnostics only).
    pub(crate) fn owner(&self) -> u64 {
        let mut b = [0u8; 8];
        self.0
            .read_at(LOCK_WORD_OFFSET + 16, &mut b)
            .expect("read owner record");
        u64::from_ne_bytes(b)
    }

    /// Waits until `cond(word)` holds (a handshake, bounded by
    /// [`common::HANG_LIMIT`]); returns the word.
    pub(crate) fn wait_for(&self, what: &str, cond: impl Fn(u32) -> bool) -> u32 {
        wait_until(what, || {
            let w = self.word();
            cond(w).then_some(w)
        })
    }

    /// Waits until a locker (`who`) sleeps on the word: its `WAITERS` bit
    /// is set. Returns the word.
    pub(crate) fn wait_asleep(&self, who: &str) -> u32 {
        self.wait_for(&format!("{who} asleep on the word"), |w| w & WAITERS != 0)
    }
}

// ---------------------------------------------------------------------------
// Randomness
// ---------------------------------------------------------------------------

/// xorshift64*: reproducible from a printed seed.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    /// A seed from `getrandom`, or `SHMSYNC_OD_SEED` to replay.
    pub(crate) fn seed() -> u64 {
        if let Ok(s) = std::env::var("SHMSYNC_OD_SEED") {
            return s.parse().expect("SHMSYNC_OD_SEED is a u64");
        }
        let b: [u8; 8] = common::random_bytes(8).try_into().expect("8 bytes");
        u64::from_ne_bytes(b)
    }

    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Trials per scenario and mode: `SHMSYNC_OD_TRIALS` or `default`.
pub(crate) fn trials(default: usize) -> usize {
    std::env::var("SHMSYNC_OD_TRIALS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}
