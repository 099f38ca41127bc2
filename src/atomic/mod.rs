//! [`AtomicValue`] and [`AtomicArray`]: lock-free cells in shared memory,
//! with the API of `std::sync::atomic`.
//!
//! Python's `v.value += 1` loses updates even with `lock=True`, and CPython
//! has no atomic operations (python/cpython#75835). These objects make a
//! read-modify-write one atomic instruction (integers) or one
//! compare-and-swap loop (floats), across processes, without a lock.
//!
//! # Layout and safety
//!
//! An atomic object is a segment with the common header (kind
//! `AtomicValue`/`AtomicArray`, the element's type code, size and
//! alignment, the stride) followed by the cells. Each cell is naturally
//! aligned (64-bit cells are 8-aligned) and is only ever accessed through
//! `core`'s atomics of its own width (`AtomicU64::from_ptr` on an aligned,
//! in-bounds pointer into the live mapping): whatever another process
//! writes, reading it is never undefined behaviour. No `&AtomicXX` outlives
//! the borrow of the handle that keeps the mapping alive.
//!
//! The read-modify-write logic lives in [`crate::raw::rmw`], generic
//! over the word, so that the loom models of `loom-tests/` check this very
//! code.

mod array;
mod cells;
mod element;
mod value;

pub use array::{AtomicArray, CACHE_LINE};
pub use cells::AtomicRef;
pub use element::{AtomicBitwise, AtomicElement, AtomicNumber};
pub use value::AtomicValue;

static_assertions::assert_impl_all!(AtomicValue<f64>: Send, Sync);
static_assertions::assert_impl_all!(AtomicArray<bool>: Send, Sync);
static_assertions::assert_impl_all!(AtomicRef<'static, i64>: Send, Sync, Copy);
