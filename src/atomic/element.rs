//! The element types of the atomic objects: [`AtomicElement`] and its
//! capabilities [`AtomicNumber`] and [`AtomicBitwise`].

use core::fmt;
use core::mem::{align_of, size_of};

use crate::raw::rmw::{MappedAtomic, Repr};
use crate::shm::object::ElemDesc;

/// The element traits' supertraits: sealing, and the raw representation
/// traits (`crate::raw::rmw`), which are not public API and so are named
/// here rather than in the public bounds.
mod sealed {
    use crate::raw::rmw::{Arith, Bitwise, Repr};

    pub trait Sealed: Repr {}
    pub trait Number: Arith {}
    impl<T: Arith> Number for T {}
    pub trait Bits: Bitwise {}
    impl<T: Bitwise> Bits for T {}
}

/// A type that can live in an [`AtomicValue`](crate::AtomicValue) or an [`AtomicArray`](crate::AtomicArray).
///
/// Sealed: implemented for `i8 u8 i16 u16 i32 u32 i64 u64 isize usize f32
/// f64 bool`, each stored in the `core` atomic of its width (floats in
/// `AtomicU32`/`AtomicU64` as bit patterns, `bool` in an `AtomicU8`).
///
/// | type | code | | type | code | | type | code |
/// |------|------|-|------|------|-|------|------|
/// | `i8` | `b` | | `i32` | `i` | | `isize` | `n` |
/// | `u8` | `B` | | `u32` | `I` | | `usize` | `N` |
/// | `i16` | `h` | | `i64` | `q` | | `f32` | `f` |
/// | `u16` | `H` | | `u64` | `Q` | | `f64` | `d` |
/// | `bool` | `?` | | | | | | |
///
/// The codes are those of Python's `struct` module; `open` checks them, so
/// a cell created as `f64` cannot be opened as `i64`.
///
/// # `bool`
///
/// A `bool` cell is one byte, written as 0 or 1 and **read as
/// `byte != 0`**: a peer that stores 2 into it makes it `true`, never
/// undefined behaviour. Every operation acts on that truth value
/// (`compare_exchange(true, ..)` matches any non-zero byte).
///
/// ```
/// # fn main() -> Result<(), shmsync::Error> {
/// use std::sync::atomic::Ordering::SeqCst;
/// fn bump<T: shmsync::AtomicNumber>(c: shmsync::AtomicRef<'_, T>, by: T) -> T {
///     c.fetch_add(by, SeqCst)
/// }
/// let a = shmsync::AtomicArray::from_slice(&[1.5f64, 2.5])?;
/// let v = shmsync::AtomicValue::new(7u16)?;
/// assert_eq!(bump(a.at(1), 1.0), 2.5);
/// assert_eq!(bump(v.cell(), 1), 7);
/// assert_eq!(a.to_vec(), [1.5, 3.5]);
/// # Ok(()) }
/// ```
pub trait AtomicElement: sealed::Sealed + Send + Sync + fmt::Debug + 'static {
    /// The `core` atomic a cell is accessed through.
    #[doc(hidden)]
    type Atomic: MappedAtomic<Int = <Self as Repr>::Int>;
    /// The type code recorded in the header.
    #[doc(hidden)]
    const CODE: u8;
    /// Zero, `0.0` or `false`: the all-zero word.
    #[doc(hidden)]
    const ZERO: Self;
}

/// The element types with `fetch_add`, `fetch_sub`, `fetch_max` and
/// `fetch_min`: the integers and the floats. Sealed.
///
/// Integers wrap on overflow and use one hardware read-modify-write.
/// Floats use a compare-and-swap loop on the bit pattern:
/// `fetch_add`/`fetch_sub` store `old + v`/`old - v`, and
/// `fetch_max`/`fetch_min` store [`f64::max`]/[`f64::min`] of the old value
/// and `v` (so a NaN operand leaves the cell as it is, and a NaN cell takes
/// the operand). As for any Rust float arithmetic, the sign and payload of
/// a NaN result, and which zero `max(0.0, -0.0)` returns, are unspecified.
///
/// ```
/// # fn main() -> Result<(), shmsync::Error> {
/// use std::sync::atomic::Ordering::SeqCst;
/// let v = shmsync::AtomicValue::new(f64::NAN)?;
/// assert!(v.fetch_max(1.0, SeqCst).is_nan());
/// assert_eq!(v.fetch_max(f64::NAN, SeqCst), 1.0);
/// assert_eq!(v.load(SeqCst), 1.0);
/// # Ok(()) }
/// ```
pub trait AtomicNumber: AtomicElement + sealed::Number {}

/// The element types with `fetch_and`, `fetch_or`, `fetch_xor` and
/// `fetch_nand`: the integers and `bool`. Sealed.
///
/// ```
/// # fn main() -> Result<(), shmsync::Error> {
/// use std::sync::atomic::Ordering::SeqCst;
/// let flags = shmsync::AtomicValue::new(0b0101u8)?;
/// assert_eq!(flags.fetch_or(0b0010, SeqCst), 0b0101);
/// let b = shmsync::AtomicValue::new(true)?;
/// assert!(b.fetch_xor(true, SeqCst));
/// assert!(!b.load(SeqCst));
/// # Ok(()) }
/// ```
pub trait AtomicBitwise: AtomicElement + sealed::Bits {}

macro_rules! elements {
    ($($t:ty => $atomic:ident, $code:literal, $zero:literal, [$($cap:ident),*];)*) => {$(
        impl sealed::Sealed for $t {}
        impl AtomicElement for $t {
            type Atomic = core::sync::atomic::$atomic;
            const CODE: u8 = $code;
            const ZERO: $t = $zero;
        }
        $(impl $cap for $t {})*
    )*};
}

elements! {
    i8 => AtomicI8, b'b', 0, [AtomicNumber, AtomicBitwise];
    u8 => AtomicU8, b'B', 0, [AtomicNumber, AtomicBitwise];
    i16 => AtomicI16, b'h', 0, [AtomicNumber, AtomicBitwise];
    u16 => AtomicU16, b'H', 0, [AtomicNumber, AtomicBitwise];
    i32 => AtomicI32, b'i', 0, [AtomicNumber, AtomicBitwise];
    u32 => AtomicU32, b'I', 0, [AtomicNumber, AtomicBitwise];
    i64 => AtomicI64, b'q', 0, [AtomicNumber, AtomicBitwise];
    u64 => AtomicU64, b'Q', 0, [AtomicNumber, AtomicBitwise];
    isize => AtomicIsize, b'n', 0, [AtomicNumber, AtomicBitwise];
    usize => AtomicUsize, b'N', 0, [AtomicNumber, AtomicBitwise];
    f32 => AtomicU32, b'f', 0.0, [AtomicNumber];
    f64 => AtomicU64, b'd', 0.0, [AtomicNumber];
    bool => AtomicU8, b'?', false, [AtomicBitwise];
}

pub(super) const fn atomic_desc<T: AtomicElement>() -> ElemDesc {
    ElemDesc {
        code: T::CODE,
        size: size_of::<T::Atomic>(),
        align: align_of::<T::Atomic>(),
    }
}
