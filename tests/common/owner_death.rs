//! What the suites that kill lock holders need on top of the child
//! processes of `common/mod.rs`: children started in a chosen robustness
//! mode, a look at a lock word, the outcome of a locking call by name, and
//! reproducible random trials.
//!
//! A child started with [`Spawn::mode`] gets `SHMSYNC_ROBUST=fallback` or no
//! such variable, according to its [`Mode`], and checks before its role runs
//! ([`run_child`](super::run_child), [`premain!`](super::premain)) that
//! [`shmsync::robustness`] reports that mode.

use shmsync::raw::WAITERS;
use shmsync::{LockError, Robustness, SharedMemory, TryLockError};

use super::layout::SLOT_WORD;
use super::{wait_until, Spawn};

/// The child's intended mode (`list` or `fallback`).
const MODE_ENV: &str = "SHMSYNC_CHILD_MODE";

// ---------------------------------------------------------------------------
// Modes
// ---------------------------------------------------------------------------

/// The owner-death mechanism a child process is started in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// The default: the kernel's robust list where it fits (64-bit glibc).
    List,
    /// `SHMSYNC_ROBUST=fallback`: liveness bytes only.
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

    /// In a child started with [`Spawn::mode`]: its mode, checked against
    /// the crate's. Panics in any other process.
    pub(crate) fn of_child() -> Mode {
        match check_child_mode() {
            Some(m) => m,
            None => panic!("{MODE_ENV} not set: the child was started without a mode"),
        }
    }
}

/// In a child started with [`Spawn::mode`], checks that the crate runs in
/// that mode and returns it; `None` in a child started without one.
pub(crate) fn check_child_mode() -> Option<Mode> {
    let m = match std::env::var(MODE_ENV).as_deref() {
        Ok("list") => Mode::List,
        Ok("fallback") => Mode::Fallback,
        Err(std::env::VarError::NotPresent) => return None,
        other => panic!("{MODE_ENV} not set properly: {other:?}"),
    };
    assert_eq!(
        shmsync::robustness(),
        m.expected(),
        "child started in mode {m:?} runs in the wrong mode"
    );
    Some(m)
}

impl Spawn {
    /// Starts the child in `mode` (and names the mode in failure messages).
    pub(crate) fn mode(self, mode: Mode) -> Spawn {
        let sp = match mode {
            Mode::List => self.env_remove("SHMSYNC_ROBUST"),
            Mode::Fallback => self.env("SHMSYNC_ROBUST", "fallback"),
        };
        sp.env(MODE_ENV, mode.as_str()).note(&format!("({mode:?})"))
    }
}

/// Declares a scenario's two `#[test]`s, one per [`Mode`], for each line
/// `scenario: list_test, fallback_test;`: each test calls
/// `scenario(test, mode)` with its own name as `test`. With a first line
/// `children: roles;`, a child process started for any of the tests runs
/// `roles` ([`run_child`](super::run_child)) instead.
///
/// ```ignore
/// mode_tests! {
///     children: roles;
///     waiter_blocked::scenario: waiter_blocked_list, waiter_blocked_fallback;
/// }
/// ```
#[allow(unused_macros)] // used by some suites only
macro_rules! mode_tests {
    (children: $roles:path; $($scenario:path: $list:ident, $fallback:ident;)*) => {$(
        $crate::common::owner_death::mode_tests!(@test $scenario, $list, List, $roles);
        $crate::common::owner_death::mode_tests!(@test $scenario, $fallback, Fallback, $roles);
    )*};
    ($($scenario:path: $list:ident, $fallback:ident;)*) => {$(
        $crate::common::owner_death::mode_tests!(@test $scenario, $list, List);
        $crate::common::owner_death::mode_tests!(@test $scenario, $fallback, Fallback);
    )*};
    (@test $scenario:path, $name:ident, $mode:ident $(, $roles:path)?) => {
        #[test]
        fn $name() {
            let test = stringify!($name);
            $(
                if $crate::common::run_child(test, $roles) {
                    return;
                }
            )?
            $scenario(test, $crate::common::owner_death::Mode::$mode);
        }
    };
}
#[allow(unused_imports)] // used by some suites only
pub(crate) use mode_tests;

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
        self.0.read_at(SLOT_WORD, &mut b).expect("read lock word");
        u32::from_ne_bytes(b)
    }

    /// Waits until `cond(word)` holds (a handshake, bounded by
    /// [`HANG_LIMIT`](super::HANG_LIMIT)); returns the word.
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
// Outcomes of locking calls
// ---------------------------------------------------------------------------

/// A locking call's result, `LockError`- or `TryLockError`-shaped, widened
/// to the latter (the same variants, plus `WouldBlock`).
pub(crate) trait Outcome {
    type Ok;
    type Guard;
    fn widen(self) -> Result<Self::Ok, TryLockError<Self::Guard>>;
}

impl<T, G> Outcome for Result<T, LockError<G>> {
    type Ok = T;
    type Guard = G;
    fn widen(self) -> Result<T, TryLockError<G>> {
        self.map_err(TryLockError::from)
    }
}

impl<T, G> Outcome for Result<T, TryLockError<G>> {
    type Ok = T;
    type Guard = G;
    fn widen(self) -> Self {
        self
    }
}

/// The name of what a locking call returned, for messages.
pub(crate) fn kind<T, G>(r: &Result<T, TryLockError<G>>) -> &'static str {
    match r {
        Ok(_) => "Ok",
        Err(TryLockError::WouldBlock) => "WouldBlock",
        Err(TryLockError::OwnerDied(_)) => "OwnerDied",
        Err(TryLockError::NotRecoverable) => "NotRecoverable",
        Err(TryLockError::Deadlock) => "Deadlock",
        Err(_) => "another error",
    }
}

/// Asserts that `r` is `Ok` with a value (or guard) for which `good` holds.
#[track_caller]
pub(crate) fn assert_ok<R: Outcome>(what: &str, r: R, good: impl FnOnce(&R::Ok) -> bool) {
    let r = r.widen();
    assert!(r.as_ref().is_ok_and(good), "{what}: {}", kind(&r));
}

/// Asserts that `r` is the outcome named `want` (see [`kind`]).
#[track_caller]
pub(crate) fn assert_kind(what: &str, r: impl Outcome, want: &str) {
    let k = kind(&r.widen());
    assert!(k == want, "{what}: {k}");
}

/// The value (or guard) of an `Ok` result; panics with `what` otherwise.
#[track_caller]
pub(crate) fn expect_ok<R: Outcome>(what: &str, r: R) -> R::Ok {
    match r.widen() {
        Ok(x) => x,
        r => panic!("{what}: {}", kind(&r)),
    }
}

/// The guard of an `OwnerDied` result; panics with `what` otherwise.
#[track_caller]
pub(crate) fn expect_owner_died<R: Outcome>(what: &str, r: R) -> R::Guard {
    match r.widen() {
        Err(TryLockError::OwnerDied(g)) => g,
        r => panic!("{what}: {}", kind(&r)),
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
        let b: [u8; 8] = super::random_bytes(8).try_into().expect("8 bytes");
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
