#![allow(unsafe_code)] // the count word and the holder records in the validated mapping
//! [`Semaphore`] and [`BoundedSemaphore`]: Python's
//! `multiprocessing.Semaphore`/`BoundedSemaphore` with tokio's permit
//! shape, on one futex word and a table of holder records in a shared
//! page (`src/raw/semaphore.rs`).

use core::cell::Cell;
use core::fmt;
use core::marker::PhantomData;
use core::sync::atomic::Ordering::Relaxed;
use core::sync::atomic::{AtomicU32, AtomicU64};
use core::time::Duration;
use std::sync::Arc;
use std::time::Instant;

use crate::error::{Error, Result};
use crate::raw::semaphore::{Overflow, MAX_VALUE, REC_HELD_MAX, SLICE_FIRST, SLICE_MAX};
use crate::raw::{RawSemaphore, Records};
use crate::shared::SharedObject;
use crate::shm::object::{ElemDesc, Kind, LockMode, Object, Shape};
use crate::shm::segment::Segment;
use crate::sync::deadline::Until;
use crate::sync::RLock;
use crate::sys;

/// Word 0 of the data: the count (`src/raw/semaphore.rs`).
const COUNT: usize = 0;
/// Word 1: the bound (the bounded semaphore's initial value; the maximum
/// for a plain semaphore), read once when a handle is made.
const BOUND: usize = 1;
/// The first holder record: word 16, on a cache line of its own away from
/// the count (words 2–15 are reserved, zero).
const RECORDS: usize = 16;
/// How many holder records a semaphore has: threads (of all processes)
/// that hold permits through [`Permit`] guards at once and can have them
/// recovered if they die.
pub const HOLDER_CAPACITY: usize = 64;
/// The words of a semaphore's data.
const WORDS: usize = RECORDS + HOLDER_CAPACITY;

/// Identities of handles' mappings in this process, never reused (the
/// key of a thread's record of its holds).
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A thread's record in one semaphore mapping: which record word it owns
/// and how many permits it holds through guards (its own count: the page's
/// copy is only ever written, never believed).
#[derive(Clone, Copy)]
struct Mine {
    /// The mapping's identity (`Core::id`); 0: unused entry.
    id: u64,
    /// The TID that owns it (another in a forked child: then not ours).
    tid: u32,
    index: u32,
    held: u32,
}

const UNUSED: Mine = Mine {
    id: 0,
    tid: 0,
    index: 0,
    held: 0,
};

/// `Mine::index` of a thread that found every record taken: its permits
/// go unrecorded, and `Mine::held` counts down the acquires until it
/// tries to claim one again.
const NO_RECORD: u32 = u32::MAX;
/// Acquires without a record before a thread that found every record
/// taken scans them again.
const RETRY_CLAIM: u32 = 64;

/// Semaphore mappings a thread keeps records for at once; an entry whose
/// holds are 0 is reused for another mapping when all are taken (its
/// record in the page stays claimed, and is found again by `claim`).
const MINE_LEN: usize = 8;

thread_local! {
    /// This thread's records, one per semaphore mapping it acquired on
    /// (const-initialised, no destructor: one thread-local access).
    static MINE: [Cell<Mine>; MINE_LEN] = const { [const { Cell::new(UNUSED) }; MINE_LEN] };
}

/// The position of `me`'s entry for mapping `id` in `MINE`, trying `hint`
/// first.
#[inline]
fn find_mine(m: &[Cell<Mine>; MINE_LEN], id: u64, me: u32, hint: usize) -> Option<usize> {
    let hit = |e: Mine| e.id == id && e.tid == me;
    if m.get(hint).is_some_and(|c| hit(c.get())) {
        return Some(hint);
    }
    m.iter().position(|c| hit(c.get()))
}

/// What both semaphore kinds share: the mapping, where the words are, the
/// bound (private, read once).
#[derive(Clone)]
struct Core {
    seg: Arc<Segment>,
    /// Data word 0 of the mapping; `WORDS` words follow.
    base: *const AtomicU32,
    bound: u32,
    id: u64,
}

// SAFETY: `base` points at atomics in a shared mapping that `seg` keeps
// alive; no thread-affine state is held.
unsafe impl Send for Core {}
// SAFETY: as for Send: every access to the words is atomic.
unsafe impl Sync for Core {}

/// A thread that waited, probing the holder records for dead ones no
/// more often than every `interval` (doubling to `SLICE_MAX`).
struct Prober<'a> {
    core: &'a Core,
    last: Option<Instant>,
    interval: Duration,
}

impl Prober<'_> {
    fn probe(&mut self) -> u32 {
        let now = Instant::now();
        if let Some(last) = self.last {
            if now.saturating_duration_since(last) < self.interval {
                return 0;
            }
            self.interval = self.interval.saturating_mul(2).min(SLICE_MAX);
        }
        self.last = Some(now);
        self.core.recover()
    }
}

impl Core {
    const fn shape(kind: Kind) -> Shape {
        Shape {
            kind,
            elem: ElemDesc::NONE,
            strides: [4, 4],
            lock: LockMode::None,
            shares_lock: false,
            single: false,
            liveness: true,
        }
    }

    /// The words of a new semaphore (none for an invalid value: `wrap`
    /// then refuses it).
    fn count(value: u32) -> usize {
        if value <= MAX_VALUE {
            WORDS
        } else {
            0
        }
    }

    fn fill(obj: &Object, value: u32, bound: u32) {
        if obj.layout.count != WORDS {
            return;
        }
        // SAFETY: `count == WORDS > BOUND`: both elements lie inside the
        // mapping, 4-aligned (stride 4 from a 64-aligned data offset);
        // atomics only.
        unsafe {
            let w = |i| &*obj.elem_ptr(i).cast::<AtomicU32>();
            // Relaxed: published by the header's Release store of READY.
            w(COUNT).store(value, Relaxed);
            w(BOUND).store(bound, Relaxed);
        }
    }

    fn wrap(obj: Object, bounded: bool) -> Result<Core> {
        match obj.layout.count {
            0 => {
                return Err(Error::InvalidArgument(
                    "semaphore value above its maximum (MAX_VALUE)",
                ))
            }
            WORDS => {}
            _ => return Err(Error::Corrupt("semaphore size")),
        }
        // SAFETY: `count == WORDS` elements of stride 4 lie inside the
        // mapping (validated layout), from a data offset that is a
        // multiple of 64 in a page-aligned mapping, so 4-aligned.
        let base = unsafe { obj.elem_ptr(0) }.cast::<AtomicU32>();
        let bound = if bounded {
            // SAFETY: as above (BOUND < WORDS).
            let b = unsafe { &*base.add(BOUND) };
            // Relaxed: the header's Acquire load of READY in `open` (or
            // our own creation) ordered it; read once and kept.
            let b = b.load(Relaxed);
            if b > MAX_VALUE {
                return Err(Error::Corrupt("bounded semaphore's bound"));
            }
            b
        } else {
            MAX_VALUE
        };
        Ok(Core {
            seg: obj.seg,
            base,
            bound,
            // Relaxed: only uniqueness matters.
            id: NEXT_ID.fetch_add(1, Relaxed),
        })
    }

    #[inline]
    fn raw(&self) -> &RawSemaphore<AtomicU32> {
        // SAFETY: `base` points into the mapping kept alive by `self.seg`,
        // 4-aligned (`wrap`); `RawSemaphore<AtomicU32>` is a transparent
        // `AtomicU32`: every access is atomic.
        unsafe { &*self.base.add(COUNT).cast::<RawSemaphore<AtomicU32>>() }
    }

    #[inline]
    fn records(&self) -> Records<'_, AtomicU32> {
        // SAFETY: words RECORDS..WORDS lie inside the mapping (`wrap`),
        // kept alive by `self.seg`; a shared slice of atomics.
        Records::new(unsafe {
            core::slice::from_raw_parts(self.base.add(RECORDS), HOLDER_CAPACITY)
        })
    }

    /// Probes every record for a dead holder and returns their permits.
    #[cold]
    fn recover(&self) -> u32 {
        let seg = &self.seg;
        self.records().recover(self.raw(), self.bound, |tid| {
            seg.liveness.owner_dead(seg.fd(), tid)
        })
    }

    /// The calling thread `me`'s entry in `MINE` for this mapping,
    /// claiming a record if it has none; `None` if every record (or every
    /// entry of `MINE`) is taken.
    ///
    /// The pointer stays valid for the thread's whole life: `MINE` is a
    /// const-initialised thread-local without a destructor, so its storage
    /// is never torn down while the thread runs (not even by other
    /// thread-locals' destructors).
    #[inline]
    fn my_entry(&self, me: u32) -> Option<*const Cell<Mine>> {
        let base = MINE.with(|m| m.as_ptr());
        // SAFETY: `base` is this thread's `MINE` array (valid for the
        // thread's life, above); only this thread touches its cells.
        let m = unsafe { &*base.cast::<[Cell<Mine>; MINE_LEN]>() };
        match find_mine(m, self.id, me, 0) {
            Some(p) => Some(&m[p] as *const Cell<Mine>),
            None => self.claim_record(me),
        }
    }

    #[cold]
    #[inline(never)]
    fn claim_record(&self, me: u32) -> Option<*const Cell<Mine>> {
        let seg = &self.seg;
        // An entry to keep it in: an unused one, one of another thread (a
        // forked child's copy of its parent's), or one holding nothing.
        let pos = MINE.with(|m| {
            m.iter()
                .position(|c| c.get().id == 0 || c.get().tid != me)
                .or_else(|| m.iter().position(|c| c.get().held == 0))
        })?;
        // This thread's liveness byte is held before a record names it.
        seg.liveness.ensure(seg.fd(), me);
        let claimed = self
            .records()
            .claim(me, |tid| seg.liveness.owner_dead(seg.fd(), tid))
            .and_then(|i| u32::try_from(i).ok());
        // Every record taken: remember that for the next `RETRY_CLAIM`
        // acquires (their permits go unrecorded), rather than scanning
        // and probing the records at every one.
        let (index, held) = claimed.map_or((NO_RECORD, RETRY_CLAIM), |i| (i, 0));
        Some(MINE.with(|m| {
            m[pos].set(Mine {
                id: self.id,
                tid: me,
                index,
                held,
            });
            &m[pos] as *const Cell<Mine>
        }))
    }

    /// Counts one more (`up`) or one fewer permit in `me`'s entry and
    /// stores the record; `false` if the entry is no longer this
    /// mapping's or cannot count one more.
    ///
    /// # Safety
    /// - `entry` came from [`my_entry`](Self::my_entry) on this thread.
    #[inline]
    unsafe fn note(&self, me: u32, entry: *const Cell<Mine>, up: bool) -> bool {
        // SAFETY: this thread's `MINE`, valid for its life (`my_entry`),
        // per the caller; a `Cell` is only touched by its thread.
        let c = unsafe { &*entry };
        let mut e = c.get();
        if e.id != self.id || e.tid != me {
            return false;
        }
        if e.index == NO_RECORD {
            // No record: count down to the next claim (`held` counts the
            // acquires left, and only acquires come here: an unrecorded
            // permit has no entry).
            e.held = e.held.saturating_sub(1);
            c.set(if e.held == 0 { UNUSED } else { e });
            return false;
        }
        if up {
            if e.held >= REC_HELD_MAX {
                return false;
            }
            e.held += 1;
        } else {
            e.held = e.held.saturating_sub(1);
        }
        c.set(e);
        self.records().set(e.index as usize, me, e.held);
        true
    }

    /// Acquire through a guard: `wait` `None` for `try_acquire`,
    /// `Some(None)` to wait forever, `Some(Some(deadline))`.
    ///
    /// Always inlined, as the public acquires that call it: the `Permit`
    /// (several words) then stays in the caller's registers; returned from
    /// a call, it travels through memory, and a caller reading it back
    /// whole stalls on store forwarding (as `src/sync/lock.rs` found for
    /// the lock's guards).
    #[inline(always)]
    fn acquire(&self, wait: Option<Option<Until>>) -> Option<Permit<'_>> {
        let me = sys::thread::tid().get();
        // The record first (claimed once per thread), so the window
        // between the count and the record is a single store.
        let entry = self.my_entry(me);
        let recovered = if self.raw().try_acquire() {
            0
        } else {
            self.acquire_slow(wait)?
        };
        // SAFETY: from `my_entry`, on this thread.
        let entry = entry.filter(|&e| unsafe { self.note(me, e, true) });
        Some(Permit {
            core: self,
            tid: me,
            entry,
            recovered: recovered > 0,
            _not_send: PhantomData,
        })
    }

    /// Takes a permit that nobody owns (no record): `Some(recovered)`, or
    /// `None` if `wait` gave up.
    #[inline(always)]
    fn take(&self, wait: Option<Option<Until>>) -> Option<bool> {
        if self.raw().try_acquire() {
            return Some(false);
        }
        self.acquire_slow(wait).map(|n| n > 0)
    }

    /// The contended acquire: `Some(recovered)` once a permit is taken.
    #[cold]
    #[inline(never)]
    fn acquire_slow(&self, wait: Option<Option<Until>>) -> Option<u32> {
        let mut prober = Prober {
            core: self,
            last: None,
            interval: SLICE_FIRST,
        };
        let mut hook = || prober.probe();
        match wait {
            // try_acquire: one probe of the holders, one more try.
            None => {
                let n = self.recover();
                self.raw().try_acquire().then_some(n)
            }
            Some(None) => self.raw().acquire(None, &mut hook).ok(),
            Some(Some(mut until)) => self.raw().acquire(Some(&mut until), &mut hook).ok(),
        }
    }

    #[inline]
    fn release_n(&self, n: u32) -> Result<()> {
        if n == 0 {
            return Err(Error::InvalidArgument("release of zero permits"));
        }
        match self.raw().release(n, self.bound) {
            Ok(()) => Ok(()),
            Err(Overflow) => Err(too_many()),
        }
    }
}

/// The error of a release past the bound.
#[cold]
fn too_many() -> Error {
    Error::InvalidArgument("semaphore released too many times")
}

/// One permit of a [`Semaphore`] or [`BoundedSemaphore`], held by the
/// current thread; returned to the semaphore when dropped.
///
/// The permit is recorded in the semaphore's page under the thread's TID,
/// so that if the thread or its process dies holding it, the permit comes
/// back: the next acquirer that finds no permit probes the records and
/// returns the dead holders' permits (its own permit then reports
/// [`recovered`](Permit::recovered)). [`forget`](Permit::forget) hands the
/// permit over instead (producer/consumer: another process calls
/// `release`).
///
/// The guard is `!Send`: the record belongs to the thread whose TID it
/// names. A copy of a guard in a child forked while it was held does
/// nothing when dropped there (the permit is the parent's). Dropping a
/// guard whose return would take a bounded semaphore past its initial
/// value (after an extra `release` by someone else) discards the permit.
/// `mem::forget` of a guard keeps the permit recorded: it comes back when
/// the thread ends.
#[must_use = "if unused the permit is returned at once"]
pub struct Permit<'a> {
    core: &'a Core,
    tid: u32,
    /// The thread's entry (`MINE`) for the record that counts this
    /// permit; `None`: unrecorded (past [`HOLDER_CAPACITY`]), not
    /// recoverable.
    entry: Option<*const Cell<Mine>>,
    recovered: bool,
    _not_send: PhantomData<*const ()>,
}

impl Permit<'_> {
    /// Whether the call that acquired this permit first returned permits
    /// of dead holders to the semaphore (a holder killed with a permit, or
    /// a thread that ended holding one): the data the dead holder was
    /// working on may need repair.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let s = shmsync::Semaphore::new(1)?;
    /// assert!(!s.acquire().recovered());
    /// # Ok(()) }
    /// ```
    pub fn recovered(&self) -> bool {
        self.recovered
    }

    /// Whether the permit is recorded, so that it comes back if its holder
    /// dies. `false` only when all [`HOLDER_CAPACITY`] records of the
    /// semaphore were owned by other live threads when the thread last
    /// looked (it looks again after 64 unrecorded acquires), when the
    /// thread holds permits of 8 other semaphores at once, or holds 1023
    /// guards of this one: the permit then works as any other but dies
    /// with its holder.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let s = shmsync::Semaphore::new(1)?;
    /// assert!(s.acquire().is_recorded());
    /// # Ok(()) }
    /// ```
    pub fn is_recorded(&self) -> bool {
        self.entry.is_some()
    }

    /// Keeps the permit taken: it is no longer owned by this thread (nor
    /// recovered if this thread dies) and comes back only through a
    /// `release` (by any process). Python's `acquire()` without a
    /// `release`, for the producer/consumer pattern.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let s = shmsync::Semaphore::new(1)?;
    /// s.acquire().forget();
    /// assert_eq!(s.value(), 0);
    /// s.release()?; // e.g. by another process
    /// assert_eq!(s.value(), 1);
    /// # Ok(()) }
    /// ```
    #[inline]
    pub fn forget(self) {
        let me = sys::thread::tid().get();
        if let (Some(e), true) = (self.entry, me == self.tid) {
            // SAFETY: from `my_entry` on this thread (the guard is
            // `!Send`, and `me == tid`).
            unsafe { self.core.note(me, e, false) };
        }
        core::mem::forget(self);
    }
}

impl Drop for Permit<'_> {
    #[inline]
    fn drop(&mut self) {
        let me = sys::thread::tid().get();
        if me != self.tid {
            // A copy in a forked child: the parent's permit.
            return;
        }
        // The record first: it never counts a permit that the count has
        // been given back (src/raw/semaphore.rs, "A holder killed at any
        // instruction").
        if let Some(e) = self.entry {
            // SAFETY: from `my_entry` on this thread (the guard is
            // `!Send`, and `me == tid`: not a forked child's copy).
            unsafe { self.core.note(me, e, false) };
        }
        let _ = self.core.raw().release(1, self.core.bound);
    }
}

impl fmt::Debug for Permit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("recorded", &self.is_recorded())
            .field("recovered", &self.recovered)
            .finish()
    }
}

macro_rules! semaphore_type {
    (
        $(#[$doc:meta])*
        $name:ident, $kind:expr, $bounded:expr, $what:literal, $path:literal, $bound_doc:literal
    ) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name {
            core: Core,
        }

        impl SharedObject for $name {
            const SHAPE: Shape = Core::shape($kind);
            type Init<'a> = u32;

            fn count(value: &u32) -> usize {
                Core::count(*value)
            }

            fn fill(obj: &Object, value: u32) {
                let bound = if $bounded { value } else { MAX_VALUE };
                Core::fill(obj, value, bound);
            }

            fn wrap(obj: Object, _lock: Option<&RLock>) -> Result<Self> {
                Ok($name {
                    core: Core::wrap(obj, $bounded)?,
                })
            }

            fn segment(&self) -> &Segment {
                &self.core.seg
            }
        }

        crate::shared::shared_object! {
            impl[] $name: $what, $path;
            new(value: u32) => value; " holding `value` permits (at most [`MAX_VALUE`](Self::MAX_VALUE); more is [`Error::InvalidArgument`](crate::Error::InvalidArgument))", "new(2)", "create(&name, 2)";
        }

        impl $name {
            /// The largest value a semaphore can hold (glibc's
            /// `SEM_VALUE_MAX`, 2³¹ − 1).
            pub const MAX_VALUE: u32 = MAX_VALUE;

            /// Takes a permit, blocking while none is available (Python's
            /// `acquire()`).
            ///
            /// While it waits it sleeps in slices (10 ms doubling to
            /// 50 ms) and, when it still finds no permit, probes the
            /// holder records: permits of dead holders are returned, and
            /// the permit it then takes reports
            /// [`recovered`](Permit::recovered). Uncontended, it is one
            /// atomic read-modify-write on the count and one store of the
            /// thread's record, with no system call.
            ///
            /// ```
            /// # fn main() -> Result<(), shmsync::Error> {
            #[doc = concat!("let s = ", $path, "::new(1)?;")]
            /// {
            ///     let _p = s.acquire();
            ///     assert_eq!(s.value(), 0);
            /// } // returned
            /// assert_eq!(s.value(), 1);
            /// # Ok(()) }
            /// ```
            #[inline(always)]
            pub fn acquire(&self) -> Permit<'_> {
                match self.core.acquire(Some(None)) {
                    Some(p) => p,
                    None => unreachable!("an untimed acquire does not give up"),
                }
            }

            /// Takes a permit if one is available now (Python's
            /// `acquire(block=False)`); `None` otherwise.
            ///
            /// When none is available it probes the holder records once
            /// (a few system calls per recorded holder) and takes a
            /// recovered permit if there is one.
            ///
            /// ```
            /// # fn main() -> Result<(), shmsync::Error> {
            #[doc = concat!("let s = ", $path, "::new(1)?;")]
            /// let p = s.try_acquire().unwrap();
            /// assert!(s.try_acquire().is_none());
            /// drop(p);
            /// assert!(s.try_acquire().is_some());
            /// # Ok(()) }
            /// ```
            #[inline(always)]
            pub fn try_acquire(&self) -> Option<Permit<'_>> {
                self.core.acquire(None)
            }

            /// Takes a permit, blocking at most `timeout` (Python's
            /// `acquire(timeout=...)`); `None` if none became available in
            /// time. A timeout too large for the clock waits forever.
            ///
            /// ```
            /// # fn main() -> Result<(), shmsync::Error> {
            /// use std::time::Duration;
            #[doc = concat!("let s = ", $path, "::new(0)?;")]
            /// assert!(s.acquire_timeout(Duration::from_millis(5)).is_none());
            /// # Ok(()) }
            /// ```
            #[inline(always)]
            pub fn acquire_timeout(&self, timeout: Duration) -> Option<Permit<'_>> {
                self.core.acquire(Some(Until::after(timeout)))
            }

            /// Takes a permit for good, without a guard: what
            /// `acquire().forget()` does, minus the holder record, so an
            /// uncontended `take` is one atomic read-modify-write (Python's
            /// `acquire()` in the producer/consumer pattern, where another
            /// process calls [`release`](Self::release)). Blocks as
            /// [`acquire`](Self::acquire) does, and like it returns the
            /// permits of dead holders; `true` if the permit taken was one.
            ///
            /// ```
            /// # fn main() -> Result<(), shmsync::Error> {
            #[doc = concat!("let s = ", $path, "::new(1)?;")]
            /// s.take();
            /// assert_eq!(s.value(), 0);
            /// s.release()?; // e.g. by another process
            /// # Ok(()) }
            /// ```
            #[inline(always)]
            pub fn take(&self) -> bool {
                self.core.take(Some(None)).unwrap_or(false)
            }

            /// [`take`](Self::take) if a permit is available now (or a dead
            /// holder's can be recovered): `Some(recovered)`, else `None`.
            ///
            /// ```
            /// # fn main() -> Result<(), shmsync::Error> {
            #[doc = concat!("let s = ", $path, "::new(1)?;")]
            /// assert_eq!(s.try_take(), Some(false));
            /// assert_eq!(s.try_take(), None);
            /// # Ok(()) }
            /// ```
            #[inline(always)]
            pub fn try_take(&self) -> Option<bool> {
                self.core.take(None)
            }

            /// [`take`](Self::take), blocking at most `timeout`:
            /// `Some(recovered)`, or `None` if no permit came in time.
            ///
            /// ```
            /// # fn main() -> Result<(), shmsync::Error> {
            /// use std::time::Duration;
            #[doc = concat!("let s = ", $path, "::new(0)?;")]
            /// assert_eq!(s.take_timeout(Duration::from_millis(5)), None);
            /// # Ok(()) }
            /// ```
            #[inline(always)]
            pub fn take_timeout(&self, timeout: Duration) -> Option<bool> {
                self.core.take(Some(Until::after(timeout)))
            }

            /// Returns one permit (Python's `release()`), waking a waiter
            /// if one sleeps; no system call otherwise.
            ///
            /// # Errors
            #[doc = concat!("[`Error::InvalidArgument`](crate::Error::InvalidArgument) (\"semaphore released too many times\") if the value would exceed ", $bound_doc)]
            /// (the value is then unchanged).
            ///
            /// ```
            /// # fn main() -> Result<(), shmsync::Error> {
            #[doc = concat!("let s = ", $path, "::new(1)?;")]
            /// s.acquire().forget();
            /// s.release()?;
            /// assert_eq!(s.value(), 1);
            /// # Ok(()) }
            /// ```
            #[inline]
            pub fn release(&self) -> Result<()> {
                self.core.release_n(1)
            }

            /// Returns `n` permits at once (Python's `release(n)`), waking
            /// that many waiters (all, when `n > 1`) if any sleep.
            ///
            /// # Errors
            /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) if
            #[doc = concat!("`n` is 0, or if the value would exceed ", $bound_doc, " (the value is then unchanged).")]
            ///
            /// ```
            /// # fn main() -> Result<(), shmsync::Error> {
            #[doc = concat!("let s = ", $path, "::new(3)?;")]
            /// let (a, b) = (s.acquire(), s.acquire());
            /// a.forget();
            /// b.forget();
            /// s.release_n(2)?;
            /// assert_eq!(s.value(), 3);
            /// assert!(s.release_n(0).is_err());
            /// # Ok(()) }
            /// ```
            pub fn release_n(&self, n: u32) -> Result<()> {
                self.core.release_n(n)
            }

            /// The permits available now (Python's `get_value()`): one
            /// atomic load, a snapshot that another process may change at
            /// once.
            ///
            /// ```
            /// # fn main() -> Result<(), shmsync::Error> {
            #[doc = concat!("let s = ", $path, "::new(2)?;")]
            /// assert_eq!(s.value(), 2);
            /// # Ok(()) }
            /// ```
            pub fn value(&self) -> u32 {
                self.core.raw().value()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("name", &self.name())
                    .field("value", &self.value())
                    .finish()
            }
        }
    };
}

semaphore_type! {
    /// A counting semaphore that lives in shared memory: Python's
    /// `multiprocessing.Semaphore`, with tokio's permit shape.
    ///
    /// The count is one futex word in the mapped page (`src/raw/semaphore.rs`);
    /// an uncontended acquire or release is one atomic read-modify-write
    /// and no system call, and a release wakes only when someone sleeps.
    /// [`acquire`](Self::acquire) returns a [`Permit`] that gives the
    /// permit back when dropped; [`Permit::forget`] keeps it taken, for
    /// the producer/consumer pattern where another process calls
    /// [`release`](Self::release). The value counts up to
    /// [`MAX_VALUE`](Self::MAX_VALUE); a release past it is an error.
    ///
    /// **Permits of the dead come back.** A permit held through a
    /// [`Permit`] is recorded in the page under its thread's TID (up to
    /// [`HOLDER_CAPACITY`] threads at once; [`Permit::is_recorded`]); if
    /// the thread or its process dies holding it, a thread that finds no
    /// permit probes the records (through the same per-thread liveness
    /// bytes as the locks: `docs/ROBUST.md`) and returns the permit, and
    /// the permit it then takes reports [`Permit::recovered`]. A holder
    /// killed in the few instructions between the count and its record
    /// loses that one permit for good (`docs/ARCHITECTURE.md`, "The
    /// semaphore"); a permit is never counted twice. Waiters sleep in
    /// slices (10 ms doubling to 50 ms), so a releaser killed before its
    /// wake delays them by at most 50 ms.
    ///
    /// Handles are cheap to clone and are `Send + Sync`. What a thread
    /// wrote before releasing a permit is visible to the thread that takes
    /// it (`Release`/`Acquire` on the word).
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmsync::Semaphore;
    /// let slots = Semaphore::new(2)?; // or `create`d by name, or inherited by `fork`
    /// let a = slots.acquire();
    /// let b = slots.acquire();
    /// assert!(slots.try_acquire().is_none());
    /// drop(a);
    /// assert_eq!(slots.value(), 1);
    /// b.forget(); // stays taken ...
    /// slots.release()?; // ... until someone releases it
    /// assert_eq!(slots.value(), 2);
    /// # Ok(()) }
    /// ```
    Semaphore, Kind::Semaphore, false, "semaphore", "shmsync::Semaphore",
    "[`MAX_VALUE`](Self::MAX_VALUE)"
}

semaphore_type! {
    /// A semaphore whose value never exceeds its initial value: Python's
    /// `multiprocessing.BoundedSemaphore`, where a `release` beyond the
    /// initial value raises `ValueError`; here it is an
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) and the
    /// value is unchanged, never a silent overflow.
    ///
    /// Everything else is as for [`Semaphore`]: permits, recovery of dead
    /// holders' permits, timeouts.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmsync::BoundedSemaphore;
    /// let s = BoundedSemaphore::new(1)?;
    /// assert!(s.release().is_err()); // already at its initial value
    /// s.acquire().forget();
    /// s.release()?;
    /// assert_eq!(s.value(), 1);
    /// # Ok(()) }
    /// ```
    BoundedSemaphore, Kind::BoundedSemaphore, true, "bounded semaphore", "shmsync::BoundedSemaphore",
    "the initial value (Python's `ValueError`)"
}
