#![allow(unsafe_code)] // message bytes copied in and out of the mapping as atomic words
//! [`MessageQueue`]: variable-length byte messages on the ring of
//! `src/raw/ring.rs`.

use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use core::time::Duration;

use super::{error, RingInit, RingSeg};
use crate::error::{Error, Result};
use crate::raw::{Deadline, RingError};
use crate::shared::SharedObject;
use crate::shm::object::{ElemDesc, Kind, LockMode, Object, Shape};
use crate::shm::segment::Segment;
use crate::sync::{RLock, Until};

/// The header's element: 8-byte words (the area is counted in them).
const WORD: ElemDesc = ElemDesc {
    code: 0,
    size: 8,
    align: 8,
};

/// The largest maximum message size: a slot (length word and body) stays
/// below 2^30 bytes.
const MAX_MESSAGE: usize = (1 << 30) - 16;

/// A bounded multi-producer multi-consumer queue of byte messages of any
/// length up to a maximum fixed at creation (at most 2^30 − 16 bytes), shared by threads and
/// processes (the shape of Boost.Interprocess's `message_queue`, without
/// priorities).
///
/// Each of its `capacity` slots holds one message: [`send`](Self::send)
/// copies the bytes in, [`recv`](Self::recv) copies them out (into a new
/// `Vec`, or into your buffer with [`recv_into`](Self::recv_into)). A
/// message longer than the maximum is refused with
/// [`Error::MessageTooLarge`], never truncated; a buffer too short for the
/// next message gets [`Error::BufferTooSmall`], and the message stays at
/// the front. `try_` and `_timeout` forms, [`close`](Self::close) and the
/// death guarantee are those of [`Queue`](crate::Queue): a process killed
/// inside `send` or `recv` never blocks the others, no message is delivered
/// twice or torn, at most the message it was moving is lost, and the loss
/// is counted in [`lost`](Self::lost).
///
/// ```
/// # fn main() -> Result<(), shmsync::Error> {
/// let q = shmsync::MessageQueue::new(8, 64)?; // 8 messages of up to 64 bytes
/// q.send(b"hello")?;
/// q.send(b"")?;
/// assert_eq!(q.recv()?, b"hello");
/// assert_eq!(q.recv()?, b"");
/// assert!(matches!(q.send(&[0; 65]), Err(shmsync::Error::MessageTooLarge { .. })));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct MessageQueue {
    ring: RingSeg,
    /// The maximum message size (validated: the slot size less the length
    /// word, rounded down to what the creator allowed).
    max: usize,
}

impl SharedObject for MessageQueue {
    const SHAPE: Shape = Shape {
        kind: Kind::MessageQueue,
        elem: WORD,
        strides: [8, 8],
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
        let ring = RingSeg::wrap(obj, None, 8, 8)?;
        if ring.slot_bytes < 8 || ring.slot_bytes - 8 > MAX_MESSAGE.next_multiple_of(8) {
            return Err(Error::Corrupt("message queue slot size"));
        }
        let max = ring.slot_bytes - 8;
        Ok(MessageQueue { ring, max })
    }

    fn segment(&self) -> &Segment {
        self.ring.segment()
    }
}

impl MessageQueue {
    fn init(capacity: usize, max_size: usize) -> Result<RingInit> {
        if max_size > MAX_MESSAGE {
            return Err(Error::InvalidArgument("maximum message size too large"));
        }
        RingInit::new(capacity, 8 + max_size.next_multiple_of(8), 8, 8)
    }
}

crate::shared::shared_object! {
    impl[] MessageQueue: "message queue", "shmsync::MessageQueue";
    new(capacity: usize, max_size: usize) => Self::init(capacity, max_size)?;
        " with room for `capacity` messages (at least 1) of up to `max_size` bytes \
         each (rounded up to a multiple of 8)", "new(4, 100)", "create(&name, 4, 100)";
}

/// The slot's words: its length, then its body.
struct Slot(*mut u8);

impl Slot {
    #[inline]
    fn word(&self, k: usize) -> &AtomicU64 {
        // SAFETY: (callers) `k` is below the slot's word count (`1 +
        // max / 8`); the slot lies in the validated area, 8-aligned (the
        // payloads start 8-aligned and slots are a multiple of 8 bytes),
        // and its words are only ever accessed as `AtomicU64`s.
        unsafe { AtomicU64::from_ptr(self.0.add(8 * k).cast()) }
    }
}

impl MessageQueue {
    #[inline]
    fn slot(&self, i: usize) -> Slot {
        Slot(self.ring.payload(i))
    }

    /// The length recorded in slot `i`, clamped to the maximum (a peer may
    /// have written anything).
    #[inline]
    fn len_of(&self, i: usize) -> usize {
        // Relaxed: ordered by the slot word (the ring's Acquire).
        let n = self.slot(i).word(0).load(Relaxed);
        usize::try_from(n).map_or(self.max, |n| n.min(self.max))
    }

    fn write<'a>(&'a self, msg: &'a [u8]) -> impl FnOnce(usize) + 'a {
        move |i| {
            let s = self.slot(i);
            // Relaxed (all): published by the ring's Release.
            s.word(0).store(msg.len() as u64, Relaxed);
            let mut chunks = msg.chunks_exact(8);
            let mut k = 1;
            for c in &mut chunks {
                let mut b = [0u8; 8];
                b.copy_from_slice(c);
                s.word(k).store(u64::from_ne_bytes(b), Relaxed);
                k += 1;
            }
            let rest = chunks.remainder();
            if !rest.is_empty() {
                let mut b = [0u8; 8];
                b[..rest.len()].copy_from_slice(rest);
                s.word(k).store(u64::from_ne_bytes(b), Relaxed);
            }
        }
    }

    /// Copies slot `i`'s message (of length `n` ≤ max) into `out[..n]`.
    fn copy_out(&self, i: usize, out: &mut [u8]) {
        let s = self.slot(i);
        let mut chunks = out.chunks_exact_mut(8);
        let mut k = 1;
        for c in &mut chunks {
            // Relaxed: ordered by the ring's Acquire.
            c.copy_from_slice(&s.word(k).load(Relaxed).to_ne_bytes());
            k += 1;
        }
        let rest = chunks.into_remainder();
        if !rest.is_empty() {
            let n = rest.len();
            rest.copy_from_slice(&s.word(k).load(Relaxed).to_ne_bytes()[..n]);
        }
    }

    fn check(&self, msg: &[u8]) -> Result<()> {
        if msg.len() > self.max {
            return Err(Error::MessageTooLarge {
                len: msg.len(),
                max: self.max,
            });
        }
        Ok(())
    }

    fn send_until(&self, msg: &[u8], deadline: Option<&mut dyn Deadline>) -> Result<()> {
        self.check(msg)?;
        let me = self.ring.me();
        self.ring
            .ring()
            .put(me, deadline, &mut self.ring.probe(), self.write(msg))
            .map(drop)
            .map_err(error)
    }

    fn recv_vec(&self, deadline: Option<&mut dyn Deadline>, wait: bool) -> Result<Vec<u8>> {
        let me = self.ring.me();
        let mut out = Vec::new();
        let read = |i: usize| {
            out.resize(self.len_of(i), 0);
            self.copy_out(i, &mut out);
        };
        let ring = self.ring.ring();
        let mut probe = self.ring.probe();
        let r = if wait {
            ring.get(me, deadline, &mut probe, &mut |_| true, read)
        } else {
            ring.try_get(me, &mut probe, &mut |_| true, read)
        };
        r.map_err(error)?;
        Ok(out)
    }

    fn recv_buf(
        &self,
        buf: &mut [u8],
        deadline: Option<&mut dyn Deadline>,
        wait: bool,
    ) -> Result<usize> {
        let me = self.ring.me();
        let cap = buf.len();
        let mut needed = 0;
        let mut accept = |i: usize| {
            needed = self.len_of(i);
            needed <= cap
        };
        let mut n = 0;
        let read = |i: usize| {
            // The length `accept` checked; a peer that rewrote it since
            // gets it cut to the buffer, never an out-of-range copy.
            n = self.len_of(i).min(cap);
            self.copy_out(i, &mut buf[..n]);
        };
        let ring = self.ring.ring();
        let mut probe = self.ring.probe();
        let r = if wait {
            ring.get(me, deadline, &mut probe, &mut accept, read)
        } else {
            ring.try_get(me, &mut probe, &mut accept, read)
        };
        match r {
            Ok(_) => Ok(n),
            Err(RingError::Refused) => Err(Error::BufferTooSmall { needed, len: cap }),
            Err(e) => Err(error(e)),
        }
    }

    /// Sends a copy of `msg`, waiting while the queue is full.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let q = shmsync::MessageQueue::new(2, 16)?;
    /// q.send(b"ping")?;
    /// assert_eq!(q.recv()?, b"ping");
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::MessageTooLarge`] (nothing is sent); [`Error::Closed`];
    /// [`Error::Corrupt`] if a peer scribbled the ring.
    pub fn send(&self, msg: &[u8]) -> Result<()> {
        self.send_until(msg, None)
    }

    /// Sends a copy of `msg` if there is room now.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let q = shmsync::MessageQueue::new(1, 16)?;
    /// q.try_send(b"a")?;
    /// assert_eq!(q.try_send(b"b"), Err(shmsync::Error::Full));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Full`] if there is no room; otherwise as
    /// [`send`](Self::send).
    pub fn try_send(&self, msg: &[u8]) -> Result<()> {
        self.check(msg)?;
        let me = self.ring.me();
        self.ring
            .ring()
            .try_put(me, &mut self.ring.probe(), self.write(msg))
            .map(drop)
            .map_err(error)
    }

    /// Sends a copy of `msg`, waiting at most `timeout` for room (a
    /// timeout too large for the clock waits forever).
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// use std::time::Duration;
    /// let q = shmsync::MessageQueue::new(1, 16)?;
    /// q.send_timeout(b"a", Duration::from_millis(5))?;
    /// let r = q.send_timeout(b"b", Duration::from_millis(5));
    /// assert_eq!(r, Err(shmsync::Error::Full));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Full`] if the timeout passed; otherwise as
    /// [`send`](Self::send).
    pub fn send_timeout(&self, msg: &[u8], timeout: Duration) -> Result<()> {
        match Until::after(timeout) {
            Some(mut d) => self.send_until(msg, Some(&mut d)),
            None => self.send_until(msg, None),
        }
    }

    /// Receives the message at the front, waiting while the queue is
    /// empty.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let q = shmsync::MessageQueue::new(2, 16)?;
    /// q.send(&[1, 2, 3])?;
    /// assert_eq!(q.recv()?, [1, 2, 3]);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Closed`] once closed and empty; [`Error::Corrupt`] if a
    /// peer scribbled the ring.
    pub fn recv(&self) -> Result<Vec<u8>> {
        self.recv_vec(None, true)
    }

    /// Receives the message at the front if there is one.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let q = shmsync::MessageQueue::new(2, 16)?;
    /// assert_eq!(q.try_recv(), Err(shmsync::Error::Empty));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Empty`] if there is none now; otherwise as
    /// [`recv`](Self::recv).
    pub fn try_recv(&self) -> Result<Vec<u8>> {
        self.recv_vec(None, false)
    }

    /// Receives the message at the front, waiting at most `timeout`.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// use std::time::Duration;
    /// let q = shmsync::MessageQueue::new(2, 16)?;
    /// assert_eq!(q.recv_timeout(Duration::from_millis(5)), Err(shmsync::Error::Empty));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Empty`] if the timeout passed; otherwise as
    /// [`recv`](Self::recv).
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Vec<u8>> {
        match Until::after(timeout) {
            Some(mut d) => self.recv_vec(Some(&mut d), true),
            None => self.recv_vec(None, true),
        }
    }

    /// Receives the message at the front into `buf`, waiting while the
    /// queue is empty; returns its length. If it is longer than `buf`,
    /// fails with [`Error::BufferTooSmall`] (saying how long it is) and
    /// leaves it at the front: nothing is lost or truncated.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let q = shmsync::MessageQueue::new(2, 16)?;
    /// q.send(b"hello")?;
    /// let mut small = [0; 2];
    /// assert_eq!(
    ///     q.recv_into(&mut small),
    ///     Err(shmsync::Error::BufferTooSmall { needed: 5, len: 2 })
    /// );
    /// let mut buf = [0; 16];
    /// let n = q.recv_into(&mut buf)?;
    /// assert_eq!(&buf[..n], b"hello");
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`]; otherwise as [`recv`](Self::recv).
    pub fn recv_into(&self, buf: &mut [u8]) -> Result<usize> {
        self.recv_buf(buf, None, true)
    }

    /// [`recv_into`](Self::recv_into) if there is a message now.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let q = shmsync::MessageQueue::new(2, 16)?;
    /// let mut buf = [0; 16];
    /// assert_eq!(q.try_recv_into(&mut buf), Err(shmsync::Error::Empty));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Empty`] if there is none now; otherwise as
    /// [`recv_into`](Self::recv_into).
    pub fn try_recv_into(&self, buf: &mut [u8]) -> Result<usize> {
        self.recv_buf(buf, None, false)
    }

    /// [`recv_into`](Self::recv_into), waiting at most `timeout`.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// use std::time::Duration;
    /// let q = shmsync::MessageQueue::new(2, 16)?;
    /// let mut buf = [0; 16];
    /// let r = q.recv_into_timeout(&mut buf, Duration::from_millis(5));
    /// assert_eq!(r, Err(shmsync::Error::Empty));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Empty`] if the timeout passed; otherwise as
    /// [`recv_into`](Self::recv_into).
    pub fn recv_into_timeout(&self, buf: &mut [u8], timeout: Duration) -> Result<usize> {
        match Until::after(timeout) {
            Some(mut d) => self.recv_buf(buf, Some(&mut d), true),
            None => self.recv_buf(buf, None, true),
        }
    }

    /// The largest message it takes, fixed at creation (the `max_size`
    /// given, rounded up to a multiple of 8).
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// assert_eq!(shmsync::MessageQueue::new(2, 100)?.max_size(), 104);
    /// # Ok(()) }
    /// ```
    pub fn max_size(&self) -> usize {
        self.max
    }

    /// The number of messages, approximately (see
    /// [`Queue::len`](crate::Queue::len)).
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let q = shmsync::MessageQueue::new(2, 8)?;
    /// q.send(b"x")?;
    /// assert_eq!(q.len(), 1);
    /// # Ok(()) }
    /// ```
    pub fn len(&self) -> usize {
        self.ring.ring().len()
    }

    /// Whether [`len`](Self::len) is 0.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// assert!(shmsync::MessageQueue::new(2, 8)?.is_empty());
    /// # Ok(()) }
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether [`len`](Self::len) is the capacity.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let q = shmsync::MessageQueue::new(1, 8)?;
    /// q.send(b"")?;
    /// assert!(q.is_full());
    /// # Ok(()) }
    /// ```
    pub fn is_full(&self) -> bool {
        self.len() == self.capacity()
    }

    /// The capacity in messages, fixed at creation.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// assert_eq!(shmsync::MessageQueue::new(3, 8)?.capacity(), 3);
    /// # Ok(()) }
    /// ```
    pub fn capacity(&self) -> usize {
        self.ring.cap as usize
    }

    /// Closes the queue for every process, as
    /// [`Queue::close`](crate::Queue::close): sends fail with
    /// [`Error::Closed`], receives drain and then fail with it.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let q = shmsync::MessageQueue::new(2, 8)?;
    /// q.send(b"last")?;
    /// q.close();
    /// assert_eq!(q.send(b"more"), Err(shmsync::Error::Closed));
    /// assert_eq!(q.recv()?, b"last");
    /// assert_eq!(q.recv(), Err(shmsync::Error::Closed));
    /// # Ok(()) }
    /// ```
    pub fn close(&self) -> bool {
        self.ring.ring().close()
    }

    /// Whether [`close`](Self::close) was called.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let q = shmsync::MessageQueue::new(2, 8)?;
    /// q.close();
    /// assert!(q.is_closed());
    /// # Ok(()) }
    /// ```
    pub fn is_closed(&self) -> bool {
        self.ring.ring().is_closed()
    }

    /// Messages lost to processes killed while moving them (see
    /// [`Queue::lost`](crate::Queue::lost)).
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// assert_eq!(shmsync::MessageQueue::new(2, 8)?.lost(), 0);
    /// # Ok(()) }
    /// ```
    pub fn lost(&self) -> u32 {
        let ring = self.ring.ring();
        ring.reap_dead(&mut self.ring.probe());
        ring.lost()
    }
}

/// Typed messages (feature `serde`): values encoded with
/// [postcard](https://docs.rs/postcard), a compact serde format (varint
/// integers, no schema, no padding) whose decoder treats its input as
/// untrusted: a malformed message is an error, never a panic.
#[cfg(feature = "serde")]
impl MessageQueue {
    fn encode<T: serde::Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
        postcard::to_allocvec(value).map_err(|e| Error::Serialization(e.to_string()))
    }

    fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
        postcard::from_bytes(bytes).map_err(|e| Error::Serialization(e.to_string()))
    }

    /// Sends `value`, encoded with postcard (Python's `put(obj)`), waiting
    /// while the queue is full.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let q = shmsync::MessageQueue::new(4, 64)?;
    /// q.send_value(&(7u32, "seven".to_string()))?;
    /// let (n, s): (u32, String) = q.recv_value()?;
    /// assert_eq!((n, s.as_str()), (7, "seven"));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Serialization`] if `value` cannot be encoded;
    /// [`Error::MessageTooLarge`] if its encoding exceeds the maximum;
    /// otherwise as [`send`](Self::send).
    pub fn send_value<T: serde::Serialize + ?Sized>(&self, value: &T) -> Result<()> {
        self.send(&Self::encode(value)?)
    }

    /// [`send_value`](Self::send_value) if there is room now.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let q = shmsync::MessageQueue::new(1, 16)?;
    /// q.try_send_value(&1.5f64)?;
    /// assert_eq!(q.try_send_value(&2.5f64), Err(shmsync::Error::Full));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`send_value`](Self::send_value) and [`try_send`](Self::try_send).
    pub fn try_send_value<T: serde::Serialize + ?Sized>(&self, value: &T) -> Result<()> {
        self.try_send(&Self::encode(value)?)
    }

    /// Receives the message at the front and decodes it as a `T` (Python's
    /// `get()`), waiting while the queue is empty. A message that is not a
    /// valid `T` is consumed and reported.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let q = shmsync::MessageQueue::new(4, 64)?;
    /// q.send_value(&vec![1u16, 2, 3])?;
    /// assert_eq!(q.recv_value::<Vec<u16>>()?, [1, 2, 3]);
    /// q.send(&[0xff])?; // not a bool
    /// assert!(matches!(q.recv_value::<bool>(), Err(shmsync::Error::Serialization(_))));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Serialization`] if the message does not decode as a `T`;
    /// otherwise as [`recv`](Self::recv).
    pub fn recv_value<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        Self::decode(&self.recv()?)
    }

    /// [`recv_value`](Self::recv_value) if there is a message now.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// let q = shmsync::MessageQueue::new(4, 64)?;
    /// assert_eq!(q.try_recv_value::<u8>(), Err(shmsync::Error::Empty));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`recv_value`](Self::recv_value) and [`try_recv`](Self::try_recv).
    pub fn try_recv_value<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        Self::decode(&self.try_recv()?)
    }

    /// [`recv_value`](Self::recv_value), waiting at most `timeout`.
    ///
    /// ```
    /// # fn main() -> Result<(), shmsync::Error> {
    /// use std::time::Duration;
    /// let q = shmsync::MessageQueue::new(4, 64)?;
    /// let r = q.recv_value_timeout::<u8>(Duration::from_millis(5));
    /// assert_eq!(r, Err(shmsync::Error::Empty));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`recv_value`](Self::recv_value) and
    /// [`recv_timeout`](Self::recv_timeout).
    pub fn recv_value_timeout<T: serde::de::DeserializeOwned>(
        &self,
        timeout: Duration,
    ) -> Result<T> {
        Self::decode(&self.recv_timeout(timeout)?)
    }
}

impl fmt::Debug for MessageQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageQueue")
            .field("name", &self.name())
            .field("capacity", &self.capacity())
            .field("max_size", &self.max)
            .field("len", &self.len())
            .field("closed", &self.is_closed())
            .finish()
    }
}

static_assertions::assert_impl_all!(MessageQueue: Send, Sync);
