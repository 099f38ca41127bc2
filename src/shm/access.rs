#![allow(unsafe_code)] // atomics overlaid on peer-writable bytes through raw pointers
//! Reading and writing peer-writable bytes.
//!
//! Memory that another process can write at any moment is never turned into
//! `&T`, `&[T]` or `&mut` references: every access is an atomic load or
//! store, `Relaxed` unless a caller orders it through a lock. A racing
//! writer can then make a value *stale or torn* (a struct read half before
//! and half after a peer's write), but never cause undefined behaviour; with
//! a `Pod` element type every bit pattern read is a valid value.
//!
//! Each element is accessed with one access width only, fixed by its type:
//! its alignment, capped at 8 bytes (`AtomicU8`..`AtomicU64`), so a
//! naturally aligned primitive is one single-copy-atomic load or store.

use core::mem::{align_of, size_of};
use core::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering::Relaxed};

use bytemuck::Pod;

macro_rules! chunked {
    ($load:ident, $store:ident, $atomic:ty, $prim:ty) => {
        /// # Safety
        /// - `src` is valid for `n` reads of the chunk type and aligned to it;
        /// - `dst` is valid for `n` writes and aligned (local memory).
        #[inline(always)]
        unsafe fn $load(src: *const u8, dst: *mut u8, n: usize) {
            for i in 0..n {
                // SAFETY: in bounds and aligned by the caller's contract;
                // the mapped word is only ever accessed atomically.
                let v = unsafe { <$atomic>::from_ptr(src.cast::<$prim>().cast_mut().add(i)) }
                    .load(Relaxed);
                // SAFETY: `dst` is private memory valid for `n` chunks.
                unsafe { dst.cast::<$prim>().add(i).write(v) };
            }
        }
        /// # Safety
        /// - `dst` is valid for `n` atomic writes of the chunk type, aligned;
        /// - `src` is valid for `n` reads and aligned (local memory).
        #[inline(always)]
        unsafe fn $store(src: *const u8, dst: *mut u8, n: usize) {
            for i in 0..n {
                // SAFETY: `src` is private memory valid for `n` chunks.
                let v = unsafe { src.cast::<$prim>().add(i).read() };
                // SAFETY: in bounds and aligned by the caller's contract.
                unsafe { <$atomic>::from_ptr(dst.cast::<$prim>().add(i)) }.store(v, Relaxed);
            }
        }
    };
}
chunked!(load8, store8, AtomicU8, u8);
chunked!(load16, store16, AtomicU16, u16);
chunked!(load32, store32, AtomicU32, u32);
chunked!(load64, store64, AtomicU64, u64);

/// Reads one `T` from shared memory with `Relaxed` atomic loads.
///
/// # Safety
/// - `p` is aligned for `T` and points into a live mapping with at least
///   `size_of::<T>()` bytes;
/// - those bytes are only ever accessed atomically, with this same width.
#[inline]
pub(crate) unsafe fn load<T: Pod>(p: *const T) -> T {
    let mut out = T::zeroed();
    let dst = (&raw mut out).cast::<u8>();
    let src = p.cast::<u8>();
    // `size_of` is a multiple of `align_of`, so each case divides evenly.
    // SAFETY: (all arms) `src` meets the contract above for this width;
    // `dst` is `out`, aligned for `T`, hence for a chunk no wider than
    // `align_of::<T>()` (capped at 8, and `T`'s alignment is at least that).
    unsafe {
        match align_of::<T>() {
            1 => load8(src, dst, size_of::<T>()),
            2 => load16(src, dst, size_of::<T>() / 2),
            4 => load32(src, dst, size_of::<T>() / 4),
            _ => load64(src, dst, size_of::<T>() / 8),
        }
    }
    out
}

/// Writes one `T` to shared memory with `Relaxed` atomic stores.
///
/// # Safety
/// As for [`load`].
#[inline]
pub(crate) unsafe fn store<T: Pod>(p: *mut T, v: T) {
    let src = (&raw const v).cast::<u8>();
    let dst = p.cast::<u8>();
    // SAFETY: as in `load`, with the roles of the two pointers swapped.
    unsafe {
        match align_of::<T>() {
            1 => store8(src, dst, size_of::<T>()),
            2 => store16(src, dst, size_of::<T>() / 2),
            4 => store32(src, dst, size_of::<T>() / 4),
            _ => store64(src, dst, size_of::<T>() / 8),
        }
    }
}

/// Copies `out.len()` bytes from shared memory at `src`, byte by byte with
/// `Relaxed` loads (the raw-bytes API has no element width to keep to).
///
/// # Safety
/// - `src..src + out.len()` lies inside a live mapping.
pub(crate) unsafe fn copy_out(src: *const u8, out: &mut [u8]) {
    for (i, b) in out.iter_mut().enumerate() {
        // SAFETY: in bounds by the contract; byte atomics need no alignment.
        *b = unsafe { AtomicU8::from_ptr(src.add(i).cast_mut()) }.load(Relaxed);
    }
}

/// Copies `data` into shared memory at `dst` with `Relaxed` byte stores.
///
/// # Safety
/// - `dst..dst + data.len()` lies inside a live, writable mapping.
pub(crate) unsafe fn copy_in(dst: *mut u8, data: &[u8]) {
    for (i, b) in data.iter().enumerate() {
        // SAFETY: in bounds by the contract; byte atomics need no alignment.
        unsafe { AtomicU8::from_ptr(dst.add(i)) }.store(*b, Relaxed);
    }
}
