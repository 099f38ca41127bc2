//! The single-producer single-consumer byte ring of [`crate::Pipe`]: one
//! per direction, written by one process and read by one other, with
//! variable-length messages, on two futex words and no lock.
//!
//! # The words
//!
//! `head` is the producer's word and `tail` the consumer's:
//!
//! | bits  | `head`                                   | `tail`                                   |
//! |-------|------------------------------------------|------------------------------------------|
//! | 0–29  | bytes ever published, mod 2³⁰ ([`POS_MASK`]) | bytes ever consumed, mod 2³⁰          |
//! | 30    | [`CLOSED`]: the producer closed its end  | [`CLOSED`]: the consumer closed its end  |
//! | 31    | [`WAITING`]: the consumer may sleep on it | [`WAITING`]: the producer may sleep on it |
//!
//! The position of each side is private to its process (a `Producer` or
//! `Consumer`, read from the page once when a process takes its end): the
//! page's copy is written, never believed. Only the *other* side's
//! position is read from the page, and `(head - tail) mod 2³⁰` must be a
//! multiple of 4 no larger than the ring, else the ring is
//! [`RingError::Corrupt`]. Every `u32` is a valid word: no value makes an
//! operation panic, index out of range or loop without bound.
//!
//! # The data
//!
//! The ring is a power of two of bytes (at most [`MAX_RING`]), as `u32`
//! words accessed only atomically (`Relaxed`, ordered by the positions).
//! A message is a 4-byte length word (the payload's length in bytes)
//! followed by its payload, padded with zeros to a multiple of 4: it uses
//! [`record_len`] bytes, and it may wrap around the end of the ring. A
//! length read from the page larger than the ring's maximum message or
//! than what was published is [`RingError::Corrupt`].
//!
//! # Transitions
//!
//! - *send*: wait for room (`tail` `Acquire`), write the record, then
//!   publish it with one `Release` swap of `head` to the new position; if
//!   the replaced value had `WAITING`, wake the consumer;
//! - *recv*: wait for a record (`head` `Acquire`), copy it out, then free
//!   it with one `Release` swap of `tail`; if the replaced value had
//!   `WAITING`, wake the producer;
//! - *sleep*: a side that must wait sets `WAITING` on the other side's
//!   word with a CAS and sleeps on that value (the swap that changes the
//!   word sees the bit: no lost wake, and no store-load fence);
//! - *close*: `fetch_or(CLOSED)` on one's own word, waking a sleeper.
//!
//! Nothing but these swaps is a read-modify-write on the fast path, and no
//! system call is made unless the other side has announced that it sleeps.
//! A side that must wait first gives its CPU away a few times
//! ([`FutexWord::YIELD_LIMIT`], as the event's waiters) and re-reads the
//! word, then sleeps; it does not spin: it would spin while the other side,
//! on the same or a busy core, needs the CPU to answer (the lock's spin
//! cut ping-pong round trips to about a half: `docs/BENCHMARKS.md`, "The
//! pipe").
//!
//! # Death
//!
//! No step holds anything: a side killed at any instruction leaves a
//! record either published (whole: the swap comes after the copy) or not
//! (lost), and a record either freed or not. A waiter never relies on a
//! wake: it sleeps in slices ([`SLICE_FIRST`] doubling to [`SLICE_MAX`])
//! and after each one that did not change its word asks the caller's
//! probe whether the other side is dead. A consumer returns
//! [`RingError::Disconnected`] only once the ring is empty (it drains
//! first); a producer as soon as the consumer is gone.
//!
//! # Ordering
//!
//! The producer's `Release` swap of `head` pairs with the consumer's
//! `Acquire` loads of it: the record's bytes are visible to a consumer that
//! sees the new position. The consumer's `Release` swap of `tail` pairs
//! with the producer's `Acquire` loads of it: the consumer's reads of a
//! record happen before the producer overwrites it. `CLOSED` is set with
//! `Release` and read with those `Acquire` loads.

use core::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use core::time::Duration;

use super::word::{yield_until, AtomicWord, Deadline, FutexWord};

/// Bits 0–29 of either word: a position in bytes, modulo 2³⁰.
pub const POS_MASK: u32 = (1 << 30) - 1;
/// Bit 30: this word's side closed its end.
pub const CLOSED: u32 = 1 << 30;
/// Bit 31: the other side may sleep on this word; the next change must
/// wake it.
pub const WAITING: u32 = 1 << 31;
/// The length word in front of every message.
pub const HEADER: usize = 4;
/// The largest ring in bytes (positions are taken modulo 2³⁰, which must
/// tell a full ring from an empty one).
pub const MAX_RING: usize = 1 << 29;
/// The largest maximum message: one always fits a ring of [`MAX_RING`].
pub const MAX_CAPACITY: usize = MAX_RING / 2;

/// The first sleep of a waiter before it re-reads its word and probes.
pub const SLICE_FIRST: Duration = Duration::from_millis(1);
/// The longest sleep of a waiter before it re-reads its word and probes
/// the other side: the bound on the time to notice a dead peer (plus the
/// probe itself).
pub const SLICE_MAX: Duration = Duration::from_millis(50);

/// What can go wrong on a ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingError {
    /// The other side closed its end or died (for a consumer: and
    /// everything it published has been received).
    Disconnected,
    /// The page holds positions or a length that no honest peer writes.
    Corrupt,
    /// A message longer than the ring's maximum.
    TooLarge,
    /// The receiver's buffer is shorter than the next message, which stays
    /// in the ring.
    BufferTooSmall {
        /// The message's length.
        needed: usize,
    },
}

/// The bytes a message of `len` bytes uses in the ring: the length word
/// and the payload rounded up to 4. `None` on overflow.
pub const fn record_len(len: usize) -> Option<usize> {
    match len.checked_add(HEADER + 3) {
        Some(n) => Some(n & !3),
        None => None,
    }
}

/// The ring size in bytes for messages of at most `capacity` bytes: the
/// smallest power of two holding one such record. `None` for 0 or more
/// than [`MAX_CAPACITY`].
pub const fn ring_bytes(capacity: usize) -> Option<usize> {
    if capacity == 0 || capacity > MAX_CAPACITY {
        return None;
    }
    match record_len(capacity) {
        Some(n) => Some(n.next_power_of_two()),
        None => None,
    }
}

/// The producer's private position (bytes published, mod 2³⁰).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Producer {
    pos: u32,
}

/// The consumer's private position (bytes consumed, mod 2³⁰).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Consumer {
    pos: u32,
}

impl Producer {
    /// The position.
    pub fn pos(&self) -> u32 {
        self.pos
    }
}

impl Consumer {
    /// The position.
    pub fn pos(&self) -> u32 {
        self.pos
    }
}

/// How a call may wait.
pub struct Wait<'a> {
    /// `false`: never sleep (the `try_` forms).
    pub block: bool,
    /// The time budget of a blocking call, `None` for no limit.
    pub deadline: Option<&'a mut dyn Deadline>,
    /// Whether the other side is known to be dead; `false` when unsure. A
    /// `true` must acquire the death (the dead side's last writes happen
    /// before it), as [`super::Liveness::owner_is_dead`].
    pub peer_dead: &'a mut dyn FnMut() -> bool,
}

impl core::fmt::Debug for Wait<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Wait")
            .field("block", &self.block)
            .field("deadline", &self.deadline.is_some())
            .finish()
    }
}

/// Where [`Ring::recv`] puts a message.
#[derive(Debug)]
pub enum Out<'b> {
    /// Replaced by the message.
    Vec(&'b mut Vec<u8>),
    /// The message's first bytes; too short a slice is
    /// [`RingError::BufferTooSmall`] and the message stays.
    Slice(&'b mut [u8]),
}

/// One direction: the two words and the data, borrowed from wherever they
/// live (the mapped page, the heap, a loom model).
#[derive(Debug)]
pub struct Ring<'a, F: FutexWord, D: AtomicWord<Int = u32>> {
    head: &'a F,
    tail: &'a F,
    data: &'a [D],
    /// Ring bytes (a power of two, ≤ MAX_RING).
    size: u32,
    /// The largest message.
    cap: u32,
}

/// One wait step's verdict.
enum Slept {
    /// The word changed (or a spurious return): look again.
    Again,
    /// The word did not change and the probe says the other side is dead.
    Dead,
    /// The deadline passed (or the call may not sleep).
    Expired,
}

impl<'a, F: FutexWord, D: AtomicWord<Int = u32>> Ring<'a, F, D> {
    /// A ring on `data` (a power of two of words, at most
    /// [`MAX_RING`] bytes) for messages of at most `capacity` bytes (one
    /// record of that size must fit). `None` otherwise: the caller's
    /// private geometry is wrong.
    pub fn new(head: &'a F, tail: &'a F, data: &'a [D], capacity: usize) -> Option<Self> {
        let bytes = data.len().checked_mul(4)?;
        if !bytes.is_power_of_two() || !(8..=MAX_RING).contains(&bytes) {
            return None;
        }
        if capacity == 0 || record_len(capacity)? > bytes {
            return None;
        }
        Some(Ring {
            head,
            tail,
            data,
            size: bytes as u32,
            cap: capacity as u32,
        })
    }

    /// The largest message.
    pub fn capacity(&self) -> usize {
        self.cap as usize
    }

    /// The head word, as a peer sees it.
    pub fn head(&self) -> &F {
        self.head
    }

    /// The tail word, as a peer sees it.
    pub fn tail(&self) -> &F {
        self.tail
    }

    /// Bytes published and not consumed, from two positions; `None` if no
    /// honest pair of sides writes them.
    #[inline]
    fn used(&self, head: u32, tail: u32) -> Option<u32> {
        let used = head.wrapping_sub(tail) & POS_MASK;
        (used <= self.size && used % 4 == 0).then_some(used)
    }

    /// The producer side, at the position the page records (for a process
    /// taking the end: it continues where the previous writer of the page
    /// stopped). The position is checked against the consumer's.
    ///
    /// # Errors
    /// [`RingError::Corrupt`] for a pair of positions no honest ring has.
    pub fn producer(&self) -> Result<Producer, RingError> {
        // Acquire: pairs with the Release swaps (module docs).
        let pos = self.head.atomic().load(Acquire) & POS_MASK;
        let tail = self.tail.atomic().load(Acquire);
        self.used(pos, tail).ok_or(RingError::Corrupt)?;
        Ok(Producer { pos })
    }

    /// The consumer side, at the position the page records, checked as
    /// for [`producer`](Self::producer).
    ///
    /// # Errors
    /// [`RingError::Corrupt`] for a pair of positions no honest ring has.
    pub fn consumer(&self) -> Result<Consumer, RingError> {
        // Acquire: as in `producer`.
        let pos = self.tail.atomic().load(Acquire) & POS_MASK;
        let head = self.head.atomic().load(Acquire);
        self.used(head, pos).ok_or(RingError::Corrupt)?;
        Ok(Consumer { pos })
    }

    #[inline]
    fn word_index(&self, pos: u32) -> usize {
        // `data.len()` is a power of two (`new`): the mask keeps every
        // index in range, whatever `pos` is.
        (pos as usize / 4) & (self.data.len() - 1)
    }

    /// Writes `bytes` (zero-padded to whole words) from word `i` on.
    fn write_bytes(&self, mut i: usize, bytes: &[u8]) {
        let mask = self.data.len() - 1;
        let mut chunks = bytes.chunks_exact(4);
        for c in &mut chunks {
            let w = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            // Relaxed: published by the Release swap of `head`.
            self.data[i & mask].store(w, Relaxed);
            i = i.wrapping_add(1);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 4];
            w[..rest.len()].copy_from_slice(rest);
            // Relaxed: as above.
            self.data[i & mask].store(u32::from_le_bytes(w), Relaxed);
        }
    }

    /// Reads `out.len()` bytes from word `i` on.
    fn read_bytes(&self, mut i: usize, out: &mut [u8]) {
        let mask = self.data.len() - 1;
        let mut chunks = out.chunks_exact_mut(4);
        for c in &mut chunks {
            // Relaxed: ordered by the Acquire load of `head`.
            c.copy_from_slice(&self.data[i & mask].load(Relaxed).to_le_bytes());
            i = i.wrapping_add(1);
        }
        let rest = chunks.into_remainder();
        if !rest.is_empty() {
            // Relaxed: as above.
            let w = self.data[i & mask].load(Relaxed).to_le_bytes();
            let n = rest.len();
            rest.copy_from_slice(&w[..n]);
        }
    }

    /// Sleeps on `word` while it holds `seen` (`WAITING` set), at most a
    /// slice or the deadline's rest, then probes the other side if the
    /// word did not change.
    fn sleep(&self, word: &F, seen: u32, wait: &mut Wait<'_>, slice: &mut Duration) -> Slept {
        let t = match wait.deadline.as_deref_mut() {
            None => *slice,
            Some(d) => match d.remaining() {
                None => return Slept::Expired,
                Some(left) => left.min(*slice),
            },
        };
        word.wait(seen, Some(t));
        *slice = slice.saturating_mul(2).min(SLICE_MAX);
        // Relaxed: only whether it changed; the loop re-reads with Acquire.
        if word.atomic().load(Relaxed) == seen && (wait.peer_dead)() {
            Slept::Dead
        } else {
            Slept::Again
        }
    }

    /// Sends `msg` as one message: `Ok(true)` once it is published,
    /// `Ok(false)` if there was no room and the call may not wait (or its
    /// deadline passed).
    ///
    /// # Errors
    /// [`RingError::TooLarge`] for a message longer than the maximum;
    /// [`RingError::Disconnected`] once the consumer closed its end or is
    /// dead; [`RingError::Corrupt`] for positions no honest ring has.
    pub fn send(
        &self,
        p: &mut Producer,
        msg: &[u8],
        wait: &mut Wait<'_>,
    ) -> Result<bool, RingError> {
        if msg.len() > self.cap as usize {
            return Err(RingError::TooLarge);
        }
        // ≤ cap + 7 ≤ size (checked in `new`): fits a u32.
        let need = record_len(msg.len()).ok_or(RingError::TooLarge)? as u32;
        let tail = self.tail.atomic();
        let mut slice = SLICE_FIRST;
        let mut dead = false;
        let mut yielded = false;
        loop {
            // Acquire: pairs with the consumer's Release swap (module docs).
            let t = tail.load(Acquire);
            if t & CLOSED != 0 || dead {
                return Err(RingError::Disconnected);
            }
            let used = self.used(p.pos, t).ok_or(RingError::Corrupt)?;
            if self.size - used >= need {
                break;
            }
            if !wait.block {
                if (wait.peer_dead)() {
                    return Err(RingError::Disconnected);
                }
                return Ok(false);
            }
            if !yielded {
                // A consumer about to free room is seen without sleeping
                // (and then needs no wake): `FutexWord::YIELD_LIMIT`.
                // Acquire as the load above; the loop re-checks the value.
                yielded = true;
                yield_until(self.tail, t, Acquire, |v| {
                    v & CLOSED != 0 || self.used(p.pos, v).is_none_or(|u| self.size - u >= need)
                });
                continue;
            }
            if t & WAITING == 0 {
                // Relaxed on success: the value is only slept on; Acquire
                // on failure, as the load.
                if tail
                    .compare_exchange(t, t | WAITING, Relaxed, Acquire)
                    .is_err()
                {
                    continue;
                }
            }
            match self.sleep(self.tail, t | WAITING, wait, &mut slice) {
                Slept::Again => {}
                Slept::Dead => dead = true,
                Slept::Expired => return Ok(false),
            }
        }
        let i = self.word_index(p.pos);
        self.write_bytes(i.wrapping_add(1), msg);
        // Relaxed: published by the swap below, with the payload.
        self.data[i].store(msg.len() as u32, Relaxed);
        let new = p.pos.wrapping_add(need) & POS_MASK;
        // Release: pairs with the consumer's Acquire loads of `head`.
        let old = self.head.atomic().swap(new, Release);
        p.pos = new;
        if old & WAITING != 0 {
            self.head.wake_one();
        }
        Ok(true)
    }

    /// Receives the next message into `out`: `Ok(Some(len))`, or
    /// `Ok(None)` if there was none and the call may not wait (or its
    /// deadline passed).
    ///
    /// # Errors
    /// [`RingError::Disconnected`] once the ring is empty and the producer
    /// closed its end or is dead; [`RingError::BufferTooSmall`] (the
    /// message stays); [`RingError::Corrupt`] for positions or a length
    /// no honest producer writes.
    pub fn recv(
        &self,
        c: &mut Consumer,
        out: Out<'_>,
        wait: &mut Wait<'_>,
    ) -> Result<Option<usize>, RingError> {
        let Some(avail) = self.await_record(c, wait)? else {
            return Ok(None);
        };
        let i = self.word_index(c.pos);
        // Relaxed: ordered by the Acquire load of `head` in `await_record`.
        let len = self.data[i].load(Relaxed) as usize;
        let need = match record_len(len) {
            Some(n) if len <= self.cap as usize && n <= avail as usize => n as u32,
            _ => return Err(RingError::Corrupt),
        };
        match out {
            Out::Vec(v) => {
                v.clear();
                v.resize(len, 0);
                self.read_bytes(i.wrapping_add(1), v);
            }
            Out::Slice(s) => {
                let Some(dst) = s.get_mut(..len) else {
                    return Err(RingError::BufferTooSmall { needed: len });
                };
                self.read_bytes(i.wrapping_add(1), dst);
            }
        }
        let new = c.pos.wrapping_add(need) & POS_MASK;
        // Release: pairs with the producer's Acquire loads of `tail`.
        let old = self.tail.atomic().swap(new, Release);
        c.pos = new;
        if old & WAITING != 0 {
            self.tail.wake_one();
        }
        Ok(Some(len))
    }

    /// Whether a message is ready, waiting as `wait` allows:
    /// `Ok(true)` when one is.
    ///
    /// # Errors
    /// As [`recv`](Self::recv), without `BufferTooSmall`.
    pub fn poll(&self, c: &Consumer, wait: &mut Wait<'_>) -> Result<bool, RingError> {
        Ok(self.await_record(c, wait)?.is_some())
    }

    /// Waits for at least one published byte: the bytes available.
    fn await_record(&self, c: &Consumer, wait: &mut Wait<'_>) -> Result<Option<u32>, RingError> {
        let head = self.head.atomic();
        let mut slice = SLICE_FIRST;
        let mut dead = false;
        let mut yielded = false;
        loop {
            // Acquire: pairs with the producer's Release swap (module docs).
            let h = head.load(Acquire);
            let avail = self.used(h, c.pos).ok_or(RingError::Corrupt)?;
            if avail != 0 {
                if avail < HEADER as u32 {
                    return Err(RingError::Corrupt);
                }
                return Ok(Some(avail));
            }
            if h & CLOSED != 0 || dead {
                return Err(RingError::Disconnected);
            }
            if !wait.block {
                if (wait.peer_dead)() {
                    // What the dead producer published before it died is
                    // visible now (the probe acquires the death): look
                    // once more before reporting it.
                    dead = true;
                    continue;
                }
                return Ok(None);
            }
            if !yielded {
                // A producer about to publish is seen without sleeping (and
                // then needs no wake): `FutexWord::YIELD_LIMIT`. Acquire as
                // the load above; the loop re-checks the value.
                yielded = true;
                yield_until(self.head, h, Acquire, |v| {
                    v & CLOSED != 0 || v.wrapping_sub(c.pos) & POS_MASK != 0
                });
                continue;
            }
            if h & WAITING == 0 {
                // Relaxed on success: the value is only slept on; Acquire
                // on failure, as the load.
                if head
                    .compare_exchange(h, h | WAITING, Relaxed, Acquire)
                    .is_err()
                {
                    continue;
                }
            }
            match self.sleep(self.head, h | WAITING, wait, &mut slice) {
                Slept::Again => {}
                // Look once more (as above), then report it.
                Slept::Dead => dead = true,
                Slept::Expired => return Ok(None),
            }
        }
    }

    /// The producer closes its end: the consumer drains, then gets
    /// [`RingError::Disconnected`].
    pub fn close_producer(&self) {
        // Release: pairs with the consumer's Acquire loads of `head`.
        if self.head.atomic().fetch_or(CLOSED, Release) & WAITING != 0 {
            self.head.wake_one();
        }
    }

    /// The consumer closes its end: the producer's sends fail with
    /// [`RingError::Disconnected`].
    pub fn close_consumer(&self) {
        // Release: pairs with the producer's Acquire loads of `tail`.
        if self.tail.atomic().fetch_or(CLOSED, Release) & WAITING != 0 {
            self.tail.wake_one();
        }
    }
}
