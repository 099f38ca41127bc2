#![allow(unsafe_code)] // the condition's words in the validated mapping
//! [`Condition`]: Python's `multiprocessing.Condition`, in std's `Condvar`
//! shape, over a shmsync [`Lock`] or [`RLock`].

use core::fmt;
use core::sync::atomic::AtomicU32;
use core::sync::atomic::Ordering::Relaxed;
use core::time::Duration;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use crate::error::Result;
use crate::raw::{Deadline, FutexWord, RawCondvar};
use crate::shared::SharedObject;
use crate::shm::object::{ElemDesc, Kind, LockMode, Object, Shape, Spec};
use crate::shm::segment::Segment;
use crate::sync::deadline::{Stoppable, Until};
use crate::sync::lock::Suspended;
use crate::sync::{HeldLock, Lock, LockError, LockGuard, RLock, RLockGuard};

#[allow(missing_debug_implementations)] // never shown: sealed plumbing
mod private {
    use crate::shm::object::{LockRef, Object};
    use crate::sync::{HeldLock, LockError};

    /// A hold of a lock, in the sealed trait's signatures.
    pub struct Hold<'a>(pub(crate) HeldLock<'a>);
    /// A validated segment, in the sealed trait's signatures.
    pub struct Obj<'a>(pub(crate) &'a Object);
    /// A lock as another object records it.
    pub struct Ref(pub(crate) LockRef);

    /// Seals [`super::ConditionLock`]: implemented by [`crate::Lock`] and
    /// [`crate::RLock`] only, and carries what a condition needs of its
    /// lock.
    pub trait Sealed: Sized + Clone {
        /// The guard of a hold.
        type Guard<'a>;
        /// The element type code of a condition over this kind of lock
        /// (`open` tells a `Condition<Lock>` from a `Condition<RLock>`).
        const CODE: u8;
        /// The guard's hold.
        fn into_hold<'a>(g: Self::Guard<'a>) -> Hold<'a>;
        /// A guard of a hold.
        fn from_hold<'a>(h: Hold<'a>) -> Self::Guard<'a>;
        /// The lock of a validated condition: its own slot, the lock
        /// object it records, or `given` (checked).
        fn protecting(obj: Obj<'_>, given: Option<&Self>) -> crate::Result<Self>;
        /// This lock as a condition records it.
        fn lock_ref(&self, named: bool) -> crate::Result<Ref>;
        /// Locks it.
        fn acquire(&self) -> Result<Self::Guard<'_>, LockError<Self::Guard<'_>>>;
        /// Whether the calling thread holds it (its own records).
        fn held_here(&self) -> bool;
    }
}

/// The locks a [`Condition`] can use: [`Lock`] and [`RLock`] (sealed).
/// Their guards ([`LockGuard`], [`RLockGuard`]) are what the condition's
/// `wait` family takes and gives back.
pub trait ConditionLock: private::Sealed {}

macro_rules! condition_lock {
    ($l:ident, $g:ident, $code:literal) => {
        impl private::Sealed for $l {
            type Guard<'a> = $g<'a>;
            const CODE: u8 = $code;
            fn into_hold<'a>(g: Self::Guard<'a>) -> private::Hold<'a> {
                private::Hold(g.into_held())
            }
            fn from_hold<'a>(h: private::Hold<'a>) -> Self::Guard<'a> {
                $g::from_held(h.0)
            }
            fn protecting(obj: private::Obj<'_>, given: Option<&Self>) -> Result<Self> {
                $l::protecting(obj.0, given)
            }
            fn lock_ref(&self, named: bool) -> Result<private::Ref> {
                $l::lock_ref(self, named).map(private::Ref)
            }
            fn acquire(&self) -> core::result::Result<$g<'_>, LockError<$g<'_>>> {
                self.lock()
            }
            fn held_here(&self) -> bool {
                self.handle().is_held_by_current_thread()
            }
        }
        impl ConditionLock for $l {}
    };
}
condition_lock!(RLock, RLockGuard, b'R');
condition_lock!(Lock, LockGuard, b'L');

/// Whether [`Condition::wait_timeout`] (and
/// [`wait_timeout_while`](Condition::wait_timeout_while)) returned because
/// its time ran out: std's `WaitTimeoutResult`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitTimeoutResult(bool);

impl WaitTimeoutResult {
    /// Whether the wait ended because its timeout passed (for
    /// `wait_timeout_while`: with the predicate still true).
    pub fn timed_out(&self) -> bool {
        self.0
    }
}

/// The result of the timed waits: the guard and whether the time ran out,
/// or the lock's error with both.
pub type WaitTimeoutLockResult<G> =
    core::result::Result<(G, WaitTimeoutResult), LockError<(G, WaitTimeoutResult)>>;

/// A condition variable that threads of every process sharing it can wait
/// on: Python's `multiprocessing.Condition`, in the shape of std's
/// `Condvar`, over a shmsync lock `L` ([`RLock`], Python's default, or
/// [`Lock`]).
///
/// A condition records its lock: [`new`](Self::new) and
/// [`create`](Self::create) give it a lock of its own (in its own segment,
/// recursive for `Condition<RLock>`: Python's `Condition()`),
/// [`with_lock`](Self::with_lock) and
/// [`create_with_lock`](Self::create_with_lock) use an existing lock
/// object (Python's `Condition(lock)`; a named condition records the
/// lock's name and identity, and [`open`](Self::open) re-opens it, as
/// [`Value::with_lock`](crate::Value::with_lock) does). The type parameter
/// must be named where it cannot be inferred:
/// `Condition::<RLock>::new()`, or `let c: Condition = Condition::new()?`.
///
/// # Waiting
///
/// The `wait` family takes the lock's guard ([`RLockGuard`] or
/// [`LockGuard`]), releases the lock, sleeps until notified, re-acquires
/// the lock and gives the guard back, as std's `Condvar`:
/// [`wait`](Self::wait), [`wait_timeout`](Self::wait_timeout),
/// [`wait_while`](Self::wait_while),
/// [`wait_timeout_while`](Self::wait_timeout_while). Waiting on an `RLock`
/// held several times releases *every* level (not only this guard's) and
/// restores them all before returning (Python's `_release_save` /
/// `_acquire_restore`), so another process can take the lock meanwhile;
/// the thread's other guards of it are valid again afterwards.
///
/// A waiter that re-acquires a lock whose owner died meanwhile gets
/// [`LockError::OwnerDied`] with the guard, as any locker does (repair,
/// `mark_consistent`, go on); waiting while holding an owner-died lock not
/// yet marked consistent releases it, which makes it not recoverable, as
/// dropping the guard would.
///
/// The guard should be one of this condition's lock. A guard of another
/// lock is not refused (std's futex condition variable does not check
/// either): the condition then works with that lock, and notifiers must
/// use that lock for the no-lost-wake-up guarantee below.
///
/// # Notifying
///
/// [`notify(n)`](Self::notify), [`notify_one`](Self::notify_one) and
/// [`notify_all`](Self::notify_all) may be called with or without the lock
/// held (std's rule; Python requires it). A notify that comes after a
/// change of the waited-for state made under the lock is never lost: every
/// waiter that saw the old state returns. `notify(n)` wakes `n` sleepers
/// at once; the other waiters present may also return, within 50 ms (a
/// **spurious wake-up**, see below). With nobody waiting a notify is one
/// atomic load: no write, no system call.
///
/// Where it does not matter to the program, notify *after* dropping the
/// guard: a waiter woken while the notifier still holds the lock finds it
/// held and must sleep again on the lock (there is no wait morphing). A
/// 2-process ping-pong measured 1.45x glibc's `pthread_cond_t` notifying
/// after the unlock, 0.4-0.6x notifying before it.
///
/// # Spurious wake-ups, and processes that die
///
/// Spurious wake-ups happen, so wait in a loop on the predicate (or use
/// [`wait_while`](Self::wait_while)). The reason is robustness: nothing is
/// registered per waiter, so **a waiter killed inside `wait` never blocks
/// a notifier** (it leaves the waiter count one too high, which costs
/// later notifies a wake-up system call); and a notifier killed between
/// advancing the condition's sequence and waking the sleepers does not
/// strand them: waiters sleep in slices of 50 ms and
/// return once they see the sequence moved. So every waiter present at a
/// notify returns within 50 ms of it, even those `notify(n)` did not
/// wake, and a long wait costs a wake-up every 50 ms.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use shmsync::{Condition, RLock, Value};
/// let lock = RLock::new()?;
/// let ready = Value::<u32>::with_lock(0, &lock)?; // the state, under the lock
/// let cond = Condition::with_lock(&lock)?; // or inherited by a forked child
/// std::thread::scope(|s| {
///     s.spawn(|| {
///         let g = cond.lock().unwrap();
///         ready.set(1).unwrap();
///         drop(g);
///         cond.notify_all();
///     });
///     let g = cond.lock().unwrap();
///     let g = cond.wait_while(g, |_| ready.get().unwrap() == 0).unwrap();
///     drop(g);
/// });
/// # Ok(()) }
/// ```
pub struct Condition<L: ConditionLock = RLock> {
    seg: Arc<Segment>,
    cv: *const RawCondvar<AtomicU32>,
    lock: L,
}

impl<L: ConditionLock> Clone for Condition<L> {
    fn clone(&self) -> Self {
        Condition {
            seg: self.seg.clone(),
            cv: self.cv,
            lock: self.lock.clone(),
        }
    }
}

// SAFETY: `cv` points at atomics in a shared mapping that `seg` keeps
// alive; the lock handle is Send; no thread-affine state is held.
unsafe impl<L: ConditionLock + Send> Send for Condition<L> {}
// SAFETY: as for Send: every access to the words is atomic.
unsafe impl<L: ConditionLock + Sync> Sync for Condition<L> {}

impl<L: ConditionLock> SharedObject for Condition<L> {
    const SHAPE: Shape = Shape {
        kind: Kind::Condition,
        elem: ElemDesc {
            code: L::CODE,
            size: 8,
            align: 4,
        },
        strides: [8, 8],
        lock: LockMode::Own,
        shares_lock: true,
        single: true,
        liveness: false,
    };
    type Init<'a> = ();

    fn count(_init: &()) -> usize {
        1
    }

    fn wrap(obj: Object, _lock: Option<&RLock>) -> Result<Self> {
        Self::attach(obj, None)
    }

    fn segment(&self) -> &Segment {
        &self.seg
    }
}

crate::shared::shared_object! {
    impl[L: ConditionLock] Condition<L>: "condition", "shmsync::Condition::<shmsync::RLock>";
    new() => (); " with a lock of its own", "new()", "create(&name)";
}

/// A guard, the hold inside it, and back.
type Guard<'a, L> = <L as private::Sealed>::Guard<'a>;

impl<L: ConditionLock> Condition<L> {
    /// Makes the handle on a validated segment: its words and its lock
    /// (`given`, checked against the recorded one, or its own slot, or the
    /// lock object it records, re-opened by name).
    fn attach(obj: Object, given: Option<&L>) -> Result<Self> {
        let lock = L::protecting(private::Obj(&obj), given)?;
        // SAFETY: the layout is validated as this shape: exactly one
        // element of stride 8 inside the mapping, at a data offset that is
        // a multiple of 64 in a page-aligned mapping, so 4-aligned.
        let cv = unsafe { obj.elem_ptr(0) }.cast::<RawCondvar<AtomicU32>>();
        Ok(Condition {
            seg: obj.seg,
            cv,
            lock,
        })
    }

    fn create_with(name: Option<&str>, lock: &L) -> Result<Self> {
        let spec = Spec {
            shape: Self::SHAPE,
            count: 1,
            stride: 8,
            lock: LockMode::External,
            lock_ref: Some(lock.lock_ref(name.is_some())?.0),
        };
        Self::attach(Object::create(name, &spec, |_| {})?, Some(lock))
    }

    /// A new anonymous condition that uses an existing lock (Python's
    /// `Condition(lock)`): the lock protects the state the condition's
    /// waiters wait for, and may also protect
    /// [`Value`](crate::Value)s and [`Array`](crate::Array)s made
    /// `with_lock` (an [`RLock`]). Shared with children by `fork` (with
    /// the lock) or through its descriptor
    /// ([`from_fd_with_lock`](Self::from_fd_with_lock)).
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let lock = shmsync::Lock::new()?;
    /// let cond = shmsync::Condition::with_lock(&lock)?;
    /// let g = lock.lock().unwrap();
    /// let (g, r) = cond.wait_timeout(g, std::time::Duration::from_millis(1)).unwrap();
    /// assert!(r.timed_out());
    /// drop(g);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As for [`new`](Self::new).
    pub fn with_lock(lock: &L) -> Result<Self> {
        Self::create_with(None, lock)
    }

    /// A new named condition that uses an existing *named* lock object,
    /// whose name and identity are recorded, so that [`open`](Self::open)
    /// re-attaches it. See [`create`](Self::create) for the name and
    /// [`with_lock`](Self::with_lock) for the lock.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// use shmsync::{Condition, Lock};
    /// let pid = std::process::id();
    /// let (name, lock_name) = (format!("doc_ccwl_{pid}"), format!("doc_ccwl_lock_{pid}"));
    /// let lock = Lock::create(&lock_name)?;
    /// let c = Condition::create_with_lock(&name, &lock)?;
    /// let d = Condition::<Lock>::open(&name)?; // re-opens the lock by its name
    /// let _g = d.lock().unwrap();
    /// assert!(c.get_lock().is_held_by_current_thread()); // one lock
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) if the
    /// lock is anonymous or is not a lock object (the lock of a `Value`);
    /// otherwise as for [`create`](Self::create).
    pub fn create_with_lock(name: &str, lock: &L) -> Result<Self> {
        Self::create_with(Some(name), lock)
    }

    /// Attaches to the condition behind `fd`, which uses `lock`. The
    /// descriptor must be as for [`from_fd`](Self::from_fd), with its
    /// `SIGBUS` limit for a named file.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::os::fd::AsFd;
    /// use shmsync::{Condition, RLock};
    /// let lock = RLock::new()?;
    /// let c = Condition::with_lock(&lock)?;
    /// let fd = c.as_fd().try_clone_to_owned()?;
    /// assert!(Condition::<RLock>::from_fd(fd.try_clone()?).is_err()); // the lock has no name
    /// let d = Condition::from_fd_with_lock(fd, &lock)?;
    /// let _g = d.lock().unwrap();
    /// assert!(lock.is_held_by_current_thread());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::LockMismatch`](crate::Error::LockMismatch) if it was not
    /// created with this lock; otherwise as for [`from_fd`](Self::from_fd).
    pub fn from_fd_with_lock(fd: OwnedFd, lock: &L) -> Result<Self> {
        Self::attach(Object::from_fd(fd, &Self::SHAPE)?, Some(lock))
    }

    #[inline]
    fn raw(&self) -> &RawCondvar<AtomicU32> {
        // SAFETY: `cv` points into the mapping kept alive by `self.seg`, is
        // 4-aligned (`attach`), and `RawCondvar<AtomicU32>` is two
        // `AtomicU32`s (`repr(C)`): every access is atomic.
        unsafe { &*self.cv }
    }

    /// The condition's lock.
    pub fn get_lock(&self) -> &L {
        &self.lock
    }

    /// Locks the condition's lock (Python's `acquire()` / `with cond:`):
    /// the same as `get_lock().lock()`.
    ///
    /// # Errors
    /// As for [`RLock::lock`] / [`Lock::lock`].
    pub fn lock(&self) -> core::result::Result<Guard<'_, L>, LockError<Guard<'_, L>>> {
        self.lock.acquire()
    }

    /// The whole wait of a guard's hold: counts itself a waiter, gives up
    /// every hold of the lock, sleeps, takes them back. The second value:
    /// whether the sequence moved (`false`: the deadline expired).
    fn wait_held<'a>(
        &self,
        held: HeldLock<'a>,
        deadline: Option<&mut dyn Deadline>,
    ) -> (
        core::result::Result<HeldLock<'a>, LockError<HeldLock<'a>>>,
        bool,
    ) {
        let raw = self.raw();
        // Holding the lock (module docs of `raw::condvar`).
        let s = raw.enter();
        let suspended: Suspended<'a> = match held.suspend() {
            Ok(s) => s,
            Err(held) => {
                raw.leave();
                // Holds through another handle of the lock file: it
                // cannot be released, so nobody could change the state.
                drop(held);
                return (Err(LockError::Deadlock), false);
            }
        };
        let moved = raw.sleep(s, deadline);
        raw.leave();
        (suspended.resume(), moved)
    }

    fn wait_guard<'a>(
        &self,
        guard: Guard<'a, L>,
        deadline: Option<&mut dyn Deadline>,
    ) -> (
        core::result::Result<Guard<'a, L>, LockError<Guard<'a, L>>>,
        bool,
    ) {
        let (r, moved) = self.wait_held(L::into_hold(guard).0, deadline);
        let r = r
            .map(|h| L::from_hold(private::Hold(h)))
            .map_err(|e| e.map(|h| L::from_hold(private::Hold(h))));
        (r, moved)
    }

    /// Releases the lock (every level of it), blocks until notified, and
    /// re-acquires it: std's `Condvar::wait`, Python's `wait()`.
    ///
    /// May return without a notify (a *spurious wake-up*: type docs): check
    /// the predicate in a loop, or use [`wait_while`](Self::wait_while).
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let cond = shmsync::Condition::<shmsync::RLock>::new()?;
    /// let c = cond.clone();
    /// let g = cond.lock().unwrap();
    /// let t = std::thread::spawn(move || {
    ///     let _g = c.lock().unwrap(); // free while the other thread waits
    ///     c.notify_one();
    /// });
    /// let g = cond.wait(g).unwrap();
    /// drop(g);
    /// t.join().unwrap();
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`LockError::OwnerDied`] (with the guard: the lock is held) if an
    /// owner died holding the lock while this thread waited;
    /// [`LockError::NotRecoverable`];
    /// [`LockError::Deadlock`] (the guard is dropped, releasing its hold)
    /// if the thread also holds the lock through another handle opened
    /// separately on the same lock file, which this wait cannot release.
    pub fn wait<'a>(
        &self,
        guard: Guard<'a, L>,
    ) -> core::result::Result<Guard<'a, L>, LockError<Guard<'a, L>>> {
        self.wait_guard(guard, None).0
    }

    /// [`wait`](Self::wait), giving up after `timeout` (then re-acquiring
    /// the lock, which may take longer): std's `wait_timeout`, Python's
    /// `wait(timeout)`. A timeout too large to add to the clock waits
    /// forever.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// let cond = shmsync::Condition::<shmsync::RLock>::new()?;
    /// let g = cond.lock().unwrap();
    /// let (g, r) = cond.wait_timeout(g, Duration::from_millis(5)).unwrap();
    /// assert!(r.timed_out());
    /// drop(g);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As for [`wait`](Self::wait), with the guard and the timeout result.
    pub fn wait_timeout<'a>(
        &self,
        guard: Guard<'a, L>,
        timeout: Duration,
    ) -> WaitTimeoutLockResult<Guard<'a, L>> {
        let (r, moved) = match Until::after(timeout) {
            Some(mut t) => self.wait_guard(guard, Some(&mut t)),
            None => self.wait_guard(guard, None),
        };
        let t = WaitTimeoutResult(!moved);
        r.map(|g| (g, t)).map_err(|e| e.map(|g| (g, t)))
    }

    /// [`wait_timeout`](Self::wait_timeout) (`None`: without timeout)
    /// that something else can cut short: `stop` is called before each
    /// sleep (at least every 50 ms while the thread waits, never while it
    /// is notified), and once it returns `true` the wait ends as if its
    /// time had run out (the lock re-acquired, `timed_out()` true). For
    /// waits that must stay responsive to a shutdown flag or a signal (the
    /// Python binding checks for Ctrl-C there). A notify that comes first
    /// wins: the wait then returns not timed out.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let cond = shmsync::Condition::<shmsync::RLock>::new()?;
    /// let g = cond.lock().unwrap();
    /// let mut polls = 0;
    /// let (g, r) = cond
    ///     .wait_timeout_unless(g, None, || {
    ///         polls += 1;
    ///         polls == 3 // "interrupted" at the third poll
    ///     })
    ///     .unwrap();
    /// assert!(r.timed_out());
    /// assert_eq!(polls, 3);
    /// drop(g);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As for [`wait_timeout`](Self::wait_timeout).
    pub fn wait_timeout_unless<'a, F>(
        &self,
        guard: Guard<'a, L>,
        timeout: Option<Duration>,
        stop: F,
    ) -> WaitTimeoutLockResult<Guard<'a, L>>
    where
        F: FnMut() -> bool,
    {
        let mut d = Stoppable {
            until: timeout.and_then(Until::after),
            stop,
        };
        // A timeout too large for the clock waits for `stop` only.
        let (r, moved) = self.wait_guard(guard, Some(&mut d));
        let t = WaitTimeoutResult(!moved);
        r.map(|g| (g, t)).map_err(|e| e.map(|g| (g, t)))
    }

    /// Waits while `condition` holds: returns (holding the lock) once it
    /// is false. `condition` is called holding the lock, first before any
    /// wait; std's `wait_while`, Python's `wait_for` (with the predicate
    /// negated).
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmsync::{Condition, RLock, Value};
    /// let lock = RLock::new()?;
    /// let items = Value::<u32>::with_lock(0, &lock)?;
    /// let cond = Condition::with_lock(&lock)?;
    /// std::thread::scope(|s| {
    ///     s.spawn(|| {
    ///         let _g = cond.lock().unwrap();
    ///         items.set(3).unwrap();
    ///         cond.notify(1);
    ///     });
    ///     let g = cond.lock().unwrap();
    ///     let g = cond.wait_while(g, |_| items.get().unwrap() == 0).unwrap();
    ///     assert_eq!(items.get().unwrap(), 3);
    ///     drop(g);
    /// });
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As for [`wait`](Self::wait), at the first wait that fails (an
    /// `OwnerDied` guard is handed back without calling `condition`
    /// again: repair the state first).
    pub fn wait_while<'a, F>(
        &self,
        mut guard: Guard<'a, L>,
        mut condition: F,
    ) -> core::result::Result<Guard<'a, L>, LockError<Guard<'a, L>>>
    where
        F: FnMut(&mut Guard<'a, L>) -> bool,
    {
        while condition(&mut guard) {
            guard = self.wait(guard)?;
        }
        Ok(guard)
    }

    /// [`wait_while`](Self::wait_while), giving up after `timeout` in all:
    /// std's `wait_timeout_while`. The result says whether it timed out
    /// (with `condition` still true).
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// let cond = shmsync::Condition::<shmsync::RLock>::new()?;
    /// let g = cond.lock().unwrap();
    /// let (g, r) = cond
    ///     .wait_timeout_while(g, Duration::from_millis(5), |_| true)
    ///     .unwrap();
    /// assert!(r.timed_out());
    /// drop(g);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As for [`wait_while`](Self::wait_while), with the timeout result.
    pub fn wait_timeout_while<'a, F>(
        &self,
        mut guard: Guard<'a, L>,
        timeout: Duration,
        mut condition: F,
    ) -> WaitTimeoutLockResult<Guard<'a, L>>
    where
        F: FnMut(&mut Guard<'a, L>) -> bool,
    {
        let mut until = Until::after(timeout);
        loop {
            if !condition(&mut guard) {
                return Ok((guard, WaitTimeoutResult(false)));
            }
            let (r, moved) = match until.as_mut() {
                Some(t) => {
                    if t.remaining().is_none() {
                        return Ok((guard, WaitTimeoutResult(true)));
                    }
                    self.wait_guard(guard, Some(t))
                }
                None => self.wait_guard(guard, None),
            };
            match r {
                Ok(g) => guard = g,
                Err(e) => return Err(e.map(|g| (g, WaitTimeoutResult(!moved)))),
            }
        }
    }

    /// Wakes `n` of the threads waiting on this condition (Python's
    /// `notify(n)`); the other waiters present may return too, within
    /// 50 ms (spuriously: type docs). With or without the lock held. No
    /// write and no system call when nobody waits; `n = 0` does nothing.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let cond = shmsync::Condition::<shmsync::RLock>::new()?;
    /// cond.notify(2); // nobody waits: one load
    /// # Ok(()) }
    /// ```
    pub fn notify(&self, n: u32) {
        if n > 0 {
            self.wake(n);
        }
    }

    /// Advances the sequence if anybody waits, then wakes `n` (`u32::MAX`:
    /// all) of them: when this thread releases the lock if it holds it
    /// (`sync/deferred.rs`: wait morphing), else now.
    fn wake(&self, n: u32) {
        let raw = self.raw();
        if !raw.advance() {
            return;
        }
        if self.lock.held_here() && super::deferred::defer(&self.seg, raw.seq(), n) {
            return;
        }
        if n == u32::MAX {
            raw.seq().wake_all();
        } else {
            raw.seq().wake_n(n);
        }
    }

    /// Wakes one waiting thread: `notify(1)`, std's `notify_one`.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let cond = shmsync::Condition::<shmsync::Lock>::new()?;
    /// cond.notify_one();
    /// # Ok(()) }
    /// ```
    pub fn notify_one(&self) {
        self.wake(1);
    }

    /// Wakes every thread of every process waiting on this condition
    /// (one system call; none when nobody waits).
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let cond = shmsync::Condition::<shmsync::RLock>::new()?;
    /// cond.notify_all();
    /// # Ok(()) }
    /// ```
    pub fn notify_all(&self) {
        self.wake(u32::MAX);
    }
}

impl<L: ConditionLock> fmt::Debug for Condition<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condition")
            .field("name", &self.name())
            .field(
                "lock",
                &self.lock.lock_ref(false).ok().and_then(|r| r.0.name),
            )
            // Relaxed: a snapshot for display.
            .field("waiters", &self.raw().waiters().load(Relaxed))
            .finish()
    }
}
