#![allow(unsafe_code)] // the ring's atomics in the validated mapping
//! Queues and pipes over shared memory: [`Queue`] (typed items) and
//! [`MessageQueue`] (byte messages), both rings of `src/raw/ring.rs` laid
//! out in the data area of their segment; [`Pipe`] (`pipe.rs`, two
//! single-producer single-consumer rings of `src/raw/spsc.rs`).
//!
//! # The ring's area (from the segment's data offset `D`)
//!
//! ```text
//! offset  size   what
//!      0     4   head (position to take from)          own cache line
//!     64     4   tail (position to put at)             own cache line
//!    128     4   readable: event count consumers sleep on
//!    192     4   writable: event count producers sleep on
//!    256     4   closed (non-zero: closed)
//!    260     4   lost (items lost to dead claimants, wrapping)
//!    264     4   capacity (written once by the creator)
//!    268     4   slot bytes: payload bytes per slot (written once)
//!    272    48   reserved (zero)
//!    320   8*c   one control word per slot (stamp, state, TID)
//!      P   s*c   payloads, P = 320 + 8c rounded up to max(8, align)
//! ```
//!
//! The header's element count is the area's size in header elements (the
//! item type for a `Queue<T>`, 8-byte words for a `MessageQueue`), rounded
//! up. `open` reads capacity and slot bytes once, checks them against that
//! count (so the whole area lies in the mapping) and keeps them: the page
//! is never asked again.

mod message;
mod pipe;
#[allow(clippy::module_inception)]
mod queue;

pub use message::MessageQueue;
pub use pipe::{Connection, End, Pipe};
pub use queue::Queue;

use core::sync::atomic::{AtomicU32, AtomicU64};
use core::time::Duration;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::raw::ring::{RawRing, RingError, RingWords, MAX_CAPACITY, SEALED, TID_BITS};
use crate::raw::Liveness;
use crate::shm::object::Object;
use crate::shm::segment::Segment;
use crate::sys;

const HEAD: usize = 0;
const TAIL: usize = 64;
const READABLE: usize = 128;
const WRITABLE: usize = 192;
const CLOSED: usize = 256;
const LOST: usize = 260;
const CAPACITY: usize = 264;
const SLOT_BYTES: usize = 268;
/// Where the control words start.
const SLOTS: usize = 320;

/// The largest payload of one slot (a message's bytes plus its length).
const MAX_SLOT_BYTES: usize = 1 << 30;

/// How often a waiter blocked by a claimant probes whether it is alive.
const PROBE: Duration = Duration::from_millis(8);

/// Offset of the payloads and size of the area, for `cap` slots of
/// `slot_bytes` aligned to `align`; `None` if it does not fit a `usize`.
fn area(cap: usize, slot_bytes: usize, align: usize) -> Option<(usize, usize)> {
    let a = align.max(8);
    let payload = cap
        .checked_mul(8)?
        .checked_add(SLOTS)?
        .checked_next_multiple_of(a)?;
    let total = cap.checked_mul(slot_bytes)?.checked_add(payload)?;
    Some((payload, total))
}

/// What a new ring is made of (checked).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RingInit {
    cap: u32,
    slot_bytes: usize,
    /// Header elements (of `unit` bytes) covering the area.
    count: usize,
}

impl RingInit {
    /// `cap` slots of `slot_bytes`, aligned to `align`, in a segment whose
    /// header elements are `unit` bytes.
    fn new(cap: usize, slot_bytes: usize, align: usize, unit: usize) -> Result<RingInit> {
        if cap == 0 {
            return Err(Error::InvalidArgument(
                "a queue's capacity must be at least 1",
            ));
        }
        let cap32 = u32::try_from(cap)
            .ok()
            .filter(|c| *c <= MAX_CAPACITY)
            .ok_or(Error::InvalidArgument("queue capacity too large"))?;
        if unit == 0 {
            return Err(Error::InvalidArgument("zero-sized queue items"));
        }
        if slot_bytes > MAX_SLOT_BYTES {
            return Err(Error::InvalidArgument("queue items too large"));
        }
        let (_, total) =
            area(cap, slot_bytes, align).ok_or(Error::InvalidArgument("queue too large"))?;
        Ok(RingInit {
            cap: cap32,
            slot_bytes,
            count: total.div_ceil(unit),
        })
    }

    /// The header's element count.
    fn count(&self) -> usize {
        self.count
    }
}

/// The liveness probe of a waiter blocked by a claimed slot.
struct Probe<'a>(&'a Segment);

impl Liveness for Probe<'_> {
    fn probe_interval(&mut self, _word: u32) -> Option<Duration> {
        Some(PROBE)
    }

    fn owner_is_dead(&mut self, word: u32) -> bool {
        let tid = word & TID_BITS;
        if tid == 0 || tid == SEALED {
            return false;
        }
        self.0.liveness.owner_dead(self.0.fd(), tid)
    }
}

/// A validated ring in a segment: the mapping, and where its words and
/// payloads are.
#[derive(Debug, Clone)]
pub(crate) struct RingSeg {
    seg: Arc<Segment>,
    /// The area's start (`D`).
    base: *mut u8,
    /// The first payload.
    payload: *mut u8,
    cap: u32,
    slot_bytes: usize,
}

// SAFETY: the pointers point into the mapping that `seg` keeps alive;
// every access through them is atomic; no thread-affine state is held.
unsafe impl Send for RingSeg {}
// SAFETY: as for Send.
unsafe impl Sync for RingSeg {}

impl RingSeg {
    /// Writes a new ring's fixed fields and initial slot words (before the
    /// header is published).
    fn fill(obj: &Object, init: &RingInit) {
        let base = Self::data(obj);
        // SAFETY: the area starts at the data offset, is `init.count`
        // elements long (made from `init`), so every offset below lies in
        // the mapping; the fields are 4- and 8-aligned (the data offset is
        // a multiple of 64) and only ever accessed atomically.
        unsafe {
            Self::word32(base, CAPACITY).store(init.cap, core::sync::atomic::Ordering::Relaxed);
            Self::word32(base, SLOT_BYTES).store(
                init.slot_bytes as u32,
                core::sync::atomic::Ordering::Relaxed,
            );
            for i in 0..init.cap {
                let w = RawRing::<AtomicU32, AtomicU32, AtomicU64>::initial_slot(i);
                // Relaxed: published by the header's Release store of READY.
                (*base.add(SLOTS).cast::<AtomicU64>().add(i as usize))
                    .store(w, core::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    fn data(obj: &Object) -> *mut u8 {
        obj.seg.as_ptr().wrapping_add(obj.layout.data_offset)
    }

    /// # Safety
    /// `base + off` is a 4-aligned location inside the mapping, only ever
    /// accessed as an `AtomicU32`.
    unsafe fn word32<'a>(base: *mut u8, off: usize) -> &'a AtomicU32 {
        // SAFETY: forwarded from the caller.
        unsafe { AtomicU32::from_ptr(base.add(off).cast()) }
    }

    /// Validates the ring of `obj`: capacity and slot bytes read once from
    /// the page, checked against the header's element count (`unit` bytes
    /// each) and, if given, the expected slot bytes.
    fn wrap(obj: Object, slot_bytes: Option<usize>, align: usize, unit: usize) -> Result<RingSeg> {
        let base = Self::data(&obj);
        let len = obj.layout.count.checked_mul(unit);
        if len.is_none_or(|l| l < SLOTS) {
            return Err(Error::Corrupt("queue area too small"));
        }
        // SAFETY: the area is at least SLOTS bytes (just checked) from the
        // 64-aligned data offset, inside the validated mapping.
        let (cap, bytes) = unsafe {
            (
                Self::word32(base, CAPACITY).load(core::sync::atomic::Ordering::Relaxed),
                Self::word32(base, SLOT_BYTES).load(core::sync::atomic::Ordering::Relaxed),
            )
        };
        let bytes = bytes as usize;
        if slot_bytes.is_some_and(|b| b != bytes) {
            return Err(Error::Corrupt("queue slot size"));
        }
        if bytes % align != 0 {
            return Err(Error::Corrupt("queue slot size"));
        }
        let init = RingInit::new(cap as usize, bytes, align, unit)
            .map_err(|_| Error::Corrupt("queue capacity"))?;
        if init.count != obj.layout.count {
            return Err(Error::Corrupt("queue capacity"));
        }
        let (payload, _) = area(cap as usize, bytes, align).ok_or(Error::Corrupt("queue"))?;
        Ok(RingSeg {
            base,
            payload: base.wrapping_add(payload),
            cap,
            slot_bytes: bytes,
            seg: obj.seg,
        })
    }

    fn segment(&self) -> &Segment {
        &self.seg
    }

    /// The state machine over this ring's words.
    #[inline]
    fn ring(&self) -> RawRing<'_, AtomicU32, AtomicU32, AtomicU64> {
        // SAFETY: `wrap` checked that the area (SLOTS + 8 * cap bytes and
        // more) lies in the mapping, which `self.seg` keeps alive for the
        // borrow; the words are 4- and 8-aligned (data offset a multiple of
        // 64) and accessed only atomically (no other access exists).
        let w = unsafe {
            RingWords {
                head: Self::word32(self.base, HEAD),
                tail: Self::word32(self.base, TAIL),
                closed: Self::word32(self.base, CLOSED),
                lost: Self::word32(self.base, LOST),
                readable: Self::word32(self.base, READABLE),
                writable: Self::word32(self.base, WRITABLE),
                slots: core::slice::from_raw_parts(
                    self.base.add(SLOTS).cast::<AtomicU64>(),
                    self.cap as usize,
                ),
            }
        };
        match RawRing::new(w) {
            Some(r) => r,
            // `wrap` checked 1 ≤ cap ≤ MAX_CAPACITY.
            None => unreachable!("validated capacity"),
        }
    }

    /// The payload of slot `index` (`index < capacity`, as the ring's
    /// claims are).
    #[inline]
    fn payload(&self, index: usize) -> *mut u8 {
        debug_assert!(index < self.cap as usize);
        self.payload.wrapping_add(index * self.slot_bytes)
    }

    /// The calling thread's TID, its liveness byte held (before any claim
    /// names it).
    #[inline]
    fn me(&self) -> u32 {
        let me = sys::thread::tid().get();
        self.seg.liveness.ensure(self.seg.fd(), me);
        me
    }

    fn probe(&self) -> Probe<'_> {
        Probe(&self.seg)
    }
}

/// The public error of a ring outcome.
fn error(e: RingError) -> Error {
    match e {
        RingError::Full => Error::Full,
        RingError::Empty => Error::Empty,
        RingError::Closed => Error::Closed,
        RingError::Refused | RingError::Corrupt => Error::Corrupt("queue ring"),
    }
}
