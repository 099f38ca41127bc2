//! The header every typed object begins with, and the fixed layout around it.
//!
//! ```text
//! offset  size  what
//!      0   128  Header (below)
//!    128    40  LockSlot: the in-page lock (Own lock mode, Lock/RLock kinds)
//!    192   255  name of the separate lock object (External lock mode only)
//!    D     n*s  data: n elements every s bytes, D = data_offset (see
//!               `data_offset_for`), cache-line aligned
//! ```
//!
//! The creator writes every field, then publishes [`READY`] in `init` with
//! a `Release` store; openers read `init` with `Acquire`, validate all
//! fields once against the file's real size and the requested type, and
//! keep the result ([`super::object::Layout`]): nothing read later from the
//! page, which any attached process can overwrite, is trusted for bounds.

use core::mem::{align_of, offset_of, size_of};
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize};

use static_assertions::{const_assert, const_assert_eq};

use crate::raw::RawMutex;

/// `b"SHMSYNC\0"` read as a little-endian `u64`.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"SHMSYNC\0");
/// Layout version; bump on any change to this file's format.
/// 2: the lock slot keeps the holds beyond the first (`RawMutex::extra`).
/// 3: a queue ring's slot word carries a waiters bit (its TID in bits
/// 0–28, `src/raw/ring.rs`).
pub(crate) const VERSION: u32 = 3;
/// `init` once the creator has finished: `b"REDY"` as little-endian.
pub(crate) const READY: u32 = u32::from_le_bytes(*b"REDY");

/// Size of [`Header`].
pub(crate) const HEADER_SIZE: usize = 128;
/// Offset of the in-page [`LockSlot`].
pub(crate) const LOCK_OFFSET: usize = 128;
/// Offset of the external lock's name.
pub(crate) const LOCK_NAME_OFFSET: usize = 192;
/// Longest recorded lock name (`NAME_MAX`).
pub(crate) const LOCK_NAME_MAX: usize = crate::sys::file::NAME_MAX;
/// Data starts at least this aligned (a cache line: keeps the lock word and
/// the data on different lines).
pub(crate) const DATA_ALIGN: usize = 64;
/// Largest element alignment accepted (also the largest stride padding).
pub(crate) const MAX_ALIGN: usize = 4096;

/// The header, as it lies in the page. Every field is an atomic: the page
/// is shared with processes we do not trust to leave it alone.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct Header {
    pub(crate) magic: AtomicU64,
    pub(crate) version: AtomicU32,
    /// [`super::object::Kind`] as `u32`.
    pub(crate) kind: AtomicU32,
    /// Element type code (`b'i'`, `b'd'`, ..., `b'S'` for structs).
    pub(crate) type_code: AtomicU32,
    pub(crate) elem_size: AtomicU32,
    pub(crate) elem_align: AtomicU32,
    /// Bytes from one element to the next (≥ `elem_size`).
    pub(crate) stride: AtomicU32,
    /// Number of elements.
    pub(crate) count: AtomicU64,
    pub(crate) data_offset: AtomicU64,
    /// [`super::object::LockMode`] as `u32`.
    pub(crate) lock_mode: AtomicU32,
    /// Length of the external lock's name at `LOCK_NAME_OFFSET` (0: none).
    pub(crate) lock_name_len: AtomicU32,
    /// Random identity of this object (what `with_lock` users record).
    pub(crate) id: AtomicU64,
    /// Identity of the external lock's segment (External mode).
    pub(crate) lock_id: AtomicU64,
    /// 0 while the creator initialises, [`READY`] once published.
    pub(crate) init: AtomicU32,
    /// The creator's PID (in its PID namespace; 0 if unknown), for tools
    /// that judge whether a segment was orphaned. Informational: nothing
    /// in the library decides anything by it.
    pub(crate) creator_pid: AtomicU32,
    /// When the creator process started (clock ticks after boot, field 22
    /// of `/proc/PID/stat`; 0 if unknown): with `creator_pid`, an identity
    /// that PID reuse does not repeat.
    pub(crate) creator_start: AtomicU64,
    /// Reserved (zero).
    pub(crate) reserved: [AtomicU32; 10],
}

const_assert_eq!(size_of::<Header>(), HEADER_SIZE);
const_assert_eq!(align_of::<Header>(), 8);
const_assert_eq!(offset_of!(Header, magic), 0);
const_assert_eq!(offset_of!(Header, version), 8);
const_assert_eq!(offset_of!(Header, kind), 12);
const_assert_eq!(offset_of!(Header, type_code), 16);
const_assert_eq!(offset_of!(Header, elem_size), 20);
const_assert_eq!(offset_of!(Header, elem_align), 24);
const_assert_eq!(offset_of!(Header, stride), 28);
const_assert_eq!(offset_of!(Header, count), 32);
const_assert_eq!(offset_of!(Header, data_offset), 40);
const_assert_eq!(offset_of!(Header, lock_mode), 48);
const_assert_eq!(offset_of!(Header, lock_name_len), 52);
const_assert_eq!(offset_of!(Header, id), 56);
const_assert_eq!(offset_of!(Header, lock_id), 64);
const_assert_eq!(offset_of!(Header, init), 72);
const_assert_eq!(offset_of!(Header, creator_pid), 76);
const_assert_eq!(offset_of!(Header, creator_start), 80);
const_assert_eq!(offset_of!(Header, reserved), 88);

/// Every field of a segment's header, read once (from the mapping, or with
/// `pread` by [`crate::inspect`]): plain numbers as recorded, which nothing
/// trusts before they are checked. Offsets and meanings:
/// `docs/ARCHITECTURE.md`, "Segment layout".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct HeaderFields {
    /// `b"SHMSYNC\0"` as a native-endian `u64` in a shmsync segment.
    pub magic: u64,
    /// Layout version.
    pub version: u32,
    /// Object kind number ([`crate::inspect::Kind`]).
    pub kind: u32,
    /// Element type code (`b'i'`, `b'd'`, ..., `b'S'` for structs; 0 for
    /// kinds without elements).
    pub type_code: u32,
    /// Element size in bytes.
    pub elem_size: u32,
    /// Element alignment in bytes.
    pub elem_align: u32,
    /// Bytes from one element to the next.
    pub stride: u32,
    /// Number of elements.
    pub count: u64,
    /// Offset of the first element.
    pub data_offset: u64,
    /// 0 no lock, 1 a lock slot of its own, 2 another object's lock.
    pub lock_mode: u32,
    /// Length of the other lock object's name (lock mode 2).
    pub lock_name_len: u32,
    /// Random identity of the object.
    pub id: u64,
    /// Identity of the other lock object (lock mode 2).
    pub lock_id: u64,
    /// `b"REDY"` once the creator has published the object.
    pub init: u32,
    /// The creator's PID, in its PID namespace (0: unknown).
    pub creator_pid: u32,
    /// When the creator process started, in clock ticks after boot
    /// (field 22 of `/proc/PID/stat`; 0: unknown).
    pub creator_start: u64,
}

impl HeaderFields {
    /// Reads every field of `h` (`Relaxed`: the caller has read `init`
    /// with `Acquire` first where it matters).
    pub(crate) fn read(h: &Header) -> HeaderFields {
        use core::sync::atomic::Ordering::Relaxed;
        HeaderFields {
            magic: h.magic.load(Relaxed),
            version: h.version.load(Relaxed),
            kind: h.kind.load(Relaxed),
            type_code: h.type_code.load(Relaxed),
            elem_size: h.elem_size.load(Relaxed),
            elem_align: h.elem_align.load(Relaxed),
            stride: h.stride.load(Relaxed),
            count: h.count.load(Relaxed),
            data_offset: h.data_offset.load(Relaxed),
            lock_mode: h.lock_mode.load(Relaxed),
            lock_name_len: h.lock_name_len.load(Relaxed),
            id: h.id.load(Relaxed),
            lock_id: h.lock_id.load(Relaxed),
            init: h.init.load(Relaxed),
            creator_pid: h.creator_pid.load(Relaxed),
            creator_start: h.creator_start.load(Relaxed),
        }
    }

    /// The fields of a header given as its bytes (native byte order, as
    /// the mapping holds them).
    pub(crate) fn from_bytes(b: &[u8; HEADER_SIZE]) -> HeaderFields {
        let u32_at = |o: usize| u32::from_ne_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let u64_at = |o: usize| {
            u64::from_ne_bytes([
                b[o],
                b[o + 1],
                b[o + 2],
                b[o + 3],
                b[o + 4],
                b[o + 5],
                b[o + 6],
                b[o + 7],
            ])
        };
        HeaderFields {
            magic: u64_at(offset_of!(Header, magic)),
            version: u32_at(offset_of!(Header, version)),
            kind: u32_at(offset_of!(Header, kind)),
            type_code: u32_at(offset_of!(Header, type_code)),
            elem_size: u32_at(offset_of!(Header, elem_size)),
            elem_align: u32_at(offset_of!(Header, elem_align)),
            stride: u32_at(offset_of!(Header, stride)),
            count: u64_at(offset_of!(Header, count)),
            data_offset: u64_at(offset_of!(Header, data_offset)),
            lock_mode: u32_at(offset_of!(Header, lock_mode)),
            lock_name_len: u32_at(offset_of!(Header, lock_name_len)),
            id: u64_at(offset_of!(Header, id)),
            lock_id: u64_at(offset_of!(Header, lock_id)),
            init: u32_at(offset_of!(Header, init)),
            creator_pid: u32_at(offset_of!(Header, creator_pid)),
            creator_start: u64_at(offset_of!(Header, creator_start)),
        }
    }
}

/// The in-page lock: a node laid out like glibc's 64-bit `pthread_mutex_t`
/// (`docs/ROBUST.md`), so the kernel's robust-list walk can find the word:
/// the list node is `next` at offset 32 and glibc's `futex_offset` is -32,
/// which lands on `raw.word` at offset 0; `prev` is at 24.
#[repr(C, align(8))]
#[derive(Debug)]
pub(crate) struct LockSlot {
    /// Word, extra holds of a recursive owner and consistency state
    /// (offsets 0, 4, 8).
    pub(crate) raw: RawMutex<AtomicU32>,
    pub(crate) reserved: AtomicU32,
    /// Reserved (zero): room for owner-detection state. (Liveness is keyed
    /// by the TID in the word itself: `sys::liveness`.)
    pub(crate) reserved_16: AtomicU64,
    /// Robust-list `prev` link (glibc's `__list.__prev`).
    pub(crate) prev: AtomicUsize,
    /// Robust-list `next` link: the node the kernel walks.
    pub(crate) next: AtomicUsize,
}

const_assert_eq!(size_of::<LockSlot>(), 40);
const_assert_eq!(align_of::<LockSlot>(), 8);
const_assert_eq!(offset_of!(LockSlot, raw), 0);
const_assert_eq!(offset_of!(RawMutex<AtomicU32>, word), 0);
const_assert_eq!(offset_of!(RawMutex<AtomicU32>, extra), 4);
const_assert_eq!(offset_of!(RawMutex<AtomicU32>, state), 8);
const_assert_eq!(offset_of!(LockSlot, reserved_16), 16);
const_assert_eq!(offset_of!(LockSlot, prev), 24);
const_assert_eq!(offset_of!(LockSlot, next), 32);
const_assert!(LOCK_OFFSET + size_of::<LockSlot>() <= LOCK_NAME_OFFSET);
const_assert!(LOCK_OFFSET % 64 == 0);
const_assert!(HEADER_SIZE <= LOCK_OFFSET);

/// Where the data of an object starts: after the lock slot (and the lock
/// name, in External mode), aligned to the cache line and to the element.
pub(crate) const fn data_offset_for(external_lock: bool, elem_align: usize) -> usize {
    let end = if external_lock {
        LOCK_NAME_OFFSET + LOCK_NAME_MAX
    } else {
        LOCK_NAME_OFFSET
    };
    let a = if elem_align > DATA_ALIGN {
        elem_align
    } else {
        DATA_ALIGN
    };
    end.div_ceil(a) * a
}
