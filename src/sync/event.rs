#![allow(unsafe_code)] // the event word in the validated mapping
//! [`Event`]: Python's `multiprocessing.Event`, one futex word in a shared
//! page.

use core::fmt;
use core::sync::atomic::AtomicU32;
use core::time::Duration;
use std::sync::Arc;

use crate::error::Result;
use crate::raw::RawEvent;
use crate::shared::SharedObject;
use crate::shm::object::{ElemDesc, Kind, LockMode, Object, Shape};
use crate::shm::segment::Segment;
use crate::sync::deadline::Until;
use crate::sync::RLock;

/// A flag that threads of every process sharing it can wait for: Python's
/// `multiprocessing.Event` (`set`, `clear`, `is_set`, `wait(timeout)`),
/// with no lock inside.
///
/// The state is one futex word in the mapped page (flag, waiters bit and a
/// generation: `src/raw/event.rs`). [`set`](Self::set) wakes every waiter
/// of every process; [`is_set`](Self::is_set), and `set` on an event that
/// is already set, make no system call.
///
/// **A process that dies never blocks the others**: no operation holds
/// anything, so a process killed at any instruction of `set`, `clear` or
/// `wait` leaves an event that the others use as before. A setter killed
/// after raising the flag but before waking the sleepers delays them by at
/// most 50 ms: waiters sleep in slices (1 ms doubling to 50 ms) and look at
/// the flag after each, which also makes a long wait cost a wake-up every
/// 50 ms.
///
/// Handles are cheap to clone and are `Send + Sync`. What a thread wrote
/// before a `set` that raised the flag is visible to a thread whose
/// [`wait`](Self::wait) returned because of it (`Release`/`Acquire` on the
/// word).
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let ready = shmsync::Event::new()?;
/// let r = ready.clone(); // or inherited by a forked child, or `open`ed by name
/// let t = std::thread::spawn(move || r.wait());
/// ready.set();
/// t.join().unwrap();
/// assert!(ready.is_set());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Event {
    seg: Arc<Segment>,
    word: *const RawEvent<AtomicU32>,
}

// SAFETY: `word` points at an atomic in a shared mapping that `seg` keeps
// alive; no thread-affine state is held.
unsafe impl Send for Event {}
// SAFETY: as for Send: every access to the word is atomic.
unsafe impl Sync for Event {}

impl SharedObject for Event {
    const SHAPE: Shape = Shape {
        kind: Kind::Event,
        elem: ElemDesc::NONE,
        strides: [4, 4],
        lock: LockMode::None,
        shares_lock: false,
        single: true,
        liveness: false,
    };
    type Init<'a> = ();

    fn count(_init: &()) -> usize {
        1
    }

    fn wrap(obj: Object, _lock: Option<&RLock>) -> Result<Self> {
        // SAFETY: the layout is validated as this shape: exactly one
        // element of stride 4 inside the mapping, at a data offset that is
        // a multiple of 64 in a page-aligned mapping, so 4-aligned.
        let word = unsafe { obj.elem_ptr(0) }.cast::<RawEvent<AtomicU32>>();
        Ok(Event { seg: obj.seg, word })
    }

    fn segment(&self) -> &Segment {
        &self.seg
    }
}

crate::shared::shared_object! {
    impl[] Event: "event", "shmsync::Event";
    new() => (); " (clear)", "new()", "create(&name)";
}

impl Event {
    #[inline]
    fn raw(&self) -> &RawEvent<AtomicU32> {
        // SAFETY: `word` points into the mapping kept alive by `self.seg`,
        // is 4-aligned (`wrap`), and `RawEvent<AtomicU32>` is a
        // transparent `AtomicU32`: every access is atomic.
        unsafe { &*self.word }
    }

    /// Sets the flag and wakes every thread of every process waiting for
    /// it. Threads that call [`wait`](Self::wait) while it stays set return
    /// at once. Does nothing (and makes no system call) if it is already
    /// set.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let e = shmsync::Event::new()?;
    /// e.set();
    /// e.set(); // already set: nothing
    /// assert!(e.is_set());
    /// # Ok(()) }
    /// ```
    pub fn set(&self) {
        self.raw().set();
    }

    /// Clears the flag: later calls of [`wait`](Self::wait) block until the
    /// next [`set`](Self::set). (A thread that was already waiting when a
    /// `set` happened returns `true` even if `clear` came before it woke,
    /// as in Python.)
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let e = shmsync::Event::new()?;
    /// e.set();
    /// e.clear();
    /// assert!(!e.is_set());
    /// # Ok(()) }
    /// ```
    pub fn clear(&self) {
        self.raw().clear();
    }

    /// Whether the flag is set (one atomic load, no system call; a
    /// snapshot that another process may change at once).
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let e = shmsync::Event::new()?;
    /// assert!(!e.is_set());
    /// e.set();
    /// assert!(e.is_set());
    /// # Ok(()) }
    /// ```
    pub fn is_set(&self) -> bool {
        self.raw().is_set()
    }

    /// Blocks until the flag is set (returns at once if it is).
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let e = shmsync::Event::new()?;
    /// let e2 = e.clone();
    /// let setter = std::thread::spawn(move || e2.set());
    /// e.wait();
    /// setter.join().unwrap();
    /// # Ok(()) }
    /// ```
    pub fn wait(&self) {
        self.raw().wait(None);
    }

    /// Blocks until the flag is set or `timeout` has passed; `true` if it
    /// was set (Python's `wait(timeout)`). A timeout too large to add to
    /// the clock (such as `Duration::MAX`) waits forever.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// use std::time::Duration;
    /// let e = shmsync::Event::new()?;
    /// assert!(!e.wait_timeout(Duration::from_millis(10)));
    /// e.set();
    /// assert!(e.wait_timeout(Duration::ZERO));
    /// # Ok(()) }
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        match Until::after(timeout) {
            Some(mut t) => self.raw().wait(Some(&mut t)),
            None => self.raw().wait(None),
        }
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("name", &self.name())
            .field("set", &self.is_set())
            .finish()
    }
}
