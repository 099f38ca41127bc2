//! Pieces the `*_transitions` fuzz targets share: a deterministic,
//! single-threaded fake futex word ([`FakeWord`]) with counters of its
//! sleeps and wakes, and a deadline that grants a number of slices
//! ([`Budget`]). What differs between the targets (which wakes an object
//! may issue, what a sleep must find in the word, the messages of the
//! checks) is a [`Rules`] type each target defines.

use std::cell::{Cell, RefCell};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use shmsync::raw::{Deadline, FutexWord};

/// What a target's [`FakeWord`] checks. Every item has the default most
/// targets use.
pub trait Rules {
    /// Bits the value a sleep expects must have (all of them, if any).
    const WAIT_BITS: u32 = 0;
    /// The message when a sleep's bits are missing.
    const WAIT_BITS_MSG: &'static str = "sleeps only once announced";
    /// The message when a sleep expects another value than the word holds.
    const WAIT_VALUE_MSG: &'static str = "sleeps on the word it read";
    /// The message when a sleep has no timeout.
    const WAIT_BOUNDED_MSG: &'static str = "every sleep of a waiter is bounded";
    /// `Some(message)`: a `wake_one` is a bug (panics with the message).
    const NO_WAKE_ONE: Option<&'static str> = None;
    /// `Some(message)`: a `wake_all` is a bug (panics with the message).
    const NO_WAKE_ALL: Option<&'static str> = None;
    /// `true`: a `wake_n(n)` is logged as `n` (in [`FakeWord::wakes`])
    /// and does nothing else; `false`: the trait's provided `wake_n` (a
    /// `wake_one` for 1, a `wake_all` for more).
    const LOG_WAKE_N: bool = false;
}

/// A single-threaded futex word: `core`'s `AtomicU32`, and counters of the
/// sleeps and wakes (a sleep returns at once with the word unchanged).
#[derive(Debug)]
pub struct FakeWord<R> {
    /// The word.
    pub v: AtomicU32,
    /// Sleeps so far.
    pub waits: Cell<u32>,
    /// `wake_one`s so far.
    pub wake_one: Cell<u32>,
    /// `wake_all`s so far.
    pub wake_all: Cell<u32>,
    /// The `n` of every `wake_n` (with [`Rules::LOG_WAKE_N`]) / `wake_one`
    /// (1) / `wake_all` (`u32::MAX`), in order.
    pub wakes: RefCell<Vec<u32>>,
    rules: PhantomData<R>,
}

impl<R> FakeWord<R> {
    /// The wakes logged since the last call.
    pub fn take_wakes(&self) -> Vec<u32> {
        self.wakes.take()
    }
}

impl<R: Rules> FutexWord for FakeWord<R> {
    type Atomic = AtomicU32;

    fn new(v: u32) -> Self {
        FakeWord {
            v: AtomicU32::new(v),
            waits: Cell::new(0),
            wake_one: Cell::new(0),
            wake_all: Cell::new(0),
            wakes: RefCell::new(Vec::new()),
            rules: PhantomData,
        }
    }

    fn atomic(&self) -> &AtomicU32 {
        &self.v
    }

    fn wait(&self, expected: u32, timeout: Option<Duration>) {
        assert_eq!(
            self.v.load(Ordering::Relaxed),
            expected,
            "{}",
            R::WAIT_VALUE_MSG
        );
        assert!(
            expected & R::WAIT_BITS == R::WAIT_BITS,
            "{}",
            R::WAIT_BITS_MSG
        );
        assert!(timeout.is_some(), "{}", R::WAIT_BOUNDED_MSG);
        self.waits.set(self.waits.get() + 1);
    }

    fn wake_one(&self) {
        if let Some(msg) = R::NO_WAKE_ONE {
            panic!("{msg}");
        }
        self.wake_one.set(self.wake_one.get() + 1);
        self.wakes.borrow_mut().push(1);
    }

    fn wake_all(&self) {
        if let Some(msg) = R::NO_WAKE_ALL {
            panic!("{msg}");
        }
        self.wake_all.set(self.wake_all.get() + 1);
        self.wakes.borrow_mut().push(u32::MAX);
    }

    fn wake_n(&self, n: u32) {
        if R::LOG_WAKE_N {
            self.wakes.borrow_mut().push(n);
            return;
        }
        match n {
            0 => {}
            1 => self.wake_one(),
            _ => self.wake_all(),
        }
    }
}

/// A deadline that grants `left` slices.
pub struct Budget(pub u8);

impl Deadline for Budget {
    fn remaining(&mut self) -> Option<Duration> {
        if self.0 == 0 {
            return None;
        }
        self.0 -= 1;
        Some(Duration::from_millis(1))
    }
}
