#![allow(unsafe_code)] // items copied in and out of the mapping through `shm::access`
//! [`Queue`]: Python's `multiprocessing.Queue` for [`Element`] items, a
//! bounded ring in a shared page.

use core::fmt;
use core::marker::PhantomData;
use core::mem::{align_of, size_of};
use core::time::Duration;

use super::{error, RingInit, RingSeg};
use crate::error::Result;
use crate::raw::Deadline;
use crate::shared::SharedObject;
use crate::shm::access;
use crate::shm::object::{Kind, LockMode, Object, Shape};
use crate::shm::segment::Segment;
use crate::sync::{RLock, Until};
use crate::typed::{elem_desc, Element};

/// A bounded multi-producer multi-consumer FIFO of `T` shared by threads
/// and processes: Python's `multiprocessing.Queue` (`put`, `get`,
/// `put_nowait`, `get_nowait`, `qsize`, `empty`, `full`, `close`) for
/// items of any [`Element`] type, in a ring in the mapped page with no lock.
///
/// The capacity is fixed at creation. [`put`](Self::put) blocks while the
/// queue is full, [`get`](Self::get) while it is empty; `try_` forms fail
/// at once with [`Error::Full`](crate::Error::Full) / [`Error::Empty`](crate::Error::Empty), `_timeout` forms after
/// the timeout. An uncontended `put` or `get` makes no system call (a wake
/// only when someone sleeps).
///
/// # Close
///
/// After [`close`](Self::close) (by any process), `put` fails with
/// [`Error::Closed`](crate::Error::Closed) in every process (a `put` racing with the close may
/// still land, and is then delivered), and `get` returns what is left,
/// then fails with [`Error::Closed`](crate::Error::Closed). Blocked callers are woken.
///
/// # A process that dies
///
/// A producer or consumer killed at any instruction of any operation never
/// blocks the others: every slot names the thread moving its item, and a
/// thread whose way it blocks finds out, within a few milliseconds of
/// sleeping on it, that that thread is dead (its liveness byte: the
/// mechanism of the locks' owner-death detection), and frees the slot. The
/// exact guarantee, for each process killed inside an operation:
///
/// - no item is delivered twice, and none is delivered torn (a producer's
///   half-written item is never delivered);
/// - at most the one item that process was moving is lost (killed inside
///   `put`: the item it was putting, if it had claimed a slot; inside
///   `get`: the item it was taking, if it had claimed one). Items are
///   never lost otherwise;
/// - each loss is counted in [`lost`](Self::lost), once (a claim killed
///   before it was made, or after it was completed, loses and counts
///   nothing);
/// - the items of each producer stay in its order.
///
/// A dead claim is found when some thread waits behind it (a consumer at
/// it, a producer a lap behind it) or calls [`lost`](Self::lost). Limit: a
/// thread that cannot take its liveness byte
/// (see [`Lock`](crate::Lock)'s owner-death notes) makes the others wait
/// for it rather than judge it dead.
///
/// ```
/// # fn main() -> Result<(), shmsync::Error> {
/// let q = shmsync::Queue::<u64>::new(16)?;
/// let q2 = q.clone(); // or inherited by a forked child, or `open`ed by name
/// let t = std::thread::spawn(move || (0..100).try_for_each(|i| q2.put(i)));
/// let got: Vec<u64> = (0..100).map(|_| q.get()).collect::<Result<_, _>>()?;
/// t.join().unwrap()?;
/// assert_eq!(got, (0..100).collect::<Vec<_>>());
/// # Ok(()) }
/// ```
pub struct Queue<T: Element> {
    ring: RingSeg,
    _items: PhantomData<T>,
}

impl<T: Element> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue {
            ring: self.ring.clone(),
            _items: PhantomData,
        }
    }
}

impl<T: Element> SharedObject for Queue<T> {
    const SHAPE: Shape = Shape {
        kind: Kind::Queue,
        elem: elem_desc::<T>(),
        strides: [size_of::<T>(), size_of::<T>()],
        lock: LockMode::None,
        shares_lock: false,
        single: false,
        liveness: true,
    };
    type Init<'a> = RingInit;

    fn count(init: &RingInit) -> usize {
        init.count()
    }

    fn fill(obj: &Object, init: RingInit) {
        RingSeg::fill(obj, &init);
    }

    fn wrap(obj: Object, _lock: Option<&RLock>) -> Result<Self> {
        let ring = RingSeg::wrap(obj, Some(size_of::<T>()), align_of::<T>(), size_of::<T>())?;
        Ok(Queue {
            ring,
            _items: PhantomData,
        })
    }

    fn segment(&self) -> &Segment {
        self.ring.segment()
    }
}

impl<T: Element> Queue<T> {
    fn init(capacity: usize) -> Result<RingInit> {
        RingInit::new(capacity, size_of::<T>(), align_of::<T>(), size_of::<T>())
    }
}

crate::shared::shared_object! {
    impl[T: Element] Queue<T>: "queue", "shmsync::Queue::<u64>";
    new(capacity: usize) => Self::init(capacity)?;
        " with room for `capacity` items (at least 1, at most 2^29; zero-sized \
         items are refused)", "new(4)", "create(&name, 4)";
}

impl<T: Element> Queue<T> {
    #[inline]
    fn write(&self, v: T) -> impl FnOnce(usize) + '_ {
        move |i| {
            // SAFETY: `i` is a claimed slot's index, below the capacity;
            // its payload (`size_of::<T>()` bytes, aligned for T: the
            // payloads start aligned and the slot size is `size_of::<T>()`)
            // lies in the validated area and is only accessed atomically.
            unsafe { access::store(self.ring.payload(i).cast::<T>(), v) }
        }
    }

    #[inline]
    fn read<'a>(&'a self, out: &'a mut T) -> impl FnOnce(usize) + 'a {
        move |i| {
            // SAFETY: as in `write`.
            *out = unsafe { access::load(self.ring.payload(i).cast::<T>()) }
        }
    }

    fn put_until(&self, v: T, deadline: Option<&mut dyn Deadline>) -> Result<()> {
        let me = self.ring.me();
        self.ring
            .ring()
            .put(me, deadline, &mut self.ring.probe(), self.write(v))
            .map(drop)
            .map_err(error)
    }

    fn get_until(&self, deadline: Option<&mut dyn Deadline>) -> Result<T> {
        let me = self.ring.me();
        let mut out = T::zeroed();
        self.ring
            .ring()
            .get(
                me,
                deadline,
                &mut self.ring.probe(),
                &mut |_| true,
                self.read(&mut out),
            )
            .map_err(error)?;
        Ok(out)
    }

    /// Puts `v` at the back, waiting while the queue is full (Python's
    /// `put`).
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let q = shmsync::Queue::<i32>::new(2)?;
    /// q.put(-1)?;
    /// assert_eq!(q.get()?, -1);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Closed`](crate::Error::Closed) once the queue is closed (also while waiting);
    /// [`Error::Corrupt`](crate::Error::Corrupt) if a peer scribbled the ring.
    pub fn put(&self, v: T) -> Result<()> {
        self.put_until(v, None)
    }

    /// Puts `v` if there is room now (Python's `put_nowait`).
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let q = shmsync::Queue::<u8>::new(1)?;
    /// q.try_put(1)?;
    /// assert_eq!(q.try_put(2), Err(shmsync::Error::Full));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Full`](crate::Error::Full) if there is no room (a slot whose producer or
    /// consumer died is freed first: it does not make the queue look full
    /// for ever); otherwise as [`put`](Self::put).
    pub fn try_put(&self, v: T) -> Result<()> {
        let me = self.ring.me();
        self.ring
            .ring()
            .try_put(me, &mut self.ring.probe(), self.write(v))
            .map(drop)
            .map_err(error)
    }

    /// Puts `v`, waiting at most `timeout` for room (Python's
    /// `put(v, timeout=..)`). A timeout too large for the clock waits
    /// forever.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// use std::time::Duration;
    /// let q = shmsync::Queue::<u8>::new(1)?;
    /// q.put_timeout(1, Duration::from_millis(5))?;
    /// assert_eq!(q.put_timeout(2, Duration::from_millis(5)), Err(shmsync::Error::Full));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Full`](crate::Error::Full) if the timeout passed; otherwise as
    /// [`put`](Self::put).
    pub fn put_timeout(&self, v: T, timeout: Duration) -> Result<()> {
        match Until::after(timeout) {
            Some(mut d) => self.put_until(v, Some(&mut d)),
            None => self.put_until(v, None),
        }
    }

    /// Takes the item at the front, waiting while the queue is empty
    /// (Python's `get`).
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let q = shmsync::Queue::<f64>::new(4)?;
    /// q.put(1.5)?;
    /// assert_eq!(q.get()?, 1.5);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Closed`](crate::Error::Closed) once the queue is closed and empty;
    /// [`Error::Corrupt`](crate::Error::Corrupt) if a peer scribbled the ring.
    pub fn get(&self) -> Result<T> {
        self.get_until(None)
    }

    /// Takes the item at the front if there is one (Python's
    /// `get_nowait`).
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let q = shmsync::Queue::<u16>::new(4)?;
    /// assert_eq!(q.try_get(), Err(shmsync::Error::Empty));
    /// q.put(3)?;
    /// assert_eq!(q.try_get(), Ok(3));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Empty`](crate::Error::Empty) if there is none now; otherwise as
    /// [`get`](Self::get).
    pub fn try_get(&self) -> Result<T> {
        let me = self.ring.me();
        let mut out = T::zeroed();
        self.ring
            .ring()
            .try_get(
                me,
                &mut self.ring.probe(),
                &mut |_| true,
                self.read(&mut out),
            )
            .map_err(error)?;
        Ok(out)
    }

    /// Takes the item at the front, waiting at most `timeout` (Python's
    /// `get(timeout=..)`). A timeout too large for the clock waits forever.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// use std::time::Duration;
    /// let q = shmsync::Queue::<u32>::new(4)?;
    /// assert_eq!(q.get_timeout(Duration::from_millis(5)), Err(shmsync::Error::Empty));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Empty`](crate::Error::Empty) if the timeout passed; otherwise as
    /// [`get`](Self::get).
    pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
        match Until::after(timeout) {
            Some(mut d) => self.get_until(Some(&mut d)),
            None => self.get_until(None),
        }
    }

    /// Puts every item of `items`, in order, waiting for room as
    /// [`put`](Self::put) does (other producers' items may come between
    /// them).
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let q = shmsync::Queue::<u64>::new(8)?;
    /// q.put_slice(&[1, 2, 3])?;
    /// let mut buf = [0; 8];
    /// assert_eq!(q.get_into(&mut buf)?, 3);
    /// assert_eq!(buf[..3], [1, 2, 3]);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`put`](Self::put); the items before the one that failed have
    /// been put.
    pub fn put_slice(&self, items: &[T]) -> Result<()> {
        let me = self.ring.me();
        let ring = self.ring.ring();
        let mut probe = self.ring.probe();
        for v in items {
            ring.put(me, None, &mut probe, self.write(*v))
                .map_err(error)?;
        }
        Ok(())
    }

    /// Takes items into `buf`: waits for one as [`get`](Self::get) does,
    /// then takes as many more as are there at once, up to `buf.len()`.
    /// Returns how many it took (0 only for an empty `buf`).
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let q = shmsync::Queue::<i8>::new(4)?;
    /// q.put(-3)?;
    /// let mut buf = [0; 4];
    /// assert_eq!(q.get_into(&mut buf)?, 1);
    /// assert_eq!(buf[0], -3);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`get`](Self::get), when it takes nothing.
    pub fn get_into(&self, buf: &mut [T]) -> Result<usize> {
        let Some((first, rest)) = buf.split_first_mut() else {
            return Ok(0);
        };
        let me = self.ring.me();
        let ring = self.ring.ring();
        let mut probe = self.ring.probe();
        ring.get(me, None, &mut probe, &mut |_| true, self.read(first))
            .map_err(error)?;
        let mut n = 1;
        for slot in rest {
            if ring
                .try_get(me, &mut probe, &mut |_| true, self.read(slot))
                .is_err()
            {
                break;
            }
            n += 1;
        }
        Ok(n)
    }

    /// The number of items, approximately (Python's `qsize`): a snapshot
    /// that other threads change at once, and that counts items being put
    /// or taken at that moment.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let q = shmsync::Queue::<u8>::new(4)?;
    /// q.put(1)?;
    /// assert_eq!(q.len(), 1);
    /// # Ok(()) }
    /// ```
    pub fn len(&self) -> usize {
        self.ring.ring().len()
    }

    /// Whether [`len`](Self::len) is 0 (Python's `empty`; as approximate).
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let q = shmsync::Queue::<u8>::new(4)?;
    /// assert!(q.is_empty());
    /// # Ok(()) }
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether [`len`](Self::len) is the capacity (Python's `full`; as
    /// approximate).
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let q = shmsync::Queue::<u8>::new(1)?;
    /// q.put(0)?;
    /// assert!(q.is_full());
    /// # Ok(()) }
    /// ```
    pub fn is_full(&self) -> bool {
        self.len() == self.capacity()
    }

    /// The capacity, fixed at creation.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// assert_eq!(shmsync::Queue::<u8>::new(3)?.capacity(), 3);
    /// # Ok(()) }
    /// ```
    pub fn capacity(&self) -> usize {
        self.ring.cap as usize
    }

    /// Closes the queue for every process: later puts fail with
    /// [`Error::Closed`](crate::Error::Closed), gets drain what is left and then fail with it.
    /// Wakes every blocked caller. Returns `false` if it was closed
    /// already. (Unlike Python's `close`, which only concerns the calling
    /// process, this is shared.)
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let q = shmsync::Queue::<u8>::new(2)?;
    /// q.put(5)?;
    /// assert!(q.close());
    /// assert_eq!(q.put(6), Err(shmsync::Error::Closed));
    /// assert_eq!(q.get(), Ok(5));
    /// assert_eq!(q.get(), Err(shmsync::Error::Closed));
    /// # Ok(()) }
    /// ```
    pub fn close(&self) -> bool {
        self.ring.ring().close()
    }

    /// Whether [`close`](Self::close) was called.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let q = shmsync::Queue::<u8>::new(2)?;
    /// assert!(!q.is_closed());
    /// q.close();
    /// assert!(q.is_closed());
    /// # Ok(()) }
    /// ```
    pub fn is_closed(&self) -> bool {
        self.ring.ring().is_closed()
    }

    /// How many items were lost to processes killed while moving them (see
    /// [the type's docs](Self#a-process-that-dies)); a shared count that
    /// wraps at 2^32. It first frees every slot held by a dead thread (one
    /// liveness probe, a system call, per slot claimed at that moment: it
    /// looks at every slot), so that a loss nobody has run into yet is
    /// counted too.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let q = shmsync::Queue::<u8>::new(2)?;
    /// assert_eq!(q.lost(), 0);
    /// # Ok(()) }
    /// ```
    pub fn lost(&self) -> u32 {
        let ring = self.ring.ring();
        ring.reap_dead(&mut self.ring.probe());
        ring.lost()
    }
}

impl<T: Element> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("name", &self.name())
            .field("capacity", &self.capacity())
            .field("len", &self.len())
            .field("closed", &self.is_closed())
            .finish()
    }
}

static_assertions::assert_impl_all!(Queue<u64>: Send, Sync);
