#![allow(unsafe_code)] // the pipe's words in the validated mapping
//! [`Pipe`] and [`Connection`]: Python's `multiprocessing.Pipe()`, one
//! single-producer single-consumer ring per direction in a shared page.

use core::fmt;
use core::sync::atomic::AtomicU32;
use core::sync::atomic::Ordering::{Acquire, Relaxed};
use core::time::Duration;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::raw::spsc::{self, Consumer, Out, Producer, Ring, RingError, Wait};
use crate::shared::SharedObject;
use crate::shm::object::{ElemDesc, Kind, LockMode, Object, Shape};
use crate::shm::segment::Segment;
use crate::sync::deadline::Until;
use crate::sync::RLock;
use crate::sys::liveness::{self, HandleClaim};

/// Word 0: the largest message (written at creation, read once by `open`).
const W_CAPACITY: usize = 0;
/// Word 1: the number of rings, 1 (simplex) or 2 (duplex).
const W_RINGS: usize = 1;
/// Words 2 and 3: end A's and end B's flags ([`USED`]).
const W_FLAGS: usize = 2;
/// Head of ring `r` at `W_RING + 32 r`, its tail 16 words (64 bytes) on:
/// each word on a cache line of its own.
const W_RING: usize = 16;
/// The control words; the rings' data follow, ring `r` at
/// `CTRL + r * ring_words`.
const CTRL: usize = W_RING + 64;
/// End flag: a process has taken this end (its first send, receive or
/// poll). Never cleared: an end is used by one process in its life.
const USED: u32 = 1;

/// Claim bytes (`sys::liveness`, "Claims") of end `e`: `HOLD + e` is
/// read-locked by every handle of the end (and the processes that
/// inherited it), `TAKEN + e` write-locked by the process that uses it.
const HOLD: u32 = 0;
const TAKEN: u32 = 2;

/// One end of a pipe.
///
/// End `A` receives what `B` sends and, in a duplex pipe, `B` receives
/// what `A` sends. In a simplex pipe ([`Pipe::simplex`]) `A` is the
/// receiving end and `B` the sending end, in that order as Python's
/// `Pipe(duplex=False)` returns `(r, w)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum End {
    /// The first end [`Pipe::new`] returns (the receiving end of a simplex
    /// pipe).
    A,
    /// The second end (the sending end of a simplex pipe).
    B,
}

impl End {
    fn index(self) -> usize {
        match self {
            End::A => 0,
            End::B => 1,
        }
    }

    /// The other end.
    ///
    /// ```
    /// use shmsync::End;
    /// assert_eq!(End::A.peer(), End::B);
    /// ```
    pub fn peer(self) -> End {
        match self {
            End::A => End::B,
            End::B => End::A,
        }
    }
}

/// The validated pipe segment: geometry read once, kept private.
struct PipeSeg {
    seg: Arc<Segment>,
    words: *const AtomicU32,
    count: usize,
    capacity: usize,
    rings: usize,
    ring_words: usize,
}

/// `(capacity, rings)` of a new pipe.
type PipeInit = (usize, usize);

/// Words of a pipe with `rings` rings for messages of `capacity` bytes.
fn words_for(capacity: usize, rings: usize) -> Option<usize> {
    let ring_words = spsc::ring_bytes(capacity)? / 4;
    ring_words.checked_mul(rings)?.checked_add(CTRL)
}

impl SharedObject for PipeSeg {
    const SHAPE: Shape = Shape {
        kind: Kind::Pipe,
        elem: ElemDesc::NONE,
        strides: [4, 4],
        lock: LockMode::None,
        shares_lock: false,
        single: false,
        liveness: true,
    };
    type Init<'a> = PipeInit;

    fn count(&(capacity, rings): &PipeInit) -> usize {
        // Checked by `Pipe::make` before creating.
        words_for(capacity, rings).unwrap_or(CTRL)
    }

    fn fill(obj: &Object, (capacity, rings): PipeInit) {
        // SAFETY: the layout was created with `count` ≥ CTRL words of
        // stride 4 at a 64-aligned data offset: words 0 and 1 lie inside.
        let w = unsafe { obj.elem_ptr(0) }.cast::<AtomicU32>();
        // SAFETY: as above; only atomic accesses.
        let (cap_w, rings_w) = unsafe { (&*w.add(W_CAPACITY), &*w.add(W_RINGS)) };
        // Relaxed: published by the Release store of the header's `init`.
        cap_w.store(capacity as u32, Relaxed);
        rings_w.store(rings as u32, Relaxed);
    }

    fn wrap(obj: Object, _lock: Option<&RLock>) -> Result<Self> {
        let count = obj.layout.count;
        if count < CTRL {
            return Err(Error::Corrupt("pipe shorter than its control words"));
        }
        // SAFETY: `count` words of stride 4 lie inside the mapping from a
        // 64-aligned data offset (validated); element 0 is the first.
        let words = unsafe { obj.elem_ptr(0) }.cast::<AtomicU32>().cast_const();
        // SAFETY: words 0 and 1 < CTRL ≤ count; atomic accesses only.
        let (capacity, rings) = unsafe {
            (
                (*words.add(W_CAPACITY)).load(Relaxed) as usize,
                (*words.add(W_RINGS)).load(Relaxed) as usize,
            )
        };
        // The geometry is read once and must match the file exactly; from
        // here on it is private.
        let bad = Error::Corrupt("pipe geometry");
        if !(1..=2).contains(&rings) || words_for(capacity, rings) != Some(count) {
            return Err(bad);
        }
        let ring_words = spsc::ring_bytes(capacity).ok_or(bad)? / 4;
        Ok(PipeSeg {
            seg: obj.seg,
            words,
            count,
            capacity,
            rings,
            ring_words,
        })
    }

    fn segment(&self) -> &Segment {
        &self.seg
    }
}

/// Python's `multiprocessing.Pipe()`: a pair of [`Connection`]s, over
/// shared memory.
///
/// [`Pipe::new`] makes a duplex pipe (each end sends and receives),
/// [`Pipe::simplex`] a one-way pipe (receiving end first, as Python's
/// `Pipe(duplex=False)`). Messages are byte strings of 0 to `capacity`
/// bytes, kept whole and in order; typed messages go through the `serde`
/// feature (`Connection::send`).
///
/// An anonymous pipe travels to a child by `fork` (each process then
/// keeps one end and drops the other: see [`Connection`]) or as a
/// descriptor ([`Connection::from_fd`]); a named one
/// ([`Pipe::create`]) is opened end by end with [`Connection::open`].
///
/// ```
/// # fn main() -> Result<(), shmsync::Error> {
/// let (mut a, mut b) = shmsync::Pipe::new(4096)?;
/// let t = std::thread::spawn(move || {
///     let ping = b.recv_bytes().unwrap();
///     b.send_bytes(&[ping[0] + 1]).unwrap();
/// });
/// a.send_bytes(&[41])?;
/// assert_eq!(a.recv_bytes()?, [42]);
/// t.join().unwrap();
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Pipe(());

impl Pipe {
    /// A new anonymous duplex pipe for messages of up to `capacity` bytes:
    /// its two ends.
    ///
    /// Each direction is a ring of `capacity + 4` bytes rounded up to a
    /// power of two: it holds one message of the largest size, or several
    /// smaller ones (each uses 4 bytes of length and its payload rounded up
    /// to 4).
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let (mut a, mut b) = shmsync::Pipe::new(64)?;
    /// b.send_bytes(b"hello")?;
    /// assert_eq!(a.recv_bytes()?, b"hello");
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a capacity of 0 or above 256 MiB;
    /// [`Error::Io`] if the memfd or the ends' descriptors cannot be made.
    // Python's `Pipe()` returns both ends: so does `new`.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(capacity: usize) -> Result<(Connection, Connection)> {
        Self::make(None, capacity, 2)
    }

    /// A new anonymous one-way pipe: `(receiver, sender)`, as Python's
    /// `Pipe(duplex=False)` returns `(r, w)`. The receiver is [`End::A`]
    /// and the sender [`End::B`]; sending on the receiver (or receiving on
    /// the sender) is [`Error::InvalidArgument`].
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let (mut r, mut w) = shmsync::Pipe::simplex(64)?;
    /// w.send_bytes(b"one way")?;
    /// assert_eq!(r.recv_bytes()?, b"one way");
    /// assert!(r.send_bytes(b"no").is_err());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn simplex(capacity: usize) -> Result<(Connection, Connection)> {
        Self::make(None, capacity, 1)
    }

    /// A new named duplex pipe (`/dev/shm/NAME`, made as every named
    /// object: `O_EXCL`, mode 0600): its two ends, of which this process
    /// keeps one or both; another process takes an end with
    /// [`Connection::open`].
    ///
    /// The name is unlinked when the last of the two handles returned is
    /// dropped in this process, unless [`Connection::persist`] was called.
    ///
    /// **Keep the other end's handle until its process has opened it**: an
    /// end that no process holds and that was never used counts as closed
    /// (that is how an end whose process died before its first use is
    /// detected), so dropping it before the peer's `open` would make this
    /// end's receives return [`Error::Disconnected`].
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// use shmsync::{Connection, End, Pipe};
    /// let name = format!("doc_pipe_{}", std::process::id());
    /// let (mut a, b) = Pipe::create(&name, 256)?;
    /// let mut far = Connection::open(&name, End::B)?; // in another process
    /// drop(b); // the peer holds end B now
    /// far.send_bytes(b"hi")?;
    /// assert_eq!(a.recv_bytes()?, b"hi");
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`Value::create`](crate::Value::create) (a bad or taken name)
    /// and [`new`](Self::new).
    pub fn create(name: &str, capacity: usize) -> Result<(Connection, Connection)> {
        Self::make(Some(name), capacity, 2)
    }

    /// A new named one-way pipe: `(receiver, sender)`, as
    /// [`simplex`](Self::simplex) and [`create`](Self::create).
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let name = format!("doc_pipe_s_{}", std::process::id());
    /// let (mut r, w) = shmsync::Pipe::create_simplex(&name, 256)?;
    /// let mut w2 = shmsync::Connection::open(&name, shmsync::End::B)?;
    /// drop(w);
    /// w2.send_bytes(b"x")?;
    /// assert_eq!(r.recv_bytes()?, b"x");
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`create`](Self::create).
    pub fn create_simplex(name: &str, capacity: usize) -> Result<(Connection, Connection)> {
        Self::make(Some(name), capacity, 1)
    }

    fn make(name: Option<&str>, capacity: usize, rings: usize) -> Result<(Connection, Connection)> {
        if spsc::ring_bytes(capacity).is_none() {
            return Err(Error::InvalidArgument(
                "pipe capacity must be between 1 byte and 256 MiB",
            ));
        }
        let seg = Arc::new(PipeSeg::create_object(name, (capacity, rings), None)?);
        Ok((
            Connection::attach(seg.clone(), End::A)?,
            Connection::attach(seg, End::B)?,
        ))
    }
}

/// What the process using an end keeps to itself.
#[derive(Debug, Clone, Copy)]
struct Taken {
    /// [`liveness::fork_generation`] when the end was taken: a copy of the
    /// handle in a forked child has not taken it.
    gen: u32,
    send: Option<Producer>,
    recv: Option<Consumer>,
}

/// One end of a [`Pipe`]: Python's `Connection` (`send_bytes`,
/// `recv_bytes`, `recv_bytes_into`, `poll`, `close`).
///
/// # Messages
///
/// A message is 0 to [`capacity`](Self::capacity) bytes, received whole,
/// once and in order; a longer one is an error ([`Error::MessageTooLarge`]),
/// never truncated. In the ring each message is framed by a 4-byte length
/// and padded to a multiple of 4 bytes. A send or receive makes no system
/// call unless the other side sleeps (a receive on an empty ring, or a
/// send into a full one, spins briefly and then sleeps on a futex).
///
/// # Each end belongs to one process
///
/// An end is **taken** by the first process that sends, receives or polls
/// on it, and from then on it is that process's: another process using it
/// (or another handle of it in the same process, such as a second
/// [`open`](Self::open)) gets [`Error::EndInUse`]. Operations take
/// `&mut self`, so the threads of the owning process use it one at a
/// time. The pattern of Python's `Pipe` works: create the pipe, `fork`,
/// and let each process use one end and drop the other. A forked child
/// inherits both handles but has taken neither: it may use an end that
/// its parent never used. A handle may also be sent to another thread.
///
/// # Closing, and processes that die
///
/// When the process that uses an end drops it (or calls
/// [`close`](Self::close)), or dies, the other end's receives return
/// what was sent before and then [`Error::Disconnected`], and its sends
/// fail with `Disconnected`. An end that was never used counts as closed
/// once no process holds a handle of it (every copy dropped, every
/// process that inherited one gone): keep the other end's handle until
/// its process has it. Dropping a handle of an end that this process has
/// not taken (the parent's copy of the child's end) closes nothing.
///
/// A death is detected without any help from the dead: a waiting receive
/// or send sleeps at most 50 ms at a time and then asks the kernel
/// whether the other end's process still holds it (a lock on a byte of
/// the pipe's file that the kernel drops when the process dies). So a
/// receive on an empty pipe, or a send into a full one, reports a dead
/// peer within about 50 ms; the `try_` forms and [`poll`](Self::poll) ask
/// at once when there is nothing to do. A send that finds room does not
/// ask (that would cost two system calls per message): at most a ring's
/// worth of messages can be sent into a pipe whose reader died before a
/// send notices. A process killed at any instruction loses at most the
/// message it was sending (never published) or receiving (never freed):
/// no message is torn or delivered twice.
///
/// ```
/// # fn main() -> Result<(), shmsync::Error> {
/// let (mut a, mut b) = shmsync::Pipe::new(16)?;
/// a.send_bytes(b"last words")?;
/// a.close()?;
/// assert_eq!(b.recv_bytes()?, b"last words");
/// assert_eq!(b.recv_bytes(), Err(shmsync::Error::Disconnected));
/// assert_eq!(b.send_bytes(b"?"), Err(shmsync::Error::Disconnected));
/// # Ok(()) }
/// ```
pub struct Connection {
    pipe: Arc<PipeSeg>,
    end: End,
    /// This handle's description, read-locking the end's `HOLD` byte.
    hold: HandleClaim,
    taken: Option<Taken>,
    /// An operation of this handle reported `Disconnected`: the later ones
    /// do so at once (a send that finds room does not probe the peer).
    disconnected: bool,
}

// SAFETY: `pipe.words` points at atomics in a shared mapping that
// `pipe.seg` keeps alive; the handle's private state moves with it.
unsafe impl Send for Connection {}
// SAFETY: every `&self` method only loads atomics of the mapping.
unsafe impl Sync for Connection {}
// SAFETY: as for `Connection` (the pointer is only read through `&self`).
unsafe impl Send for PipeSeg {}
// SAFETY: as above.
unsafe impl Sync for PipeSeg {}

impl Connection {
    fn attach(pipe: Arc<PipeSeg>, end: End) -> Result<Connection> {
        // Registers the fork counter's handler (`liveness::fork_generation`).
        let _ = crate::sys::thread::tid();
        let hold = HandleClaim::take(pipe.seg.fd(), HOLD + end.index() as u32)?;
        Ok(Connection {
            pipe,
            end,
            hold,
            taken: None,
            disconnected: false,
        })
    }

    /// Opens end `end` of the pipe created under `name` by any process.
    ///
    /// The handle holds the end from now on (see [`Pipe::create`]); the
    /// end is taken at its first use.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// use shmsync::{Connection, End, Pipe};
    /// let name = format!("doc_pipe_open_{}", std::process::id());
    /// let (a, b) = Pipe::create(&name, 64)?;
    /// let mut a2 = Connection::open(&name, End::A)?;
    /// let mut b2 = Connection::open(&name, End::B)?;
    /// drop((a, b)); // never used: closes nothing
    /// a2.send_bytes(b"x")?;
    /// assert_eq!(b2.recv_bytes()?, b"x");
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`Event::open`](crate::Event::open) (`NotFound`, `TypeMismatch`
    /// for another kind of object, a damaged segment, ...), and
    /// [`Error::Corrupt`] for a pipe whose geometry does not match its
    /// file.
    pub fn open(name: &str, end: End) -> Result<Connection> {
        Self::attach(Arc::new(PipeSeg::open_object(name)?), end)
    }

    /// Attaches end `end` of the pipe behind `fd` (from
    /// [`AsFd::as_fd`](std::os::fd::AsFd::as_fd) of a handle in another
    /// process, inherited or passed over a Unix socket).
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::os::fd::AsFd;
    /// let (mut a, b) = shmsync::Pipe::new(64)?;
    /// let fd = b.as_fd().try_clone_to_owned()?;
    /// let mut b2 = shmsync::Connection::from_fd(fd, shmsync::End::B)?;
    /// drop(b);
    /// b2.send_bytes(b"x")?;
    /// assert_eq!(a.recv_bytes()?, b"x");
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`Event::from_fd`](crate::Event::from_fd), and as
    /// [`open`](Self::open).
    pub fn from_fd(fd: OwnedFd, end: End) -> Result<Connection> {
        Self::attach(Arc::new(PipeSeg::from_fd_object(fd, None)?), end)
    }

    /// Which end this is.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let (a, b) = shmsync::Pipe::new(8)?;
    /// assert_eq!((a.end(), b.end()), (shmsync::End::A, shmsync::End::B));
    /// # Ok(()) }
    /// ```
    pub fn end(&self) -> End {
        self.end
    }

    /// The largest message, in bytes.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let (a, _b) = shmsync::Pipe::new(100)?;
    /// assert_eq!(a.capacity(), 100);
    /// # Ok(()) }
    /// ```
    pub fn capacity(&self) -> usize {
        self.pipe.capacity
    }

    /// Whether both ends send and receive.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// assert!(shmsync::Pipe::new(8)?.0.is_duplex());
    /// assert!(!shmsync::Pipe::simplex(8)?.0.is_duplex());
    /// # Ok(()) }
    /// ```
    pub fn is_duplex(&self) -> bool {
        self.pipe.rings == 2
    }

    /// The segment's name (without a leading `/`), `None` if anonymous.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// assert_eq!(shmsync::Pipe::new(8)?.0.name(), None);
    /// # Ok(()) }
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.pipe.seg.name()
    }

    /// Keeps the name after the creating handles are dropped.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let name = format!("doc_pipe_persist_{}", std::process::id());
    /// let (a, b) = shmsync::Pipe::create(&name, 8)?;
    /// a.persist();
    /// drop((a, b));
    /// let again = shmsync::Connection::open(&name, shmsync::End::A)?;
    /// again.unlink()?;
    /// # Ok(()) }
    /// ```
    pub fn persist(&self) {
        self.pipe.seg.persist();
    }

    /// Removes the name now; attached handles keep working.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let name = format!("doc_pipe_unlink_{}", std::process::id());
    /// let (a, _b) = shmsync::Pipe::create(&name, 8)?;
    /// a.unlink()?;
    /// assert!(shmsync::Connection::open(&name, shmsync::End::A).is_err());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::NotFound`] if already removed,
    /// [`Error::InvalidArgument`] if anonymous.
    pub fn unlink(&self) -> Result<()> {
        self.pipe.seg.unlink()
    }

    fn word(&self, i: usize) -> &AtomicU32 {
        debug_assert!(i < self.pipe.count);
        // SAFETY: every index used is below CTRL ≤ count (validated in
        // `wrap`); the mapping lives as long as `self.pipe.seg`; atomics
        // only.
        unsafe { &*self.pipe.words.add(i) }
    }

    /// Ring `r` (`r < rings`).
    fn ring(&self, r: usize) -> Ring<'_, AtomicU32, AtomicU32> {
        let p = &*self.pipe;
        let head = self.word(W_RING + 32 * r);
        let tail = self.word(W_RING + 32 * r + 16);
        // SAFETY: ring `r` < rings has `ring_words` words from
        // CTRL + r * ring_words, inside `count` (validated: count = CTRL +
        // rings * ring_words); 4-aligned; atomics only, alive with `seg`.
        let data = unsafe {
            core::slice::from_raw_parts(p.words.add(CTRL + r * p.ring_words), p.ring_words)
        };
        match Ring::new(head, tail, data, p.capacity) {
            Some(ring) => ring,
            // The geometry was checked against `ring_bytes` in `wrap`.
            None => unreachable!("pipe geometry validated at attach"),
        }
    }

    /// The ring this end receives from, if any.
    fn recv_ring(&self) -> Option<usize> {
        let r = self.end.index();
        (r < self.pipe.rings).then_some(r)
    }

    /// The ring this end sends into, if any.
    fn send_ring(&self) -> Option<usize> {
        let r = self.end.peer().index();
        (r < self.pipe.rings).then_some(r)
    }

    /// Whether the other end is gone (see the type's docs): its user's
    /// claim, or if nobody used it, every handle's hold, is no longer
    /// held by any process.
    fn peer_gone(&self) -> bool {
        let peer = self.end.peer().index();
        // Acquire: a peer that set USED holds its claim from before.
        let used = self.word(W_FLAGS + peer).load(Acquire) & USED != 0;
        let byte = if used { TAKEN } else { HOLD } + peer as u32;
        self.hold.held_elsewhere(byte) == Some(false)
    }

    /// This process's use of the end, taking the end at the first call in
    /// this process.
    #[inline]
    fn taken(&mut self) -> Result<Taken> {
        if self.disconnected {
            return Err(Error::Disconnected);
        }
        match self.taken {
            Some(t) if t.gen == liveness::fork_generation() => Ok(t),
            _ => self.take(),
        }
    }

    #[cold]
    fn take(&mut self) -> Result<Taken> {
        let e = self.end.index();
        let flags = self.word(W_FLAGS + e);
        let gone_or_busy = |hold: &HandleClaim| {
            if hold.held_elsewhere(TAKEN + e as u32) == Some(true) {
                Error::EndInUse
            } else {
                // Used by a process that closed it or died.
                Error::Disconnected
            }
        };
        // Relaxed: re-checked below, after the claim.
        if flags.load(Relaxed) & USED != 0 {
            return Err(gone_or_busy(&self.hold));
        }
        let seg = &self.pipe.seg;
        if !seg.liveness.claim(seg.fd(), &self.hold, TAKEN + e as u32)? {
            return Err(Error::EndInUse);
        }
        // Relaxed: the flag is judged together with the claim, which the
        // kernel orders.
        if flags.fetch_or(USED, Relaxed) & USED != 0 {
            // Used and given up between the check and the claim.
            seg.liveness.release(TAKEN + e as u32);
            return Err(Error::Disconnected);
        }
        let max = self.pipe.capacity;
        let ring_err = |e: RingError| ring_error(e, 0, max);
        let t = Taken {
            gen: liveness::fork_generation(),
            send: match self.send_ring() {
                Some(r) => Some(self.ring(r).producer().map_err(ring_err)?),
                None => None,
            },
            recv: match self.recv_ring() {
                Some(r) => Some(self.ring(r).consumer().map_err(ring_err)?),
                None => None,
            },
        };
        self.taken = Some(t);
        Ok(t)
    }

    fn send_with(&mut self, msg: &[u8], block: bool, timeout: Option<Duration>) -> Result<bool> {
        let t = self.taken()?;
        let (Some(r), Some(mut p)) = (self.send_ring(), t.send) else {
            return Err(Error::InvalidArgument(
                "the receiving end of a simplex pipe cannot send",
            ));
        };
        let mut until = timeout.and_then(Until::after);
        let mut gone = || self.peer_gone();
        let mut wait = Wait {
            block,
            deadline: until.as_mut().map(|u| u as &mut dyn crate::raw::Deadline),
            peer_dead: &mut gone,
        };
        let sent = self.ring(r).send(&mut p, msg, &mut wait);
        if let Some(t) = &mut self.taken {
            t.send = Some(p);
        }
        self.disconnected |= sent == Err(RingError::Disconnected);
        sent.map_err(|e| ring_error(e, msg.len(), self.pipe.capacity))
    }

    fn recv_with(
        &mut self,
        out: Out<'_>,
        block: bool,
        timeout: Option<Duration>,
    ) -> Result<Option<usize>> {
        let t = self.taken()?;
        let (Some(r), Some(mut c)) = (self.recv_ring(), t.recv) else {
            return Err(Error::InvalidArgument(
                "the sending end of a simplex pipe cannot receive",
            ));
        };
        let buf_len = match &out {
            Out::Slice(s) => s.len(),
            Out::Vec(_) => 0,
        };
        let mut until = timeout.and_then(Until::after);
        let mut gone = || self.peer_gone();
        let mut wait = Wait {
            block,
            deadline: until.as_mut().map(|u| u as &mut dyn crate::raw::Deadline),
            peer_dead: &mut gone,
        };
        let got = self.ring(r).recv(&mut c, out, &mut wait);
        if let Some(t) = &mut self.taken {
            t.recv = Some(c);
        }
        self.disconnected |= got == Err(RingError::Disconnected);
        got.map_err(|e| ring_error(e, buf_len, self.pipe.capacity))
    }

    /// Sends `msg` as one message, waiting while the pipe is full.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let (mut a, mut b) = shmsync::Pipe::new(8)?;
    /// a.send_bytes(b"")?; // empty messages are messages
    /// assert_eq!(b.recv_bytes()?, b"");
    /// assert!(a.send_bytes(&[0; 9]).is_err()); // longer than the capacity
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::MessageTooLarge`] for a message longer than
    /// [`capacity`](Self::capacity); [`Error::InvalidArgument`] on the
    /// receiving end of a simplex pipe;
    /// [`Error::Disconnected`] when the other end is closed or its process
    /// died; [`Error::EndInUse`] when another process uses this end;
    /// [`Error::Corrupt`] when the pipe's words were scribbled over by a
    /// peer; [`Error::Io`] if this process's description of the file
    /// cannot be opened (first use only).
    pub fn send_bytes(&mut self, msg: &[u8]) -> Result<()> {
        self.send_with(msg, true, None).map(|_| ())
    }

    /// Sends `msg` if there is room now: `Ok(false)` if the pipe is full.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let (mut a, _b) = shmsync::Pipe::new(4)?; // an 8-byte ring
    /// assert!(a.try_send_bytes(b"full")?);
    /// assert!(!a.try_send_bytes(b"")?);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`send_bytes`](Self::send_bytes).
    pub fn try_send_bytes(&mut self, msg: &[u8]) -> Result<bool> {
        self.send_with(msg, false, None)
    }

    /// Sends `msg`, waiting at most `timeout` for room: `Ok(false)` if
    /// there was none in time. A timeout too large for the clock waits
    /// without limit.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// use std::time::Duration;
    /// let (mut a, _b) = shmsync::Pipe::new(4)?;
    /// assert!(a.send_bytes_timeout(b"full", Duration::from_millis(1))?);
    /// assert!(!a.send_bytes_timeout(b"", Duration::from_millis(1))?);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`send_bytes`](Self::send_bytes).
    pub fn send_bytes_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<bool> {
        self.send_with(msg, true, Some(timeout))
    }

    /// Receives the next message, waiting for one.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let (mut a, mut b) = shmsync::Pipe::new(8)?;
    /// a.send_bytes(b"1")?;
    /// a.send_bytes(b"22")?;
    /// assert_eq!(b.recv_bytes()?, b"1");
    /// assert_eq!(b.recv_bytes()?, b"22");
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Disconnected`] once every message sent before the other
    /// end was closed (or its process died) has been received;
    /// [`Error::InvalidArgument`] on the sending end of a simplex pipe;
    /// [`Error::EndInUse`], [`Error::Corrupt`] and [`Error::Io`] as for
    /// [`send_bytes`](Self::send_bytes).
    pub fn recv_bytes(&mut self) -> Result<Vec<u8>> {
        let mut v = Vec::new();
        self.recv_with(Out::Vec(&mut v), true, None)?;
        Ok(v)
    }

    /// Receives the next message if there is one now.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let (mut a, mut b) = shmsync::Pipe::new(8)?;
    /// assert_eq!(b.try_recv_bytes()?, None);
    /// a.send_bytes(b"x")?;
    /// assert_eq!(b.try_recv_bytes()?, Some(b"x".to_vec()));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`recv_bytes`](Self::recv_bytes) (on an empty pipe it asks
    /// whether the other end is gone: two system calls).
    pub fn try_recv_bytes(&mut self) -> Result<Option<Vec<u8>>> {
        let mut v = Vec::new();
        Ok(self.recv_with(Out::Vec(&mut v), false, None)?.map(|_| v))
    }

    /// Receives the next message, waiting at most `timeout`: `Ok(None)` if
    /// none came in time.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// use std::time::Duration;
    /// let (mut a, mut b) = shmsync::Pipe::new(8)?;
    /// assert_eq!(b.recv_bytes_timeout(Duration::from_millis(2))?, None);
    /// a.send_bytes(b"x")?;
    /// assert_eq!(b.recv_bytes_timeout(Duration::from_millis(2))?, Some(b"x".to_vec()));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`recv_bytes`](Self::recv_bytes).
    pub fn recv_bytes_timeout(&mut self, timeout: Duration) -> Result<Option<Vec<u8>>> {
        let mut v = Vec::new();
        Ok(self
            .recv_with(Out::Vec(&mut v), true, Some(timeout))?
            .map(|_| v))
    }

    /// Receives the next message into the start of `buf`, waiting for one:
    /// its length. A message longer than `buf` is an error and stays in
    /// the pipe (Python raises `BufferTooShort`).
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let (mut a, mut b) = shmsync::Pipe::new(8)?;
    /// a.send_bytes(b"12345")?;
    /// let mut small = [0u8; 4];
    /// assert!(b.recv_bytes_into(&mut small).is_err()); // nothing lost
    /// let mut buf = [0u8; 8];
    /// let n = b.recv_bytes_into(&mut buf)?;
    /// assert_eq!(&buf[..n], b"12345");
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`] for too short a buffer (the message stays
    /// in the pipe); otherwise as
    /// [`recv_bytes`](Self::recv_bytes).
    pub fn recv_bytes_into(&mut self, buf: &mut [u8]) -> Result<usize> {
        match self.recv_with(Out::Slice(buf), true, None)? {
            Some(n) => Ok(n),
            // A blocking receive without deadline returns a message or an
            // error.
            None => Err(Error::Disconnected),
        }
    }

    /// Whether a receive would not block: a message is ready, or the other
    /// end is gone (the receive then returns [`Error::Disconnected`]), as
    /// Python's `poll`. Waits at most `timeout` (`Duration::ZERO`: just
    /// looks).
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// use std::time::Duration;
    /// let (mut a, mut b) = shmsync::Pipe::new(8)?;
    /// assert!(!b.poll(Duration::ZERO)?);
    /// a.send_bytes(b"x")?;
    /// assert!(b.poll(Duration::from_secs(1))?);
    /// drop(a);
    /// b.recv_bytes()?;
    /// assert!(b.poll(Duration::ZERO)?); // end of file
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] on the sending end of a simplex pipe;
    /// [`Error::EndInUse`], [`Error::Corrupt`] and [`Error::Io`] as for
    /// [`recv_bytes`](Self::recv_bytes).
    pub fn poll(&mut self, timeout: Duration) -> Result<bool> {
        if self.disconnected {
            return Ok(true);
        }
        let t = self.taken()?;
        let (Some(r), Some(c)) = (self.recv_ring(), t.recv) else {
            return Err(Error::InvalidArgument(
                "the sending end of a simplex pipe cannot receive",
            ));
        };
        let mut until = Until::after(timeout);
        let mut gone = || self.peer_gone();
        let mut wait = Wait {
            block: !timeout.is_zero(),
            deadline: until.as_mut().map(|u| u as &mut dyn crate::raw::Deadline),
            peer_dead: &mut gone,
        };
        let ready = self.ring(r).poll(&c, &mut wait);
        match ready {
            Ok(ready) => Ok(ready),
            Err(RingError::Disconnected) => {
                self.disconnected = true;
                Ok(true)
            }
            Err(e) => Err(ring_error(e, 0, self.pipe.capacity)),
        }
    }

    /// Closes this handle, as dropping it does: if this process has taken
    /// the end, the other end's receives drain and then return
    /// [`Error::Disconnected`], and its sends fail.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let (mut a, b) = shmsync::Pipe::new(8)?;
    /// b.close()?;
    /// assert_eq!(a.recv_bytes(), Err(shmsync::Error::Disconnected));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// None today; kept for the descriptor's close in the future.
    pub fn close(self) -> Result<()> {
        drop(self);
        Ok(())
    }

    #[cfg(feature = "serde")]
    /// Sends `value` serialised with [`postcard`](https://docs.rs/postcard)
    /// as one message (Python's `send(obj)`; feature `serde`).
    ///
    /// postcard is a compact, stable (1.0 wire format) and `no_std` serde
    /// format with a specified encoding, maintained under the Rust
    /// Embedded working group's umbrella; it writes into a caller's
    /// buffer without allocating.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let (mut a, mut b) = shmsync::Pipe::new(256)?;
    /// a.send(&(7u32, String::from("seven")))?;
    /// let (n, s): (u32, String) = b.recv()?;
    /// assert_eq!((n, s.as_str()), (7, "seven"));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Serialization`] if the value does not serialise;
    /// otherwise as [`send_bytes`](Self::send_bytes) (an encoding longer
    /// than the capacity: [`Error::MessageTooLarge`]).
    pub fn send<T: serde::Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        let bytes =
            postcard::to_allocvec(value).map_err(|e| Error::Serialization(e.to_string()))?;
        self.send_bytes(&bytes)
    }

    #[cfg(feature = "serde")]
    /// Receives a message sent by [`send`](Self::send) and deserialises it
    /// (Python's `recv()`; feature `serde`).
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let (mut a, mut b) = shmsync::Pipe::new(64)?;
    /// a.send(&vec![1u8, 2, 3])?;
    /// assert_eq!(b.recv::<Vec<u8>>()?, [1, 2, 3]);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Serialization`] if the message does not decode as a `T`
    /// (it is consumed); otherwise as [`recv_bytes`](Self::recv_bytes).
    pub fn recv<T: serde::de::DeserializeOwned>(&mut self) -> Result<T> {
        let bytes = self.recv_bytes()?;
        postcard::from_bytes(&bytes).map_err(|e| Error::Serialization(e.to_string()))
    }
}

/// The public error of a ring error; `len`: the caller's message or
/// buffer length, `max`: the pipe's capacity. The same errors as the
/// queues' (`MessageTooLarge`, `BufferTooSmall`).
fn ring_error(e: RingError, len: usize, max: usize) -> Error {
    match e {
        RingError::Disconnected => Error::Disconnected,
        RingError::Corrupt => Error::Corrupt("pipe positions or message length"),
        RingError::TooLarge => Error::MessageTooLarge { len, max },
        RingError::BufferTooSmall { needed } => Error::BufferTooSmall { needed, len },
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let Some(t) = self.taken else { return };
        if t.gen != liveness::fork_generation() {
            // A forked child's copy: the end is its parent's.
            return;
        }
        if let Some(r) = self.send_ring() {
            self.ring(r).close_producer();
        }
        if let Some(r) = self.recv_ring() {
            self.ring(r).close_consumer();
        }
        self.pipe
            .seg
            .liveness
            .release(TAKEN + self.end.index() as u32);
    }
}

impl std::os::fd::AsFd for Connection {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.pipe.seg.fd()
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("name", &self.name())
            .field("end", &self.end)
            .field("capacity", &self.pipe.capacity)
            .field("duplex", &self.is_duplex())
            .field("taken", &self.taken.is_some())
            .finish()
    }
}
