#![allow(unsafe_code)] // the barrier's word and records in the validated mapping
//! [`Barrier`]: Python's `multiprocessing.Barrier`, one futex word and
//! the parties' records in a shared page.

use core::fmt;
use core::sync::atomic::AtomicU32;
use core::time::Duration;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::raw::barrier::{Broken, RawBarrier, MAX_PARTIES, SPIN_START};
use crate::raw::{Deadline, Liveness};
use crate::shared::SharedObject;
use crate::shm::object::{ElemDesc, Kind, LockMode, Object, Shape};
use crate::shm::segment::Segment;
use crate::sync::deadline::{Stoppable, Until};
use crate::sync::RLock;
use crate::sys;

/// A barrier for a fixed number of parties (threads of any processes
/// sharing it), round after round: Python's `multiprocessing.Barrier`
/// (`wait(timeout)`, `abort`, `reset`, `parties`, `n_waiting`, `broken`),
/// with std's [`BarrierWaitResult`] shape, and no lock inside.
///
/// Each call of [`wait`](Self::wait) blocks until `parties` calls have
/// been made in the current round, then all of them return together and
/// the next round begins. Rounds are counted (a generation in the word),
/// so a fast party that calls `wait` again at once is in the next round
/// and cannot pass it before the others arrive. What a party wrote before
/// its `wait` is visible to every party after the round's `wait` returns
/// `Ok`.
///
/// Each party gets an index, distinct in its round: the order of arrival,
/// `0` for the first and `parties − 1` for the last, which completes the
/// round without sleeping and is the **leader**
/// ([`BarrierWaitResult::is_leader`]).
///
/// **Broken** ([`BarrierError::Broken`]), as in Python: after
/// [`abort`](Self::abort), after a [`wait_timeout`](Self::wait_timeout)
/// that timed out (the timed-out waiter and every other waiter of the
/// round), and for the waiters of a round [`reset`](Self::reset) ends. A
/// broken barrier breaks every `wait` until `reset`.
///
/// **A party that dies breaks the barrier** instead of leaving the others
/// waiting forever (Python's barrier hangs): every arrival records its
/// thread in the page before it is counted, and waiters probe the recorded
/// parties (their per-thread liveness locks on the segment file, the
/// fallback mechanism of the lock) each time they wake, sleeping at most
/// 50 ms at a time (10 ms doubling to 50 ms). A party killed anywhere in
/// `wait`, or after a round it passed and before its next arrival, is
/// found dead within about 50 ms of a waiter's slice and breaks the
/// round. The cost: while waiting, each waiter wakes at most every 50 ms
/// and asks the kernel about each recorded party (up to `2 × parties`
/// records, a few system calls each); the first arrival of a thread on a
/// barrier takes its liveness lock (`fcntl`), later ones make no system
/// call beyond the sleeps and the round's wake. Before sleeping, a waiter
/// spins for a while that adapts to how long it last had to wait (longer
/// while the others arrive within it, none while they do not).
///
/// What counts as a party for this check: a thread that took part in the
/// last round (completed, not reset) is expected in the current one, so a
/// thread that *ends* while the others wait for it breaks the round, as a
/// killed one does. A thread that is done with a barrier leaves it by
/// dropping its handle (the drop removes the calling thread's records); a
/// process that ends normally drops its handles. So give each thread its
/// own clone: threads that only *borrow* a handle (scoped threads) and end
/// after a round leave records of dead threads, and the next round breaks
/// if the barrier is reused by other threads, unless it is
/// [`reset`](Self::reset) first (a reset round's parties are not
/// expected). A process killed before its first arrival is waited for,
/// like any party that does not come.
///
/// Handles are cheap to clone and are `Send + Sync`.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let b = shmsync::Barrier::new(2)?;
/// let b2 = b.clone(); // or inherited by a forked child, or `open`ed by name
/// let t = std::thread::spawn(move || b2.wait().map(|r| r.is_leader()));
/// let me = b.wait()?.is_leader();
/// let other = t.join().unwrap()?;
/// assert!(me != other, "exactly one leader");
/// # Ok(()) }
/// ```
///
/// # Limits
///
/// - At most [`Barrier::MAX_PARTIES`] parties.
/// - With more threads than parties (Python allows it: the extra threads
///   wait for the next round), a waiter that sleeps through more than four
///   rounds returns `Ok`, whatever became of its own round, and a record
///   of such a thread may be lost (its death then goes unnoticed).
/// - A party's liveness is judged by its thread id: a dead party whose TID
///   was reused by a new thread that took its liveness lock on the same
///   file looks alive until that thread ends.
#[derive(Clone)]
pub struct Barrier {
    seg: Arc<Segment>,
    word: *const AtomicU32,
    records: *const AtomicU32,
    parties: u32,
    /// The adaptive spinning budget of the handle and its clones
    /// (process-private: `RawBarrier::wait_spinning`).
    spin: Arc<AtomicU32>,
}

// SAFETY: `word` and `records` point at atomics in a shared mapping that
// `seg` keeps alive; no thread-affine state is held.
unsafe impl Send for Barrier {}
// SAFETY: as for Send: every access to the page is atomic.
unsafe impl Sync for Barrier {}

/// What a successful [`Barrier::wait`] returns: the caller's index in the
/// round and whether it is the leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarrierWaitResult {
    index: usize,
    leader: bool,
}

impl BarrierWaitResult {
    /// The caller's index in its round: `0` for the first to arrive, up to
    /// `parties − 1` for the last (Python's return value of `wait`).
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let b = shmsync::Barrier::new(1)?;
    /// assert_eq!(b.wait()?.index(), 0);
    /// # Ok(()) }
    /// ```
    pub fn index(&self) -> usize {
        self.index
    }

    /// Whether the caller is the round's leader: the last party to arrive
    /// (index `parties − 1`), exactly one per round.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let b = shmsync::Barrier::new(1)?;
    /// assert!(b.wait()?.is_leader());
    /// # Ok(()) }
    /// ```
    pub fn is_leader(&self) -> bool {
        self.leader
    }
}

/// Why a [`Barrier::wait`] failed (Python's `BrokenBarrierError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BarrierError {
    /// The barrier is broken: [`Barrier::abort`], a
    /// [`Barrier::wait_timeout`] that timed out, a party that died, or a
    /// [`Barrier::reset`] while the caller waited. It stays broken until
    /// `reset`.
    Broken,
}

impl fmt::Display for BarrierError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BarrierError::Broken => f.write_str("the barrier is broken"),
        }
    }
}

impl std::error::Error for BarrierError {}

/// The party count of a new barrier, checked.
fn checked_parties(parties: usize) -> Result<u32> {
    u32::try_from(parties)
        .ok()
        .filter(|p| (1..=MAX_PARTIES).contains(p))
        .ok_or(Error::InvalidArgument(
            "a barrier needs 1 to Barrier::MAX_PARTIES parties",
        ))
}

/// The waiters' liveness probe of the recorded parties.
struct Parties<'a>(&'a Segment);

impl Liveness for Parties<'_> {
    fn probe_interval(&mut self, _word: u32) -> Option<Duration> {
        // Unused: the barrier sleeps in slices of its own.
        None
    }

    fn owner_is_dead(&mut self, tid: u32) -> bool {
        self.0.liveness.owner_dead(self.0.fd(), tid)
    }
}

impl SharedObject for Barrier {
    const SHAPE: Shape = Shape {
        kind: Kind::Barrier,
        elem: ElemDesc::NONE,
        strides: [4, 4],
        lock: LockMode::None,
        shares_lock: false,
        single: false,
        liveness: true,
    };
    type Init<'a> = u32;

    fn count(parties: &u32) -> usize {
        1 + 2 * *parties as usize
    }

    fn wrap(obj: Object, _lock: Option<&RLock>) -> Result<Self> {
        // The validated count (never read from the page again): one word
        // and two banks of records.
        let n = obj.layout.count;
        let parties = n.saturating_sub(1) / 2;
        if n % 2 == 0 || !(1..=MAX_PARTIES as usize).contains(&parties) {
            return Err(Error::Corrupt("a barrier's record count"));
        }
        // SAFETY: the layout is validated: `n` elements of stride 4 inside
        // the mapping (1 word, then 2 × parties records), at a data offset
        // that is a multiple of 64 in a page-aligned mapping, so 4-aligned.
        let (word, records) = unsafe { (obj.elem_ptr(0), obj.elem_ptr(1)) };
        Ok(Barrier {
            seg: obj.seg,
            word: word.cast(),
            records: records.cast(),
            parties: parties as u32,
            spin: Arc::new(AtomicU32::new(SPIN_START)),
        })
    }

    fn segment(&self) -> &Segment {
        &self.seg
    }
}

crate::shared::shared_object! {
    impl[] Barrier: "barrier", "shmsync::Barrier";
    new(parties: usize) => checked_parties(parties)?;
        " for `parties` parties (1 to [`Barrier::MAX_PARTIES`]; otherwise \
         [`Error::InvalidArgument`](crate::Error::InvalidArgument))",
        "new(2)", "create(&name, 2)";
}

impl Barrier {
    /// The most parties a barrier can have: 4095.
    pub const MAX_PARTIES: usize = MAX_PARTIES as usize;

    #[inline]
    fn raw(&self) -> RawBarrier<'_, AtomicU32> {
        // SAFETY: `word` and `records` point into the mapping kept alive by
        // `self.seg`, 4-aligned, `1 + 2 × parties` consecutive u32 elements
        // (`wrap`); they are accessed only as atomics.
        let (word, records) = unsafe {
            (
                &*self.word,
                core::slice::from_raw_parts(self.records, 2 * self.parties as usize),
            )
        };
        match RawBarrier::new(word, records) {
            Some(b) => b,
            // `wrap` checked the party count.
            None => unreachable!("a validated party count"),
        }
    }

    fn wait_with(
        &self,
        deadline: Option<&mut dyn Deadline>,
    ) -> core::result::Result<BarrierWaitResult, BarrierError> {
        let me = sys::thread::tid();
        // The liveness byte is held before the record names this thread.
        self.seg.liveness.ensure(self.seg.fd(), me.get());
        let mut probe = Parties(&self.seg);
        match self
            .raw()
            .wait_spinning(me, deadline, Some(&mut probe), Some(&self.spin))
        {
            Ok(i) => Ok(BarrierWaitResult {
                index: i as usize,
                leader: i + 1 == self.parties,
            }),
            Err(Broken) => Err(BarrierError::Broken),
        }
    }

    /// Waits until all parties have called `wait` in this round (returns
    /// at once for the last one).
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let b = shmsync::Barrier::new(3)?;
    /// let ts: Vec<_> = (0..2)
    ///     .map(|_| {
    ///         let b = b.clone();
    ///         std::thread::spawn(move || b.wait().map(|r| r.index()))
    ///     })
    ///     .collect();
    /// let mut idx = vec![b.wait()?.index()];
    /// for t in ts {
    ///     idx.push(t.join().unwrap()?);
    /// }
    /// idx.sort();
    /// assert_eq!(idx, [0, 1, 2]);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`BarrierError::Broken`] if the barrier is broken or gets broken
    /// while the caller waits (see [`Barrier`]), or is reset meanwhile.
    pub fn wait(&self) -> core::result::Result<BarrierWaitResult, BarrierError> {
        self.wait_with(None)
    }

    /// As [`wait`](Self::wait), at most `timeout`: a timeout **breaks the
    /// barrier** (Python's `wait(timeout)`): the caller and every other
    /// waiter of the round get [`BarrierError::Broken`]. A timeout too
    /// large to add to the clock (such as `Duration::MAX`) waits forever.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// use std::time::Duration;
    /// let b = shmsync::Barrier::new(2)?;
    /// assert!(b.wait_timeout(Duration::from_millis(10)).is_err());
    /// assert!(b.is_broken());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`BarrierError::Broken`] as for [`wait`](Self::wait), and when the
    /// timeout expires first.
    pub fn wait_timeout(
        &self,
        timeout: Duration,
    ) -> core::result::Result<BarrierWaitResult, BarrierError> {
        match Until::after(timeout) {
            Some(mut t) => self.wait_with(Some(&mut t)),
            None => self.wait_with(None),
        }
    }

    /// [`wait_timeout`](Self::wait_timeout) (`None`: without timeout)
    /// that something else can cut short: `stop` is called before each
    /// sleep (at least every 50 ms while the caller waits, never while it
    /// spins), and once it returns `true` the wait ends as an expired
    /// timeout does: it **breaks the barrier** (as an exception in a
    /// waiting Python thread does). The Python binding checks for Ctrl-C
    /// there.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let b = shmsync::Barrier::new(2)?;
    /// let mut polls = 0;
    /// let r = b.wait_timeout_unless(None, || {
    ///     polls += 1;
    ///     polls == 2
    /// });
    /// assert!(r.is_err());
    /// assert!(b.is_broken());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As for [`wait_timeout`](Self::wait_timeout), and when `stop`
    /// returns `true` first.
    pub fn wait_timeout_unless<F>(
        &self,
        timeout: Option<Duration>,
        stop: F,
    ) -> core::result::Result<BarrierWaitResult, BarrierError>
    where
        F: FnMut() -> bool,
    {
        let mut d = Stoppable {
            until: timeout.and_then(Until::after),
            stop,
        };
        self.wait_with(Some(&mut d))
    }

    /// Breaks the barrier (Python's `abort`): the current waiters and
    /// every later `wait` get [`BarrierError::Broken`] until
    /// [`reset`](Self::reset).
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let b = shmsync::Barrier::new(2)?;
    /// b.abort();
    /// assert!(b.is_broken());
    /// assert!(b.wait().is_err());
    /// # Ok(()) }
    /// ```
    pub fn abort(&self) {
        self.raw().abort();
    }

    /// Returns the barrier to its empty, unbroken state (Python's
    /// `reset`): the threads waiting in the current round get
    /// [`BarrierError::Broken`].
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let b = shmsync::Barrier::new(1)?;
    /// b.abort();
    /// b.reset();
    /// assert!(!b.is_broken());
    /// assert!(b.wait().is_ok());
    /// # Ok(()) }
    /// ```
    pub fn reset(&self) {
        self.raw().reset();
    }

    /// The number of parties.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// assert_eq!(shmsync::Barrier::new(4)?.parties(), 4);
    /// # Ok(()) }
    /// ```
    pub fn parties(&self) -> usize {
        self.parties as usize
    }

    /// The number of parties waiting in the current round (0 while it is
    /// broken): a snapshot that other processes may change at once.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// assert_eq!(shmsync::Barrier::new(2)?.n_waiting(), 0);
    /// # Ok(()) }
    /// ```
    pub fn n_waiting(&self) -> usize {
        self.raw().n_waiting() as usize
    }

    /// Whether the barrier is broken (Python's `broken`).
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let b = shmsync::Barrier::new(2)?;
    /// assert!(!b.is_broken());
    /// b.abort();
    /// assert!(b.is_broken());
    /// # Ok(()) }
    /// ```
    pub fn is_broken(&self) -> bool {
        self.raw().is_broken()
    }
}

impl Drop for Barrier {
    /// The dropping thread leaves the barrier: its records are removed, so
    /// that its end does not break the next round.
    fn drop(&mut self) {
        self.raw().withdraw(sys::thread::tid());
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barrier")
            .field("name", &self.name())
            .field("parties", &self.parties)
            .field("n_waiting", &self.n_waiting())
            .field("broken", &self.is_broken())
            .finish()
    }
}
