//! Where things lie in a segment's file, for the tests that read or damage
//! it from outside the crate: the header every object begins with and the
//! in-page lock slot after it (`src/shm/header.rs`, the slot as in
//! `docs/ROBUST.md`). Byte offsets from the start of the file.

// ---------------------------------------------------------------------------
// Header
// ---------------------------------------------------------------------------

/// `u64`, `b"SHMSYNC\0"`.
pub(crate) const OFF_MAGIC: usize = 0;
/// `u32` layout version.
pub(crate) const OFF_VERSION: usize = 8;
/// `u32` object kind.
pub(crate) const OFF_KIND: usize = 12;
/// `u32` element type code.
pub(crate) const OFF_TYPE_CODE: usize = 16;
/// `u32` element size.
pub(crate) const OFF_ELEM_SIZE: usize = 20;
/// `u32` element alignment.
pub(crate) const OFF_ELEM_ALIGN: usize = 24;
/// `u32` bytes from one element to the next.
pub(crate) const OFF_STRIDE: usize = 28;
/// `u64` element count.
pub(crate) const OFF_COUNT: usize = 32;
/// `u64` offset of the data.
pub(crate) const OFF_DATA_OFFSET: usize = 40;
/// `u32` lock mode.
pub(crate) const OFF_LOCK_MODE: usize = 48;
/// `u32` length of the separate lock's name.
pub(crate) const OFF_LOCK_NAME_LEN: usize = 52;
/// `u32` init word: `b"REDY"` once the creator has published.
pub(crate) const OFF_INIT: usize = 72;
/// Size of the header.
pub(crate) const HEADER_SIZE: u64 = 128;
/// The separate lock's name (objects locked by another object).
pub(crate) const LOCK_NAME_OFFSET: usize = 192;
/// Where the data of an object with its own lock starts.
pub(crate) const DATA_OFFSET: u64 = 192;

// ---------------------------------------------------------------------------
// Lock slot (laid out like glibc's 64-bit `pthread_mutex_t`)
// ---------------------------------------------------------------------------

/// `u32` lock word: owner TID and the `WAITERS` / `OWNER_DIED` bits.
pub(crate) const SLOT_WORD: usize = 128;
/// `u32` holds of a recursive owner beyond the first.
pub(crate) const SLOT_EXTRA: usize = 132;
/// `u32` consistency state.
pub(crate) const SLOT_STATE: usize = 136;
/// Robust-list `prev` link (an address in the holder's memory).
pub(crate) const SLOT_PREV: usize = 152;
/// Robust-list `next` link: the node the kernel walks.
pub(crate) const SLOT_NEXT: usize = 160;
